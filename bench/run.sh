#!/usr/bin/env bash
# run.sh: run tide's benchmarks (and, given PEERS_DIR, the peers') and print
# one table of medians.
#
# usage: bench/run.sh BUILD_DIR [PEERS_DIR]
#   BUILD_DIR  a CMake build of tide; its bench/ holds w1_spawn, w2_switch,
#              w3_sleepers, w4_timers, w6_queue, switch and w5_echo (`make`
#              builds them; this script builds nothing of tide's).
#   PEERS_DIR  shared/bench: if given, its run-peers.sh runs the peers for
#              W1 W2 W3 W3M W4 W6 in the same invocation, and the table shows
#              each peer beside tide with the ratio peer / tide of the
#              headline metrics (ns_per_task; ns_per_rt; wall_s and
#              b_per_task; overhead_s and wall_s; ns_per_item). A ratio is "-"
#              when tide's value is <= 0 (an overhead_s within the clock's
#              resolution) or a value is missing. Then bench/w5.sh runs W5
#              (tide's echo server and the peers' servers in alternating
#              rounds; its own table, with ratios to floor-epoll).
# env:
#   RUNS=3            runs per (workload, runtime); the table shows medians.
#   PIN_CPU=1         CPU every program is pinned to (taskset), as the peers;
#                     PIN_CPU= runs unpinned (and so do the peers).
#   RUN_TIMEOUT=120   seconds allowed for any one program run.
#   PEERS_TIMEOUT=3600  seconds allowed for the whole run-peers.sh.
#   WORKLOADS="W1 W2 W3 W3M W3C W3MC W4 W6 SWITCH SWITCHC W5"   tide
#                     workloads to run (W3C, W3MC: W3 and W3M with compact
#                     tasks, shown beside the peers' W3 and W3M rows;
#                     SWITCHC: SWITCH between two compact tasks; W5: the
#                     echo server beside the peers' servers, by bench/w5.sh,
#                     only with PEERS_DIR, whose load generator it uses).
#   PEER_NAMES="..."  peers for run-peers.sh -p (default: its own list; not
#                     PEERS, which is `make bench`'s name for PEERS_DIR).
#   SPAWN_N=1000      spawns per run of SPAWN (bench/spawn.c, run last, with
#                     bench/peers/spawn.py and spawn.go when python3 and go
#                     are installed).
# Raw result lines go to stderr and to BUILD_DIR/bench/results.log; the
# peers' own medians table is kept in BUILD_DIR/bench/peers-table.txt.
# Exits 1 if any tide run failed (crash, timeout, wrong sum or count).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || $1 == -h || $1 == --help ]]; then
    sed -n '2,34p' "$0" >&2
    exit 2
fi
BUILD=$1
PEERS_DIR=${2:-}
BIN=$BUILD/bench
RUNS=${RUNS:-3}
PIN_CPU=${PIN_CPU-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
PEERS_TIMEOUT=${PEERS_TIMEOUT:-3600}
WORKLOADS=${WORKLOADS:-"W1 W2 W3 W3M W3C W3MC W4 W6 SWITCH SWITCHC W5"}
W5=0 # W5 runs apart (bench/w5.sh), after the others
if [[ " $WORKLOADS " == *" W5 "* ]]; then
    W5=1
    WORKLOADS=$(tr ' ' '\n' <<<"$WORKLOADS" | grep -vx W5 | tr '\n' ' ')
fi
PEER_WORKLOADS=(W1 W2 W3 W3M W4 W6)
export PIN_CPU RUN_TIMEOUT # run-peers.sh reads the same two

if [[ ! -d $BIN ]]; then
    echo "run.sh: no $BIN: build first (make, or cmake --build $BUILD)" >&2
    exit 2
fi
if [[ -n $PEERS_DIR && ! -x $PEERS_DIR/run-peers.sh ]]; then
    echo "run.sh: no executable $PEERS_DIR/run-peers.sh" >&2
    exit 2
fi
LOG=$BIN/results.log
PEERS_TABLE=$BIN/peers-table.txt
PIN=()
[[ -n $PIN_CPU ]] && PIN=(taskset -c "$PIN_CPU")

prog_of() { # prog_of W -> "program [N]"
    case $1 in
    W1) echo w1_spawn ;;
    W2) echo w2_switch ;;
    W3) echo w3_sleepers ;;
    W3M) echo "w3_sleepers 1000000" ;;
    W3C) echo "w3_sleepers 100000 compact" ;;
    W3MC) echo "w3_sleepers 1000000 compact" ;;
    W4) echo w4_timers ;;
    W6) echo w6_queue ;;
    SWITCH) echo switch ;;
    SWITCHC) echo "switch 1000000 compact" ;;
    *) return 1 ;;
    esac
}

