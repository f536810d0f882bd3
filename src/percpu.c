/* SPDX-License-Identifier: MIT */
/*
 * percpu.c - the platform layer: which CPU slot and NUMA node a thread is
 * on, rseq detection, the remote-slot fence, the lock helper, and the
 * process-wide configuration data (init.c reads it from the environment).
 *
 * Slots: with glibc's rseq registration (glibc >= 2.35) the slot is the
 * rseq mm_cid when the kernel provides it (AT_RSEQ_FEATURE_SIZE >= 28: a
 * dense per-process id), else cpu_id.  Without rseq (other libc, valgrind,
 * glibc.pthread.rseq=0) the slot comes from sched_getcpu().  Outside a
 * restartable section the slot is a hint: a thread may move at once, and
 * the slot locks make the slow paths correct when several threads use one
 * slot.  Inside a section the slot is exact only for a thread whose rseq
 * area is registered (cpu_id >= 0): an unregistered thread's mm_cid reads
 * 0, another thread's slot, and the kernel aborts none of its sections, so
 * every section checks cpu_id and the slot bound first and bails
 * (<sheaf/rseq.h>, docs/PERCPU.md).  A kernel that left mm_cid at 0 for
 * registered threads would be unsafe in the same way; detect_rseq() only
 * uses mm_cid where AT_RSEQ_FEATURE_SIZE says the kernel fills it.
 *
 * Nodes: SHEAF_FAKE_NUMA=N splits the CPUs into N contiguous groups; else
 * libnuma's topology.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <linux/membarrier.h>
#include <numa.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "internal.h"

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif

struct sheaf_config _sheaf_config;
unsigned int _sheaf_nr_slots = 1;
unsigned int _sheaf_nr_nodes = 1;
int _sheaf_cpu_node[SHEAF_MAX_SLOTS];
bool _sheaf_stats_on;
bool _sheaf_initialized;
__thread bool _sheaf_in_init;
ptrdiff_t _sheaf_rseq_offset;
bool _sheaf_rseq_ok;
bool _sheaf_rseq_mm_cid;

/*
 * The calling thread's id (tracks, the failure injector's seed), cached
 * (0: not yet asked): gettid() is a system call, a third of a tracked
 * pair's cost.  fork() leaves the child's one thread with its parent
 * thread's cache: the postfork handler (run by that thread) clears it.
 */
__thread int _sheaf_cached_tid;

int _sheaf_tid_slow(void)
{
	_sheaf_cached_tid = (int)syscall(SYS_gettid);
	return _sheaf_cached_tid;
}

int _sheaf_getcpu_slow(void)
{
	int c = sched_getcpu();
	if (c < 0)
		c = 0;
	return (int)((unsigned int)c % _sheaf_nr_slots);
}

/*
 * The number of possible CPUs: the highest id in the kernel's possible
 * mask plus one (0: unknown).  The rseq ABI keeps a registered thread's
 * cpu_id and mm_cid below it, so with one slot per possible CPU a section
 * needs no bound test of its own (<sheaf/rseq.h>); rseq mode is used only
 * when this is known and fits SHEAF_MAX_SLOTS.
 */
static long possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	if (!f)
		return 0;
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	long max = -1;
	for (char *p = buf; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v > max)
			max = v;
		p = end;
		while (*p == ',' || *p == '-' || *p == '\n')
			p++;
	}
	return max + 1;
}

static void detect_rseq(void)
{
	if (__rseq_size == 0 || RUNNING_ON_VALGRIND)
		return;
	_sheaf_rseq_offset = __rseq_offset;
	int32_t cpu = (int32_t)READ_ONCE(sheaf_rseq()->cpu_id);
	if (cpu < 0) /* RSEQ_CPU_ID_UNINITIALIZED or REGISTRATION_FAILED */
		return;
	_sheaf_rseq_ok = true;
	unsigned long feat = getauxval(AT_RSEQ_FEATURE_SIZE);
	if (!_sheaf_config.percpu_cpu_id &&
	    feat >= offsetof(struct sheaf_rseq_area, mm_cid) + sizeof(uint32_t) &&
	    READ_ONCE(sheaf_rseq()->mm_cid) < _sheaf_nr_slots)
		_sheaf_rseq_mm_cid = true;
}

static void detect_nodes(void)
{
	unsigned int n = _sheaf_nr_slots;
	if (_sheaf_config.fake_numa > 0) {
		_sheaf_nr_nodes = (unsigned int)_sheaf_config.fake_numa;
		for (unsigned int c = 0; c < n; c++)
			_sheaf_cpu_node[c] = (int)(c * _sheaf_nr_nodes / n);
		return;
	}
	if (numa_available() < 0)
		return;
	int max = numa_max_node();
	if (max < 0)
		return;
	_sheaf_nr_nodes = (unsigned int)MIN(max + 1, MAX_NUMNODES);
	for (unsigned int c = 0; c < n; c++) {
		int node = numa_node_of_cpu((int)c);
		_sheaf_cpu_node[c] = node < 0 || node >= (int)_sheaf_nr_nodes ? 0 : node;
	}
}

