/* SPDX-License-Identifier: MIT */
/*
 * fault.c - failure injection (the kernel's failslab and fault_attr), at
 * the slab, page and sheaf allocation points.  Below the page layer in the
 * layer table: the layers above consult it (should_fail() in internal.h).
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ------------------------------------------------------ fault injection */

/*
 * Failure injection with the kernel's fault_attr semantics
 * (Documentation/fault-injection), at three points: slab allocations
 * (failslab: kmem_cache_alloc*, kmalloc of the size classes, bulk
 * allocations, sheaves themselves), the page layer (page runs, arena
 * growth, huge mappings) and sheaf allocation alone.
 *
 * A call "may fail" only if: times != 0, the space budget is used up (each
 * call that passes subtracts its size), it is the interval-th call
 * (interval > 1), and a random draw below 100 is under probability.  A
 * failure then decrements times (-1: unlimited).  Extensions: skip (let
 * that many calls pass first, for the tests' sheaf_inject_*), a cache-name
 * glob and nowait-only for failslab, verbose (one stderr line per failure).
 * __GFP_NOFAIL allocations never fail.  Lock-free: the counters are
 * atomics and the random state is per thread, so that a fork never finds
 * a lock held here.
 *
 * Invariants: on == (times != 0); _sheaf_fault_any is true while some
 * point is on (it may stay true after the last failure was used: it is
 * recomputed by sheaf_fault_set() and the sheaf_inject_* calls only, never
 * inside an allocation, which may hold the cache list lock); the hot paths
 * read nothing but _sheaf_fault_any, and it keeps the inline paths off.
 */
struct fault_attr {
	_Atomic bool on;
	_Atomic long times;		/* failures left, -1: no limit */
	_Atomic long space;		/* budget of sizes before failing */
	_Atomic long skip;		/* calls to let through first */
	_Atomic unsigned long calls;	/* calls past space and skip */
	_Atomic unsigned long injected;
	/* Settings: atomics too, since sheaf_fault_set() may change them
	 * while other threads test the point. */
	_Atomic unsigned long interval;	/* fail only every interval-th call */
	_Atomic unsigned int probability; /* percent */
	_Atomic bool nowait_only;	/* only allocations that may not block */
	_Atomic bool verbose;
	const char *_Atomic glob;	/* failslab: cache names (NULL = all),
					 * an interned string, never changed */
};

/* Interned cache-name globs: written once each, read without locks. */
#define FAULT_GLOBS 32
static char glob_pool[FAULT_GLOBS][64];
static unsigned int nglobs;
static pthread_mutex_t glob_lock SHEAF_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;

/* The pool's copy of g, or NULL when the pool is full or g too long. */
static const char *intern_glob(const char *g)
{
	const char *r = NULL;
	if (strlen(g) >= sizeof(glob_pool[0]))
		return NULL;
	sheaf_lock(&glob_lock, LR_LEAF);
	for (unsigned int i = 0; i < nglobs && !r; i++)
		if (!strcmp(glob_pool[i], g))
			r = glob_pool[i];
	if (!r && nglobs < FAULT_GLOBS) {
		strcpy(glob_pool[nglobs], g);
		r = glob_pool[nglobs++];
	}
	sheaf_unlock(&glob_lock, LR_LEAF);
	return r;
}

/* fork: the glob pool's lock (a leaf) is not inherited held. */
void _sheaf_fault_prefork(void)
{
	sheaf_lock(&glob_lock, LR_LEAF);
}

void _sheaf_fault_postfork(void)
{
	sheaf_unlock(&glob_lock, LR_LEAF);
}

static struct fault_attr faults[SHEAF_FAULT_NR];
static const char *const fault_env[SHEAF_FAULT_NR] = {
	"SHEAF_FAILSLAB", "SHEAF_FAILPAGE", "SHEAF_FAILSHEAF",
};
static const char *const fault_name[SHEAF_FAULT_NR] = {
	"failslab", "failpage", "failsheaf",
};
bool _sheaf_fault_any;		/* some point is armed: no inline paths */

static __thread uint64_t fault_rnd;

static unsigned int fault_random100(void)
{
	if (!fault_rnd)
		fault_rnd = (uint64_t)(uintptr_t)&fault_rnd ^ 0x9e3779b97f4a7c15ull ^
			    (uint64_t)sheaf_tid();
	fault_rnd ^= fault_rnd << 13;
	fault_rnd ^= fault_rnd >> 7;
	fault_rnd ^= fault_rnd << 17;
	return (unsigned int)(fault_rnd % 100);
}

static void fault_update_any(void)
{
	bool any = false;
	for (int i = 0; i < SHEAF_FAULT_NR; i++)
		any |= atomic_load(&faults[i].on);
	if (any != READ_ONCE(_sheaf_fault_any)) {
		WRITE_ONCE(_sheaf_fault_any, any);
		if (_sheaf_initialized)
			_sheaf_refresh_inline_all();
	}
}

