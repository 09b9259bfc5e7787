#!/usr/bin/env bash
# The dashboard's door, measured (issue 24): what TLS and a hashed password cost a client.
# Method and figures: docs/performance.md, "TLS and password checks".
#
#   scripts/tls_bench.sh        # about 4 minutes after the build
#
# In one run, on this machine, using loopback addresses only:
#  1. builds rosey (release; nothing with BENCH_ROSEY);
#  2. makes a test CA and a certificate for 127.0.0.1 (openssl, P-256, as the tests do);
#  3. starts four bots with 100 built-in plugins each (as scripts/bench.sh names them; 5 s
#     polls): plain HTTP; HTTPS (dashboard.tls); plain HTTP with dashboard users whose
#     passwords are argon2id hashes (`rosey hash-password`); the same with bcrypt hashes (cost
#     5, htpasswd -B's, and cost 10; made by Python's crypt), and waits until all of them run
#     every plugin;
#  4. wrk -t2 -c50 on /api/metrics (keep-alive: wrk keeps its 50 connections open, so the TLS
#     handshakes happen once, at the start), BENCH_DURATION seconds per run, the four targets in
#     alternation, BENCH_ROUNDS rounds; prints per target the median and the spread (min-max)
#     of requests/s and of p50/p99 latency. The hashed-password targets send the right
#     credentials on every request: after the first, each is a hit of the checked-credentials
#     cache (a keyed BLAKE2b of the credentials and a map lookup), which is what a browser's
#     page, live stream and assets cost;
#  5. the check with and without the cache, end to end: for each of BENCH_USERS users per hash
#     (argon2id, bcrypt 5, bcrypt 10; one credential each, so each one's first request misses
#     the cache) curl times GET /static/favicon.svg twice: the first request verifies the hash,
#     the second is a cache hit; median and spread (min-max) of each.
#
# Knobs (environment): BENCH_DURATION (seconds per wrk run, default 5), BENCH_ROUNDS (3),
# BENCH_WARMUP (2), BENCH_ROSEY (a rosey binary to measure instead of building one),
# BENCH_USERS (20), BENCH_ROSEY_LOG (rosey's ROSEY_LOG, warn). Needs: cargo, wrk, curl,
# openssl, python3 (its crypt module makes the bcrypt hashes). The machine
# must be otherwise idle for comparable figures: the load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2}
PLUGINS=100
USERS=${BENCH_USERS:-20}
PASSWORD=bench-password
LUA=$ROOT/scripts/wrk_report.lua

BENCH_NAME=tls_bench
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"

for tool in cargo wrk curl openssl python3; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done

say "machine"
echo "cpus: $(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -z "${BENCH_ROSEY:-}" ]; then
  say "building (release)"
  cargo build --release --bin rosey
fi
ROSEY=${BENCH_ROSEY:-${CARGO_TARGET_DIR:-$ROOT/target}/release/rosey}
echo "measuring $ROSEY"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rosey-tls-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM

say "test CA and certificate"
(
  cd "$WORK"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=rosey bench CA" 2>/dev/null
  openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
  echo "subjectAltName=IP:127.0.0.1" >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
    -extfile server.ext 2>/dev/null
)
ARGON2=$(printf '%s\n' "$PASSWORD" | "$ROSEY" hash-password)
# bcrypt_hash COST: as htpasswd -B writes it, but $2b$ (the same algorithm).
bcrypt_hash() {
  python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** int(sys.argv[2]))))' \
    "$PASSWORD" "$1"
}
BCRYPT5=$(bcrypt_hash 5)
BCRYPT10=$(bcrypt_hash 10)
AUTH="Authorization: Basic $(printf 'bench:%s' "$PASSWORD" | base64)"
# users PREFIX HASH: BENCH_USERS users PREFIX-1.. with HASH, as JSON list entries.
users() {
  for ((i = 1; i <= USERS; i++)); do printf ', {"username": "%s-%s", "password_hash": "%s", "role": "viewer"}' "$1" "$i" "$2"; done
}

# start_bot KEY SCHEME DASHBOARD_EXTRA: a bot with 100 plugins; sets URL_<KEY>.
start_bot() {
  local key=$1 scheme=$2 extra=$3 port
  port=$(free_port)
  builtin_plugins_config "$port" "$PLUGINS" "$extra" >"$WORK/$key.json"
  ROSEY_LOG=${BENCH_ROSEY_LOG:-warn} "$ROSEY" --config "$WORK/$key.json" </dev/null >"$WORK/$key.out" 2>"$WORK/$key.log" &
  printf -v "URL_$key" '%s://127.0.0.1:%s/api/metrics' "$scheme" "$port"
  printf -v "PID_$key" '%s' "$!"
}

# until_running KEY: until the bot answers with all its plugins RUNNING.
until_running() {
  local key=$1 url pid deadline=$((SECONDS + 120))
  url=URL_$key pid=PID_$key
  until curl -fsS --max-time 5 --cacert "$WORK/ca.pem" -H "$AUTH" "${!url}" 2>/dev/null |
    grep -q "\"plugins_running\":$PLUGINS"; do
    kill -0 "${!pid}" 2>/dev/null || die "the $key bot exited; its log: $(tail -5 "$WORK/$key.log")"
    [ $SECONDS -lt $deadline ] || die "the $key bot did not run its $PLUGINS plugins within 120 s"
    sleep 0.5
  done
}

