/* SPDX-License-Identifier: MIT */
/*
 * stress.c - many threads (2 x CPUs + 2), random allocation and free on
 * three caches (24 bytes without sheaves, 256 bytes with sheaf_capacity 32,
 * 1000 bytes cache-line aligned without sheaves) and kmalloc of random
 * sizes, with:
 *  - frees from other threads through per-thread inboxes;
 *  - forced migrations (sched_setaffinity flipping each thread's CPU mask);
 *  - bulk alloc/free (also with a NULL cache), alloc_node, zalloc, kfree of
 *    cache objects, concurrent kmem_cache_shrink() and statistics reads;
 *  - thread churn: the run is split in rounds with new threads each;
 *  - with STRESS_FAULTS=1, failure injection switched at random every few
 *    milliseconds (sheaf_fault_set: slab, page and sheaf points, various
 *    probabilities, nowait-only or not): failed allocations are counted and
 *    must leave nothing behind; everything else is checked as usual.
 * Every object is stamped over its whole size on allocation (address, cache,
 * size, serial) and checked on free; a striped hash set of live addresses
 * catches an object handed out twice.  Afterwards every cache must be empty
 * (objects in use 0, no slab left after a shrink) and its statistics must
 * balance.
 *
 * Statistics are switched on at start (so the counters can be checked),
 * which keeps the inline fast paths of <sheaf/slab.h> out of the way;
 * STRESS_STATS=0 leaves them off, to stress those paths instead (the
 * counter checks are then skipped).
 *
 * Usage: stress [seconds]   (or STRESS_SECONDS; STRESS_THREADS overrides the
 * thread count, STRESS_CAPACITY the sheaf cache's capacity).  Exit status 0 on success; prints a one-line summary.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include "test_util.h"

#define NR_CACHES 3
#define KIND_KMALLOC NR_CACHES
#define NR_KINDS (NR_CACHES + 1)
#define MAX_LIVE 512
#define INBOX 256
#define ROUNDS 2

static const unsigned int cache_size[NR_CACHES] = { 24, 256, 1000 };
static const unsigned int cache_cap[NR_CACHES] = { 0, 32, 0 };
static const slab_flags_t cache_flags[NR_CACHES] = { 0, 0, SLAB_HWCACHE_ALIGN };
static const char *const cache_name[NR_CACHES] = { "stress-24", "stress-256-sheaf",
						   "stress-1000-hw" };
static struct kmem_cache *caches[NR_CACHES];

static atomic_bool stop;
static atomic_ulong failures;

#define FAIL(...)                                                              \
	do {                                                                   \
		fprintf(stderr, "stress: FAIL: " __VA_ARGS__);                 \
		fputc('\n', stderr);                                           \
		atomic_fetch_add(&failures, 1);                                \
	} while (0)

/* A corrupted object or a duplicate is fatal at once: nothing after it can
 * be trusted. */
#define DIE(...)                                                               \
	do {                                                                   \
		fprintf(stderr, "stress: FATAL: " __VA_ARGS__);                \
		fputc('\n', stderr);                                           \
		abort();                                                       \
	} while (0)

/* ========================================================= live set */

#define STRIPES 256

struct stripe {
	pthread_mutex_t lock;
	uintptr_t *slot;
	size_t mask;   /* capacity - 1 */
	size_t count;
} __attribute__((aligned(64)));

static struct stripe live_set[STRIPES];

