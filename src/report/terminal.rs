//! The matrix summary on the terminal: one line per HIS row, one column per PGO.

use super::{RunReport, Verdict};

fn symbol(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::ExpectedFailure => "PASS*",
        Verdict::UnexpectedPass => "STALE",
        Verdict::Fail => "FAIL",
        Verdict::Warn => "WARN",
        Verdict::Error => "ERROR",
        Verdict::Skip => "SKIP",
        Verdict::Omit => "OMIT",
        Verdict::Flaky => "FLAKY",
    }
}

pub fn render(report: &RunReport, report_dir: &str) -> String {
    let m = &report.matrix;
    let first = m
        .rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max("HIS \\ PGO".len())
        + 2;
    let width = m
        .columns
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(6)
        .max(6)
        + 2;
    let mut out = format!("\n{}\n\n{:first$}", m.name, "HIS \\ PGO");
    for c in &m.columns {
        out.push_str(&format!("{:width$}", c.id));
    }
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    out.push('\n');
    for r in &m.rows {
        out.push_str(&format!("{:first$}", r.name));
        for c in &m.columns {
            let cell = report
                .cells
                .iter()
                .find(|x| x.row == r.id && x.column == c.id);
            let text = match cell {
                Some(x) if x.privacy_failures > 0 => "PRIVACY",
                Some(x) => symbol(x.verdict),
                None => "-",
            };
            out.push_str(&format!("{text:width$}"));
        }
        // No trailing padding: the table is pasted into tickets and chat.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out.push_str(&launch_lines(report));
    out.push_str(&tls_lines(report));
    out.push_str(&side_lines(report));
    out.push_str(&reliability_lines(report));
    let s = &report.summary;
    out.push_str(&format!(
        "\n{} scenarios in {} cells: {} passed, {} failed, {} warnings, {} expected failures, {} unexpected passes, {} errors, {} skipped{}\n",
        s.scenarios, s.cells, s.pass, s.fail, s.warn, s.expected_failure, s.unexpected_pass, s.error, s.skip + s.omit,
        if s.flaky > 0 { format!(", {} flaky", s.flaky) } else { String::new() }
    ));
    out.push_str("PASS* = passed except for declared known deviations; STALE = a declared deviation did not occur; WARN = failed a SHOULD only\n");
    if s.flaky > 0 {
        out.push_str(
            "FLAKY = over --repeat, passed some runs and failed or errored in others: a failure\n",
        );
    }
    out.push_str(&record_lines(report));
    if s.privacy_failures > 0 {
        out.push_str(&format!(
            "\n!!! PRIVACY: {} scenario(s) shared what the patient must not see (see PRIVACY below) !!!\n",
            s.privacy_failures
        ));
        for cell in &report.cells {
            for sc in cell.scenarios.iter().filter(|x| x.privacy_failure) {
                let declared = if sc.known_deviation.is_some() {
                    " (declared known deviation)"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  PRIVACY {} × {}: {}{declared}\n",
                    cell.row, cell.column, sc.id
                ));
                for c in sc.checks.iter().filter(|c| c.privacy) {
                    out.push_str(&format!("      {}: {}\n", c.step, c.message));
                }
            }
        }
    }
    for cell in &report.cells {
        for sc in cell.scenarios.iter().filter(|x| {
            x.verdict.is_failure() || matches!(x.verdict, Verdict::Error | Verdict::Warn)
        }) {
            let runs = match &sc.repeat {
                Some(r) if r.runs > 1 => format!(" ({})", r.line()),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {} {} × {}: {} — {}{runs}\n",
                symbol(sc.verdict),
                cell.row,
                cell.column,
                sc.id,
                sc.title
            ));
            for c in sc
                .checks
                .iter()
                .filter(|c| c.outcome != crate::outcome::Outcome::Pass)
            {
                out.push_str(&format!(
                    "      {} [{}]: {}\n",
                    c.kind,
                    c.requirements.join(", "),
                    c.message
                ));
            }
        }
    }
    out.push_str(&snapshot_lines(report));
    if report.interrupted {
        out.push_str("\nINTERRUPTED: the reports hold only the scenarios that finished.\n");
    }
    out.push_str(&format!(
        "\nReports: {report_dir}/report.json, junit.xml, matrix.html (exit code {})\n",
        s.exit_code
    ));
    out
}

