/* SPDX-License-Identifier: MIT */
/*
 * internal.h - every internal structure and cross-file prototype.
 *
 * Layers: the one table is docs/ARCHITECTURE.md ("Layers, bottom up"):
 * platform (percpu.c), pages, slab, cpu slab, debug, sheaf and pcs
 * (sheaf.c), barn, prefill, cache (slab_common.c), kmalloc, rcu, stats and
 * info, init, preload.  Calls point down it; tools/layercheck.sh checks
 * the built objects, and tools/layercheck.exceptions lists the up-calls
 * that remain, each with its reason.
 *
 * Lock order: docs/ARCHITECTURE.md ("Lock order") has the one list, which
 * the fork handlers (init.c) follow.
 */
#ifndef SHEAF_INTERNAL_H
#define SHEAF_INTERNAL_H

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

/* ================================================================ pages */

#define PAGE_SHIFT   SHEAF_PAGE_SHIFT
#define PAGE_SIZE    SHEAF_PAGE_SIZE
#define ARENA_SHIFT  SHEAF_ARENA_SHIFT          /* 256 MiB arenas */
#define ARENA_SIZE   (1ul << ARENA_SHIFT)
#define ARENA_PAGES  (ARENA_SIZE >> PAGE_SHIFT)  /* 65536 */
#define MAX_ORDER    10                         /* page runs of 1..1024 pages */
#define MAX_RUN_SIZE (PAGE_SIZE << MAX_ORDER)   /* 4 MiB */
#define ADDR_BITS    47
#define ARENA_MAP_SIZE (1ul << (ADDR_BITS - ARENA_SHIFT))
#define MAX_NUMNODES 64
#define CACHE_LINE   64

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
 *  - a free block has only its head valid (PG_BUDDY, order, list link);
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
	void *pad3;
};
_Static_assert(sizeof(struct slab) == 1u << SHEAF_DESC_SHIFT, "struct slab must be 64 bytes");
_Static_assert(ARENA_MAP_SIZE == SHEAF_ARENA_ENTRIES,
	       "<sheaf/rseq.h>'s arena map bound is the library's");
_Static_assert(offsetof(struct slab, slab_cache) == SHEAF_DESC_CACHE &&
	       offsetof(struct slab, head) == SHEAF_DESC_HEAD,
	       "<sheaf/rseq.h> descriptor offsets");

/*
 * struct arena - one 256 MiB aligned mapping (or a huge kmalloc mapping).
 * Arenas are never unmapped; huge mappings are unmapped on free.
 * arena_map[addr >> ARENA_SHIFT] points at the arena covering addr.
 */
struct arena {
	char *base;
	size_t size;         /* ARENA_SIZE, or the mapping size when huge */
	int node;
	bool huge;
};

extern struct arena *_sheaf_arena_map[ARENA_MAP_SIZE];
/*
 * _sheaf_pcsmap[addr >> ARENA_SHIFT]: the arena's dense page map of slots,
 * one pointer per page: the cache's per-slot array (s->hot.pcs) on every
 * page of a slab of a cache with sheaves, NULL on every other page.  Eight
 * pages per cache line where the descriptors take a line each, so the
 * free() of libsheaf-malloc, which reads it for every pointer, misses the
 * cache far less.  new_slab() sets a slab's entries, pages_free() clears a
 * run's.  Allocated with the arena (512 KiB, touched as used), never freed.
 */
extern struct sheaf_pcs **_sheaf_pcsmap[ARENA_MAP_SIZE];

/*
 * struct sheaf_pcs_info - the line just before a cache's slot 0
 * (sheaf_pcs_info(pcs), allocated with the slots by cache creation),
 * written only when the inline paths are switched
 * on or off, so that every CPU keeps it cached (slot lines are written by
 * their slot's slow paths).  free()-style paths that reach the slots from a
 * page (the library's dense page map of slots) without the cache use it
 * to check that an address x is an object boundary, exactly and without a
 * branch on the kind of stride (sheaf_pcs_info_ok()):
 *
 *   off = x & offmask         offset in the slab (slabs are aligned to
 *                             their size: buddy blocks)
 *   ok  = off * mul < limit   (mod 2^64)
 *
 * mul = ceil(2^64 / size) (the cache's hot.reciprocal, sheaf_obj_index()'s
 * constant): off * mul (mod 2^64) is below mul
 * exactly when size divides off (Lemire's divisibility test, off < 2^32),
 * and is then index * r with r = size * mul mod 2^64, so limit = objects *
 * r also bounds the index.  A power-of-two size has r = 0: every multiple
 * gives 0, and limit = 1 (its objects tile the slab).  limit = 0 while the
 * inline paths are off: every test fails, and the caller takes the path
 * through the cache, which checks everything.
 */
