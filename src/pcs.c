/* SPDX-License-Identifier: MIT */
/*
 * pcs.c - per-CPU sheaves: the alloc and free paths of caches with
 * sheaf_capacity > 0, refill and flush, bulk, kfree_rcu's sheaf and the
 * prefill spare: what a thread does on its own slot, under the slot lock.
 * The operations on every slot at once (flush-all, the idle drain, fork)
 * are in pcs_remote.c.  The pcs layer is the only one that writes struct
 * sheaf_pcs (with the platform's protocol, which writes its stop and lock
 * bytes).
 *
 * Per slot (struct sheaf_pcs): main (never NULL while the slot is
 * unlocked, may be empty), spare (may be NULL) and rcu_free.  Fast paths
 * are the restartable sections of <sheaf/rseq.h> (or, in fallback mode, a
 * compare-and-swap lock around the same plain code).  Everything else runs
 * under the slot lock:
 *
 *   alloc, main empty:  spare has objects -> swap;  else barn exchange
 *     (empty main for a full sheaf);  else, if the caller may block, unlock,
 *     fill an empty sheaf from slabs (internal bulk alloc), relock (maybe on
 *     another slot) and install it;  else one object from the slab layer.
 *   free, main full:  no spare -> empty from barn;  spare has room -> swap;
 *     else barn exchange (full main for an empty) unless the barn holds its
 *     limit of full sheaves, in which case the spare is flushed to slabs;
 *     no empty sheaf anywhere -> allocate one (GFP_NOWAIT), or flush main.
 *
 * Lock contracts: "locked" below means the caller holds the slot lock of
 * *pcsp; functions that drop and retake it say so, and may return holding
 * the lock of a different slot (migration), as in the kernel.
 *
 * Lock order (enum sheaf_lock_rank): slot lock -> barn lock -> node
 * list_lock -> page locks.
 *
 * kmalloc_nolock() and kfree_nolock() (the kernel's paths with !allow_spin)
 * use the same sections and, under a slot lock taken only if free, what
 * the slot and the barn (its lock only tried) hold: no sheaf is allocated,
 * refilled or flushed there, and nothing waits, so that a signal handler
 * may call them whatever lock its thread holds.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Whether the inline fast paths of <sheaf/slab.h> may be used now. */
static bool inline_allowed(void)
{
	return _sheaf_rseq_mode && !READ_ONCE(_sheaf_stats_on) && _sheaf_nr_nodes == 1 &&
	       !_sheaf_track_on && !READ_ONCE(_sheaf_fault_any);
}

/* Publish (or withdraw) a cache's pcs to the inline fast paths. */
void _sheaf_update_inline(struct kmem_cache *s)
{
	struct sheaf_pcs *want = inline_allowed() ? s->hot.pcs : NULL;
	/* What the inline free paths test (struct sheaf_pcs_info). */
	if (s->hot.pcs) {
		struct sheaf_pcs_info *info = sheaf_pcs_info(s->hot.pcs);
		size_t slab_bytes = (size_t)PAGE_SIZE << s->order;
		uint64_t mul = s->hot.reciprocal; /* sheaf_obj_index()'s */
		uint64_t r = (uint64_t)s->size * mul;
		uint64_t limit = r ? (uint64_t)s->objects * r
				   : (size_t)s->objects * s->size == slab_bytes;
		if (!want || s->red_left_pad || slab_bytes > (1ull << 32))
			limit = 0;
		info->cache = s;
		info->offmask = slab_bytes - 1;
		info->mul = mul;
		if (__atomic_load_n(&info->limit, __ATOMIC_RELAXED) != limit)
			__atomic_store_n(&info->limit, limit, __ATOMIC_RELEASE);
	}
	/* Stored only when it changes: the inline paths of <sheaf/slab.h>
	 * read it with a plain load, and rewriting the same value at every
	 * refresh would race with them for nothing. */
	if (__atomic_load_n(&s->hot.inline_pcs, __ATOMIC_RELAXED) != want)
		__atomic_store_n(&s->hot.inline_pcs, want, __ATOMIC_RELEASE);
}

