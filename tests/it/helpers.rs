//! Shared helpers: small matrices and scenarios built in code, run through the real runner.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use koppeltest::fixtures::PatientStore;
use koppeltest::matrix::Matrix;
use koppeltest::pki::Pki;
use koppeltest::runner::{self, Finished, Prepared};
use koppeltest::scenario::{self, Scenario};

/// One PKI for the whole test binary: generating RSA keys is the slow part of set-up.
pub fn pki() -> Arc<Pki> {
    static PKI: std::sync::OnceLock<Arc<Pki>> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        koppeltest::tls::install_crypto_provider();
        Arc::new(Pki::generate().expect("test PKI"))
    })
    .clone()
}

/// A matrix row's practice and lists: the conformant practice on the embedded lists.
pub const CONFORM_PRACTICE: &str = r#"practice = "dewaard.huisartspraktijk.utrecht@medmij"
zal = "embedded:MedMij_Zorgaanbiederslijst.xml"
ocl = "embedded:MedMij_OAuthclientlist.xml"
whitelist = "embedded:MedMij_Whitelist.xml"
"#;

/// The `[his.target]` of an external row for the PGO column `col` (PGO Alfa): roots and its
/// client certificate from the test PKI at `pki`, the DVA's hosts as `resolve` says (a TOML
/// inline table), the mock TVS on `tvs` (front, back) on loopback, the DVA's SP metadata file.
pub fn external_target(pki: &str, resolve: &str, tvs: (u16, u16), sp_metadata: &str) -> String {
    let (tvs_front, tvs_back) = tvs;
    format!(
        r#"[his.target]
kind = "external"
front_roots = "{pki}/front-ca.pem"
back_roots = "{pki}/back-root-ca.pem"
client_certificates = {{ col = {{ cert = "{pki}/back/medmij.pgo-alfa.koppeltest.test.pem", key = "{pki}/back/medmij.pgo-alfa.koppeltest.test.key.pem" }} }}
resolve = {resolve}
tvs = {{ front_host = "tvs.koppeltest.test:{tvs_front}", back_host = "soap.tvs.koppeltest.test:{tvs_back}", front_listen = "127.0.0.1:{tvs_front}", back_listen = "127.0.0.1:{tvs_back}", sp_metadata = "{sp_metadata}" }}
"#
    )
}

/// A one-row, one-column matrix on the conformant practice's hosts with the given quirks and
/// known deviations.
pub fn matrix_toml(quirks: &[&str], known: &[(&str, &str)], release: &str) -> String {
    let quirks: Vec<String> = quirks.iter().map(|q| format!("\"{q}\"")).collect();
    let mut text = format!(
        r#"name = "test"
# Short budgets, so the slow-endpoint quirks (4 s) are caught in seconds, with room for a
# loaded machine: conformant answers stay far below 2.5 s.
budgets = {{ token_ms = 2500, resource_ms = 2500 }}
[[his]]
id = "row"
name = "Row"
dva = "simulated"
{CONFORM_PRACTICE}target = {{ kind = "simulated", entity_index = 9100, quirks = [{}] }}
"#,
        quirks.join(", ")
    );
    for (scenario, reason) in known {
        text.push_str(&format!(
            "[[his.known_deviation]]\nscenario = \"{scenario}\"\nreason = \"{reason}\"\n"
        ));
    }
    text.push_str(&format!(
        r#"[[pgo]]
id = "col"
name = "Col"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback"
release = "{release}"
"#
    ));
    text
}

pub fn prepare(matrix_text: &str, scenarios: Vec<Scenario>) -> Arc<Prepared> {
    let (path, text) = koppeltest::fixtures::EMBEDDED_MANIFEST;
    let manifest = koppeltest::fixtures::Manifest::parse(path, text).expect("manifest");
    prepare_with_fixtures(
        matrix_text,
        scenarios,
        Arc::new(PatientStore::embedded().expect("fixtures")),
        manifest,
    )
}

