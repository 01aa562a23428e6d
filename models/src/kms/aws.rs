//! The `aws-kms` provider: data keys wrapped by AWS KMS (or any endpoint speaking its API).
//!
//! The key-encryption key never leaves KMS: `GenerateDataKey` returns a fresh data key in
//! both forms, `Encrypt` wraps an existing one, and `Decrypt` unwraps, each bound to the
//! artifact's encryption context, which KMS checks itself (a wrong context fails to decrypt).
//! The [`KmsProvider`] trait is synchronous, so [`AwsKms`] owns a small current-thread tokio
//! runtime and blocks on the SDK's futures; see [`AwsKms`] for where it may be called from.
//!
//! Errors map onto [`KmsError`] so that callers can tell "retry later"
//! ([`KmsError::Unavailable`]: unreachable endpoint, timeout, throttling, KMS-side failure)
//! from "this will never work" (unknown key, disabled key, wrong context). Error texts name
//! the endpoint and the key id, never key material.

use std::collections::HashMap;
use std::env;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{Credentials, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeySpec, KeyUsageType};
use zeroize::Zeroizing;

use super::{DataKey, EncryptionContext, GeneratedKey, KeyMetadata, KeyState, KmsError, KmsProvider, WrappedKey};

/// The provider name stored in artifact headers.
pub const PROVIDER_NAME: &str = "aws-kms";

/// How long to wait for a TCP (and TLS) connection: a KMS that is not there should fail
/// start-up within seconds, not hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound on one whole operation, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Attempts per operation. Retries absorb a dropped connection or a throttled request; more
/// would only delay the answer "unavailable" that the caller can act on.
const MAX_ATTEMPTS: u32 = 3;

/// The first retry's back-off; later ones grow exponentially (with jitter) from it.
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// The longest service error message copied into a [`KmsError`]: enough to say what went
/// wrong, short enough that a misbehaving endpoint cannot flood the logs through us.
const MAX_MESSAGE_CHARS: usize = 200;

/// Where and as whom to reach AWS KMS.
#[derive(Clone)]
pub struct AwsKmsConfig {
    /// A custom endpoint (a local KMS, a VPC endpoint, a test server); `None` uses the
    /// region's public AWS endpoint.
    pub endpoint_url: Option<String>,
    /// The AWS region, such as `eu-west-1`.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key; zeroized on drop and never printed.
    pub secret_access_key: Zeroizing<String>,
    /// The session token of temporary credentials; zeroized on drop and never printed.
    pub session_token: Option<Zeroizing<String>>,
}

impl AwsKmsConfig {
    /// Reads the configuration from the standard AWS variables: `AWS_ENDPOINT_URL`
    /// (optional), `AWS_REGION` (or else `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (optional).
    ///
    /// Only static credentials are supported: the gateway runs where an operator hands it
    /// credentials, and instance-profile or SSO discovery would make the source of the
    /// credentials depend on where it happens to run.
    pub fn from_env() -> Result<Self, KmsError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable lookup, so the rules are testable without
    /// touching the process environment. Empty values count as missing.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, KmsError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let missing = |what: &str| KmsError::InvalidRequest(format!("the aws-kms provider needs {what}"));
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| missing("a region: set AWS_REGION (such as eu-west-1)"))?;
        let access_key_id = get("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("credentials: set AWS_ACCESS_KEY_ID"))?;
        let secret_access_key = Zeroizing::new(
            get("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("credentials: set AWS_SECRET_ACCESS_KEY"))?,
        );
        Ok(Self {
            endpoint_url: get("AWS_ENDPOINT_URL"),
            region,
            access_key_id,
            secret_access_key,
            session_token: get("AWS_SESSION_TOKEN").map(Zeroizing::new),
        })
    }

    /// How errors name the KMS: the custom endpoint, or AWS and the region.
    fn endpoint_description(&self) -> String {
        match &self.endpoint_url {
            Some(url) => url.clone(),
            None => format!("AWS KMS in {}", self.region),
        }
    }
}

impl fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsConfig")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The AWS KMS provider.
///
/// # Blocking
///
/// Every method blocks the calling thread until KMS answers (at most about 15 seconds). Call
/// it from start-up code, a CLI command, or `tokio::task::spawn_blocking`, not from async
/// code: a nested `block_on` would panic inside tokio, so when the calling thread belongs to
/// a runtime the request is driven from a short-lived helper thread instead, which still
/// stalls the caller's worker thread for the duration of the call.
pub struct AwsKms {
    client: Client,
    /// Drives the SDK's futures. Current-thread: the provider makes one call at a time per
    /// caller, and it costs no threads while idle.
    runtime: tokio::runtime::Runtime,
    /// How errors name the KMS.
    endpoint: String,
}