/* After a change of what inline_allowed() depends on (statistics, faults). */
void _sheaf_refresh_inline_all(void)
{
	struct kmem_cache *s;
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	list_for_each_entry(s, &_sheaf_slab_caches, list)
		if (cache_has_sheaves(s))
			_sheaf_update_inline(s);
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	_sheaf_inline_changed();
}

__attribute__((weak)) void _sheaf_inline_changed(void)
{
}

/* Size-based capacity (the kernel's 7.0 rule), rounded up to fill the
 * sheaf's allocation class. */
SHEAF_EXPORT unsigned int sheaf_auto_capacity(unsigned int size)
{
	unsigned int cap = size >= PAGE_SIZE ? 4 : size >= 1024 ? 12
			 : size >= 256 ? 26 : 60;
	size_t bytes = sizeof(struct slab_sheaf) + cap * sizeof(void *);
	size_t cls = kmalloc_size_roundup(bytes);
	cap = (unsigned int)((cls - sizeof(struct slab_sheaf)) / sizeof(void *));
	return MIN(cap, SHEAF_MAX_CAPACITY);
}


static inline void swap_sheaves(struct sheaf_pcs *pcs)
{
	struct slab_sheaf *t = pcs->main;
	pcs->main = pcs->spare;
	pcs->spare = t;
}

/* ---------------------------------------------------------------- alloc */

/*
 * Install a full sheaf into a locked slot whose main may have been refilled
 * meanwhile (the kernel's rules for the relock after a refill).
 */
static void install_full(struct kmem_cache *s, struct sheaf_pcs *pcs,
			 struct slab_sheaf *full, unsigned int slot)
{
	struct node_barn *barn = sheaf_local_barn(s);
	SHEAF_ASSERT(full->size > 0 && full->size <= s->sheaf_room);
	if (pcs->main->size == 0) {
		if (!pcs->spare)
			pcs->spare = pcs->main;
		else
			_sheaf_barn_put_empty(barn, pcs->main, true);
		pcs->main = full;
	} else if (!pcs->spare) {
		pcs->spare = full;
	} else if (pcs->spare->size == 0) {
		_sheaf_barn_put_empty(barn, pcs->spare, true);
		pcs->spare = full;
	} else {
		_sheaf_barn_put_full(barn, full);
		stat(s, SHEAF_STAT_BARN_PUT, slot);
	}
}

/*
 * Give a locked slot whose main is empty a full main without allocating:
 * the spare if it has objects, else a full sheaf from the barn.  Returns
 * false when there is none (or, spin == false, when the barn is busy).
 */
static bool full_main_from_barn(struct kmem_cache *s, struct sheaf_pcs *pcs,
				unsigned int slot, bool spin)
{
	sheaf_pcs_miss(s, pcs);
	if (pcs->spare && pcs->spare->size) {
		swap_sheaves(pcs);
		return true;
	}
	struct node_barn *barn = sheaf_local_barn(s);
	/* The slot needs a full sheaf: demand RCU may meet next (rcu_credit,
	 * only earned where the cache recycles, so only spent there). */
	if (cache_recycles(s))
		barn_earn_rcu_credit(barn);
	struct slab_sheaf *full;
	if (!pcs->spare && cache_recycles(s)) {
		/* Keep the empty main as the spare (the next kfree_rcu() or
		 * free wants one) rather than handing it to the barn (the
		 * kernel's puts it on the barn's empty list, below). */
		full = _sheaf_barn_get_full(barn, spin);
		if (full) {
			pcs->spare = pcs->main;
			pcs->main = full;
		}
	} else {
		full = _sheaf_barn_replace_empty(barn, pcs->main, spin);
		if (full)
			pcs->main = full;
	}
	stat(s, full ? SHEAF_STAT_BARN_GET : SHEAF_STAT_BARN_GET_FAIL, slot);
	return full != NULL;
}

