//! Finding and running `pg_dump`, and asking the server for its version.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};

use crate::{BackupError, BackupErrorKind, PgConnection, Result};

/// A PostgreSQL version, as `server_version_num` counts it (`150020` for 15.20, `90624` for 9.6.24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgVersion(u32);

impl PgVersion {
    /// From `server_version_num`.
    pub const fn from_num(num: u32) -> Self {
        Self(num)
    }

    /// Parses `15.20`, `9.6.24`, `17beta1`, or a `pg_dump --version` line
    /// (`pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let t = t.find("(PostgreSQL) ").map_or(t, |i| &t[i + "(PostgreSQL) ".len()..]);
        let word = t.split_whitespace().next()?;
        let mut parts = word.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let first = parts.next()??;
        let second = parts.next().flatten().unwrap_or(0);
        if first >= 10 {
            Some(Self(first * 10_000 + second))
        } else {
            let third = parts.next().flatten().unwrap_or(0);
            Some(Self(first * 10_000 + second * 100 + third))
        }
    }

    /// The major version: `15` for 15.20, `906` for 9.6.x. Not ordered across 10 (`906 > 15`): compare
    /// versions themselves, or their [`major_key`](Self::major_key)s.
    pub const fn major(self) -> u32 {
        if self.0 >= 100_000 { self.0 / 10_000 } else { self.0 / 100 }
    }

    /// The major version as an ordered key: `(15, 0)` for 15.20, `(9, 6)` for 9.6.x.
    pub const fn major_key(self) -> (u32, u32) {
        if self.0 >= 100_000 { (self.0 / 10_000, 0) } else { (self.0 / 10_000, self.0 / 100 % 100) }
    }

    fn major_text(self) -> String {
        if self.0 >= 100_000 {
            (self.0 / 10_000).to_string()
        } else {
            format!("{}.{}", self.0 / 10_000, self.0 / 100 % 100)
        }
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 100_000 {
            write!(f, "{}.{}", self.0 / 10_000, self.0 % 10_000)
        } else {
            write!(f, "{}.{}.{}", self.0 / 10_000, self.0 / 100 % 100, self.0 % 100)
        }
    }
}

/// A `pg_dump` binary and its version.
#[derive(Clone, Debug)]
pub(crate) struct PgDump {
    pub(crate) path: PathBuf,
    pub(crate) version: PgVersion,
}

/// Finds `pg_dump`: the configured path, else the newest of those on `PATH` and under
/// `/usr/lib/postgresql/*/bin`.
pub(crate) async fn locate(configured: Option<&Path>) -> Result<PgDump> {
    if let Some(path) = configured {
        return probe(path).await;
    }
    let mut candidates = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut majors: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok().map(|m| (m, e.path())))
            .collect();
        majors.sort_by_key(|m| std::cmp::Reverse(m.0));
        candidates.extend(majors.into_iter().map(|(_, p)| p.join("bin/pg_dump")));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join("pg_dump")));
    }
    let mut best: Option<PgDump> = None;
    for candidate in candidates.into_iter().filter(|p| p.is_file()) {
        if let Ok(found) = probe(&candidate).await
            && best.as_ref().is_none_or(|b| found.version > b.version)
        {
            best = Some(found);
        }
    }
    best.ok_or_else(|| {
        BackupError::new(
            BackupErrorKind::PgDumpNotFound,
            "pg_dump was found neither on PATH nor under /usr/lib/postgresql/*/bin: install the PostgreSQL client \
             tools (Debian/Ubuntu: apt-get install postgresql-client) or configure its path",
        )
    })
}

