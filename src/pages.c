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
 * Freed runs are "dirty" (they may hold resident pages).  When a node holds
 * more than DIRTY_LIMIT dirty pages, or on kmem_cache_shrink(), dirty free
 * blocks are given back with madvise(MADV_DONTNEED), and so are the memmap
 * pages that describe only the inside of a large free block.  Arenas are
 * never unmapped while the process lives: lockless readers (the classic
 * fast path) may read a stale free pointer from any slab page.
 *
 * Requests above MAX_RUN_SIZE ("huge" kmalloc) get a mapping of their own,
 * aligned to ARENA_SIZE so that arena_map identifies it; those are unmapped
 * when freed, since no free pointer is ever read from them.
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
struct sheaf_pcs **_sheaf_pcsmap[ARENA_MAP_SIZE];

#define MEMMAP_PAGES ((ARENA_PAGES * sizeof(struct slab)) >> PAGE_SHIFT) /* 1024 */
#define DIRTY_LIMIT  (8192ul) /* pages (32 MiB) of dirty free memory per node */

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
} __attribute__((aligned(CACHE_LINE)));

/* [_sheaf_nr_nodes], from the fork-state pool (the fork handlers lock them) */
static struct page_node *page_nodes;
static pthread_mutex_t arena_lock SHEAF_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
static size_t nr_arenas;
static size_t huge_bytes;
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
static void *map_aligned(size_t size, size_t align)
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
	struct sheaf_pcs **pm = _sheaf_pcsmap[(uintptr_t)d >> ARENA_SHIFT];
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
	sheaf_lock(&arena_lock, LR_ARENA);
	char *base = map_aligned(ARENA_SIZE, ARENA_SIZE);
	if (!base) {
		sheaf_unlock(&arena_lock, LR_ARENA);
		return false;
	}
	struct arena *a = _sheaf_meta_alloc(sizeof(*a));
	struct sheaf_pcs **pcsmap = _sheaf_meta_alloc(ARENA_PAGES * sizeof(*pcsmap));
	if (!a || !pcsmap) {
		_sheaf_meta_free(a, sizeof(*a));
		_sheaf_meta_free(pcsmap, ARENA_PAGES * sizeof(*pcsmap));
		munmap(base, ARENA_SIZE);
		sheaf_unlock(&arena_lock, LR_ARENA);
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
	__atomic_store_n(&_sheaf_pcsmap[(uintptr_t)base >> ARENA_SHIFT], pcsmap,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&sheaf_memmap[(uintptr_t)base >> ARENA_SHIFT], (void *)base,
			 __ATOMIC_RELEASE);
	nr_arenas++;
	sheaf_unlock(&pn->lock, LR_PAGE);
	sheaf_unlock(&arena_lock, LR_ARENA);
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
	free_block_add(pn, h, order, true);
	bool purge = pn->dirty > DIRTY_LIMIT;
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
 * the largest first until the node is under half its limit.
 */
static void huge_release_retained(void);

void _sheaf_pages_purge(bool all)
{
	if (all)
		huge_release_retained();
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		struct page_node *pn = &page_nodes[n];
		sheaf_lock(&pn->lock, LR_PAGE);
		for (int k = MAX_ORDER; k >= 0; k--) {
			struct slab *d;
			list_for_each_entry(d, &pn->free[k], slab_list) {
				if (!all && pn->dirty <= DIRTY_LIMIT / 2)
					break;
				if (!(desc_flags(d) & PG_DIRTY))
					continue;
				purge_block(d);
				pn->dirty -= 1ul << k;
			}
		}
		sheaf_unlock(&pn->lock, LR_PAGE);
	}
}

