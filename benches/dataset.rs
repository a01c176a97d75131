//! The GP record at scale: resources fetched and validated per second, and peak memory.
//!
//! Two measurements, each the median of several samples:
//! - **validation**: koppeltest's profile schemas (`schemas/fhir/`) applied to the 10,025 lab
//!   results of the generated large record, in memory;
//! - **end to end**: the `dataset.large-record` scenario against the conformant simulated DVA:
//!   authorization, token, the results query followed through 100 pages over mutual TLS, and
//!   every check (paging, completeness against the manifest, profiles, codings, no BSN).
//!
//! Then the process's peak resident memory. `cargo bench --bench dataset`; nothing is asserted
//! about time.

mod common;

use std::time::Instant;

use koppeltest::outcome::Outcome;
use koppeltest::profiles::{Profiles, Validation};

const SAMPLES: usize = 5;
const LARGE_RECORD_BSN: &str = "999910012";

fn main() {
    let store = koppeltest::fixtures::PatientStore::embedded().expect("fixtures");
    let record = store.get(LARGE_RECORD_BSN).expect("the large record");
    let labs: Vec<_> = record.of_type("Observation").collect();
    let profiles = Profiles::embedded();
    let mut rates = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let valid = labs
            .iter()
            .filter(|r| profiles.validate(r) == Validation::Valid)
            .count();
        assert_eq!(valid, labs.len(), "the generated record must be valid");
        rates.push(labs.len() as f64 / started.elapsed().as_secs_f64());
    }
    let (lo, hi) = common::range(&rates);
    println!(
        "validation: median {:9.0} resources/s (min {lo:.0}, max {hi:.0}; {} resources, {SAMPLES} samples)",
        common::median(rates),
        labs.len()
    );

    let prepared = common::prepared("dataset.large-record");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut rates = Vec::new();
    let mut seconds = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let (report, _) = rt.block_on(koppeltest::runner::run_scenario(&prepared, 0, 0, 0));
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(
            report.outcome,
            Outcome::Pass,
            "the large record must pass: {:?}",
            report.checks
        );
        // The 10,000 expected results plus the Patient-less query's nothing else: every one
        // fetched, compared with the manifest and validated.
        rates.push(10_000.0 / elapsed);
        seconds.push(elapsed);
    }
    let (lo, hi) = common::range(&rates);
    println!(
        "end to end: median {:9.0} resources/s (min {lo:.0}, max {hi:.0}; {:.2} s per 10,000-result record, {SAMPLES} samples)",
        common::median(rates),
        common::median(seconds)
    );
    match common::peak_rss_mib() {
        Some(mib) => println!("peak memory: {mib:.0} MiB resident (VmHWM)"),
        None => println!("peak memory: not available on this platform"),
    }
}
