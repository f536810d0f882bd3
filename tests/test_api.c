/* SPDX-License-Identifier: MIT */
/*
 * test_api.c - the public API of <sheaf/slab.h> and <sheaf/stats.h>, call by
 * call, with every documented error case:
 *  - kmem_cache_create(): the three _Generic forms and KMEM_CACHE, each
 *    invalid argument on its own (NULL, errno EINVAL, one stderr line naming
 *    the cache), the valid boundaries, every valid flag, SLAB_PANIC;
 *  - alloc / zalloc / alloc_node / free / bulk / shrink / destroy (NULL,
 *    empty, with live objects), kmem_cache_size() / kmem_cache_name();
 *  - out of memory through sheaf_inject_page_failures(), __GFP_NOFAIL;
 *  - the kmalloc family: every size class through ksize() and
 *    kmalloc_size_roundup(), large sizes, ZERO_SIZE_PTR, kzalloc, kcalloc
 *    and kmalloc_array overflow, krealloc;
 *  - bad frees (foreign memory, interior pointers, wrong cache, double free)
 *    in forked children: SIGABRT and a "sheaf: " report with the address;
 *  - statistics (names, counts, per-slot sums, the print format, reset) and
 *    the introspection calls (slots, nodes, page info).
 */
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include "test_util.h"
#include "test_cmocka_util.h"

/* The kmalloc size classes, smallest first. */
static const size_t kmalloc_classes[] = { 8,   16,  32,   64,   96,   128, 192,
					  256, 512, 1024, 2048, 4096, 8192 };
#define NR_CLASSES (sizeof(kmalloc_classes) / sizeof(kmalloc_classes[0]))

static size_t class_of(size_t n)
{
	for (size_t i = 0; i < NR_CLASSES; i++)
		if (kmalloc_classes[i] >= n)
			return kmalloc_classes[i];
	return 0;
}

/* Destroy a cache that must be empty: nothing may be printed. */
static void destroy_quietly(struct kmem_cache *s)
{
	struct err_capture cap;
	capture_begin(&cap);
	kmem_cache_destroy(s);
	capture_end(&cap);
	if (cap.len)
		fail_msg("kmem_cache_destroy() of an empty cache printed: %s",
			 cap.text);
}

/* ======================================================== creation forms */

struct kc_obj {
	_Alignas(32) char a[40];
	long b;
};

static void ctor_mark(void *p)
{
	memset(p, 0x5c, 64);
}

static void exercise(struct kmem_cache *s, size_t size, size_t align)
{
	void *p[50];
	for (int i = 0; i < 50; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(p[i]);
		if (align)
			assert_int_equal((uintptr_t)p[i] % align, 0);
		memset(p[i], i, size);
	}
	for (int i = 0; i < 50; i++) {
		assert_true(all_bytes(p[i], size, (unsigned char)i));
		kmem_cache_free(s, p[i]);
	}
}

static void test_create_args_form(void **state)
{
	struct kmem_cache_args args = { 0 };
	args.align = 128;
	struct kmem_cache *s = kmem_cache_create("form-args", 100, &args, 0);
	assert_non_null(s);
	assert_string_equal(kmem_cache_name(s), "form-args");
	assert_int_equal(kmem_cache_size(s), 100);
	exercise(s, 100, 128);
	destroy_quietly(s);
}

static void test_create_null_form(void **state)
{
	struct kmem_cache *s = kmem_cache_create("form-null", 72, NULL, 0);
	assert_non_null(s);
	assert_string_equal(kmem_cache_name(s), "form-null");
	assert_int_equal(kmem_cache_size(s), 72);
	exercise(s, 72, 8);
	destroy_quietly(s);
}

static void test_create_legacy_form(void **state)
{
	struct kmem_cache *s = kmem_cache_create("form-legacy", 48, 64, 0, NULL);
	assert_non_null(s);
	assert_string_equal(kmem_cache_name(s), "form-legacy");
	assert_int_equal(kmem_cache_size(s), 48);
	exercise(s, 48, 64);
	destroy_quietly(s);

	struct kmem_cache *c = kmem_cache_create("form-legacy-ctor", 64, 0,
						 SLAB_HWCACHE_ALIGN, ctor_mark);
	assert_non_null(c);
	void *o = kmem_cache_alloc(c, GFP_KERNEL);
	assert_non_null(o);
	assert_true(all_bytes(o, 64, 0x5c));
	kmem_cache_free(c, o);
	destroy_quietly(c);
}

static void test_create_kmem_cache_macro(void **state)
{
	struct kmem_cache *s = KMEM_CACHE(kc_obj, SLAB_HWCACHE_ALIGN);
	assert_non_null(s);
	assert_string_equal(kmem_cache_name(s), "kc_obj");
	assert_int_equal(kmem_cache_size(s), sizeof(struct kc_obj));
	exercise(s, sizeof(struct kc_obj), _Alignof(struct kc_obj));
	destroy_quietly(s);
}

