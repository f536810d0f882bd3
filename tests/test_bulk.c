/* SPDX-License-Identifier: MIT */
/*
 * test_bulk.c - kmem_cache_alloc_bulk() and kmem_cache_free_bulk():
 *  - every count from 1 to thousands returns exactly that many distinct,
 *    usable objects, with and without sheaves, mixed with single calls;
 *  - nr == 0, NULL entries in the free array;
 *  - all or nothing: with page allocations failing part way, a large
 *    request returns 0 and leaves the cache as it was;
 *  - free_bulk with a NULL cache derives each object's cache (objects of
 *    two caches and kmalloc objects, small and large, in one array);
 *  - statistics count bulk operations per object (counting is switched on
 *    for that test only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include "test_util.h"
#include "test_cmocka_util.h"

static void stamp(void *p, size_t size, uint64_t tag)
{
	uint64_t *w = p;
	for (size_t i = 0; i < size / 8; i++)
		w[i] = tag ^ (i * 0x9E3779B97F4A7C15ull) ^ (uintptr_t)p;
}

static bool stamp_ok(const void *p, size_t size, uint64_t tag)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < size / 8; i++)
		if (w[i] != (tag ^ (i * 0x9E3779B97F4A7C15ull) ^ (uintptr_t)p))
			return false;
	return true;
}

static void test_bulk_counts(void **state)
{
	static const size_t counts[] = { 1, 2, 3, 7, 31, 32, 33, 63, 64, 65,
					 100, 257, 1000, 5000 };
	enum { SIZE = 72 };
	void **p = calloc(5000, sizeof(*p));
	assert_non_null(p);
	for (unsigned int cap = 0; cap <= 32; cap += 32) {
		struct kmem_cache *s = make_cache("bulk-counts", SIZE, cap);
		/* A few singles stay live throughout. */
		void *keep[5];
		for (int i = 0; i < 5; i++) {
			keep[i] = kmem_cache_alloc(s, GFP_KERNEL);
			assert_non_null(keep[i]);
			stamp(keep[i], SIZE, 7);
		}
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			size_t n = counts[c];
			memset(p, 0, n * sizeof(*p));
			int got = kmem_cache_alloc_bulk(s, GFP_KERNEL, n, p);
			if ((size_t)got != n)
				fail_msg("cap %u: alloc_bulk(%zu) returned %d", cap, n, got);
			for (size_t i = 0; i < n; i++) {
				assert_non_null(p[i]);
				assert_int_equal((uintptr_t)p[i] % 8, 0);
				for (int k = 0; k < 5; k++)
					assert_ptr_not_equal(p[i], keep[k]);
				stamp(p[i], SIZE, n);
			}
			assert_disjoint(p, n, SIZE);
			for (size_t i = 0; i < n; i++)
				if (!stamp_ok(p[i], SIZE, n))
					fail_msg("bulk object %zu of %zu clobbered", i, n);
			assert_int_equal(kmem_cache_shrink(s), 1); /* objects in use: slabs remain */
			assert_int_equal(sheaf_cache_objects_inuse(s), n + 5);
			/* Half through free_bulk, half one by one. */
			kmem_cache_free_bulk(s, n / 2, p);
			for (size_t i = n / 2; i < n; i++)
				kmem_cache_free(s, p[i]);
			assert_int_equal(kmem_cache_shrink(s), 1); /* 5 kept: slabs remain */
			assert_int_equal(sheaf_cache_objects_inuse(s), 5);
		}
		for (int i = 0; i < 5; i++) {
			assert_true(stamp_ok(keep[i], SIZE, 7));
			kmem_cache_free(s, keep[i]);
		}
		assert_drained(s);
		kmem_cache_destroy(s);
	}
	free(p);
}

static void test_bulk_single_mix(void **state)
{
	enum { N = 300, SIZE = 40 };
	for (unsigned int cap = 0; cap <= 32; cap += 32) {
		struct kmem_cache *s = make_cache("bulk-mix", SIZE, cap);
		void *p[N];
		/* Singles freed in bulk. */
		for (int i = 0; i < N; i++) {
			p[i] = kmem_cache_alloc(s, GFP_KERNEL);
			assert_non_null(p[i]);
			stamp(p[i], SIZE, 1);
		}
		kmem_cache_free_bulk(s, N, p);
		/* Bulk freed one by one, in reverse. */
		assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, N, p), N);
		for (int i = 0; i < N; i++)
			stamp(p[i], SIZE, 2);
		for (int i = N - 1; i >= 0; i--) {
			assert_true(stamp_ok(p[i], SIZE, 2));
			kmem_cache_free(s, p[i]);
		}
		/* Several rounds of bulk against bulk, reusing freed objects. */
		for (int r = 0; r < 20; r++) {
			size_t n = 1 + (size_t)(r * 37) % N;
			assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, n, p), n);
			for (size_t i = 0; i < n; i++)
				stamp(p[i], SIZE, 100 + r);
			assert_disjoint(p, n, SIZE);
			for (size_t i = 0; i < n; i++)
				assert_true(stamp_ok(p[i], SIZE, 100 + r));
			kmem_cache_free_bulk(s, n, p);
		}
		assert_int_equal(kmem_cache_shrink(s), 0);
		assert_int_equal(sheaf_cache_objects_inuse(s), 0);
		kmem_cache_destroy(s);
	}
}

