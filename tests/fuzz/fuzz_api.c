/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api - API sequences against a shadow model of what must be live.
 *
 * Each input is a program: a byte stream decoded into operations on up to
 * NCACHE caches created with arguments taken from the input (size,
 * alignment, sheaf capacity, constructor, slub_debug flags), plus kmalloc:
 * alloc (GFP_KERNEL, GFP_NOWAIT, __GFP_ZERO), free, bulk alloc and free,
 * prefill / alloc from sheaf / refill / return, kfree_rcu, shrink, destroy,
 * kmalloc / krealloc / kvrealloc / kfree, and failure injection (page layer and sheaf
 * allocation) switched on and off.
 *
 * The model checks, after every operation: a returned object is non-NULL
 * unless a failure was injected or the gfp may fail, aligned as the cache
 * promised, not overlapping any live object (all live addresses are kept
 * in a table), zeroed for __GFP_ZERO, in its constructed state for a cache
 * with a constructor; every live object keeps the byte pattern written
 * into it until it is freed (checked at free); a prefilled sheaf holds at
 * least what was asked and gives exactly that many objects even while
 * every page and sheaf allocation fails; ksize() covers the request;
 * krealloc and kvrealloc keep the contents.  On request and when a
 * cache is torn down, after the cache's RCU barrier: its count of objects
 * in use equals the model's live objects plus what its prefilled sheaves
 * hold (no object lost or counted twice).  At the end of the input no
 * huge kvmalloc span is left.
 *
 * Built two ways: with libFuzzer (clang -fsanitize=fuzzer,address,
 * undefined: `make fuzz`), and with a replay main (fuzz_replay.c) that runs
 * the committed corpus as a CTest test in every build.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>

#define NCACHE 4
#define MAXLIVE 512		/* per cache, and for kmalloc */
#define MAXSHEAF 2		/* prefilled sheaves held per cache */
#define HASHSZ 8192		/* live address table (> NCACHE+1 * MAXLIVE) */

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz_api: check failed: %s (%s:%d): ",   \
				#cond, __FILE__, __LINE__);                    \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

struct obj {
	unsigned char *p;
	size_t size;		/* bytes the model owns (request or object size) */
	uint8_t tag;		/* every byte holds tag, or ctor state */
};

struct fcache {
	struct kmem_cache *s;	/* NULL: slot unused */
	size_t size;
	unsigned int align;
	bool ctor;
	bool rcu_ok;		/* object big enough for an rcu_head at 0 */
	bool rcu_pending;	/* kfree_rcu() since the last barrier */
	struct obj live[MAXLIVE];
	unsigned int nlive;
	struct slab_sheaf *sheaf[MAXSHEAF];
};

static struct fcache caches[NCACHE];
static struct obj kobjs[MAXLIVE];	/* kmalloc objects */
static unsigned int nk;
static const unsigned char *in;
static size_t inlen;
static bool injecting;			/* a failure may be injected now */
static uint8_t next_tag = 1;
static const void *table[HASHSZ];	/* live addresses, open addressing */

#define CTOR_BYTE 0xc7

static void ctor_fn(void *p)
{
	/* the cache's object size is not passed: the harness fills the first
	 * 16 bytes (every ctor cache here is at least that large) */
	memset(p, CTOR_BYTE, 16);
}

static unsigned int next(unsigned int bound)	/* 0 .. bound-1, 0 at end */
{
	unsigned int v;
	if (inlen == 0 || bound == 0)
		return 0;
	if (bound <= 256) {
		v = *in;
		in++, inlen--;
		return v % bound;
	}
	v = in[0];
	if (inlen >= 2)
		v |= (unsigned int)in[1] << 8;
	in += inlen >= 2 ? 2 : 1;
	inlen -= inlen >= 2 ? 2 : 1;
	return v % bound;
}

/* ------------------------------------------------- live address table */

static size_t slot_of(const void *p)
{
	return (size_t)(((uintptr_t)p >> 3) * 0x9e3779b97f4a7c15ull >> 51) % HASHSZ;
}

static void live_add(const void *p)
{
	size_t i = slot_of(p);
	while (table[i]) {
		CHECK(table[i] != p, "object %p handed out twice", p);
		i = (i + 1) % HASHSZ;
	}
	table[i] = p;
}