async fn probe(path: &Path) -> Result<PgDump> {
    // A plain blocking call on the blocking pool: `--version` returns at once, and unlike a Tokio process
    // with a Tokio timer it cannot be cut short by a paused test clock.
    let owned = path.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&owned).arg("--version").env("LC_MESSAGES", "C").stdin(Stdio::null()).output()
    })
    .await
    .map_err(|e| BackupError::new(BackupErrorKind::PgDumpNotFound, format!("pg_dump probe failed: {e}")))?
    .map_err(|e| {
        BackupError::new(BackupErrorKind::PgDumpNotFound, format!("cannot run {}: {e}", path.display())).with_source(e)
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = PgVersion::parse(&text).filter(|_| out.status.success()).ok_or_else(|| {
        BackupError::new(
            BackupErrorKind::PgDumpNotFound,
            format!("{} --version did not report a PostgreSQL version: {:?}", path.display(), text.trim()),
        )
    })?;
    Ok(PgDump { path: path.to_owned(), version })
}

/// Refuses a `pg_dump` older than the server.
pub(crate) fn check_versions(pg_dump: &PgDump, server: PgVersion) -> Result<()> {
    if pg_dump.version.major_key() >= server.major_key() {
        return Ok(());
    }
    let major = server.major_text();
    Err(BackupError::new(
        BackupErrorKind::PgDumpTooOld,
        format!(
            "pg_dump {} ({}) is older than the server (PostgreSQL {server}) and cannot dump it reliably: install the \
             PostgreSQL {major} client tools or newer (Debian/Ubuntu: apt-get install postgresql-client-{major}) \
             or point the pg_dump setting at a pg_dump {major}+",
            pg_dump.version,
            pg_dump.path.display(),
        ),
    ))
}

/// Why the version preflight must not run for `conn`, if it must not. The preflight speaks no TLS, so it
/// runs only where TLS cannot be expected anyway: `sslmode=disable`, a Unix socket, or a loopback address
/// (unless `sslmode` requires TLS). Elsewhere libpq's `pg_dump` would prefer TLS, so a plaintext preflight
/// could send the password unencrypted, or be refused by a `hostssl`-only server.
fn preflight_skip_reason(conn: &PgConnection) -> Option<&'static str> {
    match conn.sslmode() {
        Some("require" | "verify-ca" | "verify-full") => Some("sslmode requires TLS"),
        Some("disable") => None,
        _ if is_local_host(conn.host()) => None,
        _ => Some("the server is not local and TLS may be used"),
    }
}

/// A Unix-socket directory, `localhost`, or a loopback address (127.0.0.0/8, `::1`).
fn is_local_host(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Connects once and asks for the server version. Returns `None` when the preflight must not connect
/// without TLS (see [`preflight_skip_reason`]); `pg_dump` then refuses a newer server itself (see
/// [`classify`]).
pub(crate) async fn server_version(conn: &PgConnection, connect_timeout: Duration) -> Result<Option<PgVersion>> {
    if let Some(why) = preflight_skip_reason(conn) {
        tracing::debug!(
            reason = why,
            "skipping the server version preflight; pg_dump checks the server version itself"
        );
        return Ok(None);
    }
    let mut cfg = tokio_postgres::Config::new();
    if conn.host().starts_with('/') {
        cfg.host_path(conn.host());
    } else {
        cfg.host(conn.host());
    }
    cfg.port(conn.port())
        .user(conn.user())
        .dbname(conn.dbname())
        .application_name("resee-ops-backup")
        .connect_timeout(connect_timeout);
    if let Some(p) = conn.password() {
        cfg.password(p.expose());
    }
    cfg.ssl_mode(if conn.sslmode() == Some("disable") {
        tokio_postgres::config::SslMode::Disable
    } else {
        tokio_postgres::config::SslMode::Prefer
    });
    let redact = |text: String| redact(text, conn);
    let connect = tokio::time::timeout(connect_timeout, cfg.connect(tokio_postgres::NoTls)).await.map_err(|_| {
        BackupError::new(
            BackupErrorKind::Unavailable,
            format!("server {}:{} did not answer within {connect_timeout:?}", conn.host(), conn.port()),
        )
    })?;
    let (client, connection) = connect.map_err(|e| classify_pg(&e, redact(e.to_string()), conn))?;
    let task = tokio::spawn(connection);
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|e| classify_pg(&e, redact(e.to_string()), conn))?;
    drop(client);
    let _ = task.await;
    let num: i32 = row.get(0);
    Ok(Some(PgVersion::from_num(u32::try_from(num).unwrap_or(0))))
}

