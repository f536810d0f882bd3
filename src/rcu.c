/* SPDX-License-Identifier: MIT */
/*
 * rcu.c - kfree_rcu(): RCU-deferred frees batched in sheaves, on liburcu
 * (flavor urcu-memb).
 *
 * Objects of a cache with sheaves go into the slot's rcu_free sheaf (the
 * empty spare, else an empty sheaf from the barn, else a new one allocated
 * with GFP_NOWAIT).  A full rcu_free sheaf is handed to RCU whole (the sheaf
 * worker below), before the slot is unlocked, so that a barrier that takes
 * the slot next cannot miss it.  After the grace period rcu_free_sheaf()
 * puts it into the barn of the node it was filled on as a full sheaf: its
 * objects serve allocations without ever going back to their slabs.  If the barn holds
 * its limit of full sheaves, the objects go to their slabs and the empty
 * sheaf is kept (barn) or freed.
 *
 * Everything else takes the per-object path: the object's own rcu_head goes
 * to the sheaf worker (two-argument form, queue_kfree_cb()), or a batch of
 * pointers does (one-argument form), or synchronize_rcu() then free when no
 * batch can be allocated; liburcu's call_rcu() only when no worker thread
 * can be started.
 *
 * SLAB_TYPESAFE_BY_RCU caches: the slab layer hands an empty slab's pages
 * to call_rcu() itself (slab.c); the barriers here wait for them too.
 *
 * liburcu asks call_rcu() callers to be registered threads: the read-side
 * lock it takes protects only the lookup of per-CPU call_rcu helper data,
 * which libsheaf never creates or frees (it uses the default helper
 * thread), so its own calls are correct from any thread.  Programs that
 * create per-CPU helpers must register every thread that frees through
 * RCU (docs/RCU.md).
 *
 * Lock order: slot lock -> worker.lock (a leaf); the worker finishes
 * sheaves taking barn and node locks like any other thread, never a slot
 * lock, and liburcu's callbacks (per-object paths) likewise.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <urcu.h>

#include "internal.h"


/* ------------------------------------------------ after a grace period */

/*
 * Recycle the sheaf into its node's barn as a full sheaf, or (barn at its
 * limit, no RCU credit) give the objects to their slabs.
 */
static void rcu_free_sheaf(struct slab_sheaf *sheaf)
{
	struct kmem_cache *s = sheaf->cache;
	struct node_barn *barn = s->barn[sheaf->node];
	unsigned int slot = sheaf_slot();
	/* Only full rcu_free sheaves are submitted for recycling (full at the
	 * capacity of then: an adaptive cache's may have moved since). */
	SHEAF_ASSERT(sheaf->size > 0 && sheaf->size <= s->sheaf_room);

	/* Readers are done with them: now they are free for ASan/valgrind. */
	for (unsigned int i = 0; i < sheaf->size; i++)
		track_free(s, sheaf->objects[i]);

	/* Only a full sheaf joins the barn's full list (its invariant). */
	bool full = sheaf->size > 0;
	if (full && (READ_ONCE(barn->nr_full) < cache_barn_limit(s) ||
		     barn_spend_rcu_credit(barn))) {
		size_t n = sheaf->size;
		_sheaf_barn_put_full(barn, sheaf);
		stat(s, SHEAF_STAT_BARN_PUT, slot);
		stat_add(s, SHEAF_STAT_RCU_SHEAF_RECYCLED, slot, n);
		atomic_fetch_add_explicit(&s->rcu_recycled, n, memory_order_relaxed);
		return;
	}
	if (full)
		stat(s, SHEAF_STAT_BARN_PUT_FAIL, slot);
	_sheaf_flush_sheaf(s, sheaf, SHEAF_STAT_SHEAF_FLUSH_OTHER, slot);
	if (!_sheaf_barn_put_empty(barn, sheaf, false))
		_sheaf_free_sheaf(s, sheaf, slot);
}

