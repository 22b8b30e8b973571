//! A PostgreSQL and a Redis for integration tests.
//!
//! [`postgres`] and [`redis`] answer, in this order:
//! 1. the server named by `RESEE_TEST_DATABASE_URL` / `RESEE_TEST_REDIS_URL`;
//! 2. the local default server (`127.0.0.1:5432` as user `postgres`, `127.0.0.1:6379`) if it accepts
//!    connections;
//! 3. a private throwaway server started from the installed binaries (`initdb` + `postgres` in a temporary
//!    directory, `redis-server`), on a free loopback port, stopped and removed when the test process exits.
//!
//! If none works, they panic with a message naming what to install: a test that needs a server never
//! skips silently. The result is shared by all tests of one process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where a test service came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Named by an environment variable.
    Configured,
    /// The machine's default local server.
    LocalDefault,
    /// Started privately for this test process.
    Private,
}

/// A running service and how to reach it.
#[derive(Debug, Clone)]
pub struct Service {
    url: String,
    origin: Origin,
}

impl Service {
    /// Its URL (`postgres://postgres@127.0.0.1:5432/postgres`, `redis://127.0.0.1:6379/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where it came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The URL with its path (the PostgreSQL database name, the Redis database number) replaced by `db`.
    ///
    /// ```
    /// # use resee_ops_core::testing::services::Service;
    /// # let s = Service::for_url("postgres://u:p@h:5/postgres?sslmode=disable");
    /// assert_eq!(s.url_for_database("other"), "postgres://u:p@h:5/other?sslmode=disable");
    /// ```
    pub fn url_for_database(&self, db: &str) -> String {
        let (base, query) = match self.url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.url.as_str(), None),
        };
        let authority_start = base.find("://").map_or(0, |i| i + 3);
        let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
        let mut out = format!("{}/{db}", &base[..path_start]);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    /// A `Service` for a URL (for tests of the helpers themselves).
    pub fn for_url(url: &str) -> Self {
        Self { url: url.to_owned(), origin: Origin::Configured }
    }
}

/// The PostgreSQL server for tests; see the [module docs](self). The URL connects as a superuser to the
/// `postgres` database, so tests can create their own databases.
///
/// # Panics
/// When no server is configured, none answers on the default port and none can be started.
pub fn postgres() -> &'static Service {
    static PG: OnceLock<Service> = OnceLock::new();
    PG.get_or_init(|| {
        resolve("RESEE_TEST_DATABASE_URL", 5432, "postgres://postgres@127.0.0.1:5432/postgres", || {
            start_private_postgres(None).map(|s| s.url)
        })
    })
}

/// The Redis server for tests; see the [module docs](self).
///
/// # Panics
/// When no server is configured, none answers on the default port and none can be started.
pub fn redis() -> &'static Service {
    static REDIS: OnceLock<Service> = OnceLock::new();
    REDIS.get_or_init(|| resolve("RESEE_TEST_REDIS_URL", 6379, "redis://127.0.0.1:6379/", start_redis))
}

fn resolve(var: &str, port: u16, default_url: &str, start: fn() -> Result<String, String>) -> Service {
    if let Ok(url) = std::env::var(var)
        && !url.trim().is_empty()
    {
        return Service { url, origin: Origin::Configured };
    }
    if answers(port) {
        return Service { url: default_url.to_owned(), origin: Origin::LocalDefault };
    }
    match start() {
        Ok(url) => Service { url, origin: Origin::Private },
        Err(why) => panic!(
            "no test server available: {var} is unset, nothing answers on 127.0.0.1:{port}, and a private server \
             could not be started: {why}. Install the server (Debian: `apt-get install postgresql redis-server`) or \
             run `scripts/test.sh`, which installs them."
        ),
    }
}

fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn wait_until_answers(port: u16, log: &Path) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if answers(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    Err(format!("server did not accept connections on port {port} within 60 s; its log:\n{tail}"))
}

fn private_dir(kind: &str) -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("resee-test-{kind}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Finds `bin` on `PATH` or under `/usr/lib/postgresql/<major>/bin`, newest major first.
fn find_binary(bin: &str, pg_lib: bool) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if pg_lib && let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut majors: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok().map(|m| (m, e.path())))
            .collect();
        majors.sort_by_key(|m| std::cmp::Reverse(m.0));
        candidates.extend(majors.into_iter().map(|(_, p)| p.join("bin").join(bin)));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join(bin)));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Runs `server_cmd` in the background under a small shell that stops it (and removes `dir`) as soon as this
