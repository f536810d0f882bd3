/* SPDX-License-Identifier: MIT */
/*
 * sheafbench - libsheaf against the usual userspace allocators.
 *   sheafbench [--quick] [--workload A,B] [--contender A,B] [--reps N]
 *              [--iters N] [--csv PATH]          (--help for details)
 *
 * Contenders:
 *   sheaf     kmem_cache_alloc/free, cache created with the kernel's automatic
 *             sheaf capacity for the object size (sheaf_auto_capacity(): 60
 *             for 64-byte objects, 28 for 256): the per-CPU sheaves path,
 *             inline rseq fast paths, the default checked free;
 *   sheaf-fixed  the same with SHEAF_ADAPTIVE=0 in the child's environment:
 *             the kernel's fixed sheaf capacity and barn limit, where sheaf
 *             (the library's default) lets them grow with the cache's barn
 *             and slab trips and step back when it goes quiet
 *             (src/pcs_adapt.c);
 *   sheaf-trust  the same as sheaf with SHEAF_TRUST_FREE's inline free (the
 *             kernel's kmem_cache_free() trusts its cache argument);
 *   classic   the same with sheaf_capacity = 0: classic SLUB per-CPU
 *             freelist with its (freelist, tid) cmpxchg16b fast path;
 *   glibc     malloc/free, no LD_PRELOAD;
 *   jemalloc, tcmalloc, mimalloc: malloc/free, the Debian .so LD_PRELOADed.
 * Each child checks that dlsym("malloc") resolves into the expected library.
 *
 * Workloads (ns per alloc+free pair unless said; lower is better):
 *   hot-64, hot-256  One object of the size stays live; a loop allocates an
 *             object and frees it at once, getting the same object back each
 *             time: the bare fast path (per-CPU freelist, sheaf, thread
 *             cache), no slab or page work.
 *   batch-lifo  1000 64-byte objects allocated into an array, then freed
 *             newest first; repeated.  1000 objects are far more than a sheaf
 *             or one cpu slab holds: refills from slabs and flushes back.
 *   batch-fifo  The same, freed oldest first: queue-like lifetimes; frees
 *             start with the slabs filled first rather than the current one,
 *             and the next round walks the free lists in another order.
 *   remote    A producer thread allocates 64-byte objects and passes them
 *             through a lock-free single-producer/single-consumer ring to a
 *             consumer thread on another CPU that frees them: every free is
 *             a cross-CPU free.  ns per object = wall time / objects.
 *   hot-64-t1 .. hot-64-tN  Scaling: the hot-64 loop in 1 to N threads at
 *             once on the same cache, N = twice the CPUs we may use (at most
 *             MAX_THREADS), threads pinned round-robin to those CPUs (beyond
 *             one per CPU, threads share CPUs and are preempted inside their
 *             fast paths).  ns per op of one thread (wall / per-thread ops),
 *             and Mops/s of all threads in a table of its own.
 *   rcu       Allocate a 64-byte object and free it through RCU, at full
 *             speed (one thread, plus liburcu's callback thread): libsheaf
 *             sheaves use kfree_rcu(), the classic cache call_rcu() +
 *             kmem_cache_free(), the peers call_rcu() + free().  Time includes
 *             the final barrier; also peak RSS and the share of allocations
 *             served from sheaves recycled through RCU.
 *   rcu-32    The same on a cache created with sheaf capacity 32 (the
 *             README's example; rcu's is the automatic 60).
 *   prealloc-32  Get 32 256-byte objects ready (a maple tree write's worst
 *             case), use one, give the rest back, free it: sheaves with
 *             kmem_cache_prefill_sheaf()/alloc_from_sheaf()/return_sheaf();
 *             classic with kmem_cache_alloc_bulk(32)/free_bulk(31); peers
 *             with 32 malloc()/31 free().  ns per round.
 *   bulk-32   The bulk pattern on every libsheaf cache, sheaves or not.
 *   vma       VMA-like churn on lib/rtree (an RCU range tree in the maple
 *             tree's role) with a lockless reader thread: ns per tree write
 *             (see run_vma()).
 *   churn     A maple tree's node traffic without the tree: 20000 live
 *             256-byte nodes; each write reserves its worst case (16-32
 *             nodes), takes 1-4 of them, gives the rest back, and the new
 *             nodes replace as many random live ones, which are freed, 3 in
 *             4 through RCU.  Sheaves: prefill_sheaf/alloc_from_sheaf/
 *             return_sheaf and kfree_rcu() (capacity 32, the maple node
 *             cache's); classic: alloc_bulk/free_bulk and call_rcu() +
 *             kmem_cache_free(); peers: malloc/free and call_rcu() + free().
 *             ns per write; for libsheaf also the objects its sheaves
 *             brought from slabs per object handed out (statistics on for
 *             a last tenth of the writes, after the timed ones).
 *   phase     Capacity over time (sheaf and sheaf-fixed only): one cache of
 *             64-byte objects with the automatic capacity, 2 threads pinned
 *             to CPUs, three phases of --phase-ms, --phase-ms and twice that
 *             (default 1000 ms, --quick 600): 1, the hot loop (no slow
 *             path); 2, batch-lifo rounds of 1000 objects in both threads
 *             (sheaf refills and flushes through the barn and the slabs); 3,
 *             light: 100 hot pairs then 1 ms asleep, in both threads.  The
 *             child runs with SHEAF_IDLE_MS=200 (the idle thread looks every
 *             100 ms; a step down takes two quiet looks), and its main
 *             thread samples sheaf_cache_limits() (capacity, barn limit) and
 *             the pairs done so far every 20 ms.  Result: ns per alloc+free
 *             pair of one thread in phase 2 (each thread's time over its
 *             pairs, from its first phase-2 round to its last).  The samples
 *             of each contender's last repetition go to a second CSV,
 *             <csv>-capacity.csv (bench/plot.sh draws them).
 * Every child also reports its peak resident memory (getrusage).
 * sheaf-trust runs only where its inline free is on the path.
 *
 * Method.  Every (contender, workload, repetition) is one child process,
 * this program re-executed with "--child=NAME"; children run strictly one
 * after another, repetitions interleaved across contenders (rep 1 of every
 * contender, then rep 2, ..., the contender order rotating) so that machine
 * noise spreads evenly.  A child warms up (a tenth of the iterations), times
 * the workload with CLOCK_MONOTONIC and prints "R <ns>" on stdout, a pipe to
 * the parent, which reports the median over repetitions.  The children of
 * the single-threaded loops (hot, batch, prealloc, bulk) pin their thread
 * to the last CPU they may use (pin_last_cpu()), so that every contender
 * runs on the same CPU: the two vCPUs of the development VM ran the hot
 * loop at 2.8 and 4.6 ns (the host's load, not the guest's), and a child
 * landing on either made single runs bimodal.  The others are not pinned:
 * their helper threads (the RCU worker, liburcu's call_rcu thread) would
 * inherit the pin.
 *
 * Fairness.  Each workload body is written once, as an always_inline function
 * taking the alloc and free operations as function pointers, and instantiated
 * twice (GEN below): with kmem_cache_alloc/kmem_cache_free and with
 * malloc/free, which become direct calls in identical loops.  The choice is
 * made once per run, outside the timed loops.  Each new object gets one byte
 * written and goes through an empty asm with a memory clobber, so that no
 * compiler can elide a malloc/free pair.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>

#include "harness.h"
#include "rtree.h"

#ifndef SHEAFBENCH_RESULTS_DIR
#define SHEAFBENCH_RESULTS_DIR "bench/results"
#endif

#ifndef SHEAFBENCH_LIBDIR	/* where the peers' .so live (Debian multiarch) */
#define SHEAFBENCH_LIBDIR "/usr/lib/x86_64-linux-gnu"
#endif
#define LIBDIR SHEAFBENCH_LIBDIR "/"

#define AI static inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#define BATCH 1000		/* objects per batch-* round */
#define RING_SIZE 1024u		/* remote: ring slots (power of two) */
#define RING_BATCH 32u		/* remote: producer publishes every 32 */
#define REMOTE_DIV 4		/* remote: objects = iterations / 4 */
#define VMA_DIV 25		/* vma: tree writes = iterations / 25 */
#define CHURN_DIV 40		/* churn: writes = iterations / 40 */
#define PHASE_THREADS 2		/* phase: worker threads */
#define PHASE_IDLE_MS "200"	/* phase: the children's SHEAF_IDLE_MS */
#define PHASE_SAMPLE_MS 20	/* phase: sampling period */
#define PHASE_HOT_CHUNK 1000	/* phase 1: hot pairs between clock reads */
#define PHASE_LIGHT_PAIRS 100	/* phase 3: hot pairs per 1 ms nap */
#define PHASE_MS_MAX 60000	/* --phase-ms bound (the sample arrays) */
#define PHASE_MAX_SAMPLES (4 * PHASE_MS_MAX / PHASE_SAMPLE_MS + 16)


/* ------------------------------------------------------------ tables */

enum kind { K_SLAB, K_SLAB_TRUST, K_MALLOC };

struct contender {
	const char *name;
	enum kind kind;
	unsigned int sheaf_capacity;	/* K_SLAB */
	const char *preload;		/* NULL: no LD_PRELOAD */
	const char *malloc_from;	/* peers: the library that must serve malloc */
	const char *env;		/* one more VAR=VALUE for the child, or NULL */
	bool fixed;			/* K_SLAB: the child checks it is not adaptive */
};

