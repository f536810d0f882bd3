/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - configuration from the environment (docs/API.md,
 * "Configuration"): every boolean variable takes the same words (0/1,
 * no/yes, off/on, false/true, any case) and rejects anything else with one
 * line; integers outside their range are refused with one line; SLUB_DEBUG
 * says what it drops; sheaf_fault_set() refuses a negative interval; and
 * a setuid program ignores every SHEAF_* variable (secure_getenv), as
 * glibc's malloc ignores MALLOC_* there.
 *
 * The environment is read once per process, so each case runs this
 * program again as a probe (argv[1] = "probe"), which prints what the
 * library made of it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sheaf/slab.h>
#include <sheaf/stats.h>

static char self[4096];

struct probe {
	int status;
	char out[4096];
	char err[8192];
};

static void read_all(int fd, char *buf, size_t size)
{
	size_t n = 0;
	ssize_t r;
	while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
}

/* Run `exe probe` with the environment env (NULL-terminated). */
static void run_probe(const char *exe, char *const env[], struct probe *p)
{
	int out[2], err[2];
	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		char *argv[] = { (char *)exe, (char *)"probe", NULL };
		execve(exe, argv, env);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	read_all(out[0], p->out, sizeof(p->out));
	read_all(err[0], p->err, sizeof(p->err));
	close(out[0]);
	close(err[0]);
	waitpid(pid, &p->status, 0);
}

static int probe_stats(const char *value, struct probe *p)
{
	char var[256];
	snprintf(var, sizeof(var), "SHEAF_STATS=%s", value);
	char *env[] = { var, NULL };
	run_probe(self, env, p);
	assert_true(WIFEXITED(p->status));
	assert_int_equal(WEXITSTATUS(p->status), 0);
	int stats = -1;
	const char *s = strstr(p->out, "stats=");
	assert_non_null(s);
	stats = atoi(s + 6);
	return stats;
}

static void test_stats_words(void **state)
{
	(void)state;
	static const char *const off[] = { "0", "no", "off", "false", "NO", "Off",
					   "FALSE" };
	static const char *const on[] = { "1", "yes", "on", "true", "YES", "True",
					  "exit" };
	struct probe p;
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		assert_int_equal(probe_stats(off[i], &p), 0);
		assert_string_equal(p.err, "");
	}
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (probe_stats(on[i], &p) != 1)
			fail_msg("SHEAF_STATS=%s did not turn statistics on", on[i]);
		/* exit prints the table at exit: nothing else on stderr */
		if (strcmp(on[i], "exit"))
			assert_null(strstr(p.err, "ignoring"));
	}
	/* Anything else: one line, and the default (off). */
	assert_int_equal(probe_stats("banana", &p), 0);
	assert_non_null(strstr(p.err, "sheaf: ignoring SHEAF_STATS=banana"));
	assert_null(strchr(strchr(p.err, '\n') + 1, '\n'));
}

/* Other booleans and integers: the same words, one line for a bad one. */
static void test_other_variables(void **state)
{
	(void)state;
	static const struct {
		const char *var, *want;
	} bad[] = {
		{ "SHEAF_DEBUG_ABORT=maybe", "ignoring SHEAF_DEBUG_ABORT=maybe" },
		{ "SHEAF_MALLOC_VERBOSE=7", "ignoring SHEAF_MALLOC_VERBOSE=7" },
		{ "SHEAF_MALLOC_VERBOSE=yes", "ignoring SHEAF_MALLOC_VERBOSE=yes" },
		{ "SHEAF_FAKE_NUMA=99999999999999999999", "ignoring SHEAF_FAKE_NUMA" },
		{ "SHEAF_PERCPU=\x1b[31mred", "ignoring SHEAF_PERCPU=?[31mred" },
		{ "SHEAF_IDLE_MS=-1", "ignoring SHEAF_IDLE_MS=-1" },
		{ "SHEAF_IDLE_MS=soon", "ignoring SHEAF_IDLE_MS=soon" },
		{ "SHEAF_IDLE_MS=3600001", "ignoring SHEAF_IDLE_MS=3600001" },
		{ "SHEAF_ADAPTIVE=sometimes", "ignoring SHEAF_ADAPTIVE=sometimes" },
		{ "SHEAF_ADAPTIVE_MAX=1", "ignoring SHEAF_ADAPTIVE_MAX=1" },
		{ "SHEAF_ADAPTIVE_MAX=17", "ignoring SHEAF_ADAPTIVE_MAX=17" },
		{ "SHEAF_ADAPTIVE_BUDGET_MB=-5", "ignoring SHEAF_ADAPTIVE_BUDGET_MB=-5" },
		{ "SHEAF_ADAPTIVE_BUDGET_MB=1048577",
		  "ignoring SHEAF_ADAPTIVE_BUDGET_MB=1048577" },
		{ "SHEAF_LARGE_RETAIN_MB=-1", "ignoring SHEAF_LARGE_RETAIN_MB=-1" },
		{ "SHEAF_LARGE_DECAY_MS=soon", "ignoring SHEAF_LARGE_DECAY_MS=soon" },
		{ "SHEAF_LARGE_THP=maybe", "ignoring SHEAF_LARGE_THP=maybe" },
		{ "SHEAF_LARGE_POPULATE=2",
		  "ignoring SHEAF_LARGE_POPULATE=2 (expected auto, 0 or 1)" },
		{ "SHEAF_LARGE_POPULATE=yes", "ignoring SHEAF_LARGE_POPULATE=yes" },
	};
	struct probe p;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *env[] = { (char *)bad[i].var, NULL };
		run_probe(self, env, &p);
		assert_true(WIFEXITED(p.status));
		if (!strstr(p.err, bad[i].want))
			fail_msg("%s: stderr \"%s\"", bad[i].var, p.err);
	}
	static const char *const good[] = { "SHEAF_DEBUG_ABORT=off",
					    "SHEAF_DEBUG_ABORT=TRUE",
					    "SHEAF_MALLOC_VERBOSE=2",
					    "SHEAF_IDLE_MS=0", "SHEAF_IDLE_MS=5",
					    "SHEAF_IDLE_MS=250", "SHEAF_ADAPTIVE=0",
					    "SHEAF_ADAPTIVE=on", "SHEAF_ADAPTIVE_MAX=16",
					    "SHEAF_ADAPTIVE_BUDGET_MB=0",
					    "SHEAF_LARGE_POPULATE=auto",
					    "SHEAF_LARGE_POPULATE=0",
					    "SHEAF_LARGE_POPULATE=1" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *env[] = { (char *)good[i], NULL };
		run_probe(self, env, &p);
		if (p.err[0])
			fail_msg("%s: stderr \"%s\"", good[i], p.err);
	}
}

