/* SPDX-License-Identifier: MIT */
/*
 * debug.c - error reports, and slub_debug: the checked slow path of debug
 * caches.
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

/* ---------------------------------------------------- ASan and valgrind */

/* Present when the process runs with AddressSanitizer (weak: else NULL). */
extern void __asan_poison_memory_region(void const volatile *addr, size_t size)
	__attribute__((weak));
extern void __asan_unpoison_memory_region(void const volatile *addr, size_t size)
	__attribute__((weak));

bool _sheaf_track_on;
static bool track_valgrind;

/*
 * Whether the valgrind tool we run under checks memory accesses.  Only
 * memcheck uses the MALLOCLIKE/FREELIKE/NOACCESS client requests; under
 * callgrind, cachegrind, massif or none, announcing every object costs
 * about a hundred instructions per alloc+free pair for nothing (and skews
 * callgrind's instruction counts).  Valgrind preloads its tool's
 * vgpreload_<tool>-<arch>.so; when that cannot be seen, keep announcing.
 */
static bool valgrind_checks_memory(void)
{
	const char *pre = getenv("LD_PRELOAD");
	if (!RUNNING_ON_VALGRIND)
		return false;
	if (!pre || !strstr(pre, "vgpreload_"))
		return true;
	return strstr(pre, "vgpreload_memcheck") != NULL;
}

void _sheaf_track_setup(void)
{
	track_valgrind = valgrind_checks_memory();
	_sheaf_track_on = track_valgrind || __asan_poison_memory_region != NULL;
}

/*
 * ASan leaves debug caches alone: their checks read and write red zones and
 * poison that ASan would report.  Valgrind describes them too (memcheck
 * then finds what slub_debug finds, as KASAN does next to slub_debug in the
 * kernel); the debug code runs inside meta_access_begin/end, valgrind's
 * error reporting off, as the kernel's metadata_access_enable/disable.
 * Free pointers stay accessible but in debug caches, where only the debug
 * code reads them.
 */
static inline void meta_access_begin(void)
{
	if (track_valgrind)
		VALGRIND_DISABLE_ERROR_REPORTING;
}

static inline void meta_access_end(void)
{
	if (track_valgrind)
		VALGRIND_ENABLE_ERROR_REPORTING;
}

void _sheaf_track_alloc_slow(struct kmem_cache *s, void *obj)
{
	if (__asan_unpoison_memory_region && !cache_debug(s))
		__asan_unpoison_memory_region(obj, s->object_size);
	/* A constructed object (a cache with a constructor) is handed out in
	 * its constructed state: defined, not fresh undefined memory. */
	if (track_valgrind)
		VALGRIND_MALLOCLIKE_BLOCK(obj, s->object_size, 0, s->ctor != NULL);
}

/* An object of a new slab, never allocated: inaccessible, with its red
 * zones and metadata, but for a non-debug cache's free pointer (so that a
 * read past a neighbour is caught too). */
void _sheaf_track_new_object(struct kmem_cache *s, void *obj)
{
	uint8_t *fp = (uint8_t *)obj + s->offset;
	if (__asan_poison_memory_region && !cache_debug(s)) {
		__asan_poison_memory_region(obj, s->size);
		__asan_unpoison_memory_region(fp, sizeof(void *));
	}
	if (track_valgrind) {
		VALGRIND_MAKE_MEM_NOACCESS((uint8_t *)obj - s->red_left_pad, s->size);
		if (!cache_debug(s))
			VALGRIND_MAKE_MEM_DEFINED(fp, sizeof(void *));
	}
}

/*
 * The free pointer word stays accessible in a free object of a non-debug
 * cache, wherever it lies: inside the object, after it, or across its end
 * (objects smaller than a pointer: the word covers the object and its
 * padding, and FREELIKE made the object part inaccessible).
 */
void _sheaf_track_free_slow(struct kmem_cache *s, void *obj)
{
	uint8_t *fp = (uint8_t *)obj + s->offset;
	if (__asan_poison_memory_region && !cache_debug(s)) {
		__asan_poison_memory_region(obj, s->object_size);
		__asan_unpoison_memory_region(fp, sizeof(void *));
	}
	if (track_valgrind) {
		VALGRIND_FREELIKE_BLOCK(obj, 0);
		if (!cache_debug(s))
			VALGRIND_MAKE_MEM_DEFINED(fp, sizeof(void *));
	}
}

/* A slab's pages go back to the page layer: whatever comes next there
 * starts from accessible memory. */
void _sheaf_track_release(void *addr, size_t len)
{
	if (__asan_unpoison_memory_region)
		__asan_unpoison_memory_region(addr, len);
	if (track_valgrind)
		VALGRIND_MAKE_MEM_UNDEFINED(addr, len);
}

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
 * The calling thread's id (tracks, the failure injector's seed), cached
 * (0: not yet asked): gettid() is a system call, a third of a tracked
 * pair's cost.  fork() leaves the child's one thread with its parent
 * thread's cache: the postfork handler (run by that thread) clears it.
 */
static __thread int cached_tid;

void _sheaf_debug_postfork_child(void)
{
	cached_tid = 0;
}

static inline int this_tid(void)
{
	if (unlikely(!cached_tid))
		cached_tid = (int)syscall(SYS_gettid);
	return cached_tid;
}

