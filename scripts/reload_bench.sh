#!/usr/bin/env bash
# Hot reload under chat load (issue 15). Figures and method: docs/performance.md, "Hot reload".
#
#   scripts/reload_bench.sh            # about a minute: 20 reloads at 100, then 1,000 commands/s
#
# Builds the release rosey and examples/reload_bench.rs, which starts rosey with one Python
# plugin (tests/fixtures/versioned.py, dashboard on 127.0.0.1 and a free port), feeds it
# `!ver N` on stdin at the given rate, reloads the plugin through POST /api/plugin/NAME/reload
# RELOAD_BENCH_RELOADS times (default 20; a new version deployed before each, 0.5 s apart),
# stops the load, waits for the replies and prints the reload times (median, worst) and the
# commands answered twice or lost. Knobs: RELOAD_BENCH_RATES (default "100 1000"),
# RELOAD_BENCH_RELOADS (20). Needs cargo and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin rosey --example reload_bench
for rate in ${RELOAD_BENCH_RATES:-100 1000}; do
    target/release/examples/reload_bench "$rate" "${RELOAD_BENCH_RELOADS:-20}"
done
