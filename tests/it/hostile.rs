//! The hostile-DVA corpus's harness. koppeltest runs against DVAs nobody here wrote: each case in
//! `hostile_*.rs` points the real binary (`koppeltest run`, an `external` matrix row) at a DVA
//! that misbehaves in one named way, and proves that koppeltest ends the affected scenario with
//! a clear reason within its bound, goes on with the run, does not panic, stays within its
//! memory bound and writes no planted secret into the run folder.
//!
//! The hostile DVA is two TLS listeners (front: the authorization endpoint's host; back: the
//! token and resource endpoints' host) with leaves from the same test PKI as the run, so TLS
//! itself succeeds where a case is not about TLS. Behind them:
//! - HTTP-level behaviour is scripted declaratively with wiremock: the listener terminates TLS
//!   and copies bytes to wiremock's plain-HTTP listener. A baseline of well-enough-behaved
//!   answers (a code redirected straight back, a token, an empty searchset) lets a case break
//!   exactly one endpoint.
//! - Transport- and TLS-level behaviour is raw: a case takes over the TLS stream after reading
//!   the request head on one path, or the TCP socket before any TLS.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use koppeltest::pki::{Channel, Pki};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{CONFORM_PRACTICE, external_target, files_below, pki_init, temp_dir};

/// The hosts the embedded ZAL gives the conformant practice: the hostile DVA answers on them.
pub const FRONT_HOST: &str = "medmij.conform.dva.koppeltest.test";
pub const BACK_HOST: &str = "api.conform.dva.koppeltest.test";
/// The PGO column's redirect URI (on the embedded OCL).
pub const REDIRECT_URI: &str = "https://medmij.pgo-alfa.koppeltest.test/oauth/callback";
/// The hostile DV's SAML entity (registered with the run's mock TVS by its SP metadata).
pub const ENTITY_ID: &str = "urn:nl-eid-gdi:1.0:DV:00000009999999999999:entities:9001";
/// The baseline's access token: a run learns it as a secret, so no report file may hold it.
pub const ACCESS_TOKEN: &str = "hostile-access-token-7d1c0a9e5b3f4e21a8c6d0b9f2e4a7c3";

/// The request time-out the hostile runs set in their matrix (`timeouts.request_ms`): short, so
/// a hang is caught in seconds. The cases' bounds are stated against it.
pub const REQUEST_MS: u64 = 2_000;
/// The time a case's affected step may take: the request time-out plus room for a loaded
/// machine (two cores shared by several builders).
pub const STEP_BOUND: Duration = Duration::from_secs(12);
/// The outer time-out: a run still going after this is killed and the case fails as a hang.
const OUTER_TIMEOUT: Duration = Duration::from_secs(90);
/// The memory bound: a normal run's peak (about 90 MiB for this two-scenario run;
/// `benign_run_is_the_baseline` prints it) plus the 256 MiB a hostile peer may cost on top.
pub const MEMORY_BOUND_KIB: u64 = (96 + 256) * 1024;

/// The scenario every case runs against the hostile DVA: a login, a token and one query.
pub const FLOW: &str = "hostile.flow";
/// A scenario that touches only the back channel's TLS (`tls.token-endpoint`) or only the
/// front channel's: whichever a case leaves alone shows that the run goes on.
const FLOW_TOML: &str = r#"id = "hostile.flow"
title = "Authorization, token and one query against a hostile DVA"
description = "The flow every hostile-DVA case runs: each case breaks one of its exchanges."
tags = ["hostile"]
[[step]]
id = "authorize"
action = "authorize"
[[step]]
id = "token"
action = "token"
code_from = "authorize"
[[step]]
id = "patient"
action = "fhir"
query = "patient"
token_from = "token"
[[check]]
kind = "code-issued"
step = "authorize"
[[check]]
kind = "token-issued"
step = "token"
[[check]]
kind = "fhir-searchset"
step = "patient"
[[check]]
kind = "paged"
step = "patient"
"#;

