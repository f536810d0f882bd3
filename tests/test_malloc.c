/*
 * test_malloc.c - conformance of libsheaf-malloc's malloc family, linked
 * statically (libsheaf-malloc.a): every allocation of this process, the C
 * library's and cmocka's included, goes through it.
 *
 * Each function: size 0, huge sizes, overflow, every power-of-two
 * alignment up to the page size (and beyond), realloc growth and shrink
 * keeping the contents, glibc's errno conventions; the kmalloc caches with
 * their size-based sheaf capacity; fork with threads allocating; a bad
 * free() reported in one line and aborting.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/slab.h>

#include "test_util.h"

#define PAGE 4096ul

/* Sizes the compiler cannot see (it warns about the ones meant to fail). */
static size_t opaque(size_t x)
{
	volatile size_t v = x;
	return v;
}

/* p is memory of libsheaf (a slab object, a page run or a huge mapping). */
static void assert_ours(const void *p)
{
	if (sheaf_obj_node(p) < 0)
		fail_msg("%p is not libsheaf memory", p);
}

static void fill(void *p, size_t n, unsigned int seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i * 7);
}

static void check(const void *p, size_t n, unsigned int seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i * 7))
			fail_msg("byte %zu of %p changed", i, p);
}

/* Sizes around every class boundary, page runs and a huge mapping. */
static const size_t sizes[] = {
	0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 95, 96, 97,
	127, 128, 129, 191, 192, 193, 255, 256, 257, 511, 512, 513, 1000,
	1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 8191, 8192, 8193,
	12288, 65536, 100000, 1ul << 20, (4ul << 20) - 1, 4ul << 20,
	(4ul << 20) + 1, 9ul << 20,
};
#define NR_SIZES (sizeof(sizes) / sizeof(sizes[0]))

static void test_malloc_sizes(void **state)
{
	(void)state;
	void *p[NR_SIZES];
	for (size_t i = 0; i < NR_SIZES; i++) {
		p[i] = malloc(sizes[i]);
		assert_non_null(p[i]);
		assert_ours(p[i]);
		assert_int_equal((uintptr_t)p[i] % 16, 0);
		assert_true(malloc_usable_size(p[i]) >= sizes[i]);
		assert_true(malloc_usable_size(p[i]) >= 16);
		fill(p[i], malloc_usable_size(p[i]), (unsigned int)i);
	}
	for (size_t i = 0; i < NR_SIZES; i++) {
		check(p[i], malloc_usable_size(p[i]), (unsigned int)i);
		free(p[i]);
	}
	/* malloc(0): a unique pointer that free() takes. */
	void *a = malloc(0), *b = malloc(0);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	free(a);
	free(b);
	free(NULL);
	assert_int_equal(malloc_usable_size(NULL), 0);
}

/* Every small size is 16-byte aligned (max_align_t), 8 included. */
static void test_malloc_alignment_16(void **state)
{
	(void)state;
	void *p[256];
	for (size_t n = 1; n <= 256; n++) {
		p[n - 1] = malloc(n);
		assert_non_null(p[n - 1]);
		assert_int_equal((uintptr_t)p[n - 1] % _Alignof(max_align_t), 0);
	}
	for (size_t n = 0; n < 256; n++)
		free(p[n]);
}

/*
 * SHEAF_KMALLOC_CAPACITY as the library must read it: a number in
 * 0..SHEAF_MAX_CAPACITY raises every kmalloc cache's capacity to it;
 * anything else is ignored (0).
 */
static unsigned int kmalloc_capacity_env(void)
{
	const char *v = getenv("SHEAF_KMALLOC_CAPACITY");
	char *end;
	if (!v || !*v)
		return 0;
	long x = strtol(v, &end, 10);
	return *end || x < 0 || x > (long)SHEAF_MAX_CAPACITY ? 0 : (unsigned int)x;
}

/*
 * The kmalloc caches have sheaves with the kernel's size-based capacity,
 * raised to SHEAF_KMALLOC_CAPACITY when that is larger (run with 60 and
 * with an out-of-range value by CTest).
 */
static void test_kmalloc_sheaves(void **state)
{
	(void)state;
	unsigned int min = kmalloc_capacity_env();
	static const unsigned int classes[] = {
		16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
	};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		void *p = malloc(classes[i]);
		struct kmem_cache *s = sheaf_obj_cache(p);
		assert_non_null(s);
		assert_int_equal(kmem_cache_size(s), classes[i]);
		unsigned int want = sheaf_auto_capacity(classes[i]);
		assert_int_equal(sheaf_cache_capacity(s), want > min ? want : min);
		assert_true(sheaf_cache_capacity(s) > 0);
		free(p);
	}
	/* kmalloc() shares them. */
	void *k = kmalloc(64, GFP_KERNEL);
	void *m = malloc(64);
	assert_ptr_equal(sheaf_obj_cache(k), sheaf_obj_cache(m));
	free(k);
	kfree(m);
}