/* On a flush path: objects to slabs, sheaf freed. */
static void rcu_free_sheaf_nobarn(struct slab_sheaf *sheaf)
{
	struct kmem_cache *s = sheaf->cache;
	unsigned int slot = sheaf_slot();
	SHEAF_ASSERT(sheaf->size > 0 && sheaf->size <= s->sheaf_room);

	for (unsigned int i = 0; i < sheaf->size; i++)
		track_free(s, sheaf->objects[i]);

	_sheaf_discard_sheaf(s, sheaf, slot);
}

/*
 * The sheaf worker: full rcu_free sheaves wait for a grace period on a
 * libsheaf thread rather than in liburcu's call_rcu() queue.
 *
 * Why: liburcu's call_rcu() helper sleeps about 10 ms between batches of
 * callbacks, so at the rate sheaves make possible (tens of millions of
 * kfree_rcu() a second) ~700k objects would sit waiting at any time, tens of
 * MiB, and the recycled objects would come back cold.  The worker instead
 * takes every sheaf submitted so far, waits for one grace period with
 * liburcu's synchronize_rcu() (a membarrier, well under a millisecond), and
 * recycles them; sheaves submitted meanwhile form the next batch.  Grace
 * periods stay liburcu's; only the waiting is batched per sheaf list.
 * Between batches the worker waits SHEAF_RCU_BATCH_US, or three times the
 * last grace period when that is longer (batch_wait_us()): with threads
 * busy on every CPU a grace period took 2.3 ms in sheafbench's vma (50 us
 * in rcu-32, one busy thread), and waiting 3x as long made vma's writes
 * 24% faster (bench/ab.sh, 8 pairs) and left rcu and rcu-32 level.  Then
 * it goes on gathering until the batch holds SHEAF_RCU_BATCH_BYTES of
 * objects, or SHEAF_RCU_BATCH_MAX_US have passed since the last batch
 * (gather_locked()): a grace period is worth a membarrier to every CPU,
 * so it serves at least that much memory, while the threads that free
 * fast (rcu-32: GiB a second) reach it before the first wait is over.
 * A barrier ends the wait at once.
 *
 * The list is linked through the sheaf's rcu_head space: _link[0] = next,
 * _link[1] = how to finish it (recycle or to slabs).
 *
 * The worker also runs the per-object kfree_rcu() callbacks
 * (queue_kfree_cb(); linked in `cbs` through the rcu_head's next.next, the
 * function in its func): each waits the same grace period as the sheaves
 * taken with it.
 *
 * Invariants (under lock): submitted - completed = sheaves on `pending`,
 * plus those on `batch` (the current batch, not yet finished), plus
 * `processing` (the one being finished now), plus callbacks on `cbs` and
 * those of the batch taken while `busy`.  The worker thread is started
 * on the first submission (and again in a fork child).  worker.lock is a
 * leaf: never held while another libsheaf lock is taken.
 */
#ifndef SHEAF_RCU_BATCH_US
#define SHEAF_RCU_BATCH_US 500 /* at least this long between grace periods */
#endif
#define SHEAF_RCU_GP_SHARE 4      /* grace periods: at most 1/this of the time */
#define SHEAF_RCU_BATCH_MAX_US 10000
/* A batch gathers at least this many bytes of objects (or for
 * SHEAF_RCU_BATCH_MAX_US): the memory a grace period's interrupts pay for. */
#define SHEAF_RCU_BATCH_BYTES (1ul << 20)
/* What a per-object kfree_rcu() callback counts for (its size is not
 * looked up on the submitting path). */
#define SHEAF_RCU_CB_BYTES 64

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned int gather_us_override; /* sheaf_test_rcu_set_gather_us() */

/*
 * How long the next batch gathers at least after a grace period that took
 * gp_ns: SHEAF_RCU_BATCH_US, or long enough that grace periods take at most
 * 1/SHEAF_RCU_GP_SHARE of the worker's time, up to SHEAF_RCU_BATCH_MAX_US
 * (liburcu's call_rcu thread waits 10 ms).  A grace period is a membarrier
 * that interrupts every CPU running the process's threads, and the worker
 * spends it sending and waiting for those interrupts: with threads busy on
 * every CPU it is long, and back-to-back ones tax them; with the CPUs free
 * it is short, and short batches keep the recycled objects warm.
 */
