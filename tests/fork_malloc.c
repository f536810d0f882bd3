/* SPDX-License-Identifier: MIT */
/*
 * fork_malloc.c - fork() while other threads hold libsheaf-malloc's locks
 * (run under LD_PRELOAD=libsheaf-malloc.so; exits 77 when the process's
 * malloc is not libsheaf's).
 *
 * Two cases, each forking FORK_ITERS times (default 1000) while
 * background threads run:
 *   malloc_trim   kmalloc_runs.c's drain_lock: one thread loops on
 *                 malloc_trim(0), which empties the per-CPU caches of 16-64
 *                 KiB runs under that lock (the run caches exist in rseq
 *                 mode only; in fallback mode it still takes the lock, and
 *                 shrinks every kmalloc cache with sheaves), while two
 *                 threads malloc and free 16-64 KiB and small blocks so
 *                 that the run caches hold runs;
 *   malloc_free   the kmalloc caches' per-slot sheaf locks: three threads
 *                 malloc batches of small blocks and free them.
 * Each child (alarm(60) as a backstop) mallocs and frees small, 16-64 KiB,
 * 1 MiB and 6 MiB blocks, calls malloc_trim(0), forks once more (the
 * grandchild mallocs, frees and exits) and _exit(0)s.  The parent reaps
 * each child with a 20 s deadline; a child still running then is killed
 * and the run fails with "child hung after fork N while <path>" and the
 * step the child was at.  A lock inherited held hangs the child in
 * malloc_trim() or in its own fork().
 *
 * Usage: fork_malloc [case]   (FORK_ITERS: forks per case)
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define DEFAULT_ITERS 1000
#define HANG_SECONDS 20
#define NESTED_HANG_SECONDS 15
#define CHILD_ALARM 60
#define MAX_BG 3
#define LIVE 32

enum step {
	ST_FORKED, ST_SMALL, ST_LARGE, ST_HUGE, ST_TRIM, ST_NESTED_FORK,
	ST_NESTED_WAIT, ST_DONE, ST_NR
};

static const char *const step_name[ST_NR] = {
	[ST_FORKED] = "after fork() (postfork handler)",
	[ST_SMALL] = "malloc/free 8..8192",
	[ST_LARGE] = "malloc/free 16-64 KiB and 1 MiB",
	[ST_HUGE] = "malloc/free 6 MiB",
	[ST_TRIM] = "malloc_trim(0)",
	[ST_NESTED_FORK] = "nested fork()",
	[ST_NESTED_WAIT] = "waiting for the grandchild",
	[ST_DONE] = "_exit",
};

enum {
	EX_ALLOC = 2, EX_NESTED_FORK = 3, EX_GRANDCHILD = 4, EX_GRANDCHILD_HUNG = 5,
};

struct progress {
	_Atomic int step;
};
static struct progress *prog;

struct fork_case {
	const char *name;
	const char *path;
	unsigned int nthreads;
	bool trim;		/* thread 0 loops on malloc_trim(0) */
};

static const struct fork_case cases[] = {
	{ "malloc_trim", "malloc_trim(0) in a loop while 2 threads malloc/free "
	  "16-64 KiB blocks (drain_lock)", 3, true },
	{ "malloc_free", "3 threads malloc batches of small blocks and free them "
	  "(kmalloc caches' sheaf slots)", 3, false },
};

struct bg {
	unsigned int id;
	uint64_t rng;
	atomic_ulong ops;
	bool trim;		/* loops on malloc_trim(0) */
	bool large;		/* replaces blocks, mostly 16-64 KiB */
};

static atomic_bool bg_stop;

#define NEED(x)                                                                \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "fork_malloc: %s:%d: %s failed\n",     \
				__FILE__, __LINE__, #x);                       \
			abort();                                               \
		}                                                              \
	} while (0)

/* ================================================================ child */

static void *must(void *p)
{
	if (!p)
		_exit(EX_ALLOC);
	return p;
}

