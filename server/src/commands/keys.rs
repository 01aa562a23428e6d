//! `sealgate keys list|rotate|retire`: the gateway's HPKE keys over their lifetime, and the
//! key list (`DATA_DIR/keys/keys.json`) that records them.
//!
//! Each key is `active` (advertised first, new requests are sealed to it), `retiring`
//! (still accepted, advertised after the active ones, removed automatically once its
//! `retire_after` has passed) or `retired` (no longer accepted; its private key file is
//! deleted at once, and the entry stays until `retire_after` only to keep the key id from
//! being reused while a client may still hold a configuration with it). The list holds only
//! public facts; every private key stays in its own KMS-wrapped file (`data_dir.rs`). The
//! list is changed under an exclusive lock (`keys/keys.lock`) and replaced atomically, like the
//! tenant file, and every change (and every refused change) is written to the audit log. A
//! running gateway notices the file changed within a second (at once on SIGHUP) and swaps
//! its key set without a restart.
//!
//! Key ids are one byte, so they are reused eventually; a grace shorter than what a client
//! may cache a configuration for (the key list's `Cache-Control: max-age`) plus the request
//! timeout is refused, so no id returns while a configuration naming it can still be cached.
//! The gateway records both figures in the list when it starts ([`Serving`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use sealgate_models::artifact::KmsSet;
use sealgate_models::audit::{AuditLog, Event};
use sealgate_models::kms::KmsProvider;
use sealgate_protocol::{GatewayKey, GatewayKeys, Kem};
use serde::{Deserialize, Serialize};

use crate::commands::tenants::unix_now;
use crate::data_dir::{DataDir, write_file};
use crate::providers::{KeyRef, KmsArgs, Providers};

/// The version of `keys.json` this gateway reads and writes.
const VERSION: u32 = 1;

/// `sealgate keys ...`.
#[derive(clap::Args)]
pub struct KeysArgs {
    /// Data directory.
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate", global = true)]
    data_dir: PathBuf,
    /// The KMS flags: for the new keys' `--hpke-key-kms`, and the audit log's key.
    #[command(flatten)]
    providers: KmsArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

/// A key operation.
#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// List the HPKE keys: key id, KEM, state, created, retire-after, config SHA-256.
    List,
    /// Add a new key per KEM (a fresh key id); the previous one becomes "retiring": still
    /// accepted for --grace, no longer advertised first.
    Rotate {
        /// Which KEM to rotate: x25519, x-wing or all.
        #[arg(long, default_value = "all", value_parser = parse_kems)]
        kem: KemChoice,
        /// How long the previous keys stay accepted, such as 48h or 30m. At least the key
        /// list's max-age plus the request timeout of the gateway (see `keys list`).
        #[arg(long, default_value = "48h", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// KMS provider and key that wrap the new private keys.
        #[arg(long, default_value = "local:default", value_name = "PROVIDER:KEY")]
        hpke_key_kms: KeyRef,
    },
    /// Stop accepting a key now (its private key file is deleted). Active keys are refused:
    /// rotate first, so clients have a key to move to.
    Retire {
        /// The key id, as `keys list` shows it.
        key_id: u8,
    },
    /// Write the key list and the KMS-sealed file of every accepted key into one bundle
    /// (JSON) for the other replicas (`sealgate keys import`). It holds no plaintext key:
    /// only a replica whose KMS can unwrap the keys can use it.
    Export {
        /// Where to write it (mode 0600); `-` for standard output.
        #[arg(long, default_value = "-", value_name = "FILE")]
        out: PathBuf,
    },
    /// Replace this data dir's keys with a bundle from `sealgate keys export`. Every key is
    /// first unwrapped with this replica's KMS and checked against the list; nothing changes
    /// unless all are. A running gateway serves the new keys within a second.
    Import {
        /// The bundle file; `-` for standard input.
        bundle: PathBuf,
    },
}

/// What `keys export` writes and `keys import` reads: the key list and, per accepted key,
/// its key file as it is on disk (public parameters and the KMS-wrapped private key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    format: String,
    version: u32,
    list: KeyList,
    /// Key id to the text of its `ohttp-NNN.key` file.
    files: std::collections::BTreeMap<u8, String>,
}

