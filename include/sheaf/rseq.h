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
 *    count is not positive (main empty, or the slot taken: the count is
 *    negative then), load the top object, commit by storing count - 1.  A
 *    fast free is the mirror image, committing count + 1 after storing the
 *    object above the top (it bails at the capacity, which a taken slot's
 *    count is always above);
 *  - the slot trylock is a restartable section too, committing the taken
 *    count.  The holder may then be preempted or migrated and still owns
 *    the slot; it works with plain loads and stores and releases with a
 *    store-release of main's count.  While it holds the slot every fast
 *    path bails out;
 *  - remote access sets stop (the trylock bails) and freezes every free
 *    count, runs membarrier(PRIVATE_EXPEDITED_RSEQ) so that every section
 *    in flight restarts, and freezes again what a section committed over
 *    (struct sheaf_pcs, below; src/percpu.c).
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
		void *_link[2];      /* list links: src/types.h, sheaf states */
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
 *
 * count says who has the slot.  Read as a signed 32-bit number:
 *   >= 0  free: main's object count.  The sections pop and push with it,
 *         in the slot's own line, and leave main->size stale, so that
 *         neither fast path loads the sheaf's header before its array.
 *   < 0   taken, and main->size is main's count:
 *         SHEAF_PCS_TAKEN + n, a thread holds the slot lock (the trylock
 *         section's commit, rseq mode; n was count then, copied into
 *         main->size by the winner);
 *         SHEAF_PCS_TAKEN + SHEAF_PCS_FROZEN + n, a remote owner froze
 *         it (src/percpu.c, the remote-slot protocol; fork() keeps n here
 *         and writes no sheaf header).
 * So the pop's test (count - 1 < 0) and the push's (count >= capacity,
 * unsigned) fail on a taken slot, and neither fast path tests anything
 * else: one load and one fused compare-and-branch each (a 16-bit test of
 * lock and stop before them cost 6% of mallocbench mixed).  Whoever lets
 * the slot go stores main's count back into count (sheaf_pcs_publish(),
 * the release).
 * lock is fallback mode's slot lock (a compare-and-swap; no section runs
 * there, and count stays >= 0): rseq mode never sets it.  stop is set by
 * a remote owner; the trylock, in both modes, fails while it is.
 *
 * Invariants: main != NULL whenever the slot is free; spare and rcu_free
 * may be NULL; every sheaf here has room for the cache's sheaf_room
 * objects and capacity <= sheaf_room; only the slot's owner (a lock
 * holder, a remote owner, or a fast-path section while the slot is free)
 * changes anything here or in the sheaves it points to, except capacity.
 * capacity is
 * the push limit the sections read: the cache's current capacity, stored
 * (relaxed) by whichever thread changes it (src/pcs_adapt.c); any value
 * up to sheaf_room is safe, so a section that read the old one is right
 * too.  events counts the times a thread let go of the slot lock (every
 * slow path; the sections never touch it), written by that holder, read
 * by the idle drain (src/pcs_remote.c, "Idle drain"), whose own
 * bookkeeping lives in a table of its own, not in this line that the
 * slot's CPU keeps hot.  misses counts the holder's
 * sheaf swaps and trips to the barn or past it (wraps); win_mark, win_start, win_fails and
 * win_level are the holder's adaptive-capacity window (pcs_adapt.c).
 *
 * top is a hint, never trusted: main->objects[count - 1] as the last
 * hint section or unlock left it.  libsheaf-malloc's malloc() and free()
 * keep it (the `hint` flag of sheaf_rseq_pop_any and sheaf_rseq_push_any),
 * and so does whoever lets a slot go; kmem_cache_alloc()'s and
 * kmem_cache_free()'s sections leave it stale, as does a section aborted
 * between its store and the commit.  The hint pop hands out top when it equals
 * objects[count - 1] and that entry otherwise, so a stale top costs a
 * branch and a load, never a wrong object.  What it buys: the object's
 * address is one load from the slot line, not two dependent ones (count,
 * then the array), so the program's write to the object it was just
 * given has its address early, and the next pop's loads of its own slot
 * line do not wait on that store.  With a program's malloc() sizes
 * interleaved (the last store to a slot line then another class's), the
 * two dependent loads made every pop wait for the one before it
 * (bench/popchain.c; docs/MALLOC.md, "mixed: the pop's top hint").  The
 * kmem_cache sections do without it: a cache serves one type, whose
 * allocate-then-free loops ran 9% slower with the hint's four more
 * instructions a pair.
 */
struct sheaf_pcs {
	uint8_t lock;          /* fallback mode's slot lock */
	uint8_t stop;          /* set by a remote owner */
	uint16_t win_fails;    /* barn put failures in the window */
	uint32_t capacity;     /* the cache's current capacity: the push limit */
	struct slab_sheaf *main;
	struct slab_sheaf *spare;
	struct slab_sheaf *rcu_free;
	uint32_t events;       /* slow paths that held the lock (wraps) */
	uint32_t misses;       /* swaps, barn and slab trips of slow paths (wraps) */
	void *top;             /* hint: main->objects[count - 1] (see above) */
	uint32_t win_mark;     /* misses when the window started */
	uint32_t win_start;    /* its start, ms of the coarse clock (wraps) */
	uint32_t count;        /* main's objects while free; taken: < 0 */
	uint32_t win_level;    /* the cache's adapt_level at its start */
} __attribute__((aligned(64)));

/*
 * Offsets and sizes the sections below hard-code, each tied to its struct
 * here (the classic slot's in src/types.h): a layout change that would
 * break an instruction fails the build instead.
 */
#define SHEAF_PCS_SHIFT        6  /* sizeof(struct sheaf_pcs) == 1 << 6 */
/* A taken slot's count (struct sheaf_pcs): TAKEN + n, held by a thread;
 * TAKEN + FROZEN + n, frozen by a remote owner; n is main's count. */
#define SHEAF_PCS_TAKEN        0x80000001
#define SHEAF_PCS_FROZEN       0x40000000
#define SHEAF_PCS_OFF_STOP     1
#define SHEAF_PCS_OFF_CAPACITY 4
#define SHEAF_PCS_OFF_MAIN     8
#define SHEAF_PCS_OFF_RCU_FREE 24
#define SHEAF_PCS_OFF_TOP      40
#define SHEAF_PCS_OFF_COUNT    56
/* The classic slot, struct kmem_cache_cpu (src/types.h asserts them). */
#define SHEAF_CPU_SHIFT        6
#define SHEAF_CPU_OFF_TID      8
#define SHEAF_CPU_OFF_STOP     24
#define SHEAF_STR_(x) #x
#define SHEAF_STR(x) SHEAF_STR_(x)
#ifdef __cplusplus
#define SHEAF_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define SHEAF_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
SHEAF_STATIC_ASSERT(offsetof(struct slab_sheaf, size) == SHEAF_OFF_SIZE &&
		    offsetof(struct slab_sheaf, objects) == SHEAF_OFF_OBJECTS,
		    "the sections read a sheaf's size and objects[] at these offsets");
SHEAF_STATIC_ASSERT(sizeof(struct sheaf_pcs) == 1u << SHEAF_PCS_SHIFT &&
		    offsetof(struct sheaf_pcs, lock) == 0 &&
		    offsetof(struct sheaf_pcs, stop) == SHEAF_PCS_OFF_STOP &&
		    offsetof(struct sheaf_pcs, capacity) == SHEAF_PCS_OFF_CAPACITY &&
		    offsetof(struct sheaf_pcs, main) == SHEAF_PCS_OFF_MAIN &&
		    offsetof(struct sheaf_pcs, rcu_free) == SHEAF_PCS_OFF_RCU_FREE &&
		    offsetof(struct sheaf_pcs, top) == SHEAF_PCS_OFF_TOP &&
		    offsetof(struct sheaf_pcs, count) == SHEAF_PCS_OFF_COUNT,
		    "the sections index slots by << 6, and read stop, capacity, main, "
		    "rcu_free, top, count here");

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
	uint64_t reciprocal;           /* ceil(2^64 / size): sheaf_obj_index() */
	/* size - 1 when size is a power of two up to the page size (every
	 * object boundary is then an aligned address), else 0. */
	uint64_t pow2_mask;
};

