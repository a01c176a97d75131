//! Legacy TLS for the simulated DVA's quirks that claim it: TLS 1.0 and 1.1, CBC-SHA and
//! static-RSA suites, SHA-1 signatures, negotiated for real on the endpoint's own port.
//!
//! rustls cannot speak any of that, by design, and a quirk that only pretended would test
//! nothing: a PGO's refusal of legacy TLS can be shown only by a server that offers it. So these
//! quirks, and nothing else, use OpenSSL through the `openssl` and `tokio-openssl` crates, at
//! security level 0 unless the profile's cipher list says otherwise. rustls stays the one TLS
//! stack everywhere else ([`crate::tls`]); this module builds no client and is no fallback.
//!
//! The accept loop is [`crate::tls`]'s own, so a legacy endpoint behaves like every other one:
//! the same handshake timeout, the client's certificate chain in each request's extensions
//! ([`PeerCertificates`](crate::tls::PeerCertificates)), refused handshakes reported to the
//! [`RefusalHook`] with OpenSSL's reason, and a [`Server`] that stops on drop.
//!
//! OpenSSL is the system's: building koppeltest needs its headers and pkg-config (Debian:
//! `libssl-dev`, `pkg-config`; `ci/deps.sh` installs them), running it needs the library
//! (`libssl3`).

use std::pin::Pin;

use axum::Router;
use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::ssl::{
    AlpnError, Ssl, SslAcceptor, SslMethod, SslOptions, SslRef, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

use crate::pki::Leaf;
use crate::tls::{ClientAuth, Handshake, RefusalHook, Server, error_chain};

/// A TLS protocol version the legacy listener can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LegacyVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl LegacyVersion {
    fn openssl(self) -> SslVersion {
        match self {
            LegacyVersion::Tls10 => SslVersion::TLS1,
            LegacyVersion::Tls11 => SslVersion::TLS1_1,
            LegacyVersion::Tls12 => SslVersion::TLS1_2,
            LegacyVersion::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// What the legacy listener negotiates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProfile {
    /// Lowest protocol version offered, e.g. TLS 1.0.
    pub min_version: LegacyVersion,
    /// Highest protocol version offered; TLS 1.3 is allowed, for a quirk that adds legacy
    /// versions below a modern one.
    pub max_version: LegacyVersion,
    /// OpenSSL cipher string for TLS 1.2 and below, e.g.
    /// `"ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:@SECLEVEL=0"`. The context starts at security
    /// level 0, so TLS 1.0/1.1 and SHA-1 work; an `@SECLEVEL=n` here raises it. TLS 1.3 suites
    /// are OpenSSL's defaults.
    pub cipher_list: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("build a legacy TLS server: the leaf has no certificate")]
    EmptyChain,
    #[error("read certificate {index} of the leaf's chain: {source}")]
    Certificate { index: usize, source: ErrorStack },
    #[error("read the leaf's private key: {0}")]
    Key(ErrorStack),
    #[error("read client-certificate root {index}: {source}")]
    Root { index: usize, source: ErrorStack },
    #[error("set the cipher list {list:?}: {source}")]
    Ciphers { list: String, source: ErrorStack },
    #[error("limit protocol versions to {min:?}..={max:?}: lowest is above highest")]
    Versions {
        min: LegacyVersion,
        max: LegacyVersion,
    },
    #[error("build OpenSSL server context: {0}")]
    Context(#[from] ErrorStack),
}

/// A certificate the test PKI's own generator (rcgen on aws-lc-rs) cannot make, because no
/// modern library will: made here, with OpenSSL, for the judge's key and hash rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeakCertificate {
    /// An RSA-1024 key (NCSC: insufficient), signed with SHA-256.
    Rsa1024,
    /// An RSA-3072 key, but signed with SHA-1 (NCSC: insufficient).
    Sha1Signed,
}

/// A leaf for `host` of the `weak` kind, issued by the CA whose certificate and PKCS#8 key are
/// given (DER), with the back channel's EKU (serverAuth, clientAuth). Returns the certificate's
/// DER and the leaf's PKCS#8 private key, PEM.
pub fn weak_certificate(
    weak: WeakCertificate,
    host: &str,
    issuer_cert_der: &[u8],
    issuer_key_pkcs8: &[u8],
) -> Result<(Vec<u8>, String), ErrorStack> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    };
    use openssl::x509::{X509Builder, X509NameBuilder};

    let issuer = X509::from_der(issuer_cert_der)?;
    let issuer_key = PKey::private_key_from_pkcs8(issuer_key_pkcs8)?;
    let (bits, digest) = match weak {
        WeakCertificate::Rsa1024 => (1024, MessageDigest::sha256()),
        WeakCertificate::Sha1Signed => (3072, MessageDigest::sha1()),
    };
    let key = PKey::from_rsa(Rsa::generate(bits)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("C", "NL")?;
    name.append_entry_by_text("O", "koppeltest (TEST ONLY)")?;
    name.append_entry_by_text("CN", host)?;
    let name = name.build();
    let mut cert = X509Builder::new()?;
    cert.set_version(2)?;
    let serial = BigNum::from_u32(rand_serial())?.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(issuer.subject_name())?;
    cert.set_pubkey(&key)?;
    cert.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    cert.set_not_after(Asn1Time::days_from_now(365)?.as_ref())?;
    cert.append_extension(BasicConstraints::new().build()?)?;
    cert.append_extension(
        KeyUsage::new()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    cert.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()?,
    )?;
    let san = SubjectAlternativeName::new()
        .dns(host)
        .build(&cert.x509v3_context(Some(&issuer), None))?;
    cert.append_extension(san)?;
    cert.sign(&issuer_key, digest)?;
    let key_pem = String::from_utf8_lossy(&key.private_key_to_pem_pkcs8()?).into_owned();
    Ok((cert.build().to_der()?, key_pem))
}

