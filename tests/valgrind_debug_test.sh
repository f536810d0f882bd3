#!/bin/sh
# Run each slub_debug wrong program of test_debug under valgrind memcheck:
# memcheck must report the error (libsheaf describes debug caches' objects,
# red zones and metadata to it) and slub_debug must still print its report.
#   valgrind_debug_test.sh TEST_DEBUG
set -u
prog=$1
command -v valgrind >/dev/null || { echo "valgrind_debug_test: valgrind not installed"; exit 77; }
fail=0
# wrong program | what memcheck reports ("" where memcheck has no notion of
# it: a cache mix-up is not a memory error) | slub_debug's report header
while IFS='|' read -r name memcheck header; do
	out=$(valgrind --tool=memcheck --leak-check=full "$prog" --wrong "$name" 2>&1)
	if [ -n "$memcheck" ] && ! printf '%s\n' "$out" | grep -q "$memcheck"; then
		echo "valgrind_debug_test: $name: memcheck did not report '$memcheck'"
		fail=1
	fi
	if [ -n "$memcheck" ] && ! printf '%s\n' "$out" | grep -q "wrong_"; then
		echo "valgrind_debug_test: $name: no stack through the wrong program"
		fail=1
	fi
	if ! printf '%s\n' "$out" | grep -q "$header"; then
		echo "valgrind_debug_test: $name: no slub_debug report '$header'"
		fail=1
	fi
	[ $fail -eq 0 ] || { printf '%s\n' "$out"; exit 1; }
	echo "valgrind_debug_test: $name: ${memcheck:-(no memcheck error)} + $header"
done <<'LIST'
right_redzone|Invalid write of size 1|Right Redzone overwritten
left_redzone|Invalid write of size 1|Left Redzone overwritten
use_after_free|Invalid write of size 1|Poison overwritten
double_free|Invalid free|Object already free
wrong_cache||Wrong slab cache. dbg-cache-b but object is from dbg-cache-a
freelist|Invalid write of size 8|Freechain corrupt
leak|definitely lost: 80 bytes in 2 blocks|Objects remaining in dbg-leak
LIST
echo "valgrind_debug_test: memcheck and slub_debug found every planted error"