/*
 * Which object of its slab is at byte offset off (from the first object),
 * by one multiply: floor(off / size), exact for off < 2^32 (slabs are far
 * smaller) with reciprocal = ceil(2^64 / size) = UINT64_MAX / size + 1
 * (Lemire, Kaser and Kurz, "Faster remainder by direct computation", 2019).
 * The one object-index computation of the library: the inline free
 * checks, the slab layer's pointer checks, slub_debug and
 * _sheaf_obj_start() all use it (the slab layer and slub_debug bound the
 * index by the slab's own objects rather than sheaf_obj_boundary()'s
 * objects per slab: a slab of an order fallback has fewer).
 */
static inline __attribute__((always_inline)) uint64_t
sheaf_obj_index(const struct sheaf_cache_hot *h, uint64_t off)
{
	return (uint64_t)(((unsigned __int128)off * h->reciprocal) >> 64);
}

/* off is an object boundary of the slab: a multiple of size, below
 * objects * size. */
static inline __attribute__((always_inline)) bool
sheaf_obj_boundary(const struct sheaf_cache_hot *h, uint64_t off)
{
	uint64_t idx = sheaf_obj_index(h, off);
	return idx * h->size == off && idx < h->objects;
}

/* Process-wide state the inline fast paths read (set once at start-up). */
struct sheaf_runtime {
	long rseq_offset;       /* glibc's __rseq_offset */
	/* rseq_offset + 24 (the rseq mm_cid) or + 4 (cpu_id): what the
	 * sections of earlier headers read the slot number from.  Kept for
	 * programs built with them. */
	long slot_off;
	/* The sections' one word (SHEAF_RSEQ_VARIANTS): rseq_offset when
	 * slots are mm_cids, rseq_offset + 1 when they are cpu_ids.  The
	 * offset is a multiple of 32 (the kernel's alignment of struct rseq;
	 * start-up checks it), so bit 0 is free to say which. */
	long slot_sel;
};
extern struct sheaf_runtime sheaf_rt;
/* The library reads its own hidden copy instead (no GOT load). */
#ifndef SHEAF_RT
#define SHEAF_RT sheaf_rt
#endif

