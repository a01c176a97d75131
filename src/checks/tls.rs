//! TLS and certificate checks: what the hello-level probes found and the chain an endpoint
//! presented, judged by MedMij (brief §7) and the NCSC TLS guidelines, both editions.
//!
//! The classification tables here are the judge's own; the prober only reports what was
//! accepted. Which edition fails a run is the matrix's choice (`[tls] edition`); the other is
//! reported in the message. MedMij asks for NCSC's acceptable configurations: a "phase out" or
//! "insufficient" class under the deciding edition fails ([U]: MedMij says "good", but TLS 1.2,
//! which it makes mandatory, is only "sufficient" in the 2025 edition, so "good" is read as
//! "good or sufficient").

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::*;

use super::{Verdict, v};
use crate::outcome::Outcome;
use crate::steps::{HttpOutcome, HttpResult, TlsResult};
use crate::tls_scan::{Answer, TlsVersion};

/// An edition of the NCSC "ICT-beveiligingsrichtlijnen voor Transport Layer Security".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Edition {
    /// Version 2.1 (2021), the one MedMij cites.
    #[default]
    #[serde(rename = "2021")]
    Ncsc2021,
    /// The 2025-05 edition.
    #[serde(rename = "2025")]
    Ncsc2025,
}

impl Edition {
    pub fn label(self) -> &'static str {
        match self {
            Edition::Ncsc2021 => "NCSC 2021 v2.1",
            Edition::Ncsc2025 => "NCSC 2025-05",
        }
    }

    fn other(self) -> Edition {
        match self {
            Edition::Ncsc2021 => Edition::Ncsc2025,
            Edition::Ncsc2025 => Edition::Ncsc2021,
        }
    }
}

/// NCSC's classes, best first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Good,
    Sufficient,
    PhaseOut,
    Insufficient,
}

impl Class {
    pub fn label(self) -> &'static str {
        match self {
            Class::Good => "good",
            Class::Sufficient => "sufficient",
            Class::PhaseOut => "phase out",
            Class::Insufficient => "insufficient",
        }
    }

    /// Whether MedMij accepts it (see the module docs).
    fn acceptable(self) -> bool {
        self <= Class::Sufficient
    }
}

/// The matrix's TLS policy, and the trust anchors each channel's chain must reach.
#[derive(Debug, Clone, Default)]
pub struct TlsPolicy {
    pub edition: Edition,
    /// Warn when a chain's earliest expiry is fewer days away than this.
    pub expiry_warning_days: u32,
    pub front_roots: Vec<CertificateDer<'static>>,
    pub back_roots: Vec<CertificateDer<'static>>,
}

/// A protocol version's class.
pub fn version_class(version: TlsVersion, edition: Edition) -> Class {
    match (version, edition) {
        (TlsVersion::Tls13, _) => Class::Good,
        (TlsVersion::Tls12, Edition::Ncsc2021) => Class::Sufficient,
        (TlsVersion::Tls12, Edition::Ncsc2025) => Class::Sufficient,
        (TlsVersion::Tls10 | TlsVersion::Tls11, Edition::Ncsc2021) => Class::PhaseOut,
        (TlsVersion::Tls10 | TlsVersion::Tls11, Edition::Ncsc2025) => Class::Insufficient,
        (TlsVersion::Ssl3, _) => Class::Insufficient,
    }
}

/// A cipher suite's class, from its IANA name.
pub fn suite_class(name: &str, edition: Edition) -> Class {
    let new = edition == Edition::Ncsc2025;
    if let Some(tls13) = name
        .strip_prefix("TLS_")
        .filter(|_| !name.contains("_WITH_"))
    {
        return match tls13 {
            "AES_256_GCM_SHA384" | "CHACHA20_POLY1305_SHA256" => Class::Good,
            "AES_128_GCM_SHA256" if new => Class::Sufficient,
            "AES_128_GCM_SHA256" => Class::Good,
            "AES_128_CCM_SHA256" => Class::Sufficient,
            _ => Class::PhaseOut,
        };
    }
    let Some((kx, cipher)) = name
        .strip_prefix("TLS_")
        .and_then(|rest| rest.split_once("_WITH_"))
    else {
        return Class::Insufficient;
    };
    let worst = |a: Class, b: Class| a.max(b);
    // Broken whatever the edition.
    if [
        "NULL", "RC4", "EXPORT", "DES40", "anon", "MD5", "IDEA", "SEED",
    ]
    .iter()
    .any(|bad| name.contains(bad))
        || cipher.starts_with("DES_CBC")
        || kx.contains("EXPORT")
        || kx.contains("PSK")
        || kx.contains("SRP")
    {
        return Class::Insufficient;
    }
    let mut class = if name.contains("GCM") || name.contains("CHACHA20") {
        if new { Class::Sufficient } else { Class::Good }
    } else if name.contains("CCM") {
        if name.contains("CCM_8") {
            Class::PhaseOut
        } else {
            Class::Sufficient
        }
    } else if cipher.ends_with("_SHA") {
        // CBC with a SHA-1 MAC.
        if new {
            Class::Insufficient
        } else {
            Class::Sufficient
        }
    } else if new {
        // CBC with SHA-256/384.
        Class::PhaseOut
    } else {
        Class::Sufficient
    };
    if cipher.contains("3DES") {
        class = worst(
            class,
            if new {
                Class::Insufficient
            } else {
                Class::PhaseOut
            },
        );
    }
    if cipher.contains("CAMELLIA") || cipher.contains("ARIA") {
        class = worst(class, Class::PhaseOut);
    }
    class = worst(
        class,
        match kx {
            "ECDHE_ECDSA" | "ECDHE_RSA" => Class::Good,
            "DHE_RSA" | "DHE_DSS" if new => Class::PhaseOut,
            "DHE_RSA" => Class::Sufficient,
            // Static RSA: no forward secrecy.
            "RSA" if new => Class::Insufficient,
            "RSA" => Class::PhaseOut,
            _ => Class::Insufficient,
        },
    );
    class
}

