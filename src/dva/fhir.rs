//! The DVA's FHIR STU3 resource endpoint for gegevensdienst 49: searches over the record of the
//! patient bound to the access token, answered as searchset Bundles.
//!
//! The patient comes from the token only; `patient=`/`subject=` parameters are neither needed
//! nor honoured, and the BSN never appears in a link.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::oauth::{bearer, parse_pairs};
use super::quirks::{Quirk, SLOW_ANSWER};
use super::{Dva, Stimulus};
use crate::fixtures::Patient;
use crate::tls::PeerCertificates;

const FHIR_JSON: &str = "application/fhir+json; fhirVersion=3.0";

/// Search results kept for paging, at most.
const SEARCH_CACHE: usize = 256;

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
    Extension(peer): Extension<PeerCertificates>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let quirks = &dva.cfg.quirks;
    if let Some(st) = dva.stimulus() {
        match st.stimulus {
            Stimulus::ServerErrorOnce if st.first_time() => {
                let mut r = outcome(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "transient",
                    "tijdelijk niet beschikbaar, probeer het zo opnieuw",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            Stimulus::SlowAnswerOnce if st.first_time() => {
                tokio::time::sleep(st.slow_answer).await;
            }
            _ => {}
        }
    }
    if quirks.has(Quirk::SlowResourceEndpoint) {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    if quirks.has(Quirk::ResourceUnavailable1In20) && dva.cfg.availability.next_resource_spoiled(20)
    {
        return outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "tijdelijk niet beschikbaar",
        );
    }
    // Mutual TLS (brief §7): the TLS layer verified any certificate offered; whether one is
    // required at all is decided here, so the token endpoint can answer invalid_client.
    let names = peer.dns_names();
    if names.is_empty()
        && !quirks.has(Quirk::ClientCertNotRequired)
        && !quirks.has(Quirk::ResourceWithoutClientCertificate)
    {
        dva.note("resource request refused: no client certificate");
        return outcome(
            StatusCode::UNAUTHORIZED,
            "security",
            "a client certificate is required",
        );
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
    if dva
        .stimulus()
        .is_some_and(|s| s.stimulus.single_use_tokens())
    {
        // This use is the token's last: the next request with it is answered 401.
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(super::oauth::bearer_token)
            .map(str::trim);
        if let Some(g) = token.and_then(|t| Dva::lock(&dva.access).get(t).cloned()) {
            let expired = super::TokenGrant {
                expires: dva.cfg.clock.instant(),
                ..g
            };
            if let Some(t) = token {
                Dva::lock(&dva.access).insert(t.to_string(), expired);
            }
        }
    }
    // RFC 8705 §3 [U]: the certificate must belong to the client the token was issued to.
    if !names.is_empty()
        && !grant.client_id.is_empty()
        && !names.contains(&grant.client_id)
        && !quirks.has(Quirk::ClientCertNameUnchecked)
    {
        dva.note("resource request refused: the client certificate is not the token's client's");
        return outcome(
            StatusCode::FORBIDDEN,
            "security",
            "the client certificate does not belong to the token's client",
        );
    }
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
    let today = time::OffsetDateTime::now_utc().date();
    let rules = Disclosure::of(&dva.cfg, today);
    let query_without_page: Vec<String> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("_page="))
        .map(str::to_string)
        .collect();
    let key = format!(
        "{}\n{today}\n{resource_type}\n{}",
        grant.bsn,
        query_without_page.join("&")
    );
    let cached = Dva::lock(&dva.searches).get(&key).cloned();
    let matches = match cached {
        Some(m) => m,
        None => {
            let m = Arc::new(matching(patient, &resource_type, &params, &rules));
            let mut searches = Dva::lock(&dva.searches);
            // A long-running DVA (`serve dva`) sees ever new queries: keep the cache small.
            if searches.len() >= SEARCH_CACHE {
                searches.clear();
            }
            searches.insert(key, m.clone());
            m
        }
    };
    let base = match dva.cfg.back_port {
        Some(port) => format!("https://{}:{port}/fhir", dva.cfg.back_host),
        None => format!("https://{}/fhir", dva.cfg.back_host),
    };
    let page = Paging::of(&params, dva.cfg.page_size, quirks.has(Quirk::NoPaging));
    let on_page: Vec<&Value> = page
        .slice(&matches)
        .iter()
        .map(|i| &patient.resources[*i])
        .collect();
    let includes = included(patient, &resource_type, &on_page, &params, &rules);
    let link_to = |page: Option<usize>| {
        let mut parts = query_without_page.clone();
        if let Some(n) = page {
            parts.push(format!("_page={n}"));
        }
        if parts.is_empty() {
            format!("{base}/{resource_type}")
        } else {
            format!("{base}/{resource_type}?{}", parts.join("&"))
        }
    };
    let mut self_link = link_to((page.number > 1).then_some(page.number));
    if quirks.has(Quirk::BsnInSelfLink) {
        let sep = if self_link.contains('?') { '&' } else { '?' };
        self_link.push_str(&format!(
            "{sep}patient.identifier={}|{}",
            crate::fixtures::BSN_SYSTEM,
            grant.bsn
        ));
    }
    let mut links = vec![json!({ "relation": "self", "url": self_link })];
    if page.has_next(matches.len()) {
        let mut next = link_to(Some(page.number + 1));
        // The PGO suite's off-host stimulus: the next link names another host, which a PGO
        // must not follow (it may take the token there).
        if let Some(trap) = dva
            .stimulus()
            .filter(|s| s.stimulus == Stimulus::NextLinkOffHost)
            .and_then(|s| s.http_trap.as_deref())
        {
            next = next.replacen(&base, &format!("{trap}/fhir"), 1);
        }
        links.push(json!({ "relation": "next", "url": next }));
    }
    let strip_profile = dva.cfg.quirks.has(Quirk::MetaProfileMissing);
    let entry = |r: &Value, mode: &str| {
        // Most resources are served as stored: serialised in place, not copied.
        let shaped;
        let r = if rules.reshapes(r) || strip_profile {
            let mut copy = rules.shape(r);
            if strip_profile {
                if let Some(meta) = copy.get_mut("meta").and_then(Value::as_object_mut) {
                    meta.remove("profile");
                }
            }
            shaped = copy;
            &shaped
        } else {
            r
        };
        format!(
            r#"{{"fullUrl":{},"resource":{r},"search":{{"mode":"{mode}"}}}}"#,
            Value::String(format!(
                "{base}/{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            ))
        )
    };
    let entries: Vec<String> = on_page
        .iter()
        .map(|r| entry(r, "match"))
        .chain(includes.iter().map(|r| entry(r, "include")))
        .collect();
    // Written in FHIR's element order rather than serde_json's alphabetical one, so that the
    // links come before the entries: a logged page cut short still shows where it leads.
    let bundle = format!(
        r#"{{"resourceType":"Bundle","id":"{}","type":"searchset","total":{},"link":{},"entry":{}}}"#,
        crate::ids::uuid_v4(),
        matches.len(),
        Value::Array(links),
        format_args!("[{}]", entries.join(","))
    );
    let mut r = (StatusCode::OK, bundle).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// Which slice of a search result one request answers: page `number` (1-based, `_page`) of
/// `size` matches (the server's page size, or a smaller `_count`).
struct Paging {
    number: usize,
    size: usize,
}

impl Paging {
    fn of(params: &[(String, String)], server_size: usize, no_paging: bool) -> Paging {
        if no_paging {
            return Paging {
                number: 1,
                size: usize::MAX,
            };
        }
        let number = param(params, "_page")
            .and_then(|p| p.parse().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1);
        let size = param(params, "_count")
            .and_then(|c| c.parse().ok())
            .filter(|c| *c >= 1)
            .map_or(server_size, |c: usize| c.min(server_size));
        Paging { number, size }
    }

    fn slice<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        let start = (self.number - 1).saturating_mul(self.size).min(all.len());
        let end = start.saturating_add(self.size).min(all.len());
        &all[start..end]
    }

    fn has_next(&self, total: usize) -> bool {
        self.number.saturating_mul(self.size) < total
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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
            ("Observation", "date") => {
                // Only the `ge` prefix the qualification script uses; others match everything.
                match (value.strip_prefix("ge"), r["effectiveDateTime"].as_str()) {
                    (Some(since), Some(when)) => {
                        when[..when.len().min(10)] >= since[..since.len().min(10)]
                    }
                    _ => true,
                }
            }
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

/// What the patient may see, by rule from the data (never from the test manifest): the
/// NHG/Patiëntenfederatie guideline's exclusions, each switchable off by one quirk.
struct Disclosure {
    /// Lab results from before this date are not shared (14 months before today).
    lab_since: Option<time::Date>,
    /// E/P lines (Compositions) from before this date are not shared.
    journal_since: Option<time::Date>,
    strip_so_lines: bool,
    strip_so_entries: bool,
    hide_work_notes: bool,
    hide_third_party: bool,
    honour_period_of_use: bool,
    drop_inactive_allergies: bool,
    drop_finished_episodes: bool,
    include_general_practitioner: bool,
    break_references: bool,
    strip_coding_systems: bool,
    /// The Patient's BSN identifier is served with its value masked (data-absent-reason).
    mask_bsn: bool,
    dutch_dates: bool,
    drop_status: bool,
}

/// The `meta.security` codes (system below) that mark items the patient must not see. [U] a real
/// HIS marks work notes and third-party information in its own way; the fixtures use these.
pub const DISCLOSURE_SYSTEM: &str = "https://koppeltest.test/fhir/CodeSystem/disclosure";

impl Disclosure {
    fn of(cfg: &super::DvaConfig, today: time::Date) -> Disclosure {
        Disclosure::with(&cfg.quirks, today, cfg.online_access_start)
    }

    fn with(q: &super::Quirks, today: time::Date, online_access_start: time::Date) -> Disclosure {
        Disclosure {
            lab_since: (!q.has(Quirk::NoLabWindow))
                .then(|| crate::fixtures::lab_window_start(today)),
            journal_since: (!q.has(Quirk::EpBeforeStartLeaked)).then_some(online_access_start),
            strip_so_lines: !q.has(Quirk::SoLinesLeaked),
            strip_so_entries: !q.has(Quirk::SoEntriesLeaked),
            hide_work_notes: !q.has(Quirk::WorkNotesLeaked),
            hide_third_party: !q.has(Quirk::ThirdPartyLeaked),
            honour_period_of_use: !q.has(Quirk::EndedMedicationCurrent),
            drop_inactive_allergies: q.has(Quirk::InactiveAllergyDropped),
            drop_finished_episodes: q.has(Quirk::FinishedEpisodesDropped),
            include_general_practitioner: !q.has(Quirk::GeneralPractitionerNotIncluded),
            break_references: q.has(Quirk::BrokenReferences),
            strip_coding_systems: q.has(Quirk::CodingsWithoutSystem),
            mask_bsn: !q.has(Quirk::BsnInPatient),
            dutch_dates: q.has(Quirk::DutchDates),
            drop_status: q.has(Quirk::StatusMissing),
        }
    }

    fn shares(&self, r: &Value) -> bool {
        let labelled = |code: &str| {
            r["meta"]["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|c| c["system"] == DISCLOSURE_SYSTEM && c["code"] == code)
            })
        };
        let date_of = |field: &str| {
            r[field]
                .as_str()
                .and_then(|d| d.get(..10))
                .and_then(parse_date)
        };
        if (self.hide_work_notes && labelled("work-note"))
            || (self.hide_third_party && labelled("third-party"))
        {
            return false;
        }
        match r["resourceType"].as_str() {
            Some("Observation") => self
                .lab_since
                .is_none_or(|since| date_of("effectiveDateTime").is_none_or(|d| d >= since)),
            Some("Composition") => self
                .journal_since
                .is_none_or(|since| date_of("date").is_none_or(|d| d >= since)),
            Some("AllergyIntolerance") => {
                !(self.drop_inactive_allergies && r["clinicalStatus"] == "inactive")
            }
            Some("EpisodeOfCare") => !(self.drop_finished_episodes && r["status"] == "finished"),
            _ => true,
        }
    }

    /// Whether [`Self::shape`] would change `r`.
    fn reshapes(&self, r: &Value) -> bool {
        self.break_references
            || self.dutch_dates
            || self.drop_status
            || self.strip_coding_systems
            || (self.mask_bsn && r["resourceType"] == "Patient")
            || (self.strip_so_lines && r["resourceType"] == "Composition")
    }

    /// The resource as the patient may see it: a journal entry without S and O lines.
    fn shape(&self, r: &Value) -> Value {
        let mut r = r.clone();
        if self.break_references {
            let mut targets: Vec<&mut Value> = Vec::new();
            let Value::Object(map) = &mut r else {
                return r;
            };
            for (field, value) in map.iter_mut() {
                match field.as_str() {
                    "encounter" | "medicationReference" => targets.push(value),
                    "extension" => targets.extend(
                        value
                            .as_array_mut()
                            .into_iter()
                            .flatten()
                            .filter_map(|e| e.get_mut("valueReference")),
                    ),
                    "section" => targets.extend(
                        value
                            .as_array_mut()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s.get_mut("entry").and_then(Value::as_array_mut))
                            .flatten(),
                    ),
                    _ => {}
                }
            }
            for reference in targets.into_iter().filter_map(|t| t.get_mut("reference")) {
                *reference =
                    Value::String(format!("{}-verdwenen", reference.as_str().unwrap_or("")));
            }
        }
        if self.mask_bsn && r["resourceType"] == "Patient" {
            mask_bsn(&mut r);
        }
        if self.dutch_dates {
            dutch_dates(&mut r);
        }
        if self.drop_status {
            if let Some(map) = r.as_object_mut() {
                map.remove("status");
            }
        }

        if self.strip_so_lines && r["resourceType"] == "Composition" {
            if let Some(sections) = r.get_mut("section").and_then(Value::as_array_mut) {
                sections.retain(|s| !matches!(journal_line_type(s), Some("S") | Some("O")));
            }
            // The S and O journal entries go with their lines.
            if self.strip_so_entries {
                if let Some(contained) = r.get_mut("contained").and_then(Value::as_array_mut) {
                    contained.retain(|c| !matches!(journal_line_type(c), Some("S") | Some("O")));
                }
            }
        }
        // Last: the S/O rule above recognises journal lines by their coding system.
        if self.strip_coding_systems {
            strip_systems(&mut r);
        }
        r
    }
}

/// Replaces the value of BSN identifiers with the data-absent-reason `masked`, as the
/// qualification's Patient fixture does: the patient is known from the token, never by BSN.
fn mask_bsn(patient: &mut Value) {
    for id in patient["identifier"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter(|i| i["system"] == crate::fixtures::BSN_SYSTEM)
    {
        if let Some(id) = id.as_object_mut() {
            id.remove("value");
            id.insert(
                "_value".into(),
                json!({ "extension": [{
                    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                    "valueCode": "masked"
                }] }),
            );
        }
    }
}

/// `2026-11-23…` → `23-11-2026` in the date fields of service 49's resources.
fn dutch_dates(r: &mut Value) {
    let rewrite = |v: &mut Value| {
        if let Some(d) = v.as_str().and_then(|d| d.get(..10)).and_then(parse_date) {
            *v = Value::String(format!(
                "{:02}-{:02}-{}",
                d.day(),
                d.month() as u8,
                d.year()
            ));
        }
    };
    for field in [
        "effectiveDateTime",
        "authoredOn",
        "date",
        "assertedDate",
        "onsetDateTime",
        "birthDate",
    ] {
        if let Some(v) = r.get_mut(field) {
            rewrite(v);
        }
    }
    if let Some(period) = r.get_mut("period").and_then(Value::as_object_mut) {
        period.values_mut().for_each(rewrite);
    }
}

fn strip_systems(v: &mut Value) {
    match v {
        Value::Object(map) => {
            // Encounter.class is a bare Coding.
            if let Some(Value::Object(class)) = map.get_mut("class") {
                class.remove("system");
            }
            if let Some(Value::Array(codings)) = map.get_mut("coding") {
                codings
                    .iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(|c| {
                        c.remove("system");
                    });
            }
            map.values_mut().for_each(strip_systems);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_systems),
        _ => {}
    }
}

/// The journaalregeltype (S, O, E, P) of a Composition section or a journal entry.
pub fn journal_line_type(section: &Value) -> Option<&str> {
    section["code"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == "http://fhir.nl/fhir/NamingSystem/journaalregeltypen")?["code"]
        .as_str()
}

fn parse_date(s: &str) -> Option<time::Date> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// The positions in the record of the resources of `resource_type` a search matches and the
/// patient may see, in record order.
fn matching(
    patient: &Patient,
    resource_type: &str,
    params: &[(String, String)],
    rules: &Disclosure,
) -> Vec<usize> {
    let filters: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !k.starts_with('_') && (rules.honour_period_of_use || k != "periodofuse"))
        .cloned()
        .collect();
    patient
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r["resourceType"] == resource_type && matches_params(r, &filters) && rules.shares(r)
        })
        .map(|(i, _)| i)
        .collect()
}

/// What one page of `matches` brings along: the `_include`d targets, and for episodes the
/// Flags (attention values) that point at them, which the IG lets a server add.
fn included<'a>(
    patient: &'a Patient,
    resource_type: &str,
    matches: &[&'a Value],
    params: &[(String, String)],
    rules: &Disclosure,
) -> Vec<&'a Value> {
    let mut includes: Vec<&Value> = Vec::new();
    let mut add = |target: &'a Value| {
        if rules.shares(target) && !includes.iter().any(|i| std::ptr::eq(*i, target)) {
            includes.push(target);
        }
    };
    for (_, include) in params.iter().filter(|(k, _)| k == "_include") {
        if include == "Patient:general-practitioner" && !rules.include_general_practitioner {
            continue;
        }
        for r in matches {
            for reference in include_refs(r, include) {
                if let Some(target) = patient.resolve(reference) {
                    add(target);
                }
            }
        }
    }
    if resource_type == "EpisodeOfCare" {
        for flag in patient.of_type("Flag") {
            let episode = flag_episode(flag).and_then(|r| r.strip_prefix("EpisodeOfCare/"));
            if episode.is_some() && matches.iter().any(|m| m["id"].as_str() == episode) {
                add(flag);
            }
        }
    }
    includes
}

