#!/usr/bin/env bash
# End-to-end backup timing: resee-ops-backup against the classic shell pipelines, in one run, same machine.
#
#   benches/scripts/backup_vs_shell.sh            # RUNS=3 by default; medians are reported
#
# Creates the ~1.3 GB database `resee_bench` (pgbench scale 60 plus a text-heavy table) on the server named
# by PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432, postgres) unless it exists, then times:
#   raw        pg_dump > /dev/null
#   gzip6      pg_dump | gzip -6 > file
#   pigz2      pg_dump | pigz -p 2 > file
#   ours       resee-ops-backup, default profile (libdeflate level 5, block-parallel) INCLUDING its read-back
#              verification
#   ours_l4    the default profile at level 4, verification included   } the candidates the default level
#   ours_l6    the default profile at level 6, verification included   } was chosen from
#   ours_zstd  resee-ops-backup, zstd profile (level 3, multithreaded), verification included
#   gzip_t     gzip -t on the gzip -6 file
#   verify     resee-ops-backup verify-only on our default file (inflate + CRC + trailer + SHA-256 + manifest)
#   verify_zstd  the same on our zstd file
# and prints wall time, CPU (user+sys of the measured processes; the PostgreSQL server's CPU is not
# included), peak RSS, output size and ratios. Targets (issue 13): ours <= 0.45 x gzip6 wall and <= 3 %
# larger; ours_zstd <= 1.10 x raw wall; peak RSS <= 32 MiB; verify faster than gzip -t.
# Needs: PostgreSQL client tools, pgbench, GNU time, pigz.
set -euo pipefail

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB="${BENCH_DB:-resee_bench}"
RUNS="${RUNS:-3}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/resee-backup-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

need() { command -v "$1" >/dev/null 2>&1; }
# Debian keeps pgbench (and the newest client tools) under /usr/lib/postgresql/*/bin.
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$PGBIN" ] && export PATH="$PATH:$PGBIN"
if ! need pigz || [ ! -x /usr/bin/time ]; then
  echo "installing pigz / time ..." >&2
  apt-get install -y -qq pigz time >/dev/null
fi
for tool in pg_dump psql pgbench gzip pigz; do need "$tool" || { echo "missing $tool" >&2; exit 1; }; done

# --- the database ------------------------------------------------------------------------------------------
if ! psql -X -qAt -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  echo "creating $DB (pgbench scale 60 + text table; a few minutes) ..." >&2
  createdb "$DB"
  pgbench -i -s 60 -q "$DB" >&2
  psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<'SQL'
CREATE TABLE notes (id int PRIMARY KEY, author text, title text, body text, created timestamptz);
INSERT INTO notes
SELECT g,
       (ARRAY['anna','bob','chloé','dmitri','eve','fatima','günter','hiro'])[1 + g % 8],
       'Note ' || g || ' about ' || (ARRAY['spaced repetition','flashcards','review queue','deck sync'])[1 + g % 4],
       repeat((ARRAY['The quick brown fox jumps over the lazy dog. ',
                     'Lorem ipsum dolor sit amet, consectetur adipiscing elit. ',
                     'Spaced repetition schedules reviews at growing intervals. ',
                     'Überprüfung der Karten: 日本語のテキストも含まれます。 '])[1 + (g * 7) % 4], 3 + g % 5)
         || md5(g::text),
       '2024-01-01'::timestamptz + g * interval '37 seconds'
FROM generate_series(1, 1200000) g;
SQL
  psql -X -q -d "$DB" -c "VACUUM ANALYZE" >&2
fi
echo "database: $(psql -X -qAt -d "$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")" >&2

# --- our binary (release) ----------------------------------------------------------------------------------
# BIN=path measures an already built backup_cli instead of building one.
. "$(dirname "$0")/backup_cli.sh"

# --- measuring ---------------------------------------------------------------------------------------------
# measure NAME CMD...: runs CMD under GNU time, appends "name wall cpu rss_kib size" to $WORK/results.
measure() {
  local name="$1"; shift
  local tv="$WORK/time.$name" out="$WORK/out.$name"
  rm -rf "$WORK/ours"; mkdir -p "$WORK/ours"
  /usr/bin/time -v -o "$tv" "$@" 2>"$WORK/stderr.$name" >"$out" || { echo "$name failed:" >&2; cat "$WORK/stderr.$name" >&2; exit 1; }
  local wall cpu rss size
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tv")
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$tv")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
  # Our process's own peak (VmHWM), without the pg_dump child that GNU time may report instead.
  if grep -q '^peak_rss_kib=' "$WORK/stderr.$name"; then rss=$(sed -n 's/^peak_rss_kib=//p' "$WORK/stderr.$name"); fi
  size=0
  case "$name" in
    gzip6|pigz2) size=$(stat -c %s "$WORK/file.$name") ;;
    ours*) size=$(sed -n 's/.*"size_bytes":\([0-9]*\).*/\1/p' "$out")
           [ "$name" = ours ] && { rm -rf "$WORK/keep"; mv "$WORK/ours" "$WORK/keep"; }
           [ "$name" = ours_zstd ] && { rm -rf "$WORK/keepz"; mv "$WORK/ours" "$WORK/keepz"; } ;;
  esac
  echo "$name $wall $cpu $rss $size" >>"$WORK/results"
}

