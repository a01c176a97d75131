//! The PGO suite: koppeltest as the DVA side, judging a PGO under test (a matrix column with
//! `kind = "external"`). The OpenID conformance suite's RP tests and Inferno's client tests
//! do the same for their protocols.
//!
//! For one (row, column) it serves, on the matrix's `[pgo_suite] listen` address:
//! - one simulated DVA per scenario of `scenarios/pgo/suite.toml`, each the practice
//!   `<scenario>.huisartspraktijk.<row>@medmij`, conformant but for its [`Stimulus`], and
//!   configured like the row (entity index, lifetimes, page size, level of assurance);
//! - one mock TVS all of them are registered with;
//! - the lists (ZAL, OCL, Whitelist) and `koppeltest-hosts.json` over HTTPS, as a list server
//!   would.
//!
//! The PGO collects from each listed practice in turn; [`Bench::wait`] shows which are done and
//! which are waiting; [`Bench::judge`] runs the scenario's checks (`crate::checks::pgo`) over
//! exactly what that practice's DVA recorded.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::checks::pgo::PgoExpectations;
use crate::dva::{self, Activity, DvaConfig, Lifetimes, Staged, Stimulus};
use crate::exchange::{ExchangeLog, Party, RawExchange};
use crate::matrix::{DvaTarget, PgoSuiteSettings};
use crate::outcome::{Outcome, roll_up};
use crate::pgo::PgoProfile;
use crate::pgo::collect::{HOSTS_FILE, OCL_FILE, SuiteHosts, WHITELIST_FILE, ZAL_FILE};
use crate::pki::{Channel, TEST_DOMAIN};
use crate::report::{ScenarioReport, Side, Verdict};
use crate::runner::Prepared;
use crate::tls::{ClientAuth, HostMap, Server};

mod sni;

pub const SUITE: (&str, &str) = (
    "scenarios/pgo/suite.toml",
    include_str!("../../scenarios/pgo/suite.toml"),
);

/// One scenario of the PGO suite.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteScenario {
    pub id: String,
    pub title: String,
    pub description: String,
    pub stimulus: Stimulus,
    pub checks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    scenario: Vec<SuiteScenario>,
}

/// The embedded PGO suite, checked: unique ids, known check kinds.
pub fn suite() -> Result<Vec<SuiteScenario>, String> {
    let (path, text) = SUITE;
    let file: SuiteFile = toml::from_str(text).map_err(|e| {
        let (line, _) = crate::scenario::toml_error_position(text, &e);
        format!("{path}:{line}: {}", e.message().trim())
    })?;
    let mut ids = std::collections::BTreeSet::new();
    for s in &file.scenario {
        if !ids.insert(s.id.as_str()) {
            return Err(format!("{path}: scenario {} is there twice", s.id));
        }
        if s.checks.is_empty() {
            return Err(format!("{path}: scenario {} has no checks", s.id));
        }
        if let Some(k) = s
            .checks
            .iter()
            .find(|k| !crate::checks::pgo::KINDS.contains(&k.as_str()))
        {
            return Err(format!("{path}: scenario {}: unknown check {k:?}", s.id));
        }
    }
    Ok(file.scenario)
}

/// A scenario's report id: `pgo.<scenario>`.
pub fn report_id(scenario: &str) -> String {
    format!("pgo.{scenario}")
}

/// One listed practice and the DVA behind it.
pub struct Practice {
    pub scenario: SuiteScenario,
    /// `…@medmij`.
    pub name: String,
    pub front_host: String,
    pub back_host: String,
    log: ExchangeLog,
    activity: Arc<Activity>,
}

/// Where a practice stands while the PGO collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing from the PGO yet.
    Waiting,
    /// The PGO is collecting (or paused for less than the quiet time).
    Busy,
    /// The PGO came and has been quiet for the quiet time.
    Done,
}