/// What every case shares: the test PKI (made once by `koppeltest pki init`), loaded here too so
/// the hostile DVA's leaves chain to the roots the run trusts, and the hostile DV's SP metadata.
pub struct Shared {
    pub dir: PathBuf,
    pub pki: Pki,
}

pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        koppeltest::tls::install_crypto_provider();
        let dir = temp_dir("hostile-pki").join("pki");
        pki_init(&dir);
        let pki = Pki::load(&dir).expect("load the test PKI");
        // Issue the hostile DVA's leaves and SAML keys once, before cases run in parallel.
        pki.leaf(Channel::Front, FRONT_HOST).expect("front leaf");
        pki.leaf(Channel::Back, BACK_HOST).expect("back leaf");
        let metadata = koppeltest::saml::sp_metadata(
            ENTITY_ID,
            &pki.saml_key("hostile-signing").expect("signing key"),
            &pki.saml_key("hostile-encryption").expect("encryption key"),
            &format!("https://{FRONT_HOST}/saml/acs"),
        );
        std::fs::write(dir.join("hostile-sp-metadata.xml"), metadata).expect("metadata");
        Shared { dir, pki }
    })
}

/// Which of the hostile DVA's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Front,
    Back,
}

pub type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Takes over a TLS connection after its request head was read (the head is passed along).
pub type RawHandler = Arc<dyn Fn(TlsStream<TcpStream>, Vec<u8>) -> BoxFut + Send + Sync>;
/// Takes over a TCP connection before any TLS (the side's server configuration is passed along).
pub type TcpHandler = Arc<dyn Fn(TcpStream, Arc<ServerConfig>) -> BoxFut + Send + Sync>;

/// Wraps an async closure as a [`RawHandler`].
pub fn raw<F, Fut>(f: F) -> RawHandler
where
    F: Fn(TlsStream<TcpStream>, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |s, h| Box::pin(f(s, h)))
}

/// Wraps an async closure as a [`TcpHandler`].
pub fn tcp<F, Fut>(f: F) -> TcpHandler
where
    F: Fn(TcpStream, Arc<ServerConfig>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |s, c| Box::pin(f(s, c)))
}

/// One corpus case, built up and then [`Case::run`].
pub struct Case {
    name: String,
    mocks: Vec<Mock>,
    raw: Vec<(Side, String, RawHandler)>,
    tcp: Vec<(Side, TcpHandler)>,
    step: String,
    reasons: Vec<String>,
    may_fail: bool,
    secrets: Vec<String>,
    extra_scenarios: Vec<(String, String)>,
    tvs: (u16, u16),
}

/// What a finished case measured, for the closing table.
#[derive(Debug)]
pub struct Measured {
    pub peak_kib: u64,
}

impl Case {
    pub fn new(name: &str) -> Case {
        Case {
            name: name.to_string(),
            mocks: Vec::new(),
            raw: Vec::new(),
            tcp: Vec::new(),
            step: "authorize".into(),
            reasons: Vec::new(),
            may_fail: false,
            secrets: Vec::new(),
            extra_scenarios: Vec::new(),
            tvs: (crate::helpers::free_port(), crate::helpers::free_port()),
        }
    }

    /// The run's mock TVS: the login page's and the artifact resolution service's ports.
    pub fn tvs_ports(&self) -> (u16, u16) {
        self.tvs
    }

    /// A wiremock answer, ahead of the baseline.
    pub fn mock(mut self, mock: Mock) -> Case {
        self.mocks.push(mock);
        self
    }

    /// Raw behaviour on requests whose path starts with `prefix` on `side`.
    pub fn raw(mut self, side: Side, prefix: &str, handler: RawHandler) -> Case {
        self.raw.push((side, prefix.to_string(), handler));
        self
    }

    /// Raw behaviour on every TCP connection to `side`, before any TLS.
    pub fn tcp(mut self, side: Side, handler: TcpHandler) -> Case {
        self.tcp.push((side, handler));
        self
    }

    /// The step the hostile behaviour hits, and a text its reason must contain (any of several,
    /// case-insensitive: the stack's wording differs by where exactly a connection broke).
    pub fn expect(mut self, step: &str, reasons: &[&str]) -> Case {
        self.step = step.to_string();
        self.reasons = reasons.iter().map(|r| r.to_lowercase()).collect();
        self
    }

