#!/bin/bash
# SPDX-License-Identifier: MIT
#
# tools/kernel-suites.sh - the kernel's own userspace test suites
# (tools/testing/radix-tree: maple, xarray, idr-test, multiorder, main) built
# twice, once on the kernel's slab shim as shipped (the reference) and once
# on libsheaf through compat/kernel-tools, then run in libsheaf's per-CPU
# modes, with a table of results (docs/KERNEL.md).
#
#   tools/kernel-suites.sh [fetch|build|run|all]     (default all)
#
# Environment:
#   BUILD=build            libsheaf's CMake build directory (libsheaf.a)
#   KBUILD=build-kernel    where the kernel source and both builds go
#   TARGETS="maple xarray idr-test multiorder main"
#   MODES="rseq fallback"  SHEAF_PERCPU values for the libsheaf runs
#   SHIMS="kernel libsheaf"
#   KSUITES_ASAN=1         keep the harness's -fsanitize=address,undefined
#                          (0: plain -O2 builds, several times faster)
#   JOBS=2                 make -j
#   KSUITES_TIMEOUT=1800   seconds per run before it is killed (fails)
#   KSUITES_TAG=name       results in $KBUILD/out-name (for runs with other
#                          libsheaf settings in the environment, e.g.
#                          SHEAF_FAKE_NUMA=2, SLUB_DEBUG=FZP,
#                          SHEAF_KTOOLS_CAPACITY=0: they reach every run)
#   KSUITES_PARALLEL=1     runs at a time (the suites are mostly one thread;
#                          results and the table keep their order)
#   KSUITES_RERUN=1        a maple run that fails only on one of the
#                          harness's timing checks (below) runs once more;
#                          0: never
#   KSUITES_QUICK=1        the CI set: all five targets at -O2
#                          (KSUITES_ASAN=0), only the libsheaf shim, two
#                          runs at a time (unless TARGETS, KSUITES_ASAN,
#                          SHIMS or KSUITES_PARALLEL say otherwise)
#
# Nothing of the kernel source is ever written into the repository: it is
# fetched with `apt-get download` (the newest linux-source-* Debian package
# the machine's apt knows) into $KBUILD, which .gitignore covers (build-*/).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
KBUILD=${KBUILD:-build-kernel}
if [ "${KSUITES_QUICK:-0}" = 1 ]; then
	KSUITES_ASAN=${KSUITES_ASAN:-0}
	SHIMS=${SHIMS:-"libsheaf"}
	KSUITES_PARALLEL=${KSUITES_PARALLEL:-2}
fi
KSUITES_PARALLEL=${KSUITES_PARALLEL:-1}
TARGETS=${TARGETS:-"maple xarray idr-test multiorder main"}
MODES=${MODES:-"rseq fallback"}
SHIMS=${SHIMS:-"kernel libsheaf"}
KSUITES_ASAN=${KSUITES_ASAN:-1}
# The two flavours build in their own trees (make does not track CFLAGS).
[ "$KSUITES_ASAN" = 1 ] && V=asan || V=O2
JOBS=${JOBS:-2}
KSUITES_TIMEOUT=${KSUITES_TIMEOUT:-1800}
KSUITES_RERUN=${KSUITES_RERUN:-1}
STEP=${1:-all}