static void test_create_same_name_twice(void **state)
{
	struct kmem_cache *a = kmem_cache_create("twin", 32, NULL, 0);
	struct kmem_cache *b = kmem_cache_create("twin", 32, NULL, 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	void *x = kmem_cache_alloc(a, GFP_KERNEL);
	void *y = kmem_cache_alloc(b, GFP_KERNEL);
	assert_non_null(x);
	assert_non_null(y);
	kmem_cache_free(a, x);
	kmem_cache_free(b, y);
	destroy_quietly(a);
	destroy_quietly(b);
}

/* ============================================ creation: invalid arguments */

struct einval_case {
	const char *name;       /* cache name passed (may be NULL) */
	unsigned int size;
	unsigned int align;
	slab_flags_t flags;
	unsigned int capacity;
	bool use_freeptr;
	unsigned int freeptr_offset;
	bool ctor;
	int form;               /* 0: args, 1: NULL, 2: legacy */
};

static void noop_ctor(void *p)
{
	(void)p;
}

static void test_create_einval(void **state)
{
	const struct einval_case *c = *state;
	struct kmem_cache_args args = { 0 };
	args.align = c->align;
	args.sheaf_capacity = c->capacity;
	args.use_freeptr_offset = c->use_freeptr;
	args.freeptr_offset = c->freeptr_offset;
	args.ctor = c->ctor ? noop_ctor : NULL;

	struct err_capture cap;
	capture_begin(&cap);
	errno = 0;
	struct kmem_cache *s;
	if (c->form == 1)
		s = kmem_cache_create(c->name, c->size, NULL, c->flags);
	else if (c->form == 2)
		s = kmem_cache_create(c->name, c->size, c->align, c->flags,
				      c->ctor ? noop_ctor : NULL);
	else
		s = kmem_cache_create(c->name, c->size, &args, c->flags);
	int err = errno;
	capture_end(&cap);

	if (s) {
		kmem_cache_destroy(s);
		fail_msg("invalid arguments accepted (cache \"%s\")",
			 c->name ? c->name : "(null)");
	}
	if (err != EINVAL)
		fail_msg("errno %d (%s), expected EINVAL", err, strerror(err));
	if (count_char(cap.text, '\n') != 1 || cap.text[cap.len - 1] != '\n')
		fail_msg("expected exactly one line on stderr, got [%s]",
			 cap.text);
	if (c->name && !strstr(cap.text, c->name))
		fail_msg("stderr line does not name the cache \"%s\": [%s]",
			 c->name, cap.text);
}

static const struct einval_case einval_cases[] = {
	{ .name = NULL, .size = 64 },
	{ .name = "einval-size-0", .size = 0 },
	{ .name = "einval-size-max+1", .size = SHEAF_MAX_OBJECT_SIZE + 1 },
	{ .name = "einval-size-uint-max", .size = UINT_MAX },
	{ .name = "einval-align-3", .size = 64, .align = 3 },
	{ .name = "einval-align-24", .size = 64, .align = 24 },
	{ .name = "einval-align-2page", .size = 64, .align = 2 * SHEAF_PAGE_SIZE },
	{ .name = "einval-align-2^31", .size = 64, .align = 1u << 31 },
	{ .name = "einval-flag-1", .size = 64, .flags = 0x1 },
	{ .name = "einval-flag-top", .size = 64, .flags = 0x80000000u },
	{ .name = "einval-flags-unknown", .size = 64, .flags = ~SHEAF_SLAB_VALID_FLAGS },
	{ .name = "einval-capacity-max+1", .size = 64, .capacity = SHEAF_MAX_CAPACITY + 1 },
	{ .name = "einval-capacity-uint-max", .size = 64, .capacity = UINT_MAX },
	{ .name = "einval-freeptr-misaligned", .size = 64, .use_freeptr = true,
	  .freeptr_offset = 4, .ctor = true },
	{ .name = "einval-freeptr-beyond", .size = 64, .use_freeptr = true,
	  .freeptr_offset = 64, .ctor = true },
	{ .name = "einval-freeptr-no-room", .size = 68, .use_freeptr = true,
	  .freeptr_offset = 64, .ctor = true },
	{ .name = "einval-freeptr-far", .size = 64, .use_freeptr = true,
	  .freeptr_offset = 1u << 20, .ctor = true },
	{ .name = "einval-freeptr-no-ctor", .size = 64, .use_freeptr = true,
	  .freeptr_offset = 8 },
	{ .name = "einval-null-form-size-0", .size = 0, .form = 1 },
	{ .name = "einval-null-form-flags", .size = 64, .flags = 0x1, .form = 1 },
	{ .name = "einval-legacy-align-3", .size = 64, .align = 3, .form = 2 },
	{ .name = "einval-legacy-size-0", .size = 0, .align = 8, .form = 2, .ctor = true },
};

/* SLAB_PANIC: creation failure aborts, naming the cache. */
static void child_panic_create(void *arg)
{
	struct kmem_cache *s = kmem_cache_create("panic-cache", 0, NULL, SLAB_PANIC);
	(void)s;
	_exit(5); /* not reached when SLAB_PANIC works */
}

static void test_create_panic(void **state)
{
	struct child_result r;
	char how[96];
	run_in_child(child_panic_create, NULL, &r);
	if (!child_aborted(&r))
		fail_msg("SLAB_PANIC with size 0: child %s, expected SIGABRT; stderr [%s]",
			 child_how(&r, how, sizeof(how)), r.err);
	assert_non_null(strstr(r.err, "panic-cache"));
}

/* ============================================= creation: valid boundaries */

static void test_create_boundaries(void **state)
{
	/* Largest object. */
	struct kmem_cache *big = kmem_cache_create("max-object", SHEAF_MAX_OBJECT_SIZE,
						   NULL, 0);
	assert_non_null(big);
	assert_int_equal(kmem_cache_size(big), SHEAF_MAX_OBJECT_SIZE);
	unsigned char *o = kmem_cache_alloc(big, GFP_KERNEL);
	assert_non_null(o);
	o[0] = 1;
	o[SHEAF_MAX_OBJECT_SIZE - 1] = 2;
	assert_int_equal(o[0] + o[SHEAF_MAX_OBJECT_SIZE - 1], 3);
	kmem_cache_free(big, o);
	destroy_quietly(big);

	/* Smallest object. */
	struct kmem_cache *one = kmem_cache_create("one-byte", 1, NULL, 0);
	assert_non_null(one);
	exercise(one, 1, 0);
	destroy_quietly(one);

	/* Page alignment, largest capacity. */
	struct kmem_cache_args args = { 0 };
	args.align = SHEAF_PAGE_SIZE;
	args.sheaf_capacity = SHEAF_MAX_CAPACITY;
	struct kmem_cache *pa = kmem_cache_create("page-aligned", 200, &args, 0);
	assert_non_null(pa);
	exercise(pa, 200, SHEAF_PAGE_SIZE);
	destroy_quietly(pa);

	/* Every align that is a power of two. */
	for (unsigned int a = 1; a <= SHEAF_PAGE_SIZE; a <<= 1) {
		struct kmem_cache_args aa = { 0 };
		aa.align = a;
		struct kmem_cache *s = kmem_cache_create("pow2-align", 24, &aa, 0);
		assert_non_null(s);
		exercise(s, 24, a);
		destroy_quietly(s);
	}

	/* freeptr_offset with a ctor, and with SLAB_TYPESAFE_BY_RCU. */
	struct kmem_cache_args fa = { 0 };
	fa.use_freeptr_offset = true;
	fa.freeptr_offset = 56;
	fa.ctor = noop_ctor;
	struct kmem_cache *f = kmem_cache_create("freeptr-ctor", 64, &fa, 0);
	assert_non_null(f);
	exercise(f, 64, 0);
	destroy_quietly(f);

	struct kmem_cache_args ra = { 0 };
	ra.use_freeptr_offset = true;
	ra.freeptr_offset = 0;
	struct kmem_cache *r = kmem_cache_create("freeptr-rcu", 64, &ra,
						 SLAB_TYPESAFE_BY_RCU);
	assert_non_null(r);
	void *ro = kmem_cache_alloc(r, GFP_KERNEL);
	assert_non_null(ro);
	kmem_cache_free(r, ro);
	kmem_cache_destroy(r);
}

/* Every valid flag on its own creates a working cache. */
static void test_create_each_valid_flag(void **state)
{
	for (unsigned int bit = 0; bit < 32; bit++) {
		slab_flags_t fl = 1u << bit;
		if (!(fl & SHEAF_SLAB_VALID_FLAGS))
			continue;
		struct err_capture cap;
		struct kmem_cache_args args = { 0 };
		args.sheaf_capacity = 16; /* ignored by debug caches */
		/* SLAB_TRACE may print every operation: keep it off the log. */
		capture_begin(&cap);
		struct kmem_cache *s = kmem_cache_create("flag-cache", 40, &args, fl);
		void *p[20] = { 0 };
		int got = 0;
		if (s) {
			for (int i = 0; i < 20; i++) {
				p[i] = kmem_cache_alloc(s, GFP_KERNEL);
				if (p[i]) {
					memset(p[i], 0xee, 40);
					got++;
				}
			}
			for (int i = 0; i < 20; i++)
				kmem_cache_free(s, p[i]);
		}
		unsigned int cap_now = s ? sheaf_cache_capacity(s) : 0;
		kmem_cache_destroy(s);
		capture_end(&cap);
		if (!s)
			fail_msg("flag %#x refused: %s", fl, cap.text);
		if (got != 20)
			fail_msg("flag %#x: only %d of 20 allocations succeeded", fl, got);
		if ((fl & SLAB_DEBUG_FLAGS) && cap_now != 0)
			fail_msg("debug flag %#x: sheaf_cache_capacity %u, expected 0"
				 " (capacity is ignored for debug caches)", fl, cap_now);
	}
}

/* ================================================== objects: alloc / free */

static void test_alloc_free_basic(void **state)
{
	enum { N = 1000 };
	struct kmem_cache *s = make_cache("basic", 100, 0);
	void **p = calloc(N, sizeof(*p));
	assert_non_null(p);

	for (size_t i = 0; i < N; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % 8, 0);
		memset(p[i], (int)(i & 0xff), 100);
		int node = sheaf_obj_node(p[i]);
		assert_true(node >= 0 && node < (int)sheaf_nr_nodes());
		assert_true(ksize(p[i]) >= 100);
	}
	assert_disjoint(p, N, 100);
	for (size_t i = 0; i < N; i++)
		assert_true(all_bytes(p[i], 100, (unsigned char)(i & 0xff)));

	assert_int_equal(kmem_cache_shrink(s), 1); /* objects in use: slabs remain */
	assert_int_equal(sheaf_cache_objects_inuse(s), N);
	assert_true(sheaf_cache_slabs(s) >= 1);

	/* Free half, then the rest in the other order. */
	for (size_t i = 0; i < N; i += 2)
		kmem_cache_free(s, p[i]);
	assert_int_equal(kmem_cache_shrink(s), 1); /* half in use */
	assert_int_equal(sheaf_cache_objects_inuse(s), N / 2);
	for (size_t i = N - 1; i < N; i -= 2)
		kmem_cache_free(s, p[i]);

	assert_drained(s);

	/* The cache is still usable after a full shrink. */
	void *again = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(again);
	kmem_cache_free(s, again);
	kmem_cache_free(s, NULL); /* no-op */
	free(p);
	destroy_quietly(s);
}

