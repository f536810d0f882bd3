/* SPDX-License-Identifier: MIT */
/*
 * test_percpu.c - the per-slot protocol at its edges (docs/PERCPU.md):
 *
 *  - a thread whose rseq area is not registered (it unregistered glibc's,
 *    as runtimes with their own registration and checkpointers do): the
 *    kernel then aborts none of its sections, and its mm_cid reads 0 (the
 *    slot of another thread) or its cpu_id -1 (an index far past the
 *    slots).  Every section must bail, and the slow paths serve it: its
 *    allocations never come from a slot's sheaf, the classic path does
 *    not spin, and racing registered threads never get an object twice;
 *  - membarrier() failing: a transient failure is retried, a lasting one
 *    aborts with a message (never a flush that goes on without the fence);
 *  - dlclose() of a module that ran the inline sections: the thread's
 *    rseq_cs must not point into the unmapped module (the kernel reads it
 *    at the next preemption: SIGSEGV);
 *  - signals: a storm of signals whose handlers do not call libsheaf (the
 *    documented rule: nothing in libsheaf is async-signal-safe) while
 *    threads allocate and free: every object intact, none handed out twice;
 *  - main's count, which the slot keeps for the sections: a slow path, a
 *    flush and the count of cached objects see the sections' pushes and
 *    pops, and the sections see theirs.
 *
 * Runs in both per-CPU modes (CTest); the rseq-only parts skip themselves
 * in fallback mode.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include "test_util.h"

#define ST(c, x) sheaf_stats_get((c), SHEAF_STAT_##x)

static bool rseq_mode(void)
{
	return strcmp(sheaf_percpu_mode(), "rseq") == 0;
}

/* ------------------------------------------------ syscall() interposer */

/*
 * The library calls membarrier through syscall(); this definition in the
 * executable takes its place (the dynamic linker binds the library's
 * reference to the executable's symbol first) and fails the first
 * `membarrier_fail` calls of MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ with
 * `membarrier_errno`.  -1: fail every call.
 */
static _Atomic long membarrier_fail;
static int membarrier_errno = ENOMEM;
static _Atomic long membarrier_calls;

long syscall(long nr, ...)
{
	static long (*real)(long, ...);
	va_list ap;
	long a[6];
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == __NR_membarrier && a[0] == MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) {
		atomic_fetch_add(&membarrier_calls, 1);
		long f = atomic_load(&membarrier_fail);
		if (f < 0 || (f > 0 && atomic_fetch_sub(&membarrier_fail, 1) > 0)) {
			errno = membarrier_errno;
			return -1;
		}
	}
	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ------------------------------------------------ unregistered threads */

/*
 * Unregister the calling thread's rseq area (glibc's).  The length must be
 * the registered one: Debian 12's glibc 2.36 reports __rseq_size 20 but
 * registers 32 bytes.  false: there was none, or the kernel refused.
 */
static bool unregister_rseq(void)
{
	if (__rseq_size == 0)
		return false;
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	if (syscall(__NR_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0)
		return true;
	return syscall(__NR_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER,
		       RSEQ_SIG) == 0;
}

struct unreg_arg {
	struct kmem_cache *sheafc, *classic;
	bool unregistered;
	uint64_t alloc_cpu_sheaf, alloc_fastpath;
};

#define UNREG_N 200

static void *unreg_thread(void *p)
{
	struct unreg_arg *a = p;
	void *obj[UNREG_N];
	a->unregistered = unregister_rseq();
	if (!a->unregistered)
		return NULL;
	sheaf_stats_reset(a->sheafc);
	sheaf_stats_reset(a->classic);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < UNREG_N; i++) {
			obj[i] = kmem_cache_alloc(a->sheafc, GFP_KERNEL);
			assert_non_null(obj[i]);
			memset(obj[i], 0x5a, 64);
		}
		for (int i = 0; i < UNREG_N; i++)
			kmem_cache_free(a->sheafc, obj[i]);
		for (int i = 0; i < UNREG_N; i++) {
			obj[i] = kmem_cache_alloc(a->classic, GFP_KERNEL);
			assert_non_null(obj[i]);
			memset(obj[i], 0xa5, 64);
		}
		for (int i = 0; i < UNREG_N; i++)
			kmem_cache_free(a->classic, obj[i]);
	}
	a->alloc_cpu_sheaf = ST(a->sheafc, ALLOC_CPU_SHEAF);
	a->alloc_fastpath = ST(a->classic, ALLOC_FASTPATH);
	return NULL;
}

