/* SPDX-License-Identifier: MIT */
/*
 * mallocbench - libsheaf-malloc against glibc, jemalloc, tcmalloc and
 * mimalloc on server-like workloads, all through malloc()/free().
 *   mallocbench [--quick] [--workload A,B] [--contender A,B] [--reps N]
 *               [--scale X] [--csv PATH]          (--help for details)
 *
 * Contenders: one binary, re-executed per measurement with LD_PRELOAD of
 *   sheaf     libsheaf-malloc.so (this build);
 *   sheaf-fixed  the same with SHEAF_ADAPTIVE=0: the kmalloc caches keep the
 *             kernel's fixed sheaf capacity and barn limit (sheaf lets them
 *             grow with their barn and slab trips, src/pcs_adapt.c);
 *   glibc     nothing (the C library's malloc);
 *   jemalloc, tcmalloc (minimal), mimalloc: the Debian .so.
 * Each child checks that dlsym("malloc") resolves into the expected library.
 *
 * Workloads (each one function below, the same code for every contender):
 *   larson    4 threads, each with 1000 slots: free a random slot's object,
 *             allocate a random size of 8..1000 bytes into it, write it.
 *             Every 2000 operations a thread hands its slot array to a
 *             shared FIFO and takes the oldest one there (filled by another
 *             thread): objects are freed by other threads than their
 *             allocators, as in Larson and Krishnan's server simulation.
 *             More threads than CPUs on purpose.
 *   xmalloc   2 threads, each producing batches of 128 objects (8..512
 *             bytes, written) for the other and freeing the batches it
 *             receives (lock-free single-producer rings): every free is
 *             remote, as in xmalloc-test's producer/consumer pattern.
 *   hot-64-t1, hot-64-t2  malloc(64) + free() at once, 1 and 2 threads
 *             (pinned to distinct CPUs; t1 to the last CPU): the
 *             fixed-size fast path.
 *   mixed     1 thread: a batch of 1000 objects of mixed sizes (70% 8-128,
 *             25% 129-2048, 5% 2049-32768 bytes), each written, freed in a
 *             shuffled order; repeated.
 *   fork      1 thread with 20000 live blocks of the mixed sizes: fork(),
 *             the child mallocs and frees one block and exits, the parent
 *             waits (what shells and make do all the time); ns per fork.
 *   large     1 thread keeping 20 buffers of 5-25 MiB: replace a random
 *             one (free, malloc a new random size, write one byte per 4 KiB
 *             page), 300 times at --scale 1: a program cycling big
 *             buffers, where an allocator that keeps freed mappings reuses
 *             them and one that unmaps them maps and faults them anew;
 *             ns per replacement.
 *   grow      1 thread growing 2 buffers by realloc() in turn, from 1 MiB
 *             to 32 MiB by a quarter at a time (each new part written one
 *             byte per 4 KiB page), then freeing both; 100 rounds at
 *             --scale 1: a program's growing logs or arrays, where an
 *             allocator resizes in place, moves pages or copies; ns per
 *             realloc().
 *   xring     4 threads in a ring (more threads than CPUs on purpose): each
 *             allocates batches of 64 objects of sizes drawn log-uniformly
 *             from 8 bytes to 8 KiB (every size class up to 8 KiB), writes
 *             them and passes each batch to the next thread, which frees
 *             it: cross-thread frees spread over many size classes, the
 *             shape of a server's producer/consumer stages.
 *   fork-mt   fork with a second thread alive (it allocated, then waits):
 *             a threaded program forking, where every allocator takes its
 *             locks around fork() (glibc, and libsheaf, skip them when the
 *             process has one thread).
 * Reported: ns per malloc+free pair (fork: per fork+exit+wait) (larson/xmalloc: wall time over all
 * operations of all threads; -t2: wall time over one thread's pairs), Mops/s
 * of all threads, and each child's peak resident memory (getrusage).
 *
 * Method (as sheafbench): every (contender, workload, repetition) is one
 * child process; repetitions interleaved across contenders, the order
 * rotating; medians reported, and peak RSS as the largest of the
 * repetitions.  The one thread of hot-64-t1, mixed and large runs on the
 * last CPU (pin()), every contender's alike.  The machine is shared and noisy: compare within one run.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"


#ifndef MALLOCBENCH_LIBDIR
#define MALLOCBENCH_LIBDIR "/usr/lib/x86_64-linux-gnu"
#endif
#ifndef MALLOCBENCH_SHEAF_MALLOC
#define MALLOCBENCH_SHEAF_MALLOC "libsheaf-malloc.so"
#endif
#ifndef MALLOCBENCH_RESULTS_DIR
#define MALLOCBENCH_RESULTS_DIR "bench/results"
#endif

struct contender {
	const char *name;
	const char *preload;	/* NULL: none */
	const char *malloc_from; /* substring of the file malloc resolves to */
	const char *env;	/* one more VAR=VALUE for the child, or NULL */
};

enum { C_SHEAF, C_SHEAF_FIXED, C_GLIBC, C_JEMALLOC, C_TCMALLOC, C_MIMALLOC, C_SHEAF_B,
       C_SHEAF_CAP, NC };

/*
 * sheaf-b: another build of libsheaf-malloc, named by MALLOCBENCH_SHEAF_B
 * (run only when that is set): an A/B comparison of two versions,
 * interleaved in one run like every other contender.
 * sheaf-cap60: libsheaf-malloc with SHEAF_KMALLOC_CAPACITY=60, every kmalloc
 * cache's sheaves at least as large as the kernel makes them for objects
 * under 256 bytes (the default keeps the kernel's size-based capacity, 28
 * for 256..1023 bytes, 12 up to a page): what the capacity costs or buys.
 * Not a peer: the targets are checked against the default build.
 */
