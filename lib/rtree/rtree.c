/* SPDX-License-Identifier: MIT */
/*
 * rtree.c - the RCU-safe B+tree range map (rtree.h).
 *
 * Writes copy the path they change: every node on the root-to-leaf path is
 * copied (and split or dropped as needed) into nodes taken from the write's
 * reservation, the new root is published with rcu_assign_pointer(), and the
 * replaced nodes are freed after a grace period.  A published node never
 * changes, so readers need only rcu_dereference() on the root and child
 * pointers.
 *
 * Worst cases per write, h = height: insert copies h nodes and may split
 * each and add a root: 2h + 1; remove copies at most h nodes and may need a
 * fresh empty root leaf: h + 1.  The reservation is made before the writer
 * lock for the height read then, and made again (larger) if the tree grew
 * meanwhile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rtree.h"

#define MAX_HEIGHT 24
#define MAX_RESERVE (2 * MAX_HEIGHT + 2)

_Static_assert(sizeof(struct rtree_node) == 256, "a node is 256 bytes");

/* ----------------------------------------------------- node allocation */

/*
 * Nodes reserved for one write.  SHEAVES: a prefilled sheaf, allocated
 * from with GFP_NOWAIT inside the writer lock (it cannot fail: the sheaf
 * holds the worst case).  BULK and MALLOC: an array filled up front, the
 * unused rest freed after.
 */
struct reserve {
	struct rtree *t;
	struct slab_sheaf *sheaf;
	void *nodes[MAX_RESERVE];
	unsigned int n, used;
};

struct rtree_alloc {
	enum rtree_kind kind;
};

static const struct rtree_alloc allocs[] = {
	[RTREE_SHEAVES] = { RTREE_SHEAVES },
	[RTREE_BULK] = { RTREE_BULK },
	[RTREE_MALLOC] = { RTREE_MALLOC },
};

static void free_unused(struct reserve *r)
{
	struct rtree *t = r->t;
	if (r->used >= r->n)
		return;
	if (t->alloc->kind == RTREE_BULK)
		kmem_cache_free_bulk(t->cache, r->n - r->used, &r->nodes[r->used]);
	else
		for (unsigned int i = r->used; i < r->n; i++)
			free(r->nodes[i]);
	r->n = r->used = 0;
}

/* Have at least `need` nodes ready: 0 or -ENOMEM (nothing kept). */
static int reserve_nodes(struct reserve *r, unsigned int need)
{
	struct rtree *t = r->t;
	switch (t->alloc->kind) {
	case RTREE_SHEAVES:
		if (r->sheaf)
			return kmem_cache_refill_sheaf(t->cache, GFP_KERNEL, &r->sheaf, need);
		r->sheaf = kmem_cache_prefill_sheaf(t->cache, GFP_KERNEL, need);
		return r->sheaf ? 0 : -ENOMEM;
	case RTREE_BULK:
		free_unused(r);
		if (!kmem_cache_alloc_bulk(t->cache, GFP_KERNEL, need, r->nodes))
			return -ENOMEM;
		r->n = need;
		return 0;
	case RTREE_MALLOC:
		free_unused(r);
		for (unsigned int i = 0; i < need; i++) {
			r->nodes[i] = malloc(sizeof(struct rtree_node));
			if (!r->nodes[i]) {
				r->n = i;
				free_unused(r);
				return -ENOMEM;
			}
		}
		r->n = need;
		return 0;
	}
	return -EINVAL;
}

static unsigned int reserved(const struct reserve *r)
{
	if (r->t->alloc->kind == RTREE_SHEAVES)
		return kmem_cache_sheaf_size(r->sheaf);
	return r->n - r->used;
}

/* A node from the reservation; inside the writer lock, cannot fail. */
static struct rtree_node *take_node(struct reserve *r)
{
	struct rtree_node *n;
	if (r->t->alloc->kind == RTREE_SHEAVES)
		n = kmem_cache_alloc_from_sheaf(r->t->cache, GFP_NOWAIT, r->sheaf);
	else
		n = r->used < r->n ? r->nodes[r->used++] : NULL;
	if (!n)
		abort(); /* the reservation was computed wrong: a bug */
	return n;
}

/* Give the unused reservation back (after the writer lock). */
static void release_nodes(struct reserve *r)
{
	if (r->t->alloc->kind == RTREE_SHEAVES) {
		kmem_cache_return_sheaf(r->t->cache, GFP_KERNEL, r->sheaf);
		r->sheaf = NULL;
	} else {
		free_unused(r);
	}
}

