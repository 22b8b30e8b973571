//! The `resee_ops` service as a process, against the test PostgreSQL and Redis: the catch-up backup at
//! start, readiness, a clean exit on SIGTERM; the faults (database down, port in use, bad configuration,
//! Slack unreachable); `backup --once` and its exit codes; `schedule --next`.
//!
//! The binary is the example built by `cargo test` (it builds the package's examples), found next to
//! this test's executable under the target directory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use resee_ops_core::testing::services;

mod common;
use common::{Service, fake_slack, get, post};

/// The reference service with a clean environment.
fn command(dir: &Path) -> Command {
    common::command("resee_ops", dir)
}

/// A Redis key prefix for the alert throttle that no other test (or earlier run) uses.
fn unique_prefix() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("resee-ops-test:{}-{nanos}-{n}:throttle:", std::process::id())
}

fn with_services(cmd: &mut Command, backups: &Path) {
    // The tests of this binary back up the same database in parallel: the single-run lock has its own test.
    cmd.env("RESEE_BACKUP_SINGLE_RUN_LOCK", "false")
        .env("DATABASE_URL", services::postgres().url())
        .env("REDIS_URL", services::redis().url())
        .env("RESEE_ALERTS_STORE_PREFIX", unique_prefix())
        .env("RESEE_BACKUP_DIR", backups)
        .env("RESEE_HTTP_ADDR", "127.0.0.1:0");
}