say "starting four bots with $PLUGINS plugins each"
TLS=$(printf ', "tls": {"cert": "%s", "key": "%s"}' "$WORK/server.pem" "$WORK/server.key")
start_bot plain http ""
start_bot tls https "$TLS"
start_bot argon2 http ", \"users\": [{\"username\": \"bench\", \"password_hash\": \"$ARGON2\", \"role\": \"viewer\"}$(users argon2id "$ARGON2")]"
start_bot bcrypt http ", \"users\": [{\"username\": \"bench\", \"password_hash\": \"$BCRYPT5\", \"role\": \"viewer\"}$(users bcrypt-5 "$BCRYPT5")$(users bcrypt-10 "$BCRYPT10")]"
KEYS=(plain tls argon2 bcrypt)
for key in "${KEYS[@]}"; do until_running "$key"; done
echo "all running"
TLS_HOSTPORT=${URL_tls#https://}
TLS_HOSTPORT=${TLS_HOSTPORT%%/*}
echo "TLS as OpenSSL (wrk's library) negotiates it: $(openssl s_client -connect "$TLS_HOSTPORT" -CAfile "$WORK/ca.pem" \
  </dev/null 2>/dev/null | sed -n 's/^New, //p')"

# One wrk run of KEY, its WRK line appended to $WORK/KEY.runs.
load_round() {
  local key=$1 url line args=(-t2 -c50 --timeout 5s)
  url=URL_$key
  case $key in argon2 | bcrypt) args+=(-H "$AUTH") ;; esac
  line=$(wrk "${args[@]}" -d"${DURATION}s" -s "$LUA" "${!url}" | grep '^WRK ') || die "wrk failed on ${!url}"
  [ "$(kv "$line" non2xx)" = 0 ] || die "non-2xx answers from ${!url}: $line"
  printf '  %-7s %s\n' "$key" "$line"
  echo "$line" >>"$WORK/$key.runs"
}

# stats KEY FIELD: "median (min-max)" over the runs.
stats() {
  while read -r line; do kv "$line" "$2"; done <"$WORK/$1.runs" |
    sort -g | awk '{ v[NR] = $1 } END { printf "%s (%s-%s)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

say "wrk -t2 -c50 -d${DURATION}s on /api/metrics, $ROUNDS alternating rounds (after a ${WARMUP}s warm-up each)"
for key in "${KEYS[@]}"; do
  url=URL_$key
  warm=(-t2 -c50 --timeout 5s -d"${WARMUP}s")
  case $key in argon2 | bcrypt) warm+=(-H "$AUTH") ;; esac
  wrk "${warm[@]}" "${!url}" >/dev/null 2>&1 || true
done
for round in $(seq "$ROUNDS"); do
  for key in "${KEYS[@]}"; do load_round "$key"; done
  echo "round $round done"
done
BYTES=$(curl -fsS --cacert "$WORK/ca.pem" "$URL_plain" | wc -c)

say "a password check with and without the cache: $USERS users per hash, two requests each"
# check_times BOT PREFIX: "CHECK hash=PREFIX miss=ms,ms,... hit=ms,..." (curl's time_total).
check_times() {
  local url=URL_$1 misses="" hits="" i t
  url=${!url%/api/metrics}/static/favicon.svg
  for ((i = 1; i <= USERS; i++)); do
    for kind in miss hit; do
      t=$(curl -fsS -o /dev/null -u "$2-$i:$PASSWORD" -w '%{time_total}' "$url")
      t=$(awk -v t="$t" 'BEGIN { printf "%.2f", t * 1000 }')
      if [ "$kind" = miss ]; then misses+="$t "; else hits+="$t "; fi
    done
  done
  echo "CHECK hash=$2 miss=$misses hit=$hits"
}
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { printf "%s ms (%s-%s)", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
CHECKS=$(check_times argon2 argon2id; check_times bcrypt bcrypt-5; check_times bcrypt bcrypt-10)
echo "$CHECKS"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

say "summary (Markdown): median (min-max) of $ROUNDS runs; /api/metrics is $BYTES bytes"
echo "| Target | requests/s | p50 | p99 | socket errors, all runs |"
echo "|---|---:|---:|---:|---:|"
label() {
  case $1 in
    plain) echo "HTTP, no login" ;;
    tls) echo "HTTPS, no login" ;;
    argon2) echo "HTTP, argon2id user (cached check)" ;;
    bcrypt) echo "HTTP, bcrypt cost 5 user (cached check)" ;;
  esac
}
for key in "${KEYS[@]}"; do
  errors=$(while read -r line; do kv "$line" errors; done <"$WORK/$key.runs" | paste -sd+ | bc)
  echo "| $(label "$key") | $(stats "$key" rps) | $(stats "$key" p50_ms) ms | $(stats "$key" p99_ms) ms | $errors |"
done
echo
echo "| Hash | request that checks the hash (cache miss) | the same credential again (cache hit) |"
echo "|---|---:|---:|"
while read -r line; do
  hash=${line#CHECK hash=}
  hash=${hash%% *}
  misses=${line#* miss=}
  misses=${misses%% hit=*}
  echo "| $hash | $(spread <<<"$misses") | $(spread <<<"${line#* hit=}") |"
done <<<"$CHECKS"