/*
 * Huge mappings (above MAX_RUN_SIZE), each arena aligned.  A freed one is
 * retained for the next huge allocation rather than unmapped, as
 * jemalloc's decay, mimalloc's purge delay and tcmalloc's page heap keep
 * freed spans: a program cycling big buffers would otherwise map, fault
 * and zero every one anew (mallocbench large).  A retained mapping serves
 * a request by resizing in place: a tail beyond what the request needs
 * (more than an eighth of it) is split off, a shortfall grown with
 * mremap() (in place, or the pages moved to a new mapping when something
 * lies after it) and filled with pages of other retained mappings; its
 * pages already faulted stay.  The smallest retained
 * mapping that covers the request is taken, else the largest that can
 * grow to it.
 *
 * Bounds: at most RETAIN_MAX mappings and retain_budget() bytes
 * (SHEAF_LARGE_RETAIN_MB, 64 MiB by default, or half the live huge bytes
 * if more; 0: nothing retained, every free unmaps), the oldest
 * released first; a mapping unused for SHEAF_LARGE_DECAY_MS (1000 ms) is
 * released by the next huge allocation or free, and all of them by
 * _sheaf_pages_purge(true) (kmem_cache_shrink(), malloc_trim()).
 *
 * Invariants (under arena_lock): retained[0..nr_retained) are the arenas
 * with huge && retained, oldest free first; retained_bytes is the sum of
 * their sizes and within the budget as of the last huge free or
 * allocation; huge_bytes counts live huge mappings only; every huge
 * mapping's size is a multiple of HUGE_GRAIN.  Munmap happens outside the
 * lock, after the mapping's arena-map entries are cleared under it.
 */
#define RETAIN_MAX 64

/*
 * Huge mappings are whole multiples of HUGE_GRAIN (the span of one
 * page-table page, 2 MiB), so that every split, grow and donor move above
 * starts and ends on such a boundary: mremap() then moves whole page-table
 * pages, and the moved pages are touched at the cost of a TLB miss.  Moved
 * at an unaligned offset, each page's entry moves alone and, in a guest
 * with shadow or paravirtual page tables, its first touch costs a host
 * fault: 4.5 us per page measured on the development VM, half of a fresh
 * page's 10 us, against 0.07 us aligned (docs/MALLOC.md, "Large buffers").
 * The slack past a request is not touched by its user: it costs address
 * space, not memory, unless a reused mapping brought it in resident.
 */
#define HUGE_GRAIN (2ul << 20)

static struct arena *retained[RETAIN_MAX];
static unsigned int nr_retained;
static size_t retained_bytes;

/* Arena slots [from, to) of the map: point them at a (or NULL). */
static void map_range(uintptr_t from, uintptr_t to, struct arena *a)
{
	for (uintptr_t x = from; x < to; x += ARENA_SIZE)
		__atomic_store_n(&_sheaf_arena_map[x >> ARENA_SHIFT], a, __ATOMIC_RELEASE);
}

/* The same for slots no mapping covers any more, taking arena_lock. */
static void unmap_slots(uintptr_t from, uintptr_t to)
{
	if (from >= to)
		return;
	sheaf_lock(&arena_lock, LR_ARENA);
	map_range(from, to, NULL);
	sheaf_unlock(&arena_lock, LR_ARENA);
}

static inline uintptr_t slots_end(const struct arena *a)
{
	return (uintptr_t)a->base + ALIGN_UP(a->size, ARENA_SIZE);
}

/*
 * Huge mappings' struct arena records come from pages of them that are
 * never unmapped: a freed record goes on arena_recs (under arena_lock,
 * linked through ->base, with huge and size cleared) for the next.  A
 * lockless reader with a stale map entry (huge_arena_of() racing a free)
 * so reads a mapped record that says "not huge", and a split or release
 * costs no mmap() and munmap() of a page for a 40-byte record.
 */
static struct arena *arena_recs;

static struct arena *arena_rec_new_locked(void)
{
	sheaf_lock_held(LR_ARENA);
	if (!arena_recs) {
		struct arena *v = _sheaf_meta_alloc(PAGE_SIZE);
		if (!v)
			return NULL;
		for (size_t i = 0; i < PAGE_SIZE / sizeof(*v); i++) {
			v[i].base = (char *)arena_recs;
			arena_recs = &v[i];
		}
	}
	struct arena *a = arena_recs;
	arena_recs = (struct arena *)a->base;
	memset(a, 0, sizeof(*a));
	return a;
}

static struct arena *arena_rec_new(void)
{
	sheaf_lock(&arena_lock, LR_ARENA);
	struct arena *a = arena_rec_new_locked();
	sheaf_unlock(&arena_lock, LR_ARENA);
	return a;
}

