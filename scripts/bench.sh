#!/usr/bin/env bash
# The reproducible performance benchmark (issue 7). Method and figures: docs/performance.md.
#
#   scripts/bench.sh            # about 10 minutes; prints every figure against its target
#
# In one run, on this machine, using loopback addresses only:
#  1. builds rosey, examples/fixed_body.rs, examples/sse_fanout.rs and benches/collector.rs
#     (release);
#  2. starts rosey with 100 built-in plugins (50 dice-roller, 50 8ball, named like the seed
#     peer's: dice-roller, 8ball, plugin-2 .. plugin-99; 5 s polls; dashboard on 127.0.0.1 and a
#     free port) and the seed's aiohttp design with 100 plugins (../shared/bench/seed_peer.py,
#     called where it lies; that column is skipped with a notice when it or aiohttp is absent);
#  3. waits until both answer and all 100 plugins run, then until each plugin's history holds
#     60 points (5 minutes: the JSON history and the sparklines reach their steady-state size);
#     the host's idle CPU (utime+stime of the rosey process, not its plugins) is measured over
#     the last 20 s of that wait, then its resident memory;
#  4. SSE fan-out: 1,000 concurrent /events clients (examples/sse_fanout.rs): delay from a
#     snapshot's publication to its arrival (p50, p99, max) and host memory per client;
#  5. wrk, the same settings everywhere (2 threads, 50 connections, 5 s runs; a 2 s warm-up per
#     target): /api/metrics, /metrics, / and /api/plugin/plugin-50 on rosey and on the seed peer
#     (/metrics and / twice: plain, and with the Accept-Encoding: gzip their real clients send),
#     rosey's own /api/metrics bytes served as a fixed body by plain poem
#     (examples/fixed_body.rs), and rosey's /health (the ceiling: its smallest response); the
#     targets of one comparison run in alternation, 3 rounds, and the medians are reported;
#  6. cargo bench --bench collector: one hour of history for 100 plugins, aggregates, the
#     sampler's CPU per tick, rendering cost per snapshot;
#  7. scale (issue 16): rosey alone with 100 and then 1,000 tiny `sleep` plugins (5 s polls,
#     1 h history): start-up time to all RUNNING, host idle CPU and resident memory, the worst
#     time of each /api/* route and the page, and the bytes one /events client receives per
#     snapshot in the steady state (no state changes; measured over BENCH_SCALE_SNAPSHOTS
#     snapshots once the uptimes show minutes), beside the full frame sent on connect;
#  8. prints a summary table (Markdown) with met / MISSED for every target.
#
#   scripts/bench.sh scale      # step 7 alone (about 6 minutes; with BENCH_ROSEY, no build)
#
# Knobs (environment): BENCH_DURATION (seconds per wrk run, default 5), BENCH_ROUNDS (3),
# BENCH_WARMUP (2), BENCH_SSE_CLIENTS (1000), BENCH_SSE_SNAPSHOTS (3), BENCH_IDLE_SECONDS (20),
# BENCH_HISTORY_POINTS (60; 0 skips the history wait), BENCH_ROSEY_LOG (rosey's ROSEY_LOG, warn),
# BENCH_SCALE_SNAPSHOTS (13), BENCH_SCALE_PLUGINS (the sizes of step 7, "100 1000"),
# BENCH_ROSEY (a rosey binary to measure instead of the one just built: an older build, for a
# before/after comparison), SEED_PEER (path to seed_peer.py).
# Needs: cargo, wrk, curl; python3 with aiohttp for the seed column. When it ends or is
# interrupted, it stops only the servers it started that still run. Figures are only comparable
# on an otherwise idle machine: the script warns when repeated runs of one target disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2}
THREADS=2
CONNECTIONS=50
PLUGINS=100
SSE_CLIENTS=${BENCH_SSE_CLIENTS:-1000}
SSE_SNAPSHOTS=${BENCH_SSE_SNAPSHOTS:-3}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-20}
HISTORY_POINTS=${BENCH_HISTORY_POINTS:-60}
SCALE_SNAPSHOTS=${BENCH_SCALE_SNAPSHOTS:-13}
SCALE_PLUGINS=${BENCH_SCALE_PLUGINS:-100 1000}
MODE=${1:-all}
SEED_PEER=${SEED_PEER:-$ROOT/../shared/bench/seed_peer.py}
PLUGIN_PATH=/api/plugin/plugin-50 # the same plugin name exists on both servers
LUA=$ROOT/scripts/wrk_report.lua

