/* SPDX-License-Identifier: MIT */
/*
 * barn.c - the per-node store of full and empty sheaves of a cache.
 *
 * Lock contract: every function takes and drops barn->lock (a spinlock)
 * itself; callers may hold a slot lock (order: slot -> barn -> node
 * list_lock).  Nothing that may block or allocate runs under it.  Counts are
 * read racily for the limit checks, as the kernel does: overshoot is rare
 * and harmless.  The exchanges take `spin`: false for kmalloc_nolock() and
 * kfree_nolock() (the kernel's !allow_spin), whose thread may hold this
 * very lock under a signal handler: the lock is then only tried, and a
 * busy barn answers as an empty one would.
 */
#include <errno.h>

#include "internal.h"

/* The stacks are linked through the sheaf's _link[0]. */
static inline void push_locked(struct slab_sheaf **top, unsigned int *nr,
			       struct slab_sheaf *sheaf)
{
	SHEAF_ASSERT((*nr == 0) == (*top == NULL));
	sheaf->_link[0] = *top;
	*top = sheaf;
	WRITE_ONCE(*nr, *nr + 1);
}

/* Take the top sheaf of a stack.  Caller holds barn->lock; *nr > 0. */
static inline struct slab_sheaf *pop_locked(struct slab_sheaf **top, unsigned int *nr)
{
	sheaf_lock_held(LR_BARN);
	SHEAF_ASSERT(*nr > 0 && *top != NULL);
	struct slab_sheaf *sheaf = *top;
	*top = sheaf->_link[0];
	sheaf->_link[0] = NULL; /* as it was before the push */
	WRITE_ONCE(*nr, *nr - 1);
	return sheaf;
}

/*
 * The barn's invariants, walked (caller holds barn->lock): nr_full and
 * nr_empty are the lengths of the stacks, every full sheaf holds objects and
 * every empty one empty, all of one cache.  Only while the barn holds at
 * most BARN_WALK_MAX sheaves (its limits are 10 + 10; RCU credit may take
 * it far past them, and a walk of thousands of sheaves under the spin
 * lock at every exchange would dominate the stress tests): bounded, one
 * header per sheaf.
 */
#define BARN_WALK_MAX (2 * (MAX_FULL_SHEAVES + MAX_EMPTY_SHEAVES))

static __attribute__((unused)) bool barn_stack_ok(const struct slab_sheaf *top, unsigned int nr,
			  const struct kmem_cache *s, bool full)
{
	unsigned int len = 0;
	for (const struct slab_sheaf *sh = top; sh; sh = sh->_link[0]) {
		if (++len > nr || sh->cache != s ||
		    (full ? !sh->size || sh->size > s->sheaf_room : sh->size != 0))
			return false;
	}
	return len == nr;
}

static __attribute__((unused)) bool barn_ok_locked(const struct node_barn *barn)
{
	if (barn->nr_full + barn->nr_empty > BARN_WALK_MAX)
		return true; /* too long to walk at every exchange */
	const struct slab_sheaf *any = barn->full ? barn->full : barn->empty;
	if (!any)
		return barn->nr_full == 0 && barn->nr_empty == 0;
	return barn_stack_ok(barn->full, barn->nr_full, any->cache, true) &&
	       barn_stack_ok(barn->empty, barn->nr_empty, any->cache, false);
}

static inline void barn_lock(struct node_barn *barn)
{
	sheaf_barn_lock(&barn->lock);
	sheaf_debug_yield();
}

/* barn_lock(), or (spin == false) only if free: false when busy. */
static inline bool barn_lock_spin(struct node_barn *barn, bool spin)
{
	if (likely(spin)) {
		barn_lock(barn);
		return true;
	}
	if (!sheaf_barn_trylock(&barn->lock))
		return false;
	sheaf_debug_yield();
	return true;
}

/* Release after a get or put: one more event for the idle drain. */
static inline void barn_unlock(struct node_barn *barn)
{
	SHEAF_ASSERT_EXPENSIVE(barn_ok_locked(barn));
	__atomic_store_n(&barn->events, barn->events + 1, __ATOMIC_RELAXED);
	sheaf_barn_unlock(&barn->lock);
}

/* Release after a look or a shrink, which are not the barn's use. */
static inline void barn_unlock_quiet(struct node_barn *barn)
{
	SHEAF_ASSERT_EXPENSIVE(barn_ok_locked(barn));
	sheaf_barn_unlock(&barn->lock);
}

void _sheaf_barn_init(struct node_barn *barn)
{
	pthread_spin_init(&barn->lock, PTHREAD_PROCESS_PRIVATE);
	barn->full = barn->empty = NULL;
	WRITE_ONCE(barn->nr_full, 0);
	WRITE_ONCE(barn->nr_empty, 0);
	atomic_init(&barn->rcu_credit, 0);
	barn->events = 0;
}

struct slab_sheaf *_sheaf_barn_get_empty(struct node_barn *barn, bool spin)
{
	struct slab_sheaf *sheaf = NULL;
	if (!READ_ONCE(barn->nr_empty) || !barn_lock_spin(barn, spin))
		return NULL;
	if (barn->nr_empty)
		sheaf = pop_locked(&barn->empty, &barn->nr_empty);
	barn_unlock(barn);
	SHEAF_ASSERT(!sheaf || sheaf->size == 0);
	return sheaf;
}

