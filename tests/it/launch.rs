//! The launch decision over a real run: a known deviation never unblocks a security or privacy
//! failure, a waiver does until it expires, and `koppeltest launch` re-decides a finished run
//! at another date (or with the waivers of another matrix).

use std::path::Path;

use crate::helpers::{CONFORM_PRACTICE, pki_init, scenario_folder, temp_dir};

/// Two simulated rows with their failures declared as known deviations: one replays codes
/// (token-family MUSTs, waived until `expires` when given: `token.code-replay` by scenario, and
/// `token.replay-revokes`, which fails core.tknint.204 and rfc6749#5.2, by a waiver of each
/// requirement), one shares S/O lines (privacy).
fn matrix(waiver_expires: Option<&str>) -> String {
    let waiver = waiver_expires.map_or(String::new(), |d| {
        format!(
            "[[his.waiver]]\nscenario = \"token.code-replay\"\nreason = \"fix scheduled in release 7.2\"\n\
             owner = \"regio-coalitie test lead\"\nexpires = \"{d}\"\n\
             [[his.waiver]]\nrequirement = \"rfc6749#5.2\"\nreason = \"the same fix\"\n\
             owner = \"regio-coalitie test lead\"\nexpires = \"{d}\"\n\
             [[his.waiver]]\nrequirement = \"core.tknint.204\"\nreason = \"the same fix\"\n\
             owner = \"regio-coalitie test lead\"\nexpires = \"{d}\"\n"
        )
    });
    format!(
        r#"name = "launch"
[[his]]
id = "replay"
name = "Replay"
dva = "simulated"
{CONFORM_PRACTICE}target = {{ kind = "simulated", entity_index = 9101, quirks = ["code-replay-accepted"] }}
[[his.known_deviation]]
scenario = "token.code-replay"
reason = "the token endpoint exchanges a code twice"
[[his.known_deviation]]
scenario = "token.replay-revokes"
reason = "the replay is served, so nothing is revoked"
{waiver}
[[his]]
id = "leaky"
name = "Leaky"
dva = "simulated"
{CONFORM_PRACTICE}target = {{ kind = "simulated", entity_index = 9102, quirks = ["so-lines-leaked"] }}
[[his.known_deviation]]
scenario = "dataset.bakker"
reason = "S/O lines are shared"

[[pgo]]
id = "col"
name = "Col"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback"
release = "1.x"
"#
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cell<'a>(cells: &'a serde_json::Value, row: &str) -> &'a serde_json::Value {
    cells
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["row"] == row)
        .unwrap_or_else(|| panic!("no cell for {row}"))
}

/// The reason of `cell` from `scenario`.
fn reason<'a>(cell: &'a serde_json::Value, scenario: &str) -> &'a serde_json::Value {
    let reasons = cell["reasons"]
        .as_array()
        .or_else(|| cell["launch"]["reasons"].as_array())
        .unwrap();
    reasons
        .iter()
        .find(|r| r["scenario"] == scenario)
        .unwrap_or_else(|| panic!("no reason from {scenario}: {reasons:?}"))
}

