//! Test patients and the gegevensdienst-49 query catalogue.
//!
//! A patient is a FHIR STU3 `collection` Bundle of invented data. Date strings of the form
//! `@today±Nd` (a date) and `@now±Nd` (a dateTime) are rendered at load time, so windows such as
//! "lab results of the last 14 months" stay true whatever day the suite runs.
//!
//! The catalogue ([`GP_QUERIES`]) is the single place that says what a PGO asks for in service 49
//! and which resource types may come back; the mock PGO sends these and the simulated DVA
//! answers them.

use std::collections::BTreeMap;

use std::path::Path;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// The invented patients shipped with koppeltest, embedded so the binary runs anywhere.
pub const EMBEDDED_PATIENTS: &[(&str, &str)] = &[
    (
        "fixtures/patients/de-vries.json",
        include_str!("../fixtures/patients/de-vries.json"),
    ),
    (
        "fixtures/patients/bakker.json",
        include_str!("../fixtures/patients/bakker.json"),
    ),
];

pub const BSN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/bsn";

/// The identifier system of fixture items: what the manifest and the completeness checks use, so
/// that a HIS that assigns its own resource ids can still be judged.
pub const ITEM_SYSTEM: &str = "https://koppeltest.test/fhir/NamingSystem/fixture-item";

/// The extension that carries the fixture-item identifier (`valueIdentifier`) of a resource that
/// has no `identifier` element in STU3: Medication (zib-Product) gained one only in R4.
pub const ITEM_EXTENSION: &str = "https://koppeltest.test/fhir/StructureDefinition/fixture-item";

/// The embedded manifest (beside the patients; `--fixtures DIR` reads `DIR/manifest.toml`).
pub const EMBEDDED_MANIFEST: (&str, &str) = (
    "fixtures/patients/manifest.toml",
    include_str!("../fixtures/patients/manifest.toml"),
);

/// Per test patient: what each query must return and what it must never return, and why.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "patient")]
    pub patients: Vec<ManifestPatient>,
    /// Generated records (for scale); [`Manifest::parse`] adds their expectations to
    /// `patients`, and the patient stores generate the records themselves.
    #[serde(default)]
    pub synthetic: Vec<Synthetic>,
}

/// A generated test patient with a large record: `observations` lab results inside the
/// 14-month window, all expected, and `outside_window` older ones, excluded by the lab window.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Synthetic {
    pub name: String,
    pub bsn: String,
    pub observations: usize,
    #[serde(default)]
    pub outside_window: usize,
}

/// The `source` (and manifest `file`) of a generated patient.
const SYNTHETIC_PREFIX: &str = "synthetic:";

impl Synthetic {
    fn source(&self) -> String {
        format!("{SYNTHETIC_PREFIX}{}", self.name)
    }

    fn lab_id(i: usize) -> String {
        format!("lg-lab-{i:05}")
    }

    fn old_lab_id(i: usize) -> String {
        format!("lg-lab-old-{i:03}")
    }

    /// What a conformant DVA must and must not return for this record.
    fn expectations(&self) -> ManifestPatient {
        let mut expected = BTreeMap::new();
        expected.insert(
            "patient".to_string(),
            vec!["lg-pat".to_string(), "lg-prac".to_string()],
        );
        expected.insert(
            "results".to_string(),
            (0..self.observations).map(Synthetic::lab_id).collect(),
        );
        ManifestPatient {
            file: self.source(),
            bsn: self.bsn.clone(),
            expected,
            excluded: (0..self.outside_window)
                .map(|i| Excluded {
                    item: Synthetic::old_lab_id(i),
                    query: "results".into(),
                    reason: "lab results older than 14 months are not shared (NHG/Patiëntenfederatie guideline)".into(),
                    rule: Some("lab-window".into()),
                })
                .collect(),
        }
    }

