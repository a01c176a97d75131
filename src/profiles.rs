//! Profile validation: koppeltest's own JSON Schemas (`schemas/fhir/`) for every FHIR profile
//! gegevensdienst 49 uses, compiled once and applied by a resource's `meta.profile`.
//!
//! The schemas state what the profile definitions require (elements, fixed codes and systems,
//! value types); they are no substitute for the FHIR validator, and say so in their text.

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