static void arena_rec_free(struct arena *a)
{
	if (!a)
		return;
	sheaf_lock(&arena_lock, LR_ARENA);
	__atomic_store_n(&a->huge, false, __ATOMIC_RELAXED);
	a->size = 0;
	a->base = (char *)arena_recs;
	arena_recs = a;
	sheaf_unlock(&arena_lock, LR_ARENA);
}

/*
 * Arena-aligned addresses where a huge mapping of ours was and is no
 * more (unmapped, or its pages all moved elsewhere), newest last, under
 * arena_lock: map_huge() tries them first, one mmap() with
 * MAP_FIXED_NOREPLACE instead of map_aligned()'s three calls.  A hint is
 * only a guess: anything may have been mapped there since, and the kernel
 * then refuses.
 */
#define SLOT_HINTS 16
static uintptr_t slot_hint[SLOT_HINTS];
static unsigned int nr_slot_hints;

static void slot_hint_add(uintptr_t base)
{
	sheaf_lock(&arena_lock, LR_ARENA);
	if (nr_slot_hints == SLOT_HINTS) {
		memmove(&slot_hint[0], &slot_hint[1], (SLOT_HINTS - 1) * sizeof(slot_hint[0]));
		nr_slot_hints--;
	}
	slot_hint[nr_slot_hints++] = base;
	sheaf_unlock(&arena_lock, LR_ARENA);
}

/* len fresh bytes at an arena-aligned address, or NULL. */
static char *map_huge(size_t len)
{
	for (int tries = 0; tries < 2; tries++) {
		sheaf_lock(&arena_lock, LR_ARENA);
		uintptr_t at = nr_slot_hints ? slot_hint[--nr_slot_hints] : 0;
		sheaf_unlock(&arena_lock, LR_ARENA);
		if (!at)
			break;
		char *p = mmap((void *)at, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			       MAP_FIXED_NOREPLACE, -1, 0);
		if (p == (char *)at)
			return p;
		if (p != MAP_FAILED)	/* a kernel before 4.17: a hint only */
			munmap(p, len);
	}
	return map_aligned(len, ARENA_SIZE);
}

/*
 * Under arena_lock: how many bytes may stay retained, SHEAF_LARGE_RETAIN_MB
 * or half of what is live in huge mappings, whichever is larger.  A fixed
 * budget below a program's swing in huge memory (mallocbench large: 20
 * buffers of 5-25 MiB, 300 MiB live, swinging by tens of MiB) releases
 * what the next replacement faults in again: 142 fresh pages per
 * replacement at 64 MiB, 102 at 80, 69 at 88.  Scaled with the live bytes,
 * what is kept is at most half as much again as what is in use, and the
 * decay returns it all once the program stops cycling buffers.
 */
static size_t retain_budget(void)
{
	size_t fixed = _sheaf_config.large_retain;
	return fixed ? MAX(fixed, huge_bytes / 2) : 0;
}

/* Remove retained[i] (under arena_lock); its map entries are cleared. */
static struct arena *retained_remove(unsigned int i)
{
	struct arena *a = retained[i];
	memmove(&retained[i], &retained[i + 1],
		(nr_retained - i - 1) * sizeof(retained[0]));
	nr_retained--;
	retained_bytes -= a->size;
	return a;
}

static void huge_unmap(struct arena *a)
{
	munmap(a->base, a->size);
	slot_hint_add((uintptr_t)a->base);
	arena_rec_free(a);
}

/*
 * Under arena_lock: move into out[] (at most RETAIN_MAX) the retained
 * mappings past their decay, and the oldest while the budget or the
 * count is exceeded by `adding` more bytes (and one more mapping).
 * Returns how many; the caller unmaps them after unlocking.
 */
static unsigned int retained_expire(struct arena **out, size_t adding, bool one_more)
{
	unsigned int n = 0;
	uint64_t decay = (uint64_t)_sheaf_config.large_decay_ms * 1000000ull;
	uint64_t now = nr_retained ? _sheaf_coarse_ns() : 0;
	size_t budget = retain_budget();
	while (nr_retained &&
	       (now - retained[0]->freed_ns >= decay ||
		retained_bytes + adding > budget ||
		(one_more && nr_retained == RETAIN_MAX))) {
		struct arena *a = retained_remove(0);
		map_range((uintptr_t)a->base, slots_end(a), NULL);
		out[n++] = a;
	}
	return n;
}

