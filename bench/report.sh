#!/bin/sh
# The benchmark suite in one command.
#
#   bench/report.sh BUILD_DIR full    (make bench)
#       sheafbench, every workload and contender, median of 7
#         -> table on the terminal (progress line on stderr while it runs),
#            bench/results/full.txt and full.csv, and full-capacity.csv
#            (the phase workload's capacity samples, sheaf and sheaf-fixed)
#       instructions per hot alloc+free pair (perf stat, else callgrind)
#         -> bench/results/instructions.txt
#       mallocbench fork and fork-mt (libsheaf-malloc and the peers)
#         -> bench/results/fork.{txt,csv}
#       gnuplot -> docs/img/bench-{throughput,scaling,rss,capacity}.png
#       docs/PERFORMANCE.md regenerated from bench/PERFORMANCE.md.in
#   bench/report.sh BUILD_DIR doc     (make bench-doc)
#       docs/PERFORMANCE.md regenerated from the template and the last full
#       run's results (bench/results), without running anything: for an
#       edit of the template; the date and commit stay the run's
#       (bench/results/full-run.txt)
#   bench/report.sh BUILD_DIR quick   (make run: under a minute)
#       sheafbench --quick -> bench/results/quick.{txt,csv}, quick-capacity.csv,
#       and plots bench/results/quick-*.png when gnuplot is there
#
# Extra sheafbench options may follow (e.g. --reps 3), for both modes.
set -eu
build=$1
mode=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
res=$root/bench/results
bench=$build/bench/sheafbench
[ "$mode" = doc ] || [ -x "$bench" ] || { echo "report: $bench missing: build first" >&2; exit 1; }
mkdir -p "$res"
# the commit measured (taken now: the tree may change while the run goes on)
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run_bench() { # output-name sheafbench-args...
	out=$1
	shift
	# the exit status of sheafbench, not of tee (no pipefail in sh)
	{ "$bench" "$@" || echo $? > "$tmp/rc"; } | tee "$res/$out.txt"
	if [ -s "$tmp/rc" ]; then
		echo "report: sheafbench failed (status $(cat "$tmp/rc")), see the notes above" >&2
		exit 1
	fi
}

# no stale phase samples: sheafbench writes them only when phase runs
rm -f "$res/$mode-capacity.csv"
if [ "$mode" = quick ]; then
	run_bench quick --quick "$@"
	if command -v gnuplot >/dev/null; then
		"$root/bench/plot.sh" "$res/quick.csv" "$res/quick"
	fi
	exit 0
fi
case $mode in
full|doc) ;;
*) echo "usage: report.sh BUILD_DIR full|doc|quick [sheafbench options]" >&2; exit 2 ;;
esac
if [ "$mode" = full ]; then	# the run (doc: only the page, below)
run_bench full "$@"
echo
echo "Instructions per hot-64 alloc+free pair:"
"$root/tools/instructions.sh" "$build" | tee "$res/instructions.txt"
echo
echo "fork+exit+wait under each malloc (mallocbench):"
mb=$build/bench/mallocbench
if [ -x "$mb" ]; then
	# 5 repetitions of 3300 forks per contender and workload: about 6
	# minutes here (a fork+exit+wait costs 1.5-4 ms on this VM)
	"$mb" --workload fork,fork-mt --contender sheaf,glibc,jemalloc,tcmalloc,mimalloc \
		--reps 5 --csv "$res/fork.csv" > "$res/fork-raw.txt" 2>&1 ||
		{ cat "$res/fork-raw.txt"; echo "report: mallocbench fork failed" >&2; exit 1; }
	# the time and memory tables and the figures, as the doc shows them
	# (mallocbench's throughput table means nothing for a fork)
	awk '/^### Throughput/ { skip = 1; next } /^### / { on = 1; skip = 0 }
	     on && !skip && !/^CSV: / { sub(/ns per malloc\+free pair/, "ns per fork+exit+wait"); print }' \
		"$res/fork-raw.txt" > "$res/fork.txt"
	awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		{ ns[$col["workload"], $col["contender"]] = $col["median_ns"]; w[$col["workload"]] = 1 }
		END {
			for (k in w) if ((k, "sheaf") in ns && (k, "glibc") in ns)
				printf "- **%s**: libsheaf-malloc %.2f ms per fork+exit+wait, %.2fx glibc'"'"'s %.2f ms\n",
					k, ns[k, "sheaf"] / 1e6, ns[k, "sheaf"] / ns[k, "glibc"], ns[k, "glibc"] / 1e6
		}' "$res/fork.csv" | sort >> "$res/fork.txt"
	rm -f "$res/fork-raw.txt"
