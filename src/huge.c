/* SPDX-License-Identifier: MIT */
/*
 * huge.c - the page layer's huge allocations: kmalloc/kvmalloc (and the
 * malloc replacement) above MAX_RUN_SIZE, carved in whole 2 MiB grains
 * from a span heap of large reservations (regions), as tcmalloc's page
 * heap carves its spans.  A freed span joins its free neighbours and stays
 * resident for the next request, within a budget and a decay; what is
 * released goes back with madvise(MADV_DONTNEED), the address space kept.
 * pages.c is the other half of the layer (arenas, buddy runs); both take
 * the one arena lock, _sheaf_arena_lock (LR_ARENA).
 */
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
 * the free span that serves it with the fewest grains never touched or
 * released (each of those costs page faults), then the smallest, and
 * carves the request from it at the first suitably aligned grain; the
 * rest stays free.  A freed span joins its free neighbours at once, so
 * that a program cycling big buffers of varying sizes finds its old pages
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

static struct huge_region *regions, *spare_regions;
static struct huge_span *spare_spans;
static struct huge_span *free_head, *free_tail;
static size_t huge_bytes;	/* live spans' bytes */
static size_t free_dirty;	/* FREE and BUSY spans' dirty grains */

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

static size_t dirty_count(const struct huge_region *r, size_t g, size_t n)
{
	size_t c = 0;
	for (size_t i = g; i < g + n; i++)
		c += grain_dirty(r, i);
	return c;
}

/* Grains [g, g + n) dirty, or clean (released, or their pages moved
 * away: nothing resident). */
static void dirty_mark(struct huge_region *r, size_t g, size_t n, bool on)
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
static size_t grain_need(const struct huge_span *s, size_t g, size_t size)
{
	if (g + 1 < s->first + s->n)
		return GRAIN_PAGES;
	return (size - ((g - s->first) << GRAIN_SHIFT) + PAGE_SIZE - 1) / PAGE_SIZE;
}

/* Under the lock: s live for a request of size bytes: its grains dirty,
 * their extents what the request covers (or what they had). */
static void span_mark_live(struct huge_span *s, size_t size)
{
	dirty_mark(s->r, s->first, s->n, true);
	for (size_t g = s->first; g < s->first + s->n; g++)
		s->r->ext[g] = (uint16_t)MAX(s->r->ext[g], grain_need(s, g, size));
}

/*
 * Fresh huge-heap address space [p, p + n): transparent huge pages asked
 * for (SHEAF_LARGE_THP), so that the first touch of a grain faults one
 * 2 MiB page rather than 512 small ones.  Advice only: with THP off, or
 * none to be had, the pages stay small.
 */
static void huge_advise(void *p, size_t n)
{
	if (_sheaf_config.large_thp)
		(void)madvise(p, n, MADV_HUGEPAGE);
}

/* ------------------------------------------------------- records */

/* Under the lock: at least k spare span records, or false. */
static bool span_recs_reserve(unsigned int k)
{
	unsigned int have = 0;
	for (struct huge_span *s = spare_spans; s && have < k; s = s->next)
		have++;
	if (have >= k)
		return true;
	struct huge_span *v = _sheaf_meta_alloc(PAGE_SIZE);
	if (!v)
		return false;
	for (size_t i = 0; i < PAGE_SIZE / sizeof(*v); i++) {
		v[i].next = spare_spans;
		spare_spans = &v[i];
	}
	return true;
}

static struct huge_span *span_rec_get(void)
{
	struct huge_span *s = spare_spans;
	spare_spans = s->next;
	memset(s, 0, sizeof(*s));
	return s;
}

static void span_rec_put(struct huge_span *s)
{
	__atomic_store_n(&s->state, SPAN_FREE, __ATOMIC_RELAXED);
	s->r = NULL;
	s->next = spare_spans;
	spare_spans = s;
}

