/* SPDX-License-Identifier: MIT */
/*
 * test_idle.c - the idle drain (src/pcs.c "Idle drain", slab_common.c's
 * idle thread): slots and barns that no slow path used for two looks in a
 * row are flushed without any call from the program; a slot in use is
 * left alone; objects freed on the fast path into a drained slot go at
 * the next round; kfree_nolock()'s deferred frees are done by the drain.
 *
 * Two CTest entries run this program:
 *   test_idle         SHEAF_IDLE_MS=0: no thread; the looks are
 *                     sheaf_test_idle_pass() calls, one at a time.
 *   test_idle_thread  SHEAF_IDLE_MS=100: the thread alone, after a burst
 *                     of several threads, and in a fork()ed child.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/slab.h>

#include "test_util.h"
#include "test_cmocka_util.h"

#define CAP 32
#define BURST 5000

static struct kmem_cache *mk(const char *name)
{
	struct kmem_cache_args a = { .sheaf_capacity = CAP };
	struct kmem_cache *s = kmem_cache_create(name, 64, &a, 0);
	assert_non_null(s);
	return s;
}

/* Allocate n objects and free them all: sheaves and the barn fill up. */
static void burst(struct kmem_cache *s, unsigned int n)
{
	void **v = malloc(n * sizeof(*v));
	assert_non_null(v);
	for (unsigned int i = 0; i < n; i++) {
		v[i] = kmem_cache_alloc(s, GFP_KERNEL);
		assert_non_null(v[i]);
	}
	for (unsigned int i = 0; i < n; i++)
		kmem_cache_free(s, v[i]);
	free(v);
}

/* ------------------------------------------------ SHEAF_IDLE_MS=0: looks */

