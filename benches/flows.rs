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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use koppeltest::census::Census;
use koppeltest::outcome::Outcome;
use koppeltest::pki::{Channel, Pki};
use koppeltest::runner::{self, Prepared};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SAMPLES: usize = 7;
const FLOWS_PER_SAMPLE: usize = 48;

/// The floor server's name; a back-channel leaf like the simulated DVA's API host.
const FLOOR_HOST: &str = "api.floor.dva.koppeltest.test";
/// What the floor signs: about the size of a SAML message's canonical `ds:SignedInfo`.
const SIGNED_INFO: &[u8] = &[b'x'; 640];
/// The floor's answer to every request: about a FHIR Bundle of one patient's category.
const BODY: &[u8] = &[b'{'; 4096];
const REQUEST: &[u8] = b"GET /fhir/Observation HTTP/1.1\r\nhost: api.floor.dva.koppeltest.test\r\naccept: application/fhir+json\r\n\r\n";

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

/// The bare operations of one flow, ready to repeat.
struct Floor {
    addr: SocketAddr,
    plain: tokio_rustls::TlsConnector,
    mutual: tokio_rustls::TlsConnector,
    signer: RsaKeyPair,
    signature: Vec<u8>,
    decrypter: OaepPrivateDecryptingKey,
    encrypter: OaepPublicEncryptingKey,
    wrapped_key: Vec<u8>,
    work: Census,
}

impl Floor {
    async fn start(pki: &Pki, work: Census) -> Arc<Floor> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for root in pki.roots(Channel::Back) {
            roots.add(root).expect("root");
        }
        let roots = Arc::new(roots);
        let server_leaf = pki.leaf(Channel::Back, FLOOR_HOST).expect("floor leaf");
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .allow_unauthenticated()
            .build()
            .expect("client verifier");
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(server_leaf.chain.clone(), server_leaf.key())
            .expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, Arc::new(server)));

        let client = |identity: Option<&koppeltest::pki::Leaf>| {
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots.clone());
            let mut config = match identity {
                Some(leaf) => builder
                    .with_client_auth_cert(leaf.chain.clone(), leaf.key())
                    .expect("client identity"),
                None => builder.with_no_client_auth(),
            };
            config.resumption = rustls::client::Resumption::disabled();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        };
        let pgo = pki
            .leaf(Channel::Back, "medmij.pgo-alfa.koppeltest.test")
            .expect("client leaf");

        let saml = pki.saml_key("tvs-signing").expect("saml key");
        let signer = RsaKeyPair::from_pkcs8(&saml.pkcs8).expect("signing key");
        let mut signature = vec![0u8; signer.public_modulus_len()];
        signer
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                SIGNED_INFO,
                &mut signature,
            )
            .expect("sign");
        let private = PrivateDecryptingKey::from_pkcs8(&saml.pkcs8).expect("decryption key");
        let encrypter = OaepPublicEncryptingKey::new(private.public_key()).expect("oaep public");
        let decrypter = OaepPrivateDecryptingKey::new(private).expect("oaep private");
        let mut wrapped_key = vec![0u8; encrypter.ciphertext_size()];
        encrypter
            .encrypt(&OAEP_SHA1_MGF1SHA1, &[7u8; 32], &mut wrapped_key, None)
            .expect("encrypt");
        Arc::new(Floor {
            addr,
            plain: client(None),
            mutual: client(Some(&pgo)),
            signer,
            signature,
            decrypter,
            encrypter,
            wrapped_key,
            work,
        })
    }

    async fn flow(self: Arc<Floor>) {
        self.rsa();
        let Census {
            handshakes,
            mutual_handshakes,
            requests,
            ..
        } = self.work;
        for i in 0..handshakes {
            // The requests spread over the connections as evenly as they go.
            let here = requests / handshakes + u64::from(i < requests % handshakes);
            self.connection(i < mutual_handshakes, here).await;
        }
    }

    fn rsa(&self) {
        let rng = SystemRandom::new();
        let mut sig = vec![0u8; self.signer.public_modulus_len()];
        for _ in 0..self.work.saml_signatures {
            self.signer
                .sign(&signature::RSA_PKCS1_SHA256, &rng, SIGNED_INFO, &mut sig)
                .expect("sign");
        }
        let public = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.signer.public_key().as_ref(),
        );
        for _ in 0..self.work.saml_verifications {
            public.verify(SIGNED_INFO, &self.signature).expect("verify");
        }
        let mut out = vec![0u8; self.encrypter.ciphertext_size()];
        for _ in 0..self.work.key_encryptions {
            self.encrypter
                .encrypt(&OAEP_SHA1_MGF1SHA1, &[7u8; 32], &mut out, None)
                .expect("encrypt");
        }
        let mut plain = vec![0u8; self.decrypter.min_output_size()];
        for _ in 0..self.work.key_decryptions {
            self.decrypter
                .decrypt(&OAEP_SHA1_MGF1SHA1, &self.wrapped_key, &mut plain, None)
                .expect("decrypt");
        }
    }

    /// One connection: a full handshake, then `requests` round trips.
    async fn connection(&self, mutual: bool, requests: u64) {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let connector = if mutual { &self.mutual } else { &self.plain };
        let name = ServerName::try_from(FLOOR_HOST).expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        let mut buffer = Vec::with_capacity(8192);
        for _ in 0..requests {
            tls.write_all(REQUEST).await.expect("request");
            read_response(&mut tls, &mut buffer).await;
        }
        let _ = tls.shutdown().await;
    }
}

/// Reads one HTTP/1.1 response with a `content-length` from `stream`.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) {
    buffer.clear();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if buffer.len() >= end + 4 + length {
                assert!(head.starts_with("http/1.1 200"), "floor answered {head}");
                return;
            }
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "floor server closed the connection mid-response");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

async fn serve(listener: TcpListener, config: Arc<ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(axum::body::Body::from(
                    BODY,
                )))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        });
    }
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
        let floor = Floor::start(&prepared.pki, work).await;
        sample(8, || floor.clone().flow()).await;
        for concurrency in [1, 8] {
            let (mut harness, mut bare) = (Vec::new(), Vec::new());
            for _ in 0..SAMPLES {
                harness.push(sample(concurrency, || harness_flow(prepared.clone())).await);
                bare.push(sample(concurrency, || floor.clone().flow()).await);
            }
            let range = |xs: &[f64]| {
                (
                    xs.iter().cloned().fold(f64::MAX, f64::min),
                    xs.iter().cloned().fold(0.0, f64::max),
                )
            };
            let ((hlo, hhi), (flo, fhi)) = (range(&harness), range(&bare));
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
