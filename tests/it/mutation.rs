//! The mutation test: every check of every embedded scenario passes against the conformant
//! simulated DVA and fails against at least one named quirk; every quirk makes at least one
//! check fail. A check nothing can kill, or a quirk nothing notices, fails the build.
//!
//! It also holds each quirk to exactly the scenarios `requirements/quirks.toml` says it breaks,
//! and to exactly the kinds of check it makes fail there, and proves every requirement a quirk
//! claims to violate ([`Quirk::violates`]) is killed: a check crediting it fails against the
//! quirk. That is what `koppeltest requirements` counts as tested. The two anti-DVAs
//! (`refuse-everything`, `accept-everything`) are invariants of their own (invariants.rs).
//! After a deliberate change, regenerate that file with `KOPPELTEST_ACCEPT=1 cargo test
//! mutation` (never under CI) and review the diff.

use std::collections::{BTreeMap, BTreeSet};

use koppeltest::dva::Quirk;
use koppeltest::outcome::Outcome;
use koppeltest::scenario;

use crate::helpers::{matrix_toml, prepare, run};

#[tokio::test(flavor = "multi_thread")]
async fn every_check_is_killed_by_a_quirk_and_every_quirk_is_noticed() {
    let scenarios = scenario::embedded().unwrap();
    // The 2.2 profile: its provider-name scope is what the scope-dialect quirks refuse.
    let conformant = run(prepare(&matrix_toml(&[], &[], "2.2"), scenarios.clone())).await;
    let mut killers: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in &conformant {
        for (c, key) in f.report.checks.iter().zip(keys(&f.report.checks)) {
            assert_eq!(
                c.outcome,
                Outcome::Pass,
                "{} check {key} against the conformant DVA: {}",
                f.report.id,
                c.message
            );
            killers.insert((f.report.id.clone(), key), Vec::new());
        }
    }
    // Quirks run eight at a time (the expiry scenarios advance a clock; nothing waits).
    let mut batches = Vec::new();
    let quirks: Vec<Quirk> = Quirk::ALL
        .iter()
        .copied()
        .filter(|q| !Quirk::ANTI.contains(q) && !Quirk::AVAILABILITY.contains(q))
        .collect();
    for group in quirks.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for quirk in group {
            let name = quirk.name();
            let prepared = prepare(
                &matrix_toml(&[name.as_str()], &[], "2.2"),
                scenarios.clone(),
            );
            set.spawn(async move { (name, koppeltest::runner::run_all(prepared, 4).await) });
        }
        while let Some(done) = set.join_next().await {
            batches.push(done.expect("quirk batch"));
        }
    }
    let mut unnoticed = Vec::new();
    let mut unkilled = Vec::new();
    let mut breaks: BTreeMap<String, Broken> = BTreeMap::new();
    for (name, finished) in batches {
        let failed = finished.iter().filter(|f| killed(f.report.outcome));
        breaks.insert(
            name.clone(),
            Broken {
                scenarios: failed.clone().map(|f| f.report.id.clone()).collect(),
                checks: failed
                    .flat_map(|f| &f.report.checks)
                    .filter(|c| killed(c.outcome))
                    .map(|c| c.kind.clone())
                    .collect(),
            },
        );
        let broken_rules: BTreeSet<&str> = finished
            .iter()
            .flat_map(|f| &f.report.checks)
            .filter(|c| killed(c.outcome))
            .flat_map(|c| c.requirements.iter().map(String::as_str))
            .collect();
        let quirk = quirks.iter().find(|q| q.name() == name).expect("quirk");
        for claimed in quirk.violates() {
            if !broken_rules.contains(claimed) {
                unkilled.push(format!(
                    "{name} claims to violate {claimed}, but no check crediting it failed (failed checks credit {broken_rules:?})"
                ));
            }
        }
        let mut noticed = false;
        for f in &finished {
            for (c, key) in f.report.checks.iter().zip(keys(&f.report.checks)) {
                if killed(c.outcome) {
                    noticed = true;
                    if let Some(k) = killers.get_mut(&(f.report.id.clone(), key)) {
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
        .map(|((s, key), _)| format!("{s} check {key}"))
        .collect();
    assert!(
        survivors.is_empty(),
        "checks no quirk makes fail: {survivors:#?}"
    );
    assert!(
        unnoticed.is_empty(),
        "quirks no check notices: {unnoticed:?}"
    );
    assert!(unkilled.is_empty(), "{}", unkilled.join("\n"));

    assert_exact_breaks(&breaks);
}

/// Each check's identity within its scenario: `step/kind`, numbered when a step has the same
/// kind twice. Not its position: the per-login SAML checks a run adds depend on how far each
/// login got, so positions shift between the conformant run and a quirk's.
fn keys(checks: &[koppeltest::checks::CheckResult]) -> Vec<String> {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    checks
        .iter()
        .map(|c| {
            let n = seen.entry((c.step.clone(), c.kind.clone())).or_insert(0);
            *n += 1;
            if *n == 1 {
                format!("{}/{}", c.step, c.kind)
            } else {
                format!("{}/{}#{n}", c.step, c.kind)
            }
        })
        .collect()
}

/// A check is killed when it fails, or warns (fails a SHOULD only).
fn killed(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Fail | Outcome::Warn)
}

/// What one quirk broke: scenarios, and the kinds of check that failed in them.
#[derive(Debug, PartialEq, Eq, Default, serde::Deserialize)]
struct Broken {
    #[serde(rename = "breaks")]
    scenarios: BTreeSet<String>,
    checks: BTreeSet<String>,
}

/// Compares what each quirk broke with `requirements/quirks.toml`.
fn assert_exact_breaks(breaks: &BTreeMap<String, Broken>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("requirements/quirks.toml");
    let mut rendered = String::from(
        "# Which scenarios each simulated-DVA quirk breaks (the 2.2 PGO profile), and which kinds of\n\
         # check fail there, checked exactly by tests/it/mutation.rs. Regenerate with\n\
         # `KOPPELTEST_ACCEPT=1 cargo test mutation` and review.\n",
    );
    let list = |items: &BTreeSet<String>| {
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (quirk, broken) in breaks {
        rendered.push_str(&format!(
            "\n[{quirk}]\nbreaks = [{}]\nchecks = [{}]\n",
            list(&broken.scenarios),
            list(&broken.checks)
        ));
    }
    if std::env::var_os("KOPPELTEST_ACCEPT").is_some() && std::env::var_os("CI").is_none() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let expected: BTreeMap<String, Broken> =
        toml::from_str(&committed).expect("quirks.toml parses");
    let mut differences = Vec::new();
    let none = Broken::default();
    for (quirk, got) in breaks {
        let want = expected.get(quirk).unwrap_or(&none);
        for (what, want, got) in [
            ("scenarios", &want.scenarios, &got.scenarios),
            ("checks", &want.checks, &got.checks),
        ] {
            if want != got {
                let missing: Vec<_> = want.difference(got).collect();
                let extra: Vec<_> = got.difference(want).collect();
                differences.push(format!(
                    "{quirk}: {what} no longer broken {missing:?}; newly broken {extra:?}"
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "quirks break other scenarios than requirements/quirks.toml says:\n{}",
        differences.join("\n")
    );
}
