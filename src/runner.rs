//! The runner: every scenario in every cell, concurrently, each against fresh servers.
//!
//! For a simulated row each scenario gets its own simulated DVA and mock TVS on ephemeral
//! loopback ports (four TLS listeners), so exchange logs never mix and state never leaks
//! between scenarios. The runner emits [`RunEvent`]s and never formats anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::checks::{self, CheckResult};
use crate::dva::{self, DvaConfig, Lifetimes};
use crate::exchange::ExchangeLog;
use crate::fixtures::{PatientStore, gp_query};
use crate::matrix::{DvaTarget, ExternalResolved, Matrix, PreparedRow};
use crate::outcome::{Outcome, roll_up};
use crate::pgo::{
    AuthorizeOutcome, BadIdentityLookup, HttpOutcome, IdentityLookup, Pgo, PgoProfile, PgoSetup,
    PgoTrust, StepResult,
};
use crate::pki::{Broken, Channel, Pki, TEST_DOMAIN};
use crate::report::{
    CellReport, ColumnInfo, MatrixInfo, RowInfo, RunReport, ScenarioReport, StepReport, Summary,
    Verdict,
};
use crate::saml::parse_metadata;
use crate::scenario::{BadClientCertificate, FhirStep, TokenStep};
use crate::scenario::{Scenario, Step};
use crate::tls::HostMap;
use crate::tvs::{self, TvsConfig};

/// Everything a run needs, resolved before any traffic.
pub struct Prepared {
    pub matrix: Matrix,
    pub rows: Vec<PreparedRow>,
    pub scenarios: Vec<Scenario>,
    pub pki: Arc<Pki>,
    pub patients: Arc<PatientStore>,
    /// What each test patient's queries must and must not return.
    pub manifest: Arc<crate::fixtures::Manifest>,
    /// The matrix and manifest texts as loaded, for the run folder's inputs.
    pub sources: Sources,
    /// One mock TVS per external row, started on first use and shared by its scenarios.
    shared_tvs: Vec<tokio::sync::OnceCell<Result<Arc<tvs::TvsServers>, String>>>,
}

impl Prepared {
    pub fn new(
        matrix: Matrix,
        rows: Vec<PreparedRow>,
        scenarios: Vec<Scenario>,
        pki: Arc<Pki>,
        patients: Arc<PatientStore>,
    ) -> Prepared {
        let shared_tvs = rows.iter().map(|_| tokio::sync::OnceCell::new()).collect();
        let (path, text) = crate::fixtures::EMBEDDED_MANIFEST;
        // The embedded manifest is part of the binary and tested; `cli` replaces it for --fixtures.
        let manifest = Arc::new(crate::fixtures::Manifest::parse(path, text).unwrap_or_default());
        Prepared {
            matrix,
            rows,
            scenarios,
            pki,
            patients,
            manifest,
            sources: Sources {
                matrix: None,
                manifest: text.to_string(),
            },
            shared_tvs,
        }
    }
}

/// The texts a run was prepared from (scenarios keep their own, [`Scenario::source`]), so the
/// run folder can hold its inputs as run.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The matrix file's text; `None` when the matrix was built in code.
    pub matrix: Option<String>,
    /// The fixtures manifest's text.
    pub manifest: String,
}

/// What the runner tells its sinks.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started {
        total: usize,
    },
    /// Something the person running koppeltest must act on (the PGO suite is ready: where its
    /// lists are).
    Notice(String),
    /// How a long wait stands (the PGO suite: which practices are done, which are waiting).
    Progress(String),
    /// `secrets` are the values redacted from this scenario's log: in memory only, so tests can
    /// prove none of them reached a file.
    ScenarioFinished {
        row: usize,
        column: usize,
        scenario: usize,
        report: Box<ScenarioReport>,
        secrets: Vec<String>,
    },
}

/// One finished scenario.
#[derive(Debug, Clone)]
pub struct Finished {
    pub row: usize,
    pub column: usize,
    pub scenario: usize,
    pub report: ScenarioReport,
    pub secrets: Vec<String>,
}

/// Runs every (row, column, scenario) with at most `jobs` at once, sending events to `events`.
/// Returns the task set so the caller can abort it on interruption.
pub fn start(
    prepared: Arc<Prepared>,
    jobs: usize,
    events: mpsc::UnboundedSender<RunEvent>,
) -> JoinSet<()> {
    start_repeated(prepared, jobs, 1, events)
}

/// As [`start`], each scenario `repeat` times (`run --repeat N`): the runs of one scenario
/// are separate events, joined by [`crate::report::join_repeats`].
pub fn start_repeated(
    prepared: Arc<Prepared>,
    jobs: usize,
    repeat: usize,
    events: mpsc::UnboundedSender<RunEvent>,
) -> JoinSet<()> {
    let units = crate::shard::units(&prepared);
    start_units(prepared, jobs, repeat, units, events)
}

