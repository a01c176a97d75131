//! Reports: the versioned run model and the sinks that render it.
//!
//! The runner emits [`crate::runner::RunEvent`]s; the terminal progress and the `events.jsonl`
//! writer consume them as they come, and at the end [`RunReport`] is rendered as `report.json`
//! ([`json`]), `junit.xml` ([`junit`]), `matrix.html` ([`html`]) and a terminal summary
//! ([`terminal`]). Reporters never decide outcomes.
//!
//! **Invariant:** everything here was redacted when it was recorded; the reports add no secret.

pub mod html;
pub mod junit;
pub mod schema;
pub mod terminal;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::checks::{CheckResult, LeakedItem};
use crate::exchange::Exchange;
use crate::outcome::Outcome;

/// The `schema` value of every report this version writes.
pub const REPORT_SCHEMA: &str = "koppeltest.report/2";

/// What a scenario's result means for the run, after known deviations are taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    /// Failed, as a declared known deviation said it would.
    ExpectedFailure,
    /// Declared as a known deviation but did not fail: the declaration is stale.
    UnexpectedPass,
    Fail,
    /// Failed a SHOULD only: reported, does not fail the run.
    Warn,
    Error,
    Skip,
    Omit,
    /// Run more than once (`run --repeat N`), it both passed and failed (or errored): its own
    /// verdict, never a pass, and it fails the run.
    Flaky,
}

impl Verdict {
    pub fn of(outcome: Outcome, deviation_declared: bool) -> Verdict {
        match (outcome, deviation_declared) {
            (Outcome::Fail | Outcome::Warn, true) => Verdict::ExpectedFailure,
            (Outcome::Warn, false) => Verdict::Warn,
            (Outcome::Fail, false) => Verdict::Fail,
            (Outcome::Pass, true) => Verdict::UnexpectedPass,
            (Outcome::Pass, false) => Verdict::Pass,
            (Outcome::Error, _) => Verdict::Error,
            (Outcome::Skip, _) => Verdict::Skip,
            (Outcome::Omit, _) => Verdict::Omit,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Verdict::Fail | Verdict::UnexpectedPass | Verdict::Flaky => 7,
            Verdict::Error => 6,
            // A declared MUST failure outranks a SHOULD failure.
            Verdict::ExpectedFailure => 5,
            Verdict::Warn => 4,
            Verdict::Pass => 3,
            Verdict::Skip => 2,
            Verdict::Omit => 1,
        }
    }

    /// Whether this verdict makes the run fail.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Verdict::Fail | Verdict::UnexpectedPass | Verdict::Flaky
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::ExpectedFailure => "expected failure",
            Verdict::UnexpectedPass => "unexpected pass",
            Verdict::Fail => "fail",
            Verdict::Warn => "warn",
            Verdict::Error => "error",
            Verdict::Skip => "skip",
            Verdict::Omit => "omit",
            Verdict::Flaky => "flaky",
        }
    }
}

/// The worst verdict of a set.
pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    verdicts
        .into_iter()
        .max_by_key(|v| v.rank())
        .unwrap_or(Verdict::Omit)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct RunReport {
    /// Always `koppeltest.report/2` for this format (`/1` inlined every exchange and had no
    /// `launch`, `page`, `exchanges_file` or `shard`).
    pub schema: String,
    pub run_id: String,
    pub koppeltest_version: String,
    pub started_at: String,
    pub finished_at: String,
    /// The run was interrupted; only finished scenarios are in the report.
    pub interrupted: bool,
    pub matrix: MatrixInfo,
    pub cells: Vec<CellReport>,
    pub summary: Summary,
    /// Snapshot drift over the run; absent with `--snapshots off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<crate::snapshot::SnapshotSummary>,
    /// This run is one shard of a split run (`run --shard K/N`), to be joined by `merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardInfo>,
    /// Where the whole reports of slim scenarios are ([`ScenarioReport::slim`]); the writers
    /// read each cell back whole from it, a cell at a time each. Never serialized.
    #[serde(skip)]
    pub spill: Option<std::sync::Arc<Spill>>,
}

impl RunReport {
    /// Reads the `report.json` of the finished run in `run_dir`.
    pub fn read(run_dir: &Path) -> Result<RunReport, String> {
        RunReport::read_file(&run_dir.join("report.json")).map(|(r, _)| r)
    }