bool _sheaf_should_fail(enum sheaf_fault which, struct kmem_cache *s,
			size_t size, gfp_t gfp)
{
	struct fault_attr *f = &faults[which];
	long t, v;

	if (!atomic_load_explicit(&f->on, memory_order_acquire) || (gfp & __GFP_NOFAIL))
		return false;
	if (atomic_load_explicit(&f->nowait_only, memory_order_relaxed) &&
	    gfpflags_allow_blocking(gfp))
		return false;
	const char *glob = atomic_load_explicit(&f->glob, memory_order_acquire);
	if (glob && (!s || fnmatch(glob, s->name, 0) != 0))
		return false;
	v = atomic_load(&f->skip);
	while (v > 0)
		if (atomic_compare_exchange_weak(&f->skip, &v, v - 1))
			return false;
	v = atomic_load(&f->space);
	while (v > (long)size)
		if (atomic_compare_exchange_weak(&f->space, &v, v - (long)size))
			return false;
	unsigned long interval = atomic_load_explicit(&f->interval, memory_order_relaxed);
	if (interval > 1 && (atomic_fetch_add(&f->calls, 1) + 1) % interval)
		return false;
	if (atomic_load_explicit(&f->probability, memory_order_relaxed) <=
	    fault_random100())
		return false;
	t = atomic_load(&f->times);
	do {
		if (t == 0)
			return false;
	} while (t > 0 && !atomic_compare_exchange_weak(&f->times, &t, t - 1));
	if (t == 1)		/* that was the last one (_sheaf_fault_any stays:
				 * it is only updated outside allocations) */
		atomic_store(&f->on, false);
	atomic_fetch_add(&f->injected, 1);
	if (atomic_load_explicit(&f->verbose, memory_order_relaxed))
		fprintf(stderr, "sheaf: %s: injected failure (%s, %zu bytes)\n",
			fault_name[which], s ? s->name : "pages", size);
	return true;
}

/* Arm one point: off first, then the new settings (glob: interned). */
static void fault_arm(struct fault_attr *f, unsigned long interval,
		      unsigned int probability, long space, long times, long skip,
		      const char *glob, bool nowait, bool verbose)
{
	atomic_store(&f->on, false);
	atomic_store(&f->interval, interval);
	atomic_store(&f->probability, probability);
	atomic_store(&f->nowait_only, nowait);
	atomic_store(&f->verbose, verbose);
	atomic_store(&f->glob, glob);
	atomic_store(&f->space, space);
	atomic_store(&f->skip, skip);
	atomic_store(&f->calls, 0);
	atomic_store(&f->times, times);
	atomic_store(&f->on, times != 0);
}

/*
 * "interval,probability,space,times[,cache=GLOB][,nowait][,verbose]" (the
 * kernel's failslab= boot syntax and its debugfs knobs), "" or "0" for off.
 */
static int fault_parse_set(enum sheaf_fault which, const char *spec)
{
	unsigned long interval;
	long probability, space, times;
	char buf[256], *save = NULL, *tok, *gtok = NULL;
	const char *glob = NULL;
	bool nowait = false, verbose = false;
	int n = 0;

	if (!spec || !spec[0] || !strcmp(spec, "0")) {
		fault_arm(&faults[which], 1, 0, 0, 0, 0, NULL, false, false);
		return 0;
	}
	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	/* %lu would take "-1" as ULONG_MAX: no sign at all. */
	if (buf[strspn(buf, " \t")] == '-' ||
	    sscanf(buf, "%lu,%ld,%ld,%ld%n", &interval, &probability, &space,
		   &times, &n) != 4 || (buf[n] && buf[n] != ','))
		return -EINVAL;
	if (interval == 0 || probability < 0 || probability > 100 || space < 0 ||
	    times < -1)
		return -EINVAL;
	for (tok = strtok_r(buf + n, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, "cache=", 6) && tok[6] && which == SHEAF_FAULT_SLAB)
			gtok = tok + 6;
		else if (!strcmp(tok, "nowait"))
			nowait = true;
		else if (!strcmp(tok, "verbose"))
			verbose = true;
		else
			return -EINVAL;
	}
	if (gtok && !(glob = intern_glob(gtok)))
		return -EINVAL;	/* too long, or 32 different globs already */
	fault_arm(&faults[which], interval, (unsigned int)probability, space, times,
		  0, glob, nowait, verbose);
	return 0;
}

SHEAF_EXPORT int sheaf_fault_set(enum sheaf_fault which, const char *spec)
{
	if ((unsigned int)which >= SHEAF_FAULT_NR)
		return -EINVAL;
	sheaf_init();
	int rc = fault_parse_set(which, spec);
	if (rc)			/* as documented: a refused spec leaves it off */
		fault_arm(&faults[which], 1, 0, 0, 0, 0, NULL, false, false);
	fault_update_any();
	return rc;
}

SHEAF_EXPORT uint64_t sheaf_fault_injected(enum sheaf_fault which)
{
	if ((unsigned int)which >= SHEAF_FAULT_NR)
		return 0;
	return atomic_load(&faults[which].injected);
}

/* The tests' older hooks, on the same mechanism. */
SHEAF_EXPORT void sheaf_inject_page_failures(long skip, long count)
{
	sheaf_init();
	fault_arm(&faults[SHEAF_FAULT_PAGE], 1, 100, 0, count < 0 ? -1 : count,
		  skip < 0 ? 0 : skip, NULL, false, false);
	fault_update_any();
}

SHEAF_EXPORT void sheaf_inject_sheaf_failures(long count)
{
	sheaf_init();
	fault_arm(&faults[SHEAF_FAULT_SHEAF], 1, 100, 0, count < 0 ? -1 : count, 0,
		  NULL, false, false);
	fault_update_any();
}

/* At init: the environment's settings; a bad one is reported, not used. */
void _sheaf_fault_setup(void)
{
	for (int i = 0; i < SHEAF_FAULT_NR; i++) {
		const char *v = _sheaf_config.fault[i];
		if (v && fault_parse_set((enum sheaf_fault)i, v) != 0)
			fprintf(stderr, "sheaf: %s=\"%s\" ignored: expected "
				"interval,probability,space,times[,cache=GLOB]"
				"[,nowait][,verbose]\n", fault_env[i], v);
	}
	for (int i = 0; i < SHEAF_FAULT_NR; i++)
		_sheaf_fault_any |= atomic_load(&faults[i].on);
}
