/* SPDX-License-Identifier: MIT */
/*
 * <sheaf/rseq.h> - the per-slot layout and the restartable sequences of the
 * sheaf fast paths.  Included by <sheaf/slab.h>; not meant to be used on
 * its own.  Everything here is ABI: the exported functions of slab.h run
 * the same sections, so programs compiled with SHEAF_NO_INLINE (or by a
 * compiler without GNU inline assembly) keep working.
 *
 * The protocol (docs/PERCPU.md has the full argument):
 *
 *  - each cache with sheaves has one struct sheaf_pcs per CPU slot; the
 *    slot is the rseq mm_cid (or cpu_id) of the running thread;
 *  - a fast alloc is ONE restartable section: find the slot, bail if its
 *    lock or stop byte is set or main is empty, load the top object, commit
 *    by storing main->size - 1.  A fast free is the mirror image, committing
 *    main->size + 1 after storing the object above the top;
 *  - the slot trylock is a restartable section too, committing lock = 1.
 *    The holder may then be preempted or migrated and still owns the slot;
 *    it works with plain loads and stores and releases with a store-release
 *    of lock = 0.  While it holds the slot every fast path bails out;
 *  - remote access sets stop, runs membarrier(PRIVATE_EXPEDITED_RSEQ) so
 *    that every section in flight restarts and sees it, and waits for lock
 *    to clear.
 *
 * The kernel aborts a section (and jumps to its abort handler, which
 * restarts it) when the thread is preempted, migrated or signalled before
 * the commit store.  No atomic instruction is used.
 */
#ifndef SHEAF_RSEQ_H
#define SHEAF_RSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct slab_sheaf - an array of object pointers used as a LIFO stack.
 * Invariant: size <= capacity; objects[0..size) are free objects of
 * `cache`.  32-byte header, so a sheaf of 60 pointers fills 512 bytes.
 * Callers of the prefill API treat it as opaque and use
 * kmem_cache_sheaf_size().
 */
struct slab_sheaf {
	union {
		void *_link[2];      /* barn list link, or the rcu_head */
		struct {
			unsigned int capacity;
			unsigned int flags;
		} _info;
	};
	struct kmem_cache *cache;
	unsigned int size;
	int node;
	void *objects[];
};

#define SHEAF_OFF_SIZE    24
#define SHEAF_OFF_OBJECTS 32

/*
 * struct sheaf_pcs - one CPU slot's sheaves of one cache (64 bytes).
 * Invariants: main != NULL whenever lock == 0; spare and rcu_free may be
 * NULL; only the lock holder (or a fast-path section, when lock == 0 and
 * stop == 0) changes anything here or in the sheaves it points to.
 */
struct sheaf_pcs {
	uint8_t lock;          /* set by the slot trylock section */
	uint8_t stop;          /* set by a remote flusher */
	uint8_t _pad[6];
	struct slab_sheaf *main;
	struct slab_sheaf *spare;
	struct slab_sheaf *rcu_free;
	uint64_t _pad2[4];
} __attribute__((aligned(64)));

/* The start of every struct kmem_cache: what the inline fast paths read. */
struct sheaf_cache_hot {
	struct sheaf_pcs *pcs;         /* NULL: the cache has no sheaves */
	/* pcs while the inline fast paths may be used (rseq mode, one node,
	 * statistics off), else NULL: one load decides. */
	struct sheaf_pcs *inline_pcs;
	unsigned int sheaf_capacity;
	unsigned int object_size;
	unsigned int size;             /* object stride in a slab */
	unsigned int objects;          /* objects per slab */
	uint64_t reciprocal;           /* ceil(2^64 / size) */
};

/* Process-wide state the inline fast paths read (set once at start-up). */
struct sheaf_runtime {
	long rseq_offset;       /* glibc's __rseq_offset */
	long slot_field;        /* 24: rseq mm_cid, 4: rseq cpu_id */
};
extern struct sheaf_runtime sheaf_rt;

/*
 * Page descriptors, as far as the inline free needs them: sheaf_memmap[]
 * maps addr >> 28 to the descriptor array of that 256 MiB arena (NULL: not
 * libsheaf slab memory); a 64-byte descriptor per 4 KiB page has, for every
 * page of a slab (head or tail), the cache at offset 16 and the head page's
 * descriptor at 40 (NULL on pages that are not slab pages).
 */
extern void *sheaf_memmap[];
#define SHEAF_ARENA_SHIFT  28
#define SHEAF_DESC_CACHE   16
#define SHEAF_DESC_HEAD    40

#define SHEAF_RSEQ_SIG 0x53053053

#if defined(__x86_64__) && defined(__GNUC__) && !defined(SHEAF_NO_RSEQ_ASM)
#define SHEAF_HAVE_RSEQ_ASM 1

