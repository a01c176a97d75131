//! The README's default run (every scenario of the embedded default matrix, three simulated rows
//! × two PGO columns) in this process, and the floor under it: the same TLS handshakes, HTTP
//! round trips, XML-signature RSA and RSA key transport, counted by `koppeltest::census` around
//! the run itself, done bare (`common/floor.rs`), spread over as many units as the run has
//! scenarios, as many at a time as the run's `--jobs` default. Same process, same sitting, the
//! floor's samples interleaved with the run's.
//!
//! The floor does only what the census counts: the rustls handshakes that completed, less the
//! resumed ones (they cost no signature; unlike the flow benchmark's floor, which does them in
//! full); not the legacy-TLS quirks' OpenSSL handshakes, nor refused or half-finished ones (the
//! TLS scans' probes). So it is lower than what the run truly cannot do without. It answers
//! one question about issue 12's target of a default run under 5 s on two cores: how much of
//! that time this harness's own operations need, with each scenario's own simulated parties and
//! TLS sessions and PKIoverheid's RSA keys, before any of its other work. The machine's speed
//! varies by the hour, so the benchmark also times one RSA-3072 signature, to compare sittings.
//!
//! The in-process run writes no reports, snapshots or exchange files; `cargo run -- run` does,
//! so its wall time is longer (time it with `/usr/bin/time`). No timing is asserted anywhere.

#[expect(
    dead_code,
    reason = "common::prepared sets up one scenario; this benchmark prepares them all"
)]
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

/// `total` with its full handshakes only: the requests of resumed ones go over those.
fn full_only(total: Census) -> Census {
    Census {
        handshakes: total.handshakes - total.resumed_handshakes,
        resumed_handshakes: 0,
        ..total
    }
}

/// Milliseconds one RSA-3072 signature (PSS, SHA-256, as in a TLS 1.3 CertificateVerify) takes
/// with the leaves' key: the machine's speed in this sitting, to compare figures across hours.
fn rsa3072_sign_ms(prepared: &Prepared) -> f64 {
    use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};
    const SIGNATURES: u32 = 200;
    let leaf = prepared
        .pki
        .leaf(koppeltest::pki::Channel::Back, floor::FLOOR_HOST)
        .expect("leaf");
    let key = RsaKeyPair::from_pkcs8(leaf.key().secret_der()).expect("leaf key");
    assert_eq!(
        key.public_modulus_len() * 8,
        3072,
        "the leaves' key is RSA-3072"
    );
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut sig = vec![0u8; key.public_modulus_len()];
    let started = Instant::now();
    for _ in 0..SIGNATURES {
        key.sign(&RSA_PSS_SHA256, &rng, b"CertificateVerify", &mut sig)
            .expect("sign");
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(SIGNATURES)
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
            floor.perform(work).await;
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("floor task");
    }
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let prepared = prepared();
    rt.block_on(async {
        // Warm-up: issues every certificate and SAML key the run needs, and shows what it is.
        let before = Census::now();
        let done = runner::run_all(prepared.clone(), JOBS).await;
        let counted = Census::now().since(before);
        let units = done.len() as u64;
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for f in &done {
            *outcomes.entry(format!("{:?}", f.report.outcome)).or_default() += 1;
        }
        println!("the default run: {units} scenarios, outcomes {outcomes:?}; {cores} cores");
        println!(
            "counted over one run: {} TLS handshakes ({} resumed, {} full, {} of those with a client certificate), {} HTTP requests, {} XML signatures, {} verifications, {} RSA key encryptions, {} decryptions",
            counted.handshakes,
            counted.resumed_handshakes,
            counted.handshakes - counted.resumed_handshakes,
            counted.mutual_handshakes,
            counted.requests,
            counted.saml_signatures,
            counted.saml_verifications,
            counted.key_encryptions,
            counted.key_decryptions
        );
        println!(
            "this sitting: one RSA-3072 signature takes {:.2} ms",
            rsa3072_sign_ms(&prepared)
        );
        let floor = Floor::start(&prepared.pki).await;
        floor_run(&floor, full_only(counted), units).await;
        let (mut run_wall, mut run_cpu, mut floor_wall, mut floor_cpu, mut saml_cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for sample in 1..=SAMPLES {
            let before = Census::now();
            let (done, wall, cpu) = timed(runner::run_all(prepared.clone(), JOBS)).await;
            assert_eq!(done.len() as u64, units, "every scenario finishes");
            let work = full_only(Census::now().since(before));
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
            let (lo, hi) = common::range(xs);
            format!("{name} median {:.2} s ({lo:.2}–{hi:.2})", common::median(xs.to_vec()))
        };
        println!(
            "the run in process: {}, {}",
            show("wall", &run_wall),
            show("CPU", &run_cpu)
        );
        println!(
            "its floor: {}, {}; floor CPU ÷ cores = {:.2} s, the least wall time this work can take here",
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
