//! The command line: argument types (clap) and the commands. `main.rs` only calls [`main`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::sync::mpsc;

use crate::exit;
use crate::fixtures::PatientStore;
use crate::matrix::Matrix;
use crate::pki::Pki;
use crate::runner::{self, Finished, Prepared, RunEvent};

#[derive(Debug, Parser)]
#[command(
    name = "koppeltest",
    version,
    about = "Conformance test harness for MedMij HIS/DVA × PGO combinations",
    long_about = "koppeltest plays a mock PGO (OAuth 2.0 + FHIR client) and a mock TVS (SAML 2.0 IdP) \
against a DVA, exercises the MedMij authorization flow, TLS and the GP record (gegevensdienst 49), and \
writes a HIS × PGO pass matrix with evidence.\n\nWith no arguments, `koppeltest run` runs the embedded \
default matrix against koppeltest's own simulated DVAs.",
    after_help = exit::TABLE
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every scenario in every cell of a matrix and write the reports.
    #[command(after_help = exit::TABLE)]
    Run(RunArgs),
    /// Repeat the full flow (login, token, the seven GP-record queries, refresh) per cell and
    /// measure the share of answers within MedMij's budgets, with 95 % confidence intervals.
    #[command(after_help = SOAK_HELP)]
    Soak(SoakArgs),
    /// Manage the test PKI.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Validate a matrix and scenarios without running them.
    Check(SourceArgs),
    /// Is my practice connected? For each matrix row, in seconds and without logging anyone in:
    /// the practice on the ZAL with gegevensdienst 49 in the claimed release, its name, its
    /// endpoints on the Whitelist, resolving and accepting TLS, days to certificate expiry, and
    /// every PGO column on the OCL.
    #[command(after_help = PREFLIGHT_HELP)]
    Preflight(PreflightArgs),
    /// Work with the test patients.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
    /// Print the requirements catalogue with what tests each rule, or why nothing does.
    Requirements {
        /// Folder of scenario files. Default: the embedded scenarios.
        #[arg(long)]
        scenarios: Option<PathBuf>,
    },
    /// Serve one party on its own until Ctrl-C: a simulated DVA for a PGO under test, or the mock
    /// TVS for a real DVA.
    Serve {
        #[command(subcommand)]
        party: ServeCommand,
    },
    /// Decide on pending response snapshots (`.snap.new`, written by `run` for new and changed
    /// answers): review them one by one, or accept or reject them all.
    #[command(after_help = SNAPSHOT_HELP)]
    Snapshots {
        #[command(subcommand)]
        command: SnapshotsCommand,
    },
    /// Write or check the JSON Schemas of the scenario, matrix and report formats.
    Schema {
        /// Folder for the schemas.
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
        /// Fail (exit 3) if the committed schemas differ from the generated ones, instead of writing.
        #[arg(long)]
        check: bool,
    },
    /// Pack a finished run into a signed evidence bundle for certifiers, verify one, or make a
    /// certifier key to try it with.
    Evidence(crate::evidence::command::EvidenceArgs),
    /// Play a PGO under test: collect from every practice a PGO suite lists (what `run` serves
    /// for a PGO column of kind "external"), as a PGO server does, optionally with a fault.
    /// koppeltest's own reference PGO, and an example of what a PGO vendor's test automation
    /// does with its real PGO.
    #[command(name = "mock-pgo", after_help = MOCK_PGO_HELP)]
    MockPgo(MockPgoArgs),
    /// Join the run folders of the shards of one run (`run --shard K/N`) into one run folder:
    /// the same report.json, junit.xml, matrix.html and launch list as an unsharded run.
    #[command(after_help = MERGE_HELP)]
    Merge(MergeArgs),
    /// Decide per cell of a finished run: go, no-go or go with conditions, with the reasons, at a
    /// date (waivers expire). Writes a dated launch list (launch-<date>.json and .csv).
    #[command(after_help = LAUNCH_HELP)]
    Launch(LaunchArgs),
}

const LAUNCH_HELP: &str = "A blocker makes a no-go: a privacy failure, a failed MUST in \
authorization, token, TLS or SAML, or an error that leaves such a rule unexercised. A known \
deviation does not unblock it; a [[his.waiver]] (scenario or requirement, reason, owner, expires) \
does, until it expires. Other deviations, SHOULD warnings, errors and reliability not \
demonstrated make a go with conditions.\n\nExit codes:\n  0    no cell is a no-go\n  1    some \
cell is a no-go\n  3    no readable report.json in --run (or a shard's: merge first), a bad --date \
or --matrix\n  4    the launch list could not be written\nDates are UTC days.";

const MERGE_HELP: &str = "Example (4 CI jobs, then one merge job):\n  koppeltest run --shard 2/4 \
--pki pki --out shard-2        (in each job, K = 1..4)\n  koppeltest merge shard-*/latest --out \
merged\nThe shards must come from the same matrix, scenarios, fixtures, --pki and koppeltest \
version, with the same --repeat and --durations; each shard once, all of them.\n\nExit codes: as \
`run` for the merged verdicts (0, 1, 5, 130), 2 usage error, 3 folders that are not (readable \
as) the shards of one run, 4 the merged folder cannot be written.";

#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// The shards' run folders (`<out>/<run id>` or `<out>/latest` of each shard).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The merged run folder (new or empty).
    #[arg(long)]
    out: PathBuf,
    /// Print only the summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct LaunchArgs {
    /// The run folder (`reports/<run id>`, or `reports/latest`) with its report.json.
    #[arg(long)]
    run: PathBuf,
    /// The day to decide for, YYYY-MM-DD: a waiver holds up to and including its expiry day.
    /// Default: today (UTC).
    #[arg(long)]
    date: Option<String>,
    /// Take the waivers and the [launch] settings from this matrix (rows matched by id) instead
    /// of those the run recorded: to re-decide after adding or renewing a waiver.
    #[arg(long)]
    matrix: Option<PathBuf>,
    /// Folder for the launch list. Default: the run folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

const MOCK_PGO_HELP: &str = "Start `koppeltest run --matrix M` first (M has a [[pgo]] column with \
kind = \"external\"); it prints the lists URL. Then:\n  koppeltest mock-pgo --matrix M --column ID \
--lists https://lists.koppeltest.test:PORT\nExit 0 when every practice was collected from (the \
run judges how), 3 for a bad matrix or argument, 4 when the lists cannot be read.";