static unsigned int batch_wait_us(uint64_t gp_ns, unsigned int max_us)
{
	uint64_t us = gp_ns * (SHEAF_RCU_GP_SHARE - 1) / 1000;
	return (unsigned int)MIN(MAX(us, (uint64_t)SHEAF_RCU_BATCH_US), (uint64_t)max_us);
}

/* The longest a batch gathers: SHEAF_RCU_BATCH_MAX_US, or the test hook's. */
static unsigned int batch_max_us(void)
{
	unsigned int o = __atomic_load_n(&gather_us_override, __ATOMIC_RELAXED);
	return o ? o : SHEAF_RCU_BATCH_MAX_US;
}

#define FINISH_RECYCLE ((void *)1)
#define FINISH_SLABS   ((void *)2)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;   /* work submitted */
	pthread_cond_t done;   /* a batch finished */
	pthread_cond_t idle;   /* the worker finished a batch (busy cleared) */
	pthread_cond_t gather; /* a barrier ends the gathering wait
				  (CLOCK_MONOTONIC: gather_init()) */
	struct slab_sheaf *pending;
	struct slab_sheaf *batch;       /* waited a grace period, to finish */
	struct slab_sheaf *processing;  /* being finished */
	struct rcu_head *cbs;  /* kfree_rcu() callbacks waiting (queue_kfree_cb) */
	size_t pending_bytes;  /* about what pending and cbs hold (a hint: a
				  fork child's requeued batch is not in it) */
	uint64_t submitted, completed;
	uint64_t batches;      /* grace periods the worker has waited */
	unsigned int waiters;  /* threads in worker_barrier() */
	bool started, sleeping;
	bool running;          /* the started worker reached its loop */
	bool busy;             /* a batch taken: in its grace period or finishing */
	bool forking;          /* fork() under way: take no new batch */
	bool gathering;        /* the worker waits on `gather` */
	bool gather_bytes;     /* ... for pending_bytes to reach SHEAF_RCU_BATCH_BYTES */
	bool gather_ready;     /* `gather` initialised */
} worker SHEAF_FORK_DATA = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
};

/*
 * The worker's counters (caller holds worker.lock): completed never
 * passes submitted, and while no batch is taken (!busy, so batch and
 * processing are empty) the difference is exactly what waits on pending
 * and cbs.  Walked only when at most WORKER_WALK_MAX are waiting (at a
 * high kfree_rcu() rate thousands may be, and the walk holds the lock
 * every submitter takes).
 */
#define WORKER_WALK_MAX 64

static __attribute__((unused)) bool worker_counts_ok_locked(void)
{
	if (worker.completed > worker.submitted)
		return false;
	uint64_t waiting = worker.submitted - worker.completed;
	if (worker.busy || waiting > WORKER_WALK_MAX)
		return true;
	uint64_t n = 0;
	for (struct slab_sheaf *sh = worker.pending; sh && n <= waiting;
	     sh = sh->_link[0])
		n++;
	for (struct rcu_head *h = worker.cbs; h && n <= waiting;
	     h = (struct rcu_head *)(void *)h->next.next)
		n++;
	return n == waiting && !worker.batch && !worker.processing;
}

