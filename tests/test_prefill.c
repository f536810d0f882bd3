/*
 * test_prefill.c - prefilled sheaves: kmem_cache_prefill_sheaf(),
 * kmem_cache_alloc_from_sheaf(), kmem_cache_refill_sheaf(),
 * kmem_cache_return_sheaf(), kmem_cache_sheaf_size(), with the kernel's
 * semantics and exact counters, and the guarantee: N allocations after a
 * prefill of N succeed while every other allocation path fails.
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

#include <sheaf/slab.h>

#include "test_util.h"

#define CAP 16
#define ST(c, x) sheaf_stats_get((c), SHEAF_STAT_##x)

static struct kmem_cache *make(const char *name, unsigned int cap, slab_flags_t f)
{
	struct kmem_cache_args a;
	memset(&a, 0, sizeof(a));
	a.sheaf_capacity = cap;
	struct kmem_cache *s = kmem_cache_create(name, 96, &a, f);
	assert_non_null(s);
	sheaf_stats_reset(s);
	return s;
}

static void drain(struct kmem_cache *s, struct slab_sheaf *sheaf, void **out,
		  unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		out[i] = kmem_cache_alloc_from_sheaf(s, GFP_NOWAIT, sheaf);
		assert_non_null(out[i]);
		memset(out[i], 0xa5, 96);
	}
}

static void free_all(struct kmem_cache *s, void **p, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		kmem_cache_free(s, p[i]);
}

/* A regular prefill goes out full; return makes it the spare; the next
 * prefill takes the spare. */
static void test_prefill_fast_slow(void **state)
{
	struct kmem_cache *s = make("pf-basic", CAP, 0);
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 5);
	assert_non_null(sh);
	assert_int_equal(kmem_cache_sheaf_size(sh), CAP); /* full, not just 5 */
	assert_int_equal(ST(s, SHEAF_PREFILL_SLOW), 1);
	assert_int_equal(ST(s, SHEAF_PREFILL_FAST), 0);
	assert_int_equal(ST(s, SHEAF_REFILL), CAP);
	void *p[CAP];
	drain(s, sh, p, CAP);
	/* The kernel counts neither the prefill's refill nor the allocations
	 * from the sheaf in alloc_fastpath/alloc_slowpath; libsheaf counts the
	 * latter in alloc_from_sheaf. */
	assert_int_equal(ST(s, ALLOC_FROM_SHEAF), CAP);
	assert_int_equal(ST(s, ALLOC_FASTPATH), 0);
	assert_int_equal(ST(s, ALLOC_SLOWPATH), 0);
	assert_int_equal(ST(s, ALLOC_CPU_SHEAF), 0);
	for (int i = 0; i < CAP; i++)
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(p[i], p[j]);
	/* Empty: no fallback to the cache. */
	assert_null(kmem_cache_alloc_from_sheaf(s, GFP_KERNEL, sh));
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	assert_int_equal(ST(s, SHEAF_RETURN_FAST), 1);
	/* The returned (empty) sheaf is the spare: the next prefill takes it. */
	struct slab_sheaf *sh2 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 4);
	assert_ptr_equal(sh2, sh);
	assert_int_equal(ST(s, SHEAF_PREFILL_FAST), 1);
	assert_int_equal(kmem_cache_sheaf_size(sh2), CAP);
	/* A second borrower finds no spare: slow path. */
	struct slab_sheaf *sh3 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 4);
	assert_non_null(sh3);
	assert_ptr_not_equal(sh3, sh2);
	assert_int_equal(ST(s, SHEAF_PREFILL_SLOW), 2);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh2);     /* spare */
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh3);     /* barn, topped up */
	assert_int_equal(ST(s, SHEAF_RETURN_FAST), 2);
	assert_int_equal(ST(s, SHEAF_RETURN_SLOW), 1);
	assert_int_equal(ST(s, BARN_PUT), 1);
	free_all(s, p, CAP);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	assert_int_equal(sheaf_cache_slabs(s), 0);
	kmem_cache_destroy(s);
}

static bool recycles(struct kmem_cache *s)
{
	struct sheaf_cache_limits l;
	assert_int_equal(sheaf_cache_limits(s, &l), 0);
	return l.adaptive;
}

