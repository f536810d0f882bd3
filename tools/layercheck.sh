#!/bin/sh
# layercheck: the source files' calls point down the layer table.
#
#   tools/layercheck.sh [-v] [-d DOC] [-x EXCEPTIONS] BUILD_DIR
#   tools/layercheck.sh [-v] [-d DOC] [-x EXCEPTIONS] OBJECT...
#
# The layer table is the one of DOC (default docs/ARCHITECTURE.md), section
# "Layers, bottom up": a markdown table whose first column names the layer
# and whose second lists its files (`src/x.c`, backquoted); rows go bottom
# up.  Up-calls that are allowed for now are in EXCEPTIONS (default
# tools/layercheck.exceptions), one a line, each with its reason.
#
# The file-to-file graph comes from the built objects (with BUILD_DIR: the
# CMake object library sheaf_obj and preload.c's object of sheaf_malloc).
# For every object, its symbol table (readelf -s): global and weak symbols
# it defines, symbols it leaves undefined.  An edge A -> B for each symbol
# A leaves undefined and B defines (a call or a data reference), and for
# each symbol A defines weak and B defines strong (B overrides A's default:
# A's uses of it reach B).  Static functions and variables are not in the
# graph.  readelf, not nm: nm loads binutils' LTO plugin when an object
# carries LTO sections (gcc's -ffat-lto-objects) and lists the symbols of
# the compiler's intermediate code instead of the object's machine code.
#
# Exit status: 0 no up-call outside the exceptions; 1 up-calls (one line
# each on stdout) or a file missing from the table; 2 usage or a broken
# table; 77 (CTest's skip) when the objects have no machine-code symbol
# table (LLVM bitcode, slim LTO objects).
# -v also prints every edge.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
doc=$root/docs/ARCHITECTURE.md
exc=$root/tools/layercheck.exceptions
verbose=0

usage() {
	echo "usage: $0 [-v] [-d DOC] [-x EXCEPTIONS] BUILD_DIR | OBJECT..." >&2
	exit 2
}

while getopts vd:x: opt; do
	case $opt in
	v) verbose=1 ;;
	d) doc=$OPTARG ;;
	x) exc=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
