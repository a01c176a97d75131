//! `koppeltest soak`: the full flow repeated per cell, and the fraction of answers within
//! MedMij's budgets with its confidence interval (core.tknint.206: the token endpoint within
//! 10 s, 99.5 % of the time; core.rscint.202: the resource endpoint within 60 s, 98.5 %).
//!
//! Each flow is the embedded [`FLOW`] scenario, run by the same runner as `koppeltest run`
//! (fresh servers and state per flow against a simulated DVA; an external row's DVA is soaked
//! as it is, with the shared mock TVS). The soak reads the answers from
//! the flow's recorded exchanges: every request of the mock PGO to the row's token endpoint or
//! resource endpoint is one answer, within budget when a response below 500 came within the
//! matrix's `[budgets]`. A 5xx or no response at all counts as not available.
//!
//! Every finished flow is appended to `samples.jsonl` at once (timings and statuses only: no
//! URLs, tokens or bodies), and only numbers are kept in memory (about 16 bytes per answer, for
//! the percentiles and the timeline; no reports or bodies), so an interrupted soak keeps what it
//! measured.

pub mod stats;
pub mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

use crate::exchange::{Exchange, Party};
use crate::runner::Prepared;
pub use stats::Decision;

/// The flow a soak repeats.
pub const FLOW: (&str, &str) = ("src/soak/flow.toml", include_str!("flow.toml"));

/// soak.json's format version.
pub const SOAK_SCHEMA: &str = "koppeltest.soak/1";

/// MedMij's availability figures: the share of answers within budget.
pub const TOKEN_TARGET: f64 = 0.995;
pub const RESOURCE_TARGET: f64 = 0.985;

/// How a soak is bounded.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Settings {
    /// Flows per cell.
    pub flows: u64,
    /// No flow starts after this many seconds.
    pub duration_s: Option<u64>,
    /// Flows started per second, over all cells.
    pub rate: Option<f64>,
    /// Flows at once.
    pub jobs: usize,
}

/// The endpoints a soak times.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Token,
    Resource,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Resource => "resource",
        }
    }

    pub fn requirement(self) -> &'static str {
        match self {
            Endpoint::Token => "core.tknint.206",
            Endpoint::Resource => "core.rscint.202",
        }
    }

    pub fn target(self) -> f64 {
        match self {
            Endpoint::Token => TOKEN_TARGET,
            Endpoint::Resource => RESOURCE_TARGET,
        }
    }
}

/// One answer, as `samples.jsonl` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub endpoint: Endpoint,
    /// Milliseconds since the soak started, when the request was recorded.
    pub at_ms: u64,
    /// How long the answer took; for no answer, how long until the failure.
    pub ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why there was no answer (time-out, refused connection, TLS), without addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    /// Within budget: a response below 500, in time.
    pub fn within(&self, budget_ms: u64) -> bool {
        self.status.is_some_and(|s| s < 500) && self.ms <= budget_ms
    }

    /// The kind of failure, for the error counts; `None` within budget.
    pub fn failure(&self, budget_ms: u64) -> Option<String> {
        match (self.status, &self.error) {
            (_, Some(e)) => Some(format!("no answer: {e}")),
            (Some(s), None) if s >= 500 => Some(format!("HTTP {s}")),
            (Some(_), None) if self.ms > budget_ms => Some(format!("over {budget_ms} ms")),
            (None, None) => Some("no answer".into()),
            _ => None,
        }
    }
}

/// The answers among `exchanges` (one flow), classified by the row's endpoints.
pub fn answers(
    exchanges: &[Exchange],
    token_url: &str,
    resource_base: &str,
    soak_started: time::OffsetDateTime,
) -> Vec<Answer> {
    let resource_base = resource_base.trim_end_matches('/');
    exchanges
        .iter()
        .filter(|e| e.from == Party::Pgo && e.to == Party::Dva && e.method != "NOTE")
        .filter_map(|e| {
            let path = e.url.split('?').next().unwrap_or_default();
            let endpoint = if path == token_url {
                Endpoint::Token
            } else if path == resource_base || path.starts_with(&format!("{resource_base}/")) {
                Endpoint::Resource
            } else {
                return None;
            };
            let at_ms = e
                .recorded_at
                .as_deref()
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map_or(0, |t| (t - soak_started).whole_milliseconds().max(0) as u64);
            Some(Answer {
                endpoint,
                at_ms,
                ms: e.elapsed_ms.unwrap_or(0),
                status: e.status,
                error: e.transport_error.as_deref().map(transport_kind),
            })
        })
        .collect()
}

