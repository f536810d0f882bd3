/* SPDX-License-Identifier: MIT */
/*
 * adversary.c - an adversarial stress test: everything a program may do to
 * the per-CPU fast paths at once, and some things the library must survive.
 *
 * tests/stress.c checks that random allocation and free keep objects
 * intact.  This test attacks the places where per-CPU state can go wrong:
 * the smallest sheaves (capacities 1 to 4, where a sheaf is full or empty
 * after one operation and barn exchanges happen all the time), restartable
 * sections hit by signals and migrations, remote flushes, thread exit,
 * fork() while other threads are inside the allocator, and a thread that
 * has no rseq area at all.  For a set time (argv[1] or ADVERSARY_SECONDS,
 * default 3 s; argv wins) it runs:
 *
 *  - workers (2 x CPUs + 2): random allocation and free on nine caches
 *    (sheaf_capacity 1, 1, 2, 3, 4, the automatic capacity twice, and two
 *    classic caches without sheaves, several sizes) and kmalloc of random
 *    sizes; kfree(), krealloc(), bulk allocation and free (also with a NULL
 *    cache), frees from other threads through per-slot inboxes, kfree_rcu(),
 *    also inside a read-side section followed by allocations that must not
 *    get the object back before a grace period, kfree_rcu_mightsleep(),
 *    occasionally kvfree_rcu_barrier().  Each worker lives 20-300 ms, hands
 *    half its objects to other slots and exits; a new one takes its slot.
 *    Workers run at nice 5, so that the helpers below (nice 0) act
 *    whenever they want;
 *  - a churn thread starting short-lived threads that allocate and free a
 *    few hundred objects (kfree_rcu() too) and leave some objects behind
 *    for the workers to free;
 *  - a signal storm: SIGUSR1 to the workers with pthread_kill() at a high
 *    rate.  The handler only bumps a counter and touches memory: nothing in
 *    libsheaf is async-signal-safe, so that is all a handler may do;
 *  - affinity thrash: every worker's CPU mask flipped every few microseconds;
 *  - an RCU storm: kfree_rcu_mightsleep() and kfree_rcu() without pause on
 *    kmalloc objects and the caches without sheaves (the pointer batch);
 *  - a shrinker: kmem_cache_shrink() of every cache (and of the kmalloc
 *    caches) in a loop, with sheaf_cache_cached_objects() and
 *    kvfree_rcu_barrier() now and then;
 *  - a forker: fork() while all that runs; each child checks and frees
 *    objects it inherited, starts two threads that allocate and free, joins
 *    them, shrinks, waits for its kfree_rcu()s and _exit(0)s.  A child that
 *    does not finish within 30 s hangs on a lock it inherited: it is killed
 *    and the test fails ("child N hung");
 *  - one worker that unregisters its rseq area (glibc's, at the thread
 *    pointer + __rseq_offset) and then allocates and frees like the others
 *    for the whole run: a thread without rseq must still get correct
 *    objects (whether the unregistration worked is reported).
 *
 * Every object is stamped over its whole size on allocation (address, kind,
 * size, serial; written through a volatile pointer so that no write can be
 * dropped) and checked when it is freed; a striped hash set of live
 * addresses stops the test at the first object handed out twice.  At the
 * end everything is freed, kvfree_rcu_barrier() and kmem_cache_shrink()
 * run, and every cache must be empty (no object in use, no slab), and
 * kmem_cache_destroy() must print nothing.
 *
 * Malloc mode (--malloc or ADVERSARY_MALLOC=1; the program adversary_malloc,
 * built from this file with ADVERSARY_MALLOC_BUILD and not linked with
 * libsheaf, run under LD_PRELOAD=libsheaf-malloc.so): the same storm on
 * malloc, calloc, realloc, posix_memalign, aligned_alloc and free, with
 * malloc_trim(0) as the shrink (and no RCU).  It fails when libsheaf-malloc
 * is not the process's malloc.
 *
 * ADVERSARY_DISABLE=a,b,...  switches parts off, to tell which one breaks
 * the library: cap1 (the capacity-1 caches), fork, unregister, rcu (every
 * kfree_rcu), readers (the workers' read-side checks), signals, affinity,
 * shrink, churn.  ADVERSARY_ABORT=1 aborts (for a core dump) instead of
 * exiting with status 1 on a failure.
 *
 * Output: one line, "adversary: OK: <mode> <seconds>s: N operations, ..."
 * and exit status 0, or "adversary: FAIL: ..." lines and exit status 1.
 *
 * TSan (make tsan): the library runs its fallback mode there; forks are
 * off (see forks_supported()), everything else runs.
 *
 * Rules the test keeps, so that a failure is the library's: the SIGUSR1
 * handler calls nothing; a fork child uses only locks made in the child and
 * prints with write(); no reader is registered with liburcu across a
 * fork() (fork_guard).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ADVERSARY_MALLOC_BUILD
#include <sheaf/rcu.h>
#include <sheaf/slab.h>
#include <sheaf/stats.h>
#endif

#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define ADV_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ADV_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ADV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ADV_ASAN 1
#endif
#endif

#ifndef RSEQ_SIG
#define RSEQ_SIG 0x53053053 /* glibc's signature on x86-64 */
#endif
#define ADV_RSEQ_FLAG_UNREGISTER 1

#define MAX_LIVE 384		/* objects a worker keeps */
#define LIGHT_LIVE 64		/* objects a short-lived thread keeps */
#define INBOX 256
#define BATCH_MAX 48		/* objects the forker hands to a child */
#define CHILD_DEADLINE 30	/* seconds before a child counts as hung */
#define CHILD_ALARM 60		/* the child's own backstop */
#define JOIN_DEADLINE 60	/* seconds for a thread to stop at the end */
#define GOLDEN 0x9E3779B97F4A7C15ull

/* ========================================================= messages */

static int in_child;		/* set in a fork child (one thread then) */
static bool abort_on_fail;	/* ADVERSARY_ABORT=1 */
static atomic_ulong failures;
static atomic_bool stop;

/*
 * One line on stderr with a single write(): usable from every thread, in a
 * fork child (whose stdio locks may be held by threads it does not have)
 * and from the crash handlers.
 */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[1024];
	int n;
	if (in_child)
		n = snprintf(line, sizeof(line), "adversary: child %d: ", (int)getpid());
	else
		n = snprintf(line, sizeof(line), "adversary: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

static void die_now(void) __attribute__((noreturn));
static void die_now(void)
{
	if (in_child)
		_exit(3);
	if (abort_on_fail)
		abort();
	_exit(1);
}

/* A failure the run can go on after (a hung child, a count that is off). */
#define FAIL(...)                                                              \
	do {                                                                   \
		say("FAIL: " __VA_ARGS__);                                     \
		atomic_fetch_add(&failures, 1);                                \
	} while (0)

/* A corrupted or duplicated object: nothing after it can be trusted. */
#define DIE(...)                                                               \
	do {                                                                   \
		say("FAIL: " __VA_ARGS__);                                     \
		die_now();                                                     \
	} while (0)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_us(unsigned long us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000),
			       .tv_nsec = (long)(us % 1000000) * 1000 };
	nanosleep(&ts, NULL); /* EINTR: a shorter sleep is fine */
}

/* ============================================================ modes */

static bool malloc_mode;
static char mode_name[32];

/* ADVERSARY_DISABLE: parts switched off. */
static bool no_cap1, no_fork, no_unregister, no_rcu, no_readers, no_signals,
	no_affinity, no_shrink, no_churn;

/*
 * Held for reading by a worker while it is registered with liburcu (for one
 * read-side check), for writing by the forker around fork().  liburcu
 * requires every reader registration to be released before a fork() whose
 * child uses RCU: the child's registry would still list the parent's
 * threads, whose TLS the child's new threads reuse (its synchronize_rcu()
 * then crashes or waits for ever).  That is the test's own registration,
 * so the test keeps the rule; libsheaf registers nothing itself.
 */
static pthread_rwlock_t fork_guard;

/* ================================================================ kinds */

/*
 * An object's kind: a cache index, KIND_KMALLOC, or in malloc mode how it
 * was obtained (all of them are freed with free()).
 */
#ifndef ADVERSARY_MALLOC_BUILD
#define CAP_AUTO 0xFFFFu

/*
 * A cache of the test.  Invariant: caches[k] was created from
 * cache_defs[k] and has exactly the capacity asked for (checked at start);
 * the classic caches (cap 0) are entries 7 and 8 (the RCU storm's).
 */
struct cache_def {
	const char *name;
	unsigned int size;
	unsigned int cap;	/* sheaf_capacity asked for, CAP_AUTO: automatic */
	slab_flags_t flags;
};

