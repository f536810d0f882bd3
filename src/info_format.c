/* SPDX-License-Identifier: MIT */
/*
 * info_format.c - the sheafinfo table and JSON, from a published snapshot.
 *
 * One formatter for both users: the library (SHEAF_STATS=exit prints its
 * last snapshot with it) and tools/sheafinfo.c (which compiles this file
 * in, so that the tool does not load the allocator it inspects).  It only
 * reads the snapshot given: no allocation (it runs at exit inside the
 * allocator, whose rule is no malloc), no global state.
 *
 * Also the code that treats a page as untrusted input (src/info_page.h):
 * sheaf_info_parse(), the one validation of a copied page (sheafinfo and
 * tests/fuzz/fuzz_info.c use it), the process's owner and start time from
 * /proc, and the stale-page test of the publisher's cleanup and
 * `sheafinfo --clean`.  What the formatter prints of the page's strings is
 * escaped: a cache name is whatever the page's writer put there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/info.h>

#include "compiler.h"
#include "info_page.h"

static const char *const info_stat_names[SHEAF_STAT_NR] = {
#define INFO_STAT_NAME(e, n) #n,
	SHEAF_STAT_ITEMS(INFO_STAT_NAME)
#undef INFO_STAT_NAME
};

/*
 * Field `field` (3 or more) of a /proc/PID/stat file open on fd, 0 when it
 * cannot be read.  A stack buffer and plain calls, no allocation: the fork
 * handlers use it too (init.c, the number of threads).
 */
