//! Checks: pure functions from a scenario's step results to an [`Outcome`] with a message and
//! evidence (exchange sequence numbers). No I/O, so every branch has a fast unit test below;
//! the integration tests prove each check fails against a named quirk or fault over the wire.
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
#[derive(Debug, Clone, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, Serialize, JsonSchema)]
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

#[derive(Debug, Clone, Serialize, JsonSchema)]
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
}

/// The requirements each kind of check verifies.
pub fn requirements(kind: &str) -> &'static [&'static str] {
    match kind {
        "code-issued" => &["rfc6749#4.1.2", "medmij:verzamelen.authorization"],
        "state-echoed" => &["rfc6749#4.1.2", "rfc6749#10.12"],
        "error-redirect" => &["rfc6749#4.1.2.1", "medmij:duiding-van-fouten"],
        // Each SAML scenario names the one rule its fault breaks.
        "login-refused" => &[],
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
        Some(StepResult::Authorize(a)) => match spec {
            CheckSpec::CodeIssued { .. } => code_issued(a),
            CheckSpec::StateEchoed { .. } => state_echoed(a),
            CheckSpec::ErrorRedirect { error, stage, .. } => {
                error_redirect(a, error, *stage, &trace(ctx.exchanges, &step))
            }
            CheckSpec::LoginRefused { .. } => login_refused(a, &trace(ctx.exchanges, &step)),
            CheckSpec::ErrorPage { .. } => {
                error_page(a, &trace(ctx.exchanges, &step), ctx.exchanges)
            }
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

fn not_back(a: &AuthorizeResult, what: &str) -> Verdict {
    match &a.outcome {
        AuthorizeOutcome::Broken { reason, .. } => v(
            Outcome::Error,
            format!("the front channel broke off: {reason}"),
            a.evidence.clone(),
        ),
        AuthorizeOutcome::Page { status, title, seq } => v(
            Outcome::Fail,
            format!(
                "the browser stopped on a page (HTTP {status}, {:?}) instead of {what}",
                title.as_deref().unwrap_or("untitled")
            ),
            vec![*seq],
        ),
        AuthorizeOutcome::RedirectedBack { .. } => unreachable_verdict(),
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
    for r in &scenario.requirements {
        if !reqs.contains(r) {
            reqs.push(r.clone());
        }
    }
    reqs
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

/// What the recorded exchanges of one authorize step show about how far it got: the judge
/// reads these from the log, not from the parties' own accounts.
#[derive(Debug, Default)]
struct Trace {
    /// The first request the browser sent to the mock TVS.
    reached_tvs: Option<usize>,
    /// The mock TVS's record of answering the DVA's ArtifactResolve (the DVA fetched what the
    /// login produced, faulty or not).
    artifact_resolved: Option<usize>,
    /// The first form the browser posted to the DVA after the artifact was resolved (the
    /// consent answer).
    consent_posted: Option<usize>,
}

fn trace(exchanges: &[Exchange], step: &str) -> Trace {
    let mut t = Trace::default();
    for x in exchanges.iter().filter(|x| x.step.as_deref() == Some(step)) {
        match (x.from, x.to, x.method.as_str()) {
            (Party::Browser, Party::Tvs, _) if t.reached_tvs.is_none() => {
                t.reached_tvs = Some(x.seq)
            }
            (Party::Dva, Party::Tvs, "POST")
                if x.status == Some(200) && t.artifact_resolved.is_none() =>
            {
                t.artifact_resolved = Some(x.seq)
            }
            (Party::Browser, Party::Dva, "POST")
                if t.artifact_resolved.is_some() && t.consent_posted.is_none() =>
            {
                t.consent_posted = Some(x.seq)
            }
            _ => {}
        }
    }
    t
}

/// Whether the step's exchanges show it reached `stage` before the refusal at `refused`:
/// `Err` with the reason when the stimulus never got there.
/// Whether the step's exchanges show its stimulus reached `stage` before the refusal at
/// `refused`: the evidence, or `fail` (refused at a later stage than the rule says) or `error`
/// (the stimulus never got there, so the refusal proves nothing) with the reason.
fn reached(t: &Trace, stage: Stage, refused: usize) -> Result<Vec<usize>, (Outcome, String)> {
    let before = |seq: Option<usize>| seq.filter(|s| *s < refused);
    let unresolved = || {
        (
            Outcome::Error,
            "could not exercise the login: the DVA never resolved the artifact at the mock TVS before it answered"
                .to_string(),
        )
    };
    match stage {
        Stage::Request => match before(t.reached_tvs) {
            None => Ok(vec![]),
            Some(s) => Err((
                Outcome::Fail,
                format!(
                    "the DVA sent the browser to the TVS (exchange {s}) instead of refusing the authorization request itself"
                ),
            )),
        },
        Stage::Login => before(t.artifact_resolved)
            .map(|s| vec![s])
            .ok_or_else(unresolved),
        // The refusal answers the consent post itself.
        Stage::Consent => match (
            before(t.artifact_resolved),
            t.consent_posted.filter(|s| *s <= refused),
        ) {
            (Some(a), Some(c)) => Ok(vec![a, c]),
            (None, _) => Err(unresolved()),
            (Some(_), None) => Err((
                Outcome::Error,
                "could not exercise the consent screen: no answer was posted to the DVA".into(),
            )),
        },
    }
}

fn back_seq(a: &AuthorizeResult) -> Vec<usize> {
    match &a.outcome {
        AuthorizeOutcome::RedirectedBack { seq, .. } => vec![*seq],
        _ => a.evidence.clone(),
    }
}

fn describe_error(a: &AuthorizeResult) -> String {
    let e = a.param("error").unwrap_or("");
    match a.param("error_description") {
        Some(d) => format!("error={e} ({d})"),
        None => format!("error={e}"),
    }
}

fn code_issued(a: &AuthorizeResult) -> Verdict {
    if !matches!(a.outcome, AuthorizeOutcome::RedirectedBack { .. }) {
        return not_back(a, "redirecting back with a code");
    }
    if a.param("code").is_none_or(str::is_empty) {
        let message = if a.param("error").is_some() {
            format!(
                "redirected back with {} instead of a code",
                describe_error(a)
            )
        } else {
            "redirected back with neither code nor error".to_string()
        };
        return v(Outcome::Fail, message, back_seq(a));
    }
    match (a.sent_state.as_deref(), a.param("state")) {
        (Some(sent), Some(got)) if sent == got => v(
            Outcome::Pass,
            "redirected back to the redirect URI with a code and exactly the state sent",
            back_seq(a),
        ),
        (Some(sent), got) => v(
            Outcome::Fail,
            format!("a code came back, but the state did not: sent {sent:?}, received {got:?}"),
            back_seq(a),
        ),
        (None, _) => v(
            Outcome::Pass,
            "redirected back to the redirect URI with a code (the PGO sent no state)",
            back_seq(a),
        ),
    }
}

fn state_echoed(a: &AuthorizeResult) -> Verdict {
    let Some(sent) = a.sent_state.as_deref() else {
        return v(
            Outcome::Skip,
            "the PGO sent no state in this scenario",
            vec![],
        );
    };
    if !matches!(a.outcome, AuthorizeOutcome::RedirectedBack { .. }) {
        // Without a redirect back there is no response to judge the state of.
        return match not_back(a, "redirecting back") {
            Verdict {
                outcome: Outcome::Fail,
                message,
                evidence,
                ..
            } => v(
                Outcome::Error,
                format!("no authorization response to judge: {message}"),
                evidence,
            ),
            other => other,
        };
    }
    // The rule is about the authorization response: an error redirect shows nothing of it.
    if a.param("code").is_none_or(str::is_empty) {
        return v(
            Outcome::Error,
            format!(
                "no authorization response to judge: redirected back with {} instead of a code",
                describe_error(a)
            ),
            back_seq(a),
        );
    }
    match a.param("state") {
        Some(s) if s == sent => v(Outcome::Pass, "state returned unchanged", back_seq(a)),
        Some(s) => v(
            Outcome::Fail,
            format!("state changed: sent {sent:?}, received {s:?}"),
            back_seq(a),
        ),
        None => v(
            Outcome::Fail,
            format!("state missing from the redirect back (sent {sent:?})"),
            back_seq(a),
        ),
    }
}

fn error_redirect(a: &AuthorizeResult, expected: &str, stage: Stage, t: &Trace) -> Verdict {
    if !matches!(a.outcome, AuthorizeOutcome::RedirectedBack { .. }) {
        return not_back(a, &format!("redirecting back with error={expected}"));
    }
    if a.param("code").is_some() {
        return v(
            Outcome::Fail,
            format!("a code was issued where error={expected} was due"),
            back_seq(a),
        );
    }
    if let Some(problem) = oauth_error_problem(a, expected) {
        return v(Outcome::Fail, problem, back_seq(a));
    }
    let refused = back_seq(a)[0];
    match reached(t, stage, refused) {
        Ok(mut evidence) => {
            evidence.push(refused);
            v(
                Outcome::Pass,
                format!(
                    "refused at {} with {} and the state",
                    stage.label(),
                    describe_error(a)
                ),
                evidence,
            )
        }
        Err((outcome, why)) => v(outcome, why, a.evidence.clone()),
    }
}

/// What is wrong with an error redirect that should carry exactly `expected`, its
/// description and the state; `None` when nothing is.
fn oauth_error_problem(a: &AuthorizeResult, expected: &str) -> Option<String> {
    let Some(error) = a.param("error") else {
        return Some("redirected back without an error parameter".into());
    };
    if !RFC6749_ERRORS.contains(&error) {
        return Some(format!(
            "error={error} is not an RFC 6749 error code (expected {expected})"
        ));
    }
    if error != expected {
        return Some(format!(
            "expected error={expected}, got {}",
            describe_error(a)
        ));
    }
    // Since 2.0.0 MedMij wants the error explained ("duiding van fouten").
    if a.param("error_description")
        .is_none_or(|d| d.trim().is_empty())
    {
        return Some(format!("error={error} without an error_description"));
    }
    match (a.sent_state.as_deref(), a.param("state")) {
        (Some(sent), Some(got)) if sent != got => Some(format!(
            "error returned, but state changed from {sent:?} to {got:?}"
        )),
        (Some(_), None) => Some("error returned without the state".into()),
        _ => None,
    }
}

/// A login refusal: after the DVA resolved the faulty artifact, `access_denied` to the PGO.
fn login_refused(a: &AuthorizeResult, t: &Trace) -> Verdict {
    match &a.outcome {
        AuthorizeOutcome::Broken { reason, .. } => v(
            Outcome::Error,
            format!("the front channel broke off: {reason}"),
            a.evidence.clone(),
        ),
        AuthorizeOutcome::RedirectedBack { .. } if a.param("code").is_some() => v(
            Outcome::Fail,
            "the faulty login was accepted: an authorization code reached the PGO",
            a.evidence.clone(),
        ),
        AuthorizeOutcome::Page { status, title, seq } => match t.artifact_resolved {
            Some(resolved) => v(
                Outcome::Fail,
                format!(
                    "the login was refused into a dead end: the browser stopped on a page (HTTP {status}, {:?}) instead of returning to the PGO with access_denied",
                    title.as_deref().unwrap_or("untitled")
                ),
                vec![resolved, *seq],
            ),
            None => v(
                Outcome::Error,
                format!(
                    "could not exercise the login: the browser stopped on a page (HTTP {status}) and the DVA never resolved an artifact at the mock TVS"
                ),
                a.evidence.clone(),
            ),
        },
        AuthorizeOutcome::RedirectedBack { .. } => {
            error_redirect(a, "access_denied", Stage::Login, t)
        }
    }
}

/// An error page of the DVA's own, at the authorization request: no redirect and no login.
fn error_page(a: &AuthorizeResult, t: &Trace, exchanges: &[Exchange]) -> Verdict {
    match &a.outcome {
        AuthorizeOutcome::Broken { reason, .. } => v(
            Outcome::Error,
            format!("the front channel broke off: {reason}"),
            a.evidence.clone(),
        ),
        AuthorizeOutcome::RedirectedBack { .. } if a.param("code").is_some() => v(
            Outcome::Fail,
            "the untrusted request was accepted: an authorization code reached the PGO",
            a.evidence.clone(),
        ),
        AuthorizeOutcome::RedirectedBack { .. } => v(
            Outcome::Fail,
            format!(
                "the untrusted request was redirected to an unverified redirect URI with {} instead of an error page",
                describe_error(a)
            ),
            back_seq(a),
        ),
        AuthorizeOutcome::Page { status, title, seq } => {
            let title = title.as_deref().unwrap_or("untitled");
            if let Some(tvs) = t.reached_tvs {
                return v(
                    Outcome::Fail,
                    format!(
                        "the DVA started a login for the untrusted request (the browser reached the TVS, exchange {tvs}) and stopped on {title:?}, instead of an error page at the request"
                    ),
                    a.evidence.clone(),
                );
            }
            let served_by = exchanges.iter().find(|x| x.seq == *seq).map(|x| x.to);
            if served_by != Some(Party::Dva) {
                return v(
                    Outcome::Error,
                    format!(
                        "the page the browser stopped on ({title:?}) was not served by the DVA"
                    ),
                    vec![*seq],
                );
            }
            // [U] MedMij names no status; an error page that answers 200 cannot be told from a
            // landing page the browser failed to drive, so an error status is required.
            if *status < 400 {
                return v(
                    Outcome::Fail,
                    format!(
                        "the browser stopped on an HTTP {status} page ({title:?}): an error page must answer with an error status (4xx or 5xx)"
                    ),
                    vec![*seq],
                );
            }
            v(
                Outcome::Pass,
                format!(
                    "refused at the authorization request: the DVA's error page (HTTP {status}, {title:?}), no redirect"
                ),
                vec![*seq],
            )
        }
    }
}

fn resource_refused(
    h: &HttpResult,
    expected_status: u16,
    expected_error: Option<&str>,
    expected_issue: &str,
) -> Verdict {
    let ev: Vec<usize> = h.seq.into_iter().collect();
    let (status, _) = match response(h) {
        Ok(x) => x,
        Err(verdict) => return verdict,
    };
    if status != expected_status {
        return v(
            Outcome::Fail,
            format!("HTTP {status}, expected {expected_status}"),
            ev,
        );
    }
    let mut problems = Vec::new();
    match h.json_ref() {
        Some(j) if j["resourceType"] == "OperationOutcome" => {
            let codes: Vec<&str> = j["issue"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["code"].as_str())
                .collect();
            if !codes.contains(&expected_issue) {
                problems.push(format!(
                    "the OperationOutcome's issue.code is {codes:?}, expected {expected_issue:?}"
                ));
            }
        }
        _ => problems.push("no OperationOutcome in the body".to_string()),
    }
    if matches!(status, 401 | 403) {
        match h.header("www-authenticate") {
            None => problems.push("no WWW-Authenticate header (RFC 6750 §3)".to_string()),
            Some(challenge) => {
                if !challenge
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("bearer")
                {
                    problems.push(format!(
                        "WWW-Authenticate {challenge:?} is not a Bearer challenge"
                    ));
                }
                if let Some(e) =
                    expected_error.filter(|e| !challenge.contains(&format!("error=\"{e}\"")))
                {
                    problems.push(format!(
                        "WWW-Authenticate {challenge:?} does not say error=\"{e}\""
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        v(
            Outcome::Pass,
            format!("refused with HTTP {status} and issue.code {expected_issue} as required"),
            ev,
        )
    } else {
        v(
            Outcome::Fail,
            format!("HTTP {status}, but: {}", problems.join("; ")),
            ev,
        )
    }
}

fn refresh_rotated(h: &HttpResult, previous: Option<&StepResult>) -> Verdict {
    let ev: Vec<usize> = h.seq.into_iter().collect();
    if let Err(verdict) = response(h) {
        return verdict;
    }
    let old = match previous {
        Some(StepResult::Http(p)) => p
            .json()
            .and_then(|j| j["refresh_token"].as_str().map(str::to_string)),
        _ => None,
    };
    let Some(old) = old else {
        return v(
            Outcome::Error,
            "the earlier step yielded no refresh token to compare with",
            ev,
        );
    };
    match h
        .json()
        .and_then(|j| j["refresh_token"].as_str().map(str::to_string))
    {
        None => v(
            Outcome::Fail,
            "the refresh response carries no refresh token",
            ev,
        ),
        Some(new) if new == old => v(
            Outcome::Fail,
            "the refresh token was not rotated: the same one came back",
            ev,
        ),
        Some(_) => v(Outcome::Pass, "a new refresh token was issued", ev),
    }
}

/// The journaalregeltype (S, O, E or P) a Composition section or a journal entry is coded
/// with: the judge's own reading of the rule, not the simulated DVA's (a test shows the two
/// agree on every fixture).
pub fn journal_line_type(line: &Value) -> Option<&str> {
    const JOURNAALREGELTYPEN: &str = "http://fhir.nl/fhir/NamingSystem/journaalregeltypen";
    let codings = line.pointer("/code/coding")?.as_array()?;
    codings
        .iter()
        .filter(|c| c.get("system").and_then(Value::as_str) == Some(JOURNAALREGELTYPEN))
        .find_map(|c| c.get("code").and_then(Value::as_str))
}

/// The BSN naming system, or a 9-digit number passing the 11-check, in a link.
fn names_a_bsn(link: &str) -> bool {
    link.contains("NamingSystem/bsn")
        || link.contains("NamingSystem%2Fbsn")
        || link
            .split(|c: char| !c.is_ascii_digit())
            .any(crate::ids::is_valid_bsn)
}

/// Every `link.url` and `entry.fullUrl` of a Bundle.
fn links_of(bundle: &Value) -> Vec<&str> {
    let links = bundle["link"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["url"].as_str());
    let full_urls = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["fullUrl"].as_str());
    links.chain(full_urls).collect()
}

fn no_bsn_in_links(h: &HttpResult) -> Verdict {
    let ev = h.seqs();
    let mut offending = 0;
    for page in h.all_pages() {
        if let Err(verdict) = response(page) {
            return verdict;
        }
        let Some(bundle) = page.json_ref() else {
            return v(Outcome::Fail, "the response is not JSON", ev);
        };
        offending += links_of(bundle)
            .into_iter()
            .filter(|l| names_a_bsn(l))
            .count();
    }
    if offending == 0 {
        v(Outcome::Pass, "no link names the patient by BSN", ev)
    } else {
        v(
            Outcome::Fail,
            format!("{offending} link(s) name the patient by BSN"),
            ev,
        )
    }
}

/// Every request of the step (each page of a search) within the budget.
fn within_budget(h: &HttpResult, budget_ms: u64) -> Verdict {
    let ev = h.seqs();
    for page in h.all_pages() {
        if let Err(verdict) = response(page) {
            return verdict;
        }
    }
    let slowest = h.all_pages().map(|p| p.elapsed_ms).max().unwrap_or(0);
    let what = if h.pages.is_empty() {
        "answered".to_string()
    } else {
        format!("slowest of {} pages answered", h.pages.len() + 1)
    };
    if slowest <= budget_ms {
        v(
            Outcome::Pass,
            format!("{what} in {slowest} ms (budget {budget_ms} ms)"),
            ev,
        )
    } else {
        v(
            Outcome::Fail,
            format!("{what} in {slowest} ms, over the budget of {budget_ms} ms"),
            ev,
        )
    }
}

/// The resources of a FHIR step's searchset, over all its pages.
fn bundle_resources(h: &HttpResult) -> Vec<&Value> {
    h.all_pages()
        .filter_map(|p| p.json_ref())
        .flat_map(entries_of)
        .collect()
}

/// References a GP-record resource makes, by the paths service 49 uses.
fn references_of(r: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |v: &Value| {
        if let Some(s) = v["reference"].as_str() {
            out.push(s.to_string());
        }
    };
    for field in ["encounter", "medicationReference", "specimen"] {
        push(&r[field]);
    }
    for field in ["generalPractitioner", "author"] {
        r[field]
            .as_array()
            .into_iter()
            .flatten()
            .for_each(&mut push);
    }
    r["diagnosis"]
        .as_array()
        .into_iter()
        .flatten()
        .for_each(|d| push(&d["condition"]));
    r["related"]
        .as_array()
        .into_iter()
        .flatten()
        .for_each(|x| push(&x["target"]));
    // Flag → EpisodeOfCare (zib-Alert), and any other reference-valued extension.
    r["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .for_each(|x| push(&x["valueReference"]));
    // Composition → journal entries.
    r["section"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["entry"].as_array().into_iter().flatten())
        .for_each(&mut push);
    out
}

fn references_resolve(h: &HttpResult, results: &BTreeMap<String, StepResult>) -> Verdict {
    let ev = h.seqs();
    if let Err(verdict) = response(h) {
        return verdict;
    }
    // Everything the scenario's FHIR steps returned, as `Type/id`.
    let universe: std::collections::BTreeSet<String> = results
        .values()
        .filter_map(|r| match r {
            StepResult::Http(h) => Some(bundle_resources(h)),
            _ => None,
        })
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    let retrievable: std::collections::BTreeSet<&str> = crate::fixtures::GP_QUERIES
        .iter()
        .flat_map(|q| q.types.iter().copied())
        .collect();
    let (mut unresolved, mut elsewhere, mut resolved) =
        (Vec::new(), std::collections::BTreeSet::new(), 0);
    for r in bundle_resources(h) {
        for reference in references_of(r) {
            if let Some(local) = reference.strip_prefix('#') {
                // A contained resource: it must be inside the referring one.
                let contained = r["contained"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x["id"] == local));
                if contained {
                    resolved += 1;
                } else {
                    unresolved.push(format!("{} → {reference}", r["id"].as_str().unwrap_or("?")));
                }
                continue;
            }
            // Absolute or relative: the last two segments are Type/id.
            let key: Vec<&str> = reference.rsplit('/').take(2).collect();
            let key = if key.len() == 2 {
                format!("{}/{}", key[1], key[0])
            } else {
                reference.clone()
            };
            let kind = key.split('/').next().unwrap_or("");
            if !retrievable.contains(kind) {
                elsewhere.insert(kind.to_string());
            } else if universe.contains(&key) {
                resolved += 1;
            } else {
                unresolved.push(format!("{} → {reference}", r["id"].as_str().unwrap_or("?")));
            }
        }
    }
    let note = if elsewhere.is_empty() {
        String::new()
    } else {
        format!(
            "; references to {} cannot be retrieved in gegevensdienst 49 (reported, not failed)",
            elsewhere.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    if unresolved.is_empty() {
        v(
            Outcome::Pass,
            format!("{resolved} reference(s) resolve within the results{note}"),
            ev,
        )
    } else {
        v(
            Outcome::Fail,
            format!("unresolvable reference(s): {}{note}", unresolved.join(", ")),
            ev,
        )
    }
}

fn codings_complete(h: &HttpResult) -> Verdict {
    let ev = h.seqs();
    if let Err(verdict) = response(h) {
        return verdict;
    }
    fn walk<'a>(v: &'a Value, path: &mut Vec<&'a str>, bad: &mut Vec<String>, seen: &mut usize) {
        match v {
            Value::Object(map) => {
                // The codings of a CodeableConcept, and the bare Codings service 49 uses.
                let codings = map
                    .get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| (c, "coding"))
                    .chain(
                        map.get("class")
                            .filter(|c| c.is_object())
                            .map(|c| (c, "class")),
                    )
                    .chain(["security", "tag"].into_iter().flat_map(|k| {
                        map.get(k)
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(move |c| (c, k))
                    }));
                for (c, field) in codings {
                    *seen += 1;
                    let has = |k: &str| c[k].as_str().is_some_and(|s| !s.is_empty());
                    if !(has("system") && has("code")) {
                        let at = path.join(".");
                        bad.push(if field == "coding" {
                            at
                        } else {
                            format!("{at}.{field}")
                        });
                    }
                }
                for (k, child) in map {
                    path.push(k);
                    walk(child, path, bad, seen);
                    path.pop();
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, path, bad, seen)),
            _ => {}
        }
    }
    let (mut bad, mut seen): (Vec<String>, usize) = (Vec::new(), 0);
    for r in bundle_resources(h) {
        let at = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or("?"),
            r["id"].as_str().unwrap_or("?")
        );
        walk(r, &mut vec![at.as_str()], &mut bad, &mut seen);
    }
    bad.sort();
    bad.dedup();
    if seen == 0 {
        return v(
            Outcome::Fail,
            "no codings at all in a result that should be coded",
            ev,
        );
    }
    if bad.is_empty() {
        v(
            Outcome::Pass,
            format!("all {seen} codings have a system and a code"),
            ev,
        )
    } else {
        v(
            Outcome::Fail,
            format!(
                "codings without system or code at {}",
                bad.into_iter().take(5).collect::<Vec<_>>().join(", ")
            ),
            ev,
        )
    }
}

fn dataset_complete(
    h: &HttpResult,
    query: &str,
    patient: &crate::fixtures::ManifestPatient,
    enforce_lab_window: bool,
) -> Verdict {
    let ev = h.seqs();
    let resources = match searchset(h) {
        Ok(s) => s.resources,
        Err(verdict) => return verdict,
    };
    let got: std::collections::HashSet<&str> = resources
        .iter()
        .flat_map(|r| crate::fixtures::item_ids(r))
        .collect();
    let mut leaked: Vec<LeakedItem> = patient
        .excluded
        .iter()
        .filter(|x| x.query == query && got.contains(x.item.as_str()))
        .filter(|x| enforce_lab_window || x.rule.as_deref() != Some("lab-window"))
        .map(|x| LeakedItem {
            item: x.item.clone(),
            reason: x.reason.clone(),
        })
        .collect();
    for r in resources
        .iter()
        .filter(|r| r["resourceType"] == "Composition")
    {
        // S/O lines as sections, or as journal entries carried inside the Composition.
        let so = ["section", "contained"]
            .iter()
            .flat_map(|field| r[*field].as_array().into_iter().flatten())
            .filter(|s| matches!(journal_line_type(s), Some("S") | Some("O")))
            .count();
        if so > 0 {
            let id = crate::fixtures::item_ids(r)
                .first()
                .map_or_else(|| r["id"].as_str().unwrap_or("?"), |i| *i)
                .to_string();
            leaked.push(LeakedItem {
                item: id,
                reason: format!(
                    "{so} S/O journal line(s) or entries: only E and P lines may be shared"
                ),
            });
        }
    }
    let expected = patient.expected.get(query).map_or(0, Vec::len);
    let missing: Vec<&str> = patient
        .expected
        .get(query)
        .into_iter()
        .flatten()
        .filter(|i| !got.contains(i.as_str()))
        .map(String::as_str)
        .collect();
    let listed =
        |items: &[&str]| some_of(items.iter().copied().take(LISTED_ITEMS), items.len(), ", ");
    let mut verdict = match (leaked.is_empty(), missing.is_empty()) {
        (true, true) => v(
            Outcome::Pass,
            format!("all {expected} expected items present, none of the excluded"),
            ev,
        ),
        (true, false) => v(
            Outcome::Fail,
            format!(
                "missing {} of {expected}: {}",
                missing.len(),
                listed(&missing)
            ),
            ev,
        ),
        (false, _) => {
            let shared: Vec<String> = leaked
                .iter()
                .map(|l| format!("{} ({})", l.item, l.reason))
                .collect();
            let mut verdict = v(
                Outcome::Fail,
                format!("PRIVACY: shared what must not be: {}", shared.join("; ")),
                ev,
            );
            if !missing.is_empty() {
                verdict
                    .message
                    .push_str(&format!("; also missing: {}", listed(&missing)));
            }
            verdict.privacy = true;
            verdict
        }
    };
    verdict.dataset = Some(DatasetFinding {
        query: query.to_string(),
        expected,
        missing_count: missing.len(),
        missing: missing
            .iter()
            .take(LISTED_ITEMS)
            .map(|m| m.to_string())
            .collect(),
        leaked,
    });
    verdict
}

fn profile_valid(h: &HttpResult) -> Verdict {
    let ev = h.seqs();
    let resources = match searchset(h) {
        Ok(s) => s.resources,
        Err(verdict) => return verdict,
    };
    let profiles = crate::profiles::Profiles::embedded();
    let (mut valid, mut problems) = (0, Vec::new());
    for r in resources {
        let at = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or("?"),
            r["id"].as_str().unwrap_or("?")
        );
        match profiles.validate(r) {
            crate::profiles::Validation::Valid => valid += 1,
            crate::profiles::Validation::Invalid(found) => {
                problems.push(format!("{at} {}", found.join("; ")));
            }
            crate::profiles::Validation::NoProfile => {
                problems.push(format!("{at} names no meta.profile to validate against"));
            }
            crate::profiles::Validation::UnknownProfile(url) => problems.push(format!(
                "{at} claims {url}, which is not a gegevensdienst-49 profile"
            )),
        }
    }
    if problems.is_empty() {
        v(
            Outcome::Pass,
            format!("all {valid} resources valid against their profile's schema"),
            ev,
        )
    } else {
        v(
            Outcome::Fail,
            format!(
                "{} of {} resources do not validate: {}",
                problems.len(),
                problems.len() + valid,
                some_of(
                    problems.iter().take(5).map(String::as_str),
                    problems.len(),
                    " | "
                )
            ),
            ev,
        )
    }
}

/// BSN identifiers that carry a value, anywhere in `v`, by path (`path` is the way down).
fn bsn_identifiers<'a>(v: &'a Value, path: &mut Vec<&'a str>, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if map.get("system").and_then(Value::as_str) == Some(crate::fixtures::BSN_SYSTEM)
                && map.get("value").is_some()
            {
                found.push(path.join("."));
            }
            for (k, child) in map {
                path.push(k);
                bsn_identifiers(child, path, found);
                path.pop();
            }
        }
        Value::Array(items) => items.iter().for_each(|i| bsn_identifiers(i, path, found)),
        _ => {}
    }
}

fn no_bsn_in_bundle(h: &HttpResult, bsn: &str) -> Verdict {
    let ev = h.seqs();
    let mut found = Vec::new();
    for (n, page) in h.all_pages().enumerate() {
        let body = match response(page) {
            Ok((_, body)) => body,
            Err(verdict) => return verdict,
        };
        let Some(bundle) = page.json_ref() else {
            return v(Outcome::Fail, "the response is not JSON", ev);
        };
        let mut identifiers = Vec::new();
        bsn_identifiers(bundle, &mut vec!["Bundle"], &mut identifiers);
        if !identifiers.is_empty() {
            found.push(format!(
                "a BSN identifier with a value at {}",
                identifiers.join(", ")
            ));
        } else if !bsn.is_empty() && body.contains(bsn) {
            found.push(format!(
                "page {}: the person's BSN appears in the body",
                n + 1
            ));
        }
        if links_of(bundle).into_iter().any(names_a_bsn) {
            found.push(format!("page {}: a link names a BSN", n + 1));
        }
    }
    if found.is_empty() {
        v(Outcome::Pass, "no BSN anywhere in the Bundle", ev)
    } else {
        v(Outcome::Fail, found.join("; "), ev)
    }
}

fn paged(h: &HttpResult, max_entries: usize) -> Verdict {
    let ev = h.seqs();
    let (mut matches, mut largest, mut pages) = (0usize, 0usize, 0usize);
    let mut seen = std::collections::HashSet::new();
    let mut twice = Vec::new();
    let mut total = None;
    for (n, page) in h.all_pages().enumerate() {
        let (status, _) = match response(page) {
            Ok(x) => x,
            Err(verdict) => return verdict,
        };
        if status != 200 {
            return v(
                Outcome::Fail,
                format!("page {}: HTTP {status} instead of a Bundle", n + 1),
                ev,
            );
        }
        let Some(bundle) = page.json_ref() else {
            return v(
                Outcome::Fail,
                format!("page {}: the response is not JSON", n + 1),
                ev,
            );
        };
        if n == 0 {
            total = bundle["total"].as_u64();
        }
        pages += 1;
        let on_page: Vec<&Value> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"].as_str().is_none_or(|m| m == "match"))
            .map(|e| &e["resource"])
            .collect();
        largest = largest.max(on_page.len());
        matches += on_page.len();
        for r in on_page {
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            );
            if !seen.insert(key.clone()) && twice.len() < 5 {
                twice.push(key);
            }
        }
    }
    let mut problems = Vec::new();
    if largest > max_entries {
        problems.push(format!(
            "a page holds {largest} matches, more than {max_entries}: a large result must come in pages linked by next"
        ));
    }
    if let Some(why) = &h.paging_stopped {
        problems.push(why.clone());
    }
    if let Some(total) = total.filter(|t| *t != matches as u64) {
        problems.push(format!(
            "Bundle.total says {total}, the {pages} page(s) held {matches} matches"
        ));
    }
    if !twice.is_empty() {
        problems.push(format!("served on two pages: {}", twice.join(", ")));
    }
    let notes: String = h.paging_notes.iter().map(|n| format!("; {n}")).collect();
    if problems.is_empty() {
        v(
            Outcome::Pass,
            format!("{matches} matches in {pages} page(s), at most {largest} per page{notes}"),
            ev,
        )
    } else {
        v(Outcome::Fail, problems.join("; "), ev)
    }
}

/// A search's answer over all its pages: the first page's Bundle, and the resources of every
/// page's entries, borrowed.
struct Searchset<'a> {
    first: &'a Value,
    resources: Vec<&'a Value>,
}

/// The searchset of HTTP 200 JSON answers, or the verdict when a page is not one.
fn searchset(h: &HttpResult) -> Result<Searchset<'_>, Verdict> {
    let ev = h.seqs();
    let mut first = None;
    let mut resources = Vec::new();
    for (n, page) in h.all_pages().enumerate() {
        let which = if n == 0 {
            String::new()
        } else {
            format!("page {}: ", n + 1)
        };
        let (status, _) = response(page)?;
        if status != 200 {
            return Err(v(
                Outcome::Fail,
                format!("{which}HTTP {status} instead of a Bundle"),
                ev,
            ));
        }
        let bundle = page.json_ref().ok_or_else(|| {
            v(
                Outcome::Fail,
                format!("{which}the response is not JSON"),
                ev.clone(),
            )
        })?;
        first.get_or_insert(bundle);
        resources.extend(entries_of(bundle));
    }
    match first {
        Some(first) => Ok(Searchset { first, resources }),
        None => Err(v(Outcome::Error, "no response", ev)),
    }
}

/// The resources of a Bundle's entries.
fn entries_of(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
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

/// Whether a token response's `scope` grants gegevensdienst `service`: as its id (`49`) or
/// as `naam~id` [U: the 2.x response format is not normative; granted ids are what DVAs send].
fn grants(scope: &str, service: &str) -> bool {
    scope
        .split(' ')
        .any(|t| t == service || t.rsplit_once('~').is_some_and(|(_, id)| id == service))
}

fn token_issued(h: &HttpResult, max_expires_in: u64, services: &[String]) -> Verdict {
    let ev: Vec<usize> = h.seq.into_iter().collect();
    let (status, _) = match response(h) {
        Ok(x) => x,
        Err(verdict) => return verdict,
    };
    let json = h.json().unwrap_or(Value::Null);
    if status != 200 {
        let error = json["error"].as_str().unwrap_or("(no error field)");
        return v(
            Outcome::Fail,
            format!("HTTP {status} instead of a token: error={error}"),
            ev,
        );
    }
    let mut problems = Vec::new();
    if json["access_token"].as_str().is_none_or(str::is_empty) {
        problems.push("no access_token".to_string());
    }
    if !json["token_type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        problems.push(format!(
            "token_type is {} instead of Bearer",
            json["token_type"]
        ));
    }
    match json["expires_in"].as_u64() {
        Some(e) if e > 0 && e <= max_expires_in => {}
        _ => problems.push(format!(
            "expires_in is {} (expected 1..={max_expires_in})",
            json["expires_in"]
        )),
    }
    if json["refresh_token"].as_str().is_none_or(str::is_empty) {
        problems.push("no refresh_token".to_string());
    }
    match json["scope"].as_str() {
        None => problems.push("no scope: the granted gegevensdiensten are not stated".into()),
        Some(scope) => {
            let missing: Vec<&str> = services
                .iter()
                .map(String::as_str)
                .filter(|s| !grants(scope, s))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "scope {scope:?} does not grant gegevensdienst {}",
                    missing.join(", ")
                ));
            }
        }
    }
    if !h
        .header("cache-control")
        .is_some_and(|c| c.to_ascii_lowercase().contains("no-store"))
    {
        problems.push("Cache-Control: no-store missing (RFC 6749 §5.1)".to_string());
    }
    if problems.is_empty() {
        v(
            Outcome::Pass,
            format!(
                "token issued (expires_in {}, answered in {} ms)",
                json["expires_in"], h.elapsed_ms
            ),
            ev,
        )
    } else {
        v(
            Outcome::Fail,
            format!("token response not conformant: {}", problems.join("; ")),
            ev,
        )
    }
}

