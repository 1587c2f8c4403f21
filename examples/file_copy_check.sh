#!/bin/sh
# file_copy_check.sh FILE_COPY: copy files of several sizes (empty, one
# byte, 3 MiB and a bit: more than one chunk) with examples/file_copy,
# compare each copy with cmp and check the last progress line; a missing
# source must fail with a message. CTest and .ci/run's demo step run it;
# TIDE_WRAP runs file_copy under a wrapper (CI's valgrind step).
# SPDX-License-Identifier: MIT
set -eu
prog=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
: >"$dir/empty"
printf x >"$dir/one"
head -c 3145745 /dev/urandom >"$dir/big"
for f in empty one big; do
    ${TIDE_WRAP:-} "$prog" "$dir/$f" "$dir/$f.copy" 2>"$dir/err"
    cmp "$dir/$f" "$dir/$f.copy"
    size=$(wc -c <"$dir/$f" | tr -d ' ')
    grep -q ": $size bytes in .* s (" "$dir/err" || {
        echo "file_copy_check: no final line for $f:" >&2
        cat "$dir/err" >&2
        exit 1
    }
    echo "file_copy $f: $(tr '\r' '\n' <"$dir/err" | grep 'bytes in')"
done
if ${TIDE_WRAP:-} "$prog" "$dir/missing" "$dir/copy" 2>"$dir/err"; then
    echo "file_copy_check: a missing source did not fail" >&2
    exit 1
fi
echo "file_copy: a missing source fails: $(grep "file_copy: " "$dir/err")"
