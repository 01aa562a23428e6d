//! Who may call, and how often: tenants, their bearer tokens, model allowlists and rates.
//!
//! A tenant is created by `sealgate tenants add` ([`store`]), which prints its token once
//! and stores only its hash ([`token`]). A running gateway holds the tenants in a
//! [`Directory`] and checks every request with [`Directory::authorize`] after decapsulation
//! and before the body is parsed: the token from the inner `authorization` field, the model
//! the path names against the tenant's allowlist, then the tenant's rate ([`rate`]). The
//! outer request's headers are never consulted: the token only counts inside the encryption.
//!
//! Looking a token up by its SHA-256 in a hash map is safe against timing attacks: the
//! times an attacker can measure depend on hashes of tokens the attacker chose, and learning
//! which stored hash shares a prefix with those would need SHA-256 preimages. The entry
//! found is still compared in constant time.

pub mod rate;
pub mod store;
pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use rate::{RateLimit, TokenBucket};
pub use store::{Store, TenantRecord, TenantSpec};
pub use token::{Token, TokenHash};

/// The models a tenant may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelAllowlist {
    /// Every model the gateway serves (`--models '*'`).
    All,
    /// Only these (sorted, no duplicates).
    Only(Vec<String>),
}

impl ModelAllowlist {
    /// An allowlist of these names.
    pub fn only<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort();
        names.dedup();
        Self::Only(names)
    }

    /// Parses the `--models` argument: `*`, or names separated by commas.
    pub fn parse(text: &str) -> Result<Self, String> {
        let names: Vec<&str> = text.split(',').map(str::trim).collect();
        if names == ["*"] {
            return Ok(Self::All);
        }
        if names.iter().any(|n| n.is_empty() || *n == "*" || n.len() > 128 || n.contains(char::is_control)) {
            return Err(
                "--models takes '*' or model names separated by commas, such as breast-cancer,credit-risk".into()
            );
        }
        Ok(Self::only(names))
    }

    /// True when `model` is on the list.
    pub fn allows(&self, model: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.binary_search_by(|n| n.as_str().cmp(model)).is_ok(),
        }
    }

    /// The names as stored and shown: `["*"]` for every model.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".into()],
            Self::Only(names) => names.clone(),
        }
    }
}

impl Serialize for ModelAllowlist {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ModelAllowlist {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&names.join(",")).map_err(serde::de::Error::custom)
    }
}

/// One tenant as the gateway holds it.
#[derive(Debug)]
pub struct Tenant {
    name: String,
    models: ModelAllowlist,
    bucket: Option<TokenBucket>,
}

