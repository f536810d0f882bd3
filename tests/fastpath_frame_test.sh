#!/bin/sh
# The inline fast paths of libsheaf-malloc's malloc() and free() run
# without a stack frame: from the entry to the first `ret`, no push, no
# %rsp adjustment, no call (slow paths are tail calls).  A branch added to
# free() whose call needs p afterwards once gave the small-object path a
# frame (sub/add of %rsp: 7% of free()'s samples in mallocbench xmalloc)
# without changing any test's result; this catches that kind of change.
# Static, from the disassembly: not a timing.  Optimised builds only.
#   fastpath_frame_test.sh LIBSHEAF_MALLOC_SO
set -u
lib=$1
command -v objdump >/dev/null || { echo "fastpath_frame_test: objdump not installed"; exit 77; }
status=0
for sym in malloc free; do
	body=$(objdump -d --no-show-raw-insn "$lib" | awk -v s="<$sym>:" '
		$2 == s { on = 1; next }
		on && /^$/ { exit }
		on { print; if ($2 == "ret" || $2 == "retq") exit }')
	if [ -z "$body" ]; then
		echo "fastpath_frame_test: $sym not found in $lib"
		status=1
		continue
	fi
	n=$(printf '%s\n' "$body" | wc -l)
	bad=$(printf '%s\n' "$body" | grep -E '[[:space:]](push|call)|%rsp' || true)
	if [ -n "$bad" ]; then
		echo "fastpath_frame_test: $sym's fast path ($n instructions) sets up a frame or calls:"
		printf '%s\n' "$bad"
		status=1
	else
		echo "fastpath_frame_test: $sym: $n instructions to its first ret, no frame"
	fi
done
exit $status