/*
 * Recycling first (an adaptive cache, test_prefill_adaptive): a prefill
 * whose spare is short (after the top-up from main) takes a full sheaf
 * from the barn rather than objects from slabs, and a returned sheaf is
 * pooled with the slot's spare (the full one of the two goes to the barn)
 * rather than refilled from slabs.  With SHEAF_ADAPTIVE=0 the same steps
 * give the kernel's counters: the short spare and the returned sheaf are
 * refilled from slabs, the barn's full sheaf stays where it is.
 */
static void test_prefill_recycles_barn(void **state)
{
	struct kmem_cache *s = make("pf-recycle", CAP, 0);
	bool rec = recycles(s);
	struct slab_sheaf *sh1 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
	struct slab_sheaf *sh2 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
	assert_non_null(sh1);
	assert_non_null(sh2);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh1);	/* the spare */
	/* pooled (one full to the barn), or (kernel) full to the barn */
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh2);
	assert_int_equal(ST(s, BARN_PUT), 1);
	assert_int_equal(ST(s, SHEAF_REFILL), 2 * CAP);
	struct slab_sheaf *sh3 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
	assert_ptr_equal(sh3, rec ? sh2 : sh1);		/* the spare */
	void *p[CAP];
	drain(s, sh3, p, CAP - 1);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh3);	/* spare, 1 object */
	uint64_t refill = ST(s, SHEAF_REFILL), get = ST(s, BARN_GET);
	struct slab_sheaf *sh4 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
	assert_non_null(sh4);
	assert_int_equal(kmem_cache_sheaf_size(sh4), CAP);
	if (rec) {
		assert_int_equal(ST(s, SHEAF_REFILL), refill);	/* nothing from slabs */
		assert_int_equal(ST(s, BARN_GET), get + 1);
	} else {
		/* the spare, topped up from slabs; the barn not asked */
		assert_ptr_equal(sh4, sh1);
		assert_int_equal(ST(s, SHEAF_REFILL), refill + CAP - 1);
		assert_int_equal(ST(s, BARN_GET), get);
	}
	/* back: pooled with the 1-object spare, no refill and no flush; or
	 * (kernel) the spare */
	uint64_t flush = ST(s, SHEAF_FLUSH), put = ST(s, BARN_PUT);
	uint64_t fast = ST(s, SHEAF_RETURN_FAST);
	refill = ST(s, SHEAF_REFILL);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh4);
	assert_int_equal(ST(s, SHEAF_REFILL), refill);
	assert_int_equal(ST(s, SHEAF_FLUSH), flush);
	assert_int_equal(ST(s, BARN_PUT), put + rec);
	assert_int_equal(ST(s, SHEAF_RETURN_FAST), fast + !rec);
	if (!rec) {
		/* A second return finds the spare taken: topped up from slabs
		 * (CAP - 1 objects) and put into the barn. */
		struct slab_sheaf *sh5 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
		struct slab_sheaf *sh6 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 1);
		assert_ptr_equal(sh5, sh1);			/* the spare */
		void *q = kmem_cache_alloc_from_sheaf(s, GFP_NOWAIT, sh6);
		assert_non_null(q);
		kmem_cache_return_sheaf(s, GFP_KERNEL, sh5);	/* the spare */
		refill = ST(s, SHEAF_REFILL);
		put = ST(s, BARN_PUT);
		kmem_cache_return_sheaf(s, GFP_KERNEL, sh6);
		assert_int_equal(ST(s, SHEAF_REFILL), refill + 1);
		assert_int_equal(ST(s, BARN_PUT), put + 1);
		kmem_cache_free(s, q);
		/* An emptied sheaf returned to a slot with a spare: the kernel
		 * refills it whole and puts it into the barn. */
		struct slab_sheaf *sh7 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
		struct slab_sheaf *sh8 = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
		void *e[CAP];
		drain(s, sh7, e, CAP);
		kmem_cache_return_sheaf(s, GFP_KERNEL, sh8);	/* the spare */
		refill = ST(s, SHEAF_REFILL);
		put = ST(s, BARN_PUT);
		kmem_cache_return_sheaf(s, GFP_KERNEL, sh7);
		assert_int_equal(ST(s, SHEAF_REFILL), refill + CAP);
		assert_int_equal(ST(s, BARN_PUT), put + 1);
		free_all(s, e, CAP);
	}
	free_all(s, p, CAP - 1);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/* Above sheaf_capacity, or on a cache without sheaves (and a debug cache):
 * an oversize sheaf of exactly the request, flushed and freed on return. */