/// A transport error reduced to its kind (no hosts or ports, which differ per flow).
fn transport_kind(error: &str) -> String {
    let e = error.to_ascii_lowercase();
    let kind = if e.contains("timed out") || e.contains("timeout") {
        "time-out"
    } else if e.contains("refused") {
        "connection refused"
    } else if e.contains("reset") || e.contains("closed") || e.contains("eof") {
        "connection closed"
    } else if e.contains("tls") || e.contains("certificate") || e.contains("handshake") {
        "TLS"
    } else {
        "transport"
    };
    kind.to_string()
}

/// One endpoint's answers in one cell, as numbers.
#[derive(Debug, Default)]
struct Tally {
    tried: u64,
    within: u64,
    /// Latencies of the answers that came (any status), for the percentiles and histogram.
    latencies: Vec<u32>,
    errors: BTreeMap<String, u64>,
    /// `(at_ms, ms, within)` per answer, for the timeline.
    timeline: Vec<(u32, u32, bool)>,
}

impl Tally {
    fn add(&mut self, a: &Answer, budget_ms: u64) {
        self.tried += 1;
        let within = a.within(budget_ms);
        if within {
            self.within += 1;
        }
        if a.status.is_some() {
            self.latencies.push(a.ms.min(u32::MAX as u64) as u32);
        }
        if let Some(kind) = a.failure(budget_ms) {
            *self.errors.entry(kind).or_default() += 1;
        }
        self.timeline.push((
            a.at_ms.min(u32::MAX as u64) as u32,
            a.ms.min(u32::MAX as u64) as u32,
            within,
        ));
    }
}

/// One endpoint's figures in one cell.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EndpointReport {
    pub endpoint: Endpoint,
    pub requirement: String,
    pub budget_ms: u64,
    /// MedMij's figure: the share of answers that must come within budget.
    pub target: f64,
    pub answers: u64,
    pub within: u64,
    pub fraction: f64,
    /// The 95 % Wilson score interval of the fraction.
    pub interval: [f64; 2],
    pub decision: Decision,
    /// When undecided: how many more flows at the observed rate would decide it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more_flows_to_decide: Option<u64>,
    pub p50_ms: Option<u32>,
    pub p95_ms: Option<u32>,
    pub p99_ms: Option<u32>,
    /// Answers not within budget, by kind.
    pub errors: BTreeMap<String, u64>,
}

/// One cell's soak.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CellSoak {
    pub row: String,
    pub column: String,
    pub flows: u64,
    /// From the first flow's start to the last flow's end.
    pub duration_ms: u64,
    pub endpoints: Vec<EndpointReport>,
    /// Inline SVG charts (latency distribution, timeline, availability), for the HTML.
    #[serde(skip)]
    pub charts: Vec<String>,
}

impl CellSoak {
    pub fn endpoint(&self, e: Endpoint) -> Option<&EndpointReport> {
        self.endpoints.iter().find(|r| r.endpoint == e)
    }

    /// Both endpoints meet MedMij's figures.
    pub fn demonstrated(&self) -> bool {
        [Endpoint::Token, Endpoint::Resource].iter().all(|e| {
            self.endpoint(*e)
                .is_some_and(|r| r.decision == Decision::Meets)
        })
    }

    /// "N flows over D, token X % [a–b], resource Y % [c–d]".
    pub fn figures(&self) -> String {
        let part = |e: Endpoint| {
            self.endpoint(e)
                .map_or(format!("{} not measured", e.label()), |r| {
                    format!(
                        "{} {} [{}–{}] {}",
                        e.label(),
                        percent(r.fraction),
                        percent(r.interval[0]),
                        percent(r.interval[1]),
                        r.decision.label()
                    )
                })
        };
        format!(
            "{} flows over {}, {}, {}",
            self.flows,
            human_duration(self.duration_ms),
            part(Endpoint::Token),
            part(Endpoint::Resource)
        )
    }
}

