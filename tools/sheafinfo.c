/* SPDX-License-Identifier: MIT */
/*
 * sheafinfo - the caches of a running libsheaf process, in the spirit of
 * the kernel's slabinfo.
 *
 *   sheafinfo [-a] [-s KEY] [--json] [-w [SECONDS]] [PID]
 *   sheafinfo --clean [PID...]
 *
 * Reads the page the process publishes when started with SHEAF_STATS=1
 * (<sheaf/info.h>), after asking its publisher for a fresh snapshot.
 * Without PID: the processes that publish.  --clean removes stale pages.
 * Every error or refusal is one line on stderr and exit status 1 (2 for a
 * usage error).
 *
 * The page is untrusted input: any local user can create a file named
 * /dev/shm/libsheaf.<pid> (docs/STATS.md, "Threat model").  It is opened
 * without following links and without blocking (O_NOFOLLOW, O_NONBLOCK),
 * must be a regular file of at most SHEAF_INFO_PAGE_MAX bytes owned by the
 * process's user (the owner of /proc/PID) or root, is copied with pread()
 * into a buffer of ours and validated by sheaf_info_parse() before use;
 * start time from /proc.  The shared mapping is never read or written by
 * this program: it only gives the futex words' addresses to the kernel,
 * which answers EFAULT (not SIGBUS) when the file was truncated.
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
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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

#include "info_page.h"

#define ANSWER_TIMEOUT_MS 5000  /* generous: a publisher answers in microseconds */
#define STABLE_WAIT_MS 200      /* for a copy with an even, unchanged seq */

static const char *prog = "sheafinfo";
static int shm_dir = -1;        /* /dev/shm */

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [-a] [-s KEY] [--json] [-w [SECONDS]] [PID]\n"
		"       %s --clean [PID...]\n"
		"  PID          the process to show; without it, the processes that publish\n"
		"  -a, --all    also internal caches and caches never used\n"
		"  -s KEY       sort by KEY (largest first): %s\n"
		"  --json       JSON instead of the table\n"
		"  -w [SECONDS] redraw every SECONDS (default 1) until the process exits\n"
		"  --clean      remove the stale pages (their process exited) you may remove,\n"
		"               or those of the PIDs given; one line per page\n"
		"The process must run with SHEAF_STATS=1 (or SHEAF_STATS=exit).\n",
		prog, prog, sheaf_info_sort_keys);
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

/* What page_open() and the reads found; anything but P_OK has pg->msg. */
enum pstate {
	P_OK,
	P_NOPAGE,    /* no page: no such process, or it does not publish */
	P_DENIED,    /* cannot open it: another user's */
	P_STALE,     /* its process exited, or the pid is another process's now */
	P_FOREIGN,   /* another format: another libsheaf, or not libsheaf's */
	P_REFUSED,   /* untrustworthy: link, FIFO, size, owner, contents */
	P_BUSY,      /* no stable snapshot in STABLE_WAIT_MS */
	P_EXITED,    /* the process exited while we waited for its answer */
	P_ERROR,     /* the publisher did not answer, out of memory, ... */
};

struct page {
	pid_t pid;
	char name[32];                  /* libsheaf.PID, under /dev/shm */
	int fd;
	uid_t uid;                      /* the process's, from /proc/PID */
	uint64_t start_time;            /* the process's, from /proc/PID/stat */
	struct sheaf_info_header *map;  /* the futex words' addresses, never dereferenced */
	struct sheaf_info_header *copy; /* SHEAF_INFO_PAGE_MAX bytes of ours */
	size_t len;                     /* bytes in copy, validated */
	bool seen;                      /* a valid copy was read before */
	char msg[512];
};

static enum pstate say(struct page *pg, enum pstate st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum pstate say(struct page *pg, enum pstate st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pg->msg, sizeof(pg->msg), fmt, ap);
	va_end(ap);
	return st;
}

/* n bytes at off of the page; false when the file is shorter (truncated). */
static bool read_at(struct page *pg, void *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(pg->fd, (char *)buf + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		done += (size_t)r;
	}
	return true;
}

static bool read_word(struct page *pg, size_t off, uint32_t *v)
{
	return read_at(pg, v, sizeof(*v), (off_t)off);
}