/* r->span[] over s's grains: s. */
static void span_publish(struct huge_span *s)
{
	for (size_t g = s->first; g < s->first + s->n; g++)
		__atomic_store_n(&s->r->span[g], s, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------- the free list */

static void free_link(struct huge_span *s)
{
	struct huge_span *after = free_tail;
	while (after && after->freed_ns > s->freed_ns)
		after = after->prev;
	s->prev = after;
	s->next = after ? after->next : free_head;
	if (s->next)
		s->next->prev = s;
	else
		free_tail = s;
	if (after)
		after->next = s;
	else
		free_head = s;
}

static void free_unlink(struct huge_span *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		free_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		free_tail = s->prev;
	s->prev = s->next = NULL;
}

/* s (being put on the free list) absorbs its adjacent FREE neighbour t. */
static void span_absorb(struct huge_span *s, struct huge_span *t)
{
	free_unlink(t);
	s->first = MIN(s->first, t->first);
	s->n += t->n;
	s->dirty += t->dirty;
	s->freed_ns = MAX(s->freed_ns, t->freed_ns);
	span_rec_put(t);
}

/* Under the lock: s (FREE, on no list) joins its FREE neighbours and the
 * free list.  The joined span is as old as the newest of its parts. */
static void free_insert(struct huge_span *s)
{
	struct huge_region *r = s->r;
	__atomic_store_n(&s->state, SPAN_FREE, __ATOMIC_RELAXED);
	if (s->first) {
		struct huge_span *l = r->span[s->first - 1];
		if (l->state == SPAN_FREE)
			span_absorb(s, l);
	}
	if (s->first + s->n < r->grains) {
		struct huge_span *t = r->span[s->first + s->n];
		if (t->state == SPAN_FREE)
			span_absorb(s, t);
	}
	span_publish(s);
	free_link(s);
}

/* ------------------------------------------------------- allocation */

/* The first grain of s whose address is aligned to align. */
static size_t aligned_grain(const struct huge_span *s, size_t align)
{
	uintptr_t at = ALIGN_UP((uintptr_t)span_addr(s), align);
	return (size_t)((at - (uintptr_t)s->r->a.base) >> GRAIN_SHIFT);
}

/*
 * Under the lock: the free span to carve need grains aligned to align
 * from, and in *at the grain to start at; NULL if none serves.  Fewest
 * clean grains in the carved part first (each costs faults), then the
 * smallest span (the large ones kept whole), then the lowest address.
 */
static struct huge_span *best_fit(size_t need, size_t align, size_t *at)
{
	struct huge_span *best = NULL;
	size_t best_clean = 0, best_at = 0;
	for (struct huge_span *s = free_head; s; s = s->next) {
		if (s->n < need)
			continue;
		size_t g = aligned_grain(s, align);
		if (g + need > s->first + s->n)
			continue;
		size_t clean = need - (s->dirty ? dirty_count(s->r, g, need) : 0);
		if (!best || clean < best_clean ||
		    (clean == best_clean && (s->n < best->n ||
		     (s->n == best->n && span_addr(s) < span_addr(best))))) {
			best = s;
			best_clean = clean;
			best_at = g;
		}
	}
	*at = best_at;
	return best;
}

/*
 * Under the lock, with two spare records: grains [at, at + need) of the
 * free span s become a live span; what is left on either side stays free.
 * Returns the live span, its grains' dirty bits as they were (the caller
 * fills its clean ones, then marks them all); *dirty_end: the bytes from
 * its start up to the end of its last dirty grain (what may hold old
 * data).
 */
static struct huge_span *carve(struct huge_span *s, size_t at, size_t need,
			       size_t *dirty_end)
{
	struct huge_region *r = s->r;
	size_t end = s->first + s->n;
	free_unlink(s);
	if (at > s->first) {
		struct huge_span *l = span_rec_get();
		*l = (struct huge_span){ .r = r, .first = s->first, .n = at - s->first,
					 .freed_ns = s->freed_ns, .state = SPAN_FREE };
		l->dirty = dirty_count(r, l->first, l->n);
		span_publish(l);
		free_link(l);
	}
	if (at + need < end) {
		struct huge_span *t = span_rec_get();
		*t = (struct huge_span){ .r = r, .first = at + need, .n = end - at - need,
					 .freed_ns = s->freed_ns, .state = SPAN_FREE };
		t->dirty = dirty_count(r, t->first, t->n);
		span_publish(t);
		free_link(t);
	}
	size_t last = 0;
	for (size_t g = at; g < at + need; g++)
		if (grain_dirty(r, g)) {
			free_dirty--;
			last = g - at + 1;
		}
	*dirty_end = last << GRAIN_SHIFT;
	s->first = at;
	s->n = need;
	s->dirty = 0;
	s->node = sheaf_node();
	s->probe = NULL;
	span_publish(s);
	__atomic_store_n(&s->state, SPAN_LIVE, __ATOMIC_RELEASE);
	huge_bytes += need << GRAIN_SHIFT;
	return s;
}

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

/* Under the lock: pair s's clean grains past its first `skip` with dirty
 * grains of free spans, oldest first, in f; the donors are taken off the
 * free list (BUSY). */
static void fill_plan(struct huge_span *s, size_t skip, struct fill *f)
{
	size_t g = s->first + skip, end = s->first + s->n;
	f->n = 0;
	for (struct huge_span *d = free_head, *next; d && f->n < FILL_MAX; d = next) {
		next = d->next;
		if (!d->dirty)
			continue;
		unsigned int before = f->n;
		for (size_t x = d->first; x < d->first + d->n && f->n < FILL_MAX; x++) {
			if (d->r->ext[x] != GRAIN_PAGES)	/* whole grains only */
				continue;
			while (g < end && grain_dirty(s->r, g))
				g++;
			if (g == end)
				break;
			f->dst[f->n] = g++;
			f->src[f->n] = x;
			f->from[f->n] = d;
			f->n++;
		}
		if (f->n > before) {
			free_unlink(d);
			__atomic_store_n(&d->state, SPAN_BUSY, __ATOMIC_RELAXED);
		}
		if (g == end)
			break;
	}
}

/*
 * Outside the lock: the pages of the grain at `from` moved to the grain
 * at `to`, page tables and all; the source stays mapped, empty (clean).
 * One grain at a time: a grain always lies in one mapping (every split of
 * a region's mappings is at a grain boundary), as mremap() wants before
 * Linux 6.17, and a kernel that refuses a range of several only finds
 * out after it has unmapped the destination.  False if the move was
 * refused: both grains are then as they were.  A kernel without
 * MREMAP_DONTUNMAP (before 5.7), or valgrind, refuses with EINVAL before
 * doing anything, and no move is tried again.  Any other refusal (the
 * map count limit) is checked for a destination left unmapped, which is
 * mapped again (clean); if that cannot be done, the process stops with a
 * message rather than hand out a block with a hole.
 */
static bool no_moves;
static long refuse_moves;	/* sheaf_test_refuse_moves() */
static bool refuse_unmap;

SHEAF_EXPORT void sheaf_test_refuse_moves(long count, bool unmap_dest)
{
	__atomic_store_n(&refuse_unmap, unmap_dest, __ATOMIC_RELAXED);
	__atomic_store_n(&refuse_moves, count, __ATOMIC_RELAXED);
}

/* A refusal the test hook asked for: as the kernel's, errno ENOMEM. */
static bool move_refused_for_test(char *to)
{
	long n = __atomic_load_n(&refuse_moves, __ATOMIC_RELAXED);
	if (likely(!n))
		return false;
	if (n > 0)
		__atomic_fetch_sub(&refuse_moves, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&refuse_unmap, __ATOMIC_RELAXED))
		munmap(to, HUGE_GRAIN);
	errno = ENOMEM;
	return true;
}

static bool move_grain(char *from, char *to)
{
	if (__atomic_load_n(&no_moves, __ATOMIC_RELAXED))
		return false;
	if (!move_refused_for_test(to) &&
	    mremap(from, HUGE_GRAIN, HUGE_GRAIN,
		   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to) != MAP_FAILED)
		return true;
	if (errno == EINVAL) {
		__atomic_store_n(&no_moves, true, __ATOMIC_RELAXED);
		return false;
	}
	unsigned char vec[HUGE_GRAIN / 4096];	/* contents unused */
	if (mincore(to, HUGE_GRAIN, vec) == 0 || errno != ENOMEM)
		return false;	/* still mapped */
	void *q = mmap(to, HUGE_GRAIN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (q == to) {
		huge_advise(q, HUGE_GRAIN);
		return false;
	}
	if (q != MAP_FAILED)
		munmap(q, HUGE_GRAIN);	/* the flag taken for a hint */
	fprintf(stderr, "sheaf: huge heap: a failed page move left %p unmapped, "
		"and it cannot be mapped again\n", (void *)to);
	_sheaf_die();
}

/* Outside the lock: the moves f planned. */
static void fill_run(struct huge_span *s, struct fill *f)
{
	for (unsigned int i = 0; i < f->n; i++)
		f->moved[i] = move_grain(grain_addr(f->from[i]->r, f->src[i]),
					 grain_addr(s->r, f->dst[i]));
}

/* Under the lock: the donors' moved grains are clean; each donor free
 * again after its last pair. */
static void fill_done(struct huge_span *s, struct fill *f)
{
	for (unsigned int i = 0; i < f->n; i++) {
		struct huge_span *d = f->from[i];
		if (f->moved[i]) {
			s->r->ext[f->dst[i]] = GRAIN_PAGES;
			dirty_mark(d->r, f->src[i], 1, false);
			d->dirty--;
			free_dirty--;
		}
		if (i + 1 == f->n || f->from[i + 1] != d)
			free_insert(d);
	}
}

/*
 * Prefaulting.  What no free span's pages fill stays clean, and the
 * program's first touch of each of its pages is a page fault: on the
 * development VM about 3 us each, most of it the trap and the fault
 * path's lookups rather than the zeroing of the page.
 * madvise(MADV_POPULATE_WRITE) (Linux 5.14) takes the same pages in one
 * call.  mallocbench large, whose faults are its heap's growth: 121-138
 * us a replacement against 141-167 without (tcmalloc 124-151).  But a
 * program that touches a big buffer sparsely (a hash table, a calloc()ed
 * array used in part) would have all of it resident.  So it is learned:
 * each span handed out with clean grains keeps one page of them
 * unpopulated, its probe (in the last of them, in the middle of what the
 * request covers); its free asks mincore() whether the program touched
 * it, and touch_score follows the answers (a quarter of the way to 0 or
 * 256 each).  Clean grains are populated while it is at least
 * TOUCH_POPULATE: after 8 touched probes from the start, 3 after one
 * that was not touched, which stops it at once.  Only spans up to
 * POPULATE_MAX, within the request's size; SHEAF_LARGE_POPULATE=0 never,
 * 1 always; never with SHEAF_LARGE_THP.  A refusal (EINVAL: a kernel
 * before 5.14) turns it off.
 */
#define TOUCH_FULL 256u
#define TOUCH_POPULATE 224u
#define POPULATE_MAX (64ul << 20)

static unsigned int touch_score;	/* lossy under races: a heuristic */
static bool no_populate;

/* A free's answer: the program touched its span's probe page, or not. */
static void touch_note(bool touched)
{
	unsigned int old = __atomic_load_n(&touch_score, __ATOMIC_RELAXED);
	__atomic_store_n(&touch_score, old - old / 4 + (touched ? TOUCH_FULL / 4 : 0),
			 __ATOMIC_RELAXED);
}

/* Before s is freed (outside the lock): its probe's answer, if it has one. */
static void touch_sample(struct huge_span *s)
{
	char *probe = __atomic_exchange_n(&s->probe, NULL, __ATOMIC_RELAXED);
	unsigned char vec;
	if (probe && mincore(probe, PAGE_SIZE, &vec) == 0)
		touch_note(vec & 1);
}

static bool populate_wanted(void)
{
	int mode = _sheaf_config.large_populate;
	/* With transparent huge pages a fault maps its whole grain: nothing
	 * to gain, and the probe would say nothing. */
	if (!mode || _sheaf_config.large_thp ||
	    __atomic_load_n(&no_populate, __ATOMIC_RELAXED))
		return false;
	return mode > 0 || __atomic_load_n(&touch_score, __ATOMIC_RELAXED) >= TOUCH_POPULATE;
}

static void populate(char *p, size_t n)
{
	if (n && madvise(p, n, MADV_POPULATE_WRITE) && errno == EINVAL)
		__atomic_store_n(&no_populate, true, __ATOMIC_RELAXED);
}

/* Outside the lock, s live: the probe chosen among the clean grains no
 * move filled, and those populated (but the probe) when wanted, with the
 * pages the request covers that its dirty grains likely lack (the last
 * grain of a span freed before is resident only as far as its request
 * went: carved into a longer span, it would fault the rest). */
static void prefault(struct huge_span *s, struct fill *f)
{
	char *start = span_addr(s), *end = start + f->size;
	char *lo[FILL_MAX], *hi[FILL_MAX];
	unsigned int k = 0;
	for (unsigned int i = 0, j = 0; i < f->nclean; i++) {
		while (j < f->n && f->dst[j] < f->clean[i])
			j++;
		if (j < f->n && f->dst[j] == f->clean[i] && f->moved[j])
			continue;
		char *a = grain_addr(s->r, f->clean[i]), *b = MIN(a + HUGE_GRAIN, end);
		if (a >= end)
			break;
		if (k && hi[k - 1] == a)
			hi[k - 1] = b;
		else {
			lo[k] = a;
			hi[k++] = b;
		}
	}
	char *probe = NULL;
	if (k) {
		probe = (char *)ALIGN_DOWN((uintptr_t)(lo[k - 1] + (hi[k - 1] - lo[k - 1]) / 2),
					   PAGE_SIZE);
		__atomic_store_n(&s->probe, probe, __ATOMIC_RELAXED);
	}
	if ((!k && !f->npart) || (s->n << GRAIN_SHIFT) > POPULATE_MAX || !populate_wanted())
		return;
	for (unsigned int i = 0; i < f->npart; i++)
		populate(grain_addr(s->r, f->part[i]) + f->part_from[i] * PAGE_SIZE,
			 (size_t)(f->part_to[i] - f->part_from[i]) * PAGE_SIZE);
	for (unsigned int i = 0; i < k; i++) {
		if (probe >= lo[i] && probe < hi[i]) {
			populate(lo[i], (size_t)(probe - lo[i]));
			populate(probe + PAGE_SIZE, (size_t)(hi[i] - probe - PAGE_SIZE));
		} else {
			populate(lo[i], (size_t)(hi[i] - lo[i]));
		}
	}
}

/*
 * The two halves of filling s's clean grains past its first `skip`.
 * Under the lock, right after s was carved or grown: plan the moves, or
 * (nothing to move) mark s's grains dirty at once.  Outside the lock:
 * make the planned moves, then mark the donors and s.
 */
static void fill_begin(struct huge_span *s, size_t skip, size_t size, struct fill *f)
{
	size_t clean = 0;
	f->n = f->nclean = f->npart = 0;
	f->size = size;
	for (size_t g = s->first + skip; g < s->first + s->n; g++) {
		size_t need = grain_need(s, g, size);
		if (!grain_dirty(s->r, g)) {
			clean++;
			if (f->nclean < FILL_MAX)
				f->clean[f->nclean++] = g;
		} else if (s->r->ext[g] < need && f->npart < FILL_MAX) {
			f->part[f->npart] = g;
			f->part_from[f->npart] = s->r->ext[g];
			f->part_to[f->npart++] = (uint16_t)need;
		}
	}
	if (free_dirty && clean)
		fill_plan(s, skip, f);
	if (!f->n)
		span_mark_live(s, size);
}

static void fill_end(struct huge_span *s, struct fill *f)
{
	if (f->n) {
		fill_run(s, f);
		sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
		fill_done(s, f);
		span_mark_live(s, f->size);
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	}
	prefault(s, f);
}


/* Under the lock: a region record for `grains` grains, or NULL. */
static struct huge_region *region_rec_get(size_t grains)
{
	for (struct huge_region **pp = &spare_regions; *pp; pp = &(*pp)->next)
		if ((*pp)->cap >= grains) {
			struct huge_region *r = *pp;
			*pp = r->next;
			return r;
		}
	size_t words = (grains + LONG_BITS - 1) / LONG_BITS;
	size_t bytes = sizeof(struct huge_region) + grains * sizeof(struct huge_span *) +
		       words * sizeof(unsigned long) + grains * sizeof(uint16_t);
	/* whatever the pages hold beyond that is capacity too (a bitmap word
	 * counted per grain: room to spare) */
	size_t cap = (ALIGN_UP(bytes, PAGE_SIZE) - sizeof(struct huge_region)) /
		     (sizeof(struct huge_span *) + sizeof(unsigned long) + sizeof(uint16_t));
	struct huge_region *r = _sheaf_meta_alloc(bytes);
	if (!r)
		return NULL;
	r->cap = MAX(cap, grains);
	r->span = (struct huge_span **)(r + 1);
	r->dirty = (unsigned long *)(r->span + r->cap);
	r->ext = (uint16_t *)(r->dirty + (r->cap + LONG_BITS - 1) / LONG_BITS);
	return r;
}

static void map_slots(const struct huge_region *r, struct arena *to)
{
	uintptr_t end = (uintptr_t)r->a.base + ALIGN_UP(r->a.size, ARENA_SIZE);
	for (uintptr_t x = (uintptr_t)r->a.base; x < end; x += ARENA_SIZE)
		__atomic_store_n(&_sheaf_arena_map[x >> ARENA_SHIFT], to, __ATOMIC_RELEASE);
}

/*
 * A new region that serves need grains at any alignment up to an arena:
 * REGION_SIZE, or the request rounded up to arenas if larger; if that
 * much address space cannot be had (an RLIMIT_AS, strict overcommit),
 * the request alone.  Its one span is free and clean.
 */
static bool region_add(size_t need)
{
	size_t want = need << GRAIN_SHIFT;
	size_t size = MAX(REGION_SIZE, ALIGN_UP(want, ARENA_SIZE));
	char *base = _sheaf_map_aligned(size, ARENA_SIZE);
	if (!base && size > want)
		base = _sheaf_map_aligned(size = want, ARENA_SIZE);
	if (!base)
		return false;
	huge_advise(base, size);
	size_t grains = size >> GRAIN_SHIFT;
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	struct huge_region *r = region_rec_get(grains);
	if (!r || !span_recs_reserve(1)) {
		if (r) {
			r->next = spare_regions;
			spare_regions = r;
		}
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		munmap(base, size);
		return false;
	}
	r->a = (struct arena){ .base = base, .size = size, .huge = true };
	__atomic_store_n(&r->grains, grains, __ATOMIC_RELAXED);
	memset(r->dirty, 0, (grains + LONG_BITS - 1) / LONG_BITS * sizeof(unsigned long));
	memset(r->ext, 0, grains * sizeof(*r->ext));
	struct huge_span *s = span_rec_get();
	*s = (struct huge_span){ .r = r, .first = 0, .n = grains,
				 .freed_ns = _sheaf_coarse_ns(), .state = SPAN_FREE };
	span_publish(s);
	free_link(s);
	r->next = regions;
	regions = r;
	map_slots(r, &r->a);
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	return true;
}

/* ------------------------------------------------------- release */

/*
 * Under _sheaf_arena_lock: how many bytes may stay retained, SHEAF_LARGE_RETAIN_MB
 * or half of what is live in huge spans, whichever is larger.  A fixed
 * budget below a program's swing in huge memory (mallocbench large: 20
 * buffers of 5-25 MiB, 300 MiB live, swinging by tens of MiB) releases
 * what the next replacement faults in again.  Scaled with the live bytes,
 * what is kept is at most half as much again as what is in use, and the
 * decay returns it all once the program stops cycling buffers.
 */
static size_t retain_budget(void)
{
	size_t fixed = _sheaf_config.large_retain;
	return fixed ? MAX(fixed, huge_bytes / 2) : 0;
}

/* Whether a span freed at freed_ns is past SHEAF_LARGE_DECAY_MS. */
static bool decayed(uint64_t freed_ns)
{
	uint64_t decay = (uint64_t)_sheaf_config.large_decay_ms * 1000000ull;
	return _sheaf_coarse_ns() - freed_ns >= decay;
}

/*
 * Under the lock: the next release due, as a span made BUSY and the
 * grains [*from, *from + *n) of it to release; NULL when nothing is due.
 * The oldest free span with dirty grains goes whole when `all`, or when it
 * is past the decay; while the retained grains are over the budget, as
 * many of its last dirty grains as the excess.
 */
static struct huge_span *release_pick(bool all, size_t slack, size_t *from, size_t *n)
{
	struct huge_span *s = free_head;
	while (s && !s->dirty)
		s = s->next;
	if (!s)
		return NULL;
	size_t budget = retain_budget() >> GRAIN_SHIFT;
	if (free_dirty <= budget + slack)
		budget = free_dirty;	/* within the trigger: decay only */
	if (all || decayed(s->freed_ns) || s->dirty <= free_dirty - MIN(free_dirty, budget)) {
		*from = s->first;
		*n = s->n;
	} else if (free_dirty > budget) {
		size_t excess = free_dirty - budget, g = s->first + s->n;
		while (excess)
			excess -= grain_dirty(s->r, --g);
		*from = g;
		*n = s->first + s->n - g;
	} else {
		return NULL;
	}
	free_unlink(s);
	__atomic_store_n(&s->state, SPAN_BUSY, __ATOMIC_RELAXED);
	return s;
}

/* Under the lock: s's grains [from, from + n) released (or not, if
 * madvise() failed: they stay dirty); s free again. */
static void release_done(struct huge_span *s, size_t from, size_t n, bool ok)
{
	if (ok) {
		size_t c = dirty_count(s->r, from, n);
		dirty_mark(s->r, from, n, false);
		s->dirty -= c;
		free_dirty -= c;
	}
	free_insert(s);
}

/* Under the lock: unlink a region with nothing live and nothing dirty
 * (its one span FREE and clean) when `all`, or when that span is past the
 * decay; returns it (its map slots cleared) for munmap() after unlocking. */
static struct huge_region *region_pick_empty(bool all)
{
	for (struct huge_region **pp = &regions; *pp; pp = &(*pp)->next) {
		struct huge_region *r = *pp;
		struct huge_span *s = r->span[0];
		if (s->state != SPAN_FREE || s->n != r->grains || s->dirty ||
		    (!all && !decayed(s->freed_ns)))
			continue;
		*pp = r->next;
		free_unlink(s);
		span_rec_put(s);
		map_slots(r, NULL);
		__atomic_store_n(&r->grains, 0, __ATOMIC_RELAXED);
		return r;
	}
	return NULL;
}

/*
 * Bring the retained memory within its bounds (release_pick()): the
 * madvise() calls run outside the lock, their spans BUSY meanwhile.
 * `regions_too`: then unmap the regions region_pick_empty() gives.
 */
static void huge_trim(bool all, bool after_free, bool regions_too)
{
	size_t from, n;
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	/* After a free the budget is exceeded by its own slack first: the
	 * next allocation usually takes what it gave (free, then malloc). */
	size_t slack = after_free ? retain_budget() >> GRAIN_SHIFT : 0;
	struct huge_span *s;
	while ((s = release_pick(all, slack, &from, &n))) {
		slack = 0;
		char *p = grain_addr(s->r, from);
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		bool ok = madvise(p, n << GRAIN_SHIFT, MADV_DONTNEED) == 0;
		sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
		release_done(s, from, n, ok);
	}
	struct huge_region *r;
	while (regions_too && (r = region_pick_empty(all))) {
		char *base = r->a.base;
		size_t size = r->a.size;
		r->next = spare_regions;
		spare_regions = r;
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		munmap(base, size);
		sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	}
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
}

/* ------------------------------------------------------- the interface */

/*
 * A new live span of need grains aligned to align for a request of size
 * bytes, its clean grains past the first `skip` filled (fill_plan()) or
 * prefaulted (prefault()), all of them dirty; NULL if no region or record
 * can be had.  *dirty_end: the bytes from its start that may hold old
 * data.
 */
static struct huge_span *span_new(size_t need, size_t size, size_t align,
				  size_t skip, size_t *dirty_end)
{
	struct huge_span *s = NULL;
	struct fill fill = { .n = 0 };
	for (int tries = 0; !s && tries < 3; tries++) {
		size_t at;
		sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
		struct huge_span *f = best_fit(need, align, &at);
		if (f && span_recs_reserve(2)) {
			s = carve(f, at, need, dirty_end);
			fill_begin(s, skip, size, &fill);
		}
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		/* no free span serves it: a new region, then again (another
		 * thread may take it first); no record to be had: ENOMEM */
		if (!s && (f || !region_add(need)))
			break;
	}
	if (s) {
		fill_end(s, &fill);
		for (unsigned int i = 0; i < fill.n; i++)
			if (fill.moved[i])	/* old data arrived */
				*dirty_end = MAX(*dirty_end, (fill.dst[i] - s->first + 1) << GRAIN_SHIFT);
	}
	return s;
}

/* size in grains, or 0 if it is too large to be had. */
static size_t grains_for(size_t size)
{
	size_t len = ALIGN_UP(size, HUGE_GRAIN);
	return len < size || len > (1ul << ADDR_BITS) ? 0 : len >> GRAIN_SHIFT;
}

void *_sheaf_huge_alloc(size_t size, size_t align, gfp_t gfp)
{
	if (should_fail(SHEAF_FAULT_PAGE, NULL, size, gfp))
		return NULL;
	size_t need = grains_for(size), dirty_end = 0;
	if (!need || align > ARENA_SIZE)
		return NULL;
	struct huge_span *s = span_new(need, size, MAX(align, HUGE_GRAIN), 0, &dirty_end);
	if (!s)
		return NULL;
	char *p = span_addr(s);
	/* Clean grains are zero (fresh or released); dirty ones may not be. */
	if (dirty_end && (gfp & __GFP_ZERO))
		memset(p, 0, MIN(dirty_end, size));
	huge_trim(false, false, false);	/* past the budget or the decay */
	return p;
}

/* The live span containing p (anywhere in it), or NULL. */
static struct huge_span *span_of(const void *p)
{
	uintptr_t x = (uintptr_t)p;
	if (x >> ADDR_BITS)
		return NULL;
	struct arena *a = __atomic_load_n(&_sheaf_arena_map[x >> ARENA_SHIFT],
					  __ATOMIC_ACQUIRE);
	if (!a || !a->huge || x < (uintptr_t)a->base)
		return NULL;
	struct huge_region *r = container_of(a, struct huge_region, a);
	size_t g = (x - (uintptr_t)a->base) >> GRAIN_SHIFT;
	if (g >= __atomic_load_n(&r->grains, __ATOMIC_RELAXED))
		return NULL;
	struct huge_span *s = __atomic_load_n(&r->span[g], __ATOMIC_ACQUIRE);
	if (!s || __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SPAN_LIVE)
		return NULL;
	return s;
}

/* The live span that starts at p, or NULL. */
static struct huge_span *span_at(const void *p)
{
	struct huge_span *s = span_of(p);
	return s && span_addr(s) == p ? s : NULL;
}

void *_sheaf_huge_start(const void *p)
{
	struct huge_span *s = span_of(p);
	return s ? span_addr(s) : NULL;
}

int _sheaf_huge_node(const void *p)
{
	struct huge_span *s = span_at(p);
	return s ? s->node : -1;
}

size_t _sheaf_huge_size(const void *p)
{
	struct huge_span *s = span_at(p);
	return s ? s->n << GRAIN_SHIFT : 0;
}

/* Under the lock: the live span s freed, `dirty` of its grains dirty
 * (may be resident), joined with its free neighbours. */
static void span_free_locked(struct huge_span *s, size_t dirty)
{
	huge_bytes -= s->n << GRAIN_SHIFT;
	s->dirty = dirty;
	free_dirty += dirty;
	s->freed_ns = _sheaf_coarse_ns();
	free_insert(s);
}

bool _sheaf_huge_free(const void *p)
{
	struct huge_span *s = span_at(p);
	if (!s)
		return false;
	touch_sample(s);
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	/* Checked again under the lock: two frees of p race to here. */
	if (s->state != SPAN_LIVE || span_addr(s) != p) {
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		return false;
	}
	span_free_locked(s, s->n);
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	huge_trim(false, true, false);
	return true;
}

/*
 * realloc() of the live span at p to size bytes (above MAX_RUN_SIZE),
 * without copying: a shrink gives the tail back as a free span; a growth
 * takes the free span right after it when that is large enough (its clean
 * grains filled as a new span's are), else a new span gets p's pages
 * moved to its head (move_grain(); a grain the kernel refuses to move is
 * copied) and p's grains are freed, clean.  Returns the block (p, or the
 * new one; the bytes past the old size are not zeroed), or NULL with p
 * untouched: not a live span, or no memory (the caller copies, or fails).
 */
void *_sheaf_huge_realloc(void *p, size_t size)
{
	size_t need = grains_for(size);
	struct huge_span *s = span_at(p);
	if (!need || !s)
		return NULL;
	struct fill fill;
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	if (s->state != SPAN_LIVE || span_addr(s) != p) {
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		return NULL;
	}
	struct huge_region *r = s->r;
	size_t end = s->first + s->n;
	if (need <= s->n) {
		if (need < s->n && span_recs_reserve(1)) {
			/* the tail becomes a live span of its own, then freed */
			struct huge_span *tail = span_rec_get();
			*tail = (struct huge_span){ .r = r, .first = s->first + need,
						    .n = s->n - need };
			s->n = need;
			if (s->probe >= span_addr(tail))
				s->probe = NULL;	/* in what is given back */
			span_free_locked(tail, tail->n);
		}
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		huge_trim(false, true, false);
		return p;
	}
	struct huge_span *t = end < r->grains ? r->span[end] : NULL;
	if (t && t->state == SPAN_FREE && t->n >= need - s->n && span_recs_reserve(2)) {
		size_t extra = need - s->n, dirty_end;
		struct huge_span *c = carve(t, end, extra, &dirty_end);
		s->n += extra;
		span_publish(s);
		span_rec_put(c);
		fill_begin(s, need - extra, size, &fill);
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		fill_end(s, &fill);
		huge_trim(false, false, false);
		return p;
	}
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);

	size_t dirty_end = 0, old = s->n;
	struct huge_span *n = span_new(need, size, HUGE_GRAIN, old, &dirty_end);
	if (!n)
		return NULL;
	char *q = span_addr(n);
	touch_sample(s);
	bool moved = true;	/* all of them: p's grains are then clean */
	for (size_t g = 0; g < old; g++) {
		char *from = (char *)p + (g << GRAIN_SHIFT), *to = q + (g << GRAIN_SHIFT);
		if (!move_grain(from, to)) {
			memcpy(to, from, HUGE_GRAIN);
			moved = false;
		}
	}
	/* p's grains: empty when all moved, else counted dirty (may be) */
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	if (moved)
		dirty_mark(r, s->first, old, false);
	span_free_locked(s, moved ? 0 : old);
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	huge_trim(false, true, false);
	return q;
}

/*
 * fork(), in the child, the arena lock held: a span that a thread of the
 * parent was releasing (BUSY) has no thread to finish it; it is free
 * again, its grains still counted dirty (they may be resident).
 */
void _sheaf_huge_after_fork_child(void)
{
	sheaf_lock_held(LR_ARENA);
	for (struct huge_region *r = regions; r; r = r->next)
		for (size_t g = 0; g < r->grains; g = r->span[g]->first + r->span[g]->n)
			if (r->span[g]->state == SPAN_BUSY)
				free_insert(r->span[g]);
}

/* Every retained grain back to the system, and every region with nothing
 * live unmapped (shrink, malloc_trim). */
void _sheaf_huge_release_retained(void)
{
	huge_trim(true, false, true);
}

/* The idle drain's (slab_common.c): free spans past their decay are
 * released, and regions wholly free that long unmapped, even when no huge
 * allocation or free comes to do it. */
void _sheaf_pages_decay(void)
{
	huge_trim(false, false, true);
	/* and the buddy lists' dirty blocks past their decay (pages.c) */
	_sheaf_pages_purge(false);
}

/* sheaf_page_info() (pages.c), under the arena lock. */
void _sheaf_huge_bytes_locked(size_t *live, size_t *retained_out)
{
	sheaf_lock_held(LR_ARENA);
	*live = huge_bytes;
	*retained_out = free_dirty << GRAIN_SHIFT;
}
