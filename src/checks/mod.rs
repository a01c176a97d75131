//! Checks: pure functions from a scenario's step results and its recorded exchanges to an
//! [`Outcome`] with a message and evidence (exchange sequence numbers). No I/O, so every branch
//! has a fast unit test (`tests.rs`); the integration tests prove each check fails against a
//! named quirk or fault over the wire.
//!
//! One module per family: `authorize` (code, state, error redirects, refused logins, error
//! pages), `saml` (the DVA's own AuthnRequest and ArtifactResolve, and its decision on a level
//! of assurance), `token`, `resource`, `record` (the GP record against the manifest) and
//! `searchset`.
//! This module holds what they share: [`evaluate`], the proof of cause for negative checks
//! (their control step, [`CheckSpec::control`]) and the vocabulary of verdicts.
//!
//! **Boundary:** the judge imports nothing from the parties it judges (`dva`, `tvs`, `pgo`) or
//! from the `runner`, nor the `saml` module those parties share; `tests/it/boundaries.rs` fails
//! when such an import appears.
//!
//! Every check kind names the requirements it verifies ([`requirements`]); a scenario can add
//! its own (`requirements = [...]`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::exchange::{Exchange, Party};
use crate::fixtures::gp_query;
use crate::outcome::Outcome;
use crate::scenario::{CheckSpec, Scenario, Stage, Step};

mod authorize;
pub mod pgo;
mod record;
mod resource;
mod saml;
mod searchset;
mod tls;
mod token;

use self::authorize::*;
pub use self::record::journal_line_type;
use self::record::*;
use self::resource::*;
pub use self::saml::per_login;
use self::saml::*;
use self::searchset::*;
pub use self::tls::{Class, Edition, TlsPolicy, earliest_expiry_days, suite_class, worst_class};
use self::token::*;
use crate::steps::{AuthorizeOutcome, AuthorizeResult, HttpOutcome, HttpResult, StepResult};

/// Error codes RFC 6749 defines for the authorization (§4.1.2.1) and token (§5.2) endpoints.
pub const RFC6749_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
];

/// MedMij's response-time budgets, configurable per matrix (tests shorten them).
#[derive(Debug, Clone, Copy, serde::Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// core.tknint.206: the token endpoint answers within 10 s.
    #[serde(default = "token_budget")]
    pub token_ms: u64,
    /// core.rscint.202: the resource endpoint answers within 60 s.
    #[serde(default = "resource_budget")]
    pub resource_ms: u64,
    /// The largest acceptable `expires_in` of an access token (900 s everywhere in practice).
    #[serde(default = "max_expires_in")]
    pub max_expires_in_s: u64,
}

fn max_expires_in() -> u64 {
    900
}

fn token_budget() -> u64 {
    10_000
}

fn resource_budget() -> u64 {
    60_000
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            token_ms: token_budget(),
            resource_ms: resource_budget(),
            max_expires_in_s: max_expires_in(),
        }
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct CheckResult {
    pub kind: String,
    pub step: String,
    pub outcome: Outcome,
    pub message: String,
    pub requirements: Vec<String>,
    /// Exchange sequence numbers that show what the verdict rests on.
    pub evidence: Vec<usize>,
    /// The failure is a privacy failure: something the patient must not see was shared. The
    /// most severe class; every report makes it stand out.
    pub privacy: bool,
    /// `dataset-complete` only: what was missing and what leaked, item by item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetFinding>,
}

/// The set comparison behind a `dataset-complete` verdict, for the report's category summary.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct DatasetFinding {
    /// The gegevensdienst-49 query (`medication`, `results`, …).
    pub query: String,
    /// How many items the manifest expects from it.
    pub expected: usize,
    /// How many of those were not returned.
    pub missing_count: usize,
    /// The first [`LISTED_ITEMS`] missing items (fixture-item identifiers).
    pub missing: Vec<String>,
    /// Everything shared that must not be.
    pub leaked: Vec<LeakedItem>,
}

/// How many missing items a finding and a message list by name.
pub const LISTED_ITEMS: usize = 20;

