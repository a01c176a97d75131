//! koppeltest: a conformance test harness for MedMij HIS/DVA × PGO combinations.
//!
//! See `docs/ARCHITECTURE.md` for the map. In one line: the [`runner`] starts a simulated DVA
//! ([`dva`]) and a mock TVS ([`tvs`]) per scenario, drives them with the mock PGO ([`pgo`]),
//! judges the recorded [`exchange`] log with pure [`checks`], and hands events to the
//! [`report`] sinks.
#![forbid(unsafe_code)]

pub mod bench;
pub mod census;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod dva;
pub mod evidence;
pub mod exchange;
pub mod exit;
pub mod fixtures;
pub mod ids;
pub mod launch;
pub mod legacy_tls;
pub mod limits;
pub mod lists;
pub mod matrix;
pub mod outcome;
pub mod pgo;
pub mod pki;
pub mod preflight;
pub mod probe;
pub mod profiles;
pub mod report;
pub mod requirements;
pub mod runner;
pub mod saml;
pub mod scenario;
pub mod shard;
pub mod snapshot;
pub mod soak;
pub mod steps;
pub mod tls;
pub mod tls_scan;
pub mod tvs;