uint64_t sheaf_proc_stat_field(int fd, int field)
{
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');   /* the command name may hold spaces */
	if (!p)
		return 0;
	p++;
	/* After ')' come fields 3, 4, ...: skip field - 3 of them. */
	for (int f = 3; f < field && p; f++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

/*
 * Field 22 of /proc/PID/stat (start time in clock ticks since boot), 0 when
 * it cannot be read: what the publisher writes into the page's header and
 * what the reader compares it with, so that both parse it the same way.
 */
static uint64_t stat_start_time(int fd)
{
	return sheaf_proc_stat_field(fd, 22);
}

SHEAF_EXPORT uint64_t sheaf_info_start_time(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t t = stat_start_time(fd);
	close(fd);
	return t;
}

int sheaf_info_proc(pid_t pid, uid_t *uid, uint64_t *start_time)
{
	char path[64];
	struct stat st;
	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	int fd = fstat(dir, &st) == 0 ? openat(dir, "stat", O_RDONLY | O_CLOEXEC) : -1;
	int err = fd < 0 ? (errno == ENOENT ? -ESRCH : -errno) : 0;
	if (fd >= 0) {
		*uid = st.st_uid;
		*start_time = stat_start_time(fd);
		/* The process went away between open and read (ESRCH). */
		if (!*start_time)
			err = -ESRCH;
		close(fd);
	}
	close(dir);
	return err;
}

pid_t sheaf_info_name_pid(const char *name)
{
	static const char prefix[] = "libsheaf.";
	if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	const char *d = name + sizeof(prefix) - 1;
	if (*d < '1' || *d > '9')
		return 0;
	long v = 0;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return 0;
		v = v * 10 + (*d - '0');
		if (v > INT32_MAX)
			return 0;
	}
	return (pid_t)v;
}

/* One line into why (if any), for sheaf_info_parse(). */
static enum sheaf_info_verdict verdict(enum sheaf_info_verdict v, char *why,
				       size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum sheaf_info_verdict verdict(enum sheaf_info_verdict v, char *why,
				       size_t whylen, const char *fmt, ...)
{
	if (why && whylen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return v;
}

/*
 * A record's capacity fields (<sheaf/info.h>, struct sheaf_info_cache):
 * with sheaves, 1 <= base <= capacity <= max <= SHEAF_INFO_CAPACITY_MAX
 * and a barn limit in SHEAF_INFO_BARN_LIMIT_MIN..MAX, a fixed cache's
 * range one value and its barn limit the kernel's; without, all zero and
 * not adaptive.
 */
static bool capacity_ok(const struct sheaf_info_cache *c)
{
	bool adaptive = c->flags & SHEAF_INFO_C_ADAPTIVE;
	if (!(c->flags & SHEAF_INFO_C_SHEAVES))
		return !adaptive && !c->sheaf_capacity && !c->capacity_base &&
		       !c->capacity_max && !c->barn_limit;
	if (c->capacity_base < 1 || c->capacity_base > c->sheaf_capacity ||
	    c->sheaf_capacity > c->capacity_max ||
	    c->capacity_max > SHEAF_INFO_CAPACITY_MAX ||
	    c->barn_limit < SHEAF_INFO_BARN_LIMIT_MIN ||
	    c->barn_limit > SHEAF_INFO_BARN_LIMIT_MAX)
		return false;
	return adaptive || (c->capacity_base == c->capacity_max &&
			    c->barn_limit == SHEAF_INFO_BARN_LIMIT_MIN);
}

enum sheaf_info_verdict sheaf_info_parse(const void *buf, size_t len,
					 char *why, size_t whylen)
{
	const struct sheaf_info_header *h = buf;
	if (!buf || ((uintptr_t)buf & (_Alignof(struct sheaf_info_header) - 1)))
		return verdict(SHEAF_INFO_INVALID, why, whylen, "misaligned copy");
	if (len < sizeof(*h))
		return verdict(SHEAF_INFO_INVALID, why, whylen,
			       "%zu bytes, less than a header (%zu)", len, sizeof(*h));
	if (len > SHEAF_INFO_PAGE_MAX)
		return verdict(SHEAF_INFO_INVALID, why, whylen,
			       "%zu bytes, more than a page may have (%zu)", len,
			       (size_t)SHEAF_INFO_PAGE_MAX);
	if (h->magic != SHEAF_INFO_MAGIC || h->version != SHEAF_INFO_VERSION ||
	    h->header_size != sizeof(*h) ||
	    h->record_size != sizeof(struct sheaf_info_cache) ||
	    h->nr_stats != SHEAF_STAT_NR)
		return verdict(SHEAF_INFO_FOREIGN, why, whylen,
			       "magic %#" PRIx64 " version %u header %u record %u "
			       "counters %u", h->magic, h->version, h->header_size,
			       h->record_size, h->nr_stats);
	if (h->seq & 1)
		return verdict(SHEAF_INFO_BUSY, why, whylen, "odd sequence count %u",
			       h->seq);
	if (h->max_caches > SHEAF_INFO_MAX_CACHES)
		return verdict(SHEAF_INFO_INVALID, why, whylen,
			       "max_caches %u > %u", h->max_caches, SHEAF_INFO_MAX_CACHES);
	if (h->nr_caches > h->max_caches)
		return verdict(SHEAF_INFO_INVALID, why, whylen,
			       "nr_caches %u > max_caches %u", h->nr_caches, h->max_caches);
	/* Both sizes are ours and max_caches is small: no overflow. */
	size_t need = (size_t)h->header_size + (size_t)h->max_caches * h->record_size;
	if (need > len)
		return verdict(SHEAF_INFO_INVALID, why, whylen,
			       "%zu bytes cannot hold %u records (%zu bytes)", len,
			       h->max_caches, need);
	if (h->total_caches < h->nr_caches)
		return verdict(SHEAF_INFO_INVALID, why, whylen,
			       "total_caches %u < nr_caches %u", h->total_caches,
			       h->nr_caches);
	if (h->pid <= 0)
		return verdict(SHEAF_INFO_INVALID, why, whylen, "pid %d", h->pid);
	if (!h->start_time)
		return verdict(SHEAF_INFO_INVALID, why, whylen, "no start time");
	const struct sheaf_info_cache *r =
		(const void *)((const char *)buf + h->header_size);
	for (unsigned int i = 0; i < h->nr_caches; i++) {
		const struct sheaf_info_cache *c = &r[i];
		if (!memchr(c->name, 0, sizeof(c->name)))
			return verdict(SHEAF_INFO_INVALID, why, whylen,
				       "record %u: name not NUL-terminated", i);
		if (!capacity_ok(c))
			return verdict(SHEAF_INFO_INVALID, why, whylen,
				       "record %u: capacity %u (base %u, max %u), barn "
				       "limit %u, flags %#x inconsistent", i,
				       c->sheaf_capacity, c->capacity_base,
				       c->capacity_max, c->barn_limit, c->flags);
	}
	return SHEAF_INFO_VALID;
}

enum sheaf_info_staleness sheaf_info_stale(int dirfd, const char *name, pid_t pid,
					   struct stat *st)
{
	struct sheaf_info_header h;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return SHEAF_INFO_NOT_PAGE;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return SHEAF_INFO_NOT_PAGE;
	}
	if (kill(pid, 0) != 0 && errno == ESRCH) {
		close(fd);
		return SHEAF_INFO_DEAD;
	}
	ssize_t n = st->st_size >= (off_t)sizeof(h) ? pread(fd, &h, sizeof(h), 0) : 0;
	close(fd);
	/* Only a header of ours that names the pid and has a start time can
	 * prove that the pid's process is another one (a page being created
	 * has no header yet). */
	if (n != (ssize_t)sizeof(h) || h.magic != SHEAF_INFO_MAGIC ||
	    h.version != SHEAF_INFO_VERSION || h.header_size != sizeof(h) ||
	    h.pid != pid || !h.start_time)
		return SHEAF_INFO_LIVE;
	uint64_t now = sheaf_info_start_time(pid);
	return now && now != h.start_time ? SHEAF_INFO_RECYCLED : SHEAF_INFO_LIVE;
}

/*
 * The publisher's cleanup (src/info.c, when it creates its page): stale
 * pages of our user go, so that a page of a process that was killed (no
 * exit handler ran) does not stay for ever.  An entry of /dev/shm is
 * removed only if it is named libsheaf.<pid> (not ours), is a regular file
 * (never followed: sheaf_info_stale() opens with O_NOFOLLOW | O_NONBLOCK),
 * belongs to our effective uid, its pid is dead or its valid header's
 * start time is not the pid's, and it was not modified for min_age
 * seconds: a page just created under a recycled pid, or by another program
 * meanwhile, is left alone.  getdents64 rather than opendir(): no malloc
 * (libsheaf may be the process's malloc).
 */
struct info_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

void sheaf_info_remove_stale(unsigned int min_age)
{
	int dir = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return;
	char buf[4096] __attribute__((aligned(8)));
	uid_t me = geteuid();
	pid_t self = getpid();
	time_t now = time(NULL);
	long n;
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n; ) {
			struct info_dirent64 *d = (struct info_dirent64 *)(buf + off);
			off += d->d_reclen;
			pid_t pid = sheaf_info_name_pid(d->d_name);
			struct stat st;
			if (!pid || pid == self)
				continue;
			enum sheaf_info_staleness s = sheaf_info_stale(dir, d->d_name, pid, &st);
			if ((s == SHEAF_INFO_DEAD || s == SHEAF_INFO_RECYCLED) &&
			    st.st_uid == me && now - st.st_mtime >= (time_t)min_age)
				unlinkat(dir, d->d_name, 0);
		}
	}
	close(dir);
}

