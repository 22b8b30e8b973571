//! The `[logging]` configuration: where the files go, their format, level, rotation and channels.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use resee_ops_core::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// `LOG_DIR`: the directory of the log files (overrides [`LoggingConfig::dir`] in [`LoggingConfig::from_env`]).
pub const ENV_DIR: &str = "LOG_DIR";
/// `LOG_FORMAT`: `json` or `text`, for every sink that has no format of its own.
pub const ENV_FORMAT: &str = "LOG_FORMAT";
/// `RUST_LOG`: level directives such as `info,resee_ops_backup=debug`.
pub const ENV_LEVEL: &str = "RUST_LOG";
/// `LOG_MAX_BYTES`: the size at which a file is rotated.
pub const ENV_MAX_BYTES: &str = "LOG_MAX_BYTES";
/// `LOG_BACKUPS`: how many rotated files each channel keeps.
pub const ENV_BACKUPS: &str = "LOG_BACKUPS";

/// Default rotation size: 10 MiB, the seed's `maxBytes`.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default number of rotated files kept per channel (`general.log.1` … `general.log.5`).
pub const DEFAULT_BACKUPS: usize = 5;
/// Default capacity, in lines, of each sink's queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16 * 1024;
/// The largest queue capacity accepted (about a million lines): the queue is allocated up front, so a
/// larger one could exhaust memory at start.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// The most rotated files a channel may keep.
pub const MAX_BACKUPS: usize = 10_000;

/// The format of one sink's lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// One line a human reads: `2026-12-01T20:29:13.123456+00:00  INFO target: span: message key=value`.
    #[default]
    Text,
    /// One JSON object a line; the field names are listed in the crate documentation.
    Json,
}

impl LogFormat {
    /// `"text"` or `"json"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => {
                Err(Error::new(ErrorKind::InvalidConfig, format!("log format {other:?} is neither json nor text")))
            }
        }
    }
}

/// The least severe level a channel accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Level {
    /// Everything the level directives let through.
    Trace,
    /// `DEBUG` and more severe.
    Debug,
    /// `INFO` and more severe.
    Info,
    /// `WARN` and `ERROR`.
    Warn,
    /// `ERROR` only.
    Error,
}

impl Level {
    pub(crate) fn as_tracing(self) -> tracing::Level {
        match self {
            Self::Trace => tracing::Level::TRACE,
            Self::Debug => tracing::Level::DEBUG,
            Self::Info => tracing::Level::INFO,
            Self::Warn => tracing::Level::WARN,
            Self::Error => tracing::Level::ERROR,
        }
    }
}

/// One log file and the events routed to it.
///
/// An event goes to a channel when its level is at least [`level`](Self::level) and its target is one of
/// [`targets`](Self::targets) (a target matches itself and its `::` children; an empty list matches every
/// target). Every channel sees only what the level directives ([`LoggingConfig::level`]) let through.
///
/// ```
/// use resee_ops_logging::{ChannelConfig, Level};
///
/// let audit = ChannelConfig::new("audit", "audit.log").with_targets(["audit"]).with_level(Level::Info);
/// assert_eq!(audit.file, "audit.log");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ChannelConfig {
    /// A short name for stats and console reports (`general`, `error`, `worker`, `security`, …).
    pub name: String,
    /// The file name inside the log directory (`general.log`); rotated files get `.1`, `.2`, ….
    pub file: String,
    /// Whether the channel is written at all.
    pub enabled: bool,
    /// The targets routed here; empty: every target.
    pub targets: Vec<String>,
    /// The least severe level routed here.
    pub level: Level,
    /// This channel's format; `None`: [`LoggingConfig::format`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self::new("channel", "channel.log")
    }
}

