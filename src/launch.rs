//! The launch decision: per cell **go**, **no-go** or **go with conditions**, with the reasons,
//! for a coalition deciding which HIS × PGO combinations may go live.
//!
//! A *blocker* makes a no-go:
//! - a privacy failure (something the patient must not see was shared);
//! - a failed MUST of a security family (authorization, token, TLS, SAML; the catalogue's
//!   `family`), or a failed check no catalogue rule classifies;
//! - an `error` that leaves a security MUST unexercised (no other check of the cell came to a
//!   verdict on it), or a security family that no check of the cell exercised at all;
//! - with `[launch] unreliable = "blocker"`, reliable operation not demonstrated.
//!
//! A known deviation (`[[his.known_deviation]]`) never turns a blocker into a go: it explains a
//! failure, it does not accept the risk. Only a `[[his.waiver]]` does that, with a reason, an
//! owner and an expiry date; a waived blocker is a condition until the waiver lapses, and
//! blocks again from the day after. Everything else that is not a clean pass is a *condition*:
//! a failure outside the security families, a SHOULD not met, an error that hides no security
//! rule, a stale known deviation, a side not judged, reliability not demonstrated.
//!
//! The decision reads only the report (so `koppeltest launch` re-decides a finished run at
//! another date), the embedded catalogue and the date; both sides of a cell count.
//! **Boundary:** no I/O except [`write`]; it decides nothing about conformance, only launch.

use std::collections::BTreeSet;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::matrix::{LaunchSettings, UnreliablePolicy, Waiver};
use crate::outcome::Outcome;
use crate::report::{CellReport, RunReport, ScenarioReport, Side, Verdict};
use crate::requirements::Family;

/// The `schema` value of every launch list this version writes.
pub const LAUNCH_SCHEMA: &str = "koppeltest.launch/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Go,
    GoWithConditions,
    NoGo,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::Go => "go",
            Decision::GoWithConditions => "go with conditions",
            Decision::NoGo => "no-go",
        }
    }
}

/// Why a reason is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonKind {
    /// Blocker: something the patient must not see was shared.
    Privacy,
    /// Blocker: a MUST of a security family failed.
    Security,
    /// Blocker: an error (or no check at all) left a security rule unexercised.
    Unexercised,
    /// A blocker a current waiver accepts (a condition).
    Waived,
    /// A MUST outside the security families failed (declared or not).
    Deviation,
    /// A SHOULD was not met.
    Should,
    /// An error that hides no security rule.
    Error,
    /// Declared as a known deviation, but it passed: the declaration is stale.
    StaleDeviation,
    /// A side of the cell was not judged (a PGO that never came).
    NotJudged,
    /// Reliable operation not demonstrated (a blocker under `unreliable = "blocker"`).
    Unreliable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reason {
    pub kind: ReasonKind,
    /// It makes the cell a no-go.
    pub blocking: bool,
    /// The scenario it comes from, when one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The requirements it rests on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    pub text: String,
}

/// One cell's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Launch {
    pub decision: Decision,
    /// The day it was decided for (`YYYY-MM-DD`): waivers hold up to and including their expiry.
    pub decided_on: String,
    /// Blockers first, then conditions.
    pub reasons: Vec<Reason>,
}