/// [`Bundle::format`]: what the file is, for a clear refusal of anything else.
const BUNDLE_FORMAT: &str = "sealgate-keys-bundle";

/// The KEMs `--kem` names.
#[derive(Debug, Clone)]
pub struct KemChoice(Vec<Kem>);

fn parse_kems(text: &str) -> Result<KemChoice, String> {
    if text.eq_ignore_ascii_case("all") {
        return Ok(KemChoice(Kem::ALL.to_vec()));
    }
    Kem::ALL
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(text))
        .map(|k| KemChoice(vec![k]))
        .ok_or_else(|| format!("'{text}' is not a KEM: x25519, x-wing or all"))
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Advertised first; new requests are sealed to it.
    Active,
    /// Accepted and advertised after the active keys until `retire_after`.
    Retiring,
    /// Not accepted; the entry only reserves the key id until `retire_after`.
    Retired,
}

impl KeyState {
    fn name(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }
}

/// One key in the list: public facts only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The one-byte key identifier of RFC 9458 section 3.
    pub key_id: u8,
    /// The KEM's IANA identifier.
    pub kem: u16,
    /// Where the key is in its life.
    pub state: KeyState,
    /// When it was made (Unix seconds).
    pub created: u64,
    /// When a retiring key stops being accepted, or a retired key's id becomes free again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after: Option<u64>,
    /// SHA-256 of the encoded key configuration (lowercase hex), as `serve` prints it.
    pub config_sha256: String,
}

impl KeyEntry {
    fn kem_name(&self) -> &'static str {
        Kem::from_id(self.kem).map_or("unknown", Kem::name)
    }

    /// Accepted at `now`: active, or retiring and not yet past its grace.
    pub fn accepted(&self, now: u64) -> bool {
        match self.state {
            KeyState::Active => true,
            KeyState::Retiring => self.retire_after.is_none_or(|t| now < t),
            KeyState::Retired => false,
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.state != KeyState::Active && self.retire_after.is_some_and(|t| now >= t)
    }
}

/// What the gateway that last started advertises, so the commands can refuse a grace
/// shorter than a client may cache a configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    /// The key list's `Cache-Control: max-age`, at most (seconds).
    pub cache_max_age_secs: u64,
    /// The gateway's request timeout (seconds).
    pub request_timeout_secs: u64,
}

impl Default for Serving {
    fn default() -> Self {
        // `sealgate serve`'s defaults, for a list written before any gateway started.
        Self { cache_max_age_secs: 300, request_timeout_secs: 30 }
    }
}

impl Serving {
    /// The shortest grace allowed: a configuration fetched just before a rotation can be
    /// cached for max-age and its last request can take the request timeout.
    pub fn min_grace(&self) -> Duration {
        Duration::from_secs(self.cache_max_age_secs.saturating_add(self.request_timeout_secs))
    }
}

/// The contents of `keys.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyList {
    version: u32,
    /// What the gateway advertises (recorded by `serve`).
    #[serde(default)]
    pub serving: Serving,
    /// Every key not yet removed, in the order they were made.
    pub keys: Vec<KeyEntry>,
}

impl KeyList {
    /// The keys accepted at `now`, in the order they are advertised: active keys first
    /// (X25519, then X-Wing, so clients that take the first usable configuration keep the
    /// classical one unless they choose X-Wing), then retiring keys, newest first.
    pub fn accepted(&self, now: u64) -> Vec<&KeyEntry> {
        let kem_rank = |e: &KeyEntry| Kem::ALL.iter().position(|k| k.id() == e.kem).unwrap_or(usize::MAX);
        let mut keys: Vec<&KeyEntry> = self.keys.iter().filter(|k| k.accepted(now)).collect();
        keys.sort_by_key(|k| (k.state != KeyState::Active, kem_rank(k), std::cmp::Reverse(k.created)));
        keys
    }

    /// The earliest `retire_after` still ahead: when the accepted set changes next on its own.
    pub fn next_expiry(&self) -> Option<u64> {
        self.keys.iter().filter(|k| k.state != KeyState::Active).filter_map(|k| k.retire_after).min()
    }

    /// When the newest active key was made (for the rotation schedule).
    pub fn newest_active(&self) -> Option<u64> {
        self.keys.iter().filter(|k| k.state == KeyState::Active).map(|k| k.created).max()
    }

