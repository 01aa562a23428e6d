//! Sealed artifacts in S3 (or any endpoint speaking its API): where `sealgate publish` puts
//! them and where `serve --models s3://BUCKET/PREFIX/` finds them.
//!
//! A published version lives at `PREFIX/NAME/VERSION.sealed`, written once (`If-None-Match:
//! *`, optionally under Object Lock in compliance mode) with its SHA-256 as object metadata
//! and the sealed artifacts' content type, which the bucket policy of deploy/s3/ requires.
//! S3 never sees a plaintext byte: what it stores is the envelope, and whether that envelope
//! is a real sealed artifact is checked by `publish` before the upload and by `serve` after
//! the download, never by S3.
//!
//! The credentials, region and endpoint are the AWS KMS provider's ([`AwsKmsConfig`], the
//! standard `AWS_*` variables): one configuration for both. Like [`sealgate_models::kms::aws`]
//! the client owns a small current-thread runtime and blocks on the SDK's futures, so it is
//! called from start-up code or a command, never from async code. Downloads go to memory;
//! errors name the bucket and key, never the credentials.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode;
use sealgate_models::kms::aws::{AwsKmsConfig, error_chain};

/// The content type of a sealed artifact in the bucket (the bucket policy requires it).
pub const CONTENT_TYPE: &str = "application/vnd.sealgate.sealed";

/// The object metadata key holding the hex SHA-256 of the artifact's bytes
/// (`x-amz-meta-sealgate-sha256` on the wire; the bucket policy requires it).
pub const SHA256_METADATA: &str = "sealgate-sha256";

/// The object tag every published artifact carries (`sealgate-artifact=sealed`): S3 has no
/// policy condition on a request's `Content-Type` or user metadata, but it has one on the
/// tags of a `PutObject` (`s3:RequestObjectTag/...`), so this is what deploy/s3's bucket
/// policy can require.
pub const ARTIFACT_TAG: &str = "sealgate-artifact=sealed";

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound on one whole operation, retries and a whole download included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

/// Attempts per operation inside the SDK; the callers back off between whole operations.
const MAX_ATTEMPTS: u32 = 3;

/// The largest artifact downloaded: bigger objects are refused rather than buffered.
const MAX_OBJECT_BYTES: i64 = 16 << 30;

/// The longest service message copied into an error.
const MAX_MESSAGE_CHARS: usize = 200;

/// `s3://BUCKET/PREFIX/`: a bucket and a key prefix (empty, or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix: empty, or ending in `/`.
    pub prefix: String,
}

impl S3Location {
    /// `text` if it is an `s3://` URL, else `None` (a local path).
    pub fn parse(text: &str) -> Option<Result<Self, String>> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            // Not echoed: a mistyped URL may hold credentials (`s3://KEY:SECRET@...`).
            return Some(Err("expected s3://BUCKET/PREFIX/ with a valid bucket name (3-63 of a-z 0-9 . -)".into()));
        }
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        if prefix.split('/').any(|part| part == "." || part == "..") || prefix.starts_with('/') {
            return Some(Err(format!("{text}: the prefix may not hold '.' or '..' parts")));
        }
        Some(Ok(Self { bucket: bucket.to_owned(), prefix }))
    }

    /// The key of `name@version`: `PREFIX/NAME/VERSION.sealed`.
    pub fn key_of(&self, name: &str, version: &str) -> String {
        format!("{}{name}/{version}.sealed", self.prefix)
    }

    /// The name and version a key under the prefix stands for, if it has the shape
    /// `PREFIX/NAME/VERSION.sealed` with a valid name and version.
    pub fn model_of<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        let (name, file) = key.strip_prefix(&self.prefix)?.split_once('/')?;
        let version = file.strip_suffix(".sealed")?;
        (sealgate_models::is_valid_name(name) && sealgate_models::is_valid_name(version)).then_some((name, version))
    }

    /// `s3://BUCKET/KEY`, how errors and the audit log name an object.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A failed S3 call: one line naming the object, and whether trying again later may help.
#[derive(Debug)]
pub struct S3Error {
    message: String,
    transient: bool,
}

impl S3Error {
    /// True when S3 could not be reached or answered "try later" (timeouts, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for S3Error {}

/// What S3 says about one object version.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    /// The ETag, quotes removed.
    pub etag: String,
    /// The version id (`null` in an unversioned bucket).
    pub version_id: String,
    /// The hex SHA-256 stored as [`SHA256_METADATA`], if any.
    pub sha256: Option<String>,
    /// The Object Lock mode and retain-until date, as S3 reports them.
    pub lock: Option<(String, String)>,
}

