/* SPDX-License-Identifier: MIT */
/*
 * debug.c - slub_debug: the checked slow path of debug caches.  (The
 * reports of misuse are the platform's, percpu.c; failure injection is
 * fault.c; sanitizer tracking is track.c.)
 *
 * A cache with any debug flag (SLAB_CONSISTENCY_CHECKS 'F', SLAB_RED_ZONE
 * 'Z', SLAB_POISON 'P', SLAB_STORE_USER 'U', SLAB_TRACE 'T'; from the flags
 * at creation or SLUB_DEBUG in the environment) gets no sheaves and no CPU
 * cache: every allocation and free takes this file's path, serialized under
 * the node's list_lock, where the checks run.  Object layout of a debug
 * cache (offsets from the slot start; the user pointer is the object):
 *
 *   | left red zone | object (object_size) | right red zone | free ptr | tracks |
 *     red_left_pad                          >= 8 bytes          8       2 x track
 *
 * Byte values (the kernel's): red zone 0xbb while free, 0xcc while
 * allocated; a free object is poisoned 0x6b with its last byte 0xa5; bytes
 * between the end of the used area and the stride are 0x5a.
 *
 * Reports follow the kernel's shape: "BUG <cache> (Not tainted): <what>",
 * the object, its offset in the slab, its allocation and free tracks, a hex
 * dump, then "FIX <cache>: <repair>".  SHEAF_DEBUG_ABORT=0 continues after
 * the repair (the damaged object is kept out of use); the default aborts.
 */
#include <errno.h>
#include <execinfo.h>
#include <fnmatch.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>

#include "internal.h"

/* ------------------------------------------------------ SLUB_DEBUG rules */

#define POISON_FREE  0x6b
#define POISON_END   0xa5
#define POISON_PAD   0x5a
#define RED_INACTIVE 0xbb
#define RED_ACTIVE   0xcc
#define TRACK_DEPTH  12

/*
 * struct track - where and when an object was last allocated or freed
 * (SLAB_STORE_USER).  Stored after the free pointer, alloc track first.
 */
struct track {
	void *addrs[TRACK_DEPTH];
	int depth;
	int cpu;
	int tid;
	uint64_t when_ns;
};

struct debug_rule {
	slab_flags_t flags;   /* 0 with clear: '-' */
	bool clear;
	char pattern[64];     /* empty: every cache */
};

#define MAX_RULES 16
static struct debug_rule rules[MAX_RULES];
static int nrules;
static bool debug_abort = true;
/* Set on a thread while it runs kmem_cache_validate(): its reports count,
 * they do not abort (other threads' reports still do). */
static __thread bool validating;

static slab_flags_t flag_of(char c)
{
	switch (c) {
	case 'F': case 'f': return SLAB_CONSISTENCY_CHECKS;
	case 'Z': case 'z': return SLAB_RED_ZONE;
	case 'P': case 'p': return SLAB_POISON;
	case 'U': case 'u': return SLAB_STORE_USER;
	case 'T': case 't': return SLAB_TRACE;
	default: return 0;
	}
}

/*
 * SLUB_DEBUG in the kernel's slub_debug= syntax: blocks separated by ';',
 * each "FLAGS[,cache[,cache...]]"; no letters means F, Z, P and U; '-'
 * means none; a cache name may be a glob; no cache list means every cache.
 */
