/* SPDX-License-Identifier: MIT */
/*
 * slab_common.c - the cache layer: cache creation and destruction, shrink
 * and the public object API entry points.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#include <sheaf/rcu.h>

pthread_mutex_t _sheaf_slab_mutex SHEAF_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
struct list_head _sheaf_slab_caches = LIST_HEAD_INIT(_sheaf_slab_caches);

static struct kmem_cache *create_fail(const char *name, slab_flags_t flags,
				      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static struct kmem_cache *create_fail(const char *name, slab_flags_t flags,
				      const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sheaf: kmem_cache_create(\"%s\"): ", name ? name : "(null)");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (flags & SLAB_PANIC) {
		_sheaf_die();
	}
	errno = EINVAL;
	return NULL;
}

static void idle_start(void);

static void meta_free(struct kmem_cache *s)
{
	_sheaf_meta_pool_free(s->fork_state, s->fork_size);
	_sheaf_meta_free(s, s->meta_size);
}

/*
 * The sheaf capacity of a new cache whose layout is known (s->size, the
 * object stride, and s->flags).  Debug caches (the checked slow path only)
 * and SLAB_NO_SHEAVES caches: none, whatever was asked.
 *
 * SHEAF_DEFAULT_CAPACITY=auto is the kernel's 7.x model for the user's
 * caches: every one gets sheaves, the capacity computed from the stride
 * (sheaf_auto_capacity(): a 200-byte SLAB_HWCACHE_ALIGN cache has a
 * 256-byte stride and gets 28), and args->sheaf_capacity is a minimum
 * (the kernel raises the computed value to it); SLAB_NOLEAKTRACE opts out
 * as the kernel's kmemleak cache does.  Otherwise (the seeds' 6.18 model,
 * the default): args->sheaf_capacity, 0 meaning none, or for the caches
 * that asked for none a fixed SHEAF_DEFAULT_CAPACITY=N.  The kmalloc
 * caches are treated alike (kmalloc.c asks for sheaves itself under the
 * malloc replacement); the library's own caches keep what they asked.
 */
static unsigned int cache_sheaf_capacity(const struct kmem_cache *s,
					 const struct kmem_cache_args *args,
					 enum cache_kind kind)
{
	unsigned int cap = args->sheaf_capacity;
	if (s->flags & (SLAB_DEBUG_FLAGS | SLAB_NO_SHEAVES))
		return 0;
	if (kind == CACHE_INTERNAL || !_sheaf_config.default_capacity)
		return cap;
	if (_sheaf_config.default_capacity < 0)
		return (s->flags & SLAB_NOLEAKTRACE)
			? 0 : MAX(sheaf_auto_capacity(s->size), cap);
	return cap ? cap : (unsigned int)_sheaf_config.default_capacity;
}

