//! Hello-level TLS probes: which versions, cipher suites and groups a server answers, found the
//! way testssl.sh and the OpenID Foundation conformance suite find them.
//!
//! Each probe opens a raw TCP connection, writes one hand-built ClientHello and reads until the
//! server's ServerHello (or HelloRetryRequest), an alert, or the end of the connection. The
//! handshake is never completed, so no client key or certificate is needed, and every version
//! and suite can be offered, including the ones rustls refuses to speak (SSLv3, TLS 1.0/1.1,
//! CBC, RC4, EXPORT, NULL). A ServerHello at exactly what was offered is
//! [`Answer::Accepted`]; an alert, a close or a reset is [`Answer::Refused`]; a ServerHello that
//! picks something never offered is an [`Answer::Error`] naming the protocol violation.
//!
//! Probes run concurrently, at most [`ProbeOptions::max_connections`] at a time, each bounded by
//! [`ProbeOptions::timeout`] and [`ProbeOptions::max_reply_bytes`]. Every byte from the network
//! is parsed with checked slicing: no input makes a probe panic.
//!
//! This module records observations in a [`TlsScan`]; it judges nothing. Whether an accepted
//! TLS 1.1 or `TLS_RSA_WITH_AES_128_CBC_SHA` fails a DVA is decided elsewhere, under the NCSC TLS
//! guidelines and MedMij's overlay on them.
//!
//! What it deliberately does not do: complete handshakes, look at certificates (TLS 1.3 sends
//! them encrypted), test client-initiated renegotiation, or speak SSLv2.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::tls_scan::{
    Answer, GROUPS, GroupProbe, SuiteProbe, TLS12_SUITES, TLS13_SUITES, TlsScan, TlsVersion,
    VersionProbe, alert_name, is_ffdhe_group, suite_name,
};

/// The server to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// Sent as SNI in every ClientHello (left out only for an IP literal, which SNI forbids).
    pub host: String,
    pub addr: SocketAddr,
}

/// Limits for one scan.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Per probe, for connect, write and read together.
    pub timeout: Duration,
    /// Connections open at the same time.
    pub max_connections: usize,
    /// Bytes read per probe before giving up on finding a ServerHello.
    pub max_reply_bytes: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(5),
            max_connections: 16,
            max_reply_bytes: 64 * 1024,
        }
    }
}

// Record content types (RFC 8446 §5.1).
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const HEARTBEAT: u8 = 24;

// Handshake message types.
const HELLO_REQUEST: u8 = 0;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const SERVER_KEY_EXCHANGE: u8 = 12;
const CERTIFICATE_STATUS: u8 = 22;

// Extension types.
const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SUPPORTED_GROUPS: u16 = 0x000a;
const EXT_EC_POINT_FORMATS: u16 = 0x000b;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_PADDING: u16 = 0x0015;
const EXT_EXTENDED_MASTER_SECRET: u16 = 0x0017;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const EXT_COOKIE: u16 = 0x002c;
const EXT_KEY_SHARE: u16 = 0x0033;
const EXT_RENEGOTIATION_INFO: u16 = 0xff01;

/// TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746).
const SCSV_RENEGOTIATION: u16 = 0x00ff;
/// TLS_FALLBACK_SCSV (RFC 7507).
const SCSV_FALLBACK: u16 = 0x5600;

const X25519: u16 = 0x001d;
/// ECCurveType named_curve in a ServerKeyExchange.
const NAMED_CURVE: u8 = 3;

/// The first 40 bytes of every RFC 7919 prime: 64 one bits, then the bits of e.
const FFDHE_HEAD: [u8; 40] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xad, 0xf8, 0x54, 0x58, 0xa2, 0xbb, 0x4a, 0x9a,
    0xaf, 0xdc, 0x56, 0x20, 0x27, 0x3d, 0x3c, 0xf1, 0xd8, 0xb9, 0xc5, 0x83, 0xce, 0x2d, 0x36, 0x95,
    0xa9, 0xe1, 0x36, 0x41, 0x14, 0x64, 0x33, 0xfb,
];
/// RFC 7919 groups: id, prime length in bytes, the last 12 bytes of the prime.
const FFDHE_PRIMES: [(u16, usize, [u8; 12]); 3] = [
    (0x0100, 256, ffdhe_tail([0x61, 0x28, 0x5c, 0x97])),
    (0x0101, 384, ffdhe_tail([0x66, 0xc6, 0x2e, 0x37])),
    (0x0102, 512, ffdhe_tail([0x5e, 0x65, 0x5f, 0x6a])),
];

const fn ffdhe_tail(x: [u8; 4]) -> [u8; 12] {
    [
        x[0], x[1], x[2], x[3], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]
}
const COMPRESSION_NULL: u8 = 0;
const COMPRESSION_DEFLATE: u8 = 1;
const ALERT_WARNING: u8 = 1;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_INAPPROPRIATE_FALLBACK: u8 = 86;

/// The server_random of a HelloRetryRequest (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];
/// The last eight bytes of server_random when a TLS 1.3 server negotiates TLS 1.2.
const DOWNGRADE_TLS12: [u8; 8] = *b"DOWNGRD\x01";

/// Largest record fragment a peer may send: 2^14 plus the TLS 1.2 expansion allowance.
const MAX_FRAGMENT: usize = crate::limits::MAX_TLS_FRAGMENT;
/// A ServerHello claiming more than this is not one (real ones are a few hundred bytes).
const MAX_SERVER_HELLO: usize = crate::limits::MAX_SERVER_HELLO;

/// Groups offered when the group is not the question: the common curves and the RFC 7919
/// finite-field groups, so that a server finds one for ECDHE or DHE.
const COMMON_GROUPS: &[u16] = &[
    0x001d, 0x0017, 0x0018, 0x0019, 0x001e, 0x0100, 0x0101, 0x0102,
];

/// Signature schemes offered: ECDSA, EdDSA, RSA-PSS and PKCS#1 (SHA-1 included so that old
/// servers can sign at all; which one they pick is not the question here).
const SIGNATURE_SCHEMES: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080a, 0x080b, 0x0401,
    0x0501, 0x0601, 0x0201, 0x0203,
];

/// Runs every probe against `target` and returns what the server answered.
///
/// Version probes go first; the group, compression, extended-master-secret and fallback probes
/// depend on their outcome (a TLS 1.3 or TLS 1.2 group probe; the highest pre-1.3 version).
/// Suite probes and the all-versions probe run alongside from the start.
///
/// How groups are probed, and the limitation: with TLS 1.3 a HelloRetryRequest names the group
/// the server picked from an empty key_share. A server without TLS 1.3 is asked with a TLS 1.2
/// hello offering that one group and only the suites that use it (ECDHE, or DHE for the ffdhe
/// groups), and the probe reads on to the ServerKeyExchange to see the group actually used (an
/// RFC 7919 prime is recognised; a server's own DH prime is named with its size in the refusal).
/// So the groups are those of the server's highest version: on a TLS 1.3 server, what its
/// TLS 1.2 DHE suites would use is not looked at (the suite probes still show whether DHE is
/// accepted at all).
pub async fn scan(target: &ProbeTarget, opts: &ProbeOptions) -> TlsScan {
    let started = Instant::now();
    let prober = Prober::new(target, opts);

    let version_questions = TlsVersion::ALL.into_iter().map(Question::Version);
    let versions = prober.spawn(version_questions.collect());
    let independent = prober.spawn(independent_questions());
    let versions = collect(versions).await;
    let dependent = prober.spawn(dependent_questions(&versions));

    let mut asked = versions;
    asked.extend(collect(independent).await);
    asked.extend(collect(dependent).await);
    let mut scan = assemble(target, &asked);
    scan.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    scan
}

/// One question a single connection asks the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Question {
    /// The version alone (legacy negotiation up to TLS 1.2; supported_versions for TLS 1.3).
    Version(TlsVersion),
    /// One TLS 1.2 suite (plus the renegotiation SCSV).
    Suite12(u16),
    /// One TLS 1.3 suite.
    Suite13(u16),
    /// One group, TLS 1.3 with an empty key_share: a HelloRetryRequest names it.
    Group13(u16),
    /// One group, TLS 1.2 with only the suites that use it.
    Group12(u16),
    /// Every version at once: which does the server choose?
    AllVersions,
    /// `[deflate, null]` compression at this version.
    Compression(TlsVersion),
    /// extended_master_secret at this version.
    ExtendedMasterSecret(TlsVersion),
    /// TLS_FALLBACK_SCSV at this version (below the server's highest).
    Fallback(TlsVersion),
}

fn independent_questions() -> Vec<Question> {
    let suites12 = TLS12_SUITES.iter().map(|(id, _)| Question::Suite12(*id));
    let suites13 = TLS13_SUITES.iter().map(|(id, _)| Question::Suite13(*id));
    suites12
        .chain(suites13)
        .chain([Question::AllVersions])
        .collect()
}