#[derive(Debug, clap::Args)]
struct MockPgoArgs {
    /// The matrix whose PGO column to play (its hostname, redirect URI, release, Accept).
    #[arg(long)]
    matrix: PathBuf,
    /// The PGO column's id.
    #[arg(long)]
    column: String,
    /// The PGO suite's list server, as `run` prints it (`https://lists.koppeltest.test:PORT`).
    #[arg(long)]
    lists: String,
    /// The address every host of the suite is reached at.
    #[arg(long, default_value = "127.0.0.1")]
    connect_to: std::net::IpAddr,
    /// Test PKI folder (`koppeltest pki init`): the PGO's client certificate and the CAs it trusts.
    #[arg(long, default_value = "pki")]
    pki: PathBuf,
    /// A deliberate fault (repeatable): state-not-checked, old-refresh-token-reused,
    /// accept-header-r4, whitelist-ignored, token-in-query, paging-not-followed,
    /// predictable-state, and more (`koppeltest mock-pgo --fault help` lists them).
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Collect only from this practice (repeatable). Default: every practice on the ZAL.
    #[arg(long = "practice")]
    practices: Vec<String>,
    /// Practices collected from at once.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

const PREFLIGHT_HELP: &str =
    "Checks per row: zal.listed, zal.service-49, zal.release, zal.naming, \
whitelist.endpoints, ocl.columns, dns.resolves, tls.accepts, certificate.expiry; each ok, warn, \
fail or skip (not checked because an earlier check failed). A simulated row's DVA is started for \
the probe; an external row is reached through its `resolve` map or DNS. Only TCP and TLS \
handshakes: no HTTP request, no login.

Exit codes:
  0    every row can be run (warnings allowed)
  1    some check fails: a full run makes no sense until it passes
  2    usage error
  3    invalid matrix, scenario, fixture or list file
  4    environment: the test PKI, or a simulated DVA that did not start";

const SNAPSHOT_HELP: &str = "Snapshots live in <dir>/<matrix>/<row>/<column>/<scenario>.snap \
(insta's format: a header, then the normalised exchanges). A run compares each scenario with the \
accepted snapshot and writes new and changed ones as <scenario>.snap.new beside it; nothing is \
written over an accepted snapshot except by accept. A damaged snapshot file exits 3.";

#[derive(Debug, Subcommand)]
enum SnapshotsCommand {
    /// Show each pending snapshot's diff and ask: accept, reject, skip or quit.
    Review(SnapshotArgs),
    /// Accept every pending snapshot (matching --filter).
    Accept(SnapshotArgs),
    /// Delete every pending snapshot (matching --filter); the accepted ones stay.
    Reject(SnapshotArgs),
    /// List the pending snapshots, new or changed.
    Status(SnapshotArgs),
}

#[derive(Debug, clap::Args)]
struct SnapshotArgs {
    /// The snapshot folder.
    #[arg(long, default_value = "snapshots")]
    dir: PathBuf,
    /// Only snapshots whose name (`<matrix>/<row>/<column>/<scenario>`) contains this text,
    /// or matches it when it has `*` wildcards, e.g. `default/sim-replay/*`.
    #[arg(long)]
    filter: Option<String>,
}

#[derive(Debug, Subcommand)]
enum FixturesCommand {
    /// Write each test patient as a FHIR transaction Bundle and a Markdown script for entering
    /// it into a HIS test environment, with the manifest; the folder loads back with --fixtures.
    Export {
        /// Folder of test patients to export. Default: the embedded ones.
        #[arg(long)]
        fixtures: Option<PathBuf>,
        #[arg(long, default_value = "fixtures-export")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ServeCommand {
    /// A simulated DVA: one row of a matrix (its practice, ZAL hosts and quirks).
    Dva(ServeDvaArgs),
    /// The mock TVS, for DVAs registered with it by their SP metadata.
    Tvs(ServeTvsArgs),
}

#[derive(Debug, clap::Args)]
struct ServeDvaArgs {
    /// The matrix row whose simulated DVA to serve.
    #[arg(long, default_value = "sim-conform")]
    row: String,
    #[command(flatten)]
    sources: SourceArgs,
    /// Test PKI folder (`koppeltest pki init`); clients must trust its CAs.
    #[arg(long, default_value = "pki")]
    pki: PathBuf,
    /// Front-channel listening address (authorization endpoint, login and consent pages).
    #[arg(long, default_value = "127.0.0.1:8443")]
    front: String,
    /// Back-channel listening address (token and resource endpoints, mutual TLS).
    #[arg(long, default_value = "127.0.0.1:8444")]
    back: String,
    /// The mock TVS's login page, `host[:port]`, as its metadata publishes it.
    #[arg(long, default_value = "tvs.koppeltest.test:9443")]
    tvs_front_host: String,
    /// The mock TVS's artifact resolution service, `host[:port]`.
    #[arg(long, default_value = "soap.tvs.koppeltest.test:9444")]
    tvs_back_host: String,
    /// `HOST=IP:PORT` for reaching the TVS's artifact resolution host (default: 127.0.0.1 on the
    /// port of --tvs-back-host). Repeatable.
    #[arg(long = "resolve")]
    resolve: Vec<String>,
    /// Write this DVA's SAML SP metadata here, to register it with a TVS.
    #[arg(long)]
    write_metadata: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ServeTvsArgs {
    /// Test PKI folder (`koppeltest pki init`).
    #[arg(long, default_value = "pki")]
    pki: PathBuf,
    #[arg(long, default_value = "127.0.0.1:9443")]
    front: String,
    #[arg(long, default_value = "127.0.0.1:9444")]
    back: String,
    /// The login page's public `host[:port]`.
    #[arg(long, default_value = "tvs.koppeltest.test:9443")]
    front_host: String,
    /// The artifact resolution service's public `host[:port]`.
    #[arg(long, default_value = "soap.tvs.koppeltest.test:9444")]
    back_host: String,
    /// SAML SP metadata of a DVA to accept. Repeatable.
    #[arg(long = "sp-metadata", required = true)]
    sp_metadata: Vec<PathBuf>,
    /// PEM bundle of the CAs the DVAs' client certificates chain to (default: the PKI's
    /// back-channel root).
    #[arg(long)]
    client_roots: Option<PathBuf>,
    /// Write the TVS's IdP metadata here.
    #[arg(long)]
    write_metadata: Option<PathBuf>,
    /// The test person logged in (a 9999xxxxx test BSN).
    #[arg(long, default_value = "999911533")]
    bsn: String,
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Generate a test PKI with MedMij's shapes (back-channel G1-like root and services CA,
    /// front-channel OV-like CA, leaves for the default matrix's hosts, SAML keys).
    Init {
        #[arg(long, default_value = "pki")]
        out: PathBuf,
        /// Overwrite an existing folder.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
struct SourceArgs {
    /// Matrix file (TOML). Default: the embedded default matrix of simulated DVAs.
    #[arg(long)]
    matrix: Option<PathBuf>,
    /// Folder of scenario files (*.toml). Default: the embedded scenarios (same as ./scenarios).
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Folder of test patients (FHIR JSON). Default: the embedded fixtures.
    #[arg(long)]
    fixtures: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct PreflightArgs {
    #[command(flatten)]
    sources: SourceArgs,
    #[command(flatten)]
    pki: PkiSource,
    /// The longest one probe (a name lookup, a connection with its TLS handshake) may take, in
    /// milliseconds; an endpoint that does not answer in time fails with that reason.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Output: a table for the terminal, or the same as JSON on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

/// Where a command's test PKI comes from: a folder, or memory (keys from the key cache).
#[derive(Debug, clap::Args)]
struct PkiSource {
    /// Test PKI folder made by `koppeltest pki init`. Default: a PKI made in memory for this
    /// run, its certificates issued afresh, its keys taken from the key cache (--fresh-keys).
    #[arg(long)]
    pki: Option<PathBuf>,
    /// Make the in-memory PKI's keys afresh instead of taking those an earlier run kept in the
    /// key cache: $KOPPELTEST_KEY_CACHE (`off`: none), else $XDG_CACHE_HOME/koppeltest/keys,
    /// else ~/.cache/koppeltest/keys. Keys only, never certificates: every run issues its own.
    #[arg(long, conflicts_with = "pki")]
    fresh_keys: bool,
}

impl PkiSource {
    fn dir(&self) -> Option<&Path> {
        self.pki.as_deref()
    }

    fn keys(&self) -> Keys {
        Keys::Ahead {
            fresh: self.fresh_keys,
        }
    }

    /// Says on stderr what became of an in-memory PKI's keys: always where the key cache could
    /// not be used or written, otherwise only if `verbose`.
    fn tell(&self, pki: &Pki, verbose: bool) {
        if self.pki.is_some() {
            return;
        }
        let note = pki.keys_note();
        if note.problem.is_some() {
            eprintln!("warning: keys: {note}");
        } else if verbose {
            eprintln!("Keys: {note}");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    sources: SourceArgs,
    #[command(flatten)]
    pki: PkiSource,
    /// Where reports go: <out>/<run-id>/ and <out>/latest/.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 16)]
    jobs: usize,
    /// Run each scenario N times: one that both passes and fails is FLAKY, shown with its pass
    /// rate in every report and failing the run (exit 1), never hidden as a pass.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    repeat: u16,
    /// Print no progress, only the summary.
    #[arg(long, short)]
    quiet: bool,
    /// Response snapshots: `check` compares each scenario's normalised exchanges with the
    /// accepted snapshot and reports drift without failing the run; `strict` also exits 1 on
    /// any drift (changed, new or missing); `off` neither compares nor writes.
    #[arg(long, value_enum, default_value_t = crate::snapshot::Mode::Check)]
    snapshots: crate::snapshot::Mode,
    /// Folder of the accepted snapshots (one subfolder per matrix).
    #[arg(long, default_value = "snapshots")]
    snapshot_dir: PathBuf,
    /// Write new and changed snapshots as pending `.snap.new` files: `auto` does unless
    /// `CI=true` (as insta), `always`, or `never`.
    #[arg(long, value_enum, default_value_t = crate::snapshot::PendingPolicy::Auto)]
    pending: crate::snapshot::PendingPolicy,
    /// Run only shard K of N (`2/4`): a deterministic slice of the cell × scenario list (a
    /// cell's PGO suite stays whole). Join the shards' run folders with `koppeltest merge`.
    /// Every shard must get the same matrix, scenarios, fixtures, --pki and --durations.
    #[arg(long)]
    shard: Option<crate::shard::Shard>,
    /// With --shard: balance the shards by the durations an earlier run recorded (its run
    /// folder or report.json): longest first onto the least-loaded shard. Default: round robin.
    #[arg(long, requires = "shard")]
    durations: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SoakArgs {
    #[command(flatten)]
    sources: SourceArgs,
    #[command(flatten)]
    pki: PkiSource,
    /// Where the soak goes: <out>/soak-<id>/ and <out>/soak-latest/.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Flows per cell (at most, with --duration).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    flows: u64,
    /// Start no flow after this long: 90s, 10m, 2h.
    #[arg(long, value_parser = crate::soak::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Flows started per second, over all cells (0.001 to 10000). Default: as fast as --jobs
    /// allows.
    #[arg(long, value_parser = crate::soak::parse_rate)]
    rate: Option<f64>,
    /// Flows at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Print no progress, only the summary.
    #[arg(long, short)]
    quiet: bool,
}

const SOAK_HELP: &str = "A soak only talks to the matrix's own hosts: the rows' simulated or external DVAs and the mock TVS.
Each answer of the token endpoint (token and refresh) and of the resource endpoint counts as within
budget when a response below 500 came within the matrix's [budgets] (token 10 s, resource 60 s).
Per cell and endpoint the soak reports that share with its 95 % Wilson score interval, whether it
meets MedMij's figure (token 99.5 %, resource 98.5 %), misses it, or is undecided (the interval
straddles the figure; the summary says about how many more flows would decide), p50/p95/p99
latency and the failures by kind. Every finished flow is appended to samples.jsonl at once:
Ctrl-C keeps what was measured. External rows are soaked as they are, with the shared mock TVS.
A later `koppeltest run` of the same matrix shows the newest soak
per cell (within [soak] max_age_days) as \"reliable operation demonstrated\" or not.

Exit codes:
  0    every figure met in every cell
  1    some figure missed
  2    usage error
  3    invalid matrix, scenario or fixture file
  4    environment failure (PKI, ports, report folder)
  5    no figure missed, but some undecided: soak longer
  130  interrupted; the soak folder holds what was measured";

/// Parses the command line and runs; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOPPELTEST_LOG")
        .unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    crate::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return exit::ENVIRONMENT;
        }
    };
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Soak(args) => runtime.block_on(soak(args)),
        Command::Pki {
            command: PkiCommand::Init { out, force },
        } => pki_init(&out, force),
        // Checking the configuration makes only the CAs' keys (or takes them from the key cache):
        // it logs no one in.
        Command::Check(args) => {
            match prepare_with(&args, None, false, Keys::CasOnly).map(|(p, _)| p) {
                Ok(p) => {
                    println!(
                        "ok: {} HIS rows × {} PGO profiles × {} scenarios",
                        p.rows.len(),
                        p.matrix.columns.len(),
                        p.scenarios.len()
                    );
                    exit::OK
                }
                Err((code, message)) => {
                    eprintln!("error: {message}");
                    code
                }
            }
        }
        Command::Preflight(args) => runtime.block_on(preflight(args)),
        Command::Fixtures {
            command: FixturesCommand::Export { fixtures, out },
        } => export_fixtures(fixtures.as_deref(), &out),
        Command::Requirements { scenarios } => requirements(scenarios.as_deref()),
        Command::Serve {
            party: ServeCommand::Dva(args),
        } => runtime.block_on(serve_dva(args)),
        Command::Serve {
            party: ServeCommand::Tvs(args),
        } => runtime.block_on(serve_tvs(args)),
        Command::Snapshots { command } => snapshots(command),
        Command::Schema { dir, check } => crate::report::schema::write_or_check(&dir, check),
        Command::Evidence(args) => crate::evidence::command::main(args),
        Command::MockPgo(args) => runtime.block_on(mock_pgo(args)),
        Command::Launch(args) => launch(args),
        Command::Merge(args) => merge(args),
    }
}

fn merge(args: MergeArgs) -> i32 {
    let started = std::time::Instant::now();
    match crate::shard::merge::merge(&args.runs, &args.out, &run_id()) {
        Ok(report) => {
            if !args.quiet {
                eprintln!(
                    "merged {} shards in {} ms",
                    args.runs.len(),
                    started.elapsed().as_millis()
                );
            }
            print!(
                "{}",
                crate::report::terminal::render(&report, &args.out.display().to_string())
            );
            report.summary.exit_code
        }
        Err(e) => fail(e.exit_code(), e),
    }
}

fn launch(args: LaunchArgs) -> i32 {
    let today = match &args.date {
        Some(d) => match crate::matrix::parse_date(d) {
            Some(date) => date,
            None => {
                return fail(
                    exit::INVALID_CONFIG,
                    format!("--date {d:?} is not a date (YYYY-MM-DD)"),
                );
            }
        },
        None => time::OffsetDateTime::now_utc().date(),
    };
    let mut report = match crate::report::RunReport::read(&args.run) {
        Ok(r) => r,
        Err(e) => return fail(exit::INVALID_CONFIG, e),
    };
    if let Some(shard) = &report.shard {
        return fail(
            exit::INVALID_CONFIG,
            format!(
                "{} is shard {}/{} of a run: merge the shards first (koppeltest merge), then decide on the merged run",
                args.run.display(),
                shard.index,
                shard.count
            ),
        );
    }
    if let Some(path) = &args.matrix {
        let (matrix, text) = match Matrix::load(path) {
            Ok(m) => m,
            Err(e) => return fail(exit::INVALID_CONFIG, e),
        };
        let known: std::collections::BTreeSet<&str> = report
            .cells
            .iter()
            .flat_map(|c| &c.scenarios)
            .map(|s| s.id.as_str())
            .collect();
        if let Err(e) = matrix.check_waivers(path, &text, &known) {
            return fail(exit::INVALID_CONFIG, e);
        }
        for row in &mut report.matrix.rows {
            row.waivers = matrix
                .rows
                .iter()
                .find(|r| r.id == row.id)
                .map(|r| r.waivers.clone())
                .unwrap_or_default();
        }
        report.matrix.launch = matrix.launch;
    }
    crate::launch::decide_all(&mut report, today);
    let list = crate::launch::LaunchList::of(&report);
    if list.cells.is_empty() {
        return fail(
            exit::INVALID_CONFIG,
            format!("{}: the run has no cells to decide", args.run.display()),
        );
    }
    if report.interrupted {
        eprintln!(
            "warning: run {} was interrupted: only its finished scenarios count",
            report.run_id
        );
    }
    println!(
        "Launch decision as of {} for run {} ({}):",
        list.date, list.run_id, list.matrix
    );
    for cell in &list.cells {
        let l = report
            .cells
            .iter()
            .find(|c| c.row == cell.row && c.column == cell.column)
            .and_then(|c| c.launch.as_ref());
        println!(
            "  {} × {}: {}",
            cell.row,
            cell.column,
            l.map_or(String::new(), crate::launch::Launch::line)
        );
        for r in &cell.reasons {
            println!(
                "      {}: {}",
                if r.blocking { "blocker" } else { "condition" },
                r.text
            );
        }
    }
    let out = args.out.as_deref().unwrap_or(&args.run);
    if let Err(e) = std::fs::create_dir_all(out) {
        return fail(exit::ENVIRONMENT, format!("create {}: {e}", out.display()));
    }
    match crate::launch::write(&list, out) {
        Ok((json, csv)) => println!("wrote {} and {}", json.display(), csv.display()),
        Err(e) => return fail(exit::ENVIRONMENT, e),
    }
    if list
        .cells
        .iter()
        .any(|c| c.decision == crate::launch::Decision::NoGo)
    {
        exit::CONFORMANCE_FAILURE
    } else {
        exit::OK
    }
}

async fn mock_pgo(args: MockPgoArgs) -> i32 {
    use crate::pgo::PgoFault;
    let mut faults = std::collections::BTreeSet::new();
    for name in &args.faults {
        match PgoFault::parse(name) {
            Some(f) => {
                faults.insert(f);
            }
            None => {
                let all: Vec<String> = PgoFault::ALL.iter().map(|f| f.name()).collect();
                return fail(
                    exit::USAGE,
                    format!(
                        "--fault {name:?} is not a fault; faults: {}",
                        all.join(", ")
                    ),
                );
            }
        }
    }
    let (matrix, _) = match Matrix::load(&args.matrix) {
        Ok(m) => m,
        Err(e) => return fail(exit::INVALID_CONFIG, e),
    };
    let Some(profile) = matrix.columns.iter().find(|c| c.id == args.column).cloned() else {
        let ids: Vec<&str> = matrix.columns.iter().map(|c| c.id.as_str()).collect();
        return fail(
            exit::USAGE,
            format!(
                "no PGO column {:?}; columns: {}",
                args.column,
                ids.join(", ")
            ),
        );
    };
    let pki = match Pki::load(&args.pki) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            return fail(
                exit::ENVIRONMENT,
                format!("failed to load the test PKI (run `koppeltest pki init`): {e}"),
            );
        }
    };
    let request_timeout = matrix.timeouts.request();
    let patience = faults
        .contains(&PgoFault::Impatient)
        .then(|| std::time::Duration::from_millis((matrix.pgo_suite.slow_answer_ms / 2).max(100)));
    let collector = crate::pgo::collect::Collector {
        profile,
        lists_url: args.lists.clone(),
        connect_to: args.connect_to,
        pki,
        faults,
        request_timeout,
        patience,
        practices: args.practices.clone(),
    };
    let result = collector
        .collect_all(args.jobs, |c| println!("{}: {}", c.practice, c.summary))
        .await;
    match result {
        Ok(_) => exit::OK,
        Err(e) => fail(exit::ENVIRONMENT, e),
    }
}

/// Loads and validates everything a run needs. Errors carry their exit code.
fn prepare(args: &SourceArgs, pki: Option<&Path>, keys: Keys) -> Result<Prepared, (i32, String)> {
    prepare_with(args, pki, false, keys).map(|(p, _)| p)
}

/// Which keys an in-memory PKI makes at set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// Only the CAs' keys, from the key cache (`check`, which starts no party).
    CasOnly,
    /// Every key the simulated parties will use ([`keys_ahead`]), taken from the key cache
    /// ([`crate::pki::KeyCache::from_env`]) unless `fresh`.
    Ahead { fresh: bool },
}

/// A prepared run, and per row why its practice did not resolve (`None`: it did).
type PreparedUnresolved = (Prepared, Vec<Option<String>>);

/// As [`prepare`]; with `unresolved_ok` a practice its ZAL cannot resolve is no error, and the
/// reason is returned per row instead (for `preflight`).
fn prepare_with(
    args: &SourceArgs,
    pki: Option<&Path>,
    unresolved_ok: bool,
    keys: Keys,
) -> Result<PreparedUnresolved, (i32, String)> {
    let config = |e: &dyn std::fmt::Display| (exit::INVALID_CONFIG, e.to_string());
    let scenarios = match &args.scenarios {
        Some(dir) => crate::scenario::load_dir(dir),
        None => crate::scenario::embedded(),
    }
    .map_err(|e| config(&e))?;
    let (matrix, text, path, base) = match &args.matrix {
        Some(p) => {
            let (m, t) = Matrix::load(p).map_err(|e| config(&e))?;
            (
                m,
                t,
                p.clone(),
                p.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        }
        None => {
            let (m, t) = Matrix::embedded_default().map_err(|e| config(&e))?;
            (
                m,
                t,
                PathBuf::from(crate::matrix::EMBEDDED_DEFAULT.0),
                PathBuf::from("."),
            )
        }
    };
    let (rows, unresolved): (Vec<_>, Vec<_>) = if unresolved_ok {
        matrix
            .prepare_unresolved(&path, &text, &base, &scenarios)
            .map_err(|e| config(&e))?
            .into_iter()
            .map(|(row, e)| (row, e.map(|e| e.to_string())))
            .unzip()
    } else {
        matrix
            .prepare(&path, &text, &base, &scenarios)
            .map_err(|e| config(&e))?
            .into_iter()
            .map(|row| (row, None))
            .unzip()
    };
    if matrix
        .columns
        .iter()
        .any(|c| c.kind == crate::pgo::PgoKind::External)
    {
        crate::bench::suite().map_err(|e| (exit::INVALID_CONFIG, e))?;
        if matrix.pgo_suite.listen.parse::<std::net::IpAddr>().is_err() {
            return Err((
                exit::INVALID_CONFIG,
                format!(
                    "{}:{}: field `pgo_suite.listen`: {:?} is not an IP address",
                    path.display(),
                    text.find("listen")
                        .map_or(1, |o| text[..o].matches('\n').count() + 1),
                    matrix.pgo_suite.listen
                ),
            ));
        }
    }
    let patients = match &args.fixtures {
        Some(dir) => PatientStore::load_dir(dir),
        None => PatientStore::embedded(),
    }
    .map_err(|e| config(&e))?;
    let (manifest, manifest_text) = load_manifest(args.fixtures.as_deref(), &patients)
        .map_err(|e| (exit::INVALID_CONFIG, e))?;
    if patients.get(&matrix.tvs.bsn).is_none() {
        return Err((
            exit::INVALID_CONFIG,
            "no test patient with the TVS's BSN (matrix field `tvs.bsn`) among the fixtures"
                .to_string(),
        ));
    }
    let pki = match (pki, keys) {
        (Some(dir), _) => Pki::load(dir),
        (None, Keys::Ahead { fresh }) => {
            let cache = if fresh {
                None
            } else {
                crate::pki::KeyCache::from_env()
            };
            Pki::generate_with(&keys_ahead(&rows, cache))
        }
        (None, Keys::CasOnly) => Pki::generate_with(&crate::pki::Ahead {
            cache: crate::pki::KeyCache::from_env(),
            ..crate::pki::Ahead::default()
        }),
    }
    .map_err(|e| {
        (
            exit::ENVIRONMENT,
            format!("failed to set up the test PKI: {e}"),
        )
    })?;
    let mut prepared = Prepared::new(matrix, rows, scenarios, Arc::new(pki), Arc::new(patients));
    prepared.manifest = Arc::new(manifest);
    prepared.sources = crate::runner::Sources {
        matrix: Some(text),
        manifest: manifest_text,
    };
    Ok((prepared, unresolved))
}

async fn preflight(args: PreflightArgs) -> i32 {
    let (prepared, unresolved) =
        match prepare_with(&args.sources, args.pki.dir(), true, args.pki.keys()) {
            Ok(p) => p,
            Err((code, message)) => return fail(code, message),
        };
    args.pki.tell(&prepared.pki, false);
    let options = crate::preflight::Options {
        timeout: std::time::Duration::from_millis(args.timeout_ms.max(1)),
    };
    let report = match crate::preflight::run(Arc::new(prepared), unresolved, options).await {
        Ok(r) => r,
        Err(e) => return fail(exit::ENVIRONMENT, e),
    };
    if args.json || args.format == OutputFormat::Json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail(exit::ENVIRONMENT, format!("failed to write JSON: {e}")),
        }
    } else {
        print!("{}", crate::preflight::render(&report));
    }
    report.exit_code
}

fn run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "{}-{}",
        now.format(&fmt).unwrap_or_default(),
        crate::ids::random_hex(3)
    )
}

