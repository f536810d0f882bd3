/* SPDX-License-Identifier: MIT */
/*
 * pcs_remote.c - per-CPU sheaves, the operations on every slot of a cache
 * at once, from any thread, through the platform's remote-slot protocol
 * (the cache's flush_lock, every slot stopped, one fence, the holders
 * waited for): the slots' creation, flush-all (shrink, destroy), the idle
 * drain, the cached-object count, the fork handlers' steps, and the bare
 * slot arrays of kmalloc's run caches.  pcs.c has the paths a thread
 * takes on its own slot (the slot lock); both are the pcs layer.
 */
#include <string.h>

#include "internal.h"

/* Every slot of s (caller holds the cache's flush lock). */
void _sheaf_pcs_remote_lock_all(struct kmem_cache *s)
{
	sheaf_lock_held(LR_FLUSH);
	_sheaf_lock_acquire(LR_SLOT); /* it waits for every slot's holder */
	_sheaf_slots_remote_lock(s->hot.pcs);
}

void _sheaf_pcs_remote_unlock_all(struct kmem_cache *s)
{
	_sheaf_slots_remote_unlock(s->hot.pcs);
	_sheaf_lock_release(LR_SLOT);
}

/* ------------------------------------------------- create, flush, destroy */

bool _sheaf_pcs_init(struct kmem_cache *s)
{
	sheaf_pcs_info(s->hot.pcs)->limit = 0; /* _sheaf_update_inline() */
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct slab_sheaf *main = _sheaf_alloc_sheaf(s, GFP_KERNEL,
							     s->sheaf_room, i);
		if (!main) {
			for (unsigned int j = 0; j < i; j++)
				_sheaf_free_sheaf(s, s->hot.pcs[j].main, j);
			return false;
		}
		s->hot.pcs[i].main = main;
		sheaf_pcs_publish(&s->hot.pcs[i]);	/* empty: count 0 */
		s->hot.pcs[i].capacity = s->hot.sheaf_capacity;
	}
	return true;
}

/*
 * Empty one slot owned by the remote protocol: main's objects to slabs
 * (the sheaf stays), the spare flushed and freed, rcu_free to the RCU
 * worker (its objects wait for a grace period: to slabs after it).
 */
static void drain_slot(struct kmem_cache *s, struct sheaf_pcs *pcs, unsigned int i)
{
	sheaf_assert_slot_ok(s, pcs);
	_sheaf_flush_sheaf(s, pcs->main, SHEAF_STAT_SHEAF_FLUSH_MAIN, i);
	if (pcs->spare) {
		_sheaf_discard_sheaf(s, pcs->spare, i);
		pcs->spare = NULL;
	}
	if (pcs->rcu_free) {
		_sheaf_rcu_submit_sheaf(s, pcs->rcu_free, false, i);
		pcs->rcu_free = NULL;
	}
}

/*
 * Flush every slot (the remote protocol) and every barn: main's objects go
 * to slabs (the sheaf stays), spare is flushed and freed, rcu_free goes to
 * the RCU worker (rcu.c) and to slabs after its grace period; an adaptive
 * cache goes back to its base capacity and barn limit.
 */
void _sheaf_pcs_flush_all(struct kmem_cache *s)
{
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	/* The base capacity again (under the flush lock, which the fork
	 * handlers take: no fork() copies the level's lock held). */
	_sheaf_adapt_reset(s);
	_sheaf_pcs_remote_lock_all(s);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		drain_slot(s, &s->hot.pcs[i], i);
	_sheaf_pcs_remote_unlock_all(s);
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
		_sheaf_barn_shrink(s, s->barn[n]);
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
}

