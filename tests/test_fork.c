/* SPDX-License-Identifier: MIT */
/*
 * test_fork.c - fork() while other threads hold libsheaf's locks: one case
 * per lock.
 *
 * A child of fork() has one thread; a lock that another thread of the
 * parent held at the instant of the fork stays held there for ever, and
 * the child hangs in the first call that needs it (kmem_cache_shrink(),
 * kvfree_rcu_barrier(), destroy, its own next fork()...).  The library's
 * pthread_atfork handlers must therefore own every lock across fork().
 *
 * Each case starts background threads that loop on a path taking one lock
 * (the table below); the main thread forks FORK_ITERS times (default 1000)
 * meanwhile.  Every child (alarm(60) as a backstop) does work that needs
 * that lock and every other one: allocates and frees on the case's caches,
 * small, large (page runs) kmalloc and huge kvmalloc, sheaf_page_info(),
 * kfree_rcu_mightsleep(kmalloc(64)) and kfree_rcu() on the caches,
 * sheaf_fault_set() with a cache-name glob, kmem_cache_shrink() of each
 * cache, kvfree_rcu_barrier(), a kmem_cache_create()/destroy(), and (every
 * 8th child) one nested fork() whose grandchild allocates and exits; then
 * _exit(0).  The
 * parent reaps each child with a deadline (20 s): a child still running
 * then is killed and the case fails with "child hung after fork N while
 * <path>" and the step the child was at (a shared page).
 *
 *   case             lock                          background threads
 *   slot_sheaf       per-slot sheaf lock           3 x alloc/free, capacity 32
 *   slot_classic     classic slot (TID_BUSY/stop)  3 x alloc/free, capacity 0
 *   barn_lock        node_barn.lock                2 x alloc/free, capacity 4
 *   list_lock        kmem_cache_node.list_lock     2 x 1 KiB objects, bulk, shuffled
 *   flush_lock       kmem_cache.flush_lock         shrink + cached_objects, alloc/free
 *   slab_mutex       _sheaf_slab_mutex             create/destroy, kvfree_rcu_barrier
 *   arena_lock       pages.c arena_lock            huge kvmalloc 4-8 MiB, sheaf_page_info
 *   page_lock        pages.c page_node.lock        kmalloc 16 KiB..4 MiB, shrink (purge)
 *   info_lock        info.c info.lock              SHEAF_STATS=1 publisher asked for
 *                                                  snapshots back to back,
 *                                                  sheaf_stats_enable (re-executes
 *                                                  itself with SHEAF_STATS=1)
 *   rcu_worker_lock  rcu.c worker.lock             kfree_rcu(p, rcu) (classic), barriers
 *   rcu_batch_lock   rcu.c batch_lock              kfree_rcu_mightsleep(kmalloc(64))
 *   rcu_sheaf        slot lock, rcu_free sheaves   kfree_rcu and kfree_rcu_mightsleep
 *                                                  of batches on a sheaf cache
 *   glob_lock        debug.c glob_lock             sheaf_fault_set(.., cache=GLOB)
 *
 * kmalloc_runs.c's drain_lock (malloc_trim() under libsheaf-malloc) is tested
 * by tests/fork_malloc.c.  CTest runs this in both per-CPU modes.
 *
 * The background threads' paths hang a child only when the fork lands
 * inside a lock (a few forks in hundreds for the narrowest windows, the
 * fallback mode's slot trylock), hence 1000 forks per case.  A fork costs
 * about 20 ms on a two-CPU VM (two forks, two exits and their
 * copy-on-write faults): some 4-5 minutes per mode.
 *
 * Usage: test_fork [case-glob]   (FORK_ITERS: forks per case, default 1000)
 * Skipped (77) under TSan: it does not support threads in fork()ed
 * children, and the child's kvfree_rcu_barrier() starts one.
 *
 * Under ASan (GCC 12's runtime keeps no allocator lock across fork()), a
 * parent thread inside malloc() at the fork leaves the child's allocator
 * locked, and the child's first malloc() of that size class waits for
 * ever: its RCU worker's thread start allocates.  So the background paths
 * here call no malloc(), and the library makes none of its own on them:
 * the barriers call liburcu's rcu_barrier() (which does) only when
 * liburcu holds libsheaf callbacks, and the prefork handler waits for a
 * just-created RCU worker to be past its thread start.  A hung child's
 * threads and backtraces are printed before it is killed (dump_hung()).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
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

#include <cmocka.h>

#include <sheaf/info.h>
#include <sheaf/rcu.h>
#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include "test_util.h"

#define DEFAULT_ITERS 1000
#define HANG_SECONDS 20		/* the parent's deadline per child */
#define NESTED_HANG_SECONDS 15	/* the child's deadline for its grandchild */
#define CHILD_ALARM 60		/* the child's own backstop */
#define MAX_BG 4
#define MAX_CACHES 2

