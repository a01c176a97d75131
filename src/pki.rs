//! The test PKI: a certificate hierarchy with MedMij's shapes, generated, never real.
//!
//! - **Back channel** (token, resource, artifact resolution): a root and a services CA shaped
//!   like "Staat der Nederlanden Private Root CA – G1" → "Private Services CA – G1"; leaves carry
//!   serverAuth and clientAuth, because MedMij back-channel nodes are both.
//! - **Front channel** (authorization endpoint, TVS login, redirect URI): a CA shaped like a
//!   public OV issuer; leaves are serverAuth only and never wildcards.
//! - **SAML**: RSA-2048 key pairs with self-signed certificates, as they appear in SAML metadata
//!   (signing for the TVS and each DVA, encryption for each DVA).
//!
//! Shapes, not only names: PKIoverheid issues RSA only, so every key here is RSA (CAs 4096,
//! leaves 3072: "sufficient" under both NCSC editions), signed with SHA-256. Back-channel leaves
//! carry the private-services server policy [`PRIVATE_SERVICES_POLICY`], a 20-digit OIN in the
//! subject's serialNumber, KU digitalSignature + keyEncipherment and EKU serverAuth + clientAuth;
//! front-channel leaves carry the CA/Browser Forum OV policy [`OV_POLICY`] and EKU serverAuth.
//!
//! [`Broken`] variants (expired, not yet valid, another host, wildcard, self-signed, unknown CA,
//! no clientAuth, issued by the other channel's CA, about to expire) are generated on demand for
//! the quirks of the simulated DVA and the client-certificate scenarios.
//!
//! Leaves are issued on demand for any host under [`TEST_DOMAIN`], so a matrix can name new
//! hosts without regenerating the hierarchy. `koppeltest pki init --out DIR` writes the CAs,
//! the leaves of the embedded default matrix and a README; `--pki DIR` loads them back.
//!
//! This module does not decide trust (that is `tls`), and it never touches a real PKIoverheid key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RsaKeySize, SanType,
    SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// The reserved domain (RFC 6761 `.test`) under which every simulated host lives. koppeltest's
/// own clients resolve these names to loopback; nothing else can.
pub const TEST_DOMAIN: &str = "koppeltest.test";

/// PKIoverheid certificate policy of private-services server certificates (Private Services CA
/// – G1), as back-channel leaves carry it. [U] taken from public PKIoverheid test material; confirm
/// against the Programme of Requirements before relying on the exact arc.
pub const PRIVATE_SERVICES_POLICY: &[u64] = &[2, 16, 528, 1, 1003, 1, 2, 8, 6];

/// CA/Browser Forum organisation-validated (OV) policy, as a public front-channel leaf carries it.
pub const OV_POLICY: &[u64] = &[2, 23, 140, 1, 2, 2];

/// Which trust domain a leaf belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Front,
    Back,
}

/// A deliberately broken certificate for a host, generated, never real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Broken {
    /// Expired yesterday.
    Expired,
    /// Valid from tomorrow.
    NotYetValid,
    /// A valid chain for another host name (`other.<host>`).
    OtherHost,
    /// `*.<parent domain>` instead of the host name.
    Wildcard,
    /// Self-signed, no chain.
    SelfSigned,
    /// Issued by a CA that is in no trust store.
    UnknownCa,
    /// Back channel without clientAuth in its EKU.
    NoClientAuth,
    /// Issued by the other channel's CA (a public OV certificate on the back channel).
    OtherChannelCa,
    /// Valid, but expiring in this many days.
    ExpiresIn(u32),
    /// An RSA-1024 key (made with OpenSSL: see [`crate::legacy_tls::weak_certificate`]).
    Rsa1024,
    /// Signed with SHA-1 (made with OpenSSL).
    Sha1Signed,
}

/// A certificate with its private key, ready for rustls.
#[derive(Debug)]
pub struct Leaf {
    /// Leaf first, then any intermediate.
    pub chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Vec<u8>,
    pub chain_pem: String,
    key_pem: String,
    /// The chain with its key loaded for rustls, made once (see [`crate::tls::certified_key`]):
    /// loading validates the RSA key and sets up its blinding, which then serves every handshake.
    pub(crate) certified: OnceLock<Arc<rustls::sign::CertifiedKey>>,
}

impl Leaf {
    /// A leaf from PEM text: the certificate chain (leaf first) and its PKCS#8 private key.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Option<Leaf> {
        let chain: Vec<CertificateDer<'static>> = certs_from_pem(chain_pem);
        let key_pkcs8 = pem_to_der(key_pem)?;
        if chain.is_empty() || !key_pem.contains("BEGIN PRIVATE KEY") {
            return None;
        }
        Some(Leaf {
            chain,
            key_pkcs8,
            chain_pem: chain_pem.to_string(),
            key_pem: key_pem.to_string(),
            certified: OnceLock::new(),
        })
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

/// An RSA key pair with a self-signed certificate, as published in SAML metadata.
#[derive(Debug)]
pub struct SamlKey {
    /// PKCS#8 DER of the private key (for signing and decryption).
    pub pkcs8: Vec<u8>,
    pub cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    /// The key loaded for signing, made once (see [`crate::saml::dsig::sign_bytes`]).
    pub(crate) signer: OnceLock<Result<aws_lc_rs::signature::RsaKeyPair, String>>,
}

impl SamlKey {
    /// The certificate as base64 DER, the form `ds:X509Certificate` carries.
    pub fn cert_b64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.cert_der)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generate {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("load {path}: {source}")]
    Load { path: PathBuf, source: rcgen::Error },
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

/// The hierarchy plus the leaves issued so far.
pub struct Pki {
    back_root: Ca,
    back_services: Ca,
    front: Ca,
    dir: Option<PathBuf>,
    leaves: Mutex<HashMap<(Channel, String), Arc<Leaf>>>,
    broken: Mutex<HashMap<(Channel, String, Broken), Arc<Leaf>>>,
    /// A CA in no trust store, made ahead ([`Ahead::unknown_ca`]) or on first use.
    unknown_ca: Mutex<Option<Arc<Ca>>>,
    /// The one RSA-3072 key every leaf issued on demand carries, made ahead or on first use.
    leaf_key: Mutex<Option<Arc<KeyPair>>>,
    saml: Mutex<HashMap<String, Arc<SamlKey>>>,
    /// What became of the keys it was made with.
    keys: KeysNote,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "NL");
    dn.push(DnType::OrganizationName, "koppeltest (TEST ONLY)");
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

/// A random positive 16-byte serial. Not rcgen's default (a hash of the key): leaves share a key
/// and cached keys return run after run, and issuer plus serial must be unique (RFC 5280
/// 4.1.2.2; Firefox refuses a repeated pair).
fn random_serial() -> SerialNumber {
    let mut serial = crate::ids::random_bytes(16);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&serial)
}

/// A test OIN (20 digits, `00000009…`) derived from the host name, for the subject's
/// serialNumber as PKIoverheid puts it there.
pub fn test_oin(host: &str) -> String {
    let hash = host.bytes().fold(1_469_598_103_934_665_603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211)
    });
    format!("00000009{:012}", hash % 1_000_000_000_000)
}