static const struct contender contenders[] = {
	/* sheaf_capacity 1: the kernel's automatic capacity for the size */
	{ "sheaf",    K_SLAB,   1, NULL, NULL, NULL, false },
	/* sheaf with the kernel's fixed capacity and barn limit */
	{ "sheaf-fixed", K_SLAB, 1, NULL, NULL, "SHEAF_ADAPTIVE=0", true },
	{ "classic",  K_SLAB,   0,  NULL, NULL, NULL, false },
	/* sheaf with the kernel's trusting kmem_cache_free() (SHEAF_TRUST_FREE:
	 * no check that the object belongs to the cache on the inline path) */
	{ "sheaf-trust", K_SLAB_TRUST, 1, NULL, NULL, NULL, false },
	{ "glibc",    K_MALLOC, 0,  NULL, NULL, NULL, false },
	{ "jemalloc", K_MALLOC, 0,  LIBDIR "libjemalloc.so.2", "libjemalloc", NULL, false },
	{ "tcmalloc", K_MALLOC, 0,  LIBDIR "libtcmalloc_minimal.so.4", "libtcmalloc", NULL,
	  false },
	{ "mimalloc", K_MALLOC, 0,  LIBDIR "libmimalloc.so.2", "libmimalloc", NULL, false },
};
#define NC ((int)(sizeof(contenders) / sizeof(contenders[0])))
#define C_SHEAF 0
#define C_FIXED 1
#define C_CLASSIC 2
#define C_FIRST_PEER 4

enum wtype { W_HOT, W_BATCH_LIFO, W_BATCH_FIFO, W_REMOTE, W_THREADS, W_RCU,
	     W_PREALLOC, W_BULK32, W_VMA, W_CHURN, W_PHASE };

struct workload {
	char name[16];
	enum wtype type;
	unsigned int size;
	unsigned int threads;
	unsigned int iters_div;	/* operations = base iterations / iters_div */
	bool same_as_sheaf;	/* sheaf-trust runs the very same code: skip it */
	bool sheaves_only;	/* run only by sheaf and sheaf-fixed */
	const char *env;	/* one more VAR=VALUE for its children, or NULL */
	unsigned int capacity;	/* libsheaf's sheaf capacity; 0: the automatic one */
};

#define MAX_THREADS 16		/* scaling: 1 .. min(2 x CPUs, this) threads */
#define MAXW 32

/*
 * The table is built at start-up (build_workloads()), the same way in the
 * parent and in every child: the scaling entries hot-64-t1 .. hot-64-tN go
 * up to twice the number of CPUs this process may run on.
 */
static struct workload workloads[MAXW];
static int NW;

static struct workload *add_workload(const char *name, enum wtype type,
				     unsigned int size, unsigned int threads,
				     unsigned int iters_div, bool same)
{
	struct workload *w = &workloads[NW++];
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->type = type;
	w->size = size;
	w->threads = threads;
	w->iters_div = iters_div;
	w->same_as_sheaf = same;
	return w;
}

static unsigned int usable_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned int)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned int)n : 1;
}

/* Run the calling thread on the last CPU it may use (see "Method"). */
static void pin_last_cpu(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	for (int cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--) {
		if (CPU_ISSET(cpu, &set)) {
			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			(void)sched_setaffinity(0, sizeof(set), &set);
			return;
		}
	}
}

static void build_workloads(void)
{
	unsigned int maxt = 2 * usable_cpus();
	char name[16];

	if (maxt > MAX_THREADS)
		maxt = MAX_THREADS;
	add_workload("hot-64", W_HOT, 64, 1, 1, false);
	add_workload("hot-256", W_HOT, 256, 1, 1, false);
	add_workload("batch-lifo", W_BATCH_LIFO, 64, 1, 1, false);
	add_workload("batch-fifo", W_BATCH_FIFO, 64, 1, 1, false);
	add_workload("remote", W_REMOTE, 64, 2, REMOTE_DIV, false);
	for (unsigned int t = 1; t <= maxt; t++) {
		snprintf(name, sizeof(name), "hot-64-t%u", t);
		add_workload(name, W_THREADS, 64, t, 1, false);
	}
	/* These free through kfree_rcu(), return_sheaf() or free_bulk(): the
	 * inline free that sheaf-trust changes is not on their path. */
	add_workload("rcu", W_RCU, 64, 1, REMOTE_DIV, true);
	/* The same with the capacity the README's example asks for. */
	add_workload("rcu-32", W_RCU, 64, 1, REMOTE_DIV, true)->capacity = 32;
	add_workload("prealloc-32", W_PREALLOC, 256, 1, 16, true);
	add_workload("bulk-32", W_BULK32, 256, 1, 16, true);
	add_workload("vma", W_VMA, sizeof(struct rtree_node), 2, VMA_DIV, true);
	add_workload("churn", W_CHURN, 256, 1, CHURN_DIV, true);
	/* Time-based (--phase-ms), not --iters; the idle thread's looks every
	 * 100 ms, so that phase 3's steps down show within the run. */
	struct workload *w = add_workload("phase", W_PHASE, 64, PHASE_THREADS, 1, true);
	w->sheaves_only = true;
	w->env = "SHEAF_IDLE_MS=" PHASE_IDLE_MS;
}

/* ------------------------------------------------------------ helpers */

/* Spin-wait step; yields the CPU now and then (matters with one CPU). */
static inline void backoff(unsigned int *spins)
{
	if (++*spins % 256 == 0)
		sched_yield();
#if defined(__x86_64__) || defined(__i386__)
	else
		__builtin_ia32_pause();
#endif
}

/* The name of contender or workload i. */
static const char *name_of(bool contender, int i)
{
	return contender ? contenders[i].name : workloads[i].name;
}

static int find_name(const char *name, bool contender)
{
	int n = contender ? NC : NW;
	for (int i = 0; i < n; i++)
		if (!strcmp(name, name_of(contender, i)))
			return i;
	return -1;
}

/* ------------------------------------------- the measured operations */

struct ctx {
	struct kmem_cache *cache;	/* K_SLAB */
	size_t size;			/* K_MALLOC */
};

typedef void *(*alloc_fn)(const struct ctx *);
typedef void (*free_fn)(const struct ctx *, void *);

AI void *slab_alloc(const struct ctx *c) { return kmem_cache_alloc(c->cache, GFP_KERNEL); }
AI void slab_free(const struct ctx *c, void *p) { kmem_cache_free(c->cache, p); }
AI void slab_free_trusted(const struct ctx *c, void *p)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	sheaf_free_inline(c->cache, p, true);
#else
	kmem_cache_free(c->cache, p);
#endif
}
AI void *libc_alloc(const struct ctx *c) { return malloc(c->size); }
AI void libc_free(const struct ctx *c, void *p) { (void)c; free(p); }

static void __attribute__((noreturn, cold)) out_of_memory(void)
{
	printf("E allocation failed\n");
	fflush(stdout);
	_exit(1);
}

/* What a user does with a fresh object; also keeps the pair un-elidable. */
AI void *use(void *p)
{
	if (__builtin_expect(p == NULL, 0))
		out_of_memory();
	*(volatile unsigned char *)p = 1;
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

AI void hot_body(struct ctx c, uint64_t n, alloc_fn A, free_fn F)
{
	for (uint64_t i = 0; i < n; i++) {
		void *p = use(A(&c));
		F(&c, p);
	}
}

AI void batch_body(struct ctx c, void **v, uint64_t rounds, bool fifo,
		   alloc_fn A, free_fn F)
{
	for (uint64_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < BATCH; i++)
			v[i] = use(A(&c));
		if (fifo) {
			for (size_t i = 0; i < BATCH; i++)
				F(&c, v[i]);
		} else {
			for (size_t i = BATCH; i-- > 0;)
				F(&c, v[i]);
		}
	}
}

/* remote: single-producer/single-consumer ring, indices never wrap. */
struct ring {
	_Alignas(64) _Atomic uint64_t head;	/* next slot the producer fills */
	_Alignas(64) _Atomic uint64_t tail;	/* next slot the consumer reads */
	_Alignas(64) void *slot[RING_SIZE];
};
static struct ring ring;

AI void produce_body(struct ctx c, struct ring *r, uint64_t n, alloc_fn A)
{
	uint64_t head = 0, tail = 0;
	unsigned int spins = 0;
	while (head < n) {
		while (head - tail == RING_SIZE) {
			tail = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (head - tail == RING_SIZE)
				backoff(&spins);
		}
		uint64_t k = RING_SIZE - (head - tail);
		if (k > RING_BATCH)
			k = RING_BATCH;
		if (k > n - head)
			k = n - head;
		for (uint64_t i = 0; i < k; i++)
			r->slot[(head + i) % RING_SIZE] = use(A(&c));
		head += k;
		atomic_store_explicit(&r->head, head, memory_order_release);
	}
}