async fn run(args: RunArgs) -> i32 {
    let prepared = match prepare(&args.sources, args.pki.dir(), args.pki.keys()) {
        Ok(p) => Arc::new(p),
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code;
        }
    };
    args.pki.tell(&prepared.pki, !args.quiet);
    // Accepted snapshots first: a damaged one stops the run before a run folder exists.
    let started = time::OffsetDateTime::now_utc();
    let started_at = crate::saml::instant(started);
    let mut snapshots = match args.snapshots {
        crate::snapshot::Mode::Off => None,
        mode => {
            let matrix = args
                .sources
                .matrix
                .as_deref()
                .and_then(Path::file_stem)
                .map_or("default".to_string(), |s| s.to_string_lossy().into_owned());
            match crate::snapshot::Store::open(
                &args.snapshot_dir,
                &matrix,
                mode,
                args.pending,
                crate::snapshot::is_ci(),
                crate::snapshot::Reference::at(started),
            ) {
                Ok(store) => Some(store),
                Err(e) => return fail(e.exit_code(), e),
            }
        }
    };
    let run_id = run_id();
    let run_dir = args.out.join(&run_id);
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        eprintln!(
            "error: failed to create the report folder {}: {e}",
            run_dir.display()
        );
        return exit::ENVIRONMENT;
    }
    if let Err(e) = crate::evidence::write_inputs(&prepared, &run_dir) {
        eprintln!("error: {e}");
        return exit::ENVIRONMENT;
    }
    // Each finished scenario is appended here at once, so even a killed run loses nothing.
    let events_path = run_dir.join("events.jsonl");
    let mut events = match crate::report::JsonLines::create(&events_path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: failed to create {}: {e}", events_path.display());
            return exit::ENVIRONMENT;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let repeat = usize::from(args.repeat);
    let (units, shard) = match args.shard {
        Some(shard) => {
            let durations = match &args.durations {
                Some(path) => {
                    let file = if path.is_dir() {
                        path.join("report.json")
                    } else {
                        path.clone()
                    };
                    match crate::report::RunReport::read_file(&file) {
                        Ok((r, sha)) => Some((crate::shard::durations_of(&r), sha)),
                        Err(e) => return fail(exit::INVALID_CONFIG, format!("--durations: {e}")),
                    }
                }
                None => None,
            };
            let (units, info) = crate::shard::select(
                &prepared,
                shard,
                durations.as_ref().map(|(d, sha)| (d, sha.clone())),
                repeat,
            );
            if !args.quiet {
                eprintln!(
                    "shard {shard}: {} of {} units{}",
                    info.units_here,
                    info.units_total,
                    if durations.is_some() {
                        ", balanced by recorded durations"
                    } else {
                        ""
                    }
                );
            }
            (units, Some(info))
        }
        None => (crate::shard::units(&prepared), None),
    };
    let mut tasks = runner::start_units(prepared.clone(), args.jobs, repeat, units, tx);
    let progress = progress_bar(
        args.quiet,
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} scenarios {msg}",
    );
    let mut finished: Vec<Finished> = Vec::new();
    let mut runs_seen: std::collections::BTreeMap<(usize, usize, usize), usize> =
        std::collections::BTreeMap::new();
    let mut interrupted = false;
    // A report folder that fills up or becomes unwritable ends the run: what is not on disk
    // would be lost, and a report without it would claim a run that did not happen.
    let mut write_failure: Option<String> = None;
    // One Ctrl-C future for the whole run, so a signal while a scenario is being written is kept.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(RunEvent::Started { total }) => progress.set_length(total as u64),
                Some(RunEvent::Notice(text)) => progress.suspend(|| eprintln!("{text}")),
                Some(RunEvent::Progress(line)) => {
                    if args.quiet {
                        eprintln!("{line}");
                    } else {
                        progress.set_message(line);
                    }
                }
                Some(RunEvent::ScenarioFinished { row, column, scenario, mut report, secrets }) => {
                    // Repeated runs are snapshotted once joined, below.
                    // The PGO side's exchanges are a real PGO's: nothing to hold to a snapshot.
                    if let Some(store) = snapshots.as_mut().filter(|_| repeat == 1 && report.side == crate::report::Side::Dva) {
                        report.drift = Some(store.observe(
                            &prepared.rows[row].row.id,
                            &prepared.matrix.columns[column].id,
                            &report,
                            Some(&run_dir),
                        ));
                        if let Some(e) = store.take_run_dir_failure() {
                            write_failure = Some(format!("failed to write a snapshot into the report folder: {e}"));
                        }
                    }
                    // Its exchanges go to a file of their own at once, and out of memory (a
                    // repeated scenario's stay until its runs are joined and snapshotted, and
                    // those of a file that failed stay too): the event line and report.json
                    // reference the file.
                    let (row_id, column_id) = (&prepared.rows[row].row.id, &prepared.matrix.columns[column].id);
                    let run_number = (repeat > 1).then(|| {
                        let n = runs_seen.entry((row, column, scenario)).or_insert(0);
                        *n += 1;
                        *n
                    });
                    let relative = crate::report::exchanges_path(row_id, column_id, report.side, &report.id, run_number);
                    if let Err(e) = crate::report::write_exchanges(&mut report, row_id, column_id, &run_dir, relative) {
                        write_failure.get_or_insert(format!("failed to write a scenario's exchanges: {e}"));
                    } else if repeat == 1 {
                        report.exchanges = Vec::new();
                    }
                    let line = event_line(row_id, column_id, &mut report);
                    // What events.jsonl holds, the report holds: a scenario whose line was
                    // written is kept even when its snapshot failed.
                    match events.append(&line) {
                        Ok(at) => {
                            progress.set_message(format!("{} × {}: {} {}", prepared.rows[row].row.id, prepared.matrix.columns[column].id, report.id, report.verdict.label()));
                            progress.inc(1);
                            // The secrets the log redacted are for the tests' leak checks; a run
                            // keeps none of them.
                            drop(secrets);
                            // Its line holds it whole: memory keeps it slim, and the reports
                            // read it back one cell at a time (a repeated scenario's runs stay
                            // whole until they are joined).
                            if repeat == 1 && report.exchanges_file.is_some() {
                                report.slim(at);
                            }
                            finished.push(Finished { row, column, scenario, report: *report, secrets: Vec::new() });
                        }
                        Err(e) => {
                            write_failure.get_or_insert(format!("failed to write {}: {e}", events_path.display()));
                        }
                    }
                    if write_failure.is_some() {
                        tasks.abort_all();
                        break;
                    }
                }
                None => break,
            },
            _ = &mut ctrl_c => {
                interrupted = true;
                tasks.abort_all();
                break;
            }
        }
    }
    progress.finish_and_clear();
    while tasks.try_join_next().is_some() {}
    let mut finished = runner::join_repeats(finished, repeat);
    if repeat > 1
        && write_failure.is_none()
        && let Some(store) = snapshots.as_mut()
    {
        for f in finished
            .iter_mut()
            .filter(|f| f.report.side == crate::report::Side::Dva)
        {
            f.report.drift = Some(store.observe(
                &prepared.rows[f.row].row.id,
                &prepared.matrix.columns[f.column].id,
                &f.report,
                Some(&run_dir),
            ));
        }
        if let Some(e) = store.take_run_dir_failure() {
            write_failure = Some(format!(
                "failed to write a snapshot into the report folder: {e}"
            ));
        }
    }
    // What the slim reports leave out, events.jsonl holds.
    let spill = crate::report::Spill::open(&events_path).map(std::sync::Arc::new);
    if let Some(reason) = write_failure {
        return report_folder_failed(
            &reason,
            &prepared,
            &run_id,
            &started_at,
            finished,
            &run_dir,
            spill,
        );
    }
    let max_age_days = prepared.matrix.soak.max_age_days;
    let soak = crate::soak::latest(
        &args.out,
        &matrix_digest(&prepared),
        std::time::Duration::from_secs(u64::from(max_age_days) * 86_400),
    );
    // Each cell whole once, one at a time: assembled, given its reliability (part of the
    // launch decision) and decided.
    let finish = |spill| runner::Finish {
        spill,
        soak: soak.as_ref(),
        shard,
    };
    let built = spill.and_then(|spill| {
        runner::build_report_spilled(
            &prepared,
            &run_id,
            &started_at,
            finished,
            interrupted,
            finish(spill),
        )
    });
    let mut report = match built {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "error: failed to read the finished scenarios back: {e}; no report was written, each finished scenario is in {}",
                events_path.display()
            );
            return exit::ENVIRONMENT;
        }
    };
    if let Some(store) = &snapshots {
        let summary = store.finish(interrupted);
        // Strict: drift fails a run that had nothing worse. A shard produces only its own
        // snapshots: what it calls missing is judged by `merge`, over all shards.
        let drifted = if report.shard.is_some() {
            summary.changed + summary.new
        } else {
            summary.drifted()
        };
        if summary.mode == crate::snapshot::Mode::Strict
            && drifted > 0
            && matches!(report.summary.exit_code, exit::OK | exit::RUN_ERRORS)
        {
            report.summary.exit_code = exit::CONFORMANCE_FAILURE;
        }
        report.snapshots = Some(summary);
    }
    if let Err(e) = crate::report::write_all(&mut report, &run_dir)
        .and_then(|_| crate::report::update_latest(&run_dir, &args.out.join("latest")))
    {
        eprintln!("error: {e}");
        return exit::ENVIRONMENT;
    }
    print!(
        "{}",
        crate::report::terminal::render(&report, &run_dir.display().to_string())
    );
    report.summary.exit_code
}

