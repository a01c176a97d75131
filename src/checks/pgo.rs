//! The PGO suite's checks: koppeltest judges a PGO under test by the requests one practice's
//! simulated DVA recorded (as the DVA saw them: URL, headers, body, the client certificate of
//! the handshake) and what it answered. Nothing else: not the PGO's own account, not the
//! simulated DVA's state.
//!
//! Each check first finds its **stimulus** in the records (the wrong state that was sent, the
//! 401 that was answered, the next link that was served). Without it the verdict is `error`
//! (or `skip`, when the PGO never came to the practice), never `pass`: a PGO that stopped
//! early proves nothing about what it would have done later.
//!
//! The rules here are the judge's own: the scope dialects, the seven queries of gegevensdienst
//! 49 and the STU3 Accept header are written again, not taken from the mock PGO or the
//! simulated DVA (`tests/it/pgo_suite.rs` shows the mock PGO and these checks agree).

use std::collections::BTreeSet;

use serde_json::Value;

use super::CheckResult;
use crate::exchange::{Exchange, Party};
use crate::outcome::Outcome;

/// What the judge knows about the PGO and the practice besides the records.
#[derive(Debug, Clone)]
pub struct PgoExpectations {
    /// The PGO node's hostname on the OCL.
    pub hostname: String,
    pub redirect_uri: String,
    /// The PGO's Afsprakenstelsel release: `1.0`, `1.x` or `2.2`.
    pub release: String,
    pub gegevensdiensten: Vec<String>,
    /// The practice, `…@medmij`.
    pub practice: String,
    /// The PGO's profile sends `date=ge…` with lab results.
    pub lab_date_filter: bool,
    /// How late the slow answer of `slow-answer` comes, in ms.
    pub slow_answer_ms: u64,
    /// The `state` values of the authorization requests at the suite's other practices.
    pub other_states: Vec<String>,
    /// The run date (for the 14-month window).
    pub today: time::Date,
}

/// Every check kind of the PGO suite.
pub const KINDS: &[&str] = &[
    "pgo.client-id",
    "pgo.redirect-uri",
    "pgo.scope",
    "pgo.state",
    "pgo.front-headers",
    "pgo.token-form",
    "pgo.token-client-certificate",
    "pgo.token-redirect-uri",
    "pgo.back-headers",
    "pgo.bearer",
    "pgo.accept",
    "pgo.queries",
    "pgo.lab-date",
    "pgo.paging",
    "pgo.next-on-resource-host",
    "pgo.no-code-exchange",
    "pgo.no-retry-loop",
    "pgo.refresh",
    "pgo.rotation",
    "pgo.stops-on-invalid-grant",
    "pgo.no-contact-off-whitelist",
    "pgo.no-contact-untrusted",
    "pgo.https-only",
    "pgo.retries-server-error",
    "pgo.waits-for-slow-answer",
    "pgo.collects-after-unknown-field",
];

/// The requirements a PGO check verifies (all PGO rules of the catalogue).
pub fn requirements(kind: &str) -> &'static [&'static str] {
    match kind {
        "pgo.client-id" => &["pgo:authorize.client-id"],
        "pgo.redirect-uri" => &["pgo:authorize.redirect-uri"],
        "pgo.scope" => &["pgo:authorize.scope"],
        "pgo.state" => &["pgo:authorize.state"],
        "pgo.front-headers" => &["pgo:authorize.headers"],
        "pgo.token-form" => &["pgo:token.form"],
        "pgo.token-client-certificate" => &["pgo:token.mtls"],
        "pgo.token-redirect-uri" => &["pgo:token.redirect-uri"],
        "pgo.back-headers" => &["medmij:token.headers", "medmij:resource.headers"],
        "pgo.bearer" => &["pgo:resource.bearer"],
        "pgo.accept" => &["pgo:resource.accept"],
        "pgo.queries" => &["pgo:resource.queries"],
        "pgo.lab-date" => &["pgo:resource.lab-date"],
        "pgo.paging" => &["pgo:resource.paging"],
        "pgo.next-on-resource-host" => &["pgo:resource.paging-host"],
        "pgo.no-code-exchange" => &["pgo:callback.state"],
        "pgo.no-retry-loop" => &["pgo:callback.error"],
        "pgo.refresh" => &["pgo:token.refresh"],
        "pgo.rotation" => &["pgo:token.rotation"],
        "pgo.stops-on-invalid-grant" => &["pgo:token.invalid-grant"],
        "pgo.no-contact-off-whitelist" => &["pgo:trust.whitelist"],
        "pgo.no-contact-untrusted" => &["pgo:trust.certificate"],
        "pgo.https-only" => &["pgo:trust.https-only"],
        "pgo.retries-server-error" => &["pgo:robust.server-error"],
        "pgo.waits-for-slow-answer" => &["pgo:robust.slow-answer"],
        "pgo.collects-after-unknown-field" => &["pgo:robust.unknown-field"],
        _ => &[],
    }
}

/// Whether an Accept header asks for FHIR STU3 JSON: some media range is
/// `application/fhir+json` with `fhirVersion=3.0` (quoted or not), and none names another FHIR
/// version.
fn stu3_accept(accept: &str) -> bool {
    let mut stu3 = false;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let version = parts.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("fhirversion")
                .then(|| v.trim().trim_matches('"').to_string())
        });
        match version.as_deref() {
            Some("3.0") if media == "application/fhir+json" => stu3 = true,
            Some("3.0") | None => {}
            Some(_) => return false,
        }
    }
    stu3
}

