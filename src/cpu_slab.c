/* SPDX-License-Identifier: MIT */
/*
 * cpu_slab.c - the classic SLUB per-CPU fast path, for caches without
 * sheaves (sheaf_capacity == 0).
 *
 * Each slot has (freelist, tid) and the frozen slab the freelist belongs
 * to.  Fast alloc: read tid, then freelist; load the next free pointer from
 * the object (it may be stale: arenas are never unmapped and the value is
 * validated); commit with a compare-and-swap of (freelist, tid) ->
 * (next, tid + TID_STEP).  Fast free: if the object's slab is the slot's
 * slab, push it the same way.  Any change to the slot bumps tid, so a
 * thread that was preempted or migrated between its reads and its
 * compare-and-swap fails and retries: the kernel's design.
 *
 * The compare-and-swap is the kernel's this_cpu_cmpxchg_double: atomic
 * against its own CPU only.  In rseq mode it is a restartable section
 * (<sheaf/rseq.h>: sheaf_rseq_cpu_cmpxchg), with no LOCK prefix; in
 * fallback mode a locked cmpxchg16b, atomic against every CPU.
 *
 * The slow path owns the slot by setting TID_BUSY in tid (the kernel's
 * local_lock); while it is set every fast path on the slot fails its
 * comparison.  A thread that cannot own the slot does not wait: it takes
 * one object straight from the slab layer, as the kernel does when its
 * trylock fails.  Remote access (flush for shrink, destroy, fork) uses the
 * stop byte and membarrier in rseq mode, and the TID_BUSY compare-and-swap
 * in fallback mode, under the cache's flush_lock.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* A slab's frozen bit, read once (remote frees change its counters). */
static inline __attribute__((unused)) bool slab_frozen(struct slab *slab)
{
	struct slab t;
	t.counters = READ_ONCE(slab->counters);
	return t.frozen;
}

static inline unsigned __int128 ft(void *fl, unsigned long tid)
{
	return ((unsigned __int128)tid << 64) | (uintptr_t)fl;
}

/*
 * The CPU-local compare-and-swap of (freelist, tid) on slot c:
 * SHEAF_RSEQ_DONE, SHEAF_RSEQ_NOSLOT (rseq mode: the thread has no usable
 * slot, its rseq area is not registered; take the slow path), or anything
 * else for a failure to retry.
 */
static inline int cpu_cmpxchg(struct kmem_cache *s, struct kmem_cache_cpu *c,
			      void *ofl, unsigned long otid, void *nfl,
			      unsigned long ntid)
{
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (likely(_sheaf_rseq_mode))
		return sheaf_rseq_cpu_cmpxchg(s->cpu_slab, c, ofl, otid, nfl, ntid);
#endif
	(void)s;
	return cmpxchg16(&c->freelist_tid, ft(ofl, otid), ft(nfl, ntid))
		       ? SHEAF_RSEQ_DONE : SHEAF_RSEQ_BAIL;
}

/*
 * Own slot c from the thread's own CPU without waiting.  On success *fl
 * and *tid hold the state it was in.  false: owned by someone else, being
 * flushed, or the thread moved off the slot.
 */
static bool slot_trylock(struct kmem_cache *s, struct kmem_cache_cpu *c,
			 void **fl, unsigned long *tid)
{
	for (int tries = 0; tries < 4; tries++) {
		unsigned long t = smp_load_acquire(&c->tid);
		void *f = READ_ONCE(c->freelist);
		if ((t & TID_BUSY) || READ_ONCE(c->stop))
			return false;
		bool ok;
#ifdef SHEAF_HAVE_RSEQ_ASM
		if (likely(_sheaf_rseq_mode)) {
			int r = sheaf_rseq_cpu_settid(s->cpu_slab, c, t, t | TID_BUSY);
			if (r == SHEAF_RSEQ_NOSLOT)
				return false; /* no usable slot: work without */
			ok = r == SHEAF_RSEQ_DONE;
		} else
#endif
			ok = cmpxchg16(&c->freelist_tid, ft(f, t), ft(f, t | TID_BUSY));
		if (ok) {
			*fl = READ_ONCE(c->freelist);
			*tid = t;
			sheaf_debug_yield();
			return true;
		}
	}
	return false;
}

