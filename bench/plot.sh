#!/bin/sh
# Plots of a sheafbench CSV with gnuplot (PNG):
#   PREFIX-throughput.png  one panel per workload: each contender's throughput
#                          (millions of operations per second, higher is better)
#   PREFIX-scaling.png     the hot-64 loop in 1..N threads: Mops/s of all threads
#   PREFIX-rss.png         peak resident memory of each run, per workload
#   PREFIX-capacity.png    the phase workload: sheaf capacity, barn limit and
#                          throughput over time, per contender (sheaf against
#                          sheaf-fixed), from CSV's companion X-capacity.csv
#                          when there is one (X.csv = CSV)
#
#   bench/plot.sh CSV PREFIX       e.g. bench/plot.sh bench/results/full.csv docs/img/bench
set -eu
csv=$1
prefix=$2
command -v gnuplot >/dev/null || { echo "plot: gnuplot missing (apt-get install -y gnuplot-nox)" >&2; exit 1; }
[ -r "$csv" ] || { echo "plot: cannot read $csv" >&2; exit 1; }
mkdir -p "$(dirname "$prefix")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Column numbers by header name, so that the CSV may grow.
col() { head -1 "$csv" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
cw=$(col workload); cc=$(col contender); ct=$(col threads)
cm=$(col mops_all_threads); cr=$(col peak_rss_kib)

# Contenders in the order of the CSV (the run's order), and their colours.
contenders=$(awk -F, -v c="$cc" 'NR > 1 && !seen[$c]++ { print $c }' "$csv")
colour() {
	case $1 in
	sheaf) echo "#1b9e77";; sheaf-fixed) echo "#1f78b4";; classic) echo "#7570b3";; sheaf-trust) echo "#66a61e";;
	glibc) echo "#e7298a";; jemalloc) echo "#d95f02";; tcmalloc) echo "#e6ab02";;
	mimalloc) echo "#a6761d";; *) echo "#666666";;
	esac
}

# --- throughput: one panel per workload except the scaling runs ---------
workloads=$(awk -F, -v w="$cw" 'NR > 1 && $w !~ /^hot-64-t[0-9]+$/ && !seen[$w]++ { print $w }' "$csv")
n=$(echo "$workloads" | wc -w)
cols=3
rows=$(( (n + cols - 1) / cols ))
{
	echo "set terminal pngcairo size $((cols * 420)),$((rows * 300)) font 'sans,9'"
	echo "set output '$prefix-throughput.png'"
	echo "set multiplot layout $rows,$cols title 'sheafbench: throughput, Mops/s (higher is better)'"
	echo "set style fill solid 0.85 noborder; set boxwidth 0.7; set grid ytics"
	echo "set xtics rotate by -35 nomirror; set yrange [0:*]; unset key"
	for w in $workloads; do
		awk -F, -v w="$cw" -v c="$cc" -v m="$cm" -v want="$w" \
			'NR > 1 && $w == want { print NR, $c, $m }' "$csv" > "$tmp/$w.dat"
		i=0
		: > "$tmp/$w.col"
		while read -r _ name val; do
			echo "$i \"$name\" $val $(colour "$name" | sed 's/#/0x/')" >> "$tmp/$w.col"
			i=$((i + 1))
		done < "$tmp/$w.dat"
		echo "set title '$w'"
		echo "plot '$tmp/$w.col' using 1:3:4:xtic(2) with boxes lc rgb variable"
	done
	echo "unset multiplot"
} > "$tmp/throughput.gp"
gnuplot "$tmp/throughput.gp"

# --- scaling -------------------------------------------------------------
if awk -F, -v w="$cw" 'NR > 1 && $w ~ /^hot-64-t[0-9]+$/ { f = 1 } END { exit !f }' "$csv"; then
	plots=""
	for c in $contenders; do
		awk -F, -v w="$cw" -v cc="$cc" -v t="$ct" -v m="$cm" -v want="$c" \
			'NR > 1 && $w ~ /^hot-64-t[0-9]+$/ && $cc == want { print $t, $m }' \
			"$csv" | sort -n > "$tmp/scale-$c.dat"
		[ -s "$tmp/scale-$c.dat" ] || continue
		plots="$plots${plots:+, }'$tmp/scale-$c.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '$(colour "$c")' title '$c'"
	done
	ncpu=$(getconf _NPROCESSORS_ONLN)
	gnuplot <<EOF
set terminal pngcairo size 800,500 font 'sans,10'
set output '$prefix-scaling.png'
set title 'hot-64 in 1..N threads on $ncpu CPUs: Mops/s of all threads (higher is better)'
set xlabel 'threads'; set ylabel 'Mops/s'; set grid; set key outside right
set xtics 1; set yrange [0:*]
set arrow from $ncpu, graph 0 to $ncpu, graph 1 nohead dt 2 lc rgb '#999999'
plot $plots
EOF
fi

# --- resident memory: clustered bars, workloads x contenders -------------
awk -F, -v w="$cw" -v c="$cc" -v r="$cr" '
	NR > 1 && $w !~ /^hot-64-t[0-9]+$/ {
		if (!(($w) in wi)) { wi[$w] = nw; wn[nw++] = $w }
		if (!(($c) in ci)) { ci[$c] = ncn; cn[ncn++] = $c }
		v[$w, $c] = $r / 1024.0
	}
	END {
		printf "workload"; for (k = 0; k < ncn; k++) printf " %s", cn[k]; print ""
		for (i = 0; i < nw; i++) {
			printf "%s", wn[i]
			for (k = 0; k < ncn; k++) {
				x = v[wn[i], cn[k]]; printf " %s", (x == "" ? "-" : x)
			}
			print ""
		}
	}' "$csv" > "$tmp/rss.dat"