impl ObjectInfo {
    /// `version=V etag=E`, how the audit log records an object version.
    pub fn audit_text(&self, url: &str) -> String {
        format!("{url} version={} etag={}", self.version_id, self.etag)
    }
}

/// The upload of one artifact.
pub struct Upload<'a> {
    /// The key.
    pub key: &'a str,
    /// The artifact's bytes.
    pub bytes: &'a [u8],
    /// Their hex SHA-256.
    pub sha256: &'a str,
    /// Lock the version in compliance mode until this time (Unix seconds).
    pub retain_until: Option<i64>,
}

/// A client of one bucket.
pub struct ModelBucket {
    client: Client,
    runtime: tokio::runtime::Runtime,
    location: S3Location,
}

impl ModelBucket {
    /// A client for `location`, configured like the AWS KMS provider (`config`): path-style
    /// addressing when a custom endpoint is set (a local S3, a test server). Makes no request.
    pub fn new(location: S3Location, config: &AwsKmsConfig) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.as_str(),
            config.session_token.as_ref().map(|token| token.to_string()),
            None,
            "sealgate-static",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .timeout_config(
                TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(OPERATION_TIMEOUT).build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        if let Some(url) = &config.endpoint_url {
            builder = builder.endpoint_url(url).force_path_style(true);
        }
        let client = {
            let _entered = runtime.enter();
            Client::from_conf(builder.build())
        };
        Ok(Self { client, runtime, location })
    }

    /// The bucket and prefix.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// The object at `key`, or `None` when there is none.
    pub fn head(&self, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        let request = self.client.head_object().bucket(&self.location.bucket).key(key).send();
        match self.block_on(request)? {
            Ok(output) => Ok(Some(ObjectInfo {
                etag: unquote(output.e_tag()),
                version_id: output.version_id().unwrap_or("null").to_owned(),
                sha256: output.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned(),
                lock: lock_of(output.object_lock_mode(), output.object_lock_retain_until_date()),
            })),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => Err(self.error(e, "HeadObject", key)),
        }
    }

    /// Writes `upload` if nothing is at its key yet (`If-None-Match: *`).
    pub fn put_new(&self, upload: &Upload<'_>) -> Result<ObjectInfo, S3Error> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(upload.key)
            .if_none_match("*")
            .content_type(CONTENT_TYPE)
            .set_metadata(Some(HashMap::from([(SHA256_METADATA.to_owned(), upload.sha256.to_owned())])))
            .tagging(ARTIFACT_TAG)
            .body(ByteStream::from(upload.bytes.to_vec()));
        if let Some(until) = upload.retain_until {
            request = request
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(DateTime::from_secs(until));
        }
        let output = self.block_on(request.send())?.map_err(|e| self.error(e, "PutObject", upload.key))?;
        Ok(ObjectInfo {
            etag: unquote(output.e_tag()),
            version_id: output.version_id().unwrap_or("null").to_owned(),
            sha256: Some(upload.sha256.to_owned()),
            lock: None,
        })
    }