/// A fraction as a percentage with two decimals.
pub fn percent(f: f64) -> String {
    format!("{:.2} %", f * 100.0)
}

fn human_duration(ms: u64) -> String {
    match ms {
        ms if ms < 10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 600_000 => format!("{} s", ms / 1000),
        ms => format!("{} min", ms / 60_000),
    }
}

/// soak.json.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SoakReport {
    pub schema: String,
    pub soak_id: String,
    pub koppeltest_version: String,
    /// The matrix's name and the SHA-256 of its text: a run uses a soak of the same matrix.
    pub matrix: String,
    pub matrix_sha256: String,
    pub started_at: String,
    pub finished_at: String,
    pub interrupted: bool,
    pub settings: Settings,
    pub cells: Vec<CellSoak>,
}

/// Aggregates one cell's flows.
struct CellTally {
    row: usize,
    column: usize,
    flows: u64,
    first_start_ms: Option<u64>,
    last_end_ms: u64,
    token: Tally,
    resource: Tally,
}

impl CellTally {
    fn report(&mut self, prepared: &Prepared) -> CellSoak {
        let budgets = &prepared.matrix.budgets;
        let per_flow = |t: &Tally| t.tried as f64 / self.flows.max(1) as f64;
        let mut endpoints = Vec::new();
        let mut charts = Vec::new();
        for (endpoint, tally, budget_ms) in [
            (Endpoint::Token, &mut self.token, budgets.token_ms),
            (Endpoint::Resource, &mut self.resource, budgets.resource_ms),
        ] {
            tally.latencies.sort_unstable();
            let (decision, more_answers) =
                stats::decide(tally.within, tally.tried, endpoint.target());
            let answers_per_flow = per_flow(tally);
            let report = EndpointReport {
                endpoint,
                requirement: endpoint.requirement().to_string(),
                budget_ms,
                target: endpoint.target(),
                answers: tally.tried,
                within: tally.within,
                fraction: if tally.tried == 0 {
                    0.0
                } else {
                    tally.within as f64 / tally.tried as f64
                },
                interval: {
                    let (lo, hi) = stats::wilson(tally.within, tally.tried);
                    [lo, hi]
                },
                decision,
                more_flows_to_decide: more_answers
                    .filter(|_| answers_per_flow > 0.0)
                    .map(|m| (m as f64 / answers_per_flow).ceil() as u64),
                p50_ms: stats::percentile(&tally.latencies, 50.0),
                p95_ms: stats::percentile(&tally.latencies, 95.0),
                p99_ms: stats::percentile(&tally.latencies, 99.0),
                errors: tally.errors.clone(),
            };
            charts.push(svg::histogram(&report, &tally.latencies));
            charts.push(svg::timeline(&report, &tally.timeline));
            charts.push(svg::availability(&report));
            endpoints.push(report);
        }
        CellSoak {
            row: prepared.rows[self.row].row.id.clone(),
            column: prepared.matrix.columns[self.column].id.clone(),
            flows: self.flows,
            duration_ms: self
                .last_end_ms
                .saturating_sub(self.first_start_ms.unwrap_or(0)),
            endpoints,
            charts,
        }
    }
}

/// What a flow task reports.
struct FlowDone {
    cell: usize,
    flow: u64,
    start_ms: u64,
    end_ms: u64,
    answers: Vec<Answer>,
}

/// Errors that end a soak before or while it writes.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to render the soak's HTML: {0}")]
    Html(String),
}

/// Parses a duration such as `90s`, `10m`, `2h` or `1500ms` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m or 2h"))?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n.saturating_mul(1000),
        "m" | "min" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    Ok(Duration::from_millis(ms))
}

/// Parses `--rate`: a finite number of flows per second from 0.001 to 10,000.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && (0.001..=10_000.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{text:?} is not a rate from 0.001 to 10000 flows per second"
        )),
    }
}

