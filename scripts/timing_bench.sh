#!/usr/bin/env bash
# The cost of timing every command (issue 21): BENCH_COMMANDS `!roll 1d6` lines (30,000), paced
# at BENCH_RATE a second (10,000) after the plugin's hello, through the built-in dice-roller (a
# Rust plugin in its own process), `rosey run --exit-at-eof` under /usr/bin/time: the answers
# counted, the host's own CPU (user + system of the rosey process, read from /proc while it
# runs) per command, and the CPU of rosey and its plugin together. Each binary runs
# BENCH_ROUNDS times (3), alternating, and the medians are printed. Method and figures:
# docs/performance.md ("The cost of timing every command").
#
#   scripts/timing_bench.sh BEFORE_BINARY AFTER_BINARY
set -euo pipefail
commands=${BENCH_COMMANDS:-30000}
rate=${BENCH_RATE:-10000}
rounds=${BENCH_ROUNDS:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/rosey.json" <<JSON
{"dashboard": {"enabled": false}, "plugins": [{"name": "dice-roller", "builtin": "dice-roller"}]}
JSON
# Lines in batches every 10 ms, so the pace holds at 10,000 a second.
cat > "$dir/pacer.py" <<'PY'
import sys, time
n, rate = int(sys.argv[1]), int(sys.argv[2])
time.sleep(1)  # after the hello
batch = max(1, rate // 100)
start, sent = time.monotonic(), 0
while sent < n:
    k = min(batch, n - sent)
    sys.stdout.write("!roll 1d6\n" * k)
    sys.stdout.flush()
    sent += k
    delay = start + sent / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
PY
declare -A results
for round in $(seq "$rounds"); do
  for which in before after; do
    binary=$([ "$which" = before ] && echo "$1" || echo "$2")
    python3 "$dir/pacer.py" "$commands" "$rate" \
      | /usr/bin/time -f "%U %S %e" -o "$dir/time" "$binary" --config "$dir/rosey.json" run --exit-at-eof \
        > "$dir/out" 2> "$dir/err" &
    timer=$!
    # The host alone: rosey's own utime + stime (/proc/PID/stat fields 14 and 15), read until
    # it exits (it idles for its last moments: waiting for the replies, then stopping).
    host=""
    while kill -0 "$timer" 2>/dev/null; do
      pid=$(pgrep -P "$timer" | head -n 1 || true)
      if [ -n "$pid" ]; then
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true)
        [ -n "$ticks" ] && host=$ticks
      fi
      sleep 0.05
    done
    wait "$timer" || true
    answered=$(grep -c '^\[dice-roller\]' "$dir/out" || true)
    hosts=$(grep -c '^\[rosey\]' "$dir/out" || true)
    read -r user sys wall < "$dir/time"
    cpu=$(echo "$user + $sys" | bc)
    host_s=$(echo "scale=3; ${host:-0} / $(getconf CLK_TCK)" | bc)
    per=$(echo "scale=2; $host_s * 1000000 / $commands" | bc)
    echo "$which round $round: answered $answered/$commands by the plugin, $hosts by the host, in ${wall} s ($(echo "scale=0; $answered / ($wall - 1)" | bc)/s after the 1 s wait); host CPU ${host_s} s = ${per} us/command; with the plugin ${cpu} s"
    results[$which]+="$host_s "
    results[$which]+="$cpu "
  done
done
for which in before after; do
  median=$(echo "${results[$which]}" | tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$which: median host CPU ${median} s, $(echo "scale=2; $median * 1000000 / $commands" | bc) us/command"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
