/* SPDX-License-Identifier: MIT */
/*
 * test_layout.c - where objects are and what they contain:
 *  - alignment for args.align 8..4096 (args form and legacy form) and
 *    SLAB_HWCACHE_ALIGN, objects never overlapping, across several slabs;
 *  - constructors: run on every object before it is handed out, never on a
 *    live object, at least once per distinct object, and the state the user
 *    leaves in a freed object survives to its next allocation (the free
 *    pointer of a ctor cache lives outside the object);
 *  - freeptr_offset in a ctor cache: every byte outside the free pointer
 *    survives free and reallocation;
 *  - kmem_cache_zalloc() / __GFP_ZERO on dirty, recycled objects;
 *  - ksize() of every kmalloc class;
 *  - the one object-index computation (sheaf_obj_index(), one multiply)
 *    against division, for every stride 8..65536 and offsets up to 2^32.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sheaf/slab.h>

#include "test_util.h"
#include "test_cmocka_util.h"

/* ============================================================ alignment */

/*
 * Allocate until the cache holds at least three slabs (or max objects),
 * checking alignment, then disjointness, then the contents.
 */
static void check_cache_layout(struct kmem_cache *s, size_t size, size_t align,
			       size_t max)
{
	void **p = calloc(max, sizeof(*p));
	assert_non_null(p);
	size_t n = 0;
	while (n < max && (n < 16 || sheaf_cache_slabs(s) < 3)) {
		p[n] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(p[n]);
		if ((uintptr_t)p[n] % align)
			fail_msg("%s: object %p not aligned to %zu (size %zu)",
				 kmem_cache_name(s), p[n], align, size);
		memset(p[n], (int)(n % 251) + 1, size);
		n++;
	}
	assert_disjoint(p, n, size);
	for (size_t i = 0; i < n; i++) {
		if (!all_bytes(p[i], size, (unsigned char)(i % 251 + 1)))
			fail_msg("%s: object %zu clobbered", kmem_cache_name(s), i);
		kmem_cache_free(s, p[i]);
	}
	assert_drained(s);
	free(p);
}

static void test_align(void **state)
{
	for (unsigned int a = 8; a <= 4096; a <<= 1) {
		const unsigned int sizes[] = { 8, 24, 100, a / 2 ? a / 2 : 1, a,
					       a + 8, 3 * a + 40 };
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			unsigned int sz = sizes[i];
			struct kmem_cache *s;
			if (i & 1) {
				s = kmem_cache_create("align-legacy", sz, a, 0, NULL);
			} else {
				struct kmem_cache_args args = { 0 };
				args.align = a;
				args.sheaf_capacity = (i & 2) ? 16 : 0;
				s = kmem_cache_create("align-args", sz, &args, 0);
			}
			assert_non_null(s);
			check_cache_layout(s, sz, a, 600);
			kmem_cache_destroy(s);
		}
	}
}

static void test_default_align(void **state)
{
	/* Without an alignment request objects are still 8-byte aligned. */
	for (unsigned int sz = 1; sz <= 300; sz += (sz < 40 ? 1 : 37)) {
		struct kmem_cache *s = kmem_cache_create("default-align", sz, NULL, 0);
		assert_non_null(s);
		check_cache_layout(s, sz, 8, 400);
		kmem_cache_destroy(s);
	}
}

static void test_hwcache_align(void **state)
{
	const unsigned int sizes[] = { 33, 40, 48, 63, 64, 65, 100, 129, 200, 1000, 3000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct kmem_cache_args args = { 0 };
		struct kmem_cache *s = kmem_cache_create("hwcache", sizes[i], &args,
							 SLAB_HWCACHE_ALIGN);
		assert_non_null(s);
		check_cache_layout(s, sizes[i], 64, 400);
		kmem_cache_destroy(s);

		/* A larger explicit align wins. */
		args.align = 256;
		s = kmem_cache_create("hwcache-256", sizes[i], &args, SLAB_HWCACHE_ALIGN);
		assert_non_null(s);
		check_cache_layout(s, sizes[i], 256, 400);
		kmem_cache_destroy(s);

		/* Legacy form. */
		s = kmem_cache_create("hwcache-legacy", sizes[i], 0, SLAB_HWCACHE_ALIGN,
				      NULL);
		assert_non_null(s);
		check_cache_layout(s, sizes[i], 64, 400);
		kmem_cache_destroy(s);
	}
}

