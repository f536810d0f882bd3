/* SPDX-License-Identifier: MIT */
/*
 * test_kernel_api.c - fidelity to the kernel 7.2 API (<linux/gfp_types.h>,
 * <linux/slab.h>):
 *  - every gfp name has the kernel's value (a table), the composites, the
 *    newly accepted bits allocate through every entry point, a bit the
 *    kernel does not define still fails with EINVAL;
 *  - gfpflags_allow_blocking() / gfpflags_allow_spinning();
 *  - KMALLOC_MAX_SIZE (4 MiB) and the kv* family above it, kvrealloc(),
 *    kvfree(), kfree_sensitive(), kvfree_sensitive(), krealloc_array(),
 *    the _node forms, kfree_bulk(), kmem_cache_alloc_lru(),
 *    kmem_cache_create_usercopy() / KMEM_CACHE_USERCOPY, kvfree_call_rcu();
 *  - the cache flags added (SLAB_NO_SHEAVES, SLAB_NO_USER_FLAGS and the
 *    accepted ones).
 * Run again as test_kernel_api_env with SHEAF_DEFAULT_CAPACITY=auto and
 * SLUB_DEBUG=FZ,kapi-dbg*: SLAB_NO_SHEAVES and SLAB_NO_USER_FLAGS against
 * the environment.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>

#include "test_util.h"
#include "test_cmocka_util.h"

/* ------------------------------------------------------------- gfp */

struct named { const char *name; unsigned long have, want; };
#define V(n, v) { #n, (unsigned long)(n), (unsigned long)(v) }

/* The kernel's values (6.10 and later, 7.x; KASAN hardware tags, lockdep
 * and slab object extensions off). */
static const struct named gfp_table[] = {
	V(__GFP_DMA, 0x01), V(__GFP_HIGHMEM, 0x02), V(__GFP_DMA32, 0x04),
	V(__GFP_MOVABLE, 0x08), V(__GFP_RECLAIMABLE, 0x10), V(__GFP_HIGH, 0x20),
	V(__GFP_IO, 0x40), V(__GFP_FS, 0x80), V(__GFP_ZERO, 0x100),
	V(__GFP_DIRECT_RECLAIM, 0x400), V(__GFP_KSWAPD_RECLAIM, 0x800),
	V(__GFP_WRITE, 0x1000), V(__GFP_NOWARN, 0x2000),
	V(__GFP_RETRY_MAYFAIL, 0x4000), V(__GFP_NOFAIL, 0x8000),
	V(__GFP_NORETRY, 0x10000), V(__GFP_MEMALLOC, 0x20000),
	V(__GFP_COMP, 0x40000), V(__GFP_NOMEMALLOC, 0x80000),
	V(__GFP_HARDWALL, 0x100000), V(__GFP_THISNODE, 0x200000),
	V(__GFP_ACCOUNT, 0x400000), V(__GFP_ZEROTAGS, 0x800000),
	V(__GFP_SKIP_ZERO, 0), V(__GFP_SKIP_KASAN, 0), V(__GFP_NOLOCKDEP, 0),
	V(__GFP_NO_OBJ_EXT, 0),
	V(__GFP_RECLAIM, 0xc00),
	/* composites */
	V(GFP_ATOMIC, 0x20 | 0x800),
	V(GFP_KERNEL, 0x400 | 0x800 | 0x40 | 0x80),
	V(GFP_KERNEL_ACCOUNT, 0x400 | 0x800 | 0x40 | 0x80 | 0x400000),
	V(GFP_NOWAIT, 0x800 | 0x2000),
	V(GFP_NOIO, 0x400 | 0x800),
	V(GFP_NOFS, 0x400 | 0x800 | 0x40),
	V(GFP_USER, 0x400 | 0x800 | 0x40 | 0x80 | 0x100000),
	V(GFP_DMA, 0x01),
	V(GFP_DMA32, 0x04),
	V(GFP_HIGHUSER, 0x400 | 0x800 | 0x40 | 0x80 | 0x100000 | 0x02),
	V(GFP_HIGHUSER_MOVABLE, 0x400 | 0x800 | 0x40 | 0x80 | 0x100000 | 0x02 | 0x08),
	V(GFP_TRANSHUGE_LIGHT, (0x40 | 0x80 | 0x100000 | 0x02 | 0x08 | 0x40000 |
				0x80000 | 0x2000)),
	V(GFP_TRANSHUGE, (0x40 | 0x80 | 0x100000 | 0x02 | 0x08 | 0x40000 |
			  0x80000 | 0x2000 | 0x400)),
	V(SHEAF_GFP_VALID_MASK, 0xfffdff),
};