static void test_alloc_capacity_cache(void **state)
{
	/* A sheaf-capacity cache behaves like any cache for its users. */
	enum { N = 700 };
	struct kmem_cache *s = make_cache("with-capacity", 256, 32);
	unsigned int cap = sheaf_cache_capacity(s);
	assert_true(cap == 0 || cap == 32);
	void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(p[i]);
		memset(p[i], i & 0xff, 256);
	}
	assert_disjoint(p, N, 256);
	for (int i = 0; i < N; i++) {
		assert_true(all_bytes(p[i], 256, (unsigned char)(i & 0xff)));
		kmem_cache_free(s, p[i]);
	}
	assert_drained(s);
	destroy_quietly(s);

	struct kmem_cache *z = make_cache("no-capacity", 256, 0);
	assert_int_equal(sheaf_cache_capacity(z), 0);
	destroy_quietly(z);
	assert_int_equal(sheaf_cache_capacity(NULL), 0);
}

static void test_alloc_einval(void **state)
{
	struct kmem_cache *s = make_cache("alloc-einval", 64, 0);
	const gfp_t bad = 0x40000000u;
	assert_int_equal(bad & SHEAF_GFP_VALID_MASK, 0);

	struct err_capture cap;
	void *r[6];
	int e[6];
	capture_begin(&cap);
	errno = 0; r[0] = kmem_cache_alloc(NULL, GFP_KERNEL); e[0] = errno;
	errno = 0; r[1] = kmem_cache_alloc(s, GFP_KERNEL | bad); e[1] = errno;
	errno = 0; r[2] = kmem_cache_zalloc(s, bad); e[2] = errno;
	errno = 0; r[3] = kmem_cache_alloc_node(s, bad, NUMA_NO_NODE); e[3] = errno;
	errno = 0; r[4] = kmem_cache_zalloc(NULL, GFP_KERNEL); e[4] = errno;
	errno = 0; r[5] = kmem_cache_alloc_node(NULL, GFP_KERNEL, NUMA_NO_NODE); e[5] = errno;
	capture_end(&cap);
	for (int i = 0; i < 6; i++) {
		if (r[i] != NULL || e[i] != EINVAL)
			fail_msg("case %d: got %p errno %d, expected NULL/EINVAL",
				 i, r[i], e[i]);
	}
	destroy_quietly(s);
}

static void test_zalloc(void **state)
{
	enum { N = 300 };
	struct kmem_cache *s = make_cache("zalloc", 200, 0);
	void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(p[i]);
		memset(p[i], 0xa5, 200);
	}
	for (int i = 0; i < N; i++)
		kmem_cache_free(s, p[i]);
	for (int i = 0; i < N; i++) {
		p[i] = (i & 1) ? kmem_cache_zalloc(s, GFP_KERNEL)
			       : kmem_cache_alloc(s, GFP_KERNEL | __GFP_ZERO);
		assert_non_null(p[i]);
		if (!all_bytes(p[i], 200, 0))
			fail_msg("object %d (%p) not zeroed", i, p[i]);
		memset(p[i], 0xa5, 200);
	}
	for (int i = 0; i < N; i++)
		kmem_cache_free(s, p[i]);
	destroy_quietly(s);
}

static void test_alloc_node(void **state)
{
	struct kmem_cache *s = make_cache("alloc-node", 64, 0);
	int nodes = (int)sheaf_nr_nodes();
	assert_true(nodes >= 1);

	for (int n = 0; n < nodes; n++) {
		void *p[40];
		for (int i = 0; i < 40; i++) {
			gfp_t g = (i & 1) ? GFP_KERNEL | __GFP_THISNODE : GFP_KERNEL;
			p[i] = kmem_cache_alloc_node(s, g, n);
			assert_non_null(p[i]);
			if (sheaf_obj_node(p[i]) != n)
				fail_msg("allocation %d: kmem_cache_alloc_node(node %d%s) gave "
					 "an object on node %d", i, n,
					 (g & __GFP_THISNODE) ? ", __GFP_THISNODE" : "",
					 sheaf_obj_node(p[i]));
			memset(p[i], n, 64);
		}
		void *k = kmalloc_node(300, GFP_KERNEL | __GFP_THISNODE, n);
		assert_non_null(k);
		assert_int_equal(sheaf_obj_node(k), n);
		kfree(k);
		for (int i = 0; i < 40; i++)
			kmem_cache_free(s, p[i]);
	}
	void *any = kmem_cache_alloc_node(s, GFP_KERNEL, NUMA_NO_NODE);
	assert_non_null(any);
	int an = sheaf_obj_node(any);
	assert_true(an >= 0 && an < nodes);
	kmem_cache_free(s, any);
	void *ka = kmalloc_node(40, GFP_KERNEL, NUMA_NO_NODE);
	assert_non_null(ka);
	kfree(ka);

	const int bad_nodes[] = { nodes, nodes + 1, -2, INT_MIN, INT_MAX };
	for (size_t i = 0; i < sizeof(bad_nodes) / sizeof(bad_nodes[0]); i++) {
		struct err_capture cap;
		capture_begin(&cap);
		errno = 0;
		void *r = kmem_cache_alloc_node(s, GFP_KERNEL, bad_nodes[i]);
		int e = errno;
		capture_end(&cap);
		if (r != NULL || e != EINVAL)
			fail_msg("alloc_node(node %d of %d): got %p errno %d, expected NULL/EINVAL",
				 bad_nodes[i], nodes, r, e);
	}
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	destroy_quietly(s);
}

static void test_kfree_cache_object(void **state)
{
	struct kmem_cache *s = make_cache("kfree-cache-obj", 120, 0);
	void *p[64];
	for (int i = 0; i < 64; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(p[i]);
		assert_true(ksize(p[i]) >= 120);
	}
	for (int i = 0; i < 64; i++)
		kfree(p[i]);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	destroy_quietly(s);
}

static void test_bulk_basic(void **state)
{
	struct kmem_cache *s = make_cache("api-bulk", 48, 0);
	void *p[100];
	memset(p, 0, sizeof(p));
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, 0, p), 0);
	assert_int_equal(kmem_cache_alloc_bulk(s, GFP_KERNEL, 100, p), 100);
	for (int i = 0; i < 100; i++) {
		assert_non_null(p[i]);
		memset(p[i], i, 48);
	}
	assert_disjoint(p, 100, 48);
	assert_int_equal(kmem_cache_shrink(s), 1); /* objects in use: slabs remain */
	assert_int_equal(sheaf_cache_objects_inuse(s), 100);
	kmem_cache_free_bulk(s, 0, p);
	kmem_cache_free_bulk(s, 100, p);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	destroy_quietly(s);
}

/* ====================================================== shrink / destroy */

static void test_shrink(void **state)
{
	assert_int_equal(kmem_cache_shrink(NULL), -EINVAL);
	struct kmem_cache *s = make_cache("shrink", 512, 0);
	assert_int_equal(kmem_cache_shrink(s), 0); /* never used */
	void *p[100];
	for (int i = 0; i < 100; i++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	/* Keep one object: its slab stays, the empty ones go. */
	for (int i = 1; i < 100; i++)
		kmem_cache_free(s, p[i]);
	assert_int_equal(kmem_cache_shrink(s), 1); /* objects in use: slabs remain */
	assert_int_equal(sheaf_cache_objects_inuse(s), 1);
	assert_int_equal(sheaf_cache_slabs(s), 1);
	kmem_cache_free(s, p[0]);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_slabs(s), 0);
	destroy_quietly(s);
}