impl AwsKms {
    /// Builds a client for `config`. Makes no request: an unreachable KMS shows up on the
    /// first operation, as [`KmsError::Unavailable`].
    pub fn new(config: AwsKmsConfig) -> Result<Self, KmsError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KmsError::Backend(format!("starting the aws-kms runtime: {e}")))?;
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.as_str(),
            config.session_token.as_ref().map(|token| token.to_string()),
            None,
            "sealgate-static",
        );
        let mut builder = aws_sdk_kms::Config::builder()
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .timeout_config(
                TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(OPERATION_TIMEOUT).build(),
            )
            .retry_config(
                RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_initial_backoff(INITIAL_BACKOFF),
            );
        if let Some(url) = &config.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        // The SDK's default HTTP client and sleep implementation bind to the runtime that is
        // current when they are first used; entering ours here keeps them on it.
        let client = {
            let _entered = runtime.enter();
            Client::from_conf(builder.build())
        };
        Ok(Self { client, runtime, endpoint: config.endpoint_description() })
    }

    /// Creates a symmetric encryption key (`SYMMETRIC_DEFAULT`) and returns its key id.
    ///
    /// For tests and the CLI; in production, keys are usually created by infrastructure
    /// code with their key policy.
    pub fn create_key(&self, description: &str) -> Result<String, KmsError> {
        let request = self
            .client
            .create_key()
            .description(description)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .key_spec(KeySpec::SymmetricDefault)
            .send();
        let output = self.block_on(request)?.map_err(|e| self.map_error(e, "CreateKey", "<new key>"))?;
        output
            .key_metadata()
            .map(|metadata| metadata.key_id().to_owned())
            .ok_or_else(|| KmsError::Backend(format!("{}: CreateKey returned no key metadata", self.endpoint)))
    }

    /// Runs one SDK future to completion on the provider's runtime.
    fn block_on<F>(&self, future: F) -> Result<F::Output, KmsError>
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(self.runtime.block_on(future));
        }
        // This thread belongs to some runtime. Tokio offers no way to tell an async task
        // (where `block_on` panics) from `spawn_blocking` or `block_in_place` (where it is
        // fine), so drive the future from a fresh thread, which belongs to no runtime.
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("sealgate-aws-kms".into())
                .spawn_scoped(scope, || self.runtime.block_on(future))
                .map_err(|e| KmsError::Backend(format!("starting an aws-kms helper thread: {e}")))?
                .join()
                .map_err(|_| KmsError::Backend("the aws-kms helper thread panicked".into()))
        })
    }

    /// Maps an SDK error onto [`KmsError`].
    ///
    /// Works on the error code rather than each operation's error enum, because the codes
    /// are the same across operations. `key_id` is the key the request named.
    fn map_error<E>(&self, error: SdkError<E>, operation: &str, key_id: &str) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let endpoint = &self.endpoint;
        match &error {
            SdkError::TimeoutError(_) => {
                KmsError::Unavailable(format!("{endpoint}: {operation} timed out after {OPERATION_TIMEOUT:?}"))
            }
            SdkError::DispatchFailure(_) => {
                KmsError::Unavailable(format!("{endpoint}: {operation} failed: {}", error_chain(&error)))
            }
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let code = error.code().unwrap_or("<no error code>");
                let message = short_message(error.message());
                map_service_error(code, &message, status, operation, key_id, endpoint)
            }
            // Construction failures, unreadable responses, and kinds added to the SDK later.
            _ => KmsError::Backend(format!("{endpoint}: {operation} failed: {}", error_chain(&error))),
        }
    }
}

/// Maps an error response from KMS by its code; unknown codes go by HTTP status.
fn map_service_error(
    code: &str,
    message: &str,
    status: u16,
    operation: &str,
    key_id: &str,
    endpoint: &str,
) -> KmsError {
    let detail = if message.is_empty() { code.to_owned() } else { format!("{code}: {message}") };
    match code {
        "NotFoundException" => KmsError::KeyNotFound(key_id.to_owned()),
        "DisabledException" => KmsError::KeyDisabled(key_id.to_owned()),
        // The same code covers every state but enabled and disabled; its message names it.
        "KMSInvalidStateException" => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("pending deletion") || lower.contains("pendingdeletion") {
                KmsError::KeyPendingDeletion(key_id.to_owned())
            } else if lower.contains("disabled") {
                KmsError::KeyDisabled(key_id.to_owned())
            } else {
                KmsError::Backend(format!("{endpoint}: {operation}: key '{key_id}' is in the wrong state: {message}"))
            }
        }
        // Wrong key, wrong context, or damaged ciphertext: one answer without detail, like
        // every provider's unwrap failure.
        "InvalidCiphertextException" | "IncorrectKeyException" => KmsError::Unwrap,
        "ThrottlingException"
        | "LimitExceededException"
        | "DependencyTimeoutException"
        | "KMSInternalException"
        | "KeyUnavailableException"
        | "CustomKeyStoreInvalidStateException" => KmsError::Unavailable(format!("{endpoint}: {operation}: {detail}")),
        _ if status >= 500 => KmsError::Unavailable(format!("{endpoint}: {operation}: HTTP {status} {detail}")),
        // The status helps when the answer came from something that is not KMS at all (a
        // proxy, a wrong port), which sends no error code.
        _ => KmsError::Backend(format!("{endpoint}: {operation}: HTTP {status} {detail}")),
    }
}