static void test_bulk_zero_and_null_entries(void **state)
{
	struct kmem_cache *s = make_cache("bulk-zero", 64, 0);
	void *sentinel = (void *)0x1234;
	void *p[4] = { sentinel, sentinel, sentinel, sentinel };
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, 0, p), 0);
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(p[i], sentinel);
	kmem_cache_free_bulk(s, 0, p);   /* nothing to do: sentinels not read */
	kmem_cache_free_bulk(NULL, 0, p);

	void *a = kmem_cache_alloc(s, GFP_KERNEL);
	void *b = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(a);
	assert_non_null(b);
	void *q[5] = { NULL, a, NULL, b, NULL };
	kmem_cache_free_bulk(s, 5, q);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);

	void *c = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(c);
	void *r[3] = { NULL, c, NULL };
	kmem_cache_free_bulk(NULL, 3, r);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

static void all_or_nothing(unsigned int cap, long skip)
{
	enum { BIG = 20000, SIZE = 256, KEEP = 10 };
	struct err_capture cap_err;
	struct kmem_cache *s = make_cache("bulk-oom", SIZE, cap);
	void **p = calloc(BIG, sizeof(*p));
	assert_non_null(p);
	void *keep[KEEP];
	int nkeep = skip > 0 ? KEEP : 0;
	for (int i = 0; i < nkeep; i++) {
		keep[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(keep[i]);
		stamp(keep[i], SIZE, 3);
	}
	assert_int_equal(kmem_cache_shrink(s), nkeep ? 1 : 0); /* 1: slabs remain */
	size_t inuse0 = sheaf_cache_objects_inuse(s);
	size_t slabs0 = sheaf_cache_slabs(s);
	assert_int_equal(inuse0, nkeep);

	capture_begin(&cap_err);
	sheaf_inject_page_failures(skip, -1);
	int got = kmem_cache_alloc_bulk(s, GFP_KERNEL, BIG, p);
	sheaf_inject_page_failures(0, 0);
	capture_end(&cap_err);
	if (got != 0)
		fail_msg("cap %u skip %ld: alloc_bulk(%d) returned %d with page "
			 "allocations failing", cap, skip, BIG, got);

	assert_int_equal(kmem_cache_shrink(s), nkeep ? 1 : 0);
	size_t inuse1 = sheaf_cache_objects_inuse(s);
	size_t slabs1 = sheaf_cache_slabs(s);
	if (inuse1 != inuse0 || slabs1 != slabs0)
		fail_msg("cap %u skip %ld: failed bulk left inuse %zu (was %zu), "
			 "slabs %zu (was %zu)", cap, skip, inuse1, inuse0, slabs1, slabs0);
	for (int i = 0; i < nkeep; i++)
		assert_true(stamp_ok(keep[i], SIZE, 3));

	/* With memory back, the same request succeeds. */
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, BIG, p), BIG);
	for (size_t i = 0; i < BIG; i++)
		stamp(p[i], SIZE, 4);
	assert_disjoint(p, BIG, SIZE);
	kmem_cache_free_bulk(s, BIG, p);
	for (int i = 0; i < nkeep; i++)
		kmem_cache_free(s, keep[i]);
	assert_drained(s);
	kmem_cache_destroy(s);
	free(p);
}

static void test_bulk_all_or_nothing(void **state)
{
	all_or_nothing(0, 0);
	all_or_nothing(0, 3);
	all_or_nothing(0, 20);
	all_or_nothing(32, 0);
	all_or_nothing(32, 3);
	all_or_nothing(32, 20);
}