/// The questions that need the version answers first.
fn dependent_questions(versions: &[Asked]) -> Vec<Question> {
    let accepted = accepted_versions(versions);
    let tls13 = accepted.contains(&TlsVersion::Tls13);
    let mut legacy: Vec<TlsVersion> = accepted
        .into_iter()
        .filter(|v| *v != TlsVersion::Tls13)
        .collect();
    legacy.sort_by(|a, b| b.cmp(a));
    let mut questions: Vec<Question> = GROUPS
        .iter()
        .map(|(id, _)| {
            if tls13 {
                Question::Group13(*id)
            } else {
                Question::Group12(*id)
            }
        })
        .collect();
    if let Some(highest) = legacy.first() {
        questions.push(Question::Compression(*highest));
        questions.push(Question::ExtendedMasterSecret(*highest));
    }
    if let Some(below) = legacy.get(1) {
        questions.push(Question::Fallback(*below));
    }
    questions
}

fn accepted_versions(asked: &[Asked]) -> Vec<TlsVersion> {
    asked
        .iter()
        .filter_map(|a| match a.question {
            Question::Version(v) if version_answer(v, a).is_accepted() => Some(v),
            _ => None,
        })
        .collect()
}

impl Question {
    fn spec(self) -> HelloSpec {
        match self {
            Question::Version(TlsVersion::Tls13) => HelloSpec::tls13(all_tls13_suites()),
            Question::Version(v) => HelloSpec::legacy(v, broad_legacy_suites()),
            Question::Suite12(id) => {
                HelloSpec::legacy(TlsVersion::Tls12, vec![id, SCSV_RENEGOTIATION])
            }
            Question::Suite13(id) => HelloSpec::tls13(vec![id]),
            Question::Group13(group) => HelloSpec {
                groups: vec![group],
                key_share: KeyShare::Empty,
                ..HelloSpec::tls13(all_tls13_suites())
            },
            Question::Group12(group) => HelloSpec {
                groups: vec![group],
                read_key_exchange: true,
                ..HelloSpec::legacy(TlsVersion::Tls12, suites_for_group(group))
            },
            Question::AllVersions => {
                let mut suites = all_tls13_suites();
                suites.extend(broad_legacy_suites());
                HelloSpec {
                    supported_versions: Some(vec![0x0304, 0x0303, 0x0302, 0x0301]),
                    key_share: KeyShare::X25519,
                    ..HelloSpec::legacy(TlsVersion::Tls12, suites)
                }
            }
            Question::Compression(v) => HelloSpec {
                compression: vec![COMPRESSION_DEFLATE, COMPRESSION_NULL],
                ..HelloSpec::legacy(v, broad_legacy_suites())
            },
            Question::ExtendedMasterSecret(v) => HelloSpec {
                extended_master_secret: true,
                ..HelloSpec::legacy(v, broad_legacy_suites())
            },
            Question::Fallback(v) => {
                let mut suites = broad_legacy_suites();
                suites.push(SCSV_FALLBACK);
                HelloSpec::legacy(v, suites)
            }
        }
    }
}

fn all_tls13_suites() -> Vec<u16> {
    TLS13_SUITES.iter().map(|(id, _)| *id).collect()
}

/// Every TLS 1.2 suite in the table plus the renegotiation SCSV: an old server finds one.
fn broad_legacy_suites() -> Vec<u16> {
    let mut suites: Vec<u16> = TLS12_SUITES.iter().map(|(id, _)| *id).collect();
    suites.push(SCSV_RENEGOTIATION);
    suites
}

/// The suites whose key exchange uses `group`: DHE for the ffdhe groups, ECDHE otherwise.
fn suites_for_group(group: u16) -> Vec<u16> {
    let prefix = if is_ffdhe_group(group) {
        "TLS_DHE_"
    } else {
        "TLS_ECDHE_"
    };
    let mut suites: Vec<u16> = TLS12_SUITES
        .iter()
        .filter(|(_, name)| name.starts_with(prefix))
        .map(|(id, _)| *id)
        .collect();
    suites.push(SCSV_RENEGOTIATION);
    suites
}

// ---------------------------------------------------------------------------------------------
// ClientHello

/// What a key_share extension carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyShare {
    Omitted,
    /// An empty list: the server must answer with a HelloRetryRequest naming its group.
    Empty,
    /// One x25519 share of 32 random bytes (never used: the handshake is not completed).
    X25519,
}

/// The parts of a ClientHello a probe varies.
#[derive(Debug, Clone)]
struct HelloSpec {
    client_version: u16,
    suites: Vec<u16>,
    compression: Vec<u8>,
    /// The supported_versions extension; `None` leaves it out (legacy negotiation only).
    supported_versions: Option<Vec<u16>>,
    groups: Vec<u16>,
    key_share: KeyShare,
    extended_master_secret: bool,
    /// Read past the ServerHello to the ServerKeyExchange (TLS 1.2 group probes).
    read_key_exchange: bool,
}

impl HelloSpec {
    /// A pre-TLS 1.3 hello: client_version `v`, no supported_versions.
    fn legacy(v: TlsVersion, suites: Vec<u16>) -> HelloSpec {
        HelloSpec {
            client_version: v.wire(),
            suites,
            compression: vec![COMPRESSION_NULL],
            supported_versions: None,
            groups: COMMON_GROUPS.to_vec(),
            key_share: KeyShare::Omitted,
            extended_master_secret: false,
            read_key_exchange: false,
        }
    }

    /// A TLS 1.3-only hello: legacy_version `0303`, supported_versions `[0304]`, an x25519 share.
    fn tls13(suites: Vec<u16>) -> HelloSpec {
        HelloSpec {
            supported_versions: Some(vec![0x0304]),
            key_share: KeyShare::X25519,
            ..HelloSpec::legacy(TlsVersion::Tls12, suites)
        }
    }
}

/// A ClientHello ready to send, with its random values fixed so the reply can be judged
/// against exactly what was sent.
#[derive(Debug, Clone)]
struct ClientHello {
    spec: HelloSpec,
    sni: Option<String>,
    random: [u8; 32],
    x25519_share: [u8; 32],
}

impl ClientHello {
    fn new(spec: HelloSpec, host: &str) -> ClientHello {
        ClientHello {
            spec,
            sni: sni_name(host),
            random: random_bytes(),
            x25519_share: random_bytes(),
        }
    }

    /// SSLv3 hellos go in an SSLv3 record; everything else in a TLS 1.0 record, as browsers
    /// and testssl.sh do, because some servers refuse higher record versions.
    fn record_version(&self) -> u16 {
        self.spec.client_version.min(0x0301)
    }

    fn key_share_groups(&self) -> Vec<u16> {
        match self.spec.key_share {
            KeyShare::X25519 => vec![X25519],
            KeyShare::Omitted | KeyShare::Empty => vec![],
        }
    }

    /// The extensions in the order they are sent (without padding).
    fn extensions(&self) -> Vec<(u16, Vec<u8>)> {
        let spec = &self.spec;
        let mut exts = Vec::new();
        if let Some(name) = &self.sni {
            // server_name_list: one host_name (type 0) entry.
            let entry = [&[0u8][..], &u16_prefixed(name.as_bytes())].concat();
            exts.push((EXT_SERVER_NAME, u16_prefixed(&entry)));
        }
        if !spec.groups.is_empty() {
            exts.push((EXT_SUPPORTED_GROUPS, u16_prefixed(&u16_list(&spec.groups))));
            exts.push((EXT_EC_POINT_FORMATS, vec![1, 0]));
        }
        exts.push((
            EXT_SIGNATURE_ALGORITHMS,
            u16_prefixed(&u16_list(SIGNATURE_SCHEMES)),
        ));
        if spec.extended_master_secret {
            exts.push((EXT_EXTENDED_MASTER_SECRET, vec![]));
        }
        if let Some(versions) = &spec.supported_versions {
            exts.push((EXT_SUPPORTED_VERSIONS, u8_prefixed(&u16_list(versions))));
        }
        match spec.key_share {
            KeyShare::Omitted => {}
            KeyShare::Empty => exts.push((EXT_KEY_SHARE, u16_prefixed(&[]))),
            KeyShare::X25519 => {
                let entry = [&X25519.to_be_bytes()[..], &u16_prefixed(&self.x25519_share)].concat();
                exts.push((EXT_KEY_SHARE, u16_prefixed(&entry)));
            }
        }
        exts
    }

    /// The ClientHello body (after the handshake header), given its extensions block.
    fn body(&self, exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::with_capacity(512);
        body.extend_from_slice(&self.spec.client_version.to_be_bytes());
        body.extend_from_slice(&self.random);
        body.push(0); // empty legacy_session_id
        body.extend_from_slice(&u16_prefixed(&u16_list(&self.spec.suites)));
        body.extend_from_slice(&u8_prefixed(&self.spec.compression));
        let block: Vec<u8> = exts
            .iter()
            .flat_map(|(id, data)| [&id.to_be_bytes()[..], &u16_prefixed(data)].concat())
            .collect();
        body.extend_from_slice(&u16_prefixed(&block));
        body
    }