    /// Every key under the prefix, in key order.
    pub fn list(&self) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let request = self
                .client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(&self.location.prefix)
                .set_continuation_token(token.take())
                .send();
            let output = self.block_on(request)?.map_err(|e| self.error(e, "ListObjectsV2", &self.location.prefix))?;
            keys.extend(output.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match output.next_continuation_token() {
                Some(next) if output.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Downloads the object at `key` into memory (never to disk): its bytes and version.
    pub fn get(&self, key: &str) -> Result<(Vec<u8>, ObjectInfo), S3Error> {
        let url = self.location.url_of(key);
        let download = async {
            let output = self
                .client
                .get_object()
                .bucket(&self.location.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| self.error(e, "GetObject", key))?;
            let declared = output.content_length().unwrap_or(0);
            if !(0..=MAX_OBJECT_BYTES).contains(&declared) {
                return Err(permanent(format!("{url}: {declared} bytes is larger than an artifact may be")));
            }
            let info = ObjectInfo {
                etag: unquote(output.e_tag()),
                version_id: output.version_id().unwrap_or("null").to_owned(),
                sha256: output.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned(),
                lock: lock_of(output.object_lock_mode(), output.object_lock_retain_until_date()),
            };
            // The declared length is checked above, so this allocation is bounded.
            let mut bytes = Vec::with_capacity(declared as usize);
            let mut body = output.body;
            while let Some(chunk) = body.try_next().await.map_err(|e| S3Error {
                message: format!("{url}: GetObject: reading the body failed: {}", error_chain(&e)),
                transient: true,
            })? {
                if bytes.len() + chunk.len() > declared as usize {
                    return Err(permanent(format!("{url}: the body is longer than its Content-Length")));
                }
                bytes.extend_from_slice(&chunk);
            }
            if bytes.len() != declared as usize {
                return Err(S3Error { message: format!("{url}: the download ended early"), transient: true });
            }
            Ok((bytes, info))
        };
        self.block_on(download)?
    }

    /// Runs one SDK future to completion on the client's runtime (from a helper thread when
    /// this thread belongs to a runtime, where a nested `block_on` would panic).
    fn block_on<F>(&self, future: F) -> Result<F::Output, S3Error>
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(self.runtime.block_on(future));
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("sealgate-s3".into())
                .spawn_scoped(scope, || self.runtime.block_on(future))
                .map_err(|e| permanent(format!("starting an S3 helper thread: {e}")))?
                .join()
                .map_err(|_| permanent("the S3 helper thread panicked".into()))
        })
    }

    /// One line for an SDK error on `key`: the object, the operation, S3's code and message.
    fn error<E>(&self, error: SdkError<E>, operation: &str, key: &str) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let url = self.location.url_of(key);
        match &error {
            SdkError::TimeoutError(_) => S3Error { message: format!("{url}: {operation} timed out"), transient: true },
            SdkError::DispatchFailure(_) => S3Error {
                message: format!("{url}: {operation} failed, S3 is unreachable: {}", error_chain(&error)),
                transient: true,
            },
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let code = error.code().unwrap_or("<no error code>");
                let message = short_message(error.message());
                let detail = if message.is_empty() { code.to_owned() } else { format!("{code}: {message}") };
                S3Error {
                    message: format!("{url}: {operation}: HTTP {status} {detail}"),
                    transient: status >= 500 || code == "SlowDown",
                }
            }
            _ => S3Error { message: format!("{url}: {operation} failed: {}", error_chain(&error)), transient: false },
        }
    }
}

fn permanent(message: String) -> S3Error {
    S3Error { message, transient: false }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or("-").trim_matches('"').to_owned()
}

fn lock_of(mode: Option<&ObjectLockMode>, until: Option<&DateTime>) -> Option<(String, String)> {
    let until = until.and_then(|d| d.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok());
    Some((mode?.as_str().to_owned(), until.unwrap_or_else(|| "-".into())))
}

fn short_message(message: Option<&str>) -> String {
    let message = message.unwrap_or("").trim();
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    if cut.len() < message.len() {
        cut.push('…');
    }
    cut
}

/// Runs `f`, retrying with exponential backoff (0.5 s doubling to 10 s) while S3 cannot be
/// reached, at most `retries` times; the last failure says how many retries were made.
pub fn with_retries<T>(retries: u32, what: &str, mut f: impl FnMut() -> Result<T, S3Error>) -> anyhow::Result<T> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if e.is_transient() && attempt < retries => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "S3 unavailable, retrying");
                eprintln!("S3 unavailable ({e}); retry {attempt}/{retries} in {:.1}s", delay.as_secs_f64());
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) if e.is_transient() => {
                return Err(anyhow::anyhow!("{what}: S3 stayed unreachable after {retries} retries: {e}"));
            }
            Err(e) => return Err(anyhow::anyhow!("{what}: {e}")),
            Ok(value) => return Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_name_keys() {
        let at = S3Location::parse("s3://models-bucket/team/prod").unwrap().unwrap();
        assert_eq!((at.bucket.as_str(), at.prefix.as_str()), ("models-bucket", "team/prod/"));
        assert_eq!(at.key_of("credit-risk", "2"), "team/prod/credit-risk/2.sealed");
        assert_eq!(at.model_of("team/prod/credit-risk/2.sealed"), Some(("credit-risk", "2")));
        for not_a_model in
            ["team/prod/credit-risk.sealed", "team/prod/a/b/2.sealed", "team/prod/a/2.onnx", "x/a/1.sealed"]
        {
            assert_eq!(at.model_of(not_a_model), None, "{not_a_model}");
        }
        assert_eq!(S3Location::parse("s3://bkt").unwrap().unwrap().prefix, "");
        assert!(S3Location::parse("/srv/models").is_none());
        for bad in ["s3://", "s3://UPPER/x", "s3://b/../x", "s3://user:secret@bucket/x"] {
            assert!(S3Location::parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