# metrics shown per workload: those compared (with a ratio), then the rest
# the peers' workload a tide row is compared with
peer_workload_of() {
    case $1 in
    W3C) echo W3 ;;
    W3MC) echo W3M ;;
    *) echo "$1" ;;
    esac
}

ratio_metrics_of() {
    case $1 in
    W1) echo ns_per_task ;;
    W2) echo ns_per_rt ;;
    W6) echo ns_per_item ;;
    W3 | W3M | W3C | W3MC) echo "wall_s b_per_task" ;;
    W4) echo "overhead_s wall_s" ;;
    SWITCH | SWITCHC) echo ns_per_switch ;;
    esac
}
extra_metrics_of() {
    case $1 in
    W1 | W2 | W6 | SWITCH | SWITCHC) echo "wall_s rss_kib" ;;
    W3 | W3M | W3C | W3MC | W4) echo rss_kib ;;
    esac
}

# ---- tide's runs
declare -A TIDE=()  # W -> "line;line;..." (successful runs)
declare -A ERRS=()  # W -> failure notes
failed=0
for w in $WORKLOADS; do
    p=$(prog_of "$w") || { echo "run.sh: unknown workload $w" >&2; exit 2; }
    read -r exe arg <<<"$p"
    if [[ ! -x $BIN/$exe ]]; then
        ERRS[$w]="no $BIN/$exe"
        failed=1
        continue
    fi
    for ((i = 1; i <= RUNS; i++)); do
        errf=$(mktemp)
        rc=0
        # shellcheck disable=SC2086
        out=$("${PIN[@]}" timeout "$RUN_TIMEOUT" "$BIN/$exe" $arg 2>"$errf") || rc=$?
        line=$(grep -E "^(W[0-9]C?|SWITCHC?) tide " <<<"$out" | tail -n 1 || true)
        [[ $w == W3M ]] && line=${line/#W3 /W3M }
        [[ $w == W3MC ]] && line=${line/#W3C /W3MC }
        if ((rc == 0)) && [[ -n $line ]]; then
            TIDE[$w]+="$line;"
            echo "$line" | tee -a "$LOG" >&2
        else
            case $rc in
            124) why="timed out after ${RUN_TIMEOUT}s" ;;
            0) why="no result line" ;;
            *) ((rc > 128)) && why="killed by signal $((rc - 128))" || why="exit $rc" ;;
            esac
            msg=$(tail -n 1 "$errf")
            note="$w run $i: $why${msg:+: $msg}${line:+ [$line]}"
            echo "FAILED $note" | tee -a "$LOG" >&2
            ERRS[$w]+="$note; "
            failed=1
        fi
        rm -f "$errf"
    done
done

# ---- the peers' runs (their own script, their own build directory)
declare -a PEER_ROWS=() # "W|peer|key=val key=val ..."
peers_note=""
if [[ -n $PEERS_DIR ]]; then
    popt=()
    [[ -n ${PEER_NAMES:-} ]] && popt=(-p "$PEER_NAMES")
    rc=0
    ptable=$(timeout "$PEERS_TIMEOUT" "$PEERS_DIR/run-peers.sh" -r "$RUNS" "${popt[@]}" \
        "${PEER_WORKLOADS[@]}") || rc=$?
    printf '%s\n' "$ptable" >"$PEERS_TABLE"
    ((rc != 0)) && peers_note="run-peers.sh exited $rc (124: timed out after ${PEERS_TIMEOUT}s)"
    while read -r w peer rest; do
        [[ " ${PEER_WORKLOADS[*]} " == *" $w "* ]] || continue
        kv=$(grep -oE '[a-z_]+=[^ ]+' <<<"$rest" | tr '\n' ' ')
        PEER_ROWS+=("$w|$peer|$kv")
    done <<<"$ptable"
    for peer in ${PEER_NAMES:-asyncio uvloop node go libuv}; do
        if ! printf '%s\n' "${PEER_ROWS[@]}" | grep -q "^[^|]*|$peer|"; then
            peers_note+="${peers_note:+; }no $peer rows (not installed, or no program for these workloads)"
        fi
    done
fi

# ---- medians
# shellcheck source=bench/stats.sh
. "$(dirname "$0")/stats.sh"
peer_value() { # peer_value KEY "key=val key=val ..." -> val or NA
    local v
    v=$({ grep -oE "(^| )$1=[^ ]+" <<<" $2" || true; } | head -n 1 | cut -d= -f2)
    echo "${v:-NA}"
}

