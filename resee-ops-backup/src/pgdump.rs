//! Finding and running `pg_dump`, and asking the server for its version.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};

use resee_ops_core::{ConnectionUrl, ErrorKind};

use crate::error;
use crate::{BackupError, Result};

/// A PostgreSQL version, as `server_version_num` counts it (`150020` for 15.20, `90624` for 9.6.24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgVersion(u32);

impl PgVersion {
    /// From `server_version_num`.
    pub const fn from_num(num: u32) -> Self {
        Self(num)
    }

    /// Parses `15.20`, `9.6.24`, `17beta1`, or a `pg_dump --version` line
    /// (`pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`). `None` for text that is not a version or
    /// does not fit `server_version_num` (`4294967295.1`, `15.10000`, `9.6.100`); never panics.
    ///
    /// ```
    /// use resee_ops_backup::PgVersion;
    /// assert_eq!(PgVersion::parse("15.20"), Some(PgVersion::from_num(150020)));
    /// assert_eq!(PgVersion::parse("4294967295.1"), None);
    /// ```
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
        // Checked: a version that does not fit `server_version_num` (`4294967295.1`, `15.10000`, `9.100`) is
        // not a version, rather than a wrapped or overflowing number.
        if first >= 10 {
            if second >= 10_000 {
                return None;
            }
            first.checked_mul(10_000)?.checked_add(second).map(Self)
        } else {
            let third = parts.next().flatten().unwrap_or(0);
            if second >= 100 || third >= 100 {
                return None;
            }
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
    locate_tool("pg_dump", configured).await
}

/// Finds a PostgreSQL client tool (`pg_dump`, `psql`) as [`locate`] does.
pub(crate) async fn locate_tool(tool: &str, configured: Option<&Path>) -> Result<PgDump> {
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
        candidates.extend(majors.into_iter().map(|(_, p)| p.join("bin").join(tool)));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join(tool)));
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
        error::pg_dump_not_found(format!(
            "{tool} was found neither on PATH nor under /usr/lib/postgresql/*/bin: install the PostgreSQL \
             client tools (Debian/Ubuntu: apt-get install postgresql-client) or configure its path"
        ))
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
    .map_err(|e| error::pg_dump_not_found(format!("pg_dump probe failed: {e}")))?
    .map_err(|e| error::cannot_start(path, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = PgVersion::parse(&text).filter(|_| out.status.success()).ok_or_else(|| {
        error::pg_dump_not_found(format!(
            "{} --version did not report a PostgreSQL version: {:?}",
            path.display(),
            text.trim()
        ))
    })?;
    Ok(PgDump { path: path.to_owned(), version })
}

/// Refuses a `pg_dump` older than the server.
pub(crate) fn check_versions(pg_dump: &PgDump, server: PgVersion) -> Result<()> {
    if pg_dump.version.major_key() >= server.major_key() {
        return Ok(());
    }
    let major = server.major_text();
    Err(error::pg_dump_too_old(format!(
        "pg_dump {} ({}) is older than the server (PostgreSQL {server}) and cannot dump it reliably: install the \
             PostgreSQL {major} client tools or newer (Debian/Ubuntu: apt-get install postgresql-client-{major}) \
             or point the pg_dump setting at a pg_dump {major}+",
        pg_dump.version,
        pg_dump.path.display(),
    )))
}

/// The preflight: connects once, the way `pg_dump` will (the same host, user, database and TLS mode,
/// through [`resee_ops_monitor::postgres::PgConnector`]), asks for the server version, and checks that the role can
/// read everything `pg_dump` must dump (see [`UNREADABLE`]). Errors are classified by SQLSTATE (see
/// [`classify_pg`]), so a server whose `lc_messages` is not English classifies the same.
pub(crate) async fn preflight(conn: &ConnectionUrl, connect_timeout: Duration) -> Result<PgVersion> {
    let connector = resee_ops_monitor::postgres::PgConnector::new(conn, connect_timeout, "resee-ops-backup")?;
    let work = async {
        let c = connector.connect().await.map_err(|e| classify_pg(&e, conn))?;
        let row = c
            .client()
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await
            .map_err(|e| classify_pg(&e, conn))?;
        let num: i32 = row.get(0);
        let unreadable = c.client().query(UNREADABLE, &[]).await.map_err(|e| classify_pg(&e, conn))?;
        if !unreadable.is_empty() {
            let names: Vec<String> = unreadable.iter().map(|r| r.get::<_, String>(0)).collect();
            return Err(unreadable_error(conn, &names));
        }
        Ok(PgVersion::from_num(u32::try_from(num).unwrap_or(0)))
    };
    tokio::time::timeout(connect_timeout.saturating_mul(2), work).await.map_err(|_| {
        BackupError::new(
            ErrorKind::Unavailable,
            format!("server {}:{} did not answer within {connect_timeout:?}", conn.host(), conn.port()),
        )
        .with_temporary(true)
    })?
}

/// What the role cannot read of what `pg_dump` dumps: schemas without `USAGE`, tables (plain and
/// partitioned) and sequences without `SELECT`, in the schemas `pg_dump` dumps (not the system's, not
/// objects of extensions). At most 10 names, `schema.name`.
const UNREADABLE: &str = "\
SELECT format('%I.%I', n.nspname, c.relname) \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind IN ('r', 'p', 'S') \
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') \
  AND (NOT has_schema_privilege(n.oid, 'USAGE') OR NOT has_table_privilege(c.oid, 'SELECT')) \
ORDER BY 1 LIMIT 10";

/// The permanent error for a role that cannot read `names`: `pg_dump` would fail on them with SQLSTATE
/// 42501 after a partial dump; the preflight says it before dumping, with the same code.
fn unreadable_error(conn: &ConnectionUrl, names: &[String]) -> BackupError {
    let user = conn.user().unwrap_or("");
    classify_sqlstate(
        "42501",
        format!(
            "role {user:?} cannot read what pg_dump must dump in database {:?} on {}:{} (no SELECT, or no USAGE on \
             the schema): {}{}; grant it (GRANT SELECT ON ALL TABLES IN SCHEMA … / GRANT USAGE ON SCHEMA …) or \
             back up as a role that can, e.g. one with pg_read_all_data",
            conn.database(),
            conn.host(),
            conn.port(),
            names.join(", "),
            if names.len() >= 10 { ", …" } else { "" },
        ),
    )
}

/// Classifies a connection or query error of the preflight by its SQLSTATE, never by its text (which
/// comes in the server's `lc_messages` language). Temporary unless the cause is known to be permanent:
/// a refused login (class 28), a missing database (3D000), a missing privilege (42501), or a
/// configuration the client itself rejects.
fn classify_pg(err: &tokio_postgres::Error, conn: &ConnectionUrl) -> BackupError {
    let at =
        format!("{}:{} database {:?} as {:?}", conn.host(), conn.port(), conn.database(), conn.user().unwrap_or(""));
    if let Some(tls) = resee_ops_monitor::postgres::tls_error(err, conn) {
        // A refused certificate or a server without TLS: permanent, whatever the server's language.
        return BackupError::new(tls.kind(), conn.scrub(format!("cannot connect to {at}: {}", tls.message())))
            .with_temporary(false)
            .with_code(tls.code().unwrap_or_default());
    }
    let text = match err.as_db_error() {
        Some(db) => conn.scrub(db.message()),
        None => conn.scrub(resee_ops_monitor::postgres::with_causes(err)),
    };
    let message = format!("cannot connect to {at}: {text}");
    let Some(code) = err.code() else {
        // No SQLSTATE: the client's own error (refused or reset connection, timeout), or a configuration
        // tokio-postgres rejects before connecting.
        return if text.contains("invalid configuration") || text.contains("password missing") {
            BackupError::new(ErrorKind::InvalidConfig, message)
        } else {
            BackupError::new(ErrorKind::Unavailable, message).with_temporary(true)
        };
    };
    classify_sqlstate(code.code(), message)
}

/// The kind and temporariness for a SQLSTATE; see [`classify_pg`].
pub(crate) fn classify_sqlstate(code: &str, message: String) -> BackupError {
    let err = match code {
        c if c.starts_with("28") => BackupError::new(ErrorKind::PermissionDenied, message).with_temporary(false),
        "42501" => BackupError::new(ErrorKind::PermissionDenied, message).with_temporary(false),
        "3D000" => BackupError::new(ErrorKind::NotFound, message).with_temporary(false),
        // Connection exceptions, too many connections, starting up / shutting down, recovery conflicts
        // (40001), deadlocks, and anything not known to be permanent: try again later.
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => {
            BackupError::new(ErrorKind::Unavailable, message).with_temporary(true)
        }
        _ => BackupError::new(ErrorKind::Unexpected, message).with_temporary(true),
    };
    err.with_code(code)
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
    conn: &ConnectionUrl,
    connect_timeout: Duration,
    lock_wait_timeout: Duration,
) -> Result<(Running, ChildStdout)> {
    let (mut cmd, passfile) = libpq_command(&pg_dump.path, conn, connect_timeout, "resee-ops-backup")?;
    cmd.arg("--format=plain").arg("--no-password");
    if let Some(arg) = lock_wait_arg(lock_wait_timeout) {
        cmd.arg(arg);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| error::cannot_start(&pg_dump.path, e))?;
    let stdout = child.stdout.take().ok_or_else(|| BackupError::new(ErrorKind::Io, "pg_dump has no stdout"))?;
    let stderr = child.stderr.take().ok_or_else(|| BackupError::new(ErrorKind::Io, "pg_dump has no stderr"))?;
    let stderr = capture_stderr(stderr);
    Ok((Running { child, stderr, _passfile: passfile }, stdout))
}

/// `--lock-wait-timeout` for `lock_wait_timeout`, or none (no limit) for zero and for anything past what the
/// server's timeout settings hold (`i32::MAX` ms, about 24.8 days; `Duration::MAX` included): pg_dump sets
/// it as a server setting and would fail on "Value exceeds integer range".
fn lock_wait_arg(lock_wait_timeout: Duration) -> Option<String> {
    let ms = lock_wait_timeout.as_millis().max(1);
    (!lock_wait_timeout.is_zero() && ms <= i32::MAX as u128).then(|| format!("--lock-wait-timeout={ms}"))
}

/// Keeps the last 8 KiB of a child's stderr, as text, once it closes.
pub(crate) fn capture_stderr(mut stderr: tokio::process::ChildStderr) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
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
    })
}