/// One query as the judge knows it: its name, the searched type, and the parameters that make
/// it that query (a value prefix each).
type Query = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The seven queries of gegevensdienst 49.
const QUERIES: &[Query] = &[
    (
        "patient",
        "Patient",
        &[("_include", "Patient:general-practitioner")],
    ),
    ("episodes", "EpisodeOfCare", &[]),
    (
        "medication",
        "MedicationRequest",
        &[
            ("category", "http://snomed.info/sct|16076005"),
            ("_include", "MedicationRequest:medication"),
        ],
    ),
    (
        "allergies",
        "AllergyIntolerance",
        &[("category", "medication")],
    ),
    (
        "results",
        "Observation",
        &[(
            "code",
            "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen|",
        )],
    ),
    (
        "journal",
        "Composition",
        &[("type", "http://loinc.org|67781-5")],
    ),
    ("encounters", "Encounter", &[]),
];

/// Judges one check of one practice.
pub fn judge(kind: &str, log: &[Exchange], expect: &PgoExpectations) -> CheckResult {
    let r = Records::of(log);
    let (outcome, message, evidence) = match kind {
        "pgo.client-id" => r.client_id(expect),
        "pgo.redirect-uri" => r.redirect_uri(expect),
        "pgo.scope" => r.scope(expect),
        "pgo.state" => r.state(expect),
        "pgo.front-headers" => r.front_headers(),
        "pgo.token-form" => r.token_form(expect),
        "pgo.token-client-certificate" => r.token_certificate(expect),
        "pgo.token-redirect-uri" => r.token_redirect_uri(),
        "pgo.back-headers" => r.back_headers(),
        "pgo.bearer" => r.bearer(),
        "pgo.accept" => r.accept(),
        "pgo.queries" => r.queries(),
        "pgo.lab-date" => r.lab_date(expect),
        "pgo.paging" => r.paging(),
        "pgo.next-on-resource-host" => r.next_on_resource_host(),
        "pgo.no-code-exchange" => r.no_code_exchange(),
        "pgo.no-retry-loop" => r.no_retry_loop(),
        "pgo.refresh" => r.refresh(),
        "pgo.rotation" => r.rotation(),
        "pgo.stops-on-invalid-grant" => r.stops_on_invalid_grant(),
        "pgo.no-contact-off-whitelist" => r.no_back_channel(false),
        "pgo.no-contact-untrusted" => r.no_back_channel(true),
        "pgo.https-only" => r.https_only(),
        "pgo.retries-server-error" => r.retries_server_error(),
        "pgo.waits-for-slow-answer" => r.waits(expect),
        "pgo.collects-after-unknown-field" => r.collects_after_unknown_field(),
        other => (
            Outcome::Error,
            format!("unknown PGO check {other:?}"),
            Vec::new(),
        ),
    };
    CheckResult {
        kind: kind.to_string(),
        step: "pgo".to_string(),
        outcome,
        message,
        requirements: requirements(kind).iter().map(|s| s.to_string()).collect(),
        evidence,
        privacy: false,
        dataset: None,
    }
}

type Verdict = (Outcome, String, Vec<usize>);

fn pass(message: impl Into<String>, evidence: Vec<usize>) -> Verdict {
    (Outcome::Pass, message.into(), evidence)
}

fn fail(message: impl Into<String>, evidence: Vec<usize>) -> Verdict {
    (Outcome::Fail, message.into(), evidence)
}

fn error(message: impl Into<String>) -> Verdict {
    (Outcome::Error, message.into(), Vec::new())
}

/// One recorded request, read.
struct Request<'a> {
    x: &'a Exchange,
    url: Option<url::Url>,
}

impl Request<'_> {
    /// When the DVA received it, on the practice's event counter (by log order without one).
    fn received(&self) -> u64 {
        self.x.ticks.map_or(2 * self.x.seq as u64, |t| t.received)
    }

    /// When the DVA answered it.
    fn answered(&self) -> u64 {
        self.x
            .ticks
            .map_or(2 * self.x.seq as u64 + 1, |t| t.answered)
    }

    /// Sent after `other` was answered (a concurrent client's requests overlap; this does not).
    fn after(&self, other: &Request<'_>) -> bool {
        self.received() > other.answered()
    }

    fn path(&self) -> &str {
        self.url.as_ref().map_or("", |u| u.path())
    }

    fn query(&self, name: &str) -> Option<String> {
        self.url.as_ref().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    }

    fn has_query(&self) -> bool {
        self.url
            .as_ref()
            .and_then(|u| u.query())
            .is_some_and(|q| !q.is_empty())
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.x.request_headers, name)
    }

    fn response_header(&self, name: &str) -> Option<&str> {
        header(&self.x.response_headers, name)
    }

    fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.x.request_body.as_deref().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn response_json(&self) -> Option<Value> {
        serde_json::from_str(self.x.response_body.as_deref()?).ok()
    }

    fn status(&self) -> Option<u16> {
        self.x.status
    }

    /// The search as asked: path and query without `_page` (nor a token sent as a parameter).
    fn search_key(&self) -> String {
        self.url.as_ref().map_or(String::new(), |u| {
            request_key(u, &["_page", "access_token"])
        })
    }

    /// The page as asked, as a next link names it (without a token sent as a parameter).
    fn page_key(&self) -> String {
        self.url
            .as_ref()
            .map_or(String::new(), |u| request_key(u, &["access_token"]))
    }

    /// The grant type, wherever the PGO put it.
    fn grant_type(&self) -> Option<String> {
        self.form("grant_type").or_else(|| self.query("grant_type"))
    }
}