static struct timespec deadline_after(const struct timespec *now, unsigned int us)
{
	struct timespec t = *now;
	t.tv_sec += us / 1000000;
	t.tv_nsec += (long)(us % 1000000) * 1000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

/*
 * Caller holds worker.lock: let the next batch gather (the lock dropped
 * meanwhile) for min_us microseconds, then until it holds
 * SHEAF_RCU_BATCH_BYTES (gather_bytes: the submission that gets it there
 * signals `gather`; not before, which would wake the worker for nothing)
 * or max_us have passed; a barrier that comes to wait for it
 * ends it at once (it signals `gather` too), and a fork() being prepared
 * at its next wake-up.
 */
static void gather_locked(unsigned int min_us, unsigned int max_us)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	struct timespec least = deadline_after(&now, min_us);
	struct timespec most = deadline_after(&now, max_us);	/* min_us <= max_us */
	bool least_passed = false;
	worker.gathering = true;
	while (!worker.waiters && !worker.forking) {
		if (least_passed && worker.pending_bytes >= SHEAF_RCU_BATCH_BYTES)
			break;
		if (pthread_cond_timedwait(&worker.gather, &worker.lock,
					   least_passed ? &most : &least) == ETIMEDOUT) {
			if (least_passed)
				break;
			least_passed = worker.gather_bytes = true;
		}
	}
	worker.gathering = worker.gather_bytes = false;
}

static void *sheaf_worker(void *arg)
{
	(void)arg;
	sheaf_lock(&worker.lock, LR_LEAF);
	worker.running = true;
	pthread_cond_broadcast(&worker.idle);
	for (;;) {
		while ((!worker.pending && !worker.cbs) || worker.forking) {
			worker.sleeping = true;
			pthread_cond_wait(&worker.wake, &worker.lock);
			worker.sleeping = false;
		}
		SHEAF_ASSERT(!worker.busy && !worker.batch && !worker.processing);
		SHEAF_ASSERT_EXPENSIVE(worker_counts_ok_locked());
		struct slab_sheaf *batch = worker.pending;
		struct rcu_head *cbs = worker.cbs;
		worker.pending = NULL;
		worker.cbs = NULL;
		worker.pending_bytes = 0;
		worker.busy = true;
		worker.batches++;
		sheaf_unlock(&worker.lock, LR_LEAF);

		uint64_t gp_start = mono_ns();
		synchronize_rcu();
		uint64_t gp_ns = mono_ns() - gp_start;

		/* The per-object callbacks, linked through next.next. */
		uint64_t ncb = 0;
		while (cbs) {
			struct rcu_head *h = cbs;
			cbs = (struct rcu_head *)(void *)h->next.next;
			h->func(h);
			ncb++;
		}
		sheaf_lock(&worker.lock, LR_LEAF);
		worker.completed += ncb;
		worker.batch = batch;
		while ((batch = worker.batch)) {
			worker.batch = batch->_link[0];
			worker.processing = batch;
			sheaf_unlock(&worker.lock, LR_LEAF);
			if (batch->_link[1] == FINISH_RECYCLE)
				rcu_free_sheaf(batch);
			else
				rcu_free_sheaf_nobarn(batch);
			sheaf_lock(&worker.lock, LR_LEAF);
			worker.processing = NULL;
			worker.completed++;
			SHEAF_ASSERT(worker.completed <= worker.submitted);
		}
		worker.busy = false;
		SHEAF_ASSERT_EXPENSIVE(worker_counts_ok_locked());
		pthread_cond_broadcast(&worker.idle);
		pthread_cond_broadcast(&worker.done);
		/*
		 * Let the next batch gather for a while (batch_wait_us()),
		 * then until it is worth a grace period: each interrupts
		 * every CPU running the process (membarrier), so back-to-back
		 * ones would tax the allocating threads.
		 */
		if (!worker.waiters) { /* a barrier does not wait */
			unsigned int max_us = batch_max_us();
			gather_locked(batch_wait_us(gp_ns, max_us), max_us);
		}
	}
	return NULL;
}

/*
 * Caller holds worker.lock.  Not while a fork() is being prepared:
 * pthread_create() may allocate (libsheaf-malloc), which would take locks
 * the prefork handler holds while this thread holds worker.lock, which the
 * handler takes last.  The caller then takes its path for "no worker".
 */
/* `gather` times out on CLOCK_MONOTONIC: a wall clock set back must not
 * keep the worker from its next grace period. */
static void gather_init(void)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&worker.gather, &attr);
	pthread_condattr_destroy(&attr);
	worker.gather_ready = true;
}

