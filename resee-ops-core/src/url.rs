//! [`ConnectionUrl`]: the one connection-string type of the workspace, for PostgreSQL and Redis.
//!
//! Backups (`pg_dump` and its preflight), the PostgreSQL probe and the Redis probes all take a
//! `ConnectionUrl`, so one `DATABASE_URL` means the same host, user, database and TLS mode everywhere. The
//! string is parsed once, here; clients are configured from the parsed parts, never from the raw text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, ErrorKind, Result, Secret};

/// What a [`ConnectionUrl`] connects to.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// PostgreSQL: `postgres://`, `postgresql://` or a libpq `key=value` string.
    Postgres,
    /// Redis over plain TCP: `redis://`.
    Redis,
    /// Redis over TLS: `rediss://`.
    RedisTls,
    /// Redis over a Unix socket: `redis+unix://` or `unix://`.
    RedisUnix,
}

impl Scheme {
    /// The port used when the URL names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Redis | Self::RedisTls | Self::RedisUnix => 6379,
        }
    }

    const fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::RedisTls => "rediss",
            Self::RedisUnix => "redis+unix",
        }
    }
}

/// How TLS is used, in libpq's terms (`sslmode`). `rediss://` means [`VerifyFull`](Self::VerifyFull).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS if the server offers it, else plain (libpq's default).
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS, the certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, the certificate signed by a trusted CA and naming the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's names (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is refused.
    pub const fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The query parameters / keywords PostgreSQL URLs may carry besides host, port, user, password and dbname.
/// libpq refuses unknown ones, and so does this parser.
const PG_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "connect_timeout",
    "options",
    "target_session_attrs",
    "channel_binding",
    "keepalives",
    "keepalives_idle",
];

/// A parsed connection string for PostgreSQL or Redis whose `Debug`, `Display` and `Serialize` never show
/// the password.
///
/// Accepted forms:
/// - `postgres://[user[:password]@][host][:port][/dbname][?param=value&...]` (also `postgresql://`); a
///   Unix-socket directory as a percent-encoded host (`%2Fvar%2Frun%2Fpostgresql`) or `?host=/dir`;
/// - libpq's `key=value` form: `host=db user=app password='se cret' dbname=app sslmode=require`;
/// - `redis://[user][:password@]host[:port][/db]`, `rediss://…` (TLS), `redis+unix:///path?db=0`.
///
/// Components are percent-decoded. The user information ends at the last `@` whose user-name part holds
/// no `/`, `?` or `@`, so a password may hold unencoded `?`, `/`, `#` and `@`. Unknown PostgreSQL
/// parameters, several hosts, bad ports and bad percent-encoding are [`ErrorKind::InvalidConfig`]
/// errors whose message never repeats the string. Unset parts take libpq's / Redis's defaults when
/// parsing: host `localhost`, port 5432 / 6379, user `$USER` (else `postgres`), database = user / `0`.
///
/// ```
/// use resee_ops_core::{ConnectionUrl, Scheme, SslMode};
///
/// let url: ConnectionUrl = "postgres://app:hunter%232@db.internal/app?sslmode=verify-full".parse().unwrap();
/// assert_eq!((url.scheme(), url.host(), url.port(), url.database()), (Scheme::Postgres, "db.internal", 5432, "app"));
/// assert_eq!(url.password().unwrap().expose(), "hunter#2");
/// assert_eq!(url.ssl_mode(), SslMode::VerifyFull);
/// assert_eq!(url.redacted(), "postgres://app:***@db.internal:5432/app?sslmode=verify-full");
/// assert!(!format!("{url} {url:?}").contains("hunter"));
///
/// // The libpq key=value form means the same.
/// let kv: ConnectionUrl = "host=db.internal user=app password='hunter#2' dbname=app sslmode=verify-full".parse().unwrap();
/// assert_eq!(kv, url);
///
/// let err = "postgres://app:hunter2@db:99999/app".parse::<ConnectionUrl>().unwrap_err();
/// assert!(!err.to_string().contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Secret>,
    database: String,
    params: Vec<(String, String)>,
}

