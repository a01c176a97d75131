//! The mock PGO: an OAuth 2.0 client and FHIR client that behaves as a MedMij PGO server does,
//! or, when a scenario says so, deliberately does not (missing parameters, no client
//! certificate, a replayed code).
//!
//! It resolves the practice through the ZAL, refuses hosts that are not on the Whitelist,
//! drives the front channel with its own [`browser`], and records every request and response in
//! the scenario's exchange log. It reports what happened as [`StepResult`]s; it never judges.

pub mod browser;
pub mod collect;
pub mod faults;

use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exchange::{ExchangeLog, Party, RawExchange};
use crate::fixtures::GpQuery;
use crate::lists::{Endpoints, Whitelist};
use crate::pki::Leaf;
use crate::scenario::{
    AuthorizeStep, BadClientCertificate, Bearer, ConsentChoice, Endpoint, FhirStep, RefreshStep,
    TokenStep, TvsLogin,
};
pub use crate::steps::{
    AuthorizeOutcome, AuthorizeResult, HttpOutcome, HttpResult, StepResult, TlsResult,
};
use crate::tls::{self, HostMap, TlsError};
pub use browser::Selectors;
pub use faults::PgoFault;

use crate::limits::{LOGGED_PAGE_BODY, MAX_REFRESHES};

/// The Afsprakenstelsel release a PGO speaks, which fixes its scope dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Release {
    /// 1.0: the scope is the gegevensdienst id (`49`).
    #[serde(rename = "1.0")]
    V1_0,
    /// Later 1.x: `naam~id` per service (`dewaard.huisartspraktijk.utrecht~49`).
    #[serde(rename = "1.x")]
    V1X,
    /// 2.2.x: the provider name without `@medmij`; one consent covers all its services.
    #[serde(rename = "2.2")]
    V2_2,
}

impl Release {
    pub fn label(self) -> &'static str {
        match self {
            Release::V1_0 => "1.0",
            Release::V1X => "1.x",
            Release::V2_2 => "2.2",
        }
    }
}

/// A PGO column of the matrix.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgoProfile {
    pub id: String,
    pub name: String,
    /// The PGO node's hostname on the OCL: the client_id, the redirect URI's host, the client
    /// certificate's name.
    pub hostname: String,
    pub redirect_uri: String,
    pub release: Release,
    #[serde(default = "default_services")]
    pub gegevensdiensten: Vec<String>,
    /// The Accept header for FHIR requests.
    #[serde(default = "default_accept")]
    pub accept: String,
    /// Send `date=ge<14 months ago>` with the lab-results query, as the qualification script
    /// does. Real PGOs send none; the DVA must exclude older results either way (by default).
    #[serde(default)]
    pub lab_date_filter: bool,
    /// `mock` (default): koppeltest's mock PGO plays this profile against every row.
    /// `external`: a real PGO with this profile; the mock PGO still plays it against the rows
    /// (the DVA side of the cell), and the PGO suite judges the real one (the PGO side).
    #[serde(default)]
    pub kind: PgoKind,
}

/// Who a PGO column is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PgoKind {
    #[default]
    Mock,
    External,
}

fn default_services() -> Vec<String> {
    vec!["49".into()]
}

fn default_accept() -> String {
    "application/fhir+json; fhirVersion=3.0".into()
}

impl PgoProfile {
    /// The scope for `practice` (`…@medmij`) in this profile's dialect.
    pub fn scope(&self, practice: &str) -> String {
        let naam = practice.trim_end_matches("@medmij");
        match self.release {
            Release::V1_0 => self.gegevensdiensten.join(" "),
            Release::V1X => self
                .gegevensdiensten
                .iter()
                .map(|g| format!("{naam}~{g}"))
                .collect::<Vec<_>>()
                .join(" "),
            Release::V2_2 => naam.to_string(),
        }
    }
}

/// Trust and identity for one PGO run.
#[derive(Debug, Clone)]
pub struct PgoTrust {
    pub front_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub back_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The PGO node's back-channel certificate (for mutual TLS).
    pub identity: Arc<Leaf>,
}

/// One mock PGO session against one practice.
pub struct Pgo {
    pub profile: PgoProfile,
    pub practice: String,
    pub endpoints: Endpoints,
    whitelist: Arc<Whitelist>,
    selectors: Selectors,
    tvs_host: Option<String>,
    /// The browser's TLS set-up; each authorization gets a fresh browser ([`Self::fresh_browser`]).
    browser_tls: rustls::ClientConfig,
    back: reqwest::Client,
    back_anonymous: reqwest::Client,
    log: ExchangeLog,
    /// One X-Correlation-ID per authorization, carried into token and resource requests.
    correlation_id: String,
    back_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    hosts: HostMap,
    other_identities: IdentityLookup,
    bad_identities: BadIdentityLookup,
    /// The redirect URI the last authorization request actually sent (it may be overridden).
    sent_redirect_uri: std::sync::Mutex<String>,
    witness: Option<String>,
    /// The last assertion-consumer URL (with its `SAMLart`) the TVS sent the browser to: what
    /// a `replay_artifact` login delivers again.
    last_artifact: std::sync::Mutex<Option<reqwest::Url>>,
    request_timeout: std::time::Duration,
    limits: crate::matrix::Limits,
    faults: std::collections::BTreeSet<PgoFault>,
    /// The one MedMij-Request-ID of [`PgoFault::RequestIdReused`].
    fixed_request_id: String,
}

