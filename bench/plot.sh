#!/bin/sh
# Plots of a sheafbench CSV with gnuplot (PNG):
#   PREFIX-throughput.png  one panel per workload: each contender's throughput
#                          (millions of operations per second, higher is better)
#   PREFIX-scaling.png     the hot-64 loop in 1..N threads: Mops/s of all threads
#   PREFIX-rss.png         peak resident memory of each run, per workload
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
	sheaf) echo "#1b9e77";; classic) echo "#7570b3";; sheaf-trust) echo "#66a61e";;
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
echo "plots: $prefix-throughput.png $prefix-scaling.png $prefix-rss.png"