/// Drift, next to the verdicts: the counts, each changed or missing snapshot (a few; new ones
/// only counted), and where the pending files are.
fn snapshot_lines(report: &RunReport) -> String {
    use crate::snapshot::{DriftState, Mode};
    let Some(s) = &report.snapshots else {
        return String::new();
    };
    let mut out = format!(
        "\nSnapshots ({}): {} unchanged, {} changed, {} new, {} missing{}\n",
        s.dir,
        s.unchanged,
        s.changed,
        s.new,
        s.missing.len(),
        if s.mode == Mode::Strict && s.drifted() > 0 {
            " (--snapshots strict: drift fails the run)"
        } else {
            ""
        }
    );
    const SHOWN: usize = 10;
    let drifted: Vec<String> = report
        .cells
        .iter()
        .flat_map(|c| {
            c.scenarios.iter().filter_map(move |sc| {
                let d = sc.drift.as_ref()?;
                (d.state == DriftState::Changed).then(|| {
                    format!(
                        "  {:9} {} × {}: {}",
                        d.state.label(),
                        c.row,
                        c.column,
                        sc.id
                    )
                })
            })
        })
        .chain(s.missing.iter().map(|m| format!("  missing   {m}")))
        .collect();
    for line in drifted.iter().take(SHOWN) {
        out.push_str(line);
        out.push('\n');
    }
    if drifted.len() > SHOWN {
        out.push_str(&format!(
            "  … and {} more (matrix.html shows every diff)\n",
            drifted.len() - SHOWN
        ));
    }
    if s.pending_written > 0 {
        // The folder the `snapshots` commands need, when it is not their default.
        let dir = std::path::Path::new(&s.dir)
            .parent()
            .filter(|p| *p != std::path::Path::new("snapshots"))
            .map(|p| format!(" --dir {}", p.display()))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} pending .snap.new written: koppeltest snapshots review{dir} (or accept / reject)\n",
            s.pending_written
        ));
    } else if let Some(note) = s.pending_note.as_ref().filter(|_| s.drifted() > 0) {
        out.push_str(&format!("  no pending files written ({note})\n"));
    }
    for e in &s.write_errors {
        out.push_str(&format!("  could not write: {e}\n"));
    }
    out
}

/// The GP record by category: one line when every judged category is complete everywhere,
/// otherwise a line per cell naming what is missing and what leaked.
fn record_lines(report: &RunReport) -> String {
    use crate::report::CategoryStatus;
    let judged = report.cells.iter().flat_map(|c| &c.dataset).any(|d| {
        d.status != CategoryStatus::NotTested && d.status != CategoryStatus::NotExchangeable
    });
    if !judged {
        return String::new();
    }
    let not_exchangeable: Vec<&str> = report
        .cells
        .first()
        .into_iter()
        .flat_map(|c| &c.dataset)
        .filter(|d| d.status == CategoryStatus::NotExchangeable)
        .map(|d| d.category.as_str())
        .collect();
    let mut lines = Vec::new();
    for cell in &report.cells {
        let mut parts = Vec::new();
        for d in &cell.dataset {
            let items = |items: Vec<&str>, count: usize| crate::checks::some_of(items, count, ", ");
            match d.status {
                CategoryStatus::Leaked => parts.push(format!(
                    "LEAKED in {}: {}",
                    d.category,
                    items(
                        d.leaked.iter().map(|l| l.item.as_str()).collect(),
                        d.leaked.len()
                    )
                )),
                CategoryStatus::Missing => parts.push(format!(
                    "missing in {}: {}",
                    d.category,
                    items(
                        d.missing.iter().map(String::as_str).collect(),
                        d.missing_count
                    )
                )),
                CategoryStatus::Error => parts.push(format!("no evidence for {}", d.category)),
                _ => {}
            }
            if d.status == CategoryStatus::Leaked && d.missing_count > 0 {
                parts.push(format!(
                    "missing in {}: {}",
                    d.category,
                    items(
                        d.missing.iter().map(String::as_str).collect(),
                        d.missing_count
                    )
                ));
            }
        }
        if !parts.is_empty() {
            lines.push(format!(
                "  GP record {} × {}: {}\n",
                cell.row,
                cell.column,
                parts.join("; ")
            ));
        }
    }
    let mut out = if lines.is_empty() {
        "GP record: every tested category complete in every cell, nothing shared that must not be"
            .to_string()
    } else {
        "GP record: incomplete or leaking in some cells (below)".to_string()
    };
    if !not_exchangeable.is_empty() {
        out.push_str(&format!(
            "; {} not exchangeable in gegevensdienst 49",
            not_exchangeable.join(" and ").to_lowercase()
        ));
    }
    out.push('\n');
    out.extend(lines);
    out
}