static void touch_free(size_t n)
{
	char *p = must(malloc(n));
	p[0] = p[n - 1] = 1;
	free(p);
}

static void set_step(int s)
{
	atomic_store_explicit(&prog->step, s, memory_order_relaxed);
}

static _Noreturn void child(void)
{
	signal(SIGALRM, SIG_DFL);
	alarm(CHILD_ALARM);
	set_step(ST_SMALL);
	for (size_t n = 8; n <= 8192; n *= 2)
		touch_free(n);
	set_step(ST_LARGE);
	for (size_t n = 16 << 10; n <= 64 << 10; n += 8 << 10)
		touch_free(n);
	touch_free(1 << 20);
	set_step(ST_HUGE);
	touch_free(6 << 20);
	set_step(ST_TRIM);
	malloc_trim(0);
	set_step(ST_NESTED_FORK);
	pid_t pid = fork();
	if (pid < 0)
		_exit(EX_NESTED_FORK);
	if (pid == 0) {
		alarm(CHILD_ALARM);
		touch_free(100);
		touch_free(40000);
		_exit(0);
	}
	set_step(ST_NESTED_WAIT);
	int status;
	if (!reap_deadline(pid, &status, NESTED_HANG_SECONDS))
		_exit(EX_GRANDCHILD_HUNG);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		_exit(EX_GRANDCHILD);
	set_step(ST_DONE);
	_exit(0);
}

/* =================================================== background threads */

/* At nice 10: children get a CPU at once on small machines (see
 * test_fork.c); the threads still run on every CPU left idle. */
static void *bg_main(void *arg)
{
	struct bg *b = arg;
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	char *live[LIVE] = { 0 };
	char *batch[128];
	while (!atomic_load_explicit(&bg_stop, memory_order_relaxed)) {
		uint64_t r = rng_next(&b->rng);
		if (b->trim) {
			malloc_trim(0);
			atomic_fetch_add_explicit(&b->ops, 1, memory_order_relaxed);
			continue;
		}
		if (!b->large) {
			/* A batch, then its frees: in a fork's prefork window the
			 * frees keep trying the slot locks (a failed malloc
			 * would wait for the node lock instead). */
			unsigned int n = 1 + (unsigned int)(r % 128);
			for (unsigned int i = 0; i < n; i++) {
				size_t sz = 8 + (size_t)((r >> (i % 40)) % 1024);
				NEED((batch[i] = malloc(sz)));
				batch[i][0] = 1;
			}
			for (unsigned int i = 0; i < n; i++)
				free(batch[i]);
			atomic_fetch_add_explicit(&b->ops, 2 * n, memory_order_relaxed);
			continue;
		}
		/* Replace a random block: 3 in 4 of 16-64 KiB (page runs, and
		 * the run caches in rseq mode), else small. */
		unsigned int i = (unsigned int)(r % LIVE);
		free(live[i]);
		size_t n;
		if ((r >> 9) % 4 != 0)
			n = (16u << 10) + (size_t)((r >> 16) % (48u << 10));
		else
			n = 8 + (size_t)((r >> 16) % 1024);
		live[i] = malloc(n);
		NEED(live[i]);
		live[i][0] = live[i][n - 1] = 1;
		atomic_fetch_add_explicit(&b->ops, 1, memory_order_relaxed);
	}
	for (int i = 0; i < LIVE; i++)
		free(live[i]);
	return NULL;
}

/* =============================================================== parent */

static const char *exit_text(int code)
{
	switch (code) {
	case EX_ALLOC: return "a malloc failed";
	case EX_NESTED_FORK: return "the nested fork() failed";
	case EX_GRANDCHILD: return "the grandchild failed";
	case EX_GRANDCHILD_HUNG: return "the grandchild hung";
	default: return "?";
	}
}

static const char *where(void)
{
	int s = atomic_load(&prog->step);
	return s >= 0 && s < ST_NR ? step_name[s] : "?";
}

