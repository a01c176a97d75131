//! The DVA as SAML service provider, over the wire: every SAML scenario passes against the
//! conformant simulated DVA, and the XXE listener on the mock TVS is never contacted by it, in
//! any scenario. The listener itself is proven to work: a DVA that resolves external entities
//! (quirk `saml-external-entities-resolved`) does contact it, and that scenario fails.

use koppeltest::outcome::Outcome;
use koppeltest::scenario::{self, Scenario};

use crate::helpers::{matrix_toml, prepare, run};

fn saml_scenarios() -> Vec<Scenario> {
    scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.tags.iter().any(|t| t == "saml"))
        .collect()
}

/// Exchanges of a scenario that reached the mock TVS's external-entity listener.
fn entity_fetches(report: &koppeltest::report::ScenarioReport) -> Vec<String> {
    report
        .exchanges
        .iter()
        .filter(|x| x.url.contains("/entity/"))
        .map(|x| format!("{} {} {}", x.seq, x.method, x.url))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_conformant_dva_passes_every_saml_scenario_and_never_fetches_an_entity() {
    let scenarios = saml_scenarios();
    assert!(scenarios.len() >= 40, "{} SAML scenarios", scenarios.len());
    let finished = run(prepare(&matrix_toml(&[], &[], "2.2"), scenarios)).await;
    for f in &finished {
        for c in &f.report.checks {
            assert_eq!(
                c.outcome,
                Outcome::Pass,
                "{} ({}): {}",
                f.report.id,
                c.kind,
                c.message
            );
        }
        let fetched = entity_fetches(&f.report);
        assert!(fetched.is_empty(), "{}: {fetched:?}", f.report.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dva_that_resolves_external_entities_contacts_the_listener_and_fails() {
    let scenarios: Vec<Scenario> = saml_scenarios()
        .into_iter()
        .filter(|s| s.id == "saml.external-entity")
        .collect();
    assert_eq!(scenarios.len(), 1);
    let finished = run(prepare(
        &matrix_toml(&["saml-external-entities-resolved"], &[], "2.2"),
        scenarios,
    ))
    .await;
    let report = &finished[0].report;
    assert!(
        !entity_fetches(report).is_empty(),
        "the listener was never contacted"
    );
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(
        failed,
        ["login-refused", "entity-not-fetched"],
        "{report:#?}"
    );
}
