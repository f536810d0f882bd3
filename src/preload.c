/* SPDX-License-Identifier: MIT */
/*
 * preload.c - libsheaf-malloc: the whole process's malloc family on the
 * kmalloc caches, every one of them with sheaves of the kernel's size-based
 * capacity.  Linked only into libsheaf-malloc.so (for LD_PRELOAD, or as a
 * dependency) and libsheaf-malloc.a; libsheaf.so users keep glibc's malloc.
 *
 * Sizes:
 *   0 .. 16        kmalloc-16 (every pointer is 16-byte aligned, as glibc's
 *                  MALLOC_ALIGNMENT and alignof(max_align_t) on x86-64;
 *                  kmalloc-8 serves kmalloc() only)
 *   17 .. 8192     the kmalloc class (32, 64, 96, 128, 192, 256, ... 8192),
 *                  or from 256 bytes up the class of the replacement's own
 *                  between two of them (malloc-384, -768, -1536, -3k, -6k)
 *   .. 32 KiB      malloc-12k to malloc-32k: classes of the malloc replacement
 *                  only (kmalloc() takes page runs there, as the kernel's)
 *   .. 4 MiB       a page run of the buddy allocator (a power of two of pages)
 *   above          a mapping of its own, unmapped by free()
 *
 * Fast paths: malloc is the table malloc_pcs[(size + 15) / 16] (the
 * class's slots) and the inline pop of <sheaf/slab.h> that keeps the
 * slot's top hint (sheaf_pcs_pop_with(..., true): malloc()'s sizes
 * interleave many caches, struct sheaf_pcs); free reads the slots from
 * the arena's page map, checks the object boundary against their info
 * line and pushes onto the slot's main sheaf, keeping the hint (free()
 * below).  Everything else goes to kmalloc.c's slow paths
 * (_sheaf_kmalloc, _sheaf_kfree, _sheaf_ksize), which report a pointer
 * the library does not own in one line and abort, as glibc does.
 *
 * Start-up: the table is all NULL until sheaf_init() has run, so the first
 * allocation of the process takes the slow path, which runs sheaf_init().
 * What sheaf_init() itself allocates through the C library (libnuma,
 * pthread_atfork) is served, while _sheaf_in_init is set on that thread,
 * from a bump area in .bss (boot_area); such blocks are never reused, and
 * free() ignores them.  Fork: sheaf_init() registers libsheaf's
 * pthread_atfork handlers (init.c), which take every lock the
 * allocator has before fork() and release them in both processes, so the
 * child can allocate at once.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* glibc's MALLOC_ALIGNMENT on x86-64: 2 * sizeof(size_t), max_align_t. */
#define MALLOC_ALIGN 16ul
#define MALLOC_IDX(size) (((size) + MALLOC_ALIGN - 1) / MALLOC_ALIGN)
#define NR_MALLOC_IDX (MALLOC_IDX(MALLOC_MAX_CACHED) + 1)

/*
 * malloc_cache[MALLOC_IDX(size)]: the cache serving size 0..32768.
 * Every entry is NULL until malloc_setup() filled the table after
 * sheaf_init(): the fast path's NULL test is also its "initialised" test.
 * Written once (idempotently) with release stores; read with acquire.
 */
static struct kmem_cache *malloc_cache[NR_MALLOC_IDX];

/*
 * malloc_pcs[i]: malloc_cache[i]->hot.inline_pcs, what the fast path pops
 * from (NULL: take malloc_slow(), which also initialises).  Follows the
 * caches' inline switch (statistics, failure injection) through
 * _sheaf_inline_changed().  One load instead of two on every malloc().
 */
static struct sheaf_pcs *malloc_pcs[NR_MALLOC_IDX];

static void malloc_pcs_refresh(void)
{
	for (size_t i = 0; i < NR_MALLOC_IDX; i++) {
		struct kmem_cache *s = __atomic_load_n(&malloc_cache[i], __ATOMIC_ACQUIRE);
		__atomic_store_n(&malloc_pcs[i],
				 s ? __atomic_load_n(&s->hot.inline_pcs, __ATOMIC_ACQUIRE) : NULL,
				 __ATOMIC_RELEASE);
	}
}

void _sheaf_inline_changed(void)
{
	malloc_pcs_refresh();
}

/* Every kmalloc cache gets sheaves (overrides kmalloc.c's weak false). */
bool _sheaf_kmalloc_sheaves = true;
static bool malloc_ready;
static int malloc_verbose; /* SHEAF_MALLOC_VERBOSE */