/// A key-exchange group's class, from its IANA name.
pub fn group_class(name: &str, edition: Edition) -> Class {
    let new = edition == Edition::Ncsc2025;
    match name {
        n if n.contains("MLKEM") => Class::Good,
        "x25519" | "x448" | "secp256r1" | "secp384r1" | "secp521r1" => {
            if new {
                Class::Sufficient
            } else {
                Class::Good
            }
        }
        n if n.starts_with("brainpool") => Class::Sufficient,
        "secp224r1" => Class::PhaseOut,
        "ffdhe2048" if new => Class::Insufficient,
        "ffdhe2048" => Class::PhaseOut,
        "ffdhe3072" | "ffdhe4096" | "ffdhe6144" | "ffdhe8192" if new => Class::PhaseOut,
        "ffdhe3072" | "ffdhe4096" | "ffdhe6144" | "ffdhe8192" => Class::Sufficient,
        _ => Class::Insufficient,
    }
}

fn accepted(answer: &Answer) -> bool {
    answer.is_accepted()
}

/// The versions accepted, and whether every version probe got an answer.
fn versions_of(scan: &crate::tls_scan::TlsScan) -> (Vec<TlsVersion>, Vec<String>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for p in &scan.versions {
        match &p.answer {
            Answer::Accepted => ok.push(p.version),
            Answer::Refused { .. } => {}
            Answer::Error { reason } => errors.push(format!("{}: {reason}", p.version)),
        }
    }
    ok.sort();
    (ok, errors)
}

