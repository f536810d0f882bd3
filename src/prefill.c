/* SPDX-License-Identifier: MIT */
/*
 * prefill.c - prefilled sheaves: a caller borrows a sheaf holding at least N
 * objects before a section that must not fail or block, allocates from it
 * there, and gives it back after (the kernel's kmem_cache_prefill_sheaf()
 * family, the maple tree's way of preallocating nodes).
 *
 * A request up to the cache's sheaf_capacity takes the slot's spare
 * (sheaf_prefill_fast) or a barn sheaf (sheaf_prefill_slow) and fills it to
 * full capacity.  A larger request, or a cache without sheaves (capacity 0,
 * debug caches), gets an "oversize" sheaf of exactly that capacity, filled
 * with exactly that many objects (sheaf_prefill_oversize) and flushed and
 * freed when it is returned.  While a sheaf is lent out its capacity and
 * flags live in its _info (the barn link is unused then).
 *
 * Return: the sheaf becomes the spare if the slot has none
 * (sheaf_return_fast), else it is topped up and put into the barn as a full
 * sheaf, or flushed and freed when the barn is at its limit or the top-up
 * fails (sheaf_return_slow).
 *
 * That is the kernel's design, which a cache that does not recycle
 * (SHEAF_ADAPTIVE=0, the library's own caches: cache_recycles()) follows
 * exactly.  The others recycle first: a prefill tops the spare up from
 * main and, still short, takes a full barn sheaf instead; a return pools
 * the sheaf with the spare rather than refilling it from slabs.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/*
 * A lent sheaf's _info.flags: SHEAF_LENT in the high half (a value the
 * high half of a user-space pointer, which is what a barn link or a free
 * pointer leaves there, never has), SHEAF_OVERSIZE in the low bit.  Set
 * when the sheaf goes out, checked and cleared when it comes back: a
 * second return, or an allocation from a sheaf already given back, finds
 * no SHEAF_LENT and is reported like a double free.
 */
#define SHEAF_LENT      0x5eaf0000u
#define SHEAF_LENT_MASK 0xffff0000u
#define SHEAF_OVERSIZE  1u

static inline bool is_oversize(struct slab_sheaf *sheaf)
{
	return sheaf->_info.flags & SHEAF_OVERSIZE;
}

/* Report (and abort) a sheaf that is not one of s's lent out. */
static void check_lent(struct kmem_cache *s, struct slab_sheaf *sheaf,
		       const char *fn, void *caller)
{
	cache_check_live(s, fn, caller);
	if (unlikely(READ_ONCE(sheaf->cache) != s))
		_sheaf_report_invalid(fn, "sheaf of another cache", sheaf, s, caller);
	if (unlikely((sheaf->_info.flags & SHEAF_LENT_MASK) != SHEAF_LENT))
		_sheaf_report_invalid(fn, "sheaf not lent out (returned already?)",
				      sheaf, s, caller);
}

/* An oversize sheaf of exactly `size` objects, or NULL with nothing kept. */
static struct slab_sheaf *prefill_oversize(struct kmem_cache *s, gfp_t gfp,
					   unsigned int size, unsigned int slot)
{
	struct slab_sheaf *sheaf = _sheaf_alloc_sheaf(s, gfp, size, slot);
	if (!sheaf)
		return NULL;
	sheaf->_info.capacity = size;
	sheaf->_info.flags = SHEAF_LENT | SHEAF_OVERSIZE;
	if (_sheaf_refill_sheaf(s, sheaf, size, gfp, slot)) {
		_sheaf_free_sheaf(s, sheaf, slot);
		return NULL;
	}
	SHEAF_ASSERT(sheaf->size == size);
	stat(s, SHEAF_STAT_SHEAF_PREFILL_OVERSIZE, slot);
	atomic_fetch_add_explicit(&s->lent_sheaves, 1, memory_order_relaxed);
	return sheaf;
}

static inline bool prefill_args_ok(struct kmem_cache *s, gfp_t gfp,
				   unsigned int size)
{
	if (unlikely(!s || !sheaf_gfp_ok(gfp) || size == 0 ||
		     size > SHEAF_MAX_PREFILL)) {
		errno = EINVAL;
		return false;
	}
	return true;
}