/// The launch decision per cell, with its blockers (the first three) named.
fn launch_lines(report: &RunReport) -> String {
    let mut decided = report
        .cells
        .iter()
        .filter_map(|c| c.launch.as_ref().map(|l| (c, l)));
    let Some((_, first)) = decided.clone().next() else {
        return String::new();
    };
    let mut out = format!(
        "\nLaunch decision as of {} (koppeltest launch; blockers need a [[his.waiver]]):\n",
        first.decided_on
    );
    for (cell, launch) in decided.by_ref() {
        out.push_str(&format!(
            "  {} × {}: {}\n",
            cell.row,
            cell.column,
            launch.line()
        ));
        let blockers: Vec<&crate::launch::Reason> =
            launch.reasons.iter().filter(|r| r.blocking).collect();
        for r in blockers.iter().take(3) {
            out.push_str(&format!("      blocker: {}\n", r.text));
        }
        if blockers.len() > 3 {
            out.push_str(&format!(
                "      … and {} more blockers\n",
                blockers.len() - 3
            ));
        }
    }
    out
}

/// One line per cell with a soak; one line in all when no cell has one.
fn reliability_lines(report: &RunReport) -> String {
    if report.cells.is_empty() {
        return String::new();
    }
    if report.cells.iter().all(|c| c.reliability.soak_id.is_none()) {
        // All say the same: no soak.
        let line = &report.cells[0].reliability.line;
        return format!("\nReliability: {line}\n");
    }
    let mut out = "\nReliability (koppeltest soak):\n".to_string();
    for cell in &report.cells {
        out.push_str(&format!(
            "{}{} × {}: {}\n",
            if cell.reliability.demonstrated {
                "  "
            } else {
                "! "
            },
            cell.row,
            cell.column,
            cell.reliability.line
        ));
    }
    out
}

/// A line per cell with a TLS scan: versions, worst NCSC class, days to the earliest expiry.
fn tls_lines(report: &RunReport) -> String {
    let mut out = String::new();
    for cell in report.cells.iter() {
        if let Some(tls) = &cell.tls {
            if out.is_empty() {
                out.push_str(&format!(
                    "\nTLS ({} decides; certificates warned below {} days):\n",
                    tls.edition, tls.expiry_warning_days
                ));
            }
            out.push_str(&format!(
                "{}{} × {}: {}\n",
                if tls.expiry_warning { "! " } else { "  " },
                cell.row,
                cell.column,
                tls.line
            ));
        }
    }
    out
}

/// For cells that judge both sides (an external PGO column): which side failed what.
fn side_lines(report: &RunReport) -> String {
    let mut out = String::new();
    for cell in report.cells.iter().filter(|c| !c.sides.is_empty()) {
        out.push_str(&format!("\n{} × {}:\n", cell.row, cell.column));
        for side in &cell.sides {
            out.push_str(&format!("  {}\n", side.line()));
        }
    }
    out
}
