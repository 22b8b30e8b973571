//! The single-run lock: a PostgreSQL session-level advisory lock on the source database, held by a
//! dedicated `psql` session for the whole run.
//!
//! `psql` (not an in-process client) because it connects exactly as `pg_dump` does (libpq: the same TLS
//! mode, the password through a 0600 passfile), and because the session ends with the process: when this
//! process dies, `psql` reads end-of-file on its stdin and exits, and the server releases the lock.

use std::process::Stdio;
use std::time::Duration;

use resee_ops_core::{ConnectionUrl, ErrorKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};

use crate::pgdump::{self, PgDump};
use crate::{BackupError, Result};

/// The advisory lock key of a backup job: FNV-1a over `resee-ops-backup:{name prefix}`, as a signed 64-bit
/// key (`pg_try_advisory_lock(bigint)`). Stable across releases: two versions of the service must agree.
pub(crate) fn lock_key(name_prefix: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "resee-ops-backup:".bytes().chain(name_prefix.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_le_bytes(hash.to_le_bytes())
}

/// A held lock: the `psql` session that holds it. Dropping it ends the session (and kills `psql` if it does
/// not exit), which releases the lock.
#[derive(Debug)]
pub(crate) struct RunLock {
    child: Child,
    stdin: Option<ChildStdin>,
    _passfile: Option<tempfile::NamedTempFile>,
}

impl RunLock {
    /// Ends the session and waits (briefly) for `psql` to exit, so that the lock is free when this returns.
    pub(crate) async fn release(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// Tries to take the lock `key` on `conn`'s database. `Ok(None)` when another session holds it.
pub(crate) async fn try_lock(
    psql: &PgDump,
    conn: &ConnectionUrl,
    connect_timeout: Duration,
    key: i64,
) -> Result<Option<RunLock>> {
    let (mut cmd, passfile) = pgdump::libpq_command(&psql.path, conn, connect_timeout, "resee-ops-backup-lock")?;
    cmd.args(["--no-psqlrc", "--quiet", "--no-align", "--tuples-only", "--no-password", "--set", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| crate::error::cannot_start(&psql.path, e))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(BackupError::new(ErrorKind::Io, "psql started without its pipes"));
    };
    let stderr = pgdump::capture_stderr(stderr);
    let query = format!("SELECT pg_try_advisory_lock({key});\n");
    let answer = async {
        stdin.write_all(query.as_bytes()).await?;
        stdin.flush().await?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = match tokio::time::timeout(connect_timeout.saturating_add(Duration::from_secs(10)), answer).await {
        Ok(Ok(line)) => line,
        Ok(Err(_)) | Err(_) => String::new(),
    };
    match line.trim() {
        "t" => Ok(Some(RunLock { child, stdin: Some(stdin), _passfile: passfile })),
        "f" => {
            drop(stdin);
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Ok(None)
        }
        _ => {
            drop(stdin);
            let _ = child.kill().await;
            let text = tokio::time::timeout(Duration::from_secs(5), stderr).await.ok().and_then(|r| r.ok());
            let text = conn.scrub(text.unwrap_or_default());
            if text.trim().is_empty() {
                return Err(BackupError::new(
                    ErrorKind::Unavailable,
                    format!("cannot take the single-run lock on {}:{}: psql gave no answer", conn.host(), conn.port()),
                )
                .with_temporary(true));
            }
            Err(pgdump::classify("taking the single-run lock", &text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_differ_by_job() {
        assert_eq!(lock_key("resee_production_"), lock_key("resee_production_"));
        assert_ne!(lock_key("resee_production_"), lock_key("resee_staging_"));
        // Pinned: another release must compute the same key, or two versions would both run.
        assert_eq!(lock_key("resee_production_"), 7_884_716_516_783_031_810);
    }
}