/*
 * One thread alone: after it unregisters, no allocation of it may come
 * from a slot's sheaf or the classic per-slot freelist (in rseq mode: the
 * sections bail, the slow paths take the slab layer), and nothing spins.
 */
static void test_unregistered_thread_paths(void **state)
{
	(void)state;
	struct kmem_cache_args a8 = { .sheaf_capacity = 8 };
	struct kmem_cache_args a0 = { 0 };
	struct unreg_arg a = {
		.sheafc = kmem_cache_create("pc-unreg-sheaf", 64, &a8, 0),
		.classic = kmem_cache_create("pc-unreg-classic", 64, &a0, 0),
	};
	assert_non_null(a.sheafc);
	assert_non_null(a.classic);
	sheaf_stats_enable(true);
	/* Warm both slots' sheaves so that a section that runs would succeed. */
	for (int i = 0; i < 32; i++)
		kmem_cache_free(a.sheafc, kmem_cache_alloc(a.sheafc, GFP_KERNEL));
	pthread_t t;
	alarm(60); /* the classic path used to spin for ever here */
	assert_int_equal(pthread_create(&t, NULL, unreg_thread, &a), 0);
	pthread_join(t, NULL);
	alarm(0);
	sheaf_stats_enable(false);
	if (!a.unregistered) {
		kmem_cache_destroy(a.sheafc);
		kmem_cache_destroy(a.classic);
		skip();
	}
	if (rseq_mode()) {
		assert_int_equal(a.alloc_cpu_sheaf, 0);
		assert_int_equal(a.alloc_fastpath, 0);
	}
	assert_int_equal(sheaf_cache_objects_inuse(a.sheafc), 0);
	assert_int_equal(sheaf_cache_objects_inuse(a.classic), 0);
	kmem_cache_destroy(a.sheafc);
	kmem_cache_destroy(a.classic);
}

/*
 * Registered threads and one unregistered thread on the same caches, with
 * an owner word in every object taken by compare-and-swap: an object
 * handed out twice at once fails the swap.
 */
struct race {
	struct kmem_cache *c[2];
	atomic_bool stop;
	atomic_ulong dup, ops;
	atomic_int unregistered; /* 1 yes, -1 could not */
};

static void race_loop(struct race *r, uintptr_t me)
{
	void *live[64];
	unsigned int n = 0, x = (unsigned int)me * 2654435761u;
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		x = x * 1103515245u + 12345u;
		struct kmem_cache *c = r->c[(x >> 16) & 1];
		if (n < 64 && ((x >> 20) & 1)) {
			_Atomic uintptr_t *o = kmem_cache_alloc(c, GFP_KERNEL);
			assert_non_null(o);
			uintptr_t zero = 0;
			if (!atomic_compare_exchange_strong(o, &zero, me))
				atomic_fetch_add(&r->dup, 1);
			live[n++] = (void *)o;
		} else if (n) {
			_Atomic uintptr_t *o = live[--n];
			uintptr_t mine = me;
			if (!atomic_compare_exchange_strong(o, &mine, 0))
				atomic_fetch_add(&r->dup, 1);
			kmem_cache_free(sheaf_obj_cache(o), (void *)o);
		}
		atomic_fetch_add_explicit(&r->ops, 1, memory_order_relaxed);
	}
	while (n) {
		_Atomic uintptr_t *o = live[--n];
		atomic_store(o, 0);
		kmem_cache_free(sheaf_obj_cache(o), (void *)o);
	}
}

static void *race_registered(void *p)
{
	static atomic_uint ids = 1;
	race_loop(p, atomic_fetch_add(&ids, 1));
	return NULL;
}

static void *race_unregistered(void *p)
{
	struct race *r = p;
	atomic_store(&r->unregistered, unregister_rseq() ? 1 : -1);
	race_loop(r, 1000);
	return NULL;
}

static void zero_ctor(void *p)
{
	memset(p, 0, 64);
}

