//! The signed evidence bundle for certifiers: a finished run's folder packed as a `.tar.gz`
//! with a `MANIFEST` of SHA-256 sums and a detached signature over it.
//!
//! - [`write_inputs`] puts a run's inputs into its folder as they were run (matrix text, each
//!   scenario file, the fixtures manifest, the test PKI's CA certificates, the version), so the
//!   folder alone says what was tested.
//! - [`make`] packs a finished, uninterrupted run folder: every file under it, a `MANIFEST` in
//!   `sha256sum` format (`<hex>  <path>` lines, sorted by path) and `MANIFEST.sig`, the
//!   certifier's signature over `MANIFEST` (ECDSA P-256 with SHA-256, DER; or Ed25519, 64 bytes).
//! - [`verify`] unpacks a bundle in memory and checks the signature against a certificate, every
//!   hash, and that no file is unlisted and no listed file missing.
//! - [`keygen`] makes a certifier key (PKCS#8) and a self-signed certificate to try it with.
//!
//! The format is chosen so stock `tar`, `sha256sum` and `openssl` verify a bundle alone (the
//! README shows how; `tests/it/evidence.rs` runs those commands).
//!
//! **Invariant:** a bundle never holds a secret. Reports are redacted when recorded
//! (`exchange`); the run folder holds certificates, never keys; and [`make`] refuses a run
//! folder in which any file holds a PEM private key, so neither the certifier's key nor a key
//! of the test PKI can go in by mistake.
//!
//! This module does not judge a run; it only seals what the run wrote. Signing and verification
//! are aws-lc-rs; certificates are parsed with x509-parser; no other crypto.

pub mod command;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair,
    UnparsedPublicKey,
};

use crate::exit;
use crate::runner::Prepared;

/// The signed list of SHA-256 sums, `sha256sum` format.
pub const MANIFEST: &str = "MANIFEST";
/// The detached signature over [`MANIFEST`].
pub const SIGNATURE: &str = "MANIFEST.sig";
/// The version file in a run folder.
pub const VERSION: &str = "VERSION";
/// The folder of a run's inputs, inside the run folder.
pub const INPUTS: &str = "inputs";

/// What may be at the top of a run folder; anything else is refused rather than packed unseen.
const RUN_ENTRIES: &[&str] = &[
    "report.json",
    "junit.xml",
    "matrix.html",
    "events.jsonl",
    VERSION,
    INPUTS,
    "snapshots",
    "cells",
];

/// A name koppeltest writes at the top of a run folder: one of [`RUN_ENTRIES`], or a launch
/// list (`launch-YYYY-MM-DD.json` or `.csv`, written by `run` and `koppeltest launch`).
fn is_run_entry(name: &str) -> bool {
    if RUN_ENTRIES.contains(&name) {
        return true;
    }
    let Some(rest) = name.strip_prefix("launch-") else {
        return false;
    };
    let date = rest
        .strip_suffix(".json")
        .or_else(|| rest.strip_suffix(".csv"));
    date.is_some_and(|d| d.len() == 10 && crate::matrix::parse_date(d).is_some())
}

/// Files every bundle holds: the reports and the inputs [`write_inputs`] writes.
const REQUIRED: &[&str] = &[
    "report.json",
    "junit.xml",
    "matrix.html",
    "events.jsonl",
    VERSION,
    "inputs/matrix.toml",
    "inputs/fixtures-manifest.toml",
];

/// A bundle larger than this, unpacked, is refused: it is not one koppeltest made.
const MAX_UNPACKED: u64 = crate::limits::MAX_UNPACKED;

/// The certifier's signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256; the signature is DER (`openssl dgst -sha256 -verify`).
    P256,
    /// Ed25519; the signature is 64 raw bytes (`openssl pkeyutl -verify -rawin`).
    Ed25519,
}

