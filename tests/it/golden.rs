//! Golden tests of every sink (terminal summary, `junit.xml`, `report.json`, the HTML's
//! structure) and of the simulated DVA's key answers, as insta snapshots in `snapshots/`.
//!
//! The input is one real run: the conformant simulated DVA × one PGO column × four scenarios
//! (a full flow, a refused authorization request, a replayed code, a resource request without a
//! token), with a known deviation declared on a scenario that passes, so that the stale
//! declaration path is real too. What differs from run to run (run id, timestamps, durations,
//! ports, random ids, certificates, fingerprints) is redacted or filtered by insta; everything
//! else is what the sinks really wrote.
//!
//! After a deliberate change to a sink: `INSTA_UPDATE=always cargo test --test it golden`, then
//! read the changed `.snap` files before committing them. Under `CI=true` insta writes nothing,
//! so a missing or different snapshot fails the build.

use std::sync::{Arc, OnceLock};

use koppeltest::report::{self, RunReport};
use koppeltest::runner::{self, Finished, Prepared};
use koppeltest::scenario;
use serde_json::Value;

use crate::helpers::{matrix_toml, prepare};

const SCENARIOS: [&str; 4] = [
    "flow.happy-path",
    "auth.missing-state",
    "token.code-replay",
    "fhir.missing-token",
];

/// Declared on a scenario the conformant DVA passes: reported as an unexpected pass (STALE).
const STALE: (&str, &str) = (
    "fhir.missing-token",
    "golden: declared on purpose, the conformant DVA refuses the request",
);

struct Golden {
    prepared: Arc<Prepared>,
    finished: Vec<Finished>,
    report: RunReport,
    /// Where `report::write_all` wrote the reports of the run.
    dir: std::path::PathBuf,
}

/// The one run every golden test reads (the test binary's threads share it).
fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let scenarios: Vec<_> = scenario::embedded()
            .expect("scenarios")
            .into_iter()
            .filter(|s| SCENARIOS.contains(&s.id.as_str()))
            .collect();
        assert_eq!(
            scenarios.len(),
            SCENARIOS.len(),
            "a golden scenario is gone"
        );
        let prepared = prepare(&matrix_toml(&[], &[STALE], "2.2"), scenarios);
        let finished = tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(crate::helpers::run(prepared.clone()));
        let mut report = runner::build_report(
            &prepared,
            "golden-run",
            "2026-01-01T00:00:00Z",
            &finished,
            false,
        );
        let dir = crate::helpers::temp_dir("golden");
        report::write_all(&mut report, &dir).expect("the reports are written");
        Golden {
            prepared,
            finished,
            report,
            dir,
        }
    })
}

/// Filters for what varies between runs in text output: loopback ports, durations, times.
fn text_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"(https?://[A-Za-z0-9.\-]+):\d+", "$1:[port]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r#"time="\d+\.\d+""#, r#"time="[s]""#),
        (r"\b\d+ ms\b", "[n] ms"),
        (
            r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "[uuid]",
        ),
        // State and RelayState values and SAML ids: random hex (where nine of its digits
        // happen to pass the 11-check, the redactor has put a [bsn] label into it).
        (
            r"\b((?:state|RelayState)=)(?:[0-9a-f]|\[bsn\])+",
            "$1[random]",
        ),
        (r"\b_[0-9a-f]{16,}\b", "_[id]"),
        // Certificate fingerprints: the test PKI is generated per run.
        (r"(SHA-256 )[0-9a-f]+", "$1[fingerprint]"),
        // Fixture dates and FHIR search dates are relative to the run date.
        (r"\d{4}-\d\d-\d\d", "[date]"),
        (
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
            "[timestamp]",
        ),
    ]
}

fn with_text_filters(f: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in text_filters() {
        settings.add_filter(pattern, replacement);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(f);
}

#[test]
fn golden_run_is_what_the_snapshots_describe() {
    // The snapshots below rest on these verdicts; say so plainly when the run itself changed.
    let g = golden();
    let mut verdicts: Vec<(String, &str)> = g.report.cells[0]
        .scenarios
        .iter()
        .map(|s| (s.id.clone(), s.verdict.label()))
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        [
            ("auth.missing-state".to_string(), "pass"),
            ("fhir.missing-token".to_string(), "unexpected pass"),
            ("flow.happy-path".to_string(), "pass"),
            ("token.code-replay".to_string(), "pass"),
        ]
    );
}