/// The episode a Flag (zib-Alert) points at through its Flag-EpisodeOfCare extension.
pub fn flag_episode(flag: &Value) -> Option<&str> {
    flag["extension"].as_array()?.iter().find(|e| {
        e["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/Flag-EpisodeOfCare"))
    })?["valueReference"]["reference"]
        .as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The judge classifies journal lines with its own rule (`checks::journal_line_type`); the
    /// two must agree on every section and journal entry of every fixture.
    #[test]
    fn the_judge_and_the_dva_classify_every_journal_line_alike() {
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let mut lines = 0;
        for patient in store.bsns().filter_map(|b| store.get(b)) {
            for r in patient
                .resources
                .iter()
                .filter(|r| r["resourceType"] == "Composition")
            {
                for line in ["section", "contained"]
                    .iter()
                    .flat_map(|f| r[*f].as_array().into_iter().flatten())
                {
                    lines += 1;
                    assert_eq!(
                        journal_line_type(line),
                        crate::checks::journal_line_type(line),
                        "{line}"
                    );
                }
            }
        }
        assert!(lines >= 10, "only {lines} journal lines in the fixtures");
    }

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

    fn rules(quirks: &[Quirk]) -> Disclosure {
        let today = time::OffsetDateTime::now_utc().date();
        Disclosure::with(
            &super::super::Quirks::of(quirks),
            today,
            today - time::Duration::days(365),
        )
    }

    /// The whole result of a search (one page), shaped as served.
    fn select(
        p: &Patient,
        resource_type: &str,
        params: &[(String, String)],
        rules: &Disclosure,
    ) -> (Vec<Value>, Vec<Value>) {
        let m: Vec<&Value> = matching(p, resource_type, params, rules)
            .into_iter()
            .map(|i| &p.resources[i])
            .collect();
        let i = included(p, resource_type, &m, params, rules);
        let shape = |rs: Vec<&Value>| rs.into_iter().map(|r| rules.shape(r)).collect();
        (shape(m), shape(i))
    }

    fn ids(rs: &[Value]) -> Vec<&str> {
        rs.iter().filter_map(|r| r["id"].as_str()).collect()
    }

    #[test]
    fn searches_filter_include_and_exclude_by_rule() {
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let p = store.get("999911533").unwrap();
        let q = |s: &str| parse_pairs(Some(s));
        let conformant = rules(&[]);
        let (m, i) = select(
            p,
            "Patient",
            &q("_include=Patient:general-practitioner"),
            &conformant,
        );
        assert_eq!((ids(&m), ids(&i)), (vec!["dv-pat"], vec!["dv-prac"]));
        let today = time::OffsetDateTime::now_utc().date();
        let meds = format!(
            "periodofuse=ge{today}&category=http://snomed.info/sct|16076005&_include=MedicationRequest:medication"
        );
        let (m, i) = select(p, "MedicationRequest", &q(&meds), &conformant);
        assert_eq!(
            (ids(&m), ids(&i)),
            (
                vec!["dv-mr-current", "dv-mr-open-ended", "dv-mr-gp"],
                vec!["dv-med", "dv-med-open-ended", "dv-med-gp"]
            ),
            "ended agreements are not current; an open-ended one is, and so is the GP's own"
        );
        let open_ended = p.resolve("MedicationRequest/dv-mr-open-ended").unwrap();
        assert_eq!(
            period_of_use_end(open_ended),
            None,
            "the fixture has no end date"
        );
        let labs =
            "code=https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen|";
        assert_eq!(
            ids(&select(p, "Observation", &q(labs), &conformant).0),
            vec!["dv-lab-recent", "dv-diag-recent"]
        );
        let (journal, _) = select(
            p,
            "Composition",
            &q("type=http://loinc.org|67781-5"),
            &conformant,
        );
        assert_eq!(
            ids(&journal),
            vec!["dv-comp-recent"],
            "old and work-note compositions are not shared"
        );
        let lines: Vec<&str> = journal[0]["section"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(journal_line_type)
            .collect();
        assert_eq!(lines, vec!["E", "P"], "S and O lines are stripped");
        let entries: Vec<&str> = journal[0]["contained"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(journal_line_type)
            .collect();
        assert_eq!(
            entries,
            vec!["E", "P"],
            "and their journal entries with them"
        );

        let leaky = rules(&[
            Quirk::NoLabWindow,
            Quirk::ThirdPartyLeaked,
            Quirk::SoLinesLeaked,
            Quirk::WorkNotesLeaked,
            Quirk::EpBeforeStartLeaked,
        ]);
        assert_eq!(select(p, "Observation", &q(labs), &leaky).0.len(), 4);
        assert_eq!(
            select(
                p,
                "Composition",
                &q("type=http://loinc.org|67781-5"),
                &leaky
            )
            .0
            .len(),
            3
        );
    }

    #[test]
    fn fourteen_months_back_is_calendar_months() {
        let d = |y, m, day| {
            time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), day).unwrap()
        };
        assert_eq!(
            crate::fixtures::months_before(d(2026, 11, 23), 14),
            d(2025, 9, 23)
        );
        assert_eq!(
            crate::fixtures::months_before(d(2026, 3, 31), 14),
            d(2025, 1, 31)
        );
        assert_eq!(
            crate::fixtures::months_before(d(2026, 4, 30), 14),
            d(2025, 2, 28)
        );
    }
}