/// Runs the soak and writes `soak.json`, `samples.jsonl` and `soak.html` into `dir`, which
/// must exist. Returns the report (also when interrupted).
pub async fn soak(
    prepared: Arc<Prepared>,
    settings: &Settings,
    soak_id: &str,
    matrix_sha256: &str,
    dir: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<SoakReport, SoakError> {
    let started = time::OffsetDateTime::now_utc();
    let clock = Instant::now();
    let samples_path = dir.join("samples.jsonl");
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SoakError::Write { path, source }
    };
    let mut samples =
        crate::report::JsonLines::create(&samples_path).map_err(write_err(&samples_path))?;
    let cells: Vec<(usize, usize)> = (0..prepared.rows.len())
        .flat_map(|r| (0..prepared.matrix.columns.len()).map(move |c| (r, c)))
        .collect();
    let mut tallies: Vec<CellTally> = cells
        .iter()
        .map(|&(row, column)| CellTally {
            row,
            column,
            flows: 0,
            first_start_ms: None,
            last_end_ms: 0,
            token: Tally::default(),
            resource: Tally::default(),
        })
        .collect();
    progress.set_length(settings.flows.saturating_mul(cells.len() as u64));
    let (tx, mut rx) = mpsc::unbounded_channel::<FlowDone>();
    let deadline = settings.duration_s.map(|s| clock + Duration::from_secs(s));
    let spawner = tokio::spawn(spawn_flows(
        prepared.clone(),
        settings.clone(),
        cells.clone(),
        deadline,
        started,
        clock,
        tx,
    ));
    let mut interrupted = false;
    let mut write_failure = None;
    // One Ctrl-C future for the whole soak, so a signal during a flow's bookkeeping is kept.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            done = rx.recv() => {
                let Some(done) = done else { break };
                let (row, column) = cells[done.cell];
                let line = serde_json::json!({
                    "row": prepared.rows[row].row.id,
                    "column": prepared.matrix.columns[column].id,
                    "flow": done.flow,
                    "start_ms": done.start_ms,
                    "end_ms": done.end_ms,
                    "answers": done.answers,
                });
                if let Err(e) = samples.append(&line) {
                    write_failure = Some(SoakError::Write { path: samples_path.clone(), source: e });
                    spawner.abort();
                    break;
                }
                let tally = &mut tallies[done.cell];
                tally.flows += 1;
                tally.first_start_ms = Some(tally.first_start_ms.map_or(done.start_ms, |s| s.min(done.start_ms)));
                tally.last_end_ms = tally.last_end_ms.max(done.end_ms);
                let budgets = &prepared.matrix.budgets;
                for a in &done.answers {
                    match a.endpoint {
                        Endpoint::Token => tally.token.add(a, budgets.token_ms),
                        Endpoint::Resource => tally.resource.add(a, budgets.resource_ms),
                    }
                }
                progress.inc(1);
                progress.set_message(format!(
                    "{} × {}",
                    prepared.rows[row].row.id, prepared.matrix.columns[column].id
                ));
            }
            _ = &mut ctrl_c => {
                interrupted = true;
                spawner.abort();
                break;
            }
        }
    }
    if let Some(e) = write_failure {
        return Err(e);
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        progress.set_length(progress.position());
    }
    let report = SoakReport {
        schema: SOAK_SCHEMA.to_string(),
        soak_id: soak_id.to_string(),
        koppeltest_version: env!("CARGO_PKG_VERSION").to_string(),
        matrix: prepared.matrix.name.clone(),
        matrix_sha256: matrix_sha256.to_string(),
        started_at: crate::saml::instant(started),
        finished_at: crate::saml::instant(time::OffsetDateTime::now_utc()),
        interrupted,
        settings: settings.clone(),
        cells: tallies.iter_mut().map(|t| t.report(&prepared)).collect(),
    };
    write(dir, &report)?;
    Ok(report)
}