/* ====================================================== object contents */

/*
 * What each object's memory must hold, keyed by address: set by the ctor
 * (CTOR) and by the test when it writes an object before freeing it (USER
 * with a round number).  Single-threaded, open addressing.
 */
struct shadow {
	uintptr_t addr;  /* 0: empty */
	uint32_t round;  /* 0: ctor state, else the user round that wrote it */
	uint32_t ctors;  /* ctor calls on this address */
	bool live;       /* handed out and not freed */
};

#define SHADOW_BITS 16
#define SHADOW_SIZE (1u << SHADOW_BITS)
static struct shadow shadow[SHADOW_SIZE];
static size_t shadow_used;
static unsigned long ctor_calls;
static unsigned long ctor_on_live;    /* ctor ran on a live object */
static unsigned long ctor_repeated;   /* ctor ran twice while no frees happened */
static bool frees_happened;
static unsigned int obj_size;         /* of the cache under test */
static int fp_off = -1;               /* free pointer offset, or -1 */

static struct shadow *shadow_get(const void *p, bool insert)
{
	uintptr_t a = (uintptr_t)p;
	size_t i = (size_t)((a >> 3) * 0x9E3779B97F4A7C15ull >> (64 - SHADOW_BITS));
	for (;;) {
		if (shadow[i].addr == a)
			return &shadow[i];
		if (shadow[i].addr == 0) {
			if (!insert)
				return NULL;
			if (shadow_used >= SHADOW_SIZE / 2)
				fail_msg("shadow table full");
			shadow[i].addr = a;
			shadow_used++;
			return &shadow[i];
		}
		i = (i + 1) & (SHADOW_SIZE - 1);
	}
}

static void shadow_reset(unsigned int size, int freeptr_offset)
{
	memset(shadow, 0, sizeof(shadow));
	shadow_used = 0;
	ctor_calls = ctor_on_live = ctor_repeated = 0;
	frees_happened = false;
	obj_size = size;
	fp_off = freeptr_offset;
}

static unsigned char pattern(uintptr_t addr, uint32_t round, size_t i)
{
	uint64_t x = (addr + i) * 0x9E3779B97F4A7C15ull + round * 0x51ull;
	return (unsigned char)(x >> 56);
}

static bool in_freeptr(size_t i)
{
	return fp_off >= 0 && i >= (size_t)fp_off && i < (size_t)fp_off + sizeof(void *);
}

static void fill(void *p, uint32_t round)
{
	unsigned char *c = p;
	for (size_t i = 0; i < obj_size; i++)
		c[i] = pattern((uintptr_t)p, round, i);
}

/* First differing byte outside the free pointer, or -1. */
static long mismatch(const void *p, uint32_t round)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < obj_size; i++)
		if (!in_freeptr(i) && c[i] != pattern((uintptr_t)p, round, i))
			return (long)i;
	return -1;
}

static void test_ctor(void *p)
{
	struct shadow *sh = shadow_get(p, true);
	ctor_calls++;
	if (sh->live)
		ctor_on_live++;
	if (sh->ctors && !frees_happened)
		ctor_repeated++;
	sh->ctors++;
	sh->round = 0;
	fill(p, 0);
}

static void *alloc_checked(struct kmem_cache *s)
{
	void *p = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(p);
	struct shadow *sh = shadow_get(p, false);
	if (!sh)
		fail_msg("object %p handed out without its ctor ever running", p);
	if (sh->live)
		fail_msg("object %p handed out twice", p);
	long bad = mismatch(p, sh->round);
	if (bad >= 0)
		fail_msg("object %p: byte %ld lost the %s state (round %u)", p,
			 bad, sh->round ? "user's" : "ctor's", sh->round);
	sh->live = true;
	return p;
}

static void free_checked(struct kmem_cache *s, void *p, uint32_t round)
{
	struct shadow *sh = shadow_get(p, false);
	assert_non_null(sh);
	fill(p, round);
	sh->round = round;
	sh->live = false;
	frees_happened = true;
	kmem_cache_free(s, p);
}