fn launch(run: &Path, extra: &[&str]) -> std::process::Output {
    crate::helpers::koppeltest()
        .arg("launch")
        .arg("--run")
        .arg(run)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_known_deviation_never_unblocks_and_a_waiver_does_until_it_expires() {
    let dir = temp_dir("launch");
    pki_init(&dir.join("pki"));
    std::fs::write(dir.join("matrix.toml"), matrix(Some("2030-06-30"))).unwrap();
    std::fs::write(dir.join("unwaived.toml"), matrix(None)).unwrap();
    let scenarios = scenario_folder(
        &dir,
        &[
            "happy-path.toml",
            "token-code-replay.toml",
            "token-replay-revokes.toml",
            "dataset-bakker.toml",
            "tls-token-endpoint.toml",
        ],
    );
    let out = crate::helpers::koppeltest()
        .args(["run", "--quiet", "--snapshots", "off", "--matrix"])
        .arg(dir.join("matrix.toml"))
        .arg("--scenarios")
        .arg(&scenarios)
        .arg("--pki")
        .arg(dir.join("pki"))
        .arg("--out")
        .arg(dir.join("reports"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run = dir.join("reports/latest");
    let report = json(&run.join("report.json"));

    // The run itself decides at its own date: the waiver holds, so the replay row is a go with
    // conditions (the waived blocker, the SHOULD, no soak), with every family exercised.
    let replay = cell(&report["cells"], "replay");
    assert_eq!(
        replay["launch"]["decision"], "go-with-conditions",
        "{replay:#}"
    );
    let by_requirement = reason(replay, "token.replay-revokes");
    assert_eq!(by_requirement["kind"], "waived", "{by_requirement:#}");
    let waived = reason(replay, "token.code-replay");
    assert_eq!(waived["kind"], "waived");
    assert_eq!(waived["blocking"], false);
    assert!(
        waived["text"]
            .as_str()
            .unwrap()
            .contains("waived until 2030-06-30 by regio-coalitie test lead")
    );
    // A privacy failure declared as a known deviation still blocks.
    let leaky = cell(&report["cells"], "leaky");
    assert_eq!(leaky["launch"]["decision"], "no-go");
    let privacy = reason(leaky, "dataset.bakker");
    assert_eq!(privacy["kind"], "privacy");
    assert_eq!(privacy["blocking"], true);
    assert!(
        privacy["text"]
            .as_str()
            .unwrap()
            .contains("which does not accept the risk")
    );
    assert!(stdout.contains("Launch decision as of"), "{stdout}");
    let html = std::fs::read_to_string(run.join("matrix.html")).unwrap();
    assert!(
        html.find("id=\"launch\"").unwrap() < html.find("<h2>HIS × PGO</h2>").unwrap(),
        "the HTML leads with the launch list"
    );
    let run_day = &report["started_at"].as_str().unwrap()[..10];
    assert!(run.join(format!("launch-{run_day}.csv")).exists());

    // On its last day the waiver holds; the day after, the blocker blocks again.
    let last = launch(&run, &["--date", "2030-06-30"]);
    assert_eq!(last.status.code(), Some(1), "the leaky row is a no-go");
    let list = json(&run.join("launch-2030-06-30.json"));
    assert_eq!(list["schema"], "koppeltest.launch/1");
    assert_eq!(list["run_id"], report["run_id"]);
    assert_eq!(
        cell(&list["cells"], "replay")["decision"],
        "go-with-conditions"
    );
    let after = launch(&run, &["--date", "2030-07-01"]);
    assert_eq!(after.status.code(), Some(1));
    let list = json(&run.join("launch-2030-07-01.json"));
    let replay = cell(&list["cells"], "replay");
    assert_eq!(replay["decision"], "no-go");
    let lapsed = reason(replay, "token.code-replay");
    assert_eq!(lapsed["kind"], "security");
    assert_eq!(lapsed["blocking"], true);
    assert!(
        lapsed["text"]
            .as_str()
            .unwrap()
            .contains("the waiver by regio-coalitie test lead lapsed after 2030-06-30")
    );
    let csv = std::fs::read_to_string(run.join("launch-2030-07-01.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "date,run_id,koppeltest_version,row,column,decision,reasons"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("2030-07-01,"), "{csv}");
    assert!(lines[1].contains(",no-go,"), "{csv}");

    // Without the waiver (another matrix), the known deviation alone does not unblock.
    let out_dir = dir.join("unwaived");
    let unwaived = launch(
        &run,
        &[
            "--date",
            "2027-01-01",
            "--matrix",
            dir.join("unwaived.toml").to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(unwaived.status.code(), Some(1));
    let list = json(&out_dir.join("launch-2027-01-01.json"));
    let replay = cell(&list["cells"], "replay");
    assert_eq!(replay["decision"], "no-go");
    let blocker = reason(replay, "token.code-replay");
    assert_eq!(blocker["kind"], "security");
    assert!(
        blocker["text"]
            .as_str()
            .unwrap()
            .contains("declared as a known deviation")
    );
}

#[test]
fn bad_launch_input_is_exit_three_with_the_reason() {
    let dir = temp_dir("launch-bad");
    let missing = launch(&dir.join("nowhere"), &[]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("report.json"));
    std::fs::write(dir.join("report.json"), "{\"schema\": \"something else\"}").unwrap();
    let foreign = launch(&dir, &[]);
    assert_eq!(foreign.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&foreign.stderr).contains("not a koppeltest report"));
    let bad_date = launch(&dir, &["--date", "2030-13-01"]);
    assert_eq!(bad_date.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad_date.stderr).contains("--date"));
    // A waiver without an owner, or with a date that is not one, names its line and field.
    for (from, to, field) in [
        (
            "owner = \"regio-coalitie test lead\"\n",
            "owner = \" \"\n",
            "waiver.owner",
        ),
        (
            "expires = \"2030-06-30\"",
            "expires = \"30-06-2030\"",
            "waiver.expires",
        ),
    ] {
        let text = matrix(Some("2030-06-30")).replace(from, to);
        std::fs::write(dir.join("bad.toml"), &text).unwrap();
        let check = crate::helpers::koppeltest()
            .args(["check", "--matrix"])
            .arg(dir.join("bad.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains(&format!("field `{field}`")), "{stderr}");
        assert!(stderr.contains("bad.toml:"), "{stderr}");
    }
}