static void malloc_report(const char *when);

/* ------------------------------------------------------------- boot area */

/*
 * boot_area - allocations made while sheaf_init() runs on this thread.
 * Invariant: boot_used <= BOOT_SIZE; every block [p, p + size) is preceded
 * by a struct boot_hdr holding size; blocks are never freed or reused, so
 * their memory stays zero until written (calloc needs nothing more).
 */
#define BOOT_SIZE (256u << 10)
static char boot_area[BOOT_SIZE] __attribute__((aligned(PAGE_SIZE)));
static size_t boot_used;

struct boot_hdr {
	size_t size;
	size_t pad;
};

static inline bool is_boot(const void *p)
{
	return (uintptr_t)p - (uintptr_t)boot_area < BOOT_SIZE;
}

static void *boot_alloc(size_t size, size_t align)
{
	size_t old = __atomic_load_n(&boot_used, __ATOMIC_RELAXED), start, end;
	if (align < MALLOC_ALIGN)
		align = MALLOC_ALIGN;
	do {
		start = ALIGN_UP(old + sizeof(struct boot_hdr), align);
		if (size > BOOT_SIZE || start + size > BOOT_SIZE) {
			static const char msg[] =
				"libsheaf-malloc: start-up area exhausted\n";
			ssize_t r = write(2, msg, sizeof(msg) - 1);
			(void)r;
			errno = ENOMEM;
			return NULL;
		}
		end = ALIGN_UP(start + size, MALLOC_ALIGN);
	} while (!__atomic_compare_exchange_n(&boot_used, &old, end, false,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	struct boot_hdr *h = (struct boot_hdr *)(boot_area + start) - 1;
	h->size = size;
	return boot_area + start;
}

static inline size_t boot_size(const void *p)
{
	return ((const struct boot_hdr *)p - 1)->size;
}

/* ----------------------------------------------------------------- setup */

/*
 * After sheaf_init(): fill the size table.  Idempotent (threads racing
 * here store the same values); nothing here allocates.
 */
static SHEAF_NOINLINE void malloc_setup(void)
{
	sheaf_init();
	bool first = !__atomic_load_n(&malloc_ready, __ATOMIC_ACQUIRE);
	malloc_verbose = _sheaf_config.malloc_verbose; /* read at start-up */
	for (size_t i = 0; i < NR_MALLOC_IDX; i++) {
		size_t size = MAX(i * MALLOC_ALIGN, MALLOC_ALIGN);
		__atomic_store_n(&malloc_cache[i], _sheaf_malloc_cache(size),
				 __ATOMIC_RELEASE);
	}
	malloc_pcs_refresh();
	__atomic_store_n(&malloc_ready, true, __ATOMIC_RELEASE);
	if (malloc_verbose && first)
		malloc_report("start");
}

/*
 * False while sheaf_init() runs on this thread: the caller then serves the
 * request from the boot area.
 */
static inline bool malloc_init(void)
{
	if (likely(__atomic_load_n(&malloc_ready, __ATOMIC_ACQUIRE)))
		return true;
	if (_sheaf_in_init)
		return false;
	malloc_setup();
	return true;
}

/* ------------------------------------------------------------ allocation */

/* The class's slots for size, NULL: take malloc_slow(). */
static inline __attribute__((always_inline)) struct sheaf_pcs *malloc_slots(size_t size)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (likely(size <= MALLOC_MAX_CACHED))
		return __atomic_load_n(&malloc_pcs[MALLOC_IDX(size)], __ATOMIC_ACQUIRE);
#else
	(void)size;
#endif
	return NULL;
}

/*
 * The class's cache after the pop on its slots bailed: its sheaf slow
 * path, with no detour through kmalloc() (pcs.c, _sheaf_pcs_alloc_bailed()).
 */
static SHEAF_NOINLINE void *malloc_bailed(struct sheaf_pcs *pcs)
{
	void *p = _sheaf_pcs_alloc_bailed(sheaf_pcs_info(pcs)->cache);
	if (unlikely(!p))
		errno = ENOMEM;
	return p;
}

/* malloc(size) from the class's slots (the inline pop, else its slow
 * path), or NULL when no slots serve size: take malloc_slow(). */
static inline __attribute__((always_inline)) bool malloc_fast(size_t size, void **objp)
{
	struct sheaf_pcs *pcs = malloc_slots(size);
	if (likely(pcs)) {
		if (unlikely(!sheaf_pcs_pop_with(pcs, objp, true)))
			*objp = malloc_bailed(pcs);
		return true;
	}
	return false;
}

/* Everything malloc_fast() does not do; extra: __GFP_ZERO or 0. */
static SHEAF_NOINLINE void *malloc_slow(size_t size, gfp_t extra)
{
	if (unlikely(!malloc_init()))
		return boot_alloc(size, MALLOC_ALIGN);
	void *p = _sheaf_kmalloc(MAX(size, MALLOC_ALIGN), GFP_KERNEL | extra);
	if (unlikely(!p))
		errno = ENOMEM;
	return p;
}

SHEAF_EXPORT void *malloc(size_t size)
{
	void *obj;
	if (likely(malloc_fast(size, &obj)))
		return obj;
	return malloc_slow(size, 0);
}

SHEAF_EXPORT void *calloc(size_t n, size_t size)
{
	size_t bytes;
	if (unlikely(__builtin_mul_overflow(n, size, &bytes))) {
		errno = ENOMEM;
		return NULL;
	}
	void *p;
	if (likely(malloc_fast(bytes, &p)))
		return likely(p) ? memset(p, 0, bytes) : NULL;
	/* Zeroed below: page runs by kmalloc, huge spans by huge.c (the
	 * grains that were handed out before; the others are zero), and
	 * the boot area is never reused. */
	return malloc_slow(bytes, __GFP_ZERO);
}

/* ------------------------------------------------------------------ free */

/*
 * Pointers 1..16 are kfree()'s ZERO_SIZE_PTR range, a no-op there; malloc
 * never returns one (malloc(0) is a unique block), so here they are bad
 * pointers like any other foreign address.
 */
static SHEAF_COLD void check_not_tiny(void *p, const char *fn, void *caller)
{
	if (unlikely(p && ZERO_OR_NULL_PTR(p)))
		_sheaf_report_invalid(fn, "invalid pointer", p, NULL, caller);
}

static SHEAF_NOINLINE void free_slow(void *p, const char *fn, void *caller)
{
	if (!p || is_boot(p))
		return;
	check_not_tiny(p, fn, caller);
	_sheaf_kfree(p, fn, caller);
}

#ifdef SHEAF_HAVE_RSEQ_ASM
/* free(p) of the cache whose slots are pcs (p passed their boundary
 * test) after the push bailed: its sheaf slow path, with no detour through
 * kfree()'s checks (pcs.c, _sheaf_pcs_free_bailed()). */
static SHEAF_NOINLINE void free_bailed(struct sheaf_pcs *pcs, void *p)
{
	_sheaf_pcs_free_bailed(sheaf_pcs_info(pcs)->cache, p);
}

/* free() of p in an arena page that no sheaf cache owns: most often a
 * large run's head (_sheaf_kfree_run()), else kfree() decides. */
static SHEAF_NOINLINE void free_in_arena(void *p, void *caller)
{
	if (!_sheaf_kfree_run(p))
		free_slow(p, "free", caller);
}

/*
 * free(p): the arena's dense page map (sheaf_pcsmap, <sheaf/rseq.h>, read
 * through its hidden alias so that no GOT load comes first) names
 * the slots of p's cache (NULL: not a page of a slab of a cache with
 * sheaves), and their info line (struct sheaf_pcs_info) checks that p is
 * an object boundary with one multiply and one compare, whatever the
 * stride (so sizes of 96 and 192 bytes take no unpredictable branch), and
 * fails while the inline paths are off.  The push reads its limit from the
 * slot.  Neither needs the cache itself: p -> arena page map -> slots ->
 * main sheaf is the whole chain of dependent loads (the test is
 * sheaf_pcs_of_inline()'s, <sheaf/slab.h>, written out here to tell a
 * NULL slot from a failed test).  A pointer that fails the test takes
 * kfree()'s slow path, which checks through the cache and reports.  A
 * NULL slot in an arena is most often the head of a large run (16 KiB-4
 * MiB): _sheaf_kfree_run() frees it from its page's descriptor, found by
 * arithmetic; anything else goes to kfree().
 */
SHEAF_EXPORT void free(void *p)
{
	uintptr_t x = (uintptr_t)p, idx = x >> SHEAF_ARENA_SHIFT;
	if (likely(idx < SHEAF_ARENA_ENTRIES)) {
		struct sheaf_pcs **pm = _sheaf_pcsmap_local[idx];
		if (likely(pm != NULL)) {
			struct sheaf_pcs *pcs =
				pm[(x & ((1ul << SHEAF_ARENA_SHIFT) - 1)) >> PAGE_SHIFT];
			if (likely(pcs != NULL)) {
				if (likely(sheaf_pcs_info_ok(pcs, x))) {
					if (likely(sheaf_pcs_push_with(pcs, p, true)))
						return;
					free_bailed(pcs, p);
					return;
				}
			} else {
				/* A tail call: free() keeps no frame. */
				free_in_arena(p, __builtin_return_address(0));
				return;
			}
		}
	}
	free_slow(p, "free", __builtin_return_address(0));
}
#else
SHEAF_EXPORT void free(void *p)
{
	free_slow(p, "free", __builtin_return_address(0));
}
#endif

/* glibc's historical alias. */
SHEAF_EXPORT void cfree(void *p)
{
	free_slow(p, "cfree", __builtin_return_address(0));
}

static size_t usable_size(void *p, const char *fn, void *caller)
{
	if (!p)
		return 0;
	check_not_tiny(p, fn, caller);
	if (is_boot(p))
		return boot_size(p);
	return _sheaf_ksize(p, fn, caller);
}

SHEAF_EXPORT size_t malloc_usable_size(void *p)
{
	return usable_size(p, "malloc_usable_size", __builtin_return_address(0));
}

/* ---------------------------------------------------------------- resize */

/*
 * Whether a block of `old` usable bytes keeps `size` bytes in place: up to
 * 8 KiB when size maps to a class of that size (its own), above when the
 * block would still be more than half used.
 */
static bool realloc_in_place(size_t old, size_t size)
{
	if (size > old)
		return false;
	if (old <= KMALLOC_MAX_CACHE_SIZE) {
		struct kmem_cache *c = malloc_cache[MALLOC_IDX(MAX(size, MALLOC_ALIGN))];
		return (c ? kmem_cache_size(c)
			  : kmalloc_size_roundup(MAX(size, MALLOC_ALIGN))) == old;
	}
	return size > old / 2;
}

static void *do_realloc(void *p, size_t size, void *caller)
{
	if (!p)
		return malloc(size);
	if (size == 0) { /* glibc: realloc(p, 0) frees p and returns NULL */
		free_slow(p, "realloc", caller);
		return NULL;
	}
	size_t old = usable_size(p, "realloc", caller);
	if (old > MAX_RUN_SIZE && size > MAX_RUN_SIZE && size <= HUGE_MAX_SIZE && !is_boot(p)) {
		/* a huge span: resized in place or its pages moved, no copy */
		void *q = _sheaf_huge_realloc(p, size);
		if (q)
			return q;
	}
	if (!is_boot(p) && realloc_in_place(old, size))
		return p;
	void *n = malloc(size);
	if (unlikely(!n))
		return NULL; /* errno ENOMEM; p is left as it was */
	memcpy(n, p, MIN(old, size));
	free_slow(p, "realloc", caller);
	return n;
}

SHEAF_EXPORT void *realloc(void *p, size_t size)
{
	return do_realloc(p, size, __builtin_return_address(0));
}

SHEAF_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t bytes;
	if (unlikely(__builtin_mul_overflow(n, size, &bytes))) {
		errno = ENOMEM;
		return NULL;
	}
	return do_realloc(p, bytes, __builtin_return_address(0));
}

