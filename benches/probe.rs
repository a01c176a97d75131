//! One hello-level TLS scan of a rustls server on loopback: how long it takes and how many
//! connections it opens.
//!
//! The server is koppeltest's own (`tls::serve` with a back-channel leaf), the options are the
//! defaults (16 connections at a time). `cargo bench --bench probe` prints the median scan time
//! of several samples, then the connection count, measured once through a counting TCP relay so
//! that the relay does not slow the timed samples. No timing is asserted anywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use koppeltest::pki::{Channel, Pki};
use koppeltest::probe::{self, ProbeOptions, ProbeTarget};
use koppeltest::tls_scan::TlsScan;
use tokio::net::{TcpListener, TcpStream};

const SAMPLES: usize = 9;
const HOST: &str = "api.x.koppeltest.test";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// A TCP relay to `upstream` that counts the connections it accepts.
async fn counting_relay(upstream: SocketAddr, count: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

async fn scan(addr: SocketAddr) -> TlsScan {
    let target = ProbeTarget {
        host: HOST.to_string(),
        addr,
    };
    probe::scan(&target, &ProbeOptions::default()).await
}

fn main() {
    koppeltest::tls::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pki = Pki::generate().expect("pki");
        let leaf = pki.leaf(Channel::Back, HOST).expect("leaf");
        let config = koppeltest::tls::server_config(&leaf, koppeltest::tls::ClientAuth::None)
            .expect("server config");
        let listener = koppeltest::tls::bind("127.0.0.1:0").await.expect("bind");
        let server = koppeltest::tls::serve(listener, config, axum::Router::new(), None);

        scan(server.addr).await; // warm-up
        let mut times = Vec::new();
        for _ in 0..SAMPLES {
            let started = Instant::now();
            let found = scan(server.addr).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(found.accepted_versions().len(), 2, "the scan must see TLS 1.2 and 1.3");
        }
        let (lo, hi) = (
            times.iter().cloned().fold(f64::MAX, f64::min),
            times.iter().cloned().fold(0.0, f64::max),
        );

        let count = Arc::new(AtomicUsize::new(0));
        let relay = counting_relay(server.addr, count.clone()).await;
        let found = scan(relay).await;
        let connections = count.load(Ordering::Relaxed);
        println!(
            "scan of one rustls host: median {:6.1} ms  (min {lo:.1}, max {hi:.1}; {SAMPLES} samples)",
            median(times)
        );
        println!(
            "probes: {connections} connections ({} versions, {} suites, {} groups, {} other); \
             accepted: {} versions, {} suites, {} groups",
            found.versions.len(),
            found.suites.len(),
            found.groups.len(),
            connections - found.versions.len() - found.suites.len() - found.groups.len(),
            found.accepted_versions().len(),
            found.accepted_suites().len(),
            found.accepted_groups().len(),
        );
    });
}
