/*
 * test_rtree.c - the RCU range tree (lib/rtree) against a reference model
 * (random operations checked against a sorted array), in its three node
 * allocation kinds, and with concurrent lockless readers.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rtree.h"
#include "test_util.h"

#define SPACE (1ull << 22)
#define MAXE 100000

struct ment { uint64_t s, e; };
static struct ment model[MAXE];
static size_t nmodel;

static void *val_of(uint64_t s, uint64_t e)
{
	return (void *)(uintptr_t)((s * 31) ^ e ^ 0x5eaf);
}

static size_t model_pos(uint64_t s)
{
	size_t lo = 0, hi = nmodel;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (model[mid].s < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool model_overlaps(uint64_t s, uint64_t e)
{
	size_t i = model_pos(s);
	if (i < nmodel && model[i].s < e)
		return true;
	if (i > 0 && model[i - 1].e > s)
		return true;
	return false;
}

static bool model_find(uint64_t a, struct ment *out)
{
	size_t i = model_pos(a + 1);
	if (i == 0)
		return false;
	if (model[i - 1].s <= a && a < model[i - 1].e) {
		*out = model[i - 1];
		return true;
	}
	return false;
}

static bool model_gap(uint64_t size, uint64_t lo, uint64_t hi, uint64_t *g)
{
	uint64_t prev = lo;
	for (size_t i = 0; i < nmodel; i++) {
		if (model[i].e <= prev)
			continue;
		uint64_t s = model[i].s < hi ? model[i].s : hi;
		if (s > prev && s - prev >= size) {
			*g = prev;
			return true;
		}
		prev = model[i].e;
		if (prev >= hi)
			return false;
	}
	if (prev < hi && hi - prev >= size) {
		*g = prev;
		return true;
	}
	return false;
}

struct cmp_state { size_t i; bool ok; };

static bool cmp_fn(const struct rtree_entry *e, void *arg)
{
	struct cmp_state *c = arg;
	if (c->i >= nmodel || model[c->i].s != e->start || model[c->i].e != e->end ||
	    e->val != val_of(e->start, e->end))
		c->ok = false;
	c->i++;
	return c->ok;
}

static void check_all(struct rtree *t)
{
	struct cmp_state c = { 0, true };
	rcu_read_lock();
	size_t n = rtree_iterate(t, cmp_fn, &c);
	rcu_read_unlock();
	assert_true(c.ok);
	assert_int_equal(n, nmodel);
	assert_int_equal(t->count, nmodel);
}

static void model_run(enum rtree_kind kind, uint64_t seed, int ops)
{
	struct kmem_cache_args a = { .sheaf_capacity = kind == RTREE_SHEAVES ? 32 : 0 };
	struct kmem_cache *cache = kind == RTREE_MALLOC ? NULL :
		kmem_cache_create("rtree-node", sizeof(struct rtree_node), &a, 0);
	struct rtree t;
	assert_int_equal(rtree_init(&t, kind, cache), 0);
	nmodel = 0;
	uint64_t rng = seed;
	for (int op = 0; op < ops; op++) {
		unsigned int what = (unsigned int)rng_below(&rng, 100);
		if (what < 45) {                         /* insert */
			uint64_t s = rng_below(&rng, SPACE);
			uint64_t e = s + 1 + rng_below(&rng, 4096);
			int want = model_overlaps(s, e) ? -EEXIST : 0;
			assert_int_equal(rtree_insert(&t, s, e, val_of(s, e)), want);
			if (!want) {
				size_t i = model_pos(s);
				memmove(&model[i + 1], &model[i], (nmodel - i) * sizeof(model[0]));
				model[i] = (struct ment){ s, e };
				nmodel++;
			}
		} else if (what < 75) {                  /* remove */
			if (nmodel && rng_below(&rng, 4)) {
				size_t i = rng_below(&rng, nmodel);
				assert_int_equal(rtree_remove(&t, model[i].s, model[i].e), 0);
				memmove(&model[i], &model[i + 1], (nmodel - i - 1) * sizeof(model[0]));
				nmodel--;
			} else {
				uint64_t s = rng_below(&rng, SPACE);
				struct ment m;
				bool exact = model_find(s, &m) && m.s == s;
				if (!exact)
					assert_int_equal(rtree_remove(&t, s, s + 7), -ENOENT);
			}
		} else if (what < 95) {                  /* find, find_after */
			uint64_t a0 = rng_below(&rng, SPACE);
			struct ment m;
			struct rtree_entry e;
			rcu_read_lock();
			bool got = rtree_find(&t, a0, &e);
			bool after = rtree_find_after(&t, a0, &e);
			struct rtree_entry ea = e;
			got = rtree_find(&t, a0, &e);
			rcu_read_unlock();
			bool want = model_find(a0, &m);
			assert_int_equal(got, want);
			if (want) {
				assert_int_equal(e.start, m.s);
				assert_int_equal(e.end, m.e);
				assert_ptr_equal(e.val, val_of(m.s, m.e));
			}
			size_t i = model_pos(a0);
			assert_int_equal(after, i < nmodel);
			if (after)
				assert_int_equal(ea.start, model[i].s);
		} else {                                 /* find_gap */
			uint64_t size = 1 + rng_below(&rng, 1 << 14);
			uint64_t lo = rng_below(&rng, SPACE), hi = lo + rng_below(&rng, SPACE);
			uint64_t g1 = 0, g2 = 0;
			rcu_read_lock();
			bool r1 = rtree_find_gap(&t, size, lo, hi, &g1);
			rcu_read_unlock();
			bool r2 = model_gap(size, lo, hi, &g2);
			assert_int_equal(r1, r2);
			if (r1)
				assert_int_equal(g1, g2);
		}
		if (op % 1000 == 0)
			check_all(&t);
	}
	check_all(&t);
	print_message("kind %d: %zu entries, height %u after %d operations\n",
		      kind, nmodel, t.height, ops);
	/* Everything out: the tree shrinks back to an empty leaf. */
	while (nmodel) {
		nmodel--;
		assert_int_equal(rtree_remove(&t, model[nmodel].s, model[nmodel].e), 0);
	}
	assert_int_equal(t.height, 1);
	check_all(&t);
	/* kfree_rcu'd nodes (sheaves) and call_rcu'd ones (bulk, malloc) */
	kvfree_rcu_barrier();
	rcu_barrier();
	rtree_destroy(&t);
	if (cache) {
		assert_int_equal(sheaf_cache_objects_inuse(cache), 0);
		kmem_cache_destroy(cache);
	}
}

