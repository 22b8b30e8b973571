//! An invalid or unwritable directory and a full disk: clear errors at start, never a crash later.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Tmpfs, WAIT, build, lines};
use resee_ops_core::ErrorKind;
use resee_ops_logging::{LogFormat, Logging, LoggingConfig};
use tracing::dispatcher::with_default;

#[test]
fn init_with_an_invalid_directory_returns_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();

    for dir in [file.clone(), file.join("logs")] {
        let err = resee_ops_logging::init(LoggingConfig::new(&dir).with_console(false)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(err.to_string().contains(&*dir.to_string_lossy()), "names the directory: {err}");
    }

    // A directory nobody may write: a read-only tmpfs as root (root ignores file modes), else mode 0500.
    let locked = tmp.path().join("locked");
    let _mount = Tmpfs::mount(&locked, "ro,size=64k");
    if _mount.is_none() {
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    for dir in [locked.join("logs"), locked.clone()] {
        let err = Logging::new(LoggingConfig::new(&dir).with_console(false)).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains(&*dir.to_string_lossy()), "names the path: {err}");
    }

    // Nothing was installed by the failed `init`s: a valid one still works.
    let good = tmp.path().join("good");
    let guard = resee_ops_logging::init(LoggingConfig::new(&good).with_console(false)).unwrap();
    tracing::info!("installed");
    assert!(guard.flush(WAIT));
    assert_eq!(lines(&good, "general.log").len(), 1);
    let again = resee_ops_logging::init(LoggingConfig::new(&good).with_console(false)).unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
}

/// Fills the disk under the general channel, frees it again, and checks that the host never noticed
/// beyond one console report, that the lost lines are counted, and that writing resumes.
#[test]
fn a_full_disk_is_reported_once_and_writing_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let mount = Tmpfs::mount(&mnt, "size=256k");
    let (logs, free_space): (_, Box<dyn Fn()>) = match &mount {
        Some(_) => {
            // 128 KiB of the 256 KiB taken before logging starts; deleting it frees them.
            let filler = mnt.join("filler");
            std::fs::write(&filler, vec![b'x'; 128 * 1024]).unwrap();
            (mnt.join("logs"), Box::new(move || std::fs::remove_file(&filler).unwrap()))
        }
        None => {
            // Without a mount: general.log is /dev/full, which answers every write with ENOSPC.
            let logs = tmp.path().join("logs");
            std::fs::create_dir(&logs).unwrap();
            std::os::unix::fs::symlink("/dev/full", logs.join("general.log")).unwrap();
            let link = logs.join("general.log");
            (logs, Box::new(move || std::fs::remove_file(&link).unwrap()))
        }
    };
    println!("full disk via {}", if mount.is_some() { "a 256 KiB tmpfs" } else { "/dev/full" });

    let config = LoggingConfig::new(&logs).with_format(LogFormat::Json).with_lossless(true);
    let (dispatch, guard, console) = build(config);
    let general =
        |guard: &resee_ops_logging::LogGuard| guard.stats().into_iter().find(|s| s.name == "general").unwrap();
    let payload = "p".repeat(300);
    let mut i = 0u64;
    with_default(&dispatch, || {
        while general(&guard).failed == 0 && i < 20_000 {
            for _ in 0..50 {
                tracing::info!(seq = i, payload = payload.as_str(), "filling");
                i += 1;
            }
            assert!(guard.flush(WAIT));
        }
        // Keep logging into the full disk: the host goes on, the console hears about it once.
        for _ in 0..500 {
            tracing::info!(seq = i, payload = payload.as_str(), "still full");
            i += 1;
        }
    });
    assert!(guard.flush(WAIT));
    let failed = general(&guard).failed;
    assert!(failed >= 500, "{:?}", general(&guard));
    let reports = console.text().lines().filter(|l| l.contains("cannot write")).count();
    assert_eq!(
        reports,
        1,
        "{}",
        console.text().lines().filter(|l| !l.contains("filling")).collect::<Vec<_>>().join("\n")
    );

    free_space();
    with_default(&dispatch, || {
        for n in 0..10 {
            tracing::info!(n, "after-recovery");
        }
    });
    assert!(guard.flush(WAIT));
    let stats = general(&guard);
    assert_eq!(stats.failed, failed, "nothing lost after the recovery");
    assert_eq!(stats.written + stats.failed, i + 10 + 1, "every line written or counted (+1: the recovery note)");
    let recovered = console.text().lines().filter(|l| l.contains("writes again")).collect::<Vec<_>>().join("\n");
    assert!(recovered.contains(&format!("after {failed} lost lines")), "{recovered}");

    let lines = lines(&logs, "general.log");
    let unparsable = lines.iter().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err()).count();
    assert!(unparsable <= 1, "at most the one line the full disk cut short: {unparsable}");
    assert_eq!(lines.iter().filter(|l| l.contains("after-recovery")).count(), 10);
    drop(guard);
    drop(mount);
    assert!(!is_mounted(&mnt));
}

fn is_mounted(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts").unwrap_or_default().contains(&*dir.to_string_lossy())
}

#[test]
fn a_console_that_fails_does_not_take_the_host_down() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard) = Logging::new(LoggingConfig::new(tmp.path())).with_console_writer(Broken).build().unwrap();
    with_default(&dispatch, || {
        for n in 0..100 {
            tracing::info!(n, "to a closed pipe");
        }
    });
    assert!(guard.flush(WAIT));
    let stats = guard.stats();
    assert_eq!(stats[0].name, "console");
    assert_eq!(stats[0].failed, 100);
    assert_eq!(lines(tmp.path(), "general.log").len(), 100);
}

/// A console writer that panics on every write.
struct Exploding;

impl std::io::Write for Exploding {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        panic!("the console writer exploded (expected by this test)");
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A host's writer that panics is a failing write, not a dead sink: a lossless caller never waits for room
/// that would not come, and every line is counted as lost.
#[test]
fn a_panicking_writer_never_blocks_a_lossless_caller_and_its_lines_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = LoggingConfig::new(dir.path()).with_console_only().with_lossless(true).with_queue_capacity(1);
    let (dispatch, guard) = Logging::new(config).with_console_writer(Exploding).build().unwrap();
    let handle = guard.handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let logger = std::thread::spawn(move || {
        with_default(&dispatch, || (0..100).for_each(|i| tracing::info!(i, "line")));
        done_tx.send(()).unwrap();
    });
    done_rx.recv_timeout(WAIT).expect("a lossless caller must not wait for a failing writer");
    logger.join().unwrap();
    assert!(guard.flush(WAIT), "the writer is alive and answers");
    let console = handle.stats().into_iter().find(|s| s.name == "console").unwrap();
    assert_eq!(console.written, 0, "{console:?}");
    assert_eq!(console.dropped, 0, "lossless: {console:?}");
    assert_eq!(console.failed, 100, "every line is counted as lost: {console:?}");
}
