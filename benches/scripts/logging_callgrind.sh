#!/usr/bin/env bash
# Instructions per logging event on the caller's thread, counted by callgrind: unlike the latency
# percentiles of `cargo bench --bench logging`, this figure does not move with the machine's load.
#
#   benches/scripts/logging_callgrind.sh          # EVENTS=20000 measured events per writer by default
#
# Runs the logging bench binary with RESEE_LOGGING_EVENTS=N (10,000 warm-up events, then N events inside
# `measured_resee_ops_logging`, the same for `measured_tracing_appender`; the same JSON event with 5 fields
# as the bench) under `valgrind --tool=callgrind`, collecting only inside those two functions on the
# calling thread, and prints instructions (Ir) per event for both. The writers' background threads are not
# counted: they are not the caller's cost.
# KEEP=DIR keeps the callgrind files there (for callgrind_annotate). Needs: valgrind.
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${EVENTS:-20000}
command -v valgrind >/dev/null || { echo "missing valgrind (apt-get install valgrind)" >&2; exit 1; }
BIN="$(cargo bench -p resee-ops-benches --bench logging --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\/logging-[^"]*\)".*/\1/p' | tail -1)"
[ -x "$BIN" ] || { echo "could not build the logging bench" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for writer in resee_ops_logging tracing_appender; do
  RESEE_LOGGING_EVENTS=$EVENTS valgrind --tool=callgrind --separate-threads=yes --collect-atstart=no \
    "--toggle-collect=*measured_${writer}*" --callgrind-out-file="$WORK/cg.$writer.%p" "$BIN" \
    >/dev/null 2>"$WORK/log.$writer" || { cat "$WORK/log.$writer" >&2; exit 1; }
  # With --separate-threads each thread has its own file (`-NN` suffix); only the caller's collects.
  cat "$WORK"/cg."$writer".* | awk -v w="$writer" -v n="$EVENTS" '/^summary:/ {s += $2}
    END {printf "%-20s %8d events %14d Ir %10.0f Ir/event\n", w, n, s, s / n}'
  [ -z "${KEEP:-}" ] || cp "$WORK"/cg."$writer".* "$KEEP"/
done