else
	echo "(mallocbench not built: no fork figures)" > "$res/fork.txt"
fi
cat "$res/fork.txt"
echo
"$root/bench/plot.sh" "$res/full.csv" "$root/docs/img/bench"
# the run's date and commit, which a later doc-only regeneration keeps
printf 'date %s\ncommit %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$commit" \
	> "$res/full-run.txt"
fi	# the run

# ---------------------------------------------------------------- the doc
csv=$res/full.csv
txt=$res/full.txt

for f in "$txt" "$csv"; do
	[ -s "$f" ] || { echo "report: $f missing: run make bench first" >&2; exit 1; }
done

# Machine facts: the "Machine:" line of the run, one bullet per field.
grep '^Machine: ' "$txt" | sed 's/^Machine: //' | tr '|' '\n' |
	sed 's/^ *//; s/ *$//; s/^/- /' > "$tmp/machine"
grep '^Run: ' "$txt" | sed 's/^Run: /- run: /' >> "$tmp/machine"
if [ -s "$res/full-run.txt" ]; then
	run_date=$(sed -n 's/^date //p' "$res/full-run.txt")
	run_commit=$(sed -n 's/^commit //p' "$res/full-run.txt")
else	# a run from before full-run.txt: what the page says
	run_date=$(sed -n 's/^- date: //p' "$root/docs/PERFORMANCE.md")
	run_commit=$(sed -n 's/^- commit: //p' "$root/docs/PERFORMANCE.md")
fi
{
	printf -- '- date: %s\n' "${run_date:-unknown}"
	printf -- '- commit: %s\n' "${run_commit:-unknown}"
} >> "$tmp/machine"

# The run's tables: from the first heading to the end, without the CSV line.
awk '/^### / { on = 1 } on && !/^CSV: / { print }' "$txt" > "$tmp/tables"

# Key figures, computed from the CSV (columns by name).
awk -F, -v ncpu="$(getconf _NPROCESSORS_ONLN)" '
	NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
	{
		w = $col["workload"]; c = $col["contender"]
		ns[w, c] = $col["median_ns"]; mops[w, c] = $col["mops_all_threads"]
		rss[w, c] = $col["peak_rss_kib"]; seen[w] = 1
		if (c != "sheaf" && c != "sheaf-fixed" && c != "classic" && c != "sheaf-trust")
			peer[c] = 1
		if (!(w in wseen)) { wseen[w] = 1; word[nw++] = w }
	}
	function best(w,   p, b) {
		bn = ""
		for (p in peer)
			if ((w, p) in ns && (bn == "" || ns[w, p] < ns[w, bn])) bn = p
		return bn
	}
	function line(w, what,   b) {
		if (!((w, "sheaf") in ns)) return
		printf "- **%s** (%s): sheaf %.2f ns", w, what, ns[w, "sheaf"]
		if ((w, "classic") in ns)
			printf ", %.2fx faster than classic", ns[w, "classic"] / ns[w, "sheaf"]
		b = best(w)
		if (b != "")
			printf ", %.2fx the time of the best peer (%s, %.2f ns)", ns[w, "sheaf"] / ns[w, b], b, ns[w, b]
		print ""
	}
	END {
		line("hot-64", "alloc+free pair, 64 B")
		line("hot-256", "alloc+free pair, 256 B")
		line("batch-lifo", "1000 objects, freed newest first")
		line("batch-fifo", "1000 objects, freed oldest first")
		line("remote", "per object freed on another CPU")
		line("rcu", "per object freed through RCU")
		line("prealloc-32", "32 objects made ready per round")
		line("bulk-32", "the bulk pattern on each cache")
		line("vma", "per range-tree write")
		if (("hot-64-t1", "sheaf") in mops) {
			n = 0
			for (t = 1; ("hot-64-t" t, "sheaf") in mops; t++) n = t
			k = ncpu < n ? ncpu : n
			printf "- **scaling** (hot-64, sheaf): %.1f Mops/s in 1 thread, %.1f in %d (%.2fx), %.1f in %d\n",
				mops["hot-64-t1", "sheaf"], mops["hot-64-t" k, "sheaf"], k,
				mops["hot-64-t" k, "sheaf"] / mops["hot-64-t1", "sheaf"],
				mops["hot-64-t" n, "sheaf"], n
		}
		if (("phase", "sheaf") in ns && ("phase", "sheaf-fixed") in ns)
			printf "- **phase** (its heavy phase: batches of 1000 64-byte objects in 2 threads, ns per pair of one thread): sheaf %.2f ns, sheaf-fixed %.2f ns (sheaf %.2fx the time)\n",
				ns["phase", "sheaf"], ns["phase", "sheaf-fixed"],
				ns["phase", "sheaf"] / ns["phase", "sheaf-fixed"]
		r = ""
		for (i = 0; i < nw; i++)
			if ((word[i], "sheaf") in ns && (word[i], "sheaf-fixed") in ns)
				r = r sprintf("%s%s %.2f", r == "" ? "" : ", ", word[i],
					      ns[word[i], "sheaf"] / ns[word[i], "sheaf-fixed"])
		if (r != "")
			print "- **adaptive capacity** (sheaf time / sheaf-fixed time; below 1: the adaptive capacity is faster): " r
		if (("rcu", "sheaf") in rss && ("rcu", "classic") in rss)
			printf "- **rcu memory**: peak RSS %.1f MiB with kfree_rcu sheaves, %.1f MiB with call_rcu + kmem_cache_free\n",
				rss["rcu", "sheaf"] / 1024, rss["rcu", "classic"] / 1024
	}' "$csv" > "$tmp/key"

