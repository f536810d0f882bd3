/* SPDX-License-Identifier: MIT */
/*
 * cpu_slab.c - the classic SLUB per-CPU fast path, for caches without
 * sheaves (sheaf_capacity == 0).
 *
 * Each slot has (freelist, tid) and the frozen slab the freelist belongs
 * to.  Fast alloc: read tid, then freelist; load the next free pointer from
 * the object (it may be stale: arenas are never unmapped and the value is
 * validated); commit with one 16-byte compare-and-swap of (freelist, tid)
 * -> (next, tid + TID_STEP).  Fast free: if the object's slab is the slot's
 * slab, push it the same way.  Any change to the slot bumps tid, so a
 * thread preempted or migrated between its reads and its compare-and-swap
 * fails and retries: this is the kernel's design, where tid also stands in
 * for "still on the same CPU".
 *
 * The slow path owns the slot by setting TID_BUSY with the same
 * compare-and-swap (userspace cannot disable preemption, so the kernel's
 * local_lock becomes this bit).  While it is set every fast path on the
 * slot bails out; a thread that finds the slot busy does not wait: it takes
 * one object straight from the slab layer, as the kernel does when its
 * trylock fails.  Remote access (flush for shrink, destroy, fork) owns the
 * slot the same way, waiting for a holder to finish.
 */
#include <sched.h>

#include "internal.h"

static inline unsigned __int128 ft(void *fl, unsigned long tid)
{
	return ((unsigned __int128)tid << 64) | (uintptr_t)fl;
}

/*
 * Own slot c.  wait: spin (yielding) while another thread owns it; else
 * return false at once.  On success *fl and *tid hold the state before.
 */
static bool slot_acquire(struct kmem_cache_cpu *c, bool wait, void **fl,
			 unsigned long *tid)
{
	for (;;) {
		unsigned long t = smp_load_acquire(&c->tid);
		void *f = READ_ONCE(c->freelist);
		if (t & TID_BUSY) {
			if (!wait)
				return false;
			sched_yield();
			continue;
		}
		if (cmpxchg16(&c->freelist_tid, ft(f, t), ft(f, t | TID_BUSY))) {
			*fl = f;
			*tid = t;
			return true;
		}
	}
}

/* Publish a new freelist and give the slot up.  fl_at_acquire: as owned. */
static void slot_release(struct kmem_cache_cpu *c, void *fl_at_acquire,
			 unsigned long tid, void *fl)
{
	bool ok = cmpxchg16(&c->freelist_tid, ft(fl_at_acquire, tid | TID_BUSY),
			    ft(fl, tid + TID_STEP));
	(void)ok; /* nobody else changes an owned slot */
}

static SHEAF_NOINLINE void *slab_alloc_slow(struct kmem_cache *s, gfp_t gfp,
					    struct kmem_cache_cpu *c,
					    unsigned int slot)
{
	void *fl0, *fl;
	unsigned long tid;

	stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
	if (!slot_acquire(c, false, &fl0, &tid)) {
		stat(s, SHEAF_STAT_SLOT_BUSY, slot);
		return _sheaf_alloc_single(s, gfp, NUMA_NO_NODE, false, slot);
	}
	fl = fl0;
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
		c->slab = NULL;
	}
	int node = sheaf_node();
	slab = _sheaf_get_partial(s, node, &fl);
	if (slab) {
		stat(s, SHEAF_STAT_ALLOC_FROM_PARTIAL, slot);
	} else {
		slab = _sheaf_new_slab(s, gfp, node, slot);
		if (!slab) {
			slot_release(c, fl0, tid, NULL);
			return NULL;
		}
		fl = _sheaf_freeze_new_slab(slab);
	}
	c->slab = slab;
load:;
	void *obj = fl;
	slot_release(c, fl0, tid, get_freepointer(s, obj));
	return obj;
}

