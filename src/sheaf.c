/* SPDX-License-Identifier: MIT */
/*
 * sheaf.c - struct slab_sheaf as a container: allocate and free a sheaf,
 * refill it from slabs and flush it back to them (the slab layer's
 * internal bulk operations).  Below the barn, which stores sheaves, and
 * the per-CPU layer (pcs.c), which uses them.  A sheaf's memory comes
 * from the sheaf-store kmalloc caches (the one call up the table from
 * here, listed in tools/layercheck.exceptions).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------- sheaf primitives */

/*
 * The invariant of struct slab_sheaf: objects[0..size) are objects of the
 * sheaf's cache (a walk of size descriptor lookups, compiler.h).
 */
bool _sheaf_sheaf_objects_of(const struct kmem_cache *s,
			     const struct slab_sheaf *sheaf)
{
	if (sheaf->cache != s)
		return false;
	for (unsigned int i = 0; i < sheaf->size; i++) {
		const struct slab *slab = virt_to_slab(sheaf->objects[i]);
		if (!slab || !(desc_flags(slab) & PG_SLAB) || slab->slab_cache != s)
			return false;
	}
	return true;
}

struct slab_sheaf *_sheaf_alloc_sheaf(struct kmem_cache *s, gfp_t gfp,
				      unsigned int capacity, unsigned int slot)
{
	size_t bytes = sizeof(struct slab_sheaf) + (size_t)capacity * sizeof(void *);
	if (should_fail(SHEAF_FAULT_SHEAF, s, bytes, gfp))
		return NULL;
	struct slab_sheaf *sheaf = _sheaf_kmalloc_internal(bytes, gfp & ~__GFP_ZERO);
	if (!sheaf)
		return NULL;
	sheaf->_link[0] = sheaf->_link[1] = NULL;
	sheaf->cache = s;
	sheaf->size = 0;
	sheaf->node = sheaf_node();
	stat(s, SHEAF_STAT_SHEAF_ALLOC, slot);
	return sheaf;
}

void _sheaf_free_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
		       unsigned int slot)
{
	stat(s, SHEAF_STAT_SHEAF_FREE, slot);
	kfree(sheaf);
}

/*
 * Fill sheaf up to `to` objects from slabs: all or nothing (-ENOMEM, the
 * sheaf as it was).  Debug caches take every object through the checked
 * path (prefilled sheaves of debug caches).
 */
int _sheaf_refill_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			unsigned int to, gfp_t gfp, unsigned int slot)
{
	SHEAF_ASSERT(sheaf->cache == s);
	if (sheaf->size >= to)
		return 0;
	size_t want = to - sheaf->size;
	void **p = &sheaf->objects[sheaf->size];
	if (unlikely(cache_debug(s))) {
		for (size_t i = 0; i < want; i++) {
			p[i] = _sheaf_debug_alloc(s, gfp, NUMA_NO_NODE, slot);
			if (!p[i]) {
				while (i--)
					_sheaf_debug_free(s, virt_to_slab(p[i]), p[i], slot);
				return -ENOMEM;
			}
		}
	} else if (!_sheaf_slab_alloc_bulk(s, gfp, sheaf_node(), p, want, slot)) {
		return -ENOMEM;
	}
	sheaf->size = to;
	/* What the slab layer handed out is the cache's (one walk per refill,
	 * as long as the refill's own). */
	SHEAF_ASSERT_EXPENSIVE(_sheaf_sheaf_objects_of(s, sheaf));
	/* Not alloc_slowpath: the objects count when a sheaf hands them out. */
	stat_add(s, SHEAF_STAT_SHEAF_REFILL, slot, want);
	return 0;
}

/* Give every object of the sheaf back to its slab; the sheaf stays. */
void _sheaf_flush_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			enum sheaf_stat_item which, unsigned int slot)
{
	size_t n = sheaf->size;
	SHEAF_ASSERT(sheaf->cache == s);
	if (!n)
		return;
	/* Before the objects go back to slabs: they are s's (bounded by the
	 * sheaf's size, as the flush itself). */
	SHEAF_ASSERT_EXPENSIVE(_sheaf_sheaf_objects_of(s, sheaf));
	if (unlikely(cache_debug(s))) {
		for (size_t i = 0; i < n; i++)
			_sheaf_debug_free(s, virt_to_slab(sheaf->objects[i]),
					  sheaf->objects[i], slot);
	} else {
		_sheaf_slab_free_bulk(s, n, sheaf->objects, slot);
	}
	sheaf->size = 0;
	/* Not free_slowpath: the objects counted when they went into a sheaf. */
	stat_add(s, which, slot, n);
	stat_add(s, SHEAF_STAT_SHEAF_FLUSH, slot, n);
}

/* Flush a sheaf's objects to their slabs and free the sheaf. */
void _sheaf_discard_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			  unsigned int slot)
{
	_sheaf_flush_sheaf(s, sheaf, SHEAF_STAT_SHEAF_FLUSH_OTHER, slot);
	_sheaf_free_sheaf(s, sheaf, slot);
}