static void test_model_sheaves(void **state) { model_run(RTREE_SHEAVES, 1, 60000); }
static void test_model_bulk(void **state) { model_run(RTREE_BULK, 2, 30000); }
static void test_model_malloc(void **state) { model_run(RTREE_MALLOC, 3, 30000); }

/* ------------------------------------------------- concurrent readers */

static struct rtree ct;
static atomic_bool cstop;
static atomic_ulong creads, cbad;

static bool sorted_fn(const struct rtree_entry *e, void *arg)
{
	uint64_t *prev = arg;
	if (e->start < *prev || e->end <= e->start || e->val != val_of(e->start, e->end))
		atomic_fetch_add(&cbad, 1);
	*prev = e->end;
	return true;
}

static void *creader(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 977 + 5;
	rcu_register_thread();
	while (!atomic_load(&cstop)) {
		uint64_t a0 = rng_below(&rng, SPACE);
		struct rtree_entry e;
		rcu_read_lock();
		if (rtree_find(&ct, a0, &e) &&
		    (e.start > a0 || a0 >= e.end || e.val != val_of(e.start, e.end)))
			atomic_fetch_add(&cbad, 1);
		if (rng_below(&rng, 64) == 0) {
			uint64_t prev = 0;
			rtree_iterate(&ct, sorted_fn, &prev);
		}
		rcu_read_unlock();
		atomic_fetch_add(&creads, 1);
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct kmem_cache_args a = { .sheaf_capacity = 32 };
	struct kmem_cache *cache = kmem_cache_create("rtree-conc", sizeof(struct rtree_node),
						     &a, 0);
	assert_int_equal(rtree_init(&ct, RTREE_SHEAVES, cache), 0);
	pthread_t r[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&r[i], NULL, creader, (void *)(uintptr_t)(i + 1));
	uint64_t rng = 99;
	struct ment *live = calloc(MAXE, sizeof(*live));
	size_t nlive = 0;
	for (int op = 0; op < 200000; op++) {
		if (nlive < 3000 && (nlive == 0 || rng_below(&rng, 2))) {
			uint64_t s = rng_below(&rng, SPACE), e = s + 1 + rng_below(&rng, 2048);
			if (rtree_insert(&ct, s, e, val_of(s, e)) == 0)
				live[nlive++] = (struct ment){ s, e };
		} else {
			size_t i = rng_below(&rng, nlive);
			assert_int_equal(rtree_remove(&ct, live[i].s, live[i].e), 0);
			live[i] = live[--nlive];
		}
	}
	atomic_store(&cstop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(r[i], NULL);
	print_message("%lu concurrent reads, %zu entries left\n", atomic_load(&creads), nlive);
	assert_int_equal(atomic_load(&cbad), 0);
	assert_true(atomic_load(&creads) > 0);
	for (size_t i = 0; i < nlive; i++)
		assert_int_equal(rtree_remove(&ct, live[i].s, live[i].e), 0);
	free(live);
	kvfree_rcu_barrier();
	rtree_destroy(&ct);
	assert_int_equal(sheaf_cache_objects_inuse(cache), 0);
	kmem_cache_destroy(cache);
}

int main(void)
{
	rcu_register_thread();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_sheaves),
		cmocka_unit_test(test_model_bulk),
		cmocka_unit_test(test_model_malloc),
		cmocka_unit_test(test_concurrent_readers),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return r;
}
