//! `koppeltest evidence`: the arguments and the three commands (make, `verify`, `keygen`),
//! turning [`EvidenceError`]s into messages and exit codes. Kept here rather than in `cli` so
//! the evidence bundle touches `cli` in two places only.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Algorithm, CERT_FILE, EvidenceError, KEY_FILE};
use crate::exit;

/// `koppeltest evidence --run DIR --key KEY --out FILE`, or one of its subcommands.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = exit::TABLE
)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    command: Option<EvidenceCommand>,
    /// The run folder to pack, e.g. reports/20260101T120000Z-abc123 (a finished,
    /// uninterrupted run).
    #[arg(long, required = true)]
    run: Option<PathBuf>,
    /// The certifier's private key: PKCS#8 PEM, Ed25519 or ECDSA P-256.
    #[arg(long, required = true)]
    key: Option<PathBuf>,
    /// The bundle to write (.tar.gz).
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Overwrite an existing --out.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum EvidenceCommand {
    /// Check a bundle: the signature over MANIFEST with the certifier's certificate, every
    /// file's SHA-256, no file unlisted and none missing.
    #[command(after_help = exit::TABLE)]
    Verify {
        /// The bundle (.tar.gz).
        bundle: PathBuf,
        /// The certifier's certificate (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
    },
    /// Make a certifier key (certifier-key.pem, PKCS#8) and a self-signed certificate
    /// (certifier.pem) to try the bundle with.
    Keygen {
        /// Folder for the two files.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "p256")]
        algorithm: Algorithm,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

fn fail(e: &EvidenceError) -> i32 {
    eprintln!("error: {e}");
    e.exit_code()
}

/// Runs `koppeltest evidence …`; returns the exit code.
pub fn main(args: EvidenceArgs) -> i32 {
    match args.command {
        Some(EvidenceCommand::Verify { bundle, cert }) => match super::verify(&bundle, &cert) {
            Ok(v) => {
                println!(
                    "ok: {}: {} files match {}, signed with {} ({}){}",
                    bundle.display(),
                    v.files,
                    super::MANIFEST,
                    cert.display(),
                    v.algorithm.label(),
                    v.run_id.map(|id| format!("; run {id}")).unwrap_or_default()
                );
                exit::OK
            }
            Err(e) => fail(&e),
        },
        Some(EvidenceCommand::Keygen {
            out,
            algorithm,
            force,
        }) => match super::keygen(&out, algorithm, force) {
            Ok(()) => {
                println!(
                    "wrote {} (private: keep it to yourself) and {} ({}) to {}",
                    KEY_FILE,
                    CERT_FILE,
                    algorithm.label(),
                    out.display()
                );
                exit::OK
            }
            Err(e) => fail(&e),
        },
        None => {
            let (Some(run), Some(key), Some(out)) = (args.run, args.key, args.out) else {
                // clap requires all three without a subcommand.
                eprintln!("error: --run, --key and --out are required");
                return exit::USAGE;
            };
            match super::make(&run, &key, &out, args.force) {
                Ok(m) => {
                    println!(
                        "wrote {}: run {}, {} files, {} signed with {}",
                        out.display(),
                        m.run_id,
                        m.files,
                        super::MANIFEST,
                        m.algorithm.label()
                    );
                    exit::OK
                }
                Err(e) => fail(&e),
            }
        }
    }
}
