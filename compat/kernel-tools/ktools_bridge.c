/* SPDX-License-Identifier: MIT */
/*
 * libsheaf side of the kernel-tools layer: thin calls into libsheaf with
 * the flags of ktools_bridge.h translated to libsheaf's gfp.  Compiled
 * against <sheaf/slab.h> only; tools/kernel-suites.sh renames this object's
 * references to libsheaf (and libsheaf's own globals) so that they do not
 * collide with the kernel names ktools.c defines for the harness.
 */
#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include "ktools_bridge.h"

static gfp_t ksb_gfp(unsigned int f)
{
	gfp_t g = 0;
	if (f & KSB_ZERO)
		g |= __GFP_ZERO;
	if (f & KSB_BLOCK)
		g |= __GFP_DIRECT_RECLAIM;
	if (f & KSB_KSWAPD)
		g |= __GFP_KSWAPD_RECLAIM;
	if (f & KSB_NOWARN)
		g |= __GFP_NOWARN;
	if (f & KSB_NOFAIL)
		g |= __GFP_NOFAIL;
	if (f & KSB_IOFS)
		g |= __GFP_IO | __GFP_FS;
	if (f & KSB_HIGH)
		g |= __GFP_HIGH;
	return g;
}

struct ksb_cache *ksb_cache_create(const char *name, unsigned int size,
				   unsigned int align, void (*ctor)(void *),
				   unsigned int capacity)
{
	struct kmem_cache_args args = {
		.align = align,
		.ctor = ctor,
		.sheaf_capacity = capacity,
	};
	return (struct ksb_cache *)kmem_cache_create(name, size, &args, 0);
}

void ksb_cache_destroy(struct ksb_cache *c)
{
	kmem_cache_destroy((struct kmem_cache *)c);
}

void *ksb_alloc(struct ksb_cache *c, unsigned int flags)
{
	return kmem_cache_alloc((struct kmem_cache *)c, ksb_gfp(flags));
}

int ksb_alloc_bulk(struct ksb_cache *c, unsigned int flags, size_t nr, void **p)
{
	return kmem_cache_alloc_bulk((struct kmem_cache *)c, ksb_gfp(flags), nr, p);
}

void ksb_free(struct ksb_cache *c, void *obj)
{
	kmem_cache_free((struct kmem_cache *)c, obj);
}

void ksb_free_bulk(struct ksb_cache *c, size_t nr, void **p)
{
	kmem_cache_free_bulk((struct kmem_cache *)c, nr, p);
}

void ksb_shrink(struct ksb_cache *c)
{
	kmem_cache_shrink((struct kmem_cache *)c);
}

unsigned int ksb_capacity(struct ksb_cache *c)
{
	return sheaf_cache_capacity((struct kmem_cache *)c);
}

unsigned int ksb_auto_capacity(unsigned int size)
{
	return sheaf_auto_capacity(size);
}

struct ksb_sheaf *ksb_prefill_sheaf(struct ksb_cache *c, unsigned int flags,
				    unsigned int size)
{
	return (struct ksb_sheaf *)kmem_cache_prefill_sheaf(
		(struct kmem_cache *)c, ksb_gfp(flags), size);
}

int ksb_refill_sheaf(struct ksb_cache *c, unsigned int flags,
		     struct ksb_sheaf **sheafp, unsigned int size)
{
	return kmem_cache_refill_sheaf((struct kmem_cache *)c, ksb_gfp(flags),
				       (struct slab_sheaf **)sheafp, size);
}

void ksb_return_sheaf(struct ksb_cache *c, unsigned int flags,
		      struct ksb_sheaf *sheaf)
{
	kmem_cache_return_sheaf((struct kmem_cache *)c, ksb_gfp(flags),
				(struct slab_sheaf *)sheaf);
}

void *ksb_alloc_from_sheaf(struct ksb_cache *c, unsigned int flags,
			   struct ksb_sheaf *sheaf)
{
	return kmem_cache_alloc_from_sheaf((struct kmem_cache *)c, ksb_gfp(flags),
					   (struct slab_sheaf *)sheaf);
}