static void test_unregistered_thread_race(void **state)
{
	(void)state;
	struct race r = { 0 };
	/* A ctor: the owner word starts 0 in a new slab; frees reset it. */
	struct kmem_cache_args a4 = { .sheaf_capacity = 4, .ctor = zero_ctor };
	struct kmem_cache_args a0 = { .ctor = zero_ctor };
	r.c[0] = kmem_cache_create("pc-race-sheaf", 64, &a4, 0);
	r.c[1] = kmem_cache_create("pc-race-classic", 64, &a0, 0);
	assert_non_null(r.c[0]);
	assert_non_null(r.c[1]);
	pthread_t t[4];
	alarm(60);
	assert_int_equal(pthread_create(&t[0], NULL, race_unregistered, &r), 0);
	for (int i = 1; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_registered, &r), 0);
	struct timespec ts = { 1, 0 };
	nanosleep(&ts, NULL);
	atomic_store(&r.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	alarm(0);
	assert_int_equal(atomic_load(&r.dup), 0);
	assert_true(atomic_load(&r.ops) > 0);
	assert_int_equal(sheaf_cache_objects_inuse(r.c[0]), 0);
	assert_int_equal(sheaf_cache_objects_inuse(r.c[1]), 0);
	kmem_cache_destroy(r.c[0]);
	kmem_cache_destroy(r.c[1]);
	if (atomic_load(&r.unregistered) != 1)
		skip();
}

/* ------------------------------------------------------- membarrier */

/* A few transient failures: retried, and the flush completes. */
static void test_membarrier_retry(void **state)
{
	(void)state;
	if (!rseq_mode())
		skip();
	struct kmem_cache_args a = { .sheaf_capacity = 8 };
	struct kmem_cache *c = kmem_cache_create("pc-mb-retry", 64, &a, 0);
	assert_non_null(c);
	void *p = kmem_cache_alloc(c, GFP_KERNEL);
	kmem_cache_free(c, p);
	atomic_store(&membarrier_calls, 0);
	atomic_store(&membarrier_fail, 3);
	kmem_cache_shrink(c);
	atomic_store(&membarrier_fail, 0);
	assert_true(atomic_load(&membarrier_calls) >= 4); /* 3 failed + 1 */
	assert_int_equal(sheaf_cache_cached_objects(c), 0);
	kmem_cache_destroy(c);
}

static void membarrier_broken_child(void *arg)
{
	struct kmem_cache *c = arg;
	membarrier_errno = EPERM;
	atomic_store(&membarrier_fail, -1);
	kmem_cache_shrink(c);
	_exit(0); /* went on without the fence: the bug */
}

/* A lasting failure: a message and abort(), never a silent flush. */
static void test_membarrier_broken(void **state)
{
	(void)state;
	if (!rseq_mode())
		skip();
	struct kmem_cache_args a = { .sheaf_capacity = 8 };
	struct kmem_cache *c = kmem_cache_create("pc-mb-broken", 64, &a, 0);
	assert_non_null(c);
	struct child_result r;
	run_in_child(membarrier_broken_child, c, &r);
	assert_true(WIFSIGNALED(r.status));
	assert_int_equal(WTERMSIG(r.status), SIGABRT);
	assert_non_null(strstr(r.err, "membarrier"));
	kmem_cache_destroy(c);
}

/* ------------------------------------------------------------ dlclose */

/*
 * The module runs the inline fast paths (statistics off, rseq mode), is
 * closed and unmapped, and the thread then runs on through preemptions.
 */
static void dlclose_child(void *arg)
{
	(void)arg;
	struct kmem_cache_args a = { .sheaf_capacity = 32 };
	struct kmem_cache *c = kmem_cache_create("pc-dlclose", 64, &a, 0);
	if (!c)
		_exit(2);
	void *h = dlopen(PERCPU_MODULE, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		_exit(3);
	}
	unsigned long (*loop)(struct kmem_cache *, unsigned long) =
		(unsigned long (*)(struct kmem_cache *, unsigned long))dlsym(
			h, "percpu_module_loop");
	if (!loop)
		_exit(4);
	if (loop(c, 100000) != 100000)
		_exit(5);
	dlclose(h);
	if (dlopen(PERCPU_MODULE, RTLD_NOW | RTLD_NOLOAD))
		_exit(6); /* still mapped: the test would prove nothing */
	/* Preemptions, signals (the timer's) and system calls for ~2 s. */
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		sched_yield();
		usleep(100);
		for (volatile int i = 0; i < 100000; i++)
			;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 2);
	_exit(0);
}

static void test_dlclose_module(void **state)
{
	(void)state;
	struct child_result r;
	run_in_child(dlclose_child, NULL, &r);
	if (WIFSIGNALED(r.status))
		fail_msg("the child died of signal %d after dlclose()",
			 WTERMSIG(r.status));
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 0);
}

/* ------------------------------------------------------------- signals */

/*
 * The handler does not call libsheaf (the rule): it scribbles over a
 * stack buffer and counts, so that an aborted section resumes with
 * whatever the handler left in registers and on the stack.
 */