    /// The next key id that no key in the list holds, counting on from the newest key's.
    fn next_free_id(&self) -> Result<u8> {
        let start = self.keys.iter().max_by_key(|k| k.created).map_or(1, |k| k.key_id.wrapping_add(1));
        (0..=u8::MAX)
            .map(|i| start.wrapping_add(i))
            .find(|id| !self.keys.iter().any(|k| k.key_id == *id))
            .context("all 256 key ids are in use (by active, retiring or recently retired keys)")
    }
}

/// One change to the list, for the audit log and the command's message.
#[derive(Debug, Clone)]
pub struct Change {
    /// The audit operation: `ohttp-key-create`, `ohttp-key-retiring`, `ohttp-key-retire`,
    /// `ohttp-key-remove`.
    pub op: &'static str,
    /// The key it concerns.
    pub key_id: u8,
    /// The KEM's name.
    pub kem: &'static str,
}

/// The key list of a data directory and the key files beside it.
#[derive(Debug, Clone)]
pub struct KeyStore {
    data: DataDir,
    path: PathBuf,
    lock: PathBuf,
}

impl KeyStore {
    /// The store of `data` (nothing is read yet).
    pub fn new(data: &DataDir) -> Self {
        let dir = data.ohttp_keys_dir();
        Self { data: data.clone(), path: dir.join("keys.json"), lock: dir.join("keys.lock") }
    }

    /// The list's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the list; `None` when there is none yet.
    pub fn load(&self) -> Result<Option<KeyList>> {
        let Some(list) =
            sealgate_server::files::read_versioned_json(&self.path, "key list", VERSION, |l: &KeyList| l.version)?
        else {
            return Ok(None);
        };
        check_unique(&list, &self.path.display())?;
        Ok(Some(list))
    }

    /// The bundle for `keys export`: the list and the file of every key it accepts at `now`,
    /// read under the lock, so a rotation cannot come between them.
    pub fn export(&self, now: u64) -> Result<(Bundle, Vec<Change>)> {
        crate::data_dir::create_private_dir(&self.data.ohttp_keys_dir())?;
        let _lock = sealgate_server::files::lock_exclusive(&self.lock)?;
        let list = self.load()?.with_context(|| {
            format!("{} does not exist; `sealgate serve` makes the first keys on its first start", self.path.display())
        })?;
        let mut files = std::collections::BTreeMap::new();
        let mut changes = Vec::new();
        for entry in list.accepted(now) {
            let path = self.data.ohttp_key_file(entry.key_id);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(entry.key_id, text);
            changes.push(Change { op: "ohttp-key-export", key_id: entry.key_id, kem: entry.kem_name() });
        }
        Ok((Bundle { format: BUNDLE_FORMAT.into(), version: VERSION, list, files }, changes))
    }

