//! Configuration: connection parameters, name components, compression, retries.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::{BackupError, BackupErrorKind, Result};

/// A database password. Never shown: `Debug` and `Display` print `***`, and it is not serializable.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for handing to `pg_dump` through a 0600 passfile.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A validated component of an artifact name (the database or environment part).
///
/// 1 to 100 bytes; no `/` or `\`; no `..`; not starting with `.`; no control characters.
///
/// ```
/// use resee_ops_backup::NameComponent;
/// assert!(NameComponent::new("resee_dev").is_ok());
/// assert!(NameComponent::new("../etc").is_err());
/// assert!(NameComponent::new("a/b").is_err());
/// assert!(NameComponent::new("bad\u{7}name").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct NameComponent(String);

impl NameComponent {
    /// Validates `s`.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let bad =
            |why: &str| BackupError::new(BackupErrorKind::InvalidName, format!("invalid name component {s:?}: {why}"));
        if s.is_empty() || s.len() > 100 {
            return Err(bad("must be 1 to 100 bytes long"));
        }
        if s.contains(['/', '\\']) {
            return Err(bad("must not contain a path separator"));
        }
        if s.contains("..") {
            return Err(bad("must not contain '..'"));
        }
        if s.starts_with('.') {
            return Err(bad("must not start with '.'"));
        }
        if s.chars().any(char::is_control) {
            return Err(bad("must not contain control characters"));
        }
        Ok(Self(s))
    }

    /// The component as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NameComponent {
    type Error = BackupError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Debug for NameComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for NameComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where and as whom to connect. Parsed from a `postgres://` URL, the standard `PG*` variables, or built by
/// hand. `Debug` hides the password.
///
/// ```
/// use resee_ops_backup::PgConnection;
/// let c = PgConnection::from_url("postgres://app:s3cret@db.internal:6432/resee_dev?sslmode=disable").unwrap();
/// assert_eq!((c.host(), c.port(), c.user(), c.dbname()), ("db.internal", 6432, "app", "resee_dev"));
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PgConnection {
    host: String,
    port: u16,
    user: String,
    password: Option<Password>,
    dbname: String,
    sslmode: Option<String>,
}

