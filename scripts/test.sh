#!/usr/bin/env bash
# The whole test suite of resee-ops, on a fresh machine or a used one.
#
# 1. Makes sure the server binaries the tests use are installed (PostgreSQL, Redis). As root it installs
#    missing Debian packages; otherwise it says what to install and fails.
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