int sheaf_info_put_escaped(FILE *out, const char *s, size_t max, int width)
{
	int col = 0;
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\\')
			col += fprintf(out, "\\\\");
		else if (ch < 0x20 || ch >= 0x7f)
			col += fprintf(out, "\\x%02x", ch);
		else {
			fputc(ch, out);
			col++;
		}
	}
	for (; col < width; col++)
		fputc(' ', out);
	return col;
}

SHEAF_EXPORT const char sheaf_info_sort_keys[] =
	"name objsize objects total slabs memory allocs frees refill flush";

static const struct sheaf_info_cache *rec(const struct sheaf_info_header *h,
					  unsigned int i)
{
	return (const struct sheaf_info_cache *)((const char *)h + h->header_size +
						 (size_t)i * h->record_size);
}

/*
 * Allocations the program made, each object once (the 7.2 meanings,
 * <sheaf/stats.h>): alloc_fastpath (a slot's sheaf, or the classic cpu
 * freelist), alloc_slowpath (the slab layer, sheaf refills not included)
 * and alloc_from_sheaf (prefilled sheaves).  The aliases alloc_cpu_sheaf
 * and free_cpu_sheaf repeat the fast-path items and are not added.
 */
static uint64_t info_allocs(const struct sheaf_info_cache *c)
{
	const uint64_t *v = c->stats;
	return v[SHEAF_STAT_ALLOC_FASTPATH] + v[SHEAF_STAT_ALLOC_SLOWPATH] +
	       v[SHEAF_STAT_ALLOC_FROM_SHEAF];
}

/* Frees alike: into a slot's sheaf (or cpu freelist), or to a slab (sheaf
 * flushes not included). */
static uint64_t info_frees(const struct sheaf_info_cache *c)
{
	const uint64_t *v = c->stats;
	return v[SHEAF_STAT_FREE_FASTPATH] + v[SHEAF_STAT_FREE_SLOWPATH];
}

/* What sheaves served: a slot's (alloc_fastpath on a cache with sheaves)
 * and prefilled ones. */
