//! The architecture's boundaries, checked in the source: the judge shares no code with the
//! parties it judges, the SAML layer and the TLS scan record perform no I/O, the TLS probe shares
//! no code with the simulated parties, and the report sinks never reach into the runner. A new
//! import across one of these lines fails here, naming file and line.

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

/// Every `use` declaration of the module `name` (joined over its lines, comments left out) that
/// names one of the modules `forbidden` as a path segment, however it is grouped
/// (`use crate::{dva, …}`, `use super::super::tvs`).
fn imports_of(name: &str, forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = rust_files(&src.join(name));
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        files.push(single);
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ");
        for statement in code.split(';') {
            let statement = statement.trim();
            let Some(path) = statement
                .strip_prefix("use ")
                .or_else(|| statement.strip_prefix("pub use "))
                .or_else(|| statement.strip_prefix("pub(crate) use "))
            else {
                continue;
            };
            let leaves_the_module = path.starts_with("crate")
                || path.starts_with("koppeltest")
                || path.starts_with("super::super");
            let segments: Vec<&str> = path
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|s| !s.is_empty())
                .collect();
            if leaves_the_module && forbidden.iter().any(|f| segments.contains(f)) {
                found.push(format!("{}: use {path}", file.display()));
            }
        }
    }
    found
}

/// The parties, and the tools with which the harness acts (the prober, the legacy listener).
const PARTIES: &[&str] = &[
    "dva",
    "tvs",
    "pgo",
    "runner",
    "probe",
    "legacy_tls",
    "bench",
];

#[test]
fn the_checks_import_nothing_from_the_parties_they_judge() {
    let mut found = offending(
        "checks",
        &[
            "crate::dva",
            "crate::tvs",
            "crate::pgo",
            "crate::runner",
            "crate::probe",
            "crate::legacy_tls",
            "koppeltest::dva",
            "koppeltest::tvs",
            "koppeltest::pgo",
            "koppeltest::runner",
            "koppeltest::probe",
            "koppeltest::legacy_tls",
            // The SAML layer builds and reads messages for the simulated DVA and the mock
            // TVS: the judge reads the recorded XML itself (checks/saml.rs).
            "crate::saml",
            "koppeltest::saml",
        ],
    );
    found.extend(imports_of("checks", PARTIES));
    found.extend(imports_of("checks", &["saml"]));
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
fn the_tls_scan_record_performs_no_io_and_the_probe_shares_nothing_with_the_parties() {
    let mut found = offending(
        "tls_scan",
        &["tokio", "reqwest", "std::fs", "std::net", "axum", "hyper"],
    );
    found.extend(imports_of("probe", PARTIES));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_report_sink_imports_the_runner() {
    let mut found = offending("report", &["crate::runner", "runner::"]);
    found.extend(imports_of("report", &["runner"]));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The guard itself can fail: a forbidden name in a code line is found, one in a comment not,
/// and a grouped import is seen through.
#[test]
fn the_guard_finds_a_forbidden_import() {
    assert!(!offending("checks", &["use crate::steps"]).is_empty());
    assert!(offending("report", &["crate::runner::RunEvent"]).is_empty());
    // `checks` imports `crate::{…}` paths naming `steps` and `scenario`.
    assert!(!imports_of("checks", &["steps"]).is_empty());
    assert!(!imports_of("checks", &["Stage"]).is_empty());
    assert!(imports_of("checks", PARTIES).is_empty());
    // The parties do share the SAML layer, so its guard can fire.
    assert!(!offending("dva", &["crate::saml"]).is_empty());
    assert!(!imports_of("tvs", &["saml"]).is_empty());
}

/// rustls is the one TLS stack. OpenSSL is there only for the simulated-DVA quirks that must
/// negotiate legacy TLS, and only `legacy_tls` may name it; the guard must find it there.
#[test]
fn only_legacy_tls_names_openssl() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: std::collections::BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            (path.is_dir() || path.extension().is_some_and(|x| x == "rs")).then_some(stem)
        })
        .collect();
    let found: Vec<String> = modules
        .iter()
        .filter(|m| *m != "legacy_tls")
        .flat_map(|m| offending(m, &["openssl"]))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert!(!offending("legacy_tls", &["openssl"]).is_empty());
}
