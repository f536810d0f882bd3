/* SPDX-License-Identifier: MIT */
/*
 * libsheaf's stand-in for the kernel's userspace slab shim
 * (tools/testing/shared/linux.c and tools/lib/slab.c), so that the radix
 * tree, XArray, IDA and maple tree test suites (tools/testing/radix-tree)
 * run on libsheaf's caches: per-CPU sheaves, barns, bulk allocation.
 *
 * Written from the behaviour the suites rely on, not from the shim's code:
 *
 *  - the globals nr_allocated (live objects of every cache), preempt_count,
 *    test_verbose, kmalloc_nr_allocated, kmalloc_verbose;
 *  - per cache: live objects (kmem_cache_nr_allocated), objects allocated
 *    since the last zeroing (kmem_cache_nr_tallocated), bytes live
 *    (kmem_cache_get_alloc), all kept always;
 *  - allocations without __GFP_DIRECT_RECLAIM stand for the kernel's atomic
 *    allocations, which a test controls with a budget
 *    (kmem_cache_set_non_kernel): each object charges one; with the budget
 *    at zero a single allocation fails and arms the callback
 *    (kmem_cache_set_callback), which the next single allocation of that
 *    cache runs with the private pointer (kmem_cache_set_private) before
 *    anything else; a bulk allocation charges object by object, fails as a
 *    whole (nothing allocated, the charge kept) and arms nothing;
 *  - kmalloc() without __GFP_DIRECT_RECLAIM fails; kfree() takes libsheaf
 *    memory back to libsheaf and anything else (the suites kfree() some
 *    malloc()ed items) to free();
 *  - a constructor wins over __GFP_ZERO, as in the shim.
 *
 * What is allocated comes from libsheaf: each kmem_cache_create() makes a
 * libsheaf cache with per-CPU sheaves (capacity: SHEAF_KTOOLS_CAPACITY, or
 * 32 for maple_node as the kernel gives it, or the kernel's automatic
 * size-based capacity), kmem_cache_alloc_bulk()/free_bulk() are libsheaf's,
 * kmem_cache_shrink() flushes the sheaves and barns.  An allocation within
 * the budget that libsheaf refuses without blocking (nothing cached, memory
 * to map) is retried as a blocking one: the budget, not libsheaf, decides
 * whether an atomic allocation may fail, as in the shim.
 *
 * Under AddressSanitizer (the harness's default build) libsheaf's memory is
 * not malloc()'s, so the layer tells ASan itself: an object is poisoned
 * before it goes back to libsheaf and unpoisoned when it comes out (and
 * before its constructor runs), so that the suites' use-after-free checks
 * stay as strict as on the shim, whose objects go back to free().
 *
 * At exit, with SHEAF_KTOOLS_STATS unset or 1, one "ktools-stats:" line per
 * cache goes to stderr with libsheaf's counters (docs/KERNEL.md); with
 * SHEAF_KTOOLS_STATS=full also every counter of every cache.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <assert.h>
#include <errno.h>
#include <stddef.h>

#include <linux/gfp.h>
#include <linux/slab.h>
#include <linux/radix-tree.h>

#include "ktools_bridge.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define KT_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define KT_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define KT_POISON(p, n) ((void)(p), (void)(n))
#define KT_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

int nr_allocated;
int preempt_count;
int test_verbose;
int kmalloc_nr_allocated;
int kmalloc_verbose;

struct kmem_cache {
	struct ksb_cache *sc;
	char *name;
	unsigned int size;
	unsigned int align;
	void (*ctor)(void *);
	unsigned int non_kernel;        /* budget of non-blocking objects */
	unsigned long nr_allocated;     /* live objects */
	unsigned long nr_tallocated;    /* allocated since the last zeroing */
	unsigned long nowait_retries;   /* budgeted, refused without blocking */
	bool exec_callback;
	void (*callback)(void *);
	void *private;
	struct kmem_cache *next;
};

static struct kmem_cache *ktools_caches;
/* The cache this thread is allocating from (for ktools_ctor()). */
static __thread struct kmem_cache *ktools_cur;
static bool ktools_stats_full;  /* SHEAF_KTOOLS_STATS=full: every counter */
static pthread_mutex_t ktools_lock = PTHREAD_MUTEX_INITIALIZER;

