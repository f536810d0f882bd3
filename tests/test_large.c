/* SPDX-License-Identifier: MIT */
/*
 * test_large.c - huge mappings (kvmalloc and kmalloc above the largest page
 * run) are retained when freed and reused (src/huge.c): the same size
 * comes back at the same address, a larger one grows a retained mapping in
 * place, a smaller one trims its tail; reuse zeroes for __GFP_ZERO; a
 * retained mapping is no live block (a second free is reported); the
 * budget, the count limit and kmem_cache_shrink() bound what is kept.
 * Huge mappings come in whole multiples of 2 MiB (HUGE_GRAIN), so that
 * pages move between them a page-table page at a time.
 * Run again with SHEAF_LARGE_DECAY_MS=50 (decay), SHEAF_LARGE_RETAIN_MB=0
 * (nothing retained, as before retention existed; a freed mapping's
 * address is reused) and SHEAF_LARGE_THP=1 (huge mappings advised
 * MADV_HUGEPAGE).
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

static void test_grow_in_place(void **state)
{
	(void)state;
	release();
	char *p = big(6 * MiB);
	kvfree(p);
	char *q = big(7 * MiB + 4096);
	assert_ptr_equal(q, p);
	assert_int_equal(ksize(q), 8 * MiB);	/* rounded to the grain */
	assert_int_equal(info().huge_retained, 0);
	kvfree(q);
	release();
}

/*
 * A mapping that was given the pages of another is several VMAs, which
 * mremap() cannot grow (EFAULT): it still grows in place, and again.
 */