/* SLUB_DEBUG: a value past the buffer and rules past the table are said. */
static void test_slub_debug_limits(void **state)
{
	(void)state;
	static char var[4096];
	struct probe p;
	int n = snprintf(var, sizeof(var), "SLUB_DEBUG=F,");
	while (n < 2000)
		n += snprintf(var + n, sizeof(var) - (size_t)n, "cache-%d,", n);
	char *env[] = { var, NULL };
	run_probe(self, env, &p);
	assert_non_null(strstr(p.err, "SLUB_DEBUG is longer than"));
	assert_non_null(strstr(p.err, "the rest are ignored"));
	snprintf(var, sizeof(var), "SLUB_DEBUG=F,a,b");
	run_probe(self, env, &p);
	assert_string_equal(p.err, "");
}

static void test_fault_negative_interval(void **state)
{
	(void)state;
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "-1,100,0,-1"), -EINVAL);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, " -1,100,0,-1"), -EINVAL);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,0"), 0);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "0"), 0);
}

/*
 * A setuid program ignores the variables.  As root: a copy of this program,
 * owned by nobody and setuid, runs with SHEAF_STATS=1 and must not count;
 * the same copy without the bit must.
 */
static void test_setuid_ignores_environment(void **state)
{
	(void)state;
	struct passwd *nobody = getpwnam("nobody");
	if (geteuid() != 0 || !nobody)
		skip();
	char dir[] = "/tmp/sheaf-setuid-XXXXXX";
	assert_non_null(mkdtemp(dir));
	chmod(dir, 0755);
	char copy[256];
	snprintf(copy, sizeof(copy), "%s/probe", dir);
	int in = open(self, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT, 0755);
	assert_true(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t r;
	while ((r = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)r), r);
	close(in);
	close(out);
	char *env[] = { (char *)"SHEAF_STATS=1", (char *)"SHEAF_PERCPU=bogus", NULL };
	struct probe p;
	run_probe(copy, env, &p);
	assert_non_null(strstr(p.out, "stats=1")); /* not setuid: honoured */
	assert_int_equal(chown(copy, nobody->pw_uid, nobody->pw_gid), 0);
	assert_int_equal(chmod(copy, 04755), 0);
	run_probe(copy, env, &p);
	bool nosuid = strstr(p.out, "secure=0") != NULL; /* a nosuid mount */
	if (!nosuid) {
		assert_non_null(strstr(p.out, "stats=0"));
		assert_string_equal(p.err, ""); /* SHEAF_PERCPU not even read */
	}
	unlink(copy);
	rmdir(dir);
	if (nosuid)
		skip();
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "probe")) {
		/* Make the library read its environment, then report. */
		struct kmem_cache *c = kmem_cache_create("cfg-probe", 64, NULL, 0);
		kmem_cache_destroy(c);
		printf("stats=%d secure=%d\n", sheaf_stats_enabled(),
		       geteuid() != getuid());
		fflush(stdout);
		_exit(0); /* no SHEAF_STATS=exit table on stdout or stderr */
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = 0;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_words),
		cmocka_unit_test(test_other_variables),
		cmocka_unit_test(test_slub_debug_limits),
		cmocka_unit_test(test_fault_negative_interval),
		cmocka_unit_test(test_setuid_ignores_environment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
