/* SPDX-License-Identifier: MIT */
/*
 * test_sheafinfo.c - sheafinfo against running processes.
 *
 *   test_sheafinfo SHEAFINFO INFO_TARGET
 *
 * info_target (tests/info_target.c) runs with SHEAF_STATS=1 and a publishing
 * period of an hour, so that every fresh figure sheafinfo shows comes from
 * the refresh it asks for.  The target does a known sequence of allocations
 * and frees and reports, through the library's API, what it knows; the
 * test compares sheafinfo --json with both: objects in use with what the
 * program holds, allocations and frees with what it made, every counter,
 * the slab figures and the capacity fields with the library's own values,
 * for the fixed caches CTest's SHEAF_ADAPTIVE=0 makes and for an adaptive
 * one (SHEAF_ADAPTIVE=1 in that target's environment).  Then each error
 * sheafinfo reports: no such process, no statistics, a page of another
 * version or of no libsheaf at all, a stale page (dead process, recycled
 * pid), a process that does not answer; SHEAF_STATS=exit's table; the page
 * removed at exit and never created without SHEAF_STATS.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/info.h>

#include "info_test_util.h"

static const char *sheafinfo, *target;
/* Non-zero: run_tool() runs sheafinfo as this user (and group). */
static uid_t tool_uid;
/* More environment for the targets a test starts ("NAME=VALUE", NULL-ended):
 * CTest sets SHEAF_ADAPTIVE=0 for the whole test. */
static const char *const *target_env;

/* ------------------------------------------------------------ helpers */

/*
 * Every process a test starts, so that a failed test (cmocka leaves it
 * half way) does not leave them running, nor their pages behind.
 */
static pid_t started[16], pages[16];
static int nr_started, nr_pages;

/* A page a test made for a pid that is not (or no longer) its child. */
static void remember_page(pid_t pid)
{
	if (nr_pages < (int)(sizeof(pages) / sizeof(pages[0])))
		pages[nr_pages++] = pid;
}

static void remember(pid_t pid)
{
	if (nr_started < (int)(sizeof(started) / sizeof(started[0])))
		started[nr_started++] = pid;
}

static void forget(pid_t pid)
{
	for (int i = 0; i < nr_started; i++)
		if (started[i] == pid)
			started[i] = started[--nr_started];
}

static int cleanup(void **state)
{
	tool_uid = 0;
	target_env = NULL;
	char name[64];
	for (int i = 0; i < nr_started; i++) {
		kill(started[i], SIGCONT);
		kill(started[i], SIGKILL);
		waitpid(started[i], NULL, 0);
		snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)started[i]);
		shm_unlink(name);
	}
	for (int i = 0; i < nr_pages; i++) {
		snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)pages[i]);
		shm_unlink(name);
	}
	nr_started = nr_pages = 0;
	return 0;
}

struct proc {
	pid_t pid;
	FILE *in;    /* commands */
	FILE *out;   /* replies */
	char reply[65536];
};

/*
 * Start info_target; stats: value of SHEAF_STATS, NULL for unset; interval:
 * SHEAF_STATS_INTERVAL (NULL: an hour, so that only requests refresh).
 */
