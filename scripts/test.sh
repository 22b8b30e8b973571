#!/usr/bin/env bash
# The whole test suite of resee-ops, on a fresh machine or a used one.
#
# 1. Makes sure the server binaries the tests use are installed (PostgreSQL, Redis). As root it installs
#    missing Debian packages; otherwise it says what to install and fails.
#    Sets up Python with Celery 5 for the tests that run real Celery workers (resee-ops-monitor): a venv in
#    .venv-test/ (ignored by git) with pinned PyPI packages, unless RESEE_TEST_CELERY_PYTHON already names a
#    python that can `import celery, redis`; the tests find it through RESEE_TEST_CELERY_PYTHON.
#    moto[server] goes into the same venv for the S3 target's tests (RESEE_TEST_MOTO_SERVER), which start
#    their own moto_server on a free loopback port.
# 2. Checks that resee-ops-core stays free of HTTP, database and Redis clients.
# 3. Runs every test of every crate, doctests included, with all features. Tests that need PostgreSQL or
#    Redis use RESEE_TEST_DATABASE_URL / RESEE_TEST_REDIS_URL, else the local default servers, else start
#    private throwaway servers from the installed binaries (resee_ops_core::testing::services). Nothing is
#    skipped: a missing server is a failing test that names what to install.
# 4. Builds the docs with warnings as errors (broken intra-doc links).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

have_pg_server() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_pg_server || missing+=(postgresql)
command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v gzip >/dev/null 2>&1 || missing+=(gzip)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if ((${#missing[@]})); then
  # shellcheck disable=SC2207
  missing=($(printf '%s\n' "${missing[@]}" | sort -u))
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "missing packages: ${missing[*]} (Debian: sudo apt-get install ${missing[*]}); tests that need them will fail"
  fi
fi

# The Korean lc_messages test (resee-ops-backup, tests/preflight.rs) runs a PostgreSQL that speaks Korean: it
# needs the ko_KR.UTF-8 locale, and fails loudly (never skips) without it.
if ! locale -a 2>/dev/null | grep -qix 'ko_KR\.utf8'; then
  if [[ $(id -u) -eq 0 ]]; then
    log "generating the ko_KR.UTF-8 locale for the Korean lc_messages test"
    if ! command -v localedef >/dev/null 2>&1 || [[ ! -e /usr/share/i18n/locales/ko_KR ]]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq --no-install-recommends locales >/dev/null
    fi
    localedef -i ko_KR -f UTF-8 ko_KR.UTF-8
  else
    log "the ko_KR.UTF-8 locale is missing (as root: localedef -i ko_KR -f UTF-8 ko_KR.UTF-8); the Korean test will fail"
  fi
fi

# Celery for the Celery-compatibility tests. Pinned: the wire format was measured on these versions
# (shared research: celery 5.7.0 / kombu 5.7.0 / redis-py 8.1.0).
celery_ok() { "$1" -c 'import celery, redis, packaging; assert celery.__version__.startswith("5.")' >/dev/null 2>&1; }
if [[ -n ${RESEE_TEST_CELERY_PYTHON:-} ]] && celery_ok "$RESEE_TEST_CELERY_PYTHON"; then
  log "Celery tests use $RESEE_TEST_CELERY_PYTHON"
else
  if ! celery_ok .venv-test/bin/python; then
    log "creating .venv-test with celery 5.7 for the Celery tests"
    rm -rf .venv-test
    python3 -m venv .venv-test
    .venv-test/bin/pip install -q 'celery==5.7.0' 'redis==8.1.0' 'packaging>=24'
  fi
  RESEE_TEST_CELERY_PYTHON="$PWD/.venv-test/bin/python"
fi
export RESEE_TEST_CELERY_PYTHON

# moto_server, the S3-compatible server the S3 target's tests start on loopback (one per test binary), in
# the same venv unless RESEE_TEST_MOTO_SERVER names a working one. Pinned: the version the tests ran on.
moto_ok() { [[ -x $1 ]] && "$1" --help >/dev/null 2>&1; }
if [[ -n ${RESEE_TEST_MOTO_SERVER:-} ]] && moto_ok "$RESEE_TEST_MOTO_SERVER"; then
  log "S3 tests use $RESEE_TEST_MOTO_SERVER"
else
  if ! moto_ok .venv-test/bin/moto_server; then
    log "installing moto[server] 5.2 into .venv-test for the S3 tests"
    [[ -x .venv-test/bin/pip ]] || python3 -m venv .venv-test
    .venv-test/bin/pip install -q 'moto[server]==5.2.5'
  fi
  RESEE_TEST_MOTO_SERVER="$PWD/.venv-test/bin/moto_server"
fi
export RESEE_TEST_MOTO_SERVER

log "checking that resee-ops-core has no HTTP, database or Redis client"
if cargo tree -p resee-ops-core -e normal --prefix none | grep -E '^(reqwest|tokio-postgres|sqlx|redis|hyper|object_store) '; then
  log "resee-ops-core must stay light: the crates above belong in adapter crates"
  exit 1
fi

log "running the test suite (all crates, all features, doctests included)"
cargo test --workspace --all-features --no-fail-fast

log "building the docs with warnings as errors"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet
log "all tests passed"
