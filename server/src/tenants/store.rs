//! The tenant file, `DATA_DIR/tenants.json`: who exists, what each may call, and the hashes
//! of their tokens.
//!
//! The `sealgate tenants` commands change it under an exclusive lock (`tenants.lock`), so two
//! commands never lose each other's change, and replace it atomically (temporary file +
//! rename), so a running gateway reading it never sees half a file. Tokens whose grace
//! period has ended are dropped on every write. Nothing in the file is secret on its own:
//! token hashes are SHA-256 of 256-bit random values (see [`super::token`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::token::{Token, TokenHash};
use super::{ModelAllowlist, RateLimit};
use crate::files::write_file;

/// The tenant file's name inside the data directory.
pub const FILE: &str = "tenants.json";

/// The format version this code reads and writes.
const VERSION: u32 = 1;

/// Longest tenant name.
const MAX_NAME: usize = 64;

/// The file as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    version: u32,
    tenants: Vec<TenantRecord>,
}

/// One tenant as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRecord {
    /// Unique name (`[a-z0-9][a-z0-9._-]*`, at most 64 characters).
    pub name: String,
    /// Models it may call; `["*"]` means every model.
    pub models: ModelAllowlist,
    /// Sustained requests per second, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Requests allowed at once after a quiet period (with `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Unix seconds of creation.
    pub created: u64,
    /// Unix seconds of the last token rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated: Option<u64>,
    /// The tokens that authenticate it: the current one, and during a rotation's grace
    /// period the previous one with its end.
    pub tokens: Vec<StoredToken>,
}

impl TenantRecord {
    /// The rate limit, if it has one.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        let per_second = self.rate?;
        Some(RateLimit { per_second, burst: self.burst.unwrap_or_else(|| default_burst(per_second)) })
    }

    fn prune(&mut self, now: u64) {
        self.tokens.retain(|t| t.expires.is_none_or(|end| end > now));
    }
}

/// One token hash as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    /// SHA-256 of the token, lowercase hex.
    pub sha256: String,
    /// Unix seconds after which it no longer authenticates (a rotated-out token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// The burst when only a rate is given: one second's worth, at least one request.
fn default_burst(per_second: f64) -> u32 {
    per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// What `sealgate tenants add` is asked to create, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    name: String,
    models: ModelAllowlist,
    rate: Option<f64>,
    burst: Option<u32>,
}

impl TenantSpec {
    /// Checks the name and limits: a rate must be a positive number of requests per
    /// second, a burst at least 1 and only with a rate.
    pub fn new(name: &str, models: ModelAllowlist, rate: Option<f64>, burst: Option<u32>) -> Result<Self> {
        check_name(name)?;
        if let Some(rate) = rate {
            ensure!(rate.is_finite() && rate > 0.0 && rate <= 1e6, "--rate must be between 0 and 1000000 requests/s");
        }
        ensure!(burst.is_none() || rate.is_some(), "--burst needs --rate");
        ensure!(burst.is_none_or(|b| b >= 1), "--burst must be at least 1");
        Ok(Self { name: name.to_owned(), models, rate, burst })
    }

    /// The record of this tenant with `token` as its only token.
    pub fn with_token(self, token: &Token, now: u64) -> TenantRecord {
        TenantRecord {
            name: self.name,
            models: self.models,
            rate: self.rate,
            burst: self.rate.map(|r| self.burst.unwrap_or_else(|| default_burst(r))),
            created: now,
            rotated: None,
            tokens: vec![StoredToken { sha256: token.hash().to_hex(), expires: None }],
        }
    }
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    ensure!(
        valid,
        "tenant names are 1 to {MAX_NAME} characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
    );
    Ok(())
}

/// The tenant file of one data directory.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    lock: PathBuf,
}