struct sheaf_pcs_info {
	uint64_t offmask;
	uint64_t mul;
	uint64_t limit;
	uint64_t _pad[5];
} __attribute__((aligned(64)));

static inline const struct sheaf_pcs_info *sheaf_pcs_info(const struct sheaf_pcs *pcs)
{
	return (const struct sheaf_pcs_info *)(const void *)pcs - 1;
}

static inline __attribute__((always_inline)) bool
sheaf_pcs_info_ok(const struct sheaf_pcs *pcs, uintptr_t x)
{
	const struct sheaf_pcs_info *info = sheaf_pcs_info(pcs);
	return (uint64_t)((x & info->offmask) * info->mul) < info->limit;
}
void _sheaf_pcsmap_set(struct slab *d, size_t npages, struct sheaf_pcs *pcs);
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

static inline void *slab_address(const struct slab *slab)
{
	uintptr_t mm = (uintptr_t)slab & ~(ARENA_SIZE - 1);
	size_t idx = (size_t)(slab - (const struct slab *)mm);
	return (void *)(mm + (idx << PAGE_SHIFT));
}

/* pages.c */
void _sheaf_pages_init(void);
struct slab *_sheaf_pages_alloc(unsigned int order, int node, gfp_t gfp);
void _sheaf_pages_free(struct slab *head);
void _sheaf_pages_purge(bool all);
void *_sheaf_huge_alloc(size_t size, gfp_t gfp);
bool _sheaf_huge_free(const void *p);        /* false: not a huge mapping */
size_t _sheaf_huge_size(const void *p);      /* 0: not a huge mapping */
void *_sheaf_huge_start(const void *p);      /* start of the mapping containing p */
int _sheaf_huge_node(const void *p);         /* -1: not a huge mapping */
void *_sheaf_meta_alloc(size_t size);        /* zeroed, page granular */
void _sheaf_meta_free(void *p, size_t size);
void *_sheaf_meta_pool_alloc(size_t size);   /* zeroed, packed: fork state */
void _sheaf_meta_pool_free(void *p, size_t size);
void _sheaf_pages_lock_all(void);            /* fork */
void _sheaf_pages_unlock_all(bool child);

/*
 * The node list and page-list locks are adaptive mutexes: they spin
 * briefly before sleeping, as the kernel's spinlocks would not sleep at
 * all, so that a contended hand-over costs no system call.  (The barn lock
 * is a pthread_spinlock_t, held for a few loads and stores: barn.c.)
 */
void _sheaf_spinlock_init(pthread_mutex_t *m);

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
	LR_DRAIN,       /* kmalloc.c drain_lock: malloc_trim()'s run-cache drain */
	LR_INFO,        /* info.c info.lock: the statistics publisher */
	LR_SLAB_MUTEX,  /* slab_common.c _sheaf_slab_mutex: the cache list */
	LR_FLUSH,       /* per cache: flush_lock, remote owners of its slots */
	LR_SLOT,        /* per cache and slot: the slot lock byte */
	LR_BARN,        /* per cache and node: node_barn.lock */
	LR_LIST,        /* per cache and node: kmem_cache_node.list_lock */
	LR_ARENA,       /* pages.c arena_lock */
	LR_PAGE,        /* pages.c page_node.lock */
	LR_POOL,        /* pages.c pool.lock: the fork-state pool */
	LR_LEAF,        /* fault.c glob_lock, rcu.c worker.lock */
	LR_NR
};

#ifndef NDEBUG
#define SHEAF_LOCK_CHECK 1
void _sheaf_lock_acquire(enum sheaf_lock_rank r);
void _sheaf_lock_release(enum sheaf_lock_rank r);
void _sheaf_lock_held(enum sheaf_lock_rank r, const char *fn);
#define sheaf_lock_held(r) _sheaf_lock_held(r, __func__)
/* A lock taken without waiting (a trylock that succeeded): held from now
 * on, but no order to check, since it waited for nobody. */