static void test_destroy_null_and_empty(void **state)
{
	kmem_cache_destroy(NULL);
	struct kmem_cache *s = make_cache("destroy-unused", 64, 0);
	destroy_quietly(s);
	s = make_cache("destroy-used", 64, 32);
	void *p[200];
	for (int i = 0; i < 200; i++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	for (int i = 0; i < 200; i++)
		kmem_cache_free(s, p[i]);
	destroy_quietly(s); /* objects parked in per-CPU caches are not live */
}

static void child_destroy_live(void *arg)
{
	struct kmem_cache_args args = { 0 };
	struct kmem_cache *s = kmem_cache_create("live-cache", 128, &args, 0);
	if (!s)
		_exit(10);
	unsigned char *p[3];
	for (int i = 0; i < 3; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		if (!p[i])
			_exit(11);
		memset(p[i], 0x30 + i, 128);
	}
	/* One more that is freed: not counted. */
	void *q = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, q);
	kmem_cache_destroy(s);
	/* The memory stays valid. */
	for (int i = 0; i < 3; i++) {
		if (!all_bytes(p[i], 128, (unsigned char)(0x30 + i)))
			_exit(12);
		memset(p[i], 0x77, 128);
	}
	for (int i = 0; i < 3; i++)
		if (!all_bytes(p[i], 128, 0x77))
			_exit(13);
	/* And the rest of the library still works. */
	void *k = kmalloc(128, GFP_KERNEL);
	if (!k)
		_exit(14);
	kfree(k);
	_exit(0);
}

static void test_destroy_live(void **state)
{
	struct child_result r;
	char how[96];
	run_in_child(child_destroy_live, NULL, &r);
	if (!child_exited_ok(&r))
		fail_msg("child %s (10-14: setup or check failed); stderr [%s]",
			 child_how(&r, how, sizeof(how)), r.err);
	if (!strstr(r.err, "live-cache"))
		fail_msg("report does not name the cache: [%s]", r.err);
	if (!strstr(r.err, "3 objects remaining"))
		fail_msg("report does not say \"3 objects remaining\": [%s]", r.err);
}

static void test_size_name(void **state)
{
	assert_int_equal(kmem_cache_size(NULL), 0);
	assert_null(kmem_cache_name(NULL));
	struct kmem_cache *s = make_cache("size-name", 333, 0);
	assert_int_equal(kmem_cache_size(s), 333);
	assert_string_equal(kmem_cache_name(s), "size-name");
	destroy_quietly(s);
}

/* ========================================================= out of memory */

static void test_oom_injection(void **state)
{
	struct kmem_cache *s = make_cache("oom", 64, 0);
	struct err_capture cap;
	void *r[5];

	capture_begin(&cap); /* failure warnings, if any */
	sheaf_inject_page_failures(0, -1);
	r[0] = kmem_cache_alloc(s, GFP_KERNEL);
	r[1] = kmem_cache_zalloc(s, GFP_KERNEL);
	r[2] = kmem_cache_alloc_node(s, GFP_KERNEL, 0);
	r[3] = kmalloc(64 * 1024, GFP_KERNEL);
	r[4] = kmalloc(64 * 1024, GFP_KERNEL | __GFP_NOWARN);
	sheaf_inject_page_failures(0, 0);
	capture_end(&cap);
	for (int i = 0; i < 5; i++)
		if (r[i])
			fail_msg("allocation %d succeeded with every page allocation failing", i);

	void *ok = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(ok);
	kmem_cache_free(s, ok);
	destroy_quietly(s);
}

/*
 * kmalloc(__GFP_NOFAIL) without blocking: a page run retries through
 * injected failures; kvmalloc() makes a dedicated mapping anyway (it spun
 * forever: the mapping path refused every non-blocking request).
 */
static void nofail_nowait(void *arg)
{
	sheaf_inject_page_failures(0, 3);
	void *run = kmalloc(64 << 10, GFP_NOWAIT | __GFP_NOFAIL);
	sheaf_inject_page_failures(0, 0);
	void *huge = kvmalloc(8 << 20, GFP_NOWAIT | __GFP_NOFAIL);
	if (!run || !huge)
		_exit(3);
	kfree(run);
	kvfree(huge);
}

static void test_kmalloc_nofail_nowait(void **state)
{
	struct child_result r;
	run_in_child(nofail_nowait, NULL, &r);
	if (!child_exited_ok(&r)) {
		char how[64];
		fail_msg("kmalloc(GFP_NOWAIT | __GFP_NOFAIL): %s; stderr:\n%s",
			 child_how(&r, how, sizeof(how)), r.err);
	}
}

static void test_oom_nofail(void **state)
{
	struct kmem_cache *s = make_cache("oom-nofail", 64, 0);
	struct err_capture cap;
	capture_begin(&cap);
	sheaf_inject_page_failures(0, 3);
	void *p = kmem_cache_alloc(s, GFP_KERNEL | __GFP_NOFAIL);
	sheaf_inject_page_failures(0, 0);
	capture_end(&cap);
	assert_non_null(p);
	kmem_cache_free(s, p);

	/* skip: the first page allocations succeed, then they fail. */
	struct kmem_cache *t = make_cache("oom-skip", 1024, 0);
	enum { Q = 4096 }; /* 4 MiB: more than two slabs of any order */
	void **q = calloc(Q, sizeof(*q));
	assert_non_null(q);
	int got = 0;
	capture_begin(&cap);
	sheaf_inject_page_failures(2, -1);
	for (int i = 0; i < Q; i++) {
		q[i] = kmem_cache_alloc(t, GFP_KERNEL);
		if (!q[i])
			break;
		got++;
	}
	sheaf_inject_page_failures(0, 0);
	capture_end(&cap);
	assert_true(got > 0);   /* the skipped pages served some */
	assert_true(got < Q); /* then allocation failed */
	for (int i = 0; i < got; i++)
		kmem_cache_free(t, q[i]);
	free(q);
	destroy_quietly(t);
	destroy_quietly(s);
}

/* ================================================================ kmalloc */

static void test_kmalloc_every_class(void **state)
{
	for (size_t n = 1; n <= KMALLOC_MAX_CACHE_SIZE; n++) {
		unsigned char *p = kmalloc(n, GFP_KERNEL);
		assert_non_null(p);
		size_t want = class_of(n);
		if (ksize(p) != want)
			fail_msg("ksize(kmalloc(%zu)) = %zu, expected %zu", n,
				 ksize(p), want);
		if (kmalloc_size_roundup(n) != want)
			fail_msg("kmalloc_size_roundup(%zu) = %zu, expected %zu",
				 n, kmalloc_size_roundup(n), want);
		assert_int_equal((uintptr_t)p % ARCH_KMALLOC_MINALIGN, 0);
		p[0] = 1;
		p[n - 1] = 2;
		kfree(p);
	}
	/* The examples of the documentation. */
	void *a = kmalloc(65, GFP_KERNEL), *b = kmalloc(100, GFP_KERNEL),
	     *c = kmalloc(193, GFP_KERNEL);
	assert_int_equal(ksize(a), 96);
	assert_int_equal(ksize(b), 128);
	assert_int_equal(ksize(c), 256);
	kfree(a);
	kfree(b);
	kfree(c);
}

static void test_kmalloc_large(void **state)
{
	const size_t sizes[] = { KMALLOC_MAX_CACHE_SIZE + 1, 10000, 65536, 300000,
				 1ul << 20, 4ul << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *p = kmalloc(n, GFP_KERNEL);
		assert_non_null(p);
		assert_true(ksize(p) >= n);
		assert_int_equal((uintptr_t)p % ARCH_KMALLOC_MINALIGN, 0);
		memset(p, 0x3c, n);
		int node = sheaf_obj_node(p);
		if (node < 0 || node >= (int)sheaf_nr_nodes())
			fail_msg("sheaf_obj_node(kmalloc(%zu)) = %d, expected a node "
				 "in [0, %u)", n, node, sheaf_nr_nodes());
		kfree(p);
	}
}

/* <sheaf/slab.h>: kmalloc_size_roundup() is the usable size kmalloc gives:
 * a page run (power of two of pages) up to KMALLOC_MAX_SIZE (4 MiB), and
 * it agrees with ksize(); above, where kmalloc() fails, the size itself
 * (the kernel's answer). */
static void test_kmalloc_roundup_large(void **state)
{
	const size_t sizes[] = { KMALLOC_MAX_CACHE_SIZE + 1, 10000, 65536,
				 (1ul << 20) + 1, (3ul << 20) + 1, 4ul << 20 };
	const size_t want[] = { 16384, 16384, 65536, 2ul << 20, 4ul << 20,
				4ul << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(kmalloc_size_roundup(sizes[i]), want[i]);
		void *p = kmalloc(sizes[i], GFP_KERNEL);
		assert_non_null(p);
		assert_int_equal(ksize(p), want[i]);
		kfree(p);
	}
	assert_int_equal(kmalloc_size_roundup(0), 0);
	assert_int_equal(kmalloc_size_roundup(KMALLOC_MAX_SIZE + 1),
			 KMALLOC_MAX_SIZE + 1);
	assert_int_equal(kmalloc_size_roundup(SIZE_MAX), SIZE_MAX);
}

