//! The two anti-DVAs, as invariants over every check of every embedded scenario:
//!
//! - **a DVA that refuses everything earns no pass**: every refusal it gives is well-formed
//!   where it can be (`invalid_grant`, a 401 with a Bearer challenge and an OperationOutcome),
//!   so only the proof of cause (a control step accepted, the stimulus seen to arrive) keeps
//!   its refusals from passing the negative checks;
//! - **a DVA that accepts everything passes no negative scenario**: whatever the fault, it
//!   goes through, so every negative check must see it.
//!
//! Both run on both PGO releases whose scope dialects differ (1.x and 2.2).

use koppeltest::outcome::Outcome;
use koppeltest::scenario;

use crate::helpers::{matrix_toml, prepare, run};

/// Every check that passed against `quirk` on a step whose action is in `actions`.
async fn passes_on(quirk: &str, actions: &[&str]) -> Vec<String> {
    let scenarios = scenario::embedded().unwrap();
    let mut passed = Vec::new();
    for release in ["1.x", "2.2"] {
        let finished = run(prepare(
            &matrix_toml(&[quirk], &[], release),
            scenarios.clone(),
        ))
        .await;
        assert_eq!(finished.len(), scenarios.len());
        for f in &finished {
            let scenario = scenarios.iter().find(|s| s.id == f.report.id).unwrap();
            for (spec, check) in scenario.checks.iter().zip(&f.report.checks) {
                let action = scenario
                    .steps
                    .iter()
                    .find(|s| s.id() == spec.step())
                    .map(|s| s.action())
                    .unwrap();
                if actions.contains(&action) && check.outcome == Outcome::Pass {
                    passed.push(format!(
                        "{release} {} {} ({}): {}",
                        f.report.id, check.kind, check.step, check.message
                    ));
                }
            }
        }
    }
    passed
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dva_that_refuses_everything_earns_no_pass() {
    let passed = passes_on(
        "refuse-everything",
        &["authorize", "token", "refresh", "fhir"],
    )
    .await;
    assert!(
        passed.is_empty(),
        "checks that passed against a DVA refusing everything:\n{}",
        passed.join("\n")
    );
}

/// The same, one channel at a time: authorization works, so the token and resource steps run
/// and meet refusals in perfect form (`invalid_grant`; 401 with a Bearer challenge and an
/// OperationOutcome). No check of a refused channel may pass on them.
#[tokio::test(flavor = "multi_thread")]
async fn a_dva_that_refuses_tokens_or_resources_earns_no_pass_there() {
    for (quirk, actions) in [
        ("refuse-tokens", &["token", "refresh", "fhir"][..]),
        ("refuse-resources", &["fhir"][..]),
    ] {
        let passed = passes_on(quirk, actions).await;
        assert!(
            passed.is_empty(),
            "{quirk}: checks that passed on refused steps:\n{}",
            passed.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dva_that_accepts_everything_passes_no_negative_scenario() {
    let scenarios = scenario::embedded().unwrap();
    // `loa-respected` judges both ways: at or above the row's minimum a login must be
    // accepted, which a DVA accepting everything rightly does; only below it is it negative.
    let negative_check =
        |c: &koppeltest::scenario::CheckSpec| c.control().is_some() && c.kind() != "loa-respected";
    let negative: Vec<&str> = scenarios
        .iter()
        .filter(|s| s.checks.iter().any(negative_check))
        .map(|s| s.id.as_str())
        .collect();
    assert!(
        negative.len() >= 30,
        "only {} negative scenarios",
        negative.len()
    );
    for release in ["1.x", "2.2"] {
        let finished = run(prepare(
            &matrix_toml(&["accept-everything"], &[], release),
            scenarios.clone(),
        ))
        .await;
        let mut passed = Vec::new();
        for f in finished
            .iter()
            .filter(|f| negative.contains(&f.report.id.as_str()))
        {
            let scenario = scenarios.iter().find(|s| s.id == f.report.id).unwrap();
            if f.report.outcome == Outcome::Pass {
                passed.push(format!("{} passed as a whole", f.report.id));
            }
            for (spec, check) in scenario.checks.iter().zip(&f.report.checks) {
                if negative_check(spec) && !matches!(check.outcome, Outcome::Fail | Outcome::Warn) {
                    passed.push(format!(
                        "{} {} ({}) is {:?}, not fail: {}",
                        f.report.id, check.kind, check.step, check.outcome, check.message
                    ));
                }
            }
        }
        assert!(
            passed.is_empty(),
            "{release}: negative checks a DVA accepting everything did not fail:\n{}",
            passed.join("\n")
        );
    }
}

/// Severity from the rule text: a DVA that keeps the tokens of a replayed code breaks only the
/// SHOULD of RFC 6749 §4.1.2, so `token.replay-revokes` warns and the run does not fail.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_should_warns_and_fails_nothing() {
    let scenarios: Vec<_> = scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.id == "token.replay-revokes")
        .collect();
    let prepared = prepare(
        &matrix_toml(&["replay-keeps-tokens"], &[], "2.2"),
        scenarios,
    );
    let finished = run(prepared.clone()).await;
    let report = &finished[0].report;
    assert_eq!(report.outcome, Outcome::Warn, "{:#?}", report.checks);
    let warned: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Warn)
        .collect();
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0].requirements, ["rfc6749#4.1.2.revoke"]);
    let summary = koppeltest::runner::build_report(&prepared, "t", "t", &finished, false).summary;
    assert_eq!((summary.warn, summary.fail), (1, 0));
    assert_eq!(summary.exit_code, koppeltest::exit::OK);
}
