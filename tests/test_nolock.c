/* SPDX-License-Identifier: MIT */
/*
 * test_nolock.c - kmalloc_nolock() and kfree_nolock(): allocation and free
 * from a signal handler, whatever lock of the library the interrupted
 * thread holds.
 *
 *  - basic: every size class, writable, __GFP_ZERO, the gfp bits refused
 *    (EINVAL), sizes above 8 KiB (ENOMEM), size 0, NULL, frees of kmalloc,
 *    cache and large objects, a slub_debug cache's deferred frees, the bad
 *    pointers reported as kfree() reports them;
 *  - handlers_hold_each_lock: the thread holds each lock in turn (the
 *    slot lock through sheaf_test_hold_slot(), every other one through
 *    the fork handlers' steps, sheaf_test_hold_lock_step(), and the list
 *    locks with the slot held too, which defers frees), and raises a
 *    signal whose handler allocates hundreds of objects of every class
 *    and frees objects of the kmalloc caches, of a cache of its own and
 *    a large run.  Each case runs in a child process reaped with a
 *    deadline (a handler waiting for its own thread's lock hangs there:
 *    the case fails, with the child's threads and backtraces printed);
 *    the handler must return, its objects be intact and distinct, and
 *    after the lock is released every deferred free drained: objects in
 *    use back to where they were, no leak at destroy;
 *  - fork_inherits_deferred: frees deferred at a fork (with a second
 *    thread, so that the fork handlers take every lock) are drained in
 *    the child and in the parent alike;
 *  - signal_storm: threads allocate and free with kmalloc()/kfree() while
 *    a storm of signals runs handlers that allocate and free with the
 *    nolock calls; every object is stamped and checked, none is handed
 *    out twice, a watchdog turns a hang into a failure.
 *
 * With kmalloc()/kfree() in place of the nolock calls, the handler waits
 * for ever on the list, barn and page locks its thread holds (or the lock
 * checker of a Debug build aborts it), and the storm hangs.
 *
 * CTest runs it in both per-CPU modes, with the kmalloc caches on the
 * classic path (the default) and on sheaves (SHEAF_DEFAULT_CAPACITY=auto),
 * and with slub_debug on the kmalloc caches.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>

#include "test_util.h"
#include "test_cmocka_util.h"

#define HANG_SECONDS 30

#ifdef SHEAF_TSAN
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

static const size_t sizes[] = {
	8, 16, 24, 48, 64, 96, 100, 128, 160, 192, 256, 300, 512, 700,
	1024, 2000, 2048, 4096, 5000, 8192,
};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* The stamp of an object: every byte from its seed. */
static inline void stamp(void *p, size_t n, uint32_t seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed * 131u + i * 7u + (seed >> 8));
}

static inline bool stamped(const void *p, size_t n, uint32_t seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed * 131u + i * 7u + (seed >> 8)))
			return false;
	return true;
}

/* The kmalloc cache of every class (through an object of each). */
static struct kmem_cache *class_cache[NSIZES];

static void find_classes(void)
{
	for (size_t i = 0; i < NSIZES; i++) {
		void *p = kmalloc(sizes[i], GFP_KERNEL);
		assert_non_null(p);
		class_cache[i] = sheaf_obj_cache(p);
		assert_non_null(class_cache[i]);
		kfree(p);
	}
}

static void inuse_of_classes(size_t *v)
{
	for (size_t i = 0; i < NSIZES; i++)
		v[i] = sheaf_cache_objects_inuse(class_cache[i]);
}

static size_t deferred_of_classes(void)
{
	size_t n = 0;
	for (size_t i = 0; i < NSIZES; i++)
		n += sheaf_cache_deferred_objects(class_cache[i]);
	return n;
}

/* slub_debug on the kmalloc caches (test_nolock_debug): each allocation
 * needs its node's list_lock, so none succeeds while those are held. */
static bool kmalloc_debug(void)
{
	const char *v = getenv("SLUB_DEBUG");
	return v && strstr(v, "kmalloc");
}

static struct kmem_cache *kmalloc64(void)
{
	for (size_t i = 0; i < NSIZES; i++)
		if (sizes[i] == 64)
			return class_cache[i];
	return NULL;
}

/* ================================================================ basic */

