#!/usr/bin/env bash
# w5.sh: W5 echo (shared/bench/README.md) for tide's stream server and the
# peers' servers in one invocation, rounds alternating between servers
# (tide, floor-epoll, ..., then again) so that drift on the machine hits
# every server alike; prints a table of medians with ratios to floor-epoll.
#
# usage: bench/w5.sh BUILD_DIR PEERS_DIR
#   BUILD_DIR  a CMake build of tide: BUILD_DIR/bench/w5_echo is tide's server.
#   PEERS_DIR  shared/bench: its run-peers.sh builds the peers' programs and
#              the load generator into PEERS_DIR/build (called once, with no
#              runs); this script then runs the servers itself, with exactly
#              run-peers.sh's accounting: server on SERVER_CPU, loadgen on
#              LOADGEN_CPU, server CPU (user + system, all threads) from
#              /proc/PID/stat from when it listens to the end of the load,
#              divided by the completed requests; VmHWM just before it is
#              stopped; the same result line.
# env:
#   RUNS=3                 rounds; the table shows medians [min..max].
#   SERVER_CPU=0 LOADGEN_CPU=1 W5_CONNS=100 W5_DUR=5   as run-peers.sh.
#   W5_SERVERS="..."       servers, in round order (default: tide and every
#                          peer server that is built or installed; tide-epoll
#                          and tide-uring are tide's server with
#                          TIDE_BACKEND set, and are named only on request;
#                          tide-alt is the server TIDE_ALT names (another
#                          build of w5_echo, to compare two in one run).
#   PEER_NAMES="..."       run-peers.sh's peer names (asyncio uvloop node go
#                          libuv floor): only those peers' servers run.
#   RUN_TIMEOUT=120        seconds allowed for any one server run.
# Raw result lines go to stderr and BUILD_DIR/bench/results.log; tide's line
# also carries its steady-state counts per request (allocs, recv, send,
# epoll_wait, epoll_ctl, io_uring_enter: bench/w5_echo.c). Every server it starts is
# stopped (by its pid) after its run and on exit. Exits 1 if a tide run
# failed.
set -euo pipefail

if [[ $# -ne 2 || $1 == -h || $1 == --help ]]; then
    sed -n '2,32p' "$0" >&2
    exit 2
fi
BUILD=$1
PEERS_DIR=$(cd "$2" && pwd)
PB=$PEERS_DIR/build
PY=/usr/bin/python3 # Debian's CPython, which has python3-uvloop
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
W5_CONNS=${W5_CONNS:-100}
W5_DUR=${W5_DUR:-5}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
LOG=$BUILD/bench/results.log
TIDE=$BUILD/bench/w5_echo

if [[ ! -x $TIDE ]]; then
    echo "w5.sh: no $TIDE: build first (make, or cmake --build $BUILD)" >&2
    exit 2
fi
if [[ ! -x $PEERS_DIR/run-peers.sh ]]; then
    echo "w5.sh: no executable $PEERS_DIR/run-peers.sh" >&2
    exit 2
fi

# ---- the peers' programs: run-peers.sh builds them (no runs)
popt=()
[[ -n ${PEER_NAMES:-} ]] && popt=(-p "$PEER_NAMES")
# (with no runs its table has nothing to show, and it exits 1 after the
# builds: its exit status says nothing; a build that failed said so)
blog=$BUILD/bench/w5-peers-build.log
timeout "$RUN_TIMEOUT" "$PEERS_DIR/run-peers.sh" -r 0 "${popt[@]}" W5 \
    >/dev/null 2>"$blog" || true
[[ -s $blog ]] && echo "w5.sh: run-peers.sh while building: $(head -c 2000 "$blog")" >&2
if [[ ! -x $PB/loadgen ]]; then
    echo "w5.sh: no load generator $PB/loadgen" >&2
    exit 2
fi

# The command of a server, empty if it is not here (names as run-peers.sh's).
server_cmd() {
    case $1 in
    tide) echo "$TIDE" ;;
    tide-epoll) echo "env TIDE_BACKEND=epoll $TIDE" ;;
    tide-uring) echo "env TIDE_BACKEND=io_uring $TIDE" ;;
    tide-alt) [[ -x ${TIDE_ALT:-} ]] && echo "$TIDE_ALT" ;;
    floor-epoll) [[ -x $PB/floor/w5_echo_epoll ]] && echo "$PB/floor/w5_echo_epoll" ;;
    floor-uring) [[ -x $PB/floor/w5_echo_uring ]] && echo "$PB/floor/w5_echo_uring" ;;
    libuv) [[ -x $PB/libuv/w5_echo ]] && echo "$PB/libuv/w5_echo" ;;
    libuv-trywrite) [[ -x $PB/libuv/w5_echo_trywrite ]] && echo "$PB/libuv/w5_echo_trywrite" ;;
    uvloop-protocol | uvloop-streams)
        [[ -x $PY ]] && $PY -c 'import uvloop' 2>/dev/null &&
            echo "$PY $PEERS_DIR/peers/uvloop/w5_echo_${1#uvloop-}.py" ;;
    asyncio-protocol | asyncio-streams)
        [[ -x $PY ]] && echo "$PY $PEERS_DIR/peers/asyncio/w5_echo_${1#asyncio-}.py" ;;
    go) [[ -x $PB/go/w5_echo ]] && echo "env GOMAXPROCS=1 $PB/go/w5_echo" ;;
    node) command -v node >/dev/null && echo "node $PEERS_DIR/peers/node/w5_echo.js" ;;
    esac
    return 0
}