static void test_kmalloc_zero_and_null(void **state)
{
	assert_ptr_equal(kmalloc(0, GFP_KERNEL), ZERO_SIZE_PTR);
	assert_ptr_equal(kzalloc(0, GFP_KERNEL), ZERO_SIZE_PTR);
	assert_true(ZERO_OR_NULL_PTR(ZERO_SIZE_PTR));
	assert_true(ZERO_OR_NULL_PTR(NULL));
	kfree(ZERO_SIZE_PTR);
	kfree(NULL);
	assert_int_equal(ksize(NULL), 0);
	assert_int_equal(ksize(ZERO_SIZE_PTR), 0);
}

static void test_kmalloc_too_big(void **state)
{
	struct err_capture cap;
	capture_begin(&cap);
	void *a = kmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL);
	void *b = kmalloc(SIZE_MAX, GFP_KERNEL);
	void *c = kzalloc(SIZE_MAX, GFP_KERNEL);
	capture_end(&cap);
	assert_null(a);
	assert_null(b);
	assert_null(c);
}

static void test_kzalloc_kcalloc(void **state)
{
	void *d[64];
	for (int i = 0; i < 64; i++) {
		d[i] = kmalloc(256, GFP_KERNEL);
		assert_non_null(d[i]);
		memset(d[i], 0xdb, 256);
	}
	for (int i = 0; i < 64; i++)
		kfree(d[i]);
	for (int i = 0; i < 64; i++) {
		d[i] = (i % 3 == 0) ? kzalloc(200, GFP_KERNEL)
		     : (i % 3 == 1) ? kcalloc(10, 20, GFP_KERNEL)
				    : kmalloc(200, GFP_KERNEL | __GFP_ZERO);
		assert_non_null(d[i]);
		if (!all_bytes(d[i], 200, 0))
			fail_msg("object %d not zeroed", i);
	}
	for (int i = 0; i < 64; i++)
		kfree(d[i]);

	struct err_capture cap;
	capture_begin(&cap);
	void *o1 = kcalloc(SIZE_MAX / 2 + 1, 2, GFP_KERNEL);
	void *o2 = kcalloc(SIZE_MAX, SIZE_MAX, GFP_KERNEL);
	void *o3 = kcalloc(2, SIZE_MAX / 2 + 1, GFP_KERNEL);
	void *o4 = kmalloc_array(SIZE_MAX / 8 + 1, 8, GFP_KERNEL);
	void *o5 = kmalloc_array((size_t)1 << 33, (size_t)1 << 33, GFP_KERNEL);
	capture_end(&cap);
	assert_null(o1);
	assert_null(o2);
	assert_null(o3);
	assert_null(o4);
	assert_null(o5);

	void *a = kmalloc_array(10, 20, GFP_KERNEL);
	assert_non_null(a);
	assert_true(ksize(a) >= 200);
	kfree(a);
	void *z = kcalloc(1000, 10, GFP_KERNEL); /* a page allocation */
	assert_non_null(z);
	assert_true(all_bytes(z, 10000, 0));
	kfree(z);
}

static void test_krealloc(void **state)
{
	/* NULL acts like kmalloc. */
	unsigned char *p = krealloc(NULL, 100, GFP_KERNEL);
	assert_non_null(p);
	assert_int_equal(ksize(p), 128);
	fill_seq(p, 100, 3);

	/* Growth within and across classes, then to pages. */
	const size_t grow[] = { 120, 128, 129, 1000, 5000, 8192, 20000, 300000 };
	size_t have = 100;
	for (size_t i = 0; i < sizeof(grow) / sizeof(grow[0]); i++) {
		unsigned char *q = krealloc(p, grow[i], GFP_KERNEL);
		assert_non_null(q);
		assert_true(ksize(q) >= grow[i]);
		if (!check_seq(q, have, 3))
			fail_msg("krealloc to %zu lost the contents", grow[i]);
		p = q;
		fill_seq(p, grow[i], 3);
		have = grow[i];
	}
	/* Shrink back down. */
	const size_t shrink[] = { 100000, 9000, 4000, 500, 64, 9, 1 };
	for (size_t i = 0; i < sizeof(shrink) / sizeof(shrink[0]); i++) {
		unsigned char *q = krealloc(p, shrink[i], GFP_KERNEL);
		assert_non_null(q);
		assert_true(ksize(q) >= shrink[i]);
		if (!check_seq(q, shrink[i], 3))
			fail_msg("krealloc shrinking to %zu lost the contents",
				 shrink[i]);
		p = q;
	}
	/* Size 0 frees and returns ZERO_SIZE_PTR. */
	assert_ptr_equal(krealloc(p, 0, GFP_KERNEL), ZERO_SIZE_PTR);

	/* Failure leaves the original untouched. */
	unsigned char *k = kmalloc(50, GFP_KERNEL);
	assert_non_null(k);
	fill_seq(k, 50, 9);
	struct err_capture cap;
	capture_begin(&cap);
	void *f = krealloc(k, KMALLOC_MAX_SIZE + 1, GFP_KERNEL);
	sheaf_inject_page_failures(0, -1);
	void *g = krealloc(k, 64 * 1024, GFP_KERNEL);
	sheaf_inject_page_failures(0, 0);
	capture_end(&cap);
	assert_null(f);
	assert_null(g);
	assert_true(check_seq(k, 50, 9));
	assert_int_equal(ksize(k), 64);
	kfree(k);
}

static void test_kmalloc_objects_disjoint(void **state)
{
	for (size_t c = 0; c < NR_CLASSES; c++) {
		size_t n = kmalloc_classes[c];
		enum { M = 64 };
		unsigned char *p[M];
		for (int i = 0; i < M; i++) {
			p[i] = kmalloc(n, GFP_KERNEL);
			assert_non_null(p[i]);
			/* The whole ksize() area is usable. */
			memset(p[i], i + 1, ksize(p[i]));
		}
		assert_disjoint((void **)p, M, n);
		for (int i = 0; i < M; i++) {
			if (!all_bytes(p[i], n, (unsigned char)(i + 1)))
				fail_msg("kmalloc-%zu object %d clobbered", n, i);
			kfree(p[i]);
		}
	}
}

/* ============================================== bad frees: abort reports */

struct bad_free {
	const char *what;
	struct kmem_cache *cache;  /* NULL: kfree() */
	struct kmem_cache *other;
	void *ptr;                 /* the pointer to free */
	void *first;               /* freed first (double free), or NULL */
	bool bulk;                 /* through kmem_cache_free_bulk() */
	const char *kw[3];         /* one of these must appear */
	bool want_name;            /* the cache name must appear */
};

/*
 * An immediately repeated free is caught on the slot that took the first
 * (the classic slot's freelist head, as the kernel catches it).  With
 * cpu_id slots (test_api_cpu_id) a migration between the two frees puts
 * the second on another CPU's slot, which cannot see it: the kernel misses
 * it there too.  So a child that frees twice runs both on one CPU.  It
 * failed that way once under ASan in CI (session 23).
 */
static void stay_on_this_cpu(void)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	(void)sched_setaffinity(0, sizeof(one), &one);
}

static void child_bad_free(void *arg)
{
	struct bad_free *b = arg;
	if (b->first) {
		stay_on_this_cpu();
		if (b->cache)
			kmem_cache_free(b->cache, b->first);
		else
			kfree(b->first);
	}
	if (b->bulk)
		kmem_cache_free_bulk(b->cache, 1, &b->ptr);
	else if (b->cache)
		kmem_cache_free(b->cache, b->ptr);
	else
		kfree(b->ptr);
	_exit(7); /* survived */
}