fn manifests(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".manifest.json"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_service_backs_up_at_start_becomes_ready_and_exits_cleanly_on_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    let mut cmd = command(work.path());
    with_services(&mut cmd, &backups);
    let mut service = Service::start(cmd);
    let addr = service.address();

    // The catch-up backup: no verified backup exists, so one is made at start.
    let manifest = service.wait_for(Duration::from_secs(120), "catch-up backup", |_| manifests(&backups).pop());
    let artifact = backups.join(manifest.trim_end_matches(".manifest.json"));
    assert!(artifact.exists(), "{}", artifact.display());
    assert!(service.log().contains("no successful run on record"));

    // Ready (the database and Redis answer; no Celery worker here, which only warns).
    let (status, content_type, body) = service.wait_for(Duration::from_secs(60), "readiness", |_| {
        get(addr, "/health/ready").filter(|(status, _, _)| *status == 200)
    });
    assert_eq!((status, content_type.as_str()), (200, "application/health+json"), "{body}");
    let (status, _, _) = get(addr, "/health/live").unwrap();
    assert_eq!(status, 200);

    // The status page: next run, the catch-up run, the backup report. The run is recorded a moment after its
    // manifest is written, so wait for the record rather than reading the page once.
    let (status, _, body) = service.wait_for(Duration::from_secs(60), "the catch-up run recorded", |_| {
        get(addr, "/status.json").filter(|(_, _, body)| !body.contains("\"last_run\":null"))
    });
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let job = &json["jobs"][0];
    assert_eq!(job["name"], "backup");
    assert!(job["next_run"].as_str().unwrap().ends_with("18:00:00Z"), "03:00 in Seoul: {job}");
    assert_eq!(job["last_run"]["outcome"], "succeeded", "{job}");
    assert_eq!(json["last_backup"]["status"], "success");
    let (status, content_type, body) = get(addr, "/status").unwrap();
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html") && body.contains("0 3 * * *"), "{body}");

    // /metrics: valid Prometheus text with the backup, health, scheduler and rules metrics.
    let (status, content_type, body) = get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let metrics = Exposition::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(metrics.kind("resee_ops_backup_runs_total"), Some("counter"));
    assert_eq!(metrics.value("resee_ops_backup_runs_total", &[("outcome", "success")]), Some(1.0));
    assert_eq!(metrics.kind("resee_ops_backup_duration_seconds"), Some("summary"));
    let local_ok = [("target", "local"), ("outcome", "success")];
    assert_eq!(metrics.value("resee_ops_backup_target_runs_total", &local_ok), Some(1.0));
    assert_eq!(metrics.kind("resee_ops_backup_target_duration_seconds"), Some("summary"));
    assert_eq!(metrics.value("resee_ops_backup_target_duration_seconds_count", &local_ok), Some(1.0));
    assert!(metrics.value("resee_ops_backup_size_bytes", &[("target", "local")]).is_some_and(|b| b > 0.0));
    let last = metrics.value("resee_ops_backup_last_success_timestamp_seconds", &[("target", "local")]).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - 600.0..=now + 1.0).contains(&last), "{last} vs {now}");
    assert_eq!(metrics.value("resee_ops_health_probe_status", &[("probe", "database")]), Some(1.0));
    assert!(metrics.value("resee_ops_health_probe_duration_seconds_count", &[("probe", "database")]).unwrap() >= 1.0);
    assert_eq!(metrics.kind("resee_ops_rule_state"), Some("gauge"));
    assert!(metrics.value("resee_ops_rule_state", &[("rule", "queue_length")]).is_some());
    let next = metrics.value("resee_ops_scheduler_next_run_timestamp_seconds", &[("job", "backup")]).unwrap();
    assert!(next > now && next <= now + 86_400.0, "{next}");
    assert_eq!(metrics.value("resee_ops_scheduler_missed_runs_total", &[("job", "backup")]), Some(1.0));
    assert!(metrics.value("resee_ops_alerts_delivered_total", &[]).is_some_and(|n| n >= 1.0), "{body}");
    assert_eq!(metrics.value("resee_ops_alerts_dropped_total", &[("reason", "queue_full")]), Some(0.0));

    let exit = service.terminate();
    assert_eq!(exit.code(), Some(0), "{}", service.log());
    let log = service.log();
    assert!(log.contains("SIGTERM") && log.contains("alerts flushed") && log.contains("stopped"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    // The log channels ([logging] defaults): every console line is also in logs/general.log, flushed on exit.
    let general = std::fs::read_to_string(work.path().join("logs/general.log")).unwrap();
    assert!(general.contains("listening") && general.contains("alerts flushed"), "{general}");
    assert!(work.path().join("logs/security.log").exists());

    // A restart finds the verified backup and does not make another one.
    let mut cmd = command(work.path());
    with_services(&mut cmd, &backups);
    let mut service = Service::start(cmd);
    let addr = service.address();
    let job = service.wait_for(Duration::from_secs(60), "the last success read from the target", |_| {
        let (_, _, body) = get(addr, "/status.json")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let job = json["jobs"][0].clone();
        job["last_success"].is_string().then_some(job)
    });
    assert_eq!(job["runs"], 0, "{job}");
    assert_eq!(manifests(&backups).len(), 1);
    assert!(!service.log().contains("missed run"), "{}", service.log());
    assert_eq!(service.terminate().code(), Some(0));
}

#[test]
fn with_the_database_down_it_starts_not_ready_and_still_exits_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = command(work.path());
    with_services(&mut cmd, &work.path().join("backups"));
    cmd.env("DATABASE_URL", "postgres://postgres:hunter2@127.0.0.1:1/postgres");
    let mut service = Service::start(cmd);
    let addr = service.address();
    let (_, content_type, body) = service.wait_for(Duration::from_secs(60), "a failed readiness check", |_| {
        get(addr, "/health/ready").filter(|(status, _, body)| *status == 503 && body.contains("fail"))
    });
    assert_eq!(content_type, "application/health+json");
    assert!(!body.contains("hunter2"));
    assert_eq!(get(addr, "/health/live").unwrap().0, 200);
    // The catch-up backup failed and waits to retry in 5 minutes: SIGTERM ends that wait at once.
    service.wait_for(Duration::from_secs(60), "a failed backup attempt", |s| {
        s.log().contains("job failed; retrying").then_some(())
    });
    assert_eq!(service.terminate().code(), Some(0), "{}", service.log());
    let log = service.log();
    assert!(!log.contains("hunter2") && !log.contains("panicked"), "{log}");
    assert!(manifests(&work.path().join("backups")).is_empty());
}