static atomic_ulong signals_seen;

static void storm_handler(int sig)
{
	(void)sig;
	volatile char buf[2048];
	for (size_t i = 0; i < sizeof(buf); i += 64)
		buf[i] = (char)i;
	atomic_fetch_add_explicit(&signals_seen, 1, memory_order_relaxed);
}

static void *storm_sender(void *p)
{
	struct race *r = p;
	pthread_t *targets = (pthread_t *)(void *)&r[1];
	unsigned int i = 0;
	while (!atomic_load(&r->stop)) {
		pthread_kill(targets[i++ % 3], SIGUSR1);
		if (i % 16 == 0)
			sched_yield();
	}
	return NULL;
}

static void test_signal_storm(void **state)
{
	(void)state;
	struct {
		struct race r;
		pthread_t workers[3];
	} x = { 0 };
	struct sigaction sa = { 0 };
	sa.sa_handler = storm_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	struct kmem_cache_args a4 = { .sheaf_capacity = 4, .ctor = zero_ctor };
	struct kmem_cache_args a0 = { .ctor = zero_ctor };
	x.r.c[0] = kmem_cache_create("pc-sig-sheaf", 64, &a4, 0);
	x.r.c[1] = kmem_cache_create("pc-sig-classic", 64, &a0, 0);
	assert_non_null(x.r.c[0]);
	assert_non_null(x.r.c[1]);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&x.workers[i], NULL, race_registered,
						&x.r), 0);
	pthread_t sender;
	assert_int_equal(pthread_create(&sender, NULL, storm_sender, &x.r), 0);
	struct timespec ts = { 1, 0 };
	nanosleep(&ts, NULL);
	atomic_store(&x.r.stop, true);
	pthread_join(sender, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(x.workers[i], NULL);
	signal(SIGUSR1, SIG_DFL);
	assert_int_equal(atomic_load(&x.r.dup), 0);
	assert_true(atomic_load(&signals_seen) > 0);
	assert_int_equal(sheaf_cache_objects_inuse(x.r.c[0]), 0);
	assert_int_equal(sheaf_cache_objects_inuse(x.r.c[1]), 0);
	kmem_cache_destroy(x.r.c[0]);
	kmem_cache_destroy(x.r.c[1]);
}

/*
 * The slot keeps main's count for the sections (struct sheaf_pcs, count):
 * whoever owns the slot otherwise (a flush, the count of cached objects,
 * a slow path) must see the pushes and pops the sections made, and the
 * sections must see what the owner did.  The slab layer's count of
 * objects in use (its objects less the free ones in slabs and the cached
 * ones, counted by owning every slot) is what the test holds, after each
 * kind of step.
 */
static void test_slot_count(void **state)
{
	(void)state;
	struct kmem_cache_args a = { .sheaf_capacity = 16 };
	struct kmem_cache *s = kmem_cache_create("pcpu-count", 64, &a, 0);
	assert_non_null(s);
	void *p[40];
	size_t live = 40;
	for (int i = 0; i < 40; i++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	assert_int_equal(sheaf_cache_objects_inuse(s), live);
	/* frees into main (the sections' count), then the owner counts */
	for (int i = 39; i >= 30; i--, live--)
		kmem_cache_free(s, p[i]);
	assert_int_equal(sheaf_cache_objects_inuse(s), live);
	/* the sections go on from what the owner left */
	for (int i = 30; i < 35; i++, live++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	assert_int_equal(sheaf_cache_objects_inuse(s), live);
	for (int i = 34; i >= 20; i--, live--)
		kmem_cache_free(s, p[i]);
	/* a flush takes every cached object back to its slab, none twice */
	kmem_cache_shrink(s);
	assert_int_equal(sheaf_cache_cached_objects(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), live);
	for (int i = 0; i < 8; i++, live--)
		kmem_cache_free(s, p[i]);
	for (int i = 0; i < 8; i++, live++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	assert_int_equal(sheaf_cache_objects_inuse(s), live);
	for (int i = 0; i < 20; i++, live--)
		kmem_cache_free(s, p[i]);
	kmem_cache_shrink(s);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_count),
		cmocka_unit_test(test_unregistered_thread_paths),
		cmocka_unit_test(test_unregistered_thread_race),
		cmocka_unit_test(test_membarrier_retry),
		cmocka_unit_test(test_membarrier_broken),
		cmocka_unit_test(test_dlclose_module),
		cmocka_unit_test(test_signal_storm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