static void test_gfp_values(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof(gfp_table) / sizeof(gfp_table[0]); i++)
		if (gfp_table[i].have != gfp_table[i].want) {
			print_error("%s = %#lx, the kernel's is %#lx\n", gfp_table[i].name,
				    gfp_table[i].have, gfp_table[i].want);
			bad++;
		}
	assert_int_equal(bad, 0);
	assert_int_equal(sizeof(gfp_t), sizeof(unsigned int));
}

static void test_gfp_allow(void **state)
{
	(void)state;
	assert_true(gfpflags_allow_blocking(GFP_KERNEL));
	assert_false(gfpflags_allow_blocking(GFP_NOWAIT));
	assert_false(gfpflags_allow_blocking(GFP_ATOMIC));
	assert_true(gfpflags_allow_spinning(GFP_KERNEL));
	assert_true(gfpflags_allow_spinning(GFP_NOWAIT));
	assert_true(gfpflags_allow_spinning(GFP_ATOMIC));
	assert_true(gfpflags_allow_spinning(__GFP_DIRECT_RECLAIM));
	assert_true(gfpflags_allow_spinning(__GFP_KSWAPD_RECLAIM));
	assert_false(gfpflags_allow_spinning(0));
	assert_false(gfpflags_allow_spinning(__GFP_ZERO | __GFP_NOWARN));
	assert_false(gfpflags_allow_spinning(GFP_TRANSHUGE_LIGHT));
}

/* The bits libsheaf refused before (wrong values or unknown). */
static const gfp_t newly_accepted[] = {
	__GFP_DMA, __GFP_HIGHMEM, __GFP_DMA32, __GFP_MOVABLE, __GFP_RECLAIMABLE,
	__GFP_WRITE, __GFP_RETRY_MAYFAIL, __GFP_MEMALLOC, __GFP_COMP,
	__GFP_NOMEMALLOC, __GFP_HARDWALL, __GFP_THISNODE, __GFP_ACCOUNT,
	__GFP_ZEROTAGS, GFP_USER, GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE,
	GFP_TRANSHUGE, GFP_DMA, GFP_DMA32, GFP_KERNEL_ACCOUNT,
};

static void test_gfp_new_bits_allocate(void **state)
{
	(void)state;
	struct kmem_cache *sh = make_cache("kapi-gfp-sheaves", 64, 16);
	struct kmem_cache *cl = make_cache("kapi-gfp-classic", 64, 0);
	for (size_t i = 0; i < sizeof(newly_accepted) / sizeof(newly_accepted[0]); i++) {
		gfp_t g = GFP_KERNEL | newly_accepted[i];
		void *p[9];
		errno = 0;
		p[0] = kmem_cache_alloc(sh, g);          /* the inline fast path */
		p[1] = (kmem_cache_alloc)(sh, g);        /* the exported function */
		p[2] = kmem_cache_alloc(cl, g);
		p[3] = kmem_cache_alloc_node(cl, g, 0);
		p[4] = kmem_cache_zalloc(sh, g);
		p[5] = kmalloc(100, g);
		p[6] = kmalloc(70000, g);
		p[7] = kvmalloc(6ul << 20, g);
		p[8] = kmalloc_node(100, g, 0);
		for (int k = 0; k < 9; k++)
			if (!p[k])
				fail_msg("gfp %#x: allocation %d failed (errno %d)", g, k,
					 errno);
		void *q[4];
		assert_int_equal(kmem_cache_alloc_bulk(cl, g, 4, q), 4);
		kmem_cache_free_bulk(cl, 4, q);
		struct slab_sheaf *sf = kmem_cache_prefill_sheaf(sh, g, 4);
		assert_non_null(sf);
		void *o = kmem_cache_alloc_from_sheaf(sh, g, sf);
		assert_non_null(o);
		kmem_cache_free(sh, o);
		kmem_cache_return_sheaf(sh, g, sf);
		kmem_cache_free(sh, p[0]);
		kmem_cache_free(sh, p[1]);
		kmem_cache_free(cl, p[2]);
		kmem_cache_free(cl, p[3]);
		kmem_cache_free(sh, p[4]);
		kfree(p[5]);
		kfree(p[6]);
		kvfree(p[7]);
		kfree(p[8]);
	}
	kmem_cache_destroy(sh);
	kmem_cache_destroy(cl);
}