fn classify_pg(err: &tokio_postgres::Error, text: String, conn: &PgConnection) -> BackupError {
    use tokio_postgres::error::SqlState;
    let at = format!("{}:{} database {:?} as {:?}", conn.host(), conn.port(), conn.dbname(), conn.user());
    let kind = match err.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            BackupErrorKind::AuthFailed
        }
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => BackupErrorKind::AuthFailed,
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => BackupErrorKind::DatabaseNotFound,
        Some(c)
            if *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            BackupErrorKind::Unavailable
        }
        Some(_) => BackupErrorKind::DumpFailed,
        None if text.contains("password missing") => BackupErrorKind::AuthFailed,
        None if text.contains("invalid configuration") => BackupErrorKind::InvalidConfig,
        None => BackupErrorKind::Unavailable,
    };
    let mut text = text;
    if let Some(db) = err.as_db_error() {
        text = redact(db.message().to_owned(), conn);
    }
    BackupError::new(kind, format!("cannot connect to {at}: {text}"))
}

/// Replaces the password, wherever it appears, by `***`.
pub(crate) fn redact(text: String, conn: &PgConnection) -> String {
    match conn.password().map(|p| p.expose()).filter(|p| !p.is_empty()) {
        Some(p) if text.contains(p) => text.replace(p, "***"),
        _ => text,
    }
}

/// A running `pg_dump` with its stdout to stream and its stderr being captured.
#[derive(Debug)]
pub(crate) struct Running {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
    // Kept alive until pg_dump has exited; removed on drop.
    _passfile: Option<tempfile::NamedTempFile>,
}

const STDERR_KEEP: usize = 8 * 1024;

/// Starts `pg_dump`. The connection goes through the environment; the password, if any, through a
/// 0600 passfile named by `PGPASSFILE`; argv holds options only.
pub(crate) fn spawn(
    pg_dump: &PgDump,
    conn: &PgConnection,
    connect_timeout: Duration,
    lock_wait_timeout: Duration,
) -> Result<(Running, ChildStdout)> {
    let mut cmd = Command::new(&pg_dump.path);
    cmd.arg("--format=plain").arg("--no-password");
    if !lock_wait_timeout.is_zero() {
        cmd.arg(format!("--lock-wait-timeout={}", lock_wait_timeout.as_millis().max(1)));
    }
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGSSLMODE",
        "PGOPTIONS",
        "PGCONNECT_TIMEOUT",
        "PGAPPNAME",
        "LC_ALL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PGHOST", conn.host())
        .env("PGPORT", conn.port().to_string())
        .env("PGUSER", conn.user())
        .env("PGDATABASE", conn.dbname())
        .env("PGCONNECT_TIMEOUT", connect_timeout.as_secs().max(2).to_string())
        .env("PGAPPNAME", "resee-ops-backup")
        .env("LC_MESSAGES", "C");
    if let Some(mode) = conn.sslmode() {
        cmd.env("PGSSLMODE", mode);
    }
    let passfile = match conn.password() {
        Some(password) => {
            let file = write_passfile(password.expose())?;
            cmd.env("PGPASSFILE", file.path());
            Some(file)
        }
        None => None,
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        BackupError::new(BackupErrorKind::PgDumpNotFound, format!("cannot start {}: {e}", pg_dump.path.display()))
            .with_source(e)
    })?;
    let stdout = child.stdout.take().ok_or_else(|| BackupError::new(BackupErrorKind::Io, "pg_dump has no stdout"))?;
    let mut stderr =
        child.stderr.take().ok_or_else(|| BackupError::new(BackupErrorKind::Io, "pg_dump has no stderr"))?;
    let stderr = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * STDERR_KEEP {
                kept.drain(..kept.len() - STDERR_KEEP);
            }
        }
        if kept.len() > STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
        String::from_utf8_lossy(&kept).trim().to_owned()
    });
    Ok((Running { child, stderr, _passfile: passfile }, stdout))
}

