//! [`S3Target`]: backups in an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, …).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, S3CopyIfNotExists};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    ClientOptions, CopyMode, CopyOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutPayload, RetryConfig,
};
use resee_ops_core::{
    ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupTarget, Error, ErrorKind, Secret, StagedArtifact,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::JoinHandle;

use crate::Result;
use crate::error::invalid_config;

/// The smallest part S3 accepts (every part but the last).
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part S3 accepts.
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Where staged uploads live, under the prefix. Artifact names never start with `.`, so this never collides
/// with one, and `list` (one level, with a delimiter) never shows it.
const STAGING_DIR: &str = ".staging";

/// Server-side encryption of the objects written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum S3Encryption {
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`): keys managed by the store.
    #[serde(alias = "AES256", alias = "aes256", alias = "sse-s3")]
    SseS3,
    /// SSE-KMS (`x-amz-server-side-encryption: aws:kms`), with a key id (else the account's default key).
    #[serde(alias = "aws:kms", alias = "sse-kms")]
    SseKms {
        /// The KMS key id or ARN (`x-amz-server-side-encryption-aws-kms-key-id`).
        #[serde(default)]
        key_id: Option<String>,
    },
}

impl S3Encryption {
    /// Parses `AES256` / `sse-s3` or `aws:kms` / `sse-kms` (the key id comes separately).
    pub fn parse(text: &str, kms_key_id: Option<String>) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "aes256" | "sse-s3" | "sse_s3" => Ok(Self::SseS3),
            "aws:kms" | "sse-kms" | "sse_kms" => Ok(Self::SseKms { key_id: kms_key_id }),
            other => Err(invalid_config(format!(
                "unknown S3 server-side encryption {other:?}: use AES256 (SSE-S3) or aws:kms (SSE-KMS)"
            ))),
        }
    }
}

/// The settings of an [`S3Target`], deserializable from a configuration file (serialized with the secrets
/// as `***`) (`[backup.s3]` in the reference
/// service). Build one with [`S3Target::builder`] or deserialize it and call [`S3Target::from_config`].
///
/// Credentials are **always explicit** (`access_key_id` + `secret_access_key`, e.g. from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`): without them building fails, unless
/// `cloud_credentials` is set, which allows the cloud's own credential chain (instance metadata at
/// 169.254.169.254, web identity). That chain is never used by accident.
///
/// ```
/// use resee_ops_backup::S3Config;
/// let cfg: S3Config = serde_json::from_value(serde_json::json!({
///     "bucket": "resee-backups",
///     "prefix": "production/db",
///     "endpoint": "http://127.0.0.1:9000",
///     "access_key_id": "AKIAEXAMPLE",
///     "secret_access_key": "wJalrXUtnFEMI-example-secret",
///     "storage_class": "STANDARD_IA",
///     "encryption": "sse_s3"
/// })).unwrap();
/// assert_eq!(cfg.bucket, "resee-backups");
/// assert!(!format!("{cfg:?}").contains("wJalrXUtnFEMI"), "the secret never shows");
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket (required).
    pub bucket: String,
    /// A key prefix ("folder") for the artifacts, without leading or trailing `/`. Default: none.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The region. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// The endpoint of an S3-compatible store (`http://127.0.0.1:9000`, `https://<account>.r2.cloudflarestorage.com`).
    /// Default: AWS S3 of the region. An `http://` endpoint is allowed as configured (plain HTTP).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style requests (`{endpoint}/{bucket}/{key}`) instead of virtual-hosted ones
    /// (`{bucket}.{endpoint}/{key}`). Default `true`: what MinIO, Ceph and most S3-compatible stores expect.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret access key (`AWS_SECRET_ACCESS_KEY`); never printed.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// A session token (`AWS_SESSION_TOKEN`), for temporary credentials; never printed.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Allow the cloud's own credential chain (instance metadata, web identity) when no key is given.
    /// Default `false`: without explicit credentials, building fails.
    #[serde(default)]
    pub cloud_credentials: bool,
    /// Server-side encryption. Default: none requested (the bucket's default applies).
    #[serde(default)]
    pub encryption: Option<S3Encryption>,
    /// The storage class of published artifacts (`STANDARD_IA`, `GLACIER_IR`, …). Default: the store's
    /// (`STANDARD`). Staged uploads are always `STANDARD`, so that they can be read back and verified.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// Multipart part size in bytes (5 MiB to 5 GiB). Default 8 MiB, chosen by measurement
    /// (`benches/scripts/backup_s3_vs_local.sh`, 1005 MiB dump, moto on loopback, medians of 3): 8 MiB parts
    /// took 1.18 × the local target's wall time at 36.0 MiB peak RSS, 16 MiB 1.19 × at 40.3 MiB, 32 MiB
    /// 1.22 × at 56.7 MiB; larger parts bought nothing but memory. Up to 80 GiB per artifact (10 000 parts).
    /// Memory used by an upload: about `part_size × (parts_in_flight + 1)`.
    #[serde(default = "default_part_size")]
    pub part_size: usize,
    /// Parts uploaded concurrently. Default 2.
    #[serde(default = "default_parts_in_flight")]
    pub parts_in_flight: usize,
    /// Incomplete uploads and staged objects older than this are removed by
    /// [`sweep_incomplete`](BackupTarget::sweep_incomplete) (every backup run calls it first). Default 24 h:
    /// far longer than any run, so a run in progress elsewhere is never touched. `Duration::MAX`: never.
    #[serde(default = "default_sweep_after", with = "resee_ops_core::serde_duration")]
    pub sweep_after: Duration,
    /// Limit for one HTTP request. Default 5 minutes.
    #[serde(default = "default_request_timeout", with = "resee_ops_core::serde_duration")]
    pub request_timeout: Duration,
    /// Retries of one request on a temporary failure (object_store's backoff). Default 3.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// Limit for the retries of one request. Default 2 minutes.
    #[serde(default = "default_retry_timeout", with = "resee_ops_core::serde_duration")]
    pub retry_timeout: Duration,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_true() -> bool {
    true
}
fn default_part_size() -> usize {
    8 * 1024 * 1024
}
fn default_parts_in_flight() -> usize {
    2
}
fn default_sweep_after() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_max_retries() -> usize {
    3
}
fn default_retry_timeout() -> Duration {
    Duration::from_secs(120)
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("cloud_credentials", &self.cloud_credentials)
            .field("encryption", &self.encryption)
            .field("storage_class", &self.storage_class)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("sweep_after", &self.sweep_after)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// Defaults for `bucket`, no credentials.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: None,
            region: default_region(),
            endpoint: None,
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            cloud_credentials: false,
            encryption: None,
            storage_class: None,
            part_size: default_part_size(),
            parts_in_flight: default_parts_in_flight(),
            sweep_after: default_sweep_after(),
            request_timeout: default_request_timeout(),
            max_retries: default_max_retries(),
            retry_timeout: default_retry_timeout(),
        }
    }

    /// The settings from the environment, or `None` when `BACKUP_S3_BUCKET` is unset or empty:
    ///
    /// | variable | setting |
    /// |---|---|
    /// | `BACKUP_S3_BUCKET` | `bucket` |
    /// | `BACKUP_S3_PREFIX` | `prefix` |
    /// | `BACKUP_S3_REGION`, else `AWS_REGION`, else `AWS_DEFAULT_REGION` | `region` |
    /// | `BACKUP_S3_ENDPOINT`, else `AWS_ENDPOINT_URL` | `endpoint` |
    /// | `BACKUP_S3_PATH_STYLE` (`true`/`false`) | `path_style` |
    /// | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | credentials |
    /// | `BACKUP_S3_CLOUD_CREDENTIALS` (`true`) | `cloud_credentials` |
    /// | `BACKUP_S3_SSE` (`AES256` or `aws:kms`), `BACKUP_S3_SSE_KMS_KEY_ID` | `encryption` |
    /// | `BACKUP_S3_STORAGE_CLASS` | `storage_class` |
    /// | `BACKUP_S3_PART_SIZE` (bytes, or with a `MiB` suffix) | `part_size` |
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`from_env`](Self::from_env) over any lookup (for tests and for layered configuration).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(bucket) = get("BACKUP_S3_BUCKET") else { return Ok(None) };
        let mut cfg = Self::new(bucket);
        cfg.apply_lookup(get)?;
        Ok(Some(cfg))
    }

    /// Overrides the settings whose variables are set (see [`from_env`](Self::from_env)), leaving the others.
    pub fn apply_lookup(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("BACKUP_S3_BUCKET") {
            self.bucket = v;
        }
        if let Some(v) = get("BACKUP_S3_PREFIX") {
            self.prefix = Some(v);
        }
        if let Some(v) = get("BACKUP_S3_REGION").or_else(|| get("AWS_REGION")).or_else(|| get("AWS_DEFAULT_REGION")) {
            self.region = v;
        }
        if let Some(v) = get("BACKUP_S3_ENDPOINT").or_else(|| get("AWS_ENDPOINT_URL")) {
            self.endpoint = Some(v);
        }
        if let Some(v) = get("BACKUP_S3_PATH_STYLE") {
            self.path_style = parse_bool("BACKUP_S3_PATH_STYLE", &v)?;
        }
        if let Some(v) = get("AWS_ACCESS_KEY_ID") {
            self.access_key_id = Some(v);
        }
        if let Some(v) = get("AWS_SECRET_ACCESS_KEY") {
            self.secret_access_key = Some(Secret::new(v));
        }
        if let Some(v) = get("AWS_SESSION_TOKEN") {
            self.session_token = Some(Secret::new(v));
        }
        if let Some(v) = get("BACKUP_S3_CLOUD_CREDENTIALS") {
            self.cloud_credentials = parse_bool("BACKUP_S3_CLOUD_CREDENTIALS", &v)?;
        }
        if let Some(v) = get("BACKUP_S3_SSE") {
            self.encryption = Some(S3Encryption::parse(&v, get("BACKUP_S3_SSE_KMS_KEY_ID"))?);
        }
        if let Some(v) = get("BACKUP_S3_STORAGE_CLASS") {
            self.storage_class = Some(v);
        }
        if let Some(v) = get("BACKUP_S3_PART_SIZE") {
            self.part_size = parse_size(&v)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        let bucket = &self.bucket;
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(invalid_config(format!(
                "invalid S3 bucket name {bucket:?}: 3 to 63 lowercase letters, digits, '-' or '.'"
            )));
        }
        if let Some(p) = &self.prefix
            && (p.split('/').any(|part| part.is_empty() || part == "." || part == "..")
                || p.chars().any(char::is_control))
        {
            return Err(invalid_config(format!(
                "invalid S3 prefix {p:?}: parts separated by single '/', no leading or trailing '/', no '.' or '..'"
            )));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(invalid_config(format!(
                "S3 part_size {} is out of range (5 MiB to 5 GiB: S3's limits)",
                self.part_size
            )));
        }
        if self.parts_in_flight == 0 {
            return Err(invalid_config("S3 parts_in_flight must be at least 1"));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid_config("S3 request_timeout must be positive"));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), Some(_)) => {}
            (None, None) if self.cloud_credentials => {}
            (None, None) => {
                return Err(invalid_config(
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or access_key_id and \
                     secret_access_key), or enable cloud_credentials to use the instance's credentials",
                ));
            }
            _ => {
                return Err(invalid_config(
                    "incomplete S3 credentials: both an access key id and a secret access key are needed",
                ));
            }
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(invalid_config(format!("invalid S3 endpoint {e:?}: must start with http:// or https://")));
        }
        Ok(())
    }
}