/* Internal creation: arguments already validated; no sheaf_init(). */
struct kmem_cache *_sheaf_cache_create(const char *name, unsigned int size,
				       const struct kmem_cache_args *args,
				       slab_flags_t flags, enum cache_kind kind)
{
	/* SLAB_NO_USER_FLAGS: the boot-time (here: SLUB_DEBUG) flags stay off. */
	if (kind != CACHE_INTERNAL && !(flags & SLAB_NO_USER_FLAGS))
		flags = _sheaf_debug_flags_for(name, flags);

	/*
	 * Two allocations (struct kmem_cache): the struct and its statistics,
	 * then, once the layout (and so the sheaf capacity) is known, the
	 * fork-state block: [flush lock][nodes] then the classic cpu slots,
	 * or the slots' info line, the slots and the barns.
	 */
	size_t nslots = _sheaf_nr_slots;
	size_t off_stats = ALIGN_UP(sizeof(struct kmem_cache), (size_t)CACHE_LINE);
	size_t total = off_stats + nslots * sizeof(struct sheaf_stat_slot);
	char *mem = _sheaf_meta_alloc(total);
	if (!mem) {
		errno = ENOMEM;
		return NULL;
	}
	struct kmem_cache *s = (struct kmem_cache *)mem;
	s->meta_size = total;
	s->stats = (struct sheaf_stat_slot *)(mem + off_stats);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->object_size = size;
	s->flags = flags;
	s->ctor = args->ctor;
	s->kind = (uint8_t)kind;
	if (!_sheaf_calculate_sizes(s, args)) {
		_sheaf_meta_free(mem, total);
		errno = EINVAL;
		return NULL;
	}
	unsigned int cap = cache_sheaf_capacity(s, args, kind);

	size_t off_nodes = ALIGN_UP(sizeof(pthread_mutex_t), (size_t)CACHE_LINE);
	size_t off_cpu = off_nodes + _sheaf_nr_nodes * sizeof(struct kmem_cache_node);
	/* The slots follow their read-mostly info line (struct sheaf_pcs_info). */
	size_t off_pcs = off_cpu + (cap ? sizeof(struct sheaf_pcs_info)
				       : nslots * sizeof(struct kmem_cache_cpu));
	size_t off_barn = off_pcs + (cap ? nslots * sizeof(struct sheaf_pcs) : 0);
	size_t fork_size = off_barn + (cap ? _sheaf_nr_nodes * sizeof(struct node_barn) : 0);
	char *fk = _sheaf_meta_pool_alloc(fork_size);
	if (!fk) {
		_sheaf_meta_free(mem, total);
		errno = ENOMEM;
		return NULL;
	}
	s->fork_state = fk;
	s->fork_size = fork_size;
	s->cpu_slab = cap ? NULL : (struct kmem_cache_cpu *)(fk + off_cpu);
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		struct kmem_cache_node *kn =
			(struct kmem_cache_node *)(fk + off_nodes) + n;
		_sheaf_spinlock_init(&kn->list_lock);
		INIT_LIST_HEAD(&kn->partial);
		INIT_LIST_HEAD(&kn->full);
		s->node[n] = kn;
	}
	pthread_mutex_init(cache_flush_lock(s), NULL);
	s->hot.object_size = s->object_size;
	s->hot.size = s->size;
	s->hot.objects = s->objects;
	s->hot.reciprocal = UINT64_MAX / s->size + 1; /* sheaf_obj_index() */
	/* A power-of-two stride up to a page tiles page-aligned slabs exactly:
	 * an object boundary is then just an aligned address. */
	s->hot.pow2_mask = IS_POW2(s->size) && s->size <= PAGE_SIZE ? s->size - 1 : 0;
	if (cap) {
		s->hot.sheaf_capacity = cap;
		_sheaf_adapt_setup(s, cap); /* its room: what every sheaf holds */
		s->hot.pcs = (struct sheaf_pcs *)(fk + off_pcs);
		for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
			s->barn[n] = (struct node_barn *)(fk + off_barn) + n;
			_sheaf_barn_init(s->barn[n]);
		}
		if (!_sheaf_pcs_init(s)) {
			meta_free(s);
			errno = ENOMEM;
			return NULL;
		}
		_sheaf_update_inline(s);
	}

	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	if (cache_has_sheaves(s))
		_sheaf_idle_row_get(s);
	list_add_tail(&s->list, &_sheaf_slab_caches);
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	if (kind == CACHE_USER && cache_has_sheaves(s))
		idle_start();
	return s;
}

SHEAF_EXPORT struct kmem_cache *
__kmem_cache_create_args(const char *name, unsigned int size,
			 struct kmem_cache_args *args, slab_flags_t flags)
{
	struct kmem_cache_args def = { 0 };