/*
 * Idle drain.  The cache layer's idle thread (slab_common.c) calls this
 * for every cache with sheaves each SHEAF_IDLE_MS / 2.  A slot is idle
 * when no slow path has let go of its lock since the last look (its
 * events count has not moved: the sections never write it), as tcmalloc
 * calls a per-CPU cache idle when it had no underflow or overflow since
 * its last look.  After `looks` idle looks in a row (so idle for at least
 * `looks` periods, at most looks + 1) the slot is drained like a
 * flush: main's objects to slabs, the spare flushed and freed, rcu_free
 * to the RCU worker (to slabs after its grace period).  A slot that stays
 * idle is drained again every 4 * looks looks: a fast-path free into main
 * moves no count, so a thread that freed a few objects and went to sleep
 * leaves them for one such round at most.  A barn is drained (its full
 * sheaves flushed, every sheaf freed) after `looks` idle looks of its own
 * lock.  A slot whose threads hit only the fast path looks idle too and
 * is drained: that costs it a refill of at most one sheaf per round.
 *
 * Lock order: slab_mutex (the caller), flush_lock, the slots (the remote
 * protocol, taken only when some slot is due), then what a flush takes.
 * Its views of the slots and barns are in its table (above), under
 * slab_mutex.  Returns the number
 * of slots and barns drained that held something.
 */
/*
 * The idle look's view of every sheaf cache, in one table of its own: one
 * row per cache, its struct sheaf_idle_cache (pcs_adapt.c's view of the
 * adaptive level) then a struct sheaf_idle_slot per slot and per barn.  A
 * look writes its view of each; kept in the slots' lines, the barns (both
 * in the fork-state pool) and the cache structs (a mapping each), those
 * writes dirtied lines that the slots' CPUs keep hot and, after a fork(),
 * took a copy-on-write fault on every pool page holding slots and on every
 * adaptive cache's struct; here a row is 40 bytes with two slots and one
 * node, and 128 caches take two pages.  Rows freed by destroyed caches are
 * reused.
 * Invariants (under slab_mutex): idle_table holds idle_cap rows; every
 * row below idle_top is a live cache's (its idle_row) or on the free list
 * idle_free[0..idle_nfree); a row handed out is zeroed.
 */
static struct sheaf_idle_slot *idle_table;
static unsigned int *idle_free;
static unsigned int idle_cap, idle_top, idle_nfree;

/* A row in units of struct sheaf_idle_slot: the cache's head, then the
 * slots' and barns' entries. */
#define IDLE_HEAD_UNITS (sizeof(struct sheaf_idle_cache) / sizeof(struct sheaf_idle_slot))
_Static_assert(sizeof(struct sheaf_idle_cache) % sizeof(struct sheaf_idle_slot) == 0 &&
	       _Alignof(struct sheaf_idle_cache) <= sizeof(struct sheaf_idle_slot),
	       "a row's head is whole entries");

static size_t idle_row_len(void)
{
	return IDLE_HEAD_UNITS + _sheaf_nr_slots + _sheaf_nr_nodes;
}

static struct sheaf_idle_slot *idle_row(const struct kmem_cache *s)
{
	sheaf_lock_held(LR_SLAB_MUTEX);
	return s->idle_row == SHEAF_IDLE_NO_ROW
		? NULL : idle_table + (size_t)s->idle_row * idle_row_len();
}

struct sheaf_idle_cache *_sheaf_idle_cache_view(const struct kmem_cache *s)
{
	return (struct sheaf_idle_cache *)(void *)idle_row(s);
}

/* Twice the rows (at least 32); false when no memory: the table stays. */
static bool idle_table_grow(void)
{
	unsigned int cap = idle_cap ? idle_cap * 2 : 32;
	size_t row = idle_row_len() * sizeof(struct sheaf_idle_slot);
	struct sheaf_idle_slot *t = _sheaf_meta_alloc((size_t)cap * row);
	unsigned int *f = _sheaf_meta_alloc((size_t)cap * sizeof(*f));
	if (!t || !f) {
		_sheaf_meta_free(t, (size_t)cap * row);
		_sheaf_meta_free(f, (size_t)cap * sizeof(*f));
		return false;
	}
	if (idle_table) {
		memcpy(t, idle_table, (size_t)idle_cap * row);
		memcpy(f, idle_free, (size_t)idle_nfree * sizeof(*f));
		_sheaf_meta_free(idle_table, (size_t)idle_cap * row);
		_sheaf_meta_free(idle_free, (size_t)idle_cap * sizeof(*f));
	}
	idle_table = t;
	idle_free = f;
	idle_cap = cap;
	return true;
}