static SHEAF_NOINLINE void *sheaf_alloc_slow(struct kmem_cache *s, gfp_t gfp)
{
	unsigned int slot;
	deferred_drain_slow(s);
	struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
	void *obj;

	if (unlikely(!pcs)) {
		slot = sheaf_slot();
		stat(s, SHEAF_STAT_SLOT_BUSY, slot);
		goto from_slab;
	}
	if (pcs->main->size || full_main_from_barn(s, pcs, slot, true))
		goto pop;
	/*
	 * The kernel's 7.x rule: a caller that may spin (either reclaim bit:
	 * GFP_NOWAIT too, not only the blocking GFP_KERNEL) refills an empty
	 * sheaf from slabs; one that may not even spin takes one object from
	 * the slab layer.  Without __GFP_DIRECT_RECLAIM the refill maps no
	 * new memory: it fails whole and the object comes from the slab
	 * layer as well.
	 */
	if (!gfpflags_allow_spinning(gfp)) {
		sheaf_pcs_unlock(pcs);
		goto from_slab;
	}
	/* Refill outside the lock, as the kernel does, to the capacity of now. */
	unsigned int cap = cache_cap(s);
	struct slab_sheaf *empty = NULL, *full;
	if (pcs->spare) {
		empty = pcs->spare;
		pcs->spare = NULL;
	} else {
		empty = _sheaf_barn_get_empty(sheaf_local_barn(s), true);
	}
	sheaf_pcs_unlock(pcs);
	if (!empty)
		empty = _sheaf_alloc_sheaf(s, gfp, s->sheaf_room, slot);
	if (!empty)
		goto from_slab;
	if (_sheaf_refill_sheaf(s, empty, cap, gfp, slot)) {
		_sheaf_free_sheaf(s, empty, slot);
		goto from_slab;
	}
	full = empty;
	pcs = sheaf_pcs_trylock(s, &slot);
	if (unlikely(!pcs)) {
		/*
		 * A holder was preempted here: park the sheaf whole (the barn's
		 * full list holds full sheaves only: one object short, a sheaf
		 * of capacity 1 would be parked empty) and take one object
		 * from the slab layer.
		 */
		_sheaf_barn_put_full(sheaf_local_barn(s), full);
		slot = sheaf_slot();
		stat(s, SHEAF_STAT_BARN_PUT, slot);
		stat(s, SHEAF_STAT_SLOT_BUSY, slot);
		goto from_slab;
	}
	install_full(s, pcs, full, slot);
pop:
	sheaf_assert_slot_ok(s, pcs);
	SHEAF_ASSERT(pcs->main->size > 0);
	obj = pcs->main->objects[--pcs->main->size];
	sheaf_pcs_unlock(pcs);
	stat(s, SHEAF_STAT_ALLOC_FASTPATH, slot);
	return obj;

from_slab:
	stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
	return _sheaf_alloc_single(s, gfp, NUMA_NO_NODE, false, slot);
}

/*
 * The pop section (rseq mode), rerun while the kernel aborts it (a signal
 * handler's own section included: the kernel aborts the interrupted one
 * before the handler runs).  false: it bailed, or fallback mode.
 */
static inline __attribute__((always_inline)) bool
pcs_pop_section(struct kmem_cache *s, void **objp)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (likely(_sheaf_rseq_mode)) {
		for (;;) {
			int r = sheaf_rseq_pop(s->hot.pcs, objp);
			if (likely(r == 0)) {
				stat_here(s, SHEAF_STAT_ALLOC_FASTPATH);
				return true;
			}
			if (r == 1)
				break;
		}
	}
#endif
	(void)s;
	(void)objp;
	return false;
}

void *_sheaf_pcs_alloc(struct kmem_cache *s, gfp_t gfp)
{
	void *obj;
	if (likely(pcs_pop_section(s, &obj)))
		return obj;
	return sheaf_alloc_slow(s, gfp);
}

/*
 * kmalloc_nolock()'s per-CPU part (the kernel's alloc_from_pcs() with
 * !allow_spin): the pop section, else under the slot lock, if it is free,
 * main's objects, the spare's, or a full sheaf from the barn for the empty
 * main (the barn lock only tried).  NULL: nothing to be had without
 * waiting; the caller tries the slab layer.
 */
