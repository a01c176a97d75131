//! The DVA's FHIR STU3 resource endpoint for gegevensdienst 49: searches over the record of the
//! patient bound to the access token, answered as searchset Bundles.
//!
//! The patient comes from the token only; `patient=`/`subject=` parameters are neither needed
//! nor honoured, and the BSN never appears in a link.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Dva;
use super::oauth::{bearer, parse_pairs};
use super::quirks::Quirk;
use crate::fixtures::Patient;

const FHIR_JSON: &str = "application/fhir+json; fhirVersion=3.0";

fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": text }]
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// Whether an `Accept` header allows FHIR STU3 JSON.
fn accepts_stu3_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return true };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let version_ok = parts
            .filter_map(|p| p.strip_prefix("fhirVersion="))
            .all(|v| v.trim_matches('"').starts_with("3.0"));
        matches!(
            media,
            "application/fhir+json" | "application/json+fhir" | "application/json" | "*/*"
        ) && version_ok
    })
}

/// GET /fhir/{resource_type}
pub async fn search(
    State(dva): State<Arc<Dva>>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let quirks = &dva.cfg.quirks;
    if quirks.has(Quirk::SlowResourceEndpoint) {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let grant = match bearer(&dva, &headers) {
        Ok(g) => g,
        Err(why) => {
            dva.note(format!("resource request refused: {why}"));
            let mut r = outcome(StatusCode::UNAUTHORIZED, "security", why);
            if !quirks.has(Quirk::NoBearerChallenge) {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            return r;
        }
    };
    if !grant.services.iter().any(|s| s == "49") && !quirks.has(Quirk::ScopeNotEnforcedAtResource) {
        dva.note("resource request refused: the token does not cover gegevensdienst 49");
        let mut r = outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            "token does not cover gegevensdienst 49",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
        );
        return r;
    }
    if !accepts_stu3_json(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
        && !quirks.has(Quirk::AcceptHeaderIgnored)
    {
        return outcome(
            StatusCode::BAD_REQUEST,
            "not-supported",
            "only FHIR STU3 (3.0) JSON is supported",
        );
    }
    let params = parse_pairs(query.as_deref());
    if quirks.has(Quirk::PatientParamRequired)
        && !params.iter().any(|(k, _)| k == "patient" || k == "subject")
    {
        return outcome(StatusCode::BAD_REQUEST, "required", "patient is required");
    }
    let Some(patient) = dva.cfg.patients.get(&grant.bsn) else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "no record for this token",
        );
    };
    let (matches, includes) = select(patient, &resource_type, &params);
    let base = format!("https://{}/fhir", dva.cfg.back_host);
    let mut self_link = match query.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => format!("{base}/{resource_type}?{q}"),
        None => format!("{base}/{resource_type}"),
    };
    if quirks.has(Quirk::BsnInSelfLink) {
        let sep = if self_link.contains('?') { '&' } else { '?' };
        self_link.push_str(&format!(
            "{sep}patient.identifier={}|{}",
            crate::fixtures::BSN_SYSTEM,
            grant.bsn
        ));
    }
    let strip_profile = dva.cfg.quirks.has(Quirk::MetaProfileMissing);
    let entry = |r: &Value, mode: &str| {
        let mut r = r.clone();
        if strip_profile {
            if let Some(meta) = r.get_mut("meta").and_then(Value::as_object_mut) {
                meta.remove("profile");
            }
        }
        let full_url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        json!({ "fullUrl": full_url, "resource": r, "search": { "mode": mode } })
    };
    let mut entries: Vec<Value> = matches.iter().map(|r| entry(r, "match")).collect();
    entries.extend(includes.iter().map(|r| entry(r, "include")));
    let bundle = json!({
        "resourceType": "Bundle",
        "id": crate::ids::uuid_v4(),
        "type": "searchset",
        "total": matches.len(),
        "link": [{ "relation": "self", "url": self_link }],
        "entry": entries,
    });
    let mut r = (StatusCode::OK, bundle.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

fn codings(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().flat_map(codings).collect(),
        Value::Object(o) => o
            .get("coding")
            .and_then(Value::as_array)
            .map(|c| c.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A `system|code` token (either part may be empty) matches a CodeableConcept.
fn token_matches(concept: &Value, token: &str) -> bool {
    let (system, code) = token.split_once('|').unwrap_or(("", token));
    codings(concept).iter().any(|c| {
        (system.is_empty() || c["system"] == system) && (code.is_empty() || c["code"] == code)
    })
}

fn period_of_use_end(r: &Value) -> Option<&str> {
    r["extension"]
        .as_array()?
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("zib-Medication-PeriodOfUse"))
        })?
        .get("valuePeriod")?
        .get("end")?
        .as_str()
}