async fn soak(args: SoakArgs) -> i32 {
    use crate::soak::{Decision, Settings};
    let mut prepared = match prepare(&args.sources, args.pki.dir(), args.pki.keys()) {
        Ok(p) => p,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code;
        }
    };
    args.pki.tell(&prepared.pki, false);
    let (path, text) = crate::soak::FLOW;
    prepared.scenarios = match crate::scenario::parse(Path::new(path), text) {
        Ok(flow) => vec![flow],
        Err(e) => return fail(exit::INVALID_CONFIG, e),
    };
    let matrix_sha256 = matrix_digest(&prepared);
    let soak_id = run_id();
    let dir = args.out.join(format!("soak-{soak_id}"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!(
            "error: failed to create the soak folder {}: {e}",
            dir.display()
        );
        return exit::ENVIRONMENT;
    }
    let settings = Settings {
        flows: args.flows,
        duration_s: args.duration.map(|d| d.as_secs().max(1)),
        rate: args.rate,
        jobs: args.jobs.max(1),
    };
    let progress = progress_bar(
        args.quiet,
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} flows, about {eta} left {msg}",
    );
    let prepared = Arc::new(prepared);
    let result = crate::soak::soak(
        prepared,
        &settings,
        &soak_id,
        &matrix_sha256,
        &dir,
        &progress,
    )
    .await;
    progress.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(exit::ENVIRONMENT, e),
    };
    if let Err(e) = crate::report::update_latest(&dir, &args.out.join("soak-latest")) {
        eprintln!("error: {e}");
        return exit::ENVIRONMENT;
    }
    print!(
        "{}",
        crate::soak::render_terminal(&report, &dir.display().to_string())
    );
    let decisions: Vec<Decision> = report
        .cells
        .iter()
        .flat_map(|c| c.endpoints.iter().map(|e| e.decision))
        .collect();
    if report.interrupted {
        exit::INTERRUPTED
    } else if decisions.contains(&Decision::Misses) {
        exit::CONFORMANCE_FAILURE
    } else if decisions.contains(&Decision::Undecided) {
        exit::RUN_ERRORS
    } else {
        exit::OK
    }
}