static void release_all(struct arena **v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		huge_unmap(v[i]);
}

/* Under arena_lock: put a retained mapping back, the list kept by age. */
static void retained_insert(struct arena *a)
{
	unsigned int i = nr_retained;
	while (i && retained[i - 1]->freed_ns > a->freed_ns) {
		retained[i] = retained[i - 1];
		i--;
	}
	retained[i] = a;
	nr_retained++;
	retained_bytes += a->size;
}

/*
 * Fresh huge-mapping memory [p, p + n), whole 2 MiB grains at 2 MiB
 * alignment: transparent huge pages asked for (SHEAF_LARGE_THP), so that
 * the first touch of a grain faults one 2 MiB page rather than 512 small
 * ones and a move carries one page-table entry per grain.  Advice only:
 * with THP off, or none to be had, the pages stay small.
 */
static void huge_advise(void *p, size_t n)
{
	if (_sheaf_config.large_thp)
		(void)madvise(p, n, MADV_HUGEPAGE);
}

/*
 * Move the pages of [from, from + n) to `to` (already ours), page tables
 * and all: resident pages stay resident, nothing is faulted or zeroed.
 */
static bool move_pages(char *from, size_t n, char *to)
{
	return mremap(from, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED;
}

/*
 * Map n fresh bytes at `at`, if nothing lies there.  A mapping grows this
 * way rather than by mremap(), which refuses (EFAULT) to grow a range of
 * several VMAs, as one that was given pages of others is.
 */
static bool extend(char *at, size_t n)
{
	char *p = mmap(at, n, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
		       -1, 0);
	if (p == MAP_FAILED)
		return false;
	if (p != at) {	/* a kernel before 4.17 takes the flag for a hint */
		munmap(p, n);
		return false;
	}
	huge_advise(p, n);
	return true;
}

/*
 * a (taken from the list, not live) gives up [len, a->size): its pages go
 * to a new arena-aligned retained mapping when it can be had, else back
 * to the system.
 */
static void split_tail(struct arena *a, size_t len)
{
	size_t tail = a->size - len;
	struct arena *t = arena_rec_new();
	char *nb = t ? map_huge(tail) : NULL;
	if (nb)
		huge_advise(nb, tail);
	bool moved = nb && move_pages(a->base + len, tail, nb);
	uintptr_t old_end = slots_end(a);
	a->size = len;
	sheaf_lock(&arena_lock, LR_ARENA);
	map_range(slots_end(a), old_end, NULL);
	if (moved) {
		*t = (struct arena){ .base = nb, .size = tail, .node = a->node,
				     .huge = true, .retained = true,
				     .freed_ns = a->freed_ns };
		map_range((uintptr_t)nb, slots_end(t), t);
		retained_insert(t);
	}
	sheaf_unlock(&arena_lock, LR_ARENA);
	if (!moved) {
		if (nb)
			munmap(nb, tail);
		arena_rec_free(t);
		munmap(a->base + len, tail);
	}
}

/*
 * A retained mapping resized to len bytes, or NULL; *dirty: how many of
 * its first bytes may hold old data (the rest is fresh, zero).
 *
 * The smallest retained mapping that covers len is taken, else the
 * largest.  A tail beyond len (more than an eighth of it) is split off and
 * stays retained.  A shortfall is grown in place (mremap() without moving,
 * within the arena slots the mapping's map entries cover) and then filled
 * with pages moved from the tails of other retained mappings, largest
 * first, so that a program cycling big buffers of varying sizes reuses
 * their resident pages instead of faulting new ones.  When something else
 * lies after it, its pages move to the head of a new mapping of len.
 * Only a mapping that can be neither grown nor moved is released.
 */
static struct arena *retained_take(size_t len, size_t *dirty)
{
	struct arena *gone[RETAIN_MAX + 1], *donor[RETAIN_MAX];
	unsigned int ngone, ndonor = 0, best = RETAIN_MAX;

	if (!_sheaf_config.large_retain)
		return NULL;
	sheaf_lock(&arena_lock, LR_ARENA);
	ngone = retained_expire(gone, 0, false);
	for (unsigned int i = 0; i < nr_retained; i++) {
		struct arena *a = retained[i];
		struct arena *b = best < RETAIN_MAX ? retained[best] : NULL;
		if (!b || (a->size >= len ? b->size < len || a->size < b->size
					  : b->size < len && a->size > b->size))
			best = i;
	}
	struct arena *a = best < RETAIN_MAX ? retained_remove(best) : NULL;
	if (a && a->size < len) {
		/* donors, largest first, until they cover the shortfall */
		size_t need = len - a->size;
		while (need && nr_retained) {
			unsigned int k = 0;
			for (unsigned int i = 1; i < nr_retained; i++)
				if (retained[i]->size > retained[k]->size)
					k = i;
			donor[ndonor] = retained_remove(k);
			need -= MIN(need, donor[ndonor]->size);
			ndonor++;
		}
	}
	sheaf_unlock(&arena_lock, LR_ARENA);
	release_all(gone, ngone);
	if (!a)
		return NULL;

	*dirty = MIN(a->size, len);
	if (a->size > len + len / 8) {
		split_tail(a, len);
	} else if (a->size < len) {
		size_t have = a->size;
		bool grown = (uintptr_t)a->base + len <= slots_end(a) &&
			     extend(a->base + a->size, len - a->size);
		if (!grown) {
			/* Something else lies after it: its pages move to the
			 * head of a new mapping of len instead. */
			char *nb = map_huge(len);
			if (nb)
				huge_advise(nb, len);
			if (nb && move_pages(a->base, a->size, nb)) {
				unmap_slots((uintptr_t)a->base, slots_end(a));
				slot_hint_add((uintptr_t)a->base);
				a->base = nb;
				grown = true;
			} else if (nb) {
				munmap(nb, len);
			}
		}
		if (grown)
			a->size = len;
		for (unsigned int i = 0; i < ndonor; i++) {
			struct arena *d = donor[i];
			size_t k = MIN(d->size, len - have);
			if (grown && k && move_pages(d->base + d->size - k, k, a->base + have)) {
				uintptr_t old_end = slots_end(d);
				d->size -= k;
				have += k;
				unmap_slots(d->size ? slots_end(d) : (uintptr_t)d->base,
					    old_end);
			}
			if (!d->size) {
				slot_hint_add((uintptr_t)d->base);
				arena_rec_free(d);
				continue;
			}
			sheaf_lock(&arena_lock, LR_ARENA);
			retained_insert(d);
			sheaf_unlock(&arena_lock, LR_ARENA);
		}
		if (!grown) {
			unmap_slots((uintptr_t)a->base, slots_end(a));
			huge_unmap(a);
			return NULL;
		}
		*dirty = have;
	}
	return a;
}

void *_sheaf_huge_alloc(size_t size, gfp_t gfp)
{
	if (should_fail(SHEAF_FAULT_PAGE, NULL, size, gfp))
		return NULL;
	size_t len = ALIGN_UP(size, HUGE_GRAIN);
	if (len < size)
		return NULL;
	size_t dirty = 0; /* bytes of a reused mapping that may hold old data */
	struct arena *a = retained_take(len, &dirty);
	if (!a) {
		a = arena_rec_new();
		if (!a)
			return NULL;
		char *base = map_huge(len);
		if (!base) {
			arena_rec_free(a);
			return NULL;
		}
		huge_advise(base, len);
		a->base = base;
		a->size = len;
		a->huge = true;
	}
	a->node = sheaf_node();
	sheaf_lock(&arena_lock, LR_ARENA);
	__atomic_store_n(&a->retained, false, __ATOMIC_RELAXED);
	map_range((uintptr_t)a->base, slots_end(a), a);
	huge_bytes += a->size;
	sheaf_unlock(&arena_lock, LR_ARENA);
	/* A fresh mapping is zero; a reused one beyond `dirty` only. */
	if (dirty && (gfp & __GFP_ZERO))
		memset(a->base, 0, MIN(dirty, size));
	return a->base;
}

/* The live huge mapping containing p (anywhere in it), or NULL. */
static struct arena *huge_arena_of(const void *p)
{
	uintptr_t x = (uintptr_t)p;
	if (x >> ADDR_BITS)
		return NULL;
	struct arena *a = __atomic_load_n(&_sheaf_arena_map[x >> ARENA_SHIFT],
					  __ATOMIC_ACQUIRE);
	if (!a || !a->huge || __atomic_load_n(&a->retained, __ATOMIC_RELAXED) ||
	    x - (uintptr_t)a->base >= a->size)
		return NULL;
	return a;
}

/* The huge mapping that starts at p, or NULL. */
static struct arena *huge_arena(const void *p)
{
	struct arena *a = huge_arena_of(p);
	return a && a->base == p ? a : NULL;
}

void *_sheaf_huge_start(const void *p)
{
	struct arena *a = huge_arena_of(p);
	return a ? a->base : NULL;
}

int _sheaf_huge_node(const void *p)
{
	struct arena *a = huge_arena(p);
	return a ? a->node : -1;
}

size_t _sheaf_huge_size(const void *p)
{
	struct arena *a = huge_arena(p);
	return a ? a->size : 0;
}

bool _sheaf_huge_free(const void *p)
{
	struct arena *gone[RETAIN_MAX + 1];
	unsigned int ngone;
	struct arena *a = huge_arena(p);
	if (!a)
		return false;
	sheaf_lock(&arena_lock, LR_ARENA);
	/* Checked again under the lock: two frees of p race to here. */
	if (__atomic_load_n(&a->retained, __ATOMIC_RELAXED)) {
		sheaf_unlock(&arena_lock, LR_ARENA);
		return false;
	}
	huge_bytes -= a->size;
	if (a->size <= retain_budget()) {
		ngone = retained_expire(gone, a->size, true);
		__atomic_store_n(&a->retained, true, __ATOMIC_RELAXED);
		a->freed_ns = _sheaf_coarse_ns();
		retained[nr_retained++] = a;
		retained_bytes += a->size;
	} else {
		ngone = retained_expire(gone, 0, false);
		map_range((uintptr_t)a->base, slots_end(a), NULL);
		gone[ngone++] = a;
	}
	sheaf_unlock(&arena_lock, LR_ARENA);
	release_all(gone, ngone);
	return true;
}

/* Every retained huge mapping back to the system (shrink, malloc_trim). */
static void huge_release_retained(void)
{
	struct arena *gone[RETAIN_MAX];
	unsigned int n = 0;
	sheaf_lock(&arena_lock, LR_ARENA);
	while (nr_retained) {
		struct arena *a = retained_remove(0);
		map_range((uintptr_t)a->base, slots_end(a), NULL);
		gone[n++] = a;
	}
	sheaf_unlock(&arena_lock, LR_ARENA);
	release_all(gone, n);
}

/* The idle drain's (slab_common.c): retained mappings past their decay
 * go even when no huge allocation or free comes to release them. */
void _sheaf_pages_decay(void)
{
	struct arena *gone[RETAIN_MAX];
	sheaf_lock(&arena_lock, LR_ARENA);
	unsigned int n = retained_expire(gone, 0, false);
	sheaf_unlock(&arena_lock, LR_ARENA);
	release_all(gone, n);
}

SHEAF_EXPORT void sheaf_page_info(struct sheaf_page_info *info)
{
	if (!info)
		return;
	sheaf_init();
	memset(info, 0, sizeof(*info));
	sheaf_lock(&arena_lock, LR_ARENA);
	info->arenas = nr_arenas;
	info->huge_bytes = huge_bytes;
	info->huge_retained = retained_bytes;
	sheaf_unlock(&arena_lock, LR_ARENA);
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
		sheaf_lock(&arena_lock, LR_ARENA);
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
		sheaf_unlock(&arena_lock, LR_ARENA);
	} else if (r == LR_PAGE) {
		for (unsigned int n = _sheaf_nr_nodes; n-- > 0;)
			sheaf_unlock(&page_nodes[n].lock, LR_PAGE);
	} else {
		SHEAF_ASSERT(r == LR_POOL);
		sheaf_unlock(&pool.lock, LR_POOL);
	}
}