void *_sheaf_pcs_alloc_nolock(struct kmem_cache *s)
{
	unsigned int slot;
	void *obj = NULL;
	if (pcs_pop_section(s, &obj))
		return obj;
	struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
	if (!pcs) {
		stat_here(s, SHEAF_STAT_SLOT_BUSY);
		return NULL;
	}
	if (pcs->main->size || full_main_from_barn(s, pcs, slot, false)) {
		sheaf_assert_slot_ok(s, pcs);
		obj = pcs->main->objects[--pcs->main->size];
	}
	sheaf_pcs_unlock(pcs);
	if (obj)
		stat(s, SHEAF_STAT_ALLOC_FASTPATH, slot);
	return obj;
}

/* ----------------------------------------------------------------- free */

/* Offer an empty sheaf to the barn; free it when the barn has enough. */
void _sheaf_offer_empty(struct kmem_cache *s, struct slab_sheaf *empty,
			unsigned int slot)
{
	if (!_sheaf_barn_put_empty(sheaf_local_barn(s), empty, false))
		_sheaf_free_sheaf(s, empty, slot);
}

/*
 * Install an empty sheaf into a locked slot whose state may have changed
 * while it was unlocked; afterwards main has room.
 */
static void install_empty(struct kmem_cache *s, struct sheaf_pcs *pcs,
			  struct slab_sheaf *empty, unsigned int slot)
{
	unsigned int cap = cache_cap(s);
	SHEAF_ASSERT(empty->size == 0 && empty->cache == s);
	if (pcs->main->size < cap) {
		if (!pcs->spare)
			pcs->spare = empty;
		else
			_sheaf_offer_empty(s, empty, slot);
		return;
	}
	if (pcs->spare && pcs->spare->size < cap) {
		swap_sheaves(pcs);
		_sheaf_offer_empty(s, empty, slot);
		return;
	}
	if (pcs->spare) {
		/* Both full: the barn takes one past its limit (an undo). */
		_sheaf_barn_put_full(sheaf_local_barn(s), pcs->spare);
		stat(s, SHEAF_STAT_BARN_PUT, slot);
	}
	pcs->spare = pcs->main;
	pcs->main = empty;
}

/*
 * Give a locked slot whose main is full a main with room without
 * allocating: an empty sheaf from the barn when there is no spare, the
 * spare if it has room, else the barn's exchange of main for an empty
 * sheaf.  Returns 0, or -ENOMEM (no empty sheaf in the barn) or -E2BIG (the
 * spare is full too and the barn holds its limit of full sheaves), or
 * (spin == false only) -EBUSY or -ENOMEM when the barn's lock was busy.
 */
static int room_from_barn(struct kmem_cache *s, struct sheaf_pcs *pcs,
			  unsigned int cap, unsigned int slot, bool spin)
{
	struct node_barn *barn = sheaf_local_barn(s);
	struct slab_sheaf *empty;
	int err;

	sheaf_pcs_miss(s, pcs);
	if (pcs->spare && pcs->spare->size < cap) {
		swap_sheaves(pcs);
		return 0;
	}
	if (!pcs->spare) {
		empty = _sheaf_barn_get_empty(barn, spin);
		if (!empty)
			return -ENOMEM;
		pcs->spare = pcs->main;
		pcs->main = empty;
		return 0;
	}
	empty = _sheaf_barn_replace_full(barn, pcs->main, &err, spin);
	if (!empty)
		return err;
	pcs->main = empty;
	stat(s, SHEAF_STAT_BARN_PUT, slot);
	return 0;
}

/*
 * Make room in a locked slot's full main.  Returns the locked slot (maybe
 * another one) with room in main, or NULL with no lock held.
 */
