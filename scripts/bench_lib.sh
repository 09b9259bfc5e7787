# Shell helpers the benchmark scripts share (bench.sh, tls_bench.sh, log_bench.sh), sourced
# after each sets BENCH_NAME (its name in error messages) and WORK (its temporary directory).

say() { printf '\n== %s\n' "$*"; }
die() {
  echo "${BENCH_NAME:-bench}: $*" >&2
  exit 1
}
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
# key=value from a line like "WRK rps=1 p50_ms=2".
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# Stops the servers the script started that still run. bash's own job table names them, so a
# server that already exited is never signalled: its PID may belong to another process by then.
stop_servers() {
  local running
  running=$(jobs -pr)
  # shellcheck disable=SC2086
  [ -z "$running" ] || kill -TERM $running 2>/dev/null || true
  wait 2>/dev/null || true
}
cleanup() {
  stop_servers
  rm -rf "$WORK"
}

# A loopback port nothing listens on, below the ephemeral range.
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

cpu_ticks() { # utime + stime of one process, in clock ticks
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# builtin_plugins_config PORT N [DASHBOARD_EXTRA]: a config with N built-in plugins, named like
# the seed peer's (dice-roller, 8ball, plugin-2 ..), half of each kind, 5 s polls, 1 h history,
# the dashboard on 127.0.0.1:PORT (DASHBOARD_EXTRA: more keys of that block, ', "tls": …').
builtin_plugins_config() {
  local port=$1 n=$2 extra=${3:-} i name builtin sep
  printf '{"dashboard": {"enabled": true, "host": "127.0.0.1", "port": %s%s},\n' "$port" "$extra"
  printf ' "metrics": {"poll_interval": 5, "history_duration": 3600},\n "plugins": [\n'
  for ((i = 0; i < n; i++)); do
    case $i in 0) name=dice-roller ;; 1) name=8ball ;; *) name=plugin-$i ;; esac
    if ((i % 2 == 0)); then builtin=dice-roller; else builtin=8ball; fi
    sep=","
    ((i == n - 1)) && sep=""
    printf '  {"name": "%s", "builtin": "%s"}%s\n' "$name" "$builtin" "$sep"
  done
  printf ']}\n'
}
