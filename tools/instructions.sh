#!/bin/sh
# Instructions per alloc+free pair on the `hot` workload (64 bytes).
#
# Dynamic counts come from valgrind's callgrind, which counts instructions
# repeatably whatever else the machine does.  Valgrind blocks rseq, so
# libsheaf runs its fallback per-CPU mode there; the peers run as they are.
# Each figure is (Ir(N2) - Ir(N1)) / (N2 - N1): set-up and exit cancel out.
# The rseq mode's inline fast path is given as the static instruction count
# of the loop body of bench/hotloop.c (objdump between its two labels).
#
#   tools/instructions.sh [BUILD_DIR]      (default: build)
set -eu
build=${1:-build}
hl="$build/bench/hotloop"
[ -x "$hl" ] || { echo "instructions: build first ($hl missing)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "instructions: valgrind missing" >&2; exit 1; }
lib=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
N1=200000
N2=400000

ir() { # contender preload n
	out=$(LD_PRELOAD="$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$hl" "$1" 64 "$3" 2>&1 >/dev/null | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p')
	echo "${out:-0}"
}

printf '| contender | mode | instructions per alloc+free pair (callgrind) |\n'
printf '|---|---|---:|\n'
for spec in "sheaf:" "classic:" "malloc:" \
	    "malloc:$lib/libjemalloc.so.2" "malloc:$lib/libtcmalloc_minimal.so.4" \
	    "malloc:$lib/libmimalloc.so.2"; do
	who=${spec%%:*}
	pre=${spec#*:}
	if [ -n "$pre" ] && [ ! -e "$pre" ]; then continue; fi
	a=$(ir "$who" "$pre" $N1)
	b=$(ir "$who" "$pre" $N2)
	per=$(awk -v a="$a" -v b="$b" -v n=$((N2 - N1)) 'BEGIN { printf "%.1f", (b - a) / n }')
	case "$who:$pre" in
	sheaf:) name="libsheaf sheaves"; mode="fallback (valgrind)";;
	classic:) name="libsheaf classic"; mode="fallback (valgrind)";;
	malloc:) name="glibc"; mode="-";;
	*) name=$(basename "$pre" | sed 's/^lib//; s/\.so.*//; s/_minimal//'); mode="-";;
	esac
	printf '| %s | %s | %s |\n' "$name" "$mode" "$per"
done

# Static count of the inline rseq fast path (the loop body of hotloop).
objdump -d --no-show-raw-insn "$hl" | awk '
	/<hotloop_body_begin>:/ { on = 1; next }
	/<hotloop_body_end>:/ { on = 0 }
	on && /^ *[0-9a-f]+:\t/ { n++ }
	END { printf "\nrseq mode, sheaves: %d instructions between the loop-body labels of hotloop (alloc inline + free inline, including the out-of-line-looking bail and retry code placed there)\n", n }'
