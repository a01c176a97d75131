//! Complete authorization-plus-data flows per second against the simulated DVA.
//!
//! One flow is the `flow.happy-path` scenario: fresh simulated DVA and mock TVS (four TLS
//! listeners), authorization request, landing page, signed AuthnRequest, TVS login, artifact
//! resolution over mutual TLS, assertion verification and BSN decryption, consent, code, token
//! over mutual TLS, and the seven gegevensdienst-49 queries, each checked.
//!
//! `cargo bench --bench flows` prints the median of several samples, sequential (one flow at a
//! time: latency) and concurrent (8 at a time: throughput). No timing is asserted anywhere.

mod common;

use std::sync::Arc;
use std::time::Instant;

use koppeltest::outcome::Outcome;
use koppeltest::runner::{self, Prepared};

const SAMPLES: usize = 7;
const FLOWS_PER_SAMPLE: usize = 48;

fn prepared() -> Arc<Prepared> {
    common::prepared("flow.happy-path")
}

async fn sample(prepared: &Arc<Prepared>, concurrency: usize) -> f64 {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    for _ in 0..FLOWS_PER_SAMPLE {
        let prepared = prepared.clone();
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire().await.expect("semaphore");
            let (report, _) = runner::run_scenario(&prepared, 0, 0, 0).await;
            assert_eq!(
                report.outcome,
                Outcome::Pass,
                "the benchmark flow must pass: {:?}",
                report.checks
            );
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("flow task");
    }
    FLOWS_PER_SAMPLE as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let prepared = prepared();
    rt.block_on(async {
        // Warm-up: issues every certificate and SAML key the flows need.
        sample(&prepared, 8).await;
        for concurrency in [1, 8] {
            let mut rates = Vec::new();
            for _ in 0..SAMPLES {
                rates.push(sample(&prepared, concurrency).await);
            }
            let (lo, hi) = (rates.iter().cloned().fold(f64::MAX, f64::min), rates.iter().cloned().fold(0.0, f64::max));
            println!(
                "flows/s, concurrency {concurrency:>2}: median {:7.1}  (min {lo:.1}, max {hi:.1}; {SAMPLES} samples of {FLOWS_PER_SAMPLE} flows)",
                common::median(rates)
            );
        }
        if let Some(mib) = common::peak_rss_mib() {
            println!("peak memory: {mib:.0} MiB resident (VmHWM)");
        }
    });
}
