/* SPDX-License-Identifier: MIT */
/*
 * percpu_module.c - a module for test_percpu's dlclose() case: it runs the
 * inline fast paths of <sheaf/slab.h> (their restartable sections and
 * descriptors live in this module), then gets unloaded.
 */
#include <sheaf/slab.h>

unsigned long percpu_module_loop(struct kmem_cache *s, unsigned long n);

unsigned long percpu_module_loop(struct kmem_cache *s, unsigned long n)
{
	unsigned long done = 0;
	for (unsigned long i = 0; i < n; i++) {
		void *p = kmem_cache_alloc(s, GFP_KERNEL);
		if (!p)
			break;
		__asm__ volatile("" : : "r"(p) : "memory");
		kmem_cache_free(s, p);
		done++;
	}
	return done;
}