static struct contender contenders[NC] = {
	[C_SHEAF] = { "sheaf", MALLOCBENCH_SHEAF_MALLOC, "libsheaf-malloc", NULL },
	[C_SHEAF_FIXED] = { "sheaf-fixed", MALLOCBENCH_SHEAF_MALLOC, "libsheaf-malloc",
			    "SHEAF_ADAPTIVE=0" },
	[C_GLIBC] = { "glibc", NULL, "libc.so", NULL },
	[C_JEMALLOC] = { "jemalloc", MALLOCBENCH_LIBDIR "/libjemalloc.so.2", "libjemalloc",
			 NULL },
	[C_TCMALLOC] = { "tcmalloc", MALLOCBENCH_LIBDIR "/libtcmalloc_minimal.so.4",
			 "libtcmalloc", NULL },
	[C_MIMALLOC] = { "mimalloc", MALLOCBENCH_LIBDIR "/libmimalloc.so.2", "libmimalloc",
			 NULL },
	[C_SHEAF_B] = { "sheaf-b", NULL, "libsheaf-malloc", NULL },
	[C_SHEAF_CAP] = { "sheaf-cap60", MALLOCBENCH_SHEAF_MALLOC, "libsheaf-malloc",
			  "SHEAF_KMALLOC_CAPACITY=60" },
};

enum wtype { W_LARSON, W_XMALLOC, W_HOT, W_MIXED, W_FORK, W_LARGE, W_XRING, W_GROW };

struct workload {
	const char *name;
	enum wtype type;
	unsigned int threads;
	uint64_t ops;		/* per thread (larson, hot), objects per thread
				 * (xmalloc), pairs (mixed); at --scale 1 */
	bool fixed;		/* a fixed-size workload */
};

enum { NW = 10 };
static const struct workload workloads[NW] = {
	{ "larson", W_LARSON, 4, 3000000, false },
	{ "xmalloc", W_XMALLOC, 2, 6000000, false },
	{ "hot-64-t1", W_HOT, 1, 40000000, true },
	{ "hot-64-t2", W_HOT, 2, 40000000, true },
	{ "mixed", W_MIXED, 1, 10000000, false },
	{ "fork", W_FORK, 1, 3000, false },
	{ "fork-mt", W_FORK, 2, 3000, false },
	{ "large", W_LARGE, 1, 300, false },
	{ "xring", W_XRING, 4, 2000000, false },
	{ "grow", W_GROW, 1, 100, false },
};

static inline uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		printf("E out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

/* Keep a result alive without a branch the compiler can drop. */
static inline void touch(void *p, size_t n)
{
	*(volatile char *)p = (char)n;
}

/*
 * Thread i on CPU n-1-i (mod n): the single-threaded workloads' one thread
 * on the last CPU, so that every contender runs on the same one (the two
 * vCPUs of the development VM ran sheafbench's hot loop at 2.8 and 4.6 ns:
 * the host's load), and a team's threads on distinct CPUs.
 */
static void pin(unsigned int i)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	if (n < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET((int)((unsigned int)n - 1 - i % (unsigned int)n), &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* -------------------------------------------------------------- threads */

struct team;
struct worker {
	struct team *t;
	unsigned int idx;
	pthread_t th;
};

struct team {
	unsigned int nthreads;
	uint64_t ops;
	void *(*fn)(struct worker *);
	bool pinned;
	unsigned int ready;	/* start barrier */
	bool go;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct team *t = w->t;
	if (t->pinned)
		pin(w->idx);
	__atomic_add_fetch(&t->ready, 1, __ATOMIC_ACQ_REL);
	while (!__atomic_load_n(&t->go, __ATOMIC_ACQUIRE))
		sched_yield();
	return t->fn(w);
}

/* Run fn on every thread; wall time from the start signal to the last join. */
static uint64_t run_team(struct team *t)
{
	struct worker w[64];
	for (unsigned int i = 0; i < t->nthreads; i++) {
		w[i] = (struct worker){ .t = t, .idx = i };
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]))
			bench_die("pthread_create");
	}
	while (__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE) < t->nthreads)
		sched_yield();
	uint64_t t0 = bench_now_ns();
	__atomic_store_n(&t->go, true, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < t->nthreads; i++)
		pthread_join(w[i].th, NULL);
	return bench_now_ns() - t0;
}

/* --------------------------------------------------------------- larson */

#define LARSON_SLOTS 1000
#define LARSON_ROUND 2000
#define LARSON_MIN 8
#define LARSON_MAX 1000

/*
 * The shared FIFO of slot arrays, under a mutex (one hand-over per round).
 * 2 * threads arrays in all; each thread holds one while it runs, so a
 * swap (put mine, take the oldest) always takes another thread's array.
 */
static pthread_mutex_t larson_lock = PTHREAD_MUTEX_INITIALIZER;
static void ***larson_fifo;
static unsigned int larson_head, larson_len, larson_cap;

static void **larson_fill(uint32_t *x)
{
	void **a = xmalloc(LARSON_SLOTS * sizeof(*a));
	for (int i = 0; i < LARSON_SLOTS; i++) {
		size_t n = LARSON_MIN + rnd(x) % (LARSON_MAX - LARSON_MIN + 1);
		a[i] = xmalloc(n);
		touch(a[i], n);
	}
	return a;
}

