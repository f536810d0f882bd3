/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what sheafbench and mallocbench share: both run every
 * (contender, workload) measurement in a re-executed child process (the
 * peers through LD_PRELOAD), collect repetitions, report medians and
 * notes.  Each program keeps its own workloads, tables and child protocol.
 */
#ifndef SHEAF_BENCH_HARNESS_H
#define SHEAF_BENCH_HARNESS_H

#include <stdint.h>

/* The program's name, for bench_die()'s messages. */
extern const char *bench_prog;

/* "<prog>: <message>" on stderr, exit status 2. */
void bench_die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Notes printed after the tables: "- <message>" lines (bench_notes). */
extern char bench_notes[8192];
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The environment without any LD_PRELOAD, plus LD_PRELOAD=preload unless
 * preload is NULL (glibc's own malloc), plus extra ("VAR=VALUE", replacing
 * VAR's own value) unless it is NULL. */
char **bench_env(const char *preload, const char *extra);

/* Median of v[0..n), n > 0 (sorts v). */
double bench_median(double *v, unsigned int n);

/* One table cell " %*s |": v with `decimals` decimals, "-" when v < 0. */
void bench_print_cell(double v, int decimals, int width);

/* The value of option `name` at argv[*i] ("--name=V" or "--name V",
 * advancing *i), or NULL when argv[*i] is another option. */
const char *bench_optval(int argc, char **argv, int *i, const char *name);

#endif