fn invalid(why: impl fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidConfig, format!("invalid connection string: {why}"))
}

impl ConnectionUrl {
    /// Parses a connection string; see the [type docs](Self) for the forms.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        let Some((scheme, rest)) = split_scheme(s) else {
            return parse_key_value(s);
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => parse_postgres_url(rest),
            "redis" => parse_redis_url(Scheme::Redis, rest),
            "rediss" => parse_redis_url(Scheme::RedisTls, rest),
            "redis+unix" | "unix" => parse_redis_unix(rest),
            _ => Err(invalid("the scheme must be postgres://, postgresql://, redis://, rediss:// or redis+unix://")),
        }
    }

    /// A PostgreSQL connection to `database` on `host:port` as `user`, without a password.
    pub fn postgres(host: impl Into<String>, port: u16, user: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            scheme: Scheme::Postgres,
            host: host.into(),
            port,
            user: Some(user.into()),
            password: None,
            database: database.into(),
            params: Vec::new(),
        }
    }

    /// A PostgreSQL connection from `DATABASE_URL`, else from libpq's variables (`PGHOST`, `PGPORT`,
    /// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, with libpq's defaults for those unset) when at
    /// least `PGHOST` or `PGDATABASE` is set. Otherwise an [`ErrorKind::InvalidConfig`] error: a library
    /// never picks a database on its own.
    pub fn postgres_from_env() -> Result<Self> {
        Self::postgres_from_lookup(|k| std::env::var(k).ok())
    }

    /// [`postgres_from_env`](Self::postgres_from_env) reading variables through `var` (for tests and
    /// other configuration sources). Empty values count as unset.
    pub fn postgres_from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        if let Some(url) = var("DATABASE_URL") {
            let url = Self::parse(&url).map_err(|e| invalid(format!("DATABASE_URL: {}", e.message())))?;
            if url.scheme != Scheme::Postgres {
                return Err(invalid("DATABASE_URL must be a PostgreSQL connection string"));
            }
            return Ok(url);
        }
        if var("PGHOST").is_none() && var("PGDATABASE").is_none() {
            return Err(invalid("DATABASE_URL is not set (nor PGHOST or PGDATABASE)"));
        }
        let port = match var("PGPORT") {
            Some(p) => parse_port(&p).map_err(|_| invalid("PGPORT is not a number from 1 to 65535"))?,
            None => 5432,
        };
        let user = var("PGUSER").unwrap_or_else(default_user);
        let database = var("PGDATABASE").unwrap_or_else(|| user.clone());
        let mut url = Self::postgres(var("PGHOST").unwrap_or_else(|| "localhost".into()), port, user, database);
        url.password = var("PGPASSWORD").map(Secret::new);
        if let Some(mode) = var("PGSSLMODE") {
            url.set_param("sslmode", mode)?;
        }
        url.validate()?;
        Ok(url)
    }

    /// The URL in the environment variable `name`; an [`ErrorKind::InvalidConfig`] error when it is unset,
    /// empty or malformed (the message names the variable, never its value).
    pub fn from_env_var(name: &str) -> Result<Self> {
        let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let value = value.ok_or_else(|| invalid(format!("{name} is not set")))?;
        Self::parse(&value).map_err(|e| invalid(format!("{name}: {}", e.message())))
    }

    /// Sets the password.
    pub fn with_password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the TLS mode (`sslmode` for PostgreSQL).
    pub fn with_ssl_mode(mut self, mode: SslMode) -> Self {
        self.params.retain(|(k, _)| k != "sslmode");
        self.params.push(("sslmode".into(), mode.as_str().into()));
        self
    }

    /// Replaces the database (name for PostgreSQL, number for Redis).
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// Sets a parameter (`application_name`, `sslrootcert`, …); unknown PostgreSQL parameters are refused.
    pub fn with_param(mut self, key: &str, value: impl Into<String>) -> Result<Self> {
        self.set_param(key, value.into())?;
        Ok(self)
    }

    /// What it connects to.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name, address, or Unix-socket path (directory for PostgreSQL, socket for Redis).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the host is a Unix-socket path.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user (role) name, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// The database: its name for PostgreSQL, its number for Redis (`0` by default).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// A parameter's value (`sslmode`, `application_name`, …), percent-decoded.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every parameter other than host, port, user, password and database, in order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The TLS mode: `sslmode` (default `prefer`) for PostgreSQL; for `rediss://` its `sslmode` (`require`,
    /// `verify-ca` or the default `verify-full`); `disable` for other Redis URLs.
    pub fn ssl_mode(&self) -> SslMode {
        match self.scheme {
            Scheme::Postgres => self.param("sslmode").and_then(SslMode::parse).unwrap_or(SslMode::Prefer),
            Scheme::RedisTls => self.param("sslmode").and_then(SslMode::parse).unwrap_or(SslMode::VerifyFull),
            Scheme::Redis | Scheme::RedisUnix => SslMode::Disable,
        }
    }

    /// `host:port/database`: where it connects, without user or password.
    pub fn target(&self) -> String {
        match self.scheme {
            Scheme::RedisUnix => format!("{}/{}", self.host, self.database),
            _ if self.host.contains(':') => format!("[{}]:{}/{}", self.host, self.port, self.database),
            _ => format!("{}:{}/{}", self.host, self.port, self.database),
        }
    }

    /// The canonical URL with every password replaced by `***`.
    pub fn redacted(&self) -> String {
        self.render(false)
    }

    /// The canonical URL, password included (percent-encoded): only for handing to a client library that
    /// takes a URL string.
    pub fn expose(&self) -> String {
        self.render(true)
    }

    /// `text` with every occurrence of the password (as is and percent-encoded) replaced by `***`: for
    /// messages from client libraries and tools, which may echo it.
    pub fn scrub(&self, text: impl Into<String>) -> String {
        let mut text = text.into();
        if let Some(pw) = self.password.as_ref().map(Secret::expose).filter(|p| !p.is_empty()) {
            let mut forms = vec![pw.to_owned(), encode(pw)];
            forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
            for form in forms {
                if text.contains(&form) {
                    text = text.replace(&form, "***");
                }
            }
        }
        text
    }

    fn render(&self, show_password: bool) -> String {
        let pw = |p: &Secret| if show_password { encode(p.expose()) } else { "***".to_owned() };
        let mut out = format!("{}://", self.scheme.as_str());
        let mut query: Vec<(String, String)> = Vec::new();
        if self.scheme == Scheme::RedisUnix {
            out.push_str(&self.host);
            query.push(("db".into(), self.database.clone()));
            if let Some(u) = &self.user {
                query.push(("user".into(), u.clone()));
            }
            if let Some(p) = &self.password {
                query.push(("pass".into(), p.expose().to_owned()));
            }
        } else {
            if self.user.is_some() || self.password.is_some() {
                out.push_str(&encode(self.user.as_deref().unwrap_or("")));
                if let Some(p) = &self.password {
                    out.push(':');
                    out.push_str(&pw(p));
                }
                out.push('@');
            }
            if self.host.contains(':') {
                out.push_str(&format!("[{}]", self.host));
            } else {
                out.push_str(&encode(&self.host));
            }
            out.push_str(&format!(":{}/{}", self.port, encode(&self.database)));
        }
        query.extend(self.params.iter().cloned());
        for (i, (k, v)) in query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&encode(k));
            out.push('=');
            if k == "pass" && !show_password {
                out.push_str("***");
            } else {
                out.push_str(&encode(v));
            }
        }
        out
    }

    fn set_param(&mut self, key: &str, value: String) -> Result<()> {
        // libpq's keywords are case-sensitive (an unknown one is refused); Redis URL parameters are not.
        let lower;
        let key = if self.scheme == Scheme::Postgres {
            key
        } else {
            lower = key.to_ascii_lowercase();
            lower.as_str()
        };
        match (self.scheme, key) {
            (_, "host") => self.host = value,
            (_, "port") => self.port = parse_port(&value)?,
            (_, "user" | "username") => self.user = Some(value),
            (_, "password" | "pass") => self.password = Some(Secret::new(value)),
            (Scheme::Postgres, "dbname") | (Scheme::Redis | Scheme::RedisTls | Scheme::RedisUnix, "db") => {
                self.database = value
            }
            (Scheme::Postgres, k) if PG_PARAMS.contains(&k) => {
                if k == "sslmode" && SslMode::parse(&value).is_none() {
                    return Err(invalid("sslmode must be disable, allow, prefer, require, verify-ca or verify-full"));
                }
                if k == "connect_timeout" && value.trim().parse::<u32>().is_err() {
                    return Err(invalid("connect_timeout must be a whole number of seconds"));
                }
                self.params.retain(|(p, _)| p != k);
                self.params.push((k.to_owned(), value));
            }
            (Scheme::Postgres, k) => {
                // Only a plain identifier is repeated: anything else may be a piece of a mistyped password.
                return Err(if is_plain_identifier(k) {
                    invalid(format!("unsupported parameter {k:?}"))
                } else {
                    invalid("unsupported parameter")
                });
            }
            (_, k) => {
                self.params.retain(|(p, _)| p != k);
                self.params.push((k.to_owned(), value));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if self.host.is_empty() || self.host.contains(['\0', ',']) {
            return Err(invalid(if self.host.contains(',') {
                "several hosts are not supported"
            } else {
                "the host must be non-empty text without NUL"
            }));
        }
        if self.port == 0 {
            return Err(invalid("the port must be from 1 to 65535"));
        }
        let fields = [("user name", self.user.as_deref().unwrap_or("x")), ("database", &self.database)];
        for (what, v) in fields {
            if v.is_empty() || v.contains('\0') {
                return Err(invalid(format!("the {what} must be non-empty text without NUL")));
            }
        }
        if self.scheme != Scheme::Postgres && self.database.parse::<u32>().is_err() {
            return Err(invalid("the Redis database must be a number"));
        }
        if self.scheme != Scheme::Postgres {
            self.validate_redis_tls()?;
        }
        Ok(())
    }
}

impl ConnectionUrl {
    /// Redis takes libpq's TLS parameter names; TLS is chosen by the scheme (`rediss://`), so `sslmode`
    /// only says how much of the certificate is checked.
    fn validate_redis_tls(&self) -> Result<()> {
        let mode =
            match self.param("sslmode") {
                Some(m) => Some(SslMode::parse(m).ok_or_else(|| {
                    invalid("sslmode must be disable, allow, prefer, require, verify-ca or verify-full")
                })?),
                None => None,
            };
        let tls_params = ["sslrootcert", "sslcert", "sslkey"].iter().any(|p| self.param(p).is_some());
        if self.scheme == Scheme::RedisTls {
            if mode.is_some_and(|m| !m.requires_tls()) {
                return Err(invalid("rediss:// always uses TLS: sslmode must be require, verify-ca or verify-full"));
            }
        } else if mode.is_some_and(SslMode::requires_tls) || tls_params {
            return Err(invalid("TLS parameters need a rediss:// URL"));
        }
        Ok(())
    }
}

/// `(scheme, rest)` if `s` starts with `scheme://`; a `key=value` string containing `://` later is none.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some((scheme, rest))
}