/* A bit the kernel does not define fails with EINVAL everywhere. */
static void test_gfp_undefined_bits(void **state)
{
	(void)state;
	static const gfp_t undefined[] = { 0x200u, 0x1000000u, 0x2000000u,
					   0x40000000u, 0x80000000u };
	struct kmem_cache *sh = make_cache("kapi-gfp-bad", 64, 16);
	for (size_t i = 0; i < sizeof(undefined) / sizeof(undefined[0]); i++) {
		gfp_t g = GFP_KERNEL | undefined[i];
		assert_int_equal(undefined[i] & SHEAF_GFP_VALID_MASK, 0);
		void *r[8];
		int e[8];
		errno = 0; r[0] = kmem_cache_alloc(sh, g); e[0] = errno;
		errno = 0; r[1] = (kmem_cache_alloc)(sh, g); e[1] = errno;
		errno = 0; r[2] = kmalloc(64, g); e[2] = errno;
		errno = 0; r[3] = kvmalloc(64, g); e[3] = errno;
		errno = 0; r[4] = kvmalloc(8ul << 20, g); e[4] = errno;
		errno = 0; r[5] = kmem_cache_prefill_sheaf(sh, g, 4); e[5] = errno;
		errno = 0; r[6] = kzalloc_node(64, g, 0); e[6] = errno;
		errno = 0; r[7] = kmem_cache_alloc_lru(sh, NULL, g); e[7] = errno;
		for (int k = 0; k < 8; k++)
			if (r[k] || e[k] != EINVAL)
				fail_msg("gfp %#x, call %d: %p errno %d, expected NULL/EINVAL",
					 g, k, r[k], e[k]);
	}
	kmem_cache_destroy(sh);
}

/* ------------------------------------------------------ kmalloc / kv */

static void test_kmalloc_max_size(void **state)
{
	(void)state;
	assert_int_equal(KMALLOC_MAX_SIZE, 4ul << 20);
	void *a = kmalloc(KMALLOC_MAX_SIZE, GFP_KERNEL);
	assert_non_null(a);
	assert_int_equal(ksize(a), KMALLOC_MAX_SIZE);
	kfree(a);
	assert_null(kmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL));
	assert_null(kzalloc_node(KMALLOC_MAX_SIZE + 1, GFP_KERNEL, 0));
	assert_null(kmalloc_array(2, KMALLOC_MAX_SIZE / 2 + 1, GFP_KERNEL));
	void *b = kvmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL);
	assert_non_null(b);
	assert_true(ksize(b) >= KMALLOC_MAX_SIZE + 1);
	kvfree(b);
}

static void test_kvmalloc_sizes(void **state)
{
	(void)state;
	struct sheaf_page_info a, b;
	/* A slab object, a page run, a mapping of its own. */
	unsigned char *s = kvmalloc(100, GFP_KERNEL);
	unsigned char *r = kvmalloc(100000, GFP_KERNEL);
	assert_non_null(s);
	assert_non_null(r);
	assert_non_null(sheaf_obj_cache(s));
	assert_null(sheaf_obj_cache(r));
	assert_int_equal(ksize(r), 128ul << 10);
	sheaf_page_info(&a);
	const size_t big = 100ul << 20;
	unsigned char *h = kvmalloc(big, GFP_KERNEL);
	assert_non_null(h);
	sheaf_page_info(&b);
	assert_true(b.huge_bytes >= a.huge_bytes + big);
	assert_true(ksize(h) >= big);
	h[0] = h[big - 1] = 7;
	memset(s, 1, 100);
	memset(r, 2, 100000);
	kvfree(s);
	kvfree(r);
	kvfree(h);
	sheaf_page_info(&b);
	assert_int_equal(b.huge_bytes, a.huge_bytes);

	/* Zeroed forms, on dirtied memory. */
	const size_t zs[] = { 100, 100000, 6ul << 20 };
	for (size_t i = 0; i < 3; i++) {
		unsigned char *d = kvmalloc(zs[i], GFP_KERNEL);
		assert_non_null(d);
		memset(d, 0xa5, zs[i]);
		kvfree(d);
		unsigned char *z = kvzalloc(zs[i], GFP_KERNEL);
		assert_non_null(z);
		assert_true(all_bytes(z, zs[i], 0));
		kvfree(z);
		z = kvcalloc(zs[i] / 4, 4, GFP_KERNEL);
		assert_non_null(z);
		assert_true(all_bytes(z, zs[i], 0));
		kvfree(z);
		z = kvzalloc_node(zs[i], GFP_KERNEL, 0);
		assert_non_null(z);
		assert_true(all_bytes(z, zs[i], 0));
		kvfree(z);
		z = kvcalloc_node(zs[i] / 4, 4, GFP_KERNEL, 0);
		assert_non_null(z);
		assert_true(all_bytes(z, zs[i], 0));
		kvfree(z);
	}
	void *n = kvmalloc_node(6ul << 20, GFP_KERNEL, NUMA_NO_NODE);
	assert_non_null(n);
	kvfree(n);
	n = kvmalloc_array(1000, 10000, GFP_KERNEL);
	assert_non_null(n);
	kvfree(n);
	n = kvmalloc_array_node(10, 10, GFP_KERNEL, 0);
	assert_non_null(n);
	kvfree(n);
}