/* Put `mine` (NULL: nothing) at the tail, take the head (NULL: nothing). */
static void **larson_swap(void **mine, bool take)
{
	void **a = NULL;
	pthread_mutex_lock(&larson_lock);
	if (mine)
		larson_fifo[(larson_head + larson_len++) % larson_cap] = mine;
	if (take) {
		a = larson_fifo[larson_head];
		larson_head = (larson_head + 1) % larson_cap;
		larson_len--;
	}
	pthread_mutex_unlock(&larson_lock);
	return a;
}

static void *larson_worker(struct worker *w)
{
	uint32_t x = 0x9e3779b9u * (w->idx + 1);
	void **a = larson_swap(NULL, true);
	for (uint64_t done = 0; done < w->t->ops; done += LARSON_ROUND) {
		for (int k = 0; k < LARSON_ROUND; k++) {
			uint32_t r = rnd(&x);
			unsigned int i = r % LARSON_SLOTS;
			size_t n = LARSON_MIN + (r >> 10) % (LARSON_MAX - LARSON_MIN + 1);
			free(a[i]);
			a[i] = xmalloc(n);
			touch(a[i], n);
		}
		a = larson_swap(a, true);
	}
	larson_swap(a, false);
	return NULL;
}

static double run_larson(const struct workload *wl, uint64_t ops)
{
	uint32_t x = 12345;
	larson_cap = 2 * wl->threads + 1;
	larson_fifo = xmalloc(larson_cap * sizeof(*larson_fifo));
	larson_head = larson_len = 0;
	for (unsigned int i = 0; i < 2 * wl->threads; i++)
		larson_swap(larson_fill(&x), false);
	struct team t = { .nthreads = wl->threads, .ops = ops, .fn = larson_worker };
	uint64_t ns = run_team(&t);
	while (larson_len) {
		void **a = larson_swap(NULL, true);
		for (int k = 0; k < LARSON_SLOTS; k++)
			free(a[k]);
		free(a);
	}
	free(larson_fifo);
	return (double)ns / (double)(ops * wl->threads);
}

/* -------------------------------------------------------------- xmalloc */

/*
 * Threads in a ring, each producing batches of objects (cfg.batch, sizes
 * from cfg.size, written) for the next and freeing the batches the one
 * before made, through lock-free single-producer rings (cfg.depth batches
 * in flight): xmalloc (2 threads: each other's) and xring (4).
 */
#define RING_MAX 64	/* batches in flight, at most */
#define RING_MAXT 8	/* threads, at most */

static struct ring_cfg {
	unsigned int batch, depth;
	size_t (*size)(uint32_t *x);
} ring_cfg;

static struct xm_ring {
	void **slot[RING_MAX];
	uint64_t head __attribute__((aligned(64)));	/* consumer */
	uint64_t tail __attribute__((aligned(64)));	/* producer */
} __attribute__((aligned(64))) xm_rings[RING_MAXT];

static void *ring_worker(struct worker *w)
{
	unsigned int nt = w->t->nthreads, batch = ring_cfg.batch;
	struct xm_ring *out = &xm_rings[w->idx];
	struct xm_ring *in = &xm_rings[(w->idx + nt - 1) % nt];
	uint32_t x = 0x51ed27u * (w->idx + 1);
	uint64_t made = 0, freed = 0, total = w->t->ops;
	while (made < total || freed < total) {
		bool progress = false;
		uint64_t tail = out->tail;
		if (made < total &&
		    tail - __atomic_load_n(&out->head, __ATOMIC_ACQUIRE) < ring_cfg.depth) {
			void **b = xmalloc(batch * sizeof(*b));
			for (unsigned int i = 0; i < batch; i++) {
				size_t n = ring_cfg.size(&x);
				b[i] = xmalloc(n);
				touch(b[i], n);
			}
			out->slot[tail % ring_cfg.depth] = b;
			__atomic_store_n(&out->tail, tail + 1, __ATOMIC_RELEASE);
			made += batch;
			progress = true;
		}
		uint64_t head = in->head;
		if (head != __atomic_load_n(&in->tail, __ATOMIC_ACQUIRE)) {
			void **b = in->slot[head % ring_cfg.depth];
			__atomic_store_n(&in->head, head + 1, __ATOMIC_RELEASE);
			for (unsigned int i = 0; i < batch; i++)
				free(b[i]);
			free(b);
			freed += batch;
			progress = true;
		}
		if (!progress)
			sched_yield();
	}
	return NULL;
}

/* ns per pair over all threads' objects (ops per thread, whole batches). */
static double run_ring(unsigned int threads, uint64_t ops)
{
	ops = (ops + ring_cfg.batch - 1) / ring_cfg.batch * ring_cfg.batch;
	struct team t = { .nthreads = threads, .ops = ops, .fn = ring_worker };
	return (double)run_team(&t) / (double)(threads * ops);
}

static size_t xm_size(uint32_t *x)
{
	return 8 + rnd(x) % 505;
}

static double run_xmalloc(const struct workload *wl, uint64_t ops)
{
	ring_cfg = (struct ring_cfg){ .batch = 128, .depth = 64, .size = xm_size };
	return run_ring(wl->threads, ops);
}

/* ------------------------------------------------------------------ hot */

