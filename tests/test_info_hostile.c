/* SPDX-License-Identifier: MIT */
/*
 * test_info_hostile.c - sheafinfo against pages written by a hostile user.
 *
 *   test_info_hostile SHEAFINFO INFO_TARGET
 *
 * Any local user can create /dev/shm/libsheaf.<pid>, and sheafinfo is
 * naturally run as root, so the pages here are crafted by the test itself,
 * for its own pid (with a thread that answers sheafinfo's refresh requests,
 * as a publisher would), for a sleeping child or for a pid that has
 * exited: a page that grows max_caches while sheafinfo reads it, a page
 * truncated under `sheafinfo -w`, a sparse 2 GiB page, a page of another
 * owner (as root), a page without start time, a page whose sequence count
 * stays odd, inconsistent capacity fields, cache names with terminal
 * escapes, a symbolic link and a FIFO at the page's name, stale pages
 * (listing, --clean, and the next publisher's cleanup).  The publisher side (tests/info_target.c, real
 * libsheaf) against a file, a symbolic link and a FIFO planted at its name.
 * Each answer must be a clean refusal (one line on stderr, status 1) or a
 * correct table, never a crash, a hang, a big memory footprint or a raw
 * control character on the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/info.h>

#include "info_test_util.h"

static const char *sheafinfo, *target;

/* ------------------------------------------------------------ helpers */

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Paths and processes to remove at the end of each test, even a failed one. */
static char paths[16][96];
static int nr_paths;
static pid_t children[8];
static int nr_children;

static void remember_path(const char *p)
{
	if (nr_paths < 16)
		snprintf(paths[nr_paths++], sizeof(paths[0]), "%s", p);
}

static void remember_child(pid_t pid)
{
	if (nr_children < 8)
		children[nr_children++] = pid;
}

static void forget_child(pid_t pid)
{
	for (int i = 0; i < nr_children; i++)
		if (children[i] == pid)
			children[i] = children[--nr_children];
}

/* What one sheafinfo run did. */
struct run {
	int status;        /* exit status, or 128 + signal */
	bool signaled;
	char *out, *err;
	long maxrss_kb;    /* its peak resident set */
	uint64_t ms;       /* wall clock */
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Run sheafinfo with args (NULL-terminated). */
static void run_tool(struct run *r, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)sheafinfo;
	va_start(ap, r);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	char o[] = "/tmp/hostile-out-XXXXXX", e[] = "/tmp/hostile-err-XXXXXX";
	int fo = mkostemp(o, O_CLOEXEC), fe = mkostemp(e, O_CLOEXEC);
	assert_true(fo >= 0 && fe >= 0);
	unlink(o);
	unlink(e);
	uint64_t t0 = now_ms();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fo, 1);
		dup2(fe, 2);
		execv(sheafinfo, argv);
		_exit(127);
	}
	int st;
	struct rusage ru;
	assert_int_equal(wait4(pid, &st, 0, &ru), pid);
	r->ms = now_ms() - t0;
	r->maxrss_kb = ru.ru_maxrss;
	r->signaled = WIFSIGNALED(st);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = slurp(fo);
	r->err = slurp(fe);
}

/* No byte of s below 0x20 but '\n', none from 0x7f. */
static bool clean_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\n') || *p >= 0x7f)
			return false;
	return true;
}

/* A refusal: status 1, not a crash, one line on stderr holding `what`. */
static void expect_refusal(struct run *r, const char *what)
{
	size_t n = strlen(r->err);
	if (r->signaled || r->status != 1 || !strstr(r->err, what) || n == 0 ||
	    strchr(r->err, '\n') != r->err + n - 1 || strstr(r->err, "Sanitizer"))
		fail_msg("sheafinfo: status %d%s, stdout '%.300s', stderr '%.2000s' "
			 "(expected a refusal: '%s')", r->status,
			 r->signaled ? " (killed by a signal)" : "", r->out, r->err, what);
}

/* ------------------------------------------------ crafted pages */

/*
 * A page crafted by the test: a file at /dev/shm/libsheaf.<pid> (or at
 * another path), and the test's mapping of its first map_size bytes.
 */
