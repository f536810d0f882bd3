/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what sheafbench and mallocbench share: both run every
 * (contender, workload) measurement in a re-executed child process (the
 * peers through LD_PRELOAD), collect repetitions, report medians and
 * notes.  Each program keeps its own workloads, tables and child protocol.
 */
#ifndef SHEAF_BENCH_HARNESS_H
#define SHEAF_BENCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The program's name, for bench_die()'s messages. */
extern const char *bench_prog;

/* "<prog>: <message>" on stderr, exit status 2. */
void bench_die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* A clock's reading in nanoseconds, 0 if it cannot be read. */
uint64_t bench_clock_ns(clockid_t clk);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Notes printed after the tables: "- <message>" lines (bench_notes). */
extern char bench_notes[8192];
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The environment without any LD_PRELOAD, plus LD_PRELOAD=preload unless
 * preload is NULL (glibc's own malloc), plus extra ("VAR=VALUE", replacing
 * VAR's own value) unless it is NULL. */
char **bench_env(const char *preload, const char *extra);

/* A copy of env (a bench_env() result) with extra ("VAR=VALUE") in place
 * of VAR's own value, or added. */
char **bench_env_with(char *const *env, const char *extra);

/* Median of v[0..n), n > 0 (sorts v). */
double bench_median(double *v, unsigned int n);

/* One table cell " %*s |": v with `decimals` decimals, "-" when v < 0. */
void bench_print_cell(double v, int decimals, int width);

/*
 * One (workload, contender) cell: the values of its successful
 * repetitions, the largest peak RSS any reported, and whether one failed
 * (a failed cell runs no more and has no median).
 */
struct bench_cell {
	double *v;		/* reps values in run order (v[r] is repetition
				 * r's), allocated by the program */
	unsigned int nv;
	long rss_kb;
	bool failed;
};

/* Median of a cell's values, or -1 when it failed or has none (v keeps
 * its run order). */
double bench_cell_median(const struct bench_cell *c);
/* The least and greatest of a cell's values (nv > 0). */
void bench_cell_range(const struct bench_cell *c, double *lo, double *hi);

/*
 * The paired ratio of two cells of one workload: repetition r of every
 * contender runs within the same rotation (bench_run_grid()), so num's and
 * den's values of one repetition saw the same moment of a shared machine.
 * The median of v[r] of num over v[r] of den over the repetitions both
 * have, and their least and greatest in *lo and *hi (may be NULL); -1 when
 * they have none in common.  Steadier than the ratio of the medians when
 * the machine's load changes between rotations.
 */
double bench_cell_paired(const struct bench_cell *num, const struct bench_cell *den,
			 double *lo, double *hi);

/*
 * Run one child: exe with argv and envp, its stdout read line by line.
 * on_line (if not NULL) sees every line first, newline included, and
 * returns true when it took it; the others are the protocol every child
 * speaks: "R <value>" the result (> 0), "M <KiB>" its peak RSS, "E <text>"
 * an error.  Returns true with *value and *rss_kb (0: none reported) when
 * the child reported a result and exited with status 0; else false with
 * the reason in err.
 */
bool bench_run_child(const char *exe, char *const argv[], char *const envp[],
		     bool (*on_line)(void *ctx, char *line), void *ctx,
		     double *value, long *rss_kb, char *err, size_t errlen);

/*
 * Every repetition of every wanted (workload, contender) cell, contenders
 * in `order` rotated by one each repetition (so that none always runs
 * first), with a progress line on a terminal.  run() measures one cell;
 * a failure marks the cell failed, is noted (bench_note) and counted.
 * Returns the number of failures.
 */
struct bench_grid {
	unsigned int reps, nw, nc;
	const int *order;	/* contender indexes, nc of them */
	struct bench_cell *cells; /* cell (wi, ci) at cells[wi * row + ci] */
	unsigned int row;
	bool (*wanted)(int wi, int ci);
	const char *(*name)(bool contender, int i);
	bool (*run)(int wi, int ci, double *value, long *rss_kb, char *err,
		    size_t errlen);
};
unsigned int bench_run_grid(const struct bench_grid *g);

/* The value of option `name` at argv[*i] ("--name=V" or "--name V",
 * advancing *i), or NULL when argv[*i] is another option. */
const char *bench_optval(int argc, char **argv, int *i, const char *name);

#endif
