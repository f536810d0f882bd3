/* SPDX-License-Identifier: MIT */
/*
 * test_adapt.c - adaptive sheaf capacity (src/pcs_adapt.c): a cache whose
 * slots go to the barn and the slabs fast grows its capacity, and its barn
 * limit when the barn overflows, within its maximum and the process's
 * budget; misses that come slowly grow nothing; quiet looks of the idle
 * thread step it back down, a shrink puts it back to its base; objects
 * and lent sheaves stay right across every change.
 *
 * CTest entries (every one SHEAF_IDLE_MS=0: the looks are
 * sheaf_test_idle_pass() calls):
 *   test_adapt          the default: SHEAF_ADAPTIVE on, factor 4
 *   test_adapt_fixed    SHEAF_ADAPTIVE=0: nothing moves (the kernel's)
 *   test_adapt_budget0  SHEAF_ADAPTIVE_BUDGET_MB=0: no room to grow
 *   test_adapt_fallback SHEAF_PERCPU=fallback, SHEAF_ADAPTIVE_MAX=2
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include "test_util.h"
#include "test_cmocka_util.h"

#define BASE 16
#define ROUND 2000

/* What this run's environment says the policy may do. */
static bool may_grow(void)
{
	const char *a = getenv("SHEAF_ADAPTIVE");
	const char *b = getenv("SHEAF_ADAPTIVE_BUDGET_MB");
	return !(a && !strcmp(a, "0")) && !(b && !strcmp(b, "0"));
}

/* SHEAF_ADAPTIVE_MAX, as the library reads it (default 4). */
static unsigned int factor(void)
{
	const char *f = getenv("SHEAF_ADAPTIVE_MAX");
	return f ? (unsigned int)atoi(f) : 4;
}

static bool adaptive_env(void)
{
	const char *a = getenv("SHEAF_ADAPTIVE");
	return !(a && !strcmp(a, "0"));
}

static struct kmem_cache *mk(const char *name, unsigned int size)
{
	struct kmem_cache_args a = { .sheaf_capacity = BASE };
	struct kmem_cache *s = kmem_cache_create(name, size, &a, 0);
	assert_non_null(s);
	return s;
}

static struct sheaf_cache_limits limits(struct kmem_cache *s)
{
	struct sheaf_cache_limits l;
	assert_int_equal(sheaf_cache_limits(s, &l), 0);
	assert_true(l.capacity_base <= l.capacity && l.capacity <= l.capacity_max);
	assert_true(l.capacity_max <= SHEAF_MAX_CAPACITY);
	assert_true(l.barn_limit >= 10 && l.barn_limit <= 40);
	assert_int_equal(l.capacity, sheaf_cache_capacity(s));
	return l;
}

/* Allocate n, free them all: with n far above the capacity, every sheaf
 * boundary is a trip to the barn or the slabs (a miss). */