/// A serial number that differs between certificates made in one run.
fn rand_serial() -> u32 {
    let mut bytes = [0u8; 4];
    // A failing RNG leaves a fixed serial: harmless for a test certificate.
    let _ = openssl::rand::rand_bytes(&mut bytes);
    u32::from_be_bytes(bytes) >> 1
}

/// Protocols offered by ALPN, in OpenSSL's wire format; the same two as `tls::server_config`.
const ALPN: &[u8] = b"\x02h2\x08http/1.1";

/// An OpenSSL server for `leaf` that negotiates what `profile` allows and asks for client
/// certificates as `client_auth` says.
pub fn server(
    leaf: &Leaf,
    client_auth: ClientAuth,
    profile: &LegacyProfile,
) -> Result<SslAcceptor, LegacyError> {
    if profile.min_version > profile.max_version {
        return Err(LegacyError::Versions {
            min: profile.min_version,
            max: profile.max_version,
        });
    }
    let mut chain = leaf.chain.iter().enumerate().map(|(index, der)| {
        X509::from_der(der).map_err(|source| LegacyError::Certificate { index, source })
    });
    let cert = chain.next().ok_or(LegacyError::EmptyChain)??;
    let key = PKey::private_key_from_pkcs8(leaf.key().secret_der()).map_err(LegacyError::Key)?;

    // Mozilla's intermediate set-up for the rest (curves, DH parameters, TLS 1.3 suites); its
    // floor of TLS 1.2 is lifted and its cipher list replaced.
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    builder.clear_options(SslOptions::NO_TLSV1 | SslOptions::NO_TLSV1_1);
    builder.set_min_proto_version(Some(profile.min_version.openssl()))?;
    builder.set_max_proto_version(Some(profile.max_version.openssl()))?;
    builder.set_security_level(0);
    builder
        .set_cipher_list(&profile.cipher_list)
        .map_err(|source| LegacyError::Ciphers {
            list: profile.cipher_list.clone(),
            source,
        })?;

    builder.set_certificate(&cert)?;
    for intermediate in chain {
        builder.add_extra_chain_cert(intermediate?)?;
    }
    builder.set_private_key(&key)?;
    builder.check_private_key()?;
    builder.set_alpn_select_callback(|_, offered| {
        openssl::ssl::select_next_proto(ALPN, offered).ok_or(AlpnError::NOACK)
    });

    let roots = match client_auth {
        ClientAuth::None => {
            builder.set_verify(SslVerifyMode::NONE);
            Vec::new()
        }
        ClientAuth::Required(roots) => {
            builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
            roots
        }
        ClientAuth::Optional(roots) => {
            builder.set_verify(SslVerifyMode::PEER);
            roots
        }
        ClientAuth::AnyCa => {
            // Any certificate passes verification; the handshake still proves the key.
            builder.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
            Vec::new()
        }
    };
    for (index, der) in roots.iter().enumerate() {
        let root = X509::from_der(der).map_err(|source| LegacyError::Root { index, source })?;
        // Named in the CertificateRequest too, as rustls does with its roots.
        builder.add_client_ca(&root)?;
        builder.cert_store_mut().add_cert(root)?;
    }
    Ok(builder.build())
}

