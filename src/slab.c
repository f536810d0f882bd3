/* SPDX-License-Identifier: MIT */
/*
 * slab.c - slabs: object layout, per-node partial lists, and the lockless
 * free of objects to their slab.
 *
 * Slab states (struct slab):
 *
 *   state     frozen  on_partial  freelist     who may take objects
 *   cpu        1       0          remote frees the owning CPU slot only
 *   partial    0       1          non-empty    list_lock holders
 *   full       0       0          NULL         nobody (unlisted)
 *   transit    0       0          non-empty    nobody; being put on the list
 *
 * (freelist, counters) change by one 16-byte compare-and-swap.  A free
 * takes list_lock only when it moves the slab between lists: a full,
 * unfrozen slab gets its first free object (to partial) or a slab becomes
 * empty while the node keeps min_partial slabs (discard).  Objects are
 * taken from a non-frozen slab only under list_lock, so the slab freelist
 * has a single popper and no ABA.
 *
 * Lock contracts: every function here is entered and left with no lock
 * held unless its comment says otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <urcu.h>

#include "internal.h"

typedef union {
	struct {
		void *freelist;
		unsigned long counters;
	};
	unsigned __int128 full;
} fc_t;

static inline fc_t slab_read(struct slab *slab)
{
	fc_t v;
	v.freelist = smp_load_acquire(&slab->freelist);
	v.counters = READ_ONCE(slab->counters);
	return v;
}

static inline unsigned int fc_inuse(unsigned long counters)
{
	struct slab t;
	t.counters = counters;
	return t.inuse;
}

static inline unsigned long fc_set(unsigned long counters, unsigned inuse,
				   unsigned frozen)
{
	struct slab t;
	t.counters = counters;
	t.inuse = inuse & 0xffff;
	t.frozen = frozen & 1;
	return t.counters;
}

static inline bool fc_frozen(unsigned long counters)
{
	struct slab t;
	t.counters = counters;
	return t.frozen;
}

static inline unsigned int fc_objects(unsigned long counters)
{
	struct slab t;
	t.counters = counters;
	return t.objects;
}

/*
 * The invariants of struct kmem_cache_node, walked (caller holds
 * n->list_lock): nr_partial == length(partial), and every slab there is
 * s's, of this node, not frozen, on_partial, with a free object (objects
 * are taken from a listed slab only under list_lock, so its freelist,
 * which lockless frees only grow, cannot empty meanwhile) and 0 <= inuse
 * <= objects.  Only while nr_partial <= max (a stress run keeps hundreds
 * of partial slabs, and the callers on the allocation paths pass
 * NODE_WALK_MAX); not for debug caches, whose lists debug.c keeps (a
 * repair with SHEAF_DEBUG_ABORT=0 may leave a listed slab without free
 * objects).
 */
#define NODE_WALK_MAX 32

static __attribute__((unused)) bool node_partial_ok_locked(struct kmem_cache *s,
							    int node,
							    unsigned long max)
{
	struct kmem_cache_node *n = get_node(s, node);
	unsigned long len = 0;
	struct slab *slab;
	if (cache_debug(s) || n->nr_partial > max)
		return true;
	list_for_each_entry(slab, &n->partial, slab_list) {
		fc_t v = slab_read(slab);
		if (++len > n->nr_partial || slab->slab_cache != s ||
		    slab->node != node || !slab->on_partial ||
		    fc_frozen(v.counters) || !v.freelist ||
		    fc_inuse(v.counters) > fc_objects(v.counters))
			return false;
	}
	return len == n->nr_partial;
}

/* --------------------------------------------------------------- layout */

static unsigned int calculate_alignment(slab_flags_t flags, unsigned int align,
					unsigned int size)
{
	if (flags & SLAB_HWCACHE_ALIGN) {
		unsigned int ralign = CACHE_LINE;
		while (size <= ralign / 2)
			ralign /= 2;
		align = MAX(align, ralign);
	}
	align = MAX(align, (unsigned int)ARCH_KMALLOC_MINALIGN);
	return ALIGN_UP(align, (unsigned int)sizeof(void *));
}


/*
 * The kernel's rule: the smallest order (up to 3) that holds at least
 * min_objects with at most 1/16 (then 1/8, 1/4) of the slab wasted; else
 * the smallest order that holds one object.
 */
static unsigned int calculate_order(unsigned int size)
{
	unsigned int nr = _sheaf_nr_slots, fls = 0;
	while (nr) {
		fls++;
		nr >>= 1;
	}
	unsigned int min_objects = 4 * (fls + 1);
	unsigned int max_order = 3;

	for (unsigned int mo = min_objects; mo >= 1; mo /= 2) {
		for (unsigned int fract = 16; fract >= 4; fract /= 2) {
			for (unsigned int order = get_order(size);
			     order <= max_order; order++) {
				size_t slab_size = PAGE_SIZE << order;
				size_t n = slab_size / size;
				if (n < mo || n > 32767)
					continue;
				if (slab_size % size <= slab_size / fract)
					return order;
			}
		}
		if (mo == 1)
			break;
	}
	return get_order(size);
}

