//! The architecture's boundaries, checked in the source: the judge shares no code with the
//! parties it judges, the SAML layer performs no I/O, and the report sinks never reach into the
//! runner. A new import across one of these lines fails here, naming file and line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = dir
        .is_dir()
        .then(|| dir.to_path_buf())
        .into_iter()
        .collect();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every code line (comments left out) of the module `name` (`name.rs` and `name/…`) that
/// contains one of `forbidden`, as `file:line: text`.
fn offending(name: &str, forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = rust_files(&src.join(name));
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        files.push(single);
    }
    assert!(!files.is_empty(), "no source for module {name}");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(f) = forbidden.iter().find(|f| code.contains(*f)) {
                found.push(format!("{}:{}: {f}: {}", file.display(), n + 1, code));
            }
        }
    }
    found
}

#[test]
fn the_checks_import_nothing_from_the_parties_they_judge() {
    let found = offending(
        "checks",
        &[
            "crate::dva",
            "crate::tvs",
            "crate::pgo",
            "crate::runner",
            "koppeltest::dva",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_saml_layer_performs_no_io() {
    let found = offending(
        "saml",
        &["tokio", "reqwest", "std::fs", "std::net", "axum", "hyper"],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_report_sink_imports_the_runner() {
    let found = offending("report", &["crate::runner", "runner::"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The guard itself can fail: a forbidden name in a code line is found, one in a comment not.
#[test]
fn the_guard_finds_a_forbidden_import() {
    assert!(!offending("checks", &["use crate::steps"]).is_empty());
    assert!(offending("report", &["crate::runner::RunEvent"]).is_empty());
}