/// The running suite for one (row, column); dropping it stops every server.
pub struct Bench {
    /// `https://lists.koppeltest.test:PORT`
    pub lists_url: String,
    /// The address every listener is on.
    pub listen: IpAddr,
    pub hosts: SuiteHosts,
    pub practices: Vec<Practice>,
    pub profile: PgoProfile,
    settings: PgoSuiteSettings,
    started: Instant,
    dvas: Vec<dva::DvaServers>,
    tvs: crate::tvs::TvsServers,
    lists: Server,
    traps: Vec<tokio::task::JoinHandle<()>>,
}

/// The list server's host name.
pub fn lists_host() -> String {
    format!("lists.{TEST_DOMAIN}")
}

/// Lowercase letters and digits of a row id: the practice's woonplaats and a host label.
fn tag(id: &str) -> String {
    let t: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if t.is_empty() { "row".to_string() } else { t }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Bench {
    /// Starts the suite for `row_ix` × `column` on the matrix's `[pgo_suite]` address.
    pub async fn start(
        prepared: &Prepared,
        row_ix: usize,
        column: &PgoProfile,
    ) -> Result<Bench, String> {
        let settings = prepared.matrix.pgo_suite.clone();
        let listen: IpAddr = settings.listen.parse().map_err(|e| {
            format!(
                "[pgo_suite] listen {:?} is not an IP address: {e}",
                settings.listen
            )
        })?;
        let reach = if listen.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            listen
        };
        let scenarios = suite()?;
        let row = &prepared.rows[row_ix];
        let rowtag = tag(&row.row.id);
        let pki = &prepared.pki;
        let bind = |port: u16| async move {
            crate::tls::bind(&SocketAddr::new(listen, port).to_string())
                .await
                .map_err(|e| e.to_string())
        };
        let port_of = |l: &tokio::net::TcpListener| {
            l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
        };
        // Front-channel listeners are internal, on loopback: the SNI router on `front_port` is
        // their one public door.
        let internal = || async {
            crate::tls::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())
        };
        let front_listener = bind(settings.front_port).await?;
        let front_port = port_of(&front_listener)?;
        let mut routes: BTreeMap<String, SocketAddr> = BTreeMap::new();
        let mut ports: BTreeMap<String, u16> = BTreeMap::new();
        // The mock TVS.
        let tvs_front = format!("tvs.pgo-suite.{TEST_DOMAIN}");
        let tvs_back = format!("soap.tvs.pgo-suite.{TEST_DOMAIN}");
        let (l_tvs_front, l_tvs_back) = (internal().await?, internal().await?);
        let tvs_back_addr = l_tvs_back.local_addr().map_err(|e| e.to_string())?;
        routes.insert(
            tvs_front.clone(),
            l_tvs_front.local_addr().map_err(|e| e.to_string())?,
        );
        ports.insert(tvs_front.clone(), front_port);
        // The practices, their hosts and listeners.
        let (entity_base, lifetimes, page_size, min_loa) = match &row.row.target {
            DvaTarget::Simulated {
                entity_index,
                lifetimes,
                page_size,
                ..
            } => (
                *entity_index,
                Lifetimes {
                    code: Duration::from_secs(lifetimes.code_s),
                    access_token: Duration::from_secs(lifetimes.access_token_s),
                    ..Lifetimes::default()
                },
                *page_size,
                row.row.min_loa,
            ),
            DvaTarget::External { .. } => (
                9500,
                Lifetimes::default(),
                crate::matrix::DEFAULT_PAGE_SIZE,
                row.row.min_loa,
            ),
        };
        let mut practices = Vec::new();
        let mut listeners = Vec::new();
        for s in &scenarios {
            let front_host = format!("{}.{rowtag}.pgo-suite.{TEST_DOMAIN}", s.id);
            let back_host = format!("api.{}.{rowtag}.pgo-suite.{TEST_DOMAIN}", s.id);
            let (f, b) = (internal().await?, bind(0).await?);
            routes.insert(
                front_host.clone(),
                f.local_addr().map_err(|e| e.to_string())?,
            );
            ports.insert(front_host.clone(), front_port);
            ports.insert(back_host.clone(), port_of(&b)?);
            listeners.push((f, b));
            practices.push(Practice {
                name: format!("{}.huisartspraktijk.{rowtag}@medmij", s.id),
                scenario: s.clone(),
                front_host,
                back_host,
                log: ExchangeLog::new(),
                activity: Arc::new(Activity::default()),
            });
        }
        // The lists.
        let zal = zal_xml(&practices, &ports);
        let ocl = ocl_xml(column);
        let whitelist = whitelist_xml(&practices);
        let ocl_parsed =
            Arc::new(crate::lists::parse_ocl(&ocl).map_err(|e| format!("the suite's OCL: {e}"))?);
        // Each practice's DVA, registered with the one TVS.
        let mut configs = Vec::new();
        for (k, p) in practices.iter().enumerate() {
            let index = entity_base
                .saturating_add(100)
                .saturating_add(k as u16)
                .clamp(9000, 9999);
            configs.push(DvaConfig {
                clock: Default::default(),
                // One key pair for all the suite's DVs: their entity ids differ.
                id: format!("pgo-suite-{rowtag}"),
                practice: p.name.clone(),
                front_host: p.front_host.clone(),
                back_host: p.back_host.clone(),
                entity_id: format!(
                    "urn:nl-eid-gdi:1.0:DV:00000009999999999{:03}:entities:{index}",
                    index % 1000
                ),
                service_uuid: "00000000-0000-4000-8000-000000009049".into(),
                services: vec!["48".to_string(), crate::matrix::GEGEVENSDIENST.to_string()],
                quirks: Default::default(),
                lifetimes,
                min_loa,
                online_access_start: (time::OffsetDateTime::now_utc() - time::Duration::days(365))
                    .date(),
                ocl: ocl_parsed.clone(),
                patients: prepared.patients.clone(),
                page_size: if matches!(
                    p.scenario.stimulus,
                    Stimulus::Paging | Stimulus::NextLinkOffHost
                ) {
                    2
                } else {
                    page_size.max(1)
                },
                availability: Arc::new(Default::default()),
                slow_answer: Duration::from_millis(settings.slow_answer_ms),
                stimulus: None,
                activity: Some(p.activity.clone()),
                back_port: ports.get(&p.back_host).copied(),
            });
        }
        let mut sps = Vec::new();
        for c in &configs {
            let md = c.metadata(pki).map_err(|e| e.to_string())?;
            sps.push(crate::saml::parse_metadata(&md).map_err(|e| e.to_string())?);
        }
        let tvs_cfg = crate::tvs::TvsConfig {
            clock: Default::default(),
            front_host: tvs_front.clone(),
            back_host: tvs_back.clone(),
            bsn: prepared.matrix.tvs.bsn.clone(),
            loa: prepared.matrix.tvs.loa.max(min_loa),
            service_uuid: "00000000-0000-4000-8000-000000009049".into(),
            artifact_lifetime: Duration::from_secs(15 * 60),
            service_providers: sps,
            client_roots: pki.roots(Channel::Back),
        };
        let idp = crate::saml::parse_metadata(&tvs_cfg.metadata(pki).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let tvs = crate::tvs::start(
            tvs_cfg,
            pki,
            l_tvs_front,
            l_tvs_back,
            ExchangeLog::discarding(),
        )
        .map_err(|e| e.to_string())?;
        let soap_hosts: HostMap = [(tvs_back.clone(), tvs_back_addr)].into_iter().collect();
        let mut dvas = Vec::new();
        let mut traps = Vec::new();
        for ((mut cfg, (f, b)), p) in configs.into_iter().zip(listeners).zip(&practices) {
            let trap = match p.scenario.stimulus {
                Stimulus::HttpRedirect => {
                    let l = bind(0).await?;
                    let port = port_of(&l)?;
                    let base = format!("http://{}:{port}", p.front_host);
                    traps.push(trap(l, base.clone(), p.log.clone(), p.activity.clone()));
                    Some(base)
                }
                Stimulus::NextLinkOffHost => {
                    let l = bind(0).await?;
                    let port = port_of(&l)?;
                    let host = off_host(p);
                    ports.insert(host.clone(), port);
                    let base = format!("https://{host}:{port}");
                    traps.push(trap(l, base.clone(), p.log.clone(), p.activity.clone()));
                    Some(base)
                }
                _ => None,
            };
            cfg.stimulus = Some(Arc::new(Staged::new(
                p.scenario.stimulus,
                Duration::from_millis(settings.slow_answer_ms),
                trap,
            )));
            dvas.push(
                dva::start(cfg, pki, idp.clone(), f, b, &soap_hosts, p.log.clone())
                    .map_err(|e| e.to_string())?,
            );
        }
        traps.push(sni::route(front_listener, routes));
        // The list server.
        let lists_listener = bind(settings.lists_port).await?;
        let lists_port = port_of(&lists_listener)?;
        ports.insert(lists_host(), lists_port);
        let hosts = SuiteHosts {
            ports,
            tvs: tvs_front,
        };
        let hosts_json = serde_json::to_string_pretty(&hosts).map_err(|e| e.to_string())?;
        let files: Arc<BTreeMap<&'static str, (String, &'static str)>> = Arc::new(
            [
                (ZAL_FILE, (zal, "application/xml")),
                (OCL_FILE, (ocl, "application/xml")),
                (WHITELIST_FILE, (whitelist, "application/xml")),
                (HOSTS_FILE, (hosts_json, "application/json")),
            ]
            .into_iter()
            .collect(),
        );
        let router = Router::new().route(
            "/{file}",
            get(
                move |axum::extract::Path(file): axum::extract::Path<String>| {
                    let files = files.clone();
                    async move {
                        use axum::response::IntoResponse;
                        match files.get(file.as_str()) {
                            Some((body, ty)) => {
                                ([(axum::http::header::CONTENT_TYPE, *ty)], body.clone())
                                    .into_response()
                            }
                            None => axum::http::StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                },
            ),
        );
        let leaf = pki
            .leaf(Channel::Front, &lists_host())
            .map_err(|e| e.to_string())?;
        let lists = crate::tls::serve(
            lists_listener,
            crate::tls::server_config(&leaf, ClientAuth::None).map_err(|e| e.to_string())?,
            router,
            None,
        );
        Ok(Bench {
            lists_url: format!("https://{}:{lists_port}", lists_host()),
            listen: reach,
            hosts,
            practices,
            profile: column.clone(),
            settings,
            started: Instant::now(),
            dvas,
            tvs,
            lists,
            traps,
        })
    }

    /// Where each practice stands.
    pub fn progress(&self) -> Vec<Progress> {
        let quiet = Duration::from_millis(self.settings.quiet_ms);
        self.practices
            .iter()
            .map(|p| {
                let a = &p.activity;
                if a.requests() == 0 {
                    Progress::Waiting
                } else if a.busy() || a.idle().is_none_or(|i| i < quiet) {
                    Progress::Busy
                } else {
                    Progress::Done
                }
            })
            .collect()
    }

    /// A line for the progress display: done, busy (by name) and waiting counts.
    pub fn progress_line(&self) -> String {
        let p = self.progress();
        let count = |s| p.iter().filter(|x| **x == s).count();
        let busy: Vec<&str> = self
            .practices
            .iter()
            .zip(&p)
            .filter(|(_, s)| **s == Progress::Busy)
            .map(|(pr, _)| pr.scenario.id.as_str())
            .collect();
        format!(
            "PGO suite: {} of {} practices done, {} waiting{}",
            count(Progress::Done),
            p.len(),
            count(Progress::Waiting),
            if busy.is_empty() {
                String::new()
            } else {
                format!(", collecting: {}", busy.join(", "))
            }
        )
    }

    /// Waits until the PGO is done with every practice or `[pgo_suite] wait_s` has passed,
    /// calling `progress` with a line whenever it changes.
    pub async fn wait(&self, mut progress: impl FnMut(&str)) {
        let deadline = self.started + Duration::from_secs(self.settings.wait_s);
        let mut last = String::new();
        loop {
            let line = self.progress_line();
            if line != last {
                progress(&line);
                last = line;
            }
            if self.progress().iter().all(|p| *p == Progress::Done) || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Judges every practice from what its DVA recorded; `skip` where the PGO never came.
    pub fn judge(&self) -> Vec<ScenarioReport> {
        // Each log is copied once: the states of every practice's authorization requests (for
        // the state check's "used elsewhere") and each practice's own judgement read it.
        let logs: Vec<Vec<crate::exchange::Exchange>> =
            self.practices.iter().map(|p| p.log.entries()).collect();
        let states: Vec<(usize, String)> = logs
            .iter()
            .enumerate()
            .flat_map(|(i, log)| {
                log.iter()
                    .filter(|x| x.url.contains("/oauth/authorize"))
                    .filter_map(move |x| {
                        // `#` only appears in the log's redaction labels.
                        let u = url::Url::parse(&x.url.replace('#', "%23")).ok()?;
                        let s = u
                            .query_pairs()
                            .find(|(k, _)| k == "state")
                            .map(|(_, v)| v.into_owned())?;
                        Some((i, s))
                    })
            })
            .collect();
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.practices
            .iter()
            .zip(logs)
            .enumerate()
            .map(|(i, (p, log))| {
                let expect = PgoExpectations {
                    hostname: self.profile.hostname.clone(),
                    redirect_uri: self.profile.redirect_uri.clone(),
                    release: self.profile.release.label().to_string(),
                    gegevensdiensten: self.profile.gegevensdiensten.clone(),
                    practice: p.name.clone(),
                    lab_date_filter: self.profile.lab_date_filter,
                    slow_answer_ms: self.settings.slow_answer_ms,
                    other_states: states
                        .iter()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, s)| s.clone())
                        .collect(),
                    today: time::OffsetDateTime::now_utc().date(),
                };
                let checks = if p.activity.requests() == 0 {
                    vec![crate::checks::CheckResult {
                        kind: "pgo.came".to_string(),
                        step: "pgo".to_string(),
                        outcome: Outcome::Skip,
                        message: format!(
                            "the PGO never collected from {} within {} s",
                            p.name, self.settings.wait_s
                        ),
                        requirements: Vec::new(),
                        evidence: Vec::new(),
                        privacy: false,
                        dataset: None,
                    }]
                } else {
                    p.scenario
                        .checks
                        .iter()
                        .map(|k| crate::checks::pgo::judge(k, &log, &expect))
                        .collect()
                };
                let outcome = roll_up(checks.iter().map(|c| c.outcome));
                ScenarioReport {
                    id: report_id(&p.scenario.id),
                    title: p.scenario.title.clone(),
                    side: Side::Pgo,
                    outcome,
                    verdict: Verdict::of(outcome, false),
                    duration_ms: elapsed,
                    known_deviation: None,
                    privacy_failure: false,
                    failed_requirements: checks
                        .iter()
                        .filter(|c| c.outcome == Outcome::Fail)
                        .flat_map(|c| c.requirements.clone())
                        .collect(),
                    checks,
                    steps: Vec::new(),
                    tls: Vec::new(),
                    repeat: None,
                    drift: None,
                    exchanges_file: None,
                    exchange_count: 0,
                    exchanges: log,
                    spilled: None,
                }
            })
            .collect()
    }

    /// Every value the suite's logs redacted (for the privacy tests).
    pub fn secret_values(&self) -> Vec<String> {
        self.practices
            .iter()
            .flat_map(|p| p.log.secret_values())
            .collect()
    }

    /// Stops every server, letting what their connections still record reach the logs.
    pub async fn shutdown(self) {
        let grace = Duration::from_millis(300);
        for t in &self.traps {
            t.abort();
        }
        for d in self.dvas {
            d.front.shutdown(grace).await;
            d.back.shutdown(grace).await;
        }
        self.tvs.front.shutdown(grace).await;
        self.tvs.back.shutdown(grace).await;
        self.lists.shutdown(grace).await;
    }
}

/// A plain-TCP listener that records every connection to `base` (`http://host:port` or
/// `https://host:port`): a browser following a redirect to http:, or a PGO following a next link
/// off the resource host. It answers 400 and closes; a TLS client sees its handshake fail, after
/// its connection was recorded.
fn trap(
    listener: tokio::net::TcpListener,
    base: String,
    log: ExchangeLog,
    activity: Arc<Activity>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tls = base.starts_with("https://");
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                // A failed accept (no file descriptors, say) must not end the watch.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (log, activity, base) = (log.clone(), activity.clone(), base.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let request_line = head.lines().next().and_then(|l| {
                    let mut w = l.split_whitespace();
                    let (method, path) = (w.next()?, w.next()?);
                    (w.next()?.starts_with("HTTP/") && path.starts_with('/'))
                        .then(|| (method.to_string(), path.to_string()))
                });
                // The next-link host counts any connection (a TLS handshake, 0x16, is the PGO
                // setting off to send its token there); the http: trap only an HTTP request, so
                // a browser's idle preconnect or an HTTPS upgrade attempt is no "follow".
                let (from, method, path) = match (tls, request_line) {
                    (true, _) if n > 0 => (Party::Pgo, "CONNECT".to_string(), "/".to_string()),
                    (false, Some((m, p))) => (Party::Browser, m, p),
                    _ => return,
                };
                let (recorded, tick) = activity.touched();
                if recorded {
                    let mut x =
                        RawExchange::request(from, Party::Dva, &method, &format!("{base}{path}"));
                    x.status = Some(400);
                    x.ticks = Some(crate::exchange::Ticks {
                        received: tick,
                        answered: tick,
                    });
                    log.record(x);
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    })
}