/// Starts the flows, interleaving the cells, at most `jobs` at once and `rate` per second,
/// none after the deadline.
async fn spawn_flows(
    prepared: Arc<Prepared>,
    settings: Settings,
    cells: Vec<(usize, usize)>,
    deadline: Option<Instant>,
    started: time::OffsetDateTime,
    clock: Instant,
    tx: mpsc::UnboundedSender<FlowDone>,
) {
    let permits = Arc::new(Semaphore::new(settings.jobs.max(1)));
    let mut ticker = settings
        .rate
        .and_then(|r| parse_rate(&r.to_string()).ok())
        .map(|r| {
            let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
            // After --jobs held flows back, the rate resumes; missed ticks do not burst.
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
    let mut tasks = tokio::task::JoinSet::new();
    'flows: for flow in 0..settings.flows {
        for (cell, &(row, column)) in cells.iter().enumerate() {
            if let Some(t) = ticker.as_mut() {
                t.tick().await;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break 'flows;
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break 'flows;
            }
            let prepared = prepared.clone();
            let tx = tx.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let start_ms = clock.elapsed().as_millis() as u64;
                let (report, _secrets) =
                    crate::runner::run_scenario(&prepared, row, column, 0).await;
                let endpoints = &prepared.rows[row].endpoints;
                let answers = answers(
                    &report.exchanges,
                    &endpoints.token,
                    &endpoints.resource,
                    started,
                );
                let _ = tx.send(FlowDone {
                    cell,
                    flow,
                    start_ms,
                    end_ms: clock.elapsed().as_millis() as u64,
                    answers,
                });
            });
            // Reap finished tasks as we go, so the set stays as small as `jobs`.
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

const TEMPLATE: &str = include_str!("soak.html.j2");

/// Writes `soak.json` and `soak.html` (each whole or not at all).
pub fn write(dir: &Path, report: &SoakReport) -> Result<(), SoakError> {
    let json = serde_json::to_vec_pretty(report).map_err(|e| SoakError::Write {
        path: dir.join("soak.json"),
        source: std::io::Error::other(e),
    })?;
    write_whole(&dir.join("soak.json"), &json)?;
    let html = render_html(report).map_err(|e| SoakError::Html(e.to_string()))?;
    write_whole(&dir.join("soak.html"), html.as_bytes())
}

fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), SoakError> {
    crate::report::write_file(path, bytes).map_err(|e| SoakError::Write {
        path: path.to_path_buf(),
        source: e.source,
    })
}

/// soak.html: one self-contained page, inline SVG charts, no scripts.
pub fn render_html(report: &SoakReport) -> Result<String, minijinja::Error> {
    use minijinja::value::{Serde, Value};
    let mut env = minijinja::Environment::new();
    env.add_template("soak.html", TEMPLATE)?;
    let charts: Vec<Vec<Value>> = report
        .cells
        .iter()
        .map(|c| {
            c.charts
                .iter()
                .map(|s| Value::from_safe_string(s.clone()))
                .collect()
        })
        .collect();
    let figures: Vec<String> = report.cells.iter().map(CellSoak::figures).collect();
    let demonstrated: Vec<bool> = report.cells.iter().map(CellSoak::demonstrated).collect();
    env.get_template("soak.html")?.render(minijinja::context! {
        report => Value::from(Serde(report)),
        charts => charts,
        figures => figures,
        demonstrated => demonstrated,
    })
}

/// The terminal summary.
pub fn render_terminal(report: &SoakReport, dir: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "koppeltest soak {}{}\n\n",
        report.matrix,
        if report.interrupted {
            " (interrupted: what was measured is kept)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "{:<28} {:<9} {:>7} {:>9} {:>18} {:>10} {:>7} {:>7} {:>7}\n",
        "cell", "endpoint", "answers", "within", "95 % interval", "decision", "p50", "p95", "p99"
    ));
    for cell in &report.cells {
        for e in &cell.endpoints {
            let ms = |v: Option<u32>| v.map_or("–".to_string(), |v| format!("{v} ms"));
            out.push_str(&format!(
                "{:<28} {:<9} {:>7} {:>9} {:>18} {:>10} {:>7} {:>7} {:>7}\n",
                format!("{} × {}", cell.row, cell.column),
                e.endpoint.label(),
                e.answers,
                percent(e.fraction),
                format!(
                    "{:.2}–{:.2} %",
                    e.interval[0] * 100.0,
                    e.interval[1] * 100.0
                ),
                e.decision.label(),
                ms(e.p50_ms),
                ms(e.p95_ms),
                ms(e.p99_ms),
            ));
        }
    }
    out.push('\n');
    for cell in &report.cells {
        for e in &cell.endpoints {
            let figure = format!(
                "{} × {} {} ({}: {} within {} ms, {}):",
                cell.row,
                cell.column,
                e.endpoint.label(),
                e.requirement,
                percent(e.target),
                e.budget_ms,
                e.decision.label()
            );
            match (e.decision, e.more_flows_to_decide) {
                (Decision::Undecided, Some(n)) => out.push_str(&format!(
                    "  {figure} about {n} more flows at this rate would decide it\n"
                )),
                (Decision::Undecided, None) => out.push_str(&format!(
                    "  {figure} no number of flows decides it at this rate\n"
                )),
                _ => {}
            }
            if !e.errors.is_empty() {
                let list: Vec<String> = e.errors.iter().map(|(k, n)| format!("{n}× {k}")).collect();
                out.push_str(&format!(
                    "  {} × {} {}: {}\n",
                    cell.row,
                    cell.column,
                    e.endpoint.label(),
                    list.join(", ")
                ));
            }
        }
    }
    let verdict = |c: &CellSoak| {
        if c.demonstrated() {
            "reliable operation demonstrated"
        } else {
            "reliable operation not demonstrated"
        }
    };
    for cell in &report.cells {
        out.push_str(&format!(
            "{} × {}: {}: {}\n",
            cell.row,
            cell.column,
            verdict(cell),
            cell.figures()
        ));
    }
    out.push_str(&format!(
        "\nsoak written to {dir}/ (soak.json, samples.jsonl, soak.html)\n"
    ));
    out
}

