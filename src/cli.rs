//! The command line: argument types (clap) and the commands. `main.rs` only calls [`main`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::sync::mpsc;

use crate::dva::Lifetimes;
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
    /// Manage the test PKI.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Validate a matrix and scenarios without running them.
    Check(SourceArgs),
    /// Write or check the JSON Schemas of the scenario, matrix and report formats.
    Schema {
        /// Folder for the schemas.
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
        /// Fail (exit 3) if the committed schemas differ from the generated ones, instead of writing.
        #[arg(long)]
        check: bool,
    },
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
struct RunArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Test PKI folder made by `koppeltest pki init`. Default: a fresh PKI in memory.
    #[arg(long)]
    pki: Option<PathBuf>,
    /// Where reports go: <out>/<run-id>/ and <out>/latest/.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Print no progress, only the summary.
    #[arg(long, short)]
    quiet: bool,
}

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
        Command::Pki {
            command: PkiCommand::Init { out, force },
        } => pki_init(&out, force),
        Command::Check(args) => match prepare(&args, None) {
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
        },
        Command::Schema { dir, check } => crate::report::schema::write_or_check(&dir, check),
    }
}

/// Loads and validates everything a run needs. Errors carry their exit code.
fn prepare(args: &SourceArgs, pki: Option<&Path>) -> Result<Prepared, (i32, String)> {
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
    let rows = matrix
        .prepare(&path, &text, &base, &scenarios)
        .map_err(|e| config(&e))?;
    let patients = match &args.fixtures {
        Some(dir) => PatientStore::load_dir(dir),
        None => PatientStore::embedded(),
    }
    .map_err(|e| config(&e))?;
    if patients.get(&matrix.tvs.bsn).is_none() {
        return Err((
            exit::INVALID_CONFIG,
            "no test patient with the TVS's BSN (matrix field `tvs.bsn`) among the fixtures"
                .to_string(),
        ));
    }
    let pki = match pki {
        Some(dir) => Pki::load(dir),
        None => Pki::generate(),
    }
    .map_err(|e| {
        (
            exit::ENVIRONMENT,
            format!("failed to set up the test PKI: {e}"),
        )
    })?;
    Ok(Prepared {
        matrix,
        rows,
        scenarios,
        pki: Arc::new(pki),
        patients: Arc::new(patients),
        lifetimes: Lifetimes::default(),
    })
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
    let prepared = match prepare(&args.sources, args.pki.as_deref()) {
        Ok(p) => Arc::new(p),
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code;
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
    let started_at = crate::saml::instant(time::OffsetDateTime::now_utc());
    // Each finished scenario is appended here at once, so even a killed run loses nothing.
    let events_path = run_dir.join("events.jsonl");
    let mut events_file = match std::fs::File::create(&events_path) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("error: failed to create {}: {e}", events_path.display());
            return exit::ENVIRONMENT;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = runner::start(prepared.clone(), args.jobs, tx);
    let progress = indicatif::ProgressBar::new(0);
    if args.quiet {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} scenarios {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut finished: Vec<Finished> = Vec::new();
    let mut interrupted = false;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(RunEvent::Started { total }) => progress.set_length(total as u64),
                Some(RunEvent::ScenarioFinished { row, column, scenario, report, secrets }) => {
                    let line = serde_json::json!({
                        "row": prepared.rows[row].row.id, "column": prepared.matrix.columns[column].id, "scenario": *report,
                    });
                    let _ = writeln!(events_file, "{line}").and_then(|_| events_file.flush());
                    progress.set_message(format!("{} × {}: {} {}", prepared.rows[row].row.id, prepared.matrix.columns[column].id, report.id, report.verdict.label()));
                    progress.inc(1);
                    finished.push(Finished { row, column, scenario, report: *report, secrets });
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                interrupted = true;
                tasks.abort_all();
                break;
            }
        }
    }
    progress.finish_and_clear();
    while tasks.try_join_next().is_some() {}
    let report = runner::build_report(&prepared, &run_id, &started_at, &finished, interrupted);
    if let Err(e) = crate::report::write_all(&report, &run_dir)
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

/// The hosts and SAML key names of a matrix, for `pki init`.
fn default_hosts(matrix: &Matrix) -> (Vec<String>, Vec<String>, Vec<String>) {
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
    };
    let mut front = vec![format!("tvs.{}", crate::pki::TEST_DOMAIN)];
    let mut back = vec![format!("soap.tvs.{}", crate::pki::TEST_DOMAIN)];
    let mut saml = vec!["tvs-signing".to_string()];
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
            saml.push(format!("dva-{}-signing", r.row.id));
            saml.push(format!("dva-{}-encryption", r.row.id));
        }
    }
    (front, back, saml)
}
