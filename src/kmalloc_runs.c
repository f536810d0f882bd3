/* SPDX-License-Identifier: MIT */
/*
 * kmalloc_runs.c - large kmalloc's free runs kept for reuse: the per-CPU
 * run caches (one bare slot array of the pcs layer per order 16-64 KiB,
 * libsheaf-malloc in rseq mode with one node), the run depot behind them
 * (the runs a full slot gives up, for the next slot that runs empty, with
 * decay), and the stack of large runs kfree_nolock() defers; all three
 * are drained under drain_lock (LR_DRAIN), which malloc_trim(), the RCU
 * barriers and the fork handlers take.  kmalloc.c allocates and frees the
 * runs: its fast paths pop and push a slot with the inline helpers of
 * this file's banner in internal.h (run_cache_get(), run_cache_put(),
 * large_defer(), large_drain_slow()), which call here only when a slot
 * runs empty or full or a deferred run waits.  Both are the kmalloc layer.
 */
#include "internal.h"

/*
 * Per-CPU caches of free runs for large kmalloc, the kernel's per-CPU page
 * lists: with the malloc replacement (where a program's 10-64 KiB buffers
 * would otherwise take the buddy allocator's node lock, split and merge on
 * every malloc and free), one cache per order RUN_CACHE_MIN..MAX, each slot
 * a sheaf of up to RUN_CACHE_RUNS run addresses, popped and pushed by the
 * same restartable sections as object sheaves (no lock, no atomic).  Only
 * in rseq mode with one node (a run must go back to its own node's buddy
 * lists); at most RUN_CACHE_BYTES of each order stay per slot, dirty
 * (the constants and the fast paths' helpers: internal.h).
 * A cached run's head has flags 0 (types.h, struct slab), so a second kfree() of it
 * is reported.
 */
struct sheaf_pcs *_sheaf_run_cache[RUN_CACHE_MAX - RUN_CACHE_MIN + 1];
/* malloc_trim()'s drain and the run depot (below; the fork handlers take it). */
static pthread_mutex_t drain_lock SHEAF_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;

/*
 * The run depot, one per order: the runs a full slot gives up, kept for
 * the next slot that runs empty, rather than each going back to the buddy
 * lists (whose free and allocation set up and clear a descriptor per page
 * and merge and split under the node's page lock: about 100 ns a pair,
 * against 18 for tcmalloc, for a program that frees and allocates 1000
 * buffers of 8-32 KiB in turn; a slot holds 1 MiB of each order).  Half a
 * slot moves at a time, straight between the slot and the depot's array,
 * popped and pushed by the fast paths' own sections (no slot lock is
 * held), under drain_lock, taken only if it is free (a kfree() may come
 * from under any other lock of the library, and malloc_trim()'s drain
 * holds drain_lock while it waits for slots): when it is busy, or the
 * depot is full or empty, the runs go to or come from the buddy lists as
 * before.  At most RUN_DEPOT_BYTES of
 * each order.  Decay rides on the depot's own traffic, as jemalloc's does
 * without its background thread (libsheaf-malloc starts no thread of its
 * own): once a RUN_DEPOT_DECAY_NS period has passed, the runs no slot
 * took during it (the depot's low-water mark) go to the buddy lists,
 * which give dirty memory back to the system past their limit; so a
 * program whose buffers stopped cycling keeps at most what the last
 * period left, and malloc_trim() empties the depot at once.  A depot
 * run's head has flags 0, as a cached run's.
 * Invariants (under drain_lock): low <= nr <= max; run_depot_pages is
 * the sum over the depots of nr << order, at most RUN_DEPOT_PAGES.
 */
#define RUN_DEPOT_BYTES (48u << 20)
#define RUN_DEPOT_PAGES (RUN_DEPOT_BYTES >> PAGE_SHIFT)
/* Each depot's array can hold the whole budget in runs of its order. */
#define RUN_DEPOT_RUNS(order) (RUN_DEPOT_PAGES >> (order))
#define RUN_DEPOT_DECAY_NS 1000000000ull
static struct run_depot {
	void **runs;
	unsigned int nr, max;
	unsigned int low;	/* the smallest nr in this decay period */
	uint64_t period;	/* its start, _sheaf_coarse_ns() */
} run_depot[RUN_CACHE_MAX - RUN_CACHE_MIN + 1];
static size_t run_depot_pages;	/* under drain_lock: pages in all depots */