void _sheaf_idle_row_get(struct kmem_cache *s)
{
	sheaf_lock_held(LR_SLAB_MUTEX);
	s->idle_row = SHEAF_IDLE_NO_ROW;
	if (idle_nfree) {
		s->idle_row = idle_free[--idle_nfree];
		memset(idle_table + (size_t)s->idle_row * idle_row_len(), 0,
		       idle_row_len() * sizeof(struct sheaf_idle_slot));
	} else if (idle_top < idle_cap || idle_table_grow()) {
		s->idle_row = idle_top++; /* fresh memory: zero */
	}
}

void _sheaf_idle_row_put(struct kmem_cache *s)
{
	sheaf_lock_held(LR_SLAB_MUTEX);
	if (s->idle_row != SHEAF_IDLE_NO_ROW)
		idle_free[idle_nfree++] = s->idle_row;
	s->idle_row = SHEAF_IDLE_NO_ROW;
}

static bool idle_due(uint32_t events, uint32_t *seen, uint32_t *nlooks,
		     unsigned int looks)
{
	if (events != *seen) {
		*seen = events;
		*nlooks = 0;
		return false;
	}
	uint32_t n = ++*nlooks;
	if (n == UINT32_MAX)
		*nlooks = n = looks + 1; /* keep the cadence, never wrap */
	return n == looks || (n > looks && (n - looks) % (4 * looks) == 0);
}

unsigned int _sheaf_pcs_drain_idle(struct kmem_cache *s, unsigned int looks)
{
	unsigned int drained = 0;
	bool due[SHEAF_MAX_SLOTS], barn_due[MAX_NUMNODES];
	bool slots_due = false, any = false;

	struct sheaf_idle_slot *row = idle_row(s);
	if (!row)
		return 0; /* no memory for its row when it was created */
	struct sheaf_idle_slot *view = row + IDLE_HEAD_UNITS;
	/*
	 * What is due, from the events counts (relaxed snapshots) without a
	 * lock (the cache stays while slab_mutex is held: a destroy takes it
	 * to leave the list), so that a look at which nothing is due writes
	 * nothing of the cache's, only this table: no flush lock, no slot's
	 * stop word (both in the fork-state pool), no copy-on-write fault
	 * after a fork.  Whether a due slot holds anything is read under the
	 * slots' remote lock, as the sheaf pointers are the holder's.
	 */
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct sheaf_pcs *pcs = &s->hot.pcs[i];
		due[i] = idle_due(__atomic_load_n(&pcs->events, __ATOMIC_RELAXED),
				  &view[i].seen, &view[i].looks, looks);
		slots_due |= due[i];
	}
	any = slots_due;
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		struct node_barn *barn = s->barn[n];
		struct sheaf_idle_slot *v = &view[_sheaf_nr_slots + n];
		barn_due[n] = idle_due(__atomic_load_n(&barn->events, __ATOMIC_RELAXED),
				       &v->seen, &v->looks, looks) &&
			      (READ_ONCE(barn->nr_full) || READ_ONCE(barn->nr_empty));
		any |= barn_due[n];
	}
	if (!any)
		return 0;
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	if (atomic_load_explicit(&s->destroying, memory_order_acquire)) {
		sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
		return 0;
	}
	if (slots_due) {
		_sheaf_pcs_remote_lock_all(s);
		for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
			struct sheaf_pcs *pcs = &s->hot.pcs[i];
			if (!due[i] || (!pcs->main->size && !pcs->spare && !pcs->rcu_free))
				continue;
			drained++;
			drain_slot(s, pcs, i);
		}
		_sheaf_pcs_remote_unlock_all(s);
	}
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		struct node_barn *barn = s->barn[n];
		if (!barn_due[n] || (!READ_ONCE(barn->nr_full) && !READ_ONCE(barn->nr_empty)))
			continue;
		_sheaf_barn_shrink(s, barn);
		drained++;
	}
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
	return drained;
}

/* After a successful flush with no users left: free the main sheaves. */
void _sheaf_pcs_destroy(struct kmem_cache *s)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		_sheaf_free_sheaf(s, s->hot.pcs[i].main, i);
		s->hot.pcs[i].main = NULL;
	}
}

/* Objects cached in sheaves and barns (exact when quiescent). */
size_t _sheaf_pcs_cached_objects(struct kmem_cache *s)
{
	size_t n = 0;
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	_sheaf_pcs_remote_lock_all(s);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct sheaf_pcs *pcs = &s->hot.pcs[i];
		n += pcs->main->size;
		if (pcs->spare)
			n += pcs->spare->size;
		if (pcs->rcu_free)
			n += pcs->rcu_free->size;
	}
	_sheaf_pcs_remote_unlock_all(s);
	for (unsigned int k = 0; k < _sheaf_nr_nodes; k++)
		n += _sheaf_barn_objects(s->barn[k], NULL, NULL);
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
	return n;
}