/*
 * The replacement's classes between the kernel's (kmalloc.c): from 256
 * bytes up no class is more than 1.5 times the one below, so malloc(n)
 * for n in (2m/3, m] is a block of class m (384, 768, 1536, 3072, 6144),
 * and the kernel's class otherwise; kmalloc() keeps the kernel's classes.
 * realloc() keeps a block in place when the new size maps to its class.
 */
static void test_malloc_classes(void **state)
{
	(void)state;
	static const struct { size_t n, usable; } want[] = {
		{ 256, 256 }, { 257, 384 }, { 384, 384 }, { 385, 512 },
		{ 512, 512 }, { 513, 768 }, { 768, 768 }, { 769, 1024 },
		{ 1024, 1024 }, { 1025, 1536 }, { 1536, 1536 }, { 1537, 2048 },
		{ 2048, 2048 }, { 2049, 3072 }, { 3072, 3072 }, { 3073, 4096 },
		{ 4096, 4096 }, { 4097, 6144 }, { 6144, 6144 }, { 6145, 8192 },
		{ 8192, 8192 }, { 8193, 12288 }, { 12288, 12288 }, { 12289, 16384 },
		{ 16385, 24576 }, { 24577, 32768 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		void *p = malloc(opaque(want[i].n));
		assert_non_null(p);
		struct kmem_cache *s = sheaf_obj_cache(p);
		assert_non_null(s);
		assert_int_equal(kmem_cache_size(s), want[i].usable);
		assert_int_equal(malloc_usable_size(p), want[i].usable);
		free(p);
	}
	/* kmalloc() keeps the kernel's classes */
	void *k = kmalloc(300, GFP_KERNEL);
	assert_int_equal(kmem_cache_size(sheaf_obj_cache(k)), 512);
	kfree(k);
	/* realloc(): in place within the class, moved out of it */
	char *p = malloc(opaque(700));
	fill(p, 700, 3);
	char *q = realloc(p, opaque(600));
	assert_ptr_equal(q, p);
	char *r = realloc(q, opaque(400));
	assert_non_null(r);
	assert_int_equal(malloc_usable_size(r), 512);
	check(r, 400, 3);
	free(r);
}

/*
 * The slots' top hint (struct sheaf_pcs, top, <sheaf/rseq.h>): malloc()'s
 * pop and free()'s push keep it, as does every slow path that lets a slot
 * go, so after any of them each free slot with objects in main names
 * main's last object.  A stale hint hands out no wrong object (the pop
 * takes the array's entry when they differ), so nothing else would see
 * one: only the pops it slows.  A first version whose kfree_rcu() push
 * overwrote the hint made half of the `rcu` benchmark's pops slow paths.
 */
static void assert_top_hints(struct kmem_cache *s)
{
	const struct sheaf_cache_hot *h = (const struct sheaf_cache_hot *)s;
	/* Only malloc()'s inline sections keep it: with them off
	 * (statistics, several nodes, fallback mode) the exported paths'
	 * sections leave it, and only its correctness below holds. */
	if (!h->inline_pcs)
		return;
	/* With cpu_id slots (SHEAF_PERCPU=cpu_id, kernels before 6.3) a pop
	 * aborted by a migration after its hint store runs again on the new
	 * CPU's slot and leaves the old slot's hint one object down: stale,
	 * which the pop's comparison makes harmless, so only exactness is
	 * lost.  An mm_cid stays with this single thread, and the restart
	 * repairs the hint it broke. */
	if (strcmp(sheaf_percpu_slots(), "mm_cid") != 0)
		return;
	for (unsigned int i = 0; i < sheaf_nr_slots(); i++) {
		const struct sheaf_pcs *pcs = &h->pcs[i];
		unsigned int n = __atomic_load_n(&pcs->count, __ATOMIC_ACQUIRE);
		if ((int)n < 0) /* taken */
			continue;
		if (n)
			assert_ptr_equal(pcs->top, pcs->main->objects[n - 1]);
	}
}

static void test_top_hint(void **state)
{
	(void)state;
	static const size_t sizes[] = { 64, 96, 128 };
	struct kmem_cache *c[3];
	void *p[3][80];
	for (int k = 0; k < 3; k++) {
		void *q = malloc(sizes[k]);
		assert_non_null(c[k] = sheaf_obj_cache(q));
		free(q);
	}
	/* interleaved sizes, through main, the spare, the barn and slabs */
	for (int i = 0; i < 80; i++)
		for (int k = 0; k < 3; k++) {
			assert_non_null(p[k][i] = malloc(sizes[k]));
			assert_top_hints(c[k]);
		}
	for (int i = 79; i >= 0; i--)
		for (int k = 0; k < 3; k++) {
			free(p[k][i]);
			assert_top_hints(c[k]);
		}
	/* A stale hint naming an object the program holds: the pop must
	 * not hand it out again (it takes main's real entry), and leaves
	 * the hint right.  Which slot the thread is on does not matter. */
	void *live = malloc(64);
	assert_non_null(live);
	const struct sheaf_cache_hot *h = (const struct sheaf_cache_hot *)c[0];
	for (int round = 0; round < 2; round++) {
		for (unsigned int i = 0; i < sheaf_nr_slots(); i++)
			h->pcs[i].top = live;
		void *q = malloc(64);
		assert_non_null(q);
		assert_ptr_not_equal(q, live);
		assert_ptr_equal(sheaf_obj_cache(q), c[0]);
		assert_top_hints(c[0]);
		/* kfree() pushes without the hint: the same again after it */
		kfree(q);
	}
	free(live);
	assert_top_hints(c[0]);
}

/*
 * The paths a bailed section takes (pcs.c, _sheaf_pcs_alloc_bailed() and
 * _sheaf_pcs_free_bailed()): 1000 blocks of one class are many sheaves'
 * worth, so malloc() finds main empty and free() finds it full again and
 * again, and each goes from its section straight to the sheaf slow path
 * (spare, barn, slabs).  Every block distinct and of the class, kept
 * intact; calloc() through the same path zeroes blocks that were written;
 * afterwards the class holds exactly what it held before.
 */
#define BAILED_N 1000

/* The class's count once it reads `want` (the idle drain may be moving
 * objects from sheaves to slabs while it sums: sheaf_cache_objects_inuse()
 * is exact only when nothing moves), for at most a second. */
static size_t inuse_settled(struct kmem_cache *s, size_t want)
{
	size_t n = sheaf_cache_objects_inuse(s);
	for (int i = 0; i < 1000 && n != want; i++) {
		usleep(1000);
		n = sheaf_cache_objects_inuse(s);
	}
	return n;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

static void test_bailed_paths(void **state)
{
	(void)state;
	static void *p[BAILED_N], *q[BAILED_N];
	void *first = malloc(opaque(2000));
	struct kmem_cache *s = sheaf_obj_cache(first);
	assert_non_null(s);
	free(first);
	size_t inuse = sheaf_cache_objects_inuse(s), again;
	while ((again = sheaf_cache_objects_inuse(s)) != inuse) /* read at rest */
		inuse = again;
	for (int round = 0; round < 3; round++) {
		for (unsigned int i = 0; i < BAILED_N; i++) {
			p[i] = malloc(opaque(1537 + i % 512));
			assert_non_null(p[i]);
			assert_ptr_equal(sheaf_obj_cache(p[i]), s);
			fill(p[i], 1537, i);
		}
		memcpy(q, p, sizeof(p));
		qsort(q, BAILED_N, sizeof(q[0]), cmp_ptr);
		for (unsigned int i = 1; i < BAILED_N; i++)
			assert_ptr_not_equal(q[i - 1], q[i]);
		for (unsigned int i = 0; i < BAILED_N; i++)
			check(p[i], 1537, i);
		/* freed in an order unlike the allocation's */
		for (unsigned int i = 0; i < BAILED_N; i++)
			free(p[(i * 7919u) % BAILED_N]);
		assert_int_equal(inuse_settled(s, inuse), inuse);
	}
	for (unsigned int i = 0; i < BAILED_N; i++) {
		p[i] = calloc(1, opaque(2048));
		assert_non_null(p[i]);
		const unsigned char *c = p[i];
		for (size_t k = 0; k < 2048; k++)
			if (c[k])
				fail_msg("byte %zu of calloc()'s %p is %u", k, p[i], c[k]);
		fill(p[i], 2048, i);
	}
	for (unsigned int i = 0; i < BAILED_N; i++)
		free(p[i]);
	assert_int_equal(inuse_settled(s, inuse), inuse);
}

static void test_malloc_huge_fails(void **state)
{
	(void)state;
	static const size_t huge[] = {
		SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, 1ul << 50,
	};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		errno = 0;
		assert_null(malloc(opaque(huge[i])));
		assert_int_equal(errno, ENOMEM);
		errno = 0;
		assert_null(calloc(1, opaque(huge[i])));
		assert_int_equal(errno, ENOMEM);
		void *p;
		errno = 0;
		assert_int_equal(posix_memalign(&p, 64, huge[i]), ENOMEM);
		assert_int_equal(errno, 0); /* posix_memalign leaves errno */
		errno = 0;
		assert_null(aligned_alloc(64, huge[i]));
		assert_int_equal(errno, ENOMEM);
		errno = 0;
		assert_null(memalign(PAGE, huge[i]));
		assert_int_equal(errno, ENOMEM);
		errno = 0;
		assert_null(valloc(huge[i]));
		assert_int_equal(errno, ENOMEM);
		errno = 0;
		assert_null(pvalloc(huge[i]));
		assert_int_equal(errno, ENOMEM);
	}
}

static void test_calloc_zero(void **state)
{
	(void)state;
	/* Overflow of n * size. */
	errno = 0;
	assert_null(calloc(opaque(SIZE_MAX / 2), 3));
	assert_int_equal(errno, ENOMEM);
	errno = 0;
	assert_null(calloc(opaque((size_t)1 << 33), (size_t)1 << 31));
	assert_int_equal(errno, ENOMEM);
	/* Zeroed even when the memory was used before. */
	for (size_t i = 0; i < NR_SIZES; i++) {
		size_t n = sizes[i];
		void *d = malloc(n ? n : 1);
		memset(d, 0xa5, n ? n : 1);
		free(d);
		unsigned char *z = calloc(1, n);
		assert_non_null(z);
		assert_ours(z);
		for (size_t j = 0; j < n; j++)
			if (z[j])
				fail_msg("calloc(1, %zu): byte %zu is %#x", n, j, z[j]);
		free(z);
	}
	void *z0 = calloc(0, 0);
	assert_non_null(z0);
	free(z0);
}

static void test_realloc_content(void **state)
{
	(void)state;
	/* Growth through every class, page runs and a huge mapping... */
	size_t n = 1;
	unsigned char *p = malloc(n);
	fill(p, n, 3);
	while (n < (12ul << 20)) {
		size_t m = n * 2 + 3;
		p = realloc(p, m);
		assert_non_null(p);
		assert_ours(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		check(p, n, 3);
		fill(p, m, 3);
		n = m;
	}
	/* ...and back down, keeping the prefix. */
	while (n > 1) {
		size_t m = n / 3;
		p = realloc(p, m ? m : 1);
		assert_non_null(p);
		assert_ours(p);
		check(p, m ? m : 1, 3);
		n = m ? m : 1;
	}
	free(p);

	/* Shrinking a page run to a small size gives the run back. */
	unsigned char *big = malloc(1 << 20);
	fill(big, 100, 9);
	unsigned char *small = realloc(big, 100);
	check(small, 100, 9);
	assert_true(malloc_usable_size(small) < PAGE);
	free(small);

	/* NULL behaves as malloc; size 0 frees and returns NULL (glibc). */
	p = realloc(NULL, 40);
	assert_non_null(p);
	assert_ours(p);
	assert_null(realloc(p, 0));

	/* Failure leaves the block as it was. */
	p = malloc(100);
	fill(p, 100, 5);
	errno = 0;
	assert_null(realloc(p, opaque(SIZE_MAX - 64)));
	assert_int_equal(errno, ENOMEM);
	check(p, 100, 5);
	free(p);
}

static void test_reallocarray(void **state)
{
	(void)state;
	int *a = reallocarray(NULL, 10, sizeof(int));
	assert_non_null(a);
	for (int i = 0; i < 10; i++)
		a[i] = i;
	errno = 0;
	assert_null(reallocarray(a, opaque(SIZE_MAX / 2), 4));
	assert_int_equal(errno, ENOMEM);
	for (int i = 0; i < 10; i++)
		assert_int_equal(a[i], i);
	a = reallocarray(a, 100000, sizeof(int));
	assert_non_null(a);
	for (int i = 0; i < 10; i++)
		assert_int_equal(a[i], i);
	free(a);
}

/* Every alignment from 1 to 256 MiB (the largest: the huge heap's
 * regions are arena aligned), with several sizes. */
static void test_aligned(void **state)
{
	(void)state;
	static const size_t asz[] = { 0, 1, 24, 100, 4095, 4097, 70000, 5ul << 20 };
	for (size_t align = 1; align <= (256ul << 20); align *= 2) {
		for (size_t k = 0; k < sizeof(asz) / sizeof(asz[0]); k++) {
			size_t n = asz[k];
			void *p = NULL;
			if (align >= sizeof(void *)) {
				assert_int_equal(posix_memalign(&p, align, n), 0);
				assert_ours(p);
				assert_int_equal((uintptr_t)p % align, 0);
				assert_true(malloc_usable_size(p) >= n);
				fill(p, n, 1);
				free(p);
			}
			p = aligned_alloc(align, n);
			assert_non_null(p);
			assert_ours(p);
			assert_int_equal((uintptr_t)p % align, 0);
			assert_true(malloc_usable_size(p) >= n);
			fill(p, n, 2);
			free(p);
			p = memalign(align, n);
			assert_non_null(p);
			assert_int_equal((uintptr_t)p % align, 0);
			assert_true(malloc_usable_size(p) >= n);
			free(p);
		}
	}
	/* Huge alignments, several live at once: carved at aligned grains
	 * of the heap's regions, or a new region. */
	void *h[6];
	for (int i = 0; i < 6; i++) {
		assert_int_equal(posix_memalign(&h[i], 64ul << 20, 3ul << 20), 0);
		assert_int_equal((uintptr_t)h[i] % (64ul << 20), 0);
		fill(h[i], 3ul << 20, 3);
	}
	for (int i = 0; i < 6; i++)
		free(h[i]);
	/* Many at once: distinct and aligned. */
	void *v[64];
	for (int i = 0; i < 64; i++) {
		v[i] = aligned_alloc(256, 48);
		assert_int_equal((uintptr_t)v[i] % 256, 0);
	}
	for (int i = 0; i < 64; i++)
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(v[i], v[j]);
	for (int i = 0; i < 64; i++)
		free(v[i]);
}

static void test_aligned_errors(void **state)
{
	(void)state;
	void *p = (void *)1;
	/* posix_memalign: a power of two multiple of sizeof(void *). */
	static const size_t bad[] = { 0, 1, 2, 4, 3, 12, 24, 48, 4097, SIZE_MAX };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(posix_memalign(&p, opaque(bad[i]), 16), EINVAL);
		assert_int_equal(errno, 0);
		assert_ptr_equal(p, (void *)1); /* untouched */
	}
	/* aligned_alloc: a power of two. */
	static const size_t bad2[] = { 0, 3, 24, 48, 4097, SIZE_MAX };
	for (size_t i = 0; i < sizeof(bad2) / sizeof(bad2[0]); i++) {
		errno = 0;
		assert_null(aligned_alloc(opaque(bad2[i]), 16));
		assert_int_equal(errno, EINVAL);
	}
	/* memalign rounds a non-power of two up (glibc); absurd ones fail. */
	p = memalign(opaque(24), 10);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % 32, 0);
	free(p);
	p = memalign(opaque(3000), 10);
	assert_int_equal((uintptr_t)p % 4096, 0);
	free(p);
	errno = 0;
	assert_null(memalign(opaque(SIZE_MAX), 10));
	assert_int_equal(errno, EINVAL);
	/* Alignments above an arena (256 MiB) are not served. */
	errno = 0;
	assert_null(aligned_alloc(1ul << 30, 10));
	assert_int_equal(errno, ENOMEM);
}