/*
 * Page descriptors (what the inline free paths read before they read the
 * dense page map below; still exported for programs built with those
 * headers, and the layout the library's own checks assert): sheaf_memmap[]
 * maps addr >> 28 to the descriptor array of that 256 MiB arena (NULL: not
 * libsheaf slab memory); a 64-byte descriptor per 4 KiB page has, for every
 * page of a slab (head or tail), the cache at offset 16 and the head page's
 * descriptor at 40 (NULL on pages that are not slab pages).  Addresses are
 * below 2^47: sheaf_memmap has SHEAF_ARENA_ENTRIES entries.
 */
extern void *sheaf_memmap[];
#define SHEAF_ARENA_SHIFT  28
#define SHEAF_ARENA_ENTRIES (1ul << (47 - SHEAF_ARENA_SHIFT))
#define SHEAF_DESC_SHIFT   6  /* sizeof(struct slab) == 1 << 6: src/types.h */
#define SHEAF_DESC_CACHE   16
#define SHEAF_DESC_HEAD    40

/*
 * The dense page map of slots, which the inline free paths read instead of
 * the descriptors: sheaf_pcsmap[addr >> 28] is NULL (not a libsheaf arena)
 * or that arena's array of one pointer per 4 KiB page: the slot array
 * (struct sheaf_pcs[], the cache's pcs) of the cache with sheaves whose
 * slab, at the cache's own order, holds the page; NULL on every other page
 * (no sheaves, an order fallback's slab, free pages, page runs).  Eight
 * pages a cache line where the descriptors take a line each: a program
 * that frees objects scattered over many pages misses the cache far less.
 */
extern struct sheaf_pcs **sheaf_pcsmap[];

/*
 * struct sheaf_pcs_info - the line just before a cache's slot 0
 * (allocated with the slots by cache creation),
 * written only when the inline paths are switched
 * on or off, so that every CPU keeps it cached (slot lines are written by
 * their slot's slow paths).  free()-style paths that reach the slots from a
 * page (the library's dense page map of slots) without the cache use it
 * to check that an address x is an object boundary, exactly and without a
 * branch on the kind of stride (sheaf_pcs_info_ok()):
 *
 *   off = x & offmask         offset in the slab (slabs are aligned to
 *                             their size: buddy blocks)
 *   ok  = off * mul < limit   (mod 2^64)
 *
 * mul = ceil(2^64 / size) (the cache's hot.reciprocal, sheaf_obj_index()'s
 * constant): off * mul (mod 2^64) is below mul
 * exactly when size divides off (Lemire's divisibility test, off < 2^32),
 * and is then index * r with r = size * mul mod 2^64, so limit = objects *
 * r also bounds the index.  A power-of-two size has r = 0: every multiple
 * gives 0, and limit = 1 (its objects tile the slab).  limit = 0 while the
 * inline paths are off: every test fails, and the caller takes the path
 * through the cache, which checks everything.
 */
struct kmem_cache;
struct sheaf_pcs_info {
	uint64_t offmask;
	uint64_t mul;
	uint64_t limit;
	/* The cache the slots belong to (the library's; set with the slots):
	 * libsheaf-malloc's free() and malloc() go from a bailed section
	 * straight to the cache's sheaf slow path with it. */
	struct kmem_cache *cache;
	uint64_t _pad[4];
} __attribute__((aligned(64)));

/* The info line of the slots pcs: the line before slot 0 (the library
 * writes it, the inline free paths read it). */
static inline __attribute__((always_inline)) struct sheaf_pcs_info *
sheaf_pcs_info(const struct sheaf_pcs *pcs)
{
	return (struct sheaf_pcs_info *)(uintptr_t)pcs - 1;
}

/* x is an object boundary of a slab of the cache whose slots are pcs
 * (and that cache's inline paths are on). */
static inline __attribute__((always_inline)) bool
sheaf_pcs_info_ok(const struct sheaf_pcs *pcs, uintptr_t x)
{
	const struct sheaf_pcs_info *info = sheaf_pcs_info(pcs);
	return (uint64_t)((x & info->offmask) * info->mul) < info->limit;
}

#define SHEAF_RSEQ_SIG 0x53053053

/*
 * The sections use `asm goto` with outputs (GCC >= 11, clang >= 11): a
 * bail-out or an abort jumps straight to C labels, so the fast path is the
 * section plus its fall-through, with no status to materialise and test.
 */
