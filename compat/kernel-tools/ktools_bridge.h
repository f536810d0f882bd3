/* SPDX-License-Identifier: MIT */
/*
 * The narrow interface between the two halves of the kernel-tools layer.
 *
 * ktools.c is compiled against the kernel harness's headers (its gfp
 * values, its struct list_lru, its prototypes) and defines the kernel names
 * the harness links against.  ktools_bridge.c is compiled against
 * <sheaf/slab.h> and calls libsheaf.  Neither sees the other's headers: only
 * this file, which uses plain C types and flags of its own.  The bridge
 * and libsheaf's static library have every global symbol renamed (objcopy
 * --redefine-syms, tools/kernel-suites.sh), so libsheaf's kmem_cache_alloc
 * and the layer's kmem_cache_alloc never meet.
 */
#ifndef KTOOLS_BRIDGE_H
#define KTOOLS_BRIDGE_H

#include <stddef.h>
#include <stdio.h>

/* Allocation flags, translated from the harness's gfp by ktools.c. */
#define KSB_ZERO    0x1u   /* __GFP_ZERO */
#define KSB_BLOCK   0x2u   /* __GFP_DIRECT_RECLAIM: may block, may map memory */
#define KSB_KSWAPD  0x4u   /* __GFP_KSWAPD_RECLAIM */
#define KSB_NOWARN  0x8u   /* __GFP_NOWARN */
#define KSB_NOFAIL  0x10u  /* __GFP_NOFAIL */
#define KSB_IOFS    0x20u  /* __GFP_IO | __GFP_FS */
#define KSB_HIGH    0x40u  /* __GFP_HIGH */

struct ksb_cache;       /* a libsheaf struct kmem_cache, opaque here */
struct ksb_sheaf;       /* a libsheaf struct slab_sheaf, opaque here */

/* A cache with sheaves of `capacity` objects (0: the classic path). */
struct ksb_cache *ksb_cache_create(const char *name, unsigned int size,
				   unsigned int align, void (*ctor)(void *),
				   unsigned int capacity);
void ksb_cache_destroy(struct ksb_cache *c);
void *ksb_alloc(struct ksb_cache *c, unsigned int flags);
int ksb_alloc_bulk(struct ksb_cache *c, unsigned int flags, size_t nr, void **p);
void ksb_free(struct ksb_cache *c, void *obj);
void ksb_free_bulk(struct ksb_cache *c, size_t nr, void **p);
void ksb_shrink(struct ksb_cache *c);
unsigned int ksb_capacity(struct ksb_cache *c);
/* The kernel's automatic sheaf capacity for objects of `size` bytes. */
unsigned int ksb_auto_capacity(unsigned int size);

/* Prefilled sheaves (libsheaf's kmem_cache_prefill_sheaf() family). */
struct ksb_sheaf *ksb_prefill_sheaf(struct ksb_cache *c, unsigned int flags,
				    unsigned int size);
int ksb_refill_sheaf(struct ksb_cache *c, unsigned int flags,
		     struct ksb_sheaf **sheafp, unsigned int size);
void ksb_return_sheaf(struct ksb_cache *c, unsigned int flags,
		      struct ksb_sheaf *sheaf);
void *ksb_alloc_from_sheaf(struct ksb_cache *c, unsigned int flags,
			   struct ksb_sheaf *sheaf);
unsigned int ksb_sheaf_size(struct ksb_sheaf *sheaf);

void *ksb_kmalloc(size_t size, unsigned int flags);
void ksb_kfree(const void *p);
/* Usable size of a libsheaf block (0 for NULL / ZERO_SIZE_PTR). */
size_t ksb_ksize(const void *p);
/* The libsheaf cache of a slab object (NULL for other memory). */
struct ksb_cache *ksb_obj_cache(const void *p);
/* Whether p is libsheaf memory (a slab object, large or huge kmalloc). */
int ksb_owns(const void *p);

/* Statistics: turn the counters on; one summary line for a cache. */
void ksb_stats_enable(void);
int ksb_stats_enabled(void);
void ksb_stats_line(FILE *out, struct ksb_cache *c, const char *name);
const char *ksb_percpu_mode(void);
/* Every counter of the cache, in the kernel's sysfs shape. */
void ksb_stats_print(FILE *out, struct ksb_cache *c);

#endif /* KTOOLS_BRIDGE_H */