BENCH_NAME=bench
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
verdict() { if [ "$(awk "BEGIN { print ($1) ? 1 : 0 }")" = 1 ]; then echo met; else echo MISSED; fi; }

for tool in cargo wrk curl; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done

# --- machine ---------------------------------------------------------------------------------
say "machine"
echo "cpus: $(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel: $(uname -sr)"
echo "rustc: $(rustc --version)"
echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
# Other work on the machine skews every figure: say how busy it was.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- build -----------------------------------------------------------------------------------
if [ "$MODE" = scale ] && [ -n "${BENCH_ROSEY:-}" ]; then
  # The scale step runs only the given binary: nothing to build.
  :
else
  say "building (release)"
  cargo build --release --bin rosey --example fixed_body --example sse_fanout
  cargo bench --bench collector --no-run
fi
ROSEY=${BENCH_ROSEY:-$ROOT/target/release/rosey}
echo "measuring $ROSEY"
FIXED=$ROOT/target/release/examples/fixed_body
SSE=$ROOT/target/release/examples/sse_fanout

# 1,000 SSE clients need about 2,000 descriptors between the client and the host.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
[ "$(ulimit -n)" -ge $((2 * SSE_CLIENTS + 200)) ] || echo "notice: ulimit -n is $(ulimit -n); $SSE_CLIENTS SSE clients may fail"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rosey-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() {
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
    if ! kill -0 "$3" 2>/dev/null; then
      local status=0
      wait "$3" || status=$?
      die "$(basename "$4") exited with status $status; its log: $(tail -5 "$4")"
    fi
    [ $SECONDS -lt $deadline ] || die "$1 did not answer within $2 s"
    sleep 0.2
  done
}

hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true; }