    /// The whole record as sent.
    ///
    /// A ClientHello of 256–511 bytes is padded to 512 (RFC 7685), as BoringSSL and
    /// testssl.sh do: some middleboxes hang on hellos of that size, which would look like a
    /// silent server.
    fn encode(&self) -> Vec<u8> {
        let mut exts = self.extensions();
        let unpadded = self.body(&exts).len() + 4;
        if (256..512).contains(&unpadded) {
            // The padding extension's own header takes four bytes; it needs at least one byte
            // of content to be robust against servers that mishandle empty extensions.
            let pad = (512 - unpadded).saturating_sub(4).max(1);
            exts.push((EXT_PADDING, vec![0; pad]));
        }
        let body = self.body(&exts);
        let mut handshake = vec![CLIENT_HELLO];
        handshake.extend_from_slice(&u24(body.len()));
        handshake.extend_from_slice(&body);
        let mut record = vec![HANDSHAKE];
        record.extend_from_slice(&self.record_version().to_be_bytes());
        record.extend_from_slice(&u16_prefixed(&handshake)[..]);
        record
    }
}

/// The SNI name for `host`: none for an IP literal (RFC 6066 §3) or a name no DNS name can be.
fn sni_name(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.');
    let plausible =
        !host.is_empty() && host.len() <= 253 && host.parse::<std::net::IpAddr>().is_err();
    plausible.then(|| host.to_ascii_lowercase())
}

fn u16_list(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// `data` behind a two-byte length. Everything built here is far below 64 KiB.
fn u16_prefixed(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    [&len.to_be_bytes()[..], data].concat()
}

fn u8_prefixed(data: &[u8]) -> Vec<u8> {
    let len = u8::try_from(data.len()).unwrap_or(u8::MAX);
    [&[len][..], data].concat()
}

fn u24(len: usize) -> [u8; 3] {
    let len = u32::try_from(len).unwrap_or(0x00ff_ffff).min(0x00ff_ffff);
    let [_, a, b, c] = len.to_be_bytes();
    [a, b, c]
}

/// 32 random bytes for a client random or a throwaway key share. aws-lc-rs supplies them; if it
/// ever cannot, std's randomly keyed hasher does (nothing here needs cryptographic strength,
/// only bytes that differ per hello and are not all zero).
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(chunk.len());
            let word = hasher.finish().to_be_bytes();
            chunk.copy_from_slice(word.get(..chunk.len()).unwrap_or(&[]));
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// Reply parsing

/// A ServerHello or HelloRetryRequest, as far as the probes need it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerHello {
    legacy_version: u16,
    random: [u8; 32],
    session_id: Vec<u8>,
    suite: u16,
    compression: u8,
    extensions: Vec<(u16, Vec<u8>)>,
    /// From the ServerKeyExchange that follows, when it was read (TLS 1.2 group probes).
    key_exchange: Option<KeyExchange>,
}

/// The group a TLS 1.2 ServerKeyExchange uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyExchange {
    /// A named curve, or an RFC 7919 group recognised by its prime.
    Group(u16),
    /// Finite-field DH with a prime of the server's own.
    CustomDh { bits: usize },
}

impl ServerHello {
    fn extension(&self, id: u16) -> Option<&[u8]> {
        self.extensions
            .iter()
            .find(|(e, _)| *e == id)
            .map(|(_, data)| data.as_slice())
    }

    /// The version the server settled on: supported_versions if present, else legacy_version.
    fn version(&self) -> u16 {
        match self.extension(EXT_SUPPORTED_VERSIONS) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => self.legacy_version,
        }
    }

    fn is_hello_retry_request(&self) -> bool {
        self.random == HRR_RANDOM
    }

    /// The group of the key_share extension (the selected group in a HelloRetryRequest).
    fn key_share_group(&self) -> Option<u16> {
        match self.extension(EXT_KEY_SHARE) {
            Some(&[hi, lo, ..]) => Some(u16::from_be_bytes([hi, lo])),
            _ => None,
        }
    }

    fn has_downgrade_sentinel(&self) -> bool {
        self.random.get(24..) == Some(&DOWNGRADE_TLS12[..])
    }
}

/// How the server answered one ClientHello, before any judging.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Hello(ServerHello),
    /// A fatal alert, or close_notify.
    Alert(u8),
    /// End of stream before any record.
    Closed,
    /// TCP reset before any record.
    Reset,
}

/// Bounds-checked reading of a byte slice (also the PGO suite's SNI router's).
pub(crate) struct Cursor<'a>(pub(crate) &'a [u8]);

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        match self.take(2)? {
            &[hi, lo] => Some(u16::from_be_bytes([hi, lo])),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_server_hello(body: &[u8]) -> Result<ServerHello, String> {
    let truncated = |field: &str| format!("malformed ServerHello: truncated {field}");
    let mut r = Cursor(body);
    let legacy_version = r.u16().ok_or_else(|| truncated("version"))?;
    let random: [u8; 32] = r
        .take(32)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| truncated("random"))?;
    let id_len = r.u8().ok_or_else(|| truncated("session id"))?;
    if id_len > 32 {
        return Err(format!(
            "malformed ServerHello: session id of {id_len} bytes"
        ));
    }
    let session_id = r
        .take(usize::from(id_len))
        .ok_or_else(|| truncated("session id"))?
        .to_vec();
    let suite = r.u16().ok_or_else(|| truncated("cipher suite"))?;
    let compression = r.u8().ok_or_else(|| truncated("compression method"))?;
    let extensions = if r.is_empty() {
        Vec::new()
    } else {
        let len = r.u16().ok_or_else(|| truncated("extensions"))?;
        let block = r
            .take(usize::from(len))
            .ok_or_else(|| truncated("extensions"))?;
        if !r.is_empty() {
            return Err("malformed ServerHello: bytes after the extensions".into());
        }
        parse_extensions(block)?
    };
    Ok(ServerHello {
        legacy_version,
        random,
        session_id,
        suite,
        compression,
        extensions,
        key_exchange: None,
    })
}

/// The group of a ServerKeyExchange (RFC 8422 §5.4 for ECDHE, RFC 5246 §7.4.3 for DHE); the
/// signature after the parameters is not read.
fn parse_key_exchange(suite: u16, body: &[u8]) -> Result<KeyExchange, String> {
    let name = suite_name(suite).unwrap_or_default();
    let malformed = || "malformed ServerKeyExchange".to_string();
    let mut r = Cursor(body);
    if name.starts_with("TLS_ECDHE_") || name.starts_with("TLS_ECDH_anon_") {
        match r.u8() {
            Some(NAMED_CURVE) => r.u16().map(KeyExchange::Group).ok_or_else(malformed),
            Some(other) => Err(format!(
                "ServerKeyExchange with an explicit curve (curve type {other})"
            )),
            None => Err(malformed()),
        }
    } else if name.starts_with("TLS_DHE_") || name.starts_with("TLS_DH_anon_") {
        let len = r.u16().ok_or_else(malformed)?;
        let prime = r.take(usize::from(len)).ok_or_else(malformed)?;
        Ok(identify_dh_prime(prime))
    } else {
        Err(format!(
            "ServerKeyExchange for {}, which has no ephemeral key exchange",
            suite_label(suite)
        ))
    }
}

/// An RFC 7919 group if `prime` is one of its primes, else a custom group of its size.
///
/// The RFC 7919 primes are `2^b - 2^(b-64) + (floor(2^(b-130) e) + X) * 2^64 - 1`: 64 one bits,
/// then the bits of e (the same for every size), then a per-size tail before 64 one bits. Size,
/// the head and the tail together single out each prime.
fn identify_dh_prime(prime: &[u8]) -> KeyExchange {
    let start = prime.iter().position(|b| *b != 0).unwrap_or(prime.len());
    let prime = prime.get(start..).unwrap_or_default();
    let known = FFDHE_PRIMES.iter().find(|(_, bytes, tail)| {
        prime.len() == *bytes && prime.starts_with(&FFDHE_HEAD) && prime.ends_with(tail)
    });
    match known {
        Some((id, _, _)) => KeyExchange::Group(*id),
        None => {
            let top_bits = prime.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
            KeyExchange::CustomDh {
                bits: prime.len().saturating_sub(1) * 8 + top_bits,
            }
        }
    }
}

