//! No BSN, token, code, artifact, cookie or private key reaches any file under `reports/`, nor
//! any response snapshot.

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
    let report = runner::build_report(
        &prepared,
        "test-run",
        "2026-01-01T00:00:00Z",
        &finished,
        false,
    );
    report::write_all(&report, &dir).unwrap();
    // Snapshots: the run folder's and the pending ones beside the (empty) accepted folder.
    let mut store = Store::open(
        &dir.join("accepted"),
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
            Some(&dir),
        );
    }
    let files = files_below(&dir);
    assert_eq!(files.len(), 3 + 2 * finished.len());
    let pki_keys = ["-----BEGIN PRIVATE KEY", "PRIVATE KEY-----"];
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
        for bsn in prepared.patients.bsns() {
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
