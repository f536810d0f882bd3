/* SPDX-License-Identifier: MIT */
/*
 * info.c - publishing the caches' statistics for sheafinfo.
 *
 * With SHEAF_STATS=1 or SHEAF_STATS=exit the process creates the shared
 * memory object /libsheaf.<pid> (layout and protocol: <sheaf/info.h>) and a
 * publisher thread.  The thread takes a snapshot every
 * SHEAF_STATS_INTERVAL ms, and at once when a reader increments the
 * header's `request` word and wakes it (a futex wait on that word with the
 * interval as timeout).  A snapshot reads the counters and the cache state
 * out of line, with the locks that sheaf_cache_cached_objects() and
 * friends take anyway; the allocation and free fast paths do nothing for
 * it.  Nothing of this exists when statistics are off.
 *
 * A snapshot is collected into a private scratch page first (that takes
 * the cache locks and some time), then copied into the shared page under
 * the seqcount, so readers retry only during the copy.
 *
 * Creation: the name is unlinked first and created with O_EXCL, so a file,
 * symbolic link or FIFO someone put there is replaced, never opened or
 * followed; then the stale pages of our user are removed
 * (sheaf_info_remove_stale(), src/info_format.c: those not modified for
 * STALE_MIN_AGE_S).
 *
 * Exit: an atexit handler stops the publisher, with SHEAF_STATS=exit takes
 * a last snapshot and prints it (sheaf_info_print(), the table sheafinfo
 * prints) to stderr, and unlinks the object.
 *
 * fork: the child does not publish (its copy of the mapping is dropped; the
 * publisher thread does not exist there, and the object belongs to the
 * parent, which unlinks it).  Not under its own pid either: after the usual
 * fork() + exec() no exit handler runs, so each such child would leave a
 * stale page.  With SHEAF_STATS=exit the child still prints its own table
 * at exit.
 *
 * Lock order: info.lock, then the slab mutex and the cache locks below it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sheaf/info.h>

#include "info_page.h"
#include "internal.h"

/*
 * The publishing state.  Invariants: page != NULL iff this process created
 * the shared object (name valid, publisher running or stopped); scratch is
 * private and serves snapshots and the exit table; every field below lock
 * changes only under it.
 */
static struct {
	pthread_mutex_t lock;
	struct sheaf_info_header *page;    /* the shared mapping, or NULL */
	struct sheaf_info_header *scratch; /* private: snapshots are built here */
	size_t size;
	bool stopped;                      /* exit handler ran: no more snapshots */
	char name[32];
	uint64_t start_time;
	uint64_t generation;
} info SHEAF_FORK_DATA = { .lock = PTHREAD_MUTEX_INITIALIZER };

static long futex(uint32_t *uaddr, int op, uint32_t val,
		  const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

/* The record's layout (<sheaf/info.h>, version 3: 44 counters): no hidden
 * padding; a counter more changes the record, so the version too (the
 * two counters of adaptive capacity were once added without it).  The
 * bounds a reader checks the capacity fields against are the library's
 * (MAX_BARN_LIMIT, types.h, which pcs_adapt.c grows the limit to). */
_Static_assert(__builtin_offsetof(struct sheaf_info_cache, slabs) == 104 &&
	       SHEAF_STAT_NR == 44 &&
	       sizeof(struct sheaf_info_cache) == 168 + 8 * SHEAF_STAT_NR,
	       "struct sheaf_info_cache: a layout change needs a new SHEAF_INFO_VERSION");
_Static_assert(SHEAF_INFO_CAPACITY_MAX == SHEAF_MAX_CAPACITY &&
	       SHEAF_INFO_BARN_LIMIT_MIN == MAX_FULL_SHEAVES &&
	       SHEAF_INFO_BARN_LIMIT_MAX == MAX_BARN_LIMIT,
	       "<sheaf/info.h>'s capacity and barn limit bounds are not the library's");

static void collect_cache(struct kmem_cache *s, struct sheaf_info_cache *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", s->name);
	r->object_size = s->object_size;
	r->size = s->size;
	r->objects_per_slab = s->objects;
	r->order = s->order;
	r->slab_flags = s->flags;
	if (cache_has_sheaves(s)) {
		r->flags |= SHEAF_INFO_C_SHEAVES;
		/* Each loaded once: an adaptive cache's may move meanwhile,
		 * every value within the constant base and room. */
		r->sheaf_capacity = cache_cap(s);
		r->capacity_base = s->cap_base;
		r->capacity_max = s->sheaf_room;
		r->barn_limit = cache_barn_limit(s);
		if (s->adaptive)
			r->flags |= SHEAF_INFO_C_ADAPTIVE;
	}
	if (cache_debug(s))
		r->flags |= SHEAF_INFO_C_DEBUG;
	if (s->kind == CACHE_KMALLOC)
		r->flags |= SHEAF_INFO_C_KMALLOC;
	if (s->kind == CACHE_INTERNAL)
		r->flags |= SHEAF_INFO_C_INTERNAL;

	uint64_t partial_free = 0;
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		r->slabs += (uint64_t)atomic_load(&s->node[n]->nr_slabs);
		r->objects_total += (uint64_t)atomic_load(&s->node[n]->total_objects);
		partial_free += _sheaf_node_free_objects(s, (int)n);
	}
	r->objects_cached = sheaf_cache_cached_objects(s);
	if (cache_has_sheaves(s)) {
		for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
			unsigned int full, empty;
			_sheaf_barn_objects(s->barn[n], &full, &empty);
			r->barn_full += full;
			r->barn_empty += empty;
		}
	}
	r->objects_partial_free = partial_free;
	uint64_t free_objs = partial_free + r->objects_cached;
	r->objects_inuse = r->objects_total > free_objs ? r->objects_total - free_objs : 0;
	uint64_t pages = 0;
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
		pages += (uint64_t)atomic_load(&s->node[n]->nr_pages);
	r->bytes = pages * PAGE_SIZE + s->meta_size + s->fork_size;
	for (unsigned int k = 0; k < SHEAF_STAT_NR; k++)
		r->stats[k] = sheaf_stats_get(s, (enum sheaf_stat_item)k);
}

