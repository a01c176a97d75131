//! The authorization-step checks: the code and its state, error redirects, refused logins and error pages, each proven at its stage from the recorded exchanges ([`Trace`]).

use super::*;

pub(super) fn not_back(a: &AuthorizeResult, what: &str) -> Verdict {
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

/// What the recorded exchanges of one authorize step show about how far it got: the judge
/// reads these from the log, not from the parties' own accounts.
#[derive(Debug, Default)]
pub(super) struct Trace {
    /// The first request the browser sent to the mock TVS.
    pub(super) reached_tvs: Option<usize>,
    /// The mock TVS's record of answering the DVA's ArtifactResolve (the DVA fetched what the
    /// login produced, faulty or not).
    pub(super) artifact_resolved: Option<usize>,
    /// The forms the browser posted to the DVA after the artifact was resolved: a consent
    /// refusal must be the answer to one of them.
    pub(super) posted_after_login: Vec<usize>,
    /// The browser's first request to the DVA carrying a `SAMLart` (the artifact delivered).
    pub(super) artifact_delivered: Option<usize>,
    /// Any request the DVA made to the mock TVS during the step (a resolution, answered or not).
    pub(super) dva_asked_tvs: Option<usize>,
}

pub(super) fn trace(exchanges: &[Exchange], step: &str) -> Trace {
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
            (Party::Browser, Party::Dva, "POST") if t.artifact_resolved.is_some() => {
                t.posted_after_login.push(x.seq)
            }
            _ => {}
        }
        if x.from == Party::Browser
            && x.to == Party::Dva
            && x.url.contains("SAMLart=")
            && t.artifact_delivered.is_none()
        {
            t.artifact_delivered = Some(x.seq);
        }
        if x.from == Party::Dva && x.to == Party::Tvs && t.dva_asked_tvs.is_none() {
            t.dva_asked_tvs = Some(x.seq);
        }
    }
    t
}

/// Whether the step's exchanges show its stimulus reached `stage` before the refusal at
/// `refused`: the evidence, or `fail` (refused at a later stage than the rule says) or `error`
/// (the stimulus never got there, so the refusal proves nothing) with the reason.
pub(super) fn reached(
    t: &Trace,
    stage: Stage,
    refused: usize,
) -> Result<Vec<usize>, (Outcome, String)> {
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
            // The refusal must answer a form posted after the login (the consent answer).
            t.posted_after_login.contains(&refused).then_some(refused),
        ) {
            (Some(a), Some(c)) => Ok(vec![a, c]),
            (None, _) => Err(unresolved()),
            (Some(_), None) => Err((
                Outcome::Error,
                "could not exercise the consent screen: the refusal did not answer a form posted after the login".into(),
            )),
        },
    }
}

pub(super) fn back_seq(a: &AuthorizeResult) -> Vec<usize> {
    match &a.outcome {
        AuthorizeOutcome::RedirectedBack { seq, .. } => vec![*seq],
        _ => a.evidence.clone(),
    }
}

pub(super) fn describe_error(a: &AuthorizeResult) -> String {
    let e = a.param("error").unwrap_or("");
    match a.param("error_description") {
        Some(d) => format!("error={e} ({d})"),
        None => format!("error={e}"),
    }
}

