/*
 * test_cmocka_util.h - helpers shared by the cmocka test programs (include
 * after <cmocka.h> and <sheaf/slab.h>).  Everything is static.
 */
#ifndef SHEAF_TEST_CMOCKA_UTIL_H
#define SHEAF_TEST_CMOCKA_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* A byte pattern that tells apart n bytes and their offset (realloc tests). */
static inline void fill_seq(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + seed);
}

static inline bool check_seq(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 7 + seed))
			return false;
	return true;
}

/* Run fn in a forked child: it must abort with `want` on stderr. */
static inline void expect_child_abort(void (*fn)(void *), const char *want)
{
	struct child_result r;
	char how[64];
	run_in_child(fn, NULL, &r);
	if (!child_aborted(&r) || !strstr(r.err, want))
		fail_msg("child %s, stderr [%s], wanted [%s]",
			 child_how(&r, how, sizeof(how)), r.err, want);
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a;
	uintptr_t y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

/* Objects in p[0..n) are distinct and at least `size` bytes apart. */
static inline void assert_disjoint(void **p, size_t n, size_t size)
{
	void **q = malloc(n * sizeof(*q));
	assert_non_null(q);
	memcpy(q, p, n * sizeof(*q));
	qsort(q, n, sizeof(*q), cmp_ptr);
	for (size_t i = 1; i < n; i++) {
		uintptr_t gap = (uintptr_t)q[i] - (uintptr_t)q[i - 1];
		if (gap < size)
			fail_msg("objects %p and %p overlap (gap %zu < size %zu)",
				 q[i - 1], q[i], (size_t)gap, size);
	}
	free(q);
}

static inline bool all_bytes(const void *p, size_t n, unsigned char v)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != v)
			return false;
	return true;
}

static inline struct kmem_cache *make_cache(const char *name, unsigned int size,
					    unsigned int capacity)
{
	struct kmem_cache_args args;
	memset(&args, 0, sizeof(args));
	args.sheaf_capacity = capacity;
	struct kmem_cache *s = kmem_cache_create(name, size, &args, 0);
	assert_non_null(s);
	return s;
}

/* Teardown of the tests that switch counting on for themselves. */
static inline int teardown_stats(void **state)
{
	(void)state;
	sheaf_stats_enable(false);
	return 0;
}

/* Teardown of the tests that inject page failures. */
static inline int teardown_injection(void **state)
{
	(void)state;
	sheaf_inject_page_failures(0, 0);
	return 0;
}

/* Every object of s is free: shrink gives every slab back. */
static inline void assert_drained(struct kmem_cache *s)
{
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	assert_int_equal(sheaf_cache_slabs(s), 0);
}

#endif
