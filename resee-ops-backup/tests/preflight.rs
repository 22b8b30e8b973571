//! The backup's preflight against real private servers (issue 16, points 6 and 9): over TLS (a server that
//! accepts TCP over TLS only, certificates of a throwaway CA), on a server whose `lc_messages` is Korean,
//! and for a role that cannot read a table. The preflight classifies by SQLSTATE, never by the server's
//! words, and runs before anything is dumped.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use resee_ops_backup::{PgDumpBackupBuilder, RetryPolicy};
use resee_ops_core::testing::InMemoryBackupTarget;
use resee_ops_core::testing::services::{PrivatePostgres, TestCa};
use resee_ops_core::{BackupTarget, ConnectionUrl, Error, ErrorKind};

const PW: &str = "pw-Preflight-5ecret";

/// One attempt: a wrongly temporary error must fail the test at once, not wait 5 minutes.
fn once(url: &str) -> PgDumpBackupBuilder {
    builder(url).with_retry(RetryPolicy::celery(0, Duration::ZERO))
}

/// Runs a backup into a fresh in-memory target; returns its error and whether anything was written.
async fn backup_error(url: &str) -> (Error, usize) {
    let target = InMemoryBackupTarget::new();
    let outcome = once(url).with_target(target.clone()).build().unwrap().run().await;
    let err = outcome.error.clone().unwrap_or_else(|| panic!("the backup of {url} should fail"));
    (err, target.list().await.unwrap().len())
}

struct TlsServer {
    ca: TestCa,
    other_ca: TestCa,
    port: u16,
    admin_url: String,
}

fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let ca = TestCa::new(&["localhost"]).expect("test CA");
        let other_ca = TestCa::new(&["localhost"]).expect("second test CA");
        let server = PrivatePostgres::new()
            .with_password(PW)
            .with_tls(&ca)
            .with_tls_only()
            .start()
            .expect("private PostgreSQL with TLS");
        let port = ConnectionUrl::parse(server.url()).unwrap().port();
        TlsServer { ca, other_ca, port, admin_url: server.url().to_owned() }
    })
}

fn tls_url(db: &str, password: &str, mode: &str, ca: &Path) -> String {
    let s = tls_server();
    format!("postgres://postgres:{password}@localhost:{}/{db}?sslmode={mode}&sslrootcert={}", s.port, ca.display())
}

/// The server accepts TCP connections over TLS only, so the preflight and `pg_dump` both spoke TLS; and
/// `verify-full` with no `~/.postgresql/root.crt` works in `pg_dump` only if `PGSSLROOTCERT` reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_over_verify_full_tls_succeeds() {
    let s = tls_server();
    let db_url = database(&s.admin_url, "resee_bk_tls", "CREATE TABLE t (x int); INSERT INTO t VALUES (42);");
    let db = ConnectionUrl::parse(&db_url).unwrap().database().to_owned();
    let target = InMemoryBackupTarget::new();
    let url = tls_url(&db, PW, "verify-full", &s.ca.ca_cert());
    let outcome = once(&url).with_target(target.clone()).build().unwrap().run().await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    assert_eq!(target.list().await.unwrap().len(), 2, "the backup and its manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_over_tls_classifies_by_sqlstate_and_refuses_bad_certificates() {
    let s = tls_server();
    let ca = s.ca.ca_cert();
    let (err, written) = backup_error(&tls_url("postgres", "definitely-Wrong-pw", "verify-full", &ca)).await;
    assert_eq!((err.kind(), err.is_temporary(), err.code()), (ErrorKind::PermissionDenied, false, Some("28P01")));
    assert_eq!(written, 0);
    let (err, _) = backup_error(&tls_url("resee_no_such_db", PW, "verify-full", &ca)).await;
    assert_eq!((err.kind(), err.is_temporary(), err.code()), (ErrorKind::NotFound, false, Some("3D000")));

    let (err, written) = backup_error(&tls_url("postgres", PW, "verify-full", &s.other_ca.ca_cert())).await;
    assert_eq!((err.kind(), err.is_temporary()), (ErrorKind::InvalidConfig, false), "{err}");
    assert_eq!(err.code(), Some(resee_ops_monitor::postgres::TLS_CERTIFICATE_REFUSED), "{err}");
    assert!(err.message().contains("not signed by a trusted root"), "{err}");
    assert_eq!(written, 0);

    // A plaintext server under sslmode=require: refused clearly, before pg_dump runs.
    let plain = PrivatePostgres::new().start().expect("private plaintext PostgreSQL");
    let url = format!("{}?sslmode=require", plain.url());
    let (err, written) = backup_error(&url).await;
    assert_eq!((err.kind(), err.is_temporary()), (ErrorKind::InvalidConfig, false), "{err}");
    assert_eq!(err.code(), Some(resee_ops_monitor::postgres::TLS_NOT_SUPPORTED), "{err}");
    assert!(err.message().contains("server does not support TLS"), "{err}");
    assert_eq!(written, 0);
    assert!(!format!("{err} {err:?}").contains(PW));
}