impl Tenant {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when it may call `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.allows(model)
    }
}

/// Permission for one request: who is calling.
#[derive(Debug, Clone)]
pub struct Grant(Arc<Tenant>);

impl Grant {
    /// The tenant's name (safe to log: names are chosen by the operator).
    pub fn tenant(&self) -> &str {
        &self.0.name
    }

    /// True when the tenant may call `model` (to filter `GET /v2/models`).
    pub fn allows(&self, model: &str) -> bool {
        self.0.allows(model)
    }
}

/// Why a request was refused. Each maps to one inner status (see the gateway's
/// `authorization` module); none says which tenants or tokens exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No token (401).
    MissingToken,
    /// Not a `Bearer sg_...` token (401).
    MalformedToken,
    /// A well-formed token that no tenant holds, or held before its grace ended (401).
    UnknownToken,
    /// The tenant may not call this model (403).
    ModelNotAllowed,
    /// The tenant is over its rate (429).
    RateLimited {
        /// When the next request would be admitted.
        retry_after: Duration,
    },
}

/// A token the directory knows.
#[derive(Debug)]
struct Entry {
    hash: TokenHash,
    /// Unix seconds after which it stops working (a rotated-out token).
    expires: Option<u64>,
    tenant: Arc<Tenant>,
}

#[derive(Debug, Default)]
struct Snapshot {
    tokens: HashMap<TokenHash, Entry>,
    tenants: Vec<(TenantRecord, Arc<Tenant>)>,
}

/// The caller used when anonymous access is allowed (`--danger-allow-anonymous`).
static ANONYMOUS: LazyLock<Arc<Tenant>> =
    LazyLock::new(|| Arc::new(Tenant { name: "anonymous".into(), models: ModelAllowlist::All, bucket: None }));

/// The tenants a gateway serves, replaceable while it runs.
#[derive(Debug)]
pub struct Directory {
    current: RwLock<Arc<Snapshot>>,
    anonymous: bool,
}

impl Directory {
    /// A directory of `tenants`. With `anonymous`, a request without any `authorization`
    /// field is served as the tenant `anonymous`, allowed every model; a token that is
    /// present is still checked.
    pub fn from_tenants(tenants: Vec<TenantRecord>, anonymous: bool) -> Self {
        let directory = Self { current: RwLock::new(Arc::default()), anonymous };
        directory.replace(tenants);
        directory
    }

    /// Replaces the tenants (after the file changed). A tenant whose allowlist and rate are
    /// unchanged keeps its bucket, so a reload does not hand out a fresh burst.
    pub fn replace(&self, tenants: Vec<TenantRecord>) {
        let previous = self.snapshot();
        let now = Instant::now();
        let mut next = Snapshot::default();
        for record in tenants {
            let kept = previous.tenants.iter().find(|(old, _)| {
                old.name == record.name && old.models == record.models && old.rate_limit() == record.rate_limit()
            });
            let tenant = match kept {
                Some((_, tenant)) => tenant.clone(),
                None => Arc::new(Tenant {
                    name: record.name.clone(),
                    models: record.models.clone(),
                    bucket: record.rate_limit().map(|limit| TokenBucket::new(limit, now)),
                }),
            };
            for stored in &record.tokens {
                // `Store::load` checked every hash, so none is skipped here in practice.
                if let Some(hash) = TokenHash::from_hex(&stored.sha256) {
                    next.tokens.insert(hash, Entry { hash, expires: stored.expires, tenant: tenant.clone() });
                }
            }
            next.tenants.push((record, tenant));
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    /// How many tenants there are.
    pub fn len(&self) -> usize {
        self.snapshot().tenants.len()
    }

    /// True when there is no tenant.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Decides one request: `authorization` is the inner request's field value, `model`
    /// the model its path names (none for `GET /v2/models` and health).
    pub fn authorize(&self, authorization: Option<&[u8]>, model: Option<&str>) -> Result<Grant, Denial> {
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.authorize_at(authorization, model, Instant::now(), unix_now)
    }

    /// [`Directory::authorize`] at a given time, for tests.
    pub fn authorize_at(
        &self,
        authorization: Option<&[u8]>,
        model: Option<&str>,
        now: Instant,
        unix_now: u64,
    ) -> Result<Grant, Denial> {
        if authorization.is_none() && self.anonymous {
            return Ok(Grant(ANONYMOUS.clone()));
        }
        let token = token::bearer_token(authorization).map_err(|e| match e {
            token::BearerError::Missing => Denial::MissingToken,
            token::BearerError::Malformed => Denial::MalformedToken,
        })?;
        let hash = TokenHash::of(token);
        let snapshot = self.snapshot();
        let entry = snapshot.tokens.get(&hash).filter(|e| e.hash.ct_eq(&hash)).ok_or(Denial::UnknownToken)?;
        if entry.expires.is_some_and(|end| unix_now >= end) {
            return Err(Denial::UnknownToken);
        }
        let tenant = &entry.tenant;
        if model.is_some_and(|m| !tenant.allows(m)) {
            return Err(Denial::ModelNotAllowed);
        }
        if let Some(bucket) = &tenant.bucket {
            bucket.try_take(now).map_err(|retry_after| Denial::RateLimited { retry_after })?;
        }
        Ok(Grant(tenant.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &Token) -> Vec<u8> {
        format!("Bearer {}", token.expose()).into_bytes()
    }

    #[test]
    fn tokens_models_and_rates_are_enforced() {
        let (clinic, bank) = (Token::generate(), Token::generate());
        let directory = Directory::from_tenants(
            vec![
                TenantSpec::new("clinic", ModelAllowlist::only(["breast-cancer"]), None, None)
                    .unwrap()
                    .with_token(&clinic, 0),
                TenantSpec::new("bank", ModelAllowlist::All, Some(1.0), Some(2)).unwrap().with_token(&bank, 0),
            ],
            false,
        );
        let at = |header: Option<&[u8]>, model| directory.authorize_at(header, model, Instant::now(), 10);
        assert_eq!(at(Some(&bearer(&clinic)), Some("breast-cancer")).unwrap().tenant(), "clinic");
        assert_eq!(at(Some(&bearer(&clinic)), None).unwrap().tenant(), "clinic");
        assert_eq!(at(Some(&bearer(&clinic)), Some("credit-risk")).unwrap_err(), Denial::ModelNotAllowed);
        assert_eq!(at(None, Some("breast-cancer")).unwrap_err(), Denial::MissingToken);
        assert_eq!(at(Some(b""), None).unwrap_err(), Denial::MissingToken);
        assert_eq!(at(Some(b"Bearer nonsense"), None).unwrap_err(), Denial::MalformedToken);
        assert_eq!(at(Some(&bearer(&Token::generate())), None).unwrap_err(), Denial::UnknownToken);

        let start = Instant::now();
        let bank = bearer(&bank);
        for _ in 0..2 {
            assert!(directory.authorize_at(Some(&bank), Some("credit-risk"), start, 10).is_ok());
        }
        let Err(Denial::RateLimited { retry_after }) = directory.authorize_at(Some(&bank), Some("x"), start, 10) else {
            panic!("the third request at once is over the burst")
        };
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
        let later = start + Duration::from_secs(1);
        assert!(directory.authorize_at(Some(&bank), Some("credit-risk"), later, 10).is_ok());
    }

    #[test]
    fn rotated_tokens_stop_after_their_grace_and_reloads_keep_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let old = store.add(TenantSpec::new("t", ModelAllowlist::All, Some(1.0), Some(1)).unwrap(), 100).unwrap();
        let directory = Directory::from_tenants(store.load().unwrap(), false);
        let now = Instant::now();
        assert!(directory.authorize_at(Some(&bearer(&old)), None, now, 100).is_ok());

        let new = store.rotate_token("t", Duration::from_secs(50), 120).unwrap();
        directory.replace(store.load().unwrap());
        // The bucket survived the reload: still empty at the same instant.
        assert!(matches!(directory.authorize_at(Some(&bearer(&new)), None, now, 121), Err(Denial::RateLimited { .. })));
        let later = now + Duration::from_secs(5);
        assert!(directory.authorize_at(Some(&bearer(&old)), None, later, 169).is_ok(), "within the grace");
        let much_later = later + Duration::from_secs(5);
        assert_eq!(
            directory.authorize_at(Some(&bearer(&old)), None, much_later, 170).unwrap_err(),
            Denial::UnknownToken
        );
        assert!(directory.authorize_at(Some(&bearer(&new)), None, much_later, 170).is_ok());

        store.remove("t", 200).unwrap();
        directory.replace(store.load().unwrap());
        assert!(directory.is_empty());
        assert_eq!(
            directory.authorize_at(Some(&bearer(&new)), None, much_later, 200).unwrap_err(),
            Denial::UnknownToken
        );
    }

    #[test]
    fn anonymous_access_only_when_allowed_and_only_without_a_token() {
        let directory = Directory::from_tenants(Vec::new(), true);
        assert_eq!(directory.authorize(None, Some("any")).unwrap().tenant(), "anonymous");
        assert_eq!(directory.authorize(Some(b"Bearer x"), None).unwrap_err(), Denial::MalformedToken);
        assert_eq!(Directory::from_tenants(Vec::new(), false).authorize(None, None).unwrap_err(), Denial::MissingToken);
    }

    #[test]
    fn allowlists_parse_and_serialize() {
        assert_eq!(ModelAllowlist::parse("*").unwrap(), ModelAllowlist::All);
        let list = ModelAllowlist::parse("credit-risk, breast-cancer,credit-risk").unwrap();
        assert_eq!(list.names(), ["breast-cancer", "credit-risk"]);
        assert!(list.allows("credit-risk") && !list.allows("credit"));
        for bad in ["", "a,,b", "a,*", " "] {
            assert!(ModelAllowlist::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(serde_json::to_string(&ModelAllowlist::All).unwrap(), r#"["*"]"#);
        assert_eq!(serde_json::from_str::<ModelAllowlist>(r#"["b","a"]"#).unwrap(), ModelAllowlist::only(["a", "b"]));
    }
}
