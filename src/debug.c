/* SPDX-License-Identifier: MIT */
/*
 * debug.c - error reports.  All corruption and misuse goes to one cold,
 * noreturn reporter: one line naming the function, the problem, the
 * address, the cache and the caller, then abort(), like glibc's
 * "free(): invalid pointer".
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

void _sheaf_report_invalid(const char *fn, const char *what, const void *addr,
			   struct kmem_cache *s, void *caller)
{
	fprintf(stderr, "sheaf: %s(): %s %p (cache %s, caller %p)\n", fn, what,
		addr, s ? s->name : "unknown", caller);
	fflush(stderr);
	abort();
}