static const struct cache_def cache_defs[] = {
	{ "adv-cap1-48", 48, 1, 0 },
	{ "adv-cap1-520", 520, 1, 0 },
	{ "adv-cap2-16", 16, 2, 0 },
	{ "adv-cap3-200", 200, 3, 0 },
	{ "adv-cap4-64", 64, 4, SLAB_HWCACHE_ALIGN },
	{ "adv-auto-96", 96, CAP_AUTO, 0 },
	{ "adv-auto-1500", 1500, CAP_AUTO, 0 },
	{ "adv-classic-40", 40, 0, 0 },
	{ "adv-classic-2100", 2100, 0, SLAB_HWCACHE_ALIGN },
};
#define NR_CACHES ((int)(sizeof(cache_defs) / sizeof(cache_defs[0])))
static struct kmem_cache *caches[NR_CACHES];
/* Kinds the workers use: the caches left after ADVERSARY_DISABLE=cap1. */
static int cache_kinds[NR_CACHES];
static int nr_cache_kinds;
/* The kmalloc size classes' caches, for the shrinker. */
static struct kmem_cache *kmalloc_caches[16];
static int nr_kmalloc_caches;

/* The two-argument kfree_rcu() needs an rcu_head in the object: at its
 * start (every cache here is at least 16 bytes). */
struct rcu_obj {
	struct rcu_head rh;
};
#else
#define NR_CACHES 0
#endif

#define KIND_KMALLOC NR_CACHES
/* malloc mode */
#define KIND_MALLOC 0
#define KIND_CALLOC 1
#define KIND_ALIGNED 2
#define KIND_REALLOC 3

static const char *kind_name(unsigned int kind)
{
	static const char *const mnames[] = { "malloc", "calloc", "aligned", "realloc" };
	if (malloc_mode)
		return kind < 4 ? mnames[kind] : "?";
#ifndef ADVERSARY_MALLOC_BUILD
	if (kind < (unsigned int)NR_CACHES)
		return cache_defs[kind].name;
#endif
	return kind == KIND_KMALLOC ? "kmalloc" : "?";
}

/* ========================================================= live set */

/*
 * The addresses of all live objects, in stripes of open-addressing tables
 * with linear probing.  Invariants of a stripe (under its lock): every
 * address in tab is live and appears once, in the stripe its hash selects;
 * between an address's home index and its index there is no empty (0)
 * entry; used <= cap / 2; cap is a power of two.
 */
struct stripe {
	pthread_mutex_t lock;
	uintptr_t *tab;
	size_t cap;
	size_t used;
} __attribute__((aligned(64)));

/* Invariant: an address lives in stripe[mix64(addr) & (nstripes - 1)]. */
struct liveset {
	unsigned int nstripes;	/* power of two */
	struct stripe *stripe;
};

static struct liveset live;	/* every thread of the parent process */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static void liveset_init(struct liveset *set, unsigned int nstripes)
{
	set->nstripes = nstripes;
	set->stripe = calloc(nstripes, sizeof(*set->stripe));
	if (!set->stripe)
		DIE("out of memory for the live set");
	for (unsigned int i = 0; i < nstripes; i++) {
		struct stripe *st = &set->stripe[i];
		pthread_mutex_init(&st->lock, NULL);
		st->cap = 64;
		st->tab = calloc(st->cap, sizeof(uintptr_t));
		if (!st->tab)
			DIE("out of memory for the live set");
	}
}

static size_t home(const struct stripe *st, uintptr_t a)
{
	return (size_t)(mix64(a) >> 20) & (st->cap - 1);
}

static void stripe_place(struct stripe *st, uintptr_t a)
{
	size_t i = home(st, a);
	while (st->tab[i])
		i = (i + 1) & (st->cap - 1);
	st->tab[i] = a;
	st->used++;
}

static void stripe_grow(struct stripe *st)
{
	uintptr_t *old = st->tab;
	size_t oldcap = st->cap;
	st->cap *= 2;
	st->tab = calloc(st->cap, sizeof(uintptr_t));
	if (!st->tab)
		DIE("out of memory for the live set");
	st->used = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			stripe_place(st, old[i]);
	free(old);
}

static struct stripe *stripe_of(struct liveset *set, uintptr_t a)
{
	return &set->stripe[mix64(a) & (set->nstripes - 1)];
}

/* False when the address is live already. */
static bool liveset_insert(struct liveset *set, const void *p)
{
	uintptr_t a = (uintptr_t)p;
	struct stripe *st = stripe_of(set, a);
	pthread_mutex_lock(&st->lock);
	for (size_t i = home(st, a); st->tab[i]; i = (i + 1) & (st->cap - 1)) {
		if (st->tab[i] == a) {
			pthread_mutex_unlock(&st->lock);
			return false;
		}
	}
	if ((st->used + 1) * 2 > st->cap)
		stripe_grow(st);
	stripe_place(st, a);
	pthread_mutex_unlock(&st->lock);
	return true;
}

/* False when the address is not live. */
static bool liveset_remove(struct liveset *set, const void *p)
{
	uintptr_t a = (uintptr_t)p;
	struct stripe *st = stripe_of(set, a);
	size_t mask;
	pthread_mutex_lock(&st->lock);
	mask = st->cap - 1;
	size_t i = home(st, a);
	while (st->tab[i] && st->tab[i] != a)
		i = (i + 1) & mask;
	if (!st->tab[i]) {
		pthread_mutex_unlock(&st->lock);
		return false;
	}
	/* Empty the entry, then pull back every later entry of the run
	 * whose home is not between the hole and itself. */
	st->tab[i] = 0;
	st->used--;
	for (size_t j = (i + 1) & mask; st->tab[j]; j = (j + 1) & mask) {
		size_t h = home(st, st->tab[j]);
		bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
		if (!stays) {
			st->tab[i] = st->tab[j];
			st->tab[j] = 0;
			i = j;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return true;
}

static size_t liveset_count(struct liveset *set)
{
	size_t n = 0;
	for (unsigned int i = 0; i < set->nstripes; i++) {
		pthread_mutex_lock(&set->stripe[i].lock);
		n += set->stripe[i].used;
		pthread_mutex_unlock(&set->stripe[i].lock);
	}
	return n;
}

/* =========================================================== stamps */

/*
 * A live object as its owner knows it.  Invariant: p is in a live set and
 * its first `size` bytes hold stamp(p, tag(kind, size, serial)).
 */
struct obj {
	void *p;
	uint32_t size;		/* bytes stamped: the request size */
	uint32_t serial;	/* unique per process: thread id and count */
	uint16_t kind;
};

static uint64_t obj_tag(const struct obj *o)
{
	return mix64(((uint64_t)o->kind << 48) ^ ((uint64_t)o->size << 16) ^
		     ((uint64_t)o->serial * GOLDEN) ^ 0xAD7E55A1ull);
}

/* Word i of the stamp of an object at `addr` with `tag`: word 0 is the
 * address, word 1 the tag, then a hash of both and i. */
static uint64_t stamp_word(uintptr_t addr, uint64_t tag, size_t i)
{
	if (i == 0)
		return addr;
	if (i == 1)
		return tag;
	return mix64(tag + i * GOLDEN) ^ addr;
}

static void stamp(const struct obj *o)
{
	uint64_t tag = obj_tag(o);
	volatile uint64_t *w = o->p;
	size_t words = o->size / 8, i;
	for (i = 0; i < words; i++)
		w[i] = stamp_word((uintptr_t)o->p, tag, i);
	if (o->size % 8) {
		uint64_t last = stamp_word((uintptr_t)o->p, tag, i);
		volatile unsigned char *c = (volatile unsigned char *)o->p + i * 8;
		for (size_t b = 0; b < o->size % 8; b++)
			c[b] = (unsigned char)(last >> (8 * b));
	}
}

/*
 * Check `len` bytes at `at` against the stamp of o (at differs from o->p
 * after a realloc that moved the object: the contents moved with it).
 */
static void check_bytes(const void *at, const struct obj *o, size_t len,
			const char *where)
{
	uint64_t tag = obj_tag(o);
	const volatile uint64_t *w = at;	/* 8-byte aligned: note_alloc() */
	const volatile unsigned char *c = at;
	for (size_t i = 0; i * 8 < len; i++) {
		uint64_t want = stamp_word((uintptr_t)o->p, tag, i), got = 0;
		size_t n = len - i * 8 < 8 ? len - i * 8 : 8;
		if (n == 8) {
			got = w[i];
		} else {
			for (size_t b = 0; b < n; b++)
				got |= (uint64_t)c[i * 8 + b] << (8 * b);
			want &= (1ull << (8 * n)) - 1;
		}
		if (got != want)
			DIE("%s: object %p (%s, %u bytes, serial %08x) corrupted at "
			    "byte %zu (read at %p): %016llx, expected %016llx",
			    where, o->p, kind_name(o->kind), o->size, o->serial,
			    i * 8, at, (unsigned long long)got,
			    (unsigned long long)want);
	}
}

static void check_stamp(const struct obj *o, const char *where)
{
	check_bytes(o->p, o, o->size, where);
}

static void check_zero(const void *p, size_t n, const char *what)
{
	const volatile uint64_t *w = p;
	const volatile unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0 && i + 8 <= n && w[i / 8] == 0) {
			i += 7;
			continue;
		}
		if (c[i])
			DIE("%s: %p byte %zu of %zu is %#x, not zero", what, p, i, n,
			    c[i]);
	}
}

/* ========================================================== agents */