static void live_del(const void *p)
{
	size_t i = slot_of(p);
	while (table[i] != p) {
		CHECK(table[i] != NULL, "freeing %p, which the model does not have", p);
		i = (i + 1) % HASHSZ;
	}
	table[i] = NULL;
	/* re-insert the rest of the cluster */
	for (size_t j = (i + 1) % HASHSZ; table[j]; j = (j + 1) % HASHSZ) {
		const void *q = table[j];
		table[j] = NULL;
		size_t k = slot_of(q);
		while (table[k])
			k = (k + 1) % HASHSZ;
		table[k] = q;
	}
}

/* ------------------------------------------------------ object checks */

static void fill(struct obj *o)
{
	o->tag = next_tag++;
	if (!o->tag)
		o->tag = next_tag++;
	memset(o->p, o->tag, o->size);
}

/*
 * Whether the n bytes at p all equal b.  One memcmp() of the range with
 * itself shifted by a byte, not a loop: under libFuzzer every compare in
 * the harness's own code calls a coverage callback, and byte loops over
 * every object took half of the fuzzer's time.  The loops below only find
 * the byte to report.
 */
static bool all_bytes(const unsigned char *p, size_t n, unsigned char b)
{
	return n == 0 || (p[0] == b && memcmp(p, p + 1, n - 1) == 0);
}

/* A zeroed allocation (what: how it was asked for, for the report). */
static void check_zero(const unsigned char *p, size_t n, const char *what)
{
	if (all_bytes(p, n, 0))
		return;
	for (size_t i = 0; i < n; i++)
		CHECK(p[i] == 0, "%s object %p (size %zu) byte %zu is 0x%02x", what,
		      (const void *)p, n, i, p[i]);
}

static void verify(const struct obj *o)
{
	if (all_bytes(o->p, o->size, o->tag))
		return;
	for (size_t i = 0; i < o->size; i++)
		CHECK(o->p[i] == o->tag, "object %p (size %zu) byte %zu is 0x%02x, "
		      "expected 0x%02x: overwritten while live", (void *)o->p, o->size,
		      i, o->p[i], o->tag);
}

/* A new object of cache c: check it, take it into the model. */
static void take(struct fcache *c, void *p, bool zero)
{
	struct obj *o = &c->live[c->nlive++];
	CHECK(((uintptr_t)p & (c->align - 1)) == 0, "%p not aligned to %u", p, c->align);
	CHECK(ksize(p) >= c->size, "ksize %zu < object size %zu", ksize(p), c->size);
	live_add(p);
	o->p = p;
	o->size = c->size;
	if (c->ctor)
		for (size_t i = 0; i < 16; i++)
			CHECK(o->p[i] == CTOR_BYTE, "object %p not in its constructed "
			      "state (byte %zu is 0x%02x)", p, i, o->p[i]);
	if (zero)
		check_zero(o->p, o->size, "__GFP_ZERO");
	fill(o);
}

/* Take object i out of the model (checked); returns its pointer. */
static void *give(struct fcache *c, unsigned int i)
{
	struct obj o = c->live[i];
	verify(&o);
	live_del(o.p);
	if (c->ctor)		/* leave it constructed, as the API requires */
		memset(o.p, CTOR_BYTE, 16);
	c->live[i] = c->live[--c->nlive];
	return o.p;
}

/* ---------------------------------------------------------- operations */

static gfp_t pick_gfp(bool ctor, bool *zero)
{
	static const gfp_t g[] = { GFP_KERNEL, GFP_NOWAIT, GFP_KERNEL | __GFP_ZERO,
				   GFP_ATOMIC };
	gfp_t gfp = g[next(4)];
	if (ctor)		/* __GFP_ZERO with a constructor is a misuse */
		gfp &= ~__GFP_ZERO;
	*zero = gfp & __GFP_ZERO;
	return gfp;
}