    /// The affected scenario may end `fail` rather than `error` (a conformance check caught the
    /// message as a MUST violation); the case's doc comment says why.
    pub fn may_fail(mut self) -> Case {
        self.may_fail = true;
        self
    }

    /// A value the hostile DVA plants that must reach no file of the run folder.
    pub fn secret(mut self, value: &str) -> Case {
        self.secrets.push(value.to_string());
        self
    }

    /// A scenario file added to the run (name, text).
    pub fn scenario(mut self, name: &str, text: &str) -> Case {
        self.extra_scenarios.push((name.into(), text.into()));
        self
    }

    /// Runs the case and asserts everything the corpus promises; returns what it measured.
    pub fn run(self) -> Measured {
        let shared = shared();
        let dir = temp_dir(&format!("hostile-{}", self.name));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let touches_back = self.step != "authorize"
            || self.raw.iter().any(|(s, ..)| *s == Side::Back)
            || self.tcp.iter().any(|(s, _)| *s == Side::Back);
        let (front_port, back_port, _mock) = rt.block_on(async {
            let mock = MockServer::start().await;
            for m in self.mocks {
                m.mount(&mock).await;
            }
            baseline(&mock).await;
            let front = serve(
                Side::Front,
                &shared.pki,
                *mock.address(),
                &self.raw,
                &self.tcp,
            );
            let back = serve(
                Side::Back,
                &shared.pki,
                *mock.address(),
                &self.raw,
                &self.tcp,
            );
            (front.await, back.await, mock)
        });
        // The scenario that does not touch the hostile behaviour: a TLS scan of the other side.
        let bystander = if touches_back {
            (
                "tls.authorization-endpoint",
                "tls-authorization-endpoint.toml",
            )
        } else {
            ("tls.token-endpoint", "tls-token-endpoint.toml")
        };
        let scenarios = crate::helpers::scenario_folder(&dir, &[bystander.1]);
        std::fs::write(scenarios.join("hostile-flow.toml"), FLOW_TOML).expect("scenario");
        for (name, text) in &self.extra_scenarios {
            std::fs::write(scenarios.join(name), text).expect("scenario");
        }
        std::fs::write(
            dir.join("matrix.toml"),
            matrix(&shared.dir, (front_port, back_port), self.tvs),
        )
        .expect("matrix");
        let started = Instant::now();
        let (status, stderr, peak_kib) = run_bounded(
            crate::helpers::koppeltest()
                .env("CI", "true")
                .args(["run", "--quiet", "--jobs", "4", "--matrix"])
                .arg(dir.join("matrix.toml"))
                .arg("--scenarios")
                .arg(&scenarios)
                .arg("--pki")
                .arg(&shared.dir)
                .arg("--out")
                .arg(dir.join("reports"))
                .arg("--snapshot-dir")
                .arg(dir.join("snapshots")),
        );
        let wall = started.elapsed();
        rt.shutdown_timeout(Duration::from_secs(1));
        assert!(
            !stderr.contains("panicked"),
            "{}: koppeltest panicked:\n{stderr}",
            self.name
        );
        assert!(
            matches!(status, Some(1) | Some(5)),
            "{}: exit status {status:?} (expected 1 or 5)\n{stderr}",
            self.name
        );
        assert!(
            peak_kib < MEMORY_BOUND_KIB,
            "{}: peak RSS {peak_kib} KiB over the bound of {MEMORY_BOUND_KIB} KiB",
            self.name
        );
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("reports/latest/report.json")).expect("report.json"),
        )
        .expect("report.json parses");
        let scenarios = report["cells"][0]["scenarios"]
            .as_array()
            .expect("scenarios")
            .clone();
        let flow = scenarios
            .iter()
            .find(|s| s["id"] == FLOW)
            .expect("the hostile flow was reported");
        let outcome = flow["outcome"].as_str().unwrap_or_default();
        let allowed: &[&str] = if self.may_fail {
            &["error", "fail"]
        } else {
            &["error"]
        };
        assert!(
            allowed.contains(&outcome),
            "{}: the affected scenario ended {outcome:?}, not one of {allowed:?}: {}",
            self.name,
            serde_json::to_string_pretty(&flow["checks"]).unwrap_or_default()
        );
        let step = flow["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == self.step.as_str()))
            .unwrap_or_else(|| panic!("{}: no step {}", self.name, self.step));
        let step_ms = step["duration_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(
            Duration::from_millis(step_ms) <= STEP_BOUND,
            "{}: the affected step took {step_ms} ms, over its bound of {STEP_BOUND:?}",
            self.name
        );
        // The reason: in the step's summary or in a check's message.
        let mut said = vec![step["summary"].as_str().unwrap_or_default().to_lowercase()];
        for c in flow["checks"].as_array().into_iter().flatten() {
            said.push(c["message"].as_str().unwrap_or_default().to_lowercase());
        }
        let reason = said
            .iter()
            .find(|s| self.reasons.iter().any(|r| s.contains(r.as_str())))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no reason containing any of {:?} in {said:#?}",
                    self.name, self.reasons
                )
            })
            .clone();
        // The run went on: the bystander scenario was judged, not cut short.
        let other = scenarios
            .iter()
            .find(|s| s["id"] == bystander.0)
            .expect("the bystander scenario was reported");
        assert_ne!(
            other["outcome"], "error",
            "{}: the scenario that does not touch the hostile behaviour did not complete: {}",
            self.name, other["checks"]
        );
        // No planted secret (and not the baseline's access token) in any file of the run.
        let mut secrets = self.secrets.clone();
        secrets.push(ACCESS_TOKEN.into());
        for (file, text) in files_below(&dir.join("reports")) {
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{}: {} holds a planted secret ({} bytes of it)",
                    self.name,
                    file.display(),
                    secret.len()
                );
            }
        }
        println!(
            "hostile case {:<40} step {:>6} ms  run {:>6} ms  peak {:>7} KiB  {outcome}: {}",
            self.name,
            step_ms,
            wall.as_millis(),
            peak_kib,
            koppeltest::limits::shorten(&reason)
        );
        record(&self.name, step_ms, peak_kib, outcome);
        // Kept when an assertion above failed, for a look; removed when the case held.
        std::fs::remove_dir_all(&dir).ok();
        Measured { peak_kib }
    }
}

