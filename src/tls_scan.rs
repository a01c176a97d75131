//! What a hello-level TLS scan found: pure data, as [`crate::probe`] records it.
//!
//! Each field is an observation about one server (which versions, suites and groups it answers a
//! ClientHello with, and a few properties of its ServerHello), never a judgement: whether TLS 1.1
//! or `TLS_RSA_WITH_AES_128_CBC_SHA` is acceptable is decided elsewhere, against the NCSC TLS
//! guidelines and the MedMij overlay.
//!
//! Besides the types, this module holds the name tables the probes draw from: the TLS 1.2 and
//! TLS 1.3 cipher suites and the named groups, with their IANA ids and names, and the alert
//! names. Nothing here does I/O.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A protocol version a ClientHello can offer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum TlsVersion {
    #[serde(rename = "SSLv3")]
    Ssl3,
    #[serde(rename = "TLSv1.0")]
    Tls10,
    #[serde(rename = "TLSv1.1")]
    Tls11,
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl TlsVersion {
    /// Every version, oldest first.
    pub const ALL: [TlsVersion; 5] = [
        TlsVersion::Ssl3,
        TlsVersion::Tls10,
        TlsVersion::Tls11,
        TlsVersion::Tls12,
        TlsVersion::Tls13,
    ];

    /// The version as it appears on the wire (`0x0303` for TLS 1.2).
    pub fn wire(self) -> u16 {
        match self {
            TlsVersion::Ssl3 => 0x0300,
            TlsVersion::Tls10 => 0x0301,
            TlsVersion::Tls11 => 0x0302,
            TlsVersion::Tls12 => 0x0303,
            TlsVersion::Tls13 => 0x0304,
        }
    }

    /// The version for a wire value; `None` for anything else (drafts, DTLS, garbage).
    pub fn from_wire(wire: u16) -> Option<TlsVersion> {
        TlsVersion::ALL.into_iter().find(|v| v.wire() == wire)
    }

    /// The name used in reports and in serde: `SSLv3`, `TLSv1.0` … `TLSv1.3`.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Ssl3 => "SSLv3",
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a server answered one ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// A ServerHello (or HelloRetryRequest) at exactly what was offered.
    Accepted,
    /// The server declined: an alert (its description code in `alert`), a clean close or a TCP
    /// reset after the ClientHello was written, or a legal ServerHello that settles on less than
    /// what the probe asks about: a lower version (how a server says it lacks the offered one),
    /// or, in a TLS 1.2 group probe, a DH group of the server's own choosing.
    Refused { alert: Option<u8>, reason: String },
    /// No usable answer: no connection, no reply within the timeout, a reply that is not TLS, is
    /// malformed or too large, or a ServerHello that breaks the protocol (choosing something never
    /// offered); `reason` says which.
    Error { reason: String },
}

impl Answer {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Answer::Accepted)
    }

    pub fn is_refused(&self) -> bool {
        matches!(self, Answer::Refused { .. })
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Answer::Error { .. })
    }
}

/// One protocol version offered on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionProbe {
    pub version: TlsVersion,
    pub answer: Answer,
}

/// One cipher suite offered on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SuiteProbe {
    pub id: u16,
    /// The IANA name, e.g. `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`.
    pub name: String,
    /// The version the suite was offered at: TLS 1.2 or TLS 1.3.
    pub version: TlsVersion,
    pub answer: Answer,
}

/// One named group offered on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupProbe {
    pub id: u16,
    /// The IANA name, e.g. `x25519`, `secp256r1`, `ffdhe2048`.
    pub name: String,
    pub answer: Answer,
}

