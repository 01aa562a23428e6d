//! `sealgate.toml`: every `serve` option in a file, overridden by `SEALGATE_*` environment
//! variables, overridden by command-line flags.
//!
//! There is one definition of the options, clap's (`serve::ServeArgs`); the file and the
//! environment are turned into the flags they stand for and put in front of the real ones,
//! with `args_override_self` so that a later flag wins. So a key is valid in the file exactly
//! when `--key` is a flag, takes the same values, and gets the same error text; `sealgate
//! config check FILE` shows the result. Keys are the flag names in snake_case
//! (`max_in_flight = 64` is `--max-in-flight 64`, `cors_origin = ["https://a", "https://b"]`
//! repeats the flag, `danger_allow_anonymous = true` sets it); an unknown key is an error,
//! since a misspelt limit silently left at its default is how outages start. The environment
//! variable of `--max-in-flight` is `SEALGATE_MAX_IN_FLIGHT`; flags that name a variable of
//! their own (`--pkcs11-token`: `SEALGATE_PKCS11_TOKEN`) keep it.
//!
//! No option holds a secret: keys, PINs and passphrases are read from files or from
//! environment variables that the file never contains, so the effective configuration can be
//! printed as it is.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args, Command};

use crate::serve::ServeArgs;

/// The environment variable that names the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "SEALGATE_CONFIG";

/// Where an option's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The configuration file.
    File,
    /// A `SEALGATE_*` variable.
    Environment,
    /// A command-line flag.
    CommandLine,
}

/// `serve`'s options as clap defines them.
pub fn serve_command() -> Command {
    ServeArgs::augment_args(Command::new("serve")).args_override_self(true)
}

/// The `serve` arguments with the configuration file (`--config FILE` among `cli`, else
/// `SEALGATE_CONFIG`) and the environment put in front of `cli`, and where each option came
/// from.
pub fn serve_arguments(cli: &[OsString]) -> Result<(Vec<OsString>, BTreeMap<String, Source>)> {
    let file = config_path(cli).or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    let command = serve_command();
    // Options on the command line replace, not join, what the file and the environment say
    // (a list flag such as --cors-origin would otherwise append to the file's list).
    let on_command_line: Vec<String> = command
        .get_arguments()
        .filter(|arg| {
            arg.get_long().is_some_and(|long| {
                cli.iter().any(|a| {
                    a.to_str().is_some_and(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
                })
            })
        })
        .map(|arg| arg.get_id().to_string())
        .collect();
    let mut args = Vec::new();
    let mut sources = BTreeMap::new();
    let mut take = |id: String, flags: Vec<OsString>, source| {
        if !on_command_line.contains(&id) {
            sources.insert(id, source);
            args.extend(flags);
        }
    };
    if let Some(file) = &file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading the configuration {}", file.display()))?;
        for (id, flags) in file_flags(&command, &text).with_context(|| format!("in {}", file.display()))? {
            take(id, flags, Source::File);
        }
    }
    for (id, flags) in environment_flags(&command) {
        take(id, flags, Source::Environment);
    }
    for id in &on_command_line {
        sources.insert(id.clone(), Source::CommandLine);
    }
    args.extend(cli.iter().cloned());
    Ok((args, sources))
}

/// The value of `--config FILE` / `--config=FILE` among the command-line arguments.
fn config_path(cli: &[OsString]) -> Option<PathBuf> {
    let mut args = cli.iter();
    while let Some(arg) = args.next() {
        let text = arg.to_str()?;
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The environment variable that stands for `--long`: `SEALGATE_` + the name in upper case.
pub fn env_name(long: &str) -> String {
    format!("SEALGATE_{}", long.replace('-', "_").to_ascii_uppercase())
}

/// The flags the `SEALGATE_*` variables stand for (options whose clap definition names a
/// variable of its own are left to clap).
fn environment_flags(command: &Command) -> Vec<(String, Vec<OsString>)> {
    let mut out = Vec::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.get_env().is_some() || long == "config" {
            continue;
        }
        let Some(value) = std::env::var_os(env_name(long)) else { continue };
        let flags = match arg.get_action() {
            ArgAction::SetTrue => match value.to_str() {
                Some("1" | "true" | "yes") => vec![OsString::from(format!("--{long}"))],
                _ => continue,
            },
            _ => vec![OsString::from(format!("--{long}")), value],
        };
        out.push((arg.get_id().to_string(), flags));
    }
    out
}

/// The flags the file's keys stand for. Keys set in the environment are skipped: the
/// environment overrides the file.
fn file_flags(command: &Command, text: &str) -> Result<Vec<(String, Vec<OsString>)>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            let known: Vec<String> =
                command.get_arguments().filter_map(|a| a.get_long()).map(|l| l.replace('-', "_")).collect();
            let close =
                known.iter().find(|k| similar(k, &key)).map(|k| format!(" (did you mean '{k}'?)")).unwrap_or_default();
            bail!("unknown option '{key}'{close}; the keys are the flags of `sealgate serve --help` in snake_case");
        };
        let env_set = std::env::var_os(env_name(&long)).is_some()
            || arg.get_env().is_some_and(|name| std::env::var_os(name).is_some());
        if env_set {
            continue;
        }
        let flag = OsString::from(format!("--{long}"));
        let scalar = |v: &toml::Value| -> Result<OsString> {
            match v {
                toml::Value::String(s) => Ok(OsString::from(s)),
                toml::Value::Integer(i) => Ok(OsString::from(i.to_string())),
                toml::Value::Float(f) => Ok(OsString::from(f.to_string())),
                toml::Value::Boolean(b) => Ok(OsString::from(b.to_string())),
                _ => bail!("'{key}' must be a string, a number or a boolean"),
            }
        };
        let flags = match (arg.get_action(), &value) {
            (ArgAction::SetTrue, toml::Value::Boolean(true)) => vec![flag],
            (ArgAction::SetTrue, toml::Value::Boolean(false)) => Vec::new(),
            (ArgAction::SetTrue, _) => bail!("'{key}' is a switch: write {key} = true or false"),
            (ArgAction::Append, toml::Value::Array(items)) => {
                let mut flags = Vec::new();
                for item in items {
                    flags.push(flag.clone());
                    flags.push(scalar(item)?);
                }
                flags
            }
            (_, toml::Value::Array(_)) => bail!("'{key}' takes one value, not a list"),
            (_, v) => vec![flag, scalar(v)?],
        };
        out.push((arg.get_id().to_string(), flags));
    }
    Ok(out)
}