impl PgConnection {
    /// A connection to `dbname` on `host:port` as `user`, without a password.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>, dbname: impl Into<String>) -> Self {
        Self { host: host.into(), port, user: user.into(), password: None, dbname: dbname.into(), sslmode: None }
    }

    /// Sets the password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Password::new(password));
        self
    }

    /// Sets libpq's `sslmode` (`disable`, `prefer`, `require`, ...).
    pub fn with_sslmode(mut self, mode: impl Into<String>) -> Self {
        self.sslmode = Some(mode.into());
        self
    }

    /// Replaces the database name.
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = dbname.into();
        self
    }

    /// Parses `postgres://[user[:password]@]host[:port][/dbname][?param=value&...]` (also `postgresql://`).
    /// Query parameters `host`, `port`, `user`, `password`, `dbname` and `sslmode` are understood; a
    /// Unix-socket directory may be given percent-encoded as the host (`%2Fvar%2Frun%2Fpostgresql`).
    /// The password may hold unencoded `?`, `/` and `@` (the user information ends at the last `@`); an `@`
    /// in the database name or a query value must then be percent-encoded (`%40`).
    ///
    /// Errors never repeat the URL (it may hold a password).
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: &str| BackupError::invalid_config(format!("database URL is not a valid postgres URL: {why}"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("it must start with postgres:// or postgresql://"))?;
        // The user information first, so that a password may hold an unencoded `?` or `/` (which must not
        // end up in the host, the database name, or a query parameter, and so in an error message).
        let (userinfo, rest) = match userinfo_end(rest) {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let mut conn = Self::new("localhost", 5432, default_user(), "");
        if let Some(info) = userinfo {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !user.is_empty() {
                conn.user = percent_decode(user).ok_or_else(|| bad("bad percent-encoding in the user name"))?;
            }
            if let Some(p) = password {
                conn.password =
                    Some(Password(percent_decode(p).ok_or_else(|| bad("bad percent-encoding in the password"))?));
            }
        }
        if hostport.contains(',') {
            return Err(bad("several hosts are not supported"));
        }
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            let end = stripped.find(']').ok_or_else(|| bad("unclosed '[' in the host"))?;
            let port = stripped[end + 1..].strip_prefix(':');
            (&stripped[..end], port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !host.is_empty() {
            conn.host = percent_decode(host).ok_or_else(|| bad("bad percent-encoding in the host"))?;
        }
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            conn.port = p.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        }
        if !path.is_empty() {
            conn.dbname = percent_decode(path).ok_or_else(|| bad("bad percent-encoding in the database name"))?;
        }
        for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| bad("bad percent-encoding in a query parameter"))?;
            match k {
                "host" => conn.host = v,
                "port" => conn.port = v.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?,
                "user" => conn.user = v,
                "password" => conn.password = Some(Password(v)),
                "dbname" => conn.dbname = v,
                "sslmode" => conn.sslmode = Some(v),
                "application_name" | "connect_timeout" | "options" => {}
                // Only a plain identifier is repeated: anything else may be a piece of a mistyped password.
                other if is_plain_identifier(other) => {
                    return Err(bad(&format!("unsupported query parameter {other:?}")));
                }
                _ => return Err(bad("unsupported query parameter")),
            }
        }
        if conn.dbname.is_empty() {
            conn.dbname = conn.user.clone();
        }
        conn.validate()?;
        Ok(conn)
    }

    /// `DATABASE_URL` if set, else the standard libpq variables `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE`, `PGSSLMODE` (with libpq's defaults: `localhost`, `5432`, the OS user, database = user).
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if let Some(url) = var("DATABASE_URL") {
            return Self::from_url(&url);
        }
        let user = var("PGUSER").unwrap_or_else(default_user);
        let port = match var("PGPORT") {
            Some(p) => p.parse().map_err(|_| BackupError::invalid_config("PGPORT is not a number from 1 to 65535"))?,
            None => 5432,
        };
        let mut conn = Self::new(
            var("PGHOST").unwrap_or_else(|| "localhost".into()),
            port,
            user.clone(),
            var("PGDATABASE").unwrap_or(user),
        );
        conn.password = var("PGPASSWORD").map(Password);
        conn.sslmode = var("PGSSLMODE");
        conn.validate()?;
        Ok(conn)
    }

    fn validate(&self) -> Result<()> {
        for (what, v) in [("host", &self.host), ("user", &self.user), ("database name", &self.dbname)] {
            if v.is_empty() || v.contains('\0') {
                return Err(BackupError::invalid_config(format!("the {what} must be non-empty text without NUL")));
            }
        }
        if self.port == 0 {
            return Err(BackupError::invalid_config("the port must be from 1 to 65535"));
        }
        Ok(())
    }

    /// The host name, address or Unix-socket directory.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The role name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&Password> {
        self.password.as_ref()
    }

    /// libpq's `sslmode`, if set.
    pub fn sslmode(&self) -> Option<&str> {
        self.sslmode.as_deref()
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl<'de> Deserialize<'de> for PgConnection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Parts {
            #[serde(default = "default_host")]
            host: String,
            #[serde(default = "default_port")]
            port: u16,
            #[serde(default = "default_user")]
            user: String,
            #[serde(default)]
            password: Option<Password>,
            dbname: String,
            #[serde(default)]
            sslmode: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Url(String),
            Parts(Parts),
        }
        let conn = match Repr::deserialize(d)? {
            Repr::Url(url) => return Self::from_url(&url).map_err(serde::de::Error::custom),
            Repr::Parts(p) => Self {
                host: p.host,
                port: p.port,
                user: p.user,
                password: p.password,
                dbname: p.dbname,
                sslmode: p.sslmode,
            },
        };
        conn.validate().map_err(serde::de::Error::custom)?;
        Ok(conn)
    }
}

