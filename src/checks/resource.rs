//! The resource-endpoint checks: exact refusals, no BSN in links, response-time budgets.

use super::*;

pub(super) fn resource_refused(
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
            format!("HTTP {status}, but: {}", problem_list(&problems)),
            ev,
        )
    }
}

/// The BSN naming system, or a 9-digit number passing the 11-check, in a link.
pub(super) fn names_a_bsn(link: &str) -> bool {
    link.contains("NamingSystem/bsn")
        || link.contains("NamingSystem%2Fbsn")
        || link
            .split(|c: char| !c.is_ascii_digit())
            .any(crate::ids::is_valid_bsn)
}

/// Every `link.url` and `entry.fullUrl` of a Bundle.
pub(super) fn links_of(bundle: &Value) -> Vec<&str> {
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

pub(super) fn no_bsn_in_links(h: &HttpResult) -> Verdict {
    let ev = h.seqs();
    // A refusal has no links: only a searchset shows that none names a BSN.
    if let Err(verdict) = searchset(h) {
        return verdict;
    }
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
pub(super) fn within_budget(h: &HttpResult, budget_ms: u64) -> Verdict {
    let ev = h.seqs();
    for page in h.all_pages() {
        let (status, _) = match response(page) {
            Ok(x) => x,
            Err(verdict) => return verdict,
        };
        // A quick refusal says nothing about how long the real answer takes.
        if !(200..300).contains(&status) {
            return v(
                Outcome::Error,
                format!(
                    "HTTP {status}: the request did not succeed, so its answer time proves nothing about the budget"
                ),
                ev,
            );
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