static void start_target_iv(struct proc *p, const char *stats, const char *interval)
{
	int to[2], from[2];
	assert_int_equal(pipe2(to, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[0]); close(to[1]); close(from[0]); close(from[1]);
		if (stats)
			setenv("SHEAF_STATS", stats, 1);
		else
			unsetenv("SHEAF_STATS");
		setenv("SHEAF_STATS_INTERVAL", interval ? interval : "3600000", 1);
		for (const char *const *e = target_env; e && *e; e++)
			putenv((char *)*e);
		execl(target, target, (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	remember(pid);
	p->pid = pid;
	p->in = fdopen(to[1], "w");
	p->out = fdopen(from[0], "r");
	assert_non_null(p->in);
	assert_non_null(p->out);
	assert_non_null(fgets(p->reply, sizeof(p->reply), p->out));
	int rpid;
	assert_int_equal(sscanf(p->reply, "ready %d", &rpid), 1);
	assert_int_equal(rpid, pid);
}

static void start_target(struct proc *p, const char *stats)
{
	start_target_iv(p, stats, NULL);
}

static void nap(void)
{
	struct timespec ts = { 0, 10 * 1000000L };
	nanosleep(&ts, NULL);
}

/* One command; the reply line is kept in p->reply. */
static void command(struct proc *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(p->in, fmt, ap);
	va_end(ap);
	fputc('\n', p->in);
	fflush(p->in);
	assert_non_null(fgets(p->reply, sizeof(p->reply), p->out));
	if (strncmp(p->reply, "ok", 2) != 0)
		fail_msg("target replied: %s", p->reply);
}

/* "key=value" in the last reply. */
static uint64_t reply_value(struct proc *p, const char *key)
{
	char pat[128];
	snprintf(pat, sizeof(pat), " %s=", key);
	const char *s = strstr(p->reply, pat);
	if (!s)
		fail_msg("no %s in the target's reply", key);
	return strtoull(s + strlen(pat), NULL, 10);
}

/* Wait for the target; returns its exit status (or 128 + signal). */
static int end_target(struct proc *p, bool ask)
{
	int st;
	if (ask) {
		fprintf(p->in, "exit\n");
		fflush(p->in);
	}
	fclose(p->in);
	fclose(p->out);
	assert_int_equal(waitpid(p->pid, &st, 0), p->pid);
	forget(p->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run sheafinfo with args (NULL-terminated); its exit status, out, err. */
static int run_tool(char **out, char **err, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)sheafinfo;
	va_start(ap, err);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	char o[] = "/tmp/sheafinfo-out-XXXXXX", e[] = "/tmp/sheafinfo-err-XXXXXX";
	int fo = mkostemp(o, O_CLOEXEC), fe = mkostemp(e, O_CLOEXEC);
	assert_true(fo >= 0 && fe >= 0);
	unlink(o);
	unlink(e);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fo, 1);
		dup2(fe, 2);
		if (tool_uid && (setgroups(0, NULL) || setgid(tool_uid) || setuid(tool_uid)))
			_exit(126);
		execv(sheafinfo, argv);
		_exit(127);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	*out = slurp(fo);
	*err = slurp(fe);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* An error: status 1, nothing on stdout, one line on stderr holding `what`. */
static void expect_error(const char *what, const char *pidstr)
{
	char *out, *err;
	int st = run_tool(&out, &err, pidstr, NULL);
	if (st != 1 || *out || !strstr(err, what) || strchr(err, '\n') != err + strlen(err) - 1)
		fail_msg("sheafinfo %s: status %d, stdout '%s', stderr '%s' (expected '%s')",
			 pidstr, st, out, err, what);
	free(out);
	free(err);
}

/* The text of one cache's JSON object. */
static const char *json_cache(const char *json, const char *name, char *buf, size_t len)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "{\"name\": \"%s\"", name);
	const char *s = strstr(json, pat);
	if (!s)
		fail_msg("cache %s not in sheafinfo's output", name);
	const char *e = strstr(s + 1, "\n  {");
	size_t n = e ? (size_t)(e - s) : strlen(s);
	assert_true(n < len);
	memcpy(buf, s, n);
	buf[n] = 0;
	return buf;
}

static uint64_t json_value(const char *obj, const char *key)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *s = strstr(obj, pat);
	if (!s)
		fail_msg("no %s in %.60s...", key, obj);
	return strtoull(s + strlen(pat), NULL, 10);
}

static bool published(pid_t pid)
{
	char path[64];
	return access(shm_path(pid, path, sizeof(path)), F_OK) == 0;
}

static const char *counter_names[] = {
#define NAME(e, n) #n,
	SHEAF_STAT_ITEMS(NAME)
#undef NAME
};

/* "key": true or false in obj. */
static bool json_bool(const char *obj, const char *key)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *s = strstr(obj, pat);
	if (!s)
		fail_msg("no %s in %.60s...", key, obj);
	s += strlen(pat);
	if (strncmp(s, "true", 4) && strncmp(s, "false", 5))
		fail_msg("%s: not a boolean: %.20s", key, s);
	return *s == 't';
}

/*
 * A cache's capacity fields in sheafinfo's JSON against the library's
 * sheaf_cache_limits() in the target's last reply (label: its prefix).
 */