static void test_basic(void **state)
{
	(void)state;
	find_classes();
	size_t before[NSIZES], after[NSIZES];
	inuse_of_classes(before);

	void *p[NSIZES][8];
	for (size_t i = 0; i < NSIZES; i++)
		for (int k = 0; k < 8; k++) {
			gfp_t gfp = k & 1 ? __GFP_ZERO : 0;
			if (k == 2)
				gfp = __GFP_ACCOUNT | __GFP_NO_OBJ_EXT;
			p[i][k] = kmalloc_nolock(sizes[i], gfp, NUMA_NO_NODE);
			assert_non_null(p[i][k]);
			assert_true(ksize(p[i][k]) >= sizes[i]);
			if (gfp & __GFP_ZERO)
				assert_true(all_bytes(p[i][k], sizes[i], 0));
			stamp(p[i][k], sizes[i], (uint32_t)(i * 8 + (size_t)k));
		}
	for (size_t i = 0; i < NSIZES; i++)
		for (int k = 0; k < 8; k++) {
			assert_true(stamped(p[i][k], sizes[i], (uint32_t)(i * 8 + (size_t)k)));
			if (k & 1)
				kfree_nolock(p[i][k]);
			else
				kfree(p[i][k]);
		}
	/* A node by number. */
	void *q = kmalloc_nolock(40, 0, 0);
	assert_non_null(q);
	kfree_nolock(q);

	/* Bad input: any gfp bit but the three (GFP_KERNEL too), a node out
	 * of range. */
	static const gfp_t bad[] = { GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT,
				     __GFP_NOWARN, __GFP_NOFAIL, 0x200u,
				     0x1000000u };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_null(kmalloc_nolock(64, bad[i], NUMA_NO_NODE));
		assert_int_equal(errno, EINVAL);
	}
	errno = 0;
	assert_null(kmalloc_nolock(64, 0, (int)sheaf_nr_nodes()));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(kmalloc_nolock(64, 0, -2));
	assert_int_equal(errno, EINVAL);
	/* Beyond the size classes: never served here. */
	errno = 0;
	assert_null(kmalloc_nolock(KMALLOC_MAX_CACHE_SIZE + 1, 0, NUMA_NO_NODE));
	assert_int_equal(errno, ENOMEM);
	assert_ptr_equal(kmalloc_nolock(0, 0, NUMA_NO_NODE), ZERO_SIZE_PTR);
	kfree_nolock(NULL);
	kfree_nolock(ZERO_SIZE_PTR);

	/* Objects of kmalloc() and of a cache. */
	struct kmem_cache *c = make_cache("nolock-basic", 72, 8);
	void *o[100];
	for (int i = 0; i < 100; i++) {
		o[i] = kmem_cache_alloc(c, GFP_KERNEL);
		assert_non_null(o[i]);
	}
	for (int i = 0; i < 100; i++)
		kfree_nolock(o[i]);
	assert_int_equal(sheaf_cache_objects_inuse(c), 0);
	kmem_cache_destroy(c);

	/* A large run: deferred, then freed by the next large kmalloc() or
	 * kfree() (or a barrier). */
	struct sheaf_page_info pi0, pi1;
	kvfree_rcu_barrier(); /* nothing else deferred meanwhile */
	sheaf_page_info(&pi0);
	void *big = kmalloc(100000, GFP_KERNEL);
	assert_non_null(big);
	kfree_nolock(big);
	sheaf_page_info(&pi1);
	assert_true(pi1.used_pages >= pi0.used_pages + 25);
	kvfree_rcu_barrier();
	sheaf_page_info(&pi1);
	assert_int_equal(pi1.used_pages, pi0.used_pages);

	inuse_of_classes(after);
	for (size_t i = 0; i < NSIZES; i++)
		assert_int_equal(after[i], before[i]);
	assert_int_equal(deferred_of_classes(), 0);
}

/* A slub_debug cache: every kfree_nolock() deferred, drained through the
 * checked free (no report), by the next free, shrink or destroy. */
