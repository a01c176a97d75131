//! The floor under the harness: the costly operations the harness's flows need (TLS handshakes,
//! HTTP round trips, XML-signature RSA, RSA key transport), as counted by `koppeltest::census`,
//! done bare. Shared by the `flows` benchmark (one flow) and the `default_run` benchmark (the
//! README's whole default run); both interleave the floor's samples with the harness's.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use koppeltest::census::Census;
use koppeltest::pki::{Channel, Pki};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The floor server's name; a back-channel leaf like the simulated DVA's API host.
pub const FLOOR_HOST: &str = "api.floor.dva.koppeltest.test";
/// What the floor signs: about the size of a SAML message's canonical `ds:SignedInfo`.
const SIGNED_INFO: &[u8] = &[b'x'; 640];
/// The floor's answer to every request: about a FHIR Bundle of one patient's category.
const BODY: &[u8] = &[b'{'; 4096];
const REQUEST: &[u8] = b"GET /fhir/Observation HTTP/1.1\r\nhost: api.floor.dva.koppeltest.test\r\naccept: application/fhir+json\r\n\r\n";

/// The bare operations a flow needs, ready to repeat: one rustls server answering through hyper,
/// a client writing HTTP/1.1 over tokio-rustls, aws-lc-rs with keys loaded once.
pub struct Floor {
    addr: SocketAddr,
    plain: tokio_rustls::TlsConnector,
    mutual: tokio_rustls::TlsConnector,
    signer: RsaKeyPair,
    signature: Vec<u8>,
    decrypter: OaepPrivateDecryptingKey,
    encrypter: OaepPublicEncryptingKey,
    wrapped_key: Vec<u8>,
}

impl Floor {
    /// Starts the floor's server on a loopback port, with the test PKI's back-channel leaves and a
    /// SAML key of `pki`, and readies its clients and RSA keys.
    pub async fn start(pki: &Pki) -> Arc<Floor> {
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
        })
    }

    /// Does `work` bare: its XML-signature RSA, then `work.handshakes` full handshakes (the first
    /// `work.mutual_handshakes` with a client certificate; none resumed), its requests spread over
    /// them as evenly as they go. What counts as a handshake here is the caller's choice.
    pub async fn perform(self: Arc<Floor>, work: Census) {
        self.rsa(work);
        let Census {
            handshakes,
            mutual_handshakes,
            requests,
            ..
        } = work;
        assert!(
            handshakes > 0 || requests == 0,
            "{requests} requests and no connection to send them on"
        );
        for i in 0..handshakes {
            // The requests spread over the connections as evenly as they go.
            let here = requests / handshakes + u64::from(i < requests % handshakes);
            self.connection(i < mutual_handshakes, here).await;
        }
    }

    fn rsa(&self, work: Census) {
        let rng = SystemRandom::new();
        let mut sig = vec![0u8; self.signer.public_modulus_len()];
        for _ in 0..work.saml_signatures {
            self.signer
                .sign(&signature::RSA_PKCS1_SHA256, &rng, SIGNED_INFO, &mut sig)
                .expect("sign");
        }
        let public = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.signer.public_key().as_ref(),
        );
        for _ in 0..work.saml_verifications {
            public.verify(SIGNED_INFO, &self.signature).expect("verify");
        }
        let mut out = vec![0u8; self.encrypter.ciphertext_size()];
        for _ in 0..work.key_encryptions {
            self.encrypter
                .encrypt(&OAEP_SHA1_MGF1SHA1, &[7u8; 32], &mut out, None)
                .expect("encrypt");
        }
        let mut plain = vec![0u8; self.decrypter.min_output_size()];
        for _ in 0..work.key_decryptions {
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