/// As [`start_repeated`], only `units` (a shard's, [`crate::shard::select`]).
pub fn start_units(
    prepared: Arc<Prepared>,
    jobs: usize,
    repeat: usize,
    units: Vec<crate::shard::Unit>,
    events: mpsc::UnboundedSender<RunEvent>,
) -> JoinSet<()> {
    use crate::shard::Unit;
    let repeat = repeat.max(1);
    let suites: Vec<(usize, usize)> = units
        .iter()
        .filter_map(|u| match *u {
            Unit::Suite { row, column } => Some((row, column)),
            Unit::Scenario { .. } => None,
        })
        .collect();
    let scenarios: Vec<(usize, usize, usize)> = units
        .iter()
        .filter_map(|u| match *u {
            Unit::Scenario {
                row,
                column,
                scenario,
            } => Some((row, column, scenario)),
            Unit::Suite { .. } => None,
        })
        .collect();
    let suite_len = crate::bench::suite().map_or(0, |s| s.len());
    let total = scenarios.len() * repeat + suites.len() * suite_len;
    let _ = events.send(RunEvent::Started { total });
    let permits = Arc::new(Semaphore::new(jobs.max(1)));
    let mut set = JoinSet::new();
    // The PGO side of each external column: one suite per row, waiting for the real PGO. Suites
    // run one at a time (each binds `[pgo_suite] lists_port`), beside the DVA-side scenarios.
    if !suites.is_empty() {
        let prepared = prepared.clone();
        let events = events.clone();
        set.spawn(async move {
            for (row, column) in suites {
                run_suite(&prepared, row, column, &events).await;
            }
        });
    }
    for _ in 0..repeat {
        for &(row, column, scenario) in &scenarios {
            let prepared = prepared.clone();
            let permits = permits.clone();
            let events = events.clone();
            set.spawn(async move {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                let (report, secrets) = run_scenario(&prepared, row, column, scenario).await;
                let _ = events.send(RunEvent::ScenarioFinished {
                    row,
                    column,
                    scenario,
                    report: Box::new(report),
                    secrets,
                });
            });
        }
    }
    set
}

/// Runs the PGO suite for `row` × the external `column`: starts it, says where its lists are,
/// waits for the PGO, judges, and sends one finished scenario per practice (after the row's
/// DVA-side scenarios in the cell's order).
async fn run_suite(
    prepared: &Prepared,
    row: usize,
    column: usize,
    events: &mpsc::UnboundedSender<RunEvent>,
) {
    let profile = &prepared.matrix.columns[column];
    let row_id = &prepared.rows[row].row.id;
    let first = prepared.scenarios.len();
    let bench = match crate::bench::Bench::start(prepared, row, profile).await {
        Ok(b) => b,
        Err(e) => {
            // Every scenario of the suite ends in `error` with the reason.
            for (k, s) in crate::bench::suite().unwrap_or_default().iter().enumerate() {
                let report = crate::report::ScenarioReport {
                    id: crate::bench::report_id(&s.id),
                    title: s.title.clone(),
                    side: crate::report::Side::Pgo,
                    outcome: Outcome::Error,
                    verdict: Verdict::of(Outcome::Error, false),
                    duration_ms: 0,
                    known_deviation: None,
                    privacy_failure: false,
                    failed_requirements: Vec::new(),
                    checks: vec![checks::CheckResult {
                        kind: "pgo.suite".into(),
                        step: "pgo".into(),
                        outcome: Outcome::Error,
                        message: format!("the PGO suite could not start: {e}"),
                        requirements: Vec::new(),
                        evidence: Vec::new(),
                        privacy: false,
                        dataset: None,
                    }],
                    steps: Vec::new(),
                    tls: Vec::new(),
                    repeat: None,
                    drift: None,
                    exchanges_file: None,
                    exchange_count: 0,
                    exchanges: Vec::new(),
                    spilled: None,
                };
                let _ = events.send(RunEvent::ScenarioFinished {
                    row,
                    column,
                    scenario: first + k,
                    report: Box::new(report),
                    secrets: Vec::new(),
                });
            }
            return;
        }
    };
    let practices: Vec<String> = bench.practices.iter().map(|p| p.name.clone()).collect();
    let _ = events.send(RunEvent::Notice(format!(
        "PGO suite for {} × {row_id} is ready. Collect from each of these {} practices with the PGO {}:\n  {}\n\
         Lists (ZAL, OCL, Whitelist) at {}/ (host {} on {}); where every host listens: {}/{}.\n\
         Waiting up to {} s; a practice is done after {} ms without a request.",
        profile.id,
        practices.len(),
        profile.hostname,
        practices.join("\n  "),
        bench.lists_url,
        crate::bench::lists_host(),
        bench.listen,
        bench.lists_url,
        crate::pgo::collect::HOSTS_FILE,
        prepared.matrix.pgo_suite.wait_s,
        prepared.matrix.pgo_suite.quiet_ms,
    )));
    bench
        .wait(|line| {
            let _ = events.send(RunEvent::Progress(format!(
                "{} × {row_id}: {line}",
                profile.id
            )));
        })
        .await;
    let reports = bench.judge();
    let secrets = bench.secret_values();
    bench.shutdown().await;
    for (k, report) in reports.into_iter().enumerate() {
        let _ = events.send(RunEvent::ScenarioFinished {
            row,
            column,
            scenario: first + k,
            report: Box::new(report),
            secrets: secrets.clone(),
        });
    }
}

/// Joins the runs of each repeated scenario into one [`Finished`] (see
/// [`crate::report::join_repeats`]); with one run each, `finished` comes back as it was.
pub fn join_repeats(finished: Vec<Finished>, repeat: usize) -> Vec<Finished> {
    if repeat <= 1 {
        return finished;
    }
    type Runs = (Vec<ScenarioReport>, Vec<String>);
    let mut groups: BTreeMap<(usize, usize, usize), Runs> = BTreeMap::new();
    for f in finished {
        let group = groups.entry((f.row, f.column, f.scenario)).or_default();
        group.0.push(f.report);
        group.1.extend(f.secrets);
    }
    groups
        .into_iter()
        .filter_map(|((row, column, scenario), (runs, secrets))| {
            Some(Finished {
                row,
                column,
                scenario,
                report: crate::report::join_repeats(runs)?,
                secrets,
            })
        })
        .collect()
}

/// Runs to completion and returns everything finished (for tests and the benchmark).
pub async fn run_all(prepared: Arc<Prepared>, jobs: usize) -> Vec<Finished> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _tasks = start(prepared, jobs, tx);
    let mut done = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let RunEvent::ScenarioFinished {
            row,
            column,
            scenario,
            report,
            secrets,
        } = ev
        {
            done.push(Finished {
                row,
                column,
                scenario,
                report: *report,
                secrets,
            });
        }
    }
    done
}