#if defined(__x86_64__) && !defined(SHEAF_NO_RSEQ_ASM) &&                      \
	((defined(__clang__) && __clang_major__ >= 11) ||                      \
	 (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define SHEAF_HAVE_RSEQ_ASM 1

/*
 * The thread's rseq area is addressed %fs-relative.  sheaf_rseq_disarm()
 * reads sheaf_rt.rseq_offset ([roff], a memory operand, loaded inside its
 * asm); the sections take sheaf_rt.slot_sel in a register ([sel]), loaded
 * once by SHEAF_RSEQ_VARIANTS, which runs the section in one of two
 * variants, each with every rseq-area displacement fixed:
 *
 *   D "0", SLOT "24": slots are mm_cids, sel = rseq_offset
 *   D "1", SLOT "4":  slots are cpu_ids, sel = rseq_offset + 1
 *
 * (a displacement is written F-D: the field's offset less the tag).  So a
 * section reads the slot number with one load from the rseq area and no
 * load of its address: every load the fast paths do not make counts,
 * libsheaf-malloc's malloc()/free() pair being bound by its loads
 * (docs/MALLOC.md).  The branch on the tag is the same every time.
 */
#ifdef SHEAF_RT_HIDDEN
/* The library: its private copy of sheaf_rt, a hidden symbol, read
 * RIP-relative (slot_sel at offset 16). */
#define SHEAF_RSEQ_LOAD_ROFF "movq %c[rt](%%rip), %%rcx\n\t"
#define SHEAF_RSEQ_OFF_INPUTS , [rt] "i"(&SHEAF_RT)
#else
#define SHEAF_RSEQ_LOAD_ROFF "movq %[roff], %%rcx\n\t"
#define SHEAF_RSEQ_OFF_INPUTS                                                  \
	, [roff] "m"(SHEAF_RT.rseq_offset)
#endif

/*
 * The descriptor of a section [1f, 2f) with abort handler 4f, in section
 * __rseq_cs, and the store of its address into rseq->rseq_cs (offset 8)
 * that arms it.
 */
#define SHEAF_RSEQ_ARM_R(D, R)                                                 \
	".pushsection __rseq_cs, \"aw\"\n\t"                                   \
	".balign 32\n\t"                                                       \
	"3:\n\t"                                                               \
	".long 0, 0\n\t"                                                       \
	".quad 1f, (2f - 1f), 4f\n\t"                                          \
	".popsection\n\t"                                                      \
	"leaq 3b(%%rip), %%" R "\n\t"                                          \
	"movq %%" R ", %%fs:8-" D "(%[sel])\n\t"
#define SHEAF_RSEQ_ARM(D) SHEAF_RSEQ_ARM_R(D, "rax")

/*
 * Run ASM(D, SLOT), a section in the variant of this process's slots
 * (above).  Before start-up slot_sel is 0, but no section runs then: the
 * fast paths find no slots.
 */
#define SHEAF_RSEQ_VARIANTS(ASM)                                               \
	do {                                                                   \
		long sel_ = SHEAF_RT.slot_sel;                                 \
		if (__builtin_expect(!(sel_ & 1), 1))                          \
			ASM("0", "24");                                        \
		else                                                           \
			ASM("1", "4");                                         \
	} while (0)
#define SHEAF_RSEQ_SEL_INPUT , [sel] "r"(sel_)

/*
 * Start of every section (label 1; [sel] = slot_sel, the arming's base):
 * %eax = the slot number read from the rseq area now, or a jump to NOSLOT
 * when the thread's rseq area is not registered: cpu_id negative (it
 * unregistered, or its registration failed).  The kernel then aborts none
 * of its sections, and an unregistered thread's mm_cid reads 0, another
 * thread's slot; its cpu_id -1 would index far past the slots.  For a
 * registered thread the ABI keeps cpu_id and mm_cid below the number of
 * possible CPUs, and there is one slot per possible CPU (rseq mode is on
 * only when that count is known and fits: percpu.c), so this one test of
 * the line the section has just armed also keeps the slot below the slot
 * count.
 */
#define SHEAF_RSEQ_SLOTNR_R(NOSLOT, D, SLOT, R32)                              \
	"1:\n\t"                                                               \
	"cmpl $0, %%fs:4-" D "(%[sel])\n\t"                                    \
	"jl %l[" NOSLOT "]\n\t"                                                \
	"movl %%fs:" SLOT "-" D "(%[sel]), %%" R32 "\n\t"
#define SHEAF_RSEQ_SLOTNR(NOSLOT, D, SLOT) SHEAF_RSEQ_SLOTNR_R(NOSLOT, D, SLOT, "eax")

/*
 * Start of every sheaf section: %rax = &base[slot] for the slot read from
 * the rseq area now; bail if the thread has no usable slot (above).  Each
 * section then tests the slot's count, which is negative while the slot
 * is taken (struct sheaf_pcs): the pop and the push with the test they
 * make anyway, the others with one of their own.
 */
#define SHEAF_RSEQ_SLOT_R(D, SLOT, R, R32)                                     \
	SHEAF_RSEQ_SLOTNR_R("bail", D, SLOT, R32)                              \
	"shlq $" SHEAF_STR(SHEAF_PCS_SHIFT) ", %%" R "\n\t"                    \
	"addq %[base], %%" R "\n\t"
#define SHEAF_RSEQ_SLOT(D, SLOT) SHEAF_RSEQ_SLOT_R(D, SLOT, "rax", "eax")

/*
 * Disarm: rseq->rseq_cs = NULL once the section is over (after the commit,
 * and on the bail-out paths in C).  The kernel reads the descriptor that
 * rseq_cs names at every preemption and signal of the thread until it
 * finds the thread outside the section and clears it; a descriptor in a
 * module that dlclose() has unmapped by then kills the process with
 * SIGSEGV.  Disarmed, the thread never points the kernel at a module it
 * left.  An abort needs nothing: the kernel clears rseq_cs when it aborts.
 *
 * Only code that can be unloaded needs it: sections compiled into a shared
 * object (-fPIC without -fPIE) disarm; an executable's sections and
 * libsheaf's own (the library is linked -z nodelete) live as long as the
 * process, and skip the two instructions.  SHEAF_RSEQ_DISARM_ALWAYS forces
 * it on (code that is copied or unmapped some other way),
 * SHEAF_RSEQ_NO_DISARM off (a shared object that is never unloaded).
 */
#if defined(SHEAF_RSEQ_DISARM_ALWAYS) ||                                       \
	(defined(__PIC__) && !defined(__PIE__) && !defined(SHEAF_RT_HIDDEN) && \
	 !defined(SHEAF_RSEQ_NO_DISARM))
#define SHEAF_RSEQ_DISARM(D) "movq $0, %%fs:8-" D "(%[sel])\n\t"
#define SHEAF_RSEQ_DISARM_RT                                                   \
	SHEAF_RSEQ_LOAD_ROFF                                                   \
	"movq $0, %%fs:8(%%rcx)\n\t"

static inline __attribute__((always_inline)) void sheaf_rseq_disarm(void)
{
	__asm__ volatile(SHEAF_RSEQ_DISARM_RT
			 :
			 : [unused] "i"(0) SHEAF_RSEQ_OFF_INPUTS
			 : "rcx", "memory");
}
#else
#define SHEAF_RSEQ_DISARM(D) ""
static inline __attribute__((always_inline)) void sheaf_rseq_disarm(void)
{
}
#endif

/*
 * End of every section: label 2 right after the commit store.  The abort
 * handler (label 4) lives in section __rseq_failure, off the fast path,
 * preceded by the signature encoded as an undefined instruction (as
 * librseq does) so that disassembly stays sane; it jumps to C's `abort`.
 */
#define SHEAF_RSEQ_END(D)                                                      \
	"2:\n\t"                                                               \
	SHEAF_RSEQ_DISARM(D)                                                   \
	".pushsection __rseq_failure, \"ax\"\n\t"                              \
	".byte 0x0f, 0xb9, 0x3d\n\t"                                           \
	".long 0x53053053\n\t"                                                 \
	"4:\n\t"                                                               \
	"jmp %l[abort]\n\t"                                                    \
	".popsection\n\t"

/*
 * Every section function returns SHEAF_RSEQ_DONE when it committed,
 * SHEAF_RSEQ_BAIL when it bailed out (take the slow path),
 * SHEAF_RSEQ_ABORTED when the kernel aborted it (run it again), and the
 * classic sections SHEAF_RSEQ_NOSLOT when the thread has no usable slot
 * (take the slow path, which then works without the slot).  Once inlined,
 * the compiler turns these into direct jumps.
 */
enum { SHEAF_RSEQ_DONE = 0, SHEAF_RSEQ_BAIL = 1, SHEAF_RSEQ_ABORTED = 2,
       SHEAF_RSEQ_NOSLOT = 3 };

/*
 * Pop.  in: base = s->pcs.  Bails if lock or stop is set or the slot's
 * count is 0 (main empty).
 *   commit: count = count - 1, after loading main->objects[count - 1].
 * It also loads objects[count - 2], the object the next pop will hand
 * out, into *nextp (sheaf_rseq_pop_next), and sheaf_rseq_pop prefetches
 * its line for writing once the section is over: a
 * program writes an object it allocated, and a sheaf (unlike a free list,
 * whose pop reads the object) has not touched that line since the object
 * was freed, often long before.  mallocbench mixed, 12 interleaved pairs:
 * 0.907 of the time without (hot-64 0.954: no cost).  For the last object
 * (count 1) that word is the header's size and node, a harmless address
 * to prefetch (a prefetch never faults).  Where the popped entries are
 * not about to be written (pages moved in batches) the prefetch only
 * costs: on this project's AMD VM a prefetch waits for its TLB walk, so
 * those callers use sheaf_rseq_pop_next and drop *nextp.  So does the
 * hint pop (below) since session 22: malloc()'s objects of a few hundred
 * bytes and up lie a page or more apart, and there the walk cost more
 * than the prefetch saved (the prefetch was 58% of malloc()'s samples in
 * mallocbench mixed of 129-2048 bytes; without it, 8 alternating runs:
 * that mix 0.947 of the time, the default mix 0.94-0.97, xmalloc 0.96,
 * 8-128 bytes 1.00, hot-64-t1 0.98).
 *
 * The hint pop (hint = true, libsheaf-malloc's malloc()) hands
 * out the slot's top hint when it equals objects[count - 1], that entry
 * otherwise (a branch over one load), and stores objects[count - 2] as
 * the new hint before the commit; with the hint push (free()) keeping it
 * too, the object's address is one load from the slot line, not two
 * dependent ones (struct sheaf_pcs, top).
 */
#define SHEAF_RSEQ_POP_HEAD                                                    \
	"movl " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%r11), %%edx\n\t"            \
	"subl $1, %%edx\n\t"                                                   \
	"js %l[bail]\n\t"
#define SHEAF_RSEQ_POP_PLAIN                                                   \
	SHEAF_RSEQ_POP_HEAD                                                    \
	"movq " SHEAF_STR(SHEAF_PCS_OFF_MAIN) "(%%r11), %%rcx\n\t"             \
	"movq " SHEAF_STR(SHEAF_OFF_OBJECTS) "(%%rcx, %%rdx, 8), %[obj]\n\t"   \
	"movq -8+" SHEAF_STR(SHEAF_OFF_OBJECTS) "(%%rcx, %%rdx, 8), %[next]\n\t" \
	"movl %%edx, " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%r11)\n\t"
