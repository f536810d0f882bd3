/*
 * test_sheaf_scenario.c - the sheaf and barn paths, one at a time, on a
 * cache with capacity 4, asserting the exact counters each path moves,
 * with the kernel 7.2 meanings: alloc_fastpath/free_fastpath are the
 * objects served from / freed into the slot's sheaves (bulk included),
 * alloc_slowpath/free_slowpath the user's objects that came from / went to
 * a slab directly (never a sheaf refill or flush); the 6.18 names
 * alloc_cpu_sheaf/free_cpu_sheaf read the same.
 * Single thread pinned to one CPU so that it keeps one slot.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>

#define CAP 4
#define ST(c, x) sheaf_stats_get((c), SHEAF_STAT_##x)

/*
 * With SHEAF_DEFAULT_CAPACITY=auto (the kernel's 7.x model) an explicit
 * capacity is only a minimum: a 64-byte cache gets 60, and the scenarios
 * below, which count what each path does at capacity CAP (or 1..4), skip.
 */
static void need_exact_capacity(void)
{
	const char *env = getenv("SHEAF_DEFAULT_CAPACITY");
	if (env && !strcmp(env, "auto"))
		skip();
}

static struct kmem_cache *fresh(const char *name)
{
	need_exact_capacity();
	struct kmem_cache_args a = { .sheaf_capacity = CAP };
	struct kmem_cache *c = kmem_cache_create(name, 64, &a, 0);
	assert_non_null(c);
	assert_int_equal(sheaf_cache_capacity(c), CAP);
	sheaf_stats_reset(c);
	return c;
}

/* First allocation: main empty, no spare, barn empty -> refill a new sheaf. */
static void test_refill(void **state)
{
	struct kmem_cache *c = fresh("scn-refill");
	void *p = kmem_cache_alloc(c, GFP_KERNEL);
	assert_non_null(p);
	assert_int_equal(ST(c, BARN_GET_FAIL), 1);
	assert_int_equal(ST(c, SHEAF_REFILL), CAP);
	assert_int_equal(ST(c, SHEAF_ALLOC), 1);
	assert_int_equal(ST(c, ALLOC_FASTPATH), 1);
	/* The refill's CAP objects are not alloc_slowpath (7.x). */
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 0);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), 1);
	/* The rest of the sheaf serves the next CAP - 1 allocations. */
	void *q[CAP - 1];
	for (int i = 0; i < CAP - 1; i++)
		q[i] = kmem_cache_alloc(c, GFP_KERNEL);
	assert_int_equal(ST(c, SHEAF_REFILL), CAP);
	assert_int_equal(ST(c, ALLOC_FASTPATH), CAP);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), CAP);
	kmem_cache_free(c, p);
	for (int i = 0; i < CAP - 1; i++)
		kmem_cache_free(c, q[i]);
	assert_int_equal(ST(c, FREE_FASTPATH), CAP);
	assert_int_equal(ST(c, FREE_CPU_SHEAF), CAP);
	assert_int_equal(ST(c, FREE_SLOWPATH), 0);
	kmem_cache_destroy(c);
}

/*
 * The kernel's 7.x refill rule: GFP_NOWAIT may spin, so an empty main is
 * refilled from slabs (before: one object from the slab layer, object by
 * object for every GFP_NOWAIT caller); a caller that may not even spin
 * (no reclaim bit) takes one object from the slab layer.
 */
static void test_nowait_refills(void **state)
{
	(void)state;
	struct kmem_cache *c = fresh("scn-nowait");
	void *p[CAP + 1];
	p[0] = kmem_cache_alloc(c, GFP_NOWAIT);
	assert_non_null(p[0]);
	assert_int_equal(ST(c, SHEAF_REFILL), CAP);
	assert_int_equal(ST(c, BARN_GET_FAIL), 1);
	assert_int_equal(ST(c, ALLOC_FASTPATH), 1);
	/* (the refill's objects are not alloc_slowpath: the 7.x meaning) */
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 0);
	for (int i = 1; i < CAP; i++)
		assert_non_null(p[i] = kmem_cache_alloc(c, GFP_NOWAIT));
	assert_int_equal(ST(c, ALLOC_FASTPATH), CAP);
	/* main is empty: no reclaim bit at all, no refill: one object from
	 * the slab layer, the one alloc_slowpath counts */
	p[CAP] = kmem_cache_alloc(c, __GFP_HIGH);
	assert_non_null(p[CAP]);
	assert_int_equal(ST(c, SHEAF_REFILL), CAP);
	assert_int_equal(ST(c, ALLOC_FASTPATH), CAP);
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 1);
	for (int i = 0; i <= CAP; i++)
		kmem_cache_free(c, p[i]);
	kmem_cache_destroy(c);
}