fn parse_extensions(block: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, String> {
    let mut r = Cursor(block);
    let mut exts: Vec<(u16, Vec<u8>)> = Vec::new();
    while !r.is_empty() {
        let id = r
            .u16()
            .ok_or("malformed ServerHello: truncated extension")?;
        let len = r
            .u16()
            .ok_or("malformed ServerHello: truncated extension")?;
        let data = r
            .take(usize::from(len))
            .ok_or_else(|| format!("malformed ServerHello: truncated extension {id:#06x}"))?;
        if exts.iter().any(|(e, _)| *e == id) {
            return Err(format!("malformed ServerHello: extension {id:#06x} twice"));
        }
        if id == EXT_SUPPORTED_VERSIONS && data.len() != 2 {
            return Err("malformed ServerHello: supported_versions is not one version".into());
        }
        exts.push((id, data.to_vec()));
    }
    Ok(exts)
}

/// Turns the bytes a server sends into a [`Reply`]: reassembles records, then the handshake
/// messages inside them, until a ServerHello or an alert is complete (or, for a TLS 1.2 group
/// probe, the ServerKeyExchange after the ServerHello).
#[derive(Debug, Default)]
struct Assembler {
    /// Read on past a pre-TLS 1.3 ServerHello to the ServerKeyExchange.
    read_key_exchange: bool,
    /// Bytes not yet forming a whole record.
    pending: Vec<u8>,
    /// Handshake bytes not yet forming a whole message.
    handshake: Vec<u8>,
    /// Alert bytes (an alert may in theory be split over records).
    alert: Vec<u8>,
    /// The ServerHello, while waiting for the ServerKeyExchange.
    server_hello: Option<ServerHello>,
}

impl Assembler {
    fn new(read_key_exchange: bool) -> Assembler {
        Assembler {
            read_key_exchange,
            ..Assembler::default()
        }
    }

    /// Feeds `bytes`; `Ok(Some(_))` once the answer is known, `Ok(None)` while more is needed.
    fn push(&mut self, bytes: &[u8]) -> Result<Option<Reply>, String> {
        self.pending.extend_from_slice(bytes);
        loop {
            let (content_type, len) = match record_header(&self.pending)? {
                Some(header) => header,
                None => return Ok(None),
            };
            let Some(fragment) = self.pending.get(5..5 + len).map(<[u8]>::to_vec) else {
                return Ok(None);
            };
            self.pending.drain(..5 + len);
            if let Some(reply) = self.record(content_type, &fragment)? {
                return Ok(Some(reply));
            }
        }
    }

    fn record(&mut self, content_type: u8, fragment: &[u8]) -> Result<Option<Reply>, String> {
        match content_type {
            ALERT => {
                self.alert.extend_from_slice(fragment);
                Ok(self.take_alert())
            }
            HANDSHAKE => {
                self.handshake.extend_from_slice(fragment);
                self.take_handshake()
            }
            CHANGE_CIPHER_SPEC => {
                Err("unexpected change_cipher_spec before the ServerHello".into())
            }
            APPLICATION_DATA => Err("unexpected application_data before the ServerHello".into()),
            _ => Err(format!(
                "unexpected record of type {content_type} before the ServerHello"
            )),
        }
    }

    /// The first fatal alert or close_notify. Warning alerts (say, unrecognized_name from a
    /// server that then goes on with its ServerHello) are skipped.
    fn take_alert(&mut self) -> Option<Reply> {
        while let [level, description, ..] = self.alert[..] {
            self.alert.drain(..2);
            if level != ALERT_WARNING || description == ALERT_CLOSE_NOTIFY {
                return Some(Reply::Alert(description));
            }
        }
        None
    }

    fn take_handshake(&mut self) -> Result<Option<Reply>, String> {
        while let Some((msg_type, body)) = self.next_message()? {
            if let Some(reply) = self.message(msg_type, &body)? {
                return Ok(Some(reply));
            }
        }
        Ok(None)
    }

    /// The next complete handshake message, taken out of the buffer.
    fn next_message(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        let [msg_type, a, b, c, ..] = self.handshake[..] else {
            return Ok(None);
        };
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        if msg_type == SERVER_HELLO && len > MAX_SERVER_HELLO {
            return Err(format!("malformed ServerHello: claims {len} bytes"));
        }
        let Some(body) = self.handshake.get(4..4 + len).map(<[u8]>::to_vec) else {
            return Ok(None);
        };
        self.handshake.drain(..4 + len);
        Ok(Some((msg_type, body)))
    }

    fn message(&mut self, msg_type: u8, body: &[u8]) -> Result<Option<Reply>, String> {
        let Some(sh) = &self.server_hello else {
            return match msg_type {
                HELLO_REQUEST if body.is_empty() => Ok(None),
                SERVER_HELLO => {
                    let sh = parse_server_hello(body)?;
                    if self.read_key_exchange && sh.version() < TlsVersion::Tls13.wire() {
                        self.server_hello = Some(sh);
                        Ok(None)
                    } else {
                        Ok(Some(Reply::Hello(sh)))
                    }
                }
                other => Err(format!(
                    "unexpected handshake message type {other} before the ServerHello"
                )),
            };
        };
        match msg_type {
            CERTIFICATE | CERTIFICATE_STATUS => Ok(None),
            SERVER_KEY_EXCHANGE => {
                let key_exchange = parse_key_exchange(sh.suite, body)?;
                Ok(Some(Reply::Hello(ServerHello {
                    key_exchange: Some(key_exchange),
                    ..sh.clone()
                })))
            }
            other => Err(format!(
                "no ServerKeyExchange for {} (handshake message type {other} instead)",
                suite_label(sh.suite)
            )),
        }
    }

    /// Whether the bytes so far end on a boundary (nothing half-received).
    fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.handshake.is_empty()
            && self.alert.is_empty()
            && self.server_hello.is_none()
    }

    /// What the end of the connection means: a refusal if nothing was half-received.
    fn ended(&self, how: Reply) -> Result<Reply, String> {
        if self.is_idle() {
            Ok(how)
        } else {
            let verb = if how == Reply::Reset {
                "reset"
            } else {
                "closed"
            };
            Err(format!("connection {verb} in the middle of a TLS message"))
        }
    }
}

/// The content type and length of the record at the start of `bytes`; `None` while fewer than
/// five bytes are there. Fails as soon as the first bytes cannot start a TLS record.
fn record_header(bytes: &[u8]) -> Result<Option<(u8, usize)>, String> {
    let plausible_type = bytes
        .first()
        .is_none_or(|t| (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(t));
    let plausible_major = bytes.get(1).is_none_or(|major| *major == 3);
    if !plausible_type || !plausible_major {
        return Err(not_a_record(bytes));
    }
    let &[content_type, _, _, hi, lo, ..] = bytes else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_FRAGMENT {
        return Err(not_a_record(bytes));
    }
    if len == 0 && content_type != APPLICATION_DATA {
        return Err(format!("empty record of type {content_type}"));
    }
    Ok(Some((content_type, len)))
}

/// "not a TLS record: …" with the first bytes in hex, and as text when they read as text.
fn not_a_record(bytes: &[u8]) -> String {
    let head = bytes.get(..bytes.len().min(16)).unwrap_or(bytes);
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let printable = head
        .iter()
        .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\r' || *b == b'\n');
    let text = if printable {
        format!(" ({:?})", String::from_utf8_lossy(head))
    } else {
        String::new()
    };
    format!("not a TLS record: starts with {}{text}", hex.join(" "))
}

// ---------------------------------------------------------------------------------------------
// Connections

/// Holds the limits and hands out connection permits.
struct Prober {
    target: Arc<ProbeTarget>,
    opts: Arc<ProbeOptions>,
    permits: Arc<Semaphore>,
}

/// A question under way.
struct Pending {
    question: Question,
    hello: ClientHello,
    task: JoinHandle<Result<Reply, String>>,
}

impl Drop for Pending {
    /// A scan that is dropped takes its probes with it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A question with its hello and the server's reply (`Err`: no usable reply).
#[derive(Debug, Clone)]
struct Asked {
    question: Question,
    hello: ClientHello,
    reply: Result<Reply, String>,
}

impl Prober {
    fn new(target: &ProbeTarget, opts: &ProbeOptions) -> Prober {
        Prober {
            target: Arc::new(target.clone()),
            opts: Arc::new(opts.clone()),
            permits: Arc::new(Semaphore::new(opts.max_connections.max(1))),
        }
    }

    fn spawn(&self, questions: Vec<Question>) -> Vec<Pending> {
        questions
            .into_iter()
            .map(|question| {
                let hello = ClientHello::new(question.spec(), &self.target.host);
                let (target, opts, permits) =
                    (self.target.clone(), self.opts.clone(), self.permits.clone());
                let sent = hello.clone();
                let task = tokio::spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return Err("probe cancelled".to_string());
                    };
                    exchange(&target, &opts, &sent).await
                });
                Pending {
                    question,
                    hello,
                    task,
                }
            })
            .collect()
    }
}

async fn collect(pending: Vec<Pending>) -> Vec<Asked> {
    let mut asked = Vec::with_capacity(pending.len());
    for mut p in pending {
        let reply = match (&mut p.task).await {
            Ok(reply) => reply,
            Err(e) => Err(format!("probe task failed: {e}")),
        };
        asked.push(Asked {
            question: p.question,
            hello: p.hello.clone(),
            reply,
        });
    }
    asked
}