[ "$RUNS" -gt 0 ] || { echo "RUNS=0: database and binary are ready" >&2; exit 0; }
RAW_BYTES=$(pg_dump -d "$DB" | wc -c)
echo "plain dump: $((RAW_BYTES / 1048576)) MiB; $RUNS runs of each" >&2
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/results"
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS ..." >&2
  measure raw       bash -c "set -o pipefail; pg_dump -d '$DB' >/dev/null"
  measure gzip6     bash -c "set -o pipefail; pg_dump -d '$DB' | gzip -6 >'$WORK/file.gzip6'"
  measure pigz2     bash -c "set -o pipefail; pg_dump -d '$DB' | pigz -p 2 >'$WORK/file.pigz2'"
  measure ours      "$BIN" dump "$WORK/ours" default
  measure ours_l4   env RESEE_BACKUP_LEVEL=4 "$BIN" dump "$WORK/ours" default
  measure ours_l6   env RESEE_BACKUP_LEVEL=6 "$BIN" dump "$WORK/ours" default
  measure ours_zstd "$BIN" dump "$WORK/ours" zstd
  measure gzip_t    gzip -t "$WORK/file.gzip6"
  measure verify    "$BIN" verify "$(ls "$WORK"/keep/*.sql.gz)"
  measure verify_zstd "$BIN" verify "$(ls "$WORK"/keepz/*.sql.zst)"
  rm -f "$WORK/file.pigz2"
done

# --- report ------------------------------------------------------------------------------------------------
[ -z "${KEEP_RESULTS:-}" ] || cp "$WORK/results" "$KEEP_RESULTS" # the raw figures (name wall cpu rss size)
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
awk -v raw="$RAW_BYTES" -v runs="$RUNS" -v ncpu="$(nproc)" '
  function median(arr, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j+1] = arr[j]; arr[j+1] = t }
    return (n % 2) ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2
  }
  { k = $1; if (!(k in idx)) { idx[k] = ++seen; names[seen] = k }
    n[k]++; W[k, n[k]] = $2; C[k, n[k]] = $3; R[k, n[k]] = $4; S[k] = $5 }
  END {
    for (i = 1; i <= seen; i++) {
      k = names[i]
      for (j = 1; j <= n[k]; j++) { w[j] = W[k, j]; c[j] = C[k, j]; r[j] = R[k, j] }
      mw[k] = median(w, n[k]); mc[k] = median(c, n[k]); mr[k] = median(r, n[k])
    }
    printf "\nplain dump %.0f MiB, medians of %d runs (CPU excludes the PostgreSQL server)\n\n", raw / 1048576, runs
    printf "%-10s %8s %8s %10s %10s %7s %9s %9s %9s\n", "variant", "wall s", "cpu s", "rss MiB", "size MiB", "ratio", "/gzip6", "/pigz2", "/raw"
    for (i = 1; i <= seen; i++) {
      k = names[i]
      ratio = S[k] > 0 ? sprintf("%.2f", raw / S[k]) : "-"
      size = S[k] > 0 ? sprintf("%.1f", S[k] / 1048576) : "-"
      printf "%-10s %8.2f %8.2f %10.1f %10s %7s %9.2f %9.2f %9.2f\n", k, mw[k], mc[k], mr[k] / 1024, size, ratio, mw[k] / mw["gzip6"], mw[k] / mw["pigz2"], mw[k] / mw["raw"]
    }
    printf "\nsize vs gzip -6: ours %+.1f %%, level 4 %+.1f %%, level 6 %+.1f %%, zstd %+.1f %%\n", (S["ours"] / S["gzip6"] - 1) * 100, (S["ours_l4"] / S["gzip6"] - 1) * 100, (S["ours_l6"] / S["gzip6"] - 1) * 100, (S["ours_zstd"] / S["gzip6"] - 1) * 100
    printf "ours / gzip6 wall: %.2f (target <= 0.45); ours_zstd / raw wall: %.2f (target <= 1.10)\n", mw["ours"] / mw["gzip6"], mw["ours_zstd"] / mw["raw"]
    printf "verify / gzip -t wall: %.2f; verify_zstd / gzip -t wall: %.2f (target < 1)\n", mw["verify"] / mw["gzip_t"], mw["verify_zstd"] / mw["gzip_t"]
    printf "peak RSS (VmHWM): ours %.1f MiB, ours_zstd %.1f MiB, verify %.1f MiB, verify_zstd %.1f MiB (target <= 32)\n", mr["ours"] / 1024, mr["ours_zstd"] / 1024, mr["verify"] / 1024, mr["verify_zstd"] / 1024
    # On 2 cores the backup cannot finish before its CPU time (ours and that of pg_dump; the server comes on
    # top) is spent on both cores: the wall time of the best possible overlap.
    printf "CPU floor on %d cores, without the server: ours (cpu %.2f + pg_dump %.2f) / %d = %.2f s = %.2f x gzip6 wall\n", ncpu, mc["ours"], mc["raw"], ncpu, (mc["ours"] + mc["raw"]) / ncpu, (mc["ours"] + mc["raw"]) / ncpu / mw["gzip6"]
  }' "$WORK/results"