/* Objects of every case cache: room for an rcu_head (kfree_rcu). */
struct fobj {
	uint64_t stamp;
	struct rcu_head rcu;
	char pad[40];
};

/* =============================================== child progress (shared) */

enum step {
	ST_FORKED, ST_CACHE_ALLOC, ST_KMALLOC, ST_LARGE, ST_HUGE, ST_PAGE_INFO,
	ST_KFREE_RCU, ST_FAULT_GLOB, ST_SHRINK, ST_RCU_BARRIER, ST_CREATE_DESTROY,
	ST_NESTED_FORK, ST_NESTED_WAIT, ST_DONE, ST_NR
};

static const char *const step_name[ST_NR] = {
	[ST_FORKED] = "after fork() (postfork handler)",
	[ST_CACHE_ALLOC] = "kmem_cache_alloc/free on the case's caches",
	[ST_KMALLOC] = "kmalloc/kfree 8..8192",
	[ST_LARGE] = "kmalloc/kfree 16 KiB..4 MiB",
	[ST_HUGE] = "kvmalloc/kvfree 6 MiB (huge)",
	[ST_PAGE_INFO] = "sheaf_page_info",
	[ST_KFREE_RCU] = "kfree_rcu_mightsleep(kmalloc(64)) / kfree_rcu",
	[ST_FAULT_GLOB] = "sheaf_fault_set(cache=GLOB)",
	[ST_SHRINK] = "kmem_cache_shrink",
	[ST_RCU_BARRIER] = "kvfree_rcu_barrier",
	[ST_CREATE_DESTROY] = "kmem_cache_create/destroy",
	[ST_NESTED_FORK] = "nested fork()",
	[ST_NESTED_WAIT] = "waiting for the grandchild",
	[ST_DONE] = "_exit",
};

/* Child exit statuses other than 0. */
enum {
	EX_ALLOC = 2,		/* an allocation returned NULL */
	EX_NESTED_FORK = 3,	/* the nested fork() failed */
	EX_GRANDCHILD = 4,	/* the grandchild did not exit 0 */
	EX_GRANDCHILD_HUNG = 5,	/* ... within NESTED_HANG_SECONDS */
	EX_CREATE = 6,		/* kmem_cache_create() failed */
};

/* A MAP_SHARED page: where the child (and grandchild) got to. */
struct progress {
	_Atomic int step;
	_Atomic int gstep;
};
static struct progress *prog;

static inline void set_step(int s)
{
	atomic_store_explicit(&prog->step, s, memory_order_relaxed);
}

/* ========================================================= case state */

struct fork_case {
	const char *name;
	const char *path;	/* what the threads do ("while <path>") */
	unsigned int nthreads;
	void *(*fn)(void *);	/* thread body; argument: struct bg * */
	void (*setup)(void);
	void (*teardown)(void);
};

struct bg {
	void *(*fn)(void *);
	unsigned int id;
	uint64_t rng;
	atomic_ulong ops;	/* operations done (the thread is running) */
};

static struct kmem_cache *cc[MAX_CACHES];	/* the case's caches */
static atomic_bool bg_stop;

static inline bool stopping(void)
{
	return atomic_load_explicit(&bg_stop, memory_order_relaxed);
}

/* Checks in the background threads (cmocka's asserts belong to the
 * main thread): a failure ends the whole program. */
#define NEED(x)                                                                \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "test_fork: %s:%d: %s failed\n",        \
				__FILE__, __LINE__, #x);                       \
			abort();                                               \
		}                                                              \
	} while (0)

static inline void done_ops(struct bg *b, unsigned long n)
{
	atomic_fetch_add_explicit(&b->ops, n, memory_order_relaxed);
}

static struct kmem_cache *new_cache(const char *name, unsigned int size,
				    unsigned int capacity)
{
	struct kmem_cache_args args;
	memset(&args, 0, sizeof(args));
	args.sheaf_capacity = capacity;
	if (size < sizeof(struct fobj))
		size = sizeof(struct fobj);
	struct kmem_cache *s = kmem_cache_create(name, size, &args, 0);
	assert_non_null(s);
	return s;
}

/*
 * Background threads run at nice 10: on two CPUs, busy threads at the
 * forking thread's priority make every child wait for a time slice at
 * each step.  They still run whenever a CPU is free (during each fork()
 * too), and a holder preempted inside its lock is as good for the test as
 * a running one.  (SCHED_IDLE was tried: on a loaded machine the prefork
 * handler then waits long for an idle-policy thread to release a lock.)
 */