/*
 * The library aborts the process (a report, a broken invariant, SLAB_PANIC):
 * stderr flushed, the abort hook run (the statistics publisher's: its page
 * goes, since no atexit handler will run), then abort().  The hook must be
 * lock-free: the aborting thread may hold any lock.
 */
static void (*abort_hook)(void);

void _sheaf_set_abort_hook(void (*fn)(void))
{
	__atomic_store_n(&abort_hook, fn, __ATOMIC_RELEASE);
}

/*
 * The coarse monotonic clock, ns (a vDSO read of the last tick, a few ns):
 * retained mappings' decay (huge.c) and adaptive capacity's windows and
 * looks (pcs_adapt.c), which need milliseconds, not precision.
 */
uint64_t _sheaf_coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * A detached helper thread of the library (the RCU worker, the statistics
 * publisher, the idle drain), named, that takes no signal meant for the
 * program (all masked in it).  Returns pthread_create()'s answer.
 */
int _sheaf_start_thread(void *(*fn)(void *), const char *name)
{
	pthread_attr_t a;
	pthread_t t;
	sigset_t all, old;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&t, &a, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (!err)
		pthread_setname_np(t, name);
	return err;
}

void _sheaf_die(void)
{
	fflush(stderr);
	void (*fn)(void) = __atomic_load_n(&abort_hook, __ATOMIC_ACQUIRE);
	if (fn)
		fn();
	abort();
}

/*
 * The reports of misuse, one line on stderr then _sheaf_die(): "sheaf:
 * <function>(): <problem> <address> (cache <name>, caller <address>)".
 */
void _sheaf_report_invalid(const char *fn, const char *what, const void *addr,
			   struct kmem_cache *s, void *caller)
{
	fprintf(stderr, "sheaf: %s(): %s %p (cache %s, caller %p)\n", fn, what,
		addr, s ? s->name : "unknown", caller);
	_sheaf_die();
}

/* A stale pointer to a destroyed cache (SLAB_DESTROYED). */
void _sheaf_report_destroyed(const char *fn, struct kmem_cache *s, void *caller)
{
	fprintf(stderr, "sheaf: %s(): cache %p (\"%s\") was destroyed: a stale "
		"cache pointer (caller %p)\n", fn, (void *)s, s->name, caller);
	_sheaf_die();
}

/* A broken invariant (SHEAF_ASSERT and SHEAF_ASSERT_EXPENSIVE, compiler.h). */
void _sheaf_assert_fail(const char *cond, const char *file, int line,
			const char *fn)
{
	fprintf(stderr, "sheaf: internal invariant broken: %s (%s:%d, %s())\n",
		cond, file, line, fn);
	_sheaf_die();
}

int _sheaf_check_level(void)
{
	return SHEAF_CHECK_LEVEL;
}

/* The one membarrier() wrapper: registration and the fence. */
static int sheaf_membarrier(int cmd)
{
	return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

SHEAF_EXPORT struct sheaf_runtime sheaf_rt;
/*
 * The library's own copy, read RIP-relative by its sections.  Not an
 * alias: a program's inline paths may read sheaf_rt from a copy relocated
 * into the executable, which the library reaches only through its GOT, so
 * both are written (decide_percpu_mode(), the only writer).
 */
struct sheaf_runtime _sheaf_rt_local;
_Static_assert(offsetof(struct sheaf_rseq_area, mm_cid) == 24,
	       "SHEAF_RSEQ_VARIANTS reads mm_cid at offset 24 of the rseq area");
_Static_assert(offsetof(struct sheaf_rseq_area, cpu_id) == 4,
	       "SHEAF_RSEQ_SLOTNR tests cpu_id at offset 4 of the rseq area");
_Static_assert(offsetof(struct sheaf_rseq_area, rseq_cs) == 8,
	       "SHEAF_RSEQ_ARM and sheaf_rseq_disarm() store rseq_cs at offset 8");
bool _sheaf_rseq_mode;

/* Decide the per-CPU mode once, at start-up (after detect_rseq()). */
static void decide_percpu_mode(void)
{
	bool rseq = _sheaf_rseq_ok && !_sheaf_config.percpu_fallback;
#if !defined(SHEAF_HAVE_RSEQ_ASM) || defined(SHEAF_HAVE_TSAN)
	rseq = false; /* TSan cannot see through the sections: fallback */
#endif
	/* The sections tag slot_sel's bit 0 (<sheaf/rseq.h>): the area must
	 * be 32-byte aligned relative to the thread pointer, as the kernel
	 * requires of the area itself. */
	if (_sheaf_rseq_offset & 31)
		rseq = false;
	if (rseq && sheaf_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) != 0)
		rseq = false;
	_sheaf_rseq_mode = rseq;
	sheaf_rt.rseq_offset = _sheaf_rseq_offset;
	sheaf_rt.slot_off = _sheaf_rseq_offset + (_sheaf_rseq_mm_cid
		? (long)offsetof(struct sheaf_rseq_area, mm_cid)
		: (long)offsetof(struct sheaf_rseq_area, cpu_id));
	sheaf_rt.slot_sel = _sheaf_rseq_offset + (_sheaf_rseq_mm_cid ? 0 : 1);
	_sheaf_rt_local = sheaf_rt;
}