/* Idle for two looks (the first after activity only records it): drained. */
static void test_drained_after_two_looks(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("idle-two");
	burst(s, BURST);
	assert_true(sheaf_cache_cached_objects(s) > 0);
	unsigned long before = sheaf_idle_drained();
	sheaf_test_idle_pass();         /* records the activity */
	sheaf_test_idle_pass();         /* idle once */
	assert_true(sheaf_cache_cached_objects(s) > 0);
	assert_true(sheaf_test_idle_pass() > 0); /* idle twice: drained */
	assert_int_equal(sheaf_cache_cached_objects(s), 0);
	assert_true(sheaf_idle_drained() > before);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/*
 * A slot whose slow paths run between looks is never drained: each round
 * refills (more than a sheaf allocated, then freed), so the objects the
 * test thread's slot caches stay cached.
 */
static void test_busy_slot_kept(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("idle-busy");
	for (int round = 0; round < 8; round++) {
		burst(s, 3 * CAP);
		sheaf_test_idle_pass();
		assert_true(sheaf_cache_cached_objects(s) > 0);
	}
	kmem_cache_destroy(s);
}

/*
 * Objects freed on the fast path into a drained slot move no count: they
 * are drained at the next round (every 4 * 2 looks while idle), not kept
 * until a shrink.
 */
static void test_fast_frees_drained_later(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("idle-later");
	void *keep[3];
	for (int i = 0; i < 3; i++)
		assert_non_null(keep[i] = kmem_cache_alloc(s, GFP_KERNEL));
	burst(s, BURST);
	for (int i = 0; i < 3; i++)
		sheaf_test_idle_pass();
	assert_int_equal(sheaf_cache_cached_objects(s), 0);
	for (int i = 0; i < 3; i++)
		kmem_cache_free(s, keep[i]);
	unsigned int looks = 0;
	while (sheaf_cache_cached_objects(s) && looks < 20) {
		sheaf_test_idle_pass();
		looks++;
	}
	assert_int_equal(sheaf_cache_cached_objects(s), 0);
	assert_true(looks <= 9);
	kmem_cache_destroy(s);
}

/* kfree_nolock()'s deferred frees are done by a look, with no slow path
 * (a debug cache defers every nolock free: its checks take the lists). */
static void test_deferred_frees_drained(void **state)
{
	(void)state;
	struct kmem_cache *s = kmem_cache_create("idle-deferred", 64, NULL,
		SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_CONSISTENCY_CHECKS);
	assert_non_null(s);
	void *p[4];
	for (int i = 0; i < 4; i++)
		assert_non_null(p[i] = kmem_cache_alloc(s, GFP_KERNEL));
	for (int i = 0; i < 4; i++)
		kfree_nolock(p[i]);
	assert_int_equal(sheaf_cache_deferred_objects(s), 4);
	sheaf_test_idle_pass();
	assert_int_equal(sheaf_cache_deferred_objects(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/* A cache without sheaves, and a destroyed cache: the looks skip them. */
static void test_classic_and_destroyed(void **state)
{
	(void)state;
	struct kmem_cache *c = kmem_cache_create("idle-classic", 64, NULL, 0);
	assert_non_null(c);
	burst(c, 100);
	struct kmem_cache *s = mk("idle-gone");
	burst(s, 100);
	kmem_cache_destroy(s);
	for (int i = 0; i < 3; i++)
		sheaf_test_idle_pass();
	assert_int_equal(sheaf_cache_objects_inuse(c), 0);
	kmem_cache_destroy(c);
}

/* ---------------------------------------------- SHEAF_IDLE_MS=100: thread */

static void *burst_thread(void *arg)
{
	burst(arg, BURST);
	return NULL;
}

/* Wait until the thread made `more` looks (at most 10 s). */
static void wait_looks(unsigned long more)
{
	unsigned long want = sheaf_test_idle_passes() + more;
	for (int i = 0; i < 1000 && sheaf_test_idle_passes() < want; i++)
		usleep(10000);
	assert_true(sheaf_test_idle_passes() >= want);
}

/* A burst on 4 threads, then idle: the thread drains everything. */
static void test_thread_drains_after_burst(void **state)
{
	(void)state;
	struct kmem_cache *s = mk("idle-thread");
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, burst_thread, s), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_true(sheaf_cache_cached_objects(s) > 0);
	wait_looks(4); /* 2 to be due, 1 for a look under way, 1 to spare */
	assert_int_equal(sheaf_cache_cached_objects(s), 0);
	assert_true(sheaf_idle_drained() > 0);
	kmem_cache_destroy(s);
}

static void child_drains(void *arg)
{
	(void)arg;
	struct kmem_cache *s = mk("idle-child");
	burst(s, BURST);
	unsigned long want = sheaf_test_idle_passes() + 4;
	for (int i = 0; i < 1000 && sheaf_test_idle_passes() < want; i++)
		usleep(10000);
	if (sheaf_test_idle_passes() < want || sheaf_cache_cached_objects(s))
		_exit(3);
	kmem_cache_destroy(s);
	_exit(0);
}

/* The child of a process with the thread gets one of its own. */
static void test_fork_child_gets_thread(void **state)
{
	(void)state;
#ifdef SHEAF_TSAN
	/* TSan: no threads in fork()ed children (as test_fork). */
	skip();
#endif
	struct kmem_cache *s = mk("idle-parent"); /* the parent's thread runs */
	burst(s, 100);
	struct child_result r;
	char how[64];
	run_in_child(child_drains, NULL, &r);
	if (!child_exited_ok(&r))
		fail_msg("child %s, stderr [%s]", child_how(&r, how, sizeof(how)), r.err);
	kmem_cache_destroy(s);
}

/*
 * fork() while the thread looks every 50 ms: with the idle thread the one
 * other thread, the handlers take slab_mutex only (init.c's light path),
 * which a look holds throughout.  Every child uses the cache (its slots,
 * barn and lists must be free) and exits; none may hang (alarm).
 */
static void test_fork_while_looking(void **state)
{
	(void)state;
#ifdef SHEAF_TSAN
	skip();
#endif
	struct kmem_cache *s = mk("idle-forks");
	unsigned long passes = sheaf_test_idle_passes();
	for (int k = 0; k < 300; k++) {
		burst(s, 2 * CAP + k % CAP); /* something for each look to do */
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			alarm(20);
			burst(s, 3 * CAP);
			_exit(sheaf_cache_objects_inuse(s) == 0 ? 0 : 4);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("fork %d: child status %#x", k, status);
		if (k % 50 == 49)
			usleep(60000); /* let a look come between forks */
	}
	assert_true(sheaf_test_idle_passes() > passes);
	kmem_cache_destroy(s);
}

int main(void)
{
	const char *ms = getenv("SHEAF_IDLE_MS");
	if (ms && strcmp(ms, "0") == 0) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_drained_after_two_looks),
			cmocka_unit_test(test_busy_slot_kept),
			cmocka_unit_test(test_fast_frees_drained_later),
			cmocka_unit_test(test_deferred_frees_drained),
			cmocka_unit_test(test_classic_and_destroyed),
		};
		return cmocka_run_group_tests(tests, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_drains_after_burst),
		cmocka_unit_test(test_fork_child_gets_thread),
		cmocka_unit_test(test_fork_while_looking),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
