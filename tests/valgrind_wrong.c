/*
 * valgrind_wrong.c - wrong uses of libsheaf objects that valgrind memcheck
 * must report (run by valgrind_test.sh under memcheck): a read after free
 * and a write after free of objects parked in a sheaf, a read past the end
 * of an object, a double free, and a leaked object.  Under valgrind libsheaf runs its
 * fallback per-CPU mode and describes its objects with client requests.
 */
#include <stdio.h>

#include <sheaf/slab.h>

int main(void)
{
	struct kmem_cache_args a = { .sheaf_capacity = 8 };
	struct kmem_cache *s = kmem_cache_create("vg-cache", 40, &a, 0);
	volatile char *p = kmem_cache_alloc(s, GFP_KERNEL);
	p[0] = 1;
	kmem_cache_free(s, (void *)p);
	char c = p[0];                  /* read after free (object in a sheaf) */
	p[1] = c;                       /* write after free */
	volatile char *q = kmem_cache_alloc(s, GFP_KERNEL);
	c = q[44];                      /* read past the 40-byte object */
	volatile char *leak = kmalloc(100, GFP_KERNEL);
	leak[0] = c;
	leak = NULL;                    /* leaked */
	kmem_cache_free(s, (void *)q);
	void *d = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, d);
	kmem_cache_free(s, d);          /* double free */
	/* Right: a bulk allocation that fails partway gives its objects back
	 * without a free memcheck would call invalid. */
	struct kmem_cache *b = kmem_cache_create("vg-bulk", 40, NULL, 0);
	void *many[1000];
	sheaf_inject_page_failures(1, -1);
	int got = kmem_cache_alloc_bulk(b, GFP_KERNEL, 1000, many);
	sheaf_inject_page_failures(0, 0);
	printf("partial bulk: %d\n", got);
	printf("%s\n", sheaf_percpu_mode());
	return 0;
}