static void test_kvmalloc_bad(void **state)
{
	(void)state;
	assert_ptr_equal(kvmalloc(0, GFP_KERNEL), ZERO_SIZE_PTR);
	assert_ptr_equal(kvzalloc(0, GFP_KERNEL), ZERO_SIZE_PTR);
	kvfree(ZERO_SIZE_PTR);
	kvfree(NULL);
	/* Overflow of the array forms, the kernel's INT_MAX limit. */
	assert_null(kvmalloc_array(SIZE_MAX / 2, 3, GFP_KERNEL));
	assert_null(kvcalloc((size_t)1 << 33, (size_t)1 << 33, GFP_KERNEL));
	assert_null(kvmalloc_array_node(SIZE_MAX, 2, GFP_KERNEL, 0));
	assert_null(kvcalloc_node(SIZE_MAX, 2, GFP_KERNEL, 0));
	assert_null(kvmalloc((size_t)INT_MAX + 1, GFP_KERNEL));
	assert_null(kvmalloc(SIZE_MAX, GFP_KERNEL));
	/* Node out of range. */
	int nodes = (int)sheaf_nr_nodes();
	errno = 0;
	assert_null(kvmalloc_node(64, GFP_KERNEL, nodes));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(kvzalloc_node(8ul << 20, GFP_KERNEL, -2));
	assert_int_equal(errno, EINVAL);
	/* A mapping needs a gfp that may block, or __GFP_NOFAIL. */
	assert_null(kvmalloc(8ul << 20, GFP_NOWAIT));
	assert_null(kvmalloc(8ul << 20, GFP_ATOMIC));
	void *p = kvmalloc(8ul << 20, GFP_NOWAIT | __GFP_NOFAIL);
	assert_non_null(p);
	kvfree(p);
}

/*
 * Above a page, a kvmalloc() whose page run fails gets a mapping of its own
 * (the kernel's vmalloc fallback); a page or less does not.
 */
static void test_kvmalloc_fallback(void **state)
{
	(void)state;
	struct sheaf_page_info a, b;
	sheaf_page_info(&a);
	sheaf_inject_page_failures(0, 1);
	unsigned char *p = kvmalloc(64ul << 10, GFP_KERNEL);
	sheaf_inject_page_failures(0, 0);
	assert_non_null(p);
	sheaf_page_info(&b);
	assert_true(b.huge_bytes >= a.huge_bytes + (64ul << 10));
	assert_true(ksize(p) >= 64ul << 10);
	memset(p, 3, 64ul << 10);
	kvfree(p);
	sheaf_page_info(&b);
	assert_int_equal(b.huge_bytes, a.huge_bytes);
	/* kmalloc() itself has no fallback. */
	sheaf_inject_page_failures(0, 1);
	assert_null(kmalloc(64ul << 10, GFP_KERNEL));
	sheaf_inject_page_failures(0, 0);
}

static void test_kvrealloc(void **state)
{
	(void)state;
	unsigned char *p = kvrealloc(NULL, 100, GFP_KERNEL);
	assert_non_null(p);
	fill_seq(p, 100, 1);
	/* Grow through a page run to a mapping, contents kept. */
	const size_t sizes[] = { 5000, 100000, 6ul << 20, 20ul << 20 };
	size_t have = 100;
	for (size_t i = 0; i < 4; i++) {
		unsigned char *q = kvrealloc(p, sizes[i], GFP_KERNEL);
		assert_non_null(q);
		assert_true(check_seq(q, have, 1));
		p = q;
		fill_seq(p, sizes[i], 1);
		have = sizes[i];
	}
	/* Shrinking keeps the block; __GFP_ZERO zeroes beyond the size. */
	unsigned char *q = kvrealloc(p, 1000, GFP_KERNEL | __GFP_ZERO);
	assert_ptr_equal(q, p);
	assert_true(check_seq(q, 1000, 1));
	assert_true(all_bytes(q + 1000, 4096, 0));
	/* Failure leaves p as it was. */
	assert_null(kvrealloc(p, (size_t)INT_MAX + 1, GFP_KERNEL));
	assert_null(kvrealloc(p, 64ul << 20, GFP_NOWAIT));
	assert_true(check_seq(p, 1000, 1));
	/* Growing with __GFP_ZERO: the new part is zero. */
	q = kvrealloc(p, 30ul << 20, GFP_KERNEL | __GFP_ZERO);
	assert_non_null(q);
	assert_true(check_seq(q, 1000, 1));
	assert_true(all_bytes(q + (20ul << 20), 10ul << 20, 0));
	/* Size 0 frees. */
	assert_ptr_equal(kvrealloc(q, 0, GFP_KERNEL), ZERO_SIZE_PTR);
	/* A kmalloc'd object grows into a mapping. */
	p = kmalloc(64, GFP_KERNEL);
	fill_seq(p, 64, 5);
	q = kvrealloc(p, 5ul << 20, GFP_KERNEL);
	assert_non_null(q);
	assert_true(check_seq(q, 64, 5));
	kvfree(q);
}