static inline char *sheaf_rseq_area(void)
{
	char *tp;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp + sheaf_rt.rseq_offset;
}

/*
 * The descriptor of a section [1f, 2f) with abort handler 4f, in section
 * __rseq_cs, and the store of its address into rseq->rseq_cs (offset 8)
 * that arms it.  The abort signature precedes the handler, encoded as an
 * undefined instruction (as librseq does) so disassembly stays sane.
 */
#define SHEAF_RSEQ_ARM                                                         \
	".pushsection __rseq_cs, \"aw\"\n\t"                                   \
	".balign 32\n\t"                                                       \
	"3:\n\t"                                                               \
	".long 0, 0\n\t"                                                       \
	".quad 1f, (2f - 1f), 4f\n\t"                                          \
	".popsection\n\t"                                                      \
	"leaq 3b(%%rip), %%rax\n\t"                                            \
	"movq %%rax, 8(%[rseq])\n\t"
#define SHEAF_RSEQ_ABORT                                                       \
	".byte 0x0f, 0xb9, 0x3d\n\t"                                           \
	".long 0x53053053\n\t"                                                 \
	"4:\n\t"

/*
 * Start of every section (label 1): %rax = &base[slot] for the slot read
 * from the rseq area now; bail (5f) if its lock or stop byte is set.
 */
#define SHEAF_RSEQ_SLOT                                                        \
	"1:\n\t"                                                               \
	"movl (%[rseq], %[field]), %%eax\n\t"                                  \
	"shlq $6, %%rax\n\t"                                                   \
	"addq %[base], %%rax\n\t"                                              \
	"cmpw $0, (%%rax)\n\t"                                                 \
	"jne 5f\n\t"

/*
 * End of every section: label 2 right after the commit store; ret = 0 for
 * committed, 2 from the abort handler (4), 1 for a bail-out (5).
 */
#define SHEAF_RSEQ_END                                                         \
	"2:\n\t"                                                               \
	"xorl %[ret], %[ret]\n\t"                                              \
	"jmp 6f\n\t"                                                           \
	SHEAF_RSEQ_ABORT                                                       \
	"movl $2, %[ret]\n\t"                                                  \
	"jmp 6f\n\t"                                                           \
	"5:\n\t"                                                               \
	"movl $1, %[ret]\n\t"                                                  \
	"6:\n\t"

/*
 * Pop: one restartable section.
 *   in:  base = s->pcs, rseq = the thread's rseq area, slot_field
 *   out: returns 0 with *objp = object; 1 = bail (lock/stop set or main
 *        empty: take the slow path); 2 = aborted (retry)
 *   commit: main->size = size - 1
 */
static inline int sheaf_rseq_pop(struct sheaf_pcs *base, void **objp)
{
	int ret;
	void *obj;
	__asm__ __volatile__(
		SHEAF_RSEQ_ARM
		SHEAF_RSEQ_SLOT
		"movq 8(%%rax), %%rcx\n\t"
		"movl 24(%%rcx), %%edx\n\t"
		"testl %%edx, %%edx\n\t"
		"jz 5f\n\t"
		"subl $1, %%edx\n\t"
		"movq 32(%%rcx, %%rdx, 8), %[obj]\n\t"
		"movl %%edx, 24(%%rcx)\n\t"
		SHEAF_RSEQ_END
		: [ret] "=&r"(ret), [obj] "=&r"(obj)
		: [base] "r"(base), [rseq] "r"(sheaf_rseq_area()),
		  [field] "r"(sheaf_rt.slot_field)
		: "rax", "rcx", "rdx", "memory", "cc");
	*objp = obj;
	return ret;
}

/*
 * Push: one restartable section.
 *   in:  base, obj, cap = the cache's sheaf_capacity
 *   out: 0 = pushed; 1 = bail (lock/stop set or main full); 2 = aborted
 *   The object is stored at objects[size] first (harmless if the section
 *   restarts: that slot is above the top); commit: main->size = size + 1
 */
static inline int sheaf_rseq_push(struct sheaf_pcs *base, void *obj,
				  unsigned int cap)
{
	int ret;
	__asm__ __volatile__(
		SHEAF_RSEQ_ARM
		SHEAF_RSEQ_SLOT
		"movq 8(%%rax), %%rcx\n\t"
		"movl 24(%%rcx), %%edx\n\t"
		"cmpl %[cap], %%edx\n\t"
		"jae 5f\n\t"
		"movq %[obj], 32(%%rcx, %%rdx, 8)\n\t"
		"addl $1, %%edx\n\t"
		"movl %%edx, 24(%%rcx)\n\t"
		SHEAF_RSEQ_END
		: [ret] "=&r"(ret)
		: [base] "r"(base), [rseq] "r"(sheaf_rseq_area()),
		  [field] "r"(sheaf_rt.slot_field), [obj] "r"(obj),
		  [cap] "r"(cap)
		: "rax", "rcx", "rdx", "memory", "cc");
	return ret;
}