pub(super) fn code_issued(a: &AuthorizeResult) -> Verdict {
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

pub(super) fn state_echoed(a: &AuthorizeResult) -> Verdict {
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

pub(super) fn error_redirect(
    a: &AuthorizeResult,
    expected: &str,
    stage: Stage,
    t: &Trace,
) -> Verdict {
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
pub(super) fn oauth_error_problem(a: &AuthorizeResult, expected: &str) -> Option<String> {
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

/// What every check that wants no code says first: a broken front channel proves nothing, and a
/// code means `what` was accepted.
fn broken_or_accepted(a: &AuthorizeResult, what: &str) -> Option<Verdict> {
    match &a.outcome {
        AuthorizeOutcome::Broken { reason, .. } => Some(v(
            Outcome::Error,
            format!("the front channel broke off: {reason}"),
            a.evidence.clone(),
        )),
        AuthorizeOutcome::RedirectedBack { .. } if a.param("code").is_some() => Some(v(
            Outcome::Fail,
            format!("{what} was accepted: an authorization code reached the PGO"),
            a.evidence.clone(),
        )),
        _ => None,
    }
}

/// A login refusal: after the DVA resolved the faulty artifact, `access_denied` to the PGO. With
/// `before_resolution`, the DVA must refuse the delivered artifact without resolving it.
pub(super) fn login_refused(a: &AuthorizeResult, t: &Trace, before_resolution: bool) -> Verdict {
    if let Some(verdict) = broken_or_accepted(a, "the faulty login") {
        return verdict;
    }
    if before_resolution {
        return refused_unresolved(a, t);
    }
    match &a.outcome {
        AuthorizeOutcome::Broken { .. } => unreachable_verdict(),
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
pub(super) fn error_page(a: &AuthorizeResult, t: &Trace, exchanges: &[Exchange]) -> Verdict {
    if let Some(verdict) = broken_or_accepted(a, "the untrusted request") {
        return verdict;
    }
    match &a.outcome {
        AuthorizeOutcome::Broken { .. } => unreachable_verdict(),
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

/// An artifact the DVA must not resolve (its SourceID names no TVS it knows): delivered by the
/// browser, never sent to the TVS, and answered with `access_denied`.
fn refused_unresolved(a: &AuthorizeResult, t: &Trace) -> Verdict {
    let Some(delivered) = t.artifact_delivered else {
        return v(
            Outcome::Error,
            "could not exercise the login: the browser never delivered the artifact to the DVA",
            a.evidence.clone(),
        );
    };
    if let Some(asked) = t.dva_asked_tvs {
        return v(
            Outcome::Fail,
            format!(
                "the DVA sent an artifact whose SourceID is not the TVS's to the TVS to resolve (exchange {asked})"
            ),
            vec![delivered, asked],
        );
    }
    match &a.outcome {
        AuthorizeOutcome::Page { status, title, seq } => v(
            Outcome::Fail,
            format!(
                "the artifact was refused into a dead end: the browser stopped on a page (HTTP {status}, {:?}) instead of returning to the PGO with access_denied",
                title.as_deref().unwrap_or("untitled")
            ),
            vec![delivered, *seq],
        ),
        AuthorizeOutcome::RedirectedBack { seq, .. } => match a.param("error") {
            Some("access_denied") if a.param("state") != a.sent_state.as_deref() => v(
                Outcome::Fail,
                "the artifact was refused with access_denied, but without the state the PGO sent",
                vec![delivered, *seq],
            ),
            Some("access_denied") => v(
                Outcome::Pass,
                format!(
                    "refused without resolving it: the artifact delivered (exchange {delivered}) was never sent to the TVS, and the PGO got access_denied"
                ),
                vec![delivered, *seq],
            ),
            _ => v(
                Outcome::Fail,
                format!(
                    "the artifact was refused with {} instead of access_denied",
                    describe_error(a)
                ),
                vec![delivered, *seq],
            ),
        },
        AuthorizeOutcome::Broken { .. } => unreachable_verdict(),
    }
}

/// Two faulty logins refused alike: each a proven login refusal, and the same error and
/// error_description for both (no oracle telling their failures apart).
pub(super) fn same_refusal(
    a: &AuthorizeResult,
    ta: &Trace,
    b: &AuthorizeResult,
    tb: &Trace,
) -> Verdict {
    let first = login_refused(a, ta, false);
    let second = login_refused(b, tb, false);
    for (verdict, which) in [(&first, "the first"), (&second, "the second")] {
        if verdict.outcome != Outcome::Pass {
            return v(
                verdict.outcome,
                format!("{which} faulty login: {}", verdict.message),
                verdict.evidence.clone(),
            );
        }
    }
    let mut evidence = first.evidence.clone();
    evidence.extend(second.evidence.iter().copied());
    let answer = |r: &AuthorizeResult| {
        (
            r.param("error").unwrap_or("").to_string(),
            r.param("error_description").map(str::to_string),
        )
    };
    if answer(a) == answer(b) {
        v(
            Outcome::Pass,
            format!(
                "both refused alike after the DVA resolved each artifact: {}",
                describe_error(a)
            ),
            evidence,
        )
    } else {
        v(
            Outcome::Fail,
            format!(
                "the two failures are told apart to the PGO ({} against {}): an oracle on the decryption",
                describe_error(a),
                describe_error(b)
            ),
            evidence,
        )
    }
}

/// The external entity of an XXE stimulus was never fetched: the DVA resolved the message that
/// named it (the stimulus reached it), and no request of the DVA's came to the mock TVS's
/// entity listener (`/entity/…`).
pub(super) fn entity_not_fetched(t: &Trace, exchanges: &[Exchange], step: &str) -> Verdict {
    let fetched = exchanges.iter().find(|x| {
        x.step.as_deref() == Some(step)
            && x.from == Party::Dva
            && x.to == Party::Tvs
            && x.method == "GET"
            && x.url.contains("/entity/")
    });
    match (fetched, t.artifact_resolved) {
        (Some(x), _) => v(
            Outcome::Fail,
            format!(
                "the DVA fetched the external entity named in the message's DOCTYPE (XXE): {} (exchange {})",
                x.url, x.seq
            ),
            vec![x.seq],
        ),
        (None, None) => v(
            Outcome::Error,
            "could not exercise the parser: the DVA never resolved the message with the external entity",
            vec![],
        ),
        (None, Some(resolved)) => v(
            Outcome::Pass,
            "the DVA resolved the message naming an external entity and never fetched it",
            vec![resolved],
        ),
    }
}