/*
 * Swap: main and spare trade places with no barn or slab work.  Five
 * allocations: the second refill reuses the empty spare (no new sheaf).
 * Five frees: the second swaps the full main with the empty spare.  Then
 * the allocations drain main and swap in the full spare.
 */
static void test_swap(void **state)
{
	struct kmem_cache *c = fresh("scn-swap");
	void *p[CAP + 1];
	for (int i = 0; i < CAP + 1; i++)
		p[i] = kmem_cache_alloc(c, GFP_KERNEL);
	assert_int_equal(ST(c, ALLOC_FASTPATH), CAP + 1);
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 0);
	assert_int_equal(ST(c, SHEAF_REFILL), 2 * CAP);
	assert_int_equal(ST(c, SHEAF_ALLOC), 1);
	assert_int_equal(ST(c, BARN_GET_FAIL), 2);
	sheaf_stats_reset(c);
	for (int i = 0; i < CAP + 1; i++)
		kmem_cache_free(c, p[i]);
	assert_int_equal(ST(c, FREE_FASTPATH), CAP + 1);
	assert_int_equal(ST(c, BARN_PUT) + ST(c, BARN_PUT_FAIL) + ST(c, SHEAF_ALLOC) +
			 ST(c, SHEAF_FLUSH) + ST(c, FREE_SLOWPATH), 0);
	sheaf_stats_reset(c);
	/* main holds CAP - 2 (it got the last CAP - 1 frees), spare CAP - 1:
	 * the allocations after main runs dry come from the swapped spare. */
	for (int i = 0; i < CAP + 1; i++)
		p[i] = kmem_cache_alloc(c, GFP_KERNEL);
	assert_int_equal(ST(c, ALLOC_FASTPATH), CAP + 1);
	assert_int_equal(ST(c, BARN_GET) + ST(c, BARN_GET_FAIL) + ST(c, SHEAF_REFILL) +
			 ST(c, ALLOC_SLOWPATH), 0);
	for (int i = 0; i < CAP + 1; i++)
		kmem_cache_free(c, p[i]);
	kmem_cache_destroy(c);
}

/*
 * Free many objects: main and spare fill, full sheaves go to the barn until
 * it holds 10; then the full spare is flushed to slabs (barn_put_fail),
 * which free_slowpath does not count.  With main, spare and barn full a
 * bulk free goes straight to slabs: user frees, free_slowpath.
 * Allocating again takes full sheaves from the barn (barn_get), then
 * refills, which alloc_slowpath does not count.
 */
