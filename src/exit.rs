//! The exit-code contract, documented in the README and `--help`.

/// Every scenario passed, or failed only as a declared known deviation.
pub const OK: i32 = 0;
/// At least one conformance failure that was not declared, or a declared deviation that did not
/// occur (the declaration is stale).
pub const CONFORMANCE_FAILURE: i32 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: i32 = 2;
/// A matrix, scenario or fixture file is invalid; or an evidence bundle, a run folder to bundle,
/// a certifier key or certificate: tampered, incomplete, unfinished or of the wrong kind.
pub const INVALID_CONFIG: i32 = 3;
/// The environment could not be set up: PKI, TLS, ports, report folder.
pub const ENVIRONMENT: i32 = 4;
/// The run finished without conformance failures, but some checks could not get evidence
/// (outcome `error`): the DVA was unreachable or an exchange broke off.
pub const RUN_ERRORS: i32 = 5;
/// Interrupted (Ctrl-C); the reports hold what had finished.
pub const INTERRUPTED: i32 = 130;

/// The table printed by `--help`.
pub const TABLE: &str = "Exit codes:
  0    every scenario passed, or failed only as a declared known deviation
  1    conformance failure: an undeclared failure, or a declared deviation that did not occur
  2    usage error
  3    invalid matrix, scenario or fixture file; invalid or tampered evidence bundle (or its run
       folder, key, certificate)
  4    environment or TLS set-up failure (PKI, ports, report folder)
  5    no failures, but some checks ended in error (DVA unreachable, exchange broke off)
  130  interrupted; reports hold what had finished";