/*
 * Publish a new freelist and give the slot up; may run on any CPU.  While
 * TID_BUSY is set nobody else changes the slot, so plain stores do in rseq
 * mode (tid last, with release); fallback mode keeps every change of the
 * pair a locked compare-and-swap.
 */
static void slot_unlock(struct kmem_cache_cpu *c, unsigned long tid, void *fl)
{
	if (_sheaf_rseq_mode) {
		WRITE_ONCE(c->freelist, (void **)fl);
		smp_store_release(&c->tid, tid + TID_STEP);
		return;
	}
	void *cur = READ_ONCE(c->freelist);
	bool ok = cmpxchg16(&c->freelist_tid, ft(cur, tid | TID_BUSY),
			    ft(fl, tid + TID_STEP));
	SHEAF_ASSERT(ok); /* nobody else changes an owned slot */
}

/*
 * Own every slot of s from any thread (flush, count, fork).  rseq mode: set
 * stop everywhere, abort sections in flight with membarrier, wait for slow
 * path holders to finish.  Fallback: take TID_BUSY on each, waiting.
 */
static void cpu_remote_stop(struct kmem_cache *s);
static void cpu_remote_wait(struct kmem_cache *s);

static void cpu_remote_lock_all(struct kmem_cache *s)
{
	cpu_remote_stop(s);
	if (_sheaf_rseq_mode)
		_sheaf_rseq_fence();
	cpu_remote_wait(s);
}

/*
 * The first half: the flush lock, and in rseq mode every slot's stop byte
 * (the caller then fences once, for every cache when it forks); in
 * fallback mode TID_BUSY on every slot, which needs no fence.
 */
static void cpu_remote_stop(struct kmem_cache *s)
{
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	if (_sheaf_rseq_mode) {
		for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
			__atomic_store_n(&s->cpu_slab[i].stop, 1, __ATOMIC_SEQ_CST);
		return;
	}
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct kmem_cache_cpu *c = &s->cpu_slab[i];
		for (;;) {
			unsigned long t = smp_load_acquire(&c->tid);
			void *f = READ_ONCE(c->freelist);
			if (!(t & TID_BUSY) &&
			    cmpxchg16(&c->freelist_tid, ft(f, t), ft(f, t | TID_BUSY)))
				break;
			sched_yield();
		}
	}
}

/* The second half (after the fence): rseq mode waits for slot owners. */
static void cpu_remote_wait(struct kmem_cache *s)
{
	if (!_sheaf_rseq_mode)
		return;
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		while (smp_load_acquire(&s->cpu_slab[i].tid) & TID_BUSY)
			sched_yield();
}

/*
 * Give every slot back.  tid is bumped so that a reader that saw the state
 * before the flush fails its compare-and-swap (the freelist may look the
 * same, NULL, while the slab changed).
 */
static void cpu_remote_unlock_all(struct kmem_cache *s)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct kmem_cache_cpu *c = &s->cpu_slab[i];
		unsigned long tid = READ_ONCE(c->tid) & ~TID_BUSY;
		if (_sheaf_rseq_mode) {
			smp_store_release(&c->tid, tid + TID_STEP);
			__atomic_store_n(&c->stop, 0, __ATOMIC_RELEASE);
		} else {
			slot_unlock(c, tid, READ_ONCE(c->freelist));
		}
	}
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
}