/// A progress bar on stderr in `template`'s style, hidden with `--quiet`.
fn progress_bar(quiet: bool, template: &str) -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::new(0);
    if quiet {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress
}

/// The SHA-256 of the matrix's text (of the embedded default's when none was given): a run
/// shows a soak only of the same matrix.
fn matrix_digest(prepared: &Prepared) -> String {
    crate::ids::sha256_hex(
        prepared
            .sources
            .matrix
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Ends a run whose report folder stopped taking writes: says why and what is kept, tries to
/// leave an interrupted report of the finished scenarios (each file whole or absent), and exits
/// 4.
fn report_folder_failed(
    reason: &str,
    prepared: &runner::Prepared,
    run_id: &str,
    started_at: &str,
    finished: Vec<Finished>,
    run_dir: &Path,
    spill: Result<std::sync::Arc<crate::report::Spill>, crate::report::WriteError>,
) -> i32 {
    eprintln!("error: {reason}");
    eprintln!(
        "error: the run was stopped after {} finished scenarios; each one recorded before the failure stays in {}",
        finished.len(),
        run_dir.join("events.jsonl").display()
    );
    let built = spill.and_then(|spill| {
        let finish = runner::Finish {
            spill,
            soak: None,
            shard: None,
        };
        runner::build_report_spilled(prepared, run_id, started_at, finished, true, finish)
    });
    let mut report = match built {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: no report was written either: {e}");
            return exit::ENVIRONMENT;
        }
    };
    report.summary.exit_code = exit::ENVIRONMENT;
    // report.json first: the verdicts matter most, and the rest may fail as the run did. If
    // the rest is written, report.json is written again, now naming the pages and files.
    if let Err(e) = crate::report::write_report_json(&mut report, run_dir) {
        eprintln!("error: no report was written either: {e}");
    } else if let Err(e) = crate::report::write_all(&mut report, run_dir) {
        eprintln!("error: report.json was written, the other reports not: {e}");
    }
    exit::ENVIRONMENT
}

fn snapshots(command: SnapshotsCommand) -> i32 {
    use crate::snapshot::pending;
    let (args, action) = match command {
        SnapshotsCommand::Review(a) => (a, "review"),
        SnapshotsCommand::Accept(a) => (a, "accept"),
        SnapshotsCommand::Reject(a) => (a, "reject"),
        SnapshotsCommand::Status(a) => (a, "status"),
    };
    let list = match pending(&args.dir, args.filter.as_deref()) {
        Ok(l) => l,
        Err(e) => return fail(e.exit_code(), e),
    };
    if list.is_empty() {
        println!(
            "no pending snapshots under {}{}",
            args.dir.display(),
            args.filter
                .as_deref()
                .map(|f| format!(" matching {f:?}"))
                .unwrap_or_default()
        );
        return exit::OK;
    }
    let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
    let stdin = std::io::stdin();
    for (i, p) in list.iter().enumerate() {
        let decision = match action {
            "status" => {
                println!(
                    "{:9} {}{}",
                    p.state().label(),
                    p.name,
                    if p.replaces_damaged {
                        " (replaces a damaged accepted snapshot)"
                    } else {
                        ""
                    }
                );
                continue;
            }
            "accept" => 'a',
            "reject" => 'r',
            _ => {
                println!(
                    "\n── [{}/{}] {} ({})\n{}",
                    i + 1,
                    list.len(),
                    p.name,
                    p.state().label(),
                    p.diff()
                );
                loop {
                    print!("accept [a], reject [r], skip [s], quit [q]? ");
                    let _ = std::io::stdout().flush();
                    let mut line = String::new();
                    match stdin.read_line(&mut line) {
                        Ok(0) | Err(_) => break 'q',
                        Ok(_) => {}
                    }
                    match line.trim() {
                        "a" | "accept" => break 'a',
                        "r" | "reject" => break 'r',
                        "s" | "skip" | "" => break 's',
                        "q" | "quit" => break 'q',
                        _ => println!("please answer a, r, s or q"),
                    }
                }
            }
        };
        let done = match decision {
            'a' => p.accept().map(|_| accepted += 1),
            'r' => p.reject().map(|_| rejected += 1),
            's' => {
                skipped += 1;
                Ok(())
            }
            _ => {
                skipped += list.len() - i;
                break;
            }
        };
        if let Err(e) = done {
            return fail(e.exit_code(), e);
        }
    }
    if action != "status" {
        println!("{accepted} accepted, {rejected} rejected, {skipped} left pending");
    }
    exit::OK
}

fn pki_init(out: &Path, force: bool) -> i32 {
    if out.exists() && !force {
        eprintln!(
            "error: {} exists; pass --force to overwrite it",
            out.display()
        );
        return exit::USAGE;
    }
    let result = Pki::generate().and_then(|pki| {
        let (matrix, _) = match Matrix::embedded_default() {
            Ok(m) => m,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let (front, back, saml) = default_hosts(&matrix);
        pki.write(out, &front, &back, &saml).map(Ok)
    });
    match result {
        Ok(Ok(())) => {
            println!("wrote a test PKI to {} (see its README.md)", out.display());
            exit::OK
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            exit::INVALID_CONFIG
        }
        Err(e) => {
            eprintln!("error: failed to write the test PKI: {e}");
            exit::ENVIRONMENT
        }
    }
}

/// The `events.jsonl` line of a finished scenario. It references the scenario's exchanges file;
/// where that could not be written, it carries the exchanges themselves. Either way the scenario
/// keeps the exchanges it held, so the reports can try their file again (`report::write_all`).
fn event_line(
    row: &str,
    column: &str,
    report: &mut crate::report::ScenarioReport,
) -> serde_json::Value {
    let kept = report
        .exchanges_file
        .is_some()
        .then(|| std::mem::take(&mut report.exchanges));
    let line = serde_json::json!({ "row": row, "column": column, "scenario": *report });
    if let Some(kept) = kept {
        report.exchanges = kept;
    }
    line
}

/// The keys a run over `rows` makes on first use, to be made with the in-memory PKI instead (or
/// taken from `cache`): the leaves' shared key, the unknown CA's key (the client-certificate
/// scenarios need it against any DVA), the mock TVS's signing key and its impostor, and each
/// simulated DVA's SAML keys.
fn keys_ahead(
    rows: &[crate::matrix::PreparedRow],
    cache: Option<crate::pki::KeyCache>,
) -> crate::pki::Ahead {
    let mut saml = vec![crate::tvs::SIGNING_KEY.to_string()];
    for row in rows {
        if matches!(row.row.target, crate::matrix::DvaTarget::Simulated { .. }) {
            saml.extend(crate::dva::saml_key_names(&row.row.id));
        }
    }
    crate::pki::Ahead {
        leaf_key: true,
        saml,
        impostors: vec![crate::tvs::SIGNING_KEY.to_string()],
        unknown_ca: true,
        cache,
    }
}

/// The hosts and SAML key names of a matrix, for `pki init`.
fn default_hosts(matrix: &Matrix) -> (Vec<String>, Vec<String>, Vec<String>) {
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
    };
    let mut front = vec![format!("tvs.{}", crate::pki::TEST_DOMAIN)];
    let mut back = vec![format!("soap.tvs.{}", crate::pki::TEST_DOMAIN)];
    let mut saml = vec![crate::tvs::SIGNING_KEY.to_string()];
    for c in &matrix.columns {
        back.push(c.hostname.clone());
    }
    let scenarios = crate::scenario::embedded().unwrap_or_default();
    if let Ok(rows) = matrix.prepare(
        Path::new(crate::matrix::EMBEDDED_DEFAULT.0),
        crate::matrix::EMBEDDED_DEFAULT.1,
        Path::new("."),
        &scenarios,
    ) {
        for r in rows {
            front.extend(host(&r.endpoints.authorization));
            back.extend(host(&r.endpoints.token));
            saml.extend(crate::dva::saml_key_names(&r.row.id));
        }
    }
    (front, back, saml)
}

fn fail(code: i32, message: impl std::fmt::Display) -> i32 {
    eprintln!("error: {message}");
    code
}

fn port_of(authority: &str) -> Option<u16> {
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

async fn serve_dva(args: ServeDvaArgs) -> i32 {
    let prepared = match prepare(&args.sources, Some(&args.pki), Keys::CasOnly) {
        Ok(p) => p,
        Err((code, message)) => return fail(code, message),
    };
    let Some(row) = prepared.rows.iter().find(|r| r.row.id == args.row) else {
        let ids: Vec<&str> = prepared.rows.iter().map(|r| r.row.id.as_str()).collect();
        return fail(
            exit::USAGE,
            format!("no row {:?}; rows: {}", args.row, ids.join(", ")),
        );
    };
    let Some(cfg) = runner::dva_config(&prepared, row) else {
        return fail(
            exit::INVALID_CONFIG,
            format!("row {:?} is not a simulated DVA", args.row),
        );
    };
    let tvs = crate::tvs::TvsConfig {
        clock: Default::default(),
        front_host: args.tvs_front_host.clone(),
        back_host: args.tvs_back_host.clone(),
        bsn: prepared.matrix.tvs.bsn.clone(),
        loa: prepared.matrix.tvs.loa,
        service_uuid: cfg.service_uuid.clone(),
        artifact_lifetime: std::time::Duration::from_secs(900),
        service_providers: Vec::new(),
        client_roots: Vec::new(),
    };
    let idp = match tvs
        .metadata(&prepared.pki)
        .map_err(|e| e.to_string())
        .and_then(|m| crate::saml::parse_metadata(&m).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => return fail(exit::ENVIRONMENT, e),
    };
    let mut hosts = crate::tls::HostMap::new();
    if let Some(port) = port_of(&args.tvs_back_host) {
        hosts.insert(
            crate::tvs::host_only(&args.tvs_back_host).to_string(),
            ([127, 0, 0, 1], port).into(),
        );
    }
    for r in &args.resolve {
        match r
            .split_once('=')
            .and_then(|(h, a)| Some((h.to_string(), a.parse().ok()?)))
        {
            Some((h, a)) => {
                hosts.insert(h, a);
            }
            None => return fail(exit::USAGE, format!("--resolve {r:?} is not HOST=IP:PORT")),
        }
    }
    let metadata = cfg.metadata(&prepared.pki).map_err(|e| e.to_string());
    let (front, back) = match write_metadata_and_bind(
        args.write_metadata.as_deref(),
        metadata,
        &args.front,
        &args.back,
    )
    .await
    {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (front_host, back_host, entity, quirks) = (
        cfg.front_host.clone(),
        cfg.back_host.clone(),
        cfg.entity_id.clone(),
        cfg.quirks.names(),
    );
    let _servers = match crate::dva::start(
        cfg,
        &prepared.pki,
        idp,
        front,
        back,
        &hosts,
        crate::exchange::ExchangeLog::discarding(),
    ) {
        Ok(s) => s,
        Err(e) => return fail(exit::ENVIRONMENT, e),
    };
    println!("koppeltest simulated DVA {:?} ready", args.row);
    println!("  front channel  https://{front_host}  on {}", args.front);
    println!(
        "  back channel   https://{back_host}  on {} (mutual TLS)",
        args.back
    );
    println!("  DV entityID    {entity}");
    println!(
        "  quirks         {}",
        if quirks.is_empty() {
            "none".to_string()
        } else {
            quirks.join(", ")
        }
    );
    println!("Ctrl-C stops. KOPPELTEST_LOG=info shows every refusal.");
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    exit::OK
}

async fn serve_tvs(args: ServeTvsArgs) -> i32 {
    let pki = match Pki::load(&args.pki) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                exit::ENVIRONMENT,
                format!("failed to load the test PKI (run `koppeltest pki init`): {e}"),
            );
        }
    };
    if !crate::ids::is_test_bsn(&args.bsn) {
        return fail(
            exit::USAGE,
            "--bsn must be a test BSN (9999xxxxx with a valid 11-check)",
        );
    }
    let mut sps = Vec::new();
    for path in &args.sp_metadata {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| crate::saml::parse_metadata(&t).map_err(|e| e.to_string()))
        {
            Ok(md) => sps.push(md),
            Err(e) => return fail(exit::INVALID_CONFIG, format!("{}: {e}", path.display())),
        }
    }
    let client_roots = match &args.client_roots {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => crate::pki::certs_from_pem(&t),
            Err(e) => return fail(exit::INVALID_CONFIG, format!("{}: {e}", p.display())),
        },
        None => pki.roots(crate::pki::Channel::Back),
    };
    let cfg = crate::tvs::TvsConfig {
        clock: Default::default(),
        front_host: args.front_host.clone(),
        back_host: args.back_host.clone(),
        bsn: args.bsn.clone(),
        loa: crate::saml::Loa::Substantial,
        service_uuid: "00000000-0000-4000-8000-000000009049".into(),
        artifact_lifetime: std::time::Duration::from_secs(900),
        service_providers: sps,
        client_roots,
    };
    let metadata = cfg.metadata(&pki).map_err(|e| e.to_string());
    let (front, back) = match write_metadata_and_bind(
        args.write_metadata.as_deref(),
        metadata,
        &args.front,
        &args.back,
    )
    .await
    {
        Ok(l) => l,
        Err(code) => return code,
    };
    let _servers = match crate::tvs::start(
        cfg,
        &pki,
        front,
        back,
        crate::exchange::ExchangeLog::discarding(),
    ) {
        Ok(s) => s,
        Err(e) => return fail(exit::ENVIRONMENT, e),
    };
    println!("koppeltest mock TVS ready");
    println!(
        "  login page            https://{}/sso  on {}",
        args.front_host, args.front
    );
    println!(
        "  artifact resolution   https://{}/ars  on {} (mutual TLS)",
        args.back_host, args.back
    );
    println!("  entityID              {}", crate::tvs::TVS_ENTITY_ID);
    println!("Ctrl-C stops.");
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    exit::OK
}