static uint64_t hash_addr(uintptr_t a)
{
	uint64_t x = a;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static void set_init(void)
{
	for (int i = 0; i < STRIPES; i++) {
		pthread_mutex_init(&live_set[i].lock, NULL);
		live_set[i].mask = 63;
		live_set[i].slot = calloc(64, sizeof(uintptr_t));
		if (!live_set[i].slot)
			DIE("out of memory");
	}
}

static void set_put_locked(struct stripe *st, uintptr_t a)
{
	size_t i = (hash_addr(a) >> 8) & st->mask;
	while (st->slot[i])
		i = (i + 1) & st->mask;
	st->slot[i] = a;
	st->count++;
}

static void set_grow_locked(struct stripe *st)
{
	uintptr_t *old = st->slot;
	size_t oldn = st->mask + 1;
	st->mask = oldn * 2 - 1;
	st->slot = calloc(oldn * 2, sizeof(uintptr_t));
	if (!st->slot)
		DIE("out of memory");
	st->count = 0;
	for (size_t i = 0; i < oldn; i++)
		if (old[i])
			set_put_locked(st, old[i]);
	free(old);
}

/* Returns false when the address was already there. */
static bool set_insert(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uint64_t h = hash_addr(a);
	struct stripe *st = &live_set[h & (STRIPES - 1)];
	pthread_mutex_lock(&st->lock);
	size_t i = (h >> 8) & st->mask;
	for (; st->slot[i]; i = (i + 1) & st->mask) {
		if (st->slot[i] == a) {
			pthread_mutex_unlock(&st->lock);
			return false;
		}
	}
	if ((st->count + 1) * 2 > st->mask + 1) {
		set_grow_locked(st);
		set_put_locked(st, a);
	} else {
		st->slot[i] = a;
		st->count++;
	}
	pthread_mutex_unlock(&st->lock);
	return true;
}

/* Returns false when the address was not there. */
static bool set_remove(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uint64_t h = hash_addr(a);
	struct stripe *st = &live_set[h & (STRIPES - 1)];
	pthread_mutex_lock(&st->lock);
	size_t i = (h >> 8) & st->mask;
	while (st->slot[i] && st->slot[i] != a)
		i = (i + 1) & st->mask;
	if (!st->slot[i]) {
		pthread_mutex_unlock(&st->lock);
		return false;
	}
	/* Backward-shift deletion keeps every probe chain unbroken. */
	st->slot[i] = 0;
	st->count--;
	for (size_t j = (i + 1) & st->mask; st->slot[j]; j = (j + 1) & st->mask) {
		size_t k = (hash_addr(st->slot[j]) >> 8) & st->mask;
		bool move = (j > i) ? (k <= i || k > j) : (k <= i && k > j);
		if (move) {
			st->slot[i] = st->slot[j];
			st->slot[j] = 0;
			i = j;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return true;
}

static size_t set_count(void)
{
	size_t n = 0;
	for (int i = 0; i < STRIPES; i++) {
		pthread_mutex_lock(&live_set[i].lock);
		n += live_set[i].count;
		pthread_mutex_unlock(&live_set[i].lock);
	}
	return n;
}

/* ============================================================ stamps */

struct obj {
	void *p;
	uint32_t size;   /* bytes stamped: the object or kmalloc request size */
	uint32_t serial;
	uint8_t kind;    /* cache index, or KIND_KMALLOC */
};

static uint64_t stamp_word(uintptr_t addr, uint64_t tag, size_t i)
{
	if (i == 0)
		return addr ^ tag;
	uint64_t x = addr + tag + i * 0x9E3779B97F4A7C15ull;
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return x;
}

static uint64_t obj_tag(const struct obj *o)
{
	return ((uint64_t)o->kind << 56) ^ ((uint64_t)o->size << 32) ^ o->serial ^
	       0x5EAF000000000000ull;
}

static void stamp(const struct obj *o)
{
	uint64_t tag = obj_tag(o);
	unsigned char *c = o->p;
	size_t words = o->size / 8, i;
	for (i = 0; i < words; i++) {
		uint64_t w = stamp_word((uintptr_t)o->p, tag, i);
		memcpy(c + i * 8, &w, 8);
	}
	if (o->size % 8) {
		uint64_t w = stamp_word((uintptr_t)o->p, tag, i);
		memcpy(c + i * 8, &w, o->size % 8);
	}
}

static void check_stamp(const struct obj *o, const char *where)
{
	uint64_t tag = obj_tag(o);
	const unsigned char *c = o->p;
	size_t words = o->size / 8, i;
	for (i = 0; i <= words; i++) {
		size_t n = i < words ? 8 : o->size % 8;
		if (!n)
			break;
		uint64_t want = stamp_word((uintptr_t)o->p, tag, i), got = 0;
		memcpy(&got, c + i * 8, n);
		if (memcmp(&got, &want, n) != 0)
			DIE("%s: object %p (%s, %u bytes, serial %u) corrupted at "
			    "byte %zu: %016llx, expected %016llx", where, o->p,
			    o->kind < NR_CACHES ? cache_name[o->kind] : "kmalloc",
			    o->size, o->serial, i * 8, (unsigned long long)got,
			    (unsigned long long)want);
	}
}

/* ========================================================== threads */

struct inbox {
	pthread_mutex_t lock;
	unsigned int head, count;
	struct obj ring[INBOX];
};

struct counters {
	uint64_t allocs[NR_KINDS];      /* objects obtained (single + bulk) */
	uint64_t bulk_objs[NR_KINDS];
	uint64_t frees[NR_KINDS];
	uint64_t remote_frees;
	uint64_t migrations;
	uint64_t shrinks;
	uint64_t nowait_fail;
	uint64_t fault_fail;		/* failed while faults were injected */
};

struct thread {
	pthread_t tid;
	int idx;
	uint64_t rng;
	uint32_t serial;
	int nlive;
	struct obj live[MAX_LIVE];
	struct counters c;
	struct inbox in;
};

static struct thread *threads;
static int nthreads;
static cpu_set_t allowed;
static int allowed_cpus[CPU_SETSIZE];
static int nallowed;
static unsigned int nodes;
static struct counters total;
static bool faults;			/* STRESS_FAULTS=1 */

static void note_alloc(struct thread *t, struct obj *o, const char *how)
{
	if ((uintptr_t)o->p % 8)
		DIE("%s: %p not 8-byte aligned", how, o->p);
	if (o->kind == 2 && (uintptr_t)o->p % 64)
		DIE("%s: %p of a SLAB_HWCACHE_ALIGN cache not 64-byte aligned",
		    how, o->p);
	if (!set_insert(o->p))
		DIE("%s: object %p (%s) handed out while still live", how, o->p,
		    o->kind < NR_CACHES ? cache_name[o->kind] : "kmalloc");
	o->serial = ++t->serial;
	stamp(o);
	t->c.allocs[o->kind]++;
}

/* Check and forget an object; the caller frees it right after. */
static void note_free(struct thread *t, const struct obj *o, const char *how)
{
	check_stamp(o, how);
	if (!set_remove(o->p))
		DIE("%s: object %p freed but not live", how, o->p);
	t->c.frees[o->kind]++;
}

static void free_obj(struct thread *t, const struct obj *o, const char *how)
{
	note_free(t, o, how);
	if (o->kind == KIND_KMALLOC)
		kfree(o->p);
	else if (rng_below(&t->rng, 20) == 0)
		kfree(o->p); /* kfree takes any slab object */
	else
		kmem_cache_free(caches[o->kind], o->p);
}

static void add_live(struct thread *t, const struct obj *o)
{
	if (t->nlive == MAX_LIVE) {
		size_t v = rng_below(&t->rng, MAX_LIVE);
		free_obj(t, &t->live[v], "evict");
		t->live[v] = *o;
		return;
	}
	t->live[t->nlive++] = *o;
}

static struct obj take_live(struct thread *t, size_t i)
{
	struct obj o = t->live[i];
	t->live[i] = t->live[--t->nlive];
	return o;
}

static size_t kmalloc_size(struct thread *t)
{
	uint64_t r = rng_below(&t->rng, 100);
	if (r < 70)
		return 1 + rng_below(&t->rng, 512);
	if (r < 97)
		return 513 + rng_below(&t->rng, KMALLOC_MAX_CACHE_SIZE - 512);
	return KMALLOC_MAX_CACHE_SIZE + 1 + rng_below(&t->rng, 60000);
}

static void do_alloc(struct thread *t)
{
	struct obj o = { 0 };
	o.kind = (uint8_t)rng_below(&t->rng, NR_KINDS);
	const char *how = "alloc";
	if (o.kind == KIND_KMALLOC) {
		o.size = (uint32_t)kmalloc_size(t);
		uint64_t r = rng_below(&t->rng, 10);
		if (r == 0) {
			o.p = kmalloc(o.size, GFP_NOWAIT);
			if (!o.p) {
				t->c.nowait_fail++;
				return;
			}
		} else if (r == 1 && nodes > 1) {
			int node = (int)rng_below(&t->rng, nodes);
			o.p = kmalloc_node(o.size, GFP_KERNEL | __GFP_THISNODE, node);
			if (o.p && sheaf_obj_node(o.p) != node)
				DIE("kmalloc_node(%d) gave node %d", node,
				    sheaf_obj_node(o.p));
		} else if (r == 2) {
			o.p = kzalloc(o.size, GFP_KERNEL);
			if (o.p && !ZERO_OR_NULL_PTR(o.p)) {
				const unsigned char *c = o.p;
				for (size_t i = 0; i < o.size; i++)
					if (c[i])
						DIE("kzalloc(%u) %p byte %zu not zero",
						    o.size, o.p, i);
			}
		} else {
			o.p = kmalloc(o.size, GFP_KERNEL);
		}
		if (!o.p && faults) {
			t->c.fault_fail++;
			return;
		}
		if (!o.p)
			DIE("kmalloc(%u) failed", o.size);
		if (ksize(o.p) < o.size)
			DIE("ksize(%p) = %zu < %u", o.p, ksize(o.p), o.size);
		how = "kmalloc";
	} else {
		struct kmem_cache *s = caches[o.kind];
		o.size = cache_size[o.kind];
		uint64_t r = rng_below(&t->rng, 10);
		if (r == 0) {
			o.p = kmem_cache_zalloc(s, GFP_KERNEL);
			if (o.p) {
				const unsigned char *c = o.p;
				for (size_t i = 0; i < o.size; i++)
					if (c[i])
						DIE("zalloc %p byte %zu not zero", o.p, i);
			}
		} else if (r == 1) {
			int node = nodes > 1 ? (int)rng_below(&t->rng, nodes) : 0;
			bool thisnode = rng_below(&t->rng, 2);
			o.p = kmem_cache_alloc_node(s, GFP_KERNEL | (thisnode ? __GFP_THISNODE : 0),
						    node);
			if (o.p && thisnode && sheaf_obj_node(o.p) != node)
				DIE("alloc_node(%d, THISNODE) gave node %d", node,
				    sheaf_obj_node(o.p));
		} else {
			o.p = kmem_cache_alloc(s, GFP_KERNEL);
		}
		if (!o.p && faults) {
			t->c.fault_fail++;
			return;
		}
		if (!o.p)
			DIE("kmem_cache_alloc(%s) failed", cache_name[o.kind]);
	}
	note_alloc(t, &o, how);
	add_live(t, &o);
}

static void do_bulk_alloc(struct thread *t)
{
	void *p[64];
	unsigned int k = (unsigned int)rng_below(&t->rng, NR_CACHES);
	size_t n = 1 + rng_below(&t->rng, 64);
	int got = kmem_cache_alloc_bulk(caches[k], GFP_KERNEL, n, p);
	if (got == 0 && faults) {
		t->c.fault_fail++;
		return;
	}
	if ((size_t)got != n)
		DIE("alloc_bulk(%s, %zu) returned %d", cache_name[k], n, got);
	for (size_t i = 0; i < n; i++) {
		struct obj o = { .p = p[i], .size = cache_size[k], .kind = (uint8_t)k };
		if (!o.p)
			DIE("alloc_bulk returned a NULL entry");
		note_alloc(t, &o, "alloc_bulk");
		t->c.bulk_objs[k]++;
		add_live(t, &o);
	}
}

static void do_bulk_free(struct thread *t)
{
	void *p[32];
	size_t n = 0;
	bool mixed = rng_below(&t->rng, 2);
	unsigned int k = (unsigned int)rng_below(&t->rng, NR_CACHES);
	for (int tries = 0; tries < 64 && n < 32 && t->nlive; tries++) {
		size_t i = rng_below(&t->rng, (uint64_t)t->nlive);
		if (!mixed && t->live[i].kind != k)
			continue;
		struct obj o = take_live(t, i);
		note_free(t, &o, "free_bulk");
		p[n++] = o.p;
		if (mixed && n < 32 && rng_below(&t->rng, 8) == 0)
			p[n++] = NULL; /* skipped entries */
	}
	kmem_cache_free_bulk(mixed ? NULL : caches[k], n, p);
}

static void do_send(struct thread *t)
{
	if (!t->nlive || nthreads < 2)
		return;
	struct obj o = take_live(t, rng_below(&t->rng, (uint64_t)t->nlive));
	int to = (int)rng_below(&t->rng, (uint64_t)nthreads - 1);
	if (to >= t->idx)
		to++;
	struct inbox *in = &threads[to].in;
	pthread_mutex_lock(&in->lock);
	if (in->count < INBOX) {
		in->ring[(in->head + in->count++) % INBOX] = o;
		pthread_mutex_unlock(&in->lock);
		return;
	}
	pthread_mutex_unlock(&in->lock);
	free_obj(t, &o, "free (inbox full)");
}

static void drain_inbox(struct thread *t, struct inbox *in)
{
	struct obj batch[INBOX];
	unsigned int n = 0;
	pthread_mutex_lock(&in->lock);
	while (in->count) {
		batch[n++] = in->ring[in->head];
		in->head = (in->head + 1) % INBOX;
		in->count--;
	}
	pthread_mutex_unlock(&in->lock);
	for (unsigned int i = 0; i < n; i++) {
		free_obj(t, &batch[i], "remote free");
		t->c.remote_frees++;
	}
}

static void do_migrate(struct thread *t)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int i = 0; i < nallowed; i++)
		if (rng_below(&t->rng, 2))
			CPU_SET(allowed_cpus[i], &set);
	if (CPU_COUNT(&set) == 0)
		CPU_SET(allowed_cpus[rng_below(&t->rng, (uint64_t)nallowed)], &set);
	if (sched_setaffinity(0, sizeof(set), &set) == 0)
		t->c.migrations++;
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	unsigned long iter = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t r = rng_below(&t->rng, 1000);
		iter++;
		if (r < 420) {
			do_alloc(t);
		} else if (r < 740) {
			if (t->nlive) {
				struct obj o = take_live(t, rng_below(&t->rng, (uint64_t)t->nlive));
				free_obj(t, &o, "free");
			}
		} else if (r < 860) {
			do_send(t);
		} else if (r < 900) {
			drain_inbox(t, &t->in);
		} else if (r < 930) {
			do_bulk_alloc(t);
		} else if (r < 960) {
			do_bulk_free(t);
		} else if (r < 975) {
			do_migrate(t);
		} else if (r < 976) {
			unsigned int k = (unsigned int)rng_below(&t->rng, NR_CACHES);
			if (kmem_cache_shrink(caches[k]) < 0) /* 1: slabs in use remain */
				FAIL("kmem_cache_shrink(%s) failed", cache_name[k]);
			t->c.shrinks++;
		} else if (r < 980) {
			sched_yield();
		}
	}
	/* Leave the inbox for the main thread: others may still send. */
	while (t->nlive) {
		struct obj o = take_live(t, (size_t)t->nlive - 1);
		free_obj(t, &o, "final free");
	}
	(void)iter;
	return NULL;
}