/// A command for a libpq client tool (`pg_dump`, `psql`) connecting as `conn` says. The connection goes
/// through the environment (inherited `PG*` variables are removed first); the password, if any, through a
/// 0600 passfile named by `PGPASSFILE`, which must be kept alive until the process exits. argv holds options
/// only.
pub(crate) fn libpq_command(
    program: &Path,
    conn: &ConnectionUrl,
    connect_timeout: Duration,
    application: &str,
) -> Result<(Command, Option<tempfile::NamedTempFile>)> {
    let mut cmd = Command::new(program);
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
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGTARGETSESSIONATTRS",
        "PGCHANNELBINDING",
        "PGOPTIONS",
        "PGCONNECT_TIMEOUT",
        "PGAPPNAME",
        "LC_ALL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PGHOST", conn.host())
        .env("PGPORT", conn.port().to_string())
        .env("PGDATABASE", conn.database())
        .env("PGCONNECT_TIMEOUT", connect_timeout_env(connect_timeout))
        .env("PGAPPNAME", conn.param("application_name").unwrap_or(application))
        .env("LC_MESSAGES", "C");
    if let Some(user) = conn.user() {
        cmd.env("PGUSER", user);
    }
    // The same connection the preflight used: every parameter core's ConnectionUrl accepts has its libpq
    // variable.
    for (param, var) in [
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
        ("options", "PGOPTIONS"),
        ("target_session_attrs", "PGTARGETSESSIONATTRS"),
        ("channel_binding", "PGCHANNELBINDING"),
    ] {
        if let Some(v) = conn.param(param) {
            cmd.env(var, v);
        }
    }
    let passfile = match conn.password() {
        Some(password) => {
            let file = write_passfile(password.expose())?;
            cmd.env("PGPASSFILE", file.path());
            Some(file)
        }
        None => None,
    };
    Ok((cmd, passfile))
}

