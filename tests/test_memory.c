/* SPDX-License-Identifier: MIT */
/*
 * test_memory.c - memory goes back to the OS: allocate 1 GiB of 256-byte
 * objects (4 Mi objects, pointers kept in an mmap'd array), touch them,
 * free them all, kmem_cache_shrink(), and the resident set size
 * (/proc/self/statm) must be back within 16 MiB of what it was before.
 * Done twice, first with a cache without sheaves, then with
 * sheaf_capacity 32; the second round must reuse the address space of the
 * first (page-layer total_pages does not grow by more than the slack).
 *
 * Skipped (exit 77) under AddressSanitizer or ThreadSanitizer, whose shadow
 * memory makes RSS figures meaningless, and when the machine has less than
 * 3 GiB available.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sheaf/slab.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#endif

#define SKIP 77
#define OBJ_SIZE 256
#define TOTAL (1ul << 30)
#define NOBJ (TOTAL / OBJ_SIZE)
#define SLACK (16ul << 20)

static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;
	if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) {
		perror("/proc/self/statm");
		exit(1);
	}
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	size_t kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static int failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "test_memory: FAIL: " __VA_ARGS__);    \
			fputc('\n', stderr);                                   \
			failures++;                                            \
		}                                                              \
	} while (0)

static double mib(size_t b)
{
	return (double)b / (1 << 20);
}

static void one_round(const char *name, unsigned int capacity, void **ptrs,
		      struct sheaf_page_info *after)
{
	struct kmem_cache_args args = { 0 };
	args.sheaf_capacity = capacity;
	struct kmem_cache *s = kmem_cache_create(name, OBJ_SIZE, &args, 0);
	if (!s) {
		perror("kmem_cache_create");
		exit(1);
	}
	size_t rss0 = rss_bytes();

	for (size_t i = 0; i < NOBJ; i++) {
		uint64_t *o = kmem_cache_alloc(s, GFP_KERNEL);
		if (!o) {
			fprintf(stderr, "test_memory: FAIL: %s: allocation %zu of %lu failed\n",
				name, i, NOBJ);
			exit(1);
		}
		o[0] = i;
		o[OBJ_SIZE / 8 - 1] = ~i;
		ptrs[i] = o;
	}
	size_t rss1 = rss_bytes();
	CHECK(rss1 + SLACK >= rss0 + TOTAL,
	      "%s: 1 GiB allocated and touched but RSS grew by only %.1f MiB",
	      name, mib(rss1 - rss0));

	size_t bad = 0;
	for (size_t i = 0; i < NOBJ; i++) {
		uint64_t *o = ptrs[i];
		bad += o[0] != i || o[OBJ_SIZE / 8 - 1] != ~i;
		kmem_cache_free(s, o);
	}
	CHECK(bad == 0, "%s: %zu objects corrupted", name, bad);
	CHECK(kmem_cache_shrink(s) == 0, "%s: kmem_cache_shrink failed", name);
	CHECK(sheaf_cache_objects_inuse(s) == 0, "%s: objects still in use", name);
	CHECK(sheaf_cache_slabs(s) == 0, "%s: %zu slabs left after shrink", name,
	      sheaf_cache_slabs(s));

	size_t rss2 = rss_bytes();
	sheaf_page_info(after);
	CHECK(rss2 <= rss0 + SLACK,
	      "%s: RSS %.1f MiB after free+shrink, was %.1f MiB before (limit +%.0f MiB)",
	      name, mib(rss2), mib(rss0), mib(SLACK));
	CHECK(after->dirty_pages * SHEAF_PAGE_SIZE <= SLACK,
	      "%s: %zu dirty pages (%.1f MiB) not given back after shrink", name,
	      after->dirty_pages, mib(after->dirty_pages * SHEAF_PAGE_SIZE));
	printf("test_memory: %s: RSS %.1f MiB -> %.1f MiB (1 GiB live) -> %.1f MiB "
	       "after free+shrink; page layer: %zu arenas, %zu pages, %zu used, "
	       "%zu free, %zu dirty\n",
	       name, mib(rss0), mib(rss1), mib(rss2), after->arenas,
	       after->total_pages, after->used_pages, after->free_pages,
	       after->dirty_pages);
	kmem_cache_destroy(s);
}

int main(void)
{
#ifdef UNDER_SANITIZER
	printf("test_memory: skipped: sanitizer shadow memory distorts RSS\n");
	return SKIP;
#endif
	size_t avail = mem_available();
	if (avail < (3ul << 30)) {
		printf("test_memory: skipped: only %.0f MiB available\n", mib(avail));
		return SKIP;
	}

	/* The pointer array, touched before the baseline is taken. */
	size_t array = NOBJ * sizeof(void *);
	void **ptrs = mmap(NULL, array, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ptrs == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(ptrs, 0, array);

	struct sheaf_page_info first, second;
	one_round("mem-256", 0, ptrs, &first);
	one_round("mem-256-sheaf", 32, ptrs, &second);
	CHECK(second.total_pages * SHEAF_PAGE_SIZE <= first.total_pages * SHEAF_PAGE_SIZE + SLACK,
	      "the second GiB did not reuse the first one's pages: %zu -> %zu pages",
	      first.total_pages, second.total_pages);

	munmap(ptrs, array);
	printf("test_memory: %s\n", failures ? "FAILED" : "OK");
	return failures ? 1 : 0;
}