/*
 * The remote-slot fence: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)
 * aborts every restartable section in flight on the other CPUs, so that
 * after it every section sees the stop bytes and frozen counts stored
 * before it.  Returns
 * only when the fence happened.  Transient failures (ENOMEM: the kernel
 * could not allocate its CPU mask; EAGAIN, EINTR) are retried with a
 * growing pause for about two seconds; any other failure, or one that
 * lasts, aborts the process with a message: going on without the fence
 * would let a section in flight commit into a slot the flusher owns.
 */
void _sheaf_rseq_fence(void)
{
	for (unsigned int tries = 0;; tries++) {
		if (sheaf_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) == 0)
			return;
		int e = errno;
		if ((e == ENOMEM || e == EAGAIN || e == EINTR) && tries < 220) {
			struct timespec ts = { 0, tries < 20 ? 100000L : 10000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		fprintf(stderr,
			"sheaf: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) failed: "
			"%s (%u tries); without it a remote flush cannot stop the "
			"per-CPU sections in flight: aborting\n",
			strerror(e), tries + 1);
		_sheaf_die();
	}
}

#ifdef SHEAF_LOCK_CHECK
/* The lock ranks this thread holds, counted (enum sheaf_lock_rank). */
static __thread unsigned int lock_held[LR_NR];
static const char *const lock_rank_name[LR_NR] = {
	[LR_BATCH] = "batch_lock", [LR_DRAIN] = "drain_lock",
	[LR_INFO] = "info.lock", [LR_SLAB_MUTEX] = "slab_mutex",
	[LR_FLUSH] = "flush_lock", [LR_SLOT] = "a slot lock",
	[LR_BARN] = "a barn lock", [LR_LIST] = "a list_lock",
	[LR_ARENA] = "arena_lock", [LR_PAGE] = "a page_node lock",
	[LR_POOL] = "pool.lock", [LR_LEAF] = "a leaf lock",
};

void _sheaf_lock_acquire(enum sheaf_lock_rank r)
{
	for (unsigned int k = (unsigned int)r + 1; k < LR_NR; k++)
		if (lock_held[k]) {
			fprintf(stderr, "sheaf: lock order: taking %s while holding %s "
				"(docs/ARCHITECTURE.md, \"Lock order\")\n",
				lock_rank_name[r], lock_rank_name[k]);
			_sheaf_die();
		}
	lock_held[r]++;
}

void _sheaf_lock_tried(enum sheaf_lock_rank r)
{
	lock_held[r]++;
}

void _sheaf_lock_release(enum sheaf_lock_rank r)
{
	if (!lock_held[r]) {
		fprintf(stderr, "sheaf: lock order: releasing %s, not held\n",
			lock_rank_name[r]);
		_sheaf_die();
	}
	lock_held[r]--;
}

void _sheaf_lock_held(enum sheaf_lock_rank r, const char *fn)
{
	if (!lock_held[r]) {
		fprintf(stderr, "sheaf: %s() called without %s held (its contract)\n",
			fn, lock_rank_name[r]);
		_sheaf_die();
	}
}
#endif

void _sheaf_spinlock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

void _sheaf_debug_yield_slow(void)
{
	static __thread uint64_t x;
	if (!x)
		x = (uint64_t)(uintptr_t)&x | 1;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	if (x % _sheaf_config.yield_every == 0)
		sched_yield();
}

/* ------------------------------------------- the remote-slot protocol */

/* A frozen count less main's count n (struct sheaf_pcs). */
#define FROZEN_BASE (SHEAF_PCS_TAKEN + SHEAF_PCS_FROZEN)

/*
 * Own every slot of the array pcs from another thread.  A slot is the
 * remote owner's once its count is frozen (SHEAF_PCS_TAKEN +
 * SHEAF_PCS_FROZEN + n, struct sheaf_pcs) and no section in flight can
 * overwrite that: stop every slot (no trylock succeeds after the next
 * fence) and freeze every free one, then fence and look again until every
 * slot is frozen and was before the last fence (_sheaf_slots_settle()).
 * Two things make a look fail: a section that loaded the count before
 * the freeze and committed after it (its commit overwrote the frozen
 * count: freeze again), and a lock holder (wait for its release, then
 * freeze).  Most often the first look after the first fence finds every
 * slot frozen: one fence, as when the sections tested a stop byte.  The
 * caller serialises remote owners of the array.
 */
void _sheaf_slots_remote_lock(struct sheaf_pcs *pcs)
{
	_sheaf_slots_stop(pcs);
	do {
		if (_sheaf_rseq_mode)
			_sheaf_rseq_fence();
	} while (!_sheaf_slots_settle(pcs));
	/* Every slot frozen: the owner works with main->size. */
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		if (pcs[i].main)
			pcs[i].main->size = pcs[i].count - FROZEN_BASE;
}

/* Freeze the slot if it is free (count >= 0); false if it is taken. */
static bool slot_freeze(struct sheaf_pcs *pcs)
{
	uint32_t c = __atomic_load_n(&pcs->count, __ATOMIC_RELAXED);
	while (!sheaf_pcs_count_taken(c))
		if (__atomic_compare_exchange_n(&pcs->count, &c, c + FROZEN_BASE,
						false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			return true;
	return false;
}

/* The remote protocol in parts, so that fork() fences once for all. */
void _sheaf_slots_stop(struct sheaf_pcs *pcs)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		__atomic_store_n(&pcs[i].stop, 1, __ATOMIC_SEQ_CST);
		slot_freeze(&pcs[i]);
	}
}

/*
 * After a fence (rseq mode): true when every slot is frozen (then no
 * section or lock holder can touch one: the freezes were before the
 * fence); false when a slot had to be frozen again: fence and call again.
 */
bool _sheaf_slots_settle(struct sheaf_pcs *pcs)
{
	bool settled = true;
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		for (;;) {
			/*
			 * Fallback mode's Dekker pair: the seq_cst store of
			 * stop and this load of lock against the locker's
			 * seq_cst compare-and-swap of lock and load of stop;
			 * with all four in one total order, either the locker
			 * sees stop and lets go, or this load sees its lock
			 * and waits.  In rseq mode a holder's count is
			 * SHEAF_PCS_TAKEN + n (not frozen): wait for its
			 * release (stop keeps new holders out).
			 */
			if (!__atomic_load_n(&pcs[i].lock, __ATOMIC_SEQ_CST)) {
				/* After the lock: a fallback holder's release
				 * of count came before its release of lock. */
				uint32_t c = __atomic_load_n(&pcs[i].count, __ATOMIC_SEQ_CST);
				if (sheaf_pcs_count_frozen(c))
					break;
				if (!sheaf_pcs_count_taken(c)) {
					if (slot_freeze(&pcs[i])) {
						settled = false;
						break;
					}
					continue;
				}
			}
			sched_yield();
		}
	}
	return settled;
}