static void *bg_start(void *arg)
{
	struct bg *b = arg;
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	return b->fn(b);
}

static void destroy_caches(void)
{
	kvfree_rcu_barrier();
	for (int i = 0; i < MAX_CACHES; i++) {
		kmem_cache_destroy(cc[i]);
		cc[i] = NULL;
	}
}

/* ============================================================== helpers */

/* ============================================================ the child */

static void child_signals(void)
{
	/* cmocka's handlers would longjmp into its runner in the child. */
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
				    SIGSYS, SIGALRM };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	alarm(CHILD_ALARM);
}

static void *must(void *p)
{
	if (!p)
		_exit(EX_ALLOC);
	return p;
}

static void cache_churn(struct kmem_cache *s, unsigned int n)
{
	void *v[256];
	if (n > 256)
		n = 256;
	for (unsigned int i = 0; i < n; i++) {
		v[i] = must(kmem_cache_alloc(s, GFP_KERNEL));
		((struct fobj *)v[i])->stamp = i;
	}
	for (unsigned int i = 0; i < n; i++)
		kmem_cache_free(s, v[i]);
}

/* The grandchild: an allocation or two, then out. */
static _Noreturn void grandchild(void)
{
	child_signals();
	atomic_store(&prog->gstep, 1);
	for (int i = 0; i < MAX_CACHES; i++)
		if (cc[i])
			cache_churn(cc[i], 40);
	kfree(must(kmalloc(100, GFP_KERNEL)));
	kfree(must(kmalloc(40000, GFP_KERNEL)));
	atomic_store(&prog->gstep, 2);
	_exit(0);
}

/* The number of the fork under way (1, 2, ...), as the child sees it. */
static unsigned long fork_number;

/*
 * Everything that takes one of the library's locks, then _exit(0).  The
 * nested fork (the fork handlers run again in the child) is done by every
 * 8th child: a fork is the costly part of an iteration on this VM.
 */
static _Noreturn void child(void)
{
	child_signals();

	set_step(ST_CACHE_ALLOC);
	for (int i = 0; i < MAX_CACHES; i++)
		if (cc[i])
			cache_churn(cc[i], 200);

	set_step(ST_KMALLOC);
	for (size_t sz = 8; sz <= 8192; sz *= 2) {
		void *p = must(kmalloc(sz, GFP_KERNEL));
		memset(p, 1, sz);
		kfree(p);
	}

	set_step(ST_LARGE);
	static const size_t large[] = { 16 << 10, 64 << 10, 1 << 20, 4 << 20 };
	for (size_t i = 0; i < sizeof(large) / sizeof(large[0]); i++) {
		char *p = must(kmalloc(large[i], GFP_KERNEL));
		p[0] = p[large[i] - 1] = 1;
		kfree(p);
	}

	set_step(ST_HUGE);
	char *h = must(kvmalloc(6 << 20, GFP_KERNEL));
	h[0] = h[(6 << 20) - 1] = 1;
	kvfree(h);

	set_step(ST_PAGE_INFO);
	struct sheaf_page_info pi;
	sheaf_page_info(&pi);

	set_step(ST_KFREE_RCU);
	for (int i = 0; i < 8; i++)
		kfree_rcu_mightsleep(must(kmalloc(64, GFP_KERNEL)));
	for (int i = 0; i < MAX_CACHES; i++) {
		if (!cc[i])
			continue;
		for (int j = 0; j < 8; j++) {
			struct fobj *o = must(kmem_cache_alloc(cc[i], GFP_KERNEL));
			kfree_rcu(o, rcu);
		}
	}

	set_step(ST_FAULT_GLOB);
	/* Probability 0: armed, never fails.  Refused (-EINVAL) when the
	 * glob pool is full (glob_lock case): it still takes the lock. */
	(void)sheaf_fault_set(SHEAF_FAULT_SLAB, "1,0,0,-1,cache=fork-child-glob*");
	(void)sheaf_fault_set(SHEAF_FAULT_SLAB, "0");

	set_step(ST_SHRINK);
	for (int i = 0; i < MAX_CACHES; i++)
		if (cc[i])
			kmem_cache_shrink(cc[i]);

	set_step(ST_RCU_BARRIER);
	kvfree_rcu_barrier();

	set_step(ST_CREATE_DESTROY);
	struct kmem_cache_args args;
	memset(&args, 0, sizeof(args));
	args.sheaf_capacity = 8;
	struct kmem_cache *s = kmem_cache_create("fork-child", 48, &args, 0);
	if (!s)
		_exit(EX_CREATE);
	cache_churn(s, 50);
	kmem_cache_destroy(s);

	if (fork_number % 8 != 1) {
		set_step(ST_DONE);
		_exit(0);
	}
	set_step(ST_NESTED_FORK);
	pid_t pid = fork();
	if (pid < 0)
		_exit(EX_NESTED_FORK);
	if (pid == 0)
		grandchild();
	set_step(ST_NESTED_WAIT);
	int status;
	if (!reap_deadline(pid, &status, NESTED_HANG_SECONDS))
		_exit(EX_GRANDCHILD_HUNG);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		_exit(EX_GRANDCHILD);

	set_step(ST_DONE);
	_exit(0);
}

