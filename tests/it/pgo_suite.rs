//! The PGO suite (a PGO column of kind `external`): koppeltest's mock PGO, playing a PGO under
//! test, passes every PGO scenario; each of its faults fails exactly the scenarios
//! `requirements/pgo-faults.toml` lists (the mutation test of the PGO side), and breaks the
//! rules it claims ([`PgoFault::violates`]). Over the wire, with real TLS, as a separate process
//! too; a PGO that never comes ends as `skip`.
//!
//! After a deliberate change, regenerate the faults file with `KOPPELTEST_ACCEPT=1 cargo test
//! pgo_suite` (never under CI) and review the diff.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use koppeltest::bench::{Bench, Progress};
use koppeltest::outcome::Outcome;
use koppeltest::pgo::PgoFault;
use koppeltest::pgo::collect::Collector;
use koppeltest::report::{ScenarioReport, Side};

use crate::helpers::{CONFORM_PRACTICE, pki_init, prepare, temp_dir};

/// Long enough that half of it (the impatient fault's wait) is far above any ordinary answer
/// on a loaded machine.
const SLOW_ANSWER_MS: u64 = 3000;

/// One simulated row and one external PGO column (1.x scopes, with the lab date filter).
fn matrix(lists_port: u16, wait_s: u64) -> String {
    format!(
        r#"name = "pgo suite"
[pgo_suite]
lists_port = {lists_port}
wait_s = {wait_s}
quiet_ms = 800
slow_answer_ms = {SLOW_ANSWER_MS}

[[his]]
id = "sim-row"
name = "Row"
dva = "simulated"
{CONFORM_PRACTICE}target = {{ kind = "simulated", entity_index = 9100, quirks = [] }}

[[pgo]]
id = "real-pgo"
name = "Real PGO (test)"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback"
release = "1.x"
lab_date_filter = true
kind = "external"
"#
    )
}

/// Runs the whole suite in this process with the mock PGO (and `faults`) collecting.
async fn suite_with(faults: &[PgoFault]) -> (Vec<ScenarioReport>, Vec<String>) {
    let prepared = prepare(&matrix(0, 60), Vec::new());
    let column = prepared.matrix.columns[0].clone();
    let bench = Bench::start(&prepared, 0, &column)
        .await
        .expect("suite starts");
    let faults: BTreeSet<PgoFault> = faults.iter().copied().collect();
    let collector = Collector {
        profile: column,
        lists_url: bench.lists_url.clone(),
        connect_to: bench.listen,
        pki: prepared.pki.clone(),
        request_timeout: Duration::from_secs(10),
        patience: faults
            .contains(&PgoFault::Impatient)
            .then(|| Duration::from_millis(SLOW_ANSWER_MS / 2)),
        faults,
        practices: Vec::new(),
    };
    collector
        .collect_all(4, |_| {})
        .await
        .expect("the mock PGO reads the lists");
    // A request the PGO abandoned may still be pending in its DVA (the impatient fault's slow
    // answer) and is recorded only when it ends: judge once no practice is mid-request, as
    // `Bench::wait` does in a run (which also waits for practices the PGO never reached).
    let until = std::time::Instant::now() + Duration::from_millis(3 * SLOW_ANSWER_MS);
    while bench.progress().contains(&Progress::Busy) && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reports = bench.judge();
    let secrets = bench.secret_values();
    bench.shutdown().await;
    (reports, secrets)
}