/// One connection: connect, write the hello, read the reply, all before one deadline.
async fn exchange(
    target: &ProbeTarget,
    opts: &ProbeOptions,
    hello: &ClientHello,
) -> Result<Reply, String> {
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let ms = opts.timeout.as_millis();
    let mut stream = match tokio::time::timeout_at(deadline, TcpStream::connect(target.addr)).await
    {
        Err(_) => return Err(format!("no TCP connection within {ms} ms")),
        Ok(Err(e)) => return Err(format!("connect to {}: {e}", target.addr)),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    match tokio::time::timeout_at(deadline, stream.write_all(&hello.encode())).await {
        Err(_) => return Err(format!("could not write the ClientHello within {ms} ms")),
        Ok(Err(e)) if is_reset(&e) => return Ok(Reply::Reset),
        Ok(Err(e)) => return Err(format!("write the ClientHello: {e}")),
        Ok(Ok(())) => {}
    }
    read_reply(&mut stream, deadline, opts, hello.spec.read_key_exchange).await
}

fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

async fn read_reply(
    stream: &mut TcpStream,
    deadline: tokio::time::Instant,
    opts: &ProbeOptions,
    read_key_exchange: bool,
) -> Result<Reply, String> {
    let mut assembler = Assembler::new(read_key_exchange);
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(no_answer(opts.timeout, total)),
            Ok(Err(e)) if is_reset(&e) => return assembler.ended(Reply::Reset),
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Ok(Ok(0)) => return assembler.ended(Reply::Closed),
            Ok(Ok(n)) => n,
        };
        total += n;
        if let Some(reply) = assembler.push(buf.get(..n).unwrap_or_default())? {
            return Ok(reply);
        }
        if total >= opts.max_reply_bytes {
            return Err(format!(
                "reply exceeds {} bytes without a ServerHello",
                opts.max_reply_bytes
            ));
        }
    }
}

fn no_answer(timeout: Duration, received: usize) -> String {
    let ms = timeout.as_millis();
    if received == 0 {
        format!("no answer within {ms} ms")
    } else {
        format!("no complete ServerHello within {ms} ms ({received} bytes received)")
    }
}

// ---------------------------------------------------------------------------------------------
// Judging replies (pure)

fn version_label(wire: u16) -> String {
    TlsVersion::from_wire(wire).map_or_else(|| format!("version {wire:#06x}"), |v| v.to_string())
}

fn suite_label(id: u16) -> String {
    match suite_name(id) {
        Some(name) => format!("{name} ({id:#06x})"),
        None => format!("suite {id:#06x}"),
    }
}

fn is_tls13_suite(id: u16) -> bool {
    id >> 8 == 0x13
}

/// What in `sh` breaks the protocol given that `hello` was sent; `None` if nothing does.
fn violation(hello: &ClientHello, sh: &ServerHello) -> Option<String> {
    let spec = &hello.spec;
    let version = sh.version();
    let tls13 = version == TlsVersion::Tls13.wire();
    if sh.extension(EXT_SUPPORTED_VERSIONS).is_some() {
        let offered = spec.supported_versions.as_deref().unwrap_or_default();
        if !offered.contains(&version) {
            return Some(format!(
                "server selected {} in supported_versions, which the ClientHello did not offer",
                version_label(version)
            ));
        }
    } else if version > spec.client_version || version < TlsVersion::Ssl3.wire() {
        return Some(format!(
            "server chose {} although the ClientHello offered at most {}",
            version_label(version),
            version_label(spec.client_version)
        ));
    }
    if sh.is_hello_retry_request() && !tls13 {
        return Some("HelloRetryRequest without TLS 1.3 in supported_versions".into());
    }
    let offered_suite = spec.suites.contains(&sh.suite)
        && sh.suite != SCSV_RENEGOTIATION
        && sh.suite != SCSV_FALLBACK;
    if !offered_suite {
        return Some(format!(
            "server chose {}, which the ClientHello did not offer",
            suite_label(sh.suite)
        ));
    }
    if tls13 != is_tls13_suite(sh.suite) {
        return Some(format!(
            "server chose {} with {}",
            suite_label(sh.suite),
            version_label(version)
        ));
    }
    if !spec.compression.contains(&sh.compression) || (tls13 && sh.compression != 0) {
        return Some(format!(
            "server chose compression method {}, which the ClientHello did not offer",
            sh.compression
        ));
    }
    unsolicited_extension(hello, sh).or_else(|| tls13_violation(hello, sh))
}

/// RFC 5246 §7.4.1.4 / RFC 8446 §4.2: a server sends only extensions the client offered.
fn unsolicited_extension(hello: &ClientHello, sh: &ServerHello) -> Option<String> {
    let offered = hello.extensions();
    sh.extensions.iter().find_map(|(id, _)| {
        let allowed = offered.iter().any(|(e, _)| e == id)
            || (*id == EXT_RENEGOTIATION_INFO && hello.spec.suites.contains(&SCSV_RENEGOTIATION))
            || (*id == EXT_COOKIE && sh.is_hello_retry_request());
        (!allowed).then(|| {
            format!("ServerHello carries extension {id:#06x}, which the ClientHello did not offer")
        })
    })
}

fn tls13_violation(hello: &ClientHello, sh: &ServerHello) -> Option<String> {
    if sh.version() != TlsVersion::Tls13.wire() {
        return None;
    }
    if !sh.session_id.is_empty() {
        return Some("TLS 1.3 ServerHello does not echo the empty legacy_session_id".into());
    }
    let shares = hello.key_share_groups();
    match (sh.is_hello_retry_request(), sh.key_share_group()) {
        (true, Some(g)) if !hello.spec.groups.contains(&g) || shares.contains(&g) => Some(format!(
            "HelloRetryRequest selects group {g:#06x}, which was not offered or already had a share"
        )),
        (true, None) if sh.extension(EXT_COOKIE).is_none() => {
            Some("HelloRetryRequest that asks for no change".into())
        }
        (false, Some(g)) if !shares.contains(&g) => Some(format!(
            "ServerHello key_share for group {g:#06x}, for which no share was sent"
        )),
        (false, None) => Some("TLS 1.3 ServerHello without key_share (no PSK was offered)".into()),
        _ => None,
    }
}

/// The common part of judging: refusals and errors as they are, a ServerHello checked for
/// protocol violations and then handed to `judge`.
fn answer(asked: &Asked, judge: impl FnOnce(&ServerHello) -> Answer) -> Answer {
    match &asked.reply {
        Err(reason) => Answer::Error {
            reason: reason.clone(),
        },
        Ok(Reply::Alert(d)) => Answer::Refused {
            alert: Some(*d),
            reason: format!("alert {} ({d})", alert_name(*d)),
        },
        Ok(Reply::Closed) => Answer::Refused {
            alert: None,
            reason: "connection closed without a reply".into(),
        },
        Ok(Reply::Reset) => Answer::Refused {
            alert: None,
            reason: "connection reset without a reply".into(),
        },
        Ok(Reply::Hello(sh)) => match violation(&asked.hello, sh) {
            Some(v) => Answer::Error {
                reason: format!("protocol violation: {v}"),
            },
            None => judge(sh),
        },
    }
}

/// Accepted when the server settled on `wanted`; a legal lower version is a refusal.
fn at_version(sh: &ServerHello, wanted: TlsVersion) -> Option<Answer> {
    let chosen = sh.version();
    (chosen != wanted.wire()).then(|| Answer::Refused {
        alert: None,
        reason: format!("server chose {} instead of {wanted}", version_label(chosen)),
    })
}

fn version_answer(v: TlsVersion, asked: &Asked) -> Answer {
    answer(asked, |sh| at_version(sh, v).unwrap_or(Answer::Accepted))
}

fn suite_answer(v: TlsVersion, id: u16, asked: &Asked) -> Answer {
    answer(asked, |sh| {
        at_version(sh, v).unwrap_or_else(|| {
            if sh.suite == id {
                Answer::Accepted
            } else {
                Answer::Error {
                    reason: format!("server chose {} instead", suite_label(sh.suite)),
                }
            }
        })
    })
}

fn group13_answer(group: u16, asked: &Asked) -> Answer {
    answer(asked, |sh| {
        at_version(sh, TlsVersion::Tls13).unwrap_or_else(|| {
            if sh.key_share_group() == Some(group) {
                Answer::Accepted
            } else {
                Answer::Error {
                    reason: format!("server selected group {:?}", sh.key_share_group()),
                }
            }
        })
    })
}