#define SHEAF_RSEQ_POP_HINT                                                    \
	SHEAF_RSEQ_POP_HEAD                                                    \
	"movq " SHEAF_STR(SHEAF_PCS_OFF_TOP) "(%%r11), %[obj]\n\t"             \
	"movq " SHEAF_STR(SHEAF_PCS_OFF_MAIN) "(%%r11), %%rcx\n\t"             \
	"cmpq %[obj], " SHEAF_STR(SHEAF_OFF_OBJECTS) "(%%rcx, %%rdx, 8)\n\t"   \
	"je 5f\n\t"                                                            \
	"movq " SHEAF_STR(SHEAF_OFF_OBJECTS) "(%%rcx, %%rdx, 8), %[obj]\n\t"   \
	"5:\n\t"                                                               \
	"movq -8+" SHEAF_STR(SHEAF_OFF_OBJECTS) "(%%rcx, %%rdx, 8), %[next]\n\t" \
	"movq %[next], " SHEAF_STR(SHEAF_PCS_OFF_TOP) "(%%r11)\n\t"            \
	"movl %%edx, " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%r11)\n\t"

/*
 * The pop's registers: the slot in %r11, the object out in %rax and the
 * slots' base in %rsi, so that a function that returns the object (the
 * malloc() of libsheaf-malloc) returns it where the section left it, and
 * keeps its first argument (the size, for its slow path) where it came:
 * two register moves fewer on that path, which GCC's own choice of
 * registers made.
 */
