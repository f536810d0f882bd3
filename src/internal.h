/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the library's internal functions and data: for every source
 * file, its cross-file prototypes, its data read by other files, and the
 * inline helpers it owns (an inline helper sits with the file whose data it
 * serves; the lock helpers and the other platform primitives with
 * percpu.c).  The types, with their invariants, are in types.h (included
 * first), as mimalloc splits types.h and internal.h; the bottom layer's
 * (percpu.c: slots, per-CPU mode, locks, clocks, reports) in platform.h,
 * included under its banner below.
 *
 * One banner per source file, in the order of the layer table of
 * docs/ARCHITECTURE.md ("Layers, bottom up"): platform (percpu.c), fault
 * injection and tracking (fault.c, track.c), pages, slab, cpu slab
 * (cpu_slab.c), debug (slub_debug), sheaf (the container), barn, pcs (the
 * per-CPU sheaves), prefill, cache (slab_common.c), kmalloc (kmalloc.c,
 * kmalloc_runs.c: the large runs' caches), rcu, stats and info (stats.c,
 * info.c, info_format.c), init, preload.  A file's
 * banner lists what that file defines; calls point down the table;
 * tools/layercheck.sh checks the built objects, and
 * tools/layercheck.exceptions lists the up-calls that remain, each with its
 * reason.  (The inline helpers are not in its graph: a file that uses one
 * references what it calls.)
 *
 * Lock order: docs/ARCHITECTURE.md ("Lock order") has the one list, which
 * the fork handlers (init.c) follow; its code copy is enum sheaf_lock_rank
 * (types.h).
 */
#ifndef SHEAF_INTERNAL_H
#define SHEAF_INTERNAL_H

#include "types.h"

/* ====================================================== percpu.c: platform */

#include "platform.h"  /* the bottom layer's internals, split out */

/* ================================================ fault.c: fault injection */

/* fault.c: failure injection; the hot paths test only _sheaf_fault_any. */
void _sheaf_fault_prefork(void);        /* fork: the glob pool's lock */
void _sheaf_fault_postfork(void);
extern bool _sheaf_fault_any;
void _sheaf_fault_setup(void);
bool _sheaf_should_fail(enum sheaf_fault which, struct kmem_cache *s,
			size_t size, gfp_t gfp);
static inline bool should_fail(enum sheaf_fault which, struct kmem_cache *s,
			       size_t size, gfp_t gfp)
{
	return unlikely(READ_ONCE(_sheaf_fault_any)) &&
	       _sheaf_should_fail(which, s, size, gfp);
}

/* ================================= track.c: tracking for ASan and valgrind */

/*
 * Telling ASan and valgrind what the allocator does (track.c).  An object
 * handed to the user is made accessible; one the user freed is made
 * inaccessible (ASan poison, valgrind FREELIKE + NOACCESS), and stays so
 * while it sits in a sheaf, a barn or a slab, except its free pointer word,
 * which the allocator itself reads and writes.  Objects freed with
 * kfree_rcu() are made inaccessible only after their grace period.
 * _sheaf_track_on is set when an ASan runtime or valgrind is present; the
 * inline fast paths are off then, so every object passes here.  Debug
 * caches are left alone (their own poison does the job).
 */
extern bool _sheaf_track_on;
void _sheaf_track_alloc_slow(struct kmem_cache *s, void *obj);
void _sheaf_track_free_slow(struct kmem_cache *s, void *obj);
void _sheaf_track_release(void *addr, size_t len); /* slab pages back to pages */
void _sheaf_track_new_object(struct kmem_cache *s, void *obj);
void _sheaf_track_setup(void);
/* debug.c's checks read and write metadata: valgrind's reports off. */
void _sheaf_meta_access_begin(void);
void _sheaf_meta_access_end(void);
static inline void track_alloc(struct kmem_cache *s, void *obj)
{
	if (unlikely(_sheaf_track_on) && obj)
		_sheaf_track_alloc_slow(s, obj);
}
static inline void track_free(struct kmem_cache *s, void *obj)
{
	if (unlikely(_sheaf_track_on))
		_sheaf_track_free_slow(s, obj);
}

/* ========================================================== pages.c: pages */

extern struct arena *_sheaf_arena_map[ARENA_MAP_SIZE];
/*
 * sheaf_pcsmap[addr >> ARENA_SHIFT] (<sheaf/rseq.h>): the arena's dense page
 * map of slots, one pointer per page: the cache's per-slot array
 * (s->hot.pcs) on every page of a slab of a cache with sheaves (at the
 * cache's order: not an order fallback's, _sheaf_new_slab()), NULL on
 * every other page.  The inline free paths (libsheaf-malloc's free(), and
 * the kfree_rcu() and kmem_cache_free() of the public headers) read it
 * instead of the descriptors.  new_slab() sets a slab's entries,
 * pages_free() clears a run's.  Allocated with the arena (512 KiB, touched
 * as used), never freed.
 */
void _sheaf_pcsmap_set(struct slab *d, size_t npages, struct sheaf_pcs *pcs);
/* sheaf_pcsmap under a hidden alias (pages.c), for libsheaf-malloc's free(). */
extern struct sheaf_pcs **_sheaf_pcsmap_local[] __attribute__((visibility("hidden")));
/* sheaf_memmap[addr >> ARENA_SHIFT]: the arena's memmap, NULL if not a slab arena. */
extern void *sheaf_memmap[ARENA_MAP_SIZE];

/*
 * Descriptor flags are read without the owner's lock (the buddy allocator
 * looks at a neighbour's head, kfree at any page): relaxed atomics, with
 * the ordering coming from the locks and the release/acquire pairs around.
 */