/// An error and its sources, one after another: "dispatch failure: io error: ... Connection
/// refused". The SDK's own `DisplayErrorContext` appends a `Debug` dump as well, which is
/// too much for an error that ends up in a log line. Also used for the S3 client's errors
/// (`sealgate_server::s3`), which come from the same SDK.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some layers repeat their source's text in their own; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A service message cut to [`MAX_MESSAGE_CHARS`] characters.
fn short_message(message: Option<&str>) -> String {
    let message = message.unwrap_or("").trim();
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message.to_owned();
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

/// The encryption context as the SDK takes it; `None` when empty, so an empty context is
/// sent the same way on wrap and unwrap (absent, not `{}`).
fn sdk_context(context: &EncryptionContext) -> Option<HashMap<String, String>> {
    (!context.is_empty()).then(|| context.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Takes the plaintext key out of an SDK blob, wiping the SDK's copy.
fn data_key_from_blob(blob: Option<Blob>, endpoint: &str, operation: &str) -> Result<DataKey, KmsError> {
    let bytes = Zeroizing::new(
        blob.ok_or_else(|| KmsError::Backend(format!("{endpoint}: {operation} returned no plaintext")))?.into_inner(),
    );
    // The length is the only thing about the plaintext an error may mention.
    DataKey::from_slice(&bytes).map_err(|_| {
        KmsError::Backend(format!("{endpoint}: {operation} returned a {}-byte key, expected 32", bytes.len()))
    })
}

impl KmsProvider for AwsKms {
    fn name(&self) -> &str {
        PROVIDER_NAME
    }

    /// One `GenerateDataKey` call: KMS draws the key, so the plaintext exists only in its
    /// answer. The wrapped key records the key ARN KMS answers with, not the `key_id` asked
    /// for, so an artifact sealed through an alias still opens after the alias moves.
    fn generate_data_key(&self, key_id: &str, context: &EncryptionContext) -> Result<GeneratedKey, KmsError> {
        let request = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(sdk_context(context))
            .send();
        let output = self.block_on(request)?.map_err(|e| self.map_error(e, "GenerateDataKey", key_id))?;
        let plaintext = data_key_from_blob(output.plaintext, &self.endpoint, "GenerateDataKey")?;
        let ciphertext = output
            .ciphertext_blob
            .ok_or_else(|| KmsError::Backend(format!("{}: GenerateDataKey returned no ciphertext", self.endpoint)))?
            .into_inner();
        let wrapped = WrappedKey {
            provider: PROVIDER_NAME.into(),
            key_id: output.key_id.unwrap_or_else(|| key_id.into()),
            ciphertext,
        };
        Ok(GeneratedKey { plaintext, wrapped })
    }

    /// One `Encrypt` call. The request necessarily carries a copy of the key, which the SDK
    /// serializes and drops without zeroizing; that copy lives only for the request.
    fn wrap_data_key(&self, key_id: &str, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, KmsError> {
        let request = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(key.expose().to_vec()))
            .set_encryption_context(sdk_context(context))
            .send();
        let output = self.block_on(request)?.map_err(|e| self.map_error(e, "Encrypt", key_id))?;
        let ciphertext = output
            .ciphertext_blob
            .ok_or_else(|| KmsError::Backend(format!("{}: Encrypt returned no ciphertext", self.endpoint)))?
            .into_inner();
        Ok(WrappedKey {
            provider: PROVIDER_NAME.into(),
            key_id: output.key_id.unwrap_or_else(|| key_id.into()),
            ciphertext,
        })
    }

    /// One `Decrypt` call naming the key, so KMS refuses a ciphertext made under another key
    /// instead of quietly using whichever key the ciphertext names.
    fn decrypt_data_key(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, KmsError> {
        if wrapped.provider != PROVIDER_NAME {
            return Err(KmsError::UnknownProvider(wrapped.provider.clone()));
        }
        let request = self
            .client
            .decrypt()
            .key_id(&wrapped.key_id)
            .ciphertext_blob(Blob::new(wrapped.ciphertext.clone()))
            .set_encryption_context(sdk_context(context))
            .send();
        let output = self.block_on(request)?.map_err(|e| self.map_error(e, "Decrypt", &wrapped.key_id))?;
        data_key_from_blob(output.plaintext, &self.endpoint, "Decrypt")
    }

    /// One `DescribeKey` call. KMS keeps rotated key material inside one key id and does not
    /// say how many versions exist, so `versions` is always 1.
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        let request = self.client.describe_key().key_id(key_id).send();
        let output = self.block_on(request)?.map_err(|e| self.map_error(e, "DescribeKey", key_id))?;
        let metadata = output
            .key_metadata
            .ok_or_else(|| KmsError::Backend(format!("{}: DescribeKey returned no key metadata", self.endpoint)))?;
        use aws_sdk_kms::types::KeyState as Aws;
        let state = match metadata.key_state() {
            Some(Aws::Enabled) => KeyState::Enabled,
            Some(Aws::Disabled) => KeyState::Disabled,
            Some(Aws::PendingDeletion | Aws::PendingReplicaDeletion) => KeyState::PendingDeletion {
                // A date before 1970 cannot happen; clamping keeps the type honest anyway.
                delete_after: metadata.deletion_date().map_or(0, |date| u64::try_from(date.secs()).unwrap_or(0)),
            },
            other => {
                let shown = other.map_or("<none>", |state| state.as_str());
                return Err(KmsError::Backend(format!(
                    "{}: key '{key_id}' is in state {shown}, which this gateway cannot use",
                    self.endpoint
                )));
            }
        };
        Ok(KeyMetadata {
            provider: PROVIDER_NAME.into(),
            key_id: metadata.arn().unwrap_or(metadata.key_id()).to_owned(),
            state,
            versions: 1,
        })
    }
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn from_env_reads_every_variable() {
        let config = AwsKmsConfig::from_lookup(lookup(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "token"),
        ]))
        .unwrap();
        assert_eq!(config.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.access_key_id, "AKIDEXAMPLE");
        assert_eq!(config.secret_access_key.as_str(), "s3cr3t");
        assert_eq!(config.session_token.as_deref().map(String::as_str), Some("token"));
    }

    #[test]
    fn from_env_falls_back_to_default_region_and_allows_no_endpoint() {
        let config = AwsKmsConfig::from_lookup(lookup(&[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ]))
        .unwrap();
        assert_eq!(config.region, "us-east-1");
        assert!(config.endpoint_url.is_none() && config.session_token.is_none());
        assert_eq!(config.endpoint_description(), "AWS KMS in us-east-1");
    }

    #[test]
    fn from_env_names_what_is_missing() {
        let err = AwsKmsConfig::from_lookup(lookup(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "s")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_REGION"), "{err}");
        let err = AwsKmsConfig::from_lookup(lookup(&[("AWS_REGION", "eu-west-1"), ("AWS_SECRET_ACCESS_KEY", "s")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        let err = AwsKmsConfig::from_lookup(lookup(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "A"),
            ("AWS_SECRET_ACCESS_KEY", "  "),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let config = AwsKmsConfig::from_lookup(lookup(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-value"),
            ("AWS_SESSION_TOKEN", "very-secret-token"),
        ]))
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
    }

    #[test]
    fn service_errors_map_by_code() {
        let map = |code, message, status| map_service_error(code, message, status, "Decrypt", "k1", "http://kms");
        assert!(matches!(map("NotFoundException", "", 400), KmsError::KeyNotFound(k) if k == "k1"));
        assert!(matches!(map("DisabledException", "", 400), KmsError::KeyDisabled(_)));
        assert!(matches!(
            map("KMSInvalidStateException", "arn:aws:kms:... is pending deletion.", 400),
            KmsError::KeyPendingDeletion(_)
        ));
        assert!(matches!(map("KMSInvalidStateException", "key is disabled", 400), KmsError::KeyDisabled(_)));
        assert!(matches!(map("KMSInvalidStateException", "key is PendingImport", 400), KmsError::Backend(_)));
        assert!(matches!(map("InvalidCiphertextException", "", 400), KmsError::Unwrap));
        assert!(matches!(map("IncorrectKeyException", "", 400), KmsError::Unwrap));
        assert!(map("ThrottlingException", "slow down", 400).is_transient());
        assert!(map("SomethingNew", "", 503).is_transient());
        assert!(matches!(map("AccessDeniedException", "no", 400), KmsError::Backend(_)));
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 50);
        assert_eq!(short_message(Some(&long)).chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(short_message(Some(" short ")), "short");
        assert_eq!(short_message(None), "");
    }
}
