/*
 * test_sheaf_scenario.c - the sheaf and barn paths, one at a time, on a
 * cache with capacity 4, asserting the exact counters each path moves.
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
#include <cmocka.h>

#include <sheaf/slab.h>

#define CAP 4
#define ST(c, x) sheaf_stats_get((c), SHEAF_STAT_##x)

static struct kmem_cache *fresh(const char *name)
{
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
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), 1);
	/* The rest of the sheaf serves the next CAP - 1 allocations. */
	void *q[CAP - 1];
	for (int i = 0; i < CAP - 1; i++)
		q[i] = kmem_cache_alloc(c, GFP_KERNEL);
	assert_int_equal(ST(c, SHEAF_REFILL), CAP);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), CAP);
	/* Freeing them fills main; one more free swaps in the empty spare. */
	kmem_cache_free(c, p);
	for (int i = 0; i < CAP - 1; i++)
		kmem_cache_free(c, q[i]);
	assert_int_equal(ST(c, FREE_CPU_SHEAF), CAP);
	assert_int_equal(ST(c, FREE_SLOWPATH), 0);
	kmem_cache_destroy(c);
}

/* GFP_NOWAIT with nothing cached: no refill, one object from the slab layer. */
static void test_nowait_fallback(void **state)
{
	struct kmem_cache *c = fresh("scn-nowait");
	void *p = kmem_cache_alloc(c, GFP_NOWAIT);
	assert_non_null(p);
	assert_int_equal(ST(c, SHEAF_REFILL), 0);
	assert_int_equal(ST(c, BARN_GET_FAIL), 1);
	assert_int_equal(ST(c, ALLOC_SLOWPATH), 1);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), 0);
	kmem_cache_free(c, p);
	kmem_cache_destroy(c);
}

/*
 * Free many objects: main and spare fill, full sheaves go to the barn until
 * it holds 10; then the full spare is flushed to slabs (barn_put_fail).
 * Allocating again takes full sheaves from the barn (barn_get).
 */
static void test_barn_limit_and_get(void **state)
{
	struct kmem_cache *c = fresh("scn-barn");
	enum { N = (2 + 10 + 3) * CAP };
	void *p[N];
	assert_int_equal(kmem_cache_alloc_bulk(c, GFP_KERNEL, N, p), N);
	sheaf_stats_reset(c);
	for (int i = 0; i < N; i++)
		kmem_cache_free(c, p[i]);
	assert_int_equal(ST(c, FREE_CPU_SHEAF), N);
	assert_true(ST(c, BARN_PUT) >= 10);
	assert_true(ST(c, BARN_PUT_FAIL) >= 1);
	assert_true(ST(c, SHEAF_FLUSH_OTHER) >= CAP);
	assert_int_equal(ST(c, SHEAF_FLUSH_OTHER) % CAP, 0);
	/* Cached now: main + spare + barn, at most (2 + 10) * CAP. */
	size_t inuse = sheaf_cache_objects_inuse(c);
	assert_int_equal(inuse, 0);

	sheaf_stats_reset(c);
	for (int i = 0; i < N; i++)
		p[i] = kmem_cache_alloc(c, GFP_KERNEL);
	assert_true(ST(c, BARN_GET) >= 9);
	assert_int_equal(ST(c, ALLOC_CPU_SHEAF), N);
	for (int i = 0; i < N; i++)
		kmem_cache_free(c, p[i]);
	/* Shrink flushes every slot and barn: no slab memory stays cached. */
	assert_int_equal(kmem_cache_shrink(c), 0);
	assert_int_equal(sheaf_cache_slabs(c), 0);
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
	kmem_cache_free(c, p); /* a remote object: straight to its slab */
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
		assert_int_equal(ST(c, SLOT_BUSY), k ? 2 : 1);
		assert_int_equal(ST(c, ALLOC_SLOWPATH), 1);
		assert_int_equal(ST(c, FREE_SLOWPATH), 1);
		assert_int_equal(ST(c, ALLOC_CPU_SHEAF), 0);
		assert_int_equal(ST(c, FREE_CPU_SHEAF), 0);
		assert_int_equal(ST(c, ALLOC_FASTPATH), 0);
		assert_int_equal(ST(c, FREE_FASTPATH), 0);
		/* Released: the fast paths serve again. */
		p = kmem_cache_alloc(c, GFP_KERNEL);
		kmem_cache_free(c, p);
		assert_int_equal(ST(c, SLOT_BUSY), k ? 2 : 1);
		kmem_cache_free(c, warm);
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
		cmocka_unit_test(test_nowait_fallback),
		cmocka_unit_test(test_barn_limit_and_get),
		cmocka_unit_test(test_node_bypass),
		cmocka_unit_test(test_trylock_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