static void *hot_worker(struct worker *w)
{
	void *keep = xmalloc(64);	/* one live object, as sheafbench */
	for (uint64_t i = 0; i < w->t->ops; i++) {
		void *p = malloc(64);
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	free(keep);
	return NULL;
}

static double run_hot(const struct workload *wl, uint64_t ops)
{
	struct team warm = { .nthreads = 1, .ops = ops / 10 + 1, .fn = hot_worker };
	run_team(&warm);
	struct team t = { .nthreads = wl->threads, .ops = ops, .fn = hot_worker,
			  .pinned = true };
	return (double)run_team(&t) / (double)ops;
}

/* ---------------------------------------------------------------- mixed */

#define MIX_BATCH 1000

/* --mixed-sizes LO-HI: mixed draws sizes uniformly from LO..HI instead
 * of its 70/25/5% mix (0: the mix). */
static size_t mix_lo, mix_hi;

static double run_mixed(const struct workload *wl, uint64_t ops)
{
	static size_t size[MIX_BATCH];
	static unsigned int order[MIX_BATCH];
	static void *obj[MIX_BATCH];
	uint32_t x = 777;
	(void)wl;
	pin(0);
	for (int i = 0; i < MIX_BATCH; i++) {
		if (mix_hi) {
			size[i] = mix_lo + rnd(&x) % (mix_hi - mix_lo + 1);
		} else {
			uint32_t r = rnd(&x) % 100;
			size[i] = r < 70 ? 8 + rnd(&x) % 121
				 : r < 95 ? 129 + rnd(&x) % 1920 : 2049 + rnd(&x) % 30720;
		}
		order[i] = (unsigned int)i;
	}
	for (int i = MIX_BATCH - 1; i > 0; i--) {	/* shuffle */
		unsigned int j = rnd(&x) % (unsigned int)(i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	uint64_t rounds = ops / MIX_BATCH ? ops / MIX_BATCH : 1, t0 = 0;
	for (uint64_t r = 0; r < rounds + rounds / 10 + 1; r++) {
		if (r == rounds / 10 + 1)
			t0 = bench_now_ns();	/* after the warm-up rounds */
		for (int i = 0; i < MIX_BATCH; i++) {
			obj[i] = xmalloc(size[i]);
			touch(obj[i], size[i]);
		}
		for (int i = 0; i < MIX_BATCH; i++)
			free(obj[order[i]]);
	}
	return (double)(bench_now_ns() - t0) / (double)(rounds * MIX_BATCH);
}

/*
 * fork: what a shell or make does all the time.  A working set of 20000
 * blocks of mixed sizes stays live (the allocator's caches are warm and
 * its per-CPU state is in use), then ops times: fork(); the child mallocs
 * and frees one block and _exit()s; the parent waits for it.  ns per
 * fork+exit+wait: the fork handlers (libsheaf takes every lock of the
 * library around fork()) and the copy-on-write faults of the allocator's
 * state in both processes.
 */
#define FORK_SET 20000

/* fork-mt's other thread: a few blocks of its own, then it waits. */
static pthread_mutex_t fork_mt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fork_mt_cond = PTHREAD_COND_INITIALIZER;
static int fork_mt_state;	/* 1: started, 2: told to finish */

static void *fork_mt_thread(void *arg)
{
	void *own[64];
	(void)arg;
	for (int i = 0; i < 64; i++) {
		own[i] = xmalloc(16 + 32 * (size_t)i);
		touch(own[i], 16 + 32 * (size_t)i);
	}
	pthread_mutex_lock(&fork_mt_lock);
	fork_mt_state = 1;
	pthread_cond_broadcast(&fork_mt_cond);
	while (fork_mt_state != 2)
		pthread_cond_wait(&fork_mt_cond, &fork_mt_lock);
	pthread_mutex_unlock(&fork_mt_lock);
	for (int i = 0; i < 64; i++)
		free(own[i]);
	return NULL;
}

static double run_fork(const struct workload *wl, uint64_t ops)
{
	static void *set[FORK_SET];
	uint32_t x = 4242;
	pthread_t other;
	if (wl->threads > 1) {
		if (pthread_create(&other, NULL, fork_mt_thread, NULL) != 0) {
			printf("E pthread_create failed\n");
			exit(1);
		}
		pthread_mutex_lock(&fork_mt_lock);
		while (fork_mt_state != 1)
			pthread_cond_wait(&fork_mt_cond, &fork_mt_lock);
		pthread_mutex_unlock(&fork_mt_lock);
	}
	for (int i = 0; i < FORK_SET; i++) {
		uint32_t r = rnd(&x) % 100;
		size_t n = r < 70 ? 8 + rnd(&x) % 121 : r < 95 ? 129 + rnd(&x) % 1920
							       : 2049 + rnd(&x) % 30720;
		set[i] = xmalloc(n);
		touch(set[i], n);
	}
	uint64_t t0 = 0;
	for (uint64_t i = 0; i < ops + ops / 10 + 1; i++) {
		if (i == ops / 10 + 1)
			t0 = bench_now_ns();	/* after the warm-up forks */
		pid_t pid = fork();
		if (pid < 0) {
			printf("E fork: %s\n", strerror(errno));
			exit(1);
		}
		if (pid == 0) {
			void *p = malloc(100);
			touch(p, 100);
			free(p);
			_exit(0);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			printf("E fork child failed\n");
			exit(1);
		}
	}
	double ns = (double)(bench_now_ns() - t0) / (double)ops;
	for (int i = 0; i < FORK_SET; i++)
		free(set[i]);
	if (wl->threads > 1) {
		pthread_mutex_lock(&fork_mt_lock);
		fork_mt_state = 2;
		pthread_cond_broadcast(&fork_mt_cond);
		pthread_mutex_unlock(&fork_mt_lock);
		pthread_join(other, NULL);
	}
	return ns;
}

/* ---------------------------------------------------------------- large */

#define LARGE_SLOTS 20
#define LARGE_MIN (5ul << 20)
#define LARGE_MAX (25ul << 20)

static void large_fill(char *p, size_t n)
{
	for (size_t off = 0; off < n; off += 4096)
		p[off] = (char)off;
	p[n - 1] = 1;
}

static double run_large(const struct workload *wl, uint64_t ops)
{
	static char *buf[LARGE_SLOTS];
	uint32_t x = 2024;
	(void)wl;
	pin(0);
	for (int i = 0; i < LARGE_SLOTS; i++) {
		size_t n = LARGE_MIN + rnd(&x) % (LARGE_MAX - LARGE_MIN + 1);
		buf[i] = xmalloc(n);
		large_fill(buf[i], n);
	}
	uint64_t t0 = 0;
	for (uint64_t r = 0; r < ops + ops / 10 + 1; r++) {
		if (r == ops / 10 + 1)
			t0 = bench_now_ns();	/* after the warm-up replacements */
		unsigned int i = rnd(&x) % LARGE_SLOTS;
		size_t n = LARGE_MIN + rnd(&x) % (LARGE_MAX - LARGE_MIN + 1);
		free(buf[i]);
		buf[i] = xmalloc(n);
		large_fill(buf[i], n);
	}
	double ns = (double)(bench_now_ns() - t0) / (double)ops;
	for (int i = 0; i < LARGE_SLOTS; i++)
		free(buf[i]);
	return ns;
}

/* ---------------------------------------------------------------- grow */

#define GROW_MIN (1ul << 20)
#define GROW_MAX (32ul << 20)

static double run_grow(const struct workload *wl, uint64_t ops)
{
	(void)wl;
	pin(0);
	uint64_t t0 = 0, reallocs = 0;
	for (uint64_t r = 0; r < ops + ops / 10 + 1; r++) {
		if (r == ops / 10 + 1) {
			t0 = bench_now_ns();	/* after the warm-up rounds */
			reallocs = 0;
		}
		char *buf[2] = { xmalloc(GROW_MIN), xmalloc(GROW_MIN) };
		size_t n[2] = { GROW_MIN, GROW_MIN };
		for (int b = 0; b < 2; b++)
			large_fill(buf[b], n[b]);
		while (n[1] < GROW_MAX) {
			for (int b = 0; b < 2; b++) {
				size_t m = n[b] + n[b] / 4 < GROW_MAX ? n[b] + n[b] / 4 : GROW_MAX;
				char *q = realloc(buf[b], m);
				if (!q)
					bench_die("realloc(%zu) failed", m);
				if (q[0] != 0 || q[n[b] - 1] != 1)
					bench_die("realloc() lost the contents");
				large_fill(q + n[b], m - n[b]);
				q[n[b] - 1] = 0;
				buf[b] = q;
				n[b] = m;
				reallocs++;
			}
		}
		free(buf[0]);
		free(buf[1]);
	}
	return (double)(bench_now_ns() - t0) / (double)reallocs;
}

/* ---------------------------------------------------------------- xring */

/* 8 B .. 8 KiB, log-uniform: every size class gets its share. */
static size_t xr_size(uint32_t *x)
{
	uint32_t r = rnd(x);
	unsigned int e = 3 + r % 10;			/* 2^3 .. 2^12 */
	size_t lo = (size_t)1 << e;
	return lo + (r >> 8) % lo;			/* lo .. 2 lo - 1 */
}

static double run_xring(const struct workload *wl, uint64_t ops)
{
	ring_cfg = (struct ring_cfg){ .batch = 64, .depth = 32, .size = xr_size };
	return run_ring(wl->threads, ops);
}

/* ---------------------------------------------------------------- child */

static int child_main(int ci, int wi, double scale)
{
	const struct workload *wl = &workloads[wi];
	uint64_t ops = (uint64_t)((double)wl->ops * scale);
	void *sym = dlsym(RTLD_DEFAULT, "malloc");
	Dl_info di;
	double ns = 0;
	struct rusage ru;

	alarm(300);
	if (ops < 1000)	/* --quick: at least 1000, or the workload's own */
		ops = wl->ops < 1000 ? wl->ops : 1000;
	if (!sym || !dladdr(sym, &di) || !di.dli_fname)
		di.dli_fname = "?";
	if (!strstr(di.dli_fname, contenders[ci].malloc_from)) {
		printf("E malloc comes from %s, not %s\n", di.dli_fname,
		       contenders[ci].malloc_from);
		return 1;
	}
	switch (wl->type) {
	case W_LARSON:
		ns = run_larson(wl, ops);
		break;
	case W_XMALLOC:
		ns = run_xmalloc(wl, ops);
		break;
	case W_HOT:
		ns = run_hot(wl, ops);
		break;
	case W_MIXED:
		ns = run_mixed(wl, ops);
		break;
	case W_FORK:
		ns = run_fork(wl, ops);
		break;
	case W_LARGE:
		ns = run_large(wl, ops);
		break;
	case W_XRING:
		ns = run_xring(wl, ops);
		break;
	case W_GROW:
		ns = run_grow(wl, ops);
		break;
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("R %.4f\nM %ld\n", ns, ru.ru_maxrss);
	return fflush(stdout) ? 1 : 0;
}

/* --------------------------------------------------------------- parent */

static struct bench_cell cells[NW][NC];
static double med[NW][NC];
static bool wsel[NW], csel[NC];
static int order[NC], nc;
static unsigned int reps;
static char **envs[NC];
static unsigned int failures;

static const char *child_exe;
static double child_scale;

/* One measurement: this program re-executed as the child of (ci, wi). */
static bool run_child(int wi, int ci, double *ns, long *rss, char *err,
		      size_t errlen)
{
	char a0[] = "mallocbench", a1[64], a2[64], a3[64], a4[64];
	char *argv[] = { a0, a1, a2, a3, a4, NULL };
	snprintf(a1, sizeof(a1), "--child=%s", contenders[ci].name);
	snprintf(a2, sizeof(a2), "--workload=%s", workloads[wi].name);
	snprintf(a3, sizeof(a3), "--scale=%.6f", child_scale);
	snprintf(a4, sizeof(a4), "--mixed-sizes=%zu-%zu", mix_lo, mix_hi);
	return bench_run_child(child_exe, argv, envs[ci], NULL, NULL, ns, rss, err,
			       errlen);
}

/* The name of contender or workload i. */
static const char *name_of(bool contender, int i)
{
	return contender ? contenders[i].name : workloads[i].name;
}

static bool cell_wanted(int wi, int ci)
{
	(void)ci;
	return wsel[wi];
}

static void run_all(const char *exe, double scale)
{
	const struct bench_grid g = {
		.reps = reps, .nw = NW, .nc = (unsigned int)nc, .order = order,
		.cells = &cells[0][0], .row = NC, .wanted = cell_wanted,
		.name = name_of, .run = run_child,
	};
	child_exe = exe;
	child_scale = scale;
	failures = bench_run_grid(&g);
}

static void print_header(const char *extra, const char *sep)
{
	printf("| workload  |%s", extra);
	for (int k = 0; k < nc; k++)
		printf(" %9s |", contenders[order[k]].name);
	printf("\n|-----------|%s", sep);
	for (int k = 0; k < nc; k++)
		printf("----------:|");
	printf("\n");
}

/* A build or setting of libsheaf-malloc (sheaf, sheaf-fixed, sheaf-b,
 * sheaf-cap60), not a peer. */
static bool is_ours(int ci)
{
	return !strcmp(contenders[ci].malloc_from, "libsheaf-malloc");
}

/* The best (lowest) median among the peers other than sheaf and glibc's
 * own column, and among all peers; -1 when none. */
static double best_peer(int wi, bool with_glibc, int *who)
{
	double best = -1;
	*who = -1;
	for (int ci = 0; ci < NC; ci++) {
		if (is_ours(ci) || (!with_glibc && ci == C_GLIBC) || med[wi][ci] <= 0)
			continue;
		if (best < 0 || med[wi][ci] < best)
			best = med[wi][ci], *who = ci;
	}
	return best;
}

static void print_tables(void)
{
	printf("\n### ns per malloc+free pair (median of %u; lower is better)\n\n", reps);
	print_header(" threads |", "--------:|");
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi])
			continue;
		printf("| %-9s | %7u |", workloads[wi].name, workloads[wi].threads);
		for (int k = 0; k < nc; k++)
			bench_print_cell(med[wi][order[k]], 2, 9);
		printf("\n");
	}
	printf("\n### Throughput, Mops/s of all threads (higher is better)\n\n");
	print_header(" threads |", "--------:|");
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi])
			continue;
		/* hot-64-t2: ns is over one thread's pairs, both ran at once. */
		unsigned int mult = workloads[wi].type == W_HOT ? workloads[wi].threads : 1;
		printf("| %-9s | %7u |", workloads[wi].name, workloads[wi].threads);
		for (int k = 0; k < nc; k++) {
			double v = med[wi][order[k]];
			bench_print_cell(v > 0 ? mult * 1000.0 / v : -1, 1, 9);
		}
		printf("\n");
	}
	printf("\n### Peak RSS, MiB (largest of the repetitions)\n\n");
	print_header(" threads |", "--------:|");
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi])
			continue;
		printf("| %-9s | %7u |", workloads[wi].name, workloads[wi].threads);
		for (int k = 0; k < nc; k++) {
			struct bench_cell *c = &cells[wi][order[k]];
			bench_print_cell(c->rss_kb > 0 && !c->failed ? c->rss_kb / 1024.0 : -1, 1, 9);
		}
		printf("\n");
	}
	if (!csel[C_SHEAF])
		return;
	printf("\n### Ratios: contender time / sheaf time (> 1: sheaf is faster)\n\n");
	printf("| workload  |");
	for (int k = 0; k < nc; k++)
		if (order[k] != C_SHEAF)
			printf(" %9s |", contenders[order[k]].name);
	printf(" sheaf/best peer | best peer | sheaf RSS / best peer RSS |\n|-----------|");
	for (int k = 1; k < nc; k++)
		printf("----------:|");
	printf("----------------:|-----------|--------------------------:|\n");
	for (int wi = 0; wi < NW; wi++) {
		double s = med[wi][C_SHEAF];
		int who;
		if (!wsel[wi])
			continue;
		printf("| %-9s |", workloads[wi].name);
		for (int k = 0; k < nc; k++) {
			int ci = order[k];
			if (ci == C_SHEAF)
				continue;
			bench_print_cell(s > 0 && med[wi][ci] > 0 ? med[wi][ci] / s : -1, 2, 9);
		}
		double best = best_peer(wi, true, &who);
		bench_print_cell(s > 0 && best > 0 ? s / best : -1, 2, 15);
		printf(" %-9s |", who >= 0 ? contenders[who].name : "-");
		long brss = who >= 0 ? cells[wi][who].rss_kb : 0;
		bench_print_cell(brss > 0 && cells[wi][C_SHEAF].rss_kb > 0
				   ? (double)cells[wi][C_SHEAF].rss_kb / (double)brss : -1, 2, 25);
		printf("\n");
	}
	printf("\nTargets (this run):\n");
	for (int wi = 0; wi < NW; wi++) {
		double s = med[wi][C_SHEAF], g = med[wi][C_GLIBC];
		int who;
		double best = best_peer(wi, true, &who);
		if (!wsel[wi] || s <= 0)
			continue;
		char vs_glibc[48];
		if (g > 0)
			snprintf(vs_glibc, sizeof(vs_glibc), "%s glibc (%.2fx)",
				 s < g ? "ahead of" : "NOT ahead of", g / s);
		else	/* not a contender of this run (--contender) */
			snprintf(vs_glibc, sizeof(vs_glibc), "glibc not run");
		printf("- %-9s: %s, %s the best peer %s (sheaf time %.2fx of "
		       "its)%s\n", workloads[wi].name, vs_glibc,
		       best > 0 && s < best ? "ahead of" :
		       best > 0 && s <= 1.2 * best ? "within 1.2x of" : "NOT within 1.2x of",
		       who >= 0 ? contenders[who].name : "-", best > 0 ? s / best : 0,
		       workloads[wi].fixed ? " [fixed-size: target ahead of all]" : "");
		/* Each repetition's sheaf over the same rotation's best peer. */
		double lo, hi, pr = who >= 0 ? bench_cell_paired(&cells[wi][C_SHEAF],
								 &cells[wi][who], &lo, &hi) : -1;
		if (pr > 0 && cells[wi][C_SHEAF].nv > 1)
			printf("  %-9s  paired: sheaf time %.2fx of %s's, the median of "
			       "the %u rotations' ratios (%.2f-%.2f)\n", "", pr,
			       contenders[who].name,
			       cells[wi][C_SHEAF].nv < cells[wi][who].nv ?
			       cells[wi][C_SHEAF].nv : cells[wi][who].nv, lo, hi);
		double c = med[wi][C_SHEAF_CAP], fx = med[wi][C_SHEAF_FIXED];
		if (c > 0 && best > 0)
			printf("  %-9s  with SHEAF_KMALLOC_CAPACITY=60 (sheaf-cap60): %.2fx "
			       "of the best peer\n", "", c / best);
		if (fx > 0) {
			printf("  %-9s  adaptive capacity: sheaf time %.2fx of sheaf-fixed's "
			       "(SHEAF_ADAPTIVE=0: %.2f ns", "", s / fx, fx);
			if (best > 0)
				printf(", %.2fx of the best peer", fx / best);
			printf(")\n");
		}
	}
}

