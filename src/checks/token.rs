//! The token-endpoint checks: a conformant token response with its granted scope, an exact refusal, a rotated refresh token.

use super::*;

pub(super) fn refresh_rotated(h: &HttpResult, previous: Option<&StepResult>) -> Verdict {
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

/// Whether a token response's `scope` grants gegevensdienst `service`: as its id (`49`) or
/// as `naam~id` [U: the 2.x response format is not normative; granted ids are what DVAs send].
pub(super) fn grants(scope: &str, service: &str) -> bool {
    scope
        .split(' ')
        .any(|t| t == service || t.rsplit_once('~').is_some_and(|(_, id)| id == service))
}

pub(super) fn token_issued(h: &HttpResult, max_expires_in: u64, services: &[String]) -> Verdict {
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
            format!("token response not conformant: {}", problem_list(&problems)),
            ev,
        )
    }
}

/// Whether a transport failure is a TLS-level refusal rather than an unreachable peer.
pub(super) fn is_tls_refusal(reason: &str) -> bool {
    super::tls::tls_refusal(reason)
}

pub(super) fn token_refused(h: &HttpResult, expected: &str, tls_counts: bool) -> Verdict {
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