	sheaf_init();
	if (!args)
		args = &def;
	if (!name || !*name)
		return create_fail(name, flags, "cache name is NULL or empty");
	if (strlen(name) >= sizeof(((struct kmem_cache *)0)->name))
		return create_fail(name, flags, "cache name longer than %zu bytes",
				   sizeof(((struct kmem_cache *)0)->name) - 1);
	if (size == 0 || size > SHEAF_MAX_OBJECT_SIZE)
		return create_fail(name, flags, "object size %u not in 1..%lu",
				   size, SHEAF_MAX_OBJECT_SIZE);
	if (flags & ~SHEAF_SLAB_VALID_FLAGS)
		return create_fail(name, flags, "unknown flags %#x",
				   flags & ~SHEAF_SLAB_VALID_FLAGS);
	if (args->align && (!IS_POW2(args->align) || args->align > PAGE_SIZE))
		return create_fail(name, flags,
				   "align %u is not a power of two up to %lu",
				   args->align, PAGE_SIZE);
	if (args->sheaf_capacity > SHEAF_MAX_CAPACITY)
		return create_fail(name, flags, "sheaf_capacity %u above the maximum %u",
				   args->sheaf_capacity, SHEAF_MAX_CAPACITY);
	if (args->usersize > size || args->useroffset > size - args->usersize)
		return create_fail(name, flags,
				   "usercopy region %u+%u outside the object",
				   args->useroffset, args->usersize);
	if (args->use_freeptr_offset) {
		if (!args->ctor && !(flags & SLAB_TYPESAFE_BY_RCU))
			return create_fail(name, flags,
				"freeptr_offset needs a ctor or SLAB_TYPESAFE_BY_RCU");
		if (args->freeptr_offset % sizeof(void *) ||
		    args->freeptr_offset + sizeof(void *) > size)
			return create_fail(name, flags,
				"freeptr_offset %u not pointer-aligned inside the object",
				args->freeptr_offset);
	}
	struct kmem_cache *s = _sheaf_cache_create(name, size, args, flags, CACHE_USER);
	if (!s && (flags & SLAB_PANIC)) {
		fprintf(stderr, "sheaf: kmem_cache_create(\"%s\"): out of memory\n", name);
		_sheaf_die();
	}
	return s;
}

SHEAF_EXPORT unsigned int kmem_cache_size(struct kmem_cache *s)
{
	return s ? s->object_size : 0;
}

SHEAF_EXPORT const char *kmem_cache_name(struct kmem_cache *s)
{
	return s ? s->name : NULL;
}

SHEAF_EXPORT unsigned int sheaf_cache_capacity(struct kmem_cache *s)
{
	return s ? cache_cap(s) : 0;
}

SHEAF_EXPORT int sheaf_cache_limits(struct kmem_cache *s, struct sheaf_cache_limits *l)
{
	if (!s || !l)
		return -EINVAL;
	cache_check_live(s, "sheaf_cache_limits", __builtin_return_address(0));
	bool sheaves = cache_has_sheaves(s);
	l->capacity = sheaves ? cache_cap(s) : 0;
	l->capacity_base = sheaves ? s->cap_base : 0;
	l->capacity_max = sheaves ? s->sheaf_room : 0;
	l->barn_limit = sheaves ? cache_barn_limit(s) : 0;
	l->adaptive = sheaves && s->adaptive;
	return 0;
}

/* Flush every CPU cache of s and release empty slabs. */
static void flush_and_shrink(struct kmem_cache *s)
{
	if (cache_has_sheaves(s))
		_sheaf_pcs_flush_all(s);
	else
		_sheaf_cpu_flush_all(s);
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
		_sheaf_shrink_node(s, (int)n);
}

/*
 * Free what kfree_nolock() deferred on s (slab.c, "deferred frees"),
 * waiting for a drain under way elsewhere: after it, every deferred free
 * made before the call is done.  Normal context, no lock held.
 */
void _sheaf_deferred_drain(struct kmem_cache *s)
{
	if (cache_debug(s))
		_sheaf_debug_drain_deferred(s, true);
	else
		_sheaf_slab_drain_deferred(s, true);
}

SHEAF_EXPORT size_t sheaf_cache_deferred_objects(struct kmem_cache *s)
{
	if (!s)
		return 0;
	long n = atomic_load_explicit(&s->deferred_nr, memory_order_relaxed);
	return n > 0 ? (size_t)n : 0;
}

/* ---------------------------------------------------------- idle drain */