    /// Installs `bundle` in place of this store's keys: checks it whole first (format, every
    /// accepted key present, unwrapped by `kms` and the key its entry names, no other file),
    /// then, under the lock, writes the key files, then the list, and last removes the key
    /// files the new list no longer names.
    pub fn import(&self, bundle: &Bundle, kms: &dyn KmsSet, now: u64) -> Result<Vec<Change>> {
        ensure!(
            bundle.format == BUNDLE_FORMAT,
            "not a key bundle of `sealgate keys export` (format '{}')",
            bundle.format
        );
        ensure!(
            bundle.version == VERSION && bundle.list.version == VERSION,
            "key bundle version {} is not supported (this gateway reads version {VERSION})",
            bundle.version
        );
        check_unique(&bundle.list, &"the bundle")?;
        let accepted = bundle.list.accepted(now);
        ensure!(!accepted.is_empty(), "the bundle accepts no key now: importing it would leave no key to serve");
        if let Some(key_id) = bundle.files.keys().find(|id| !accepted.iter().any(|e| e.key_id == **id)) {
            bail!("the bundle holds a key file for key {key_id}, which its list does not accept");
        }
        for entry in &accepted {
            let text = bundle
                .files
                .get(&entry.key_id)
                .with_context(|| format!("the bundle lists key {} but holds no key file for it", entry.key_id))?;
            let what = format!("key {} of the bundle", entry.key_id);
            let key = crate::data_dir::unwrap_ohttp_key(text.as_bytes(), &what, kms)
                .context("this replica's KMS must be able to unwrap every key it imports")?;
            ensure!(
                key.config().key_id() == entry.key_id
                    && key.config().kem().id() == entry.kem
                    && hex::encode(key.config().sha256()) == entry.config_sha256,
                "{what} is not the key the bundle's list names (config SHA-256 {})",
                entry.config_sha256
            );
        }

        crate::data_dir::create_private_dir(&self.data.ohttp_keys_dir())?;
        let _lock = sealgate_server::files::lock_exclusive(&self.lock)?;
        let before = self.load()?.unwrap_or_default();
        for (key_id, text) in &bundle.files {
            self.data.write_ohttp_key_file(*key_id, text.as_bytes())?;
        }
        let mut list = bundle.list.clone();
        list.keys.retain(|k| !k.expired(now));
        write_file(&self.path, &serde_json::to_vec_pretty(&list)?, 0o600)?;
        let mut changes: Vec<Change> =
            accepted.iter().map(|e| Change { op: "ohttp-key-import", key_id: e.key_id, kem: e.kem_name() }).collect();
        // Only once the list no longer names them, as in `update`.
        for old in before.keys.iter().filter(|k| !list.keys.iter().any(|n| n.key_id == k.key_id)) {
            self.delete_key_file(old.key_id)?;
            changes.push(Change { op: "ohttp-key-remove", key_id: old.key_id, kem: old.kem_name() });
        }
        for retired in list.keys.iter().filter(|k| !k.accepted(now)) {
            self.delete_key_file(retired.key_id)?;
        }
        Ok(changes)
    }

    /// `serve`'s start: records what the gateway advertises, removes expired keys and, when
    /// there is no key list yet, makes one: from the key files a data dir made before the
    /// list existed, or with a new key per KEM wrapped by `wrap_with` (the first start).
    pub fn prepare(
        &self,
        serving: Serving,
        kms: &dyn KmsSet,
        wrap_with: (&dyn KmsProvider, &str),
        now: u64,
    ) -> Result<Vec<Change>> {
        self.update(now, |list, existed| {
            list.serving = serving;
            let mut changes = Vec::new();
            if !existed {
                for key_id in self.data.ohttp_key_files()? {
                    let key = self.data.read_ohttp_key(key_id, kms)?;
                    list.keys.push(entry(&key, now));
                }
                if list.keys.is_empty() {
                    for kem in Kem::ALL {
                        changes.push(self.create(list, kem, wrap_with, now)?);
                    }
                }
            }
            Ok(changes)
        })
    }

    /// Adds a new key for each of `kems`; the active keys of those KEMs become retiring,
    /// accepted for `grace` more.
    pub fn rotate(
        &self,
        kems: &[Kem],
        grace: Duration,
        wrap_with: (&dyn KmsProvider, &str),
        now: u64,
    ) -> Result<Vec<Change>> {
        self.update(now, |list, _| {
            let min = list.serving.min_grace();
            ensure!(
                grace >= min,
                "--grace {} is shorter than the key list's max-age ({} s) plus the request timeout ({} s) of the \
                 gateway: a client may still hold the old configuration then; use at least {}",
                humantime::format_duration(grace),
                list.serving.cache_max_age_secs,
                list.serving.request_timeout_secs,
                humantime::format_duration(min)
            );
            let retire_after = now.saturating_add(grace.as_secs());
            let mut changes = Vec::new();
            for &kem in kems {
                for key in list.keys.iter_mut().filter(|k| k.kem == kem.id() && k.state == KeyState::Active) {
                    key.state = KeyState::Retiring;
                    key.retire_after = Some(retire_after);
                    changes.push(Change { op: "ohttp-key-retiring", key_id: key.key_id, kem: kem.name() });
                }
                changes.push(self.create(list, kem, wrap_with, now)?);
            }
            Ok(changes)
        })
    }

