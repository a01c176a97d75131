use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "koppeltest-evidence-{tag}-{}",
        crate::ids::random_hex(6)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A run folder as `koppeltest run` leaves it, with a report saying whether it was interrupted.
fn run_folder(dir: &Path, interrupted: bool) -> PathBuf {
    let run = dir.join("run");
    let report = serde_json::json!({
        "schema": "koppeltest.report/2", "run_id": "test-run", "finished_at": "2026-01-01T00:00:00Z",
        "interrupted": interrupted,
    });
    for (path, text) in [
        ("report.json", report.to_string()),
        ("junit.xml", "<testsuites/>".to_string()),
        ("matrix.html", "<html></html>".to_string()),
        ("events.jsonl", "{}\n".to_string()),
        ("VERSION", version_line()),
        ("inputs/matrix.toml", "name = \"m\"\n".to_string()),
        ("inputs/fixtures-manifest.toml", "\n".to_string()),
        (
            "inputs/scenarios/flow.happy-path.toml",
            "id = \"x\"\n".to_string(),
        ),
        ("snapshots/cell/a.snap", "snap\n".to_string()),
    ] {
        write(&run.join(path), text.as_bytes()).unwrap();
    }
    run
}

fn keys(dir: &Path, algorithm: Algorithm) -> (PathBuf, PathBuf) {
    keygen(dir, algorithm, false).unwrap();
    (dir.join(KEY_FILE), dir.join(CERT_FILE))
}

/// A bundle of `run` signed with a fresh key; returns (bundle, certificate).
fn bundle(dir: &Path, algorithm: Algorithm) -> (PathBuf, PathBuf) {
    let run = run_folder(dir, false);
    let (key, cert) = keys(&dir.join("keys"), algorithm);
    let out = dir.join("bundle.tar.gz");
    let made = make(&run, &key, &out, false).unwrap();
    assert_eq!(made.files, 9);
    assert_eq!(made.algorithm, algorithm);
    (out, cert)
}

/// The bundle's files, changed by `edit`, packed again.
fn repack(bundle: &Path, edit: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) {
    let mut files = unpack(bundle, &std::fs::read(bundle).unwrap()).unwrap();
    edit(&mut files);
    let bytes = pack(files.iter().map(|(p, d)| (p.as_str(), d.as_slice())), 0).unwrap();
    std::fs::write(bundle, bytes).unwrap();
}

