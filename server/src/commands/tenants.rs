//! `sealgate tenants add|list|rotate-token|remove`: who may call the gateway.
//!
//! `add` and `rotate-token` print the new bearer token on stdout and nothing else there, so
//! `TOKEN=$(sealgate tenants add ...)` captures exactly the token; everything else goes to
//! stderr. The token is printed once and never stored (only its SHA-256, in
//! `DATA_DIR/tenants.json`). Every change, and every refused change, is written to the audit
//! log. A running gateway notices the file changed within a second (and at once on SIGHUP).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use sealgate_models::audit::Event;
use sealgate_server::tenants::{ModelAllowlist, Store, TenantSpec};

use crate::data_dir::DataDir;
use crate::providers::{KmsArgs, Providers};

/// `sealgate tenants ...`.
#[derive(clap::Args)]
pub struct TenantsArgs {
    /// Data directory.
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate", global = true)]
    data_dir: PathBuf,
    /// The KMS flags, for the audit log's key.
    #[command(flatten)]
    providers: KmsArgs,
    #[command(subcommand)]
    command: TenantsCommand,
}

/// A tenant operation.
#[derive(clap::Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its bearer token (once, on stdout alone).
    Add {
        /// Tenant name: a-z, 0-9, '.', '_', '-'.
        name: String,
        /// Models it may call, separated by commas, or '*' for every model.
        #[arg(long, value_parser = ModelAllowlist::parse)]
        models: ModelAllowlist,
        /// Sustained requests per second (default: no limit of its own).
        #[arg(long)]
        rate: Option<f64>,
        /// Requests allowed at once after a quiet period (default: one second's worth of --rate).
        #[arg(long)]
        burst: Option<u32>,
    },
    /// List tenants: name, models, limits, created, last rotated. Never a token.
    List,
    /// Give a tenant a new token (printed once); the old one keeps working for --grace.
    RotateToken {
        /// Tenant name.
        name: String,
        /// How long the old token keeps working, such as 24h, 30m or 0s.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: Duration,
    },
    /// Remove a tenant; its tokens stop working at once.
    Remove {
        /// Tenant name.
        name: String,
    },
}

/// Runs a `sealgate tenants` command.
pub fn run(args: TenantsArgs) -> Result<()> {
    let data = DataDir::open(&args.data_dir)?;
    let store = Store::new(data.root());
    if let TenantsCommand::List = args.command {
        return list(&store);
    }
    let kms = Providers::open(&data, &args.providers, None, "tenants")?;
    let log = kms.log();
    let now = unix_now();
    let (op, name, result) = match args.command {
        TenantsCommand::List => return list(&store),
        TenantsCommand::Add { name, models, rate, burst } => {
            let result = TenantSpec::new(&name, models, rate, burst).and_then(|spec| store.add(spec, now));
            ("tenant-add", name, result)
        }
        TenantsCommand::RotateToken { name, grace } => {
            let result = store.rotate_token(&name, grace, now);
            if result.is_ok() {
                eprintln!("the previous token of '{name}' keeps working for {}", humantime::format_duration(grace));
            }
            ("tenant-rotate-token", name, result)
        }
        TenantsCommand::Remove { name } => {
            let result = store.remove(&name, now);
            log.record(&event("tenant-remove", &name, &result))?;
            result?;
            eprintln!("removed tenant '{name}'");
            return Ok(());
        }
    };
    let result = result.map(Some);
    log.record(&event(op, &name, &result))?;
    if let Some(token) = result? {
        // The token alone on stdout; how to use it on stderr.
        println!("{}", token.expose());
        eprintln!(
            "this is the bearer token of tenant '{name}'; it is shown once and stored only as a hash in {}",
            store.path().display()
        );
    }
    Ok(())
}

fn event<'a, T>(op: &'a str, name: &'a str, result: &Result<T>) -> Event<'a> {
    Event {
        op,
        provider: "tenants",
        key_id: name,
        artifact: None,
        // The error texts of the store name files and tenants, never a token.
        result: result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
    }
}

fn list(store: &Store) -> Result<()> {
    let tenants = store.load()?;
    println!("NAME\tMODELS\tRATE\tBURST\tCREATED\tROTATED");
    for t in tenants {
        let rate = t.rate_limit();
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            t.name,
            t.models.names().join(","),
            rate.map_or("-".into(), |r| format!("{}/s", r.per_second)),
            rate.map_or("-".into(), |r| r.burst.to_string()),
            timestamp(t.created),
            t.rotated.map_or("-".into(), timestamp),
        );
    }
    Ok(())
}

fn timestamp(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