static void check_limits(const char *obj, struct proc *p, const char *label)
{
	char key[96];
#define R(field) (snprintf(key, sizeof(key), "%s." field, label), reply_value(p, key))
	assert_int_equal(json_value(obj, "sheaf_capacity"), R("capacity"));
	assert_int_equal(json_value(obj, "capacity_base"), R("capacity_base"));
	assert_int_equal(json_value(obj, "capacity_max"), R("capacity_max"));
	assert_int_equal(json_value(obj, "barn_limit"), R("barn_limit"));
	assert_int_equal(json_bool(obj, "adaptive"), R("adaptive"));
#undef R
}

/*
 * sheafinfo --json against the target's last reply: label is the reply's
 * prefix ("sheaf", "classic"), name the cache.  Returns the generation.
 */
static uint64_t check_cache(const char *json, struct proc *p, const char *label,
			    const char *name, bool sheaves)
{
	static char obj[16384];
	char key[96];
	json_cache(json, name, obj, sizeof(obj));
#define R(field) (snprintf(key, sizeof(key), "%s." field, label), reply_value(p, key))
	uint64_t live = R("live"), allocs = R("allocs"), frees = R("frees");
	/* What the program did. */
	assert_int_equal(json_value(obj, "objects_inuse"), live);
	assert_int_equal(json_value(obj, "allocs"), allocs);
	assert_int_equal(json_value(obj, "frees"), frees);
	/* What the library says of itself. */
	assert_int_equal(json_value(obj, "objects_inuse"), R("inuse"));
	assert_int_equal(json_value(obj, "slabs"), R("slabs"));
	assert_int_equal(json_value(obj, "objects_cached"), R("cached"));
	for (unsigned int k = 0; k < SHEAF_STAT_NR; k++) {
		snprintf(key, sizeof(key), "%s.%s", label, counter_names[k]);
		uint64_t want = reply_value(p, key);
		uint64_t got = json_value(strstr(obj, "\"stats\""), counter_names[k]);
		if (got != want)
			fail_msg("%s %s: sheafinfo %" PRIu64 ", library %" PRIu64, name,
				 counter_names[k], got, want);
	}
	/* Consistency of the figures. */
	uint64_t total = json_value(obj, "objects_total");
	assert_int_equal(json_value(obj, "objects_inuse") + json_value(obj, "objects_cached") +
			 json_value(obj, "objects_partial_free"), total);
	assert_int_equal(total, json_value(obj, "slabs") * json_value(obj, "objects_per_slab"));
	assert_true(json_value(obj, "bytes") >=
		    json_value(obj, "slabs") * (4096u << json_value(obj, "order")));
	assert_int_equal(json_value(obj, "object_size"), 100);
	check_limits(obj, p, label);
	/*
	 * One thread, no contention: every allocation and free of the sheaf
	 * cache went through its sheaves (the barn's overflow flushes sheaves
	 * to slabs, which counts in neither slow path: the 7.2 meanings),
	 * and the 6.18 aliases read the same.
	 */
	const char *st = strstr(obj, "\"stats\"");
	if (sheaves) {
		/* The capacity it was created with, fixed (SHEAF_ADAPTIVE=0):
		 * the kernel's barn limit, no range. */
		assert_int_equal(json_value(obj, "sheaf_capacity"), 4);
		assert_int_equal(json_value(obj, "capacity_base"), 4);
		assert_int_equal(json_value(obj, "capacity_max"), 4);
		assert_int_equal(json_value(obj, "barn_limit"), 10);
		assert_false(json_bool(obj, "adaptive"));
		assert_int_equal(json_value(st, "alloc_fastpath"), allocs);
		assert_int_equal(json_value(st, "alloc_slowpath"), 0);
		assert_int_equal(json_value(st, "free_fastpath"), frees);
		assert_int_equal(json_value(st, "free_slowpath"), 0);
		assert_int_equal(json_value(st, "alloc_cpu_sheaf"), allocs);
		assert_int_equal(json_value(st, "free_cpu_sheaf"), frees);
		assert_true(strstr(obj, "\"sheaves\": true") != NULL);
	} else {
		assert_int_equal(json_value(st, "alloc_fastpath") +
				 json_value(st, "alloc_slowpath"), allocs);
		assert_int_equal(json_value(st, "free_fastpath") +
				 json_value(st, "free_slowpath"), frees);
		assert_int_equal(json_value(st, "alloc_cpu_sheaf"), 0);
		assert_int_equal(json_value(st, "free_cpu_sheaf"), 0);
		assert_int_equal(json_value(obj, "sheaf_capacity"), 0);
		assert_int_equal(json_value(obj, "capacity_base"), 0);
		assert_int_equal(json_value(obj, "capacity_max"), 0);
		assert_int_equal(json_value(obj, "barn_limit"), 0);
		assert_false(json_bool(obj, "adaptive"));
		assert_true(strstr(obj, "\"sheaves\": false") != NULL);
	}
#undef R
	return json_value(json, "generation");
}

