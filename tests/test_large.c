/* SPDX-License-Identifier: MIT */
/*
 * test_large.c - huge allocations (kvmalloc and kmalloc above the largest
 * page run) are spans of the huge heap (src/huge.c): whole 2 MiB grains
 * carved from regions; a freed span joins its free neighbours and stays
 * resident for reuse (the same size comes back at the same address, a
 * smaller one is carved from it, the rest stays free); a request that finds
 * no span resident enough gets the pages of free spans moved in rather
 * than faulted; reuse zeroes for __GFP_ZERO; a free span is no live block
 * (a second free is reported); kvrealloc() resizes a span in place or
 * moves its pages, never copies; the budget and kmem_cache_shrink() bound
 * what stays resident, and shrink unmaps a region with nothing live.
 * Run again with SHEAF_LARGE_DECAY_MS=50 (decay), SHEAF_LARGE_RETAIN_MB=0
 * (nothing retained: every freed grain released at once) and
 * SHEAF_LARGE_THP=1 (the heap advised MADV_HUGEPAGE).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/slab.h>

#include "test_util.h"
#include "test_cmocka_util.h"

#define MiB (1ul << 20)

static struct kmem_cache *any_cache;

static struct sheaf_page_info info(void)
{
	struct sheaf_page_info pi;
	sheaf_page_info(&pi);
	return pi;
}

/* Everything retained back to the system (what malloc_trim() does too). */
static void release(void)
{
	kmem_cache_shrink(any_cache);
	assert_int_equal(info().huge_retained, 0);
}

static char *big(size_t n)
{
	char *p = kvmalloc(n, GFP_KERNEL);
	assert_non_null(p);
	memset(p, 0x5a, n);
	return p;
}

/* Whether [p, p + n) is mapped (mincore() fails with ENOMEM if not). */
static bool mapped(const void *p, size_t n)
{
	unsigned char vec[64];
	size_t pages = n / (size_t)sysconf(_SC_PAGESIZE);
	assert_true(pages <= sizeof(vec));
	return mincore((void *)p, n, vec) == 0 || errno != ENOMEM;
}

/* How many of the pages of [p, p + n) are resident (mapped: checked). */
static size_t resident(const void *p, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = n / page, c = 0;
	unsigned char *vec = calloc(pages, 1);
	assert_non_null(vec);
	assert_int_equal(mincore((void *)p, n, vec), 0);
	for (size_t i = 0; i < pages; i++)
		c += vec[i] & 1;
	free(vec);
	return c;
}


static void test_same_size(void **state)
{
	(void)state;
	release();
	size_t before = info().huge_bytes;
	char *p = big(8 * MiB);
	assert_int_equal(info().huge_bytes, before + 8 * MiB);
	kvfree(p);
	assert_int_equal(info().huge_bytes, before);
	assert_int_equal(info().huge_retained, 8 * MiB);
	char *q = big(8 * MiB);
	assert_ptr_equal(q, p);
	assert_int_equal(info().huge_retained, 0);
	assert_int_equal(ksize(q), 8 * MiB);
	kvfree(q);
	release();
}

/* Freed neighbours join: two freed spans serve one request of both. */
static void test_neighbours_join(void **state)
{
	(void)state;
	release();
	char *a = big(6 * MiB), *b = big(10 * MiB), *c = big(6 * MiB);
	assert_ptr_equal(b, a + 6 * MiB);	/* carved one after the other */
	kvfree(a);
	kvfree(b);
	assert_int_equal(info().huge_retained, 16 * MiB);
	char *q = kvmalloc(16 * MiB, GFP_KERNEL);
	assert_ptr_equal(q, a);
	assert_true(resident(q, 16 * MiB) >= 16 * MiB / 4096 - 64);
	assert_int_equal(q[10 * MiB], 0x5a);
	assert_int_equal(info().huge_retained, 0);
	kvfree(q);
	kvfree(c);
	release();
}

/* Every size is a multiple of the grain; an exact one is not rounded. */
static void test_grain(void **state)
{
	(void)state;
	release();
	size_t sizes[] = { 4 * MiB + 1, 5 * MiB, 6 * MiB, 6 * MiB + 4096, 33 * MiB - 1 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *p = kvmalloc(sizes[i], GFP_KERNEL);
		assert_non_null(p);
		size_t k = ksize(p);
		assert_true(k >= sizes[i] && k - sizes[i] < 2 * MiB);
		assert_int_equal(k % (2 * MiB), 0);
		assert_int_equal((uintptr_t)p % (2 * MiB), 0);
		kvfree(p);
	}
	release();
}