struct crafted {
	char path[96];
	int fd;
	struct sheaf_info_header *h;
	size_t map_size;
	/* The responder: answers refresh requests as a publisher does. */
	pthread_t responder;
	bool responding;
	/* The flipper: rewrites max_caches and nr_caches without end. */
	pthread_t flipper;
	bool flipping;
	volatile int stop;
};

static struct crafted cp;

static struct sheaf_info_cache *records(struct sheaf_info_header *h)
{
	return (struct sheaf_info_cache *)(h + 1);
}

/*
 * Create the file `path` (after removing whatever is there), of file_size
 * bytes, with a valid header for pid (start time `start`, 0: the pid's
 * now) and nr records named names[i]; maps the first map_size bytes.
 */
static void craft_at(const char *path, pid_t pid, uint64_t start, size_t file_size,
		     size_t map_size, unsigned int nr, const char *const *names)
{
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.path, sizeof(cp.path), "%s", path);
	remember_path(path);
	unlink(path);
	cp.fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	assert_true(cp.fd >= 0);
	assert_int_equal(ftruncate(cp.fd, (off_t)file_size), 0);
	cp.map_size = map_size;
	cp.h = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, cp.fd, 0);
	assert_true(cp.h != MAP_FAILED);
	struct sheaf_info_header *h = cp.h;
	h->magic = SHEAF_INFO_MAGIC;
	h->version = SHEAF_INFO_VERSION;
	h->header_size = sizeof(*h);
	h->record_size = sizeof(struct sheaf_info_cache);
	h->nr_stats = SHEAF_STAT_NR;
	h->max_caches = (uint32_t)((map_size - sizeof(*h)) / sizeof(struct sheaf_info_cache));
	if (h->max_caches > SHEAF_INFO_MAX_CACHES)
		h->max_caches = SHEAF_INFO_MAX_CACHES;
	h->nr_caches = h->total_caches = nr;
	h->pid = pid;
	h->start_time = start ? start : start_time_of(pid);
	h->interval_ms = 1000;
	h->generation = 1;
	h->nr_slots = 1;
	h->nr_nodes = 1;
	h->page_size = 4096;
	for (unsigned int i = 0; i < nr; i++) {
		struct sheaf_info_cache *c = &records(h)[i];
		snprintf(c->name, sizeof(c->name), "%s", names[i]);
		c->object_size = 100;
		c->size = 104;
		c->objects_per_slab = 39;
		c->slabs = 1;
		c->objects_total = 39;
		c->objects_inuse = 5;
		c->objects_partial_free = 34;
		c->bytes = 4096;
		c->stats[SHEAF_STAT_ALLOC_FASTPATH] = 5;
	}
}

/* The full-size page of pid (start: as craft_at()). */
static void craft_st(pid_t pid, uint64_t start, unsigned int nr, const char *const *names)
{
	char path[64];
	craft_at(shm_path(pid, path, sizeof(path)), pid, start, SHEAF_INFO_PAGE_MAX,
		 SHEAF_INFO_PAGE_MAX, nr, names);
}

static void craft(pid_t pid, unsigned int nr, const char *const *names)
{
	craft_st(pid, 0, nr, names);
}

