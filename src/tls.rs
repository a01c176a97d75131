//! TLS for every party: rustls server and client configurations, the accept loop that hands the
//! client certificate to the HTTP layer, and the HTTP client koppeltest's parties use.
//!
//! Every server is an axum `Router` behind [`serve`]: `TcpListener` → `tokio_rustls` →
//! `hyper_util`'s auto connection builder. Doing the accept loop ourselves (instead of
//! `axum::serve`) gives two things a conformance harness needs: the verified client certificate
//! chain in each request's extensions ([`PeerCertificates`]), and a record of every handshake that
//! was refused.
//!
//! Protocol versions are TLS 1.3 and 1.2 (MedMij: 1.2 must, 1.3 where possible) with rustls'
//! default suites, all of which are on NCSC's "good" list (ECDHE with AES-GCM or
//! CHACHA20-POLY1305). There is one crypto provider, aws-lc-rs.
//!
//! Deliberately weak TLS for the simulated DVA's quirks: [`ClientAuth::AnyCa`] (a verifier that
//! accepts any client certificate) and [`Versions::Tls13Only`] here, because rustls can do them;
//! legacy protocol versions and suites, which rustls cannot speak, through OpenSSL in
//! `legacy_tls`, over the same accept loop ([`serve`] is one instance of it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::pki::Leaf;

/// Host name → loopback socket, so real-looking MedMij host names reach local servers.
pub type HostMap = BTreeMap<String, SocketAddr>;

/// A handshake that takes longer than this is dropped (slow-loris protection).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(crate::limits::HANDSHAKE_TIMEOUT_S);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("build TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("build client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("build HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Installs aws-lc-rs as the process-wide rustls provider. Idempotent.
pub fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is what we want anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Whether and how a server asks for client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Front channel: no client certificate.
    None,
    /// Back channel: a certificate chaining to these roots is required in the handshake.
    Required(Vec<CertificateDer<'static>>),
    /// Verified if offered, but the decision is left to the HTTP layer.
    Optional(Vec<CertificateDer<'static>>),
    /// A quirk: any certificate is accepted, from any CA, expired or not yet valid; only the
    /// handshake signature is checked, so the client still proves it holds the key.
    AnyCa,
}

/// Protocol versions a server speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.3 and 1.2.
    #[default]
    Default,
    /// A quirk: TLS 1.3 only.
    Tls13Only,
}

/// The client-certificate verifier of [`ClientAuth::AnyCa`].
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    /// Whether one is required at all is the HTTP layer's decision, as on the conformant DVA.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    Ok(store)
}

/// `leaf`'s chain and key loaded for rustls: once per leaf, however many servers and clients
/// present it. Loading checks that the key belongs to the certificate, as `with_single_cert`
/// does; each load also costs a key validation and a fresh RSA blinding, which per scenario
/// added up to a tenth of the default run.
pub fn certified_key(leaf: &Leaf) -> Result<Arc<CertifiedKey>, TlsError> {
    if let Some(key) = leaf.certified.get() {
        return Ok(key.clone());
    }
    let key = Arc::new(CertifiedKey::from_der(
        leaf.chain.clone(),
        leaf.key(),
        &provider(),
    )?);
    Ok(leaf.certified.get_or_init(|| key).clone())
}

/// A server configuration for `leaf`.
pub fn server_config(leaf: &Leaf, auth: ClientAuth) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(leaf, auth, Versions::Default)
}

/// A server configuration for `leaf` speaking `versions`.
pub fn server_config_with(
    leaf: &Leaf,
    auth: ClientAuth,
    versions: Versions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider());
    let builder = match versions {
        Versions::Default => builder.with_safe_default_protocol_versions()?,
        Versions::Tls13Only => builder.with_protocol_versions(&[&rustls::version::TLS13])?,
    };
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(&roots)?), provider())
                .build()?,
        ),
        ClientAuth::Optional(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(&roots)?), provider())
                .allow_unauthenticated()
                .build()?,
        ),
        ClientAuth::AnyCa => builder.with_client_cert_verifier(Arc::new(AnyClientCert(provider()))),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key(leaf)?)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration trusting `roots`, presenting `identity` if given.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    identity: Option<&Leaf>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(roots)?);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key(leaf)?))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration that accepts any server certificate, keeping the client identity:
/// only for the mock PGO's `certificate-unchecked` fault, which must really skip the check it
/// is named for.
pub fn client_config_unchecked(identity: Option<&Leaf>) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(RecordingVerifier {
        provider: provider.clone(),
        seen: std::sync::Mutex::default(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key(leaf)?))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Options for [`http_client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub cookies: Option<Arc<reqwest::cookie::Jar>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            cookies: None,
        }
    }
}

/// An HTTP client that never follows redirects (the caller records each hop), resolves the
/// names in `hosts` to loopback and speaks TLS with `tls`.
pub fn http_client(
    tls: ClientConfig,
    hosts: &HostMap,
    options: ClientOptions,
) -> Result<reqwest::Client, TlsError> {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(options.timeout)
        .user_agent(concat!("koppeltest/", env!("CARGO_PKG_VERSION")));
    if let Some(jar) = options.cookies {
        builder = builder.cookie_provider(jar);
    }
    for (host, addr) in hosts {
        builder = builder.resolve(host, *addr);
    }
    Ok(builder.build()?)
}

/// Reads a response body, refusing more than `max` bytes (a hostile peer cannot exhaust memory).
pub async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > max {
            return Err(format!(
                "response body larger than the limit of {max} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with all its sources, for evidence ("error sending request: … : received fatal
/// alert: CertificateRequired").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The client certificate chain the TLS layer verified, as a request extension.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

impl PeerCertificates {
    /// DNS names in the leaf certificate's subjectAltName.
    pub fn dns_names(&self) -> Vec<String> {
        let Some(leaf) = self.0.first() else {
            return Vec::new();
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
            return Vec::new();
        };
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The leaf as evidence: subject, DNS names and SHA-256 fingerprint (`None` without one).
    pub fn presented(&self) -> Option<crate::exchange::PresentedCertificate> {
        let leaf = self.0.first()?;
        let subject = x509_parser::parse_x509_certificate(leaf)
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf);
        Some(crate::exchange::PresentedCertificate {
            subject,
            dns_names: self.dns_names(),
            sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// Callback for handshakes the server refused (evidence for client-certificate checks).
pub type RefusalHook = Arc<dyn Fn(String) + Send + Sync>;

/// A running server; dropping it stops the accept loop and every open connection.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    stop: Arc<tokio::sync::Notify>,
}

impl Server {
    /// Stops accepting and waits up to `grace` for the open connections to end, so that what
    /// they were about to record (a refused handshake, say) is in the log before it is read.
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        self.stop.notify_one();
        let _ = tokio::time::timeout(grace, &mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` (use port 0 for an ephemeral port).
pub async fn bind(addr: &str) -> Result<TcpListener, TlsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| TlsError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Serves `router` over TLS on `listener` until the returned [`Server`] is dropped.
pub fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    on_refused: Option<RefusalHook>,
) -> Server {
    serve_with(
        listener,
        tokio_rustls::TlsAcceptor::from(tls),
        router,
        on_refused,
    )
}

/// The server side of one TLS implementation, as the accept loop drives it: rustls for every
/// party, OpenSSL (`legacy_tls`) for the quirks that must negotiate TLS rustls cannot speak.
pub(crate) trait Handshake: Clone + Send + Sync + 'static {
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;

    /// Runs the server handshake on `tcp`. On success, the stream and the certificate chain the
    /// client presented (leaf first; empty without one); on failure, the reason as text, for the
    /// refusal hook.
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> impl Future<Output = Result<(Self::Stream, Vec<CertificateDer<'static>>), String>> + Send;
}

impl Handshake for tokio_rustls::TlsAcceptor {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;

    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<(Self::Stream, Vec<CertificateDer<'static>>), String> {
        let stream = self.accept(tcp).await.map_err(|e| error_chain(&e))?;
        let conn = stream.get_ref().1;
        let peer: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        // A resumed session brings back the client's chain without a new signature: not mutual.
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        crate::census::handshake(!peer.is_empty() && !resumed, resumed);
        Ok((stream, peer))
    }
}

/// The accept loop behind [`serve`] and `legacy_tls::serve`, whichever TLS implementation runs
/// the handshakes.
pub(crate) fn serve_with<H: Handshake>(
    listener: TcpListener,
    acceptor: H,
    router: Router,
    on_refused: Option<RefusalHook>,
) -> Server {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        // Connections live in this set, so aborting the accept loop drops them all.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stopped.notified() => {
                    while connections.join_next().await.is_some() {}
                    return;
                }
            };
            let Ok((stream, _peer)) = accepted else {
                continue;
            };
            // Small request/response exchanges stall on Nagle + delayed ACK otherwise.
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let router = router.clone();
            let on_refused = on_refused.clone();
            connections.spawn(async move {
                let (tls_stream, peer) =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.handshake(stream)).await
                    {
                        Ok(Ok(accepted)) => accepted,
                        Ok(Err(reason)) => {
                            if let Some(hook) = on_refused {
                                hook(format!("TLS handshake refused: {reason}"));
                            }
                            return;
                        }
                        Err(_) => {
                            if let Some(hook) = on_refused {
                                hook("TLS handshake timed out".to_string());
                            }
                            return;
                        }
                    };
                let svc = router.layer(axum::Extension(PeerCertificates(Arc::new(peer))));
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                let svc = hyper::service::service_fn(move |request| {
                    crate::census::request();
                    hyper::service::Service::call(&svc, request)
                });
                let io = hyper_util::rt::TokioIo::new(tls_stream);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(io, svc)
                .await;
            });
        }
    });
    Server { addr, task, stop }
}

/// The server certificate verifier of [`presented_chain`]: it trusts everything and keeps what
/// it was shown, so the judge can look at a chain however broken it is.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.to_vec())
            .collect();
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate chain (DER, leaf first) a server at `addr` presents for `host`, taken from
/// one handshake whose outcome does not matter: a back-channel server that then asks for a
/// client certificate has shown its chain already.
pub async fn presented_chain(
    addr: SocketAddr,
    host: &str,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let provider = provider();
    let verifier = Arc::new(RecordingVerifier {
        provider: provider.clone(),
        seen: std::sync::Mutex::default(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host} is not a server name: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        connector
            .connect(name, tcp)
            .await
            .map(drop)
            .map_err(|e| format!("handshake: {}", error_chain(&e)))
    };
    let outcome = tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|_| Err(format!("no handshake within {} ms", timeout.as_millis())));
    let seen = std::mem::take(&mut *verifier.seen.lock().unwrap_or_else(|e| e.into_inner()));
    match (seen.is_empty(), outcome) {
        (false, _) => Ok(seen),
        (true, Err(e)) => Err(e),
        (true, Ok(())) => Err("the handshake completed without a certificate".into()),
    }
}
