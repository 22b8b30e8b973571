//! Routing, formats, rotation, queueing and masking, on real files.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use common::{WAIT, build, lines};
use resee_ops_core::ErrorKind;
use resee_ops_logging::{ChannelConfig, Level, LogFormat, LoggingConfig};
use tracing::dispatcher::with_default;

const CHANNEL_FILES: [&str; 4] = ["general.log", "error.log", "worker.log", "security.log"];

fn files_holding(dir: &std::path::Path, files: &[&str], needle: &str) -> BTreeSet<String> {
    files.iter().filter(|f| lines(dir, f).iter().any(|l| l.contains(needle))).map(|f| (*f).to_owned()).collect()
}

#[test]
fn each_event_lands_in_exactly_the_expected_files() {
    for format in [LogFormat::Text, LogFormat::Json] {
        let dir = tempfile::tempdir().unwrap();
        let config = LoggingConfig::new(dir.path()).with_format(format).with_level("info");
        let (dispatch, guard, console) = build(config);
        with_default(&dispatch, || {
            tracing::debug!("ev-debug-below-level");
            tracing::info!("ev-info-app");
            tracing::warn!("ev-warn-app");
            tracing::error!(target: "resee_ops_backup", "ev-error-backup");
            tracing::info!(target: "worker", "ev-info-worker");
            tracing::info!(target: "task::cleanup", "ev-info-task-child");
            tracing::info!(target: "workers", "ev-info-not-worker");
            tracing::error!(target: "worker::beat", "ev-error-worker");
            tracing::info!(target: "security", "ev-info-security");
            tracing::warn!(target: "security", "ev-warn-security");
        });
        assert!(guard.flush(WAIT));

        let expect = |needle: &str, files: &[&str]| {
            let want: BTreeSet<String> = files.iter().map(|f| (*f).to_owned()).collect();
            assert_eq!(files_holding(dir.path(), &CHANNEL_FILES, needle), want, "{needle} ({format})");
            assert_eq!(console.text().contains(needle), !files.is_empty(), "{needle} on the console ({format})");
        };
        expect("ev-debug-below-level", &[]);
        expect("ev-info-app", &["general.log"]);
        expect("ev-warn-app", &["general.log", "error.log"]);
        expect("ev-error-backup", &["general.log", "error.log"]);
        expect("ev-info-worker", &["general.log", "worker.log"]);
        expect("ev-info-task-child", &["general.log", "worker.log"]);
        expect("ev-info-not-worker", &["general.log"]);
        expect("ev-error-worker", &["general.log", "error.log", "worker.log"]);
        expect("ev-info-security", &["general.log", "security.log"]);
        expect("ev-warn-security", &["general.log", "error.log", "security.log"]);
        // Exactly once per file.
        assert_eq!(lines(dir.path(), "general.log").len(), 9);
    }
}

#[test]
fn channels_are_configurable_and_extensible() {
    let dir = tempfile::tempdir().unwrap();
    let config = LoggingConfig::new(dir.path())
        .with_console(false)
        .with_error(ChannelConfig::error().with_level(Level::Error))
        .with_worker(ChannelConfig::worker().with_file("celery.log").with_target("celery"))
        .with_security(ChannelConfig::security().with_enabled(false))
        .with_channel(ChannelConfig::new("audit", "audit.log").with_targets(["audit"]).with_format(LogFormat::Json));
    let (dispatch, guard, _) = build(config);
    with_default(&dispatch, || {
        tracing::warn!("a-warning");
        tracing::error!("an-error");
        tracing::info!(target: "celery", "a-celery-task");
        tracing::warn!(target: "security", "a-security-event");
        tracing::info!(target: "audit", who = "ann", "an-audit-entry");
    });
    assert!(guard.flush(WAIT));
    let files = ["general.log", "error.log", "celery.log", "security.log", "audit.log", "worker.log"];
    assert_eq!(files_holding(dir.path(), &files, "a-warning"), BTreeSet::from(["general.log".to_owned()]));
    assert!(files_holding(dir.path(), &files, "an-error").contains("error.log"));
    assert_eq!(
        files_holding(dir.path(), &files, "a-celery-task"),
        BTreeSet::from(["general.log".to_owned(), "celery.log".to_owned()])
    );
    assert!(!dir.path().join("security.log").exists() && !dir.path().join("worker.log").exists());
    let audit: serde_json::Value = serde_json::from_str(&lines(dir.path(), "audit.log")[0]).unwrap();
    assert_eq!(audit["fields"]["who"], "ann");
    // Text elsewhere, JSON for the audit channel only.
    assert!(lines(dir.path(), "general.log").iter().all(|l| !l.starts_with('{')));
}