static void test_valloc_pvalloc(void **state)
{
	(void)state;
	static const size_t vs[] = { 0, 1, 4095, 4096, 4097, 100000 };
	for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
		void *p = valloc(vs[i]);
		assert_non_null(p);
		assert_ours(p);
		assert_int_equal((uintptr_t)p % PAGE, 0);
		assert_true(malloc_usable_size(p) >= vs[i]);
		free(p);
		p = pvalloc(vs[i]);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % PAGE, 0);
		/* The size rounded up to whole pages is usable (one at least). */
		size_t want = vs[i] ? (vs[i] + PAGE - 1) / PAGE * PAGE : PAGE;
		assert_true(malloc_usable_size(p) >= want);
		memset(p, 1, want);
		free(p);
	}
}

/* malloc_trim(): sheaves and barns flushed, empty slabs and idle pages
 * given back. */
static void test_malloc_trim(void **state)
{
	(void)state;
	enum { N = 100000 };
	void **v = malloc(N * sizeof(*v));
	assert_non_null(v);
	for (int i = 0; i < N; i++) {
		v[i] = malloc(64 + (size_t)(i % 4) * 200);
		memset(v[i], 1, 64);
	}
	struct sheaf_page_info before, after;
	sheaf_page_info(&before);
	for (int i = 0; i < N; i++)
		free(v[i]);
	free(v);
	assert_int_equal(malloc_trim(0), 1);
	sheaf_page_info(&after);
	assert_int_equal(after.dirty_pages, 0);
	/* The 100000 objects' slabs (tens of MiB) went back to the free lists. */
	assert_true(after.used_pages + 2000 < before.used_pages);
}

