/* SPDX-License-Identifier: MIT */
/*
 * test_fault - failure injection (sheaf_fault_set, SHEAF_FAILSLAB): the
 * kernel's interval/probability/space/times semantics, the cache filter
 * and nowait-only, __GFP_NOFAIL, the prefilled sheaf's guarantee, every
 * API's documented error under injection, and nothing lost afterwards;
 * the order fallback a failed page allocation leads to.
 * Run twice by CTest: once plain, once with SHEAF_FAILSLAB set in the
 * environment (test_env_spec checks it was taken).
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
#include <sheaf/stats.h>

#include "test_cmocka_util.h"

#define ST(c, x) sheaf_stats_get((c), SHEAF_STAT_##x)

static struct kmem_cache *make(const char *name, unsigned int size, unsigned int cap)
{
	struct kmem_cache_args a = { 0 };
	a.sheaf_capacity = cap;
	struct kmem_cache *s = kmem_cache_create(name, size, &a, 0);
	assert_non_null(s);
	return s;
}

static void all_off(void)
{
	for (int i = 0; i < SHEAF_FAULT_NR; i++)
		assert_int_equal(sheaf_fault_set((enum sheaf_fault)i, NULL), 0);
}

static void test_bad_specs(void **state)
{
	static const char *const bad[] = {
		"x", "1,10,0", "0,10,0,-1", "1,101,0,-1", "1,-1,0,-1", "1,10,-5,-1",
		"1,10,0,-2", "1,10,0,-1,bogus", "1,10,0,-1,cache=", "1,10,0,-1x",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, bad[i]), -EINVAL);
	/* a cache filter only means something for slab allocations */
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_PAGE, "1,10,0,-1,cache=a*"), -EINVAL);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_NR, "1,10,0,-1"), -EINVAL);
	assert_int_equal(sheaf_fault_set((enum sheaf_fault)-1, NULL), -EINVAL);
	assert_int_equal(sheaf_fault_injected(SHEAF_FAULT_NR), 0);
	/* a refused spec leaves the point off, even one that was armed */
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,-1"), 0);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,-1,bad"), -EINVAL);
	struct kmem_cache *s = make("flt-bad", 64, 0);
	void *p = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(p);
	kmem_cache_free(s, p);
	kmem_cache_destroy(s);
	all_off();
}

/* "1,100,0,3": exactly three failures, then allocations succeed again. */
static void test_times(void **state)
{
	(void)state;
	all_off();
	struct kmem_cache *s = make("flt-times", 64, 0);
	uint64_t before = sheaf_fault_injected(SHEAF_FAULT_SLAB);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,3"), 0);
	for (int i = 0; i < 3; i++)
		assert_null(kmem_cache_alloc(s, GFP_KERNEL));
	void *p = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(p);
	kmem_cache_free(s, p);
	assert_int_equal(sheaf_fault_injected(SHEAF_FAULT_SLAB) - before, 3);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
	all_off();
}

/* interval 3: every third call fails; space: the first 9 x 64 bytes pass. */
static void test_interval_and_space(void **state)
{
	(void)state;
	all_off();
	/* no sheaves: a sheaf cache allocates sheaves from internal caches,
	 * and those calls count too (as kmalloc'd sheaves do in the kernel) */
	struct kmem_cache *s = make("flt-iv", 64, 0);
	void *p[12];
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "3,100,0,-1"), 0);
	for (int i = 0; i < 9; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		if (i % 3 == 2)
			assert_null(p[i]);
		else
			assert_non_null(p[i]);
	}
	for (int i = 0; i < 9; i++)
		kmem_cache_free(s, p[i]);	/* NULL: no-op */

	/* space 640 on 64-byte objects: 640 > 64 ... 128 > 64 pass (9 calls,
	 * leaving 64), then 64 > 64 is false: the 10th fails */
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,640,-1"), 0);
	for (int i = 0; i < 9; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(p[i]);
	}
	assert_null(kmem_cache_alloc(s, GFP_KERNEL));
	all_off();
	for (int i = 0; i < 9; i++)
		kmem_cache_free(s, p[i]);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/* probability 10: about a tenth of 20000 allocations fail. */