#[test]
fn json_lines_parse_and_carry_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard, console) =
        build(LoggingConfig::new(dir.path()).with_format(LogFormat::Json).with_console_format(LogFormat::Text));
    with_default(&dispatch, || {
        let outer = tracing::info_span!("request", id = 7);
        let inner = tracing::info_span!(parent: &outer, "db");
        inner.in_scope(|| {
            tracing::warn!(
                count = 3u64,
                delta = -2i64,
                ratio = 0.5,
                ok = true,
                name = "a \"quoted\"\nname",
                debug = ?vec![1, 2],
                shown = %"displayed",
                "five fields and a message with ünïcode"
            )
        });
        tracing::info!(target: "worker", "no fields");
    });
    assert!(guard.flush(WAIT));
    let lines = lines(dir.path(), "general.log");
    assert_eq!(lines.len(), 2);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let keys: BTreeSet<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["timestamp", "level", "target", "message", "fields", "spans"]));
    let timestamp = chrono::DateTime::parse_from_rfc3339(first["timestamp"].as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now() - timestamp.to_utc()).num_seconds().abs() < 60);
    assert!(first["timestamp"].as_str().unwrap().contains(['+', '-']), "an offset, not Z");
    assert_eq!(first["level"], "WARN");
    assert_eq!(first["target"], "channels");
    assert_eq!(first["message"], "five fields and a message with ünïcode");
    assert_eq!(
        first["fields"],
        serde_json::json!({"count": 3, "delta": -2, "ratio": 0.5, "ok": true, "name": "a \"quoted\"\nname",
                           "debug": "[1, 2]", "shown": "displayed"})
    );
    assert_eq!(first["spans"], serde_json::json!(["request", "db"]));
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["fields"], serde_json::json!({}));
    assert_eq!(second["spans"], serde_json::json!([]));
    assert_eq!(second["target"], "worker");
    // The console has its own format: text, one line per event even with a newline in a value.
    let console = console.text();
    assert_eq!(console.lines().count(), 2, "{console}");
    assert!(console.contains(" WARN channels: request: db: five fields"), "{console}");
}

#[test]
fn rotation_keeps_exactly_backups_files_of_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    let (max_bytes, backups) = (4_000u64, 3usize);
    let config = LoggingConfig::new(dir.path())
        .with_console(false)
        .with_max_bytes(max_bytes)
        .with_backups(backups)
        .with_lossless(true);
    let (dispatch, guard, _) = build(config);
    let total = 1_000;
    with_default(&dispatch, || {
        for i in 0..total {
            tracing::info!(seq = i, "line {i:05} of the rotation test");
        }
    });
    assert!(guard.flush(WAIT));

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("general.log"))
        .collect();
    names.sort();
    assert_eq!(names, ["general.log", "general.log.1", "general.log.2", "general.log.3"]);

    let longest = lines(dir.path(), "general.log").iter().map(|l| l.len() as u64 + 1).max().unwrap();
    for name in &names[1..] {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(size > max_bytes && size <= max_bytes + longest, "{name}: {size} bytes");
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "{name}: mode {mode:o}");
    }
    // Oldest to newest, the kept lines are the last ones written, without a gap, each whole.
    let mut ordered = Vec::new();
    for name in ["general.log.3", "general.log.2", "general.log.1", "general.log"] {
        ordered.extend(lines(dir.path(), name).iter().map(|l| l.split("seq=").nth(1).unwrap().parse::<u64>().unwrap()));
    }
    let first = ordered[0];
    assert_eq!(ordered, (first..total).collect::<Vec<_>>());
    assert_eq!(guard.stats()[0].written, total);
}

#[test]
fn lossless_rotation_across_many_threads_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = LoggingConfig::new(dir.path())
        .with_console(false)
        .with_format(LogFormat::Json)
        .with_max_bytes(64 * 1024)
        .with_backups(10_000)
        .with_queue_capacity(16)
        .with_lossless(true);
    let (dispatch, guard, _) = build(config);
    let (threads, per_thread) = (8u64, 4_000u64);
    std::thread::scope(|s| {
        for t in 0..threads {
            let dispatch = dispatch.clone();
            s.spawn(move || {
                with_default(&dispatch, || {
                    for i in 0..per_thread {
                        tracing::info!(thread = t, seq = i, "concurrent line");
                    }
                })
            });
        }
    });
    assert!(guard.shutdown(WAIT));

    let mut seen = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("general.log") {
            continue;
        }
        files += 1;
        for line in lines(dir.path(), &name) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let key = (v["fields"]["thread"].as_u64().unwrap(), v["fields"]["seq"].as_u64().unwrap());
            assert!(seen.insert(key), "{key:?} twice");
        }
    }
    assert_eq!(seen.len() as u64, threads * per_thread);
    assert!(files > 10, "{files} files: the test must rotate");
}

