/* SPDX-License-Identifier: MIT */
/*
 * huge.c - the page layer's huge mappings: kmalloc/kvmalloc (and the
 * malloc replacement) above MAX_RUN_SIZE, each a mapping of its own,
 * arena-aligned so that the arena map identifies it, in whole 2 MiB
 * grains; retained when freed and reused (resized in place, filled with
 * the pages of other retained mappings), released by budget and decay.
 * pages.c is the other half of the layer (arenas, buddy runs); both take
 * the one arena lock, _sheaf_arena_lock (LR_ARENA).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static size_t huge_bytes;  /* live huge mappings' bytes, under the arena lock */

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
 * Invariants (under _sheaf_arena_lock): retained[0..nr_retained) are the arenas
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

/* The same for slots no mapping covers any more, taking _sheaf_arena_lock. */
static void unmap_slots(uintptr_t from, uintptr_t to)
{
	if (from >= to)
		return;
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	map_range(from, to, NULL);
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
}

static inline uintptr_t slots_end(const struct arena *a)
{
	return (uintptr_t)a->base + ALIGN_UP(a->size, ARENA_SIZE);
}

/*
 * Huge mappings' struct arena records come from pages of them that are
 * never unmapped: a freed record goes on arena_recs (under _sheaf_arena_lock,
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
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	struct arena *a = arena_rec_new_locked();
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	return a;
}

static void arena_rec_free(struct arena *a)
{
	if (!a)
		return;
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	__atomic_store_n(&a->huge, false, __ATOMIC_RELAXED);
	a->size = 0;
	a->base = (char *)arena_recs;
	arena_recs = a;
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
}

/*
 * Arena-aligned addresses where a huge mapping of ours was and is no
 * more (unmapped, or its pages all moved elsewhere), newest last, under
 * _sheaf_arena_lock: map_huge() tries them first, one mmap() with
 * MAP_FIXED_NOREPLACE instead of _sheaf_map_aligned()'s three calls.  A hint is
 * only a guess: anything may have been mapped there since, and the kernel
 * then refuses.
 */
#define SLOT_HINTS 16
static uintptr_t slot_hint[SLOT_HINTS];
static unsigned int nr_slot_hints;

static void slot_hint_add(uintptr_t base)
{
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	if (nr_slot_hints == SLOT_HINTS) {
		memmove(&slot_hint[0], &slot_hint[1], (SLOT_HINTS - 1) * sizeof(slot_hint[0]));
		nr_slot_hints--;
	}
	slot_hint[nr_slot_hints++] = base;
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
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
 * Map n fresh bytes at `at`, if nothing lies there (advised:
 * huge_advise()).  A mapping grows this way rather than by mremap(), which
 * refuses (EFAULT) to grow a range of several VMAs, as one that was given
 * pages of others is; map_huge() tries its hints this way.
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

/* len fresh bytes at an arena-aligned address (advised), or NULL: a slot
 * hint if one is still free, else a new aligned mapping. */
static char *map_huge(size_t len)
{
	for (int tries = 0; tries < 2; tries++) {
		sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
		uintptr_t at = nr_slot_hints ? slot_hint[--nr_slot_hints] : 0;
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
		if (!at)
			break;
		if (extend((char *)at, len))
			return (char *)at;
	}
	char *p = _sheaf_map_aligned(len, ARENA_SIZE);
	if (p)
		huge_advise(p, len);
	return p;
}

/*
 * Under _sheaf_arena_lock: how many bytes may stay retained, SHEAF_LARGE_RETAIN_MB
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

/* Remove retained[i] (under _sheaf_arena_lock); its map entries are cleared. */
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
 * Under _sheaf_arena_lock: move into out[] (at most RETAIN_MAX) the retained
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

/* Under _sheaf_arena_lock: put a retained mapping back, the list kept by age. */
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
 * Move the pages of [from, from + n) to `to` (already ours), page tables
 * and all: resident pages stay resident, nothing is faulted or zeroed.
 */
static bool move_pages(char *from, size_t n, char *to)
{
	return mremap(from, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED;
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
	bool moved = nb && move_pages(a->base + len, tail, nb);
	uintptr_t old_end = slots_end(a);
	a->size = len;
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	map_range(slots_end(a), old_end, NULL);
	if (moved) {
		*t = (struct arena){ .base = nb, .size = tail, .node = a->node,
				     .huge = true, .retained = true,
				     .freed_ns = a->freed_ns };
		map_range((uintptr_t)nb, slots_end(t), t);
		retained_insert(t);
	}
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
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
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
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
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
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
			sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
			retained_insert(d);
			sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
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
		a->base = base;
		a->size = len;
		a->huge = true;
	}
	a->node = sheaf_node();
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	__atomic_store_n(&a->retained, false, __ATOMIC_RELAXED);
	map_range((uintptr_t)a->base, slots_end(a), a);
	huge_bytes += a->size;
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
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
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	/* Checked again under the lock: two frees of p race to here. */
	if (__atomic_load_n(&a->retained, __ATOMIC_RELAXED)) {
		sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
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
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	release_all(gone, ngone);
	return true;
}

/* Every retained huge mapping back to the system (shrink, malloc_trim). */
void _sheaf_huge_release_retained(void)
{
	struct arena *gone[RETAIN_MAX];
	unsigned int n = 0;
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	while (nr_retained) {
		struct arena *a = retained_remove(0);
		map_range((uintptr_t)a->base, slots_end(a), NULL);
		gone[n++] = a;
	}
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	release_all(gone, n);
}

/* The idle drain's (slab_common.c): retained mappings past their decay
 * go even when no huge allocation or free comes to release them. */
void _sheaf_pages_decay(void)
{
	struct arena *gone[RETAIN_MAX];
	sheaf_lock(&_sheaf_arena_lock, LR_ARENA);
	unsigned int n = retained_expire(gone, 0, false);
	sheaf_unlock(&_sheaf_arena_lock, LR_ARENA);
	release_all(gone, n);
	/* and the buddy lists' dirty blocks past their decay (pages.c) */
	_sheaf_pages_purge(false);
}

/* sheaf_page_info() (pages.c), under the arena lock. */
void _sheaf_huge_bytes_locked(size_t *live, size_t *retained_out)
{
	sheaf_lock_held(LR_ARENA);
	*live = huge_bytes;
	*retained_out = retained_bytes;
}
