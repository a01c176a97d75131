//! Response snapshots over the wire: two runs of the conformant simulated DVA drift nowhere once
//! the first run's snapshots are accepted; a quirk that changes one answer drifts exactly the
//! scenarios whose answers it changes, with a readable diff in the HTML; and the binary's
//! snapshot workflow (pending files, accept, reject, review, strict, CI, damaged files).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use koppeltest::runner::Finished;
use koppeltest::scenario;
use koppeltest::snapshot::{self, DriftState, Mode, PendingPolicy, Reference, Store};

use crate::helpers::{matrix_toml, prepare, run, temp_dir};

fn open(dir: &Path) -> Store {
    Store::open(
        dir,
        "test",
        Mode::Check,
        PendingPolicy::Always,
        false,
        Reference::at(time::OffsetDateTime::now_utc()),
    )
    .expect("snapshot store")
}

/// Observes every finished scenario; returns the drifted ones by scenario id, with the diff.
fn observe(
    store: &mut Store,
    finished: &mut [Finished],
    run_dir: &Path,
) -> Vec<(String, DriftState, String)> {
    let mut drifted = Vec::new();
    for f in finished.iter_mut() {
        let d = store.observe("row", "col", &f.report, Some(run_dir));
        if d.state != DriftState::Unchanged {
            drifted.push((
                f.report.id.clone(),
                d.state,
                d.diff.clone().unwrap_or_default(),
            ));
        }
        f.report.drift = Some(d);
    }
    drifted
}

