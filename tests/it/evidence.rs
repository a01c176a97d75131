//! The evidence bundle as a certifier uses it: made from a real run by the binary, verified by
//! the binary and by stock `tar`, `sha256sum` and `openssl` with the README's commands, and
//! refused, with exit code and message, when a byte changes, a file goes or comes, the
//! certificate is another's or the run was interrupted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::helpers::{matrix_toml, temp_dir};

fn koppeltest() -> Command {
    crate::helpers::koppeltest()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One small real run (one row, one column, two scenarios) for every test here.
fn run_folder() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = temp_dir("evidence-run");
        std::fs::write(dir.join("m.toml"), matrix_toml(&[], &[], "2.2")).unwrap();
        let scenarios =
            crate::helpers::scenario_folder(&dir, &["happy-path.toml", "auth-state-echoed.toml"]);
        let out = dir.join("reports");
        let run = koppeltest()
            .args(["run", "--quiet", "--matrix"])
            .arg(dir.join("m.toml"))
            .arg("--scenarios")
            .arg(&scenarios)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
        // reports/latest copies the run folder's subfolders too.
        assert!(
            out.join("latest/inputs/scenarios/flow.happy-path.toml")
                .is_file()
        );
        std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| !p.ends_with("latest"))
            .expect("a run folder")
    })
}

