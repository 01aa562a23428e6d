//! The HPKE keys step of `serve`: the key list read (made on first start), its keys unwrapped,
//! and keeping them current while serving.
//!
//! At start the gateway records in `keys/keys.json` what it advertises (the key list's
//! max-age and its request timeout, which bound the shortest grace `sealgate keys rotate`
//! accepts), removes keys whose grace has passed, and unwraps the accepted ones. While it
//! runs, [`watch_keys`] looks at the list every second and at once on SIGHUP: it rotates
//! when `--rotate-keys-every` says a rotation is due, removes expired keys, and whenever the
//! accepted set differs from the one being served, unwraps the new keys and swaps the whole
//! set into the gateway. Requests in flight keep the set they started with. The KMS
//! providers that wrap HPKE keys (`--hpke-key-kms`'s, and those of the keys in the list) are
//! therefore kept past start-up, used only when a new key appears; [`KeyWatch::keep_kms`]
//! drops every other one, with its credentials.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use sealgate_models::artifact::KmsSet;
use sealgate_models::audit::AuditLog;
use sealgate_models::kms::KmsProvider;
use sealgate_protocol::{GatewayKey, GatewayKeys, Kem};

use super::ServeArgs;
use crate::commands::keys::{KeyList, KeyStore, Serving, audit};
use crate::commands::tenants::unix_now;
use crate::data_dir::DataDir;
use crate::gateway::Gateway;
use crate::providers::{KeyRef, Providers};

/// The keys a gateway serves and what it needs to keep them current.
pub(super) struct KeyWatch {
    store: KeyStore,
    kms: Option<Providers>,
    /// The providers the HPKE keys need: the one new keys are wrapped with, and those that
    /// wrapped the keys unwrapped at start.
    needs: BTreeSet<String>,
    wrap_with: KeyRef,
    every: Option<Duration>,
    log: AuditLog,
    /// Keys already unwrapped, by id and configuration hash, so a reload unwraps only new ones.
    unwrapped: HashMap<(u8, String), GatewayKey>,
    /// The accepted keys (id and hash) and the next rotation last handed to the gateway.
    published: (Vec<(u8, String)>, Option<u64>),
    current: GatewayKeys,
    /// After a failed scheduled rotation (say the KMS is down), when to try again.
    retry_rotation_at: u64,
    /// Scheduled rotations failed in a row: the retry backs off (2 s, 4 s, ... at most a minute).
    rotation_failures: u32,
}

/// How long after the `failures`-th failed scheduled rotation in a row the next is tried:
/// 2 s doubling to at most 60 s, so a KMS that is back is used within seconds and one that
/// stays down is asked (and each refusal audited) about once a minute.
fn rotation_retry_secs(failures: u32) -> u64 {
    2u64.saturating_pow(failures.clamp(1, 6)).min(60)
}

/// Prepares the key list (made on first start, wrapped with `--hpke-key-kms`), records what
/// the gateway advertises in it and unwraps the accepted keys.
pub(super) fn hpke_keys(args: &ServeArgs, data: &DataDir, kms: &Providers) -> Result<KeyWatch> {
    let hpke = &args.hpke_key_kms;
    let wrap_with = kms.get(&hpke.provider)?;
    let store = KeyStore::new(data);
    let log = kms.log().clone();
    let serving = Serving {
        cache_max_age_secs: args.key_cache_max_age.as_secs(),
        request_timeout_secs: args.request_timeout_secs.max(1),
    };
    let changes = store.prepare(serving, kms, (wrap_with, &hpke.key_id), unix_now());
    audit(&log, &changes, "-")?;
    changes.context("preparing the HPKE key list")?;
    if let Some(every) = args.rotate_keys_every {
        anyhow::ensure!(
            every >= serving.min_grace(),
            "--rotate-keys-every {} is shorter than --key-cache-max-age plus --request-timeout-secs ({}): \
             keys would be rotated faster than clients may cache them",
            humantime::format_duration(every),
            humantime::format_duration(serving.min_grace())
        );
    }
    let list = load(&store)?;
    let mut unwrapped = HashMap::new();
    let noting = Noting { kms, asked: RefCell::new(BTreeSet::from([hpke.provider.clone()])) };
    let current = build(&store, &mut unwrapped, &list, unix_now(), &noting)?;
    Ok(KeyWatch {
        store,
        kms: None,
        needs: noting.asked.into_inner(),
        wrap_with: hpke.clone(),
        every: args.rotate_keys_every,
        log,
        unwrapped,
        // Nothing published yet: the first check hands the gateway the schedule as well.
        published: (Vec::new(), None),
        current,
        retry_rotation_at: 0,
        rotation_failures: 0,
    })
}

