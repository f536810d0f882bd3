/* SPDX-License-Identifier: MIT */
/*
 * types.h - every internal type of libsheaf, each with its invariants:
 * structures, unions, enums, the constants that describe their layout, the
 * static asserts that tie a layout to the offsets the restartable sections
 * of <sheaf/rseq.h> hard-code, and the table of the states of a sheaf.
 * Grouped by the layer that owns the type, bottom up in the layer table of
 * docs/ARCHITECTURE.md ("Layers, bottom up").  No functions and no data
 * (but _sheaf_rt_local, which the public headers must see first): those
 * are in internal.h, which includes this file first (the sources include
 * internal.h, never this file alone).
 *
 * The public types the library shares with its inline fast paths (struct
 * slab_sheaf, struct sheaf_pcs, struct sheaf_cache_hot) are in
 * <sheaf/rseq.h>; the sheaf's states are described here all the same
 * (below, "sheaf").
 */
#ifndef SHEAF_TYPES_H
#define SHEAF_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The library's sections read its own hidden copy of sheaf_rt (percpu.c),
 * RIP-relative, not the exported one through the GOT. */
#define SHEAF_RT _sheaf_rt_local
#define SHEAF_RT_HIDDEN 1
struct sheaf_runtime;
extern struct sheaf_runtime _sheaf_rt_local __attribute__((visibility("hidden")));
#include <sheaf/slab.h>
#include <sheaf/rseq.h>

#include "compiler.h"
#include "list.h"

/* ===================================================== platform (percpu.c) */

#define MAX_NUMNODES 64
#define CACHE_LINE   64

/*
 * The lock order (docs/ARCHITECTURE.md, "Lock order", one paragraph per
 * rank): a thread holding a lock of rank r takes only locks of rank >= r.
 * Locks of one rank (the per-cache and per-node ones) are taken in cache
 * list and node order by the fork handlers, and one at a time elsewhere.
 *
 * Builds without NDEBUG (Debug, sanitizers) check it: every library lock
 * is taken through sheaf_lock() and friends, which count the ranks the
 * thread holds (percpu.c) and abort on an inversion, on an unlock of a
 * rank not held, and where a helper's contract names a lock the caller
 * must hold (sheaf_lock_held()).
 */
enum sheaf_lock_rank {
	LR_BATCH = 1,   /* rcu.c batch_lock: the kfree_rcu() pointer batch */
	LR_DRAIN,       /* kmalloc_runs.c drain_lock: malloc_trim()'s run-cache drain */
	LR_INFO,        /* info.c info.lock: the statistics publisher */
	LR_SLAB_MUTEX,  /* slab_common.c _sheaf_slab_mutex: the cache list */
	LR_FLUSH,       /* per cache: flush_lock, remote owners of its slots */
	LR_SLOT,        /* per cache and slot: the slot lock */
	LR_BARN,        /* per cache and node: node_barn.lock */
	LR_LIST,        /* per cache and node: kmem_cache_node.list_lock */
	LR_ARENA,       /* pages.c _sheaf_arena_lock (huge.c too) */
	LR_PAGE,        /* pages.c page_node.lock */
	LR_POOL,        /* pages.c pool.lock: the fork-state pool */
	LR_LEAF,        /* fault.c glob_lock, rcu.c worker.lock */
	LR_NR
};