    /// The record, with dates relative to `today`: results spread over the last 390 days
    /// (inside the window), the older ones 450 days back and more.
    pub fn generate(&self, today: OffsetDateTime) -> Patient {
        use serde_json::json;
        const TESTS: &[(&str, &str, &str, f64)] = &[
            ("2782", "HbA1c (IFCC) (test)", "mmol/mol", 48.0),
            ("382", "Glucose nuchter (test)", "mmol/l", 6.1),
            ("1542", "Kreatinine (test)", "umol/l", 80.0),
            ("1263", "Cholesterol totaal (test)", "mmol/l", 5.2),
        ];
        let item = |id: &str| json!([{ "system": ITEM_SYSTEM, "value": id }]);
        let subject = json!({ "reference": "Patient/lg-pat", "display": "G. Groot-Dossier" });
        let lab = |id: String, days_back: i64, n: usize| {
            let (code, display, unit, base) = TESTS[n % TESTS.len()];
            json!({
                "resourceType": "Observation",
                "id": id,
                "meta": { "profile": ["http://nictiz.nl/fhir/StructureDefinition/gp-LaboratoryResult"] },
                "identifier": item(&id),
                "status": "final",
                "code": { "coding": [{
                    "system": "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen",
                    "code": code,
                    "display": display
                }] },
                "subject": subject,
                "effectiveDateTime": crate::saml::instant(today - Duration::days(days_back)),
                "valueQuantity": {
                    "value": base + (n % 10) as f64 / 10.0,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit
                }
            })
        };
        let mut resources = vec![
            json!({
                "resourceType": "Patient",
                "id": "lg-pat",
                "meta": { "profile": ["http://fhir.nl/fhir/StructureDefinition/nl-core-patient"] },
                "identifier": [
                    { "system": BSN_SYSTEM, "value": self.bsn },
                    { "system": ITEM_SYSTEM, "value": "lg-pat" }
                ],
                "name": [{ "use": "official", "family": "Groot-Dossier", "given": ["Gerda"] }],
                "gender": "female",
                "birthDate": "1950-02-03",
                "generalPractitioner": [{ "reference": "Practitioner/lg-prac", "display": "A. de Waard" }]
            }),
            json!({
                "resourceType": "Practitioner",
                "id": "lg-prac",
                "meta": { "profile": ["http://fhir.nl/fhir/StructureDefinition/nl-core-practitioner"] },
                "identifier": item("lg-prac"),
                "name": [{ "family": "A. de Waard" }]
            }),
        ];
        resources.extend(
            (0..self.observations).map(|i| lab(Synthetic::lab_id(i), 1 + (i % 390) as i64, i)),
        );
        resources.extend(
            (0..self.outside_window).map(|i| lab(Synthetic::old_lab_id(i), 450 + i as i64, i)),
        );
        Patient {
            bsn: self.bsn.clone(),
            source: self.source(),
            resources,
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPatient {
    pub file: String,
    pub bsn: String,
    /// Query name → fixture-item identifiers that must be in the result.
    pub expected: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub excluded: Vec<Excluded>,
}

/// An item a conformant DVA must not share, with the reason.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Excluded {
    pub item: String,
    pub query: String,
    pub reason: String,
    /// `lab-window` for results outside the 14 months: whether the DVA must leave them out when
    /// the PGO sends no date filter is a matrix policy (`lab_window`).
    pub rule: Option<String>,
}

/// The fixture-item identifiers of a resource: its identifiers in [`ITEM_SYSTEM`] (STU3 has both
/// list and single identifiers), and for a type without `identifier` (Medication) the one in its
/// [`ITEM_EXTENSION`].
pub fn item_ids(resource: &Value) -> Vec<&str> {
    fn one(i: &Value) -> Option<&str> {
        (i["system"] == ITEM_SYSTEM)
            .then(|| i["value"].as_str())
            .flatten()
    }
    let in_extension = resource["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == ITEM_EXTENSION)
        .filter_map(|e| one(&e["valueIdentifier"]));
    match &resource["identifier"] {
        Value::Array(ids) => ids.iter().filter_map(one).chain(in_extension).collect(),
        id @ Value::Object(_) => one(id).into_iter().chain(in_extension).collect(),
        _ => in_extension.collect(),
    }
}

impl Manifest {
    pub fn parse(path: &str, text: &str) -> Result<Manifest, FixtureError> {
        let invalid = |message: String| FixtureError::Invalid {
            path: path.to_string(),
            message,
        };
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!("line {}: ", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            invalid(format!("{at}{}", e.message().trim()))
        })?;
        for s in &manifest.synthetic {
            if !crate::ids::is_test_bsn(&s.bsn) {
                return Err(invalid(format!(
                    "synthetic {:?}: {} is not a test BSN (9999xxxxx with a valid 11-check)",
                    s.name, s.bsn
                )));
            }
        }
        let generated: Vec<ManifestPatient> = manifest
            .synthetic
            .iter()
            .map(Synthetic::expectations)
            .collect();
        manifest.patients.extend(generated);
        Ok(manifest)
    }

    pub fn patient(&self, bsn: &str) -> Option<&ManifestPatient> {
        self.patients.iter().find(|p| p.bsn == bsn)
    }

    /// Every patient named exists with that BSN, every query is one of service 49's, and every
    /// item is in that patient's fixture.
    pub fn validate(&self, path: &str, store: &PatientStore) -> Result<(), FixtureError> {
        let invalid = |message: String| FixtureError::Invalid {
            path: path.to_string(),
            message,
        };
        for mp in &self.patients {
            let patient = store
                .get(&mp.bsn)
                .ok_or_else(|| invalid(format!("{}: no fixture patient with this BSN", mp.file)))?;
            if !patient.source.ends_with(&mp.file) {
                return Err(invalid(format!(
                    "{}: the patient with this BSN comes from {}",
                    mp.file, patient.source
                )));
            }
            let items: std::collections::HashSet<&str> =
                patient.resources.iter().flat_map(item_ids).collect();
            let queries = mp
                .expected
                .keys()
                .map(String::as_str)
                .chain(mp.excluded.iter().map(|e| e.query.as_str()));
            for q in queries {
                if gp_query(q).is_none() {
                    return Err(invalid(format!("{}: unknown query {q:?}", mp.file)));
                }
            }
            for item in mp
                .expected
                .values()
                .flatten()
                .chain(mp.excluded.iter().map(|e| &e.item))
            {
                if !items.contains(&item.as_str()) {
                    return Err(invalid(format!(
                        "{}: no resource with fixture item {item:?}",
                        mp.file
                    )));
                }
            }
        }
        Ok(())
    }
}

/// One of the seven queries of gegevensdienst 49.
#[derive(Debug, Clone, Copy)]
pub struct GpQuery {
    pub name: &'static str,
    /// Relative to the ResourceEndpointuri; `{today}` is replaced by the run date.
    pub path: &'static str,
    /// The searched type, then the types `_include` may add.
    pub types: &'static [&'static str],
}

pub const GP_QUERIES: &[GpQuery] = &[
    GpQuery {
        name: "patient",
        path: "Patient?_include=Patient:general-practitioner",
        types: &["Patient", "Practitioner", "PractitionerRole"],
    },
    GpQuery {
        name: "episodes",
        path: "EpisodeOfCare",
        // A server may add the Flags (attention values) that point at the episodes.
        types: &["EpisodeOfCare", "Flag"],
    },
    GpQuery {
        name: "medication",
        path: "MedicationRequest?periodofuse=ge{today}&category=http://snomed.info/sct|16076005&_include=MedicationRequest:medication",
        types: &["MedicationRequest", "Medication"],
    },
    GpQuery {
        name: "allergies",
        path: "AllergyIntolerance?category=medication",
        types: &["AllergyIntolerance"],
    },
    GpQuery {
        name: "results",
        path: "Observation?code=https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen|&_include=Observation:related-target&_include=Observation:specimen",
        types: &["Observation", "Specimen"],
    },
    GpQuery {
        name: "journal",
        path: "Composition?type=http://loinc.org|67781-5",
        types: &["Composition"],
    },
    GpQuery {
        name: "encounters",
        path: "Encounter",
        types: &["Encounter"],
    },
];

/// A category of the NHG/Patiëntenfederatie guideline for online access, and the query of
/// gegevensdienst 49 that carries it (`None`: the service cannot carry it at all).
#[derive(Debug, Clone, Copy)]
pub struct Category {
    pub name: &'static str,
    pub query: Option<&'static str>,
    pub note: &'static str,
}

/// Every category a patient must see, in the guideline's order, as the report summarises a
/// cell. Treatment and correspondence are reported as not exchangeable, never as missing.
pub const CATEGORIES: &[Category] = &[
    Category {
        name: "Patient and general practitioner",
        query: Some("patient"),
        note: "",
    },
    Category {
        name: "Episodes: current, closed with attention value, prophylaxis and precautions",
        query: Some("episodes"),
        note: "Flags (attention values) may come with the episodes; the Conditions they name cannot be retrieved in gegevensdienst 49",
    },
    Category {
        name: "Current medication, with the medication agreement (Wegiz)",
        query: Some("medication"),
        note: "",
    },
    Category {
        name: "Medication hypersensitivity, inactive ones too",
        query: Some("allergies"),
        note: "",
    },
    Category {
        name: "Lab and diagnostic results of the last 14 months",
        query: Some("results"),
        note: "",
    },
    Category {
        name: "Journal: E and P lines since the practice started online access",
        query: Some("journal"),
        note: "",
    },
    Category {
        name: "Contacts (encounters)",
        query: Some("encounters"),
        note: "",
    },
    Category {
        name: "Treatment",
        query: None,
        note: "not exchangeable in gegevensdienst 49: it has no FHIR mapping in the service",
    },
    Category {
        name: "Correspondence",
        query: None,
        note: "not exchangeable in gegevensdienst 49: letters travel as PDF/A through gegevensdienst 51",
    },
];

pub fn gp_query(name: &str) -> Option<&'static GpQuery> {
    GP_QUERIES.iter().find(|q| q.name == name)
}

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// One test patient: the BSN the TVS will log in with, and every resource of the record.
#[derive(Debug, Clone)]
pub struct Patient {
    pub bsn: String,
    pub source: String,
    pub resources: Vec<Value>,
}

