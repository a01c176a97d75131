//! The README's default run (every scenario of the embedded default matrix, three simulated rows
//! × two PGO columns) in this process, and the floor under it: the same TLS handshakes, HTTP
//! round trips, XML-signature RSA and RSA key transport, counted by `koppeltest::census` around
//! the run itself, done bare (`common/floor.rs`), spread over as many units as the run has
//! scenarios, as many at a time as the run's `--jobs` default. Same process, same sitting, the
//! floor's samples interleaved with the run's.
//!
//! The floor does only the run's full handshakes (resumed ones cost no signature and are left
//! out) and none of the TLS scans' half-finished ones, so it is lower than what the run truly
//! cannot do without. It answers one question about issue 12's target of a default run under
//! 5 s on two cores: how far below 5 s could any harness get that gives every scenario its own
//! simulated parties and their own TLS sessions, with PKIoverheid's RSA keys.
//!
//! The in-process run writes no reports, snapshots or exchange files; `cargo run -- run` does,
//! so its wall time is longer (time it with `/usr/bin/time`). No timing is asserted anywhere.

// `common::prepared` sets up one scenario; this benchmark prepares them all.
#[allow(dead_code)]
mod common;
#[path = "common/floor.rs"]
mod floor;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use floor::Floor;
use koppeltest::census::Census;
use koppeltest::matrix::Matrix;
use koppeltest::runner::{self, Prepared};

const SAMPLES: usize = 3;
/// The `run` command's `--jobs` default.
const JOBS: usize = 16;

/// The embedded default matrix with every embedded scenario, as `koppeltest run` prepares it.
fn prepared() -> Arc<Prepared> {
    koppeltest::tls::install_crypto_provider();
    let (matrix, text) = Matrix::embedded_default().expect("default matrix");
    let scenarios = koppeltest::scenario::embedded().expect("scenarios");
    let rows = matrix
        .prepare(Path::new("default.toml"), &text, Path::new("."), &scenarios)
        .expect("default matrix prepares");
    common::assemble(matrix, rows, scenarios)
}

/// CPU time of this process so far (user + system, all threads), from `/proc/self/stat`, in
/// seconds (Linux clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// Part `i` of `parts` equal shares of `total`, each counter split as evenly as it goes (the
/// first `total % parts` parts get one more): the shares add up to `total` exactly.
fn share(total: Census, parts: u64, i: u64) -> Census {
    let part = |x: u64| x / parts + u64::from(i < x % parts);
    Census {
        handshakes: part(total.handshakes),
        mutual_handshakes: part(total.mutual_handshakes),
        resumed_handshakes: part(total.resumed_handshakes),
        requests: part(total.requests),
        saml_signatures: part(total.saml_signatures),
        saml_verifications: part(total.saml_verifications),
        key_encryptions: part(total.key_encryptions),
        key_decryptions: part(total.key_decryptions),
    }
}

/// Wall and CPU seconds of `work`.
async fn timed<F: Future<Output = T>, T>(work: F) -> (T, f64, f64) {
    let (cpu, started) = (cpu_seconds(), Instant::now());
    let out = work.await;
    (out, started.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

/// The floor of `total` over `units` units, `JOBS` at a time.
async fn floor_run(floor: &Arc<Floor>, total: Census, units: u64) {
    let permits = Arc::new(tokio::sync::Semaphore::new(JOBS));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..units {
        let (floor, permits) = (floor.clone(), permits.clone());
        let work = share(total, units, i);
        set.spawn(async move {
            let _p = permits.acquire().await.expect("semaphore");
            floor.flow(work).await;
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("floor task");
    }
}

fn range(xs: &[f64]) -> (f64, f64) {
    (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(0.0, f64::max),
    )
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let prepared = prepared();
    rt.block_on(async {
        // Warm-up: issues every certificate and SAML key the run needs, and shows what it is.
        let done = runner::run_all(prepared.clone(), JOBS).await;
        let units = done.len() as u64;
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for f in &done {
            *outcomes.entry(format!("{:?}", f.report.outcome)).or_default() += 1;
        }
        println!("the default run: {units} scenarios, outcomes {outcomes:?}; {cores} cores");
        let floor = Floor::start(&prepared.pki).await;
        let (mut run_wall, mut run_cpu, mut floor_wall, mut floor_cpu, mut saml_cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for sample in 1..=SAMPLES {
            let before = Census::now();
            let (done, wall, cpu) = timed(runner::run_all(prepared.clone(), JOBS)).await;
            assert_eq!(done.len() as u64, units, "every scenario finishes");
            let total = Census::now().since(before);
            // The floor does the full handshakes only; the requests of resumed ones go over them.
            let work = Census {
                handshakes: total.handshakes - total.resumed_handshakes,
                resumed_handshakes: 0,
                ..total
            };
            if sample == 1 {
                println!(
                    "counted over one run: {} TLS handshakes ({} resumed, {} full, {} of those with a client certificate), {} HTTP requests, {} XML signatures, {} verifications, {} RSA key encryptions, {} decryptions",
                    total.handshakes,
                    total.resumed_handshakes,
                    work.handshakes,
                    work.mutual_handshakes,
                    work.requests,
                    work.saml_signatures,
                    work.saml_verifications,
                    work.key_encryptions,
                    work.key_decryptions
                );
            }
            let ((), fwall, fcpu) = timed(floor_run(&floor, work, units)).await;
            // The part of the floor no TLS design changes: the logins' XML-signature RSA and
            // key transport, without the handshakes and requests.
            let saml = Census {
                handshakes: 0,
                mutual_handshakes: 0,
                requests: 0,
                ..work
            };
            let ((), swall, scpu) = timed(floor_run(&floor, saml, units)).await;
            println!(
                "sample {sample}: run {wall:.2} s wall, {cpu:.2} s CPU; floor {fwall:.2} s wall, {fcpu:.2} s CPU, of which the SAML RSA alone {swall:.2} s wall, {scpu:.2} s CPU"
            );
            saml_cpu.push(scpu);
            run_wall.push(wall);
            run_cpu.push(cpu);
            floor_wall.push(fwall);
            floor_cpu.push(fcpu);
        }
        let show = |name: &str, xs: &[f64]| {
            let (lo, hi) = range(xs);
            format!("{name} median {:.2} s ({lo:.2}–{hi:.2})", common::median(xs.to_vec()))
        };
        println!(
            "the run in process: {}, {}",
            show("wall", &run_wall),
            show("CPU", &run_cpu)
        );
        println!(
            "its floor: {}, {}; floor CPU ÷ cores = {:.2} s, the least wall time any harness doing this work could take here",
            show("wall", &floor_wall),
            show("CPU", &floor_cpu),
            common::median(floor_cpu.clone()) / cores as f64
        );
        println!(
            "of the floor, the SAML RSA alone: {}; the rest is TLS handshakes and HTTP round trips",
            show("CPU", &saml_cpu)
        );
        println!(
            "the run's own work beyond its floor: {:.2} s CPU",
            common::median(run_cpu.clone()) - common::median(floor_cpu.clone())
        );
        println!(
            "run ÷ floor: {:.2}x wall ({SAMPLES} samples, interleaved)",
            common::median(run_wall) / common::median(floor_wall)
        );
        if let Some(mib) = common::peak_rss_mib() {
            println!("peak memory: {mib:.0} MiB resident (VmHWM)");
        }
    });
}
