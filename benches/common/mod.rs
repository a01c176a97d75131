//! What the benchmarks share: one scenario against the conformant simulated row of the
//! embedded default matrix, one PGO column (`prepared`), or any run set up like it (`assemble`).

use std::path::Path;
use std::sync::Arc;

use koppeltest::fixtures::PatientStore;
use koppeltest::matrix::{Matrix, PreparedRow};
use koppeltest::pki::Pki;
use koppeltest::runner::Prepared;
use koppeltest::scenario::Scenario;

pub fn prepared(scenario_id: &str) -> Arc<Prepared> {
    koppeltest::tls::install_crypto_provider();
    let (mut matrix, text) = Matrix::embedded_default().expect("default matrix");
    let all_scenarios = koppeltest::scenario::embedded().expect("scenarios");
    let scenarios: Vec<_> = all_scenarios
        .iter()
        .filter(|s| s.id == scenario_id)
        .cloned()
        .collect();
    assert_eq!(scenarios.len(), 1, "no scenario {scenario_id}");
    let rows: Vec<_> = matrix
        .prepare(
            Path::new("default.toml"),
            &text,
            Path::new("."),
            &all_scenarios,
        )
        .expect("default matrix prepares")
        .into_iter()
        .filter(|r| r.row.id == "sim-conform")
        .collect();
    matrix.rows.retain(|r| r.id == "sim-conform");
    matrix.columns.truncate(1);
    // A row's known deviations may name scenarios this benchmark leaves out.
    matrix
        .rows
        .iter_mut()
        .for_each(|r| r.known_deviations.clear());
    assemble(matrix, rows, scenarios)
}

/// A run of `scenarios` in `rows` of `matrix`, with a fresh test PKI and the embedded patients.
pub fn assemble(matrix: Matrix, rows: Vec<PreparedRow>, scenarios: Vec<Scenario>) -> Arc<Prepared> {
    let pki = Arc::new(Pki::generate().expect("pki"));
    Arc::new(Prepared::new(
        matrix,
        rows,
        scenarios,
        pki,
        Arc::new(PatientStore::embedded().expect("fixtures")),
    ))
}

/// The process's peak resident memory so far (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The smallest and the largest of `xs`.
pub fn range(xs: &[f64]) -> (f64, f64) {
    (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(f64::MIN, f64::max),
    )
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}