#[test]
fn a_port_in_use_is_a_clear_failure() {
    let work = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cmd = command(work.path());
    with_services(&mut cmd, &work.path().join("backups"));
    cmd.env("RESEE_HTTP_ADDR", taken.local_addr().unwrap().to_string());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on") && stderr.contains("RESEE_HTTP_ADDR"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("bad.toml");
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec!["--config", "missing.toml"], None, "cannot read the configuration file"),
        (vec!["--config", "bad.toml"], Some("[backup]\nschedule = \"0 3 * * * * *\"\n"), "backup.schedule"),
        (vec!["--config", "bad.toml"], Some("[backup]\ntimezone = \"Asia/Sol\"\n"), "unknown time zone"),
        (vec!["--config", "bad.toml"], Some("[backup]\nretension = 7\n"), "backup.retension: unknown field"),
        (vec!["--config", "bad.toml"], Some("[backup\n"), "(syntax)"),
        (
            vec!["--config", "bad.toml", "--check-config"],
            Some("[[rules.rule]]\nname = \"x\"\nsource = \"nowhere\"\nvalue = { kind = \"last\" }\nthreshold = 1\n"),
            "rules: rule `x`: field `source`: unknown source `nowhere` (known: http, payments, queue)",
        ),
        (
            vec!["--config", "bad.toml"],
            Some(
                "[[rules.rule]]\nname = \"y\"\nsource = \"http\"\nvalue = { kind = \"ratio\", window = \"-5m\" }\nthreshold = 0.1\n",
            ),
            "rule `y`: field `value.window`: must not be negative",
        ),
        (
            vec!["--config", "bad.toml"],
            Some(
                "[[rules.rule]]\nname = \"z\"\nsource = \"http\"\nvalue = { kind = \"quantile\", q = 95, window = \"5m\" }\nthreshold = nan\n",
            ),
            "rule `z`: field `threshold`: must be a finite number, got NaN",
        ),
        (vec!["schedule", "--cron", "0 3 * * 8"], None, "day-of-week field"),
        (vec!["schedule", "--cron", "@daily", "--tz", "Nowhere"], None, "--tz: unknown time zone"),
    ];
    for (args, content, needle) in cases {
        if let Some(c) = content {
            std::fs::write(&file, c).unwrap();
        }
        let out = command(work.path()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // An invalid webhook URL is named by its variable and never printed.
    let out = command(work.path())
        .arg("--check-config")
        .env("SLACK_WEBHOOK_URL", "http://hooks.example.com/services/T0/B0/secret-token")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("SLACK_WEBHOOK_URL") && !stderr.contains("secret-token"), "{stderr}");
}

#[test]
fn check_config_prints_the_effective_configuration_without_secrets() {
    let work = tempfile::tempdir().unwrap();
    let out = command(work.path())
        .arg("--check-config")
        .env("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/resee")
        .env("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/secret-token")
        .env("RESEE_ENVIRONMENT", "production")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("postgres://app:***@db.internal:5432/resee"), "{stdout}");
    assert!(stdout.contains("environment = \"production\"") && stdout.contains("hooks.slack.com"), "{stdout}");
    assert!(!stdout.contains("hunter2") && !stdout.contains("secret-token"), "{stdout}");
}