SHEAF_EXPORT struct slab_sheaf *kmem_cache_prefill_sheaf(struct kmem_cache *s,
							 gfp_t gfp,
							 unsigned int size)
{
	unsigned int slot = sheaf_slot();
	if (!prefill_args_ok(s, gfp, size))
		return NULL;
	cache_check_live(s, "kmem_cache_prefill_sheaf", __builtin_return_address(0));
	/* A regular sheaf goes out filled to the capacity of now. */
	unsigned int cap = cache_has_sheaves(s) ? cache_cap(s) : 0;
	if (size > cap)
		return prefill_oversize(s, gfp, size, slot);

	bool from_barn;
	struct slab_sheaf *sheaf = _sheaf_pcs_take_spare(s, size, &slot, &from_barn);
	if (sheaf) {
		stat(s, SHEAF_STAT_SHEAF_PREFILL_FAST, slot);
		/*
		 * Short spare (and main): a full sheaf waiting in the barn
		 * (freed objects, RCU-recycled ones) went out instead, rather
		 * than objects coming from slabs while the barn's are flushed
		 * to them (libsheaf's; the kernel refills from slabs).
		 */
		if (from_barn)
			stat(s, SHEAF_STAT_BARN_GET, slot);
	} else {
		sheaf = _sheaf_barn_get_full_or_empty(sheaf_local_barn(s));
		stat(s, SHEAF_STAT_SHEAF_PREFILL_SLOW, slot);
		if (sheaf)
			stat(s, sheaf->size ? SHEAF_STAT_BARN_GET : SHEAF_STAT_BARN_GET_FAIL,
			     slot);
	}
	if (!sheaf) {
		sheaf = _sheaf_alloc_sheaf(s, gfp, s->sheaf_room, slot);
		if (!sheaf)
			return NULL;
	}
	/* Its capacity while lent: what it holds or the cache's, whichever is
	 * more (the cache's may have gone down since it filled). */
	sheaf->_info.capacity = MAX(cap, sheaf->size);
	sheaf->_info.flags = SHEAF_LENT;
	/* As the kernel: a regular sheaf goes out full, not just to `size`. */
	if (sheaf->size < size &&
	    _sheaf_refill_sheaf(s, sheaf, cap, gfp, slot)) {
		_sheaf_discard_sheaf(s, sheaf, slot);
		return NULL;
	}
	/* A regular sheaf goes out with at least `size`, at most its capacity. */
	SHEAF_ASSERT(sheaf->cache == s && sheaf->size >= size &&
		     sheaf->size <= sheaf->_info.capacity);
	/* The first object it hands out: its line comes in for writing
	 * while the caller prepares (kmem_cache_alloc_from_sheaf() does the
	 * same for each next one). */
	__builtin_prefetch(sheaf->objects[sheaf->size - 1], 1, 3);
	atomic_fetch_add_explicit(&s->lent_sheaves, 1, memory_order_relaxed);
	return sheaf;
}

SHEAF_EXPORT void *kmem_cache_alloc_from_sheaf(struct kmem_cache *s, gfp_t gfp,
					       struct slab_sheaf *sheaf)
{
	if (unlikely(!s || !sheaf || !sheaf_gfp_ok(gfp))) {
		errno = EINVAL;
		return NULL;
	}
	check_lent(s, sheaf, "kmem_cache_alloc_from_sheaf",
		   __builtin_return_address(0));
	/* Never falls back to the cache: an empty sheaf gives NULL. */
	if (unlikely(!sheaf->size))
		return NULL;
	SHEAF_ASSERT(sheaf->size <= sheaf->_info.capacity);
	void *obj = sheaf->objects[--sheaf->size];
	/* The caller writes the object; the next one's line comes in
	 * meanwhile (a sheaf's objects are cold, often back from RCU). */
	if (sheaf->size)
		__builtin_prefetch(sheaf->objects[sheaf->size - 1], 1, 3);
	track_alloc(s, obj);
	if (gfp & __GFP_ZERO)
		memset(obj, 0, s->object_size);
	stat_here(s, SHEAF_STAT_ALLOC_FROM_SHEAF);
	return obj;
}