impl ChannelConfig {
    /// An enabled channel writing every event the directives let through to `file`.
    pub fn new(name: impl Into<String>, file: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            file: file.into(),
            enabled: true,
            targets: Vec::new(),
            level: Level::Trace,
            format: None,
        }
    }

    /// The seed's `django.log`: everything at the configured level, in `general.log`.
    pub fn general() -> Self {
        Self::new("general", "general.log")
    }

    /// The seed's `django_error.log`: `WARN` and `ERROR` from every target, in `error.log`.
    pub fn error() -> Self {
        Self::new("error", "error.log").with_level(Level::Warn)
    }

    /// The seed's `celery.log`: the `worker` and `task` targets, in `worker.log` (set
    /// [`with_file("celery.log")`](Self::with_file) to keep the old name).
    pub fn worker() -> Self {
        Self::new("worker", "worker.log").with_targets(["worker", "task"])
    }

    /// The seed's `security.log`: target `security` (failed logins, permission denials, secrets rejected).
    pub fn security() -> Self {
        Self::new("security", "security.log").with_targets(["security"])
    }

    /// Sets the file name inside the log directory.
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = file.into();
        self
    }

    /// Replaces the routed targets.
    pub fn with_targets<I, T>(mut self, targets: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.targets = targets.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one routed target to the list.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.targets.push(target.into());
        self
    }

    /// Sets the least severe level routed here.
    pub fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Sets this channel's own format.
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Turns the channel on or off.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |why: &str| Error::new(ErrorKind::InvalidConfig, format!("log channel {:?}: {why}", self.name));
        if self.file.is_empty() || self.file == "." || self.file == ".." || self.file.contains(['/', '\\', '\0']) {
            return Err(bad(&format!("file name {:?} must be a plain file name", self.file)));
        }
        if self.targets.iter().any(|t| t.trim().is_empty()) {
            return Err(bad("a target is empty"));
        }
        Ok(())
    }
}

/// The `[logging]` section: a log directory with one file per channel, a console, the level directives,
/// formats, rotation and queueing.
///
/// Deserialize it from the service's configuration (every field has a default), build it with the
/// `with_*` methods, or read it from the environment with [`from_env`](Self::from_env).
///
/// ```
/// use resee_ops_logging::{LogFormat, LoggingConfig};
///
/// let config: LoggingConfig = serde_json::from_str(r#"{
///     "dir": "/var/log/resee", "format": "json", "level": "info,resee_ops_backup=debug",
///     "worker": { "file": "celery.log" }
/// }"#).unwrap();
/// assert_eq!(config.format, LogFormat::Json);
/// assert_eq!(config.worker.file, "celery.log");
/// assert_eq!(config.worker.targets, ["worker", "task"]); // the rest keeps its defaults
/// assert_eq!(config.max_bytes, 10 * 1024 * 1024);
/// assert_eq!(config.backups, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LoggingConfig {
    /// The log directory, created `0750` when missing. Default `logs`.
    pub dir: PathBuf,
    /// `RUST_LOG`-style directives (`info`, `warn,resee_ops_backup=debug`); reloadable at run time with
    /// [`LogHandle::set_level`](crate::LogHandle::set_level). Default `info`.
    pub level: String,
    /// The format of every sink without a format of its own. Default `text`.
    pub format: LogFormat,
    /// Whether events are also written to standard error. Default `true`.
    pub console: bool,
    /// The console's own format; `None`: [`format`](Self::format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_format: Option<LogFormat>,
    /// A file is rotated once it is larger than this many bytes (cut at a line end). Default 10 MiB.
    pub max_bytes: u64,
    /// How many rotated files each channel keeps; the oldest is deleted. Default 5, at most
    /// [`MAX_BACKUPS`].
    pub backups: usize,
    /// The capacity, in lines, of each sink's queue. Default 16384, at most [`MAX_QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// `false` (default): when a sink's queue is full, the line is dropped and counted, and the count is
    /// logged once the queue drains. `true`: the caller waits for room instead (no line is ever dropped).
    pub lossless: bool,
    /// `general.log`: everything at the configured level.
    #[serde(deserialize_with = "patch_general")]
    pub general: ChannelConfig,
    /// `error.log`: `WARN` and `ERROR` (set its level to [`Level::Error`] for errors only).
    #[serde(deserialize_with = "patch_error")]
    pub error: ChannelConfig,
    /// `worker.log`: the worker and task targets.
    #[serde(deserialize_with = "patch_worker")]
    pub worker: ChannelConfig,
    /// `security.log`: target `security`.
    #[serde(deserialize_with = "patch_security")]
    pub security: ChannelConfig,
    /// The host's own extra channels.
    pub channels: Vec<ChannelConfig>,
}

/// A built-in channel as written in a configuration file: only what differs from its defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelPatch {
    name: Option<String>,
    file: Option<String>,
    enabled: Option<bool>,
    targets: Option<Vec<String>>,
    level: Option<Level>,
    format: Option<LogFormat>,
}