/// Where the user information of `rest` (after `scheme://`) ends: the last `@` whose user-name part (up
/// to the first `:`) holds no `/`, `?` or `@`.
fn userinfo_end(rest: &str) -> Option<usize> {
    rest.match_indices('@').map(|(i, _)| i).rev().find(|&i| {
        let info = &rest[..i];
        let user = info.split_once(':').map_or(info, |(u, _)| u);
        !user.contains(['/', '?', '@', '#'])
    })
}

/// Splits `user[:password]@` off `rest`.
fn split_userinfo(rest: &str) -> Result<(Option<String>, Option<Secret>, &str)> {
    let Some(i) = userinfo_end(rest) else { return Ok((None, None, rest)) };
    let info = &rest[..i];
    let (user, password) = match info.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (info, None),
    };
    let user = if user.is_empty() { None } else { Some(decode(user, "the user name")?) };
    let password = match password {
        Some(p) if !p.is_empty() => Some(Secret::new(decode(p, "the password")?)),
        _ => None,
    };
    Ok((user, password, &rest[i + 1..]))
}

fn split_host_port(hostport: &str) -> Result<(Option<String>, Option<u16>)> {
    if hostport.contains(',') {
        return Err(invalid("several hosts are not supported"));
    }
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        let end = stripped.find(']').ok_or_else(|| invalid("unclosed '[' in the host"))?;
        let after = &stripped[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| invalid("unexpected text after ']'"))?),
        };
        (&stripped[..end], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let host = if host.is_empty() { None } else { Some(decode(host, "the host")?) };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Ok((host, port))
}

