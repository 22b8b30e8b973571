#!/usr/bin/env bash
# A backup to S3 (moto_server on loopback) against the same backup to the local target, in one run.
#
#   benches/scripts/backup_s3_vs_local.sh          # RUNS=3 by default; medians are reported
#
# Uses the bench database `resee_bench` (created by benches/scripts/backup_vs_shell.sh if absent: run that
# once with RUNS=0) and times, interleaved, RUNS times each:
#   local      resee-ops-backup, default profile, into a local directory (verification included)
#   s3_8m      the same into S3 with 8 MiB parts (the default), read back from S3 and verified, published by
#              a server-side conditional copy, manifest last
#   s3_16m     16 MiB parts
#   s3_32m     32 MiB parts
# Wall time (GNU time), our process's own peak RSS (VmHWM, printed by backup_cli: pg_dump is a child and
# not counted), and the ratios to `local`. Target (issue 12): peak RSS <= 64 MiB with the default part size.
# moto keeps objects in memory: each S3 run's objects are deleted after it is measured.
# Needs: PostgreSQL client tools, GNU time, curl, and moto_server (MOTO_SERVER, else .venv-test from
# scripts/test.sh, else PATH).
set -euo pipefail

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB="${BENCH_DB:-resee_bench}"
RUNS="${RUNS:-3}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/resee-s3-bench.XXXXXX")"
MOTO_PID=
cleanup() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

MOTO="${MOTO_SERVER:-$ROOT/.venv-test/bin/moto_server}"
[ -x "$MOTO" ] || MOTO="$(command -v moto_server || true)"
[ -x "$MOTO" ] || { echo "moto_server not found: run scripts/test.sh (it creates .venv-test) or set MOTO_SERVER" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is missing: apt-get install time" >&2; exit 1; }
if ! psql -X -qAt -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  echo "database $DB is missing: run RUNS=0 benches/scripts/backup_vs_shell.sh first (it creates it)" >&2
  exit 1
fi
echo "database: $(psql -X -qAt -d postgres -c "SELECT pg_size_pretty(pg_database_size('$DB'))")" >&2

# --- moto on loopback --------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MOTO" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
EP="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -s -o /dev/null "$EP" && break; sleep 0.1; done
BUCKET=resee-bench
curl -s -X PUT "$EP/$BUCKET" >/dev/null
export BACKUP_S3_BUCKET="$BUCKET" BACKUP_S3_ENDPOINT="$EP" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret

# --- our binary (release) ----------------------------------------------------------------------------------
# BIN=path measures an already built backup_cli instead of building one.
. "$(dirname "$0")/backup_cli.sh"

# measure NAME CMD...: runs CMD under GNU time, appends "name wall rss_kib size" to $WORK/results.
measure() {
  local name="$1"; shift
  local tv="$WORK/time.$name" out="$WORK/out.$name"
  /usr/bin/time -v -o "$tv" "$@" 2>"$WORK/stderr.$name" >"$out" || { echo "$name failed:" >&2; cat "$WORK/stderr.$name" >&2; exit 1; }
  local wall rss size
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tv")
  rss=$(sed -n 's/^peak_rss_kib=//p' "$WORK/stderr.$name")
  size=$(sed -n 's/.*"size_bytes":\([0-9]*\).*/\1/p' "$out")
  grep -q '"status":"success"' "$out" || { echo "$name did not succeed: $(cat "$out")" >&2; exit 1; }
  echo "$name $wall $rss $size" >>"$WORK/results"
}

# Deletes every object under a prefix (moto accepts unsigned requests).
purge() {
  curl -s "$EP/$BUCKET?list-type=2&prefix=$1" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' |
    while read -r key; do curl -s -X DELETE "$EP/$BUCKET/$key" >/dev/null; done
}

[ "$RUNS" -gt 0 ] || { echo "RUNS=0: moto and binary are ready" >&2; exit 0; }
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/results"
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS ..." >&2
  rm -rf "$WORK/local"; mkdir -p "$WORK/local"
  measure local "$BIN" dump "$WORK/local" default
  for mib in 8 16 32; do
    prefix="run$run-$mib"
    measure "s3_${mib}m" env BACKUP_S3_PREFIX="$prefix" BACKUP_S3_PART_SIZE="${mib}MiB" "$BIN" dump-s3 default
    purge "$prefix"
  done
done

# --- report ------------------------------------------------------------------------------------------------
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
awk -v runs="$RUNS" '
  function median(arr, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j+1] = arr[j]; arr[j+1] = t }
    return (n % 2) ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2
  }
  { k = $1; if (!(k in idx)) { idx[k] = ++seen; names[seen] = k }
    n[k]++; W[k, n[k]] = $2; R[k, n[k]] = $3; S[k] = $4 }
  END {
    for (i = 1; i <= seen; i++) {
      k = names[i]
      for (j = 1; j <= n[k]; j++) { w[j] = W[k, j]; r[j] = R[k, j] }
      mw[k] = median(w, n[k]); mr[k] = median(r, n[k])
    }
    printf "\nmedians of %d runs; peak RSS is our process alone (VmHWM)\n\n", runs
    printf "%-8s %8s %10s %10s %9s %9s\n", "variant", "wall s", "rss MiB", "size MiB", "/local", "rss/local"
    for (i = 1; i <= seen; i++) {
      k = names[i]
      printf "%-8s %8.2f %10.1f %10.1f %9.2f %9.2f\n", k, mw[k], mr[k] / 1024, S[k] / 1048576, mw[k] / mw["local"], mr[k] / mr["local"]
    }
    printf "\ndefault part size (8 MiB): peak RSS %.1f MiB (target <= 64)\n", mr["s3_8m"] / 1024
  }' "$WORK/results"
