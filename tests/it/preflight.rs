//! `koppeltest preflight` over the wire: the binary starts each simulated row's DVA and probes it
//! with real TCP and TLS handshakes, or probes an external row's servers where its `resolve` map
//! says they are. Each check is shown failing on a named deviation (a list file, a row claim, a
//! quirk, a certificate, an endpoint that does not answer) while the row's other checks pass,
//! and every check passes on the conformant default matrix.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use koppeltest::pki::{Broken, Channel, Pki};
use koppeltest::tls::{self, ClientAuth};
use serde_json::Value;

use crate::helpers::{CONFORM_PRACTICE, external_target, free_port, pki_init, temp_dir};

const ZAL3: &str = include_str!("../../fixtures/lists/MedMij_Zorgaanbiederslijst.xml");
const ZAL2: &str = include_str!("../../fixtures/lists/MedMij_Zorgaanbiederslijst_release2.xml");
const OCL: &str = include_str!("../../fixtures/lists/MedMij_OAuthclientlist.xml");
const WHITELIST: &str = include_str!("../../fixtures/lists/MedMij_Whitelist.xml");

/// Runs `koppeltest preflight --json` with `args`; returns the exit code and the JSON report.
fn preflight(args: &[&str]) -> (Option<i32>, Value) {
    let out = crate::helpers::koppeltest()
        .env("CI", "true")
        .arg("preflight")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "preflight printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn row<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["row"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {report:#}"))
}