static SHEAF_NOINLINE void *slab_alloc_slow(struct kmem_cache *s, gfp_t gfp,
					    struct kmem_cache_cpu *c,
					    unsigned int slot)
{
	void *fl;
	unsigned long tid;

	deferred_drain_slow(s);
	stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
	if (!slot_trylock(s, c, &fl, &tid)) {
		stat(s, SHEAF_STAT_SLOT_BUSY, slot);
		return _sheaf_alloc_single(s, gfp, NUMA_NO_NODE, false, slot);
	}
	struct slab *slab = c->slab;
	if (fl)
		goto load; /* another thread refilled it meanwhile */
	if (slab) {
		fl = _sheaf_get_freelist(s, slab);
		if (fl) {
			stat(s, SHEAF_STAT_ALLOC_REFILL, slot);
			goto load;
		}
		/* Full and now unfrozen: the next free lists it. */
		stat(s, SHEAF_STAT_DEACTIVATE_FULL, slot);
		WRITE_ONCE(c->slab, NULL);
	}
	int node = sheaf_node();
	slab = _sheaf_get_partial(s, node, &fl);
	if (slab) {
		stat(s, SHEAF_STAT_ALLOC_FROM_PARTIAL, slot);
	} else {
		slab = _sheaf_new_slab(s, gfp, node, slot);
		if (!slab) {
			slot_unlock(c, tid, NULL);
			return NULL;
		}
		fl = _sheaf_freeze_new_slab(slab);
	}
	WRITE_ONCE(c->slab, slab);
load:;
	void *obj = fl;
	/* struct kmem_cache_cpu: the slot's freelist is its frozen slab's. */
	SHEAF_ASSERT(virt_to_slab(obj) == slab && slab_frozen(slab));
	slot_unlock(c, tid, get_freepointer(s, obj));
	return obj;
}

/*
 * The fast path: pop the slot's freelist with the CPU-local
 * compare-and-swap, retried while another operation on the slot got in
 * between.  NULL when the freelist is empty, the slot is owned or stopped,
 * or the thread has no usable slot; *cp and *slotp name the slot read, for
 * the slow path.  Nothing here waits: every step is a load or a
 * compare-and-swap that any interruption (a signal handler's operation on
 * the slot included) makes fail, since each bumps tid.
 */
static inline __attribute__((always_inline)) void *
cpu_alloc_fast(struct kmem_cache *s, struct kmem_cache_cpu **cp, unsigned int *slotp)
{
	for (;;) {
		unsigned int slot = sheaf_slot();
		struct kmem_cache_cpu *c = &s->cpu_slab[slot];
		*cp = c;
		*slotp = slot;
		unsigned long tid = smp_load_acquire(&c->tid);
		void *obj = READ_ONCE(c->freelist);
		if (unlikely(!obj || (tid & TID_BUSY) || READ_ONCE(c->stop)))
			return NULL;
		void *next = get_freepointer_safe(s, obj);
		int r = cpu_cmpxchg(s, c, obj, tid, next, tid + TID_STEP);
		if (likely(r == SHEAF_RSEQ_DONE)) {
			stat(s, SHEAF_STAT_ALLOC_FASTPATH, slot);
			return obj;
		}
		if (unlikely(r == SHEAF_RSEQ_NOSLOT))
			return NULL;
		stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_CPU_FAIL, slot);
	}
}

void *_sheaf_cpu_alloc(struct kmem_cache *s, gfp_t gfp)
{
	unsigned int slot;
	struct kmem_cache_cpu *c;
	void *obj = cpu_alloc_fast(s, &c, &slot);
	if (likely(obj))
		return obj;
	return slab_alloc_slow(s, gfp, c, slot);
}

/* kmalloc_nolock()'s part: the fast path only (NULL: try the slab layer). */
void *_sheaf_cpu_alloc_nolock(struct kmem_cache *s)
{
	unsigned int slot;
	struct kmem_cache_cpu *c;
	return cpu_alloc_fast(s, &c, &slot);
}

/*
 * The fast free: push obj onto the slot's freelist when its slab is the
 * slot's, with the same compare-and-swap.  false: not done (another slab,
 * the slot owned or stopped, no usable slot); *slotp is the slot read.
 * fn and caller name the entry point and its caller in a double-free
 * report (an immediately repeated free, as the kernel catches it).
 */
