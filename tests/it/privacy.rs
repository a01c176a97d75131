//! No BSN, token, code, artifact, cookie or private key reaches any file under `reports/`, nor
//! any response snapshot, nor any file of an evidence bundle made from that run.

use koppeltest::report;
use koppeltest::runner;
use koppeltest::snapshot::{Mode, PendingPolicy, Reference, Store};

use crate::helpers::{files_below, run, temp_dir};

#[tokio::test(flavor = "multi_thread")]
async fn reports_contain_none_of_the_secrets_the_run_saw() {
    let prepared = crate::helpers::default_prepared();
    let finished = run(prepared.clone()).await;
    let secrets: Vec<String> = finished.iter().flat_map(|f| f.secrets.clone()).collect();
    let kinds = ["code", "access-token", "refresh-token", "artifact"];
    let labels: Vec<String> = finished
        .iter()
        .flat_map(|f| {
            f.report
                .exchanges
                .iter()
                .map(|x| serde_json::to_string(x).unwrap_or_default())
        })
        .collect();
    for kind in kinds {
        assert!(
            labels.iter().any(|l| l.contains(&format!("[{kind}#1]"))),
            "no {kind} was ever seen, so this test proves nothing"
        );
    }
    assert!(
        secrets.len() >= finished.len(),
        "only {} secrets recorded for {} scenarios",
        secrets.len(),
        finished.len()
    );

    let dir = temp_dir("privacy");
    let mut report = runner::build_report(
        &prepared,
        "test-run",
        "2026-01-01T00:00:00Z",
        &finished,
        false,
    );
    let run_dir = dir.join("run");
    report::write_all(&mut report, &run_dir).unwrap();
    // As `koppeltest run` writes them: the events as they came, the inputs as run.
    let events: String = finished
        .iter()
        .map(|f| format!("{}\n", serde_json::json!({ "scenario": f.report })))
        .collect();
    std::fs::write(run_dir.join("events.jsonl"), events).unwrap();
    koppeltest::evidence::write_inputs(&prepared, &run_dir).unwrap();
    // Snapshots: the run folder's, and the pending ones beside the (empty) accepted folder.
    let accepted = dir.join("accepted");
    let mut store = Store::open(
        &accepted,
        "default",
        Mode::Check,
        PendingPolicy::Always,
        false,
        Reference::at(time::OffsetDateTime::now_utc()),
    )
    .unwrap();
    for f in &finished {
        store.observe(
            &prepared.rows[f.row].row.id,
            &prepared.matrix.columns[f.column].id,
            &f.report,
            Some(&run_dir),
        );
    }
    let pending = files_below(&accepted);
    assert_eq!(
        pending.len(),
        finished.len(),
        "one pending snapshot per scenario"
    );
    let run_files = files_below(&run_dir);
    assert!(run_files.len() > 4 + 3, "{} files", run_files.len());

    // The bundle, unpacked with stock tar; the certifier's key lies beside the run folder.
    let keys = dir.join("keys");
    koppeltest::evidence::keygen(&keys, koppeltest::evidence::Algorithm::P256, false).unwrap();
    let bundle = dir.join("bundle.tar.gz");
    koppeltest::evidence::make(&run_dir, &keys.join("certifier-key.pem"), &bundle, false).unwrap();
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&bundle)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    let bundle_files = files_below(&unpacked);
    assert_eq!(
        bundle_files.len(),
        run_files.len() + 2,
        "MANIFEST and MANIFEST.sig added"
    );
    assert!(
        bundle_files
            .iter()
            .any(|(p, _)| p.to_string_lossy().contains("/snapshots/")),
        "the bundle holds the run's snapshots"
    );
    let certifier_key = std::fs::read_to_string(keys.join("certifier-key.pem")).unwrap();
    let certifier_key_body = certifier_key.lines().nth(1).unwrap();
    let mut files = run_files;
    files.extend(bundle_files);
    files.extend(pending);

    let pki_keys = [
        "-----BEGIN PRIVATE KEY",
        "PRIVATE KEY-----",
        certifier_key_body,
    ];
    for (path, text) in &files {
        for secret in &secrets {
            if let Some(i) = text.find(secret.as_str()) {
                let context = &text[i.saturating_sub(120)..(i + secret.len() + 40).min(text.len())];
                panic!(
                    "{} contains a secret value ({} chars) in: {context}",
                    path.display(),
                    secret.len()
                );
            }
        }
        // The inputs as run (matrix, fixtures manifest, scenarios) declare the invented test
        // persons by their test BSNs; what the run recorded never names one.
        let input = path
            .components()
            .any(|c| c.as_os_str() == koppeltest::evidence::INPUTS);
        for bsn in prepared.patients.bsns().filter(|_| !input) {
            assert!(
                !text.contains(bsn.as_str()),
                "{} contains a BSN",
                path.display()
            );
        }
        for k in pki_keys {
            assert!(
                !text.contains(k),
                "{} contains a private key",
                path.display()
            );
        }
    }
    std::fs::remove_dir_all(dir).ok();
}