fn write_passfile(password: &str) -> Result<tempfile::NamedTempFile> {
    // tempfile creates the file with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".resee-pgpass-")
        .tempfile()
        .map_err(|e| BackupError::io("cannot create the pg_dump passfile", e))?;
    let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
    writeln!(file, "*:*:*:*:{escaped}").map_err(|e| BackupError::io("cannot write the pg_dump passfile", e))?;
    file.flush().map_err(|e| BackupError::io("cannot write the pg_dump passfile", e))?;
    Ok(file)
}

impl Running {
    /// Waits for `pg_dump` to exit; `Ok` only for exit status 0. Errors carry its (redacted) stderr.
    pub(crate) async fn finish(mut self, conn: &PgConnection) -> Result<()> {
        let status = self.child.wait().await.map_err(|e| BackupError::io("cannot wait for pg_dump", e))?;
        let stderr = redact(self.stderr.await.unwrap_or_default(), conn);
        if status.success() {
            if !stderr.is_empty() {
                tracing::warn!(stderr = %stderr, "pg_dump succeeded with messages");
            }
            return Ok(());
        }
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("pg_dump exited with status {code}"),
            (None, Some(sig)) => format!("pg_dump was killed by signal {sig}"),
            _ => "pg_dump failed".to_owned(),
        };
        Err(classify(&how, &stderr))
    }

    /// Kills `pg_dump` and returns its stderr (after a failure elsewhere in the pipeline).
    pub(crate) async fn kill(mut self, conn: &PgConnection) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        redact(self.stderr.await.unwrap_or_default(), conn)
    }
}