fn default_host() -> String {
    "localhost".into()
}

fn default_port() -> u16 {
    5432
}

fn default_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "postgres".into())
}

/// Where the user information of `rest` (the URL after `scheme://`) ends: the last `@` whose user name part
/// (up to the first `:`) holds no `/`, `?` or `@`. The password may thus hold unencoded `?`, `/` and `@`;
/// an `@` in the database name or a query value must then be percent-encoded (`%40`).
fn userinfo_end(rest: &str) -> Option<usize> {
    rest.match_indices('@').map(|(i, _)| i).rev().find(|&i| {
        let info = &rest[..i];
        let user = info.split_once(':').map_or(info, |(u, _)| u);
        !user.contains(['/', '?', '@'])
    })
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes.
fn is_plain_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// How hard to compress.
///
/// Both profiles write standard gzip (`.sql.gz`, several gzip members compressed in parallel), readable by
/// `gunzip`, `gzip -t` and `zcat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CompressionProfile {
    /// gzip level 6 (as `gzip` does by default): size within a few percent of `pg_dump | gzip`.
    #[default]
    Default,
    /// gzip level 1: for very large databases, when time matters more than size.
    Fast,
}

impl CompressionProfile {
    /// The gzip level this profile uses.
    pub const fn level(self) -> u32 {
        match self {
            Self::Default => 6,
            Self::Fast => 1,
        }
    }
}

/// How often to try, and how long to wait between attempts. Only temporary errors are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in total (at least 1). Default 3.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait between attempts. Default 5 minutes.
    #[serde(default = "default_retry_delay", with = "resee_ops_core::serde_duration")]
    pub delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { attempts: default_attempts(), delay: default_retry_delay() }
    }
}

impl RetryConfig {
    /// `attempts` in total, `delay` apart.
    pub fn new(attempts: u32, delay: Duration) -> Self {
        Self { attempts: attempts.max(1), delay }
    }
}

fn default_attempts() -> u32 {
    3
}

fn default_retry_delay() -> Duration {
    Duration::from_secs(300)
}

/// The serde form of a [`PgDumpBackup`](crate::PgDumpBackup)'s settings, for configuration files.
///
/// ```
/// use resee_ops_backup::BackupConfig;
/// let cfg: BackupConfig = serde_json::from_value(serde_json::json!({
///     "connection": "postgres://backup@127.0.0.1:5432/resee_dev",
///     "environment": "production",
///     "profile": "fast",
///     "timeout": "2h",
///     "retry": { "attempts": 5, "delay": "1m" }
/// })).unwrap();
/// assert_eq!(cfg.environment.as_str(), "production");
/// assert_eq!(cfg.retry.attempts, 5);
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BackupConfig {
    /// The database to dump: a URL string or a table of `host`, `port`, `user`, `password`, `dbname`,
    /// `sslmode`.
    pub connection: PgConnection,
    /// The environment part of the artifact name. Default `development`.
    #[serde(default = "default_environment")]
    pub environment: NameComponent,
    /// The database part of the artifact name. Default: the database name.
    #[serde(default)]
    pub name: Option<NameComponent>,
    /// Compression profile. Default: gzip level 6.
    #[serde(default)]
    pub profile: CompressionProfile,
    /// Overrides the profile's gzip level (0-9).
    #[serde(default)]
    pub level: Option<u32>,
    /// Compression threads. Default: the number of CPUs, at most 4.
    #[serde(default)]
    pub threads: Option<usize>,
    /// `pg_dump` to run. Default: found on `PATH` or under `/usr/lib/postgresql/*/bin`, newest first.
    #[serde(default)]
    pub pg_dump: Option<PathBuf>,
    /// Connection timeout. Default 30 s.
    #[serde(default = "default_connect_timeout", with = "resee_ops_core::serde_duration")]
    pub connect_timeout: Duration,
    /// How long `pg_dump` waits for a table lock (`--lock-wait-timeout`). Default 5 minutes.
    #[serde(default = "default_lock_wait_timeout", with = "resee_ops_core::serde_duration")]
    pub lock_wait_timeout: Duration,
    /// Limit for one attempt, dump and verification included; `pg_dump` is killed when it passes.
    /// Default 6 hours.
    #[serde(default = "default_timeout", with = "resee_ops_core::serde_duration")]
    pub timeout: Duration,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
}

