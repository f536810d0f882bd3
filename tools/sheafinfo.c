/* SPDX-License-Identifier: MIT */
/*
 * sheafinfo - the caches of a running libsheaf process, in the spirit of
 * the kernel's slabinfo.
 *
 *   sheafinfo [-a] [-s KEY] [--json] [-w [SECONDS]] [PID]
 *
 * Reads the page the process publishes when started with SHEAF_STATS=1
 * (<sheaf/info.h>), after asking its publisher for a fresh snapshot.
 * Without PID: the processes that publish.  Every error is one line on
 * stderr and exit status 1 (2 for a usage error).
 *
 * The tool does not link libsheaf (it would run the allocator it
 * inspects, and publish itself under SHEAF_STATS): the table comes from
 * src/info_format.c, compiled in, the formatter the library uses for
 * SHEAF_STATS=exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/info.h>

#define ANSWER_TIMEOUT_MS 5000  /* generous: a publisher answers in microseconds */

static const char *prog = "sheafinfo";

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [-a] [-s KEY] [--json] [-w [SECONDS]] [PID]\n"
		"  PID          the process to show; without it, the processes that publish\n"
		"  -a, --all    also internal caches and caches never used\n"
		"  -s KEY       sort by KEY (largest first): %s\n"
		"  --json       JSON instead of the table\n"
		"  -w [SECONDS] redraw every SECONDS (default 1) until the process exits\n"
		"The process must run with SHEAF_STATS=1 (or SHEAF_STATS=exit).\n",
		prog, sheaf_info_sort_keys);
}

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* 1: alive, 0: no such process. */
static int alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

static bool header_ok(const struct sheaf_info_header *h)
{
	return h->magic == SHEAF_INFO_MAGIC && h->version == SHEAF_INFO_VERSION &&
	       h->header_size == sizeof(*h) &&
	       h->record_size == sizeof(struct sheaf_info_cache) &&
	       h->nr_stats == SHEAF_STAT_NR && h->max_caches <= SHEAF_INFO_MAX_CACHES;
}

struct page {
	pid_t pid;
	struct sheaf_info_header *h;  /* the shared mapping */
	size_t size;
	struct sheaf_info_header *copy; /* consistent snapshot, malloc'd */
};

/*
 * Open and check the page of pid.  On error prints one line and returns
 * false.  `quiet`: no message (the listing).
 */
static bool page_open(pid_t pid, struct page *pg, bool quiet)
{
	char name[64];
	struct stat st;
	snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)pid);
	memset(pg, 0, sizeof(*pg));
	pg->pid = pid;
	int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		if (quiet)
			return false;
		if (e == ENOENT && !alive(pid))
			fprintf(stderr, "%s: no process with pid %d\n", prog, (int)pid);
		else if (e == ENOENT)
			fprintf(stderr, "%s: process %d does not publish libsheaf statistics "
				"(start it with SHEAF_STATS=1)\n", prog, (int)pid);
		else if (e == EACCES)
			fprintf(stderr, "%s: /dev/shm%s: permission denied (a process of "
				"another user?)\n", prog, name);
		else
			fprintf(stderr, "%s: /dev/shm%s: %s\n", prog, name, strerror(e));
		return false;
	}
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(struct sheaf_info_header)) {
		close(fd);
		if (!quiet)
			fprintf(stderr, "%s: /dev/shm%s is not a libsheaf statistics page "
				"(%lld bytes)\n", prog, name, (long long)st.st_size);
		return false;
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		if (!quiet)
			fprintf(stderr, "%s: /dev/shm%s: %s\n", prog, name, strerror(errno));
		return false;
	}
	pg->h = p;
	pg->size = (size_t)st.st_size;
	struct sheaf_info_header *h = pg->h;
	uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
	if (!header_ok(h) || pg->size < h->header_size +
				(size_t)h->max_caches * h->record_size) {
		if (!quiet)
			fprintf(stderr, "%s: process %d publishes statistics in another format "
				"(magic %#llx version %u, sheafinfo reads %#llx version %u): "
				"use the sheafinfo of its libsheaf\n", prog, (int)pid,
				(unsigned long long)magic, h->version,
				(unsigned long long)SHEAF_INFO_MAGIC, SHEAF_INFO_VERSION);
		goto fail;
	}
	if (h->pid != pid) {
		if (!quiet)
			fprintf(stderr, "%s: /dev/shm%s names process %d, not %d\n", prog,
				name, h->pid, (int)pid);
		goto fail;
	}
	if (!alive(pid)) {
		if (!quiet)
			fprintf(stderr, "%s: stale /dev/shm%s: process %d has exited "
				"(the file can be removed)\n", prog, name, (int)pid);
		goto fail;
	}
	uint64_t st_now = sheaf_info_start_time(pid);
	if (st_now && h->start_time && st_now != h->start_time) {
		if (!quiet)
			fprintf(stderr, "%s: stale /dev/shm%s: pid %d now belongs to another "
				"process (the file can be removed)\n", prog, name, (int)pid);
		goto fail;
	}
	pg->copy = malloc(pg->size);
	if (!pg->copy) {
		if (!quiet)
			fprintf(stderr, "%s: out of memory\n", prog);
		goto fail;
	}
	return true;