/// DER of a certificatePolicies extension naming `oids` (RFC 5280 §4.2.1.4), no qualifiers.
fn certificate_policies(oids: &[&[u64]]) -> CustomExtension {
    let infos: Vec<u8> = oids
        .iter()
        .flat_map(|oid| der(0x30, &der_oid(oid)))
        .collect();
    CustomExtension::from_oid_content(&[2, 5, 29, 32], der(0x30, &infos))
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn der_oid(oid: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let (first, rest) = match oid {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        _ => (0, oid),
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    der(0x06, &body)
}

fn rsa_key(size: RsaKeySize, what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).map_err(gen_err(what))
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_string(),
        source,
    }
}

impl Ca {
    fn new_root(cn: &str, key: KeyPair) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(gen_err(cn))?;
        Ok(Ca::from_parts(cert.der().clone(), cert.pem(), key))
    }

    fn new_intermediate(cn: &str, key: KeyPair, parent: &Ca) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 1825);
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&key, &parent.issuer)
            .map_err(gen_err(cn))?;
        Ok(Ca::from_parts(cert.der().clone(), cert.pem(), key))
    }

    /// The CA in no trust store over `key`: its own key, since a CA sharing a leaf's key would
    /// blur what it stands for.
    fn unknown(key: KeyPair) -> Result<Ca, PkiError> {
        Ca::new_root(UNKNOWN_CA_CN, key)
    }

    fn from_parts(cert_der: CertificateDer<'static>, cert_pem: String, key: KeyPair) -> Ca {
        // The DER came from rcgen itself a moment ago, so parsing it back cannot fail.
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).expect("own CA certificate parses");
        Ca {
            issuer,
            cert_der,
            cert_pem,
        }
    }

    fn load(dir: &Path, name: &str) -> Result<Ca, PkiError> {
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key.pem"));
        let cert_pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|source| PkiError::Load {
            path: key_path.clone(),
            source,
        })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|source| PkiError::Load {
            path: cert_path.clone(),
            source,
        })?;
        let der = pem_to_der(&cert_pem).ok_or_else(|| PkiError::Load {
            path: cert_path.clone(),
            source: rcgen::Error::CouldNotParseCertificate,
        })?;
        Ok(Ca {
            issuer,
            cert_der: CertificateDer::from(der),
            cert_pem,
        })
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The first PEM block's DER bytes.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let start = pem.find("-----BEGIN")?;
    let body_start = start + pem[start..].find('\n')? + 1;
    let end = body_start + pem[body_start..].find("-----END")?;
    let b64: String = pem[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

const BACK_ROOT: &str = "back-root-ca";
const UNKNOWN_CA_CN: &str = "koppeltest TEST Unknown CA (in no trust store)";
const BACK_SERVICES: &str = "back-services-ca";
const FRONT: &str = "front-ca";

/// Keys a run will need, made side by side with the CA keys rather than one at a time on first
/// use, where each search for primes held the SAML key lock, and the scenarios waiting on it,
/// while one core did the work. They are the keys first use would make; only the moment differs.
#[derive(Debug, Default, Clone)]
pub struct Ahead {
    /// The key every leaf issued on demand carries.
    pub leaf_key: bool,
    /// SAML key pairs, by name ([`Pki::saml_key`]).
    pub saml: Vec<String>,
    /// Impostors of SAML keys, by the name of the key they imitate ([`Pki::saml_impostor`]).
    pub impostors: Vec<String>,
    /// The key of the CA in no trust store ([`Broken::UnknownCa`]), made otherwise on first use
    /// under the lock every broken certificate is issued under.
    pub unknown_ca: bool,
    /// Where the CA keys and these keys are kept from one run to the next ([`KeyCache`]);
    /// `None`: all made afresh.
    pub cache: Option<KeyCache>,
}

/// A folder where an in-memory PKI keeps the keys [`Pki::generate_with`] makes, so the next run
/// takes them instead of searching for primes again: three RSA-4096 CA keys, the RSA-3072 keys of
/// the leaves and of the unknown CA, and the RSA-2048 SAML keys cost about 3 s of CPU at the start
/// of the default run, when nothing else can run. Only keys are kept: every run still issues its
/// own certificates (fresh serials, validity from now), and nothing here is ever written to a
/// report.
///
/// A key is taken only if it is an RSA key of the size its use asks, no other key in the same
/// hierarchy has the same public key (an impostor must not be the key it imitates) and the
/// folder is this user's and writable by them alone; anything else is made afresh and kept in
/// its place. Keeping is best effort: a run does not fail because its keys could not be kept.
/// Kept keys make the CAs the same from run to run (a trust anchor is a name and a key): a root
/// from one run's `inputs/pki/` also validates the leaves of later runs, until the folder is
/// deleted, which is safe at any time. The unknown CA stays the same too, and stays in no trust
/// store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCache {
    dir: PathBuf,
}

/// The environment variable naming the key cache folder, or `off` for none.
pub const KEY_CACHE_ENV: &str = "KOPPELTEST_KEY_CACHE";

/// The largest key file the key cache reads: an RSA-4096 PKCS#8 PEM is about 3.3 KiB.
const MAX_KEY_FILE: u64 = 64 * 1024;

impl KeyCache {
    pub fn new(dir: PathBuf) -> KeyCache {
        KeyCache { dir }
    }

    /// The cache a run uses unless told otherwise: `$KOPPELTEST_KEY_CACHE` (`off` or empty for
    /// none), else `$XDG_CACHE_HOME/koppeltest/keys`, else `$HOME/.cache/koppeltest/keys`.
    pub fn from_env() -> Option<KeyCache> {
        KeyCache::from_lookup(|name| std::env::var_os(name))
    }

    /// As [`KeyCache::from_env`], over the variables `var` gives. A relative `XDG_CACHE_HOME` is
    /// ignored, as the XDG Base Directory specification says: keys do not belong in whatever
    /// folder a run starts in.
    fn from_lookup(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<KeyCache> {
        if let Some(dir) = var(KEY_CACHE_ENV) {
            return (!dir.is_empty() && dir != "off").then(|| KeyCache::new(dir.into()));
        }
        let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
        let base =
            absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache")))?;
        Some(KeyCache::new(base.join("koppeltest").join("keys")))
    }

    /// The file of `slot`, if `slot` is a plain file name (SAML key names come from matrix row
    /// ids, which must not reach outside the folder).
    fn path(&self, slot: &str) -> Option<PathBuf> {
        let plain = !slot.is_empty()
            && slot.len() <= 120
            && !slot.starts_with('.')
            && slot
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        plain.then(|| self.dir.join(format!("{slot}.key.pem")))
    }

    /// Why the folder must not be used, if it exists and another user owns it or may write to
    /// it: keys planted there would be this run's.
    fn unsafe_reason(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.dir).ok()?;
        // The owner of /proc/self is this process's effective user (Linux); elsewhere the
        // owner is not compared.
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        let dir = self.dir.display();
        if me.is_some_and(|me| me != meta.uid()) {
            return Some(format!(
                "{dir} belongs to another user (uid {}); keys made afresh",
                meta.uid()
            ));
        }
        let mode = meta.mode();
        (mode & 0o022 != 0).then(|| {
            format!(
                "{dir} is writable by others (mode {:o}); keys made afresh",
                mode & 0o777
            )
        })
    }

