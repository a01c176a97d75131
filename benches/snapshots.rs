//! What response snapshots cost: the default run (`koppeltest run`, the release binary) with
//! `--snapshots check` against accepted snapshots (the steady state in CI: normalise, write to
//! the run folder, compare) and with `--snapshots off`, alternating, several samples each. Prints
//! the medians and their ratio (the target is at most 1.2). `cargo bench --bench snapshots`;
//! nothing is asserted about time.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SAMPLES: usize = 3;

fn run(dir: &Path, mode: &str) -> f64 {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_koppeltest"))
        .current_dir(dir)
        .env_remove("CI")
        .args(["run", "--quiet", "--out", "reports", "--snapshots", mode])
        .output()
        .expect("koppeltest run");
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Keep the folder small: only the newest run matters.
    let _ = std::fs::remove_dir_all(dir.join("reports"));
    elapsed
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("kt-bench-snapshots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench folder");
    // First run writes every snapshot as pending; accept them for the steady state.
    run(&dir, "check");
    let accepted = Command::new(env!("CARGO_BIN_EXE_koppeltest"))
        .current_dir(&dir)
        .args(["snapshots", "accept"])
        .output()
        .expect("snapshots accept");
    assert!(accepted.status.success());
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        with.push(run(&dir, "check"));
        without.push(run(&dir, "off"));
    }
    let (with, without) = (median(with), median(without));
    println!(
        "default run: {with:.1} s with snapshots, {without:.1} s without (medians of {SAMPLES}): ratio {:.2}",
        with / without
    );
    let _ = std::fs::remove_dir_all(dir);
}