static void write_csv(const char *path)
{
	char dir[4096];
	FILE *f;
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(dir, 0777);
			*p = '/';
		}
	if (!(f = fopen(path, "w"))) {
		bench_note("cannot write %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "workload,contender,threads,median_ns,min_ns,max_ns,mops,peak_rss_kib,reps\n");
	for (int wi = 0; wi < NW; wi++)
		for (int k = 0; k < nc; k++) {
			int ci = order[k];
			struct bench_cell *c = &cells[wi][ci];
			if (!wsel[wi] || med[wi][ci] < 0)
				continue;
			unsigned int mult = workloads[wi].type == W_HOT ? workloads[wi].threads : 1;
			double lo, hi;
			bench_cell_range(c, &lo, &hi);
			fprintf(f, "%s,%s,%u,%.4f,%.4f,%.4f,%.2f,%ld,%u\n", workloads[wi].name,
				contenders[ci].name, workloads[wi].threads, med[wi][ci], lo,
				hi, mult * 1000.0 / med[wi][ci], c->rss_kb, c->nv);
		}
	if (fclose(f) != 0)
		bench_note("error writing %s", path);
	else
		printf("\nCSV: %s\n", path);
}

static int find_name(const char *name, bool contender)
{
	for (int i = 0; i < (contender ? NC : NW); i++)
		if (!strcmp(name, name_of(contender, i)))
			return i;
	return -1;
}

static void parse_list(const char *s, bool *sel, bool contender)
{
	char buf[512], *tok, *save = NULL;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i = find_name(tok, contender);
		if (i < 0)
			bench_die("unknown %s '%s' (see --help)", contender ? "contender" : "workload", tok);
		sel[i] = true;
	}
}