impl Patient {
    pub fn parse(path: &str, json: &str, today: OffsetDateTime) -> Result<Patient, FixtureError> {
        let mut bundle: Value =
            serde_json::from_str(json).map_err(|source| FixtureError::Json {
                path: path.to_string(),
                source,
            })?;
        render_dates(&mut bundle, today);
        let invalid = |message: &str| FixtureError::Invalid {
            path: path.to_string(),
            message: message.to_string(),
        };
        let resources: Vec<Value> = bundle["entry"]
            .as_array()
            .ok_or_else(|| invalid("not a Bundle with entries"))?
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        let patient = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient")
            .ok_or_else(|| invalid("no Patient resource"))?;
        let bsn = patient["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == BSN_SYSTEM)
            .and_then(|i| i["value"].as_str())
            .ok_or_else(|| invalid("Patient has no BSN identifier"))?
            .to_string();
        if !crate::ids::is_test_bsn(&bsn) {
            return Err(invalid(
                "the Patient's BSN is not a test BSN (9999xxxxx with a valid 11-check)",
            ));
        }
        Ok(Patient {
            bsn,
            source: path.to_string(),
            resources,
        })
    }

    /// Resources of `resource_type`.
    pub fn of_type<'a>(&'a self, resource_type: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.resources
            .iter()
            .filter(move |r| r["resourceType"] == resource_type)
    }

