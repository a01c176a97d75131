//! JSON Schemas for the scenario, matrix, report, launch-list and soak formats, generated from the Rust types.
//! `koppeltest schema` writes them to `schemas/`; `--check` (run by the tests) fails when the
//! committed files are stale.

use std::path::Path;

use crate::exit;

/// (file name, pretty JSON) for every schema.
pub fn generate() -> Vec<(&'static str, String)> {
    let pretty = |v: schemars::Schema| serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    vec![
        (
            "scenario.schema.json",
            pretty(schemars::schema_for!(crate::scenario::Scenario)),
        ),
        (
            "matrix.schema.json",
            pretty(schemars::schema_for!(crate::matrix::Matrix)),
        ),
        (
            "report.schema.json",
            pretty(schemars::schema_for!(super::RunReport)),
        ),
        (
            "launch.schema.json",
            pretty(schemars::schema_for!(crate::launch::LaunchList)),
        ),
        (
            "soak.schema.json",
            pretty(schemars::schema_for!(crate::soak::SoakReport)),
        ),
    ]
}

pub fn write_or_check(dir: &Path, check: bool) -> i32 {
    let mut stale = Vec::new();
    for (name, text) in generate() {
        let path = dir.join(name);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        } else if let Err(e) =
            std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, text))
        {
            eprintln!("error: failed to write {}: {e}", path.display());
            return exit::ENVIRONMENT;
        }
    }
    if stale.is_empty() {
        println!(
            "{} {}",
            if check { "up to date:" } else { "wrote" },
            dir.display()
        );
        exit::OK
    } else {
        eprintln!(
            "error: stale schemas (run `koppeltest schema`): {}",
            stale.join(", ")
        );
        exit::INVALID_CONFIG
    }
}