static void test_barn_limit_and_get(void **state)
{
	struct kmem_cache *c = fresh("scn-barn");
	enum { N = (2 + 10 + 3) * CAP, M = CAP };
	void *p[N + M];
	/* Nothing cached yet: the bulk allocation comes straight from slabs. */
	assert_int_equal(kmem_cache_alloc_bulk(c, GFP_KERNEL, N + M, p), N + M);
	assert_int_equal(ST(c, ALLOC_SLOWPATH), N + M);
	assert_int_equal(ST(c, ALLOC_FASTPATH), 0);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), 0);
	sheaf_stats_reset(c);
	/*
	 * Frees: main fills; then each CAP frees need an empty sheaf (the barn
	 * has none, so one is allocated) and the full spare goes to the barn,
	 * until the barn holds its 10 full sheaves; from then on the full spare
	 * is flushed to slabs instead (barn_put_fail) and reused empty.
	 */
	for (int i = 0; i < N; i++)
		kmem_cache_free(c, p[i]);
	assert_int_equal(ST(c, FREE_FASTPATH), N);
	assert_int_equal(ST(c, FREE_CPU_SHEAF), N);
	assert_int_equal(ST(c, SHEAF_ALLOC), 11);
	assert_int_equal(ST(c, BARN_PUT), 10);
	assert_int_equal(ST(c, BARN_PUT_FAIL), 3);
	assert_int_equal(ST(c, SHEAF_FLUSH_OTHER), 3 * CAP);
	assert_int_equal(ST(c, SHEAF_FLUSH), 3 * CAP);
	/* The flushes gave 3 * CAP objects back to slabs: not user frees. */
	assert_int_equal(ST(c, FREE_SLOWPATH), 0);
	assert_int_equal(sheaf_cache_objects_inuse(c), M);
	assert_int_equal(sheaf_cache_cached_objects(c), (2 + 10) * CAP);

	/* No room anywhere: the bulk free's objects go to their slabs. */
	sheaf_stats_reset(c);
	kmem_cache_free_bulk(c, M, &p[N]);
	assert_int_equal(ST(c, FREE_SLOWPATH), M);
	assert_int_equal(ST(c, FREE_FASTPATH), 0);
	assert_int_equal(ST(c, SHEAF_FLUSH), 0);
	assert_int_equal(sheaf_cache_objects_inuse(c), 0);
	assert_int_equal(sheaf_cache_cached_objects(c), (2 + 10) * CAP);

	/*
	 * Allocations: main, then the swapped spare, then the 10 full barn
	 * sheaves (barn_get), then three refills of an empty sheaf from slabs.
	 */
	sheaf_stats_reset(c);
	for (int i = 0; i < N; i++)
		p[i] = kmem_cache_alloc(c, GFP_KERNEL);
	assert_int_equal(ST(c, ALLOC_FASTPATH), N);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), N);
	assert_int_equal(ST(c, BARN_GET), 10);
	assert_int_equal(ST(c, BARN_GET_FAIL), 3);
	assert_int_equal(ST(c, SHEAF_REFILL), 3 * CAP);
	/* The three refills' objects are not alloc_slowpath. */
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 0);
	for (int i = 0; i < N; i++)
		kmem_cache_free(c, p[i]);
	/* Shrink flushes every slot and barn: no slab memory stays cached. */
	assert_int_equal(kmem_cache_shrink(c), 0);
	assert_int_equal(sheaf_cache_cached_objects(c), 0);
	assert_int_equal(sheaf_cache_slabs(c), 0);
	kmem_cache_destroy(c);
}

/*
 * RCU sheaves meeting a barn at its limit.  The kernel (SHEAF_ADAPTIVE=0)
 * flushes a recycled sheaf to slabs when the barn holds 10 full sheaves
 * (barn_put_fail).  An adaptive cache earns the barn one credit each time
 * an allocation asks it for a full sheaf, and the RCU worker spends them
 * to recycle past the limit (docs/RCU.md, "RCU credit").
 */
static void test_rcu_credit(void **state)
{
	struct kmem_cache *c = fresh("scn-rcu-credit");
	struct sheaf_cache_limits l;
	assert_int_equal(sheaf_cache_limits(c, &l), 0);
	enum { K = 3, FILL = (2 + 10) * CAP, TAKE = 2 * CAP + K * CAP };
	void *p[FILL + K * CAP];
	assert_int_equal(kmem_cache_alloc_bulk(c, GFP_KERNEL, FILL + K * CAP, p),
			 FILL + K * CAP);
	/* main, spare and the barn's 10 full sheaves */
	for (int i = 0; i < FILL; i++)
		kmem_cache_free(c, p[i]);
	sheaf_stats_reset(c);
	/* Demand: main, the spare, then K full sheaves from the barn... */
	for (int i = 0; i < TAKE; i++)
		assert_non_null(p[i] = kmem_cache_alloc(c, GFP_KERNEL));
	assert_int_equal(ST(c, BARN_GET), K);
	assert_int_equal(ST(c, SHEAF_REFILL), 0);
	/* ...given back: the barn holds its 10 again. */
	for (int i = 0; i < TAKE; i++)
		kmem_cache_free(c, p[i]);
	assert_int_equal(ST(c, BARN_PUT), K);
	assert_int_equal(ST(c, BARN_PUT_FAIL), 0);
	sheaf_stats_reset(c);
	/* K full rcu_free sheaves, recycled after their grace period. */
	for (int i = FILL; i < FILL + K * CAP; i++)
		kfree_rcu_mightsleep(p[i]);
	assert_int_equal(ST(c, FREE_RCU_SHEAF), K * CAP);
	kvfree_rcu_barrier_on_cache(c);
	assert_int_equal(sheaf_cache_objects_inuse(c), 0);
	if (l.adaptive) {
		assert_int_equal(ST(c, BARN_PUT), K);
		assert_int_equal(ST(c, RCU_SHEAF_RECYCLED), K * CAP);
		assert_int_equal(ST(c, BARN_PUT_FAIL), 0);
		assert_int_equal(sheaf_rcu_recycled_objects(c), K * CAP);
	} else {
		assert_int_equal(ST(c, BARN_PUT), 0);
		assert_int_equal(ST(c, RCU_SHEAF_RECYCLED), 0);
		assert_int_equal(ST(c, BARN_PUT_FAIL), K);
		assert_int_equal(ST(c, SHEAF_FLUSH_OTHER), K * CAP);
		assert_int_equal(sheaf_rcu_recycled_objects(c), 0);
	}
	assert_int_equal(kmem_cache_shrink(c), 0);
	assert_int_equal(sheaf_cache_cached_objects(c), 0);
	kmem_cache_destroy(c);
}