void _sheaf_debug_setup(void)
{
	debug_abort = _sheaf_config.debug_abort;
	const char *v = _sheaf_config.slub_debug;
	if (!v)
		return;
	char buf[1024];
	if (strlen(v) >= sizeof(buf))
		fprintf(stderr, "sheaf: SLUB_DEBUG is longer than %zu characters: "
			"the rest is ignored\n", sizeof(buf) - 1);
	snprintf(buf, sizeof(buf), "%s", v);
	bool dropped = false;
	char *save_block = NULL;
	for (char *block = strtok_r(buf, ";", &save_block); block;
	     block = strtok_r(NULL, ";", &save_block)) {
		char *comma = strchr(block, ',');
		char *names = comma ? comma + 1 : NULL;
		if (comma)
			*comma = '\0';
		struct debug_rule r = { 0 };
		if (!strcmp(block, "-")) {
			r.clear = true;
		} else if (!*block) {
			r.flags = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE |
				  SLAB_POISON | SLAB_STORE_USER;
		} else {
			for (const char *c = block; *c; c++) {
				slab_flags_t f = flag_of(*c);
				if (!f)
					fprintf(stderr, "sheaf: SLUB_DEBUG: unknown flag '%c' ignored\n", *c);
				r.flags |= f;
			}
		}
		if (!names || !*names) {
			if (nrules < MAX_RULES)
				rules[nrules++] = r;
			else
				dropped = true;
			continue;
		}
		char *save_name = NULL;
		for (char *n = strtok_r(names, ",", &save_name); n;
		     n = strtok_r(NULL, ",", &save_name)) {
			if (nrules >= MAX_RULES) {
				dropped = true;
				break;
			}
			if (strlen(n) >= sizeof(r.pattern))
				fprintf(stderr, "sheaf: SLUB_DEBUG: cache name longer than "
					"%zu characters cut\n", sizeof(r.pattern) - 1);
			snprintf(r.pattern, sizeof(r.pattern), "%s", n);
			rules[nrules++] = r;
		}
	}
	if (dropped)
		fprintf(stderr, "sheaf: SLUB_DEBUG has more than %d rules (one per "
			"cache name): the rest are ignored\n", MAX_RULES);
	/*
	 * glibc's first backtrace() loads the unwinder with dlopen, which
	 * allocates: do it now, inside sheaf_init(), rather than in the first
	 * tracked allocation under a node lock (under libsheaf-malloc that
	 * allocation would come back into the locked cache).
	 */
	for (int i = 0; i < nrules; i++) {
		if (rules[i].flags & SLAB_STORE_USER) {
			void *bt[2];
			backtrace(bt, 2);
			break;
		}
	}
}

/* The debug flags a cache of this name gets (later rules win). */
slab_flags_t _sheaf_debug_flags_for(const char *name, slab_flags_t flags)
{
	for (int i = 0; i < nrules; i++) {
		if (rules[i].pattern[0] && fnmatch(rules[i].pattern, name, 0))
			continue;
		if (rules[i].clear)
			flags &= ~SLAB_DEBUG_FLAGS;
		else
			flags |= rules[i].flags;
	}
	return flags;
}

/* ------------------------------------------------------------- layout */

/* Lay out a debug cache; object_size, align and flags are set. */
void _sheaf_debug_layout(struct kmem_cache *s)
{
	unsigned int align = s->align;
	unsigned int pos = 0;
	s->red_left_pad = (s->flags & SLAB_RED_ZONE) ? ALIGN_UP(8u, align) : 0;
	/* Object, then a right red zone of at least 8 bytes. */
	pos = ALIGN_UP(s->object_size, 8u);
	if (s->flags & SLAB_RED_ZONE)
		pos += 8;
	s->offset = pos;                    /* the free pointer, outside the object */
	pos += sizeof(void *);
	s->track_off = pos;
	if (s->flags & SLAB_STORE_USER)
		pos += 2 * sizeof(struct track);
	s->inuse = pos;
	s->size = ALIGN_UP(s->red_left_pad + pos, align);
}

static inline uint8_t *obj_bytes(const void *obj)
{
	return (uint8_t *)obj;
}

static inline struct track *get_track(struct kmem_cache *s, void *obj, bool freed)
{
	return (struct track *)(obj_bytes(obj) + s->track_off) + (freed ? 1 : 0);
}

/*
 * The address range spanned by the loadable segments of the object that
 * holds libsheaf's code (the shared library, or the program it is linked
 * into): its frames are skipped in a track.  Found once with
 * dl_iterate_phdr(); asking dladdr() for every frame of every tracked
 * allocation and free (a symbol search each) cost ~5 us per pair.
 */
static uintptr_t self_lo, self_hi;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static int self_range_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	uintptr_t here = (uintptr_t)data, lo = UINTPTR_MAX, hi = 0;
	(void)size;
	for (unsigned int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		lo = MIN(lo, a);
		hi = MAX(hi, a + ph->p_memsz);
	}
	if (here < lo || here >= hi)
		return 0;
	self_lo = lo;
	self_hi = hi;
	return 1;
}