/// Turns `pg_dump`'s failure and stderr (in the C locale) into a typed error.
pub(crate) fn classify(how: &str, stderr: &str) -> BackupError {
    let has = |s: &str| stderr.contains(s);
    let kind = if has("password authentication failed")
        || has("no password supplied")
        || has("authentication failed for user")
        || has("permission denied")
        || has("no pg_hba.conf entry")
    {
        BackupErrorKind::AuthFailed
    } else if has("database \"") && has("does not exist") {
        BackupErrorKind::DatabaseNotFound
    } else if has("server version mismatch") {
        BackupErrorKind::PgDumpTooOld
    } else if has("lock timeout") || has("statement timeout") || has("could not obtain lock") || has("timeout expired")
    {
        BackupErrorKind::Timeout
    } else if has("Connection refused")
        || has("could not connect")
        || has("the database system is starting up")
        || has("the database system is shutting down")
        || has("the database system is in recovery mode")
        || has("server closed the connection unexpectedly")
        || has("terminating connection due to administrator command")
        || has("Connection reset")
        || has("could not translate host name")
        || has("too many clients")
    {
        BackupErrorKind::Unavailable
    } else {
        BackupErrorKind::DumpFailed
    };
    let message = if stderr.is_empty() { how.to_owned() } else { format!("{how}: {stderr}") };
    let message = if kind == BackupErrorKind::PgDumpTooOld {
        format!("{message} (install a pg_dump at least as new as the server)")
    } else {
        message
    };
    BackupError::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        let v = PgVersion::parse("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)").unwrap();
        assert_eq!((v.major(), v.to_string()), (15, "15.20".to_owned()));
        let v = PgVersion::parse("9.6.24").unwrap();
        assert_eq!((v.major(), v.to_string()), (906, "9.6.24".to_owned()));
        assert_eq!(PgVersion::parse("17beta1").unwrap().major(), 17);
        assert!(PgVersion::parse("nonsense").is_none());
        assert_eq!(PgVersion::from_num(150020), PgVersion::parse("15.20").unwrap());
    }

    #[test]
    fn older_pg_dump_is_refused_with_what_to_install() {
        let dump = PgDump { path: "/opt/pg12/pg_dump".into(), version: PgVersion::parse("12.3").unwrap() };
        let err = check_versions(&dump, PgVersion::from_num(160004)).unwrap_err();
        assert_eq!(err.kind(), BackupErrorKind::PgDumpTooOld);
        assert!(err.message().contains("postgresql-client-16"), "{err}");
        assert!(check_versions(&dump, PgVersion::from_num(120010)).is_ok());
        let newer = PgDump { path: "/x".into(), version: PgVersion::parse("17.1").unwrap() };
        assert!(check_versions(&newer, PgVersion::from_num(150020)).is_ok());
    }

    #[test]
    fn major_versions_compare_across_10() {
        let dump = |v: &str| PgDump { path: "/x".into(), version: PgVersion::parse(v).unwrap() };
        let err = check_versions(&dump("9.6.24"), PgVersion::from_num(150020)).unwrap_err();
        assert_eq!(err.kind(), BackupErrorKind::PgDumpTooOld);
        assert!(err.message().contains("postgresql-client-15"), "{err}");
        assert!(check_versions(&dump("9.5"), PgVersion::parse("9.6.1").unwrap()).is_err());
        assert!(check_versions(&dump("9.6.2"), PgVersion::parse("9.6.24").unwrap()).is_ok());
        assert!(check_versions(&dump("10.1"), PgVersion::parse("9.6.24").unwrap()).is_ok());
        assert!(check_versions(&dump("15.2"), PgVersion::from_num(150020)).is_ok());
        assert!(check_versions(&dump("16"), PgVersion::from_num(150020)).is_ok());
        assert_eq!(PgVersion::parse("9.6.24").unwrap().major_key(), (9, 6));
        assert_eq!(PgVersion::parse("15.20").unwrap().major_key(), (15, 0));
    }

    #[test]
    fn preflight_runs_only_where_tls_is_not_expected() {
        let conn = |host: &str, mode: Option<&str>| {
            let c = PgConnection::new(host, 5432, "u", "d");
            match mode {
                Some(m) => c.with_sslmode(m),
                None => c,
            }
        };
        for host in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "localhost", "LOCALHOST", "/run/pg"] {
            for mode in [None, Some("prefer"), Some("allow"), Some("disable")] {
                assert_eq!(preflight_skip_reason(&conn(host, mode)), None, "{host} {mode:?}");
            }
            for mode in ["require", "verify-ca", "verify-full"] {
                assert!(preflight_skip_reason(&conn(host, Some(mode))).is_some(), "{host} {mode}");
            }
        }
        for host in ["db.internal", "10.0.0.5", "128.0.0.1", "::2", "localhost.example.com", "2001:db8::1"] {
            for mode in [None, Some("prefer"), Some("allow"), Some("require")] {
                assert!(preflight_skip_reason(&conn(host, mode)).is_some(), "{host} {mode:?}");
            }
            assert_eq!(preflight_skip_reason(&conn(host, Some("disable"))), None, "{host}");
        }
    }

    #[test]
    fn stderr_is_classified() {
        let c = |s: &str| classify("pg_dump exited with status 1", s);
        assert_eq!(c("FATAL:  password authentication failed for user \"x\"").kind(), BackupErrorKind::AuthFailed);
        assert_eq!(c("FATAL:  database \"nope\" does not exist").kind(), BackupErrorKind::DatabaseNotFound);
        let e = c("connection to server at \"127.0.0.1\", port 1 failed: Connection refused");
        assert_eq!(e.kind(), BackupErrorKind::Unavailable);
        assert!(e.is_temporary());
        assert!(c("FATAL:  the database system is shutting down").is_temporary());
        let e = c("pg_dump: error: aborting because of server version mismatch");
        assert_eq!(e.kind(), BackupErrorKind::PgDumpTooOld);
        assert!(!e.is_temporary());
        assert_eq!(c("pg_dump: error: query failed").kind(), BackupErrorKind::DumpFailed);
    }

    #[test]
    fn passfile_is_private_and_escaped() {
        use std::os::unix::fs::PermissionsExt;
        let f = write_passfile("a:b\\c").unwrap();
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "*:*:*:*:a\\:b\\\\c\n");
    }
}
