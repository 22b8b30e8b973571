#!/usr/bin/env bash
# The reference service's idle cost: resident memory (goal ≤ 30 MiB), CPU time and wake-ups (context
# switches) per hour, measured on the release build of `resee_ops` after its catch-up backup, while it only
# waits (scheduler idle, health cycle every 30 s, HTTP idle).
#
#   benches/scripts/service_idle.sh            # DURATION=120 seconds of idle by default
#
# Uses DATABASE_URL / REDIS_URL when set, else the local defaults; writes backups to a temporary directory;
# listens on 127.0.0.1:${PORT:-18099}.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-120}
PORT=${PORT:-18099}
cargo build --release -q -p resee-ops-examples --example resee_ops
BIN=${CARGO_TARGET_DIR:-target}/release/examples/resee_ops
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

RESEE_BACKUP_DIR=$WORK/backups RESEE_HTTP_ADDR=127.0.0.1:$PORT "$BIN" >"$WORK/out" 2>"$WORK/log" &
PID=$!
for _ in $(seq 1 600); do
  if ls "$WORK"/backups/*.manifest.json >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$PORT/health/live" >/dev/null; then break; fi
  sleep 0.1
done
ls "$WORK"/backups/*.manifest.json >/dev/null || { echo "no catch-up backup:"; cat "$WORK/log"; exit 1; }
sleep 5 # settle after the backup

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
switches() { cat /proc/"$PID"/task/*/status | awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s}'; }
rss() { awk "/^$1:/ {print \$2}" "/proc/$PID/status"; }
HZ=$(getconf CLK_TCK)

T0=$(ticks); S0=$(switches); RSS0=$(rss VmRSS)
sleep "$DURATION"
T1=$(ticks); S1=$(switches); RSS1=$(rss VmRSS); HWM=$(rss VmHWM); THREADS=$(ls /proc/$PID/task | wc -l)

awk -v t=$((T1 - T0)) -v s=$((S1 - S0)) -v d="$DURATION" -v hz="$HZ" -v r0="$RSS0" -v r1="$RSS1" -v hwm="$HWM" -v th="$THREADS" 'BEGIN {
  printf "service idle over %d s: RSS %.1f MiB -> %.1f MiB (peak %.1f MiB, the catch-up backup included), %d threads\n", d, r0/1024, r1/1024, hwm/1024, th
  printf "service idle per hour: %.2f CPU-seconds, %.0f context switches (wake-ups)\n", t/hz*3600/d, s*3600/d
}'
kill -TERM $PID
wait $PID && echo "exit after SIGTERM: 0" || echo "exit after SIGTERM: $?"
