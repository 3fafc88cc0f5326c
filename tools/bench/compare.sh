#!/usr/bin/env bash
# Alternating before/after runs of `steady` on one machine (noise on a shared VM is ±15 %, so
# compare builds in one sitting, interleaved, never against a figure from another day).
#
#   tools/bench/compare.sh ROUNDS LABEL=DIR [LABEL=DIR …]
#
# DIR holds a release build's `outboxd-bench` and `outboxd` of the same commit (the bench
# migrates with its own copy of the migrations, so both must come from one commit), e.g.
#   git worktree add /tmp/before <commit> && (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target \
#     cargo build --release -p outboxd -p outboxd-bench)
#   tools/bench/compare.sh 2 before=/tmp/before-target/release after=target/release
# STEADY_ARGS overrides the scenario's arguments (default: --events 200000 --no-floor).
set -euo pipefail
rounds=${1:?rounds}; shift
args=${STEADY_ARGS:---events 200000 --no-floor}
for round in $(seq "$rounds"); do
  for spec in "$@"; do
    label=${spec%%=*}; dir=${spec#*=}
    echo "== $label, round $round, $(date +%T)"
    # shellcheck disable=SC2086
    "$dir/outboxd-bench" --outboxd "$dir/outboxd" steady $args 2>&1 |
      grep -E 'deliveries_per_second=|sidecar CPU|postgres CPU|rows written per delivery|correctness'
  done
done
