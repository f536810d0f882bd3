/* SPDX-License-Identifier: MIT */
/* harness.c - the helpers sheafbench and mallocbench share (harness.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

const char *bench_prog = "bench";
char bench_notes[8192];

void bench_die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", bench_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_note(const char *fmt, ...)
{
	size_t len = strlen(bench_notes);
	va_list ap;
	if (len + 8 >= sizeof(bench_notes))
		return;
	va_start(ap, fmt);
	bench_notes[len++] = '-';
	bench_notes[len++] = ' ';
	vsnprintf(bench_notes + len, sizeof(bench_notes) - len - 1, fmt, ap);
	va_end(ap);
	strcat(bench_notes, "\n");
}

char **bench_env(const char *preload, const char *extra)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	char **e = calloc(n + 3, sizeof(*e));
	if (!e)
		bench_die("out of memory");
	size_t xlen = extra ? strcspn(extra, "=") + 1 : 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 &&
		    !(extra && strncmp(environ[i], extra, xlen) == 0))
			e[k++] = environ[i];
	if (preload && asprintf(&e[k++], "LD_PRELOAD=%s", preload) < 0)
		bench_die("out of memory");
	if (extra)
		e[k] = (char *)extra;
	return e;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	if (n % 2)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_print_cell(double v, int decimals, int width)
{
	char s[32] = "-";
	if (v >= 0)
		snprintf(s, sizeof(s), "%.*f", decimals, v);
	printf(" %*s |", width, s);
}

const char *bench_optval(int argc, char **argv, int *i, const char *name)
{
	size_t l = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, l) != 0 || (a[l] != '=' && a[l] != '\0'))
		return NULL;
	if (a[l] == '=')
		return a + l + 1;
	if (*i + 1 >= argc)
		bench_die("%s needs a value (see --help)", name);
	return argv[++*i];
}