/* The descriptor's file: still a regular file of a page's size and owner. */
static enum pstate check_file(struct page *pg, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return say(pg, P_REFUSED, "/dev/shm/%s is not a regular file (mode %#o): "
			   "refused", pg->name, (unsigned int)st->st_mode);
	if ((uint64_t)st->st_size > SHEAF_INFO_PAGE_MAX)
		return say(pg, P_REFUSED, "/dev/shm/%s: %lld bytes, more than a statistics "
			   "page may have (%zu): refused", pg->name,
			   (long long)st->st_size, (size_t)SHEAF_INFO_PAGE_MAX);
	if ((size_t)st->st_size < sizeof(struct sheaf_info_header)) {
		if (pg->seen)
			return say(pg, P_REFUSED, "/dev/shm/%s was truncated to %lld bytes: "
				   "refused", pg->name, (long long)st->st_size);
		return say(pg, P_REFUSED, "/dev/shm/%s is not a libsheaf statistics page "
			   "(%lld bytes): refused", pg->name, (long long)st->st_size);
	}
	if (st->st_uid != pg->uid && st->st_uid != 0)
		return say(pg, P_REFUSED, "/dev/shm/%s belongs to uid %u, but process %d "
			   "runs as uid %u: refused (only the process's user or root may "
			   "write its page)", pg->name, (unsigned int)st->st_uid,
			   (int)pg->pid, (unsigned int)pg->uid);
	return P_OK;
}

/*
 * A consistent, validated copy of the page in pg->copy: pread() the whole
 * file between two reads of an even, unchanged seq, then sheaf_info_parse()
 * and the checks against /proc.  Retries for STABLE_WAIT_MS at most.
 */
static enum pstate page_read(struct page *pg)
{
	uint64_t deadline = now_ms() + STABLE_WAIT_MS;
	const size_t seq_off = offsetof(struct sheaf_info_header, seq);
	char why[256];
	for (;;) {
		struct stat st;
		if (fstat(pg->fd, &st) != 0)
			return say(pg, P_ERROR, "/dev/shm/%s: %s", pg->name, strerror(errno));
		enum pstate r = check_file(pg, &st);
		if (r != P_OK)
			return r;
		size_t size = (size_t)st.st_size;
		uint32_t s1, s2;
		/* A short read: the file shrank meanwhile; fstat() again. */
		if (read_word(pg, seq_off, &s1) && !(s1 & 1) &&
		    read_at(pg, pg->copy, size, 0) && read_word(pg, seq_off, &s2) &&
		    s2 == s1 && pg->copy->seq == s1) {
			switch (sheaf_info_parse(pg->copy, size, why, sizeof(why))) {
			case SHEAF_INFO_VALID:
				break;
			case SHEAF_INFO_FOREIGN:
				return say(pg, P_FOREIGN, "process %d publishes statistics in "
					   "another format (%s; sheafinfo reads magic %#llx "
					   "version %u): use the sheafinfo of its libsheaf",
					   (int)pg->pid, why,
					   (unsigned long long)SHEAF_INFO_MAGIC,
					   SHEAF_INFO_VERSION);
			case SHEAF_INFO_BUSY:
				goto again;
			case SHEAF_INFO_INVALID:
				return say(pg, P_REFUSED, "/dev/shm/%s: invalid page (%s): "
					   "refused", pg->name, why);
			}
			pg->len = size;
			if (pg->copy->pid != pg->pid)
				return say(pg, P_REFUSED, "/dev/shm/%s names process %d, not "
					   "%d: refused", pg->name, pg->copy->pid, (int)pg->pid);
			if (pg->copy->start_time != pg->start_time)
				return say(pg, P_STALE, "stale /dev/shm/%s: pid %d now belongs "
					   "to another process (sheafinfo --clean removes it)",
					   pg->name, (int)pg->pid);
			pg->seen = true;
			return P_OK;
		}
again:
		if (now_ms() >= deadline)
			return say(pg, P_BUSY, "page %d: no stable snapshot in %d ms (its "
				   "sequence count stays odd or keeps changing): refused",
				   (int)pg->pid, STABLE_WAIT_MS);
		struct timespec ts = { 0, 1000000L };
		nanosleep(&ts, NULL);
	}
}