static inline uint8_t desc_flags(const struct slab *d)
{
	return __atomic_load_n(&d->flags, __ATOMIC_RELAXED);
}

static inline void set_desc_flags(struct slab *d, uint8_t flags)
{
	__atomic_store_n(&d->flags, flags, __ATOMIC_RELAXED);
}

/* The descriptor of the page holding addr, head-resolved; NULL if not ours. */
static inline struct slab *virt_to_slab(const void *addr)
{
	uintptr_t x = (uintptr_t)addr;
	if (unlikely(x >> ADDR_BITS))
		return NULL;
	struct slab *mm = __atomic_load_n((struct slab **)&sheaf_memmap[x >> ARENA_SHIFT],
					  __ATOMIC_ACQUIRE);
	if (unlikely(!mm))
		return NULL;
	struct slab *d = mm + ((x & (ARENA_SIZE - 1)) >> PAGE_SHIFT);
	if (desc_flags(d) & PG_TAIL)
		d = d->head;
	return d;
}

/*
 * The descriptor of the page at addr, for an addr the caller knows lies in
 * an arena (free() found the arena's page map): the arena's memmap sits at
 * its base, so this is arithmetic, no load, and not head-resolved.
 */
static inline struct slab *arena_page_desc(const void *addr)
{
	uintptr_t x = (uintptr_t)addr, mm = x & ~(ARENA_SIZE - 1);
	return (struct slab *)mm + ((x - mm) >> PAGE_SHIFT);
}

/*
 * The same for a head page (a run the caller took from a run cache).
 * virt_to_slab()'s read of the flags (to follow a tail page to its head)
 * was the larger part of a large kmalloc from a run cache: a dependent
 * load of a line last touched when the run was freed.
 */
static inline struct slab *arena_head_desc(const void *addr)
{
	struct slab *d = arena_page_desc(addr);
	SHEAF_ASSERT(d == virt_to_slab(addr));
	return d;
}

static inline void *slab_address(const struct slab *slab)
{
	uintptr_t mm = (uintptr_t)slab & ~(ARENA_SIZE - 1);
	size_t idx = (size_t)(slab - (const struct slab *)mm);
	return (void *)(mm + (idx << PAGE_SHIFT));
}

/* The smallest page order holding size bytes. */
static inline unsigned int get_order(size_t size)
{
	unsigned int order = 0;
	while ((PAGE_SIZE << order) < size)
		order++;
	return order;
}

/*
 * Internal gfp bit of kmalloc_nolock()'s paths (0x200: no kernel bit, so
 * every entry point refuses it from a caller): the slab, debug and page
 * layers take their locks only if free (sheaf_trylock()) and fail when
 * one is busy.  It has no reclaim bit, so nothing is mapped either.
 */
#define SHEAF_GFP_NOLOCK 0x200u
_Static_assert((SHEAF_GFP_NOLOCK & SHEAF_GFP_VALID_MASK) == 0,
	       "SHEAF_GFP_NOLOCK must be a bit every entry point refuses");

void _sheaf_pages_init(void);
/* gfp with SHEAF_GFP_NOLOCK: the node's page lock is only tried. */
struct slab *_sheaf_pages_alloc(unsigned int order, int node, gfp_t gfp);
void _sheaf_pages_free(struct slab *head);
void _sheaf_pages_purge(bool all);
void _sheaf_pages_decay(void);      /* free huge spans past decay */
/* pages.c: the arena lock (LR_ARENA) and aligned mappings, which huge.c
 * (the layer's huge heap) shares. */
extern pthread_mutex_t _sheaf_arena_lock;
void *_sheaf_map_aligned(size_t size, size_t align);
/* huge.c */
void _sheaf_huge_release_retained(void);     /* kmem_cache_shrink, malloc_trim */
void _sheaf_huge_bytes_locked(size_t *live, size_t *retained);
void *_sheaf_huge_alloc(size_t size, size_t align, gfp_t gfp); /* align <= ARENA_SIZE */
void _sheaf_huge_after_fork_child(void);     /* fork handler, arena lock held */
void *_sheaf_huge_realloc(void *p, size_t size); /* NULL: p untouched, copy */
/* The largest huge span the malloc replacement asks for (_sheaf_kmalloc). */
#define HUGE_MAX_SIZE (1ul << 40)
bool _sheaf_huge_free(const void *p);        /* false: not a live huge span */
size_t _sheaf_huge_size(const void *p);      /* 0: not a live huge span */
void *_sheaf_huge_start(const void *p);      /* start of the mapping containing p */
int _sheaf_huge_node(const void *p);         /* -1: not a live huge span */
void *_sheaf_meta_alloc(size_t size);        /* zeroed, page granular */
void _sheaf_meta_free(void *p, size_t size);
void *_sheaf_meta_pool_alloc(size_t size);   /* zeroed, packed: fork state */
void _sheaf_meta_pool_free(void *p, size_t size);
/* fork (and the test hook of init.c): the page layer's locks of rank r,
 * LR_ARENA (arena_lock), LR_PAGE (every node's lock) or LR_POOL. */
void _sheaf_pages_lock(enum sheaf_lock_rank r);
void _sheaf_pages_unlock(enum sheaf_lock_rank r);

/* ============================================================ slab.c: slab */

/*
 * The node lists, for slab.c and slub_debug (debug.c) alike: the caller
 * holds n->list_lock.  partial: counted in nr_partial and flagged by
 * on_partial; full: slub_debug caches only (the kernel keeps it for
 * validation alike), neither counted nor flagged.
 */
static inline void slab_add_partial(struct kmem_cache_node *n, struct slab *slab)
{
	sheaf_lock_held(LR_LIST);
	list_add(&slab->slab_list, &n->partial);
	WRITE_ONCE(n->nr_partial, n->nr_partial + 1);
	slab->on_partial = 1;
}