#[test]
fn a_fresh_bundle_verifies_with_either_algorithm() {
    for algorithm in [Algorithm::P256, Algorithm::Ed25519] {
        let dir = temp("fresh");
        let (out, cert) = bundle(&dir, algorithm);
        let v = verify(&out, &cert).unwrap();
        assert_eq!(v.files, 9);
        assert_eq!(v.algorithm, algorithm);
        assert_eq!(v.run_id.as_deref(), Some("test-run"));
        let files = unpack(&out, &std::fs::read(&out).unwrap()).unwrap();
        assert!(files.contains_key("snapshots/cell/a.snap"));
        let manifest = String::from_utf8(files[MANIFEST].clone()).unwrap();
        let paths: Vec<&str> = manifest.lines().map(|l| &l[66..]).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted);
        assert!(!paths.contains(&MANIFEST) && !paths.contains(&SIGNATURE));
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn manifest_is_sha256sum_format() {
    let files = BTreeMap::from([
        ("b".to_string(), b"".to_vec()),
        ("a/c".to_string(), b"abc".to_vec()),
    ]);
    assert_eq!(
        manifest(&files),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a/c\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b\n"
    );
    let bundle = Path::new("b.tar.gz");
    assert!(parse_manifest(bundle, manifest(&files).as_bytes()).is_ok());
    for bad in [
        "xyz  a\n",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 a\n",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\n",
    ] {
        assert!(
            matches!(
                parse_manifest(bundle, bad.as_bytes()),
                Err(EvidenceError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_changed_file_is_named() {
    let dir = temp("tampered");
    let (out, cert) = bundle(&dir, Algorithm::P256);
    repack(&out, |files| {
        let report = files.get_mut("report.json").unwrap();
        report[0] ^= 1;
    });
    let e = verify(&out, &cert).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::Tampered { file, .. } if file == "report.json"),
        "{e}"
    );
    assert_eq!(e.exit_code(), exit::INVALID_CONFIG);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_changed_manifest_breaks_the_signature() {
    let dir = temp("manifest");
    let (out, cert) = bundle(&dir, Algorithm::Ed25519);
    repack(&out, |files| {
        let m = files.get_mut(MANIFEST).unwrap();
        m[0] = if m[0] == b'0' { b'1' } else { b'0' };
    });
    let e = verify(&out, &cert).unwrap_err();
    assert!(matches!(e, EvidenceError::BadSignature { .. }), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_and_extra_files_are_named() {
    let dir = temp("missing");
    let (out, cert) = bundle(&dir, Algorithm::P256);
    let original = std::fs::read(&out).unwrap();
    repack(&out, |files| {
        files.remove("inputs/matrix.toml");
    });
    let e = verify(&out, &cert).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::Missing { file, .. } if file == "inputs/matrix.toml"),
        "{e}"
    );
    std::fs::write(&out, &original).unwrap();
    repack(&out, |files| {
        files.insert("notes.txt".into(), b"added later".to_vec());
    });
    let e = verify(&out, &cert).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::Unlisted { file, .. } if file == "notes.txt"),
        "{e}"
    );
    std::fs::write(&out, &original).unwrap();
    repack(&out, |files| {
        files.remove(SIGNATURE);
    });
    let e = verify(&out, &cert).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::Missing { file, .. } if file == SIGNATURE),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn truncated_or_foreign_bytes_are_refused() {
    let dir = temp("truncated");
    let (out, cert) = bundle(&dir, Algorithm::P256);
    let bytes = std::fs::read(&out).unwrap();
    // Cut in the middle, and by the gzip trailer alone (every tar entry still readable).
    for cut in [bytes.len() / 2, bytes.len() - 4] {
        std::fs::write(&out, &bytes[..cut]).unwrap();
        let e = verify(&out, &cert).unwrap_err();
        assert!(matches!(e, EvidenceError::Corrupt { .. }), "cut {cut}: {e}");
        assert_eq!(e.exit_code(), exit::INVALID_CONFIG);
    }
    std::fs::write(&out, b"not a gzip file at all").unwrap();
    let e = verify(&out, &cert).unwrap_err();
    assert!(matches!(e, EvidenceError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("bundle.tar.gz"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn another_certifiers_certificate_is_refused() {
    let dir = temp("other-cert");
    let (out, _) = bundle(&dir, Algorithm::P256);
    for algorithm in [Algorithm::P256, Algorithm::Ed25519] {
        let other = dir.join(format!("other-{algorithm:?}"));
        let (_, cert) = keys(&other, algorithm);
        let e = verify(&out, &cert).unwrap_err();
        assert!(matches!(e, EvidenceError::BadSignature { .. }), "{e}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn keys_other_than_ed25519_and_p256_are_refused() {
    let dir = temp("p384");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::default()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("k.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("garbage.pem"), "hello").unwrap();
    let run = run_folder(&dir, false);
    for key in ["k.pem", "garbage.pem"] {
        let e = make(&run, &dir.join(key), &dir.join("b.tar.gz"), false).unwrap_err();
        assert!(matches!(e, EvidenceError::BadKey { .. }), "{e}");
        assert!(e.to_string().contains(key), "{e}");
    }
    let (good, _) = keys(&dir.join("keys"), Algorithm::Ed25519);
    make(&run, &good, &dir.join("b.tar.gz"), false).unwrap();
    let e = verify(&dir.join("b.tar.gz"), &dir.join("c.pem")).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::BadCertificate { problem, .. } if problem.contains("not P-256")),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn only_a_finished_uninterrupted_run_is_bundled() {
    let dir = temp("interrupted");
    let run = run_folder(&dir, true);
    let (key, _) = keys(&dir.join("keys"), Algorithm::P256);
    let out = dir.join("b.tar.gz");
    let e = make(&run, &key, &out, false).unwrap_err();
    assert!(matches!(e, EvidenceError::NotFinished { .. }), "{e}");
    assert!(!out.exists());
    let e = make(&dir.join("nope"), &key, &out, false).unwrap_err();
    assert!(matches!(e, EvidenceError::RunFolder { .. }), "{e}");
    std::fs::remove_file(run.join("report.json")).unwrap();
    let e = make(&run, &key, &out, false).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::RunFolder { path, .. } if path.ends_with("report.json")),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_private_key_in_the_run_folder_stops_the_bundle() {
    let dir = temp("secret");
    let run = run_folder(&dir, false);
    let (key, _) = keys(&dir.join("keys"), Algorithm::P256);
    std::fs::copy(&key, run.join("snapshots/certifier-key.pem")).unwrap();
    let e = make(&run, &key, &dir.join("b.tar.gz"), false).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::SecretInRun { path } if path.ends_with("certifier-key.pem")),
        "{e}"
    );
    std::fs::remove_file(run.join("snapshots/certifier-key.pem")).unwrap();
    std::fs::write(run.join("stray.txt"), "x").unwrap();
    let e = make(&run, &key, &dir.join("b.tar.gz"), false).unwrap_err();
    assert!(
        matches!(&e, EvidenceError::RunFolder { path, .. } if path.ends_with("stray.txt")),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn nothing_is_overwritten_without_force() {
    let dir = temp("force");
    let (out, cert) = bundle(&dir, Algorithm::P256);
    let key = dir.join("keys").join(KEY_FILE);
    let e = make(&dir.join("run"), &key, &out, false).unwrap_err();
    assert!(matches!(e, EvidenceError::Exists { .. }), "{e}");
    assert_eq!(e.exit_code(), exit::USAGE);
    make(&dir.join("run"), &key, &out, true).unwrap();
    verify(&out, &cert).unwrap();
    let e = keygen(&dir.join("keys"), Algorithm::P256, false).unwrap_err();
    assert!(matches!(e, EvidenceError::Exists { .. }), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn scenario_ids_become_safe_file_names() {
    assert_eq!(
        crate::snapshot::component("auth.code-replay"),
        "auth.code-replay"
    );
    assert_eq!(crate::snapshot::component("../x/y"), "_.._x_y");
    assert_eq!(crate::snapshot::component(""), "_");
}

#[test]
fn write_inputs_keeps_what_was_run_and_no_key() {
    let dir = temp("inputs");
    let (matrix, text) = crate::matrix::Matrix::embedded_default().unwrap();
    let scenarios = crate::scenario::embedded().unwrap();
    let rows = matrix
        .prepare(Path::new("default.toml"), &text, Path::new("."), &scenarios)
        .unwrap();
    let mut prepared = Prepared::new(
        matrix,
        rows,
        scenarios,
        std::sync::Arc::new(crate::pki::Pki::generate().unwrap()),
        std::sync::Arc::new(crate::fixtures::PatientStore::embedded().unwrap()),
    );
    prepared.sources.matrix = Some(text.clone());
    write_inputs(&prepared, &dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("inputs/matrix.toml")).unwrap(),
        text
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("inputs/fixtures-manifest.toml")).unwrap(),
        crate::fixtures::EMBEDDED_MANIFEST.1
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("VERSION")).unwrap(),
        format!("koppeltest {}\n", env!("CARGO_PKG_VERSION"))
    );
    let happy = crate::scenario::EMBEDDED
        .iter()
        .find(|(p, _)| p.ends_with("happy-path.toml"))
        .unwrap()
        .1;
    assert_eq!(
        std::fs::read_to_string(dir.join("inputs/scenarios/flow.happy-path.toml")).unwrap(),
        happy
    );
    let scenario_files = std::fs::read_dir(dir.join("inputs/scenarios"))
        .unwrap()
        .count();
    assert_eq!(scenario_files, crate::scenario::EMBEDDED.len());
    for name in ["back-root-ca", "back-services-ca", "front-ca"] {
        let pem = std::fs::read(dir.join(format!("inputs/pki/{name}.pem"))).unwrap();
        assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"), "{name}");
        assert!(!holds_private_key(&pem), "{name}");
    }
    // Without the text (a matrix built in code), the parsed matrix stands in and parses back.
    prepared.sources.matrix = None;
    write_inputs(&prepared, &dir).unwrap();
    let written = std::fs::read_to_string(dir.join("inputs/matrix.toml")).unwrap();
    let back = crate::matrix::Matrix::parse(Path::new("m.toml"), &written).unwrap();
    assert_eq!(back.rows.len(), prepared.matrix.rows.len());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn launch_lists_are_run_entries_and_other_names_are_not() {
    for name in [
        "report.json",
        "launch-2026-12-01.json",
        "launch-2026-12-01.csv",
    ] {
        assert!(super::is_run_entry(name), "{name}");
    }
    for name in [
        "launch-.csv",
        "launch-2026-13-01.csv",
        "launch-2026-12-01.txt",
        "notes.txt",
    ] {
        assert!(!super::is_run_entry(name), "{name}");
    }
}
