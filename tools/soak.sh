#!/bin/sh
# Soak: the stress test again and again for a set time, each run with a
# random configuration: per-CPU mode (rseq or fallback), fake NUMA nodes,
# statistics on or off, yields injected under locks, failure injection
# switched at random (STRESS_FAULTS), thread count; the stress test itself
# migrates threads at random and shrinks caches concurrently.  Prints the
# operations done, the failures injected and the problems found.
#
# Then the adversarial stress (tests/adversary.c: capacity 1-4 sheaves,
# signal storm, affinity thrash, shrink loops, thread churn, forks, a
# thread without rseq) runs SECONDS in each per-CPU mode, rseq and
# fallback, one run each, and its counts are printed; with SOAK_MALLOC=1
# also its malloc mode (adversary_malloc under LD_PRELOAD=libsheaf-malloc)
# SECONDS in each mode.  So the whole soak takes 3 x SECONDS (5 x with
# SOAK_MALLOC=1).  Exit status 1 if any run failed.
#   tools/soak.sh BUILD_DIR SECONDS         (make soak DURATION=600)
set -u
build=$1
duration=${2:-600}
stress=$build/tests/stress
adversary=$build/tests/adversary
adversary_malloc=$build/tests/adversary_malloc
malloc_lib=$build/libsheaf-malloc.so
[ -x "$stress" ] || { echo "soak: $stress missing: build first" >&2; exit 1; }
[ -x "$adversary" ] || { echo "soak: $adversary missing: build first" >&2; exit 1; }
if [ "${SOAK_MALLOC:-0}" = 1 ] && { [ ! -x "$adversary_malloc" ] || [ ! -f "$malloc_lib" ]; }; then
	echo "soak: SOAK_MALLOC=1 needs $adversary_malloc and $malloc_lib (not in sanitizer builds)" >&2
	exit 1
fi
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

# The adversary: one run of $duration s per mode.  A hang inside it is
# caught by its own deadlines (children, joins, a watchdog); timeout(1) is
# the last resort.
adv_problems=0
adv_ops=0
# adversary_run LABEL ARGS...: env ARGS (variables, then the command)
adversary_run() {
	label=$1
	shift
	echo "soak: adversary, $label, ${duration} s"
	if env "$@" > "$log" 2>&1; then
		:
	else
		rc=$?
		adv_problems=$((adv_problems + 1))
		if [ $rc -eq 124 ]; then
			echo "soak: PROBLEM: adversary ($label) still running after ${duration} s + 300 s: killed"
		else
			echo "soak: PROBLEM: adversary ($label) failed (exit status $rc):"
		fi
		tail -20 "$log"
	fi
	line=$(grep '^adversary: \(OK\|FAIL\): ' "$log" | tail -1)
	[ -n "$line" ] && echo "soak: $line"
	n=$(echo "$line" | sed -n 's/.*s: \([0-9]*\) operations,.*/\1/p')
	[ -n "$n" ] && adv_ops=$((adv_ops + n))
}
for mode in rseq fallback; do
	adversary_run "$mode" SHEAF_PERCPU=$mode timeout $((duration + 300)) \
		"$adversary" "$duration"
done
if [ "${SOAK_MALLOC:-0}" = 1 ]; then
	for mode in rseq fallback; do
		adversary_run "malloc, $mode" SHEAF_PERCPU=$mode LD_PRELOAD="$malloc_lib" \
			timeout $((duration + 300)) "$adversary_malloc" --malloc "$duration"
	done
fi
echo "soak: adversary: $adv_ops operations, $adv_problems problems"
[ $problems -eq 0 ] && [ $adv_problems -eq 0 ]