/* The caches and their depots, in rseq mode with one node; kmalloc.c
 * calls this only when the kmalloc caches have sheaves
 * (_sheaf_kmalloc_sheaves). */
void _sheaf_run_cache_init(void)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (!_sheaf_rseq_mode || _sheaf_nr_nodes != 1)
		return;
	for (unsigned int o = RUN_CACHE_MIN; o <= RUN_CACHE_MAX; o++) {
		/* NULL (no metadata memory): every run from the buddy lists. */
		_sheaf_run_cache[o - RUN_CACHE_MIN] =
			_sheaf_pcs_bare_new(RUN_CACHE_RUNS(o));
		if (!_sheaf_run_cache[o - RUN_CACHE_MIN])
			return;
		/* NULL: no depot, the surplus of a slot to the buddy lists. */
		struct run_depot *dp = &run_depot[o - RUN_CACHE_MIN];
		dp->runs = _sheaf_meta_alloc(RUN_DEPOT_RUNS(o) * sizeof(void *));
		dp->max = dp->runs ? RUN_DEPOT_RUNS(o) : 0;
	}
#endif
}

#ifdef SHEAF_HAVE_RSEQ_ASM
/* The depot's top n runs to the buddy lists (caller holds drain_lock). */
static void run_depot_release(struct run_depot *dp, unsigned int n)
{
	sheaf_lock_held(LR_DRAIN);
	SHEAF_ASSERT(n <= dp->nr);
	unsigned int order = (unsigned int)(dp - run_depot) + RUN_CACHE_MIN;
	run_depot_pages -= (size_t)n << order;
	while (n--)
		_sheaf_pages_free(virt_to_slab(dp->runs[--dp->nr]));
	dp->low = MIN(dp->low, dp->nr);
}

/*
 * Decay (caller holds drain_lock): a period over, the runs no slot took
 * in it go to the buddy lists (the page lock nests inside drain_lock, as
 * in malloc_trim()'s drain; once a period, so others rarely find the
 * depot busy for it), and a new period starts.
 */
static void run_depot_decay(struct run_depot *dp)
{
	SHEAF_ASSERT(dp->low <= dp->nr && dp->nr <= dp->max);
	uint64_t now = _sheaf_coarse_ns();
	if (now - dp->period < RUN_DEPOT_DECAY_NS)
		return;
	run_depot_release(dp, dp->low);
	dp->low = dp->nr;
	dp->period = now;
}

/*
 * The slot of `order` ran empty: one run from the depot for the caller,
 * and up to half a slot more pushed into the slot (until it is full: it
 * may have been refilled meanwhile, or the thread moved).  NULL when the
 * depot is empty or busy.
 */
SHEAF_NOINLINE struct slab *_sheaf_run_depot_get(unsigned int order)
{
	struct run_depot *dp = &run_depot[order - RUN_CACHE_MIN];
	struct sheaf_pcs *pcs = _sheaf_run_cache[order - RUN_CACHE_MIN];
	void *run = NULL;
	if (!dp->max || !sheaf_trylock(&drain_lock, LR_DRAIN))
		return NULL;
	run_depot_decay(dp);
	if (dp->nr) {
		unsigned int nr = dp->nr;
		run = dp->runs[--dp->nr];
		for (unsigned int i = 1; i < RUN_CACHE_RUNS(order) / 2 && dp->nr &&
		     sheaf_pcs_push_inline(pcs, dp->runs[dp->nr - 1]); i++)
			dp->nr--;
		dp->low = MIN(dp->low, dp->nr);
		run_depot_pages -= (size_t)(nr - dp->nr) << order;
	}
	sheaf_unlock(&drain_lock, LR_DRAIN);
	return run ? arena_head_desc(run) : NULL;
}

/*
 * The slot of d's order is full: d, and up to half a slot popped from the
 * slot, into the depot.  False when the depot is busy or full.
 */