static void test_debug_cache(void **state)
{
	(void)state;
	struct kmem_cache_args args;
	memset(&args, 0, sizeof(args));
	struct kmem_cache *c = kmem_cache_create("nolock-debug", 4, &args,
		SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_CONSISTENCY_CHECKS);
	assert_non_null(c);
	void *o[40];
	for (int i = 0; i < 40; i++) {
		o[i] = kmem_cache_alloc(c, GFP_KERNEL);
		assert_non_null(o[i]);
		memset(o[i], 0x11, 4);
	}
	struct err_capture cap;
	capture_begin(&cap);
	for (int i = 0; i < 20; i++)
		kfree_nolock(o[i]);
	size_t deferred = sheaf_cache_deferred_objects(c);
	kmem_cache_free(c, o[20]); /* a slow path: drains */
	size_t after_free = sheaf_cache_deferred_objects(c);
	for (int i = 21; i < 40; i++)
		kfree_nolock(o[i]);
	int problems = kmem_cache_validate(c);
	kmem_cache_destroy(c);
	const char *err = capture_end(&cap);
	assert_int_equal(deferred, 20);
	assert_int_equal(after_free, 0);
	assert_int_equal(problems, 0);
	if (*err)
		fail_msg("slub_debug printed: %s", err);
}

/* ---------------------------------------------------- bad pointers */

static void free_inside(void *arg)
{
	(void)arg;
	char *p = kmalloc(64, GFP_KERNEL);
	kfree_nolock(p + 8);
}

static void free_foreign(void *arg)
{
	(void)arg;
	static char not_ours[64];
	kfree_nolock(not_ours);
}

static void free_mapping(void *arg)
{
	(void)arg;
	kfree_nolock(kvmalloc(6 << 20, GFP_KERNEL));
}

static void free_large_twice(void *arg)
{
	(void)arg;
	void *p = kmalloc(40000, GFP_KERNEL);
	kfree_nolock(p);
	kfree_nolock(p);
}

static void test_invalid(void **state)
{
	(void)state;
	expect_child_abort(free_inside, "sheaf: kfree_nolock(): invalid pointer (not at an object boundary)");
	expect_child_abort(free_foreign, "sheaf: kfree_nolock(): invalid pointer");
	expect_child_abort(free_mapping, "sheaf: kfree_nolock(): a kvmalloc() mapping");
	expect_child_abort(free_large_twice, "sheaf: kfree_nolock(): invalid pointer");
}

/* ==================================== handlers while each lock is held */

#define PRE_N     600		/* kmalloc(64) objects the handler frees half of */
#define USER_N    200		/* objects of a cache of its own, likewise */
#define H_ALLOC   300		/* the handler's allocations */

struct obj {
	void *p;
	size_t size;
	uint32_t seed;
	bool freed;
};

/* What the handler sees and leaves (static: a handler has no arguments). */
static struct {
	struct obj pre[PRE_N];
	struct obj user[USER_N];
	struct kmem_cache *user_cache;
	void *large;
	struct obj got[H_ALLOC];
	unsigned int nulls, bad_errno, not_zero, bad_stamp;
	volatile sig_atomic_t done;
} h;

static void hold_handler(int sig)
{
	(void)sig;
	int saved = errno;
	for (unsigned int i = 0; i < H_ALLOC; i++) {
		size_t size = sizes[i % NSIZES];
		gfp_t gfp = i % 3 == 0 ? __GFP_ZERO : 0;
		errno = 0;
		void *p = kmalloc_nolock(size, gfp, NUMA_NO_NODE);
		h.got[i].p = p;
		h.got[i].size = size;
		h.got[i].seed = 0x10000u + i;
		if (!p) {
			h.nulls++;
			if (errno != ENOMEM)
				h.bad_errno++;
			continue;
		}
		if (gfp && !all_bytes(p, size, 0))
			h.not_zero++;
		stamp(p, size, h.got[i].seed);
	}
	/* Objects of the thread's, of the kmalloc caches and of a cache. */
	for (unsigned int i = 0; i < PRE_N; i += 2) {
		if (!stamped(h.pre[i].p, h.pre[i].size, h.pre[i].seed))
			h.bad_stamp++;
		kfree_nolock(h.pre[i].p);
		h.pre[i].freed = true;
	}
	for (unsigned int i = 0; i < USER_N; i += 2) {
		if (!stamped(h.user[i].p, h.user[i].size, h.user[i].seed))
			h.bad_stamp++;
		kfree_nolock(h.user[i].p);
		h.user[i].freed = true;
	}
	kfree_nolock(h.large);
	h.large = NULL;
	kfree_nolock(NULL);
	/* Some of its own. */
	for (unsigned int i = 0; i < H_ALLOC; i += 3) {
		if (!h.got[i].p)
			continue;
		if (!stamped(h.got[i].p, h.got[i].size, h.got[i].seed))
			h.bad_stamp++;
		kfree_nolock(h.got[i].p);
		h.got[i].freed = true;
	}
	h.done = 1;
	errno = saved;
}