/// Everything [`Pgo::new`] needs besides the clients it builds.
pub struct PgoSetup {
    pub profile: PgoProfile,
    pub practice: String,
    pub endpoints: Endpoints,
    pub whitelist: Arc<Whitelist>,
    pub selectors: Selectors,
    pub tvs_host: Option<String>,
    pub trust: PgoTrust,
    pub hosts: HostMap,
    pub log: ExchangeLog,
    /// Other PGO nodes' identities by hostname, for steps that act as another client.
    pub other_identities: IdentityLookup,
    /// Faulty client certificates for this node, for client-certificate scenarios; `None` where
    /// one cannot be made for the row (an expired certificate from a real CA, say).
    pub bad_identities: BadIdentityLookup,
    /// How long the browser and the back channel wait for one exchange (the matrix's
    /// `timeouts.request_ms`).
    pub request_timeout: std::time::Duration,
    /// The matrix's `[limits]`: largest body, most pages, most front-channel hops.
    pub limits: crate::matrix::Limits,
    /// Deliberate faults (only when the mock PGO plays a PGO under test); empty otherwise.
    pub faults: std::collections::BTreeSet<PgoFault>,
}

/// Finds a PGO node's back-channel identity by hostname.
pub type IdentityLookup = Arc<dyn Fn(&str) -> Option<Arc<Leaf>> + Send + Sync>;

/// Finds a faulty client certificate of one kind (never asked for `None`).
pub type BadIdentityLookup = Arc<dyn Fn(BadClientCertificate) -> Option<Arc<Leaf>> + Send + Sync>;

impl Pgo {
    pub fn new(setup: PgoSetup) -> Result<Pgo, TlsError> {
        let options = |cookies| tls::ClientOptions {
            timeout: setup.request_timeout,
            cookies,
        };
        let browser_tls = tls::client_config(&setup.trust.front_roots, None)?;
        let back_config = if setup.faults.contains(&PgoFault::CertificateUnchecked) {
            tls::client_config_unchecked(Some(&setup.trust.identity))?
        } else {
            tls::client_config(&setup.trust.back_roots, Some(&setup.trust.identity))?
        };
        let back = tls::http_client(back_config, &setup.hosts, options(None))?;
        let back_anonymous = tls::http_client(
            tls::client_config(&setup.trust.back_roots, None)?,
            &setup.hosts,
            options(None),
        )?;
        Ok(Pgo {
            profile: setup.profile,
            practice: setup.practice,
            endpoints: setup.endpoints,
            whitelist: setup.whitelist,
            selectors: setup.selectors,
            tvs_host: setup.tvs_host,
            browser_tls,
            back,
            back_anonymous,
            log: setup.log,
            correlation_id: crate::ids::uuid_v4(),
            sent_redirect_uri: std::sync::Mutex::new(String::new()),
            back_roots: setup.trust.back_roots.clone(),
            hosts: setup.hosts.clone(),
            other_identities: setup.other_identities,
            bad_identities: setup.bad_identities,
            witness: None,
            last_artifact: std::sync::Mutex::new(None),
            request_timeout: setup.request_timeout,
            limits: setup.limits,
            faults: setup.faults,
            fixed_request_id: crate::ids::uuid_v4(),
        })
    }

    pub fn has(&self, fault: PgoFault) -> bool {
        self.faults.contains(&fault)
    }

    /// A new MedMij-Request-ID (the same one every time under [`PgoFault::RequestIdReused`]).
    fn request_id(&self) -> String {
        if self.has(PgoFault::RequestIdReused) {
            self.fixed_request_id.clone()
        } else {
            crate::ids::uuid_v4()
        }
    }

    /// The Whitelist check before any connection ([`PgoFault::WhitelistIgnored`] skips it).
    fn whitelisted(&self, uri: &str) -> Result<(), crate::lists::ListError> {
        if self.has(PgoFault::WhitelistIgnored) {
            return Ok(());
        }
        self.whitelist.check(uri)
    }