    /// Stops accepting `key_id` now and deletes its private key file; the entry reserves the
    /// id for max-age plus the request timeout.
    pub fn retire(&self, key_id: u8, now: u64) -> Result<Vec<Change>> {
        let changes = self.update(now, |list, _| {
            let until = now.saturating_add(list.serving.min_grace().as_secs());
            let key = list
                .keys
                .iter_mut()
                .find(|k| k.key_id == key_id)
                .with_context(|| format!("there is no key {key_id}; `sealgate keys list` shows the keys"))?;
            match key.state {
                KeyState::Active => bail!(
                    "key {key_id} is active; rotate first (`sealgate keys rotate --kem {}`), so clients have a key \
                     to move to, then retire it",
                    key.kem_name().to_ascii_lowercase()
                ),
                KeyState::Retired => bail!("key {key_id} is already retired"),
                KeyState::Retiring => {}
            }
            key.state = KeyState::Retired;
            key.retire_after = Some(until);
            Ok(vec![Change { op: "ohttp-key-retire", key_id, kem: key.kem_name() }])
        })?;
        self.delete_key_file(key_id)?;
        Ok(changes)
    }

    /// Removes the keys whose grace has passed (and their key files). Nothing changes, and
    /// nothing is written, when none has.
    pub fn prune(&self, now: u64) -> Result<Vec<Change>> {
        match self.load()? {
            Some(list) if list.keys.iter().any(|k| k.expired(now)) => self.update(now, |_, _| Ok(Vec::new())),
            _ => Ok(Vec::new()),
        }
    }

    /// The accepted keys of `list` at `now` in the advertised order, each unwrapped by
    /// `unwrap` (which may reuse a key it has already unwrapped).
    pub fn gateway_keys(
        &self,
        list: &KeyList,
        now: u64,
        mut unwrap: impl FnMut(&KeyEntry) -> Result<GatewayKey>,
    ) -> Result<GatewayKeys> {
        let keys = list.accepted(now).into_iter().map(&mut unwrap).collect::<Result<Vec<_>>>()?;
        GatewayKeys::new(keys).with_context(|| format!("{}: no key is accepted", self.path.display()))
    }

    /// Reads and unwraps the key file of `entry`, checking it is the key the list names.
    pub fn unwrap_key(&self, entry: &KeyEntry, kms: &dyn KmsSet) -> Result<GatewayKey> {
        let key = self.data.read_ohttp_key(entry.key_id, kms)?;
        ensure!(
            hex::encode(key.config().sha256()) == entry.config_sha256 && key.config().kem().id() == entry.kem,
            "{}: key {} is not the key {} lists",
            self.data.ohttp_key_file(entry.key_id).display(),
            entry.key_id,
            self.path.display()
        );
        Ok(key)
    }

    fn create(&self, list: &mut KeyList, kem: Kem, wrap_with: (&dyn KmsProvider, &str), now: u64) -> Result<Change> {
        let key_id = list.next_free_id()?;
        let key = self.data.create_ohttp_key(key_id, kem, wrap_with)?;
        list.keys.push(entry(&key, now));
        Ok(Change { op: "ohttp-key-create", key_id, kem: kem.name() })
    }