AI void consume_body(struct ctx c, struct ring *r, uint64_t n, free_fn F)
{
	uint64_t tail = 0, head = 0;
	unsigned int spins = 0;
	while (tail < n) {
		while (tail == head) {
			head = atomic_load_explicit(&r->head, memory_order_acquire);
			if (tail == head)
				backoff(&spins);
		}
		while (tail < head) {
			F(&c, r->slot[tail % RING_SIZE]);
			tail++;
		}
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
}

/* The loops above, instantiated with direct calls for each kind. */
struct impl {
	void *(*alloc1)(struct ctx);
	void (*free1)(struct ctx, void *);
	void (*hot)(struct ctx, uint64_t);
	void (*lifo)(struct ctx, void **, uint64_t);
	void (*fifo)(struct ctx, void **, uint64_t);
	void (*produce)(struct ctx, struct ring *, uint64_t);
	void (*consume)(struct ctx, struct ring *, uint64_t);
};

#define GEN(k, A, F)                                                           \
	static NOINLINE void *alloc1_##k(struct ctx c) { return use(A(&c)); } \
	static NOINLINE void free1_##k(struct ctx c, void *p) { F(&c, p); }   \
	static NOINLINE void hot_##k(struct ctx c, uint64_t n)                \
	{ hot_body(c, n, A, F); }                                              \
	static NOINLINE void lifo_##k(struct ctx c, void **v, uint64_t r)     \
	{ batch_body(c, v, r, false, A, F); }                                  \
	static NOINLINE void fifo_##k(struct ctx c, void **v, uint64_t r)     \
	{ batch_body(c, v, r, true, A, F); }                                   \
	static NOINLINE void produce_##k(struct ctx c, struct ring *r, uint64_t n) \
	{ produce_body(c, r, n, A); }                                          \
	static NOINLINE void consume_##k(struct ctx c, struct ring *r, uint64_t n) \
	{ consume_body(c, r, n, F); }                                          \
	static const struct impl impl_##k = { alloc1_##k, free1_##k, hot_##k,  \
		lifo_##k, fifo_##k, produce_##k, consume_##k };

GEN(slab, slab_alloc, slab_free)
GEN(slabt, slab_alloc, slab_free_trusted)
GEN(libc, libc_alloc, libc_free)

/* ------------------------------------------------- workload runners */

static uint64_t warmup_of(uint64_t n) { return n / 10 + 1; }

static double run_hot(const struct impl *im, struct ctx c, uint64_t n)
{
	void *keep = im->alloc1(c);
	im->hot(c, warmup_of(n));
	uint64_t t0 = bench_now_ns();
	im->hot(c, n);
	uint64_t t1 = bench_now_ns();
	im->free1(c, keep);
	return (double)(t1 - t0) / (double)n;
}

static double run_batch(const struct impl *im, struct ctx c, uint64_t n, bool fifo)
{
	static void *v[BATCH];
	uint64_t rounds = n / BATCH ? n / BATCH : 1;
	void (*loop)(struct ctx, void **, uint64_t) = fifo ? im->fifo : im->lifo;
	loop(c, v, warmup_of(rounds));
	uint64_t t0 = bench_now_ns();
	loop(c, v, rounds);
	uint64_t t1 = bench_now_ns();
	return (double)(t1 - t0) / (double)(rounds * BATCH);
}

/* Threads of one run: started together, each pinned to its own CPU. */
struct team {
	const struct impl *im;
	struct ctx c;
	uint64_t n;
	unsigned int nthreads;
	bool remote;		/* producer (idx 0) and consumer (idx 1) */
	int cpus[MAX_THREADS];	/* thread i runs on cpus[i]; -1: not pinned */
	_Atomic unsigned int ready;
	_Atomic int go;
};

struct worker { struct team *t; unsigned int idx; pthread_t th; uint64_t t0, t1; };

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct team *t = w->t;
	const struct impl *im = t->im;
	void *keep = NULL;
	unsigned int spins = 0;

	if (t->cpus[w->idx] >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(t->cpus[w->idx], &set);
		(void)sched_setaffinity(0, sizeof(set), &set);
	}
	if (!t->remote) {			/* hot-64-tN: as run_hot */
		keep = im->alloc1(t->c);
		im->hot(t->c, warmup_of(t->n));
	}
	atomic_fetch_add(&t->ready, 1);
	while (!atomic_load_explicit(&t->go, memory_order_acquire))
		backoff(&spins);
	w->t0 = bench_now_ns();
	if (!t->remote)
		im->hot(t->c, t->n);
	else if (w->idx == 0)
		im->produce(t->c, &ring, t->n);
	else
		im->consume(t->c, &ring, t->n);
	w->t1 = bench_now_ns();
	if (keep)
		im->free1(t->c, keep);
	return NULL;
}

/* Runs the team; returns wall time from the first start to the last end. */
static uint64_t run_team(struct team *t)
{
	struct worker w[MAX_THREADS];
	unsigned int spins = 0;
	int allowed[CPU_SETSIZE], nallowed = 0;
	cpu_set_t set;

	/* Threads go round-robin over the CPUs we may use: with more threads
	 * than CPUs, several share one (and are preempted in their sections). */
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &set))
				allowed[nallowed++] = cpu;
	for (unsigned int i = 0; i < t->nthreads; i++)
		t->cpus[i] = nallowed ? allowed[i % (unsigned int)nallowed] : -1;
	atomic_store(&t->ready, 0);
	atomic_store(&t->go, 0);
	atomic_store(&ring.head, 0);
	atomic_store(&ring.tail, 0);
	for (unsigned int i = 0; i < t->nthreads; i++) {
		w[i] = (struct worker){ .t = t, .idx = i };
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
			bench_die("pthread_create failed");
	}
	while (atomic_load(&t->ready) < t->nthreads)
		backoff(&spins);
	atomic_store_explicit(&t->go, 1, memory_order_release);
	uint64_t start = UINT64_MAX, end = 0;
	for (unsigned int i = 0; i < t->nthreads; i++) {
		pthread_join(w[i].th, NULL);
		start = w[i].t0 < start ? w[i].t0 : start;
		end = w[i].t1 > end ? w[i].t1 : end;
	}
	return end - start;
}

static double run_remote(struct team *t)
{
	uint64_t n = t->n;
	t->n = warmup_of(n);		/* untimed pass: threads, ring, slabs */
	run_team(t);
	t->n = n;
	return (double)run_team(t) / (double)n;
}

/* ------------------------------------------------------------ child */

/*
 * rcu: allocate an object and free it through RCU, at full speed.  libsheaf
 * with sheaves: kfree_rcu() (rcu_free sheaves, recycled into the barn).
 * classic: the same cache without sheaves, call_rcu() + kmem_cache_free()
 * per object.  Peers: call_rcu() + free() per object.  The time includes
 * the barrier that waits for the last callbacks.  Also reports the peak
 * resident memory and the share of allocations served by recycled sheaves.
 */
struct rnode {
	struct rcu_head rcu;
	char payload[48];
};
static struct kmem_cache *rcu_cache;

static void rnode_cache_free(struct rcu_head *h)
{
	kmem_cache_free(rcu_cache, caa_container_of(h, struct rnode, rcu));
}

static void rnode_free(struct rcu_head *h)
{
	free(caa_container_of(h, struct rnode, rcu));
}

static double run_rcu(const struct contender *ct, struct ctx c, uint64_t n)
{
	uint64_t warm = warmup_of(n), total = warm + n, t0 = 0;
	bool sheaves = ct->kind != K_MALLOC && ct->sheaf_capacity;
	rcu_cache = c.cache;
	rcu_register_thread();
	for (uint64_t i = 0; i < total; i++) {
		if (i == warm)
			t0 = bench_now_ns();
		if (sheaves) {
			struct rnode *o = use(kmem_cache_alloc(c.cache, GFP_KERNEL));
			kfree_rcu(o, rcu);
		} else if (ct->kind != K_MALLOC) {
			struct rnode *o = use(kmem_cache_alloc(c.cache, GFP_KERNEL));
			call_rcu(&o->rcu, rnode_cache_free);
		} else {
			struct rnode *o = use(malloc(c.size));
			call_rcu(&o->rcu, rnode_free);
		}
	}
	if (sheaves)
		kvfree_rcu_barrier();
	else
		rcu_barrier();
	uint64_t t1 = bench_now_ns();
	if (sheaves)
		printf("Y %.4f\n", (double)sheaf_rcu_recycled_objects(c.cache) /
			       (double)total);
	rcu_unregister_thread();
	return (double)(t1 - t0) / (double)n;
}

/*
 * prealloc-32: get 32 objects ready for a section that must not fail, use
 * one, give the rest back, free the one (a maple tree write).  libsheaf with
 * sheaves: kmem_cache_prefill_sheaf(32) + kmem_cache_alloc_from_sheaf() +
 * kmem_cache_return_sheaf() + kmem_cache_free().  classic (no sheaves): the
 * old pattern, kmem_cache_alloc_bulk(32) + kmem_cache_free_bulk(31) +
 * kmem_cache_free().  Peers: 32 malloc() + 31 free() + free().
 * bulk-32: the bulk pattern for every libsheaf cache (sheaves or not).
 */
static double run_prealloc(const struct contender *ct, struct ctx c,
			   uint64_t n, bool prefill)
{
	void *p[32];
	uint64_t warm = warmup_of(n), t0 = 0;
	for (uint64_t i = 0; i < warm + n; i++) {
		if (i == warm)
			t0 = bench_now_ns();
		if (ct->kind == K_MALLOC) {
			for (int k = 0; k < 32; k++)
				p[k] = malloc(c.size);
			use(p[0]);
			for (int k = 1; k < 32; k++)
				free(p[k]);
			free(p[0]);
		} else if (prefill) {
			struct slab_sheaf *sh = kmem_cache_prefill_sheaf(c.cache, GFP_KERNEL, 32);
			if (!sh)
				out_of_memory();
			void *o = use(kmem_cache_alloc_from_sheaf(c.cache, GFP_NOWAIT, sh));
			kmem_cache_return_sheaf(c.cache, GFP_KERNEL, sh);
			kmem_cache_free(c.cache, o);
		} else {
			if (kmem_cache_alloc_bulk(c.cache, GFP_KERNEL, 32, p) != 32)
				out_of_memory();
			use(p[0]);
			kmem_cache_free_bulk(c.cache, 31, &p[1]);
			kmem_cache_free(c.cache, p[0]);
		}
	}
	return (double)(bench_now_ns() - t0) / (double)n;
}

/*
 * churn: see the header.  The node's first bytes are its rcu_head.
 */
#define CHURN_LIVE 20000

struct cnode {
	struct rcu_head rcu;
	char pad[256 - sizeof(struct rcu_head)];
};

static struct kmem_cache *churn_cache;

