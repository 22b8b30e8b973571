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

/// The lines of `dir/file`.
fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file)).unwrap().lines().map(str::to_owned).collect()
}

/// `log_channels` as an operator runs it (issue 11): `--events N --max-bytes B --backups K --format json
/// --dir DIR` writes every channel, rotates each at B bytes keeping exactly K old files (`general.log.1` …
/// `.K`, each within one line of B), in JSON lines with the documented fields, files 0640 in a 0750
/// directory, and the secrets its events carry masked.
#[test]
fn log_channels_rotates_each_channel_in_the_chosen_format_and_masks_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("var/logs");
    let (events, max_bytes, backups) = (300u64, 4_000u64, 3usize);
    let out = Command::new(example("log_channels"))
        .env_clear()
        .args(["--events", &events.to_string(), "--max-bytes", &max_bytes.to_string()])
        .args(["--backups", &backups.to_string(), "--format", "json", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("dropped   0  failed   0"), "{stdout}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir) & !0o750, 0, "directory {:o}", mode(&dir));

    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let mut want = Vec::new();
    for channel in ["error", "general", "security", "worker"] {
        want.push(format!("{channel}.log"));
        want.extend((1..=backups).map(|n| format!("{channel}.log.{n}")));
    }
    assert_eq!(names, want, "exactly {backups} rotated files per channel");

    let keys = ["fields", "level", "message", "spans", "target", "timestamp"];
    for channel in ["error", "general", "security", "worker"] {
        let current = lines(&dir, &format!("{channel}.log"));
        let longest = current.iter().map(|l| l.len() as u64 + 1).max().unwrap();
        let mut seqs = Vec::new();
        for name in (1..=backups).rev().map(|n| format!("{channel}.log.{n}")).chain([format!("{channel}.log")]) {
            let path = dir.join(&name);
            assert_eq!(mode(&path) & !0o640, 0, "{name}: {:o}", mode(&path));
            let size = std::fs::metadata(&path).unwrap().len();
            if name.ends_with(char::is_numeric) {
                assert!(size > max_bytes && size <= max_bytes + longest, "{name}: {size} bytes");
            }
            for line in lines(&dir, &name) {
                let v: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
                let mut got: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
                got.sort_unstable();
                assert_eq!(got, keys, "{line}");
                chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
                match channel {
                    "error" => assert!(["WARN", "ERROR"].contains(&v["level"].as_str().unwrap()), "{line}"),
                    "security" => assert_eq!(v["target"], "security", "{line}"),
                    "worker" => assert_eq!(v["target"], "worker", "{line}"),
                    _ => {}
                }
                if channel == "security" {
                    seqs.push(v["fields"]["seq"].as_u64().unwrap());
                    assert_eq!(v["fields"]["password"], "***", "{line}");
                }
                if v["level"] == "ERROR" {
                    assert_eq!(v["fields"]["url"], "postgres://resee:***@db:5432/resee", "{line}");
                }
            }
        }
        if channel == "security" {
            // Only the oldest lines were rotated away: the kept ones are the last, in order, without a gap.
            let first = seqs[0];
            assert_eq!(seqs, (first..events).collect::<Vec<_>>());
        }
    }
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("wrong-guess"), "a secret in {name}");
    }
}

/// `--format text` and the defaults: one line per event in each channel's file, no rotation at this size;
/// a bad option or an unusable directory exits 2 and says why.
#[test]
fn log_channels_writes_text_and_rejects_bad_options_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(example("log_channels")).env_clear().current_dir(tmp.path()).args(args).output().unwrap()
    };
    let out = run(&["--events", "5", "--format", "text"]);
    assert!(out.status.success(), "{out:?}");
    let dir = tmp.path().join("logs");
    for (file, count) in [("general.log", 20), ("error.log", 10), ("worker.log", 5), ("security.log", 5)] {
        let lines = lines(&dir, file);
        assert_eq!(lines.len(), count, "{file}: {lines:#?}");
        for line in &lines {
            let timestamp = line.split(' ').next().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(), "{file}: {line}");
        }
        assert!(!dir.join(format!("{file}.1")).exists());
    }
    let security = lines(&dir, "security.log").join("\n");
    assert!(security.contains(" WARN security: log_channels: login failed") && security.contains("password=\"***\""));

    std::fs::write(tmp.path().join("a-file"), "").unwrap();
    for (args, says) in [
        (&["--format", "xml"][..], "xml"),
        (&["--max-bytes", "0"][..], "max_bytes"),
        (&["--events"][..], "--events needs a value"),
        (&["--dir", "a-file"][..], "a-file"),
        (&["--bogus"][..], "--bogus"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("writing"), "{args:?}: nothing written: {out:?}");
    }
    // The environment: LOG_FORMAT=json|text switches the format, RUST_LOG's directives set the level, and
    // LOG_DIR, LOG_MAX_BYTES and LOG_BACKUPS apply when no option says otherwise.
    let out = Command::new(example("log_channels"))
        .env_clear()
        .current_dir(tmp.path())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,worker=info")
        .env("LOG_DIR", "from-env")
        .env("LOG_MAX_BYTES", "1000")
        .env("LOG_BACKUPS", "1")
        .args(["--events", "20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = tmp.path().join("from-env");
    let general: Vec<serde_json::Value> = ["general.log.1", "general.log"]
        .iter()
        .flat_map(|f| lines(&dir, f))
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    assert!(general.iter().all(|v| v["level"] != "INFO" || v["target"] == "worker"), "RUST_LOG=warn,worker=info");
    assert!(general.iter().any(|v| v["target"] == "worker"));
    assert!(!dir.join("general.log.2").exists(), "LOG_BACKUPS=1");
    assert!(std::fs::metadata(dir.join("general.log.1")).unwrap().len() < 2_000, "LOG_MAX_BYTES=1000");

    // A reader that stopped reading (`log_channels | head -1`): the report is cut, the run still succeeds.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(example("log_channels"))
        .env_clear()
        .current_dir(tmp.path())
        .args(["--events", "3", "--dir", "closed-stdout"])
        .stdout(writer)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(tmp.path().join("closed-stdout/general.log").exists());

    let help = run(&["--help"]);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--max-bytes"), "{help:?}");
}