static void test_oversize(void **state)
{
	struct kmem_cache *caches[3] = {
		make("pf-over", CAP, 0),
		make("pf-classic", 0, 0),
		make("pf-debug", CAP, SLAB_RED_ZONE),
	};
	unsigned int want[3] = { CAP + 10, 7, 3 };
	for (int k = 0; k < 3; k++) {
		struct kmem_cache *s = caches[k];
		struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, want[k]);
		assert_non_null(sh);
		assert_int_equal(kmem_cache_sheaf_size(sh), want[k]);
		assert_int_equal(ST(s, SHEAF_PREFILL_OVERSIZE), 1);
		void *one = kmem_cache_alloc_from_sheaf(s, GFP_KERNEL, sh);
		assert_non_null(one);
		assert_int_equal(kmem_cache_sheaf_size(sh), want[k] - 1);
		assert_int_equal(ST(s, ALLOC_FROM_SHEAF), 1);
		assert_int_equal(ST(s, ALLOC_FASTPATH) + ST(s, ALLOC_SLOWPATH), 0);
		kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
		/* Only the one object taken is still in use. */
		assert_int_equal(sheaf_cache_objects_inuse(s), 1);
		/* The return flushed the rest to slabs: not user frees (the
		 * debug cache's checked frees included). */
		assert_int_equal(ST(s, SHEAF_FLUSH), want[k] - 1);
		assert_int_equal(ST(s, FREE_FASTPATH) + ST(s, FREE_SLOWPATH), 0);
		kmem_cache_free(s, one);
		assert_int_equal(ST(s, FREE_FASTPATH) + ST(s, FREE_SLOWPATH), 1);
		assert_int_equal(kmem_cache_shrink(s), 0);
		assert_int_equal(sheaf_cache_slabs(s), 0);
		kmem_cache_destroy(s);
	}
}

static void test_errors_and_zero(void **state)
{
	struct kmem_cache *s = make("pf-err", CAP, 0);
	errno = 0;
	assert_null(kmem_cache_prefill_sheaf(s, GFP_KERNEL, 0));
	assert_int_equal(errno, EINVAL);	/* as documented (found by fuzz_api) */
	errno = 0;
	assert_null(kmem_cache_prefill_sheaf(NULL, GFP_KERNEL, 4));
	assert_int_equal(errno, EINVAL);
	assert_null(kmem_cache_prefill_sheaf(s, 0x80000000u, 4));
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, NULL, 4), -EINVAL);
	struct slab_sheaf *none = NULL;
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, &none, 4), -EINVAL);
	assert_int_equal(kmem_cache_sheaf_size(NULL), 0);
	assert_null(kmem_cache_alloc_from_sheaf(s, GFP_KERNEL, NULL));
	kmem_cache_return_sheaf(s, GFP_KERNEL, NULL); /* no-op */

	/* __GFP_ZERO: dirty objects come back zeroed. */
	void *p[CAP];
	for (int i = 0; i < CAP; i++) {
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
		memset(p[i], 0xff, 96);
	}
	free_all(s, p, CAP);
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP);
	assert_non_null(sh);
	for (int i = 0; i < CAP; i++) {
		unsigned char *o = kmem_cache_alloc_from_sheaf(s, GFP_KERNEL | __GFP_ZERO, sh);
		assert_non_null(o);
		for (int b = 0; b < 96; b++)
			assert_int_equal(o[b], 0);
		p[i] = o;
	}
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	free_all(s, p, CAP);
	kmem_cache_destroy(s);
}

/* Refill: to capacity in place; beyond capacity a new sheaf; on failure the
 * old sheaf is untouched. */
