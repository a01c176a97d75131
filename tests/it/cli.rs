//! The binary as a user runs it: reports on disk, exit codes, errors with file, line and field.

use std::path::Path;
use std::process::Command;

use crate::helpers::{files_below, temp_dir};

fn koppeltest() -> Command {
    let mut c = crate::helpers::koppeltest();
    // No pending snapshot files in the working tree (tests/it/snapshots.rs tests them).
    c.env("CI", "true");
    c
}

fn run_dir(out: &Path) -> std::path::PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !p.ends_with("latest"))
        .expect("a run folder")
}

#[test]
fn default_run_writes_four_valid_reports_and_exits_zero() {
    let out = temp_dir("cli-run");
    let result = koppeltest()
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(
        result.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        stdout.contains("SimHIS Conform") && stdout.contains("PASS*"),
        "{stdout}"
    );
    let dir = run_dir(&out);
    for name in ["report.json", "junit.xml", "matrix.html", "events.jsonl"] {
        assert!(dir.join(name).is_file(), "{name} missing");
        assert!(
            out.join("latest").join(name).is_file(),
            "latest/{name} missing"
        );
    }

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "report.json does not validate: {errors:?}"
    );
    assert_eq!(report["schema"], "koppeltest.report/2");
    assert_eq!(report["summary"]["exit_code"], 0);

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml parses");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .count(),
        6
    );
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        6 * koppeltest::scenario::EMBEDDED.len()
    );
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count()
            == 0
    );

    let html = std::fs::read_to_string(dir.join("matrix.html"))
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(
        html.contains("<table class=\"matrix\">")
            && html.contains("href=\"cells/sim-conform/pgo-alfa/index.html\"")
    );
    assert!(
        !html.contains("<script"),
        "matrix.html is self-contained and static"
    );
    // Every cell has its page and every scenario its exchanges file, as report.json names them.
    for cell in report["cells"].as_array().unwrap() {
        let page_path = dir.join(cell["page"].as_str().unwrap());
        let page = std::fs::read_to_string(&page_path).unwrap();
        assert!(!page.contains("<script"), "cell pages are static");
        // Written from the whole scenarios: their passed checks are on it. Each evidence link
        // leads to an exchange anchored on its scenario's exchanges page.
        assert!(page.contains("<td class=\"o-pass\">pass</td>"));
        let mut links = 0;
        let mut targets = std::collections::HashMap::new();
        for href in page
            .split("href=\"")
            .skip(1)
            .filter_map(|h| h.split('"').next())
        {
            let href = href.replace("&#x2f;", "/");
            let Some((file, anchor)) = href.split_once('#') else {
                continue;
            };
            let target = targets.entry(file.to_string()).or_insert_with(|| {
                std::fs::read_to_string(page_path.parent().unwrap().join(file))
                    .unwrap_or_else(|e| panic!("{href}: {e}"))
            });
            assert!(target.contains(&format!("id=\"{anchor}\"")), "{href}");
            links += 1;
        }
        assert!(links > 0);
        assert!(page.contains(&format!(
            "id=\"cell-{}-{}\"",
            cell["row"].as_str().unwrap(),
            cell["column"].as_str().unwrap()
        )));
        for sc in cell["scenarios"].as_array().unwrap() {
            assert!(
                sc.get("exchanges").is_none(),
                "report.json inlines no exchanges"
            );
            let file = dir.join(sc["exchanges_file"].as_str().unwrap());
            let exchanges: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            assert_eq!(
                exchanges.as_array().unwrap().len() as u64,
                sc["exchange_count"].as_u64().unwrap()
            );
        }
    }

    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert_eq!(
        events.lines().count(),
        6 * koppeltest::scenario::EMBEDDED.len()
    );
    // The run holds finished scenarios slim (no passed checks, no steps) and reads each back
    // whole from its line for the reports: report.json holds every scenario exactly as its
    // line in events.jsonl does, passed checks and steps included.
    let mut lines: std::collections::BTreeMap<(String, String, String), serde_json::Value> = events
        .lines()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = (
                line["row"].as_str().unwrap().to_string(),
                line["column"].as_str().unwrap().to_string(),
                line["scenario"]["id"].as_str().unwrap().to_string(),
            );
            (key, line["scenario"].clone())
        })
        .collect();
    let (mut passed_checks, mut steps) = (0, 0);
    for cell in report["cells"].as_array().unwrap() {
        for sc in cell["scenarios"].as_array().unwrap() {
            let key = (
                cell["row"].as_str().unwrap().to_string(),
                cell["column"].as_str().unwrap().to_string(),
                sc["id"].as_str().unwrap().to_string(),
            );
            assert_eq!(lines.remove(&key).as_ref(), Some(sc), "{key:?}");
            passed_checks += sc["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["outcome"] == "pass")
                .count();
            steps += sc["steps"].as_array().unwrap().len();
        }
    }
    assert!(lines.is_empty(), "{:?}", lines.keys());
    assert!(
        passed_checks > 1000 && steps > 1000,
        "{passed_checks} {steps}"
    );

    // Pattern scan, for secrets this process never saw as values.
    for (path, text) in files_below(&out) {
        let text = text
            .replace("&#x2f;", "/")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        // The inputs as run (inputs/: matrix, fixtures manifest) declare the test person by BSN.
        let input = path.components().any(|c| c.as_os_str() == "inputs");
        assert!(
            input || !text.contains("999911533"),
            "{} has the test BSN",
            path.display()
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "{} has a private key",
            path.display()
        );
        for marker in [
            "code=",
            "\"access_token\": \"",
            "\"refresh_token\": \"",
            "SAMLart=",
        ] {
            for (i, _) in text.match_indices(marker) {
                let rest = &text[i + marker.len()..];
                let value = rest.split(['&', '"', ' ', '\n']).next().unwrap_or("");
                // `code=system|value` is a FHIR search, not an OAuth code.
                let ok = value.is_empty() || value.starts_with('[') || value.contains('|');
                assert!(ok, "{}: unredacted {marker}{value}", path.display());
            }
        }
    }
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn without_known_deviation_declarations_the_exit_code_is_one() {
    let dir = temp_dir("cli-undeclared");
    let text = koppeltest::matrix::EMBEDDED_DEFAULT.1;
    let undeclared: String = text
        .split("\n\n")
        .filter(|block| !block.trim_start().starts_with("[[his.known_deviation]]"))
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(!undeclared.contains("known_deviation"));
    std::fs::write(dir.join("m.toml"), undeclared).unwrap();
    let result = koppeltest()
        .args(["run", "--quiet", "--matrix"])
        .arg(dir.join("m.toml"))
        .arg("--out")
        .arg(dir.join("r"))
        .output()
        .unwrap();
    assert_eq!(
        result.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&result.stdout)
    );

    // A declaration for a deviation that does not happen is stale and fails the run too.
    let stale = text.replacen(
        "target = { kind = \"simulated\", entity_index = 9001, quirks = [] }",
        "target = { kind = \"simulated\", entity_index = 9001, quirks = [] }\n\n[[his.known_deviation]]\nscenario = \"flow.happy-path\"\nreason = \"believed broken\"",
        1,
    );
    std::fs::write(dir.join("stale.toml"), stale).unwrap();
    let result = koppeltest()
        .args(["run", "--quiet", "--matrix"])
        .arg(dir.join("stale.toml"))
        .arg("--out")
        .arg(dir.join("r2"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(result.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("STALE"), "{stdout}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_scenario_file_is_exit_three_naming_file_line_and_field() {
    let dir = temp_dir("cli-bad");
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/token-code-replay.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.toml"),
        good.replace(
            "code_from = \"authorize\"\n\n[[check]]",
            "code_from = \"authorise\"\n\n[[check]]",
        ),
    )
    .unwrap();
    let result = koppeltest()
        .args(["check", "--scenarios"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("broken.toml:")
            && stderr.contains("field `code_from`")
            && stderr.contains("authorise"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn committed_schemas_are_up_to_date() {
    let result = koppeltest()
        .args(["schema", "--check", "--dir"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas"))
        .output()
        .unwrap();
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn usage_errors_exit_two_and_help_lists_exit_codes() {
    assert_eq!(
        koppeltest()
            .args(["run", "--no-such-flag"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let help = koppeltest().args(["run", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("130  interrupted"));
}

#[test]
fn pki_init_writes_a_hierarchy_that_a_run_can_use() {
    let dir = temp_dir("cli-pki");
    let pki = dir.join("pki");
    let result = koppeltest()
        .args(["pki", "init", "--out"])
        .arg(&pki)
        .output()
        .unwrap();
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for f in [
        "back-root-ca.pem",
        "back-services-ca.pem",
        "front-ca.pem",
        "README.md",
        "front/medmij.conform.dva.koppeltest.test.pem",
        "back/medmij.pgo-alfa.koppeltest.test.pem",
        "saml/tvs-signing.pem",
    ] {
        assert!(pki.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        koppeltest()
            .args(["pki", "init", "--out"])
            .arg(&pki)
            .output()
            .unwrap()
            .status
            .code(),
        Some(2),
        "refuses to overwrite"
    );
    let result = koppeltest()
        .args(["run", "--quiet", "--pki"])
        .arg(&pki)
        .arg("--out")
        .arg(dir.join("r"))
        .output()
        .unwrap();
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stdout)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_interrupted_run_keeps_what_it_had_finished() {
    let out = temp_dir("cli-interrupt");
    let child = koppeltest()
        .args(["run", "--quiet", "--jobs", "1", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some scenarios have finished, then interrupt as Ctrl-C would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let finished = std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("events.jsonl")).ok())
            .map_or(0, |t| t.lines().count());
        if finished >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no scenario finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = crate::helpers::interrupt(child);
    if status.code() == Some(0) {
        // The run finished before the signal arrived; nothing to judge on this machine.
        return;
    }
    assert_eq!(status.code(), Some(130));
    let dir = run_dir(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    let kept = report["summary"]["scenarios"].as_u64().unwrap();
    let events = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert!(
        (3..6 * koppeltest::scenario::EMBEDDED.len() as u64).contains(&kept),
        "kept {kept}"
    );
    assert_eq!(
        kept, events,
        "the report holds every scenario that finished"
    );
    std::fs::remove_dir_all(out).ok();
}

/// The run's folder, once `events.jsonl` holds `n` finished scenarios (within a minute).
fn wait_for_events(out: &Path, n: usize) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(dir) = std::fs::read_dir(out)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("events.jsonl").exists())
            && std::fs::read_to_string(dir.join("events.jsonl"))
                .is_ok_and(|t| t.lines().count() >= n)
        {
            return dir;
        }
        assert!(std::time::Instant::now() < deadline, "no scenario finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What a run stopped by its report folder left: exit 4, the reason on stderr, no panic,
/// `events.jsonl` whole lines only, and no half-written report file.
fn assert_stopped_by_the_folder(output: &std::process::Output, dir: &Path, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "stderr: {stderr}");
    assert!(stderr.contains(reason), "stderr names {reason:?}: {stderr}");
    assert!(stderr.contains("the run was stopped after"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(events.is_empty() || events.ends_with('\n'), "a cut line");
    for line in events.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a whole line");
        assert!(event["scenario"]["id"].is_string());
    }
    for file in ["report.json", "junit.xml", "matrix.html"] {
        assert!(
            !dir.join(format!("{file}.part")).exists(),
            "{file}.part left"
        );
    }
    // A report that was written is whole, and says the run did not finish.
    if let Ok(text) = std::fs::read_to_string(dir.join("report.json")) {
        let report: serde_json::Value = serde_json::from_str(&text).expect("a whole report");
        assert_eq!(report["interrupted"], true);
        assert_eq!(report["summary"]["exit_code"], 4);
        assert_eq!(
            report["summary"]["scenarios"].as_u64().unwrap(),
            events.lines().count() as u64
        );
    }
}

#[test]
fn a_report_folder_that_fills_up_ends_the_run_with_exit_four() {
    // No file in the report folder may grow past 1 MiB (RLIMIT_FSIZE, with SIGXFSZ ignored so
    // the write fails as on a full disk instead of killing the process): events.jsonl reaches
    // it after some scenarios of the default run.
    let out = temp_dir("cli-full");
    let output = Command::new("bash")
        .args(["-c", r#"trap "" XFSZ; ulimit -f 1024; exec "$@""#, "bash"])
        .arg(env!("CARGO_BIN_EXE_koppeltest"))
        .args(["run", "--quiet", "--snapshots", "off", "--out"])
        .arg(&out)
        .env("CI", "true")
        .env(koppeltest::pki::KEY_CACHE_ENV, crate::helpers::KEY_CACHE)
        .output()
        .unwrap();
    let dir = run_dir(&out);
    assert_stopped_by_the_folder(&output, &dir, "events.jsonl: File too large");
    let kept = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(kept >= 1, "the scenarios before the failure are kept");
    std::fs::remove_dir_all(out).ok();
}

/// `koppeltest run` of the default matrix, one scenario at a time, writing to `out` and comparing
/// with the accepted snapshots in `snapshots` (both made here); as `nobody` when run as root,
/// since root writes through permissions.
fn spawn_run_unprivileged(out: &Path, snapshots: &Path) -> std::process::Child {
    for dir in [out, snapshots] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut command = if root {
        for dir in [out, snapshots] {
            std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_koppeltest"));
        // Keys made afresh: the tests' key cache is not this user's to read.
        c.env(koppeltest::pki::KEY_CACHE_ENV, "off");
        c
    } else {
        crate::helpers::koppeltest()
    };
    command
        .args([
            "run",
            "--quiet",
            "--jobs",
            "1",
            "--snapshots",
            "check",
            "--snapshot-dir",
        ])
        .arg(snapshots)
        .arg("--out")
        .arg(out)
        .env("CI", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Makes every folder below `dir` read-only, and `dir` itself too with `itself`.
fn make_read_only(dir: &Path, itself: bool) {
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                folders.push(entry.path());
            }
        }
        if itself || folder != dir {
            std::fs::set_permissions(&folder, std::os::unix::fs::PermissionsExt::from_mode(0o555))
                .unwrap();
        }
    }
}

/// Removes what [`spawn_run_unprivileged`] wrote, read-only folders included.
fn remove_unprivileged_run(out: &Path, snapshots: &Path) {
    Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(out)
        .status()
        .unwrap();
    std::fs::remove_dir_all(out).ok();
    std::fs::remove_dir_all(snapshots).ok();
}

#[test]
fn a_report_folder_made_unwritable_mid_run_ends_the_run_with_exit_four() {
    let (out, snapshots) = (temp_dir("cli-readonly"), temp_dir("cli-readonly-accepted"));
    let child = spawn_run_unprivileged(&out, &snapshots);
    let dir = wait_for_events(&out, 3);
    // Every folder of the run read-only: the next scenario's snapshot cannot be written.
    make_read_only(&dir, true);
    let output = child.wait_with_output().unwrap();
    assert_stopped_by_the_folder(&output, &dir, "Permission denied");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("failed to write a snapshot"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    remove_unprivileged_run(&out, &snapshots);
}

#[test]
fn a_run_stopped_by_its_report_folder_reports_each_finished_scenario_whole() {
    let (out, snapshots) = (
        temp_dir("cli-cells-readonly"),
        temp_dir("cli-cells-accepted"),
    );
    let child = spawn_run_unprivileged(&out, &snapshots);
    let dir = wait_for_events(&out, 3);
    // The folders below the run's read-only, the run's own not: the next scenario's files
    // cannot be written, report.json can, read back from events.jsonl.
    make_read_only(&dir, false);
    let output = child.wait_with_output().unwrap();
    assert_stopped_by_the_folder(&output, &dir, "Permission denied");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("report.json was written, the other reports not"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let reported: Vec<&serde_json::Value> = report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|cell| cell["scenarios"].as_array().unwrap())
        .collect();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(events.len() >= 3, "{} scenarios finished", events.len());
    assert_eq!(reported.len(), events.len());
    assert!(
        events
            .iter()
            .any(|e| e["scenario"].get("exchanges_file").is_none()),
        "the scenario the folder stopped has no exchanges file"
    );
    // Whole, as events.jsonl holds them: steps and passed checks, not the slim form.
    for event in &events {
        let line = &event["scenario"];
        let Some(kept) = reported
            .iter()
            .find(|s| s["id"] == line["id"] && s["side"] == line["side"])
        else {
            panic!("{} is not in report.json", line["id"]);
        };
        // report.json never inlines exchanges; a line does where their file could not be
        // written (every scenario of the default matrix records some).
        if line.get("exchanges_file").is_none() {
            assert!(
                line["exchanges"].as_array().is_some_and(|x| !x.is_empty()),
                "{}: the exchanges are in the line",
                line["id"]
            );
        }
        for (field, value) in line.as_object().unwrap() {
            if field != "exchanges" {
                assert_eq!(
                    &kept[field], value,
                    "{}: field {field} in report.json as in its line",
                    line["id"]
                );
            }
        }
        assert_eq!(
            kept.as_object().unwrap().len(),
            line.as_object().unwrap().len() - usize::from(line.get("exchanges").is_some()),
            "{}: no field of its own in report.json",
            line["id"]
        );
    }
    assert!(
        reported
            .iter()
            .any(|s| s["steps"].as_array().is_some_and(|steps| !steps.is_empty())),
        "steps kept"
    );
    remove_unprivileged_run(&out, &snapshots);
}

/// `run --repeat N` on one scenario of a one-cell matrix with `quirks`; the exit code, the
/// terminal and the run folder.
fn repeated(tag: &str, quirks: &[&str], n: &str) -> (Option<i32>, String, std::path::PathBuf) {
    let dir = temp_dir(tag);
    happy_path_run(
        &dir,
        &crate::helpers::matrix_toml(quirks, &[], "2.2"),
        &["--repeat", n],
    )
}

/// `run --snapshots off` of the happy path alone under `matrix_text` (written to
/// `dir/matrix.toml`) with `args`; the exit code, the terminal and the run folder.
fn happy_path_run(
    dir: &Path,
    matrix_text: &str,
    args: &[&str],
) -> (Option<i32>, String, std::path::PathBuf) {
    let matrix = dir.join("matrix.toml");
    std::fs::write(&matrix, matrix_text).unwrap();
    let scenarios = crate::helpers::scenario_folder(dir, &["happy-path.toml"]);
    let out = dir.join("reports");
    let output = koppeltest()
        .args(["run", "--quiet", "--snapshots", "off"])
        .args(args)
        .arg("--matrix")
        .arg(&matrix)
        .arg("--scenarios")
        .arg(&scenarios)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        run_dir(&out),
    )
}

#[test]
fn a_scenario_that_both_passes_and_fails_is_flaky_in_every_report() {
    // One resource answer in 20 is 503: of ten happy paths (seven queries each) some fail and
    // most pass, from the row's seed.
    let (code, terminal, dir) = repeated("cli-flaky", &["resource-unavailable-1-in-20"], "10");
    assert_eq!(code, Some(1), "flaky fails the run: {terminal}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let sc = &report["cells"][0]["scenarios"][0];
    assert_eq!(sc["verdict"], "flaky", "{}", sc["repeat"]);
    assert_eq!(report["cells"][0]["verdict"], "flaky");
    assert_eq!(report["summary"]["flaky"], 1);
    assert_eq!(report["summary"]["scenarios"], 1, "ten runs, one scenario");
    let runs = &sc["repeat"];
    assert_eq!(runs["runs"], 10);
    let passed = runs["passed"].as_u64().unwrap();
    assert!((1..10).contains(&passed), "{runs}");
    assert_eq!(
        runs["failed"].as_u64().unwrap() + runs["errored"].as_u64().unwrap(),
        10 - passed
    );
    // The run shown is one that failed.
    assert_eq!(sc["outcome"], "fail");
    let rate = format!("passed {passed} of 10 runs");
    assert!(
        terminal.contains("FLAKY") && terminal.contains(&rate),
        "{terminal}"
    );
    assert!(terminal.contains("1 flaky"), "{terminal}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains(&format!("FLAKY ({rate}")), "{junit}");
    assert!(junit.contains("<failure"), "a failure in JUnit, not a pass");
    let html = std::fs::read_to_string(dir.join("matrix.html")).unwrap();
    assert!(html.contains("v-flaky"), "matrix.html: the cell is flaky");
    let page = report["cells"][0]["page"].as_str().unwrap();
    let html = std::fs::read_to_string(dir.join(page)).unwrap();
    assert!(
        html.contains("badge v-flaky") && html.contains(&rate),
        "the cell's page"
    );
    std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).ok();
}

#[test]
fn a_scenario_that_always_passes_is_no_flake() {
    let (code, terminal, dir) = repeated("cli-steady", &[], "3");
    assert_eq!(code, Some(0), "{terminal}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let sc = &report["cells"][0]["scenarios"][0];
    assert_eq!(sc["verdict"], "pass");
    assert_eq!(sc["repeat"]["passed"], 3);
    assert_eq!(report["summary"]["flaky"], 0);
    std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).ok();
}

#[test]
fn the_matrix_sets_the_limits_a_vendor_may_need_to_change() {
    // One front-channel hop: the login is cut off, with the matrix's bound named.
    let dir = temp_dir("cli-limits");
    let mut text = crate::helpers::matrix_toml(&[], &[], "2.2");
    text = text.replacen(
        "[[his]]",
        "limits = { max_pages = 2, max_redirects = 1 }\n[[his]]",
        1,
    );
    let (code, _, run) = happy_path_run(&dir, &text, &[]);
    assert_ne!(code, Some(0));
    let report = std::fs::read_to_string(run.join("report.json")).unwrap();
    let matrix = dir.join("matrix.toml");
    assert!(
        report.contains("more than 1 hops without reaching the redirect URI"),
        "the hop bound is the matrix's"
    );
    // A zero bound is refused with its field.
    std::fs::write(&matrix, text.replace("max_pages = 2", "max_pages = 0")).unwrap();
    let output = koppeltest()
        .args(["check", "--matrix"])
        .arg(&matrix)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("limits.max_pages"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_run_keeps_its_keys_for_the_next_and_says_so_and_fresh_keys_makes_new_ones() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("cli-keys");
    let cache = dir.join("keys");
    let scenarios = crate::helpers::scenario_folder(&dir, &["happy-path.toml"]);
    let matrix = dir.join("matrix.toml");
    std::fs::write(&matrix, crate::helpers::matrix_toml(&[], &[], "2.2")).unwrap();
    let run = |extra: &[&str]| {
        let out = koppeltest()
            .args(["run", "--snapshots", "off", "--matrix"])
            .arg(&matrix)
            .arg("--out")
            .arg(dir.join("reports"))
            .arg("--scenarios")
            .arg(&scenarios)
            .args(extra)
            .env(koppeltest::pki::KEY_CACHE_ENV, &cache)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
            .lines()
            .filter(|l| l.starts_with("Keys: ") || l.starts_with("warning: keys: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let cache_name = cache.display().to_string();
    // Three CA keys, the leaves' key, the unknown CA's key, the mock TVS's key and its impostor,
    // and the simulated DVA's two SAML keys.
    assert_eq!(
        run(&[]),
        format!("Keys: 0 reused, 9 made and kept in {cache_name} for the next run")
    );
    assert_eq!(run(&[]), format!("Keys: 9 reused from {cache_name}"));
    assert_eq!(
        run(&["--fresh-keys"]),
        "Keys: 9 made for this run, kept nowhere"
    );
    assert_eq!(run(&["--quiet"]), "", "quiet when all is well");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let warned = run(&["--quiet"]);
    assert!(
        warned.starts_with("warning: keys: 0 reused, 9 made; the key cache: ")
            && warned.contains("writable by others"),
        "{warned}"
    );
    std::fs::remove_dir_all(dir).ok();
}