/* A smaller request is carved from a free span; the rest stays free,
 * resident, and serves the next one with its old bytes. */
static void test_carve(void **state)
{
	(void)state;
	release();
	size_t before = info().huge_bytes;
	char *p = big(20 * MiB), *fence = big(6 * MiB);
	kvfree(p);
	char *q = big(5 * MiB);
	assert_ptr_equal(q, p);
	assert_int_equal(ksize(q), 6 * MiB);
	assert_int_equal(info().huge_bytes, before + 12 * MiB);
	assert_int_equal(info().huge_retained, 14 * MiB);
	char *t = kvmalloc(14 * MiB, GFP_KERNEL);
	assert_ptr_equal(t, p + 6 * MiB);
	assert_int_equal(t[0], 0x5a);	/* p's old bytes: resident, not fresh */
	assert_int_equal(info().huge_retained, 0);
	kvfree(t);
	kvfree(q);
	kvfree(fence);
	release();
}

/*
 * Holes: a (10 MiB, bytes 0x11), b (6), c (10, 0x22), d (6) carved one
 * after the other, a and c freed: 20 MiB resident in two free spans that
 * a 20 MiB request does not fit.
 */
static void holes(char **a, char **b, char **c, char **d)
{
	release();
	*a = big(10 * MiB);
	*b = big(6 * MiB);
	*c = big(10 * MiB);
	*d = big(6 * MiB);
	assert_ptr_equal(*d, *a + 26 * MiB);
	memset(*a, 0x11, 10 * MiB);
	memset(*c, 0x22, 10 * MiB);
	kvfree(*a);
	kvfree(*c);
	assert_int_equal(info().huge_retained, 20 * MiB);
}

/*
 * No free span is resident enough for a request: it is carved where the
 * heap has room, and the pages of the free spans between live ones are
 * moved into it (page tables and all): the program touches them without
 * a fault, and what they left is clean (not resident, still mapped).
 */
static void test_fill_moves_pages(void **state)
{
	(void)state;
	char *a, *b, *c, *d;
	holes(&a, &b, &c, &d);
	char *q = kvmalloc(20 * MiB, GFP_KERNEL);
	assert_non_null(q);
	assert_true(q > d);		/* neither hole fits it */
	assert_int_equal(info().huge_retained, 0);
	/* resident before the program touches it: no fault to come (a fault
	 * count would see an ASan build's shadow pages too) */
	assert_true(resident(q, 20 * MiB) >= 20 * MiB / 4096 - 64);
	for (size_t off = 0; off < 20 * MiB; off += 4096)
		if (q[off] != 0x11 && q[off] != 0x22)
			fail_msg("byte %zu of the filled span: %d", off, q[off]);
	memset(q, 0x33, 20 * MiB);
	assert_true(mapped(a, 64 * 4096));
	assert_true(resident(a, 10 * MiB) < 64);
	assert_true(resident(c, 10 * MiB) < 64);
	kvfree(q);
	kvfree(b);
	kvfree(d);
	release();
}

/* The same with kvzalloc(): the pages moved in are zeroed. */
static void test_fill_zeroed(void **state)
{
	(void)state;
	char *a, *b, *c, *d;
	holes(&a, &b, &c, &d);
	char *z = kvzalloc(20 * MiB, GFP_KERNEL);
	assert_non_null(z);
	assert_true(z > d);
	assert_true(resident(z, 20 * MiB) >= 20 * MiB / 4096 - 64);
	for (size_t i = 0; i < 20 * MiB; i += 512)
		if (z[i] || z[i + 511])
			fail_msg("kvzalloc() filled with old pages, not zeroed (offset %zu)", i);
	kvfree(z);
	kvfree(b);
	kvfree(d);
	release();
}

static void test_zero_on_reuse(void **state)
{
	(void)state;
	release();
	char *p = big(8 * MiB), *fence = big(6 * MiB);
	kvfree(p);
	char *q = kvzalloc(8 * MiB, GFP_KERNEL);
	assert_ptr_equal(q, p);
	for (size_t i = 0; i < 8 * MiB; i += 512)
		if (q[i] || q[i + 511])
			fail_msg("kvzalloc() reused a span without zeroing it (offset %zu)", i);
	memset(q, 0x33, 8 * MiB);
	kvfree(q);
	kvfree(fence);
	release();
}