/// The newest soak under `reports` of the matrix with `matrix_sha256`, finished within
/// `max_age`, and not interrupted.
pub fn latest(reports: &Path, matrix_sha256: &str, max_age: Duration) -> Option<SoakReport> {
    let now = time::OffsetDateTime::now_utc();
    let mut best: Option<(time::OffsetDateTime, SoakReport)> = None;
    for entry in std::fs::read_dir(reports).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("soak.json")) else {
            continue;
        };
        let Ok(report) = serde_json::from_str::<SoakReport>(&text) else {
            continue;
        };
        if report.schema != SOAK_SCHEMA
            || report.matrix_sha256 != matrix_sha256
            || report.interrupted
        {
            continue;
        }
        let Ok(finished) = time::OffsetDateTime::parse(
            &report.finished_at,
            &time::format_description::well_known::Rfc3339,
        ) else {
            continue;
        };
        let age = now - finished;
        if age.is_negative() || age.unsigned_abs() > max_age {
            continue;
        }
        if best.as_ref().is_none_or(|(t, _)| finished > *t) {
            best = Some((finished, report));
        }
    }
    best.map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Option<u16>, ms: u64, error: Option<&str>) -> Answer {
        Answer {
            endpoint: Endpoint::Token,
            at_ms: 0,
            ms,
            status,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn an_answer_is_within_budget_only_when_it_came_in_time_below_500() {
        assert!(answer(Some(200), 10, None).within(100));
        assert!(answer(Some(401), 10, None).within(100));
        assert!(!answer(Some(200), 101, None).within(100));
        assert!(!answer(Some(503), 10, None).within(100));
        assert!(!answer(None, 10, Some("time-out")).within(100));
        assert_eq!(
            answer(Some(503), 1, None).failure(100).as_deref(),
            Some("HTTP 503")
        );
        assert_eq!(
            answer(Some(200), 500, None).failure(100).as_deref(),
            Some("over 100 ms")
        );
        assert_eq!(answer(Some(200), 5, None).failure(100), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("10y").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn the_flow_parses() {
        let flow = crate::scenario::parse(Path::new(FLOW.0), FLOW.1).expect("the soak flow");
        assert_eq!(flow.steps.len(), 10);
    }
}