static void usage(FILE *out)
{
	fprintf(out,
"usage: mallocbench [options]\n"
"  --quick              a tenth of the operations, 3 reps\n"
"  --workload A[,B]     larson xmalloc hot-64-t1 hot-64-t2 mixed fork fork-mt\n"
"                       large xring grow\n"
"  --contender A[,B]    sheaf glibc jemalloc tcmalloc mimalloc sheaf-b\n"
"                       sheaf-fixed (SHEAF_ADAPTIVE=0: fixed sheaf capacity)\n"
"                       sheaf-cap60 (SHEAF_KMALLOC_CAPACITY=60)\n"
"                       (sheaf-b: the libsheaf-malloc.so that the variable\n"
"                       MALLOCBENCH_SHEAF_B names, for an A/B comparison)\n"
"  --reps N             repetitions, median reported (default 5, quick 3)\n"
"  --scale X            multiply every workload's operations by X\n"
"  --csv PATH           CSV output (default %s/malloc-{full,quick}.csv)\n"
"  --mixed-sizes LO-HI  mixed: sizes uniform in LO..HI bytes instead of its\n"
"                       70%% 8-128, 25%% 129-2048, 5%% 2049-32768 mix\n"
"libsheaf-malloc: %s\n", MALLOCBENCH_RESULTS_DIR, MALLOCBENCH_SHEAF_MALLOC);
}