impl fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupConfig")
            .field("connection", &self.connection)
            .field("environment", &self.environment)
            .field("name", &self.name)
            .field("profile", &self.profile)
            .field("level", &self.level)
            .field("threads", &self.threads)
            .field("pg_dump", &self.pg_dump)
            .field("connect_timeout", &self.connect_timeout)
            .field("lock_wait_timeout", &self.lock_wait_timeout)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl BackupConfig {
    /// Defaults for `connection`.
    pub fn new(connection: PgConnection) -> Self {
        Self {
            connection,
            environment: default_environment(),
            name: None,
            profile: CompressionProfile::Default,
            level: None,
            threads: None,
            pg_dump: None,
            connect_timeout: default_connect_timeout(),
            lock_wait_timeout: default_lock_wait_timeout(),
            timeout: default_timeout(),
            retry: RetryConfig::default(),
        }
    }

    /// The gzip level in effect.
    pub fn effective_level(&self) -> u32 {
        self.level.unwrap_or(self.profile.level())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(l) = self.level
            && l > 9
        {
            return Err(BackupError::invalid_config(format!("gzip level {l} is out of range 0-9")));
        }
        if self.threads == Some(0) {
            return Err(BackupError::invalid_config("threads must be at least 1"));
        }
        if self.retry.attempts == 0 {
            return Err(BackupError::invalid_config("retry.attempts must be at least 1"));
        }
        for (what, d) in [("connect_timeout", self.connect_timeout), ("timeout", self.timeout)] {
            if d.is_zero() {
                return Err(BackupError::invalid_config(format!("{what} must be positive")));
            }
        }
        Ok(())
    }
}

