/* SPDX-License-Identifier: MIT */
/*
 * <sheaf/info.h> - the statistics page a process publishes for sheafinfo.
 *
 * A process started with SHEAF_STATS=1 (or SHEAF_STATS=exit) creates the
 * POSIX shared memory object "/libsheaf.<pid>" (/dev/shm/libsheaf.<pid>,
 * mode 0600) and a publisher thread rewrites it every SHEAF_STATS_INTERVAL
 * milliseconds, and at once when a reader asks.  Nothing is published when
 * statistics are off.  The object is unlinked at normal exit.
 *
 * Layout: one struct sheaf_info_header, then max_caches records of
 * struct sheaf_info_cache (record_size bytes each, header_size bytes after
 * the start).  The first nr_caches records are valid.
 *
 * Consistency: `seq` is a seqcount, odd while the publisher rewrites the
 * records; a reader copies header and records, and retries when seq was odd
 * or changed meanwhile.
 *
 * Refresh protocol: a reader increments `request` (atomically) and wakes
 * the publisher with FUTEX_WAKE on it (a shared, non-private futex); the
 * publisher reads `request`, takes a snapshot and then stores the value it
 * read in `answered` (and FUTEX_WAKEs `answered`).  A reader whose own
 * request value is <= answered (modulo 2^32) holds a snapshot taken after
 * it asked.
 *
 * Trust: the page is a file any local user can create.  A reader copies it
 * (at most SHEAF_INFO_PAGE_MAX bytes) and validates every field of the copy
 * before use; owner and start time come from /proc (docs/STATS.md).
 *
 * Compatibility: a reader accepts a page only when magic, version,
 * header_size, record_size and nr_stats are the ones it was built with;
 * the version changes whenever either structure or the list of counters
 * (SHEAF_STAT_ITEMS) changes.  pid and start_time (field 22 of
 * /proc/<pid>/stat: clock ticks since boot) tell a page of a live process
 * from one left by a dead process whose pid was recycled.
 */
#ifndef SHEAF_INFO_H
#define SHEAF_INFO_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <sheaf/stats.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHEAF_INFO_MAGIC   0x464e494641454853ull  /* "SHEAFINF" little endian */
/* 3: a cache's capacity range and barn limit (capacity_base, capacity_max,
 * barn_limit, SHEAF_INFO_C_ADAPTIVE) and the 44 counters with
 * capacity_grow and capacity_shrink (520-byte records); 2: the 7.2 counter
 * meanings, order_fallback and alloc_from_sheaf (42 counters, 496-byte
 * records); 1: the 40 counters before. */
#define SHEAF_INFO_VERSION 3u
#define SHEAF_INFO_MAX_CACHES 256u
#define SHEAF_INFO_SHM_PREFIX "/libsheaf."        /* + decimal pid */

/*
 * struct sheaf_info_header - the first bytes of the page.
 * Invariants: nr_caches == min(total_caches, max_caches) (the list is
 * truncated iff total_caches > nr_caches); generation grows by one per
 * snapshot; seq is even between snapshots.
 */
struct sheaf_info_header {
	uint64_t magic;           /* SHEAF_INFO_MAGIC */
	uint32_t version;         /* SHEAF_INFO_VERSION */
	uint32_t header_size;     /* sizeof(struct sheaf_info_header) */
	uint32_t record_size;     /* sizeof(struct sheaf_info_cache) */
	uint32_t nr_stats;        /* SHEAF_STAT_NR */
	uint32_t max_caches;      /* records the page has room for */
	uint32_t nr_caches;       /* valid records */
	uint32_t total_caches;    /* caches of the process (> nr_caches: truncated) */
	int32_t pid;
	uint64_t start_time;      /* field 22 of /proc/<pid>/stat */
	uint32_t seq;             /* seqcount: odd while the records change */
	uint32_t request;         /* futex word: readers increment it */
	uint32_t answered;        /* futex word: request value of the last snapshot */
	uint32_t interval_ms;     /* publishing period */
	uint64_t generation;      /* snapshots taken */
	uint64_t time_ns;         /* CLOCK_REALTIME of the snapshot */
	uint32_t nr_slots;        /* CPU slots */
	uint32_t nr_nodes;        /* NUMA nodes */
	uint32_t page_size;
	uint32_t flags;           /* SHEAF_INFO_P_* */
	uint64_t reserved[4];
};

#define SHEAF_INFO_P_RSEQ   0x1u  /* per-CPU mode rseq (else fallback) */
#define SHEAF_INFO_P_EXITED 0x2u  /* the last snapshot, taken at exit */

/* Cache flags (struct sheaf_info_cache.flags). */
#define SHEAF_INFO_C_SHEAVES  0x1u  /* per-CPU sheaves and barns */
#define SHEAF_INFO_C_DEBUG    0x2u  /* slub_debug flags: checked slow path */
#define SHEAF_INFO_C_KMALLOC  0x4u  /* a kmalloc size class */
#define SHEAF_INFO_C_INTERNAL 0x8u  /* libsheaf's own (sheaf-store-*) */
#define SHEAF_INFO_C_ADAPTIVE 0x10u /* capacity and barn limit move (SHEAF_ADAPTIVE) */

