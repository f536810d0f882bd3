#!/bin/sh
# Instructions per alloc+free pair on the `hot` workload (64 bytes).
#
# Dynamic counts come from `perf stat -e instructions:u` when the kernel
# exposes the hardware counter (libsheaf then runs its rseq mode); where
# perf says "not supported" (virtual machines without a PMU) they come from
# valgrind's callgrind, which counts instructions repeatably whatever else
# the machine does.  Valgrind blocks rseq, so libsheaf runs its fallback
# per-CPU mode there; the peers run as they are.
# Each figure is (Ir(N2) - Ir(N1)) / (N2 - N1): set-up and exit cancel out.
# The rseq mode's inline fast path is given as the static instruction count
# of the loop body of bench/hotloop.c (objdump between its two labels).
#
#   tools/instructions.sh [BUILD_DIR]      (default: build)
set -eu
build=${1:-build}
hl="$build/bench/hotloop"
[ -x "$hl" ] || { echo "instructions: build first ($hl missing)" >&2; exit 1; }
lib=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
N1=200000
N2=400000

# Which counter: perf when the hardware counter works, else callgrind.
tool=callgrind
if command -v perf >/dev/null 2>&1 &&
   perf stat -x, -e instructions:u true 2>&1 | grep -q '^[0-9][0-9]*,'; then
	tool=perf
	N1=2000000
	N2=4000000
fi

ir() { # contender preload n [size]
	sz=${4:-64}
	if [ $tool = perf ]; then
		# best of 3: the counter also sees page faults and the like
		best=
		for _ in 1 2 3; do
			out=$(LD_PRELOAD="$2" perf stat -x, -e instructions:u "$hl" "$1" "$sz" "$3" \
				2>&1 >/dev/null | awk -F, '/instructions/ { print $1 }')
			case $out in ''|*[!0-9]*) continue;; esac
			if [ -z "$best" ] || [ "$out" -lt "$best" ]; then best=$out; fi
		done
		echo "${best:-0}"
		return
	fi
		out=$(LD_PRELOAD="$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$hl" "$1" "$sz" "$3" 2>&1 >/dev/null | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p')
	echo "${out:-0}"
}

if [ $tool = perf ]; then libsheaf_mode=${SHEAF_PERCPU:-rseq}; else libsheaf_mode="fallback (valgrind)"; fi
printf 'Counted with: %s\n\n' "$([ $tool = perf ] && echo 'perf stat -e instructions:u (hardware counter)' || echo 'valgrind --tool=callgrind (perf stat: instructions not supported here)')"
printf '| contender | libsheaf per-CPU mode | instructions per alloc+free pair (%s) |\n' $tool
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
	sheaf:) name="libsheaf sheaves"; mode=$libsheaf_mode;;
	classic:) name="libsheaf classic"; mode=$libsheaf_mode;;
	malloc:) name="glibc"; mode="-";;
	*) name=$(basename "$pre" | sed 's/^lib//; s/\.so.*//; s/_minimal//'); mode="-";;
	esac
	printf '| %s | %s | %s |\n' "$name" "$mode" "$per"
done

# The adaptive capacity must leave the hot paths as they are: the same
# loop with SHEAF_ADAPTIVE=0 (the kernel's fixed design), 64 and 256 bytes.
printf '\n| libsheaf sheaves, object size | SHEAF_ADAPTIVE=1 (default) | SHEAF_ADAPTIVE=0 |\n'
printf '|---|---:|---:|\n'
for sz in 64 256; do
	row=
	for ad in 1 0; do
		export SHEAF_ADAPTIVE=$ad
		a=$(ir sheaf "" $N1 $sz)
		b=$(ir sheaf "" $N2 $sz)
		row="$row | $(awk -v a="$a" -v b="$b" -v n=$((N2 - N1)) 'BEGIN { printf "%.1f", (b - a) / n }')"
	done
	printf '| %s B%s |\n' "$sz" "$row"
done
unset SHEAF_ADAPTIVE

# Static count of the inline rseq fast path (the loop body of hotloop).
objdump -d --no-show-raw-insn "$hl" | awk '
	/<hotloop_body_begin>:/ { on = 1; next }
	/<hotloop_body_end>:/ { on = 0 }
	on && /^ *[0-9a-f]+:\t/ { n++ }
	END { printf "\nrseq mode, sheaves: %d instructions between the loop-body labels of hotloop (alloc inline + free inline, including the out-of-line-looking bail and retry code placed there)\n", n }'