fn parse_query(url: &mut ConnectionUrl, query: Option<&str>) -> Result<()> {
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k, "a parameter name")?;
        let v = decode(v, "a parameter value")?;
        url.set_param(&k, v)?;
    }
    Ok(())
}

/// Splits what follows the user information into `host[:port]`, the path (without its `/`) and the query
/// (without its `?`), for both URL schemes.
fn split_path_query(rest: &str) -> (&str, &str, Option<&str>) {
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    match rest.split_once('/') {
        Some((hostport, path)) => (hostport, path, query),
        None => (rest, "", query),
    }
}

fn parse_postgres_url(rest: &str) -> Result<ConnectionUrl> {
    let (user, password, rest) = split_userinfo(rest)?;
    let (hostport, path, query) = split_path_query(rest);
    let (host, port) = split_host_port(hostport)?;
    let mut url = ConnectionUrl::postgres(host.unwrap_or_default(), port.unwrap_or(0), "", "");
    url.user = user;
    url.password = password;
    if !path.is_empty() {
        url.database = decode(path, "the database name")?;
    }
    parse_query(&mut url, query)?;
    finish_postgres(url)
}

fn finish_postgres(mut url: ConnectionUrl) -> Result<ConnectionUrl> {
    if url.host.is_empty() {
        url.host = "localhost".into();
    }
    if url.port == 0 {
        url.port = 5432;
    }
    if url.user.as_deref().is_none_or(str::is_empty) {
        url.user = Some(default_user());
    }
    if url.database.is_empty() {
        url.database = url.user.clone().unwrap_or_default();
    }
    url.validate()?;
    Ok(url)
}