/* Configuration data (percpu.c), read once from the environment (init.c). */
struct sheaf_config {
	bool stats;             /* SHEAF_STATS=1 or exit: count and publish */
	bool stats_exit;        /* SHEAF_STATS=exit: print the table at exit */
	unsigned int stats_interval_ms; /* SHEAF_STATS_INTERVAL: publishing period */
	bool percpu_fallback;   /* SHEAF_PERCPU=fallback, or no rseq */
	bool percpu_cpu_id;     /* SHEAF_PERCPU=cpu_id: rseq slots by cpu_id
				   even where the kernel fills mm_cid */
	int fake_numa;          /* SHEAF_FAKE_NUMA=N (0: off) */
	int default_capacity;   /* SHEAF_DEFAULT_CAPACITY: -1 auto, 0 off, N */
	int kmalloc_capacity;   /* SHEAF_KMALLOC_CAPACITY: the kmalloc caches'
				 * minimum capacity when they have sheaves */
	unsigned int yield_every; /* SHEAF_DEBUG_YIELD=N: yield in 1 of N lock holds */
	size_t large_retain;    /* SHEAF_LARGE_RETAIN_MB, in bytes: freed huge
				 * spans kept resident for reuse (0: none) */
	unsigned int large_decay_ms; /* SHEAF_LARGE_DECAY_MS: kept that long */
	bool large_thp;         /* SHEAF_LARGE_THP: the huge heap's regions
				 * advised MADV_HUGEPAGE (huge.c) */
	int large_populate;     /* SHEAF_LARGE_POPULATE: -1 auto (learned
				 * from the program's frees), 0 off, 1 on */
	unsigned int idle_ms;   /* SHEAF_IDLE_MS: drain slots and barns idle
				 * that long (0: never; slab_common.c) */
	bool adaptive;          /* SHEAF_ADAPTIVE: capacity and barn limits
				 * follow the workload (pcs_adapt.c) */
	unsigned int adaptive_max; /* SHEAF_ADAPTIVE_MAX: growth factor bound */
	size_t adaptive_budget; /* SHEAF_ADAPTIVE_BUDGET_MB, in bytes */
	int malloc_verbose;     /* SHEAF_MALLOC_VERBOSE: 0, 1, 2 (libsheaf-malloc) */
	bool debug_abort;       /* SHEAF_DEBUG_ABORT (default on) */
	const char *slub_debug; /* SLUB_DEBUG, parsed by debug.c, or NULL */
	const char *fault[SHEAF_FAULT_NR]; /* SHEAF_FAILSLAB/PAGE/SHEAF, or NULL */
};

/* glibc's registered rseq area (glibc >= 2.35). */
struct sheaf_rseq_area {
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
	uint32_t node_id;
	uint32_t mm_cid;
};

/* ========================================================= pages (pages.c) */

#define PAGE_SHIFT   SHEAF_PAGE_SHIFT
#define PAGE_SIZE    SHEAF_PAGE_SIZE
#define ARENA_SHIFT  SHEAF_ARENA_SHIFT          /* 256 MiB arenas */
#define ARENA_SIZE   (1ul << ARENA_SHIFT)
#define ARENA_PAGES  (ARENA_SIZE >> PAGE_SHIFT)  /* 65536 */
#define MAX_ORDER    10                         /* page runs of 1..1024 pages */
#define MAX_RUN_SIZE (PAGE_SIZE << MAX_ORDER)   /* 4 MiB */
#define ADDR_BITS    47
#define ARENA_MAP_SIZE (1ul << (ADDR_BITS - ARENA_SHIFT))

/* Page descriptor flags (struct slab.flags). */
#define PG_BUDDY 0x01u  /* head of a free block in a buddy list; order valid */
#define PG_SLAB  0x02u  /* head of a slab */
#define PG_LARGE 0x04u  /* head of a large kmalloc run */
#define PG_TAIL  0x08u  /* tail page of an allocated run; head valid */
#define PG_DIRTY 0x10u  /* free block touched since it was last madvised */
#define PG_RSVD  0x20u  /* the arena's own descriptor pages */