static void test_probability(void **state)
{
	(void)state;
	all_off();
	struct kmem_cache *s = make("flt-prob", 32, 0);
	unsigned int failed = 0;
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,10,0,-1"), 0);
	for (int i = 0; i < 20000; i++) {
		void *p = kmem_cache_alloc(s, GFP_KERNEL);
		if (!p)
			failed++;
		kmem_cache_free(s, p);
	}
	all_off();
	/* binomial(20000, 0.1): mean 2000, standard deviation 42 */
	assert_in_range(failed, 1600, 2400);
	kmem_cache_destroy(s);
}

/* cache=GLOB fails only the matching caches; nowait only non-blocking gfp;
 * __GFP_NOFAIL never. */
static void test_filters(void **state)
{
	(void)state;
	all_off();
	struct kmem_cache *a = make("flt-a1", 64, 0), *b = make("flt-b1", 64, 0);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,-1,cache=flt-a*"), 0);
	assert_null(kmem_cache_alloc(a, GFP_KERNEL));
	void *p = kmem_cache_alloc(b, GFP_KERNEL);
	assert_non_null(p);
	kmem_cache_free(b, p);
	p = kmem_cache_alloc(a, GFP_KERNEL | __GFP_NOFAIL);
	assert_non_null(p);
	kmem_cache_free(a, p);

	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,-1,nowait"), 0);
	p = kmem_cache_alloc(a, GFP_KERNEL);
	assert_non_null(p);
	kmem_cache_free(a, p);
	assert_null(kmem_cache_alloc(a, GFP_NOWAIT));
	assert_null(kmalloc(100, GFP_ATOMIC));
	p = kmalloc(100, GFP_KERNEL);
	assert_non_null(p);
	kfree(p);
	all_off();
	kmem_cache_destroy(a);
	kmem_cache_destroy(b);
}

/*
 * Every API under total failure gives its documented answer, and after
 * the injection stops nothing is left allocated.
 */
static void test_api_errors(void **state)
{
	(void)state;
	all_off();
	struct kmem_cache *s = make("flt-api", 128, 16), *c = make("flt-api-c", 128, 0);
	void *p[40];
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,-1"), 0);
	errno = 0;
	assert_null(kmem_cache_alloc(s, GFP_KERNEL));
	assert_null(kmem_cache_zalloc(c, GFP_KERNEL));
	assert_null(kmem_cache_alloc_node(s, GFP_KERNEL, 0));
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, 40, p), 0);
	assert_int_equal(kmem_cache_alloc_bulk(c, GFP_KERNEL, 40, p), 0);
	assert_null(kmalloc(200, GFP_KERNEL));
	assert_null(kcalloc(4, 50, GFP_KERNEL));
	void *k = NULL;
	all_off();
	k = kmalloc(64, GFP_KERNEL);
	assert_non_null(k);
	memset(k, 0x5a, 64);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,-1"), 0);
	/* krealloc to a bigger class fails and leaves the old object intact */
	assert_null(krealloc(k, 1000, GFP_KERNEL));
	for (int i = 0; i < 64; i++)
		assert_int_equal(((unsigned char *)k)[i], 0x5a);

	/* page-level: big kmalloc runs and kvmalloc's huge mappings, new slabs */
	all_off();
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_PAGE, "1,100,0,-1"), 0);
	assert_null(kmalloc(64 * 1024, GFP_KERNEL));
	assert_null(kvmalloc(8u << 20, GFP_KERNEL));
	assert_null(kmem_cache_prefill_sheaf(c, GFP_KERNEL, 500));	/* needs slabs */
	assert_int_equal(sheaf_fault_injected(SHEAF_FAULT_PAGE) > 0, 1);
	all_off();
	kfree(k);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(c), 0);
	kmem_cache_destroy(s);
	kmem_cache_destroy(c);
}

/* A prefilled sheaf delivers what it holds while every allocation fails. */
static void test_prefill_promise(void **state)
{
	(void)state;
	all_off();
	struct kmem_cache *s = make("flt-pf", 256, 32);
	for (unsigned int n = 8; n <= 64; n *= 2) {	/* normal and oversize */
		struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, n);
		assert_non_null(sh);
		void *p[64];
		for (int i = 0; i < SHEAF_FAULT_NR; i++)
			assert_int_equal(sheaf_fault_set((enum sheaf_fault)i,
							 "1,100,0,-1"), 0);
		for (unsigned int i = 0; i < n; i++) {
			p[i] = kmem_cache_alloc_from_sheaf(s, GFP_NOWAIT, sh);
			assert_non_null(p[i]);
		}
		assert_null(kmem_cache_alloc(s, GFP_NOWAIT));
		/* giving it back under failure: flushed or kept, never lost */
		kmem_cache_return_sheaf(s, GFP_NOWAIT, sh);
		for (unsigned int i = 0; i < n; i++)
			kmem_cache_free(s, p[i]);
		all_off();
		assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	}
	kmem_cache_destroy(s);
}

