/* SPDX-License-Identifier: MIT */
/*
 * info_page.h - reading a statistics page as untrusted input (internal).
 *
 * A page under /dev/shm can be created by any local user, so everything
 * that reads one (the sheafinfo tool, the publisher's stale-page cleanup,
 * the fuzz harness) goes through these functions, defined in
 * src/info_format.c, which both the library and the tool compile in.
 * The rules (docs/STATS.md, "Threat model"): never follow a link, never
 * block on a FIFO, regular files only, at most SHEAF_INFO_PAGE_MAX bytes,
 * copied once with pread() into the reader's own buffer and validated by
 * sheaf_info_parse() before any field is used; the owner and start time of
 * a process come from /proc, never from the page.
 */
#ifndef SHEAF_INFO_PAGE_H
#define SHEAF_INFO_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <sheaf/info.h>

/* <sys/stat.h> is not included: src/internal.h has a function stat(). */
struct stat;

/* sheaf_info_parse()'s verdicts. */
enum sheaf_info_verdict {
	SHEAF_INFO_VALID = 0,  /* every field checked: sheaf_info_print() may read it */
	SHEAF_INFO_FOREIGN,    /* magic, version, sizes or counters not ours */
	SHEAF_INFO_BUSY,       /* seq odd: a snapshot was being copied in */
	SHEAF_INFO_INVALID,    /* our format, but inconsistent: refused */
};

/*
 * Validate a copied page: `buf` (8-byte aligned) holds `len` bytes, which
 * is all the reader will look at.  Checks, in this order: the length
 * (a header at least, SHEAF_INFO_PAGE_MAX at most), magic, version,
 * header_size, record_size and nr_stats (FOREIGN), seq even (BUSY), then
 * max_caches <= SHEAF_INFO_MAX_CACHES, nr_caches <= max_caches,
 * header_size + max_caches * record_size <= len, total_caches >=
 * nr_caches, pid > 0, start_time != 0, and every valid record's name
 * NUL-terminated within its field and its capacity fields consistent
 * (<sheaf/info.h>, struct sheaf_info_cache: base <= capacity <= max <=
 * SHEAF_INFO_CAPACITY_MAX, barn limit in bounds, a fixed cache's range one
 * value, all 0 without sheaves) (INVALID).  On anything but VALID, `why`
 * (if not NULL) receives one line without newline saying what is wrong.
 * Pure: no system call, no allocation.
 */
enum sheaf_info_verdict sheaf_info_parse(const void *buf, size_t len,
					 char *why, size_t whylen);

/*
 * The process behind pid, from /proc/PID (one directory descriptor, so
 * both figures are the same process's): the uid owning /proc/PID (the
 * process's effective uid) and field 22 of its stat file.  0, or -ESRCH
 * when there is no such process, or another -errno.
 */
int sheaf_info_proc(pid_t pid, uid_t *uid, uint64_t *start_time);
/* Field `field` (>= 3) of the /proc/PID/stat open on fd; 0 if unreadable. */
uint64_t sheaf_proc_stat_field(int fd, int field);

/*
 * The pid a /dev/shm entry name stands for: "libsheaf." followed by the
 * canonical decimal form of a positive pid (no sign, no leading zero, no
 * space); 0 for any other name.
 */
pid_t sheaf_info_name_pid(const char *name);

/* Whether a page is stale, sheaf_info_stale()'s answer. */
enum sheaf_info_staleness {
	SHEAF_INFO_LIVE = 0,     /* its process runs, or it cannot be told */
	SHEAF_INFO_DEAD,         /* no process with its pid */
	SHEAF_INFO_RECYCLED,     /* a valid header whose start time is not the pid's */
	SHEAF_INFO_NOT_PAGE,     /* not a regular file (link, FIFO, ...), or unreadable */
};

/*
 * Whether the entry `name` of the directory `dirfd` (the page of `pid`) is
 * a stale page.  Opens it with O_NOFOLLOW | O_NONBLOCK, regular files only,
 * reads at most a header with pread(), never writes it.  *st receives the
 * entry's fstat() (for the caller's owner and age checks) when the answer
 * is not NOT_PAGE.
 */
enum sheaf_info_staleness sheaf_info_stale(int dirfd, const char *name, pid_t pid,
					   struct stat *st);

/*
 * Remove the stale pages (DEAD or RECYCLED) of /dev/shm owned by our
 * effective uid and not modified for min_age seconds; never our own page,
 * never anything but a regular file.  For the publisher (src/info.c).
 */
void sheaf_info_remove_stale(unsigned int min_age);

/*
 * Print at most `max` bytes of s up to its first NUL, every byte below
 * 0x20, 0x7f and above, and the backslash escaped (\xNN, \\), padded with
 * spaces to `width` columns.  Returns the columns written.
 */
int sheaf_info_put_escaped(FILE *out, const char *s, size_t max, int width);

#endif /* SHEAF_INFO_PAGE_H */