bool _sheaf_calculate_sizes(struct kmem_cache *s,
			    const struct kmem_cache_args *args)
{
	unsigned int size = ALIGN_UP(s->object_size, (unsigned int)sizeof(void *));
	bool outside = (s->ctor || (s->flags & SLAB_TYPESAFE_BY_RCU)) &&
		       !args->use_freeptr_offset;

	if (outside) {
		s->offset = size;
		size += sizeof(void *);
	} else if (args->use_freeptr_offset) {
		s->offset = args->freeptr_offset;
	} else {
		/* The middle of the object, away from small overflows. */
		s->offset = ALIGN_DOWN(s->object_size / 2, (unsigned int)sizeof(void *));
		if (s->offset + sizeof(void *) > size)
			s->offset = 0;
	}
	s->inuse = size;
	s->align = calculate_alignment(s->flags, args->align, s->object_size);
	size = ALIGN_UP(size, s->align);
	s->size = size;
	if (s->flags & SLAB_DEBUG_FLAGS) {
		/* Red zones, free pointer outside the object, tracks. */
		_sheaf_debug_layout(s);
		size = s->size;
	}
	s->order = calculate_order(size);
	if (s->order > MAX_ORDER)
		return false;
	s->objects = (unsigned int)((PAGE_SIZE << s->order) / size);
	if (s->objects == 0 || s->objects > 32767)
		return false;
	/* The fallback order of _sheaf_new_slab() (the kernel's s->min). */
	s->min_order = get_order(size);
	unsigned int lg = 0;
	for (unsigned int x = size; x > 1; x >>= 1)
		lg++;
	s->min_partial = MIN(10u, MAX(5u, lg / 2));
	/* struct kmem_cache's layout invariants. */
	SHEAF_ASSERT(s->size % s->align == 0);
	SHEAF_ASSERT(s->offset + sizeof(void *) <= s->size);
	SHEAF_ASSERT((size_t)s->objects * s->size <= (size_t)PAGE_SIZE << s->order);
	SHEAF_ASSERT(s->min_order <= s->order && order_objects(s, s->min_order) >= 1);
	return true;
}

/* ---------------------------------------------------------- slab life */

/*
 * A new slab for s on node, with all objects on its freelist, unfrozen.
 * The kernel's allocate_slab(): the cache's order first; when those pages
 * are not to be had (a caller that may not block finds only smaller free
 * runs, no arena can be mapped, or an injected failure), the smallest
 * order that holds one object (order_fallback).  Unlike the kernel, the
 * first try is not made weaker than the second: mapping an arena is cheap
 * and there is no reclaim to spare.  A fallback slab has fewer objects
 * (slab->objects, as the kernel's slab->objects), which the exported
 * paths' pointer checks use, and no entries in the page map of slots:
 * the inline free paths (libsheaf-malloc's free(), and the kfree_rcu()
 * and kmem_cache_free() of the public headers), whose boundary
 * test takes the cache's order for the slab's (struct sheaf_pcs_info),
 * find none and leave its objects to the exported paths, which check
 * them against the slab's own objects (test_order_fallback).
 */
struct slab *_sheaf_new_slab(struct kmem_cache *s, gfp_t gfp, int node,
			     unsigned int slot)
{
	unsigned int order = s->order, objects = s->objects;
	struct slab *slab = _sheaf_pages_alloc(order, node, gfp);
	if (unlikely(!slab)) {
		if (s->min_order == order)
			return NULL;
		order = s->min_order;
		objects = order_objects(s, order);
		slab = _sheaf_pages_alloc(order, node, gfp);
		if (!slab)
			return NULL;
		stat(s, SHEAF_STAT_ORDER_FALLBACK, slot);
	}
	SHEAF_ASSERT(slab->order == order);
	char *base = slab_address(slab);
	for (size_t i = 0; i < (1ul << order); i++)
		slab[i].slab_cache = s;
	if (s->hot.pcs && order == s->order)
		_sheaf_pcsmap_set(slab, 1ul << order, s->hot.pcs);
	slab->on_partial = 0;
	slab->objects = objects & 0x7fff;
	slab->inuse = 0;
	slab->frozen = 0;
	base += s->red_left_pad;
	for (unsigned int i = 0; i < objects; i++) {
		char *obj = base + (size_t)i * s->size;
		if (unlikely(cache_debug(s)))
			_sheaf_debug_new_object(s, obj);
		if (s->ctor)
			s->ctor(obj);
		set_freepointer(s, obj, i + 1 < objects ? obj + s->size : NULL);
		if (unlikely(_sheaf_track_on))
			_sheaf_track_new_object(s, obj);
	}
	slab->freelist = base;
	__atomic_store_n(&slab->flags, PG_SLAB, __ATOMIC_RELEASE);
	struct kmem_cache_node *n = get_node(s, slab->node);
	atomic_fetch_add_explicit(&n->nr_slabs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n->total_objects, objects, memory_order_relaxed);
	atomic_fetch_add_explicit(&n->nr_pages, 1l << order, memory_order_relaxed);
	stat(s, SHEAF_STAT_ALLOC_SLAB, slot);
	return slab;
}

