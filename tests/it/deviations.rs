//! Every check fails against a named deviation (a simulated-DVA quirk, or a fault of the mock
//! TVS or mock PGO) and passes against the conformant simulated DVA; every quirk is noticed.

use std::collections::BTreeSet;

use koppeltest::outcome::Outcome;
use koppeltest::report::Verdict;
use koppeltest::scenario;

use crate::helpers::{matrix_toml, prepare, run, scenario as parse_scenario};

const AUTHORIZE_TOKEN: &str = r#"
[[step]]
id = "authorize"
action = "authorize"
"#;

/// A scenario exercising one check kind, and the deviation that must make it fail.
struct Case {
    kind: &'static str,
    scenario: String,
    /// Quirks of the deviating DVA (empty when the deviation is a TVS or PGO fault in `faulty`).
    quirks: &'static [&'static str],
    /// A variant of `scenario` with a TVS or PGO fault, run against the conformant DVA.
    faulty: Option<String>,
}

fn head(id: &str) -> String {
    format!("id = \"{id}\"\ntitle = \"t\"\ndescription = \"d\"\n")
}

fn cases() -> Vec<Case> {
    let code_issued = |tvs: &str| {
        format!(
            "{}{tvs}{AUTHORIZE_TOKEN}[[check]]\nkind = \"code-issued\"\nstep = \"authorize\"\n",
            head("t.code-issued")
        )
    };
    let token_issued = |set: &str| {
        format!(
            "{}{AUTHORIZE_TOKEN}[[step]]\nid = \"token\"\naction = \"token\"\ncode_from = \"authorize\"\n{set}[[check]]\nkind = \"token-issued\"\nstep = \"token\"\n",
            head("t.token-issued")
        )
    };
    let embedded = |id: &str| {
        let (_, text) = scenario::EMBEDDED
            .iter()
            .find(|(p, t)| p.contains(id) || t.contains(id))
            .expect("embedded scenario");
        text.to_string()
    };
    vec![
        Case {
            kind: "code-issued",
            scenario: code_issued(""),
            quirks: &[],
            faulty: Some(code_issued("[tvs]\nfault = \"tampered-signature\"\n")),
        },
        Case {
            kind: "state-echoed",
            scenario: embedded("auth.state-echoed"),
            quirks: &["state-not-echoed"],
            faulty: None,
        },
        Case {
            kind: "error-redirect",
            scenario: embedded("auth.error-codes"),
            quirks: &["numeric-error-codes"],
            faulty: None,
        },
        Case {
            kind: "login-refused",
            scenario: embedded("saml.tampered-signature"),
            quirks: &["saml-signature-unchecked"],
            faulty: None,
        },
        Case {
            kind: "login-refused",
            scenario: embedded("saml.wrong-audience"),
            quirks: &["saml-audience-unchecked"],
            faulty: None,
        },
        Case {
            kind: "login-refused",
            scenario: embedded("saml.loa-midden"),
            quirks: &["loa-unchecked"],
            faulty: None,
        },
        Case {
            kind: "token-issued",
            scenario: token_issued(""),
            quirks: &[],
            faulty: Some(token_issued(
                "set = { redirect_uri = \"https://medmij.pgo-alfa.koppeltest.test/other\" }\n",
            )),
        },
        Case {
            kind: "token-refused",
            scenario: embedded("token.code-replay"),
            quirks: &["code-replay-accepted"],
            faulty: None,
        },
        Case {
            kind: "token-refused",
            scenario: embedded("token.client-certificate"),
            quirks: &["client-cert-not-required"],
            faulty: None,
        },
        Case {
            kind: "fhir-searchset",
            scenario: embedded("flow.happy-path"),
            quirks: &["meta-profile-missing"],
            faulty: None,
        },
    ]
}

