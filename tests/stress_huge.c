/* SPDX-License-Identifier: MIT */
/*
 * stress_huge.c - the huge heap (src/huge.c) under threads: each of 4
 * threads keeps up to 6 huge blocks (kvmalloc/kvzalloc of 4-24 MiB),
 * grows and shrinks them with kvrealloc(), frees them itself or hands
 * them to the next thread to free, while one thread in eight calls
 * kmem_cache_shrink() now and then (every retained grain released, empty
 * regions unmapped, under the others' feet).  So allocations carve, join,
 * fill (pages moved from free spans), release (madvise outside the lock,
 * the span BUSY) and unmap concurrently.
 *
 * Every block is stamped at the start and end of each 4 KiB page it has
 * (the owner's tag and the page's offset) and checked before every
 * resize and free: a page lost, moved wrong or given to two blocks shows.
 * A kvzalloc() block must read zero before it is stamped.  Afterwards no
 * huge byte may be live.  Runs STRESS_SECONDS (default 2) seconds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/slab.h>

#define NTHREADS 4
#define SLOTS 6
#define MiB (1ul << 20)
#define MIN_SIZE (4 * MiB + 8)
#define MAX_SIZE (24 * MiB)
#define INBOX 8

struct block {
	uint64_t *p;
	size_t size;
	uint64_t tag;
};

struct thread {
	pthread_t tid;
	unsigned int id;
	uint32_t seed;
	struct block slot[SLOTS];
	/* blocks other threads hand over, freed by this one */
	pthread_mutex_t lock;
	struct block inbox[INBOX];
	unsigned int ninbox;
	unsigned long ops;
};

static struct thread threads[NTHREADS];
static struct kmem_cache *any_cache;
static atomic_bool stop;
static atomic_ulong tags;

static void die(const char *what, const struct block *b, size_t off)
{
	fprintf(stderr, "stress_huge: FATAL: %s: block %p size %zu tag %llu offset %zu\n",
		what, (void *)b->p, b->size, (unsigned long long)b->tag, off);
	abort();
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Stamp or check the first and last word of every page of [from, to). */
static void stamp(struct block *b, size_t from, size_t to)
{
	for (size_t off = from & ~4095ul; off < to; off += 4096) {
		size_t last = (off + 4096 <= b->size ? off + 4096 : b->size) - 8;
		b->p[off / 8] = b->tag ^ off;
		b->p[last / 8] = b->tag ^ last;
	}
}

static void check(const struct block *b, size_t upto)
{
	for (size_t off = 0; off < upto; off += 4096) {
		size_t last = (off + 4096 <= b->size ? off + 4096 : b->size) - 8;
		if (last >= upto)
			break;
		if (b->p[off / 8] != (b->tag ^ off) || b->p[last / 8] != (b->tag ^ last))
			die("stamp lost", b, off);
	}
}

static size_t some_size(uint32_t *x)
{
	return MIN_SIZE + (rnd(x) % (MAX_SIZE - MIN_SIZE)) / 8 * 8;
}

static void new_block(struct thread *t, struct block *b)
{
	b->size = some_size(&t->seed);
	b->tag = atomic_fetch_add(&tags, 1) << 32;
	bool zero = rnd(&t->seed) % 4 == 0;
	b->p = zero ? kvzalloc(b->size, GFP_KERNEL) : kvmalloc(b->size, GFP_KERNEL);
	if (!b->p)
		die("allocation failed", b, 0);
	if (zero)
		for (size_t off = 0; off < b->size; off += 2048)
			if (b->p[off / 8])
				die("kvzalloc() not zero", b, off);
	stamp(b, 0, b->size);
}

static void free_block(struct block *b)
{
	check(b, b->size);
	kvfree(b->p);
	b->p = NULL;
}

static void resize(struct thread *t, struct block *b)
{
	size_t n = some_size(&t->seed);
	check(b, b->size);
	uint64_t *q = kvrealloc(b->p, n, GFP_KERNEL);
	if (!q)
		die("kvrealloc() failed", b, n);
	size_t old = b->size;
	b->p = q;
	b->size = n;
	check(b, old < n ? old & ~4095ul : n & ~4095ul);
	stamp(b, old < n ? old & ~4095ul : 0, n);
}

static void drain_inbox(struct thread *t)
{
	pthread_mutex_lock(&t->lock);
	while (t->ninbox)
		free_block(&t->inbox[--t->ninbox]);
	pthread_mutex_unlock(&t->lock);
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	while (!atomic_load(&stop)) {
		struct block *b = &t->slot[rnd(&t->seed) % SLOTS];
		unsigned int what = rnd(&t->seed) % 16;
		if (!b->p) {
			new_block(t, b);
		} else if (what < 6) {
			resize(t, b);
		} else if (what < 10) {
			free_block(b);
		} else if (what < 13) {
			struct thread *to = &threads[(t->id + 1) % NTHREADS];
			pthread_mutex_lock(&to->lock);
			if (to->ninbox < INBOX) {
				check(b, b->size);
				to->inbox[to->ninbox++] = *b;
				b->p = NULL;
			}
			pthread_mutex_unlock(&to->lock);
		} else if (what == 13 && t->id == 0 && rnd(&t->seed) % 8 == 0) {
			kmem_cache_shrink(any_cache);
		}
		drain_inbox(t);
		t->ops++;
	}
	for (unsigned int i = 0; i < SLOTS; i++)
		if (t->slot[i].p)
			free_block(&t->slot[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0;
	const char *env = getenv("STRESS_SECONDS");
	if (seconds <= 0)
		seconds = env ? atof(env) : 2;
	any_cache = kmem_cache_create("stress-huge", 64, 0, 0, NULL);
	if (!any_cache)
		return 1;
	for (unsigned int i = 0; i < NTHREADS; i++) {
		threads[i].id = i;
		threads[i].seed = 0x9e3779b9u * (i + 1);
		pthread_mutex_init(&threads[i].lock, NULL);
	}
	for (unsigned int i = 0; i < NTHREADS; i++)
		if (pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]))
			return 1;
	struct timespec ts = { (time_t)seconds,
			       (long)((seconds - (double)(time_t)seconds) * 1e9) };
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	unsigned long ops = 0;
	for (unsigned int i = 0; i < NTHREADS; i++) {
		pthread_join(threads[i].tid, NULL);
		ops += threads[i].ops;
	}
	for (unsigned int i = 0; i < NTHREADS; i++)
		drain_inbox(&threads[i]);
	struct sheaf_page_info pi;
	sheaf_page_info(&pi);
	if (pi.huge_bytes) {
		fprintf(stderr, "stress_huge: FAIL: %zu huge bytes live at the end\n",
			pi.huge_bytes);
		return 1;
	}
	kmem_cache_shrink(any_cache);
	sheaf_page_info(&pi);
	if (pi.huge_retained) {
		fprintf(stderr, "stress_huge: FAIL: %zu bytes retained after a shrink\n",
			pi.huge_retained);
		return 1;
	}
	kmem_cache_destroy(any_cache);
	printf("stress_huge: %lu operations by %d threads in %.1f s, ok\n", ops,
	       NTHREADS, seconds);
	return 0;
}
