//! The four log channels of a production service on [`tracing`]: **general**, **error**, **worker** and
//! **security**, each its own size-rotated file, JSON or text, plus the console — in one call, and without
//! ever making the caller wait on a disk.
//!
//! It replaces the seed's `django.log`, `django_error.log`, `celery.log` and `security.log` (Python
//! `RotatingFileHandler`s of 10 MB × 5 with a switchable JSON formatter).
//!
//! ```
//! use resee_ops_logging::{ChannelConfig, LogFormat, Logging, LoggingConfig};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let config = LoggingConfig::new(dir.path())         // production: LoggingConfig::from_env()?, or `[logging]`
//!     .with_format(LogFormat::Json)
//!     .with_level("info")
//!     .with_worker(ChannelConfig::worker().with_file("celery.log"));
//! # let config = config.with_console(false);
//! let (dispatch, guard) = Logging::new(config).build()?; // production: resee_ops_logging::init(config)?
//!
//! tracing::dispatcher::with_default(&dispatch, || {
//!     tracing::info!(database = "resee", "backup started");                // general.log
//!     tracing::error!("backup failed");                                     // general.log, error.log
//!     tracing::info!(target: "worker", task = "cleanup", "task finished"); // general.log, celery.log
//!     tracing::warn!(target: "security", user = "ann", "login failed");    // general.log, error.log, security.log
//!     tracing::info!(password = "hunter2", "never shown");                  // the value is masked
//! });
//! guard.handle().set_level("warn")?;                    // reloadable at run time
//! assert!(guard.flush(std::time::Duration::from_secs(5)));
//!
//! let general = std::fs::read_to_string(dir.path().join("general.log")).unwrap();
//! assert_eq!(general.lines().count(), 5);
//! assert!(!general.contains("hunter2"));
//! let line: serde_json::Value = serde_json::from_str(general.lines().next().unwrap()).unwrap();
//! assert_eq!(line["message"], "backup started");
//! assert_eq!(line["fields"]["database"], "resee");
//! # Ok::<(), resee_ops_core::Error>(())
//! ```
//!
//! # Channels
//!
//! | channel | default file | gets |
//! |---|---|---|
//! | general | `general.log` | every event the level directives let through |
//! | error | `error.log` | `WARN` and `ERROR` from every target ([`Level::Error`] for errors only) |
//! | worker | `worker.log` | targets `worker` and `task` (and their `::` children); name it `celery.log` to keep the seed's |
//! | security | `security.log` | target `security`: failed logins, permission denials, rejected secrets |
//!
//! Every channel is a [`ChannelConfig`]: its file, targets, least level and format can be changed, and the
//! host adds channels of its own with [`LoggingConfig::with_channel`]. The level directives
//! ([`LoggingConfig::level`], `RUST_LOG` syntax) gate everything, console included, and can be changed
//! while running with [`LogHandle::set_level`].
//!
//! # Formats
//!
//! `text` (the default): `2026-12-01T20:29:13.123456+00:00  WARN security: request: login failed user="ann"`.
//!
//! `json`: one object a line, always with these fields (stable names):
//!
//! | field | value |
//! |---|---|
//! | `timestamp` | RFC 3339 with microseconds and the local offset, `2026-12-01T20:29:13.123456+00:00` |
//! | `level` | `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR` |
//! | `target` | the event's target (module path unless set) |
//! | `message` | the message (`""` if none) |
//! | `fields` | an object of the event's other fields: numbers and booleans as such, the rest as strings |
//! | `spans` | the names of the spans the event is in, outermost first |
//!
//! The format is set for all sinks by [`LoggingConfig::format`] or `LOG_FORMAT=json|text`, and per sink
//! by [`ChannelConfig::format`] and [`LoggingConfig::console_format`].
//!
//! # Files
//!
//! A file is rotated once it is larger than [`LoggingConfig::max_bytes`] (10 MiB; always at a line end):
//! `general.log` becomes `general.log.1`, the older ones move up, and the one beyond
//! [`LoggingConfig::backups`] (5) is deleted. Rotation is `file-rotate`'s. Files are created `0640`, a
//! missing log directory `0750` (both less the umask).
//!
//! # Never in the way
//!
//! - **The caller never waits.** An event is formatted on the caller's thread and queued for a background
//!   writer, one per sink, with a bounded queue ([`LoggingConfig::queue_capacity`]). When a queue is full the
//!   line is dropped and counted ([`SinkStats::dropped`]), and the count is written to that sink once its
//!   queue drains — unless the host chose [`LoggingConfig::lossless`], where the caller waits for room.
//!   The caller's cost is formatting into reused thread-local buffers and one copy per sink into that
//!   sink's pending buffer (a mutex held for the copy only). The writer swaps the pending buffer for its own
//!   empty one and writes the taken lines out; both buffers keep their capacity and the writer grows them
//!   ahead of need, so a steady stream of events allocates nothing and faults no page in on the caller's
//!   thread. A busy writer polls every millisecond rather than being woken per line, so a line reaches its
//!   file within about a millisecond (at once after a quiet spell, and on [`LogGuard::flush`]).
//! - **The guard flushes.** [`LogGuard`] writes everything queued when it is dropped (or on
//!   [`LogGuard::shutdown`]); keep it alive in `main`.
//! - **A full disk or an unwritable directory never takes the host down.** The sink reports the failure once
//!   on the console, counts the lines it loses ([`SinkStats::failed`]), reopens the file (recreating the
//!   directory) with every later batch, and says so when it writes again. [`init`] with a directory that
//!   cannot be created or written returns a clear [`Error`].
//! - **No secrets.** The values of fields named like a secret ([`SECRET_FIELD_NAMES`]) are written as `***`,
//!   and the password of any `scheme://user:password@` in a message or value is masked ([`mask_urls`]).