fn outcomes_of_kind(f: &koppeltest::runner::Finished, kind: &str) -> Vec<Outcome> {
    f.report
        .checks
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.outcome)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_check_kind_fails_against_a_named_deviation_and_passes_conformant() {
    let all_kinds: BTreeSet<&str> = [
        "code-issued",
        "state-echoed",
        "error-redirect",
        "login-refused",
        "token-issued",
        "token-refused",
        "fhir-searchset",
    ]
    .into();
    let mut proven = BTreeSet::new();
    for case in cases() {
        let s = parse_scenario(&case.scenario);
        let conformant = run(prepare(&matrix_toml(&[], &[], "1.x"), vec![s.clone()])).await;
        let got = outcomes_of_kind(&conformant[0], case.kind);
        assert!(
            !got.is_empty() && got.iter().all(|o| *o == Outcome::Pass),
            "{}: conformant gave {got:?}: {:#?}",
            case.kind,
            conformant[0].report.checks
        );

        let deviating = match &case.faulty {
            Some(faulty) => {
                run(prepare(
                    &matrix_toml(&[], &[], "1.x"),
                    vec![parse_scenario(faulty)],
                ))
                .await
            }
            None => run(prepare(&matrix_toml(case.quirks, &[], "1.x"), vec![s])).await,
        };
        let got = outcomes_of_kind(&deviating[0], case.kind);
        assert!(
            got.contains(&Outcome::Fail),
            "{} against {:?}/{}: expected a failure, got {got:?}",
            case.kind,
            case.quirks,
            case.faulty.is_some()
        );
        proven.insert(case.kind);
    }
    assert_eq!(
        proven, all_kinds,
        "a check kind without a killing deviation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn default_matrix_conformant_row_passes_and_quirky_rows_fail_exactly_their_declarations() {
    let prepared = crate::helpers::default_prepared();
    let finished = run(prepared.clone()).await;
    assert_eq!(finished.len(), 3 * 2 * prepared.scenarios.len());
    for (ri, row) in prepared.rows.iter().enumerate() {
        let declared: BTreeSet<&str> = row
            .row
            .known_deviations
            .iter()
            .map(|d| d.scenario.as_str())
            .collect();
        for ci in 0..prepared.matrix.columns.len() {
            let cell: Vec<_> = finished
                .iter()
                .filter(|f| f.row == ri && f.column == ci)
                .collect();
            let failing: BTreeSet<&str> = cell
                .iter()
                .filter(|f| f.report.outcome == Outcome::Fail)
                .map(|f| f.report.id.as_str())
                .collect();
            assert_eq!(failing, declared, "row {} column {ci}", row.row.id);
            assert!(
                cell.iter().all(|f| f.report.outcome != Outcome::Error),
                "row {} has errors",
                row.row.id
            );
            if declared.is_empty() {
                assert!(
                    cell.iter().all(|f| f.report.verdict == Verdict::Pass),
                    "the conformant row must pass everything"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dva_refuses_tampered_and_misaddressed_assertions_and_says_why() {
    let scenarios: Vec<_> = scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.id.starts_with("saml."))
        .collect();
    let finished = run(prepare(&matrix_toml(&[], &[], "1.x"), scenarios)).await;
    let note = |id: &str| -> String {
        let f = finished.iter().find(|f| f.report.id == id).unwrap();
        assert_eq!(
            f.report.outcome,
            Outcome::Pass,
            "{id}: {:#?}",
            f.report.checks
        );
        f.report
            .exchanges
            .iter()
            .filter(|x| x.method == "NOTE")
            .filter_map(|x| x.response_body.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(note("saml.tampered-signature").contains("digest mismatch"));
    assert!(note("saml.wrong-audience").contains("Audience"));
    assert!(note("saml.loa-midden").contains("level of assurance too low"));
}

/// The conformant back channel verifies any certificate offered in the handshake (an unknown
/// CA is refused there, and the DVA's own log says so) and requires one per endpoint: no
/// certificate at all is `invalid_client` at the token endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn faulty_client_certificates_are_refused_in_the_handshake_and_none_with_invalid_client() {
    let s: Vec<_> = scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.id == "tls.client-certificate-token")
        .collect();
    let finished = run(prepare(&matrix_toml(&[], &[], "1.x"), s)).await;
    let report = &finished[0].report;
    assert_eq!(report.outcome, Outcome::Pass, "{:#?}", report.checks);
    let message = |step: &str| {
        report
            .checks
            .iter()
            .find(|c| c.step == step)
            .map(|c| c.message.clone())
            .unwrap()
    };
    assert!(
        message("none").contains("invalid_client"),
        "{}",
        message("none")
    );
    assert!(
        message("unknown-ca").contains("TLS"),
        "{}",
        message("unknown-ca")
    );
    let dva_saw_it = report.exchanges.iter().any(|x| {
        x.response_body
            .as_deref()
            .is_some_and(|b| b.contains("TLS handshake refused"))
    });
    assert!(
        dva_saw_it,
        "the DVA's own log records the refused handshake"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pgo_refuses_a_dva_host_that_is_not_on_the_whitelist() {
    let dir = crate::helpers::temp_dir("whitelist");
    let list = include_str!("../../fixtures/lists/MedMij_Whitelist.xml").replace(
        "<MedMijNode><Hostname>medmij.conform.dva.koppeltest.test</Hostname></MedMijNode>",
        "",
    );
    let path = dir.join("whitelist.xml");
    std::fs::write(&path, list).unwrap();
    let matrix = matrix_toml(&[], &[], "1.x")
        .replace("embedded:MedMij_Whitelist.xml", &path.display().to_string());
    let s: Vec<_> = scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.id == "auth.state-echoed")
        .collect();
    let finished = run(prepare(&matrix, s)).await;
    let report = &finished[0].report;
    assert_eq!(report.outcome, Outcome::Error, "{:#?}", report.checks);
    assert!(
        report.checks[0].message.contains("not on the Whitelist"),
        "{}",
        report.checks[0].message
    );
    assert!(
        report.exchanges.is_empty(),
        "no request may be sent to a host off the Whitelist"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leak_is_a_privacy_failure_and_a_gap_is_not() {
    let s: Vec<_> = scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.id == "dataset.de-vries")
        .collect();
    let leaked = run(prepare(
        &matrix_toml(&["work-notes-leaked"], &[], "1.x"),
        s.clone(),
    ))
    .await;
    let report = &leaked[0].report;
    assert!(report.privacy_failure, "{:#?}", report.checks);
    let journal = report.checks.iter().find(|c| c.step == "journal").unwrap();
    assert!(
        journal.privacy && journal.message.contains("dv-comp-worknote"),
        "{}",
        journal.message
    );

    let gap = run(prepare(
        &matrix_toml(&["inactive-allergy-dropped"], &[], "1.x"),
        s,
    ))
    .await;
    let report = &gap[0].report;
    assert_eq!(report.outcome, Outcome::Fail);
    assert!(
        !report.privacy_failure,
        "a missing item is a completeness failure, not a privacy one"
    );
    let allergies = report
        .checks
        .iter()
        .find(|c| c.step == "allergies")
        .unwrap();
    let finding = allergies.dataset.as_ref().expect("a dataset finding");
    assert_eq!(
        (finding.missing.as_slice(), finding.leaked.len()),
        (&["dv-ai-inactive".to_string()][..], 0),
        "{}",
        allergies.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fourteen_month_window_both_ways() {
    let s: Vec<_> = scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.id == "dataset.bakker")
        .collect();
    let results_check = |f: &koppeltest::runner::Finished| {
        f.report
            .checks
            .iter()
            .find(|c| c.step == "results")
            .unwrap()
            .clone()
    };
    // A DVA without the window, and a PGO that sends no date (as real PGOs do): a privacy failure.
    let no_window = matrix_toml(&["no-lab-window"], &[], "1.x");
    let leaked = run(prepare(&no_window, s.clone())).await;
    let c = results_check(&leaked[0]);
    assert!(
        c.outcome == Outcome::Fail && c.privacy && c.message.contains("bk-lab-old"),
        "{}",
        c.message
    );
    // The same DVA, asked with date=ge… (as the qualification script does), honours the filter.
    let with_date = no_window.replace(
        "release = \"1.x\"\n",
        "release = \"1.x\"\nlab_date_filter = true\n",
    );
    let filtered = run(prepare(&with_date, s.clone())).await;
    assert_eq!(results_check(&filtered[0]).outcome, Outcome::Pass);
    // Under the pgo-filters policy, a PGO that sends no date may not count on the window.
    let lenient = no_window.replace(
        "name = \"test\"\n",
        "name = \"test\"\nlab_window = \"pgo-filters\"\n",
    );
    let tolerated = run(prepare(&lenient, s)).await;
    assert_eq!(
        results_check(&tolerated[0]).outcome,
        Outcome::Pass,
        "{}",
        results_check(&tolerated[0]).message
    );
}

/// A check's step, outcome and privacy flag.
type CheckVerdict = (String, Outcome, bool);

#[tokio::test(flavor = "multi_thread")]
async fn exported_fixtures_load_back_and_yield_the_same_verdicts() {
    use koppeltest::fixtures::{EMBEDDED_MANIFEST, Manifest, PatientStore, export};
    let dir = crate::helpers::temp_dir("export");
    let store = PatientStore::embedded().unwrap();
    let manifest = Manifest::parse(EMBEDDED_MANIFEST.0, EMBEDDED_MANIFEST.1).unwrap();
    export(&store, &manifest, EMBEDDED_MANIFEST.1, &dir).unwrap();
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bakker.json")).unwrap()).unwrap();
    assert_eq!(exported["type"], "transaction");
    assert!(
        std::fs::read_to_string(dir.join("bakker.md"))
            .unwrap()
            .contains("Must NOT be visible")
    );
    // The generated record is exported for vendors, beside the folder that loads back.
    let large: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("synthetic/large-record.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(large["entry"].as_array().unwrap().len(), 2 + 10_000 + 25);

    let reloaded = std::sync::Arc::new(PatientStore::load_dir(&dir).unwrap());
    let reloaded_manifest = Manifest::parse(
        "manifest.toml",
        &std::fs::read_to_string(dir.join("manifest.toml")).unwrap(),
    )
    .unwrap();
    reloaded_manifest
        .validate("manifest.toml", &reloaded)
        .unwrap();
    let scenarios: Vec<_> = scenario::embedded()
        .unwrap()
        .into_iter()
        .filter(|s| s.id.starts_with("dataset."))
        .collect();
    for quirks in [
        &[][..],
        &["no-lab-window", "work-notes-leaked"][..],
        &["inactive-allergy-dropped"][..],
    ] {
        let matrix = matrix_toml(quirks, &[], "1.x");
        let embedded = run(prepare(&matrix, scenarios.clone())).await;
        let from_export = run(crate::helpers::prepare_with_fixtures(
            &matrix,
            scenarios.clone(),
            reloaded.clone(),
            reloaded_manifest.clone(),
        ))
        .await;
        let verdicts = |fs: &[koppeltest::runner::Finished]| {
            let mut v: Vec<(String, Vec<CheckVerdict>)> = fs
                .iter()
                .map(|f| {
                    (
                        f.report.id.clone(),
                        f.report
                            .checks
                            .iter()
                            .map(|c| (c.step.clone(), c.outcome, c.privacy))
                            .collect(),
                    )
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(
            verdicts(&embedded),
            verdicts(&from_export),
            "quirks {quirks:?}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