/// Point 6: a role without SELECT on a table is refused by the preflight, permanently, with SQLSTATE
/// 42501 and the table's name, before anything is dumped; granted, the same backup succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_read_a_table_is_refused_before_dumping() {
    let admin = server_url();
    let role = format!("resee_bk_reader_{}", std::process::id());
    psql(&admin, &format!("DROP ROLE IF EXISTS {role}"));
    psql(&admin, &format!("CREATE ROLE {role} LOGIN PASSWORD '{PW}'"));
    let db_url = database(
        &admin,
        "resee_bk_priv",
        &format!(
            "CREATE TABLE open_t (x int); CREATE TABLE secret_t (x int); CREATE SEQUENCE secret_seq; \
             GRANT SELECT ON open_t TO {role};"
        ),
    );
    let db = ConnectionUrl::parse(&db_url).unwrap();
    let as_role = format!("postgres://{role}:{PW}@{}:{}/{}", db.host(), db.port(), db.database());
    let (err, written) = backup_error(&as_role).await;
    assert_eq!((err.kind(), err.is_temporary(), err.code()), (ErrorKind::PermissionDenied, false, Some("42501")));
    assert!(err.message().contains("public.secret_seq, public.secret_t"), "{err}");
    assert!(!err.message().contains("open_t"), "{err}");
    assert_eq!(written, 0, "nothing is dumped");

    psql(&db_url, &format!("GRANT SELECT ON secret_t, secret_seq TO {role}"));
    let target = InMemoryBackupTarget::new();
    let outcome = once(&as_role).with_target(target.clone()).build().unwrap().run().await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    psql(&admin, &format!("DROP DATABASE \"{}\" WITH (FORCE)", db.database()));
    psql(&admin, &format!("DROP ROLE {role}"));
}

fn has_hangul(text: &str) -> bool {
    text.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

/// The `ko_KR.UTF-8` locale the Korean server needs; a missing one fails the test loudly with the fix.
fn require_korean_locale() {
    let out = std::process::Command::new("locale").arg("-a").output().expect("`locale -a` runs");
    let have = String::from_utf8_lossy(&out.stdout).lines().any(|l| l.eq_ignore_ascii_case("ko_KR.utf8"));
    assert!(
        have,
        "the ko_KR.UTF-8 locale is missing, so no PostgreSQL can speak Korean here: run scripts/test.sh as root \
         (it generates it), or as root `localedef -i ko_KR -f UTF-8 ko_KR.UTF-8` (Debian: package locales)"
    );
}

/// Point 6: a server whose `lc_messages` is Korean classifies a refused login, a missing database and a
/// missing privilege exactly as an English one: by SQLSTATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_korean_server_classifies_like_an_english_one() {
    require_korean_locale();
    let server = PrivatePostgres::new()
        .with_password(PW)
        .with_setting("lc_messages", "ko_KR.UTF-8")
        .start()
        .expect("private PostgreSQL with lc_messages=ko_KR.UTF-8");
    let admin = server.url().to_owned();
    let base = ConnectionUrl::parse(&admin).unwrap();
    let url = |user: &str, password: &str, db: &str| {
        format!("postgres://{user}:{password}@{}:{}/{db}", base.host(), base.port())
    };

    let (err, _) = backup_error(&url("postgres", "definitely-Wrong-pw", "postgres")).await;
    assert_eq!((err.kind(), err.is_temporary(), err.code()), (ErrorKind::PermissionDenied, false, Some("28P01")));
    assert!(has_hangul(err.message()), "the server did not answer in Korean: {err}");

    let (err, _) = backup_error(&url("postgres", PW, "resee_no_such_db")).await;
    assert_eq!((err.kind(), err.is_temporary(), err.code()), (ErrorKind::NotFound, false, Some("3D000")));
    assert!(has_hangul(err.message()), "{err}");

    // A role that may not connect to the database: the server's own 42501, in Korean.
    psql(&admin, "CREATE DATABASE closed");
    psql(&admin, "REVOKE CONNECT ON DATABASE closed FROM PUBLIC");
    psql(&admin, &format!("CREATE ROLE outsider LOGIN PASSWORD '{PW}'"));
    let (err, _) = backup_error(&url("outsider", PW, "closed")).await;
    assert_eq!((err.kind(), err.is_temporary(), err.code()), (ErrorKind::PermissionDenied, false, Some("42501")));
    assert!(has_hangul(err.message()), "{err}");
}