/* Runs of 16-64 KiB kept by the per-CPU run caches go back on a trim. */
static void test_malloc_trim_runs(void **state)
{
	(void)state;
	enum { R = 48 };
	void *r[R];
	struct sheaf_page_info base, after;
	malloc_trim(0);
	sheaf_page_info(&base);
	for (int i = 0; i < R; i++) {
		r[i] = malloc((size_t)(12 << 10) << (i % 3)); /* orders 2, 3, 4 */
		assert_non_null(r[i]);
		memset(r[i], 1, 4096);
	}
	for (int i = 0; i < R; i++)
		free(r[i]); /* up to 1 MiB of each order stays cached (rseq mode) */
	assert_int_equal(malloc_trim(0), 1);
	sheaf_page_info(&after);
	assert_true(after.used_pages <= base.used_pages + 8);
	assert_int_equal(after.dirty_pages, 0);
}

/*
 * The run caches and depots exist in rseq mode with one node only (skip
 * otherwise); the tests pin the thread to its CPU so that one slot sees
 * every run.  *old: the affinity to restore with unpin().
 */
static void pin_for_runs(cpu_set_t *old)
{
	if (strcmp(sheaf_percpu_mode(), "rseq") != 0 || sheaf_nr_nodes() != 1)
		skip();
	cpu_set_t one;
	assert_int_equal(sched_getaffinity(0, sizeof(*old), old), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
}

static void unpin(const cpu_set_t *old)
{
	assert_int_equal(sched_setaffinity(0, sizeof(*old), old), 0);
}

/*
 * The run depot (kmalloc_runs.c), through kmalloc() (malloc() has classes up
 * to 32 KiB; kmalloc() takes page runs above 8 KiB, as the kernel's):
 * the 16 KiB runs a full slot gives up wait
 * there rather than in the buddy lists, the next allocations take them
 * back from it, and a decay period (1 s) in which no slot took them sends
 * them to the buddy lists at the depot's next use.  Only where the run
 * caches are (rseq mode, one node); pinned, so that one slot sees it all.
 */
static void test_run_depot(void **state)
{
	(void)state;
	enum { R = 256, PG = 4 };	/* 4 MiB of 16 KiB runs; a slot keeps 64 */
	static void *r[R];
	cpu_set_t old;
	pin_for_runs(&old);
	struct sheaf_page_info a, b, c;
	malloc_trim(0);
	for (int i = 0; i < R; i++) {
		assert_non_null(r[i] = kmalloc(16000, GFP_KERNEL));
		memset(r[i], 1, 64);
	}
	sheaf_page_info(&a);
	for (int i = 0; i < R; i++)
		kfree(r[i]);
	sheaf_page_info(&b);
	/* Without the depot, R - 64 runs would be back in the buddy lists. */
	assert_true(b.free_pages < a.free_pages + 16 * PG);
	for (int i = 0; i < R; i++)
		assert_non_null(r[i] = kmalloc(16000, GFP_KERNEL));
	sheaf_page_info(&c);
	/* ...and would come from them again. */
	assert_true(c.free_pages + 16 * PG > b.free_pages);
	for (int i = 0; i < R; i++)
		kfree(r[i]);
	sheaf_page_info(&b);
	/*
	 * Two decay periods, each ended by allocations that empty the slot
	 * and take from the depot (which decays first): the runs no slot
	 * took go to the buddy lists, more than 100 of the ~190 waiting.
	 */
	for (int k = 0; k < 2; k++) {
		usleep(1100 * 1000);
		for (int i = 0; i < 70; i++)
			assert_non_null(r[k * 70 + i] = kmalloc(16000, GFP_KERNEL));
	}
	sheaf_page_info(&c);
	assert_true(c.free_pages >= b.free_pages + 100 * PG);
	for (int i = 0; i < 140; i++)
		kfree(r[i]);
	assert_int_equal(malloc_trim(0), 1);
	unpin(&old);
}

/*
 * The depots share one budget (48 MiB of runs of any order): 800 runs of
 * 32 KiB (25 MiB, more than the third of it each order had before) all
 * wait in the depot, none goes to the buddy lists; past the budget the
 * surplus does.  Pinned, as test_run_depot.
 */
static void test_run_depot_budget(void **state)
{
	(void)state;
	enum { R = 1800, PG = 8, SLOT = 32, BUDGET = 1536 };	/* 32 KiB runs */
	static void *r[R];
	cpu_set_t old;
	pin_for_runs(&old);
	struct sheaf_page_info a, b;
	malloc_trim(0);
	for (int i = 0; i < 800; i++) {
		assert_non_null(r[i] = kmalloc(30000, GFP_KERNEL));
		memset(r[i], 1, 64);
	}
	sheaf_page_info(&a);
	for (int i = 0; i < 800; i++)
		kfree(r[i]);
	sheaf_page_info(&b);
	/* Before, 800 - 32 - 512 runs went back to the buddy lists. */
	assert_true(b.free_pages < a.free_pages + 16 * PG);
	for (int i = 0; i < 800; i++)
		assert_non_null(r[i] = kmalloc(30000, GFP_KERNEL));
	for (int i = 800; i < R; i++)
		assert_non_null(r[i] = kmalloc(30000, GFP_KERNEL));
	sheaf_page_info(&a);
	for (int i = 0; i < R; i++)
		kfree(r[i]);
	sheaf_page_info(&b);
	/* The budget bounds it: what neither the slot nor the depot holds is
	 * in the buddy lists (less 16 runs: a busy lock or a moved thread). */
	assert_true(b.free_pages >= a.free_pages + (R - SLOT - BUDGET - 16) * PG);
	assert_int_equal(malloc_trim(0), 1);
	unpin(&old);
}

/*
 * The fast paths follow the inline switch at run time: while failure
 * injection is armed every allocation must reach the checked path (the
 * size table's copy of the class's slots must be withdrawn, or malloc()
 * would keep popping the sheaf), and once it is off again malloc() works.
 */
static void test_inline_switch(void **state)
{
	(void)state;
	void *warm[8];
	for (int i = 0; i < 8; i++)
		warm[i] = malloc(opaque(64));
	for (int i = 0; i < 8; i++)
		free(warm[i]); /* the slot's main sheaf now holds objects */
	uint64_t before = sheaf_fault_injected(SHEAF_FAULT_SLAB);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "1,100,0,-1,cache=kmalloc-64"), 0);
	errno = 0;
	void *p = malloc(opaque(64));
	assert_null(p);
	assert_int_equal(errno, ENOMEM);
	assert_true(sheaf_fault_injected(SHEAF_FAULT_SLAB) > before);
	void *q = malloc(opaque(128)); /* another cache: not injected */
	assert_non_null(q);
	free(q);
	assert_int_equal(sheaf_fault_set(SHEAF_FAULT_SLAB, "0"), 0);
	before = sheaf_fault_injected(SHEAF_FAULT_SLAB);
	p = malloc(opaque(64));
	assert_non_null(p);
	free(p);
	assert_int_equal(sheaf_fault_injected(SHEAF_FAULT_SLAB), before);
}