    /// The resource a relative reference (`Type/id`) points at.
    pub fn resolve(&self, reference: &str) -> Option<&Value> {
        let (t, id) = reference.split_once('/')?;
        self.resources
            .iter()
            .find(|r| r["resourceType"] == t && r["id"] == id)
    }
}

/// The patients a simulated DVA serves, by BSN.
#[derive(Debug, Clone, Default)]
pub struct PatientStore {
    by_bsn: BTreeMap<String, Patient>,
}

impl PatientStore {
    /// The embedded patients and the records the embedded manifest generates.
    pub fn embedded() -> Result<PatientStore, FixtureError> {
        let today = OffsetDateTime::now_utc();
        let mut store = PatientStore::default();
        for (path, json) in EMBEDDED_PATIENTS {
            store.insert(Patient::parse(path, json, today)?);
        }
        let (path, text) = EMBEDDED_MANIFEST;
        store.generate(&Manifest::parse(path, text)?, today);
        Ok(store)
    }

    /// Adds the records `manifest` generates.
    fn generate(&mut self, manifest: &Manifest, today: OffsetDateTime) {
        for s in &manifest.synthetic {
            self.insert(s.generate(today));
        }
    }

    /// Every `*.json` in `dir`, and the records `dir/manifest.toml` generates, if present.
    pub fn load_dir(dir: &Path) -> Result<PatientStore, FixtureError> {
        let mut store = PatientStore::load_files(dir)?;
        let manifest = dir.join("manifest.toml");
        if manifest.exists() {
            let path = manifest.display().to_string();
            let text = std::fs::read_to_string(&manifest).map_err(|source| FixtureError::Read {
                path: path.clone(),
                source,
            })?;
            store.generate(&Manifest::parse(&path, &text)?, OffsetDateTime::now_utc());
        }
        Ok(store)
    }