fn matches_params(r: &Value, params: &[(String, String)]) -> bool {
    params.iter().all(|(name, value)| {
        match (r["resourceType"].as_str().unwrap_or(""), name.as_str()) {
            ("AllergyIntolerance", "category") => r["category"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x == value)),
            ("MedicationRequest", "category") => token_matches(&r["category"], value),
            ("MedicationRequest", "periodofuse") => {
                // ge<date>: agreements still running on that date (an open end runs on).
                let date = value.trim_start_matches("ge");
                period_of_use_end(r).is_none_or(|end| end[..end.len().min(10)] >= *date)
            }
            ("Observation", "code") => token_matches(&r["code"], value),
            ("Composition", "type") => token_matches(&r["type"], value),
            // Result parameters and anything this server does not filter on are ignored, as FHIR's
            // lenient handling allows.
            _ => true,
        }
    })
}

/// References followed by the `_include`s service 49 uses.
fn include_refs<'a>(r: &'a Value, include: &str) -> Vec<&'a str> {
    let refs = |v: &'a Value| -> Vec<&'a str> {
        match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i["reference"].as_str())
                .collect(),
            Value::Object(_) => v["reference"].as_str().into_iter().collect(),
            _ => Vec::new(),
        }
    };
    match include {
        "Patient:general-practitioner" => refs(&r["generalPractitioner"]),
        "MedicationRequest:medication" => refs(&r["medicationReference"]),
        "Observation:specimen" => refs(&r["specimen"]),
        "Observation:related-target" => r["related"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["target"]["reference"].as_str())
            .collect(),
        _ => Vec::new(),
    }
}

fn select<'a>(
    patient: &'a Patient,
    resource_type: &'a str,
    params: &[(String, String)],
) -> (Vec<&'a Value>, Vec<&'a Value>) {
    let filters: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .cloned()
        .collect();
    let matches: Vec<&Value> = patient
        .of_type(resource_type)
        .filter(|r| matches_params(r, &filters))
        .collect();
    let mut includes: Vec<&Value> = Vec::new();
    for (_, include) in params.iter().filter(|(k, _)| k == "_include") {
        for r in &matches {
            for reference in include_refs(r, include) {
                if let Some(target) = patient.resolve(reference) {
                    if !includes.iter().any(|i| std::ptr::eq(*i, target)) {
                        includes.push(target);
                    }
                }
            }
        }
    }
    (matches, includes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_rules() {
        assert!(accepts_stu3_json(None));
        assert!(accepts_stu3_json(Some(
            "application/fhir+json; fhirVersion=3.0"
        )));
        assert!(accepts_stu3_json(Some("application/json")));
        assert!(!accepts_stu3_json(Some(
            "application/fhir+json; fhirVersion=4.0"
        )));
        assert!(!accepts_stu3_json(Some("application/fhir+xml")));
    }

    #[test]
    fn searches_filter_and_include() {
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let p = store.get("999911533").unwrap();
        let q = |s: &str| parse_pairs(Some(s));
        let (m, i) = select(p, "Patient", &q("_include=Patient:general-practitioner"));
        assert_eq!((m.len(), i.len()), (1, 1));
        assert_eq!(i[0]["resourceType"], "Practitioner");
        let (m, i) = select(
            p,
            "MedicationRequest",
            &q(
                "periodofuse=ge2000-01-01&category=http://snomed.info/sct|16076005&_include=MedicationRequest:medication",
            ),
        );
        assert_eq!((m.len(), i.len()), (1, 1));
        let (m, _) = select(p, "MedicationRequest", &q("periodofuse=ge2999-01-01"));
        assert!(m.is_empty(), "ended agreements are not current");
        let (m, _) = select(
            p,
            "Observation",
            &q(
                "code=https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen|",
            ),
        );
        assert_eq!(m.len(), 1);
        let (m, _) = select(p, "Composition", &q("type=http://loinc.org|00000-0"));
        assert!(m.is_empty());
    }
}