static void expect_abort(struct bad_free *b)
{
	struct child_result r;
	char how[96], hex[32];
	run_in_child(child_bad_free, b, &r);
	if (!child_aborted(&r))
		fail_msg("%s: child %s, expected SIGABRT; stderr [%s]", b->what,
			 child_how(&r, how, sizeof(how)), r.err);
	if (strncmp(r.err, "sheaf: ", 7) != 0)
		fail_msg("%s: report does not start with \"sheaf: \": [%s]",
			 b->what, r.err);
	bool kw = false;
	for (int i = 0; i < 3 && b->kw[i]; i++)
		kw |= strcasestr(r.err, b->kw[i]) != NULL;
	if (!kw)
		fail_msg("%s: report has none of \"%s\"/\"%s\": [%s]", b->what,
			 b->kw[0], b->kw[1] ? b->kw[1] : "", r.err);
	if (!strstr(r.err, addr_hex(b->ptr, hex, sizeof(hex))))
		fail_msg("%s: report lacks the address %p: [%s]", b->what,
			 b->ptr, r.err);
	if (b->want_name) {
		const char *n1 = kmem_cache_name(b->cache);
		const char *n2 = b->other ? kmem_cache_name(b->other) : NULL;
		if (!strstr(r.err, n1) && !(n2 && strstr(r.err, n2)))
			fail_msg("%s: report does not name the cache \"%s\": [%s]",
				 b->what, n1, r.err);
	}
}

#define KW_INVALID { "invalid pointer", NULL, NULL }
#define KW_WRONG { "wrong cache", "invalid pointer", "wrong slab cache" }
#define KW_DOUBLE { "double free", "invalid pointer", NULL }

static void test_bad_free_foreign(void **state)
{
	struct kmem_cache *s = make_cache("victim-cache", 64, 0);
	void *m = malloc(64);
	long on_stack[8];
	struct bad_free b1 = { .what = "kmem_cache_free(malloc'd)", .cache = s,
			       .ptr = m, .kw = KW_INVALID, .want_name = true };
	expect_abort(&b1);
	struct bad_free b2 = { .what = "kmem_cache_free(stack)", .cache = s,
			       .ptr = &on_stack[2], .kw = KW_INVALID, .want_name = true };
	expect_abort(&b2);
	struct bad_free b3 = { .what = "kfree(malloc'd)", .ptr = m, .kw = KW_INVALID };
	expect_abort(&b3);
	struct bad_free b4 = { .what = "kmem_cache_free_bulk(malloc'd)", .cache = s,
			       .ptr = m, .bulk = true, .kw = KW_INVALID, .want_name = true };
	expect_abort(&b4);
	free(m);
	destroy_quietly(s);
}

static void test_bad_free_interior(void **state)
{
	struct kmem_cache *s = make_cache("interior-cache", 64, 0);
	unsigned char *o = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(o);
	struct bad_free b1 = { .what = "kmem_cache_free(obj + 1)", .cache = s,
			       .ptr = o + 1, .kw = KW_INVALID, .want_name = true };
	expect_abort(&b1);
	struct bad_free b2 = { .what = "kmem_cache_free(obj + 8)", .cache = s,
			       .ptr = o + 8, .kw = KW_INVALID, .want_name = true };
	expect_abort(&b2);
	/* A size that is not a power of two: the division path. */
	struct kmem_cache *s96 = make_cache("interior-96", 96, 0);
	unsigned char *o96 = kmem_cache_alloc(s96, GFP_KERNEL);
	assert_non_null(o96);
	struct bad_free b2b = { .what = "kmem_cache_free(obj96 + 32)", .cache = s96,
				.ptr = o96 + 32, .kw = KW_INVALID, .want_name = true };
	expect_abort(&b2b);
	kmem_cache_free(s96, o96);
	destroy_quietly(s96);

	unsigned char *k = kmalloc(100, GFP_KERNEL);
	assert_non_null(k);
	struct bad_free b3 = { .what = "kfree(kmalloc(100) + 8)", .ptr = k + 8,
			       .kw = KW_INVALID };
	expect_abort(&b3);
	unsigned char *big = kmalloc(100000, GFP_KERNEL);
	assert_non_null(big);
	struct bad_free b4 = { .what = "kfree(kmalloc(100000) + 4096)",
			       .ptr = big + 4096, .kw = KW_INVALID };
	expect_abort(&b4);
	struct bad_free b5 = { .what = "kfree(kmalloc(100000) + 16)",
			       .ptr = big + 16, .kw = KW_INVALID };
	expect_abort(&b5);

	/* The parent still frees them normally. */
	kfree(big);
	kfree(k);
	kmem_cache_free(s, o);
	destroy_quietly(s);
}

/*
 * A double free on the classic path names the function that was called and
 * its caller (it used to say kmem_cache_free() and "caller (nil)" for a
 * kfree() too).
 */
static void *dfree_obj;
static struct kmem_cache *dfree_cache;

static void child_double_kfree(void *arg)
{
	(void)arg;
	stay_on_this_cpu();
	kfree(dfree_obj);
	kfree(dfree_obj);
	_exit(7);
}

static void child_double_cache_free(void *arg)
{
	(void)arg;
	stay_on_this_cpu();
	kmem_cache_free(dfree_cache, dfree_obj);
	kmem_cache_free(dfree_cache, dfree_obj);
	_exit(7);
}

static void test_double_free_names_caller(void **state)
{
	(void)state;
	struct child_result r;
	char how[96];
	dfree_obj = kmalloc(64, GFP_KERNEL);
	assert_non_null(dfree_obj);
	run_in_child(child_double_kfree, NULL, &r);
	if (!child_aborted(&r) || !strstr(r.err, "sheaf: kfree(): double free") ||
	    strstr(r.err, "caller (nil)"))
		fail_msg("double kfree: child %s, stderr [%s]",
			 child_how(&r, how, sizeof(how)), r.err);
	kfree(dfree_obj);
	dfree_cache = make_cache("dfree-classic", 64, 0);
	if (sheaf_cache_capacity(dfree_cache)) { /* SHEAF_DEFAULT_CAPACITY */
		destroy_quietly(dfree_cache);
		skip();
	}
	dfree_obj = kmem_cache_alloc(dfree_cache, GFP_KERNEL);
	run_in_child(child_double_cache_free, NULL, &r);
	if (!child_aborted(&r) ||
	    !strstr(r.err, "sheaf: kmem_cache_free(): double free") ||
	    strstr(r.err, "caller (nil)"))
		fail_msg("double kmem_cache_free: child %s, stderr [%s]",
			 child_how(&r, how, sizeof(how)), r.err);
	kmem_cache_free(dfree_cache, dfree_obj);
	destroy_quietly(dfree_cache);
}

static void test_bad_free_wrong_cache(void **state)
{
	struct kmem_cache *a = make_cache("cache-alpha", 64, 0);
	struct kmem_cache *b = make_cache("cache-beta", 64, 0);
	void *ob = kmem_cache_alloc(b, GFP_KERNEL);
	assert_non_null(ob);
	struct bad_free w1 = { .what = "kmem_cache_free(alpha, beta's object)",
			       .cache = a, .other = b, .ptr = ob, .kw = KW_WRONG,
			       .want_name = true };
	expect_abort(&w1);
	void *k = kmalloc(64, GFP_KERNEL);
	assert_non_null(k);
	struct bad_free w2 = { .what = "kmem_cache_free(alpha, kmalloc'd object)",
			       .cache = a, .ptr = k, .kw = KW_WRONG, .want_name = true };
	expect_abort(&w2);
	kfree(k);
	kmem_cache_free(b, ob);
	destroy_quietly(a);
	destroy_quietly(b);
}

static void test_bad_free_double(void **state)
{
	struct kmem_cache *s = make_cache("double-cache", 64, 0);
	void *o = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(o);
	struct bad_free d1 = { .what = "kmem_cache_free twice", .cache = s,
			       .ptr = o, .first = o, .kw = KW_DOUBLE, .want_name = true };
	expect_abort(&d1);
	void *k = kmalloc(128, GFP_KERNEL);
	assert_non_null(k);
	struct bad_free d2 = { .what = "kfree twice", .ptr = k, .first = k,
			       .kw = KW_DOUBLE };
	expect_abort(&d2);
	kfree(k);
	kmem_cache_free(s, o);
	destroy_quietly(s);
}