static inline uint32_t rng32(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void cnode_cache_free(struct rcu_head *h)
{
	kmem_cache_free(churn_cache, caa_container_of(h, struct cnode, rcu));
}

static void cnode_free(struct rcu_head *h)
{
	free(caa_container_of(h, struct cnode, rcu));
}

static void churn_write(const struct contender *ct, struct ctx c, void **live,
			uint32_t *x)
{
	void *p[32];
	unsigned int worst = 16 + rng32(x) % 17, k = 1 + rng32(x) % 4;
	if (ct->kind == K_MALLOC) {
		for (unsigned int i = 0; i < worst; i++)
			if (!(p[i] = malloc(c.size)))
				out_of_memory();
		for (unsigned int i = k; i < worst; i++)
			free(p[i]);
	} else if (sheaf_cache_capacity(c.cache)) {
		struct slab_sheaf *sh = kmem_cache_prefill_sheaf(c.cache, GFP_KERNEL, worst);
		if (!sh)
			out_of_memory();
		for (unsigned int i = 0; i < k; i++)
			p[i] = kmem_cache_alloc_from_sheaf(c.cache, GFP_NOWAIT, sh);
		kmem_cache_return_sheaf(c.cache, GFP_KERNEL, sh);
	} else {
		if (kmem_cache_alloc_bulk(c.cache, GFP_KERNEL, worst, p) != (int)worst)
			out_of_memory();
		kmem_cache_free_bulk(c.cache, worst - k, &p[k]);
	}
	for (unsigned int i = 0; i < k; i++) {
		use(p[i]);
		unsigned int slot = rng32(x) % CHURN_LIVE;
		struct cnode *old = live[slot];
		live[slot] = p[i];
		bool rcu = rng32(x) % 4 != 0;
		if (ct->kind == K_MALLOC) {
			if (rcu)
				call_rcu(&old->rcu, cnode_free);
			else
				free(old);
		} else if (sheaf_cache_capacity(c.cache)) {
			if (rcu)
				kfree_rcu(old, rcu);
			else
				kmem_cache_free(c.cache, old);
		} else {
			if (rcu)
				call_rcu(&old->rcu, cnode_cache_free);
			else
				kmem_cache_free(c.cache, old);
		}
	}
}

static double run_churn(const struct contender *ct, struct ctx c, uint64_t n)
{
	void **live = malloc(CHURN_LIVE * sizeof(*live));
	uint32_t x = 0x1234567u;
	if (!live)
		out_of_memory();
	churn_cache = c.cache;
	rcu_register_thread();
	for (int i = 0; i < CHURN_LIVE; i++) {
		live[i] = ct->kind == K_MALLOC ? malloc(c.size)
					       : kmem_cache_alloc(c.cache, GFP_KERNEL);
		if (!live[i])
			out_of_memory();
		use(live[i]);
	}
	uint64_t warm = warmup_of(n), t0 = 0;
	for (uint64_t i = 0; i < warm + n; i++) {
		if (i == warm)
			t0 = bench_now_ns();
		churn_write(ct, c, live, &x);
	}
	double ns = (double)(bench_now_ns() - t0) / (double)n;
	if (ct->kind != K_MALLOC && sheaf_cache_capacity(c.cache)) {
		/* Where the objects came from: counted after the timed writes. */
		sheaf_stats_enable(true);
		sheaf_stats_reset(c.cache);
		for (uint64_t i = 0; i < n / 10 + 1; i++)
			churn_write(ct, c, live, &x);
		uint64_t out = sheaf_stats_get(c.cache, SHEAF_STAT_ALLOC_FASTPATH) +
			       sheaf_stats_get(c.cache, SHEAF_STAT_ALLOC_SLOWPATH) +
			       sheaf_stats_get(c.cache, SHEAF_STAT_ALLOC_FROM_SHEAF);
		uint64_t slabs = sheaf_stats_get(c.cache, SHEAF_STAT_SHEAF_REFILL) +
				 sheaf_stats_get(c.cache, SHEAF_STAT_ALLOC_SLOWPATH);
		printf("Y %.4f\n", out ? (double)slabs / (double)out : 0.0);
	}
	for (int i = 0; i < CHURN_LIVE; i++) {
		if (ct->kind == K_MALLOC)
			free(live[i]);
		else
			kmem_cache_free(c.cache, live[i]);
	}
	if (ct->kind == K_MALLOC)
		rcu_barrier();
	else
		kvfree_rcu_barrier();
	rcu_barrier();
	rcu_unregister_thread();
	free(live);
	return ns;
}

/*
 * vma: VMA-like churn on the RCU range tree of lib/rtree (the maple tree's
 * role): a tree of about VMA_LIVE page-aligned ranges in a 64 GiB space,
 * one writer doing mmap/munmap-like operations (half inserts of a random
 * range where a lookup and a next-entry search show it free, half removals
 * of a random live range) while a reader thread does lockless lookups of
 * random addresses under rcu_read_lock().  Each write reserves its worst
 * case of nodes before the writer lock and frees the nodes it replaced
 * through RCU: sheaf with kmem_cache_prefill_sheaf() and kfree_rcu() on a
 * cache with sheaves (capacity 32, the maple node cache's), classic with
 * kmem_cache_alloc_bulk()/free_bulk() and call_rcu() on the cache without
 * sheaves, peers with malloc()/free() and call_rcu().  ns per write; the
 * reader's lookups per second are printed as "X", and the CPU time a write
 * of every thread but the reader (the writer's and the RCU workers') as
 * "U": on a loaded machine the writer waits for a CPU, which ns per write
 * counts and U does not.
 */
#define VMA_PAGE 4096ull
#define VMA_SPACE (1ull << 36)
#define VMA_LIVE 2000

static struct rtree vma_tree;
static _Atomic bool vma_stop;
static _Alignas(64) _Atomic uint64_t vma_lookups; /* the reader's line */

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void *vma_reader(void *arg)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull, n = 0;
	(void)arg;
	rcu_register_thread();
	while (!atomic_load_explicit(&vma_stop, memory_order_relaxed)) {
		struct rtree_entry e;
		rcu_read_lock();
		(void)rtree_find(&vma_tree, xorshift(&rng) % VMA_SPACE, &e);
		rcu_read_unlock();
		if ((++n & 255) == 0)	/* the writer reads it at t0 and t1 */
			atomic_store_explicit(&vma_lookups, n, memory_order_relaxed);
	}
	rcu_unregister_thread();
	return NULL;
}

struct vma { uint64_t s, e; };

/* One writer operation: insert a random free range or remove a live one. */
static void vma_op(struct vma *live, size_t *nlive, uint64_t *rng, bool insert)
{
	if (insert && *nlive < 2 * VMA_LIVE) {
		uint64_t len = VMA_PAGE * (1 + xorshift(rng) % 16);
		uint64_t s = (xorshift(rng) % (VMA_SPACE - len)) & ~(VMA_PAGE - 1);
		struct rtree_entry e;
		rcu_read_lock();
		bool busy = rtree_find(&vma_tree, s, &e) ||
			    (rtree_find_after(&vma_tree, s, &e) && e.start < s + len);
		rcu_read_unlock();
		if (!busy) {
			int rc = rtree_insert(&vma_tree, s, s + len, (void *)(uintptr_t)s);
			if (rc == -ENOMEM)
				out_of_memory();
			if (rc == 0)
				live[(*nlive)++] = (struct vma){ s, s + len };
		}
	} else if (*nlive) {
		size_t i = xorshift(rng) % *nlive;
		if (rtree_remove(&vma_tree, live[i].s, live[i].e) != 0) {
			printf("E rtree_remove failed\n");
			_exit(1);
		}
		live[i] = live[--*nlive];
	}
}

static double run_vma(const struct contender *ct, struct ctx c, uint64_t n)
{
	enum rtree_kind kind = ct->kind == K_MALLOC ? RTREE_MALLOC :
			       sheaf_cache_capacity(c.cache) ? RTREE_SHEAVES : RTREE_BULK;
	struct vma *live = calloc(2 * VMA_LIVE, sizeof(*live));
	uint64_t rng = 12345, warm = warmup_of(n);
	size_t nlive = 0;
	pthread_t rt;

	if (!live)
		out_of_memory();
	rcu_register_thread();
	if (rtree_init(&vma_tree, kind, c.cache) != 0)
		out_of_memory();
	while (nlive < VMA_LIVE)
		vma_op(live, &nlive, &rng, true);
	/* The warm-up runs with the reader, as the measured writes do: grace
	 * periods are longer with it, and so is the memory in flight that
	 * the node allocator has to grow to. */
	if (pthread_create(&rt, NULL, vma_reader, NULL) != 0)
		bench_die("pthread_create failed");
	for (uint64_t op = 0; op < warm; op++)
		vma_op(live, &nlive, &rng, (op & 1) == 0);
	clockid_t rclk;
	bool cpu_ok = pthread_getcpuclockid(rt, &rclk) == 0;
	uint64_t l0 = atomic_load(&vma_lookups);
	uint64_t p0 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID), r0 = cpu_ok ? bench_clock_ns(rclk) : 0;
	uint64_t t0 = bench_now_ns();
	for (uint64_t op = 0; op < n; op++)
		vma_op(live, &nlive, &rng, (op & 1) == 0);
	uint64_t t1 = bench_now_ns();
	uint64_t p1 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID), r1 = cpu_ok ? bench_clock_ns(rclk) : 0;
	uint64_t l1 = atomic_load(&vma_lookups);
	atomic_store(&vma_stop, true);
	pthread_join(rt, NULL);
	printf("X %.0f\n", (double)(l1 - l0) / ((double)(t1 - t0) / 1e9));
	/* CPU time a write, every thread's but the reader's (a clock that
	 * could not be read gives no line) */
	if (cpu_ok && p0 && p1 && r0 && r1 && p1 - p0 >= r1 - r0)
		printf("U %.1f\n", (double)((p1 - p0) - (r1 - r0)) / (double)n);
	while (nlive)
		vma_op(live, &nlive, &rng, false);
	if (kind == RTREE_SHEAVES)
		kvfree_rcu_barrier();
	else
		rcu_barrier();
	rtree_destroy(&vma_tree);
	rcu_unregister_thread();
	free(live);
	return (double)(t1 - t0) / (double)n;
}

/*
 * phase: see the header.  The main thread switches the phases and samples
 * the cache every PHASE_SAMPLE_MS on an absolute clock; the workers run
 * the phase they read before each round, and count their pairs and their
 * time per phase.  A round never spans two phases' counts: it is counted
 * in the phase it started in (a round is 1000 pairs, microseconds).
 */
static unsigned int phase_ms;		/* --phase-ms: phases 1 and 2; 3 is twice */
static _Atomic int phase_now = -1;	/* -1 before the start, 1..3, 0: stop */