/// Appends one line to `$KOPPELTEST_HOSTILE_TABLE` if set: the closing note's figures.
fn record(name: &str, step_ms: u64, peak_kib: u64, outcome: &str) {
    if let Ok(path) = std::env::var("KOPPELTEST_HOSTILE_TABLE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{name}\t{step_ms}\t{peak_kib}\t{outcome}");
        }
    }
}

/// The matrix: one external row whose hosts resolve to the hostile listeners, the run's mock
/// TVS on free ports, a short request time-out.
fn matrix(pki: &Path, (front, back): (u16, u16), tvs: (u16, u16)) -> String {
    let pki = pki.display();
    let target = external_target(
        &pki.to_string(),
        &format!(
            "{{ \"{FRONT_HOST}\" = \"127.0.0.1:{front}\", \"{BACK_HOST}\" = \"127.0.0.1:{back}\" }}"
        ),
        tvs,
        &format!("{pki}/hostile-sp-metadata.xml"),
    );
    format!(
        r#"name = "hostile"
timeouts = {{ request_ms = {REQUEST_MS} }}
[[his]]
id = "hostile"
name = "Hostile HIS"
dva = "a hostile DVA"
{CONFORM_PRACTICE}
{target}
[[pgo]]
id = "col"
name = "PGO Alfa"
hostname = "medmij.pgo-alfa.koppeltest.test"
redirect_uri = "{REDIRECT_URI}"
release = "1.x"
"#
    )
}