/// Everything one hello-level scan of one server found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TlsScan {
    /// The name sent as SNI.
    pub host: String,
    /// The socket address connected to.
    pub addr: String,
    pub versions: Vec<VersionProbe>,
    pub suites: Vec<SuiteProbe>,
    pub groups: Vec<GroupProbe>,
    /// Offering `[deflate, null]`: `Some(true)` if the server chose deflate, `Some(false)` if
    /// null, `None` on error or refusal.
    pub compression_chosen: Option<bool>,
    /// A pre-TLS 1.3 hello with `TLS_EMPTY_RENEGOTIATION_INFO_SCSV`: does the ServerHello carry
    /// renegotiation_info (`ff01`)?
    pub secure_renegotiation: Option<bool>,
    /// A pre-TLS 1.3 hello offering extended_master_secret (`0017`): echoed?
    pub extended_master_secret: Option<bool>,
    /// All versions offered at once (TLS 1.3 via supported_versions, legacy_version `0303`):
    /// the version chosen.
    pub negotiated_when_all_offered: Option<TlsVersion>,
    /// A TLS 1.2-only hello to a server that accepts TLS 1.3: does server_random end with the
    /// RFC 8446 §4.1.3 sentinel `DOWNGRD\x01`? `None` when not applicable.
    pub downgrade_sentinel: Option<bool>,
    /// `TLS_FALLBACK_SCSV` (`5600`) offered with a client_version below the server's highest
    /// TLS 1.0–1.2 version: refused with inappropriate_fallback (86)? `None` when not applicable
    /// (the server has at most one pre-TLS 1.3 version).
    pub fallback_scsv_refused: Option<bool>,
    /// Problems worth reporting that no single probe's answer carries.
    pub errors: Vec<String>,
    pub duration_ms: u64,
}

impl TlsScan {
    /// The versions the server accepted, oldest first.
    pub fn accepted_versions(&self) -> Vec<TlsVersion> {
        let mut versions: Vec<TlsVersion> = self
            .versions
            .iter()
            .filter(|p| p.answer.is_accepted())
            .map(|p| p.version)
            .collect();
        versions.sort();
        versions
    }

    /// The suites the server accepted, in probe order.
    pub fn accepted_suites(&self) -> Vec<&SuiteProbe> {
        self.suites
            .iter()
            .filter(|p| p.answer.is_accepted())
            .collect()
    }

    /// The groups the server accepted, in probe order.
    pub fn accepted_groups(&self) -> Vec<&GroupProbe> {
        self.groups
            .iter()
            .filter(|p| p.answer.is_accepted())
            .collect()
    }
}

