//! Runs one verified backup now (the reference system's manual `backup_database('production')`).
//!
//! ```text
//! cargo run -p resee-ops-examples --example backup_now
//! ```
//!
//! Reads `DATABASE_URL` (else the standard `PG*` variables if `PGHOST` or `PGDATABASE` is set, else
//! `postgres://postgres@127.0.0.1:5432/postgres`, said on stderr), `RESEE_ENVIRONMENT` (default
//! `development`) and `RESEE_BACKUP_DIR` (default `./backups`). Writes
//! `{database}_{environment}_{YYYYMMDD_HHMMSS}.sql.gz` and its manifest, logs the alert, and prints the
//! `BackupReport` as JSON on the last line of stdout. Exits 0 on success, 1 when the backup failed, 2 when
//! the configuration is invalid, 3 when it was skipped because another run of the same backup holds the
//! single-run lock (a PostgreSQL advisory lock). Temporary failures are retried 3 times, 5 minutes apart.
//!
//! With `BACKUP_S3_BUCKET` set, the same dump also goes to that S3-compatible bucket (required; settings
//! from `BACKUP_S3_PREFIX`, `BACKUP_S3_REGION`, `BACKUP_S3_ENDPOINT`, `BACKUP_S3_PATH_STYLE`, `BACKUP_S3_SSE`,
//! `BACKUP_S3_STORAGE_CLASS`, `BACKUP_S3_PART_SIZE`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; see
//! `S3Config::from_env`), and the report lists both targets.
//!
//! The success or failure alert goes to Slack when `SLACK_WEBHOOK_URL` is set, else to the log.

use std::process::ExitCode;

use std::sync::Arc;

use resee_ops_backup::{LocalDirTarget, PgDumpBackup, PgDumpBackupBuilder, S3Config, S3Target};
use resee_ops_core::{LogNotifier, Notifier};
use resee_ops_slack::{ENV_WEBHOOK_URL, SlackNotifier};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    resee_ops_examples::init_logging("info");

    let builder = if var("DATABASE_URL").is_some() || var("PGHOST").is_some() || var("PGDATABASE").is_some() {
        match PgDumpBackupBuilder::from_env() {
            Ok(builder) => builder,
            Err(e) => {
                eprintln!("backup_now: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        eprintln!("backup_now: DATABASE_URL is not set; backing up {DEFAULT_URL}");
        PgDumpBackup::builder().with_url(DEFAULT_URL)
    };
    let environment = var("RESEE_ENVIRONMENT").unwrap_or_else(|| "development".into());
    let dir = var("RESEE_BACKUP_DIR").unwrap_or_else(|| "./backups".into());

    // A one-shot run: alerts are sent directly (with the notifier's own retries) before the process exits.
    let notifier: Arc<dyn Notifier> = if var(ENV_WEBHOOK_URL).is_some() {
        match SlackNotifier::from_env() {
            Ok(slack) => Arc::new(slack),
            Err(e) => {
                eprintln!("backup_now: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        Arc::new(LogNotifier::new())
    };

    let s3 = match S3Config::from_env().and_then(|c| c.map(S3Target::from_config).transpose()) {
        Ok(s3) => s3,
        Err(e) => {
            eprintln!("backup_now: {e}");
            return ExitCode::from(2);
        }
    };
    let backup = match LocalDirTarget::new(&dir).and_then(|target| {
        let mut builder = builder.with_environment(environment).with_named_target("local", target, true);
        if let Some(s3) = s3 {
            builder = builder.with_named_target("s3", s3, true);
        }
        builder.with_notifier(notifier).build()
    }) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("backup_now: {e}");
            return ExitCode::from(2);
        }
    };

    let outcome = backup.run().await;
    match serde_json::to_string(&outcome.report) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("backup_now: cannot encode the report: {e}"),
    }
    if outcome.is_success() {
        ExitCode::SUCCESS
    } else if outcome.is_skipped() {
        ExitCode::from(3)
    } else {
        ExitCode::FAILURE
    }
}