/// `tls-versions`.
pub(super) fn tls_versions(t: &TlsResult, policy: &TlsPolicy) -> Verdict {
    let (accepted_versions, errors) = versions_of(&t.scan);
    let list = |vs: &[TlsVersion]| {
        vs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if accepted_versions.is_empty() {
        return v(
            Outcome::Error,
            format!(
                "{} ({}): no protocol version was accepted, so nothing can be judged{}",
                t.endpoint,
                t.host,
                if errors.is_empty() {
                    String::new()
                } else {
                    format!("; probe errors: {}", errors.join("; "))
                }
            ),
            vec![],
        );
    }
    let unanswered = |version: TlsVersion| {
        t.scan
            .versions
            .iter()
            .find(|p| p.version == version)
            .and_then(|p| match &p.answer {
                Answer::Error { reason } => Some(reason.clone()),
                _ => None,
            })
    };
    if let Some(reason) = unanswered(TlsVersion::Tls12) {
        return v(
            Outcome::Error,
            format!(
                "{} ({}): the TLS 1.2 probe got no usable answer ({reason}), so whether TLS 1.2 is supported is unproven",
                t.endpoint, t.host
            ),
            vec![],
        );
    }
    let mut problems = Vec::new();
    if !accepted_versions.contains(&TlsVersion::Tls12) {
        problems.push("TLS 1.2 is not accepted (MedMij: must be supported)".to_string());
    }
    let legacy: Vec<TlsVersion> = accepted_versions
        .iter()
        .copied()
        .filter(|v| *v < TlsVersion::Tls12)
        .collect();
    if !legacy.is_empty() {
        problems.push(format!(
            "{} accepted (MedMij: no TLS ≤ 1.1; {}: {}; {}: {})",
            list(&legacy),
            policy.edition.label(),
            version_class(legacy[0], policy.edition).label(),
            policy.edition.other().label(),
            version_class(legacy[0], policy.edition.other()).label(),
        ));
    }
    let highest = accepted_versions.iter().max().copied();
    match (t.scan.negotiated_when_all_offered, highest) {
        (Some(chosen), Some(high)) if chosen != high => problems.push(format!(
            "offered everything, the server chose {chosen}, not the highest common {high}"
        )),
        _ => {}
    }
    if t.scan.fallback_scsv_refused == Some(false) {
        problems.push(
            "a fallback to a lower version with TLS_FALLBACK_SCSV was not answered with inappropriate_fallback (RFC 7507)"
                .to_string(),
        );
    }
    if t.scan.downgrade_sentinel == Some(false) {
        problems.push(
            "a TLS 1.2 ServerHello from this TLS 1.3 server lacks the downgrade sentinel (RFC 8446 §4.1.3)"
                .to_string(),
        );
    }
    let summary = format!(
        "{} ({}): accepted {}",
        t.endpoint,
        t.host,
        list(&accepted_versions)
    );
    if !problems.is_empty() {
        return v(
            Outcome::Fail,
            format!("{summary}; {}", problems.join("; ")),
            vec![],
        );
    }
    if !errors.is_empty() {
        return v(
            Outcome::Error,
            format!(
                "{summary}, but some probes got no answer: {}",
                errors.join("; ")
            ),
            vec![],
        );
    }
    if t.scan.negotiated_when_all_offered.is_none() {
        return v(
            Outcome::Error,
            format!(
                "{summary}, but the probe offering every version got no answer, so the highest-version rule is unproven"
            ),
            vec![],
        );
    }
    v(Outcome::Pass, summary, vec![])
}

/// `tls13-supported`: MedMij asks for TLS 1.3 where reasonably possible (a SHOULD, so the
/// runner reports its failure as a warning).
pub(super) fn tls13_supported(t: &TlsResult) -> Verdict {
    let Some(probe) = t
        .scan
        .versions
        .iter()
        .find(|p| p.version == TlsVersion::Tls13)
    else {
        return v(Outcome::Error, "TLS 1.3 was not probed", vec![]);
    };
    match &probe.answer {
        Answer::Accepted => v(
            Outcome::Pass,
            format!("{} ({}): TLS 1.3 accepted", t.endpoint, t.host),
            vec![],
        ),
        Answer::Refused { reason, .. } => v(
            Outcome::Fail,
            format!(
                "{} ({}): TLS 1.3 refused ({reason}); MedMij: where reasonably possible",
                t.endpoint, t.host
            ),
            vec![],
        ),
        Answer::Error { reason } => v(
            Outcome::Error,
            format!(
                "{} ({}): the TLS 1.3 probe got no answer: {reason}",
                t.endpoint, t.host
            ),
            vec![],
        ),
    }
}

/// One accepted thing with its class under both editions.
struct Classed {
    what: String,
    deciding: Class,
    other: Class,
}

/// Everything the probes found accepted, classed.
fn classify(t: &TlsResult, edition: Edition) -> Vec<Classed> {
    let mut out = Vec::new();
    for s in t.scan.suites.iter().filter(|s| accepted(&s.answer)) {
        out.push(Classed {
            what: s.name.clone(),
            deciding: suite_class(&s.name, edition),
            other: suite_class(&s.name, edition.other()),
        });
    }
    for g in t.scan.groups.iter().filter(|g| accepted(&g.answer)) {
        out.push(Classed {
            what: format!("group {}", g.name),
            deciding: group_class(&g.name, edition),
            other: group_class(&g.name, edition.other()),
        });
    }
    let (versions, _) = versions_of(&t.scan);
    for version in versions {
        out.push(Classed {
            what: version.to_string(),
            deciding: version_class(version, edition),
            other: version_class(version, edition.other()),
        });
    }
    if t.scan.compression_chosen == Some(true) {
        out.push(Classed {
            what: "TLS compression".into(),
            deciding: Class::Insufficient,
            other: Class::Insufficient,
        });
    }
    if t.scan.secure_renegotiation == Some(false) {
        out.push(Classed {
            what: "renegotiation without RFC 5746".into(),
            deciding: Class::Insufficient,
            other: Class::Insufficient,
        });
    }
    out
}

/// The worst NCSC class of what an endpoint accepted, under `edition` (`None`: nothing).
pub fn worst_class(t: &TlsResult, edition: Edition) -> Option<Class> {
    classify(t, edition).iter().map(|c| c.deciding).max()
}

/// `tls-configuration`.
pub(super) fn tls_configuration(t: &TlsResult, policy: &TlsPolicy) -> Verdict {
    let suites = t.scan.suites.iter().filter(|s| accepted(&s.answer)).count();
    if suites == 0 {
        return v(
            Outcome::Error,
            format!(
                "{} ({}): no cipher suite was accepted, so nothing can be judged",
                t.endpoint, t.host
            ),
            vec![],
        );
    }
    let classed = classify(t, policy.edition);
    let bad: Vec<String> = classed
        .iter()
        .filter(|c| !c.deciding.acceptable())
        .map(|c| {
            format!(
                "{} ({}: {}; {}: {})",
                c.what,
                policy.edition.label(),
                c.deciding.label(),
                policy.edition.other().label(),
                c.other.label()
            )
        })
        .collect();
    let other_bad: Vec<String> = classed
        .iter()
        .filter(|c| c.deciding.acceptable() && !c.other.acceptable())
        .map(|c| format!("{} ({})", c.what, c.other.label()))
        .collect();
    let worst = classed.iter().map(|c| c.deciding).max();
    let mut summary = format!(
        "{} ({}): {suites} suites accepted, worst class {} under {}",
        t.endpoint,
        t.host,
        worst.map_or("none", Class::label),
        policy.edition.label()
    );
    if !other_bad.is_empty() {
        summary.push_str(&format!(
            "; {} would object to: {}",
            policy.edition.other().label(),
            other_bad.join(", ")
        ));
    }
    let unanswered: Vec<String> = t
        .scan
        .suites
        .iter()
        .filter(|s| s.answer.is_error())
        .map(|s| s.name.clone())
        .chain(
            t.scan
                .groups
                .iter()
                .filter(|g| g.answer.is_error())
                .map(|g| format!("group {}", g.name)),
        )
        .collect();
    if bad.is_empty() && !unanswered.is_empty() {
        v(
            Outcome::Error,
            format!(
                "{summary}; {} probes got no answer, so what the server accepts is not fully known: {}",
                unanswered.len(),
                super::some_of(
                    unanswered.iter().map(String::as_str).take(5),
                    unanswered.len(),
                    ", "
                )
            ),
            vec![],
        )
    } else if bad.is_empty() {
        v(Outcome::Pass, summary, vec![])
    } else {
        v(
            Outcome::Fail,
            format!("{summary}; not acceptable: {}", bad.join(", ")),
            vec![],
        )
    }
}

/// Days from `now` until the earliest notAfter in `chain` (negative: expired).
pub fn earliest_expiry_days(chain: &[Vec<u8>], now: i64) -> Option<i64> {
    chain
        .iter()
        .filter_map(|der| parse_x509_certificate(der).ok())
        .map(|(_, c)| (c.validity().not_after.timestamp() - now).div_euclid(86_400))
        .min()
}

fn now_unix() -> i64 {
    ::time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The verdict when no chain was recorded: nothing to judge.
fn no_chain(t: &TlsResult) -> Verdict {
    v(
        Outcome::Error,
        format!(
            "{} ({}): no certificate chain was recorded{}",
            t.endpoint,
            t.host,
            t.chain_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        vec![],
    )
}

/// `certificate-expiry`.
pub(super) fn certificate_expiry(t: &TlsResult, policy: &TlsPolicy) -> Verdict {
    let Some(days) = earliest_expiry_days(&t.chain, now_unix()) else {
        return no_chain(t);
    };
    let threshold = i64::from(policy.expiry_warning_days);
    let text = format!(
        "{} ({}): earliest expiry in the chain in {days} days (warning below {threshold})",
        t.endpoint, t.host
    );
    if days < threshold {
        // Crediting a SHOULD only, this failure is reported as a warning.
        v(Outcome::Fail, text, vec![])
    } else {
        v(Outcome::Pass, text, vec![])
    }
}

const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const OID_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
const PRIVATE_SERVICES_POLICY: &str = "2.16.528.1.1003.1.2.8.6";
const OV_POLICY: &str = "2.23.140.1.2.2";

/// Whether `chain` verifies for `host` against `roots` (webpki, as rustls does it).
fn chain_verifies(
    chain: &[Vec<u8>],
    host: &str,
    roots: &[CertificateDer<'static>],
) -> Result<(), String> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(root.clone())
            .map_err(|e| format!("a configured root is unusable: {e}"))?;
    }
    if store.is_empty() {
        return Err("no roots configured".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .map_err(|e| e.to_string())?;
    let (leaf, rest) = chain.split_first().ok_or("no certificate")?;
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    use rustls::client::danger::ServerCertVerifier;
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.as_slice()),
            &intermediates,
            &name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `certificate-shape`.
pub(super) fn certificate_shape(t: &TlsResult, policy: &TlsPolicy) -> Verdict {
    let Some(leaf_der) = t.chain.first() else {
        return no_chain(t);
    };
    let Ok((_, leaf)) = parse_x509_certificate(leaf_der) else {
        return v(
            Outcome::Fail,
            format!(
                "{} ({}): the leaf certificate does not parse as X.509",
                t.endpoint, t.host
            ),
            vec![],
        );
    };
    let mut problems: Vec<String> = Vec::new();
    let (own, other) = if t.back_channel {
        (&policy.back_roots, &policy.front_roots)
    } else {
        (&policy.front_roots, &policy.back_roots)
    };
    if let Err(e) = chain_verifies(&t.chain, &t.host, own) {
        problems.push(format!(
            "the chain does not verify for {} against this channel's roots: {e}",
            t.host
        ));
    }
    // Publicly trusted means: trusted by the front channel's (public) roots configured for this
    // row. A chain from a public CA not configured there is not recognised as public.
    if t.back_channel && chain_verifies(&t.chain, &t.host, other).is_ok() {
        problems.push(
            "the back-channel chain is publicly trusted (it verifies against the front channel's roots), not private G1"
                .into(),
        );
    }
    let names: Vec<String> = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.iter().any(|n| n.contains('*')) {
        let text = format!("a wildcard name ({})", names.join(", "));
        if t.back_channel {
            problems.push(format!("{text} on the back channel"));
        } else {
            problems.push(format!("{text} on the front channel (MedMij: no wildcard)"));
        }
    }
    let policies: Vec<String> = leaf
        .extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::CertificatePolicies(p) => Some(p),
            _ => None,
        })
        .flat_map(|p| p.iter().map(|i| i.policy_id.to_id_string()))
        .collect();
    let eku = leaf
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|e| e.value.clone());
    let server_auth = eku.as_ref().is_some_and(|e| e.server_auth);
    let client_auth = eku.as_ref().is_some_and(|e| e.client_auth);
    if !server_auth {
        problems.push(format!("EKU lacks serverAuth ({OID_SERVER_AUTH})"));
    }
    if t.back_channel {
        if !policies.iter().any(|p| p == PRIVATE_SERVICES_POLICY) {
            problems.push(format!(
                "no PKIoverheid private-services policy {PRIVATE_SERVICES_POLICY} (policies: {})",
                listed(&policies)
            ));
        }
        if !client_auth {
            problems.push(format!(
                "EKU lacks clientAuth ({OID_CLIENT_AUTH}), which a back-channel node needs"
            ));
        }
        let oin = leaf
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type().to_id_string() == "2.5.4.5")
            .and_then(|a| a.as_str().ok().map(str::to_string));
        if !oin
            .as_deref()
            .is_some_and(|o| o.len() == 20 && o.bytes().all(|b| b.is_ascii_digit()))
        {
            problems.push("the subject's serialNumber is not a 20-digit OIN".into());
        }
    } else if !policies.iter().any(|p| p == OV_POLICY) {
        problems.push(format!(
            "no OV policy {OV_POLICY} (policies: {})",
            if policies.is_empty() {
                "none".to_string()
            } else {
                policies.join(", ")
            }
        ));
    }
    match leaf.key_usage().ok().flatten() {
        Some(ku) if ku.value.digital_signature() => {}
        Some(_) => problems.push("KU lacks digitalSignature".into()),
        None => problems.push("no key usage extension".into()),
    }
    // Key and signature, for every certificate the server sent.
    let mut key_notes = Vec::new();
    for (i, der) in t.chain.iter().enumerate() {
        let Ok((_, cert)) = parse_x509_certificate(der) else {
            problems.push(format!("certificate {i} of the chain does not parse"));
            continue;
        };
        let what = if i == 0 {
            "leaf".to_string()
        } else {
            format!("chain certificate {i}")
        };
        match key_class(&cert, policy.edition) {
            Ok((desc, class)) => {
                if t.back_channel && !desc.starts_with("RSA") {
                    problems.push(format!("{what} key {desc}: PKIoverheid issues RSA only"));
                }
                if !class.acceptable() {
                    problems.push(format!(
                        "{what} key {desc}: {} under {}",
                        class.label(),
                        policy.edition.label()
                    ));
                } else if i == 0 {
                    key_notes.push(desc);
                }
            }
            Err(e) => problems.push(format!("{what}: {e}")),
        }
        let sig = cert.signature_algorithm.algorithm.to_id_string();
        if let Some(hash) = weak_signature_hash(&sig) {
            problems.push(format!("{what} is signed with {hash} (insufficient)"));
        }
        let now = now_unix();
        let validity = cert.validity();
        if validity.not_before.timestamp() > now {
            problems.push(format!("{what} is not yet valid"));
        }
        if validity.not_after.timestamp() < now {
            problems.push(format!("{what} has expired"));
        }
    }
    let summary = format!(
        "{} ({}): {} certificate{} for {}, key {}",
        t.endpoint,
        t.host,
        t.chain.len(),
        if t.chain.len() == 1 { "" } else { "s" },
        if names.is_empty() {
            "no DNS name".to_string()
        } else {
            names.join(", ")
        },
        key_notes.first().map_or("?", String::as_str)
    );
    if problems.is_empty() {
        v(Outcome::Pass, summary, vec![])
    } else {
        v(
            Outcome::Fail,
            format!("{summary}; {}", problems.join("; ")),
            vec![],
        )
    }
}