/*
 * Trylock: one restartable section.
 *   out: 0 = locked, *slotp = the slot the section ran on; 1 = lock or
 *        stop already set;
 *        2 = aborted (retry)
 *   commit: pcs[slot].lock = 1
 */
static inline int sheaf_rseq_trylock(struct sheaf_pcs *base, unsigned int *slotp)
{
	int ret;
	struct sheaf_pcs *pcs;
	__asm__ __volatile__(
		SHEAF_RSEQ_ARM
		SHEAF_RSEQ_SLOT
		"movb $1, (%%rax)\n\t"
		SHEAF_RSEQ_END
		: [ret] "=&r"(ret), "=&a"(pcs)
		: [base] "r"(base), [rseq] "r"(sheaf_rseq_area()),
		  [field] "r"(sheaf_rt.slot_field)
		: "memory", "cc");
	*slotp = (unsigned int)(pcs - base); /* %rax: the slot the section used */
	return ret;
}
/*
 * The classic path (caches without sheaves) keeps per slot (freelist, tid)
 * and the slot's slab, with a `stop` byte at offset 24, in a 64-byte
 * struct.  The kernel updates (freelist, tid) with a compare-and-swap that
 * is atomic only against its own CPU (preemption is off);
 * these two sections are that operation in userspace.  Both bail (1) when
 * the thread is no longer on the slot of `c` (it read `c` before the
 * section), when stop is set, or when the comparison fails.
 */

/*
 * CPU-local compare-and-swap of (freelist, tid).
 *   commit: freelist = new_fl, after tid = new_tid.  An abort between the
 *   two stores leaves (old freelist, new tid): a valid state (no object
 *   moved), which makes every optimistic reader retry.
 */
static inline int sheaf_rseq_cpu_cmpxchg(void *base, void *c, void *old_fl,
					 unsigned long old_tid, void *new_fl,
					 unsigned long new_tid)
{
	int ret;
	__asm__ __volatile__(
		SHEAF_RSEQ_ARM
		"1:\n\t"
		"movl (%[rseq], %[field]), %%eax\n\t"
		"shlq $6, %%rax\n\t"
		"addq %[base], %%rax\n\t"
		"cmpq %[c], %%rax\n\t"
		"jne 5f\n\t"
		"cmpb $0, 24(%%rax)\n\t"
		"jne 5f\n\t"
		"cmpq %[ofl], (%%rax)\n\t"
		"jne 5f\n\t"
		"cmpq %[otid], 8(%%rax)\n\t"
		"jne 5f\n\t"
		"movq %[ntid], 8(%%rax)\n\t"
		"movq %[nfl], (%%rax)\n\t"
		SHEAF_RSEQ_END
		: [ret] "=&r"(ret)
		: [base] "r"(base), [rseq] "r"(sheaf_rseq_area()),
		  [field] "r"(sheaf_rt.slot_field), [c] "r"(c),
		  [ofl] "r"(old_fl), [otid] "r"(old_tid), [nfl] "r"(new_fl),
		  [ntid] "r"(new_tid)
		: "rax", "memory", "cc");
	return ret;
}

/*
 * CPU-local compare-and-swap of tid alone (taking or checking the slot).
 *   commit: tid = new_tid.
 */
static inline int sheaf_rseq_cpu_settid(void *base, void *c,
					unsigned long old_tid,
					unsigned long new_tid)
{
	int ret;
	__asm__ __volatile__(
		SHEAF_RSEQ_ARM
		"1:\n\t"
		"movl (%[rseq], %[field]), %%eax\n\t"
		"shlq $6, %%rax\n\t"
		"addq %[base], %%rax\n\t"
		"cmpq %[c], %%rax\n\t"
		"jne 5f\n\t"
		"cmpb $0, 24(%%rax)\n\t"
		"jne 5f\n\t"
		"cmpq %[otid], 8(%%rax)\n\t"
		"jne 5f\n\t"
		"movq %[ntid], 8(%%rax)\n\t"
		SHEAF_RSEQ_END
		: [ret] "=&r"(ret)
		: [base] "r"(base), [rseq] "r"(sheaf_rseq_area()),
		  [field] "r"(sheaf_rt.slot_field), [c] "r"(c),
		  [otid] "r"(old_tid), [ntid] "r"(new_tid)
		: "rax", "memory", "cc");
	return ret;
}
#endif /* x86-64 */

#ifdef __cplusplus
}
#endif
#endif /* SHEAF_RSEQ_H */
