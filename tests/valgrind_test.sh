#!/bin/sh
# Run valgrind_wrong under memcheck; every planted error must be reported.
#   valgrind_test.sh PROGRAM
set -u
prog=$1
command -v valgrind >/dev/null || { echo "valgrind_test: valgrind not installed"; exit 77; }
out=$(valgrind --tool=memcheck --leak-check=full --error-exitcode=0 "$prog" 2>&1)
fail=0
check() {   # pattern, at least, [at most]
	n=$(printf '%s\n' "$out" | grep -c "$1")
	if [ "$n" -lt "$2" ] || [ "$n" -gt "${3:-$n}" ]; then
		echo "valgrind_test: expected $2${3:+..$3} x '$1', found $n"
		fail=1
	fi
}
check "Invalid read of size 1" 2   # after free, past the end
check "Invalid write of size 1" 1  # after free
check "definitely lost" 1          # the leaked object
check "Invalid free" 1 1           # the double free, not the failed bulk
check "^partial bulk: 0$" 1 1      # the bulk allocation did fail
printf '%s\n' "$out" | grep -q "^fallback$" || { echo "valgrind_test: not in fallback mode"; fail=1; }
if [ $fail -ne 0 ]; then
	printf '%s\n' "$out"
	exit 1
fi
echo "valgrind_test: memcheck reported every planted error"