/* ------------------------------------------------------------- tests */

/* The figures against the program's, before and after more work. */
static void test_numbers(void **state)
{
	struct proc p;
	char *out, *err;
	start_target(&p, "1");
	assert_true(published(p.pid));

	command(&p, "alloc sheaf 100");
	command(&p, "free sheaf 30");
	command(&p, "alloc classic 50");
	command(&p, "free classic 7");
	command(&p, "alloc kmalloc 10");
	assert_int_equal(run_tool(&out, &err, "--json", pid_str(p.pid), NULL), 0);
	assert_string_equal(err, "");
	uint64_t g1 = check_cache(out, &p, "sheaf", "info-sheaf", true);
	check_cache(out, &p, "classic", "info-classic", false);
	static char obj[16384];
	json_cache(out, "kmalloc-128", obj, sizeof(obj));
	assert_int_equal(json_value(obj, "objects_inuse"), 10);
	assert_true(strstr(obj, "\"kmalloc\": true") != NULL);
	assert_int_equal(json_value(out, "pid"), p.pid);
	/* Internal caches are hidden without -a. */
	assert_null(strstr(out, "\"internal\": true"));
	free(out);
	free(err);

	/* More work: the barn overflows (frees flushed to slabs). */
	command(&p, "alloc sheaf 300");
	command(&p, "free sheaf 250");
	command(&p, "free kmalloc 4");
	assert_int_equal(run_tool(&out, &err, "--json", "-a", pid_str(p.pid), NULL), 0);
	uint64_t g2 = check_cache(out, &p, "sheaf", "info-sheaf", true);
	check_cache(out, &p, "classic", "info-classic", false);
	assert_true(g2 > g1);
	assert_int_equal(reply_value(&p, "sheaf.live"), 120);
	json_cache(out, "kmalloc-128", obj, sizeof(obj));
	assert_int_equal(json_value(obj, "objects_inuse"), 6);
	assert_non_null(strstr(out, "\"internal\": true"));
	free(out);
	free(err);

	/* The table: the cache's row holds its figures (capacity 4, fixed:
	 * no range; barn limit 10), the classic cache's no barn. */
	assert_int_equal(run_tool(&out, &err, pid_str(p.pid), NULL), 0);
	assert_non_null(strstr(out, " BarnF BarnE BarnL "));
	char *row = strstr(out, "\ninfo-sheaf ");
	assert_non_null(row);
	unsigned int objsize, inuse, cap, barnl;
	char capw[32], flags[8];
	assert_int_equal(sscanf(row, "\ninfo-sheaf %u %u %*s %*s %31s %*s %*s %*s %*s "
				"%*s %*s %*s %*s %u %*s %7s", &objsize, &inuse, capw,
				&barnl, flags), 5);
	assert_int_equal(objsize, 100);
	assert_int_equal(inuse, 120);
	assert_string_equal(capw, "4");
	assert_int_equal(barnl, 10);
	assert_string_equal(flags, "S");
	row = strstr(out, "\ninfo-classic ");
	assert_non_null(row);
	assert_int_equal(sscanf(row, "\ninfo-classic %*u %*s %*s %*s %u %*s %*s %*s "
				"%*s %*s %*s %*s %*s %31s", &cap, capw), 2);
	assert_int_equal(cap, 0);
	assert_string_equal(capw, "-");
	free(out);
	free(err);

	/* A fork child exiting normally leaves the parent's page alone. */
	command(&p, "fork");
	assert_true(published(p.pid));
	assert_int_equal(run_tool(&out, &err, "--json", pid_str(p.pid), NULL), 0);
	check_cache(out, &p, "sheaf", "info-sheaf", true);
	free(out);
	free(err);

	assert_int_equal(end_target(&p, true), 0);
	assert_false(published(p.pid));
}

