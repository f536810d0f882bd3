/* SPDX-License-Identifier: MIT */
/*
 * <sheaf/stats.h> - per-cache statistics counters.
 *
 * One X-macro list generates the enum, the name table and the counter
 * arrays.  The names are the kernel's (/sys/kernel/slab/<cache>/<name>):
 * 7.2's, with 7.2's meanings, plus 6.18's classic-path items and two 6.18
 * aliases, and a few of libsheaf's own (the list below tags each one;
 * docs/STATS.md has the table).
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

/*
 * The counters.  Tags: [7.2] the kernel 7.2 stat_item of that name, with
 * its meaning; [6.18] a 6.18 item that 7.x removed along with the classic
 * per-CPU slab, kept for libsheaf's classic path (caches without sheaves:
 * sheaf_capacity 0); [alias] a 6.18 name kept as an alias of a 7.2 item;
 * [libsheaf] libsheaf's own (or an RFC-era name the kernel dropped).
 *
 * alloc_fastpath, free_fastpath: on a cache with sheaves, the objects
 * served from and freed into the slot's sheaves (7.x's meaning; 6.18
 * counted these as alloc_cpu_sheaf, free_cpu_sheaf); on a classic cache,
 * the cpu slab's lockless freelist (6.18's meaning, and that cache's only
 * fast path).  alloc_slowpath, free_slowpath never count the objects a
 * sheaf refill takes from slabs or a sheaf flush gives back (sheaf_refill,
 * sheaf_flush count those): every allocation and every free the program
 * makes counts once, in alloc_fastpath, alloc_slowpath or alloc_from_sheaf,
 * in free_fastpath or free_slowpath (kfree_rcu() into an rcu_free sheaf:
 * free_rcu_sheaf instead).  Debug caches have no per-CPU cache: every
 * allocation and free counts in the slow-path item.
 *
 * The enum values are kept from release to release: new items are
 * appended (order_fallback, alloc_from_sheaf, capacity_grow,
 * capacity_shrink), the aliases keep theirs.
 */