/// Two names one edit apart (an insertion, a deletion, a substitution or two neighbours
/// swapped), or one a prefix of the other: worth suggesting.
fn similar(known: &str, given: &str) -> bool {
    if known.starts_with(given) || given.starts_with(known) {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (known.chars().collect(), given.chars().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
    // Equal lengths may differ in two neighbouring places (a swap); otherwise in one.
    let allowed = if a.len() == b.len() { 2 } else { 1 };
    prefix + suffix + allowed >= a.len().max(b.len())
}

/// `sealgate config check FILE`: parses the file with the environment as `serve` would,
/// refuses what `serve` would refuse, and prints every option's effective value and source.
pub fn check(file: &Path) -> Result<()> {
    let cli = [OsString::from("--config"), file.as_os_str().to_owned()];
    let (args, sources) = serve_arguments(&cli)?;
    let matches = serve_command()
        .try_get_matches_from(std::iter::once(OsString::from("serve")).chain(args))
        .map_err(|e| anyhow::anyhow!("{}", e.render().to_string().trim_end()))?;
    // `--replay-store` is text to clap (a refused URL must not be echoed, it may hold a
    // password); check it as `serve` does before printing anything.
    if let Some(url) = matches.get_raw("replay_store").and_then(|mut raw| raw.next()) {
        sealgate_server::redis::RedisUrl::parse(&url.to_string_lossy())
            .map_err(|e| anyhow::anyhow!("--replay-store: {e}"))?;
    }
    println!("# effective configuration of `sealgate serve --config {}`", file.display());
    for arg in serve_command().get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else { continue };
        if long == "config" || long == "help" {
            continue;
        }
        let key = long.replace('-', "_");
        let source = match sources.get(id) {
            Some(Source::File) => "file",
            Some(Source::Environment) => "environment",
            Some(Source::CommandLine) => "command line",
            None => "default",
        };
        let value = match arg.get_action() {
            ArgAction::SetTrue => matches.get_flag(id).to_string(),
            _ => {
                let values: Vec<String> = matches
                    .get_raw(id)
                    .map(|raw| raw.map(|v| format!("{:?}", v.to_string_lossy())).collect())
                    .unwrap_or_default();
                match (arg.get_action(), values.len()) {
                    (ArgAction::Append, _) => format!("[{}]", values.join(", ")),
                    (_, 0) => {
                        println!("# {key} is not set ({source})");
                        continue;
                    }
                    _ => values.join(", "),
                }
            }
        };
        println!("{key} = {value}  # {source}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(text: &str) -> Result<Vec<String>> {
        let out = file_flags(&serve_command(), text)?;
        Ok(out.into_iter().flat_map(|(_, f)| f).map(|f| f.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn keys_become_the_flags_they_name() {
        let got = flags("max_in_flight = 64\nqueue_timeout = \"3s\"\ncors_origin = [\"https://a\", \"https://b\"]\ndanger_allow_anonymous = false\n").unwrap();
        assert_eq!(
            got,
            [
                "--cors-origin",
                "https://a",
                "--cors-origin",
                "https://b",
                "--max-in-flight",
                "64",
                "--queue-timeout",
                "3s"
            ]
        );
        assert_eq!(flags("danger_allow_anonymous = true").unwrap(), ["--danger-allow-anonymous"]);
    }

    #[test]
    fn bad_files_are_refused_with_the_key_named() {
        let e = flags("max_in_fligth = 3").unwrap_err().to_string();
        assert!(e.contains("unknown option 'max_in_fligth' (did you mean 'max_in_flight'?)"), "{e}");
        let e = flags("danger_allow_anonymous = \"yes\"").unwrap_err().to_string();
        assert!(e.contains("is a switch"), "{e}");
        let e = flags("listen = [\"a\", \"b\"]").unwrap_err().to_string();
        assert!(e.contains("one value"), "{e}");
        assert!(flags("listen = ").is_err());
        assert!(flags("[serve]\nlisten = \"x\"").is_err(), "a table is not a value");
    }

    #[test]
    fn later_flags_win() {
        let matches =
            serve_command().try_get_matches_from(["serve", "--max-in-flight", "5", "--max-in-flight", "9"]).unwrap();
        assert_eq!(matches.get_raw("max_in_flight").unwrap().next().unwrap(), "9");
        assert_eq!(env_name("max-in-flight"), "SEALGATE_MAX_IN_FLIGHT");
        assert_eq!(config_path(&["--x".into(), "--config=a.toml".into()]), Some(PathBuf::from("a.toml")));
    }
}