struct phase_worker {
	pthread_t th;
	const struct impl *im;
	struct ctx c;
	int cpu;			/* -1: not pinned */
	_Atomic uint64_t ops;		/* pairs so far, all phases (the sampler's) */
	uint64_t pairs[4], t_first[4], t_last[4];	/* per phase 1..3 */
	_Atomic bool ready;
};

struct phase_sample {
	double t_ms;
	int phase;
	unsigned int capacity, barn_limit;
	uint64_t ops;
};

static void *phase_worker_main(void *arg)
{
	struct phase_worker *w = arg;
	const struct impl *im = w->im;
	void **v = calloc(BATCH, sizeof(*v));
	unsigned int spins = 0;
	int p;

	if (!v)
		out_of_memory();
	if (w->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		(void)sched_setaffinity(0, sizeof(set), &set);
	}
	void *keep = im->alloc1(w->c);	/* as run_hot: one object stays live */
	atomic_store(&w->ready, true);
	while (atomic_load_explicit(&phase_now, memory_order_acquire) < 0)
		backoff(&spins);
	while ((p = atomic_load_explicit(&phase_now, memory_order_acquire)) > 0) {
		uint64_t t0 = bench_now_ns(), n;
		if (p == 1) {
			im->hot(w->c, PHASE_HOT_CHUNK);
			n = PHASE_HOT_CHUNK;
		} else if (p == 2) {
			im->lifo(w->c, v, 1);
			n = BATCH;
		} else {
			struct timespec nap = { 0, 1000000 };
			im->hot(w->c, PHASE_LIGHT_PAIRS);
			n = PHASE_LIGHT_PAIRS;
			nanosleep(&nap, NULL);
		}
		uint64_t t1 = bench_now_ns();
		if (!w->pairs[p])
			w->t_first[p] = t0;
		w->t_last[p] = t1;
		w->pairs[p] += n;
		atomic_store_explicit(&w->ops, atomic_load_explicit(&w->ops, memory_order_relaxed) + n,
				      memory_order_relaxed);
	}
	im->free1(w->c, keep);
	free(v);
	return NULL;
}

/* ns per pair of one thread in phase p: the threads' times over their pairs. */
static double phase_ns(const struct phase_worker *w, unsigned int nw, int p)
{
	uint64_t t = 0, n = 0;
	for (unsigned int i = 0; i < nw; i++)
		if (w[i].pairs[p]) {
			t += w[i].t_last[p] - w[i].t_first[p];
			n += w[i].pairs[p];
		}
	return n ? (double)t / (double)n : -1;
}

