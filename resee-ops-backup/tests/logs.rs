//! Logs never contain the database password (its own binary: it installs a global subscriber).

mod common;

use std::sync::Arc;

use common::*;
use resee_ops_core::ErrorKind;
use resee_ops_core::testing::InMemoryBackupTarget;

#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_trace_level_never_contain_the_password() {
    // The only test of this binary, so a global subscriber sees every event of the run, on every thread
    // (ours, tokio-postgres's, the blocking pool's).
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let server = password_server();
    let url = database(&server.url, "resee_bk_logs", "CREATE TABLE t (x text); INSERT INTO t VALUES ('a');");
    let target = InMemoryBackupTarget::new();
    let ok = builder(&url).with_target(target.clone()).build().unwrap().run().await;
    assert!(ok.is_success(), "{:?}", ok.error);
    let wrong = url.replace(&url[url.find(":pw-").unwrap() + 1..url.find('@').unwrap()], "Wrong-Logged-pw-77");
    let failed = builder(&wrong).with_target(target).build().unwrap().run().await;
    assert_eq!(failed.error.as_ref().unwrap().kind(), ErrorKind::PermissionDenied);

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("backup succeeded") && text.contains("backup failed"), "logs were captured: {text}");
    assert!(text.matches("backup attempt").count() >= 2, "every attempt is logged: {text}");
    assert!(!text.contains(&server.password), "the password is in the logs");
    assert!(!text.contains("Wrong-Logged-pw-77"), "the wrong password is in the logs");
}