impl Store {
    /// The store of `data_dir` (nothing is read yet).
    pub fn new(data_dir: &Path) -> Self {
        Self { path: data_dir.join(FILE), lock: data_dir.join("tenants.lock") }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once a tenant file exists (even an empty one).
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Reads every tenant; no file means no tenants.
    pub fn load(&self) -> Result<Vec<TenantRecord>> {
        let Some(file) =
            crate::files::read_versioned_json(&self.path, "tenant file", VERSION, |f: &TenantsFile| f.version)?
        else {
            return Ok(Vec::new());
        };
        for tenant in &file.tenants {
            check_name(&tenant.name).with_context(|| format!("{}", self.path.display()))?;
            for token in &tenant.tokens {
                ensure!(
                    TokenHash::from_hex(&token.sha256).is_some(),
                    "{}: tenant '{}' has a token hash that is not 64 hex digits",
                    self.path.display(),
                    tenant.name
                );
            }
        }
        Ok(file.tenants)
    }

    /// Creates a tenant; returns its token (to print once).
    pub fn add(&self, spec: TenantSpec, now: u64) -> Result<Token> {
        self.update(now, |tenants| {
            if tenants.iter().any(|t| t.name == spec.name) {
                bail!(
                    "tenant '{}' already exists; `sealgate tenants rotate-token {0}` gives it a new token",
                    spec.name
                );
            }
            let token = Token::generate();
            tenants.push(spec.with_token(&token, now));
            Ok(token)
        })
    }

    /// Creates the tenant unless one of that name exists; `None` when it did.
    pub fn add_if_missing(&self, spec: TenantSpec, now: u64) -> Result<Option<Token>> {
        self.update(now, |tenants| {
            if tenants.iter().any(|t| t.name == spec.name) {
                return Ok(None);
            }
            let token = Token::generate();
            tenants.push(spec.with_token(&token, now));
            Ok(Some(token))
        })
    }

    /// Gives a tenant a new token; its current tokens keep working for `grace`, then stop.
    pub fn rotate_token(&self, name: &str, grace: Duration, now: u64) -> Result<Token> {
        self.update(now, |tenants| {
            let tenant = tenants.iter_mut().find(|t| t.name == name).with_context(|| unknown(name))?;
            let end = now.saturating_add(grace.as_secs());
            for token in &mut tenant.tokens {
                token.expires = Some(token.expires.map_or(end, |e| e.min(end)));
            }
            let token = Token::generate();
            tenant.tokens.push(StoredToken { sha256: token.hash().to_hex(), expires: None });
            tenant.rotated = Some(now);
            tenant.prune(now);
            Ok(token)
        })
    }

    /// Removes a tenant; its tokens stop working as soon as a gateway reloads the file.
    pub fn remove(&self, name: &str, now: u64) -> Result<()> {
        self.update(now, |tenants| {
            let before = tenants.len();
            tenants.retain(|t| t.name != name);
            ensure!(tenants.len() < before, "{}", unknown(name));
            Ok(())
        })
    }

    /// Read, change and write the file under the lock; expired tokens are dropped first.
    fn update<T>(&self, now: u64, change: impl FnOnce(&mut Vec<TenantRecord>) -> Result<T>) -> Result<T> {
        let _lock = crate::files::lock_exclusive(&self.lock)?;
        let mut tenants = self.load()?;
        for tenant in &mut tenants {
            tenant.prune(now);
        }
        let result = change(&mut tenants)?;
        let file = TenantsFile { version: VERSION, tenants };
        write_file(&self.path, &serde_json::to_vec_pretty(&file)?, 0o600)?;
        Ok(result)
    }
}

fn unknown(name: &str) -> String {
    format!("there is no tenant '{name}' (`sealgate tenants list` shows them)")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn spec(name: &str) -> TenantSpec {
        TenantSpec::new(name, ModelAllowlist::only(["m"]), Some(5.0), None).unwrap()
    }

    #[test]
    fn add_rotate_remove_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let first = store.add(spec("clinic"), 100).unwrap();
        assert!(store.add(spec("clinic"), 100).unwrap_err().to_string().contains("already exists"));
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(first.expose()), "the token itself is never stored");
        assert!(text.contains(&first.hash().to_hex()));
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(store.path()).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);

        let record = &store.load().unwrap()[0];
        assert_eq!(record.rate_limit(), Some(RateLimit { per_second: 5.0, burst: 5 }));

        let second = store.rotate_token("clinic", Duration::from_secs(60), 200).unwrap();
        let record = &store.load().unwrap()[0];
        assert_eq!(record.rotated, Some(200));
        assert_eq!(record.tokens.len(), 2);
        assert_eq!(record.tokens[0], StoredToken { sha256: first.hash().to_hex(), expires: Some(260) });
        assert_eq!(record.tokens[1], StoredToken { sha256: second.hash().to_hex(), expires: None });
        // After the grace period the next write drops the old hash.
        store.add(spec("bank"), 261).unwrap();
        let tenants = store.load().unwrap();
        assert_eq!(tenants[0].tokens.len(), 1);
        assert_eq!(tenants.len(), 2);

        store.remove("clinic", 300).unwrap();
        assert!(store.remove("clinic", 300).unwrap_err().to_string().contains("no tenant 'clinic'"));
        assert_eq!(store.load().unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["bank"]);
    }

    #[test]
    fn bad_names_limits_and_files_are_refused() {
        for name in ["", "Clinic", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(TenantSpec::new(name, ModelAllowlist::All, None, None).is_err(), "{name:?}");
        }
        for (rate, burst) in
            [(Some(0.0), None), (Some(-1.0), None), (Some(f64::NAN), None), (None, Some(3)), (Some(1.0), Some(0))]
        {
            assert!(TenantSpec::new("t", ModelAllowlist::All, rate, burst).is_err(), "{rate:?} {burst:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(store.path(), b"{\"version\":1,\"tenants\":[{\"name\":\"x\"").unwrap();
        assert!(store.load().unwrap_err().to_string().contains("not a valid tenant file"));
        fs::write(store.path(), b"{\"version\":2,\"tenants\":[]}").unwrap();
        assert!(store.load().unwrap_err().to_string().contains("version 2"));
    }
}