/// A provider set that notes the names asked for: which providers the HPKE keys need.
struct Noting<'a> {
    kms: &'a Providers,
    asked: RefCell<BTreeSet<String>>,
}

impl KmsSet for Noting<'_> {
    fn provider(&self, name: &str) -> Option<&dyn KmsProvider> {
        self.asked.borrow_mut().insert(name.to_owned());
        self.kms.provider(name)
    }
}

fn load(store: &KeyStore) -> Result<KeyList> {
    store.load()?.with_context(|| format!("{} is missing", store.path().display()))
}

/// The accepted keys of `list` at `now`, unwrapping only those not in `unwrapped` already;
/// keys no longer accepted are dropped from it.
fn build(
    store: &KeyStore,
    unwrapped: &mut HashMap<(u8, String), GatewayKey>,
    list: &KeyList,
    now: u64,
    kms: &dyn KmsSet,
) -> Result<GatewayKeys> {
    let keys = store.gateway_keys(list, now, |entry| {
        let slot = (entry.key_id, entry.config_sha256.clone());
        if let Some(key) = unwrapped.get(&slot) {
            return Ok(key.clone());
        }
        let key = store.unwrap_key(entry, kms)?;
        unwrapped.insert(slot, key.clone());
        Ok(key)
    })?;
    let accepted: Vec<(u8, String)> = list.accepted(now).iter().map(|k| (k.key_id, k.config_sha256.clone())).collect();
    unwrapped.retain(|slot, _| accepted.contains(slot));
    Ok(keys)
}

impl KeyWatch {
    /// The keys to serve at start.
    pub(super) fn current(&self) -> GatewayKeys {
        self.current.clone()
    }

    /// Keeps the KMS providers the HPKE keys need, for unwrapping the keys rotations add, and
    /// drops the others (those only the models needed): their credentials are not needed
    /// after start-up. Says in the log which were kept and which dropped.
    pub(super) fn keep_kms(&mut self, mut kms: Providers) {
        let needs: Vec<&str> = self.needs.iter().map(String::as_str).collect();
        let dropped = kms.keep_only(&needs);
        tracing::info!(
            kept = %kms.names().join(","),
            dropped = %if dropped.is_empty() { "none".to_owned() } else { dropped.join(",") },
            "KMS providers after start-up: only those that wrap the HPKE keys are kept"
        );
        self.kms = Some(kms);
    }

    /// When the next scheduled rotation is due (Unix seconds), if one is scheduled.
    fn next_rotation(&self, list: &KeyList) -> Option<u64> {
        let every = self.every?.as_secs();
        Some(list.newest_active().map_or(0, |created| created.saturating_add(every)))
    }

    /// One look at the key list: rotates when due, removes expired keys, and returns the
    /// set to serve when it differs from the one served (or `forced`, on SIGHUP).
    fn check(&mut self, forced: bool) -> Result<Option<(GatewayKeys, Option<SystemTime>)>> {
        let Some(kms) = self.kms.take() else { return Ok(None) };
        let result = self.check_with(forced, &kms);
        self.kms = Some(kms);
        result
    }

