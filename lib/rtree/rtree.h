/* SPDX-License-Identifier: MIT */
/*
 * rtree - an RCU-safe B+tree range map, in the spirit of the kernel's maple
 * tree and VMA tree, and a real user of libsheaf's whole API.
 *
 * Entries are non-overlapping ranges [start, end) with a value.  Readers
 * are lockless under rcu_read_lock() (liburcu urcu-memb, <sheaf/rcu.h>):
 * published nodes never change, a write copies the path it changes
 * (copy-on-write) and publishes a new root with rcu_assign_pointer().
 * Writers are serialized by a mutex.
 *
 * Node allocation follows the maple tree: a write computes its worst-case
 * node count, reserves that many nodes *before* it takes the writer lock
 * (with sheaves: kmem_cache_prefill_sheaf()), takes nodes only from the
 * reservation inside it, so nothing can fail or block there, and gives the
 * unused rest back after (kmem_cache_return_sheaf()).  Replaced nodes are
 * freed after a grace period (kfree_rcu()).  The node allocator is a small
 * interface so that the same tree runs on other strategies for comparison
 * (bench/vmabench.c).
 */
#ifndef RTREE_H
#define RTREE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sheaf/rcu.h>
#include <sheaf/slab.h>

#define RTREE_FANOUT 8

/*
 * A node: a leaf holds up to RTREE_FANOUT entries sorted by start; an
 * internal node up to RTREE_FANOUT children, key[i] being the smallest
 * start in child[i].  Invariant: nr >= 1 except an empty tree's root leaf.
 * 256 bytes, like a maple node.
 */
struct rtree_node {
	struct rcu_head rcu;
	uint32_t nr;
	uint32_t leaf;
	uint64_t key[RTREE_FANOUT];
	union {
		struct {
			uint64_t end[RTREE_FANOUT];
			void *val[RTREE_FANOUT];
		};
		struct rtree_node *child[RTREE_FANOUT];
	};
	uint64_t pad[5];
};

/* How a tree gets and frees nodes (see rtree.c for the three kinds). */
struct rtree_alloc;

/*
 * The root pointer has a cache line of its own: every lookup reads it, and
 * a writer taking and dropping the lock would otherwise take that line from
 * the readers' CPUs twice a write (only publishing a new root must).
 */
struct rtree {
	_Alignas(64) struct rtree_node *root; /* rcu_dereference() it */
	_Alignas(64) pthread_mutex_t lock;    /* serializes writers */
	unsigned int height;           /* 1: the root is a leaf; writer lock */
	size_t count;                  /* entries; writer lock */
	const struct rtree_alloc *alloc;
	struct kmem_cache *cache;      /* node cache (NULL for malloc) */
};

enum rtree_kind {
	RTREE_SHEAVES,   /* cache with sheaves: prefill/alloc_from_sheaf/return, kfree_rcu */
	RTREE_BULK,      /* cache without sheaves: alloc_bulk/free_bulk, call_rcu + free */
	RTREE_MALLOC,    /* malloc/free, call_rcu + free */
};

/* 0, or -ENOMEM (nothing allocated). */
int rtree_init(struct rtree *t, enum rtree_kind kind, struct kmem_cache *cache);
/* Free every node (no reader may be using the tree). */
void rtree_destroy(struct rtree *t);

/* 0; -EINVAL (start >= end); -EEXIST (overlaps an entry); -ENOMEM. */
int rtree_insert(struct rtree *t, uint64_t start, uint64_t end, void *val);
/* Remove the entry [start, end): 0, -ENOENT, or -ENOMEM. */
int rtree_remove(struct rtree *t, uint64_t start, uint64_t end);

/*
 * Readers: call under rcu_read_lock() (the returned pointers stay valid
 * until rcu_read_unlock()).
 */
struct rtree_entry {
	uint64_t start, end;
	void *val;
};
/* The entry containing addr: true and *e filled, or false. */
bool rtree_find(struct rtree *t, uint64_t addr, struct rtree_entry *e);
/* The first entry with start >= addr. */
bool rtree_find_after(struct rtree *t, uint64_t addr, struct rtree_entry *e);
/*
 * The lowest gap of at least size bytes inside [lo, hi): its start in
 * *gap_start, true; false if there is none.
 */
bool rtree_find_gap(struct rtree *t, uint64_t size, uint64_t lo, uint64_t hi,
		    uint64_t *gap_start);
/* Call fn on every entry in order until it returns false; the count seen. */
size_t rtree_iterate(struct rtree *t, bool (*fn)(const struct rtree_entry *, void *),
		     void *arg);

#endif