static void free_cb(struct rcu_head *h)
{
	free(caa_container_of(h, struct rtree_node, rcu));
}

static void kfree_cb(struct rcu_head *h)
{
	kfree(caa_container_of(h, struct rtree_node, rcu));
}

/* A node readers may still see: freed after a grace period. */
static void free_node_rcu(struct rtree *t, struct rtree_node *n)
{
	switch (t->alloc->kind) {
	case RTREE_SHEAVES:
		kfree_rcu(n, rcu);
		break;
	case RTREE_BULK:
		call_rcu(&n->rcu, kfree_cb);
		break;
	case RTREE_MALLOC:
		call_rcu(&n->rcu, free_cb);
		break;
	}
}

/* A node no reader ever saw. */
static void free_node_now(struct rtree *t, struct rtree_node *n)
{
	if (t->alloc->kind == RTREE_MALLOC)
		free(n);
	else
		kmem_cache_free(t->cache, n);
}

/* ------------------------------------------------------------ writes */

struct wctx {
	struct reserve *r;
	struct rtree_node *retired[MAX_RESERVE];
	unsigned int nretired;
};

static struct rtree_node *copy_node(struct wctx *w, struct rtree_node *n)
{
	struct rtree_node *c = take_node(w->r);
	memcpy(c, n, sizeof(*c));
	w->retired[w->nretired++] = n;
	return c;
}

/* Index of the last key <= x, or 0. */
static unsigned int slot_of(const struct rtree_node *n, uint64_t x)
{
	unsigned int i = 0;
	while (i + 1 < n->nr && n->key[i + 1] <= x)
		i++;
	return i;
}

/*
 * Insert into the subtree rooted at n (a copy replaces n).  On a split the
 * right half is returned in *right (its first key in *rkey).
 */
static struct rtree_node *cow_insert(struct wctx *w, struct rtree_node *n,
				     uint64_t start, uint64_t end, void *val,
				     struct rtree_node **right, uint64_t *rkey)
{
	uint64_t key[RTREE_FANOUT + 1], aux[RTREE_FANOUT + 1];
	void *ptr[RTREE_FANOUT + 1];
	unsigned int nr = n->nr, at;
	struct rtree_node *c = copy_node(w, n);

	*right = NULL;
	if (c->leaf) {
		at = 0;
		while (at < nr && c->key[at] < start)
			at++;
		for (unsigned int i = 0, j = 0; i <= nr; i++) {
			if (i == at) {
				key[i] = start, aux[i] = end, ptr[i] = val;
				continue;
			}
			key[i] = c->key[j], aux[i] = c->end[j], ptr[i] = c->val[j];
			j++;
		}
		nr++;
	} else {
		at = slot_of(c, start);
		struct rtree_node *r2;
		uint64_t k2;
		struct rtree_node *child = cow_insert(w, n->child[at], start, end, val,
						      &r2, &k2);
		for (unsigned int i = 0; i < nr; i++)
			key[i] = c->key[i], ptr[i] = c->child[i];
		ptr[at] = child;
		if (start < key[at])
			key[at] = start;
		if (r2) {
			for (unsigned int i = nr; i > at + 1; i--)
				key[i] = key[i - 1], ptr[i] = ptr[i - 1];
			key[at + 1] = k2, ptr[at + 1] = r2;
			nr++;
		}
	}
	if (nr <= RTREE_FANOUT) {
		c->nr = nr;
		for (unsigned int i = 0; i < nr; i++) {
			c->key[i] = key[i];
			if (c->leaf)
				c->end[i] = aux[i], c->val[i] = ptr[i];
			else
				c->child[i] = ptr[i];
		}
		return c;
	}
	/* Split: the left half stays in c, the right half in a new node. */
	struct rtree_node *rn = take_node(w->r);
	unsigned int half = nr / 2;
	memset(rn, 0, sizeof(*rn));
	rn->leaf = c->leaf;
	c->nr = half;
	rn->nr = nr - half;
	for (unsigned int i = 0; i < nr; i++) {
		struct rtree_node *d = i < half ? c : rn;
		unsigned int k = i < half ? i : i - half;
		d->key[k] = key[i];
		if (c->leaf)
			d->end[k] = aux[i], d->val[k] = ptr[i];
		else
			d->child[k] = ptr[i];
	}
	*right = rn;
	*rkey = rn->key[0];
	return c;
}