// The README's snippets are compiled (and run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctests {}

mod config;
mod format;
mod layer;
mod mask;
mod sink;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use resee_ops_core::{Error, ErrorKind};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

pub use config::{
    ChannelConfig, DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, DEFAULT_QUEUE_CAPACITY, ENV_BACKUPS, ENV_DIR, ENV_FORMAT,
    ENV_LEVEL, ENV_MAX_BYTES, Level, LogFormat, LoggingConfig, MAX_BACKUPS, MAX_QUEUE_CAPACITY,
};
pub use mask::{MASK, SECRET_FIELD_NAMES, is_secret_field, mask_urls};
pub use sink::{DIR_MODE, FILE_MODE, SinkStats};

/// The `tracing` crate the channels are built on (the type of [`Logging::build`]'s dispatch, and
/// the macros a host logs with: `resee_ops_logging::tracing::warn!(target: "security", ...)`), so a host
/// need not add it.
pub use tracing;

use layer::{ChannelLayer, Route};
use sink::{Counters, Output, RotatingFile, SinkControl};

/// The target of the lines this crate writes about itself (dropped lines, failing sinks).
pub const OWN_TARGET: &str = "resee_ops_logging";

/// How long dropping a [`LogGuard`] waits for the writers to finish.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the channels of `config` as the global `tracing` subscriber (and bridges the `log` crate).
///
/// Keep the returned guard alive until the end of `main`: dropping it writes out everything queued.
///
/// # Errors
///
/// [`ErrorKind::InvalidConfig`] for a configuration that cannot work (bad directives, a file name with a
/// `/`, `max_bytes` 0, a log directory path through a regular file), [`ErrorKind::PermissionDenied`] when
/// the directory or a file cannot be created or written, [`ErrorKind::AlreadyExists`] when a global
/// subscriber is installed already.
pub fn init(config: LoggingConfig) -> Result<LogGuard, Error> {
    Logging::new(config).init()
}

/// Builds the logging setup: [`build`](Self::build) for a [`Dispatch`](tracing::Dispatch) to install
/// where you like, [`init`](Self::init) to install it globally.
pub struct Logging {
    config: LoggingConfig,
    console: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Logging {
    /// Logging as `config` says.
    pub fn new(config: LoggingConfig) -> Self {
        Self { config, console: None }
    }

    /// Writes the console output to `writer` instead of standard error.
    pub fn with_console_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.console = Some(Box::new(writer));
        self
    }