static void worker_start_locked(void)
{
	sheaf_lock_held(LR_LEAF);
	if (worker.started || worker.forking)
		return;
	if (!worker.gather_ready)
		gather_init();
	if (_sheaf_start_thread(sheaf_worker, "sheaf-rcu") == 0)
		worker.started = true;
}

/*
 * Submitting to the worker: worker_enter() takes worker.lock with a worker
 * thread running (started if need be), or returns false with the lock not
 * held when none can be started (the caller then waits or queues another
 * way); worker_submitted() counts one submission, wakes the worker and
 * drops the lock.
 */
static bool worker_enter(void)
{
	sheaf_lock(&worker.lock, LR_LEAF);
	worker_start_locked();
	if (likely(worker.started))
		return true;
	sheaf_unlock(&worker.lock, LR_LEAF);
	return false;
}

static void worker_submitted(size_t bytes)
{
	worker.submitted++;
	size_t before = worker.pending_bytes;
	worker.pending_bytes += bytes;
	if (worker.sleeping)
		pthread_cond_signal(&worker.wake);
	else if (worker.gather_bytes && before < SHEAF_RCU_BATCH_BYTES &&
		 worker.pending_bytes >= SHEAF_RCU_BATCH_BYTES)
		pthread_cond_signal(&worker.gather);	/* worth a grace period */
	sheaf_unlock(&worker.lock, LR_LEAF);
}

/*
 * Hand an rcu_free sheaf to RCU.  recycle: into the barn after the grace
 * period; else (flush paths) to slabs.  An empty sheaf is just kept or
 * freed.  If the worker cannot be started, the sheaf waits for a grace
 * period here.
 */
void _sheaf_rcu_submit_sheaf(struct kmem_cache *s, struct slab_sheaf *sheaf,
			     bool recycle, unsigned int slot)
{
	SHEAF_ASSERT(sheaf->cache == s && sheaf->size <= s->sheaf_room);
	/* Recycled sheaves join a barn's full list: only full ones (at the
	 * capacity the submitter read). */
	SHEAF_ASSERT(!recycle || sheaf->size > 0);
	if (!sheaf->size) {
		_sheaf_offer_empty(s, sheaf, slot);
		return;
	}
	sheaf->node = sheaf_node();
	sheaf->_link[1] = recycle ? FINISH_RECYCLE : FINISH_SLABS;
	if (unlikely(!worker_enter())) {
		synchronize_rcu();
		if (recycle)
			rcu_free_sheaf(sheaf);
		else
			rcu_free_sheaf_nobarn(sheaf);
		return;
	}
	sheaf->_link[0] = worker.pending;
	worker.pending = sheaf;
	worker_submitted((size_t)sheaf->size * s->size);
}

/* Wait until every sheaf submitted so far has been finished. */
static void worker_barrier(void)
{
	sheaf_lock(&worker.lock, LR_LEAF);
	SHEAF_ASSERT(worker.completed <= worker.submitted);
	SHEAF_ASSERT_EXPENSIVE(worker_counts_ok_locked());
	uint64_t target = worker.submitted;
	if (worker.completed < target)
		worker_start_locked();
	worker.waiters++;
	if (worker.sleeping)
		pthread_cond_signal(&worker.wake);
	if (worker.gathering)
		pthread_cond_signal(&worker.gather);
	while (worker.started && worker.completed < target)
		pthread_cond_wait(&worker.done, &worker.lock);
	worker.waiters--;
	sheaf_unlock(&worker.lock, LR_LEAF);
}


/* ------------------------------------------------- per-object paths */

