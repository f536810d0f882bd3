/* SPDX-License-Identifier: MIT */
/*
 * huge_fill.c - the page layer's huge heap (src/huge.c): a new span's
 * clean grains filled with the resident pages of free spans (moved with
 * mremap()), or prefaulted (madvise(MADV_POPULATE_WRITE)) when the
 * program touches what it allocates.  The heap's structures are in
 * huge.h; this file runs under and around the arena lock as huge.c's
 * allocation and realloc() ask.
 */
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "huge.h"

static struct huge_heap *const heap = &_sheaf_huge_heap;

/* Under the lock: s live for a request of size bytes: its grains dirty,
 * their extents what the request covers (or what they had). */
static void span_mark_live(struct huge_span *s, size_t size)
{
	dirty_mark(s->r, s->first, s->n, true);
	for (size_t g = s->first; g < s->first + s->n; g++)
		s->r->ext[g] = (uint16_t)MAX(s->r->ext[g], grain_need(s, g, size));
}

/* Under the lock: pair s's clean grains past its first `skip` with dirty
 * grains of free spans, oldest first, in f; the donors are taken off the
 * free list (BUSY). */
static void fill_plan(struct huge_span *s, size_t skip, struct fill *f)
{
	size_t g = s->first + skip, end = s->first + s->n;
	f->n = 0;
	for (struct huge_span *d = heap->free_head, *next; d && f->n < FILL_MAX; d = next) {
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
			_sheaf_huge_take_busy(d);
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

bool _sheaf_huge_move_grain(char *from, char *to)
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
		f->moved[i] = _sheaf_huge_move_grain(grain_addr(f->from[i]->r, f->src[i]),
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
			heap->free_dirty--;
		}
		if (i + 1 == f->n || f->from[i + 1] != d)
			_sheaf_huge_free_insert(d);
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
void _sheaf_huge_touch_sample(struct huge_span *s)
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
void _sheaf_huge_fill_begin(struct huge_span *s, size_t skip, size_t size, struct fill *f)
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
	if (heap->free_dirty && clean)
		fill_plan(s, skip, f);
	if (!f->n)
		span_mark_live(s, size);
}

void _sheaf_huge_fill_end(struct huge_span *s, struct fill *f)
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