static inline void slab_remove_partial(struct kmem_cache_node *n, struct slab *slab)
{
	sheaf_lock_held(LR_LIST);
	list_del(&slab->slab_list);
	WRITE_ONCE(n->nr_partial, n->nr_partial - 1);
	slab->on_partial = 0;
}

static inline void slab_add_full(struct kmem_cache_node *n, struct slab *slab)
{
	sheaf_lock_held(LR_LIST);
	list_add(&slab->slab_list, &n->full);
}

static inline void slab_remove_full(struct kmem_cache_node *n, struct slab *slab)
{
	sheaf_lock_held(LR_LIST);
	(void)n;
	list_del(&slab->slab_list);
}

static inline void *get_freepointer(struct kmem_cache *s, void *obj)
{
	return *(void **)((char *)obj + s->offset);
}

/*
 * Read the free pointer of an object that may have been reallocated
 * meanwhile (the classic fast path; the caller's compare-and-swap rejects a
 * stale value).  A race by design, like the kernel's data_race(): hidden
 * from the sanitizers, out of line under TSan so that the attribute holds.
 */
#ifdef SHEAF_HAVE_TSAN
SHEAF_NO_SANITIZE __attribute__((noinline, unused)) static void *
get_freepointer_safe(struct kmem_cache *s, void *obj)
#else
SHEAF_NO_SANITIZE static inline void *
get_freepointer_safe(struct kmem_cache *s, void *obj)
#endif
{
	return *(void *volatile *)((char *)obj + s->offset);
}

static inline void set_freepointer(struct kmem_cache *s, void *obj, void *fp)
{
	*(void **)((char *)obj + s->offset) = fp;
}

static inline struct kmem_cache_node *get_node(struct kmem_cache *s, int node)
{
	return s->node[node];
}

bool _sheaf_calculate_sizes(struct kmem_cache *s, const struct kmem_cache_args *args);
/* Objects a slab of s holds at that order (s->objects at s->order). */
static inline unsigned int order_objects(const struct kmem_cache *s,
					 unsigned int order)
{
	return (unsigned int)((PAGE_SIZE << order) / s->size);
}
struct slab *_sheaf_new_slab(struct kmem_cache *s, gfp_t gfp, int node,
			     unsigned int slot);
/* SLAB_TYPESAFE_BY_RCU slabs still waiting for their grace period. */
long _sheaf_slab_rcu_pending(void);
void _sheaf_discard_slab(struct kmem_cache *s, struct slab *slab,
			 unsigned int slot);
struct slab *_sheaf_get_partial(struct kmem_cache *s, int node, void **freelist);
void *_sheaf_get_freelist(struct kmem_cache *s, struct slab *slab);
void *_sheaf_freeze_new_slab(struct slab *slab);
void *_sheaf_alloc_single(struct kmem_cache *s, gfp_t gfp, int node,
			  bool exact, unsigned int slot);
void *_sheaf_alloc_single_nolock(struct kmem_cache *s, int node, unsigned int slot);
bool _sheaf_slab_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj,
			     unsigned int slot);
void _sheaf_slab_free(struct kmem_cache *s, struct slab *slab, void *head,
		      void *tail, unsigned int cnt, unsigned int slot);
void _sheaf_slab_free_bulk(struct kmem_cache *s, size_t nr, void **p,
			   unsigned int slot);
size_t _sheaf_slab_alloc_bulk(struct kmem_cache *s, gfp_t gfp, int node,
			      void **p, size_t nr, unsigned int slot);
void _sheaf_unfreeze(struct kmem_cache *s, struct slab *slab, void *freelist,
		     unsigned int slot);
void _sheaf_shrink_node(struct kmem_cache *s, int node);
size_t _sheaf_node_free_objects(struct kmem_cache *s, int node);
struct slab *_sheaf_check_object(struct kmem_cache *s, const void *obj,
				 const char *fn, void *caller);
struct slab *_sheaf_check_object_in(struct kmem_cache *s, struct slab *slab,
				    const void *obj, const char *fn, void *caller);

/*
 * kfree_nolock()'s deferred frees (slab.c, "deferred frees"; struct
 * kmem_cache, deferred): the push, lock-free and safe in a signal
 * handler; the whole stack taken by a drain, which holds the flush lock
 * (_sheaf_deferred_lock(): taken with wait, else only tried: false when
 * busy) and ends with _sheaf_deferred_unlock() and the count it freed.
 */