/* kvrealloc() of a huge span: grown into the free span after it, shrunk
 * with its tail given back, in place; nothing copied. */
static void test_realloc_in_place(void **state)
{
	(void)state;
	release();
	char *a = big(8 * MiB);
	char *q = kvrealloc(a, 20 * MiB, GFP_KERNEL);
	assert_ptr_equal(q, a);
	assert_int_equal(ksize(q), 20 * MiB);
	assert_int_equal(q[0], 0x5a);
	assert_int_equal(q[8 * MiB - 1], 0x5a);
	memset(q, 0x44, 20 * MiB);
	size_t before = info().huge_retained;
	char *r = kvrealloc(q, 6 * MiB, GFP_KERNEL);
	assert_ptr_equal(r, a);
	assert_int_equal(ksize(r), 6 * MiB);
	assert_int_equal(info().huge_retained, before + 14 * MiB);
	assert_int_equal(r[6 * MiB - 1], 0x44);
	kvfree(r);
	release();
}

/* Something live right after it: its pages move to a new span (mremap),
 * what it leaves is clean, not a copy's resident source. */
static void test_realloc_moves(void **state)
{
	(void)state;
	release();
	char *a = big(8 * MiB), *fence = big(6 * MiB);
	assert_ptr_equal(fence, a + 8 * MiB);
	size_t before = info().huge_retained;
	char *q = kvrealloc(a, 20 * MiB, GFP_KERNEL);
	assert_non_null(q);
	assert_ptr_not_equal(q, a);
	for (size_t off = 0; off < 8 * MiB; off += 4096)
		if (q[off] != 0x5a)
			fail_msg("byte %zu after the move: %d", off, q[off]);
	assert_true(resident(a, 8 * MiB) < 64);
	assert_int_equal(info().huge_retained, before);
	memset(q, 1, 20 * MiB);
	kvfree(q);
	kvfree(fence);
	release();
}

/*
 * A realloc() that moves lands the old pages where no retained grain is
 * lost: a move unmaps what it lands on, so landing on resident free
 * grains would throw them away (and the next growth faults them in).
 * Here the only retained grains are 20 MiB right after the block's fence,
 * at the start of a free span; the old placement (the span with the
 * fewest clean grains, from its start) put the 8 MiB moved onto 4 of
 * them, leaving 8 MiB retained after the 4 MiB of growth took two more.
 * Now the old pages land on clean grains and the growth takes two
 * retained ones: 16 MiB stay retained.
 */
static void test_realloc_keeps_retained(void **state)
{
	(void)state;
	release();
	char *a = big(8 * MiB), *fence = big(6 * MiB), *x = big(20 * MiB);
	bool laid_out = fence == a + 8 * MiB && x == fence + 6 * MiB;
	kvfree(x);
	size_t before = info().huge_retained;
	char *q = kvrealloc(a, 12 * MiB, GFP_KERNEL);
	size_t bad = SIZE_MAX, kept = info().huge_retained, pages = resident(x, 20 * MiB);
	for (size_t off = 0; q && off < 8 * MiB && bad == SIZE_MAX; off += 4096)
		if (q[off] != 0x5a)
			bad = off;
	if (q)
		memset(q, 1, 12 * MiB);
	kvfree(q ? q : a);
	kvfree(fence);
	release();	/* before the checks: a failure leaves nothing live */
	assert_true(laid_out);
	assert_int_equal(before, 20 * MiB);
	assert_non_null(q);
	assert_ptr_not_equal(q, a);
	assert_true(bad == SIZE_MAX);
	assert_int_equal(kept, 16 * MiB);
	assert_true(pages >= 16 * MiB / 4096 - 64);
}

/*
 * A fresh request starts on the retained grains of a free span whose
 * first grains are clean, rather than at the span's start (where the
 * clean grains would be filled by moving the retained ones over, or
 * faulted in).  The span is made so: x moved away by a realloc() (its
 * grains left clean), then y, right after it, freed (retained).
 */