int main(int argc, char **argv)
{
	bench_prog = "mallocbench";
	bool quick = false, any_w = false, any_c = false;
	double scale = 0;
	unsigned long r = 0;
	const char *csv = NULL, *child = NULL, *v;
	char exe[4096], path[4096];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return usage(stdout), 0;
		else if ((v = bench_optval(argc, argv, &i, "--workload")))
			parse_list(v, wsel, false), any_w = true;
		else if ((v = bench_optval(argc, argv, &i, "--contender")))
			parse_list(v, csel, true), any_c = true;
		else if ((v = bench_optval(argc, argv, &i, "--reps")))
			r = strtoul(v, NULL, 10);
		else if ((v = bench_optval(argc, argv, &i, "--scale")))
			scale = strtod(v, NULL);
		else if ((v = bench_optval(argc, argv, &i, "--csv")))
			csv = v;
		else if ((v = bench_optval(argc, argv, &i, "--mixed-sizes"))) {
			/* 0-0 (what the parent passes by default): the mix. */
			if (sscanf(v, "%zu-%zu", &mix_lo, &mix_hi) != 2 || mix_lo > mix_hi ||
			    mix_hi > (1u << 20) || (mix_hi && mix_lo < 1))
				bench_die("--mixed-sizes: LO-HI with 1 <= LO <= HI <= 1048576");
		}
		else if ((v = bench_optval(argc, argv, &i, "--child")))
			child = v;
		else
			usage(stderr), bench_die("unknown option '%s'", argv[i]);
	}
	if (scale <= 0)
		scale = quick ? 0.1 : 1.0;
	if (r > 1000)
		bench_die("--reps: at most 1000");
	reps = r ? (unsigned int)r : quick ? 3 : 5;

	if (child) {
		int ci = find_name(child, true), wi = 0;
		while (wi < NW && !wsel[wi])
			wi++;
		if (ci < 0 || wi == NW)
			bench_die("--child needs a known contender and a --workload");
		return child_main(ci, wi, scale);
	}

	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		bench_die("readlink /proc/self/exe: %s", strerror(errno));
	exe[len] = '\0';
	char model[256] = "unknown CPU", line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');
		if (!strncmp(line, "model name", 10) && c) {
			c += 1 + strspn(c + 1, " \t");
			c[strcspn(c, "\n")] = '\0';
			snprintf(model, sizeof(model), "%s", c);
			break;
		}
	}
	if (f)
		fclose(f);
	printf("Machine: %s | nproc %ld | glibc %s\n", model,
	       sysconf(_SC_NPROCESSORS_ONLN), gnu_get_libc_version());
	printf("Run: %s, median of %u reps, scale %.3g\n", quick ? "quick" : "full",
	       reps, scale);
	if (mix_hi)
		printf("mixed: sizes uniform in %zu..%zu bytes (--mixed-sizes)\n", mix_lo,
		       mix_hi);