/*
 * struct slab - the descriptor of one page ("struct page" and "struct slab"
 * in one), 64 bytes, in the memmap at the start of each arena.
 *
 * Invariants:
 *  - an allocated run of 2^order pages has its head descriptor flagged
 *    PG_SLAB or PG_LARGE with `order` set, and every tail flagged PG_TAIL;
 *    `head` of every page of the run (the head's too) points at the head,
 *    and for a slab every page's slab_cache names the cache (the inline
 *    free reads both without a branch); virt_to_slab() is O(1);
 *  - a run waiting in a per-CPU run cache of large kmalloc (kmalloc.c) is
 *    allocated as far as the buddy allocator knows, with head flags 0
 *    (neither PG_LARGE nor PG_BUDDY: kfree() reports it, the buddy does
 *    not merge it) and its tails still PG_TAIL;
 *  - a free block has only its head valid (PG_BUDDY, order, list link,
 *    and with PG_DIRTY the time dirty_ns it last became dirty);
 *    the descriptors of its other pages may have been zeroed by madvise;
 *  - for a slab: 0 <= inuse <= objects; inuse counts objects not on the
 *    slab's own freelist (objects handed out plus objects on a CPU slot's
 *    freelist when frozen); frozen == 1 iff a CPU slot owns the slab
 *    (kmem_cache_cpu.slab); on_partial iff it is on the node's partial
 *    list; both only change under that node's list_lock;
 *  - (freelist, counters) change together by one 16-byte compare-and-swap.
 */
struct slab {
	union {
		struct {
			void *freelist;
			union {
				unsigned long counters;
				struct {
					unsigned inuse : 16;
					unsigned objects : 15;
					unsigned frozen : 1;
					unsigned pad : 32;
				};
			};
		};
		unsigned __int128 freelist_counters;
	} __attribute__((aligned(16)));
	struct kmem_cache *slab_cache;  /* every page of a slab */
	struct list_head slab_list;     /* partial list, or buddy free list */
	struct slab *head;              /* every page of an allocated run */
	uint8_t flags;
	uint8_t order;
	uint16_t node;
	uint8_t on_partial;  /* on the node's partial list (list_lock) */
	uint8_t pad2[3];
	uint64_t dirty_ns;   /* a free block's head with PG_DIRTY: when it last
				became dirty (_sheaf_coarse_ns(); pages.c) */
};
_Static_assert(sizeof(struct slab) == 1u << SHEAF_DESC_SHIFT, "struct slab must be 64 bytes");
_Static_assert(ARENA_MAP_SIZE == SHEAF_ARENA_ENTRIES,
	       "<sheaf/rseq.h>'s arena map bound is the library's");
_Static_assert(offsetof(struct slab, slab_cache) == SHEAF_DESC_CACHE &&
	       offsetof(struct slab, head) == SHEAF_DESC_HEAD,
	       "<sheaf/rseq.h> descriptor offsets");

/*
 * struct arena - one 256 MiB aligned mapping of slabs and page runs, or
 * (huge set) the record of a huge-heap region (huge.c: a reservation of
 * one or more arenas' address space, carved into spans of 2 MiB grains).
 * arena_map[addr >> ARENA_SHIFT] points at the arena or region covering
 * addr.  Arenas are never unmapped; a region is when nothing in it is live
 * or retained, its map slots cleared first.  Records are never unmapped:
 * a lockless reader with a stale map entry reads one that says "not live".
 */
struct arena {
	char *base;
	size_t size;         /* ARENA_SIZE, or the region's size when huge */
	int node;
	bool huge;
};

/* =========================================================== slab (slab.c) */

/*
 * struct kmem_cache_node - per cache per node.
 * Invariants: nr_partial == length(partial); every slab on `partial` is not
 * frozen, has on_partial set and 0 < free objects (or is empty but kept for
 * min_partial); nr_slabs counts every slab of the node (any state).
 * A slab has the cache's order and objects, or after an order fallback
 * (_sheaf_new_slab()) min_order and fewer objects: total_objects and
 * nr_pages add up each slab's own.
 */
struct kmem_cache_node {
	pthread_mutex_t list_lock;
	unsigned long nr_partial;
	struct list_head partial;
	struct list_head full;          /* debug caches only: slabs with no free object */
	atomic_long nr_slabs;
	atomic_long total_objects;      /* sum of the slabs' objects */
	atomic_long nr_pages;           /* sum of the slabs' 2^order pages */
} __attribute__((aligned(CACHE_LINE)));

/* =================================================== cpu slab (cpu_slab.c) */

