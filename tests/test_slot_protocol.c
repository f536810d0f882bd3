/* SPDX-License-Identifier: MIT */
/*
 * test_slot_protocol.c - who has a sheaf slot, as its count says
 * (<sheaf/rseq.h>, struct sheaf_pcs; docs/PERCPU.md): free (count >= 0,
 * main's objects), held by a thread's slot lock (SHEAF_PCS_TAKEN + n) or
 * frozen by a remote owner (SHEAF_PCS_TAKEN + SHEAF_PCS_FROZEN + n).  The
 * pop and push sections test nothing but the count, so a taken slot must
 * make them bail, and every owner must give main's count back exactly:
 *
 *  - the trylock's encoding, and the sections bailing on the held slot;
 *  - the remote lock's freeze of every slot, main->size, and the unlock;
 *  - fork()'s freeze and thaw, which keep counts in the slots and write
 *    no sheaf header;
 *  - a thread popping and pushing as fast as it can while another owns
 *    every slot over and over (kmem_cache_shrink()): a section that
 *    committed over a freeze must be seen and frozen again, or the flush
 *    and the section both have the same objects.
 *
 * Linked statically to reach the slots.  The section parts need rseq mode
 * and skip themselves in fallback mode; CTest runs it in both.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static struct kmem_cache *new_cache(const char *name)
{
	struct kmem_cache_args a = { .sheaf_capacity = 16 };
	struct kmem_cache *s = kmem_cache_create(name, 64, &a, 0);
	assert_non_null(s);
	assert_true(cache_has_sheaves(s));
	return s;
}

/* Fill the calling thread's slot with a few objects; returns how many. */
static unsigned int fill(struct kmem_cache *s, void **p, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	for (unsigned int i = 0; i < n / 2; i++)
		kmem_cache_free(s, p[i]);
	return n / 2;
}

#ifdef SHEAF_HAVE_RSEQ_ASM
static void test_trylock_encoding(void **state)
{
	(void)state;
	if (!_sheaf_rseq_mode)
		skip();
	struct kmem_cache *s = new_cache("slot-try");
	void *p[12];
	fill(s, p, 12);
	unsigned int done = 0;
	for (int tries = 0; tries < 1000 && !done; tries++) {
		unsigned int slot;
		struct sheaf_pcs *pcs = sheaf_pcs_trylock(s, &slot);
		if (!pcs)
			continue;
		unsigned int n = pcs->main->size;
		assert_int_equal(pcs->count, SHEAF_PCS_TAKEN + n);
		assert_false(sheaf_pcs_count_frozen(pcs->count));
		assert_int_equal(pcs->lock, 0); /* rseq mode never sets it */
		/* the sections bail on it while the thread is still on it */
		void *obj = NULL;
		bool popped = false, pushed = false;
		unsigned int before = sheaf_slot();
		if (before == slot) {
			popped = sheaf_pcs_pop_inline(s->hot.pcs, &obj);
			if (popped)
				pushed = sheaf_pcs_push_inline(s->hot.pcs, obj);
		}
		unsigned int again = 0;
		struct sheaf_pcs *twice = sheaf_pcs_trylock(s, &again);
		bool same = before == slot && sheaf_slot() == slot;
		sheaf_pcs_unlock(pcs);
		if (twice)
			sheaf_pcs_unlock(twice);
		if (!same)
			continue; /* migrated meanwhile: try again */
		assert_false(popped);
		assert_false(pushed);
		assert_true(!twice || again != slot);
		assert_int_equal(pcs->count, n);
		done = 1;
	}
	assert_true(done);
	for (unsigned int i = 6; i < 12; i++)
		kmem_cache_free(s, p[i]);
	kmem_cache_destroy(s);
}
#else
static void test_trylock_encoding(void **state)
{
	(void)state;
	skip();
}
#endif

static void test_remote_freeze(void **state)
{
	(void)state;
	struct kmem_cache *s = new_cache("slot-remote");
	void *p[12];
	fill(s, p, 12);
	uint32_t before[SHEAF_MAX_SLOTS];
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		before[i] = s->hot.pcs[i].count;
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	_sheaf_pcs_remote_lock_all(s);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		struct sheaf_pcs *pcs = &s->hot.pcs[i];
		assert_true(sheaf_pcs_count_frozen(pcs->count));
		assert_int_equal(pcs->count - SHEAF_PCS_TAKEN - SHEAF_PCS_FROZEN,
				 before[i]);
		assert_int_equal(pcs->main->size, before[i]);
		assert_int_equal(pcs->stop, 1);
	}
