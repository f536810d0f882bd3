/* SPDX-License-Identifier: MIT */
/*
 * fuzz_info - the statistics page parser on arbitrary pages.
 *
 * Each input is the content of a /dev/shm/libsheaf.<pid> file as sheafinfo
 * would copy it.  It is copied into a buffer of exactly its length (so
 * that ASan sees any read past the copy) and given to sheaf_info_parse(),
 * the one validation sheafinfo applies (src/info_format.c).  A page the
 * parser accepts is printed as sheafinfo prints it, the table or JSON, with
 * or without -a, sorted by a key taken from the input's last byte; checks:
 *
 *   - the parser and the formatter read nothing outside the copy (ASan);
 *   - a page the parser accepts is one sheaf_info_print() accepts;
 *   - a refusal comes with its one-line reason (no newline);
 *   - the output holds no control character but '\n' and no byte from
 *     0x7f: the names are whatever the page's writer chose, and the output
 *     goes to root's terminal;
 *   - no undefined behaviour on any figure (UBSan: huge counters,
 *     inconsistent shares, times).
 *
 * Built two ways, like fuzz_api: with libFuzzer (`make fuzz`, clang,
 * ASan+UBSan; -max_len must cover a whole page, tools/fuzz.sh gives
 * SHEAF_INFO_PAGE_MAX + 64) and with fuzz_replay.c's main, which runs the
 * committed corpus (tests/fuzz/corpus-info) as the CTest fuzz_info_corpus
 * in every build.  The corpus was made by tools/info_corpus.py from pages
 * of tests/info_target.c (real publishers) and mutations of them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sheaf/info.h>

#include "info_page.h"

#define OUT_MAX (2u << 20)  /* JSON of 256 records: about 500 KB */

static char out_buf[OUT_MAX];

static void check_text(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && ch != '\n') || ch >= 0x7f) {
			fprintf(stderr, "fuzz_info: raw byte %#x at offset %zu of the output\n",
				ch, i);
			abort();
		}
	}
}

static void print_one(const struct sheaf_info_header *h, unsigned int flags,
		      const char *sort)
{
	FILE *f = fmemopen(out_buf, sizeof(out_buf), "w");
	if (!f)
		abort();
	if (sheaf_info_print(f, h, flags, sort) != 0) {
		fprintf(stderr, "fuzz_info: a page the parser accepted does not print\n");
		abort();
	}
	long n = ftell(f);
	fclose(f);
	if (n < 0 || (size_t)n >= sizeof(out_buf)) {
		fprintf(stderr, "fuzz_info: output of %ld bytes\n", n);
		abort();
	}
	check_text(out_buf, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = { NULL, "name", "objsize", "objects", "total",
		"slabs", "memory", "allocs", "frees", "refill", "flush" };
	/* The reader's own copy: exactly the bytes it read, malloc-aligned. */
	void *copy = calloc(1, size ? size : 1);
	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	char why[256];
	why[0] = 0;
	enum sheaf_info_verdict v = sheaf_info_parse(copy, size, why, sizeof(why));
	if (v != SHEAF_INFO_VALID) {
		if (!why[0] || strchr(why, '\n')) {
			fprintf(stderr, "fuzz_info: verdict %d without a one-line reason\n", v);
			abort();
		}
		free(copy);
		return 0;
	}
	unsigned int sel = size ? data[size - 1] : 0;
	const char *sort = keys[sel % (sizeof(keys) / sizeof(keys[0]))];
	print_one(copy, (sel & 0x80) ? SHEAF_INFO_ALL : 0, sort);
	print_one(copy, SHEAF_INFO_ALL | SHEAF_INFO_JSON, sort);
	free(copy);
	return 0;
}