    /// The RSA key of `bits` kept under `slot`, if there is one: a regular file (not a link,
    /// a FIFO or a device) of at most [`MAX_KEY_FILE`] bytes.
    fn load(&self, slot: &str, bits: usize) -> Option<KeyPair> {
        use std::io::Read;
        let path = self.path(slot)?;
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() || meta.len() > MAX_KEY_FILE {
            return None;
        }
        let mut pem = String::new();
        std::fs::File::open(&path)
            .ok()?
            .take(MAX_KEY_FILE)
            .read_to_string(&mut pem)
            .ok()?;
        let der = pem_to_der(&pem)?;
        let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).ok()?;
        if rsa.public_modulus_len() * 8 != bits {
            return None;
        }
        KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).ok()
    }

    /// Keeps `key` under `slot`: written beside it, readable by the owner alone, then renamed
    /// into place, so a concurrent run reads the old key or the new one, never half of one.
    fn store(&self, slot: &str, key: &KeyPair) -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = self
            .path(slot)
            .ok_or_else(|| format!("{slot:?} is not a plain file name"))?;
        let err = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| err("create", &self.dir, e))?;
        let tmp = self.dir.join(format!(
            ".{slot}.{}.{}.tmp",
            std::process::id(),
            crate::ids::random_hex(4)
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(key.serialize_pem().as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            std::fs::remove_file(&tmp).ok();
            err("write", &path, e)
        })
    }
}

/// What became of the keys [`Pki::generate_with`] needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeysNote {
    /// Taken from the key cache.
    pub reused: usize,
    /// Made in this run.
    pub made: usize,
    /// The key cache, if one was used.
    pub cache: Option<PathBuf>,
    /// Why the cache was not used or not written, if so.
    pub problem: Option<String>,
}

impl std::fmt::Display for KeysNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(cache) = &self.cache else {
            return write!(f, "{} made for this run, kept nowhere", self.made);
        };
        let cache = cache.display();
        match (&self.problem, self.made) {
            (Some(problem), _) => write!(
                f,
                "{} reused, {} made; the key cache: {problem}",
                self.reused, self.made
            ),
            (None, 0) => write!(f, "{} reused from {cache}", self.reused),
            (None, made) => write!(
                f,
                "{} reused, {made} made and kept in {cache} for the next run",
                self.reused
            ),
        }
    }
}

/// One key to make.
enum Search<'a> {
    /// A CA's key, by the file name [`Pki::write`] gives it and the CA's common name.
    Ca(&'static str, &'static str),
    LeafKey,
    UnknownCa,
    Saml(&'a str),
    Impostor(&'a str),
}

impl Search<'_> {
    /// The key's size, in rcgen's terms and in bits.
    fn size(&self) -> (RsaKeySize, usize) {
        match self {
            Search::Ca(..) => (RsaKeySize::_4096, 4096),
            Search::LeafKey | Search::UnknownCa => (RsaKeySize::_3072, 3072),
            Search::Saml(_) | Search::Impostor(_) => (RsaKeySize::_2048, 2048),
        }
    }

    fn run(&self) -> Result<KeyPair, PkiError> {
        rsa_key(self.size().0, self.what())
    }

    fn what(&self) -> &str {
        match self {
            Search::Ca(_, cn) => cn,
            Search::LeafKey => "leaf key",
            Search::UnknownCa => UNKNOWN_CA_CN,
            Search::Saml(name) | Search::Impostor(name) => name,
        }
    }

    /// Its name in the key cache.
    fn slot(&self) -> String {
        match self {
            Search::Ca(file, _) => file.to_string(),
            Search::LeafKey => "leaf".to_string(),
            Search::UnknownCa => "unknown-ca".to_string(),
            Search::Saml(name) => format!("saml-{name}"),
            Search::Impostor(name) => format!("impostor-{name}"),
        }
    }
}

/// Each of `searches`' keys, in order, made on one thread per core: the searches are taken in
/// order, so the slow ones should come first. A search whose thread panicked is an error.
fn search_all(searches: &[&Search<'_>]) -> Vec<Result<KeyPair, PkiError>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let found: Vec<Mutex<Option<Result<KeyPair, PkiError>>>> =
        searches.iter().map(|_| Mutex::new(None)).collect();
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(searches.len());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(search) = searches.get(i) else { break };
                        let made = search.run();
                        *found[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(made);
                    }
                })
            })
            .collect();
        // Joined here, so a panic is a missing key below rather than a panic of the scope.
        for worker in workers {
            let _ = worker.join();
        }
    });
    found
        .into_iter()
        .zip(searches)
        .map(|(slot, search)| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| {
                    Err(PkiError::Generate {
                        what: search.what().to_string(),
                        source: rcgen::Error::KeyGenerationUnavailable,
                    })
                })
        })
        .collect()
}