/// Whether a transport failure is a TLS-level refusal rather than an unreachable peer.
fn is_tls_refusal(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("alert") || r.contains("certificate")
}

fn token_refused(h: &HttpResult, expected: &str, tls_counts: bool) -> Verdict {
    let ev: Vec<usize> = h.seq.into_iter().collect();
    let status = match &h.outcome {
        HttpOutcome::Transport { reason } if tls_counts && is_tls_refusal(reason) => {
            return v(
                Outcome::Pass,
                format!("refused in the TLS handshake: {reason}"),
                ev,
            );
        }
        HttpOutcome::Transport { reason } => {
            return v(Outcome::Error, format!("no response: {reason}"), ev);
        }
        HttpOutcome::Response { status, .. } => *status,
    };
    let json = h.json().unwrap_or(Value::Null);
    if (200..300).contains(&status) && json.get("access_token").is_some() {
        return v(
            Outcome::Fail,
            format!("a token was issued (HTTP {status})"),
            ev,
        );
    }
    // RFC 6749 §5.2: 400, except that a failed client authentication may answer 401.
    let allowed: &[u16] = if expected == "invalid_client" {
        &[400, 401]
    } else {
        &[400]
    };
    if !allowed.contains(&status) {
        return v(
            Outcome::Fail,
            format!(
                "HTTP {status} is not the refusal RFC 6749 §5.2 prescribes for {expected} (HTTP {allowed:?})"
            ),
            ev,
        );
    }
    let Some(error) = json["error"].as_str() else {
        return v(
            Outcome::Fail,
            format!("HTTP {status} without an OAuth error body"),
            ev,
        );
    };
    if !RFC6749_ERRORS.contains(&error) {
        return v(
            Outcome::Fail,
            format!("error={error} is not an RFC 6749 error code"),
            ev,
        );
    }
    if error != expected {
        return v(
            Outcome::Fail,
            format!("refused with error={error}, expected {expected}"),
            ev,
        );
    }
    v(
        Outcome::Pass,
        format!("refused at the token endpoint: HTTP {status}, error={error}"),
        ev,
    )
}