static struct sheaf_info_cache *records(struct sheaf_info_header *h)
{
	return (struct sheaf_info_cache *)((char *)h + sizeof(*h));
}

static void fill_header(struct sheaf_info_header *h)
{
	h->magic = SHEAF_INFO_MAGIC;
	h->version = SHEAF_INFO_VERSION;
	h->header_size = sizeof(*h);
	h->record_size = sizeof(struct sheaf_info_cache);
	h->nr_stats = SHEAF_STAT_NR;
	h->max_caches = SHEAF_INFO_MAX_CACHES;
	h->pid = getpid();
	h->start_time = info.start_time;
	h->interval_ms = _sheaf_config.stats_interval_ms;
	h->nr_slots = _sheaf_nr_slots;
	h->nr_nodes = _sheaf_nr_nodes;
	h->page_size = PAGE_SIZE;
	h->flags = _sheaf_rseq_mode ? SHEAF_INFO_P_RSEQ : 0;
}

/* A snapshot into the scratch page.  Caller holds info.lock. */
static void snapshot(bool at_exit)
{
	sheaf_lock_held(LR_INFO);
	struct sheaf_info_header *h = info.scratch;
	struct sheaf_info_cache *r = records(h);
	struct kmem_cache *s;
	unsigned int n = 0, total = 0;
	struct timespec now;

	fill_header(h);
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	list_for_each_entry(s, &_sheaf_slab_caches, list) {
		if (n < SHEAF_INFO_MAX_CACHES)
			collect_cache(s, &r[n++]);
		total++;
	}
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	clock_gettime(CLOCK_REALTIME, &now);
	h->nr_caches = n;
	h->total_caches = total;
	h->generation = ++info.generation;
	h->time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	if (at_exit)
		h->flags |= SHEAF_INFO_P_EXITED;
}

/*
 * Copy the scratch snapshot into the shared page under the seqcount, and
 * answer request `req`.  Caller holds info.lock.  The readers' words
 * (request) are never written here.
 */