    fn check_with(&mut self, forced: bool, kms: &Providers) -> Result<Option<(GatewayKeys, Option<SystemTime>)>> {
        let now = unix_now();
        let mut list = load(&self.store)?;
        if self.next_rotation(&list).is_some_and(|due| due <= now) && now >= self.retry_rotation_at {
            let grace = self.every.unwrap_or_default().max(list.serving.min_grace());
            let wrap_with = kms.get(&self.wrap_with.provider)?;
            // A full audit disk refuses the rotation before it starts (it could not be
            // audited, nor its refusal): retried like a KMS that is down.
            let changes = match self.log.ensure_room() {
                Ok(()) => {
                    let changes = self.store.rotate(&Kem::ALL, grace, (wrap_with, &self.wrap_with.key_id), now);
                    audit(&self.log, &changes, "all")?;
                    changes
                }
                Err(e) => Err(e.into()),
            };
            match changes {
                Ok(_) => {
                    self.rotation_failures = 0;
                    tracing::info!(grace = %humantime::format_duration(grace), "rotated the HPKE keys on schedule")
                }
                Err(e) => {
                    self.rotation_failures = self.rotation_failures.saturating_add(1);
                    let retry_in = rotation_retry_secs(self.rotation_failures);
                    self.retry_rotation_at = now.saturating_add(retry_in);
                    tracing::error!(
                        error = %format!("{e:#}"),
                        failures = self.rotation_failures,
                        retry_in_s = retry_in,
                        "the scheduled key rotation failed; the keys served before stay in force and it is retried"
                    );
                }
            }
            list = load(&self.store)?;
        }
        if list.next_expiry().is_some_and(|t| t <= now) {
            let changes = self.store.prune(now);
            audit(&self.log, &changes, "-")?;
            changes?;
            list = load(&self.store)?;
        }
        let accepted: Vec<(u8, String)> =
            list.accepted(now).iter().map(|k| (k.key_id, k.config_sha256.clone())).collect();
        let next_rotation = self.next_rotation(&list);
        if !forced && (&accepted, next_rotation) == (&self.published.0, self.published.1) {
            return Ok(None);
        }
        let keys = build(&self.store, &mut self.unwrapped, &list, now, kms)?;
        self.current = keys.clone();
        self.published = (accepted, next_rotation);
        let at = next_rotation.map(|t| UNIX_EPOCH + Duration::from_secs(t));
        Ok(Some((keys, at)))
    }
}

/// Keeps the gateway's keys current: the key list is looked at every second and at once on
/// SIGHUP (see the module docs). A list that cannot be read, or a key that cannot be
/// unwrapped, is logged and the keys served before stay in force.
pub(super) async fn watch_keys(watch: KeyWatch, gateway: Arc<Gateway>) {
    let watch = Arc::new(Mutex::new(watch));
    // A broken list would otherwise be logged every second: each distinct error once.
    let mut last_error = None;
    let mut ticker = crate::watch::Ticker::new();
    loop {
        let forced = ticker.next().await == crate::watch::Trigger::Signal;
        // The KMS may be a network service: unwrapping and wrapping run on a blocking thread.
        let watch = watch.clone();
        let checked =
            tokio::task::spawn_blocking(move || watch.lock().unwrap_or_else(PoisonError::into_inner).check(forced))
                .await;
        match checked {
            Ok(Ok(Some((keys, next_rotation)))) => {
                let ids: Vec<u8> = keys.configs().iter().map(|c| c.key_id()).collect();
                gateway.replace_keys(keys, next_rotation);
                last_error = None;
                tracing::info!(keys = ?ids, signal = forced, "serving a new set of HPKE keys");
            }
            Ok(Ok(None)) => last_error = None,
            Ok(Err(e)) => {
                let error = format!("{e:#}");
                if last_error.as_ref() != Some(&error) {
                    tracing::error!(error = %error, "the HPKE key list could not be applied; keeping the keys served before");
                    last_error = Some(error);
                }
            }
            Err(e) => tracing::error!(error = %e, "the HPKE key check did not finish"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rotation_retry_secs;

    #[test]
    fn a_failed_scheduled_rotation_is_retried_sooner_first_then_once_a_minute() {
        let delays: Vec<u64> = (1..=8).map(rotation_retry_secs).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