static void test_krealloc_array_node_forms(void **state)
{
	(void)state;
	unsigned char *p = krealloc_array(NULL, 10, 10, GFP_KERNEL);
	assert_non_null(p);
	fill_seq(p, 100, 3);
	assert_null(krealloc_array(p, SIZE_MAX / 2, 4, GFP_KERNEL));
	assert_true(check_seq(p, 100, 3));
	assert_null(krealloc_array(p, 2, KMALLOC_MAX_SIZE, GFP_KERNEL));
	unsigned char *q = krealloc_array(p, 300, 10, GFP_KERNEL);
	assert_non_null(q);
	assert_true(check_seq(q, 100, 3));
	assert_true(ksize(q) >= 3000);
	kfree(q);

	int nodes = (int)sheaf_nr_nodes();
	for (int node = NUMA_NO_NODE; node < nodes; node++) {
		unsigned char *z = kmalloc_node(200, GFP_KERNEL, node);
		assert_non_null(z);
		memset(z, 0xff, 200);
		kfree(z);
		z = kzalloc_node(200, GFP_KERNEL, node);
		assert_non_null(z);
		assert_true(all_bytes(z, 200, 0));
		kfree(z);
		z = kcalloc_node(20, 10, GFP_KERNEL, node);
		assert_non_null(z);
		assert_true(all_bytes(z, 200, 0));
		kfree(z);
		z = kmalloc_array_node(20, 10, GFP_KERNEL, node);
		assert_non_null(z);
		kfree(z);
	}
	assert_null(kcalloc_node(SIZE_MAX, 2, GFP_KERNEL, 0));
	assert_null(kmalloc_array_node((size_t)1 << 33, (size_t)1 << 33, GFP_KERNEL, 0));
	errno = 0;
	assert_null(kcalloc_node(2, 2, GFP_KERNEL, nodes));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(kmalloc_array_node(2, 2, GFP_KERNEL, -5));
	assert_int_equal(errno, EINVAL);
}

/* Bytes of p[0..n) that are not zero. */
static size_t nonzero(const unsigned char *p, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += p[i] != 0;
	return c;
}

/*
 * kfree_sensitive() zeroes the whole usable size, kvfree_sensitive() the
 * given length: seen through the object reused at once (a freed slab object
 * of a cache without sheaves goes back to its slab's freelist, whose
 * pointer may take a word of it).
 */
static void test_free_sensitive(void **state)
{
	(void)state;
	struct kmem_cache *s = make_cache("kapi-sensitive", 96, 0);
	unsigned char *p = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(p);
	memset(p, 0xaa, 96);
	kfree_sensitive(p);
	unsigned char *q = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(q);
	if (q == p)
		assert_true(nonzero(q, 96) <= sizeof(void *));
	memset(q, 0xaa, 96);
	kvfree_sensitive(q, 40);
	unsigned char *r = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(r);
	if (r == q) {
		assert_true(nonzero(r, 40) <= sizeof(void *));
		assert_true(nonzero(r + 40, 56) >= 56 - sizeof(void *));
	}
	kmem_cache_free(s, r);
	kmem_cache_destroy(s);
	/* Page runs and mappings, NULL and ZERO_SIZE_PTR. */
	void *big = kvmalloc(6ul << 20, GFP_KERNEL);
	assert_non_null(big);
	kvfree_sensitive(big, 6ul << 20);
	kfree_sensitive(kmalloc(100000, GFP_KERNEL));
	kfree_sensitive(NULL);
	kfree_sensitive(ZERO_SIZE_PTR);
	kvfree_sensitive(NULL, 100);
	kvfree_sensitive(ZERO_SIZE_PTR, 0);
}

static void child_sensitive_too_long(void *arg)
{
	(void)arg;
	void *p = kmalloc(64, GFP_KERNEL);
	kvfree_sensitive(p, 65);
	_exit(7);
}

static void child_kvfree_foreign(void *arg)
{
	static char not_ours[64];
	(void)arg;
	kvfree(not_ours + 8);
	_exit(7);
}