/* ===================================================== destroyed caches */

/*
 * A pointer to a destroyed cache, used again: every entry point but the
 * inline fast paths reports it and aborts (a second kmem_cache_destroy()
 * used to SIGSEGV on the unmapped struct, and an allocation to take memory
 * from whichever cache reused it).  Each use in a child of its own.
 */
enum stale_use { STALE_DESTROY, STALE_ALLOC, STALE_ALLOC_NODE, STALE_FREE,
		 STALE_BULK, STALE_SHRINK, STALE_PREFILL, STALE_NR };
static const char *const stale_fn[STALE_NR] = {
	"kmem_cache_destroy", "kmem_cache_alloc", "kmem_cache_alloc", "kmem_cache_free",
	"kmem_cache_alloc_bulk", "kmem_cache_shrink", "kmem_cache_prefill_sheaf",
};
struct stale_case {
	struct kmem_cache *dead, *live;
	void *live_obj;
	enum stale_use use;
};

static void stale_in_child(void *arg)
{
	struct stale_case *c = arg;
	void *p[4];
	switch (c->use) {
	case STALE_DESTROY:
		kmem_cache_destroy(c->dead);
		break;
	case STALE_ALLOC:
		p[0] = kmem_cache_alloc(c->dead, GFP_KERNEL);
		break;
	case STALE_ALLOC_NODE:
		p[0] = kmem_cache_alloc_node(c->dead, GFP_KERNEL, 0);
		break;
	case STALE_FREE:
		kmem_cache_free(c->dead, c->live_obj);
		break;
	case STALE_BULK:
		kmem_cache_alloc_bulk(c->dead, GFP_KERNEL, 4, p);
		break;
	case STALE_SHRINK:
		kmem_cache_shrink(c->dead);
		break;
	case STALE_PREFILL:
		kmem_cache_prefill_sheaf(c->dead, GFP_KERNEL, 2);
		break;
	default:
		break;
	}
	(void)p;
	_exit(0); /* not reported: the test fails */
}

static void stale_cases(unsigned int capacity)
{
	struct kmem_cache_args args = { .sheaf_capacity = capacity };
	struct kmem_cache *dead = kmem_cache_create("stale-cache", 64, &args, 0);
	assert_non_null(dead);
	void *o = kmem_cache_alloc(dead, GFP_KERNEL);
	assert_non_null(o);
	kmem_cache_free(dead, o);
	destroy_quietly(dead);
	/* a cache created after it, of the same shape: before, it could
	 * reuse the dead one's memory */
	struct kmem_cache *live = kmem_cache_create("live-cache", 64, &args, 0);
	assert_non_null(live);
	void *lo = kmem_cache_alloc(live, GFP_KERNEL);
	assert_non_null(lo);
	for (int u = 0; u < STALE_NR; u++) {
		struct stale_case c = { dead, live, lo, (enum stale_use)u };
		struct child_result r;
		char how[64], want[160];
		run_in_child(stale_in_child, &c, &r);
		snprintf(want, sizeof(want), "sheaf: %s(): cache %p (\"stale-cache\") was destroyed",
			 stale_fn[u], (void *)dead);
		if (!child_aborted(&r) || !strstr(r.err, want))
			fail_msg("stale cache, use %d (%s), capacity %u: child %s, stderr [%s]",
				 u, stale_fn[u], capacity, child_how(&r, how, sizeof(how)), r.err);
	}
	/* the live cache is untouched */
	kmem_cache_free(live, lo);
	assert_int_equal(sheaf_cache_objects_inuse(live), 0);
	destroy_quietly(live);
}

static void test_destroyed_cache(void **state)
{
	(void)state;
	stale_cases(0);  /* classic */
	stale_cases(16); /* sheaves */
}

/* ============================================================ statistics */

