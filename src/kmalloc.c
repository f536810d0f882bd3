/* SPDX-License-Identifier: MIT */
/*
 * kmalloc.c - the kmalloc size classes as ordinary caches, and larger
 * requests straight from pages: runs of the page layer up to MAX_RUN_SIZE
 * (4 MiB, KMALLOC_MAX_SIZE).  Above that kmalloc() fails, as the kernel's;
 * the kv* family (the kernel's vmalloc fallback) and the malloc replacement
 * get a mapping of their own.  Freed runs of 16-64 KiB are kept for the
 * next allocation in the per-CPU run caches and their depot, and
 * kfree_nolock()'s runs wait on a stack: kmalloc_runs.c, whose inline
 * helpers (internal.h) this file's fast paths use.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const unsigned int kmalloc_sizes[] = {
	8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
};
#define NR_KMALLOC ARRAY_SIZE(kmalloc_sizes)

static struct kmem_cache *kmalloc_caches[NR_KMALLOC];

/*
 * The malloc replacement's own classes (NULL in libsheaf: kmalloc() keeps
 * the kernel's classes, and takes page runs above 8 KiB).  Above
 * KMALLOC_MAX_CACHE_SIZE, malloc-12k to malloc-32k: with sheaves, a
 * program's 8-32 KiB buffers take the inline paths of the small sizes
 * rather than a page run's descriptor at both ends (docs/MALLOC.md,
 * "8-32 KiB buffers").  Between the kernel's classes from 256 bytes up,
 * which double, one class at 1.5 times the one below (malloc-384 to
 * malloc-6k), so that no class is more than 1.5 times the one below it:
 * a block wastes at most a third of its class, not half, and a program's
 * sizes spread over twice as many sheaves (docs/MALLOC.md, "classes
 * between the kernel's").  A middle class m serves (m * 2 / 3, m].
 */
static const unsigned int malloc_mid_sizes[] = { 384, 768, 1536, 3072, 6144 };
static struct kmem_cache *malloc_mid_caches[ARRAY_SIZE(malloc_mid_sizes)];
static const unsigned int malloc_big_sizes[] = { 12288, 16384, 24576, 32768 };
static struct kmem_cache *malloc_big_caches[ARRAY_SIZE(malloc_big_sizes)];

/* kmalloc()'s limit is the largest page run, as the kernel's is its
 * largest buddy order. */
_Static_assert(KMALLOC_MAX_SIZE == MAX_RUN_SIZE,
	       "KMALLOC_MAX_SIZE is the largest page run");
/* The largest kvmalloc(): the kernel refuses more than INT_MAX bytes. */
#define KVMALLOC_MAX_SIZE ((size_t)INT_MAX)

/*
 * Whether the kmalloc caches get sheaves with the size-based capacity
 * (sheaf_auto_capacity()), as every kmalloc cache has in the kernel since
 * 7.0.  libsheaf itself leaves them on the classic path unless
 * SHEAF_DEFAULT_CAPACITY asks; the malloc replacement (preload.c, linked
 * only into libsheaf-malloc) overrides this weak definition with true.
 */
__attribute__((weak)) bool _sheaf_kmalloc_sheaves = false;
/* Where sheaves themselves come from: classic caches, never with sheaves. */
static struct kmem_cache *sheaf_store[NR_KMALLOC];

/* Index of the class for sizes 1..192, by (size - 1) / 8 (the kernel's table). */
static const uint8_t size_index[24] = {
	0, 1, 2, 2, 3, 3, 3, 3,          /*   8 ..  64 */
	4, 4, 4, 4,                      /*  72 ..  96 */
	5, 5, 5, 5,                      /* 104 .. 128 */
	6, 6, 6, 6, 6, 6, 6, 6,          /* 136 .. 192 */
};

static inline unsigned int kmalloc_index(size_t size)
{
	if (size <= 192)
		return size_index[(size - 1) / 8];
	/* 256 -> 7, 512 -> 8, ... 8192 -> 12 */
	unsigned int lg = 64 - (unsigned int)__builtin_clzl(size - 1);
	return lg - 1;
}

/* One of the malloc replacement's own classes, with the kmalloc
 * classes' args; dies if it cannot be made, as they do. */