    /// The X-Correlation-ID of this session's authorization.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// The tag a shared mock TVS files this scenario's artifact resolutions under; the PGO's
    /// browser submits it with the TVS login form.
    pub fn set_witness(&mut self, tag: String) {
        self.witness = Some(tag);
    }

    fn party_of(&self, url: &reqwest::Url) -> Party {
        match (&self.tvs_host, url.host_str()) {
            (Some(tvs), Some(h)) if tvs == h => Party::Tvs,
            _ => Party::Dva,
        }
    }

    /// Sends `req`, records it, and returns what came back.
    async fn send(
        &self,
        client: &reqwest::Client,
        from: Party,
        req: reqwest::Request,
    ) -> HttpResult {
        self.send_logged(client, from, req, crate::exchange::MAX_LOGGED_BODY)
            .await
    }

    /// [`Self::send`], logging at most `logged_body_limit` bytes of each body.
    async fn send_logged(
        &self,
        client: &reqwest::Client,
        from: Party,
        req: reqwest::Request,
        logged_body_limit: usize,
    ) -> HttpResult {
        let to = self.party_of(req.url());
        let mut x = RawExchange::request(from, to, req.method().as_str(), req.url().as_str());
        x.logged_body_limit = logged_body_limit;
        x.request_headers = header_pairs(req.headers());
        x.request_body = req
            .body()
            .and_then(|b| b.as_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let started = Instant::now();
        let outcome = match client.execute(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = header_pairs(resp.headers());
                match unreadable(&headers) {
                    Some(reason) => HttpOutcome::Transport { reason },
                    None => match tls::read_limited(resp, self.limits.max_body()).await {
                        Ok(body) => match undecodable(&headers, &body) {
                            Some(reason) => HttpOutcome::Transport { reason },
                            None => HttpOutcome::Response {
                                status,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            },
                        },
                        Err(reason) => HttpOutcome::Transport { reason },
                    },
                }
            }
            Err(e) => HttpOutcome::Transport {
                reason: tls::error_chain(&e),
            },
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            HttpOutcome::Response {
                status,
                headers,
                body,
            } => {
                x.status = Some(*status);
                x.response_headers = headers.clone();
                x.response_body = Some(body.clone());
            }
            HttpOutcome::Transport { reason } => x.transport_error = Some(reason.clone()),
        }
        let seq = self.log.record(x);
        HttpResult {
            seq: Some(seq),
            outcome,
            elapsed_ms,
            pages: Vec::new(),
            paging_stopped: None,
            paging_notes: Vec::new(),
            parsed: std::sync::OnceLock::new(),
        }
    }