static struct sheaf_pcs *replace_full_main(struct kmem_cache *s,
					   struct sheaf_pcs *pcs, unsigned int cap,
					   unsigned int *slotp)
{
	struct slab_sheaf *empty;
	int err = room_from_barn(s, pcs, cap, *slotp, true);

	if (!err)
		return pcs;
	if (err == -E2BIG) {
		/* The barn is at its limit: the full spare goes to slabs. */
		stat(s, SHEAF_STAT_BARN_PUT_FAIL, *slotp);
		sheaf_pcs_miss_was_fail(s, pcs); /* room_from_barn() counted it */
		struct slab_sheaf *spare = pcs->spare;
		pcs->spare = NULL;
		sheaf_pcs_unlock(pcs);
		_sheaf_flush_sheaf(s, spare, SHEAF_STAT_SHEAF_FLUSH_OTHER, *slotp);
		pcs = sheaf_pcs_trylock(s, slotp);
		if (!pcs) {
			_sheaf_offer_empty(s, spare, sheaf_slot());
			return NULL;
		}
		install_empty(s, pcs, spare, *slotp);
		return pcs;
	}

	/* No empty sheaf in the barn: allocate one, unlocked. */
	sheaf_pcs_unlock(pcs);
	empty = _sheaf_alloc_sheaf(s, GFP_NOWAIT, s->sheaf_room, *slotp);
	pcs = sheaf_pcs_trylock(s, slotp);
	if (!pcs) {
		if (empty)
			_sheaf_free_sheaf(s, empty, sheaf_slot());
		return NULL;
	}
	if (!empty) {
		/* No sheaf to be had: flush main to slabs, under the lock. */
		stat(s, SHEAF_STAT_BARN_PUT_FAIL, *slotp);
		if (pcs->main->size >= cap)
			_sheaf_flush_sheaf(s, pcs->main, SHEAF_STAT_SHEAF_FLUSH_MAIN,
					   *slotp);
		return pcs;
	}
	install_empty(s, pcs, empty, *slotp);
	return pcs;
}

/* slab: obj's, or NULL (looked up only if obj goes to it). */
static SHEAF_NOINLINE void sheaf_free_slow(struct kmem_cache *s,
					   struct slab *slab, void *obj)
{
	unsigned int slot;
	deferred_drain_slow(s);
	struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);

	if (unlikely(!pcs)) {
		slot = sheaf_slot();
		stat(s, SHEAF_STAT_SLOT_BUSY, slot);
		goto to_slab;
	}
	unsigned int cap = cache_cap(s);
	if (pcs->main->size >= cap) {
		pcs = replace_full_main(s, pcs, cap, &slot);
		if (!pcs) {
			slot = sheaf_slot();
			goto to_slab;
		}
	}
	sheaf_assert_slot_ok(s, pcs);
	SHEAF_ASSERT(pcs->main->size < s->sheaf_room);
	pcs->main->objects[pcs->main->size++] = obj;
	sheaf_pcs_unlock(pcs);
	stat(s, SHEAF_STAT_FREE_FASTPATH, slot);
	return;

to_slab:
	stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
	_sheaf_slab_free(s, slab ? slab : virt_to_slab(obj), obj, obj, 1, slot);
}

/* The push section (rseq mode), rerun while aborted.  false: it bailed,
 * or fallback mode. */
static inline __attribute__((always_inline)) bool
pcs_push_section(struct kmem_cache *s, void *obj)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (likely(_sheaf_rseq_mode)) {
		for (;;) {
			int r = sheaf_rseq_push(s->hot.pcs, obj);
			if (likely(r == 0)) {
				stat_here(s, SHEAF_STAT_FREE_FASTPATH);
				return true;
			}
			if (r == 1)
				break;
		}
	}
#endif
	(void)s;
	(void)obj;
	return false;
}

void _sheaf_pcs_free(struct kmem_cache *s, struct slab *slab, void *obj)
{
	if (unlikely(_sheaf_nr_nodes > 1) && slab->node != sheaf_node()) {
		/* Sheaves hold local objects: a remote one goes to its slab. */
		unsigned int slot = sheaf_slot();
		stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
		_sheaf_slab_free(s, slab, obj, obj, 1, slot);
		return;
	}
	if (likely(pcs_push_section(s, obj)))
		return;
	sheaf_free_slow(s, slab, obj);
}

/*
 * libsheaf-malloc's malloc() and free() after their inline section bailed
 * on slots they found through the size table or the page map (main empty
 * or full, the slot busy, no slot): straight to the sheaf slow path, as
 * _sheaf_pcs_alloc() and _sheaf_pcs_free() go after their own section.
 * Those slots were published, so the cache's inline paths were on: no
 * debug flags, statistics, tracking or failure injection, and the free's
 * pointer passed the info line's boundary test.  Without this, a bailed
 * malloc() went through kmalloc()'s class lookup and the slab layer's
 * entry, and a bailed free() through kfree()'s descriptor checks, and
 * each ran its section once more before the slow path.
 */