static void run_ctor_rounds(struct kmem_cache *s, size_t n)
{
	void **p = calloc(n, sizeof(*p));
	assert_non_null(p);

	/* Allocation only: the ctor runs once per object made. */
	for (size_t i = 0; i < n; i++)
		p[i] = alloc_checked(s);
	assert_int_equal(ctor_on_live, 0);
	assert_int_equal(ctor_repeated, 0);
	assert_true(ctor_calls >= n);
	assert_true(ctor_calls == shadow_used); /* no address twice */

	for (uint32_t round = 1; round <= 4; round++) {
		/* Free in an order that mixes slabs; write the user's state. */
		for (size_t i = 0; i < n; i += 2)
			free_checked(s, p[i], round);
		for (size_t i = 1; i < n; i += 2)
			free_checked(s, p[i], round);
		if (round == 3) /* slabs may go and come back: the ctor reruns */
			assert_int_equal(kmem_cache_shrink(s), 0);
		for (size_t i = 0; i < n; i++)
			p[i] = alloc_checked(s);
		assert_int_equal(ctor_on_live, 0);
		assert_true(ctor_calls >= shadow_used);
	}
	for (size_t i = 0; i < n; i++)
		free_checked(s, p[i], 99);
	assert_drained(s);

	/* A new slab after a full shrink: the ctor runs again. */
	unsigned long before = ctor_calls;
	void *again = alloc_checked(s);
	assert_true(ctor_calls > before);
	free_checked(s, again, 100);
	free(p);
}

static void test_ctor_state_survives(void **state)
{
	const unsigned int sizes[] = { 8, 96, 250, 2000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (unsigned int cap = 0; cap <= 32; cap += 32) {
			shadow_reset(sizes[i], -1);
			struct kmem_cache_args args = { 0 };
			args.ctor = test_ctor;
			args.sheaf_capacity = cap;
			struct kmem_cache *s = kmem_cache_create("ctor-cache", sizes[i],
								 &args, 0);
			assert_non_null(s);
			run_ctor_rounds(s, 1500);
			kmem_cache_destroy(s);
		}
	}
}

static void test_ctor_legacy_form(void **state)
{
	shadow_reset(128, -1);
	struct kmem_cache *s = kmem_cache_create("ctor-legacy", 128, 64, 0, test_ctor);
	assert_non_null(s);
	run_ctor_rounds(s, 800);
	kmem_cache_destroy(s);
}

