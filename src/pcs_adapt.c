/* SPDX-License-Identifier: MIT */
/*
 * pcs_adapt.c - sheaves that follow the workload: the capacity of a
 * cache's sheaves and the limits of its barns, moved between the kernel's
 * fixed values (the floor) and a per-cache maximum, within a process-wide
 * budget of cached memory.  Part of the pcs layer: it writes the slots'
 * push limits (struct sheaf_pcs.capacity) and nothing else of theirs.
 *
 * The signal.  A slot's slow path that swaps main and spare, or has to go
 * to the barn (an exchange) or past it (slab refill, flush), is a miss:
 * sheaf_pcs_miss() counts it in the slot's line, which that path holds
 * anyway.  A swap takes no shared lock, but it is still a trip out of the
 * inline sections into a slow path (a slot trylock and unlock, tens of ns
 * against a few for the pop): a program whose batches of one class just
 * overflow a sheaf swaps on every batch, and a larger sheaf removes the
 * swap (libsheaf-malloc's `mixed` swapped once a class a batch in each
 * direction, 28 slow paths per 1000 allocations, at capacities the barn
 * never saw; docs/MALLOC.md).  The objects a cache moves between its slots and the rest per
 * second are misses times the capacity: a cache that misses often spends
 * its time in the barn lock and the slab layer, and a larger sheaf makes
 * proportionally fewer trips (libumem's magazine resizing grows a cache's
 * magazines when its depot lock is contended; tcmalloc grows a per-CPU
 * class's capacity on its overflows and underflows, and takes capacity
 * back from classes that miss little).
 *
 * Growth, on the slow path.  Every SHEAF_ADAPT_MISSES misses a slot closes
 * a window (one coarse-clock read per window: a few ns per 64 misses).  A
 * window that took at most SHEAF_ADAPT_WINDOW_MS (so at least 4000 misses
 * a second on one slot) grows the cache one step: capacity times 1.5 (up
 * to sheaf_room, SHEAF_ADAPTIVE_MAX times the base or 16, whichever is
 * larger: below), and the barn limit
 * times 1.5 too (up to 4 times the kernel's 10) when at least one miss in
 * 8 of the window was a barn put failure (the barn full while slabs were
 * being flushed to: a larger barn keeps those objects).  Only a window
 * that ran wholly at the cache's current level can step it: each change
 * counts in adapt_level, a window records the count at its start
 * (win_level), so every step is judged on 64 misses at the capacity it
 * would grow, one step per such window whatever the other slots see.
 * There is no other pause between steps: a cache with fast misses climbs
 * from its base to its ceiling in about two windows a step (the window
 * open at a step does not count: 12 to 64 is five steps), as tcmalloc
 * grows a class on each miss.  Session 22 still spaced steps 16 ms apart,
 * which made the 1 and 2 KiB classes of mallocbench `mixed` climb for at
 * least 64 ms: longer than the whole run at --scale 1, so that run
 * measured the climb (docs/MALLOC.md).  A step is refused when
 * the process's budget (SHEAF_ADAPTIVE_BUDGET_MB) cannot take the cache's
 * larger bound: (slots * 3 + nodes * barn_limit) * capacity * stride bytes,
 * the most its sheaves and barns can hold.
 *
 * Shrinking, on the idle thread's look (every SHEAF_IDLE_MS / 2).  A cache
 * above its base whose slots together missed fewer than 1/16 of the growth
 * rate (250 a second) over two looks in a row steps down: capacity and
 * barn limit times 2/3, not below the base.  kmem_cache_shrink() puts a
 * cache back to its base at once.
 *
 * Why it does not oscillate: a step changes the miss rate by its factor
 * (1.5), and the rates that grow and that shrink are 16 times apart; a
 * growth needs a fast window after the step's own, a shrink two slow looks.
 *
 * Concurrency.  adapt_busy (only tried, never waited for, except by the
 * reset) makes one thread at a time change the level; the changes are
 * relaxed stores that every reader tolerates in any order (struct
 * kmem_cache, "Capacity and barn limits").  Nobody holds adapt_busy across
 * fork(): a grower holds its slot lock, which the fork handlers wait for,
 * the look and the reset hold slab_mutex or the flush lock.
 */