static void page_close(struct page *pg)
{
	if (pg->map)
		munmap(pg->map, sizeof(struct sheaf_info_header));
	if (pg->fd >= 0)
		close(pg->fd);
	free(pg->copy);
	pg->map = NULL;
	pg->copy = NULL;
	pg->fd = -1;
}

/*
 * Open, check and copy the page of pid.  P_OK: pg holds a validated copy;
 * else pg->msg says why (the caller prints it, or not) and pg is closed.
 */
static enum pstate page_open(pid_t pid, struct page *pg)
{
	memset(pg, 0, sizeof(*pg));
	pg->fd = -1;
	pg->pid = pid;
	snprintf(pg->name, sizeof(pg->name), "libsheaf.%d", (int)pid);
	enum pstate r = P_OK;
	pg->fd = openat(shm_dir, pg->name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (pg->fd < 0) {
		int e = errno;
		if (e == ENOENT && !alive(pid))
			r = say(pg, P_NOPAGE, "no process with pid %d", (int)pid);
		else if (e == ENOENT)
			r = say(pg, P_NOPAGE, "process %d does not publish libsheaf statistics "
				"(start it with SHEAF_STATS=1)", (int)pid);
		else if (e == EACCES)
			r = say(pg, P_DENIED, "/dev/shm/%s: permission denied (a process of "
				"another user?)", pg->name);
		else if (e == ELOOP)
			r = say(pg, P_REFUSED, "/dev/shm/%s is a symbolic link: refused",
				pg->name);
		else
			r = say(pg, P_REFUSED, "/dev/shm/%s: %s: refused", pg->name, strerror(e));
		goto out;
	}
	struct stat st;
	if (fstat(pg->fd, &st) != 0) {
		r = say(pg, P_ERROR, "/dev/shm/%s: %s", pg->name, strerror(errno));
		goto out;
	}
	/* The owner is not known yet: accept it for this first look. */
	pg->uid = st.st_uid;
	if ((r = check_file(pg, &st)) != P_OK)
		goto out;
	int err = sheaf_info_proc(pid, &pg->uid, &pg->start_time);
	if (err == -ESRCH) {
		r = say(pg, P_STALE, "stale /dev/shm/%s: process %d has exited "
			"(sheafinfo --clean removes it)", pg->name, (int)pid);
		goto out;
	}
	if (err) {
		r = say(pg, P_ERROR, "/proc/%d: %s", (int)pid, strerror(-err));
		goto out;
	}
	pg->copy = malloc(SHEAF_INFO_PAGE_MAX);
	if (!pg->copy) {
		r = say(pg, P_ERROR, "out of memory");
		goto out;
	}
	if ((r = page_read(pg)) != P_OK)
		goto out;
	/* For the futex words only (page_refresh()). */
	void *p = mmap(NULL, sizeof(struct sheaf_info_header), PROT_READ | PROT_WRITE,
		       MAP_SHARED, pg->fd, 0);
	if (p == MAP_FAILED) {
		r = say(pg, P_ERROR, "/dev/shm/%s: %s", pg->name, strerror(errno));
		goto out;
	}
	pg->map = p;
out:
	if (r != P_OK)
		page_close(pg);
	return r;
}

/*
 * Ask the publisher for a snapshot and wait until it answered.  The
 * request word is incremented by the kernel (FUTEX_WAKE_OP, which also
 * wakes the publisher) and every word is read with pread(): a truncated
 * file is an EFAULT or a short read here, never a SIGBUS.
 */
static enum pstate page_refresh(struct page *pg)
{
	uint32_t *req = &pg->map->request, *ans = &pg->map->answered;
	uint32_t mine, a, flags;
	if (syscall(SYS_futex, req, FUTEX_WAKE_OP, INT_MAX, (unsigned long)INT_MAX, req,
		    FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0)) < 0 ||
	    !read_word(pg, offsetof(struct sheaf_info_header, request), &mine))
		goto truncated;
	/* A value read after our increment: a snapshot that answers it was
	 * started after we asked. */
	uint64_t deadline = now_ms() + ANSWER_TIMEOUT_MS;
	for (;;) {
		if (!read_word(pg, offsetof(struct sheaf_info_header, answered), &a) ||
		    !read_word(pg, offsetof(struct sheaf_info_header, flags), &flags))
			goto truncated;
		if ((int32_t)(a - mine) >= 0)
			return P_OK;
		if ((flags & SHEAF_INFO_P_EXITED) || !alive(pg->pid))
			return P_EXITED;
		if (now_ms() >= deadline)
			return say(pg, P_ERROR, "process %d did not answer within %d s (stopped, "
				   "or its publisher thread is stuck)", (int)pg->pid,
				   ANSWER_TIMEOUT_MS / 1000);
		struct timespec ts = { 0, 100 * 1000000L };
		if (futex(ans, FUTEX_WAIT, a, &ts) < 0 && errno == EFAULT)
			goto truncated;
	}
truncated: ;
	struct stat st;
	if (fstat(pg->fd, &st) == 0 && check_file(pg, &st) != P_OK)
		return P_REFUSED;
	return say(pg, P_REFUSED, "/dev/shm/%s was truncated: refused", pg->name);
}