fn parse_redis_url(scheme: Scheme, rest: &str) -> Result<ConnectionUrl> {
    let (user, password, rest) = split_userinfo(rest)?;
    // redis-rs' `rediss://…#insecure` (no certificate check) is libpq's `sslmode=require`.
    let (rest, insecure) = match rest.strip_suffix("#insecure") {
        Some(r) if scheme == Scheme::RedisTls => (r, true),
        _ => (rest, false),
    };
    if rest.contains('#') {
        return Err(invalid("URL fragments are not supported (but #insecure on rediss://)"));
    }
    let (hostport, path, query) = split_path_query(rest);
    let (host, port) = split_host_port(hostport)?;
    let host = host.ok_or_else(|| invalid("the Redis URL names no host"))?;
    let mut url = ConnectionUrl {
        scheme,
        host,
        port: port.unwrap_or(scheme.default_port()),
        user,
        password,
        database: if path.is_empty() { "0".into() } else { decode(path, "the database")? },
        params: Vec::new(),
    };
    parse_query(&mut url, query)?;
    if insecure {
        url.set_param("sslmode", SslMode::Require.as_str().into())?;
    }
    url.validate()?;
    Ok(url)
}

fn parse_redis_unix(rest: &str) -> Result<ConnectionUrl> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = decode(path, "the socket path")?;
    if !path.starts_with('/') {
        return Err(invalid("the Unix socket path must be absolute"));
    }
    let mut url = ConnectionUrl {
        scheme: Scheme::RedisUnix,
        host: path,
        port: Scheme::RedisUnix.default_port(),
        user: None,
        password: None,
        database: "0".into(),
        params: Vec::new(),
    };
    parse_query(&mut url, query)?;
    url.validate()?;
    Ok(url)
}