static void op_create(unsigned int k)
{
	static const size_t sizes[] = { 8, 16, 24, 64, 100, 192, 256, 1000, 4096, 8000 };
	static const unsigned int aligns[] = { 0, 8, 16, 64, 256 };
	static const unsigned int caps[] = { 0, 1, 4, 32, 0 };
	struct fcache *c = &caches[k];
	struct kmem_cache_args a;
	char name[32];
	slab_flags_t flags = 0;

	if (c->s)
		return;
	memset(&a, 0, sizeof(a));
	c->size = sizes[next(10)];
	a.align = aligns[next(5)];
	a.sheaf_capacity = caps[next(5)];
	if (a.sheaf_capacity == 0 && next(2))
		a.sheaf_capacity = sheaf_auto_capacity((unsigned int)c->size);
	c->ctor = c->size >= 16 && next(4) == 0;
	if (c->ctor)
		a.ctor = ctor_fn;
	switch (next(8)) {
	case 0:
		flags |= SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER;
		break;
	case 1:
		flags |= SLAB_HWCACHE_ALIGN;
		break;
	}
	snprintf(name, sizeof(name), "fuzz-%u", k);
	c->s = kmem_cache_create(name, (unsigned int)c->size, &a, flags);
	if (!c->s && injecting && errno == ENOMEM)
		return;
	CHECK(c->s != NULL, "kmem_cache_create(%s, %zu, align %u): %s", name, c->size,
	      a.align, strerror(errno));
	c->align = a.align ? a.align : sizeof(void *);
	c->rcu_ok = c->size >= sizeof(struct rcu_head) && !c->ctor;
	c->nlive = 0;
	c->rcu_pending = false;
	memset(c->sheaf, 0, sizeof(c->sheaf));
}

static void op_alloc(struct fcache *c)
{
	bool zero;
	gfp_t gfp = pick_gfp(c->ctor, &zero);
	if (c->nlive == MAXLIVE)
		return;
	void *p = kmem_cache_alloc(c->s, gfp);
	if (!p) {
		CHECK(injecting || !gfpflags_allow_blocking(gfp),
		      "GFP_KERNEL allocation failed with no failure injected");
		return;
	}
	take(c, p, zero);
}

static void op_free(struct fcache *c)
{
	if (c->nlive)
		kmem_cache_free(c->s, give(c, next(c->nlive)));
}

static void op_alloc_bulk(struct fcache *c)
{
	void *p[64];
	unsigned int n = 1 + next(64);
	bool zero;
	gfp_t gfp = pick_gfp(c->ctor, &zero);
	if (n > MAXLIVE - c->nlive)
		n = MAXLIVE - c->nlive;
	if (!n)
		return;
	int got = kmem_cache_alloc_bulk(c->s, gfp, n, p);
	CHECK(got == 0 || got == (int)n, "alloc_bulk(%u) gave %d", n, got);
	if (!got) {
		CHECK(injecting || !gfpflags_allow_blocking(gfp),
		      "alloc_bulk(%u) failed with no failure injected", n);
		return;
	}
	for (unsigned int i = 0; i < n; i++)
		take(c, p[i], zero);
}

static void op_free_bulk(struct fcache *c)
{
	void *p[64];
	unsigned int n = 1 + next(64);
	if (n > c->nlive)
		n = c->nlive;
	for (unsigned int i = 0; i < n; i++)
		p[i] = give(c, next(c->nlive));
	kmem_cache_free_bulk(next(4) ? c->s : NULL, n, p);
}

static void op_prefill(struct fcache *c)
{
	unsigned int k = next(MAXSHEAF), n = next(80);
	if (c->sheaf[k])
		return;
	errno = 0;
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(c->s, GFP_KERNEL, n);
	if (n == 0) {		/* documented: NULL, EINVAL */
		CHECK(sh == NULL && errno == EINVAL, "prefill(0) gave %p, errno %d",
		      (void *)sh, errno);
		return;
	}
	if (!sh) {
		CHECK(injecting, "prefill(%u) failed with no failure injected", n);
		return;
	}
	CHECK(kmem_cache_sheaf_size(sh) >= n, "prefill(%u) holds %u", n,
	      kmem_cache_sheaf_size(sh));
	c->sheaf[k] = sh;
}

/* Take up to what the sheaf holds: each must succeed, even under injection. */
static void op_alloc_from_sheaf(struct fcache *c)
{
	struct slab_sheaf *sh = c->sheaf[next(MAXSHEAF)];
	unsigned int n = 1 + next(8);
	bool zero;
	gfp_t gfp = pick_gfp(c->ctor, &zero);
	if (!sh)
		return;
	for (unsigned int i = 0; i < n && c->nlive < MAXLIVE; i++) {
		unsigned int had = kmem_cache_sheaf_size(sh);
		void *p = kmem_cache_alloc_from_sheaf(c->s, gfp, sh);
		if (!had) {
			CHECK(p == NULL, "an empty sheaf gave an object");
			return;
		}
		CHECK(p != NULL, "a sheaf holding %u objects gave none", had);
		CHECK(kmem_cache_sheaf_size(sh) == had - 1, "sheaf size %u after "
		      "taking one of %u", kmem_cache_sheaf_size(sh), had);
		take(c, p, zero);
	}
}