/* Take every object of a slab nobody else can see yet; freeze it. */
void *_sheaf_freeze_new_slab(struct slab *slab)
{
	void *fl = slab->freelist;
	slab->freelist = NULL;
	slab->inuse = slab->objects;
	slab->frozen = 1;
	return fl;
}

/*
 * SLAB_TYPESAFE_BY_RCU: an empty slab's pages go back to the page layer
 * only after a grace period (readers that found a pointer into the slab
 * may still read it), through liburcu's call_rcu() on the slab's list
 * link.  rcu_pending counts the slabs in flight, so that the RCU layer's
 * barriers wait for them (_sheaf_slab_rcu_pending()).  liburcu's
 * call_rcu() is correct from any thread here: rcu.c, "registered threads".
 */
_Static_assert(sizeof(struct rcu_head) <= sizeof(struct list_head),
	       "a slab's list link must hold a struct rcu_head");
static _Atomic long rcu_pending;

static void free_slab_rcu(struct rcu_head *head)
{
	struct slab *slab = container_of((struct list_head *)(void *)head,
					 struct slab, slab_list);
	_sheaf_pages_free(slab);
	atomic_fetch_sub_explicit(&rcu_pending, 1, memory_order_release);
}

long _sheaf_slab_rcu_pending(void)
{
	return atomic_load_explicit(&rcu_pending, memory_order_acquire);
}

/* Give an empty, unlisted slab back to the page layer. */
void _sheaf_discard_slab(struct kmem_cache *s, struct slab *slab,
			 unsigned int slot)
{
	struct kmem_cache_node *n = get_node(s, slab->node);
	atomic_fetch_sub_explicit(&n->nr_slabs, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&n->total_objects, slab->objects, memory_order_relaxed);
	atomic_fetch_sub_explicit(&n->nr_pages, 1l << slab->order, memory_order_relaxed);
	stat(s, SHEAF_STAT_FREE_SLAB, slot);
	__atomic_store_n(&slab->flags, 0, __ATOMIC_RELEASE);
	if (unlikely(_sheaf_track_on))
		_sheaf_track_release(slab_address(slab), PAGE_SIZE << slab->order);
	if (s->flags & SLAB_TYPESAFE_BY_RCU) {
		/* readers may still look inside */
		atomic_fetch_add_explicit(&rcu_pending, 1, memory_order_relaxed);
		call_rcu((struct rcu_head *)(void *)&slab->slab_list, free_slab_rcu);
	} else {
		_sheaf_pages_free(slab);
	}
}

/*
 * Take all free objects of a slab on n's partial list and freeze it for a
 * CPU slot.  Caller holds n->list_lock; the slab leaves the list.
 */
static void *freeze_partial_locked(struct kmem_cache *s,
				   struct kmem_cache_node *n, struct slab *slab,
				   unsigned int slot)
{
	sheaf_lock_held(LR_LIST);
	fc_t old, new_;
	SHEAF_ASSERT(slab->on_partial);
	slab_remove_partial(n, slab);
	do {
		old = slab_read(slab);
		new_.freelist = NULL;
		new_.counters = fc_set(old.counters, slab->objects, 1);
	} while (!cmpxchg16(slab, old.full, new_.full) &&
		 (stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_FAIL, slot), true));
	/* It was listed: not frozen, with a free object. */
	SHEAF_ASSERT(!fc_frozen(old.counters) && old.freelist);
	return old.freelist;
}

/*
 * A partial slab of node (then, unless exact, of any node), frozen, with
 * its freelist in *freelist; NULL if no node has one.
 */
struct slab *_sheaf_get_partial(struct kmem_cache *s, int node, void **freelist)
{
	for (unsigned int i = 0; i < _sheaf_nr_nodes; i++) {
		int nid = (node + (int)i) % (int)_sheaf_nr_nodes;
		struct kmem_cache_node *n = get_node(s, nid);
		if (!READ_ONCE(n->nr_partial))
			continue;
		sheaf_lock(&n->list_lock, LR_LIST);
		sheaf_debug_yield();
		SHEAF_ASSERT_EXPENSIVE(node_partial_ok_locked(s, nid, NODE_WALK_MAX));
		if (!list_empty(&n->partial)) {
			struct slab *slab = list_first_entry(&n->partial,
							     struct slab, slab_list);
			*freelist = freeze_partial_locked(s, n, slab, 0);
			sheaf_unlock(&n->list_lock, LR_LIST);
			return slab;
		}
		sheaf_unlock(&n->list_lock, LR_LIST);
	}
	return NULL;
}

/*
 * Take the remote frees of a frozen slab a slot owns.  If there are none,
 * the slab is unfrozen (it is full and unlisted; the next free puts it on
 * the partial list).
 */