static void test_refill(void **state)
{
	struct kmem_cache *s = make("pf-refill", CAP, 0);
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 4);
	assert_non_null(sh);
	void *p[CAP + 5];
	drain(s, sh, p, CAP - 2);
	assert_int_equal(kmem_cache_sheaf_size(sh), 2);
	struct slab_sheaf *same = sh;
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, &sh, 2), 0);
	assert_int_equal(kmem_cache_sheaf_size(sh), 2); /* already enough */
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, &sh, 10), 0);
	assert_ptr_equal(sh, same);
	assert_int_equal(kmem_cache_sheaf_size(sh), CAP); /* to full capacity */

	/* Failure keeps the old sheaf: pages and new sheaves both fail. */
	sheaf_inject_page_failures(0, -1);
	sheaf_inject_sheaf_failures(-1);
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, &sh, CAP + 1000), -ENOMEM);
	sheaf_inject_sheaf_failures(0);
	sheaf_inject_page_failures(0, 0);
	assert_ptr_equal(sh, same);
	assert_int_equal(kmem_cache_sheaf_size(sh), CAP);

	/* Beyond the capacity: replaced by an oversize sheaf. */
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, &sh, CAP + 5), 0);
	assert_ptr_not_equal(sh, same);
	assert_true(kmem_cache_sheaf_size(sh) >= CAP + 5);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	free_all(s, p, CAP - 2);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/*
 * The guarantee: after a successful prefill of N, N allocations from the
 * sheaf succeed with GFP_NOWAIT while every other path fails.
 */
static void test_guarantee(void **state)
{
	struct kmem_cache *s = make("pf-guarantee", CAP, 0);
	struct kmem_cache *other = make("pf-other", CAP, 0);
	unsigned int sizes[2] = { CAP, 3 * CAP };  /* regular and oversize */
	for (int k = 0; k < 2; k++) {
		unsigned int n = sizes[k];
		struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, n);
		assert_non_null(sh);
		sheaf_inject_page_failures(0, -1);
		sheaf_inject_sheaf_failures(-1);
		/* Another cache with nothing cached cannot allocate now. */
		assert_null(kmem_cache_alloc(other, GFP_NOWAIT));
		assert_null(kmalloc(100000, GFP_KERNEL));
		void **p = calloc(n, sizeof(*p));
		assert_non_null(p);
		for (unsigned int i = 0; i < n; i++)
			assert_non_null(p[i] = kmem_cache_alloc_from_sheaf(s, GFP_NOWAIT, sh));
		sheaf_inject_sheaf_failures(0);
		sheaf_inject_page_failures(0, 0);
		kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
		free_all(s, p, n);
		free(p);
	}
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
	kmem_cache_destroy(other);
}

/* Out of memory: NULL and nothing left allocated. */
static void test_prefill_oom(void **state)
{
	struct kmem_cache *s = make("pf-oom", CAP, 0);
	sheaf_inject_page_failures(0, -1);
	assert_null(kmem_cache_prefill_sheaf(s, GFP_KERNEL, 4));
	assert_null(kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP * 4));
	sheaf_inject_page_failures(0, 0);
	sheaf_inject_sheaf_failures(-1);
	assert_null(kmem_cache_prefill_sheaf(s, GFP_KERNEL, CAP * 4));
	sheaf_inject_sheaf_failures(0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_slabs(s), 0);
	kmem_cache_destroy(s);
}

/*
 * Sizes a cache cannot sensibly serve fail at once (EINVAL), with nothing
 * left behind: a UINT_MAX prefill used to map a 32 GiB sheaf and fill it
 * until the OOM killer came.
 */
static void test_prefill_limit(void **state)
{
	(void)state;
	struct kmem_cache *s = make("pf-limit", CAP, 0);
	static const unsigned int big[] = { UINT32_MAX, SHEAF_MAX_PREFILL + 1 };
	for (int i = 0; i < 2; i++) {
		errno = 0;
		assert_null(kmem_cache_prefill_sheaf(s, GFP_KERNEL, big[i]));
		assert_int_equal(errno, EINVAL);
	}
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 4);
	assert_non_null(sh);
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, &sh, UINT32_MAX),
			 -EINVAL);
	assert_true(kmem_cache_sheaf_size(sh) >= 4);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	/* The limit itself is served (an oversize sheaf). */
	sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, SHEAF_MAX_PREFILL);
	assert_non_null(sh);
	assert_int_equal(kmem_cache_sheaf_size(sh), SHEAF_MAX_PREFILL);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	kmem_cache_shrink(s);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

static struct kmem_cache *misuse_a, *misuse_b;

