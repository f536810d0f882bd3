/* SPDX-License-Identifier: MIT */
/*
 * init.c - start-up: the configuration read once from the environment, the
 * one-time initialization of every layer, bottom up, and the fork handlers,
 * which take every layer's locks (the top of the layer table: it calls
 * into all of them).
 *
 * sheaf_init() (inline, <sheaf/slab.h>) runs do_init() once, from the
 * library's constructor or from the first call that needs it, whichever
 * comes first (libsheaf-malloc's first malloc() may come before any
 * constructor: preload.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"
#include "info_page.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/*
 * The environment as libsheaf reads it: secure_getenv(), so that a setuid
 * or setgid program (AT_SECURE) ignores SHEAF_* and SLUB_DEBUG, as glibc's
 * malloc ignores MALLOC_* there: the variables switch on statistics pages,
 * debug output and failure injection, which another user must not control.
 */
const char *_sheaf_getenv(const char *name)
{
	return secure_getenv(name);
}

/*
 * A value shown in a message: printable ASCII only, at most 64 characters
 * (the environment of a setuid program's caller is not ours to echo).
 */
static void shown(char *out, size_t size, const char *v)
{
	size_t i = 0;
	for (; v[i] && i + 1 < size && i < 64; i++)
		out[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
	out[i] = 0;
}

int _sheaf_env_int(const char *name, int def, int lo, int hi)
{
	const char *v = _sheaf_getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (*end || errno || x < lo || x > hi) {
		char s[72];
		shown(s, sizeof(s), v);
		fprintf(stderr, "sheaf: ignoring %s=%s (expected %d..%d)\n", name,
			s, lo, hi);
		return def;
	}
	return (int)x;
}

/* 1 true, 0 false, -1 not a boolean word. */
static int bool_word(const char *v)
{
	static const char *const yes[] = { "1", "yes", "on", "true" };
	static const char *const no[] = { "0", "no", "off", "false" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -1;
}

/*
 * A boolean variable: 0/1, no/yes, off/on, false/true (any case).  Unset
 * or empty: def; anything else: one line on stderr, and def.
 */
bool _sheaf_env_bool(const char *name, bool def)
{
	const char *v = _sheaf_getenv(name);
	if (!v || !*v)
		return def;
	int b = bool_word(v);
	if (b < 0) {
		char s[72];
		shown(s, sizeof(s), v);
		fprintf(stderr, "sheaf: ignoring %s=%s (expected 0/1, no/yes, "
			"off/on or false/true)\n", name, s);
		return def;
	}
	return b;
}

#define env_int _sheaf_env_int

static void read_config(void)
{
	const char *v = _sheaf_getenv("SHEAF_STATS");
	if (v && !strcmp(v, "exit")) {
		_sheaf_config.stats = _sheaf_config.stats_exit = true;
	} else if (v && *v && bool_word(v) < 0) {
		char s[72];
		shown(s, sizeof(s), v);
		fprintf(stderr, "sheaf: ignoring SHEAF_STATS=%s (expected 0/1, "
			"no/yes, off/on, false/true or exit)\n", s);
	} else {
		_sheaf_config.stats = _sheaf_env_bool("SHEAF_STATS", false);
	}
	_sheaf_config.stats_interval_ms =
		(unsigned int)env_int("SHEAF_STATS_INTERVAL", 1000, 10, 3600000);
	_sheaf_config.malloc_verbose = env_int("SHEAF_MALLOC_VERBOSE", 0, 0, 2);
	v = _sheaf_getenv("SHEAF_PERCPU");
	if (v && strcmp(v, "fallback") == 0)
		_sheaf_config.percpu_fallback = true;
	else if (v && strcmp(v, "cpu_id") == 0)
		_sheaf_config.percpu_cpu_id = true;
	else if (v && *v && strcmp(v, "rseq") != 0) {
		char s[72];
		shown(s, sizeof(s), v);
		fprintf(stderr, "sheaf: ignoring SHEAF_PERCPU=%s (rseq|cpu_id|fallback)\n", s);
	}
	_sheaf_config.fake_numa = env_int("SHEAF_FAKE_NUMA", 0, 0, MAX_NUMNODES);
	_sheaf_config.yield_every = (unsigned int)env_int("SHEAF_DEBUG_YIELD", 0, 0,
							  1 << 30);
	_sheaf_config.kmalloc_capacity =
		env_int("SHEAF_KMALLOC_CAPACITY", 0, 0, SHEAF_MAX_CAPACITY);
	_sheaf_config.large_retain =
		(size_t)env_int("SHEAF_LARGE_RETAIN_MB", 64, 0, 1 << 20) << 20;
	_sheaf_config.large_decay_ms =
		(unsigned int)env_int("SHEAF_LARGE_DECAY_MS", 1000, 0, 3600000);
	_sheaf_config.large_thp = _sheaf_env_bool("SHEAF_LARGE_THP", false);
	v = _sheaf_getenv("SHEAF_LARGE_POPULATE");
	_sheaf_config.large_populate = -1;	/* auto */
	if (v && (!strcmp(v, "0") || !strcmp(v, "1"))) {
		_sheaf_config.large_populate = *v - '0';
	} else if (v && *v && strcmp(v, "auto") != 0) {
		char s[72];
		shown(s, sizeof(s), v);
		fprintf(stderr, "sheaf: ignoring SHEAF_LARGE_POPULATE=%s (expected "
			"auto, 0 or 1)\n", s);
	}
	_sheaf_config.idle_ms =
		(unsigned int)env_int("SHEAF_IDLE_MS", 1000, 0, 3600000);
	if (_sheaf_config.idle_ms && _sheaf_config.idle_ms < 10)
		_sheaf_config.idle_ms = 10;
	_sheaf_config.adaptive = _sheaf_env_bool("SHEAF_ADAPTIVE", true);
	_sheaf_config.adaptive_max =
		(unsigned int)env_int("SHEAF_ADAPTIVE_MAX", 4, 2, 16);
	_sheaf_config.adaptive_budget =
		(size_t)env_int("SHEAF_ADAPTIVE_BUDGET_MB", 64, 0, 1 << 20) << 20;
	v = _sheaf_getenv("SHEAF_DEFAULT_CAPACITY");
	if (v && strcmp(v, "auto") == 0)
		_sheaf_config.default_capacity = -1;
	else
		_sheaf_config.default_capacity =
			env_int("SHEAF_DEFAULT_CAPACITY", 0, 0, SHEAF_MAX_CAPACITY);
	_sheaf_config.debug_abort = _sheaf_env_bool("SHEAF_DEBUG_ABORT", true);
	_sheaf_config.slub_debug = _sheaf_getenv("SLUB_DEBUG");
	_sheaf_config.fault[SHEAF_FAULT_SLAB] = _sheaf_getenv("SHEAF_FAILSLAB");
	_sheaf_config.fault[SHEAF_FAULT_PAGE] = _sheaf_getenv("SHEAF_FAILPAGE");
	_sheaf_config.fault[SHEAF_FAULT_SHEAF] = _sheaf_getenv("SHEAF_FAILSHEAF");
}

/* ----------------------------------------------------------------- fork */

/*
 * Before fork() take every lock of the library, rank by rank in the lock
 * order (enum sheaf_lock_rank, types.h; docs/ARCHITECTURE.md), with the
 * RCU worker quiesced first (its batch finished, no new one taken), so
 * that the child inherits none held by a thread it does not have; release
 * them after, in parent and child (the child also clears the slot lock
 * bytes: its one thread owns every slot).  In builds without NDEBUG the
 * lock checker follows every step.
 */
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define SHEAF_HAVE_SINGLE_THREADED 1
#endif
#endif

/*
 * A process of one thread (glibc's __libc_single_threaded, which never
 * turns true again once a thread was created) forks with no lock to take:
 * no other thread can hold one or be inside a section, and none can start
 * while its one thread is in fork().  glibc's fork() skips its malloc
 * locks alike.  The shell and make case: most fork()s come from one
 * thread.
 */
static inline bool single_threaded(void)
{
#ifdef SHEAF_HAVE_SINGLE_THREADED
	return __libc_single_threaded;
#else
	return false;
#endif
}

/*
 * Whether prefork() took the locks, for the handlers after fork() (the
 * child cannot ask __libc_single_threaded).  Written only when it
 * changes: after a fork() every write to a page is a fault.
 */
static bool fork_locked SHEAF_FORK_DATA;

/*
 * The handlers' steps, one per rank of the lock order (two for the leaf
 * rank), in that order: prefork() runs every step's lock, the handlers
 * after fork() every unlock in reverse.  The steps marked `list` walk the
 * cache list, which the slab_mutex step holds.  The same table serves the
 * test hook sheaf_test_hold_lock_step() (below), which holds one step at a
 * time, so that a test can find each lock held in turn
 * (tests/test_nolock.c: signal handlers calling kmalloc_nolock()).
 */
static void lock_slab_mutex(void)
{
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
}

static void unlock_slab_mutex(bool child)
{
	(void)child;
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
}

/* Every slot of every cache stopped (and a sheaf cache's frozen), then
 * one fence for all of them (a membarrier per cache made fork() cost twice
 * glibc's), then the wait for their holders; while a sheaf cache's look
 * had to freeze a slot again, another fence and look for all of them
 * (percpu.c, the remote-slot protocol). */
static void lock_slots(void)
{
	struct kmem_cache *s;
	list_for_each_entry(s, &_sheaf_slab_caches, list) {
		if (cache_has_sheaves(s))
			_sheaf_pcs_fork_stop(s);
		else
			_sheaf_cpu_fork_stop(s);
	}
	if (_sheaf_rseq_mode)
		_sheaf_rseq_fence();
	list_for_each_entry(s, &_sheaf_slab_caches, list) {
		if (cache_has_sheaves(s))
			_sheaf_pcs_fork_hold(s);
		else
			_sheaf_cpu_fork_wait(s);
	}
	for (;;) {
		bool settled = true;
		list_for_each_entry(s, &_sheaf_slab_caches, list)
			if (cache_has_sheaves(s))
				settled &= _sheaf_pcs_fork_settle(s);
		if (settled)
			break;
		if (_sheaf_rseq_mode)
			_sheaf_rseq_fence();
	}
}

static void unlock_slots(bool child)
{
	struct kmem_cache *s;
	list_for_each_entry(s, &_sheaf_slab_caches, list) {
		if (cache_has_sheaves(s))
			_sheaf_pcs_unlock_all(s, child);
		else
			_sheaf_cpu_unlock_all(s);
	}
}

static void lock_barns(void)
{
	struct kmem_cache *s;
	list_for_each_entry(s, &_sheaf_slab_caches, list)
		if (cache_has_sheaves(s))
			_sheaf_pcs_fork_lock_barns(s);
}

static void unlock_barns(bool child)
{
	struct kmem_cache *s;
	(void)child;
	list_for_each_entry(s, &_sheaf_slab_caches, list)
		if (cache_has_sheaves(s))
			_sheaf_pcs_fork_unlock_barns(s);
}

static void lock_lists(void)
{
	struct kmem_cache *s;
	list_for_each_entry(s, &_sheaf_slab_caches, list)
		for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
			sheaf_lock(&s->node[n]->list_lock, LR_LIST);
}

static void unlock_lists(bool child)
{
	struct kmem_cache *s;
	(void)child;
	list_for_each_entry(s, &_sheaf_slab_caches, list)
		for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
			sheaf_unlock(&s->node[n]->list_lock, LR_LIST);
}

static void lock_arena(void) { _sheaf_pages_lock(LR_ARENA); }
static void unlock_arena(bool child)
{
	if (child)
		_sheaf_huge_after_fork_child();
	_sheaf_pages_unlock(LR_ARENA);
}
static void lock_pages(void) { _sheaf_pages_lock(LR_PAGE); }
static void unlock_pages(bool child) { (void)child; _sheaf_pages_unlock(LR_PAGE); }
static void lock_pool(void) { _sheaf_pages_lock(LR_POOL); }
static void unlock_pool(bool child) { (void)child; _sheaf_pages_unlock(LR_POOL); }
static void unlock_batch(bool child) { (void)child; _sheaf_rcu_unlock_batch(); }
static void unlock_glob(bool child) { (void)child; _sheaf_fault_postfork(); }

static const struct lock_step {
	const char *name;
	bool list;			/* walks the cache list */
	void (*lock)(void);
	void (*unlock)(bool child);
} lock_steps[] = {
	{ "batch_lock", false, _sheaf_rcu_lock_batch, unlock_batch },
	{ "drain_lock", false, _sheaf_run_cache_prefork, _sheaf_run_cache_postfork },
	{ "info.lock", false, _sheaf_info_prefork, _sheaf_info_postfork },
	{ "slab_mutex", false, lock_slab_mutex, unlock_slab_mutex },
	{ "flush_lock and every slot", true, lock_slots, unlock_slots },
	{ "barn locks", true, lock_barns, unlock_barns },
	{ "list_locks", true, lock_lists, unlock_lists },
	{ "arena_lock", false, lock_arena, unlock_arena },
	{ "page_node locks", false, lock_pages, unlock_pages },
	{ "pool.lock", false, lock_pool, unlock_pool },
	{ "glob_lock", false, _sheaf_fault_prefork, unlock_glob },
	{ "worker.lock", false, _sheaf_rcu_lock_worker, _sheaf_rcu_unlock_worker },
};
#define NR_LOCK_STEPS ARRAY_SIZE(lock_steps)

/*
 * Threads of the process, from /proc/self/stat (field 20), or 0 when it
 * cannot be read.  No allocation (the prefork handler may run inside
 * libsheaf-malloc): the statistics layer's parser of that file.
 */
static uint64_t process_threads(void)
{
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t n = sheaf_proc_stat_field(fd, 20);
	close(fd);
	return n;
}

/*
 * Whether prefork() took only slab_mutex: the idle thread (sheaf-idle,
 * slab_common.c) was the one other thread.  It holds a library lock only
 * inside a look, and a look holds slab_mutex throughout; so with
 * slab_mutex held and no third thread (counted after taking it: a look
 * may start the RCU worker), no other thread holds or can take any
 * library lock, and fork() needs no more, as for one thread.  Without
 * this every program with sheaf caches would pay the multi-threaded
 * fork.  Written only when it changes.
 */
static bool fork_light SHEAF_FORK_DATA;

static bool prefork_light(void)
{
	if (!_sheaf_idle_running())
		return false;
	lock_slab_mutex();
	if (process_threads() == 2)
		return true;
	unlock_slab_mutex(false);
	return false;
}

static void prefork(void)
{
	bool lock = !single_threaded();
	bool light = lock && prefork_light();
	if (fork_light != light)
		fork_light = light;
	if (light)
		lock = false;
	if (fork_locked != lock)
		fork_locked = lock;
	if (!lock)
		return;
	_sheaf_rcu_quiesce_worker();
	_sheaf_rcu_before_fork();
	for (size_t i = 0; i < NR_LOCK_STEPS; i++)
		lock_steps[i].lock();
}

static void postfork(bool child)
{
	if (fork_light) {
		unlock_slab_mutex(child);
		if (child) {
			_sheaf_idle_after_fork(true); /* not in the child */
			_sheaf_cached_tid = 0;
		}
		return;
	}
	if (!fork_locked) {
		/* One thread: no worker, no statistics publisher (both are
		 * threads), no call_rcu thread; only the per-thread cache. */
		if (child)
			_sheaf_cached_tid = 0; /* the parent thread's id */
		return;
	}
	for (size_t i = NR_LOCK_STEPS; i-- > 0;)
		lock_steps[i].unlock(child);
	_sheaf_rcu_after_fork(child);
	_sheaf_idle_after_fork(child);
	if (child)
		_sheaf_cached_tid = 0; /* the parent thread's id */
}

/*
 * Test hook: hold the locks of one step of the fork handlers (with
 * slab_mutex for the steps that walk the cache list), until released.
 * One step at a time per thread.
 */
static __thread int held_step = -1;

SHEAF_EXPORT const char *sheaf_test_lock_step_name(unsigned int step)
{
	return step < NR_LOCK_STEPS ? lock_steps[step].name : NULL;
}

SHEAF_EXPORT int sheaf_test_hold_lock_step(unsigned int step, bool hold)
{
	sheaf_init();
	if (step >= NR_LOCK_STEPS)
		return -EINVAL;
	const struct lock_step *ls = &lock_steps[step];
	if (hold) {
		if (held_step >= 0)
			return -EBUSY;
		if (ls->list)
			lock_slab_mutex();
		ls->lock();
		held_step = (int)step;
		return 0;
	}
	if (held_step != (int)step)
		return -EINVAL;
	ls->unlock(false);
	if (ls->list)
		unlock_slab_mutex(false);
	held_step = -1;
	return 0;
}

static void postfork_parent(void)
{
	postfork(false);
}

static void postfork_child(void)
{
	postfork(true);
}

static void fork_init(void)
{
	pthread_atfork(prefork, postfork_parent, postfork_child);
}

static void do_init(void)
{
	_sheaf_in_init = true;
	read_config();
	_sheaf_platform_init();
	_sheaf_debug_setup();
	_sheaf_fault_setup();
	_sheaf_track_setup();
	_sheaf_pages_init();
	_sheaf_kmalloc_init();
	fork_init();
	__atomic_store_n(&_sheaf_initialized, true, __ATOMIC_RELEASE);
	_sheaf_info_init();
	_sheaf_in_init = false;
}

void _sheaf_init_slow(void)
{
	pthread_once(&init_once, do_init);
}

__attribute__((constructor)) static void sheaf_ctor(void)
{
	sheaf_init();
}

SHEAF_EXPORT unsigned int sheaf_nr_slots(void)
{
	sheaf_init();
	return _sheaf_nr_slots;
}

SHEAF_EXPORT unsigned int sheaf_nr_nodes(void)
{
	sheaf_init();
	return _sheaf_nr_nodes;
}

SHEAF_EXPORT int sheaf_numa_node_id(void)
{
	sheaf_init();
	return sheaf_node();
}

SHEAF_EXPORT const char *sheaf_percpu_mode(void)
{
	sheaf_init();
	return _sheaf_rseq_mode ? "rseq" : "fallback";
}

SHEAF_EXPORT const char *sheaf_percpu_slots(void)
{
	sheaf_init();
	if (!_sheaf_rseq_mode)
		return "getcpu";
	return _sheaf_rseq_mm_cid ? "mm_cid" : "cpu_id";
}
