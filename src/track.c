/* SPDX-License-Identifier: MIT */
/*
 * track.c - telling AddressSanitizer and valgrind which objects are live:
 * free objects (in slabs, sheaves, barns and RCU sheaves) are poisoned and
 * announced as freed, so that a use after free is caught there too.  Below
 * the page layer in the layer table: the layers above call it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
void _sheaf_meta_access_begin(void)
{
	if (track_valgrind)
		VALGRIND_DISABLE_ERROR_REPORTING;
}

void _sheaf_meta_access_end(void)
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