/* --------------------------------------------------------------- fork */

static volatile int stop_threads;

static void *churn(void *arg)
{
	unsigned int x = (unsigned int)(uintptr_t)arg;
	void *slot[64] = { 0 };
	while (!__atomic_load_n(&stop_threads, __ATOMIC_RELAXED)) {
		x = x * 1103515245u + 12345u;
		unsigned int i = (x >> 8) % 64;
		free(slot[i]);
		size_t n = (x >> 16) % 3 == 0 ? 16 + (x >> 4) % 20000 : 8 + (x >> 20) % 300;
		slot[i] = malloc(n);
		memset(slot[i], 1, n < 64 ? n : 64);
	}
	for (int i = 0; i < 64; i++)
		free(slot[i]);
	return NULL;
}

static void *child_thread(void *arg)
{
	(void)arg;
	void *p = malloc(1000);
	free(p);
	return NULL;
}

/*
 * fork() while other threads allocate and free: the child allocates at
 * once (every size class, a page run, a huge mapping, a thread) and exits
 * 0; a lock left held at the fork would hang it (the parent prints where
 * and kills it after 30 s).
 */
static void test_fork_with_threads(void **state)
{
	(void)state;
	pthread_t t[3];
	stop_threads = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn,
						(void *)(uintptr_t)(i + 1)), 0);
	for (int round = 0; round < 30; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			alarm(60); /* a backstop: the parent kills it at 30 s */
			void *v[200];
			for (int i = 0; i < 200; i++) {
				v[i] = malloc((size_t)(i * 41) % 9000);
				if (!v[i] || sheaf_obj_node(v[i]) < 0)
					_exit(2);
			}
			for (int i = 0; i < 200; i++)
				free(v[i]);
			void *big = malloc(5u << 20);
			void *run = malloc(100000);
			free(big);
			free(run);
			pthread_t ct;
			if (pthread_create(&ct, NULL, child_thread, NULL) ||
			    pthread_join(ct, NULL))
				_exit(3);
			_exit(0);
		}
		int status;
		/* A hung child's threads and backtraces go to stderr first. */
		if (!reap_deadline(pid, &status, 30))
			fail_msg("child round %d hung (killed after 30 s)", round);
		if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("child round %d: status %#x", round, status);
	}
	__atomic_store_n(&stop_threads, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
}