impl Algorithm {
    pub fn label(self) -> &'static str {
        match self {
            Algorithm::P256 => "ECDSA P-256 with SHA-256",
            Algorithm::Ed25519 => "Ed25519",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
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
    #[error("{path} exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path}: {problem}")]
    RunFolder { path: PathBuf, problem: String },
    #[error(
        "{path}: the run is not finished ({reason}); only a finished, uninterrupted run can be bundled"
    )]
    NotFinished { path: PathBuf, reason: String },
    #[error("{path}: holds a private key; a bundle never does, so nothing was packed")]
    SecretInRun { path: PathBuf },
    #[error("{path}: {problem}")]
    BadKey { path: PathBuf, problem: String },
    #[error("{path}: {problem}")]
    BadCertificate { path: PathBuf, problem: String },
    #[error(
        "{path}: not a complete gzip-compressed tar archive (truncated or another format): {detail}"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: {problem}")]
    Malformed { path: PathBuf, problem: String },
    #[error(
        "{bundle}: the signature {SIGNATURE} does not verify with the key of {cert}: {MANIFEST} was changed, or signed with another key"
    )]
    BadSignature { bundle: PathBuf, cert: PathBuf },
    #[error("{bundle}: {file} does not match its SHA-256 in {MANIFEST}: it was changed")]
    Tampered { bundle: PathBuf, file: String },
    #[error("{bundle}: {file} is listed in {MANIFEST} but missing")]
    Missing { bundle: PathBuf, file: String },
    #[error("{bundle}: {file} is not listed in {MANIFEST}: it was added")]
    Unlisted { bundle: PathBuf, file: String },
    #[error("sign {MANIFEST}: {0}")]
    Sign(String),
}