    fn load_files(dir: &Path) -> Result<PatientStore, FixtureError> {
        let today = OffsetDateTime::now_utc();
        let read_err = |source| FixtureError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let mut store = PatientStore::default();
        for p in paths {
            let path = p.display().to_string();
            let json = std::fs::read_to_string(&p).map_err(|source| FixtureError::Read {
                path: path.clone(),
                source,
            })?;
            store.insert(Patient::parse(&path, &json, today)?);
        }
        Ok(store)
    }

    pub fn insert(&mut self, patient: Patient) {
        self.by_bsn.insert(patient.bsn.clone(), patient);
    }

    pub fn get(&self, bsn: &str) -> Option<&Patient> {
        self.by_bsn.get(bsn)
    }

    pub fn bsns(&self) -> impl Iterator<Item = &String> {
        self.by_bsn.keys()
    }
}

/// The same day `months` calendar months earlier (clamped to the month's end).
pub fn months_before(day: time::Date, months: i32) -> time::Date {
    let total = day.year() * 12 + (day.month() as i32 - 1) - months;
    let (year, month) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u8);
    let month = time::Month::try_from(month).unwrap_or(time::Month::January);
    let last = month.length(year);
    time::Date::from_calendar_date(year, month, day.day().min(last)).unwrap_or(day)
}