/// Serves `router` over the legacy TLS of `acceptor` on `listener` until the returned
/// [`Server`] is dropped; the accept loop of [`crate::tls::serve`].
pub fn serve(
    listener: TcpListener,
    acceptor: SslAcceptor,
    router: Router,
    on_refused: Option<RefusalHook>,
) -> Server {
    crate::tls::serve_with(listener, acceptor, router, on_refused)
}

impl Handshake for SslAcceptor {
    type Stream = SslStream<TcpStream>;

    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<(Self::Stream, Vec<CertificateDer<'static>>), String> {
        let ssl = Ssl::new(self.context()).map_err(|e| error_chain(&e))?;
        let mut stream = SslStream::new(ssl, tcp).map_err(|e| error_chain(&e))?;
        Pin::new(&mut stream)
            .accept()
            .await
            .map_err(|e| error_chain(&e))?;
        let peer = presented_chain(stream.ssl());
        Ok((stream, peer))
    }
}

/// The chain the client sent, leaf first, as rustls reports it.
fn presented_chain(ssl: &SslRef) -> Vec<CertificateDer<'static>> {
    // On the server side OpenSSL keeps the client's leaf apart from the rest of what it sent.
    let Some(leaf) = ssl.peer_certificate() else {
        return Vec::new();
    };
    let rest = ssl.peer_cert_chain().into_iter().flatten();
    std::iter::once(leaf.as_ref())
        .chain(rest)
        // Re-encoding a certificate OpenSSL has just parsed does not fail.
        .filter_map(|cert| cert.to_der().ok())
        .map(CertificateDer::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Extension;
    use axum::routing::get;
    use openssl::ssl::SslConnector;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::pki::{Channel, Pki};
    use crate::tls::PeerCertificates;

    /// What a client saw of one exchange.
    #[derive(Debug)]
    struct Seen {
        version: &'static str,
        cipher: String,
        alpn: Option<Vec<u8>>,
        status_line: String,
        body: String,
    }

    fn rsa_leaf() -> Leaf {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["legacy.koppeltest.test".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        Leaf::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
    }

    fn profile(min: LegacyVersion, max: LegacyVersion, ciphers: &str) -> LegacyProfile {
        LegacyProfile {
            min_version: min,
            max_version: max,
            cipher_list: ciphers.to_string(),
        }
    }

    fn router() -> Router {
        Router::new().route("/", get(|| async { "ok" })).route(
            "/peer",
            get(|Extension(peer): Extension<PeerCertificates>| async move {
                format!("{} {}", peer.0.len(), peer.dns_names().join(","))
            }),
        )
    }

    /// A client pinned to `version`, verifying nothing, presenting `identity` if given.
    fn client(version: SslVersion, ciphers: &str, identity: Option<&Leaf>) -> SslConnector {
        let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
        builder.set_verify(SslVerifyMode::NONE);
        builder.set_security_level(0);
        builder.set_min_proto_version(Some(version)).unwrap();
        builder.set_max_proto_version(Some(version)).unwrap();
        builder.set_cipher_list(ciphers).unwrap();
        builder.set_alpn_protos(b"\x08http/1.1").unwrap();
        if let Some(leaf) = identity {
            let mut chain = leaf.chain.iter().map(|c| X509::from_der(c).unwrap());
            builder.set_certificate(&chain.next().unwrap()).unwrap();
            for intermediate in chain {
                builder.add_extra_chain_cert(intermediate).unwrap();
            }
            let key = PKey::private_key_from_pkcs8(leaf.key().secret_der()).unwrap();
            builder.set_private_key(&key).unwrap();
        }
        builder.build()
    }

    /// `GET path` over a fresh connection; `Err` carries where it broke off.
    async fn get_over(
        addr: SocketAddr,
        connector: &SslConnector,
        path: &str,
    ) -> Result<Seen, String> {
        let exchange = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let ssl = connector
                .configure()
                .map_err(|e| e.to_string())?
                .verify_hostname(false)
                .into_ssl("legacy.koppeltest.test")
                .map_err(|e| e.to_string())?;
            let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
            Pin::new(&mut stream)
                .connect()
                .await
                .map_err(|e| format!("handshake: {}", error_chain(&e)))?;
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: legacy.koppeltest.test\r\nConnection: close\r\n\r\n"
            );
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut response = Vec::new();
            stream
                .read_to_end(&mut response)
                .await
                .map_err(|e| format!("read: {e}"))?;
            let response = String::from_utf8_lossy(&response).into_owned();
            let (head, body) = response.split_once("\r\n\r\n").ok_or("no end of head")?;
            Ok(Seen {
                version: stream.ssl().version_str(),
                cipher: stream
                    .ssl()
                    .current_cipher()
                    .map(|c| c.name().to_string())
                    .unwrap_or_default(),
                alpn: stream.ssl().selected_alpn_protocol().map(<[u8]>::to_vec),
                status_line: head.lines().next().unwrap_or_default().to_string(),
                body: body.to_string(),
            })
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    fn recording_hook() -> (RefusalHook, Arc<Mutex<Vec<String>>>) {
        let refused = Arc::new(Mutex::new(Vec::new()));
        let sink = refused.clone();
        let hook: RefusalHook = Arc::new(move |reason| sink.lock().unwrap().push(reason));
        (hook, refused)
    }

    #[tokio::test]
    async fn tls_1_0_with_a_static_rsa_cbc_suite_is_negotiated_for_real() {
        let profile = profile(
            LegacyVersion::Tls10,
            LegacyVersion::Tls12,
            "AES128-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0",
        );
        let acceptor = server(&rsa_leaf(), ClientAuth::None, &profile).unwrap();
        let server = serve(
            crate::tls::bind("127.0.0.1:0").await.unwrap(),
            acceptor,
            router(),
            None,
        );
        let client = client(SslVersion::TLS1, "AES128-SHA:@SECLEVEL=0", None);

        let seen = get_over(server.addr, &client, "/").await.unwrap();

        assert_eq!(seen.version, "TLSv1");
        assert_eq!(seen.cipher, "AES128-SHA");
        assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(seen.status_line, "HTTP/1.1 200 OK");
        assert_eq!(seen.body, "ok");
    }

    #[tokio::test]
    async fn a_version_outside_the_profile_is_refused() {
        let profile = profile(
            LegacyVersion::Tls11,
            LegacyVersion::Tls12,
            "AES128-SHA:@SECLEVEL=0",
        );
        let acceptor = server(&rsa_leaf(), ClientAuth::None, &profile).unwrap();
        let (hook, refused) = recording_hook();
        let server = serve(
            crate::tls::bind("127.0.0.1:0").await.unwrap(),
            acceptor,
            router(),
            Some(hook),
        );
        let client = client(SslVersion::TLS1, "AES128-SHA:@SECLEVEL=0", None);

        let result = get_over(server.addr, &client, "/").await;
        server.shutdown(Duration::from_secs(5)).await;

        assert!(result.unwrap_err().starts_with("handshake:"));
        let refused = refused.lock().unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("unsupported protocol"), "{refused:?}");
    }

    #[tokio::test]
    async fn required_client_certificates_are_enforced_and_reach_the_handler() {
        let pki = Pki::generate().unwrap();
        let dva = pki.leaf(Channel::Back, "legacy.koppeltest.test").unwrap();
        let pgo = pki.leaf(Channel::Back, "pgo.koppeltest.test").unwrap();
        let stranger = Pki::generate()
            .unwrap()
            .leaf(Channel::Back, "pgo.koppeltest.test")
            .unwrap();
        let profile = profile(
            LegacyVersion::Tls10,
            LegacyVersion::Tls12,
            "ECDHE-RSA-AES128-SHA:@SECLEVEL=0",
        );
        let acceptor = server(
            &dva,
            ClientAuth::Required(pki.roots(Channel::Back)),
            &profile,
        )
        .unwrap();
        let (hook, refused) = recording_hook();
        let server = serve(
            crate::tls::bind("127.0.0.1:0").await.unwrap(),
            acceptor,
            router(),
            Some(hook),
        );
        let ciphers = "ECDHE-RSA-AES128-SHA:@SECLEVEL=0";

        let with = get_over(
            server.addr,
            &client(SslVersion::TLS1, ciphers, Some(&pgo)),
            "/peer",
        )
        .await
        .unwrap();
        let without = get_over(server.addr, &client(SslVersion::TLS1, ciphers, None), "/").await;
        let foreign = get_over(
            server.addr,
            &client(SslVersion::TLS1, ciphers, Some(&stranger)),
            "/",
        )
        .await;
        server.shutdown(Duration::from_secs(5)).await;

        assert_eq!(with.version, "TLSv1");
        assert_eq!(with.status_line, "HTTP/1.1 200 OK");
        // The leaf and the services CA the client sent; the root it chains to is not sent.
        assert_eq!(with.body, "2 pgo.koppeltest.test");
        assert!(without.is_err(), "{without:?}");
        assert!(foreign.is_err(), "{foreign:?}");
        let refused = refused.lock().unwrap();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused
                .iter()
                .all(|r| r.starts_with("TLS handshake refused: ")),
            "{refused:?}"
        );
        assert!(
            refused
                .iter()
                .any(|r| r.contains("peer did not return a certificate")),
            "{refused:?}"
        );
        assert!(
            refused
                .iter()
                .any(|r| r.contains("certificate verify failed")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn optional_client_certificates_let_a_client_without_one_through() {
        let pki = Pki::generate().unwrap();
        let dva = pki.leaf(Channel::Back, "legacy.koppeltest.test").unwrap();
        let profile = profile(
            LegacyVersion::Tls12,
            LegacyVersion::Tls12,
            "ECDHE-RSA-AES128-GCM-SHA256",
        );
        let acceptor = server(
            &dva,
            ClientAuth::Optional(pki.roots(Channel::Back)),
            &profile,
        )
        .unwrap();
        let server = serve(
            crate::tls::bind("127.0.0.1:0").await.unwrap(),
            acceptor,
            router(),
            None,
        );

        let seen = get_over(
            server.addr,
            &client(SslVersion::TLS1_2, "ECDHE-RSA-AES128-GCM-SHA256", None),
            "/peer",
        )
        .await
        .unwrap();

        assert_eq!(seen.version, "TLSv1.2");
        assert_eq!(seen.body, "0 ");
    }

    #[test]
    fn a_bad_profile_is_an_error_not_a_panic() {
        let leaf = rsa_leaf();
        let unknown = profile(LegacyVersion::Tls10, LegacyVersion::Tls12, "NO-SUCH-SUITE");
        let upside_down = profile(LegacyVersion::Tls12, LegacyVersion::Tls10, "AES128-SHA");

        let Err(unknown) = server(&leaf, ClientAuth::None, &unknown) else {
            panic!("an unknown cipher suite was accepted");
        };
        let Err(upside_down) = server(&leaf, ClientAuth::None, &upside_down) else {
            panic!("a lowest version above the highest was accepted");
        };

        assert!(
            matches!(&unknown, LegacyError::Ciphers { list, .. } if list == "NO-SUCH-SUITE"),
            "{unknown}"
        );
        assert!(
            matches!(upside_down, LegacyError::Versions { .. }),
            "{upside_down}"
        );
    }
}