static double run_phase(const struct impl *im, struct ctx c, unsigned int nthreads)
{
	struct phase_worker w[MAX_THREADS];
	uint64_t end[4] = { 0, phase_ms, 2ull * phase_ms, 4ull * phase_ms };
	size_t max = 4u * phase_ms / PHASE_SAMPLE_MS + 8, ns = 0;
	struct phase_sample *smp = calloc(max, sizeof(*smp));
	int allowed[CPU_SETSIZE], nallowed = 0, cur = 1;
	struct sheaf_cache_limits l = { 0 };
	cpu_set_t set;

	if (!smp)
		out_of_memory();
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &set))
				allowed[nallowed++] = cpu;
	memset(w, 0, sizeof(w));
	for (unsigned int i = 0; i < nthreads; i++) {
		w[i].im = im;
		w[i].c = c;
		w[i].cpu = nallowed ? allowed[i % (unsigned int)nallowed] : -1;
		if (pthread_create(&w[i].th, NULL, phase_worker_main, &w[i]) != 0)
			bench_die("pthread_create failed");
	}
	for (unsigned int i = 0, spins = 0; i < nthreads; i++)
		while (!atomic_load(&w[i].ready))
			backoff(&spins);

	uint64_t t0 = bench_now_ns();
	atomic_store_explicit(&phase_now, 1, memory_order_release);
	for (;;) {
		uint64_t el = bench_now_ns() - t0;
		int p = el < end[1] * 1000000 ? 1 : el < end[2] * 1000000 ? 2 :
			el < end[3] * 1000000 ? 3 : 0;
		if (p != cur) {
			atomic_store_explicit(&phase_now, p, memory_order_release);
			cur = p;
		}
		if (ns < max) {		/* the last one (p == 0): the end of phase 3 */
			struct phase_sample *x = &smp[ns++];
			sheaf_cache_limits(c.cache, &l);
			x->t_ms = (double)el / 1e6;
			x->phase = p ? p : 3;
			x->capacity = l.capacity;
			x->barn_limit = l.barn_limit;
			for (unsigned int i = 0; i < nthreads; i++)
				x->ops += atomic_load_explicit(&w[i].ops, memory_order_relaxed);
		}
		if (!p)
			break;
		/* the next tick of the grid (a late wake-up skips ticks) */
		uint64_t tick = PHASE_SAMPLE_MS * 1000000ull;
		uint64_t next = t0 + (el / tick + 1) * tick;
		struct timespec ts = { (time_t)(next / 1000000000ull),
				       (long)(next % 1000000000ull) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
	for (unsigned int i = 0; i < nthreads; i++)
		pthread_join(w[i].th, NULL);

	/* base and max, phase 1's ns per pair, then the samples */
	printf("Q %u %u %.4f\n", l.capacity_base, l.capacity_max, phase_ns(w, nthreads, 1));
	for (size_t i = 0; i < ns; i++)
		printf("P %.1f %d %u %u %llu\n", smp[i].t_ms, smp[i].phase, smp[i].capacity,
		       smp[i].barn_limit, (unsigned long long)smp[i].ops);
	free(smp);
	return phase_ns(w, nthreads, 2);
}

static int child_main(int ci, int wi, uint64_t iters)
{
	const struct contender *ct = &contenders[ci];
	const struct workload *wl = &workloads[wi];
	const struct impl *im = ct->kind == K_SLAB ? &impl_slab :
				ct->kind == K_SLAB_TRUST ? &impl_slabt : &impl_libc;
	struct ctx c = { .cache = NULL, .size = wl->size };
	uint64_t n = iters / wl->iters_div ? iters / wl->iters_div : 1;
	void *sym = dlsym(RTLD_DEFAULT, "malloc");
	Dl_info di;
	double ns;

	/* a hung child dies */
	alarm((unsigned int)(60 + iters / 100000 + (wl->type == W_PHASE ? 4 * phase_ms / 1000 : 0)));
	if (!sym || !dladdr(sym, &di) || !di.dli_fname)
		di.dli_fname = "?";
	for (int i = 0; i < NC; i++) {	/* the preloaded one, or none */
		const char *lib = contenders[i].malloc_from;
		if (lib && (strstr(di.dli_fname, lib) != NULL) != (i == ci)) {
			printf("E malloc comes from %s\n", di.dli_fname);
			return 1;
		}
	}
	if (ct->kind != K_MALLOC) {
		struct kmem_cache_args args = { 0 };
		char name[64];

		args.sheaf_capacity = !ct->sheaf_capacity ? 0
				      : wl->capacity ? wl->capacity : sheaf_auto_capacity(wl->size);
		/* A maple-tree-like node cache asks for 32 (the kernel 7.0 rule:
		 * the requested capacity is a minimum over the automatic one). */
		if (args.sheaf_capacity && (wl->type == W_PREALLOC || wl->type == W_BULK32 ||
					    wl->type == W_VMA || wl->type == W_CHURN) &&
		    args.sheaf_capacity < 32)
			args.sheaf_capacity = 32;
		snprintf(name, sizeof(name), "bench-%s", wl->name);
		c.cache = kmem_cache_create(name, wl->size, &args,
					    wl->type == W_VMA ? SLAB_HWCACHE_ALIGN : 0);
		if (!c.cache) {
			printf("E kmem_cache_create(%s): %s\n", name, strerror(errno));
			return 1;
		}
		printf("C %u\n", sheaf_cache_capacity(c.cache));
		struct sheaf_cache_limits l;
		if (ct->fixed && sheaf_cache_limits(c.cache, &l) == 0 && l.adaptive) {
			printf("E %s: the cache is adaptive (%s not in effect)\n", ct->name,
			       ct->env);
			return 1;
		}
	}

	if (wl->type == W_HOT || wl->type == W_BATCH_LIFO || wl->type == W_BATCH_FIFO ||
	    wl->type == W_PREALLOC || wl->type == W_BULK32)
		pin_last_cpu();
	switch (wl->type) {
	case W_HOT:
		ns = run_hot(im, c, n);
		break;
	case W_BATCH_LIFO:
	case W_BATCH_FIFO:
		ns = run_batch(im, c, n, wl->type == W_BATCH_FIFO);
		break;
	case W_RCU:
		ns = run_rcu(ct, c, n);
		break;
	case W_VMA:
		ns = run_vma(ct, c, n);
		break;
	case W_CHURN:
		ns = run_churn(ct, c, n);
		break;
	case W_PREALLOC:
	case W_BULK32:
		ns = run_prealloc(ct, c, n, wl->type == W_PREALLOC &&
				  ct->kind != K_MALLOC && sheaf_cache_capacity(c.cache));
		break;
	case W_PHASE:
		ns = run_phase(im, c, wl->threads);
		break;
	case W_REMOTE:
	case W_THREADS: {
		struct team t = { .im = im, .c = c, .n = n, .nthreads = wl->threads,
				  .remote = wl->type == W_REMOTE };
		ns = t.remote ? run_remote(&t) : (double)run_team(&t) / (double)n;
		break;
	}
	default:
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("M %ld\n", ru.ru_maxrss);	/* peak resident KiB, whole child */
	printf("R %.4f\n", ns);

	if (c.cache) {
		if (ci == C_SHEAF && !strcmp(wl->name, "hot-64") &&
		    sheaf_stats_enabled()) {
			printf("S\n");		/* the rest of the output: stats */
			sheaf_stats_print(c.cache, stdout);
		}
		kmem_cache_destroy(c.cache);
	}
	return fflush(stdout) ? 1 : 0;
}

/*
 * Memory held after a burst: allocate BURST objects of 64 bytes on one
 * thread, free them all, and report what the cache keeps cached (objects in
 * sheaves and barns, or the classic per-CPU freelist and slab), then the
 * same after 2 s without a call (the idle drain, SHEAF_IDLE_MS, empties
 * idle sheaves and barns by itself) and after kmem_cache_shrink().  Runs
 * in the parent, once per cache kind.
 */
static void print_memory_burst(void)
{
	enum { BURST = 100000 };
	void **p = malloc(BURST * sizeof(*p));
	if (!p)
		out_of_memory();
	printf("\n### Memory after a burst of %d allocations of 64 bytes, all freed\n\n",
	       BURST);
	printf("| cache | cached objects | cached KiB | slabs | after 2 s idle: cached | slabs "
	       "| after shrink: cached | slabs |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int k = 0; k < 2; k++) {
		struct kmem_cache_args args = { 0 };
		args.sheaf_capacity = k == 0 ? sheaf_auto_capacity(64) : 0;
		struct kmem_cache *c = kmem_cache_create(k == 0 ? "burst-sheaf" : "burst-classic",
							 64, &args, 0);
		if (!c)
			bench_die("kmem_cache_create: %s", strerror(errno));
		for (int i = 0; i < BURST; i++)
			if (!(p[i] = kmem_cache_alloc(c, GFP_KERNEL)))
				out_of_memory();
		for (int i = 0; i < BURST; i++)
			kmem_cache_free(c, p[i]);
		size_t held = sheaf_cache_cached_objects(c), slabs = sheaf_cache_slabs(c);
		struct timespec idle = { 2, 0 };
		while (nanosleep(&idle, &idle) != 0 && errno == EINTR)
			;
		size_t idle_held = sheaf_cache_cached_objects(c);
		size_t idle_slabs = sheaf_cache_slabs(c);
		kmem_cache_shrink(c);
		printf("| %s (capacity %u) | %zu | %.1f | %zu | %zu | %zu | %zu | %zu |\n",
		       k == 0 ? "sheaf" : "classic", sheaf_cache_capacity(c), held,
		       (double)held * 64 / 1024, slabs, idle_held, idle_slabs,
		       sheaf_cache_cached_objects(c), sheaf_cache_slabs(c));
		kmem_cache_destroy(c);
	}
	free(p);
}

/* ------------------------------------------------------------ parent */

static bool wsel[MAXW], csel[NC];
static int order[NC], nc;		/* selected, available contenders */
static unsigned int reps;
static char **envs[NC];			/* each contender's environment */
static struct bench_cell cells[MAXW][NC];
static double med[MAXW][NC];		/* medians, -1: none */
static double recycled_share[MAXW][NC];	/* last rep (rcu); -1: none */
/* A mean over the repetitions of a child's extra line. */
struct mean { double sum; unsigned int n; };
static void mean_add(struct mean *m, const char *v) { m->sum += strtod(v, NULL); m->n++; }
static double mean_of(const struct mean *m) { return m->n ? m->sum / m->n : -1; }
static struct mean lookups[MAXW][NC];	/* vma: reader lookups/s ("X") */
static struct mean cpu_write[MAXW][NC];	/* vma: CPU ns a write but the reader's ("U") */
static char stats_text[16384];
static unsigned int sheaf_capacity_seen = UINT32_MAX, failures;
static char **wenvs[MAXW][NC];		/* with a workload's own variable */

/* phase: the samples of each contender's last successful repetition, and
 * of the run going on (staged until it succeeds). */
struct phase_run {
	struct phase_sample *s;
	size_t n;
	unsigned int base, max;
	double phase1_ns;
};
static struct phase_run phase_runs[NC], phase_stage;

/* A child's lines beyond the common protocol (bench_run_child). */
struct child_ctx {
	int wi, ci;
	bool in_stats;		/* after "S": the statistics table */
};

static bool child_line(void *arg, char *line)
{
	struct child_ctx *x = arg;
	if (x->in_stats) {
		size_t len = strlen(stats_text);
		snprintf(stats_text + len, sizeof(stats_text) - len, "%s", line);
		return true;
	}
	if (!strcmp(line, "S\n")) {
		x->in_stats = true;
		stats_text[0] = '\0';	/* keep the last run's only */
	} else if (line[0] == 'X' && line[1] == ' ') {
		mean_add(&lookups[x->wi][x->ci], line + 2);
	} else if (line[0] == 'U' && line[1] == ' ') {
		mean_add(&cpu_write[x->wi][x->ci], line + 2);
	} else if (line[0] == 'Y' && line[1] == ' ') {
		recycled_share[x->wi][x->ci] = strtod(line + 2, NULL);
	} else if (line[0] == 'P' && line[1] == ' ') {
		struct phase_sample *p = &phase_stage.s[phase_stage.n];
		unsigned long long ops;
		if (phase_stage.n < PHASE_MAX_SAMPLES &&
		    sscanf(line + 2, "%lf %d %u %u %llu", &p->t_ms, &p->phase, &p->capacity,
			   &p->barn_limit, &ops) == 5) {
			p->ops = ops;
			phase_stage.n++;
		}
	} else if (line[0] == 'Q' && line[1] == ' ') {
		if (sscanf(line + 2, "%u %u %lf", &phase_stage.base, &phase_stage.max,
			   &phase_stage.phase1_ns) != 3)
			phase_stage.base = phase_stage.max = 0;
	} else if (line[0] == 'C' && line[1] == ' ' && x->ci == C_SHEAF) {
		sheaf_capacity_seen = (unsigned int)strtoul(line + 2, NULL, 10);
	} else {
		return false;
	}
	return true;
}

static const char *child_exe;
static uint64_t child_iters;

/* One measurement: this program re-executed as the child of (ci, wi). */
static bool run_child(int wi, int ci, double *ns, long *rss, char *err,
		      size_t errlen)
{
	char a0[] = "sheafbench", a1[64], a2[64], a3[32], a4[32];
	char *argv[] = { a0, a1, a2, a3, a4, NULL };
	struct child_ctx x = { .wi = wi, .ci = ci };
	char **env = envs[ci];
	snprintf(a1, sizeof(a1), "--child=%s", contenders[ci].name);
	snprintf(a2, sizeof(a2), "--workload=%.15s", workloads[wi].name);
	snprintf(a3, sizeof(a3), "--iters=%llu", (unsigned long long)child_iters);
	snprintf(a4, sizeof(a4), "--phase-ms=%u", phase_ms);
	if (workloads[wi].env) {
		if (!wenvs[wi][ci])
			wenvs[wi][ci] = bench_env_with(envs[ci], workloads[wi].env);
		env = wenvs[wi][ci];
	}
	if (!phase_stage.s && !(phase_stage.s = calloc(PHASE_MAX_SAMPLES,
							 sizeof(*phase_stage.s))))
		bench_die("out of memory");
	phase_stage.n = 0;
	phase_stage.base = phase_stage.max = 0;
	phase_stage.phase1_ns = -1;
	if (!bench_run_child(child_exe, argv, env, child_line, &x, ns, rss, err, errlen))
		return false;
	if (workloads[wi].type == W_PHASE && phase_stage.n) {
		struct phase_run *r = &phase_runs[ci];
		struct phase_sample *keep = r->s;
		if (!keep && !(keep = calloc(PHASE_MAX_SAMPLES, sizeof(*keep))))
			bench_die("out of memory");
		memcpy(keep, phase_stage.s, phase_stage.n * sizeof(*keep));
		*r = phase_stage;
		r->s = keep;
	}
	return true;
}

static void print_facts(bool quick, uint64_t iters)
{
	char model[256] = "unknown CPU", line[512];
	struct utsname un;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ':');
		if (!strncmp(line, "model name", 10) && v) {
			v += 1 + strspn(v + 1, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(model, sizeof(model), "%s", v);
			break;
		}
	}
	if (f)
		fclose(f);
	if (uname(&un) != 0)
		snprintf(un.release, sizeof(un.release), "?");
	printf("Machine: %s | nproc %ld | kernel %s | glibc %s | libsheaf per-CPU "
	       "mode %s | compiler %s%s\n", model, sysconf(_SC_NPROCESSORS_ONLN),
	       un.release, gnu_get_libc_version(), sheaf_percpu_mode(),
#ifdef __clang__
	       "", __VERSION__);
#else
	       "gcc ", __VERSION__);
#endif
	printf("Run: %s, median of %u reps, %llu iterations per run (remote: %llu "
	       "objects; hot-64-tN: per thread; vma: %llu writes), batches of %d; "
	       "phase: %u + %u + %u ms\n",
	       quick ? "quick" : "full", reps, (unsigned long long)iters,
	       (unsigned long long)(iters / REMOTE_DIV),
	       (unsigned long long)(iters / VMA_DIV), BATCH, phase_ms, phase_ms,
	       2 * phase_ms);
#ifndef __OPTIMIZE__
	printf("WARNING: sheafbench was built without optimisation\n");
#endif
	fflush(stdout);
}

/* Selected, except the trusting contender where it would run the same
 * code as sheaf, and any but sheaf and sheaf-fixed where a workload is
 * about sheaves alone. */
static bool cell_wanted(int wi, int ci)
{
	return wsel[wi] &&
	       !(workloads[wi].same_as_sheaf && contenders[ci].kind == K_SLAB_TRUST) &&
	       !(workloads[wi].sheaves_only &&
		 !(contenders[ci].kind == K_SLAB && contenders[ci].sheaf_capacity));
}

static void run_all(const char *exe, uint64_t iters)
{
	const struct bench_grid g = {
		.reps = reps, .nw = (unsigned int)NW, .nc = (unsigned int)nc, .order = order,
		.cells = &cells[0][0], .row = NC, .wanted = cell_wanted,
		.name = name_of, .run = run_child,
	};
	child_exe = exe;
	child_iters = iters;
	failures = bench_run_grid(&g);
}

