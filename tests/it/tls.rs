//! The hello-level prober against an independent scanner: for simulated DVAs served by
//! `koppeltest serve dva` (rustls, and OpenSSL for the legacy-TLS quirks), the protocol versions
//! and cipher suites koppeltest finds accepted are the ones Debian's `sslscan` finds.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use koppeltest::probe::{ProbeOptions, ProbeTarget, scan};
use koppeltest::tls_scan::{Answer, TlsVersion};

use crate::helpers::{Killed, free_port, pki_init, spawn_ready, temp_dir};

const BACK_HOST: &str = "api.conform.dva.koppeltest.test";

/// A matrix of three simulated rows on the conformant practice's hosts.
const MATRIX: &str = r#"name = "tls comparison"
[[his]]
id = "conform"
name = "Conform"
dva = "simulated"
practice = "dewaard.huisartspraktijk.utrecht@medmij"
zal = "embedded:MedMij_Zorgaanbiederslijst.xml"
ocl = "embedded:MedMij_OAuthclientlist.xml"
whitelist = "embedded:MedMij_Whitelist.xml"
target = { kind = "simulated", entity_index = 9201, quirks = [] }
[[his]]
id = "legacy"
name = "Legacy"
dva = "simulated"
practice = "dewaard.huisartspraktijk.utrecht@medmij"
zal = "embedded:MedMij_Zorgaanbiederslijst.xml"
ocl = "embedded:MedMij_OAuthclientlist.xml"
whitelist = "embedded:MedMij_Whitelist.xml"
target = { kind = "simulated", entity_index = 9202, quirks = ["legacy-tls-accepted"] }
[[his]]
id = "weak"
name = "Weak"
dva = "simulated"
practice = "dewaard.huisartspraktijk.utrecht@medmij"
zal = "embedded:MedMij_Zorgaanbiederslijst.xml"
ocl = "embedded:MedMij_OAuthclientlist.xml"
whitelist = "embedded:MedMij_Whitelist.xml"
target = { kind = "simulated", entity_index = 9203, quirks = ["weak-suite-accepted"] }
[[pgo]]
id = "col"
name = "Col"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback"
release = "2.2"
"#;

/// `serve dva --row row`; returns the process and its back-channel port once it is ready.
fn serve(dir: &Path, row: &str) -> (Killed, u16) {
    let (front, back, tvs) = (free_port(), free_port(), free_port());
    let server = spawn_ready(
        crate::helpers::koppeltest()
            .args(["serve", "dva", "--row", row, "--matrix"])
            .arg(dir.join("matrix.toml"))
            .arg("--pki")
            .arg(dir.join("pki"))
            .args(["--front", &format!("127.0.0.1:{front}")])
            .args(["--back", &format!("127.0.0.1:{back}")])
            .args([
                "--tvs-back-host",
                &format!("soap.tvs.koppeltest.test:{tvs}"),
            ]),
    );
    (server, back)
}

/// What sslscan found accepted: versions (`TLSv1.2`) and suites as (version, IANA id).
fn sslscan(port: u16) -> (BTreeSet<String>, BTreeSet<(String, u16)>) {
    let out = Command::new("sslscan")
        .args([
            "--no-colour",
            "--xml=-",
            &format!("--sni-name={BACK_HOST}"),
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .expect("sslscan is installed (ci/deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("<?xml").expect("sslscan wrote XML");
    let doc = roxmltree::Document::parse(&text[start..]).expect("sslscan XML parses");
    let mut versions = BTreeSet::new();
    let mut suites = BTreeSet::new();
    for node in doc.descendants() {
        match node.tag_name().name() {
            "protocol" if node.attribute("enabled") == Some("1") => {
                let kind = node.attribute("type").unwrap_or("");
                let version = node.attribute("version").unwrap_or("");
                versions.insert(if kind == "ssl" {
                    format!("SSLv{version}")
                } else {
                    format!("TLSv{version}")
                });
            }
            "cipher" if node.attribute("status").is_some() => {
                let version = node.attribute("sslversion").unwrap_or("").to_string();
                let id = node
                    .attribute("id")
                    .and_then(|i| u16::from_str_radix(i.trim_start_matches("0x"), 16).ok())
                    .expect("a cipher id");
                suites.insert((version, id));
            }
            _ => {}
        }
    }
    (versions, suites)
}

/// koppeltest's own view of the same listener.
fn probe(port: u16) -> (BTreeSet<String>, BTreeSet<(String, u16)>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(scan(
        &ProbeTarget {
            host: BACK_HOST.into(),
            addr: ([127, 0, 0, 1], port).into(),
        },
        &ProbeOptions::default(),
    ));
    let versions = result
        .versions
        .iter()
        .filter(|p| p.answer == Answer::Accepted)
        .map(|p| p.version.to_string())
        .collect();
    let suites = result
        .suites
        .iter()
        .filter(|p| p.answer == Answer::Accepted)
        .map(|p| (p.version.to_string(), p.id))
        .collect();
    (versions, suites)
}

#[test]
fn accepted_versions_and_suites_agree_with_sslscan() {
    let dir = temp_dir("tls-sslscan");
    std::fs::write(dir.join("matrix.toml"), MATRIX).unwrap();
    pki_init(&dir.join("pki"));
    for row in ["conform", "legacy", "weak"] {
        let (_server, port) = serve(&dir, row);
        let (theirs_v, theirs_s) = sslscan(port);
        let (ours_v, ours_s) = probe(port);
        // sslscan, built on Debian's OpenSSL 3, cannot offer SSLv3: compare what both probe.
        let ours_v: BTreeSet<String> = ours_v
            .into_iter()
            .filter(|v| v != &TlsVersion::Ssl3.to_string())
            .collect();
        assert_eq!(ours_v, theirs_v, "{row}: protocol versions");
        // Suites: TLS 1.2 and 1.3, each offered alone by koppeltest.
        let theirs_s: BTreeSet<(String, u16)> = theirs_s
            .into_iter()
            .filter(|(v, _)| v == "TLSv1.2" || v == "TLSv1.3")
            .collect();
        assert_eq!(ours_s, theirs_s, "{row}: cipher suites");
        match row {
            "conform" => assert!(!ours_v.contains("TLSv1.0") && ours_v.contains("TLSv1.3")),
            "legacy" => assert!(ours_v.contains("TLSv1.0") && !ours_v.contains("TLSv1.3")),
            // TLS_RSA_WITH_AES_128_CBC_SHA: static RSA with a SHA-1 MAC.
            _ => assert!(
                ours_s.contains(&("TLSv1.2".to_string(), 0x002f)),
                "{ours_s:?}"
            ),
        }
    }
    std::fs::remove_dir_all(dir).ok();
}