#include <sched.h>
#include <time.h>

#include "internal.h"

/* Bytes of the budget held by all caches together. */
static atomic_size_t budget_used;

static uint32_t coarse_ms(void)
{
	return (uint32_t)(_sheaf_coarse_ns() / 1000000ull);
}

/* What the cache's sheaves and barns can hold at most, in bytes. */
static size_t cache_bound(const struct kmem_cache *s, unsigned int cap,
			  unsigned int barn)
{
	size_t sheaves = (size_t)_sheaf_nr_slots * 3 + (size_t)_sheaf_nr_nodes * barn;
	return sheaves * cap * s->size;
}

/* A cache's share of the budget at this level: its bound above the base. */
static size_t level_bytes(const struct kmem_cache *s, unsigned int cap,
			  unsigned int barn)
{
	return cache_bound(s, cap, barn) - cache_bound(s, s->cap_base, MAX_FULL_SHEAVES);
}

static inline bool adapt_trylock(struct kmem_cache *s)
{
	return !atomic_exchange_explicit(&s->adapt_busy, true, memory_order_acquire);
}

static inline void adapt_unlock(struct kmem_cache *s)
{
	atomic_store_explicit(&s->adapt_busy, false, memory_order_release);
}

/*
 * Set the level (caller holds adapt_busy): false, nothing
 * changed, when a larger level does not fit the budget.  Back at the base
 * level the cache holds none of the budget (a destroy's flush resets it).
 */