/// `shown` joined by `separator`, then "and N more" for the rest of `total`.
pub fn some_of<'a>(
    shown: impl IntoIterator<Item = &'a str>,
    total: usize,
    separator: &str,
) -> String {
    let shown: Vec<&str> = shown.into_iter().collect();
    let more = total.saturating_sub(shown.len());
    let mut text = shown.join(separator);
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct LeakedItem {
    /// The fixture item, or the resource that carried a leaked part (S/O lines).
    pub item: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LabWindowPolicy {
    /// The DVA leaves them out whatever the PGO asks (default).
    #[default]
    DvaExcludes,
    /// Only a PGO that sends `date=ge…` may rely on their absence.
    PgoFilters,
}

/// What a check may know besides the step results.
pub struct Context<'a> {
    pub budgets: &'a Budgets,
    pub manifest: &'a crate::fixtures::Manifest,
    /// The BSN the mock TVS logged in.
    pub bsn: &'a str,
    pub lab_window: LabWindowPolicy,
    /// Whether this cell's PGO profile sends a date filter with the lab-results query.
    pub lab_date_filter: bool,
    /// The scenario's recorded exchanges (redacted): where a negative check finds proof that
    /// its stimulus reached the party under test, and at which stage it was refused.
    pub exchanges: &'a [Exchange],
    /// The gegevensdiensten this cell's PGO asked for: what a token must grant.
    pub gegevensdiensten: &'a [String],
    /// The NCSC edition that decides, the expiry threshold and each channel's trust anchors.
    pub tls: &'a TlsPolicy,
    /// What the DVA's own SAML messages must say, and the row's minimum level of assurance.
    pub saml: &'a SamlExpectations,
}

/// What the judge expects of a row's DVA as a SAML service provider, from the row's
/// configuration and metadata (`None` where the row does not say).
#[derive(Debug, Clone, Default)]
pub struct SamlExpectations {
    /// The DV's registered entityID: the AuthnRequest's Issuer.
    pub dv_entity_id: Option<String>,
    /// The TVS's SingleSignOnService URL: the AuthnRequest's Destination.
    pub tvs_sso_url: Option<String>,
    /// The host the DVA's back-channel certificate names (the ZAL's token endpoint host): the
    /// certificate an ArtifactResolve must come with.
    pub dva_back_host: Option<String>,
    /// The row's minimum level of assurance, as its eID URI
    /// (`http://eidas.europa.eu/LoA/substantial` by default).
    pub min_loa: String,
}

/// The requirements each kind of check verifies.
pub fn requirements(kind: &str) -> &'static [&'static str] {
    match kind {
        "code-issued" => &["rfc6749#4.1.2", "medmij:verzamelen.authorization"],
        "state-echoed" => &["rfc6749#4.1.2", "rfc6749#10.12"],
        "error-redirect" => &["rfc6749#4.1.2.1", "medmij:duiding-van-fouten"],
        // Each SAML scenario names the one rule its fault breaks.
        "login-refused" => &[],
        "same-refusal" => &["attack:padding-oracle"],
        "entity-not-fetched" => &["attack:xxe"],
        "token-issued" => &["rfc6749#4.1.3", "rfc6749#5.1", "medmij:token.response"],
        "token-refused" => &["rfc6749#5.2"],
        "fhir-searchset" => &["fhir-stu3#search", "nictiz:qualification.gp-49"],
        "error-page" => &["rfc6749#4.1.2.1", "medmij:technische-storing"],
        "resource-refused" => &["rfc6750#3", "rfc6750#3.1"],
        "refresh-rotated" => &["rfc6749#6", "medmij:refresh-rotation"],
        "no-bsn-in-links" => &["medmij:resource.no-bsn"],
        "within-budget" => &["medmij:response-time"],
        "dataset-complete" => &["nhg:online-inzage.dataset", "nhg:online-inzage.exclusions"],
        "references-resolve" => &["medmij:gp49.references"],
        "codings-complete" => &["nictiz:qualification.codings"],
        "profile-valid" => &["nictiz:qualification.profiles"],
        "no-bsn-in-bundle" => &["medmij:resource.no-bsn", "nictiz:qualification.no-bsn"],
        "paged" => &["fhir-stu3#paging", "medmij:gp49.paging"],
        "tls-versions" => &[
            "medmij:tls.version-1.2",
            "medmij:tls.no-legacy-versions",
            "medmij:tls.highest-version",
        ],
        "tls13-supported" => &["medmij:tls.version-1.3"],
        "tls-configuration" => &["ncsc:tls.configuration"],
        // Each scenario names its channel's rule (front or back certificate).
        "certificate-shape" => &["ncsc:certificate.key-and-hash"],
        "certificate-expiry" => &["medmij:tls.certificate-expiry"],
        "client-certificate-refused" => &["medmij:tls.back-channel-mutual"],
        "authn-request-signed" => &["eid-saml-4.4#authn-request.signed"],
        "authn-request-acs-index" => &["eid-saml-4.4#authn-request.acs-index"],
        "authn-request-issuer" => &["eid-saml-4.4#authn-request.issuer"],
        "authn-request-destination" => &["eid-saml-4.4#authn-request.destination"],
        "authn-request-loa" => &["eid-saml-4.4#authn-request.requested-loa"],
        "authn-request-fresh" => &["eid-saml-4.4#authn-request.fresh"],
        "artifact-resolve-signed" => &["eid-saml-4.4#artifact-resolve.signed"],
        "artifact-resolve-mutual-tls" => &["eid-saml-4.4#artifact-resolve.mutual-tls"],
        "artifact-resolved-once" => &["eid-saml-4.4#artifact.resolved-once"],
        "loa-respected" => &["eid-saml-4.4#7.6.3.5", "eid-saml-4.4#7.6.3.5.at-or-above"],
        _ => &[],
    }
}

