/* SPDX-License-Identifier: MIT */
/* harness.c - the helpers sheafbench and mallocbench share (harness.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

uint64_t bench_clock_ns(clockid_t clk)
{
	struct timespec ts;
	if (clock_gettime(clk, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_ns(void)
{
	return bench_clock_ns(CLOCK_MONOTONIC);
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

char **bench_env_with(char *const *env, const char *extra)
{
	size_t n = 0, k = 0, xlen = strcspn(extra, "=") + 1;
	while (env[n])
		n++;
	char **e = calloc(n + 2, sizeof(*e));
	if (!e)
		bench_die("out of memory");
	for (size_t i = 0; i < n; i++)
		if (strncmp(env[i], extra, xlen) != 0)
			e[k++] = env[i];
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

double bench_cell_median(const struct bench_cell *c)
{
	if (c->failed || c->nv == 0)
		return -1;
	double *w = malloc(c->nv * sizeof(*w));
	if (!w)
		bench_die("out of memory");
	memcpy(w, c->v, c->nv * sizeof(*w));
	double m = bench_median(w, c->nv);	/* sorts w */
	free(w);
	return m;
}

void bench_cell_range(const struct bench_cell *c, double *lo, double *hi)
{
	*lo = *hi = c->v[0];
	for (unsigned int i = 1; i < c->nv; i++) {
		if (c->v[i] < *lo)
			*lo = c->v[i];
		if (c->v[i] > *hi)
			*hi = c->v[i];
	}
}

double bench_cell_paired(const struct bench_cell *num, const struct bench_cell *den,
			 double *lo, double *hi)
{
	unsigned int n = num->nv < den->nv ? num->nv : den->nv;
	double *r = n ? malloc(n * sizeof(*r)) : NULL;
	unsigned int k = 0;
	if (!r)
		return -1;
	for (unsigned int i = 0; i < n; i++)
		if (num->v[i] > 0 && den->v[i] > 0)
			r[k++] = num->v[i] / den->v[i];
	double m = -1;
	if (k) {
		m = bench_median(r, k);	/* sorts r */
		if (lo)
			*lo = r[0];
		if (hi)
			*hi = r[k - 1];
	}
	free(r);
	return m;
}

bool bench_run_child(const char *exe, char *const argv[], char *const envp[],
		     bool (*on_line)(void *ctx, char *line), void *ctx,
		     double *value, long *rss_kb, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	int fd[2], status, rc;
	bool got = false;
	pid_t pid;

	err[0] = '\0';
	*rss_kb = 0;
	if (pipe2(fd, O_CLOEXEC) != 0)
		bench_die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
	fflush(NULL);
	rc = posix_spawn(&pid, exe, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(fd[1]);
	if (rc != 0) {
		close(fd[0]);
		snprintf(err, errlen, "posix_spawn: %s", strerror(rc));
		return false;
	}
	FILE *f = fdopen(fd[0], "r");
	char *line = NULL;
	size_t cap = 0;
	if (!f)
		bench_die("fdopen: %s", strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		if (on_line && on_line(ctx, line))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == 'R' && line[1] == ' ')
			got = sscanf(line + 2, "%lf", value) == 1 && *value > 0;
		else if (line[0] == 'M' && line[1] == ' ')
			*rss_kb = strtol(line + 2, NULL, 10);
		else if (line[0] == 'E' && line[1] == ' ')
			snprintf(err, errlen, "%.200s", line + 2);
	}
	free(line);
	fclose(f);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			bench_die("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(status))
		snprintf(err, errlen, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status) != 0 && !err[0])
		snprintf(err, errlen, "exit status %d", WEXITSTATUS(status));
	else if (!got && !err[0])
		snprintf(err, errlen, "no result");
	return got && !err[0];
}

unsigned int bench_run_grid(const struct bench_grid *g)
{
	bool tty = isatty(STDERR_FILENO);
	unsigned int step = 0, total = 0, failures = 0;
	char err[256];

	for (unsigned int wi = 0; wi < g->nw; wi++)
		for (unsigned int k = 0; k < g->nc; k++)
			total += g->wanted((int)wi, g->order[k]) ? g->reps : 0;
	for (unsigned int r = 0; r < g->reps; r++)
		for (unsigned int wi = 0; wi < g->nw; wi++)
			for (unsigned int k = 0; k < g->nc; k++) {
				int ci = g->order[(k + r) % g->nc];
				if (!g->wanted((int)wi, ci))
					continue;
				struct bench_cell *c = &g->cells[wi * g->row + (unsigned int)ci];
				step++;
				if (c->failed)
					continue;
				if (tty)
					fprintf(stderr, "\r\033[K[%u/%u] %s %s (rep %u/%u) ...",
						step, total, g->name(true, ci), g->name(false, (int)wi),
						r + 1, g->reps);
				double value;
				long rss;
				if (g->run((int)wi, ci, &value, &rss, err, sizeof(err))) {
					c->v[c->nv++] = value;
					if (rss > c->rss_kb)
						c->rss_kb = rss;
					continue;
				}
				c->failed = true;
				failures++;
				bench_note("%s %s failed (rep %u): %s", g->name(true, ci),
					   g->name(false, (int)wi), r + 1, err);
			}
	if (tty)
		fprintf(stderr, "\r\033[K");
	return failures;
}