/* Counts of one thread, added to the totals when it ends. */
struct tally {
	uint64_t allocs;	/* objects obtained */
	uint64_t frees;		/* objects given back (kfree_rcu included) */
	uint64_t remote_frees;	/* freed by a thread that got them from an inbox */
	uint64_t signals;	/* SIGUSR1 handled */
};

/*
 * The run's counts.  Invariant: each thread's tally is added once, when it
 * ends (so they are complete once every thread is joined); the others are
 * counted where they happen.
 */
static struct {
	atomic_ullong allocs, frees, remote_frees, signals;
	atomic_ullong unreg_ops;
	atomic_ullong affinity, shrinks, threads, forks, children_ok;
} totals;

static void tally_add(const struct tally *t)
{
	atomic_fetch_add(&totals.allocs, t->allocs);
	atomic_fetch_add(&totals.frees, t->frees);
	atomic_fetch_add(&totals.remote_frees, t->remote_frees);
	atomic_fetch_add(&totals.signals, t->signals);
}

/*
 * A thread that allocates: its objects, random state and counts.
 * Invariant: live[0..nlive) are live objects of this thread, registered in
 * *set; nlive <= maxlive <= MAX_LIVE.
 */
struct agent {
	struct liveset *set;
	uint64_t rng;
	uint32_t id;		/* high bits of the serials */
	uint32_t count;		/* low bits of the serials */
	int nlive, maxlive;
	bool light;		/* short-lived or child thread: fewer kinds of ops */
	int who;		/* in a fork child: its child_step entry, else -1 */
	struct tally c;
	struct obj live[MAX_LIVE];
};

static atomic_uint next_agent_id;

static void agent_init(struct agent *a, struct liveset *set, int maxlive, bool light)
{
	memset(a, 0, offsetof(struct agent, live));
	a->set = set;
	a->id = atomic_fetch_add(&next_agent_id, 1);
	a->rng = mix64((uint64_t)a->id * 7919 + (uint64_t)time(NULL)) | 1;
	a->maxlive = maxlive;
	a->light = light;
	a->who = -1;
}

/* Alignment every malloc() result has: 16, but 8 under SLUB_DEBUG red zones. */
static unsigned int malloc_align = 16;

static void note_alloc(struct agent *a, struct obj *o, const char *how)
{
	unsigned int align = malloc_mode ? malloc_align : 8;
#ifndef ADVERSARY_MALLOC_BUILD
	if (!malloc_mode && o->kind < NR_CACHES &&
	    (cache_defs[o->kind].flags & SLAB_HWCACHE_ALIGN))
		align = 64;
#endif
	if ((uintptr_t)o->p % align)
		DIE("%s: %p (%s, %u bytes) not %u-byte aligned", how, o->p,
		    kind_name(o->kind), o->size, align);
	if (!liveset_insert(a->set, o->p))
		DIE("%s: object %p (%s, %u bytes) handed out while it is still live",
		    how, o->p, kind_name(o->kind), o->size);
	o->serial = (a->id << 20) ^ ++a->count;
	stamp(o);
	a->c.allocs++;
}

/* Check and forget an object; the caller frees it right after. */
static void note_free(struct agent *a, const struct obj *o, const char *how)
{
	check_stamp(o, how);
	if (!liveset_remove(a->set, o->p))
		DIE("%s: object %p (%s) freed but not live", how, o->p,
		    kind_name(o->kind));
	a->c.frees++;
}

static void release(struct agent *a, const struct obj *o)
{
	if (malloc_mode) {
		free(o->p);
		return;
	}
#ifndef ADVERSARY_MALLOC_BUILD
	if (o->kind == KIND_KMALLOC || rng_below(&a->rng, 10) == 0)
		kfree(o->p); /* kfree() takes every slab object */
	else
		kmem_cache_free(caches[o->kind], o->p);
#else
	(void)a;
#endif
}

static void free_obj(struct agent *a, const struct obj *o, const char *how)
{
	note_free(a, o, how);
	release(a, o);
}

static void keep(struct agent *a, const struct obj *o)
{
	if (a->nlive == a->maxlive) {
		size_t v = rng_below(&a->rng, (uint64_t)a->maxlive);
		free_obj(a, &a->live[v], "free (evicted)");
		a->live[v] = *o;
		return;
	}
	a->live[a->nlive++] = *o;
}

static struct obj take(struct agent *a, size_t i)
{
	struct obj o = a->live[i];
	a->live[i] = a->live[--a->nlive];
	return o;
}

static size_t random_size(struct agent *a, size_t small_max, size_t mid_max,
			  size_t big_max)
{
	uint64_t r = rng_below(&a->rng, 1000);
	if (r < 650)
		return 1 + rng_below(&a->rng, 512);
	if (r < 950)
		return 513 + rng_below(&a->rng, small_max - 512);
	if (r < 995)
		return small_max + 1 + rng_below(&a->rng, mid_max - small_max);
	return mid_max + 1 + rng_below(&a->rng, big_max - mid_max);
}

/* ====================================================== signal storm */

/* The handler's counter and scratch memory, per thread.  The handler
 * calls nothing (no libsheaf function is async-signal-safe). */
static __thread volatile sig_atomic_t sig_count;
static __thread volatile unsigned char sig_scratch[64];

static void on_usr1(int sig)
{
	sig_count++;
	sig_scratch[sig_count & 63] = (unsigned char)sig;
}

/* ============================================================== slots */

/*
 * Objects waiting for another thread to free them.  Invariant (under
 * lock): ring[(head + i) % INBOX] for i < count are live objects nobody
 * else refers to; count <= INBOX.
 */
struct inbox {
	pthread_mutex_t lock;
	unsigned int head, count;
	struct obj ring[INBOX];
};

/*
 * A worker position.  Its threads come and go; its inbox stays.
 * Invariants: tid != 0 (under lock) only while the worker of the slot
 * runs, and self is then that worker: the worker sets both at its start
 * and clears tid itself before it returns, so the signal and affinity
 * threads, which read them under the lock, never name a thread that is
 * gone.  `running` and `thread` belong to the main thread:
 * a thread was created and not yet joined.  `done` is set by the worker as
 * its very last action, so the main thread's join returns at once.
 */
struct slot {
	pthread_mutex_t lock;
	pid_t tid;
	pthread_t self;		/* the worker's own id, under lock with tid */
	pthread_t thread;	/* main's: from pthread_create, for the join */
	bool running;
	atomic_bool done;
	bool unreg;		/* the slot of the thread without rseq */
	struct inbox in;
};

static struct slot *slots;
static int nslots;		/* workers + the unregistered thread */
static int nworkers;

static cpu_set_t allowed;
static int allowed_cpus[CPU_SETSIZE];
static int nallowed;

/* The unregistered thread's report. */
static atomic_int unreg_state;	/* 0: not yet, 1: unregistered, -1: not */
static char unreg_why[160];

static void send_obj(struct agent *a, const struct obj *o, int from)
{
	int to = (int)rng_below(&a->rng, (uint64_t)nslots);
	if (to == from)
		to = (to + 1) % nslots;
	struct inbox *in = &slots[to].in;
	pthread_mutex_lock(&in->lock);
	if (in->count < INBOX) {
		in->ring[(in->head + in->count++) % INBOX] = *o;
		pthread_mutex_unlock(&in->lock);
		return;
	}
	pthread_mutex_unlock(&in->lock);
	free_obj(a, o, "free (inbox full)");
}

static void drain(struct agent *a, struct inbox *in)
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
		free_obj(a, &batch[i], "remote free");
		a->c.remote_frees++;
	}
}

/* ===================================================== cache mode ops */

#ifndef ADVERSARY_MALLOC_BUILD
static int random_cache(struct agent *a)
{
	return cache_kinds[rng_below(&a->rng, (uint64_t)nr_cache_kinds)];
}

static void cache_alloc(struct agent *a)
{
	struct obj o = { .kind = (uint16_t)(rng_below(&a->rng, 4) == 0
						    ? KIND_KMALLOC : random_cache(a)) };
	const char *how;
	uint64_t r = rng_below(&a->rng, 10);
	if (o.kind == KIND_KMALLOC) {
		o.size = (uint32_t)random_size(a, KMALLOC_MAX_CACHE_SIZE, 65536, 600000);
		if (r == 0) {
			how = "kzalloc";
			o.p = kzalloc(o.size, GFP_KERNEL);
			if (o.p)
				check_zero(o.p, o.size, how);
		} else if (r == 1) {
			how = "kmalloc_array";
			o.p = kmalloc_array(1, o.size, GFP_KERNEL);
		} else {
			how = "kmalloc";
			o.p = kmalloc(o.size, GFP_KERNEL);
		}
		if (o.p && ksize(o.p) < o.size)
			DIE("ksize(%p) = %zu < %u", o.p, ksize(o.p), o.size);
	} else {
		struct kmem_cache *s = caches[o.kind];
		o.size = cache_defs[o.kind].size;
		if (r == 0) {
			how = "kmem_cache_zalloc";
			o.p = kmem_cache_zalloc(s, GFP_KERNEL);
			if (o.p)
				check_zero(o.p, o.size, how);
		} else if (r == 1) {
			how = "kmem_cache_alloc_node";
			o.p = kmem_cache_alloc_node(s, GFP_KERNEL, NUMA_NO_NODE);
		} else {
			how = "kmem_cache_alloc";
			o.p = kmem_cache_alloc(s, GFP_KERNEL);
		}
	}
	if (!o.p)
		DIE("%s (%s, %u bytes) failed", how, kind_name(o.kind), o.size);
	note_alloc(a, &o, how);
	keep(a, &o);
}

