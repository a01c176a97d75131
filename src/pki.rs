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
    /// A CA in no trust store, made on first use.
    unknown_ca: Mutex<Option<Arc<Ca>>>,
    /// The one RSA-3072 key every leaf issued on demand carries, made on first use.
    leaf_key: Mutex<Option<Arc<KeyPair>>>,
    saml: Mutex<HashMap<String, Arc<SamlKey>>>,
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
        let cert = params.self_signed(&key).map_err(gen_err(cn))?;
        Ok(Ca::from_parts(cert.der().clone(), cert.pem(), key))
    }

    fn new_intermediate(cn: &str, key: KeyPair, parent: &Ca) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 1825);
        let cert = params
            .signed_by(&key, &parent.issuer)
            .map_err(gen_err(cn))?;
        Ok(Ca::from_parts(cert.der().clone(), cert.pem(), key))
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
}

/// One key to make.
enum Search<'a> {
    Ca(&'static str),
    LeafKey,
    Saml(&'a str),
}

/// A key made.
enum Found {
    Rsa(KeyPair),
    Saml(SamlKey),
}

impl Search<'_> {
    fn run(&self) -> Result<Found, PkiError> {
        match self {
            Search::Ca(cn) => rsa_key(RsaKeySize::_4096, cn).map(Found::Rsa),
            Search::LeafKey => rsa_key(RsaKeySize::_3072, "leaf key").map(Found::Rsa),
            Search::Saml(name) => generate_saml_key(name).map(Found::Saml),
        }
    }

    fn what(&self) -> &str {
        match self {
            Search::Ca(cn) => cn,
            Search::LeafKey => "leaf key",
            Search::Saml(name) => name,
        }
    }
}

/// Each of `searches`' keys, in order, made on one thread per core: the searches are taken in
/// order, so the slow ones should come first. A search whose thread panicked is an error.
fn search_all(searches: &[Search<'_>]) -> Vec<Result<Found, PkiError>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let found: Vec<Mutex<Option<Result<Found, PkiError>>>> =
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

impl Pki {
    /// A fresh hierarchy in memory.
    pub fn generate() -> Result<Pki, PkiError> {
        Pki::generate_with(&Ahead::default())
    }

    /// A fresh hierarchy in memory, with the keys `ahead` names made at the same time.
    pub fn generate_with(ahead: &Ahead) -> Result<Pki, PkiError> {
        const BACK_ROOT_CN: &str = "koppeltest TEST Private Root CA - G1";
        const SERVICES_CN: &str = "koppeltest TEST Private Services CA - G1";
        const FRONT_CN: &str = "koppeltest TEST Public OV CA";
        // An RSA-4096 key takes 0.3 to 1.5 s to find: the CAs' keys are sought first, and every
        // key on whichever core is free, so the last one is found about when the CPU time of
        // all of them, spread over the cores, is spent.
        let mut searches = vec![
            Search::Ca(BACK_ROOT_CN),
            Search::Ca(SERVICES_CN),
            Search::Ca(FRONT_CN),
        ];
        if ahead.leaf_key {
            searches.push(Search::LeafKey);
        }
        searches.extend(ahead.saml.iter().map(|name| Search::Saml(name)));
        searches.extend(ahead.impostors.iter().map(|name| Search::Saml(name)));
        let mut found = search_all(&searches).into_iter();
        // Not expected: search_all answers each search, in order, with its kind of key.
        let lost = || PkiError::Generate {
            what: "a key made ahead".into(),
            source: rcgen::Error::KeyGenerationUnavailable,
        };
        let mut rsa = || match found.next() {
            Some(Ok(Found::Rsa(key))) => Ok(key),
            Some(Err(e)) => Err(e),
            _ => Err(lost()),
        };
        let (back_root, services, front) = (rsa(), rsa(), rsa());
        let leaf_key = ahead.leaf_key.then(&mut rsa).transpose();
        let mut saml = |names: &[String]| {
            names
                .iter()
                .map(|name| match found.next() {
                    Some(Ok(Found::Saml(key))) => Ok((name.clone(), Arc::new(key))),
                    Some(Err(e)) => Err(e),
                    _ => Err(lost()),
                })
                .collect::<Result<Vec<_>, PkiError>>()
        };
        let (saml_keys, impostors) = (saml(&ahead.saml), saml(&ahead.impostors));
        let back_root = Ca::new_root(BACK_ROOT_CN, back_root?)?;
        let back_services = Ca::new_intermediate(SERVICES_CN, services?, &back_root)?;
        let front = Ca::new_root(FRONT_CN, front?)?;
        let pki = Pki::from_cas(back_root, back_services, front, None);
        *pki.leaf_key.lock().unwrap_or_else(|e| e.into_inner()) = leaf_key?.map(Arc::new);
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
        // Random, not rcgen's default (a hash of the key): the leaves share a key, and issuer
        // plus serial must be unique (RFC 5280 4.1.2.2; Firefox refuses a repeated pair).
        let mut serial = crate::ids::random_bytes(16);
        serial[0] = (serial[0] & 0x7f) | 0x40;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
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

    fn unknown_ca(&self) -> Result<Arc<Ca>, PkiError> {
        let mut slot = self.unknown_ca.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ca) = slot.as_ref() {
            return Ok(ca.clone());
        }
        let name = "koppeltest TEST Unknown CA (in no trust store)";
        let key = rsa_key(RsaKeySize::_3072, name)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key).map_err(gen_err(name))?;
        let ca = Arc::new(Ca::from_parts(cert.der().clone(), cert.pem(), key));
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

    /// A fresh key whose self-signed certificate copies the subject of the SAML key `name`: an
    /// impostor for the mock TVS's foreign-key fault, never written to disk.
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
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(gen_err(name))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&format!("{name} (SAML, TEST ONLY)"));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut params, 730);
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
        })
        .unwrap();
        let ahead = pki.leaf_key.lock().unwrap().clone().unwrap();
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
