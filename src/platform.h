/* SPDX-License-Identifier: MIT */
/*
 * platform.h - the bottom layer's internals (percpu.c): the slots, the
 * per-CPU mode and the rseq area, the nodes, the lock helpers and their
 * ranks, the clocks and the misuse reports that every layer above uses.
 * Included by internal.h, which holds the layers above it, one banner per
 * source file; split from it along that boundary, the first line of the
 * layer table (docs/ARCHITECTURE.md, "Layers, bottom up").
 */
#ifndef SHEAF_PLATFORM_H
#define SHEAF_PLATFORM_H

#include "types.h"

/* ====================================================== percpu.c: platform */

extern struct sheaf_config _sheaf_config;

extern unsigned int _sheaf_nr_slots;  /* at most SHEAF_MAX_SLOTS */
#define SHEAF_MAX_SLOTS 4096
extern unsigned int _sheaf_nr_nodes;
extern int _sheaf_cpu_node[];           /* slot/cpu -> node */
extern bool _sheaf_stats_on;            /* hot flag for counters */
extern bool _sheaf_initialized;
/*
 * True on the thread running sheaf_init()'s one-time set-up, while it runs:
 * an allocation it makes through the C library (libsheaf-malloc's malloc)
 * must not enter sheaf_init() again (its pthread_once would wait for
 * itself).  All of libsheaf's thread-locals are initial-exec (CMake), so
 * that reading one never calls __tls_get_addr, which may allocate.
 */
extern __thread bool _sheaf_in_init;

extern bool _sheaf_rseq_mode;  /* rseq sections in use (percpu.c decides) */
/* percpu.c: slots, per-CPU mode, nodes (after the configuration is read) */
void _sheaf_platform_init(void);

extern ptrdiff_t _sheaf_rseq_offset;  /* copy of __rseq_offset, 0 if none */
extern bool _sheaf_rseq_ok;
extern bool _sheaf_rseq_mm_cid;

static inline struct sheaf_rseq_area *sheaf_rseq(void)
{
	char *tp;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return (struct sheaf_rseq_area *)(tp + _sheaf_rseq_offset);
}

int _sheaf_getcpu_slow(void);
/* The calling thread's id (gettid()), cached per thread; init.c's fork
 * handler clears the child's cache. */
extern __thread int _sheaf_cached_tid;
int _sheaf_tid_slow(void);
static inline int sheaf_tid(void)
{
	int t = _sheaf_cached_tid;
	return likely(t) ? t : _sheaf_tid_slow();
}
/* Abort the process: stderr flushed, the abort hook (info.c's), abort(). */
SHEAF_NORETURN SHEAF_COLD void _sheaf_die(void);
int _sheaf_start_thread(void *(*fn)(void *), const char *name);
uint64_t _sheaf_coarse_ns(void);         /* CLOCK_MONOTONIC_COARSE */
void _sheaf_set_abort_hook(void (*fn)(void));
/* membarrier(PRIVATE_EXPEDITED_RSEQ): returns when done, else aborts. */
void _sheaf_rseq_fence(void);
/*
 * The remote-slot protocol (percpu.c) on any array of _sheaf_nr_slots
 * struct sheaf_pcs: own every slot from another thread (stop and freeze
 * everywhere, fence and settle until every slot is frozen; main's count
 * copied from the slot into main->size, and back by the unlock), and the
 * parts that fork() uses to fence for every cache at once and to freeze
 * the slots without touching their sheaves (stop, fence, settle until
 * true, then release: counts thawed, stop cleared).
 */
void _sheaf_slots_remote_lock(struct sheaf_pcs *pcs);
void _sheaf_slots_remote_unlock(struct sheaf_pcs *pcs);
void _sheaf_slots_reset(struct sheaf_pcs *pcs);         /* fork()ed child */
void _sheaf_slots_stop(struct sheaf_pcs *pcs);
bool _sheaf_slots_settle(struct sheaf_pcs *pcs);
void _sheaf_slots_release(struct sheaf_pcs *pcs);

/* The CPU the thread runs on now (a hint: it may move at once). */
static inline unsigned int sheaf_cpu(void)
{
	if (likely(_sheaf_rseq_ok)) {
		unsigned int c = READ_ONCE(sheaf_rseq()->cpu_id);
		if (likely(c < _sheaf_nr_slots))
			return c;
	}
	return (unsigned int)_sheaf_getcpu_slow();
}

/* The slot index the thread should use now (mm_cid when the kernel has it). */
static inline unsigned int sheaf_slot(void)
{
	if (likely(_sheaf_rseq_ok)) {
		struct sheaf_rseq_area *r = sheaf_rseq();
		unsigned int c = _sheaf_rseq_mm_cid ? READ_ONCE(r->mm_cid)
						    : READ_ONCE(r->cpu_id);
		if (likely(c < _sheaf_nr_slots))
			return c;
	}
	return (unsigned int)_sheaf_getcpu_slow();
}