/// `items` joined, or "none".
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// The key's description and class.
fn key_class(cert: &X509Certificate<'_>, edition: Edition) -> Result<(String, Class), String> {
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            let class = match (bits, edition) {
                (b, _) if b < 2048 => Class::Insufficient,
                (b, Edition::Ncsc2025) if b < 3072 => Class::PhaseOut,
                _ => Class::Sufficient,
            };
            Ok((format!("RSA-{bits}"), class))
        }
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => {
            Ok((format!("EC-{}", ec.key_size()), Class::Sufficient))
        }
        Ok(_) => Ok(("another key type".into(), Class::Sufficient)),
        Err(e) => Err(format!("the public key does not parse: {e}")),
    }
}

/// The weak hash a signature algorithm OID uses, if any.
fn weak_signature_hash(oid: &str) -> Option<&'static str> {
    match oid {
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" => Some("SHA-1"),
        "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.2" => Some("MD5"),
        _ => None,
    }
}

/// Whether a transport failure is the server refusing at the TLS layer (an alert, a dropped
/// handshake, a connection closed after a TLS 1.3 handshake) rather than an unreachable peer or
/// koppeltest's own rejection of the server's certificate.
pub(super) fn tls_refusal(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    let ours = [
        "invalid peer certificate",
        "connection refused",
        "dns error",
        "timed out",
    ];
    if ours.iter().any(|o| r.contains(o)) {
        return false;
    }
    [
        "alert",
        "handshake",
        "connection reset",
        "unexpected eof",
        "connection closed",
        "broken pipe",
    ]
    .iter()
    .any(|t| r.contains(t))
}

