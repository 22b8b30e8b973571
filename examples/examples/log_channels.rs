//! Writes N events to each of the four log channels (general, error, worker, security) so an operator can
//! see the files, their rotation and the format at once, then lists what is on disk.
//!
//! ```text
//! cargo run -p resee-ops-examples --example log_channels -- --events 2000 --max-bytes 65536 --backups 3 --format json --dir ./logs
//! ```
//!
//! Options (defaults in brackets): `--events N` [1000], `--max-bytes BYTES` [`LOG_MAX_BYTES`, else 16384,
//! small so rotation shows; the library's default is 10 MiB], `--backups N` [`LOG_BACKUPS`, else 5],
//! `--format json|text` [`LOG_FORMAT`, else text], `--dir DIR` [`LOG_DIR`, else `./logs`], `--console`
//! (also print every event to standard error). `RUST_LOG` sets the level directives [info]. Exits 2 on a
//! bad option or a directory that cannot be used.
//!
//! The error and security events carry a secret each (a database URL with its password, the password a
//! failed login tried), so the masking shows too: `postgres://resee:***@db:5432/resee`, `password="***"`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use resee_ops_logging::{LogFormat, Logging, LoggingConfig};

/// `println!` that ignores a closed standard output (`log_channels | head`) instead of panicking: the
/// report is for a reader who may have stopped reading.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    // The example's defaults, then the environment (LOG_DIR, LOG_FORMAT, RUST_LOG, LOG_MAX_BYTES,
    // LOG_BACKUPS), then the options.
    let mut config = LoggingConfig::new("./logs")
        .with_max_bytes(16 * 1024)
        .with_console(false)
        .with_env_overrides()
        .map_err(|e| e.to_string())?;
    let mut events: u64 = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name} {v:?} is not a number"));
        match arg.as_str() {
            "--events" => events = number("--events", value("--events")?)?,
            "--max-bytes" => config = config.with_max_bytes(number("--max-bytes", value("--max-bytes")?)?),
            "--backups" => {
                config = config
                    .with_backups(usize::try_from(number("--backups", value("--backups")?)?).unwrap_or(usize::MAX))
            }
            "--format" => {
                config = config.with_format(value("--format")?.parse::<LogFormat>().map_err(|e| e.to_string())?)
            }
            "--dir" => config = config.with_dir(value("--dir")?),
            "--console" => config = config.with_console(true),
            "-h" | "--help" => {
                say!(
                    "usage: log_channels [--events N] [--max-bytes BYTES] [--backups N] [--format json|text] [--dir DIR] [--console]\n\n\
                     Writes N events to each log channel (general, error, worker, security) and lists the files.\n\n  \
                     --events N         events per channel [1000]\n  \
                     --max-bytes BYTES  rotate a file once it is larger than this [LOG_MAX_BYTES, else 16384]\n  \
                     --backups N        rotated files kept per channel: general.log.1 ... .N [LOG_BACKUPS, else 5]\n  \
                     --format json|text line format [LOG_FORMAT, else text]\n  \
                     --dir DIR          log directory, created 0750 [LOG_DIR, else ./logs]\n  \
                     --console          also print every event to standard error\n\n\
                     RUST_LOG sets the level directives [info]. Exit 2: a bad option or an unusable directory."
                );
                return Ok(());
            }
            other => return Err(format!("unknown option {other:?} (try --help)")),
        }
    }
    // Lossless: a demonstration should show every line it wrote.
    let config = config.with_lossless(true);
    let dir = config.dir.clone();
    let (format, max_bytes, backups) = (config.format, config.max_bytes, config.backups);
    let guard = Logging::new(config).init().map_err(|e| e.to_string())?;
    say!(
        "writing {events} events to each channel in {} ({} format, rotation at {} bytes, {} backups)",
        dir.display(),
        format,
        max_bytes,
        backups
    );

    let started = Instant::now();
    let span = tracing::info_span!("log_channels");
    let _entered = span.enter();
    for i in 0..events {
        tracing::info!(seq = i, database = "resee", duration_ms = 12.5, "request served");
        // Secrets that slipped into events: the URL's password and the `password` field are masked.
        tracing::error!(
            seq = i,
            url = "postgres://resee:hunter2@db:5432/resee",
            "backup failed: pg_dump exited with status 1"
        );
        tracing::info!(target: "worker", seq = i, task = "cleanup_expired_sessions", "task succeeded");
        tracing::warn!(target: "security", seq = i, user = "ann", ip = "203.0.113.7", password = "wrong-guess", "login failed");
    }
    let queued = started.elapsed();
    let stats = guard.handle();
    if !guard.shutdown(Duration::from_secs(30)) {
        return Err("the log writers did not finish within 30 s".to_owned());
    }
    let total = started.elapsed();
    say!("{} events queued in {queued:.2?}, all written in {total:.2?}", events * 4);
    for s in stats.stats() {
        say!("  {:<9} written {:>8}  dropped {:>3}  failed {:>3}", s.name, s.written, s.dropped, s.failed);
    }

    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
        .collect();
    files.sort();
    say!("files in {}:", dir.display());
    for (name, size) in &files {
        say!("  {name:<18} {size:>10} bytes");
    }
    // The last error and the last security event, their secrets masked.
    for (file, needle) in [("error.log", "backup failed"), ("security.log", "login failed")] {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            let last = text.lines().rev().find(|l| l.contains(needle)).unwrap_or_default();
            say!("last {needle:?} in {file}:\n  {last}");
        }
    }
    Ok(())
}