SHEAF_NOINLINE bool _sheaf_run_depot_put(struct slab *d)
{
	unsigned int order = d->order;
	struct run_depot *dp = &run_depot[order - RUN_CACHE_MIN];
	struct sheaf_pcs *pcs = _sheaf_run_cache[order - RUN_CACHE_MIN];
	if (!dp->max || !sheaf_trylock(&drain_lock, LR_DRAIN))
		return false;
	run_depot_decay(dp);
	/* Runs of this order the shared budget still has room for. */
	size_t room = (RUN_DEPOT_PAGES - run_depot_pages) >> order;
	bool kept = room > 0;
	if (kept) {
		unsigned int nr = dp->nr;
		dp->runs[dp->nr++] = slab_address(d);
		for (unsigned int i = 0; i < RUN_CACHE_RUNS(order) / 2 &&
		     dp->nr - nr < room && run_pop(pcs, &dp->runs[dp->nr]); i++)
			dp->nr++;
		run_depot_pages += (size_t)(dp->nr - nr) << order;
	}
	sheaf_unlock(&drain_lock, LR_DRAIN);
	return kept;
}

/* Empty every depot into the buddy lists (caller holds drain_lock). */
static void run_depot_drain_locked(void)
{
	for (unsigned int o = RUN_CACHE_MIN; o <= RUN_CACHE_MAX; o++) {
		struct run_depot *dp = &run_depot[o - RUN_CACHE_MIN];
		run_depot_release(dp, dp->nr);
	}
}

#endif

/*
 * Empty every slot's run cache into the buddy lists (malloc_trim()).  The
 * slots are owned with the remote protocol of the sheaf slots, under
 * drain_lock, which the fork handlers take (before the cache list: the
 * drain takes page locks), so that no child inherits a drain half done.
 */

#ifdef SHEAF_HAVE_RSEQ_ASM
static void run_free(void *run)
{
	_sheaf_pages_free(virt_to_slab(run));
}
#endif

/*
 * kfree_nolock()'s large kmalloc runs: freeing one takes the page lock,
 * so every one is deferred, on this stack (linked through each run's first
 * word; the run's head flags are 0 from the kfree_nolock() on, as in a
 * run cache, so that a second free of it is reported).  Drained under
 * drain_lock (which the fork handlers hold: a child never inherits a
 * drain half done) by the next large kmalloc() or kfree(), malloc_trim()
 * and the RCU barriers.
 */
void *_sheaf_large_deferred;

/* wait: take drain_lock (normal context, no lock held); else only try it. */
void _sheaf_large_drain(bool wait)
{
	if (wait)
		sheaf_lock(&drain_lock, LR_DRAIN);
	else if (!sheaf_trylock(&drain_lock, LR_DRAIN))
		return;
	void *run = __atomic_exchange_n(&_sheaf_large_deferred, NULL, __ATOMIC_ACQUIRE);
	while (run) {
		void *next = *(void **)run;
		_sheaf_pages_free(virt_to_slab(run));
		run = next;
	}
	sheaf_unlock(&drain_lock, LR_DRAIN);
}

/* Every large run kfree_nolock() deferred, freed (the RCU barriers). */
void _sheaf_kmalloc_drain_deferred(void)
{
	_sheaf_large_drain(true);
}

void _sheaf_run_cache_drain(void)
{
	_sheaf_large_drain(true);
#ifdef SHEAF_HAVE_RSEQ_ASM
	sheaf_lock(&drain_lock, LR_DRAIN);
	for (unsigned int o = RUN_CACHE_MIN; o <= RUN_CACHE_MAX; o++)
		if (_sheaf_run_cache[o - RUN_CACHE_MIN])
			_sheaf_pcs_bare_drain(_sheaf_run_cache[o - RUN_CACHE_MIN],
					      run_free);
	run_depot_drain_locked();
	sheaf_unlock(&drain_lock, LR_DRAIN);
#endif
}

void _sheaf_run_cache_prefork(void)
{
	sheaf_lock(&drain_lock, LR_DRAIN);
}

void _sheaf_run_cache_postfork(bool child)
{
	(void)child;
	sheaf_unlock(&drain_lock, LR_DRAIN);
}