/*
 * An adaptive cache: the target alone runs with SHEAF_ADAPTIVE=1 (CTest
 * sets 0 for the test) and SHEAF_ADAPTIVE_MAX=4, and without idle looks
 * (SHEAF_IDLE_MS of an hour), so that nothing steps the cache down between
 * the target's reply and the snapshot sheafinfo asks for.  The page shows
 * the range (4 to 16 * 4: a base below 16 counts as 16 for the ceiling),
 * the library's level, and a level grown by
 * allocation bursts (a sheaf of 4 objects goes to the barn or the slabs
 * every 4 objects: 64 such misses within 16 ms grow the cache).
 */
static void test_adaptive(void **state)
{
	static const char *const env[] = { "SHEAF_ADAPTIVE=1", "SHEAF_ADAPTIVE_MAX=4",
					   "SHEAF_IDLE_MS=3600000", NULL };
	static char obj[16384];
	struct proc p;
	char *out, *err;
	target_env = env;
	start_target(&p, "1");
	command(&p, "alloc sheaf 10");
	command(&p, "alloc classic 10");
	assert_int_equal(reply_value(&p, "sheaf.adaptive"), 1);
	assert_int_equal(run_tool(&out, &err, "--json", pid_str(p.pid), NULL), 0);
	json_cache(out, "info-sheaf", obj, sizeof(obj));
	assert_true(json_bool(obj, "adaptive"));
	assert_int_equal(json_value(obj, "capacity_base"), 4);
	assert_int_equal(json_value(obj, "capacity_max"), 16 * 4);
	check_limits(obj, &p, "sheaf");
	uint64_t cap = json_value(obj, "sheaf_capacity"), barn = json_value(obj, "barn_limit");
	assert_true(cap >= 4 && cap <= 64);
	assert_true(barn >= SHEAF_INFO_BARN_LIMIT_MIN && barn <= SHEAF_INFO_BARN_LIMIT_MAX);
	/* A cache without sheaves is never adaptive. */
	json_cache(out, "info-classic", obj, sizeof(obj));
	assert_false(json_bool(obj, "adaptive"));
	check_limits(obj, &p, "classic");
	free(out);
	free(err);

	/* Bursts until the library says the cache grew (the first one does
	 * but for a stall of more than 16 ms in every window of it). */
	for (int i = 0; i < 50 && !reply_value(&p, "sheaf.capacity_grow"); i++) {
		command(&p, "alloc sheaf 20000");
		command(&p, "free sheaf 20000");
	}
	if (!reply_value(&p, "sheaf.capacity_grow"))
		fail_msg("the adaptive cache never grew: %s", p.reply);
	cap = reply_value(&p, "sheaf.capacity");
	assert_true(cap > 4 && cap <= 64);
	assert_int_equal(run_tool(&out, &err, "--json", pid_str(p.pid), NULL), 0);
	json_cache(out, "info-sheaf", obj, sizeof(obj));
	check_limits(obj, &p, "sheaf");
	assert_int_equal(json_value(strstr(obj, "\"stats\""), "capacity_grow"),
			 reply_value(&p, "sheaf.capacity_grow"));
	free(out);
	free(err);

	/* The table: "CAP(4-64)", the barn limit, flag a. */
	assert_int_equal(run_tool(&out, &err, pid_str(p.pid), NULL), 0);
	char *row = strstr(out, "\ninfo-sheaf ");
	assert_non_null(row);
	char capw[32], flags[8], want[32];
	unsigned int barnl;
	assert_int_equal(sscanf(row, "\ninfo-sheaf %*u %*s %*s %*s %31s %*s %*s %*s %*s "
				"%*s %*s %*s %*s %u %*s %7s", capw, &barnl, flags), 3);
	snprintf(want, sizeof(want), "%u(4-64)", (unsigned int)cap);
	assert_string_equal(capw, want);
	assert_int_equal(barnl, reply_value(&p, "sheaf.barn_limit"));
	assert_string_equal(flags, "Sa");
	free(out);
	free(err);
	assert_int_equal(end_target(&p, true), 0);
}

