/*
 * examples/cache.c - the worked example of the README: a cache of
 * connection objects with a constructor, allocation, bulk allocation,
 * statistics and destruction.
 *
 * Build against an installed libsheaf:
 *   cc cache.c $(pkg-config --cflags --libs libsheaf)
 */
#include <stdio.h>
#include <string.h>

#include <sheaf/slab.h>

struct conn {
	int fd;
	unsigned int state;
	char peer[48];
};

static void conn_ctor(void *p)
{
	struct conn *c = p;
	c->fd = -1; /* holds for every free object: the ctor runs once */
	c->state = 0;
}

int main(void)
{
	struct kmem_cache_args args = {
		.ctor = conn_ctor,
		.sheaf_capacity = 32, /* per-CPU sheaves of 32 objects */
	};
	sheaf_stats_enable(true);
	struct kmem_cache *cache =
		kmem_cache_create("conn", sizeof(struct conn), &args, SLAB_HWCACHE_ALIGN);
	if (!cache) {
		perror("kmem_cache_create");
		return 1;
	}

	struct conn *c = kmem_cache_alloc(cache, GFP_KERNEL);
	if (!c || c->fd != -1)
		return 1;
	c->fd = 3;
	strcpy(c->peer, "192.0.2.1:443");
	c->fd = -1; /* restore the constructed state before freeing */
	kmem_cache_free(cache, c);

	void *batch[64];
	if (kmem_cache_alloc_bulk(cache, GFP_KERNEL, 64, batch) != 64)
		return 1;
	kmem_cache_free_bulk(cache, 64, batch);

	char *buf = kmalloc(100, GFP_KERNEL);  /* from kmalloc-128 */
	printf("ksize(kmalloc(100)) = %zu\n", ksize(buf));
	kfree(buf);

	/* The kernel 7.2 meanings: alloc_fastpath counts the objects the
	 * per-CPU sheaves served, alloc_slowpath those taken from slabs
	 * directly (not the sheaves' refills). */
	printf("allocations served by the per-CPU sheaves: %llu, by slabs: %llu\n",
	       (unsigned long long)sheaf_stats_get(cache, SHEAF_STAT_ALLOC_FASTPATH),
	       (unsigned long long)sheaf_stats_get(cache, SHEAF_STAT_ALLOC_SLOWPATH));
	kmem_cache_destroy(cache);
	return 0;
}