/* Remove [start, end) (known to exist) below n: the copy, or NULL if the
 * subtree became empty (n retired, nothing taken). */
static struct rtree_node *cow_remove(struct wctx *w, struct rtree_node *n,
				     uint64_t start)
{
	unsigned int at = slot_of(n, start);
	if (n->leaf) {
		if (n->nr == 1) {
			w->retired[w->nretired++] = n;
			return NULL;
		}
		struct rtree_node *c = copy_node(w, n);
		for (unsigned int i = at; i + 1 < c->nr; i++)
			c->key[i] = c->key[i + 1], c->end[i] = c->end[i + 1],
			c->val[i] = c->val[i + 1];
		c->nr--;
		return c;
	}
	struct rtree_node *child = cow_remove(w, n->child[at], start);
	if (!child && n->nr == 1) {
		w->retired[w->nretired++] = n;
		return NULL;
	}
	struct rtree_node *c = copy_node(w, n);
	if (!child) {
		for (unsigned int i = at; i + 1 < c->nr; i++)
			c->key[i] = c->key[i + 1], c->child[i] = c->child[i + 1];
		c->nr--;
	} else {
		c->child[at] = child;
		c->key[at] = child->key[0];
	}
	return c;
}

/* ------------------------------------------------------------- reads */

bool rtree_find(struct rtree *t, uint64_t addr, struct rtree_entry *e)
{
	struct rtree_node *n = rcu_dereference(t->root);
	while (n && n->nr) {
		if (addr < n->key[0])
			return false;
		unsigned int i = slot_of(n, addr);
		if (n->leaf) {
			if (addr >= n->end[i])
				return false;
			e->start = n->key[i], e->end = n->end[i], e->val = n->val[i];
			return true;
		}
		n = rcu_dereference(n->child[i]);
	}
	return false;
}

static bool find_after(struct rtree_node *n, uint64_t addr, struct rtree_entry *e)
{
	if (!n || !n->nr)
		return false;
	unsigned int i = addr < n->key[0] ? 0 : slot_of(n, addr);
	if (n->leaf) {
		for (; i < n->nr; i++)
			if (n->key[i] >= addr) {
				e->start = n->key[i], e->end = n->end[i], e->val = n->val[i];
				return true;
			}
		return false;
	}
	for (; i < n->nr; i++)
		if (find_after(rcu_dereference(n->child[i]), addr, e))
			return true;
	return false;
}

bool rtree_find_after(struct rtree *t, uint64_t addr, struct rtree_entry *e)
{
	return find_after(rcu_dereference(t->root), addr, e);
}

static bool walk(struct rtree_node *n, bool (*fn)(const struct rtree_entry *, void *),
		 void *arg, size_t *seen)
{
	if (!n)
		return true;
	for (unsigned int i = 0; i < n->nr; i++) {
		if (n->leaf) {
			struct rtree_entry e = { n->key[i], n->end[i], n->val[i] };
			(*seen)++;
			if (!fn(&e, arg))
				return false;
		} else if (!walk(rcu_dereference(n->child[i]), fn, arg, seen)) {
			return false;
		}
	}
	return true;
}

size_t rtree_iterate(struct rtree *t, bool (*fn)(const struct rtree_entry *, void *),
		     void *arg)
{
	size_t seen = 0;
	walk(rcu_dereference(t->root), fn, arg, &seen);
	return seen;
}

struct gap_search {
	uint64_t size, lo, hi, prev_end, found;
	bool ok;
};

static bool gap_fn(const struct rtree_entry *e, void *arg)
{
	struct gap_search *g = arg;
	if (e->end <= g->prev_end)
		return true;
	uint64_t s = e->start < g->hi ? e->start : g->hi;
	if (s > g->prev_end && s - g->prev_end >= g->size) {
		g->found = g->prev_end;
		g->ok = true;
		return false;
	}
	g->prev_end = e->end;
	return g->prev_end < g->hi;
}

bool rtree_find_gap(struct rtree *t, uint64_t size, uint64_t lo, uint64_t hi,
		    uint64_t *gap_start)
{
	struct gap_search g = { size, lo, hi, lo, 0, false };
	if (!size || lo >= hi || hi - lo < size)
		return false;
	rtree_iterate(t, gap_fn, &g);
	if (!g.ok && g.prev_end < hi && hi - g.prev_end >= size) {
		g.found = g.prev_end;
		g.ok = true;
	}
	if (g.ok)
		*gap_start = g.found;
	return g.ok;
}

/* ------------------------------------------------------------- API */