/* -s: order of the rows; bad keys and operands are usage errors. */
static void test_sort_and_usage(void **state)
{
	struct proc p;
	char *out, *err;
	start_target(&p, "1");
	command(&p, "alloc sheaf 40");
	command(&p, "alloc classic 20");
	assert_int_equal(run_tool(&out, &err, "-s", "allocs", pid_str(p.pid), NULL), 0);
	char *a = strstr(out, "\ninfo-sheaf "), *b = strstr(out, "\ninfo-classic ");
	assert_true(a && b && a < b);
	free(out);
	free(err);
	assert_int_equal(run_tool(&out, &err, "-s", "name", pid_str(p.pid), NULL), 0);
	a = strstr(out, "\ninfo-sheaf ");
	b = strstr(out, "\ninfo-classic ");
	assert_true(a && b && b < a);
	free(out);
	free(err);
	assert_int_equal(run_tool(&out, &err, "-s", "bogus", pid_str(p.pid), NULL), 2);
	assert_non_null(strstr(err, "unknown sort key"));
	free(out);
	free(err);
	assert_int_equal(run_tool(&out, &err, "notapid", NULL), 2);
	free(out);
	free(err);
	/* Without PID: the publishing processes. */
	assert_int_equal(run_tool(&out, &err, NULL), 0);
	char line[64];
	snprintf(line, sizeof(line), "\n%7d ", (int)p.pid);
	assert_non_null(strstr(out, line));
	free(out);
	free(err);
	assert_int_equal(end_target(&p, true), 0);
}

static void test_no_such_process(void **state)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	expect_error("no process with pid", pid_str(pid));
}

/* Without SHEAF_STATS nothing is published and sheafinfo says so. */
static void test_not_published(void **state)
{
	struct proc p;
	start_target(&p, NULL);
	command(&p, "alloc sheaf 10");
	assert_false(published(p.pid));
	expect_error("does not publish libsheaf statistics (start it with SHEAF_STATS=1)",
		     pid_str(p.pid));
	assert_int_equal(end_target(&p, true), 0);
	start_target(&p, "0");
	assert_false(published(p.pid));
	assert_int_equal(end_target(&p, true), 0);
}

/* A live process that is not a libsheaf publisher. */
static pid_t sleeper(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	remember(pid);
	return pid;
}

static void kill_sleeper(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	forget(pid);
}

/* A fake page for pid: a valid header, then `tweak` applied. */
static void fake_page(pid_t pid, void (*tweak)(struct sheaf_info_header *))
{
	char name[64];
	size_t size = sizeof(struct sheaf_info_header) +
		      SHEAF_INFO_MAX_CACHES * sizeof(struct sheaf_info_cache);
	snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)pid);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	struct sheaf_info_header *h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(h != MAP_FAILED);
	close(fd);
	h->magic = SHEAF_INFO_MAGIC;
	h->version = SHEAF_INFO_VERSION;
	h->header_size = sizeof(*h);
	h->record_size = sizeof(struct sheaf_info_cache);
	h->nr_stats = SHEAF_STAT_NR;
	h->max_caches = SHEAF_INFO_MAX_CACHES;
	h->pid = pid;
	h->start_time = start_time_of(pid);
	tweak(h);
	munmap(h, size);
}

static void drop_page(pid_t pid)
{
	char name[64];
	snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)pid);
	shm_unlink(name);
}

static void bad_version(struct sheaf_info_header *h) { h->version = 99; }
static void bad_magic(struct sheaf_info_header *h) { h->magic = 0x1234; }
static void bad_record(struct sheaf_info_header *h) { h->record_size += 8; }
static void other_start(struct sheaf_info_header *h) { h->start_time += 12345; }
static void no_change(struct sheaf_info_header *h) { (void)h; }

static void test_foreign_page(void **state)
{
	pid_t pid = sleeper();
	fake_page(pid, bad_version);
	expect_error("another format", pid_str(pid));
	fake_page(pid, bad_magic);
	expect_error("another format", pid_str(pid));
	fake_page(pid, bad_record);
	expect_error("another format", pid_str(pid));
	/* A valid page nobody answers for. */
	fake_page(pid, no_change);
	expect_error("did not answer", pid_str(pid));
	drop_page(pid);
	kill_sleeper(pid);
}

static void test_stale_page(void **state)
{
	/* The pid is alive, but not the process that wrote the page. */
	pid_t pid = sleeper();
	fake_page(pid, other_start);
	expect_error("stale", pid_str(pid));
	/* The process is gone. */
	fake_page(pid, no_change);
	kill_sleeper(pid);
	remember_page(pid);  /* the pid is gone, the page is not */
	expect_error("stale", pid_str(pid));
	drop_page(pid);
}