/*
 * The idle thread: every SHEAF_IDLE_MS / 2 it walks the cache list (under
 * slab_mutex) and drains what the program stopped using, without any call
 * from it: slots and barns of sheaf caches idle for SHEAF_IDLE_MS
 * (_sheaf_pcs_drain_idle(), pcs_remote.c: idle for 2 looks in a row), the
 * frees kfree_nolock() deferred, and free huge spans past their
 * decay (_sheaf_pages_decay()).  So after a burst, a program idle for
 * 1.5 * SHEAF_IDLE_MS keeps no object in sheaves or barns.
 *
 * It is started by the first kmem_cache_create() of a cache with sheaves
 * (never from an allocation: libsheaf-malloc may be inside malloc), and
 * again in a fork()ed child by its first such call (the child has only
 * the thread that forked).  idle_state: 0 none, 1 running; `passes`
 * counts its walks (sheaf_test_idle_passes()).  It takes no lock of its
 * own: slab_mutex first, then what _sheaf_pcs_drain_idle() takes, all in
 * the fork order, so a fork() waits for a walk to end.
 */
static atomic_int idle_state;
static atomic_bool idle_alive;   /* set by the thread itself, once it runs */
static atomic_ulong idle_passes;
static atomic_ulong idle_drained;

static unsigned int idle_pass(void)
{
	struct kmem_cache *s;
	unsigned int drained = 0;
	/* Everything under slab_mutex: the fork handlers' light path
	 * (init.c) counts on it. */
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	list_for_each_entry(s, &_sheaf_slab_caches, list) {
		if (atomic_load_explicit(&s->deferred_nr, memory_order_relaxed) > 0)
			_sheaf_deferred_drain(s);
		if (cache_has_sheaves(s)) {
			drained += _sheaf_pcs_drain_idle(s, 2);
			_sheaf_adapt_look(s);
		}
	}
	_sheaf_pages_decay();
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	atomic_fetch_add_explicit(&idle_drained, drained, memory_order_relaxed);
	atomic_fetch_add_explicit(&idle_passes, 1, memory_order_release);
	return drained;
}

static void *idle_thread(void *arg)
{
	(void)arg;
	unsigned long ns = (unsigned long)_sheaf_config.idle_ms * 500000ul;
	struct timespec t = { (time_t)(ns / 1000000000ul), (long)(ns % 1000000000ul) };
	atomic_store(&idle_alive, true);
	for (;;) {
		while (nanosleep(&t, NULL) != 0 && errno == EINTR)
			;
		idle_pass();
	}
	return NULL;
}

static void idle_start(void)
{
	int none = 0;
	if (!_sheaf_config.idle_ms ||
	    !atomic_compare_exchange_strong(&idle_state, &none, 1))
		return;
	if (_sheaf_start_thread(idle_thread, "sheaf-idle"))
		atomic_store(&idle_state, 0); /* the next creation tries again */
}

/*
 * Whether the idle thread exists: set by the thread itself (idle_state
 * is set before pthread_create(), while only its creator exists), and it
 * never ends.
 */
bool _sheaf_idle_running(void)
{
	return atomic_load(&idle_alive);
}

/* fork: the child has no idle thread until its next kmem_cache_create(). */
void _sheaf_idle_after_fork(bool child)
{
	if (child) {
		atomic_store(&idle_alive, false);
		atomic_store(&idle_state, 0);
	}
}

SHEAF_EXPORT unsigned long sheaf_test_idle_pass(void)
{
	sheaf_init();
	return idle_pass();
}

SHEAF_EXPORT unsigned long sheaf_idle_drained(void)
{
	return atomic_load_explicit(&idle_drained, memory_order_relaxed);
}

SHEAF_EXPORT unsigned long sheaf_test_idle_passes(void)
{
	return atomic_load_explicit(&idle_passes, memory_order_acquire);
}

SHEAF_EXPORT int kmem_cache_shrink(struct kmem_cache *s)
{
	if (!s)
		return -EINVAL;
	cache_check_live(s, "kmem_cache_shrink", __builtin_return_address(0));
	_sheaf_deferred_drain(s);
	flush_and_shrink(s);
	_sheaf_pages_purge(true);
	/* The kernel's answer: 1 while the cache keeps any slab (objects in
	 * use, or objects another thread cached meanwhile), 0 when none. */
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++)
		if (atomic_load(&s->node[n]->nr_slabs))
			return 1;
	return 0;
}