/// What is older than this is swept: `now - sweep_after`, and for an age past the representable
/// (`Duration::MAX`: never sweep) the earliest time, which nothing is older than.
fn sweep_cutoff(now: DateTime<Utc>, sweep_after: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(sweep_after)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn parse_bool(var: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid_config(format!("{var} must be true or false, not {v:?}"))),
    }
}

fn parse_size(v: &str) -> Result<usize> {
    let t = v.trim();
    let (num, mult) = match t.strip_suffix("MiB").or_else(|| t.strip_suffix("M")) {
        Some(n) => (n.trim(), 1024 * 1024),
        None => (t, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| invalid_config(format!("BACKUP_S3_PART_SIZE must be a size in bytes or MiB, not {v:?}")))
}

/// Builds an [`S3Target`]; see [`S3Config`] for what each setting means.
#[derive(Debug, Clone)]
pub struct S3TargetBuilder {
    config: S3Config,
}

impl S3TargetBuilder {
    /// The prefix ("folder") of the artifacts.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = Some(prefix.into());
        self
    }
    /// The region (default `us-east-1`).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.config.region = region.into();
        self
    }
    /// The endpoint of an S3-compatible store.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.endpoint = Some(endpoint.into());
        self
    }
    /// Path-style (`true`, the default) or virtual-hosted requests.
    pub fn with_path_style(mut self, path_style: bool) -> Self {
        self.config.path_style = path_style;
        self
    }
    /// Explicit credentials.
    pub fn with_credentials(mut self, access_key_id: impl Into<String>, secret_access_key: Secret) -> Self {
        self.config.access_key_id = Some(access_key_id.into());
        self.config.secret_access_key = Some(secret_access_key);
        self
    }
    /// A session token for temporary credentials.
    pub fn with_session_token(mut self, token: Secret) -> Self {
        self.config.session_token = Some(token);
        self
    }
    /// Allows the cloud's credential chain (instance metadata) when no explicit credentials are given.
    pub fn with_cloud_credentials(mut self, enabled: bool) -> Self {
        self.config.cloud_credentials = enabled;
        self
    }
    /// Server-side encryption.
    pub fn with_encryption(mut self, encryption: S3Encryption) -> Self {
        self.config.encryption = Some(encryption);
        self
    }
    /// The storage class of published artifacts.
    pub fn with_storage_class(mut self, class: impl Into<String>) -> Self {
        self.config.storage_class = Some(class.into());
        self
    }
    /// The multipart part size in bytes (5 MiB to 5 GiB; default 8 MiB).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.config.part_size = bytes;
        self
    }
    /// Parts uploaded concurrently (default 2).
    pub fn with_parts_in_flight(mut self, n: usize) -> Self {
        self.config.parts_in_flight = n;
        self
    }
    /// The age after which incomplete uploads and staged objects are swept (default 24 h).
    pub fn with_sweep_after(mut self, age: Duration) -> Self {
        self.config.sweep_after = age;
        self
    }
    /// The limit of one HTTP request (default 5 minutes).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }
    /// Retries of one request on temporary failures, and their time limit (default 3 within 2 minutes).
    pub fn with_retries(mut self, max_retries: usize, within: Duration) -> Self {
        self.config.max_retries = max_retries;
        self.config.retry_timeout = within;
        self
    }
    /// Validates and builds (no request is sent).
    pub fn build(self) -> Result<S3Target> {
        S3Target::from_config(self.config)
    }
}