static bool fork_once(const struct fork_case *fc, unsigned long n, char *why,
		      size_t len)
{
	atomic_store(&prog->step, ST_FORKED);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, len, "fork %lu failed: %s", n, strerror(errno));
		return false;
	}
	if (pid == 0)
		child();
	int status;
	if (!reap_deadline(pid, &status, HANG_SECONDS)) {
		snprintf(why, len, "child hung after fork %lu while %s (killed after "
			 "%d s; the child was at: %s)", n, fc->path, HANG_SECONDS, where());
		return false;
	}
	if (status == -1)
		snprintf(why, len, "fork %lu: waitpid: %s", n, strerror(errno));
	else if (WIFSIGNALED(status))
		snprintf(why, len, "child of fork %lu while %s killed by signal %d "
			 "(%s) at: %s", n, fc->path, WTERMSIG(status),
			 strsignal(WTERMSIG(status)), where());
	else if (WEXITSTATUS(status) != 0)
		snprintf(why, len, "child of fork %lu while %s exited %d (%s) at: %s",
			 n, fc->path, WEXITSTATUS(status), exit_text(WEXITSTATUS(status)),
			 where());
	else
		return true;
	return false;
}

static bool run_case(const struct fork_case *fc, const char *mode)
{
	static struct bg bgs[MAX_BG];
	pthread_t t[MAX_BG];
	char why[512] = "";
	unsigned long iters = env_ulong("FORK_ITERS", DEFAULT_ITERS), n = 0;

	atomic_store(&bg_stop, false);
	for (unsigned int i = 0; i < fc->nthreads; i++) {
		bgs[i].id = i;
		bgs[i].rng = 0x9e3779b97f4a7c15ull * (i + 1) + (uint64_t)getpid();
		bgs[i].trim = fc->trim && i == 0;
		bgs[i].large = fc->trim && i > 0;
		atomic_store(&bgs[i].ops, 0);
		NEED(pthread_create(&t[i], NULL, bg_main, &bgs[i]) == 0);
	}
	double t0 = now_s();
	for (unsigned int i = 0; i < fc->nthreads; i++)
		while (atomic_load(&bgs[i].ops) == 0 && now_s() < t0 + 10)
			usleep(100);

	fflush(stdout);
	fflush(stderr);
	double start = now_s();
	while (n < iters && fork_once(fc, n + 1, why, sizeof(why)))
		n++;
	double secs = now_s() - start;

	atomic_store(&bg_stop, true);
	unsigned long ops = 0;
	for (unsigned int i = 0; i < fc->nthreads; i++) {
		pthread_join(t[i], NULL);
		ops += atomic_load(&bgs[i].ops);
	}
	printf("fork_malloc: %-12s %s mode, %lu/%lu forks in %.1f s, %lu background "
	       "operations: %s\n", fc->name, mode, n, iters, secs, ops,
	       why[0] ? "FAILED" : "ok");
	if (why[0])
		printf("fork_malloc: %s: FAIL: %s\n", fc->name, why);
	fflush(stdout);
	return !why[0];
}

int main(int argc, char **argv)
{
	/* libsheaf-malloc exports the library's API; glibc does not. */
	const char *(*percpu_mode)(void) =
		(const char *(*)(void))dlsym(RTLD_DEFAULT, "sheaf_percpu_mode");
	if (!percpu_mode || !dlsym(RTLD_DEFAULT, "__kmem_cache_create_args")) {
		printf("fork_malloc: skipped: malloc is not libsheaf-malloc "
		       "(run with LD_PRELOAD=libsheaf-malloc.so)\n");
		return 77;
	}
	prog = mmap(NULL, sizeof(*prog), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (prog == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	const char *mode = percpu_mode();
	int failed = 0, ran = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		ran++;
		failed += !run_case(&cases[i], mode);
	}
	if (!ran) {
		fprintf(stderr, "fork_malloc: no case %s\n", argv[1]);
		return 2;
	}
	printf("fork_malloc: %d of %d cases failed\n", failed, ran);
	return failed ? 1 : 0;
}