/* =========================================================== the parent */

static const char *exit_text(int code)
{
	switch (code) {
	case EX_ALLOC: return "an allocation failed";
	case EX_NESTED_FORK: return "the nested fork() failed";
	case EX_GRANDCHILD: return "the grandchild failed";
	case EX_GRANDCHILD_HUNG: return "the grandchild hung";
	case EX_CREATE: return "kmem_cache_create failed";
	default: return "?";
	}
}

/* Where the child (and, in its nested fork, the grandchild) got to. */
static const char *where(char *buf, size_t len)
{
	static const char *const gname[] = { "not started (postfork handler)",
					     "allocating", "exiting" };
	int step = atomic_load(&prog->step), g = atomic_load(&prog->gstep);
	const char *s = step >= 0 && step < ST_NR ? step_name[step] : "?";
	if (step == ST_NESTED_FORK || step == ST_NESTED_WAIT)
		snprintf(buf, len, "%s; the grandchild: %s", s,
			 g >= 0 && g <= 2 ? gname[g] : "?");
	else
		snprintf(buf, len, "%s", s);
	return buf;
}

/* One fork and its child; false with `why` filled on a failure. */
static bool fork_once(const struct fork_case *fc, unsigned long n, char *why,
		      size_t len)
{
	atomic_store(&prog->step, ST_FORKED);
	atomic_store(&prog->gstep, 0);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, len, "fork %lu failed: %s", n, strerror(errno));
		return false;
	}
	if (pid == 0)
		child();
	int status;
	char at[160];
	if (!reap_deadline(pid, &status, HANG_SECONDS)) {
		snprintf(why, len, "child hung after fork %lu while %s "
			 "(killed after %d s; the child was at: %s)",
			 n, fc->path, HANG_SECONDS, where(at, sizeof(at)));
		return false;
	}
	if (status == -1) {
		snprintf(why, len, "fork %lu: waitpid: %s", n, strerror(errno));
		return false;
	}
	if (WIFSIGNALED(status)) {
		snprintf(why, len, "child of fork %lu while %s killed by signal "
			 "%d (%s) at: %s", n, fc->path, WTERMSIG(status),
			 strsignal(WTERMSIG(status)), where(at, sizeof(at)));
		return false;
	}
	if (WEXITSTATUS(status) != 0) {
		snprintf(why, len, "child of fork %lu while %s exited %d (%s) at: %s",
			 n, fc->path, WEXITSTATUS(status),
			 exit_text(WEXITSTATUS(status)), where(at, sizeof(at)));
		return false;
	}
	return true;
}

static void run_case(const struct fork_case *fc)
{
	char why[512] = "";
	pthread_t t[MAX_BG];
	static struct bg bgs[MAX_BG];
	unsigned long iters = env_ulong("FORK_ITERS", DEFAULT_ITERS), n = 0;

	assert_true(fc->nthreads >= 1 && fc->nthreads <= MAX_BG);
	if (fc->setup)
		fc->setup();
	atomic_store(&bg_stop, false);
	for (unsigned int i = 0; i < fc->nthreads; i++) {
		bgs[i].fn = fc->fn;
		bgs[i].id = i;
		bgs[i].rng = 0x9e3779b97f4a7c15ull * (i + 1) + (uint64_t)getpid();
		atomic_store(&bgs[i].ops, 0);
		assert_int_equal(pthread_create(&t[i], NULL, bg_start, &bgs[i]), 0);
	}
	/* Every thread is under way before the first fork. */
	double t0 = now_s();
	for (unsigned int i = 0; i < fc->nthreads; i++)
		while (atomic_load(&bgs[i].ops) == 0 && now_s() < t0 + 10)
			usleep(100);

	fflush(stdout);
	fflush(stderr);
	double start = now_s();
	while (n < iters && (fork_number = n + 1, fork_once(fc, n + 1, why, sizeof(why))))
		n++;
	double secs = now_s() - start;

	atomic_store(&bg_stop, true);
	unsigned long ops = 0;
	for (unsigned int i = 0; i < fc->nthreads; i++) {
		pthread_join(t[i], NULL);
		ops += atomic_load(&bgs[i].ops);
	}
	if (fc->teardown)
		fc->teardown();
	printf("test_fork: %-16s %s mode, %lu/%lu forks in %.1f s, "
	       "%lu background operations\n", fc->name, sheaf_percpu_mode(), n,
	       iters, secs, ops);
	fflush(stdout);
	if (why[0])
		fail_msg("%s: %s", fc->name, why);
}

