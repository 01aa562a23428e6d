//! Loading the models a gateway serves: sealed artifacts, decrypted in memory.
//!
//! `serve` loads every `*.sealed` file of the models folder. Each is opened with the
//! configured KMS providers straight into locked memory, handed to ONNX Runtime, and the
//! buffer is wiped as soon as the sessions exist. The model's name and version come from the
//! artifact's authenticated header, and the file name must agree, so an artifact renamed to
//! pose as another model is refused. A plaintext `.onnx` in the folder stops start-up unless
//! `--danger-allow-plaintext-models` is given. A name + version, once published in this data
//! dir, keeps its digest forever: new content needs a new version.
//!
//! `serve --models s3://BUCKET/PREFIX/` loads every `NAME/VERSION.sealed` of the bucket the
//! same way ([`load_bucket`]): downloaded into memory, never to disk, the object key standing
//! for the file name. The downloads start first, on a thread of their own ([`Prefetch`]),
//! so that they overlap the rest of start-up (ONNX Runtime, the keys, TLS) and each object's
//! download overlaps the loading of the one before it.
//!
//! Loading is all or nothing. A KMS that cannot be reached is retried with exponential
//! backoff; any other failure stops start-up with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sealgate_models::artifact::{self, DigestCheck, SealRequest};
use sealgate_models::kms::KmsProvider;
use sealgate_models::runtime::Environment;
use sealgate_models::{Model, ModelFiles, ModelRegistry, ModelSource};
use sha2::{Digest as _, Sha256};

use crate::data_dir::{DataDir, write_file};
use crate::progress::Progress;
use crate::providers::{Providers, Refusal, subject_of};
use crate::s3::{self, ModelBucket, S3Location};

/// How to load.
pub struct LoadOptions {
    /// Accept plaintext `.onnx` files (development only).
    pub allow_plaintext: bool,
    /// Sessions per model.
    pub sessions: usize,
    /// Retries when the KMS is unreachable.
    pub kms_retries: u32,
}

/// A model of the embedded default: served as `name` version 1 from the plaintext ONNX file
/// `source` (a demo model, or a real model `cargo xtask setup` installed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultModel {
    /// The name it is served as (the file stem of `source`).
    pub name: String,
    /// The plaintext ONNX file.
    pub source: PathBuf,
}

impl DefaultModel {
    /// Every `*.onnx` of `dir`, each served under its file stem, in name order.
    pub fn all_in(dir: &Path) -> Result<Vec<Self>> {
        let mut models = Vec::new();
        for source in ModelRegistry::onnx_files_in(dir)? {
            let ModelSource::OnnxFile(path) = source;
            let name = model_name_of(&path)?.to_owned();
            models.push(Self { name, source: path });
        }
        Ok(models)
    }
}

/// The version every model of the embedded default is sealed as.
const DEFAULT_VERSION: &str = "1";

/// Seals into `data.models_dir()`, with `kms`, each of `models` that has no artifact
/// `NAME.sealed` there yet, and returns the artifacts of all of them in order: what the
/// embedded default serves.
///
/// Each artifact is written whole (`write_file`), so an interrupted start leaves only
/// complete ones and the next start seals the rest; a model installed later (`cargo xtask
/// setup` after a first start without the real models) is sealed on the next start. An
/// artifact already there is kept, but only while its source still has the digest this data
/// dir published for that name and version: a source that changed since (an edited demo
/// model, a new pin in setup) stops start-up, because a published version never changes.
pub fn seal_default_models(
    data: &DataDir,
    models: &[DefaultModel],
    kms: (&dyn KmsProvider, &str),
) -> Result<Vec<PathBuf>> {
    let dir = data.models_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let published = Published::open(data)?;
    let mut artifacts = Vec::with_capacity(models.len());
    for model in models {
        let target = dir.join(format!("{}.sealed", model.name));
        let plaintext = std::fs::read(&model.source).with_context(|| format!("reading {}", model.source.display()))?;
        if target.exists() {
            published.check_source(&model.name, DEFAULT_VERSION, &plaintext, &model.source)?;
        } else {
            let request = SealRequest {
                model: &model.name,
                version: DEFAULT_VERSION,
                primary: kms,
                recovery: vec![],
                frame_size: artifact::DEFAULT_FRAME_SIZE,
            };
            let mut sealed = Vec::new();
            artifact::seal(&request, &plaintext, &mut sealed, |_| {})
                .with_context(|| format!("sealing {}", model.source.display()))?;
            write_file(&target, &sealed, 0o644)?;
        }
        artifacts.push(target);
    }
    Ok(artifacts)
}