#[test]
fn a_full_queue_drops_counts_and_says_so_once_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let config = LoggingConfig::new(dir.path()).with_console(false).with_queue_capacity(1);
    let (dispatch, guard, _) = build(config);
    let total = 20_000u64;
    with_default(&dispatch, || {
        for i in 0..total {
            tracing::info!(seq = i, "burst");
        }
    });
    assert!(guard.flush(WAIT));
    let general = guard.stats().into_iter().find(|s| s.name == "general").unwrap();
    assert!(general.dropped > 0, "{general:?}: a one-line queue must overflow");
    let lines = lines(dir.path(), "general.log");
    let burst = lines.iter().filter(|l| l.contains(" burst")).count() as u64;
    assert_eq!(burst + general.dropped, total, "every line written or counted");
    let reported: u64 = lines
        .iter()
        .filter(|l| l.contains("log lines were dropped"))
        .map(|l| l.split(" dropped=").nth(1).unwrap().split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(reported, general.dropped, "the dropped count is logged");
}

#[test]
fn secrets_are_masked_in_fields_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    for format in [LogFormat::Json, LogFormat::Text] {
        let sub = dir.path().join(format.as_str());
        let (dispatch, guard, console) = build(LoggingConfig::new(&sub).with_format(format));
        with_default(&dispatch, || {
            tracing::warn!(
                password = "hunter2-pw",
                api_token = 12345678u64,
                client_secret = ?"s3cr3t-debug",
                webhook_url = %"https://hooks.slack.com/services/T/B/XYZSECRET",
                dsn = "postgres://resee:dsn-pass@db/resee",
                "connecting to postgresql://resee:msg-pass@db:5432/resee failed"
            );
            tracing::info!(target: "security", "rejected redis://:redis-pass@cache/0");
        });
        assert!(guard.flush(WAIT));
        for text in CHANNEL_FILES.iter().map(|f| lines(&sub, f).join("\n")).chain([console.text()]) {
            for secret in ["hunter2-pw", "12345678", "s3cr3t-debug", "XYZSECRET", "dsn-pass", "msg-pass", "redis-pass"]
            {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        let general = lines(&sub, "general.log").join("\n");
        assert!(general.contains("postgresql://resee:***@db:5432/resee"), "{general}");
        assert!(general.contains("postgres://resee:***@db/resee"), "{general}");
        if format == LogFormat::Json {
            let v: serde_json::Value = serde_json::from_str(&lines(&sub, "general.log")[0]).unwrap();
            assert_eq!(v["fields"]["password"], "***");
            assert_eq!(v["fields"]["api_token"], "***");
        }
    }
}

#[test]
fn the_level_is_reloadable_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard, _) = build(LoggingConfig::new(dir.path()).with_console(false).with_level("info"));
    let handle = guard.handle();
    with_default(&dispatch, || {
        tracing::debug!("hidden-debug");
        handle.set_level("debug").unwrap();
        tracing::debug!("shown-debug");
        let err = handle.set_level("info,=[broken").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert_eq!(handle.level(), "debug");
        handle.set_level("warn,resee_ops_backup=trace").unwrap();
        tracing::info!("hidden-info");
        tracing::trace!(target: "resee_ops_backup::verify", "shown-trace");
    });
    assert!(guard.flush(WAIT));
    let general = lines(dir.path(), "general.log").join("\n");
    assert!(!general.contains("hidden"), "{general}");
    assert!(general.contains("shown-debug") && general.contains("shown-trace"), "{general}");
}

#[test]
fn files_are_0640_and_a_new_directory_0750() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("var/log/resee");
    let (_dispatch, guard, _) = build(LoggingConfig::new(&logs).with_console(false));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The umask may take bits away, never add them.
    assert_eq!(mode(&logs) & !0o750, 0, "{:o}", mode(&logs));
    assert_eq!(mode(&logs) & 0o700, 0o700);
    for file in CHANNEL_FILES {
        assert_eq!(mode(&logs.join(file)) & !0o640, 0, "{file}");
        assert_eq!(mode(&logs.join(file)) & 0o600, 0o600, "{file}");
    }
    drop(guard);
}

#[test]
fn events_after_shutdown_are_counted_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard, _) = build(LoggingConfig::new(dir.path()).with_console(false));
    let handle = guard.handle();
    with_default(&dispatch, || tracing::info!("before"));
    assert!(guard.shutdown(WAIT));
    with_default(&dispatch, || tracing::info!("after"));
    let general = handle.stats().into_iter().find(|s| s.name == "general").unwrap();
    assert_eq!((general.written, general.dropped), (1, 1));
    assert_eq!(lines(dir.path(), "general.log").len(), 1);
}

#[test]
fn console_only_creates_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let (dispatch, guard, console) = build(LoggingConfig::new(&logs).with_console_only());
    with_default(&dispatch, || tracing::warn!(target: "security", "console-only"));
    assert!(guard.flush(WAIT));
    assert!(console.text().contains("console-only"));
    assert!(!logs.exists());
}