static void test_grow_after_donor(void **state)
{
	(void)state;
	release();
	char *a = big(6 * MiB), *b = big(10 * MiB);
	kvfree(a);
	kvfree(b);
	char *q = big(14 * MiB);	/* b, grown with 4 MiB of a's pages */
	assert_ptr_equal(q, b);
	assert_int_equal(info().huge_retained, 2 * MiB);
	kvfree(q);
	/* q (two VMAs) grows by 6 MiB: a's last 2 MiB and 4 MiB fresh */
	char *r = big(20 * MiB);
	assert_ptr_equal(r, q);
	assert_int_equal(ksize(r), 20 * MiB);
	assert_int_equal(info().huge_retained, 0);
	kvfree(r);
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

/* Something else right after it: the pages move to a new mapping. */
static void test_grow_moves(void **state)
{
	(void)state;
	release();
	char *p = big(6 * MiB);
	kvfree(p);
	void *block = mmap(p + 6 * MiB, 4096, PROT_READ,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(block, p + 6 * MiB);
	char *q = kvmalloc(7 * MiB, GFP_KERNEL);
	assert_non_null(q);
	assert_ptr_not_equal(q, p);
	assert_int_equal(q[0], 0x5a);		/* p's pages, moved */
	assert_int_equal(q[6 * MiB - 1], 0x5a);
	assert_int_equal(q[7 * MiB - 1], 0);	/* the new part is fresh */
	assert_int_equal(info().huge_retained, 0);
	assert_false(mapped(p, 64 * 4096));
	munmap(block, 4096);
	kvfree(q);
	release();
}

static void test_trim_tail(void **state)
{
	(void)state;
	release();
	size_t before = info().huge_bytes;
	char *p = big(20 * MiB);
	kvfree(p);
	char *q = big(5 * MiB);
	assert_ptr_equal(q, p);
	assert_int_equal(ksize(q), 6 * MiB);
	assert_int_equal(info().huge_bytes, before + 6 * MiB);
	/* the tail is split off: its pages moved to a mapping still retained */
	assert_false(mapped(p + 6 * MiB, 64 * 4096));
	assert_int_equal(info().huge_retained, 14 * MiB);
	char *t = kvmalloc(14 * MiB, GFP_KERNEL);
	assert_non_null(t);
	assert_int_equal(info().huge_retained, 0);
	assert_int_equal(t[0], 0x5a); /* p's old bytes: moved, not fresh */
	kvfree(t);
	kvfree(q);
	release();
}

/*
 * A shortfall is filled with the pages of other retained mappings: their
 * contents arrive (moved page tables), and the donor keeps the rest.
 */
static void test_donor_pages(void **state)
{
	(void)state;
	release();
	char *a = big(6 * MiB), *b = big(10 * MiB);
	memset(a, 0x77, 6 * MiB);
	kvfree(a);
	kvfree(b);
	assert_int_equal(info().huge_retained, 16 * MiB);
	char *q = kvmalloc(14 * MiB, GFP_KERNEL);
	assert_ptr_equal(q, b); /* the largest, grown */
	assert_int_equal(info().huge_retained, 2 * MiB);
	assert_int_equal(q[0], 0x5a);
	assert_int_equal(q[10 * MiB], 0x77);
	assert_int_equal(q[14 * MiB - 1], 0x77);
	memset(q, 1, 14 * MiB);
	kvfree(q);
	release();
}

/* A request within an eighth of a retained mapping takes it whole. */
static void test_small_slack_kept(void **state)
{
	(void)state;
	release();
	char *p = big(18 * MiB);
	kvfree(p);
	char *q = big(16 * MiB);
	assert_ptr_equal(q, p);
	assert_int_equal(ksize(q), 18 * MiB);
	kvfree(q);
	release();
}

static void test_zero_on_reuse(void **state)
{
	(void)state;
	release();
	char *p = big(8 * MiB);
	kvfree(p);
	char *q = kvzalloc(8 * MiB, GFP_KERNEL);
	assert_ptr_equal(q, p);
	for (size_t i = 0; i < 8 * MiB; i += 512)
		if (q[i] || q[i + 511])
			fail_msg("kvzalloc() reused a mapping without zeroing it (offset %zu)", i);
	memset(q, 0x33, 8 * MiB);
	kvfree(q);
	/* grown: the old part zeroed, the new part fresh */
	q = kvzalloc(8 * MiB + 8192, GFP_KERNEL);
	assert_ptr_equal(q, p);
	for (size_t i = 0; i < 8 * MiB + 8192; i += 512)
		if (q[i])
			fail_msg("grown reuse not zero at offset %zu", i);
	kvfree(q);
	release();
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

static void test_retained_not_live(void **state)
{
	(void)state;
	release();
	stale = big(8 * MiB);
	kvfree(stale);
	assert_int_equal(info().huge_retained, 8 * MiB);
	expect_child_abort(free_again, "invalid pointer");
	expect_child_abort(ksize_of_retained, "invalid pointer");
	release();
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
		size_t r = info().huge_retained;
		/* the budget: 64 MiB by default, as what is live is less
		 * than twice that (each 5 MiB request is a 6 MiB mapping) */
		assert_true(r <= 64 * MiB);
	}
	assert_int_equal(info().huge_retained, 10 * 6 * MiB);
	/*
	 * 80 MiB: none retained covers it, so the largest grows in place
	 * within its arena slot, filled with the pages of all the others
	 * (moved, not faulted); freed, it is above the budget and unmapped.
	 */
	char *huge = big(80 * MiB);
	bool grown = false;
	for (int i = N - 10; i < N; i++)
		grown |= huge == p[i];
	assert_true(grown);
	assert_int_equal(info().huge_retained, 0);
	kvfree(huge);
	assert_int_equal(info().huge_retained, 0);
	assert_false(mapped(huge, 64 * 4096));
	char *q = big(5 * MiB);
	kvfree(q);
	release();
	for (int i = 0; i < N; i++)
		assert_false(mapped(p[i], 64 * 4096));
}

/*
 * With more than twice SHEAF_LARGE_RETAIN_MB live in huge mappings, half
 * of what is live may be retained: a program cycling 240 MiB of buffers
 * keeps what its swings need.  Above that, the oldest go.
 */
static void test_budget_scales(void **state)
{
	(void)state;
	release();
	enum { N = 10 };
	char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = kvmalloc(24 * MiB, GFP_KERNEL);	/* not touched: cheap */
		assert_non_null(p[i]);
	}
	size_t live = info().huge_bytes;
	for (int i = 0; i < 4; i++) {
		kvfree(p[i]);
		live -= 24 * MiB;
		size_t r = info().huge_retained;
		size_t budget = live / 2 > 64 * MiB ? live / 2 : 64 * MiB;
		assert_true(r <= budget);
		/* the first three fit: 24, 48, 72 MiB, above the fixed 64 */
		if (i < 3)
			assert_int_equal(r, (size_t)(i + 1) * 24 * MiB);
	}
	assert_true(info().huge_retained > 64 * MiB);
	for (int i = 4; i < N; i++)
		kvfree(p[i]);
	/* nothing live: the fixed budget again, the oldest released */
	assert_true(info().huge_retained <= 64 * MiB);
	release();
}

static void test_decay(void **state)
{
	(void)state;
	release();
	char *p = big(8 * MiB);
	kvfree(p);
	assert_int_equal(info().huge_retained, 8 * MiB);
	struct timespec ts = { 0, 150 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	/* the next huge operation releases what outlived the decay */
	char *q = big(6 * MiB);
	assert_int_equal(info().huge_retained, 0);
	assert_false(q == p && ksize(q) == 8 * MiB);
	kvfree(q);
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

static void test_nothing_retained(void **state)
{
	(void)state;
	char *p = big(8 * MiB);
	kvfree(p);
	assert_int_equal(info().huge_retained, 0);
	assert_false(mapped(p, 64 * 4096));
}

/*
 * An arena-aligned address a huge mapping left is tried first for the
 * next one (huge.c's slot hints: one mmap() instead of three), and a
 * hint that something else took meanwhile is passed over.
 */
static void test_slot_reused(void **state)
{
	(void)state;
	char *p = big(8 * MiB), *q = big(8 * MiB);
	kvfree(p);
	assert_false(mapped(p, 64 * 4096));
	/* A page just past the old mapping: the hole left is too small for
	 * a fresh aligned reservation (size + 256 MiB), so only the hint
	 * puts the next mapping back at p. */
	void *fence = mmap(p + 12 * MiB, 4096, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	char *r = big(8 * MiB);
	assert_ptr_equal(r, p);
	kvfree(r);
	if (fence != MAP_FAILED)
		munmap(fence, 4096);
	/* someone else maps at the hint: the next mapping goes elsewhere */
	void *other = mmap(p, 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(other, p);
	r = big(8 * MiB);
	assert_true(r != p);
	assert_true(mapped(p, 4096));
	kvfree(r);
	munmap(other, 4096);
	kvfree(q);
}

/* Whether the mapping that starts at p has VmFlag `flag` (smaps). */
static bool vm_flag(const void *p, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	char line[512];
	bool in = false, found = false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = lo == (uintptr_t)p;
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

/* SHEAF_LARGE_THP: a huge mapping is advised MADV_HUGEPAGE, else not. */
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

int main(void)
{
	any_cache = kmem_cache_create("test-large", 64, 0, 0, NULL);
	if (!any_cache)
		return 1;
	const char *decay = getenv("SHEAF_LARGE_DECAY_MS");
	const char *retain = getenv("SHEAF_LARGE_RETAIN_MB");
	int rc;
	if (retain && !strcmp(retain, "0")) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_nothing_retained),
			cmocka_unit_test(test_slot_reused),
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
			cmocka_unit_test(test_grow_in_place),
			cmocka_unit_test(test_grow_after_donor),
			cmocka_unit_test(test_grain),
			cmocka_unit_test(test_grow_moves),
			cmocka_unit_test(test_trim_tail),
			cmocka_unit_test(test_small_slack_kept),
			cmocka_unit_test(test_donor_pages),
			cmocka_unit_test(test_zero_on_reuse),
			cmocka_unit_test(test_retained_not_live),
			cmocka_unit_test(test_bounds),
			cmocka_unit_test(test_budget_scales),
			cmocka_unit_test(test_thp_advice),
			cmocka_unit_test(test_run_decay),
		};
		rc = cmocka_run_group_tests(tests, NULL, NULL);
	}
	kmem_cache_destroy(any_cache);
	return rc;
}