    /// Reads a `report.json`; with the SHA-256 of its bytes.
    pub fn read_file(path: &Path) -> Result<(RunReport, String), String> {
        let text = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let report: RunReport = serde_json::from_slice(&text)
            .map_err(|e| format!("{}: not a koppeltest report: {e}", path.display()))?;
        if report.schema != REPORT_SCHEMA {
            return Err(format!(
                "{}: a {} report; this koppeltest reads {REPORT_SCHEMA}",
                path.display(),
                report.schema
            ));
        }
        Ok((report, crate::ids::sha256_hex(&text)))
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct MatrixInfo {
    pub name: String,
    pub description: String,
    pub rows: Vec<RowInfo>,
    pub columns: Vec<ColumnInfo>,
    /// The matrix's `[launch]` settings, which the launch decision applies.
    #[serde(default)]
    pub launch: crate::matrix::LaunchSettings,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct RowInfo {
    pub id: String,
    pub name: String,
    pub dva: String,
    pub practice: String,
    pub target: String,
    pub quirks: Vec<String>,
    /// Non-fatal remarks about the row's lists (naming policy).
    pub warnings: Vec<String>,
    /// The row's `[[his.waiver]]`s, which the launch decision applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waivers: Vec<crate::matrix::Waiver>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct ColumnInfo {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub release: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct CellReport {
    pub row: String,
    pub column: String,
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub duration_ms: u64,
    /// The slowest answers seen in this cell against MedMij's budgets.
    pub timing: Timing,
    /// Scenarios in this cell with a privacy failure.
    pub privacy_failures: usize,
    /// The GP record by guideline category: complete, missing items, leaked items.
    pub dataset: Vec<CategoryReport>,
    /// What the TLS scans of this cell found; none when no scenario scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsCell>,
    /// Whether a recent soak of this cell met MedMij's availability figures.
    pub reliability: Reliability,
    /// Which side failed what, where the cell judges both (an `external` PGO column): the
    /// row's DVA under the column's profile, and the column's PGO against a simulated DVA
    /// configured like the row. Empty for a cell that judges the DVA only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sides: Vec<SideSummary>,
    /// This cell's page, relative to the run folder (`cells/<row>/<column>/index.html`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Go, no-go or go with conditions, with the reasons (`crate::launch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<crate::launch::Launch>,
    pub scenarios: Vec<ScenarioReport>,
}

impl CellReport {
    /// The cell of `row` × `column` from its finished scenarios (in the cell's order), with
    /// everything derived from them; reliability says "no soak" and nothing is decided yet
    /// (`runner::build_report_spilled`, `crate::launch::decide_all`).
    pub fn assemble(
        row: &str,
        column: &str,
        scenarios: Vec<ScenarioReport>,
        matrix: &crate::matrix::Matrix,
    ) -> CellReport {
        let slowest = |actions: &[&str]| {
            scenarios
                .iter()
                .flat_map(|s| &s.steps)
                .filter(|st| actions.contains(&st.action.as_str()))
                .map(|st| st.duration_ms)
                .max()
        };
        let timing = Timing {
            token_max_ms: slowest(&["token", "refresh"]),
            token_budget_ms: matrix.budgets.token_ms,
            resource_max_ms: slowest(&["fhir"]),
            resource_budget_ms: matrix.budgets.resource_ms,
        };
        CellReport {
            tls: TlsCell::of(
                &scenarios,
                matrix.tls.edition,
                matrix.tls.expiry_warning_days,
            ),
            timing,
            dataset: dataset_summary(&scenarios),
            reliability: Reliability::no_soak(matrix.soak.max_age_days),
            sides: SideSummary::of(&scenarios),
            page: None,
            launch: None,
            privacy_failures: scenarios.iter().filter(|s| s.privacy_failure).count(),
            row: row.to_string(),
            column: column.to_string(),
            outcome: crate::outcome::roll_up(scenarios.iter().map(|s| s.outcome)),
            verdict: worst(scenarios.iter().map(|s| s.verdict)),
            duration_ms: scenarios.iter().map(|s| s.duration_ms).max().unwrap_or(0),
            scenarios,
        }
    }
}

/// One side of a cell: its verdict and the scenarios that did not pass.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct SideSummary {
    pub side: Side,
    pub verdict: Verdict,
    pub scenarios: usize,
    /// Ids of its scenarios that failed or errored (or were flaky).
    pub not_passed: Vec<String>,
}

impl SideSummary {
    /// Per side, for a cell with scenarios of both sides (empty otherwise).
    pub fn of(scenarios: &[ScenarioReport]) -> Vec<SideSummary> {
        if !scenarios.iter().any(|s| s.side == Side::Pgo) {
            return Vec::new();
        }
        [Side::Dva, Side::Pgo]
            .into_iter()
            .map(|side| {
                let mine: Vec<&ScenarioReport> =
                    scenarios.iter().filter(|s| s.side == side).collect();
                SideSummary {
                    side,
                    verdict: worst(mine.iter().map(|s| s.verdict)),
                    scenarios: mine.len(),
                    not_passed: mine
                        .iter()
                        .filter(|s| s.verdict.is_failure() || s.outcome == Outcome::Error)
                        .map(|s| s.id.clone())
                        .collect(),
                }
            })
            .collect()
    }

    /// "PGO side: FAIL (2 of 16: pgo.wrong-state, pgo.paging)".
    pub fn line(&self) -> String {
        let mut text = format!(
            "{} side: {} ({} scenarios",
            self.side.label(),
            self.verdict.label().to_uppercase(),
            self.scenarios
        );
        if !self.not_passed.is_empty() {
            text.push_str(&format!(
                "; not passed: {}",
                crate::checks::some_of(
                    self.not_passed.iter().map(String::as_str).take(8),
                    self.not_passed.len(),
                    ", "
                )
            ));
        }
        text.push(')');
        text
    }
}

/// "Reliable operation demonstrated", from the newest soak of the same matrix (`koppeltest
/// soak`), or why not.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct Reliability {
    pub demonstrated: bool,
    /// "reliable operation demonstrated: N flows over D, token X % [a–b], resource Y % [c–d]",
    /// or "reliable operation not demonstrated: …" with the reason.
    pub line: String,
    /// The soak it comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak_id: Option<String>,
}

impl Reliability {
    /// No soak of this matrix within `max_age_days`.
    pub fn no_soak(max_age_days: u32) -> Reliability {
        Reliability {
            demonstrated: false,
            line: format!(
                "reliable operation not demonstrated: no soak of this matrix in the last {max_age_days} days (koppeltest soak)"
            ),
            soak_id: None,
        }
    }