static void *responder(void *arg)
{
	struct sheaf_info_header *h = cp.h;
	while (!cp.stop) {
		uint32_t req = __atomic_load_n(&h->request, __ATOMIC_ACQUIRE);
		__atomic_store_n(&h->answered, req, __ATOMIC_RELEASE);
		syscall(SYS_futex, &h->answered, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
		struct timespec ts = { 0, 5 * 1000000L };
		syscall(SYS_futex, &h->request, FUTEX_WAIT, req, &ts, NULL, 0);
	}
	return arg;
}

static void start_responder(void)
{
	assert_int_equal(pthread_create(&cp.responder, NULL, responder, NULL), 0);
	cp.responding = true;
}

/* max_caches 1 (what the file can hold) and 256, back and forth. */
static void *flipper(void *arg)
{
	struct sheaf_info_header *h = cp.h;
	while (!cp.stop) {
		for (int i = 0; i < 1000; i++) {
			__atomic_store_n(&h->max_caches, SHEAF_INFO_MAX_CACHES, __ATOMIC_RELAXED);
			__atomic_store_n(&h->nr_caches, SHEAF_INFO_MAX_CACHES, __ATOMIC_RELAXED);
			__atomic_store_n(&h->total_caches, SHEAF_INFO_MAX_CACHES, __ATOMIC_RELAXED);
			__atomic_store_n(&h->max_caches, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&h->nr_caches, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&h->total_caches, 1, __ATOMIC_RELAXED);
		}
		sched_yield();
	}
	return arg;
}

static void stop_threads(void)
{
	cp.stop = 1;
	if (cp.responding)
		pthread_join(cp.responder, NULL);
	if (cp.flipping)
		pthread_join(cp.flipper, NULL);
	cp.responding = cp.flipping = false;
}

/* Done with the crafted page, which stays (its path is remembered). */
static void release(void)
{
	stop_threads();
	if (cp.h && cp.h != MAP_FAILED)
		munmap(cp.h, cp.map_size);
	if (cp.fd > 0)
		close(cp.fd);
	memset(&cp, 0, sizeof(cp));
}

static void uncraft(void)
{
	char path[sizeof(cp.path)];
	memcpy(path, cp.path, sizeof(path));
	release();
	if (path[0])
		unlink(path);
}

static int cleanup(void **state)
{
	uncraft();
	for (int i = 0; i < nr_children; i++) {
		kill(children[i], SIGKILL);
		waitpid(children[i], NULL, 0);
	}
	for (int i = 0; i < nr_paths; i++)
		unlink(paths[i]);
	nr_children = nr_paths = 0;
	return 0;
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
	remember_child(pid);
	return pid;
}

/* A pid that was a process a moment ago (and its start time then). */
static pid_t dead_pid(uint64_t *start)
{
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(go[1]);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	*start = start_time_of(pid);
	close(go[1]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static void set_mtime_ago(const char *path, time_t secs)
{
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= secs;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static const char *const one_name[] = { "hostile-cache" };

/* ------------------------------------------------------------- tests */

/*
 * The file holds one record; a writer flips max_caches (and nr_caches)
 * between 1 and 256 while sheafinfo reads: the copy must be validated
 * against its own length (it used to read 120 KB past its buffer).
 */
static void test_size_growth(void **state)
{
	char path[64];
	pid_t me = getpid();
	size_t size = sizeof(struct sheaf_info_header) + sizeof(struct sheaf_info_cache);
	craft_at(shm_path(me, path, sizeof(path)), me, 0, size, size, 1, one_name);
	start_responder();
	assert_int_equal(pthread_create(&cp.flipper, NULL, flipper, NULL), 0);
	cp.flipping = true;
	int shown = 0, refused = 0;
	for (int i = 0; i < 30; i++) {
		struct run r;
		run_tool(&r, "-a", pid_str(me), NULL);
		if (r.status == 0) {
			/* Title, column names, the one row, and maybe the note
			 * "(255 more caches not published...)": a copy taken while
			 * total_caches was 256 and max_caches 1 is consistent. */
			int lines = 0, rows = 0, other = 0;
			for (const char *s = r.out; *s; s = strchr(s, '\n') + 1) {
				if (!strchr(s, '\n'))
					break;
				if (++lines <= 2)
					continue;
				if (!strncmp(s, "hostile-cache ", 14))
					rows++;
				else if (*s != '(')
					other++;
			}
			if (rows != 1 || other || *r.err)
				fail_msg("run %d: stdout '%.1000s' stderr '%s'", i, r.out, r.err);
			shown++;
		} else {
			/* Any refusal (the old reader's "another format" too);
			 * not a crash, not a sanitizer report. */
			expect_refusal(&r, "sheafinfo: ");
			refused++;
		}
		run_free(&r);
	}
	print_message("size growth: %d tables, %d refusals\n", shown, refused);
	uncraft();
}

/* Truncated under `sheafinfo -w`: a refusal, not SIGBUS. */
static void test_truncate_watch(void **state)
{
	pid_t me = getpid();
	craft(me, 1, one_name);
	start_responder();
	char o[] = "/tmp/hostile-watch-XXXXXX", e[] = "/tmp/hostile-werr-XXXXXX";
	int fo = mkostemp(o, O_CLOEXEC), fe = mkostemp(e, O_CLOEXEC);
	assert_true(fo >= 0 && fe >= 0);
	unlink(o);
	unlink(e);
	pid_t tool = fork();
	assert_true(tool >= 0);
	if (tool == 0) {
		dup2(fo, 1);
		dup2(fe, 2);
		execl(sheafinfo, sheafinfo, "-w", "0.1", "-a", pid_str(me), (char *)NULL);
		_exit(127);
	}
	remember_child(tool);
	/* Wait for two tables (generous deadline: it takes 0.1 s). */
	uint64_t deadline = now_ms() + 30000;
	for (;;) {
		char buf[8192];
		ssize_t n = pread(fo, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = 0;
		char *a = strstr(buf, "\nhostile-cache ");
		if (a && strstr(a + 1, "\nhostile-cache "))
			break;
		assert_true(now_ms() < deadline);
		nap_ms(10);
	}
	/* The hostile writer's own mapping must not be touched after this. */
	stop_threads();
	munmap(cp.h, cp.map_size);
	cp.h = NULL;
	assert_int_equal(ftruncate(cp.fd, 0), 0);
	int st;
	assert_int_equal(waitpid(tool, &st, 0), tool);
	forget_child(tool);
	char *out = slurp(fo), *err = slurp(fe);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 || !strstr(err, "truncated") ||
	    strchr(err, '\n') != err + strlen(err) - 1)
		fail_msg("sheafinfo -w: %s %d, stderr '%s'",
			 WIFEXITED(st) ? "status" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), err);
	free(out);
	free(err);
	uncraft();
}

/* A sparse 2 GiB page: refused from its size, nothing read. */
static void test_huge_sparse(void **state)
{
	char path[64];
	pid_t me = getpid();
	craft_at(shm_path(me, path, sizeof(path)), me, 0, (size_t)2 << 30, 4096, 1, one_name);
	start_responder();
	struct run r;
	run_tool(&r, pid_str(me), NULL);
	expect_refusal(&r, "more than a statistics page may have");
	/* Its baseline (an ASan build's included) is a few MiB; reading the
	 * page would take 2 GiB, copying it 4. */
	if (r.maxrss_kb > 256 * 1024)
		fail_msg("sheafinfo's peak RSS: %ld KiB", r.maxrss_kb);
	run_free(&r);
	/* The listing: the same line on stderr, status 1. */
	run_tool(&r, NULL);
	assert_int_equal(r.status, 1);
	char line[64];
	snprintf(line, sizeof(line), "\n%7d %6s (refused)\n", (int)me, "-");
	assert_non_null(strstr(r.out, line));
	assert_non_null(strstr(r.err, "more than a statistics page may have"));
	assert_true(r.maxrss_kb <= 256 * 1024);
	run_free(&r);
	uncraft();
}

/* A page of another user for a process of root: refused (as root). */
static void test_wrong_owner(void **state)
{
	if (geteuid() != 0)
		skip();
	pid_t me = getpid();
	craft(me, 1, one_name);
	start_responder();
	assert_int_equal(fchown(cp.fd, 65534, 65534), 0);
	struct run r;
	run_tool(&r, pid_str(me), NULL);
	expect_refusal(&r, "belongs to uid 65534, but process");
	run_free(&r);
	/* Back to root's: shown. */
	assert_int_equal(fchown(cp.fd, 0, 0), 0);
	run_tool(&r, "-a", pid_str(me), NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\nhostile-cache "));
	run_free(&r);
	uncraft();
}

/* No start time: the page cannot prove it is the process's. */
static void test_no_start_time(void **state)
{
	pid_t me = getpid();
	craft(me, 1, one_name);
	cp.h->start_time = 0;
	start_responder();
	struct run r;
	run_tool(&r, "-a", pid_str(me), NULL);
	expect_refusal(&r, "no start time");
	run_free(&r);
	uncraft();
}

/* A sequence count odd for ever: bounded wait, one line, next page. */
static void test_odd_sequence(void **state)
{
	pid_t me = getpid();
	craft(me, 1, one_name);
	cp.h->seq = 1;
	start_responder();
	struct run r;
	run_tool(&r, pid_str(me), NULL);
	char what[64];
	snprintf(what, sizeof(what), "page %d: no stable snapshot", (int)me);
	expect_refusal(&r, what);
	/* The bound is 200 ms; 5 s (the old bound) would be far above this. */
	if (r.ms > 3000)
		fail_msg("sheafinfo took %" PRIu64 " ms", r.ms);
	run_free(&r);
	/* The listing: the same line, and it goes on. */
	run_tool(&r, NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, what));
	assert_false(r.signaled);
	run_free(&r);
	uncraft();
}

/*
 * Capacity fields that no libsheaf writes (<sheaf/info.h>: base <=
 * capacity <= max <= 1024, barn limit 10 to 40, a fixed cache's range one
 * value, nothing without sheaves): refused, naming the record.  The same
 * record made consistent is shown.
 */
static void test_bad_capacity(void **state)
{
	static const struct {
		uint32_t flags, cap, base, max, barn;
	} bad[] = {
		{ SHEAF_INFO_C_SHEAVES | SHEAF_INFO_C_ADAPTIVE, 90, 60, 40, 10 },  /* cap > max */
		{ SHEAF_INFO_C_SHEAVES | SHEAF_INFO_C_ADAPTIVE, 30, 60, 240, 10 }, /* cap < base */
		{ SHEAF_INFO_C_SHEAVES | SHEAF_INFO_C_ADAPTIVE, 0, 0, 240, 10 },   /* base 0 */
		{ SHEAF_INFO_C_SHEAVES | SHEAF_INFO_C_ADAPTIVE, 2000, 600, 4096, 10 }, /* > 1024 */
		{ SHEAF_INFO_C_SHEAVES | SHEAF_INFO_C_ADAPTIVE, 90, 60, 240, 9 },  /* barn < 10 */
		{ SHEAF_INFO_C_SHEAVES | SHEAF_INFO_C_ADAPTIVE, 90, 60, 240, 41 }, /* barn > 40 */
		{ SHEAF_INFO_C_SHEAVES, 90, 60, 240, 10 },     /* fixed, with a range */
		{ SHEAF_INFO_C_SHEAVES, 60, 60, 60, 20 },      /* fixed, a grown barn */
		{ 0, 60, 60, 60, 10 },                         /* no sheaves, a capacity */
		{ SHEAF_INFO_C_ADAPTIVE, 0, 0, 0, 0 },         /* adaptive, no sheaves */
	};
	pid_t me = getpid();
	craft(me, 1, one_name);
	start_responder();
	struct sheaf_info_cache *c = &records(cp.h)[0];
	struct run r;
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c->flags = bad[i].flags;
		c->sheaf_capacity = bad[i].cap;
		c->capacity_base = bad[i].base;
		c->capacity_max = bad[i].max;
		c->barn_limit = bad[i].barn;
		run_tool(&r, "-a", pid_str(me), NULL);
		char what[160];
		snprintf(what, sizeof(what), "invalid page (record 0: capacity %u (base %u, "
			 "max %u), barn limit %u, flags %#x inconsistent): refused",
			 bad[i].cap, bad[i].base, bad[i].max, bad[i].barn, bad[i].flags);
		expect_refusal(&r, what);
		if (*r.out)
			fail_msg("case %u: a refused page printed '%s'", i, r.out);
		run_free(&r);
	}
	/* Consistent: an adaptive cache grown from 60 to 90 (of 240). */
	c->flags = SHEAF_INFO_C_SHEAVES | SHEAF_INFO_C_ADAPTIVE;
	c->sheaf_capacity = 90;
	c->capacity_base = 60;
	c->capacity_max = 240;
	c->barn_limit = 15;
	run_tool(&r, "-a", pid_str(me), NULL);
	if (r.status != 0 || !strstr(r.out, " 90(60-240) ") || *r.err)
		fail_msg("status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
	run_free(&r);
	run_tool(&r, "-a", "--json", pid_str(me), NULL);
	if (r.status != 0 || !strstr(r.out, "\"sheaf_capacity\": 90, \"capacity_base\": 60, "
				     "\"capacity_max\": 240, \"barn_limit\": 15, "
				     "\"sheaves\": true, \"adaptive\": true"))
		fail_msg("status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
	run_free(&r);
	uncraft();
}

/* Terminal escapes in names (and in the command name): escaped. */
static void test_control_chars(void **state)
{
	static const char *const names[] = {
		"evil\033]0;owned\007", "csi\233[2J", "del\177x", "back\\slash", "plain",
	};
	pid_t me = getpid();
	craft(me, 5, names);
	start_responder();
	struct run r;
	run_tool(&r, "-a", pid_str(me), NULL);
	assert_int_equal(r.status, 0);
	if (!clean_text(r.out))
		fail_msg("raw control bytes in the table: %s", r.out);
	assert_non_null(strstr(r.out, "\nevil\\x1b]0;owned\\x07 "));
	assert_non_null(strstr(r.out, "\ncsi\\x9b[2J "));
	assert_non_null(strstr(r.out, "\ndel\\x7fx "));
	assert_non_null(strstr(r.out, "\nback\\\\slash "));
	assert_non_null(strstr(r.out, "\nplain "));
	run_free(&r);
	run_tool(&r, "-a", "--json", pid_str(me), NULL);
	assert_int_equal(r.status, 0);
	if (!clean_text(r.out))
		fail_msg("raw control bytes in the JSON: %s", r.out);
	assert_non_null(strstr(r.out, "\"evil\\u001b]0;owned\\u0007\""));
	assert_non_null(strstr(r.out, "\"csi\\u009b[2J\""));
	assert_non_null(strstr(r.out, "\"del\\u007fx\""));
	assert_non_null(strstr(r.out, "\"back\\\\slash\""));
	run_free(&r);
	/* The listing prints /proc/PID/comm, which a process sets itself. */
	char saved[17] = "";
	prctl(PR_GET_NAME, saved);
	assert_int_equal(prctl(PR_SET_NAME, "hostile\033[2J"), 0);
	run_tool(&r, NULL);
	prctl(PR_SET_NAME, saved);
	if (!clean_text(r.out))
		fail_msg("raw control bytes in the listing: %s", r.out);
	assert_non_null(strstr(r.out, "hostile\\x1b[2J\n"));
	run_free(&r);
	uncraft();
}

/* A symbolic link, then a FIFO, at the page's name: refused at once. */
static void test_link_and_fifo(void **state)
{
	pid_t me = getpid();
	char path[64], real[96];
	shm_path(me, path, sizeof(path));
	/* A valid, answered page elsewhere, and the name a link to it. */
	snprintf(real, sizeof(real), "/dev/shm/hostile-real-%d", (int)me);
	craft_at(real, me, 0, SHEAF_INFO_PAGE_MAX, SHEAF_INFO_PAGE_MAX, 1, one_name);
	start_responder();
	remember_path(path);
	unlink(path);
	assert_int_equal(symlink(real, path), 0);
	struct run r;
	run_tool(&r, "-a", pid_str(me), NULL);
	expect_refusal(&r, "is a symbolic link: refused");
	run_free(&r);
	unlink(path);
	uncraft();
	/* A FIFO: no open may block on it (O_NONBLOCK). */
	assert_int_equal(mkfifo(path, 0600), 0);
	run_tool(&r, pid_str(me), NULL);
	expect_refusal(&r, "is not a regular file");
	run_free(&r);
	run_tool(&r, "--clean", pid_str(me), NULL);
	assert_int_equal(r.status, 1);
	assert_true(exists(path));
	run_free(&r);
	unlink(path);
}

/*
 * Start info_target (SHEAF_STATS=1) after `plant` put something at the
 * name its page will have; returns its pid once it is ready, with its
 * stdin in *in (closing it ends the program).
 */
static pid_t start_publisher_over(void (*plant)(const char *path), FILE **in)
{
	int go[2], to[2], from[2];
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(to, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(126);
		dup2(to[0], 0);
		dup2(from[1], 1);
		setenv("SHEAF_STATS", "1", 1);
		setenv("SHEAF_STATS_INTERVAL", "3600000", 1);
		execl(target, target, (char *)NULL);
		_exit(127);
	}
	remember_child(pid);
	close(go[0]);
	close(to[0]);
	close(from[1]);
	char path[64];
	shm_path(pid, path, sizeof(path));
	remember_path(path);
	if (plant)
		plant(path);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	FILE *out = fdopen(from[0], "r");
	assert_non_null(out);
	char line[128];
	int rpid = 0;
	assert_non_null(fgets(line, sizeof(line), out));
	assert_int_equal(sscanf(line, "ready %d", &rpid), 1);
	assert_int_equal(rpid, pid);
	fclose(out);
	*in = fdopen(to[1], "w");
	assert_non_null(*in);
	return pid;
}

static void end_publisher(pid_t pid, FILE *in)
{
	int st;
	fclose(in);     /* end of commands: it exits */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	forget_child(pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static char victim[96];
static const char victim_text[] = "the victim's data\n";

static void plant_link(const char *path)
{
	assert_int_equal(symlink(victim, path), 0);
}

static void plant_fifo(const char *path)
{
	assert_int_equal(mkfifo(path, 0666), 0);
}

static void plant_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "junk", 4), 4);
	close(fd);
}

/* The publisher's page: a regular file of ours, of a page's size. */
static void check_published(pid_t pid)
{
	char path[64];
	struct stat st;
	assert_int_equal(lstat(shm_path(pid, path, sizeof(path)), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, SHEAF_INFO_PAGE_MAX);
	struct run r;
	char title[64];
	snprintf(title, sizeof(title), "libsheaf caches of process %d,", (int)pid);
	run_tool(&r, pid_str(pid), NULL);
	if (r.status != 0 || !strstr(r.out, title))
		fail_msg("sheafinfo %d: status %d, '%s' '%s'", (int)pid, r.status, r.out, r.err);
	run_free(&r);
}

/* The publisher replaces what was planted at its name, follows nothing. */
static void test_publisher_planted(void **state)
{
	snprintf(victim, sizeof(victim), "/dev/shm/hostile-victim-%d", (int)getpid());
	remember_path(victim);
	int fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, victim_text, sizeof(victim_text) - 1),
			 (ssize_t)sizeof(victim_text) - 1);
	close(fd);
	void (*plants[])(const char *) = { plant_link, plant_fifo, plant_file };
	for (unsigned int i = 0; i < 3; i++) {
		FILE *in;
		pid_t pid = start_publisher_over(plants[i], &in);
		check_published(pid);
		end_publisher(pid, in);
		char path[64];
		assert_false(exists(shm_path(pid, path, sizeof(path))));
	}
	/* The link's target is untouched. */
	struct stat st;
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, sizeof(victim_text) - 1);
	int vfd = open(victim, O_RDONLY);
	char *text = slurp(vfd);
	assert_string_equal(text, victim_text);
	free(text);
	unlink(victim);
}

/*
 * Stale pages: listed as such; `--clean PID` removes them (and nothing
 * else); the next publisher of the same user removes those not modified
 * for 10 s, of its own uid, regular files only.
 */
static void test_stale(void **state)
{
	uint64_t start;
	char path[64], line[96];
	struct run r;
	pid_t dead = dead_pid(&start);
	craft_st(dead, start, 1, one_name);
	/* The listing: stale, status 0 (nothing refused on this account).
	 * (Were the pid recycled meanwhile, by another program's forks, the
	 * reason would read "the pid is another process's now".) */
	run_tool(&r, NULL);
	snprintf(line, sizeof(line), "\n%7d %6s (stale: ", (int)dead, "-");
	if (!strstr(r.out, line))
		fail_msg("no stale line for %d: %s", (int)dead, r.out);
	run_free(&r);
	run_tool(&r, pid_str(dead), NULL);
	expect_refusal(&r, "stale");
	run_free(&r);
	/* --clean PID removes it, and says so. */
	run_tool(&r, "--clean", pid_str(dead), NULL);
	assert_int_equal(r.status, 0);
	snprintf(line, sizeof(line), "removed /dev/shm/libsheaf.%d: stale (its ", (int)dead);
	if (strncmp(r.out, line, strlen(line)) != 0 || strchr(r.out, '\n') !=
	    r.out + strlen(r.out) - 1)
		fail_msg("--clean %d: '%s'", (int)dead, r.out);
	run_free(&r);
	assert_false(exists(shm_path(dead, path, sizeof(path))));
	uncraft();

	/* A live process's valid page is not stale: kept, status 1. */
	pid_t me = getpid();
	craft(me, 1, one_name);
	run_tool(&r, "--clean", pid_str(me), NULL);
	expect_refusal(&r, "not stale");
	assert_true(exists(cp.path));
	run_free(&r);
	uncraft();

	/* A recycled pid: the start time differs. */
	pid_t s = sleeper();
	craft(s, 1, one_name);
	cp.h->start_time += 12345;
	run_tool(&r, "--clean", pid_str(s), NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "stale (its pid is another process's now)"));
	run_free(&r);
	assert_false(exists(cp.path));
	uncraft();

	/* The next publisher: an old stale page of ours goes; a young one,
	 * another user's and a link stay. */
	uint64_t s2, s3, s4;
	(void)s4;
	pid_t old = dead_pid(&start), young = dead_pid(&s2);
	pid_t foreign = dead_pid(&s3), linked = dead_pid(&s4);
	char p_old[64], p_young[64], p_foreign[64], p_link[64];
	craft_st(old, start, 1, one_name);
	release();      /* the file stays */
	set_mtime_ago(shm_path(old, p_old, sizeof(p_old)), 3600);
	craft_st(young, s2, 1, one_name);
	release();
	shm_path(young, p_young, sizeof(p_young));
	shm_path(linked, p_link, sizeof(p_link));
	remember_path(p_link);
	assert_int_equal(symlink(p_young, p_link), 0);
	set_mtime_ago(p_link, 3600);
	shm_path(foreign, p_foreign, sizeof(p_foreign));
	if (geteuid() == 0) {
		craft_st(foreign, s3, 1, one_name);
		assert_int_equal(fchown(cp.fd, 65534, 65534), 0);
		release();
		set_mtime_ago(p_foreign, 3600);
	}
	FILE *in;
	pid_t pub = start_publisher_over(NULL, &in);
	assert_false(exists(p_old));
	assert_true(exists(p_young));
	assert_true(exists(p_link));
	if (geteuid() == 0)
		assert_true(exists(p_foreign));
	end_publisher(pub, in);
	unlink(p_young);
	unlink(p_link);
	unlink(p_foreign);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s SHEAFINFO INFO_TARGET\n", argv[0]);
		return 2;
	}
	sheafinfo = argv[1];
	target = argv[2];
	/* HOSTILE_TEST=test_stale: that test only (cmocka's glob). */
	if (getenv("HOSTILE_TEST"))
		cmocka_set_test_filter(getenv("HOSTILE_TEST"));
	/* Writes to a sheafinfo that died must not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_size_growth, cleanup),
		cmocka_unit_test_teardown(test_truncate_watch, cleanup),
		cmocka_unit_test_teardown(test_huge_sparse, cleanup),
		cmocka_unit_test_teardown(test_wrong_owner, cleanup),
		cmocka_unit_test_teardown(test_no_start_time, cleanup),
		cmocka_unit_test_teardown(test_odd_sequence, cleanup),
		cmocka_unit_test_teardown(test_bad_capacity, cleanup),
		cmocka_unit_test_teardown(test_control_chars, cleanup),
		cmocka_unit_test_teardown(test_link_and_fifo, cleanup),
		cmocka_unit_test_teardown(test_publisher_planted, cleanup),
		cmocka_unit_test_teardown(test_stale, cleanup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