struct Verdict {
    outcome: Outcome,
    message: String,
    evidence: Vec<usize>,
    privacy: bool,
    dataset: Option<DatasetFinding>,
}

fn v(outcome: Outcome, message: impl Into<String>, evidence: Vec<usize>) -> Verdict {
    Verdict {
        outcome,
        message: message.into(),
        evidence,
        privacy: false,
        dataset: None,
    }
}

/// Judges `spec` over the `results` of `scenario`'s steps.
pub fn evaluate(
    spec: &CheckSpec,
    scenario: &Scenario,
    results: &BTreeMap<String, StepResult>,
    ctx: &Context<'_>,
) -> CheckResult {
    let budgets = ctx.budgets;
    let step = spec.step().to_string();
    let verdict = match results.get(&step) {
        None => v(Outcome::Error, format!("step {step:?} did not run"), vec![]),
        Some(StepResult::Waited { .. }) => {
            v(Outcome::Error, "a wait step has nothing to judge", vec![])
        }
        Some(StepResult::Skipped { reason }) => v(
            Outcome::Skip,
            format!("step {step:?} skipped: {reason}"),
            vec![],
        ),
        Some(StepResult::NotRun { reason }) => v(
            Outcome::Error,
            format!("step {step:?} could not run: {reason}"),
            vec![],
        ),
        Some(StepResult::Tls(t)) => match spec {
            CheckSpec::TlsVersions { .. } => tls::tls_versions(t, ctx.tls),
            CheckSpec::Tls13Supported { .. } => tls::tls13_supported(t),
            CheckSpec::TlsConfiguration { .. } => tls::tls_configuration(t, ctx.tls),
            CheckSpec::CertificateShape { .. } => tls::certificate_shape(t, ctx.tls),
            CheckSpec::CertificateExpiry { .. } => tls::certificate_expiry(t, ctx.tls),
            _ => v(Outcome::Error, "this check cannot judge a TLS scan", vec![]),
        },
        Some(StepResult::Authorize(a)) => match spec {
            CheckSpec::CodeIssued { .. } => code_issued(a),
            CheckSpec::StateEchoed { .. } => state_echoed(a),
            CheckSpec::ErrorRedirect { error, stage, .. } => {
                error_redirect(a, error, *stage, &trace(ctx.exchanges, &step))
            }
            CheckSpec::LoginRefused {
                before_resolution, ..
            } => login_refused(a, &trace(ctx.exchanges, &step), *before_resolution),
            CheckSpec::SameRefusal { other, .. } => match results.get(other) {
                Some(StepResult::Authorize(b)) => same_refusal(
                    a,
                    &trace(ctx.exchanges, &step),
                    b,
                    &trace(ctx.exchanges, other),
                ),
                _ => v(
                    Outcome::Error,
                    format!("the other faulty login {other:?} did not run"),
                    vec![],
                ),
            },
            CheckSpec::EntityNotFetched { .. } => {
                entity_not_fetched(&trace(ctx.exchanges, &step), ctx.exchanges, &step)
            }
            CheckSpec::ErrorPage { .. } => {
                error_page(a, &trace(ctx.exchanges, &step), ctx.exchanges)
            }
            CheckSpec::AuthnRequestSigned { .. } => authn_request_signed(&step, ctx),
            CheckSpec::AuthnRequestAcsIndex { .. } => authn_request_acs_index(&step, ctx),
            CheckSpec::AuthnRequestIssuer { .. } => authn_request_issuer(&step, ctx),
            CheckSpec::AuthnRequestDestination { .. } => authn_request_destination(&step, ctx),
            CheckSpec::AuthnRequestLoa { .. } => authn_request_loa(&step, ctx),
            CheckSpec::AuthnRequestFresh { .. } => authn_request_fresh(&step, ctx),
            CheckSpec::ArtifactResolveSigned { .. } => artifact_resolve_signed(&step, ctx),
            CheckSpec::ArtifactResolveMutualTls { .. } => artifact_resolve_mutual_tls(&step, ctx),
            CheckSpec::ArtifactResolvedOnce { .. } => artifact_resolved_once(&step, ctx),
            CheckSpec::LoaRespected { .. } => loa_respected(a, &step, ctx),
            _ => v(
                Outcome::Error,
                "this check cannot judge an authorize step",
                vec![],
            ),
        },
        Some(StepResult::Http(h)) => match spec {
            CheckSpec::TokenIssued { .. } => {
                token_issued(h, budgets.max_expires_in_s, ctx.gegevensdiensten)
            }
            CheckSpec::ResourceRefused {
                status,
                error,
                issue,
                ..
            } => resource_refused(h, *status, error.as_deref(), issue),
            CheckSpec::NoBsnInLinks { .. } => no_bsn_in_links(h),
            CheckSpec::WithinBudget { budget, .. } => within_budget(
                h,
                match budget {
                    crate::scenario::BudgetKind::Token => budgets.token_ms,
                    crate::scenario::BudgetKind::Resource => budgets.resource_ms,
                },
            ),
            CheckSpec::RefreshRotated { previous, .. } => refresh_rotated(h, results.get(previous)),
            CheckSpec::ReferencesResolve { .. } => references_resolve(h, results),
            CheckSpec::CodingsComplete { .. } => codings_complete(h),
            CheckSpec::ProfileValid { .. } => profile_valid(h),
            CheckSpec::NoBsnInBundle { .. } => no_bsn_in_bundle(h, ctx.bsn),
            CheckSpec::Paged { max_entries, .. } => paged(h, *max_entries),
            CheckSpec::DatasetComplete { .. } => {
                let query = scenario.steps.iter().find_map(|s| match s {
                    Step::Fhir(f) if f.id == step => Some(f.query.as_str()),
                    _ => None,
                });
                match (query, ctx.manifest.patient(ctx.bsn)) {
                    (Some(q), Some(p)) => {
                        let enforce_window =
                            ctx.lab_window == LabWindowPolicy::DvaExcludes || ctx.lab_date_filter;
                        let mut verdict = dataset_complete(h, q, p, enforce_window);
                        // No Bundle came: nothing expected arrived (the outcome says whether
                        // that is the DVA's failure or missing evidence).
                        verdict.dataset.get_or_insert_with(|| {
                            let expected = p.expected.get(q).cloned().unwrap_or_default();
                            DatasetFinding {
                                query: q.to_string(),
                                expected: expected.len(),
                                missing_count: expected.len(),
                                missing: expected.into_iter().take(LISTED_ITEMS).collect(),
                                leaked: Vec::new(),
                            }
                        });
                        verdict
                    }
                    (None, _) => v(
                        Outcome::Error,
                        "the step is not a gegevensdienst-49 query",
                        vec![],
                    ),
                    (_, None) => v(
                        Outcome::Error,
                        "the fixture manifest has no entry for the logged-in test person",
                        vec![],
                    ),
                }
            }
            CheckSpec::TokenRefused {
                error,
                tls_refusal_counts,
                ..
            } => token_refused(h, error, *tls_refusal_counts),
            CheckSpec::ClientCertificateRefused { .. } => {
                let token = scenario
                    .steps
                    .iter()
                    .any(|s| matches!(s, Step::Token(t) if t.id == step));
                tls::client_certificate_refused(h, token)
            }
            CheckSpec::FhirSearchset { .. } => {
                let types = scenario.steps.iter().find_map(|s| match s {
                    Step::Fhir(f) if f.id == step => gp_query(&f.query).map(|q| q.types),
                    _ => None,
                });
                match types {
                    Some(types) => fhir_searchset(h, types),
                    None => v(
                        Outcome::Error,
                        "the step is not a known gegevensdienst-49 query",
                        vec![],
                    ),
                }
            }
            _ => v(
                Outcome::Error,
                "this check cannot judge an HTTP step",
                vec![],
            ),
        },
    };
    // A refusal passes only with its cause proven: the same request without the fault was
    // accepted. Without that, the refusal proves nothing (a DVA may refuse everything).
    let verdict = match spec.control() {
        Some(control) if verdict.outcome == Outcome::Pass => {
            match control_accepted(control, results) {
                Ok(mut evidence) => {
                    let mut verdict = verdict;
                    evidence.extend(verdict.evidence);
                    verdict.evidence = evidence;
                    verdict
                }
                Err(control_verdict) => control_verdict,
            }
        }
        _ => verdict,
    };
    let reqs = credited(spec, scenario);
    CheckResult {
        kind: spec.kind().to_string(),
        step,
        outcome: verdict.outcome,
        message: verdict.message,
        requirements: reqs,
        evidence: verdict.evidence,
        privacy: verdict.privacy && verdict.outcome == Outcome::Fail,
        dataset: verdict.dataset,
    }
}

