/* SPDX-License-Identifier: MIT */
/*
 * info_test_util.h - helpers shared by the sheafinfo tests
 * (test_sheafinfo.c, test_info_hostile.c): not a test itself.  The start
 * time is read here independently of the library's sheaf_info_start_time(),
 * which is under test.  Everything is static; include once.
 */
#ifndef SHEAF_INFO_TEST_UTIL_H
#define SHEAF_INFO_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/info.h>

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* The statistics page of pid. */
static char *shm_path(pid_t pid, char *buf, size_t len)
{
	snprintf(buf, len, "/dev/shm" SHEAF_INFO_SHM_PREFIX "%d", (int)pid);
	return buf;
}

/* pid as a string, four at a time valid. */
static char *pid_str(pid_t pid)
{
	static char b[4][16];
	static int i;
	char *s = b[i++ & 3];
	snprintf(s, 16, "%d", (int)pid);
	return s;
}

/* All of fd from its start, NUL-terminated (malloc'd); fd is closed. */
static char *slurp(int fd)
{
	size_t cap = 4096, len = 0;
	char *b = malloc(cap);
	assert_non_null(b);
	lseek(fd, 0, SEEK_SET);
	for (;;) {
		if (len + 1 == cap) {
			cap *= 2;
			b = realloc(b, cap);
			assert_non_null(b);
		}
		ssize_t n = read(fd, b + len, cap - len - 1);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	b[len] = 0;
	close(fd);
	return b;
}

/* Field 22 of /proc/PID/stat: the start time in clock ticks since boot. */
static uint64_t start_time_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *s = strrchr(buf, ')');
	assert_non_null(s);
	s++;
	for (int field = 3; field < 22 && s; field++)
		s = strchr(s + 1, ' ');
	assert_non_null(s);
	return strtoull(s + 1, NULL, 10);
}

#endif
