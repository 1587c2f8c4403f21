#!/bin/sh
# Runs the process examples: pipeline must print what the shell's
# `seq 100000 | grep 7 | wc -l` prints; supervisor must restart its
# crashing child with growing delays, then on SIGTERM stop, exit 0 and
# leave no child behind (nor one of a long-running child given on its
# command line). Usage: processes_check.sh BUILD_EXAMPLES_DIR
# TIDE_WRAP runs each example under a wrapper (CI: valgrind), and
# TIDE_START_WAIT gives it longer to start.
# SPDX-License-Identifier: MIT
set -eu
dir=$1
wait_s=${TIDE_START_WAIT:-0}
fail() { echo "FAIL: $*"; exit 1; }

want=$(seq 100000 | grep 7 | wc -l | tr -d ' ')
# shellcheck disable=SC2086
got=$(${TIDE_WRAP:-} "$dir/pipeline") || fail "pipeline exit status $?"
[ "$got" = "$want" ] || fail "pipeline printed '$got', the shell $want"
echo "pipeline: $got, as the shell"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
${TIDE_WRAP:-} "$dir/supervisor" >"$out" & pid=$!
sleep "$(awk -v w="$wait_s" 'BEGIN { print 1.2 + w }')"
kill -TERM "$pid"
wait "$pid" || fail "supervisor exit status $?: $(cat "$out")"
grep -q 'restart in 0.1 s' "$out" || fail "no restart: $(cat "$out")"
grep -q 'restart in 0.2 s' "$out" || fail "no backoff: $(cat "$out")"
grep -q '^stopped' "$out" || fail "did not stop: $(cat "$out")"

# shellcheck disable=SC2086
${TIDE_WRAP:-} "$dir/supervisor" sleep 1000 >"$out" & pid=$!
sleep "$(awk -v w="$wait_s" 'BEGIN { print 0.3 + w }')"
kill -TERM "$pid"
wait "$pid" || fail "supervisor exit status $?: $(cat "$out")"
grep -q 'terminated and reaped' "$out" || fail "$(cat "$out")"
if pgrep -f 'sleep 1000' >/dev/null 2>&1; then
    fail "the supervised child outlived the supervisor"
fi
echo "supervisor: restarts with backoff, stops on SIGTERM, no child left"
