/* SPDX-License-Identifier: MIT */
/*
 * popchain - why the pop section hands out the slot's top hint instead of
 * reading main's array first (docs/MALLOC.md, "mixed: the pop's top
 * hint").  No allocator here: three ways to keep a thread's free objects
 * per size class, each behind a call as malloc() and free() are.
 *
 *   list   a free list threaded through the objects (the thread caches of
 *          tcmalloc and its kin): the pop loads the head, then the next
 *          pointer from the object itself
 *   array  a count and an array of pointers (a sheaf): the pop loads the
 *          count, then the array entry
 *   top    the same, with a copy of the top entry next to the count: the
 *          pop returns the copy when it equals the array's entry (the
 *          entry otherwise) and copies the entry below into it, the push
 *          copies what it pushed (what libsheaf-malloc's sections do)
 *
 * Each round allocates --batch objects whose sizes are drawn from
 * --classes size classes, writes one byte of each (a program writes what
 * it allocated), then frees them in a shuffled order: mallocbench's mixed
 * workload without the allocator.  Printed: ns per allocation and per free
 * of each, the median of --reps runs, the three run in turn each time.
 * With one class the array is the fastest; with the classes interleaved
 * its allocations slow down, on this project's AMD VM by half, and the
 * top copy takes most of that back (docs/MALLOC.md has the figures).
 *
 *   popchain [--classes N] [--batch N] [--rounds N] [--reps N]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLASSES 8
#define MAX_BATCH   4096
#define POOL        (2 * MAX_BATCH)	/* objects per class */

static const size_t class_size[MAX_CLASSES] = { 16, 32, 64, 96, 128, 192, 256, 512 };

/* Per class: the list's head, the array's count, top copy and entries. */
struct stack {
	void *head;          /* list */
	unsigned int count;  /* array, top */
	void *top;           /* top: objects[count - 1] */
	void **objects;
} __attribute__((aligned(64)));

static struct stack stacks[MAX_CLASSES];

static __attribute__((noinline)) void *list_pop(unsigned int c)
{
	struct stack *s = &stacks[c];
	void *p = s->head;
	s->head = *(void **)p;
	return p;
}

static __attribute__((noinline)) void list_push(unsigned int c, void *p)
{
	struct stack *s = &stacks[c];
	*(void **)p = s->head;
	s->head = p;
}

static __attribute__((noinline)) void *array_pop(unsigned int c)
{
	struct stack *s = &stacks[c];
	unsigned int n = s->count - 1;
	void *p = s->objects[n];
	__builtin_prefetch(s->objects[n - 1], 1, 3);
	s->count = n;
	return p;
}

static __attribute__((noinline)) void array_push(unsigned int c, void *p)
{
	struct stack *s = &stacks[c];
	unsigned int n = s->count;
	s->objects[n] = p;
	s->count = n + 1;
}

static __attribute__((noinline)) void *top_pop(unsigned int c)
{
	struct stack *s = &stacks[c];
	void *p = s->top;
	unsigned int n = s->count - 1;
#if defined(__x86_64__)
	/* As the section does: the copy is handed out unless the entry
	 * differs (a branch over one load, never a cmov, whose result would
	 * wait for the array load; in C the compiler returns the entry it
	 * has just compared equal, which is the array load again). */
	__asm__("cmpq %[p], (%[a], %q[n], 8)\n\t"
		"je 1f\n\t"
		"movq (%[a], %q[n], 8), %[p]\n"
		"1:"
		: [p] "+r"(p)
		: [a] "r"(s->objects), [n] "r"(n)
		: "cc", "memory");
#else
	if (s->objects[n] != p)
		p = s->objects[n];
#endif
	void *next = s->objects[n - 1];
	s->top = next;
	s->count = n;
	__builtin_prefetch(next, 1, 3);
	return p;
}

static __attribute__((noinline)) void top_push(unsigned int c, void *p)
{
	struct stack *s = &stacks[c];
	unsigned int n = s->count;
	s->objects[n] = p;
	s->top = p;
	s->count = n + 1;
}

struct way {
	const char *name;
	void *(*pop)(unsigned int);
	void (*push)(unsigned int, void *);
};

