/*
 * race.c - kmem_cache_shrink() and kmem_cache_destroy() racing with
 * threads that allocate and free.
 *
 * Noise threads allocate and free all the time on a long-lived sheaf cache,
 * a classic cache and kmalloc, so restartable sections are in flight on
 * every CPU whenever a remote flush runs its membarrier.
 *
 *  1. shrink: workers allocate, free and pass objects to each other on a
 *     cache (sheaf and classic in turn) while the main thread shrinks it in
 *     a loop; afterwards every object is freed and one shrink leaves no slab.
 *  2. destroy: a cache is created, workers use it with cross-thread frees,
 *     stop, and the cache is destroyed at once while the noise goes on; the
 *     objects the workers freed sit in the sheaves and barns of every slot,
 *     so destroy must flush them all: it must print nothing, and the page
 *     layer must not grow over the iterations.
 *
 * Exit 0 on success; "race: FAIL: ..." and exit 1 otherwise.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/slab.h>

#include "test_util.h"

#define NWORKERS 3
#define NNOISE 2
#define SLOTS 512  /* objects in flight between workers */

static atomic_int failures;
#define FAIL(...)                                                              \
	do {                                                                   \
		fprintf(stderr, "race: FAIL: " __VA_ARGS__);                   \
		fputc('\n', stderr);                                           \
		atomic_fetch_add(&failures, 1);                                \
	} while (0)

static atomic_bool noise_stop, work_stop;
static struct kmem_cache *noise_sheaf, *noise_classic;

static void *noise(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg * 7919 + 1;
	void *live[256] = { 0 };
	while (!atomic_load(&noise_stop)) {
		unsigned i = (unsigned)rng_below(&rng, 256);
		if (live[i]) {
			uintptr_t tag = (uintptr_t)live[i] & 3;
			void *p = (void *)((uintptr_t)live[i] & ~(uintptr_t)3);
			if (tag == 0)
				kmem_cache_free(noise_sheaf, p);
			else if (tag == 1)
				kmem_cache_free(noise_classic, p);
			else
				kfree(p);
			live[i] = NULL;
			continue;
		}
		unsigned kind = (unsigned)rng_below(&rng, 3);
		void *p = kind == 0 ? kmem_cache_alloc(noise_sheaf, GFP_KERNEL)
			: kind == 1 ? kmem_cache_alloc(noise_classic, GFP_KERNEL)
			: kmalloc(1 + rng_below(&rng, 512), GFP_KERNEL);
		if (!p) {
			FAIL("noise allocation failed");
			break;
		}
		live[i] = (void *)((uintptr_t)p | kind);
	}
	for (int i = 0; i < 256; i++) {
		if (!live[i])
			continue;
		uintptr_t tag = (uintptr_t)live[i] & 3;
		void *p = (void *)((uintptr_t)live[i] & ~(uintptr_t)3);
		if (tag == 0)
			kmem_cache_free(noise_sheaf, p);
		else if (tag == 1)
			kmem_cache_free(noise_classic, p);
		else
			kfree(p);
	}
	return NULL;
}

/* Objects passed between workers: whoever takes one frees it. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool[SLOTS];
static struct kmem_cache *work_cache;

static void *worker(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg * 104729 + 3;
	unsigned int size = kmem_cache_size(work_cache);
	while (!atomic_load(&work_stop)) {
		void *batch[16];
		unsigned n = 1 + (unsigned)rng_below(&rng, 16);
		if (rng_below(&rng, 2)) {
			if (kmem_cache_alloc_bulk(work_cache, GFP_KERNEL, n, batch) != (int)n) {
				FAIL("bulk allocation failed");
				return NULL;
			}
		} else {
			for (unsigned i = 0; i < n; i++)
				if (!(batch[i] = kmem_cache_alloc(work_cache, GFP_KERNEL))) {
					FAIL("allocation failed");
					return NULL;
				}
		}
		for (unsigned i = 0; i < n; i++)
			memset(batch[i], 0x5a, size);
		/* Swap each with a pool slot; free what was there. */
		pthread_mutex_lock(&pool_lock);
		for (unsigned i = 0; i < n; i++) {
			unsigned k = (unsigned)rng_below(&rng, SLOTS);
			void *old = pool[k];
			pool[k] = batch[i];
			batch[i] = old;
		}
		pthread_mutex_unlock(&pool_lock);
		for (unsigned i = 0; i < n; i++) {
			if (!batch[i])
				continue;
			const unsigned char *c = batch[i];
			for (unsigned b = 0; b < size; b++)
				if (c[b] != 0x5a) {
					FAIL("object %p damaged at byte %u", batch[i], b);
					break;
				}
			kmem_cache_free(work_cache, batch[i]);
		}
	}
	return NULL;
}