static struct kmem_cache *malloc_class_create(const char *name, unsigned int size,
					      struct kmem_cache_args *args)
{
	args->sheaf_capacity = MAX(sheaf_auto_capacity(size),
				   (unsigned int)_sheaf_config.kmalloc_capacity);
	/* Past a page, the free pointer in the first page, which the
	 * program wrote (not in the middle: a page it may never have
	 * touched); the kernel's place otherwise. */
	args->use_freeptr_offset = size > PAGE_SIZE;
	args->freeptr_offset = 0;
	struct kmem_cache *s = _sheaf_cache_create(name, size, args, 0, CACHE_KMALLOC);
	if (!s) {
		fprintf(stderr, "sheaf: cannot create %s\n", name);
		_sheaf_die();
	}
	return s;
}

void _sheaf_kmalloc_init(void)
{
	static const char *names[NR_KMALLOC] = {
		"kmalloc-8", "kmalloc-16", "kmalloc-32", "kmalloc-64",
		"kmalloc-96", "kmalloc-128", "kmalloc-192", "kmalloc-256",
		"kmalloc-512", "kmalloc-1k", "kmalloc-2k", "kmalloc-4k",
		"kmalloc-8k",
	};
	struct kmem_cache_args args = { 0 };
	args.align = ARCH_KMALLOC_MINALIGN;
	/* Sheaf storage first: kmalloc caches may have sheaves. */
	for (unsigned int i = 0; i < NR_KMALLOC; i++) {
		char sname[32];
		snprintf(sname, sizeof(sname), "sheaf-store-%u", kmalloc_sizes[i]);
		sheaf_store[i] = _sheaf_cache_create(sname, kmalloc_sizes[i], &args, 0,
						     CACHE_INTERNAL);
		if (!sheaf_store[i]) {
			fprintf(stderr, "sheaf: cannot create %s\n", sname);
			_sheaf_die();
		}
	}
	for (unsigned int i = 0; i < NR_KMALLOC; i++) {
		/* The size-based capacity, raised to SHEAF_KMALLOC_CAPACITY (the
		 * kernel's args->sheaf_capacity: a minimum). */
		args.sheaf_capacity = _sheaf_kmalloc_sheaves
			? MAX(sheaf_auto_capacity(kmalloc_sizes[i]),
			      (unsigned int)_sheaf_config.kmalloc_capacity) : 0;
		kmalloc_caches[i] = _sheaf_cache_create(names[i], kmalloc_sizes[i],
							&args, 0, CACHE_KMALLOC);
		if (!kmalloc_caches[i]) {
			fprintf(stderr, "sheaf: cannot create %s\n", names[i]);
			_sheaf_die();
		}
	}
	for (unsigned int i = 0; _sheaf_kmalloc_sheaves && i < ARRAY_SIZE(malloc_mid_sizes); i++) {
		char name[32];
		unsigned int size = malloc_mid_sizes[i];
		if (size % 1024)
			snprintf(name, sizeof(name), "malloc-%u", size);
		else
			snprintf(name, sizeof(name), "malloc-%uk", size >> 10);
		malloc_mid_caches[i] = malloc_class_create(name, size, &args);
	}
	for (unsigned int i = 0; _sheaf_kmalloc_sheaves && i < ARRAY_SIZE(malloc_big_sizes); i++) {
		char name[32];
		snprintf(name, sizeof(name), "malloc-%uk", malloc_big_sizes[i] >> 10);
		malloc_big_caches[i] = malloc_class_create(name, malloc_big_sizes[i], &args);
	}
	/* The large runs' caches: only where the classes have sheaves. */
	if (_sheaf_kmalloc_sheaves)
		_sheaf_run_cache_init();
}


SHEAF_EXPORT size_t kmalloc_size_roundup(size_t size)
{
	if (size == 0)
		return 0;
	if (size <= KMALLOC_MAX_CACHE_SIZE)
		return kmalloc_sizes[kmalloc_index(size)];
	if (size <= KMALLOC_MAX_SIZE)
		return PAGE_SIZE << get_order(size);
	return size; /* the kernel's answer where kmalloc() fails */
}