/// test process exits, however it exits.
fn spawn_watched(server_cmd: &str, dir: &Path, log: &Path) -> Result<(), String> {
    let script = format!(
        "{server_cmd} >>'{log}' 2>&1 & s=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.5; done; \
         kill -INT $s 2>/dev/null; wait $s; rm -rf '{dir}'",
        parent = std::process::id(),
        log = log.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start sh: {e}"))
}

/// Starts a PostgreSQL private to this test process, on a free loopback port, stopped and removed when the
/// process exits. Without a password it trusts every connection; with one, it checks it (`scram-sha-256`)
/// for the superuser `postgres`, and the URL carries it percent-encoded. Use this for tests that need a
/// server configured differently from the shared one (authentication, for example); [`postgres`] serves
/// the rest.
///
/// Returns why it could not start (a missing package, a failed `initdb`, the server's log).
pub fn start_private_postgres(password: Option<&str>) -> Result<Service, String> {
    let initdb = find_binary("initdb", true).ok_or("initdb not found (package postgresql)")?;
    let postgres = initdb.with_file_name("postgres");
    let postgres = if postgres.is_file() {
        postgres
    } else {
        find_binary("postgres", true).ok_or("postgres server binary not found (package postgresql)")?
    };
    let dir = private_dir("pg")?;
    let data = dir.join("data");
    let log = dir.join("server.log");
    // PostgreSQL refuses to run as root: run it as the postgres user.
    let auth = match password {
        Some(password) => {
            use std::os::unix::fs::PermissionsExt;
            let pwfile = dir.join("pwfile");
            std::fs::write(&pwfile, format!("{password}\n"))
                .map_err(|e| format!("cannot write the password file: {e}"))?;
            std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
            format!("-A scram-sha-256 --pwfile='{}'", pwfile.display())
        }
        None => "-A trust".to_owned(),
    };
    let run_as = if is_root() {
        let (uid, gid) = postgres_user().ok_or("running as root and there is no postgres user to run the server")?;
        for path in [dir.clone(), dir.join("pwfile")] {
            if path.exists() {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|e| format!("chown: {e}"))?;
            }
        }
        format!("setpriv --reuid={uid} --regid={gid} --clear-groups ")
    } else {
        String::new()
    };
    let init = format!(
        "{run_as}'{initdb}' -D '{data}' -U postgres {auth} -E UTF8 --no-sync >'{dir}/initdb.log' 2>&1",
        initdb = initdb.display(),
        data = data.display(),
        dir = dir.display(),
    );
    let status = Command::new("sh").arg("-c").arg(&init).status().map_err(|e| format!("cannot run initdb: {e}"))?;
    if !status.success() {
        let out = std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default();
        return Err(format!("initdb failed: {out}"));
    }
    let port = free_port()?;
    let server = format!(
        "{run_as}'{postgres}' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off",
        postgres = postgres.display(),
        data = data.display(),
        dir = dir.display(),
    );
    spawn_watched(&server, &dir, &log)?;
    wait_until_answers(port, &log)?;
    let user = match password {
        Some(password) => format!("postgres:{}", percent_encode(password)),
        None => "postgres".to_owned(),
    };
    Ok(Service { url: format!("postgres://{user}@127.0.0.1:{port}/postgres"), origin: Origin::Private })
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for a password in a URL).
fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    text.bytes().fold(String::with_capacity(text.len()), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// The S3-compatible test server (`moto_server`, shared by the tests of one process): the one named by
/// `RESEE_TEST_S3_URL`, else a private one started by [`start_private_moto`]. Its URL is the endpoint
/// (`http://127.0.0.1:PORT`); any credentials are accepted. Create buckets with [`create_s3_bucket`].
///
/// # Panics
/// When no server is configured and none can be started (moto is not installed).
pub fn moto() -> &'static Service {
    static MOTO: OnceLock<Service> = OnceLock::new();
    MOTO.get_or_init(|| {
        if let Ok(url) = std::env::var("RESEE_TEST_S3_URL")
            && !url.trim().is_empty()
        {
            return Service { url, origin: Origin::Configured };
        }
        start_private_moto(&[]).unwrap_or_else(|why| panic!("no S3 test server: {why}"))
    })
}

/// The `moto_server` binary: `RESEE_TEST_MOTO_SERVER`, else the workspace's `.venv-test` (made by
/// `scripts/test.sh`), else `PATH`.
fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RESEE_TEST_MOTO_SERVER").map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-test/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    find_binary("moto_server", false)
}