cd "$ROOT"
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
case $KBUILD in /*) ;; *) KBUILD=$ROOT/$KBUILD ;; esac
mkdir -p "$KBUILD"
KT=$ROOT/compat/kernel-tools
OUT=$KBUILD/out${KSUITES_TAG:+-$KSUITES_TAG}
mkdir -p "$OUT"

log() { echo "kernel-suites: $*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------------ fetch
# A private apt state in $KBUILD/apt: `apt-get download` reads the system's
# package lists and writes only the .deb into the current directory; when
# the lists do not know any linux-source-* package, `apt-get update` fills
# lists of our own ($KBUILD/apt/lists, from the system's sources), so the
# system's lists and caches are never touched (and no root is needed).
APTDIR=$KBUILD/apt
APT_PRIV=(-o Dir::State::Lists="$APTDIR/lists" -o Dir::Cache="$APTDIR/cache"
	  -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
	  -o Debug::NoLocking=1)
APT_SYS=(-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)

newest_source() {       # newest linux-source-X.Y package name, or nothing
	apt-cache "$@" pkgnames linux-source- 2>/dev/null |
		grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -1
}

fetch() {
	local pkg opts deb
	mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
	opts=("${APT_SYS[@]}")
	pkg=$(newest_source "${opts[@]}")
	if [ -z "$pkg" ]; then
		log "no linux-source package in the system's apt lists: apt-get update into $APTDIR"
		apt-get "${APT_PRIV[@]}" update >&2 || die "apt-get update failed"
		opts=("${APT_PRIV[@]}")
		pkg=$(newest_source "${opts[@]}")
		[ -n "$pkg" ] || die "no linux-source-* package available"
	fi
	KVER=${pkg#linux-source-}
	log "newest kernel source apt offers: $pkg ($(apt-cache "${opts[@]}" policy "$pkg" | awk '/Candidate/{print $2}'))"
	case $(printf '%s\n7.2\n' "$KVER" | sort -V | head -1) in
	7.2) ;;
	*) log "note: the issue asks for 7.2 or newer; this machine's apt has $KVER at most, so $KVER it is" ;;
	esac
	deb=$(ls "$APTDIR"/"$pkg"_*.deb 2>/dev/null | tail -1 || true)
	if [ -z "$deb" ]; then
		(cd "$APTDIR" && apt-get "${opts[@]}" download "$pkg" 2>&1 |
			grep -v 'unsandboxed as root' >&2) || true
		deb=$(ls "$APTDIR"/"$pkg"_*.deb 2>/dev/null | tail -1 || true)
		[ -n "$deb" ] || die "apt-get download $pkg failed"
	fi
	echo "$KVER" > "$KBUILD/kernel-version"
	basename "$deb" > "$KBUILD/kernel-deb"
	extract "$deb"
}

# Only what the harness reads (found with cc -MD on a full build).
MEMBERS=(tools/testing/radix-tree tools/testing/shared tools/include
	 tools/arch/x86/include 'tools/lib/*.c'
	 lib/radix-tree.c lib/radix-tree.h lib/idr.c lib/xarray.c lib/maple_tree.c
	 lib/test_ida.c lib/test_xarray.c lib/test_maple_tree.c
	 include/linux/gfp_types.h include/linux/idr.h include/linux/kconfig.h
	 include/linux/maple_tree.h include/linux/radix-tree.h include/linux/xarray.h)

extract() {
	local deb=$1 top src
	top=linux-source-$KVER
	if [ -f "$KBUILD/src/.extracted-$(basename "$deb")" ]; then
		return
	fi
	rm -rf "$KBUILD/src" "$KBUILD"/ref-* "$KBUILD"/sheaf-* "$KBUILD"/ktools-*
	mkdir -p "$KBUILD/src"
	log "extracting the harness from $(basename "$deb")"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -x -O --wildcards "./usr/src/$top.tar.xz" |
		xz -dc |
		tar -x -C "$KBUILD/src" --wildcards --no-wildcards-match-slash \
			"${MEMBERS[@]/#/$top/}"
	touch "$KBUILD/src/.extracted-$(basename "$deb")"
}

# ------------------------------------------------------------------ build
HARNESS_CFLAGS_ASAN="-fsanitize=address -fsanitize=undefined"

make_harness() {        # dir, extra make arguments...
	local dir=$1/tools/testing/radix-tree
	shift
	local cflags="-I../shared -I. -I../../include -I../../../lib -g -Og -Wall -D_LGPL_SOURCE"
	local ldflags=""
	if [ "$KSUITES_ASAN" = 1 ]; then
		cflags="$cflags $HARNESS_CFLAGS_ASAN"
		ldflags=$HARNESS_CFLAGS_ASAN
	else
		cflags=${cflags/-Og/-O2}
	fi
	make -C "$dir" -j"$JOBS" CFLAGS="$cflags" LDFLAGS="$ldflags" "$@" >&2
}

build() {
	KVER=$(cat "$KBUILD/kernel-version" 2>/dev/null) || die "run fetch first"
	local ref=$KBUILD/ref-$V sheaf=$KBUILD/sheaf-$V kt=$KBUILD/ktools-$V
	local rt=$sheaf/tools/testing/radix-tree
	local cc=${CC:-cc} d
	mkdir -p "$kt"
	for d in "$ref" "$sheaf"; do
		[ -d "$d" ] || cp -a "$KBUILD/src/linux-source-$KVER" "$d"
	done

	case " $SHIMS " in
	*" kernel "*)
		log "building the suites on the kernel's shim ($ref)"
		make_harness "$ref" targets ;;
	esac

	log "building libsheaf ($BUILD)"
	[ -f "$BUILD/CMakeCache.txt" ] ||
		cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
	cmake --build "$BUILD" -j "$JOBS" --target sheaf_static >&2

	# libsheaf with every global symbol renamed ksx_<name>: the layer
	# defines the kernel names for the harness, the bridge calls
	# libsheaf's under the new names.  The LTO sections go: their
	# intermediate code still names the old symbols.
	log "renaming libsheaf's symbols (objcopy --redefine-syms)"
	nm -g --defined-only "$BUILD/libsheaf.a" |
		awk 'NF == 3 { print $3 " ksx_" $3 }' | sort -u > "$kt/ksx.map"
	$cc -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I"$ROOT/include" \
		-c "$KT/ktools_bridge.c" -o "$kt/ktools_bridge.o"
	objcopy --wildcard -R '.gnu.lto_*' -R '.gnu.debuglto_*' \
		--redefine-syms="$kt/ksx.map" "$kt/ktools_bridge.o"
	objcopy --wildcard -R '.gnu.lto_*' -R '.gnu.debuglto_*' \
		--redefine-syms="$kt/ksx.map" "$BUILD/libsheaf.a" "$kt/libsheaf-ksx.a"
	if nm -g --defined-only "$kt/libsheaf-ksx.a" | awk 'NF == 3' |
		grep -v ' ksx_' | grep -c . >/dev/null; then
		die "libsheaf-ksx.a still defines names without the ksx_ prefix"
	fi

	log "building the layer and the suites on libsheaf ($sheaf)"
	make_harness "$sheaf" generated/map-shift.h generated/bit-length.h \
		generated/autoconf.h
	local lcflags="-I../shared -I. -I../../include -I../../../lib -g -O2 -Wall -D_LGPL_SOURCE -I$KT"
	if [ "$KSUITES_ASAN" = 1 ]; then
		lcflags="$lcflags $HARNESS_CFLAGS_ASAN"
	fi
	# Newer harnesses: kmem_cache_create() over struct kmem_cache_args,
	# and prefilled sheaves (6.12 has neither).
	local slab_h=$sheaf/tools/include/linux/slab.h
	if grep -q '__kmem_cache_create_args' "$slab_h"; then
		lcflags="$lcflags -DKTOOLS_HARNESS_CREATE_ARGS"
		log "harness has struct kmem_cache_args"
	fi
	if grep -q 'kmem_cache_prefill_sheaf' "$slab_h"; then
		lcflags="$lcflags -DKTOOLS_HARNESS_SHEAVES"
		log "harness has prefilled sheaves: the layer maps them onto libsheaf's"
	fi
	(cd "$rt" && $cc $lcflags -c "$KT/ktools.c" -o "$kt/ktools.o")
	rm -f "$kt/libktools.a"
	for t in maple xarray idr-test multiorder main; do
		rm -f "$rt/$t"  # relink: the archives are not prerequisites
	done
	ar rcs "$kt/libktools.a" "$kt/ktools.o" "$kt/ktools_bridge.o"
	# The shim's linux.o and slab.o leave the link; the layer's archive,
	# libsheaf's renamed archive and libsheaf's one RCU flavour come in.
	make_harness "$sheaf" targets \
		LIBS="find_bit.o bitmap.o hweight.o vsprintf.o" \
		SHARED_OFILES="xarray-shared.o radix-tree.o idr.o find_bit.o bitmap.o hweight.o vsprintf.o" \
		LDLIBS="-lpthread $kt/libktools.a $kt/libsheaf-ksx.a -lurcu-memb -lurcu-common -lnuma"
	for t in $TARGETS; do
		nm "$rt/$t" | grep -c ' T ksx_kmem_cache_free$' >/dev/null ||
			die "$t: libsheaf is not linked in"
	done
	$cc -O2 -Wall -o "$kt/ksrun" "$KT/ksrun.c"
}

# -------------------------------------------------------------------- run
# Pass: exit status 0, every "N of M tests passed" with N = M, no sanitizer
# report, no "nr_allocated = " leak line.
verdict() {             # log rc
	local f=$1 rc=$2
	[ "$rc" = 0 ] || { echo "FAIL(rc=$rc)"; return; }
	if grep -E 'tests passed' "$f" | awk '$(NF-4) != $(NF-2) { bad = 1 } END { exit !bad }'; then
		echo "FAIL(tests)"; return
	fi
	grep -qE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$f" && { echo "FAIL(sanitizer)"; return; }
	grep -q '^nr_allocated = ' "$f" && { echo "FAIL(leak)"; return; }
	echo pass
}

# The harness's timing checks.  maple's run_check_rcu() and
# run_check_rcu_slowread() start 20 reader threads, sleep 5 us and store;
# they then assert that some reader saw the old value ("Make sure the test
# caught at least one update": MT_BUG_ON(mt, !vals->seen_...)).  A reader
# first looks 400 us after it starts, so on a loaded machine the writer can
# store before any reader looks, whatever the allocator: the kernel's own
# shim fails the same check (docs/KERNEL.md).  A run whose log has one BUG
# line, at one of those lines, and nothing else wrong is such a miss.
timing_miss() {         # log dir
	local f=$1 src=$2/tools/testing/radix-tree/maple.c bug fn line
	[ "$(grep -c '^BUG at ' "$f")" = 1 ] || return 1
	grep -qE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$f" && return 1
	bug=$(grep -m1 '^BUG at ' "$f" | sed -n 's/^BUG at \([a-z_]*\):\([0-9]*\) .*/\1 \2/p')
	read -r fn line <<< "$bug"
	case $fn in run_check_rcu|run_check_rcu_slowread) ;; *) return 1 ;; esac
	sed -n "${line}p" "$src" | grep -q 'MT_BUG_ON(mt, !vals->seen_'
}