fn fhir_searchset(h: &HttpResult, types: &[&str]) -> Verdict {
    let ev = h.seqs();
    let Searchset {
        first: bundle,
        resources,
    } = match searchset(h) {
        Ok(s) => s,
        Err(verdict) => return verdict,
    };
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "searchset" {
        return v(
            Outcome::Fail,
            format!(
                "expected a searchset Bundle, got {} of type {}",
                bundle["resourceType"], bundle["type"]
            ),
            ev,
        );
    }
    let mut problems = Vec::new();
    if !resources.iter().any(|r| r["resourceType"] == types[0]) {
        problems.push(format!("no {} in the result", types[0]));
    }
    for r in &resources {
        let t = r["resourceType"].as_str().unwrap_or("?");
        let id = r["id"].as_str().unwrap_or("?");
        if !types.contains(&t) {
            problems.push(format!("unexpected {t}/{id}"));
        }
        if r["meta"]["profile"].as_array().is_none_or(|p| p.is_empty()) {
            problems.push(format!("{t}/{id} has no meta.profile"));
        }
    }
    if problems.is_empty() {
        v(
            Outcome::Pass,
            format!(
                "searchset Bundle with {} resources, all with meta.profile",
                resources.len()
            ),
            ev,
        )
    } else {
        v(Outcome::Fail, problems.join("; "), ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back(params: &[(&str, &str)], sent_state: Option<&str>) -> AuthorizeResult {
        AuthorizeResult {
            sent_state: sent_state.map(str::to_string),
            outcome: AuthorizeOutcome::RedirectedBack {
                params: params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                seq: 3,
            },
            evidence: vec![0, 1, 2, 3],
        }
    }

    fn page() -> AuthorizeResult {
        AuthorizeResult {
            sent_state: Some("s".into()),
            outcome: AuthorizeOutcome::Page {
                status: 400,
                title: Some("Fout".into()),
                seq: 1,
            },
            evidence: vec![0, 1],
        }
    }

    fn broken() -> AuthorizeResult {
        AuthorizeResult {
            sent_state: None,
            outcome: AuthorizeOutcome::Broken {
                reason: "connection refused".into(),
                seq: None,
            },
            evidence: vec![],
        }
    }

    fn http(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResult {
        HttpResult {
            seq: Some(7),
            outcome: HttpOutcome::Response {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: body.to_string(),
            },
            elapsed_ms: 5,
            pages: Vec::new(),
            paging_stopped: None,
            paging_notes: Vec::new(),
            parsed: Default::default(),
        }
    }

    fn transport(reason: &str) -> HttpResult {
        HttpResult {
            seq: Some(7),
            outcome: HttpOutcome::Transport {
                reason: reason.into(),
            },
            elapsed_ms: 5,
            pages: Vec::new(),
            paging_stopped: None,
            paging_notes: Vec::new(),
            parsed: Default::default(),
        }
    }

    #[test]
    fn code_issued_branches() {
        assert_eq!(
            code_issued(&back(&[("code", "c")], None)).outcome,
            Outcome::Pass
        );
        assert_eq!(
            code_issued(&back(&[("error", "access_denied")], None)).outcome,
            Outcome::Fail
        );
        assert_eq!(code_issued(&back(&[], None)).outcome, Outcome::Fail);
        assert_eq!(code_issued(&page()).outcome, Outcome::Fail);
        assert_eq!(code_issued(&broken()).outcome, Outcome::Error);
    }

    #[test]
    fn state_echoed_branches() {
        assert_eq!(
            state_echoed(&back(&[("code", "c"), ("state", "s")], Some("s"))).outcome,
            Outcome::Pass
        );
        assert_eq!(
            state_echoed(&back(&[("code", "c")], Some("s"))).outcome,
            Outcome::Fail
        );
        assert_eq!(
            state_echoed(&back(&[("code", "c"), ("state", "fixed")], Some("s"))).outcome,
            Outcome::Fail
        );
        assert_eq!(
            state_echoed(&back(&[("code", "c")], None)).outcome,
            Outcome::Skip
        );
        assert_eq!(state_echoed(&page()).outcome, Outcome::Error);
        // An error redirect is no authorization response, however well it echoes the state.
        assert_eq!(
            state_echoed(&back(
                &[("error", "access_denied"), ("state", "s")],
                Some("s")
            ))
            .outcome,
            Outcome::Error
        );
    }

    /// A trace in which the browser never left the DVA (a refusal at the request).
    fn at_request() -> Trace {
        Trace::default()
    }

    /// A trace in which the DVA resolved the login's artifact (exchange 2), before anything the
    /// helpers above return at exchange 3; the consent answer at 2 as well.
    fn after_login() -> Trace {
        Trace {
            reached_tvs: Some(1),
            artifact_resolved: Some(2),
            consent_posted: Some(2),
        }
    }

    fn dva_page(seq: usize, to: Party) -> Vec<Exchange> {
        vec![Exchange {
            seq,
            step: Some("authorize".into()),
            from: Party::Browser,
            to,
            method: "GET".into(),
            url: "https://dva/oauth/authorize".into(),
            request_headers: vec![],
            request_body: None,
            status: Some(400),
            response_headers: vec![],
            response_body: None,
            transport_error: None,
            elapsed_ms: Some(1),
        }]
    }

    #[test]
    fn error_redirect_branches() {
        let ok = back(
            &[
                ("error", "invalid_scope"),
                ("error_description", "onbekend"),
                ("state", "s"),
            ],
            Some("s"),
        );
        let judge =
            |a: &AuthorizeResult| error_redirect(a, "invalid_scope", Stage::Request, &at_request());
        let unexplained = back(&[("error", "invalid_scope"), ("state", "s")], Some("s"));
        assert_eq!(judge(&unexplained).outcome, Outcome::Fail);
        assert_eq!(judge(&ok).outcome, Outcome::Pass);
        let numeric = back(&[("error", "400"), ("state", "s")], Some("s"));
        let verdict = judge(&numeric);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains("not an RFC 6749"));
        assert_eq!(
            judge(&back(
                &[("error", "invalid_request"), ("state", "s")],
                Some("s")
            ))
            .outcome,
            Outcome::Fail
        );
        let stateless = judge(&back(
            &[("error", "invalid_scope"), ("error_description", "x")],
            Some("s"),
        ));
        assert_eq!(stateless.outcome, Outcome::Fail);
        assert!(
            stateless.message.contains("without the state"),
            "{}",
            stateless.message
        );
        assert_eq!(
            judge(&back(&[("code", "c")], Some("s"))).outcome,
            Outcome::Fail
        );
        assert_eq!(judge(&page()).outcome, Outcome::Fail);
        // Refused, but only after a login: the wrong stage for a request error.
        let late = error_redirect(&ok, "invalid_scope", Stage::Request, &after_login());
        assert_eq!(late.outcome, Outcome::Fail, "{}", late.message);
        assert!(late.message.contains("TVS"), "{}", late.message);
    }

    /// The stimulus of a login- or consent-stage refusal never reached the DVA: `error`, never
    /// `pass`, however well-formed the refusal.
    #[test]
    fn error_redirect_without_its_stimulus_is_an_error() {
        let denied = back(
            &[
                ("error", "access_denied"),
                ("error_description", "geannuleerd"),
                ("state", "s"),
            ],
            Some("s"),
        );
        for stage in [Stage::Login, Stage::Consent] {
            let verdict = error_redirect(&denied, "access_denied", stage, &at_request());
            assert_eq!(
                verdict.outcome,
                Outcome::Error,
                "{stage:?}: {}",
                verdict.message
            );
            assert!(verdict.message.contains("could not exercise"));
            assert_eq!(
                error_redirect(&denied, "access_denied", stage, &after_login()).outcome,
                Outcome::Pass
            );
        }
        let no_answer = Trace {
            consent_posted: None,
            ..after_login()
        };
        assert_eq!(
            error_redirect(&denied, "access_denied", Stage::Consent, &no_answer).outcome,
            Outcome::Error
        );
    }

    #[test]
    fn login_refused_branches() {
        let denied = back(
            &[
                ("error", "access_denied"),
                ("error_description", "inloggen mislukt"),
                ("state", "s"),
            ],
            Some("s"),
        );
        assert_eq!(
            login_refused(&back(&[("code", "c")], None), &after_login()).outcome,
            Outcome::Fail
        );
        assert_eq!(
            login_refused(&denied, &after_login()).outcome,
            Outcome::Pass
        );
        // A dead end after the login is no OAuth error to the PGO.
        assert_eq!(
            login_refused(&page(), &after_login()).outcome,
            Outcome::Fail
        );
        let other = back(
            &[
                ("error", "invalid_request"),
                ("error_description", "x"),
                ("state", "s"),
            ],
            Some("s"),
        );
        assert_eq!(login_refused(&other, &after_login()).outcome, Outcome::Fail);
        assert_eq!(
            login_refused(&broken(), &after_login()).outcome,
            Outcome::Error
        );
    }

    /// The faulty artifact was never resolved (the DVA has no login step, or the browser
    /// stopped before it): no pass, whatever the browser saw.
    #[test]
    fn login_refused_without_its_stimulus_is_an_error() {
        let denied = back(
            &[
                ("error", "access_denied"),
                ("error_description", "x"),
                ("state", "s"),
            ],
            Some("s"),
        );
        for a in [denied, page()] {
            let verdict = login_refused(&a, &at_request());
            assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
        }
        let only_tvs = Trace {
            reached_tvs: Some(1),
            ..Trace::default()
        };
        assert_eq!(login_refused(&page(), &only_tvs).outcome, Outcome::Error);
    }

    #[test]
    fn error_page_branches() {
        let served = dva_page(1, Party::Dva);
        assert_eq!(
            error_page(&page(), &at_request(), &served).outcome,
            Outcome::Pass
        );
        let redirected = error_page(
            &back(&[("error", "invalid_request")], None),
            &at_request(),
            &served,
        );
        assert_eq!(redirected.outcome, Outcome::Fail);
        assert!(
            redirected.message.contains("unverified redirect URI"),
            "{}",
            redirected.message
        );
        assert_eq!(
            error_page(&back(&[("code", "c")], None), &at_request(), &served).outcome,
            Outcome::Fail
        );
        assert_eq!(
            error_page(&broken(), &at_request(), &served).outcome,
            Outcome::Error
        );
        // A page after a login started is no error page at the request.
        assert_eq!(
            error_page(&page(), &after_login(), &served).outcome,
            Outcome::Fail
        );
        // An HTTP 200 page cannot be told from an undriven landing page.
        let mut ok_page = page();
        ok_page.outcome = AuthorizeOutcome::Page {
            status: 200,
            title: None,
            seq: 1,
        };
        assert_eq!(
            error_page(&ok_page, &at_request(), &served).outcome,
            Outcome::Fail
        );
    }

    /// The page the browser stopped on was not the DVA's (say the TVS's, or no recorded
    /// exchange at all): the untrusted request was never shown to be refused by the DVA.
    #[test]
    fn error_page_without_its_stimulus_is_an_error() {
        for exchanges in [dva_page(1, Party::Tvs), vec![]] {
            let verdict = error_page(&page(), &at_request(), &exchanges);
            assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
        }
    }

    /// Every negative check passes only with its control accepted; a refused, missing or
    /// broken control turns a well-formed refusal into `error` (a skipped one into `skip`).
    #[test]
    fn a_refusal_without_an_accepted_control_is_an_error() {
        let code = StepResult::Authorize(back(&[("code", "c"), ("state", "s")], Some("s")));
        let token = StepResult::Http(http(200, &[], r#"{"access_token":"a"}"#));
        let bundle = StepResult::Http(http(200, &[], r#"{"resourceType":"Bundle"}"#));
        assert!(control_accepted("c", &BTreeMap::from([("c".into(), code)])).is_ok());
        assert!(control_accepted("c", &BTreeMap::from([("c".into(), token)])).is_ok());
        assert!(control_accepted("c", &BTreeMap::from([("c".into(), bundle)])).is_ok());
        for refused in [
            StepResult::Authorize(back(&[("error", "401"), ("state", "s")], Some("s"))),
            StepResult::Authorize(page()),
            StepResult::Authorize(broken()),
            StepResult::Http(http(400, &[], r#"{"error":"invalid_grant"}"#)),
            StepResult::Http(http(401, &[], r#"{"resourceType":"OperationOutcome"}"#)),
            StepResult::Http(http(200, &[], "{}")),
            StepResult::Http(transport("connection refused")),
            StepResult::NotRun {
                reason: "no code".into(),
            },
        ] {
            let results = BTreeMap::from([("c".to_string(), refused)]);
            let verdict = control_accepted("c", &results).unwrap_err();
            assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
            assert!(verdict.message.contains("could not prove the cause"));
        }
        let skipped = BTreeMap::from([(
            "c".to_string(),
            StepResult::Skipped {
                reason: "no second PGO".into(),
            },
        )]);
        assert_eq!(
            control_accepted("c", &skipped).unwrap_err().outcome,
            Outcome::Skip
        );
        assert_eq!(
            control_accepted("missing", &BTreeMap::new())
                .unwrap_err()
                .outcome,
            Outcome::Error
        );
    }

    #[test]
    fn references_and_codings_branches() {
        let bundle = |resources: &str| {
            http(
                200,
                &[],
                &format!(r#"{{"resourceType":"Bundle","type":"searchset","entry":[{resources}]}}"#),
            )
        };
        let comp = |enc: &str| {
            format!(
                r#"{{"resource":{{"resourceType":"Composition","id":"c","encounter":{{"reference":"{enc}"}},"type":{{"coding":[{{"system":"http://loinc.org","code":"67781-5"}}]}}}}}}"#
            )
        };
        let encounters = bundle(r#"{"resource":{"resourceType":"Encounter","id":"e"}}"#);
        let mut results = BTreeMap::new();
        results.insert(
            "encounters".to_string(),
            StepResult::Http(encounters.clone()),
        );
        let journal = bundle(&comp("Encounter/e"));
        results.insert("journal".to_string(), StepResult::Http(journal.clone()));
        assert_eq!(
            references_resolve(&journal, &results).outcome,
            Outcome::Pass
        );
        let broken = bundle(&comp("https://dva/fhir/Encounter/weg"));
        assert_eq!(references_resolve(&broken, &results).outcome, Outcome::Fail);
        let condition = bundle(
            r#"{"resource":{"resourceType":"EpisodeOfCare","id":"x","diagnosis":[{"condition":{"reference":"Condition/c"}}]}}"#,
        );
        let verdict = references_resolve(&condition, &results);
        assert!(
            verdict.outcome == Outcome::Pass && verdict.message.contains("Condition"),
            "{}",
            verdict.message
        );

        assert_eq!(codings_complete(&journal).outcome, Outcome::Pass);
        let systemless =
            bundle(&comp("Encounter/e").replace(r#""system":"http://loinc.org","#, ""));
        assert_eq!(codings_complete(&systemless).outcome, Outcome::Fail);
        assert_eq!(
            codings_complete(&encounters).outcome,
            Outcome::Fail,
            "a coded result without codings"
        );
    }

    #[test]
    fn paging_bsn_and_contained_branches() {
        let page = |total: u64, ids: &[&str], next: bool| {
            let entries: Vec<String> = ids
                .iter()
                .map(|id| {
                    format!(
                        r#"{{"resource":{{"resourceType":"Observation","id":"{id}"}},"search":{{"mode":"match"}}}}"#
                    )
                })
                .collect();
            let link = if next {
                r#",{"relation":"next","url":"https://dva/fhir/Observation?_page=2"}"#
            } else {
                ""
            };
            http(
                200,
                &[],
                &format!(
                    r#"{{"resourceType":"Bundle","type":"searchset","total":{total},"link":[{{"relation":"self","url":"https://dva/fhir/Observation"}}{link}],"entry":[{}]}}"#,
                    entries.join(",")
                ),
            )
        };
        let two_pages = |second: HttpResult| {
            let mut first = page(3, &["a", "b"], true);
            first.pages.push(second);
            first
        };
        assert_eq!(
            paged(&two_pages(page(3, &["c"], false)), 2).outcome,
            Outcome::Pass
        );
        let too_big = paged(&two_pages(page(3, &["c"], false)), 1);
        assert!(
            too_big.message.contains("more than 1"),
            "{}",
            too_big.message
        );
        let short = paged(&two_pages(page(3, &[], false)), 2);
        assert!(short.message.contains("total says 3"), "{}", short.message);
        let twice = paged(&two_pages(page(3, &["a"], false)), 2);
        assert!(twice.message.contains("two pages"), "{}", twice.message);
        let mut stopped = two_pages(page(3, &["c"], false));
        stopped.paging_stopped = Some("stopped following next links: a loop".into());
        assert_eq!(paged(&stopped, 2).outcome, Outcome::Fail);
        let refused = two_pages(http(401, &[], "{}"));
        let verdict = searchset_verdict(&refused);
        assert!(
            verdict.message.starts_with("page 2: HTTP 401"),
            "{}",
            verdict.message
        );
        assert_eq!(
            bundle_resources(&two_pages(page(3, &["c"], false))).len(),
            3
        );

        let patient = |identifier: &str| {
            http(
                200,
                &[],
                &format!(
                    r#"{{"resourceType":"Bundle","type":"searchset","entry":[{{"resource":{{"resourceType":"Patient","id":"p","identifier":[{identifier}]}}}}]}}"#
                ),
            )
        };
        let masked = r#"{"system":"http://fhir.nl/fhir/NamingSystem/bsn","_value":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]}}"#;
        assert_eq!(
            no_bsn_in_bundle(&patient(masked), "999911533").outcome,
            Outcome::Pass
        );
        let bare = r#"{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"999911533"}"#;
        assert_eq!(
            no_bsn_in_bundle(&patient(bare), "999911533").outcome,
            Outcome::Fail
        );
        let elsewhere = r#"{"system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"999911533"}"#;
        assert_eq!(
            no_bsn_in_bundle(&patient(elsewhere), "999911533").outcome,
            Outcome::Fail
        );

        let comp = |contained: &str| {
            http(
                200,
                &[],
                &format!(
                    r##"{{"resourceType":"Bundle","type":"searchset","entry":[{{"resource":{{"resourceType":"Composition","id":"c","section":[{{"entry":[{{"reference":"#je"}}]}}],"contained":[{contained}]}}}}]}}"##
                ),
            )
        };
        let results = BTreeMap::new();
        let entry = r#"{"resourceType":"Observation","id":"je","code":{"coding":[{"system":"http://fhir.nl/fhir/NamingSystem/journaalregeltypen","code":"E"}]}}"#;
        assert_eq!(
            references_resolve(&comp(entry), &results).outcome,
            Outcome::Pass
        );
        assert_eq!(
            references_resolve(&comp(""), &results).outcome,
            Outcome::Fail
        );
    }

    /// The first failing verdict of the checks that read a search over all its pages.
    fn searchset_verdict(h: &HttpResult) -> Verdict {
        match searchset(h) {
            Ok(_) => v(Outcome::Pass, "", vec![]),
            Err(verdict) => verdict,
        }
    }

    #[test]
    fn token_issued_branches() {
        let svc = vec!["49".to_string()];
        let good = r#"{"access_token":"a","token_type":"Bearer","expires_in":900,"refresh_token":"r","scope":"49"}"#;
        for (scope, outcome) in [
            (r#","scope":"48 49""#, Outcome::Pass),
            (r#","scope":"praktijk~49""#, Outcome::Pass),
            (r#","scope":"48""#, Outcome::Fail),
            (r#","scope":"praktijk~149""#, Outcome::Fail),
            ("", Outcome::Fail),
        ] {
            let body = good.replace(r#","scope":"49""#, scope);
            let verdict = token_issued(
                &http(200, &[("cache-control", "no-store")], &body),
                900,
                &svc,
            );
            assert_eq!(verdict.outcome, outcome, "{scope}: {}", verdict.message);
        }
        assert_eq!(
            token_issued(
                &http(200, &[("cache-control", "no-store")], good),
                900,
                &svc
            )
            .outcome,
            Outcome::Pass
        );
        let no_store = token_issued(&http(200, &[], good), 900, &svc);
        assert_eq!(no_store.outcome, Outcome::Fail);
        assert!(no_store.message.contains("no-store"));
        let long = good.replace("900", "3600");
        assert_eq!(
            token_issued(
                &http(200, &[("cache-control", "no-store")], &long),
                900,
                &svc
            )
            .outcome,
            Outcome::Fail
        );
        assert_eq!(
            token_issued(&http(400, &[], r#"{"error":"invalid_grant"}"#), 900, &svc).outcome,
            Outcome::Fail
        );
        assert_eq!(
            token_issued(&transport("connection refused"), 900, &svc).outcome,
            Outcome::Error
        );
    }

    #[test]
    fn token_refused_branches() {
        let judge = |status, body: &str, expected| {
            token_refused(&http(status, &[], body), expected, false).outcome
        };
        assert_eq!(
            judge(400, r#"{"error":"invalid_grant"}"#, "invalid_grant"),
            Outcome::Pass
        );
        assert_eq!(
            judge(400, r#"{"error":"invalid_request"}"#, "invalid_grant"),
            Outcome::Fail
        );
        assert_eq!(
            judge(400, r#"{"error":"400"}"#, "invalid_grant"),
            Outcome::Fail
        );
        assert_eq!(
            judge(200, r#"{"access_token":"a"}"#, "invalid_grant"),
            Outcome::Fail
        );
        assert_eq!(judge(500, "oops", "invalid_grant"), Outcome::Fail);
        // Exact status: 401 only for invalid_client (RFC 6749 §5.2).
        assert_eq!(
            judge(401, r#"{"error":"invalid_grant"}"#, "invalid_grant"),
            Outcome::Fail
        );
        assert_eq!(
            judge(403, r#"{"error":"invalid_grant"}"#, "invalid_grant"),
            Outcome::Fail
        );
        assert_eq!(
            judge(401, r#"{"error":"invalid_client"}"#, "invalid_client"),
            Outcome::Pass
        );
        assert_eq!(
            judge(400, r#"{"error":"invalid_client"}"#, "invalid_client"),
            Outcome::Pass
        );
        let alert = transport("error sending request: received fatal alert: CertificateRequired");
        assert_eq!(
            token_refused(&alert, "invalid_client", true).outcome,
            Outcome::Pass
        );
        assert_eq!(
            token_refused(&alert, "invalid_client", false).outcome,
            Outcome::Error
        );
        assert_eq!(
            token_refused(&transport("connection refused"), "invalid_client", true).outcome,
            Outcome::Error
        );
    }

    /// A token request that never got an answer from the token endpoint proves nothing.
    #[test]
    fn token_refused_without_its_stimulus_is_an_error() {
        for reason in ["connection refused", "operation timed out", "dns error"] {
            let verdict = token_refused(&transport(reason), "invalid_grant", true);
            assert_eq!(verdict.outcome, Outcome::Error, "{reason}");
        }
    }

    #[test]
    fn resource_refused_branches() {
        let challenge = [("www-authenticate", "Bearer error=\"invalid_token\"")];
        let outcome = |code: &str| {
            format!(
                r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"error","code":"{code}"}}]}}"#
            )
        };
        let judge = |status, headers: &[(&str, &str)], body: &str, issue| {
            resource_refused(
                &http(status, headers, body),
                401,
                Some("invalid_token"),
                issue,
            )
        };
        assert_eq!(
            judge(401, &challenge, &outcome("security"), "security").outcome,
            Outcome::Pass
        );
        let wrong_issue = judge(401, &challenge, &outcome("processing"), "security");
        assert_eq!(wrong_issue.outcome, Outcome::Fail);
        assert!(
            wrong_issue.message.contains("issue.code"),
            "{}",
            wrong_issue.message
        );
        assert_eq!(
            judge(401, &[], &outcome("security"), "security").outcome,
            Outcome::Fail
        );
        assert_eq!(
            judge(401, &challenge, "{}", "security").outcome,
            Outcome::Fail
        );
        assert_eq!(
            judge(403, &challenge, &outcome("security"), "security").outcome,
            Outcome::Fail
        );
        assert_eq!(
            judge(200, &[], r#"{"resourceType":"Bundle"}"#, "security").outcome,
            Outcome::Fail
        );
    }

    /// A resource request that never got an answer proves nothing.
    #[test]
    fn resource_refused_without_its_stimulus_is_an_error() {
        let verdict = resource_refused(&transport("connection reset"), 401, None, "security");
        assert_eq!(verdict.outcome, Outcome::Error);
    }

    #[test]
    fn fhir_searchset_branches() {
        let types = &["MedicationRequest", "Medication"];
        let entry = |t: &str, profile: bool| {
            let meta = if profile {
                r#","meta":{"profile":["p"]}"#
            } else {
                ""
            };
            format!(r#"{{"resource":{{"resourceType":"{t}","id":"x"{meta}}}}}"#)
        };
        let bundle = |kind: &str, entries: &[String]| {
            format!(
                r#"{{"resourceType":"Bundle","type":"{kind}","entry":[{}]}}"#,
                entries.join(",")
            )
        };
        let ok = bundle(
            "searchset",
            &[entry("MedicationRequest", true), entry("Medication", true)],
        );
        assert_eq!(
            fhir_searchset(&http(200, &[], &ok), types).outcome,
            Outcome::Pass
        );
        let collection = bundle("collection", &[entry("MedicationRequest", true)]);
        assert_eq!(
            fhir_searchset(&http(200, &[], &collection), types).outcome,
            Outcome::Fail
        );
        let no_profile = bundle("searchset", &[entry("MedicationRequest", false)]);
        assert!(
            fhir_searchset(&http(200, &[], &no_profile), types)
                .message
                .contains("meta.profile")
        );
        let stranger = bundle(
            "searchset",
            &[entry("MedicationRequest", true), entry("Patient", true)],
        );
        assert_eq!(
            fhir_searchset(&http(200, &[], &stranger), types).outcome,
            Outcome::Fail
        );
        let empty = bundle("searchset", &[]);
        assert_eq!(
            fhir_searchset(&http(200, &[], &empty), types).outcome,
            Outcome::Fail
        );
        assert_eq!(
            fhir_searchset(&http(401, &[], "{}"), types).outcome,
            Outcome::Fail
        );
        assert_eq!(
            fhir_searchset(&transport("timed out"), types).outcome,
            Outcome::Error
        );
    }
}
