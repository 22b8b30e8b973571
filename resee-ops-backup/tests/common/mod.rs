//! Helpers shared by the integration tests: databases with known content, a private PostgreSQL that checks
//! passwords, and a few process utilities.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use resee_ops_backup::{PgDumpBackup, PgDumpBackupBuilder};
use resee_ops_core::ConnectionUrl;
use resee_ops_core::testing::ManualClock;
use resee_ops_core::testing::services;

/// A backup of `url` named `resee_test_…` on a manual clock, two compression threads, no single-run lock.
pub fn builder(url: &str) -> PgDumpBackupBuilder {
    PgDumpBackup::builder()
        // Tests of one binary back up the same database in parallel: the lock has its own tests.
        .with_single_run_lock(false)
        .with_url(url)
        .with_environment("test")
        .with_name("resee")
        .with_clock(ManualClock::new().shared())
        .with_threads(2)
}

/// The URL of the shared test server (superuser, database `postgres`).
pub fn server_url() -> String {
    services::postgres().url().to_owned()
}

/// The URL of database `db` on the shared test server.
pub fn url_for(db: &str) -> String {
    services::postgres().url_for_database(db)
}

/// libpq environment variables for a URL, for running `psql`, `pg_dump` and the documented shell steps.
pub fn libpq_env(url: &str) -> Vec<(String, String)> {
    let c = ConnectionUrl::parse(url).expect("test URL parses");
    let mut env = vec![
        ("PGHOST".to_owned(), c.host().to_owned()),
        ("PGPORT".to_owned(), c.port().to_string()),
        ("PGUSER".to_owned(), c.user().unwrap_or("postgres").to_owned()),
        ("PGDATABASE".to_owned(), c.database().to_owned()),
    ];
    if let Some(p) = c.password() {
        env.push(("PGPASSWORD".to_owned(), p.expose().to_owned()));
    }
    env
}

/// Runs SQL with `psql` against `url`; panics with psql's output on failure.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .envs(libpq_env(url))
        .stdin(Stdio::null())
        .output()
        .expect("psql runs (package postgresql-client)");
    assert!(out.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Creates database `{prefix}_{pid}` on the server of `admin_url` with `setup` SQL, once per process, after
/// dropping leftovers of dead test processes. Returns its URL.
pub fn database(admin_url: &str, prefix: &str, setup: &str) -> String {
    let pid = std::process::id();
    let existing = psql(admin_url, &format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}\\_%'"));
    for name in existing.lines() {
        let owner = name.rsplit('_').next().and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|p| p != pid && !pid_alive(p)) {
            psql(admin_url, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
    let db = format!("{prefix}_{pid}");
    psql(admin_url, &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
    psql(admin_url, &format!("CREATE DATABASE \"{db}\""));
    let url = with_database(admin_url, &db);
    psql(&url, setup);
    url
}

/// `url` with its database replaced.
pub fn with_database(url: &str, db: &str) -> String {
    services::Service::for_url(url).url_for_database(db)
}

/// Unicode text, large objects, several schemas, an empty table, a view, an index, a comment.
pub const RICH_SQL: &str = r#"
CREATE SCHEMA sales;
CREATE SCHEMA "Ünïcode schema";
CREATE TABLE public.people (id serial PRIMARY KEY, name text NOT NULL, bio text);
INSERT INTO public.people (name, bio) VALUES
  ('Zoë', 'naïve café — 日本語 🐘 Ελληνικά'),
  ('O''Brien', E'line1\nline2\ttab\\backslash'),
  ('empty bio', ''),
  ('null bio', NULL);
CREATE TABLE sales.orders (id bigint PRIMARY KEY, person int REFERENCES public.people(id),
  amount numeric(12,2), at timestamptz);
INSERT INTO sales.orders SELECT g, 1 + g % 4, g * 1.5, '2025-01-01 00:00+00'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 5000) g;
CREATE INDEX ON sales.orders (at);
CREATE VIEW sales.totals AS SELECT person, sum(amount) AS total FROM sales.orders GROUP BY person;
CREATE TABLE "Ünïcode schema"."empty table" (id int, note text);
CREATE TABLE public.docs (id int PRIMARY KEY, body oid);
INSERT INTO public.docs VALUES
  (1, lo_from_bytea(0, '\x00ff10deadbeef'::bytea)),
  (2, lo_from_bytea(0, convert_to(repeat('large object ✓ ', 20000), 'UTF8')));
COMMENT ON TABLE public.people IS 'Mensch ärgere dich nicht';
"#;

/// About 36 MB of dump: more than every buffer between pg_dump and the target.
pub const BIG_SQL: &str = "CREATE TABLE big (id int PRIMARY KEY, payload text); \
    INSERT INTO big SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 6) FROM generate_series(1, 150000) g;";

/// The rich database on the shared server (created once per test process).
pub fn rich_db() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| database(&server_url(), "resee_bk_rich", RICH_SQL))
}

/// `pg_dump` of `url`, with the per-run `\restrict` / `\unrestrict` lines removed.
pub fn plain_dump(url: &str) -> String {
    let out = Command::new("pg_dump").arg("--no-password").envs(libpq_env(url)).output().expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    strip_restrict(&String::from_utf8(out.stdout).expect("utf-8 dump"))
}

/// Removes the `\restrict KEY` and `\unrestrict KEY` lines (a new random key on every run).
pub fn strip_restrict(dump: &str) -> String {
    dump.lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A PostgreSQL that checks passwords (scram-sha-256), private to this test process.
#[derive(Debug)]
pub struct PasswordServer {
    /// Superuser URL with the right password.
    pub url: String,
    /// The password.
    pub password: String,
}

/// Starts (once) a private server with `-A scram-sha-256`, superuser `postgres` with a random password.
pub fn password_server() -> &'static PasswordServer {
    static SERVER: OnceLock<PasswordServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let password = format!("pw-{:016x}-Sëcret", fastrand::u64(..));
        let server = services::start_private_postgres(Some(&password))
            .unwrap_or_else(|e| panic!("cannot start a private PostgreSQL: {e}"));
        PasswordServer { url: server.url().to_owned(), password }
    })
}

/// Child processes of this process whose command name is `comm` and whose environment contains `env`
/// (tests run in parallel: the environment tells whose process it is).
pub fn children_named(comm: &str, env: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        let ppid = stat[close + 2..].split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if name == comm && ppid == Some(me) && String::from_utf8_lossy(&environ).contains(env) {
            out.push(pid);
        }
    }
    out
}

/// Writes an executable shell script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    path
}