static void expect_report(void (*fn)(void *), const char *what, const char *name)
{
	struct child_result r;
	char how[96];
	run_in_child(fn, NULL, &r);
	if (!child_aborted(&r))
		fail_msg("%s: child %s, expected SIGABRT; stderr [%s]", what,
			 child_how(&r, how, sizeof(how)), r.err);
	char want[64];
	snprintf(want, sizeof(want), "sheaf: %s(): ", name);
	if (!strstr(r.err, want))
		fail_msg("%s: report lacks \"%s\": [%s]", what, want, r.err);
}

static void test_free_bad_input(void **state)
{
	(void)state;
	expect_report(child_sensitive_too_long, "kvfree_sensitive() past the block",
		      "kvfree_sensitive");
	expect_report(child_kvfree_foreign, "kvfree() of foreign memory", "kvfree");
}

static void test_kfree_bulk(void **state)
{
	(void)state;
	struct kmem_cache *s = make_cache("kapi-kfree-bulk", 48, 8);
	void *p[8];
	p[0] = kmalloc(10, GFP_KERNEL);
	p[1] = kmem_cache_alloc(s, GFP_KERNEL);
	p[2] = NULL;
	p[3] = kmalloc(50000, GFP_KERNEL);
	p[4] = kmem_cache_alloc(s, GFP_KERNEL);
	p[5] = kvmalloc(5ul << 20, GFP_KERNEL);
	p[6] = kmem_cache_alloc(s, GFP_KERNEL);
	p[7] = kmalloc(3000, GFP_KERNEL);
	for (int i = 0; i < 8; i++)
		assert_true(i == 2 || p[i] != NULL);
	kfree_bulk(8, p);
	kfree_bulk(0, NULL);
	assert_drained(s);
	kmem_cache_destroy(s);
}

struct list_lru { int unused; };

static void test_kmem_cache_alloc_lru(void **state)
{
	(void)state;
	struct list_lru lru = { 0 };
	struct kmem_cache *s = make_cache("kapi-lru", 72, 16);
	void *a = kmem_cache_alloc_lru(s, &lru, GFP_KERNEL);
	void *b = kmem_cache_alloc_lru(s, NULL, GFP_KERNEL | __GFP_ZERO);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_equal(sheaf_obj_cache(a), s);
	assert_true(all_bytes(b, 72, 0));
	kmem_cache_free(s, a);
	kmem_cache_free(s, b);
	errno = 0;
	assert_null(kmem_cache_alloc_lru(NULL, &lru, GFP_KERNEL));
	assert_int_equal(errno, EINVAL);
	kmem_cache_destroy(s);
}

/* ------------------------------------------------------ cache creation */

struct kapi_user {
	long header[3];
	char name[40];
	int tail;
};

static void test_create_usercopy(void **state)
{
	(void)state;
	struct kmem_cache *s = kmem_cache_create_usercopy("kapi-usercopy", 200, 8, 0,
							  16, 64, NULL);
	assert_non_null(s);
	void *o = kmem_cache_alloc(s, GFP_KERNEL);
	assert_non_null(o);
	kmem_cache_free(s, o);
	kmem_cache_destroy(s);

	struct kmem_cache *k = KMEM_CACHE_USERCOPY(kapi_user, SLAB_HWCACHE_ALIGN, name);
	assert_non_null(k);
	assert_string_equal(kmem_cache_name(k), "kapi_user");
	assert_int_equal(kmem_cache_size(k), sizeof(struct kapi_user));
	struct kapi_user *u = kmem_cache_alloc(k, GFP_KERNEL);
	assert_non_null(u);
	assert_int_equal((uintptr_t)u % _Alignof(struct kapi_user), 0);
	kmem_cache_free(k, u);
	kmem_cache_destroy(k);

	/* A region outside the object: NULL, EINVAL (the kernel warns and
	 * drops the region instead). */
	struct err_capture cap;
	capture_begin(&cap);
	errno = 0;
	struct kmem_cache *bad = kmem_cache_create_usercopy("kapi-usercopy-bad", 64,
							    0, 0, 32, 40, NULL);
	int e = errno;
	capture_end(&cap);
	assert_null(bad);
	assert_int_equal(e, EINVAL);
}

static bool env_default_capacity(void)
{
	const char *v = getenv("SHEAF_DEFAULT_CAPACITY");
	return v && *v && strcmp(v, "0") != 0;
}

static bool env_auto(void)
{
	const char *v = getenv("SHEAF_DEFAULT_CAPACITY");
	return v && !strcmp(v, "auto");
}