#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define SUB(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_RELAXED)

static unsigned int ktools_flags(gfp_t gfp)
{
	unsigned int f = 0;
	if (gfp & __GFP_ZERO)
		f |= KSB_ZERO;
	if (gfp & __GFP_DIRECT_RECLAIM)
		f |= KSB_BLOCK;
	if (gfp & __GFP_KSWAPD_RECLAIM)
		f |= KSB_KSWAPD;
	if (gfp & __GFP_NOWARN)
		f |= KSB_NOWARN;
	if (gfp & __GFP_NOFAIL)
		f |= KSB_NOFAIL;
	if (gfp & (__GFP_IO | __GFP_FS))
		f |= KSB_IOFS;
	if (gfp & __GFP_HIGH)
		f |= KSB_HIGH;
	return f;
}

/* Charge one object to the non-blocking budget; false when it is spent. */
static bool ktools_charge(struct kmem_cache *c)
{
	unsigned int v = __atomic_load_n(&c->non_kernel, __ATOMIC_RELAXED);
	do {
		if (!v)
			return false;
	} while (!__atomic_compare_exchange_n(&c->non_kernel, &v, v - 1, false,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return true;
}

static void ktools_count_alloc(struct kmem_cache *c, unsigned long n)
{
	ADD(&c->nr_allocated, n);
	ADD(&c->nr_tallocated, n);
	ADD(&nr_allocated, (int)n);
}

static void ktools_count_free(struct kmem_cache *c, unsigned long n)
{
	SUB(&c->nr_allocated, n);
	SUB(&nr_allocated, (int)n);
}

void kmem_cache_set_callback(struct kmem_cache *c, void (*callback)(void *))
{
	c->callback = callback;
}

void kmem_cache_set_private(struct kmem_cache *c, void *private)
{
	c->private = private;
}

void kmem_cache_set_non_kernel(struct kmem_cache *c, unsigned int val)
{
	__atomic_store_n(&c->non_kernel, val, __ATOMIC_RELAXED);
}

unsigned long kmem_cache_get_alloc(struct kmem_cache *c)
{
	return c->size * __atomic_load_n(&c->nr_allocated, __ATOMIC_RELAXED);
}

unsigned long kmem_cache_nr_allocated(struct kmem_cache *c)
{
	return __atomic_load_n(&c->nr_allocated, __ATOMIC_RELAXED);
}

unsigned long kmem_cache_nr_tallocated(struct kmem_cache *c)
{
	return __atomic_load_n(&c->nr_tallocated, __ATOMIC_RELAXED);
}

void kmem_cache_zero_nr_tallocated(struct kmem_cache *c)
{
	__atomic_store_n(&c->nr_tallocated, 0, __ATOMIC_RELAXED);
}

static unsigned int ktools_obj_flags(struct kmem_cache *c, gfp_t gfp)
{
	unsigned int f = ktools_flags(gfp);
	if (c->ctor)
		f &= ~KSB_ZERO;
	return f;
}

void *kmem_cache_alloc_lru(struct kmem_cache *c, struct list_lru *lru, int gfp)
{
	unsigned int f;
	void *p;

	if (c->exec_callback) {
		if (c->callback)
			c->callback(c->private);
		c->exec_callback = false;
	}
	if (!(gfp & __GFP_DIRECT_RECLAIM) && !ktools_charge(c)) {
		c->exec_callback = true;
		return NULL;
	}
	f = ktools_obj_flags(c, gfp);
	ktools_cur = c;
	p = ksb_alloc(c->sc, f);
	if (!p && !(f & KSB_BLOCK)) {
		ADD(&c->nowait_retries, 1);
		p = ksb_alloc(c->sc, f | KSB_BLOCK);
	}
	ktools_cur = NULL;
	if (!p)
		return NULL;
	KT_UNPOISON(p, c->size);
	ktools_count_alloc(c, 1);
	if (kmalloc_verbose)
		printf("Allocating %p from slab\n", p);
	return p;
}

void kmem_cache_free(struct kmem_cache *c, void *p)
{
	assert(p);
	ktools_count_free(c, 1);
	if (kmalloc_verbose)
		printf("Freeing %p to slab\n", p);
	KT_POISON(p, c->size);
	ksb_free(c->sc, p);
}

void kmem_cache_free_bulk(struct kmem_cache *c, size_t size, void **list)
{
	if (kmalloc_verbose)
		printf("Bulk free %p[0-%zu]\n", (void *)list, size - 1);
	for (size_t i = 0; i < size; i++) {
		assert(list[i]);
		KT_POISON(list[i], c->size);
	}
	ktools_count_free(c, size);
	ksb_free_bulk(c->sc, size, list);
}

int kmem_cache_alloc_bulk(struct kmem_cache *c, gfp_t gfp, size_t size,
			  void **p)
{
	unsigned int f;
	int n;

	if (kmalloc_verbose)
		printf("Bulk alloc %zu\n", size);
	if (!(gfp & __GFP_DIRECT_RECLAIM)) {
		for (size_t i = 0; i < size; i++)
			if (!ktools_charge(c))
				return 0;
	}
	f = ktools_obj_flags(c, gfp);
	ktools_cur = c;
	n = ksb_alloc_bulk(c->sc, f, size, p);
	if (!n && size && !(f & KSB_BLOCK)) {
		ADD(&c->nowait_retries, 1);
		n = ksb_alloc_bulk(c->sc, f | KSB_BLOCK, size, p);
	}
	ktools_cur = NULL;
	if (!n)
		return 0;
	for (size_t i = 0; i < size; i++)
		KT_UNPOISON(p[i], c->size);
	ktools_count_alloc(c, size);
	if (kmalloc_verbose)
		for (size_t i = 0; i < size; i++)
			printf("Allocating %p from slab\n", p[i]);
	return (int)size;
}

void kmem_cache_shrink(struct kmem_cache *c)
{
	ksb_shrink(c->sc);
}

/*
 * libsheaf runs a cache's constructor when it makes a slab, on memory that
 * may still be poisoned from an earlier life: unpoison it first.  The
 * cache is the one the calling thread is allocating from (ktools_cur), or
 * else the only cache with that constructor.
 */
static void ktools_ctor(void *obj)
{
	struct kmem_cache *c = ktools_cur, *i;

	if (!c || !c->ctor) {
		for (i = __atomic_load_n(&ktools_caches, __ATOMIC_ACQUIRE); i; i = i->next)
			if (i->ctor && i->sc == ksb_obj_cache(obj))
				c = i;
	}
	assert(c && c->ctor);
	KT_UNPOISON(obj, c->size);
	c->ctor(obj);
}

static unsigned int ktools_capacity(const char *name, unsigned int size)
{
	const char *e = getenv("SHEAF_KTOOLS_CAPACITY");
	if (e && *e) {
		char *end;
		unsigned long v = strtoul(e, &end, 10);
		if (!*end && v <= 1024)
			return (unsigned int)v;
		fprintf(stderr, "ktools: SHEAF_KTOOLS_CAPACITY=%s ignored (0..1024)\n", e);
	}
	if (!strcmp(name, "maple_node"))
		return 32;      /* lib/maple_tree.c since the kernel's sheaves */
	return ksb_auto_capacity(size);
}

static void ktools_report(void);

static void ktools_report_atexit(void)
{
	atexit(ktools_report);
}

static struct kmem_cache *ktools_create(const char *name, unsigned int size,
					unsigned int align, void (*ctor)(void *),
					unsigned int capacity)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct kmem_cache *c = calloc(1, sizeof(*c));
	const char *e = getenv("SHEAF_KTOOLS_STATS");
	bool stats = !e || strcmp(e, "0");

	ktools_stats_full = e && !strcmp(e, "full");

	if (stats) {
		ksb_stats_enable();
		pthread_once(&once, ktools_report_atexit);
	}
	if (!c || !(c->name = strdup(name)))
		abort();
	c->size = size;
	c->align = align;
	c->ctor = ctor;
	/* The lock orders this against other creations; ktools_ctor() runs
	 * only from allocations, after the cache is on the list. */
	pthread_mutex_lock(&ktools_lock);
	c->sc = ksb_cache_create(name, size, align, ctor ? ktools_ctor : NULL,
				 capacity);
	if (!c->sc) {
		/* SLAB_PANIC or not: the suites cannot go on without it */
		fprintf(stderr, "ktools: libsheaf refused cache %s (size %u, align %u)\n",
			name, size, align);
		abort();
	}
	c->next = ktools_caches;
	__atomic_store_n(&ktools_caches, c, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ktools_lock);
	return c;
}

#ifdef KTOOLS_HARNESS_CREATE_ARGS
/*
 * Harnesses since struct kmem_cache_args (kmem_cache_create() is then the
 * header's macro over this): the caller's sheaf_capacity, where it asks
 * for one, is the kernel's choice and wins over the layer's default.
 */
struct kmem_cache *__kmem_cache_create_args(const char *name, unsigned int size,
					    struct kmem_cache_args *args,
					    unsigned int flags)
{
	unsigned int cap = ktools_capacity(name, size);

	(void)flags;
	if (args->sheaf_capacity && !getenv("SHEAF_KTOOLS_CAPACITY"))
		cap = args->sheaf_capacity;
	return ktools_create(name, size, args->align, args->ctor, cap);
}
#else
struct kmem_cache *kmem_cache_create(const char *name, unsigned int size,
				     unsigned int align, unsigned int flags,
				     void (*ctor)(void *))
{
	(void)flags;    /* SLAB_PANIC, SLAB_RECLAIM_ACCOUNT */
	return ktools_create(name, size, align, ctor, ktools_capacity(name, size));
}
#endif

#ifdef KTOOLS_HARNESS_SHEAVES
/*
 * Harnesses with prefilled sheaves: the harness's struct slab_sheaf (its
 * kmem_cache_sheaf_size() reads ->size) fronts a libsheaf prefilled sheaf
 * kept just before it.  As in the shim, objects in a lent sheaf count as
 * allocated, and a prefill without __GFP_DIRECT_RECLAIM charges the budget
 * for every object, all or nothing.
 */
struct ktools_sheaf {
	struct ksb_sheaf *ls;
	struct slab_sheaf hs;   /* last: its objects[] is never used */
};

#define KT_SHEAF(h) ((struct ktools_sheaf *)((char *)(h) - offsetof(struct ktools_sheaf, hs)))

static bool ktools_charge_n(struct kmem_cache *c, gfp_t gfp, unsigned int n)
{
	if (gfp & __GFP_DIRECT_RECLAIM)
		return true;
	for (unsigned int i = 0; i < n; i++)
		if (!ktools_charge(c))
			return false;
	return true;
}

static void ktools_sheaf_sync(struct kmem_cache *c, struct ktools_sheaf *ks)
{
	ks->hs.cache = c;
	ks->hs.size = ksb_sheaf_size(ks->ls);
}

struct slab_sheaf *kmem_cache_prefill_sheaf(struct kmem_cache *c, gfp_t gfp,
					    unsigned int size)
{
	struct ktools_sheaf *ks;
	unsigned int f = ktools_obj_flags(c, gfp);

	if (!size || !ktools_charge_n(c, gfp, size))
		return NULL;
	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return NULL;
	ktools_cur = c;
	ks->ls = ksb_prefill_sheaf(c->sc, f, size);
	if (!ks->ls && !(f & KSB_BLOCK)) {
		ADD(&c->nowait_retries, 1);
		ks->ls = ksb_prefill_sheaf(c->sc, f | KSB_BLOCK, size);
	}
	ktools_cur = NULL;
	if (!ks->ls) {
		free(ks);
		return NULL;
	}
	ktools_sheaf_sync(c, ks);
	ks->hs.capacity = ks->hs.size > ksb_capacity(c->sc) ? ks->hs.size
							    : ksb_capacity(c->sc);
	ktools_count_alloc(c, ks->hs.size);
	return &ks->hs;
}

int kmem_cache_refill_sheaf(struct kmem_cache *c, gfp_t gfp,
			    struct slab_sheaf **sheafp, unsigned int size)
{
	struct ktools_sheaf *ks;
	unsigned int before, f = ktools_obj_flags(c, gfp);
	int ret;

	if (!sheafp || !*sheafp)
		return -EINVAL;
	ks = KT_SHEAF(*sheafp);
	before = ksb_sheaf_size(ks->ls);
	if (before >= size)
		return 0;
	if (!ktools_charge_n(c, gfp, size - before))
		return -ENOMEM;
	ktools_cur = c;
	ret = ksb_refill_sheaf(c->sc, f, &ks->ls, size);
	if (ret == -ENOMEM && !(f & KSB_BLOCK)) {
		ADD(&c->nowait_retries, 1);
		ret = ksb_refill_sheaf(c->sc, f | KSB_BLOCK, &ks->ls, size);
	}
	ktools_cur = NULL;
	if (ret)
		return ret;
	ktools_sheaf_sync(c, ks);
	if (ks->hs.size > ks->hs.capacity)
		ks->hs.capacity = ks->hs.size;
	ktools_count_alloc(c, ks->hs.size - before);
	return 0;
}

void kmem_cache_return_sheaf(struct kmem_cache *c, gfp_t gfp,
			     struct slab_sheaf *sheaf)
{
	struct ktools_sheaf *ks;

	if (!sheaf)
		return;
	ks = KT_SHEAF(sheaf);
	ktools_count_free(c, ksb_sheaf_size(ks->ls));
	ksb_return_sheaf(c->sc, ktools_flags(gfp) | KSB_BLOCK, ks->ls);
	free(ks);
}

void *kmem_cache_alloc_from_sheaf(struct kmem_cache *c, gfp_t gfp,
				  struct slab_sheaf *sheaf)
{
	struct ktools_sheaf *ks = KT_SHEAF(sheaf);
	void *p = ksb_alloc_from_sheaf(c->sc, ktools_obj_flags(c, gfp), ks->ls);

	ks->hs.size = ksb_sheaf_size(ks->ls);
	if (p) {
		KT_UNPOISON(p, c->size);
		if (kmalloc_verbose)
			printf("Allocating %p from sheaf\n", p);
	}
	return p;
}
#endif

/* ---------------------------------------------------------------- kmalloc */

void *kmalloc(size_t size, gfp_t gfp)
{
	void *p;

	if (!(gfp & __GFP_DIRECT_RECLAIM))
		return NULL;
	p = ksb_kmalloc(size, ktools_flags(gfp));
	if (!p)
		return NULL;
	KT_UNPOISON(p, ksb_ksize(p));
	ADD(&kmalloc_nr_allocated, 1);
	if (kmalloc_verbose)
		printf("Allocating %p from malloc\n", p);
	return p;
}

void kfree(void *p)
{
	if (!p)
		return;
	SUB(&kmalloc_nr_allocated, 1);
	if (kmalloc_verbose)
		printf("Freeing %p to malloc\n", p);
	/* kmalloc(0)'s ZERO_SIZE_PTR (16) and every libsheaf block go back to
	 * libsheaf; what the suites malloc()ed and kfree() goes to free(). */
	if ((uintptr_t)p <= 16) {
		ksb_kfree(p);
	} else if (ksb_owns(p)) {
		KT_POISON(p, ksb_ksize(p));
		ksb_kfree(p);
	}
	else
		free(p);
}

/* ---------------------------------------------------------- self-test */

/*
 * The maple suite calls this first to check the slab stand-in: single and
 * bulk allocations and frees in a sheaf-sized and an aligned cache, the
 * live counts, the budget and the callback, and libsheaf's prefilled
 * sheaves (not part of this harness's API, exercised here).
 */
static int ktools_cb_runs;
static void ktools_cb(void *priv)
{
	ktools_cb_runs += (priv == &ktools_cb_runs);
}

void test_kmem_cache_bulk(void)
{
	static struct kmem_cache *tc, *tc2;
	void *list[64];
	int i;

	tc = kmem_cache_create("test_cache", 256, 0, SLAB_PANIC, NULL);
	for (i = 0; i < 5; i++)
		list[i] = kmem_cache_alloc(tc, __GFP_DIRECT_RECLAIM);
	assert(kmem_cache_nr_allocated(tc) == 5);
	for (i = 0; i < 5; i++)
		kmem_cache_free(tc, list[i]);
	assert(kmem_cache_nr_allocated(tc) == 0);

	assert(kmem_cache_alloc_bulk(tc, __GFP_DIRECT_RECLAIM, 5, list) == 5);
	for (i = 0; i < 5; i++)
		memset(list[i], i, 256);
	kmem_cache_free_bulk(tc, 5, list);

	/* more than a sheaf: refills and flushes */
	assert(kmem_cache_alloc_bulk(tc, __GFP_DIRECT_RECLAIM | __GFP_ZERO, 64, list) == 64);
	for (i = 0; i < 64; i++)
		assert(((char *)list[i])[255] == 0);
	assert(kmem_cache_nr_allocated(tc) == 64);
	kmem_cache_free_bulk(tc, 64, list);
	assert(kmem_cache_nr_allocated(tc) == 0);

	/* the non-blocking budget: per object, bulk all or nothing */
	kmem_cache_set_non_kernel(tc, 3);
	assert(kmem_cache_alloc_bulk(tc, GFP_NOWAIT, 4, list) == 0);
	assert(kmem_cache_nr_allocated(tc) == 0);
	kmem_cache_set_non_kernel(tc, 2);
	assert(kmem_cache_alloc_bulk(tc, GFP_NOWAIT, 2, list) == 2);
	kmem_cache_free_bulk(tc, 2, list);
	kmem_cache_set_callback(tc, ktools_cb);
	kmem_cache_set_private(tc, &ktools_cb_runs);
	assert(kmem_cache_alloc(tc, GFP_NOWAIT) == NULL);
	list[0] = kmem_cache_alloc(tc, __GFP_DIRECT_RECLAIM);
	assert(list[0] && ktools_cb_runs == 1);
	kmem_cache_free(tc, list[0]);
	kmem_cache_set_callback(tc, NULL);
	kmem_cache_set_private(tc, NULL);

	/* aligned caches keep their alignment on every path */
	tc2 = kmem_cache_create("test_cache2", 128, 128, SLAB_PANIC, NULL);
	assert(kmem_cache_alloc_bulk(tc2, __GFP_DIRECT_RECLAIM, 10, list) == 10);
	for (i = 0; i < 10; i++)
		assert(((uintptr_t)list[i] & 127) == 0);
	kmem_cache_free_bulk(tc2, 10, list);
	assert(kmem_cache_nr_allocated(tc2) == 0);

	/* libsheaf's prefilled sheaves, under the maple tree's pattern */
	if (ksb_capacity(tc->sc)) {
		struct ksb_sheaf *sh = ksb_prefill_sheaf(tc->sc, KSB_BLOCK, 20);
		assert(sh && ksb_sheaf_size(sh) >= 20);
		for (i = 0; i < 20; i++) {
			assert((list[i] = ksb_alloc_from_sheaf(tc->sc, 0, sh)));
			KT_UNPOISON(list[i], 256);
			memset(list[i], 0xa5, 256);
			KT_POISON(list[i], 256);
		}
		assert(ksb_refill_sheaf(tc->sc, KSB_BLOCK, &sh, 40) == 0);
		assert(ksb_sheaf_size(sh) >= 40);
		ksb_return_sheaf(tc->sc, KSB_BLOCK, sh);
		ksb_free_bulk(tc->sc, 20, list);
	}
	kmem_cache_shrink(tc);
	kmem_cache_shrink(tc2);
}

/* ------------------------------------------------------------ at exit */

static void ktools_report(void)
{
	struct kmem_cache *c;

	if (!ksb_stats_enabled())
		return;
	pthread_mutex_lock(&ktools_lock);
	for (c = ktools_caches; c; c = c->next) {
		ksb_stats_line(stderr, c->sc, c->name);
		fprintf(stderr, "ktools-cache: cache=%s live=%lu nowait_retries=%lu\n",
			c->name, c->nr_allocated, c->nowait_retries);
		if (ktools_stats_full) {
			fprintf(stderr, "ktools-counters: cache=%s\n", c->name);
			ksb_stats_print(stderr, c->sc);
		}
	}
	pthread_mutex_unlock(&ktools_lock);
}