/// Runs `command` to its end or the outer time-out (then kills it and fails the case as a
/// hang), polling its peak RSS (VmHWM, a high-water mark, so 50 ms polls miss nothing but the
/// last 50 ms). Returns the exit code, stderr and the peak in KiB.
fn run_bounded(command: &mut Command) -> (Option<i32>, String, u64) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn koppeltest");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let status_file = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + OUTER_TIMEOUT;
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            peak = peak.max(vm_hwm(&text));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("koppeltest did not finish within {OUTER_TIMEOUT:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = reader.join().unwrap_or_default();
    (status.code(), stderr, peak)
}

fn vm_hwm(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The baseline DVA, behind every case's own mocks: just enough for the flow to reach each
/// endpoint (no login at the TVS, so the flow never passes).
async fn baseline(mock: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/oauth/authorize"))
        .respond_with(|req: &Request| {
            let state = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            close(ResponseTemplate::new(302).insert_header(
                "location",
                format!("{REDIRECT_URI}?code=hostile-code-4f2a9c&state={state}").as_str(),
            ))
        })
        .with_priority(10)
        .mount(mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(close(token_response(&format!(
            r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"Bearer","expires_in":900,"refresh_token":"hostile-refresh-token-0c8e","scope":"dewaard.huisartspraktijk.utrecht~49"}}"#
        ))))
        .with_priority(10)
        .mount(mock)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/fhir/"))
        .respond_with(close(fhir_json(
            r#"{"resourceType":"Bundle","type":"searchset","total":0,"entry":[]}"#,
        )))
        .with_priority(10)
        .mount(mock)
        .await;
}

/// Asks the client to close the connection after the answer, so each request reaches the
/// terminator on a fresh connection and a raw path is never served by a reused one.
pub fn close(t: ResponseTemplate) -> ResponseTemplate {
    t.insert_header("connection", "close")
}

pub fn token_response(json: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("cache-control", "no-store")
        .set_body_raw(json.as_bytes().to_vec(), "application/json")
}

pub fn fhir_json(json: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(json.as_bytes().to_vec(), "application/fhir+json")
}

pub fn html(body: impl Into<Vec<u8>>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "text/html; charset=utf-8")
}

/// Binds one side's listener and serves it until the runtime ends; returns its port.
async fn serve(
    side: Side,
    pki: &Pki,
    upstream: std::net::SocketAddr,
    raw: &[(Side, String, RawHandler)],
    tcp: &[(Side, TcpHandler)],
) -> u16 {
    let (host, channel) = match side {
        Side::Front => (FRONT_HOST, Channel::Front),
        Side::Back => (BACK_HOST, Channel::Back),
    };
    let leaf = pki.leaf(channel, host).expect("leaf");
    let mut config = (*koppeltest::tls::server_config(&leaf, koppeltest::tls::ClientAuth::None)
        .expect("server config"))
    .clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let raw: Vec<(String, RawHandler)> = raw
        .iter()
        .filter(|(s, ..)| *s == side)
        .map(|(_, p, h)| (p.clone(), h.clone()))
        .collect();
    let tcp = tcp.iter().find(|(s, _)| *s == side).map(|(_, h)| h.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let config = config.clone();
            if let Some(handler) = &tcp {
                tokio::spawn(handler(stream, config));
                continue;
            }
            let raw = raw.clone();
            tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Some(head) = read_head(&mut tls).await else {
                    return;
                };
                let path = request_path(&head);
                if let Some((_, handler)) = raw.iter().find(|(p, _)| path.starts_with(p.as_str())) {
                    handler(tls, head).await;
                    return;
                }
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                if up.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

/// Reads up to the end of the request head (bounded), returning the bytes read so far.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 256 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

fn request_path(head: &[u8]) -> String {
    String::from_utf8_lossy(head)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// A benign hostile-harness run: the baseline alone. It still never passes (no login reached the
/// TVS), but nothing in it is hostile; its peak memory is the normal peak the bound adds to.
#[test]
fn benign_run_is_the_baseline() {
    let m = Case::new("benign-baseline")
        .expect("patient", &["no patient in the result"])
        .may_fail()
        .run();
    assert!(m.peak_kib > 0, "the peak RSS was measured");
}