static void test_fresh_on_retained(void **state)
{
	(void)state;
	release();
	char *x = big(8 * MiB), *y = big(8 * MiB), *fence = big(6 * MiB);
	bool laid_out = y == x + 8 * MiB && fence == y + 8 * MiB;
	char *q = kvrealloc(x, 12 * MiB, GFP_KERNEL);	/* moves: x's grains clean */
	kvfree(y);
	size_t kept = info().huge_retained;
	char *z = big(8 * MiB);
	size_t kept_after = info().huge_retained;
	kvfree(z);
	kvfree(q);
	kvfree(fence);
	release();	/* before the checks: a failure leaves nothing live */
	assert_true(laid_out);
	assert_non_null(q);
	assert_int_equal(kept, 8 * MiB);
	assert_ptr_equal(z, y);
	assert_int_equal(kept_after, 0);
}

static char *stale;

static void free_again(void *arg)
{
	(void)arg;
	kvfree(stale);
}

static void ksize_of_retained(void *arg)
{
	(void)arg;
	(void)ksize(stale);
}

static void free_inside(void *arg)
{
	(void)arg;
	kvfree(stale + 2 * MiB);
}

static void test_retained_not_live(void **state)
{
	(void)state;
	release();
	stale = big(8 * MiB);
	expect_child_abort(free_inside, "invalid pointer");
	kvfree(stale);
	assert_int_equal(info().huge_retained, 8 * MiB);
	expect_child_abort(free_again, "invalid pointer");
	expect_child_abort(ksize_of_retained, "invalid pointer");
	release();
}

/*
 * A move the kernel refuses (the map count limit) leaves both grains as
 * they were: the request's grains stay clean (mapped; they fault when
 * touched, or are prefaulted) and the free spans keep their pages.  A
 * kernel before 6.17 could refuse after unmapping the destination: the
 * heap maps it again rather than hand out a block with a hole.
 */
static void test_move_refused(void **state)
{
	(void)state;
	for (int unmap = 0; unmap < 2; unmap++) {
		char *a, *b, *c, *d;
		holes(&a, &b, &c, &d);
		sheaf_test_refuse_moves(-1, unmap);
		char *q = kvmalloc(20 * MiB, GFP_KERNEL);
		sheaf_test_refuse_moves(0, false);
		assert_non_null(q);
		assert_true(q > d);
		(void)resident(q, 20 * MiB);	/* asserts that all of it is mapped */
		memset(q, 0x33, 20 * MiB);
		assert_int_equal(q[20 * MiB - 1], 0x33);
		/* the free spans kept their pages */
		assert_int_equal(info().huge_retained, 20 * MiB);
		assert_int_equal(resident(a, 10 * MiB), 10 * MiB / 4096);
		assert_int_equal(resident(c, 10 * MiB), 10 * MiB / 4096);
		assert_int_equal(a[0], 0x11);
		assert_int_equal(c[0], 0x22);
		kvfree(q);
		kvfree(b);
		kvfree(d);
		release();
	}
}

static void test_bounds(void **state)
{
	(void)state;
	release();
	enum { N = 20 };
	char *p[N];
	for (int i = 0; i < N; i++)
		p[i] = big(5 * MiB);
	for (int i = 0; i < N; i++) {
		kvfree(p[i]);
		/* the budget, 64 MiB by default as what is live is less than
		 * twice that; a free may exceed it by as much again (the next
		 * allocation usually takes what it gave) */
		assert_true(info().huge_retained <= 128 * MiB);
	}
	kvfree(big(5 * MiB));	/* an allocation trims to the budget; its free adds 6 */
	assert_true(info().huge_retained <= 70 * MiB);
	size_t kept = 0;
	for (int i = 0; i < N; i++)
		kept += resident(p[i], 6 * MiB);
	assert_true(kept * 4096 <= 64 * MiB + 6 * MiB);
	release();
	for (int i = 0; i < N; i++)
		assert_false(mapped(p[i], 64 * 4096));	/* the region unmapped */
}

/*
 * With more than twice SHEAF_LARGE_RETAIN_MB live in huge spans, half of
 * what is live may stay retained: a program cycling 240 MiB of buffers
 * keeps what its swings need.
 */