/*
 * The barn limit of a cache with sheaves: the kernel's 10 full (and empty)
 * sheaves per barn, up to 4 times that for an adaptive cache
 * (sheaf_cache_limits(), <sheaf/slab.h>).
 */
#define SHEAF_INFO_BARN_LIMIT_MIN 10u
#define SHEAF_INFO_BARN_LIMIT_MAX 40u
/* The largest capacity a record may show: SHEAF_MAX_CAPACITY (<sheaf/slab.h>). */
#define SHEAF_INFO_CAPACITY_MAX 1024u

/*
 * struct sheaf_info_cache - one cache.
 * Invariants (exact when the process is quiescent, approximate while it
 * allocates): objects_inuse + objects_cached + objects_partial_free ==
 * objects_total; bytes == the slabs' pages * page_size + metadata.
 * objects_per_slab and order are the cache's: a slab made by an order
 * fallback (counter order_fallback) has a smaller order and fewer objects,
 * so objects_total == slabs * objects_per_slab and bytes == slabs *
 * (page_size << order) + metadata only while there is none.
 * Capacity (what sheaf_cache_limits() reports): a cache with sheaves
 * (SHEAF_INFO_C_SHEAVES) has 1 <= capacity_base <= sheaf_capacity <=
 * capacity_max <= SHEAF_INFO_CAPACITY_MAX and SHEAF_INFO_BARN_LIMIT_MIN
 * <= barn_limit <= SHEAF_INFO_BARN_LIMIT_MAX; a fixed one (no
 * SHEAF_INFO_C_ADAPTIVE) has capacity_base == sheaf_capacity ==
 * capacity_max and barn_limit == SHEAF_INFO_BARN_LIMIT_MIN.  A cache
 * without sheaves has the four fields 0 and SHEAF_INFO_C_ADAPTIVE clear.
 */
struct sheaf_info_cache {
	char name[64];
	uint32_t object_size;     /* the user's size */
	uint32_t size;            /* stride in the slab (object + metadata) */
	uint32_t objects_per_slab; /* at the cache's order */
	uint32_t order;           /* slab = 2^order pages (order_fallback: fewer) */
	uint32_t sheaf_capacity;  /* now; 0: classic per-CPU slab path */
	uint32_t flags;           /* SHEAF_INFO_C_* */
	uint32_t slab_flags;      /* SLAB_* creation flags */
	uint32_t capacity_base;   /* the floor: the capacity at creation */
	uint32_t capacity_max;    /* the ceiling: every sheaf's room */
	uint32_t barn_limit;      /* full (and empty) sheaves per barn, now */
	uint64_t slabs;           /* (offset 104: the uint64 fields stay aligned) */
	uint64_t objects_total;   /* slots in all slabs */
	uint64_t objects_inuse;   /* handed out to the program */
	uint64_t objects_cached;  /* free in sheaves and barns, or in cpu slabs */
	uint64_t objects_partial_free; /* free on partial slabs */
	uint64_t barn_full;       /* full sheaves in the barns */
	uint64_t barn_empty;      /* empty sheaves in the barns */
	uint64_t bytes;           /* slab pages (each slab's own order) plus the
				   * cache's own metadata */
	uint64_t stats[SHEAF_STAT_NR]; /* counter totals, SHEAF_STAT_ITEMS order */
};

/*
 * The largest page a reader accepts: the header and SHEAF_INFO_MAX_CACHES
 * records (133248 bytes), the size the publisher creates.  A reader refuses
 * a larger file before reading it (docs/STATS.md, "Threat model").
 */
#define SHEAF_INFO_PAGE_MAX (sizeof(struct sheaf_info_header) + \
			     SHEAF_INFO_MAX_CACHES * sizeof(struct sheaf_info_cache))

/* sheaf_info_print() flags. */
#define SHEAF_INFO_ALL  0x1u  /* list internal and never-used caches too */
#define SHEAF_INFO_JSON 0x2u  /* JSON instead of the table */

/*
 * Print a snapshot (a header followed by its records, as in the page) as
 * the sheafinfo table or as JSON, sorted by `sort` (NULL or "name": by name;
 * else one of sheaf_info_sort_keys, largest first).  The same function
 * prints SHEAF_STATS=exit's table and the sheafinfo tool's output.
 * Returns 0; -EINVAL for a NULL argument, an unknown sort key or a header
 * this library does not understand (magic, version or sizes).
 * It reads the nr_caches records after the header without knowing the
 * buffer's length: a page read from /dev/shm is untrusted and must be
 * validated first (sheafinfo copies and checks it; docs/STATS.md).  Cache
 * names are printed escaped: control characters, bytes from 0x7f and the
 * backslash as \xNN and \\ in the table, as \u00XX in JSON.
 */
int sheaf_info_print(FILE *out, const struct sheaf_info_header *snap,
		     unsigned int flags, const char *sort);

/* Field 22 of /proc/PID/stat (the process's start time, the header's
 * start_time), 0 when it cannot be read. */
uint64_t sheaf_info_start_time(pid_t pid);

/* The sort keys sheaf_info_print() accepts, space separated. */
extern const char sheaf_info_sort_keys[];

#ifdef __cplusplus
}
#endif
#endif /* SHEAF_INFO_H */