fn requirements(dir: Option<&Path>) -> i32 {
    let scenarios = match dir.map_or_else(crate::scenario::embedded, crate::scenario::load_dir) {
        Ok(s) => s,
        Err(e) => return fail(exit::INVALID_CONFIG, e),
    };
    let catalogue = match crate::requirements::Catalogue::embedded() {
        Ok(c) => c,
        Err(e) => return fail(exit::INVALID_CONFIG, e),
    };
    let coverage = crate::requirements::Coverage::of(&catalogue, &scenarios);
    print!("{}", coverage.render());
    let problems = coverage.problems();
    for p in &problems {
        eprintln!("error: {p}");
    }
    if problems.is_empty() {
        exit::OK
    } else {
        exit::INVALID_CONFIG
    }
}

/// For the serve commands: writes the party's SAML metadata if asked, then binds its two
/// listeners. Errors are printed and become the exit code.
async fn write_metadata_and_bind(
    path: Option<&Path>,
    metadata: Result<String, String>,
    front: &str,
    back: &str,
) -> Result<(tokio::net::TcpListener, tokio::net::TcpListener), i32> {
    if let Some(path) = path {
        if let Err(e) = metadata.and_then(|m| std::fs::write(path, m).map_err(|e| e.to_string())) {
            return Err(fail(
                exit::ENVIRONMENT,
                format!("failed to write {}: {e}", path.display()),
            ));
        }
    }
    match (crate::tls::bind(front).await, crate::tls::bind(back).await) {
        (Ok(f), Ok(b)) => Ok((f, b)),
        (Err(e), _) | (_, Err(e)) => Err(fail(exit::ENVIRONMENT, e)),
    }
}