# The busiest cache's libsheaf counters, from the layer's exit lines.
stats_of() {
	{ grep '^ktools-stats:' "$1" || true; } | awk '
	{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	  if (v["allocs"] + 0 > best) { best = v["allocs"] + 0
		line = sprintf("%s cap %s: %s allocs, %s%% from sheaves, refill %s, flush %s, barn put fail %s",
			v["cache"], v["cap"], v["allocs"], v["sheaf_alloc_pct"], v["refill"],
			v["flush"], v["barn_put_fail"]) } }
	END { print (line == "" ? "-" : line) }'
}

# One run, in the background when KSUITES_PARALLEL > 1: its table row goes
# to $OUT/row-N, its verdict to $OUT/verdict-N (N orders the rows).
run_one() {             # n target shim mode dir
	local n=$1 t=$2 shim=$3 mode=$4 dir=$5 res rc secs rss v st="-"
	local f=$OUT/$t-$shim-$mode-$V.log
	log "run $t on $shim${mode:+ ($mode)}"
	local tries=1 note=""
	rm -f "$OUT/note-$n"
	while :; do
		res=$(cd "$dir/tools/testing/radix-tree" &&
			SHEAF_PERCPU=${mode/-/rseq} "$KBUILD/ktools-$V/ksrun" "$f" -- \
				timeout "$KSUITES_TIMEOUT" "./$t")
		rc=$(echo "$res" | sed -n 's/.*rc=\([0-9]*\).*/\1/p')
		secs=$(echo "$res" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p')
		rss=$(echo "$res" | sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p')
		v=$(verdict "$f" "$rc")
		[ "$v" != pass ] && [ "$tries" = 1 ] && [ "$KSUITES_RERUN" = 1 ] &&
			[ "$t" = maple ] && timing_miss "$f" "$dir" || break
		mv "$f" "$f.first"
		note="$t on $shim${mode:+ ($mode)}: the first run missed the harness's timing check $(grep -m1 '^BUG at ' "$f.first" | cut -d' ' -f3) (no reader looked before the first store; log $f.first), so it ran again."
		log "  $note"
		tries=2
	done
	[ "$tries" = 2 ] && { v="$v (2nd run)"; echo "$note" > "$OUT/note-$n"; }
	[ "$shim" = libsheaf ] && st=$(stats_of "$f")
	printf '| %s | %s | %s | %s | %s | %.0f | %s |\n' "$t" "$shim" "$mode" \
		"$v" "$secs" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
		"$st" > "$OUT/row-$n"
	echo "$v" > "$OUT/verdict-$n"
	log "  $t on $shim${mode:+ ($mode)}: $v, $secs s, $rss KiB"
}

run() {
	KVER=$(cat "$KBUILD/kernel-version" 2>/dev/null) || die "run fetch first"
	local table=$OUT/table-$V.md shim mode t dir n=0 k npass=0 nfail=0
	{
		echo "Kernel test suites on linux-source-$KVER ($(cat "$KBUILD/kernel-deb")), ASan+UBSan: $KSUITES_ASAN, $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), $KSUITES_PARALLEL run(s) at a time"
		env | grep -E '^(SHEAF_|SLUB_DEBUG)' | grep -v '^SHEAF_PERCPU=' | sed 's/^/environment: /' || true
		echo
		echo "| target | shim | mode | result | seconds | peak RSS MiB | libsheaf: busiest cache |"
		echo "|---|---|---|---|---:|---:|---|"
	} > "$table"
	rm -f "$OUT"/row-* "$OUT"/verdict-* "$OUT"/note-*
	for t in $TARGETS; do
		for shim in $SHIMS; do
			if [ "$shim" = kernel ]; then
				dir=$KBUILD/ref-$V
				set -- "-"
			else
				dir=$KBUILD/sheaf-$V
				set -- $MODES
			fi
			for mode in "$@"; do
				n=$((n + 1))
				while [ "$(jobs -rp | wc -l)" -ge "$KSUITES_PARALLEL" ]; do
					wait -n || true
				done
				run_one "$n" "$t" "$shim" "$mode" "$dir" &
			done
		done
	done
	wait
	for k in $(seq 1 "$n"); do
		if [ -f "$OUT/row-$k" ]; then
			cat "$OUT/row-$k" >> "$table"
		else
			echo "| run $k | - | - | FAIL(no result) | - | - | - |" >> "$table"
		fi
		case $(cat "$OUT/verdict-$k" 2>/dev/null) in
		pass*) npass=$((npass + 1)) ;;
		*) nfail=$((nfail + 1)) ;;
		esac
	done
	echo >> "$table"
	for k in $(seq 1 "$n"); do
		[ -f "$OUT/note-$k" ] && cat "$OUT/note-$k" >> "$table"
	done
	echo "$npass passed, $nfail failed; logs in $OUT" >> "$table"
	cat "$table"
	[ "$nfail" = 0 ]
}

# One compound command, parsed whole before it runs: editing this file
# while it runs cannot change what it does next.
{
	case $STEP in
	fetch) fetch ;;
	build) build ;;
	run) run ;;
	all) fetch; build; run ;;
	*) die "usage: $0 [fetch|build|run|all]" ;;
	esac
	exit
}