SHEAF_EXPORT int kmem_cache_refill_sheaf(struct kmem_cache *s, gfp_t gfp,
					 struct slab_sheaf **sheafp,
					 unsigned int size)
{
	if (!s || !sheafp || !*sheafp || !sheaf_gfp_ok(gfp) ||
	    size > SHEAF_MAX_PREFILL)
		return -EINVAL;
	struct slab_sheaf *sheaf = *sheafp;
	check_lent(s, sheaf, "kmem_cache_refill_sheaf", __builtin_return_address(0));
	if (sheaf->size >= size)
		return 0;
	if (size <= sheaf->_info.capacity) {
		/* Regular and oversize sheaves alike: to their own capacity. */
		return _sheaf_refill_sheaf(s, sheaf, sheaf->_info.capacity, gfp, sheaf_slot());
	}
	/* Larger than this sheaf can hold: a new one; the old stays on failure. */
	struct slab_sheaf *bigger = kmem_cache_prefill_sheaf(s, gfp, size);
	if (!bigger)
		return -ENOMEM;
	kmem_cache_return_sheaf(s, gfp, sheaf);
	*sheafp = bigger;
	return 0;
}

SHEAF_EXPORT void kmem_cache_return_sheaf(struct kmem_cache *s, gfp_t gfp,
					  struct slab_sheaf *sheaf)
{
	unsigned int slot = sheaf_slot();
	if (!sheaf)
		return;
	if (unlikely(!s)) {
		_sheaf_report_invalid("kmem_cache_return_sheaf", "NULL cache for sheaf",
				      sheaf, NULL, __builtin_return_address(0));
	}
	check_lent(s, sheaf, "kmem_cache_return_sheaf", __builtin_return_address(0));
	/* A lent sheaf holds at most its capacity, and a regular one has the
	 * cache's room (what lets it become a spare or a barn sheaf). */
	SHEAF_ASSERT(sheaf->size <= sheaf->_info.capacity);
	SHEAF_ASSERT((sheaf->_info.flags & SHEAF_OVERSIZE) ||
		     sheaf->_info.capacity <= s->sheaf_room);
	bool oversize = is_oversize(sheaf);
	sheaf->_info.flags = 0; /* back: not lent any more */
	long lent = atomic_fetch_sub_explicit(&s->lent_sheaves, 1, memory_order_relaxed);
	SHEAF_ASSERT(lent > 0); /* this sheaf was counted when it went out */
	if (!cache_has_sheaves(s) || oversize) {
		_sheaf_discard_sheaf(s, sheaf, slot);
		return;
	}
	/*
	 * The slot's spare if it has none (one slot lock for both cases);
	 * else pooled with its spare, so that the objects of both stay cached
	 * and what comes back is full or empty (libsheaf's; the kernel
	 * refills the returned sheaf from slabs for the barn); or, the slot
	 * busy, the sheaf as it was.
	 */
	struct slab_sheaf *left = _sheaf_pcs_pool_spare(s, sheaf, &slot);
	if (!left) {
		stat(s, SHEAF_STAT_SHEAF_RETURN_FAST, slot);
		return;
	}
	stat(s, SHEAF_STAT_SHEAF_RETURN_SLOW, slot);
	struct node_barn *barn = sheaf_local_barn(s);
	sheaf = left;
	if (!sheaf->size && cache_recycles(s)) {	/* the kernel refills it */
		if (!_sheaf_barn_put_empty(barn, sheaf, false))
			_sheaf_free_sheaf(s, sheaf, slot);
		return;
	}
	/* Full from the pooling, or topped up from slabs: into the barn,
	 * beyond its limit only as far as demand has earned (rcu_credit). */
	unsigned int cap = cache_cap(s);
	if ((READ_ONCE(barn->nr_full) >= cache_barn_limit(s) &&
	     !(sheaf->size >= cap && barn_spend_rcu_credit(barn))) ||
	    _sheaf_refill_sheaf(s, sheaf, cap, gfp, slot)) {
		_sheaf_discard_sheaf(s, sheaf, slot);
		return;
	}
	_sheaf_barn_put_full(barn, sheaf);
	stat(s, SHEAF_STAT_BARN_PUT, slot);
}

SHEAF_EXPORT unsigned int kmem_cache_sheaf_size(struct slab_sheaf *sheaf)
{
	return sheaf ? sheaf->size : 0;
}