fail:
	munmap(pg->h, pg->size);
	pg->h = NULL;
	return false;
}

static void page_close(struct page *pg)
{
	if (pg->h)
		munmap(pg->h, pg->size);
	free(pg->copy);
	pg->h = NULL;
	pg->copy = NULL;
}

/*
 * Ask the publisher for a snapshot and wait until it answered.  0, or -1
 * with the message printed (-2: the process exited meanwhile, no message).
 */
static int page_refresh(struct page *pg)
{
	struct sheaf_info_header *h = pg->h;
	uint32_t mine = __atomic_add_fetch(&h->request, 1, __ATOMIC_ACQ_REL);
	futex(&h->request, FUTEX_WAKE, INT_MAX, NULL);
	uint64_t deadline = now_ms() + ANSWER_TIMEOUT_MS;
	for (;;) {
		uint32_t a = __atomic_load_n(&h->answered, __ATOMIC_ACQUIRE);
		if ((int32_t)(a - mine) >= 0)
			return 0;
		if ((__atomic_load_n(&h->flags, __ATOMIC_RELAXED) & SHEAF_INFO_P_EXITED) ||
		    !alive(pg->pid))
			return -2;
		uint64_t t = now_ms();
		if (t >= deadline) {
			fprintf(stderr, "%s: process %d did not answer within %d s (stopped, "
				"or its publisher thread is stuck)\n", prog, (int)pg->pid,
				ANSWER_TIMEOUT_MS / 1000);
			return -1;
		}
		struct timespec ts = { 0, 100 * 1000000L };
		futex(&h->answered, FUTEX_WAIT, a, &ts);
	}
}

/*
 * A consistent copy of the page (seqcount).  False, with the message
 * printed, when it stays half written (the process died while copying a
 * snapshot in).
 */
static bool page_copy(struct page *pg)
{
	struct sheaf_info_header *h = pg->h;
	uint64_t deadline = now_ms() + ANSWER_TIMEOUT_MS;
	for (;;) {
		uint32_t s1 = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
		if (!(s1 & 1)) {
			memcpy(pg->copy, h, pg->size);
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&h->seq, __ATOMIC_RELAXED) == s1)
				return true;
		}
		if (now_ms() >= deadline) {
			fprintf(stderr, "%s: the page of process %d stays half written\n",
				prog, (int)pg->pid);
			return false;
		}
		sched_yield();
	}
}

static int show_once(struct page *pg, unsigned int flags, const char *sort)
{
	int r = page_refresh(pg);
	if (r == -2) {
		fprintf(stderr, "%s: process %d exited\n", prog, (int)pg->pid);
		return 1;
	}
	if (r || !page_copy(pg))
		return 1;
	if (sheaf_info_print(stdout, pg->copy, flags, sort)) {
		fprintf(stderr, "%s: process %d published a page sheafinfo cannot print\n",
			prog, (int)pg->pid);
		return 1;
	}
	fflush(stdout);
	return 0;
}

static int watch(struct page *pg, unsigned int flags, const char *sort, double secs)
{
	struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };
	for (;;) {
		int r = page_refresh(pg);
		if (r == -2) {
			printf("process %d exited\n", (int)pg->pid);
			return 0;
		}
		if (r || !page_copy(pg))
			return 1;
		if (!(flags & SHEAF_INFO_JSON))
			fputs("\033[H\033[2J", stdout);
		sheaf_info_print(stdout, pg->copy, flags, sort);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}