/*
 * Per-object callbacks given to liburcu's call_rcu() (kfree_rcu()
 * callbacks when no worker thread could be started) and not finished:
 * incremented when queued, decremented at the end of the callback.  Those
 * the worker runs are covered by worker_barrier() and not counted here.
 * A kvfree_rcu barrier needs liburcu's rcu_barrier() only when this count
 * or the slab layer's SLAB_TYPESAFE_BY_RCU slabs
 * (_sheaf_slab_rcu_pending()) are not zero: rcu_barrier() allocates,
 * takes liburcu's locks and waits for the call_rcu helper (asleep up to
 * 10 ms between batches), all for nothing when libsheaf never used it.
 * (Counting the worker's callbacks too, as before, made every barrier
 * call it while any other thread had a kfree_rcu() queued; under ASan,
 * whose allocator keeps no lock across fork(), its calloc() racing a
 * fork() left the child's allocator locked: tests/test_fork.c.)
 */
static _Atomic long urcu_cb_pending;

static void urcu_cb_done(void)
{
	atomic_fetch_sub_explicit(&urcu_cb_pending, 1, memory_order_release);
}

/*
 * A kfree_rcu() callback, to the sheaf worker, whose batches wait one
 * grace period each about every SHEAF_RCU_BATCH_US (longer when grace
 * periods are slow or little is freed: gather_locked()), rather than to
 * liburcu's call_rcu() helper, which sleeps about 10 ms between batches: a
 * kvfree_rcu barrier then waits for the worker only (the kernel, too,
 * batches the per-object kfree_rcu() path itself, and its rcu_barrier()
 * does not wait for it: kvfree_rcu_barrier() does).  To liburcu's
 * call_rcu() as urcu_fn (fn, then urcu_cb_done()) when no worker can be
 * started.
 */
static void queue_kfree_cb(struct rcu_head *head, void (*fn)(struct rcu_head *),
			   void (*urcu_fn)(struct rcu_head *))
{
	if (unlikely(!worker_enter())) {
		atomic_fetch_add_explicit(&urcu_cb_pending, 1,
					  memory_order_relaxed);
		call_rcu(head, urcu_fn);
		return;
	}
	head->func = fn;
	head->next.next = (struct cds_wfcq_node *)(void *)worker.cbs;
	worker.cbs = head;
	worker_submitted(SHEAF_RCU_CB_BYTES);
}

/* liburcu's rcu_barrier(), when a libsheaf callback may be in its queue. */
static void cb_barrier(void)
{
	if (atomic_load_explicit(&urcu_cb_pending, memory_order_acquire) != 0 ||
	    _sheaf_slab_rcu_pending() != 0) /* SLAB_TYPESAFE_BY_RCU slabs */
		rcu_barrier();
}

static void kfree_rcu_cb(struct rcu_head *head)
{
	kfree(_sheaf_obj_start(head));
}

static void kfree_rcu_cb_urcu(struct rcu_head *head)
{
	kfree_rcu_cb(head);
	urcu_cb_done();
}

/*
 * The one-argument form without a sheaf: pointers collected in a batch
 * that is handed to the sheaf worker when full (or by a barrier).
 */
#define PTR_BATCH 508
struct ptr_batch {
	struct rcu_head rcu;
	size_t n;
	void *ptrs[PTR_BATCH];
};

static pthread_mutex_t batch_lock SHEAF_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
static struct ptr_batch *cur_batch;

static void ptr_batch_cb(struct rcu_head *head)
{
	struct ptr_batch *b = (struct ptr_batch *)(void *)head;
	for (size_t i = 0; i < b->n; i++)
		kfree(b->ptrs[i]);
	kfree(b);
}

static void ptr_batch_cb_urcu(struct rcu_head *head)
{
	ptr_batch_cb(head);
	urcu_cb_done();
}

/* Caller holds batch_lock. */
static void batch_submit_locked(void)
{
	sheaf_lock_held(LR_BATCH);
	if (cur_batch && cur_batch->n) {
		queue_kfree_cb(&cur_batch->rcu, ptr_batch_cb,
			       ptr_batch_cb_urcu);
		cur_batch = NULL;
	}
}