/// Path and decoded query pairs of `u`, leaving out the parameters named in `skip`.
fn request_key(u: &url::Url, skip: &[&str]) -> String {
    // Sorted: a PGO may rebuild a next link with the same parameters in another order.
    let mut query: Vec<String> = u
        .query_pairs()
        .filter(|(k, _)| !skip.contains(&k.as_ref()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    query.sort();
    format!("{}?{}", u.path(), query.join("&"))
}

/// A recorded URL. Requests carry no fragment, so every `#` in one is the log's redaction label
/// (`[code#1]`), which must not end the query.
fn parse_url(s: &str) -> Option<url::Url> {
    url::Url::parse(&s.replace('#', "%23")).ok()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_uuid(s: &str) -> bool {
    // The log redacts any nine digits that pass the BSN 11-check, inside a UUID too: such a run
    // was nine digits.
    let s = s.replace("[bsn]", "000000000");
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A practice's records, sorted by kind.
struct Records<'a> {
    all: Vec<Request<'a>>,
    /// The DVA's own notes (refused handshakes on its back channel).
    notes: Vec<&'a Exchange>,
}

impl<'a> Records<'a> {
    fn of(log: &'a [Exchange]) -> Records<'a> {
        Records {
            all: log
                .iter()
                .filter(|x| x.method != "NOTE" && x.to == Party::Dva)
                .map(|x| Request {
                    x,
                    url: parse_url(&x.url),
                })
                .collect(),
            notes: log.iter().filter(|x| x.method == "NOTE").collect(),
        }
    }

    fn authorizations(&self) -> Vec<&Request<'a>> {
        self.all
            .iter()
            .filter(|r| r.path() == "/oauth/authorize")
            .collect()
    }

    fn first_authorization(&self) -> Result<&Request<'a>, Verdict> {
        self.authorizations()
            .into_iter()
            .next()
            .ok_or_else(|| error("the PGO sent no authorization request to this practice"))
    }

    /// Token requests with the authorization-code grant (in the body or, wrongly, the query).
    fn code_exchanges(&self) -> Vec<&Request<'a>> {
        self.all
            .iter()
            .filter(|r| {
                r.path() == "/oauth/token"
                    && r.grant_type().as_deref() == Some("authorization_code")
            })
            .collect()
    }

    fn refreshes(&self) -> Vec<&Request<'a>> {
        self.all
            .iter()
            .filter(|r| {
                r.path() == "/oauth/token" && r.grant_type().as_deref() == Some("refresh_token")
            })
            .collect()
    }

    fn back_channel(&self) -> Vec<&Request<'a>> {
        self.all.iter().filter(|r| r.x.from == Party::Pgo).collect()
    }

    fn resources(&self) -> Vec<&Request<'a>> {
        self.all
            .iter()
            .filter(|r| r.path().starts_with("/fhir/"))
            .collect()
    }

    fn resources_or_error(&self) -> Result<Vec<&Request<'a>>, Verdict> {
        let r = self.resources();
        if r.is_empty() {
            Err(error(
                "the PGO sent no resource request to this practice, so its resource requests cannot be judged",
            ))
        } else {
            Ok(r)
        }
    }

    /// The redirect back with a code: the consent's answer.
    fn code_issued(&self) -> Option<&Request<'a>> {
        self.all.iter().find(|r| {
            r.path() == "/oauth/consent"
                && r.response_header("location")
                    .and_then(parse_url)
                    .is_some_and(|u| u.query_pairs().any(|(k, _)| k == "code"))
        })
    }

    fn client_id(&self, e: &PgoExpectations) -> Verdict {
        let a = match self.first_authorization() {
            Ok(a) => a,
            Err(v) => return v,
        };
        match a.query("client_id") {
            Some(c) if c == e.hostname => {
                pass(format!("client_id is the OCL hostname {c}"), vec![a.x.seq])
            }
            other => fail(
                format!(
                    "client_id is {other:?}; it must be the PGO's OCL hostname {:?}",
                    e.hostname
                ),
                vec![a.x.seq],
            ),
        }
    }

    fn redirect_uri(&self, e: &PgoExpectations) -> Verdict {
        let a = match self.first_authorization() {
            Ok(a) => a,
            Err(v) => return v,
        };
        match a.query("redirect_uri") {
            Some(u) if u == e.redirect_uri => {
                pass(format!("redirect_uri is the registered {u}"), vec![a.x.seq])
            }
            other => fail(
                format!(
                    "redirect_uri is {other:?}; the registered one is {:?}",
                    e.redirect_uri
                ),
                vec![a.x.seq],
            ),
        }
    }

    fn scope(&self, e: &PgoExpectations) -> Verdict {
        let a = match self.first_authorization() {
            Ok(a) => a,
            Err(v) => return v,
        };
        let naam = e.practice.trim_end_matches("@medmij");
        let sent = a.query("scope").unwrap_or_default();
        let tokens: Vec<&str> = sent.split_whitespace().collect();
        // The services asked for, read in the release's dialect (`None`: another dialect).
        let services: Option<BTreeSet<&str>> = match e.release.as_str() {
            "1.0" => tokens
                .iter()
                .all(|t| t.chars().all(|c| c.is_ascii_digit()))
                .then(|| tokens.iter().copied().collect()),
            "1.x" => tokens
                .iter()
                .map(|t| t.strip_prefix(naam).and_then(|r| r.strip_prefix('~')))
                .collect(),
            _ => (tokens == [naam]).then(|| ["49"].into()),
        };
        let wants = |s: &BTreeSet<&str>| {
            s.contains("49")
                && s.iter()
                    .all(|id| e.gegevensdiensten.iter().any(|g| g == id))
        };
        match services {
            Some(s) if wants(&s) => pass(
                format!("scope {sent:?} is release {}'s dialect", e.release),
                vec![a.x.seq],
            ),
            _ => fail(
                format!(
                    "scope is {sent:?}; release {} wants {}, naming gegevensdienst 49 among the profile's",
                    e.release,
                    match e.release.as_str() {
                        "1.0" => "gegevensdienst ids (`49`)".to_string(),
                        "1.x" => format!("`{naam}~<id>` per service"),
                        _ => format!("the provider name `{naam}`"),
                    }
                ),
                vec![a.x.seq],
            ),
        }
    }

    fn state(&self, e: &PgoExpectations) -> Verdict {
        let a = match self.first_authorization() {
            Ok(a) => a,
            Err(v) => return v,
        };
        let Some(state) = a.query("state").filter(|s| !s.is_empty()) else {
            return fail("the authorization request has no state", vec![a.x.seq]);
        };
        let bits = entropy_bits(&state);
        if bits < 128.0 {
            return fail(
                format!(
                    "state {state:?} carries at most {bits:.0} bits; at least 128 unpredictable bits are needed"
                ),
                vec![a.x.seq],
            );
        }
        let mine: Vec<String> = self
            .authorizations()
            .iter()
            .filter_map(|r| r.query("state"))
            .collect();
        let repeated =
            e.other_states.contains(&state) || mine.iter().filter(|s| **s == state).count() > 1;
        if repeated {
            return fail(
                format!("state {state:?} was used by another authorization request too"),
                vec![a.x.seq],
            );
        }
        pass(
            format!(
                "state has about {bits:.0} bits and was not used by any other of the run's {} authorization request(s)",
                e.other_states.len() + mine.len()
            ),
            vec![a.x.seq],
        )
    }

    fn front_headers(&self) -> Verdict {
        let a = match self.first_authorization() {
            Ok(a) => a,
            Err(v) => return v,
        };
        let request_id = a.query("MedMij-Request-ID");
        let correlation = a.query("X-Correlation-ID");
        match (&request_id, &correlation) {
            (Some(r), Some(c)) if is_uuid(r) && is_uuid(c) => {
                let reused = self.all.iter().filter(|o| o.x.seq != a.x.seq).any(|o| {
                    o.query("MedMij-Request-ID").as_deref() == Some(r)
                        || o.header("MedMij-Request-ID") == Some(r)
                });
                if reused {
                    fail(
                        format!("MedMij-Request-ID {r} is used by another request as well"),
                        vec![a.x.seq],
                    )
                } else {
                    pass(
                        "MedMij-Request-ID (new) and X-Correlation-ID are UUIDs in the query",
                        vec![a.x.seq],
                    )
                }
            }
            _ => fail(
                format!(
                    "the authorization request needs MedMij-Request-ID and X-Correlation-ID (UUIDs) in the query; it has {request_id:?} and {correlation:?}"
                ),
                vec![a.x.seq],
            ),
        }
    }

    fn first_code_exchange(&self) -> Result<&Request<'a>, Verdict> {
        self.code_exchanges().into_iter().next().ok_or_else(|| {
            error("the PGO sent no authorization-code token request to this practice")
        })
    }

    fn token_form(&self, e: &PgoExpectations) -> Verdict {
        let t = match self.first_code_exchange() {
            Ok(t) => t,
            Err(v) => return v,
        };
        let mut wrong = Vec::new();
        if t.x.method != "POST" {
            wrong.push(format!("method {}", t.x.method));
        }
        if !t
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            wrong.push(format!(
                "Content-Type {:?}",
                t.header("content-type").unwrap_or("none")
            ));
        }
        if t.has_query() {
            wrong.push("parameters in the query string".to_string());
        }
        for name in ["grant_type", "code", "redirect_uri"] {
            if t.form(name).is_none() {
                wrong.push(format!("no {name} in the body"));
            }
        }
        if t.form("client_id").as_deref() != Some(e.hostname.as_str()) {
            wrong.push(format!(
                "client_id {:?} in the body, not {:?}",
                t.form("client_id"),
                e.hostname
            ));
        }
        if wrong.is_empty() {
            pass(
                "a POST form body with grant_type, code, redirect_uri and client_id; nothing in the query",
                vec![t.x.seq],
            )
        } else {
            fail(
                format!(
                    "the token request is not MedMij's form: {}",
                    wrong.join("; ")
                ),
                vec![t.x.seq],
            )
        }
    }

    fn token_certificate(&self, e: &PgoExpectations) -> Verdict {
        let t = match self.first_code_exchange() {
            Ok(t) => t,
            Err(v) => return v,
        };
        match &t.x.client_certificate {
            Some(c) if c.dns_names.contains(&e.hostname) => pass(
                format!("mutual TLS with a certificate for {}", e.hostname),
                vec![t.x.seq],
            ),
            Some(c) => fail(
                format!(
                    "the client certificate names {:?}, not the OCL hostname {}",
                    c.dns_names, e.hostname
                ),
                vec![t.x.seq],
            ),
            None => fail(
                "the token request came without a client certificate (MedMij requires mutual TLS)",
                vec![t.x.seq],
            ),
        }
    }

    fn token_redirect_uri(&self) -> Verdict {
        let a = match self.first_authorization() {
            Ok(a) => a,
            Err(v) => return v,
        };
        let t = match self.first_code_exchange() {
            Ok(t) => t,
            Err(v) => return v,
        };
        let sent = a.query("redirect_uri");
        let presented = t.form("redirect_uri").or_else(|| t.query("redirect_uri"));
        if sent.is_some() && sent == presented {
            pass(
                "the token request's redirect_uri equals the authorization request's",
                vec![a.x.seq, t.x.seq],
            )
        } else {
            fail(
                format!(
                    "redirect_uri {presented:?} at the token endpoint, {sent:?} in the authorization request (decoded once, they must be equal)"
                ),
                vec![a.x.seq, t.x.seq],
            )
        }
    }

    fn back_headers(&self) -> Verdict {
        let a = match self.first_authorization() {
            Ok(a) => a,
            Err(v) => return v,
        };
        let back = self.back_channel();
        if back.is_empty() {
            return error("the PGO sent no token or resource request to this practice");
        }
        let correlation = a.query("X-Correlation-ID");
        let mut ids = BTreeSet::new();
        if let Some(r) = a.query("MedMij-Request-ID") {
            ids.insert(r);
        }
        for r in &back {
            let Some(id) = r.header("MedMij-Request-ID").filter(|v| is_uuid(v)) else {
                return fail(
                    format!(
                        "{} {} has no MedMij-Request-ID header (a UUID)",
                        r.x.method,
                        r.path()
                    ),
                    vec![r.x.seq],
                );
            };
            if !ids.insert(id.to_string()) {
                return fail(
                    format!("MedMij-Request-ID {id} is used twice; it must be new per request"),
                    vec![r.x.seq],
                );
            }
            if r.header("X-Correlation-ID").map(str::to_string) != correlation {
                return fail(
                    format!(
                        "{} {} carries X-Correlation-ID {:?}, not the authorization's {correlation:?}",
                        r.x.method,
                        r.path(),
                        r.header("X-Correlation-ID")
                    ),
                    vec![a.x.seq, r.x.seq],
                );
            }
        }
        pass(
            format!(
                "all {} token and resource requests carry a new MedMij-Request-ID and the authorization's X-Correlation-ID",
                back.len()
            ),
            back.iter().map(|r| r.x.seq).take(5).collect(),
        )
    }

    fn bearer(&self) -> Verdict {
        let res = match self.resources_or_error() {
            Ok(r) => r,
            Err(v) => return v,
        };
        for r in &res {
            if r.query("access_token").is_some() {
                return fail(
                    "the access token travels in the query string (RFC 6750 §2.1: Authorization: Bearer only)",
                    vec![r.x.seq],
                );
            }
            let bearer = r.header("authorization").is_some_and(|v| {
                v.get(..7)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            });
            if !bearer {
                return fail(
                    format!("{} has no Authorization: Bearer header", r.path()),
                    vec![r.x.seq],
                );
            }
        }
        pass(
            format!(
                "all {} resource requests use Authorization: Bearer only",
                res.len()
            ),
            vec![res[0].x.seq],
        )
    }

    fn accept(&self) -> Verdict {
        let res = match self.resources_or_error() {
            Ok(r) => r,
            Err(v) => return v,
        };
        for r in &res {
            let accept = r.header("accept").unwrap_or("");
            if !stu3_accept(accept) {
                return fail(
                    format!(
                        "{} asks Accept: {accept:?}; STU3 needs application/fhir+json; fhirVersion=3.0 and no other FHIR version",
                        r.path()
                    ),
                    vec![r.x.seq],
                );
            }
        }
        pass(
            format!("all {} resource requests ask for FHIR STU3 JSON", res.len()),
            vec![res[0].x.seq],
        )
    }

    fn queries(&self) -> Verdict {
        let res = match self.resources_or_error() {
            Ok(r) => r,
            Err(v) => return v,
        };
        if let Some(r) = res
            .iter()
            .find(|r| r.query("patient").is_some() || r.query("subject").is_some())
        {
            return fail(
                "a resource request names the patient; the token alone binds it",
                vec![r.x.seq],
            );
        }
        let missing: Vec<&str> = QUERIES
            .iter()
            .filter(|(_, ty, params)| {
                !res.iter().any(|r| {
                    r.path().trim_end_matches('/').ends_with(&format!("/{ty}"))
                        && params.iter().all(|(k, v)| {
                            r.url.as_ref().is_some_and(|u| {
                                u.query_pairs()
                                    .any(|(qk, qv)| qk == *k && qv.starts_with(v))
                            })
                        })
                })
            })
            .map(|(name, _, _)| *name)
            .collect();
        if missing.is_empty() {
            pass(
                "the seven queries of gegevensdienst 49 were asked",
                res.iter().map(|r| r.x.seq).take(7).collect(),
            )
        } else {
            fail(
                format!(
                    "not asked as gegevensdienst 49 defines them: {}",
                    missing.join(", ")
                ),
                res.iter().map(|r| r.x.seq).take(7).collect(),
            )
        }
    }

    fn lab_date(&self, e: &PgoExpectations) -> Verdict {
        let res = match self.resources_or_error() {
            Ok(r) => r,
            Err(v) => return v,
        };
        let Some(r) = res
            .iter()
            .find(|r| r.path().ends_with("/Observation") && r.query("_page").is_none())
        else {
            return fail("the PGO never asked for lab results (Observation)", vec![]);
        };
        let date = r.query("date");
        match (e.lab_date_filter, date) {
            (false, None) => pass(
                "no date parameter on lab results, as the profile says",
                vec![r.x.seq],
            ),
            (false, Some(d)) => fail(
                format!("date={d} on lab results; the profile sends none"),
                vec![r.x.seq],
            ),
            (true, None) => fail(
                "the profile sends date=ge<14 months ago> with lab results; there is none",
                vec![r.x.seq],
            ),
            (true, Some(d)) => {
                // A date or a dateTime: its first ten characters are the day.
                let parsed = d.strip_prefix("ge").and_then(|v| {
                    time::Date::parse(
                        v.get(..10)?,
                        time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .ok()
                });
                let months = parsed.map(|p| {
                    (e.today.year() - p.year()) * 12 + e.today.month() as i32 - p.month() as i32
                });
                if months.is_some_and(|m| (13..=15).contains(&m)) {
                    pass(format!("date={d}: 14 months back"), vec![r.x.seq])
                } else {
                    fail(
                        format!("date={d} is not ge<a date 14 months back>"),
                        vec![r.x.seq],
                    )
                }
            }
        }
    }

    fn paging(&self) -> Verdict {
        let res = match self.resources_or_error() {
            Ok(r) => r,
            Err(v) => return v,
        };
        let mut served = Vec::new();
        for r in &res {
            let Some(body) = r.response_json() else {
                continue;
            };
            if let Some(next) = body["link"].as_array().and_then(|links| {
                links
                    .iter()
                    .find(|l| l["relation"] == "next")
                    .and_then(|l| l["url"].as_str())
            }) {
                served.push((r.x.seq, next.to_string()));
            }
        }
        if served.is_empty() {
            return error(
                "no answer carried a next link (the PGO's searches did not get that far), so paging cannot be judged",
            );
        }
        let asked: BTreeSet<String> = res.iter().map(|r| r.page_key()).collect();
        for (seq, next) in &served {
            let key = parse_url(next)
                .map(|u| request_key(&u, &["access_token"]))
                .unwrap_or_default();
            if !asked.contains(&key) {
                return fail(
                    format!(
                        "the next link {next} was never followed; the rest of the search is lost"
                    ),
                    vec![*seq],
                );
            }
        }
        pass(
            format!("all {} next links served were followed", served.len()),
            served.iter().map(|(s, _)| *s).take(5).collect(),
        )
    }

    fn next_on_resource_host(&self) -> Verdict {
        let res = match self.resources_or_error() {
            Ok(r) => r,
            Err(v) => return v,
        };
        let resource_host = res[0]
            .url
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_string));
        let off_host = res.iter().find_map(|r| {
            let body = r.response_json()?;
            let next = body["link"]
                .as_array()?
                .iter()
                .find(|l| l["relation"] == "next")?["url"]
                .as_str()?
                .to_string();
            let host = parse_url(&next)?.host_str()?.to_string();
            (Some(&host) != resource_host.as_ref()).then_some((r.x.seq, host))
        });
        let Some((seq, host)) = off_host else {
            return error(
                "no answer carried a next link to another host (the PGO's searches did not get that far)",
            );
        };
        match self
            .all
            .iter()
            .find(|r| r.url.as_ref().and_then(|u| u.host_str()) == Some(host.as_str()))
        {
            Some(r) => fail(
                format!("the PGO followed a next link off the resource host, to {host}"),
                vec![seq, r.x.seq],
            ),
            None => pass(
                format!("the next link to {host} was not followed"),
                vec![seq],
            ),
        }
    }

    fn no_code_exchange(&self) -> Verdict {
        let Some(a) = self.authorizations().into_iter().next() else {
            return error("the PGO sent no authorization request to this practice");
        };
        let sent = a.query("state");
        let Some(issued) = self.code_issued() else {
            return error("no code was issued (the login or consent did not complete)");
        };
        let returned = issued
            .response_header("location")
            .and_then(parse_url)
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
            });
        if returned == sent {
            return error(
                "the code came back with the state the PGO sent, so the stimulus did not happen",
            );
        }
        match self.code_exchanges().first() {
            Some(t) => fail(
                "the PGO exchanged a code that came back with a state it never sent (CSRF)",
                vec![issued.x.seq, t.x.seq],
            ),
            None => pass(
                "the code that came back with a foreign state was not exchanged",
                vec![a.x.seq, issued.x.seq],
            ),
        }
    }

    /// The authorization ended in an error redirect.
    fn error_redirect(&self) -> Option<&Request<'a>> {
        self.all.iter().find(|r| {
            r.response_header("location")
                .and_then(parse_url)
                .is_some_and(|u| u.query_pairs().any(|(k, _)| k == "error"))
        })
    }

    fn no_retry_loop(&self) -> Verdict {
        let Some(e) = self.error_redirect() else {
            return error("no error redirect was sent (the PGO did not get that far)");
        };
        if let Some(a) = self.authorizations().into_iter().find(|a| a.after(e)) {
            return fail(
                "after the error redirect the PGO started the authorization again by itself",
                vec![e.x.seq, a.x.seq],
            );
        }
        if let Some(t) = self.back_channel().first() {
            return fail(
                "after the error redirect the PGO still went to the back channel",
                vec![e.x.seq, t.x.seq],
            );
        }
        pass(
            "after the error redirect the PGO stopped: no new authorization, no token request",
            vec![e.x.seq],
        )
    }

    /// Resource answers 401 with `invalid_token`: the token expired.
    fn expiries(&self) -> Vec<&Request<'a>> {
        self.resources()
            .into_iter()
            .filter(|r| {
                r.status() == Some(401)
                    && r.response_header("www-authenticate")
                        .is_some_and(|w| w.contains("invalid_token"))
            })
            .collect()
    }

    fn refresh(&self) -> Verdict {
        let expiries = self.expiries();
        let Some(first) = expiries.first() else {
            return error(
                "no resource request met an expired token, so refreshing cannot be judged",
            );
        };
        let Some(refreshed) = self.refreshes().into_iter().find(|r| r.after(first)) else {
            return fail(
                "the access token expired (401 invalid_token) and the PGO did not refresh it",
                vec![first.x.seq],
            );
        };
        let asked_again = self
            .resources()
            .into_iter()
            .any(|r| r.after(refreshed) && r.page_key() == first.page_key());
        if asked_again {
            pass(
                "after the 401 the PGO refreshed its token and asked again",
                vec![first.x.seq, refreshed.x.seq],
            )
        } else {
            fail(
                "the PGO refreshed its token but never asked again for what the 401 answered",
                vec![first.x.seq, refreshed.x.seq],
            )
        }
    }

    fn rotation(&self) -> Verdict {
        // Refresh tokens by the labels the log gives them, with when each was handed out.
        let issued: Vec<(u64, String)> = self
            .all
            .iter()
            .filter(|r| r.path() == "/oauth/token" && r.status() == Some(200))
            .filter_map(|r| {
                let t = r.response_json()?["refresh_token"].as_str()?.to_string();
                Some((r.answered(), t))
            })
            .collect();
        let mut refreshes = self.refreshes();
        refreshes.sort_by_key(|r| r.received());
        for r in &refreshes {
            let Some(token) = r.form("refresh_token").or_else(|| r.query("refresh_token")) else {
                continue;
            };
            // The newest refresh token the PGO had been given when it sent this request.
            let newest = issued
                .iter()
                .filter(|(at, _)| *at < r.received())
                .max_by_key(|(at, _)| *at)
                .map(|(_, t)| t);
            if let Some(newest) = newest
                && token != *newest
                && issued.iter().any(|(_, t)| *t == token)
            {
                return fail(
                    format!(
                        "the PGO presented an old refresh token ({token}) after the DVA had rotated it to {newest}"
                    ),
                    vec![r.x.seq],
                );
            }
        }
        if refreshes.len() < 2 {
            return error(format!(
                "the PGO refreshed {} time(s); rotation shows from the second refresh on",
                refreshes.len()
            ));
        }
        pass(
            format!(
                "all {} refreshes presented the newest refresh token",
                refreshes.len()
            ),
            refreshes.iter().map(|r| r.x.seq).take(5).collect(),
        )
    }

    fn stops_on_invalid_grant(&self) -> Verdict {
        let refused = self.refreshes().into_iter().find(|r| {
            r.status() == Some(400)
                && r.response_json()
                    .is_some_and(|j| j["error"] == "invalid_grant")
        });
        let Some(refused) = refused else {
            return error("no refresh was answered invalid_grant (the PGO did not get that far)");
        };
        match self.back_channel().into_iter().find(|r| r.after(refused)) {
            Some(r) => fail(
                format!(
                    "after invalid_grant the PGO went on: {} {}",
                    r.x.method,
                    r.path()
                ),
                vec![refused.x.seq, r.x.seq],
            ),
            None => pass(
                "after invalid_grant the PGO sent nothing more",
                vec![refused.x.seq],
            ),
        }
    }

    /// The back channel must stay unused. With `refused_handshake`, the stimulus is the
    /// DVA's certificate, so it counts as delivered only when the DVA saw the PGO's handshake
    /// fail after the code was issued; otherwise the code being issued is all that can be seen
    /// (a host off the Whitelist is never contacted).
    fn no_back_channel(&self, refused_handshake: bool) -> Verdict {
        if self.all.is_empty() {
            return (
                Outcome::Skip,
                "the PGO never came to this practice: it may have refused before the authorization (conformant, but invisible here), or never tried".to_string(),
                Vec::new(),
            );
        }
        let Some(issued) = self.code_issued() else {
            return error("no code was issued (the login or consent did not complete)");
        };
        if let Some(r) = self.back_channel().first() {
            return fail(
                format!(
                    "the PGO sent {} {} to a back channel it must not use",
                    r.x.method,
                    r.path()
                ),
                vec![issued.x.seq, r.x.seq],
            );
        }
        if refused_handshake {
            return match self.notes.iter().find(|n| {
                n.seq > issued.x.seq
                    && n.response_body
                        .as_deref()
                        .is_some_and(|b| b.contains("back channel: TLS handshake refused"))
            }) {
                Some(n) => pass(
                    "the PGO broke off the TLS handshake with the back channel and sent nothing over it",
                    vec![issued.x.seq, n.seq],
                ),
                None => error(
                    "the PGO never tried the back channel after the code was issued, so its refusal of the certificate cannot be seen",
                ),
            };
        }
        pass(
            "a code was issued and the PGO sent nothing to the back channel it must not use",
            vec![issued.x.seq],
        )
    }

    fn https_only(&self) -> Verdict {
        let sent = self.all.iter().find(|r| {
            r.response_header("location")
                .is_some_and(|l| l.starts_with("http://"))
        });
        let Some(sent) = sent else {
            return error(
                "the DVA's redirect to http: was not sent (the PGO did not get that far)",
            );
        };
        match self.all.iter().find(|r| r.x.url.starts_with("http://")) {
            Some(r) => fail(
                "the PGO's browser followed a redirect to plain http:",
                vec![sent.x.seq, r.x.seq],
            ),
            None => pass(
                "the redirect to plain http: was not followed",
                vec![sent.x.seq],
            ),
        }
    }

    fn retries_server_error(&self) -> Verdict {
        let Some(failed) = self
            .resources()
            .into_iter()
            .find(|r| r.status() == Some(503))
        else {
            return error("no resource request was answered 503 (the PGO did not get that far)");
        };
        match self
            .resources()
            .into_iter()
            .find(|r| r.after(failed) && r.search_key() == failed.search_key())
        {
            Some(again) => pass(
                "the query answered 503 was asked again",
                vec![failed.x.seq, again.x.seq],
            ),
            None => fail(
                "the query answered 503 was never asked again: its data is lost",
                vec![failed.x.seq],
            ),
        }
    }

    fn waits(&self, e: &PgoExpectations) -> Verdict {
        // The DVA records a request whose connection was closed before its answer with no
        // status and the reason.
        if let Some(r) = self
            .resources()
            .into_iter()
            .find(|r| r.status().is_none() && r.x.transport_error.is_some())
        {
            return fail(
                format!(
                    "the PGO closed the connection after {} ms, before the answer due at {} ms",
                    r.x.elapsed_ms.unwrap_or(0),
                    e.slow_answer_ms
                ),
                vec![r.x.seq],
            );
        }
        let Some(slow) = self
            .resources()
            .into_iter()
            .find(|r| r.x.elapsed_ms.is_some_and(|ms| ms + 50 >= e.slow_answer_ms))
        else {
            return error("no resource answer was slow (the PGO did not get that far)");
        };
        // Asked again while the slow answer was pending: the PGO gave up waiting. Asking again
        // after the answer (a 401 to refresh for, say) is no such thing.
        if let Some(again) = self.resources().into_iter().find(|r| {
            r.x.seq != slow.x.seq
                && r.search_key() == slow.search_key()
                && r.received() > slow.received()
                && r.received() < slow.answered()
        }) {
            return fail(
                format!(
                    "the PGO did not wait {} ms for the answer and asked again meanwhile",
                    e.slow_answer_ms
                ),
                vec![slow.x.seq, again.x.seq],
            );
        }
        pass(
            format!(
                "the PGO waited {} ms for the slow answer",
                slow.x.elapsed_ms.unwrap_or(0)
            ),
            vec![slow.x.seq],
        )
    }

    fn collects_after_unknown_field(&self) -> Verdict {
        let Some(t) = self.code_exchanges().into_iter().find(|t| {
            t.status() == Some(200)
                && t.response_json()
                    .is_some_and(|j| j.get("koppeltest_extra").is_some())
        }) else {
            return error(
                "no token response with an unknown member was sent (the PGO did not get that far)",
            );
        };
        let asked: Vec<&Request<'a>> = self
            .resources()
            .into_iter()
            .filter(|r| r.after(t))
            .collect();
        let types: BTreeSet<&str> = asked
            .iter()
            .filter_map(|r| r.path().rsplit('/').next())
            .collect();
        let missing: Vec<&str> = QUERIES
            .iter()
            .filter(|(_, ty, _)| !types.contains(ty))
            .map(|(n, _, _)| *n)
            .collect();
        if missing.is_empty() {
            pass(
                "after a token response with unknown members the PGO asked all seven queries",
                vec![t.x.seq],
            )
        } else {
            fail(
                format!(
                    "after a token response with unknown members the PGO did not ask: {}",
                    missing.join(", ")
                ),
                vec![t.x.seq],
            )
        }
    }
}