/* No PID: every process that publishes. */
static int list_publishers(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	int found = 0;
	if (!d) {
		fprintf(stderr, "%s: /dev/shm: %s\n", prog, strerror(errno));
		return 1;
	}
	while ((e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, "libsheaf.", 9) != 0)
			continue;
		long pid = strtol(e->d_name + 9, &end, 10);
		if (*end || pid <= 0 || pid > INT_MAX)
			continue;
		struct page pg;
		char comm[64] = "?", path[64];
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		FILE *f = fopen(path, "r");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		if (!found++)
			printf("%7s %6s %s\n", "PID", "Caches", "Command");
		bool ok = false;
		if (page_open((pid_t)pid, &pg, true)) {
			ok = page_copy(&pg);
			if (ok)
				printf("%7ld %6u %s\n", pid, pg.copy->total_caches, comm);
			page_close(&pg);
		}
		if (!ok)
			printf("%7ld %6s (stale, foreign or unreadable: sheafinfo %ld says why)\n",
			       pid, "-", pid);
	}
	closedir(d);
	if (!found) {
		fprintf(stderr, "%s: no process publishes libsheaf statistics "
			"(start one with SHEAF_STATS=1)\n", prog);
		return 1;
	}
	return 0;
}

/* One of the space-separated words of sheaf_info_sort_keys. */
static bool sort_key_ok(const char *key)
{
	size_t n = strlen(key);
	for (const char *k = sheaf_info_sort_keys; *k; ) {
		size_t w = strcspn(k, " ");
		if (w == n && !strncmp(k, key, n))
			return true;
		k += w;
		k += strspn(k, " ");
	}
	return false;
}

static bool parse_pid(const char *s, pid_t *pid)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v <= 0 || v > INT_MAX)
		return false;
	*pid = (pid_t)v;
	return true;
}

static bool parse_secs(const char *s, double *secs)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || end == s || !(v >= 0.1 && v <= 86400))
		return false;
	*secs = v;
	return true;
}

int main(int argc, char **argv)
{
	unsigned int flags = 0;
	const char *sort = NULL;
	const char *pos[2];
	int npos = 0;
	bool watch_mode = false, watch_arg = false;
	double secs = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-a") || !strcmp(a, "--all")) {
			flags |= SHEAF_INFO_ALL;
		} else if (!strcmp(a, "--json")) {
			flags |= SHEAF_INFO_JSON;
		} else if (!strcmp(a, "-s") || !strcmp(a, "--sort")) {
			if (++i == argc) {
				fprintf(stderr, "%s: -s needs a key: %s\n", prog, sheaf_info_sort_keys);
				return 2;
			}
			sort = argv[i];
		} else if (!strncmp(a, "-s", 2)) {
			sort = a + 2;
		} else if (!strcmp(a, "-w") || !strcmp(a, "--watch")) {
			watch_mode = true;
		} else if (!strncmp(a, "-w", 2)) {
			watch_mode = watch_arg = true;
			if (!parse_secs(a + 2, &secs)) {
				fprintf(stderr, "%s: -w: bad interval '%s' (0.1 to 86400 s)\n",
					prog, a + 2);
				return 2;
			}
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "%s: unknown option %s\n", prog, a);
			usage(stderr);
			return 2;
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			usage(stderr);
			return 2;
		}
	}
	/* -w SECONDS PID: two operands, the first is the interval. */
	if (npos == 2) {
		if (!watch_mode || watch_arg || !parse_secs(pos[0], &secs)) {
			usage(stderr);
			return 2;
		}
		pos[0] = pos[1];
		npos = 1;
	}
	if (sort && !sort_key_ok(sort)) {
		fprintf(stderr, "%s: unknown sort key '%s' (%s)\n", prog, sort,
			sheaf_info_sort_keys);
		return 2;
	}
	if (npos == 0) {
		if (watch_mode) {
			fprintf(stderr, "%s: -w needs a PID\n", prog);
			return 2;
		}
		return list_publishers();
	}
	pid_t pid;
	if (!parse_pid(pos[0], &pid)) {
		fprintf(stderr, "%s: '%s' is not a process id\n", prog, pos[0]);
		return 2;
	}
	struct page pg;
	if (!page_open(pid, &pg, false))
		return 1;
	int r = watch_mode ? watch(&pg, flags, sort, secs) : show_once(&pg, flags, sort);
	page_close(&pg);
	return r;
}