#define SHEAF_RSEQ_POP_ASM(BODY, D, SLOT)                                      \
	__asm__ volatile goto(                                                 \
		SHEAF_RSEQ_ARM_R(D, "r11")                                     \
		SHEAF_RSEQ_SLOT_R(D, SLOT, "r11", "r11d")                      \
		BODY                                                           \
		SHEAF_RSEQ_END(D)                                              \
		: [obj] "=&a"(obj), [next] "=&r"(next)                         \
		: [base] "S"(base) SHEAF_RSEQ_SEL_INPUT                        \
		: "r11", "rcx", "rdx", "memory", "cc"                          \
		: bail, abort)
#define SHEAF_RSEQ_POP_HINT_ASM(D, SLOT) SHEAF_RSEQ_POP_ASM(SHEAF_RSEQ_POP_HINT, D, SLOT)
#define SHEAF_RSEQ_POP_PLAIN_ASM(D, SLOT) SHEAF_RSEQ_POP_ASM(SHEAF_RSEQ_POP_PLAIN, D, SLOT)

static inline __attribute__((always_inline)) int
sheaf_rseq_pop_any(struct sheaf_pcs *base, void **objp, void **nextp, bool hint)
{
	void *obj, *next;
	if (hint)
		SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_POP_HINT_ASM);
	else
		SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_POP_PLAIN_ASM);
	*nextp = next;
	*objp = obj;
	return SHEAF_RSEQ_DONE;
bail:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_BAIL;
abort:
	return SHEAF_RSEQ_ABORTED;
}

static inline __attribute__((always_inline)) int
sheaf_rseq_pop_next(struct sheaf_pcs *base, void **objp, void **nextp)
{
	return sheaf_rseq_pop_any(base, objp, nextp, false);
}

/* The pop that prefetches the next object; the hint pop (hint) does not
 * (above). */
static inline __attribute__((always_inline)) int
sheaf_rseq_pop_fetch(struct sheaf_pcs *base, void **objp, bool hint)
{
	void *next;
	int r = sheaf_rseq_pop_any(base, objp, &next, hint);
	if (r == SHEAF_RSEQ_DONE && !hint)
		__builtin_prefetch(next, 1, 3);
	return r;
}

static inline __attribute__((always_inline)) int
sheaf_rseq_pop(struct sheaf_pcs *base, void **objp)
{
	return sheaf_rseq_pop_fetch(base, objp, false);
}

/*
 * Push onto main (free), up to the slot's capacity, with the slot's count.
 *   commit: count = count + 1, after storing obj at main->objects[count]
 *   (and, for the hint push, as the slot's top hint).
 */
