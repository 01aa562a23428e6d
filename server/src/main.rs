//! `sealgate`: the gateway binary.
//!
//! `sealgate serve` with no arguments runs the embedded development default (see
//! [`data_dir`]): a data directory `./.sealgate/` with a local KMS keyring, a development CA,
//! a KMS-sealed HPKE key and the demo models sealed on first start, listening on
//! 127.0.0.1:8443. Every piece can be pointed elsewhere with flags. The other commands
//! (`seal`, `verify`, `rewrap`, `kms`, `audit`, `tenants`) manage sealed artifacts, keys and
//! who may call.

mod authorization;
mod commands;
mod data_dir;
mod gateway;
mod inference;
mod listener;
mod log_throttle;
mod problem;
mod providers;
mod sealed_models;
mod serve;
mod tls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sealgate", version, about = "End-to-end encrypted (Oblivious HTTP) inference gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// `serve`'s flags make its variant far larger than the others; the value is parsed once and
// lives on `main`'s stack, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Seal an ONNX model into an envelope-encrypted artifact.
    Seal(commands::seal::SealArgs),
    /// Decrypt an artifact in memory and check it (exit 0 or a clear error).
    Verify(commands::verify::VerifyArgs),
    /// Re-wrap an artifact's data key under another key, or add a recovery key, without
    /// touching the encrypted body.
    Rewrap(commands::seal::RewrapArgs),
    /// Manage KMS keys.
    Kms(commands::kms::KmsCommandArgs),
    /// Check the key-use audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Manage tenants: who may call, which models, how often.
    Tenants(commands::tenants::TenantsArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SEALGATE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Seal(args) => commands::seal::seal(args),
        Command::Verify(args) => commands::verify::verify(args),
        Command::Rewrap(args) => commands::seal::rewrap(args),
        Command::Kms(args) => commands::kms::run(args),
        Command::Audit(command) => commands::audit::run(command),
        Command::Tenants(args) => commands::tenants::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