static void cache_bulk_alloc(struct agent *a)
{
	void *p[64];
	int k = random_cache(a);
	size_t n = 1 + rng_below(&a->rng, 64);
	int got = kmem_cache_alloc_bulk(caches[k], GFP_KERNEL, n, p);
	if ((size_t)got != n)
		DIE("kmem_cache_alloc_bulk(%s, %zu) returned %d", kind_name((unsigned)k),
		    n, got);
	for (size_t i = 0; i < n; i++) {
		struct obj o = { .p = p[i], .size = cache_defs[k].size,
				 .kind = (uint16_t)k };
		if (!o.p)
			DIE("kmem_cache_alloc_bulk(%s) returned a NULL entry",
			    kind_name((unsigned)k));
		note_alloc(a, &o, "kmem_cache_alloc_bulk");
		keep(a, &o);
	}
}

static void cache_bulk_free(struct agent *a)
{
	void *p[40];
	size_t n = 0;
	bool mixed = rng_below(&a->rng, 3) == 0;
	int k = random_cache(a);
	for (int tries = 0; tries < 96 && n < 32 && a->nlive; tries++) {
		size_t i = rng_below(&a->rng, (uint64_t)a->nlive);
		if (!mixed && a->live[i].kind != k)
			continue;
		struct obj o = take(a, i);
		note_free(a, &o, "kmem_cache_free_bulk");
		p[n++] = o.p;
		if (mixed && rng_below(&a->rng, 8) == 0)
			p[n++] = NULL; /* skipped */
	}
	if (n)
		kmem_cache_free_bulk(mixed ? NULL : caches[k], n, p);
}

static void cache_krealloc(struct agent *a)
{
	for (int tries = 0; tries < 8 && a->nlive; tries++) {
		size_t i = rng_below(&a->rng, (uint64_t)a->nlive);
		if (a->live[i].kind != KIND_KMALLOC)
			continue;
		struct obj old = take(a, i);
		note_free(a, &old, "krealloc (old)");
		struct obj o = { .kind = KIND_KMALLOC };
		o.size = (uint32_t)random_size(a, KMALLOC_MAX_CACHE_SIZE, 32768, 100000);
		o.p = krealloc(old.p, o.size, GFP_KERNEL);
		if (!o.p)
			DIE("krealloc(%u -> %u) failed", old.size, o.size);
		check_bytes(o.p, &old, old.size < o.size ? old.size : o.size,
			    "krealloc (contents moved)");
		note_alloc(a, &o, "krealloc");
		keep(a, &o);
		return;
	}
}

static void cache_rcu_one(struct agent *a);
static void agent_step(struct agent *a, int rcu);

/*
 * kfree_rcu() of a few objects of one cache inside a read-side section,
 * then allocations from the same cache: none may return one of those
 * objects, since no grace period can end while this thread is a reader.
 */
static void cache_rcu_batch(struct agent *a)
{
	void *pending[4];
	int n = 0, k = random_cache(a);
	if (no_readers || !a->nlive) {
		cache_rcu_one(a);
		return;
	}
	pthread_rwlock_rdlock(&fork_guard);
	rcu_register_thread();
	rcu_read_lock();
	for (int tries = 0; tries < 32 && n < 4 && a->nlive; tries++) {
		size_t i = rng_below(&a->rng, (uint64_t)a->nlive);
		if (a->live[i].kind != k)
			continue;
		struct obj o = take(a, i);
		note_free(a, &o, "kfree_rcu");
		pending[n++] = o.p;
		struct rcu_obj *ro = o.p;
		kfree_rcu(ro, rh);
	}
	for (int j = 0; j <= n; j++) {
		struct obj o = { .kind = (uint16_t)k, .size = cache_defs[k].size };
		o.p = kmem_cache_alloc(caches[k], GFP_KERNEL);
		if (!o.p)
			DIE("kmem_cache_alloc(%s) failed", kind_name((unsigned)k));
		for (int i = 0; i < n; i++)
			if (o.p == pending[i])
				DIE("%s: object %p handed out again while its kfree_rcu() "
				    "waits for a grace period (this thread is still "
				    "inside rcu_read_lock())", kind_name((unsigned)k), o.p);
		note_alloc(a, &o, "kmem_cache_alloc (in an RCU reader)");
		keep(a, &o);
	}
	rcu_read_unlock();
	rcu_unregister_thread();
	pthread_rwlock_unlock(&fork_guard);
}

static void cache_rcu_mightsleep(struct agent *a)
{
	if (!a->nlive)
		return;
	struct obj o = take(a, rng_below(&a->rng, (uint64_t)a->nlive));
	note_free(a, &o, "kfree_rcu_mightsleep");
	agent_step(a, 1);
	kfree_rcu_mightsleep(o.p);
	agent_step(a, 0);
}

/* A short-lived thread's kfree_rcu(), outside any reader: the library
 * registers the thread with liburcu itself. */
static void cache_rcu_one(struct agent *a)
{
	if (!a->nlive)
		return;
	struct obj o = take(a, rng_below(&a->rng, (uint64_t)a->nlive));
	if (o.kind == KIND_KMALLOC && o.size < sizeof(struct rcu_obj)) {
		keep(a, &o);
		return;
	}
	note_free(a, &o, "kfree_rcu");
	struct rcu_obj *ro = o.p;
	agent_step(a, 1);
	kfree_rcu(ro, rh);
	agent_step(a, 0);
}

static void shrink_all(void)
{
	for (int k = 0; k < NR_CACHES; k++)
		if (kmem_cache_shrink(caches[k]) < 0) /* 1: slabs in use remain */
			FAIL("kmem_cache_shrink(%s) failed", cache_defs[k].name);
	for (int k = 0; k < nr_kmalloc_caches; k++)
		kmem_cache_shrink(kmalloc_caches[k]);
}
#endif /* !ADVERSARY_MALLOC_BUILD */

/* ==================================================== malloc mode ops */

static void malloc_alloc(struct agent *a)
{
	struct obj o = { 0 };
	const char *how;
	uint64_t r = rng_below(&a->rng, 20);
	o.size = (uint32_t)random_size(a, 16384, 262144, 1 << 20);
	if (r < 12) {
		how = "malloc";
		o.kind = KIND_MALLOC;
		o.p = malloc(o.size);
	} else if (r < 16) {
		how = "calloc";
		o.kind = KIND_CALLOC;
		size_t n = 1 + rng_below(&a->rng, 8);
		o.size = (uint32_t)((o.size + n - 1) / n * n);
		o.p = calloc(n, o.size / n);
		if (o.p)
			check_zero(o.p, o.size, how);
	} else if (r < 18) {
		size_t al = (size_t)16 << rng_below(&a->rng, 9); /* 16 .. 4096 */
		o.kind = KIND_ALIGNED;
		if (r == 16) {
			how = "posix_memalign";
			int e = posix_memalign(&o.p, al, o.size);
			if (e)
				o.p = NULL;
		} else {
			how = "aligned_alloc";
			o.size = (uint32_t)((o.size + al - 1) / al * al);
			o.p = aligned_alloc(al, o.size);
		}
		if (o.p && (uintptr_t)o.p % al)
			DIE("%s(%zu, %u) = %p: not aligned", how, al, o.size, o.p);
	} else {
		how = "realloc(NULL)";
		o.kind = KIND_REALLOC;
		o.p = realloc(NULL, o.size);
	}
	if (!o.p)
		DIE("%s(%u) failed: %s", how, o.size, strerror(errno));
	if (malloc_usable_size(o.p) < o.size)
		DIE("malloc_usable_size(%p) = %zu < %u (%s)", o.p,
		    malloc_usable_size(o.p), o.size, how);
	note_alloc(a, &o, how);
	keep(a, &o);
}

static void malloc_realloc(struct agent *a)
{
	if (!a->nlive)
		return;
	struct obj old = take(a, rng_below(&a->rng, (uint64_t)a->nlive));
	note_free(a, &old, "realloc (old)");
	struct obj o = { .kind = KIND_REALLOC };
	uint64_t r = rng_below(&a->rng, 4);
	if (r == 0)		/* shrink */
		o.size = 1 + (uint32_t)rng_below(&a->rng, old.size);
	else if (r == 1)	/* grow a little, often in place */
		o.size = old.size + 1 + (uint32_t)rng_below(&a->rng, 64);
	else
		o.size = (uint32_t)random_size(a, 16384, 131072, 1 << 20);
	o.p = realloc(old.p, o.size);
	if (!o.p)
		DIE("realloc(%u -> %u) failed", old.size, o.size);
	check_bytes(o.p, &old, old.size < o.size ? old.size : o.size,
		    "realloc (contents moved)");
	note_alloc(a, &o, "realloc");
	keep(a, &o);
}

