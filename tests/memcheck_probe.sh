#!/bin/sh
# Memcheck sees tide's memory: run tests/memcheck_probe.c's three misuses
# under valgrind and check that each is reported where it happened, at
# the line of memcheck_probe.c marked "probe: <mode>":
#   leak-task, leak-future  "definitely lost", the allocation stack
#                           leading to that line;
#   double-release          "Invalid read", in tide_future_release,
#                           called from that line.
#
#   tests/memcheck_probe.sh PROBE_BINARY PROBE_SOURCE
#
# Exits 0 if all three are seen, 1 (saying what valgrind printed) if not,
# 77 (skipped) without valgrind. Needs only sh, grep and awk.
# SPDX-License-Identifier: MIT
set -u

probe=$1
src=$2
command -v valgrind >/dev/null 2>&1 || { echo "no valgrind"; exit 77; }

# Some valgrind report in $1 (a line containing $2, through the next
# blank line) contains $3.
report_has() {
    printf '%s\n' "$1" | awk -v start="$2" -v want="$3" '
        { sub(/^==[0-9]+== ?/, "") }
        index($0, start) { on = 1 }
        on && $0 == "" { on = 0 }
        on && index($0, want) { found = 1 }
        END { exit !found }'
}

status=0
for mode in leak-task leak-future double-release; do
    line=$(grep -n "probe: $mode" "$src" | cut -d: -f1)
    site="memcheck_probe.c:$line"
    out=$(valgrind --leak-check=full "$probe" "$mode" 2>&1)
    case $mode in
    double-release)
        report_has "$out" "Invalid read" "tide_future_release" &&
            report_has "$out" "Invalid read" "$site" ;;
    *)
        report_has "$out" "are definitely lost" "$site" ;;
    esac
    if [ $? -eq 0 ]; then
        echo "$mode: reported at $site"
    else
        printf '%s: no report at %s; valgrind printed:\n%s\n' "$mode" \
            "$site" "$out"
        status=1
    fi
done
exit $status