/* ------------------------------------------------------------- alignment */

/* Largest alignment served: the huge heap's regions are arena aligned. */
#define MALLOC_MAX_ALIGN ARENA_SIZE

/*
 * size bytes aligned to align (a power of two).  Power-of-two classes up
 * to a page are naturally aligned (page-aligned slabs, stride = size), and
 * so are page runs (buddy blocks): ask for max(size, align), rounded up to
 * a power of two inside a page.  Beyond the largest run the huge heap
 * carves a span at the alignment asked (its grains are 2 MiB aligned, its
 * regions arena aligned).  A debug cache's layout (SLUB_DEBUG red zones)
 * shifts its objects: a misaligned result is given back and a page run
 * taken instead.
 */
static void *aligned_malloc(size_t align, size_t size, const char *fn)
{
	if (align <= MALLOC_ALIGN)
		return malloc(size);
	if (unlikely(!malloc_init()))
		return boot_alloc(size, align);
	if (unlikely(align > MALLOC_MAX_ALIGN)) {
		errno = ENOMEM;
		return NULL;
	}
	size_t want = MAX(size, align);
	if (want > MAX_RUN_SIZE) {
		void *p = _sheaf_huge_alloc(MAX(size, 1), align, GFP_KERNEL);
		if (unlikely(!p))
			errno = ENOMEM;
		return p;
	}
	if (want <= PAGE_SIZE)
		want = 1ul << (64 - __builtin_clzl(want - 1));
	void *p = _sheaf_kmalloc(want, GFP_KERNEL);
	if (p && unlikely((uintptr_t)p & (align - 1))) {
		_sheaf_kfree(p, fn, NULL);
		p = _sheaf_kmalloc_pages(want, GFP_KERNEL);
	}
	if (unlikely(!p))
		errno = ENOMEM;
	return p;
}