impl EvidenceError {
    /// The exit code: 3 for an invalid or tampered input (run folder, key, certificate,
    /// bundle), 4 when files cannot be read or written, 2 for an `--out` that exists.
    pub fn exit_code(&self) -> i32 {
        match self {
            EvidenceError::Exists { .. } => exit::USAGE,
            EvidenceError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                exit::INVALID_CONFIG
            }
            EvidenceError::Read { .. } | EvidenceError::Write { .. } | EvidenceError::Sign(_) => {
                exit::ENVIRONMENT
            }
            _ => exit::INVALID_CONFIG,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EvidenceError> {
    std::fs::read(path).map_err(|source| EvidenceError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, contents: &[u8]) -> Result<(), EvidenceError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| EvidenceError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, contents).map_err(|source| EvidenceError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The version line of [`VERSION`].
pub fn version_line() -> String {
    format!("koppeltest {}\n", env!("CARGO_PKG_VERSION"))
}

/// Writes a run's inputs into `run_dir`: `VERSION`, `inputs/matrix.toml` (the text as run),
/// `inputs/scenarios/<id>.toml` (each scenario file as run), `inputs/fixtures-manifest.toml`
/// and `inputs/pki/<name>.pem` (the test PKI's CA certificates; never a key). Leaves are issued
/// from those CAs during the run and are not kept.
pub fn write_inputs(prepared: &Prepared, run_dir: &Path) -> Result<(), EvidenceError> {
    let inputs = run_dir.join(INPUTS);
    write(&run_dir.join(VERSION), version_line().as_bytes())?;
    let matrix = match &prepared.sources.matrix {
        Some(text) => text.clone(),
        // A matrix built in code (tests, library use) has no text; its parsed form stands in.
        None => toml::to_string(&prepared.matrix).map_err(|e| EvidenceError::Write {
            path: inputs.join("matrix.toml"),
            source: std::io::Error::other(e),
        })?,
    };
    write(&inputs.join("matrix.toml"), matrix.as_bytes())?;
    let mut names = std::collections::BTreeSet::new();
    for scenario in &prepared.scenarios {
        let stem = crate::snapshot::component(&scenario.id);
        let mut name = format!("{stem}.toml");
        let mut n = 1;
        while !names.insert(name.clone()) {
            n += 1;
            name = format!("{stem}-{n}.toml");
        }
        write(
            &inputs.join("scenarios").join(name),
            scenario.source.text.as_bytes(),
        )?;
    }
    write(
        &inputs.join("fixtures-manifest.toml"),
        prepared.sources.manifest.as_bytes(),
    )?;
    for (name, pem) in prepared.pki.ca_certificates() {
        write(
            &inputs.join("pki").join(format!("{name}.pem")),
            pem.as_bytes(),
        )?;
    }
    Ok(())
}

/// A certifier's signing key.
enum SigningKey {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::P256(_) => Algorithm::P256,
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, EvidenceError> {
        match self {
            SigningKey::P256(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| EvidenceError::Sign(e.to_string())),
            SigningKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// The DER of the first PEM block labelled `label` in `text`.
fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let start = text.find(&begin)?;
    crate::pki::pem_to_der(&text[start..])
}

fn load_signing_key(path: &Path) -> Result<SigningKey, EvidenceError> {
    let bad = |problem: &str| EvidenceError::BadKey {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let der = if text.contains("-----BEGIN") {
        pem_block(&text, "PRIVATE KEY").ok_or_else(|| {
            bad("no PKCS#8 private key (a PEM block `BEGIN PRIVATE KEY`); a traditional `BEGIN EC PRIVATE KEY` must be converted to PKCS#8 first")
        })?
    } else {
        bytes
    };
    if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der) {
        return Ok(SigningKey::P256(k));
    }
    if let Ok(k) = Ed25519KeyPair::from_pkcs8(&der) {
        return Ok(SigningKey::Ed25519(k));
    }
    Err(bad(
        "not an Ed25519 or ECDSA P-256 private key in PKCS#8; a certifier key must be one of those (`koppeltest evidence keygen` makes one)",
    ))
}

/// A certifier's public key, from its certificate.
struct VerifyingKey {
    algorithm: Algorithm,
    /// Ed25519: the 32-byte key; P-256: the uncompressed point.
    key: Vec<u8>,
}

impl VerifyingKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::P256 => &ECDSA_P256_SHA256_ASN1,
            Algorithm::Ed25519 => &ED25519,
        };
        UnparsedPublicKey::new(alg, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

fn load_certificate(path: &Path) -> Result<VerifyingKey, EvidenceError> {
    let bad = |problem: String| EvidenceError::BadCertificate {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let der = if text.contains("-----BEGIN") {
        pem_block(&text, "CERTIFICATE")
            .ok_or_else(|| bad("no PEM block `BEGIN CERTIFICATE`".into()))?
    } else {
        bytes
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let spki = cert.public_key();
    let algorithm = match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_ED25519 => Algorithm::Ed25519,
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            if curve.as_deref() != Some(OID_P256) {
                return Err(bad(format!(
                    "an EC key on curve {}, not P-256; a certifier key is Ed25519 or P-256",
                    curve.as_deref().unwrap_or("(none)")
                )));
            }
            Algorithm::P256
        }
        other => {
            return Err(bad(format!(
                "a key of type {other}, not Ed25519 or ECDSA P-256"
            )));
        }
    };
    Ok(VerifyingKey {
        algorithm,
        key: spki.subject_public_key.data.to_vec(),
    })
}

/// What [`make`] packed.
#[derive(Debug)]
pub struct Made {
    pub run_id: String,
    /// Files listed in the manifest.
    pub files: usize,
    pub algorithm: Algorithm,
}

/// Checks that `run_dir` holds a finished, uninterrupted run; returns its id and finish time.
fn finished_run(run_dir: &Path) -> Result<(String, String), EvidenceError> {
    if !run_dir.is_dir() {
        return Err(EvidenceError::RunFolder {
            path: run_dir.to_path_buf(),
            problem: "no such run folder".into(),
        });
    }
    let path = run_dir.join("report.json");
    if !path.is_file() {
        return Err(EvidenceError::RunFolder {
            path,
            problem: "missing: not a koppeltest run folder".into(),
        });
    }
    let report: serde_json::Value =
        serde_json::from_slice(&read(&path)?).map_err(|e| EvidenceError::RunFolder {
            path: path.clone(),
            problem: format!("not a koppeltest report: {e}"),
        })?;
    let not_finished = |reason: &str| EvidenceError::NotFinished {
        path: path.clone(),
        reason: reason.to_string(),
    };
    match report.get("interrupted") {
        Some(serde_json::Value::Bool(false)) => {}
        Some(serde_json::Value::Bool(true)) => return Err(not_finished("it was interrupted")),
        _ => return Err(not_finished("`interrupted` is not `false`")),
    }
    let finished_at = report
        .get("finished_at")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| not_finished("no `finished_at`"))?;
    let run_id = report
        .get("run_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    Ok((run_id.to_string(), finished_at.to_string()))
}

/// Every file below `run_dir` by its `/`-separated relative path, with its contents.
fn run_files(run_dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, EvidenceError> {
    let mut files = BTreeMap::new();
    let mut stack = vec![(run_dir.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| EvidenceError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| EvidenceError::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let refuse = |problem: &str| EvidenceError::RunFolder {
                path: path.clone(),
                problem: problem.to_string(),
            };
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| refuse("a file name that is not UTF-8"))?;
            if name.contains(['\\', '\n', '\r']) {
                return Err(refuse(
                    "a file name with a backslash or line break, which sha256sum cannot list plainly",
                ));
            }
            if prefix.is_empty() && !is_run_entry(&name) {
                return Err(refuse(&format!(
                    "not something koppeltest writes into a run folder (expected only {}, launch-<date>.json and .csv); move it out",
                    RUN_ENTRIES.join(", ")
                )));
            }
            let relative = format!("{prefix}{name}");
            let kind = entry.file_type().map_err(|source| EvidenceError::Read {
                path: path.clone(),
                source,
            })?;
            if kind.is_dir() {
                stack.push((path, format!("{relative}/")));
            } else if kind.is_file() {
                let contents = read(&path)?;
                if holds_private_key(&contents) {
                    return Err(EvidenceError::SecretInRun { path });
                }
                files.insert(relative, contents);
            } else {
                return Err(refuse("neither a file nor a folder (a link?)"));
            }
        }
    }
    for required in REQUIRED {
        if !files.contains_key(*required) {
            return Err(EvidenceError::RunFolder {
                path: run_dir.join(required),
                problem: "missing; run folders from koppeltest before the evidence bundle lack their inputs: run again".into(),
            });
        }
    }
    // Every page and exchange file report.json names, and each exchange file's page, is in
    // the bundle: the evidence behind a verdict is never left out.
    let report: Named = files
        .get("report.json")
        .map(|r| serde_json::from_slice(r))
        .transpose()
        .map_err(|e| EvidenceError::RunFolder {
            path: run_dir.join("report.json"),
            problem: format!("not a koppeltest report: {e}"),
        })?
        .unwrap_or_default();
    let named = report.cells.iter().flat_map(|c| {
        let exchanges = c
            .scenarios
            .iter()
            .filter_map(|s| s.exchanges_file.as_deref());
        c.page.iter().cloned().chain(exchanges.map(str::to_string))
    });
    for name in named {
        let name = name.as_str();
        if name.ends_with(".json") {
            let page = crate::report::html::exchanges_page(name);
            if !files.contains_key(&page) {
                return Err(EvidenceError::RunFolder {
                    path: run_dir.join(&page),
                    problem: "missing: the page of an exchange file report.json names (run folders from koppeltest before the exchanges pages lack it: run again)".into(),
                });
            }
        }
        if !files.contains_key(name) {
            return Err(EvidenceError::RunFolder {
                path: run_dir.join(name),
                problem: "missing, though report.json names it: the evidence behind a verdict would be left out".into(),
            });
        }
    }
    Ok(files)
}

/// The files report.json names, and nothing else of it.
#[derive(Default, serde::Deserialize)]
struct Named {
    #[serde(default)]
    cells: Vec<NamedCell>,
}

#[derive(serde::Deserialize)]
struct NamedCell {
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    scenarios: Vec<NamedScenario>,
}

#[derive(serde::Deserialize)]
struct NamedScenario {
    #[serde(default)]
    exchanges_file: Option<String>,
}

/// Whether `contents` holds a PEM private key of any kind (PKCS#8, encrypted, RSA, EC, OpenSSH).
pub fn holds_private_key(contents: &[u8]) -> bool {
    contents
        .windows(b"PRIVATE KEY-----".len())
        .any(|w| w == b"PRIVATE KEY-----")
}

/// The `MANIFEST` text for `files`: `<hex>  <path>` lines, sorted by path (as `sha256sum`
/// writes and `sha256sum -c` reads them).
pub fn manifest(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .map(|(path, data)| format!("{}  {path}\n", crate::ids::sha256_hex(data)))
        .collect()
}

/// Packs the finished run in `run_dir` into `out`, signed with the PKCS#8 key at `key`.
/// An existing `out` is refused unless `force`.
pub fn make(run_dir: &Path, key: &Path, out: &Path, force: bool) -> Result<Made, EvidenceError> {
    if out.exists() && !force {
        return Err(EvidenceError::Exists {
            path: out.to_path_buf(),
        });
    }
    let (run_id, finished_at) = finished_run(run_dir)?;
    let key = load_signing_key(key)?;
    let files = run_files(run_dir)?;
    let manifest = manifest(&files);
    let signature = key.sign(manifest.as_bytes())?;
    let mtime =
        time::OffsetDateTime::parse(&finished_at, &time::format_description::well_known::Rfc3339)
            .map_or(0, |t| u64::try_from(t.unix_timestamp()).unwrap_or(0));
    let bytes = pack(
        [
            (MANIFEST, manifest.as_bytes()),
            (SIGNATURE, signature.as_slice()),
        ]
        .into_iter()
        .chain(files.iter().map(|(p, d)| (p.as_str(), d.as_slice()))),
        mtime,
    )
    .map_err(|source| EvidenceError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    // Written beside `out` and renamed, so a failed write never leaves half a bundle there.
    let tmp = out.with_file_name(format!(
        ".{}.{}.tmp",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        crate::ids::random_hex(4)
    ));
    write(&tmp, &bytes)?;
    std::fs::rename(&tmp, out).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        EvidenceError::Write {
            path: out.to_path_buf(),
            source,
        }
    })?;
    Ok(Made {
        run_id,
        files: files.len(),
        algorithm: key.algorithm(),
    })
}

/// A gzip-compressed tar of `files` (regular files, mode 0644, owner 0, modified at `mtime`).
fn pack<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    mtime: u64,
) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        tar.append_data(&mut header, path, data)?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

/// What [`verify`] found: a bundle whose every file is listed, hashed right and signed.
#[derive(Debug)]
pub struct Verified {
    /// Files listed in the manifest.
    pub files: usize,
    pub algorithm: Algorithm,
    /// The run id from the bundle's `report.json`, if it has one.
    pub run_id: Option<String>,
}

/// Unpacks a bundle in memory: each regular file by its path (a leading `./` dropped, so a
/// bundle re-packed with `tar -C dir .` reads the same).
fn unpack(bundle: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, EvidenceError> {
    let corrupt = |e: &dyn std::fmt::Display| EvidenceError::Corrupt {
        path: bundle.to_path_buf(),
        detail: e.to_string(),
    };
    let malformed = |problem: String| EvidenceError::Malformed {
        path: bundle.to_path_buf(),
        problem,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    for entry in archive.entries().map_err(|e| corrupt(&e))? {
        let mut entry = entry.map_err(|e| corrupt(&e))?;
        let raw = entry.path().map_err(|e| corrupt(&e))?.into_owned();
        let name = raw
            .to_str()
            .ok_or_else(|| malformed(format!("entry {} is not UTF-8", raw.display())))?;
        let name = name.trim_start_matches("./").trim_end_matches('/');
        let kind = entry.header().entry_type();
        if kind.is_dir() || name.is_empty() || name == "." {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(malformed(format!(
                "entry {name} is not a regular file (a link or device); a bundle holds files only"
            )));
        }
        if name.starts_with('/') || name.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(malformed(format!(
                "entry {name} has an absolute or escaping path"
            )));
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED {
            return Err(malformed(format!(
                "unpacks to more than {} GiB",
                MAX_UNPACKED >> 30
            )));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| corrupt(&e))?;
        if files.insert(name.to_string(), data).is_some() {
            return Err(malformed(format!("entry {name} appears twice")));
        }
    }
    // Read to the end of the gzip stream, so its length and CRC are checked: a bundle cut
    // after the tar's last entry is refused too.
    let mut rest = Vec::new();
    archive
        .into_inner()
        .read_to_end(&mut rest)
        .map_err(|e| corrupt(&e))?;
    Ok(files)
}

/// Parses a `MANIFEST`: `<64 lowercase hex>  <path>` lines, each ending in a newline, paths
/// sorted and unique.
fn parse_manifest(bundle: &Path, text: &[u8]) -> Result<Vec<(String, String)>, EvidenceError> {
    let bad = |problem: String| EvidenceError::Malformed {
        path: bundle.to_path_buf(),
        problem: format!("{MANIFEST}: {problem}"),
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(bad("the last line has no line break".into()));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (hex, path) = line
            .split_once("  ")
            .filter(|(h, p)| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    && !p.is_empty()
            })
            .ok_or_else(|| bad(format!("line {} is not `<sha256 hex>  <path>`", i + 1)))?;
        if let Some((_, last)) = out.last() {
            if last.as_str() >= path {
                return Err(bad(format!(
                    "line {}: {path} is out of order or listed twice",
                    i + 1
                )));
            }
        }
        out.push((hex.to_string(), path.to_string()));
    }
    Ok(out)
}

/// Verifies the bundle at `bundle` against the certifier's certificate at `cert`: the
/// signature over `MANIFEST`, then that every listed file is there with its hash and that no
/// file is unlisted.
pub fn verify(bundle: &Path, cert: &Path) -> Result<Verified, EvidenceError> {
    let key = load_certificate(cert)?;
    let bytes = read(bundle)?;
    let mut files = unpack(bundle, &bytes)?;
    let missing = |file: &str| EvidenceError::Missing {
        bundle: bundle.to_path_buf(),
        file: file.to_string(),
    };
    let manifest = files.remove(MANIFEST).ok_or_else(|| missing(MANIFEST))?;
    let signature = files.remove(SIGNATURE).ok_or_else(|| missing(SIGNATURE))?;
    if !key.verify(&manifest, &signature) {
        return Err(EvidenceError::BadSignature {
            bundle: bundle.to_path_buf(),
            cert: cert.to_path_buf(),
        });
    }
    let listed = parse_manifest(bundle, &manifest)?;
    for (hex, path) in &listed {
        let data = files.get(path).ok_or_else(|| missing(path))?;
        if crate::ids::sha256_hex(data) != *hex {
            return Err(EvidenceError::Tampered {
                bundle: bundle.to_path_buf(),
                file: path.clone(),
            });
        }
    }
    let listed_paths: std::collections::BTreeSet<&str> =
        listed.iter().map(|(_, p)| p.as_str()).collect();
    if let Some(extra) = files.keys().find(|p| !listed_paths.contains(p.as_str())) {
        return Err(EvidenceError::Unlisted {
            bundle: bundle.to_path_buf(),
            file: extra.clone(),
        });
    }
    let run_id = files
        .get("report.json")
        .and_then(|r| serde_json::from_slice::<serde_json::Value>(r).ok())
        .and_then(|r| r.get("run_id").and_then(|v| v.as_str()).map(str::to_string));
    Ok(Verified {
        files: listed.len(),
        algorithm: key.algorithm,
        run_id,
    })
}

/// The files [`keygen`] writes into its folder.
pub const KEY_FILE: &str = "certifier-key.pem";
pub const CERT_FILE: &str = "certifier.pem";

/// Writes a fresh certifier key (`certifier-key.pem`, PKCS#8, readable by its owner only) and
/// a self-signed certificate for it (`certifier.pem`) into `dir`, for trying the bundle out; a
/// certifier uses their own. Existing files are refused unless `force`.
pub fn keygen(dir: &Path, algorithm: Algorithm, force: bool) -> Result<(), EvidenceError> {
    let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
    for path in [&key_path, &cert_path] {
        if path.exists() && !force {
            return Err(EvidenceError::Exists { path: path.clone() });
        }
    }
    let gen_err = |e: rcgen::Error| EvidenceError::Sign(format!("generate the key: {e}"));
    let alg = match algorithm {
        Algorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let key = rcgen::KeyPair::generate_for(alg).map_err(gen_err)?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "koppeltest (TEST ONLY)");
    dn.push(rcgen::DnType::CommonName, "koppeltest evidence certifier");
    params.distinguished_name = dn;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(730);
    let cert = params.self_signed(&key).map_err(gen_err)?;
    std::fs::create_dir_all(dir).map_err(|source| EvidenceError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write(&cert_path, cert.pem().as_bytes())
}

/// Writes a private key: on Unix, created with mode 0600.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), EvidenceError> {
    let err = |source| EvidenceError::Write {
        path: path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents).map_err(err)
}

#[cfg(test)]
mod tests;