static int show_once(struct page *pg, unsigned int flags, const char *sort)
{
	enum pstate r = page_refresh(pg);
	if (r == P_EXITED) {
		fprintf(stderr, "%s: process %d exited\n", prog, (int)pg->pid);
		return 1;
	}
	if (r == P_OK)
		r = page_read(pg);
	if (r != P_OK) {
		fprintf(stderr, "%s: %s\n", prog, pg->msg);
		return 1;
	}
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
		enum pstate r = page_refresh(pg);
		if (r == P_EXITED) {
			printf("process %d exited\n", (int)pg->pid);
			return 0;
		}
		if (r == P_OK)
			r = page_read(pg);
		if (r != P_OK) {
			fflush(stdout);
			fprintf(stderr, "%s: %s\n", prog, pg->msg);
			return 1;
		}
		if (!(flags & SHEAF_INFO_JSON))
			fputs("\033[H\033[2J", stdout);
		sheaf_info_print(stdout, pg->copy, flags, sort);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}

/* /proc/PID/comm, escaped (a process names itself: prctl(PR_SET_NAME)). */
static void print_comm(pid_t pid)
{
	char comm[64] = "?", path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	sheaf_info_put_escaped(stdout, comm, sizeof(comm), 0);
	putchar('\n');
}

/*
 * No PID: every process that publishes.  A stale page, another user's
 * and another format's are listed as such; a refused page is listed as
 * refused and its reason goes to stderr (exit status 1).
 */
static int list_publishers(void)
{
	DIR *d = fdopendir(dup(shm_dir));
	struct dirent *e;
	int found = 0, rc = 0;
	if (!d) {
		fprintf(stderr, "%s: /dev/shm: %s\n", prog, strerror(errno));
		return 1;
	}
	while ((e = readdir(d))) {
		pid_t pid = sheaf_info_name_pid(e->d_name);
		if (!pid)
			continue;
		struct page pg;
		enum pstate r = page_open(pid, &pg);
		if (r == P_NOPAGE)
			continue;       /* gone since readdir() */
		if (!found++)
			printf("%7s %6s %s\n", "PID", "Caches", "Command");
		switch (r) {
		case P_OK:
			printf("%7d %6u ", (int)pid, pg.copy->total_caches);
			print_comm(pid);
			page_close(&pg);
			break;
		case P_STALE:
			printf("%7d %6s (stale: %s; sheafinfo --clean removes it)\n", (int)pid,
			       "-", strstr(pg.msg, "has exited") ? "the process exited" :
			       "the pid is another process's now");
			break;
		case P_DENIED:
			printf("%7d %6s (another user's page: permission denied)\n", (int)pid, "-");
			break;
		case P_FOREIGN:
			printf("%7d %6s (another format: sheafinfo %d says which)\n", (int)pid,
			       "-", (int)pid);
			break;
		default:
			printf("%7d %6s (refused)\n", (int)pid, "-");
			fflush(stdout);
			fprintf(stderr, "%s: %s\n", prog, pg.msg);
			rc = 1;
			break;
		}
	}
	closedir(d);
	if (!found) {
		fprintf(stderr, "%s: no process publishes libsheaf statistics "
			"(start one with SHEAF_STATS=1)\n", prog);
		return 1;
	}
	return rc;
}