static void set_track(struct kmem_cache *s, void *obj, bool freed)
{
	if (!(s->flags & SLAB_STORE_USER))
		return;
	struct track *t = get_track(s, obj, freed);
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
	t->tid = this_tid();
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
	meta_access_begin();
	uint8_t *p = obj_bytes(obj);
	size_t pad = s->size - s->red_left_pad - s->inuse;
	memset(p + s->inuse, POISON_PAD, pad);
	if (s->flags & SLAB_STORE_USER)
		memset(p + s->track_off, 0, 2 * sizeof(struct track));
	init_object(s, obj, RED_INACTIVE);
	meta_access_end();
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
	return off % s->size == 0 && off / s->size < s->objects;
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
	if (slab->objects != s->objects || slab->inuse + nfree != slab->objects) {
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
	if (slab->on_partial) {
		list_del(&slab->slab_list);
		WRITE_ONCE(n->nr_partial, n->nr_partial - 1);
		slab->on_partial = 0;
	}
	list_add(&slab->slab_list, &n->full);
}

void *_sheaf_debug_alloc(struct kmem_cache *s, gfp_t gfp, int node,
			 unsigned int slot)
{
	cache_check_live(s, "kmem_cache_alloc", NULL);
	if (node == NUMA_NO_NODE)
		node = sheaf_node();
	struct kmem_cache_node *n = get_node(s, node);
	void *obj = NULL;

	meta_access_begin();
	pthread_mutex_lock(&n->list_lock);
	for (;;) {
		struct slab *slab;
		if (!list_empty(&n->partial)) {
			slab = list_first_entry(&n->partial, struct slab, slab_list);
		} else {
			slab = _sheaf_new_slab(s, gfp, node, slot);
			if (!slab)
				break;
			list_add(&slab->slab_list, &n->partial);
			WRITE_ONCE(n->nr_partial, n->nr_partial + 1);
			slab->on_partial = 1;
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
		set_track(s, obj, false);
		trace(s, "alloc", obj);
		break;
	}
	pthread_mutex_unlock(&n->list_lock);
	meta_access_end();
	return obj;
}

/*
 * Free with every check.  caller is the user's call site for reports that
 * abort at once (wrong cache, invalid pointer: the kernel's cache_from_obj).
 */
void _sheaf_debug_free(struct kmem_cache *s, struct slab *slab, void *obj,
		       unsigned int slot)
{
	cache_check_live(s, "kmem_cache_free", NULL);
	struct kmem_cache_node *n = get_node(s, slab->node);
	struct slab *discard = NULL;

	meta_access_begin();
	pthread_mutex_lock(&n->list_lock);
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
	set_track(s, obj, true);
	trace(s, "free", obj);
	init_object(s, obj, RED_INACTIVE);
	bool was_full = slab->freelist == NULL;
	set_freepointer(s, obj, slab->freelist);
	slab->freelist = obj;
	slab->inuse--;
	if (was_full && !slab->on_partial) {
		list_del(&slab->slab_list);
		list_add(&slab->slab_list, &n->partial);
		WRITE_ONCE(n->nr_partial, n->nr_partial + 1);
		slab->on_partial = 1;
	}
	if (!slab->inuse && n->nr_partial > s->min_partial) {
		list_del(&slab->slab_list);
		WRITE_ONCE(n->nr_partial, n->nr_partial - 1);
		slab->on_partial = 0;
		discard = slab;
	}
	stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
	goto out;
out_report:
	pthread_mutex_unlock(&n->list_lock);
	report_done();
	meta_access_end();
	return;
out:
	pthread_mutex_unlock(&n->list_lock);
	meta_access_end();
	if (discard)
		_sheaf_discard_slab(s, discard, slot);
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
	meta_access_begin();
	for (unsigned int k = 0; k < _sheaf_nr_nodes; k++) {
		struct kmem_cache_node *n = get_node(s, (int)k);
		struct slab *slab;
		pthread_mutex_lock(&n->list_lock);
		list_for_each_entry(slab, &n->partial, slab_list)
			problems += validate_slab(s, slab);
		list_for_each_entry(slab, &n->full, slab_list)
			problems += validate_slab(s, slab);
		pthread_mutex_unlock(&n->list_lock);
	}
	meta_access_end();
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
	meta_access_begin();
	for (unsigned int k = 0; k < _sheaf_nr_nodes && shown < 16; k++) {
		struct kmem_cache_node *n = get_node(s, (int)k);
		struct slab *slab;
		struct list_head *lists[2] = { &n->partial, &n->full };
		pthread_mutex_lock(&n->list_lock);
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
		pthread_mutex_unlock(&n->list_lock);
	}
	meta_access_end();
	fprintf(stderr, "%zu objects remaining\n\n", live);
	fflush(stderr);
}

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
	pthread_mutex_lock(&glob_lock);
	for (unsigned int i = 0; i < nglobs && !r; i++)
		if (!strcmp(glob_pool[i], g))
			r = glob_pool[i];
	if (!r && nglobs < FAULT_GLOBS) {
		strcpy(glob_pool[nglobs], g);
		r = glob_pool[nglobs++];
	}
	pthread_mutex_unlock(&glob_lock);
	return r;
}

/* fork: the glob pool's lock (a leaf) is not inherited held. */
void _sheaf_debug_prefork(void)
{
	pthread_mutex_lock(&glob_lock);
}

void _sheaf_debug_postfork(void)
{
	pthread_mutex_unlock(&glob_lock);
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
			    (uint64_t)this_tid();
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