ALL="tide floor-epoll floor-uring libuv libuv-trywrite uvloop-protocol uvloop-streams asyncio-protocol asyncio-streams go node"
SERVERS=""
declare -A CMD=() # server -> its command
for srv in ${W5_SERVERS:-$ALL}; do
    base=${srv%%-*}
    if [[ $srv != tide* && -n ${PEER_NAMES:-} && " $PEER_NAMES " != *" $base "* ]]; then
        continue
    fi
    CMD[$srv]=$(server_cmd "$srv")
    if [[ -z ${CMD[$srv]} ]]; then
        echo "w5.sh: $srv: not built or not installed, left out" >&2
        continue
    fi
    SERVERS+="$srv "
done

SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null; }
PORT=19300
free_port() {
    while ss -Htln "sport = :$PORT" | grep -q .; do PORT=$((PORT + 1)); done
}

# Stop the server: SIGTERM, then SIGKILL after 3 s; its exit status.
stop_server() {
    local rc=0
    kill "$SERVER_PID" 2>/dev/null || true
    for ((t = 0; t < 30; t++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || rc=$?
    SERVER_PID=""
    return $rc
}

declare -A LINES=() # server -> "line;line;..."
failed=0
RESULT=""
run_one() { # run_one SERVER: one W5 run; its result line in RESULT
    local srv=$1 line hwm cpu0 cpu1 reqs errf rc=0
    PORT=$((PORT + 1))
    free_port
    errf=$(mktemp)
    # taskset and env exec the server, so $! is the server's own pid
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" ${CMD[$srv]} "$PORT" >/dev/null 2>"$errf" &
    SERVER_PID=$!
    for ((t = 0; t < 50; t++)); do
        ss -Htln "sport = :$PORT" | grep -q . && break
        sleep 0.1
    done
    cpu0=$(cpu_ticks "$SERVER_PID" || true)
    line=$(taskset -c "$LOADGEN_CPU" timeout $((W5_DUR + 15)) "$PB/loadgen" \
        -c "$W5_CONNS" -d "$W5_DUR" -l "$srv" "$PORT" 2>&1 | tail -n 1) || true
    cpu1=$(cpu_ticks "$SERVER_PID" || true)
    reqs=$(grep -o 'requests=[0-9]*' <<<"$line" | cut -d= -f2 || true)
    if [[ -n $cpu0 && -n $cpu1 && ${reqs:-0} -gt 0 ]]; then
        line+=" server_cpu_us_per_req=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$CLK_TCK" \
            -v n="$reqs" 'BEGIN { printf "%.2f", (b - a) * 1e6 / hz / n }')"
    fi
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || true)
    stop_server || rc=$?
    line+=" server_rss_kib=${hwm:-NA}"
    [[ -n $cpu1 ]] || line="FAILED $srv (server exit $rc: $(tail -n 1 "$errf")) $line"
    if [[ $srv == tide* ]]; then
        local counts
        counts=$(sed -n 's/^w5_echo: requests=[0-9]* *//p' "$errf" | tail -n 1)
        line+=${counts:+ $counts}
        if ((rc != 0)) || [[ -z $counts || $line != *" rps="* ]]; then
            line="FAILED tide (server exit $rc: $(tail -n 1 "$errf")) $line"
        fi
    fi
    rm -f "$errf"
    RESULT=$line
}

start_load=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= RUNS; r++)); do
    for srv in $SERVERS; do
        run_one "$srv"
        echo "$RESULT" | tee -a "$LOG" >&2
        if [[ $RESULT != FAILED* ]]; then
            LINES[$srv]+="$RESULT;"
        elif [[ $srv == tide* ]]; then
            failed=1
        fi
    done
done
end_load=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table
# shellcheck source=bench/stats.sh
. "$(dirname "$0")/stats.sh"
floor=${LINES[floor-epoll]:-}
f_cpu=$(median_of server_cpu_us_per_req "$floor")
f_rps=$(median_of rps "$floor")
f_p99=$(median_of p99_us "$floor")
echo
echo "W5 echo: $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -srm)," \
    "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) CPUs;" \
    "server on CPU $SERVER_CPU, loadgen on CPU $LOADGEN_CPU, $W5_CONNS conns, ${W5_DUR} s," \
    "median of $RUNS rounds; load average $start_load before, $end_load after"
echo "ratio = server / floor-epoll (CPU/req and p99: below 1 is better; rps: above 1)"
printf "%-17s %-26s %-6s %-20s %-6s %-16s %-6s %s\n" server "cpu_us_per_req [min..max]" \
    ratio rps ratio p99_us ratio other
for srv in $SERVERS; do
    lines=${LINES[$srv]:-}
    if [[ -z $lines ]]; then
        echo "$srv: no successful run"
        continue
    fi
    cpu=$(median_of server_cpu_us_per_req "$lines")
    rps=$(median_of rps "$lines")
    p99=$(median_of p99_us "$lines")
    other="p50_us=$(median_of p50_us "$lines") rss_kib=$(median_of server_rss_kib "$lines")"
    other+=" loadgen_cpu_pct=$(median_of loadgen_cpu_pct "$lines")"
    if [[ $srv == tide* ]]; then
        for k in allocs recv send epoll_wait epoll_ctl io_uring_enter iterations; do
            other+=" ${k}/req=$(median_of "${k}_per_req" "$lines")"
        done
    fi
    printf "%-17s %-26s %-6s %-20s %-6s %-16s %-6s %s\n" "$srv" \
        "$cpu $(range_of server_cpu_us_per_req "$lines")" "$(ratio "$cpu" "$f_cpu")" \
        "$rps" "$(ratio "$rps" "$f_rps")" "$p99" "$(ratio "$p99" "$f_p99")" "$other"
done
exit $failed
