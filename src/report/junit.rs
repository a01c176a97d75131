//! `junit.xml`: a testsuite per cell, a testcase per scenario, for CI systems.
//!
//! Mapping: `fail` → `<failure>`, `error` → `<error>`, `unexpected pass` → `<failure>` (the
//! declaration is stale), `expected failure`, `skip` and `omit` → `<skipped>` with the reason.

use super::{RunReport, Verdict};
use crate::outcome::Outcome;

fn esc(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(report: &RunReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let s = &report.summary;
    out.push_str(&format!(
        "<testsuites name=\"koppeltest {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
        esc(&report.matrix.name),
        s.scenarios,
        s.fail + s.unexpected_pass,
        s.error
    ));
    for cell in &report.cells {
        let failures = cell
            .scenarios
            .iter()
            .filter(|x| x.verdict.is_failure())
            .count();
        let errors = cell
            .scenarios
            .iter()
            .filter(|x| x.verdict == Verdict::Error)
            .count();
        let skipped = cell
            .scenarios
            .iter()
            .filter(|x| {
                matches!(
                    x.verdict,
                    Verdict::ExpectedFailure | Verdict::Skip | Verdict::Omit
                )
            })
            .count();
        out.push_str(&format!(
            "  <testsuite name=\"{} × {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
            esc(&cell.row),
            esc(&cell.column),
            cell.scenarios.len(),
            cell.duration_ms as f64 / 1000.0
        ));
        if let Some(tls) = &cell.tls {
            out.push_str("    <properties>\n");
            out.push_str(&format!(
                "      <property name=\"tls\" value=\"{}\"/>\n",
                esc(&tls.line)
            ));
            if let Some(days) = tls.earliest_expiry_days {
                out.push_str(&format!(
                    "      <property name=\"certificate-earliest-expiry-days\" value=\"{days}\"/>\n"
                ));
            }
            out.push_str(&format!(
                "      <property name=\"certificate-expiry-warning-days\" value=\"{}\"/>\n",
                tls.expiry_warning_days
            ));
            out.push_str("    </properties>\n");
        }
        for sc in &cell.scenarios {
            out.push_str(&format!(
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\">",
                esc(&cell.row),
                esc(&cell.column),
                esc(&sc.id),
                sc.duration_ms as f64 / 1000.0
            ));
            let failed: Vec<String> = sc
                .checks
                .iter()
                .filter(|c| c.outcome != Outcome::Pass)
                .map(|c| {
                    format!(
                        "[{}] {} ({}): {}",
                        c.outcome.label(),
                        c.kind,
                        c.requirements.join(", "),
                        c.message
                    )
                })
                .collect();
            let detail = esc(&failed.join("\n"));
            match sc.verdict {
                Verdict::Fail => {
                    let kind = if sc.privacy_failure {
                        "PRIVACY FAILURE: "
                    } else {
                        ""
                    };
                    out.push_str(&format!(
                        "<failure message=\"{kind}{}\">{detail}</failure>",
                        esc(&sc.title)
                    ))
                }
                Verdict::UnexpectedPass => out.push_str(&format!(
                    "<failure message=\"declared known deviation did not occur: {}\"></failure>",
                    esc(sc.known_deviation.as_deref().unwrap_or(""))
                )),
                Verdict::Error => {
                    out.push_str(&format!("<error message=\"no evidence\">{detail}</error>"))
                }
                Verdict::ExpectedFailure => out.push_str(&format!(
                    "<skipped message=\"known deviation: {}\"/>",
                    esc(sc.known_deviation.as_deref().unwrap_or(""))
                )),
                Verdict::Skip | Verdict::Omit => {
                    out.push_str(&format!("<skipped message=\"{}\"/>", sc.verdict.label()))
                }
                // A failed SHOULD passes the suite; the detail stays visible.
                Verdict::Warn => {
                    out.push_str(&format!("<system-out>WARN (SHOULD): {detail}</system-out>"))
                }
                Verdict::Pass => {}
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