static void test_freeptr_offset(void **state)
{
	const struct { unsigned int size, off; } cases[] = {
		{ 64, 16 }, { 64, 0 }, { 64, 56 }, { 200, 104 }, { 16, 8 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (unsigned int cap = 0; cap <= 32; cap += 32) {
			shadow_reset(cases[i].size, (int)cases[i].off);
			struct kmem_cache_args args = { 0 };
			args.ctor = test_ctor;
			args.use_freeptr_offset = true;
			args.freeptr_offset = cases[i].off;
			args.sheaf_capacity = cap;
			struct kmem_cache *s = kmem_cache_create("freeptr-ctor",
								 cases[i].size, &args, 0);
			assert_non_null(s);
			run_ctor_rounds(s, 1000);
			kmem_cache_destroy(s);
		}
	}
}

/* ================================================================ zalloc */

static void test_zalloc_recycled(void **state)
{
	const unsigned int sizes[] = { 8, 24, 100, 256, 1000, 4096, 5000 };
	enum { N = 200 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (unsigned int cap = 0; cap <= 32; cap += 32) {
			struct kmem_cache_args args = { 0 };
			args.sheaf_capacity = cap;
			struct kmem_cache *s = kmem_cache_create("zalloc", sizes[i],
								 &args, 0);
			assert_non_null(s);
			void *p[N];
			for (int k = 0; k < N; k++) {
				p[k] = kmem_cache_alloc(s, GFP_KERNEL);
				assert_non_null(p[k]);
				memset(p[k], 0xff, sizes[i]);
			}
			for (int k = 0; k < N; k++)
				kmem_cache_free(s, p[k]);
			for (int k = 0; k < N; k++) {
				p[k] = (k & 1) ? kmem_cache_zalloc(s, GFP_KERNEL)
					       : kmem_cache_alloc(s, GFP_KERNEL | __GFP_ZERO);
				assert_non_null(p[k]);
				if (!all_bytes(p[k], sizes[i], 0))
					fail_msg("size %u: object %p not zeroed",
						 sizes[i], p[k]);
				memset(p[k], 0xff, sizes[i]);
			}
			for (int k = 0; k < N; k++)
				kmem_cache_free(s, p[k]);
			kmem_cache_destroy(s);
		}
	}
}

/* ================================================================= ksize */

static void test_ksize_classes(void **state)
{
	static const size_t classes[] = { 8,   16,  32,   64,   96,   128, 192,
					  256, 512, 1024, 2048, 4096, 8192 };
	size_t prev = 0;
	for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++) {
		size_t k = classes[c];
		const size_t probes[] = { prev + 1, (prev + k) / 2 + 1, k - 1, k };
		for (size_t j = 0; j < 4; j++) {
			size_t n = probes[j];
			if (n <= prev || n > k)
				continue;
			void *p = kmalloc(n, GFP_KERNEL);
			assert_non_null(p);
			if (ksize(p) != k)
				fail_msg("ksize(kmalloc(%zu)) = %zu, expected %zu", n,
					 ksize(p), k);
			assert_int_equal(kmalloc_size_roundup(n), k);
			memset(p, 0x11, ksize(p)); /* all of it is usable */
			kfree(p);
		}
		prev = k;
	}
	/* Beyond the classes: pages, at least the request. */
	for (size_t n = 8193; n < (1u << 22); n = n * 3 + 1) {
		void *p = kmalloc(n, GFP_KERNEL);
		assert_non_null(p);
		assert_true(ksize(p) >= n);
		memset(p, 0x22, ksize(p));
		kfree(p);
	}
}

/*
 * sheaf_obj_index() / sheaf_obj_boundary() (<sheaf/rseq.h>) with the
 * reciprocal every cache gets: equal to division for every stride the
 * library can make, at the offsets where a multiply-shift goes wrong first
 * (around each multiple of the stride, and the top of the 2^32 range).
 */
static void test_obj_index(void **state)
{
	(void)state;
	struct sheaf_cache_hot h;
	memset(&h, 0, sizeof(h));
	uint64_t rng = 88172645463325252ull;
	for (unsigned int size = 8; size <= 65536; size++) {
		h.size = size;
		h.reciprocal = UINT64_MAX / size + 1;
		h.objects = (unsigned int)(((uint64_t)1 << 32) / size);
		uint64_t top = (uint64_t)h.objects * size;
		uint64_t offs[12] = { 0, 1, size - 1, size, size + 1,
				      top - size - 1, top - size, top - 1, top,
				      ((uint64_t)1 << 32) - 1 };
		for (int r = 10; r < 12; r++) {
			rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
			uint64_t k = rng % h.objects;
			offs[r] = k * size + (r == 11 ? rng % size : 0);
		}
		for (int i = 0; i < 12; i++) {
			uint64_t off = offs[i];
			if (sheaf_obj_index(&h, off) != off / size)
				fail_msg("size %u off %llu: index %llu, not %llu",
					 size, (unsigned long long)off,
					 (unsigned long long)sheaf_obj_index(&h, off),
					 (unsigned long long)(off / size));
			bool want = off % size == 0 && off / size < h.objects;
			if (sheaf_obj_boundary(&h, off) != want)
				fail_msg("size %u off %llu: boundary %d", size,
					 (unsigned long long)off, !want);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_align),
		cmocka_unit_test(test_default_align),
		cmocka_unit_test(test_hwcache_align),
		cmocka_unit_test(test_ctor_state_survives),
		cmocka_unit_test(test_ctor_legacy_form),
		cmocka_unit_test(test_freeptr_offset),
		cmocka_unit_test(test_zalloc_recycled),
		cmocka_unit_test(test_ksize_classes),
		cmocka_unit_test(test_obj_index),
	};
	return cmocka_run_group_tests_name("layout", tests, NULL, NULL);
}