/* Header row and separator: "| workload | <extra> | name... |". */
static void print_header(const char *extra, const char *extra_sep)
{
	printf("| workload   |%s", extra);
	for (int k = 0; k < nc; k++)
		printf(" %10s |", contenders[order[k]].name);
	printf("\n|------------|%s", extra_sep);
	for (int k = 0; k < nc; k++)
		printf("-----------:|");
	printf("\n");
}

/*
 * The table of a workload whose child reports a share ("Y"): ns per
 * `unit`, Mobjects/s when `rate`, peak RSS, the share, and against
 * classic: throughput (rate) or time.
 */
static void print_share_table(enum wtype type, const char *title, const char *unit,
			      const char *share, bool rate)
{
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi] || workloads[wi].type != type)
			continue;
		printf("\n### %s\n\n| contender | ns/%s |%s peak RSS MiB | %s | %s vs classic |\n",
		       title, unit, rate ? " Mobjects/s |" : "", share,
		       rate ? "throughput" : "time");
		printf("|---|---:|%s---:|---:|---:|\n", rate ? "---:|" : "");
		double cl = med[wi][C_CLASSIC];
		for (int k = 0; k < nc; k++) {
			int ci = order[k];
			double v = med[wi][ci];
			if (v < 0)
				continue;
			printf("| %s |", contenders[ci].name);
			bench_print_cell(v, rate ? 2 : 1, 9);
			if (rate)
				bench_print_cell(v > 0 ? 1000.0 / v : -1, 1, 10);
			bench_print_cell(cells[wi][ci].rss_kb ? cells[wi][ci].rss_kb / 1024.0 : -1, 1, 12);
			if (recycled_share[wi][ci] >= 0)
				printf(" %5.1f%% |", 100.0 * recycled_share[wi][ci]);
			else
				printf(" - |");
			bench_print_cell(v > 0 && cl > 0 ? (rate ? cl / v : v / cl) : -1, 2, 8);
			printf("\n");
		}
	}
}

static void print_tables(void)
{
	printf("\n### ns per operation (median of %u; lower is better)\n\n", reps);
	print_header(" threads | size |", "--------:|-----:|");
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi])
			continue;
		printf("| %-10s | %7u | %4u |", workloads[wi].name,
		       workloads[wi].threads, workloads[wi].size);
		for (int k = 0; k < nc; k++)
			bench_print_cell(med[wi][order[k]], 2, 10);
		printf("\n");
	}

	if (csel[C_SHEAF]) {
		char h[40];
		printf("\n### Ratio to sheaf (contender ns / sheaf ns; > 1: slower "
		       "than sheaf)\n\n| workload   |");
		for (int k = 0; k < nc; k++) {
			snprintf(h, sizeof(h), "%s/sheaf", contenders[order[k]].name);
			if (order[k] != C_SHEAF)
				printf(" %14s |", h);
		}
		printf(" sheaf/best-peer | best peer |\n|------------|");
		for (int k = 1; k < nc; k++)
			printf("---------------:|");
		printf("----------------:|-----------|\n");
		for (int wi = 0; wi < NW; wi++) {
			double s = med[wi][C_SHEAF], best = -1;
			int bi = -1;
			if (!wsel[wi])
				continue;
			printf("| %-10s |", workloads[wi].name);
			for (int k = 0; k < nc; k++) {
				int ci = order[k];
				double v = med[wi][ci];
				if (ci == C_SHEAF)
					continue;
				bench_print_cell(s > 0 && v > 0 ? v / s : -1, 2, 14);
				if (ci >= C_FIRST_PEER && v > 0 && (best < 0 || v < best))
					best = v, bi = ci;
			}
			bench_print_cell(s > 0 && best > 0 ? s / best : -1, 2, 15);
			printf(" %-9s |\n", bi >= 0 ? contenders[bi].name : "-");
		}
	}

	bool first = true;
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi] || workloads[wi].type != W_THREADS)
			continue;
		if (first) {
			first = false;
			printf("\n### Scaling: the hot-64 loop in 1 to %u threads, "
			       "Mops/s of all threads (higher is better; %u CPUs)\n\n",
			       2 * usable_cpus() > MAX_THREADS ? MAX_THREADS : 2 * usable_cpus(),
			       usable_cpus());
			print_header(" threads |", "--------:|");
		}
		printf("| %-10s | %7u |", workloads[wi].name, workloads[wi].threads);
		for (int k = 0; k < nc; k++) {
			double v = med[wi][order[k]];
			bench_print_cell(v > 0 ? workloads[wi].threads * 1000.0 / v : -1, 1, 10);
		}
		printf("\n");
	}

	print_share_table(W_RCU, "rcu: frees through RCU (libsheaf sheaves: kfree_rcu; "
			  "classic: call_rcu + kmem_cache_free; peers: call_rcu + free)",
			  "object", "allocations from recycled sheaves", true);
}

/* vma: writes and the lockless reader's lookups. */
static void print_vma_table(void)
{
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi] || workloads[wi].type != W_VMA)
			continue;
		printf("\n### vma: VMA-like churn on the RCU range tree (node allocation: "
		       "sheaf = prefilled sheaves + kfree_rcu; classic = alloc_bulk/"
		       "free_bulk + call_rcu; peers = malloc/free + call_rcu)\n\n"
		       "writes vs classic: classic's median time over the contender's; "
		       "paired: the median over the repetitions of classic's time over "
		       "the contender's in the same rotation, which a change of the "
		       "machine's load between rotations does not move.  CPU ns/write: "
		       "the CPU time of every thread but the reader's (the writer, "
		       "the RCU and sheaf workers) a write, the mean over the "
		       "repetitions; far below ns/write, the writer waited for a "
		       "CPU.\n\n");
		printf("| contender | ns/write | CPU ns/write | writes/s (M) | "
		       "reader lookups/s (M) | writes vs classic | paired (least-greatest) |\n"
		       "|---|---:|---:|---:|---:|---:|---:|\n");
		double cl = med[wi][C_CLASSIC];
		for (int k = 0; k < nc; k++) {
			int ci = order[k];
			double v = med[wi][ci];
			if (v < 0)
				continue;
			printf("| %s |", contenders[ci].name);
			bench_print_cell(v, 1, 8);
			bench_print_cell(mean_of(&cpu_write[wi][ci]), 1, 8);
			bench_print_cell(1000.0 / v, 3, 8);
			bench_print_cell(lookups[wi][ci].n ? mean_of(&lookups[wi][ci]) / 1e6 : -1,
					 2, 8);
			bench_print_cell(cl > 0 ? cl / v : -1, 2, 8);
			double lo, hi, pr = bench_cell_paired(&cells[wi][C_CLASSIC],
							      &cells[wi][ci], &lo, &hi);
			if (pr > 0)
				printf(" %.2f (%.2f-%.2f) |\n", pr, lo, hi);
			else
				printf(" - |\n");
		}
	}
}

/* What a phase run's samples say (the last repetition's). */
struct phase_facts {
	unsigned int cap1, cap2, cap3, barn0, barn2, barn3;
	double t3, back;	/* phase 3's start; base again, ms after it (-1: never) */
};

static void phase_facts_of(const struct phase_run *r, struct phase_facts *f)
{
	*f = (struct phase_facts){ .t3 = -1, .back = -1 };
	for (size_t i = 0; i < r->n; i++) {
		const struct phase_sample *x = &r->s[i];
		if (i == 0)
			f->barn0 = x->barn_limit;
		if (x->phase == 1)
			f->cap1 = x->capacity;
		if (x->phase == 2) {
			f->cap2 = x->capacity > f->cap2 ? x->capacity : f->cap2;
			f->barn2 = x->barn_limit > f->barn2 ? x->barn_limit : f->barn2;
		}
		if (x->phase == 3) {
			if (f->t3 < 0)
				f->t3 = x->t_ms;
			if (x->capacity == r->base && x->barn_limit == f->barn0) {
				if (f->back < 0)
					f->back = x->t_ms - f->t3;
			} else {
				f->back = -1;	/* not there yet, or left again */
			}
		}
		f->cap3 = x->capacity;
		f->barn3 = x->barn_limit;
	}
}

static void print_phase_table(void)
{
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi] || workloads[wi].type != W_PHASE)
			continue;
		printf("\n### phase: a cache's sheaf capacity over time (%u B objects, %u "
		       "threads; phases of %u, %u and %u ms: hot pairs, batches of %d, "
		       "light; SHEAF_IDLE_MS=%s; capacities from the last repetition)\n\n",
		       workloads[wi].size, workloads[wi].threads, phase_ms, phase_ms,
		       2 * phase_ms, BATCH, PHASE_IDLE_MS);
		printf("| contender | phase 2 ns/pair | vs sheaf-fixed | phase 1 ns/pair | "
		       "capacity base..max | capacity end of 1 | peak in 2 | end of 3 | "
		       "barn limit peak in 2 | end of 3 | base again, ms into 3 |\n"
		       "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
		double fx = med[wi][C_FIXED];
		for (int k = 0; k < nc; k++) {
			int ci = order[k];
			const struct phase_run *r = &phase_runs[ci];
			struct phase_facts f;
			double v = med[wi][ci];
			if (v < 0 || !r->n)
				continue;
			phase_facts_of(r, &f);
			printf("| %s |", contenders[ci].name);
			bench_print_cell(v, 2, 8);
			bench_print_cell(fx > 0 ? v / fx : -1, 2, 6);
			bench_print_cell(r->phase1_ns, 2, 8);
			printf(" %u..%u | %u | %u | %u | %u | %u |", r->base, r->max, f.cap1,
			       f.cap2, f.cap3, f.barn2, f.barn3);
			bench_print_cell(f.back, 0, 6);
			printf("\n");
		}
	}
}

/*
 * The phase samples next to the main CSV: X.csv -> X-capacity.csv, one row
 * per sample of each contender's last repetition.
 */
