/* SPDX-License-Identifier: MIT */
/*
 * barn.c - the per-node store of full and empty sheaves of a cache.
 *
 * Lock contract: every function takes and drops barn->lock itself; callers
 * may hold a slot lock (order: slot -> barn -> node list_lock).  Counts are
 * read racily for the limit checks, as the kernel does: overshoot is rare
 * and harmless.
 */
#include <errno.h>

#include "internal.h"

static inline struct list_head *sheaf_link(struct slab_sheaf *sheaf)
{
	return (struct list_head *)sheaf->_link;
}

static inline struct slab_sheaf *link_sheaf(struct list_head *l)
{
	return (struct slab_sheaf *)(void *)l;
}

/* Take the first sheaf of a barn list.  Caller holds barn->lock; *nr > 0. */
static struct slab_sheaf *pop_locked(struct list_head *list, unsigned int *nr)
{
	struct list_head *l = list->next;
	list_del(l);
	WRITE_ONCE(*nr, *nr - 1);
	return link_sheaf(l);
}

void _sheaf_barn_init(struct node_barn *barn)
{
	_sheaf_spinlock_init(&barn->lock);
	INIT_LIST_HEAD(&barn->sheaves_full);
	INIT_LIST_HEAD(&barn->sheaves_empty);
	WRITE_ONCE(barn->nr_full, 0);
	WRITE_ONCE(barn->nr_empty, 0);
	atomic_init(&barn->rcu_credit, 0);
}

struct slab_sheaf *_sheaf_barn_get_empty(struct node_barn *barn)
{
	struct slab_sheaf *sheaf = NULL;
	if (!READ_ONCE(barn->nr_empty))
		return NULL;
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	if (barn->nr_empty)
		sheaf = pop_locked(&barn->sheaves_empty, &barn->nr_empty);
	pthread_mutex_unlock(&barn->lock);
	return sheaf;
}

/* Offer an empty sheaf; false (not taken) when at the limit unless force. */
bool _sheaf_barn_put_empty(struct node_barn *barn, struct slab_sheaf *sheaf,
			   bool force)
{
	if (!force && READ_ONCE(barn->nr_empty) >= MAX_EMPTY_SHEAVES)
		return false;
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	list_add(sheaf_link(sheaf), &barn->sheaves_empty);
	WRITE_ONCE(barn->nr_empty, barn->nr_empty + 1);
	pthread_mutex_unlock(&barn->lock);
	return true;
}

/* Put a full sheaf, ignoring the limit (callers check it). */
void _sheaf_barn_put_full(struct node_barn *barn, struct slab_sheaf *sheaf)
{
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	list_add(sheaf_link(sheaf), &barn->sheaves_full);
	WRITE_ONCE(barn->nr_full, barn->nr_full + 1);
	pthread_mutex_unlock(&barn->lock);
}

/* A full sheaf, or NULL. */
struct slab_sheaf *_sheaf_barn_get_full(struct node_barn *barn)
{
	struct slab_sheaf *sheaf = NULL;
	if (!READ_ONCE(barn->nr_full))
		return NULL;
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	if (barn->nr_full)
		sheaf = pop_locked(&barn->sheaves_full, &barn->nr_full);
	pthread_mutex_unlock(&barn->lock);
	return sheaf;
}

/* A full sheaf if there is one, else an empty one, else NULL. */
struct slab_sheaf *_sheaf_barn_get_full_or_empty(struct node_barn *barn)
{
	struct slab_sheaf *sheaf = NULL;
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	if (barn->nr_full)
		sheaf = pop_locked(&barn->sheaves_full, &barn->nr_full);
	else if (barn->nr_empty)
		sheaf = pop_locked(&barn->sheaves_empty, &barn->nr_empty);
	pthread_mutex_unlock(&barn->lock);
	return sheaf;
}

/*
 * Exchange an empty sheaf for a full one (NULL: no full sheaf).  The empty
 * limit is ignored: the number of sheaves does not change.
 */
struct slab_sheaf *_sheaf_barn_replace_empty(struct node_barn *barn,
					     struct slab_sheaf *empty)
{
	struct slab_sheaf *full = NULL;
	if (!READ_ONCE(barn->nr_full))
		return NULL;
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	if (barn->nr_full) {
		full = pop_locked(&barn->sheaves_full, &barn->nr_full);
		list_add(sheaf_link(empty), &barn->sheaves_empty);
		WRITE_ONCE(barn->nr_empty, barn->nr_empty + 1);
	}
	pthread_mutex_unlock(&barn->lock);
	return full;
}

/*
 * Exchange a full sheaf for an empty one.  NULL with *err = -E2BIG when the
 * barn holds its limit of full sheaves, -ENOMEM when it has no empty one.
 */
struct slab_sheaf *_sheaf_barn_replace_full(struct node_barn *barn,
					    struct slab_sheaf *full, int *err)
{
	struct slab_sheaf *empty = NULL;
	if (READ_ONCE(barn->nr_full) >= MAX_FULL_SHEAVES) {
		*err = -E2BIG;
		return NULL;
	}
	if (!READ_ONCE(barn->nr_empty)) {
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	if (barn->nr_empty) {
		empty = pop_locked(&barn->sheaves_empty, &barn->nr_empty);
		list_add(sheaf_link(full), &barn->sheaves_full);
		WRITE_ONCE(barn->nr_full, barn->nr_full + 1);
	} else {
		*err = -ENOMEM;
	}
	pthread_mutex_unlock(&barn->lock);
	return empty;
}

/* Empty the barn: flush full sheaves to slabs, free every sheaf. */
void _sheaf_barn_shrink(struct kmem_cache *s, struct node_barn *barn)
{
	struct list_head full, empty;
	INIT_LIST_HEAD(&full);
	INIT_LIST_HEAD(&empty);
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	while (!list_empty(&barn->sheaves_full)) {
		struct list_head *l = barn->sheaves_full.next;
		list_del(l);
		list_add(l, &full);
	}
	while (!list_empty(&barn->sheaves_empty)) {
		struct list_head *l = barn->sheaves_empty.next;
		list_del(l);
		list_add(l, &empty);
	}
	WRITE_ONCE(barn->nr_full, 0);
	WRITE_ONCE(barn->nr_empty, 0);
	pthread_mutex_unlock(&barn->lock);
	while (!list_empty(&full)) {
		struct list_head *l = full.next;
		list_del(l);
		struct slab_sheaf *sheaf = link_sheaf(l);
		_sheaf_discard_sheaf(s, sheaf, 0);
	}
	while (!list_empty(&empty)) {
		struct list_head *l = empty.next;
		list_del(l);
		_sheaf_free_sheaf(s, link_sheaf(l), 0);
	}
}

/* Objects held in the barn's full sheaves (exact when quiescent). */
size_t _sheaf_barn_objects(struct node_barn *barn, unsigned int *nr_full,
			   unsigned int *nr_empty)
{
	size_t n = 0;
	struct list_head *l;
	pthread_mutex_lock(&barn->lock);
	sheaf_debug_yield();
	for (l = barn->sheaves_full.next; l != &barn->sheaves_full; l = l->next)
		n += link_sheaf(l)->size;
	if (nr_full)
		*nr_full = barn->nr_full;
	if (nr_empty)
		*nr_empty = barn->nr_empty;
	pthread_mutex_unlock(&barn->lock);
	return n;
}