#define SHEAF_RSEQ_PUSH_ASM(HINT_STORE, D, SLOT)                               \
	__asm__ volatile goto(                                                 \
		SHEAF_RSEQ_ARM(D)                                              \
		SHEAF_RSEQ_SLOT(D, SLOT)                                       \
		"movl " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%rax), %%edx\n\t"    \
		"cmpl " SHEAF_STR(SHEAF_PCS_OFF_CAPACITY) "(%%rax), %%edx\n\t" \
		"jae %l[bail]\n\t"                                             \
		"movq " SHEAF_STR(SHEAF_PCS_OFF_MAIN) "(%%rax), %%rcx\n\t"     \
		"movq %[obj], " SHEAF_STR(SHEAF_OFF_OBJECTS) "(%%rcx, %%rdx, 8)\n\t" \
		HINT_STORE                                                     \
		"addl $1, %%edx\n\t"                                           \
		"movl %%edx, " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%rax)\n\t"    \
		SHEAF_RSEQ_END(D)                                              \
		:                                                              \
		: [base] "r"(base) SHEAF_RSEQ_SEL_INPUT, [obj] "r"(obj)        \
		: "rax", "rcx", "rdx", "memory", "cc"                          \
		: bail, abort)

static inline __attribute__((always_inline)) int
sheaf_rseq_push_any(struct sheaf_pcs *base, void *obj, bool hint)
{
#define SHEAF_RSEQ_PUSH_HINT_ASM(D, SLOT)                                      \
	SHEAF_RSEQ_PUSH_ASM("movq %[obj], " SHEAF_STR(SHEAF_PCS_OFF_TOP) "(%%rax)\n\t", D, SLOT)
#define SHEAF_RSEQ_PUSH_PLAIN_ASM(D, SLOT) SHEAF_RSEQ_PUSH_ASM("", D, SLOT)
	if (hint)
		SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_PUSH_HINT_ASM);
	else
		SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_PUSH_PLAIN_ASM);
	return SHEAF_RSEQ_DONE;
bail:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_BAIL;
abort:
	return SHEAF_RSEQ_ABORTED;
}

static inline __attribute__((always_inline)) int
sheaf_rseq_push(struct sheaf_pcs *base, void *obj)
{
	return sheaf_rseq_push_any(base, obj, false);
}

/*
 * Push onto rcu_free (kfree_rcu), the sheaf at offset 24 of the slot,
 * whose count is its own size (only main's is kept in the slot); bails if
 * rcu_free is NULL or holds capacity - 1 objects already (the slot's
 * capacity, the cache's current one): the push that fills the sheaf is
 * left to the slow path, which hands the sheaf to libsheaf's RCU worker
 * thread (a grace period, then the barn).  The object is stored at
 * objects[size] first (harmless if the section restarts: that slot is
 * above the top).
 *   commit: rcu_free->size = size + 1.
 */
#define SHEAF_RSEQ_PUSH_RCU_ASM(D, SLOT)                                       \
	__asm__ volatile goto(                                                 \
		SHEAF_RSEQ_ARM(D)                                              \
		SHEAF_RSEQ_SLOT(D, SLOT)                                       \
		"cmpl $0, " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%rax)\n\t"      \
		"jl %l[bail]\n\t"                                             \
		"movq " SHEAF_STR(SHEAF_PCS_OFF_RCU_FREE) "(%%rax), %%rcx\n\t" \
		"testq %%rcx, %%rcx\n\t"                                       \
		"jz %l[bail]\n\t"                                              \
		"movl " SHEAF_STR(SHEAF_OFF_SIZE) "(%%rcx), %%edx\n\t"         \
		"leal 1(%%rdx), %%r8d\n\t"                                     \
		"cmpl " SHEAF_STR(SHEAF_PCS_OFF_CAPACITY) "(%%rax), %%r8d\n\t" \
		"jae %l[bail]\n\t"                                             \
		"movq %[obj], " SHEAF_STR(SHEAF_OFF_OBJECTS) "(%%rcx, %%rdx, 8)\n\t" \
		"addl $1, %%edx\n\t"                                           \
		"movl %%edx, " SHEAF_STR(SHEAF_OFF_SIZE) "(%%rcx)\n\t"         \
		SHEAF_RSEQ_END(D)                                              \
		:                                                              \
		: [base] "r"(base) SHEAF_RSEQ_SEL_INPUT, [obj] "r"(obj)        \
		: "rax", "rcx", "rdx", "r8", "memory", "cc"                    \
		: bail, abort)
static inline int sheaf_rseq_push_rcu(struct sheaf_pcs *base, void *obj)
{
	SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_PUSH_RCU_ASM);
	return SHEAF_RSEQ_DONE;
bail:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_BAIL;
abort:
	return SHEAF_RSEQ_ABORTED;
}

/*
 * Trylock.  Bails if the slot is taken (count negative) or stop is set.
 *   commit: count = SHEAF_PCS_TAKEN + count; *slotp = the slot the
 *   section ran on.
 */
static inline int sheaf_rseq_trylock(struct sheaf_pcs *base, unsigned int *slotp)
{
	struct sheaf_pcs *pcs;
#define SHEAF_RSEQ_TRYLOCK_ASM(D, SLOT)                                        \
	__asm__ volatile goto(                                                 \
		SHEAF_RSEQ_ARM(D)                                              \
		SHEAF_RSEQ_SLOT(D, SLOT)                                       \
		"movl " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%rax), %%edx\n\t"    \
		"testl %%edx, %%edx\n\t"                                       \
		"js %l[bail]\n\t"                                              \
		"cmpb $0, " SHEAF_STR(SHEAF_PCS_OFF_STOP) "(%%rax)\n\t"       \
		"jne %l[bail]\n\t"                                             \
		"addl $" SHEAF_STR(SHEAF_PCS_TAKEN) ", %%edx\n\t"              \
		"movl %%edx, " SHEAF_STR(SHEAF_PCS_OFF_COUNT) "(%%rax)\n\t"    \
		SHEAF_RSEQ_END(D)                                              \
		: "=&a"(pcs)                                                   \
		: [base] "r"(base) SHEAF_RSEQ_SEL_INPUT                        \
		: "rdx", "memory", "cc"                                        \
		: bail, abort)
	SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_TRYLOCK_ASM);
	*slotp = (unsigned int)(pcs - base);
	return SHEAF_RSEQ_DONE;
