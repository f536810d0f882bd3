/* SPDX-License-Identifier: MIT */
/*
 * stats.c - per-cache counters, summed over slots on read.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static const char *const stat_names[SHEAF_STAT_NR] = {
#define SHEAF_STAT_NAME(e, n) #n,
	SHEAF_STAT_ITEMS(SHEAF_STAT_NAME)
#undef SHEAF_STAT_NAME
};

SHEAF_EXPORT const char *sheaf_stat_name(enum sheaf_stat_item item)
{
	return (unsigned int)item < SHEAF_STAT_NR ? stat_names[item] : NULL;
}

/*
 * The item an alias reads (itself for a counted item), or SHEAF_STAT_NR
 * when the alias reads 0: the aliases are 6.18's sheaf-traffic names, and
 * a cache without sheaves has none.  Nothing counts an alias itself.
 */
static enum sheaf_stat_item stat_source(struct kmem_cache *s,
					enum sheaf_stat_item item)
{
	switch (item) {
#define SHEAF_STAT_ALIAS(a, i)                                                 	case SHEAF_STAT_##a:                                                   		return cache_has_sheaves(s) ? SHEAF_STAT_##i : SHEAF_STAT_NR;
	SHEAF_STAT_ALIASES(SHEAF_STAT_ALIAS)
#undef SHEAF_STAT_ALIAS
	default:
		return item;
	}
}

SHEAF_EXPORT uint64_t sheaf_stats_get_slot(struct kmem_cache *s,
					   enum sheaf_stat_item item,
					   unsigned int slot)
{
	if (!s || (unsigned int)item >= SHEAF_STAT_NR || slot >= _sheaf_nr_slots)
		return 0;
	item = stat_source(s, item);
	if (item == SHEAF_STAT_NR)
		return 0;
	return __atomic_load_n(&s->stats[slot].v[item], __ATOMIC_RELAXED);
}

SHEAF_EXPORT uint64_t sheaf_stats_get(struct kmem_cache *s,
				      enum sheaf_stat_item item)
{
	uint64_t sum = 0;
	if (!s || (unsigned int)item >= SHEAF_STAT_NR)
		return 0;
	item = stat_source(s, item);
	if (item == SHEAF_STAT_NR)
		return 0;
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		sum += __atomic_load_n(&s->stats[i].v[item], __ATOMIC_RELAXED);
	return sum;
}

SHEAF_EXPORT void sheaf_stats_reset(struct kmem_cache *s)
{
	if (!s)
		return;
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		for (unsigned int k = 0; k < SHEAF_STAT_NR; k++)
			__atomic_store_n(&s->stats[i].v[k], 0, __ATOMIC_RELAXED);
}

SHEAF_EXPORT int sheaf_stats_print(struct kmem_cache *s, FILE *out)
{
	if (!s || !out)
		return -EINVAL;
	for (unsigned int k = 0; k < SHEAF_STAT_NR; k++) {
		fprintf(out, "%s %llu", stat_names[k],
			(unsigned long long)sheaf_stats_get(s, (enum sheaf_stat_item)k));
		for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
			uint64_t v = sheaf_stats_get_slot(s, (enum sheaf_stat_item)k, i);
			if (v)
				fprintf(out, " C%u=%llu", i, (unsigned long long)v);
		}
		fputc('\n', out);
	}
	return 0;
}

SHEAF_EXPORT bool sheaf_stats_enabled(void)
{
	sheaf_init();
	return __atomic_load_n(&_sheaf_stats_on, __ATOMIC_RELAXED);
}

SHEAF_EXPORT void sheaf_stats_enable(bool on)
{
	sheaf_init();
	__atomic_store_n(&_sheaf_stats_on, on, __ATOMIC_RELAXED);
	/* The inline fast paths do not count: they are off while counting. */
	_sheaf_refresh_inline_all();
}
