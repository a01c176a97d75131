//! FHIR responses as the judge reads them: `checks::evaluate` for every check the scenarios
//! make on a FHIR step (searchset shape and profiles, paging, references, codings, profile
//! validation, dataset completeness, BSNs in links and bundles), over a response body from the
//! input.
//!
//! The first byte picks the check; the rest is the body, NUL bytes separating further pages
//! (reached through `next` links in a real run).
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use koppeltest::checks::{self, Budgets, Context, LabWindowPolicy, SamlExpectations, TlsPolicy};
use koppeltest::fixtures::{EMBEDDED_MANIFEST, Manifest};
use koppeltest::scenario::{CheckSpec, Scenario, Step};
use koppeltest::steps::{HttpOutcome, HttpResult, StepResult};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    /// (scenario index, check index) of every check on a FHIR step.
    checks: Vec<(usize, usize)>,
    scenarios: Vec<Scenario>,
    manifest: Manifest,
    budgets: Budgets,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let scenarios = koppeltest::scenario::embedded().expect("the embedded scenarios parse");
    let (path, text) = EMBEDDED_MANIFEST;
    let manifest = Manifest::parse(path, text).expect("the embedded manifest parses");
    let mut checks = Vec::new();
    for (si, s) in scenarios.iter().enumerate() {
        for (ci, c) in s.checks.iter().enumerate() {
            if fhir_steps(s).any(|id| id == c.step()) {
                checks.push((si, ci));
            }
        }
    }
    assert!(!checks.is_empty(), "the scenarios judge FHIR steps");
    Fixture {
        checks,
        scenarios,
        manifest,
        budgets: Budgets::default(),
    }
});

fn fhir_steps(s: &Scenario) -> impl Iterator<Item = &str> {
    s.steps.iter().filter_map(|step| match step {
        Step::Fhir(f) => Some(f.id.as_str()),
        _ => None,
    })
}

fn page(body: &str, seq: usize) -> HttpResult {
    let mut h = HttpResult::broken(String::new());
    h.seq = Some(seq);
    h.elapsed_ms = 5;
    h.outcome = HttpOutcome::Response {
        status: 200,
        headers: vec![("content-type".into(), "application/fhir+json".into())],
        body: body.to_string(),
    };
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let f = &*FIXTURE;
    let (si, ci) = f.checks[usize::from(pick) % f.checks.len()];
    let (scenario, spec): (&Scenario, &CheckSpec) = (&f.scenarios[si], &f.scenarios[si].checks[ci]);
    let mut bodies = text.split('\0');
    let mut first = page(bodies.next().unwrap_or(""), 1);
    first.pages = bodies.enumerate().map(|(n, b)| page(b, n + 2)).collect();
    // Every FHIR step of the scenario answered with the same response, so checks that look
    // across steps (references) read fuzzed data too.
    let results: BTreeMap<String, StepResult> = fhir_steps(scenario)
        .map(|id| (id.to_string(), StepResult::Http(first.clone())))
        .collect();
    let tls = TlsPolicy::default();
    let saml = SamlExpectations::default();
    let gegevensdiensten = ["49".to_string()];
    let ctx = Context {
        budgets: &f.budgets,
        manifest: &f.manifest,
        bsn: scenario.tvs.bsn.as_deref().unwrap_or("999910048"),
        lab_window: LabWindowPolicy::default(),
        lab_date_filter: false,
        exchanges: &[],
        gegevensdiensten: &gegevensdiensten,
        tls: &tls,
        saml: &saml,
    };
    let _ = checks::evaluate(spec, scenario, &results, &ctx);
});