unsigned int ksb_sheaf_size(struct ksb_sheaf *sheaf)
{
	return kmem_cache_sheaf_size((struct slab_sheaf *)sheaf);
}

void *ksb_kmalloc(size_t size, unsigned int flags)
{
	return kmalloc(size, ksb_gfp(flags));
}

void ksb_kfree(const void *p)
{
	kfree(p);
}

size_t ksb_ksize(const void *p)
{
	return ksize(p);
}

struct ksb_cache *ksb_obj_cache(const void *p)
{
	return (struct ksb_cache *)sheaf_obj_cache(p);
}

int ksb_owns(const void *p)
{
	return sheaf_obj_node(p) >= 0;
}

void ksb_stats_enable(void)
{
	sheaf_stats_enable(true);
}

int ksb_stats_enabled(void)
{
	return sheaf_stats_enabled();
}

/*
 * One line per cache, in the shape tools/kernel-suites.sh parses:
 * allocations the program made (each object once, as sheafinfo counts
 * them: the 7.2 meanings of <sheaf/stats.h>), the share sheaves served (a
 * slot's, and prefilled ones), frees alike (a slot's sheaf), objects
 * refilled into and flushed from sheaves, barn traffic, prefilled sheaves.
 */
void ksb_stats_line(FILE *out, struct ksb_cache *c, const char *name)
{
	struct kmem_cache *s = (struct kmem_cache *)c;
#define V(x) sheaf_stats_get(s, SHEAF_STAT_##x)
	bool sheaves = sheaf_cache_capacity(s) != 0;
	uint64_t allocs = V(ALLOC_FASTPATH) + V(ALLOC_SLOWPATH) + V(ALLOC_FROM_SHEAF);
	uint64_t frees = V(FREE_FASTPATH) + V(FREE_SLOWPATH);
	/* alloc_fastpath is the cpu freelist's on a cache without sheaves. */
	uint64_t sheaf_allocs = (sheaves ? V(ALLOC_FASTPATH) : 0) + V(ALLOC_FROM_SHEAF);
	uint64_t sheaf_frees = sheaves ? V(FREE_FASTPATH) : 0;
	fprintf(out,
		"ktools-stats: cache=%s cap=%u mode=%s allocs=%llu sheaf_allocs=%llu "
		"sheaf_alloc_pct=%.1f frees=%llu sheaf_frees=%llu sheaf_free_pct=%.1f "
		"refill=%llu flush=%llu barn_get=%llu barn_get_fail=%llu "
		"barn_put=%llu barn_put_fail=%llu prefill=%llu return=%llu "
		"rcu_sheaf=%llu slabs_alloc=%llu\n",
		name, sheaf_cache_capacity(s), sheaf_percpu_mode(),
		(unsigned long long)allocs,
		(unsigned long long)sheaf_allocs,
		allocs ? 100.0 * (double)sheaf_allocs / (double)allocs : 0.0,
		(unsigned long long)frees,
		(unsigned long long)sheaf_frees,
		frees ? 100.0 * (double)sheaf_frees / (double)frees : 0.0,
		(unsigned long long)V(SHEAF_REFILL),
		(unsigned long long)V(SHEAF_FLUSH),
		(unsigned long long)V(BARN_GET),
		(unsigned long long)V(BARN_GET_FAIL),
		(unsigned long long)V(BARN_PUT),
		(unsigned long long)V(BARN_PUT_FAIL),
		(unsigned long long)(V(SHEAF_PREFILL_FAST) + V(SHEAF_PREFILL_SLOW) +
				     V(SHEAF_PREFILL_OVERSIZE)),
		(unsigned long long)(V(SHEAF_RETURN_FAST) + V(SHEAF_RETURN_SLOW)),
		(unsigned long long)V(FREE_RCU_SHEAF),
		(unsigned long long)V(ALLOC_SLAB));
#undef V
}

const char *ksb_percpu_mode(void)
{
	return sheaf_percpu_mode();
}

void ksb_stats_print(FILE *out, struct ksb_cache *c)
{
	sheaf_stats_print((struct kmem_cache *)c, out);
}