/// Loads every model of `dir`, opening the sealed ones with `kms`.
pub fn load(
    env: &Environment,
    data: &DataDir,
    kms: &Providers,
    dir: &Path,
    options: &LoadOptions,
) -> Result<ModelRegistry> {
    let mut sealed = Vec::new();
    let mut plaintext = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing models in {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("sealed") => sealed.push(path),
            Some("onnx") => plaintext.push(path),
            _ => {}
        }
    }
    sealed.sort();
    plaintext.sort();
    if !plaintext.is_empty() && !options.allow_plaintext {
        bail!(
            "refusing plaintext model {} (seal it with `sealgate seal`, or pass \
             --danger-allow-plaintext-models for development)",
            plaintext[0].display()
        );
    }
    if sealed.is_empty() && plaintext.is_empty() {
        bail!("no models (*.sealed) found in {}", dir.display());
    }
    load_files(env, data, kms, &sealed, &plaintext, options)
}

/// Loads the artifacts `sealed` (opened with `kms`) and the plaintext models `plaintext`.
pub fn load_files(
    env: &Environment,
    data: &DataDir,
    kms: &Providers,
    sealed: &[PathBuf],
    plaintext: &[PathBuf],
    options: &LoadOptions,
) -> Result<ModelRegistry> {
    let mut published = Published::open(data)?;
    let mut registry = ModelRegistry::default();
    let empty_dir = data.empty_external_data_dir()?;
    for path in sealed {
        // Every refusal is audited, including those after the KMS unwrapped the key
        // (commitment, header MAC, frames, identity, immutability).
        let loaded = with_retries(options.kms_retries, || load_sealed(env, path, kms, options.sessions, &empty_dir))
            .and_then(|model| published.check(&model).map(|()| model).map_err(Refusal::new));
        let model = kms.audit_refusal("load", path, loaded)?;
        registry.insert(model)?;
    }
    if !plaintext.is_empty() {
        tracing::warn!(count = plaintext.len(), "serving PLAINTEXT models (--danger-allow-plaintext-models)");
        for path in plaintext {
            let name = model_name_of(path)?;
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            let files = ModelFiles { onnx: &bytes, external: &[], empty_dir: Some(&empty_dir) };
            let model = Model::from_files(env, name, "1", &files, options.sessions, digest)?;
            published.check(&model)?;
            registry.insert(model)?;
        }
    }
    published.save(data)?;
    Ok(registry)
}

/// One object of the bucket as the download thread hands it over: its key, the model and
/// version its key claims, and its bytes and version (or why they could not be had).
struct Fetched {
    key: String,
    name: String,
    version: String,
    downloaded: Result<(Vec<u8>, s3::ObjectInfo)>,
}

/// The downloads of `serve --models s3://...`, running on a thread of their own from the
/// start of `serve`: the listing, then each artifact in key order, one object ahead of the
/// loading (a rendezvous channel: the thread downloads the next object while the previous
/// one is opened, so at most two downloaded objects are in memory). It stops at the first
/// failure, after the retries (`--kms-retries`, with backoff), and hands that failure over.
/// Nothing is written anywhere by the thread: the audit entries are made by [`load_bucket`].
pub struct Prefetch {
    bucket: std::sync::Arc<ModelBucket>,
    fetched: std::sync::mpsc::Receiver<Result<Fetched>>,
}

impl Prefetch {
    /// Starts listing and downloading the artifacts of `bucket`.
    pub fn start(bucket: ModelBucket, retries: u32) -> Result<Self> {
        let bucket = std::sync::Arc::new(bucket);
        let (sender, fetched) = std::sync::mpsc::sync_channel(0);
        let thread_bucket = bucket.clone();
        std::thread::Builder::new()
            .name("sealgate-s3-prefetch".into())
            .spawn(move || prefetch(&thread_bucket, retries, &sender))
            .context("starting the S3 download thread")?;
        Ok(Self { bucket, fetched })
    }

