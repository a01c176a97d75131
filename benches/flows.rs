//! Complete authorization-plus-data flows per second against the simulated DVA, and the floor
//! under them.
//!
//! One flow is the `flow.happy-path` scenario: fresh simulated DVA and mock TVS (four TLS
//! listeners), authorization request, landing page, signed AuthnRequest, TVS login, artifact
//! resolution over mutual TLS, assertion verification and BSN decryption, consent, code, token
//! over mutual TLS, and the seven gegevensdienst-49 queries, each checked.
//!
//! The floor is what such a flow cannot do without: the same TLS handshakes (as many with a
//! client certificate), HTTP round trips, XML-signature RSA signatures and verifications and RSA
//! key transports, counted by `koppeltest::census` around one flow of the harness, done bare:
//! one rustls server answering through hyper, a client writing HTTP/1.1 by hand over
//! tokio-rustls, aws-lc-rs for the RSA, keys loaded once. Same process, same sitting, the floor's
//! samples interleaved with the harness's.
//!
//! `cargo bench --bench flows` prints the median of several samples, sequential (one flow at a
//! time: latency) and concurrent (8 at a time: throughput), and the harness-to-floor ratio. No
//! timing is asserted anywhere.

mod common;
#[path = "common/floor.rs"]
mod floor;

use std::sync::Arc;
use std::time::Instant;

use floor::Floor;
use koppeltest::census::Census;
use koppeltest::outcome::Outcome;
use koppeltest::runner::{self, Prepared};

const SAMPLES: usize = 7;
const FLOWS_PER_SAMPLE: usize = 48;

fn prepared() -> Arc<Prepared> {
    common::prepared("flow.happy-path")
}

/// Runs `FLOWS_PER_SAMPLE` flows, `concurrency` at a time, through `flow`; flows per second.
async fn sample<F, Fut>(concurrency: usize, flow: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    for _ in 0..FLOWS_PER_SAMPLE {
        let permits = permits.clone();
        let one = flow();
        set.spawn(async move {
            let _p = permits.acquire().await.expect("semaphore");
            one.await;
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("flow task");
    }
    FLOWS_PER_SAMPLE as f64 / started.elapsed().as_secs_f64()
}

/// `total` over `FLOWS_PER_SAMPLE` flows, per flow, rounded to the nearest whole operation.
fn per_flow(total: Census) -> Census {
    let n = FLOWS_PER_SAMPLE as u64;
    let each = |x: u64| (x + n / 2) / n;
    Census {
        handshakes: each(total.handshakes),
        mutual_handshakes: each(total.mutual_handshakes),
        resumed_handshakes: each(total.resumed_handshakes),
        requests: each(total.requests),
        saml_signatures: each(total.saml_signatures),
        saml_verifications: each(total.saml_verifications),
        key_encryptions: each(total.key_encryptions),
        key_decryptions: each(total.key_decryptions),
    }
}

async fn harness_flow(prepared: Arc<Prepared>) {
    let (report, _) = runner::run_scenario(&prepared, 0, 0, 0).await;
    assert_eq!(
        report.outcome,
        Outcome::Pass,
        "the benchmark flow must pass: {:?}",
        report.checks
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let prepared = prepared();
    rt.block_on(async {
        // Warm-up: issues every certificate and SAML key the flows need.
        sample(8, || harness_flow(prepared.clone())).await;
        // What a flow needs, counted over a sample of flows one at a time.
        let before = Census::now();
        sample(1, || harness_flow(prepared.clone())).await;
        let total = Census::now().since(before);
        let work = per_flow(total);
        println!(
            "per flow ({FLOWS_PER_SAMPLE} counted): {} TLS handshakes ({} with a client certificate; {} of all {} resumed, the floor resumes none), {} HTTP requests, {} XML signatures, {} signature verifications, {} RSA key encryptions, {} decryptions",
            work.handshakes,
            work.mutual_handshakes,
            total.resumed_handshakes,
            total.handshakes,
            work.requests,
            work.saml_signatures,
            work.saml_verifications,
            work.key_encryptions,
            work.key_decryptions
        );
        let floor = Floor::start(&prepared.pki).await;
        sample(8, || floor.clone().perform(work)).await;
        for concurrency in [1, 8] {
            let (mut harness, mut bare) = (Vec::new(), Vec::new());
            for _ in 0..SAMPLES {
                harness.push(sample(concurrency, || harness_flow(prepared.clone())).await);
                bare.push(sample(concurrency, || floor.clone().perform(work)).await);
            }
            let ((hlo, hhi), (flo, fhi)) = (common::range(&harness), common::range(&bare));
            let (h, f) = (common::median(harness), common::median(bare));
            println!(
                "flows/s, concurrency {concurrency:>2}: harness median {h:7.1} (min {hlo:.1}, max {hhi:.1}); floor median {f:7.1} (min {flo:.1}, max {fhi:.1}); floor/harness {:.2}x  ({SAMPLES} samples of {FLOWS_PER_SAMPLE} flows each)",
                f / h
            );
        }
        if let Some(mib) = common::peak_rss_mib() {
            println!("peak memory: {mib:.0} MiB resident (VmHWM)");
        }
    });
}