impl Launch {
    /// "NO-GO (2 blockers, 1 condition)".
    pub fn line(&self) -> String {
        let blockers = self.reasons.iter().filter(|r| r.blocking).count();
        let conditions = self.reasons.len() - blockers;
        let mut parts = Vec::new();
        if blockers > 0 {
            parts.push(plural(blockers, "blocker"));
        }
        if conditions > 0 {
            parts.push(plural(conditions, "condition"));
        }
        let label = self.decision.label().to_uppercase();
        if parts.is_empty() {
            label
        } else {
            format!("{label} ({})", parts.join(", "))
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The families a check credits with their level; `None` when the check credits no rule the
/// catalogue knows.
fn rules_of(requirements: &[String]) -> Option<Vec<(&str, &'static str, Family)>> {
    let rules: Vec<(&str, &str, Family)> = requirements
        .iter()
        .filter_map(|id| {
            crate::requirements::rule(id).map(|(level, family)| (id.as_str(), level, family))
        })
        .collect();
    (!rules.is_empty()).then_some(rules)
}

fn security_musts(requirements: &[String]) -> Vec<String> {
    rules_of(requirements)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, level, family)| *level == "MUST" && family.is_security())
        .map(|(id, _, _)| id.to_string())
        .collect()
}

fn families(requirements: &[String]) -> String {
    let mut names: Vec<&str> = rules_of(requirements)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, _, f)| f.label())
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// "PGO side: pgo.paging" or "token.code-replay", with "(flaky: …)" where it applies.
fn who(s: &ScenarioReport) -> String {
    let mut text = match s.side {
        Side::Pgo => format!("PGO side: {}", s.id),
        Side::Dva => s.id.clone(),
    };
    if s.verdict == Verdict::Flaky {
        text.push_str(" (flaky");
        if let Some(r) = &s.repeat {
            text.push_str(&format!(": {}", r.line()));
        }
        text.push(')');
    }
    text
}

fn declared(s: &ScenarioReport) -> String {
    s.known_deviation
        .as_ref()
        .map(|r| format!("; declared as a known deviation ({r}), which does not accept the risk"))
        .unwrap_or_default()
}

/// The first message of a check with `outcome`, cut short.
fn first_message(s: &ScenarioReport, outcome: Outcome) -> String {
    let message = s
        .checks
        .iter()
        .find(|c| c.outcome == outcome)
        .map_or("", |c| c.message.as_str());
    let mut cut: String = message.chars().take(160).collect();
    if cut.len() < message.len() {
        cut.push('…');
    }
    cut
}

fn reason(
    kind: ReasonKind,
    blocking: bool,
    scenario: Option<&str>,
    requirements: Vec<String>,
    text: String,
) -> Reason {
    Reason {
        kind,
        blocking,
        scenario: scenario.map(str::to_string),
        requirements,
        text,
    }
}

