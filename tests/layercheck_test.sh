#!/bin/sh
# tools/layercheck.sh on a tree of small objects with known edges: a planted
# up-call must fail the check, and pass only when excepted or removed.
#   tests/layercheck_test.sh LAYERCHECK_SH CC
set -u
check=$1
cc=$2
t=$(mktemp -d "${TMPDIR:-/tmp}/layercheck_test.XXXXXX")
trap 'rm -rf "$t"' EXIT INT TERM
fails=0

cat > "$t/doc.md" <<'EOF'
# Fake

## Layers, bottom up

| layer | files | what it does |
|---|---|---|
| low | `src/low.c` | the bottom |
| mid | `src/mid.c`, `src/mid2.c` | two files, one layer |
| high | `src/high.c` | the top |

## After
| not | `src/other.c` | another table, not read |
EOF

cat > "$t/low.c" <<'EOF'
int low_data = 1;
int low_fn(void) { return low_data; }
#ifdef UP_CALL
extern int high_fn(void);
int low_up(void) { return high_fn(); }
#endif
#ifdef UP_DATA
extern int high_data;
int low_read(void) { return high_data; }
#endif
#ifdef UP_WEAK
__attribute__((weak)) void hook(void) { }
void low_hook(void) { hook(); }
#endif
EOF
cat > "$t/mid.c" <<'EOF'
extern int low_fn(void);
extern int mid2_fn(void);
int mid_fn(void) { return low_fn() + mid2_fn(); }
EOF
cat > "$t/mid2.c" <<'EOF'
extern int mid_fn(void);
int mid2_fn(void) { return 2; }
int mid2_back(void) { return mid_fn(); }
EOF
cat > "$t/high.c" <<'EOF'
extern int mid_fn(void);
extern int low_data;
int high_data = 3;
int high_fn(void) { return mid_fn() + low_data; }
void hook(void) { }
EOF
cat > "$t/stray.c" <<'EOF'
int stray_fn(void) { return 0; }
EOF

# build CFLAGS: the objects, named as CMake names them (x.c.o)
build() {
	rm -f "$t"/*.c.o
	for f in low mid mid2 high; do
		$cc -c $1 -o "$t/$f.c.o" "$t/$f.c" || { echo "FAIL: cannot compile $f.c with $cc $1"; exit 1; }
	done
}

# expect STATUS NAME EXCEPTIONS [PATTERN]: run the check on the objects;
# its exit status must be STATUS and its output must match PATTERN.
expect() {
	want=$1 name=$2
	printf '%s\n' "$3" > "$t/exc"
	"$check" -d "$t/doc.md" -x "$t/exc" "$t"/low.c.o "$t"/mid.c.o "$t"/mid2.c.o "$t"/high.c.o \
		$extra > "$t/out" 2>&1
	got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL: $name: exit $got, expected $want"; sed 's/^/  | /' "$t/out"
		fails=$((fails + 1))
	elif [ $# -ge 4 ] && ! grep -q -- "$4" "$t/out"; then
		echo "FAIL: $name: no line matching \"$4\""; sed 's/^/  | /' "$t/out"
		fails=$((fails + 1))
	else
		echo "ok: $name"
	fi
}

for flags in "-O0" "-O2 -flto -ffat-lto-objects" "-O2"; do
	if [ "$flags" = "-O2 -flto -ffat-lto-objects" ] &&
	   ! $cc -Werror -O2 -flto -ffat-lto-objects -c -o "$t/probe.o" "$t/low.c" 2>/dev/null; then
		echo "skip: $cc has no fat LTO objects"
		continue
	fi
	echo "== $flags"
	extra=
	build "$flags"
	expect 0 "no up-call" "" "4 files, 5 edges, 0 up-calls"
	build "$flags -DUP_CALL"
	expect 1 "planted up-call fails" "" \
		"^src/low.c (layer low) -> src/high.c (layer high): symbols high_fn$"
	build "$flags -DUP_DATA"
	expect 1 "data up-reference fails" "" "-> src/high.c (layer high): symbols high_data$"
	[ "$flags" = "-O2" ] || continue
	# The rest once: they test the script, not the compiler.
	build "$flags"
	expect 0 "stale exception noted" "low.c -> high.c: was planted" "low.c -> high.c no longer occurs"
	expect 0 "down-call exception noted" "mid.c -> low.c: not up" "mid.c -> low.c is not an up-call"

	build "$flags -DUP_CALL"
	expect 0 "planted up-call excepted" "low.c -> high.c: planted for the test" "1 up-calls, 1 exceptions$"
	expect 0 "excepted by its symbol" "src/low.c -> src/high.c [high_fn]: planted"
	expect 1 "other symbol excepted" "low.c -> high.c [other_fn]: planted" "symbols high_fn$"
	expect 1 "exception without a reason" "low.c -> high.c:" "without a reason"
	expect 1 "malformed exception" "low.c high.c: planted" "not \"a.c -> b.c"

	build "$flags -DUP_WEAK"
	expect 1 "weak default overridden from above fails" "" "symbols hook(weak)$"

	build "$flags"
	$cc -c $flags -o "$t/stray.c.o" "$t/stray.c"
	extra="$t/stray.c.o"
	expect 1 "file in no layer fails" "" "src/stray.c is in no row"
	extra=
done

# Objects of intermediate code only (slim LTO, LLVM bitcode): no graph,
# the check skips (77) rather than pass on an empty one.
if $cc -O2 -flto -c -o "$t/probe.o" "$t/low.c" 2>/dev/null; then
	flags="-O2 -flto"
	$cc -Werror -O2 -flto -fno-fat-lto-objects -c -o "$t/probe.o" "$t/low.c" 2>/dev/null &&
		flags="-O2 -flto -fno-fat-lto-objects"
	echo "== $flags"
	build "$flags -DUP_CALL"
	expect 77 "intermediate code only: skipped" "" "skipped"
	build "-O2"
fi

# A table naming one file twice.
sed 's/| `src\/high.c` |/| `src\/high.c`, `src\/low.c` |/' "$t/doc.md" > "$t/doc2.md"
mv "$t/doc2.md" "$t/doc.md"
expect 1 "file in two layers fails" "" "src/low.c is in two layers"

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all passed"