void *_sheaf_get_freelist(struct kmem_cache *s, struct slab *slab)
{
	fc_t old, new_;
	do {
		old = slab_read(slab);
		new_.freelist = NULL;
		new_.counters = fc_set(old.counters, slab->objects,
				       old.freelist != NULL);
	} while (!cmpxchg16(slab, old.full, new_.full));
	return old.freelist;
}

/*
 * Pop one object from a slab on n's partial list, without freezing it.
 * Caller holds n->list_lock.
 */
static void *pop_partial_locked(struct kmem_cache *s, struct kmem_cache_node *n,
				struct slab *slab, unsigned int slot)
{
	sheaf_lock_held(LR_LIST);
	fc_t old, new_;
	void *obj;
	do {
		old = slab_read(slab);
		obj = old.freelist;
		SHEAF_ASSERT(obj && fc_inuse(old.counters) < fc_objects(old.counters));
		new_.freelist = get_freepointer(s, obj);
		new_.counters = fc_set(old.counters, fc_inuse(old.counters) + 1, 0);
	} while (!cmpxchg16(slab, old.full, new_.full) &&
		 (stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_FAIL, slot), true));
	if (!new_.freelist)
		slab_remove_partial(n, slab);
	return obj;
}

static void *alloc_single_node(struct kmem_cache *s, int nid, unsigned int slot)
{
	struct kmem_cache_node *n = get_node(s, nid);
	void *obj = NULL;
	if (!READ_ONCE(n->nr_partial))
		return NULL;
	sheaf_lock(&n->list_lock, LR_LIST);
	sheaf_debug_yield();
	SHEAF_ASSERT_EXPENSIVE(node_partial_ok_locked(s, nid, NODE_WALK_MAX));
	if (!list_empty(&n->partial))
		obj = pop_partial_locked(s, n,
			list_first_entry(&n->partial, struct slab, slab_list), slot);
	sheaf_unlock(&n->list_lock, LR_LIST);
	return obj;
}

/*
 * One object straight from the slab layer, bypassing every CPU cache:
 * node's partial slabs, a new slab on node, then (unless exact) the other
 * nodes.  This is the path of node-specific requests, of a busy slot and
 * (later) of debug caches.
 */
void *_sheaf_alloc_single(struct kmem_cache *s, gfp_t gfp, int node,
			  bool exact, unsigned int slot)
{
	if (node == NUMA_NO_NODE)
		node = sheaf_node();
	void *obj = alloc_single_node(s, node, slot);
	if (obj)
		return obj;
	struct slab *slab = _sheaf_new_slab(s, gfp, node, slot);
	if (slab) {
		obj = slab->freelist;
		slab->freelist = get_freepointer(s, obj);
		slab->inuse = 1;
		if (slab->freelist) {
			struct kmem_cache_node *n = get_node(s, slab->node);
			sheaf_lock(&n->list_lock, LR_LIST);
			sheaf_debug_yield();
			slab_add_partial(n, slab);
			sheaf_unlock(&n->list_lock, LR_LIST);
		}
		return obj;
	}
	if (exact)
		return NULL;
	for (unsigned int i = 1; i < _sheaf_nr_nodes; i++) {
		obj = alloc_single_node(s, (node + (int)i) % (int)_sheaf_nr_nodes, slot);
		if (obj)
			return obj;
	}
	return NULL;
}

/*
 * One object from the slab layer without waiting for a lock (the slab
 * part of kmalloc_nolock(), the kernel's allocation with !allow_spin):
 * node's partial slabs, or a new slab of node made while its list_lock is
 * held (so that it is listed at once), then the same on the other nodes
 * (a node may have no free page until an allocation that may block maps
 * it an arena); each list_lock and the page lock only tried.  NULL when
 * every lock that could help was busy or no memory was to be had without
 * mapping any.  Not for debug caches (debug.c has their checked path).
 */
void *_sheaf_alloc_single_nolock(struct kmem_cache *s, int node, unsigned int slot)
{
	SHEAF_ASSERT(!cache_debug(s));
	if (node == NUMA_NO_NODE)
		node = sheaf_node();
	for (unsigned int i = 0; i < _sheaf_nr_nodes; i++) {
		int nid = (node + (int)i) % (int)_sheaf_nr_nodes;
		struct kmem_cache_node *n = get_node(s, nid);
		void *obj = NULL;
		if (!sheaf_trylock(&n->list_lock, LR_LIST))
			continue;
		if (!list_empty(&n->partial)) {
			obj = pop_partial_locked(s, n,
				list_first_entry(&n->partial, struct slab, slab_list), slot);
		} else {
			/* Under the list lock, so that its other objects are
			 * on the partial list before anyone can see the slab
			 * (the order list_lock -> page lock is the usual one). */
			struct slab *slab = _sheaf_new_slab(s, SHEAF_GFP_NOLOCK, nid, slot);
			if (slab) {
				obj = slab->freelist;
				slab->freelist = get_freepointer(s, obj);
				slab->inuse = 1;
				if (slab->freelist)
					slab_add_partial(n, slab);
			}
		}
		sheaf_unlock(&n->list_lock, LR_LIST);
		if (obj)
			return obj;
	}
	return NULL;
}