void *_sheaf_pcs_alloc_bailed(struct kmem_cache *s)
{
	return sheaf_alloc_slow(s, GFP_KERNEL);
}

void _sheaf_pcs_free_bailed(struct kmem_cache *s, void *obj)
{
	/* One node (the inline paths' condition), so no remote objects: the
	 * slab, a cold descriptor line, only if the object goes to it. */
	if (unlikely(_sheaf_nr_nodes > 1)) {
		_sheaf_pcs_free(s, virt_to_slab(obj), obj);
		return;
	}
	sheaf_free_slow(s, NULL, obj);
}

/*
 * kfree_nolock()'s per-CPU part (the kernel's free_to_pcs() with
 * !allow_spin): the push section, else under the slot lock, if it is
 * free, main with room, the spare swapped in, or an empty sheaf from the
 * barn (its lock only tried; never past its limit of full sheaves).
 * false: not done (a remote object, a busy slot or barn, no room without
 * a flush or a new sheaf); the caller tries the slab layer.
 */
bool _sheaf_pcs_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj)
{
	unsigned int slot;
	if (unlikely(_sheaf_nr_nodes > 1) && slab->node != sheaf_node())
		return false;
	if (pcs_push_section(s, obj))
		return true;
	struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
	if (!pcs) {
		stat_here(s, SHEAF_STAT_SLOT_BUSY);
		return false;
	}
	unsigned int cap = cache_cap(s);
	bool done = pcs->main->size < cap ||
		    room_from_barn(s, pcs, cap, slot, false) == 0;
	if (done) {
		sheaf_assert_slot_ok(s, pcs);
		SHEAF_ASSERT(pcs->main->size < s->sheaf_room);
		pcs->main->objects[pcs->main->size++] = obj;
	}
	sheaf_pcs_unlock(pcs);
	if (done)
		stat(s, SHEAF_STAT_FREE_FASTPATH, slot);
	return done;
}

/* ----------------------------------------------------------------- bulk */

int _sheaf_pcs_alloc_bulk(struct kmem_cache *s, gfp_t gfp, size_t nr, void **p)
{
	size_t done = 0;
	unsigned int slot = 0;

	while (done < nr) {
		struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
		if (!pcs)
			break;
		if (!pcs->main->size && !full_main_from_barn(s, pcs, slot, true)) {
			sheaf_pcs_unlock(pcs);
			break;
		}
		struct slab_sheaf *main = pcs->main;
		SHEAF_ASSERT(main->size > 0);
		size_t take = MIN(nr - done, (size_t)main->size);
		main->size -= (unsigned int)take;
		memcpy(&p[done], &main->objects[main->size], take * sizeof(void *));
		sheaf_pcs_unlock(pcs);
		done += take;
		stat_add(s, SHEAF_STAT_ALLOC_FASTPATH, slot, take);
	}
	if (done < nr) {
		/* The rest straight from slabs; never back into sheaves. */
		if (!_sheaf_slab_alloc_bulk(s, gfp, sheaf_node(), &p[done], nr - done,
					    slot)) {
			if (done)
				_sheaf_pcs_free_bulk(s, done, p);
			return 0;
		}
		stat_add(s, SHEAF_STAT_ALLOC_SLOWPATH, slot, nr - done);
	}
	return (int)nr;
}

/* Objects must have been checked.  Remote-node objects go to their slabs. */
void _sheaf_pcs_free_bulk(struct kmem_cache *s, size_t nr, void **p)
{
	unsigned int cap = cache_cap(s);
	unsigned int slot = 0;
	size_t i = 0;
	int node = sheaf_node();

	while (i < nr) {
		struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
		if (!pcs)
			break;
		if (pcs->main->size >= cap && room_from_barn(s, pcs, cap, slot, true)) {
			sheaf_pcs_unlock(pcs);
			break;
		}
		struct slab_sheaf *main = pcs->main;
		SHEAF_ASSERT(main->size < cap);
		size_t pushed = 0;
		while (i < nr && main->size < cap) {
			void *obj = p[i++];
			struct slab *slab = virt_to_slab(obj);
			if (unlikely(slab->node != node)) {
				_sheaf_slab_free(s, slab, obj, obj, 1, slot);
				stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
				continue;
			}
			main->objects[main->size++] = obj;
			pushed++;
		}
		sheaf_pcs_unlock(pcs);
		stat_add(s, SHEAF_STAT_FREE_FASTPATH, slot, pushed);
	}
	if (i < nr) {
		_sheaf_slab_free_bulk(s, nr - i, &p[i], slot);
		stat_add(s, SHEAF_STAT_FREE_SLOWPATH, slot, nr - i);
	}
}