/// A [`BackupTarget`] in an S3-compatible bucket, one object per artifact under an optional prefix.
///
/// - **Streaming, bounded memory:** an artifact is written as a multipart upload to a *staging* key
///   (`{prefix}/.staging/{name}.{random}`), part by part (`part_size`, default 8 MiB, at most
///   `parts_in_flight` = 2 uploading while the next fills): no local temporary file.
/// - **Verified before published:** [`stage`](ArtifactWriter::stage) completes the upload under the staging
///   key; the backup reads it back *from the store* and verifies it; only then
///   [`publish`](StagedArtifact::publish) copies it server-side to its final key and deletes the staging
///   object. Nothing is ever under the final key before verification.
/// - **Never overwrites:** the copy is a multipart copy completed with `If-None-Match: *`
///   (object_store's `S3CopyIfNotExists::Multipart`), so two writers racing for one name cannot replace each
///   other: the second gets [`ErrorKind::AlreadyExists`]. (A plain `CopyObject` has no portable
///   "if absent" condition on AWS; conditional `CompleteMultipartUpload` does.) One copy part: artifacts up
///   to 5 GiB.
/// - **Clean failure:** an aborted or dropped writer aborts its multipart upload; a crashed process leaves an
///   incomplete upload or a staging object, which [`sweep_incomplete`](BackupTarget::sweep_incomplete)
///   lists (`ListMultipartUploads` under the prefix, and the staging objects) and removes once older than
///   `sweep_after` (24 h).
/// - **Encryption and class:** SSE-S3 or SSE-KMS headers go with every upload and copy; the storage class
///   with the published copy (staging stays `STANDARD` so it can be read back).
/// - **Credentials:** explicit only, unless `cloud_credentials` is enabled; the secret key never appears in
///   `Debug`, logs or errors.
///
/// ```no_run
/// # async fn demo() -> Result<(), resee_ops_backup::BackupError> {
/// use resee_ops_backup::{S3Config, S3Target};
/// use resee_ops_core::{BackupTarget, Secret};
///
/// let target = S3Target::builder("resee-backups")
///     .with_prefix("production")
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_credentials("AKIAEXAMPLE", Secret::new("example-secret"))
///     .build()?;
/// target.check().await?; // the bucket exists and the credentials work
/// println!("{} artifacts", target.list().await?.len());
/// // Or from BACKUP_S3_BUCKET, AWS_ACCESS_KEY_ID, …:
/// if let Some(cfg) = S3Config::from_env()? {
///     let _target = S3Target::from_config(cfg)?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct S3Target {
    inner: Arc<Inner>,
}