static uint64_t info_sheaf_allocs(const struct sheaf_info_cache *c)
{
	return c->stats[SHEAF_STAT_ALLOC_FASTPATH] + c->stats[SHEAF_STAT_ALLOC_FROM_SHEAF];
}

enum sort_key { K_NAME, K_OBJSIZE, K_OBJECTS, K_TOTAL, K_SLABS, K_MEMORY,
		K_ALLOCS, K_FREES, K_REFILL, K_FLUSH, K_BAD };

static enum sort_key parse_key(const char *sort)
{
	static const char *const keys[] = { "name", "objsize", "objects", "total",
		"slabs", "memory", "allocs", "frees", "refill", "flush" };
	if (!sort)
		return K_NAME;
	for (unsigned int i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(sort, keys[i]) == 0)
			return (enum sort_key)i;
	return K_BAD;
}

static uint64_t key_value(const struct sheaf_info_cache *c, enum sort_key k)
{
	switch (k) {
	case K_OBJSIZE: return c->object_size;
	case K_OBJECTS: return c->objects_inuse;
	case K_TOTAL:   return c->objects_total;
	case K_SLABS:   return c->slabs;
	case K_MEMORY:  return c->bytes;
	case K_ALLOCS:  return info_allocs(c);
	case K_FREES:   return info_frees(c);
	case K_REFILL:  return c->stats[SHEAF_STAT_SHEAF_REFILL];
	case K_FLUSH:   return c->stats[SHEAF_STAT_SHEAF_FLUSH];
	default:        return 0;
	}
}

/* a goes before b: largest first, then by name. */
static bool before(const struct sheaf_info_cache *a,
		   const struct sheaf_info_cache *b, enum sort_key k)
{
	if (k != K_NAME) {
		uint64_t x = key_value(a, k), y = key_value(b, k);
		if (x != y)
			return x > y;
	}
	return strncmp(a->name, b->name, sizeof(a->name)) < 0;
}

/* Hidden without SHEAF_INFO_ALL: internal caches, and caches never used. */
static bool shown(const struct sheaf_info_cache *c, unsigned int flags)
{
	if (flags & SHEAF_INFO_ALL)
		return true;
	if (c->flags & SHEAF_INFO_C_INTERNAL)
		return false;
	return c->slabs || info_allocs(c) || info_frees(c);
}

/* A count in at most 7 characters: 1234567, 12.3M, 1.2G. */
static const char *count_str(char *buf, size_t len, uint64_t v)
{
	if (v < 10000000)
		snprintf(buf, len, "%" PRIu64, v);
	else if (v < 1000000000ull)
		snprintf(buf, len, "%.1fM", (double)v / 1e6);
	else if (v < 1000000000000ull)
		snprintf(buf, len, "%.1fG", (double)v / 1e9);
	else
		snprintf(buf, len, "%.1fT", (double)v / 1e12);
	return buf;
}

static const char *bytes_str(char *buf, size_t len, uint64_t v)
{
	if (v < 10240)
		snprintf(buf, len, "%" PRIu64, v);
	else if (v < (10ull << 20))
		snprintf(buf, len, "%.1fK", (double)v / 1024);
	else if (v < (10ull << 30))
		snprintf(buf, len, "%.1fM", (double)v / (1 << 20));
	else
		snprintf(buf, len, "%.1fG", (double)v / (1 << 30));
	return buf;
}

/* "87" (percent of `all` that `part` is), "-" when there is nothing. */
static const char *share_str(char *buf, size_t len, uint64_t part, uint64_t all,
			     bool sheaves)
{
	if (!sheaves || !all)
		snprintf(buf, len, "-");
	else	/* part <= all unless the page is inconsistent: at most 100 */
		snprintf(buf, len, "%u", (unsigned int)((double)(part < all ? part : all) *
							 100.0 / (double)all + 0.5));
	return buf;
}

/* Control characters and bytes from 0x7f as \u00XX: the output is ASCII
 * (a byte >= 0x80 becomes the code point of the same number). */