#define SHEAF_STAT_ITEMS(X)                                                     \
	/* [7.2] objects from the slot's main sheaf (bulk: the batch); classic: \
	 * from the cpu slab's freelist */                                     \
	X(ALLOC_FASTPATH, alloc_fastpath)                                      \
	/* [7.2] objects from partial or new slabs, not sheaf refills; classic: \
	 * calls of the cpu slab's slow path (6.18); debug caches: every one */ \
	X(ALLOC_SLOWPATH, alloc_slowpath)                                      \
	/* [7.2] objects freed into the slot's main sheaf (bulk: the batch);   \
	 * classic: to the cpu slab's freelist */                              \
	X(FREE_FASTPATH, free_fastpath)                                        \
	/* [7.2] frees straight to the object's slab (remote node, slot busy,  \
	 * no room in the sheaves; classic: not the cpu slab's), not sheaf     \
	 * flushes */                                                          \
	X(FREE_SLOWPATH, free_slowpath)                                        \
	X(FREE_FROZEN, free_frozen)         /* [6.18] free to a frozen (cpu) slab's freelist */ \
	X(FREE_ADD_PARTIAL, free_add_partial)       /* [7.2] a free put a full slab on the partial list */ \
	X(FREE_REMOVE_PARTIAL, free_remove_partial) /* [7.2] a free emptied a slab, which left the list */ \
	X(ALLOC_FROM_PARTIAL, alloc_from_partial)   /* [6.18] cpu slab taken from a partial list */ \
	X(ALLOC_SLAB, alloc_slab)           /* [7.2] new slab from the page layer */ \
	X(ALLOC_REFILL, alloc_refill)       /* [6.18] cpu slab refilled from its own slab */ \
	X(ALLOC_NODE_MISMATCH, alloc_node_mismatch) /* [7.2] node request bypassed the per-CPU cache */ \
	X(FREE_SLAB, free_slab)             /* [7.2] slab given back to the page layer */ \
	X(CPUSLAB_FLUSH, cpuslab_flush)     /* [6.18] cpu slab flushed (shrink/destroy) */ \
	X(DEACTIVATE_FULL, deactivate_full)     /* [6.18] cpu slab was full when dropped */ \
	X(DEACTIVATE_EMPTY, deactivate_empty)   /* [6.18] cpu slab was empty when dropped */ \
	X(DEACTIVATE_TO_HEAD, deactivate_to_head) /* [6.18] cpu slab to the partial list */ \
	X(DEACTIVATE_REMOTE_FREES, deactivate_remote_frees) /* [6.18] dropped slab had remote frees */ \
	X(CMPXCHG_DOUBLE_CPU_FAIL, cmpxchg_double_cpu_fail) /* [6.18] cpu (freelist,tid) race */ \
	X(CMPXCHG_DOUBLE_FAIL, cmpxchg_double_fail) /* [7.2] slab (freelist,counters) race */ \
	X(SLOT_BUSY, slot_busy)             /* [libsheaf] slot held by another thread: bypassed */ \
	/* [alias] 6.18's ALLOC_PCS: alloc_fastpath on a cache with sheaves,   \
	 * 0 on others; never counted itself (SHEAF_STAT_ALIASES) */           \
	X(ALLOC_CPU_SHEAF, alloc_cpu_sheaf)                                    \
	X(FREE_CPU_SHEAF, free_cpu_sheaf)   /* [alias] 6.18's FREE_PCS: free_fastpath, likewise */ \
	X(SHEAF_REFILL, sheaf_refill)       /* [7.2] objects refilled into sheaves from slabs */ \
	X(SHEAF_FLUSH_MAIN, sheaf_flush_main)   /* [libsheaf] RFC-era: objects flushed from a main sheaf */ \
	X(SHEAF_FLUSH_OTHER, sheaf_flush_other) /* [libsheaf] RFC-era: from any other sheaf */ \
	X(SHEAF_FLUSH, sheaf_flush)         /* [7.2] objects flushed from sheaves to slabs */ \
	X(SHEAF_ALLOC, sheaf_alloc)         /* [7.2] sheaves allocated */      \
	X(SHEAF_FREE, sheaf_free)           /* [7.2] sheaves freed */          \
	X(BARN_GET, barn_get)               /* [7.2] full sheaf taken from the barn */ \
	X(BARN_GET_FAIL, barn_get_fail)     /* [7.2] barn had no full sheaf */ \
	X(BARN_PUT, barn_put)               /* [7.2] full sheaf put into the barn */ \
	X(BARN_PUT_FAIL, barn_put_fail)     /* [7.2] barn at its limit */      \
	X(SHEAF_PREFILL_FAST, sheaf_prefill_fast)         /* [7.2] prefill took the spare */ \
	X(SHEAF_PREFILL_SLOW, sheaf_prefill_slow)         /* [7.2] prefill found no spare */ \
	X(SHEAF_PREFILL_OVERSIZE, sheaf_prefill_oversize) /* [7.2] oversize sheaf allocated */ \
	X(SHEAF_RETURN_FAST, sheaf_return_fast)           /* [7.2] returned sheaf became the spare */ \
	X(SHEAF_RETURN_SLOW, sheaf_return_slow)           /* [7.2] it could not */ \
	X(FREE_RCU_SHEAF, free_rcu_sheaf)           /* [7.2] objects kfree_rcu() put in an rcu_free sheaf */ \
	X(FREE_RCU_SHEAF_FAIL, free_rcu_sheaf_fail) /* [7.2] objects that found no rcu_free sheaf */ \
	X(RCU_SHEAF_RECYCLED, rcu_sheaf_recycled)   /* [libsheaf] objects back in the barn via RCU */ \
	/* [7.2] a new slab took the minimum order (one object's pages): the   \
	 * cache's order was not to be had */                                  \
	X(ORDER_FALLBACK, order_fallback)                                      \
	/* [libsheaf] objects kmem_cache_alloc_from_sheaf() handed out (the    \
	 * kernel counts none: they were counted in sheaf_refill) */           \
	X(ALLOC_FROM_SHEAF, alloc_from_sheaf)                                  \
	/* [libsheaf] adaptive capacity: the cache's sheaf capacity or barn     \
	 * limit went one step up (a slot missed fast), or down (quiet looks   \
	 * of the idle thread, kmem_cache_shrink()) */                         \
	X(CAPACITY_GROW, capacity_grow)                                        \
	X(CAPACITY_SHRINK, capacity_shrink)

/*
 * The aliases, (alias, item): an alias is never counted; sheaf_stats_get(),
 * sheaf_stats_get_slot() and sheaf_stats_print() give the item's value on a
 * cache with sheaves and 0 on a cache without (6.18 counted sheaf traffic
 * under these names, and classic caches had none).  Programs written for
 * 6.18's names keep compiling and read what 6.18 counted there (libsheaf
 * counted kmem_cache_alloc_from_sheaf() in alloc_cpu_sheaf too; that is
 * alloc_from_sheaf now).
 */
#define SHEAF_STAT_ALIASES(X)                                                   \
	X(ALLOC_CPU_SHEAF, ALLOC_FASTPATH)                                     \
	X(FREE_CPU_SHEAF, FREE_FASTPATH)

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
 * they were on (0 if they never were).  An alias (SHEAF_STAT_ALIASES)
 * reads as its item on a cache with sheaves, 0 on others.
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
