/* SPDX-License-Identifier: MIT */
/*
 * pages.c - the page layer: arenas, page descriptors, buddy page runs.
 *
 * Memory comes in 256 MiB arenas, each aligned to its size and mapped with
 * MAP_NORESERVE.  The first 4 MiB of an arena is its memmap: one 64-byte
 * struct slab per page, so virt_to_slab() is an index computation with no
 * header inside object memory.  The rest is handed out as naturally aligned
 * runs of 2^order pages (order 0..MAX_ORDER) by a buddy allocator with one
 * set of free lists per NUMA node, under page_node.lock.
 *
 * Freed runs are "dirty" (they may hold resident pages).  Dirty free
 * blocks are given back with madvise(MADV_DONTNEED), with the memmap pages
 * that describe only the inside of a large free block, by time as
 * jemalloc's decay does: once a node holds more than DIRTY_LIMIT dirty
 * pages, the blocks dirty for SHEAF_LARGE_DECAY_MS (1 s) go, largest
 * first, until it holds half that (a walk of the free lists at most four
 * times per decay period, from a free or the idle thread's look); past
 * DIRTY_HARD, the largest go at once whatever their age; on
 * kmem_cache_shrink() and malloc_trim(), all of them.  A program that
 * cycles buffers of 64 KiB-4 MiB thus reuses their pages instead of
 * giving them back and faulting them in again on every round (16 us a
 * pair with 1000 buffers of 64 KiB-1 MiB under the old fixed 32 MiB
 * limit, tcmalloc 0.47).  Arenas are
 * never unmapped while the process lives: lockless readers (the classic
 * fast path) may read a stale free pointer from any slab page.
 *
 * Requests above MAX_RUN_SIZE ("huge" kmalloc) are spans of the huge heap:
 * regions of address space aligned to ARENA_SIZE so that arena_map
 * identifies them, carved in 2 MiB grains, freed spans kept resident for
 * reuse within a budget (no free pointer is ever read from them): huge.c,
 * the other half of this layer, under the same arena lock.
 */
#include <errno.h>
#include <stddef.h>
#include <numa.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct arena *_sheaf_arena_map[ARENA_MAP_SIZE];
SHEAF_EXPORT void *sheaf_memmap[ARENA_MAP_SIZE];
SHEAF_EXPORT struct sheaf_pcs **sheaf_pcsmap[ARENA_MAP_SIZE];
/* The same array under a hidden name: the library's own free() reaches it
 * relative to its code, without loading its address from the GOT first. */
extern __typeof__(sheaf_pcsmap) _sheaf_pcsmap_local
	__attribute__((alias("sheaf_pcsmap"), visibility("hidden")));

#define MEMMAP_PAGES ((ARENA_PAGES * sizeof(struct slab)) >> PAGE_SHIFT) /* 1024 */
#define DIRTY_LIMIT  (8192ul) /* pages (32 MiB) of dirty free memory per node
				 kept whatever their age */
#define DIRTY_HARD   (65536ul) /* pages (256 MiB): above, purged at once */

/*
 * struct page_node - the buddy free lists of one node.
 * Invariants (under lock): every block on free[k] has PG_BUDDY, order k,
 * is naturally aligned within its arena; nr_free == sum of 2^k over all
 * blocks; dirty <= nr_free counts the pages of blocks with PG_DIRTY.
 */
struct page_node {
	pthread_mutex_t lock;
	struct list_head free[MAX_ORDER + 1];
	size_t nr_free;
	size_t dirty;
	size_t total;
	uint64_t next_walk;	/* the decay's next walk, no earlier (coarse ns) */
} __attribute__((aligned(CACHE_LINE)));

/* [_sheaf_nr_nodes], from the fork-state pool (the fork handlers lock them) */
static struct page_node *page_nodes;
pthread_mutex_t _sheaf_arena_lock SHEAF_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
static size_t nr_arenas;
static bool real_numa;

