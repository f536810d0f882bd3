#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/ab.sh - interleaved A/B of libsheaf itself: a base revision against
# the working tree, on the workloads a structural change must leave alone
# (sheafbench's hot-64, batch-fifo and rcu on the sheaf contender, and
# mallocbench's mixed under libsheaf-malloc).
#
#   bench/ab.sh [-p PAIRS] [-i ITERS] [-s SCALE] [-w WORKLOADS] BASE_REV
#
# -w: sheafbench workloads instead of hot-64,batch-fifo,rcu (comma list,
# e.g. prealloc-32,bulk-32); mallocbench's mixed runs unless -w is given.
#
# Both trees are built Release (the base from a git worktree of BASE_REV
# under build-ab/), each with its own benchmark binaries: the inline fast
# paths are compiled into them from the headers.  Each pair runs A then B
# or B then A (alternating), one repetition each, so that the machine's
# drift (a shared VM: other tenants, frequency) falls on both sides alike.
# Reported per workload: the median of the pair ratios head/base of ns per
# operation (below 1: the working tree is faster) with the quartiles, and
# each side's median.  Exit status 0; nothing here is a pass/fail test.
#
# Example: bench/ab.sh -p 12 7555bbd
set -eu

PAIRS=10
ITERS=20000000
SCALE=1
WORKLOADS=hot-64,batch-fifo,rcu
MIXED=1
while getopts p:i:s:w: o; do
	case $o in
	w) WORKLOADS=$OPTARG; MIXED=0 ;;
	p) PAIRS=$OPTARG ;;
	i) ITERS=$OPTARG ;;
	s) SCALE=$OPTARG ;;
	*) echo "usage: $0 [-p PAIRS] [-i ITERS] [-s SCALE] [-w WORKLOADS] BASE_REV" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: $0 [-p PAIRS] [-i ITERS] [-s SCALE] [-w WORKLOADS] BASE_REV" >&2; exit 2; }
BASE=$1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build-ab
mkdir -p "$OUT"
BASE_SHA=$(git -C "$ROOT" rev-parse --verify "$BASE^{commit}")
HEAD_DESC="$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src include bench || echo '+changes')"

SRC_A=$OUT/base-src
if [ ! -d "$SRC_A" ] || [ "$(git -C "$SRC_A" rev-parse HEAD 2>/dev/null)" != "$BASE_SHA" ]; then
	git -C "$ROOT" worktree remove --force "$SRC_A" 2>/dev/null || rm -rf "$SRC_A"
	git -C "$ROOT" worktree prune
	git -C "$ROOT" worktree add --detach "$SRC_A" "$BASE_SHA" >/dev/null
fi

build() { # src dir
	cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DSHEAF_BUILD_BENCH=ON \
		-DSHEAF_BUILD_TESTS=OFF >/dev/null
	cmake --build "$2" -j2 --target sheafbench mallocbench sheaf_malloc >/dev/null
}
echo "ab: building base $(git -C "$ROOT" rev-parse --short "$BASE_SHA") and head $HEAD_DESC (Release)" >&2
build "$SRC_A" "$OUT/base"
build "$ROOT" "$OUT/head"

RAW=$OUT/raw.csv
echo "pair,side,workload,ns" >"$RAW"
run_side() { # side builddir pair
	dir=$2
	"$dir/bench/sheafbench" --workload "$WORKLOADS" --contender sheaf \
		--reps 1 --iters "$ITERS" --csv "$OUT/s.csv" >/dev/null
	awk -F, -v p="$3" -v s="$1" 'NR > 1 { print p "," s "," $1 "," $5 }' \
		"$OUT/s.csv" >>"$RAW"
	[ "$MIXED" = 1 ] || return 0
	# each tree's mallocbench preloads its own tree's libsheaf-malloc
	"$dir/bench/mallocbench" --workload mixed --contender sheaf \
			--reps 1 --scale "$SCALE" --csv "$OUT/m.csv" >/dev/null
	awk -F, -v p="$3" -v s="$1" 'NR > 1 { print p "," s ",malloc-" $1 "," $4 }' \
		"$OUT/m.csv" >>"$RAW"
}
i=1
while [ "$i" -le "$PAIRS" ]; do
	if [ $((i % 2)) -eq 1 ]; then
		run_side base "$OUT/base" "$i"; run_side head "$OUT/head" "$i"
	else
		run_side head "$OUT/head" "$i"; run_side base "$OUT/base" "$i"
	fi
	echo "ab: pair $i of $PAIRS done" >&2
	i=$((i + 1))
done

echo "A/B: head $HEAD_DESC against base $(git -C "$ROOT" rev-parse --short "$BASE_SHA"), $PAIRS interleaved pairs (ns per operation; ratio head/base, below 1 = head faster)"
awk -F, 'NR > 1 { v[$1 "," $2 "," $3] = $4; w[$3] = 1; n = ($1 > n ? $1 : n) }
function sort(a, k,   i, j, t) { for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
function q(a, k, f,   x) { x = 1 + (k - 1) * f; return a[int(x)] + (x - int(x)) * (a[int(x) + (int(x) < k)] - a[int(x)]) }
END {
	printf "%-16s %10s %10s %8s %16s\n", "workload", "base ns", "head ns", "ratio", "quartiles"
	for (wl in w) {
		k = 0; kb = 0
		for (p = 1; p <= n; p++) {
			b = v[p ",base," wl]; h = v[p ",head," wl]
			if (b > 0 && h > 0) { r[++k] = h / b; bs[k] = b; hs[k] = h }
		}
		if (!k) continue
		sort(r, k); sort(bs, k); sort(hs, k)
		printf "%-16s %10.3f %10.3f %8.3f %7.3f-%-7.3f\n", wl, q(bs, k, 0.5), q(hs, k, 0.5), q(r, k, 0.5), q(r, k, 0.25), q(r, k, 0.75)
	}
}' "$RAW"