/*
 * struct kmem_cache_cpu - the classic per-slot state.
 *
 * (freelist, tid) change together by a CPU-local compare-and-swap (an rseq
 * section, or a locked cmpxchg16b in fallback mode).  tid grows
 * by TID_STEP on every operation; TID_BUSY set means one thread owns the
 * slot's slow path (it is the slot "lock" of the classic path): it may change
 * `slab` and will publish a new (freelist, tid) when done.  While BUSY, or
 * while a remote flusher has set `stop`, every fast path on the slot fails.
 * Invariant: every object on freelist belongs to `slab`, which is frozen.
 */
struct kmem_cache_cpu {
	union {
		struct {
			void **freelist;
			unsigned long tid;
		};
		unsigned __int128 freelist_tid;
	} __attribute__((aligned(16)));
	struct slab *slab;
	uint8_t stop;           /* offset 24: remote owner (rseq mode) */
} __attribute__((aligned(CACHE_LINE)));
_Static_assert(sizeof(struct kmem_cache_cpu) == 1u << SHEAF_CPU_SHIFT &&
	       offsetof(struct kmem_cache_cpu, tid) == SHEAF_CPU_OFF_TID &&
	       offsetof(struct kmem_cache_cpu, stop) == SHEAF_CPU_OFF_STOP,
	       "the classic sections index slots by << 6 and read tid and stop here");

#define TID_BUSY 1ul
#define TID_STEP 2ul

/* ========================================================= sheaf (sheaf.c) */

