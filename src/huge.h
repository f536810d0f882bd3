/* SPDX-License-Identifier: MIT */
/*
 * huge.h - private to the huge heap (src/huge.c, src/huge_fill.c): the
 * page layer's spans, regions and free list.  huge.c carves, frees and
 * releases spans; huge_fill.c fills a new span's clean grains with the
 * resident pages of free ones, or prefaults them.  Both under the one
 * arena lock, _sheaf_arena_lock (LR_ARENA).
 */
#ifndef SHEAF_HUGE_H
#define SHEAF_HUGE_H

#include "internal.h"

/*
 * The span heap.
 *
 * A region is one reservation (mmap, MAP_NORESERVE: address space, no
 * memory until touched) of REGION_SIZE, or a request's size rounded up to
 * arenas when that is larger, aligned to an arena so that the arena map's
 * slots for it point at its record.  A region is tiled by spans of whole
 * grains (HUGE_GRAIN, 2 MiB): live ones (an allocation each: the pointer
 * handed out is the span's first byte) and free ones.  An allocation takes
 * the place in a free span that costs the fewest grains (best_fit(): a
 * grain never touched or released costs page faults; for a realloc()
 * that moves, so does a retained grain its old pages would land on),
 * then the smallest span; the rest of the span stays free.  A freed span
 * joins its free neighbours at once, so that a program cycling big buffers of varying sizes finds its old pages
 * in one span again: no system call, no page fault, no page moved.  Only
 * when no free span serves a request is a new region reserved.
 *
 * Memory.  Each grain has a dirty bit: it may be resident (it was handed
 * out since it was last released).  The dirty grains of free spans are
 * the retained memory (sheaf_page_info()'s huge_retained): at most
 * retain_budget() bytes (SHEAF_LARGE_RETAIN_MB, 64 MiB by default, or
 * half the live huge bytes if more; 0: every freed grain is released at
 * once), the oldest free spans released first; a free span unused for
 * SHEAF_LARGE_DECAY_MS (1000 ms) is released by the next huge allocation
 * or free, or the idle drain's decay; kmem_cache_shrink() and
 * malloc_trim() release all of them and unmap every region with nothing
 * live.  The decay also unmaps a region that has been wholly free and
 * released for that long.
 *
 * Why grains: mallocbench large (20 buffers of 5-25 MiB replaced at
 * random) in tcmalloc's page heap costs no system call per replacement;
 * huge mappings of their own, resized with mremap() and filled with the
 * pages of others, cost about one mremap() and one mmap() per replacement
 * (docs/MALLOC.md, "Large buffers").  2 MiB is the span of one page-table
 * page: a span is a whole number of them, and asked for transparent huge
 * pages (SHEAF_LARGE_THP) each grain can be one.
 */
#define GRAIN_SHIFT 21
#define HUGE_GRAIN (1ul << GRAIN_SHIFT)
#define REGION_SIZE (4 * ARENA_SIZE)	/* 1 GiB of address space */

enum span_state { SPAN_FREE, SPAN_LIVE, SPAN_BUSY };

/*
 * struct huge_span - grains [first, first + n) of region r.
 * Invariants (under _sheaf_arena_lock): every grain of r belongs to
 * exactly one span, and r->span[g] is it; two FREE spans are never
 * adjacent (a FREE span next to a BUSY one joins it when the release
 * ends); FREE spans and only they are on the free list, ordered by
 * freed_ns (oldest first); dirty counts the span's dirty grains (FREE and
 * BUSY spans; a LIVE span's grains are all dirty once its allocation
 * returns: while its fill runs, the grains being filled are still clean).
 * BUSY: taken off the free list while madvise() releases part of it, or
 * its pages move to a new span's grains, outside the lock; nothing carves
 * from it.  Lockless readers (span_of(): free(), ksize(), a
 * pointer's owner) read r->span[g] and state atomically; records are never
 * unmapped, so a stale reader reads a record that says "not live".
 */
struct huge_span {
	struct huge_region *r;
	size_t first, n;	/* grains */
	size_t dirty;		/* FREE, BUSY: how many of its grains are dirty */
	uint64_t freed_ns;	/* FREE, BUSY: when it was last freed (CLOCK_MONOTONIC) */
	int node;		/* LIVE: the node of the allocating thread */
	char *probe;		/* LIVE: a page left to fault in a grain that was
				 * clean when it was handed out, or NULL
				 * (touch_note(): prefaulting) */
	uint8_t state;		/* enum span_state */
	struct huge_span *prev, *next;	/* FREE: the free list; spare records: next */
};

/*
 * struct huge_region - one reservation: a.base, a.size (`grains` whole
 * grains), a.huge set: the record the arena map's slots for it point at.
 * span[], dirty[] (a bitmap) and ext[] have cap entries, cap >= grains;
 * ext[g] is a hint, not an invariant: how many of grain g's pages, from
 * its start, are likely resident (0 when clean; what a span's request
 * covered of its last grain when it was live; see prefault()); a record
 * whose region is unmapped serves the next region it is large enough for.
 * Invariant (under _sheaf_arena_lock): a region is on `regions` from its
 * mapping to its unmapping; its map slots point at it in that time only.
 */
struct huge_region {
	struct arena a;
	size_t grains, cap;
	struct huge_span **span;
	unsigned long *dirty;
	uint16_t *ext;
	struct huge_region *next;	/* regions, or spare_regions */
};

#define LONG_BITS (8 * sizeof(unsigned long))
#define GRAIN_PAGES (HUGE_GRAIN / PAGE_SIZE)

