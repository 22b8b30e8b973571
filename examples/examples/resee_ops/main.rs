//! `resee_ops`: the reference service — the seed's Celery Beat, health views and Slack alerts as one process.
//!
//! ```text
//! cargo run --release -p resee-ops-examples --example resee_ops                 # run the service
//! cargo run --release -p resee-ops-examples --example resee_ops -- --check-config
//! cargo run --release -p resee-ops-examples --example resee_ops -- backup --once
//! cargo run --release -p resee-ops-examples --example resee_ops -- schedule --next 5
//! cargo run --release -p resee-ops-examples --example resee_ops -- backups list
//! cargo run --release -p resee-ops-examples --example resee_ops -- restore --latest
//! cargo run --release -p resee-ops-examples --example resee_ops -- prune --dry-run
//! ```
//!
//! Where things go (one obvious place each):
//! - a configuration section: `config.rs` (`Config`, `Config::validate`) and `examples/resee-ops.toml`;
//! - an alert destination: `alerts.rs`;
//! - a health probe: `probes.rs` (`registry`);
//! - a threshold rule or metric source: `rules.rs` (`Rules::build`), or `[[rules.rule]]` in the file;
//! - a scheduled job: `jobs.rs` (`Jobs::build`);
//! - an HTTP route: `http.rs` (`router`);
//! - a subcommand: `cli.rs` (`Command`) and its arm in `main` below (backup lifecycle commands: `lifecycle.rs`);
//! - the long-running wiring and the shutdown order: `service.rs`.
//!
//! Exit codes: 0 success, 1 failure (a failed backup, a port in use), 2 configuration error (the message
//! names the key and what is allowed), 3 `backup --once` skipped because another run holds the slot.

mod alerts;
mod cli;
mod config;
mod http;
mod jobs;
mod lifecycle;
mod probes;
mod rules;
mod service;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{BackupsCommand, Cli, Command};
use crate::config::{Config, ConfigError};

/// Exit code of a configuration error.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let validated = match config.validate() {
        Ok(v) => v,
        Err(e) => return config_error(&e),
    };
    // The rules name sources and fields that only exist once built: check them before anything starts.
    if let Err(e) = rules::Rules::check(&config) {
        return config_error(&e);
    }
    if cli.check_config {
        print!("{}", config.render(&validated));
        return ExitCode::SUCCESS;
    }
    let command = cli.command.unwrap_or(Command::Run);
    // The service and its backups write the log files ([logging]); printing a schedule needs the console only.
    let logging = match command {
        Command::Run
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Prune { .. }
        | Command::RestoreTest => config.logging.clone(),
        Command::Schedule { .. } | Command::Backups { .. } => config.logging.clone().with_console_only(),
    };
    // Kept to the end of main: dropping it writes out every queued line.
    let _logs = match resee_ops_logging::init(logging) {
        Ok(guard) => guard,
        Err(e) => return config_error(&ConfigError::new("logging.dir (LOG_DIR)", e.to_string())),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("resee_ops: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Run => runtime.block_on(service::run(config, validated, cli.config.clone(), _logs.handle())),
        Command::Backup { once: _ } => runtime.block_on(service::backup_once(config, validated)),
        Command::Restore { name, latest: _, at, database, force, from } => {
            runtime.block_on(lifecycle::restore(&config, &validated, name, at, database, force, &from))
        }
        Command::Backups { command: BackupsCommand::List } => runtime.block_on(lifecycle::list(&config)),
        Command::Prune { dry_run } => runtime.block_on(lifecycle::prune(&config, dry_run)),
        Command::RestoreTest => runtime.block_on(lifecycle::restore_test(&config, &validated)),
        Command::Schedule { next, cron, tz } => service::print_schedule(&config, &validated, next, cron, tz),
    }
}

pub(crate) fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("resee_ops: {e}");
    ExitCode::from(EXIT_CONFIG)
}