# ---- the table
echo
echo "tide benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -srm)," \
    "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) CPUs," \
    "pinned to CPU ${PIN_CPU:-none}, median of $RUNS runs"
[[ -n $PEERS_DIR ]] && echo "ratio = peer / tide (above 1: tide is better; b_per_task and times alike)"
printf "%-7s %-8s %-26s %-7s %-26s %-7s %s\n" work runtime metric ratio metric ratio other
for w in $WORKLOADS; do
    lines=${TIDE[$w]:-}
    declare -A tmed=()
    row=$(printf "%-7s %-8s" "$w" tide)
    for k in $(ratio_metrics_of "$w"); do
        tmed[$k]=$(median_of "$k" "$lines")
        row+=$(printf " %-26s %-7s" "$k=${tmed[$k]}" "$(ratio "${tmed[$k]}" "${tmed[$k]}")")
    done
    (($(wc -w <<<"$(ratio_metrics_of "$w")") == 1)) && row+=$(printf " %-26s %-7s" "" "")
    ex=""
    for k in $(extra_metrics_of "$w"); do ex+="$k=$(median_of "$k" "$lines") "; done
    first=$(ratio_metrics_of "$w" | cut -d' ' -f1)
    echo "$row ${ex}${first}:$(range_of "$first" "$lines")"
    [[ -n ${ERRS[$w]:-} ]] && echo "       tide FAILED: ${ERRS[$w]}"
    for pr in "${PEER_ROWS[@]}"; do
        IFS='|' read -r pw peer kv <<<"$pr"
        [[ $pw == "$(peer_workload_of "$w")" ]] || continue
        row=$(printf "%-7s %-8s" "$w" "$peer")
        for k in $(ratio_metrics_of "$w"); do
            v=$(peer_value "$k" "$kv")
            row+=$(printf " %-26s %-7s" "$k=$v" "$(ratio "$v" "${tmed[$k]}")")
        done
        (($(wc -w <<<"$(ratio_metrics_of "$w")") == 1)) && row+=$(printf " %-26s %-7s" "" "")
        ex=""
        for k in $(extra_metrics_of "$w"); do ex+="$k=$(peer_value "$k" "$kv") "; done
        echo "$row $ex"
    done
    unset tmed
done
[[ -n $peers_note ]] && echo "peers: $peers_note"

# ---- W5 echo: tide's server and the peers' servers, in alternating rounds
if ((W5)); then
    echo
    if [[ -z $PEERS_DIR ]]; then
        echo "W5: not run (give PEERS_DIR: bench/w5.sh uses its load generator)"
    elif ! RUNS=$RUNS "$(dirname "$0")/w5.sh" "$BUILD" "$PEERS_DIR"; then
        echo "FAILED W5 (bench/w5.sh)"
        failed=1
    fi
fi

# ---- the uncontended sync paths (tide only: no peer has these programs)
if [[ " $WORKLOADS " == *" SWITCH "* && -x $BIN/sync_fast ]]; then
    echo
    if ! "${PIN[@]}" timeout "$RUN_TIMEOUT" "$BIN/sync_fast" | tee -a "$LOG"; then
        echo "FAILED sync_fast (an uncontended path allocated, or it crashed)"
        failed=1
    fi
fi

# ---- SPAWN: /bin/true started and waited for, tide beside its own peers
# (bench/peers/spawn.py with asyncio, bench/peers/spawn.go with os/exec),
# each run when its tool (python3, go) is there. SPAWN_N spawns a run.
if [[ -x $BIN/spawn ]]; then
    echo
    here=$(cd "$(dirname "$0")" && pwd)
    n=${SPAWN_N:-1000}
    if ! "${PIN[@]}" timeout "$RUN_TIMEOUT" "$BIN/spawn" "$n" | tee -a "$LOG"; then
        echo "FAILED spawn"
        failed=1
    fi
    if command -v python3 >/dev/null; then
        "${PIN[@]}" timeout "$RUN_TIMEOUT" python3 "$here/peers/spawn.py" "$n" |
            tee -a "$LOG" || echo "peer python3 spawn.py failed"
    fi
    if command -v go >/dev/null &&
        (cd "$here/peers" && GOCACHE=${GOCACHE:-$BIN/go-cache} \
            go build -o "$BIN/spawn_go" spawn.go) 2>/dev/null; then
        "${PIN[@]}" timeout "$RUN_TIMEOUT" "$BIN/spawn_go" "$n" |
            tee -a "$LOG" || echo "peer spawn_go failed"
    fi
fi
exit $failed
