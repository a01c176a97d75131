//! A run split into shards (`run --shard K/N`) and joined again (`merge`) equals the unsharded
//! run: the same cells, verdicts, checks, summary, JUnit test cases and launch decisions. And
//! merge refuses what is not one run.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::helpers::{CONFORM_PRACTICE, pki_init, scenario_folder, temp_dir};

const SCENARIOS: &[&str] = &[
    "happy-path.toml",
    "token-code-replay.toml",
    "token-replay-revokes.toml",
    "auth-missing-state.toml",
    "fhir-missing-token.toml",
    "dataset-bakker.toml",
];

fn matrix() -> String {
    format!(
        r#"name = "shards"
[[his]]
id = "conform"
name = "Conform"
dva = "simulated"
{CONFORM_PRACTICE}target = {{ kind = "simulated", entity_index = 9111 }}

[[his]]
id = "replay"
name = "Replay"
dva = "simulated"
{CONFORM_PRACTICE}target = {{ kind = "simulated", entity_index = 9112, quirks = ["code-replay-accepted", "so-lines-leaked"] }}
[[his.known_deviation]]
scenario = "token.code-replay"
reason = "the token endpoint exchanges a code twice"

[[pgo]]
id = "col"
name = "Col"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback"
release = "1.x"
"#
    )
}