static void test_stats_names(void **state)
{
	assert_string_equal(sheaf_stat_name(SHEAF_STAT_ALLOC_FASTPATH), "alloc_fastpath");
	assert_string_equal(sheaf_stat_name(SHEAF_STAT_ALLOC_SLOWPATH), "alloc_slowpath");
	assert_string_equal(sheaf_stat_name(SHEAF_STAT_FREE_FASTPATH), "free_fastpath");
	assert_string_equal(sheaf_stat_name(SHEAF_STAT_FREE_SLOWPATH), "free_slowpath");
	assert_string_equal(sheaf_stat_name(SHEAF_STAT_BARN_GET), "barn_get");
	assert_string_equal(sheaf_stat_name(SHEAF_STAT_FREE_RCU_SHEAF_FAIL),
			    "free_rcu_sheaf_fail");
	assert_null(sheaf_stat_name(SHEAF_STAT_NR));
	assert_null(sheaf_stat_name((enum sheaf_stat_item)-1));
	for (int i = 0; i < SHEAF_STAT_NR; i++) {
		const char *n = sheaf_stat_name((enum sheaf_stat_item)i);
		assert_non_null(n);
		assert_true(strlen(n) > 0);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(n, sheaf_stat_name((enum sheaf_stat_item)j));
	}
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

static void check_print(struct kmem_cache *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(sheaf_stats_print(s, f), 0);
	fclose(f);
	assert_non_null(buf);
	assert_int_equal(count_char(buf, '\n'), SHEAF_STAT_NR);

	unsigned int slots = sheaf_nr_slots();
	for (int i = 0; i < SHEAF_STAT_NR; i++) {
		const char *name = sheaf_stat_name((enum sheaf_stat_item)i);
		size_t nl = strlen(name);
		const char *line = NULL;
		for (const char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
			if (!strncmp(l, name, nl) && l[nl] == ' ') {
				line = l;
				break;
			}
		if (!line)
			fail_msg("no line for \"%s\" in:\n%s", name, buf);
		char *end;
		unsigned long long total = strtoull(line + nl + 1, &end, 10);
		uint64_t want = sheaf_stats_get(s, (enum sheaf_stat_item)i);
		if (total != want)
			fail_msg("%s: printed %llu, sheaf_stats_get %llu", name,
				 total, (unsigned long long)want);
		/* " C<slot>=<value>" items sum to the total and are not zero. */
		unsigned long long sum = 0;
		uint64_t slot_sum = 0;
		for (unsigned int c = 0; c < slots; c++)
			slot_sum += sheaf_stats_get_slot(s, (enum sheaf_stat_item)i, c);
		assert_int_equal(slot_sum, want);
		while (*end == ' ') {
			unsigned int slot;
			unsigned long long v;
			int used = 0;
			if (sscanf(end, " C%u=%llu%n", &slot, &v, &used) != 2)
				fail_msg("%s: bad per-slot item in line: %.80s", name, line);
			assert_true(slot < slots);
			assert_true(v > 0);
			assert_int_equal(v, sheaf_stats_get_slot(s, (enum sheaf_stat_item)i, slot));
			sum += v;
			end += used;
		}
		if (*end != '\n')
			fail_msg("%s: trailing garbage in line: %.80s", name, line);
		assert_int_equal(sum, total);
	}
	free(buf);
}

/*
 * Counting is switched on for this test only, so that the other tests run
 * with the fast paths that are used when statistics are off.
 */
static void test_stats_counts(void **state)
{
	sheaf_stats_enable(true);
	assert_true(sheaf_stats_enabled());
	struct kmem_cache *s = make_cache("stats", 64, 0);
	enum { N = 100 };
	void *p[N + 2];
	for (int i = 0; i < N; i++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	assert_non_null(p[N] = kmem_cache_zalloc(s, GFP_KERNEL));
	assert_non_null(p[N + 1] = kmem_cache_alloc_node(s, GFP_KERNEL, NUMA_NO_NODE));
	for (int i = 0; i < 60; i++)
		kmem_cache_free(s, p[i]);
	if (stat_allocs(s) != N + 2 || stat_frees(s) != 60)
		fail_msg("alloc_fastpath+alloc_slowpath %llu (want %d), "
			 "free_fastpath+free_slowpath %llu (want 60)",
			 (unsigned long long)stat_allocs(s), N + 2,
			 (unsigned long long)stat_frees(s));
	assert_true(sheaf_stats_get(s, SHEAF_STAT_ALLOC_SLAB) >= 1);
	check_print(s);

	for (int i = 60; i < N + 2; i++)
		kmem_cache_free(s, p[i]);
	assert_int_equal(stat_frees(s), N + 2);
	assert_int_equal(stat_allocs(s), N + 2);

	/* Out of range and NULL. */
	assert_int_equal(sheaf_stats_get(NULL, SHEAF_STAT_ALLOC_FASTPATH), 0);
	assert_int_equal(sheaf_stats_get(s, SHEAF_STAT_NR), 0);
	assert_int_equal(sheaf_stats_get_slot(s, SHEAF_STAT_ALLOC_FASTPATH,
					      sheaf_nr_slots()), 0);
	assert_int_equal(sheaf_stats_get_slot(NULL, SHEAF_STAT_ALLOC_FASTPATH, 0), 0);
	assert_int_equal(sheaf_stats_print(NULL, stdout), -EINVAL);
	assert_int_equal(sheaf_stats_print(s, NULL), -EINVAL);

	sheaf_stats_reset(s);
	for (int i = 0; i < SHEAF_STAT_NR; i++)
		assert_int_equal(sheaf_stats_get(s, (enum sheaf_stat_item)i), 0);
	check_print(s);

	void *x = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, x);
	assert_int_equal(stat_allocs(s), 1);
	assert_int_equal(stat_frees(s), 1);

	/* Off: nothing more is counted. */
	sheaf_stats_enable(false);
	assert_false(sheaf_stats_enabled());
	x = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, x);
	assert_int_equal(stat_allocs(s), 1);
	assert_int_equal(stat_frees(s), 1);
	destroy_quietly(s);
}

/* ========================================================= introspection */

static void test_introspection(void **state)
{
	long conf = sysconf(_SC_NPROCESSORS_CONF);
	assert_int_equal(sheaf_nr_slots(), conf);
	unsigned int nodes = sheaf_nr_nodes();
	assert_true(nodes >= 1);
	const char *fake = getenv("SHEAF_FAKE_NUMA");
	if (fake && atoi(fake) > 0)
		assert_int_equal(nodes, atoi(fake));
	int here = sheaf_numa_node_id();
	assert_true(here >= 0 && here < (int)nodes);

	const char *mode = sheaf_percpu_mode();
	assert_non_null(mode);
	assert_true(!strcmp(mode, "rseq") || !strcmp(mode, "fallback"));
	const char *want = getenv("SHEAF_PERCPU");
	if (want && !strcmp(want, "fallback"))
		assert_string_equal(mode, "fallback");
	const char *slots = sheaf_percpu_slots();
	if (!strcmp(mode, "fallback")) {
		assert_string_equal(slots, "getcpu");
	} else {
		assert_true(!strcmp(slots, "mm_cid") || !strcmp(slots, "cpu_id"));
		/* SHEAF_PERCPU=cpu_id: the sections' cpu_id variant runs
		 * (test_api_cpu_id, stress_cpu_id). */
		if (want && !strcmp(want, "cpu_id"))
			assert_string_equal(slots, "cpu_id");
	}

	void *m = malloc(100);
	long local = 0;
	assert_int_equal(sheaf_obj_node(m), -1);
	assert_int_equal(sheaf_obj_node(&local), -1);
	assert_int_equal(sheaf_obj_node(NULL), -1);
	free(m);
}

static void test_page_info(void **state)
{
	struct sheaf_page_info a, b, c;
	void *warm = kmalloc(64, GFP_KERNEL); /* make sure an arena exists */
	assert_non_null(warm);
	sheaf_page_info(&a);
	assert_true(a.arenas >= 1);
	assert_true(a.total_pages >= 1);
	assert_true(a.used_pages + a.free_pages <= a.total_pages);
	assert_true(a.dirty_pages <= a.free_pages);

	const size_t n = 256 * 1024;
	void *p = kmalloc(n, GFP_KERNEL);
	assert_non_null(p);
	memset(p, 1, n);
	sheaf_page_info(&b);
	assert_true(b.used_pages + b.free_pages <= b.total_pages);
	assert_true(b.dirty_pages <= b.free_pages);
	assert_true(b.arenas >= a.arenas);
	if (b.used_pages * SHEAF_PAGE_SIZE + b.huge_bytes <
	    a.used_pages * SHEAF_PAGE_SIZE + a.huge_bytes + n)
		fail_msg("kmalloc(%zu) not visible in page info: used %zu -> %zu pages, huge %zu -> %zu",
			 n, a.used_pages, b.used_pages, a.huge_bytes, b.huge_bytes);
	kfree(p);
	sheaf_page_info(&c);
	assert_true(c.used_pages * SHEAF_PAGE_SIZE + c.huge_bytes + n <=
		    b.used_pages * SHEAF_PAGE_SIZE + b.huge_bytes);
	kfree(warm);
}

int main(void)
{
#define EINVAL_TEST(i)                                                         \
	{ einval_cases[i].name ? einval_cases[i].name : "einval-name-null",    \
	  test_create_einval, NULL, NULL, (void *)&einval_cases[i] }

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_args_form),
		cmocka_unit_test(test_create_null_form),
		cmocka_unit_test(test_create_legacy_form),
		cmocka_unit_test(test_create_kmem_cache_macro),
		cmocka_unit_test(test_create_same_name_twice),
		EINVAL_TEST(0), EINVAL_TEST(1), EINVAL_TEST(2), EINVAL_TEST(3),
		EINVAL_TEST(4), EINVAL_TEST(5), EINVAL_TEST(6), EINVAL_TEST(7),
		EINVAL_TEST(8), EINVAL_TEST(9), EINVAL_TEST(10), EINVAL_TEST(11),
		EINVAL_TEST(12), EINVAL_TEST(13), EINVAL_TEST(14), EINVAL_TEST(15),
		EINVAL_TEST(16), EINVAL_TEST(17), EINVAL_TEST(18), EINVAL_TEST(19),
		EINVAL_TEST(20), EINVAL_TEST(21),
		cmocka_unit_test(test_create_panic),
		cmocka_unit_test(test_create_boundaries),
		cmocka_unit_test(test_create_each_valid_flag),
		cmocka_unit_test(test_alloc_free_basic),
		cmocka_unit_test(test_alloc_capacity_cache),
		cmocka_unit_test(test_alloc_einval),
		cmocka_unit_test(test_zalloc),
		cmocka_unit_test(test_alloc_node),
		cmocka_unit_test(test_kfree_cache_object),
		cmocka_unit_test(test_bulk_basic),
		cmocka_unit_test(test_shrink),
		cmocka_unit_test(test_destroy_null_and_empty),
		cmocka_unit_test(test_destroy_live),
		cmocka_unit_test(test_size_name),
		cmocka_unit_test_teardown(test_oom_injection, teardown_injection),
		cmocka_unit_test_teardown(test_oom_nofail, teardown_injection),
		cmocka_unit_test(test_kmalloc_nofail_nowait),
		cmocka_unit_test(test_kmalloc_every_class),
		cmocka_unit_test(test_kmalloc_large),
		cmocka_unit_test(test_kmalloc_roundup_large),
		cmocka_unit_test(test_kmalloc_zero_and_null),
		cmocka_unit_test(test_kmalloc_too_big),
		cmocka_unit_test(test_kzalloc_kcalloc),
		cmocka_unit_test_teardown(test_krealloc, teardown_injection),
		cmocka_unit_test(test_kmalloc_objects_disjoint),
		cmocka_unit_test(test_bad_free_foreign),
		cmocka_unit_test(test_bad_free_interior),
		cmocka_unit_test(test_bad_free_wrong_cache),
		cmocka_unit_test(test_double_free_names_caller),
		cmocka_unit_test(test_bad_free_double),
		cmocka_unit_test(test_destroyed_cache),
		cmocka_unit_test(test_stats_names),
		cmocka_unit_test_teardown(test_stats_counts, teardown_stats),
		cmocka_unit_test(test_introspection),
		cmocka_unit_test(test_page_info),
	};
	_Static_assert(sizeof(einval_cases) / sizeof(einval_cases[0]) == 22,
		       "update the EINVAL_TEST list");
	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
