/* SPDX-License-Identifier: MIT */
/*
 * test_lockcheck.c - the lock-order checker of builds without NDEBUG
 * (src/types.h, enum sheaf_lock_rank): an inversion, an unlock of a
 * rank not held, and a helper entered without the lock its contract names
 * each abort with one line; the documented order passes.  Linked with the
 * static library to reach the internal lock wrappers.  Skips (77) in
 * builds with NDEBUG, where the checker compiles to nothing.  (Every other
 * test of a Debug or sanitizer build runs under the checker too: the
 * stress and fork tests take every lock of the library.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "test_cmocka_util.h"

#ifdef SHEAF_LOCK_CHECK
static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;

static void inversion(void *arg)
{
	(void)arg;
	sheaf_lock(&a, LR_LIST);
	sheaf_lock(&b, LR_SLAB_MUTEX); /* the cache list under a list_lock */
}

static void not_held(void *arg)
{
	(void)arg;
	sheaf_unlock(&a, LR_ARENA);
}

static void contract(void *arg)
{
	(void)arg;
	sheaf_lock_held(LR_LIST);
}

/* A new sheaf cache's slot, locked by this thread (in a child). */
static struct sheaf_pcs *locked_slot(const char *name)
{
	struct kmem_cache_args args = { .sheaf_capacity = 8 };
	struct kmem_cache *s = kmem_cache_create(name, 64, &args, 0);
	unsigned int slot;
	struct sheaf_pcs *pcs = NULL;
	while (s && !pcs)
		pcs = sheaf_pcs_trylock(s, &slot);
	return pcs;
}

/* The cache list (or a flush) under a sheaf slot's lock byte. */
static void under_slot(void *arg)
{
	(void)arg;
	(void)locked_slot("lockcheck-slot");
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
}

/* A slot unlocked twice: the second is not held. */
static void slot_twice(void *arg)
{
	(void)arg;
	struct sheaf_pcs *pcs = locked_slot("lockcheck-slot2");
	sheaf_pcs_unlock(pcs);
	sheaf_pcs_unlock(pcs);
}

static void test_reports(void **state)
{
	(void)state;
	expect_child_abort(inversion, "sheaf: lock order: taking slab_mutex while holding a list_lock");
	expect_child_abort(not_held, "sheaf: lock order: releasing arena_lock, not held");
	expect_child_abort(contract, "sheaf: contract() called without a list_lock held");
	expect_child_abort(under_slot, "sheaf: lock order: taking slab_mutex while holding a slot lock");
	expect_child_abort(slot_twice, "sheaf: lock order: releasing a slot lock, not held");
}

static void test_order_passes(void **state)
{
	(void)state;
	sheaf_lock(&a, LR_SLAB_MUTEX);
	sheaf_lock(&b, LR_LIST);
	sheaf_lock_held(LR_LIST);
	sheaf_unlock(&b, LR_LIST);
	sheaf_unlock(&a, LR_SLAB_MUTEX);
	/* the library's own paths, under the checker */
	struct kmem_cache *s = kmem_cache_create("lockcheck", 64, NULL, 0);
	assert_non_null(s);
	void *o = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(o);
	kmem_cache_free(s, o);
	kmem_cache_shrink(s);
	kmem_cache_destroy(s);
}
#endif

int main(void)
{
#ifdef SHEAF_LOCK_CHECK
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reports),
		cmocka_unit_test(test_order_passes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
#else
	return 77; /* NDEBUG: no checker */
#endif
}