#[test]
fn schedule_next_prints_rfc3339_with_offsets() {
    let work = tempfile::tempdir().unwrap();
    let out = command(work.path()).args(["schedule", "--next", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let times: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(times.len(), 3, "{stdout}");
    assert!(times.iter().all(|l| l.starts_with("backup\t") && l.ends_with("T03:00:00+09:00")), "{stdout}");

    let out = command(work.path())
        .args(["schedule", "--next", "2", "--cron", "*/30 * * * *", "--tz", "Europe/Berlin"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let times: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(times.len(), 2, "{stdout}");
    assert!(times[0].starts_with("cron\t") && (times[0].ends_with("+01:00") || times[0].ends_with("+02:00")));
}

#[test]
fn backup_once_exits_0_on_success_3_when_the_slot_is_held_1_on_failure() {
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    let mut cmd = command(work.path());
    with_services(&mut cmd, &backups);
    let out = cmd.args(["backup", "--once"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(report["status"], "success");
    assert_eq!(manifests(&backups).len(), 1);

    // Another run holds the slot (the lock on the backup directory).
    let held = std::fs::File::open(&backups).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let mut cmd = command(work.path());
    with_services(&mut cmd, &backups);
    let out = cmd.args(["backup", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    drop(held);

    // A permanent failure (the database does not exist) is not retried: exit 1 at once.
    let mut cmd = command(work.path());
    with_services(&mut cmd, &backups);
    cmd.env("DATABASE_URL", services::postgres().url_for_database("resee_ops_no_such_db"));
    let out = cmd.args(["backup", "--once"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("backup failed after 1 attempt"), "{stderr}");
    assert_eq!(manifests(&backups).len(), 1);
}

/// Issue 12: two real processes backing up the same database at once (each with its own directory, so that
/// only the database decides): exactly one dump, the other run skipped with exit code 3.
#[test]
fn two_processes_backing_up_one_database_make_one_dump_and_one_skip() {
    let url = big_database("lock");
    let work = tempfile::tempdir().unwrap();
    let (first_dir, second_dir) = (work.path().join("a"), work.path().join("b"));
    std::fs::write(work.path().join("slow.toml"), "[backup]\nlevel = 9\n").unwrap();
    let start = |dir: &Path| {
        let mut cmd = command(work.path());
        with_services(&mut cmd, dir);
        cmd.env("DATABASE_URL", &url).env("RESEE_BACKUP_SINGLE_RUN_LOCK", "true");
        cmd.args(["--config", "slow.toml", "backup", "--once"]).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    };
    let first = start(&first_dir).spawn().unwrap();
    // The first run holds the lock from before pg_dump starts until it ends: wait for its temporary file.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_dir(&first_dir)
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with('.')))
        .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "the first backup never started writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = start(&second_dir).output().unwrap();
    let first = first.wait_with_output().unwrap();
    let (stderr1, stderr2) = (String::from_utf8_lossy(&first.stderr), String::from_utf8_lossy(&second.stderr));
    assert_eq!(second.status.code(), Some(3), "{stderr2}");
    assert_eq!(first.status.code(), Some(0), "{stderr1}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&second.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(report["status"], "skipped", "{report}");
    assert_eq!(manifests(&first_dir).len(), 1, "exactly one dump");
    assert!(manifests(&second_dir).is_empty());
    assert!(artifacts(&second_dir).is_empty(), "the skipped run wrote nothing");
    drop_database(&url);
}

/// Runs SQL with `psql` on the database at `url` (the test server: no password in the URL).
fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("psql runs (package postgresql-client)");
    assert!(out.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A database big enough that a backup at gzip level 9 takes a few seconds (debug build).
fn big_database(tag: &str) -> String {
    let db = format!("resee_ops_service_{tag}_{}", std::process::id());
    let admin = services::postgres().url();
    psql(admin, &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
    psql(admin, &format!("CREATE DATABASE \"{db}\""));
    let url = services::postgres().url_for_database(&db);
    psql(
        &url,
        "CREATE TABLE filler AS SELECT g, md5(g::text) || md5((g * 7)::text) AS t FROM generate_series(1, 300000) g",
    );
    url
}

fn drop_database(url: &str) {
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    psql(services::postgres().url(), &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
}

/// Every file in `dir`: (name, is it a complete backup = has its manifest).
fn artifacts(dir: &Path) -> Vec<(String, bool)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names
        .iter()
        .filter(|n| !n.ends_with(".manifest.json"))
        .map(|n| (n.clone(), names.contains(&format!("{n}.manifest.json"))))
        .collect()
}

#[test]
fn sigterm_during_a_backup_lets_it_finish_within_the_grace_or_cancels_it_without_a_trace() {
    let url = big_database("sigterm");
    // (grace, a second SIGTERM, whether the backup finishes, gzip level: 1 to be quick, 9 to be slow)
    for (grace, twice, finishes, level) in [("10m", false, true, 1), ("0s", false, false, 9), ("10m", true, false, 9)] {
        let work = tempfile::tempdir().unwrap();
        let backups = work.path().join("backups");
        std::fs::write(
            work.path().join("svc.toml"),
            format!("[backup]\nlevel = {level}\n\n[shutdown]\ngrace = \"{grace}\"\n"),
        )
        .unwrap();
        let mut cmd = command(work.path());
        with_services(&mut cmd, &backups);
        cmd.env("DATABASE_URL", &url).args(["--config", "svc.toml"]);
        let mut service = Service::start(cmd);
        service.wait_for(Duration::from_secs(60), "the catch-up backup to start", |s| {
            s.log().contains("backup attempt").then_some(())
        });
        // pg_dump is streaming into the temporary file.
        service.wait_for(Duration::from_secs(30), "the temporary file", |_| {
            std::fs::read_dir(&backups)
                .ok()?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with('.'))
                .then_some(())
        });
        let exit = if twice {
            let pid = rustix::process::Pid::from_raw(service.child.id() as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
            service.wait_for(Duration::from_secs(30), "the shutdown to begin", |s| {
                s.log().contains("waiting for running jobs").then_some(())
            });
            service.terminate_within(Duration::from_secs(30))
        } else {
            service.terminate_within(Duration::from_secs(600))
        };
        let log = service.log();
        assert_eq!(exit.code(), Some(0), "{log}");
        let files = artifacts(&backups);
        if finishes {
            assert!(log.contains("finished=1"), "{log}");
            assert_eq!(files.len(), 1, "{files:?}");
            assert!(files[0].1, "the backup finished within the grace and was verified: {files:?}");
        } else {
            assert!(log.contains("cancelled=1"), "{log}");
            assert!(log.contains(if twice { "second signal" } else { "cancelling" }), "{log}");
            assert!(files.is_empty(), "a cancelled backup leaves nothing (not even a temporary): {files:?}");
        }
    }
    drop_database(&url);
}

#[test]
fn alerts_wait_while_slack_is_unreachable_and_are_delivered_when_it_answers() {
    let (url, accepted) = fake_slack(3);
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    let mut cmd = command(work.path());
    with_services(&mut cmd, &backups);
    cmd.env("SLACK_WEBHOOK_URL", &url);
    let mut service = Service::start(cmd);
    service.wait_for(Duration::from_secs(120), "the backup alert delivered to Slack", |_| {
        accepted.lock().unwrap().iter().any(|b| b.contains("succeeded")).then_some(())
    });
    assert_eq!(service.terminate().code(), Some(0), "{}", service.log());
    let log = service.log();
    assert!(log.contains("alerts go to Slack") && log.contains("dropped=0"), "{log}");
    assert!(!log.contains("services/T0/B0/test"), "the webhook URL is a secret: {log}");
}

#[test]
fn with_slack_down_the_service_runs_and_counts_what_it_could_not_deliver() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/services/T0/B0/test", closed.local_addr().unwrap());
    drop(closed);
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    let mut cmd = command(work.path());
    with_services(&mut cmd, &backups);
    cmd.env("SLACK_WEBHOOK_URL", &url);
    let mut service = Service::start(cmd);
    let addr = service.address();
    service.wait_for(Duration::from_secs(120), "readiness", |_| get(addr, "/health/ready").filter(|r| r.0 == 200));
    service.wait_for(Duration::from_secs(120), "the catch-up backup", |_| manifests(&backups).pop());
    let start = Instant::now();
    assert_eq!(service.terminate().code(), Some(0), "{}", service.log());
    assert!(start.elapsed() < Duration::from_secs(25), "the flush is bounded: {:?}", start.elapsed());
    let log = service.log();
    let flushed = log.lines().find(|l| l.contains("alerts flushed")).unwrap_or_else(|| panic!("{log}"));
    assert!(!flushed.contains("dropped=0"), "undelivered alerts are counted: {flushed}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn the_seeds_four_rules_run_and_show_on_the_status_page() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("rules.toml"), "[backup]\nenabled = false\n[rules]\ninterval = \"1s\"\n").unwrap();
    let mut cmd = command(work.path());
    with_services(&mut cmd, &work.path().join("backups"));
    cmd.args(["--config", "rules.toml"]);
    let mut service = Service::start(cmd);
    let addr = service.address();

    // The host reports payment failures; eleven in the hour is above the seed's ten.
    for _ in 0..11 {
        assert_eq!(post(addr, "/events/payment_failed"), Some(204));
    }
    assert_eq!(post(addr, "/events/not%20valid"), Some(400));
    let rules = service.wait_for(Duration::from_secs(30), "the payment rule firing", |_| {
        let (_, _, body) = get(addr, "/status.json")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let rules = json["rules"].as_array()?.clone();
        (rules.first()?["state"] == "firing").then_some(rules)
    });
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["payment_failures", "error_rate", "api_latency_p95", "queue_length"]);
    assert_eq!(rules[0]["value"], 11.0);
    // The server records its own traffic (these requests; no 5xx among them).
    assert!(rules[1]["observations"].as_u64().unwrap_or(0) >= 12, "{}", rules[1]);
    assert_eq!(rules[1]["state"], "inactive", "{}", rules[1]);
    // The queue rule reads the real Redis (an empty or short Celery queue).
    assert_eq!(rules[3]["state"], "inactive", "{}", rules[3]);
    assert_eq!(rules[3]["reading"]["kind"], "value", "{}", rules[3]);
    let (_, _, html) = get(addr, "/status").unwrap();
    assert!(html.contains("<h2>Rules</h2>") && html.contains("payment_failures"), "{html}");
    // The firing went out through the alert pipeline (the log, without Slack).
    service.wait_for(Duration::from_secs(10), "the alert in the log", |s| {
        s.log().contains("Payment failures in the last hour: 11 > 10").then_some(())
    });
    assert_eq!(service.terminate().code(), Some(0), "{}", service.log());
}

#[test]
fn restore_backups_list_prune_and_restore_test_subcommands() {
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let config = work.path().join("resee-ops.toml");
    std::fs::write(
        &config,
        "[backup]\nprofile = \"zstd\"\n[backup.retention]\nkeep_last = 3\nunverified_max_age = \"1d\"\n",
    )
    .unwrap();
    // An old artifact whose run died before its manifest: retention removes it after the next backup.
    let stale = "postgres_development_20200101_000000.sql.zst";
    std::fs::write(backups.join(stale), b"cut short").unwrap();
    let run = |args: &[&str]| {
        let mut cmd = command(work.path());
        with_services(&mut cmd, &backups);
        let out = cmd.arg("--config").arg(&config).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), text)
    };

    let (code, _, log) = run(&["backup", "--once"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(!backups.join(stale).exists(), "retention ran after the backup: {log}");
    let names = manifests(&backups);
    assert_eq!(names.len(), 1);
    let artifact = names[0].trim_end_matches(".manifest.json").to_owned();
    assert!(artifact.ends_with(".sql.zst"), "{artifact}");

    let (code, out, log) = run(&["backups", "list"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(out.lines().any(|l| l.starts_with(&artifact) && l.ends_with("yes")), "{out}");

    let (code, out, log) = run(&["prune", "--dry-run"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(out.contains(&format!("keep   {artifact}  (last)")), "{out}");

    let db = format!("resee_ops_restored_{}", std::process::id());
    let admin = services::postgres().url();
    let drop = |db: &str| {
        let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
        let status = Command::new("psql").args(["-X", "-q", "-d", admin, "-c", &sql]).status().unwrap();
        assert!(status.success());
    };
    drop(&db);
    let (code, out, log) = run(&["restore", "--latest", "--database", &db]);
    assert_eq!(code, Some(0), "{log}");
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!((report["backup"].as_str(), report["database"].as_str()), (Some(artifact.as_str()), Some(db.as_str())));
    drop(&db);
    let (code, _, log) = run(&["restore", "no_such_backup.sql.gz"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("no verified backup matches"), "{log}");

    let (code, _, log) = run(&["restore-test"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("restore test passed"), "{log}");
}

/// The Prometheus text format (0.0.4), parsed strictly enough to reject what a scraper would: `# TYPE`
/// declarations and samples `name{label="value",...} number`, every sample of a declared metric.
#[derive(Debug, Default)]
struct Exposition {
    kinds: std::collections::HashMap<String, String>,
    samples: Vec<Sample>,
}

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

impl Exposition {
    fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for (n, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
            if line.trim().is_empty() || line.starts_with("# HELP ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| bad("TYPE without a kind"))?;
                if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                    return Err(bad("unknown kind"));
                }
                out.kinds.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
            let name = &line[..name_end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                return Err(bad("invalid metric name"));
            }
            let mut rest = &line[name_end..];
            let mut labels = Vec::new();
            if let Some(body) = rest.strip_prefix('{') {
                let close = body.find('}').ok_or_else(|| bad("unclosed labels"))?;
                for pair in body[..close].split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').ok_or_else(|| bad("label without ="))?;
                    let v =
                        v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(|| bad("unquoted label"))?;
                    labels.push((k.to_owned(), v.to_owned()));
                }
                rest = &body[close + 1..];
            }
            let value = rest.trim().split(' ').next().unwrap_or_default();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| bad("value is not a number"))?,
            };
            let base = ["_sum", "_count", "_bucket"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            if !out.kinds.contains_key(name) && !out.kinds.contains_key(base) {
                return Err(bad("sample of an undeclared metric"));
            }
            out.samples.push((name.to_owned(), labels, value));
        }
        Ok(out)
    }

    fn kind(&self, name: &str) -> Option<&str> {
        self.kinds.get(name).map(String::as_str)
    }

    /// The value of the sample of `name` carrying (at least) `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|s| s.2)
    }
}

#[test]
fn two_replicas_on_one_redis_send_a_failing_probe_to_slack_exactly_once() {
    let (url, accepted) = fake_slack(0);
    let prefix = unique_prefix();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_db = format!("postgres://postgres@127.0.0.1:{}/postgres", closed.local_addr().unwrap().port());
    drop(closed);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("replica.toml");
    std::fs::write(
        &config,
        "[backup]\nenabled = false\n[rules]\nenabled = false\n[monitor]\ninterval = \"1s\"\nqueues = []\n",
    )
    .unwrap();
    let start = |n: usize| {
        let dir = work.path().join(format!("replica{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = command(&dir);
        with_services(&mut cmd, &dir.join("backups"));
        cmd.env("DATABASE_URL", &down_db)
            .env("RESEE_ALERTS_STORE_PREFIX", &prefix)
            .env("SLACK_WEBHOOK_URL", &url)
            .arg("--config")
            .arg(&config);
        Service::start(cmd)
    };
    let mut replicas = [start(1), start(2)];
    // Both replicas have checked the failing database three times (so the first cycle's alert decisions
    // were made long since) and have nothing left in their alert queue.
    for replica in &mut replicas {
        let addr = replica.address();
        replica.wait_for(Duration::from_secs(60), "three cycles and an empty alert queue", |_| {
            let (_, _, body) = get(addr, "/metrics")?;
            let m = Exposition::parse(&body).ok()?;
            let cycles = m.value("resee_ops_health_probe_duration_seconds_count", &[("probe", "database")])?;
            let failing = m.value("resee_ops_health_probe_status", &[("probe", "database")])? == 0.0;
            let idle = m.value("resee_ops_alerts_queue_depth", &[])? == 0.0;
            let taken = m.value("resee_ops_alerts_accepted_total", &[])? >= 1.0;
            (cycles >= 3.0 && failing && idle && taken).then_some(())
        });
    }
    for replica in &mut replicas {
        assert_eq!(replica.terminate().code(), Some(0), "{}", replica.log());
    }
    let bodies = accepted.lock().unwrap().clone();
    let db = bodies.iter().filter(|b| b.contains("Database connection failed")).count();
    assert_eq!(db, 1, "one Slack message for the failing database from two replicas: {bodies:#?}");
    let logs: String = replicas.iter().map(Service::log).collect();
    assert!(logs.contains("alert throttle state in Redis"), "{logs}");
    assert!(!logs.contains("throttling in process memory"), "Redis answered throughout: {logs}");
}

/// Issue 11: the level directives are reloadable at run time. SIGHUP reads the configuration file again
/// and applies its `[logging] level` (the service keeps running); directives that do not parse are
/// reported and the level in force stays.
#[test]
fn sighup_reloads_the_log_level_from_the_configuration_file() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("resee-ops.toml");
    let write_level = |level: &str| {
        let text = format!(
            "[backup]\nenabled = false\n[rules]\nenabled = false\n[monitor]\nqueues = []\n[logging]\nlevel = {level:?}\n"
        );
        std::fs::write(&config, text).unwrap();
    };
    write_level("info");
    let mut cmd = command(work.path());
    with_services(&mut cmd, &work.path().join("backups"));
    cmd.env_remove("RUST_LOG").arg("--config").arg(&config); // RUST_LOG would win over the file
    let mut service = Service::start(cmd);
    let addr = service.address();
    let pid = rustix::process::Pid::from_raw(service.child.id() as i32).unwrap();
    let hangup = || rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();

    write_level("info,=[not a directive");
    hangup();
    service.wait_for(Duration::from_secs(30), "the refused reload", |s| {
        s.log().contains("log level not reloaded").then_some(())
    });
    write_level("info,resee_ops::notify=debug");
    hangup();
    let line = service.wait_for(Duration::from_secs(30), "the reload", |s| {
        s.log().lines().find(|l| l.contains("log level reloaded")).map(str::to_owned)
    });
    assert!(line.contains("to=info,resee_ops::notify=debug"), "{line}");
    assert_eq!(get(addr, "/health/live").map(|r| r.0), Some(200), "SIGHUP does not stop the service");

    assert_eq!(service.terminate().code(), Some(0), "{}", service.log());
    // A DEBUG line of `resee_ops::notify`, written at shutdown: only the reloaded directives let it through,
    // to the console and to general.log alike.
    let debug = "DEBUG resee_ops::notify: dispatcher shutting down";
    assert!(service.log().contains(debug), "{}", service.log());
    let general = std::fs::read_to_string(work.path().join("logs/general.log")).unwrap();
    assert!(general.contains(debug) && general.contains("log level reloaded"), "{general}");
}