    /// The bucket downloaded from.
    pub fn bucket(&self) -> &ModelBucket {
        &self.bucket
    }
}

/// The download thread's work (see [`Prefetch`]); a send fails only when start-up already
/// gave up, and then the thread ends.
fn prefetch(bucket: &ModelBucket, retries: u32, sender: &std::sync::mpsc::SyncSender<Result<Fetched>>) {
    let location = bucket.location();
    let started = std::time::Instant::now();
    let objects = s3::with_retries(retries, &format!("listing {location}"), || bucket.list())
        .and_then(|keys| bucket_models(location, &keys));
    tracing::debug!(%location, list_ms = started.elapsed().as_millis() as u64, "listed the bucket");
    let objects = match objects {
        Ok(objects) if objects.is_empty() => {
            let _ = sender.send(Err(anyhow::anyhow!("no models (NAME/VERSION.sealed) found in {location}")));
            return;
        }
        Ok(objects) => objects,
        Err(e) => {
            let _ = sender.send(Err(e));
            return;
        }
    };
    for (key, name, version) in objects {
        let downloaded = download(bucket, &key, retries);
        let failed = downloaded.is_err();
        if sender.send(Ok(Fetched { key, name, version, downloaded })).is_err() || failed {
            return;
        }
    }
}

/// Loads every `NAME/VERSION.sealed` under the prefix of the bucket of `prefetch`: each
/// downloaded into memory, recorded in the audit log with its version id and ETag, then
/// opened and checked exactly as a file is ([`load_sealed_bytes`]), the key standing for the
/// file name. A plaintext `.onnx` under the prefix stops start-up; other keys are ignored. S3
/// or the KMS unreachable is retried with backoff (`--kms-retries`), then start-up fails.
pub fn load_bucket(
    env: &Environment,
    data: &DataDir,
    kms: &Providers,
    prefetch: Prefetch,
    options: &LoadOptions,
) -> Result<ModelRegistry> {
    let mut published = Published::open(data)?;
    let mut registry = ModelRegistry::default();
    let empty_dir = data.empty_external_data_dir()?;
    let bucket = prefetch.bucket();
    // The thread ends after the last object (or the first failure), closing the channel.
    for fetched in prefetch.fetched.iter() {
        let Fetched { key, name, version, downloaded } = fetched?;
        let claimed = (name.as_str(), version.as_str());
        let model = open_object(env, kms, bucket, &key, claimed, downloaded, options, &empty_dir, &mut published)?;
        registry.insert(model)?;
    }
    if registry.iter().next().is_none() {
        bail!("the S3 download thread ended without a model from {}", bucket.location());
    }
    published.save(data)?;
    Ok(registry)
}

/// Loads the objects of `bucket` whose model `served` says is not served yet and that are
/// not in `refused`, and hands each model that loaded to `serve`: `--models-refresh`. A
/// refused object (tampered, renamed, ...) is added to `refused` and not tried again until
/// a restart; S3 or the KMS unreachable is not retried here but at the next refresh.
#[allow(clippy::too_many_arguments, reason = "one caller, the refresh thread; a struct would only rename them")]
pub fn load_new_objects(
    env: &Environment,
    data: &DataDir,
    kms: &Providers,
    bucket: &ModelBucket,
    options: &LoadOptions,
    refused: &mut std::collections::BTreeSet<String>,
    served: impl Fn(&str, &str) -> bool,
    mut serve: impl FnMut(Model) -> Result<()>,
) -> Result<usize> {
    let keys = bucket.list().map_err(|e| anyhow::anyhow!("listing {}: {e}", bucket.location()))?;
    let objects = bucket_models(bucket.location(), &keys)?;
    let new: Vec<_> =
        objects.iter().filter(|(key, name, version)| !refused.contains(key) && !served(name, version)).collect();
    if new.is_empty() {
        return Ok(0);
    }
    let mut published = Published::open(data)?;
    let empty_dir = data.empty_external_data_dir()?;
    let mut loaded = 0;
    let mut failure = None;
    for (key, name, version) in new {
        match load_object(env, kms, bucket, key, (name, version), options, &empty_dir, &mut published) {
            Ok(model) => {
                serve(model)?;
                loaded += 1;
            }
            Err(e) => {
                let text = format!("{e:#}");
                if !text.contains("unreachable") && !text.contains("unavailable") {
                    refused.insert(key.clone());
                }
                failure.get_or_insert(e);
            }
        }
    }
    published.save(data)?;
    match failure {
        Some(e) => Err(e.context(format!("{loaded} new version(s) loaded, then"))),
        None => Ok(loaded),
    }
}