    /// From `soak`'s cell `row × column`.
    pub fn from_soak(soak: &crate::soak::SoakReport, row: &str, column: &str) -> Reliability {
        let Some(cell) = soak
            .cells
            .iter()
            .find(|c| c.row == row && c.column == column)
        else {
            return Reliability {
                demonstrated: false,
                line: format!(
                    "reliable operation not demonstrated: soak {} did not cover this cell",
                    soak.soak_id
                ),
                soak_id: Some(soak.soak_id.clone()),
            };
        };
        let demonstrated = cell.demonstrated();
        Reliability {
            demonstrated,
            line: format!(
                "reliable operation {}demonstrated: {}",
                if demonstrated { "" } else { "not " },
                cell.figures()
            ),
            soak_id: Some(soak.soak_id.clone()),
        }
    }
}

/// One endpoint's TLS, as a scan found it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct TlsEndpoint {
    pub endpoint: String,
    pub host: String,
    /// Protocol versions accepted (`TLSv1.2`, …).
    pub versions: Vec<String>,
    /// The worst NCSC class of what was accepted, under the deciding edition.
    pub worst_class: Option<crate::checks::Class>,
    /// Every accepted cipher suite with its class under both NCSC editions.
    pub suites: Vec<TlsSuite>,
    /// The server chose TLS compression when offered it (`None`: not determined).
    pub compression: Option<bool>,
    /// The server speaks RFC 5746 secure renegotiation.
    pub secure_renegotiation: Option<bool>,
    /// The server echoes the extended master secret extension (RFC 7627).
    pub extended_master_secret: Option<bool>,
    /// Days until the earliest expiry in the presented chain (negative: expired).
    pub earliest_expiry_days: Option<i64>,
}

/// One accepted cipher suite, classed.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct TlsSuite {
    /// IANA name, e.g. `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`.
    pub name: String,
    /// The protocol version it was accepted at.
    pub version: String,
    pub ncsc_2021: crate::checks::Class,
    pub ncsc_2025: crate::checks::Class,
}

/// A cell's TLS in one line, and the figures behind it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct TlsCell {
    /// "TLS: 1.2+1.3, good · certificates: earliest expiry in N days".
    pub line: String,
    /// The NCSC edition that decides.
    pub edition: String,
    pub versions: Vec<String>,
    pub worst_class: Option<crate::checks::Class>,
    pub earliest_expiry_days: Option<i64>,
    pub expiry_warning_days: u32,
    /// The earliest expiry is below the threshold.
    pub expiry_warning: bool,
    pub endpoints: Vec<TlsEndpoint>,
}

impl TlsCell {
    /// The cell's summary over the scenarios' scans; `None` when nothing was scanned.
    pub fn of(
        scenarios: &[ScenarioReport],
        edition: crate::checks::Edition,
        expiry_warning_days: u32,
    ) -> Option<TlsCell> {
        let mut endpoints: Vec<TlsEndpoint> = Vec::new();
        for e in scenarios.iter().flat_map(|s| &s.tls) {
            if !endpoints
                .iter()
                .any(|x| x.endpoint == e.endpoint && x.host == e.host)
            {
                endpoints.push(e.clone());
            }
        }
        if endpoints.is_empty() {
            return None;
        }
        let mut versions: Vec<String> = endpoints
            .iter()
            .flat_map(|e| e.versions.iter().cloned())
            .collect();
        versions.sort();
        versions.dedup();
        let worst_class = endpoints.iter().filter_map(|e| e.worst_class).max();
        let earliest = endpoints
            .iter()
            .filter_map(|e| e.earliest_expiry_days)
            .min();
        let expiry_warning = earliest.is_some_and(|d| d < i64::from(expiry_warning_days));
        let short: Vec<&str> = versions
            .iter()
            .map(|v| v.strip_prefix("TLSv").unwrap_or(v))
            .collect();
        let line = format!(
            "TLS: {}, {} · certificates: {}",
            if short.is_empty() {
                "none".to_string()
            } else {
                short.join("+")
            },
            worst_class.map_or("not judged", crate::checks::Class::label),
            match earliest {
                Some(d) if d < 0 => format!("expired {} days ago", -d),
                Some(d) => format!(
                    "earliest expiry in {d} days{}",
                    if expiry_warning {
                        format!(" (below {expiry_warning_days})")
                    } else {
                        String::new()
                    }
                ),
                None => "none recorded".to_string(),
            }
        );
        Some(TlsCell {
            line,
            edition: edition.label().to_string(),
            versions,
            worst_class,
            earliest_expiry_days: earliest,
            expiry_warning_days,
            expiry_warning,
            endpoints,
        })
    }
}

/// One guideline category of the GP record in one cell, over every test patient.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct CategoryReport {
    pub category: String,
    /// The gegevensdienst-49 query that carries it; none for what the service cannot carry.
    pub query: Option<String>,
    pub status: CategoryStatus,
    /// Items the manifests expect, over all test patients the cell's scenarios logged in.
    pub expected: usize,
    pub missing_count: usize,
    /// The first missing items by fixture identifier.
    pub missing: Vec<String>,
    pub leaked: Vec<LeakedItem>,
    /// The recorded responses the status rests on.
    pub evidence: Vec<CategoryEvidence>,
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CategoryStatus {
    /// Every expected item came, nothing excluded did.
    Complete,
    /// Expected items did not come.
    Missing,
    /// Something that must not be shared was: a privacy failure.
    Leaked,
    /// No response to judge.
    Error,
    /// No scenario of this cell judged the category.
    NotTested,
    /// gegevensdienst 49 cannot carry it (reported, never as missing).
    NotExchangeable,
}