#[test]
fn golden_terminal() {
    let g = golden();
    with_text_filters(|| {
        insta::assert_snapshot!(
            "terminal",
            report::terminal::render(&g.report, "reports/golden-run")
        );
    });
}

#[test]
fn golden_junit() {
    let g = golden();
    with_text_filters(|| {
        insta::assert_snapshot!("junit", report::junit::render(&g.report));
    });
}

/// Header names only: values carry dates, cookies and lengths that differ per run.
fn header_names(value: insta::internals::Content) -> String {
    let names: Vec<String> = value
        .as_slice()
        .unwrap_or_default()
        .iter()
        .filter_map(|pair| pair.as_slice().and_then(|p| p.first()?.as_str()))
        .map(str::to_ascii_lowercase)
        .collect();
    names.join(", ")
}

#[test]
fn golden_report_json() {
    let g = golden();
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    for (pattern, replacement) in text_filters() {
        settings.add_filter(pattern, replacement);
    }
    settings.bind(|| {
        // report.json as written: the exchanges are in files of their own, referenced.
        let written: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(g.dir.join("report.json")).expect("report.json"),
        )
        .expect("report.json is JSON");
        insta::assert_json_snapshot!("report", written, {
            ".run_id" => "[run-id]",
            ".started_at" => "[timestamp]",
            ".finished_at" => "[timestamp]",
            ".koppeltest_version" => "[version]",
            ".cells[].duration_ms" => "[ms]",
            ".cells[].timing.token_max_ms" => "[ms]",
            ".cells[].timing.resource_max_ms" => "[ms]",
            ".cells[].scenarios[].duration_ms" => "[ms]",
            ".cells[].scenarios[].steps[].duration_ms" => "[ms]",
        });
    });
}

#[test]
fn golden_exchange_files() {
    let g = golden();
    // The files report.json references, as written: every scenario's exchanges.
    let files: Vec<serde_json::Value> = g.report.cells[0]
        .scenarios
        .iter()
        .map(|s| {
            let path = s.exchanges_file.as_deref().expect("an exchanges file");
            let exchanges: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(g.dir.join(path)).unwrap()).unwrap();
            assert_eq!(exchanges.as_array().unwrap().len(), s.exchange_count);
            serde_json::json!({ "file": path, "exchanges": exchanges })
        })
        .collect();
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    for (pattern, replacement) in text_filters() {
        settings.add_filter(pattern, replacement);
    }
    settings.bind(|| {
        insta::assert_json_snapshot!("exchange-files", files, {
            "[].exchanges[].elapsed_ms" => "[ms]",
            "[].exchanges[].recorded_at" => "[timestamp]",
            "[].exchanges[].client_certificate.sha256" => "[fingerprint]",
            "[].exchanges[].request_headers" => insta::dynamic_redaction(|v, _| header_names(v)),
            "[].exchanges[].response_headers" => insta::dynamic_redaction(|v, _| header_names(v)),
            // The bodies hold SAML ids, instants, signatures and whole FHIR Bundles; the DVA's
            // answers have outlines of their own below.
            "[].exchanges[].request_body" => "[body]",
            "[].exchanges[].response_body" => "[body]",
        });
    });
}

