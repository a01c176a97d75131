//! The mutation test: every check of every embedded scenario passes against the conformant
//! simulated DVA and fails against at least one named quirk; every quirk makes at least one
//! check fail. A check nothing can kill, or a quirk nothing notices, fails the build.

use std::collections::BTreeMap;

use koppeltest::dva::Quirk;
use koppeltest::outcome::Outcome;
use koppeltest::scenario;

use crate::helpers::{matrix_toml, prepare, run};

#[tokio::test(flavor = "multi_thread")]
async fn every_check_is_killed_by_a_quirk_and_every_quirk_is_noticed() {
    let scenarios = scenario::embedded().unwrap();
    // The 2.2 profile: its provider-name scope is what the scope-dialect quirks refuse.
    let conformant = run(prepare(&matrix_toml(&[], &[], "2.2"), scenarios.clone())).await;
    let mut killers: BTreeMap<(String, usize, String), Vec<String>> = BTreeMap::new();
    for f in &conformant {
        for (i, c) in f.report.checks.iter().enumerate() {
            assert_eq!(
                c.outcome,
                Outcome::Pass,
                "{} check {i} ({}) against the conformant DVA: {}",
                f.report.id,
                c.kind,
                c.message
            );
            killers.insert((f.report.id.clone(), i, c.kind.clone()), Vec::new());
        }
    }
    let mut unnoticed = Vec::new();
    for quirk in Quirk::ALL {
        let name = quirk.name();
        let finished = run(prepare(
            &matrix_toml(&[name.as_str()], &[], "2.2"),
            scenarios.clone(),
        ))
        .await;
        let mut noticed = false;
        for f in &finished {
            for (i, c) in f.report.checks.iter().enumerate() {
                if c.outcome == Outcome::Fail {
                    noticed = true;
                    if let Some(k) = killers.get_mut(&(f.report.id.clone(), i, c.kind.clone())) {
                        k.push(name.clone());
                    }
                }
            }
        }
        if !noticed {
            unnoticed.push(name);
        }
    }
    let survivors: Vec<String> = killers
        .iter()
        .filter(|(_, k)| k.is_empty())
        .map(|((s, i, kind), _)| format!("{s} check {i} ({kind})"))
        .collect();
    assert!(
        survivors.is_empty(),
        "checks no quirk makes fail: {survivors:#?}"
    );
    assert!(
        unnoticed.is_empty(),
        "quirks no check notices: {unnoticed:?}"
    );
}