static void self_range_init(void)
{
	dl_iterate_phdr(self_range_cb, (void *)(uintptr_t)self_range_init);
}

/*
 * nolock: kmalloc_nolock(), maybe in a signal handler: no stack trace
 * (backtrace() may load the unwinder, and walks the loader's lists under
 * its lock): the track has no frames ("no record"), only cpu, tid, time.
 */
static void set_track(struct kmem_cache *s, void *obj, bool freed, bool nolock)
{
	if (!(s->flags & SLAB_STORE_USER))
		return;
	struct track *t = get_track(s, obj, freed);
	if (nolock) {
		t->depth = 0;
		t->cpu = (int)sheaf_cpu();
		t->tid = sheaf_tid();
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t->when_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		return;
	}
	void *bt[TRACK_DEPTH + 8];
	int n = backtrace(bt, TRACK_DEPTH + 8);
	/* Skip libsheaf's own frames: the track starts at the caller. */
	pthread_once(&self_once, self_range_init);
	int skip = 1;
	while (skip < n && (uintptr_t)bt[skip] >= self_lo && (uintptr_t)bt[skip] < self_hi)
		skip++;
	if (skip >= n)
		skip = n > 3 ? 3 : 0; /* linked statically: one object, count frames */
	t->depth = MIN(n - skip, TRACK_DEPTH);
	memcpy(t->addrs, bt + skip, (size_t)t->depth * sizeof(void *));
	t->cpu = (int)sheaf_cpu();
	t->tid = sheaf_tid();
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t->when_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * P poisons free objects but those that keep their contents while free:
 * constructed ones and SLAB_TYPESAFE_BY_RCU ones (the kernel's
 * __OBJECT_POISON rule).  Their red zones are still checked.
 */
static inline bool object_poison(const struct kmem_cache *s)
{
	return (s->flags & SLAB_POISON) && !s->ctor &&
	       !(s->flags & SLAB_TYPESAFE_BY_RCU);
}

/* Red zones to `val`, and (free objects, object_poison) the poison pattern. */
static void init_object(struct kmem_cache *s, void *obj, uint8_t val)
{
	uint8_t *p = obj_bytes(obj);
	if (s->flags & SLAB_RED_ZONE) {
		memset(p - s->red_left_pad, val, s->red_left_pad);
		memset(p + s->object_size, val, s->offset - s->object_size);
	}
	if (object_poison(s) && val == RED_INACTIVE) {
		memset(p, POISON_FREE, s->object_size - 1);
		p[s->object_size - 1] = POISON_END;
	}
}

/* A new slab's object: free, red zones inactive, poisoned, padding set. */
void _sheaf_debug_new_object(struct kmem_cache *s, void *obj)
{
	_sheaf_meta_access_begin();
	uint8_t *p = obj_bytes(obj);
	size_t pad = s->size - s->red_left_pad - s->inuse;
	memset(p + s->inuse, POISON_PAD, pad);
	if (s->flags & SLAB_STORE_USER)
		memset(p + s->track_off, 0, 2 * sizeof(struct track));
	init_object(s, obj, RED_INACTIVE);
	_sheaf_meta_access_end();
}

/* -------------------------------------------------------------- reports */

static void hexdump(const char *label, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i += 16) {
		fprintf(stderr, "%-8s %p: ", label, (const void *)(p + i));
		for (size_t j = i; j < i + 16 && j < len; j++)
			fprintf(stderr, "%02x ", p[j]);
		fputc('\n', stderr);
	}
}