/// The `(key, name, version)` of every artifact among `keys`; a plaintext model is refused.
fn bucket_models(location: &S3Location, keys: &[String]) -> Result<Vec<(String, String, String)>> {
    let mut objects = Vec::new();
    for key in keys {
        if let Some((name, version)) = location.model_of(key) {
            objects.push((key.clone(), name.to_owned(), version.to_owned()));
        } else if key.ends_with(".onnx") {
            bail!(
                "refusing plaintext model {} (seal it with `sealgate seal` and publish it with `sealgate publish`)",
                location.url_of(key)
            );
        }
    }
    Ok(objects)
}

/// Downloads the object at `key` into memory, retrying an unreachable S3 `retries` times.
fn download(bucket: &ModelBucket, key: &str, retries: u32) -> Result<(Vec<u8>, s3::ObjectInfo)> {
    let url = bucket.location().url_of(key);
    let started = std::time::Instant::now();
    let downloaded = s3::with_retries(retries, &format!("downloading {url}"), || bucket.get(key))?;
    let elapsed = started.elapsed();
    let bytes = downloaded.0.len();
    tracing::info!(
        object = %url,
        bytes,
        download_ms = elapsed.as_millis() as u64,
        download_mb_per_s = (bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)).round(),
        "fetched the sealed artifact from S3"
    );
    Ok(downloaded)
}

/// Downloads one object and loads it ([`open_object`]).
#[allow(clippy::too_many_arguments, reason = "one call site per caller; a struct would only rename them")]
fn load_object(
    env: &Environment,
    kms: &Providers,
    bucket: &ModelBucket,
    key: &str,
    claimed: (&str, &str),
    options: &LoadOptions,
    empty_dir: &Path,
    published: &mut Published,
) -> Result<Model> {
    let downloaded = download(bucket, key, options.kms_retries);
    open_object(env, kms, bucket, key, claimed, downloaded, options, empty_dir, published)
}

/// Loads one downloaded object, auditing the download (or its failure) and any refusal.
#[allow(clippy::too_many_arguments, reason = "two callers; a struct would only rename them")]
fn open_object(
    env: &Environment,
    kms: &Providers,
    bucket: &ModelBucket,
    key: &str,
    claimed: (&str, &str),
    downloaded: Result<(Vec<u8>, s3::ObjectInfo)>,
    options: &LoadOptions,
    empty_dir: &Path,
    published: &mut Published,
) -> Result<Model> {
    let url = bucket.location().url_of(key);
    let subject = format!("{}@{}", claimed.0, claimed.1);
    let (bytes, info) = match downloaded {
        Ok(downloaded) => downloaded,
        Err(e) => {
            kms.record_object("s3-download", &url, &subject, Err(format!("{e:#}")))?;
            return Err(e);
        }
    };
    kms.record_object("s3-download", &info.audit_text(&url), &subject_of(&bytes, &subject), Ok(()))?;
    let loaded = with_retries(options.kms_retries, || {
        load_sealed_bytes(env, &url, &bytes, claimed, kms, options.sessions, empty_dir)
    })
    .and_then(|model| published.check(&model).map(|()| model).map_err(Refusal::new));
    kms.audit_refusal_of("load", || subject_of(&bytes, &url), loaded)
}

