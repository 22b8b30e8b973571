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
/// the rest. [`PrivatePostgres`] configures more (TLS, settings).
///
/// Returns why it could not start (a missing package, a failed `initdb`, the server's log).
pub fn start_private_postgres(password: Option<&str>) -> Result<Service, String> {
    let mut server = PrivatePostgres::new();
    if let Some(password) = password {
        server = server.with_password(password);
    }
    server.start()
}

/// A throwaway certificate authority for TLS tests and a server certificate it signed, as PEM files in a
/// private temporary directory: `ca.pem`, `server.pem`, `server.key` (mode 0600). Generated with rcgen
/// (ECDSA P-256), valid from now on.
///
/// ```no_run
/// use resee_ops_core::testing::services::{PrivatePostgres, TestCa};
/// let ca = TestCa::new(&["localhost"]).unwrap();
/// let pg = PrivatePostgres::new().with_tls(&ca).start().unwrap();
/// // Connect to `localhost` with `sslmode=verify-full&sslrootcert=<ca.ca_cert()>`.
/// # let _ = pg;
/// ```
#[derive(Debug, Clone)]
pub struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    /// A new CA and a server certificate for `server_names` (DNS names or IP addresses, as written in
    /// the certificate's subject alternative names).
    pub fn new(server_names: &[&str]) -> Result<Self, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let err = |e: rcgen::Error| format!("cannot generate a test certificate: {e}");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "resee-ops throwaway test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let names: Vec<String> = server_names.iter().map(|n| (*n).to_owned()).collect();
        let mut server_params = CertificateParams::new(names).map_err(err)?;
        server_params.distinguished_name.push(DnType::CommonName, server_names.first().copied().unwrap_or("server"));
        let server_key = KeyPair::generate().map_err(err)?;
        let server_cert = server_params.signed_by(&server_key, &issuer).map_err(err)?;
        let dir = private_dir("ca")?;
        let ca = Self { dir };
        write_private(&ca.ca_cert(), &ca_cert.pem())?;
        write_private(&ca.server_cert(), &server_cert.pem())?;
        write_private(&ca.server_key(), &server_key.serialize_pem())?;
        Ok(ca)
    }

    /// The CA's certificate (PEM): what clients trust (`sslrootcert`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate (PEM), signed by the CA.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key (PEM, mode 0600).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())
}

/// A PostgreSQL private to this test process, configured as a test needs: a password, TLS, settings.
/// [`start`](Self::start) runs it on a free loopback port; it is stopped and removed when the process
/// exits. The URL it returns connects to `127.0.0.1` as the superuser `postgres` (with the password,
/// percent-encoded, if one was set).
///
/// ```no_run
/// use resee_ops_core::testing::services::PrivatePostgres;
/// let korean = PrivatePostgres::new().with_password("pw").with_setting("lc_messages", "ko_KR.UTF-8").start().unwrap();
/// # let _ = korean;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PrivatePostgres {
    password: Option<String>,
    tls: Option<TestCa>,
    tls_only: bool,
    settings: Vec<(String, String)>,
}

impl PrivatePostgres {
    /// A server that trusts every connection, without TLS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks this password (`scram-sha-256`) for every connection as `postgres`.
    pub fn with_password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// `ssl = on` with `ca`'s server certificate and key; plain connections are still accepted unless
    /// [`with_tls_only`](Self::with_tls_only).
    pub fn with_tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(ca.clone());
        self
    }

    /// Accepts TCP connections over TLS only (`hostssl` lines in `pg_hba.conf`, no `host` line).
    pub fn with_tls_only(mut self) -> Self {
        self.tls_only = true;
        self
    }

    /// A server setting (`-c name=value`), such as `lc_messages`.
    pub fn with_setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server; returns why it could not start (a missing package, a failed `initdb`, the
    /// server's log).
    pub fn start(&self) -> Result<Service, String> {
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
        let method = if self.password.is_some() { "scram-sha-256" } else { "trust" };
        let auth = match &self.password {
            Some(password) => {
                let pwfile = dir.join("pwfile");
                write_private(&pwfile, &format!("{password}\n"))?;
                format!("-A scram-sha-256 --pwfile='{}'", pwfile.display())
            }
            None => "-A trust".to_owned(),
        };
        // PostgreSQL refuses to run as root: run it as the postgres user.
        let owner = if is_root() {
            Some(postgres_user().ok_or("running as root and there is no postgres user to run the server")?)
        } else {
            None
        };
        let chown = |path: &Path| -> Result<(), String> {
            match owner {
                Some((uid, gid)) if path.exists() => {
                    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| format!("chown: {e}"))
                }
                _ => Ok(()),
            }
        };
        chown(&dir)?;
        chown(&dir.join("pwfile"))?;
        let run_as = match owner {
            Some((uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups "),
            None => String::new(),
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
        let mut extra = String::new();
        if let Some(ca) = &self.tls {
            // The server reads its key as its own user and refuses one others can read.
            let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
            for (from, to) in [(ca.server_cert(), &cert), (ca.server_key(), &key)] {
                std::fs::copy(&from, to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
                chown(to)?;
            }
            extra.push_str(&format!(
                " -c ssl=on -c ssl_cert_file='{}' -c ssl_key_file='{}'",
                cert.display(),
                key.display()
            ));
        }
        if self.tls_only {
            let hba = data.join("pg_hba.conf");
            let lines = format!(
                "local all all {method}\nhostssl all all 127.0.0.1/32 {method}\nhostssl all all ::1/128 {method}\n"
            );
            std::fs::write(&hba, lines).map_err(|e| format!("cannot write {}: {e}", hba.display()))?;
        }
        for (name, value) in &self.settings {
            extra.push_str(&format!(" -c '{name}={}'", value.replace('\'', "")));
        }
        let port = free_port()?;
        let server = format!(
            "{run_as}'{postgres}' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off{extra}",
            postgres = postgres.display(),
            data = data.display(),
            dir = dir.display(),
        );
        spawn_watched(&server, &dir, &log)?;
        wait_until_answers(port, &log)?;
        let user = match &self.password {
            Some(password) => format!("postgres:{}", percent_encode(password)),
            None => "postgres".to_owned(),
        };
        Ok(Service { url: format!("postgres://{user}@127.0.0.1:{port}/postgres"), origin: Origin::Private })
    }
}

/// Starts a Redis private to this test process that speaks TLS only (`--port 0 --tls-port P`), with `ca`'s
/// server certificate, stopped and removed when the process exits. Its URL is `rediss://localhost:P/`:
/// clients trust `ca.ca_cert()` (`?sslrootcert=…`). Debian's `redis-server` is built with TLS.
pub fn start_private_redis_tls(ca: &TestCa) -> Result<Service, String> {
    let redis = find_binary("redis-server", false).ok_or("redis-server not found (package redis-server)")?;
    let dir = private_dir("redis-tls")?;
    let log = dir.join("server.log");
    let port = free_port()?;
    let server = format!(
        "'{redis}' --port 0 --tls-port {port} --bind 127.0.0.1 --tls-cert-file '{cert}' --tls-key-file '{key}' \
         --tls-ca-cert-file '{ca}' --tls-auth-clients no --save '' --appendonly no --dir '{dir}'",
        redis = redis.display(),
        cert = ca.server_cert().display(),
        key = ca.server_key().display(),
        ca = ca.ca_cert().display(),
        dir = dir.display(),
    );
    spawn_watched(&server, &dir, &log)?;
    wait_until_answers(port, &log)?;
    Ok(Service { url: format!("rediss://localhost:{port}/"), origin: Origin::Private })
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
