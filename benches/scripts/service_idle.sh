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
if [ -z "${BIN:-}" ]; then # BIN=path measures an already built binary instead
  cargo build --release -q -p resee-ops-examples --example resee_ops
  BIN=${CARGO_TARGET_DIR:-target}/release/examples/resee_ops
fi
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

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; } # all threads, exited ones included
rss() { awk "/^$1:/ {print \$2}" "/proc/$PID/status"; }
HZ=$(getconf CLK_TCK)
# Context switches per thread, sampled every second: threads come and go (Tokio's blocking pool), so the
# deltas are summed per thread id (a new thread counts from zero).
declare -A LAST
SWITCHES=0
sample() {
  local task tid n
  for task in /proc/"$PID"/task/*; do
    tid=${task##*/}
    n=$(awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}' "$task/status" 2>/dev/null) || continue
    [ -n "$n" ] || continue
    if [ -n "${LAST[$tid]:-}" ]; then SWITCHES=$((SWITCHES + n - LAST[$tid])); fi
    LAST[$tid]=$n
  done
}

sample; SWITCHES=0
T0=$(ticks); RSS0=$(rss VmRSS)
for _ in $(seq 1 "$DURATION"); do sleep 1; sample; done
T1=$(ticks); RSS1=$(rss VmRSS); HWM=$(rss VmHWM); THREADS=$(ls /proc/$PID/task | wc -l)

awk -v t=$((T1 - T0)) -v s="$SWITCHES" -v d="$DURATION" -v hz="$HZ" -v r0="$RSS0" -v r1="$RSS1" -v hwm="$HWM" -v th="$THREADS" 'BEGIN {
  printf "service idle over %d s: RSS %.1f MiB -> %.1f MiB (peak %.1f MiB, the catch-up backup included), %d threads\n", d, r0/1024, r1/1024, hwm/1024, th
  printf "service idle per hour: %.2f CPU-seconds (%d ticks of 1/%d s measured), %.0f context switches (wake-ups)\n", t/hz*3600/d, t, hz, s*3600/d
}'
kill -TERM $PID
wait $PID && echo "exit after SIGTERM: 0" || echo "exit after SIGTERM: $?"
