//! Profile validation: koppeltest's own JSON Schemas (`schemas/fhir/`) for every FHIR profile
//! gegevensdienst 49 uses, compiled once and applied by a resource's `meta.profile`.
//!
//! The schemas state what the profile definitions require (elements, fixed codes and systems,
//! value types), and every type they define is closed: it lists each element FHIR STU3 (3.0.2)
//! defines for it (`_name` siblings of primitives included) and refuses any other, so an R4-only
//! element such as `Medication.identifier` fails as it would in the FHIR validator. They are no
//! substitute for that validator, and say so in their text; `contained` resources are not
//! checked against a profile.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

/// Where the profile schemas say they live (their `$id`s are below it).
const SCHEMA_BASE: &str = "https://koppeltest.test/schemas/fhir/";

/// The shared data types, then one schema per profile; the profile URL is the schema's
/// `x-profile`.
pub const EMBEDDED_SCHEMAS: &[(&str, &str)] = &[
    (
        "datatypes.schema.json",
        include_str!("../schemas/fhir/datatypes.schema.json"),
    ),
    (
        "nl-core-patient.schema.json",
        include_str!("../schemas/fhir/nl-core-patient.schema.json"),
    ),
    (
        "nl-core-practitioner.schema.json",
        include_str!("../schemas/fhir/nl-core-practitioner.schema.json"),
    ),
    (
        "nl-core-episodeofcare.schema.json",
        include_str!("../schemas/fhir/nl-core-episodeofcare.schema.json"),
    ),
    (
        "zib-Alert.schema.json",
        include_str!("../schemas/fhir/zib-Alert.schema.json"),
    ),
    (
        "zib-MedicationAgreement.schema.json",
        include_str!("../schemas/fhir/zib-MedicationAgreement.schema.json"),
    ),
    (
        "zib-Product.schema.json",
        include_str!("../schemas/fhir/zib-Product.schema.json"),
    ),
    (
        "zib-AllergyIntolerance.schema.json",
        include_str!("../schemas/fhir/zib-AllergyIntolerance.schema.json"),
    ),
    (
        "gp-LaboratoryResult.schema.json",
        include_str!("../schemas/fhir/gp-LaboratoryResult.schema.json"),
    ),
    (
        "gp-DiagnosticResult.schema.json",
        include_str!("../schemas/fhir/gp-DiagnosticResult.schema.json"),
    ),
    (
        "gp-EncounterReport.schema.json",
        include_str!("../schemas/fhir/gp-EncounterReport.schema.json"),
    ),
    (
        "gp-Encounter.schema.json",
        include_str!("../schemas/fhir/gp-Encounter.schema.json"),
    ),
];

/// The compiled schemas by profile URL.
pub struct Profiles {
    by_url: BTreeMap<String, jsonschema::Validator>,
}

/// What validating one resource found.
#[derive(Debug, PartialEq, Eq)]
pub enum Validation {
    Valid,
    /// Each problem as `path: message`.
    Invalid(Vec<String>),
    /// The resource names no profile.
    NoProfile,
    /// No schema for this profile: not one gegevensdienst 49 uses.
    UnknownProfile(String),
}

