//! `junit.xml`: a testsuite per cell, a testcase per scenario, for CI systems.
//!
//! Mapping: `fail` → `<failure>`, `error` → `<error>`, `unexpected pass` → `<failure>` (the
//! declaration is stale), `expected failure`, `skip` and `omit` → `<skipped>` with the reason,
//! `warn` → a passing testcase whose `<system-out>` holds the failed SHOULD checks. A cell's TLS
//! summary goes into the suite's `<properties>`.
//!
//! The XML is written by `quick-junit` (on quick-xml), which escapes and drops characters XML
//! cannot carry; this module only maps verdicts. It does not decide outcomes.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{RunReport, ScenarioReport, Verdict};
use crate::outcome::Outcome;

/// Every check that did not pass, one per line: what a CI reader needs to see first.
fn detail(sc: &ScenarioReport) -> String {
    sc.checks
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
        .collect::<Vec<_>>()
        .join("\n")
}

fn status(sc: &ScenarioReport) -> (TestCaseStatus, Option<String>) {
    let detail = detail(sc);
    let with = |kind: Option<NonSuccessKind>, message: String, description: Option<String>| {
        let mut status = match kind {
            Some(kind) => TestCaseStatus::non_success(kind),
            None => TestCaseStatus::skipped(),
        };
        status.set_message(message);
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            status.set_description(d);
        }
        status
    };
    let declared = sc.known_deviation.as_deref().unwrap_or("");
    match sc.verdict {
        Verdict::Fail => {
            let kind = if sc.privacy_failure {
                "PRIVACY FAILURE: "
            } else {
                ""
            };
            let message = format!("{kind}{}", sc.title);
            (
                with(Some(NonSuccessKind::Failure), message, Some(detail)),
                None,
            )
        }
        Verdict::Flaky => {
            let rate = sc.repeat.as_ref().map(|r| r.line()).unwrap_or_default();
            (
                with(
                    Some(NonSuccessKind::Failure),
                    format!("FLAKY ({rate}): {}", sc.title),
                    Some(detail),
                ),
                None,
            )
        }
        Verdict::UnexpectedPass => (
            with(
                Some(NonSuccessKind::Failure),
                format!("declared known deviation did not occur: {declared}"),
                None,
            ),
            None,
        ),
        Verdict::Error => (
            with(
                Some(NonSuccessKind::Error),
                "no evidence".into(),
                Some(detail),
            ),
            None,
        ),
        Verdict::ExpectedFailure => (
            with(None, format!("known deviation: {declared}"), None),
            None,
        ),
        Verdict::Skip | Verdict::Omit => (with(None, sc.verdict.label().into(), None), None),
        // A failed SHOULD passes the suite; the detail stays visible.
        Verdict::Warn => (
            TestCaseStatus::success(),
            Some(format!("WARN (SHOULD): {detail}")),
        ),
        Verdict::Pass => (TestCaseStatus::success(), None),
    }
}

pub fn render(report: &RunReport) -> String {
    let mut junit = Report::new(format!("koppeltest {}", report.matrix.name));
    for cell in &report.cells {
        let mut suite = TestSuite::new(format!("{} × {}", cell.row, cell.column));
        suite.set_time(Duration::from_millis(cell.duration_ms));
        if let Some(tls) = &cell.tls {
            suite.add_property(Property::new("tls", tls.line.as_str()));
            if let Some(days) = tls.earliest_expiry_days {
                suite.add_property(Property::new(
                    "certificate-earliest-expiry-days",
                    days.to_string(),
                ));
            }
            suite.add_property(Property::new(
                "certificate-expiry-warning-days",
                tls.expiry_warning_days.to_string(),
            ));
        }
        suite.add_property(Property::new("reliability", cell.reliability.line.as_str()));
        if let Some(launch) = &cell.launch {
            suite.add_property(Property::new("launch", launch.line()));
        }
        for side in &cell.sides {
            suite.add_property(Property::new(
                format!("{}-side", side.side.label().to_lowercase()),
                side.line(),
            ));
        }
        for sc in &cell.scenarios {
            let (status, out) = status(sc);
            let mut case = TestCase::new(sc.id.as_str(), status);
            // The PGO side's scenarios are the column's PGO's: their class says so.
            case.set_classname(match sc.side {
                crate::report::Side::Dva => format!("{}.{}", cell.row, cell.column),
                crate::report::Side::Pgo => format!("{}.{}.pgo", cell.row, cell.column),
            });
            case.set_time(Duration::from_millis(sc.duration_ms));
            if let Some(out) = out {
                case.set_system_out(out);
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        .expect("quick-junit writes into a String, which cannot fail")
}
