/* SPDX-License-Identifier: MIT */
/*
 * <sheaf/stats.h> - per-cache statistics counters.
 *
 * One X-macro list generates the enum, the name table and the counter
 * arrays.  The names are the kernel's (/sys/kernel/slab/<cache>/<name>).
 * Counters are kept per CPU slot and summed on read; they are exact when
 * the process is quiescent.  Every cache has its counters from creation;
 * they count only while statistics are on: from start-up with SHEAF_STATS=1
 * (or exit), or from a sheaf_stats_enable(true) call, which may come at any
 * time and applies to every cache, created before or after.  While they
 * count, the inline fast paths are off (the exported functions count);
 * while off, counting costs one predictable branch and the counters keep
 * their values (reads return what was counted while on, 0 if never).
 * SHEAF_STATS=1 or exit also publishes them for the sheafinfo tool
 * (<sheaf/info.h>, docs/STATS.md); sheaf_stats_enable() does not.
 */
#ifndef SHEAF_STATS_H
#define SHEAF_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHEAF_STAT_ITEMS(X)                                                     \
	/* classic SLUB path */                                                \
	X(ALLOC_FASTPATH, alloc_fastpath)   /* from the slot's cpu freelist or main sheaf */ \
	X(ALLOC_SLOWPATH, alloc_slowpath)   /* needed the slab layer */       \
	X(FREE_FASTPATH, free_fastpath)     /* to the slot's cpu freelist or main sheaf */ \
	X(FREE_SLOWPATH, free_slowpath)     /* to the object's slab */        \
	X(FREE_FROZEN, free_frozen)         /* slab freelist of a frozen (cpu) slab */ \
	X(FREE_ADD_PARTIAL, free_add_partial)       /* full slab got a free object */ \
	X(FREE_REMOVE_PARTIAL, free_remove_partial) /* empty slab left the partial list */ \
	X(ALLOC_FROM_PARTIAL, alloc_from_partial)   /* slab taken from a partial list */ \
	X(ALLOC_SLAB, alloc_slab)           /* new slab from the page layer */ \
	X(ALLOC_REFILL, alloc_refill)       /* cpu slab refilled from its own slab */ \
	X(ALLOC_NODE_MISMATCH, alloc_node_mismatch) /* node request bypassed the cpu cache */ \
	X(FREE_SLAB, free_slab)             /* slab given back to the page layer */ \
	X(CPUSLAB_FLUSH, cpuslab_flush)     /* cpu slab flushed (shrink/destroy) */ \
	X(DEACTIVATE_FULL, deactivate_full)     /* cpu slab was full when dropped */ \
	X(DEACTIVATE_EMPTY, deactivate_empty)   /* cpu slab was empty when dropped */ \
	X(DEACTIVATE_TO_HEAD, deactivate_to_head) /* cpu slab to the partial list */ \
	X(DEACTIVATE_REMOTE_FREES, deactivate_remote_frees) /* slab had remote frees */ \
	X(CMPXCHG_DOUBLE_CPU_FAIL, cmpxchg_double_cpu_fail) /* cpu (freelist,tid) race */ \
	X(CMPXCHG_DOUBLE_FAIL, cmpxchg_double_fail) /* slab (freelist,counters) race */ \
	X(SLOT_BUSY, slot_busy)             /* slot held by another thread: bypassed */ \
	/* per-CPU sheaves (the seeds' counters and the later ones) */         \
	X(ALLOC_CPU_SHEAF, alloc_cpu_sheaf) /* served from a cpu sheaf */     \
	X(FREE_CPU_SHEAF, free_cpu_sheaf)   /* freed into a cpu sheaf */      \
	X(SHEAF_REFILL, sheaf_refill)       /* objects refilled into sheaves */ \
	X(SHEAF_FLUSH_MAIN, sheaf_flush_main)   /* objects flushed from main */ \
	X(SHEAF_FLUSH_OTHER, sheaf_flush_other) /* objects flushed from others */ \
	X(SHEAF_FLUSH, sheaf_flush)         /* objects flushed to slabs */    \
	X(SHEAF_ALLOC, sheaf_alloc)         /* sheaves allocated */           \
	X(SHEAF_FREE, sheaf_free)           /* sheaves freed */               \
	X(BARN_GET, barn_get)               /* full sheaf taken from the barn */ \
	X(BARN_GET_FAIL, barn_get_fail)     /* barn had no full sheaf */      \
	X(BARN_PUT, barn_put)               /* full sheaf put into the barn */ \
	X(BARN_PUT_FAIL, barn_put_fail)     /* barn at its limit */           \
	X(SHEAF_PREFILL_FAST, sheaf_prefill_fast)         \
	X(SHEAF_PREFILL_SLOW, sheaf_prefill_slow)         \
	X(SHEAF_PREFILL_OVERSIZE, sheaf_prefill_oversize) \
	X(SHEAF_RETURN_FAST, sheaf_return_fast)           \
	X(SHEAF_RETURN_SLOW, sheaf_return_slow)           \
	X(FREE_RCU_SHEAF, free_rcu_sheaf)                 /* objects kfree_rcu() put in an rcu_free sheaf */ \
	X(FREE_RCU_SHEAF_FAIL, free_rcu_sheaf_fail)                 /* objects that found no rcu_free sheaf */ \
	X(RCU_SHEAF_RECYCLED, rcu_sheaf_recycled) /* objects back in the barn via RCU */

enum sheaf_stat_item {
#define SHEAF_STAT_ENUM(e, n) SHEAF_STAT_##e,
	SHEAF_STAT_ITEMS(SHEAF_STAT_ENUM)
#undef SHEAF_STAT_ENUM
	SHEAF_STAT_NR
};

struct kmem_cache;

/* Name of a counter ("alloc_fastpath"), or NULL when item is out of range. */
const char *sheaf_stat_name(enum sheaf_stat_item item);

/*
 * Sum of a counter over all slots.  Returns 0 for a NULL cache or an item
 * out of range.  With statistics off it returns what was counted while
 * they were on (0 if they never were).
 */
uint64_t sheaf_stats_get(struct kmem_cache *s, enum sheaf_stat_item item);

/* Value of a counter on one slot (0 when out of range). */
uint64_t sheaf_stats_get_slot(struct kmem_cache *s, enum sheaf_stat_item item,
			      unsigned int slot);

/* Zero every counter of the cache (for tests; racy against running users). */
void sheaf_stats_reset(struct kmem_cache *s);

/*
 * Print every counter in the kernel's sysfs shape, one per line:
 *   "alloc_fastpath 1234 C0=1000 C1=234"
 * (total, then the non-zero per-slot values).  Returns 0, or -EINVAL for a
 * NULL argument.
 */
int sheaf_stats_print(struct kmem_cache *s, FILE *out);

/* Whether counters are being kept (SHEAF_STATS at start-up, then the last
 * sheaf_stats_enable()). */
bool sheaf_stats_enabled(void);

/*
 * Turn counting on or off for the whole process, at any time, for every
 * cache.  Counting is exact only for operations that happen while it is
 * on; turning it off keeps the counters' values.  It neither publishes
 * the counters for sheafinfo nor stops publishing (SHEAF_STATS decides).
 */
void sheaf_stats_enable(bool on);

#ifdef __cplusplus
}
#endif
#endif /* SHEAF_STATS_H */