/// The simulated DVA configuration for a row (`None` for an external row).
pub fn dva_config(prepared: &Prepared, row: &PreparedRow) -> Option<DvaConfig> {
    let DvaTarget::Simulated {
        entity_index,
        quirks,
        lifetimes,
        page_size,
        slow_answer_ms,
        ..
    } = &row.row.target
    else {
        return None;
    };
    let host = |uri: &str| {
        url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
    };
    Some(DvaConfig {
        clock: Default::default(),
        id: row.row.id.clone(),
        practice: row.row.practice.clone(),
        front_host: host(&row.endpoints.authorization)?,
        back_host: host(&row.endpoints.token)?,
        entity_id: format!(
            "urn:nl-eid-gdi:1.0:DV:00000009999999999{:03}:entities:{entity_index}",
            entity_index % 1000
        ),
        service_uuid: "00000000-0000-4000-8000-000000009049".into(),
        // 48 besides 49, so that a token for another service (insufficient_scope) can be shown.
        services: vec!["48".to_string(), crate::matrix::GEGEVENSDIENST.to_string()],
        quirks: quirks.clone(),
        lifetimes: Lifetimes {
            code: Duration::from_secs(lifetimes.code_s),
            access_token: Duration::from_secs(lifetimes.access_token_s),
            ..Lifetimes::default()
        },
        min_loa: row.row.min_loa,
        // [U] a practice-specific date; a year before the run keeps the fixtures' negatives true.
        online_access_start: (time::OffsetDateTime::now_utc() - time::Duration::days(365)).date(),
        ocl: row.ocl.clone(),
        patients: prepared.patients.clone(),
        page_size: (*page_size).max(1),
        availability: row.availability.clone(),
        slow_answer: Duration::from_millis(*slow_answer_ms),
        stimulus: None,
        activity: None,
        back_port: None,
    })
}

/// The level the mock TVS logs people in at unless a scenario says otherwise: the matrix's,
/// raised to the row's minimum (whoever logs in to a DVA that demands hoog uses a means at hoog).
fn login_loa(prepared: &Prepared, row: &PreparedRow) -> crate::saml::Loa {
    prepared.matrix.tvs.loa.max(row.row.min_loa)
}

/// What the judge expects of the DVA's own SAML messages in `row`: its registered entityID
/// (the simulated DVA's, or the external row's SP metadata), the mock TVS's SSO URL, the
/// host its back-channel certificate must name (the ZAL's token endpoint host) and the row's
/// minimum level.
fn saml_expectations(prepared: &Prepared, row: &PreparedRow) -> checks::SamlExpectations {
    let host = |uri: &str| {
        url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
    };
    let (entity_id, tvs_front) = match &row.external {
        Some(ext) => (
            Some(ext.sp_metadata.entity_id.clone()),
            ext.tvs.front_host.clone(),
        ),
        None => (
            dva_config(prepared, row).map(|c| c.entity_id),
            tvs_hosts().0,
        ),
    };
    checks::SamlExpectations {
        dv_entity_id: entity_id,
        tvs_sso_url: Some(format!("https://{tvs_front}/sso")),
        dva_back_host: host(&row.endpoints.token),
        min_loa: row.row.min_loa.uri().to_string(),
    }
}

fn tvs_hosts() -> (String, String) {
    (
        format!("tvs.{TEST_DOMAIN}"),
        format!("soap.tvs.{TEST_DOMAIN}"),
    )
}

/// Servers for one scenario; dropping them stops everything.
struct Servers {
    dva: dva::DvaServers,
    tvs: tvs::TvsServers,
    hosts: HostMap,
    /// The clock the DVA and the mock TVS share: `wait` advances it.
    clock: crate::clock::Clock,
}

impl Servers {
    /// Stops all four listeners, letting what their connections still record reach the log.
    async fn shutdown(self) {
        let grace = Duration::from_millis(500);
        tokio::join!(
            self.dva.front.shutdown(grace),
            self.dva.back.shutdown(grace),
            self.tvs.front.shutdown(grace),
            self.tvs.back.shutdown(grace),
        );
    }
}

/// A simulated row's DVA, with the mock TVS it is registered with, on ephemeral loopback ports:
/// what `preflight` probes. Its exchanges are discarded; dropping it stops the servers.
pub struct SimulatedDva(Servers);

impl SimulatedDva {
    /// Where the DVA's (and the TVS's) host names are listening.
    pub fn hosts(&self) -> &HostMap {
        &self.0.hosts
    }

    pub async fn shutdown(self) {
        self.0.shutdown().await;
    }
}

/// Starts `row`'s simulated DVA as a scenario would get it (`Err` for an external row, or when a
/// listener or the PKI fails).
pub async fn start_simulated(
    prepared: &Prepared,
    row: &PreparedRow,
) -> Result<SimulatedDva, String> {
    start_servers(prepared, row, &ExchangeLog::discarding())
        .await
        .map(SimulatedDva)
}