static const struct way ways[] = {
	{ "list", list_pop, list_push },
	{ "array", array_pop, array_push },
	{ "top", top_pop, top_push },
};
#define NWAYS (sizeof(ways) / sizeof(ways[0]))

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Every class's stacks full again, in address order (all three ways). */
static void refill(unsigned int classes, char **pool)
{
	for (unsigned int c = 0; c < classes; c++) {
		struct stack *s = &stacks[c];
		s->head = NULL;
		s->count = 0;
		for (int i = POOL - 1; i >= 0; i--) {
			void *p = pool[c] + (size_t)i * class_size[c];
			*(void **)p = s->head;
			s->head = p;
		}
		for (unsigned int i = 0; i < POOL; i++)
			s->objects[s->count++] = pool[c] + (size_t)(POOL - 1 - i) * class_size[c];
		s->top = s->objects[s->count - 1];
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static unsigned long parse(const char *opt, const char *v, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n < lo || n > hi) {
		fprintf(stderr, "popchain: %s: a number in %lu..%lu\n", opt, lo, hi);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	unsigned int classes = 5, batch = 1000, reps = 5;
	unsigned long rounds = 20000;
	for (int i = 1; i < argc; i += 2) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(o, "--classes"))
			classes = (unsigned int)parse(o, v, 1, MAX_CLASSES);
		else if (!strcmp(o, "--batch"))
			batch = (unsigned int)parse(o, v, 1, MAX_BATCH);
		else if (!strcmp(o, "--rounds"))
			rounds = parse(o, v, 1, 100000000);
		else if (!strcmp(o, "--reps"))
			reps = (unsigned int)parse(o, v, 1, 101);
		else {
			fprintf(stderr, "usage: popchain [--classes N] [--batch N] "
					"[--rounds N] [--reps N]\n");
			return 2;
		}
	}

	/* The last CPU, as mallocbench's single-threaded workloads. */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET((int)(ncpu > 0 ? ncpu - 1 : 0), &set);
	(void)sched_setaffinity(0, sizeof(set), &set);

	char *pool[MAX_CLASSES];
	for (unsigned int c = 0; c < classes; c++) {
		pool[c] = aligned_alloc(4096, POOL * class_size[c]);
		stacks[c].objects = malloc(POOL * sizeof(void *));
		if (!pool[c] || !stacks[c].objects) {
			fprintf(stderr, "popchain: out of memory\n");
			return 1;
		}
	}
	static unsigned int cls[MAX_BATCH], order[MAX_BATCH];
	static void *obj[MAX_BATCH];
	uint32_t x = 777;
	for (unsigned int i = 0; i < batch; i++) {
		cls[i] = rnd(&x) % classes;
		order[i] = i;
	}
	for (unsigned int i = batch - 1; i > 0; i--) {
		unsigned int j = rnd(&x) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}

	static double t_alloc[NWAYS][101], t_free[NWAYS][101];
	for (unsigned int r = 0; r < reps; r++)
		for (unsigned int w = 0; w < NWAYS; w++) {
			const struct way *way = &ways[(w + r) % NWAYS];
			unsigned int wi = (w + r) % NWAYS;
			refill(classes, pool);
			uint64_t ta = 0, tf = 0;
			for (unsigned long k = 0; k < rounds + rounds / 10; k++) {
				uint64_t t0 = now_ns();
				for (unsigned int i = 0; i < batch; i++) {
					obj[i] = way->pop(cls[i]);
					*(volatile char *)obj[i] = (char)i;
				}
				uint64_t t1 = now_ns();
				for (unsigned int i = 0; i < batch; i++)
					way->push(cls[order[i]], obj[order[i]]);
				uint64_t t2 = now_ns();
				if (k >= rounds / 10) {	/* after the warm-up rounds */
					ta += t1 - t0;
					tf += t2 - t1;
				}
			}
			t_alloc[wi][r] = (double)ta / ((double)rounds * batch);
			t_free[wi][r] = (double)tf / ((double)rounds * batch);
		}

	printf("popchain: %u classes, batch %u, %lu rounds, median of %u runs\n",
	       classes, batch, rounds, reps);
	printf("| way   | alloc ns | free ns | pair ns |\n|---|--:|--:|--:|\n");
	for (unsigned int w = 0; w < NWAYS; w++) {
		qsort(t_alloc[w], reps, sizeof(double), cmp_double);
		qsort(t_free[w], reps, sizeof(double), cmp_double);
		double a = t_alloc[w][reps / 2], f = t_free[w][reps / 2];
		printf("| %-5s | %8.2f | %7.2f | %7.2f |\n", ways[w].name, a, f, a + f);
	}
	return 0;
}