/* Offer an empty sheaf; false (not taken) when at the limit unless force. */
bool _sheaf_barn_put_empty(struct node_barn *barn, struct slab_sheaf *sheaf,
			   bool force)
{
	SHEAF_ASSERT(sheaf->size == 0);
	if (!force && READ_ONCE(barn->nr_empty) >= cache_barn_limit(sheaf->cache))
		return false;
	barn_lock(barn);
	push_locked(&barn->empty, &barn->nr_empty, sheaf);
	barn_unlock(barn);
	return true;
}

/* Put a full sheaf, ignoring the limit (callers check it). */
void _sheaf_barn_put_full(struct node_barn *barn, struct slab_sheaf *sheaf)
{
	SHEAF_ASSERT(sheaf->size > 0 && sheaf->size <= sheaf->cache->sheaf_room);
	/* One walk per sheaf entering the barn (bounded by the capacity). */
	SHEAF_ASSERT_EXPENSIVE(_sheaf_sheaf_objects_of(sheaf->cache, sheaf));
	barn_lock(barn);
	push_locked(&barn->full, &barn->nr_full, sheaf);
	barn_unlock(barn);
}

/* A full sheaf, or NULL. */
struct slab_sheaf *_sheaf_barn_get_full(struct node_barn *barn, bool spin)
{
	struct slab_sheaf *sheaf = NULL;
	if (!READ_ONCE(barn->nr_full) || !barn_lock_spin(barn, spin))
		return NULL;
	if (barn->nr_full)
		sheaf = pop_locked(&barn->full, &barn->nr_full);
	barn_unlock(barn);
	SHEAF_ASSERT(!sheaf || (sheaf->size > 0 && sheaf->size <= sheaf->cache->sheaf_room));
	return sheaf;
}

/* A full sheaf if there is one, else an empty one, else NULL. */
struct slab_sheaf *_sheaf_barn_get_full_or_empty(struct node_barn *barn)
{
	struct slab_sheaf *sheaf = NULL;
	barn_lock(barn);
	if (barn->nr_full)
		sheaf = pop_locked(&barn->full, &barn->nr_full);
	else if (barn->nr_empty)
		sheaf = pop_locked(&barn->empty, &barn->nr_empty);
	barn_unlock(barn);
	SHEAF_ASSERT(!sheaf || sheaf->size <= sheaf->cache->sheaf_room);
	return sheaf;
}

/*
 * Exchange an empty sheaf for a full one (NULL: no full sheaf).  The empty
 * limit is ignored: the number of sheaves does not change.
 */
struct slab_sheaf *_sheaf_barn_replace_empty(struct node_barn *barn,
					     struct slab_sheaf *empty, bool spin)
{
	struct slab_sheaf *full = NULL;
	SHEAF_ASSERT(empty->size == 0);
	if (!READ_ONCE(barn->nr_full) || !barn_lock_spin(barn, spin))
		return NULL;
	if (barn->nr_full) {
		full = pop_locked(&barn->full, &barn->nr_full);
		push_locked(&barn->empty, &barn->nr_empty, empty);
	}
	barn_unlock(barn);
	SHEAF_ASSERT(!full || (full->size > 0 && full->size <= full->cache->sheaf_room));
	return full;
}

/*
 * Exchange a full sheaf for an empty one.  NULL with *err = -E2BIG when the
 * barn holds its limit of full sheaves, -ENOMEM when it has no empty one,
 * -EBUSY when its lock was busy (spin == false only).
 */
struct slab_sheaf *_sheaf_barn_replace_full(struct node_barn *barn,
					    struct slab_sheaf *full, int *err,
					    bool spin)
{
	struct slab_sheaf *empty = NULL;
	if (READ_ONCE(barn->nr_full) >= cache_barn_limit(full->cache)) {
		*err = -E2BIG;
		return NULL;
	}
	if (!READ_ONCE(barn->nr_empty)) {
		*err = -ENOMEM;
		return NULL;
	}
	if (!barn_lock_spin(barn, spin)) {
		*err = -EBUSY;
		return NULL;
	}
	if (barn->nr_empty) {
		SHEAF_ASSERT(full->size > 0 && full->size <= full->cache->sheaf_room);
		empty = pop_locked(&barn->empty, &barn->nr_empty);
		push_locked(&barn->full, &barn->nr_full, full);
	} else {
		*err = -ENOMEM;
	}
	barn_unlock(barn);
	SHEAF_ASSERT(!empty || empty->size == 0);
	return empty;
}

/* Empty the barn: flush full sheaves to slabs, free every sheaf. */
void _sheaf_barn_shrink(struct kmem_cache *s, struct node_barn *barn)
{
	barn_lock(barn);
	struct slab_sheaf *full = barn->full, *empty = barn->empty;
	barn->full = barn->empty = NULL;
	WRITE_ONCE(barn->nr_full, 0);
	WRITE_ONCE(barn->nr_empty, 0);
	barn_unlock_quiet(barn);
	while (full) {
		struct slab_sheaf *next = full->_link[0];
		_sheaf_discard_sheaf(s, full, 0);
		full = next;
	}
	while (empty) {
		struct slab_sheaf *next = empty->_link[0];
		_sheaf_free_sheaf(s, empty, 0);
		empty = next;
	}
}

/* Objects held in the barn's full sheaves (exact when quiescent). */
size_t _sheaf_barn_objects(struct node_barn *barn, unsigned int *nr_full,
			   unsigned int *nr_empty)
{
	size_t n = 0;
	barn_lock(barn);
	for (struct slab_sheaf *f = barn->full; f; f = f->_link[0])
		n += f->size;
	if (nr_full)
		*nr_full = barn->nr_full;
	if (nr_empty)
		*nr_empty = barn->nr_empty;
	barn_unlock_quiet(barn);
	return n;
}