/* Many objects of one size at once, then all freed: the bulk analogue. */
static void malloc_burst(struct agent *a)
{
	struct obj b[64];
	size_t n = 1 + rng_below(&a->rng, 64);
	uint32_t size = (uint32_t)(1 + rng_below(&a->rng, 2048));
	for (size_t i = 0; i < n; i++) {
		b[i] = (struct obj){ .kind = KIND_MALLOC, .size = size };
		b[i].p = malloc(size);
		if (!b[i].p)
			DIE("malloc(%u) failed", size);
		note_alloc(a, &b[i], "malloc (burst)");
	}
	for (size_t i = 0; i < n; i++) {
		size_t j = rng_below(&a->rng, n - i) + i;
		struct obj t = b[i];
		b[i] = b[j];
		b[j] = t;
		free_obj(a, &b[i], "free (burst)");
	}
}

/* ============================================================ one op */

/* One allocation of a random kind, kept in a->live. */
static void alloc_one(struct agent *a)
{
	if (malloc_mode)
		malloc_alloc(a);
#ifndef ADVERSARY_MALLOC_BUILD
	else
		cache_alloc(a);
#endif
}

static void free_random(struct agent *a)
{
	if (!a->nlive)
		return;
	struct obj o = take(a, rng_below(&a->rng, (uint64_t)a->nlive));
	free_obj(a, &o, "free");
}

/*
 * One random operation.  slot < 0: a thread without an inbox (short-lived
 * or in a fork child), which neither sends nor drains.
 */
static void one_op(struct agent *a, int slot)
{
	uint64_t r = rng_below(&a->rng, 1000);
	if (r < 380) {
		;	/* allocation, below */
	} else if (r < 620) {
		free_random(a);
		return;
	} else if (r < 720) {
		if (slot >= 0 && a->nlive && nslots > 1) {
			struct obj o = take(a, rng_below(&a->rng, (uint64_t)a->nlive));
			send_obj(a, &o, slot);
		} else {
			free_random(a);
		}
		return;
	} else if (r < 770) {
		if (slot >= 0)
			drain(a, &slots[slot].in);
		return;
	} else if (r < 880) {
		if (malloc_mode) {
			if (r < 820)
				malloc_burst(a);
			else
				malloc_realloc(a);
			return;
		}
#ifndef ADVERSARY_MALLOC_BUILD
		if (r < 800)
			cache_bulk_alloc(a);
		else if (r < 830)
			cache_bulk_free(a);
		else if (r < 845)
			cache_krealloc(a);
		else if (no_rcu)
			free_random(a);
		else if (r < 855 && !a->light)
			cache_rcu_batch(a);
		else if (r < 870)
			cache_rcu_one(a);
		else
			cache_rcu_mightsleep(a);
#endif
		return;
	} else if (r < 885) {
		sched_yield();
		return;
	} else if (r == 999 && rng_below(&a->rng, 64) == 0 && !a->light) {
#ifndef ADVERSARY_MALLOC_BUILD
		if (!malloc_mode && !no_rcu) {
			kvfree_rcu_barrier();
			return;
		}
#endif
	}
	alloc_one(a);
}

static void free_all(struct agent *a, const char *how)
{
	while (a->nlive) {
		struct obj o = take(a, (size_t)a->nlive - 1);
		free_obj(a, &o, how);
	}
}

/* ================================================ the unregistered thread */

static void *thread_pointer(void)
{
#if defined(__x86_64__)
	void *tp;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp;
#else
	return __builtin_thread_pointer();
#endif
}

/*
 * Unregister glibc's rseq area of the calling thread.  The length must be
 * the registered one: Debian 12's glibc 2.36 says __rseq_size 20 but
 * registers 32 bytes, so 32 is tried first.
 */
static bool unregister_rseq(char *why, size_t n)
{
	if (__rseq_size == 0) {
		snprintf(why, n, "glibc registered no rseq area (__rseq_size 0)");
		return false;
	}
	void *area = (char *)thread_pointer() + __rseq_offset;
	unsigned int lens[2] = { 32, __rseq_size };
	int err = 0;
	for (int i = 0; i < 2; i++) {
		if (i == 1 && lens[1] == lens[0])
			break;
		if (syscall(__NR_rseq, area, lens[i], ADV_RSEQ_FLAG_UNREGISTER,
			    RSEQ_SIG) == 0) {
			snprintf(why, n, "%u bytes at %p", lens[i], area);
			return true;
		}
		err = errno;
	}
	snprintf(why, n, "rseq(RSEQ_FLAG_UNREGISTER) failed: %s", strerror(err));
	return false;
}

/* =========================================================== workers */

/*
 * A worker thread, allocated by the main thread and freed by the worker
 * itself as it ends.  Invariant: slots[slot] is the slot it runs in, and
 * no other worker runs there meanwhile.
 */
struct worker {
	struct agent a;
	int slot;
	double until;		/* end of its life (the unregistered one: none) */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct slot *sl = &slots[w->slot];
	bool unreg = sl->unreg;

	if (unreg) {
		char why[sizeof(unreg_why)];
		bool ok = unregister_rseq(why, sizeof(why));
		memcpy(unreg_why, why, sizeof(why));
		atomic_store(&unreg_state, ok ? 1 : -1);
	}
	pthread_mutex_lock(&sl->lock);
	sl->self = pthread_self();
	sl->tid = gettid();
	pthread_mutex_unlock(&sl->lock);
	/* Below the helpers (nice 5, this thread only): the signal storm, the
	 * migrations, the forks and their children run whenever they want,
	 * and the workers take all the CPU left. */
	setpriority(PRIO_PROCESS, 0, 5);
	unsigned long ops = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		one_op(&w->a, w->slot);
		if ((++ops & 63) == 0 && !unreg && now() > w->until)
			break;
	}
	/* End of life: while the run goes on, half the objects outlive their
	 * thread in other slots' inboxes. */
	if (!atomic_load(&stop) && nslots > 1) {
		for (int i = w->a.nlive - 1; i >= 0; i -= 2) {
			struct obj o = take(&w->a, (size_t)i);
			send_obj(&w->a, &o, w->slot);
		}
	}
	free_all(&w->a, "free (thread exit)");
	drain(&w->a, &sl->in);
	pthread_mutex_lock(&sl->lock);
	sl->tid = 0;
	pthread_mutex_unlock(&sl->lock);
	w->a.c.signals = (uint64_t)sig_count;
	tally_add(&w->a.c);
	if (unreg)
		atomic_fetch_add(&totals.unreg_ops, w->a.c.allocs + w->a.c.frees);
	free(w);
	atomic_store(&sl->done, true);
	return NULL;
}

static int start_worker(int i, uint64_t seed)
{
	struct slot *sl = &slots[i];
	struct worker *w = malloc(sizeof(*w));
	if (!w)
		DIE("out of memory");
	agent_init(&w->a, &live, MAX_LIVE, false);
	w->a.rng ^= seed;
	w->slot = i;
	w->until = now() + 0.020 + (double)rng_below(&w->a.rng, 280) * 1e-3;
	atomic_store(&sl->done, false);
	int e = pthread_create(&sl->thread, NULL, worker_main, w);
	if (e) {
		free(w);
		return e;
	}
	sl->running = true;
	atomic_fetch_add(&totals.threads, 1);
	return 0;
}

/* The main thread's join of slot i's worker (which freed its struct). */
static bool join_worker(int i, double deadline)
{
	struct slot *sl = &slots[i];
	void *ret;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double left = deadline - now();
	if (left < 0)
		left = 0;
	ts.tv_sec += (time_t)left;
	ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	int e = pthread_timedjoin_np(sl->thread, &ret, &ts);
	if (e)
		return false;
	sl->running = false;
	return true;
}

/* ============================================================ helpers */

static void fast_timers(void)
{
	prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0); /* 1 us: short sleeps */
}

/* The signal storm: SIGUSR1 to random running workers. */
static void *signaller_main(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
	fast_timers();
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int k = 0; k < 2; k++) {
			struct slot *sl = &slots[rng_below(&rng, (uint64_t)nslots)];
			pthread_mutex_lock(&sl->lock);
			if (sl->tid)
				pthread_kill(sl->self, SIGUSR1);
			pthread_mutex_unlock(&sl->lock);
		}
		sleep_us(10);
	}
	return NULL;
}

/* Affinity thrash: a random worker's CPU mask flipped every few us. */
static void *affinity_main(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
	fast_timers();
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		cpu_set_t set;
		CPU_ZERO(&set);
		for (int i = 0; i < nallowed; i++)
			if (rng_below(&rng, 2))
				CPU_SET(allowed_cpus[i], &set);
		if (CPU_COUNT(&set) == 0)
			CPU_SET(allowed_cpus[rng_below(&rng, (uint64_t)nallowed)], &set);
		struct slot *sl = &slots[rng_below(&rng, (uint64_t)nslots)];
		pthread_mutex_lock(&sl->lock);
		if (sl->tid && sched_setaffinity(sl->tid, sizeof(set), &set) == 0)
			atomic_fetch_add_explicit(&totals.affinity, 1,
						  memory_order_relaxed);
		pthread_mutex_unlock(&sl->lock);
		sleep_us(2 + rng_below(&rng, 10));
	}
	return NULL;
}