/* Objects allocated and not freed; kfree_nolock()'s deferred frees count
 * as freed (they are drained first). */
static size_t slab_objects_inuse(struct kmem_cache *s)
{
	long total = 0;
	_sheaf_deferred_drain(s);
	size_t free_objs = sheaf_cache_cached_objects(s);
	for (unsigned int n = 0; n < _sheaf_nr_nodes; n++) {
		total += atomic_load(&s->node[n]->total_objects);
		free_objs += _sheaf_node_free_objects(s, (int)n);
	}
	return total > (long)free_objs ? (size_t)total - free_objs : 0;
}

SHEAF_EXPORT size_t sheaf_cache_objects_inuse(struct kmem_cache *s)
{
	if (!s)
		return 0;
	cache_check_live(s, "sheaf_cache_objects_inuse", __builtin_return_address(0));
	return slab_objects_inuse(s);
}

SHEAF_EXPORT int sheaf_test_hold_slot(struct kmem_cache *s, bool hold)
{
	if (!s)
		return -EINVAL;
	cache_check_live(s, "sheaf_test_hold_slot", __builtin_return_address(0));
	return cache_has_sheaves(s) ? _sheaf_pcs_test_hold(s, hold)
				    : _sheaf_cpu_test_hold(s, hold);
}

SHEAF_EXPORT size_t sheaf_cache_cached_objects(struct kmem_cache *s)
{
	if (!s)
		return 0;
	cache_check_live(s, "sheaf_cache_cached_objects", __builtin_return_address(0));
	return cache_has_sheaves(s) ? _sheaf_pcs_cached_objects(s)
				    : _sheaf_cpu_cached_objects(s);
}

SHEAF_EXPORT size_t sheaf_cache_slabs(struct kmem_cache *s)
{
	size_t n = 0;
	if (!s)
		return 0;
	cache_check_live(s, "sheaf_cache_slabs", __builtin_return_address(0));
	for (unsigned int i = 0; i < _sheaf_nr_nodes; i++)
		n += (size_t)atomic_load(&s->node[i]->nr_slabs);
	return n;
}

/*
 * The last DEAD_QUARANTINE destroyed caches keep their struct (flagged
 * SLAB_DESTROYED, everything else freed), so that a stale pointer to one
 * is reported rather than used; the oldest is unmapped when a newer one
 * comes (a pointer older than that is not detected: docs/API.md).  Under
 * slab_mutex.
 */
#define DEAD_QUARANTINE 64
static struct kmem_cache *dead_caches[DEAD_QUARANTINE];
static unsigned int dead_next;

/* s is off the cache list, its slabs and sheaves gone: keep its struct. */
static void cache_bury(struct kmem_cache *s)
{
	__atomic_store_n(&s->hot.inline_pcs, NULL, __ATOMIC_RELEASE);
	__atomic_or_fetch(&s->flags, SLAB_DESTROYED, __ATOMIC_RELEASE);
	_sheaf_meta_pool_free(s->fork_state, s->fork_size);
	s->fork_state = NULL;
	s->hot.pcs = NULL;
	s->cpu_slab = NULL;
	memset(s->node, 0, sizeof(s->node));
	memset(s->barn, 0, sizeof(s->barn));
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	struct kmem_cache *old = dead_caches[dead_next];
	dead_caches[dead_next] = s;
	dead_next = (dead_next + 1) % DEAD_QUARANTINE;
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	if (old)
		_sheaf_meta_free(old, old->meta_size);
}

