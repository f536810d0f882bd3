/*
 * dso.c - a module the malloc_threads test dlopen()s: it allocates for its
 * caller, frees what its caller allocated, and uses the C library's own
 * allocating functions.
 */
#include <stdlib.h>
#include <string.h>

char *dso_strdup_upper(const char *s)
{
	char *d = strdup(s);
	for (char *c = d; c && *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	return d;
}

void *dso_alloc(size_t n)
{
	return calloc(1, n);
}

void dso_free(void *p)
{
	free(p);
}