/// A key for each of `searches`, in order: taken from `cache` where it holds a fitting one that no
/// earlier search took, made (and kept in `cache`) otherwise.
fn keys_for(
    searches: &[Search<'_>],
    cache: Option<&KeyCache>,
) -> (Vec<Result<KeyPair, PkiError>>, KeysNote) {
    let mut note = KeysNote {
        cache: cache.map(|c| c.dir.clone()),
        ..KeysNote::default()
    };
    let unsafe_reason = cache.and_then(KeyCache::unsafe_reason);
    let cache = cache.filter(|_| unsafe_reason.is_none());
    note.problem = unsafe_reason;
    let mut taken = std::collections::HashSet::new();
    let mut keys: Vec<Option<Result<KeyPair, PkiError>>> = searches
        .iter()
        .map(|search| {
            let key = cache?.load(&search.slot(), search.size().1)?;
            // Two uses must never share a key, whatever the cache holds.
            taken
                .insert(key.public_key_raw().to_vec())
                .then_some(Ok(key))
        })
        .collect();
    note.reused = keys.iter().filter(|k| k.is_some()).count();
    let missing: Vec<usize> = (0..searches.len()).filter(|&i| keys[i].is_none()).collect();
    let wanted: Vec<&Search<'_>> = missing.iter().map(|&i| &searches[i]).collect();
    for (i, made) in missing.into_iter().zip(search_all(&wanted)) {
        if let Ok(key) = &made {
            note.made += 1;
            if let Some(Err(e)) = cache.map(|c| c.store(&searches[i].slot(), key)) {
                note.problem.get_or_insert(e);
            }
        }
        keys[i] = Some(made);
    }
    let keys = keys
        .into_iter()
        .map(|k| k.unwrap_or_else(|| Err(lost_key())))
        .collect();
    (keys, note)
}

/// A key [`keys_for`] did not answer for (not expected: it answers every search, in order).
fn lost_key() -> PkiError {
    PkiError::Generate {
        what: "a key made ahead".into(),
        source: rcgen::Error::KeyGenerationUnavailable,
    }
}

impl Pki {
    /// A fresh hierarchy in memory.
    pub fn generate() -> Result<Pki, PkiError> {
        Pki::generate_with(&Ahead::default())
    }

    /// A fresh hierarchy in memory, with the keys `ahead` names made at the same time, or taken
    /// from its key cache.
    pub fn generate_with(ahead: &Ahead) -> Result<Pki, PkiError> {
        const BACK_ROOT_CN: &str = "koppeltest TEST Private Root CA - G1";
        const SERVICES_CN: &str = "koppeltest TEST Private Services CA - G1";
        const FRONT_CN: &str = "koppeltest TEST Public OV CA";
        // An RSA-4096 key takes 0.3 to 1.5 s to find: the CAs' keys are sought first, and every
        // key on whichever core is free, so the last one is found about when the CPU time of
        // all of them, spread over the cores, is spent.
        let mut searches = vec![
            Search::Ca(BACK_ROOT, BACK_ROOT_CN),
            Search::Ca(BACK_SERVICES, SERVICES_CN),
            Search::Ca(FRONT, FRONT_CN),
        ];
        if ahead.leaf_key {
            searches.push(Search::LeafKey);
        }
        if ahead.unknown_ca {
            searches.push(Search::UnknownCa);
        }
        searches.extend(ahead.saml.iter().map(|name| Search::Saml(name)));
        searches.extend(ahead.impostors.iter().map(|name| Search::Impostor(name)));
        let (keys, note) = keys_for(&searches, ahead.cache.as_ref());
        let mut keys = keys.into_iter();
        let mut next = || keys.next().unwrap_or_else(|| Err(lost_key()));
        let (back_root, services, front) = (next(), next(), next());
        let leaf_key = ahead.leaf_key.then(&mut next).transpose();
        let unknown_ca = ahead.unknown_ca.then(&mut next).transpose();
        let mut saml = |names: &[String]| {
            names
                .iter()
                .map(|name| Ok((name.clone(), Arc::new(saml_key_with(name, next()?)?))))
                .collect::<Result<Vec<_>, PkiError>>()
        };
        let (saml_keys, impostors) = (saml(&ahead.saml), saml(&ahead.impostors));
        let back_root = Ca::new_root(BACK_ROOT_CN, back_root?)?;
        let back_services = Ca::new_intermediate(SERVICES_CN, services?, &back_root)?;
        let front = Ca::new_root(FRONT_CN, front?)?;
        let mut pki = Pki::from_cas(back_root, back_services, front, None);
        pki.keys = note;
        *pki.leaf_key.lock().unwrap_or_else(|e| e.into_inner()) = leaf_key?.map(Arc::new);
        *pki.unknown_ca.lock().unwrap_or_else(|e| e.into_inner()) =
            unknown_ca?.map(Ca::unknown).transpose()?.map(Arc::new);
        let mut cache = pki.saml.lock().unwrap_or_else(|e| e.into_inner());
        cache.extend(saml_keys?);
        cache.extend(
            impostors?
                .into_iter()
                .map(|(name, key)| (impostor_tag(&name), key)),
        );
        drop(cache);
        Ok(pki)
    }

    /// What became of the keys this PKI was made with ([`Pki::generate_with`]).
    pub fn keys_note(&self) -> &KeysNote {
        &self.keys
    }

    /// Loads a hierarchy written by [`Pki::write`]. Leaves and SAML keys found in the folder are
    /// used; missing ones are issued from the loaded CAs.
    pub fn load(dir: &Path) -> Result<Pki, PkiError> {
        let back_root = Ca::load(dir, BACK_ROOT)?;
        let back_services = Ca::load(dir, BACK_SERVICES)?;
        let front = Ca::load(dir, FRONT)?;
        Ok(Pki::from_cas(
            back_root,
            back_services,
            front,
            Some(dir.to_path_buf()),
        ))
    }

    fn from_cas(back_root: Ca, back_services: Ca, front: Ca, dir: Option<PathBuf>) -> Pki {
        Pki {
            back_root,
            back_services,
            front,
            dir,
            leaves: Mutex::default(),
            broken: Mutex::default(),
            unknown_ca: Mutex::default(),
            leaf_key: Mutex::default(),
            saml: Mutex::default(),
            keys: KeysNote::default(),
        }
    }

    /// The three CA certificates as PEM by the names [`Pki::write`] gives them: the public part
    /// of the hierarchy, for the evidence a run keeps. Encoded afresh from the DER, so nothing
    /// else a loaded file held (a key pasted beside the certificate) comes along.
    pub fn ca_certificates(&self) -> [(&'static str, String); 3] {
        [
            (BACK_ROOT, &self.back_root),
            (BACK_SERVICES, &self.back_services),
            (FRONT, &self.front),
        ]
        .map(|(name, ca)| (name, pem_block("CERTIFICATE", &ca.cert_der)))
    }

    /// Trust anchors of one channel, DER.
    pub fn roots(&self, channel: Channel) -> Vec<CertificateDer<'static>> {
        match channel {
            Channel::Back => vec![self.back_root.cert_der.clone()],
            Channel::Front => vec![self.front.cert_der.clone()],
        }
    }

    /// The leaf for `host` on `channel`, issued on first use.
    pub fn leaf(&self, channel: Channel, host: &str) -> Result<Arc<Leaf>, PkiError> {
        // Held while issuing, so concurrent scenarios never mint two leaves for one host.
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        let key = (channel, host.to_string());
        if let Some(leaf) = leaves.get(&key) {
            return Ok(leaf.clone());
        }
        let leaf = Arc::new(match self.load_leaf(channel, host)? {
            Some(leaf) => leaf,
            None => self.issue(channel, host)?,
        });
        leaves.insert(key, leaf.clone());
        Ok(leaf)
    }

    fn leaf_paths(&self, channel: Channel, host: &str) -> Option<(PathBuf, PathBuf)> {
        let sub = match channel {
            Channel::Front => "front",
            Channel::Back => "back",
        };
        let dir = self.dir.as_ref()?.join(sub);
        Some((
            dir.join(format!("{host}.pem")),
            dir.join(format!("{host}.key.pem")),
        ))
    }

    fn load_leaf(&self, channel: Channel, host: &str) -> Result<Option<Leaf>, PkiError> {
        let Some((cert_path, key_path)) = self.leaf_paths(channel, host) else {
            return Ok(None);
        };
        if !cert_path.exists() {
            return Ok(None);
        }
        let chain_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let chain = split_pem(&chain_pem)
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key_pkcs8 = pem_to_der(&key_pem).ok_or_else(|| PkiError::Load {
            path: key_path.clone(),
            source: rcgen::Error::CouldNotParseKeyPair,
        })?;
        Ok(Some(Leaf {
            chain,
            key_pkcs8,
            chain_pem,
            key_pem,
            certified: OnceLock::new(),
        }))
    }

    fn issue(&self, channel: Channel, host: &str) -> Result<Leaf, PkiError> {
        self.issue_with(channel, host, &*self.leaf_key()?)
    }

    fn issue_with(&self, channel: Channel, host: &str, key: &KeyPair) -> Result<Leaf, PkiError> {
        let params = self.leaf_params(channel, host, 365)?;
        let (issuer, intermediate) = match channel {
            Channel::Back => (&self.back_services, Some(&self.back_services)),
            Channel::Front => (&self.front, None),
        };
        sign_leaf(params, host, key, issuer, intermediate)
    }

    /// A leaf for `host` with a key of its own, which from now on is the one [`Pki::leaf`]
    /// gives: what [`Pki::write`] puts in a folder is what vendors register, and a DVA that binds
    /// a client to its key must be able to tell the written parties apart.
    fn leaf_with_own_key(&self, channel: Channel, host: &str) -> Result<Arc<Leaf>, PkiError> {
        let leaf = Arc::new(self.issue_with(channel, host, &rsa_key(RsaKeySize::_3072, host)?)?);
        self.leaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((channel, host.to_string()), leaf.clone());
        Ok(leaf)
    }

    /// The key every leaf issued on demand carries. Generating an RSA-3072 key costs 0.05 to
    /// 0.7 s of CPU, and the default run needs some twenty leaves: one key for all saved a fifth
    /// of its CPU time. What the checks judge is the certificate (chain, names, dates, usages),
    /// never whether two parties' keys differ. Keys of their own: the leaves [`Pki::write`]
    /// puts in a folder, the unknown CA (a CA sharing a leaf's key would blur what it stands
    /// for, a signer no trust store knows), and the RSA-1024 and SHA-1 leaves OpenSSL makes.
    fn leaf_key(&self) -> Result<Arc<KeyPair>, PkiError> {
        let mut slot = self.leaf_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = slot.as_ref() {
            return Ok(key.clone());
        }
        let key = Arc::new(rsa_key(RsaKeySize::_3072, "leaf key")?);
        *slot = Some(key.clone());
        Ok(key)
    }

    /// What a conformant leaf for `host` on `channel` looks like, valid for `days`.
    fn leaf_params(
        &self,
        channel: Channel,
        host: &str,
        days: i64,
    ) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.serial_number = Some(random_serial());
        params.distinguished_name = dn(host);
        params.subject_alt_names = vec![SanType::DnsName(host.try_into().map_err(gen_err(host))?)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, days);
        match channel {
            Channel::Back => {
                params
                    .distinguished_name
                    .push(DnType::CustomDnType(vec![2, 5, 4, 5]), test_oin(host));
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
                params.custom_extensions = vec![certificate_policies(&[PRIVATE_SERVICES_POLICY])];
            }
            Channel::Front => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.custom_extensions = vec![certificate_policies(&[OV_POLICY])];
            }
        }
        Ok(params)
    }

    /// A broken certificate for `host` on `channel`, made on first use (see [`Broken`]).
    pub fn broken(
        &self,
        channel: Channel,
        host: &str,
        broken: Broken,
    ) -> Result<Arc<Leaf>, PkiError> {
        let mut cache = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        let key = (channel, host.to_string(), broken);
        if let Some(leaf) = cache.get(&key) {
            return Ok(leaf.clone());
        }
        let leaf = Arc::new(self.issue_broken(channel, host, broken)?);
        cache.insert(key, leaf.clone());
        Ok(leaf)
    }

    fn issue_broken(&self, channel: Channel, host: &str, broken: Broken) -> Result<Leaf, PkiError> {
        let mut params = self.leaf_params(channel, host, 365)?;
        let own = match channel {
            Channel::Back => (&self.back_services, Some(&self.back_services)),
            Channel::Front => (&self.front, None),
        };
        let now = OffsetDateTime::now_utc();
        match broken {
            Broken::Expired => {
                params.not_before = now - Duration::days(366);
                params.not_after = now - Duration::days(1);
            }
            Broken::NotYetValid => {
                params.not_before = now + Duration::days(1);
                params.not_after = now + Duration::days(366);
            }
            Broken::ExpiresIn(days) => {
                params.not_after = now + Duration::days(i64::from(days));
            }
            Broken::OtherHost => {
                let other = format!("other.{host}");
                params.distinguished_name = dn(&other);
                params.subject_alt_names = vec![SanType::DnsName(
                    other.as_str().try_into().map_err(gen_err(host))?,
                )];
            }
            Broken::Wildcard => {
                let parent = host.split_once('.').map_or(host, |(_, p)| p);
                let wildcard = format!("*.{parent}");
                params.distinguished_name = dn(&wildcard);
                params.subject_alt_names = vec![SanType::DnsName(
                    wildcard.as_str().try_into().map_err(gen_err(host))?,
                )];
            }
            Broken::NoClientAuth => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Broken::SelfSigned => {
                let key = self.leaf_key()?;
                let cert = params.self_signed(&*key).map_err(gen_err(host))?;
                return Ok(Leaf {
                    chain: vec![cert.der().clone()],
                    key_pkcs8: key.serialize_der(),
                    chain_pem: cert.pem(),
                    key_pem: key.serialize_pem(),
                    certified: OnceLock::new(),
                });
            }
            Broken::UnknownCa => {
                let ca = self.unknown_ca()?;
                return sign_leaf(params, host, &*self.leaf_key()?, &ca, Some(&ca));
            }
            Broken::Rsa1024 | Broken::Sha1Signed => {
                let weak = if broken == Broken::Rsa1024 {
                    crate::legacy_tls::WeakCertificate::Rsa1024
                } else {
                    crate::legacy_tls::WeakCertificate::Sha1Signed
                };
                let (ca, intermediate) = own;
                let (der, key_pem) = crate::legacy_tls::weak_certificate(
                    weak,
                    host,
                    &ca.cert_der,
                    &ca.issuer.key().serialize_der(),
                )
                .map_err(|e| PkiError::Generate {
                    what: format!("{host} ({broken:?}): {e}"),
                    source: rcgen::Error::KeyGenerationUnavailable,
                })?;
                let leaf_pem = pem_block("CERTIFICATE", &der);
                let mut chain = vec![CertificateDer::from(der)];
                let mut chain_pem = leaf_pem;
                if let Some(ca) = intermediate {
                    chain.push(ca.cert_der.clone());
                    chain_pem.push_str(&ca.cert_pem);
                }
                return Ok(Leaf {
                    chain,
                    key_pkcs8: pem_to_der(&key_pem).unwrap_or_default(),
                    chain_pem,
                    key_pem,
                    certified: OnceLock::new(),
                });
            }
            Broken::OtherChannelCa => {
                return match channel {
                    Channel::Back => sign_leaf(params, host, &*self.leaf_key()?, &self.front, None),
                    Channel::Front => sign_leaf(
                        params,
                        host,
                        &*self.leaf_key()?,
                        &self.back_services,
                        Some(&self.back_services),
                    ),
                };
            }
        }
        sign_leaf(params, host, &*self.leaf_key()?, own.0, own.1)
    }

    /// The CA in no trust store, made ahead or on first use.
    fn unknown_ca(&self) -> Result<Arc<Ca>, PkiError> {
        let mut slot = self.unknown_ca.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ca) = slot.as_ref() {
            return Ok(ca.clone());
        }
        let ca = Arc::new(Ca::unknown(rsa_key(RsaKeySize::_3072, UNKNOWN_CA_CN)?)?);
        *slot = Some(ca.clone());
        Ok(ca)
    }

    /// The SAML key pair called `name` (e.g. `tvs-signing`, `dva-conform-encryption`).
    pub fn saml_key(&self, name: &str) -> Result<Arc<SamlKey>, PkiError> {
        // Held while generating: two scenarios must see the same key for one DV.
        let mut cache = self.saml.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = cache.get(name) {
            return Ok(k.clone());
        }
        let loaded = match &self.dir {
            Some(dir) if dir.join("saml").join(format!("{name}.pem")).exists() => {
                let cert_pem = read(&dir.join("saml").join(format!("{name}.pem")))?;
                let key_path = dir.join("saml").join(format!("{name}.key.pem"));
                let key_pem = read(&key_path)?;
                let bad = |source| PkiError::Load {
                    path: key_path.clone(),
                    source,
                };
                SamlKey {
                    pkcs8: pem_to_der(&key_pem)
                        .ok_or_else(|| bad(rcgen::Error::CouldNotParseKeyPair))?,
                    cert_der: pem_to_der(&cert_pem)
                        .ok_or_else(|| bad(rcgen::Error::CouldNotParseCertificate))?,
                    cert_pem,
                    key_pem,
                    signer: OnceLock::new(),
                }
            }
            _ => generate_saml_key(name)?,
        };
        let key = Arc::new(loaded);
        cache.insert(name.to_string(), key.clone());
        Ok(key)
    }

    /// How many SAML keys and impostors this PKI holds, made or loaded.
    #[cfg(test)]
    pub(crate) fn saml_keys_made(&self) -> usize {
        self.saml.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A key of its own whose self-signed certificate copies the subject of the SAML key `name`:
    /// an impostor for the mock TVS's foreign-key fault. Never written by [`Pki::write`]; one made
    /// ahead is kept in the key cache like any other key made ahead.
    pub fn saml_impostor(&self, name: &str) -> Result<Arc<SamlKey>, PkiError> {
        let tag = impostor_tag(name);
        let mut cache = self.saml.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = cache.get(&tag) {
            return Ok(k.clone());
        }
        let key = Arc::new(generate_saml_key(name)?);
        cache.insert(tag, key.clone());
        Ok(key)
    }

    /// Writes the CAs, the leaves for `front_hosts`/`back_hosts`, the SAML keys named and a README.
    pub fn write(
        &self,
        dir: &Path,
        front_hosts: &[String],
        back_hosts: &[String],
        saml_keys: &[String],
    ) -> Result<(), PkiError> {
        for sub in ["front", "back", "saml"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| PkiError::Write { path: p, source })?;
        }
        for (name, ca) in [
            (BACK_ROOT, &self.back_root),
            (BACK_SERVICES, &self.back_services),
            (FRONT, &self.front),
        ] {
            write(&dir.join(format!("{name}.pem")), &ca.cert_pem)?;
            write(
                &dir.join(format!("{name}.key.pem")),
                &ca.issuer.key().serialize_pem(),
            )?;
        }
        for (channel, hosts, sub) in [
            (Channel::Front, front_hosts, "front"),
            (Channel::Back, back_hosts, "back"),
        ] {
            for host in hosts {
                let leaf = self.leaf_with_own_key(channel, host)?;
                write(&dir.join(sub).join(format!("{host}.pem")), &leaf.chain_pem)?;
                write(
                    &dir.join(sub).join(format!("{host}.key.pem")),
                    &leaf.key_pem,
                )?;
            }
        }
        for name in saml_keys {
            let key = self.saml_key(name)?;
            write(&dir.join("saml").join(format!("{name}.pem")), &key.cert_pem)?;
            write(
                &dir.join("saml").join(format!("{name}.key.pem")),
                &key.key_pem,
            )?;
        }
        write(&dir.join("README.md"), &readme(dir))
    }
}

