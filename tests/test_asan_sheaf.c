/*
 * test_asan_sheaf.c - in an ASan build, a use after free of an object that
 * sits in a sheaf (freed, so parked in the slot's main sheaf, not yet on a
 * slab) is caught, as KASAN catches it in the kernel; and an object freed
 * with kfree_rcu() stays readable until its grace period is over.
 * Skipped (exit 77) without ASan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>

#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

struct obj {
	long v[7];
	struct rcu_head rcu;
};

static struct kmem_cache *cache;

static __attribute__((unused)) void uaf_in_sheaf(void *arg)
{
	volatile struct obj *o = kmem_cache_alloc(cache, GFP_KERNEL);
	o->v[1] = 42;
	kmem_cache_free(cache, (void *)o);
	/* The object is now in this slot's main sheaf. */
	if (sheaf_cache_cached_objects(cache) == 0)
		_exit(3);
	long x = o->v[1]; /* use after free */
	printf("read %ld\n", x);
	_exit(0);
}

int main(void)
{
#ifndef HAVE_ASAN
	puts("test_asan_sheaf: not an ASan build, skipped");
	return 77;
#else
	struct kmem_cache_args a = { .sheaf_capacity = 16 };
	cache = kmem_cache_create("asan-sheaf", sizeof(struct obj), &a, 0);
	if (!cache)
		return 1;
	rcu_register_thread();

	/* kfree_rcu: readable until the grace period, then poisoned. */
	struct obj *r = kmem_cache_alloc(cache, GFP_KERNEL);
	r->v[0] = 7;
	rcu_read_lock();
	kfree_rcu(r, rcu);
	if (((volatile struct obj *)r)->v[0] != 7) /* legitimate RCU read */
		return 1;
	rcu_read_unlock();
	kvfree_rcu_barrier();

	struct child_result res;
	run_in_child(uaf_in_sheaf, NULL, &res);
	if (!strstr(res.err, "AddressSanitizer: use-after-poison")) {
		fprintf(stderr, "test_asan_sheaf: no ASan report for a use after free "
			"of an object in a sheaf; child stderr:\n%s\n", res.err);
		return 1;
	}
	puts("test_asan_sheaf: ASan caught the use after free of an object in a sheaf");
	rcu_unregister_thread();
	return 0;
#endif
}