/* Child exit codes. */
enum { CX_OK, CX_SETUP, CX_HOLD, CX_HANDLER, CX_OBJECTS, CX_NONE, CX_ACCOUNT,
       CX_DEFER, CX_LEAK };

#define CHILD_FAIL(code, ...)                                                  \
	do {                                                                   \
		fprintf(stderr, __VA_ARGS__);                                  \
		fputc('\n', stderr);                                           \
		fflush(stderr);                                                \
		_exit(code);                                                   \
	} while (0)

struct hold_case {
	const char *name;
	int step;		/* sheaf_test_hold_lock_step(), -1: none */
	bool slot;		/* and the slot of kmalloc-64 */
	bool must_defer;	/* kmalloc-64's frees must find no way but deferral */
};

static int cmp_obj(const void *a, const void *b)
{
	const struct obj *x = *(const struct obj *const *)a;
	const struct obj *y = *(const struct obj *const *)b;
	return (uintptr_t)x->p < (uintptr_t)y->p ? -1 : (uintptr_t)x->p > (uintptr_t)y->p;
}

/* Every live object intact and apart from every other. */
static void check_live(void)
{
	static const struct obj *all[PRE_N + USER_N + H_ALLOC];
	size_t n = 0;
	for (unsigned int i = 0; i < PRE_N; i++)
		if (!h.pre[i].freed)
			all[n++] = &h.pre[i];
	for (unsigned int i = 0; i < USER_N; i++)
		if (!h.user[i].freed)
			all[n++] = &h.user[i];
	for (unsigned int i = 0; i < H_ALLOC; i++)
		if (h.got[i].p && !h.got[i].freed)
			all[n++] = &h.got[i];
	for (size_t i = 0; i < n; i++) {
		if (!stamped(all[i]->p, all[i]->size, all[i]->seed))
			CHILD_FAIL(CX_OBJECTS, "object %p (%zu bytes) overwritten",
				   all[i]->p, all[i]->size);
		if (ksize(all[i]->p) < all[i]->size)
			CHILD_FAIL(CX_OBJECTS, "object %p: ksize %zu < %zu", all[i]->p,
				   ksize(all[i]->p), all[i]->size);
	}
	qsort(all, n, sizeof(all[0]), cmp_obj);
	for (size_t i = 1; i < n; i++)
		if ((uintptr_t)all[i - 1]->p + all[i - 1]->size > (uintptr_t)all[i]->p)
			CHILD_FAIL(CX_OBJECTS, "objects %p (%zu bytes) and %p overlap",
				   all[i - 1]->p, all[i - 1]->size, all[i]->p);
}