fn default_environment() -> NameComponent {
    NameComponent("development".into())
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_lock_wait_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_timeout() -> Duration {
    Duration::from_secs(6 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let c = PgConnection::from_url("postgresql://u%40x:p%3Aw%2Fd@[::1]:5433/db%20name?sslmode=require").unwrap();
        assert_eq!(c.user(), "u@x");
        assert_eq!(c.password().unwrap().expose(), "p:w/d");
        assert_eq!(c.host(), "::1");
        assert_eq!(c.port(), 5433);
        assert_eq!(c.dbname(), "db name");
        assert_eq!(c.sslmode(), Some("require"));
        let c = PgConnection::from_url("postgres://%2Fvar%2Frun%2Fpostgresql/x?user=bob").unwrap();
        assert_eq!((c.host(), c.user(), c.dbname()), ("/var/run/postgresql", "bob", "x"));
        let c = PgConnection::from_url("postgres://alice@h").unwrap();
        assert_eq!((c.port(), c.dbname()), (5432, "alice"));
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_password() {
        for url in [
            "mysql://u:topsecret@h/db",
            "postgres://u:topsecret@h:99999/db",
            "postgres://u:topsecret@h/db?weird=1",
            "postgres://u:topsecret@h1,h2/db",
            "postgres://u:topsecret%zz@h/db",
        ] {
            let err = PgConnection::from_url(url).unwrap_err();
            assert_eq!(err.kind(), BackupErrorKind::InvalidConfig, "{url}");
            assert!(!format!("{err} {err:?}").contains("topsecret"), "{err}");
        }
    }

    #[test]
    fn unencoded_question_mark_and_slash_stay_in_the_password() {
        let c = PgConnection::from_url("postgres://app:pa?ss@db/x").unwrap();
        assert_eq!((c.user(), c.password().unwrap().expose(), c.host(), c.dbname()), ("app", "pa?ss", "db", "x"));
        let c = PgConnection::from_url("postgres://app:pa/55@db:6432/x?sslmode=disable").unwrap();
        assert_eq!((c.password().unwrap().expose(), c.host(), c.port()), ("pa/55", "db", 6432));
        assert_eq!((c.dbname(), c.sslmode()), ("x", Some("disable")));
        let c = PgConnection::from_url("postgres://app:a@b?c/d@db").unwrap();
        assert_eq!((c.password().unwrap().expose(), c.host(), c.dbname()), ("a@b?c/d", "db", "app"));
        // An `@` after the host, without user information before it, is not taken for one.
        let c = PgConnection::from_url("postgres://h/db?user=a@b").unwrap();
        assert_eq!((c.host(), c.user(), c.dbname()), ("h", "a@b", "db"));
        let c = PgConnection::from_url("postgres://u@h/db?application_name=x:y@z").unwrap();
        assert_eq!((c.host(), c.user(), c.dbname()), ("h", "u", "db"));
        for url in [
            "postgres://app:top?secret@db/x?weird=1",
            "postgres://app:top/secret@db:99999/x",
            "postgres://app:top?secret@db:port/x",
            "postgres://app:top?secret@h1,h2/x",
            "postgres://app:top?se=cret/x",
            "postgres://app:top?se/cret=1",
            "postgres://h/x?topsecret!=1",
            &format!("postgres://h/x?{}=1", "topsecret".repeat(8)),
        ] {
            let err = PgConnection::from_url(url).unwrap_err();
            assert_eq!(err.kind(), BackupErrorKind::InvalidConfig, "{url}");
            assert!(!format!("{err} {err:?}").contains("secret"), "{url}: {err}");
        }
        let err = PgConnection::from_url("postgres://h/x?weird_1=1").unwrap_err();
        assert!(err.to_string().contains("\"weird_1\""), "{err}");
        let err = PgConnection::from_url("postgres://h/x?weird-1=1").unwrap_err();
        assert!(!err.to_string().contains("weird"), "{err}");
    }

    #[test]
    fn env_prefers_database_url_then_pg_vars() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let c = PgConnection::from_vars(vars(&[("DATABASE_URL", "postgres://a@h/d"), ("PGHOST", "other")])).unwrap();
        assert_eq!((c.host(), c.dbname()), ("h", "d"));
        let c = PgConnection::from_vars(vars(&[
            ("PGHOST", "db"),
            ("PGPORT", "6000"),
            ("PGUSER", "bk"),
            ("PGPASSWORD", "pw-secret"),
        ]))
        .unwrap();
        assert_eq!((c.host(), c.port(), c.user(), c.dbname()), ("db", 6000, "bk", "bk"));
        assert_eq!(c.password().unwrap().expose(), "pw-secret");
        assert!(!format!("{c:?}").contains("pw-secret"));
        let err = PgConnection::from_vars(vars(&[("PGPORT", "x")])).unwrap_err();
        assert_eq!(err.kind(), BackupErrorKind::InvalidConfig);
    }

    #[test]
    fn config_deserializes_and_hides_the_password() {
        let cfg: BackupConfig = serde_json::from_value(serde_json::json!({
            "connection": {"host": "127.0.0.1", "user": "bk", "password": "hunter2-secret", "dbname": "resee"},
            "environment": "staging",
            "level": 9
        }))
        .unwrap();
        assert_eq!(cfg.effective_level(), 9);
        assert_eq!(cfg.retry, RetryConfig::default());
        assert!(!format!("{cfg:?}").contains("hunter2-secret"));
        let err = serde_json::from_value::<BackupConfig>(serde_json::json!({
            "connection": "postgres://x@h/d", "environment": "../prod"
        }))
        .err()
        .unwrap();
        assert!(err.to_string().contains("must not contain"), "{err}");
    }
}