static void op_refill(struct fcache *c)
{
	unsigned int k = next(MAXSHEAF), n = next(80);
	if (!c->sheaf[k])
		return;
	unsigned int had = kmem_cache_sheaf_size(c->sheaf[k]);
	int rc = kmem_cache_refill_sheaf(c->s, GFP_KERNEL, &c->sheaf[k], n);
	CHECK(c->sheaf[k] != NULL, "refill lost the sheaf");
	if (rc) {
		CHECK(rc == -ENOMEM && injecting, "refill(%u) returned %d", n, rc);
		CHECK(kmem_cache_sheaf_size(c->sheaf[k]) >= had, "a failed refill "
		      "lost objects");
		return;
	}
	CHECK(kmem_cache_sheaf_size(c->sheaf[k]) >= n, "refill(%u) holds %u", n,
	      kmem_cache_sheaf_size(c->sheaf[k]));
}

static void op_return(struct fcache *c)
{
	unsigned int k = next(MAXSHEAF);
	if (c->sheaf[k]) {
		kmem_cache_return_sheaf(c->s, GFP_KERNEL, c->sheaf[k]);
		c->sheaf[k] = NULL;
	}
}

static void op_kfree_rcu(struct fcache *c)
{
	if (!c->nlive || !c->rcu_ok)
		return;
	void *p = give(c, next(c->nlive));
	SHEAF_KFREE_RCU((struct rcu_head *)p, p);
	c->rcu_pending = true;
}

static void op_kmalloc(void)
{
	static const size_t big[] = { 10000, 70000, 300000, 5u << 20 };
	size_t size = next(4) ? 1 + next(9000) : big[next(4)];
	bool zero = next(2);
	if (nk == MAXLIVE)
		return;
	/* Above KMALLOC_MAX_SIZE kmalloc() fails: kvmalloc() maps. */
	gfp_t gfp = GFP_KERNEL | (zero ? __GFP_ZERO : 0);
	void *p = size > KMALLOC_MAX_SIZE ? kvmalloc(size, gfp) : kmalloc(size, gfp);
	if (!p) {
		CHECK(injecting, "kmalloc(%zu) failed with no failure injected", size);
		return;
	}
	CHECK(((uintptr_t)p & 7) == 0, "kmalloc(%zu) gave %p", size, p);
	CHECK(ksize(p) >= size, "ksize %zu < %zu", ksize(p), size);
	live_add(p);
	struct obj *o = &kobjs[nk++];
	o->p = p;
	o->size = size;
	if (zero)
		check_zero(o->p, size, "kzalloc");
	fill(o);
}

static void op_krealloc(void)
{
	if (!nk)
		return;
	/* kvrealloc() also to and between huge sizes: a huge span resized
	 * in place, grown into its free neighbour, or its pages moved */
	static const size_t big[] = { (4u << 20) + 4096, 6u << 20 };
	unsigned int i = next(nk);
	struct obj *o = &kobjs[i];
	bool kv = next(2);
	size_t size = kv && !next(4) ? big[next(2)] : 1 + next(12000);
	verify(o);
	void *p = kv ? kvrealloc(o->p, size, GFP_KERNEL) : krealloc(o->p, size, GFP_KERNEL);
	if (!p) {
		CHECK(injecting, "%s(%zu) failed with no failure injected",
		      kv ? "kvrealloc" : "krealloc", size);
		verify(o);		/* the old object is untouched */
		return;
	}
	if (p != o->p) {
		live_del(o->p);
		live_add(p);
	}
	o->p = p;
	size_t keep = size < o->size ? size : o->size;
	for (size_t b = 0; b < keep; b++)
		CHECK(o->p[b] == o->tag, "krealloc lost byte %zu", b);
	o->size = size;
	fill(o);
}

static void op_kfree(void)
{
	if (!nk)
		return;
	unsigned int i = next(nk);
	verify(&kobjs[i]);
	live_del(kobjs[i].p);
	kfree(kobjs[i].p);
	kobjs[i] = kobjs[--nk];
}