/// Where a category's status comes from: a scenario (by id and its 1-based place in the cell,
/// which the HTML report uses for links) and the exchanges of its response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct CategoryEvidence {
    pub scenario: String,
    pub scenario_index: usize,
    pub exchanges: Vec<usize>,
}

/// The category summary of a cell from its scenarios' `dataset-complete` findings.
pub fn dataset_summary(scenarios: &[ScenarioReport]) -> Vec<CategoryReport> {
    crate::fixtures::CATEGORIES
        .iter()
        .map(|cat| {
            let mut report = CategoryReport {
                category: cat.name.to_string(),
                query: cat.query.map(str::to_string),
                status: CategoryStatus::NotExchangeable,
                expected: 0,
                missing_count: 0,
                missing: Vec::new(),
                leaked: Vec::new(),
                evidence: Vec::new(),
                note: cat.note.to_string(),
            };
            let Some(query) = cat.query else {
                return report;
            };
            let mut outcomes = Vec::new();
            for (index, sc) in scenarios.iter().enumerate() {
                for c in &sc.checks {
                    let Some(f) = c.dataset.as_ref().filter(|f| f.query == query) else {
                        continue;
                    };
                    outcomes.push((c.outcome, !f.leaked.is_empty()));
                    report.expected += f.expected;
                    report.missing_count += f.missing_count;
                    let room = crate::checks::LISTED_ITEMS.saturating_sub(report.missing.len());
                    report.missing.extend(f.missing.iter().take(room).cloned());
                    report.leaked.extend(f.leaked.iter().cloned());
                    report.evidence.push(CategoryEvidence {
                        scenario: sc.id.clone(),
                        scenario_index: index + 1,
                        exchanges: c.evidence.clone(),
                    });
                }
            }
            report.status = if outcomes.iter().any(|(_, leaked)| *leaked) {
                CategoryStatus::Leaked
            } else if outcomes.iter().any(|(o, _)| *o == Outcome::Fail) {
                CategoryStatus::Missing
            } else if outcomes.iter().any(|(o, _)| *o == Outcome::Error) {
                CategoryStatus::Error
            } else if outcomes.iter().any(|(o, _)| *o == Outcome::Pass) {
                CategoryStatus::Complete
            } else {
                CategoryStatus::NotTested
            };
            report
        })
        .collect()
}

/// Slowest token-endpoint and resource-endpoint answers of a cell (whole step time).
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct Timing {
    pub token_max_ms: Option<u64>,
    pub token_budget_ms: u64,
    pub resource_max_ms: Option<u64>,
    pub resource_budget_ms: u64,
}

/// Which party of a cell a scenario judges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The HIS/DVA, with koppeltest's mock PGO playing the column's profile.
    #[default]
    Dva,
    /// The PGO of an `external` column, judged by the PGO suite against a simulated DVA
    /// configured like the row.
    Pgo,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Dva => "DVA",
            Side::Pgo => "PGO",
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct ScenarioReport {
    pub id: String,
    pub title: String,
    /// The party this scenario judges: `dva` (the row) or `pgo` (an external column).
    #[serde(default)]
    pub side: Side,
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_deviation: Option<String>,
    /// A check found something shared that the patient must not see: the most severe class.
    pub privacy_failure: bool,
    /// Requirement ids of the checks that failed.
    pub failed_requirements: Vec<String>,
    pub checks: Vec<CheckResult>,
    pub steps: Vec<StepReport>,
    /// The endpoints this scenario scanned, summarised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsEndpoint>,
    /// Over `run --repeat N` (N > 1): how its runs went. The report shown is the first run
    /// with a privacy failure, else the first that failed, else the first that errored, else
    /// the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    /// This scenario's snapshot against the accepted one; absent with `--snapshots off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::snapshot::Drift>,
    /// The scenario's recorded exchanges, relative to the run folder
    /// (`cells/<row>/<column>/<side>/<scenario>.json`, a JSON array): `report.json` references
    /// them instead of inlining every body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanges_file: Option<String>,
    /// How many exchanges that file holds.
    #[serde(default)]
    pub exchange_count: usize,
    /// The exchanges themselves while the run holds them in memory; never in `report.json`
    /// (see `exchanges_file`), and never read from one.
    #[serde(default, skip_serializing_if = "Vec::is_empty", skip_deserializing)]
    pub exchanges: Vec<Exchange>,
    /// Set while this report is held slim ([`ScenarioReport::slim`]): where it is whole.
    /// Never serialized.
    #[serde(skip)]
    pub spilled: Option<Spilled>,
}

impl ScenarioReport {
    /// Drops what only the reports on disk need (the passed checks, the steps, the TLS scans,
    /// a snapshot's diff) once the whole report is `at` its line in `events.jsonl`. What stays
    /// is what the summary, the terminal, JUnit and the overview read: verdicts, the checks
    /// that did not pass, the drift state. So memory holds a few hundred bytes per finished
    /// scenario, not its evidence.
    pub fn slim(&mut self, at: Spilled) {
        self.checks
            .retain(|c| c.outcome != Outcome::Pass || c.privacy);
        self.checks.shrink_to_fit();
        self.steps = Vec::new();
        self.tls = Vec::new();
        self.exchanges = Vec::new();
        if let Some(drift) = &mut self.drift {
            drift.diff = None;
        }
        self.spilled = Some(at);
    }
}