fn unreachable_verdict() -> Verdict {
    v(Outcome::Error, "internal: unexpected outcome", vec![])
}

/// The requirements a check credits: its own list where the scenario gives one, else its
/// kind's and the scenario's.
pub fn credited(spec: &CheckSpec, scenario: &Scenario) -> Vec<String> {
    if let CheckSpec::ResourceRefused { requirements, .. } = spec {
        if !requirements.is_empty() {
            return requirements.clone();
        }
    }
    let mut reqs: Vec<String> = requirements(spec.kind())
        .iter()
        .map(|s| s.to_string())
        .collect();
    reqs.extend(
        step_requirements(spec, scenario)
            .iter()
            .map(|s| s.to_string()),
    );
    for r in &scenario.requirements {
        if !reqs.contains(r) {
            reqs.push(r.clone());
        }
    }
    reqs
}

/// Requirements that depend on the judged step: which channel a certificate is on, which
/// fault a client certificate carries.
fn step_requirements(spec: &CheckSpec, scenario: &Scenario) -> &'static [&'static str] {
    use crate::scenario::BadClientCertificate as Bad;
    let step = scenario.steps.iter().find(|s| s.id() == spec.step());
    match (spec, step) {
        (CheckSpec::CertificateShape { .. }, Some(Step::TlsScan(t))) => {
            if t.endpoint.is_back_channel() {
                &["medmij:tls.back-certificate"]
            } else {
                &["medmij:tls.front-certificate"]
            }
        }
        (CheckSpec::ClientCertificateRefused { .. }, Some(step)) => {
            let bad = match step {
                Step::Token(t) => t.bad_certificate,
                Step::Fhir(f) => f.bad_certificate,
                _ => None,
            };
            match bad {
                Some(Bad::UnknownCa | Bad::Expired | Bad::NotYetValid | Bad::NoClientAuth) => {
                    &["medmij:tls.client-certificate-trust"]
                }
                Some(Bad::OtherHost) => &["rfc8705#2"],
                Some(Bad::None) | None => &[],
            }
        }
        _ => &[],
    }
}