#ifndef __OPTIMIZE__
	printf("WARNING: mallocbench was built without optimisation\n");
#endif
	contenders[C_SHEAF_B].preload = getenv("MALLOCBENCH_SHEAF_B");
	if (getenv("SHEAF_ADAPTIVE"))
		bench_note("SHEAF_ADAPTIVE=%s is set: the libsheaf-malloc contenders but "
			   "sheaf-fixed run with it", getenv("SHEAF_ADAPTIVE"));
	for (int ci = 0; ci < NC; ci++) {
		bool want = csel[ci] || !any_c;
		csel[ci] = false;
		if (ci == C_SHEAF_B && !contenders[ci].preload)
			continue;
		if (!want)
			continue;
		if (contenders[ci].preload && access(contenders[ci].preload, R_OK)) {
			bench_note("%s skipped: %s not found", contenders[ci].name,
			     contenders[ci].preload);
			continue;
		}
		csel[ci] = true;
		envs[ci] = bench_env(contenders[ci].preload, contenders[ci].env);
		order[nc++] = ci;
	}
	if (nc == 0)
		fputs(bench_notes, stderr), bench_die("no contender to run");
	for (int wi = 0; wi < NW; wi++) {
		wsel[wi] = wsel[wi] || !any_w;
		for (int ci = 0; ci < NC; ci++)
			if (!(cells[wi][ci].v = calloc(reps, sizeof(double))))
				bench_die("out of memory");
	}
	run_all(exe, scale);
	for (int wi = 0; wi < NW; wi++)
		for (int ci = 0; ci < NC; ci++)
			med[wi][ci] = csel[ci] && wsel[wi] ? bench_cell_median(&cells[wi][ci]) : -1;
	print_tables();
	snprintf(path, sizeof(path), "%s/malloc-%s.csv", MALLOCBENCH_RESULTS_DIR,
		 quick ? "quick" : "full");
	write_csv(csv ? csv : path);
	if (bench_notes[0])
		printf("\nNotes:\n%s", bench_notes);
	return failures ? 1 : 0;
}