/// Where a slim scenario's whole report is: its line in `events.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spilled {
    pub offset: u64,
    pub len: u64,
}

/// `events.jsonl`, read back: the whole reports of slim scenarios.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

impl Spill {
    pub fn open(path: &Path) -> Result<Spill, WriteError> {
        let file = std::fs::File::open(path).map_err(|source| WriteError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Spill {
            path: path.to_path_buf(),
            file: std::sync::Mutex::new(file),
        })
    }

    /// `scenario` whole: read back from its line when it is slim, else as it is.
    pub fn into_whole(&self, scenario: ScenarioReport) -> Result<ScenarioReport, WriteError> {
        match scenario.spilled {
            Some(_) => self.whole(&scenario),
            None => Ok(scenario),
        }
    }

    /// `scenario` whole: read back from its line when it is slim, else a copy.
    pub fn whole(&self, scenario: &ScenarioReport) -> Result<ScenarioReport, WriteError> {
        use std::io::{Read, Seek};
        let Some(at) = scenario.spilled else {
            return Ok(scenario.clone());
        };
        let failed = |source: std::io::Error| WriteError {
            path: self.path.clone(),
            source,
        };
        let len = usize::try_from(at.len)
            .map_err(std::io::Error::other)
            .map_err(failed)?;
        let mut line = vec![0; len];
        {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            file.seek(std::io::SeekFrom::Start(at.offset))
                .map_err(failed)?;
            file.read_exact(&mut line).map_err(failed)?;
        }
        #[derive(serde::Deserialize)]
        struct Line {
            scenario: ScenarioReport,
        }
        let line: Line = serde_json::from_slice(&line)
            .map_err(|e| failed(std::io::Error::other(format!("at byte {}: {e}", at.offset))))?;
        let whole = line.scenario;
        if whole.id != scenario.id {
            return Err(failed(std::io::Error::other(format!(
                "at byte {}: scenario {} where {} was written",
                at.offset, whole.id, scenario.id
            ))));
        }
        Ok(whole)
    }

