//! Counts of the costly operations the simulated parties perform: TLS handshakes (rustls), HTTP
//! requests served, SAML signatures and verifications, RSA key transport. The flow benchmark
//! (`benches/flows.rs`) reads them around one flow to learn what a flow needs, then times the
//! same operations without the harness around them: the floor the harness is measured against.
//! The default-run benchmark (`benches/default_run.rs`) does the same around the whole default
//! run.
//!
//! Process-wide relaxed counters: a few nanoseconds per operation that costs a millisecond.

use std::sync::atomic::{AtomicU64, Ordering};

static HANDSHAKES: AtomicU64 = AtomicU64::new(0);
static MUTUAL_HANDSHAKES: AtomicU64 = AtomicU64::new(0);
static RESUMED_HANDSHAKES: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static SAML_SIGNATURES: AtomicU64 = AtomicU64::new(0);
static SAML_VERIFICATIONS: AtomicU64 = AtomicU64::new(0);
static KEY_ENCRYPTIONS: AtomicU64 = AtomicU64::new(0);
static KEY_DECRYPTIONS: AtomicU64 = AtomicU64::new(0);

/// The counters at one moment, or the difference between two moments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Server-side TLS handshakes completed by a rustls server of a simulated party.
    pub handshakes: u64,
    /// Of those, full handshakes in which the client signed with a certificate's key.
    pub mutual_handshakes: u64,
    /// Of those, handshakes that resumed an earlier session (no certificate signature).
    pub resumed_handshakes: u64,
    /// HTTP requests those servers answered.
    pub requests: u64,
    /// XML signatures made (RSA, any digest).
    pub saml_signatures: u64,
    /// RSA signature verifications tried on XML signatures.
    pub saml_verifications: u64,
    /// RSA encryptions of an XML-Enc content key.
    pub key_encryptions: u64,
    /// RSA decryptions of an XML-Enc content key.
    pub key_decryptions: u64,
}

impl Census {
    /// The counters now.
    pub fn now() -> Census {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Census {
            handshakes: read(&HANDSHAKES),
            mutual_handshakes: read(&MUTUAL_HANDSHAKES),
            resumed_handshakes: read(&RESUMED_HANDSHAKES),
            requests: read(&REQUESTS),
            saml_signatures: read(&SAML_SIGNATURES),
            saml_verifications: read(&SAML_VERIFICATIONS),
            key_encryptions: read(&KEY_ENCRYPTIONS),
            key_decryptions: read(&KEY_DECRYPTIONS),
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: Census) -> Census {
        Census {
            handshakes: self.handshakes - earlier.handshakes,
            mutual_handshakes: self.mutual_handshakes - earlier.mutual_handshakes,
            resumed_handshakes: self.resumed_handshakes - earlier.resumed_handshakes,
            requests: self.requests - earlier.requests,
            saml_signatures: self.saml_signatures - earlier.saml_signatures,
            saml_verifications: self.saml_verifications - earlier.saml_verifications,
            key_encryptions: self.key_encryptions - earlier.key_encryptions,
            key_decryptions: self.key_decryptions - earlier.key_decryptions,
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn handshake(mutual: bool, resumed: bool) {
    bump(&HANDSHAKES);
    if mutual {
        bump(&MUTUAL_HANDSHAKES);
    }
    if resumed {
        bump(&RESUMED_HANDSHAKES);
    }
}

pub(crate) fn request() {
    bump(&REQUESTS);
}

pub(crate) fn saml_signature() {
    bump(&SAML_SIGNATURES);
}

pub(crate) fn saml_verification() {
    bump(&SAML_VERIFICATIONS);
}

pub(crate) fn key_encryption() {
    bump(&KEY_ENCRYPTIONS);
}

pub(crate) fn key_decryption() {
    bump(&KEY_DECRYPTIONS);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::Router;
    use axum::routing::get;

    use super::Census;
    use crate::pki::{Channel, Pki};
    use crate::tls::{self, ClientAuth, ClientOptions};

    // Tests run side by side and the counters are process-wide, so the counts are lower bounds;
    // without the counting in the accept loop they stay at zero here.
    #[tokio::test]
    async fn a_request_over_mutual_tls_counts_a_handshake_with_a_certificate_and_a_request() {
        tls::install_crypto_provider();
        let pki = Pki::generate().unwrap();
        let host = "api.census.dva.koppeltest.test";
        let leaf = pki.leaf(Channel::Back, host).unwrap();
        let pgo = pki
            .leaf(Channel::Back, "medmij.census.koppeltest.test")
            .unwrap();
        let config =
            tls::server_config(&leaf, ClientAuth::Required(pki.roots(Channel::Back))).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let server = tls::serve(listener, config, router, None);
        let hosts = BTreeMap::from([(host.to_string(), server.addr)]);
        let client = tls::http_client(
            tls::client_config(&pki.roots(Channel::Back), Some(&pgo)).unwrap(),
            &hosts,
            ClientOptions::default(),
        )
        .unwrap();

        let before = Census::now();
        let url = format!("https://{host}:{}/", server.addr.port());
        for _ in 0..2 {
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.text().await.unwrap(), "ok");
        }
        let seen = Census::now().since(before);
        assert!(seen.handshakes >= 1, "{seen:?}");
        assert!(seen.mutual_handshakes >= 1, "{seen:?}");
        assert!(seen.requests >= 2, "{seen:?}");
        server.shutdown(std::time::Duration::from_secs(1)).await;
    }
}
