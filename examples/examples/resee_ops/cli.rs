//! The command line. To add a subcommand: a variant of [`Command`] here and its arm in `main.rs`.

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

/// resee-ops: scheduled verified backups, health monitoring and alerts for the Resee service, in one process.
///
/// With no configuration file and no environment it runs against the local PostgreSQL and Redis, keeps
/// backups in ./backups, logs alerts and serves HTTP on 127.0.0.1:8080.
#[derive(Debug, Parser)]
#[command(name = "resee_ops", version)]
pub(crate) struct Cli {
    /// TOML configuration file (see examples/resee-ops.toml). Default: the embedded defaults.
    #[arg(long, short = 'c', global = true, env = "RESEE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Validate the configuration, print the effective one (secrets redacted) and exit (0, or 2 when invalid).
    #[arg(long, global = true)]
    pub(crate) check_config: bool,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the service: scheduler, health monitor, alerts, HTTP (the default).
    Run,
    /// Run one backup now (for a Kubernetes CronJob). Exit 0 success, 1 failure, 2 configuration error,
    /// 3 skipped because another run holds the slot.
    Backup {
        /// Run once and exit (required: the schedule belongs to `run`).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Restore a backup into a database: verified first, then streamed into psql in one transaction.
    /// Exit 0 restored, 1 failed (the message says why), 2 configuration error.
    #[command(group(ArgGroup::new("which").required(true).args(["name", "latest", "at"])))]
    Restore {
        /// The backup's file name (see `backups list`).
        name: Option<String>,
        /// The newest verified backup.
        #[arg(long)]
        latest: bool,
        /// The newest verified backup taken at or before this time (RFC 3339, or "YYYY-MM-DD HH:MM" UTC).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The database to restore into. Default: the backup's name without extension, plus `_restored`.
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Drop and recreate the database if it exists and is not empty.
        #[arg(long)]
        force: bool,
        /// The target to restore from: `local` (the backup directory) or `s3` (`[backup.s3]`).
        #[arg(long, value_name = "TARGET", default_value = "local")]
        from: String,
    },
    /// The backups in the backup directory.
    Backups {
        #[command(subcommand)]
        command: BackupsCommand,
    },
    /// Apply the retention policy (`backup.retention`) now.
    Prune {
        /// Print the plan (keep / remove, and why) without removing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the restore test once: the newest backup into a scratch database, row counts checked, dropped.
    /// Exit 0 passed, 1 failed (and the alert is sent).
    RestoreTest,
    /// Print the next fire times of each job as RFC 3339 with offsets.
    Schedule {
        /// How many fire times per job.
        #[arg(long, default_value_t = 5, value_name = "N")]
        next: usize,
        /// Preview this cron expression instead of the configured jobs.
        #[arg(long, value_name = "EXPR")]
        cron: Option<String>,
        /// The IANA time zone to evaluate in (default: each job's own zone).
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupsCommand {
    /// Name, size, age and whether verified (a manifest matches), newest first.
    List,
}