/// The page's structure without its contents: headings, section ids, each table's class and
/// header, each row's cells as tag and class, scenario badges, and how many exchanges each
/// scenario's exchanges page (relative to `dir`, the page's folder) holds. Text appears only
/// where it is a label of the structure.
fn html_outline(html: &str, dir: &std::path::Path) -> String {
    use scraper::{ElementRef, Html};
    fn classes(e: &ElementRef) -> String {
        e.value().classes().map(|c| format!(".{c}")).collect()
    }
    fn text(e: &ElementRef) -> String {
        e.text()
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn walk(e: ElementRef, depth: usize, dir: &std::path::Path, out: &mut Vec<String>) {
        let pad = "  ".repeat(depth);
        let name = e.value().name();
        let mut deeper = depth;
        match name {
            "h1" | "h2" | "h3" => out.push(format!("{pad}{name}: {}", text(&e))),
            "section" => {
                out.push(format!("{pad}section#{}", e.value().id().unwrap_or("")));
                deeper += 1;
            }
            "table" => {
                out.push(format!("{pad}table{}", classes(&e)));
                deeper += 1;
            }
            "tr" => {
                let cells: Vec<String> = e
                    .children()
                    .filter_map(ElementRef::wrap)
                    .map(|c| {
                        let label = if c.value().name() == "th" {
                            format!("({})", text(&c))
                        } else {
                            String::new()
                        };
                        format!("{}{}{label}", c.value().name(), classes(&c))
                    })
                    .collect();
                out.push(format!("{pad}tr: {}", cells.join(" | ")));
                return;
            }
            "div" if e.value().classes().any(|c| c == "scenario") => {
                let badge = e
                    .select(&scraper::Selector::parse("summary .badge").unwrap())
                    .next()
                    .map(|b| classes(&b))
                    .unwrap_or_default();
                let id = e
                    .select(&scraper::Selector::parse("summary strong").unwrap())
                    .next()
                    .map(|s| text(&s))
                    .unwrap_or_default();
                // The exchanges are on a page of their own: each one anchored there.
                let exchanges = e
                    .select(&scraper::Selector::parse("a.exchanges").unwrap())
                    .next()
                    .and_then(|a| a.value().attr("href"))
                    .map_or(0, |href| {
                        let page = std::fs::read_to_string(dir.join(href))
                            .unwrap_or_else(|e| panic!("the exchanges page {href}: {e}"));
                        Html::parse_document(&page)
                            .select(&scraper::Selector::parse("details[id^=\"x-\"]").unwrap())
                            .count()
                    });
                out.push(format!(
                    "{pad}scenario {id} badge{badge} exchanges={exchanges}"
                ));
                deeper += 1;
            }
            "details" if e.value().id().is_some_and(|id| id.starts_with("x-")) => return,
            _ => {}
        }
        for child in e.children().filter_map(ElementRef::wrap) {
            walk(child, deeper, dir, out);
        }
    }
    let doc = Html::parse_document(html);
    let mut out = Vec::new();
    walk(doc.root_element(), 0, dir, &mut out);
    out.join("\n")
}

#[test]
fn golden_html_outline() {
    let g = golden();
    let html = std::fs::read_to_string(g.dir.join("matrix.html")).expect("matrix.html");
    with_text_filters(|| insta::assert_snapshot!("html-outline", html_outline(&html, &g.dir)));
    // The cell's own page: its scenarios, checks and exchanges.
    let page = g.report.cells[0]
        .page
        .as_deref()
        .expect("the cell has a page");
    let page = g.dir.join(page);
    let html = std::fs::read_to_string(&page).expect("the cell page");
    let dir = page.parent().expect("the cell's folder");
    with_text_filters(|| insta::assert_snapshot!("html-cell-outline", html_outline(&html, dir)));
}

/// An XML document's elements and attributes, indented; certificates and signature values
/// (random keys) shown as their length class only.
fn xml_outline(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    let mut out = Vec::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        let depth = node.ancestors().filter(|a| a.is_element()).count() - 1;
        let mut line = format!("{}{}", "  ".repeat(depth), node.tag_name().name());
        for a in node.attributes() {
            line.push_str(&format!(" {}=\"{}\"", a.name(), a.value()));
        }
        let own: String = node
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect::<String>()
            .trim()
            .to_string();
        if !own.is_empty() {
            let base64 = own.len() > 64
                && own
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=\n\r ".contains(c));
            line.push_str(&format!(
                ": {}",
                if base64 { "[base64]".to_string() } else { own }
            ));
        }
        out.push(line);
    }
    out.join("\n")
}

/// A JSON value with every scalar replaced by its type, except the strings and numbers in
/// `keep` (by key), which say what the answer is.
fn json_shape(value: &Value, keep: &[&str]) -> Value {
    fn go(v: &Value, keep: &[&str], key: Option<&str>) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), go(v, keep, Some(k))))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|v| go(v, keep, key)).collect()),
            _ if key.is_some_and(|k| keep.contains(&k)) => v.clone(),
            Value::String(_) => Value::String("<string>".into()),
            Value::Number(_) => Value::String("<number>".into()),
            Value::Bool(_) => Value::String("<bool>".into()),
            Value::Null => Value::Null,
        }
    }
    go(value, keep, None)
}