fn non_passing(reports: &[ScenarioReport]) -> BTreeMap<String, (Outcome, BTreeSet<String>)> {
    reports
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| {
            let failed = r
                .checks
                .iter()
                .filter(|c| c.outcome == Outcome::Fail)
                .map(|c| c.kind.clone())
                .collect();
            (r.id.clone(), (r.outcome, failed))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mock_pgo_passes_every_pgo_scenario_and_each_fault_fails_exactly_its_listed_ones() {
    let (conformant, secrets) = suite_with(&[]).await;
    assert_eq!(conformant.len(), koppeltest::bench::suite().unwrap().len());
    for r in &conformant {
        assert_eq!(r.side, Side::Pgo);
        assert_eq!(
            r.outcome,
            Outcome::Pass,
            "{} against the conformant mock PGO: {:?}",
            r.id,
            r.checks
                .iter()
                .map(|c| format!("{} {}: {}", c.kind, c.outcome.label(), c.message))
                .collect::<Vec<_>>()
        );
    }
    assert_no_secret(&conformant, &secrets);
    let mut observed: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    // Three suites at a time: this test shares the machine with the timing-sensitive DVA
    // mutation test, and a heavier load made that one flaky under CI.
    for group in PgoFault::ALL.chunks(3) {
        let mut set = tokio::task::JoinSet::new();
        for fault in group {
            let fault = *fault;
            set.spawn(async move { (fault, suite_with(&[fault]).await) });
        }
        while let Some(done) = set.join_next().await {
            let (fault, (reports, secrets)) = done.expect("fault run");
            assert_no_secret(&reports, &secrets);
            if fault == PgoFault::TokenInQuery {
                // A malformed request gets the DVA's proper error, and is recorded redacted.
                let token = reports
                    .iter()
                    .find(|r| r.id == "pgo.token-request")
                    .and_then(|r| r.exchanges.iter().find(|x| x.url.contains("/oauth/token")))
                    .expect("the token request is recorded");
                assert_eq!(token.status, Some(400), "{token:?}");
                assert!(
                    token
                        .response_body
                        .as_deref()
                        .unwrap_or("")
                        .contains("invalid_request"),
                    "{token:?}"
                );
                assert!(token.url.contains("code=[code#1]"), "{}", token.url);
            }
            let broken = non_passing(&reports);
            // The rules the fault claims to break are killed: a failing check credits each.
            for id in fault.violates() {
                assert!(
                    reports.iter().any(|r| r
                        .checks
                        .iter()
                        .any(|c| c.outcome == Outcome::Fail
                            && c.requirements.iter().any(|x| x == id))),
                    "fault {} claims to break {id}, but no check crediting it failed: {broken:?}",
                    fault.name()
                );
            }
            assert!(
                broken.values().any(|(o, _)| *o == Outcome::Fail),
                "fault {} failed no PGO scenario: {broken:?}",
                fault.name()
            );
            let checks: BTreeSet<String> = broken
                .values()
                .flat_map(|(_, k)| k.iter().cloned())
                .collect();
            observed.insert(
                fault.name(),
                (
                    broken.keys().cloned().collect(),
                    checks.into_iter().collect(),
                ),
            );
        }
    }
    compare_with_committed(&observed);
}

/// No value the suite's logs redacted appears anywhere in the reports.
fn assert_no_secret(reports: &[ScenarioReport], secrets: &[String]) {
    let text = serde_json::to_string(reports).unwrap();
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(!text.contains(s.as_str()), "a secret reached the report");
    }
}

fn compare_with_committed(observed: &BTreeMap<String, (Vec<String>, Vec<String>)>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("requirements/pgo-faults.toml");
    let mut text = String::from(
        "# Which PGO-suite scenarios each fault of the mock PGO breaks (as a PGO under test), and\n\
         # which kinds of check fail there, checked exactly by tests/it/pgo_suite.rs. Regenerate\n\
         # with `KOPPELTEST_ACCEPT=1 cargo test pgo_suite` and review.\n",
    );
    for (fault, (breaks, checks)) in observed {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "\n[{fault}]\nbreaks = [{}]\nchecks = [{}]\n",
            list(breaks),
            list(checks)
        ));
    }
    if std::env::var_os("KOPPELTEST_ACCEPT").is_some() && std::env::var_os("CI").is_none() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("requirements/pgo-faults.toml");
    assert_eq!(
        committed, text,
        "PGO faults break other scenarios than requirements/pgo-faults.toml says"
    );
}

