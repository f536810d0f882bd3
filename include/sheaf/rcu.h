/* SPDX-License-Identifier: MIT */
/*
 * <sheaf/rcu.h> - kfree_rcu() and friends, on liburcu.
 *
 * libsheaf's RCU engine is liburcu (Debian liburcu-dev), flavor urcu-memb
 * (liburcu's default flavor).  This header includes <urcu.h>, so a program
 * gets liburcu's own API under its usual names, not hidden or wrapped:
 *
 *   rcu_register_thread() / rcu_unregister_thread()
 *   rcu_read_lock() / rcu_read_unlock()     readers of RCU-protected data
 *   synchronize_rcu(), call_rcu(), rcu_barrier()
 *   struct rcu_head                          embed it for kfree_rcu()
 *
 * Link with -lsheaf -lurcu-memb -lurcu-common (pkg-config libsheaf does).
 *
 * Rules (liburcu's, and the kernel's):
 *  - a thread must be registered before its first rcu_read_lock();
 *  - kfree_rcu() and the barriers work from any thread, registered or not
 *    (libsheaf never creates per-CPU call_rcu helpers, the only data the
 *    read-side lock inside liburcu's call_rcu() protects); a program that
 *    creates them (create_all_cpu_call_rcu_data()) must register every
 *    thread that frees through RCU (docs/RCU.md);
 *  - fork() while other threads are registered readers: the child inherits
 *    their registry entries but not the threads, and a grace period there
 *    (kfree_rcu_mightsleep(), the barriers, kmem_cache_destroy(), the
 *    recycling of RCU sheaves) may wait for ever or fault inside liburcu.
 *    Fork only with no other thread registered (or exec() at once);
 *  - kfree_rcu_mightsleep() may wait for a grace period: never call it
 *    inside a read-side critical section;
 *  - kvfree_rcu_barrier(), kvfree_rcu_barrier_on_cache() and
 *    kmem_cache_destroy() wait for RCU callbacks: never call them from a
 *    call_rcu() callback or inside a read-side critical section.
 */
#ifndef SHEAF_RCU_H
#define SHEAF_RCU_H

#if defined(RCU_MB) || defined(RCU_SIGNAL) || defined(RCU_QSBR) || defined(RCU_BP)
#error "libsheaf uses liburcu's urcu-memb flavor: include <sheaf/rcu.h> without selecting another flavor"
#endif
#include <urcu.h>

#include <sheaf/slab.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Free ptr after a grace period.  head: an rcu_head inside the object (the
 * two-argument form), or NULL (the one-argument form).  ptr NULL: no-op.
 *
 * An object of a cache with sheaves goes into the slot's rcu_free sheaf; a
 * full sheaf waits for a grace period whole (on libsheaf's RCU worker
 * thread, with liburcu's synchronize_rcu()) and then becomes a full sheaf
 * in the barn: its objects are allocated again without going back to
 * their slabs.  Without a sheaf (other caches, kmalloc, an object of
 * another node, no sheaf to be had, slot busy): with a head, the head goes
 * to the same RCU worker, which frees the object after the grace period of
 * its next batch; without one, the pointer joins a batch of pointers that
 * goes to the worker when full (or at a barrier), or, when no batch can be
 * allocated, synchronize_rcu() and an immediate free.  Only when no worker
 * thread can be started do these callbacks go to liburcu's call_rcu() (and
 * a full rcu_free sheaf waits in synchronize_rcu() in the caller).  A
 * pointer that is not libsheaf memory is reported and the process aborts.
 */
void sheaf_kvfree_call_rcu(struct rcu_head *head, void *ptr);
/* The same under the kernel's name (what its kvfree_rcu() macros call). */
void kvfree_call_rcu(struct rcu_head *head, void *ptr);

/*
 * Inline fast path (unless SHEAF_NO_INLINE): an object of a cache with
 * sheaves goes into the slot's rcu_free sheaf in one restartable section,
 * after the same checks as the inline kmem_cache_free(); the push that
 * fills the sheaf, and everything else, goes to sheaf_kvfree_call_rcu().
 */
#if defined(SHEAF_HAVE_RSEQ_ASM) && !defined(SHEAF_NO_INLINE) && !defined(SHEAF_BUILD)
static inline __attribute__((always_inline)) void
sheaf_kfree_rcu_inline(struct rcu_head *head, void *ptr)
{
	struct sheaf_pcs *pcs = sheaf_pcs_of_inline((uintptr_t)ptr);
	if (__builtin_expect(pcs != NULL, 1)) {
		int r;
		while ((r = sheaf_rseq_push_rcu(pcs, ptr)) == 2)
			;
		if (__builtin_expect(r == 0, 1))
			return;
	}
	sheaf_kvfree_call_rcu(head, ptr);
}
#define SHEAF_KFREE_RCU(head, ptr) sheaf_kfree_rcu_inline((head), (ptr))
#else
#define SHEAF_KFREE_RCU(head, ptr) sheaf_kvfree_call_rcu((head), (ptr))
#endif

#define kfree_rcu(ptr, rhf)                                                    \
	do {                                                                   \
		__typeof__(ptr) ___p = (ptr);                                  \
		if (___p)                                                      \
			SHEAF_KFREE_RCU(&___p->rhf, (void *)___p);             \
	} while (0)
#define kvfree_rcu(ptr, rhf) kfree_rcu(ptr, rhf)
#define kfree_rcu_mightsleep(ptr) sheaf_kvfree_call_rcu(NULL, (void *)(ptr))
#define kvfree_rcu_mightsleep(ptr) kfree_rcu_mightsleep(ptr)

/*
 * Wait until every kfree_rcu() issued before the call has freed its object:
 * partly filled rcu_free sheaves of every slot (and the pending pointer
 * batch) are submitted and waited for, and liburcu's rcu_barrier() is
 * called when libsheaf has callbacks of its own in liburcu's queue.  As in
 * the kernel, it does not wait for the caller's own call_rcu() callbacks:
 * rcu_barrier() does that.
 */
void kvfree_rcu_barrier(void);

/* The same for the objects of one cache (kmem_cache_destroy() calls it). */
void kvfree_rcu_barrier_on_cache(struct kmem_cache *s);

/*
 * Objects of s that came back through RCU as whole sheaves and were put in
 * the barn for allocation (never returned to their slabs), since creation.
 */
size_t sheaf_rcu_recycled_objects(struct kmem_cache *s);

/*
 * Test hook: whether the RCU worker holds a batch of sheaves now (waiting
 * for its grace period, or finishing it), so that a test can reach that
 * state without guessing how long the worker takes to wake.
 */
bool sheaf_test_rcu_worker_busy(void);
/*
 * Test hooks: make the longest wait of the worker between batches
 * (normally 10 ms: it waits 500 us, or three times the last grace period,
 * then until 1 MiB of objects wait) us microseconds, 0: back to normal;
 * whether the worker is in that wait now; how many grace periods it has
 * waited (batches taken) since the process started.
 */
void sheaf_test_rcu_set_gather_us(unsigned int us);
bool sheaf_test_rcu_worker_gathering(void);
unsigned long sheaf_test_rcu_worker_batches(void);

#ifdef __cplusplus
}
#endif
#endif /* SHEAF_RCU_H */
