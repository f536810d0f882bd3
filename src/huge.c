/* SPDX-License-Identifier: MIT */
/*
 * huge.c - the page layer's huge allocations: kmalloc/kvmalloc (and the
 * malloc replacement) above MAX_RUN_SIZE, carved in whole 2 MiB grains
 * from a span heap of large reservations (regions), as tcmalloc's page
 * heap carves its spans.  A freed span joins its free neighbours and stays
 * resident for the next request, within a budget and a decay; what is
 * released goes back with madvise(MADV_DONTNEED), the address space kept.
 * pages.c is the other half of the layer (arenas, buddy runs); both take
 * the one arena lock, _sheaf_arena_lock (LR_ARENA).  The heap's
 * structures and their invariants are in huge.h; huge_fill.c fills or
 * prefaults a new span's clean grains.
 */
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "huge.h"

/* The span heap: huge.h. */
struct huge_heap _sheaf_huge_heap;
static struct huge_heap *const heap = &_sheaf_huge_heap;
static struct huge_region *regions, *spare_regions;
static struct huge_span *spare_spans;

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
	struct huge_span *after = heap->free_tail;
	while (after && after->freed_ns > s->freed_ns)
		after = after->prev;
	s->prev = after;
	s->next = after ? after->next : heap->free_head;
	if (s->next)
		s->next->prev = s;
	else
		heap->free_tail = s;
	if (after)
		after->next = s;
	else
		heap->free_head = s;
}

static void free_unlink(struct huge_span *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		heap->free_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		heap->free_tail = s->prev;
	s->prev = s->next = NULL;
}

/* Under the lock: the FREE span s off the free list, BUSY (released or
 * giving its pages outside the lock; free_insert() when that is done). */
