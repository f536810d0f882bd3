/* SPDX-License-Identifier: MIT */
/*
 * test_util.h - helpers shared by the libsheaf tests (not a test itself):
 *  - run a function in a forked child with its stderr captured, to test the
 *    paths that print a report and abort();
 *  - capture this process's own stderr around a call, to check the one-line
 *    messages of bad-argument errors;
 *  - a small deterministic PRNG.
 * Everything here is static so each test program includes it once.
 */
#ifndef SHEAF_TEST_UTIL_H
#define SHEAF_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TU_OUT_MAX 16384

struct child_result {
	int status;             /* as returned by waitpid() */
	size_t len;             /* bytes of stderr captured */
	char err[TU_OUT_MAX];   /* the child's stderr, NUL-terminated */
};

/*
 * Run fn(arg) in a forked child whose stderr goes to a pipe; the child
 * exits with status 0 when fn returns (fn may _exit() with its own code).
 * A child still running after 30 s is killed by SIGALRM, so a hang shows
 * up as a failure instead of stalling the suite.
 */
static inline void run_in_child(void (*fn)(void *), void *arg,
				struct child_result *r)
{
	int fds[2];
	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (pipe(fds) != 0) {
		perror("pipe");
		return;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		signal(SIGABRT, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		alarm(30);
		fn(arg);
		fflush(stderr);
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		ssize_t n;
		if (r->len >= TU_OUT_MAX - 1) {
			char sink[512];
			n = read(fds[0], sink, sizeof(sink));
		} else {
			n = read(fds[0], r->err + r->len, TU_OUT_MAX - 1 - r->len);
			if (n > 0)
				r->len += (size_t)n;
		}
		if (n == 0)
			break;
		if (n < 0 && errno != EINTR)
			break;
	}
	r->err[r->len] = '\0';
	close(fds[0]);
	while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
		;
}

static inline bool child_aborted(const struct child_result *r)
{
	return r->status != -1 && WIFSIGNALED(r->status) &&
	       WTERMSIG(r->status) == SIGABRT;
}

static inline bool child_exited_ok(const struct child_result *r)
{
	return r->status != -1 && WIFEXITED(r->status) &&
	       WEXITSTATUS(r->status) == 0;
}

/* Describe how a child ended, for failure messages. */
static inline const char *child_how(const struct child_result *r, char *buf,
				    size_t n)
{
	if (r->status == -1)
		snprintf(buf, n, "not run");
	else if (WIFSIGNALED(r->status))
		snprintf(buf, n, "killed by signal %d (%s)",
			 WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
	else
		snprintf(buf, n, "exited with status %d",
			 WEXITSTATUS(r->status));
	return buf;
}

/*
 * The address as lowercase hex without "0x" and without leading zeros:
 * found inside "%p", "0x%lx" and "0x%016lx" renderings alike.
 */
static inline const char *addr_hex(const void *p, char *buf, size_t n)
{
	snprintf(buf, n, "%lx", (unsigned long)(uintptr_t)p);
	return buf;
}

/* ---------------------------------------------- in-process stderr capture */

struct err_capture {
	int saved_fd;
	int file_fd;
	char text[TU_OUT_MAX];
	size_t len;
};

static inline void capture_begin(struct err_capture *c)
{
	char path[] = "/tmp/sheaf-test-XXXXXX";
	fflush(stderr);
	c->len = 0;
	c->text[0] = '\0';
	c->file_fd = mkstemp(path);
	if (c->file_fd < 0) {
		perror("mkstemp");
		abort();
	}
	unlink(path);
	c->saved_fd = dup(STDERR_FILENO);
	dup2(c->file_fd, STDERR_FILENO);
}

/* Restores stderr and returns what was written meanwhile. */
static inline const char *capture_end(struct err_capture *c)
{
	fflush(stderr);
	dup2(c->saved_fd, STDERR_FILENO);
	close(c->saved_fd);
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(c->file_fd, c->text + c->len,
				  TU_OUT_MAX - 1 - c->len, off);
		if (n <= 0)
			break;
		c->len += (size_t)n;
		off += n;
		if (c->len >= TU_OUT_MAX - 1)
			break;
	}
	c->text[c->len] = '\0';
	close(c->file_fd);
	return c->text;
}

static inline size_t count_char(const char *s, char ch)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == ch;
	return n;
}

/* ------------------------------------------------------------------ PRNG */

/* xorshift64*: small, fast, deterministic per seed. */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t rng_below(uint64_t *state, uint64_t n)
{
	return n ? rng_next(state) % n : 0;
}

/* Monotonic time in seconds. */
static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A positive integer from the environment, else def. */
static inline unsigned long env_ulong(const char *name, unsigned long def)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	unsigned long x = strtoul(v, &end, 10);
	return *end || !x ? def : x;
}

/*
 * Where a hung process is, on stderr, before it is killed: each thread's
 * name, state and system call (/proc/PID/task/TID/{comm,stat,syscall}: a
 * futex wait shows its address), then every thread's backtrace when gdb
 * is installed (the CI machine may not have it; a developer's usually
 * does).  For a hang that happens once in hundreds of runs, this is all
 * there is to go on.
 */
static inline void dump_hung(pid_t pid)
{
	char path[320], line[512];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	fprintf(stderr, "--- hung process %d: its threads\n", (int)pid);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		static const char *const what[] = { "comm", "wchan", "syscall" };
		fprintf(stderr, "  task %s:", e->d_name);
		for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
			snprintf(path, sizeof(path), "/proc/%d/task/%s/%s",
				 (int)pid, e->d_name, what[i]);
			FILE *f = fopen(path, "r");
			if (!f)
				continue;
			if (fgets(line, sizeof(line), f)) {
				line[strcspn(line, "\n")] = 0;
				fprintf(stderr, " %s=%s", what[i], line);
			}
			fclose(f);
		}
		fputc('\n', stderr);
	}
	closedir(d);
	static const char *const gdbs[] = { "/usr/bin/gdb", "/usr/local/bin/gdb" };
	for (size_t i = 0; i < 2; i++) {
		if (access(gdbs[i], X_OK) != 0)
			continue;
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "%s -q -batch -nx -p %d -ex 'thread "
			 "apply all bt 30' </dev/null 2>&1 | grep -v '^\\[' >&2",
			 gdbs[i], (int)pid);
		fflush(stderr);
		if (system(cmd) != 0)
			fprintf(stderr, "  (gdb failed)\n");
		break;
	}
}

/*
 * Reap child pid with a deadline: waitpid(WNOHANG) with short sleeps
 * (growing from 20 us to 250 us).  Returns true with *status when it ended
 * (*status -1 if it could not be reaped), false (after dump_hung(), SIGKILL
 * and reaping it) when it did not within `seconds`.
 */
static inline bool reap_deadline(pid_t pid, int *status, double seconds)
{
	double end = now_s() + seconds;
	long ns = 20000;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return true;
		if (r < 0 && errno != EINTR) {
			*status = -1;
			return true;
		}
		if (now_s() > end) {
			dump_hung(pid);
			kill(pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			return false;
		}
		struct timespec ts = { 0, ns };
		nanosleep(&ts, NULL);
		if (ns < 250000)
			ns *= 2;
	}
}

#endif /* SHEAF_TEST_UTIL_H */
