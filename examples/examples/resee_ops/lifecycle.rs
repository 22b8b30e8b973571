//! The backup lifecycle subcommands: `restore`, `backups list`, `prune`, `restore-test`.

use std::process::ExitCode;

use chrono::Utc;
use resee_ops_backup::{BackupSelector, RestoreOptions, run_restore_test};

use crate::alerts::Alerts;
use crate::config::{Config, ConfigError, Validated};
use crate::config_error;
use crate::jobs::{BackupJob, restorer, restorer_from};

/// `restore NAME | --latest | --at TIME [--database NAME] [--force] [--from local|s3]`: the report as JSON on stdout.
pub(crate) async fn restore(
    config: &Config,
    _validated: &Validated,
    name: Option<String>,
    at: Option<String>,
    database: Option<String>,
    force: bool,
    from: &str,
) -> ExitCode {
    let restorer = match restorer_from(config, from) {
        Ok(r) => r,
        Err(e) => return config_error(&e),
    };
    let selector = match (name, at) {
        (Some(name), _) => BackupSelector::Name(name),
        (None, Some(at)) => match at.parse::<BackupSelector>() {
            Ok(s @ BackupSelector::At(_)) => s,
            _ => return config_error(&ConfigError::new("--at", format!("{at:?} is not a time"))),
        },
        (None, None) => BackupSelector::Latest,
    };
    let mut options = RestoreOptions::default().with_force(force);
    if let Some(d) = database {
        options = options.with_database(d);
    }
    match restorer.restore(&selector, &options).await {
        Ok(report) => {
            eprintln!(
                "resee_ops: restored {} into database {:?} in {:.1} s (verified in {:.1} s)",
                report.backup,
                report.database,
                report.duration.as_secs_f64(),
                report.verify_duration.as_secs_f64()
            );
            if let Ok(json) = serde_json::to_string(&report) {
                println!("{json}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("resee_ops: restore failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `backups list`: one line per backup, newest first.
pub(crate) async fn list(config: &Config) -> ExitCode {
    let restorer = match restorer(config) {
        Ok(r) => r,
        Err(e) => return config_error(&e),
    };
    let catalog = match restorer.list().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("resee_ops: cannot list the backups: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = Utc::now();
    println!("{:<56} {:>10} {:>8}  VERIFIED", "NAME", "SIZE", "AGE");
    for b in &catalog.backups {
        let verified = if b.is_verified() { "yes" } else { "no (no matching manifest)" };
        println!("{:<56} {:>10} {:>8}  {verified}", b.name.as_str(), size(b.size), age(now - b.taken_at));
    }
    for orphan in &catalog.orphan_manifests {
        println!("{:<56} {:>10} {:>8}  manifest without its backup", orphan.as_str(), "-", "-");
    }
    ExitCode::SUCCESS
}

/// `prune [--dry-run]`.
pub(crate) async fn prune(config: &Config, dry_run: bool) -> ExitCode {
    if config.backup.retention.is_none() {
        return config_error(&ConfigError::new("backup.retention", "no retention policy is configured"));
    }
    let alerts: std::sync::Arc<dyn resee_ops_core::Notifier> = std::sync::Arc::new(resee_ops_core::LogNotifier::new());
    let job = match BackupJob::new(config, alerts) {
        Ok(j) => j,
        Err(e) => return config_error(&e),
    };
    match job.backup().prune(dry_run).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("resee_ops: prune failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `restore-test`: once, now; alerts on failure like the scheduled job.
pub(crate) async fn restore_test(config: &Config, validated: &Validated) -> ExitCode {
    let restorer = match restorer(config) {
        Ok(r) => r,
        Err(e) => return config_error(&e),
    };
    let alerts = match Alerts::build(config, validated) {
        Ok(a) => a,
        Err(e) => return config_error(&e),
    };
    let notifier = alerts.notifier();
    let result = run_restore_test(&restorer, Some(notifier.as_ref())).await;
    alerts.shutdown(config.alerts.flush_timeout).await;
    match result {
        Ok(report) => {
            eprintln!(
                "resee_ops: restore test passed: {} restored, {} tables / {} rows match the manifest",
                report.backup, report.tables, report.rows
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("resee_ops: restore test FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

fn age(d: chrono::TimeDelta) -> String {
    let m = d.num_minutes().max(0);
    match (m / 1440, m / 60 % 24, m % 60) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m:02}m"),
        (d, h, _) => format!("{d}d{h:02}h"),
    }
}