void *_sheaf_cpu_alloc(struct kmem_cache *s, gfp_t gfp)
{
	unsigned int slot;
	struct kmem_cache_cpu *c;

	for (;;) {
		slot = sheaf_slot();
		c = &s->cpu_slab[slot];
		unsigned long tid = smp_load_acquire(&c->tid);
		void *obj = READ_ONCE(c->freelist);
		if (unlikely(!obj || (tid & TID_BUSY)))
			return slab_alloc_slow(s, gfp, c, slot);
		void *next = get_freepointer_safe(s, obj);
		if (likely(cmpxchg16(&c->freelist_tid, ft(obj, tid),
				     ft(next, tid + TID_STEP)))) {
			stat(s, SHEAF_STAT_ALLOC_FASTPATH, slot);
			return obj;
		}
		stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_CPU_FAIL, slot);
	}
}

void _sheaf_cpu_free(struct kmem_cache *s, struct slab *slab, void *obj)
{
	unsigned int slot;
	for (;;) {
		slot = sheaf_slot();
		struct kmem_cache_cpu *c = &s->cpu_slab[slot];
		unsigned long tid = smp_load_acquire(&c->tid);
		if (unlikely((tid & TID_BUSY) || READ_ONCE(c->slab) != slab))
			break;
		void *fl = READ_ONCE(c->freelist);
		if (unlikely(fl == obj))
			_sheaf_report_invalid("kmem_cache_free", "double free of",
					      obj, s, NULL);
		set_freepointer(s, obj, fl);
		if (likely(cmpxchg16(&c->freelist_tid, ft(fl, tid),
				     ft(obj, tid + TID_STEP)))) {
			stat(s, SHEAF_STAT_FREE_FASTPATH, slot);
			return;
		}
		stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_CPU_FAIL, slot);
	}
	stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
	_sheaf_slab_free(s, slab, obj, obj, 1, slot);
}

/* Flush every slot: its frozen slab and freelist go back to the node lists. */
void _sheaf_cpu_flush_all(struct kmem_cache *s)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct kmem_cache_cpu *c = &s->cpu_slab[i];
		void *fl;
		unsigned long tid;
		if (!READ_ONCE(c->slab) && !READ_ONCE(c->freelist))
			continue;
		slot_acquire(c, true, &fl, &tid);
		struct slab *slab = c->slab;
		c->slab = NULL;
		if (slab) {
			stat(s, SHEAF_STAT_CPUSLAB_FLUSH, i);
			_sheaf_unfreeze(s, slab, fl, i);
		}
		slot_release(c, fl, tid, NULL);
	}
}

/* Free objects held by the slots (their freelists and frozen slabs). */
size_t _sheaf_cpu_cached_objects(struct kmem_cache *s)
{
	size_t n = 0;
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct kmem_cache_cpu *c = &s->cpu_slab[i];
		void *fl;
		unsigned long tid;
		if (!READ_ONCE(c->slab))
			continue;
		slot_acquire(c, true, &fl, &tid);
		for (void *o = fl; o; o = get_freepointer(s, o))
			n++;
		struct slab *slab = c->slab;
		if (slab) {
			struct slab t;
			t.counters = READ_ONCE(slab->counters);
			n += t.objects - t.inuse;
		}
		slot_release(c, fl, tid, fl);
	}
	return n;
}

/* Own every slot of s (fork: nothing may hold one across fork()). */
void _sheaf_cpu_lock_all(struct kmem_cache *s)
{
	void *fl;
	unsigned long tid;
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		slot_acquire(&s->cpu_slab[i], true, &fl, &tid);
}

void _sheaf_cpu_unlock_all(struct kmem_cache *s)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct kmem_cache_cpu *c = &s->cpu_slab[i];
		unsigned long tid = READ_ONCE(c->tid) & ~TID_BUSY;
		void *fl = READ_ONCE(c->freelist);
		slot_release(c, fl, tid, fl);
	}
}