#[tokio::test(flavor = "multi_thread")]
async fn conformant_runs_do_not_drift_and_a_quirk_drifts_exactly_what_it_changes() {
    let dir = temp_dir("snapshots");
    let scenarios = scenario::embedded().unwrap();
    let conformant = matrix_toml(&[], &[], "2.2");

    let mut first = run(prepare(&conformant, scenarios.clone())).await;
    let mut store = open(&dir);
    let drifted = observe(&mut store, &mut first, &dir.join("run1"));
    assert_eq!(
        drifted.len(),
        first.len(),
        "everything is new the first time"
    );
    assert!(drifted.iter().all(|(_, s, _)| *s == DriftState::New));
    let summary = store.finish(false);
    assert_eq!(
        (summary.new, summary.pending_written),
        (first.len(), first.len())
    );
    // The run folder holds every snapshot too.
    assert_eq!(
        crate::helpers::files_below(&dir.join("run1/snapshots")).len(),
        first.len()
    );
    for p in snapshot::pending(&dir, None).unwrap() {
        assert_eq!(p.state(), DriftState::New);
        p.accept().unwrap();
    }
    assert!(snapshot::pending(&dir, None).unwrap().is_empty());

    // The same DVA again: new ports, tokens, IDs, certificates, clock; no drift.
    let mut second = run(prepare(&conformant, scenarios.clone())).await;
    let mut store = open(&dir);
    let drifted = observe(&mut store, &mut second, &dir.join("run2"));
    assert!(
        drifted.is_empty(),
        "drift between two conformant runs:\n{}",
        drifted
            .iter()
            .map(|(id, _, diff)| format!("{id}:\n{diff}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let summary = store.finish(false);
    assert_eq!(summary.unchanged, second.len());
    assert!(summary.missing.is_empty() && summary.pending_written == 0);

    // The DVA ignores the Accept header: only the unsupported-version answer changes.
    let quirky = matrix_toml(&["accept-header-ignored"], &[], "2.2");
    let mut third = run(prepare(&quirky, scenarios.clone())).await;
    let accepted_before =
        std::fs::read(dir.join("test/row/col/fhir.unsupported-version.snap")).unwrap();
    let mut store = open(&dir);
    let drifted = observe(&mut store, &mut third, &dir.join("run3"));
    let changed: BTreeSet<&str> = drifted.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        changed,
        BTreeSet::from(["fhir.unsupported-version"]),
        "{drifted:#?}"
    );
    let (_, state, diff) = &drifted[0];
    assert_eq!(*state, DriftState::Changed);
    assert!(
        diff.contains("-  < 400") && diff.contains("+  < 200"),
        "{diff}"
    );
    // Pending beside the accepted one, which is untouched.
    assert_eq!(
        std::fs::read(dir.join("test/row/col/fhir.unsupported-version.snap")).unwrap(),
        accepted_before
    );
    let pending = snapshot::pending(&dir, Some("unsupported")).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state(), DriftState::Changed);

    // The HTML shows the diff, escaped, with the scenario marked.
    let prepared = prepare(&quirky, scenarios);
    let mut report =
        koppeltest::runner::build_report(&prepared, "t", "2026-01-01T00:00:00Z", &third, false);
    report.snapshots = Some(store.finish(false));
    // The overview has the figures; the cell's page has the badge and the diff.
    let overview = koppeltest::report::html::render(&report).unwrap();
    assert!(overview.contains("1 changed</span>"), "no drift summary");
    let html =
        koppeltest::report::html::render_cell(&report, &report.cells[0], "../../../matrix.html")
            .unwrap();
    assert!(html.contains("snapshot changed"), "no drift badge");
    // minijinja escapes `/` too.
    assert!(html.contains(
        "Snapshot changed: <code>row&#x2f;col&#x2f;fhir.unsupported-version.snap</code>"
    ));
    assert!(html.contains("+  &lt; 200"), "the diff is not in the HTML");
    std::fs::remove_dir_all(dir).ok();
}

fn koppeltest(cwd: &Path) -> Command {
    let mut c = crate::helpers::koppeltest();
    c.current_dir(cwd).env_remove("CI");
    c
}

fn run_cli(dir: &Path, matrix: &str, extra: &[&str]) -> (Option<i32>, String) {
    run_cli_in(koppeltest(dir), dir, matrix, extra)
}

/// `koppeltest run` on `dir`'s scenarios folder with `matrix` as `m.toml`, through `command`.
fn run_cli_in(
    mut command: Command,
    dir: &Path,
    matrix: &str,
    extra: &[&str],
) -> (Option<i32>, String) {
    std::fs::write(dir.join("m.toml"), matrix).unwrap();
    let out = command
        .args([
            "run",
            "--quiet",
            "--matrix",
            "m.toml",
            "--scenarios",
            "scenarios",
            "--out",
            "reports",
        ])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cli(dir: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = koppeltest(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_snapshot_workflow_of_the_binary() {
    let dir = temp_dir("snapshot-cli");
    crate::helpers::scenario_folder(
        &dir,
        &["fhir-unsupported-version.toml", "token-code-replay.toml"],
    );
    let conformant = matrix_toml(&[], &[], "2.2");
    let snaps = dir.join("snapshots/m/row/col");

    // First run: both new, pending, the run passes.
    let (code, out) = run_cli(&dir, &conformant, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("0 unchanged, 0 changed, 2 new, 0 missing"),
        "{out}"
    );
    assert!(snaps.join("token.code-replay.snap.new").is_file(), "{out}");
    let (code, out) = cli(&dir, &["snapshots", "status"], "");
    assert_eq!(code, Some(0));
    assert!(
        out.contains("new       m/row/col/token.code-replay.snap"),
        "{out}"
    );
    // Accept one by filter, review the other: reject it, then accept it on a second pass.
    let (code, out) = cli(&dir, &["snapshots", "accept", "--filter", "*/token.*"], "");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 accepted"), "{out}");
    let (code, out) = cli(&dir, &["snapshots", "review"], "r\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("+# fhir.unsupported-version") && out.contains("1 rejected"),
        "{out}"
    );
    assert!(!snaps.join("fhir.unsupported-version.snap.new").exists());

    // Second run: one unchanged, one new again; strict fails on that.
    let (code, out) = run_cli(&dir, &conformant, &["--snapshots", "strict"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("1 unchanged, 0 changed, 1 new"), "{out}");
    let (_, out) = cli(&dir, &["snapshots", "review"], "a\n");
    assert!(out.contains("1 accepted"), "{out}");
    let (code, out) = run_cli(&dir, &conformant, &["--snapshots", "strict"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("2 unchanged, 0 changed, 0 new, 0 missing"),
        "{out}"
    );

    // A changed answer under CI: reported, nothing written; the accepted file untouched.
    let accepted = std::fs::read(snaps.join("fhir.unsupported-version.snap")).unwrap();
    let quirky = matrix_toml(
        &["accept-header-ignored"],
        &[("fhir.unsupported-version", "known")],
        "2.2",
    );
    let mut under_ci = koppeltest(&dir);
    under_ci.env("CI", "true");
    let (code, text) = run_cli_in(under_ci, &dir, &quirky, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 unchanged, 1 changed"), "{text}");
    assert!(text.contains("no pending files written (CI=true"), "{text}");
    assert!(!snaps.join("fhir.unsupported-version.snap.new").exists());
    assert_eq!(
        std::fs::read(snaps.join("fhir.unsupported-version.snap")).unwrap(),
        accepted
    );

    // A damaged accepted snapshot: exit 3, naming the file and line, before anything runs.
    let path = snaps.join("token.code-replay.snap");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut half = text.len() / 2;
    while !text.is_char_boundary(half) {
        half -= 1;
    }
    std::fs::write(&path, &text[..half]).unwrap();
    let (code, out) = run_cli(&dir, &conformant, &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("token.code-replay.snap:") && out.contains("truncated"),
        "{out}"
    );
    // … and a damaged pending one refuses accept the same way.
    std::fs::write(&path, &text).unwrap();
    std::fs::write(snaps.join("token.code-replay.snap.new"), "---\nsource: x\n").unwrap();
    let (code, out) = cli(&dir, &["snapshots", "accept"], "");
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "nothing overwritten"
    );
    std::fs::remove_dir_all(dir).ok();
}