# The phase workload's capacity samples (the last repetition of each
# contender): what the capacity plot shows, in figures.
cap=$res/full-capacity.csv
if [ -r "$cap" ]; then
	awk -F, '
	NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
	{
		c = $col["contender"]; t = $col["t_ms"]; p = $col["phase"]
		k = $col["capacity"]; b = $col["barn_limit"]; o = $col["ops"]
		if (!(c in first)) {
			first[c] = 1; who[n++] = c; base[c] = $col["capacity_base"]
			bbase[c] = b; back[c] = -1; peak[c] = 0; pbarn[c] = 0; t3[c] = -1
		}
		if (p == 2) {
			if (!((c, "t2") in at)) { at[c, "t2"] = t; at[c, "o2"] = o }
			at[c, "t2e"] = t; at[c, "o2e"] = o
			if (k > peak[c]) { peak[c] = k; tpeak[c] = t - at[c, "t2"] }
			if (b > pbarn[c]) pbarn[c] = b
		}
		if (p == 3) {
			if (t3[c] < 0) t3[c] = t
			if (k == base[c] && b == bbase[c]) { if (back[c] < 0) back[c] = t - t3[c] }
			else back[c] = -1
		}
		idle = $col["idle_ms"]
	}
	END {
		for (i = 0; i < n; i++) {
			c = who[i]
			rate = at[c, "t2e"] > at[c, "t2"] ? (at[c, "o2e"] - at[c, "o2"]) / (at[c, "t2e"] - at[c, "t2"]) / 1000 : 0
			printf "- **%s**: capacity %d at the start; in phase 2 %.1f Mops/s of both threads, ", c, base[c], rate
			if (peak[c] > base[c])
				printf "capacity up to %d within %.0f ms, ", peak[c], tpeak[c]
			else
				printf "capacity unchanged, "
			if (pbarn[c] > bbase[c])
				printf "barn limit up to %d; ", pbarn[c]
			else
				printf "barn limit unchanged (%d); ", bbase[c]
			if (peak[c] > base[c] && back[c] >= 0)
				printf "capacity %d and barn limit %d again %.0f ms into phase 3 (the idle thread looking every %d ms)\n", base[c], bbase[c], back[c], idle / 2
			else if (peak[c] > base[c])
				printf "not back at its base by the end of phase 3\n"
			else
				printf "nothing to give back in phase 3\n"
		}
	}' "$cap" > "$tmp/capacity"
else
	echo "(no phase samples: $cap missing)" > "$tmp/capacity"
fi

cat > "$tmp/plots" <<'EOF'
![throughput per workload](img/bench-throughput.png)

![scaling of the hot loop with threads](img/bench-scaling.png)

![peak resident memory per workload](img/bench-rss.png)
EOF

awk -v machine="$tmp/machine" -v tables="$tmp/tables" -v key="$tmp/key" \
    -v plots="$tmp/plots" -v instr="$res/instructions.txt" -v fork="$res/fork.txt" \
    -v capacity="$tmp/capacity" '
	function put(f,   l) { while ((getline l < f) > 0) print l; close(f) }
	/^@@MACHINE@@$/ { put(machine); next }
	/^@@KEY@@$/ { put(key); next }
	/^@@TABLES@@$/ { put(tables); next }
	/^@@PLOTS@@$/ { put(plots); next }
	/^@@INSTRUCTIONS@@$/ { put(instr); next }
	/^@@FORK@@$/ { put(fork); next }
	/^@@CAPACITY@@$/ { put(capacity); next }
	{ print }' "$root/bench/PERFORMANCE.md.in" > "$root/docs/PERFORMANCE.md"
echo "docs/PERFORMANCE.md regenerated"