fn exchanges_of(g: &Golden, scenario: &str) -> Vec<koppeltest::exchange::Exchange> {
    g.finished
        .iter()
        .find(|f| f.report.id == scenario)
        .expect("scenario ran")
        .report
        .exchanges
        .clone()
}

fn header<'a>(x: &'a koppeltest::exchange::Exchange, name: &str) -> Option<&'a str> {
    x.response_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn golden_dva_sp_metadata() {
    let g = golden();
    let cfg = runner::dva_config(&g.prepared, &g.prepared.rows[0]).expect("simulated row");
    let metadata = cfg.metadata(&g.prepared.pki).expect("SP metadata");
    with_text_filters(|| insta::assert_snapshot!("dva-sp-metadata", xml_outline(&metadata)));
}

#[test]
fn golden_dva_answers() {
    let g = golden();
    let mut answers = serde_json::Map::new();

    // A refused authorization request: the redirect back to the PGO with the error.
    let missing_state = exchanges_of(g, "auth.missing-state");
    let redirect = missing_state
        .iter()
        .find(|x| header(x, "location").is_some_and(|l| l.contains("error=")))
        .expect("an error redirect");
    let location = url::Url::parse(header(redirect, "location").unwrap()).expect("Location");
    answers.insert(
        "authorization error redirect".into(),
        serde_json::json!({
            "status": redirect.status,
            "location": format!("{}://{}{}", location.scheme(), location.host_str().unwrap_or(""), location.path()),
            "query": location.query_pairs().map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect::<serde_json::Map<_, _>>(),
        }),
    );

    // The token endpoint: a conformant answer (shape) and the answer to a replayed code.
    let replay = exchanges_of(g, "token.code-replay");
    let tokens: Vec<_> = replay
        .iter()
        .filter(|x| x.url.ends_with("/oauth/token") && x.status.is_some())
        .collect();
    let answer = |x: &koppeltest::exchange::Exchange, keep: &[&str]| {
        let body: Value = serde_json::from_str(x.response_body.as_deref().unwrap_or(""))
            .expect("a JSON token answer");
        serde_json::json!({
            "status": x.status,
            "content-type": header(x, "content-type"),
            "cache-control": header(x, "cache-control"),
            "body": json_shape(&body, keep),
        })
    };
    let ok = tokens
        .iter()
        .find(|x| x.status == Some(200))
        .expect("a token");
    answers.insert(
        "token response".into(),
        answer(ok, &["token_type", "expires_in", "scope"]),
    );
    let refused = tokens
        .iter()
        .find(|x| x.status != Some(200))
        .expect("a refusal");
    answers.insert(
        "token error for a replayed code".into(),
        answer(refused, &["error"]),
    );

    // A FHIR searchset: the Bundle's outline (types, links, entries' types and profiles).
    let flow = exchanges_of(g, "flow.happy-path");
    let search = flow
        .iter()
        .find(|x| x.url.contains("/fhir/MedicationStatement") || x.url.contains("/fhir/Medication"))
        .or_else(|| {
            flow.iter()
                .find(|x| x.url.contains("/fhir/") && x.status == Some(200))
        })
        .expect("a FHIR search");
    let bundle: Value =
        serde_json::from_str(search.response_body.as_deref().unwrap_or("")).expect("a Bundle");
    let entries: Vec<Value> = bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    serde_json::json!({
                        "resourceType": e["resource"]["resourceType"],
                        "profile": e["resource"]["meta"]["profile"],
                        "search.mode": e["search"]["mode"],
                        "fullUrl": e["fullUrl"].is_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    answers.insert(
        "FHIR searchset".into(),
        serde_json::json!({
            "request": search.url,
            "status": search.status,
            "content-type": header(search, "content-type"),
            "resourceType": bundle["resourceType"],
            "type": bundle["type"],
            "total": bundle["total"],
            "link": bundle["link"].as_array().map(|l| l.iter().map(|l| l["relation"].clone()).collect::<Vec<_>>()),
            "entry": entries,
        }),
    );

    with_text_filters(|| insta::assert_json_snapshot!("dva-answers", Value::Object(answers)));
}
