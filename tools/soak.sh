#!/bin/sh
# Soak: the stress test again and again for a set time, each run with a
# random configuration: per-CPU mode (rseq or fallback), fake NUMA nodes,
# statistics on or off, yields injected under locks, failure injection
# switched at random (STRESS_FAULTS), thread count; the stress test itself
# migrates threads at random and shrinks caches concurrently.  Prints the
# operations done, the failures injected and the problems found; exit
# status 1 if any run failed.
#   tools/soak.sh BUILD_DIR SECONDS         (make soak DURATION=600)
set -u
build=$1
duration=${2:-600}
stress=$build/tests/stress
[ -x "$stress" ] || { echo "soak: $stress missing: build first" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
end=$(( $(date +%s) + duration ))
runs=0 problems=0 ops=0 injected=0 failed_allocs=0
seed=$$
R=0
rnd() { # R = 0 .. $1-1 (sets R: a $(...) subshell would lose the seed)
	seed=$(( (seed * 1103515245 + 12345) % 2147483648 ))
	R=$(( (seed / 65536) % $1 ))
}
ncpu=$(getconf _NPROCESSORS_ONLN)
echo "soak: ${duration} s of stress runs with random configurations ($ncpu CPUs)"
while [ "$(date +%s)" -lt "$end" ]; do
	left=$(( end - $(date +%s) ))
	rnd 26; secs=$(( 5 + R ))
	[ $secs -gt "$left" ] && secs=$left
	[ $secs -lt 2 ] && secs=2
	mode=rseq; rnd 3; [ $R -eq 0 ] && mode=fallback
	numa=0; rnd 3; [ $R -eq 0 ] && numa=2
	stats=1; rnd 2; [ $R -eq 0 ] && stats=0
	faults=0; rnd 3; [ $R -ne 0 ] && faults=1
	yield=0; rnd 4; if [ $R -eq 0 ]; then rnd 500; yield=$(( 50 + R )); fi
	rnd $(( 4 * ncpu + 3 )); threads=$(( 2 + R ))
	desc="SHEAF_PERCPU=$mode SHEAF_FAKE_NUMA=$numa STRESS_STATS=$stats STRESS_FAULTS=$faults SHEAF_DEBUG_YIELD=$yield STRESS_THREADS=$threads ${secs}s"
	if env SHEAF_PERCPU=$mode SHEAF_FAKE_NUMA=$numa STRESS_STATS=$stats \
		STRESS_FAULTS=$faults SHEAF_DEBUG_YIELD=$yield STRESS_THREADS=$threads \
		"$stress" "$secs" > "$log" 2>&1; then
		:
	else
		problems=$((problems + 1))
		echo "soak: PROBLEM in run $((runs + 1)) ($desc):"
		tail -20 "$log"
	fi
	runs=$((runs + 1))
	line=$(grep '^stress: ' "$log" | tail -1)
	a=$(echo "$line" | sed -n 's/.* \([0-9]*\) allocs, \([0-9]*\) frees.*/\1 \2/p')
	i=$(echo "$line" | sed -n 's/.* \([0-9]*\) injected failures (\([0-9]*\) failed allocations).*/\1 \2/p')
	if [ -n "$a" ]; then ops=$((ops + ${a% *} + ${a#* })); fi
	if [ -n "$i" ]; then
		injected=$((injected + ${i% *}))
		failed_allocs=$((failed_allocs + ${i#* }))
	fi
	printf 'soak: run %d: %s: %s\n' "$runs" "$desc" "$(echo "$line" | cut -d: -f2 | cut -c2-3)"
done
echo "soak: $runs runs in ${duration} s, $ops operations (allocations + frees), $injected failures injected ($failed_allocs failed allocations seen by the program), $problems problems"
[ $problems -eq 0 ]