/* A mapping of its own for size bytes (zeroed, as every fresh mapping). */
static void *kmalloc_huge(size_t size, gfp_t gfp)
{
	/* Mapping may block: only for callers that allow it, or that must
	 * not fail (__GFP_NOFAIL, the kernel's rule over NOWAIT). */
	if (!(gfpflags_allow_blocking(gfp) || (gfp & __GFP_NOFAIL)))
		return NULL;
	return _sheaf_huge_alloc(size, 0, gfp);
}

static void *kmalloc_large(size_t size, gfp_t gfp, int node)
{
	if (size > MAX_RUN_SIZE)
		return kmalloc_huge(size, gfp);
	unsigned int order = get_order(size);
	struct slab *d = run_cache_get(order, node);
	if (!d) {
		large_drain_slow();
		d = _sheaf_pages_alloc(order,
			node == NUMA_NO_NODE ? sheaf_node() : node, gfp);
	}
	if (!d)
		return NULL;
	__atomic_store_n(&d->flags, PG_LARGE, __ATOMIC_RELEASE);
	void *p = slab_address(d);
	if (gfp & __GFP_ZERO)
		memset(p, 0, size);
	return p;
}

/* The kmalloc cache serving size (1..KMALLOC_MAX_CACHE_SIZE), after init. */
struct kmem_cache *_sheaf_kmalloc_cache(size_t size)
{
	return kmalloc_caches[kmalloc_index(size)];
}

/* The malloc replacement's cache for size (1..MALLOC_MAX_CACHED), after
 * init: its middle class when size is in one's range, else the kmalloc
 * class; above KMALLOC_MAX_CACHE_SIZE malloc-12k to malloc-32k (NULL
 * without the malloc replacement, or past them). */
struct kmem_cache *_sheaf_malloc_cache(size_t size)
{
	if (size <= KMALLOC_MAX_CACHE_SIZE) {
		for (unsigned int i = 0; i < ARRAY_SIZE(malloc_mid_sizes); i++)
			if (size <= malloc_mid_sizes[i]) {
				if (malloc_mid_caches[i] &&
				    size > malloc_mid_sizes[i] / 3 * 2)
					return malloc_mid_caches[i];
				break;
			}
		return kmalloc_caches[kmalloc_index(size)];
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(malloc_big_sizes); i++)
		if (size <= malloc_big_sizes[i])
			return malloc_big_caches[i];
	return NULL;
}

/* sheaf_init(), then whether gfp and node are valid (else errno EINVAL). */
static inline bool kmalloc_args_ok(gfp_t gfp, int node)
{
	sheaf_init();
	if (unlikely(!sheaf_gfp_ok(gfp) ||
		     (node != NUMA_NO_NODE && (node < 0 || node >= (int)_sheaf_nr_nodes)))) {
		errno = EINVAL;
		return false;
	}
	return true;
}

/* kmalloc() of up to max bytes (KMALLOC_MAX_SIZE, or HUGE_MAX_SIZE for
 * the malloc replacement, which maps above KMALLOC_MAX_SIZE). */
static inline void *do_kmalloc(size_t size, gfp_t gfp, int node, size_t max)
{
	if (unlikely(!kmalloc_args_ok(gfp, node)))
		return NULL;
	if (unlikely(size == 0))
		return ZERO_SIZE_PTR;
	if (likely(size <= KMALLOC_MAX_CACHE_SIZE)) {
		struct kmem_cache *s = kmalloc_caches[kmalloc_index(size)];
		return _sheaf_slab_alloc(s, gfp, node);
	}
	if (unlikely(size > max))
		return NULL;
	void *p;
	for (;;) {
		p = kmalloc_large(size, gfp, node);
		if (p || !(gfp & __GFP_NOFAIL))
			break;
		_sheaf_nofail_wait();
	}
	return p;
}

/* The malloc replacement's: its classes up to MALLOC_MAX_CACHED, then
 * page runs and huge spans. */
void *_sheaf_kmalloc(size_t size, gfp_t gfp)
{
	if (size && size <= MALLOC_MAX_CACHED) {
		struct kmem_cache *s = _sheaf_malloc_cache(size);
		if (s && likely(kmalloc_args_ok(gfp, NUMA_NO_NODE)))
			return _sheaf_slab_alloc(s, gfp, NUMA_NO_NODE);
	}
	return do_kmalloc(size, gfp, NUMA_NO_NODE, HUGE_MAX_SIZE);
}