    fn medmij_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&self.request_id()) {
            h.insert("MedMij-Request-ID", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.correlation_id) {
            h.insert("X-Correlation-ID", v);
        }
        h
    }

    /// A browser with an empty cookie jar: every authorization is a session of its own, so a
    /// DVA cannot tell a scenario's control step from its faulty one by session state.
    fn fresh_browser(&self) -> Result<reqwest::Client, TlsError> {
        tls::http_client(
            self.browser_tls.clone(),
            &self.hosts,
            tls::ClientOptions {
                timeout: self.request_timeout,
                cookies: Some(Arc::new(reqwest::cookie::Jar::default())),
            },
        )
    }

    /// Drives the front channel from the authorization request until the browser is sent back
    /// to the redirect URI or stops.
    pub async fn authorize(&self, step: &AuthorizeStep, login: &TvsLogin) -> AuthorizeResult {
        let mut evidence = Vec::new();
        let broken = |reason: String, seq, evidence: Vec<usize>, sent_state: Option<String>| {
            AuthorizeResult {
                sent_state,
                outcome: AuthorizeOutcome::Broken { reason, seq },
                evidence,
            }
        };
        // 128 bits: RFC 6749 §10.10 asks for a value an attacker cannot guess.
        let state = crate::ids::random_hex(16);
        let mut params: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), self.profile.hostname.clone()),
            ("redirect_uri".into(), self.profile.redirect_uri.clone()),
            ("scope".into(), self.profile.scope(&self.practice)),
            ("state".into(), state),
            ("MedMij-Request-ID".into(), self.request_id()),
            ("X-Correlation-ID".into(), self.correlation_id.clone()),
        ];
        let set = self.expand(&step.set);
        apply_overrides(&mut params, &set, &step.omit);
        if let Some((_, uri)) = params.iter().find(|(k, _)| k == "redirect_uri") {
            *self
                .sent_redirect_uri
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = uri.clone();
        }
        let sent_state = params
            .iter()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.clone());
        if let Err(e) = self.whitelisted(&self.endpoints.authorization) {
            return broken(
                format!("the PGO refuses to connect: {e}"),
                None,
                evidence,
                sent_state,
            );
        }
        let mut url = match reqwest::Url::parse(&self.endpoints.authorization) {
            Ok(mut u) => {
                u.query_pairs_mut().extend_pairs(params.iter());
                u
            }
            Err(e) => {
                return broken(
                    format!("AuthorizationEndpointuri is not a URL: {e}"),
                    None,
                    evidence,
                    sent_state,
                );
            }
        };
        let browser = match self.fresh_browser() {
            Ok(b) => b,
            Err(e) => {
                return broken(
                    format!("could not set up the browser: {e}"),
                    None,
                    evidence,
                    sent_state,
                );
            }
        };
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..self.limits.max_redirects {
            let req = match &form {
                Some(fields) => browser.post(url.clone()).form(fields),
                None => browser.get(url.clone()),
            }
            .header(reqwest::header::ACCEPT, "text/html,application/xhtml+xml");
            let req = match req.build() {
                Ok(r) => r,
                Err(e) => {
                    return broken(
                        format!("could not build the request: {e}"),
                        None,
                        evidence,
                        sent_state,
                    );
                }
            };
            let result = self.send(&browser, Party::Browser, req).await;
            let seq = result.seq.unwrap_or_default();
            evidence.push(seq);
            let (status, body) = match &result.outcome {
                HttpOutcome::Transport { reason } => {
                    return broken(reason.clone(), Some(seq), evidence, sent_state);
                }
                HttpOutcome::Response { status, body, .. } => (*status, body.clone()),
            };
            if (300..400).contains(&status) {
                let Some(next) = result.header("location").and_then(|l| url.join(l).ok()) else {
                    return broken(
                        format!("HTTP {status} without a usable Location"),
                        Some(seq),
                        evidence,
                        sent_state,
                    );
                };
                if self.is_redirect_uri(&next) {
                    let params = next.query_pairs().into_owned().collect();
                    return AuthorizeResult {
                        sent_state,
                        outcome: AuthorizeOutcome::RedirectedBack { params, seq },
                        evidence,
                    };
                }
                if let Err(reason) = self.may_browse(&next) {
                    return broken(reason, Some(seq), evidence, sent_state);
                }
                if next.query_pairs().any(|(k, _)| k == "SAMLart") {
                    *self.last_artifact.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(next.clone());
                }
                url = next;
                form = None;
                continue;
            }
            if let Some(reason) = browser::too_deep(&body) {
                return broken(reason, Some(seq), evidence, sent_state);
            }
            let page_title = browser::title(&body);
            let Some((target, fields, method)) = self.next_form(&body, &url, step, login) else {
                return AuthorizeResult {
                    sent_state,
                    outcome: AuthorizeOutcome::Page {
                        status,
                        title: page_title,
                        seq,
                    },
                    evidence,
                };
            };
            if let Err(reason) = self.may_browse(&target) {
                return broken(reason, Some(seq), evidence, sent_state);
            }
            url = target;
            form = (method == "post").then_some(fields.clone());
            if method != "post" {
                url.query_pairs_mut().extend_pairs(fields.iter());
            }
        }
        broken(
            format!(
                "more than {} hops without reaching the redirect URI",
                self.limits.max_redirects
            ),
            None,
            evidence,
            sent_state,
        )
    }

    /// Whether the browser may go to `url` (a redirect's Location or a form's action) on the
    /// DVA's say-so: only https, and only to a host on the Whitelist or the TVS's. A hostile DVA
    /// could otherwise send koppeltest to `file:` URLs, plain http, or any host on the network.
    /// (The redirect URI itself is recognised before this is asked.)
    fn may_browse(&self, url: &reqwest::Url) -> Result<(), String> {
        if url.scheme() == "http" && self.has(PgoFault::HttpFollowed) {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(format!(
                "the DVA sent the browser to a {}: URL ({}); the browser follows https only",
                url.scheme(),
                crate::limits::shorten(url.as_str())
            ));
        }
        let host = url.host_str().unwrap_or_default();
        if self.tvs_host.as_deref() == Some(host) || self.whitelisted(url.as_str()).is_ok() {
            return Ok(());
        }
        Err(format!(
            "the DVA sent the browser to {host}, a host off the Whitelist (and not the TVS)"
        ))
    }

    /// Whether `url` goes to the redirect URI this authorization sent (ignoring query and
    /// fragment, so a DVA that accepted a malformed redirect URI is still seen to use it).
    fn is_redirect_uri(&self, url: &reqwest::Url) -> bool {
        let bare = |u: &reqwest::Url| {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.path().trim_end_matches('/')
            )
        };
        let sent = self
            .sent_redirect_uri
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let profile = reqwest::Url::parse(&self.profile.redirect_uri).ok();
        [reqwest::Url::parse(&sent).ok(), profile]
            .iter()
            .flatten()
            .any(|r| bare(r) == bare(url))
    }

    /// Expands `{practice}`, `{client_id}`, `{redirect_uri}`, `{redirect_uri_encoded}`.
    fn expand(
        &self,
        set: &std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        let encoded: String =
            url::form_urlencoded::byte_serialize(self.profile.redirect_uri.as_bytes()).collect();
        set.iter()
            .map(|(k, v)| {
                let v = v
                    .replace("{practice}", self.practice.trim_end_matches("@medmij"))
                    .replace("{client_id}", &self.profile.hostname)
                    .replace("{redirect_uri_encoded}", &encoded)
                    .replace("{redirect_uri}", &self.profile.redirect_uri);
                (k.clone(), v)
            })
            .collect()
    }

    /// The form a person (or a browser's JavaScript) would submit next on this page.
    fn next_form(
        &self,
        html: &str,
        base: &reqwest::Url,
        step: &AuthorizeStep,
        login: &TvsLogin,
    ) -> Option<NextForm> {
        let forms = browser::forms(html);
        let s = &self.selectors;
        let pick = |f: &browser::Form, fields: Vec<(String, String)>| {
            Some((base.join(&f.action).ok()?, fields, f.method.clone()))
        };
        if let Some(f) = forms.iter().find(|f| f.is_saml_autopost()) {
            return pick(f, f.submission(&[], None));
        }
        if let Some(f) = forms.iter().find(|f| f.matches(&s.tvs_login.form)) {
            if login.replay_artifact {
                // Instead of logging in: the earlier login's artifact, delivered again (no
                // earlier artifact leaves the browser on the TVS's page).
                let earlier = self
                    .last_artifact
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()?;
                return Some((earlier, Vec::new(), "get".to_string()));
            }
            let mut overrides = Vec::new();
            if let Some(fault) = login.fault {
                overrides.push(("fault", fault.name()));
            }
            if let Some(loa) = login.loa {
                overrides.push(("loa", serde_json::to_value(loa).ok()?.as_str()?.to_string()));
            }
            if let Some(bsn) = &login.bsn {
                overrides.push(("bsn", bsn.clone()));
            }
            if let Some(tag) = &self.witness {
                overrides.push(("witness", tag.clone()));
            }
            let button = if login.cancel {
                s.tvs_login.refuse.as_deref()
            } else {
                Some(s.tvs_login.submit.as_str())
            };
            return pick(f, f.submission(&overrides, button));
        }
        if let Some(f) = forms.iter().find(|f| f.matches(&s.consent.form)) {
            let button = match step.consent {
                ConsentChoice::Approve => Some(s.consent.submit.as_str()),
                ConsentChoice::Deny => s.consent.refuse.as_deref(),
            };
            return pick(f, f.submission(&[], button));
        }
        if let Some(f) = forms.iter().find(|f| f.matches(&s.landing.form)) {
            return pick(f, f.submission(&[], Some(&s.landing.submit)));
        }
        None
    }

    /// Exchanges `code` at the token endpoint.
    /// Whether this session can act as `host` (a step needing it is skipped otherwise).
    pub fn can_act_as(&self, host: &str) -> bool {
        (self.other_identities)(host).is_some()
    }

    pub async fn token(&self, step: &TokenStep, code: &str) -> HttpResult {
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.to_string()),
            ("redirect_uri".into(), self.profile.redirect_uri.clone()),
            ("client_id".into(), self.profile.hostname.clone()),
        ];
        let other;
        let client = match &step.as_client {
            Some(host) => {
                let Some(identity) = (self.other_identities)(host) else {
                    return HttpResult::broken(format!(
                        "no client certificate for {host} to act as"
                    ));
                };
                other = match tls::client_config(&self.back_roots, Some(&identity))
                    .and_then(|c| tls::http_client(c, &self.hosts, tls::ClientOptions::default()))
                {
                    Ok(c) => c,
                    Err(e) => return HttpResult::broken(e.to_string()),
                };
                if let Some(p) = form.iter_mut().find(|(k, _)| k == "client_id") {
                    p.1 = host.clone();
                }
                &other
            }
            None => {
                // `client_certificate = false` is the older spelling of `bad_certificate = "none"`.
                let bad = match (step.bad_certificate, step.client_certificate) {
                    (None, false) => Some(BadClientCertificate::None),
                    (bad, _) => bad,
                };
                other = match self.client_with(bad) {
                    Ok(c) => c,
                    Err(result) => return result,
                };
                &other
            }
        };
        apply_overrides(&mut form, &self.expand(&step.set), &step.omit);
        if step.in_query {
            return self.post_token_in_query(client, &form).await;
        }
        self.post_token(client, &form).await
    }

    /// Whether a step with `bad` can run here: a faulty certificate of that kind exists for
    /// this row (the runner skips the step otherwise).
    pub fn can_present(&self, bad: Option<BadClientCertificate>) -> bool {
        match bad {
            None | Some(BadClientCertificate::None) => true,
            Some(kind) => (self.bad_identities)(kind).is_some(),
        }
    }

    /// The back-channel client for a step: the node's own certificate (`None`), no certificate
    /// (`Some(None)`), or the faulty one; `Err` with the step's result when it cannot be made.
    fn client_with(
        &self,
        bad: Option<BadClientCertificate>,
    ) -> Result<reqwest::Client, HttpResult> {
        let kind = match bad {
            None => return Ok(self.back.clone()),
            Some(BadClientCertificate::None) => return Ok(self.back_anonymous.clone()),
            Some(kind) => kind,
        };
        let Some(identity) = (self.bad_identities)(kind) else {
            return Err(HttpResult::broken(format!(
                "no {} can be made for this row",
                kind.label()
            )));
        };
        tls::client_config(&self.back_roots, Some(&identity))
            .and_then(|c| tls::http_client(c, &self.hosts, tls::ClientOptions::default()))
            .map_err(|e| HttpResult::broken(e.to_string()))
    }

    /// Probes one endpoint's TLS at the wire and records the chain it presents.
    pub async fn tls_scan(&self, endpoint: Endpoint) -> Result<TlsResult, String> {
        let url = match endpoint {
            Endpoint::Authorization => &self.endpoints.authorization,
            Endpoint::Token => &self.endpoints.token,
            Endpoint::Resource => &self.endpoints.resource,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("{url} has no host"))?
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addr = match self.hosts.get(&host) {
            Some(addr) => *addr,
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host} resolves to no address"))?,
        };
        let target = crate::probe::ProbeTarget {
            host: host.clone(),
            addr,
        };
        let options = crate::probe::ProbeOptions::default();
        let (scan, chain) = tokio::join!(
            crate::probe::scan(&target, &options),
            tls::presented_chain(addr, &host, options.timeout)
        );
        let (chain, chain_error) = match chain {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        self.log.record(RawExchange::note(
            Party::Pgo,
            Party::Dva,
            format!(
                "TLS scan of the {} endpoint {host} ({addr}): {} probes in {} ms, {} certificates",
                endpoint.label(),
                scan.versions.len() + scan.suites.len() + scan.groups.len(),
                scan.duration_ms,
                chain.len()
            ),
        ));
        Ok(TlsResult {
            endpoint: endpoint.label().to_string(),
            back_channel: endpoint.is_back_channel(),
            host,
            scan,
            chain,
            chain_error,
        })
    }

    /// The legacy shape: parameters in the query string, an empty body.
    async fn post_token_in_query(
        &self,
        client: &reqwest::Client,
        form: &[(String, String)],
    ) -> HttpResult {
        if let Err(e) = self.whitelisted(&self.endpoints.token) {
            return HttpResult::broken(format!("the PGO refuses to connect: {e}"));
        }
        let req = client
            .post(&self.endpoints.token)
            .headers(self.medmij_headers())
            .query(form)
            .build();
        match req {
            Ok(req) => self.send(client, Party::Pgo, req).await,
            Err(e) => HttpResult::broken(format!("could not build the token request: {e}")),
        }
    }

    /// Uses a refresh token.
    pub async fn refresh(&self, step: &RefreshStep, refresh_token: &str) -> HttpResult {
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), refresh_token.to_string()),
            ("client_id".into(), self.profile.hostname.clone()),
        ];
        apply_overrides(&mut form, &step.set, &[]);
        self.post_token(&self.back, &form).await
    }

    async fn post_token(&self, client: &reqwest::Client, form: &[(String, String)]) -> HttpResult {
        if let Err(e) = self.whitelisted(&self.endpoints.token) {
            return HttpResult::broken(format!("the PGO refuses to connect: {e}"));
        }
        let req = client
            .post(&self.endpoints.token)
            .headers(self.medmij_headers())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .build();
        match req {
            Ok(req) => self.send(client, Party::Pgo, req).await,
            Err(e) => HttpResult::broken(format!("could not build the token request: {e}")),
        }
    }

    /// Runs one gegevensdienst-49 query with `access_token`.
    pub async fn fhir(
        &self,
        query: &GpQuery,
        step: &FhirStep,
        access_token: Option<&str>,
        refresh_token: Option<String>,
    ) -> HttpResult {
        if let Err(e) = self.whitelisted(&self.endpoints.resource) {
            return HttpResult::broken(format!("the PGO refuses to connect: {e}"));
        }
        let today = time::OffsetDateTime::now_utc().date().to_string();
        let mut relative = query.path.replace("{today}", &today);
        if query.name == "results" && self.profile.lab_date_filter {
            let since = crate::fixtures::lab_window_start(time::OffsetDateTime::now_utc().date());
            relative.push_str(&format!("&date=ge{since}"));
        }
        let url = resource_url(&self.endpoints.resource, &relative);
        let accept = step.accept.as_deref().unwrap_or(&self.profile.accept);
        let client = match self.client_with(step.bad_certificate) {
            Ok(c) => c,
            Err(result) => return result,
        };
        let client = &client;
        let mut req = client
            .get(&url)
            .headers(self.medmij_headers())
            .header(reqwest::header::ACCEPT, accept);
        if !step.params.is_empty() {
            req = req.query(&step.params);
        }
        let req = match (step.bearer, access_token) {
            (Bearer::Missing, _) => req,
            (Bearer::Unknown, _) => req.bearer_auth(crate::ids::random_hex(32)),
            (Bearer::FromStep, Some(token)) => req.bearer_auth(token),
            (Bearer::FromStep, None) => {
                return HttpResult::broken("no access token to send".into());
            }
        }
        .build();
        let mut first = match req {
            Ok(req) => self.send(client, Party::Pgo, req).await,
            Err(e) => return HttpResult::broken(format!("could not build the FHIR request: {e}")),
        };
        if let (Some(token), true) = (access_token, step.bearer == Bearer::FromStep) {
            self.follow_pages(&mut first, token.to_string(), refresh_token)
                .await;
        }
        first
    }

    /// One resource request as a PGO collecting on its own makes it (`koppeltest mock-pgo`):
    /// `url` with `token` as Bearer (or, under [`PgoFault::BearerInQuery`], in the query).
    pub async fn get_resource(&self, url: &str, token: &str, accept: &str) -> HttpResult {
        if let Err(e) = self.whitelisted(url) {
            return HttpResult::broken(format!("the PGO refuses to connect: {e}"));
        }
        let mut req = self
            .back
            .get(url)
            .headers(self.medmij_headers())
            .header(reqwest::header::ACCEPT, accept);
        req = if self.has(PgoFault::BearerInQuery) {
            req.query(&[("access_token", token)])
        } else {
            req.bearer_auth(token)
        };
        match req.build() {
            Ok(req) => self.send(&self.back, Party::Pgo, req).await,
            Err(e) => HttpResult::broken(format!("could not build the FHIR request: {e}")),
        }
    }

    /// Fetches the further pages of a searchset through its `next` links, as a PGO must to get
    /// the whole record. Only links on the resource endpoint's own host are followed; a link
    /// seen before or more than the matrix's `limits.max_pages` pages stop it, with the reason kept. When the
    /// access token expires on the way (HTTP 401), the PGO refreshes it, as a real one would,
    /// up to [`MAX_REFRESHES`] times, and asks for the page again.
    async fn follow_pages(
        &self,
        first: &mut HttpResult,
        mut token: String,
        mut refresh: Option<String>,
    ) {
        let resource_host = reqwest::Url::parse(&self.endpoints.resource)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        let mut seen = std::collections::BTreeSet::new();
        let mut refreshes = 0;
        let mut next = first.next_link();
        while let Some(link) = next.take() {
            let stop = |why: String| Some(format!("stopped following next links: {why}"));
            let url = match reqwest::Url::parse(&link) {
                Ok(u) => u,
                Err(e) => {
                    first.paging_stopped = stop(format!("unparsable next link: {e}"));
                    break;
                }
            };
            if url.host_str().map(str::to_string) != resource_host || url.scheme() != "https" {
                first.paging_stopped = stop(format!(
                    "the next link leaves the resource endpoint ({})",
                    url.host_str().unwrap_or("no host")
                ));
                break;
            }
            if !seen.insert(link.clone()) {
                first.paging_stopped = stop("a next link repeats an earlier page".into());
                break;
            }
            if first.pages.len() + 1 >= self.limits.max_pages {
                first.paging_stopped = stop(format!("more than {} pages", self.limits.max_pages));
                break;
            }
            let req = self
                .back
                .get(url)
                .headers(self.medmij_headers())
                .header(reqwest::header::ACCEPT, &self.profile.accept)
                .bearer_auth(&token)
                .build();
            let page = match req {
                Ok(req) => {
                    self.send_logged(&self.back, Party::Pgo, req, LOGGED_PAGE_BODY)
                        .await
                }
                Err(e) => {
                    first.paging_stopped = stop(format!("could not build the request: {e}"));
                    break;
                }
            };
            let expired = matches!(page.outcome, HttpOutcome::Response { status: 401, .. });
            if expired && refreshes < MAX_REFRESHES {
                if let Some(renewed) = self.renew(refresh.as_deref()).await {
                    refreshes += 1;
                    first.paging_notes.push(format!(
                        "the access token expired after {} page(s); the PGO refreshed it and asked again",
                        first.pages.len() + 1
                    ));
                    (token, refresh) = renewed;
                    seen.remove(&link);
                    next = Some(link);
                    continue;
                }
            }
            next = page.next_link();
            first.pages.push(page);
        }
    }

    /// A new access and refresh token for `refresh_token`, if the DVA grants one.
    async fn renew(&self, refresh_token: Option<&str>) -> Option<(String, Option<String>)> {
        let form: Vec<(String, String)> = vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), refresh_token?.to_string()),
            ("client_id".into(), self.profile.hostname.clone()),
        ];
        let answer = self.post_token(&self.back, &form).await.json()?;
        let access = answer["access_token"].as_str()?.to_string();
        let refresh = answer["refresh_token"]
            .as_str()
            .map(str::to_string)
            .or_else(|| refresh_token.map(str::to_string));
        Some((access, refresh))
    }
}