/// The model an ONNX file is served as: its file stem, which must be a valid model name.
fn model_name_of(path: &Path) -> Result<&str> {
    let name = path.file_stem().and_then(|s| s.to_str()).filter(|s| sealgate_models::is_valid_name(s));
    name.with_context(|| format!("{}: not a valid model name", path.display()))
}

/// Opens one artifact file and builds its sessions; the plaintext buffer is wiped on return.
/// The file name must be `NAME.sealed` or `NAME@VERSION.sealed` of the header's identity.
fn load_sealed(
    env: &Environment,
    path: &Path,
    kms: &Providers,
    sessions: usize,
    empty_dir: &Path,
) -> Result<Model, Refusal> {
    let label = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Refusal::new(anyhow::anyhow!("{label}: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = Progress::new("decrypting", &label, size);
    let opened = artifact::open_file_with_progress(&file, kms, DigestCheck::TrustAead, &|n| progress.add(n));
    let decrypted = progress.finish();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let claim = Claim {
        matches: &|name, version| stem == name || stem == format!("{name}@{version}"),
        hint: &|name, version| format!("name the file {name}.sealed or {name}@{version}.sealed"),
    };
    build_model(env, &label, opened, decrypted, &claim, sessions, empty_dir)
}

/// Opens one artifact downloaded into memory (`bytes`, from the object `label`, which claims
/// to be `name@version` by its key) and builds its sessions: the same checks as a file.
pub fn load_sealed_bytes(
    env: &Environment,
    label: &str,
    bytes: &[u8],
    claimed: (&str, &str),
    kms: &Providers,
    sessions: usize,
    empty_dir: &Path,
) -> Result<Model, Refusal> {
    let started = std::time::Instant::now();
    let opened = artifact::open_slice(bytes, kms, DigestCheck::TrustAead);
    let elapsed = started.elapsed();
    let rate = bytes.len() as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9);
    let claim = Claim {
        matches: &|name, version| (name, version) == claimed,
        hint: &|name, version| format!("publish it as {name}/{version}.sealed"),
    };
    build_model(env, label, opened, (elapsed, rate), &claim, sessions, empty_dir)
}

/// What an artifact's location (file name, object key) says it is, checked against the
/// authenticated header: a renamed artifact cannot pose as another model.
struct Claim<'a> {
    matches: &'a dyn Fn(&str, &str) -> bool,
    /// How to name it instead, for the refusal.
    hint: &'a dyn Fn(&str, &str) -> String,
}

/// The one path from an opened artifact to a model, for files and downloaded objects alike:
/// the identity check, the sessions, the plaintext wiped, the log line.
fn build_model(
    env: &Environment,
    label: &str,
    opened: Result<artifact::Opened, artifact::ArtifactError>,
    (decrypt_time, decrypt_rate): (Duration, f64),
    claim: &Claim<'_>,
    sessions: usize,
    empty_dir: &Path,
) -> Result<Model, Refusal> {
    let refuse = |reason: std::fmt::Arguments<'_>| Refusal::new(anyhow::anyhow!("refusing {label}: {reason}"));
    let opened = opened.map_err(|e| {
        let refusal = Refusal::from(e);
        // An unreachable KMS is retried and reported as such; anything else refuses the file.
        let prefix = if refusal.is_transient() { "" } else { "refusing " };
        refusal.map(|e| anyhow::anyhow!("{prefix}{label}: {e}"))
    })?;
    let context = &opened.header.context;
    let (name, version) = (
        context.get(artifact::CONTEXT_MODEL).cloned().unwrap_or_default(),
        context.get(artifact::CONTEXT_VERSION).cloned().unwrap_or_default(),
    );
    if !(claim.matches)(&name, &version) {
        return Err(refuse(format_args!(
            "the artifact holds model '{name}' version '{version}'; a renamed artifact cannot pose as \
             another model ({})",
            (claim.hint)(&name, &version)
        )));
    }
    if !sealgate_models::is_valid_name(&name) || version.is_empty() {
        return Err(refuse(format_args!("invalid model name or version")));
    }
    // The header's digests are authenticated and bound to these bytes (key commitment +
    // AEAD), so they are used as they are rather than hashing the model again.
    let digest = opened.model_digest().map_err(|e| refuse(format_args!("{e}")))?;
    let built = std::time::Instant::now();
    let external = opened.external_files();
    let files = ModelFiles { onnx: opened.model(), external: &external, empty_dir: Some(empty_dir) };
    let model = Model::from_files(env, &name, &version, &files, sessions, digest)
        .map_err(|e| Refusal::new(anyhow::anyhow!("{label}: {e}")))?;
    let build_time = built.elapsed();
    let bytes = opened.plaintext.as_slice().len();
    let file_count = 1 + external.len();
    // `opened.plaintext` drops here: ONNX Runtime holds its own copy, ours is zeroized.
    drop(external);
    drop(opened);
    tracing::info!(
        model = %name,
        version = %version,
        bytes,
        files = file_count,
        decrypt_ms = decrypt_time.as_millis() as u64,
        decrypt_mb_per_s = decrypt_rate.round(),
        sessions_ms = build_time.as_millis() as u64,
        "loaded sealed model"
    );
    Ok(model)
}