/*
 * Bulk: the objects a bulk allocation takes from the sheaves count in
 * alloc_fastpath (the batch, not one per call), the rest, straight from
 * slabs, in alloc_slowpath; a bulk free's objects pushed into the sheaves
 * in free_fastpath, the ones with no room left in free_slowpath.
 */
static void test_bulk_counts(void **state)
{
	struct kmem_cache *c = fresh("scn-bulk");
	enum { N = 3 * CAP };
	void *p[2 * N];
	for (int i = 0; i < N; i++)
		assert_non_null(p[i] = kmem_cache_alloc(c, GFP_KERNEL));
	for (int i = 0; i < N; i++)
		kmem_cache_free(c, p[i]);
	size_t cached = sheaf_cache_cached_objects(c);
	assert_true(cached >= N && cached < 2 * N);
	sheaf_stats_reset(c);
	assert_int_equal(kmem_cache_alloc_bulk(c, GFP_KERNEL, 2 * N, p), 2 * N);
	assert_int_equal(ST(c, ALLOC_FASTPATH), cached);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), cached);
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 2 * N - cached);
	assert_int_equal(ST(c, SHEAF_REFILL), 0);
	assert_int_equal(sheaf_cache_cached_objects(c), 0);
	sheaf_stats_reset(c);
	kmem_cache_free_bulk(c, 2 * N, p);
	size_t kept = sheaf_cache_cached_objects(c);
	assert_true(kept > 0);
	assert_int_equal(ST(c, FREE_FASTPATH), kept);
	assert_int_equal(ST(c, FREE_CPU_SHEAF), kept);
	assert_int_equal(ST(c, FREE_SLOWPATH), 2 * N - kept);
	assert_int_equal(ST(c, SHEAF_FLUSH), 0);
	assert_int_equal(sheaf_cache_objects_inuse(c), 0);
	kmem_cache_destroy(c);
}

/* A node other than the local one bypasses sheaves (alloc_node_mismatch). */
static void test_node_bypass(void **state)
{
	struct kmem_cache *c = fresh("scn-node");
	if (sheaf_nr_nodes() < 2) {
		kmem_cache_destroy(c);
		skip();
	}
	int other = (sheaf_numa_node_id() + 1) % (int)sheaf_nr_nodes();
	void *p = kmem_cache_alloc_node(c, GFP_KERNEL, other);
	assert_non_null(p);
	assert_int_equal(sheaf_obj_node(p), other);
	assert_true(ST(c, ALLOC_NODE_MISMATCH) >= 1);
	assert_int_equal(ST(c, SHEAF_REFILL), 0);
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 1);
	assert_int_equal(ST(c, ALLOC_FASTPATH), 0);
	kmem_cache_free(c, p); /* a remote object: straight to its slab */
	assert_int_equal(ST(c, FREE_SLOWPATH), 1);
	assert_int_equal(ST(c, FREE_FASTPATH), 0);
	assert_int_equal(ST(c, FREE_CPU_SHEAF), 0);
	kmem_cache_destroy(c);
}

/*
 * A held slot lock (a holder preempted on this CPU): alloc and free find the
 * slot busy and go to the slab layer; nothing reaches the sheaves.  The same
 * for a classic cache, whose slot lock is TID_BUSY.
 */