/// `koppeltest evidence keygen` into `dir`; returns (key, certificate).
fn keygen(dir: &Path, algorithm: &str) -> (PathBuf, PathBuf) {
    let out = koppeltest()
        .args(["evidence", "keygen", "--algorithm", algorithm, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (dir.join("certifier-key.pem"), dir.join("certifier.pem"))
}

fn make(run: &Path, key: &Path, bundle: &Path) -> Output {
    koppeltest()
        .args(["evidence", "--run"])
        .arg(run)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(bundle)
        .output()
        .unwrap()
}

fn verify(bundle: &Path, cert: &Path) -> Output {
    koppeltest()
        .args(["evidence", "verify"])
        .arg(bundle)
        .arg("--cert")
        .arg(cert)
        .output()
        .unwrap()
}

/// A fresh bundle of the shared run under `dir`; returns (bundle, certificate).
fn fresh(dir: &Path, algorithm: &str) -> (PathBuf, PathBuf) {
    let (key, cert) = keygen(&dir.join("keys"), algorithm);
    let bundle = dir.join("bundle.tar.gz");
    let made = make(run_folder(), &key, &bundle);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    (bundle, cert)
}

fn sh(script: &str, dir: &Path) -> Output {
    Command::new("sh")
        .args(["-euc", script])
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Unpacks `bundle` with stock tar, lets `edit` change the folder, packs it again.
fn repack(bundle: &Path, edit: impl FnOnce(&Path)) {
    let dir = bundle.with_extension("unpacked");
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    edit(&dir);
    let out = Command::new("tar")
        .arg("-czf")
        .arg(bundle)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

fn flip_first_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn assert_refused(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{}", text(out));
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in: {stderr}");
    }
}

#[test]
fn a_fresh_bundle_verifies_and_a_changed_byte_is_refused() {
    let dir = temp_dir("evidence-fresh");
    let (bundle, cert) = fresh(&dir, "p256");
    let ok = verify(&bundle, &cert);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("files match MANIFEST"),
        "{}",
        text(&ok)
    );

    // The inputs the run kept are in the bundle.
    let files = crate::helpers::files_below(&{
        let unpacked = dir.join("look");
        std::fs::create_dir_all(&unpacked).unwrap();
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(&bundle)
            .arg("-C")
            .arg(&unpacked)
            .output()
            .unwrap();
        assert!(out.status.success());
        unpacked
    });
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| {
            p.strip_prefix(dir.join("look"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    for expected in [
        "MANIFEST",
        "MANIFEST.sig",
        "report.json",
        "junit.xml",
        "matrix.html",
        "events.jsonl",
        "VERSION",
        "inputs/matrix.toml",
        "inputs/fixtures-manifest.toml",
        "inputs/scenarios/flow.happy-path.toml",
        "inputs/scenarios/auth.state-echoed.toml",
        "inputs/pki/back-root-ca.pem",
        "inputs/pki/back-services-ca.pem",
        "inputs/pki/front-ca.pem",
        "snapshots/row/col/flow.happy-path.snap",
        "snapshots/row/col/auth.state-echoed.snap",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    // The run's launch list, dated by the run, as JSON and CSV; the cell's page and its two
    // scenarios' exchange files and pages.
    let launch: Vec<&String> = names.iter().filter(|n| n.starts_with("launch-")).collect();
    assert_eq!(launch.len(), 2, "{names:?}");
    for expected in [
        "cells/row/col/index.html",
        "cells/row/col/dva/flow.happy-path.json",
        "cells/row/col/dva/auth.state-echoed.json",
        "cells/row/col/dva/flow.happy-path.html",
        "cells/row/col/dva/auth.state-echoed.html",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    assert_eq!(names.len(), 23, "{names:?}");

    // A changed byte in a file inside the bundle.
    let original = std::fs::read(&bundle).unwrap();
    repack(&bundle, |d| flip_first_byte(&d.join("report.json")));
    assert_refused(
        &verify(&bundle, &cert),
        &["report.json does not match its SHA-256 in MANIFEST"],
    );

    // A changed byte in the compressed bundle itself.
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&bundle, &bytes).unwrap();
    assert_refused(&verify(&bundle, &cert), &["bundle.tar.gz"]);

    // Truncated, and not gzip at all.
    std::fs::write(&bundle, &original[..original.len() - 10]).unwrap();
    assert_refused(
        &verify(&bundle, &cert),
        &[
            "bundle.tar.gz",
            "not a complete gzip-compressed tar archive",
        ],
    );
    std::fs::write(&bundle, b"PK\x03\x04 a zip, say").unwrap();
    assert_refused(
        &verify(&bundle, &cert),
        &[
            "bundle.tar.gz",
            "not a complete gzip-compressed tar archive",
        ],
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_and_extra_files_and_another_certificate_are_refused() {
    let dir = temp_dir("evidence-files");
    let (bundle, cert) = fresh(&dir, "ed25519");
    let original = std::fs::read(&bundle).unwrap();

    repack(&bundle, |d| {
        std::fs::remove_file(d.join("inputs/matrix.toml")).unwrap()
    });
    assert_refused(
        &verify(&bundle, &cert),
        &["inputs/matrix.toml is listed in MANIFEST but missing"],
    );

    std::fs::write(&bundle, &original).unwrap();
    repack(&bundle, |d| {
        std::fs::write(d.join("inputs/extra.toml"), "added = true\n").unwrap()
    });
    assert_refused(
        &verify(&bundle, &cert),
        &["inputs/extra.toml is not listed in MANIFEST"],
    );

    std::fs::write(&bundle, &original).unwrap();
    for algorithm in ["ed25519", "p256"] {
        let (_, other) = keygen(&dir.join(format!("other-{algorithm}")), algorithm);
        assert_refused(
            &verify(&bundle, &other),
            &["MANIFEST.sig does not verify", "certifier.pem"],
        );
    }
    // A certificate that is none.
    std::fs::write(
        dir.join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert_refused(&verify(&bundle, &dir.join("junk.pem")), &["junk.pem"]);

    // Untouched, it still verifies: the refusals above came from the changes.
    let ok = verify(&bundle, &cert);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    std::fs::remove_dir_all(dir).ok();
}

/// A copy of the shared run folder, for changing.
fn copy_run(to: &Path) -> PathBuf {
    let out = Command::new("cp")
        .arg("-r")
        .arg(run_folder())
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    to.to_path_buf()
}

#[test]
fn only_a_finished_run_is_bundled_and_nothing_is_overwritten() {
    let dir = temp_dir("evidence-run-rules");
    let (key, _) = keygen(&dir.join("keys"), "p256");
    let bundle = dir.join("b.tar.gz");

    let run = copy_run(&dir.join("interrupted"));
    let report = std::fs::read_to_string(run.join("report.json")).unwrap();
    assert!(report.contains("\"interrupted\": false"));
    std::fs::write(
        run.join("report.json"),
        report.replace("\"interrupted\": false", "\"interrupted\": true"),
    )
    .unwrap();
    assert_refused(
        &make(&run, &key, &bundle),
        &[
            "report.json",
            "the run is not finished (it was interrupted)",
        ],
    );
    assert!(!bundle.exists());

    // An exchange file report.json names is gone: the evidence behind a verdict would be
    // left out.
    let run = copy_run(&dir.join("no-exchanges"));
    std::fs::remove_file(run.join("cells/row/col/dva/flow.happy-path.json")).unwrap();
    assert_refused(
        &make(&run, &key, &bundle),
        &[
            "flow.happy-path.json",
            "missing, though report.json names it",
        ],
    );
    assert!(!bundle.exists());
    // So is the page of an exchange file.
    let run = copy_run(&dir.join("no-exchanges-page"));
    std::fs::remove_file(run.join("cells/row/col/dva/flow.happy-path.html")).unwrap();
    assert_refused(
        &make(&run, &key, &bundle),
        &[
            "flow.happy-path.html",
            "missing: the page of an exchange file report.json names",
        ],
    );
    assert!(!bundle.exists());

    std::fs::remove_file(run.join("report.json")).unwrap();
    assert_refused(
        &make(&run, &key, &bundle),
        &["report.json: missing: not a koppeltest run folder"],
    );
    assert_refused(
        &make(&dir.join("no-such-run"), &key, &bundle),
        &["no-such-run: no such run folder"],
    );

    // A key of the test PKI (RSA) is not a certifier key.
    crate::helpers::pki_init(&dir.join("pki"));
    assert_refused(
        &make(run_folder(), &dir.join("pki/front-ca.key.pem"), &bundle),
        &[
            "front-ca.key.pem",
            "not an Ed25519 or ECDSA P-256 private key",
        ],
    );

    std::fs::write(&bundle, "mine").unwrap();
    let refused = make(run_folder(), &key, &bundle);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&bundle).unwrap(), "mine");
    let forced = koppeltest()
        .args(["evidence", "--force", "--run"])
        .arg(run_folder())
        .arg("--key")
        .arg(&key)
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_ne!(std::fs::read(&bundle).unwrap(), b"mine");
    std::fs::remove_dir_all(dir).ok();
}

/// The README's verification with stock tools, word for word (the test checks the README has
/// these lines), in a folder holding `bundle.tar.gz` and `certifier.pem`; from `SUMS` on, the
/// commands run in the unpacked `bundle/`.
const UNPACK: &str = "mkdir bundle && tar -xzf bundle.tar.gz -C bundle && cd bundle";
const SUMS: &str = "sha256sum -c MANIFEST";
const PUBKEY: &str = "openssl x509 -pubkey -noout -in ../certifier.pem > pub.pem";
const VERIFY_P256: &str = "openssl dgst -sha256 -verify pub.pem -signature MANIFEST.sig MANIFEST";
const VERIFY_ED25519: &str =
    "openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in MANIFEST -sigfile MANIFEST.sig";

#[test]
fn stock_tar_sha256sum_and_openssl_verify_as_the_readme_says() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for line in [UNPACK, SUMS, PUBKEY, VERIFY_P256, VERIFY_ED25519] {
        assert!(readme.contains(line), "the README lacks: {line}");
    }
    for (algorithm, check) in [("p256", VERIFY_P256), ("ed25519", VERIFY_ED25519)] {
        let dir = temp_dir(&format!("evidence-openssl-{algorithm}"));
        let (bundle, cert) = fresh(&dir, algorithm);
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::copy(&bundle, work.join("bundle.tar.gz")).unwrap();
        std::fs::copy(&cert, work.join("certifier.pem")).unwrap();

        let accepted = sh(&[UNPACK, SUMS, PUBKEY, check].join("\n"), &work);
        assert!(
            accepted.status.success(),
            "{algorithm}: {}",
            text(&accepted)
        );

        // A changed byte in a file: sha256sum refuses it.
        let unpacked = work.join("bundle");
        flip_first_byte(&unpacked.join("report.json"));
        let sums = sh(SUMS, &unpacked);
        assert!(!sums.status.success(), "{algorithm}: {}", text(&sums));
        assert!(
            String::from_utf8_lossy(&sums.stdout).contains("report.json: FAILED"),
            "{}",
            text(&sums)
        );
        let signature = sh(check, &unpacked);
        assert!(signature.status.success(), "{}", text(&signature));

        // A changed byte in MANIFEST: openssl refuses the signature.
        flip_first_byte(&unpacked.join("MANIFEST"));
        let refused = sh(check, &unpacked);
        assert!(!refused.status.success(), "{algorithm}: {}", text(&refused));
        std::fs::remove_dir_all(dir).ok();
    }
}