/// libpq's `key = value` form: values may be single-quoted; `\'` and `\\` are escapes.
fn parse_key_value(s: &str) -> Result<ConnectionUrl> {
    let mut url = ConnectionUrl::postgres("", 0, "", "");
    url.user = None;
    let bytes = s.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    while i < bytes.len() {
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        i = skip_ws(i);
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return Err(invalid("expected key=value pairs (or a postgres:// or redis:// URL)"));
        }
        i = skip_ws(i + 1);
        let quoted = bytes.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        let mut value = Vec::new();
        let mut closed = !quoted;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if i + 1 < bytes.len() => {
                    value.push(bytes[i + 1]);
                    i += 2;
                }
                b'\'' if quoted => {
                    closed = true;
                    i += 1;
                    break;
                }
                b if !quoted && b.is_ascii_whitespace() => break,
                b => {
                    value.push(b);
                    i += 1;
                }
            }
        }
        if !closed {
            return Err(invalid("unterminated quoted value"));
        }
        let value = String::from_utf8(value).map_err(|_| invalid("a value is not valid UTF-8"))?;
        url.set_param(key, value)?;
        i = skip_ws(i);
    }
    finish_postgres(url)
}

fn parse_port(p: &str) -> Result<u16> {
    match p.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(invalid("the port is not a number from 1 to 65535")),
    }
}