/// `koppeltest run` on [`matrix`] in `dir` (with a test PKI and the happy path as the DVA side).
fn run_command(dir: &Path, lists_port: u16, wait_s: u64) -> std::process::Command {
    pki_init(&dir.join("pki"));
    let matrix_path = dir.join("matrix.toml");
    std::fs::write(&matrix_path, matrix(lists_port, wait_s)).unwrap();
    let scenarios = crate::helpers::scenario_folder(dir, &["happy-path.toml"]);
    let mut run = crate::helpers::koppeltest();
    run.args(["run", "--quiet", "--snapshots", "off", "--matrix"])
        .arg(&matrix_path)
        .arg("--scenarios")
        .arg(&scenarios)
        .arg("--pki")
        .arg(dir.join("pki"))
        .arg("--out")
        .arg(dir.join("reports"));
    run
}

#[test]
fn a_separate_process_pgo_collects_through_the_whole_suite_from_a_matrix_file() {
    let dir = temp_dir("pgo-suite-process");
    let matrix_path = dir.join("matrix.toml");
    // The list server takes a port of its own (0): a port picked here and freed could be taken
    // by another test's server before the run binds it. The run's notice names the lists URL.
    let mut run = run_command(&dir, 0, 120)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let stderr_pipe = run.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("Lists (ZAL, OCL, Whitelist) at ").nth(1) {
                let url = rest.split('/').take(3).collect::<Vec<_>>().join("/");
                let _ = url_tx.send(url);
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let Ok(lists) = url_rx.recv_timeout(Duration::from_secs(90)) else {
        let _ = run.kill();
        panic!(
            "the suite's list server never came up:\n{}",
            stderr_reader.join().unwrap()
        );
    };
    assert!(
        lists.starts_with("https://lists.koppeltest.test:"),
        "{lists}"
    );
    let pgo = crate::helpers::koppeltest()
        .args([
            "mock-pgo", "--column", "real-pgo", "--jobs", "4", "--matrix",
        ])
        .arg(&matrix_path)
        .arg("--lists")
        .arg(&lists)
        .arg("--pki")
        .arg(dir.join("pki"))
        .output()
        .unwrap();
    let collected = String::from_utf8_lossy(&pgo.stdout);
    assert!(
        pgo.status.success(),
        "mock-pgo: {collected}\n{}",
        String::from_utf8_lossy(&pgo.stderr)
    );
    let n = koppeltest::bench::suite().unwrap().len();
    assert_eq!(collected.lines().count(), n, "{collected}");
    let out = run.wait_with_output().unwrap();
    let stderr = stderr_reader.join().unwrap();
    assert!(
        stderr.contains("PGO suite for real-pgo × sim-row is ready"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{n} of {n} practices done")),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("PGO side: PASS ({n} scenarios)")),
        "{stdout}"
    );
    assert!(stdout.contains("DVA side: PASS (1 scenarios)"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/latest/report.json")).unwrap(),
    )
    .unwrap();
    let scenarios = report["cells"][0]["scenarios"].as_array().unwrap();
    let pgo_side: Vec<&serde_json::Value> =
        scenarios.iter().filter(|s| s["side"] == "pgo").collect();
    assert_eq!(pgo_side.len(), n);
    for s in &pgo_side {
        assert_eq!(s["outcome"], "pass", "{}", s["id"]);
    }
    assert!(
        scenarios
            .iter()
            .any(|s| s["side"] == "dva" && s["outcome"] == "pass")
    );
}

#[test]
fn a_pgo_that_never_comes_ends_every_pgo_scenario_as_skip_with_the_reason() {
    let dir = temp_dir("pgo-suite-absent");
    let out = run_command(&dir, 0, 2).output().unwrap();
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/latest/report.json")).unwrap(),
    )
    .unwrap();
    let pgo_side: Vec<&serde_json::Value> = report["cells"][0]["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["side"] == "pgo")
        .collect();
    assert_eq!(
        pgo_side.len(),
        koppeltest::bench::suite().unwrap().len(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in pgo_side {
        assert_eq!(s["outcome"], "skip", "{}", s["id"]);
        let message = s["checks"][0]["message"].as_str().unwrap();
        assert!(message.contains("never collected from"), "{message}");
    }
}