static void drain_pool(void)
{
	for (int k = 0; k < SLOTS; k++) {
		if (pool[k])
			kmem_cache_free(work_cache, pool[k]);
		pool[k] = NULL;
	}
}

static void run_workers(double seconds, bool shrink_meanwhile, unsigned long *shrinks)
{
	pthread_t t[NWORKERS];
	atomic_store(&work_stop, false);
	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)(now.tv_sec - start.tv_sec) +
			    (double)(now.tv_nsec - start.tv_nsec) / 1e9 >= seconds)
			break;
		if (shrink_meanwhile) {
			if (kmem_cache_shrink(work_cache) < 0) /* 1: slabs in use remain */
				FAIL("kmem_cache_shrink failed");
			(*shrinks)++;
		} else {
			usleep(1000);
		}
	}
	atomic_store(&work_stop, true);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(t[i], NULL);
	drain_pool();
}

static struct kmem_cache *make(const char *name, unsigned size, unsigned cap)
{
	struct kmem_cache_args a;
	memset(&a, 0, sizeof(a));
	a.sheaf_capacity = cap;
	struct kmem_cache *s = kmem_cache_create(name, size, &a, 0);
	if (!s) {
		fprintf(stderr, "race: cannot create %s\n", name);
		exit(1);
	}
	return s;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0;
	if (getenv("STRESS_SECONDS"))
		seconds = atof(getenv("STRESS_SECONDS"));

	noise_sheaf = make("race-noise-sheaf", 96, 16);
	noise_classic = make("race-noise-classic", 48, 0);
	pthread_t nt[NNOISE];
	for (int i = 0; i < NNOISE; i++)
		pthread_create(&nt[i], NULL, noise, (void *)(uintptr_t)(i + 1));

	/* 1. shrink racing with allocators. */
	unsigned long shrinks = 0;
	for (int round = 0; round < 2; round++) {
		work_cache = make(round ? "race-shrink-classic" : "race-shrink-sheaf",
				  round ? 200 : 72, round ? 0 : 8);
		run_workers(seconds / 4, true, &shrinks);
		if (kmem_cache_shrink(work_cache) != 0)
			FAIL("final shrink failed");
		if (sheaf_cache_objects_inuse(work_cache) != 0)
			FAIL("%s: %zu objects in use after everything was freed",
			     kmem_cache_name(work_cache),
			     sheaf_cache_objects_inuse(work_cache));
		if (sheaf_cache_slabs(work_cache) != 0)
			FAIL("%s: %zu slabs after shrink", kmem_cache_name(work_cache),
			     sheaf_cache_slabs(work_cache));
		kmem_cache_destroy(work_cache);
	}

	/* 2. destroy right after use, while the noise goes on. */
	int iterations = 40;
	size_t used_early = 0;
	for (int i = 0; i < iterations; i++) {
		char name[32];
		snprintf(name, sizeof(name), "race-destroy-%d", i);
		work_cache = make(name, 40 + 8 * (unsigned)(i % 7), i % 2 ? 0 : 4);
		run_workers(seconds / 2 / iterations, false, NULL);
		if (sheaf_cache_objects_inuse(work_cache) != 0)
			FAIL("%s: objects in use before destroy", name);
		struct err_capture cap;
		capture_begin(&cap);
		kmem_cache_destroy(work_cache);
		capture_end(&cap);
		if (cap.len)
			FAIL("kmem_cache_destroy(%s) printed: %s", name, cap.text);
		struct sheaf_page_info pi;
		sheaf_page_info(&pi);
		if (i == 4)
			used_early = pi.used_pages;
		if (i == iterations - 1 && pi.used_pages > used_early + 256)
			FAIL("page layer grew from %zu to %zu pages over the destroys",
			     used_early, pi.used_pages);
	}

	atomic_store(&noise_stop, true);
	for (int i = 0; i < NNOISE; i++)
		pthread_join(nt[i], NULL);
	int fails = atomic_load(&failures);
	printf("race: %s: %lu concurrent shrinks, %d destroys after use, mode %s\n",
	       fails ? "FAILED" : "OK", shrinks, iterations, sheaf_percpu_mode());
	return fails ? 1 : 0;
}