static void test_budget_scales(void **state)
{
	(void)state;
	release();
	enum { N = 10 };
	char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = kvmalloc(24 * MiB, GFP_KERNEL);
		assert_non_null(p[i]);
		memset(p[i], 1, 24 * MiB);
	}
	size_t live = info().huge_bytes;
	for (int i = 0; i < 3; i++) {
		kvfree(p[2 * i]);	/* not neighbours */
		live -= 24 * MiB;
		/* 24, 48, 72 MiB: within half of what is live, above 64 */
		assert_int_equal(info().huge_retained, (size_t)(i + 1) * 24 * MiB);
		kvfree(big(6 * MiB));	/* an allocation: the budget holds */
		assert_true(info().huge_retained <= (live / 2 > 64 * MiB ? live / 2 : 64 * MiB) + 6 * MiB);
	}
	assert_true(info().huge_retained > 64 * MiB);
	for (int i = 0; i < N; i++)
		if (i % 2 || i >= 6)
			kvfree(p[i]);
	/* nothing live: the fixed budget again, after the next allocation
	 * (and its free's 6 MiB) */
	kvfree(big(6 * MiB));
	assert_true(info().huge_retained <= 70 * MiB);
	release();
}

static void test_decay(void **state)
{
	(void)state;
	release();
	char *p = big(8 * MiB), *fence = big(6 * MiB), *last = big(6 * MiB);
	kvfree(p);
	assert_int_equal(info().huge_retained, 8 * MiB);
	struct timespec ts = { 0, 150 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	/* the next huge operation releases what outlived the decay (a span
	 * joined to a newer free one would be as young as that) */
	kvfree(last);
	assert_int_equal(info().huge_retained, 6 * MiB);
	assert_true(resident(p, 8 * MiB) < 64);
	kvfree(fence);
	release();
}

/*
 * The buddy lists' dirty free runs decay by time (pages.c): 50 MiB of
 * 64 KiB runs freed stay dirty, ready for reuse, although that is past
 * the 32 MiB (8192 pages) kept whatever their age; once they are older
 * than the decay period (1 s here), the next free gives them back down
 * to half that.  (Before, the frees themselves gave them back as soon as
 * 8192 pages were dirty.)
 */
static void test_run_decay(void **state)
{
	(void)state;
	enum { N = 800, LIMIT = 8192 };	/* 800 x 16 pages */
	static void *r[N];
	release();
	for (int i = 0; i < N; i++) {
		assert_non_null(r[i] = kmalloc(64 << 10, GFP_KERNEL));
		memset(r[i], 1, 64);
	}
	for (int i = 0; i < N; i++)
		kfree(r[i]);
	assert_true(info().dirty_pages > LIMIT + 512);
	usleep(1300 * 1000);
	kfree(kmalloc(64 << 10, GFP_KERNEL));	/* the decay's next walk */
	assert_true(info().dirty_pages <= LIMIT / 2 + 64);
	release();
	assert_int_equal(info().dirty_pages, 0);
}

/* Nothing retained: a freed span's pages go at once; its address stays
 * the heap's and serves the next request. */
static void test_nothing_retained(void **state)
{
	(void)state;
	char *p = big(8 * MiB);
	kvfree(p);
	assert_int_equal(info().huge_retained, 0);
	assert_true(mapped(p, 64 * 4096));
	assert_true(resident(p, 8 * MiB) < 64);
	char *q = kvmalloc(8 * MiB, GFP_KERNEL);
	assert_ptr_equal(q, p);
	assert_int_equal(q[0], 0);	/* released: fresh */
	kvfree(q);
	kmem_cache_shrink(any_cache);
	assert_false(mapped(p, 64 * 4096));	/* nothing live: unmapped */
}

/* Whether the mapping that contains p has VmFlag `flag` (smaps). */
static bool vm_flag(const void *p, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	char line[512];
	bool in = false, found = false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = lo <= (uintptr_t)p && (uintptr_t)p < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			char want[8];
			snprintf(want, sizeof(want), " %s", flag);
			found = strstr(line, want) != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

/* SHEAF_LARGE_THP=1: the heap is advised MADV_HUGEPAGE, else not. */
static void test_thp_advice(void **state)
{
	(void)state;
	const char *v = getenv("SHEAF_LARGE_THP");
	bool on = v && !strcmp(v, "1");
	if (on && access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0)
		skip();	/* a kernel without THP refuses the advice */
	char *p = big(8 * MiB);
	assert_int_equal(vm_flag(p, "hg"), on);
	kvfree(p);
	release();
}

/*
 * Prefaulting (huge.c, "Prefaulting"): the clean grains of a new span are
 * populated once the program has been seen to touch what it allocates
 * (8 spans freed with their probe page touched), not after a span freed
 * untouched, nor above 64 MiB; SHEAF_LARGE_POPULATE=0 never, 1 always,
 * and never with SHEAF_LARGE_THP=1.  What is populated is all the request
 * but its probe page, and the part of a reused grain that its last
 * request did not cover.
 */
/* A span of n bytes from fresh grains (regions unmapped before). */
static char *fresh(size_t n)
{
	release();
	char *p = kvmalloc(n, GFP_KERNEL);
	assert_non_null(p);
	return p;
}

/* How many of a fresh span's pages are resident when it is handed out;
 * then the program touches it whole, and frees it. */
static size_t fresh_touched(size_t n)
{
	char *p = fresh(n);
	size_t r = resident(p, n);
	memset(p, 0x5a, n);
	kvfree(p);
	return r;
}

static void test_populate(void **state)
{
	(void)state;
	const char *v = getenv("SHEAF_LARGE_POPULATE"), *thp = getenv("SHEAF_LARGE_THP");
	int mode = -1;	/* auto */
	bool on_thp = thp && !strcmp(thp, "1");
	if (on_thp || (v && !strcmp(v, "0")))
		mode = 0;
	else if (v && !strcmp(v, "1"))
		mode = 1;
	size_t pages = 8 * MiB / 4096;
	/* a span freed untouched: none populated after it (auto) */
	kvfree(fresh(8 * MiB));
	char *p = fresh(8 * MiB);
	assert_int_equal(resident(p, 8 * MiB), mode == 1 ? pages - 1 : 0);
	kvfree(p);
	/* eight spans touched whole: populated after them (auto) */
	for (int i = 0; i < 8; i++)
		(void)fresh_touched(8 * MiB);
	assert_int_equal(fresh_touched(8 * MiB), mode ? pages - 1 : 0);
	/* a span's last grain is resident as far as its request went: reused
	 * as a whole grain, the rest is populated too */
	for (int i = 0; i < 8; i++)
		(void)fresh_touched(8 * MiB);
	char *a = fresh(5 * MiB), *fence = big(6 * MiB);
	memset(a, 0x5a, 5 * MiB);
	kvfree(a);
	char *q = kvmalloc(6 * MiB, GFP_KERNEL);
	assert_ptr_equal(q, a);
	if (!on_thp)	/* there a's last grain may be one huge page */
		assert_int_equal(resident(q, 6 * MiB), (mode ? 6 : 5) * MiB / 4096);
	kvfree(q);
	kvfree(fence);
	/* never a span above 64 MiB */
	assert_int_equal(fresh_touched(80 * MiB), 0);
	release();
}

int main(void)
{
	any_cache = kmem_cache_create("test-large", 64, 0, 0, NULL);
	if (!any_cache)
		return 1;
	const char *decay = getenv("SHEAF_LARGE_DECAY_MS");
	const char *retain = getenv("SHEAF_LARGE_RETAIN_MB");
	int rc;
	if (getenv("SHEAF_LARGE_POPULATE")) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_populate),
		};
		rc = cmocka_run_group_tests(tests, NULL, NULL);
	} else if (retain && !strcmp(retain, "0")) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_nothing_retained),
		};
		rc = cmocka_run_group_tests(tests, NULL, NULL);
	} else if (decay && !strcmp(decay, "50")) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_decay),
		};
		rc = cmocka_run_group_tests(tests, NULL, NULL);
	} else {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_same_size),
			cmocka_unit_test(test_neighbours_join),
			cmocka_unit_test(test_grain),
			cmocka_unit_test(test_carve),
			cmocka_unit_test(test_fill_moves_pages),
			cmocka_unit_test(test_fill_zeroed),
			cmocka_unit_test(test_move_refused),
			cmocka_unit_test(test_zero_on_reuse),
			cmocka_unit_test(test_realloc_in_place),
			cmocka_unit_test(test_realloc_moves),
			cmocka_unit_test(test_realloc_keeps_retained),
			cmocka_unit_test(test_fresh_on_retained),
			cmocka_unit_test(test_retained_not_live),
			cmocka_unit_test(test_bounds),
			cmocka_unit_test(test_budget_scales),
			cmocka_unit_test(test_thp_advice),
			cmocka_unit_test(test_populate),
			cmocka_unit_test(test_run_decay),
		};
		rc = cmocka_run_group_tests(tests, NULL, NULL);
	}
	kmem_cache_destroy(any_cache);
	return rc;
}