/*
 * fork: own every slot (remote protocol) until the handlers release them,
 * in parts: stop and freeze every slot of every cache, one fence for all
 * (_sheaf_rseq_fence() by the caller, in rseq mode), then settle them
 * (another fence for all and another look while a look froze a slot
 * again).  The barns are a step of their own, after every cache's slots.
 */
void _sheaf_pcs_fork_stop(struct kmem_cache *s)
{
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	_sheaf_slots_stop(s->hot.pcs);
}

/* After the fence: s's slots are the handler's to settle (it waits for
 * every holder of them; it holds the slots of the caches before s: the
 * same rank). */
void _sheaf_pcs_fork_hold(struct kmem_cache *s)
{
	(void)s;
	_sheaf_lock_acquire(LR_SLOT);
}

bool _sheaf_pcs_fork_settle(struct kmem_cache *s)
{
	return _sheaf_slots_settle(s->hot.pcs);
}

void _sheaf_pcs_fork_lock_barns(struct kmem_cache *s)
{
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
		sheaf_barn_lock(&s->barn[n]->lock);
}

void _sheaf_pcs_fork_unlock_barns(struct kmem_cache *s)
{
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
		sheaf_barn_unlock(&s->barn[n]->lock);
}

/*
 * After fork().  In the child every slot is free: its one thread is the
 * one that owned every slot in the prefork handler.  A lock byte may still
 * read 1 there (fallback mode: another thread's compare-and-swap takes it
 * for an instant before it sees stop and lets go, and fork() may copy that
 * instant), so the child clears them all before clearing stop.
 */
void _sheaf_pcs_unlock_all(struct kmem_cache *s, bool child)
{
	if (child)
		_sheaf_slots_reset(s->hot.pcs);
	_sheaf_slots_release(s->hot.pcs);
	_sheaf_lock_release(LR_SLOT);
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
}

/*
 * Bare slot arrays: a per-CPU cache of pointers that is not a kmem_cache
 * (kmalloc's per-order caches of free large runs).  Every slot's main is a
 * sheaf of `capacity` pointers of its own, never replaced; no spare, no
 * rcu_free, no barn, no slot lock ever taken: the inline sections push and
 * pop (sheaf_pcs_push_inline(), sheaf_pcs_pop_inline(), rseq mode only),
 * and _sheaf_pcs_bare_drain() empties every slot from any thread with the
 * remote-slot protocol.  The sheaves follow the slots, each in whole cache
 * lines so that no two slots share one.  NULL when out of metadata memory.
 */
struct sheaf_pcs *_sheaf_pcs_bare_new(unsigned int capacity)
{
	size_t sheaf_bytes = ALIGN_UP(sizeof(struct slab_sheaf) +
				      (size_t)capacity * sizeof(void *),
				      (size_t)CACHE_LINE);
	size_t bytes = _sheaf_nr_slots * (sizeof(struct sheaf_pcs) + sheaf_bytes);
	char *mem = _sheaf_meta_alloc(bytes);
	if (!mem)
		return NULL;
	struct sheaf_pcs *pcs = (struct sheaf_pcs *)(void *)mem;
	char *sheaves = mem + _sheaf_nr_slots * sizeof(struct sheaf_pcs);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		pcs[i].main = (struct slab_sheaf *)(void *)(sheaves + i * sheaf_bytes);
		pcs[i].capacity = capacity;
	}
	return pcs;
}

/*
 * Empty every slot of a bare array, fn(pointer) for each pointer popped.
 * The caller serialises drains of one array (and the fork handlers take
 * its lock).
 */
void _sheaf_pcs_bare_drain(struct sheaf_pcs *pcs, void (*fn)(void *))
{
	_sheaf_slots_remote_lock(pcs);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct slab_sheaf *sh = pcs[i].main;
		while (sh->size)
			fn(sh->objects[--sh->size]);
	}
	_sheaf_slots_remote_unlock(pcs);
}
