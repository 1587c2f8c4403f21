#!/bin/sh
# Runs the network examples against programs nobody here wrote:
# - http_server: curl (GET / twice on one kept-alive connection, a 404);
# - echo_server: nc (netcat-openbsd) as its client;
# - echo_client: against echo_server, and against a Python asyncio echo
#   server;
# - chat_server: three nc clients (a line from one reaches the two
#   others), and a client too slow to read, which is disconnected while
#   a fast one gets every line (tests/peers/chat_slow_client.py);
# - fetch: against Python's http.server serving a temporary directory
#   (sizes, a 404, the limit on connections at once), against
#   http_server, and against nc -l sending a close-delimited body;
# - forward: in front of http_server with curl through it, in front of
#   nc -l, half-closing each way, and in front of a port that refuses.
# Every server must then exit 0 on SIGINT or SIGTERM. A check whose
# programs are missing (curl, nc, python3) says SKIP.
# Usage: servers_check.sh BUILD_EXAMPLES_DIR
# TIDE_WRAP runs each tide program under a wrapper (CI: valgrind), and
# TIDE_START_WAIT gives a server longer to start.
# SPDX-License-Identifier: MIT
set -eu
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
port=$((20000 + $$ % 20000))
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
have() { command -v "$1" >/dev/null; }
# run PROGRAM ARGS...: a tide example in the foreground, wrapped.
run() {
    prog=$1
    shift
    # shellcheck disable=SC2086
    ${TIDE_WRAP:-} "$dir/$prog" "$@"
}
# serve COMMAND...: start a server on the first free port from $port on
# (a word PORT in COMMAND stands for it); sets pid and port. A tide
# example is named by itself ("echo_server PORT"), anything else by its
# command line ("python3 -m http.server PORT").
serve() {
    for try in 1 2 3 4 5 6 7 8; do
        port=$((port + 7))
        launch "$port" "$@" &
        pid=$!
        pids="$pids $pid"
        wait_up && return 0
    done
    fail "$1 did not start"
}
# launch PORT COMMAND...: exec COMMAND with the word PORT replaced.
launch() {
    p=$1 n=$(($# - 1))
    shift
    while [ "$n" -gt 0 ]; do # rotate the words, replacing PORT
        a=$1
        shift
        [ "$a" = PORT ] && a=$p
        set -- "$@" "$a"
        n=$((n - 1))
    done
    if [ -x "$dir/$1" ]; then
        prog=$dir/$1
        shift
        # shellcheck disable=SC2086
        exec ${TIDE_WRAP:-} "$prog" "$@" 2>/dev/null
    fi
    exec "$@" >/dev/null 2>&1
}
# wait_up: until the server at $port accepts (0), or $pid has exited (1).
# With noprobe set (or without nc), only waits and checks that it runs.
wait_up() {
    sleep "${TIDE_START_WAIT:-0.2}"
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        kill -0 "$pid" 2>/dev/null || return 1
        [ -z "$noprobe" ] && have nc || return 0
        nc -z 127.0.0.1 "$port" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
noprobe=
# nc_serve TEXT FILE: nc -l on the first free port after $port, sending
# TEXT (printf %b) to its one client and then half-closing, and writing
# what it receives to FILE; sets pid and port.
nc_serve() {
    for try in 1 2 3 4 5 6 7 8; do
        port=$((port + 7))
        printf '%b' "$1" | nc -l -N -w 10 127.0.0.1 "$port" >"$2" 2>/dev/null &
        pid=$!
        pids="$pids $pid"
        sleep 0.3
        kill -0 "$pid" 2>/dev/null && return 0
    done
    fail "nc -l did not start"
}
# stop SIGNAL NAME: stop the tide server $pid; it must exit 0.
stop() {
    kill "-$1" "$pid"
    wait "$pid" || fail "$2 exit status $?"
}
# quit: stop another server $pid (Python dies of SIGTERM: any status).
quit() {
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

# ---- http_server and echo_server, with curl and nc ---------------------
if have curl; then
    serve http_server PORT
    out=$(curl -sS --max-time 5 -v "http://127.0.0.1:$port/" "http://127.0.0.1:$port/" 2>&1) ||
        fail "curl: $out"
    [ "$(printf '%s\n' "$out" | grep -c 'Hello from tide')" = 2 ] || fail "page: $out"
    printf '%s\n' "$out" | grep -q 'Re-using existing connection' ||
        printf '%s\n' "$out" | grep -q 'left intact' || fail "no keep-alive: $out"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/nope")
    [ "$code" = 404 ] || fail "404 expected, got $code"
    stop TERM http_server
    echo "http_server: curl OK"
else
    echo "http_server: SKIP (no curl)"
fi
if have nc; then
    serve echo_server PORT
    out=$(printf 'one\ntwo\n' | nc -N -w 5 127.0.0.1 "$port") || fail "nc failed"
    [ "$out" = "$(printf 'one\ntwo')" ] || fail "echo: $out"
    stop INT echo_server
    echo "echo_server: nc OK"
else
    echo "echo_server: SKIP (no nc)"
fi

# ---- echo_client: against echo_server, and a Python asyncio server -----
serve echo_server PORT
out=$(run echo_client localhost "$port" one "two words") || fail "echo_client: $out"
[ "$out" = "$(printf 'one\ntwo words')" ] || fail "echo_client printed: $out"
out=$(printf 'from\nstdin' | run echo_client 127.0.0.1 "$port") || fail "echo_client: $out"
[ "$out" = "$(printf 'from\nstdin')" ] || fail "echo_client (stdin) printed: $out"
stop TERM echo_server
if run echo_client 127.0.0.1 "$port" x 2>/dev/null; then
    fail "echo_client succeeded with nobody listening"
fi
echo "echo_client: against echo_server OK"
if have python3; then
    serve python3 "$here/../tests/peers/line_echo_server.py" PORT
    out=$(run echo_client 127.0.0.1 "$port" a b c) || fail "echo_client: $out"
    [ "$out" = "$(printf 'a\nb\nc')" ] || fail "echo_client (Python) printed: $out"
    quit
    echo "echo_client: against a Python asyncio server OK"
else
    echo "echo_client: Python server SKIP (no python3)"
fi

# ---- chat_server: nc clients, and a slow one ---------------------------
if have nc; then
    serve chat_server PORT
    for c in 1 2; do
        nc 127.0.0.1 "$port" </dev/null >"$tmp/chat$c" &
        pids="$pids $!"
    done
    sleep 0.5 # both have joined
    printf 'hello, all\n' | nc -N -w 5 127.0.0.1 "$port" >"$tmp/chat3"
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        [ -s "$tmp/chat1" ] && [ -s "$tmp/chat2" ] && break
        sleep 0.2
    done
    for c in 1 2; do
        [ "$(cat "$tmp/chat$c")" = "hello, all" ] || fail "chat client $c got: $(cat "$tmp/chat$c")"
    done
    [ ! -s "$tmp/chat3" ] || fail "the sender got its own line: $(cat "$tmp/chat3")"
    stop INT chat_server # the two listening clients still connected
    echo "chat_server: nc OK"
else
    echo "chat_server: SKIP (no nc)"
fi
if have python3; then
    serve chat_server PORT
    python3 "$here/../tests/peers/chat_slow_client.py" "$port" || fail "slow chat client"
    stop TERM chat_server
    echo "chat_server: slow client disconnected, fast one served OK"
else
    echo "chat_server: slow client SKIP (no python3)"
fi

# ---- fetch: Python's http.server, http_server, nc -l --------------------
if have python3; then
    mkdir "$tmp/www"
    printf 'hello\n' >"$tmp/www/a.txt"
    head -c 300000 /dev/zero >"$tmp/www/big.bin"
    : >"$tmp/www/empty"
    serve python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" PORT
    u=http://127.0.0.1:$port
    out=$(run fetch -c 2 "$u/a.txt" "$u/big.bin" "$u/empty" "http://localhost:$port/a.txt" \
        "$u/a.txt" "$u/big.bin") || fail "fetch: $out"
    printf '%s\n' "$out" | sort >"$tmp/got"
    cat >"$tmp/want" <<EOF
200 0 $u/empty
200 300000 $u/big.bin
200 300000 $u/big.bin
200 6 $u/a.txt
200 6 $u/a.txt
200 6 http://localhost:$port/a.txt
6 fetched, 0 failed, 600018 bytes, at most 2 at once
EOF
    sort "$tmp/want" | diff - "$tmp/got" || fail "fetch from http.server printed: $out"
    if out=$(run fetch "$u/nope" "http://127.0.0.1:1/"); then
        fail "fetch succeeded with a URL that cannot answer: $out"
    fi
    printf '%s\n' "$out" | grep -q "^404 [0-9]* $u/nope\$" || fail "no 404: $out"
    printf '%s\n' "$out" | grep -q "^error ECONNREFUSED http://127.0.0.1:1/\$" || fail "refused: $out"
    quit
    echo "fetch: against Python's http.server OK"
else
    echo "fetch: Python's http.server SKIP (no python3)"
fi
serve http_server PORT
u=http://127.0.0.1:$port
out=$(run fetch -c 3 "$u/" "$u/" "$u/" "$u/" "$u/x") || fail "fetch: $out"
[ "$(printf '%s\n' "$out" | grep -c "^200 60 $u/\$")" = 4 ] || fail "fetch from http_server: $out"
printf '%s\n' "$out" | grep -q "^404 10 $u/x\$" || fail "fetch from http_server: $out"
printf '%s\n' "$out" | tail -n 1 | grep -Eq '^5 fetched, 0 failed, 250 bytes, at most [1-3] at once$' ||
    fail "fetch summary: $out"
echo "fetch: against http_server OK"
http_port=$port http_pid=$pid # forward goes in front of it, below
if have nc; then
    nc_serve 'HTTP/1.0 200 OK\r\nServer: nc\r\n\r\nno length, ends at close' "$tmp/nc_req"
    out=$(run fetch "http://127.0.0.1:$port/close") || fail "fetch from nc: $out"
    [ "$(printf '%s\n' "$out" | head -n 1)" = "200 24 http://127.0.0.1:$port/close" ] ||
        fail "fetch from nc -l: $out"
    wait "$pid" || true
    grep -q '^GET /close HTTP/1.0' "$tmp/nc_req" || fail "nc got: $(cat "$tmp/nc_req")"
    echo "fetch: close-delimited body from nc -l OK"
else
    echo "fetch: nc -l SKIP (no nc)"
fi

# ---- forward: in front of http_server (curl), and of nc -l -------------
if have curl; then
    serve forward PORT 127.0.0.1 "$http_port"
    out=$(curl -sS --max-time 5 -v "http://127.0.0.1:$port/" "http://127.0.0.1:$port/" 2>&1) ||
        fail "curl through forward: $out"
    [ "$(printf '%s\n' "$out" | grep -c 'Hello from tide')" = 2 ] || fail "through forward: $out"
    out=$(run fetch -c 4 "http://127.0.0.1:$port/" "http://127.0.0.1:$port/" \
        "http://127.0.0.1:$port/nope") || fail "fetch through forward: $out"
    printf '%s\n' "$out" | tail -n 1 | grep -q '^3 fetched, 0 failed, 130 bytes' ||
        fail "fetch through forward: $out"
    stop TERM forward
    echo "forward: curl and fetch through it to http_server OK"
else
    echo "forward: http_server SKIP (no curl)"
fi
pid=$http_pid
stop TERM http_server
if have nc; then
    nc_serve 'from the target\n' "$tmp/target_got"
    nc_pid=$pid target=$port
    noprobe=1 # its probe would be relayed to nc -l
    serve forward PORT localhost "$target"
    noprobe=
    out=$(printf 'from the client\n' | nc -N -w 5 127.0.0.1 "$port") || fail "nc through forward"
    [ "$out" = "from the target" ] || fail "the client got: $out"
    wait "$nc_pid" || true
    [ "$(cat "$tmp/target_got")" = "from the client" ] || fail "the target got: $(cat "$tmp/target_got")"
    stop INT forward
    echo "forward: nc to nc -l, half-closed both ways OK"
    serve forward PORT 127.0.0.1 1 # a target that refuses
    out=$(printf 'anyone?\n' | nc -N -w 5 127.0.0.1 "$port") || fail "nc to a refused target"
    [ -z "$out" ] || fail "the client of a refused target got: $out"
    stop TERM forward
    echo "forward: a refused target closes the client's connection OK"
else
    echo "forward: nc SKIP (no nc)"
fi