/// What `s` contributes to its cell's decision.
fn judge_scenario(s: &ScenarioReport, exercised: &BTreeSet<&str>, out: &mut Vec<Reason>) {
    let id = Some(s.id.as_str());
    if s.privacy_failure {
        let reqs = s.failed_requirements.clone();
        out.push(reason(
            ReasonKind::Privacy,
            true,
            id,
            reqs,
            format!(
                "{}: shared what the patient must not see{}",
                who(s),
                declared(s)
            ),
        ));
    }
    // Failed, warned and errored checks each count on their own: an error must not hide
    // behind a failure of the same scenario, nor a failure behind a warning (the privacy
    // failures themselves are the reason above).
    let with = |outcome: Outcome| -> Vec<&crate::checks::CheckResult> {
        s.checks
            .iter()
            .filter(|c| c.outcome == outcome && !c.privacy)
            .collect()
    };
    let failed = with(Outcome::Fail);
    if !failed.is_empty() {
        let mut security: Vec<String> = failed
            .iter()
            .flat_map(|c| security_musts(&c.requirements))
            .collect();
        security.sort();
        security.dedup();
        // A failure no catalogue rule classifies might be a security one: it blocks.
        let unclassified: Vec<&str> = failed
            .iter()
            .filter(|c| rules_of(&c.requirements).is_none())
            .map(|c| c.kind.as_str())
            .collect();
        if !security.is_empty() {
            out.push(reason(
                ReasonKind::Security,
                true,
                id,
                security.clone(),
                format!(
                    "{}: failed MUST {} ({}){}",
                    who(s),
                    security.join(", "),
                    families(&security),
                    declared(s)
                ),
            ));
        } else if !unclassified.is_empty() {
            out.push(reason(
                ReasonKind::Security,
                true,
                id,
                Vec::new(),
                format!(
                    "{}: failed check {} credits no catalogued rule, so it may be a security failure{}",
                    who(s),
                    unclassified.join(", "),
                    declared(s)
                ),
            ));
        } else {
            let mut reqs: Vec<String> = failed
                .iter()
                .flat_map(|c| c.requirements.iter().cloned())
                .collect();
            reqs.sort();
            reqs.dedup();
            let known = s
                .known_deviation
                .as_ref()
                .map(|r| format!(" (known deviation: {r})"))
                .unwrap_or_default();
            out.push(reason(
                ReasonKind::Deviation,
                false,
                id,
                reqs.clone(),
                format!(
                    "{}: failed MUST {} ({}){known}",
                    who(s),
                    reqs.join(", "),
                    families(&reqs)
                ),
            ));
        }
    }
    let warned = with(Outcome::Warn);
    if !warned.is_empty() {
        let mut reqs: Vec<String> = warned
            .iter()
            .flat_map(|c| c.requirements.iter().cloned())
            .collect();
        reqs.sort();
        reqs.dedup();
        out.push(reason(
            ReasonKind::Should,
            false,
            id,
            reqs.clone(),
            format!("{}: SHOULD not met: {}", who(s), reqs.join(", ")),
        ));
    }
    let errored = with(Outcome::Error);
    if !errored.is_empty() {
        let mut hidden: Vec<String> = errored
            .iter()
            .flat_map(|c| security_musts(&c.requirements))
            .filter(|r| !exercised.contains(r.as_str()))
            .collect();
        hidden.sort();
        hidden.dedup();
        // An errored check that credits no catalogued rule (a PGO suite that could not start,
        // say) may hide a security rule: it blocks, as an unclassified failure does.
        let unclassified: Vec<&str> = errored
            .iter()
            .filter(|c| rules_of(&c.requirements).is_none())
            .map(|c| c.kind.as_str())
            .collect();
        let message = first_message(s, Outcome::Error);
        if !hidden.is_empty() {
            out.push(reason(
                ReasonKind::Unexercised,
                true,
                id,
                hidden.clone(),
                format!(
                    "{}: an error leaves MUST {} ({}) unexercised: {message}",
                    who(s),
                    hidden.join(", "),
                    families(&hidden)
                ),
            ));
        } else if !unclassified.is_empty() {
            out.push(reason(
                ReasonKind::Unexercised,
                true,
                id,
                Vec::new(),
                format!(
                    "{}: errored check {} credits no catalogued rule, so a security rule may be unexercised: {message}",
                    who(s),
                    unclassified.join(", ")
                ),
            ));
        } else {
            out.push(reason(
                ReasonKind::Error,
                false,
                id,
                Vec::new(),
                format!(
                    "{}: error, nothing security-relevant left unexercised: {message}",
                    who(s)
                ),
            ));
        }
    }
    if s.verdict == Verdict::UnexpectedPass {
        out.push(reason(
            ReasonKind::StaleDeviation,
            false,
            id,
            Vec::new(),
            format!(
                "{}: declared as a known deviation but passed: update the matrix",
                who(s)
            ),
        ));
    }
}

/// Whether `w` applies to the cell of `column`.
fn in_column(w: &Waiver, column: &str) -> bool {
    w.column.as_deref().is_none_or(|c| c == column)
}

/// How the waivers stand for blocker `r` on `today`: `Ok` with the waivers that accept it (a
/// holding waiver of its scenario; or, except for a privacy failure, holding waivers of every
/// requirement it names), `Err` with the lapsed waivers that would have, if any.
fn waivers_for<'a>(
    r: &Reason,
    column: &str,
    waivers: &'a [Waiver],
    today: time::Date,
) -> Result<Vec<&'a Waiver>, Vec<&'a Waiver>> {
    let holds = |w: &Waiver| w.expiry().is_some_and(|last| today <= last);
    let by_scenario: Vec<&Waiver> = waivers
        .iter()
        .filter(|w| in_column(w, column) && w.scenario.is_some() && w.scenario == r.scenario)
        .collect();
    if let Some(w) = by_scenario.iter().find(|w| holds(w)) {
        return Ok(vec![*w]);
    }
    let mut lapsed: Vec<&Waiver> = by_scenario;
    // A requirement waiver accepts a risk named by rule; a privacy failure is accepted only for
    // its scenario, by name.
    if r.kind != ReasonKind::Privacy && !r.requirements.is_empty() {
        let mut accepting = Vec::new();
        for q in &r.requirements {
            let of_q: Vec<&Waiver> = waivers
                .iter()
                .filter(|w| in_column(w, column) && w.requirement.as_ref() == Some(q))
                .collect();
            match of_q.iter().find(|w| holds(w)) {
                Some(w) => accepting.push(*w),
                None => lapsed.extend(of_q),
            }
        }
        if accepting.len() == r.requirements.len() {
            return Ok(accepting);
        }
    }
    Err(lapsed)
}