static inline int sheaf_node(void)
{
	return _sheaf_cpu_node[sheaf_cpu()];
}

/*
 * Yield injection (SHEAF_DEBUG_YIELD=N, for tests): called right after a
 * slot, barn or node lock is taken, it yields the CPU about once in N
 * calls, so other threads on the same CPU run while the lock is held.
 */
void _sheaf_debug_yield_slow(void);
static inline void sheaf_debug_yield(void)
{
	if (unlikely(_sheaf_config.yield_every))
		_sheaf_debug_yield_slow();
}

/*
 * The node list and page-list locks are adaptive mutexes: they spin
 * briefly before sleeping, as the kernel's spinlocks would not sleep at
 * all, so that a contended hand-over costs no system call.  (The barn lock
 * is a pthread_spinlock_t, held for a few loads and stores: barn.c.)
 */
void _sheaf_spinlock_init(pthread_mutex_t *m);

#ifndef NDEBUG
#define SHEAF_LOCK_CHECK 1
void _sheaf_lock_acquire(enum sheaf_lock_rank r);
void _sheaf_lock_release(enum sheaf_lock_rank r);
void _sheaf_lock_held(enum sheaf_lock_rank r, const char *fn);
#define sheaf_lock_held(r) _sheaf_lock_held(r, __func__)
/* A lock taken without waiting (a trylock that succeeded): held from now
 * on, but no order to check, since it waited for nobody. */
void _sheaf_lock_tried(enum sheaf_lock_rank r);
#else
static inline void _sheaf_lock_tried(enum sheaf_lock_rank r) { (void)r; }
static inline void _sheaf_lock_acquire(enum sheaf_lock_rank r) { (void)r; }
static inline void _sheaf_lock_release(enum sheaf_lock_rank r) { (void)r; }
#define sheaf_lock_held(r) ((void)0)
#endif

static inline void sheaf_lock(pthread_mutex_t *m, enum sheaf_lock_rank r)
{
	_sheaf_lock_acquire(r);
	pthread_mutex_lock(m);
}

static inline void sheaf_unlock(pthread_mutex_t *m, enum sheaf_lock_rank r)
{
	pthread_mutex_unlock(m);
	_sheaf_lock_release(r);
}

/* The barn's lock, the one spin lock of the library (rank LR_BARN). */
static inline void sheaf_barn_lock(pthread_spinlock_t *l)
{
	_sheaf_lock_acquire(LR_BARN);
	pthread_spin_lock(l);
}

static inline void sheaf_barn_unlock(pthread_spinlock_t *l)
{
	pthread_spin_unlock(l);
	_sheaf_lock_release(LR_BARN);
}

/*
 * Take a lock only if it is free, never waiting: the paths of
 * kmalloc_nolock() and kfree_nolock(), which may run in a signal handler
 * whose thread holds any library lock, and the slow paths' drains of
 * deferred frees.  false: busy (held by another thread, or by this one
 * under the handler).  A lock so taken is recorded as held without an
 * order check (it waited for nobody), so a handler's trylock of a rank
 * below one its thread holds is legal; everything the holder then takes
 * must be tried too, or be of a higher rank.
 */
static inline bool sheaf_trylock(pthread_mutex_t *m, enum sheaf_lock_rank r)
{
	if (pthread_mutex_trylock(m) != 0)
		return false;
	_sheaf_lock_tried(r);
	return true;
}

static inline bool sheaf_barn_trylock(pthread_spinlock_t *l)
{
	if (pthread_spin_trylock(l) != 0)
		return false;
	_sheaf_lock_tried(LR_BARN);
	return true;
}

/* 16-byte compare-and-swap, sequentially consistent (lock cmpxchg16b). */
static inline bool cmpxchg16(void *ptr, unsigned __int128 old,
			     unsigned __int128 new_)
{
#ifdef SHEAF_HAVE_TSAN
	/* TSan models the __atomic form (and not __sync on 16 bytes). */
	return __atomic_compare_exchange_n((unsigned __int128 *)ptr, &old, new_,
					   false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
#else
	return __sync_bool_compare_and_swap((unsigned __int128 *)ptr, old, new_);
#endif
}

/* The reports of misuse, one line on stderr then _sheaf_die(): a stale
 * pointer to a destroyed cache (SLAB_DESTROYED), an invalid argument. */
SHEAF_NORETURN SHEAF_COLD void _sheaf_report_destroyed(const char *fn,
		struct kmem_cache *s, void *caller);
SHEAF_NORETURN SHEAF_COLD void _sheaf_report_invalid(const char *fn,
		const char *what, const void *addr, struct kmem_cache *s,
		void *caller);

#endif /* SHEAF_PLATFORM_H */