fn default_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "postgres".into())
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes.
fn is_plain_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Strict percent-decoding: a bad escape or invalid UTF-8 is an error naming `what`, not the text.
fn decode(s: &str, what: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| invalid(format!("bad percent-encoding in {what}")))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl FromStr for ConnectionUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for ConnectionUrl {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ConnectionUrl {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectionUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for ConnectionUrl {
    /// A connection string, or a table of `host`, `port`, `user`, `password`, `dbname`, `sslmode`
    /// (PostgreSQL).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Parts {
            #[serde(default)]
            host: Option<String>,
            #[serde(default)]
            port: Option<u16>,
            #[serde(default)]
            user: Option<String>,
            #[serde(default)]
            password: Option<Secret>,
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
        match Repr::deserialize(d)? {
            Repr::Url(s) => Self::parse(&s).map_err(serde::de::Error::custom),
            Repr::Parts(p) => {
                let mut url = Self::postgres(p.host.unwrap_or_default(), p.port.unwrap_or(0), "", p.dbname);
                url.user = p.user;
                url.password = p.password;
                if let Some(mode) = p.sslmode {
                    url.set_param("sslmode", mode).map_err(serde::de::Error::custom)?;
                }
                finish_postgres(url).map_err(serde::de::Error::custom)
            }
        }
    }
}

impl Serialize for ConnectionUrl {
    /// Serialises the redacted form: a configuration written back out never carries the password.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ConnectionUrl {
        ConnectionUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn postgres_urls_parse() {
        let c = p("postgresql://u%40x:p%3Aw%2Fd@[::1]:5433/db%20name?sslmode=require");
        assert_eq!((c.user(), c.host(), c.port(), c.database()), (Some("u@x"), "::1", 5433, "db name"));
        assert_eq!(c.password().unwrap().expose(), "p:w/d");
        assert_eq!(c.ssl_mode(), SslMode::Require);
        let c = p("postgres://%2Fvar%2Frun%2Fpostgresql/x?user=bob");
        assert_eq!((c.host(), c.user(), c.database()), ("/var/run/postgresql", Some("bob"), "x"));
        assert!(c.is_unix_socket());
        let c = p("postgres://alice@h");
        assert_eq!((c.port(), c.database()), (5432, "alice"));
        // The password may hold unencoded `?`, `/`, `#` and `@`.
        let c = p("postgres://app:a@b?c/d#e@db/x");
        assert_eq!((c.password().unwrap().expose(), c.host(), c.database()), ("a@b?c/d#e", "db", "x"));
        let c = p("postgres://h/db?user=a@b");
        assert_eq!((c.host(), c.user()), ("h", Some("a@b")));
        let c = p("postgres://u@h/db?password=s%40cret&application_name=x");
        assert_eq!(c.password().unwrap().expose(), "s@cret");
        assert_eq!(c.redacted(), "postgres://u:***@h:5432/db?application_name=x");
    }

    #[test]
    fn key_value_strings_mean_the_same_as_urls() {
        let kv = p(r"host=db port=6432 user=app password='it\'s a \\ pw' dbname=d sslmode=disable");
        assert_eq!(kv.password().unwrap().expose(), r"it's a \ pw");
        let url = p("postgres://app:it's%20a%20%5C%20pw@db:6432/d?sslmode=disable");
        assert_eq!(kv, url);
        assert_eq!(p("host = h  password = x dbname=d user=u"), p("postgres://u:x@h/d"));
        for bad in ["host=h password='unterminated", "host", "host=h bogus=1", "postgres://h/d?bogus=1"] {
            let e = ConnectionUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{bad}");
        }
    }

    #[test]
    fn redis_urls_parse() {
        let c = p("redis://:s3cret@127.0.0.1:6380/2");
        assert_eq!(
            (c.scheme(), c.host(), c.port(), c.database(), c.user()),
            (Scheme::Redis, "127.0.0.1", 6380, "2", None)
        );
        assert_eq!(c.password().unwrap().expose(), "s3cret");
        assert_eq!(c.redacted(), "redis://:***@127.0.0.1:6380/2");
        assert_eq!(c.expose(), "redis://:s3cret@127.0.0.1:6380/2");
        let c = p("rediss://user:pw@cache.internal");
        assert_eq!(
            (c.scheme(), c.port(), c.database(), c.ssl_mode()),
            (Scheme::RedisTls, 6379, "0", SslMode::VerifyFull)
        );
        let c = p("redis+unix:///run/redis.sock?db=3&pass=pw");
        assert_eq!((c.host(), c.database(), c.password().unwrap().expose()), ("/run/redis.sock", "3", "pw"));
        assert_eq!(c.redacted(), "redis+unix:///run/redis.sock?db=3&pass=***");
        let c = p("rediss://h:7000/1?sslrootcert=/etc/ca%20dir/ca.pem&sslmode=verify-ca");
        assert_eq!((c.ssl_mode(), c.param("sslrootcert")), (SslMode::VerifyCa, Some("/etc/ca dir/ca.pem")));
        assert_eq!(p("rediss://:pw@h/0#insecure").ssl_mode(), SslMode::Require);
        assert_eq!(p("rediss://:pw@h/0#insecure"), p("rediss://:pw@h/0?sslmode=require"));
        for bad in [
            "rediss://h/0?sslmode=disable",
            "rediss://h/0?sslmode=prefer",
            "rediss://h/0?sslmode=bogus",
            "redis://h/0?sslmode=require",
            "redis://h/0?sslrootcert=/ca.pem",
            "redis://h/0#insecure",
        ] {
            assert_eq!(ConnectionUrl::parse(bad).unwrap_err().kind(), ErrorKind::InvalidConfig, "{bad}");
        }
        assert!(ConnectionUrl::parse("redis://h/notanumber").is_err());
        assert!(ConnectionUrl::parse("redis:///0").is_err());
    }

    #[test]
    fn errors_and_renderings_never_carry_the_password() {
        for bad in [
            "mysql://u:topsecret@h/db",
            "postgres://u:topsecret@h:99999/db",
            "postgres://u:topsecret@h/db?weird=1",
            "postgres://u:topsecret@h1,h2/db",
            "postgres://u:topsecret%zz@h/db",
            "postgres://app:top?secret@db/x?weird=1",
            "postgres://app:top/secret@db:port/x",
            "postgres://h/x?topsecret!=1",
            "host=h password=topsecret port=x",
            "redis://:topsecret@h/x",
        ] {
            let e = ConnectionUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{bad}");
            assert!(!format!("{e} {e:?}").contains("secret"), "{bad}: {e}");
        }
        let e = ConnectionUrl::parse("postgres://h/x?weird_1=1").unwrap_err();
        assert!(e.to_string().contains("\"weird_1\""), "{e}");
        let u = p("postgres://u:p%40ss%2Fw@h/db");
        assert_eq!(u.scrub("auth failed for p@ss/w and p%40ss%2Fw"), "auth failed for *** and ***");
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"postgres://u:***@h:5432/db\"");
    }

    #[test]
    fn expose_round_trips() {
        for s in [
            "postgres://u%40x:p%3Aw%2Fd@[::1]:5433/db%20name?sslmode=require",
            "postgres://%2Fvar%2Frun/x?user=bob&application_name=a%20b",
            "redis://u:p%23w@h:1/5",
            "rediss://h",
            "redis+unix:///s.sock?db=1&pass=x%26y",
            r"host=h password='a b\'c' dbname=d user=u",
        ] {
            let u = p(s);
            assert_eq!(p(&u.expose()), u, "{s}");
        }
    }

    #[test]
    fn env_prefers_database_url_then_pg_vars_and_never_guesses() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let c = ConnectionUrl::postgres_from_lookup(vars(&[("DATABASE_URL", "postgres://a@h/d"), ("PGHOST", "o")]));
        assert_eq!(c.unwrap().host(), "h");
        let c = ConnectionUrl::postgres_from_lookup(vars(&[
            ("PGHOST", "db"),
            ("PGPORT", "6000"),
            ("PGUSER", "bk"),
            ("PGPASSWORD", "pw-secret"),
            ("PGSSLMODE", "require"),
        ]))
        .unwrap();
        assert_eq!((c.host(), c.port(), c.user(), c.database()), ("db", 6000, Some("bk"), "bk"));
        assert_eq!((c.password().unwrap().expose(), c.ssl_mode()), ("pw-secret", SslMode::Require));
        let e = ConnectionUrl::postgres_from_lookup(vars(&[])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        let e = ConnectionUrl::postgres_from_lookup(vars(&[("DATABASE_URL", "redis://h/0")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    }

    #[test]
    fn deserializes_from_a_string_or_parts() {
        let u: ConnectionUrl = serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1", "user": "bk", "password": "hunter2-secret", "dbname": "resee", "sslmode": "require"
        }))
        .unwrap();
        assert_eq!(u, p("postgres://bk:hunter2-secret@127.0.0.1/resee?sslmode=require"));
        assert!(!format!("{u:?}").contains("hunter2"));
        let u: ConnectionUrl = serde_json::from_str("\"redis://127.0.0.1/1\"").unwrap();
        assert_eq!(u.database(), "1");
    }
}