/// The decision for `cell` on `today`, with its row's waivers and the matrix's settings.
pub fn decide(
    cell: &CellReport,
    waivers: &[Waiver],
    settings: LaunchSettings,
    today: time::Date,
) -> Launch {
    let exercised: BTreeSet<&str> = cell
        .scenarios
        .iter()
        .flat_map(|s| &s.checks)
        .filter(|c| matches!(c.outcome, Outcome::Pass | Outcome::Fail | Outcome::Warn))
        .flat_map(|c| c.requirements.iter().map(String::as_str))
        .collect();
    let mut reasons = Vec::new();
    for s in &cell.scenarios {
        judge_scenario(s, &exercised, &mut reasons);
    }
    // A security family no check of the cell came to a verdict on.
    let reached: BTreeSet<Family> = exercised
        .iter()
        .filter_map(|id| crate::requirements::rule(id).map(|(_, f)| f))
        .collect();
    for family in [
        Family::Authorization,
        Family::Token,
        Family::Tls,
        Family::Saml,
    ] {
        if !reached.contains(&family) {
            reasons.push(reason(
                ReasonKind::Unexercised,
                true,
                None,
                Vec::new(),
                format!(
                    "no check of this cell came to a verdict on any {} rule: run the {} scenarios",
                    family.label(),
                    family.label()
                ),
            ));
        }
    }
    let pgo: Vec<&ScenarioReport> = cell
        .scenarios
        .iter()
        .filter(|s| s.side == Side::Pgo)
        .collect();
    if !pgo.is_empty() && pgo.iter().all(|s| s.outcome == Outcome::Skip) {
        reasons.push(reason(
            ReasonKind::NotJudged,
            false,
            None,
            Vec::new(),
            format!(
                "PGO side not judged: {}",
                first_message(pgo[0], Outcome::Skip)
            ),
        ));
    }
    if !cell.reliability.demonstrated {
        reasons.push(reason(
            ReasonKind::Unreliable,
            settings.unreliable == UnreliablePolicy::Blocker,
            None,
            Vec::new(),
            cell.reliability.line.clone(),
        ));
    }
    for r in reasons.iter_mut().filter(|r| r.blocking) {
        match waivers_for(r, &cell.column, waivers, today) {
            Ok(accepting) => {
                let by: Vec<String> = accepting
                    .iter()
                    .map(|w| format!("until {} by {}: {}", w.expires, w.owner, w.reason))
                    .collect();
                r.kind = ReasonKind::Waived;
                r.blocking = false;
                r.text = format!("{} — waived {}", r.text, by.join("; "));
            }
            Err(lapsed) if !lapsed.is_empty() => {
                let by: Vec<String> = lapsed
                    .iter()
                    .map(|w| format!("the waiver by {} lapsed after {}", w.owner, w.expires))
                    .collect();
                r.text = format!("{} — {}", r.text, by.join("; "));
            }
            Err(_) => {}
        }
    }
    reasons.sort_by_key(|r| !r.blocking);
    let decision = if reasons.iter().any(|r| r.blocking) {
        Decision::NoGo
    } else if reasons.is_empty() {
        Decision::Go
    } else {
        Decision::GoWithConditions
    };
    Launch {
        decision,
        decided_on: date_text(today),
        reasons,
    }
}

