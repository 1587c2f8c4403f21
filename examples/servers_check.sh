#!/bin/sh
# Runs the example servers against programs nobody here wrote: curl
# against http_server (GET / twice on one kept-alive connection, and a
# 404), nc (netcat-openbsd) against echo_server. Each server must then
# exit 0 on SIGTERM. Usage: servers_check.sh BUILD_EXAMPLES_DIR
# TIDE_WRAP runs each server under a wrapper (CI: valgrind), and
# TIDE_START_WAIT gives it longer to start.
# SPDX-License-Identifier: MIT
set -eu
dir=$1
port=$((20000 + $$ % 20000))
fail() { echo "FAIL: $*"; kill "$pid" 2>/dev/null || true; exit 1; }
# start PROGRAM: run it on the first free port from $port on (it exits
# at once, status 1, when the port is taken); sets pid and port.
start() {
    for try in 1 2 3 4 5 6 7 8; do
        # shellcheck disable=SC2086
        ${TIDE_WRAP:-} "$dir/$1" "$port" 2>/dev/null & pid=$!
        sleep "${TIDE_START_WAIT:-0.2}"
        kill -0 "$pid" 2>/dev/null && return 0
        port=$((port + 7))
    done
    fail "$1 did not start"
}

if command -v curl >/dev/null; then
    start http_server
    out=$(curl -sS --max-time 5 -v "http://127.0.0.1:$port/" "http://127.0.0.1:$port/" 2>&1) ||
        fail "curl: $out"
    [ "$(printf '%s\n' "$out" | grep -c 'Hello from tide')" = 2 ] || fail "page: $out"
    printf '%s\n' "$out" | grep -q 'Re-using existing connection' ||
        printf '%s\n' "$out" | grep -q 'left intact' || fail "no keep-alive: $out"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/nope")
    [ "$code" = 404 ] || fail "404 expected, got $code"
    kill -TERM "$pid"; wait "$pid" || fail "http_server exit status $?"
    echo "http_server: curl OK"
else
    echo "http_server: SKIP (no curl)"
fi
if command -v nc >/dev/null; then
    port=$((port + 1))
    start echo_server
    out=$(printf 'one\ntwo\n' | nc -N -w 5 127.0.0.1 "$port") || fail "nc failed"
    [ "$out" = "$(printf 'one\ntwo')" ] || fail "echo: $out"
    kill -INT "$pid"; wait "$pid" || fail "echo_server exit status $?"
    echo "echo_server: nc OK"
else
    echo "echo_server: SKIP (no nc)"
fi
