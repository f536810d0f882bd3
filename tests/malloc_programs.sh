#!/bin/sh
# Real programs under LD_PRELOAD=libsheaf-malloc.so: each runs without and
# with the library, and the outputs (stdout and exit status) must be
# identical.  With SHEAF_MALLOC_VERBOSE=1 the library prints one line per
# process at exit: its presence for the program proves the library was in use.
#   malloc_programs.sh LIBSHEAF_MALLOC_SO BIN_DIR SOURCE_DIR
# Skips (77) without the programs.  Any libsheaf variable in the
# environment applies (e.g. SHEAF_PERCPU=fallback).
set -eu
lib=$(realpath "$1")	# absolute: the runs happen in a temporary directory
bin=$(realpath "$2")
src=$(realpath "$3")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C
fail=0

# check NAME PROGRAM_NAME COMMAND...: run COMMAND (a shell command line)
# twice and compare.
check() {
	name=$1
	prog=$2
	shift 2
	start=$(date +%s.%N)
	set +e
	( cd "$tmp" && sh -c "$*" ) >"$tmp/$name.ref" 2>"$tmp/$name.ref.err"
	ref_rc=$?
	( cd "$tmp" && LD_PRELOAD=$lib SHEAF_MALLOC_VERBOSE=1 timeout 120 sh -c "$*" ) \
		>"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	set -e
	end=$(date +%s.%N)
	secs=$(awk "BEGIN { printf \"%.2f\", $end - $start }")
	if [ "$rc" != "$ref_rc" ]; then
		echo "FAIL $name: exit status $rc with libsheaf-malloc, $ref_rc without"
		sed 's/^/  | /' "$tmp/$name.err" | tail -20
		fail=1
	elif ! cmp -s "$tmp/$name.ref" "$tmp/$name.out"; then
		echo "FAIL $name: output differs"
		diff "$tmp/$name.ref" "$tmp/$name.out" | head -20
		fail=1
	elif ! grep -q "^libsheaf-malloc: $prog (pid [0-9]*) start: " "$tmp/$name.err"; then
		echo "FAIL $name: libsheaf-malloc was not in use in $prog"
		sed 's/^/  | /' "$tmp/$name.err" | tail -20
		fail=1
	else
		echo "ok   $name (${secs}s for both runs, $(wc -l <"$tmp/$name.out") lines,"\
			"$(grep -c '^libsheaf-malloc: ' "$tmp/$name.err") processes)"
	fi
}

# Debian's python3 (not a version manager's shim script, which would run
# a dozen shell processes around it).
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
for p in $py sqlite3 git gcc sort; do
	if ! command -v $p >/dev/null 2>&1; then
		echo "malloc_programs: $p missing (make deps installs it)"
		exit 77
	fi
done

# The project's own: cross-thread frees, fork with threads, dlopen; C++.
check threads malloc_threads "'$bin/malloc_threads' '$bin/libmalloc_dso.so' 4 300"
check cxx malloc_cxx "'$bin/malloc_cxx'"

# python3 with every object through malloc.
check python python3 "PYTHONMALLOC=malloc $py '$src/tests/malloc/workload.py'"
# The start-up area: slub_debug U makes sheaf_init() load the unwinder
# (dlopen allocates) while it runs; that must neither recurse nor hang.
check python_boot python3 "SLUB_DEBUG=U,kmalloc-64 $py -c 'print(sum(range(10)))'"
if ! grep -q "^libsheaf-malloc: python3 .* [1-9][0-9]* bytes at start-up" "$tmp/python_boot.err"; then
	echo "FAIL python_boot: the start-up area was not used"
	fail=1
fi

check sqlite sqlite3 "sqlite3 :memory: < '$src/tests/malloc/workload.sql'"

# git: a repository made here (fixed dates: fixed hashes), cloned through
# the pack protocol and logged.
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org
export GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'
export GIT_CONFIG_NOSYSTEM=1 HOME=$tmp
git init -q "$tmp/repo"
i=0
while [ $i -lt 40 ]; do
	seq $i 3 $((i * 200)) >"$tmp/repo/file$((i % 7)).txt"
	cp "$src/tests/malloc/workload.sql" "$tmp/repo/sql$((i % 3)).sql"
	echo "$i" >>"$tmp/repo/sql$((i % 3)).sql"
	git -C "$tmp/repo" add -A
	git -C "$tmp/repo" commit -q -m "commit $i"
	i=$((i + 1))
done
check git git "rm -rf clone && git clone -q --no-local repo clone && git -C clone log --stat --format='%H %s' && git -C clone fsck --full"

# sort: 300000 lines, by text and numerically on a field.
awk 'BEGIN { x = 1; for (i = 0; i < 300000; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%d %x line%d\n", x % 100000, x, i } }' >"$tmp/lines.txt"
check sort sort "sort lines.txt && sort -n -k1,1 -k3 --parallel=2 -S 8M lines.txt | md5sum"

# gcc: compile a C file to assembly and to a program, run the program.
check gcc gcc "gcc -O2 -S -o - '$src/tests/malloc/malloc_threads.c' && gcc -O2 -o prog '$src/tests/malloc/dso.c' '$src/tests/malloc/malloc_threads.c' -ldl -lpthread && ./prog /nonexistent 2 1 || echo status \$?"

exit $fail
