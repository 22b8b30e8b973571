//! The `host_app` example, the template a host copies: its custom target passes core's backup-target
//! conformance suite, its custom probe core's health-probe suite (up, refused, hung), and the process
//! serves the host's routes with the health endpoint merged in, backs up into the custom target, sends
//! backup and app alerts through one stack to a loopback Slack, and on SIGTERM stops in order with nothing
//! dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use resee_ops_core::testing::{conformance, services};
use resee_ops_core::{ArtifactName, BackupTarget, HealthProbe, HealthStatus};

#[path = "../examples/host_app/probe.rs"]
#[allow(dead_code)]
mod probe;
#[path = "../examples/host_app/target.rs"]
#[allow(dead_code)]
mod target;

mod common;
use common::{Service, fake_slack, get, post};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_target_passes_cores_backup_target_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let target = target::MonthlyDir::new(dir.path().join("archive")).unwrap();
    conformance::backup_target(&target).await;

    // Its own layout: one folder per month of the name's date; nothing left in the staging area.
    let name = ArtifactName::new("resee_production_20261201_030000.sql.gz").unwrap();
    let mut w = target.create(&name).await.unwrap();
    w.write(b"dump").await.unwrap();
    w.commit().await.unwrap();
    assert!(dir.path().join("archive/2026-12/resee_production_20261201_030000.sql.gz").is_file());
    assert_eq!(std::fs::read_dir(dir.path().join("archive/.staging")).unwrap().count(), 0);
    assert_eq!(target.list().await.unwrap().len(), 1);
}

/// A loopback HTTP server: `200 OK` to every request, or, when `answer` is false, a connection that is
/// accepted and never answered.
fn dependency(answer: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/status", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
            if answer {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            } else {
                held.push(stream);
            }
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_probe_passes_cores_health_probe_suite_up_refused_and_hung() {
    let within = Duration::from_secs(3);
    let up = probe::HttpDependency::new("payments_api", &dependency(true)).unwrap();
    let outcome = conformance::health_probe(&up, within, &[]).await;
    assert_eq!(outcome.status, HealthStatus::Up, "{outcome:?}");
    assert_eq!(outcome.observed_unit.as_deref(), Some("ms"));

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_url = format!("http://{}/status", closed.local_addr().unwrap());
    drop(closed);
    let refused = probe::HttpDependency::new("payments_api", &refused_url).unwrap();
    let outcome = conformance::health_probe(&refused, within, &[]).await;
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");

    let hung = probe::HttpDependency::new("payments_api", &dependency(false))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let outcome = conformance::health_probe(&hung, within, &[]).await;
    assert_eq!(outcome.status, HealthStatus::Down);
    assert!(outcome.output.as_deref().unwrap_or_default().contains("did not answer within 500 ms"), "{outcome:?}");
    assert!(started.elapsed() < within * 2, "bounded by its own timeout");
    assert_eq!(hung.alert_text(&outcome, false).title, "payments_api unreachable");

    // Credentials never belong in the URL (they would end up in outputs and alerts).
    let err = probe::HttpDependency::new("x", "http://user:s3cret@127.0.0.1:1/").unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

fn manifests(dir: &Path) -> Vec<String> {
    let Ok(months) = std::fs::read_dir(dir) else { return Vec::new() };
    months
        .filter_map(Result::ok)
        .filter(|m| m.file_name() != ".staging")
        .flat_map(|m| std::fs::read_dir(m.path()).into_iter().flatten().filter_map(Result::ok))
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".manifest.json"))
        .collect()
}

#[test]
fn the_host_app_serves_backs_up_alerts_through_one_stack_and_stops_in_order_on_sigterm() {
    let (slack_url, slack) = fake_slack(0);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("archive");
    let mut cmd = common::command("host_app", work.path());
    cmd.env("DATABASE_URL", services::postgres().url())
        .env("HOST_APP_ADDR", "127.0.0.1:0")
        .env("HOST_APP_BACKUP_DIR", &archive)
        .env("HOST_APP_DEPENDENCY_URL", dependency(true))
        .env("SLACK_WEBHOOK_URL", &slack_url);
    let mut app = Service::start(cmd);
    let addr = app.address();

    // The host's own routes and the merged health endpoint on one server.
    let (status, _, body) = get(addr, "/").unwrap();
    assert_eq!((status, body.as_str()), (200, "host_app\n"));
    let (_, content_type, _) = app.wait_for(Duration::from_secs(60), "readiness", |_| {
        get(addr, "/health/ready").filter(|(status, _, _)| *status == 200)
    });
    assert_eq!(content_type, "application/health+json");
    assert_eq!(get(addr, "/health/live").unwrap().0, 200);

    // The catch-up backup lands in the custom target, in its own layout, and says so on Slack.
    let manifest = app.wait_for(Duration::from_secs(120), "the catch-up backup", |_| manifests(&archive).pop());
    assert!(manifest.contains("_development_"), "{manifest}");
    app.wait_for(Duration::from_secs(60), "the backup alert on Slack", |_| {
        slack.lock().unwrap().iter().any(|b| b.contains("succeeded")).then_some(())
    });

    // An app alert goes through the same stack.
    assert_eq!(post(addr, "/payments/failed"), Some(202));
    app.wait_for(Duration::from_secs(30), "the app alert on Slack", |_| {
        slack.lock().unwrap().iter().any(|b| b.contains("Payment failed")).then_some(())
    });

    let exit = app.terminate();
    assert_eq!(exit.code(), Some(0), "{}", app.log());
    let log = app.log();
    let stopped = log.lines().find(|l| l.contains("host_app stopped:")).unwrap_or_else(|| panic!("no summary:\n{log}"));
    assert!(stopped.contains("dropped=0") && stopped.contains("0 dropped"), "{stopped}");
    assert!(stopped.contains("jobs 0 finished, 0 cancelled, 0 aborted"), "no job was running: {stopped}");
    // The order: the HTTP server stopped, then the producers, then the alerts were flushed.
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"));
    assert!(at("SIGTERM") < at("stopping producers") && at("stopping producers") < at("flushing alerts"), "{log}");
    assert!(!log.contains(&slack_url) && !log.contains("services/T0/B0/test"), "the webhook URL is a secret");
    assert!(!log.contains("panicked"), "{log}");
}
