//! The GP-record checks: set-based completeness and privacy against the manifest, references, codings, profile validity, no BSN in a Bundle; the judge's own journal-line classifier.

use super::*;

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

/// The resources of a FHIR step's searchset, over all its pages.
pub(super) fn bundle_resources(h: &HttpResult) -> Vec<&Value> {
    h.all_pages()
        .filter_map(|p| p.json_ref())
        .flat_map(entries_of)
        .collect()
}

/// References a GP-record resource makes, by the paths service 49 uses.
pub(super) fn references_of(r: &Value) -> Vec<String> {
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

pub(super) fn references_resolve(
    h: &HttpResult,
    results: &BTreeMap<String, StepResult>,
) -> Verdict {
    let ev = h.seqs();
    // A refusal has no references: only a searchset shows that they resolve.
    if let Err(verdict) = searchset(h) {
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

pub(super) fn codings_complete(h: &HttpResult) -> Verdict {
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

pub(super) fn dataset_complete(
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

pub(super) fn profile_valid(h: &HttpResult) -> Verdict {
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
pub(super) fn bsn_identifiers<'a>(v: &'a Value, path: &mut Vec<&'a str>, found: &mut Vec<String>) {
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

pub(super) fn no_bsn_in_bundle(h: &HttpResult, bsn: &str) -> Verdict {
    let ev = h.seqs();
    // A refusal carries no BSN: only a searchset shows that the record does not.
    if let Err(verdict) = searchset(h) {
        return verdict;
    }
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
        v(Outcome::Fail, problem_list(&found), ev)
    }
}