SHEAF_EXPORT void kmem_cache_destroy(struct kmem_cache *s)
{
	if (!s)
		return;
	void *caller = __builtin_return_address(0);
	cache_check_live(s, "kmem_cache_destroy", caller);
	/* Two destroys at once: the second is as stale as after the first. */
	if (atomic_exchange_explicit(&s->destroying, true, memory_order_acq_rel))
		_sheaf_report_destroyed("kmem_cache_destroy", s, caller);
	/* Frees still waiting for a grace period first (the kernel's
	 * kvfree_rcu_barrier_on_cache()). */
	if (READ_ONCE(s->rcu_used))
		kvfree_rcu_barrier_on_cache(s);
	/* Deferred frees are frees: none is reported as a leak. */
	_sheaf_deferred_drain(s);
	flush_and_shrink(s);
	size_t live = slab_objects_inuse(s);
	long lent = atomic_load_explicit(&s->lent_sheaves, memory_order_relaxed);
	if (live && cache_debug(s))
		_sheaf_debug_leak_report(s, live);
	if (live || lent) {
		/* A lent sheaf, even an empty one, comes back to this cache
		 * (kmem_cache_return_sheaf()): the cache must stay. */
		fprintf(stderr,
			"sheaf: kmem_cache_destroy(\"%s\"): %zu objects remaining, "
			"%ld prefilled sheaves lent out; cache and its memory kept\n",
			s->name, live, lent);
		atomic_store_explicit(&s->destroying, false, memory_order_release);
		return;
	}
	sheaf_lock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	list_del(&s->list);
	if (cache_has_sheaves(s))
		_sheaf_idle_row_put(s);
	sheaf_unlock(&_sheaf_slab_mutex, LR_SLAB_MUTEX);
	if (cache_has_sheaves(s)) {
		/* flush_and_shrink() put it back to its base level: it holds
		 * none of the adaptive budget any more. */
		SHEAF_ASSERT(s->adapt_bytes == 0);
		_sheaf_pcs_destroy(s); /* the empty mains, to the sheaf store */
	}
	_sheaf_pages_purge(false);
	cache_bury(s);
}

/* ------------------------------------------------------------- objects */

/* The per-CPU cache of s (sheaves or the classic cpu slab); debug caches
 * have neither: the checked slow path. */
static inline void *alloc_cached(struct kmem_cache *s, gfp_t gfp)
{
	if (unlikely(cache_debug(s))) {
		unsigned int slot = sheaf_slot();
		stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
		return _sheaf_debug_alloc(s, gfp, NUMA_NO_NODE, slot);
	}
	return cache_has_sheaves(s) ? _sheaf_pcs_alloc(s, gfp)
				    : _sheaf_cpu_alloc(s, gfp);
}

/*
 * A request for a node: another node than the local one (or
 * __GFP_THISNODE) bypasses the per-CPU caches; the local node uses them but
 * checks the object, since a slot's cached objects may come from another
 * node (slots are mm_cids and threads move).
 */
static void *alloc_for_node(struct kmem_cache *s, gfp_t gfp, int node)
{
	unsigned int slot;
	if (unlikely(cache_debug(s))) {
		slot = sheaf_slot();
		stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
		return _sheaf_debug_alloc(s, gfp, node, slot);
	}
	if (node == sheaf_node() && !(gfp & __GFP_THISNODE)) {
		void *obj = alloc_cached(s, gfp);
		if (!obj)
			return NULL;
		struct slab *slab = virt_to_slab(obj);
		if (likely(slab->node == node))
			return obj;
		/* Straight back to its slab: the user never saw it, and the
		 * allocation was counted already. */
		slot = sheaf_slot();
		_sheaf_slab_free(s, slab, obj, obj, 1, slot);
	} else {
		slot = sheaf_slot();
		stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
	}
	stat(s, SHEAF_STAT_ALLOC_NODE_MISMATCH, slot);
	return _sheaf_alloc_single(s, gfp, node, gfp & __GFP_THISNODE, slot);
}

/* Between two tries of a __GFP_NOFAIL allocation: let memory come back. */
void _sheaf_nofail_wait(void)
{
	usleep(1000);
}