# --- scale: 100 and 1,000 tiny plugins --------------------------------------------------------
# scale_run N: prints one "SCALE plugins=N key=value ..." line.
scale_run() {
  local n=$1 port pid url t0 running ticks started ended path worst frames
  port=$(free_port)
  {
    printf '{"dashboard": {"enabled": true, "host": "127.0.0.1", "port": %s},\n' "$port"
    printf ' "metrics": {"poll_interval": 5, "history_duration": 3600},\n "plugins": [\n'
    for ((i = 0; i < n; i++)); do
      sep=","
      ((i == n - 1)) && sep=""
      printf '  {"name": "tiny-%04d", "command": ["sleep", "86400"]}%s\n' "$i" "$sep"
    done
    printf ']}\n'
  } >"$WORK/scale.json"
  t0=$(date +%s.%N)
  ROSEY_LOG=${BENCH_ROSEY_LOG:-warn} "$ROSEY" --config "$WORK/scale.json" </dev/null >"$WORK/scale.out" 2>"$WORK/scale.log" &
  pid=$!
  url=http://127.0.0.1:$port
  wait_http "$url/health" 30 "$pid" "$WORK/scale.log"
  deadline=$((SECONDS + 120))
  until [ "$(curl -fsS "$url/api/metrics" | grep -o '"plugins_running":[0-9]*' | cut -d: -f2)" = "$n" ]; do
    [ $SECONDS -lt $deadline ] || die "not all $n plugins reached RUNNING within 120 s"
    sleep 0.05
  done
  running=$(calc "$(date +%s.%N) - $t0" 2)
  echo "$n plugins: all RUNNING $running s after start"
  # Steady state: uptimes past the first minute show minutes, and change once a minute.
  until [ "$(curl -fsS "$url/api/metrics" | grep -o '"bot_uptime_seconds":[0-9]*' | cut -d: -f2)" -ge 65 ]; do sleep 2; done
  ticks=$(cpu_ticks "$pid")
  started=$(date +%s.%N)
  curl -sN --max-time $((SCALE_SNAPSHOTS * 5 + 3)) "$url/events" >"$WORK/scale.sse" || true
  ended=$(date +%s.%N)
  ticks=$(($(cpu_ticks "$pid") - ticks))
  frames=$(python3 - "$WORK/scale.sse" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
frames = [f for f in text.split("\n\n") if "\nevent: " in "\n" + f]
sizes = {"snapshot": [], "delta": []}
for f in frames:
    kind = next(l[7:] for l in f.split("\n") if l.startswith("event: "))
    sizes[kind].append(len(f.encode()) + 2)
d = sizes["delta"] or [0]
print(f"full_bytes={sizes['snapshot'][0] if sizes['snapshot'] else 0} deltas={len(sizes['delta'])} "
      f"delta_mean_bytes={sum(d) / len(d):.0f} delta_max_bytes={max(d)}")
PY
)
  worst=0
  for path in /api/metrics "/api/plugin/$(printf "tiny-%04d" $((n / 2)))" /metrics /; do
    for _ in 1 2 3 4 5; do
      t=$(curl -fsS -o /dev/null -H 'Accept-Encoding: gzip' -w '%{time_total}' "$url$path")
      worst=$(awk -v a="$worst" -v b="$t" 'BEGIN { print (b * 1000 > a) ? b * 1000 : a }')
    done
  done
  echo "SCALE plugins=$n running_s=$running idle_cpu_pct=$(calc "$ticks / $(getconf CLK_TCK) / ($ended - $started) * 100" 3) rss_mib=$(calc "$(rss_kib "$pid") / 1024" 1) worst_route_ms=$(calc "$worst" 1) $frames" | tee -a "$WORK/scale.lines"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

scale_table() {
  echo "| Plugins | all RUNNING after | idle host CPU (one SSE client) | host RSS | worst route | full frame | delta per client per snapshot: mean / max | target |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---|"
  while read -r line; do
    n=$(kv "$line" plugins)
    target=$((n * 60)) # 6 KB per 100 plugins
    echo "| $n | $(kv "$line" running_s) s | $(kv "$line" idle_cpu_pct) % | $(kv "$line" rss_mib) MiB | $(kv "$line" worst_route_ms) ms | $(kv "$line" full_bytes) B | $(kv "$line" delta_mean_bytes) / $(kv "$line" delta_max_bytes) B over $(kv "$line" deltas) | ≤ $((target / 1000)) KB: $(verdict "$(kv "$line" delta_max_bytes) <= $target") |"
  done <"$WORK/scale.lines"
}

if [ "$MODE" = scale ]; then
  for n in $SCALE_PLUGINS; do
    say "scale: $n tiny plugins"
    scale_run "$n"
  done
  say "scale summary (Markdown)"
  scale_table
  exit 0
fi

# --- start rosey and the seed peer -----------------------------------------------------------
say "starting rosey with $PLUGINS plugins and the seed peer"
ROSEY_PORT=$(free_port)
builtin_plugins_config "$ROSEY_PORT" "$PLUGINS" >"$WORK/rosey.json"
ROSEY_LOG=${BENCH_ROSEY_LOG:-warn} "$ROSEY" --config "$WORK/rosey.json" </dev/null >"$WORK/rosey.out" 2>"$WORK/rosey.log" &
ROSEY_PID=$!
ROSEY_URL=http://127.0.0.1:$ROSEY_PORT

SEED_URL=""
if [ ! -f "$SEED_PEER" ]; then
  echo "notice: $SEED_PEER not found: the seed column is skipped"
elif ! python3 -c 'import aiohttp' 2>/dev/null; then
  echo "notice: python3 with aiohttp is not available (pip install aiohttp): the seed column is skipped"
else
  SEED_PORT=$(free_port)
  python3 "$SEED_PEER" "$SEED_PORT" "$PLUGINS" >"$WORK/seed.log" 2>&1 &
  SEED_PID=$!
  SEED_URL=http://127.0.0.1:$SEED_PORT
fi

wait_http "$ROSEY_URL/health" 30 "$ROSEY_PID" "$WORK/rosey.log"
[ -z "$SEED_URL" ] || wait_http "$SEED_URL/health" 60 "$SEED_PID" "$WORK/seed.log"
deadline=$((SECONDS + 60))
until [ "$(curl -fsS "$ROSEY_URL/api/metrics" | grep -o '"plugins_running":[0-9]*' | cut -d: -f2)" = "$PLUGINS" ]; do
  [ $SECONDS -lt $deadline ] || die "not all $PLUGINS plugins reached RUNNING within 60 s"
  sleep 0.5
done
echo "rosey: $ROSEY_URL (pid $ROSEY_PID), all $PLUGINS plugins RUNNING"
[ -z "$SEED_URL" ] || echo "seed peer: $SEED_URL (pid $SEED_PID)"

# --- steady state and idle CPU ---------------------------------------------------------------
history_points() { curl -fsS "$ROSEY_URL$PLUGIN_PATH" | grep -o '{"timestamp"' | wc -l; }
if [ "$HISTORY_POINTS" -gt 0 ]; then
  say "waiting until each plugin's history holds $HISTORY_POINTS points (5 s polls)"
  deadline=$((SECONDS + HISTORY_POINTS * 5 + 60))
  # Idle CPU over the last IDLE_SECONDS of the wait.
  while [ $(($(history_points) + IDLE_SECONDS / 5 + 1)) -lt "$HISTORY_POINTS" ]; do
    [ $SECONDS -lt $deadline ] || die "the history did not fill in time"
    sleep 5
  done
fi
say "idle: host CPU over $IDLE_SECONDS s with $PLUGINS plugins, no clients"
mapfile -t PLUGIN_PIDS < <(children_of "$ROSEY_PID")
ticks_host=$(cpu_ticks "$ROSEY_PID")
ticks_plugins=0
for p in "${PLUGIN_PIDS[@]}"; do ticks_plugins=$((ticks_plugins + $(cpu_ticks "$p"))); done
started=$(date +%s.%N)
sleep "$IDLE_SECONDS"
ended=$(date +%s.%N)
ticks_host=$(($(cpu_ticks "$ROSEY_PID") - ticks_host))
after=0
for p in "${PLUGIN_PIDS[@]}"; do after=$((after + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done
ticks_plugins=$((after - ticks_plugins))
HZ=$(getconf CLK_TCK)
IDLE_CPU=$(calc "$ticks_host / $HZ / ($ended - $started) * 100" 3)
PLUGINS_CPU=$(calc "$ticks_plugins / $HZ / ($ended - $started) * 100" 2)
IDLE_RSS_KIB=$(rss_kib "$ROSEY_PID")
[ "$HISTORY_POINTS" -gt 0 ] && while [ "$(history_points)" -lt "$HISTORY_POINTS" ] && [ $SECONDS -lt $deadline ]; do sleep 1; done
echo "host: $ticks_host ticks of $HZ Hz in $(calc "$ended - $started" 1) s = $IDLE_CPU % of one core (resolution $(calc "100 / $HZ / $IDLE_SECONDS" 3) %)"
echo "the $PLUGINS plugin processes together: $PLUGINS_CPU % of one core"
echo "host resident memory: $(calc "$IDLE_RSS_KIB / 1024" 1) MiB (VmRSS)"
echo "history points per plugin now: $(history_points)"
for path in /api/metrics /metrics / "$PLUGIN_PATH" /events; do
  if [ "$path" = /events ]; then
    size=$(curl -sN --max-time 1 "$ROSEY_URL/events" | wc -c || true)
  else
    size=$(curl -fsS "$ROSEY_URL$path" | wc -c)
  fi
  seed_size=""
  [ -z "$SEED_URL" ] || [ "$path" = /events ] || seed_size="  (seed: $(curl -fsS "$SEED_URL$path" | wc -c) bytes)"
  echo "body size $path: $size bytes$seed_size"
done
for path in /metrics /; do
  echo "body size $path, gzip: $(curl -fsS -H 'Accept-Encoding: gzip' "$ROSEY_URL$path" | wc -c) bytes"
done

# --- SSE fan-out -----------------------------------------------------------------------------
say "SSE fan-out: $SSE_CLIENTS clients on /events, $SSE_SNAPSHOTS snapshots"
"$SSE" --addr "127.0.0.1:$ROSEY_PORT" --clients "$SSE_CLIENTS" --snapshots "$SSE_SNAPSHOTS" \
  --pid "$ROSEY_PID" --timeout 120 | tee "$WORK/sse.out"
SSE_LINE=$(grep '^SSE ' "$WORK/sse.out" || true)
SSE_RSS_LINE=$(grep '^SSE_RSS ' "$WORK/sse.out" || true)
sleep 3

# --- HTTP load -------------------------------------------------------------------------------
# Targets that are compared are loaded in alternation, ROUNDS times each, and the medians are
# reported: other work on a shared machine then affects both sides of a ratio alike.
declare -A RPS P50 P99 ERRS SPREAD RUNS
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Browsers and Prometheus ask for gzip; wrk asks for nothing unless told.
GZIP_HEADER="Accept-Encoding: gzip"
wrk_args() { # wrk_args GZIP(0|1): the settings every run shares
  printf '%s\n' -t"$THREADS" -c"$CONNECTIONS" --timeout 5s
  [ "$1" = 0 ] || printf '%s\n' -H "$GZIP_HEADER"
}
load_round() { # load_round KEY URL GZIP: one wrk run, appended to the KEY's runs
  local line
  mapfile -t args < <(wrk_args "$3")
  line=$(wrk "${args[@]}" -d"${DURATION}s" -s "$LUA" "$2" | grep '^WRK ') || die "wrk failed on $2"
  RUNS[$1]="${RUNS[$1]:-}|$line"
  printf '  %-28s %10s req/s   p50 %7s ms   p99 %7s ms\n' "$1" "$(kv "$line" rps)" "$(kv "$line" p50_ms)" "$(kv "$line" p99_ms)"
}
summarize() { # summarize KEY: medians over its runs
  local runs field
  runs=$(tr '|' '\n' <<<"${RUNS[$1]}" | grep '^WRK ')
  field() { while read -r line; do printf '%s ' "$(kv "$line" "$1")"; done <<<"$runs"; }
  RPS[$1]=$(field rps | median)
  P50[$1]=$(field p50_ms | median)
  P99[$1]=$(field p99_ms | median)
  SPREAD[$1]="$(field rps | tr ' ' '\n' | grep -v '^$' | sort -g | head -1)-$(field rps | tr ' ' '\n' | sort -g | tail -1)"
  ERRS[$1]=0
  while read -r line; do ERRS[$1]=$((ERRS[$1] + $(kv "$line" errors) + $(kv "$line" non2xx))); done <<<"$runs"
}

say "HTTP load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS alternating rounds per comparison (after a ${WARMUP}s warm-up)"
curl -fsS "$ROSEY_URL/api/metrics" -o "$WORK/api_metrics.json"
"$FIXED" --file "$WORK/api_metrics.json" >"$WORK/fixed.out" 2>&1 &
FIXED_PID=$!
deadline=$((SECONDS + 30))
until grep -q '^listening on ' "$WORK/fixed.out" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || die "fixed_body did not start: $(cat "$WORK/fixed.out")"
  sleep 0.1
done
FIXED_URL=http://$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$WORK/fixed.out")
FIXED_SIZE=$(wc -c <"$WORK/api_metrics.json")

# Each row: a path, and "gzip" when the request says Accept-Encoding: gzip (to both servers;
# the seed design ignores it). `/` and `/metrics` are loaded both ways: plain is what wrk sends
# by default, gzip is what their real clients (browsers, Prometheus) send.
ENDPOINTS=("/api/metrics" "/metrics" "/metrics gzip" "/" "/ gzip" "$PLUGIN_PATH")
for row in "${ENDPOINTS[@]}"; do
  path=${row%% *}
  gzip=0
  [ "$row" = "$path" ] || gzip=1
  targets=("rosey $row=$ROSEY_URL$path")
  # The baselines: plain poem serving the same bytes, and rosey's smallest response (/health,
  # 15 bytes): what the server and this machine can do per request at all, with wrk beside it.
  [ "$row" != /api/metrics ] || targets+=("poem fixed body=$FIXED_URL/api/metrics" "rosey /health=$ROSEY_URL/health")
  [ -z "$SEED_URL" ] || targets+=("seed $row=$SEED_URL$path")
  mapfile -t args < <(wrk_args "$gzip")
  for t in "${targets[@]}"; do wrk "${args[@]}" -d"${WARMUP}s" "${t#*=}" >/dev/null 2>&1 || true; done
  for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${targets[@]}"; do load_round "${t%%=*}" "${t#*=}" "$gzip"; done
  done
  for t in "${targets[@]}"; do
    key=${t%%=*}
    summarize "$key"
    printf '  %-28s %10s req/s   p50 %7s ms   p99 %7s ms   (median of %s; req/s range %s; errors+non-2xx %s)\n' \
      "$key" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "$ROUNDS" "${SPREAD[$key]}" "${ERRS[$key]}"
  done
done
kill -TERM "$FIXED_PID" 2>/dev/null || true
LOADED_RSS_KIB=$(rss_kib "$ROSEY_PID")
HWM_KIB=$(hwm_kib "$ROSEY_PID")

say "stopping the servers"
stop_servers

for n in $SCALE_PLUGINS; do
  say "scale: $n tiny plugins"
  scale_run "$n"
done

# --- collector budgets -----------------------------------------------------------------------
say "cargo bench --bench collector"
cargo bench --bench collector 2>/dev/null | tee "$WORK/collector.out"
B=$(grep '^BENCH ' "$WORK/collector.out" | tr '\n' ' ' | sed 's/BENCH / /g')
bench() { kv " $B" "$1"; }

# --- summary ---------------------------------------------------------------------------------
say "summary (Markdown)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (figures are only comparable on an otherwise idle machine)"
echo
echo "Medians of $ROUNDS alternating ${DURATION} s wrk runs (-t$THREADS -c$CONNECTIONS)."
for key in "${!SPREAD[@]}"; do
  lo=${SPREAD[$key]%-*} hi=${SPREAD[$key]#*-}
  if [ "$(verdict "$hi > 1.15 * $lo")" = met ]; then
    echo "warning: the runs of '$key' ranged $lo..$hi req/s: something else used the CPU; rerun on a quiet machine"
  fi
done
echo
echo "| Endpoint | rosey req/s | rosey p50 / p99 ms | seed req/s | seed p50 / p99 ms | ratio | target ≥ 25x | target p99 < 5 ms |"
echo "|---|---:|---:|---:|---:|---:|---|---|"
for row in "${ENDPOINTS[@]}"; do
  r="rosey $row" s="seed $row"
  label="\`${row%% *}\`"
  [ "$row" = "${row%% *}" ] || label="$label, gzip"
  if [ -n "$SEED_URL" ]; then
    ratio=$(calc "${RPS[$r]} / ${RPS[$s]}" 1)
    echo "| $label | ${RPS[$r]} | ${P50[$r]} / ${P99[$r]} | ${RPS[$s]} | ${P50[$s]} / ${P99[$s]} | ${ratio}x | $(verdict "$ratio >= 25") | $(verdict "${P99[$r]} < 5") |"
  else
    echo "| $label | ${RPS[$r]} | ${P50[$r]} / ${P99[$r]} | skipped | skipped | — | — | $(verdict "${P99[$r]} < 5") |"
  fi
done
echo
fixed_ratio=$(calc "${RPS[rosey /api/metrics]} / ${RPS[poem fixed body]} * 100" 1)
echo "| Baseline | req/s | p50 / p99 ms | rosey /api/metrics vs baseline | target ≥ 80 % |"
echo "|---|---:|---:|---:|---|"
echo "| poem, fixed $FIXED_SIZE-byte body | ${RPS[poem fixed body]} | ${P50[poem fixed body]} / ${P99[poem fixed body]} | $fixed_ratio % | $(verdict "$fixed_ratio >= 80") |"
if [ -n "$SEED_URL" ]; then
  echo
  echo "Ceiling: rosey's smallest response, \`/health\` (15 bytes), under the same load: ${RPS[rosey /health]} req/s, p50 / p99 ${P50[rosey /health]} / ${P99[rosey /health]} ms = $(calc "${RPS[rosey /health]} / ${RPS[seed /]}" 1)x the seed's \`/\` and $(calc "${RPS[rosey /health]} / ${RPS[seed /metrics]}" 1)x its \`/metrics\`: no route can be served faster than this on this machine with wrk beside it."
fi
echo
echo "| Figure | measured | target | verdict |"
echo "|---|---:|---|---|"
if [ -n "$SSE_LINE" ]; then
  echo "| SSE delivery, $(kv "$SSE_LINE" live) clients x $(kv "$SSE_LINE" snapshots) snapshots: p50 / p99 / max | $(kv "$SSE_LINE" p50_ms) / $(kv "$SSE_LINE" p99_ms) / $(kv "$SSE_LINE" max_ms) ms (missed $(kv "$SSE_LINE" missed), failed $(kv "$SSE_LINE" failed)) | p99 < 100 ms | $(verdict "$(kv "$SSE_LINE" p99_ms) < 100 && $(kv "$SSE_LINE" missed) == 0") |"
fi
if [ -n "$SSE_RSS_LINE" ]; then
  echo "| Host memory per SSE client (VmRSS growth / clients) | $(kv "$SSE_RSS_LINE" per_client_kib) KiB | < 32 KiB | $(verdict "$(kv "$SSE_RSS_LINE" per_client_kib) < 32") |"
  echo "| Host VmRSS: before SSE / all connected / 12 s after they left | $(calc "$(kv "$SSE_RSS_LINE" before_kib) / 1024" 1) / $(calc "$(kv "$SSE_RSS_LINE" loaded_kib) / 1024" 1) / $(calc "$(kv "$SSE_RSS_LINE" closed_kib) / 1024" 1) MiB | — | — |"
fi
echo "| Idle host CPU, $PLUGINS plugins, $IDLE_SECONDS s | $IDLE_CPU % of one core | ≤ 0.5 % | $(verdict "$IDLE_CPU <= 0.5") |"
echo "| Host resident memory, idle | $(calc "$IDLE_RSS_KIB / 1024" 1) MiB | < 30 MB | $(verdict "$IDLE_RSS_KIB * 1024 < 30e6") |"
echo "| Host resident memory after all loads (peak) | $(calc "$LOADED_RSS_KIB / 1024" 1) MiB ($(calc "$HWM_KIB / 1024" 1) MiB) | — | — |"
echo "| History, $PLUGINS plugins x 1 h (peak while rolling) | $(calc "$(bench history_peak_bytes) / 1e6" 2) MB | < 8 MB | $(verdict "$(bench history_peak_bytes) < 8e6") |"
echo "| Sampler CPU per tick, $PLUGINS processes (worst) | $(bench sampler_cpu_ms) ms ($(bench sampler_worst_cpu_ms) ms) | < 5 ms | $(verdict "$(bench sampler_cpu_ms) < 5") |"
echo "| Aggregates, 1 plugin x 720 samples | $(bench aggregates_us) µs | well under 1 ms | $(verdict "$(bench aggregates_us) < 100") |"
echo "| Rendering one snapshot, 100 plugins (page + API + Prometheus + SSE delta) | $(bench render_per_snapshot_ms) ms | — | — |"
echo "| Rendering one snapshot, 1,000 plugins | $(bench render_per_snapshot_ms_1000) ms | — | — |"
echo "| History, 1,000 plugins x 1 h (peak while rolling) | $(calc "$(bench history_peak_bytes_1000) / 1e6" 2) MB | — | — |"
echo "| Sampler CPU per tick, 1,000 processes (worst) | $(bench sampler_cpu_ms_1000) ms ($(bench sampler_worst_cpu_ms_1000) ms) | < 25 ms | $(verdict "$(bench sampler_cpu_ms_1000) < 25") |"
echo
scale_table
echo
echo "(the $PLUGINS plugin processes themselves used $PLUGINS_CPU % of one core while idle)"
