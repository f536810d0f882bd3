/* SPDX-License-Identifier: MIT */
/*
 * vmabench - a VMA-like workload on the RCU range tree (lib/rtree), in
 * three node-cache configurations, in one run:
 *
 *   sheaves  node cache with sheaves (capacity 32, as the kernel's maple
 *            node cache): each write prefills a sheaf with its worst case
 *            before the writer lock, allocates nodes from it inside, returns
 *            it after; replaced nodes go through kfree_rcu();
 *   bulk     the same cache without sheaves: the worst case preallocated
 *            with kmem_cache_alloc_bulk(), the unused freed with
 *            kmem_cache_free_bulk(), replaced nodes freed by call_rcu() +
 *            kfree (the pattern before sheaves);
 *   malloc   malloc() the worst case, free() the rest, call_rcu() + free().
 *
 * The workload: a tree of about 2000 "VMAs" (page-aligned ranges) and a
 * writer doing mmap/munmap-like churn, half inserts at random free gaps
 * (a random address, checked free with a lookup and a next-entry search),
 * half removals of random live ranges, while a reader thread does lockless
 * lookups of random addresses under rcu_read_lock().  Reported: writer
 * operations per second (median of the repetitions, interleaved across the
 * configurations), reader lookups per second, and the ratio to "bulk".
 *
 *   vmabench [--quick] [--no-reader] [--reps N] [--ops N]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtree.h"

#define PAGE 4096ull
#define SPACE (1ull << 36)      /* 64 GiB of address space */
#define NVMA 2000

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct rtree tree;
static bool with_reader = true;
static atomic_bool stop;
static atomic_ulong lookups;

static void *reader(void *arg)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	(void)arg;
	rcu_register_thread();
	unsigned long n = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct rtree_entry e;
		rcu_read_lock();
		(void)rtree_find(&tree, rnd(&rng) % SPACE, &e);
		rcu_read_unlock();
		n++;
	}
	atomic_fetch_add(&lookups, n);
	rcu_unregister_thread();
	return NULL;
}

struct vma { uint64_t s, e; };

/* One run: ops writer operations; returns writer ns per op. */
static double run(enum rtree_kind kind, unsigned long ops, double *lookups_per_s)
{
	struct kmem_cache *cache = NULL;
	if (kind != RTREE_MALLOC) {
		struct kmem_cache_args a;
		memset(&a, 0, sizeof(a));
		a.sheaf_capacity = kind == RTREE_SHEAVES ? 32 : 0;
		cache = kmem_cache_create("vma-node", sizeof(struct rtree_node), &a,
					  SLAB_HWCACHE_ALIGN);
		if (!cache) {
			perror("kmem_cache_create");
			exit(1);
		}
	}
	if (rtree_init(&tree, kind, cache)) {
		fprintf(stderr, "vmabench: rtree_init failed\n");
		exit(1);
	}
	struct vma *live = calloc(NVMA * 2, sizeof(*live));
	size_t nlive = 0;
	uint64_t rng = 12345;
	while (nlive < NVMA) {
		uint64_t s = (rnd(&rng) % SPACE) & ~(PAGE - 1);
		uint64_t e = s + PAGE * (1 + rnd(&rng) % 16);
		if (rtree_insert(&tree, s, e, (void *)(uintptr_t)s) == 0)
			live[nlive++] = (struct vma){ s, e };
	}
	atomic_store(&stop, false);
	atomic_store(&lookups, 0);
	pthread_t rt;
	if (with_reader)
		pthread_create(&rt, NULL, reader, NULL);

	uint64_t t0 = now_ns();
	for (unsigned long op = 0; op < ops; op++) {
		if ((op & 1) == 0 && nlive < NVMA * 2) {
			/* mmap: a random page-aligned address, if that much is free */
			uint64_t len = PAGE * (1 + rnd(&rng) % 16);
			uint64_t s = (rnd(&rng) % (SPACE - len)) & ~(PAGE - 1);
			struct rtree_entry e;
			rcu_read_lock();
			bool busy = rtree_find(&tree, s, &e) ||
				    (rtree_find_after(&tree, s, &e) && e.start < s + len);
			rcu_read_unlock();
			if (!busy && rtree_insert(&tree, s, s + len, (void *)(uintptr_t)s) == 0)
				live[nlive++] = (struct vma){ s, s + len };
		} else if (nlive) {
			/* munmap a random live range */
			size_t i = rnd(&rng) % nlive;
			if (rtree_remove(&tree, live[i].s, live[i].e)) {
				fprintf(stderr, "vmabench: remove failed\n");
				exit(1);
			}
			live[i] = live[--nlive];
		}
	}
	uint64_t t1 = now_ns();
	atomic_store(&stop, true);
	if (with_reader)
		pthread_join(rt, NULL);
	*lookups_per_s = (double)atomic_load(&lookups) / ((double)(t1 - t0) / 1e9);

	for (size_t i = 0; i < nlive; i++)
		rtree_remove(&tree, live[i].s, live[i].e);
	free(live);
	if (kind == RTREE_SHEAVES)
		kvfree_rcu_barrier();
	else
		rcu_barrier();
	rtree_destroy(&tree);
	if (cache)
		kmem_cache_destroy(cache);
	return (double)(t1 - t0) / (double)ops;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	unsigned long ops = 2000000;
	unsigned int reps = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			ops = 300000, reps = 3;
		else if (!strcmp(argv[i], "--no-reader"))
			with_reader = false;
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = (unsigned int)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			ops = strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: vmabench [--quick] [--no-reader] [--reps N] [--ops N]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > 64 || ops < 1000) {
		fprintf(stderr, "vmabench: bad --reps or --ops\n");
		return 2;
	}
	static const char *names[3] = { "sheaves", "bulk", "malloc" };
	double ns[3][64], lk[3][64];
	rcu_register_thread();
	for (unsigned int r = 0; r < reps; r++)
		for (int k = 0; k < 3; k++) {
			int kind = (k + (int)r) % 3; /* rotate the order */
			ns[kind][r] = run((enum rtree_kind)kind, ops, &lk[kind][r]);
		}
	rcu_unregister_thread();
	double med[3], medl[3];
	for (int k = 0; k < 3; k++) {
		qsort(ns[k], reps, sizeof(double), cmpd);
		qsort(lk[k], reps, sizeof(double), cmpd);
		med[k] = ns[k][reps / 2];
		medl[k] = lk[k][reps / 2];
	}
	printf("### VMA-like churn on the RCU range tree (%u reps, %lu writer ops each, "
	       "~%d ranges, %s)\n\n", reps, ops, NVMA,
	       with_reader ? "one lockless reader" : "no reader");
	printf("| node allocation | ns per write | writes/s (M) | reader lookups/s (M) | "
	       "writes vs bulk |\n|---|---:|---:|---:|---:|\n");
	for (int k = 0; k < 3; k++)
		printf("| %s | %.1f | %.2f | %.2f | %.2f |\n", names[k], med[k],
		       1000.0 / med[k], medl[k] / 1e6, med[1] / med[k]);
	return 0;
}