static void round_trip(struct kmem_cache *s, unsigned int n)
{
	void **v = malloc(n * sizeof(*v));
	assert_non_null(v);
	for (unsigned int i = 0; i < n; i++) {
		v[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(v[i]);
		*(volatile char *)v[i] = (char)i;
	}
	for (unsigned int i = 0; i < n; i++)
		kmem_cache_free(s, v[i]);
	free(v);
}

static uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Rounds of n for ms milliseconds. */
static void rounds_of(struct kmem_cache *s, unsigned int n, unsigned int ms)
{
	uint64_t end = mono_ms() + ms;
	do
		round_trip(s, n);
	while (mono_ms() < end);
}

static void rounds(struct kmem_cache *s, unsigned int ms)
{
	rounds_of(s, ROUND, ms);
}

/* What a load runs until. */
enum goal { G_MAX, G_GROWN, G_BARN };

static bool reached(struct kmem_cache *s, enum goal g)
{
	struct sheaf_cache_limits l;
	assert_int_equal(sheaf_cache_limits(s, &l), 0);
	return g == G_MAX ? l.capacity == l.capacity_max
	     : g == G_GROWN ? l.capacity > l.capacity_base : l.barn_limit > 10;
}

/*
 * Rounds of n until the goal is reached, for at most ms (a bound for slow
 * builds, sanitizers, whose windows may take longer than 16 ms).  When
 * this run's policy may not grow, 100 ms of the load: a growth would have
 * come in its first windows.
 */
static void rounds_to(struct kmem_cache *s, unsigned int n, enum goal g, unsigned int ms)
{
	if (!may_grow()) {
		rounds_of(s, n, 100);
		return;
	}
	uint64_t end = mono_ms() + ms;
	do
		round_trip(s, n);
	while (!reached(s, g) && mono_ms() < end);
}

/* Look (the idle thread's pass) after a pause: a rate of 0 misses. */
static void quiet_look(void)
{
	struct timespec t = { 0, 20 * 1000000L };
	nanosleep(&t, NULL);
	sheaf_test_idle_pass();
}

/* After a load: grown if this run's policy may grow, every object back,
 * and the cache gone. */
static void check_grown_and_destroy(struct kmem_cache *s)
{
	if (may_grow())
		assert_true(limits(s).capacity > BASE);
	else
		assert_int_equal(limits(s).capacity, BASE);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/* Pin this thread to the CPU it is on (one slot for its caches): false if
 * it cannot; *old gets the mask to give back to unpin(). */
static bool pin_here(cpu_set_t *old)
{
	cpu_set_t one;
	if (sched_getaffinity(0, sizeof(*old), old) != 0)
		return false;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	return sched_setaffinity(0, sizeof(one), &one) == 0;
}

static void unpin(bool pinned, const cpu_set_t *old)
{
	if (pinned)
		sched_setaffinity(0, sizeof(*old), old);
}

/* ------------------------------------------------------------ the tests */

static void test_limits_api(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("adapt-api", 64);
	struct sheaf_cache_limits l = limits(s);
	assert_int_equal(l.capacity, BASE);
	assert_int_equal(l.capacity_base, BASE);
	assert_int_equal(l.barn_limit, 10);
	assert_int_equal(l.adaptive, adaptive_env());
	assert_int_equal(l.capacity_max, adaptive_env() ? factor() * BASE : BASE);
	kmem_cache_destroy(s);

	/* A base below 16 counts as 16 for the ceiling (objects of a page
	 * and more get 4 from the kernel's table: 16 a sheaf at most was
	 * too few); the floor and the capacity in force stay the base. */
	struct kmem_cache_args small = { .sheaf_capacity = 4 };
	s = kmem_cache_create("adapt-small", 4096, &small, 0);
	assert_non_null(s);
	l = limits(s);
	assert_int_equal(l.capacity, 4);
	assert_int_equal(l.capacity_base, 4);
	assert_int_equal(l.capacity_max, adaptive_env() ? factor() * 16 : 4);
	assert_int_equal(sheaf_cache_limits(NULL, &l), -EINVAL);
	assert_int_equal(sheaf_cache_limits(s, NULL), -EINVAL);
	kmem_cache_destroy(s);

	/* Without sheaves: zeros, not adaptive. */
	struct kmem_cache_args none = { .sheaf_capacity = 0 };
	s = kmem_cache_create("adapt-classic", 64, &none, 0);
	assert_non_null(s);
	l = (struct sheaf_cache_limits){ 1, 1, 1, 1, true };
	assert_int_equal(sheaf_cache_limits(s, &l), 0);
	assert_int_equal(l.capacity + l.capacity_base + l.capacity_max + l.barn_limit, 0);
	assert_false(l.adaptive);
	kmem_cache_destroy(s);
}

/* Fast misses grow the capacity, one counted step at a time, up to the
 * maximum and never past it; the cache stays right meanwhile. */
static void test_grows_to_max(void **state)
{
	(void)state;
	sheaf_stats_enable(true);
	struct kmem_cache *s = mk("adapt-grow", 64);
	rounds_to(s, ROUND, G_MAX, 3000);
	struct sheaf_cache_limits l = limits(s);
	uint64_t grows = sheaf_stats_get(s, SHEAF_STAT_CAPACITY_GROW);
	if (may_grow()) {
		/* 16 -> 24 -> 36 -> 54 -> 64: four steps (factor 4) */
		assert_int_equal(l.capacity, l.capacity_max);
		assert_true(grows >= 2);
	} else {
		assert_int_equal(l.capacity, BASE);
		assert_int_equal(grows, 0);
	}
	rounds(s, 20);
	assert_true(limits(s).capacity <= l.capacity_max);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	/* What the sheaves and barn hold stays under the level's bound. */
	l = limits(s);
	size_t bound = ((size_t)sheaf_nr_slots() * 3 + l.barn_limit) * l.capacity;
	assert_true(sheaf_cache_cached_objects(s) <= bound);
	sheaf_stats_enable(false);
	kmem_cache_destroy(s);
}

/*
 * Growth follows misses, not time: every window of 64 fast misses that ran
 * wholly at the cache's level steps it once, with no pause between steps.
 * On one CPU, rounds of ROUND objects (some 250 misses each at the base)
 * climb from the base to the ceiling in a handful of rounds, one counted
 * step a level.  Until session 23 steps were also 16 ms apart: these
 * rounds, a few ms in all, made one step.  40 rounds (well over 100
 * windows) leave room for windows a preempted or sanitized run makes slow.
 */
static void test_climbs_in_windows(void **state)
{
	(void)state;
	cpu_set_t old;
	bool pinned = pin_here(&old);
	sheaf_stats_enable(true);
	struct kmem_cache *s = mk("adapt-climb", 64);
	unsigned int n = 0;
	while (n < 40 && !reached(s, G_MAX)) {
		round_trip(s, ROUND);
		n++;
	}
	struct sheaf_cache_limits l = limits(s);
	uint64_t grows = sheaf_stats_get(s, SHEAF_STAT_CAPACITY_GROW);
	if (may_grow()) {
		/* The steps from the base to the ceiling, times 1.5 each. */
		unsigned int steps = 0;
		for (unsigned int c = BASE; c < l.capacity_max; steps++)
			c = c + c / 2 < l.capacity_max ? c + c / 2 : l.capacity_max;
		assert_int_equal(l.capacity, l.capacity_max);
		assert_int_equal(grows, steps);
	} else {
		assert_int_equal(l.capacity, BASE);
		assert_int_equal(grows, 0);
	}
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	sheaf_stats_enable(false);
	kmem_cache_destroy(s);
	unpin(pinned, &old);
}

/* The same misses spread out in time (64 of them over far more than the
 * 16 ms window) grow nothing: the rate, not the count, is the signal. */
static void test_slow_misses_do_not_grow(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("adapt-slow", 64);
	struct timespec t = { 0, 2 * 1000000L };
	for (unsigned int i = 0; i < 100; i++) {
		round_trip(s, 3 * BASE); /* a few misses */
		nanosleep(&t, NULL);
	}
	assert_int_equal(limits(s).capacity, BASE);
	kmem_cache_destroy(s);
}

/* The slots' trips to the barn so far (statistics on). */
static uint64_t barn_trips(struct kmem_cache *s)
{
	return sheaf_stats_get(s, SHEAF_STAT_BARN_GET) +
	       sheaf_stats_get(s, SHEAF_STAT_BARN_GET_FAIL) +
	       sheaf_stats_get(s, SHEAF_STAT_BARN_PUT) +
	       sheaf_stats_get(s, SHEAF_STAT_BARN_PUT_FAIL);
}

/*
 * Swaps of main and spare are misses too.  Rounds of 1.5 x BASE objects
 * on one CPU fit a slot's main and spare: after the first round they go
 * to neither the barn nor the slabs, yet every round swaps the sheaves
 * twice, and each swap leaves the inline paths for the slow one.  That
 * grows the cache (before the swap counted, it stayed at BASE: libsheaf
 * malloc's `mixed` paid a swap a size class a batch).
 */
static void test_spare_swaps_grow(void **state)
{
	(void)state;
	cpu_set_t old;
	bool pinned = pin_here(&old);
	sheaf_stats_enable(true);
	struct kmem_cache *s = mk("adapt-swap", 64);
	round_trip(s, BASE + BASE / 2); /* the slot's sheaves filled */
	uint64_t trips0 = barn_trips(s);
	rounds_to(s, BASE + BASE / 2, G_GROWN, 3000);
	uint64_t trips = barn_trips(s) - trips0;
	/* On one slot the load never needed the barn: fewer trips than a
	 * window's 64, so whatever grew came from the swaps. */
	if (pinned)
		assert_true(trips < 64);
	check_grown_and_destroy(s);
	sheaf_stats_enable(false);
	unpin(pinned, &old);
}

struct worker { struct kmem_cache *s; };

static void *work(void *arg)
{
	struct worker *w = arg;
	rounds_to(w->s, ROUND, G_GROWN, 3000);
	return NULL;
}

/* Two threads at once (contention for the barn): it grows, and no object
 * is lost or doubled while the level changes under them. */
static void test_grows_under_contention(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("adapt-two", 256);
	struct worker w = { s };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, work, &w), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	check_grown_and_destroy(s);
}

/* Frees that overflow the barn (put failures: sheaves flushed to slabs)
 * raise the barn limit as well. */
static void test_barn_limit_grows(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("adapt-barn", 64);
	/* 20000 objects: many more full sheaves than the barn keeps. */
	rounds_to(s, 20000, G_BARN, 3000);
	struct sheaf_cache_limits l = limits(s);
	if (may_grow())
		assert_true(l.barn_limit > 10);
	else
		assert_int_equal(l.barn_limit, 10);
	kmem_cache_destroy(s);
}

/* Quiet looks step it down to the base, two looks a step; a shrink puts
 * it back at once. */
static void test_shrinks_when_quiet(void **state)
{
	(void)state;
	sheaf_stats_enable(true);
	struct kmem_cache *s = mk("adapt-quiet", 64);
	sheaf_test_idle_pass(); /* a first look: its time */
	rounds_to(s, ROUND, G_MAX, 3000);
	struct sheaf_cache_limits l = limits(s);
	if (!may_grow()) {
		assert_int_equal(l.capacity, BASE);
		kmem_cache_destroy(s);
		sheaf_stats_enable(false);
		return;
	}
	assert_true(l.capacity > BASE);
	sheaf_test_idle_pass(); /* the look that sees the rounds: busy */
	assert_int_equal(limits(s).capacity, l.capacity);
	/* Then a step down every second quiet look, never up, to the base. */
	unsigned int prev = l.capacity, prev_barn = l.barn_limit, since = 0, steps = 0;
	while (prev > BASE || prev_barn > 10) {
		quiet_look();
		since++;
		struct sheaf_cache_limits n = limits(s);
		assert_true(n.capacity <= prev && n.barn_limit <= prev_barn);
		if (n.capacity != prev || n.barn_limit != prev_barn) {
			assert_int_equal(since, 2);
			since = 0;
			steps++;
		}
		assert_true(since < 2);
		prev = n.capacity;
		prev_barn = n.barn_limit;
		assert_true(steps <= 10);
	}
	assert_true(steps >= 2);
	assert_true(sheaf_stats_get(s, SHEAF_STAT_CAPACITY_SHRINK) >= steps);

	/* Grown again, then kmem_cache_shrink(): the base at once. */
	rounds_to(s, ROUND, G_GROWN, 3000);
	assert_true(limits(s).capacity > BASE);
	kmem_cache_shrink(s);
	l = limits(s);
	assert_int_equal(l.capacity, BASE);
	assert_int_equal(l.barn_limit, 10);
	sheaf_stats_enable(false);
	kmem_cache_destroy(s);
}

/* A look at a busy cache (misses above the shrink rate) keeps its level. */
static void test_busy_cache_kept(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("adapt-busy", 64);
	sheaf_test_idle_pass();
	rounds_to(s, ROUND, G_MAX, 3000);
	unsigned int cap = limits(s).capacity;
	for (int i = 0; i < 4; i++) {
		rounds(s, 30); /* thousands of misses between looks */
		sheaf_test_idle_pass();
	}
	assert_true(limits(s).capacity >= cap);
	kmem_cache_destroy(s);
}

/* Prefilled sheaves across level changes: a request up to the capacity of
 * now is a regular sheaf; one lent at a large capacity comes back after a
 * shrink to the base and is used again. */
static void test_prefill_across_levels(void **state)
{
	(void)state;
	sheaf_stats_enable(true);
	struct kmem_cache *s = mk("adapt-prefill", 64);
	rounds_to(s, ROUND, G_MAX, 3000);
	unsigned int cap = limits(s).capacity;
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, cap);
	assert_non_null(sh);
	assert_true(kmem_cache_sheaf_size(sh) >= cap);
	assert_int_equal(sheaf_stats_get(s, SHEAF_STAT_SHEAF_PREFILL_OVERSIZE), 0);
	void *a = kmem_cache_alloc_from_sheaf(s, GFP_KERNEL, sh);
	assert_non_null(a);
	kmem_cache_shrink(s); /* the base again while sh is out */
	assert_int_equal(limits(s).capacity, BASE);
	/* Refill to a size the lent sheaf holds: to its own capacity. */
	assert_int_equal(kmem_cache_refill_sheaf(s, GFP_KERNEL, &sh, cap), 0);
	assert_true(kmem_cache_sheaf_size(sh) >= cap);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	kmem_cache_free(s, a);
	rounds(s, 50);
	/* Above the capacity of now: oversize. */
	sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, BASE + 1);
	assert_non_null(sh);
	assert_int_equal(sheaf_stats_get(s, SHEAF_STAT_SHEAF_PREFILL_OVERSIZE),
			 may_grow() && limits(s).capacity > BASE ? 0 : 1);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	sheaf_stats_enable(false);
	kmem_cache_destroy(s);
}