/* ============================================================= main */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void add_counters(struct counters *dst, const struct counters *src)
{
	for (int k = 0; k < NR_KINDS; k++) {
		dst->allocs[k] += src->allocs[k];
		dst->bulk_objs[k] += src->bulk_objs[k];
		dst->frees[k] += src->frees[k];
	}
	dst->remote_frees += src->remote_frees;
	dst->migrations += src->migrations;
	dst->shrinks += src->shrinks;
	dst->nowait_fail += src->nowait_fail;
	dst->fault_fail += src->fault_fail;
}

/* STRESS_FAULTS: a new random setting of the three injection points. */
static void shuffle_faults(uint64_t *rng)
{
	static const char *const slab[] = { "0", "1,1,0,-1", "1,5,0,-1", "1,20,0,-1",
					    "1,10,0,-1,nowait", "7,100,0,-1",
					    "1,50,0,-1,cache=stress-*" };
	static const char *const page[] = { "0", "0", "1,2,0,-1", "1,10,0,-1",
					    "3,100,0,50" };
	static const char *const sheaf[] = { "0", "0", "1,10,0,-1", "1,100,0,-1" };
	if (sheaf_fault_set(SHEAF_FAULT_SLAB, slab[rng_below(rng, 7)]) ||
	    sheaf_fault_set(SHEAF_FAULT_PAGE, page[rng_below(rng, 5)]) ||
	    sheaf_fault_set(SHEAF_FAULT_SHEAF, sheaf[rng_below(rng, 4)]))
		DIE("sheaf_fault_set refused a valid setting");
}