/*
 * Prefetching free-pointer words.  Freeing or taking objects from slabs
 * in bulk (sheaf flushes and refills) touches one free-pointer word per
 * object, usually in a line the CPU no longer holds; one at a time, each
 * miss is paid in full (a freelist walk is a chain of dependent loads, and
 * the locked compare-and-swap of a free waits for the free-pointer store
 * before it).  Announced ahead, the misses overlap.
 */
#define PREFETCH_AHEAD 8

static inline void prefetch_freeptr(struct kmem_cache *s, void *obj)
{
	sheaf_prefetch((char *)obj + s->offset);
}

/*
 * Before walking slab's freelist: its free objects are unknown, so
 * prefetch the free-pointer word of every object when they lie in lines of
 * their own (stride of at least 256 bytes, where neighbouring objects do
 * not share lines) and there are at most 64 of them.
 */
static inline void prefetch_slab_freeptrs(struct kmem_cache *s, struct slab *slab)
{
	if (s->size < 256 || slab->objects > 64)
		return;
	char *o = slab_address(slab);
	for (unsigned int i = 0; i < slab->objects; i++, o += s->size)
		prefetch_freeptr(s, o);
}

/*
 * Move objects from the freelist chain starting at o into p[*got..want);
 * returns the rest of the chain.
 */
static void *take_chain(struct kmem_cache *s, void *o, void **p, size_t want,
			size_t *got)
{
	while (o && *got < want) {
		p[(*got)++] = o;
		o = get_freepointer(s, o);
	}
	return o;
}

/*
 * Take up to `want` objects from one slab on n's partial list (several at
 * once: walk the freelist, one compare-and-swap).  Caller holds list_lock.
 */
static size_t grab_partial_locked(struct kmem_cache *s, struct kmem_cache_node *n,
				  struct slab *slab, void **p, size_t want,
				  unsigned int slot)
{
	sheaf_lock_held(LR_LIST);
	fc_t old, new_;
	size_t got;
	prefetch_slab_freeptrs(s, slab);
	do {
		old = slab_read(slab);
		got = 0;
		new_.freelist = take_chain(s, old.freelist, p, want, &got);
		new_.counters = fc_set(old.counters,
				       fc_inuse(old.counters) + (unsigned int)got, 0);
	} while (!cmpxchg16(slab, old.full, new_.full) &&
		 (stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_FAIL, slot), true));
	/* A listed slab has a free object, and never more in use than it has. */
	SHEAF_ASSERT(got > 0);
	SHEAF_ASSERT(fc_inuse(new_.counters) <= fc_objects(new_.counters));
	if (!new_.freelist)
		slab_remove_partial(n, slab);
	return got;
}

/* Up to `want` objects from node's partial slabs, under one lock hold. */
static size_t grab_from_node(struct kmem_cache *s, int node, void **p,
			     size_t want, unsigned int slot)
{
	struct kmem_cache_node *n = get_node(s, node);
	size_t got = 0;
	if (!READ_ONCE(n->nr_partial))
		return 0;
	sheaf_lock(&n->list_lock, LR_LIST);
	sheaf_debug_yield();
	SHEAF_ASSERT_EXPENSIVE(node_partial_ok_locked(s, node, NODE_WALK_MAX));
	while (got < want && !list_empty(&n->partial)) {
		struct slab *slab = list_first_entry(&n->partial, struct slab, slab_list);
		got += grab_partial_locked(s, n, slab, &p[got], want - got, slot);
	}
	sheaf_unlock(&n->list_lock, LR_LIST);
	return got;
}

/*
 * The internal bulk allocation from slabs (the kernel's refill_objects):
 * all or nothing, nr objects into p from node's partial slabs, then new
 * slabs on node, then other nodes' partial slabs.  Never touches a CPU
 * cache or a sheaf.  Returns nr, or 0 with nothing allocated.
 */
size_t _sheaf_slab_alloc_bulk(struct kmem_cache *s, gfp_t gfp, int node,
			      void **p, size_t nr, unsigned int slot)
{
	size_t got = grab_from_node(s, node, p, nr, slot);
	while (got < nr) {
		struct slab *slab = _sheaf_new_slab(s, gfp, node, slot);
		if (!slab)
			break;
		size_t before = got;
		slab->freelist = take_chain(s, slab->freelist, p, nr, &got);
		slab->inuse = (got - before) & 0xffff;
		if (slab->freelist) {
			struct kmem_cache_node *n = get_node(s, node);
			sheaf_lock(&n->list_lock, LR_LIST);
			sheaf_debug_yield();
			slab_add_partial(n, slab);
			sheaf_unlock(&n->list_lock, LR_LIST);
		}
	}
	for (unsigned int i = 1; got < nr && i < _sheaf_nr_nodes; i++)
		got += grab_from_node(s, (node + (int)i) % (int)_sheaf_nr_nodes,
				      &p[got], nr - got, slot);
	if (got < nr) {
		if (got)
			_sheaf_slab_free_bulk(s, got, p, slot);
		return 0;
	}
	return nr;
}