/* A page run (or huge span) of size bytes, whatever the classes: page
 * aligned, for the malloc replacement's aligned allocations. */
void *_sheaf_kmalloc_pages(size_t size, gfp_t gfp)
{
	return do_kmalloc(MAX(size, KMALLOC_MAX_CACHE_SIZE + 1), gfp, NUMA_NO_NODE,
			  HUGE_MAX_SIZE);
}

void *_sheaf_kmalloc_internal(size_t size, gfp_t gfp)
{
	if (size <= KMALLOC_MAX_CACHE_SIZE)
		return _sheaf_slab_alloc(sheaf_store[kmalloc_index(size)], gfp,
					 NUMA_NO_NODE);
	return kmalloc_large(size, gfp, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kmalloc(size_t size, gfp_t gfp)
{
	return do_kmalloc(size, gfp, NUMA_NO_NODE, KMALLOC_MAX_SIZE);
}

SHEAF_EXPORT void *kmalloc_node(size_t size, gfp_t gfp, int node)
{
	return do_kmalloc(size, gfp, node, KMALLOC_MAX_SIZE);
}

SHEAF_EXPORT void *kzalloc(size_t size, gfp_t gfp)
{
	return do_kmalloc(size, gfp | __GFP_ZERO, NUMA_NO_NODE, KMALLOC_MAX_SIZE);
}

SHEAF_EXPORT void *kzalloc_node(size_t size, gfp_t gfp, int node)
{
	return do_kmalloc(size, gfp | __GFP_ZERO, node, KMALLOC_MAX_SIZE);
}

SHEAF_EXPORT void *kmalloc_array_node(size_t n, size_t size, gfp_t gfp, int node)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return do_kmalloc(bytes, gfp, node, KMALLOC_MAX_SIZE);
}

SHEAF_EXPORT void *kmalloc_array(size_t n, size_t size, gfp_t gfp)
{
	return kmalloc_array_node(n, size, gfp, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kcalloc(size_t n, size_t size, gfp_t gfp)
{
	return kmalloc_array_node(n, size, gfp | __GFP_ZERO, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kcalloc_node(size_t n, size_t size, gfp_t gfp, int node)
{
	return kmalloc_array_node(n, size, gfp | __GFP_ZERO, node);
}

/*
 * kvmalloc: kmalloc() up to KMALLOC_MAX_SIZE, a mapping of its own above,
 * or when a request above a page found no page run (the kernel falls back
 * to vmalloc() on the same terms; a page or less is kmalloc()'s alone).
 * The node is honoured by the kmalloc() part only.
 */
static void *do_kvmalloc(size_t size, gfp_t gfp, int node)
{
	if (unlikely(!kmalloc_args_ok(gfp, node)))
		return NULL;
	if (unlikely(size == 0))
		return ZERO_SIZE_PTR;
	void *p;
	if (size <= KMALLOC_MAX_SIZE) {
		/* Above a page the mapping is the fallback: kmalloc() tries
		 * once, without __GFP_NOFAIL's retries. */
		gfp_t kgfp = size > PAGE_SIZE ? gfp & ~__GFP_NOFAIL : gfp;
		p = do_kmalloc(size, kgfp, node, KMALLOC_MAX_SIZE);
		if (p || size <= PAGE_SIZE)
			return p;
	}
	if (unlikely(size > KVMALLOC_MAX_SIZE))
		return NULL;
	for (;;) {
		p = kmalloc_huge(size, gfp);
		if (p || !(gfp & __GFP_NOFAIL))
			break;
		_sheaf_nofail_wait();
	}
	return p;
}

SHEAF_EXPORT void *kvmalloc(size_t size, gfp_t gfp)
{
	return do_kvmalloc(size, gfp, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kvzalloc(size_t size, gfp_t gfp)
{
	return do_kvmalloc(size, gfp | __GFP_ZERO, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kvmalloc_node(size_t size, gfp_t gfp, int node)
{
	return do_kvmalloc(size, gfp, node);
}

SHEAF_EXPORT void *kvzalloc_node(size_t size, gfp_t gfp, int node)
{
	return do_kvmalloc(size, gfp | __GFP_ZERO, node);
}

SHEAF_EXPORT void *kvmalloc_array_node(size_t n, size_t size, gfp_t gfp, int node)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return do_kvmalloc(bytes, gfp, node);
}

SHEAF_EXPORT void *kvmalloc_array(size_t n, size_t size, gfp_t gfp)
{
	return kvmalloc_array_node(n, size, gfp, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kvcalloc(size_t n, size_t size, gfp_t gfp)
{
	return kvmalloc_array_node(n, size, gfp | __GFP_ZERO, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kvcalloc_node(size_t n, size_t size, gfp_t gfp, int node)
{
	return kvmalloc_array_node(n, size, gfp | __GFP_ZERO, node);
}

/* memset() the compiler may not drop as a dead store (memzero_explicit). */
static void zero_explicit(void *p, size_t n)
{
	memset(p, 0, n);
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

/* Free the live large run whose head is d (flags PG_LARGE): marked free
 * (flags 0, so that a second free is reported), into the run cache or
 * depot, else to the buddy lists.  kfree() and free()'s run path. */
static void large_free(struct slab *d)
{
	set_desc_flags(d, 0);
	if (!run_cache_put(d)) {
		large_drain_slow();
		_sheaf_pages_free(d);
	}
}

/* Free p, reporting `fn` as the function on a bad pointer. */
void _sheaf_kfree(const void *p, const char *fn, void *caller)
{
	if (unlikely(ZERO_OR_NULL_PTR(p)))
		return;
	struct slab *d = virt_to_slab(p);
	if (likely(d)) {
		uint8_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
		if (likely(flags & PG_SLAB)) {
			struct slab *slab = _sheaf_check_object_in(NULL, d, p, fn, caller);
			track_free(slab->slab_cache, (void *)p);
			_sheaf_slab_free_obj(slab->slab_cache, slab, (void *)p, fn,
					     caller);
			return;
		}
		if ((flags & PG_LARGE) && slab_address(d) == p) {
			large_free(d);
			return;
		}
	} else if (_sheaf_huge_free(p)) {
		return;
	}
	_sheaf_report_invalid(fn, "invalid pointer", p, NULL, caller);
}

/*
 * free()'s path for a pointer in an arena page that no sheaf cache owns
 * (libsheaf-malloc's page map said NULL, so the arena exists): the head
 * of a live large run is freed here, from its own page's descriptor by
 * arithmetic, without kfree()'s map load and checks in front (which its
 * run branch repeats: flags PG_LARGE, p the run's start).  Anything else
 * (slabs of caches without sheaves, tail pages, cached runs, bad
 * pointers) is left to kfree(), which reports what is wrong.
 */
SHEAF_NOINLINE bool _sheaf_kfree_run(const void *p)
{
	if ((uintptr_t)p & (PAGE_SIZE - 1))
		return false;
	struct slab *d = arena_page_desc(p);
	if (__atomic_load_n(&d->flags, __ATOMIC_ACQUIRE) != PG_LARGE)
		return false;
	large_free(d);
	return true;
}

SHEAF_EXPORT void kfree(const void *p)
{
	_sheaf_kfree(p, "kfree", __builtin_return_address(0));
}

SHEAF_EXPORT void kvfree(const void *p)
{
	_sheaf_kfree(p, "kvfree", __builtin_return_address(0));
}

/* ------------------------------------------------- any context (nolock) */

/*
 * kmalloc_nolock() and kfree_nolock(): callable where the thread may hold
 * any lock of the library, in userspace a signal handler (the kernel's
 * any context, NMI included).  Every lock on their paths is only tried
 * (sheaf_trylock()); they allocate no sheaf and flush none, map nothing,
 * and what kfree_nolock() cannot free at once is deferred (slab.c,
 * "deferred frees"; large runs above).  gfp: __GFP_ZERO and the kernel's
 * other two accepted bits, __GFP_ACCOUNT and __GFP_NO_OBJ_EXT (0 here),
 * which do nothing.
 */
#define KMALLOC_NOLOCK_GFP (__GFP_ZERO | __GFP_ACCOUNT | __GFP_NO_OBJ_EXT)

SHEAF_EXPORT void *kmalloc_nolock(size_t size, gfp_t gfp, int node)
{
	/* No sheaf_init(): it may wait (pthread_once).  The library's
	 * constructor has run it in every program but one whose own
	 * constructors come first. */
	if (unlikely(!__atomic_load_n(&_sheaf_initialized, __ATOMIC_ACQUIRE))) {
		errno = ENOMEM;
		return NULL;
	}
	if (unlikely((gfp & ~KMALLOC_NOLOCK_GFP) ||
		     (node != NUMA_NO_NODE && (node < 0 || node >= (int)_sheaf_nr_nodes)))) {
		errno = EINVAL;
		return NULL;
	}
	if (unlikely(size == 0))
		return ZERO_SIZE_PTR;
	if (unlikely(size > KMALLOC_MAX_CACHE_SIZE)) {
		errno = ENOMEM;
		return NULL;
	}
	unsigned int i = kmalloc_index(size);
	void *p = _sheaf_cache_alloc_nolock(kmalloc_caches[i], gfp, node);
	/* The class's locks busy (this thread may hold them): the next class
	 * up is another cache with locks of its own (the kernel's first
	 * kmalloc_nolock() retried so). */
	if (unlikely(!p) && i + 1 < NR_KMALLOC)
		p = _sheaf_cache_alloc_nolock(kmalloc_caches[i + 1], gfp, node);
	if (unlikely(!p))
		errno = ENOMEM;
	return p;
}

SHEAF_EXPORT void kfree_nolock(const void *p)
{
	void *caller = __builtin_return_address(0);
	if (unlikely(ZERO_OR_NULL_PTR(p)))
		return;
	struct slab *d = virt_to_slab(p);
	if (likely(d)) {
		uint8_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
		if (likely(flags & PG_SLAB)) {
			struct slab *slab = _sheaf_check_object_in(NULL, d, p,
								   "kfree_nolock", caller);
			track_free(slab->slab_cache, (void *)p);
			_sheaf_cache_free_nolock(slab->slab_cache, slab, (void *)p);
			return;
		}
		/* A large run: deferred whole (its free takes the page lock).
		 * The flags change by compare-and-swap, so that of two frees
		 * of one run (in two handlers) one is reported. */
		if ((flags & PG_LARGE) && slab_address(d) == p &&
		    __atomic_compare_exchange_n(&d->flags, &flags, 0, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			large_defer(d);
			return;
		}
	} else if (_sheaf_huge_size(p)) {
		_sheaf_report_invalid("kfree_nolock",
				      "a kvmalloc() mapping, not a kmalloc object:", p,
				      NULL, caller);
	}
	_sheaf_report_invalid("kfree_nolock", "invalid pointer", p, NULL, caller);
}

size_t _sheaf_ksize(const void *p, const char *fn, void *caller)
{
	if (ZERO_OR_NULL_PTR(p))
		return 0;
	struct slab *d = virt_to_slab(p);
	if (d) {
		uint8_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
		if (flags & PG_SLAB)
			return _sheaf_check_object_in(NULL, d, p, fn, caller)
				->slab_cache->object_size;
		if ((flags & PG_LARGE) && slab_address(d) == p)
			return PAGE_SIZE << d->order;
	} else {
		size_t sz = _sheaf_huge_size(p);
		if (sz)
			return sz;
	}
	_sheaf_report_invalid(fn, "invalid pointer", p, NULL, caller);
}

SHEAF_EXPORT size_t ksize(const void *p)
{
	return _sheaf_ksize(p, "ksize", __builtin_return_address(0));
}

SHEAF_EXPORT void kfree_sensitive(const void *p)
{
	void *caller = __builtin_return_address(0);
	if (ZERO_OR_NULL_PTR(p))
		return;
	zero_explicit((void *)p, _sheaf_ksize(p, "kfree_sensitive", caller));
	_sheaf_kfree(p, "kfree_sensitive", caller);
}

SHEAF_EXPORT void kvfree_sensitive(const void *p, size_t len)
{
	void *caller = __builtin_return_address(0);
	if (ZERO_OR_NULL_PTR(p))
		return;
	/* The kernel trusts len; zeroing past the block would corrupt the
	 * heap, so it is checked (and reported) here. */
	if (unlikely(len > _sheaf_ksize(p, "kvfree_sensitive", caller)))
		_sheaf_report_invalid("kvfree_sensitive",
				      "length beyond the block at", p, NULL, caller);
	zero_explicit((void *)p, len);
	_sheaf_kfree(p, "kvfree_sensitive", caller);
}

/*
 * krealloc() and kvrealloc(): p NULL allocates; size 0 frees p and gives
 * ZERO_SIZE_PTR; a size within p's usable size keeps p (__GFP_ZERO zeroes
 * what lies beyond size); else a new block, p copied into it and freed.
 */
static void *do_krealloc(const void *p, size_t size, gfp_t gfp, bool kv,
			 const char *fn, void *caller)
{
	if (ZERO_OR_NULL_PTR(p))
		return kv ? do_kvmalloc(size, gfp, NUMA_NO_NODE)
			  : do_kmalloc(size, gfp, NUMA_NO_NODE, KMALLOC_MAX_SIZE);
	if (size == 0) {
		_sheaf_kfree(p, fn, caller);
		return ZERO_SIZE_PTR;
	}
	size_t old = _sheaf_ksize(p, fn, caller);
	if (kv && old > MAX_RUN_SIZE && size > MAX_RUN_SIZE && size <= KVMALLOC_MAX_SIZE &&
	    !(gfp & __GFP_ZERO) && gfpflags_allow_blocking(gfp)) {
		/* a huge span: resized in place or its pages moved, no copy */
		void *q = _sheaf_huge_realloc((void *)p, size);
		if (q)
			return q;
	}
	if (size <= old) {
		if (gfp & __GFP_ZERO)
			memset((char *)p + size, 0, old - size);
		return (void *)p;
	}
	/* With __GFP_ZERO the new block comes zeroed: the tail beyond old
	 * stays so after the copy. */
	void *n = kv ? do_kvmalloc(size, gfp, NUMA_NO_NODE)
		     : do_kmalloc(size, gfp, NUMA_NO_NODE, KMALLOC_MAX_SIZE);
	if (!n)
		return NULL;
	memcpy(n, p, old);
	_sheaf_kfree(p, fn, caller);
	return n;
}

SHEAF_EXPORT void *krealloc(const void *p, size_t new_size, gfp_t gfp)
{
	return do_krealloc(p, new_size, gfp, false, "krealloc",
			   __builtin_return_address(0));
}

SHEAF_EXPORT void *krealloc_array(const void *p, size_t new_n, size_t new_size,
				  gfp_t gfp)
{
	size_t bytes;
	if (__builtin_mul_overflow(new_n, new_size, &bytes))
		return NULL;
	return do_krealloc(p, bytes, gfp, false, "krealloc_array",
			   __builtin_return_address(0));
}

SHEAF_EXPORT void *kvrealloc(const void *p, size_t size, gfp_t gfp)
{
	return do_krealloc(p, size, gfp, true, "kvrealloc",
			   __builtin_return_address(0));
}

/*
 * The start of the object that contains p (a slab object, a large kmalloc
 * run, a huge mapping), or NULL when p is not in libsheaf memory.
 */
void *_sheaf_obj_start(const void *p)
{
	struct slab *d = virt_to_slab(p);
	if (!d)
		return _sheaf_huge_start(p);
	uint8_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
	char *base = slab_address(d);
	if (flags & PG_LARGE)
		return base;
	if (!(flags & PG_SLAB))
		return NULL;
	struct kmem_cache *s = d->slab_cache;
	uint64_t off = (uint64_t)((const char *)p - base - s->red_left_pad);
	return base + s->red_left_pad + sheaf_obj_index(&s->hot, off) * s->size;
}

SHEAF_EXPORT int sheaf_obj_node(const void *obj)
{
	struct slab *d = virt_to_slab(obj);
	if (!d)
		return _sheaf_huge_node(obj);
	if (!(desc_flags(d) & (PG_SLAB | PG_LARGE)))
		return -1;
	return d->node;
}

SHEAF_EXPORT struct kmem_cache *sheaf_obj_cache(const void *obj)
{
	struct slab *d = virt_to_slab(obj);
	if (!d || !(desc_flags(d) & PG_SLAB))
		return NULL;
	return d->slab_cache;
}