/// The checks of `row` whose status is not `ok`, by name.
fn not_ok(report: &Value, id: &str) -> BTreeMap<String, String> {
    row(report, id)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn detail(report: &Value, id: &str, check: &str) -> String {
    row(report, id)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .map(|c| c["detail"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("row {id} has no check {check}"))
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_default_matrix_passes_every_check_in_seconds() {
    let started = Instant::now();
    let (code, report) = preflight(&[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["ready"], true);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let checks = r["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 9, "{r:#}");
        for c in checks {
            assert_eq!(c["status"], "ok", "{}: {c:#}", r["row"]);
        }
        assert!(r["days_to_expiry"].as_i64().unwrap() >= 60, "{r:#}");
    }
    assert!(
        detail(&report, "sim-conform", "tls.accepts").contains("client certificate of"),
        "the back channel is probed with mutual TLS"
    );
    // A loaded machine builds RSA keys slowly; the bound is there to catch a hang.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // The table says the same.
    let table = crate::helpers::koppeltest()
        .env("CI", "true")
        .arg("preflight")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.status.code(), Some(0), "{text}");
    assert!(
        text.contains("certificate.expiry") && text.contains("ready: every row can be run"),
        "{text}"
    );
}

/// One simulated row of the deviation matrix.
fn sim_row(
    id: &str,
    practice: &str,
    lists: (&str, &str, &str),
    extra: &str,
    quirks: &str,
) -> String {
    let (zal, ocl, whitelist) = lists;
    format!(
        r#"
[[his]]
id = "{id}"
name = "{id}"
dva = "simulated"
practice = "{practice}"
zal = "{zal}"
ocl = "{ocl}"
whitelist = "{whitelist}"
{extra}
target = {{ kind = "simulated", entity_index = 9200, quirks = [{quirks}] }}
"#
    )
}

#[test]
fn each_check_fails_on_its_own_deviation_of_a_simulated_row() {
    let dir = temp_dir("preflight-sim");
    // The conformant practice without gegevensdienst 49 (it offers 48 instead).
    std::fs::write(
        dir.join("zal-no-49.xml"),
        ZAL3.replacen(
            "<GegevensdienstId>49</GegevensdienstId>",
            "<GegevensdienstId>48</GegevensdienstId>",
            1,
        ),
    )
    .unwrap();
    // A dotted name on a release-2 list, whose XSD allows only [a-z]+@medmij.
    std::fs::write(
        dir.join("zal2-dotted.xml"),
        ZAL2.replace(
            "hoekstra@medmij",
            "hoekstra.huisartspraktijk.leeuwarden@medmij",
        ),
    )
    .unwrap();
    // The back-channel host left off the Whitelist.
    std::fs::write(
        dir.join("whitelist-no-api.xml"),
        WHITELIST.replace(
            "<MedMijNode><Hostname>api.conform.dva.koppeltest.test</Hostname></MedMijNode>",
            "",
        ),
    )
    .unwrap();
    // PGO Beta left off the OCL.
    let beta = OCL
        .lines()
        .find(|l| l.contains("medmij.pgo-beta.koppeltest.test"))
        .unwrap();
    std::fs::write(dir.join("ocl-no-beta.xml"), OCL.replace(beta, "")).unwrap();

    let embedded = (
        "embedded:MedMij_Zorgaanbiederslijst.xml",
        "embedded:MedMij_OAuthclientlist.xml",
        "embedded:MedMij_Whitelist.xml",
    );
    let conform = "dewaard.huisartspraktijk.utrecht@medmij";
    let claims = "zal_release = 3\ninterfaceversie = \"1.4.0\"";
    let mut matrix = String::from("name = \"preflight deviations\"\n");
    matrix += &sim_row("conform", conform, embedded, claims, "");
    matrix += &sim_row(
        "absent",
        "nobody.huisartspraktijk.utrecht@medmij",
        embedded,
        "",
        "",
    );
    matrix += &sim_row(
        "no-49",
        conform,
        ("zal-no-49.xml", embedded.1, embedded.2),
        "",
        "",
    );
    matrix += &sim_row(
        "wrong-version",
        conform,
        embedded,
        "interfaceversie = \"2.0.0\"",
        "",
    );
    matrix += &sim_row(
        "bad-name",
        "hoekstra.huisartspraktijk.leeuwarden@medmij",
        (
            "zal2-dotted.xml",
            embedded.1,
            "embedded:MedMij_Whitelist_v2.xml",
        ),
        "",
        "",
    );
    matrix += &sim_row(
        "off-whitelist",
        conform,
        (embedded.0, embedded.1, "whitelist-no-api.xml"),
        "",
        "",
    );
    matrix += &sim_row(
        "no-beta",
        conform,
        (embedded.0, "ocl-no-beta.xml", embedded.2),
        "",
        "",
    );
    matrix += &sim_row(
        "expiring",
        conform,
        embedded,
        "",
        "\"certificate-expiring-soon\"",
    );
    matrix += r#"
[[pgo]]
id = "pgo-alfa"
name = "PGO Alfa"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback"
release = "1.x"

[[pgo]]
id = "pgo-beta"
name = "PGO Beta"
hostname = "medmij.pgo-beta.koppeltest.test"
redirect_uri = "https://medmij.pgo-beta.koppeltest.test/oauth/callback"
release = "2.2"
"#;
    std::fs::write(dir.join("matrix.toml"), &matrix).unwrap();
    let path = dir.join("matrix.toml");
    let (code, report) = preflight(&["--matrix", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["ready"], false);

    assert_eq!(not_ok(&report, "conform"), expected(&[]), "{report:#}");
    assert!(detail(&report, "conform", "zal.release").contains("as the row claims"));
    // Not on the ZAL: nothing that needs its endpoints is checked.
    assert_eq!(
        not_ok(&report, "absent"),
        expected(&[
            ("zal.listed", "fail"),
            ("zal.service-49", "skip"),
            ("zal.release", "skip"),
            ("whitelist.endpoints", "skip"),
            ("dns.resolves", "skip"),
            ("tls.accepts", "skip"),
            ("certificate.expiry", "skip"),
        ])
    );
    assert!(detail(&report, "absent", "zal.listed").contains("not on the ZAL"));
    assert_eq!(
        not_ok(&report, "no-49"),
        expected(&[
            ("zal.service-49", "fail"),
            ("zal.release", "skip"),
            ("whitelist.endpoints", "skip"),
            ("dns.resolves", "skip"),
            ("tls.accepts", "skip"),
            ("certificate.expiry", "skip"),
        ])
    );
    assert!(detail(&report, "no-49", "zal.service-49").contains("offers: 48"));
    assert_eq!(
        not_ok(&report, "wrong-version"),
        expected(&[("zal.release", "fail")])
    );
    assert!(detail(&report, "wrong-version", "zal.release").contains("1.4.0"));
    assert_eq!(
        not_ok(&report, "bad-name"),
        expected(&[("zal.naming", "fail")])
    );
    assert!(detail(&report, "bad-name", "zal.naming").contains("[a-z]+@medmij"));
    assert_eq!(
        not_ok(&report, "off-whitelist"),
        expected(&[("whitelist.endpoints", "fail")])
    );
    assert!(
        detail(&report, "off-whitelist", "whitelist.endpoints")
            .contains("api.conform.dva.koppeltest.test (token, resource)")
    );
    assert_eq!(
        not_ok(&report, "no-beta"),
        expected(&[("ocl.columns", "fail")])
    );
    assert!(detail(&report, "no-beta", "ocl.columns").contains("pgo-beta"));
    // Expiring soon is a warning: the row can still be run.
    assert_eq!(
        not_ok(&report, "expiring"),
        expected(&[("certificate.expiry", "warn")])
    );
    assert_eq!(row(&report, "expiring")["status"], "warn");
    let days = row(&report, "expiring")["days_to_expiry"].as_i64().unwrap();
    assert!((0..60).contains(&days), "{days}");
}

/// An external row with one PGO column, its endpoints resolved to `front` and `back` (`None`:
/// no `resolve` entries, so DNS is asked).
fn external_row(id: &str, ports: Option<(u16, u16)>) -> String {
    let resolve = match ports {
        Some((front, back)) => format!(
            "{{ \"medmij.conform.dva.koppeltest.test\" = \"127.0.0.1:{front}\", \
             \"api.conform.dva.koppeltest.test\" = \"127.0.0.1:{back}\" }}"
        ),
        None => "{}".to_string(),
    };
    let target = external_target("pki", &resolve, (9443, 9444), "sp-metadata.xml");
    format!(
        r#"
[[his]]
id = "{id}"
name = "{id}"
dva = "a DVA in another process"
{CONFORM_PRACTICE}
{target}"#
    )
}

/// Serves `leaf` over TLS on a fresh loopback port (in `rt`), answering nothing over HTTP.
fn serve(
    rt: &tokio::runtime::Runtime,
    leaf: &koppeltest::pki::Leaf,
    auth: ClientAuth,
) -> (tls::Server, u16) {
    rt.block_on(async {
        let listener = tls::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = tls::server_config(leaf, auth).unwrap();
        (
            tls::serve(listener, config, axum::Router::new(), None),
            port,
        )
    })
}

#[test]
fn an_external_row_fails_on_an_expired_certificate_and_on_endpoints_that_do_not_answer() {
    let dir = temp_dir("preflight-ext");
    pki_init(&dir.join("pki"));
    koppeltest::tls::install_crypto_provider();
    let pki = Pki::load(&dir.join("pki")).unwrap();
    // The SP metadata an external row must name; preflight never uses it.
    let prepared = crate::helpers::default_prepared();
    let metadata = koppeltest::runner::dva_config(&prepared, &prepared.rows[0])
        .unwrap()
        .metadata(&prepared.pki)
        .unwrap();
    std::fs::write(dir.join("sp-metadata.xml"), metadata).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let expired = pki
        .broken(
            Channel::Front,
            "medmij.conform.dva.koppeltest.test",
            Broken::Expired,
        )
        .unwrap();
    let (_front, front) = serve(&rt, &expired, ClientAuth::None);
    let back_leaf = pki
        .leaf(Channel::Back, "api.conform.dva.koppeltest.test")
        .unwrap();
    let (_back, back) = serve(
        &rt,
        &back_leaf,
        ClientAuth::Required(pki.roots(Channel::Back)),
    );
    // A good front channel, and a back channel that trusts only the front-channel CA for
    // client certificates, so the PGO node's certificate is refused after the handshake.
    let front_leaf = pki
        .leaf(Channel::Front, "medmij.conform.dva.koppeltest.test")
        .unwrap();
    let (_good_front, good_front) = serve(&rt, &front_leaf, ClientAuth::None);
    let (_picky_back, picky_back) = serve(
        &rt,
        &back_leaf,
        ClientAuth::Required(pki.roots(Channel::Front)),
    );
    // Nothing listens on `closed`; `silent` accepts connections and never says a word.
    let closed = free_port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();

    let mut matrix = String::from("name = \"preflight external\"\n");
    matrix += &external_row("expired", Some((front, back)));
    matrix += &external_row("unreachable", Some((closed, silent_port)));
    matrix += &external_row("client-refused", Some((good_front, picky_back)));
    // The .test domain is reserved: these names are in no DNS.
    matrix += &external_row("not-in-dns", None);
    matrix += r#"
[[pgo]]
id = "col"
name = "PGO Alfa"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback"
release = "1.x"
"#;
    std::fs::write(dir.join("matrix.toml"), matrix).unwrap();
    let path = dir.join("matrix.toml");
    let started = Instant::now();
    let (code, report) = preflight(&[
        "--matrix",
        path.to_str().unwrap(),
        "--pki",
        dir.join("pki").to_str().unwrap(),
        "--timeout-ms",
        "1000",
    ]);
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{report:#}");

    assert_eq!(
        not_ok(&report, "expired"),
        expected(&[("tls.accepts", "fail"), ("certificate.expiry", "fail")]),
        "{report:#}"
    );
    let tls_detail = detail(&report, "expired", "tls.accepts");
    assert!(
        tls_detail.contains("medmij.conform.dva.koppeltest.test (authorization): handshake")
            && tls_detail
                .contains("client certificate of medmij.pgo-alfa.koppeltest.test accepted"),
        "the front fails, the back passes: {tls_detail}"
    );
    let expiry = detail(&report, "expired", "certificate.expiry");
    assert!(
        expiry.contains("medmij.conform.dva.koppeltest.test: expired on "),
        "{expiry}"
    );
    assert!(row(&report, "expired")["days_to_expiry"].as_i64().unwrap() < 0);

    assert_eq!(
        not_ok(&report, "unreachable"),
        expected(&[("tls.accepts", "fail"), ("certificate.expiry", "fail")]),
        "{report:#}"
    );
    let tls_detail = detail(&report, "unreachable", "tls.accepts");
    assert!(
        tls_detail.contains(&format!("connect 127.0.0.1:{closed}"))
            && tls_detail.contains("no handshake within 1000 ms"),
        "{tls_detail}"
    );
    assert_eq!(
        not_ok(&report, "client-refused"),
        expected(&[("tls.accepts", "fail")]),
        "{report:#}"
    );
    let tls_detail = detail(&report, "client-refused", "tls.accepts");
    assert!(
        tls_detail.contains("api.conform.dva.koppeltest.test (token, resource): ")
            && tls_detail.contains("refused after the handshake")
            && !tls_detail
                .contains("client certificate of medmij.pgo-alfa.koppeltest.test accepted"),
        "{tls_detail}"
    );

    assert_eq!(
        not_ok(&report, "not-in-dns"),
        expected(&[
            ("dns.resolves", "fail"),
            ("tls.accepts", "skip"),
            ("certificate.expiry", "skip"),
        ]),
        "{report:#}"
    );
    let dns = detail(&report, "not-in-dns", "dns.resolves");
    assert!(
        dns.contains("medmij.conform.dva.koppeltest.test: ") && dns.contains("DNS"),
        "{dns}"
    );
    // A silent endpoint costs its time-outs, not a hang.
    assert!(took < Duration::from_secs(30), "{took:?}");
    drop(silent);
}

#[test]
fn a_bad_matrix_is_exit_three_and_help_names_the_exit_codes() {
    let dir = temp_dir("preflight-bad");
    let bad =
        koppeltest::matrix::EMBEDDED_DEFAULT
            .1
            .replacen("zal_release = 3", "zal_release = 4", 1);
    std::fs::write(dir.join("matrix.toml"), bad).unwrap();
    let out = crate::helpers::koppeltest()
        .args(["preflight", "--matrix"])
        .arg(dir.join("matrix.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("field `zal_release`") && stderr.contains("releases are 2 and 3"),
        "{stderr}"
    );
    let missing = crate::helpers::koppeltest()
        .args(["preflight", "--matrix"])
        .arg(dir.join("no-such-matrix.toml"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(3));
    let both = crate::helpers::koppeltest()
        .args(["preflight", "--json", "--format", "table"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "--json and --format conflict");
    let help = crate::helpers::koppeltest()
        .args(["preflight", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Exit codes:") && help.contains("every row can be run"),
        "{help}"
    );
}