/*
 * The states of a sheaf.  struct slab_sheaf is public (<sheaf/rseq.h>, the
 * inline sections read it): a 32-byte header, `_link[2]` in a union with
 * `_info {capacity, flags}` (which overlays _link[0] only: _info.capacity
 * is its low half, _info.flags its high half), then `cache`, `size`,
 * `node` and objects[].  The sheaf does not record its state: the slot
 * field, list or variable that holds it does.  A field that a state does
 * not use ("-" below) keeps what an earlier state left there (NULL from
 * _sheaf_alloc_sheaf(), a stack link, an _info of a sheaf lent and given
 * back, a FINISH_* of an RCU trip): it is written before it is read again.
 *
 *  state          held in            lock        _link[0] _link[1] size
 *  main           pcs->main          slot        -        -        0..room *
 *  spare          pcs->spare         slot        -        -        0..room
 *  rcu_free       pcs->rcu_free      slot        -        -        0..room-1
 *  barn full      barn->full         barn->lock  next     -        1..room
 *  barn empty     barn->empty        barn->lock  next     -        0
 *  RCU pending    worker.pending     worker.lock next     FINISH_* 1..room
 *  RCU batch      the worker, .batch worker.lock next     FINISH_* 1..room
 *  RCU finishing  worker.processing  the worker  -        FINISH_* 1..room
 *  lent           the borrower       none        _info    -        0..capacity
 *  lent oversize  the borrower       none        _info    -        0..capacity
 *  run cache      run_cache[][].main slot        -        -        0..runs
 *  held           a local variable   none        -        -        any
 *
 * (*) while the slot is free, main's count is pcs->count and main->size is
 * stale; the slot's owner copies it in and back (<sheaf/rseq.h>, struct
 * sheaf_pcs).
 *
 * room is the cache's sheaf_room, the objects[] every sheaf of the cache
 * has room for; cap, its capacity in force (hot.sheaf_capacity, also
 * every slot's pcs->capacity, the sections' push limit), is at most room
 * and equal to it unless the cache is adaptive (pcs_adapt.c).  main and
 * spare fill to cap; rcu_free goes to RCU at cap; a barn full sheaf or an
 * RCU one was filled to the cap of its time (at most room).  A sheaf
 * that is not lent out stores no capacity of its own.  `cache` is set once, by _sheaf_alloc_sheaf()
 * (sheaf.c), which also sets _link[0] = _link[1] = NULL, size = 0 and
 * `node` to the allocating thread's node; the memory is a sheaf-store
 * kmalloc cache's, given back by _sheaf_free_sheaf().
 *
 * main, spare, rcu_free: the three sheaves of a slot (struct sheaf_pcs,
 *   pcs.c, the only layer that writes it).  "slot": the holder of the
 *   slot lock (sheaf_pcs_trylock(): the slot's taken count, or the lock
 *   byte in fallback mode; its place in the lock order is LR_SLOT), or a
 *   remote owner (the cache's flush_lock, LR_FLUSH, then the stop bytes,
 *   the frozen counts and a fence: percpu.c's remote-slot protocol;
 *   flushes and fork()), or -- main and rcu_free only, while the slot is
 *   free (count >= 0) -- a restartable section of
 *   <sheaf/rseq.h>.  No section touches the spare.
 *   main is never NULL while the slot is unlocked and may be empty: its
 *   objects are free, for allocation.  spare may be NULL and hold any
 *   count (an empty spare becomes rcu_free, a returned prefilled sheaf
 *   becomes the spare partly used).  rcu_free may be NULL; its objects
 *   were given to kfree_rcu() and are not free yet (never allocated from);
 *   the push that fills it is the slow path's, which submits it to rcu.c
 *   at once, still holding the slot lock (so a barrier cannot miss it);
 *   a barrier or flush submits a partial one.
 *
 * barn full, barn empty: the two LIFO stacks of a struct node_barn
 *   (barn.c), one barn per node of the cache, under barn->lock (the one
 *   spin lock, LR_BARN).  _link[0] is the next sheaf down (NULL at the
 *   bottom); a pop sets it back to NULL.  Every sheaf on `full` holds
 *   exactly cap objects, every one on `empty` none (struct node_barn).
 *   _sheaf_barn_shrink() detaches both stacks under the lock and frees
 *   them after, walking their _link[0] chains outside it ("held").
 *
 * RCU pending, batch, finishing: a submitted rcu_free sheaf
 *   (_sheaf_rcu_submit_sheaf(), rcu.c), its objects waiting for a grace
 *   period.  _link[0] chains worker.pending (the submissions, under
 *   worker.lock, LR_LEAF); the worker takes the whole chain under the
 *   lock, holds it alone through its grace period (worker.busy), then
 *   sets it as worker.batch, from which it takes one sheaf at a time under
 *   worker.lock; the one it finishes is worker.processing (set and
 *   cleared under worker.lock, finished outside it: _link[0] is not read
 *   again).  _link[1] says how to finish
 *   it: FINISH_RECYCLE (a full rcu_free sheaf: into the barn of `node` as
 *   a full sheaf, or its objects to slabs and the sheaf to the barn's
 *   empty stack or freed) or FINISH_SLABS (a barrier's or a flush's
 *   partial sheaf: objects to slabs, sheaf freed).  `node` is set at the
 *   submission to the submitting thread's node.  The two words are what
 *   rcu.c calls the sheaf's "rcu_head space" (the kernel's sheaf has an
 *   rcu_head there); no struct rcu_head is laid over them and a sheaf never
 *   goes to liburcu's call_rcu().  A submitted empty sheaf is offered to
 *   the barn instead.  When no worker thread can be started the submitting
 *   thread keeps it ("held"), waits in synchronize_rcu() and finishes it
 *   itself.  A fork()ed child puts the batch back on pending.
 *
 * lent, lent oversize: a prefilled sheaf (prefill.c) between
 *   kmem_cache_prefill_sheaf() and kmem_cache_return_sheaf(), the
 *   borrower's, under no lock of the library, counted in the cache's
 *   lent_sheaves.  _info.capacity is its capacity: cap for a sheaf taken
 *   from the slot's spare or the barn or allocated at cap; the request
 *   for an oversize sheaf (larger than cap, or any request to a cache
 *   without sheaves), allocated for it.  _info.flags is SHEAF_LENT
 *   (prefill.c), | SHEAF_OVERSIZE for an oversize one: checked by
 *   kmem_cache_alloc_from_sheaf(), kmem_cache_refill_sheaf() and
 *   kmem_cache_return_sheaf(), cleared to 0 on return (capacity stays,
 *   stale).  _link[1]: -.  On
 *   return an oversize sheaf is flushed and freed; a regular one becomes
 *   the slot's spare, or is topped up into the barn's full stack, or is
 *   flushed and freed.
 *
 * run cache: not an object sheaf.  Large kmalloc's per-CPU caches of free
 *   runs (kmalloc_runs.c, libsheaf-malloc in rseq mode with one node) use a
 *   struct sheaf_pcs array per order whose mains are sheaves in zeroed
 *   metadata memory (cache NULL, links unused), holding run addresses up
 *   to pcs->capacity = RUN_CACHE_RUNS(order); pushed and popped by the
 *   sections only, emptied by malloc_trim() with the remote-slot protocol
 *   under drain_lock; never freed.
 *
 * held: on no list and in no slot, owned by one thread between two of the
 *   states above, under no lock (the thread may hold a slot lock for
 *   other reasons).  Where: pcs.c's alloc slow path refilling the spare,
 *   a barn empty sheaf or a new one with the slot unlocked, then
 *   installing it (install_full()) or, if the relock fails, parking it
 *   full in the barn; the free slow path flushing the full spare to slabs
 *   unlocked, or allocating a new empty sheaf, then installing it
 *   (install_empty()), or offering or freeing it if the relock fails;
 *   _sheaf_pcs_kfree_rcu() allocating a new rcu_free sheaf; the prefill
 *   paths between taking a sheaf and lending it (the refill) and between
 *   its return and its next place (the top-up, the flush); rcu.c
 *   finishing a sheaf without a worker; _sheaf_barn_shrink()'s detached
 *   stacks; _sheaf_pcs_init() allocating the mains.
 *   _sheaf_discard_sheaf() (flush, then free) and _sheaf_free_sheaf() end
 *   a sheaf from any held state.
 */