struct rnode { long v; struct rcu_head rcu; };

/* kfree_rcu() filling sheaves fast counts too: the RCU sheaves grow. */
static void test_rcu_grows(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("adapt-rcu", sizeof(struct rnode));
	for (unsigned int i = 0; i < 200000; i++) {
		struct rnode *n = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(n);
		n->v = i;
		kfree_rcu(n, rcu);
	}
	kvfree_rcu_barrier();
	check_grown_and_destroy(s);
}

/* Destroying a grown cache gives its budget back: a new cache of the same
 * shape grows as far again. */
static void test_destroy_returns_budget(void **state)
{
	(void)state;
	for (int k = 0; k < 3; k++) {
		struct kmem_cache *s = mk("adapt-again", 1024);
		rounds_to(s, ROUND, G_MAX, 3000);
		unsigned int cap = limits(s).capacity;
		if (may_grow())
			assert_int_equal(cap, factor() * BASE);
		kmem_cache_destroy(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits_api),
		cmocka_unit_test(test_grows_to_max),
		cmocka_unit_test(test_climbs_in_windows),
		cmocka_unit_test(test_slow_misses_do_not_grow),
		cmocka_unit_test(test_spare_swaps_grow),
		cmocka_unit_test(test_grows_under_contention),
		cmocka_unit_test(test_barn_limit_grows),
		cmocka_unit_test(test_shrinks_when_quiet),
		cmocka_unit_test(test_busy_cache_kept),
		cmocka_unit_test(test_prefill_across_levels),
		cmocka_unit_test(test_rcu_grows),
		cmocka_unit_test(test_destroy_returns_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