static void faults_off(void)
{
	for (int i = 0; i < SHEAF_FAULT_NR; i++)
		sheaf_fault_set((enum sheaf_fault)i, NULL);
}

static void run_round(double seconds, uint64_t seed)
{
	threads = calloc((size_t)nthreads, sizeof(*threads));
	if (!threads)
		DIE("out of memory");
	atomic_store(&stop, false);
	for (int i = 0; i < nthreads; i++) {
		threads[i].idx = i;
		threads[i].rng = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 7919 + 1;
		pthread_mutex_init(&threads[i].in.lock, NULL);
	}
	for (int i = 0; i < nthreads; i++) {
		int e = pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]);
		if (e)
			DIE("pthread_create: %s", strerror(e));
	}
	/* Meanwhile, read statistics and accounting concurrently. */
	double end = now() + seconds;
	uint64_t sink = 0, frng = seed * 31 + 7;
	while (now() < end) {
		if (faults)
			shuffle_faults(&frng);
		struct sheaf_page_info pi;
		for (int k = 0; k < NR_CACHES; k++) {
			sink += sheaf_stats_get(caches[k], SHEAF_STAT_ALLOC_FASTPATH);
			sink += sheaf_cache_objects_inuse(caches[k]);
			sink += sheaf_cache_slabs(caches[k]);
		}
		sheaf_page_info(&pi);
		sink += pi.used_pages;
		usleep(10000);
	}
	(void)sink;
	atomic_store(&stop, true);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i].tid, NULL);
	if (faults)
		faults_off();

	/* Everything still queued is freed here, by a thread that never
	 * allocated it. */
	struct thread *mainer = calloc(1, sizeof(*mainer));
	if (!mainer)
		DIE("out of memory");
	mainer->rng = seed + 99;
	for (int i = 0; i < nthreads; i++)
		drain_inbox(mainer, &threads[i].in);
	add_counters(&total, &mainer->c);
	for (int i = 0; i < nthreads; i++) {
		add_counters(&total, &threads[i].c);
		pthread_mutex_destroy(&threads[i].in.lock);
	}
	free(mainer);
	free(threads);
	threads = NULL;
}