#ifdef SHEAF_HAVE_RSEQ_ASM
	if (_sheaf_rseq_mode) {
		/* whatever slot the thread is on, nothing gets through */
		void *obj;
		unsigned int slot;
		assert_false(sheaf_pcs_pop_inline(s->hot.pcs, &obj));
		assert_false(sheaf_pcs_push_inline(s->hot.pcs, p[6]));
		assert_int_equal(sheaf_rseq_trylock(s->hot.pcs, &slot), SHEAF_RSEQ_BAIL);
	}
#endif
	/* the owner's changes are what the slots get back */
	struct sheaf_pcs *pcs0 = &s->hot.pcs[0];
	unsigned int n0 = pcs0->main->size;
	if (n0)
		pcs0->main->size = n0 - 1; /* one object taken by the owner */
	void *taken = n0 ? pcs0->main->objects[n0 - 1] : NULL;
	_sheaf_pcs_remote_unlock_all(s);
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
	assert_int_equal(pcs0->count, n0 ? n0 - 1 : 0);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		assert_false((int32_t)s->hot.pcs[i].count < 0);
		assert_int_equal(s->hot.pcs[i].stop, 0);
	}
	if (taken)
		kmem_cache_free(s, taken);
	for (unsigned int i = 6; i < 12; i++)
		kmem_cache_free(s, p[i]);
	kmem_cache_shrink(s);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/* fork()'s parts: stop and freeze, fence, settle; thaw: counts kept. */
static void test_fork_freeze(void **state)
{
	(void)state;
	struct kmem_cache *s = new_cache("slot-fork");
	void *p[12];
	fill(s, p, 12);
	uint32_t before[SHEAF_MAX_SLOTS], sizes[SHEAF_MAX_SLOTS];
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		before[i] = s->hot.pcs[i].count;
		sizes[i] = s->hot.pcs[i].main->size;
	}
	_sheaf_pcs_fork_stop(s);
	if (_sheaf_rseq_mode)
		_sheaf_rseq_fence();
	_sheaf_pcs_fork_hold(s);
	while (!_sheaf_pcs_fork_settle(s))
		if (_sheaf_rseq_mode)
			_sheaf_rseq_fence();
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		assert_true(sheaf_pcs_count_frozen(s->hot.pcs[i].count));
		/* no sheaf header written */
		assert_int_equal(s->hot.pcs[i].main->size, sizes[i]);
	}
	/* the child's release (lock bytes cleared first), then the counts
	 * the slots had (a real fork(): tests/test_fork.c) */
	_sheaf_pcs_unlock_all(s, true);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		assert_int_equal(s->hot.pcs[i].count, before[i]);
		assert_int_equal(s->hot.pcs[i].stop, 0);
	}
	for (unsigned int i = 6; i < 12; i++)
		kmem_cache_free(s, p[i]);
	kmem_cache_destroy(s);
}

/*
 * Sections against freezes: one thread allocates and frees in bursts on
 * its slot's sheaves, the other flushes every slot (the remote lock) as
 * fast as it can.  Every object must stay accounted for: the worker's
 * live objects are exactly the slab layer's objects in use at the end,
 * and no object is handed out twice meanwhile.
 */
#define RACE_LIVE 24
static struct kmem_cache *race_cache;
static volatile int race_stop;

static void *race_worker(void *arg)
{
	(void)arg;
	void *live[RACE_LIVE] = { 0 };
	unsigned long rounds = 0;
	while (!race_stop || rounds < 1000) {
		for (int i = 0; i < RACE_LIVE; i++) {
			void *o = kmem_cache_alloc(race_cache, GFP_KERNEL);
			if (!o)
				return (void *)1;
			/* an object handed out twice would have a mark */
			if (*(volatile uintptr_t *)o == 0x5eaf)
				return (void *)2;
			*(volatile uintptr_t *)o = 0x5eaf;
			live[i] = o;
		}
		for (int i = RACE_LIVE - 1; i >= 0; i--) {
			*(volatile uintptr_t *)live[i] = 0;
			kmem_cache_free(race_cache, live[i]);
		}
		rounds++;
	}
	return NULL;
}

static void test_sections_race_freezes(void **state)
{
	(void)state;
	race_cache = new_cache("slot-race");
	race_stop = 0;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, race_worker, NULL), 0);
	for (int i = 0; i < 3000; i++)
		kmem_cache_shrink(race_cache);
	race_stop = 1;
	void *ret;
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	kmem_cache_shrink(race_cache);
	assert_int_equal(sheaf_cache_objects_inuse(race_cache), 0);
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		assert_false((int32_t)race_cache->hot.pcs[i].count < 0);
	kmem_cache_destroy(race_cache);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trylock_encoding),
		cmocka_unit_test(test_remote_freeze),
		cmocka_unit_test(test_fork_freeze),
		cmocka_unit_test(test_sections_race_freezes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