static inline void deferred_push(struct kmem_cache *s, void *obj)
{
	void *top = __atomic_load_n(&s->deferred, __ATOMIC_RELAXED);
	atomic_fetch_add_explicit(&s->deferred_nr, 1, memory_order_relaxed);
	do
		set_freepointer(s, obj, top);
	while (!__atomic_compare_exchange_n(&s->deferred, &top, obj, true,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

static inline void *deferred_take(struct kmem_cache *s)
{
	return __atomic_exchange_n(&s->deferred, NULL, __ATOMIC_ACQUIRE);
}

static inline bool deferred_pending(struct kmem_cache *s)
{
	return unlikely(__atomic_load_n(&s->deferred, __ATOMIC_RELAXED) != NULL);
}

bool _sheaf_deferred_lock(struct kmem_cache *s, bool wait);
void _sheaf_deferred_unlock(struct kmem_cache *s, size_t n);
void _sheaf_slab_drain_deferred(struct kmem_cache *s, bool wait);

/* A (non-debug) cache's slow path: drain the deferred frees, if any and
 * if no other drain or flush holds the flush lock. */
static inline void deferred_drain_slow(struct kmem_cache *s)
{
	if (deferred_pending(s))
		_sheaf_slab_drain_deferred(s, false);
}

/* ==================================================== cpu_slab.c: cpu slab */

void *_sheaf_cpu_alloc(struct kmem_cache *s, gfp_t gfp);
void _sheaf_cpu_free(struct kmem_cache *s, struct slab *slab, void *obj,
		     const char *fn, void *caller);
/* kmalloc_nolock(), kfree_nolock(): the fast paths alone (NULL, false:
 * the slab layer's turn). */
void *_sheaf_cpu_alloc_nolock(struct kmem_cache *s);
bool _sheaf_cpu_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj);
void _sheaf_cpu_flush_all(struct kmem_cache *s);
size_t _sheaf_cpu_cached_objects(struct kmem_cache *s);
void _sheaf_cpu_fork_stop(struct kmem_cache *s);
void _sheaf_cpu_fork_wait(struct kmem_cache *s);
int _sheaf_cpu_test_hold(struct kmem_cache *s, bool hold);
void _sheaf_cpu_unlock_all(struct kmem_cache *s);

/* ===================================================== debug.c: slub_debug */

void _sheaf_debug_setup(void);
slab_flags_t _sheaf_debug_flags_for(const char *name, slab_flags_t flags);
void _sheaf_debug_layout(struct kmem_cache *s);
void _sheaf_debug_new_object(struct kmem_cache *s, void *obj);
/* gfp with SHEAF_GFP_NOLOCK (kmalloc_nolock()): the list and page locks
 * only tried, and the allocation track without a stack trace. */
void *_sheaf_debug_alloc(struct kmem_cache *s, gfp_t gfp, int node, unsigned int slot);
bool _sheaf_debug_free(struct kmem_cache *s, struct slab *slab, void *obj,
		       unsigned int slot);
/* A debug cache's deferred frees, each through the checked free. */
void _sheaf_debug_drain_deferred(struct kmem_cache *s, bool wait);
void _sheaf_debug_wrong_cache(struct kmem_cache *s, struct slab *slab, const void *obj);
void _sheaf_debug_leak_report(struct kmem_cache *s, size_t live);

static inline bool cache_debug(const struct kmem_cache *s)
{
	return (s->flags & (SLAB_DEBUG_FLAGS | SLAB_DESTROYED)) != 0;
}

/* =============================== sheaf.c: struct slab_sheaf as a container */

struct slab_sheaf *_sheaf_alloc_sheaf(struct kmem_cache *s, gfp_t gfp,
				      unsigned int capacity, unsigned int slot);
void _sheaf_free_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
		       unsigned int slot);
void _sheaf_flush_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			enum sheaf_stat_item which, unsigned int slot);
void _sheaf_discard_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			  unsigned int slot);
int _sheaf_refill_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			unsigned int to, gfp_t gfp, unsigned int slot);

/* ============================================================ barn.c: barn */

/* An allocation asked the barn for a full sheaf: RCU may recycle one more. */
static inline void barn_earn_rcu_credit(struct node_barn *barn)
{
	if (atomic_load_explicit(&barn->rcu_credit, memory_order_relaxed) < MAX_RCU_CREDIT)
		atomic_fetch_add_explicit(&barn->rcu_credit, 1, memory_order_relaxed);
}