/* The test hook's sheaf part: hold or release the current slot's lock. */
int _sheaf_pcs_test_hold(struct kmem_cache *s, bool hold)
{
	static __thread struct sheaf_pcs *held;
	unsigned int slot;
	if (hold) {
		struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
		if (!pcs)
			return -EBUSY;
		held = pcs;
		return 0;
	}
	if (!held)
		return -EINVAL;
	sheaf_pcs_unlock(held);
	held = NULL;
	return 0;
}

/* ------------------------------------------------------------ kfree_rcu */

/*
 * The sheaf path of kfree_rcu (the kernel's __kfree_rcu_sheaf): obj goes
 * to the slot's rcu_free sheaf, which goes whole to the RCU layer's worker
 * when full.  False when the slot is busy or no sheaf can be had; the
 * caller (rcu.c) then takes the per-object path.
 */
bool _sheaf_pcs_kfree_rcu(struct kmem_cache *s, void *obj)
{
	unsigned int slot, cap = cache_cap(s);
	struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
	if (!pcs)
		return false;
	struct slab_sheaf *rf = pcs->rcu_free;
	if (!rf) {
		if (pcs->spare && pcs->spare->size == 0) {
			rf = pcs->spare;
			pcs->spare = NULL;
		} else {
			rf = _sheaf_barn_get_empty(sheaf_local_barn(s), true);
		}
		if (!rf) {
			sheaf_pcs_unlock(pcs);
			struct slab_sheaf *empty = _sheaf_alloc_sheaf(s, GFP_NOWAIT,
								      s->sheaf_room, slot);
			if (!empty)
				return false;
			pcs = sheaf_pcs_trylock(s, &slot);
			if (!pcs) {
				_sheaf_offer_empty(s, empty, sheaf_slot());
				return false;
			}
			if (pcs->rcu_free) { /* installed meanwhile */
				_sheaf_offer_empty(s, empty, slot);
				rf = pcs->rcu_free;
			} else {
				rf = empty;
			}
		}
		pcs->rcu_free = rf;
	}
	sheaf_assert_slot_ok(s, pcs); /* so rf->size < sheaf_room: room for obj */
	rf->objects[rf->size++] = obj;
	if (rf->size >= cap) {
		/* A sheaf's worth through RCU: a miss for the capacity. */
		sheaf_pcs_miss(s, pcs);
		pcs->rcu_free = NULL;
		/* Submitted under the slot lock: a barrier cannot miss it. */
		_sheaf_rcu_submit_sheaf(s, rf, true, slot);
	}
	sheaf_pcs_unlock(pcs);
	stat(s, SHEAF_STAT_FREE_RCU_SHEAF, slot);
	return true;
}

/*
 * Submit the partly filled rcu_free sheaves of every slot of s.  After the
 * grace period their objects go to slabs (the kernel's
 * rcu_free_sheaf_nobarn): the barn's full list takes full sheaves only.
 */
void _sheaf_pcs_submit_rcu_sheaves(struct kmem_cache *s)
{
	if (!cache_has_sheaves(s))
		return;
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	_sheaf_pcs_remote_lock_all(s);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct sheaf_pcs *pcs = &s->hot.pcs[i];
		struct slab_sheaf *rf = pcs->rcu_free;
		sheaf_assert_slot_ok(s, pcs);
		if (rf) {
			pcs->rcu_free = NULL;
			_sheaf_rcu_submit_sheaf(s, rf, false, i);
		}
	}
	_sheaf_pcs_remote_unlock_all(s);
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
}