    fn delete_key_file(&self, key_id: u8) -> Result<()> {
        let path = self.data.ohttp_key_file(key_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Reads, changes and writes the list under the lock; expired keys are removed first
    /// (their removal is among the changes returned). `change` is told whether a list
    /// existed before.
    fn update(&self, now: u64, change: impl FnOnce(&mut KeyList, bool) -> Result<Vec<Change>>) -> Result<Vec<Change>> {
        crate::data_dir::create_private_dir(&self.data.ohttp_keys_dir())?;
        let _lock = sealgate_server::files::lock_exclusive(&self.lock)?;
        let loaded = self.load()?;
        let existed = loaded.is_some();
        let mut list = loaded.unwrap_or(KeyList { version: VERSION, ..KeyList::default() });
        let (expired, kept): (Vec<KeyEntry>, Vec<KeyEntry>) = list.keys.drain(..).partition(|k| k.expired(now));
        list.keys = kept;
        let mut changes: Vec<Change> =
            expired.iter().map(|k| Change { op: "ohttp-key-remove", key_id: k.key_id, kem: k.kem_name() }).collect();
        changes.extend(change(&mut list, existed)?);
        write_file(&self.path, &serde_json::to_vec_pretty(&list)?, 0o600)?;
        // The key files go only once the list no longer names them: a crash in between
        // leaves an unused file, never a listed key without its file.
        for key in &expired {
            self.delete_key_file(key.key_id)?;
        }
        Ok(changes)
    }
}

/// Refuses a list that names a key id twice (`what` names the list in the error).
fn check_unique(list: &KeyList, what: &dyn std::fmt::Display) -> Result<()> {
    for (i, key) in list.keys.iter().enumerate() {
        ensure!(
            !list.keys.iter().skip(i + 1).any(|k| k.key_id == key.key_id),
            "{what}: key id {} is listed twice",
            key.key_id
        );
    }
    Ok(())
}

fn entry(key: &GatewayKey, now: u64) -> KeyEntry {
    let config = key.config();
    KeyEntry {
        key_id: config.key_id(),
        kem: config.kem().id(),
        state: KeyState::Active,
        created: now,
        retire_after: None,
        config_sha256: hex::encode(config.sha256()),
    }
}

/// Writes `changes` (or the refusal) to the audit log.
pub fn audit(log: &AuditLog, changes: &Result<Vec<Change>>, refused_key: &str) -> Result<()> {
    match changes {
        Ok(changes) => {
            for change in changes {
                let key_id = change.key_id.to_string();
                log.record(&Event {
                    op: change.op,
                    provider: "keys",
                    key_id: &key_id,
                    artifact: None,
                    result: Ok(()),
                })?;
            }
        }
        // The store's error texts name files, key ids and KEMs, never key material.
        Err(e) => log.record(&Event {
            op: "ohttp-key-change",
            provider: "keys",
            key_id: refused_key,
            artifact: None,
            result: Err(format!("{e:#}")),
        })?,
    }
    Ok(())
}

/// Runs a `sealgate keys` command.
pub fn run(args: KeysArgs) -> Result<()> {
    let data = DataDir::open(&args.data_dir)?;
    let store = KeyStore::new(&data);
    let now = unix_now();
    let (kms, changes, refused_key) = match args.command {
        KeysCommand::List => return list(&store, now),
        KeysCommand::Rotate { kem, grace, hpke_key_kms } => {
            let kms = Providers::open(&data, &args.providers, Some(&hpke_key_kms.provider), "keys")?;
            let wrap_with = kms.get(&hpke_key_kms.provider)?;
            let changes = match store.load() {
                Ok(Some(_)) => store.rotate(&kem.0, grace, (wrap_with, &hpke_key_kms.key_id), now),
                Ok(None) => Err(anyhow::anyhow!(
                    "{} does not exist; `sealgate serve` makes the first keys on its first start",
                    store.path().display()
                )),
                Err(e) => Err(e),
            };
            let names: Vec<&str> = kem.0.iter().map(|k| k.name()).collect();
            (kms, changes, names.join(","))
        }
        KeysCommand::Retire { key_id } => {
            let kms = Providers::open(&data, &args.providers, None, "keys")?;
            (kms, store.retire(key_id, now), key_id.to_string())
        }
        KeysCommand::Export { out } => {
            let kms = Providers::open(&data, &args.providers, None, "keys")?;
            let exported = store.export(now).and_then(|(bundle, changes)| {
                let mut json = serde_json::to_vec_pretty(&bundle)?;
                json.push(b'\n');
                if out.as_os_str() == "-" {
                    std::io::Write::write_all(&mut std::io::stdout().lock(), &json).context("writing the bundle")?;
                } else {
                    write_file(&out, &json, 0o600)?;
                }
                Ok(changes)
            });
            audit(kms.log(), &exported, "all")?;
            for change in exported? {
                eprintln!("{}: key {} ({})", change.op, change.key_id, change.kem);
            }
            eprintln!("the bundle holds only KMS-sealed keys; `sealgate keys import` installs it on another replica");
            return Ok(());
        }
        KeysCommand::Import { bundle } => {
            let kms = Providers::open(&data, &args.providers, None, "keys")?;
            let changes = read_bundle(&bundle).and_then(|b| store.import(&b, &kms, now));
            (kms, changes, "all".to_owned())
        }
    };
    audit(kms.log(), &changes, &refused_key)?;
    for change in changes? {
        eprintln!("{}: key {} ({})", change.op, change.key_id, change.kem);
    }
    eprintln!("a running gateway picks the change up within a second (at once on SIGHUP)");
    Ok(())
}

/// Reads a bundle file (`-`: standard input), refusing anything that is not one.
fn read_bundle(path: &Path) -> Result<Bundle> {
    let name = if path.as_os_str() == "-" { "standard input".to_owned() } else { path.display().to_string() };
    let bytes = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes).context("reading standard input")?;
        bytes
    } else {
        std::fs::read(path).with_context(|| format!("reading {name}"))?
    };
    // serde's message names the field and position, and may quote a value of the bundle:
    // those are public parameters and KMS-wrapped keys, never a plaintext key.
    serde_json::from_slice(&bytes).with_context(|| format!("{name} is not a key bundle of `sealgate keys export`"))
}