void *_sheaf_slab_alloc(struct kmem_cache *s, gfp_t gfp, int node)
{
	void *obj;
	if (should_fail(SHEAF_FAULT_SLAB, s, s->object_size, gfp))
		return NULL;
	for (;;) {
		obj = likely(node == NUMA_NO_NODE) ? alloc_cached(s, gfp)
						   : alloc_for_node(s, gfp, node);
		if (likely(obj) || !(gfp & __GFP_NOFAIL))
			break;
		_sheaf_nofail_wait();
	}
	track_alloc(s, obj);
	if (obj && (gfp & __GFP_ZERO))
		memset(obj, 0, s->object_size);
	return obj;
}

void _sheaf_slab_free_obj(struct kmem_cache *s, struct slab *slab, void *obj,
			  const char *fn, void *caller)
{
	if (unlikely(cache_debug(s))) {
		unsigned int slot = sheaf_slot();
		if (_sheaf_debug_free(s, slab, obj, slot))
			stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
	} else if (cache_has_sheaves(s))
		_sheaf_pcs_free(s, slab, obj);
	else
		_sheaf_cpu_free(s, slab, obj, fn, caller);
}

/*
 * kmalloc_nolock()'s object of s (a kmalloc cache): the per-CPU cache of
 * the local node (the sheaves' section or slot, or the classic fast
 * path), then the slab layer, every lock only tried; debug caches take
 * their checked path, the same way.  gfp: __GFP_ZERO matters.  NULL when
 * nothing could be had without waiting or mapping memory.  No failure
 * injection at the slab point (the kernel's kmalloc_nolock() skips
 * should_failslab() too); the page point applies.
 */
void *_sheaf_cache_alloc_nolock(struct kmem_cache *s, gfp_t gfp, int node)
{
	void *obj = NULL;
	unsigned int slot;
	if (unlikely(cache_debug(s))) {
		slot = sheaf_slot();
		stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
		/* The node first, then the others, as below. */
		int first = node == NUMA_NO_NODE ? sheaf_node() : node;
		for (unsigned int i = 0; !obj && i < _sheaf_nr_nodes; i++)
			obj = _sheaf_debug_alloc(s, SHEAF_GFP_NOLOCK,
						 (first + (int)i) % (int)_sheaf_nr_nodes, slot);
	} else {
		/* A request for another node bypasses the per-CPU caches (the
		 * node is a preference here: the other nodes follow, and the
		 * local node's per-CPU cache may hold another node's object). */
		if (node == NUMA_NO_NODE || _sheaf_nr_nodes == 1 || node == sheaf_node())
			obj = cache_has_sheaves(s) ? _sheaf_pcs_alloc_nolock(s)
						   : _sheaf_cpu_alloc_nolock(s);
		if (!obj) {
			slot = sheaf_slot();
			stat(s, SHEAF_STAT_ALLOC_SLOWPATH, slot);
			obj = _sheaf_alloc_single_nolock(s, node, slot);
		}
	}
	track_alloc(s, obj);
	if (obj && (gfp & __GFP_ZERO))
		memset(obj, 0, s->object_size);
	return obj;
}

/*
 * kfree_nolock() of a checked object of s (any cache), already given to
 * the sanitizers (track_free()): the per-CPU cache, else its slab, without
 * waiting; else (a busy slot and list_lock, or no room without a flush)
 * the cache's deferred frees.  A debug cache's free is always deferred:
 * its checked free waits for list_lock.
 */
void _sheaf_cache_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj)
{
	if (likely(!cache_debug(s))) {
		if (cache_has_sheaves(s) ? _sheaf_pcs_free_nolock(s, slab, obj)
					 : _sheaf_cpu_free_nolock(s, slab, obj))
			return;
		unsigned int slot = sheaf_slot();
		if (_sheaf_slab_free_nolock(s, slab, obj, slot)) {
			stat(s, SHEAF_STAT_FREE_SLOWPATH, slot);
			return;
		}
		deferred_push(s, obj);
		return;
	}
	/* The link is the free pointer, metadata outside the object. */
	_sheaf_meta_access_begin();
	deferred_push(s, obj);
	_sheaf_meta_access_end();
}

static inline bool alloc_args_ok(struct kmem_cache *s, gfp_t gfp, int node)
{
	if (unlikely(!s || !sheaf_gfp_ok(gfp) ||
		     (node != NUMA_NO_NODE &&
		      (node < 0 || node >= (int)_sheaf_nr_nodes)))) {
		errno = EINVAL;
		return false;
	}
	return true;
}