/*
 * Free cnt objects of one slab, chained head -> ... -> tail through their
 * free pointers, to the slab (the kernel's __slab_free).
 */
void _sheaf_slab_free(struct kmem_cache *s, struct slab *slab, void *head,
		      void *tail, unsigned int cnt, unsigned int slot)
{
	struct kmem_cache_node *n = NULL;
	fc_t old, new_;
	bool was_frozen;

	for (;;) {
		if (n) {
			sheaf_unlock(&n->list_lock, LR_LIST);
			n = NULL;
		}
		old = slab_read(slab);
		if (unlikely(cnt == 1 && old.freelist == head))
			_sheaf_report_invalid("kmem_cache_free", "double free of",
					      head, s, NULL);
		set_freepointer(s, tail, old.freelist);
		was_frozen = fc_frozen(old.counters);
		/* cnt objects were in use (a double free not caught above ends
		 * here rather than wrapping inuse around). */
		SHEAF_ASSERT(fc_inuse(old.counters) >= cnt);
		unsigned int inuse = fc_inuse(old.counters) - cnt;
		new_.freelist = head;
		new_.counters = fc_set(old.counters, inuse, was_frozen);
		if (!was_frozen && (inuse == 0 || old.freelist == NULL)) {
			n = get_node(s, slab->node);
			sheaf_lock(&n->list_lock, LR_LIST);
			sheaf_debug_yield();
		}
		if (cmpxchg16(slab, old.full, new_.full))
			break;
		stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_FAIL, slot);
	}

	if (!n) {
		if (was_frozen)
			stat(s, SHEAF_STAT_FREE_FROZEN, slot);
		return;
	}
	if (fc_inuse(new_.counters) == 0 && n->nr_partial >= s->min_partial) {
		if (slab->on_partial) {
			slab_remove_partial(n, slab);
			stat(s, SHEAF_STAT_FREE_REMOVE_PARTIAL, slot);
		} else if (old.freelist != NULL) {
			/* In transit: whoever unfroze it will list it. */
			sheaf_unlock(&n->list_lock, LR_LIST);
			return;
		}
		sheaf_unlock(&n->list_lock, LR_LIST);
		_sheaf_discard_slab(s, slab, slot);
		return;
	}
	if (old.freelist == NULL && !slab->on_partial) {
		slab_add_partial(n, slab);
		stat(s, SHEAF_STAT_FREE_ADD_PARTIAL, slot);
	}
	sheaf_unlock(&n->list_lock, LR_LIST);
}

/*
 * Free one object to its slab without waiting (kfree_nolock()'s slab
 * part): the compare-and-swap alone does unless the slab was full and
 * must go on the partial list, which needs its node's list_lock: only
 * tried.  A slab this free empties is not given back to the page layer
 * (that takes the page lock, and for SLAB_TYPESAFE_BY_RCU liburcu's
 * call_rcu()): it stays on the partial list, where shrink finds it.
 * false: the list_lock was busy, nothing done (the caller defers the
 * free).  Not for debug caches.
 */
bool _sheaf_slab_free_nolock(struct kmem_cache *s, struct slab *slab, void *obj,
			     unsigned int slot)
{
	struct kmem_cache_node *n = NULL;
	fc_t old, new_;

	SHEAF_ASSERT(!cache_debug(s));
	for (;;) {
		old = slab_read(slab);
		if (unlikely(old.freelist == obj))
			_sheaf_report_invalid("kfree_nolock", "double free of", obj, s, NULL);
		bool was_frozen = fc_frozen(old.counters);
		if (!was_frozen && !old.freelist && !n) {
			n = get_node(s, slab->node);
			if (!sheaf_trylock(&n->list_lock, LR_LIST))
				return false;
		}
		SHEAF_ASSERT(fc_inuse(old.counters) >= 1);
		set_freepointer(s, obj, old.freelist);
		new_.freelist = obj;
		new_.counters = fc_set(old.counters, fc_inuse(old.counters) - 1,
				       was_frozen);
		if (cmpxchg16(slab, old.full, new_.full))
			break;
		stat(s, SHEAF_STAT_CMPXCHG_DOUBLE_FAIL, slot);
	}
	if (n) {
		/* Full until this free, and nobody else lists it: a full slab
		 * is listed by its first free, under this lock. */
		if (!old.freelist && !fc_frozen(old.counters) && !slab->on_partial) {
			slab_add_partial(n, slab);
			stat(s, SHEAF_STAT_FREE_ADD_PARTIAL, slot);
		}
		sheaf_unlock(&n->list_lock, LR_LIST);
	} else if (fc_frozen(old.counters)) {
		stat(s, SHEAF_STAT_FREE_FROZEN, slot);
	}
	return true;
}