/* Random injection on every point over mixed work: nothing lost. */
static void test_random_nothing_lost(void **state)
{
	(void)state;
	all_off();
	struct kmem_cache *s = make("flt-rnd", 96, 0), *c = make("flt-rnd-c", 40, 0);
	struct kmem_cache_args a = { 0 };
	a.sheaf_capacity = sheaf_auto_capacity(96);
	kmem_cache_destroy(s);
	s = kmem_cache_create("flt-rnd", 96, &a, 0);
	assert_non_null(s);
	void *live[2][256];
	unsigned int nl[2] = { 0, 0 };
	uint64_t rng = 12345, fails = 0;
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,10,0,-1"), 0);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_PAGE, "1,5,0,-1"), 0);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SHEAF, "1,20,0,-1"), 0);
	for (int it = 0; it < 200000; it++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		unsigned int k = rng & 1, op = (unsigned int)(rng >> 8) % 10;
		struct kmem_cache *x = k ? c : s;
		if (op < 4 && nl[k] < 256) {
			void *p = kmem_cache_alloc(x, GFP_KERNEL);
			if (p)
				live[k][nl[k]++] = p;
			else
				fails++;
		} else if (op < 5 && nl[k] + 16 <= 256) {
			if (kmem_cache_alloc_bulk(x, GFP_KERNEL, 16, &live[k][nl[k]]) == 16)
				nl[k] += 16;
			else
				fails++;
		} else if (op < 6 && nl[k] >= 8) {
			nl[k] -= 8;
			kmem_cache_free_bulk(x, 8, &live[k][nl[k]]);
		} else if (op < 7) {
			struct slab_sheaf *sh = kmem_cache_prefill_sheaf(x, GFP_KERNEL, 20);
			if (sh)
				kmem_cache_return_sheaf(x, GFP_KERNEL, sh);
			else
				fails++;
		} else if (op < 8) {
			kmem_cache_shrink(x);
		} else if (nl[k]) {
			unsigned int i = (unsigned int)(rng >> 20) % nl[k];
			kmem_cache_free(x, live[k][i]);
			live[k][i] = live[k][--nl[k]];
		}
	}
	all_off();
	assert_true(fails > 0);
	for (unsigned int k = 0; k < 2; k++) {
		kmem_cache_free_bulk(k ? c : s, nl[k], live[k]);
		assert_int_equal(sheaf_cache_objects_inuse(k ? c : s), 0);
		kmem_cache_shrink(k ? c : s);
		assert_int_equal(sheaf_cache_slabs(k ? c : s), 0);
	}
	kmem_cache_destroy(s);
	kmem_cache_destroy(c);
}

/*
 * Caches without sheaves under page and slab failures: after they are
 * destroyed, every page they took is back in the page layer's free
 * accounting (sheaf caches also park sheaves in internal caches, which
 * keep their own slabs, so they are checked at the slab level above).
 */
static void test_pages_back_after_destroy(void **state)
{
	(void)state;
	all_off();
	struct sheaf_page_info before, after;
	sheaf_page_info(&before);
	struct kmem_cache *c[3] = { make("flt-pg-a", 24, 0), make("flt-pg-b", 700, 0),
				    make("flt-pg-c", 3000, 0) };
	static void *p[3][2000];
	unsigned int n[3] = { 0, 0, 0 }, fails = 0;
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_PAGE, "1,20,0,-1"), 0);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,5,0,-1"), 0);
	for (int it = 0; it < 6000; it++) {
		unsigned int k = (unsigned int)it % 3;
		if (it % 7 == 6 && n[k] >= 30) {
			n[k] -= 30;
			kmem_cache_free_bulk(c[k], 30, &p[k][n[k]]);
		} else if (n[k] + 8 <= 2000) {
			if (kmem_cache_alloc_bulk(c[k], GFP_KERNEL, 8, &p[k][n[k]]) == 8)
				n[k] += 8;
			else
				fails++;
		}
	}
	all_off();
	assert_true(fails > 0);
	for (unsigned int k = 0; k < 3; k++) {
		kmem_cache_free_bulk(c[k], n[k], p[k]);
		kmem_cache_destroy(c[k]);
	}
	sheaf_page_info(&after);
	assert_int_equal(after.used_pages, before.used_pages);
}

