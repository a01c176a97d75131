//! The requirements catalogue (`requirements/catalogue.toml`) and its coverage.
//!
//! The catalogue is data: id, level, source, text, the brief's defect numbers, and for an entry
//! nothing tests, the reason. An entry counts as tested only when it is *killed*: a check of a
//! scenario credits it (computed from the scenarios: their `requirements` plus their checks'
//! kinds), and a quirk of the simulated DVA that violates it ([`crate::dva::Quirk::violates`])
//! makes such a check fail, which the mutation test proves for every claim. A check that no
//! quirk can break credits nothing in a report ([`is_killed`]). [`Coverage::problems`] names
//! every id a scenario or a quirk uses that the catalogue lacks, and every entry that is
//! neither tested nor explained.

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
    /// The family the rule belongs to; the launch decision treats failures in the security
    /// families as blockers.
    pub family: Family,
    pub source: String,
    pub text: String,
    /// Defects of the domain brief's section 10 this rule guards against.
    #[serde(default)]
    pub defects: Vec<u8>,
    /// Why nothing tests it.
    pub untested: Option<String>,
    /// A rule for the PGO, judged by the PGO suite (`scenarios/pgo/suite.toml`) and killed by
    /// the mock PGO's faults; otherwise a rule for the DVA.
    #[serde(default)]
    pub pgo: bool,
}

/// Which part of MedMij a rule is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Authorization,
    Token,
    Tls,
    Saml,
    Resource,
    Record,
    Lists,
}

impl Family {
    /// Authorization, token, TLS and SAML: a failed MUST there is a security failure.
    pub fn is_security(self) -> bool {
        matches!(
            self,
            Family::Authorization | Family::Token | Family::Tls | Family::Saml
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Family::Authorization => "authorization",
            Family::Token => "token",
            Family::Tls => "TLS",
            Family::Saml => "SAML",
            Family::Resource => "resource",
            Family::Record => "GP record",
            Family::Lists => "lists",
        }
    }
}