/// The embedded default matrix with the embedded scenarios, as `koppeltest run` prepares it.
pub fn default_prepared() -> Arc<Prepared> {
    let (matrix, text) = Matrix::embedded_default().expect("default matrix");
    let scenarios = scenario::embedded().expect("scenarios");
    let rows = matrix
        .prepare(Path::new("default.toml"), &text, Path::new("."), &scenarios)
        .expect("default matrix prepares");
    Arc::new(Prepared::new(
        matrix,
        rows,
        scenarios,
        pki(),
        Arc::new(PatientStore::embedded().expect("fixtures")),
    ))
}

/// Like [`prepare`], with other test patients and manifest (e.g. an export loaded back).
pub fn prepare_with_fixtures(
    matrix_text: &str,
    scenarios: Vec<Scenario>,
    patients: Arc<PatientStore>,
    manifest: koppeltest::fixtures::Manifest,
) -> Arc<Prepared> {
    let path = Path::new("test-matrix.toml");
    let matrix = Matrix::parse(path, matrix_text).expect("matrix parses");
    let rows = matrix
        .prepare(path, matrix_text, Path::new("."), &scenarios)
        .expect("matrix prepares");
    let mut prepared = Prepared::new(matrix, rows, scenarios, pki(), patients);
    prepared.manifest = Arc::new(manifest);
    Arc::new(prepared)
}

pub fn scenario(text: &str) -> Scenario {
    scenario::parse(Path::new("inline.toml"), text).expect("scenario parses")
}

pub async fn run(prepared: Arc<Prepared>) -> Vec<Finished> {
    runner::run_all(prepared, 8).await
}

/// `dir/scenarios/` holding copies of the named files of the project's `scenarios/`.
pub fn scenario_folder(dir: &Path, names: &[&str]) -> PathBuf {
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).expect("scenarios folder");
    for name in names {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios")
                .join(name),
            scenarios.join(name),
        )
        .expect("copy a scenario file");
    }
    scenarios
}

/// A fresh folder under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "koppeltest-it-{tag}-{}",
        koppeltest::ids::random_hex(6)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Every file below `dir`, with its contents as text.
pub fn files_below(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.clone(),
                    String::from_utf8_lossy(&std::fs::read(&p).expect("read")).into_owned(),
                ));
            }
        }
    }
    out
}

/// A child process, killed and reaped when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free at the moment of asking, for a server a test starts on a fixed port
/// (an external row's mock TVS, a `serve` process). It comes from below Linux's ephemeral range
/// (32768–60999), from which every `bind(0)` draws: a port released here used to be taken,
/// now and then, by one of the test's own servers on port 0 before the intended one bound it
/// (CI saw the hostile corpus's mock TVS fail to start). A counter keeps the ports of this
/// process distinct; the process id spreads processes apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (start.wrapping_add(n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Spawns `command` (a `koppeltest serve …`) and returns once it prints a line saying it is
/// ready; its output is drained after that, since a closed pipe would end the server at its
/// next line.
pub fn spawn_ready(command: &mut std::process::Command) -> Killed {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Killed(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("the server exited early").unwrap();
        if line.contains("ready") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not become ready"
        );
    }
    std::thread::spawn(move || lines.for_each(drop));
    guard
}

/// The key cache of the binary the tests start: in the test target's folder, so tests neither read
/// nor write the key cache of whoever runs them, and still share their keys from run to run.
pub const KEY_CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/keys");

/// The koppeltest binary, with its key cache at [`KEY_CACHE`].
pub fn koppeltest() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_koppeltest"));
    c.env(koppeltest::pki::KEY_CACHE_ENV, KEY_CACHE);
    c
}

/// `koppeltest pki init --out dir`, which must succeed.
pub fn pki_init(dir: &Path) {
    let init = koppeltest()
        .args(["pki", "init", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
}

/// Interrupts `child` as Ctrl-C would (SIGINT) and waits for it to end.
pub fn interrupt(mut child: std::process::Child) -> std::process::ExitStatus {
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success(), "SIGINT delivered");
    child.wait().expect("the interrupted process ends")
}