int main(int argc, char **argv)
{
	const char *st = getenv("STRESS_STATS");
	bool stats = !(st && !strcmp(st, "0"));
	if (stats)
		sheaf_stats_enable(true);

	double seconds = 2.0;
	const char *env = getenv("STRESS_SECONDS");
	if (argc > 1)
		seconds = atof(argv[1]);
	else if (env)
		seconds = atof(env);
	if (seconds <= 0)
		seconds = 2.0;
	faults = getenv("STRESS_FAULTS") && atoi(getenv("STRESS_FAULTS")) > 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		perror("sched_getaffinity");
		return 1;
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed))
			allowed_cpus[nallowed++] = c;
	nthreads = 2 * nallowed + 2;
	if (getenv("STRESS_THREADS") && atoi(getenv("STRESS_THREADS")) > 0)
		nthreads = atoi(getenv("STRESS_THREADS"));
	nodes = sheaf_nr_nodes();

	/* STRESS_CAPACITY=N: the sheaf cache's capacity (1..4 in CTest). */
	unsigned int sheaf_cap = cache_cap[1];
	if (getenv("STRESS_CAPACITY") && atoi(getenv("STRESS_CAPACITY")) > 0)
		sheaf_cap = (unsigned int)atoi(getenv("STRESS_CAPACITY"));

	set_init();
	for (int k = 0; k < NR_CACHES; k++) {
		struct kmem_cache_args args = { 0 };
		args.sheaf_capacity = cache_cap[k] ? sheaf_cap : 0;
		caches[k] = kmem_cache_create(cache_name[k], cache_size[k], &args,
					      cache_flags[k]);
		if (!caches[k]) {
			fprintf(stderr, "stress: cannot create %s: %s\n", cache_name[k],
				strerror(errno));
			return 1;
		}
	}

	double t0 = now();
	for (int r = 0; r < ROUNDS; r++)
		run_round(seconds / ROUNDS, (uint64_t)r + 1);
	double elapsed = now() - t0;

	/* Nothing may be left. */
	uint64_t slot_busy = 0;
	size_t live = set_count();
	if (live)
		FAIL("%zu objects still in the live set after the run", live);
	for (int k = 0; k < NR_KINDS; k++)
		if (total.allocs[k] != total.frees[k])
			FAIL("kind %d: %llu allocated, %llu freed", k,
			     (unsigned long long)total.allocs[k],
			     (unsigned long long)total.frees[k]);

	for (int k = 0; k < NR_CACHES; k++) {
		struct kmem_cache *s = caches[k];
		if (kmem_cache_shrink(s) != 0)
			FAIL("%s: kmem_cache_shrink failed", cache_name[k]);
		size_t inuse = sheaf_cache_objects_inuse(s);
		size_t slabs = sheaf_cache_slabs(s);
		if (inuse)
			FAIL("%s: %zu objects in use after freeing everything",
			     cache_name[k], inuse);
		if (slabs)
			FAIL("%s: %zu slabs left after kmem_cache_shrink",
			     cache_name[k], slabs);

		if (total.allocs[k] == 0)
			FAIL("%s: no allocation happened", cache_name[k]);
		/* Under injection the slow-path counters also count the tries
		 * that failed (as the kernel's alloc_slowpath does): they
		 * cannot balance against what the threads got. */
		if (stats)
			slot_busy += sheaf_stats_get(s, SHEAF_STAT_SLOT_BUSY);
		if (!stats || faults)
			continue;
		uint64_t sa = sheaf_stats_get(s, SHEAF_STAT_ALLOC_FASTPATH) +
			      sheaf_stats_get(s, SHEAF_STAT_ALLOC_SLOWPATH);
		uint64_t sf = sheaf_stats_get(s, SHEAF_STAT_FREE_FASTPATH) +
			      sheaf_stats_get(s, SHEAF_STAT_FREE_SLOWPATH);
		if (sa != sf)
			FAIL("%s: statistics do not balance: alloc_fastpath+alloc_slowpath "
			     "%llu, free_fastpath+free_slowpath %llu", cache_name[k],
			     (unsigned long long)sa, (unsigned long long)sf);
		/*
		 * The kernel 7.2 meanings, on sheaf and classic caches alike:
		 * every allocation counts once, in alloc_fastpath (a slot's
		 * sheaf or cpu freelist) or alloc_slowpath (a slab, sheaf
		 * refills not counted), every free likewise (sheaf flushes not
		 * counted).  The 6.18 aliases read the fast-path items on a
		 * cache with sheaves (SHEAF_DEFAULT_CAPACITY may give one), 0
		 * on a classic one.
		 */
		unsigned int cap = sheaf_cache_capacity(s);
		if (sa != total.allocs[k])
			FAIL("%s: alloc_fastpath+alloc_slowpath %llu, but %llu objects "
			     "were allocated (%llu of them in bulk)", cache_name[k],
			     (unsigned long long)sa, (unsigned long long)total.allocs[k],
			     (unsigned long long)total.bulk_objs[k]);
		if (sf != total.frees[k])
			FAIL("%s: free_fastpath+free_slowpath %llu, but %llu objects "
			     "were freed", cache_name[k], (unsigned long long)sf,
			     (unsigned long long)total.frees[k]);
		uint64_t aa = sheaf_stats_get(s, SHEAF_STAT_ALLOC_CPU_SHEAF);
		uint64_t fa = sheaf_stats_get(s, SHEAF_STAT_FREE_CPU_SHEAF);
		if (aa != (cap ? sheaf_stats_get(s, SHEAF_STAT_ALLOC_FASTPATH) : 0) ||
		    fa != (cap ? sheaf_stats_get(s, SHEAF_STAT_FREE_FASTPATH) : 0))
			FAIL("%s: the aliases alloc_cpu_sheaf %llu, free_cpu_sheaf %llu "
			     "are not the fast-path items (capacity %u)", cache_name[k],
			     (unsigned long long)aa, (unsigned long long)fa, cap);
		if (sa != sf || sa != total.allocs[k] || sf != total.frees[k]) {
			fprintf(stderr, "stress: %s counters:\n", cache_name[k]);
			sheaf_stats_print(s, stderr);
		}
	}

	/* With yields injected while locks are held, other threads of the same
	 * CPU must have found slots held and taken the slab-layer fallback. */
	if (stats && getenv("SHEAF_DEBUG_YIELD") && slot_busy == 0)
		FAIL("SHEAF_DEBUG_YIELD is set but no operation found a slot held\n");
	unsigned long fails = atomic_load(&failures);
	if (!fails) {
		struct err_capture cap;
		capture_begin(&cap);
		for (int k = 0; k < NR_CACHES; k++)
			kmem_cache_destroy(caches[k]);
		capture_end(&cap);
		if (cap.len)
			FAIL("kmem_cache_destroy of empty caches printed: %s", cap.text);
		fails = atomic_load(&failures);
	}

	uint64_t allocs = 0, frees = 0;
	for (int k = 0; k < NR_KINDS; k++) {
		allocs += total.allocs[k];
		frees += total.frees[k];
	}
	printf("stress: %s: %d threads on %d cpus, %u nodes, %s, stats %s, %.1f s, "
	       "%llu allocs, %llu frees (%llu remote), %llu migrations, %llu shrinks, "
	       "%llu nowait failures, %llu injected failures (%llu failed allocations)\n",
	       fails ? "FAILED" : "OK", nthreads, nallowed, nodes,
	       sheaf_percpu_mode(), stats ? "on" : "off", elapsed,
	       (unsigned long long)allocs,
	       (unsigned long long)frees, (unsigned long long)total.remote_frees,
	       (unsigned long long)total.migrations,
	       (unsigned long long)total.shrinks,
	       (unsigned long long)total.nowait_fail,
	       (unsigned long long)(sheaf_fault_injected(SHEAF_FAULT_SLAB) +
				    sheaf_fault_injected(SHEAF_FAULT_PAGE) +
				    sheaf_fault_injected(SHEAF_FAULT_SHEAF)),
	       (unsigned long long)total.fault_fail);
	return fails ? 1 : 0;
}