static void print_track(const char *what, const struct track *t)
{
	if (!t->depth) {
		fprintf(stderr, "%s: no record\n", what);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	char **syms = backtrace_symbols((void *const *)t->addrs, t->depth);
	fprintf(stderr, "%s in %s age=%llu us cpu=%d tid=%d\n", what,
		syms ? syms[0] : "?", (unsigned long long)((now - t->when_ns) / 1000),
		t->cpu, t->tid);
	for (int i = 0; i < t->depth; i++)
		fprintf(stderr, " %s\n", syms ? syms[i] : "?");
	free(syms);
}

static void report_header(struct kmem_cache *s, const char *fmt, va_list ap)
{
	fprintf(stderr, "=============================================================================\n");
	fprintf(stderr, "BUG %s (Not tainted): ", s->name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n-----------------------------------------------------------------------------\n\n");
}

/* The object's report: tracks, slab, dump of the whole slot. */
static void report_object(struct kmem_cache *s, struct slab *slab, void *obj)
{
	uint8_t *p = obj_bytes(obj);
	uint8_t *base = slab_address(slab);
	fprintf(stderr, "Object %p @offset=%zu fp=%p\n\n", obj,
		(size_t)(p - base), get_freepointer(s, obj));
	if (s->flags & SLAB_STORE_USER) {
		print_track("Allocated", get_track(s, obj, false));
		print_track("Freed", get_track(s, obj, true));
	}
	fprintf(stderr, "Slab %p objects=%u used=%u fp=%p\n", base,
		slab->objects, slab->inuse, slab->freelist);
	if (s->red_left_pad)
		hexdump("Redzone", p - s->red_left_pad, s->red_left_pad);
	hexdump("Object", p, s->object_size);
	if (s->flags & SLAB_RED_ZONE)
		hexdump("Redzone", p + s->object_size, s->offset - s->object_size);
}

static bool report_done(void)
{
	fflush(stderr);
	if (debug_abort && !validating) {
		_sheaf_die();
	}
	return false;
}

static __attribute__((format(printf, 4, 5)))
void report(struct kmem_cache *s, struct slab *slab, void *obj, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report_header(s, fmt, ap);
	va_end(ap);
	if (obj)
		report_object(s, slab, obj);
}

/*
 * Check that [start, start + len) holds `val`; report and repair if not.
 * Returns false when damaged.
 */
static bool check_bytes(struct kmem_cache *s, struct slab *slab, void *obj,
			const char *what, uint8_t *start, size_t len, uint8_t val)
{
	size_t i;
	for (i = 0; i < len; i++)
		if (start[i] != val)
			break;
	if (i == len)
		return true;
	size_t last = len;
	while (last > i && start[last - 1] == val)
		last--;
	report(s, slab, obj, "%s overwritten", what);
	fprintf(stderr, "\n%p-%p @offset=%zu. First byte 0x%x instead of 0x%x\n",
		(void *)(start + i), (void *)(start + last - 1),
		(size_t)(start + i - (uint8_t *)slab_address(slab)), start[i], val);
	fprintf(stderr, "FIX %s: Restoring %s %p-%p=0x%x\n\n", s->name, what,
		(void *)(start + i), (void *)(start + last - 1), val);
	memset(start + i, val, last - i);
	return report_done();
}

/* Red zones (and poison of a free object) as they should be. */
static bool check_object(struct kmem_cache *s, struct slab *slab, void *obj,
			 uint8_t val)
{
	uint8_t *p = obj_bytes(obj);
	bool ok = true;
	if (s->flags & SLAB_RED_ZONE) {
		ok &= check_bytes(s, slab, obj, "Left Redzone", p - s->red_left_pad,
				  s->red_left_pad, val);
		ok &= check_bytes(s, slab, obj, "Right Redzone", p + s->object_size,
				  s->offset - s->object_size, val);
	}
	if (object_poison(s) && val == RED_INACTIVE) {
		ok &= check_bytes(s, slab, obj, "Poison", p, s->object_size - 1,
				  POISON_FREE);
		ok &= check_bytes(s, slab, obj, "Poison", p + s->object_size - 1, 1,
				  POISON_END);
	}
	return ok;
}

/* Is obj an object slot of the slab (user pointer)? */
static bool valid_pointer(struct kmem_cache *s, struct slab *slab, const void *obj)
{
	uint8_t *base = slab_address(slab);
	if ((const uint8_t *)obj < base + s->red_left_pad)
		return false;
	uint64_t off = (uint64_t)((const uint8_t *)obj - base - s->red_left_pad);
	/* sheaf_obj_boundary() with the slab's own objects, not the cache's:
	 * a slab of an order fallback has fewer. */
	uint64_t idx = sheaf_obj_index(&s->hot, off);
	return idx * s->size == off && idx < slab->objects;
}

/*
 * Walk the slab's freelist: true if obj is on it.  A corrupt free pointer is
 * reported and the chain cut there (the rest of the slab kept out of use).
 */
static bool on_freelist(struct kmem_cache *s, struct slab *slab, void *obj)
{
	void *prev = NULL;
	unsigned int n = 0;
	for (void *fp = slab->freelist; fp && n <= slab->objects; n++) {
		if (fp == obj)
			return true;
		if (!valid_pointer(s, slab, fp)) {
			report(s, slab, prev, "Freechain corrupt");
			fprintf(stderr, "FIX %s: Isolate the rest of the freelist after %p\n\n",
				s->name, prev);
			if (prev)
				set_freepointer(s, prev, NULL);
			else
				slab->freelist = NULL;
			report_done();
			return false;
		}
		prev = fp;
		fp = get_freepointer(s, fp);
	}
	return false;
}

/* Slab-level checks (F): counters against the freelist. */
static bool check_slab(struct kmem_cache *s, struct slab *slab)
{
	unsigned int nfree = 0;
	for (void *fp = slab->freelist; fp && nfree <= slab->objects; nfree++)
		fp = get_freepointer(s, fp);
	/* The objects of the slab's own order (an order fallback has fewer). */
	if (slab->objects != order_objects(s, slab->order) ||
	    slab->inuse + nfree != slab->objects) {
		report(s, slab, NULL, "Wrong object count. Counter is %u but counted were %u",
		       slab->inuse, slab->objects - nfree);
		fprintf(stderr, "Slab %p objects=%u used=%u\n", slab_address(slab),
			slab->objects, slab->inuse);
		fprintf(stderr, "FIX %s: Object count adjusted\n\n", s->name);
		slab->inuse = (slab->objects - nfree) & 0xffff;
		return report_done();
	}
	return true;
}

static void trace(struct kmem_cache *s, const char *what, void *obj)
{
	if (!(s->flags & SLAB_TRACE))
		return;
	fprintf(stderr, "TRACE %s %s %p inuse=%u fp=%p\n", s->name, what, obj,
		s->object_size, get_freepointer(s, obj));
	hexdump("Object", obj_bytes(obj), s->object_size < 64 ? s->object_size : 64);
}

/* ----------------------------------------------------- alloc and free */

/* Caller holds n->list_lock. */
static void list_move_full(struct kmem_cache_node *n, struct slab *slab)
{
	if (slab->on_partial)
		slab_remove_partial(n, slab);
	slab_add_full(n, slab);
}

/*
 * gfp with SHEAF_GFP_NOLOCK (kmalloc_nolock(), which may run in a signal
 * handler): the node's list_lock and the page lock are only tried (NULL
 * when busy), the track has no stack trace and SLAB_TRACE prints nothing;
 * the checks run as ever (a report from a handler is printed from there:
 * it ends the process unless SHEAF_DEBUG_ABORT=0).
 */
void *_sheaf_debug_alloc(struct kmem_cache *s, gfp_t gfp, int node,
			 unsigned int slot)
{
	bool nolock = gfp & SHEAF_GFP_NOLOCK;
	cache_check_live(s, "kmem_cache_alloc", NULL);
	if (!nolock && deferred_pending(s))
		_sheaf_debug_drain_deferred(s, false);
	if (node == NUMA_NO_NODE)
		node = sheaf_node();
	struct kmem_cache_node *n = get_node(s, node);
	void *obj = NULL;

	_sheaf_meta_access_begin();
	if (!nolock) {
		sheaf_lock(&n->list_lock, LR_LIST);
	} else if (!sheaf_trylock(&n->list_lock, LR_LIST)) {
		_sheaf_meta_access_end();
		return NULL;
	}
	for (;;) {
		struct slab *slab;
		if (!list_empty(&n->partial)) {
			slab = list_first_entry(&n->partial, struct slab, slab_list);
		} else {
			slab = _sheaf_new_slab(s, gfp, node, slot);
			if (!slab)
				break;
			slab_add_partial(n, slab);
		}
		if ((s->flags & SLAB_CONSISTENCY_CHECKS) && !check_slab(s, slab))
			continue;
		obj = slab->freelist;
		if (!obj) { /* isolated by a repair: out of use */
			list_move_full(n, slab);
			continue;
		}
		if ((s->flags & SLAB_CONSISTENCY_CHECKS) && !valid_pointer(s, slab, obj)) {
			report(s, slab, NULL, "Freelist Pointer check fails");
			fprintf(stderr, "Freelist %p is not an object of slab %p\n"
				"FIX %s: Slab isolated\n\n", obj, slab_address(slab), s->name);
			slab->freelist = NULL;
			list_move_full(n, slab);
			report_done();
			continue;
		}
		if (!check_object(s, slab, obj, RED_INACTIVE)) {
			/* Damaged while free: repaired, but kept out of use. */
			slab->freelist = get_freepointer(s, obj);
			slab->inuse++;
			if (!slab->freelist)
				list_move_full(n, slab);
			continue;
		}
		slab->freelist = get_freepointer(s, obj);
		slab->inuse++;
		if (!slab->freelist)
			list_move_full(n, slab);
		init_object(s, obj, RED_ACTIVE);
		set_track(s, obj, false, nolock);
		if (!nolock)
			trace(s, "alloc", obj);
		break;
	}
	sheaf_unlock(&n->list_lock, LR_LIST);
	_sheaf_meta_access_end();
	return obj;
}

/*
 * Free with every check.  caller is the user's call site for reports that
 * abort at once (wrong cache, invalid pointer: the kernel's cache_from_obj).
 * Returns whether obj went back to its slab (a user's free counts it in
 * free_slowpath; a sheaf's flush does not).
 */
bool _sheaf_debug_free(struct kmem_cache *s, struct slab *slab, void *obj,
		       unsigned int slot)
{
	cache_check_live(s, "kmem_cache_free", NULL);
	if (deferred_pending(s))
		_sheaf_debug_drain_deferred(s, false);
	struct kmem_cache_node *n = get_node(s, slab->node);
	struct slab *discard = NULL;
	bool freed = false;

	_sheaf_meta_access_begin();
	sheaf_lock(&n->list_lock, LR_LIST);
	if (!valid_pointer(s, slab, obj)) {
		report(s, slab, NULL, "Invalid object pointer %p", obj);
		fprintf(stderr, "FIX %s: Object at %p not freed\n\n", s->name, obj);
		goto out_report;
	}
	if ((s->flags & (SLAB_CONSISTENCY_CHECKS | SLAB_POISON)) &&
	    on_freelist(s, slab, obj)) {
		report(s, slab, obj, "Object already free");
		fprintf(stderr, "FIX %s: Object at %p not freed\n\n", s->name, obj);
		goto out_report;
	}
	if (s->flags & SLAB_CONSISTENCY_CHECKS)
		(void)check_slab(s, slab); /* a wrong count is repaired: go on */
	if (!check_object(s, slab, obj, RED_ACTIVE))
		goto out; /* repaired, the object kept out of use */
	set_track(s, obj, true, false);
	trace(s, "free", obj);
	init_object(s, obj, RED_INACTIVE);
	bool was_full = slab->freelist == NULL;
	set_freepointer(s, obj, slab->freelist);
	slab->freelist = obj;
	slab->inuse--;
	if (was_full && !slab->on_partial) {
		slab_remove_full(n, slab);
		slab_add_partial(n, slab);
	}
	if (!slab->inuse && n->nr_partial > s->min_partial) {
		slab_remove_partial(n, slab);
		discard = slab;
	}
	freed = true;
	goto out;
out_report:
	sheaf_unlock(&n->list_lock, LR_LIST);
	report_done();
	_sheaf_meta_access_end();
	return false;
out:
	sheaf_unlock(&n->list_lock, LR_LIST);
	_sheaf_meta_access_end();
	if (discard)
		_sheaf_discard_slab(s, discard, slot);
	return freed;
}

/*
 * kfree_nolock() defers every free of a debug cache (the checked free
 * waits for list_lock): here each deferred object gets that free, with
 * every check, and its free track is the drainer's.  The links are the
 * objects' free pointers, outside the object (metadata: valgrind's
 * reports off around their reads).  wait: slab.c, "deferred frees".
 */
void _sheaf_debug_drain_deferred(struct kmem_cache *s, bool wait)
{
	if (!_sheaf_deferred_lock(s, wait))
		return;
	void *o = deferred_take(s);
	size_t n = 0;
	unsigned int slot = sheaf_slot();
	while (o) {
		_sheaf_meta_access_begin();
		void *next = get_freepointer(s, o);
		_sheaf_meta_access_end();
		_sheaf_debug_free(s, virt_to_slab(o), o, slot);
		o = next;
		n++;
	}
	_sheaf_deferred_unlock(s, n);
}

/* Report that obj, freed to s, belongs to another cache (then abort). */
void _sheaf_debug_wrong_cache(struct kmem_cache *s, struct slab *slab, const void *obj)
{
	struct kmem_cache *owner = slab->slab_cache;
	report(s, NULL, NULL, "Wrong slab cache. %s but object is from %s",
	       s->name, owner ? owner->name : "none");
	fprintf(stderr, "Object %p\nFIX %s: Object not freed\n\n", obj, s->name);
	report_done();
}

/* ------------------------------------------------ validate, leak report */

/* Check every object of one slab; returns the number of problems. */
static int validate_slab(struct kmem_cache *s, struct slab *slab)
{
	int problems = 0;
	uint8_t *base = slab_address(slab);
	if ((s->flags & SLAB_CONSISTENCY_CHECKS) && !check_slab(s, slab))
		problems++;
	for (unsigned int i = 0; i < slab->objects; i++) {
		void *obj = base + s->red_left_pad + (size_t)i * s->size;
		bool is_free = on_freelist(s, slab, obj);
		if (!check_object(s, slab, obj, is_free ? RED_INACTIVE : RED_ACTIVE))
			problems++;
	}
	return problems;
}

SHEAF_EXPORT int kmem_cache_validate(struct kmem_cache *s)
{
	int problems = 0;
	if (!s)
		return -EINVAL;
	cache_check_live(s, "kmem_cache_validate", __builtin_return_address(0));
	if (!(s->flags & SLAB_DEBUG_FLAGS))
		return 0; /* nothing to check against without debug layout */
	validating = true; /* count every problem */
	_sheaf_meta_access_begin();
	for (unsigned int k = 0; k < _sheaf_nr_nodes; k++) {
		struct kmem_cache_node *n = get_node(s, (int)k);
		struct slab *slab;
		sheaf_lock(&n->list_lock, LR_LIST);
		list_for_each_entry(slab, &n->partial, slab_list)
			problems += validate_slab(s, slab);
		list_for_each_entry(slab, &n->full, slab_list)
			problems += validate_slab(s, slab);
		sheaf_unlock(&n->list_lock, LR_LIST);
	}
	_sheaf_meta_access_end();
	validating = false;
	return problems;
}

/*
 * At destroy with live objects: list them, with where they were allocated
 * (SLAB_STORE_USER), as the kernel's "Objects remaining" report.
 */
void _sheaf_debug_leak_report(struct kmem_cache *s, size_t live)
{
	fprintf(stderr, "=============================================================================\n");
	fprintf(stderr, "BUG %s (Not tainted): Objects remaining in %s on __kmem_cache_shutdown()\n",
		s->name, s->name);
	fprintf(stderr, "-----------------------------------------------------------------------------\n\n");
	size_t shown = 0;
	_sheaf_meta_access_begin();
	for (unsigned int k = 0; k < _sheaf_nr_nodes && shown < 16; k++) {
		struct kmem_cache_node *n = get_node(s, (int)k);
		struct slab *slab;
		struct list_head *lists[2] = { &n->partial, &n->full };
		sheaf_lock(&n->list_lock, LR_LIST);
		for (int l = 0; l < 2; l++)
			list_for_each_entry(slab, lists[l], slab_list) {
				uint8_t *base = slab_address(slab);
				for (unsigned int i = 0; i < slab->objects && shown < 16; i++) {
					void *obj = base + s->red_left_pad + (size_t)i * s->size;
					if (on_freelist(s, slab, obj))
						continue;
					fprintf(stderr, "Object %p @offset=%zu\n", obj,
						(size_t)((uint8_t *)obj - base));
					if (s->flags & SLAB_STORE_USER)
						print_track("Allocated", get_track(s, obj, false));
					shown++;
				}
			}
		sheaf_unlock(&n->list_lock, LR_LIST);
	}
	_sheaf_meta_access_end();
	fprintf(stderr, "%zu objects remaining\n\n", live);
	fflush(stderr);
}