/* SLAB_NO_SHEAVES beats both the argument and SHEAF_DEFAULT_CAPACITY. */
static void test_no_sheaves(void **state)
{
	(void)state;
	struct kmem_cache_args args = { 0 };
	args.sheaf_capacity = 32;
	struct kmem_cache *with = kmem_cache_create("kapi-sheaves", 64, &args, 0);
	struct kmem_cache *without = kmem_cache_create("kapi-nosheaves", 64, &args,
						       SLAB_NO_SHEAVES);
	args.sheaf_capacity = 0;
	struct kmem_cache *dflt = kmem_cache_create("kapi-default", 64, &args, 0);
	struct kmem_cache *dflt_no = kmem_cache_create("kapi-default-no", 64, &args,
						       SLAB_NO_SHEAVES);
	assert_non_null(with);
	assert_non_null(without);
	assert_non_null(dflt);
	assert_non_null(dflt_no);
	/* auto (7.x): the explicit 32 is a minimum, and a 64-byte cache gets 60 */
	assert_int_equal(sheaf_cache_capacity(with), env_auto() ? 60 : 32);
	assert_int_equal(sheaf_cache_capacity(without), 0);
	assert_int_equal(sheaf_cache_capacity(dflt_no), 0);
	if (env_default_capacity())
		assert_true(sheaf_cache_capacity(dflt) > 0);
	else
		assert_int_equal(sheaf_cache_capacity(dflt), 0);
	/* It works, and its prefilled sheaves are oversize ones. */
	void *p[100];
	for (int i = 0; i < 100; i++) {
		p[i] = kmem_cache_alloc(without, GFP_KERNEL);
		assert_non_null(p[i]);
	}
	for (int i = 0; i < 100; i++)
		kmem_cache_free(without, p[i]);
	struct slab_sheaf *sf = kmem_cache_prefill_sheaf(without, GFP_KERNEL, 10);
	assert_non_null(sf);
	assert_true(kmem_cache_sheaf_size(sf) >= 10);
	kmem_cache_return_sheaf(without, GFP_KERNEL, sf);
	assert_drained(without);
	kmem_cache_destroy(with);
	kmem_cache_destroy(without);
	kmem_cache_destroy(dflt);
	kmem_cache_destroy(dflt_no);
}

/*
 * SLAB_NO_USER_FLAGS: SLUB_DEBUG does not apply.  Seen through the sheaf
 * capacity: a debug cache has none.  Only meaningful in the run with
 * SLUB_DEBUG=FZ,kapi-dbg* (test_kernel_api_env).
 */
static void test_no_user_flags(void **state)
{
	(void)state;
	const char *dbg = getenv("SLUB_DEBUG");
	bool env = dbg && strstr(dbg, "kapi-dbg") != NULL;
	struct kmem_cache_args args = { 0 };
	args.sheaf_capacity = 16;
	struct kmem_cache *a = kmem_cache_create("kapi-dbg-user", 64, &args, 0);
	struct kmem_cache *b = kmem_cache_create("kapi-dbg-nouser", 64, &args,
						 SLAB_NO_USER_FLAGS);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(sheaf_cache_capacity(a), env ? 0 : env_auto() ? 60 : 16);
	assert_int_equal(sheaf_cache_capacity(b), env_auto() ? 60 : 16);
	if (env)
		assert_int_equal(kmem_cache_validate(b), 0);
	kmem_cache_destroy(a);
	kmem_cache_destroy(b);
}

/* The flags added are accepted; SLAB_MEM_SPREAD (deprecated) still is. */
static void test_new_slab_flags(void **state)
{
	(void)state;
	static const slab_flags_t fl[] = {
		SLAB_CACHE_DMA, SLAB_CACHE_DMA32, SLAB_DEBUG_OBJECTS, SLAB_FAILSLAB,
		SLAB_NO_USER_FLAGS, SLAB_SKIP_KFENCE, SLAB_MAY_ACCOUNT,
		SLAB_NO_OBJ_EXT, SLAB_OBJ_EXT_IN_OBJ, SLAB_NO_SHEAVES,
		SLAB_MEM_SPREAD, SLAB_NO_MERGE,
	};
	slab_flags_t all = 0;
	for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
		/* one bit each, distinct, inside the valid set */
		assert_int_equal(__builtin_popcount(fl[i]), 1);
		assert_int_equal(all & fl[i], 0);
		all |= fl[i];
		assert_int_equal(fl[i] & ~SHEAF_SLAB_VALID_FLAGS, 0);
		struct kmem_cache *s = kmem_cache_create("kapi-flag", 32, NULL, fl[i]);
		assert_non_null(s);
		void *o = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(o);
		kmem_cache_free(s, o);
		kmem_cache_destroy(s);
	}
	struct kmem_cache *s = kmem_cache_create("kapi-flag-all", 32, NULL, all);
	assert_non_null(s);
	kmem_cache_destroy(s);
	assert_int_equal(all & SLAB_DEBUG_FLAGS, 0);
}