/*
 * --clean: remove stale pages.  pid 0: every stale page the caller may
 * remove (another user's stale page is reported and kept: /dev/shm is
 * sticky); else that pid's page, and anything but a stale page removed is
 * an error.  0 or 1 (an error).
 */
static int clean_one(pid_t pid, bool explicit, int *removed)
{
	char name[32];
	struct stat st;
	snprintf(name, sizeof(name), "libsheaf.%d", (int)pid);
	if (explicit && fstatat(shm_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		fprintf(stderr, "%s: /dev/shm/%s: %s\n", prog, name, strerror(errno));
		return 1;
	}
	enum sheaf_info_staleness s = sheaf_info_stale(shm_dir, name, pid, &st);
	if (s == SHEAF_INFO_LIVE || s == SHEAF_INFO_NOT_PAGE) {
		if (explicit)
			fprintf(stderr, "%s: /dev/shm/%s: %s: kept\n", prog, name,
				s == SHEAF_INFO_LIVE ? "not stale (its process runs)" :
				"not a regular file");
		return explicit;
	}
	const char *why = s == SHEAF_INFO_DEAD ? "its process exited" :
			  "its pid is another process's now";
	if (geteuid() != 0 && st.st_uid != geteuid()) {
		if (explicit) {
			fprintf(stderr, "%s: /dev/shm/%s: stale (%s), but uid %u's: only "
				"that user or root may remove it\n", prog, name, why,
				(unsigned int)st.st_uid);
			return 1;
		}
		printf("kept /dev/shm/%s: stale (%s), but uid %u's\n", name, why,
		       (unsigned int)st.st_uid);
		return 0;
	}
	if (unlinkat(shm_dir, name, 0) != 0) {
		if (errno == ENOENT && !explicit)
			return 0;       /* someone else removed it meanwhile */
		fprintf(stderr, "%s: cannot remove /dev/shm/%s: %s\n", prog, name,
			strerror(errno));
		return 1;
	}
	printf("removed /dev/shm/%s: stale (%s)\n", name, why);
	(*removed)++;
	return 0;
}

static int clean(char **pids, int npids)
{
	int rc = 0, removed = 0;
	if (npids) {
		for (int i = 0; i < npids; i++) {
			char *end;
			errno = 0;
			long v = strtol(pids[i], &end, 10);
			if (errno || *end || end == pids[i] || v <= 0 || v > INT_MAX) {
				fprintf(stderr, "%s: '%s' is not a process id\n", prog, pids[i]);
				return 2;
			}
		}
		for (int i = 0; i < npids; i++)
			rc |= clean_one((pid_t)strtol(pids[i], NULL, 10), true, &removed);
		return rc;
	}
	DIR *d = fdopendir(dup(shm_dir));
	struct dirent *e;
	if (!d) {
		fprintf(stderr, "%s: /dev/shm: %s\n", prog, strerror(errno));
		return 1;
	}
	while ((e = readdir(d))) {
		pid_t pid = sheaf_info_name_pid(e->d_name);
		if (pid)
			rc |= clean_one(pid, false, &removed);
	}
	closedir(d);
	if (!removed && !rc)
		printf("no stale libsheaf page to remove\n");
	return rc;
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
	bool clean_mode = argc > 1 && !strcmp(argv[1], "--clean");

	for (int i = 1; i < argc && !clean_mode; i++) {
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
		} else if (!strcmp(a, "--clean")) {
			fprintf(stderr, "%s: --clean comes first and takes only PIDs\n", prog);
			usage(stderr);
			return 2;
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
	shm_dir = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (shm_dir < 0) {
		fprintf(stderr, "%s: /dev/shm: %s\n", prog, strerror(errno));
		return 1;
	}
	if (clean_mode)
		return clean(argv + 2, argc - 2);
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
	if (page_open(pid, &pg) != P_OK) {
		fprintf(stderr, "%s: %s\n", prog, pg.msg);
		return 1;
	}
	int r = watch_mode ? watch(&pg, flags, sort, secs) : show_once(&pg, flags, sort);
	page_close(&pg);
	return r;
}