static inline __attribute__((always_inline)) bool
cpu_free_fast(struct kmem_cache *s, struct slab *slab, void *obj,
	      const char *fn, void *caller, unsigned int *slotp)
{
	for (;;) {
		unsigned int slot = sheaf_slot();
		*slotp = slot;
		struct kmem_cache_cpu *c = &s->cpu_slab[slot];
		unsigned long tid = smp_load_acquire(&c->tid);
		if (unlikely((tid & TID_BUSY) || READ_ONCE(c->stop) ||
			     READ_ONCE(c->slab) != slab))
			return false;
		void *fl = READ_ONCE(c->freelist);
		if (unlikely(fl == obj))
			_sheaf_report_invalid(fn, "double free of", obj, s, caller);
		set_freepointer(s, obj, fl);
		int r = cpu_cmpxchg(s, c, fl, tid, obj, tid + TID_STEP);
		if (likely(r == SHEAF_RSEQ_DONE)) {
			stat(s, SHEAF_STAT_FREE_FASTPATH, slot);
			return true;
		}
		if (unlikely(r == SHEAF_RSEQ_NOSLOT))
			return false;
		stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_CPU_FAIL, slot);
	}
}

/* kfree_nolock()'s part: the fast free only (false: not done). */
bool _sheaf_cpu_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj)
{
	unsigned int slot;
	return cpu_free_fast(s, slab, obj, "kfree_nolock", NULL, &slot);
}

void _sheaf_cpu_free(struct kmem_cache *s, struct slab *slab, void *obj,
		     const char *fn, void *caller)
{
	unsigned int slot;
	if (likely(cpu_free_fast(s, slab, obj, fn, caller, &slot)))
		return;
	deferred_drain_slow(s);
	stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
	/* The slab layer checks again under its compare-and-swap; this look
	 * names the right function and caller in the common case. */
	if (unlikely(READ_ONCE(slab->freelist) == obj))
		_sheaf_report_invalid(fn, "double free of", obj, s, caller);
	_sheaf_slab_free(s, slab, obj, obj, 1, slot);
}

/* The test hook's classic part: hold or release the current slot. */
int _sheaf_cpu_test_hold(struct kmem_cache *s, bool hold)
{
	static __thread struct kmem_cache_cpu *held;
	static __thread unsigned long held_tid;
	if (hold) {
		struct kmem_cache_cpu *c = &s->cpu_slab[sheaf_slot()];
		void *fl;
		if (!slot_trylock(s, c, &fl, &held_tid))
			return -EBUSY;
		held = c;
		return 0;
	}
	if (!held)
		return -EINVAL;
	slot_unlock(held, held_tid, READ_ONCE(held->freelist));
	held = NULL;
	return 0;
}

/* Flush every slot: its frozen slab and freelist go back to the node lists. */
void _sheaf_cpu_flush_all(struct kmem_cache *s)
{
	cpu_remote_lock_all(s);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct kmem_cache_cpu *c = &s->cpu_slab[i];
		struct slab *slab = c->slab;
		void *fl = READ_ONCE(c->freelist);
		if (!slab)
			continue;
		WRITE_ONCE(c->slab, NULL);
		WRITE_ONCE(c->freelist, NULL);
		stat(s, SHEAF_STAT_CPUSLAB_FLUSH, i);
		_sheaf_unfreeze(s, slab, fl, i);
	}
	cpu_remote_unlock_all(s);
}

/* Free objects held by the slots (their freelists and frozen slabs). */
size_t _sheaf_cpu_cached_objects(struct kmem_cache *s)
{
	size_t n = 0;
	cpu_remote_lock_all(s);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct kmem_cache_cpu *c = &s->cpu_slab[i];
		for (void *o = READ_ONCE(c->freelist); o; o = get_freepointer(s, o))
			n++;
		struct slab *slab = c->slab;
		if (slab) {
			struct slab t;
			t.counters = READ_ONCE(slab->counters);
			n += t.objects - t.inuse;
		}
	}
	cpu_remote_unlock_all(s);
	return n;
}

/* fork: own every slot of s, in the two halves of the remote protocol
 * (the caller fences once between them for every cache). */
void _sheaf_cpu_fork_stop(struct kmem_cache *s)
{
	cpu_remote_stop(s);
}

void _sheaf_cpu_fork_wait(struct kmem_cache *s)
{
	cpu_remote_wait(s);
}

void _sheaf_cpu_unlock_all(struct kmem_cache *s)
{
	cpu_remote_unlock_all(s);
}