/// The suite's ZAL: front-channel URIs without a port (the SNI router's one port stands for
/// 443), back-channel URIs with each practice's own port, as the ZAL allows.
fn zal_xml(practices: &[Practice], ports: &BTreeMap<String, u16>) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- koppeltest PGO suite: one invented practice per scenario. -->\n\
         <Zorgaanbiederslijst xmlns=\"xmlns://afsprakenstelsel.medmij.nl/zorgaanbiederslijst/release3/\">\n\
         <Tijdstempel>{}</Tijdstempel><Volgnummer>1</Volgnummer><Zorgaanbieders>\n",
        now_rfc3339()
    );
    for p in practices {
        out.push_str(&format!(
            "<Zorgaanbieder><Zorgaanbiedernaam>{name}</Zorgaanbiedernaam><Aanbiedertype>ZA</Aanbiedertype>\
             <Interfaceversies><Interfaceversie><InterfaceversieId>1.4.0</InterfaceversieId><Gegevensdiensten><Gegevensdienst>\
             <GegevensdienstId>49</GegevensdienstId>\
             <AuthorizationEndpoint><AuthorizationEndpointuri>https://{front}/oauth/authorize</AuthorizationEndpointuri></AuthorizationEndpoint>\
             <TokenEndpoint><TokenEndpointuri>https://{back}/oauth/token</TokenEndpointuri></TokenEndpoint>\
             <Systeemrollen><Systeemrol><Systeemrolcode>MM-2.0-HAG-FHIR</Systeemrolcode>\
             <ResourceEndpoint><ResourceEndpointuri>https://{back}/fhir</ResourceEndpointuri></ResourceEndpoint></Systeemrol></Systeemrollen>\
             </Gegevensdienst></Gegevensdiensten></Interfaceversie></Interfaceversies></Zorgaanbieder>\n",
            name = crate::saml::escape(&p.name),
            front = p.front_host,
            back = match ports.get(&p.back_host) {
                Some(port) => format!("{}:{port}", p.back_host),
                None => p.back_host.clone(),
            },
        ));
    }
    out.push_str("</Zorgaanbieders></Zorgaanbiederslijst>\n");
    out
}

