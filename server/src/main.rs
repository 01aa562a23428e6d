//! `sealgate`: the gateway binary.
//!
//! `sealgate serve` with no arguments runs the embedded development default (see
//! [`data_dir`]): a data directory `./.sealgate/` with a local KMS keyring, a development CA,
//! a KMS-sealed HPKE key and the demo models (with the real models of `cargo xtask setup`
//! when installed) sealed the first time each is served, listening on
//! 127.0.0.1:8443. Every piece can be pointed elsewhere with flags. The other commands
//! (`seal`, `verify`, `publish`, `rewrap`, `kms`, `audit`, `tenants`, `keys`) manage sealed artifacts, keys and
//! who may call.

mod admission;
mod authorization;
mod chunked_relay;
mod commands;
mod config;
mod data_dir;
mod gateway;
mod hardening;
mod inference;
mod listener;
mod log_throttle;
mod problem;
mod progress;
mod providers;
mod s3;
mod sealed_models;
mod serve;
mod static_files;
mod streaming;
mod tls;
mod watch;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sealgate", version, about = "End-to-end encrypted (Oblivious HTTP) inference gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. (Boxed: its options are many times the size of the other commands'.)
    #[command(args_override_self = true)]
    Serve(Box<serve::ServeArgs>),
    /// Seal an ONNX model into an envelope-encrypted artifact.
    Seal(commands::seal::SealArgs),
    /// Decrypt an artifact in memory and check it (exit 0 or a clear error).
    Verify(commands::verify::VerifyArgs),
    /// Verify a sealed artifact and publish it to S3 as PREFIX/NAME/VERSION.sealed, once.
    Publish(commands::publish::PublishArgs),
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
    /// Manage the HPKE keys: list, rotate, retire.
    Keys(commands::keys::KeysArgs),
    /// Check a configuration file (`sealgate.toml`).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE as `serve --config FILE` would read it (with the `SEALGATE_*` variables
    /// set now) and print every option's effective value and where it came from.
    Check {
        /// The configuration file.
        file: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SEALGATE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; a file or a log pipeline gets plain text (escape
        // codes in every field are noise to a log search, and cost formatting per line).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Before any command touches a key, a token or a data dir.
    if let Err(e) = hardening::harden_process() {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Seal(args) => commands::seal::seal(args),
        Command::Verify(args) => commands::verify::verify(args),
        Command::Publish(args) => commands::publish::publish(args),
        Command::Rewrap(args) => commands::seal::rewrap(args),
        Command::Kms(args) => commands::kms::run(args),
        Command::Audit(command) => commands::audit::run(command),
        Command::Tenants(args) => commands::tenants::run(args),
        Command::Config(ConfigCommand::Check { file }) => config::check(&file),
        Command::Keys(args) => commands::keys::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line, with `serve`'s configuration file and `SEALGATE_*` variables put in
/// front of its flags (see `config.rs`).
fn parse() -> anyhow::Result<Cli> {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_none_or(|command| command != "serve") {
        return Ok(Cli::parse());
    }
    let (args, _) = config::serve_arguments(raw.get(2..).unwrap_or_default())?;
    Ok(Cli::try_parse_from(raw.iter().take(2).cloned().chain(args)).unwrap_or_else(|e| e.exit()))
}