/* =========================================================== barn (barn.c) */

#define MAX_FULL_SHEAVES  10
#define MAX_EMPTY_SHEAVES 10
/* The largest barn limit of an adaptive cache (pcs_adapt.c; the statistics
 * page's readers check it: SHEAF_INFO_BARN_LIMIT_MAX). */
#define MAX_BARN_LIMIT    (4 * MAX_FULL_SHEAVES)
/* Bound on rcu_credit (sheaves): what RCU may recycle past the limit. */
#define MAX_RCU_CREDIT    16384
/* The idle drain's view of one slot or barn: events as its last look saw
 * them, and its looks since they last moved (pcs_remote.c). */
struct sheaf_idle_slot {
	uint32_t seen;
	uint32_t looks;
};

/* The idle look's view of a cache's adaptive level (pcs_adapt.c): the sum
 * of its slots' misses it last saw, when, and its quiet looks in a row.
 * The head of the cache's row in the drain's table. */
struct sheaf_idle_cache {
	uint32_t adapt_seen;
	uint32_t adapt_quiet;
	uint64_t adapt_look_ns;
};

/*
 * struct node_barn - per cache per node store of sheaves, under lock.
 * Invariants: nr_full == length(full), and every sheaf there is full:
 * filled to the cache's capacity when it was put there, so 0 < size <=
 * sheaf_room (the capacity of an adaptive cache moves; the alloc paths
 * install a barn sheaf as main and pop it at once; a refill whose relock
 * fails parks the sheaf whole; RCU recycles only full sheaves, barriers
 * send partial ones to slabs); nr_empty == length(empty), every sheaf
 * there has size == 0.  Both are LIFO stacks
 * linked through the sheaves' _link[0]: a push writes only the pushed
 * sheaf's header and a pop reads only the popped one's, so an exchange
 * touches the barn's line and the two sheaves it moves, nothing else.  The
 * limits, the cache's barn_limit for each stack (MAX_FULL_SHEAVES and
 * MAX_EMPTY_SHEAVES, both 10, unless adaptive), are soft: checked when a
 * sheaf is offered, ignored when sheaves are exchanged or an undo puts one
 * back.
 *
 * lock is a spinlock, as the kernel's: it is held for a few loads and
 * stores, never across a call that may block.
 *
 * rcu_credit (userspace addition): the RCU worker hands sheaves back in
 * batches, one grace period each (at least SHEAF_RCU_BATCH_US apart), so at
 * a high kfree_rcu() rate one batch brings back far more than
 * MAX_FULL_SHEAVES sheaves, while allocations meanwhile asked the barn for
 * as many.  Each time the allocation path asks the barn for a full sheaf it
 * earns one credit; the worker, finishing a batch, may put a recycled sheaf into
 * the barn past the limit by spending one.  The barn then holds about one
 * batch's worth of the demand that was really there, never more than
 * MAX_RCU_CREDIT sheaves past the limit; without that demand the kernel's
 * limit applies.
 */