static void test_trylock_failure(void **state)
{
	for (int k = 0; k < 2; k++) {
		struct kmem_cache *c = k ? fresh("scn-busy") : NULL;
		if (!k) {
			struct kmem_cache_args a = { 0 };
			c = kmem_cache_create("scn-busy-classic", 64, &a, 0);
			assert_non_null(c);
			sheaf_stats_reset(c);
		}
		void *warm = kmem_cache_alloc(c, GFP_KERNEL); /* slot has objects */
		assert_non_null(warm);
		sheaf_stats_reset(c);
		assert_int_equal(sheaf_test_hold_slot(c, true), 0);
		assert_int_equal(sheaf_test_hold_slot(c, true), -EBUSY);
		void *p = kmem_cache_alloc(c, GFP_KERNEL);
		assert_non_null(p);
		kmem_cache_free(c, p);
		assert_int_equal(sheaf_test_hold_slot(c, false), 0);
		assert_int_equal(sheaf_test_hold_slot(c, false), -EINVAL);
		/* Sheaves count a busy slot on free too; the classic path only
		 * on alloc (its free goes to the slab without trying the lock).
		 * SHEAF_DEFAULT_CAPACITY may give the "classic" cache sheaves. */
		bool sheaves = sheaf_cache_capacity(c) != 0;
		assert_int_equal(ST(c, SLOT_BUSY), sheaves ? 2 : 1);
		assert_int_equal(ST(c, ALLOC_SLOWPATH), 1);
		assert_int_equal(ST(c, FREE_SLOWPATH), 1);
		assert_int_equal(ST(c, ALLOC_CPU_SHEAF), 0);
		assert_int_equal(ST(c, FREE_CPU_SHEAF), 0);
		assert_int_equal(ST(c, ALLOC_FASTPATH), 0);
		assert_int_equal(ST(c, FREE_FASTPATH), 0);
		/* Released: the fast paths serve again (the sheaves', or the
		 * cpu slab's: alloc_fastpath on either; the aliases read the
		 * sheaves' only). */
		p = kmem_cache_alloc(c, GFP_KERNEL);
		kmem_cache_free(c, p);
		assert_int_equal(ST(c, SLOT_BUSY), sheaves ? 2 : 1);
		assert_int_equal(ST(c, ALLOC_FASTPATH), 1);
		assert_int_equal(ST(c, FREE_FASTPATH), 1);
		assert_int_equal(ST(c, ALLOC_CPU_SHEAF), sheaves ? 1 : 0);
		assert_int_equal(ST(c, FREE_CPU_SHEAF), sheaves ? 1 : 0);
		kmem_cache_free(c, warm);
		kmem_cache_destroy(c);
	}
}

/*
 * SHEAF_DEFAULT_CAPACITY gives sheaves to caches that did not ask: "auto"
 * uses the kernel's size-based capacity (60, 26, 12, 4) rounded up so that
 * the sheaf (32-byte header) fills its kmalloc size class, from the
 * object stride, and an explicit capacity is a minimum (the kernel's 7.x
 * model); N gives N and an explicit capacity wins.  Debug caches never get
 * sheaves.
 */
