# stats.sh: the medians and ratios of result lines ("key=value ..." lines
# joined by ';'), shared by bench/run.sh and bench/w5.sh (sourced).
# SPDX-License-Identifier: MIT

median_of() { # median_of KEY "line;line;..." -> median, or NA
    tr ';' '\n' <<<"$2" | { grep -oE "(^| )$1=[-0-9.]+" || true; } | cut -d= -f2 | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "NA"; exit }
            printf "%.10g\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
range_of() { # range_of KEY "line;..." -> [min..max]
    tr ';' '\n' <<<"$2" | { grep -oE "(^| )$1=[-0-9.]+" || true; } | cut -d= -f2 | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "[%.10g..%.10g]", v[1], v[NR] }'
}
ratio() { # ratio A B -> A / B ("2.50x"); - if either is missing or B <= 0
    awk -v p="$1" -v t="$2" 'BEGIN {
        if (p !~ /^-?[0-9.]+$/ || t !~ /^-?[0-9.]+$/ || t + 0 <= 0) { print "-"; exit }
        r = p / t; printf (r >= 100 || r <= -100) ? "%.0fx" : "%.2fx", r }'
}