struct Inner {
    store: AmazonS3,
    /// The same bucket, with the storage class on every request: used only for the publishing copy (whose
    /// `CreateMultipartUpload` is where S3 takes the class).
    publisher: AmazonS3,
    http: HttpClient,
    bucket_url: String,
    prefix: Option<Path>,
    config: S3Config,
}

impl fmt::Debug for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Target").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl S3Target {
    /// A builder for `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3TargetBuilder {
        S3TargetBuilder { config: S3Config::new(bucket) }
    }

    /// From settings (validated; no request is sent).
    pub fn from_config(config: S3Config) -> Result<Self> {
        config.validate()?;
        let client_options = ClientOptions::new()
            .with_allow_http(config.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")))
            .with_timeout(config.request_timeout)
            .with_connect_timeout(Duration::from_secs(10).min(config.request_timeout));
        let retry = RetryConfig {
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        // Without both (only possible with cloud_credentials, validated above): the builder's own chain.
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret.expose());
            if let Some(token) = &config.session_token {
                builder = builder.with_token(token.expose());
            }
        }
        match &config.encryption {
            None => {}
            Some(S3Encryption::SseS3) => {
                builder = builder.with_config(sse_type()?, "AES256");
            }
            Some(S3Encryption::SseKms { key_id }) => {
                builder = match key_id {
                    Some(id) => builder.with_sse_kms_encryption(id),
                    None => builder.with_config(sse_type()?, "aws:kms"),
                };
            }
        }
        let store = builder
            .clone()
            .with_client_options(client_options.clone())
            .build()
            .map_err(|e| invalid_config(format!("invalid S3 settings: {}", redact(&e.to_string(), &config))))?;
        let publisher_options = match &config.storage_class {
            Some(class) => {
                let mut headers = object_store::HeaderMap::new();
                let value = object_store::HeaderValue::from_str(class)
                    .map_err(|_| invalid_config(format!("invalid S3 storage class {class:?}")))?;
                headers.insert("x-amz-storage-class", value);
                client_options.clone().with_default_headers(headers)
            }
            None => client_options.clone(),
        };
        let publisher = builder
            .with_client_options(publisher_options)
            .build()
            .map_err(|e| invalid_config(format!("invalid S3 settings: {}", redact(&e.to_string(), &config))))?;
        let http = ReqwestConnector::default()
            .connect(&client_options)
            .map_err(|e| invalid_config(format!("cannot set up the S3 HTTP client: {e}")))?;
        let bucket_url = bucket_url(&config);
        let prefix = config.prefix.as_deref().map(Path::from);
        Ok(Self { inner: Arc::new(Inner { store, publisher, http, bucket_url, prefix, config }) })
    }

    /// The settings in effect.
    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    /// Checks that the bucket exists and the credentials may list it (one request). A missing bucket is
    /// [`ErrorKind::NotFound`], refused credentials [`ErrorKind::PermissionDenied`]; neither is temporary.
    pub async fn check(&self) -> Result<()> {
        self.inner
            .store
            .list_with_delimiter(self.inner.prefix.as_ref())
            .await
            .map_err(|e| self.inner.error("list", e))?;
        Ok(())
    }
}

/// object_store's key for the `x-amz-server-side-encryption` setting (its enum is not exported).
fn sse_type() -> Result<AmazonS3ConfigKey> {
    "aws_server_side_encryption"
        .parse()
        .map_err(|e| invalid_config(format!("object_store has no server-side encryption setting: {e}")))
}

/// The bucket's base URL, as object_store builds it (for the one request it does not offer).
fn bucket_url(config: &S3Config) -> String {
    let endpoint = config
        .endpoint
        .as_deref()
        .map(|e| e.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region));
    if config.path_style {
        format!("{endpoint}/{}", config.bucket)
    } else {
        match endpoint.split_once("://") {
            Some((scheme, host)) => format!("{scheme}://{}.{host}", config.bucket),
            None => endpoint,
        }
    }
}

/// Removes the secret key and session token from a text, should a lower layer ever echo them.
fn redact(text: &str, config: &S3Config) -> String {
    let mut out = text.to_owned();
    for secret in [&config.secret_access_key, &config.session_token].into_iter().flatten() {
        if !secret.is_empty() {
            out = out.replace(secret.expose(), "<redacted>");
        }
    }
    out
}

/// S3's error code in a response body (`<Code>NoSuchBucket</Code>`), if any.
fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

impl Inner {
    fn key(&self, name: &str) -> Path {
        match &self.prefix {
            Some(p) => p.clone().join(name),
            None => Path::from_iter([name]),
        }
    }

