//! Matrix files (`--matrix`): syntax through `Matrix::parse`, then the semantic checks and list
//! resolution of `Matrix::prepare`, against the embedded scenarios.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use koppeltest::matrix::{DvaTarget, Matrix};
use koppeltest::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

static SCENARIOS: LazyLock<Vec<Scenario>> =
    LazyLock::new(|| koppeltest::scenario::embedded().expect("the embedded scenarios parse"));

/// Whether `prepare` would stay in memory: a row with an external target reads certificate and
/// metadata files, and a list that is not `embedded:` is a file. The fuzzer does no file I/O
/// (a path such as `/dev/zero` would be the user's choice, not a parser bug).
fn in_memory(m: &Matrix) -> bool {
    m.rows.iter().all(|r| {
        matches!(r.target, DvaTarget::Simulated { .. })
            && [&r.zal, &r.ocl, &r.whitelist]
                .iter()
                .all(|s| s.starts_with("embedded:"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz-matrix.toml");
    let Ok(matrix) = Matrix::parse(path, text) else {
        return;
    };
    if in_memory(&matrix) {
        let base = Path::new("/nonexistent/koppeltest-fuzz");
        let _ = matrix.prepare(path, text, base, &SCENARIOS);
    }
});