static void pin_here(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	int cpu = sched_getcpu();
	CPU_SET(cpu < 0 ? 0 : cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

static _Noreturn void hold_child(const struct hold_case *hc)
{
	pin_here();
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = hold_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		CHILD_FAIL(CX_SETUP, "sigaction: %s", strerror(errno));

	size_t before[NSIZES];
	inuse_of_classes(before);
	memset(&h, 0, sizeof(h));
	struct kmem_cache_args args;
	memset(&args, 0, sizeof(args));
	args.sheaf_capacity = 8;
	h.user_cache = kmem_cache_create("nolock-hold", 80, &args, 0);
	if (!h.user_cache)
		CHILD_FAIL(CX_SETUP, "kmem_cache_create failed");
	for (unsigned int i = 0; i < PRE_N; i++) {
		h.pre[i] = (struct obj){ kmalloc(64, GFP_KERNEL), 64, i, false };
		if (!h.pre[i].p)
			CHILD_FAIL(CX_SETUP, "kmalloc failed");
		stamp(h.pre[i].p, 64, i);
	}
	for (unsigned int i = 0; i < USER_N; i++) {
		h.user[i] = (struct obj){ kmem_cache_alloc(h.user_cache, GFP_KERNEL), 80,
					  0x8000u + i, false };
		if (!h.user[i].p)
			CHILD_FAIL(CX_SETUP, "kmem_cache_alloc failed");
		stamp(h.user[i].p, 80, h.user[i].seed);
	}
	h.large = kmalloc(40000, GFP_KERNEL);
	/* Warm: objects of every class in the slot's per-CPU cache. */
	for (size_t i = 0; i < NSIZES; i++) {
		void *w[16];
		for (int k = 0; k < 16; k++)
			w[k] = kmalloc(sizes[i], GFP_KERNEL);
		for (int k = 16; k-- > 0;)
			kfree(w[k]);
	}

	if (hc->step >= 0 && sheaf_test_hold_lock_step((unsigned int)hc->step, true) != 0)
		CHILD_FAIL(CX_HOLD, "cannot hold step %d", hc->step);
	if (hc->slot && sheaf_test_hold_slot(kmalloc64(), true) != 0)
		CHILD_FAIL(CX_HOLD, "cannot hold the slot of kmalloc-64");

	pthread_kill(pthread_self(), SIGUSR1);

	/* Still holding: what the handler deferred is on the lists. */
	size_t deferred = sheaf_cache_deferred_objects(kmalloc64());
	if (hc->slot && sheaf_test_hold_slot(kmalloc64(), false) != 0)
		CHILD_FAIL(CX_HOLD, "cannot release the slot");
	if (hc->step >= 0 && sheaf_test_hold_lock_step((unsigned int)hc->step, false) != 0)
		CHILD_FAIL(CX_HOLD, "cannot release step %d", hc->step);

	if (!h.done)
		CHILD_FAIL(CX_HANDLER, "the handler did not run to its end");
	if (h.bad_errno || h.not_zero || h.bad_stamp)
		CHILD_FAIL(CX_OBJECTS, "in the handler: %u NULLs without ENOMEM, "
			   "%u __GFP_ZERO objects not zeroed, %u stamps broken",
			   h.bad_errno, h.not_zero, h.bad_stamp);
	if (!hc->must_defer && h.nulls == H_ALLOC &&
	    !(kmalloc_debug() && !strcmp(hc->name, "list_locks")))
		CHILD_FAIL(CX_NONE, "the handler got no object at all");
	if (hc->must_defer && deferred == 0)
		CHILD_FAIL(CX_DEFER, "no free was deferred with the slot and lists held");
	check_live();

	/* Free the rest in normal context; every deferred free drained. */
	for (unsigned int i = 0; i < PRE_N; i++)
		if (!h.pre[i].freed)
			kfree(h.pre[i].p);
	for (unsigned int i = 0; i < H_ALLOC; i++)
		if (h.got[i].p && !h.got[i].freed)
			kfree_nolock(h.got[i].p);
	size_t after[NSIZES];
	inuse_of_classes(after);
	for (size_t i = 0; i < NSIZES; i++)
		if (after[i] != before[i])
			CHILD_FAIL(CX_ACCOUNT, "kmalloc class of %zu bytes: %zu objects "
				   "in use, %zu before", sizes[i], after[i], before[i]);
	if (deferred_of_classes())
		CHILD_FAIL(CX_ACCOUNT, "%zu deferred frees left", deferred_of_classes());

	/* The cache of its own: destroyed with the handler's frees perhaps
	 * still deferred; none may be reported as a leak. */
	for (unsigned int i = 0; i < USER_N; i++)
		if (!h.user[i].freed)
			kmem_cache_free(h.user_cache, h.user[i].p);
	struct err_capture cap;
	capture_begin(&cap);
	kmem_cache_destroy(h.user_cache);
	const char *err = capture_end(&cap);
	if (*err)
		CHILD_FAIL(CX_LEAK, "destroy printed: %s", err);
	_exit(CX_OK);
}

/*
 * fn(arg) in a child process (which _exit()s 0 when all is well), reaped
 * with a deadline: a hang is killed (its threads and backtraces printed
 * first) and is a failure, not a stalled suite.  Its stderr goes to a
 * file.  false with `why` filled on a failure.
 */
static bool run_with_deadline(void (*fn)(const void *), const void *arg,
			      char *why, size_t len)
{
	char path[] = "/tmp/sheaf-nolock-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
		signal(SIGALRM, SIG_DFL);
		alarm(HANG_SECONDS * 2); /* a backstop: the parent reaps first */
		fn(arg);
		_exit(0);
	}
	int status;
	bool ended = reap_deadline(pid, &status, HANG_SECONDS);
	char err[2048];
	ssize_t n = pread(fd, err, sizeof(err) - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	if (!ended) {
		snprintf(why, len, "hung: killed after %d s", HANG_SECONDS);
		return false;
	}
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char how[64];
		struct child_result r = { .status = status };
		snprintf(why, len, "child %s: %s", child_how(&r, how, sizeof(how)), err);
		return false;
	}
	return true;
}

static void hold_child_fn(const void *arg)
{
	hold_child(arg);
}

/* Every case, then one failure listing every case that failed. */
static void test_handlers_hold_each_lock(void **state)
{
	(void)state;
	find_classes();
	struct hold_case cases[32];
	unsigned int n = 0;
	int list_step = -1;
	const char *name;
	cases[n++] = (struct hold_case){ "the slot lock of kmalloc-64", -1, true, false };
	for (unsigned int k = 0; (name = sheaf_test_lock_step_name(k)) && n < 31; k++) {
		cases[n++] = (struct hold_case){ name, (int)k, false, false };
		if (!strcmp(name, "list_locks"))
			list_step = (int)k;
	}
	assert_true(list_step >= 0);
	cases[n++] = (struct hold_case){ "list_locks and the slot lock of kmalloc-64",
					 list_step, true, true };
	static char report[16384];
	size_t used = 0;
	unsigned int failed = 0;
	for (unsigned int i = 0; i < n; i++) {
		char why[2300];
		if (run_with_deadline(hold_child_fn, &cases[i], why, sizeof(why)))
			continue;
		failed++;
		used += (size_t)snprintf(report + used, sizeof(report) - used,
					 "\n  while holding %s: %s", cases[i].name, why);
		if (used >= sizeof(report))
			used = sizeof(report) - 1;
	}
	if (failed)
		fail_msg("%u of %u cases failed (%s mode):%s", failed, n,
			 sheaf_percpu_mode(), report);

	/* The hook's contract. */
	assert_null(sheaf_test_lock_step_name(1000));
	assert_int_equal(sheaf_test_hold_lock_step(1000, true), -EINVAL);
	assert_int_equal(sheaf_test_hold_lock_step(0, false), -EINVAL);
	assert_int_equal(sheaf_test_hold_lock_step(0, true), 0);
	assert_int_equal(sheaf_test_hold_lock_step(1, true), -EBUSY);
	assert_int_equal(sheaf_test_hold_lock_step(1, false), -EINVAL);
	assert_int_equal(sheaf_test_hold_lock_step(0, false), 0);
}

/* ====================================================== fork, deferred */

static void *idle_thread(void *arg)
{
	atomic_bool *stop = arg;
	while (!atomic_load(stop)) {
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void defer_handler(int sig)
{
	(void)sig;
	for (unsigned int i = 0; i < PRE_N; i++)
		kfree_nolock(h.pre[i].p);
}

/* In a child of the test (a handler that waits hangs it, not the test). */
static void fork_child(const void *arg)
{
	(void)arg;
	struct kmem_cache *c = kmalloc64();
	size_t base = sheaf_cache_objects_inuse(c);
	int list_step = -1;
	const char *name;
	for (unsigned int k = 0; (name = sheaf_test_lock_step_name(k)); k++)
		if (!strcmp(name, "list_locks"))
			list_step = (int)k;
	for (unsigned int i = 0; i < PRE_N; i++)
		if (!(h.pre[i].p = kmalloc(64, GFP_KERNEL)))
			CHILD_FAIL(CX_SETUP, "kmalloc failed");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = defer_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	pin_here();
	if (list_step < 0 || sheaf_test_hold_lock_step((unsigned int)list_step, true) ||
	    sheaf_test_hold_slot(c, true))
		CHILD_FAIL(CX_HOLD, "cannot hold the list locks and the slot");
	pthread_kill(pthread_self(), SIGUSR1);
	if (sheaf_test_hold_slot(c, false) ||
	    sheaf_test_hold_lock_step((unsigned int)list_step, false))
		CHILD_FAIL(CX_HOLD, "cannot release the list locks and the slot");
	size_t deferred = sheaf_cache_deferred_objects(c);
	if (!deferred)
		CHILD_FAIL(CX_DEFER, "no free deferred");

	/* A second thread: the fork handlers take every lock. */
	atomic_bool stop = false;
	pthread_t t;
	if (pthread_create(&t, NULL, idle_thread, &stop))
		CHILD_FAIL(CX_SETUP, "pthread_create failed");
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		CHILD_FAIL(CX_SETUP, "fork failed");
	if (pid == 0) {
		int code = 0;
		if (sheaf_cache_deferred_objects(c) != deferred)
			code = 2;
		else if (sheaf_cache_objects_inuse(c) != base)
			code = 3;
		else if (sheaf_cache_deferred_objects(c) != 0)
			code = 4;
		_exit(code);
	}
	int status;
	bool ended = reap_deadline(pid, &status, HANG_SECONDS / 2);
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	if (!ended || status == -1 || !WIFEXITED(status) || WEXITSTATUS(status))
		CHILD_FAIL(CX_ACCOUNT, "the forked child %s (status %#x): it did not find "
			   "the %zu deferred frees, or did not drain them",
			   ended ? "failed" : "hung", status, deferred);
	if (sheaf_cache_objects_inuse(c) != base || sheaf_cache_deferred_objects(c))
		CHILD_FAIL(CX_ACCOUNT, "the parent did not drain its deferred frees");
}

/*
 * Skipped under TSan: its deadlock detector lets a thread hold at most 64
 * locks and stops the process (a CHECK) when the fork handlers of the
 * nested fork take every flush, barn and list lock (test_fork skips
 * itself there too).
 */
static void test_fork_inherits_deferred(void **state)
{
	(void)state;
	if (UNDER_TSAN)
		skip();
	find_classes();
	char why[2300];
	if (!run_with_deadline(fork_child, NULL, why, sizeof(why)))
		fail_msg("%s", why);
}

/* ========================================================= signal storm */

#define STORM_THREADS 3
#define RING 48
#define HRING 12

static atomic_bool storm_stop, storm_done;
static atomic_ulong storm_bad, storm_h_alloc, storm_h_null, storm_signals;
static pthread_t storm_tid[STORM_THREADS];

struct ring_obj {
	void *p;
	size_t size;
	uint32_t seed;
};

/* The handler's state, per thread (its own ring of objects). */
static __thread struct ring_obj hring[HRING];
static __thread unsigned int hseq;
static __thread uint64_t hrng;
static __thread size_t last_size;	/* the thread's class of the moment */

static void storm_handler(int sig)
{
	(void)sig;
	int saved = errno;
	atomic_fetch_add_explicit(&storm_signals, 1, memory_order_relaxed);
	if (!hrng)
		hrng = (uint64_t)(uintptr_t)&hrng | 1;
	for (int k = 0; k < 3; k++) {
		unsigned int i = hseq++ % HRING;
		struct ring_obj *o = &hring[i];
		if (o->p) {
			if (!stamped(o->p, o->size, o->seed))
				atomic_fetch_add(&storm_bad, 1);
			kfree_nolock(o->p);
			o->p = NULL;
		}
		/* Often the class the thread itself is working on: its locks
		 * are the ones the thread may hold. */
		size_t size = rng_below(&hrng, 2) && last_size ? last_size
				: sizes[rng_below(&hrng, NSIZES)];
		void *p = kmalloc_nolock(size, rng_below(&hrng, 4) ? 0 : __GFP_ZERO,
					 NUMA_NO_NODE);
		if (!p) {
			atomic_fetch_add_explicit(&storm_h_null, 1, memory_order_relaxed);
			if (errno != ENOMEM)
				atomic_fetch_add(&storm_bad, 1);
			continue;
		}
		atomic_fetch_add_explicit(&storm_h_alloc, 1, memory_order_relaxed);
		o->p = p;
		o->size = size;
		o->seed = 0x40000000u | (hseq << 4) | (uint32_t)k;
		stamp(p, size, o->seed);
	}
	errno = saved;
}

static void *storm_worker(void *arg)
{
	unsigned int id = (unsigned int)(uintptr_t)arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1);
	struct ring_obj ring[RING];
	memset(ring, 0, sizeof(ring));
	uint32_t seq = 0;
	while (!atomic_load_explicit(&storm_stop, memory_order_relaxed)) {
		/* A burst of one class, so that its per-CPU cache empties and
		 * refills: the slow paths, under their locks. */
		size_t size = sizes[rng_below(&rng, NSIZES)];
		last_size = size;
		for (unsigned int k = 0; k < RING; k++) {
			struct ring_obj *o = &ring[k];
			if (o->p) {
				if (!stamped(o->p, o->size, o->seed))
					atomic_fetch_add(&storm_bad, 1);
				if (k % 5 == 0)
					kfree_nolock(o->p);
				else
					kfree(o->p);
			}
			o->p = kmalloc(size, GFP_KERNEL);
			if (!o->p) {
				atomic_fetch_add(&storm_bad, 1);
				continue;
			}
			o->size = size;
			o->seed = (id << 24) | (seq++ & 0xffffff);
			stamp(o->p, size, o->seed);
		}
	}
	for (unsigned int k = 0; k < RING; k++)
		if (ring[k].p) {
			if (!stamped(ring[k].p, ring[k].size, ring[k].seed))
				atomic_fetch_add(&storm_bad, 1);
			kfree(ring[k].p);
		}
	/* Block the storm's signal, then free what the handler kept. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (unsigned int k = 0; k < HRING; k++)
		if (hring[k].p) {
			if (!stamped(hring[k].p, hring[k].size, hring[k].seed))
				atomic_fetch_add(&storm_bad, 1);
			kfree(hring[k].p);
			hring[k].p = NULL;
		}
	return NULL;
}

static void *storm_sender(void *arg)
{
	(void)arg;
	unsigned int i = 0;
	while (!atomic_load_explicit(&storm_stop, memory_order_relaxed)) {
		pthread_kill(storm_tid[i++ % STORM_THREADS], SIGUSR2);
		if (i % 8 == 0)
			sched_yield();
	}
	return NULL;
}

/* The storm's deadline: a hang (a handler waiting on its thread's lock)
 * fails the test instead of stalling the suite. */
static void *storm_watchdog(void *arg)
{
	double end = now_s() + *(double *)arg;
	while (!atomic_load(&storm_done)) {
		if (now_s() > end) {
			fprintf(stderr, "test_nolock: signal storm hung (%lu signals, "
				"%lu handler allocations so far): a handler or a "
				"thread waits for ever\n",
				atomic_load(&storm_signals), atomic_load(&storm_h_alloc));
			abort();
		}
		struct timespec ts = { 0, 20000000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void test_signal_storm(void **state)
{
	(void)state;
	find_classes();
	size_t before[NSIZES], after[NSIZES];
	inuse_of_classes(before);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = storm_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR2, &sa, NULL), 0);

	double deadline = 60, seconds = (double)env_ulong("NOLOCK_STORM_MS", 1500) / 1000;
	pthread_t dog, sender;
	assert_int_equal(pthread_create(&dog, NULL, storm_watchdog, &deadline), 0);
	for (unsigned int i = 0; i < STORM_THREADS; i++)
		assert_int_equal(pthread_create(&storm_tid[i], NULL, storm_worker,
						(void *)(uintptr_t)i), 0);
	assert_int_equal(pthread_create(&sender, NULL, storm_sender, NULL), 0);
	struct timespec ts = { (time_t)seconds,
			       (long)((seconds - (double)(time_t)seconds) * 1e9) };
	nanosleep(&ts, NULL);
	atomic_store(&storm_stop, true);
	pthread_join(sender, NULL);
	for (unsigned int i = 0; i < STORM_THREADS; i++)
		pthread_join(storm_tid[i], NULL);
	atomic_store(&storm_done, true);
	pthread_join(dog, NULL);
	signal(SIGUSR2, SIG_DFL);

	assert_int_equal(atomic_load(&storm_bad), 0);
	assert_true(atomic_load(&storm_signals) > 0);
	assert_true(atomic_load(&storm_h_alloc) > 0);
	inuse_of_classes(after);
	for (size_t i = 0; i < NSIZES; i++)
		if (after[i] != before[i])
			fail_msg("kmalloc class of %zu bytes: %zu objects in use, %zu before",
				 sizes[i], after[i], before[i]);
	assert_int_equal(deferred_of_classes(), 0);
	print_message("storm: %lu signals, %lu handler allocations, %lu NULL\n",
		      atomic_load(&storm_signals), atomic_load(&storm_h_alloc),
		      atomic_load(&storm_h_null));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_debug_cache),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_handlers_hold_each_lock),
		cmocka_unit_test(test_fork_inherits_deferred),
		cmocka_unit_test(test_signal_storm),
	};
	/* NOLOCK_TESTS=glob: only the tests it matches (e.g. "*storm*"). */
	const char *only = getenv("NOLOCK_TESTS");
	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
