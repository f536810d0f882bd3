/* SPDX-License-Identifier: MIT */
/*
 * info_target.c - the process test_sheafinfo inspects with sheafinfo.
 *
 * Caches: "info-sheaf" (100 bytes, sheaf capacity 4), "info-classic"
 * (100 bytes, no sheaves), and kmalloc.  Commands, one per line on stdin;
 * after each, one line on stdout: "ok" and what the program knows of its
 * caches through the library's own API (objects live as the program counts
 * them, then the library's figures, its sheaf_cache_limits() and every
 * counter), which the test compares with what sheafinfo reports:
 *
 *   alloc CACHE N     allocate N objects (CACHE: sheaf, classic, kmalloc)
 *   free CACHE N      free the N most recent
 *   caches - N        create N more caches (named info-extra-<i>, 8 bytes)
 *   fork              fork a child that exits normally (runs atexit)
 *   exit              free nothing, exit(0)
 *
 * At start it prints "ready PID".  With statistics on, it first waits for
 * the publisher's first snapshot, so that no snapshot runs while the
 * commands do (the test sets SHEAF_STATS_INTERVAL high): the counters are
 * then the sequence's alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/info.h>
#include <sheaf/slab.h>
#include <sheaf/stats.h>

#define MAXOBJ 100000

struct pool {
	const char *label;
	struct kmem_cache *s;   /* NULL: kmalloc */
	void **obj;
	size_t n;
	unsigned long allocs, frees;
};

static struct pool pools[3];

static struct pool *find(const char *label)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(pools[i].label, label))
			return &pools[i];
	return NULL;
}

static void wait_first_snapshot(void)
{
	char name[64];
	snprintf(name, sizeof(name), SHEAF_INFO_SHM_PREFIX "%d", (int)getpid());
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd < 0) {
		fprintf(stderr, "info_target: %s: %s\n", name, strerror(errno));
		exit(1);
	}
	struct sheaf_info_header *h = mmap(NULL, sizeof(*h), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (h == MAP_FAILED)
		exit(1);
	/* Generous: the publisher's first snapshot comes at once. */
	for (int i = 0; i < 60000 && !__atomic_load_n(&h->generation, __ATOMIC_ACQUIRE); i++) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (!__atomic_load_n(&h->generation, __ATOMIC_ACQUIRE)) {
		fprintf(stderr, "info_target: no snapshot published\n");
		exit(1);
	}
	munmap(h, sizeof(*h));
}

static void report(void)
{
	printf("ok");
	for (int i = 0; i < 3; i++) {
		struct pool *p = &pools[i];
		printf(" %s.live=%zu %s.allocs=%lu %s.frees=%lu", p->label, p->n,
		       p->label, p->allocs, p->label, p->frees);
		if (!p->s)
			continue;
		printf(" %s.inuse=%zu %s.slabs=%zu %s.cached=%zu", p->label,
		       sheaf_cache_objects_inuse(p->s), p->label, sheaf_cache_slabs(p->s),
		       p->label, sheaf_cache_cached_objects(p->s));
		struct sheaf_cache_limits l;
		if (sheaf_cache_limits(p->s, &l))
			exit(1);
		printf(" %s.capacity=%u %s.capacity_base=%u %s.capacity_max=%u"
		       " %s.barn_limit=%u %s.adaptive=%d", p->label, l.capacity,
		       p->label, l.capacity_base, p->label, l.capacity_max, p->label,
		       l.barn_limit, p->label, (int)l.adaptive);
		for (int k = 0; k < SHEAF_STAT_NR; k++)
			printf(" %s.%s=%llu", p->label, sheaf_stat_name((enum sheaf_stat_item)k),
			       (unsigned long long)sheaf_stats_get(p->s, (enum sheaf_stat_item)k));
	}
	printf("\n");
	fflush(stdout);
}

int main(void)
{
	struct kmem_cache_args sa = { .sheaf_capacity = 4 };
	struct kmem_cache_args ca = { .sheaf_capacity = 0 };
	pools[0].label = "sheaf";
	pools[0].s = kmem_cache_create("info-sheaf", 100, &sa, 0);
	pools[1].label = "classic";
	pools[1].s = kmem_cache_create("info-classic", 100, &ca, 0);
	pools[2].label = "kmalloc";
	for (int i = 0; i < 3; i++) {
		pools[i].obj = calloc(MAXOBJ, sizeof(void *));
		if (!pools[i].obj || (i < 2 && !pools[i].s))
			return 1;
	}
	if (sheaf_stats_enabled())
		wait_first_snapshot();
	printf("ready %d\n", (int)getpid());
	fflush(stdout);

	char line[128], cmd[16], label[16];
	unsigned long n;
	while (fgets(line, sizeof(line), stdin)) {
		int f = sscanf(line, "%15s %15s %lu", cmd, label, &n);
		struct pool *p = f == 3 ? find(label) : NULL;
		if (f == 3 && p && !strcmp(cmd, "alloc") && p->n + n <= MAXOBJ) {
			for (unsigned long i = 0; i < n; i++) {
				void *o = p->s ? kmem_cache_alloc(p->s, GFP_KERNEL)
					       : kmalloc(100, GFP_KERNEL);
				if (!o)
					return 1;
				p->obj[p->n++] = o;
				p->allocs++;
			}
		} else if (f == 3 && p && !strcmp(cmd, "free") && n <= p->n) {
			for (unsigned long i = 0; i < n; i++) {
				void *o = p->obj[--p->n];
				if (p->s)
					kmem_cache_free(p->s, o);
				else
					kfree(o);
				p->frees++;
			}
		} else if (f == 3 && !strcmp(cmd, "caches")) {
			static unsigned long extra;
			for (unsigned long i = 0; i < n; i++) {
				char name[32];
				snprintf(name, sizeof(name), "info-extra-%lu", extra++);
				if (!kmem_cache_create(name, 8, NULL, 0))
					return 1;
			}
		} else if (f >= 1 && !strcmp(cmd, "fork")) {
			fflush(stdout);
			pid_t c = fork();
			if (c == 0)
				exit(0);
			int st;
			if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) ||
			    WEXITSTATUS(st))
				return 1;
		} else if (f >= 1 && !strcmp(cmd, "exit")) {
			exit(0);
		} else {
			fprintf(stderr, "info_target: bad command: %s", line);
			return 1;
		}
		report();
	}
	return 0;
}