/// `client-certificate-refused`: `token` for the token endpoint, else the resource endpoint.
pub(super) fn client_certificate_refused(h: &HttpResult, token: bool) -> Verdict {
    let ev = h.seqs();
    if h.seq.is_none() {
        let why = match &h.outcome {
            HttpOutcome::Transport { reason } => reason.as_str(),
            HttpOutcome::Response { .. } => "no exchange was recorded",
        };
        return v(
            Outcome::Error,
            format!("the request was never sent: {why}"),
            ev,
        );
    }
    let (status, body) = match &h.outcome {
        HttpOutcome::Transport { reason } if tls_refusal(reason) => {
            return v(Outcome::Pass, format!("refused by TLS: {reason}"), ev);
        }
        HttpOutcome::Transport { reason } => {
            return v(
                Outcome::Error,
                format!("no response, and not a TLS refusal: {reason}"),
                ev,
            );
        }
        HttpOutcome::Response { status, body, .. } => (*status, body.as_str()),
    };
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if (200..300).contains(&status) {
        let what = if token {
            "a token was issued"
        } else {
            "the request was served"
        };
        return v(Outcome::Fail, format!("{what} (HTTP {status})"), ev);
    }
    if token {
        let error = json["error"].as_str().unwrap_or("");
        if matches!(status, 400 | 401) && matches!(error, "invalid_client" | "invalid_request") {
            return v(
                Outcome::Pass,
                format!("refused with HTTP {status} {error}"),
                ev,
            );
        }
        return v(
            Outcome::Fail,
            format!(
                "refused with HTTP {status} {error:?}, not as a failed client authentication (invalid_client)"
            ),
            ev,
        );
    }
    if matches!(status, 401 | 403) {
        return v(Outcome::Pass, format!("refused with HTTP {status}"), ev);
    }
    v(
        Outcome::Fail,
        format!("refused with HTTP {status}, not as an authentication failure (401 or 403)"),
        ev,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Broken, Channel, Pki};
    use crate::tls_scan::{SuiteProbe, TlsScan, VersionProbe};

    fn scan(versions: &[(TlsVersion, bool)], suites: &[&str]) -> TlsScan {
        TlsScan {
            host: "api.x.koppeltest.test".into(),
            addr: "127.0.0.1:1".into(),
            versions: versions
                .iter()
                .map(|(version, ok)| VersionProbe {
                    version: *version,
                    answer: if *ok {
                        Answer::Accepted
                    } else {
                        Answer::Refused {
                            alert: Some(70),
                            reason: "protocol_version".into(),
                        }
                    },
                })
                .collect(),
            suites: suites
                .iter()
                .map(|name| SuiteProbe {
                    id: 0,
                    name: name.to_string(),
                    version: TlsVersion::Tls12,
                    answer: Answer::Accepted,
                })
                .collect(),
            groups: vec![],
            compression_chosen: Some(false),
            secure_renegotiation: Some(true),
            extended_master_secret: Some(true),
            negotiated_when_all_offered: versions
                .iter()
                .filter(|(_, ok)| *ok)
                .map(|(v, _)| *v)
                .max(),
            downgrade_sentinel: None,
            fallback_scsv_refused: None,
            errors: vec![],
            duration_ms: 1,
        }
    }

    fn result(scan: TlsScan, chain: Vec<Vec<u8>>, back: bool) -> TlsResult {
        TlsResult {
            endpoint: if back { "token" } else { "authorization" }.into(),
            back_channel: back,
            host: scan.host.clone(),
            scan,
            chain,
            chain_error: None,
        }
    }

    const MODERN: &[(TlsVersion, bool)] = &[
        (TlsVersion::Ssl3, false),
        (TlsVersion::Tls10, false),
        (TlsVersion::Tls11, false),
        (TlsVersion::Tls12, true),
        (TlsVersion::Tls13, true),
    ];

    #[test]
    fn suites_are_classed_per_edition() {
        let cases = [
            (
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                Class::Good,
                Class::Sufficient,
            ),
            (
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                Class::Sufficient,
                Class::Insufficient,
            ),
            (
                "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
                Class::Sufficient,
                Class::PhaseOut,
            ),
            (
                "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
                Class::Sufficient,
                Class::PhaseOut,
            ),
            (
                "TLS_RSA_WITH_AES_128_CBC_SHA",
                Class::PhaseOut,
                Class::Insufficient,
            ),
            (
                "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
                Class::PhaseOut,
                Class::Insufficient,
            ),
            (
                "TLS_RSA_WITH_RC4_128_SHA",
                Class::Insufficient,
                Class::Insufficient,
            ),
            (
                "TLS_RSA_WITH_NULL_SHA256",
                Class::Insufficient,
                Class::Insufficient,
            ),
            ("TLS_AES_256_GCM_SHA384", Class::Good, Class::Good),
            ("TLS_AES_128_GCM_SHA256", Class::Good, Class::Sufficient),
        ];
        for (name, old, new) in cases {
            assert_eq!(
                suite_class(name, Edition::Ncsc2021),
                old,
                "{name} under 2021"
            );
            assert_eq!(
                suite_class(name, Edition::Ncsc2025),
                new,
                "{name} under 2025"
            );
        }
        assert_eq!(
            group_class("ffdhe2048", Edition::Ncsc2025),
            Class::Insufficient
        );
        assert_eq!(group_class("x25519", Edition::Ncsc2025), Class::Sufficient);
    }

    #[test]
    fn versions_fail_without_tls12_or_with_legacy_or_a_lower_choice() {
        let policy = TlsPolicy::default();
        let ok = result(scan(MODERN, &[]), vec![], true);
        assert_eq!(tls_versions(&ok, &policy).outcome, Outcome::Pass);
        let only13 = result(
            scan(
                &[(TlsVersion::Tls12, false), (TlsVersion::Tls13, true)],
                &[],
            ),
            vec![],
            true,
        );
        assert_eq!(tls_versions(&only13, &policy).outcome, Outcome::Fail);
        let legacy = result(
            scan(&[(TlsVersion::Tls10, true), (TlsVersion::Tls12, true)], &[]),
            vec![],
            true,
        );
        let verdict = tls_versions(&legacy, &policy);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains("TLSv1.0"), "{}", verdict.message);
        let mut lower = scan(MODERN, &[]);
        lower.negotiated_when_all_offered = Some(TlsVersion::Tls12);
        assert_eq!(
            tls_versions(&result(lower, vec![], true), &policy).outcome,
            Outcome::Fail
        );
        // Nothing answered: no evidence, no verdict.
        let silent = result(scan(&[(TlsVersion::Tls12, false)], &[]), vec![], true);
        assert_eq!(tls_versions(&silent, &policy).outcome, Outcome::Error);
        assert_eq!(tls13_supported(&ok).outcome, Outcome::Pass);
        assert_eq!(tls13_supported(&legacy).outcome, Outcome::Error);
    }

    #[test]
    fn configuration_fails_on_what_the_deciding_edition_rejects() {
        let cbc = result(
            scan(
                MODERN,
                &[
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                ],
            ),
            vec![],
            true,
        );
        let old = TlsPolicy::default();
        let new = TlsPolicy {
            edition: Edition::Ncsc2025,
            ..TlsPolicy::default()
        };
        let verdict = tls_configuration(&cbc, &old);
        assert_eq!(verdict.outcome, Outcome::Pass);
        assert!(
            verdict.message.contains("NCSC 2025-05 would object"),
            "{}",
            verdict.message
        );
        assert_eq!(tls_configuration(&cbc, &new).outcome, Outcome::Fail);
        let static_rsa = result(
            scan(MODERN, &["TLS_RSA_WITH_AES_128_CBC_SHA"]),
            vec![],
            true,
        );
        assert_eq!(tls_configuration(&static_rsa, &old).outcome, Outcome::Fail);
        let mut compressed = scan(MODERN, &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        compressed.compression_chosen = Some(true);
        assert_eq!(
            tls_configuration(&result(compressed, vec![], true), &old).outcome,
            Outcome::Fail
        );
    }

    fn chain(leaf: &crate::pki::Leaf) -> Vec<Vec<u8>> {
        leaf.chain.iter().map(|c| c.to_vec()).collect()
    }

    #[test]
    fn certificates_are_judged_by_channel_shape_and_lifetime() {
        let pki = Pki::generate().unwrap();
        let policy = TlsPolicy {
            edition: Edition::Ncsc2021,
            expiry_warning_days: 60,
            front_roots: pki.roots(Channel::Front),
            back_roots: pki.roots(Channel::Back),
        };
        let back_host = "api.x.koppeltest.test";
        let front_host = "www.x.koppeltest.test";
        let with_host = |host: &str, back: bool, c: Vec<Vec<u8>>| {
            let mut s = scan(MODERN, &[]);
            s.host = host.into();
            result(s, c, back)
        };
        let back = with_host(
            back_host,
            true,
            chain(&pki.leaf(Channel::Back, back_host).unwrap()),
        );
        let front = with_host(
            front_host,
            false,
            chain(&pki.leaf(Channel::Front, front_host).unwrap()),
        );
        for ok in [&back, &front] {
            let verdict = certificate_shape(ok, &policy);
            assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.message);
            assert_eq!(certificate_expiry(ok, &policy).outcome, Outcome::Pass);
        }
        // RSA-3072 leaves are sufficient under both editions.
        let strict = TlsPolicy {
            edition: Edition::Ncsc2025,
            ..policy.clone()
        };
        assert_eq!(certificate_shape(&back, &strict).outcome, Outcome::Pass);
        let broken = |channel, host: &str, b| chain(&pki.broken(channel, host, b).unwrap());
        let cases = [
            (
                with_host(
                    front_host,
                    false,
                    broken(Channel::Front, front_host, Broken::Wildcard),
                ),
                "wildcard",
            ),
            (
                with_host(
                    back_host,
                    true,
                    broken(Channel::Back, back_host, Broken::OtherChannelCa),
                ),
                "publicly trusted",
            ),
            (
                with_host(
                    back_host,
                    true,
                    broken(Channel::Back, back_host, Broken::Expired),
                ),
                "expired",
            ),
            (
                with_host(
                    back_host,
                    true,
                    broken(Channel::Back, back_host, Broken::OtherHost),
                ),
                "does not verify",
            ),
            (
                with_host(
                    back_host,
                    true,
                    broken(Channel::Back, back_host, Broken::UnknownCa),
                ),
                "does not verify",
            ),
            (
                with_host(
                    back_host,
                    true,
                    broken(Channel::Back, back_host, Broken::NoClientAuth),
                ),
                "clientAuth",
            ),
            (
                with_host(
                    front_host,
                    false,
                    broken(Channel::Front, front_host, Broken::SelfSigned),
                ),
                "does not verify",
            ),
            (
                with_host(
                    back_host,
                    true,
                    broken(Channel::Back, back_host, Broken::Rsa1024),
                ),
                "key RSA-1024: insufficient",
            ),
            (
                with_host(
                    back_host,
                    true,
                    broken(Channel::Back, back_host, Broken::Sha1Signed),
                ),
                "signed with SHA-1",
            ),
        ];
        for (case, expect) in &cases {
            let verdict = certificate_shape(case, &policy);
            assert_eq!(
                verdict.outcome,
                Outcome::Fail,
                "{expect}: {}",
                verdict.message
            );
            assert!(
                verdict.message.contains(expect),
                "{expect}: {}",
                verdict.message
            );
        }
        let soon = with_host(
            back_host,
            true,
            broken(Channel::Back, back_host, Broken::ExpiresIn(20)),
        );
        let verdict = certificate_expiry(&soon, &policy);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(
            verdict.message.contains("in 19 days") || verdict.message.contains("in 20 days"),
            "{}",
            verdict.message
        );
        let none = with_host(back_host, true, vec![]);
        assert_eq!(certificate_shape(&none, &policy).outcome, Outcome::Error);
        assert_eq!(certificate_expiry(&none, &policy).outcome, Outcome::Error);
    }

    #[test]
    fn key_and_hash_rules_under_both_editions() {
        assert_eq!(weak_signature_hash("1.2.840.113549.1.1.5"), Some("SHA-1"));
        assert_eq!(weak_signature_hash("1.2.840.113549.1.1.11"), None);
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.koppeltest.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (_, parsed) = parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(
            key_class(&parsed, Edition::Ncsc2021).unwrap().1,
            Class::Sufficient
        );
        assert_eq!(
            key_class(&parsed, Edition::Ncsc2025).unwrap().1,
            Class::PhaseOut
        );
    }

    fn http(outcome: HttpOutcome) -> HttpResult {
        let mut h = HttpResult::broken(String::new());
        h.outcome = outcome;
        h.seq = Some(1);
        h
    }

    fn status(code: u16, body: &str) -> HttpResult {
        http(HttpOutcome::Response {
            status: code,
            headers: vec![],
            body: body.into(),
        })
    }

    #[test]
    fn client_certificate_refusals_need_the_right_form() {
        let transport = |reason: &str| {
            http(HttpOutcome::Transport {
                reason: reason.into(),
            })
        };
        let alert = transport("error sending request: received fatal alert: UnknownCA");
        assert_eq!(
            client_certificate_refused(&alert, true).outcome,
            Outcome::Pass
        );
        let refused = transport(
            "error sending request: tcp connect error: Connection refused (os error 111)",
        );
        assert_eq!(
            client_certificate_refused(&refused, true).outcome,
            Outcome::Error
        );
        // koppeltest rejecting the server's certificate is no refusal by the server.
        let ours = transport("error sending request: invalid peer certificate: UnknownIssuer");
        assert_eq!(
            client_certificate_refused(&ours, true).outcome,
            Outcome::Error
        );
        let dropped = transport("error sending request: connection reset by peer");
        assert_eq!(
            client_certificate_refused(&dropped, false).outcome,
            Outcome::Pass
        );
        // A faulty client that could not even be built sent nothing: no verdict.
        let unsent = HttpResult::broken("no certificate can be made".into());
        assert_eq!(
            client_certificate_refused(&unsent, true).outcome,
            Outcome::Error
        );
        let cases = [
            (
                status(401, r#"{"error":"invalid_client"}"#),
                true,
                Outcome::Pass,
            ),
            (
                status(400, r#"{"error":"invalid_grant"}"#),
                true,
                Outcome::Fail,
            ),
            (status(200, r#"{"access_token":"x"}"#), true, Outcome::Fail),
            (status(403, "{}"), false, Outcome::Pass),
            (status(404, "{}"), false, Outcome::Fail),
            (
                status(200, r#"{"resourceType":"Bundle"}"#),
                false,
                Outcome::Fail,
            ),
        ];
        for (h, token, expected) in cases {
            assert_eq!(
                client_certificate_refused(&h, token).outcome,
                expected,
                "{h:?}"
            );
        }
    }
}