/* A fork()ed child's slots, owned by its one thread: no lock is held. */
void _sheaf_slots_reset(struct sheaf_pcs *pcs)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++)
		__atomic_store_n(&pcs[i].lock, 0, __ATOMIC_RELAXED);
}

void _sheaf_slots_remote_unlock(struct sheaf_pcs *pcs)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		sheaf_pcs_publish(&pcs[i]);
		__atomic_store_n(&pcs[i].stop, 0, __ATOMIC_RELEASE);
	}
}

/*
 * Thaw only: the fork handlers own the slots to freeze them, not to work
 * with their sheaves, so counts stay in the slots (and no sheaf header
 * shared with the child is written: a copy-on-write fault each).
 */
void _sheaf_slots_release(struct sheaf_pcs *pcs)
{
	for (unsigned int i = 0; i < _sheaf_nr_slots; i++) {
		uint32_t c = pcs[i].count;
		SHEAF_ASSERT(sheaf_pcs_count_frozen(c));
		__atomic_store_n(&pcs[i].count, c - FROZEN_BASE, __ATOMIC_RELEASE);
		__atomic_store_n(&pcs[i].stop, 0, __ATOMIC_RELEASE);
	}
}

/*
 * The platform's part of start-up (init.c calls it after reading the
 * configuration): slots, the per-CPU mode, nodes.
 */
void _sheaf_platform_init(void)
{
	long ncpu = possible_cpus();
	bool exact = ncpu > 0 && ncpu <= SHEAF_MAX_SLOTS;
	if (ncpu <= 0)
		ncpu = sysconf(_SC_NPROCESSORS_CONF);
	if (ncpu < 1)
		ncpu = 1;
	_sheaf_nr_slots = (unsigned int)MIN(ncpu, SHEAF_MAX_SLOTS);
	if (exact)
		detect_rseq();
	detect_nodes();
	decide_percpu_mode();
	_sheaf_stats_on = _sheaf_config.stats;
}