    fn staging_dir(&self) -> Path {
        self.key(STAGING_DIR)
    }

    /// `{prefix}/.staging/{name}.{unix seconds}-{pid}-{random}`: the start time in the key lets the sweep judge
    /// its age without trusting the store's `Initiated` (some S3-compatible servers report a fixed one).
    fn staging_key(&self, name: &ArtifactName) -> Path {
        let now = Utc::now().timestamp();
        self.staging_dir().join(format!("{name}.{now}-{}-{:016x}", std::process::id(), fastrand::u64(..)).as_str())
    }

    fn where_(&self) -> String {
        let endpoint = self.config.endpoint.as_deref().unwrap_or("AWS S3");
        format!("s3://{} at {endpoint}", self.config.bucket)
    }

    /// Maps an object_store error into core's error: kind, whether it is temporary, a message that names the
    /// bucket and never the secret.
    fn error(&self, op: &str, e: object_store::Error) -> Error {
        use object_store::Error as E;
        let text = redact(&e.to_string(), &self.config);
        let code = s3_code(&text).map(str::to_owned);
        let bucket = &self.config.bucket;
        let status = ["status 4", "status 5"].iter().find_map(|p| {
            let at = text.find(p)? + "status ".len();
            text.get(at..at + 3)?.parse::<u16>().ok()
        });
        let mut err = match (&e, code.as_deref()) {
            (_, Some("NoSuchBucket")) => Error::new(
                ErrorKind::NotFound,
                format!("S3 {op}: the bucket {bucket:?} does not exist ({})", self.where_()),
            )
            .with_temporary(false),
            (E::PermissionDenied { .. } | E::Unauthenticated { .. }, _)
            | (
                _,
                Some(
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "AccessDenied"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "AuthorizationHeaderMalformed",
                ),
            ) => Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "S3 {op}: {} refused the credentials (access key id {:?}){}",
                    self.where_(),
                    self.config.access_key_id.as_deref().unwrap_or("from the cloud chain"),
                    code.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
                ),
            )
            .with_temporary(false),
            (E::NotFound { path, .. }, _) => {
                Error::new(ErrorKind::NotFound, format!("S3 {op}: {path} not found in {}", self.where_()))
            }
            (E::AlreadyExists { path, .. } | E::Precondition { path, .. }, _) => {
                Error::new(ErrorKind::AlreadyExists, format!("S3 {op}: {path} exists already in {}", self.where_()))
            }
            (_, Some("SlowDown")) => {
                Error::new(ErrorKind::RateLimited, format!("S3 {op}: {} asked to slow down", self.where_()))
            }
            (_, Some("EntityTooLarge" | "QuotaExceeded")) => Error::new(
                ErrorKind::StorageFull,
                format!("S3 {op}: {}: {}", self.where_(), code.as_deref().unwrap_or_default()),
            )
            .with_temporary(false),
            _ if status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429) => {
                Error::new(ErrorKind::Unexpected, format!("S3 {op} refused by {}: {text}", self.where_()))
                    .with_temporary(false)
            }
            _ => Error::new(ErrorKind::Unavailable, format!("S3 {op} failed at {}: {text}", self.where_()))
                .with_temporary(true),
        };
        if let Some(s) = status {
            err = err.with_status(s);
        }
        if let Some(c) = code {
            err = err.with_code(c);
        }
        err
    }

    async fn head(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
        let meta = self.store.head(&self.key(name.as_str())).await.map_err(|e| self.error("head", e))?;
        Ok(ArtifactMeta::new(name.clone(), meta.size, meta.last_modified))
    }

    /// Lists the incomplete multipart uploads under the prefix: `(key, upload id, initiated)`.
    async fn incomplete_uploads(&self) -> Result<Vec<(String, String, DateTime<Utc>)>, Error> {
        let prefix = self.prefix.as_ref().map(|p| format!("{p}/")).unwrap_or_default();
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut url = format!("{}?uploads=&prefix={}", self.bucket_url, url_encode(&prefix));
            if let Some((key, id)) = &markers {
                url.push_str(&format!("&key-marker={}&upload-id-marker={}", url_encode(key), url_encode(id)));
            }
            let body = self.signed_get(&url).await?;
            for upload in xml_elements(&body, "Upload") {
                let (Some(key), Some(id), Some(initiated)) =
                    (xml_text(upload, "Key"), xml_text(upload, "UploadId"), xml_text(upload, "Initiated"))
                else {
                    continue;
                };
                let Ok(initiated) = DateTime::parse_from_rfc3339(&initiated) else { continue };
                out.push((key, id, initiated.with_timezone(&Utc)));
            }
            if xml_text(&body, "IsTruncated").as_deref() != Some("true") {
                break;
            }
            match (xml_text(&body, "NextKeyMarker"), xml_text(&body, "NextUploadIdMarker")) {
                (Some(k), Some(i)) if markers.as_ref() != Some(&(k.clone(), i.clone())) => markers = Some((k, i)),
                _ => break,
            }
        }
        Ok(out)
    }

    /// A GET signed like object_store signs its own (SigV4), returning the body.
    async fn signed_get(&self, url: &str) -> Result<String, Error> {
        let unavailable = |what: String| Error::new(ErrorKind::Unavailable, what).with_temporary(true);
        let credential = self.store.credentials().get_credential().await.map_err(|e| self.error("credentials", e))?;
        let mut request: HttpRequest = http::Request::builder()
            .method(http::Method::GET)
            .uri(url)
            .body(object_store::client::HttpRequestBody::empty())
            .map_err(|e| Error::new(ErrorKind::InvalidConfig, format!("invalid S3 URL: {e}")))?;
        AwsAuthorizer::new(&credential, "s3", &self.config.region)
            .try_authorize(&mut request, None)
            .map_err(|e| self.error("sign", e))?;
        let fut = self.http.execute(request);
        let response = tokio::time::timeout(self.config.request_timeout, fut)
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, format!("S3 list uploads: no answer from {}", self.where_())))?
            .map_err(|e| {
                unavailable(format!("S3 list uploads at {}: {}", self.where_(), redact(&e.to_string(), &self.config)))
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| unavailable(format!("S3 list uploads at {}: {e}", self.where_())))?;
        let body = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            let e = object_store::Error::Generic {
                store: "S3",
                source: format!("Client error with status {}: {body}", status.as_u16()).into(),
            };
            return Err(self.error("list uploads", e));
        }
        Ok(body)
    }
}