/* Shrink everything in a loop (malloc_trim(0) in malloc mode). */
static void *shrinker_main(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
	unsigned long round = 0;
	fast_timers();
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (malloc_mode) {
			malloc_trim(0);
		} else {
#ifndef ADVERSARY_MALLOC_BUILD
			shrink_all();
			/* Counting stops every slot's fast paths too. */
			if (round % 8 == 0) {
				size_t sink = 0;
				for (int k = 0; k < NR_CACHES; k++)
					sink += sheaf_cache_cached_objects(caches[k]) +
						sheaf_cache_objects_inuse(caches[k]);
				(void)sink;
			}
			if (round % 32 == 31 && !no_rcu)
				kvfree_rcu_barrier();
#endif
		}
		atomic_fetch_add(&totals.shrinks, 1);
		round++;
		sleep_us(200 + rng_below(&rng, 1800));
	}
	return NULL;
}

#ifndef ADVERSARY_MALLOC_BUILD
/*
 * The RCU storm: kfree_rcu_mightsleep() without pause on fresh kmalloc
 * objects and objects of the caches without sheaves (the pointer-batch
 * path, under its lock), kfree_rcu() on others, and a kvfree_rcu_barrier()
 * now and then (which submits the partial batch: the next free starts a
 * new one).  At normal priority, so it is often inside those paths when
 * the forker forks.
 */
static void *rcu_storm_main(void *arg)
{
	struct agent *a = malloc(sizeof(*a));
	if (!a)
		DIE("out of memory");
	agent_init(a, &live, 1, true);
	a->rng ^= (uint64_t)(uintptr_t)arg;
	unsigned long n = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct obj o = { .kind = KIND_KMALLOC };
		uint64_t r = rng_below(&a->rng, 4);
		if (r == 0) {
			o.kind = (uint16_t)(rng_below(&a->rng, 2) ? 7 : 8);
			o.size = cache_defs[o.kind].size;
			o.p = kmem_cache_alloc(caches[o.kind], GFP_KERNEL);
		} else {
			o.size = 16 + (uint32_t)rng_below(&a->rng, 496);
			o.p = kmalloc(o.size, GFP_KERNEL);
		}
		if (!o.p)
			DIE("%s allocation failed", kind_name(o.kind));
		note_alloc(a, &o, "alloc (RCU storm)");
		note_free(a, &o, "kfree_rcu_mightsleep (RCU storm)");
		if (r == 1) {
			struct rcu_obj *ro = o.p;
			kfree_rcu(ro, rh);
		} else {
			kfree_rcu_mightsleep(o.p);
		}
		if (++n % 4096 == 0)
			kvfree_rcu_barrier();
	}
	tally_add(&a->c);
	free(a);
	return NULL;
}
#endif

/* A short-lived thread: a few hundred operations, then some objects are
 * left to the workers. */
static void *shortlived_main(void *arg)
{
	struct agent *a = arg;
	unsigned int ops = 200 + (unsigned int)rng_below(&a->rng, 400);
	for (unsigned int i = 0; i < ops && !atomic_load(&stop); i++)
		one_op(a, -1);
	for (int i = a->nlive - 1; i >= 0 && nslots > 1; i -= 3) {
		struct obj o = take(a, (size_t)i);
		send_obj(a, &o, -1);
	}
	free_all(a, "free (short-lived thread)");
	tally_add(&a->c);
	return NULL;
}

static void *churn_main(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
	struct agent *a = malloc(sizeof(*a));
	if (!a)
		DIE("out of memory");
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		pthread_t t;
		agent_init(a, &live, LIGHT_LIVE, true);
		if (pthread_create(&t, NULL, shortlived_main, a) == 0) {
			atomic_fetch_add(&totals.threads, 1);
			pthread_join(t, NULL);
		}
		sleep_us(500 + rng_below(&rng, 1500));
	}
	free(a);
	return NULL;
}

/* ============================================================= forks */

/*
 * Whether fork() is part of the run.  Under TSan it is not, for two limits
 * of TSan's (seen with clang 14), not of libsheaf's: its deadlock detector
 * fails a CHECK when one thread holds more than 64 mutexes, which the
 * library's prefork handler does (every cache's locks at once); and it
 * ends a child of a multi-threaded process that starts a thread
 * ("starting new threads after multi-threaded fork is not supported",
 * die_after_fork).  With TSAN_OPTIONS=detect_deadlocks=0:die_after_fork=0
 * the forks do run there.  Under ASan (gcc 12's libasan) neither: a
 * child's new threads hung before their first instruction (step
 * "starting", 1 run in 7 under load), inside the sanitizer's thread start,
 * whose locks a parent thread starting or ending a thread (this test's
 * churn) held at the fork; libsheaf is not on that path.  test_fork covers
 * the fork handlers under ASan (its threads live through the forks).  The
 * fork paths run in every other build.
 */
static bool forks_supported(void)
{
#if defined(ADV_TSAN) || defined(ADV_ASAN)
	return false;
#else
	return true;
#endif
}

/*
 * Where a child is, for the report when it hangs: a page shared with the
 * parent (MAP_SHARED), step[0] for the child's main thread and step[1],
 * step[2] for its two threads, each an index into step_name[].
 */
enum child_step {
	CS_START, CS_INHERITED, CS_THREADS, CS_JOIN, CS_OPS, CS_DONE,
	CS_RCU, CS_SHRINK, CS_BARRIER, CS_TRIM, CS_EXIT, CS_NR
};
static const char *const step_name[CS_NR] = {
	"starting", "checking and freeing inherited objects", "creating threads",
	"joining its threads", "allocating and freeing", "done",
	"kfree_rcu_mightsleep() and kfree_rcu()", "kmem_cache_shrink()",
	"kvfree_rcu_barrier()", "malloc_trim(0)", "exiting",
};
static volatile int *child_step;

static void set_step(int who, enum child_step st)
{
	if (child_step)
		child_step[who] = st;
}

static const char *step_of(int who)
{
	int st = child_step ? child_step[who] : 0;
	return st >= 0 && st < CS_NR ? step_name[st] : "?";
}

#ifndef ADVERSARY_MALLOC_BUILD
/* A child's thread marks its RCU calls (rcu 1) and its other work. */
static void agent_step(struct agent *a, int rcu)
{
	if (a->who >= 0)
		set_step(a->who, rcu ? CS_RCU : CS_OPS);
}
#endif

/*
 * A thread of a fork child.  Invariant: inherited[0..ninherited) are live
 * objects of the parent, registered in child_set, that only this thread
 * frees; a.set is child_set and a.who its child_step entry.
 */
struct child_thread {
	struct agent a;
	struct obj *inherited;
	int ninherited;
};

static struct liveset child_set;

static void *child_thread_main(void *arg)
{
	struct child_thread *ct = arg;
	set_step(ct->a.who, CS_INHERITED);
	for (int i = 0; i < ct->ninherited; i++)
		free_obj(&ct->a, &ct->inherited[i], "free in the child (inherited)");
	set_step(ct->a.who, CS_OPS);
	unsigned int ops = 300 + (unsigned int)rng_below(&ct->a.rng, 700);
	for (unsigned int i = 0; i < ops; i++)
		one_op(&ct->a, -1);
	free_all(&ct->a, "free in the child");
	set_step(ct->a.who, CS_DONE);
	return NULL;
}

/*
 * The child: check the objects the parent left it, free half here and half
 * in a thread, run two threads that allocate and free, join them, shrink,
 * wait for its kfree_rcu()s, check nothing is left, _exit(0).  Messages go
 * out with write(); only locks made in the child are used.
 */
static void child_main(struct obj *batch, int n)
{
	in_child = 1;
	alarm(CHILD_ALARM);
	set_step(1, CS_START);
	set_step(2, CS_START);
	set_step(0, CS_INHERITED);
	liveset_init(&child_set, 4);
	for (int i = 0; i < n; i++) {
		check_stamp(&batch[i], "inherited by the child");
		if (!liveset_insert(&child_set, batch[i].p))
			DIE("inherited object %p twice", batch[i].p);
	}
	struct child_thread *ct = calloc(2, sizeof(*ct));
	if (!ct)
		DIE("out of memory");
	for (int i = 0; i < 2; i++) {
		agent_init(&ct[i].a, &child_set, LIGHT_LIVE, true);
		ct[i].a.who = i + 1;
	}
	ct[0].inherited = batch + n / 2;
	ct[0].ninherited = n - n / 2;
	for (int i = 0; i < n / 2; i++)
		free_obj(&ct[0].a, &batch[i], "free in the child (inherited)");
	set_step(0, CS_THREADS);
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		int e = pthread_create(&t[i], NULL, child_thread_main, &ct[i]);
		if (e)
			DIE("pthread_create in the child: %s", strerror(e));
	}
	set_step(0, CS_JOIN);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	if (malloc_mode) {
		set_step(0, CS_TRIM);
		malloc_trim(0);
	} else {
#ifndef ADVERSARY_MALLOC_BUILD
		/* Every RCU path once: the pointer batch (kmalloc, and a cache
		 * without sheaves), a callback on the object's head, an
		 * rcu_free sheaf. */
		set_step(0, CS_RCU);
		if (!no_rcu) {
			for (int i = 0; i < 4; i++) {
				void *p = kmalloc(16 + 48 * (size_t)i, GFP_KERNEL);
				if (!p)
					DIE("kmalloc failed");
				kfree_rcu_mightsleep(p);
			}
			for (int k = 0; k < NR_CACHES; k++) {
				struct rcu_obj *o = kmem_cache_alloc(caches[k], GFP_KERNEL);
				if (!o)
					DIE("kmem_cache_alloc(%s) failed", cache_defs[k].name);
				if (k % 2)
					kfree_rcu(o, rh);
				else
					kfree_rcu_mightsleep(o);
			}
		}
		set_step(0, CS_SHRINK);
		shrink_all();
		if (!no_rcu) {
			set_step(0, CS_BARRIER);
			kvfree_rcu_barrier();
		}
#endif
	}
	set_step(0, CS_EXIT);
	size_t left = liveset_count(&child_set);
	if (left)
		DIE("%zu objects still live in the child", left);
	_exit(0);
}