/* ------------------------------------------------------- deferred frees */

/*
 * kfree_nolock()'s deferred frees: what it could not free without waiting
 * goes on its cache's stack (struct kmem_cache, deferred; the push is
 * deferred_push(), internal.h), linked through the objects' own free
 * pointers: the word a free writes anyway, outside the object where a
 * ctor, SLAB_TYPESAFE_BY_RCU or slub_debug need it (a debug cache's red
 * zones and poison are not touched; an allocated object's free pointer is
 * never checked).  A drain takes the whole stack with one exchange (so a
 * push never races with a pop: no ABA) and frees the objects in normal
 * context.  Drains hold the cache's flush lock: they are serialized with
 * each other and with the flushes of shrink and destroy, and a fork()
 * (whose handlers take every flush lock) never finds one half done, so a
 * child inherits every deferred object on its stack.
 *
 * Who drains: the cache's slow paths (pcs.c, cpu_slab.c, debug.c: one
 * test of the stack, then a drain with the flush lock only tried, since
 * they may run under other locks), and with the lock waited for, shrink,
 * destroy, the count of objects in use and the RCU barriers
 * (slab_common.c, rcu.c).
 */

/* The flush lock for a drain: taken (wait), else only tried. */
bool _sheaf_deferred_lock(struct kmem_cache *s, bool wait)
{
	if (!wait)
		return sheaf_trylock(cache_flush_lock(s), LR_FLUSH);
	sheaf_lock(cache_flush_lock(s), LR_FLUSH);
	return true;
}

/* After a drain of n objects. */
void _sheaf_deferred_unlock(struct kmem_cache *s, size_t n)
{
	if (n)
		atomic_fetch_sub_explicit(&s->deferred_nr, (long)n, memory_order_relaxed);
	sheaf_unlock(cache_flush_lock(s), LR_FLUSH);
}

/*
 * Drain a (non-debug) cache's deferred frees straight to their slabs, as
 * the kernel's deferred frees go (objects of a sheaf cache do not go back
 * through the sheaves: a drain runs rarely).  wait: see above.
 */
void _sheaf_slab_drain_deferred(struct kmem_cache *s, bool wait)
{
	SHEAF_ASSERT(!cache_debug(s));
	if (!_sheaf_deferred_lock(s, wait))
		return;
	void *o = deferred_take(s);
	void *batch[32];
	size_t k = 0, n = 0;
	unsigned int slot = sheaf_slot();
	while (o) {
		batch[k++] = o;
		o = get_freepointer(s, o); /* before the free rewrites it */
		if (k == ARRAY_SIZE(batch) || !o) {
			_sheaf_slab_free_bulk(s, k, batch, slot);
			n += k;
			k = 0;
		}
	}
	stat_add(s, SHEAF_STAT_FREE_SLOWPATH, slot, n);
	_sheaf_deferred_unlock(s, n);
}

/*
 * Free objects of one cache straight to their slabs, one compare-and-swap
 * per run of objects from the same slab (the kernel's detached freelists).
 * Objects must already be checked.  Never touches a CPU cache.
 */
void _sheaf_slab_free_bulk(struct kmem_cache *s, size_t nr, void **p,
			   unsigned int slot)
{
	size_t i = 0, ahead = 0;
	while (i < nr) {
		for (; ahead < nr && ahead < i + PREFETCH_AHEAD; ahead++)
			prefetch_freeptr(s, p[ahead]);
		void *tail = p[i];
		struct slab *slab = virt_to_slab(tail);
		void *head = tail;
		unsigned int cnt = 1;
		size_t j = i + 1;
		while (j < nr && virt_to_slab(p[j]) == slab) {
			set_freepointer(s, p[j], head);
			head = p[j];
			cnt++;
			j++;
		}
		_sheaf_slab_free(s, slab, head, tail, cnt, slot);
		i = j;
	}
}

/*
 * Return a slot's frozen slab, with the objects of the slot's freelist, to
 * the node lists (the kernel's deactivate_slab).
 */