/* Spend one credit; false when there is none. */
static inline bool barn_spend_rcu_credit(struct node_barn *barn)
{
	unsigned int c = atomic_load_explicit(&barn->rcu_credit, memory_order_relaxed);
	while (c) {
		if (atomic_compare_exchange_weak_explicit(&barn->rcu_credit, &c, c - 1,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

static inline struct node_barn *sheaf_local_barn(struct kmem_cache *s)
{
	return s->barn[sheaf_node()];
}

void _sheaf_barn_init(struct node_barn *barn);
/* spin == false (kmalloc_nolock(), kfree_nolock()): the barn lock is
 * only tried; busy, the barn answers as if it had no sheaf to give. */
struct slab_sheaf *_sheaf_barn_get_empty(struct node_barn *barn, bool spin);
bool _sheaf_barn_put_empty(struct node_barn *barn, struct slab_sheaf *sheaf, bool force);
void _sheaf_barn_put_full(struct node_barn *barn, struct slab_sheaf *sheaf);
struct slab_sheaf *_sheaf_barn_get_full(struct node_barn *barn, bool spin);
struct slab_sheaf *_sheaf_barn_get_full_or_empty(struct node_barn *barn);
struct slab_sheaf *_sheaf_barn_replace_empty(struct node_barn *barn,
					     struct slab_sheaf *empty, bool spin);
struct slab_sheaf *_sheaf_barn_replace_full(struct node_barn *barn,
					    struct slab_sheaf *full, int *err,
					    bool spin);
void _sheaf_barn_shrink(struct kmem_cache *s, struct node_barn *barn);
size_t _sheaf_barn_objects(struct node_barn *barn, unsigned int *nr_full,
			   unsigned int *nr_empty);

/* ================== pcs.c, pcs_remote.c, pcs_adapt.c: the per-CPU sheaves */

static inline bool cache_has_sheaves(const struct kmem_cache *s)
{
	return s->hot.pcs != NULL;
}

/* The cache's current sheaf capacity and barn limit: loaded once by each
 * operation, which uses that value throughout (struct kmem_cache,
 * "Capacity and barn limits": an adaptive cache's may move meanwhile). */
static inline unsigned int cache_cap(const struct kmem_cache *s)
{
	return __atomic_load_n(&s->hot.sheaf_capacity, __ATOMIC_RELAXED);
}

static inline unsigned int cache_barn_limit(const struct kmem_cache *s)
{
	return __atomic_load_n(&s->barn_limit, __ATOMIC_RELAXED);
}

/*
 * libsheaf's recycling (docs/PREFILL.md, "Recycling first"; docs/RCU.md,
 * "RCU credit"): a prefill whose spare is short takes a full barn sheaf, a
 * prefill tops its spare up from main, a returned sheaf is pooled with the
 * spare, an empty main is kept as the spare when the slot has none, and RCU
 * recycles past the barn limit as far as demand has earned.  It goes with
 * the adaptive capacity: SHEAF_ADAPTIVE=0 (and the library's own caches)
 * run the kernel's fixed design exactly, with the kernel's counters.
 */
static inline bool cache_recycles(const struct kmem_cache *s)
{
	return s->adaptive;
}

/*
 * The slot lock of a sheaf cache: the rseq trylock section (count from n
 * to SHEAF_PCS_TAKEN + n), or in fallback mode a compare-and-swap of
 * `lock` followed by a check of `stop` (the remote flusher's Dekker pair).
 * Returns the locked slot (maybe not the one the thread was on a moment
 * ago) or NULL.  Release with sheaf_pcs_unlock() from any CPU.  The holder
 * works with main->size: the lock copies the slot's count there, the
 * unlock copies it back (<sheaf/rseq.h>, struct sheaf_pcs).  Always
 * inlined: with the sections' two variants
 * (SHEAF_RSEQ_VARIANTS) the compiler kept it out of line, 35 more
 * instructions a pair in fallback mode (callgrind_pair).
 */
static inline __attribute__((always_inline)) struct sheaf_pcs *
sheaf_pcs_trylock(struct kmem_cache *s, unsigned int *slotp)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (likely(_sheaf_rseq_mode)) {
		for (;;) {
			int r = sheaf_rseq_trylock(s->hot.pcs, slotp);
			if (likely(r == 0)) {
				struct sheaf_pcs *pcs = &s->hot.pcs[*slotp];
				pcs->main->size = pcs->count - SHEAF_PCS_TAKEN;
				_sheaf_lock_tried(LR_SLOT);
				sheaf_debug_yield();
				return pcs;
			}
			if (r == 1)
				return NULL;
		}
	}
#endif
	unsigned int slot = sheaf_slot();
	struct sheaf_pcs *pcs = &s->hot.pcs[slot];
	uint8_t zero = 0;
	if (!__atomic_compare_exchange_n(&pcs->lock, &zero, 1, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return NULL;
	if (__atomic_load_n(&pcs->stop, __ATOMIC_SEQ_CST)) {
		__atomic_store_n(&pcs->lock, 0, __ATOMIC_RELEASE);
		return NULL;
	}
	/* No section runs in fallback mode: count already equals main->size
	 * (every unlock copied it there), nothing to copy. */
	*slotp = slot;
	_sheaf_lock_tried(LR_SLOT);
	sheaf_debug_yield();
	return pcs;
}

/* Main's count, and the pop's top hint, for the sections: whoever lets
 * a slot go (struct sheaf_pcs, <sheaf/rseq.h>).  In rseq mode the store
 * of count is the release: the sections run on the slot from then on. */
static inline void sheaf_pcs_publish(struct sheaf_pcs *pcs)
{
	unsigned int n = pcs->main ? pcs->main->size : 0;
	pcs->top = n ? pcs->main->objects[n - 1] : NULL;
	__atomic_store_n(&pcs->count, n, __ATOMIC_RELEASE);
}

/* The slot is taken (count negative: struct sheaf_pcs, <sheaf/rseq.h>). */
static inline bool sheaf_pcs_count_taken(uint32_t count)
{
	return (int32_t)count < 0;
}

/* Taken by a remote owner: SHEAF_PCS_TAKEN + SHEAF_PCS_FROZEN + n. */
static inline bool sheaf_pcs_count_frozen(uint32_t count)
{
	return sheaf_pcs_count_taken(count) &&
	       ((count - SHEAF_PCS_TAKEN) & SHEAF_PCS_FROZEN);
}

static inline void sheaf_pcs_unlock(struct sheaf_pcs *pcs)
{
	/* One more slow path: the idle drain reads it without the lock. */
	__atomic_store_n(&pcs->events, pcs->events + 1, __ATOMIC_RELAXED);
	sheaf_pcs_publish(pcs);
	/* Fallback mode's release (rseq mode's was the count's: its lock
	 * byte is always 0, and the store of 0 costs less than a test). */
	__atomic_store_n(&pcs->lock, 0, __ATOMIC_RELEASE);
	_sheaf_lock_release(LR_SLOT);
}

/*
 * The invariants of a locked slot (struct sheaf_pcs, <sheaf/rseq.h>):
 * main is set, every sheaf is s's and holds at most sheaf_room objects
 * (at most the capacity, but for an adaptive cache whose capacity went
 * down since they filled), and an rcu_free sheaf is never left full (one
 * that reached the capacity goes to the RCU worker before the slot is
 * unlocked, so it has room for one more).  O(1): three headers.
 */
static inline void sheaf_assert_slot_ok(struct kmem_cache *s, const struct sheaf_pcs *pcs)
{
	unsigned int room = s->sheaf_room;
	SHEAF_ASSERT(__atomic_load_n(&pcs->capacity, __ATOMIC_RELAXED) <= room);
	SHEAF_ASSERT(pcs->main && pcs->main->cache == s && pcs->main->size <= room);
	SHEAF_ASSERT(!pcs->spare ||
		     (pcs->spare->cache == s && pcs->spare->size <= room));
	SHEAF_ASSERT(!pcs->rcu_free ||
		     (pcs->rcu_free->cache == s && pcs->rcu_free->size < room));
	(void)room;
}

/*
 * pcs_adapt.c: adaptive capacity.  A slow path of a locked slot that swaps
 * main and spare, or goes to the barn or past it, calls sheaf_pcs_miss() (then
 * sheaf_pcs_miss_was_fail() when the barn was at its limit of full
 * sheaves); every SHEAF_ADAPT_MISSES misses the slot's window closes, and
 * the cache grows when they came fast enough.  The idle thread's look
 * shrinks quiet caches; kmem_cache_shrink() puts a cache back to its base.
 */
#define SHEAF_ADAPT_MISSES    64   /* misses per window */
#define SHEAF_ADAPT_WINDOW_MS 16   /* a window at least this fast grows */
void _sheaf_adapt_window(struct kmem_cache *s, struct sheaf_pcs *pcs);
void _sheaf_adapt_look(struct kmem_cache *s);          /* under slab_mutex */
void _sheaf_adapt_reset(struct kmem_cache *s);         /* to the base level */
void _sheaf_adapt_setup(struct kmem_cache *s, unsigned int cap);

static inline void sheaf_pcs_miss(struct kmem_cache *s, struct sheaf_pcs *pcs)
{
	if (!s->adaptive)
		return;
	uint32_t m = pcs->misses + 1;
	__atomic_store_n(&pcs->misses, m, __ATOMIC_RELAXED); /* the look reads it */
	if (m - pcs->win_mark >= SHEAF_ADAPT_MISSES)
		_sheaf_adapt_window(s, pcs);
}

/* The miss just counted was a barn put failure. */
static inline void sheaf_pcs_miss_was_fail(struct kmem_cache *s, struct sheaf_pcs *pcs)
{
	if (s->adaptive && pcs->win_fails < UINT16_MAX)
		pcs->win_fails++;
}

void _sheaf_pcs_remote_lock_all(struct kmem_cache *s);   /* holds flush_lock */
void _sheaf_pcs_remote_unlock_all(struct kmem_cache *s);
void _sheaf_offer_empty(struct kmem_cache *s, struct slab_sheaf *empty,
			unsigned int slot);
void _sheaf_update_inline(struct kmem_cache *s);
void _sheaf_refresh_inline_all(void);   /* takes slab_mutex */
/* Called after every cache's inline_pcs was refreshed: libsheaf-malloc
 * (preload.c) overrides this weak no-op to follow in its size table. */
void _sheaf_inline_changed(void);
bool _sheaf_pcs_init(struct kmem_cache *s);
/* Bare slot arrays (kmalloc's large-run caches): main sheaves only. */
struct sheaf_pcs *_sheaf_pcs_bare_new(unsigned int capacity);
void _sheaf_pcs_bare_drain(struct sheaf_pcs *pcs, void (*fn)(void *));
bool _sheaf_pcs_kfree_rcu(struct kmem_cache *s, void *obj);
void _sheaf_pcs_submit_rcu_sheaves(struct kmem_cache *s); /* barriers */
struct slab_sheaf *_sheaf_pcs_take_spare(struct kmem_cache *s, unsigned int want,
					 unsigned int *slotp, bool *from_barn); /* prefill */
struct slab_sheaf *_sheaf_pcs_pool_spare(struct kmem_cache *s, struct slab_sheaf *r,
					 unsigned int *slotp);          /* return */
void *_sheaf_pcs_alloc(struct kmem_cache *s, gfp_t gfp);
void _sheaf_pcs_free(struct kmem_cache *s, struct slab *slab, void *obj);
/* libsheaf-malloc's, after its own inline section bailed (pcs.c). */
void *_sheaf_pcs_alloc_bailed(struct kmem_cache *s);
void _sheaf_pcs_free_bailed(struct kmem_cache *s, void *obj);
/* kmalloc_nolock(), kfree_nolock(): nothing that waits, allocates a sheaf
 * or flushes one (NULL, false: the slab layer's turn). */
void *_sheaf_pcs_alloc_nolock(struct kmem_cache *s);
bool _sheaf_pcs_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj);
int _sheaf_pcs_alloc_bulk(struct kmem_cache *s, gfp_t gfp, size_t nr, void **p);
void _sheaf_pcs_free_bulk(struct kmem_cache *s, size_t nr, void **p);
void _sheaf_pcs_flush_all(struct kmem_cache *s);
void _sheaf_pcs_destroy(struct kmem_cache *s);
size_t _sheaf_pcs_cached_objects(struct kmem_cache *s);
/* The idle drain's row for a new sheaf cache, and back at its destroy
 * (both under slab_mutex). */
#define SHEAF_IDLE_NO_ROW UINT32_MAX
void _sheaf_idle_row_get(struct kmem_cache *s);
void _sheaf_idle_row_put(struct kmem_cache *s);
/* The head of s's row (under slab_mutex); NULL: it has none. */
struct sheaf_idle_cache *_sheaf_idle_cache_view(const struct kmem_cache *s);
unsigned int _sheaf_pcs_drain_idle(struct kmem_cache *s, unsigned int looks);
void _sheaf_pcs_fork_stop(struct kmem_cache *s);
void _sheaf_pcs_fork_hold(struct kmem_cache *s);
bool _sheaf_pcs_fork_settle(struct kmem_cache *s); /* after a fence; true: settled */
void _sheaf_pcs_fork_lock_barns(struct kmem_cache *s);
void _sheaf_pcs_fork_unlock_barns(struct kmem_cache *s);
int _sheaf_pcs_test_hold(struct kmem_cache *s, bool hold);
void _sheaf_pcs_unlock_all(struct kmem_cache *s, bool child);


/* ============================================ prefill.c: prefilled sheaves */

/* Nothing for other files: its entry points are the public
 * kmem_cache_prefill_sheaf() family (<sheaf/slab.h>). */

/* ==================================================== slab_common.c: cache */

extern pthread_mutex_t _sheaf_slab_mutex;
extern struct list_head _sheaf_slab_caches;
void _sheaf_idle_after_fork(bool child);
bool _sheaf_idle_running(void);
struct kmem_cache *_sheaf_cache_create(const char *name, unsigned int size,
				       const struct kmem_cache_args *args,
				       slab_flags_t flags, enum cache_kind kind);
void *_sheaf_slab_alloc(struct kmem_cache *s, gfp_t gfp, int node);
void _sheaf_nofail_wait(void);
/* fn, caller: named in a report (a double free). */
void _sheaf_slab_free_obj(struct kmem_cache *s, struct slab *slab, void *obj,
			  const char *fn, void *caller);
/* kmalloc_nolock(), kfree_nolock() on a cache: nothing waits. */
void *_sheaf_cache_alloc_nolock(struct kmem_cache *s, gfp_t gfp, int node);
void _sheaf_cache_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj);
/* Every deferred free of s done (waits for drains under way). */
void _sheaf_deferred_drain(struct kmem_cache *s);


/* The cache's flush lock (serializes remote owners of its slots): the
 * first bytes of its fork-state block. */
static inline pthread_mutex_t *cache_flush_lock(struct kmem_cache *s)
{
	return (pthread_mutex_t *)s->fork_state;
}

/* Every entry point but the fast paths: a destroyed cache is reported. */
static inline void cache_check_live(struct kmem_cache *s, const char *fn,
				    void *caller)
{
	if (unlikely(s->flags & SLAB_DESTROYED))
		_sheaf_report_destroyed(fn, s, caller);
}

static inline bool sheaf_gfp_ok(gfp_t gfp)
{
	return (gfp & ~SHEAF_GFP_VALID_MASK) == 0;
}

/* ====================================================== kmalloc.c: kmalloc */

void _sheaf_kmalloc_init(void);
void *_sheaf_kmalloc_internal(size_t size, gfp_t gfp); /* never sheaves */
void *_sheaf_obj_start(const void *p); /* object holding p, NULL: not ours */
extern bool _sheaf_kmalloc_sheaves; /* kmalloc caches with sheaves */
/* The kmalloc cache of size 1..KMALLOC_MAX_CACHE_SIZE (after init). */
struct kmem_cache *_sheaf_kmalloc_cache(size_t size);
/* The malloc replacement's classes: the kmalloc ones with malloc-384 to
 * malloc-6k between them, then malloc-12k to malloc-32k up to
 * MALLOC_MAX_CACHED (kmalloc.c). */
#define MALLOC_MAX_CACHED (32ul << 10)
struct kmem_cache *_sheaf_malloc_cache(size_t size);
void *_sheaf_kmalloc_pages(size_t size, gfp_t gfp);
/* kmalloc(), kfree(), ksize() with the function named in reports. */
void *_sheaf_kmalloc(size_t size, gfp_t gfp);
void _sheaf_kfree(const void *p, const char *fn, void *caller);
/* free()'s path for p in an arena page no sheaf cache owns: true when p
 * was a live large run's head and is freed; else kfree() decides. */
bool _sheaf_kfree_run(const void *p);
size_t _sheaf_ksize(const void *p, const char *fn, void *caller);


/* =============================== kmalloc_runs.c: large kmalloc's free runs */

/* The per-CPU caches of free runs for large kmalloc, one bare slot array
 * per order (kmalloc_runs.c describes them; NULL: no cache of that order). */
#define RUN_CACHE_MIN  2	/* 16 KiB: sizes above KMALLOC_MAX_CACHE_SIZE */
#define RUN_CACHE_MAX  4	/* 64 KiB */
/* Runs kept per slot and order: 1 MiB of each order (64, 32, 16 runs). */
#define RUN_CACHE_BYTES (1u << 20)
#define RUN_CACHE_RUNS(order) (RUN_CACHE_BYTES >> PAGE_SHIFT >> (order))
extern struct sheaf_pcs *_sheaf_run_cache[RUN_CACHE_MAX - RUN_CACHE_MIN + 1];
/* The caches and their depots (kmalloc init, with _sheaf_kmalloc_sheaves). */
void _sheaf_run_cache_init(void);
/* Give every run kept in the large-kmalloc run caches back (malloc_trim),
 * and every large run kfree_nolock() deferred. */
void _sheaf_run_cache_drain(void);
/* Every large run kfree_nolock() deferred, freed (the RCU barriers). */
void _sheaf_kmalloc_drain_deferred(void);
void _sheaf_run_cache_prefork(void);   /* fork: the drain's lock */
void _sheaf_run_cache_postfork(bool child);
/* kfree_nolock()'s deferred large runs, a stack linked through each run's
 * first word (kmalloc_runs.c), and its drain: wait, take drain_lock
 * (normal context, no lock held); else only try it. */
extern void *_sheaf_large_deferred;
void _sheaf_large_drain(bool wait);

#ifdef SHEAF_HAVE_RSEQ_ASM
/*
 * One run off the calling thread's slot of pcs, without the object pop's
 * prefetch of the next entry: a run is not written by the allocator, the
 * depot moves them in batches, and a program writes one line of a 16-64
 * KiB run, rarely the first it would prefetch.  The prefetch's TLB walk
 * was 77% of run_depot_put()'s samples (perf, --mixed-sizes 8193-32768).
 */
static inline bool run_pop(struct sheaf_pcs *pcs, void **runp)
{
	void *next;
	int r;
	while ((r = sheaf_rseq_pop_next(pcs, runp, &next)) == SHEAF_RSEQ_ABORTED)
		;
	return r == SHEAF_RSEQ_DONE;
}

/* The slow paths of run_cache_get() and run_cache_put(): the depot. */
struct slab *_sheaf_run_depot_get(unsigned int order);
bool _sheaf_run_depot_put(struct slab *d);
#endif

/* A cached run of `order` for the local node, or NULL. */
static inline struct slab *run_cache_get(unsigned int order, int node)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	void *run;
	struct sheaf_pcs *pcs;
	if (order >= RUN_CACHE_MIN && order <= RUN_CACHE_MAX && node == NUMA_NO_NODE &&
	    (pcs = _sheaf_run_cache[order - RUN_CACHE_MIN])) {
		if (run_pop(pcs, &run))
			return arena_head_desc(run);
		return _sheaf_run_depot_get(order);
	}
#endif
	return NULL;
}

/* Keep the run of d (flags already 0) in the cache or the depot: false
 * when neither takes it. */
static inline bool run_cache_put(struct slab *d)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	struct sheaf_pcs *pcs;
	unsigned int order = d->order;
	return order >= RUN_CACHE_MIN && order <= RUN_CACHE_MAX &&
	       (pcs = _sheaf_run_cache[order - RUN_CACHE_MIN]) &&
	       (sheaf_pcs_push_inline(pcs, slab_address(d)) || _sheaf_run_depot_put(d));
#else
	(void)d;
	return false;
#endif
}

/* Push the run of d (flags already 0 by compare-and-swap) on the deferred
 * stack: kfree_nolock(), from any context. */
static inline void large_defer(struct slab *d)
{
	void **run = slab_address(d);
	void *top = __atomic_load_n(&_sheaf_large_deferred, __ATOMIC_RELAXED);
	do
		*run = top;
	while (!__atomic_compare_exchange_n(&_sheaf_large_deferred, &top, run, true,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* The deferred runs freed, if drain_lock is free: the next large kmalloc()
 * or kfree() that goes to the buddy lists. */
static inline void large_drain_slow(void)
{
	if (unlikely(__atomic_load_n(&_sheaf_large_deferred, __ATOMIC_RELAXED)))
		_sheaf_large_drain(false);
}

/* ======================================================== rcu.c: kfree_rcu */

void _sheaf_rcu_submit_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			     bool recycle, unsigned int slot);
void _sheaf_rcu_before_fork(void);
void _sheaf_rcu_quiesce_worker(void);
void _sheaf_rcu_lock_worker(void);
void _sheaf_rcu_unlock_worker(bool child);
void _sheaf_rcu_after_fork(bool child);
void _sheaf_rcu_lock_batch(void);      /* fork: the pointer batch's lock */
void _sheaf_rcu_unlock_batch(void);


/* ======================================================= stats.c: counters */

/* An alias of <sheaf/stats.h> (SHEAF_STAT_ALIASES): read, never counted. */
static inline bool stat_is_alias(enum sheaf_stat_item item)
{
	switch (item) {
#define SHEAF_STAT_ALIAS(a, i) case SHEAF_STAT_##a:
	SHEAF_STAT_ALIASES(SHEAF_STAT_ALIAS)
#undef SHEAF_STAT_ALIAS
		return true;
	default:
		return false;
	}
}

static inline void stat_add(struct kmem_cache *s, enum sheaf_stat_item item,
			    unsigned int slot, uint64_t n)
{
	if (unlikely(READ_ONCE(_sheaf_stats_on))) {
		SHEAF_ASSERT(!stat_is_alias(item));
		__atomic_fetch_add(&s->stats[slot].v[item], n, __ATOMIC_RELAXED);
	}
}
static inline void stat(struct kmem_cache *s, enum sheaf_stat_item item,
			unsigned int slot)
{
	stat_add(s, item, slot, 1);
}
/* Count on the calling thread's slot, read only when counting is on. */
static inline void stat_here(struct kmem_cache *s, enum sheaf_stat_item item)
{
	if (unlikely(READ_ONCE(_sheaf_stats_on))) {
		SHEAF_ASSERT(!stat_is_alias(item));
		__atomic_fetch_add(&s->stats[sheaf_slot()].v[item], 1, __ATOMIC_RELAXED);
	}
}


/* ======================================== info.c: the statistics publisher */

/* info.c: publishing the statistics for sheafinfo (SHEAF_STATS) */
void _sheaf_info_init(void);
void _sheaf_info_prefork(void);
void _sheaf_info_postfork(bool child);


/* ====================================== info_format.c: the sheafinfo table */

/* Nothing here: its interface is info_page.h (shared with
 * tools/sheafinfo). */

/* ===================================== init.c: start-up, environment, fork */

/* init.c: the one-time start-up */
void _sheaf_init_slow(void);
static inline void sheaf_init(void)
{
	if (unlikely(!__atomic_load_n(&_sheaf_initialized, __ATOMIC_ACQUIRE)))
		_sheaf_init_slow();
}

/*
 * Reading the environment (init.c): secure_getenv() (a setuid or setgid
 * program ignores every variable), integers in a range and booleans
 * (0/1, no/yes, off/on, false/true) with one stderr line for a bad value.
 * Every variable is read once, by init.c's read_config(), into
 * _sheaf_config (platform data, percpu.c), which the layers read.
 */
const char *_sheaf_getenv(const char *name);
int _sheaf_env_int(const char *name, int def, int lo, int hi);
bool _sheaf_env_bool(const char *name, bool def);


/* ============================================== preload.c: libsheaf-malloc */

/* Nothing here: it overrides the weak _sheaf_inline_changed() (pcs.c)
 * and _sheaf_kmalloc_sheaves (kmalloc.c) declared above. */

#endif /* SHEAF_INTERNAL_H */