static void test_free_bulk_null_cache(void **state)
{
	struct kmem_cache *a = make_cache("bulk-mix-a", 64, 0);
	struct kmem_cache *b = make_cache("bulk-mix-b", 200, 32);
	enum { N = 600 };
	void **p = calloc(N, sizeof(*p));
	assert_non_null(p);
	uint64_t rng = 12345;
	const size_t big = 1u << 20;
	size_t nbig = 0;
	for (int i = 0; i < N; i++) {
		size_t touch = 8;
		switch (rng_below(&rng, 5)) {
		case 0:
			p[i] = kmem_cache_alloc(a, GFP_KERNEL);
			break;
		case 1:
			p[i] = kmem_cache_alloc(b, GFP_KERNEL);
			break;
		case 2:
			touch = 1 + rng_below(&rng, 8192);
			p[i] = kmalloc(touch, GFP_KERNEL);
			break;
		case 3:
			if (nbig < 4) {
				p[i] = kmalloc(big, GFP_KERNEL);
				nbig++;
			} else {
				p[i] = kmalloc(8193 + rng_below(&rng, 30000), GFP_KERNEL);
			}
			break;
		default:
			p[i] = NULL; /* skipped */
			continue;
		}
		assert_non_null(p[i]);
		memset(p[i], 0x5a, touch < 8 ? touch : 8);
	}
	struct sheaf_page_info before, after;
	sheaf_page_info(&before);
	kmem_cache_free_bulk(NULL, N, p);
	sheaf_page_info(&after);
	/* The large kmalloc objects went back to the page layer. */
	assert_true(after.used_pages * SHEAF_PAGE_SIZE + after.huge_bytes + nbig * big <=
		    before.used_pages * SHEAF_PAGE_SIZE + before.huge_bytes);
	assert_int_equal(kmem_cache_shrink(a), 0);
	assert_int_equal(kmem_cache_shrink(b), 0);
	assert_int_equal(sheaf_cache_objects_inuse(a), 0);
	assert_int_equal(sheaf_cache_objects_inuse(b), 0);
	assert_int_equal(sheaf_cache_slabs(a), 0);
	assert_int_equal(sheaf_cache_slabs(b), 0);

	/* Bulk-allocated objects of two caches, freed together. */
	assert_int_equal(kmem_cache_alloc_bulk(a, GFP_KERNEL, N / 2, p), N / 2);
	assert_int_equal(kmem_cache_alloc_bulk(b, GFP_KERNEL, N / 2, p + N / 2), N / 2);
	for (int i = 0; i < N; i += 2) { /* interleave */
		void *t = p[i];
		p[i] = p[N - 1 - i];
		p[N - 1 - i] = t;
	}
	kmem_cache_free_bulk(NULL, N, p);
	assert_int_equal(kmem_cache_shrink(a), 0);
	assert_int_equal(kmem_cache_shrink(b), 0);
	assert_int_equal(sheaf_cache_objects_inuse(a), 0);
	assert_int_equal(sheaf_cache_objects_inuse(b), 0);
	kmem_cache_destroy(a);
	kmem_cache_destroy(b);
	free(p);
}

static uint64_t stat_allocs(struct kmem_cache *s)
{
	return sheaf_stats_get(s, SHEAF_STAT_ALLOC_FASTPATH) +
	       sheaf_stats_get(s, SHEAF_STAT_ALLOC_SLOWPATH);
}

static uint64_t stat_frees(struct kmem_cache *s)
{
	return sheaf_stats_get(s, SHEAF_STAT_FREE_FASTPATH) +
	       sheaf_stats_get(s, SHEAF_STAT_FREE_SLOWPATH);
}

/* Counting is on for this test only (the others use the uncounted paths). */
static void test_bulk_stats(void **state)
{
	sheaf_stats_enable(true);
	assert_true(sheaf_stats_enabled());
	struct kmem_cache *s = make_cache("bulk-stats", 128, 0);
	struct kmem_cache *t = make_cache("bulk-stats-other", 64, 0);
	enum { N = 500 };
	void *p[N];
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, N, p), N);
	if (stat_allocs(s) != N)
		fail_msg("alloc_bulk(%d): alloc_fastpath+alloc_slowpath = %llu",
			 N, (unsigned long long)stat_allocs(s));
	kmem_cache_free_bulk(s, N, p);
	if (stat_frees(s) != N)
		fail_msg("free_bulk(%d): free_fastpath+free_slowpath = %llu", N,
			 (unsigned long long)stat_frees(s));

	/* Through a NULL cache, each object counts in its own cache. */
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, 100, p), 100);
	assert_int_equal(kmem_cache_alloc_bulk(t, GFP_KERNEL, 50, p + 100), 50);
	kmem_cache_free_bulk(NULL, 150, p);
	assert_int_equal(stat_allocs(s), N + 100);
	assert_int_equal(stat_frees(s), N + 100);
	assert_int_equal(stat_allocs(t), 50);
	assert_int_equal(stat_frees(t), 50);
	kmem_cache_destroy(s);
	kmem_cache_destroy(t);
}

/* A NULL array with objects asked for: 0 and errno EINVAL. */
static void test_bulk_null_array(void **state)
{
	(void)state;
	struct kmem_cache *s = kmem_cache_create("bulk-null-array", 64, NULL, 0);
	assert_non_null(s);
	errno = 0;
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, 5, NULL), 0);
	assert_int_equal(errno, EINVAL);
	kmem_cache_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bulk_counts),
		cmocka_unit_test(test_bulk_single_mix),
		cmocka_unit_test(test_bulk_zero_and_null_entries),
		cmocka_unit_test_teardown(test_bulk_all_or_nothing, teardown_injection),
		cmocka_unit_test(test_free_bulk_null_cache),
		cmocka_unit_test(test_bulk_null_array),
		cmocka_unit_test_teardown(test_bulk_stats, teardown_stats),
	};
	return cmocka_run_group_tests_name("bulk", tests, NULL, NULL);
}