/* ================================================== background threads */

/* Alloc a random batch on cc[0], free it (half the time in reverse). */
static void *bg_churn(void *arg)
{
	struct bg *b = arg;
	void *v[128];
	while (!stopping()) {
		unsigned int n = 1 + (unsigned int)rng_below(&b->rng, 128);
		for (unsigned int i = 0; i < n; i++) {
			v[i] = kmem_cache_alloc(cc[0], GFP_KERNEL);
			NEED(v[i]);
		}
		if (b->rng & 1) {
			for (unsigned int i = n; i-- > 0;)
				kmem_cache_free(cc[0], v[i]);
		} else {
			for (unsigned int i = 0; i < n; i++)
				kmem_cache_free(cc[0], v[i]);
		}
		done_ops(b, 2 * n);
	}
	return NULL;
}

/* --- slot_sheaf, slot_classic, barn_lock */

static void setup_slot_sheaf(void)
{
	cc[0] = new_cache("fork-slot-sheaf", 64, 32);
}

static void setup_slot_classic(void)
{
	cc[0] = new_cache("fork-slot-classic", 64, 0);
}

static void setup_barn(void)
{
	cc[0] = new_cache("fork-barn", 128, 4);
}

/* --- list_lock: 1 KiB objects (few per slab), shuffled frees, bulk */

static void setup_list(void)
{
	cc[0] = new_cache("fork-list", 1024, 0);
}

static void *bg_list(void *arg)
{
	struct bg *b = arg;
	void *v[256];
	while (!stopping()) {
		unsigned int n = 64 + (unsigned int)rng_below(&b->rng, 192);
		if (b->rng & 2) {
			NEED(kmem_cache_alloc_bulk(cc[0], GFP_KERNEL, n, v) == (int)n);
		} else {
			for (unsigned int i = 0; i < n; i++)
				NEED((v[i] = kmem_cache_alloc(cc[0], GFP_KERNEL)));
		}
		for (unsigned int i = n - 1; i > 0; i--) {
			unsigned int j = (unsigned int)rng_below(&b->rng, i + 1);
			void *x = v[i];
			v[i] = v[j];
			v[j] = x;
		}
		if (b->rng & 4) {
			kmem_cache_free_bulk(cc[0], n, v);
		} else {
			for (unsigned int i = 0; i < n; i++)
				kmem_cache_free(cc[0], v[i]);
		}
		done_ops(b, 2 * n);
	}
	return NULL;
}

/* --- flush_lock: shrink (sheaf and classic), cached-object counts */

static void setup_flush(void)
{
	cc[0] = new_cache("fork-flush-sheaf", 64, 16);
	cc[1] = new_cache("fork-flush-classic", 64, 0);
}

static void *bg_flush(void *arg)
{
	struct bg *b = arg;
	void *v[64];
	while (!stopping()) {
		if (b->id == 0) {
			kmem_cache_shrink(cc[0]);
			kmem_cache_shrink(cc[1]);
			(void)sheaf_cache_cached_objects(cc[0]);
			(void)sheaf_cache_cached_objects(cc[1]);
			done_ops(b, 4);
			continue;
		}
		struct kmem_cache *s = cc[b->rng & 1];
		unsigned int n = 1 + (unsigned int)rng_below(&b->rng, 64);
		for (unsigned int i = 0; i < n; i++)
			NEED((v[i] = kmem_cache_alloc(s, GFP_KERNEL)));
		for (unsigned int i = 0; i < n; i++)
			kmem_cache_free(s, v[i]);
		done_ops(b, 2 * n);
	}
	return NULL;
}

/* --- slab_mutex: create/destroy; kvfree_rcu_barrier walks the list */

static void setup_slab_mutex(void)
{
	cc[0] = new_cache("fork-slab-mutex", 64, 8);
}