static void publish(uint32_t req)
{
	sheaf_lock_held(LR_INFO);
	struct sheaf_info_header *h = info.page, *src = info.scratch;
	uint32_t seq = h->seq;

	__atomic_store_n(&h->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(records(h), records(src), (size_t)src->nr_caches * sizeof(struct sheaf_info_cache));
	h->magic = src->magic;
	h->version = src->version;
	h->header_size = src->header_size;
	h->record_size = src->record_size;
	h->nr_stats = src->nr_stats;
	h->max_caches = src->max_caches;
	h->nr_caches = src->nr_caches;
	h->total_caches = src->total_caches;
	h->pid = src->pid;
	h->start_time = src->start_time;
	h->interval_ms = src->interval_ms;
	h->generation = src->generation;
	h->time_ns = src->time_ns;
	h->nr_slots = src->nr_slots;
	h->nr_nodes = src->nr_nodes;
	h->page_size = src->page_size;
	h->flags = src->flags;
	__atomic_store_n(&h->seq, seq + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&h->answered, req, __ATOMIC_RELEASE);
	futex(&h->answered, FUTEX_WAKE, INT_MAX, NULL);
}

static void *publisher(void *arg)
{
	uint32_t ms = _sheaf_config.stats_interval_ms;
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	for (;;) {
		sheaf_lock(&info.lock, LR_INFO);
		if (info.stopped || !info.page) {
			sheaf_unlock(&info.lock, LR_INFO);
			return NULL;
		}
		struct sheaf_info_header *h = info.page;
		/* Read before the snapshot: it then covers every request
		 * made up to here. */
		uint32_t req = __atomic_load_n(&h->request, __ATOMIC_ACQUIRE);
		snapshot(false);
		publish(req);
		sheaf_unlock(&info.lock, LR_INFO);
		/* Returns at once if a reader asked meanwhile (the word
		 * changed), on a wake, or after the interval. */
		futex(&h->request, FUTEX_WAIT, req, &ts);
	}
	return arg;
}

static void info_exit(void)
{
	sheaf_lock(&info.lock, LR_INFO);
	if (info.stopped) {
		sheaf_unlock(&info.lock, LR_INFO);
		return;
	}
	info.stopped = true;
	if (_sheaf_config.stats_exit && info.scratch) {
		snapshot(true);
		if (info.page)
			publish(__atomic_load_n(&info.page->request, __ATOMIC_ACQUIRE));
		fflush(stdout);
		sheaf_info_print(stderr, info.scratch, 0, NULL);
		fflush(stderr);
	}
	if (info.page)
		shm_unlink(info.name);
	sheaf_unlock(&info.lock, LR_INFO);
}

/* Create the shared object; false (and nothing left behind) on failure. */
static bool create_page(void)
{
	snprintf(info.name, sizeof(info.name), SHEAF_INFO_SHM_PREFIX "%d", (int)getpid());
	/* A page left by a dead process with our pid: ours now. */
	shm_unlink(info.name);
	int fd = shm_open(info.name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	void *p = MAP_FAILED;
	if (ftruncate(fd, (off_t)info.size) == 0)
		p = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		shm_unlink(info.name);
		return false;
	}
	info.page = p;
	return true;
}

/* A stale page younger than this is left alone (sheaf_info_remove_stale()). */
#define STALE_MIN_AGE_S 10

/*
 * The library is about to abort the process (a report, SLAB_PANIC): no
 * atexit handler will run, so the page goes now.  Lock-free: the aborting
 * thread may hold any lock.  (A process killed by a signal leaves its page;
 * sheafinfo calls it stale, and the next publisher of the same user removes
 * it: sheaf_info_remove_stale().)
 */
static void info_abort(void)
{
	if (READ_ONCE(info.page))
		shm_unlink(info.name);
}

/* At the end of initialization (the caches of kmalloc exist). */
void _sheaf_info_init(void)
{
	if (!_sheaf_config.stats)
		return;
	info.size = sizeof(struct sheaf_info_header) +
		    SHEAF_INFO_MAX_CACHES * sizeof(struct sheaf_info_cache);
	info.scratch = _sheaf_meta_alloc(info.size);
	if (!info.scratch)
		return;
	info.start_time = sheaf_info_start_time(getpid());
	if (atexit(info_exit) != 0)
		return;
	if (!create_page()) {
		fprintf(stderr, "sheaf: SHEAF_STATS: cannot create shared memory %s: %s; "
			"statistics not published\n", info.name, strerror(errno));
		return;
	}
	_sheaf_set_abort_hook(info_abort);
	sheaf_info_remove_stale(STALE_MIN_AGE_S);
	int err = _sheaf_start_thread(publisher, "sheaf-stats");
	if (err) {
		fprintf(stderr, "sheaf: SHEAF_STATS: cannot start the publisher thread: %s; "
			"statistics not published\n", strerror(err));
		munmap(info.page, info.size);
		shm_unlink(info.name);
		info.page = NULL;
	}
}

/* fork: no snapshot may be half done in the child (before the slab mutex). */
void _sheaf_info_prefork(void)
{
	sheaf_lock(&info.lock, LR_INFO);
}

void _sheaf_info_postfork(bool child)
{
	if (child && info.page) {
		/* The page and its name are the parent's. */
		munmap(info.page, info.size);
		info.page = NULL;
	}
	sheaf_unlock(&info.lock, LR_INFO);
}