/// Runs `f`, retrying while the KMS cannot be reached. The audited provider recorded each
/// attempt, so the last one's failure needs no entry of its own.
fn with_retries(retries: u32, mut f: impl FnMut() -> Result<Model, Refusal>) -> Result<Model, Refusal> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        match f() {
            Err(refusal) if refusal.is_transient() && attempt < retries => {
                attempt += 1;
                let e = refusal.error();
                tracing::warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "KMS unavailable, retrying");
                eprintln!("KMS unavailable ({e:#}); retry {attempt}/{retries} in {:.1}s", delay.as_secs_f64());
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(refusal) if refusal.is_transient() => {
                return Err(refusal.map(|e| e.context(format!("the KMS stayed unreachable after {retries} retries"))));
            }
            done => return done,
        }
    }
}

/// `published-models.json`: name@version → SHA-256 of the plaintext model.
struct Published {
    path: PathBuf,
    versions: BTreeMap<String, String>,
    changed: bool,
}

impl Published {
    fn open(data: &DataDir) -> Result<Self> {
        let path = data.published_models();
        let versions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{} is malformed", path.display()))?,
            Err(_) => BTreeMap::new(),
        };
        Ok(Self { path, versions, changed: false })
    }

    fn check(&mut self, model: &Model) -> Result<()> {
        let key = format!("{}@{}", model.name(), model.version());
        let digest = hex::encode(model.sha256());
        match self.versions.get(&key) {
            Some(known) if *known != digest => bail!(
                "model {key} was published with different content (sha256 {known}); published versions are \
                 immutable: seal the new content as a new version"
            ),
            Some(_) => Ok(()),
            None => {
                self.versions.insert(key, digest);
                self.changed = true;
                Ok(())
            }
        }
    }

    /// Refuses `plaintext` (read from `source`) as the content of `name@version` when this
    /// data dir published that version with another digest. Unpublished is fine: the artifact
    /// was sealed but never loaded, and loading it publishes it.
    fn check_source(&self, name: &str, version: &str, plaintext: &[u8], source: &Path) -> Result<()> {
        let key = format!("{name}@{version}");
        let digest = hex::encode(Sha256::digest(plaintext));
        match self.versions.get(&key) {
            Some(known) if *known != digest => bail!(
                "{} (sha256 {digest}) is not the {key} this data dir serves (sha256 {known}); published \
                 versions are immutable: start with a new --data-dir, or seal the new file as a new version \
                 and serve it with --models",
                source.display()
            ),
            _ => Ok(()),
        }
    }

    fn save(&self, _data: &DataDir) -> Result<()> {
        if self.changed {
            write_file(&self.path, &serde_json::to_vec_pretty(&self.versions)?, 0o644)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_served_under_its_file_stem_when_that_is_a_valid_name() {
        assert_eq!(model_name_of(Path::new("/m/credit-risk.onnx")).unwrap(), "credit-risk");
        for bad in ["/m/bad name.onnx", "/m/../x/é.onnx", "/m/a\\b.onnx"] {
            let e = model_name_of(Path::new(bad)).unwrap_err().to_string();
            assert_eq!(e, format!("{bad}: not a valid model name"));
        }
    }
}