/// An upper bound on the unpredictable bits in `state`, from its length and alphabet: digits
/// 3.3 bits a character, hex 4, base64url 6. A counter or a timestamp stays far below 128.
pub fn entropy_bits(state: &str) -> f64 {
    let per_char = if state.chars().all(|c| c.is_ascii_digit()) {
        10f64.log2()
    } else if state.chars().all(|c| c.is_ascii_hexdigit()) {
        4.0
    } else {
        6.0
    };
    let distinct: BTreeSet<char> = state.chars().collect();
    if distinct.len() < 4 {
        // "aaaa…" or "abab…": no entropy to speak of.
        return distinct.len() as f64;
    }
    state.chars().count() as f64 * per_char
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stu3_accept_rule_reads_media_ranges_and_their_parameters() {
        assert!(stu3_accept("application/fhir+json; fhirVersion=3.0"));
        assert!(stu3_accept("application/fhir+json;fhirVersion=\"3.0\""));
        assert!(stu3_accept(
            "application/fhir+json; fhirVersion=3.0, application/json;q=0.5"
        ));
        assert!(!stu3_accept("application/fhir+json; fhirVersion=4.0"));
        assert!(!stu3_accept(
            "application/fhir+json;fhirVersion=4.0, application/json;fhirVersion=3.0"
        ));
        assert!(!stu3_accept(
            "application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0"
        ));
        assert!(!stu3_accept("application/fhir+json"));
        assert!(!stu3_accept(""));
    }

    #[test]
    fn a_counter_or_a_repeated_pattern_is_far_below_128_bits() {
        assert!(entropy_bits("0001") < 20.0);
        assert!(entropy_bits("abababababababababababababababababab") < 4.0);
        assert!(entropy_bits(&"0123456789abcdef".repeat(2)) >= 128.0);
        assert!(entropy_bits("kH3_x9QzLw-8RtYb2NcVfA4e") >= 128.0);
    }

    #[test]
    fn a_uuid_with_a_redacted_digit_run_is_still_a_uuid() {
        assert!(is_uuid("304017e8-12eb-4a27-aedd-fe49a03c8537"));
        assert!(is_uuid("304017e8-12eb-4a27-aedd-[bsn]ab3"));
        assert!(!is_uuid("not-a-uuid"));
    }

    #[test]
    fn recorded_urls_keep_their_query_past_a_redaction_label() {
        let u = parse_url("https://dva.test/oauth/token?code=[code#1]&redirect_uri=x").unwrap();
        assert_eq!(
            u.query_pairs()
                .find(|(k, _)| k == "redirect_uri")
                .map(|(_, v)| v.into_owned()),
            Some("x".to_string())
        );
        let a = request_key(
            &parse_url("https://h/fhir/X?b=2&a=1&_page=2").unwrap(),
            &["_page"],
        );
        let b = request_key(&parse_url("https://h/fhir/X?a=1&b=2").unwrap(), &["_page"]);
        assert_eq!(a, b);
    }
}