/// Joins a FHIR base and a relative query, never doubling a `/fhir` the base already ends in.
pub fn resource_url(base: &str, relative: &str) -> String {
    let base = base.trim_end_matches('/');
    let relative = relative.trim_start_matches('/');
    let relative = if base.ends_with("/fhir") {
        relative.strip_prefix("fhir/").unwrap_or(relative)
    } else {
        relative
    };
    format!("{base}/{relative}")
}

/// Where the browser goes next: URL, fields, method.
type NextForm = (reqwest::Url, Vec<(String, String)>, String);

fn apply_overrides(
    params: &mut Vec<(String, String)>,
    set: &std::collections::BTreeMap<String, String>,
    omit: &[String],
) {
    for (k, v) in set {
        match params.iter_mut().find(|(pk, _)| pk == k) {
            Some(p) => p.1 = v.clone(),
            None => params.push((k.clone(), v.clone())),
        }
    }
    params.retain(|(k, _)| !omit.contains(k));
}

/// Why a body cannot be read at all, judged on the head alone: a content coding the PGO never
/// asked for (it sends no Accept-Encoding and decodes nothing), so a gzip or deflate bomb is
/// never inflated and not even downloaded.
fn unreadable(headers: &[(String, String)]) -> Option<String> {
    let coding = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, v)| v.trim())?;
    (!coding.eq_ignore_ascii_case("identity")).then(|| {
        format!(
            "the body has Content-Encoding {}, which the PGO did not ask for; koppeltest reads identity-encoded bodies only",
            crate::limits::shorten(coding)
        )
    })
}