/// A catalogue entry's level and family, by id, from the embedded catalogue (`None`: not in it).
pub fn rule(id: &str) -> Option<(&'static str, Family)> {
    static RULES: std::sync::OnceLock<BTreeMap<String, (&'static str, Family)>> =
        std::sync::OnceLock::new();
    RULES
        .get_or_init(|| {
            Catalogue::embedded()
                .map(|c| {
                    c.requirements
                        .into_iter()
                        .map(|r| {
                            let level = match r.level.as_str() {
                                "MUST" => "MUST",
                                "SHOULD" => "SHOULD",
                                _ => "MAY",
                            };
                            (r.id, (level, r.family))
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .get(id)
        .copied()
}

impl Catalogue {
    pub fn embedded() -> Result<Catalogue, String> {
        toml::from_str(EMBEDDED.1).map_err(|e| format!("{}: {}", EMBEDDED.0, e.message()))
    }
}

/// The requirement ids one scenario's checks credit.
pub fn verified_by(scenario: &Scenario) -> BTreeSet<String> {
    scenario
        .checks
        .iter()
        .flat_map(|c| crate::checks::credited(c, scenario))
        .collect()
}

/// The quirks of the simulated DVA, and the faults of the mock PGO (as a PGO under test), that
/// violate `id`: each claim is proven by a mutation test (a check crediting `id` fails against
/// it), so these are its killers.
pub fn killers(id: &str) -> Vec<String> {
    let quirks = crate::dva::Quirk::ALL
        .iter()
        .filter(|q| q.violates().contains(&id))
        .map(|q| q.name());
    let faults = crate::pgo::PgoFault::ALL
        .iter()
        .filter(|f| f.violates().contains(&id))
        .map(|f| format!("PGO fault {}", f.name()));
    quirks.chain(faults).collect()
}

/// Whether a check may credit `id` in a report: some quirk or PGO fault is proven to break it.
pub fn is_killed(id: &str) -> bool {
    crate::dva::Quirk::ALL
        .iter()
        .any(|q| q.violates().contains(&id))
        || crate::pgo::PgoFault::ALL
            .iter()
            .any(|f| f.violates().contains(&id))
}

/// Whether `ids` is non-empty and every one is a SHOULD (or MAY) in the embedded catalogue: a
/// check failing only such rules is a warning, not a failure.
pub fn only_should(ids: &[String]) -> bool {
    !ids.is_empty()
        && ids
            .iter()
            .all(|id| rule(id).is_some_and(|(level, _)| level != "MUST"))
}

/// The catalogue against a set of scenarios.
pub struct Coverage<'a> {
    pub catalogue: &'a Catalogue,
    /// Requirement id → scenario ids whose checks credit it.
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
        // The PGO suite's scenarios credit the PGO rules their checks verify.
        for s in crate::bench::suite().unwrap_or_default() {
            let sid = crate::bench::report_id(&s.id);
            for kind in &s.checks {
                for id in crate::checks::pgo::requirements(kind) {
                    if !known.contains(id) {
                        unknown.push((id.to_string(), sid.clone()));
                    }
                    let by = tested_by.entry(id.to_string()).or_default();
                    if !by.contains(&sid) {
                        by.push(sid.clone());
                    }
                }
            }
        }
        Coverage {
            catalogue,
            tested_by,
            unknown,
        }
    }

    /// Tested: a scenario's check credits the requirement, and a quirk that violates it is
    /// killed by such a check (the mutation test proves every claimed violation).
    pub fn is_tested(&self, id: &str) -> bool {
        self.tested_by.contains_key(id) && is_killed(id)
    }

    /// Everything that makes the catalogue, the quirks and the scenarios disagree.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown
            .iter()
            .map(|(id, s)| format!("scenario {s} names {id}, which is not in the catalogue"))
            .collect();
        let known: BTreeSet<&str> = self
            .catalogue
            .requirements
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        for q in crate::dva::Quirk::ALL {
            for id in q.violates() {
                if !known.contains(id) {
                    out.push(format!(
                        "quirk {} claims to violate {id}, which is not in the catalogue",
                        q.name()
                    ));
                }
            }
        }
        for f in crate::pgo::PgoFault::ALL {
            for id in f.violates() {
                if !known.contains(id) {
                    out.push(format!(
                        "PGO fault {} claims to violate {id}, which is not in the catalogue",
                        f.name()
                    ));
                }
            }
        }
        let mut ids = BTreeSet::new();
        for r in &self.catalogue.requirements {
            if !ids.insert(&r.id) {
                out.push(format!("{} is in the catalogue twice", r.id));
            }
            if is_killed(&r.id) && !self.tested_by.contains_key(&r.id) {
                out.push(format!(
                    "{} is violated by quirk(s) {}, but no check credits it",
                    r.id,
                    killers(&r.id).join(", ")
                ));
            }
            match (self.is_tested(&r.id), &r.untested) {
                (false, None) => out.push(format!(
                    "{} has no killing quirk and does not say why it is untested (`untested`)",
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
        let tested: Vec<&Requirement> = self
            .catalogue
            .requirements
            .iter()
            .filter(|r| self.is_tested(&r.id))
            .collect();
        for r in &self.catalogue.requirements {
            let status = if self.is_tested(&r.id) {
                let mut s = self.tested_by[&r.id].clone();
                s.sort();
                s.dedup();
                format!(
                    "tested by {}; killed by {}{}",
                    s.join(", "),
                    if r.pgo { "" } else { "quirk " },
                    killers(&r.id).join(", ")
                )
            } else {
                let credited = match self.tested_by.get(&r.id) {
                    Some(s) => format!(" (credited by {}, but no quirk breaks it)", s.join(", ")),
                    None => String::new(),
                };
                format!(
                    "not tested{credited}: {}",
                    r.untested.as_deref().unwrap_or("no reason given")
                )
            };
            out.push_str(&format!(
                "{:<40} {:<6} {}\n    {}\n",
                r.id, r.level, r.text, status
            ));
        }
        out.push_str(&format!(
            "\n{} of {} requirements tested: a scenario's check credits each, and a quirk that breaks it makes that check fail. The rest say why not.\n",
            tested.len(),
            self.catalogue.requirements.len()
        ));
        let guarded: BTreeSet<u8> = tested
            .iter()
            .flat_map(|r| r.defects.iter().copied())
            .collect();
        let partly: BTreeSet<u8> = self
            .catalogue
            .requirements
            .iter()
            .filter(|r| !self.is_tested(&r.id))
            .flat_map(|r| r.defects.iter().copied())
            .filter(|d| guarded.contains(d))
            .collect();
        let list = |set: &BTreeSet<u8>| {
            set.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "Defects of brief section 10 with a tested requirement: {} (only in part: {})\n",
            list(&guarded),
            list(&partly)
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
    fn only_a_failure_of_shoulds_alone_is_a_warning() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(only_should(&ids(&["rfc6749#4.1.2.revoke"])));
        assert!(!only_should(&ids(&[
            "rfc6749#4.1.2.revoke",
            "core.tknint.204"
        ])));
        assert!(!only_should(&ids(&["core.tknint.204"])));
        assert!(!only_should(&[]));
        assert!(!only_should(&ids(&["not-in-the-catalogue"])));
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
            family: Family::Token,
            source: "s".into(),
            text: "t".into(),
            defects: vec![],
            untested: None,
            pgo: false,
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
                .any(|p| p.contains("x.untested has no killing quirk")),
            "{problems:?}"
        );
    }
}