void _sheaf_lock_tried(enum sheaf_lock_rank r);
#else
static inline void _sheaf_lock_tried(enum sheaf_lock_rank r) { (void)r; }
static inline void _sheaf_lock_acquire(enum sheaf_lock_rank r) { (void)r; }
static inline void _sheaf_lock_release(enum sheaf_lock_rank r) { (void)r; }
#define sheaf_lock_held(r) ((void)0)
#endif

static inline void sheaf_lock(pthread_mutex_t *m, enum sheaf_lock_rank r)
{
	_sheaf_lock_acquire(r);
	pthread_mutex_lock(m);
}

static inline void sheaf_unlock(pthread_mutex_t *m, enum sheaf_lock_rank r)
{
	pthread_mutex_unlock(m);
	_sheaf_lock_release(r);
}

/* The barn's lock, the one spin lock of the library (rank LR_BARN). */
static inline void sheaf_barn_lock(pthread_spinlock_t *l)
{
	_sheaf_lock_acquire(LR_BARN);
	pthread_spin_lock(l);
}

static inline void sheaf_barn_unlock(pthread_spinlock_t *l)
{
	pthread_spin_unlock(l);
	_sheaf_lock_release(LR_BARN);
}

/* ================================================================ percpu */

/* Configuration data (percpu.c), read once from the environment (init.c). */
struct sheaf_config {
	bool stats;             /* SHEAF_STATS=1 or exit: count and publish */
	bool stats_exit;        /* SHEAF_STATS=exit: print the table at exit */
	unsigned int stats_interval_ms; /* SHEAF_STATS_INTERVAL: publishing period */
	bool percpu_fallback;   /* SHEAF_PERCPU=fallback, or no rseq */
	int fake_numa;          /* SHEAF_FAKE_NUMA=N (0: off) */
	int default_capacity;   /* SHEAF_DEFAULT_CAPACITY: -1 auto, 0 off, N */
	int kmalloc_capacity;   /* SHEAF_KMALLOC_CAPACITY: the kmalloc caches'
				 * minimum capacity when they have sheaves */
	unsigned int yield_every; /* SHEAF_DEBUG_YIELD=N: yield in 1 of N lock holds */
	int malloc_verbose;     /* SHEAF_MALLOC_VERBOSE: 0, 1, 2 (libsheaf-malloc) */
	bool debug_abort;       /* SHEAF_DEBUG_ABORT (default on) */
	const char *slub_debug; /* SLUB_DEBUG, parsed by debug.c, or NULL */
	const char *fault[SHEAF_FAULT_NR]; /* SHEAF_FAILSLAB/PAGE/SHEAF, or NULL */
};
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
extern struct sheaf_config _sheaf_config;

extern unsigned int _sheaf_nr_slots;
extern unsigned int _sheaf_nr_nodes;
extern int _sheaf_cpu_node[];           /* slot/cpu -> node */
extern bool _sheaf_stats_on;            /* hot flag for counters */
extern bool _sheaf_initialized;
/*
 * True on the thread running sheaf_init()'s one-time set-up, while it runs:
 * an allocation it makes through the C library (libsheaf-malloc's malloc)
 * must not enter sheaf_init() again (its pthread_once would wait for
 * itself).  All of libsheaf's thread-locals are initial-exec (CMake), so
 * that reading one never calls __tls_get_addr, which may allocate.
 */
extern __thread bool _sheaf_in_init;

extern bool _sheaf_rseq_mode;  /* rseq sections in use (percpu.c decides) */
/* percpu.c: slots, per-CPU mode, nodes (after the configuration is read) */
void _sheaf_platform_init(void);
/* init.c: the one-time start-up */
void _sheaf_init_slow(void);
static inline void sheaf_init(void)
{
	if (unlikely(!__atomic_load_n(&_sheaf_initialized, __ATOMIC_ACQUIRE)))
		_sheaf_init_slow();
}

/* glibc's registered rseq area (glibc >= 2.35). */
struct sheaf_rseq_area {
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
	uint32_t node_id;
	uint32_t mm_cid;
};
extern ptrdiff_t _sheaf_rseq_offset;  /* copy of __rseq_offset, 0 if none */
extern bool _sheaf_rseq_ok;
extern bool _sheaf_rseq_mm_cid;

static inline struct sheaf_rseq_area *sheaf_rseq(void)
{
	char *tp;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return (struct sheaf_rseq_area *)(tp + _sheaf_rseq_offset);
}