/// Starts the shared mock TVS of an external row (once) on its configured addresses.
async fn shared_tvs(
    prepared: &Prepared,
    row_ix: usize,
    ext: &ExternalResolved,
) -> Result<Arc<tvs::TvsServers>, String> {
    let result = prepared.shared_tvs[row_ix]
        .get_or_init(|| async {
            let front = crate::tls::bind(&ext.tvs.front_listen)
                .await
                .map_err(|e| e.to_string())?;
            let back = crate::tls::bind(&ext.tvs.back_listen)
                .await
                .map_err(|e| e.to_string())?;
            let cfg = TvsConfig {
                clock: Default::default(),
                front_host: ext.tvs.front_host.clone(),
                back_host: ext.tvs.back_host.clone(),
                bsn: prepared.matrix.tvs.bsn.clone(),
                loa: login_loa(prepared, &prepared.rows[row_ix]),
                service_uuid: "00000000-0000-4000-8000-000000009049".into(),
                artifact_lifetime: Duration::from_secs(15 * 60),
                service_providers: vec![ext.sp_metadata.clone()],
                client_roots: ext.back_roots.clone(),
            };
            // The TVS's own notes have no scenario to belong to; they go to the process log.
            // Artifact resolutions go to the scenario whose login issued them (its witness tag).
            tvs::start(cfg, &prepared.pki, front, back, ExchangeLog::discarding())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .await;
    result.clone()
}

/// The loopback address a browser uses for a listening address (`0.0.0.0` → `127.0.0.1`).
fn reachable(listen: &str) -> Option<std::net::SocketAddr> {
    let mut addr: std::net::SocketAddr = listen.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(addr)
}

/// Servers (for a simulated row) or the shared mock TVS's witness registration (for an
/// external row), and the mock PGO for one scenario.
async fn environment(
    prepared: &Prepared,
    row_ix: usize,
    column: &PgoProfile,
    log: &ExchangeLog,
) -> Result<(Option<Servers>, Option<tvs::WitnessTag>, Pgo), String> {
    let row = &prepared.rows[row_ix];
    match &row.external {
        None => {
            let servers = start_servers(prepared, row, log).await?;
            let identity = prepared
                .pki
                .leaf(Channel::Back, &column.hostname)
                .map_err(|e| e.to_string())?;
            let trust = PgoTrust {
                front_roots: prepared.pki.roots(Channel::Front),
                back_roots: prepared.pki.roots(Channel::Back),
                identity,
            };
            let pki = prepared.pki.clone();
            let others: IdentityLookup =
                Arc::new(move |host: &str| pki.leaf(Channel::Back, host).ok());
            let pki = prepared.pki.clone();
            let own = column.hostname.clone();
            // The test PKI makes every faulty kind, from the CA the DVA trusts where it must.
            let bad: BadIdentityLookup =
                Arc::new(move |kind| pki.broken(Channel::Back, &own, broken_kind(kind)?).ok());
            let pgo = pgo_for(
                (row, &prepared.matrix.timeouts, &prepared.matrix.limits),
                column,
                trust,
                servers.hosts.clone(),
                tvs_hosts().0,
                log,
                (others, bad),
            )?;
            Ok((Some(servers), None, pgo))
        }
        Some(ext) => {
            let witness = shared_tvs(prepared, row_ix, ext)
                .await?
                .witnesses
                .register(log.clone());
            let tvs_host = tvs::host_only(&ext.tvs.front_host).to_string();
            let mut hosts = ext.hosts.clone();
            if let Some(addr) = reachable(&ext.tvs.front_listen) {
                hosts.insert(tvs_host.clone(), addr);
            }
            let identity = ext
                .identities
                .get(&column.id)
                .cloned()
                .ok_or("no client certificate for this PGO column")?;
            let mut front_roots = ext.front_roots.clone();
            // The browser also meets the mock TVS, whose certificate comes from the test PKI.
            front_roots.extend(prepared.pki.roots(Channel::Front));
            let trust = PgoTrust {
                front_roots,
                back_roots: ext.back_roots.clone(),
                identity,
            };
            // Other PGO nodes are the matrix's other columns, with the certificates configured.
            let by_host: BTreeMap<String, Arc<crate::pki::Leaf>> = prepared
                .matrix
                .columns
                .iter()
                .filter_map(|c| Some((c.hostname.clone(), ext.identities.get(&c.id)?.clone())))
                .collect();
            let others: IdentityLookup = Arc::new(move |host: &str| by_host.get(host).cloned());
            // Only kinds whose fault does not depend on the row's CA: an expired certificate
            // from the test PKI would be refused for its unknown CA, proving nothing. Another
            // host's valid chain is another column's configured certificate.
            let pki = prepared.pki.clone();
            let own = column.hostname.clone();
            let other_node: Option<Arc<crate::pki::Leaf>> = prepared
                .matrix
                .columns
                .iter()
                .filter(|c| c.hostname != column.hostname)
                .find_map(|c| ext.identities.get(&c.id).cloned());
            let bad: BadIdentityLookup = Arc::new(move |kind| match kind {
                BadClientCertificate::UnknownCa => {
                    pki.broken(Channel::Back, &own, Broken::UnknownCa).ok()
                }
                BadClientCertificate::OtherHost => other_node.clone(),
                _ => None,
            });
            let mut pgo = pgo_for(
                (row, &prepared.matrix.timeouts, &prepared.matrix.limits),
                column,
                trust,
                hosts,
                tvs_host,
                log,
                (others, bad),
            )?;
            pgo.set_witness(witness.tag.clone());
            Ok((None, Some(witness), pgo))
        }
    }
}

async fn start_servers(
    prepared: &Prepared,
    row: &PreparedRow,
    log: &ExchangeLog,
) -> Result<Servers, String> {
    let mut cfg = dva_config(prepared, row).ok_or("the row's ZAL endpoints have no host names")?;
    let clock = crate::clock::Clock::default();
    cfg.clock = clock.clone();
    let pki = &prepared.pki;
    let (tvs_front, tvs_back) = tvs_hosts();
    let bind = || crate::tls::bind("127.0.0.1:0");
    let (l_dva_front, l_dva_back, l_tvs_front, l_tvs_back) = (
        bind().await.map_err(|e| e.to_string())?,
        bind().await.map_err(|e| e.to_string())?,
        bind().await.map_err(|e| e.to_string())?,
        bind().await.map_err(|e| e.to_string())?,
    );
    let addr = |l: &tokio::net::TcpListener| l.local_addr().map_err(|e| e.to_string());
    let hosts: HostMap = [
        (cfg.front_host.clone(), addr(&l_dva_front)?),
        (cfg.back_host.clone(), addr(&l_dva_back)?),
        (tvs_front.clone(), addr(&l_tvs_front)?),
        (tvs_back.clone(), addr(&l_tvs_back)?),
    ]
    .into_iter()
    .collect();
    let sp = parse_metadata(&cfg.metadata(pki).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let tvs_cfg = TvsConfig {
        clock: clock.clone(),
        front_host: tvs_front,
        back_host: tvs_back,
        bsn: prepared.matrix.tvs.bsn.clone(),
        loa: login_loa(prepared, row),
        service_uuid: cfg.service_uuid.clone(),
        artifact_lifetime: Duration::from_secs(15 * 60),
        service_providers: vec![sp],
        client_roots: pki.roots(Channel::Back),
    };
    let idp = parse_metadata(&tvs_cfg.metadata(pki).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let tvs = tvs::start(tvs_cfg, pki, l_tvs_front, l_tvs_back, log.clone())
        .map_err(|e| e.to_string())?;
    let dva = dva::start(cfg, pki, idp, l_dva_front, l_dva_back, &hosts, log.clone())
        .map_err(|e| e.to_string())?;
    Ok(Servers {
        dva,
        tvs,
        hosts,
        clock,
    })
}

fn pgo_for(
    (row, timeouts, limits): (
        &PreparedRow,
        &crate::matrix::Timeouts,
        &crate::matrix::Limits,
    ),
    column: &PgoProfile,
    trust: PgoTrust,
    hosts: HostMap,
    tvs_host: String,
    log: &ExchangeLog,
    (other_identities, bad_identities): (IdentityLookup, BadIdentityLookup),
) -> Result<Pgo, String> {
    Pgo::new(PgoSetup {
        profile: column.clone(),
        practice: row.row.practice.clone(),
        endpoints: row.endpoints.clone(),
        whitelist: row.whitelist.clone(),
        selectors: row.row.selectors.clone(),
        tvs_host: Some(tvs_host),
        trust,
        hosts,
        log: log.clone(),
        other_identities,
        bad_identities,
        request_timeout: timeouts.request(),
        limits: *limits,
        faults: Default::default(),
    })
    .map_err(|e| e.to_string())
}

/// The test-PKI variant behind a faulty client certificate (`None`: no certificate at all).
fn broken_kind(kind: BadClientCertificate) -> Option<Broken> {
    match kind {
        BadClientCertificate::None => None,
        BadClientCertificate::UnknownCa => Some(Broken::UnknownCa),
        BadClientCertificate::Expired => Some(Broken::Expired),
        BadClientCertificate::NotYetValid => Some(Broken::NotYetValid),
        BadClientCertificate::OtherHost => Some(Broken::OtherHost),
        BadClientCertificate::NoClientAuth => Some(Broken::NoClientAuth),
    }
}

/// How TLS is judged in `row`: the matrix's edition and threshold, the row's trust anchors.
fn tls_policy(prepared: &Prepared, row: &PreparedRow) -> checks::TlsPolicy {
    let (front_roots, back_roots) = match &row.external {
        Some(ext) => (ext.front_roots.clone(), ext.back_roots.clone()),
        None => (
            prepared.pki.roots(Channel::Front),
            prepared.pki.roots(Channel::Back),
        ),
    };
    checks::TlsPolicy {
        edition: prepared.matrix.tls.edition,
        expiry_warning_days: prepared.matrix.tls.expiry_warning_days,
        front_roots,
        back_roots,
    }
}

/// Runs one scenario in one cell and judges it.
pub async fn run_scenario(
    prepared: &Prepared,
    row_ix: usize,
    column_ix: usize,
    scenario_ix: usize,
) -> (ScenarioReport, Vec<String>) {
    let started = Instant::now();
    let row = &prepared.rows[row_ix];
    let column = &prepared.matrix.columns[column_ix];
    let scenario = &prepared.scenarios[scenario_ix];
    let log = ExchangeLog::new();
    let mut results: BTreeMap<String, StepResult> = BTreeMap::new();
    let mut steps = Vec::new();
    match environment(prepared, row_ix, column, &log).await {
        Ok((servers, witness, pgo)) => {
            let mut skip_rest: Option<String> = None;
            for step in &scenario.steps {
                log.set_step(Some(step.id()));
                let t = Instant::now();
                let result = if let Some(reason) = &skip_rest {
                    StepResult::Skipped {
                        reason: reason.clone(),
                    }
                } else if let Step::Wait(w) = step {
                    let clock = servers.as_ref().map(|s| &s.clock);
                    let waited = wait(prepared, row, w, &results, clock).await;
                    // After a skipped wait, what follows would judge the wrong thing: skip it too.
                    if let StepResult::Skipped { reason } = &waited {
                        skip_rest = Some(reason.clone());
                    }
                    waited
                } else {
                    let step_timeout = prepared.matrix.limits.step_timeout();
                    match tokio::time::timeout(
                        step_timeout,
                        run_step(&pgo, scenario, step, &results),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => StepResult::NotRun {
                            reason: format!(
                                "the step took longer than {} s",
                                step_timeout.as_secs()
                            ),
                        },
                    }
                };
                steps.push(StepReport {
                    id: step.id().to_string(),
                    action: step.action().to_string(),
                    summary: log.redact(&summarize(&result)),
                    duration_ms: t.elapsed().as_millis() as u64,
                });
                results.insert(step.id().to_string(), result);
            }
            log.set_step(None);
            // The PGO's connections close with it; then the servers finish recording.
            drop(pgo);
            if let Some(servers) = servers {
                servers.shutdown().await;
            }
            drop(witness);
        }
        Err(reason) => {
            for step in &scenario.steps {
                results.insert(
                    step.id().to_string(),
                    StepResult::NotRun {
                        reason: format!("environment set-up failed: {reason}"),
                    },
                );
            }
        }
    }
    let exchanges = log.entries();
    let tls = tls_policy(prepared, row);
    let saml = saml_expectations(prepared, row);
    // Every login is judged on the DVA's own SAML messages, not only where a scenario asks.
    let per_login = checks::per_login(scenario, &exchanges);
    let checks: Vec<CheckResult> = scenario
        .checks
        .iter()
        .chain(&per_login)
        .map(|c| {
            let ctx = checks::Context {
                budgets: &prepared.matrix.budgets,
                manifest: &prepared.manifest,
                bsn: scenario
                    .tvs
                    .bsn
                    .as_deref()
                    .unwrap_or(&prepared.matrix.tvs.bsn),
                lab_window: prepared.matrix.lab_window,
                lab_date_filter: column.lab_date_filter,
                exchanges: &exchanges,
                gegevensdiensten: &column.gegevensdiensten,
                tls: &tls,
                saml: &saml,
            };
            let mut r = checks::evaluate(c, scenario, &results, &ctx);
            r.message = log.redact(&r.message);
            // Severity from the rule text, over every rule the check credits: a failure of
            // SHOULDs only is a warning. A privacy failure stays the most severe class whatever
            // its rule says.
            if r.outcome == Outcome::Fail
                && !r.privacy
                && crate::requirements::only_should(&r.requirements)
            {
                r.outcome = Outcome::Warn;
            }
            // A report credits only what some quirk is proven to break.
            r.requirements
                .retain(|id| crate::requirements::is_killed(id));
            r
        })
        .collect();
    // The per-login checks come after the scenario's own. They can fail a scenario, but not
    // turn one whose own checks were all skipped (not exercised here) into a pass.
    let declared = roll_up(checks[..scenario.checks.len()].iter().map(|c| c.outcome));
    let outcome = match roll_up(checks.iter().map(|c| c.outcome)) {
        Outcome::Pass if matches!(declared, Outcome::Skip | Outcome::Omit) => declared,
        all => all,
    };
    let known = row
        .row
        .known_deviations
        .iter()
        .find(|d| d.scenario == scenario.id)
        .map(|d| d.reason.clone());
    let mut failed_requirements: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail | Outcome::Warn))
        .flat_map(|c| c.requirements.iter().cloned())
        .collect();
    failed_requirements.sort();
    failed_requirements.dedup();
    let report = ScenarioReport {
        side: crate::report::Side::Dva,
        id: scenario.id.clone(),
        title: scenario.title.clone(),
        outcome,
        verdict: Verdict::of(outcome, known.is_some()),
        duration_ms: started.elapsed().as_millis() as u64,
        known_deviation: known,
        privacy_failure: checks.iter().any(|c| c.privacy),
        failed_requirements,
        checks,
        steps,
        tls: tls_facts(&results, &tls),
        repeat: None,
        drift: None,
        exchanges_file: None,
        exchange_count: 0,
        exchanges,
        spilled: None,
    };
    (report, log.secret_values())
}

/// What each TLS scan of the scenario found, for the cell's summary line.
fn tls_facts(
    results: &BTreeMap<String, StepResult>,
    policy: &checks::TlsPolicy,
) -> Vec<crate::report::TlsEndpoint> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    results
        .values()
        .filter_map(|r| match r {
            StepResult::Tls(t) => Some(crate::report::TlsEndpoint {
                endpoint: t.endpoint.clone(),
                host: t.host.clone(),
                versions: t
                    .scan
                    .versions
                    .iter()
                    .filter(|p| matches!(p.answer, crate::tls_scan::Answer::Accepted))
                    .map(|p| p.version.to_string())
                    .collect(),
                worst_class: checks::worst_class(t, policy.edition),
                suites: t
                    .scan
                    .suites
                    .iter()
                    .filter(|p| matches!(p.answer, crate::tls_scan::Answer::Accepted))
                    .map(|p| crate::report::TlsSuite {
                        name: p.name.clone(),
                        version: p.version.to_string(),
                        ncsc_2021: checks::suite_class(&p.name, checks::Edition::Ncsc2021),
                        ncsc_2025: checks::suite_class(&p.name, checks::Edition::Ncsc2025),
                    })
                    .collect(),
                compression: t.scan.compression_chosen,
                secure_renegotiation: t.scan.secure_renegotiation,
                extended_master_secret: t.scan.extended_master_secret,
                earliest_expiry_days: checks::earliest_expiry_days(&t.chain, now),
            }),
            _ => None,
        })
        .collect()
}

/// Waits past a code's or an access token's lifetime: against simulated parties by advancing
/// their `clock` (no time passes), against an external DVA for real, and then skipped when that
/// is longer than the matrix allows.
async fn wait(
    prepared: &Prepared,
    row: &PreparedRow,
    w: &crate::scenario::WaitStep,
    results: &BTreeMap<String, StepResult>,
    clock: Option<&crate::clock::Clock>,
) -> StepResult {
    let lifetime = match (w.past, &w.token_from) {
        (crate::scenario::Expiry::Code, _) => Some(row.row.target.lifetimes().code_s),
        (crate::scenario::Expiry::AccessToken, Some(from)) => match results.get(from) {
            Some(StepResult::Http(h)) => h.json().and_then(|j| j["expires_in"].as_u64()),
            _ => None,
        },
        (crate::scenario::Expiry::AccessToken, None) => None,
    };
    let Some(lifetime) = lifetime else {
        return StepResult::NotRun {
            reason: "no lifetime to wait out (the token step returned no expires_in)".into(),
        };
    };
    // Saturating: expires_in is the DVA's number, and u64::MAX must not overflow.
    let seconds = lifetime.saturating_add(w.margin_s);
    if let Some(clock) = clock {
        clock.advance(Duration::from_secs(seconds));
        return StepResult::Waited {
            seconds,
            advanced: true,
        };
    }
    if seconds > prepared.matrix.max_wait_s {
        return StepResult::Skipped {
            reason: format!(
                "waiting {seconds} s is longer than the matrix allows (max_wait_s = {})",
                prepared.matrix.max_wait_s
            ),
        };
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    StepResult::Waited {
        seconds,
        advanced: false,
    }
}

async fn run_step(
    pgo: &Pgo,
    scenario: &Scenario,
    step: &Step,
    results: &BTreeMap<String, StepResult>,
) -> StepResult {
    let token_from = |id: &str, field: &str| -> Result<String, String> {
        match results.get(id) {
            Some(StepResult::Http(h)) => h
                .json()
                .and_then(|j| j[field].as_str().map(str::to_string))
                .ok_or_else(|| format!("step {id:?} returned no {field}")),
            _ => Err(format!("step {id:?} did not produce a token response")),
        }
    };
    match step {
        Step::Authorize(a) => StepResult::Authorize(
            pgo.authorize(a, a.tvs.as_ref().unwrap_or(&scenario.tvs))
                .await,
        ),
        Step::Token(TokenStep {
            bad_certificate: bad,
            ..
        })
        | Step::Fhir(FhirStep {
            bad_certificate: bad,
            ..
        }) if !pgo.can_present(*bad) => StepResult::Skipped {
            reason: format!(
                "{} cannot be made for this row",
                bad.map_or("", |b| b.label())
            ),
        },
        Step::Token(t) => match results.get(&t.code_from) {
            Some(StepResult::Authorize(_))
                if t.as_client.as_deref().is_some_and(|h| !pgo.can_act_as(h)) =>
            {
                StepResult::Skipped {
                    reason: format!(
                        "no client certificate for {} is configured",
                        t.as_client.as_deref().unwrap_or("")
                    ),
                }
            }
            Some(StepResult::Authorize(a)) => match a.param("code") {
                Some(code) => StepResult::Http(pgo.token(t, code).await),
                None => StepResult::NotRun {
                    reason: format!("step {:?} yielded no authorization code", &t.code_from),
                },
            },
            _ => StepResult::NotRun {
                reason: format!("step {:?} is not an authorize step", &t.code_from),
            },
        },
        Step::Refresh(r) => match token_from(&r.token_from, "refresh_token") {
            Ok(rt) => StepResult::Http(pgo.refresh(r, &rt).await),
            Err(reason) => StepResult::NotRun { reason },
        },
        Step::Wait(_) => StepResult::NotRun {
            reason: "internal: wait steps are run by the runner".into(),
        },
        Step::TlsScan(t) => match pgo.tls_scan(t.endpoint).await {
            Ok(result) => StepResult::Tls(Box::new(result)),
            Err(reason) => StepResult::NotRun { reason },
        },
        Step::Fhir(f) => match (
            f.token_from
                .as_deref()
                .map(|t| token_from(t, "access_token"))
                .transpose(),
            gp_query(&f.query),
        ) {
            (Ok(at), Some(q)) => {
                // For paging through a large record: a PGO refreshes an expired token and goes on.
                let refresh = f
                    .token_from
                    .as_deref()
                    .and_then(|t| token_from(t, "refresh_token").ok());
                StepResult::Http(pgo.fhir(q, f, at.as_deref(), refresh).await)
            }
            (Err(reason), _) => StepResult::NotRun { reason },
            (_, None) => StepResult::NotRun {
                reason: format!("unknown query {:?}", &f.query),
            },
        },
    }
}

fn summarize(result: &StepResult) -> String {
    match result {
        StepResult::NotRun { reason } => format!("not run: {reason}"),
        StepResult::Skipped { reason } => format!("skipped: {reason}"),
        StepResult::Waited {
            seconds,
            advanced: false,
        } => format!("waited {seconds} s"),
        StepResult::Waited {
            seconds,
            advanced: true,
        } => format!("waited {seconds} s on the simulated parties' clock (advanced, no real wait)"),
        StepResult::Tls(t) => {
            let versions: Vec<String> = t
                .scan
                .versions
                .iter()
                .filter(|p| matches!(p.answer, crate::tls_scan::Answer::Accepted))
                .map(|p| p.version.to_string())
                .collect();
            let suites = t
                .scan
                .suites
                .iter()
                .filter(|p| matches!(p.answer, crate::tls_scan::Answer::Accepted))
                .count();
            format!(
                "{} ({}): versions {}; {suites} suites; {} certificates",
                t.endpoint,
                t.host,
                if versions.is_empty() {
                    "none".to_string()
                } else {
                    versions.join(", ")
                },
                t.chain.len()
            )
        }
        StepResult::Authorize(a) => match &a.outcome {
            AuthorizeOutcome::RedirectedBack { params, .. } => {
                let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
                format!(
                    "redirected back after {} hops with {}",
                    a.evidence.len(),
                    keys.join(", ")
                )
            }
            AuthorizeOutcome::Page { status, title, .. } => {
                format!(
                    "stopped on a page: HTTP {status} {:?}",
                    title.as_deref().unwrap_or("")
                )
            }
            AuthorizeOutcome::Broken { reason, .. } => format!("broke off: {reason}"),
        },
        StepResult::Http(h) => match &h.outcome {
            HttpOutcome::Response { status, .. } => format!("HTTP {status} in {} ms", h.elapsed_ms),
            HttpOutcome::Transport { reason } => format!("no response: {reason}"),
        },
    }
}

/// Assembles the report from whatever finished, in matrix order.
pub fn build_report(
    prepared: &Prepared,
    run_id: &str,
    started_at: &str,
    finished: &[Finished],
    interrupted: bool,
) -> RunReport {
    build_report_from(prepared, run_id, started_at, finished.to_vec(), interrupted)
}

/// As [`build_report`], taking the finished scenarios (no copy of them is made).
pub fn build_report_from(
    prepared: &Prepared,
    run_id: &str,
    started_at: &str,
    finished: Vec<Finished>,
    interrupted: bool,
) -> RunReport {
    let matrix = &prepared.matrix;
    let mut report = report_header(prepared, run_id, started_at, interrupted);
    for (row, column, scenarios) in by_cell(prepared, finished) {
        let cell = CellReport::assemble(row, column, scenarios, matrix);
        report.cells.push(cell);
    }
    report.summary = Summary::of(&report.cells, interrupted);
    let today =
        crate::launch::run_date(&report).unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    crate::launch::decide_all(&mut report, today);
    report
}

/// What a run adds to its cells as they are assembled: where its slim scenarios are whole, the
/// latest soak (reliability), and which shard it is (a shard decides nothing).
pub struct Finish<'a> {
    pub spill: std::sync::Arc<crate::report::Spill>,
    pub soak: Option<&'a crate::soak::SoakReport>,
    pub shard: Option<crate::shard::ShardInfo>,
}

/// As [`build_report_from`] for a run that holds its finished scenarios slim
/// ([`ScenarioReport::slim`]): one cell at a time is read back whole from the spill, assembled,
/// given its reliability from the soak and decided (unless the run is a shard), then held slim
/// again. So memory does not grow with the evidence of the finished cells.
pub fn build_report_spilled(
    prepared: &Prepared,
    run_id: &str,
    started_at: &str,
    finished: Vec<Finished>,
    interrupted: bool,
    finish: Finish<'_>,
) -> Result<RunReport, crate::report::WriteError> {
    let Finish { spill, soak, shard } = finish;
    let matrix = &prepared.matrix;
    let mut report = report_header(prepared, run_id, started_at, interrupted);
    report.shard = shard;
    let today =
        crate::launch::run_date(&report).unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    for (row, column, scenarios) in by_cell(prepared, finished) {
        let at: Vec<_> = scenarios.iter().map(|s| s.spilled).collect();
        let whole = scenarios
            .into_iter()
            .map(|s| spill.into_whole(s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cell = CellReport::assemble(row, column, whole, matrix);
        cell.reliability = match soak {
            Some(s) => crate::report::Reliability::from_soak(s, row, column),
            None => crate::report::Reliability::no_soak(matrix.soak.max_age_days),
        };
        if report.shard.is_none() {
            crate::launch::decide_cell(&mut cell, &report.matrix, interrupted, today);
        }
        for (s, at) in cell.scenarios.iter_mut().zip(at) {
            if let Some(at) = at {
                s.slim(at);
            }
        }
        report.cells.push(cell);
    }
    report.summary = Summary::of(&report.cells, interrupted);
    report.spill = Some(spill);
    Ok(report)
}

/// The finished scenarios by cell, in matrix order, each cell's in scenario order.
fn by_cell(
    prepared: &Prepared,
    finished: Vec<Finished>,
) -> impl Iterator<Item = (&str, &str, Vec<ScenarioReport>)> {
    let mut by_cell: BTreeMap<(usize, usize), Vec<(usize, ScenarioReport)>> = BTreeMap::new();
    for f in finished {
        by_cell
            .entry((f.row, f.column))
            .or_default()
            .push((f.scenario, f.report));
    }
    by_cell.into_iter().map(|((ri, ci), mut scenarios)| {
        scenarios.sort_by_key(|(k, _)| *k);
        (
            prepared.rows[ri].row.id.as_str(),
            prepared.matrix.columns[ci].id.as_str(),
            scenarios.into_iter().map(|(_, r)| r).collect(),
        )
    })
}

/// A run's report with no cells yet (and an empty summary).
fn report_header(
    prepared: &Prepared,
    run_id: &str,
    started_at: &str,
    interrupted: bool,
) -> RunReport {
    let matrix = &prepared.matrix;
    RunReport {
        schema: crate::report::REPORT_SCHEMA.to_string(),
        run_id: run_id.to_string(),
        koppeltest_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: started_at.to_string(),
        finished_at: crate::saml::instant(time::OffsetDateTime::now_utc()),
        interrupted,
        matrix: MatrixInfo {
            name: matrix.name.clone(),
            description: matrix.description.clone(),
            rows: prepared
                .rows
                .iter()
                .map(|r| {
                    let (target, quirks) = match &r.row.target {
                        DvaTarget::Simulated { quirks, .. } => ("simulated", quirks.names()),
                        DvaTarget::External { .. } => ("external", Vec::new()),
                    };
                    RowInfo {
                        id: r.row.id.clone(),
                        name: r.row.name.clone(),
                        dva: r.row.dva.clone(),
                        practice: r.row.practice.clone(),
                        target: target.into(),
                        quirks,
                        warnings: r.zal.warnings.clone(),
                        waivers: r.row.waivers.clone(),
                    }
                })
                .collect(),
            columns: matrix
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    hostname: c.hostname.clone(),
                    release: c.release.label().to_string(),
                })
                .collect(),
            launch: matrix.launch,
        },
        cells: Vec::new(),
        snapshots: None,
        shard: None,
        summary: Summary::default(),
        spill: None,
    }
}