SHEAF_EXPORT void *kmem_cache_alloc(struct kmem_cache *s, gfp_t gfp)
{
	if (!alloc_args_ok(s, gfp, NUMA_NO_NODE))
		return NULL;
	return _sheaf_slab_alloc(s, gfp, NUMA_NO_NODE);
}

SHEAF_EXPORT void *kmem_cache_zalloc(struct kmem_cache *s, gfp_t gfp)
{
	return kmem_cache_alloc(s, gfp | __GFP_ZERO);
}

SHEAF_EXPORT void *kmem_cache_alloc_node(struct kmem_cache *s, gfp_t gfp, int node)
{
	if (!alloc_args_ok(s, gfp, node))
		return NULL;
	return _sheaf_slab_alloc(s, gfp, node);
}

SHEAF_EXPORT void kmem_cache_free(struct kmem_cache *s, void *obj)
{
	if (!obj)
		return;
	if (unlikely(!s))
		_sheaf_report_invalid("kmem_cache_free", "NULL cache for",
				      obj, NULL, __builtin_return_address(0));
	struct slab *slab = _sheaf_check_object(s, obj, "kmem_cache_free",
						__builtin_return_address(0));
	if (unlikely(!slab))
		return;
	track_free(s, obj);
	_sheaf_slab_free_obj(s, slab, obj, "kmem_cache_free",
			     __builtin_return_address(0));
}

SHEAF_EXPORT int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t gfp,
				       size_t nr, void **p)
{
	if (!alloc_args_ok(s, gfp, NUMA_NO_NODE))
		return 0;
	cache_check_live(s, "kmem_cache_alloc_bulk", __builtin_return_address(0));
	if (unlikely(nr && !p)) {
		errno = EINVAL;
		return 0;
	}
	if (!nr || should_fail(SHEAF_FAULT_SLAB, s, s->object_size, gfp))
		return 0;
	if (cache_has_sheaves(s)) {
		if (!_sheaf_pcs_alloc_bulk(s, gfp, nr, p))
			return 0;
	} else {
		for (size_t i = 0; i < nr; i++) {
			p[i] = alloc_cached(s, gfp);
			if (unlikely(!p[i])) {
				/* Back untracked: the user never had them. */
				for (size_t j = 0; j < i; j++)
					_sheaf_slab_free_obj(s, virt_to_slab(p[j]), p[j],
							     "kmem_cache_alloc_bulk", NULL);
				return 0;
			}
		}
	}
	for (size_t i = 0; i < nr; i++)
		track_alloc(s, p[i]);
	if (gfp & __GFP_ZERO)
		for (size_t i = 0; i < nr; i++)
			memset(p[i], 0, s->object_size);
	return (int)nr;
}

SHEAF_EXPORT void kmem_cache_free_bulk(struct kmem_cache *s, size_t nr, void **p)
{
	void *caller = __builtin_return_address(0);
	if (!p)
		return;
	for (size_t i = 0; i < nr; i++) {
		void *obj = p[i];
		if (!obj)
			continue;
		if (!s) {
			/* Derived per object, as kfree() does (kmalloc too). */
			kfree(obj);
			continue;
		}
		struct slab *slab = _sheaf_check_object(s, obj,
							"kmem_cache_free_bulk", caller);
		if (unlikely(!slab))
			continue;
		track_free(s, obj);
		if (!cache_has_sheaves(s)) {
			_sheaf_slab_free_obj(s, slab, obj, "kmem_cache_free_bulk",
					     caller);
			continue;
		}
		/* A run of checked objects goes to the sheaves at once. */
		size_t j = i + 1;
		while (j < nr && p[j] &&
		       _sheaf_check_object(s, p[j], "kmem_cache_free_bulk", caller)) {
			track_free(s, p[j]);
			j++;
		}
		_sheaf_pcs_free_bulk(s, j - i, &p[i]);
		i = j - 1;
	}
}