/// `PGCONNECT_TIMEOUT` for `connect_timeout`: whole seconds, at least 2 (libpq's own floor); `0` (libpq's "wait
/// indefinitely") past what libpq's `int` holds, `Duration::MAX` included: libpq refuses a larger number.
fn connect_timeout_env(connect_timeout: Duration) -> String {
    match connect_timeout.as_secs() {
        s if s > i32::MAX as u64 => "0".to_owned(),
        s => s.max(2).to_string(),
    }
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
    pub(crate) async fn finish(mut self, conn: &ConnectionUrl) -> Result<()> {
        let status = self.child.wait().await.map_err(|e| BackupError::io("cannot wait for pg_dump", e))?;
        let stderr = conn.scrub(self.stderr.await.unwrap_or_default());
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
    pub(crate) async fn kill(mut self, conn: &ConnectionUrl) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        conn.scrub(self.stderr.await.unwrap_or_default())
    }
}

/// Turns `pg_dump`'s failure into a typed error: temporary unless `pg_dump` itself (in the C locale, as
/// it is run) says it is older than the server. Messages the server sent are in the server's
/// `lc_messages` language, so they are never matched: the permanent causes a server reports (refused
/// login, missing database, missing privilege) are found by the preflight, by SQLSTATE, before `pg_dump`
/// runs.
pub(crate) fn classify(how: &str, stderr: &str) -> BackupError {
    let message = if stderr.is_empty() { how.to_owned() } else { format!("{how}: {stderr}") };
    if stderr.contains("aborting because of server version mismatch") {
        return error::pg_dump_too_old(format!("{message} (install a pg_dump at least as new as the server)"));
    }
    BackupError::new(ErrorKind::Unexpected, message).with_temporary(true).with_code(error::codes::DUMP_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Point 19: a `pg_dump` that cannot be started prints the OS error once: it is the source, not also
    /// part of the message.
    #[tokio::test]
    async fn a_pg_dump_that_cannot_start_prints_its_cause_once() {
        use std::error::Error as _;
        let err = locate(Some(Path::new("/nonexistent/resee-ops/pg_dump"))).await.unwrap_err();
        assert_eq!(err.code(), Some(error::codes::PG_DUMP_NOT_FOUND));
        let cause = err.source().expect("the OS error is the source").to_string();
        assert!(!err.to_string().contains(&cause), "the cause is in the message too: {err}");
        let chain = format!("{err:#}");
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert_eq!(
            chain,
            format!("not_found: cannot start /nonexistent/resee-ops/pg_dump (pg_dump_not_found): {cause}")
        );
    }

    /// Point 14: a lock wait past what the server's timeout settings hold (`Duration::MAX` included) is no
    /// limit, not an argument pg_dump would fail on.
    #[test]
    fn lock_wait_timeouts_past_the_servers_range_are_no_limit() {
        let arg = |ms: u64| lock_wait_arg(Duration::from_millis(ms));
        assert_eq!(lock_wait_arg(Duration::from_secs(300)).as_deref(), Some("--lock-wait-timeout=300000"));
        assert_eq!(lock_wait_arg(Duration::from_micros(10)).as_deref(), Some("--lock-wait-timeout=1"));
        assert_eq!(arg(i32::MAX as u64).as_deref(), Some("--lock-wait-timeout=2147483647"));
        assert_eq!(arg(i32::MAX as u64 + 1), None);
        assert_eq!(lock_wait_arg(Duration::MAX), None);
        assert_eq!(lock_wait_arg(Duration::ZERO), None);
    }

    /// Point 14: libpq refuses a `connect_timeout` past `i32::MAX`; such a timeout (`Duration::MAX`) is no
    /// limit (`0`).
    #[test]
    fn connect_timeouts_past_libpqs_range_are_no_limit() {
        assert_eq!(connect_timeout_env(Duration::from_secs(30)), "30");
        assert_eq!(connect_timeout_env(Duration::from_millis(10)), "2");
        assert_eq!(connect_timeout_env(Duration::from_secs(i32::MAX as u64)), "2147483647");
        assert_eq!(connect_timeout_env(Duration::from_secs(i32::MAX as u64 + 1)), "0");
        assert_eq!(connect_timeout_env(Duration::MAX), "0");
    }

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
        assert_eq!(err.code(), Some(crate::error::codes::PG_DUMP_TOO_OLD));
        assert!(err.message().contains("postgresql-client-16"), "{err}");
        assert!(check_versions(&dump, PgVersion::from_num(120010)).is_ok());
        let newer = PgDump { path: "/x".into(), version: PgVersion::parse("17.1").unwrap() };
        assert!(check_versions(&newer, PgVersion::from_num(150020)).is_ok());
    }

    #[test]
    fn major_versions_compare_across_10() {
        let dump = |v: &str| PgDump { path: "/x".into(), version: PgVersion::parse(v).unwrap() };
        let err = check_versions(&dump("9.6.24"), PgVersion::from_num(150020)).unwrap_err();
        assert_eq!(err.code(), Some(crate::error::codes::PG_DUMP_TOO_OLD));
        assert!(err.message().contains("postgresql-client-15"), "{err}");
        assert!(check_versions(&dump("9.5"), PgVersion::parse("9.6.1").unwrap()).is_err());
        assert!(check_versions(&dump("9.6.2"), PgVersion::parse("9.6.24").unwrap()).is_ok());
        assert!(check_versions(&dump("10.1"), PgVersion::parse("9.6.24").unwrap()).is_ok());
        assert!(check_versions(&dump("15.2"), PgVersion::from_num(150020)).is_ok());
        assert!(check_versions(&dump("16"), PgVersion::from_num(150020)).is_ok());
        assert_eq!(PgVersion::parse("9.6.24").unwrap().major_key(), (9, 6));
        assert_eq!(PgVersion::parse("15.20").unwrap().major_key(), (15, 0));
    }

    /// Point 6: pg_dump failures are temporary by default; its stderr (partly in the server's language)
    /// decides nothing but the client-side version mismatch.
    #[test]
    fn pg_dump_failures_are_temporary_unless_it_is_too_old() {
        let c = |s: &str| classify("pg_dump exited with status 1", s);
        for stderr in [
            "FATAL:  password authentication failed for user \"x\"",
            "FATAL:  사용자 \"x\"의 password 인증을 실패했습니다",
            "connection to server at \"127.0.0.1\", port 1 failed: Connection refused",
            "FATAL:  sorry, too many clients already",
            "FATAL:  the database system is not yet accepting connections",
            "pg_dump: error: query failed: server closed the connection unexpectedly",
            "pg_dump: error: query failed: SSL SYSCALL error: EOF detected",
            "ERROR:  canceling statement due to conflict with recovery",
            "",
        ] {
            let e = c(stderr);
            assert!(e.is_temporary(), "{stderr}");
            assert_eq!(e.code(), Some(crate::error::codes::DUMP_FAILED));
        }
        let e = c("pg_dump: error: aborting because of server version mismatch");
        assert_eq!((e.kind(), e.code()), (ErrorKind::InvalidConfig, Some(crate::error::codes::PG_DUMP_TOO_OLD)));
        assert!(!e.is_temporary());
    }

    #[test]
    fn sqlstates_are_classified_permanent_only_for_known_causes() {
        let c = |code: &str| classify_sqlstate(code, "m".into());
        for (code, kind) in [
            ("28P01", ErrorKind::PermissionDenied),
            ("28000", ErrorKind::PermissionDenied),
            ("42501", ErrorKind::PermissionDenied),
            ("3D000", ErrorKind::NotFound),
        ] {
            let e = c(code);
            assert_eq!((e.kind(), e.is_temporary(), e.code()), (kind, false, Some(code)), "{code}");
        }
        for code in ["53300", "57P03", "57P01", "08006", "40001", "40P01", "XX000", "55P03"] {
            assert!(c(code).is_temporary(), "{code}");
        }
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
