//! The matrix summary on the terminal: one line per HIS row, one column per PGO.

use super::{RunReport, Verdict};

fn symbol(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::ExpectedFailure => "PASS*",
        Verdict::UnexpectedPass => "STALE",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
        Verdict::Skip => "SKIP",
        Verdict::Omit => "OMIT",
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
    let s = &report.summary;
    out.push_str(&format!(
        "\n{} scenarios in {} cells: {} passed, {} failed, {} expected failures, {} unexpected passes, {} errors, {} skipped\n",
        s.scenarios, s.cells, s.pass, s.fail, s.expected_failure, s.unexpected_pass, s.error, s.skip + s.omit
    ));
    out.push_str("PASS* = passed except for declared known deviations; STALE = a declared deviation did not occur\n");
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
        for sc in cell
            .scenarios
            .iter()
            .filter(|x| x.verdict.is_failure() || x.verdict == Verdict::Error)
        {
            out.push_str(&format!(
                "  {} {} × {}: {} — {}\n",
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
    if report.interrupted {
        out.push_str("\nINTERRUPTED: the reports hold only the scenarios that finished.\n");
    }
    out.push_str(&format!(
        "\nReports: {report_dir}/report.json, junit.xml, matrix.html (exit code {})\n",
        s.exit_code
    ));
    out
}