/* ------------------------------------------------------- invalid free */

/*
 * Run fn(arg) in a child with stderr on a pipe: it must die of SIGABRT
 * after exactly one line that starts with `expect`.
 */
static void expect_abort(void (*fn)(void *), void *arg, const char *expect)
{
	int fd[2];
	assert_int_equal(pipe(fd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd[1], 2);
		close(fd[0]);
		signal(SIGABRT, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	close(fd[1]);
	char buf[512];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) - 1 && (r = read(fd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	close(fd[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("expected SIGABRT, status %#x, output \"%s\"", status, buf);
	if (strncmp(buf, expect, strlen(expect)) != 0)
		fail_msg("expected \"%s...\", got \"%s\"", expect, buf);
	char *nl = strchr(buf, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0'); /* one line */
}

static void do_free(void *p)
{
	free(p);
}

static void do_realloc(void *p)
{
	free(realloc(p, 100));
}

static void do_usable(void *p)
{
	(void)!malloc_usable_size(p);
}

/* A page run freed twice: the second free finds it in a per-CPU run
 * cache (or the buddy lists) and reports it. */
static void do_double_free_run(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	void *p = malloc(n);
	free(p);
	free(p);
}

static void test_invalid_free(void **state)
{
	(void)state;
	int on_stack;
	static int in_data;
	expect_abort(do_free, &on_stack, "sheaf: free(): invalid pointer");
	expect_abort(do_free, &in_data, "sheaf: free(): invalid pointer");
	/* kfree()'s ZERO_SIZE_PTR range: never a malloc result (malloc(0) is
	 * a unique block), so a bad pointer here (was accepted silently). */
	expect_abort(do_free, (void *)8, "sheaf: free(): invalid pointer");
	expect_abort(do_free, (void *)16, "sheaf: free(): invalid pointer");
	expect_abort(do_realloc, (void *)16, "sheaf: realloc(): invalid pointer");
	expect_abort(do_usable, (void *)1,
		     "sheaf: malloc_usable_size(): invalid pointer");
	char *p = malloc(64);
	expect_abort(do_free, p + 16, "sheaf: free(): invalid pointer");
	/*
	 * Pointers inside objects that are aligned like an object of a
	 * smaller class: the strides that are not powers of two (96, 192:
	 * offsets that are multiples of 32 and 64), a page inside an 8 KiB
	 * object, half a kmalloc-1k object.  free()'s boundary test is exact
	 * for every stride (struct sheaf_pcs_info).
	 */
	static const struct { size_t size, off; } inside[] = {
		{ 96, 32 }, { 96, 64 }, { 192, 64 }, { 192, 128 }, { 8192, PAGE },
		{ 1000, 512 },
		/* the replacement's classes between the kernel's (384, 768,
		 * 1536, 3072, 6144 bytes): offsets of smaller powers of two */
		{ 300, 128 }, { 300, 256 }, { 700, 256 }, { 700, 512 },
		{ 1500, 512 }, { 1500, 1024 }, { 3000, 1024 }, { 3000, 2048 },
		{ 6000, 2048 }, { 6000, PAGE },
	};
	for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
		char *o = malloc(inside[i].size);
		expect_abort(do_free, o + inside[i].off, "sheaf: free(): invalid pointer");
		free(o);
	}
	char *q = malloc(100000);
	expect_abort(do_free, q + PAGE, "sheaf: free(): invalid pointer");
	/* malloc-12k, malloc-16k, malloc-24k and malloc-32k objects (10000,
	 * 15000, 20000, 30000) and a run of an order with per-CPU run caches
	 * (60000): inside the head page and past it. */
	static const size_t big[] = { 10000, 15000, 20000, 30000, 60000 };
	static const size_t big_usable[] = { 12288, 16384, 24576, 32768, 65536 };
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		size_t n = big[i];
		char *r = malloc(n);
		const char *why = n <= 32768
			? "sheaf: free(): invalid pointer (not at an object boundary)"
			: "sheaf: free(): invalid pointer";
		assert_int_equal(malloc_usable_size(r), big_usable[i]);
		expect_abort(do_free, r + 64, why);
		expect_abort(do_free, r + PAGE, why);
		free(r);
	}
	char *h = malloc(6u << 20);
	expect_abort(do_free, h + 64, "sheaf: free(): invalid pointer");
	expect_abort(do_realloc, &on_stack, "sheaf: realloc(): invalid pointer");
	expect_abort(do_usable, p + 8, "sheaf: malloc_usable_size(): invalid pointer");
	/* runs: from 40000 bytes (malloc()'s classes end at 32 KiB, and an
	 * object's double free is not caught on the inline path) */
	for (size_t n = 40000; n <= 300000; n *= 2)
		expect_abort(do_double_free_run, (void *)(uintptr_t)n,
			     "sheaf: free(): invalid pointer");
	free(p);
	free(q);
	free(h);
}

int main(void)
{
	/* The library must be this process's malloc. */
	char *probe = malloc(10);
	if (probe)
		memset(probe, 0, 10);
	if (sheaf_obj_node(probe) < 0) {
		fprintf(stderr, "test_malloc: malloc is not libsheaf-malloc's\n");
		return 1;
	}
	free(probe);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malloc_sizes),
		cmocka_unit_test(test_malloc_alignment_16),
		cmocka_unit_test(test_kmalloc_sheaves),
		cmocka_unit_test(test_malloc_classes),
		cmocka_unit_test(test_top_hint),
		cmocka_unit_test(test_bailed_paths),
		cmocka_unit_test(test_malloc_huge_fails),
		cmocka_unit_test(test_calloc_zero),
		cmocka_unit_test(test_realloc_content),
		cmocka_unit_test(test_reallocarray),
		cmocka_unit_test(test_aligned),
		cmocka_unit_test(test_aligned_errors),
		cmocka_unit_test(test_valloc_pvalloc),
		cmocka_unit_test(test_malloc_trim),
		cmocka_unit_test(test_malloc_trim_runs),
		cmocka_unit_test(test_run_depot),
		cmocka_unit_test(test_run_depot_budget),
		cmocka_unit_test(test_inline_switch),
		cmocka_unit_test(test_fork_with_threads),
		cmocka_unit_test(test_invalid_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