    /// `cell` with every scenario whole.
    pub fn whole_cell(&self, cell: &CellReport) -> Result<CellReport, WriteError> {
        // Every field named, so a new one cannot be left out.
        let CellReport {
            row,
            column,
            outcome,
            verdict,
            duration_ms,
            timing,
            privacy_failures,
            dataset,
            tls,
            reliability,
            sides,
            page,
            launch,
            scenarios,
        } = cell;
        Ok(CellReport {
            row: row.clone(),
            column: column.clone(),
            outcome: *outcome,
            verdict: *verdict,
            duration_ms: *duration_ms,
            timing: timing.clone(),
            privacy_failures: *privacy_failures,
            dataset: dataset.clone(),
            tls: tls.clone(),
            reliability: reliability.clone(),
            sides: sides.clone(),
            page: page.clone(),
            launch: launch.clone(),
            scenarios: scenarios
                .iter()
                .map(|s| self.whole(s))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl RunReport {
    /// Cell `i` whole: as held, or read back from the spill when its scenarios are slim.
    pub fn whole_cell(&self, i: usize) -> Result<std::borrow::Cow<'_, CellReport>, WriteError> {
        let cell = &self.cells[i];
        match &self.spill {
            Some(spill) if cell.scenarios.iter().any(|s| s.spilled.is_some()) => {
                spill.whole_cell(cell).map(std::borrow::Cow::Owned)
            }
            _ => Ok(std::borrow::Cow::Borrowed(cell)),
        }
    }
}

/// How the runs of a repeated scenario went.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
pub struct Repeat {
    pub runs: usize,
    /// Runs whose outcome was pass (or warn: a SHOULD only).
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    /// `passed / runs`.
    pub pass_rate: f64,
}

impl Repeat {
    /// "passed 3 of 5 runs (60 %)".
    pub fn line(&self) -> String {
        format!(
            "passed {} of {} runs ({:.0} %)",
            self.passed,
            self.runs,
            self.pass_rate * 100.0
        )
    }
}

/// Joins the runs of one repeated scenario (all of the same row, column and scenario, at least
/// one) into one report: flaky when some passed and some failed or errored.
pub fn join_repeats(mut runs: Vec<ScenarioReport>) -> Option<ScenarioReport> {
    let count = |pred: fn(Outcome) -> bool| runs.iter().filter(|r| pred(r.outcome)).count();
    let passed = count(|o| matches!(o, Outcome::Pass | Outcome::Warn));
    let failed = count(|o| o == Outcome::Fail);
    let errored = count(|o| o == Outcome::Error);
    let repeat = Repeat {
        runs: runs.len(),
        passed,
        failed,
        errored,
        pass_rate: passed as f64 / runs.len().max(1) as f64,
    };
    // A privacy failure in any run is the one shown: it must never hide behind another failure.
    // Then a failure before an error: an errored run must not hide a failed one.
    let shown = runs
        .iter()
        .position(|r| r.privacy_failure)
        .or_else(|| runs.iter().position(|r| r.outcome == Outcome::Fail))
        .or_else(|| runs.iter().position(|r| r.outcome == Outcome::Error))
        .unwrap_or(0);
    if runs.is_empty() {
        return None;
    }
    let mut report = runs.swap_remove(shown);
    if passed > 0 && failed + errored > 0 {
        report.verdict = Verdict::Flaky;
    }
    report.repeat = Some(repeat);
    Some(report)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct StepReport {
    pub id: String,
    pub action: String,
    pub summary: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, JsonSchema)]
pub struct Summary {
    pub cells: usize,
    pub scenarios: usize,
    pub pass: usize,
    pub expected_failure: usize,
    pub unexpected_pass: usize,
    pub fail: usize,
    /// Scenarios that failed only SHOULD rules (not counted in `fail`; exit code unchanged).
    pub warn: usize,
    pub error: usize,
    pub skip: usize,
    pub omit: usize,
    /// Scenarios that both passed and failed over `run --repeat N` (they fail the run).
    pub flaky: usize,
    /// Scenarios that shared something the patient must not see (counted in `fail` or
    /// `expected_failure` too).
    pub privacy_failures: usize,
    /// The process exit code this run maps to (see the README).
    pub exit_code: i32,
}

impl Summary {
    pub fn of(cells: &[CellReport], interrupted: bool) -> Summary {
        let mut s = Summary {
            cells: cells.len(),
            ..Summary::default()
        };
        for sc in cells.iter().flat_map(|c| &c.scenarios) {
            s.scenarios += 1;
            s.privacy_failures += usize::from(sc.privacy_failure);
            match sc.verdict {
                Verdict::Pass => s.pass += 1,
                Verdict::ExpectedFailure => s.expected_failure += 1,
                Verdict::UnexpectedPass => s.unexpected_pass += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Warn => s.warn += 1,
                Verdict::Error => s.error += 1,
                Verdict::Skip => s.skip += 1,
                Verdict::Omit => s.omit += 1,
                Verdict::Flaky => s.flaky += 1,
            }
        }
        s.exit_code = if interrupted {
            crate::exit::INTERRUPTED
        } else if s.fail + s.unexpected_pass + s.flaky > 0 {
            crate::exit::CONFORMANCE_FAILURE
        } else if s.error > 0 {
            crate::exit::RUN_ERRORS
        } else {
            crate::exit::OK
        };
        s
    }
}

#[derive(Debug, thiserror::Error)]
#[error("write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// A JSON Lines file (`events.jsonl`, a soak's `samples.jsonl`) appended one finished item at a
/// time, each line whole or not at all.
pub struct JsonLines {
    file: std::fs::File,
    /// The length of the lines written whole so far.
    len: u64,
}

impl JsonLines {
    pub fn create(path: &Path) -> std::io::Result<JsonLines> {
        Ok(JsonLines {
            file: std::fs::File::create(path)?,
            len: 0,
        })
    }

    /// Appends `line` and says where it is (without its newline); when the write fails (a full
    /// disk takes part of it), cuts the file back to the lines before, so every line in it
    /// stays a finished item.
    pub fn append(&mut self, line: &serde_json::Value) -> std::io::Result<Spilled> {
        use std::io::Write;
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        match self.file.write_all(&bytes) {
            Ok(()) => {
                let at = Spilled {
                    offset: self.len,
                    len: bytes.len() as u64 - 1,
                };
                self.len += bytes.len() as u64;
                Ok(at)
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

/// Writes `path` whole or not at all: into `<path>.part`, then renamed over it, so a disk that
/// fills up mid-write leaves no truncated report behind (the partial file is removed).
pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    write_with(path, |out| std::io::Write::write_all(out, contents))
}

/// [`write_file`] for what `fill` streams into the file.
fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    use std::io::Write;
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    std::fs::File::create(&part)
        .and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            fill(&mut out)?;
            out.flush()
        })
        .and_then(|()| std::fs::rename(&part, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&part);
            WriteError {
                path: path.to_path_buf(),
                source,
            }
        })
}

/// Runs `f` with every scenario's exchanges set aside, and puts them back whatever it returns.
fn without_exchanges<T>(report: &mut RunReport, f: impl FnOnce(&RunReport) -> T) -> T {
    let held: Vec<Vec<Vec<Exchange>>> = report
        .cells
        .iter_mut()
        .map(|c| {
            c.scenarios
                .iter_mut()
                .map(|s| std::mem::take(&mut s.exchanges))
                .collect()
        })
        .collect();
    let out = f(report);
    for (cell, exchanges) in report.cells.iter_mut().zip(held) {
        for (s, x) in cell.scenarios.iter_mut().zip(exchanges) {
            s.exchanges = x;
        }
    }
    out
}

/// Writes `report.json` alone, streamed (no copy of the report in memory; slim cells read back
/// whole one at a time), whole or not at all, and never with exchanges inlined: any still held
/// are set aside meanwhile (they belong in their files, which `write_all` writes). What a run
/// whose folder failed writes first, so the verdicts survive.
pub fn write_report_json(report: &mut RunReport, dir: &Path) -> Result<(), WriteError> {
    without_exchanges(report, |report| {
        write_with(&dir.join("report.json"), |out| {
            serde_json::to_writer_pretty(out, &Whole(report)).map_err(std::io::Error::other)
        })
    })
}

/// A run report serialized with every cell whole ([`RunReport::whole_cell`]): the same fields,
/// in the same order, as the derived `Serialize` of [`RunReport`] (a test holds them equal).
struct Whole<'a>(&'a RunReport);

impl Serialize for Whole<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let r = self.0;
        if r.spill.is_none() {
            return r.serialize(serializer);
        }
        let mut out = serializer.serialize_struct("RunReport", 11)?;
        out.serialize_field("schema", &r.schema)?;
        out.serialize_field("run_id", &r.run_id)?;
        out.serialize_field("koppeltest_version", &r.koppeltest_version)?;
        out.serialize_field("started_at", &r.started_at)?;
        out.serialize_field("finished_at", &r.finished_at)?;
        out.serialize_field("interrupted", &r.interrupted)?;
        out.serialize_field("matrix", &r.matrix)?;
        out.serialize_field("cells", &WholeCells(r))?;
        out.serialize_field("summary", &r.summary)?;
        match &r.snapshots {
            Some(s) => out.serialize_field("snapshots", s)?,
            None => out.skip_field("snapshots")?,
        }
        match &r.shard {
            Some(s) => out.serialize_field("shard", s)?,
            None => out.skip_field("shard")?,
        }
        out.end()
    }
}

