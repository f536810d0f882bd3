#!/bin/sh
# libFuzzer runs of the two fuzz targets, each for a set time, starting
# from its committed corpus:
#   fuzz_api   API sequences (tests/fuzz/fuzz_api.c, tests/fuzz/corpus),
#              SECONDS
#   fuzz_info  the statistics page parser (tests/fuzz/fuzz_info.c,
#              tests/fuzz/corpus-info), INFO_SECONDS (default 30: a small
#              target that saturates its coverage in seconds)
# New inputs go to BUILD_DIR/fuzz-corpus[-info], crashes and their inputs
# to BUILD_DIR/fuzz-artifacts[-info], logs to BUILD_DIR/fuzz[-info].log.
# Prints one line per target (executions, coverage, new inputs, problems);
# exit status 1 on a crash or a failed check in either.
#   tools/fuzz.sh BUILD_DIR SECONDS [INFO_SECONDS]
#   (make fuzz FUZZ_TIME=60 [FUZZ_INFO_TIME=30])
set -u
build=$1
secs=${2:-60}
info_secs=${3:-30}
root=$(cd "$(dirname "$0")/.." && pwd)

# run NAME SECONDS MAX_LEN SUFFIX CORPUS
run() {
	name=$1 t=$2 maxlen=$3 sfx=$4 corpus=$5
	fz=$build/tests/$name
	[ -x "$fz" ] || { echo "fuzz: $fz missing: make fuzz builds it" >&2; return 1; }
	mkdir -p "$build/fuzz-corpus$sfx" "$build/fuzz-artifacts$sfx"
	log=$build/fuzz$sfx.log
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "$fz" -max_total_time="$t" \
		-print_final_stats=1 -max_len="$maxlen" -timeout=60 \
		-artifact_prefix="$build/fuzz-artifacts$sfx/" \
		"$build/fuzz-corpus$sfx" "$corpus" > "$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	newunits=$(sed -n 's/^stat::new_units_added: *//p' "$log")
	crashes=$(ls "$build/fuzz-artifacts$sfx" 2>/dev/null | wc -l)
	if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
		tail -40 "$log"
		echo "fuzz: $name: PROBLEM: libFuzzer exit status $rc, $crashes crash inputs in $build/fuzz-artifacts$sfx"
		return 1
	fi
	echo "fuzz: $name: ${t} s, ${execs:-?} inputs executed, coverage ${cov:-?} edges, ${newunits:-0} new inputs, 0 problems"
}

status=0
run fuzz_api "$secs" 4096 "" "$root/tests/fuzz/corpus" || status=1
# A whole page (SHEAF_INFO_PAGE_MAX, 123008 bytes) and a little more.
run fuzz_info "$info_secs" 123072 "-info" "$root/tests/fuzz/corpus-info" || status=1
exit $status