static void *bg_slab_mutex(void *arg)
{
	struct bg *b = arg;
	char name[32];
	unsigned long k = 0;
	while (!stopping()) {
		if (b->id == 1) {
			kvfree_rcu_barrier();
			void *p = kmem_cache_alloc(cc[0], GFP_KERNEL);
			NEED(p);
			kmem_cache_free(cc[0], p);
			done_ops(b, 1);
			continue;
		}
		struct kmem_cache_args args;
		memset(&args, 0, sizeof(args));
		args.sheaf_capacity = (k & 1) ? 8 : 0;
		snprintf(name, sizeof(name), "fork-tmp-%lu", k++ % 4);
		struct kmem_cache *s = kmem_cache_create(name, 80, &args, 0);
		NEED(s);
		void *p = kmem_cache_alloc(s, GFP_KERNEL);
		NEED(p);
		kmem_cache_free(s, p);
		kmem_cache_destroy(s);
		done_ops(b, 1);
	}
	return NULL;
}

/* --- arena_lock: huge mappings; sheaf_page_info reads under it */

static void *bg_arena(void *arg)
{
	struct bg *b = arg;
	while (!stopping()) {
		if (b->id == 1) {
			struct sheaf_page_info pi;
			sheaf_page_info(&pi);
			done_ops(b, 1);
			continue;
		}
		size_t sz = (4u << 20) + 1 + (size_t)rng_below(&b->rng, 4u << 20);
		char *p = kvmalloc(sz, GFP_KERNEL);
		NEED(p);
		p[0] = 1;
		kvfree(p);
		done_ops(b, 1);
	}
	return NULL;
}

/* --- page_lock: page runs 16 KiB..4 MiB (split, merge); purges */

static void setup_pages(void)
{
	cc[0] = new_cache("fork-pages", 2048, 0);
}

static void *bg_pages(void *arg)
{
	struct bg *b = arg;
	char *live[8] = { 0 };
	while (!stopping()) {
		if (b->id == 2) {
			/* Shrink purges every dirty free block under the lock. */
			void *p = kmem_cache_alloc(cc[0], GFP_KERNEL);
			NEED(p);
			kmem_cache_free(cc[0], p);
			kmem_cache_shrink(cc[0]);
			done_ops(b, 1);
			continue;
		}
		unsigned int i = (unsigned int)rng_below(&b->rng, 8);
		kfree(live[i]);
		size_t sz = (size_t)(16u << 10) << rng_below(&b->rng, 9); /* ..4 MiB */
		sz -= (size_t)rng_below(&b->rng, sz / 2);
		live[i] = kmalloc(sz, GFP_KERNEL);
		NEED(live[i]);
		live[i][0] = live[i][sz - 1] = 1;
		done_ops(b, 2);
	}
	for (int i = 0; i < 8; i++)
		kfree(live[i]);
	return NULL;
}

/* --- info_lock: the SHEAF_STATS publisher, asked for snapshots */

static struct sheaf_info_header *info_page;

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void setup_info(void)
{
	char name[64];
	snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)getpid());
	int fd = shm_open(name, O_RDWR, 0);
	if (fd < 0)
		fail_msg("info_lock: %s: %s (SHEAF_STATS=%s)", name, strerror(errno),
			 getenv("SHEAF_STATS") ? getenv("SHEAF_STATS") : "unset");
	void *p = mmap(NULL, sizeof(*info_page), PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	close(fd);
	assert_true(p != MAP_FAILED);
	info_page = p;
	cc[0] = new_cache("fork-info", 64, 16);
	cc[1] = new_cache("fork-info-classic", 64, 0);
}

static void teardown_info(void)
{
	munmap(info_page, sizeof(*info_page));
	info_page = NULL;
	destroy_caches();
}

static void *bg_info(void *arg)
{
	struct bg *b = arg;
	if (b->id != 0) {
		/* Counting on (inline fast paths off) under the slab mutex,
		 * and work for the snapshots to count. */
		void *v[32];
		while (!stopping()) {
			sheaf_stats_enable(true);
			struct kmem_cache *s = cc[b->rng & 1];
			unsigned int n = 1 + (unsigned int)rng_below(&b->rng, 32);
			for (unsigned int i = 0; i < n; i++)
				NEED((v[i] = kmem_cache_alloc(s, GFP_KERNEL)));
			for (unsigned int i = 0; i < n; i++)
				kmem_cache_free(s, v[i]);
			done_ops(b, 1);
		}
		return NULL;
	}
	/* The reader protocol of <sheaf/info.h>: one request after another,
	 * so that the publisher snapshots (under info.lock) back to back. */
	while (!stopping()) {
		uint32_t req = __atomic_add_fetch(&info_page->request, 1, __ATOMIC_SEQ_CST);
		futex(&info_page->request, FUTEX_WAKE, INT_MAX, NULL);
		for (;;) {
			uint32_t ans = __atomic_load_n(&info_page->answered, __ATOMIC_ACQUIRE);
			if ((int32_t)(ans - req) >= 0 || stopping())
				break;
			struct timespec ts = { 0, 20 * 1000 * 1000 };
			futex(&info_page->answered, FUTEX_WAIT, ans, &ts);
		}
		done_ops(b, 1);
	}
	return NULL;
}