    /// Opens the directory and files and starts the writers; returns the subscriber as a `Dispatch`, and
    /// the guard.
    ///
    /// # Errors
    ///
    /// As [`init`].
    pub fn build(self) -> Result<(tracing::Dispatch, LogGuard), Error> {
        let config = self.config;
        config.validate()?;
        let directives = if config.level.trim().is_empty() { "info" } else { config.level.as_str() };
        let filter = parse_directives(directives)?;

        let dir = &config.dir;
        if config.enabled_channels().next().is_some() {
            if dir.exists() && !dir.is_dir() {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!("log directory {} exists and is not a directory", dir.display()),
                ));
            }
            sink::create_dir(dir)
                .map_err(|e| sink::io_error(&format!("cannot create log directory {}", dir.display()), e))?;
        }
        let mut files = Vec::new();
        for channel in config.enabled_channels() {
            files.push((channel, RotatingFile::open(dir, &channel.file, config.max_bytes, config.backups)?));
        }

        let mut routes = Vec::new();
        let mut console = None;
        let mut controls = Vec::new();
        let mut report: Option<sink::Report> = None;
        if config.console {
            let format = config.console_format.unwrap_or(config.format);
            let writer = self.console.unwrap_or_else(|| Box::new(std::io::stderr()));
            let (sender, control) =
                sink::spawn("console", Output::Stream(writer), format, config.queue_capacity, config.lossless, None)?;
            let to_console = sender.clone();
            report = Some(Arc::new(move |level, message: &str| {
                let line = format::own_line(format, level, message, &[]);
                to_console.send_copy(line.as_bytes());
            }));
            routes.push(Route::everything(format, sender));
            console = Some(control);
        }
        for (channel, file) in files {
            let format = channel.format.unwrap_or(config.format);
            let (sender, control) = sink::spawn(
                &channel.name,
                Output::File(file),
                format,
                config.queue_capacity,
                config.lossless,
                report.clone(),
            )?;
            routes.push(Route::channel(channel, format, sender));
            controls.push(control);
        }

        let (filter, reload) = reload::Layer::new(filter);
        let subscriber = Registry::default().with(filter).with(ChannelLayer::new(routes));
        let counters = console.iter().chain(&controls).map(|c| c.counters.clone()).collect();
        let handle = LogHandle { reload, counters: Arc::new(counters) };
        Ok((tracing::Dispatch::new(subscriber), LogGuard { files: controls, console, handle }))
    }

    /// [`build`](Self::build), then installs the subscriber globally and bridges the `log` crate's records.
    ///
    /// # Errors
    ///
    /// As [`init`].
    pub fn init(self) -> Result<LogGuard, Error> {
        let (dispatch, guard) = self.build()?;
        tracing::dispatcher::set_global_default(dispatch)
            .map_err(|_| Error::new(ErrorKind::AlreadyExists, "a global tracing subscriber is installed already"))?;
        // A `log` logger may be installed already (then its records go there); not an error.
        let _ = tracing_log::LogTracer::init();
        Ok(guard)
    }
}

fn parse_directives(directives: &str) -> Result<EnvFilter, Error> {
    EnvFilter::builder()
        .parse(directives)
        .map_err(|e| Error::new(ErrorKind::InvalidConfig, format!("logging level {directives:?}: {e}")))
}

/// Keeps the writers running; dropping it writes out everything queued (waiting at most
/// [`SHUTDOWN_TIMEOUT`]).
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writers"]
pub struct LogGuard {
    files: Vec<SinkControl>,
    /// Last to flush and stop: the file writers report their failures to it.
    console: Option<SinkControl>,
    handle: LogHandle,
}

impl LogGuard {
    /// A handle to change the level and read the counters, usable from anywhere.
    pub fn handle(&self) -> LogHandle {
        self.handle.clone()
    }

    /// Waits until every line queued so far is written; `false` if that took longer than `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = sink::deadline_after(timeout);
        let files = SinkControl::flush_all(&self.files, timeout);
        let console = self.console.as_slice();
        SinkControl::flush_all(console, deadline.saturating_duration_since(std::time::Instant::now())) && files
    }

    /// Each sink's counters.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.handle.stats()
    }

    /// Writes everything queued and stops the writers; `false` if that took longer than `timeout` (the
    /// late writers are left to finish on their own). Later events are counted as dropped.
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.stop(timeout)
    }

    fn stop(&mut self, timeout: Duration) -> bool {
        let deadline = sink::deadline_after(timeout);
        let files = SinkControl::shutdown_all(&mut self.files, timeout);
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let console = self.console.as_mut().is_none_or(|c| SinkControl::shutdown_all(std::slice::from_mut(c), left));
        self.files.clear();
        self.console = None;
        files && console
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.stop(SHUTDOWN_TIMEOUT);
    }
}

/// Changes the level directives at run time and reads the sinks' counters.
#[derive(Clone)]
pub struct LogHandle {
    reload: reload::Handle<EnvFilter, Registry>,
    counters: Arc<Vec<Arc<Counters>>>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").field("level", &self.level()).finish_non_exhaustive()
    }
}

impl LogHandle {
    /// Replaces the level directives (`RUST_LOG` syntax, e.g. `debug` or `info,resee_ops_backup=trace`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for directives that do not parse (the old ones stay), and
    /// [`ErrorKind::Closed`] when the subscriber is gone.
    pub fn set_level(&self, directives: &str) -> Result<(), Error> {
        let filter = parse_directives(directives)?;
        self.reload
            .reload(filter)
            .map_err(|e| Error::new(ErrorKind::Closed, format!("cannot change the log level: {e}")))
    }

    /// The level directives in force.
    pub fn level(&self) -> String {
        self.reload.with_current(|filter| filter.to_string()).unwrap_or_default()
    }

    /// Each sink's counters: the console first (when enabled), then the channels in configuration order.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }
}
