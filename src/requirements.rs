//! The requirements catalogue (`requirements/catalogue.toml`) and its coverage.
//!
//! The catalogue is data: id, level, source, text, the brief's defect numbers, and for an entry
//! nothing tests, the reason. Which scenarios test an entry is computed from the scenarios
//! themselves (their `requirements` plus the requirements of their checks' kinds), so the two
//! cannot drift apart silently: [`Coverage::problems`] names every id a scenario uses that the
//! catalogue lacks, and every entry that is neither tested nor explained.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::scenario::Scenario;

pub const EMBEDDED: (&str, &str) = (
    "requirements/catalogue.toml",
    include_str!("../requirements/catalogue.toml"),
);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    #[serde(rename = "requirement")]
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub id: String,
    pub level: String,
    pub source: String,
    pub text: String,
    /// Defects of the domain brief's section 10 this rule guards against.
    #[serde(default)]
    pub defects: Vec<u8>,
    /// Why nothing tests it.
    pub untested: Option<String>,
}

impl Catalogue {
    pub fn embedded() -> Result<Catalogue, String> {
        toml::from_str(EMBEDDED.1).map_err(|e| format!("{}: {}", EMBEDDED.0, e.message()))
    }
}

/// The requirement ids one scenario verifies.
pub fn verified_by(scenario: &Scenario) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = scenario.requirements.iter().cloned().collect();
    for check in &scenario.checks {
        ids.extend(
            crate::checks::requirements(check.kind())
                .iter()
                .map(|s| s.to_string()),
        );
    }
    ids
}

/// The catalogue against a set of scenarios.
pub struct Coverage<'a> {
    pub catalogue: &'a Catalogue,
    /// Requirement id → scenario ids that verify it.
    pub tested_by: BTreeMap<String, Vec<String>>,
    /// (id, scenario) pairs where a scenario names an id the catalogue lacks.
    pub unknown: Vec<(String, String)>,
}

impl<'a> Coverage<'a> {
    pub fn of(catalogue: &'a Catalogue, scenarios: &[Scenario]) -> Coverage<'a> {
        let known: BTreeSet<&str> = catalogue
            .requirements
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        let mut tested_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for s in scenarios {
            for id in verified_by(s) {
                if !known.contains(id.as_str()) {
                    unknown.push((id.clone(), s.id.clone()));
                }
                tested_by.entry(id).or_default().push(s.id.clone());
            }
        }
        Coverage {
            catalogue,
            tested_by,
            unknown,
        }
    }

    /// Everything that makes the catalogue and the scenarios disagree.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown
            .iter()
            .map(|(id, s)| format!("scenario {s} names {id}, which is not in the catalogue"))
            .collect();
        let mut ids = BTreeSet::new();
        for r in &self.catalogue.requirements {
            if !ids.insert(&r.id) {
                out.push(format!("{} is in the catalogue twice", r.id));
            }
            let tested = self.tested_by.contains_key(&r.id);
            match (tested, &r.untested) {
                (false, None) => out.push(format!(
                    "{} is neither tested nor explained (`untested`)",
                    r.id
                )),
                (true, Some(_)) => {
                    out.push(format!("{} is tested, yet says why it is untested", r.id))
                }
                _ => {}
            }
        }
        out
    }

    /// The table `koppeltest requirements` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let tested = self
            .catalogue
            .requirements
            .iter()
            .filter(|r| self.tested_by.contains_key(&r.id))
            .count();
        for r in &self.catalogue.requirements {
            let status = match self.tested_by.get(&r.id) {
                Some(s) => {
                    let mut s = s.clone();
                    s.sort();
                    s.dedup();
                    format!("tested by {}", s.join(", "))
                }
                None => format!(
                    "not tested: {}",
                    r.untested.as_deref().unwrap_or("no reason given")
                ),
            };
            out.push_str(&format!(
                "{:<40} {:<6} {}\n    {}\n",
                r.id, r.level, r.text, status
            ));
        }
        out.push_str(&format!(
            "\n{tested} of {} requirements tested by scenarios; the rest say why not.\n",
            self.catalogue.requirements.len()
        ));
        let covered: BTreeSet<u8> = self
            .catalogue
            .requirements
            .iter()
            .flat_map(|r| r.defects.iter().copied())
            .collect();
        let listed: Vec<String> = covered.iter().map(|d| d.to_string()).collect();
        out.push_str(&format!(
            "Defects of brief section 10 guarded: {}\n",
            listed.join(", ")
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_and_the_scenarios_agree() {
        let catalogue = Catalogue::embedded().unwrap();
        let scenarios = crate::scenario::embedded().unwrap();
        let coverage = Coverage::of(&catalogue, &scenarios);
        assert_eq!(coverage.problems(), Vec::<String>::new());
    }

    #[test]
    fn every_defect_the_auth_suite_owns_is_in_the_catalogue() {
        let catalogue = Catalogue::embedded().unwrap();
        let covered: BTreeSet<u8> = catalogue
            .requirements
            .iter()
            .flat_map(|r| r.defects.iter().copied())
            .collect();
        for defect in (1..=14).chain([17]) {
            assert!(
                covered.contains(&defect),
                "defect {defect} of brief section 10 has no catalogue entry"
            );
        }
    }

    #[test]
    fn a_missing_id_or_an_unexplained_entry_is_a_problem() {
        let mut catalogue = Catalogue::embedded().unwrap();
        let scenarios = crate::scenario::embedded().unwrap();
        catalogue.requirements.retain(|r| r.id != "core.tknint.204");
        catalogue.requirements.push(Requirement {
            id: "x.untested".into(),
            level: "MUST".into(),
            source: "s".into(),
            text: "t".into(),
            defects: vec![],
            untested: None,
        });
        let problems = Coverage::of(&catalogue, &scenarios).problems();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("core.tknint.204") && p.contains("not in the catalogue")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("x.untested is neither tested nor explained")),
            "{problems:?}"
        );
    }
}