static bool batch_add(void *ptr)
{
	sheaf_lock(&batch_lock, LR_BATCH);
	if (!cur_batch) {
		cur_batch = _sheaf_kmalloc_internal(sizeof(*cur_batch), GFP_NOWAIT);
		if (!cur_batch) {
			sheaf_unlock(&batch_lock, LR_BATCH);
			return false;
		}
		cur_batch->n = 0;
	}
	cur_batch->ptrs[cur_batch->n++] = ptr;
	if (cur_batch->n == PTR_BATCH)
		batch_submit_locked();
	sheaf_unlock(&batch_lock, LR_BATCH);
	return true;
}

static void do_kvfree_call_rcu(struct rcu_head *head, void *ptr, void *caller)
{
	if (!ptr)
		return;
	sheaf_init();
	struct slab *slab = virt_to_slab(ptr);
	if (slab && (desc_flags(slab) & PG_SLAB)) {
		slab = _sheaf_check_object_in(NULL, slab, ptr, "kfree_rcu",
					      caller);
		struct kmem_cache *s = slab->slab_cache;
		if (!READ_ONCE(s->rcu_used))
			WRITE_ONCE(s->rcu_used, true);
		if (cache_has_sheaves(s) &&
		    (_sheaf_nr_nodes == 1 || slab->node == sheaf_node())) {
			if (_sheaf_pcs_kfree_rcu(s, ptr))
				return;
			stat_here(s, SHEAF_STAT_FREE_RCU_SHEAF_FAIL);
		}
	} else if (_sheaf_obj_start(ptr) != ptr) {
		_sheaf_report_invalid("kfree_rcu", "invalid pointer", ptr, NULL,
				      caller);
	}
	if (head) {
		queue_kfree_cb(head, kfree_rcu_cb, kfree_rcu_cb_urcu);
		return;
	}
	if (batch_add(ptr))
		return;
	synchronize_rcu();
	kfree(ptr);
}

SHEAF_EXPORT void sheaf_kvfree_call_rcu(struct rcu_head *head, void *ptr)
{
	do_kvfree_call_rcu(head, ptr, __builtin_return_address(0));
}

/* The kernel's name of the same function. */
SHEAF_EXPORT void kvfree_call_rcu(struct rcu_head *head, void *ptr)
{
	do_kvfree_call_rcu(head, ptr, __builtin_return_address(0));
}

/* ------------------------------------------------------------ barriers */


static void submit_batch(void)
{
	sheaf_lock(&batch_lock, LR_BATCH);
	batch_submit_locked();
	sheaf_unlock(&batch_lock, LR_BATCH);
}

SHEAF_EXPORT void kvfree_rcu_barrier_on_cache(struct kmem_cache *s)
{
	if (!s)
		return;
	cache_check_live(s, "kvfree_rcu_barrier_on_cache", __builtin_return_address(0));
	/* kfree_nolock()'s deferred frees too: every free made before the
	 * barrier is done after it. */
	_sheaf_deferred_drain(s);
	_sheaf_pcs_submit_rcu_sheaves(s);
	submit_batch();
	worker_barrier();
	cb_barrier();
}

SHEAF_EXPORT void kvfree_rcu_barrier(void)
{
	struct kmem_cache *s;
	sheaf_init();
	_sheaf_kmalloc_drain_deferred();
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	list_for_each_entry(s, &_sheaf_slab_caches, list) {
		_sheaf_deferred_drain(s);
		_sheaf_pcs_submit_rcu_sheaves(s);
	}
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	submit_batch();
	worker_barrier();
	cb_barrier();
}

SHEAF_EXPORT void sheaf_test_rcu_set_gather_us(unsigned int us)
{
	__atomic_store_n(&gather_us_override, us, __ATOMIC_RELAXED);
}

SHEAF_EXPORT unsigned long sheaf_test_rcu_worker_batches(void)
{
	sheaf_lock(&worker.lock, LR_LEAF);
	unsigned long n = (unsigned long)worker.batches;
	sheaf_unlock(&worker.lock, LR_LEAF);
	return n;
}

SHEAF_EXPORT bool sheaf_test_rcu_worker_gathering(void)
{
	sheaf_lock(&worker.lock, LR_LEAF);
	bool g = worker.gathering;
	sheaf_unlock(&worker.lock, LR_LEAF);
	return g;
}