bail:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_BAIL;
abort:
	return SHEAF_RSEQ_ABORTED;
}

/*
 * The classic path (caches without sheaves) keeps per slot (freelist, tid)
 * and the slot's slab, with a `stop` byte at offset 24, in a 64-byte
 * struct.  The kernel updates (freelist, tid) with a compare-and-swap that
 * is atomic only against its own CPU (preemption is off); these two
 * sections are that operation in userspace.  Both bail when the thread is
 * no longer on the slot of `c` (it read `c` before the section), when stop
 * is set, or when the comparison fails.
 */

/*
 * Start of both classic sections: arm, %rax = &base[slot] for the slot
 * read now; NOSLOT if the thread has none, bail if that is not `c` (the
 * slot the caller read before the section) or its stop byte is set.
 */
#define SHEAF_RSEQ_CPU_SLOT(D, SLOT)                                           \
	SHEAF_RSEQ_ARM(D)                                                      \
	SHEAF_RSEQ_SLOTNR("noslot", D, SLOT)                                   \
	"shlq $" SHEAF_STR(SHEAF_CPU_SHIFT) ", %%rax\n\t"                      \
	"addq %[base], %%rax\n\t"                                              \
	"cmpq %[c], %%rax\n\t"                                                 \
	"jne %l[bail]\n\t"                                                     \
	"cmpb $0, " SHEAF_STR(SHEAF_CPU_OFF_STOP) "(%%rax)\n\t"                \
	"jne %l[bail]\n\t"

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
#define SHEAF_RSEQ_CMPXCHG_ASM(D, SLOT)                                        \
	__asm__ volatile goto(                                                 \
		SHEAF_RSEQ_CPU_SLOT(D, SLOT)                                   \
		"cmpq %[ofl], (%%rax)\n\t"                                     \
		"jne %l[bail]\n\t"                                             \
		"cmpq %[otid], " SHEAF_STR(SHEAF_CPU_OFF_TID) "(%%rax)\n\t"    \
		"jne %l[bail]\n\t"                                             \
		"movq %[ntid], " SHEAF_STR(SHEAF_CPU_OFF_TID) "(%%rax)\n\t"    \
		"movq %[nfl], (%%rax)\n\t"                                     \
		SHEAF_RSEQ_END(D)                                              \
		:                                                              \
		: [base] "r"(base) SHEAF_RSEQ_SEL_INPUT, [c] "r"(c),           \
		  [ofl] "r"(old_fl), [otid] "r"(old_tid), [nfl] "r"(new_fl),   \
		  [ntid] "r"(new_tid)                                          \
		: "rax", "memory", "cc"                                        \
		: bail, noslot, abort)
	SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_CMPXCHG_ASM);
	return SHEAF_RSEQ_DONE;
bail:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_BAIL;
noslot:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_NOSLOT;
abort:
	return SHEAF_RSEQ_ABORTED;
}

/*
 * CPU-local compare-and-swap of tid alone (taking the slot).
 *   commit: tid = new_tid.
 */
static inline int sheaf_rseq_cpu_settid(void *base, void *c,
					unsigned long old_tid,
					unsigned long new_tid)
{
#define SHEAF_RSEQ_SETTID_ASM(D, SLOT)                                         \
	__asm__ volatile goto(                                                 \
		SHEAF_RSEQ_CPU_SLOT(D, SLOT)                                   \
		"cmpq %[otid], " SHEAF_STR(SHEAF_CPU_OFF_TID) "(%%rax)\n\t"    \
		"jne %l[bail]\n\t"                                             \
		"movq %[ntid], " SHEAF_STR(SHEAF_CPU_OFF_TID) "(%%rax)\n\t"    \
		SHEAF_RSEQ_END(D)                                              \
		:                                                              \
		: [base] "r"(base) SHEAF_RSEQ_SEL_INPUT, [c] "r"(c),           \
		  [otid] "r"(old_tid), [ntid] "r"(new_tid)                     \
		: "rax", "memory", "cc"                                        \
		: bail, noslot, abort)
	SHEAF_RSEQ_VARIANTS(SHEAF_RSEQ_SETTID_ASM);
	return SHEAF_RSEQ_DONE;
bail:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_BAIL;
noslot:
	sheaf_rseq_disarm();
	return SHEAF_RSEQ_NOSLOT;
abort:
	return SHEAF_RSEQ_ABORTED;
}
#endif /* x86-64 */

#ifdef __cplusplus
}
#endif
#endif /* SHEAF_RSEQ_H */