SHEAF_EXPORT int posix_memalign(void **memptr, size_t align, size_t size)
{
	if (align < sizeof(void *) || !IS_POW2(align))
		return EINVAL;
	int saved = errno; /* POSIX: errno is not changed */
	void *p = aligned_malloc(align, size, "posix_memalign");
	if (!p) {
		errno = saved;
		return ENOMEM;
	}
	*memptr = p;
	return 0;
}

/* C11: the alignment must be a power of two (glibc >= 2.38 agrees). */
SHEAF_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (!IS_POW2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return aligned_malloc(align, size, "aligned_alloc");
}

/* glibc: an alignment that is not a power of two is rounded up to one. */
SHEAF_EXPORT void *memalign(size_t align, size_t size)
{
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (align > 1 && !IS_POW2(align))
		align = 1ul << (64 - __builtin_clzl(align - 1));
	return aligned_malloc(align, size, "memalign");
}

SHEAF_EXPORT void *valloc(size_t size)
{
	return aligned_malloc(PAGE_SIZE, size, "valloc");
}

SHEAF_EXPORT void *pvalloc(size_t size)
{
	size_t rounded = ALIGN_UP(size, PAGE_SIZE);
	if (rounded < size) {
		errno = ENOMEM;
		return NULL;
	}
	return aligned_malloc(PAGE_SIZE, MAX(rounded, PAGE_SIZE), "pvalloc");
}