/// TLS 1.2 (and older) cipher suites probed one by one: IANA id and name.
///
/// Grouped by key exchange; within a group roughly from strong to weak. Covers what NCSC grades
/// (ECDHE AEAD, CBC, DHE, static RSA, 3DES, RC4, NULL, EXPORT, CAMELLIA, ARIA) and the anonymous
/// suites, so that a server's weak end is seen, not only its preferred one.
pub const TLS12_SUITES: &[(u16, &str)] = &[
    // ECDHE-ECDSA
    (0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    (0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    (0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"),
    (0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"),
    (0xc0ae, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
    (0xc0af, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"),
    (0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    (0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    (0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xc05c, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256"),
    (0xc05d, "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384"),
    (0xc072, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xc073, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"),
    (0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"),
    // ECDHE-RSA
    (0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    (0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    (0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    (0xc060, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"),
    (0xc061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384"),
    (0xc076, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xc077, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"),
    (0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA"),
    // DHE-RSA
    (0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM"),
    (0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM"),
    (0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"),
    (0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    (0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    (0xc052, "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256"),
    (0xc053, "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384"),
    (0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    // Static RSA key exchange
    (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    (0xc09c, "TLS_RSA_WITH_AES_128_CCM"),
    (0xc09d, "TLS_RSA_WITH_AES_256_CCM"),
    (0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    (0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    (0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    (0xc050, "TLS_RSA_WITH_ARIA_128_GCM_SHA256"),
    (0xc051, "TLS_RSA_WITH_ARIA_256_GCM_SHA384"),
    (0x00ba, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256"),
    (0x00c0, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256"),
    (0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0009, "TLS_RSA_WITH_DES_CBC_SHA"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    (0x003b, "TLS_RSA_WITH_NULL_SHA256"),
    (0x0002, "TLS_RSA_WITH_NULL_SHA"),
    (0x0001, "TLS_RSA_WITH_NULL_MD5"),
    // EXPORT
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
    (0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"),
    (0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA"),
    // Anonymous (no server authentication at all)
    (0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"),
    (0x003a, "TLS_DH_anon_WITH_AES_256_CBC_SHA"),
    (0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"),
    (0xc019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"),
];

/// TLS 1.3 cipher suites: IANA id and name.
pub const TLS13_SUITES: &[(u16, &str)] = &[
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    (0x1304, "TLS_AES_128_CCM_SHA256"),
    (0x1305, "TLS_AES_128_CCM_8_SHA256"),
];

/// Named groups (key exchange) probed one by one: IANA id and name.
pub const GROUPS: &[(u16, &str)] = &[
    (0x001d, "x25519"),
    (0x001e, "x448"),
    (0x0017, "secp256r1"),
    (0x0018, "secp384r1"),
    (0x0019, "secp521r1"),
    (0x0015, "secp224r1"),
    (0x0100, "ffdhe2048"),
    (0x0101, "ffdhe3072"),
    (0x0102, "ffdhe4096"),
    (0x11ec, "X25519MLKEM768"),
];

/// The IANA name of a TLS 1.2 or TLS 1.3 suite in the tables above.
pub fn suite_name(id: u16) -> Option<&'static str> {
    TLS12_SUITES
        .iter()
        .chain(TLS13_SUITES)
        .find(|(i, _)| *i == id)
        .map(|(_, name)| *name)
}

/// The IANA name of a group in [`GROUPS`].
pub fn group_name(id: u16) -> Option<&'static str> {
    GROUPS.iter().find(|(i, _)| *i == id).map(|(_, name)| *name)
}

/// Whether `id` is a finite-field Diffie-Hellman group (RFC 7919 range `0x0100..0x0200`).
pub fn is_ffdhe_group(id: u16) -> bool {
    (0x0100..0x0200).contains(&id)
}

/// The RFC 8446 / RFC 5246 name of an alert description.
pub fn alert_name(description: u8) -> &'static str {
    match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown alert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_through_the_wire_and_serde() {
        for v in TlsVersion::ALL {
            assert_eq!(TlsVersion::from_wire(v.wire()), Some(v));
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(serde_json::from_str::<TlsVersion>(&json).unwrap(), v);
        }
        assert_eq!(TlsVersion::from_wire(0x7f1c), None);
    }

    #[test]
    fn tls12_table_matches_the_iana_names_rustls_knows() {
        for (id, name) in TLS12_SUITES {
            let known = rustls::CipherSuite::from(*id);
            assert_eq!(known.as_str(), Some(*name), "suite {id:#06x}");
        }
    }

    #[test]
    fn tls13_table_matches_rustls_names() {
        for (id, name) in TLS13_SUITES {
            let known = rustls::CipherSuite::from(*id);
            let rustls_name = name.replacen("TLS_", "TLS13_", 1);
            assert_eq!(
                known.as_str(),
                Some(rustls_name.as_str()),
                "suite {id:#06x}"
            );
        }
    }

    #[test]
    fn group_table_matches_rustls_names() {
        for (id, name) in GROUPS {
            let known = rustls::NamedGroup::from(*id);
            // secp224r1 is not in rustls' enum; every other name matches up to case.
            if let Some(known) = known.as_str() {
                assert!(known.eq_ignore_ascii_case(name), "group {id:#06x}: {known}");
            } else {
                assert_eq!(*name, "secp224r1");
            }
        }
    }

    #[test]
    fn tables_have_no_duplicate_ids() {
        let mut ids: Vec<u16> = TLS12_SUITES
            .iter()
            .chain(TLS13_SUITES)
            .map(|(id, _)| *id)
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn answers_serialise_with_a_tag() {
        let refused = Answer::Refused {
            alert: Some(70),
            reason: "alert protocol_version (70)".into(),
        };
        let json = serde_json::to_value(&refused).unwrap();
        assert_eq!(json["answer"], "refused");
        assert_eq!(json["alert"], 70);
        let back: Answer = serde_json::from_value(json).unwrap();
        assert_eq!(back, refused);
    }
}
