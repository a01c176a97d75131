//! Searchset Bundles over all their pages: the resource types and `meta.profile` of a query, and paging.

use super::*;

pub(super) fn paged(h: &HttpResult, max_entries: usize) -> Verdict {
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
        v(Outcome::Fail, problem_list(&problems), ev)
    }
}

/// A search's answer over all its pages: the first page's Bundle, and the resources of every
/// page's entries, borrowed.
pub(super) struct Searchset<'a> {
    pub(super) first: &'a Value,
    pub(super) resources: Vec<&'a Value>,
}

/// The searchset of HTTP 200 JSON answers, or the verdict when a page is not one.
pub(super) fn searchset(h: &HttpResult) -> Result<Searchset<'_>, Verdict> {
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
pub(super) fn entries_of(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
}

pub(super) fn fhir_searchset(h: &HttpResult, types: &[&str]) -> Verdict {
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
        v(Outcome::Fail, problem_list(&problems), ev)
    }
}