/* --- rcu_worker_lock: per-object kfree_rcu() callbacks, barriers */

static void setup_rcu_classic(void)
{
	cc[0] = new_cache("fork-rcu-classic", sizeof(struct fobj), 0);
}

static void *bg_rcu_worker(void *arg)
{
	struct bg *b = arg;
	unsigned long k = 0;
	while (!stopping()) {
		struct fobj *o = kmem_cache_alloc(cc[0], GFP_KERNEL);
		NEED(o);
		o->stamp = k;
		kfree_rcu(o, rcu);	/* no sheaves: to the worker's list */
		if (++k % (b->id == 0 ? 64 : 4096) == 0)
			kvfree_rcu_barrier_on_cache(cc[0]);
		done_ops(b, 1);
	}
	return NULL;
}

/* --- rcu_batch_lock: the one-argument form without sheaves */

static void *bg_rcu_batch(void *arg)
{
	struct bg *b = arg;
	unsigned long k = 0;
	while (!stopping()) {
		void *p = kmalloc(64, GFP_KERNEL);
		NEED(p);
		kfree_rcu_mightsleep(p);	/* kmalloc-64 has no sheaves */
		if (++k % 65536 == 0)
			kvfree_rcu_barrier();
		done_ops(b, 1);
	}
	return NULL;
}

/* --- rcu_sheaf: kfree_rcu() into the slots' rcu_free sheaves */

static void setup_rcu_sheaf(void)
{
	cc[0] = new_cache("fork-rcu-sheaf", sizeof(struct fobj), 16);
}

static void *bg_rcu_sheaf(void *arg)
{
	struct bg *b = arg;
	struct fobj *v[64];
	unsigned long k = 0;
	while (!stopping()) {
		unsigned int n = 1 + (unsigned int)rng_below(&b->rng, 64);
		for (unsigned int i = 0; i < n; i++) {
			NEED((v[i] = kmem_cache_alloc(cc[0], GFP_KERNEL)));
			v[i]->stamp = k + i;
		}
		/* Thread 0 the two-argument form, the others the one-argument
		 * form (a busy slot sends that to the pointer batch, not to
		 * the worker's lock: the threads keep trying the slots). */
		for (unsigned int i = 0; i < n; i++) {
			if (b->id == 0)
				kfree_rcu(v[i], rcu);
			else
				kfree_rcu_mightsleep(v[i]);
		}
		k += n;
		if (k >= 8192) {
			k = 0;
			kvfree_rcu_barrier_on_cache(cc[0]);
		}
		done_ops(b, n);
	}
	return NULL;
}

/* --- glob_lock: cache-name globs interned under the lock */

/*
 * FAULT_GLOBS (32) globs of 63 characters that differ in the last two: the
 * pool is filled with them, so that every later sheaf_fault_set() with one
 * compares about 32 long strings under glob_lock.
 */
#define NGLOBS 32
static void glob_spec(char *buf, size_t len, unsigned int i)
{
	snprintf(buf, len, "1,0,0,-1,cache=fork-glob-%.51s%02u",
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
}

static void setup_glob(void)
{
	char spec[128];
	cc[0] = new_cache("fork-glob", 64, 16);
	for (unsigned int i = 0; i < NGLOBS; i++) {
		glob_spec(spec, sizeof(spec), i);
		(void)sheaf_fault_set(SHEAF_FAULT_SLAB, spec); /* -EINVAL: pool full */
	}
}

static void teardown_glob(void)
{
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "0"), 0);
	destroy_caches();
}

static void *bg_glob(void *arg)
{
	struct bg *b = arg;
	char spec[2][128];
	glob_spec(spec[0], sizeof(spec[0]), NGLOBS - 1);
	glob_spec(spec[1], sizeof(spec[1]), NGLOBS - 2);
	unsigned long k = 0;
	while (!stopping()) {
		/* Probability 0: the point is armed but never fails. */
		(void)sheaf_fault_set(SHEAF_FAULT_SLAB, spec[k++ & 1]);
		done_ops(b, 1);
	}
	return NULL;
}

/* ================================================================ cases */