/// Whether the control step, the request without the fault, was accepted: `Ok` with its
/// evidence, or the `error` (`skip` where the control could not be exercised) verdict that
/// replaces an unproven pass.
fn control_accepted(
    control: &str,
    results: &BTreeMap<String, StepResult>,
) -> Result<Vec<usize>, Verdict> {
    let unproven = |why: String, evidence: Vec<usize>| {
        v(
            Outcome::Error,
            format!(
                "could not prove the cause: the control step {control:?}, the same request without the fault, {why}; a refusal of everything earns no pass"
            ),
            evidence,
        )
    };
    match results.get(control) {
        None => Err(unproven("did not run".into(), vec![])),
        Some(StepResult::Skipped { reason }) => Err(v(
            Outcome::Skip,
            format!("the control step {control:?} was skipped: {reason}"),
            vec![],
        )),
        Some(StepResult::NotRun { reason }) => {
            Err(unproven(format!("could not run ({reason})"), vec![]))
        }
        Some(StepResult::Waited { .. }) => Err(unproven("is a wait".into(), vec![])),
        Some(StepResult::Tls(_)) => Err(unproven("is a TLS scan".into(), vec![])),
        Some(StepResult::Authorize(a)) => match &a.outcome {
            AuthorizeOutcome::RedirectedBack { seq, .. }
                if a.param("code").is_some_and(|c| !c.is_empty()) =>
            {
                Ok(vec![*seq])
            }
            AuthorizeOutcome::RedirectedBack { seq, .. } => Err(unproven(
                format!("was answered with {} instead of a code", describe_error(a)),
                vec![*seq],
            )),
            AuthorizeOutcome::Page { status, seq, .. } => Err(unproven(
                format!("stopped on a page (HTTP {status}) instead of getting a code"),
                vec![*seq],
            )),
            AuthorizeOutcome::Broken { reason, .. } => Err(unproven(
                format!("broke off ({reason})"),
                a.evidence.clone(),
            )),
        },
        Some(StepResult::Http(h)) => {
            let ev = h.seqs();
            match &h.outcome {
                HttpOutcome::Transport { reason } => {
                    Err(unproven(format!("got no response ({reason})"), ev))
                }
                HttpOutcome::Response { status: 200, .. } => {
                    let json = h.json_ref();
                    let token = json.is_some_and(|j| j["access_token"].is_string());
                    let bundle = json.is_some_and(|j| j["resourceType"] == "Bundle");
                    if token || bundle {
                        Ok(ev)
                    } else {
                        Err(unproven(
                            "was answered with HTTP 200 but neither a token nor a Bundle".into(),
                            ev,
                        ))
                    }
                }
                HttpOutcome::Response { status, .. } => {
                    Err(unproven(format!("was refused with HTTP {status}"), ev))
                }
            }
        }
    }
}

fn response(h: &HttpResult) -> Result<(u16, &str), Verdict> {
    match &h.outcome {
        HttpOutcome::Response { status, body, .. } => Ok((*status, body.as_str())),
        HttpOutcome::Transport { reason } => Err(v(
            Outcome::Error,
            format!("no response: {reason}"),
            h.seq.into_iter().collect(),
        )),
    }
}

#[cfg(test)]
mod tests;

/// `problems` joined for a check's message, at most [`crate::limits::MAX_LISTED_PROBLEMS`] of
/// them: a hostile Bundle of a million entries would otherwise make a message of tens of
/// megabytes, which every report, redaction pass and sink would carry.
pub(crate) fn problem_list(problems: &[String]) -> String {
    let max = crate::limits::MAX_LISTED_PROBLEMS;
    let mut out = problems
        .iter()
        .take(max)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > max {
        out.push_str(&format!("; and {} more", problems.len() - max));
    }
    out
}