/* ------------------------------------------------- prefilled sheaves */

/*
 * For kmem_cache_prefill_sheaf(): the slot's spare.  A cache that recycles
 * (cache_recycles()) does better when the spare holds fewer than want
 * objects: if the spare and main together are short, a full sheaf from
 * the barn goes out instead (*from_barn; the spare stays in the slot, and
 * the demand earns the barn RCU credit); else, or with no full sheaf in
 * the barn, the spare is topped up from main (objects the slot has cached
 * anyway, often recycled through RCU, rather than from slabs).  Both
 * libsheaf's, not the kernel's (which refills the spare from slabs): the
 * top-up runs prealloc-32 in 0.74x the time (docs/PREFILL.md), and one
 * slot lock serves both.  NULL when the slot is busy or has no spare.
 * *slotp: the slot.
 */
struct slab_sheaf *_sheaf_pcs_take_spare(struct kmem_cache *s, unsigned int want,
					 unsigned int *slotp, bool *from_barn)
{
	*from_barn = false;
	struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, slotp);
	if (!pcs)
		return NULL;
	struct slab_sheaf *sheaf = pcs->spare;
	unsigned int cap = cache_cap(s);
	if (sheaf && sheaf->size < want && sheaf->size < cap && cache_recycles(s)) {
		struct slab_sheaf *main = pcs->main;
		if (sheaf->size + main->size < want) {
			struct node_barn *barn = sheaf_local_barn(s);
			barn_earn_rcu_credit(barn);
			struct slab_sheaf *full = READ_ONCE(barn->nr_full)
				? _sheaf_barn_get_full(barn, true) : NULL;
			if (full) {
				*from_barn = true;
				sheaf_assert_slot_ok(s, pcs);
				sheaf_pcs_unlock(pcs);
				SHEAF_ASSERT(full->cache == s && full->size > 0 &&
					     full->size <= s->sheaf_room);
				return full;
			}
		}
		unsigned int take = MIN(cap - sheaf->size, main->size);
		main->size -= take;
		memcpy(&sheaf->objects[sheaf->size], &main->objects[main->size],
		       take * sizeof(void *));
		sheaf->size += take;
	}
	if (sheaf) {
		pcs->spare = NULL;
		sheaf_assert_slot_ok(s, pcs);
		SHEAF_ASSERT(sheaf->cache == s && sheaf->size <= s->sheaf_room);
	}
	sheaf_pcs_unlock(pcs);
	return sheaf;
}

/*
 * For kmem_cache_return_sheaf(): a slot without a spare takes the returned
 * sheaf r as its spare, partly used or not (NULL comes back: the fast
 * paths cope with any spare).  A slot with one, in a cache that recycles
 * (cache_recycles()), pools r with it rather than r being refilled from
 * slabs: objects move from r into the spare until the spare is full; the
 * slot keeps the one that still has objects and room, and the other comes
 * back to the caller, full (for the barn's full list) or empty.  Returns
 * r itself, untouched, when the slot is busy, or has a spare and the
 * cache follows the kernel.
 */
struct slab_sheaf *_sheaf_pcs_pool_spare(struct kmem_cache *s, struct slab_sheaf *r,
					 unsigned int *slotp)
{
	struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, slotp);
	if (!pcs)
		return r;
	struct slab_sheaf *sp = pcs->spare, *out = NULL;
	if (!sp) {
		pcs->spare = r;
	} else if (!cache_recycles(s)) {
		out = r;
	} else {
		unsigned int cap = cache_cap(s);
		unsigned int mv = sp->size < cap ? MIN(cap - sp->size, r->size) : 0;
		r->size -= mv;
		memcpy(&sp->objects[sp->size], &r->objects[r->size], mv * sizeof(void *));
		sp->size += mv;
		if (sp->size >= cap && r->size) {
			pcs->spare = r;
			out = sp;
		} else {
			out = r;
		}
		/* Empty, or full (to the capacity of now, or of before). */
		SHEAF_ASSERT(out->size == 0 || out->size >= cap);
	}
	sheaf_assert_slot_ok(s, pcs);
	sheaf_pcs_unlock(pcs);
	return out;
}