/* ------------------------------------------------------------- RCU */

struct rnode {
	long v;
	struct rcu_head rcu;
};

static void test_kvfree_call_rcu(void **state)
{
	(void)state;
	struct kmem_cache *s = make_cache("kapi-rcu", sizeof(struct rnode), 8);
	for (int i = 0; i < 50; i++) {
		struct rnode *n = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(n);
		kvfree_call_rcu(i % 2 ? &n->rcu : NULL, n);
	}
	kvfree_call_rcu(NULL, kmalloc(100, GFP_KERNEL));
	kvfree_call_rcu(NULL, kvmalloc(6ul << 20, GFP_KERNEL));
	kvfree_call_rcu(NULL, NULL);
	kvfree_rcu_barrier();
	assert_drained(s);
	kmem_cache_destroy(s);
}

/* kmalloc_obj() and family: typed results, sizes, zeroing, overflow. */
struct tk_obj {
	int a;
	long b;
};

struct tk_flex {
	size_t n;
	uint32_t v[];
};

static void test_typed_helpers(void **state)
{
	(void)state;
	struct tk_obj *p = kmalloc_obj(*p, GFP_KERNEL);
	_Static_assert(__builtin_types_compatible_p(__typeof__(kmalloc_obj(*p, 0)),
						    struct tk_obj *), "typed result");
	assert_non_null(p);
	assert_true(ksize(p) >= sizeof(*p));
	p->b = 7;
	kfree(p);
	struct tk_obj *z = kzalloc_obj(struct tk_obj, GFP_KERNEL);
	assert_non_null(z);
	assert_int_equal(z->a, 0);
	assert_int_equal(z->b, 0);
	kfree(z);

	struct tk_obj *arr = kzalloc_objs(*arr, 100, GFP_KERNEL);
	assert_non_null(arr);
	assert_true(ksize(arr) >= 100 * sizeof(*arr));
	for (int i = 0; i < 100; i++)
		assert_true(arr[i].a == 0 && arr[i].b == 0);
	kfree(arr);
	assert_null(kmalloc_objs(*arr, SIZE_MAX / 8, GFP_KERNEL));
	assert_null(kzalloc_objs(*arr, SIZE_MAX / 8, GFP_KERNEL));

	struct tk_flex *f = kzalloc_flex(*f, v, 1000, GFP_KERNEL);
	assert_non_null(f);
	assert_true(ksize(f) >= offsetof(struct tk_flex, v) + 1000 * sizeof(uint32_t));
	assert_int_equal(f->v[999], 0);
	f->v[999] = 1;
	kfree(f);
	assert_null(kmalloc_flex(*f, v, SIZE_MAX / 2, GFP_KERNEL));
	assert_int_equal(sheaf_flex_size(struct tk_flex, v, SIZE_MAX / 2), SIZE_MAX);

	/* the kv forms: above KMALLOC_MAX_SIZE, a mapping */
	struct tk_obj *big = kvzalloc_objs(*big, 1 << 19, GFP_KERNEL);
	assert_non_null(big);
	assert_int_equal(big[(1 << 19) - 1].b, 0);
	kvfree(big);
	struct tk_flex *kf = kvmalloc_flex(*kf, v, 2 << 20, GFP_KERNEL);
	assert_non_null(kf);
	kf->v[(2 << 20) - 1] = 3;
	kvfree(kf);
	struct tk_obj *o = kvmalloc_obj(*o, GFP_KERNEL);
	assert_non_null(o);
	kvfree(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gfp_values),
		cmocka_unit_test(test_typed_helpers),
		cmocka_unit_test(test_gfp_allow),
		cmocka_unit_test(test_gfp_new_bits_allocate),
		cmocka_unit_test(test_gfp_undefined_bits),
		cmocka_unit_test(test_kmalloc_max_size),
		cmocka_unit_test(test_kvmalloc_sizes),
		cmocka_unit_test(test_kvmalloc_bad),
		cmocka_unit_test_teardown(test_kvmalloc_fallback, teardown_injection),
		cmocka_unit_test(test_kvrealloc),
		cmocka_unit_test(test_krealloc_array_node_forms),
		cmocka_unit_test(test_free_sensitive),
		cmocka_unit_test(test_free_bad_input),
		cmocka_unit_test(test_kfree_bulk),
		cmocka_unit_test(test_kmem_cache_alloc_lru),
		cmocka_unit_test(test_create_usercopy),
		cmocka_unit_test(test_no_sheaves),
		cmocka_unit_test(test_no_user_flags),
		cmocka_unit_test(test_new_slab_flags),
		cmocka_unit_test(test_kvfree_call_rcu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