/// `koppeltest run` of the test matrix into `out` (with `extra` arguments); its exit code.
fn run(dir: &Path, out: &str, extra: &[&str]) -> i32 {
    let output = crate::helpers::koppeltest()
        .args(["run", "--quiet", "--pending", "never", "--snapshot-dir"])
        .arg(dir.join("snaps"))
        .arg("--matrix")
        .arg(dir.join("matrix.toml"))
        .arg("--scenarios")
        .arg(dir.join("scenarios"))
        .arg("--pki")
        .arg(dir.join("pki"))
        .arg("--out")
        .arg(dir.join(out))
        .args(extra)
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    assert!(
        matches!(code, 0 | 1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    code
}

fn merge(runs: &[PathBuf], out: &Path) -> std::process::Output {
    crate::helpers::koppeltest()
        .arg("merge")
        .args(runs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What must be equal between a sharded and an unsharded run: everything but ids, times,
/// durations and the recorded exchanges themselves.
fn essence(report: &Value) -> Value {
    let cells: Vec<Value> = report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let scenarios: Vec<Value> = c["scenarios"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let checks: Vec<Value> = s["checks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| json!([k["kind"], k["outcome"], k["requirements"], k["privacy"]]))
                        .collect();
                    json!({
                        "id": s["id"], "side": s["side"], "outcome": s["outcome"],
                        "verdict": s["verdict"], "known": s["known_deviation"],
                        "privacy": s["privacy_failure"], "failed": s["failed_requirements"],
                        "checks": checks, "drift": s["drift"]["state"],
                        "exchanges": s["exchange_count"], "file": s["exchanges_file"],
                    })
                })
                .collect();
            let dataset: Vec<Value> = c["dataset"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| json!([d["category"], d["status"], d["missing_count"]]))
                .collect();
            let reasons: Vec<Value> = c["launch"]["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| json!([r["kind"], r["blocking"], r["scenario"], r["requirements"]]))
                .collect();
            json!({
                "row": c["row"], "column": c["column"], "outcome": c["outcome"],
                "verdict": c["verdict"], "privacy_failures": c["privacy_failures"],
                "dataset": dataset, "tls": c["tls"]["line"], "reliability": c["reliability"],
                "launch": [c["launch"]["decision"], reasons], "scenarios": scenarios,
            })
        })
        .collect();
    let mut snapshots = report["snapshots"].clone();
    if let Some(s) = snapshots.as_object_mut() {
        s.remove("dir");
    }
    json!({
        "schema": report["schema"], "matrix": report["matrix"], "summary": report["summary"],
        "interrupted": report["interrupted"], "snapshots": snapshots, "cells": cells,
    })
}

/// (suite, classname, test case, status) of every JUnit test case, in order.
fn junit_cases(path: &Path) -> Vec<(String, String, String, &'static str)> {
    let text = std::fs::read_to_string(path).unwrap();
    let attr = |chunk: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        chunk
            .find(&key)
            .map(|i| {
                let rest = &chunk[i + key.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for suite in text.split("<testsuite ").skip(1) {
        let suite_name = attr(suite, "name");
        for case in suite.split("<testcase ").skip(1) {
            let case = case.split("</testcase>").next().unwrap();
            let status = if case.contains("<failure") {
                "failure"
            } else if case.contains("<error") {
                "error"
            } else if case.contains("<skipped") {
                "skipped"
            } else {
                "success"
            };
            out.push((
                suite_name.clone(),
                attr(case, "classname"),
                attr(case, "name"),
                status,
            ));
        }
    }
    out
}

fn launch_list(dir: &Path) -> Value {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("launch-") && name.ends_with(".json")
        })
        .expect("a launch list");
    let list = read(&file);
    json!(
        list["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([
                c["row"],
                c["column"],
                c["decision"],
                c["reasons"].as_array().unwrap().len()
            ]))
            .collect::<Vec<_>>()
    )
}

fn assert_same_run(whole: &Path, merged: &Path) {
    let (a, b) = (
        read(&whole.join("report.json")),
        read(&merged.join("report.json")),
    );
    assert_eq!(b["shard"], Value::Null);
    assert_eq!(
        essence(&a),
        essence(&b),
        "the merged report differs from the unsharded one"
    );
    assert_eq!(
        junit_cases(&whole.join("junit.xml")),
        junit_cases(&merged.join("junit.xml"))
    );
    assert_eq!(launch_list(whole), launch_list(merged));
    let events = std::fs::read_to_string(merged.join("events.jsonl")).unwrap();
    assert_eq!(
        events.lines().count(),
        std::fs::read_to_string(whole.join("events.jsonl"))
            .unwrap()
            .lines()
            .count()
    );
    assert!(merged.join("matrix.html").exists());
    assert!(merged.join("inputs/matrix.toml").exists());
    // Every page and exchange file the merged report names is there, each exchange file with
    // its page (every exchange anchored), which the cell's page links.
    for cell in b["cells"].as_array().unwrap() {
        let page = std::fs::read_to_string(merged.join(cell["page"].as_str().unwrap())).unwrap();
        for s in cell["scenarios"].as_array().unwrap() {
            let json = s["exchanges_file"].as_str().unwrap();
            assert!(merged.join(json).is_file());
            let html = format!("{}.html", json.strip_suffix(".json").unwrap());
            let exchanges = std::fs::read_to_string(merged.join(&html)).unwrap();
            let count = s["exchange_count"].as_u64().unwrap();
            assert_eq!(
                exchanges.matches("<details id=\"x-").count() as u64,
                count,
                "{html}"
            );
            let name = html.rsplit('/').next().unwrap();
            assert!(page.contains(name), "the cell page links {html}");
        }
    }
}

#[test]
fn a_sharded_run_merged_equals_the_unsharded_run() {
    let dir = temp_dir("shards");
    pki_init(&dir.join("pki"));
    std::fs::write(dir.join("matrix.toml"), matrix()).unwrap();
    scenario_folder(&dir, SCENARIOS);
    let whole_code = run(&dir, "whole", &[]);
    let whole = dir.join("whole/latest");

    // Round robin over three shards.
    let mut parts = Vec::new();
    for k in 1..=3 {
        run(&dir, &format!("shard-{k}"), &["--shard", &format!("{k}/3")]);
        let part = dir.join(format!("shard-{k}/latest"));
        let info = &read(&part.join("report.json"))["shard"];
        assert_eq!(info["index"], k);
        assert_eq!(info["units_total"], 12);
        assert_eq!(info["units_here"], 4);
        parts.push(part);
    }
    let out = merge(&parts, &dir.join("merged"));
    assert_eq!(
        out.status.code(),
        Some(whole_code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_run(&whole, &dir.join("merged"));

    // Balanced by the durations the whole run recorded, over two shards.
    let durations = whole.join("report.json");
    let mut balanced = Vec::new();
    for k in 1..=2 {
        let out = format!("balanced-{k}");
        run(
            &dir,
            &out,
            &[
                "--shard",
                &format!("{k}/2"),
                "--durations",
                durations.to_str().unwrap(),
            ],
        );
        balanced.push(dir.join(out).join("latest"));
    }
    let out = merge(&balanced, &dir.join("merged-balanced"));
    assert_eq!(out.status.code(), Some(whole_code));
    assert_same_run(&whole, &dir.join("merged-balanced"));

    // A shard sliced otherwise (here: every scenario twice) does not fit the others.
    run(&dir, "repeated-1", &["--shard", "1/3", "--repeat", "2"]);
    let repeated = dir.join("repeated-1/latest");

    // What is not one run is refused, with the reason.
    for (runs, needle) in [
        (vec![parts[0].clone(), parts[1].clone()], "missing 3/3"),
        (
            vec![parts[0].clone(), parts[0].clone(), parts[1].clone()],
            "given twice 1/3",
        ),
        (vec![whole.clone()], "not a shard"),
        (
            vec![parts[0].clone(), balanced[1].clone()],
            "not shards of one run",
        ),
        (
            vec![repeated, parts[1].clone(), parts[2].clone()],
            "were not sliced alike",
        ),
    ] {
        let out = merge(&runs, &dir.join("refused"));
        assert_eq!(out.status.code(), Some(3));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{stderr}");
    }
    let out = merge(&parts, &dir.join("merged"));
    assert_eq!(
        out.status.code(),
        Some(3),
        "an existing run folder is not overwritten"
    );
}