pub fn date_text(date: time::Date) -> String {
    date.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// The day a report was started, from its `started_at` (UTC).
pub fn run_date(report: &RunReport) -> Option<time::Date> {
    report
        .started_at
        .get(..10)
        .and_then(crate::matrix::parse_date)
}

/// Decides every cell of `report` on `today` (with the waivers and settings it records). A
/// shard's report is not decided: only the merged run is a basis for a launch. In an
/// interrupted run every cell has a blocker: what did not finish was not judged.
pub fn decide_all(report: &mut RunReport, today: time::Date) {
    if report.shard.is_some() {
        for cell in &mut report.cells {
            cell.launch = None;
        }
        return;
    }
    for cell in &mut report.cells {
        decide_cell(cell, &report.matrix, report.interrupted, today);
    }
}

/// Decides one cell of a run (not a shard) on `today`, with the waivers and settings of
/// `matrix`; in an interrupted run with a blocker.
pub fn decide_cell(
    cell: &mut CellReport,
    matrix: &crate::report::MatrixInfo,
    interrupted: bool,
    today: time::Date,
) {
    let waivers = matrix
        .rows
        .iter()
        .find(|r| r.id == cell.row)
        .map(|r| r.waivers.as_slice())
        .unwrap_or_default();
    let mut launch = decide(cell, waivers, matrix.launch, today);
    if interrupted {
        launch.reasons.insert(
            0,
            reason(
                ReasonKind::Unexercised,
                true,
                None,
                Vec::new(),
                "the run was interrupted: scenarios that did not finish were not judged".into(),
            ),
        );
        launch.decision = Decision::NoGo;
    }
    cell.launch = Some(launch);
}

/// The launch list: one line per cell, dated, with the run it rests on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LaunchList {
    /// Always `koppeltest.launch/1` for this format.
    pub schema: String,
    pub date: String,
    pub run_id: String,
    pub koppeltest_version: String,
    pub matrix: String,
    pub cells: Vec<LaunchCell>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LaunchCell {
    pub row: String,
    pub column: String,
    pub decision: Decision,
    pub reasons: Vec<Reason>,
}

impl LaunchList {
    /// The list of `report`'s cells, as decided (see [`decide_all`]).
    pub fn of(report: &RunReport) -> LaunchList {
        let date = report
            .cells
            .iter()
            .find_map(|c| c.launch.as_ref().map(|l| l.decided_on.clone()))
            .unwrap_or_default();
        LaunchList {
            schema: LAUNCH_SCHEMA.to_string(),
            date,
            run_id: report.run_id.clone(),
            koppeltest_version: report.koppeltest_version.clone(),
            matrix: report.matrix.name.clone(),
            cells: report
                .cells
                .iter()
                .filter_map(|c| {
                    c.launch.as_ref().map(|l| LaunchCell {
                        row: c.row.clone(),
                        column: c.column.clone(),
                        decision: l.decision,
                        reasons: l.reasons.clone(),
                    })
                })
                .collect(),
        }
    }

    /// CSV (RFC 4180): `date,run_id,koppeltest_version,row,column,decision,reasons`, the
    /// reasons joined by ` | `, blockers first.
    pub fn csv(&self) -> String {
        let mut out =
            String::from("date,run_id,koppeltest_version,row,column,decision,reasons\r\n");
        for c in &self.cells {
            let reasons: Vec<String> = c
                .reasons
                .iter()
                .map(|r| {
                    format!(
                        "{}{}",
                        if r.blocking {
                            "BLOCKER: "
                        } else {
                            "condition: "
                        },
                        r.text
                    )
                })
                .collect();
            let fields = [
                self.date.as_str(),
                &self.run_id,
                &self.koppeltest_version,
                &c.row,
                &c.column,
                c.decision.label(),
                &reasons.join(" | "),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// One CSV field: quoted when it must be, and never read as a formula by a spreadsheet.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Writes `launch-<date>.json` and `launch-<date>.csv` into `dir`; returns their paths.
pub fn write(
    list: &LaunchList,
    dir: &Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf), crate::report::WriteError> {
    let json_path = dir.join(format!("launch-{}.json", list.date));
    let csv_path = dir.join(format!("launch-{}.csv", list.date));
    let json = serde_json::to_vec_pretty(list).map_err(|e| crate::report::WriteError {
        path: json_path.clone(),
        source: std::io::Error::other(e),
    })?;
    crate::report::write_file(&json_path, &json)?;
    crate::report::write_file(&csv_path, list.csv().as_bytes())?;
    Ok((json_path, csv_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckResult;
    use crate::report::{Reliability, Timing};

    fn check(kind: &str, outcome: Outcome, reqs: &[&str]) -> CheckResult {
        CheckResult {
            kind: kind.into(),
            step: "s".into(),
            outcome,
            message: format!("{kind} said so"),
            requirements: reqs.iter().map(|r| r.to_string()).collect(),
            evidence: Vec::new(),
            privacy: false,
            dataset: None,
        }
    }

    fn scenario(id: &str, checks: Vec<CheckResult>, known: Option<&str>) -> ScenarioReport {
        let outcome = crate::outcome::roll_up(checks.iter().map(|c| c.outcome));
        let failed_requirements = checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail | Outcome::Warn))
            .flat_map(|c| c.requirements.clone())
            .collect();
        ScenarioReport {
            id: id.into(),
            title: id.into(),
            side: Side::Dva,
            outcome,
            verdict: Verdict::of(outcome, known.is_some()),
            duration_ms: 1,
            known_deviation: known.map(str::to_string),
            privacy_failure: checks.iter().any(|c| c.privacy),
            failed_requirements,
            checks,
            steps: Vec::new(),
            tls: Vec::new(),
            repeat: None,
            drift: None,
            exchanges_file: None,
            exchange_count: 0,
            exchanges: Vec::new(),
            spilled: None,
        }
    }

    /// A passing scenario that exercises one rule of every security family.
    fn all_families() -> ScenarioReport {
        scenario(
            "flow.happy-path",
            vec![
                check("code-issued", Outcome::Pass, &["rfc6749#4.1.2"]),
                check("token-issued", Outcome::Pass, &["core.tknint.204"]),
                check("tls", Outcome::Pass, &["medmij:tls.version-1.2"]),
                check("saml", Outcome::Pass, &["eid-saml-4.4#7.6"]),
            ],
            None,
        )
    }

    fn cell(mut scenarios: Vec<ScenarioReport>) -> CellReport {
        scenarios.insert(0, all_families());
        CellReport {
            row: "row".into(),
            column: "col".into(),
            outcome: Outcome::Pass,
            verdict: Verdict::Pass,
            duration_ms: 1,
            timing: Timing {
                token_max_ms: None,
                token_budget_ms: 10_000,
                resource_max_ms: None,
                resource_budget_ms: 60_000,
            },
            privacy_failures: 0,
            dataset: Vec::new(),
            tls: None,
            reliability: Reliability {
                demonstrated: true,
                line: "reliable operation demonstrated".into(),
                soak_id: Some("s".into()),
            },
            sides: Vec::new(),
            page: None,
            launch: None,
            scenarios,
        }
    }

    fn day(text: &str) -> time::Date {
        crate::matrix::parse_date(text).unwrap()
    }

    fn decide_on(cell: &CellReport, waivers: &[Waiver], date: &str) -> Launch {
        decide(cell, waivers, LaunchSettings::default(), day(date))
    }

    fn replay_failure(known: Option<&str>) -> ScenarioReport {
        scenario(
            "token.code-replay",
            vec![check(
                "token-refused",
                Outcome::Fail,
                &["rfc6749#4.1.2", "core.tknint.204"],
            )],
            known,
        )
    }

    fn waiver(scenario: Option<&str>, requirement: Option<&str>, column: Option<&str>) -> Waiver {
        Waiver {
            scenario: scenario.map(str::to_string),
            requirement: requirement.map(str::to_string),
            column: column.map(str::to_string),
            reason: "fix in 7.2".into(),
            owner: "coalition".into(),
            expires: "2027-01-31".into(),
        }
    }

    #[test]
    fn a_clean_cell_with_every_family_and_reliability_is_a_go() {
        let launch = decide_on(&cell(Vec::new()), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::Go, "{:?}", launch.reasons);
        assert_eq!(launch.line(), "GO");
    }

    #[test]
    fn a_known_deviation_does_not_unblock_a_security_or_privacy_failure() {
        for known in [None, Some("replays codes")] {
            let launch = decide_on(&cell(vec![replay_failure(known)]), &[], "2026-12-01");
            assert_eq!(launch.decision, Decision::NoGo);
            assert_eq!(launch.reasons[0].kind, ReasonKind::Security);
            assert!(launch.reasons[0].text.contains("(authorization, token)"));
        }
        let mut leak = check(
            "dataset-complete",
            Outcome::Fail,
            &["nhg:online-inzage.exclusions"],
        );
        leak.privacy = true;
        let launch = decide_on(
            &cell(vec![scenario(
                "dataset.bakker",
                vec![leak],
                Some("S/O lines"),
            )]),
            &[],
            "2026-12-01",
        );
        assert_eq!(launch.decision, Decision::NoGo);
        assert_eq!(launch.reasons[0].kind, ReasonKind::Privacy);
        assert!(
            launch.reasons[0]
                .text
                .contains("which does not accept the risk")
        );
        // A privacy failure is accepted only by a waiver of its scenario, never by rule.
        let c = cell(vec![scenario(
            "dataset.bakker",
            vec![{
                let mut leak = check(
                    "dataset-complete",
                    Outcome::Fail,
                    &["nhg:online-inzage.exclusions"],
                );
                leak.privacy = true;
                leak
            }],
            None,
        )]);
        let by_rule = [waiver(None, Some("nhg:online-inzage.exclusions"), None)];
        assert_eq!(
            decide_on(&c, &by_rule, "2027-01-01").decision,
            Decision::NoGo
        );
        let by_name = [waiver(Some("dataset.bakker"), None, None)];
        assert_eq!(
            decide_on(&c, &by_name, "2027-01-01").decision,
            Decision::GoWithConditions
        );
    }

    #[test]
    fn a_waiver_holds_through_its_last_day_and_blocks_again_after() {
        let c = cell(vec![replay_failure(Some("replays codes"))]);
        // By scenario; or by requirement, one waiver for every rule the blocker names.
        for ws in [
            vec![waiver(Some("token.code-replay"), None, None)],
            vec![
                waiver(None, Some("core.tknint.204"), Some("col")),
                waiver(None, Some("rfc6749#4.1.2"), None),
            ],
        ] {
            let held = decide_on(&c, &ws, "2027-01-31");
            assert_eq!(held.decision, Decision::GoWithConditions);
            assert_eq!(held.reasons[0].kind, ReasonKind::Waived);
            assert!(
                held.reasons[0]
                    .text
                    .contains("waived until 2027-01-31 by coalition")
            );
            let lapsed = decide_on(&c, &ws, "2027-02-01");
            assert_eq!(lapsed.decision, Decision::NoGo);
            assert!(lapsed.reasons[0].text.contains("lapsed after 2027-01-31"));
        }
        // A waiver of one of its rules does not accept the other.
        let one = [waiver(None, Some("core.tknint.204"), None)];
        assert_eq!(decide_on(&c, &one, "2027-01-01").decision, Decision::NoGo);
        // A lapsed waiver listed before its renewal does not hide the renewal.
        let mut old = waiver(Some("token.code-replay"), None, None);
        old.expires = "2026-06-30".into();
        let renewed = [old, waiver(Some("token.code-replay"), None, None)];
        assert_eq!(
            decide_on(&c, &renewed, "2027-01-01").decision,
            Decision::GoWithConditions
        );
        // Another column's waiver, or another scenario's, covers nothing here.
        for w in [
            waiver(Some("token.code-replay"), None, Some("other")),
            waiver(Some("token.expired-code"), None, None),
        ] {
            assert_eq!(decide_on(&c, &[w], "2027-01-01").decision, Decision::NoGo);
        }
    }

    #[test]
    fn deviations_outside_the_security_families_and_shoulds_are_conditions() {
        let missing = scenario(
            "dataset.de-vries",
            vec![check(
                "dataset-complete",
                Outcome::Fail,
                &["nhg:online-inzage.dataset"],
            )],
            None,
        );
        let should = scenario(
            "token.replay-revokes",
            vec![check(
                "resource-refused",
                Outcome::Warn,
                &["rfc6749#4.1.2.revoke"],
            )],
            None,
        );
        let launch = decide_on(&cell(vec![missing, should]), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::GoWithConditions);
        let kinds: Vec<ReasonKind> = launch.reasons.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [ReasonKind::Deviation, ReasonKind::Should]);
        assert_eq!(launch.line(), "GO WITH CONDITIONS (2 conditions)");
    }

    #[test]
    fn an_error_blocks_only_where_it_leaves_a_security_rule_unexercised() {
        let errored = scenario(
            "token.client-certificate",
            vec![check("token-refused", Outcome::Error, &["rfc8705#2"])],
            None,
        );
        let launch = decide_on(&cell(vec![errored.clone()]), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::NoGo);
        assert_eq!(launch.reasons[0].kind, ReasonKind::Unexercised);
        assert!(launch.reasons[0].text.contains("rfc8705#2"));
        // Another scenario came to a verdict on the same rule: only a condition.
        let other = scenario(
            "token.certificate-mismatch",
            vec![check("token-refused", Outcome::Pass, &["rfc8705#2"])],
            None,
        );
        let launch = decide_on(&cell(vec![errored, other]), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::GoWithConditions);
        assert_eq!(launch.reasons[0].kind, ReasonKind::Error);
    }

    #[test]
    fn an_error_is_judged_even_beside_a_failure_and_an_unclassified_one_blocks() {
        let mixed = scenario(
            "token.client-certificate",
            vec![
                check(
                    "dataset-complete",
                    Outcome::Fail,
                    &["nhg:online-inzage.dataset"],
                ),
                check("token-refused", Outcome::Error, &["rfc8705#2"]),
            ],
            None,
        );
        let launch = decide_on(&cell(vec![mixed]), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::NoGo);
        assert!(
            launch
                .reasons
                .iter()
                .any(|r| r.kind == ReasonKind::Unexercised && r.blocking)
        );
        let suite_down = scenario(
            "pgo.wrong-state",
            vec![check("suite", Outcome::Error, &[])],
            None,
        );
        let launch = decide_on(&cell(vec![suite_down]), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::NoGo);
    }

    #[test]
    fn a_family_nothing_exercised_and_an_unclassified_failure_block() {
        let mut c = cell(Vec::new());
        c.scenarios[0].checks.retain(|ch| ch.kind != "saml");
        let launch = decide_on(&c, &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::NoGo);
        assert!(launch.reasons[0].text.contains("SAML"));
        let odd = scenario("x", vec![check("odd", Outcome::Fail, &[])], None);
        let launch = decide_on(&cell(vec![odd]), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::NoGo);
        assert!(
            launch.reasons[0]
                .text
                .contains("credits no catalogued rule")
        );
    }

    #[test]
    fn the_pgo_side_counts_and_reliability_follows_the_setting() {
        let mut state = scenario(
            "pgo.wrong-state",
            vec![check(
                "callback-state",
                Outcome::Fail,
                &["pgo:callback.state"],
            )],
            None,
        );
        state.side = Side::Pgo;
        let launch = decide_on(&cell(vec![state]), &[], "2026-12-01");
        assert_eq!(launch.decision, Decision::NoGo);
        assert!(
            launch.reasons[0]
                .text
                .starts_with("PGO side: pgo.wrong-state")
        );
        let mut c = cell(Vec::new());
        c.reliability.demonstrated = false;
        assert_eq!(
            decide_on(&c, &[], "2026-12-01").decision,
            Decision::GoWithConditions
        );
        let strict = LaunchSettings {
            unreliable: UnreliablePolicy::Blocker,
        };
        assert_eq!(
            decide(&c, &[], strict, day("2026-12-01")).decision,
            Decision::NoGo
        );
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }
}
