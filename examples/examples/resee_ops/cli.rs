//! The command line. To add a subcommand: a variant of [`Command`] here and its arm in `main.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