/*
 * Order fallback (the kernel's allocate_slab()): when the pages of the
 * cache's order are not to be had, the new slab takes the smallest order
 * that holds one object, with fewer objects, and order_fallback counts it.
 * 700-byte objects (stride 704): order 2 (23 objects), minimum order 0 (5
 * objects).  One failed page allocation (the next) forces it.  The thread
 * is pinned, so that a classic cache keeps one cpu slab.
 */
#define FB_SIZE 700
#define FB_STRIDE 704
#define FB_MIN_OBJECTS (4096 / FB_STRIDE)       /* 5 */
#define FB_OBJECTS ((4096 << 2) / FB_STRIDE)    /* 23 */

static struct kmem_cache *fb_cache;
static char *fb_slab;

/* An address inside the fallback slab where a sixth object would start:
 * in the cache's own order it is one, here it is the unused tail. */
static void free_past_fallback_slab(void *arg)
{
	(void)arg;
	kmem_cache_free(fb_cache, fb_slab + FB_MIN_OBJECTS * FB_STRIDE);
}

static void test_order_fallback(void **state)
{
	(void)state;
	all_off();
	cpu_set_t old, one;
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	bool stats = sheaf_stats_enabled();
	sheaf_stats_enable(true);

	/* A debug cache takes objects from its slabs in order, one by one. */
	struct kmem_cache *d = kmem_cache_create("flt-order-debug", FB_SIZE, NULL,
						 SLAB_CONSISTENCY_CHECKS);
	assert_non_null(d);
	sheaf_stats_reset(d);
	uint64_t before = sheaf_fault_injected(SHEAF_FAULT_PAGE);
	sheaf_inject_page_failures(0, 1);
	void *p[FB_MIN_OBJECTS + 1];
	p[0] = kmem_cache_alloc(d, GFP_KERNEL);
	assert_non_null(p[0]);
	assert_int_equal(sheaf_fault_injected(SHEAF_FAULT_PAGE) - before, 1);
	assert_int_equal(ST(d, ORDER_FALLBACK), 1);
	assert_int_equal(ST(d, ALLOC_SLAB), 1);
	assert_int_equal(sheaf_cache_slabs(d), 1);
	/* (slub_debug's metadata makes the stride 712: still 5 a page) */
	p[1] = kmem_cache_alloc(d, GFP_KERNEL);
	size_t stride = (size_t)((char *)p[1] - (char *)p[0]);
	assert_true(stride >= FB_STRIDE && 4096 / stride == FB_MIN_OBJECTS);
	for (int i = 2; i < FB_MIN_OBJECTS; i++) {
		p[i] = kmem_cache_alloc(d, GFP_KERNEL);
		assert_ptr_equal(p[i], (char *)p[0] + i * stride);
	}
	assert_int_equal(sheaf_cache_slabs(d), 1);
	/* The fallback slab is full after 5: the next slab has the order. */
	p[FB_MIN_OBJECTS] = kmem_cache_alloc(d, GFP_KERNEL);
	assert_non_null(p[FB_MIN_OBJECTS]);
	assert_int_equal(sheaf_cache_slabs(d), 2);
	assert_int_equal(ST(d, ORDER_FALLBACK), 1);
	assert_int_equal(sheaf_cache_objects_inuse(d), FB_MIN_OBJECTS + 1);
	/* slub_debug's slab checks take the slab's own objects. */
	assert_int_equal(kmem_cache_validate(d), 0);
	for (int i = 0; i <= FB_MIN_OBJECTS; i++)
		kmem_cache_free(d, p[i]);
	assert_int_equal(kmem_cache_validate(d), 0);
	assert_int_equal(ST(d, FREE_SLOWPATH), FB_MIN_OBJECTS + 1);
	assert_int_equal(kmem_cache_shrink(d), 0);
	kmem_cache_destroy(d);

	/* A classic cache: its cpu slab is the fallback slab. */
	struct kmem_cache_args a = { 0 };
	struct kmem_cache *c = kmem_cache_create("flt-order-classic", FB_SIZE, &a, 0);
	assert_non_null(c);
	sheaf_stats_reset(c);
	sheaf_inject_page_failures(0, 1);
	void *q[FB_MIN_OBJECTS + 1];
	for (int i = 0; i <= FB_MIN_OBJECTS; i++)
		assert_non_null(q[i] = kmem_cache_alloc(c, GFP_KERNEL));
	for (int i = 1; i < FB_MIN_OBJECTS; i++)
		assert_ptr_equal(q[i], (char *)q[0] + i * FB_STRIDE);
	assert_int_equal(ST(c, ORDER_FALLBACK), 1);
	assert_int_equal(sheaf_cache_slabs(c), 2);
	/* The slabs' own objects: 5 + 23, of which 6 in use, 22 cached. */
	assert_int_equal(sheaf_cache_objects_inuse(c), FB_MIN_OBJECTS + 1);
	assert_int_equal(sheaf_cache_cached_objects(c), FB_OBJECTS - 1);
	/* The exported free checks the slab's own objects, not the cache's. */
	fb_cache = c;
	fb_slab = q[0];
	expect_child_abort(free_past_fallback_slab, "not at an object boundary");
	for (int i = 0; i <= FB_MIN_OBJECTS; i++)
		kmem_cache_free(c, q[i]);
	assert_int_equal(sheaf_cache_objects_inuse(c), 0);
	assert_int_equal(kmem_cache_shrink(c), 0);
	kmem_cache_destroy(c);

	/* A cache with sheaves: the refill's slab is the fallback one, and
	 * neither slow path counts the refill. */
	a.sheaf_capacity = 4;
	struct kmem_cache *h = kmem_cache_create("flt-order-sheaf", FB_SIZE, &a, 0);
	assert_non_null(h);
	sheaf_stats_reset(h);
	sheaf_inject_page_failures(0, 1);
	void *o = kmem_cache_alloc(h, GFP_KERNEL);
	assert_non_null(o);
	assert_int_equal(ST(h, ORDER_FALLBACK), 1);
	assert_int_equal(sheaf_cache_slabs(h), 1);
	assert_int_equal(ST(h, SHEAF_REFILL), sheaf_cache_capacity(h));
	assert_int_equal(ST(h, ALLOC_SLOWPATH), 0);
	assert_int_equal(ST(h, ALLOC_FASTPATH), 1);
	/*
	 * The inline kmem_cache_free() (statistics and faults off, rseq mode)
	 * checks a pointer against the page map of slots, which has no
	 * entries for a fallback slab: the address where a sixth object would
	 * start takes the exported path and is reported.  The page
	 * descriptors it read before named the cache, whose 23 objects a slab
	 * made that address a boundary, and the pointer went into a sheaf.
	 * (Where the inline paths are off, fallback mode and sanitizer
	 * builds, this is the exported path's test again.)
	 */
	all_off();
	sheaf_stats_enable(false);
	fb_cache = h;
	fb_slab = (char *)((uintptr_t)o & ~(uintptr_t)4095);
	expect_child_abort(free_past_fallback_slab, "not at an object boundary");
	sheaf_stats_enable(true);
	kmem_cache_free(h, o);
	assert_int_equal(sheaf_cache_objects_inuse(h), 0);
	assert_int_equal(kmem_cache_shrink(h), 0);
	kmem_cache_destroy(h);

	all_off();
	sheaf_stats_enable(stats);
	assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
}

/* Under SHEAF_FAILSLAB (the second CTest run) the setting was taken. */
static void test_env_spec(void **state)
{
	(void)state;
	const char *v = getenv("SHEAF_FAILSLAB");
	if (!v)
		skip();
	/* the environment asks for cache "flt-env*" to fail every time */
	struct kmem_cache *s = make("flt-env", 64, 0);
	assert_null(kmem_cache_alloc(s, GFP_KERNEL));
	assert_true(sheaf_fault_injected(SHEAF_FAULT_SLAB) >= 1);
	all_off();
	void *p = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(p);
	kmem_cache_free(s, p);
	kmem_cache_destroy(s);
}

int main(void)
{
	/* test_env_spec first: the others switch the points off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_spec),
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_interval_and_space),
		cmocka_unit_test(test_probability),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_api_errors),
		cmocka_unit_test(test_prefill_promise),
		cmocka_unit_test(test_random_nothing_lost),
		cmocka_unit_test(test_pages_back_after_destroy),
		cmocka_unit_test(test_order_fallback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