static void test_default_capacity(void **state)
{
	const char *env = getenv("SHEAF_DEFAULT_CAPACITY");
	static const unsigned int sizes[] = { 64, 300, 2000, 5000 };
	static const unsigned int autocap[] = { 60, 28, 12, 4 };
	for (int i = 0; i < 4; i++) {
		struct kmem_cache *c = kmem_cache_create("scn-default", sizes[i], NULL, 0);
		assert_non_null(c);
		unsigned int want = !env ? 0 : !strcmp(env, "auto") ? autocap[i]
					     : (unsigned int)atoi(env);
		assert_int_equal(sheaf_cache_capacity(c), want);
		kmem_cache_destroy(c);
	}
	struct kmem_cache *d = kmem_cache_create("scn-default-debug", 64, NULL,
						 SLAB_RED_ZONE);
	assert_non_null(d);
	assert_int_equal(sheaf_cache_capacity(d), 0);
	kmem_cache_destroy(d);
	bool autom = env && !strcmp(env, "auto");
	/* auto (7.x): an explicit capacity is a minimum; otherwise it wins. */
	struct kmem_cache_args a = { .sheaf_capacity = 7 };
	struct kmem_cache *e = kmem_cache_create("scn-default-explicit", 64, &a, 0);
	assert_non_null(e);
	assert_int_equal(sheaf_cache_capacity(e), autom ? 60 : 7);
	kmem_cache_destroy(e);
	a.sheaf_capacity = 100;
	e = kmem_cache_create("scn-default-explicit-big", 64, &a, 0);
	assert_non_null(e);
	assert_int_equal(sheaf_cache_capacity(e), 100);
	kmem_cache_destroy(e);
	/* auto computes from the stride: 200 bytes cache-line aligned is a
	 * 256-byte stride, 28 (it was 60, from the object size). */
	e = kmem_cache_create("scn-default-hwalign", 200, NULL, SLAB_HWCACHE_ALIGN);
	assert_non_null(e);
	assert_int_equal(kmem_cache_size(e), 200);
	unsigned int want = !env ? 0 : autom ? 28 : (unsigned int)atoi(env);
	assert_int_equal(sheaf_cache_capacity(e), want);
	kmem_cache_destroy(e);
	/* SLAB_NOLEAKTRACE opts out in auto mode, as the kernel's. */
	e = kmem_cache_create("scn-default-noleak", 64, NULL, SLAB_NOLEAKTRACE);
	assert_non_null(e);
	want = !env ? 0 : autom ? 0 : (unsigned int)atoi(env);
	assert_int_equal(sheaf_cache_capacity(e), want);
	kmem_cache_destroy(e);
}

/*
 * The refill's relock fails (another holder took the slot while the sheaf
 * was filled outside the lock): the allocation is served, and the barn's
 * full list gets only full sheaves (its invariant), for capacities 1..4.
 * With capacity 1 a sheaf that lost its one object to the caller used to
 * be parked there empty, and the next allocation popped objects[-1].
 * The constructor runs inside the refill, unlocked, on the allocating
 * thread: it takes the slot there (the test hook), as a preempted holder
 * would.
 */
static struct kmem_cache *relock_cache;
static bool relock_armed;

static void relock_ctor(void *obj)
{
	(void)obj;
	if (relock_armed) {
		relock_armed = false;
		assert_int_equal(sheaf_test_hold_slot(relock_cache, true), 0);
	}
}

static void test_relock_failure(void **state)
{
	need_exact_capacity();
	for (unsigned int cap = 1; cap <= 4; cap++) {
		struct kmem_cache_args a = { .sheaf_capacity = cap,
					     .ctor = relock_ctor };
		struct kmem_cache *c = kmem_cache_create("scn-relock", 64, &a, 0);
		assert_non_null(c);
		relock_cache = c;
		sheaf_stats_reset(c);
		relock_armed = true;
		void *first = kmem_cache_alloc(c, GFP_KERNEL);
		assert_non_null(first);
		assert_false(relock_armed); /* the refill made a slab */
		assert_int_equal(sheaf_test_hold_slot(c, false), 0);
		/* The refilled sheaf was parked whole, not one object short. */
		assert_int_equal(sheaf_cache_cached_objects(c), cap);
		assert_int_equal(ST(c, BARN_PUT), 1);
		/* The parked sheaf serves the next cap allocations. */
		void *p[4];
		for (unsigned int i = 0; i < cap; i++) {
			p[i] = kmem_cache_alloc(c, GFP_KERNEL);
			assert_non_null(p[i]);
			assert_ptr_not_equal(p[i], first);
			for (unsigned int j = 0; j < i; j++)
				assert_ptr_not_equal(p[i], p[j]);
		}
		assert_int_equal(ST(c, BARN_GET), 1);
		assert_int_equal(sheaf_cache_cached_objects(c), 0);
		kmem_cache_free(c, first);
		for (unsigned int i = 0; i < cap; i++)
			kmem_cache_free(c, p[i]);
		assert_int_equal(sheaf_cache_objects_inuse(c), 0);
		kmem_cache_destroy(c);
	}
}

int main(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	sheaf_stats_enable(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refill),
		cmocka_unit_test(test_nowait_refills),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_barn_limit_and_get),
		cmocka_unit_test(test_bulk_counts),
		cmocka_unit_test(test_rcu_credit),
		cmocka_unit_test(test_node_bypass),
		cmocka_unit_test(test_trylock_failure),
		cmocka_unit_test(test_default_capacity),
		cmocka_unit_test(test_relock_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