static void child_return_twice(void *arg)
{
	(void)arg;
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(misuse_a, GFP_KERNEL, 3);
	kmem_cache_return_sheaf(misuse_a, GFP_KERNEL, sh);
	kmem_cache_return_sheaf(misuse_a, GFP_KERNEL, sh);
}

static void child_alloc_after_return(void *arg)
{
	(void)arg;
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(misuse_a, GFP_KERNEL, 3);
	kmem_cache_return_sheaf(misuse_a, GFP_KERNEL, sh);
	kmem_cache_alloc_from_sheaf(misuse_a, GFP_KERNEL, sh);
}

static void child_alloc_wrong_cache(void *arg)
{
	(void)arg;
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(misuse_a, GFP_KERNEL, 3);
	/* With __GFP_ZERO this zeroed 256 bytes of a 96-byte object. */
	kmem_cache_alloc_from_sheaf(misuse_b, GFP_KERNEL | __GFP_ZERO, sh);
}

static void child_refill_wrong_cache(void *arg)
{
	(void)arg;
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(misuse_a, GFP_KERNEL, 3);
	kmem_cache_refill_sheaf(misuse_b, GFP_KERNEL, &sh, CAP);
}

/* Misuse of a lent sheaf is reported and aborts, like a double free. */
static void test_sheaf_misuse(void **state)
{
	(void)state;
	static const struct {
		void (*fn)(void *);
		const char *want;
	} cases[] = {
		{ child_return_twice, "kmem_cache_return_sheaf(): sheaf not lent out" },
		{ child_alloc_after_return,
		  "kmem_cache_alloc_from_sheaf(): sheaf not lent out" },
		{ child_alloc_wrong_cache,
		  "kmem_cache_alloc_from_sheaf(): sheaf of another cache" },
		{ child_refill_wrong_cache,
		  "kmem_cache_refill_sheaf(): sheaf of another cache" },
	};
	struct kmem_cache_args a = { .sheaf_capacity = CAP };
	misuse_a = kmem_cache_create("pf-misuse-a", 96, &a, 0);
	misuse_b = kmem_cache_create("pf-misuse-b", 256, &a, 0);
	assert_non_null(misuse_a);
	assert_non_null(misuse_b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct child_result r;
		run_in_child(cases[i].fn, NULL, &r);
		if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGABRT ||
		    !strstr(r.err, cases[i].want))
			fail_msg("case %zu: status 0x%x, stderr \"%s\"", i, r.status,
				 r.err);
	}
	kmem_cache_destroy(misuse_a);
	kmem_cache_destroy(misuse_b);
}

static void destroy_in_child(void *arg)
{
	kmem_cache_destroy(arg);
}

/*
 * Destroy with a prefilled sheaf lent out, even an empty one: reported,
 * and the cache kept for the sheaf's return (it used to be freed under
 * the sheaf, which then came back to freed metadata).
 */
static void test_destroy_with_lent_sheaf(void **state)
{
	(void)state;
	struct kmem_cache *s = make("pf-lent-destroy", CAP, 0);
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 2);
	assert_non_null(sh);
	void *objs[CAP + 1]; /* the sheaf's objects, then its NULL */
	unsigned int n = 0;
	while (n < CAP && (objs[n] = kmem_cache_alloc_from_sheaf(s, GFP_KERNEL, sh)))
		n++;
	assert_null(kmem_cache_alloc_from_sheaf(s, GFP_KERNEL, sh));
	for (unsigned int i = 0; i < n; i++)
		kmem_cache_free(s, objs[i]);
	struct child_result r;
	run_in_child(destroy_in_child, s, &r);
	assert_true(WIFEXITED(r.status));
	if (!strstr(r.err, "1 prefilled sheaves lent out; cache and its memory kept"))
		fail_msg("destroy with a lent sheaf: stderr [%s]", r.err);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	kmem_cache_destroy(s); /* now quietly */
}

int main(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	sheaf_stats_enable(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefill_fast_slow),
		cmocka_unit_test(test_prefill_recycles_barn),
		cmocka_unit_test(test_prefill_limit),
		cmocka_unit_test(test_sheaf_misuse),
		cmocka_unit_test(test_destroy_with_lent_sheaf),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_errors_and_zero),
		cmocka_unit_test(test_refill),
		cmocka_unit_test(test_guarantee),
		cmocka_unit_test(test_prefill_oom),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