struct node_barn {
	pthread_spinlock_t lock;
	unsigned int nr_full;
	unsigned int nr_empty;
	atomic_uint rcu_credit;
	/* events counts the lock's releases (written by the holder, read
	 * without the lock by the idle drain, pcs_remote.c, which keeps its
	 * own view of it in its table, not here). */
	unsigned int events;
	struct slab_sheaf *full;
	struct slab_sheaf *empty;
} __attribute__((aligned(CACHE_LINE)));

/* ============================================================= pcs (pcs.c) */

/* struct sheaf_pcs_info, the line before a cache's slot 0: <sheaf/rseq.h>. */

/* =================================================== cache (slab_common.c) */

enum cache_kind { CACHE_USER, CACHE_KMALLOC, CACHE_INTERNAL };

/*
 * struct kmem_cache - a cache.  Object layout within a slab of
 * 2^order pages, `objects` objects of stride `size`:
 *
 *   |<------------------ size ------------------>|
 *   | object (object_size) | [free ptr] | padding |
 *
 * The free pointer of a free object lives at `offset`: inside the object
 * (middle, aligned) by default, after it (at `inuse - 8`) for ctor and
 * SLAB_TYPESAFE_BY_RCU caches so their contents survive, or at the user's
 * freeptr_offset.  Invariants: size % align == 0; offset + 8 <= size;
 * objects * size <= PAGE_SIZE << order; min_order <= order, and a slab of
 * min_order (an order fallback) holds at least one object.
 *
 * Memory: the struct and its statistics slots are one mapping (meta_size
 * bytes); everything the fork handlers write -- the flush lock, the nodes
 * (list locks), the classic cpu slots or the sheaf slots and barns -- is
 * one block of fork_size bytes from the fork-state pool (pages.c), packed
 * with the other caches' blocks, so that unlocking after fork() touches a
 * few pages rather than one per cache.
 */