int _sheaf_getcpu_slow(void);
/* The calling thread's id (gettid()), cached per thread; init.c's fork
 * handler clears the child's cache. */
extern __thread int _sheaf_cached_tid;
int _sheaf_tid_slow(void);
static inline int sheaf_tid(void)
{
	int t = _sheaf_cached_tid;
	return likely(t) ? t : _sheaf_tid_slow();
}
/* Abort the process: stderr flushed, the abort hook (info.c's), abort(). */
SHEAF_NORETURN SHEAF_COLD void _sheaf_die(void);
void _sheaf_set_abort_hook(void (*fn)(void));
/* membarrier(PRIVATE_EXPEDITED_RSEQ): returns when done, else aborts. */
void _sheaf_rseq_fence(void);
/*
 * The remote-slot protocol (percpu.c) on any array of _sheaf_nr_slots
 * struct sheaf_pcs: own every slot from another thread (stop everywhere,
 * one fence, wait for the holders), and the two halves, so that fork()
 * fences once for every cache.
 */
void _sheaf_slots_remote_lock(struct sheaf_pcs *pcs);
void _sheaf_slots_remote_unlock(struct sheaf_pcs *pcs);
void _sheaf_slots_reset(struct sheaf_pcs *pcs);         /* fork()ed child */
void _sheaf_slots_stop(struct sheaf_pcs *pcs);
void _sheaf_slots_wait(struct sheaf_pcs *pcs);

/* The CPU the thread runs on now (a hint: it may move at once). */
static inline unsigned int sheaf_cpu(void)
{
	if (likely(_sheaf_rseq_ok)) {
		unsigned int c = READ_ONCE(sheaf_rseq()->cpu_id);
		if (likely(c < _sheaf_nr_slots))
			return c;
	}
	return (unsigned int)_sheaf_getcpu_slow();
}

/* The slot index the thread should use now (mm_cid when the kernel has it). */
static inline unsigned int sheaf_slot(void)
{
	if (likely(_sheaf_rseq_ok)) {
		struct sheaf_rseq_area *r = sheaf_rseq();
		unsigned int c = _sheaf_rseq_mm_cid ? READ_ONCE(r->mm_cid)
						    : READ_ONCE(r->cpu_id);
		if (likely(c < _sheaf_nr_slots))
			return c;
	}
	return (unsigned int)_sheaf_getcpu_slow();
}

static inline int sheaf_node(void)
{
	return _sheaf_cpu_node[sheaf_cpu()];
}

/*
 * Yield injection (SHEAF_DEBUG_YIELD=N, for tests): called right after a
 * slot, barn or node lock is taken, it yields the CPU about once in N
 * calls, so other threads on the same CPU run while the lock is held.
 */
void _sheaf_debug_yield_slow(void);
static inline void sheaf_debug_yield(void)
{
	if (unlikely(_sheaf_config.yield_every))
		_sheaf_debug_yield_slow();
}

/* ================================================================ stats */

/* Per-slot counters: one cache line multiple per slot. */
struct sheaf_stat_slot {
	uint64_t v[SHEAF_STAT_NR];
} __attribute__((aligned(CACHE_LINE)));

/* ================================================================ slab */

/*
 * struct kmem_cache_node - per cache per node.
 * Invariants: nr_partial == length(partial); every slab on `partial` is not
 * frozen, has on_partial set and 0 < free objects (or is empty but kept for
 * min_partial); nr_slabs counts every slab of the node (any state).
 */
struct kmem_cache_node {
	pthread_mutex_t list_lock;
	unsigned long nr_partial;
	struct list_head partial;
	struct list_head full;          /* debug caches only: slabs with no free object */
	atomic_long nr_slabs;
	atomic_long total_objects;
} __attribute__((aligned(CACHE_LINE)));

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
 * objects * size <= PAGE_SIZE << order.
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
	unsigned int min_partial;
	unsigned int red_left_pad;           /* debug: left red zone before each object */
	unsigned int track_off;              /* debug: tracks, from the object */
	slab_flags_t flags;
	void (*ctor)(void *);
	struct sheaf_stat_slot *stats;       /* [_sheaf_nr_slots] */
	struct kmem_cache_node *node[MAX_NUMNODES];
	char name[64];
	struct list_head list;               /* slab_caches, under slab_mutex */
	size_t meta_size;
	struct node_barn *barn[MAX_NUMNODES]; /* sheaf caches only */
	void *fork_state;                    /* the pool block (see below); its
					      * first line is the flush lock */
	size_t fork_size;
	bool rcu_used;                       /* kfree_rcu() has seen the cache */
	atomic_size_t rcu_recycled;          /* objects recycled through RCU */
	atomic_long lent_sheaves;            /* prefilled sheaves not returned */
	atomic_bool destroying;              /* kmem_cache_destroy() under way */
	uint8_t kind;                        /* enum cache_kind (for sheafinfo) */
};