/// The start time written into a staging key by [`Inner::staging_key`], if `key` is one.
fn staging_started(key: &str) -> Option<DateTime<Utc>> {
    let file = key.rsplit_once('/').map_or(key, |(_, f)| f);
    let (_, suffix) = file.rsplit_once('.')?;
    let mut parts = suffix.split('-');
    let secs = parts.next()?.parse::<i64>().ok()?;
    (parts.count() == 2).then_some(())?;
    DateTime::from_timestamp(secs, 0)
}

/// How old a staged object or upload is: the later of the store's time and the one in its key (so a store
/// that reports a wrong, old time never gets a fresh upload swept).
fn started(key: &str, store_time: DateTime<Utc>) -> DateTime<Utc> {
    staging_started(key).map_or(store_time, |t| t.max(store_time))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn url_encode(text: &str) -> String {
    use std::fmt::Write as _;
    text.bytes().fold(String::with_capacity(text.len()), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// The contents of every `<tag>…</tag>` element (not nested in one another).
fn xml_elements<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// The unescaped text of the first `<tag>` element.
fn xml_text(text: &str, tag: &str) -> Option<String> {
    let raw = xml_elements(text, tag).into_iter().next()?;
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Decodes object_store's percent-encoding of a path part.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[async_trait]
impl BackupTarget for S3Target {
    fn label(&self) -> &str {
        "s3"
    }

    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        match self.inner.head(name).await {
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{name} exists already in {}", self.inner.where_()),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let staging = self.inner.staging_key(name);
        let upload = self
            .inner
            .store
            .put_multipart_opts(&staging, PutMultipartOptions::default())
            .await
            .map_err(|e| self.inner.error("create upload", e))?;
        Ok(Box::new(S3Writer {
            inner: Arc::clone(&self.inner),
            name: name.clone(),
            staging,
            upload: Some(upload),
            buf: Vec::new(),
            in_flight: VecDeque::new(),
            size: 0,
        }))
    }

    async fn list(&self) -> Result<Vec<ArtifactMeta>, Error> {
        let listing = self
            .inner
            .store
            .list_with_delimiter(self.inner.prefix.as_ref())
            .await
            .map_err(|e| self.inner.error("list", e))?;
        let mut out: Vec<ArtifactMeta> = listing
            .objects
            .into_iter()
            .filter_map(|o| {
                let file = percent_decode(o.location.filename()?)?;
                let name = ArtifactName::new(file).ok()?;
                Some(ArtifactMeta::new(name, o.size, o.last_modified))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn stat(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
        self.inner.head(name).await
    }

    async fn open(&self, name: &ArtifactName) -> Result<ArtifactReader, Error> {
        let key = self.inner.key(name.as_str());
        open_key(&self.inner, &key).await
    }

    async fn delete(&self, name: &ArtifactName) -> Result<(), Error> {
        // S3 deletes of missing keys succeed: ask first, so that a missing name is `NotFound` as everywhere.
        self.inner.head(name).await?;
        self.inner.store.delete(&self.inner.key(name.as_str())).await.map_err(|e| self.inner.error("delete", e))
    }

    async fn sweep_incomplete(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        let cutoff = sweep_cutoff(Utc::now(), inner.config.sweep_after);
        let mut removed = 0;
        // Staged objects whose run died between staging and publishing.
        let staging = inner.staging_dir();
        let mut stale = Vec::new();
        let mut listing = inner.store.list(Some(&staging));
        while let Some(item) = listing.next().await {
            let meta = item.map_err(|e| inner.error("list staging", e))?;
            if started(meta.location.as_ref(), meta.last_modified) <= cutoff {
                stale.push(meta.location);
            }
        }
        for key in stale {
            match inner.store.delete(&key).await {
                Ok(()) => {
                    tracing::info!(key = %key, "removed an abandoned staged upload");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %inner.error("delete", e), "cannot remove a staged upload")
                }
            }
        }
        // Multipart uploads never completed (a killed process, a cut connection whose abort failed too).
        let staging_prefix = format!("{staging}/");
        for (key, id, initiated) in inner.incomplete_uploads().await? {
            // Ours: a staging upload, or the publishing copy of an artifact (a backup or its manifest).
            let file = key.rsplit_once('/').map_or(key.as_str(), |(_, f)| f);
            let ours =
                key.starts_with(&staging_prefix) || crate::catalog::EXTENSIONS.iter().any(|ext| file.contains(ext));
            if !ours || started(&key, initiated) > cutoff {
                continue;
            }
            let Ok(path) = Path::parse(&key) else { continue };
            match inner.store.abort_multipart(&path, &id).await {
                Ok(()) => {
                    tracing::info!(key = %key, initiated = %initiated, "aborted an abandoned multipart upload");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %inner.error("abort upload", e), "cannot abort a multipart upload")
                }
            }
        }
        Ok(removed)
    }
}

async fn open_key(inner: &Inner, key: &Path) -> Result<ArtifactReader, Error> {
    let result = inner.store.get(key).await.map_err(|e| inner.error("get", e))?;
    Ok(Box::new(StreamReader { stream: result.into_stream(), chunk: Bytes::new(), inner_where: inner.where_() }))
}

/// An `AsyncRead` over a stream of byte chunks.
struct StreamReader {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    inner_where: String,
}

impl AsyncRead for StreamReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(buf.remaining());
                buf.put_slice(&self.chunk.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match self.stream.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.chunk = chunk,
                Poll::Ready(Some(Err(e))) => {
                    let what = format!("S3 read from {}: {e}", self.inner_where);
                    return Poll::Ready(Err(std::io::Error::other(what)));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A multipart upload to a staging key, `part_size` bytes per part, at most `parts_in_flight` parts
/// uploading at once.
struct S3Writer {
    inner: Arc<Inner>,
    name: ArtifactName,
    staging: Path,
    upload: Option<Box<dyn MultipartUpload>>,
    buf: Vec<u8>,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
    size: u64,
}

impl fmt::Debug for S3Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Writer")
            .field("name", &self.name)
            .field("staging", &self.staging.as_ref())
            .field("size", &self.size)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl S3Writer {
    fn closed() -> Error {
        Error::new(ErrorKind::Closed, "writer is closed")
    }

    /// Sends the buffer as the next part, first waiting for the oldest part when too many are in flight.
    async fn send_part(&mut self) -> Result<(), Error> {
        while self.in_flight.len() >= self.inner.config.parts_in_flight {
            self.wait_oldest().await?;
        }
        let upload = self.upload.as_mut().ok_or_else(Self::closed)?;
        let part = std::mem::take(&mut self.buf);
        let fut = upload.put_part(PutPayload::from(part));
        self.in_flight.push_back(tokio::spawn(fut));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<(), Error> {
        let Some(handle) = self.in_flight.pop_front() else { return Ok(()) };
        match handle.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.inner.error("upload part", e)),
            Err(e) => Err(Error::new(ErrorKind::Unexpected, format!("S3 part upload task failed: {e}"))),
        }
    }

    /// Aborts the upload (in-flight parts first). Best effort; returns the abort's error.
    async fn abort_upload(&mut self) -> Result<(), Error> {
        for handle in self.in_flight.drain(..) {
            handle.abort();
        }
        match self.upload.take() {
            Some(mut upload) => upload.abort().await.map_err(|e| self.inner.error("abort upload", e)),
            None => Ok(()),
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        for handle in self.in_flight.drain(..) {
            handle.abort();
        }
        if let Some(mut upload) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let key = self.staging.to_string();
            rt.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(key, error = %e, "cannot abort a dropped S3 upload; the next sweep will");
                }
            });
        }
    }
}

#[async_trait]
impl ArtifactWriter for S3Writer {
    async fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        if self.upload.is_none() {
            return Err(Self::closed());
        }
        let part_size = self.inner.config.part_size;
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(part_size);
            }
            let n = (part_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.size += n as u64;
            data = &data[n..];
            if self.buf.len() == part_size {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn stage(mut self: Box<Self>) -> Result<Box<dyn StagedArtifact>, Error> {
        let result: Result<(), Error> = async {
            if !self.buf.is_empty() {
                self.send_part().await?;
            }
            while !self.in_flight.is_empty() {
                self.wait_oldest().await?;
            }
            let upload = self.upload.as_mut().ok_or_else(Self::closed)?;
            upload.complete().await.map_err(|e| self.inner.error("complete upload", e))?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            if let Err(abort) = self.abort_upload().await {
                tracing::warn!(error = %abort, "cannot abort the S3 upload; the next sweep will");
            }
            return Err(e);
        }
        self.upload = None;
        Ok(Box::new(S3Staged {
            inner: Arc::clone(&self.inner),
            name: self.name.clone(),
            staging: self.staging.clone(),
            size: self.size,
            done: false,
        }))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.abort_upload().await
    }
}

/// A completed upload under its staging key.
struct S3Staged {
    inner: Arc<Inner>,
    name: ArtifactName,
    staging: Path,
    size: u64,
    done: bool,
}

impl fmt::Debug for S3Staged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Staged")
            .field("name", &self.name)
            .field("staging", &self.staging.as_ref())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl S3Staged {
    async fn remove_staging(&mut self) -> Result<(), Error> {
        self.done = true;
        self.inner.store.delete(&self.staging).await.map_err(|e| self.inner.error("delete staged", e))
    }
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (inner, key) = (Arc::clone(&self.inner), self.staging.clone());
            rt.spawn(async move {
                if let Err(e) = inner.store.delete(&key).await {
                    tracing::warn!(key = %key, error = %inner.error("delete", e), "cannot remove a staged upload; the next sweep will");
                }
            });
        }
    }
}

#[async_trait]
impl StagedArtifact for S3Staged {
    fn name(&self) -> &ArtifactName {
        &self.name
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn open(&self) -> Result<ArtifactReader, Error> {
        open_key(&self.inner, &self.staging).await
    }

    async fn publish(mut self: Box<Self>) -> Result<ArtifactMeta, Error> {
        let dest = self.inner.key(self.name.as_str());
        let copy = self
            .inner
            .publisher
            .copy_opts(&self.staging, &dest, CopyOptions { mode: CopyMode::Create, ..Default::default() })
            .await
            .map_err(|e| self.inner.error("publish", e));
        if let Err(e) = self.remove_staging().await {
            tracing::warn!(error = %e, "cannot remove the staged upload after publishing; the next sweep will");
        }
        copy?;
        let meta = self.inner.head(&self.name).await?;
        if meta.size != self.size {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("{}: published {} bytes, staged {}", self.name, meta.size, self.size),
            ));
        }
        Ok(meta)
    }

    async fn discard(mut self: Box<Self>) -> Result<(), Error> {
        self.remove_staging().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Point 14: `sweep_after = Duration::MAX` (or any age past the representable) never sweeps and never
    /// panics (`now - TimeDelta::MAX` did).
    #[test]
    fn sweep_ages_past_the_representable_sweep_nothing() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T20:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(sweep_cutoff(now, Duration::from_secs(3600)), now - chrono::TimeDelta::hours(1));
        for age in [Duration::MAX, Duration::from_secs(i64::MAX as u64 / 1000), Duration::from_secs(u64::MAX / 2)] {
            assert_eq!(sweep_cutoff(now, age), DateTime::<Utc>::MIN_UTC, "{age:?}");
        }
        assert_eq!(sweep_cutoff(DateTime::<Utc>::MIN_UTC, Duration::from_secs(1)), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn xml_of_list_multipart_uploads_parses() {
        let body = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>\
            <Upload><Key>p/.staging/a&amp;b.sql.gz.1-00</Key><UploadId>abc</UploadId>\
            <Initiated>2026-12-01T20:48:33.000Z</Initiated></Upload>\
            <Upload><Key>p/x.sql.gz</Key><UploadId>def</UploadId><Initiated>2026-12-01T21:00:00Z</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let uploads = xml_elements(body, "Upload");
        assert_eq!(uploads.len(), 2);
        assert_eq!(xml_text(uploads[0], "Key").as_deref(), Some("p/.staging/a&b.sql.gz.1-00"));
        assert_eq!(xml_text(uploads[1], "UploadId").as_deref(), Some("def"));
        assert_eq!(xml_text(body, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(s3_code("<Error><Code>NoSuchBucket</Code></Error>"), Some("NoSuchBucket"));
        let t = staging_started("p/.staging/db_x_20260101_000000.sql.gz.1764633600-42-00000000000000ff");
        assert_eq!(t.map(|t| t.timestamp()), Some(1_764_633_600));
        assert_eq!(staging_started("p/db_x_20260101_000000.sql.gz"), None);
        let old = DateTime::parse_from_rfc3339("2010-11-10T20:48:33Z").unwrap().with_timezone(&Utc);
        assert_eq!(started("p/.staging/a.sql.gz.1764633600-1-00", old).timestamp(), 1_764_633_600);
    }

    #[test]
    fn settings_are_validated_and_credentials_required() {
        let ok = || S3Target::builder("resee-backups").with_credentials("id", Secret::new("s3cr3t-key"));
        assert!(ok().build().is_ok());
        let err = S3Target::builder("resee-backups").build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
        assert!(S3Target::builder("resee-backups").with_cloud_credentials(true).build().is_ok());
        for bad in
            [ok().with_part_size(1024), ok().with_prefix("/a"), ok().with_prefix("a//b"), ok().with_parts_in_flight(0)]
        {
            assert_eq!(bad.build().unwrap_err().kind(), ErrorKind::InvalidConfig);
        }
        assert!(S3Target::builder("Bad_Bucket").with_credentials("id", Secret::new("x")).build().is_err());
        let target = ok().with_endpoint("http://127.0.0.1:9").build().unwrap();
        assert!(!format!("{target:?}").contains("s3cr3t-key"));
    }

    #[test]
    fn environment_is_read() {
        let env = |k: &str| {
            let v = match k {
                "BACKUP_S3_BUCKET" => "b-1",
                "BACKUP_S3_PREFIX" => "prod/db",
                "AWS_REGION" => "eu-west-1",
                "BACKUP_S3_ENDPOINT" => "http://127.0.0.1:9000",
                "BACKUP_S3_PATH_STYLE" => "false",
                "AWS_ACCESS_KEY_ID" => "AKIA",
                "AWS_SECRET_ACCESS_KEY" => "sekrit",
                "BACKUP_S3_SSE" => "aws:kms",
                "BACKUP_S3_SSE_KMS_KEY_ID" => "key-1",
                "BACKUP_S3_STORAGE_CLASS" => "STANDARD_IA",
                "BACKUP_S3_PART_SIZE" => "16MiB",
                _ => return None,
            };
            Some(v.to_owned())
        };
        let cfg = S3Config::from_lookup(env).unwrap().unwrap();
        assert_eq!(
            (cfg.bucket.as_str(), cfg.prefix.as_deref(), cfg.region.as_str()),
            ("b-1", Some("prod/db"), "eu-west-1")
        );
        assert!(!cfg.path_style);
        assert_eq!(cfg.encryption, Some(S3Encryption::SseKms { key_id: Some("key-1".into()) }));
        assert_eq!(cfg.part_size, 16 * 1024 * 1024);
        assert_eq!(bucket_url(&cfg), "http://b-1.127.0.0.1:9000");
        assert!(S3Config::from_lookup(|_| None).unwrap().is_none());
        assert!(
            S3Config::from_lookup(|k| (k == "BACKUP_S3_BUCKET" || k == "BACKUP_S3_SSE").then(|| "x".into())).is_err()
        );
    }
}
