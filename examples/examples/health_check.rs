//! Runs every health probe once and prints the `application/health+json` report.
//!
//! ```text
//! cargo run -p resee-ops-examples --example health_check
//! ```
//!
//! Reads `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), `REDIS_URL` (default
//! `redis://127.0.0.1:6379/`), the Celery broker `CELERY_BROKER_URL` (default: `REDIS_URL`), the Celery queue
//! `CELERY_QUEUE` (default `celery`) and `RESEE_DISK_PATH` (default `/`). Exits 0 for `pass` and `warn`, 1 for
//! `fail` — usable as a container `HEALTHCHECK` or a cron-driven check.
//!
//! Critical: the database and Redis. Not critical (they warn): disk usage (80 % / 90 %), the Celery workers
//! (check `workers`: Celery's broadcast `ping`, as `celery inspect ping`, at least one must answer within 1 s)
//! and the length of the Celery queue (check `queue:<queue>`: all its priority lists, above 100 warns).

use std::process::ExitCode;
use std::time::Duration;

use resee_ops_core::{HealthRegistry, HealthStatus, Registration};
use resee_ops_monitor::{
    CeleryWorkersProbe, DiskUsageProbe, MonitorError, PostgresProbeConfig, QueueLength, RedisConfig,
};

#[tokio::main]
async fn main() -> ExitCode {
    resee_ops_examples::init_logging("warn");
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("health_check: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode, MonitorError> {
    let timeout = Duration::from_secs(3);
    // The defaults belong to this deployment, not to the library: its `from_env` never guesses.
    let redis = RedisConfig::from_url(&env_or("REDIS_URL", "redis://127.0.0.1:6379/"))?.with_timeout(timeout);
    let database =
        PostgresProbeConfig::from_url(&env_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))?;
    let broker_url = env_or("CELERY_BROKER_URL", &env_or("REDIS_URL", "redis://127.0.0.1:6379/"));
    let broker = RedisConfig::from_url(&broker_url)?.with_timeout(timeout);
    let queue = env_or("CELERY_QUEUE", "celery");
    let disk_path = std::env::var("RESEE_DISK_PATH").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());

    let workers = CeleryWorkersProbe::new(&broker)?;
    let workers_timeout = workers.max_duration() + Duration::from_secs(1);
    let registry = HealthRegistry::new()
        .with_default_timeout(timeout + Duration::from_secs(1))
        .with_registration(Registration::new(database.with_timeout(timeout).build()?))
        .with_registration(Registration::new(redis.probe()?))
        .with_registration(Registration::new(DiskUsageProbe::new(disk_path)))
        .with_registration(Registration::new(workers).with_timeout(workers_timeout))
        .with_registration(Registration::new(QueueLength::new(&broker)?.with_queues([queue])));

    let report = registry.check_all().await;
    println!("{}", serde_json::to_string_pretty(&report).expect("a report serialises"));
    Ok(if report.status == HealthStatus::Down { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}