static inline bool cache_has_sheaves(const struct kmem_cache *s)
{
	return s->hot.pcs != NULL;
}

/* The cache's flush lock (serializes remote owners of its slots): the
 * first bytes of its fork-state block. */
static inline pthread_mutex_t *cache_flush_lock(struct kmem_cache *s)
{
	return (pthread_mutex_t *)s->fork_state;
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

/* 16-byte compare-and-swap, sequentially consistent (lock cmpxchg16b). */
static inline bool cmpxchg16(void *ptr, unsigned __int128 old,
			     unsigned __int128 new_)
{
#ifdef SHEAF_HAVE_TSAN
	/* TSan models the __atomic form (and not __sync on 16 bytes). */
	return __atomic_compare_exchange_n((unsigned __int128 *)ptr, &old, new_,
					   false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
#else
	return __sync_bool_compare_and_swap((unsigned __int128 *)ptr, old, new_);
#endif
}

/* stats */
static inline void stat_add(struct kmem_cache *s, enum sheaf_stat_item item,
			    unsigned int slot, uint64_t n)
{
	if (unlikely(READ_ONCE(_sheaf_stats_on)))
		__atomic_fetch_add(&s->stats[slot].v[item], n, __ATOMIC_RELAXED);
}
static inline void stat(struct kmem_cache *s, enum sheaf_stat_item item,
			unsigned int slot)
{
	stat_add(s, item, slot, 1);
}
/* Count on the calling thread's slot, read only when counting is on. */
static inline void stat_here(struct kmem_cache *s, enum sheaf_stat_item item)
{
	if (unlikely(READ_ONCE(_sheaf_stats_on)))
		__atomic_fetch_add(&s->stats[sheaf_slot()].v[item], 1, __ATOMIC_RELAXED);
}

/* The smallest page order holding size bytes. */
static inline unsigned int get_order(size_t size)
{
	unsigned int order = 0;
	while ((PAGE_SIZE << order) < size)
		order++;
	return order;
}

/* slab.c */
bool _sheaf_calculate_sizes(struct kmem_cache *s, const struct kmem_cache_args *args);
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

/* cpu_slab.c */
void *_sheaf_cpu_alloc(struct kmem_cache *s, gfp_t gfp);
void _sheaf_cpu_free(struct kmem_cache *s, struct slab *slab, void *obj,
		     const char *fn, void *caller);
void _sheaf_cpu_flush_all(struct kmem_cache *s);
size_t _sheaf_cpu_cached_objects(struct kmem_cache *s);
void _sheaf_cpu_fork_stop(struct kmem_cache *s);
void _sheaf_cpu_fork_wait(struct kmem_cache *s);
int _sheaf_cpu_test_hold(struct kmem_cache *s, bool hold);
void _sheaf_cpu_unlock_all(struct kmem_cache *s);

/* slab_common.c */
extern pthread_mutex_t _sheaf_slab_mutex;
extern struct list_head _sheaf_slab_caches;
enum cache_kind { CACHE_USER, CACHE_KMALLOC, CACHE_INTERNAL };
struct kmem_cache *_sheaf_cache_create(const char *name, unsigned int size,
				       const struct kmem_cache_args *args,
				       slab_flags_t flags, enum cache_kind kind);
void *_sheaf_slab_alloc(struct kmem_cache *s, gfp_t gfp, int node);
void _sheaf_nofail_wait(void);
/* fn, caller: named in a report (a double free). */
void _sheaf_slab_free_obj(struct kmem_cache *s, struct slab *slab, void *obj,
			  const char *fn, void *caller);

/* kmalloc.c */
/* Give every run kept in the large-kmalloc run caches back (malloc_trim). */
void _sheaf_run_cache_drain(void);
void _sheaf_run_cache_prefork(void);   /* fork: the drain's lock */
void _sheaf_run_cache_postfork(bool child);

void _sheaf_kmalloc_init(void);
void *_sheaf_kmalloc_internal(size_t size, gfp_t gfp); /* never sheaves */
void *_sheaf_obj_start(const void *p); /* object holding p, NULL: not ours */
extern bool _sheaf_kmalloc_sheaves; /* kmalloc caches with sheaves */
/* The kmalloc cache of size 1..KMALLOC_MAX_CACHE_SIZE (after init). */
struct kmem_cache *_sheaf_kmalloc_cache(size_t size);
/* kmalloc(), kfree(), ksize() with the function named in reports. */
void *_sheaf_kmalloc(size_t size, gfp_t gfp);
void _sheaf_kfree(const void *p, const char *fn, void *caller);
size_t _sheaf_ksize(const void *p, const char *fn, void *caller);

/* sheaf.c: struct slab_sheaf as a container */
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

/* barn.c */
#define MAX_FULL_SHEAVES  10
#define MAX_EMPTY_SHEAVES 10
/* Bound on rcu_credit (sheaves): what RCU may recycle past the limit. */
#define MAX_RCU_CREDIT    16384
/*
 * struct node_barn - per cache per node store of sheaves, under lock.
 * Invariants: nr_full == length(full), and every sheaf there is full:
 * size == the cache's sheaf_capacity (the alloc paths install a barn
 * sheaf as main and pop it at once; a refill whose relock fails parks the
 * sheaf whole; RCU recycles only full sheaves, barriers send partial ones
 * to slabs); nr_empty == length(empty), every sheaf there has size == 0.  Both are LIFO stacks
 * linked through the sheaves' _link[0]: a push writes only the pushed
 * sheaf's header and a pop reads only the popped one's, so an exchange
 * touches the barn's line and the two sheaves it moves, nothing else.  The
 * limits MAX_FULL_SHEAVES / MAX_EMPTY_SHEAVES are soft: checked when a
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
	struct slab_sheaf *full;
	struct slab_sheaf *empty;
} __attribute__((aligned(CACHE_LINE)));

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

void _sheaf_barn_init(struct node_barn *barn);
struct slab_sheaf *_sheaf_barn_get_empty(struct node_barn *barn);
bool _sheaf_barn_put_empty(struct node_barn *barn, struct slab_sheaf *sheaf, bool force);
void _sheaf_barn_put_full(struct node_barn *barn, struct slab_sheaf *sheaf);
struct slab_sheaf *_sheaf_barn_get_full(struct node_barn *barn);
struct slab_sheaf *_sheaf_barn_get_full_or_empty(struct node_barn *barn);
struct slab_sheaf *_sheaf_barn_replace_empty(struct node_barn *barn,
					     struct slab_sheaf *empty);
struct slab_sheaf *_sheaf_barn_replace_full(struct node_barn *barn,
					    struct slab_sheaf *full, int *err);
void _sheaf_barn_shrink(struct kmem_cache *s, struct node_barn *barn);
size_t _sheaf_barn_objects(struct node_barn *barn, unsigned int *nr_full,
			   unsigned int *nr_empty);

/* pcs.c: the per-CPU sheaves */
/*
 * The slot lock of a sheaf cache: the rseq trylock section, or in fallback
 * mode a compare-and-swap of `lock` followed by a check of `stop` (the
 * remote flusher's Dekker pair).  Returns the locked slot (maybe not the one
 * the thread was on a moment ago) or NULL.  Release with sheaf_pcs_unlock()
 * from any CPU.
 */
static inline struct sheaf_pcs *sheaf_pcs_trylock(struct kmem_cache *s,
					    unsigned int *slotp)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (likely(_sheaf_rseq_mode)) {
		for (;;) {
			int r = sheaf_rseq_trylock(s->hot.pcs, slotp);
			if (likely(r == 0)) {
				_sheaf_lock_tried(LR_SLOT);
				sheaf_debug_yield();
				return &s->hot.pcs[*slotp];
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
	*slotp = slot;
	_sheaf_lock_tried(LR_SLOT);
	sheaf_debug_yield();
	return pcs;
}

static inline void sheaf_pcs_unlock(struct sheaf_pcs *pcs)
{
	__atomic_store_n(&pcs->lock, 0, __ATOMIC_RELEASE);
	_sheaf_lock_release(LR_SLOT);
}

static inline struct node_barn *sheaf_local_barn(struct kmem_cache *s)
{
	return s->barn[sheaf_node()];
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
					 unsigned int *slotp);   /* prefill */
bool _sheaf_pcs_give_spare(struct kmem_cache *s, struct slab_sheaf *sheaf,
			   unsigned int *slotp);             /* return */
void *_sheaf_pcs_alloc(struct kmem_cache *s, gfp_t gfp);
void _sheaf_pcs_free(struct kmem_cache *s, struct slab *slab, void *obj);
int _sheaf_pcs_alloc_bulk(struct kmem_cache *s, gfp_t gfp, size_t nr, void **p);
void _sheaf_pcs_free_bulk(struct kmem_cache *s, size_t nr, void **p);
void _sheaf_pcs_flush_all(struct kmem_cache *s);
void _sheaf_pcs_destroy(struct kmem_cache *s);
size_t _sheaf_pcs_cached_objects(struct kmem_cache *s);
void _sheaf_pcs_fork_stop(struct kmem_cache *s);
void _sheaf_pcs_fork_wait(struct kmem_cache *s);
int _sheaf_pcs_test_hold(struct kmem_cache *s, bool hold);
void _sheaf_pcs_unlock_all(struct kmem_cache *s, bool child);

/* info.c: publishing the statistics for sheafinfo (SHEAF_STATS) */
void _sheaf_info_init(void);
void _sheaf_info_prefork(void);
void _sheaf_info_postfork(bool child);

/* rcu.c */
void _sheaf_rcu_submit_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			     bool recycle, unsigned int slot);
void _sheaf_rcu_before_fork(void);
void _sheaf_rcu_quiesce_worker(void);
void _sheaf_rcu_lock_worker(void);
void _sheaf_rcu_unlock_worker(bool child);
void _sheaf_rcu_after_fork(bool child);
void _sheaf_rcu_lock_batch(void);      /* fork: the pointer batch's lock */
void _sheaf_rcu_unlock_batch(void);

/*
 * Telling ASan and valgrind what the allocator does (debug.c).  An object
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

/* debug.c: slub_debug */
void _sheaf_debug_setup(void);
slab_flags_t _sheaf_debug_flags_for(const char *name, slab_flags_t flags);
void _sheaf_debug_layout(struct kmem_cache *s);
void _sheaf_debug_new_object(struct kmem_cache *s, void *obj);
void *_sheaf_debug_alloc(struct kmem_cache *s, gfp_t gfp, int node, unsigned int slot);
void _sheaf_debug_free(struct kmem_cache *s, struct slab *slab, void *obj,
		       unsigned int slot);
void _sheaf_debug_wrong_cache(struct kmem_cache *s, struct slab *slab, const void *obj);
void _sheaf_debug_leak_report(struct kmem_cache *s, size_t live);
/*
 * Internal flag (never a user's): kmem_cache_destroy() took the cache down.
 * Part of cache_debug()'s test, so that a stale pointer to a destroyed
 * cache takes the checked slow path, which reports it, at no cost to the
 * fast paths.  A destroyed cache's struct stays mapped in a quarantine of
 * the last DEAD_QUARANTINE destroyed caches (slab_common.c).
 */
#define SLAB_DESTROYED 0x80000000u

static inline bool cache_debug(const struct kmem_cache *s)
{
	return (s->flags & (SLAB_DEBUG_FLAGS | SLAB_DESTROYED)) != 0;
}

SHEAF_NORETURN SHEAF_COLD void _sheaf_report_destroyed(const char *fn,
		struct kmem_cache *s, void *caller);

/* Every entry point but the fast paths: a destroyed cache is reported. */
static inline void cache_check_live(struct kmem_cache *s, const char *fn,
				    void *caller)
{
	if (unlikely(s->flags & SLAB_DESTROYED))
		_sheaf_report_destroyed(fn, s, caller);
}

SHEAF_NORETURN SHEAF_COLD void _sheaf_report_invalid(const char *fn,
		const char *what, const void *addr, struct kmem_cache *s,
		void *caller);


static inline bool sheaf_gfp_ok(gfp_t gfp)
{
	return (gfp & ~SHEAF_GFP_VALID_MASK) == 0;
}

#endif /* SHEAF_INTERNAL_H */