void _sheaf_unfreeze(struct kmem_cache *s, struct slab *slab, void *freelist,
		     unsigned int slot)
{
	unsigned int cnt = 0;
	void *tail = NULL;
	for (void *o = freelist; o; o = get_freepointer(s, o)) {
		/* struct kmem_cache_cpu: the slot's freelist is its slab's
		 * (a walk the unfreeze does anyway: at most objects long). */
		SHEAF_ASSERT_EXPENSIVE(virt_to_slab(o) == slab);
		tail = o;
		cnt++;
	}
	fc_t old, new_;
	if (READ_ONCE(slab->freelist))
		stat(s, SHEAF_STAT_DEACTIVATE_REMOTE_FREES, slot);
	do {
		old = slab_read(slab);
		if (tail) {
			set_freepointer(s, tail, old.freelist);
			new_.freelist = freelist;
		} else {
			new_.freelist = old.freelist;
		}
		/* Frozen until now, and the slot's objects were in use. */
		SHEAF_ASSERT(fc_frozen(old.counters) && fc_inuse(old.counters) >= cnt);
		new_.counters = fc_set(old.counters, fc_inuse(old.counters) - cnt, 0);
	} while (!cmpxchg16(slab, old.full, new_.full));

	struct kmem_cache_node *n = get_node(s, slab->node);
	if (fc_inuse(new_.counters) == 0 &&
	    READ_ONCE(n->nr_partial) >= s->min_partial) {
		stat(s, SHEAF_STAT_DEACTIVATE_EMPTY, slot);
		_sheaf_discard_slab(s, slab, slot);
	} else if (new_.freelist) {
		sheaf_lock(&n->list_lock, LR_LIST);
		sheaf_debug_yield();
		slab_add_partial(n, slab);
		sheaf_unlock(&n->list_lock, LR_LIST);
		stat(s, SHEAF_STAT_DEACTIVATE_TO_HEAD, slot);
	} else {
		stat(s, SHEAF_STAT_DEACTIVATE_FULL, slot);
	}
}

/* Discard every empty slab on node's partial list. */
void _sheaf_shrink_node(struct kmem_cache *s, int node)
{
	struct kmem_cache_node *n = get_node(s, node);
	struct list_head discard;
	struct slab *slab;

	INIT_LIST_HEAD(&discard);
	sheaf_lock(&n->list_lock, LR_LIST);
	sheaf_debug_yield();
	/* Shrinking walks the list anyway: the whole of it. */
	SHEAF_ASSERT_EXPENSIVE(node_partial_ok_locked(s, node, ~0ul));
	list_for_each_entry_safe(slab, &n->partial, slab_list) {
		if (fc_inuse(READ_ONCE(slab->counters)))
			continue;
		slab_remove_partial(n, slab);
		list_add(&slab->slab_list, &discard);
	}
	sheaf_unlock(&n->list_lock, LR_LIST);
	list_for_each_entry_safe(slab, &discard, slab_list)
		_sheaf_discard_slab(s, slab, 0);
}

/* Free objects sitting in node's partial slabs. */
size_t _sheaf_node_free_objects(struct kmem_cache *s, int node)
{
	struct kmem_cache_node *n = get_node(s, node);
	struct slab *slab;
	size_t free_objs = 0;
	sheaf_lock(&n->list_lock, LR_LIST);
	sheaf_debug_yield();
	/* Counting walks the list anyway: the whole of it. */
	SHEAF_ASSERT_EXPENSIVE(node_partial_ok_locked(s, node, ~0ul));
	list_for_each_entry(slab, &n->partial, slab_list)
		free_objs += slab->objects - fc_inuse(READ_ONCE(slab->counters));
	sheaf_unlock(&n->list_lock, LR_LIST);
	return free_objs;
}

/*
 * Check that obj, in slab (a PG_SLAB descriptor), is an object of s (s
 * NULL: of any cache) and return slab; otherwise report and abort, except
 * for an object of another cache freed to a debug cache: slub_debug's
 * report, and NULL (do not free it).
 */
struct slab *_sheaf_check_object_in(struct kmem_cache *s, struct slab *slab,
				    const void *obj, const char *fn, void *caller)
{
	struct kmem_cache *owner = slab->slab_cache;
	if (unlikely(s && owner != s)) {
		cache_check_live(s, fn, caller);
		if (cache_debug(s)) {
			/* slub_debug's report; the object is not freed. */
			_sheaf_debug_wrong_cache(s, slab, obj);
			return NULL;
		}
		_sheaf_report_invalid(fn, "object from the wrong cache", obj, s, caller);
	}
	bool ok;
	if (likely(owner->hot.pow2_mask && !owner->red_left_pad)) {
		/* Power-of-two objects tile the slab: alignment is enough. */
		ok = !((uintptr_t)obj & owner->hot.pow2_mask);
	} else {
		uint64_t off = (uint64_t)((const char *)obj -
					  (const char *)slab_address(slab)) -
			       owner->red_left_pad;
		/* sheaf_obj_boundary() with the slab's own objects, not the
		 * cache's: a slab of an order fallback has fewer (the inline
		 * paths take the cache's: _sheaf_new_slab()). */
		uint64_t idx = sheaf_obj_index(&owner->hot, off);
		ok = idx * owner->size == off && idx < slab->objects;
	}
	if (unlikely(!ok))
		_sheaf_report_invalid(fn, "invalid pointer (not at an object boundary)",
				      obj, owner, caller);
	return slab;
}

/* The same from the pointer alone. */
struct slab *_sheaf_check_object(struct kmem_cache *s, const void *obj,
				 const char *fn, void *caller)
{
	struct slab *slab = virt_to_slab(obj);
	if (unlikely(!slab || !(__atomic_load_n(&slab->flags, __ATOMIC_ACQUIRE) & PG_SLAB)))
		_sheaf_report_invalid(fn, "invalid pointer", obj, s, caller);
	return _sheaf_check_object_in(s, slab, obj, fn, caller);
}