struct kmem_cache {
	struct sheaf_cache_hot hot;          /* first: read by inline fast paths */
	struct kmem_cache_cpu *cpu_slab;     /* [_sheaf_nr_slots]; classic only */
	unsigned int size;
	unsigned int object_size;
	unsigned int offset;
	unsigned int inuse;
	unsigned int align;
	unsigned int order;
	unsigned int objects;
	unsigned int min_order;              /* order_fallback's: one object's pages */
	unsigned int min_partial;
	unsigned int red_left_pad;           /* debug: left red zone before each object */
	unsigned int track_off;              /* debug: tracks, from the object */
	slab_flags_t flags;
	/*
	 * kfree_nolock()'s deferred frees (slab.c, "deferred frees"): a
	 * stack of objects linked through their free pointers (at offset),
	 * pushed lock-free from any context, a signal handler included, and
	 * taken whole by a drain in normal context under the flush lock.
	 * deferred_nr >= the stack's length (added before a push, taken off
	 * after a drain).  Written only when a free is deferred or drained:
	 * it shares the line of the fields every slow path reads, which the
	 * slow paths test it with.
	 */
	void *deferred;
	atomic_long deferred_nr;
	void (*ctor)(void *);
	struct sheaf_stat_slot *stats;       /* [_sheaf_nr_slots] */
	/* The idle drain's row of its table (pcs_remote.c; under slab_mutex;
	 * SHEAF_IDLE_NO_ROW: none, the drain leaves the cache alone). */
	unsigned int idle_row;
	struct kmem_cache_node *node[MAX_NUMNODES];
	char name[64];
	struct list_head list;               /* slab_caches, under slab_mutex */
	size_t meta_size;
	struct node_barn *barn[MAX_NUMNODES]; /* sheaf caches only */
	void *fork_state;                    /* the pool block (see below); its
					      * first line is the flush lock */
	size_t fork_size;
	bool rcu_used;                       /* kfree_rcu() has seen the cache */
	uint8_t kind;                        /* enum cache_kind (for sheafinfo) */
	/*
	 * Capacity and barn limits (pcs_adapt.c).  Invariants: cap_base <=
	 * hot.sheaf_capacity <= sheaf_room, and every sheaf of the cache but
	 * an oversize prefilled one has room for sheaf_room objects;
	 * MAX_FULL_SHEAVES <= barn_limit.  A fixed cache (SHEAF_ADAPTIVE=0,
	 * the library's own caches): adaptive false, sheaf_room == cap_base
	 * == hot.sheaf_capacity and barn_limit == MAX_FULL_SHEAVES forever,
	 * the kernel's behaviour.  An adaptive one changes hot.sheaf_capacity
	 * (and every slot's push limit) and barn_limit only while holding
	 * adapt_busy; readers load them once per operation (relaxed) and
	 * cope with any value in the bounds.  adapt_bytes: what the cache
	 * holds of the process-wide budget (its bound on cached bytes beyond
	 * the base level); adapt_level: the number of its changes (wraps),
	 * which a slot's window records at its start (sheaf_pcs.win_level):
	 * only a window that ran wholly at the current level can step it.
	 */
	bool adaptive;
	atomic_bool adapt_busy;
	unsigned int sheaf_room;
	unsigned int cap_base;
	unsigned int barn_limit;
	uint32_t adapt_level;
	/* (The idle look's own view, the misses it saw and when, lives in
	 * its table: struct sheaf_idle_cache, pcs_remote.c.) */
	size_t adapt_bytes;

	/*
	 * Written by other threads while the cache is in use: the RCU worker
	 * per recycled sheaf, lenders per prefilled sheaf.  Alone on their
	 * line, so that those writes do not take away the line of the fields
	 * above that every kfree_rcu() and slow path reads (rcu_used, barn[]):
	 * sharing one cost the rcu workload 6%.
	 */
	_Alignas(CACHE_LINE) atomic_size_t rcu_recycled; /* objects recycled through RCU */
	atomic_long lent_sheaves;            /* prefilled sheaves not returned */
	atomic_bool destroying;              /* kmem_cache_destroy() under way */
};
_Static_assert(__builtin_offsetof(struct kmem_cache, rcu_recycled) / CACHE_LINE !=
	       __builtin_offsetof(struct kmem_cache, rcu_used) / CACHE_LINE &&
	       __builtin_offsetof(struct kmem_cache, rcu_recycled) / CACHE_LINE !=
	       (__builtin_offsetof(struct kmem_cache, barn) + sizeof(void *) *
		MAX_NUMNODES - 1) / CACHE_LINE,
	       "the counters other threads write share no line with rcu_used or barn[]");

/*
 * Internal flag (never a user's): kmem_cache_destroy() took the cache down.
 * Part of cache_debug()'s test, so that a stale pointer to a destroyed
 * cache takes the checked slow path, which reports it, at no cost to the
 * fast paths.  A destroyed cache's struct stays mapped in a quarantine of
 * the last DEAD_QUARANTINE destroyed caches (slab_common.c).
 */
#define SLAB_DESTROYED 0x80000000u

/* ========================================================= stats (stats.c) */

/* Per-slot counters: one cache line multiple per slot. */
struct sheaf_stat_slot {
	uint64_t v[SHEAF_STAT_NR];
} __attribute__((aligned(CACHE_LINE)));

#endif /* SHEAF_TYPES_H */