static void *forker_main(void *arg)
{
	struct agent *a = malloc(sizeof(*a));
	struct obj batch[BATCH_MAX];
	if (!a)
		DIE("out of memory");
	agent_init(a, &live, BATCH_MAX, true);
	a->rng ^= (uint64_t)(uintptr_t)arg;
	unsigned long nfork = 0;
	while (!atomic_load(&stop)) {
		unsigned long pause = 1 + rng_below(&a->rng, 8);
		for (unsigned long ms = 0; ms < pause && !atomic_load(&stop); ms++)
			sleep_us(1000);
		if (atomic_load(&stop))
			break;
		/* Objects for the child to check and free (and the parent too). */
		int n = 8 + (int)rng_below(&a->rng, BATCH_MAX - 8);
		for (int i = 0; i < n; i++) {
			a->nlive = 0;
			alloc_one(a);
			batch[i] = a->live[0];
		}
		a->nlive = 0;
		pthread_rwlock_wrlock(&fork_guard);
		pid_t pid = fork();
		if (pid == 0)
			child_main(batch, n); /* does not return */
		pthread_rwlock_unlock(&fork_guard);
		if (pid < 0) {
			FAIL("fork: %s", strerror(errno));
		} else {
			nfork++;
			atomic_fetch_add(&totals.forks, 1);
			int st = 0;
			double deadline = now() + CHILD_DEADLINE;
			pid_t r;
			while ((r = waitpid(pid, &st, WNOHANG)) == 0 && now() < deadline)
				sleep_us(1000);
			if (r == 0) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				FAIL("child %d (fork %lu) hung: killed after %d s (a lock "
				     "held across fork()?); its main thread was at: %s; "
				     "its threads at: %s; %s", (int)pid, nfork,
				     CHILD_DEADLINE, step_of(0), step_of(1), step_of(2));
				atomic_store(&stop, true);
			} else if (r < 0) {
				FAIL("waitpid(%d): %s", (int)pid, strerror(errno));
			} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
				atomic_fetch_add(&totals.children_ok, 1);
			} else if (WIFSIGNALED(st)) {
				FAIL("child %d (fork %lu) killed by signal %d (%s)%s; its "
				     "main thread was at: %s; its threads at: %s; %s",
				     (int)pid, nfork, WTERMSIG(st), strsignal(WTERMSIG(st)),
				     WTERMSIG(st) == SIGALRM ? " (hung)" : "", step_of(0),
				     step_of(1), step_of(2));
				atomic_store(&stop, true);
			} else {
				FAIL("child %d (fork %lu) exited with status %d at: %s; "
				     "its threads at: %s; %s", (int)pid, nfork,
				     WEXITSTATUS(st), step_of(0), step_of(1), step_of(2));
				atomic_store(&stop, true);
			}
		}
		/* The parent's copies are untouched by whatever the child did. */
		for (int i = 0; i < n; i++)
			free_obj(a, &batch[i], "free after fork (parent)");
	}
	tally_add(&a->c);
	free(a);
	return NULL;
}

/* ============================================================ crashes */

#if !defined(ADV_TSAN) && !defined(ADV_ASAN)
static void on_crash(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGSEGV || sig == SIGBUS)
		say("FAIL: %s at address %p", strsignal(sig), si->si_addr);
	else
		say("FAIL: %s%s", strsignal(sig),
		    sig == SIGABRT ? " (a libsheaf report above?)" : "");
	if (abort_on_fail || sig == SIGABRT) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
	_exit(in_child ? 3 : 1);
}
#endif

static void install_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		DIE("sigaction(SIGUSR1): %s", strerror(errno));
#if !defined(ADV_TSAN) && !defined(ADV_ASAN)
	/* A crash prints a FAIL line (the sanitizers report crashes
	 * themselves).  SIGABRT keeps its status: the library's reports end
	 * with abort(). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_crash;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
#endif
}

/* Ends a process that cannot end by itself. */
static void *watchdog_main(void *arg)
{
	double limit = *(double *)arg;
	while (now() < limit)
		sleep_us(500000);
	say("FAIL: the run has not ended %d s after its planned end: hung",
	    2 * JOIN_DEADLINE + CHILD_DEADLINE + 60);
	_exit(1);
}

/* ============================================================= setup */

static void parse_disable(void)
{
	const char *v = getenv("ADVERSARY_DISABLE");
	if (!v)
		return;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "cap1"))
			no_cap1 = true;
		else if (!strcmp(t, "fork"))
			no_fork = true;
		else if (!strcmp(t, "unregister"))
			no_unregister = true;
		else if (!strcmp(t, "rcu"))
			no_rcu = true;
		else if (!strcmp(t, "readers"))
			no_readers = true;
		else if (!strcmp(t, "signals"))
			no_signals = true;
		else if (!strcmp(t, "affinity"))
			no_affinity = true;
		else if (!strcmp(t, "shrink"))
			no_shrink = true;
		else if (!strcmp(t, "churn"))
			no_churn = true;
		else
			say("ignoring unknown part '%s' in ADVERSARY_DISABLE", t);
	}
}

#ifndef ADVERSARY_MALLOC_BUILD
static int setup_caches(void)
{
	for (int k = 0; k < NR_CACHES; k++) {
		const struct cache_def *d = &cache_defs[k];
		struct kmem_cache_args args = { 0 };
		unsigned int want = d->cap == CAP_AUTO ? sheaf_auto_capacity(d->size)
						       : d->cap;
		args.sheaf_capacity = want;
		caches[k] = kmem_cache_create(d->name, d->size, &args, d->flags);
		if (!caches[k]) {
			say("FAIL: cannot create %s: %s", d->name, strerror(errno));
			return -1;
		}
		unsigned int got = sheaf_cache_capacity(caches[k]);
		if (want && got != want) {
			say("FAIL: %s: sheaf capacity %u, asked for %u", d->name, got,
			    want);
			return -1;
		}
		if (!(no_cap1 && d->cap == 1))
			cache_kinds[nr_cache_kinds++] = k;
	}
	if (cache_defs[7].cap || cache_defs[8].cap)
		DIE("rcu_storm_main() expects the classic caches at 7 and 8");
	/* The kmalloc caches, for the shrinker: found through an object each. */
	for (size_t sz = 8; sz <= KMALLOC_MAX_CACHE_SIZE; sz *= 2) {
		size_t sizes[2] = { sz, sz + sz / 2 };
		for (int j = 0; j < 2; j++) {
			void *p = kmalloc(sizes[j], GFP_KERNEL);
			struct kmem_cache *s = p ? sheaf_obj_cache(p) : NULL;
			kfree(p);
			bool seen = !s;
			for (int i = 0; i < nr_kmalloc_caches && !seen; i++)
				seen = kmalloc_caches[i] == s;
			if (!seen && nr_kmalloc_caches < 16)
				kmalloc_caches[nr_kmalloc_caches++] = s;
		}
	}
	snprintf(mode_name, sizeof(mode_name), "%s", sheaf_percpu_mode());
	return 0;
}

/* After the run: every cache empty, nothing printed by destroy. */
static void check_caches(void)
{
	if (!no_rcu)
		kvfree_rcu_barrier();
	shrink_all();
	for (int k = 0; k < NR_CACHES; k++) {
		size_t inuse = sheaf_cache_objects_inuse(caches[k]);
		size_t slabs = sheaf_cache_slabs(caches[k]);
		size_t cached = sheaf_cache_cached_objects(caches[k]);
		if (inuse || slabs || cached)
			FAIL("%s: %zu objects in use, %zu slabs, %zu cached objects left "
			     "after freeing everything, kvfree_rcu_barrier() and "
			     "kmem_cache_shrink()", cache_defs[k].name, inuse, slabs, cached);
	}
	if (atomic_load(&failures))
		return;
	struct err_capture cap;
	capture_begin(&cap);
	for (int k = 0; k < NR_CACHES; k++)
		kmem_cache_destroy(caches[k]);
	capture_end(&cap);
	if (cap.len)
		FAIL("kmem_cache_destroy() of the empty caches printed: %s", cap.text);
}
#endif

