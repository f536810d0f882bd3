/* SPDX-License-Identifier: MIT */
/* list.h - circular doubly linked lists, as the kernel's <linux/list.h>. */
#ifndef SHEAF_LIST_H
#define SHEAF_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_head {
	struct list_head *next, *prev;
};

#define LIST_HEAD_INIT(name) { &(name), &(name) }

static inline void INIT_LIST_HEAD(struct list_head *l)
{
	l->next = l;
	l->prev = l;
}

static inline void __list_add(struct list_head *n, struct list_head *prev,
			      struct list_head *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

static inline void list_add(struct list_head *n, struct list_head *head)
{
	__list_add(n, head, head->next);
}

static inline void list_add_tail(struct list_head *n, struct list_head *head)
{
	__list_add(n, head->prev, head);
}

static inline void list_del(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	e->next = e->prev = NULL;
}

static inline bool list_empty(const struct list_head *h)
{
	return h->next == h;
}

#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(h, type, member) list_entry((h)->next, type, member)
/*
 * The iterators never form an entry pointer from the list head itself
 * (that would be a misaligned object in UBSan's eyes).  _safe allows the
 * current entry to be removed.
 */
#define list_for_each_entry(pos, head, member)                                 \
	for (struct list_head *__l = (head)->next;                             \
	     __l != (head) &&                                                  \
	     ((pos = list_entry(__l, __typeof__(*pos), member)), 1);           \
	     __l = __l->next)
#define list_for_each_entry_safe(pos, head, member)                            \
	for (struct list_head *__l = (head)->next, *__n = __l->next;           \
	     __l != (head) &&                                                  \
	     ((pos = list_entry(__l, __typeof__(*pos), member)), 1);           \
	     __l = __n, __n = __l->next)

#endif