/// Only suites using the group were offered; the ServerKeyExchange says which group the
/// server then used. A DHE server that ignores supported_groups (allowed before RFC 7919) has
/// not accepted the group; an ECDHE server that does has broken RFC 8422.
fn group12_answer(group: u16, asked: &Asked) -> Answer {
    answer(asked, |sh| match sh.key_exchange {
        Some(KeyExchange::Group(used)) if used == group => Answer::Accepted,
        Some(KeyExchange::Group(used)) if is_ffdhe_group(group) => Answer::Refused {
            alert: None,
            reason: format!(
                "server ignored supported_groups and used {}",
                group_label(used)
            ),
        },
        Some(KeyExchange::Group(used)) => Answer::Error {
            reason: format!(
                "protocol violation: ServerKeyExchange uses {}, which the ClientHello did not offer",
                group_label(used)
            ),
        },
        Some(KeyExchange::CustomDh { bits }) => Answer::Refused {
            alert: None,
            reason: format!("server ignored supported_groups and used its own {bits}-bit DH group"),
        },
        None => Answer::Error {
            reason: "no ServerKeyExchange after the ServerHello".into(),
        },
    })
}

fn group_label(id: u16) -> String {
    crate::tls_scan::group_name(id).map_or_else(|| format!("group {id:#06x}"), str::to_string)
}

/// A yes/no property of the ServerHello; `None` (with a note in `errors` when the probe failed)
/// when there is no ServerHello to look at.
fn property(
    what: &str,
    asked: &Asked,
    errors: &mut Vec<String>,
    has: impl Fn(&ServerHello) -> bool,
) -> Option<bool> {
    let mut seen = None;
    let answer = answer(asked, |sh| {
        seen = Some(has(sh));
        Answer::Accepted
    });
    if let Answer::Error { reason } = answer {
        errors.push(format!("{what}: {reason}"));
    }
    seen
}

fn fallback_answer(asked: &Asked, errors: &mut Vec<String>) -> Option<bool> {
    match answer(asked, |_| Answer::Accepted) {
        Answer::Refused {
            alert: Some(ALERT_INAPPROPRIATE_FALLBACK),
            ..
        } => Some(true),
        Answer::Accepted => Some(false),
        Answer::Refused { reason, .. } => {
            errors.push(format!(
                "fallback SCSV: refused with {reason}, not inappropriate_fallback"
            ));
            Some(false)
        }
        Answer::Error { reason } => {
            errors.push(format!("fallback SCSV: {reason}"));
            None
        }
    }
}

fn negotiated_version(asked: &Asked, errors: &mut Vec<String>) -> Option<TlsVersion> {
    let mut chosen = None;
    match answer(asked, |sh| {
        chosen = TlsVersion::from_wire(sh.version());
        Answer::Accepted
    }) {
        Answer::Accepted => chosen,
        Answer::Refused { reason, .. } | Answer::Error { reason } => {
            errors.push(format!("all versions offered: {reason}"));
            None
        }
    }
}

/// The ServerHello of the version probe for `v`, if it was accepted.
fn accepted_hello(asked: &[Asked], v: TlsVersion) -> Option<&ServerHello> {
    asked.iter().find_map(|a| match (&a.question, &a.reply) {
        (Question::Version(q), Ok(Reply::Hello(sh)))
            if *q == v && version_answer(v, a).is_accepted() =>
        {
            Some(sh)
        }
        _ => None,
    })
}

/// Secure renegotiation, read off the ServerHello of the highest accepted pre-1.3 version (all
/// of those hellos carry the renegotiation SCSV). RFC 5746 §3.6: on an initial handshake the
/// extension holds an empty renegotiated_connection, i.e. the single byte 0.
fn secure_renegotiation(asked: &[Asked], errors: &mut Vec<String>) -> Option<bool> {
    let legacy = [
        TlsVersion::Tls12,
        TlsVersion::Tls11,
        TlsVersion::Tls10,
        TlsVersion::Ssl3,
    ];
    let sh = legacy.iter().find_map(|v| accepted_hello(asked, *v))?;
    match sh.extension(EXT_RENEGOTIATION_INFO) {
        None => Some(false),
        Some([0]) => Some(true),
        Some(_) => {
            errors.push("renegotiation_info is not empty on an initial handshake".into());
            Some(false)
        }
    }
}

/// Applicable when the server accepts both TLS 1.3 and a TLS 1.2-only hello.
fn downgrade_sentinel(asked: &[Asked]) -> Option<bool> {
    accepted_hello(asked, TlsVersion::Tls13)?;
    accepted_hello(asked, TlsVersion::Tls12).map(ServerHello::has_downgrade_sentinel)
}

/// Builds the scan from every question asked and its reply.
fn assemble(target: &ProbeTarget, asked: &[Asked]) -> TlsScan {
    let mut scan = TlsScan {
        host: target.host.clone(),
        addr: target.addr.to_string(),
        versions: Vec::new(),
        suites: Vec::new(),
        groups: Vec::new(),
        compression_chosen: None,
        secure_renegotiation: None,
        extended_master_secret: None,
        negotiated_when_all_offered: None,
        downgrade_sentinel: None,
        fallback_scsv_refused: None,
        errors: Vec::new(),
        duration_ms: 0,
    };
    let errors = &mut scan.errors;
    for a in asked {
        match a.question {
            Question::Version(version) => scan.versions.push(VersionProbe {
                version,
                answer: version_answer(version, a),
            }),
            Question::Suite12(id) => scan.suites.push(suite_probe(TlsVersion::Tls12, id, a)),
            Question::Suite13(id) => scan.suites.push(suite_probe(TlsVersion::Tls13, id, a)),
            Question::Group13(id) => scan.groups.push(group_probe(id, group13_answer(id, a))),
            Question::Group12(id) => scan.groups.push(group_probe(id, group12_answer(id, a))),
            Question::AllVersions => {
                scan.negotiated_when_all_offered = negotiated_version(a, errors);
            }
            Question::Compression(_) => {
                scan.compression_chosen = property("compression", a, errors, |sh| {
                    sh.compression == COMPRESSION_DEFLATE
                });
            }
            Question::ExtendedMasterSecret(_) => {
                scan.extended_master_secret = property("extended master secret", a, errors, |sh| {
                    sh.extension(EXT_EXTENDED_MASTER_SECRET).is_some()
                });
            }
            Question::Fallback(_) => scan.fallback_scsv_refused = fallback_answer(a, errors),
        }
    }
    scan.secure_renegotiation = secure_renegotiation(asked, &mut scan.errors);
    scan.downgrade_sentinel = downgrade_sentinel(asked);
    scan
}

fn suite_probe(version: TlsVersion, id: u16, asked: &Asked) -> SuiteProbe {
    SuiteProbe {
        id,
        name: suite_name(id).unwrap_or_default().to_string(),
        version,
        answer: suite_answer(version, id, asked),
    }
}