fn list(store: &KeyStore, now: u64) -> Result<()> {
    let Some(list) = store.load()? else {
        bail!("{} does not exist; `sealgate serve` makes the first keys on its first start", store.path().display());
    };
    println!("KEY ID\tKEM\tSTATE\tCREATED\tRETIRE AFTER\tCONFIG SHA-256");
    for key in &list.keys {
        // A retiring key past its grace is no longer accepted, even before it is removed.
        let state = if key.expired(now) { "expired" } else { key.state.name() };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            key.key_id,
            key.kem_name(),
            state,
            timestamp(key.created),
            key.retire_after.map_or("-".into(), timestamp),
            key.config_sha256
        );
    }
    eprintln!(
        "shortest --grace: {} (key list max-age {} s + request timeout {} s)",
        humantime::format_duration(list.serving.min_grace()),
        list.serving.cache_max_age_secs,
        list.serving.request_timeout_secs
    );
    Ok(())
}

fn timestamp(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key_id: u8, kem: Kem, state: KeyState, created: u64, retire_after: Option<u64>) -> KeyEntry {
        KeyEntry { key_id, kem: kem.id(), state, created, retire_after, config_sha256: String::new() }
    }

    #[test]
    fn active_keys_are_advertised_first_and_expired_ones_not_at_all() {
        let list = KeyList {
            version: VERSION,
            serving: Serving::default(),
            keys: vec![
                key(1, Kem::XWing, KeyState::Retiring, 10, Some(100)),
                key(2, Kem::X25519HkdfSha256, KeyState::Retiring, 10, Some(100)),
                key(3, Kem::XWing, KeyState::Active, 20, None),
                key(4, Kem::X25519HkdfSha256, KeyState::Active, 20, None),
                key(5, Kem::X25519HkdfSha256, KeyState::Retired, 5, Some(100)),
            ],
        };
        let ids = |now| list.accepted(now).iter().map(|k| k.key_id).collect::<Vec<_>>();
        assert_eq!(ids(50), [4, 3, 2, 1]);
        assert_eq!(ids(100), [4, 3]);
        assert_eq!(list.next_expiry(), Some(100));
        assert_eq!(list.newest_active(), Some(20));
    }

    #[test]
    fn key_ids_count_on_and_skip_ids_still_held() {
        let mut list = KeyList { version: VERSION, ..KeyList::default() };
        assert_eq!(list.next_free_id().unwrap(), 1);
        list.keys.push(key(254, Kem::XWing, KeyState::Active, 9, None));
        list.keys.push(key(255, Kem::XWing, KeyState::Retired, 1, Some(5)));
        list.keys.push(key(0, Kem::XWing, KeyState::Retiring, 2, Some(5)));
        assert_eq!(list.next_free_id().unwrap(), 1, "255 and 0 are held; the count wraps");
        list.keys = (0..=u8::MAX).map(|id| key(id, Kem::XWing, KeyState::Active, 1, None)).collect();
        assert!(list.next_free_id().is_err());
    }

    #[test]
    fn kem_names_parse() {
        assert_eq!(parse_kems("all").unwrap().0, Kem::ALL.to_vec());
        assert_eq!(parse_kems("X-Wing").unwrap().0, vec![Kem::XWing]);
        assert_eq!(parse_kems("x25519").unwrap().0, vec![Kem::X25519HkdfSha256]);
        assert!(parse_kems("rsa").unwrap_err().contains("x25519, x-wing or all"));
    }
}