ncol=$(head -1 "$tmp/rss.dat" | wc -w)
names=$(head -1 "$tmp/rss.dat" | cut -d' ' -f2-)
sed -i 1d "$tmp/rss.dat"
{
	echo "set terminal pngcairo size 1100,500 font 'sans,10'"
	echo "set output '$prefix-rss.png'"
	echo "set title 'Peak resident memory of each measuring process, MiB (lower is better)'"
	echo "set style data histogram; set style histogram cluster gap 1"
	echo "set style fill solid 0.85 noborder; set boxwidth 0.9"
	echo "set datafile missing '-'; set grid ytics; set yrange [0:*]"
	echo "set xtics rotate by -30 nomirror; set key outside right"
	printf "plot "
	k=2
	for c in $names; do
		[ $k -gt 2 ] && printf ", "
		printf "'%s' using %d:xtic(1) title '%s' lc rgb '%s'" "$tmp/rss.dat" $k "$c" "$(colour "$c")"
		k=$((k + 1))
	done
	echo
} > "$tmp/rss.gp"
[ "$ncol" -gt 1 ] && gnuplot "$tmp/rss.gp"

# --- capacity over time (phase): three panels sharing the time axis -------
cap=${csv%.csv}-capacity.csv
plots_made="$prefix-throughput.png $prefix-scaling.png $prefix-rss.png"
if [ -r "$cap" ] && [ "$(wc -l < "$cap")" -gt 1 ]; then
	ccol() { head -1 "$cap" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
	kc=$(ccol contender); kt=$(ccol t_ms); kcap=$(ccol capacity)
	kb=$(ccol barn_limit); ko=$(ccol ops); kpm=$(ccol phase_ms); ki=$(ccol idle_ms)
	# phases 1 and 2 last phase_ms, phase 3 twice that (sheafbench --phase-ms)
	pm=$(awk -F, -v c="$kpm" 'NR == 2 { print $c / 1000 }' "$cap")
	idle=$(awk -F, -v c="$ki" 'NR == 2 { print $c }' "$cap")
	capplots=""; barnplots=""; rateplots=""
	for c in $(awk -F, -v c="$kc" 'NR > 1 && !seen[$c]++ { print $c }' "$cap"); do
		# seconds, capacity, barn limit (each held until the next sample: steps),
		# Mops/s of all threads since the last sample (over the interval: fsteps)
		awk -F, -v c="$kc" -v t="$kt" -v k="$kcap" -v b="$kb" -v o="$ko" -v want="$c" '
			NR > 1 && $c == want {
				r = (n && $t > pt) ? ($o - po) / ($t - pt) / 1000 : "-"
				print $t / 1000, $k, $b, r; pt = $t; po = $o; n++
			}' "$cap" > "$tmp/cap-$c.dat"
		# sheaf-fixed dashed: where it and sheaf are at the kernel's
		# values, sheaf shows through its gaps
		st="lc rgb '$(colour "$c")'"
		[ "$c" = sheaf-fixed ] && st="$st dt 2"
		st="$st title '$c'"
		capplots="$capplots${capplots:+, }'$tmp/cap-$c.dat' using 1:2 with steps lw 2 $st"
		barnplots="$barnplots${barnplots:+, }'$tmp/cap-$c.dat' using 1:3 with steps lw 2 $st"
		rateplots="$rateplots${rateplots:+, }'$tmp/cap-$c.dat' using 1:4 with fsteps lw 1.5 $st"
	done
	gnuplot <<EOF
set terminal pngcairo size 1000,800 font 'sans,10' noenhanced
set output '$prefix-capacity.png'
set multiplot layout 3,1 title "phase: one 64-byte cache, 2 threads; the idle thread looks every $((idle / 2)) ms (SHEAF_IDLE_MS=$idle)"
set datafile missing '-'
set grid; set key outside right; set xrange [0:4 * $pm]
set lmargin 10; set rmargin 20
# the phases: phase 2 shaded, each named in the top panel
set object 1 rect from $pm, graph 0 to 2 * $pm, graph 1 behind fc rgb '#fbe3d4' fs solid noborder
set label 1 '1: hot pairs' at 0.5 * $pm, graph 0.9 center
set label 2 '2: batches of 1000' at 1.5 * $pm, graph 0.9 center
set label 3 '3: light (100 pairs per ms)' at 3 * $pm, graph 0.9 center
set title 'sheaf capacity (objects per sheaf)'
set yrange [0:*]; set offsets 0, 0, graph 0.25, 0
plot $capplots
unset label 1; unset label 2; unset label 3
set title 'barn limit (full sheaves per barn)'
plot $barnplots
set title 'throughput, Mops/s of both threads (log scale)'
set logscale y; set yrange [*:*]; set offsets 0, 0, 0, 0
set xlabel 'seconds'
plot $rateplots
unset multiplot
EOF
	plots_made="$plots_made $prefix-capacity.png"
fi
echo "plots: $plots_made"
