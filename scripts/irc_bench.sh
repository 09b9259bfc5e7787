#!/usr/bin/env bash
# Chat round trip through the bot on a real IRC network (issue 22).
#
#   scripts/irc_bench.sh            # about half a minute after the build: 1,000 messages
#   scripts/irc_bench.sh 5000       # more messages
#
# Builds the release rosey and examples/irc_bench.rs, which starts the tests' network
# (InspIRCd + Anope from Debian: apt-get install inspircd anope), a bot with the dice-roller on
# it, and a user who sends `!roll 1d6` privately and waits for each reply; an echo client gives
# the network's own share. Prints p50/p99 (both, and the difference: what the bot adds, plugin
# included), the plugin's own mean time, and CPU per 1,000 messages for rosey and the plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin rosey --example irc_bench
target/release/examples/irc_bench target/release/rosey "${1:-1000}"