/*
 * struct huge_heap - the free list and the counters (under
 * _sheaf_arena_lock).  free_head..free_tail: every FREE span, oldest
 * freed first; huge_bytes: the LIVE spans' bytes; free_dirty: the dirty
 * grains of FREE and BUSY spans (the retained memory).
 */
struct huge_heap {
	struct huge_span *free_head, *free_tail;
	size_t huge_bytes;
	size_t free_dirty;
};

extern struct huge_heap _sheaf_huge_heap;

static inline char *grain_addr(const struct huge_region *r, size_t g)
{
	return r->a.base + (g << GRAIN_SHIFT);
}

static inline char *span_addr(const struct huge_span *s)
{
	return grain_addr(s->r, s->first);
}

/* ------------------------------------------------------- dirty bits */

static inline bool grain_dirty(const struct huge_region *r, size_t g)
{
	return r->dirty[g / LONG_BITS] >> (g % LONG_BITS) & 1;
}

static inline size_t dirty_count(const struct huge_region *r, size_t g, size_t n)
{
	size_t c = 0;
	for (size_t i = g; i < g + n; i++)
		c += grain_dirty(r, i);
	return c;
}

/* Grains [g, g + n) dirty, or clean (released, or their pages moved
 * away: nothing resident). */
static inline void dirty_mark(struct huge_region *r, size_t g, size_t n, bool on)
{
	for (size_t i = g; i < g + n; i++) {
		unsigned long bit = 1ul << (i % LONG_BITS);
		if (on) {
			r->dirty[i / LONG_BITS] |= bit;
		} else {
			r->dirty[i / LONG_BITS] &= ~bit;
			r->ext[i] = 0;
		}
	}
}

/* The pages of grain g of span s that a request of size bytes covers. */
static inline size_t grain_need(const struct huge_span *s, size_t g, size_t size)
{
	if (g + 1 < s->first + s->n)
		return GRAIN_PAGES;
	return (size - ((g - s->first) << GRAIN_SHIFT) + PAGE_SIZE - 1) / PAGE_SIZE;
}


/*
 * Fresh huge-heap address space [p, p + n): transparent huge pages asked
 * for (SHEAF_LARGE_THP), so that the first touch of a grain faults one
 * 2 MiB page rather than 512 small ones.  Advice only: with THP off, or
 * none to be had, the pages stay small.
 */
static inline void huge_advise(void *p, size_t n)
{
	if (_sheaf_config.large_thp)
		(void)madvise(p, n, MADV_HUGEPAGE);
}

/* huge.c: the free list (under the lock): a FREE span taken off it
 * (BUSY), and a span put back on it, joined with its FREE neighbours. */
void _sheaf_huge_take_busy(struct huge_span *s);
void _sheaf_huge_free_insert(struct huge_span *s);

/*
 * Filling a new span's clean grains with the resident pages of free ones.
 *
 * A program cycling big buffers leaves free spans between its live ones
 * that fit no request of the moment: their pages are resident and unused,
 * while a request that finds no span dirty enough would fault in fresh
 * pages (512 faults a grain) and grow the heap's footprint until the holes
 * happen to fit.  Instead the clean grains of the carved span get the
 * dirty grains of free spans, oldest free first, moved page tables and all
 * with mremap(MREMAP_DONTUNMAP): the source stays mapped (empty: clean),
 * so the region has no hole that another mapping could take, and nothing
 * is faulted or zeroed.  At most FILL_MAX grains an allocation; a move
 * that fails (an old kernel without MREMAP_DONTUNMAP, the map count
 * limit) leaves both grains as they were, the clean one to fault.
 */
#define FILL_MAX 64

/*
 * struct fill - one allocation's plan (_sheaf_huge_fill_begin() under the
 * lock, _sheaf_huge_fill_end() outside it).  Invariants: clean[] and
 * part[] ascend; pair i moves grain src[i] of the BUSY donor from[i] to
 * s's clean grain dst[i], dst[] ascending; moved[i] is set by the run.
 */
struct fill {
	unsigned int n, nclean, npart;
	size_t size;				/* bytes the program asked for */
	size_t clean[FILL_MAX];			/* s's clean grains past skip */
	size_t part[FILL_MAX];			/* s's dirty grains past skip with
						 * fewer pages resident than the
						 * request covers (ext[] hint) */
	uint16_t part_from[FILL_MAX], part_to[FILL_MAX];	/* those pages */
	size_t dst[FILL_MAX], src[FILL_MAX];	/* grains: s's clean, a donor's dirty */
	struct huge_span *from[FILL_MAX];	/* the donor of src[i] (BUSY; a
						 * donor's pairs are consecutive) */
	bool moved[FILL_MAX];
};

/*
 * huge_fill.c.  Filling s's clean grains past its first `skip` for a
 * request of size bytes: _begin under the lock, right after s was carved
 * or grown; _end outside it (it takes the lock again for the donors).
 * s's grains are all dirty after _end.  _move_grain: one grain's pages
 * moved (false: both grains as they were).  _touch_sample: before a live
 * span is freed, outside the lock (the prefault heuristic's input).
 */
void _sheaf_huge_fill_begin(struct huge_span *s, size_t skip, size_t size, struct fill *f);
void _sheaf_huge_fill_end(struct huge_span *s, struct fill *f);
bool _sheaf_huge_move_grain(char *from, char *to);
void _sheaf_huge_touch_sample(struct huge_span *s);

#endif /* SHEAF_HUGE_H */
