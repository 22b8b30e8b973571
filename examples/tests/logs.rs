//! The examples' logs carry no ANSI escapes when stderr is not a terminal (a pipe, journald, a file).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An example binary, built by `cargo test` under `<target>/<profile>/examples/`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("examples").join(name);
    assert!(path.exists(), "{} is missing: `cargo test -p resee-ops-examples` builds it", path.display());
    path
}

#[test]
fn logs_to_a_pipe_carry_no_ansi_escapes() {
    // Without a webhook, send_test_alert writes its four alerts to the log (stderr) and exits 0.
    let out = Command::new(example("send_test_alert"))
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("Test alert (error)"), "the alerts are logged: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escapes in a piped log: {stderr:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains('\u{1b}'), "ANSI escapes on a piped stdout: {stdout:?}");
}