/* ----------------------------------------------------------------- extras */

/*
 * malloc_trim(): empty the large-kmalloc run caches, flush every kmalloc
 * cache's sheaves and barns, release empty slabs and give idle pages back.
 * Returns 1 (memory may have been released), 0 before the first
 * allocation.
 */
SHEAF_EXPORT int malloc_trim(size_t pad)
{
	(void)pad;
	if (!__atomic_load_n(&malloc_ready, __ATOMIC_ACQUIRE))
		return 0;
	struct kmem_cache *last = NULL;
	_sheaf_run_cache_drain(); /* purged by the shrinks below */
	for (size_t i = 0; i < NR_MALLOC_IDX; i++) {
		if (malloc_cache[i] != last)
			kmem_cache_shrink(malloc_cache[i]);
		last = malloc_cache[i];
	}
	return 1;
}

/*
 * SHEAF_MALLOC_VERBOSE=1: one line on stderr when a process starts using
 * the library (so that a test can see it was in use: some programs close
 * stderr before they exit); 2: another at exit, with the page counts.
 */
static void malloc_report(const char *when)
{
	struct sheaf_page_info pi;
	char line[256];
	sheaf_page_info(&pi);
	const char *prog = program_invocation_short_name;
	int n = snprintf(line, sizeof(line),
			 "libsheaf-malloc: %s (pid %d) %s: %s, %zu pages in use, "
			 "%zu bytes in huge spans, %zu bytes at start-up\n",
			 prog ? prog : "?", (int)getpid(), when, sheaf_percpu_mode(),
			 pi.used_pages, pi.huge_bytes,
			 __atomic_load_n(&boot_used, __ATOMIC_RELAXED));
	if (n > 0 && write(2, line, MIN((size_t)n, sizeof(line) - 1)) < 0)
		return;
}

__attribute__((destructor)) static void malloc_report_exit(void)
{
	if (__atomic_load_n(&malloc_ready, __ATOMIC_ACQUIRE) && malloc_verbose >= 2)
		malloc_report("exit");
}