static void write_capacity_csv(const char *csv)
{
	char path[4096];
	size_t len = strlen(csv);
	bool any = false;
	FILE *f;

	for (int ci = 0; ci < NC; ci++)
		any = any || phase_runs[ci].n;
	if (!any)
		return;
	if (len > 4 && !strcmp(csv + len - 4, ".csv"))
		len -= 4;
	snprintf(path, sizeof(path), "%.*s-capacity.csv", (int)len, csv);
	if (!(f = fopen(path, "w"))) {
		bench_note("cannot write %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "contender,t_ms,phase,capacity,barn_limit,ops,capacity_base,"
		"capacity_max,phase_ms,idle_ms\n");
	for (int k = 0; k < nc; k++) {
		const struct phase_run *r = &phase_runs[order[k]];
		for (size_t i = 0; i < r->n; i++)
			fprintf(f, "%s,%.1f,%d,%u,%u,%llu,%u,%u,%u,%s\n", contenders[order[k]].name,
				r->s[i].t_ms, r->s[i].phase, r->s[i].capacity, r->s[i].barn_limit,
				(unsigned long long)r->s[i].ops, r->base, r->max, phase_ms,
				PHASE_IDLE_MS);
	}
	if (fclose(f) != 0)
		bench_note("error writing %s", path);
	else
		printf("CSV: %s\n", path);
}

/* Peak resident memory of each child (whole process), every workload. */
static void print_rss_table(void)
{
	printf("\n### Peak resident memory of the measuring process, MiB (the largest "
	       "of the repetitions; lower is better)\n\n");
	print_header("", "");
	for (int wi = 0; wi < NW; wi++) {
		if (!wsel[wi])
			continue;
		printf("| %-10s |", workloads[wi].name);
		for (int k = 0; k < nc; k++) {
			long kb = med[wi][order[k]] > 0 ? cells[wi][order[k]].rss_kb : 0;
			bench_print_cell(kb ? kb / 1024.0 : -1, 1, 10);
		}
		printf("\n");
	}
}

static void write_csv(const char *path)
{
	char dir[4096];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", path);	/* mkdir -p of its directory */
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
	fprintf(f, "workload,contender,threads,size,median_ns,min_ns,max_ns,reps,"
		"mops_all_threads,ratio_to_sheaf,peak_rss_kib,extra\n");
	for (int wi = 0; wi < NW; wi++)
		for (int k = 0; k < nc; k++) {
			struct bench_cell *c = &cells[wi][order[k]];
			if (!wsel[wi] || med[wi][order[k]] < 0)
				continue;
			int ci = order[k];
			double m = med[wi][ci], sh = med[wi][C_SHEAF];
			/* extra: vma reader lookups/s; rcu recycled share; churn
			 * objects from slabs per object handed out */
			double extra = lookups[wi][ci].n ? mean_of(&lookups[wi][ci]) :
				       recycled_share[wi][ci] >= 0 ? recycled_share[wi][ci] : -1;
			double lo, hi;
			bench_cell_range(c, &lo, &hi);
			fprintf(f, "%s,%s,%u,%u,%.4f,%.4f,%.4f,%u,%.4f,%.4f,%ld,%.4f\n",
				workloads[wi].name, contenders[ci].name, workloads[wi].threads,
				workloads[wi].size, m, lo, hi, c->nv,
				(workloads[wi].type == W_THREADS || workloads[wi].type == W_PHASE
				 ? workloads[wi].threads : 1) *
				1000.0 / m, sh > 0 ? m / sh : -1.0, cells[wi][ci].rss_kb, extra);
		}
	if (fclose(f) != 0)
		bench_note("error writing %s", path);
	else
		printf("\nCSV: %s\n", path);
	write_capacity_csv(path);
}

static void usage(FILE *out)
{
	fprintf(out,
"usage: sheafbench [options]\n"
"  --quick              short run: 5000000 iterations, 3 reps\n"
"  --workload A[,B]     run only these workloads\n"
"  --contender A[,B]    run only these contenders\n"
"  --reps N             repetitions per (contender, workload), median reported\n"
"                       (default 7, quick 3)\n"
"  --iters N            base iterations per run (default 50000000)\n"
"  --csv PATH           CSV output (default %s/{full,quick}.csv);\n"
"                       phase's samples go to PATH without .csv + -capacity.csv\n"
"  --phase-ms N         phase: length of phases 1 and 2 (3: twice that), ms\n"
"                       (default 1000, quick 600)\n"
"  --help               this text\n"
"Environment: SHEAF_STATS=1 also prints the libsheaf counters of the sheaf\n"
"contender's hot-64 cache (counting slows libsheaf down).\n"
"workloads: hot-64 hot-256 batch-lifo batch-fifo remote hot-64-t1 .. hot-64-tN\n"
"           (N = 2 x CPUs, at most %d) rcu prealloc-32 bulk-32 vma churn\n"
"           phase (sheaf and sheaf-fixed only; children get SHEAF_IDLE_MS=%s)\n"
"contenders: sheaf sheaf-fixed (SHEAF_ADAPTIVE=0) classic sheaf-trust glibc\n"
"            jemalloc tcmalloc mimalloc\n",
		SHEAFBENCH_RESULTS_DIR, MAX_THREADS, PHASE_IDLE_MS);
}

/* "--name value" or "--name=value"; NULL if argv[*i] is not --name. */
static uint64_t parse_count(const char *s, const char *what)
{
	unsigned long long v;
	char *end;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || s[0] == '-')
		bench_die("bad %s '%s'", what, s);
	return v;
}

static bool parse_list(const char *s, bool *sel, bool contender)
{
	char buf[512], *tok, *save = NULL;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i = find_name(tok, contender);
		if (i < 0)
			bench_die("unknown %s '%s' (see --help)",
			    contender ? "contender" : "workload", tok);
		sel[i] = true;
	}
	return true;
}

int main(int argc, char **argv)
{
	bench_prog = "sheafbench";
	bool quick = false, any_w = false, any_c = false;
	uint64_t iters = 0, r = 0, pms = 0;
	const char *csv = NULL, *child = NULL, *v;
	char exe[4096], path[4096];

	build_workloads();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return usage(stdout), 0;
		else if ((v = bench_optval(argc, argv, &i, "--workload")))
			any_w = parse_list(v, wsel, false);
		else if ((v = bench_optval(argc, argv, &i, "--contender")))
			any_c = parse_list(v, csel, true);
		else if ((v = bench_optval(argc, argv, &i, "--reps")))
			r = parse_count(v, "--reps");
		else if ((v = bench_optval(argc, argv, &i, "--iters")))
			iters = parse_count(v, "--iters");
		else if ((v = bench_optval(argc, argv, &i, "--csv")))
			csv = v;
		else if ((v = bench_optval(argc, argv, &i, "--phase-ms")))
			pms = parse_count(v, "--phase-ms");
		else if ((v = bench_optval(argc, argv, &i, "--child")))
			child = v;
		else
			usage(stderr), bench_die("unknown option '%s'", argv[i]);
	}
	if (!iters)
		iters = quick ? 5000000 : 50000000;
	if (r > 1000)
		bench_die("--reps: at most 1000");
	reps = r ? (unsigned int)r : quick ? 3 : 7;
	if (pms > PHASE_MS_MAX || (pms && pms < 5 * PHASE_SAMPLE_MS))
		bench_die("--phase-ms: %d to %d", 5 * PHASE_SAMPLE_MS, PHASE_MS_MAX);
	phase_ms = pms ? (unsigned int)pms : quick ? 600 : 1000;

	if (child) {			/* hidden: one measurement, see run_child */
		int ci = find_name(child, true), wi = 0;
		while (wi < NW && !wsel[wi])
			wi++;
		if (ci < 0 || wi == NW)
			bench_die("--child needs a known contender and a --workload");
		return child_main(ci, wi, iters);
	}

	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		bench_die("readlink /proc/self/exe: %s", strerror(errno));
	exe[len] = '\0';
	print_facts(quick, iters);
	if (sheaf_stats_enabled())
		bench_note("SHEAF_STATS is on: libsheaf counts events, which slows the sheaf "
		     "and classic contenders");
	if (getenv("SHEAF_ADAPTIVE"))
		bench_note("SHEAF_ADAPTIVE=%s is set: the sheaf contenders but sheaf-fixed run "
			   "with it", getenv("SHEAF_ADAPTIVE"));
	for (int ci = 0; ci < NC; ci++) {
		bool want = csel[ci] || !any_c;
		csel[ci] = false;
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
			recycled_share[wi][ci] = -1;
		for (int ci = 0; ci < NC; ci++)
			if (!(cells[wi][ci].v = calloc(reps, sizeof(double))))
				bench_die("out of memory");
	}

	run_all(exe, iters);
	for (int wi = 0; wi < NW; wi++)
		for (int ci = 0; ci < NC; ci++)
			med[wi][ci] = csel[ci] && wsel[wi] ? bench_cell_median(&cells[wi][ci]) : -1;
	print_tables();
	print_vma_table();
	print_share_table(W_CHURN, "churn: maple-like node traffic (prefill, take a few, "
			  "return; replaced nodes freed, 3 in 4 through RCU)", "write",
			  "objects from slabs per object handed out", false);
	print_phase_table();
	print_rss_table();
	snprintf(path, sizeof(path), "%s/%s.csv", SHEAFBENCH_RESULTS_DIR,
		 quick ? "quick" : "full");
	write_csv(csv ? csv : path);

	print_memory_burst();
	if (csel[C_SHEAF] && sheaf_capacity_seen != UINT32_MAX)
		printf("sheaf contender: the kernel's automatic sheaf capacity for the "
		       "object size (%u for 64 B, %u for 256 B), at least 32 for "
		       "prealloc-32 and bulk-32 (a maple-like node cache)\n",
		       sheaf_auto_capacity(64), sheaf_auto_capacity(256));
	if (stats_text[0])
		printf("\nlibsheaf statistics of the sheaf contender's hot-64 cache "
		       "(last run, warm-up included):\n%s", stats_text);
	else if (sheaf_stats_enabled() && csel[C_SHEAF] && wsel[0])
		bench_note("SHEAF_STATS is set but the sheaf child printed no statistics");
	if (bench_notes[0])
		printf("\nNotes:\n%s", bench_notes);
	return failures ? 1 : 0;
}
