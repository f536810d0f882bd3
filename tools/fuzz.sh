#!/bin/sh
# libFuzzer run of tests/fuzz/fuzz_api for a set time, starting from the
# committed corpus (new inputs go to BUILD_DIR/fuzz-corpus, crashes and
# their inputs to BUILD_DIR/fuzz-artifacts).  Prints the executions and
# the problems found; exit status 1 on a crash or a failed check.
#   tools/fuzz.sh BUILD_DIR SECONDS          (make fuzz FUZZ_TIME=60)
set -u
build=$1
secs=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
fz=$build/tests/fuzz_api
[ -x "$fz" ] || { echo "fuzz: $fz missing: make fuzz builds it" >&2; exit 1; }
mkdir -p "$build/fuzz-corpus" "$build/fuzz-artifacts"
log=$build/fuzz.log
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "$fz" -max_total_time="$secs" \
	-print_final_stats=1 -max_len=4096 -timeout=60 \
	-artifact_prefix="$build/fuzz-artifacts/" \
	"$build/fuzz-corpus" "$root/tests/fuzz/corpus" > "$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
cov=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
newunits=$(sed -n 's/^stat::new_units_added: *//p' "$log")
crashes=$(ls "$build/fuzz-artifacts" 2>/dev/null | wc -l)
if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
	tail -40 "$log"
	echo "fuzz: PROBLEM: libFuzzer exit status $rc, $crashes crash inputs in $build/fuzz-artifacts"
	exit 1
fi
echo "fuzz: ${secs} s, ${execs:-?} inputs executed, coverage ${cov:-?} edges, ${newunits:-0} new inputs, 0 problems"
