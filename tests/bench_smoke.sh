#!/bin/sh
# The benchmark programs still run and still report: every workload of
# sheafbench with four contenders (sheaf, sheaf-fixed, classic, glibc), and
# every workload of mallocbench with libsheaf-malloc (and glibc beside it
# where a run is short), at a few thousandths of their operations.  It
# checks that each parent exits 0 and that its CSV has a row with a
# positive time for every (workload, contender) it ran, and the vma table
# its CPU column: a child that crashes, a protocol line that changes, a
# contender that no longer loads, fail here rather than in the next
# `make bench`.  Times are not judged (the figures of so short a run mean
# nothing).
#   bench_smoke.sh SHEAFBENCH [MALLOCBENCH]
set -u
sb=$1
mb=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

fail() {
	echo "bench_smoke: $*"
	status=1
}

# csv_check CSV WORKLOAD:CONTENDER...: a row with median_ns > 0 for each.
csv_check() {
	csv=$1
	shift
	[ -s "$csv" ] || { fail "$(basename "$csv") missing or empty"; return; }
	for wc in "$@"; do
		w=${wc%%:*}
		c=${wc#*:}
		ok=$(awk -F, -v w="$w" -v c="$c" '
			NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
			$1 == w && $2 == c && $col["median_ns"] + 0 > 0 { print "yes"; exit }' "$csv")
		[ "$ok" = yes ] || fail "$(basename "$csv"): no positive median_ns for $w / $c"
	done
}

# run NAME COMMAND...: run it with its output in $tmp/NAME.txt; on failure
# show the output and count it.
run() {
	name=$1
	shift
	"$@" > "$tmp/$name.txt" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		cat "$tmp/$name.txt"
		fail "$name exited with status $rc"
	fi
	return $rc
}

cs="sheaf sheaf-fixed classic glibc"
ws="hot-64 hot-256 batch-lifo batch-fifo remote hot-64-t1 hot-64-t2 rcu rcu-32 prealloc-32 bulk-32 vma churn"
if run sheafbench "$sb" --iters 250000 --reps 1 --contender sheaf,sheaf-fixed,classic,glibc \
	--phase-ms 100 --csv "$tmp/sheaf.csv"; then
	want="phase:sheaf phase:sheaf-fixed"
	for w in $ws; do
		for c in $cs; do
			want="$want $w:$c"
		done
	done
	# shellcheck disable=SC2086
	csv_check "$tmp/sheaf.csv" $want
	# the vma table: ns/write, then CPU ns/write, both numbers
	grep -Eq '^\| sheaf \| +[0-9.]+ \| +[0-9.]+ \|' "$tmp/sheafbench.txt" ||
		fail "sheafbench: no vma row with ns/write and CPU ns/write for sheaf"
fi

if [ -n "$mb" ]; then
	if run mallocbench "$mb" --scale 0.01 --reps 1 --contender sheaf,glibc \
		--workload larson,xmalloc,hot-64-t1,hot-64-t2,mixed,xring \
		--csv "$tmp/malloc.csv"; then
		want=""
		for w in larson xmalloc hot-64-t1 hot-64-t2 mixed xring; do
			want="$want $w:sheaf $w:glibc"
		done
		# shellcheck disable=SC2086
		csv_check "$tmp/malloc.csv" $want
	fi
	# the long ones (forks, big buffers), libsheaf-malloc alone
	if run mallocbench-long "$mb" --scale 0.002 --reps 1 --contender sheaf \
		--workload fork,fork-mt,large,grow --csv "$tmp/malloc2.csv"; then
		csv_check "$tmp/malloc2.csv" fork:sheaf fork-mt:sheaf large:sheaf grow:sheaf
	fi
fi
[ $status -eq 0 ] && echo "bench_smoke: both benchmarks ran every workload"
exit $status