static const struct fork_case cases[] = {
	{ "slot_sheaf", "3 threads alloc/free on a sheaf cache (per-slot sheaf locks)",
	  3, bg_churn, setup_slot_sheaf, destroy_caches },
	{ "slot_classic", "3 threads alloc/free on a classic cache (per-slot ownership)",
	  3, bg_churn, setup_slot_classic, destroy_caches },
	{ "barn_lock", "2 threads alloc/free on a capacity-4 sheaf cache (barn lock)",
	  2, bg_churn, setup_barn, destroy_caches },
	{ "list_lock", "2 threads alloc/free 1 KiB objects, bulk, shuffled (node list_lock)",
	  2, bg_list, setup_list, destroy_caches },
	{ "flush_lock", "kmem_cache_shrink and cached-object counts in a loop (flush_lock)",
	  2, bg_flush, setup_flush, destroy_caches },
	{ "slab_mutex", "kmem_cache_create/destroy and kvfree_rcu_barrier in a loop "
	  "(slab_mutex)", 2, bg_slab_mutex, setup_slab_mutex, destroy_caches },
	{ "arena_lock", "huge kvmalloc/kvfree 4-8 MiB and sheaf_page_info (arena_lock)",
	  2, bg_arena, NULL, NULL },
	{ "page_lock", "kmalloc/kfree 16 KiB..4 MiB and shrink purges (page-node locks)",
	  3, bg_pages, setup_pages, destroy_caches },
	{ "info_lock", "the SHEAF_STATS publisher snapshots back to back and "
	  "sheaf_stats_enable (info.lock)", 2, bg_info, setup_info, teardown_info },
	{ "rcu_worker_lock", "kfree_rcu on a classic cache and barriers (RCU worker lock)",
	  2, bg_rcu_worker, setup_rcu_classic, destroy_caches },
	{ "rcu_batch_lock", "kfree_rcu_mightsleep(kmalloc(64)) in a loop (batch_lock)",
	  2, bg_rcu_batch, NULL, NULL },
	{ "rcu_sheaf", "kfree_rcu and kfree_rcu_mightsleep of batches on a sheaf cache "
	  "(slot locks, rcu_free sheaves)",
	  2, bg_rcu_sheaf, setup_rcu_sheaf, destroy_caches },
	{ "glob_lock", "sheaf_fault_set with a cache-name glob in a loop (glob_lock)",
	  2, bg_glob, setup_glob, teardown_glob },
};

static const struct fork_case *find_case(const char *name)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	fail_msg("no case %s", name);
	return NULL;
}

#define CASE(n)                                                                \
	static void n(void **state)                                            \
	{                                                                      \
		(void)state;                                                   \
		run_case(find_case(#n));                                       \
	}

CASE(slot_sheaf)
CASE(slot_classic)
CASE(barn_lock)
CASE(list_lock)
CASE(flush_lock)
CASE(slab_mutex)
CASE(arena_lock)
CASE(page_lock)
CASE(rcu_worker_lock)
CASE(rcu_batch_lock)
CASE(rcu_sheaf)
CASE(glob_lock)

/*
 * The publisher exists only in a process started with SHEAF_STATS set:
 * without it, run this case in a copy of the program started so (the
 * per-CPU mode and FORK_ITERS pass through the environment).
 */
static void info_lock(void **state)
{
	(void)state;
	if (sheaf_stats_enabled()) {
		run_case(find_case("info_lock"));
		return;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("SHEAF_STATS", "1", 1);
		setenv("SHEAF_STATS_INTERVAL", "10", 1);
		execl("/proc/self/exe", "test_fork", "info_lock", (char *)NULL);
		_exit(127);
	}
	int status;
	if (!reap_deadline(pid, &status, 550))
		fail_msg("info_lock: the SHEAF_STATS=1 run did not end in 550 s");
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("info_lock: the SHEAF_STATS=1 run failed (status %#x)", status);
}

#ifdef SHEAF_TSAN
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(slot_sheaf),
		cmocka_unit_test(slot_classic),
		cmocka_unit_test(barn_lock),
		cmocka_unit_test(list_lock),
		cmocka_unit_test(flush_lock),
		cmocka_unit_test(slab_mutex),
		cmocka_unit_test(arena_lock),
		cmocka_unit_test(page_lock),
		cmocka_unit_test(info_lock),
		cmocka_unit_test(rcu_worker_lock),
		cmocka_unit_test(rcu_batch_lock),
		cmocka_unit_test(rcu_sheaf),
		cmocka_unit_test(glob_lock),
	};
	if (UNDER_TSAN) {
		printf("test_fork: skipped under TSan (no threads in fork()ed children)\n");
		return 77;
	}
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	prog = mmap(NULL, sizeof(*prog), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (prog == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