struct WholeCells<'a>(&'a RunReport);

impl Serialize for WholeCells<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut out = serializer.serialize_seq(Some(self.0.cells.len()))?;
        for i in 0..self.0.cells.len() {
            let cell = self.0.whole_cell(i).map_err(S::Error::custom)?;
            out.serialize_element(&*cell)?;
        }
        out.end()
    }
}

/// Whether `relative` is a path koppeltest writes below `cells/` (no `..`, not absolute, only
/// the characters `exchanges_path` uses): a report.json from disk names no other file.
pub fn is_cells_path(relative: &str) -> bool {
    relative.starts_with("cells/")
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && relative
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

/// The folder of a cell's page and exchange files, relative to the run folder.
pub fn cell_dir(row: &str, column: &str) -> String {
    format!(
        "cells/{}/{}",
        crate::snapshot::component(row),
        crate::snapshot::component(column)
    )
}

/// Where a scenario's exchanges go, relative to the run folder; `run` numbers the runs of a
/// repeated scenario (`run --repeat N`), from 1.
pub fn exchanges_path(row: &str, column: &str, side: Side, id: &str, run: Option<usize>) -> String {
    let side = match side {
        Side::Dva => "dva",
        Side::Pgo => "pgo",
    };
    let stem = crate::snapshot::component(id);
    match run {
        Some(k) => format!("{}/{side}/{stem}.run-{k}.json", cell_dir(row, column)),
        None => format!("{}/{side}/{stem}.json", cell_dir(row, column)),
    }
}

fn create_parent(path: &Path) -> Result<(), WriteError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|source| WriteError {
            path: parent.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

/// Writes `scenario`'s exchanges (of the cell `row` × `column`) to its file (`relative` to
/// `dir`, whole or not at all) and their page beside it ([`html::exchanges_page`]), and records
/// the file and count in it; the exchanges stay in memory.
pub fn write_exchanges(
    scenario: &mut ScenarioReport,
    row: &str,
    column: &str,
    dir: &Path,
    relative: String,
) -> Result<(), WriteError> {
    let path = dir.join(&relative);
    create_parent(&path)?;
    let json = serde_json::to_vec_pretty(&scenario.exchanges).map_err(|e| WriteError {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let page = dir.join(html::exchanges_page(&relative));
    let html =
        html::render_exchanges(row, column, scenario, &relative).map_err(|e| WriteError {
            path: page.clone(),
            source: std::io::Error::other(e),
        })?;
    write_file(&path, &json)?;
    write_file(&page, html.as_bytes())?;
    scenario.exchange_count = scenario.exchanges.len();
    scenario.exchanges_file = Some(relative);
    Ok(())
}

/// Writes the reports into `dir`: each scenario's exchanges still in memory to its file and
/// page, one page per cell (linking the exchanges pages, so no exchange is read back),
/// `report.json` (referencing the exchange files), `junit.xml`, `matrix.html` (the overview)
/// and the launch list (`launch-<date>.json` and `.csv`). Sets each cell's `page` and each
/// scenario's `exchanges_file`.
pub fn write_all(report: &mut RunReport, dir: &Path) -> Result<(), WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError {
        path: dir.to_path_buf(),
        source,
    })?;
    // The exchanges still in memory to their files; each cell's page named.
    for cell in &mut report.cells {
        let (row, column) = (cell.row.clone(), cell.column.clone());
        for s in &mut cell.scenarios {
            if s.exchanges_file.is_none() || !s.exchanges.is_empty() {
                let relative = s
                    .exchanges_file
                    .clone()
                    .unwrap_or_else(|| exchanges_path(&row, &column, s.side, &s.id, None));
                write_exchanges(s, &row, &column, dir, relative)?;
            }
        }
        cell.page = Some(format!("{}/index.html", cell_dir(&row, &column)));
    }
    // The cell pages on a second thread while report.json and the run-wide files are written.
    // A caller that held exchanges still holds them afterwards.
    without_exchanges(report, |report| {
        std::thread::scope(|scope| {
            let pages = scope.spawn(|| write_cell_pages(report, dir));
            let rest = write_run_files(report, dir);
            let pages = pages.join().unwrap_or_else(|_| {
                Err(WriteError {
                    path: dir.join("cells"),
                    source: std::io::Error::other("writing the cell pages failed"),
                })
            });
            // report.json's failure first: the verdicts matter most.
            rest.and(pages)
        })
    })
}

/// Each cell's page, from the cell whole (one at a time).
fn write_cell_pages(report: &RunReport, dir: &Path) -> Result<(), WriteError> {
    for i in 0..report.cells.len() {
        let Some(page) = report.cells[i].page.as_deref() else {
            continue;
        };
        let path = dir.join(page);
        let cell = report.whole_cell(i)?;
        let html =
            html::render_cell(report, &cell, "../../../matrix.html").map_err(|e| WriteError {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
        drop(cell);
        create_parent(&path)?;
        write_file(&path, html.as_bytes())?;
    }
    Ok(())
}

/// `report.json` (of a report holding no exchanges), `junit.xml`, `matrix.html` and the launch
/// list.
fn write_run_files(report: &RunReport, dir: &Path) -> Result<(), WriteError> {
    write_with(&dir.join("report.json"), |out| {
        serde_json::to_writer_pretty(out, &Whole(report)).map_err(std::io::Error::other)
    })?;
    write_file(&dir.join("junit.xml"), junit::render(report).as_bytes())?;
    let html = html::render(report).map_err(|e| WriteError {
        path: dir.join("matrix.html"),
        source: std::io::Error::other(e),
    })?;
    write_file(&dir.join("matrix.html"), html.as_bytes())?;
    let launch = crate::launch::LaunchList::of(report);
    if !launch.cells.is_empty() {
        crate::launch::write(&launch, dir)?;
    }
    Ok(())
}

/// `to` becomes the file `from`: a hard link where the file system allows one (a run's files
/// are never changed in place: every write replaces the file whole), else a copy.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        // Never a copy into an existing file: it may be a link to another run's.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => std::fs::copy(from, to).map(|_| ()),
    }
}

/// Replaces `reports/latest` with a copy of the run's folder, subfolders included (the run's
/// inputs, snapshots); files are hard-linked where the file system allows.
pub fn update_latest(run_dir: &Path, latest: &Path) -> Result<(), WriteError> {
    match std::fs::remove_dir_all(latest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(WriteError {
                path: latest.to_path_buf(),
                source: e,
            });
        }
        _ => {}
    }
    copy_dir(run_dir, latest)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), WriteError> {
    std::fs::create_dir_all(to).map_err(|source| WriteError {
        path: to.to_path_buf(),
        source,
    })?;
    let entries = std::fs::read_dir(from).map_err(|source| WriteError {
        path: from.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            copy_dir(&entry.path(), &target)?;
        } else {
            link_or_copy(&entry.path(), &target).map_err(|source| WriteError {
                path: target,
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's report of one cell (from a default run): a scenario with a dataset finding and
    /// one with a TLS scan, both with passed checks and steps.
    fn one_cell() -> RunReport {
        serde_json::from_str(include_str!("testdata/one-cell.json")).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("koppeltest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn slim_scenarios_are_read_back_whole_and_report_json_is_unchanged() {
        let mut whole = one_cell();
        // As a shard's report, so the streamed writer's optional fields are covered too.
        whole.shard = Some(crate::shard::ShardInfo {
            index: 2,
            count: 3,
            scenario_order: whole.cells[0]
                .scenarios
                .iter()
                .map(|s| s.id.clone())
                .collect(),
            units_total: 6,
            units_here: 2,
            repeat: 1,
            durations_sha256: Some("ab".repeat(32)),
        });
        let expected = serde_json::to_string_pretty(&whole).unwrap();
        let dir = temp_dir("spill");
        let events = dir.join("events.jsonl");
        let mut lines = JsonLines::create(&events).unwrap();
        let mut report = whole.clone();
        let cell = &mut report.cells[0];
        let before: usize = cell.scenarios.iter().map(|s| s.checks.len()).sum();
        for s in &mut cell.scenarios {
            let line = serde_json::json!({ "row": "r", "column": "c", "scenario": &*s });
            let at = lines.append(&line).unwrap();
            s.slim(at);
        }
        // Slim: no passed check, no step, no scan.
        let after: usize = cell.scenarios.iter().map(|s| s.checks.len()).sum();
        assert!(after < before, "{after} of {before} checks kept");
        assert!(
            cell.scenarios
                .iter()
                .all(|s| s.steps.is_empty() && s.tls.is_empty())
        );
        assert!(
            cell.scenarios
                .iter()
                .flat_map(|s| &s.checks)
                .all(|c| c.outcome != Outcome::Pass)
        );
        // Without the spill the report is what memory holds; with it, whole again.
        assert_ne!(
            serde_json::to_string_pretty(&Whole(&report)).unwrap(),
            expected
        );
        report.spill = Some(std::sync::Arc::new(Spill::open(&events).unwrap()));
        assert_eq!(
            serde_json::to_string_pretty(&Whole(&report)).unwrap(),
            expected
        );
        let cell = report.whole_cell(0).unwrap();
        assert_eq!(
            serde_json::to_value(&*cell).unwrap(),
            serde_json::to_value(&whole.cells[0]).unwrap()
        );
        // report.json on disk, as the run writes it.
        write_report_json(&mut report, &dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("report.json")).unwrap(),
            expected
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_line_that_is_not_the_scenario_is_an_error_not_a_report() {
        let dir = temp_dir("spill-wrong");
        let events = dir.join("events.jsonl");
        let mut lines = JsonLines::create(&events).unwrap();
        let mut report = one_cell();
        let [first, second] = &mut report.cells[0].scenarios[..] else {
            panic!("two scenarios");
        };
        let at = lines
            .append(&serde_json::json!({ "scenario": &*first }))
            .unwrap();
        second.slim(at);
        let spill = Spill::open(&events).unwrap();
        let e = spill.whole(second).unwrap_err().to_string();
        assert!(e.contains("where"), "{e}");
        // Past the end of the file.
        second.spilled = Some(Spilled {
            offset: at.len + 10,
            len: 5,
        });
        assert!(spill.whole(second).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