/// Starts a `moto_server` (an S3-compatible server) private to this test process, on a free loopback port,
/// stopped when the process exits, with extra environment variables (`INITIAL_NO_AUTH_ACTION_COUNT=0`
/// turns its authentication on, so that only IAM-known keys are accepted). Returns the endpoint URL.
pub fn start_private_moto(env: &[(&str, &str)]) -> Result<Service, String> {
    let bin = moto_binary().ok_or(
        "moto_server not found: run scripts/test.sh (it installs moto[server] into .venv-test), or \
         `pip install 'moto[server]'` and set RESEE_TEST_MOTO_SERVER to the moto_server binary",
    )?;
    let dir = private_dir("moto")?;
    let log = dir.join("server.log");
    let port = free_port()?;
    let vars: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    let server = format!("env {vars}'{}' -H 127.0.0.1 -p {port}", bin.display());
    spawn_watched(&server, &dir, &log)?;
    wait_until_answers(port, &log)?;
    Ok(Service { url: format!("http://127.0.0.1:{port}"), origin: Origin::Private })
}

/// Creates `bucket` on an S3 test server with an unsigned `PUT /{bucket}` (moto accepts it; object_store
/// cannot create buckets). An existing bucket is fine.
pub fn create_s3_bucket(server: &Service, bucket: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let host = server.url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).map_err(|e| format!("cannot connect to {host}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let status = response.split_whitespace().nth(1).unwrap_or_default();
    if status == "200" || response.contains("BucketAlreadyOwnedByYou") {
        Ok(())
    } else {
        Err(format!("creating bucket {bucket} failed: {}", response.lines().next().unwrap_or_default()))
    }
}

fn start_redis() -> Result<String, String> {
    let port = free_port()?;
    spawn_redis(port)?;
    Ok(format!("redis://127.0.0.1:{port}/"))
}

/// A Redis private to one test, which the test can stop and start again on the same port (to test what
/// a client does while its server is down and after it is back). Stopped when dropped, and in any case
/// when the test process exits.
///
/// ```no_run
/// use resee_ops_core::testing::services::PrivateRedis;
/// let redis = PrivateRedis::start().expect("redis-server (package redis-server)");
/// let url = redis.url().to_owned();
/// redis.stop().unwrap(); // connections to `url` are refused now
/// redis.restart().unwrap(); // the same URL answers again (with an empty dataset)
/// # drop(url);
/// ```
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    url: String,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free loopback port; returns why it could not (a missing package, the
    /// server's log).
    pub fn start() -> Result<Self, String> {
        let port = free_port()?;
        spawn_redis(port)?;
        Ok(Self { port, url: format!("redis://127.0.0.1:{port}/") })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (`SHUTDOWN NOSAVE`) and waits until its port refuses connections.
    pub fn stop(&self) -> Result<(), String> {
        use std::io::Write as _;
        if let Ok(mut conn) = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port))) {
            let _ = conn.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n");
        }
        let started = Instant::now();
        while answers(self.port) {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("redis on port {} still answers 30 s after SHUTDOWN", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts the server again on the same port (empty: nothing was saved).
    pub fn restart(&self) -> Result<(), String> {
        spawn_redis(self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Starts `redis-server` on `port` in a new private directory and waits until it answers.
fn spawn_redis(port: u16) -> Result<(), String> {
    let redis = find_binary("redis-server", false).ok_or("redis-server not found (package redis-server)")?;
    let dir = private_dir("redis")?;
    let log = dir.join("server.log");
    let server = format!(
        "'{redis}' --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir '{dir}'",
        redis = redis.display(),
        dir = dir.display(),
    );
    spawn_watched(&server, &dir, &log)?;
    wait_until_answers(port, &log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_percent_encoded() {
        assert_eq!(percent_encode("pw-Sëcret/@:?"), "pw-S%C3%ABcret%2F%40%3A%3F");
    }

    #[test]
    fn url_for_database_replaces_only_the_path() {
        let s = Service::for_url("postgres://postgres@127.0.0.1:5432/postgres");
        assert_eq!(s.url_for_database("x"), "postgres://postgres@127.0.0.1:5432/x");
        let s = Service::for_url("redis://127.0.0.1:6379");
        assert_eq!(s.url_for_database("3"), "redis://127.0.0.1:6379/3");
    }

    #[test]
    fn private_servers_start_and_answer() {
        // Exercises the fallback path even where default servers run, so it never rots unseen.
        let pg = start_private_postgres(None).expect("private PostgreSQL").url;
        let port: u16 = pg.rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap();
        assert!(answers(port), "private PostgreSQL answers on {port}");
        let redis = start_redis().expect("private Redis");
        let port: u16 = redis.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
        assert!(answers(port), "private Redis answers on {port}");
    }
}
