//! What several fuzz targets share: a test PKI made once per process, and switches read from
//! the front of an input. No parsing of its own: every target calls koppeltest's functions.
#![forbid(unsafe_code)]

use std::sync::{Arc, LazyLock};

use koppeltest::pki::{Pki, SamlKey};
use koppeltest::saml::EntityMetadata;

/// SAML keys as the mock TVS and a DV hold them (generated once; fuzzing is about parsing, not
/// about these keys).
pub struct Keys {
    pub tvs: Arc<SamlKey>,
    pub dv_sign: Arc<SamlKey>,
    pub dv_enc: Arc<SamlKey>,
    /// The DV's SP metadata as the TVS knows it.
    pub sp: EntityMetadata,
}

pub static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let pki = Pki::generate().expect("a test PKI");
    let key = |name: &str| pki.saml_key(name).expect("a SAML key");
    let (tvs, dv_sign, dv_enc) = (key("tvs"), key("dv-sign"), key("dv-enc"));
    let sp = EntityMetadata {
        entity_id: "urn:nl-eid-gdi:1.0:DV:00000009999999999999:entities:9000".into(),
        signing_certs: vec![dv_sign.cert_der.clone()],
        encryption_certs: vec![dv_enc.cert_der.clone()],
        sso_url: None,
        artifact_resolution_url: None,
        acs: vec![(0, "https://dva.example/acs".into())],
    };
    Keys {
        tvs,
        dv_sign,
        dv_enc,
        sp,
    }
});

/// The first four bytes of `data` as switches (bit `n` is switch `n`), and the rest.
pub fn switches(data: &[u8]) -> Option<(Switches, &[u8])> {
    let (head, rest) = data.split_at_checked(4)?;
    let bits = u32::from_le_bytes(head.try_into().ok()?);
    Some((Switches(bits), rest))
}

/// Independent on/off switches drawn from the input.
#[derive(Debug, Clone, Copy)]
pub struct Switches(u32);

impl Switches {
    pub fn on(self, n: u32) -> bool {
        self.0 & (1 << (n % 32)) != 0
    }
}