void _sheaf_huge_take_busy(struct huge_span *s)
{
	free_unlink(s);
	__atomic_store_n(&s->state, SPAN_BUSY, __ATOMIC_RELAXED);
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
void _sheaf_huge_free_insert(struct huge_span *s)
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

/*
 * What carving grains [at, at + need) of the free span s costs, in
 * grains: each clean grain past the first `skip` is faulted in (or takes
 * a free span's pages), and each dirty grain among the first `skip` loses
 * its resident pages, since a realloc() moves the old block's pages onto
 * them (the kernel unmaps what a move lands on), and the next growth
 * faults those in again.
 */
static size_t carve_cost(const struct huge_span *s, size_t at, size_t need,
			 size_t skip)
{
	size_t lead = MIN(skip, need);
	if (!s->dirty)
		return need - lead;
	return dirty_count(s->r, at, lead) + (need - lead) -
	       dirty_count(s->r, at + lead, need - lead);
}

/* The grain of region r at or after (up) or before (!up) grain g where
 * an address aligned to align starts (the region's base is aligned to a
 * grain, not to align); SIZE_MAX when there is none before. */
static size_t grain_aligned(const struct huge_region *r, size_t g, size_t align, bool up)
{
	uintptr_t base = (uintptr_t)r->a.base, a = (uintptr_t)grain_addr(r, g);
	a = up ? ALIGN_UP(a, align) : ALIGN_DOWN(a, align);
	return a < base ? SIZE_MAX : (size_t)((a - base) >> GRAIN_SHIFT);
}

struct fit {
	struct huge_span *span;
	size_t at, cost;
};

/* Carving [g, g + need) from the free span s, if it lies in s: kept in *f
 * if it is the best so far (lowest cost, then the smallest span, then the
 * lowest address). */
static void fit_try(struct fit *f, struct huge_span *s, size_t g, size_t need, size_t skip)
{
	if (g < s->first || g == SIZE_MAX || g + need > s->first + s->n)
		return;
	size_t cost = carve_cost(s, g, need, skip);
	if (!f->span || cost < f->cost ||
	    (cost == f->cost && (s->n < f->span->n ||
	     (s->n == f->span->n && grain_addr(s->r, g) < grain_addr(f->span->r, f->at))))) {
		f->span = s;
		f->at = g;
		f->cost = cost;
	}
}

/*
 * Under the lock: the free span to carve need grains aligned to align
 * from, and in *at the grain to start at; NULL if none serves.  Lowest
 * carve_cost() first, then the smallest span (the large ones kept whole),
 * then the lowest address.  The places tried in a span: its first
 * aligned grain, and around each run of dirty grains in it, the place
 * whose grain `skip` is the run's first (a fresh request, skip 0, starts
 * on the run; a realloc()'s old pages land on the clean grains before it)
 * and the place right after the run (the old pages land on the clean
 * grains there).  mallocbench grow (two buffers realloc()ed in turn to 32
 * MiB): with the first aligned grain only, each move of a buffer landed
 * on retained grains and threw them away, and the last growths of every
 * round faulted 3180 pages in (none now).  At most FIT_RUNS runs of a
 * span are tried, which bounds the time under the lock whatever the
 * pattern of dirty and clean grains.
 */
#define FIT_RUNS 32
static struct huge_span *best_fit(size_t need, size_t align, size_t skip, size_t *at)
{
	struct fit f = { .span = NULL };
	for (struct huge_span *s = heap->free_head; s; s = s->next) {
		if (s->n < need)
			continue;
		fit_try(&f, s, grain_aligned(s->r, s->first, align, true), need, skip);
		size_t end = s->first + s->n;
		unsigned int runs = 0;
		for (size_t x = s->first; s->dirty && x < end && runs < FIT_RUNS;) {
			if (!grain_dirty(s->r, x)) {
				x++;
				continue;
			}
			runs++;
			size_t run = x;
			while (x < end && grain_dirty(s->r, x))
				x++;
			if (run >= skip)
				fit_try(&f, s, grain_aligned(s->r, run - skip, align, false), need, skip);
			if (skip)
				fit_try(&f, s, grain_aligned(s->r, x, align, true), need, skip);
		}
	}
	*at = f.at;
	return f.span;
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
			heap->free_dirty--;
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
	heap->huge_bytes += need << GRAIN_SHIFT;
	return s;
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
	return fixed ? MAX(fixed, heap->huge_bytes / 2) : 0;
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
	struct huge_span *s = heap->free_head;
	while (s && !s->dirty)
		s = s->next;
	if (!s)
		return NULL;
	size_t budget = retain_budget() >> GRAIN_SHIFT;
	if (heap->free_dirty <= budget + slack)
		budget = heap->free_dirty;	/* within the trigger: decay only */
	if (all || decayed(s->freed_ns) || s->dirty <= heap->free_dirty - MIN(heap->free_dirty, budget)) {
		*from = s->first;
		*n = s->n;
	} else if (heap->free_dirty > budget) {
		size_t excess = heap->free_dirty - budget, g = s->first + s->n;
		while (excess)
			excess -= grain_dirty(s->r, --g);
		*from = g;
		*n = s->first + s->n - g;
	} else {
		return NULL;
	}
	_sheaf_huge_take_busy(s);
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
		heap->free_dirty -= c;
	}
	_sheaf_huge_free_insert(s);
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
		struct huge_span *f = best_fit(need, align, skip, &at);
		if (f && span_recs_reserve(2)) {
			s = carve(f, at, need, dirty_end);
			_sheaf_huge_fill_begin(s, skip, size, &fill);
		}
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		/* no free span serves it: a new region, then again (another
		 * thread may take it first); no record to be had: ENOMEM */
		if (!s && (f || !region_add(need)))
			break;
	}
	if (s) {
		_sheaf_huge_fill_end(s, &fill);
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
	heap->huge_bytes -= s->n << GRAIN_SHIFT;
	s->dirty = dirty;
	heap->free_dirty += dirty;
	s->freed_ns = _sheaf_coarse_ns();
	_sheaf_huge_free_insert(s);
}

bool _sheaf_huge_free(const void *p)
{
	struct huge_span *s = span_at(p);
	if (!s)
		return false;
	_sheaf_huge_touch_sample(s);
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
 * moved to its head (_sheaf_huge_move_grain(); a grain the kernel
 * refuses to move is copied) and p's grains are freed, clean.  Returns the block (p, or the
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
		_sheaf_huge_fill_begin(s, need - extra, size, &fill);
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		_sheaf_huge_fill_end(s, &fill);
		huge_trim(false, false, false);
		return p;
	}
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);

	size_t dirty_end = 0, old = s->n;
	struct huge_span *n = span_new(need, size, HUGE_GRAIN, old, &dirty_end);
	if (!n)
		return NULL;
	char *q = span_addr(n);
	_sheaf_huge_touch_sample(s);
	bool moved = true;	/* all of them: p's grains are then clean */
	for (size_t g = 0; g < old; g++) {
		char *from = (char *)p + (g << GRAIN_SHIFT), *to = q + (g << GRAIN_SHIFT);
		if (!_sheaf_huge_move_grain(from, to)) {
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
				_sheaf_huge_free_insert(r->span[g]);
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
	*live = heap->huge_bytes;
	*retained_out = heap->free_dirty << GRAIN_SHIFT;
}