SHEAF_EXPORT bool sheaf_test_rcu_worker_busy(void)
{
	sheaf_lock(&worker.lock, LR_LEAF);
	bool busy = worker.busy;
	sheaf_unlock(&worker.lock, LR_LEAF);
	return busy;
}

SHEAF_EXPORT size_t sheaf_rcu_recycled_objects(struct kmem_cache *s)
{
	return s ? atomic_load_explicit(&s->rcu_recycled, memory_order_relaxed) : 0;
}

/* ----------------------------------------------------------------- fork */

/*
 * Around fork(): liburcu's helper threads are paused and restarted, and the
 * sheaf worker's lock is taken last (it is a leaf).  The child has no
 * worker thread: the sheaves of the parent's current batch go back to
 * pending (a second grace period does no harm) and the next submission or
 * barrier starts a worker.  A sheaf the parent's worker was finishing at
 * that instant may be half done in the child: it is left alone (its objects
 * stay unused there) and counted as completed.
 */
void _sheaf_rcu_before_fork(void)
{
	call_rcu_before_fork();
}

/*
 * First thing before fork(), before any other libsheaf lock: let the
 * worker finish the batch it holds (its grace period and the finishing,
 * which takes barn, slab and page locks) and take no new one, so that the
 * child inherits neither liburcu's grace-period state mid-wait nor a batch
 * held only by the worker.  So fork() must not be called inside an RCU
 * read-side section (the grace period would wait for the forking thread).
 */
void _sheaf_rcu_quiesce_worker(void)
{
	sheaf_lock(&worker.lock, LR_LEAF);
	worker.forking = true;
	/* A worker just created may still be in its thread start (a
	 * sanitizer's runtime allocates there, under locks it does not hold
	 * across fork()): wait until it reached its loop too. */
	while (worker.busy || (worker.started && !worker.running))
		pthread_cond_wait(&worker.idle, &worker.lock);
	sheaf_unlock(&worker.lock, LR_LEAF);
}

void _sheaf_rcu_lock_worker(void)
{
	sheaf_lock(&worker.lock, LR_LEAF);
}

void _sheaf_rcu_unlock_worker(bool child)
{
	worker.forking = false;
	if (!child && (worker.pending || worker.cbs) && worker.sleeping)
		pthread_cond_signal(&worker.wake);
	if (child) {
		while (worker.batch) {
			struct slab_sheaf *sheaf = worker.batch;
			worker.batch = sheaf->_link[0];
			sheaf->_link[0] = worker.pending;
			worker.pending = sheaf;
		}
		if (worker.processing) {
			worker.processing = NULL;
			worker.completed++;
		}
		worker.started = worker.sleeping = worker.running = false;
		worker.waiters = 0;
		/* Waiters of the parent do not exist here. */
		pthread_cond_init(&worker.wake, NULL);
		pthread_cond_init(&worker.done, NULL);
		pthread_cond_init(&worker.idle, NULL);
		worker.gathering = worker.gather_bytes = false;
		/* The requeued batch's bytes are not counted: its sheaves
		 * wait at most SHEAF_RCU_BATCH_MAX_US more. */
		if (worker.gather_ready)
			gather_init();
	}
	sheaf_unlock(&worker.lock, LR_LEAF);
}

/*
 * The pointer batch's lock is held across an allocation (the batch
 * itself), so it comes before the cache list and every slot and page lock
 * in the order: the fork handlers take it right after quiescing the worker.
 */
void _sheaf_rcu_lock_batch(void)
{
	sheaf_lock(&batch_lock, LR_BATCH);
}

void _sheaf_rcu_unlock_batch(void)
{
	sheaf_unlock(&batch_lock, LR_BATCH);
}

void _sheaf_rcu_after_fork(bool child)
{
	if (child)
		call_rcu_after_fork_child();
	else
		call_rcu_after_fork_parent();
}