/* A real publisher that cannot run: the refresh times out. */
static void test_stopped_process(void **state)
{
	struct proc p;
	start_target(&p, "1");
	assert_int_equal(kill(p.pid, SIGSTOP), 0);
	/* kill() only queues the signal: wait until the whole process has
	 * stopped, or its publisher may still answer (seen once in CI under
	 * load). */
	int st;
	assert_int_equal(waitpid(p.pid, &st, WUNTRACED), p.pid);
	assert_true(WIFSTOPPED(st));
	expect_error("did not answer", pid_str(p.pid));
	assert_int_equal(kill(p.pid, SIGCONT), 0);
	char *out, *err;
	assert_int_equal(run_tool(&out, &err, pid_str(p.pid), NULL), 0);
	free(out);
	free(err);
	assert_int_equal(end_target(&p, true), 0);
}

/*
 * A publisher of another user: its page is mode 0600, so sheafinfo run by
 * someone else says permission denied (as root, the test runs it as
 * nobody; otherwise there is no second user to be and it is skipped).
 */
static void test_permission_denied(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	struct proc p;
	start_target(&p, "1");
	assert_true(published(p.pid));
	tool_uid = 65534;
	expect_error("permission denied (a process of another user?)", pid_str(p.pid));
	tool_uid = 0;
	char *out, *err;
	assert_int_equal(run_tool(&out, &err, pid_str(p.pid), NULL), 0);
	free(out);
	free(err);
	assert_int_equal(end_target(&p, true), 0);
}

/* SHEAF_STATS=exit: the table on stderr at exit, the page removed. */
static void test_exit_table(void **state)
{
	int errp[2];
	assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
	int saved = dup(2);
	dup2(errp[1], 2);
	struct proc p;
	start_target(&p, "exit");
	dup2(saved, 2);
	close(saved);
	close(errp[1]);
	assert_true(published(p.pid));
	command(&p, "alloc sheaf 25");
	command(&p, "free sheaf 5");
	assert_int_equal(end_target(&p, true), 0);
	assert_false(published(p.pid));
	char *text = slurp(errp[0]);
	char head[96];
	snprintf(head, sizeof(head), "libsheaf caches of process %d at exit", (int)p.pid);
	if (!strstr(text, head) || !strstr(text, "\nName ") || !strstr(text, "hidden; -a shows"))
		fail_msg("exit table: %s", text);
	char *row = strstr(text, "\ninfo-sheaf ");
	assert_non_null(row);
	unsigned int objsize, inuse, total, slabs, cap, allocs, ashare, frees;
	assert_int_equal(sscanf(row, "\ninfo-sheaf %u %u %u %u %u %u %u %u", &objsize,
				&inuse, &total, &slabs, &cap, &allocs, &ashare, &frees), 8);
	assert_int_equal(objsize, 100);
	assert_int_equal(inuse, 20);
	assert_int_equal(cap, 4);
	assert_int_equal(allocs, 25);
	assert_int_equal(ashare, 100);
	assert_int_equal(frees, 5);
	assert_true(total >= inuse);
	free(text);
}

/* Count of needle in hay. */
static unsigned int count(const char *hay, const char *needle)
{
	unsigned int n = 0;
	for (const char *s = hay; (s = strstr(s, needle)); s++)
		n++;
	return n;
}

/* More caches than the page holds: the first 256, and the count. */
static void test_truncated(void **state)
{
	struct proc p;
	char *out, *err;
	start_target(&p, "1");
	command(&p, "caches - %u", SHEAF_INFO_MAX_CACHES + 20);
	assert_int_equal(run_tool(&out, &err, "--json", "-a", pid_str(p.pid), NULL), 0);
	assert_non_null(strstr(out, "\"truncated\": true"));
	assert_true(json_value(out, "total_caches") >= SHEAF_INFO_MAX_CACHES + 22);
	assert_int_equal(count(out, "{\"name\": "), SHEAF_INFO_MAX_CACHES);
	free(out);
	free(err);
	assert_int_equal(run_tool(&out, &err, "-a", pid_str(p.pid), NULL), 0);
	char msg[96];
	snprintf(msg, sizeof(msg), "more caches not published: the page holds %u",
		 SHEAF_INFO_MAX_CACHES);
	assert_non_null(strstr(out, msg));
	free(out);
	free(err);
	assert_int_equal(end_target(&p, true), 0);
}

