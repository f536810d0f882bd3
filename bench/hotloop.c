/*
 * hotloop.c - the `hot` pair (alloc + free of one object, one object kept
 * live) N times, for instruction counting: tools/instructions.sh runs it
 * under callgrind with two values of N and reports the difference per pair,
 * so start-up and set-up cancel out.
 *
 *   hotloop sheaf|classic|malloc SIZE N
 *
 * The loop body sits between the global labels hotloop_body_begin and
 * hotloop_body_end, so its static instruction count can be read from the
 * disassembly (objdump -d).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sheaf/slab.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: hotloop sheaf|classic|malloc SIZE N\n");
		return 2;
	}
	const char *who = argv[1];
	unsigned int size = (unsigned int)atoi(argv[2]);
	unsigned long n = strtoul(argv[3], NULL, 10);
	void *keep;

	if (!strcmp(who, "malloc")) {
		keep = malloc(size);
		for (unsigned long i = 0; i < n; i++) {
			void *p = malloc(size);
			__asm__ volatile("" ::"r"(p) : "memory");
			free(p);
		}
		free(keep);
		return 0;
	}
	struct kmem_cache_args args;
	memset(&args, 0, sizeof(args));
	args.sheaf_capacity = strcmp(who, "sheaf") ? 0 : 32;
	struct kmem_cache *c = kmem_cache_create("hotloop", size, &args, 0);
	if (!c)
		return 1;
	keep = kmem_cache_alloc(c, GFP_KERNEL);
	for (unsigned long i = 0; i < n; i++) {
		__asm__ volatile(".globl hotloop_body_begin\nhotloop_body_begin:");
		void *p = kmem_cache_alloc(c, GFP_KERNEL);
		__asm__ volatile("" ::"r"(p) : "memory");
		kmem_cache_free(c, p);
		__asm__ volatile(".globl hotloop_body_end\nhotloop_body_end:");
	}
	kmem_cache_free(c, keep);
	kmem_cache_destroy(c);
	printf("%s\n", sheaf_percpu_mode());
	return 0;
}