/*
 * Malloc mode: libsheaf-malloc must be the process's malloc: its symbols
 * are there (kmem_cache_alloc: kmem_cache_create is a macro) and a malloc()
 * block belongs to one of its kmalloc caches.
 */
static int setup_malloc(void)
{
	void *create = dlsym(RTLD_DEFAULT, "kmem_cache_alloc");
	void *(*obj_cache)(const void *);
	const char *(*percpu_mode)(void);
	*(void **)&obj_cache = dlsym(RTLD_DEFAULT, "sheaf_obj_cache");
	*(void **)&percpu_mode = dlsym(RTLD_DEFAULT, "sheaf_percpu_mode");
	if (!create || !obj_cache || !percpu_mode) {
		say("FAIL: malloc mode: libsheaf-malloc is not loaded (run under "
		    "LD_PRELOAD=libsheaf-malloc.so)");
		return -1;
	}
	void *p = malloc(64);
	bool ours = p && obj_cache(p) != NULL;
	free(p);
	if (!ours) {
		say("FAIL: malloc mode: malloc() is not libsheaf-malloc's");
		return -1;
	}
	snprintf(mode_name, sizeof(mode_name), "malloc-%s", percpu_mode());
	if (getenv("SLUB_DEBUG"))
		malloc_align = 8;
	return 0;
}

/* ============================================================== main */

int main(int argc, char **argv)
{
	const char *env = getenv("ADVERSARY_SECONDS");
	double seconds = env ? atof(env) : 3.0;
	bool want_malloc = getenv("ADVERSARY_MALLOC") && atoi(getenv("ADVERSARY_MALLOC")) > 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--malloc"))
			want_malloc = true;
		else
			seconds = atof(argv[i]);
	}
	if (seconds <= 0)
		seconds = 3.0;
	abort_on_fail = getenv("ADVERSARY_ABORT") && atoi(getenv("ADVERSARY_ABORT")) > 0;
	parse_disable();
#ifdef ADVERSARY_MALLOC_BUILD
	want_malloc = true;
#else
	if (want_malloc) {
		say("FAIL: this program is linked with libsheaf; malloc mode is "
		    "adversary_malloc, run under LD_PRELOAD=libsheaf-malloc.so");
		return 1;
	}
#endif
	malloc_mode = want_malloc;
	if (!forks_supported())
		no_fork = true;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		say("FAIL: sched_getaffinity: %s", strerror(errno));
		return 1;
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed))
			allowed_cpus[nallowed++] = c;
	nworkers = 2 * nallowed + 2;
	nslots = nworkers + (no_unregister ? 0 : 1);

	install_handlers();
	if (malloc_mode) {
		if (setup_malloc() != 0)
			return 1;
	} else {
#ifndef ADVERSARY_MALLOC_BUILD
		if (setup_caches() != 0)
			return 1;
#endif
	}
	if (!no_fork) {
		void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (page != MAP_FAILED)
			child_step = page;
	}
	pthread_rwlockattr_t rwa;
	pthread_rwlockattr_init(&rwa);
	/* The forker must not starve behind the stream of readers. */
	pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fork_guard, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	liveset_init(&live, 256);
	slots = calloc((size_t)nslots, sizeof(*slots));
	if (!slots)
		DIE("out of memory");
	for (int i = 0; i < nslots; i++) {
		pthread_mutex_init(&slots[i].lock, NULL);
		pthread_mutex_init(&slots[i].in.lock, NULL);
		slots[i].unreg = i == nworkers;
	}

	static double watchdog_limit;
	watchdog_limit = now() + seconds + 2.0 * JOIN_DEADLINE + CHILD_DEADLINE + 60;
	pthread_t watchdog;
	if (pthread_create(&watchdog, NULL, watchdog_main, &watchdog_limit) == 0)
		pthread_detach(watchdog);

	double t0 = now(), end = t0 + seconds;
	uint64_t seed = mix64((uint64_t)time(NULL) ^ (uint64_t)getpid());
	for (int i = 0; i < nslots; i++) {
		int e = start_worker(i, seed + (uint64_t)i);
		if (e)
			DIE("pthread_create: %s", strerror(e));
	}

	struct {
		bool on;
		void *(*fn)(void *);
		pthread_t t;
		const char *name;
	} helper[] = {
		{ !no_signals, signaller_main, 0, "signal storm" },
		{ !no_affinity, affinity_main, 0, "affinity thrash" },
		{ !no_shrink, shrinker_main, 0, "shrinker" },
		{ !no_churn, churn_main, 0, "thread churn" },
		{ !no_fork, forker_main, 0, "forker" },
#ifndef ADVERSARY_MALLOC_BUILD
		{ !malloc_mode && !no_rcu, rcu_storm_main, 0, "RCU storm" },
#endif
	};
	const int nhelpers = (int)(sizeof(helper) / sizeof(helper[0]));
	for (int h = 0; h < nhelpers; h++) {
		if (!helper[h].on)
			continue;
		int e = pthread_create(&helper[h].t, NULL, helper[h].fn,
				       (void *)(uintptr_t)(seed * (uint64_t)(h + 3)));
		if (e)
			DIE("pthread_create (%s): %s", helper[h].name, strerror(e));
	}

	/* Supervise: restart the workers that ended their life. */
	uint64_t restarts = 0;
	while (now() < end && !atomic_load(&stop)) {
		for (int i = 0; i < nslots; i++) {
			if (!slots[i].running || !atomic_load(&slots[i].done))
				continue;
			if (!join_worker(i, now() + JOIN_DEADLINE))
				DIE("worker of slot %d said it was done but did not end", i);
			if (start_worker(i, seed + ++restarts * 131) != 0)
				continue; /* out of threads for now: next time */
		}
		sleep_us(1000);
	}
	atomic_store(&stop, true);

	double deadline = now() + JOIN_DEADLINE;
	for (int h = 0; h < nhelpers; h++) {
		if (!helper[h].on)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(deadline - now()) + CHILD_DEADLINE;
		if (pthread_timedjoin_np(helper[h].t, NULL, &ts) != 0)
			DIE("the %s thread did not stop (hung)", helper[h].name);
	}
	for (int i = 0; i < nslots; i++)
		if (slots[i].running && !join_worker(i, deadline))
			DIE("worker of slot %d%s did not stop within %d s (hung)", i,
			    slots[i].unreg ? " (the unregistered thread)" : "",
			    JOIN_DEADLINE);
	double elapsed = now() - t0;

	/* What is still in the inboxes is freed by a thread that never
	 * allocated it. */
	struct agent *mainer = malloc(sizeof(*mainer));
	if (!mainer)
		DIE("out of memory");
	agent_init(mainer, &live, 1, true);
	for (int i = 0; i < nslots; i++)
		drain(mainer, &slots[i].in);
	tally_add(&mainer->c);
	free(mainer);

	size_t left = liveset_count(&live);
	if (left)
		FAIL("%zu objects still in the live set after the run", left);
	unsigned long long allocs = atomic_load(&totals.allocs);
	unsigned long long frees = atomic_load(&totals.frees);
	if (allocs != frees)
		FAIL("%llu objects allocated, %llu freed", allocs, frees);
	if (malloc_mode) {
		malloc_trim(0);
	} else {
#ifndef ADVERSARY_MALLOC_BUILD
		check_caches();
#endif
	}

	int st = atomic_load(&unreg_state);
	char unreg[200];
	if (no_unregister)
		snprintf(unreg, sizeof(unreg), "no: not tried (ADVERSARY_DISABLE)");
	else if (st == 1)
		snprintf(unreg, sizeof(unreg), "yes");
	else
		snprintf(unreg, sizeof(unreg), "no: %s", st ? unreg_why : "thread never ran");
	char forks[80];
	if (!forks_supported())
		snprintf(forks, sizeof(forks), "0 forks (off under TSan)");
	else
		snprintf(forks, sizeof(forks), "%llu forks (%llu children ok)",
			 (unsigned long long)atomic_load(&totals.forks),
			 (unsigned long long)atomic_load(&totals.children_ok));
	unsigned long nfail = atomic_load(&failures);
	char line[1024];
	snprintf(line, sizeof(line),
		 "adversary: %s: %s %.0fs: %llu operations, %llu cross-thread frees, "
		 "%llu signals, %llu affinity changes, %llu shrinks, %llu threads "
		 "started, %s, %llu ops on the unregistered thread (rseq "
		 "unregistered: %s)%s\n",
		 nfail ? "FAIL" : "OK", mode_name, elapsed, allocs + frees,
		 (unsigned long long)atomic_load(&totals.remote_frees),
		 (unsigned long long)atomic_load(&totals.signals),
		 (unsigned long long)atomic_load(&totals.affinity),
		 (unsigned long long)atomic_load(&totals.shrinks),
		 (unsigned long long)atomic_load(&totals.threads), forks,
		 (unsigned long long)atomic_load(&totals.unreg_ops), unreg,
		 nfail ? " (failures above)" : "");
	fputs(line, nfail ? stderr : stdout);
	fflush(NULL);
	return nfail ? 1 : 0;
}