/// Writes what a vendor needs to enter the test patients into a HIS test environment: per
/// patient a FHIR transaction Bundle (dates rendered as of today) and a Markdown script of the
/// data, plus the manifest. The folder loads back with `--fixtures DIR`.
pub fn export(
    store: &PatientStore,
    manifest: &Manifest,
    manifest_text: &str,
    dir: &Path,
) -> Result<Vec<String>, FixtureError> {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| FixtureError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    std::fs::create_dir_all(dir).map_err(|source| FixtureError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    let mut written = Vec::new();
    for mp in &manifest.patients {
        let patient = store.get(&mp.bsn).ok_or_else(|| FixtureError::Invalid {
            path: mp.file.clone(),
            message: "no such patient among the fixtures".into(),
        })?;
        let entries: Vec<Value> = patient
            .resources
            .iter()
            .map(|r| {
                let url = format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
                serde_json::json!({ "fullUrl": format!("urn:koppeltest:{url}"), "resource": r, "request": { "method": "PUT", "url": url } })
            })
            .collect();
        let bundle = serde_json::json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
        let json = serde_json::to_string_pretty(&bundle).map_err(|source| FixtureError::Json {
            path: mp.file.clone(),
            source,
        })?;
        // A generated record is regenerated from the manifest on load; its data goes into a
        // folder of its own, for the vendor, where loading does not read it twice.
        let file = match mp.file.strip_prefix(SYNTHETIC_PREFIX) {
            Some(name) => {
                std::fs::create_dir_all(dir.join("synthetic")).map_err(|source| {
                    FixtureError::Read {
                        path: dir.join("synthetic").display().to_string(),
                        source,
                    }
                })?;
                format!("synthetic/{name}.json")
            }
            None => mp.file.clone(),
        };
        write(&file, &json)?;
        let script = file.trim_end_matches(".json").to_string() + ".md";
        write(&script, &script_of(patient, mp))?;
        written.extend([file, script]);
    }
    write("manifest.toml", manifest_text)?;
    written.push("manifest.toml".into());
    Ok(written)
}

/// A readable description of one patient's record for the person entering it into a HIS.
fn script_of(patient: &Patient, mp: &ManifestPatient) -> String {
    let name = patient
        .of_type("Patient")
        .next()
        .map(|p| {
            format!(
                "{} {}",
                p["name"][0]["given"][0].as_str().unwrap_or(""),
                p["name"][0]["family"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
    let mut out = format!(
        "# Test patient {name} (BSN {bsn}, TEST ONLY)\n\nInvented data for entering into a HIS test environment; the transaction Bundle \
         `{file}` holds the same data as FHIR STU3. Dates are as of the day of export.\n",
        bsn = mp.bsn,
        file = mp.file
    );
    let describe = |r: &Value| -> String {
        let text = |v: &Value| {
            v["coding"][0]["display"]
                .as_str()
                .or_else(|| v["text"].as_str())
                .map(str::to_string)
        };
        let name = |n: &Value| {
            let given = n["given"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            let family = n["family"].as_str().unwrap_or("");
            Some(format!("{given} {family}").trim().to_string()).filter(|s| !s.is_empty())
        };
        let what = text(&r["code"])
            .or_else(|| {
                r["medicationReference"]["display"]
                    .as_str()
                    .map(str::to_string)
            })
            .or_else(|| r["title"].as_str().map(str::to_string))
            .or_else(|| text(&r["type"]))
            .or_else(|| {
                r["extension"][0]["valueString"]
                    .as_str()
                    .map(str::to_string)
            })
            .or_else(|| {
                r["diagnosis"][0]["condition"]["display"]
                    .as_str()
                    .map(str::to_string)
            })
            .or_else(|| {
                name(&r["name"][0]).map(|n| match r["birthDate"].as_str() {
                    Some(born) => format!("{n}, born {born}"),
                    None => n,
                })
            })
            .unwrap_or_default();
        // A medication agreement: what matters for entering it is its period of use (an open
        // end is a case of its own) and who prescribed it.
        let period_of_use = r["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| {
                e["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("zib-Medication-PeriodOfUse"))
            })
            .map(|e| {
                let start = e["valuePeriod"]["start"].as_str().unwrap_or("?");
                match e["valuePeriod"]["end"].as_str() {
                    Some(end) => format!("in use from {start} until {end}"),
                    None => format!("in use from {start}, no end date"),
                }
            });
        let prescriber = r["requester"]["agent"]["display"]
            .as_str()
            .map(|by| format!(", prescribed by {by}"))
            .unwrap_or_default();
        let when = period_of_use.map(|p| p + &prescriber).unwrap_or_else(|| {
            [
                "effectiveDateTime",
                "date",
                "authoredOn",
                "assertedDate",
                "onsetDateTime",
            ]
            .iter()
            .find_map(|f| r[*f].as_str())
            .or_else(|| r["period"]["start"].as_str())
            .unwrap_or("")
            .to_string()
        });
        let status = r["clinicalStatus"]
            .as_str()
            .or_else(|| r["status"].as_str())
            .unwrap_or("");
        format!(
            "{} {} — {what} {when} {status}",
            r["resourceType"].as_str().unwrap_or(""),
            item_ids(r).join(",")
        )
    };
    let by_item: std::collections::HashMap<&str, &Value> = patient
        .resources
        .iter()
        .flat_map(|r| item_ids(r).into_iter().map(move |i| (i, r)))
        .collect();
    for query in GP_QUERIES {
        out.push_str(&format!(
            "\n## {} (`{}`)\n\nMust be visible:\n",
            query.name,
            query.path.split('?').next().unwrap_or("")
        ));
        for item in mp.expected.get(query.name).into_iter().flatten() {
            if let Some(r) = by_item.get(item.as_str()) {
                out.push_str(&format!("- {}\n", describe(r)));
            }
        }
        let hidden: Vec<&Excluded> = mp
            .excluded
            .iter()
            .filter(|x| x.query == query.name)
            .collect();
        if !hidden.is_empty() {
            out.push_str("\nMust NOT be visible in the PGO:\n");
            for x in hidden {
                if let Some(r) = by_item.get(x.item.as_str()) {
                    out.push_str(&format!("- {} — because {}\n", describe(r), x.reason));
                }
            }
        }
    }
    out.push_str(
        "\nJournal entries: enter S, O, E and P lines as given; only E and P may reach the PGO.\n",
    );
    out
}

/// The first day of the lab-results window: 14 calendar months before `today`.
pub fn lab_window_start(today: time::Date) -> time::Date {
    months_before(today, 14)
}

/// Replaces `@today±Nd` / `@now±Nd` strings.
fn render_dates(v: &mut Value, today: OffsetDateTime) {
    match v {
        Value::String(s) => {
            if let Some(rendered) = render_date(s, today) {
                *s = rendered;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| render_dates(i, today)),
        Value::Object(map) => map.values_mut().for_each(|i| render_dates(i, today)),
        _ => {}
    }
}

fn render_date(s: &str, today: OffsetDateTime) -> Option<String> {
    let (base, rest, date_only) = if let Some(r) = s.strip_prefix("@today") {
        (today, r, true)
    } else if let Some(r) = s.strip_prefix("@now") {
        (today, r, false)
    } else {
        return None;
    };
    let offset = if rest.is_empty() {
        Duration::ZERO
    } else {
        let days: i64 = rest.strip_suffix('d')?.parse().ok()?;
        Duration::days(days)
    };
    let t = (base + offset).to_offset(time::UtcOffset::UTC);
    Some(if date_only {
        t.date().to_string()
    } else {
        crate::saml::instant(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_patient_loads_with_a_test_bsn_and_rendered_dates() {
        let store = PatientStore::embedded().unwrap();
        let p = store.get("999911533").expect("de Vries");
        let obs = p.of_type("Observation").next().unwrap();
        let when = obs["effectiveDateTime"].as_str().unwrap();
        assert!(!when.starts_with('@') && when.ends_with('Z'), "{when}");
        assert!(p.resolve("Practitioner/dv-prac").is_some());
    }

    #[test]
    fn the_embedded_manifest_matches_the_fixtures() {
        let store = PatientStore::embedded().unwrap();
        let (path, text) = EMBEDDED_MANIFEST;
        let manifest = Manifest::parse(path, text).unwrap();
        manifest.validate(path, &store).unwrap();
        assert_eq!(manifest.patients.len(), 3, "two written, one generated");
        let large = manifest.patient("999910012").expect("the large record");
        assert_eq!(large.expected["results"].len(), 10_000);
        assert_eq!(large.excluded.len(), 25);
        let record = store.get("999910012").unwrap();
        let window = lab_window_start(OffsetDateTime::now_utc().date());
        let inside = record
            .of_type("Observation")
            .filter(|o| {
                let day = &o["effectiveDateTime"].as_str().unwrap()[..10];
                day >= window.to_string().as_str()
            })
            .count();
        assert_eq!(
            inside, 10_000,
            "the generated results sit where the manifest says"
        );
        let broken = text.replacen("dv-lab-old", "dv-lab-ancient", 1);
        let err = Manifest::parse(path, &broken)
            .unwrap()
            .validate(path, &store)
            .unwrap_err();
        assert!(err.to_string().contains("dv-lab-ancient"), "{err}");
    }

    #[test]
    fn a_medication_carries_its_fixture_item_in_an_extension_as_stu3_has_no_identifier() {
        let store = PatientStore::embedded().unwrap();
        let p = store.get("999911533").unwrap();
        let medications: Vec<&Value> = p.of_type("Medication").collect();
        assert!(!medications.is_empty());
        for m in &medications {
            assert!(m.get("identifier").is_none(), "{}", m["id"]);
            assert_eq!(item_ids(m), vec![m["id"].as_str().unwrap()]);
        }
        // Lists, a single identifier (Composition) and the extension all count; other systems
        // and other extensions do not.
        let composition = p.resolve("Composition/dv-comp-recent").unwrap();
        assert_eq!(item_ids(composition), vec!["dv-comp-recent"]);
        let mixed = serde_json::json!({
            "identifier": [{ "system": BSN_SYSTEM, "value": "999911533" }],
            "extension": [
                { "url": "https://example.test/other", "valueIdentifier": { "system": ITEM_SYSTEM, "value": "no" } },
                { "url": ITEM_EXTENSION, "valueIdentifier": { "system": "https://example.test/ids", "value": "no" } },
                { "url": ITEM_EXTENSION, "valueIdentifier": { "system": ITEM_SYSTEM, "value": "yes" } }
            ]
        });
        assert_eq!(item_ids(&mixed), vec!["yes"]);
    }

    #[test]
    fn the_script_gives_the_period_of_use_and_the_prescriber_of_each_agreement() {
        let store = PatientStore::embedded().unwrap();
        let (path, text) = EMBEDDED_MANIFEST;
        let manifest = Manifest::parse(path, text).unwrap();
        let script = script_of(
            store.get("999911533").unwrap(),
            manifest.patient("999911533").unwrap(),
        );
        let line = |item: &str| {
            script
                .lines()
                .find(|l| l.starts_with(&format!("- MedicationRequest {item} ")))
                .unwrap_or_else(|| panic!("{item} is not in the script"))
                .to_string()
        };
        assert!(line("dv-mr-open-ended").contains(", no end date"));
        assert!(
            line("dv-mr-gp").contains("until")
                && line("dv-mr-gp").contains("prescribed by A. de Waard")
        );
        assert!(!line("dv-mr-current").contains("prescribed by"));
        assert!(script.contains("- Medication dv-med-gp — OMEPRAZOL"));
    }

    #[test]
    fn date_offsets_render() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(render_date("@today-1d", t).unwrap(), "2023-11-13");
        assert_eq!(render_date("@now+0d", t).unwrap(), "2023-11-14T22:13:20Z");
        assert_eq!(render_date("@todayX", t), None);
        assert_eq!(render_date("plain", t), None);
    }

    #[test]
    fn a_synthetic_record_needs_a_test_bsn_and_a_bad_manifest_names_its_line() {
        let (path, text) = EMBEDDED_MANIFEST;
        let err = Manifest::parse(path, &text.replace("999910012", "123456782")).unwrap_err();
        assert!(err.to_string().contains("not a test BSN"), "{err}");
        let err = Manifest::parse(path, &text.replace("observations = ", "observatons = "))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line ") && err.contains("observatons"),
            "{err}"
        );
    }

    #[test]
    fn a_real_looking_bsn_is_refused() {
        let json =
            include_str!("../fixtures/patients/de-vries.json").replace("999911533", "123456782");
        let err = Patient::parse("x.json", &json, OffsetDateTime::now_utc()).unwrap_err();
        assert!(err.to_string().contains("test BSN"));
    }
}