fn ocl_xml(column: &PgoProfile) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <OAuthclientlist xmlns=\"xmlns://afsprakenstelsel.medmij.nl/oauthclientlist/release2/\">\
         <Tijdstempel>{}</Tijdstempel><Volgnummer>1</Volgnummer><OAuthclients>\
         <OAuthclient><Hostname>{}</Hostname><OAuthclientOrganisatienaam>{}</OAuthclientOrganisatienaam></OAuthclient>\
         </OAuthclients></OAuthclientlist>\n",
        now_rfc3339(),
        crate::saml::escape(&column.hostname),
        crate::saml::escape(&column.name)
    )
}

/// The other host `next-link-off-host`'s next links name.
fn off_host(p: &Practice) -> String {
    format!("elsewhere.{}", p.back_host)
}

/// Every host of the suite except the back channel of `off-whitelist`.
fn whitelist_xml(practices: &[Practice]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Whitelist xmlns=\"xmlns://afsprakenstelsel.medmij.nl/whitelist/release2/\">\
         <Tijdstempel>{}</Tijdstempel><Volgnummer>1</Volgnummer><MedMijNodes>\n",
        now_rfc3339()
    );
    for p in practices {
        out.push_str(&format!(
            "<MedMijNode><Hostname>{}</Hostname></MedMijNode>\n",
            p.front_host
        ));
        if p.scenario.stimulus != Stimulus::OffWhitelist {
            out.push_str(&format!(
                "<MedMijNode><Hostname>{}</Hostname></MedMijNode>\n",
                p.back_host
            ));
        }
        if p.scenario.stimulus == Stimulus::NextLinkOffHost {
            // Listed, as another DVA's host would be: only the resource-host rule keeps the
            // PGO (and its token) away from it.
            out.push_str(&format!(
                "<MedMijNode><Hostname>{}</Hostname></MedMijNode>\n",
                off_host(p)
            ));
        }
    }
    out.push_str("</MedMijNodes></Whitelist>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_loads_and_every_check_kind_is_used() {
        let s = suite().unwrap();
        assert!(s.len() >= 15);
        for k in crate::checks::pgo::KINDS {
            assert!(
                s.iter().any(|sc| sc.checks.iter().any(|c| c == k)),
                "no PGO scenario uses {k}"
            );
        }
    }

    #[test]
    fn the_lists_parse_and_leave_the_off_whitelist_host_out() {
        let practices: Vec<Practice> = suite()
            .unwrap()
            .into_iter()
            .map(|s| Practice {
                name: format!("{}.huisartspraktijk.row@medmij", s.id),
                front_host: format!("{}.row.pgo-suite.koppeltest.test", s.id),
                back_host: format!("api.{}.row.pgo-suite.koppeltest.test", s.id),
                scenario: s,
                log: ExchangeLog::new(),
                activity: Arc::default(),
            })
            .collect();
        let ports: BTreeMap<String, u16> = practices
            .iter()
            .map(|p| (p.back_host.clone(), 40000))
            .collect();
        let zal = crate::lists::parse_zal(&zal_xml(&practices, &ports)).unwrap();
        assert_eq!(zal.zorgaanbieders.len(), practices.len());
        let wl = crate::lists::parse_whitelist(&whitelist_xml(&practices)).unwrap();
        for p in &practices {
            let e = zal.resolve(&p.name, "49").unwrap();
            assert!(wl.check(&e.authorization).is_ok());
            assert_eq!(
                wl.check(&e.token).is_ok(),
                p.scenario.stimulus != Stimulus::OffWhitelist,
                "{}",
                p.name
            );
        }
    }
}