static bool set_level(struct kmem_cache *s, unsigned int cap, unsigned int barn)
{
	size_t old = s->adapt_bytes, want = level_bytes(s, cap, barn);
	if (want > old) {
		size_t more = want - old;
		size_t used = atomic_fetch_add_explicit(&budget_used, more,
							memory_order_relaxed);
		if (used + more > _sheaf_config.adaptive_budget) {
			atomic_fetch_sub_explicit(&budget_used, more, memory_order_relaxed);
			return false;
		}
	} else {
		atomic_fetch_sub_explicit(&budget_used, old - want, memory_order_relaxed);
	}
	s->adapt_bytes = want;
	SHEAF_ASSERT(s->cap_base <= cap && cap <= s->sheaf_room);
	SHEAF_ASSERT(barn >= MAX_FULL_SHEAVES);
	__atomic_store_n(&s->barn_limit, barn, __ATOMIC_RELAXED);
	__atomic_store_n(&s->hot.sheaf_capacity, cap, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		__atomic_store_n(&s->hot.pcs[i].capacity, cap, __ATOMIC_RELAXED);
	/* Every slot's window open now started at the old level. */
	__atomic_store_n(&s->adapt_level, s->adapt_level + 1, __ATOMIC_RELEASE);
	return true;
}

static unsigned int step_up(unsigned int v, unsigned int max)
{
	return MIN(max, v + MAX(v / 2, 1u));
}

static unsigned int step_down(unsigned int v, unsigned int min)
{
	return MAX(min, v * 2 / 3);
}

/*
 * The ceiling: SHEAF_ADAPTIVE_MAX times the base, where a base below
 * ADAPT_ROOM_FLOOR counts as that floor.  The kernel's automatic
 * capacity shrinks with the object (60, 26, 12, 4) to bound a sheaf's
 * bytes; a factor of 4 on a base of 4 left objects of a page and more
 * 16 to a sheaf, so a program cycling 4-8 KiB buffers went to the barn
 * every 16 objects and to the slabs for 19% of its allocations (1000
 * buffers of 2-8 KiB in turn: 24-35 ns a pair, 15-18 with the floor,
 * tcmalloc 10-13).  The budget still bounds the bytes a level may hold.
 */
#define ADAPT_ROOM_FLOOR 16u

void _sheaf_adapt_setup(struct kmem_cache *s, unsigned int cap)
{
	s->cap_base = cap;
	s->barn_limit = MAX_FULL_SHEAVES;
	s->adaptive = cap && _sheaf_config.adaptive && s->kind != CACHE_INTERNAL;
	s->sheaf_room = s->adaptive
		? (unsigned int)MIN((size_t)SHEAF_MAX_CAPACITY,
				    (size_t)MAX(cap, ADAPT_ROOM_FLOOR) *
					    _sheaf_config.adaptive_max)
		: cap;
	s->adapt_bytes = 0;
}

/* A slot's window closed (slot locked): grow the cache if it was fast and
 * measured at the cache's current level from its start. */
void _sheaf_adapt_window(struct kmem_cache *s, struct sheaf_pcs *pcs)
{
	uint32_t now = coarse_ms();
	bool fast = now - pcs->win_start <= SHEAF_ADAPT_WINDOW_MS;
	unsigned int fails = pcs->win_fails;
	unsigned int slot = (unsigned int)(pcs - s->hot.pcs);
	uint32_t level = __atomic_load_n(&s->adapt_level, __ATOMIC_ACQUIRE);
	bool settled = pcs->win_level == level;

	pcs->win_mark = pcs->misses;
	pcs->win_start = now;
	pcs->win_fails = 0;
	pcs->win_level = level;
	if (!fast || !settled || !adapt_trylock(s))
		return;
	/* Another slot's window may have stepped since the load above. */
	if (s->adapt_level != level) {
		adapt_unlock(s);
		return;
	}
	unsigned int cap = cache_cap(s), barn = cache_barn_limit(s);
	unsigned int ncap = step_up(cap, s->sheaf_room);
	unsigned int nbarn = fails * 8 >= SHEAF_ADAPT_MISSES
		? step_up(barn, MAX_BARN_LIMIT) : barn;
	/* Over budget: the capacity alone, if that fits. */
	if ((ncap != cap || nbarn != barn) &&
	    (set_level(s, ncap, nbarn) || (nbarn != barn && ncap != cap &&
					   set_level(s, ncap, barn))))
		stat(s, SHEAF_STAT_CAPACITY_GROW, slot);
	adapt_unlock(s);
}

/*
 * The idle thread's look at an adaptive cache (under slab_mutex): the
 * slots' misses since the last look, as a rate; two slow looks in a row
 * step the cache down.  Reads the slot lines, writes only the cache.
 */
#define SHRINK_RATE (SHEAF_ADAPT_MISSES * 1000u / SHEAF_ADAPT_WINDOW_MS / 16u)

void _sheaf_adapt_look(struct kmem_cache *s)
{
	struct sheaf_idle_cache *v = _sheaf_idle_cache_view(s);
	if (!s->adaptive || !v)
		return;
	uint32_t sum = 0;
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		sum += __atomic_load_n(&s->hot.pcs[i].misses, __ATOMIC_RELAXED);
	uint32_t delta = sum - v->adapt_seen;
	uint64_t now = _sheaf_coarse_ns(), elapsed = now - v->adapt_look_ns;
	v->adapt_seen = sum;
	v->adapt_look_ns = now;
	unsigned int cap = cache_cap(s), barn = cache_barn_limit(s);
	if (cap == s->cap_base && barn == MAX_FULL_SHEAVES) {
		v->adapt_quiet = 0;
		return;
	}
	/* misses per second below SHRINK_RATE (elapsed at least 1 ms) */
	if ((uint64_t)delta * 1000000000ull >= (uint64_t)SHRINK_RATE * MAX(elapsed, 1000000ull)) {
		v->adapt_quiet = 0;
		return;
	}
	if (++v->adapt_quiet < 2 || !adapt_trylock(s))
		return;
	v->adapt_quiet = 0;
	if (set_level(s, step_down(cap, s->cap_base), step_down(barn, MAX_FULL_SHEAVES)))
		stat(s, SHEAF_STAT_CAPACITY_SHRINK, 0);
	adapt_unlock(s);
}

/* Back to the base level (every flush-all: kmem_cache_shrink(), destroy,
 * malloc_trim()), under the cache's flush lock. */
void _sheaf_adapt_reset(struct kmem_cache *s)
{
	if (!s->adaptive)
		return;
	while (!adapt_trylock(s))
		sched_yield(); /* a grower holds it for a few stores */
	if (cache_cap(s) != s->cap_base || cache_barn_limit(s) != MAX_FULL_SHEAVES) {
		set_level(s, s->cap_base, MAX_FULL_SHEAVES);
		stat(s, SHEAF_STAT_CAPACITY_SHRINK, 0);
	}
	adapt_unlock(s);
}