impl ChannelPatch {
    fn over(self, base: ChannelConfig) -> ChannelConfig {
        ChannelConfig {
            name: self.name.unwrap_or(base.name),
            file: self.file.unwrap_or(base.file),
            enabled: self.enabled.unwrap_or(base.enabled),
            targets: self.targets.unwrap_or(base.targets),
            level: self.level.unwrap_or(base.level),
            format: self.format.or(base.format),
        }
    }
}

macro_rules! patch_fns {
    ($($name:ident => $base:ident),*) => {$(
        fn $name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ChannelConfig, D::Error> {
            ChannelPatch::deserialize(d).map(|patch| patch.over(ChannelConfig::$base()))
        }
    )*};
}
patch_fns!(patch_general => general, patch_error => error, patch_worker => worker, patch_security => security);

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("logs"),
            level: "info".to_owned(),
            format: LogFormat::Text,
            console: true,
            console_format: None,
            max_bytes: DEFAULT_MAX_BYTES,
            backups: DEFAULT_BACKUPS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            lossless: false,
            general: ChannelConfig::general(),
            error: ChannelConfig::error(),
            worker: ChannelConfig::worker(),
            security: ChannelConfig::security(),
            channels: Vec::new(),
        }
    }
}

impl LoggingConfig {
    /// The defaults with the log directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), ..Self::default() }
    }

    /// The defaults, then the environment: `LOG_DIR`, `LOG_FORMAT`, `RUST_LOG`, `LOG_MAX_BYTES`,
    /// `LOG_BACKUPS`.
    pub fn from_env() -> Result<Self, Error> {
        Self::default().with_env_overrides()
    }

    /// Applies whichever of `LOG_DIR`, `LOG_FORMAT`, `RUST_LOG`, `LOG_MAX_BYTES` and `LOG_BACKUPS` are
    /// set (and not empty) over this configuration: the environment wins over the file.
    pub fn with_env_overrides(self) -> Result<Self, Error> {
        self.with_overrides(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`with_env_overrides`](Self::with_env_overrides) reading the variables through `var` (a test's
    /// table, or a host's own environment lookup).
    pub fn with_overrides(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        if let Some(dir) = var(ENV_DIR) {
            self.dir = PathBuf::from(dir);
        }
        if let Some(format) = var(ENV_FORMAT) {
            self.format = format.parse()?;
        }
        if let Some(level) = var(ENV_LEVEL) {
            self.level = level;
        }
        let number = |name: &str, value: String| {
            value.trim().parse::<u64>().map_err(|_| {
                Error::new(ErrorKind::InvalidConfig, format!("{name}={value:?} is not a non-negative whole number"))
            })
        };
        if let Some(v) = var(ENV_MAX_BYTES) {
            self.max_bytes = number(ENV_MAX_BYTES, v)?;
        }
        if let Some(v) = var(ENV_BACKUPS) {
            self.backups = usize::try_from(number(ENV_BACKUPS, v)?).unwrap_or(usize::MAX);
        }
        Ok(self)
    }

    /// Sets the log directory.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// Sets the level directives.
    pub fn with_level(mut self, directives: impl Into<String>) -> Self {
        self.level = directives.into();
        self
    }

    /// Sets the format of every sink without a format of its own.
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// Turns the console output on or off.
    pub fn with_console(mut self, console: bool) -> Self {
        self.console = console;
        self
    }

    /// Sets the console's own format.
    pub fn with_console_format(mut self, format: LogFormat) -> Self {
        self.console_format = Some(format);
        self
    }

    /// Sets the rotation size in bytes.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets how many rotated files each channel keeps.
    pub fn with_backups(mut self, backups: usize) -> Self {
        self.backups = backups;
        self
    }

    /// Sets each sink's queue capacity in lines.
    pub fn with_queue_capacity(mut self, lines: usize) -> Self {
        self.queue_capacity = lines;
        self
    }

    /// `true`: callers wait for room in a full queue instead of dropping (and counting) the line.
    pub fn with_lossless(mut self, lossless: bool) -> Self {
        self.lossless = lossless;
        self
    }

    /// Replaces the general channel.
    pub fn with_general(mut self, channel: ChannelConfig) -> Self {
        self.general = channel;
        self
    }

    /// Replaces the error channel (e.g. `ChannelConfig::error().with_level(Level::Error)`).
    pub fn with_error(mut self, channel: ChannelConfig) -> Self {
        self.error = channel;
        self
    }

    /// Replaces the worker channel (e.g. `ChannelConfig::worker().with_file("celery.log")`).
    pub fn with_worker(mut self, channel: ChannelConfig) -> Self {
        self.worker = channel;
        self
    }

    /// Replaces the security channel.
    pub fn with_security(mut self, channel: ChannelConfig) -> Self {
        self.security = channel;
        self
    }

    /// The console only: every file channel turned off, so nothing is created on disk (for a
    /// command-line tool's short runs, such as checking a configuration).
    pub fn with_console_only(mut self) -> Self {
        for channel in [&mut self.general, &mut self.error, &mut self.worker, &mut self.security] {
            channel.enabled = false;
        }
        self.channels.iter_mut().for_each(|c| c.enabled = false);
        self.console = true;
        self
    }

    /// Adds a channel of the host's own.
    pub fn with_channel(mut self, channel: ChannelConfig) -> Self {
        self.channels.push(channel);
        self
    }

    /// The enabled channels, the four built-in ones first.
    pub fn enabled_channels(&self) -> impl Iterator<Item = &ChannelConfig> {
        [&self.general, &self.error, &self.worker, &self.security]
            .into_iter()
            .chain(&self.channels)
            .filter(|c| c.enabled)
    }

    /// Checks everything that can be checked without touching the disk.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Error::new(ErrorKind::InvalidConfig, why);
        if self.dir.as_os_str().is_empty() {
            return Err(bad("the log directory is empty".to_owned()));
        }
        if self.max_bytes == 0 {
            return Err(bad("logging max_bytes must be greater than 0".to_owned()));
        }
        if self.queue_capacity == 0 || self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(bad(format!("logging queue_capacity must be between 1 and {MAX_QUEUE_CAPACITY}")));
        }
        if self.backups > MAX_BACKUPS {
            return Err(bad(format!("logging backups must be at most {MAX_BACKUPS}")));
        }
        if self.enabled_channels().count() > 60 {
            return Err(bad("at most 60 log channels are supported".to_owned()));
        }
        let mut files = std::collections::BTreeSet::new();
        for channel in self.enabled_channels() {
            channel.validate()?;
            if !files.insert(channel.file.as_str()) {
                return Err(bad(format!("two log channels write to the same file {:?}", channel.file)));
            }
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.level)
            .map_err(|e| bad(format!("logging level {:?}: {e}", self.level)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_win_and_bad_values_are_typed_errors() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let config = LoggingConfig::default()
            .with_overrides(env(&[
                (ENV_DIR, "/tmp/x"),
                (ENV_FORMAT, "JSON"),
                (ENV_LEVEL, "debug"),
                (ENV_MAX_BYTES, "1000"),
                (ENV_BACKUPS, "2"),
            ]))
            .unwrap();
        assert_eq!(config.dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.format, LogFormat::Json);
        assert_eq!(config.level, "debug");
        assert_eq!((config.max_bytes, config.backups), (1000, 2));

        let err = LoggingConfig::default().with_overrides(env(&[(ENV_FORMAT, "xml")])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        let err = LoggingConfig::default().with_overrides(env(&[(ENV_MAX_BYTES, "10MB")])).unwrap_err();
        assert!(err.to_string().contains("LOG_MAX_BYTES"), "{err}");
    }

    #[test]
    fn validate_rejects_what_cannot_work() {
        assert!(LoggingConfig::default().validate().is_ok());
        for config in [
            LoggingConfig::default().with_max_bytes(0),
            LoggingConfig::default().with_queue_capacity(0),
            LoggingConfig::default().with_queue_capacity(usize::MAX),
            LoggingConfig::default().with_backups(usize::MAX),
            LoggingConfig::default().with_level("info,=[bad"),
            LoggingConfig::default().with_worker(ChannelConfig::worker().with_file("../celery.log")),
            LoggingConfig::default().with_channel(ChannelConfig::new("dup", "general.log")),
        ] {
            assert_eq!(config.validate().unwrap_err().kind(), ErrorKind::InvalidConfig, "{config:?}");
        }
        // A disabled channel may share a name with an enabled one.
        let config =
            LoggingConfig::default().with_channel(ChannelConfig::new("off", "general.log").with_enabled(false));
        assert!(config.validate().is_ok());
    }
}