int rtree_init(struct rtree *t, enum rtree_kind kind, struct kmem_cache *cache)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->alloc = &allocs[kind];
	t->cache = cache;
	struct rtree_node *root = kind == RTREE_MALLOC
		? malloc(sizeof(*root)) : kmem_cache_alloc(cache, GFP_KERNEL);
	if (!root)
		return -ENOMEM;
	memset(root, 0, sizeof(*root));
	root->leaf = 1;
	t->height = 1;
	rcu_assign_pointer(t->root, root);
	return 0;
}

static void destroy_node(struct rtree *t, struct rtree_node *n)
{
	if (!n->leaf)
		for (unsigned int i = 0; i < n->nr; i++)
			destroy_node(t, n->child[i]);
	free_node_now(t, n);
}

void rtree_destroy(struct rtree *t)
{
	if (t->root)
		destroy_node(t, t->root);
	t->root = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* Take the writer lock with at least need(height) nodes reserved. */
static int lock_reserved(struct rtree *t, struct reserve *r, unsigned int per_level,
			 unsigned int extra)
{
	for (;;) {
		unsigned int h = __atomic_load_n(&t->height, __ATOMIC_RELAXED);
		if (h > MAX_HEIGHT - 1 || reserve_nodes(r, per_level * h + extra))
			return -ENOMEM;
		pthread_mutex_lock(&t->lock);
		if (reserved(r) >= per_level * t->height + extra)
			return 0;
		pthread_mutex_unlock(&t->lock); /* grew meanwhile: reserve more */
	}
}

static void publish(struct rtree *t, struct wctx *w, struct rtree_node *root)
{
	rcu_assign_pointer(t->root, root);
	pthread_mutex_unlock(&t->lock);
	for (unsigned int i = 0; i < w->nretired; i++)
		free_node_rcu(t, w->retired[i]);
	release_nodes(w->r);
}

int rtree_insert(struct rtree *t, uint64_t start, uint64_t end, void *val)
{
	if (start >= end)
		return -EINVAL;
	struct reserve r = { .t = t };
	struct wctx w = { .r = &r };
	if (lock_reserved(t, &r, 2, 1)) {
		release_nodes(&r);
		return -ENOMEM;
	}
	struct rtree_entry e;
	if (rtree_find(t, start, &e) ||
	    (rtree_find_after(t, start, &e) && e.start < end)) {
		pthread_mutex_unlock(&t->lock);
		release_nodes(&r);
		return -EEXIST;
	}
	struct rtree_node *right, *root = t->root;
	uint64_t rkey;
	struct rtree_node *c = cow_insert(&w, root, start, end, val, &right, &rkey);
	if (right) {
		struct rtree_node *nr = take_node(&r);
		memset(nr, 0, sizeof(*nr));
		nr->nr = 2;
		nr->key[0] = c->key[0], nr->child[0] = c;
		nr->key[1] = rkey, nr->child[1] = right;
		c = nr;
		__atomic_store_n(&t->height, t->height + 1, __ATOMIC_RELAXED);
	}
	t->count++;
	publish(t, &w, c);
	return 0;
}

int rtree_remove(struct rtree *t, uint64_t start, uint64_t end)
{
	struct reserve r = { .t = t };
	struct wctx w = { .r = &r };
	if (lock_reserved(t, &r, 1, 1)) {
		release_nodes(&r);
		return -ENOMEM;
	}
	struct rtree_entry e;
	if (!rtree_find(t, start, &e) || e.start != start || e.end != end) {
		pthread_mutex_unlock(&t->lock);
		release_nodes(&r);
		return -ENOENT;
	}
	struct rtree_node *c = cow_remove(&w, t->root, start);
	unsigned int h = t->height;
	if (!c) {
		c = take_node(&r);
		memset(c, 0, sizeof(*c));
		c->leaf = 1;
		h = 1;
	}
	/*
	 * A root with one child: the child is the root.  The fresh copy was
	 * never published and goes at once; published nodes below it that
	 * collapse too are retired (readers may be in them).
	 */
	bool fresh = true;
	while (!c->leaf && c->nr == 1) {
		struct rtree_node *only = c->child[0];
		if (fresh)
			free_node_now(t, c);
		else
			w.retired[w.nretired++] = c;
		fresh = false;
		c = only;
		h--;
	}
	__atomic_store_n(&t->height, h, __ATOMIC_RELAXED);
	t->count--;
	publish(t, &w, c);
	return 0;
}