/// Signs a leaf carrying `key`; the chain is the leaf plus `intermediate`.
fn sign_leaf(
    params: CertificateParams,
    host: &str,
    key: &KeyPair,
    issuer: &Ca,
    intermediate: Option<&Ca>,
) -> Result<Leaf, PkiError> {
    let cert = params
        .signed_by(key, &issuer.issuer)
        .map_err(gen_err(host))?;
    let mut chain = vec![cert.der().clone()];
    let mut chain_pem = cert.pem();
    if let Some(ca) = intermediate {
        chain.push(ca.cert_der.clone());
        chain_pem.push_str(&ca.cert_pem);
    }
    Ok(Leaf {
        chain,
        key_pkcs8: key.serialize_der(),
        chain_pem,
        key_pem: key.serialize_pem(),
        certified: OnceLock::new(),
    })
}

/// The SAML key cache's name for the impostor of the key `name`.
fn impostor_tag(name: &str) -> String {
    format!("impostor:{name}")
}

fn generate_saml_key(name: &str) -> Result<SamlKey, PkiError> {
    saml_key_with(name, rsa_key(RsaKeySize::_2048, name)?)
}

/// The SAML key pair `name` over `key`, with a fresh self-signed certificate.
fn saml_key_with(name: &str, key: KeyPair) -> Result<SamlKey, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&format!("{name} (SAML, TEST ONLY)"));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut params, 730);
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key).map_err(gen_err(name))?;
    Ok(SamlKey {
        pkcs8: key.serialize_der(),
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        signer: OnceLock::new(),
    })
}

