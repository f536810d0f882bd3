/* SPDX-License-Identifier: MIT */
/*
 * test_assert.c - the library's assertions fire (src/compiler.h, the
 * tiers of SHEAF_CHECK_LEVEL).  Each case breaks an invariant on purpose
 * through an internal function, in a forked child, and checks that the
 * child dies of SIGABRT with the assertion's text on stderr:
 *
 *  - cheap tier (SHEAF_ASSERT, level >= 1: builds without NDEBUG): a
 *    sheaf that is not full offered to the barn's full list;
 *  - expensive tier (SHEAF_ASSERT_EXPENSIVE, level >= 2:
 *    -DSHEAF_EXPENSIVE_CHECKS=ON): a full sheaf holding another cache's
 *    objects offered to the barn, and a barn whose full count no longer
 *    matches its list.
 *
 * The level is the library's (_sheaf_check_level()), not this file's
 * compilation's.  A case whose tier is off is skipped; at level 0 (NDEBUG)
 * the whole program skips (77).  Linked with the static library to reach
 * the internal functions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "test_cmocka_util.h"

#define CAP 8

static struct kmem_cache *sheaf_cache(const char *name)
{
	struct kmem_cache_args a;
	memset(&a, 0, sizeof(a));
	a.sheaf_capacity = CAP;
	struct kmem_cache *s = kmem_cache_create(name, 64, &a, 0);
	if (!s || s->hot.sheaf_capacity != CAP) {
		fprintf(stderr, "no sheaf cache\n");
		_exit(3);
	}
	return s;
}

/* A sheaf of s with n objects of `from` (the caller's choice of cache). */
static struct slab_sheaf *sheaf_of(struct kmem_cache *s, struct kmem_cache *from,
				   unsigned int n)
{
	struct slab_sheaf *sheaf = _sheaf_alloc_sheaf(s, GFP_KERNEL, CAP, 0);
	if (!sheaf)
		_exit(4);
	for (unsigned int i = 0; i < n; i++) {
		sheaf->objects[i] = kmem_cache_alloc(from, GFP_KERNEL);
		if (!sheaf->objects[i])
			_exit(5);
	}
	sheaf->size = n;
	return sheaf;
}

/* Cheap: the barn's full list holds sheaves with objects only (filled to
 * the capacity of their time: any size from 1 to the cache's room). */
static void put_empty_sheaf_full(void *arg)
{
	(void)arg;
	struct kmem_cache *s = sheaf_cache("assert-cheap");
	struct slab_sheaf *sheaf = sheaf_of(s, s, 0);
	_sheaf_barn_put_full(sheaf_local_barn(s), sheaf);
}

/* Expensive: a sheaf's objects belong to its cache. */
static void put_foreign_objects(void *arg)
{
	(void)arg;
	struct kmem_cache *s = sheaf_cache("assert-mine");
	struct kmem_cache *other = sheaf_cache("assert-other");
	struct slab_sheaf *sheaf = sheaf_of(s, other, CAP);
	_sheaf_barn_put_full(sheaf_local_barn(s), sheaf);
}

/* Expensive: the barn's counts are its lists' lengths. */
static void corrupt_barn_count(void *arg)
{
	(void)arg;
	struct kmem_cache *s = sheaf_cache("assert-count");
	struct node_barn *barn = sheaf_local_barn(s);
	_sheaf_barn_put_empty(barn, sheaf_of(s, s, 0), true);
	barn->nr_full++; /* a full sheaf that is not there */
	_sheaf_barn_put_empty(barn, sheaf_of(s, s, 0), true);
}

static void test_cheap_tier(void **state)
{
	(void)state;
	if (_sheaf_check_level() < 1)
		skip();
	expect_child_abort(put_empty_sheaf_full,
		     "sheaf: internal invariant broken: "
		     "sheaf->size > 0 && sheaf->size <= sheaf->cache->sheaf_room");
}

static void test_expensive_tier(void **state)
{
	(void)state;
	if (_sheaf_check_level() < 2)
		skip();
	expect_child_abort(put_foreign_objects,
		     "sheaf: internal invariant broken: "
		     "_sheaf_sheaf_objects_of(sheaf->cache, sheaf)");
	expect_child_abort(corrupt_barn_count,
		     "sheaf: internal invariant broken: barn_ok_locked(barn)");
}

/* The same operations on legal states: no assertion fires. */
static void legal_states(void *arg)
{
	(void)arg;
	struct kmem_cache *s = sheaf_cache("assert-legal");
	struct node_barn *barn = sheaf_local_barn(s);
	/* Both filled before either goes in (an allocation may take a barn
	 * sheaf as its slot's main). */
	struct slab_sheaf *a = sheaf_of(s, s, CAP);
	struct slab_sheaf *b = sheaf_of(s, s, CAP - 1); /* full at a lower capacity */
	_sheaf_barn_put_full(barn, a);
	_sheaf_barn_put_full(barn, b);
	_sheaf_barn_put_empty(barn, sheaf_of(s, s, 0), true);
	struct slab_sheaf *full = _sheaf_barn_get_full(barn, true);
	struct slab_sheaf *empty = _sheaf_barn_get_empty(barn, true);
	struct slab_sheaf *full2 = _sheaf_barn_get_full(barn, true);
	if (!full || !full2 || !empty || full->size != CAP - 1 || full2->size != CAP ||
	    empty->size != 0)
		_exit(6);
	_sheaf_discard_sheaf(s, full, 0);
	_sheaf_discard_sheaf(s, full2, 0);
	_sheaf_free_sheaf(s, empty, 0);
	kmem_cache_destroy(s);
}

static void test_legal_states_pass(void **state)
{
	(void)state;
	struct child_result r;
	char how[64];
	run_in_child(legal_states, NULL, &r);
	if (!child_exited_ok(&r))
		fail_msg("child %s, stderr [%s]", child_how(&r, how, sizeof(how)),
			 r.err);
}

int main(void)
{
	if (_sheaf_check_level() < 1)
		return 77; /* NDEBUG: no tier runs */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cheap_tier),
		cmocka_unit_test(test_expensive_tier),
		cmocka_unit_test(test_legal_states_pass),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
