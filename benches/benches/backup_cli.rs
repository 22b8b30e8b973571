//! A small command-line driver for `benches/scripts/backup_vs_shell.sh` (not a criterion bench):
//!
//! ```text
//! backup_cli dump DIR default|fast|zstd  # one verified backup of $DATABASE_URL into DIR ($RESEE_BACKUP_LEVEL
//!                                        # overrides the profile's level)
//! backup_cli verify FILE               # verification only (as `gzip -t`, plus trailer and manifest)
//! backup_cli dump-s3 default|zstd      # one verified backup of $DATABASE_URL into the S3 target of
//!                                      # BACKUP_S3_BUCKET, BACKUP_S3_ENDPOINT, … (S3Config::from_env)
//! ```
//!
//! Prints the report (or verification) as JSON on stdout and this process's own peak RSS (`VmHWM`, without
//! the `pg_dump` child) as `peak_rss_kib=N` on stderr. Exits 0 on success, 1 on failure.

use std::process::ExitCode;

use resee_ops_backup::{
    CompressionProfile, LocalDirTarget, PgDumpBackup, PgDumpBackupBuilder, S3Config, S3Target, verify_artifact,
};
use resee_ops_core::ArtifactName;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; the script runs the binary directly.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let ok = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["dump", dir, profile] => rt.block_on(dump(Some(dir), profile)),
        ["dump-s3", profile] => rt.block_on(dump(None, profile)),
        ["verify", file] => rt.block_on(verify(file)),
        ["gzip", file, level] => gzip_speed(file, level.parse().unwrap_or(6)),
        ["pipeline", file, level, threads] => rt.block_on(async {
            let data = std::fs::read(file).expect("read");
            let len = data.len();
            let t = std::time::Instant::now();
            let out = resee_ops_backup::__bench::compress_parallel(
                data,
                level.parse().unwrap_or(6),
                threads.parse().unwrap_or(2),
            )
            .await
            .expect("gzip");
            println!(
                "pipeline: {:.0} MB/s, ratio {:.2}",
                len as f64 / t.elapsed().as_secs_f64() / 1e6,
                len as f64 / out.len() as f64
            );
            true
        }),
        [] => {
            eprintln!("backup_cli: nothing to do (run by benches/scripts/backup_vs_shell.sh)");
            true
        }
        _ => {
            eprintln!("usage: backup_cli dump DIR default|fast|zstd | backup_cli verify FILE");
            false
        }
    };
    eprintln!("peak_rss_kib={}", peak_rss_kib());
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Single-thread speed of one level on a raw SQL file, 1 MiB members (to explain the pipeline's figures).
fn gzip_speed(file: &str, level: u32) -> bool {
    let data = std::fs::read(file).expect("read");
    let t = std::time::Instant::now();
    let out: usize =
        data.chunks(1 << 20).map(|c| resee_ops_backup::__bench::compress_block(c, level).expect("gzip").len()).sum();
    let s = t.elapsed().as_secs_f64();
    println!("level {level}: {:.0} MB/s, ratio {:.2}", data.len() as f64 / s / 1e6, data.len() as f64 / out as f64);
    true
}

/// A backup into `dir`, or (`None`) into the S3 target configured by the environment.
async fn dump(dir: Option<&str>, profile: &str) -> bool {
    let profile = match profile {
        "fast" => CompressionProfile::Fast,
        "zstd" => CompressionProfile::Zstd,
        _ => CompressionProfile::Default,
    };
    let target = match dir {
        Some(dir) => {
            LocalDirTarget::new(dir).map(|t| std::sync::Arc::new(t) as std::sync::Arc<dyn resee_ops_core::BackupTarget>)
        }
        None => S3Config::from_env().and_then(|c| {
            let c = c.ok_or_else(|| {
                resee_ops_core::Error::new(resee_ops_core::ErrorKind::InvalidConfig, "BACKUP_S3_BUCKET is not set")
            })?;
            Ok(std::sync::Arc::new(S3Target::from_config(c)?) as std::sync::Arc<dyn resee_ops_core::BackupTarget>)
        }),
    };
    let backup = target.and_then(|t| {
        let b = if std::env::var("DATABASE_URL").is_ok() {
            PgDumpBackupBuilder::from_env()?
        } else {
            PgDumpBackup::builder().with_url("postgres://postgres@127.0.0.1:5432/postgres")
        };
        let b = b.with_environment("bench").with_profile(profile).with_target(t);
        // The script also measures other levels of a profile, to choose the default by measurement.
        match std::env::var("RESEE_BACKUP_LEVEL").ok().and_then(|l| l.parse().ok()) {
            Some(level) => b.with_level(level).build(),
            None => b.build(),
        }
    });
    let backup = match backup {
        Ok(b) => b,
        Err(e) => {
            eprintln!("backup_cli: {e}");
            return false;
        }
    };
    let outcome = backup.run().await;
    println!("{}", serde_json::to_string(&outcome.report).expect("report encodes"));
    outcome.is_success()
}

async fn verify(file: &str) -> bool {
    let path = std::path::Path::new(file);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        eprintln!("backup_cli: bad path {file}");
        return false;
    };
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    let result = match (LocalDirTarget::new(dir), ArtifactName::new(name)) {
        (Ok(t), Ok(n)) => verify_artifact(&t, &n).await,
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(e),
    };
    match result {
        Ok(v) => {
            println!(
                "{{\"raw_size\":{},\"compressed_size\":{},\"manifest_checked\":{}}}",
                v.raw_size, v.compressed_size, v.manifest_checked
            );
            true
        }
        Err(e) => {
            eprintln!("backup_cli: {e}");
            false
        }
    }
}