fn group_probe(id: u16, answer: Answer) -> GroupProbe {
    GroupProbe {
        id,
        name: crate::tls_scan::group_name(id)
            .unwrap_or_default()
            .to_string(),
        answer,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rustls::SupportedCipherSuite;
    use tokio::net::TcpListener;

    use super::*;
    use crate::pki::{Channel, Pki};

    const HOST: &str = "api.x.koppeltest.test";

    // -- Byte builders for replies --------------------------------------------------------

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&u16_prefixed(payload));
        r
    }

    fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![msg_type];
        m.extend_from_slice(&u24(body.len()));
        m.extend_from_slice(body);
        m
    }

    fn server_hello_body(version: u16, suite: u16, exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&[7u8; 32]);
        b.push(0);
        b.extend_from_slice(&suite.to_be_bytes());
        b.push(0);
        let block: Vec<u8> = exts
            .iter()
            .flat_map(|(id, d)| [&id.to_be_bytes()[..], &u16_prefixed(d)].concat())
            .collect();
        b.extend_from_slice(&u16_prefixed(&block));
        b
    }

    fn asked(question: Question, reply: Result<Reply, String>) -> Asked {
        Asked {
            question,
            hello: ClientHello::new(question.spec(), HOST),
            reply,
        }
    }

    fn hello_reply(version: u16, suite: u16, exts: &[(u16, Vec<u8>)]) -> Result<Reply, String> {
        let body = server_hello_body(version, suite, exts);
        parse_server_hello(&body).map(Reply::Hello)
    }

    // -- Parser ----------------------------------------------------------------------------

    #[test]
    fn a_server_hello_split_over_two_records_is_reassembled() {
        let exts = [
            (EXT_RENEGOTIATION_INFO, vec![0]),
            (EXT_EXTENDED_MASTER_SECRET, vec![]),
        ];
        let msg = handshake(SERVER_HELLO, &server_hello_body(0x0303, 0xc02b, &exts));
        let (first, second) = msg.split_at(20);
        let bytes = [record(HANDSHAKE, first), record(HANDSHAKE, second)].concat();

        // All at once, and one byte at a time: the same ServerHello.
        let whole = Assembler::default().push(&bytes).unwrap();
        let mut assembler = Assembler::default();
        let mut trickled = None;
        for b in &bytes {
            if let Some(reply) = assembler.push(&[*b]).unwrap() {
                trickled = Some(reply);
            }
        }
        let Some(Reply::Hello(sh)) = whole else {
            panic!("no ServerHello: {whole:?}");
        };
        assert_eq!(trickled, Some(Reply::Hello(sh.clone())));
        assert_eq!((sh.legacy_version, sh.suite), (0x0303, 0xc02b));
        assert_eq!(sh.extension(EXT_RENEGOTIATION_INFO), Some(&[0u8][..]));
        assert!(sh.extension(EXT_EXTENDED_MASTER_SECRET).is_some());
    }

    #[test]
    fn several_handshake_messages_in_one_record_yield_the_server_hello() {
        let msgs = [
            handshake(HELLO_REQUEST, &[]),
            handshake(SERVER_HELLO, &server_hello_body(0x0303, 0xc02f, &[])),
            handshake(11, &[0, 0, 0]),
        ]
        .concat();
        let reply = Assembler::default()
            .push(&record(HANDSHAKE, &msgs))
            .unwrap();
        assert!(matches!(reply, Some(Reply::Hello(sh)) if sh.suite == 0xc02f));
    }

    #[test]
    fn warning_alerts_are_skipped_and_fatal_ones_answer() {
        let bytes = [record(ALERT, &[1, 112]), record(ALERT, &[2, 40])].concat();
        assert_eq!(
            Assembler::default().push(&bytes).unwrap(),
            Some(Reply::Alert(40))
        );
    }

    #[test]
    fn bytes_that_are_not_tls_are_named_as_such() {
        let err = Assembler::default()
            .push(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .unwrap_err();
        assert!(err.starts_with("not a TLS record"), "{err}");
        assert!(err.contains("HTTP/1.1"), "{err}");
        // Already the first byte gives garbage away.
        assert!(Assembler::default().push(b"\x00").is_err());
    }

    #[test]
    fn no_prefix_or_corruption_of_a_reply_makes_the_parser_panic() {
        let tls13 = handshake(
            SERVER_HELLO,
            &server_hello_body(0x0303, 0x1301, &[(EXT_SUPPORTED_VERSIONS, vec![3, 4])]),
        );
        let dhe = [&u16_prefixed(&[0xd3; 64])[..], &u16_prefixed(&[2])].concat();
        let replies = [
            [record(ALERT, &[1, 112]), record(HANDSHAKE, &tls13)].concat(),
            record(
                HANDSHAKE,
                &key_exchange_flight(0xc02f, &[NAMED_CURVE, 0, 0x17]),
            ),
            record(HANDSHAKE, &key_exchange_flight(0x009e, &dhe)),
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for (bytes, read_key_exchange) in replies.iter().flat_map(|r| [(r, false), (r, true)]) {
            for cut in 0..bytes.len() {
                let _ = Assembler::new(read_key_exchange).push(&bytes[..cut]);
                for _ in 0..32 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let mut corrupted = bytes.clone();
                    let at = (seed as usize) % corrupted.len();
                    corrupted[at] = (seed >> 32) as u8;
                    let _ = Assembler::new(read_key_exchange).push(&corrupted[..cut.max(at + 1)]);
                }
            }
        }
    }

    #[test]
    fn an_oversized_server_hello_claim_is_refused_before_it_is_read() {
        let bytes = record(HANDSHAKE, &[SERVER_HELLO, 0xff, 0xff, 0xff]);
        let err = Assembler::default().push(&bytes).unwrap_err();
        assert!(err.contains("claims"), "{err}");
    }

    fn key_exchange_flight(suite: u16, key_exchange: &[u8]) -> Vec<u8> {
        [
            handshake(SERVER_HELLO, &server_hello_body(0x0303, suite, &[])),
            handshake(CERTIFICATE, &[0, 0, 3, 0, 0, 0]),
            handshake(SERVER_KEY_EXCHANGE, key_exchange),
            handshake(14, &[]),
        ]
        .concat()
    }

    #[test]
    fn a_tls12_group_probe_reads_on_to_the_server_key_exchange() {
        // named_curve secp256r1, then a public key and a signature the probe never reads.
        let ske = [&[NAMED_CURVE, 0x00, 0x17, 1, 4][..], &[9; 80]].concat();
        let flight = key_exchange_flight(0xc02f, &ske);
        let (first, second) = flight.split_at(50);
        let bytes = [record(HANDSHAKE, first), record(HANDSHAKE, second)].concat();

        let reply = Assembler::new(true).push(&bytes).unwrap();
        let Some(Reply::Hello(sh)) = reply else {
            panic!("no ServerHello: {reply:?}");
        };
        assert_eq!(sh.key_exchange, Some(KeyExchange::Group(0x0017)));
        // Without asking for it, the ServerHello alone is the answer.
        let reply = Assembler::default().push(&bytes).unwrap();
        assert!(matches!(reply, Some(Reply::Hello(sh)) if sh.key_exchange.is_none()));
    }

    #[test]
    fn rfc7919_primes_are_recognised_and_others_sized() {
        let mut ffdhe2048 = FFDHE_HEAD.to_vec();
        ffdhe2048.resize(256 - 12, 0x5a);
        ffdhe2048.extend_from_slice(&FFDHE_PRIMES[0].2);
        assert_eq!(identify_dh_prime(&ffdhe2048), KeyExchange::Group(0x0100));
        // The same head and tail at another size is no RFC 7919 prime.
        let mut wrong_size = ffdhe2048.clone();
        wrong_size.insert(100, 0x5a);
        assert_eq!(
            identify_dh_prime(&wrong_size),
            KeyExchange::CustomDh { bits: 2056 }
        );
        // A leading zero byte (as DER-minded servers send) does not count.
        let custom = [&[0x00, 0xd3][..], &[0x77; 127]].concat();
        assert_eq!(
            identify_dh_prime(&custom),
            KeyExchange::CustomDh { bits: 1024 }
        );
    }

    #[test]
    fn a_dhe_server_ignoring_the_offered_group_refuses_it_and_says_what_it_used() {
        let prime = [&[0x00, 0xd3][..], &[0x77; 127]].concat();
        let ske = [
            &u16_prefixed(&prime)[..],
            &u16_prefixed(&[2]),
            &u16_prefixed(&[5; 128]),
        ]
        .concat();
        let bytes = record(HANDSHAKE, &key_exchange_flight(0x009e, &ske));
        let reply = Assembler::new(true).push(&bytes).unwrap().unwrap();
        let a = asked(Question::Group12(0x0100), Ok(reply));
        assert_eq!(
            group12_answer(0x0100, &a),
            Answer::Refused {
                alert: None,
                reason: "server ignored supported_groups and used its own 1024-bit DH group".into()
            }
        );
    }

    #[test]
    fn an_ecdhe_server_using_a_curve_never_offered_breaks_the_protocol() {
        let ske = [NAMED_CURVE, 0x00, 0x18, 1, 4];
        let bytes = record(HANDSHAKE, &key_exchange_flight(0xc02f, &ske));
        let reply = Assembler::new(true).push(&bytes).unwrap().unwrap();
        let a = asked(Question::Group12(0x001d), Ok(reply));
        let answer = group12_answer(0x001d, &a);
        assert!(
            matches!(&answer, Answer::Error { reason } if reason.contains("secp384r1")),
            "{answer:?}"
        );
    }

    // -- Judging ---------------------------------------------------------------------------

    #[test]
    fn a_server_hello_above_the_offered_version_is_a_protocol_violation() {
        let a = asked(
            Question::Version(TlsVersion::Tls10),
            hello_reply(0x0303, 0xc013, &[]),
        );
        let answer = version_answer(TlsVersion::Tls10, &a);
        assert!(
            matches!(&answer, Answer::Error { reason } if reason.starts_with("protocol violation")),
            "{answer:?}"
        );
    }

    #[test]
    fn a_server_hello_below_the_offered_version_is_a_refusal() {
        let a = asked(
            Question::Version(TlsVersion::Tls12),
            hello_reply(0x0301, 0xc013, &[]),
        );
        assert!(version_answer(TlsVersion::Tls12, &a).is_refused());
    }

    #[test]
    fn a_suite_never_offered_is_a_protocol_violation() {
        let a = asked(Question::Suite12(0xc02b), hello_reply(0x0303, 0x002f, &[]));
        let answer = suite_answer(TlsVersion::Tls12, 0xc02b, &a);
        assert!(
            matches!(&answer, Answer::Error { reason } if reason.contains("did not offer")),
            "{answer:?}"
        );
    }

    #[test]
    fn an_unsolicited_extension_is_a_protocol_violation() {
        let a = asked(
            Question::Suite12(0xc02b),
            hello_reply(0x0303, 0xc02b, &[(EXT_EXTENDED_MASTER_SECRET, vec![])]),
        );
        assert!(suite_answer(TlsVersion::Tls12, 0xc02b, &a).is_error());
    }

    #[test]
    fn a_hello_retry_request_naming_the_group_accepts_it() {
        let mut reply = hello_reply(
            0x0303,
            0x1301,
            &[
                (EXT_SUPPORTED_VERSIONS, vec![3, 4]),
                (EXT_KEY_SHARE, vec![0x01, 0x00]),
            ],
        );
        if let Ok(Reply::Hello(sh)) = &mut reply {
            sh.random = HRR_RANDOM;
        }
        let a = asked(Question::Group13(0x0100), reply);
        assert_eq!(group13_answer(0x0100, &a), Answer::Accepted);
        let other = Asked {
            question: Question::Group13(0x0017),
            hello: ClientHello::new(Question::Group13(0x0017).spec(), HOST),
            reply: a.reply.clone(),
        };
        assert!(group13_answer(0x0017, &other).is_error());
    }

    #[test]
    fn hellos_of_awkward_length_are_padded_to_512_bytes() {
        for question in [
            Question::Version(TlsVersion::Tls12),
            Question::Suite12(0xc02b),
        ] {
            let bytes = ClientHello::new(question.spec(), HOST).encode();
            let handshake_len = bytes.len() - 5;
            assert!(
                !(256..512).contains(&handshake_len),
                "{question:?}: {handshake_len}"
            );
        }
    }

    // -- Against real sockets --------------------------------------------------------------

    fn target(addr: SocketAddr) -> ProbeTarget {
        ProbeTarget {
            host: HOST.to_string(),
            addr,
        }
    }

    fn quick() -> ProbeOptions {
        ProbeOptions {
            timeout: Duration::from_millis(300),
            max_connections: 64,
            ..ProbeOptions::default()
        }
    }

    /// A rustls server as koppeltest's parties run it, and whether its leaf key is RSA.
    async fn rustls_server() -> (crate::tls::Server, bool) {
        crate::tls::install_crypto_provider();
        let pki = Pki::generate().unwrap();
        let leaf = pki.leaf(Channel::Back, HOST).unwrap();
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&leaf.key()).unwrap();
        let is_rsa = signer.algorithm() == rustls::SignatureAlgorithm::RSA;
        let config = crate::tls::server_config(&leaf, crate::tls::ClientAuth::None).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = crate::tls::serve(listener, config, axum::Router::new(), None);
        (server, is_rsa)
    }

    async fn scan_rustls() -> (TlsScan, bool) {
        let (server, is_rsa) = rustls_server().await;
        let scan = scan(&target(server.addr), &ProbeOptions::default()).await;
        (scan, is_rsa)
    }

    fn accepted_ids(scan: &TlsScan, version: TlsVersion) -> BTreeSet<u16> {
        scan.accepted_suites()
            .into_iter()
            .filter(|s| s.version == version)
            .map(|s| s.id)
            .collect()
    }

    fn provider_suites(tls13: bool, rsa_leaf: bool) -> BTreeSet<u16> {
        rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)) == tls13)
            .map(|s| s.suite())
            .filter(|cs| tls13 || cs.as_str().unwrap_or_default().contains("_RSA_") == rsa_leaf)
            .map(u16::from)
            .collect()
    }

    /// Against a correct server no probe may be an error: that would be a bug in a hello.
    fn assert_no_errors(scan: &TlsScan) {
        let answers = scan
            .versions
            .iter()
            .map(|p| (p.version.to_string(), &p.answer))
            .chain(scan.suites.iter().map(|p| (p.name.clone(), &p.answer)))
            .chain(scan.groups.iter().map(|p| (p.name.clone(), &p.answer)));
        for (what, answer) in answers {
            assert!(!answer.is_error(), "{what}: {answer:?}");
        }
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    }

    #[tokio::test]
    async fn rustls_accepts_tls12_and_tls13_and_refuses_older_versions() {
        let (scan, _) = scan_rustls().await;
        assert_no_errors(&scan);
        assert_eq!(
            scan.accepted_versions(),
            [TlsVersion::Tls12, TlsVersion::Tls13]
        );
        for p in &scan.versions {
            if p.version < TlsVersion::Tls12 {
                assert!(p.answer.is_refused(), "{}: {:?}", p.version, p.answer);
            }
        }
        assert_eq!(scan.host, HOST);
    }

    #[tokio::test]
    async fn rustls_accepts_exactly_its_default_suites_for_the_leaf_key() {
        let (scan, is_rsa) = scan_rustls().await;
        assert_no_errors(&scan);
        assert_eq!(
            accepted_ids(&scan, TlsVersion::Tls12),
            provider_suites(false, is_rsa)
        );
        assert_eq!(
            accepted_ids(&scan, TlsVersion::Tls13),
            provider_suites(true, is_rsa)
        );
        assert_eq!(scan.suites.len(), TLS12_SUITES.len() + TLS13_SUITES.len());
    }

    #[tokio::test]
    async fn rustls_accepts_exactly_its_key_exchange_groups() {
        let (scan, _) = scan_rustls().await;
        assert_no_errors(&scan);
        let provided: BTreeSet<u16> = rustls::crypto::aws_lc_rs::default_provider()
            .kx_groups
            .iter()
            .map(|g| u16::from(g.name()))
            .collect();
        let probed: BTreeSet<u16> = GROUPS.iter().map(|(id, _)| *id).collect();
        let accepted: BTreeSet<u16> = scan.accepted_groups().iter().map(|g| g.id).collect();
        assert_eq!(accepted, &provided & &probed);
        for name in ["x25519", "secp256r1", "secp384r1"] {
            assert!(
                scan.accepted_groups().iter().any(|g| g.name == name),
                "{name}"
            );
        }
        let ffdhe2048 = scan.groups.iter().find(|g| g.id == 0x0100).unwrap();
        assert!(ffdhe2048.answer.is_refused(), "{:?}", ffdhe2048.answer);
    }

    #[tokio::test]
    async fn rustls_hello_properties() {
        let (scan, _) = scan_rustls().await;
        assert_eq!(scan.compression_chosen, Some(false));
        assert_eq!(scan.secure_renegotiation, Some(true));
        assert_eq!(scan.extended_master_secret, Some(true));
        assert_eq!(scan.negotiated_when_all_offered, Some(TlsVersion::Tls13));
        assert_eq!(scan.downgrade_sentinel, Some(true));
        // Only one pre-1.3 version: the fallback question does not apply.
        assert_eq!(scan.fallback_scsv_refused, None);
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    }

    /// Every probe answer in the scan.
    fn answers(scan: &TlsScan) -> Vec<&Answer> {
        scan.versions
            .iter()
            .map(|p| &p.answer)
            .chain(scan.suites.iter().map(|p| &p.answer))
            .chain(scan.groups.iter().map(|p| &p.answer))
            .collect()
    }

    /// A TCP server that accepts and hands each connection to `handle`.
    async fn tcp_server<F, Fut>(handle: F) -> SocketAddr
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream));
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_silent_server_gives_errors_within_the_timeout() {
        let addr = tcp_server(|stream| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        })
        .await;
        let started = Instant::now();
        let scan = scan(&target(addr), &quick()).await;
        // Two rounds of 300 ms (versions, then what depends on them), with room for a slow CI.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let answers = answers(&scan);
        assert_eq!(
            answers.len(),
            5 + TLS12_SUITES.len() + TLS13_SUITES.len() + GROUPS.len()
        );
        for answer in answers {
            assert!(
                matches!(answer, Answer::Error { reason } if reason == "no answer within 300 ms"),
                "{answer:?}"
            );
        }
        assert_eq!(scan.negotiated_when_all_offered, None);
        assert_eq!(scan.compression_chosen, None);
        assert!(!scan.errors.is_empty());
    }

    #[tokio::test]
    async fn a_server_writing_garbage_gives_errors_that_say_so() {
        let addr = tcp_server(|mut stream| async move {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let scan = scan(&target(addr), &quick()).await;
        for answer in answers(&scan) {
            assert!(
                matches!(answer, Answer::Error { reason } if reason.starts_with("not a TLS record")),
                "{answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_that_closes_at_once_refuses_everything() {
        let addr = tcp_server(|stream| async move { drop(stream) }).await;
        let scan = scan(&target(addr), &quick()).await;
        for answer in answers(&scan) {
            assert!(
                matches!(answer, Answer::Refused { alert: None, .. }),
                "{answer:?}"
            );
        }
        assert!(scan.accepted_versions().is_empty());
    }

    #[tokio::test]
    async fn an_endless_reply_stops_at_max_reply_bytes() {
        let addr = tcp_server(|mut stream| async move {
            // A well-formed but never-ending stream of warning alerts.
            let alert = record(ALERT, &[1, 112]);
            for _ in 0..100_000 {
                if stream.write_all(&alert).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let opts = ProbeOptions {
            timeout: Duration::from_secs(5),
            max_connections: 4,
            max_reply_bytes: 1024,
        };
        let hello = ClientHello::new(Question::Version(TlsVersion::Tls12).spec(), HOST);
        let reply = exchange(&target(addr), &opts, &hello).await;
        assert_eq!(
            reply,
            Err("reply exceeds 1024 bytes without a ServerHello".to_string())
        );
    }
}