/* Without any reader, the publisher rewrites the page every interval. */
static void test_periodic(void **state)
{
	struct proc p;
	char name[64];
	start_target_iv(&p, "1", "20");
	snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)p.pid);
	int fd = shm_open(name, O_RDONLY, 0);
	assert_true(fd >= 0);
	struct sheaf_info_header *h = mmap(NULL, sizeof(*h), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(h != MAP_FAILED);
	uint64_t g0 = __atomic_load_n(&h->generation, __ATOMIC_ACQUIRE);
	uint64_t deadline = now_ms() + 30000;  /* generous: 3 periods of 20 ms */
	while (__atomic_load_n(&h->generation, __ATOMIC_ACQUIRE) < g0 + 3 &&
	       now_ms() < deadline)
		nap();
	assert_true(__atomic_load_n(&h->generation, __ATOMIC_ACQUIRE) >= g0 + 3);
	assert_int_equal(__atomic_load_n(&h->request, __ATOMIC_ACQUIRE), 0);
	assert_int_equal(h->interval_ms, 20);
	munmap(h, sizeof(*h));
	assert_int_equal(end_target(&p, true), 0);
}

/*
 * The last "info-sheaf" row of a -w output: its Inuse, or -1.  pread: the
 * file offset is shared with the writing sheafinfo.
 */
static long last_inuse(int fd)
{
	static char text[1 << 20];
	ssize_t n = 0, r;
	while (n < (ssize_t)sizeof(text) - 1 &&
	       (r = pread(fd, text + n, sizeof(text) - 1 - (size_t)n, n)) > 0)
		n += r;
	text[n] = 0;
	char *row = NULL;
	for (char *s = text; (s = strstr(s, "\ninfo-sheaf ")); s++)
		row = s;
	unsigned int objsize, inuse;
	if (!row || sscanf(row, "\ninfo-sheaf %u %u", &objsize, &inuse) != 2)
		return -1;
	return (long)inuse;
}

/* -w: redraws with new figures, ends when the process exits. */
static void test_watch(void **state)
{
	struct proc p;
	start_target(&p, "1");
	command(&p, "alloc sheaf 10");
	char o[] = "/tmp/sheafinfo-watch-XXXXXX";
	int fo = mkostemp(o, O_CLOEXEC);
	assert_true(fo >= 0);
	unlink(o);
	pid_t tool = fork();
	assert_true(tool >= 0);
	if (tool == 0) {
		dup2(fo, 1);
		execl(sheafinfo, sheafinfo, "-w", "0.1", pid_str(p.pid), (char *)NULL);
		_exit(127);
	}
	remember(tool);
	uint64_t deadline = now_ms() + 30000;  /* generous */
	while (last_inuse(fo) != 10 && now_ms() < deadline)
		nap();
	assert_int_equal(last_inuse(fo), 10);
	command(&p, "alloc sheaf 5");
	while (last_inuse(fo) != 15 && now_ms() < deadline)
		nap();
	assert_int_equal(last_inuse(fo), 15);
	assert_int_equal(end_target(&p, true), 0);
	int st = 0;
	while (waitpid(tool, &st, WNOHANG) == 0 && now_ms() < deadline)
		nap();
	forget(tool);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	char *text = slurp(fo);
	char line[64];
	snprintf(line, sizeof(line), "process %d exited\n", (int)p.pid);
	assert_non_null(strstr(text, line));
	assert_non_null(strstr(text, "\033[H\033[2J"));
	free(text);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s SHEAFINFO INFO_TARGET\n", argv[0]);
		return 2;
	}
	sheafinfo = argv[1];
	target = argv[2];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_numbers, cleanup),
		cmocka_unit_test_teardown(test_adaptive, cleanup),
		cmocka_unit_test_teardown(test_sort_and_usage, cleanup),
		cmocka_unit_test_teardown(test_no_such_process, cleanup),
		cmocka_unit_test_teardown(test_not_published, cleanup),
		cmocka_unit_test_teardown(test_foreign_page, cleanup),
		cmocka_unit_test_teardown(test_stale_page, cleanup),
		cmocka_unit_test_teardown(test_stopped_process, cleanup),
		cmocka_unit_test_teardown(test_permission_denied, cleanup),
		cmocka_unit_test_teardown(test_exit_table, cleanup),
		cmocka_unit_test_teardown(test_truncated, cleanup),
		cmocka_unit_test_teardown(test_periodic, cleanup),
		cmocka_unit_test_teardown(test_watch, cleanup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