impl Profiles {
    /// The embedded schemas, compiled on first use. A broken embedded schema is a build defect
    /// that the unit tests catch; at run time it yields an empty set, so every resource is
    /// reported with an unknown profile rather than the run panicking.
    pub fn embedded() -> &'static Profiles {
        static PROFILES: OnceLock<Profiles> = OnceLock::new();
        PROFILES.get_or_init(|| {
            Profiles::compile().unwrap_or(Profiles {
                by_url: BTreeMap::new(),
            })
        })
    }

    fn compile() -> Result<Profiles, String> {
        let parsed: Vec<(&str, Value)> = EMBEDDED_SCHEMAS
            .iter()
            .map(|(name, text)| {
                serde_json::from_str(text)
                    .map(|v| (*name, v))
                    .map_err(|e| format!("{name}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let (_, datatypes) = &parsed[0];
        let registry = jsonschema::Registry::new()
            .add(
                format!("{SCHEMA_BASE}datatypes.schema.json"),
                jsonschema::Resource::from_contents(datatypes.clone()),
            )
            .and_then(|r| r.prepare())
            .map_err(|e| format!("datatypes.schema.json: {e}"))?;
        let mut by_url = BTreeMap::new();
        for (name, schema) in &parsed[1..] {
            let url = schema["x-profile"]
                .as_str()
                .ok_or_else(|| format!("{name}: no x-profile"))?;
            let validator = jsonschema::options()
                .offline()
                .with_registry(&registry)
                .build(schema)
                .map_err(|e| format!("{name}: {e}"))?;
            by_url.insert(url.to_string(), validator);
        }
        Ok(Profiles { by_url })
    }

    /// The profile URLs with a schema.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.by_url.keys().map(String::as_str)
    }

    /// Validates `resource` against the schema of each profile it claims.
    pub fn validate(&self, resource: &Value) -> Validation {
        let claimed: Vec<&str> = resource["meta"]["profile"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if claimed.is_empty() {
            return Validation::NoProfile;
        }
        let mut problems = Vec::new();
        for url in claimed {
            let Some(validator) = self.by_url.get(url) else {
                return Validation::UnknownProfile(url.to_string());
            };
            problems.extend(validator.iter_errors(resource).map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { &at })
            }));
        }
        if problems.is_empty() {
            Validation::Valid
        } else {
            Validation::Invalid(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_compiles_and_every_fixture_is_valid() {
        let profiles = Profiles::compile().unwrap();
        assert_eq!(profiles.by_url.len(), EMBEDDED_SCHEMAS.len() - 1);
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let mut seen = 0;
        for bsn in store.bsns() {
            for r in &store.get(bsn).unwrap().resources {
                if r["resourceType"] == "Condition" {
                    continue; // not retrievable in gegevensdienst 49
                }
                assert_eq!(profiles.validate(r), Validation::Valid, "{}", r["id"]);
                seen += 1;
            }
        }
        assert!(seen > 30);
    }

    /// A fixture resource that claims `profile`, from the embedded patients.
    fn fixture_of(store: &crate::fixtures::PatientStore, profile: &str) -> Option<Value> {
        store
            .bsns()
            .flat_map(|bsn| &store.get(bsn).unwrap().resources)
            .find(|r| r["meta"]["profile"][0] == profile)
            .cloned()
    }

    /// Whether `resource` is refused with a problem that names `unknown` at `path`.
    fn refused(profiles: &Profiles, resource: &Value, path: &str, unknown: &str) -> bool {
        match profiles.validate(resource) {
            Validation::Invalid(problems) => problems
                .iter()
                .any(|p| p.starts_with(&format!("{path}:")) && p.contains(unknown)),
            _ => false,
        }
    }

    #[test]
    fn every_type_a_schema_defines_is_closed() {
        for (name, text) in EMBEDDED_SCHEMAS {
            let schema: Value = serde_json::from_str(text).unwrap();
            if schema.get("x-profile").is_some() {
                assert_eq!(schema["additionalProperties"], false, "{name}");
            }
            for (def, body) in schema["$defs"].as_object().into_iter().flatten() {
                if body["type"] == "object" {
                    assert_eq!(body["additionalProperties"], false, "{name}: {def}");
                }
            }
        }
    }

    #[test]
    fn an_element_stu3_does_not_define_is_refused_in_every_profile() {
        let profiles = Profiles::compile().unwrap();
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        for url in profiles.urls() {
            let mut r = fixture_of(&store, url).unwrap_or_else(|| panic!("no fixture for {url}"));
            assert_eq!(profiles.validate(&r), Validation::Valid, "{url}");
            r["koppeltestUnknown"] = true.into();
            assert!(refused(&profiles, &r, "/", "koppeltestUnknown"), "{url}");
        }
        // The case: Medication.identifier exists only from R4 on.
        let mut medication = fixture_of(
            &store,
            "http://nictiz.nl/fhir/StructureDefinition/zib-Product",
        )
        .unwrap();
        medication["identifier"] = serde_json::json!([{ "system": "urn:x", "value": "1" }]);
        assert!(refused(&profiles, &medication, "/", "identifier"));
    }

    #[test]
    fn an_unknown_element_in_a_data_type_is_refused() {
        let profiles = Profiles::compile().unwrap();
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let p = store.get("999911533").unwrap();
        let lab = p.resolve("Observation/dv-lab-recent").unwrap();
        let patient = p.resolve("Patient/dv-pat").unwrap();
        let cases: [(&Value, &str, Value); 6] = [
            (
                lab,
                "/code/coding/0",
                serde_json::json!({ "codeSystem": "x" }),
            ),
            (lab, "/meta", serde_json::json!({ "profiles": ["x"] })),
            (lab, "/valueQuantity", serde_json::json!({ "units": "x" })),
            (lab, "/subject", serde_json::json!({ "type": "Patient" })),
            (
                patient,
                "/identifier/0",
                serde_json::json!({ "label": "x" }),
            ),
            (patient, "/name/0", serde_json::json!({ "initials": "x" })),
        ];
        for (resource, path, unknown) in cases {
            let mut r = resource.clone();
            let (key, value) = unknown.as_object().unwrap().iter().next().unwrap();
            r.pointer_mut(path).unwrap()[key] = value.clone();
            assert!(refused(&profiles, &r, path, key), "{path}.{key}");
        }
        // A primitive's `_name` carries only an id and extensions.
        let mut r = patient.clone();
        r["_birthDate"] = serde_json::json!({ "value": "1961" });
        assert!(refused(&profiles, &r, "/_birthDate", "value"));
    }

    #[test]
    fn an_unknown_element_in_a_backbone_element_is_refused() {
        let profiles = Profiles::compile().unwrap();
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let p = store.get("999911533").unwrap();
        for (reference, path) in [
            ("Composition/dv-comp-recent", "/section/0"),
            ("EpisodeOfCare/dv-eoc-active", "/diagnosis/0"),
        ] {
            let mut r = p.resolve(reference).unwrap().clone();
            r.pointer_mut(path).unwrap()["koppeltestUnknown"] = true.into();
            assert!(
                refused(&profiles, &r, path, "koppeltestUnknown"),
                "{reference}{path}"
            );
        }
    }

    #[test]
    fn stu3_elements_the_fixtures_do_not_use_are_accepted() {
        // Closing the schemas must not fail a DVA that sends more of STU3 than the fixtures do.
        let profiles = Profiles::compile().unwrap();
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let p = store.get("999911533").unwrap();
        let mut patient = p.resolve("Patient/dv-pat").unwrap().clone();
        patient["text"] = serde_json::json!({ "status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">P</div>" });
        patient["telecom"] =
            serde_json::json!([{ "system": "phone", "value": "0612345678", "use": "mobile" }]);
        patient["address"] = serde_json::json!([{ "line": ["Teststraat 1"], "city": "Utrecht", "postalCode": "3511AA" }]);
        patient["_birthDate"] =
            serde_json::json!({ "extension": [{ "url": "urn:x", "valueCode": "x" }] });
        patient["name"][0]["given"] = serde_json::json!(["Pieter", null]);
        patient["name"][0]["_given"] = serde_json::json!([null, { "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "IN" }] }]);
        patient["contact"] = serde_json::json!([{ "relationship": [{ "text": "partner" }], "name": { "family": "Test" } }]);
        patient["deceasedBoolean"] = false.into();
        assert_eq!(profiles.validate(&patient), Validation::Valid);
    }

    #[test]
    fn deviations_are_named_with_their_path() {
        let profiles = Profiles::compile().unwrap();
        let store = crate::fixtures::PatientStore::embedded().unwrap();
        let p = store.get("999911533").unwrap();
        let mut lab = p.resolve("Observation/dv-lab-recent").unwrap().clone();
        lab["effectiveDateTime"] = "23-11-2026".into();
        lab.as_object_mut().unwrap().remove("status");
        let Validation::Invalid(problems) = profiles.validate(&lab) else {
            panic!("a Dutch date and no status must not validate");
        };
        assert!(
            problems.iter().any(|p| p.starts_with("/effectiveDateTime")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("status")),
            "{problems:?}"
        );
        lab["meta"]["profile"] = serde_json::json!(["http://example.test/other"]);
        assert!(matches!(
            profiles.validate(&lab),
            Validation::UnknownProfile(_)
        ));
        lab["meta"] = serde_json::json!({});
        assert_eq!(profiles.validate(&lab), Validation::NoProfile);
    }
}