/// Why a body that was read is no text the judge may see: JSON (and FHIR JSON) must be UTF-8
/// (RFC 8259 §8.1); read lossily, invalid bytes would become U+FFFD and the body could pass.
fn undecodable(headers: &[(String, String)], body: &[u8]) -> Option<String> {
    let json = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type") && v.to_ascii_lowercase().contains("json")
    });
    let Err(e) = std::str::from_utf8(body) else {
        return None;
    };
    json.then(|| {
        format!(
            "the JSON body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })
}

fn header_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(release: Release) -> PgoProfile {
        PgoProfile {
            id: "p".into(),
            name: "p".into(),
            hostname: "medmij.pgo.koppeltest.test".into(),
            redirect_uri: "https://medmij.pgo.koppeltest.test/cb".into(),
            release,
            gegevensdiensten: vec!["48".into(), "49".into()],
            accept: default_accept(),
            lab_date_filter: false,
            kind: PgoKind::Mock,
        }
    }

    #[test]
    fn scope_dialects_follow_the_release() {
        let practice = "dewaard.huisartspraktijk.utrecht@medmij";
        assert_eq!(profile(Release::V1_0).scope(practice), "48 49");
        assert_eq!(
            profile(Release::V1X).scope(practice),
            "dewaard.huisartspraktijk.utrecht~48 dewaard.huisartspraktijk.utrecht~49"
        );
        assert_eq!(
            profile(Release::V2_2).scope(practice),
            "dewaard.huisartspraktijk.utrecht"
        );
    }

    #[test]
    fn a_base_ending_in_fhir_is_not_doubled() {
        assert_eq!(
            resource_url("https://d/fhir", "Patient"),
            "https://d/fhir/Patient"
        );
        assert_eq!(
            resource_url("https://d/fhir/", "fhir/Patient"),
            "https://d/fhir/Patient"
        );
        assert_eq!(
            resource_url("https://d/api", "Patient"),
            "https://d/api/Patient"
        );
    }

    #[test]
    fn overrides_replace_add_and_omit() {
        let mut p = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        let set = [
            ("a".to_string(), "9".to_string()),
            ("c".to_string(), "3".to_string()),
        ]
        .into_iter()
        .collect();
        apply_overrides(&mut p, &set, &["b".to_string()]);
        assert_eq!(p, vec![("a".into(), "9".into()), ("c".into(), "3".into())]);
    }
}