static void inject(bool on)
{
	if (on) {
		char spec[64];
		sheaf_inject_page_failures((long)next(8), next(2) ? -1L : 1L + (long)next(16));
		sheaf_inject_sheaf_failures(next(2) ? -1L : 1L + (long)next(8));
		snprintf(spec, sizeof(spec), "%u,%u,%u,-1%s", 1 + next(4), next(101),
			 64 * next(8), next(4) ? "" : ",nowait");
		CHECK(sheaf_fault_set(SHEAF_FAULT_SLAB, spec) == 0, "spec %s refused", spec);
	} else {
		for (int i = 0; i < SHEAF_FAULT_NR; i++)
			sheaf_fault_set((enum sheaf_fault)i, NULL);
	}
	injecting = on;
}

/*
 * The cache's count of objects in use (allocated, not freed: held by the
 * program, in prefilled sheaves, or waiting for a grace period; not those
 * cached in per-CPU sheaves and barns) against the model, after the RCU
 * barrier has freed what was waiting.
 */
static void account(struct fcache *c)
{
	size_t held = c->nlive;
	if (c->rcu_pending)	/* a barrier waits for grace periods: only if needed */
		kvfree_rcu_barrier_on_cache(c->s);
	c->rcu_pending = false;
	for (unsigned int k = 0; k < MAXSHEAF; k++)
		held += kmem_cache_sheaf_size(c->sheaf[k]);
	size_t inuse = sheaf_cache_objects_inuse(c->s);
	CHECK(inuse == held, "cache %zu-byte: %zu objects in use, the model holds "
	      "%zu (live and in prefilled sheaves)", c->size, inuse, held);
}

/* Free everything of c, give back its sheaves, check the accounting, destroy. */
static void teardown(struct fcache *c)
{
	while (c->nlive)
		kmem_cache_free(c->s, give(c, 0));
	for (unsigned int k = 0; k < MAXSHEAF; k++)
		if (c->sheaf[k]) {
			kmem_cache_return_sheaf(c->s, GFP_KERNEL, c->sheaf[k]);
			c->sheaf[k] = NULL;
		}
	account(c);
	kmem_cache_destroy(c->s);
	c->s = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sheaf_page_info before, after;

	in = data;
	inlen = size;
	sheaf_page_info(&before);
	while (inlen) {
		unsigned int opc = next(32), k = next(NCACHE);
		struct fcache *c = &caches[k];
		if (opc < 2) {
			op_create(k);
			continue;
		}
		if (opc >= 20) {
			switch (opc) {
			case 20: case 21: case 22: op_kmalloc(); break;
			case 23: op_krealloc(); break;
			case 24: case 25: op_kfree(); break;
			case 26: inject(!injecting); break;
			case 27:
				if (c->s)
					teardown(c);
				break;
			case 28: kmem_cache_shrink(c->s ? c->s : NULL); break;
			default: op_create(k); break;
			}
			continue;
		}
		if (!c->s)
			op_create(k);
		if (!c->s)
			continue;
		switch (opc) {
		case 2: case 3: case 4: op_alloc(c); break;
		case 5: case 6: case 7: op_free(c); break;
		case 8: op_alloc_bulk(c); break;
		case 9: op_free_bulk(c); break;
		case 10: case 11: op_prefill(c); break;
		case 12: case 13: op_alloc_from_sheaf(c); break;
		case 14: op_refill(c); break;
		case 15: op_return(c); break;
		case 16: case 17: op_kfree_rcu(c); break;
		case 18: kmem_cache_shrink(c->s); break;
		case 19: account(c); break;
		default: op_free(c); break;
		}
	}
	inject(false);
	for (unsigned int k = 0; k < NCACHE; k++)
		if (caches[k].s)
			teardown(&caches[k]);
	while (nk) {
		verify(&kobjs[nk - 1]);
		live_del(kobjs[nk - 1].p);
		kfree(kobjs[--nk].p);
	}
	/* Every dedicated mapping of a huge kvmalloc is unmapped again. */
	sheaf_page_info(&after);
	CHECK(after.huge_bytes == before.huge_bytes, "huge kvmalloc mappings left: "
	      "%zu bytes before the input, %zu after", before.huge_bytes,
	      after.huge_bytes);
	return 0;
}