static void json_string(FILE *out, const char *s, size_t max)
{
	fputc('"', out);
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void print_json(FILE *out, const struct sheaf_info_header *h,
		       const uint16_t *idx, unsigned int n)
{
	fprintf(out, "{\"pid\": %d, \"start_time\": %" PRIu64
		", \"generation\": %" PRIu64 ", \"time_ns\": %" PRIu64
		", \"interval_ms\": %u, \"percpu_mode\": \"%s\", \"exited\": %s"
		", \"nr_slots\": %u, \"nr_nodes\": %u, \"page_size\": %u"
		", \"total_caches\": %u, \"truncated\": %s,\n \"caches\": [",
		h->pid, h->start_time, h->generation, h->time_ns, h->interval_ms,
		h->flags & SHEAF_INFO_P_RSEQ ? "rseq" : "fallback",
		h->flags & SHEAF_INFO_P_EXITED ? "true" : "false",
		h->nr_slots, h->nr_nodes, h->page_size, h->total_caches,
		h->total_caches > h->nr_caches ? "true" : "false");
	for (unsigned int i = 0; i < n; i++) {
		const struct sheaf_info_cache *c = rec(h, idx[i]);
		fprintf(out, "%s\n  {\"name\": ", i ? "," : "");
		json_string(out, c->name, sizeof(c->name));
		fprintf(out, ", \"object_size\": %u, \"size\": %u, \"objects_per_slab\": %u"
			", \"order\": %u, \"sheaf_capacity\": %u, \"capacity_base\": %u"
			", \"capacity_max\": %u, \"barn_limit\": %u, \"sheaves\": %s"
			", \"adaptive\": %s, \"debug\": %s, \"kmalloc\": %s, \"internal\": %s"
			", \"slab_flags\": %u, \"slabs\": %" PRIu64
			", \"objects_total\": %" PRIu64 ", \"objects_inuse\": %" PRIu64
			", \"objects_cached\": %" PRIu64 ", \"objects_partial_free\": %" PRIu64
			", \"barn_full\": %" PRIu64 ", \"barn_empty\": %" PRIu64
			", \"bytes\": %" PRIu64 ", \"allocs\": %" PRIu64
			", \"frees\": %" PRIu64 ",\n   \"stats\": {",
			c->object_size, c->size, c->objects_per_slab, c->order,
			c->sheaf_capacity, c->capacity_base, c->capacity_max, c->barn_limit,
			c->flags & SHEAF_INFO_C_SHEAVES ? "true" : "false",
			c->flags & SHEAF_INFO_C_ADAPTIVE ? "true" : "false",
			c->flags & SHEAF_INFO_C_DEBUG ? "true" : "false",
			c->flags & SHEAF_INFO_C_KMALLOC ? "true" : "false",
			c->flags & SHEAF_INFO_C_INTERNAL ? "true" : "false",
			c->slab_flags, c->slabs, c->objects_total, c->objects_inuse,
			c->objects_cached, c->objects_partial_free, c->barn_full,
			c->barn_empty, c->bytes, info_allocs(c), info_frees(c));
		for (unsigned int k = 0; k < SHEAF_STAT_NR; k++)
			fprintf(out, "%s\"%s\": %" PRIu64, k ? ", " : "",
				info_stat_names[k], c->stats[k]);
		fputs("}}", out);
	}
	fputs("\n ]}\n", out);
}

/*
 * The Cap column: "60" for a fixed cache (0: no sheaves), "90(60-240)",
 * the capacity now and its range, for an adaptive one (no space: every
 * row has as many words).  Returns its length.
 */
static int cap_str(char *buf, size_t len, const struct sheaf_info_cache *c)
{
	if (c->flags & SHEAF_INFO_C_ADAPTIVE)
		return snprintf(buf, len, "%u(%u-%u)", c->sheaf_capacity,
				c->capacity_base, c->capacity_max);
	return snprintf(buf, len, "%u", c->sheaf_capacity);
}

static void print_table(FILE *out, const struct sheaf_info_header *h,
			const uint16_t *idx, unsigned int n, unsigned int hidden)
{
	char when[64] = "";
	time_t t = (time_t)(h->time_ns / 1000000000ull);
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(out, "libsheaf caches of process %d%s, %s, snapshot %" PRIu64
		" (%s mode, %u slot%s, %u node%s)\n",
		h->pid, h->flags & SHEAF_INFO_P_EXITED ? " at exit" : "", when,
		h->generation, h->flags & SHEAF_INFO_P_RSEQ ? "rseq" : "fallback",
		h->nr_slots, h->nr_slots == 1 ? "" : "s",
		h->nr_nodes, h->nr_nodes == 1 ? "" : "s");
	/* The Cap column as wide as its widest value (4 for fixed caches). */
	int capw = 4;
	for (unsigned int i = 0; i < n; i++) {
		char cb[40];
		int w = cap_str(cb, sizeof(cb), rec(h, idx[i]));
		capw = w > capw ? w : capw;
	}
	fprintf(out, "%-20s %7s %7s %7s %6s %*s %7s %4s %7s %4s %7s %7s %5s %5s %5s %7s %s\n",
		"Name", "Objsize", "Inuse", "Total", "Slabs", capw, "Cap", "Allocs",
		"Shf%", "Frees", "Shf%", "Refill", "Flush", "BarnF", "BarnE",
		"BarnL", "Memory", "Flg");
	for (unsigned int i = 0; i < n; i++) {
		const struct sheaf_info_cache *c = rec(h, idx[i]);
		char b[13][24], cb[40], fl[8];
		bool sh = c->flags & SHEAF_INFO_C_SHEAVES;
		uint64_t allocs = info_allocs(c), frees = info_frees(c);
		unsigned int f = 0;
		if (sh)
			fl[f++] = 'S';
		if (c->flags & SHEAF_INFO_C_DEBUG)
			fl[f++] = 'D';
		if (c->flags & SHEAF_INFO_C_KMALLOC)
			fl[f++] = 'k';
		if (c->flags & SHEAF_INFO_C_INTERNAL)
			fl[f++] = 'i';
		if (c->flags & SHEAF_INFO_C_ADAPTIVE)
			fl[f++] = 'a';
		fl[f] = 0;
		cap_str(cb, sizeof(cb), c);
		sheaf_info_put_escaped(out, c->name, sizeof(c->name), 20);
		fprintf(out, " %7u %7s %7s %6s %*s %7s %4s %7s %4s %7s %7s %5s %5s %5s %7s %s\n",
			c->object_size,
			count_str(b[0], sizeof(b[0]), c->objects_inuse),
			count_str(b[1], sizeof(b[1]), c->objects_total),
			count_str(b[2], sizeof(b[2]), c->slabs),
			capw, cb,
			count_str(b[3], sizeof(b[3]), allocs),
			share_str(b[4], sizeof(b[4]), info_sheaf_allocs(c), allocs, sh),
			count_str(b[5], sizeof(b[5]), frees),
			share_str(b[6], sizeof(b[6]), c->stats[SHEAF_STAT_FREE_FASTPATH],
				  frees, sh),
			count_str(b[7], sizeof(b[7]), c->stats[SHEAF_STAT_SHEAF_REFILL]),
			count_str(b[8], sizeof(b[8]), c->stats[SHEAF_STAT_SHEAF_FLUSH]),
			sh ? count_str(b[9], sizeof(b[9]), c->barn_full) : "-",
			sh ? count_str(b[10], sizeof(b[10]), c->barn_empty) : "-",
			sh ? count_str(b[11], sizeof(b[11]), c->barn_limit) : "-",
			bytes_str(b[12], sizeof(b[12]), c->bytes), fl);
	}
	if (h->total_caches > h->nr_caches)
		fprintf(out, "(%u more caches not published: the page holds %u)\n",
			h->total_caches - h->nr_caches, h->max_caches);
	if (hidden)
		fprintf(out, "(%u internal or unused caches hidden; -a shows them)\n",
			hidden);
}

SHEAF_EXPORT int sheaf_info_print(FILE *out, const struct sheaf_info_header *h,
				  unsigned int flags, const char *sort)
{
	uint16_t idx[SHEAF_INFO_MAX_CACHES];
	enum sort_key key = parse_key(sort);
	if (!out || !h || key == K_BAD)
		return -EINVAL;
	if (h->magic != SHEAF_INFO_MAGIC || h->version != SHEAF_INFO_VERSION ||
	    h->header_size != sizeof(*h) ||
	    h->record_size != sizeof(struct sheaf_info_cache) ||
	    h->nr_stats != SHEAF_STAT_NR || h->nr_caches > h->max_caches ||
	    h->nr_caches > SHEAF_INFO_MAX_CACHES)
		return -EINVAL;
	unsigned int n = 0, hidden = 0;
	for (unsigned int i = 0; i < h->nr_caches; i++) {
		const struct sheaf_info_cache *c = rec(h, i);
		if (!shown(c, flags)) {
			hidden++;
			continue;
		}
		/* Insertion sort: a few hundred records at most. */
		unsigned int j = n++;
		while (j && before(c, rec(h, idx[j - 1]), key)) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = (uint16_t)i;
	}
	if (flags & SHEAF_INFO_JSON)
		print_json(out, h, idx, n);
	else
		print_table(out, h, idx, n, hidden);
	return 0;
}
