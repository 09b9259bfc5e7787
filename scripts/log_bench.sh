#!/usr/bin/env bash
# What each plugin's log costs the host (issue 23, item 1). Figures: docs/performance.md,
# "Each plugin's log".
#
#   scripts/log_bench.sh        # about 3 minutes
#
# Starts the release rosey with one plugin that writes stderr lines as fast as it can for
# BENCH_FLOOD_SECONDS (10), 3 s after it starts, then, 1.5 s later, `flood done N lines in S s`.
# Measured over the flood (from its start to 2 s after its end): the plugin's own count of
# lines written (proof it was never held back: a blocked pipe would stall its writes), the
# host's CPU (utime + stime of the rosey process alone) and its RSS before and after; with a
# binary that has the log, also the lines kept (`next`) and dropped (`dropped`) from
# /api/plugin/flood/logs. Three configurations, each run BENCH_RUNS (3) times, alternating,
# medians reported:
#   before     BENCH_BEFORE (a rosey binary without the log, e.g. main's release build): the
#              pipe was read and split then too, so this is the cost of reading alone;
#   default    this tree's build, the default budget (logs.lines_per_second 1000);
#   unlimited  this tree's build, logs.lines_per_second 4294967295: every line kept, so
#              (CPU unlimited - CPU before) / lines kept is the cost per captured line.
# Without BENCH_BEFORE the first column is skipped. Knobs: BENCH_ROSEY (the binary to measure
# instead of target/release/rosey), BENCH_RUNS, BENCH_FLOOD_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${BENCH_RUNS:-3}
FLOOD=${BENCH_FLOOD_SECONDS:-10}
CLK=$(getconf CLK_TCK)

if [ -z "${BENCH_ROSEY:-}" ]; then
  cargo build --release --bin rosey
fi
ROSEY=${BENCH_ROSEY:-$ROOT/target/release/rosey}
BEFORE=${BENCH_BEFORE:-}
echo "measuring $ROSEY${BEFORE:+ against $BEFORE}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rosey-log-bench.XXXXXX")
BENCH_NAME=log_bench
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$WORK/flood.py" <<'PY'
import sys, time
seconds = float(sys.argv[1])
time.sleep(3)
err = sys.stderr.buffer
line = b"flood line " + b"x" * 60 + b"\n"
start = time.monotonic()
count = 0
while time.monotonic() - start < seconds:
    err.write(line * 64)
    count += 64
err.flush()
took = time.monotonic() - start
time.sleep(1.5)
err.write(f"flood done {count} lines in {took:.2f} s\n".encode())
err.flush()
time.sleep(86400)
PY

# run LABEL BINARY LOGS_JSON: one "RUN label=… key=value …" line.
run() {
  local label=$1 binary=$2 logs=$3 port pid url ticks t0 t1 rss0 rss1 written took kept dropped page
  port=$(free_port)
  printf '{"dashboard": {"host": "127.0.0.1", "port": %s}, "chat": {"console": false}, %s
 "plugins": [{"name": "flood", "command": ["python3", "%s", "%s"]}]}\n' \
    "$port" "$logs" "$WORK/flood.py" "$FLOOD" >"$WORK/rosey.json"
  ROSEY_LOG=info "$binary" --config "$WORK/rosey.json" </dev/null >/dev/null 2>"$WORK/rosey.log" &
  pid=$!
  url=http://127.0.0.1:$port
  until curl -fsS -o /dev/null --max-time 2 "$url/health" 2>/dev/null; do sleep 0.1; done
  sleep 2 # the plugin floods 3 s after it starts
  rss0=$(rss_kib "$pid")
  ticks=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  until grep -q "flood done" "$WORK/rosey.log"; do sleep 0.2; done
  t1=$(date +%s.%N)
  ticks=$(($(cpu_ticks "$pid") - ticks))
  rss1=$(rss_kib "$pid")
  written=$(grep -o 'flood done [0-9]* lines in [0-9.]* s' "$WORK/rosey.log" | head -1 | cut -d' ' -f3)
  took=$(grep -o 'flood done [0-9]* lines in [0-9.]* s' "$WORK/rosey.log" | head -1 | cut -d' ' -f6)
  kept=- dropped=-
  if page=$(curl -fsS "$url/api/plugin/flood/logs?tail=0" 2>/dev/null); then
    kept=$(grep -o '"next":[0-9]*' <<<"$page" | cut -d: -f2)
    dropped=$(grep -o '"dropped":[0-9]*' <<<"$page" | cut -d: -f2)
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk -v l="$label" -v w="$written" -v s="$took" -v k="$kept" -v d="$dropped" -v t="$ticks" -v c="$CLK" \
    -v a="$t0" -v b="$t1" -v r0="$rss0" -v r1="$rss1" 'BEGIN {
      printf "RUN label=%s written_per_s=%.0f kept=%s dropped=%s cpu_s=%.2f cpu_pct=%.1f ns_per_line=%.1f rss0_mib=%.1f rss1_mib=%.1f\n",
        l, w / s, k, d, t / c, t / c / (b - a) * 100, t / c / w * 1e9, r0 / 1024, r1 / 1024 }' | tee -a "$WORK/runs"
}

for round in $(seq "$RUNS"); do
  echo "== round $round"
  [ -z "$BEFORE" ] || run before "$BEFORE" ''
  run default "$ROSEY" ''
  run unlimited "$ROSEY" '"logs": {"lines_per_second": 4294967295},'
done

echo
echo "| Configuration | lines/s written by the plugin | lines kept | dropped | host CPU over the flood | host CPU % | host CPU per line read | RSS before → after |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for label in before default unlimited; do
  grep -q "label=$label " "$WORK/runs" || continue
  python3 - "$WORK/runs" "$label" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in open(sys.argv[1]) if f"label={sys.argv[2]} " in l]
def med(key, fmt="{:.0f}"):
    values = [r[key] for r in rows]
    if "-" in values:
        return "—"
    return fmt.format(statistics.median(float(v) for v in values))
print(f"| {sys.argv[2]} | {med('written_per_s')} | {med('kept')} | {med('dropped')} | {med('cpu_s', '{:.2f}')} s "
      f"| {med('cpu_pct', '{:.1f}')} | {med('ns_per_line', '{:.0f}')} ns | {med('rss0_mib', '{:.1f}')} → {med('rss1_mib', '{:.1f}')} MiB |")
PY
done
echo "(medians of $RUNS runs; load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