/// One PEM block of `der` under `label`.
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every certificate in a PEM bundle.
pub fn certs_from_pem(pem: &str) -> Vec<CertificateDer<'static>> {
    split_pem(pem)
        .into_iter()
        .map(CertificateDer::from)
        .collect()
}

fn split_pem(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN") {
        let Some(end_rel) = rest[start..].find("-----END") else {
            break;
        };
        let block_end = start
            + end_rel
            + rest[start + end_rel..]
                .find('\n')
                .unwrap_or(rest.len() - start - end_rel);
        if let Some(der) = pem_to_der(&rest[start..block_end.min(rest.len())]) {
            out.push(der);
        }
        rest = &rest[block_end.min(rest.len())..];
        if rest.len() <= 1 {
            break;
        }
    }
    out
}

fn readme(dir: &Path) -> String {
    format!(
        "# koppeltest test PKI — TEST ONLY\n\n\
         Generated by koppeltest {version} on {date}. Nothing here is trusted by anything but\n\
         koppeltest runs that are pointed at this folder with `--pki {dir}`.\n\n\
         Regenerate with:\n\n    koppeltest pki init --out {dir} --force\n\n\
         | file | what |\n|---|---|\n\
         | `back-root-ca.pem` | back-channel root, shaped like Staat der Nederlanden Private Root CA – G1 |\n\
         | `back-services-ca.pem` | back-channel issuing CA, shaped like Private Services CA – G1 |\n\
         | `front-ca.pem` | front-channel CA, shaped like a public OV issuer |\n\
         | `back/<host>.pem` | back-channel leaf + chain (serverAuth, clientAuth): token, resource, SOAP, PGO client |\n\
         | `front/<host>.pem` | front-channel leaf (serverAuth, no wildcard): authorization endpoint, TVS login |\n\
         | `saml/<name>.pem` | RSA-2048 SAML signing/encryption certificates as published in metadata |\n\n\
         The `*.key.pem` files are private keys of this test hierarchy. Do not reuse them anywhere.\n\
         Every leaf here has a key of its own. Leaves for hosts that are missing here are issued\n\
         from these CAs when a run needs them, all with one key made for that run.\n",
        version = env!("CARGO_PKG_VERSION"),
        date = OffsetDateTime::now_utc().date(),
        dir = dir.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_hierarchy_loads_back_with_the_same_anchors() {
        let dir = std::env::temp_dir().join(format!("kt-pki-{}", crate::ids::random_hex(6)));
        let pki = Pki::generate().unwrap();
        let host = format!("api.x.{TEST_DOMAIN}");
        pki.write(
            &dir,
            &[],
            std::slice::from_ref(&host),
            &["tvs-signing".into()],
        )
        .unwrap();
        let loaded = Pki::load(&dir).unwrap();
        assert_eq!(loaded.roots(Channel::Back), pki.roots(Channel::Back));
        assert_eq!(
            loaded.leaf(Channel::Back, &host).unwrap().chain,
            pki.leaf(Channel::Back, &host).unwrap().chain
        );
        assert_eq!(
            loaded.saml_key("tvs-signing").unwrap().cert_der,
            pki.saml_key("tvs-signing").unwrap().cert_der
        );
        assert!(
            std::fs::read_to_string(dir.join("README.md"))
                .unwrap()
                .contains("pki init")
        );
        std::fs::remove_dir_all(dir).ok();
    }

    fn serial(leaf: &Leaf) -> Vec<u8> {
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf.chain[0]).unwrap();
        cert.tbs_certificate.raw_serial().to_vec()
    }

    #[test]
    fn keys_made_ahead_are_the_ones_first_use_hands_out() {
        let named = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let pki = Pki::generate_with(&Ahead {
            leaf_key: true,
            saml: named(&["tvs-signing", "dva-x-encryption"]),
            impostors: named(&["tvs-signing"]),
            unknown_ca: true,
            cache: None,
        })
        .unwrap();
        let unknown = pki.unknown_ca.lock().unwrap().clone().unwrap();
        let signed_by_unknown = pki
            .broken(Channel::Back, "api.z.koppeltest.test", Broken::UnknownCa)
            .unwrap();
        assert_eq!(
            signed_by_unknown.chain[1], unknown.cert_der,
            "the unknown CA made ahead is the one that signs"
        );
        let ahead = pki.leaf_key.lock().unwrap().clone().unwrap();
        let unknown_key = unknown.issuer.key().serialize_der();
        let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(&unknown_key).unwrap();
        assert_eq!(
            rsa.public_modulus_len(),
            384,
            "the unknown CA's key is RSA-3072"
        );
        assert_ne!(
            unknown_key,
            ahead.serialize_der(),
            "and not the leaves' key"
        );
        let leaf = pki.leaf(Channel::Back, "api.z.koppeltest.test").unwrap();
        assert_eq!(
            leaf.key_pkcs8,
            ahead.serialize_der(),
            "a leaf issued on demand carries the key made ahead"
        );
        let cached = |name: &str| pki.saml.lock().unwrap().get(name).cloned().unwrap();
        let (signing, impostor) = (cached("tvs-signing"), cached("impostor:tvs-signing"));
        assert!(Arc::ptr_eq(&pki.saml_key("tvs-signing").unwrap(), &signing));
        assert!(Arc::ptr_eq(
            &pki.saml_impostor("tvs-signing").unwrap(),
            &impostor
        ));
        assert!(Arc::ptr_eq(
            &pki.saml_key("dva-x-encryption").unwrap(),
            &cached("dva-x-encryption")
        ));
        assert_eq!(pki.saml.lock().unwrap().len(), 3, "first use made no key");
        assert_ne!(
            impostor.pkcs8, signing.pkcs8,
            "an impostor has a key of its own"
        );
        assert_ne!(
            pki.saml_key("dva-y-signing").unwrap().pkcs8,
            signing.pkcs8,
            "a key not made ahead is still made on first use"
        );
    }

    fn public(key: &KeyPair) -> Vec<u8> {
        key.public_key_raw().to_vec()
    }

    /// The public keys of a hierarchy's CAs, its leaf key, its SAML key and its impostor.
    fn public_keys(pki: &Pki) -> Vec<Vec<u8>> {
        let saml = |key: Arc<SamlKey>| {
            let (_, cert) = x509_parser::parse_x509_certificate(&key.cert_der).unwrap();
            cert.public_key().raw.to_vec()
        };
        let mut keys: Vec<Vec<u8>> = [&pki.back_root, &pki.back_services, &pki.front]
            .iter()
            .map(|ca| public(ca.issuer.key()))
            .collect();
        keys.push(public(&pki.leaf_key().unwrap()));
        keys.push(saml(pki.saml_key("tvs-signing").unwrap()));
        keys.push(saml(pki.saml_impostor("tvs-signing").unwrap()));
        keys.push(public(pki.unknown_ca().unwrap().issuer.key()));
        keys
    }

    #[test]
    fn a_key_cache_hands_its_keys_to_the_next_hierarchy_never_its_certificates() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kt-keys-{}", crate::ids::random_hex(6)));
        let keys = dir.join("keys");
        let ahead = Ahead {
            leaf_key: true,
            saml: vec!["tvs-signing".into()],
            impostors: vec!["tvs-signing".into()],
            unknown_ca: true,
            cache: Some(KeyCache::new(keys.clone())),
        };
        let note = |reused, made, problem: Option<&str>| KeysNote {
            reused,
            made,
            cache: Some(keys.clone()),
            problem: problem.map(str::to_string),
        };
        let first = Pki::generate_with(&ahead).unwrap();
        assert_eq!(first.keys_note(), &note(0, 7, None));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&keys), 0o700, "the folder is its owner's alone");
        assert_eq!(mode(&keys.join("back-root-ca.key.pem")), 0o600);

        let second = Pki::generate_with(&ahead).unwrap();
        assert_eq!(second.keys_note(), &note(7, 0, None));
        assert_eq!(public_keys(&second), public_keys(&first), "the same keys");
        assert_ne!(
            second.roots(Channel::Back),
            first.roots(Channel::Back),
            "a CA certificate of its own"
        );
        let serial_of = |der: &[u8]| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
            cert.tbs_certificate.raw_serial().to_vec()
        };
        for (was, now) in [
            (&first.back_root, &second.back_root),
            (&first.back_services, &second.back_services),
            (&first.front, &second.front),
        ] {
            assert_ne!(
                serial_of(&now.cert_der),
                serial_of(&was.cert_der),
                "a CA over a kept key still has a serial of its own"
            );
        }
        assert_ne!(
            serial_of(&second.saml_key("tvs-signing").unwrap().cert_der),
            serial_of(&first.saml_key("tvs-signing").unwrap().cert_der),
            "so does a SAML certificate"
        );
        let fresh = Pki::generate_with(&Ahead {
            cache: None,
            ..ahead.clone()
        })
        .unwrap();
        assert_eq!(fresh.keys_note().cache, None);
        let mut kept: Vec<String> = std::fs::read_dir(&keys)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            [
                "back-root-ca.key.pem",
                "back-services-ca.key.pem",
                "front-ca.key.pem",
                "impostor-tvs-signing.key.pem",
                "leaf.key.pem",
                "saml-tvs-signing.key.pem",
                "unknown-ca.key.pem"
            ],
            "keys only, no certificate, no temporary file"
        );
        assert!(
            public_keys(&fresh)
                .iter()
                .all(|k| !public_keys(&first).contains(k)),
            "without the cache every key is new"
        );

        // A damaged key, a key of the wrong size and an impostor that is the key it imitates
        // are made afresh, and kept in their place.
        std::fs::write(
            keys.join("leaf.key.pem"),
            "-----BEGIN PRIVATE KEY-----
AAAA
",
        )
        .unwrap();
        std::fs::copy(
            keys.join("saml-tvs-signing.key.pem"),
            keys.join("back-root-ca.key.pem"),
        )
        .unwrap();
        std::fs::copy(
            keys.join("saml-tvs-signing.key.pem"),
            keys.join("impostor-tvs-signing.key.pem"),
        )
        .unwrap();
        let third = Pki::generate_with(&ahead).unwrap();
        assert_eq!(third.keys_note(), &note(4, 3, None));
        let (was, now) = (public_keys(&first), public_keys(&third));
        assert_eq!(now[1..3], was[1..3], "the sound CA keys are kept");
        assert_eq!(now[4], was[4], "so is the SAML key");
        assert_eq!(now[6], was[6], "and the unknown CA's");
        for i in [0, 3, 5] {
            assert!(!was.contains(&now[i]), "key {i} is made afresh");
        }
        let mut distinct = now.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), now.len(), "no two uses share a key");
        assert_eq!(
            Pki::generate_with(&ahead).unwrap().keys_note(),
            &note(7, 0, None),
            "the new keys were kept"
        );

        // An unknown CA whose kept key is the leaves' is made afresh; the leaves keep theirs.
        std::fs::copy(keys.join("leaf.key.pem"), keys.join("unknown-ca.key.pem")).unwrap();
        let clash = Pki::generate_with(&ahead).unwrap();
        assert_eq!(clash.keys_note(), &note(6, 1, None));
        let after_clash = public_keys(&clash);
        assert_eq!(after_clash[3], now[3], "the leaves keep their key");
        assert!(
            !now.contains(&after_clash[6]),
            "the unknown CA gets one of its own"
        );
        let now = after_clash;

        // A key file that is a link is not followed: that key is made afresh, in its place.
        let elsewhere = dir.join("leaf-elsewhere.key.pem");
        std::fs::rename(keys.join("leaf.key.pem"), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, keys.join("leaf.key.pem")).unwrap();
        let linked = Pki::generate_with(&ahead).unwrap();
        assert_eq!(linked.keys_note(), &note(6, 1, None));
        assert_ne!(public_keys(&linked)[3], now[3]);
        let now = public_keys(&linked);
        assert!(
            std::fs::symlink_metadata(keys.join("leaf.key.pem"))
                .unwrap()
                .is_file(),
            "the link was replaced, not written through"
        );

        // A folder others may write to is neither used nor written.
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).unwrap();
        let shared = Pki::generate_with(&ahead).unwrap();
        let problem = shared.keys_note().problem.clone().unwrap();
        assert!(problem.contains("writable by others"), "{problem}");
        assert_eq!((shared.keys_note().reused, shared.keys_note().made), (0, 7));
        assert!(public_keys(&shared).iter().all(|k| !now.contains(k)));
        assert!(
            shared
                .keys_note()
                .to_string()
                .contains("writable by others")
        );
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
        let after = Pki::generate_with(&ahead).unwrap();
        assert_eq!(after.keys_note(), &note(7, 0, None));
        assert_eq!(
            public_keys(&after),
            now,
            "nothing was written while it was shared"
        );

        // Nor is a folder of another user's (checked where the test may hand it to one).
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            std::os::unix::fs::chown(&keys, Some(65534), None).unwrap();
            let theirs = Pki::generate_with(&ahead).unwrap();
            let problem = theirs.keys_note().problem.clone().unwrap();
            assert!(problem.contains("belongs to another user"), "{problem}");
            assert_eq!(theirs.keys_note().reused, 0);
            std::os::unix::fs::chown(&keys, Some(0), None).unwrap();
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_key_cache_is_where_the_environment_says() {
        use std::ffi::OsString;
        let env = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, OsString)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect();
            KeyCache::from_lookup(move |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
            .map(|c| c.dir)
        };
        let home = [("HOME", "/home/a"), ("XDG_CACHE_HOME", "/var/cache/a")];
        assert_eq!(
            env(&home),
            Some(PathBuf::from("/var/cache/a/koppeltest/keys"))
        );
        assert_eq!(
            env(&home[..1]),
            Some(PathBuf::from("/home/a/.cache/koppeltest/keys"))
        );
        assert_eq!(
            env(&[("HOME", "/home/a"), ("XDG_CACHE_HOME", "rel/cache")]),
            Some(PathBuf::from("/home/a/.cache/koppeltest/keys")),
            "a relative XDG_CACHE_HOME is ignored"
        );
        assert_eq!(env(&[("HOME", "")]), None, "no home, no cache");
        assert_eq!(env(&[]), None);
        let with = |value: &str| env(&[("HOME", "/home/a"), (KEY_CACHE_ENV, value)]);
        assert_eq!(with("/tmp/k"), Some(PathBuf::from("/tmp/k")));
        assert_eq!(with("off"), None);
        assert_eq!(with(""), None);
    }

    #[test]
    fn a_key_name_that_is_no_plain_file_name_is_made_and_not_kept() {
        let dir = std::env::temp_dir().join(format!("kt-keys-{}", crate::ids::random_hex(6)));
        let cache = KeyCache::new(dir.join("keys"));
        for slot in ["../leaf", "a/b", "a/../b", "x\0y", ".hidden", ""] {
            assert_eq!(cache.path(slot), None, "{slot:?}");
        }
        assert!(cache.path("saml-dva-x_1.signing").is_some());
        let pki = Pki::generate_with(&Ahead {
            saml: vec!["../../escape".into()],
            cache: Some(cache.clone()),
            ..Ahead::default()
        })
        .unwrap();
        let note = pki.keys_note();
        assert_eq!((note.reused, note.made), (0, 4));
        assert!(
            note.problem
                .as_deref()
                .unwrap()
                .contains("not a plain file name")
        );
        assert!(pki.saml_key("../../escape").is_ok());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn leaves_sharing_the_key_still_have_serials_of_their_own() {
        let pki = Pki::generate().unwrap();
        let a = pki.leaf(Channel::Back, "api.a.koppeltest.test").unwrap();
        let b = pki.leaf(Channel::Back, "api.b.koppeltest.test").unwrap();
        let expired = pki
            .broken(Channel::Back, "api.a.koppeltest.test", Broken::Expired)
            .unwrap();
        assert_eq!(a.key_pkcs8, b.key_pkcs8, "on-demand leaves share the key");
        let serials = [serial(&a), serial(&b), serial(&expired)];
        assert_ne!(serials[0], serials[1]);
        assert_ne!(serials[0], serials[2]);
        assert_ne!(serials[1], serials[2]);
    }

    #[test]
    fn written_leaves_have_keys_of_their_own() {
        let dir = std::env::temp_dir().join(format!("kt-pki-{}", crate::ids::random_hex(6)));
        let pki = Pki::generate().unwrap();
        let hosts = [
            "medmij.pgo-a.koppeltest.test".to_string(),
            "medmij.pgo-b.koppeltest.test".to_string(),
        ];
        pki.write(&dir, &[], &hosts, &[]).unwrap();
        let key = |host: &str| std::fs::read(dir.join("back").join(format!("{host}.key.pem")));
        assert_ne!(key(&hosts[0]).unwrap(), key(&hosts[1]).unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn back_channel_leaves_chain_to_the_services_ca() {
        let pki = Pki::generate().unwrap();
        let leaf = pki.leaf(Channel::Back, "api.y.koppeltest.test").unwrap();
        assert_eq!(leaf.chain.len(), 2, "leaf plus services CA");
        let front = pki.leaf(Channel::Front, "www.y.koppeltest.test").unwrap();
        assert_eq!(front.chain.len(), 1);
    }
}