[ -r "$doc" ] || { echo "layercheck: cannot read $doc" >&2; exit 2; }
[ -r "$exc" ] || { echo "layercheck: cannot read $exc" >&2; exit 2; }
command -v readelf >/dev/null 2>&1 || { echo "layercheck: readelf (binutils) not found" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/layercheck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The objects: a build directory's, or those named.
if [ $# -eq 1 ] && [ -d "$1" ]; then
	b=$1
	set -- "$b"/CMakeFiles/sheaf_obj.dir/src/*.c.o
	[ -e "$1" ] || { echo "layercheck: no objects in $b/CMakeFiles/sheaf_obj.dir/src (not built?)" >&2; exit 2; }
	# libsheaf-malloc's own source (not built in sanitizer builds).
	for o in "$b"/CMakeFiles/sheaf_malloc.dir/src/*.c.o; do
		[ -e "$o" ] && set -- "$@" "$o"
	done
	srcdir=$root/src
else
	srcdir=
fi

# The table: "file rank layer" lines, rank 1 at the bottom.
awk '
	/^#+[ \t]+Layers, bottom up/ { insec = 1; next }
	insec && /^#/ { exit }
	insec && /^\|/ {
		intable = 1
		n = split($0, col, "|")
		if (++row <= 2)          # header and separator
			next
		layer = col[2]; gsub(/^[ \t]+|[ \t]+$/, "", layer)
		rank++
		files = col[3]
		while (match(files, /`src\/[A-Za-z0-9_.-]+\.c`/)) {
			f = substr(files, RSTART + 5, RLENGTH - 6)
			files = substr(files, RSTART + RLENGTH)
			print f "\t" rank "\t" layer
		}
		next
	}
	intable { exit }
' "$doc" > "$tmp/table"
if [ ! -s "$tmp/table" ]; then
	echo "layercheck: no layer table (section \"Layers, bottom up\") with \`src/*.c\` files in $doc" >&2
	exit 2
fi

# Symbols: "file U sym" (undefined), "file D sym" (defined), "file W sym"
# (defined weak).
for o in "$@"; do
	f=$(basename "$o")
	f=${f%.o}
	case $f in *.c) ;; *) f=$f.c ;; esac
	if [ -n "$srcdir" ] && [ ! -e "$srcdir/$f" ]; then
		echo "layercheck: note: $o: src/$f no longer exists (stale object, ignored)" >&2
		continue
	fi
	[ -f "$o" ] || { echo "layercheck: no object $o" >&2; exit 2; }
	if ! readelf -sW "$o" > "$tmp/elf" 2> "$tmp/err"; then
		cat "$tmp/err" >&2
		if grep -qi "bitcode" "$tmp/err"; then
			echo "layercheck: skipped: $o is LLVM bitcode (no machine-code symbol table)" >&2
			exit 77
		fi
		echo "layercheck: readelf cannot read $o" >&2
		exit 2
	fi
	awk -v f="$f" '
		$1 ~ /^[0-9]+:$/ && NF == 8 {
			if ($7 == "UND") print f, "U", $8
			else if ($5 == "GLOBAL") print f, "D", $8
			else if ($5 == "WEAK") print f, "W", $8
		}' "$tmp/elf" > "$tmp/syms.$f"
	# gcc's slim LTO objects: intermediate code only, marked __gnu_lto_slim.
	if grep -q " __gnu_lto_slim$" "$tmp/syms.$f" ||
	   { ! grep -q " [DW] " "$tmp/syms.$f" && readelf -SW "$o" | grep -q "gnu.lto_"; }; then
		echo "layercheck: skipped: $o holds only LTO intermediate code (no machine-code symbol table)" >&2
		exit 77
	fi
	cat "$tmp/syms.$f" >> "$tmp/syms"
	echo "$f" >> "$tmp/objects"
done
[ -s "$tmp/objects" ] || { echo "layercheck: no objects" >&2; exit 2; }

awk -v verbose="$verbose" -v srcdir="$srcdir" '
	function p(f) { return "src/" f }
	FILENAME == ARGV[1] {        # the table (tab-separated)
		split($0, t, "\t")
		if (t[1] in rank) {
			printf "layercheck: src/%s is in two layers: %s and %s\n", t[1], layer[t[1]], t[3]
			bad = 1
		}
		rank[t[1]] = t[2]; layer[t[1]] = t[3]; intable[t[1]] = 1
		next
	}
	FILENAME == ARGV[2] {        # the objects
		obj[$1] = 1
		next
	}
	FILENAME == ARGV[3] {        # the symbols
		if ($2 == "U") { nu++; uf[nu] = $1; us[nu] = $3 }
		else if ($2 == "D") def[$3] = $1
		else { nw++; wf[nw] = $1; ws[nw] = $3; wdef[$3] = $1 }
		next
	}
	{                            # the exceptions
		line = $0
		sub(/^[ \t]+/, "", line)
		if (line == "" || line ~ /^#/)
			next
		if (!match(line, /^[^ \t]+[ \t]+->[ \t]+[^ \t:[]+([ \t]*\[[^]]*\])?[ \t]*:/)) {
			printf "layercheck: %s:%d: not \"a.c -> b.c: reason\" nor \"a.c -> b.c [sym ...]: reason\"\n", FILENAME, FNR
			bad = 1
			next
		}
		head = substr(line, 1, RLENGTH - 1)
		reason = substr(line, RLENGTH + 1)
		gsub(/^[ \t]+|[ \t]+$/, "", reason)
		syml = ""
		if (match(head, /\[[^]]*\]/)) {
			syml = substr(head, RSTART + 1, RLENGTH - 2)
			head = substr(head, 1, RSTART - 1)
		}
		split(head, hp, /[ \t]*->[ \t]*/)
		a = hp[1]; b = hp[2]
		gsub(/[ \t]/, "", a); gsub(/[ \t]/, "", b)
		sub(/^src\//, "", a); sub(/^src\//, "", b)
		if (reason == "") {
			printf "layercheck: %s:%d: exception %s -> %s without a reason\n", FILENAME, FNR, a, b
			bad = 1
		}
		k = a SUBSEP b
		if (k in exc) {
			printf "layercheck: %s:%d: second exception for %s -> %s\n", FILENAME, FNR, a, b
			bad = 1
		}
		exc[k] = reason
		nes = split(syml, es, /[ \t,]+/)
		for (i = 1; i <= nes; i++)
			if (es[i] != "") { excsym[k] = 1; exs[k, es[i]] = 1 }
		nexc++
	}
	function edge(a, b, s, k) {
		if (a == b || !(b in obj))
			return
		k = a SUBSEP b
		if ((k SUBSEP s) in seen)
			return
		seen[k SUBSEP s] = 1
		if (!(k in syms)) { ne++; ea[ne] = a; eb[ne] = b }
		syms[k] = syms[k] " " s
		if (k in excsym && !((k, s) in exs))
			unexcused[k] = unexcused[k] " " s
		used[k, s] = 1
	}
	END {
		for (f in obj)
			if (!(f in intable)) {
				printf "layercheck: src/%s is in no row of the layer table\n", f
				bad = 1
			}
		for (i = 1; i <= nu; i++)
			if (us[i] in def)
				edge(uf[i], def[us[i]], us[i])
			else if (us[i] in wdef)
				edge(uf[i], wdef[us[i]], us[i])
		for (i = 1; i <= nw; i++)    # a weak default overridden elsewhere
			if (ws[i] in def)
				edge(wf[i], def[ws[i]], ws[i] "(weak)")
		nup = 0
		for (i = 1; i <= ne; i++) {
			a = ea[i]; b = eb[i]; k = a SUBSEP b
			up = (a in rank) && (b in rank) && rank[b] > rank[a]
			if (verbose)
				printf "edge %s (%s) -> %s (%s)%s:%s\n", p(a), layer[a], p(b), layer[b],
				       up ? " UP" : "", syms[k]
			if (!up) {
				if (k in exc)
					printf "layercheck: note: exception %s -> %s is not an up-call (remove it)\n", a, b
				continue
			}
			nup++
			if (k in exc && !(k in excsym))
				continue
			if (k in exc) {
				if (!(k in unexcused))
					continue
				list = unexcused[k]
			} else
				list = syms[k]
			printf "%s (layer %s) -> %s (layer %s): symbols%s\n", p(a), layer[a], p(b), layer[b], list
			fail = 1
		}
		for (k in exc) {
			split(k, kp, SUBSEP)
			if (!(kp[1] in obj) || !(kp[2] in obj))
				continue     # not built here: "no object" below
			if (!(k in syms))
				printf "layercheck: note: exception %s -> %s no longer occurs (remove it)\n", kp[1], kp[2]
			else
				for (ks in exs) {
					split(ks, kq, SUBSEP)
					if (kq[1] SUBSEP kq[2] == k && !((k, kq[3]) in used))
						printf "layercheck: note: exception %s -> %s: %s no longer referenced\n", kp[1], kp[2], kq[3]
				}
		}
		for (f in intable)
			if (srcdir != "" && !(f in obj))
				printf "layercheck: note: no object for src/%s in this build\n", f
		nf = 0
		for (f in obj) nf++
		printf "layercheck: %d files, %d edges, %d up-calls, %d exceptions%s\n",
		       nf, ne, nup, nexc, (fail || bad) ? ": FAILED" : ""
		exit (fail || bad) ? 1 : 0
	}
' "$tmp/table" "$tmp/objects" "$tmp/syms" "$exc"