/// The manifest for `fixtures` (`DIR/manifest.toml`, or the embedded one), validated against the
/// patients; also returns its text.
fn load_manifest(
    fixtures: Option<&Path>,
    patients: &PatientStore,
) -> Result<(crate::fixtures::Manifest, String), String> {
    let (path, text) = match fixtures {
        Some(dir) => {
            let p = dir.join("manifest.toml");
            let text =
                std::fs::read_to_string(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
            (p.display().to_string(), text)
        }
        None => (
            crate::fixtures::EMBEDDED_MANIFEST.0.to_string(),
            crate::fixtures::EMBEDDED_MANIFEST.1.to_string(),
        ),
    };
    let manifest = crate::fixtures::Manifest::parse(&path, &text).map_err(|e| e.to_string())?;
    manifest
        .validate(&path, patients)
        .map_err(|e| e.to_string())?;
    Ok((manifest, text))
}

fn export_fixtures(fixtures: Option<&Path>, out: &Path) -> i32 {
    let patients = match fixtures.map_or_else(PatientStore::embedded, PatientStore::load_dir) {
        Ok(p) => p,
        Err(e) => return fail(exit::INVALID_CONFIG, e),
    };
    let (manifest, text) = match load_manifest(fixtures, &patients) {
        Ok(m) => m,
        Err(e) => return fail(exit::INVALID_CONFIG, e),
    };
    match crate::fixtures::export(&patients, &manifest, &text, out) {
        Ok(files) => {
            println!("wrote {} to {}", files.join(", "), out.display());
            exit::OK
        }
        Err(e) => fail(exit::ENVIRONMENT, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_line_carries_the_exchanges_only_where_their_file_failed_and_memory_keeps_them() {
        use crate::report::ScenarioReport;
        let exchange: crate::exchange::Exchange = serde_json::from_value(serde_json::json!({
            "seq": 0, "from": "pgo", "to": "dva", "method": "GET",
            "url": "https://api.x.koppeltest.test/fhir/Patient",
            "request_headers": [], "response_headers": [], "status": 200,
        }))
        .unwrap();
        let mut report: ScenarioReport = serde_json::from_value(serde_json::json!({
            "id": "auth.happy-path", "title": "happy path", "side": "dva", "outcome": "pass",
            "verdict": "pass", "duration_ms": 1, "privacy_failure": false,
            "failed_requirements": [], "checks": [], "steps": [],
        }))
        .unwrap();
        report.exchanges = vec![exchange.clone(), exchange];
        let inlined =
            |line: &serde_json::Value| line["scenario"]["exchanges"].as_array().map_or(0, Vec::len);
        // Its file could not be written: the line carries both, and memory still holds both for
        // write_all, which writes the file of any scenario without one.
        let line = event_line("sim-conform", "pgo-alfa", &mut report);
        assert_eq!(
            (line["row"].as_str(), line["column"].as_str()),
            (Some("sim-conform"), Some("pgo-alfa"))
        );
        assert_eq!(inlined(&line), 2);
        assert_eq!(
            report.exchanges.len(),
            2,
            "memory keeps what the line carries"
        );
        // Its file was written: the line references it; a repeated scenario keeps its exchanges
        // in memory until its runs are joined.
        report.exchanges_file = Some("cells/sim-conform/pgo-alfa/dva/auth.happy-path.json".into());
        report.exchange_count = 2;
        let line = event_line("sim-conform", "pgo-alfa", &mut report);
        assert_eq!(inlined(&line), 0);
        assert_eq!(
            line["scenario"]["exchanges_file"].as_str(),
            report.exchanges_file.as_deref()
        );
        assert_eq!(report.exchanges.len(), 2);
    }

    /// Starting every row's simulated parties, as each scenario does, makes no SAML key: a run
    /// made them all ahead ([`keys_ahead`]).
    #[tokio::test]
    async fn a_run_makes_the_keys_of_its_simulated_parties_ahead() {
        let sources = SourceArgs {
            matrix: None,
            scenarios: None,
            fixtures: None,
        };
        let prepared = prepare(&sources, None, Keys::Ahead { fresh: true }).unwrap();
        let ahead = prepared.pki.saml_keys_made();
        assert!(ahead > 2, "{ahead} SAML keys made ahead");
        // Three CAs', the leaves', the unknown CA's, the TVS's and its impostor's, and two for
        // each of the three simulated DVAs.
        assert_eq!(prepared.pki.keys_note().made, 13);
        for row in &prepared.rows {
            runner::start_simulated(&prepared, row)
                .await
                .unwrap()
                .shutdown()
                .await;
        }
        assert_eq!(prepared.pki.saml_keys_made(), ahead);
    }
}