void _sheaf_pages_init(void)
{
	page_nodes = _sheaf_meta_pool_alloc(_sheaf_nr_nodes * sizeof(*page_nodes));
	if (!page_nodes) {
		fprintf(stderr, "sheaf: out of memory at initialisation\n");
		_sheaf_die();
	}
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		_sheaf_spinlock_init(&page_nodes[n].lock);
		for (int k = 0; k <= MAX_ORDER; k++)
			INIT_LIST_HEAD(&page_nodes[n].free[k]);
	}
	real_numa = _sheaf_config.fake_numa == 0 && numa_available() >= 0 &&
		    numa_num_configured_nodes() > 1;
}


/* Map `size` bytes aligned to `align` (a power of two), or NULL. */
void *_sheaf_map_aligned(size_t size, size_t align)
{
	size_t len = size + align;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	char *a = (char *)ALIGN_UP((uintptr_t)p, align);
	if (a > p)
		munmap(p, (size_t)(a - p));
	size_t tail = (size_t)((p + len) - (a + size));
	if (tail)
		munmap(a + size, tail);
	return a;
}

void *_sheaf_meta_alloc(size_t size)
{
	void *p = mmap(NULL, ALIGN_UP(size, PAGE_SIZE), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void _sheaf_meta_free(void *p, size_t size)
{
	if (p)
		munmap(p, ALIGN_UP(size, PAGE_SIZE));
}

/*
 * The fork-state pool: the per-cache state that the fork handlers write
 * (the flush lock, the slots' stop and lock words, the barn and list
 * locks), packed from every cache into a few pages.  A write to a page
 * shared with a fork()ed child is a copy-on-write fault, with a TLB
 * shootdown when the process ran on other CPUs; with one page per cache,
 * unlocking after fork() cost the parent and the child one such fault per
 * cache.  Blocks are whole cache lines, first fit from chunks of
 * POOL_CHUNK bytes that are never unmapped; a freed block joins its free
 * neighbours; a block above half a chunk gets a mapping of its own.
 *
 * Invariants (under pool.lock): the free list is sorted by address, its
 * blocks are disjoint, none ends where the next begins (they are joined),
 * every size is a multiple of CACHE_LINE.  pool.lock is a leaf of the lock
 * order (it nests inside the page locks in the fork handlers only).
 */
#define POOL_CHUNK (64ul << 10)

struct pool_free {
	struct pool_free *next;
	size_t size;
};

static struct {
	pthread_mutex_t lock;
	struct pool_free *free;
} pool SHEAF_FORK_DATA = { PTHREAD_MUTEX_INITIALIZER, NULL };

static void pool_insert(struct pool_free *b, size_t size)
{
	struct pool_free **pp = &pool.free;
	while (*pp && *pp < b)
		pp = &(*pp)->next;
	struct pool_free *next = *pp;
	b->size = size;
	b->next = next;
	if (next && (char *)b + size == (char *)next) {
		b->size += next->size;
		b->next = next->next;
	}
	*pp = b;
	/* the previous block, when it ends at b */
	if (pp != &pool.free) {
		struct pool_free *prev =
			(struct pool_free *)((char *)pp - offsetof(struct pool_free, next));
		if ((char *)prev + prev->size == (char *)b) {
			prev->size += b->size;
			prev->next = b->next;
		}
	}
}

/* Zeroed, CACHE_LINE aligned; free with _sheaf_meta_pool_free(p, size). */
void *_sheaf_meta_pool_alloc(size_t size)
{
	size = ALIGN_UP(size, (size_t)CACHE_LINE);
	if (size > POOL_CHUNK / 2)
		return _sheaf_meta_alloc(size);
	sheaf_lock(&pool.lock, LR_POOL);
	for (;;) {
		struct pool_free **pp = &pool.free;
		while (*pp && (*pp)->size < size)
			pp = &(*pp)->next;
		struct pool_free *b = *pp;
		if (b) {
			if (b->size == size) {
				*pp = b->next;
			} else {
				struct pool_free *rest =
					(struct pool_free *)((char *)b + size);
				rest->next = b->next;
				rest->size = b->size - size;
				*pp = rest;
			}
			sheaf_unlock(&pool.lock, LR_POOL);
			memset(b, 0, size);
			return b;
		}
		void *chunk = _sheaf_meta_alloc(POOL_CHUNK);
		if (!chunk) {
			sheaf_unlock(&pool.lock, LR_POOL);
			return NULL;
		}
		pool_insert(chunk, POOL_CHUNK);
	}
}

void _sheaf_meta_pool_free(void *p, size_t size)
{
	if (!p)
		return;
	size = ALIGN_UP(size, (size_t)CACHE_LINE);
	if (size > POOL_CHUNK / 2) {
		_sheaf_meta_free(p, size);
		return;
	}
	sheaf_lock(&pool.lock, LR_POOL);
	pool_insert(p, size);
	sheaf_unlock(&pool.lock, LR_POOL);
}

static inline size_t desc_index(const struct slab *d)
{
	uintptr_t mm = (uintptr_t)d & ~(ARENA_SIZE - 1);
	return (size_t)(d - (const struct slab *)mm);
}

static inline struct slab *desc_at(const struct slab *d, size_t idx)
{
	uintptr_t mm = (uintptr_t)d & ~(ARENA_SIZE - 1);
	return (struct slab *)mm + idx;
}

/* Set the page-map entries of the npages pages from descriptor d on. */
void _sheaf_pcsmap_set(struct slab *d, size_t npages, struct sheaf_pcs *pcs)
{
	struct sheaf_pcs **pm = sheaf_pcsmap[(uintptr_t)d >> ARENA_SHIFT];
	size_t idx = desc_index(d);
	for (size_t i = 0; i < npages; i++)
		__atomic_store_n(&pm[idx + i], pcs, __ATOMIC_RELEASE);
}

/* Caller holds pn->lock. */
static void free_block_add(struct page_node *pn, struct slab *d,
			   unsigned int order, bool dirty)
{
	sheaf_lock_held(LR_PAGE);
	set_desc_flags(d, PG_BUDDY | (dirty ? PG_DIRTY : 0));
	d->order = (uint8_t)order;
	list_add(&d->slab_list, &pn->free[order]);
}

/* Map a new arena for node and put its pages on the free lists. */
static bool arena_grow(int node)
{
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	char *base = _sheaf_map_aligned(ARENA_SIZE, ARENA_SIZE);
	if (!base) {
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		return false;
	}
	struct arena *a = _sheaf_meta_alloc(sizeof(*a));
	struct sheaf_pcs **pcsmap = _sheaf_meta_alloc(ARENA_PAGES * sizeof(*pcsmap));
	if (!a || !pcsmap) {
		_sheaf_meta_free(a, sizeof(*a));
		_sheaf_meta_free(pcsmap, ARENA_PAGES * sizeof(*pcsmap));
		munmap(base, ARENA_SIZE);
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		return false;
	}
	if (real_numa)
		numa_tonode_memory(base, ARENA_SIZE, node);
	a->base = base;
	a->size = ARENA_SIZE;
	a->node = node;
	struct page_node *pn = &page_nodes[node];
	sheaf_lock(&pn->lock, LR_PAGE);
	struct slab *mm = (struct slab *)base;
	for (size_t idx = MEMMAP_PAGES; idx < ARENA_PAGES; idx += 1u << MAX_ORDER) {
		mm[idx].node = (uint16_t)node;
		free_block_add(pn, &mm[idx], MAX_ORDER, false);
	}
	pn->nr_free += ARENA_PAGES - MEMMAP_PAGES;
	pn->total += ARENA_PAGES - MEMMAP_PAGES;
	__atomic_store_n(&_sheaf_arena_map[(uintptr_t)base >> ARENA_SHIFT], a,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&sheaf_pcsmap[(uintptr_t)base >> ARENA_SHIFT], pcsmap,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&sheaf_memmap[(uintptr_t)base >> ARENA_SHIFT], (void *)base,
			 __ATOMIC_RELEASE);
	nr_arenas++;
	sheaf_unlock(&pn->lock, LR_PAGE);
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	return true;
}

/* Take a block of exactly `order` from pn's lists, splitting; NULL if none. */
static struct slab *buddy_take(struct page_node *pn, unsigned int order)
{
	unsigned int k = order;
	while (k <= MAX_ORDER && list_empty(&pn->free[k]))
		k++;
	if (k > MAX_ORDER)
		return NULL;
	struct slab *d = list_first_entry(&pn->free[k], struct slab, slab_list);
	list_del(&d->slab_list);
	bool dirty = desc_flags(d) & PG_DIRTY;
	size_t idx = desc_index(d);
	while (k > order) {
		k--;
		struct slab *b = desc_at(d, idx + (1ul << k));
		b->node = d->node;
		b->dirty_ns = d->dirty_ns;	/* the halves keep its age */
		free_block_add(pn, b, k, dirty);
	}
	pn->nr_free -= 1ul << order;
	if (dirty)
		pn->dirty -= 1ul << order;
	set_desc_flags(d, 0); /* no longer a buddy: concurrent frees must not merge it */
	d->order = (uint8_t)order;
	return d;
}

struct slab *_sheaf_pages_alloc(unsigned int order, int node, gfp_t gfp)
{
	if (should_fail(SHEAF_FAULT_PAGE, NULL, PAGE_SIZE << order, gfp))
		return NULL;
	if (node < 0 || node >= (int)_sheaf_nr_nodes)
		node = 0;
	struct page_node *pn = &page_nodes[node];
	struct slab *d;
	for (;;) {
		if (unlikely(gfp & SHEAF_GFP_NOLOCK)) {
			/* kmalloc_nolock(): the lock may be held by the very
			 * thread a signal handler interrupted. */
			if (!sheaf_trylock(&pn->lock, LR_PAGE))
				return NULL;
		} else {
			sheaf_lock(&pn->lock, LR_PAGE);
		}
		d = buddy_take(pn, order);
		sheaf_unlock(&pn->lock, LR_PAGE);
		if (d)
			break;
		/* Mapping a new arena is a call into the OS: may block. */
		if (!gfpflags_allow_blocking(gfp) || !arena_grow(node))
			return NULL;
	}
	d->node = (uint16_t)node;
	d->slab_cache = NULL;
	d->head = d;
	d->freelist = NULL;
	d->counters = 0;
	size_t idx = desc_index(d);
	for (size_t i = 1; i < (1ul << order); i++) {
		struct slab *t = desc_at(d, idx + i);
		t->head = d;
		set_desc_flags(t, PG_TAIL);
	}
	return d;
}

void _sheaf_pages_free(struct slab *d)
{
	unsigned int order = d->order;
	int node = d->node;
	struct page_node *pn = &page_nodes[node];
	size_t idx = desc_index(d);

	for (size_t i = 0; i < (1ul << order); i++) {
		struct slab *t = desc_at(d, idx + i);
		set_desc_flags(t, 0);
		t->slab_cache = NULL;
		t->head = NULL;
	}

	_sheaf_pcsmap_set(d, 1ul << order, NULL); /* free() pushes to a non-NULL one */
	sheaf_lock(&pn->lock, LR_PAGE);
	pn->nr_free += 1ul << order;
	pn->dirty += 1ul << order;
	while (order < MAX_ORDER) {
		size_t bidx = idx ^ (1ul << order);
		struct slab *b = desc_at(d, bidx);
		if (!(desc_flags(b) & PG_BUDDY) || b->order != order)
			break;
		list_del(&b->slab_list);
		if (!(desc_flags(b) & PG_DIRTY))
			pn->dirty += 1ul << order;
		set_desc_flags(b, 0);
		idx &= ~(1ul << order);
		order++;
	}
	struct slab *h = desc_at(d, idx);
	if (h != d)
		set_desc_flags(d, 0);
	h->node = (uint16_t)node;
	/* Dirty from now: a merged block takes the newest age of its parts,
	 * which keeps an old part a little longer, never shorter. */
	uint64_t now = _sheaf_coarse_ns();
	h->dirty_ns = now;
	free_block_add(pn, h, order, true);
	bool purge = pn->dirty > DIRTY_HARD ||
		     (pn->dirty > DIRTY_LIMIT && now >= pn->next_walk);
	sheaf_unlock(&pn->lock, LR_PAGE);
	if (unlikely(purge))
		_sheaf_pages_purge(false);
}

/* madvise one free block and the memmap pages that describe only its inside. */
static void purge_block(struct slab *d)
{
	size_t pages = 1ul << d->order;
	madvise(slab_address(d), pages << PAGE_SHIFT, MADV_DONTNEED);
	uintptr_t first = ALIGN_UP((uintptr_t)(d + 1), PAGE_SIZE);
	uintptr_t last = ALIGN_DOWN((uintptr_t)(d + pages), PAGE_SIZE);
	if (last > first)
		madvise((void *)first, last - first, MADV_DONTNEED);
	set_desc_flags(d, desc_flags(d) & (uint8_t)~PG_DIRTY);
}

/*
 * Give dirty free blocks back to the OS: all of them, or (all == false)
 * the decay's share, largest first: above DIRTY_LIMIT, the blocks dirty
 * for the decay period until the node is under half that limit; above
 * DIRTY_HARD, any, until it is under three quarters of that.
 */
void _sheaf_pages_purge(bool all)
{
	if (all)
		_sheaf_huge_release_retained();
	uint64_t decay = (uint64_t)_sheaf_config.large_decay_ms * 1000000ull;
	uint64_t now = _sheaf_coarse_ns();
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		struct page_node *pn = &page_nodes[n];
		sheaf_lock(&pn->lock, LR_PAGE);
		if (!all && pn->dirty <= DIRTY_LIMIT) {
			sheaf_unlock(&pn->lock, LR_PAGE);
			continue;
		}
		pn->next_walk = now + decay / 4;
		for (int k = MAX_ORDER; k >= 0; k--) {
			struct slab *d;
			list_for_each_entry(d, &pn->free[k], slab_list) {
				bool hard = pn->dirty > DIRTY_HARD * 3 / 4;
				if (!all && !hard && pn->dirty <= DIRTY_LIMIT / 2)
					break;
				if (!(desc_flags(d) & PG_DIRTY) ||
				    (!all && !hard && now - d->dirty_ns < decay))
					continue;
				purge_block(d);
				pn->dirty -= 1ul << k;
			}
		}
		sheaf_unlock(&pn->lock, LR_PAGE);
	}
}

SHEAF_EXPORT void sheaf_page_info(struct sheaf_page_info *info)
{
	if (!info)
		return;
	sheaf_init();
	memset(info, 0, sizeof(*info));
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	info->arenas = nr_arenas;
	_sheaf_huge_bytes_locked(&info->huge_bytes, &info->huge_retained);
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		struct page_node *pn = &page_nodes[n];
		sheaf_lock(&pn->lock, LR_PAGE);
		info->total_pages += pn->total;
		info->free_pages += pn->nr_free;
		info->dirty_pages += pn->dirty;
		sheaf_unlock(&pn->lock, LR_PAGE);
	}
	info->used_pages = info->total_pages - info->free_pages;
}

/* fork: the locks of one rank (the handlers go up the ranks, then down). */
void _sheaf_pages_lock(enum sheaf_lock_rank r)
{
	if (r == LR_ARENA) {
		sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	} else if (r == LR_PAGE) {
		for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
			sheaf_lock(&page_nodes[n].lock, LR_PAGE);
	} else {
		SHEAF_ASSERT(r == LR_POOL);
		sheaf_lock(&pool.lock, LR_POOL);
	}
}

void _sheaf_pages_unlock(enum sheaf_lock_rank r)
{
	if (r == LR_ARENA) {
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	} else if (r == LR_PAGE) {
		for (unsigned int n = _sheaf_nr_nodes; n-- > 0;)
			sheaf_unlock(&page_nodes[n].lock, LR_PAGE);
	} else {
		SHEAF_ASSERT(r == LR_POOL);
		sheaf_unlock(&pool.lock, LR_POOL);
	}
}
