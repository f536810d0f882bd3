/* SPDX-License-Identifier: MIT */
/*
 * <sheaf/slab.h> - libsheaf: the Linux SLUB slab allocator, with per-CPU
 * sheaves and per-node barns, in userspace.
 *
 * The names and semantics are the kernel's (<linux/slab.h>), so code written
 * against the kernel API compiles with few shims.  What userspace adds
 * (statistics, tuning, introspection, test hooks) carries the sheaf_ prefix.
 *
 * Error convention (docs/API.md has the table):
 *  - functions returning a pointer return NULL on failure; bad arguments also
 *    set errno = EINVAL (kmem_cache_create() also prints one line on stderr
 *    naming the cache; the allocation calls print nothing);
 *  - functions returning int return 0 / a count, or a negative errno;
 *  - freeing NULL is a no-op; freeing a pointer that is not a live object of
 *    the cache prints "sheaf: <function>(): invalid pointer ..." with the
 *    address, cache and caller, and aborts the process (like glibc's free()).
 *
 * Thread safety: every function may be called from any thread.  None is
 * async-signal-safe but kmalloc_nolock() and kfree_nolock(), which take no
 * lock they would wait for (their comments say what they promise): a
 * signal handler must call no other libsheaf function (the slow paths take
 * locks the interrupted thread may hold; docs/PERCPU.md).  A thread
 * interrupted anywhere in libsheaf by a signal whose handler obeys that
 * rule resumes correctly.  A thread whose rseq area is not registered
 * works (through the slab layer, without the per-CPU sheaves).  A module
 * that used the inline fast paths may be dlclose()d whenever no thread
 * runs its code.
 */
#ifndef SHEAF_SLAB_H
#define SHEAF_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sheaf/stats.h>
#include <sheaf/rseq.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ gfp */

typedef unsigned int gfp_t;

/*
 * The gfp bits, with the kernel's values (6.10 and later, 7.x).  What each
 * means in libsheaf (docs/API.md, "gfp flags"): most are accepted and have
 * no effect, since userspace has one memory zone, no reclaim, no reserves,
 * no cgroups and no memory tags.  A bit the kernel does not define fails
 * the call with EINVAL.
 */
#define __GFP_DMA            0x01u     /* zone modifier: no effect */
#define __GFP_HIGHMEM        0x02u     /* zone modifier: no effect */
#define __GFP_DMA32          0x04u     /* zone modifier: no effect */
#define __GFP_MOVABLE        0x08u     /* mobility: no effect */
#define __GFP_RECLAIMABLE    0x10u     /* mobility: no effect */
#define __GFP_HIGH           0x20u     /* may use reserves (no effect here) */
#define __GFP_IO             0x40u     /* no effect */
#define __GFP_FS             0x80u     /* no effect */
#define __GFP_ZERO           0x100u    /* return zeroed memory */
/* 0x200 is unused in the kernel: refused. */
#define __GFP_DIRECT_RECLAIM 0x400u    /* may block: mmap, contended locks, RCU */
#define __GFP_KSWAPD_RECLAIM 0x800u    /* no effect (gfpflags_allow_spinning) */
#define __GFP_WRITE          0x1000u   /* page cache hint: no effect */
#define __GFP_NOWARN         0x2000u   /* no message on failure (none is printed) */
#define __GFP_RETRY_MAYFAIL  0x4000u   /* one try, may fail: the default here */
#define __GFP_NOFAIL         0x8000u   /* retry until it succeeds */
#define __GFP_NORETRY        0x10000u  /* one try, may fail: the default here */
#define __GFP_MEMALLOC       0x20000u  /* reserves: no effect */
#define __GFP_COMP           0x40000u  /* compound pages: no effect */
#define __GFP_NOMEMALLOC     0x80000u  /* no reserves: no effect */
#define __GFP_HARDWALL       0x100000u /* cpuset wall: no effect */
#define __GFP_THISNODE       0x200000u /* node requests must not fall back */
#define __GFP_ACCOUNT        0x400000u /* memcg accounting: no effect */
#define __GFP_ZEROTAGS       0x800000u /* memory tags: no effect */
/*
 * Configuration-dependent in the kernel (KASAN hardware tags, lockdep,
 * slab object extensions): 0 here, as in a kernel built without them.
 */
#define __GFP_SKIP_ZERO      0u
#define __GFP_SKIP_KASAN     0u
#define __GFP_NOLOCKDEP      0u
#define __GFP_NO_OBJ_EXT     0u
#define __GFP_RECLAIM        (__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM)

#define GFP_ATOMIC (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
#define GFP_KERNEL (__GFP_RECLAIM | __GFP_IO | __GFP_FS)
#define GFP_KERNEL_ACCOUNT (GFP_KERNEL | __GFP_ACCOUNT)
#define GFP_NOWAIT (__GFP_KSWAPD_RECLAIM | __GFP_NOWARN)
#define GFP_NOIO   (__GFP_RECLAIM)
#define GFP_NOFS   (__GFP_RECLAIM | __GFP_IO)
#define GFP_USER   (__GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL)
#define GFP_DMA    __GFP_DMA
#define GFP_DMA32  __GFP_DMA32
#define GFP_HIGHUSER (GFP_USER | __GFP_HIGHMEM)
#define GFP_HIGHUSER_MOVABLE (GFP_HIGHUSER | __GFP_MOVABLE | __GFP_SKIP_KASAN)
#define GFP_TRANSHUGE_LIGHT                                                    \
	((GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC |               \
	  __GFP_NOWARN) & ~__GFP_RECLAIM)
#define GFP_TRANSHUGE (GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM)

/*
 * Every gfp bit the kernel defines (0x200 and bits from 0x1000000 up are
 * not): others make the call fail with EINVAL.  A constant, so that the
 * inline fast path tests it with one AND.
 */
#define SHEAF_GFP_VALID_MASK                                                   \
	(__GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE |             \
	 __GFP_RECLAIMABLE | __GFP_HIGH | __GFP_IO | __GFP_FS | __GFP_ZERO |   \
	 __GFP_RECLAIM | __GFP_WRITE | __GFP_NOWARN | __GFP_RETRY_MAYFAIL |    \
	 __GFP_NOFAIL | __GFP_NORETRY | __GFP_MEMALLOC | __GFP_COMP |          \
	 __GFP_NOMEMALLOC | __GFP_HARDWALL | __GFP_THISNODE | __GFP_ACCOUNT |  \
	 __GFP_ZEROTAGS | __GFP_SKIP_ZERO | __GFP_SKIP_KASAN |                 \
	 __GFP_NOLOCKDEP | __GFP_NO_OBJ_EXT)

/* The caller may sleep (libsheaf: map memory, wait for locks and RCU). */
static inline bool gfpflags_allow_blocking(gfp_t gfp)
{
	return (gfp & __GFP_DIRECT_RECLAIM) != 0;
}

/*
 * The caller may spin on locks: true unless both reclaim bits are clear
 * (every GFP_* composite has one; the kernel's try-alloc paths have
 * neither).  A sheaf cache's allocation that finds nothing cached refills
 * a sheaf from slabs when this is true (GFP_NOWAIT too, the kernel's 7.x
 * rule), else takes one object from the slab layer.
 */
static inline bool gfpflags_allow_spinning(gfp_t gfp)
{
	return (gfp & __GFP_RECLAIM) != 0;
}

#define NUMA_NO_NODE (-1)

/* ------------------------------------------------------------ cache flags */

typedef unsigned int slab_flags_t;

/*
 * Cache flags.  Since 6.9 the kernel numbers them by an enum whose members
 * depend on its configuration, so their values are not an interface there;
 * libsheaf keeps fixed values (the kernel's from before 6.9 where a flag
 * had one).  Code written against the kernel uses the names only.
 */
#define SLAB_CONSISTENCY_CHECKS 0x00000100u /* 'F' */
#define SLAB_RED_ZONE           0x00000400u /* 'Z' */
#define SLAB_POISON             0x00000800u /* 'P' */
#define SLAB_HWCACHE_ALIGN      0x00002000u /* align objects on cache lines */
#define SLAB_CACHE_DMA          0x00004000u /* accepted, no effect */
#define SLAB_CACHE_DMA32        0x00008000u /* accepted, no effect */
#define SLAB_STORE_USER         0x00010000u /* 'U' */
#define SLAB_PANIC              0x00040000u /* abort if creation fails */
#define SLAB_TYPESAFE_BY_RCU    0x00080000u /* slab memory freed after a grace period */
#define SLAB_TRACE              0x00200000u /* 'T' */
#define SLAB_DEBUG_OBJECTS      0x00400000u /* accepted, no effect */
#define SLAB_NOLEAKTRACE        0x00800000u /* accepted, no effect */
#define SLAB_NO_MERGE           0x01000000u /* accepted: caches are never merged */
#define SLAB_FAILSLAB           0x02000000u /* accepted, no effect (sheaf_fault_set() cache=GLOB selects caches) */
#define SLAB_ACCOUNT            0x04000000u /* accepted, no effect */
#define SLAB_NO_USER_FLAGS      0x10000000u /* SLUB_DEBUG (the environment) does not apply */
#define SLAB_SKIP_KFENCE        0x20000000u /* accepted, no effect */
#define SLAB_RECLAIM_ACCOUNT    0x00020000u /* accepted, no effect */
#define SLAB_MAY_ACCOUNT        0x00000010u /* accepted, no effect */
#define SLAB_NO_OBJ_EXT         0x00000020u /* accepted, no effect (no object extensions) */
#define SLAB_OBJ_EXT_IN_OBJ     0x00000040u /* kernel-internal there; accepted, no effect */
/*
 * No per-CPU sheaves for this cache, whatever args->sheaf_capacity or
 * SHEAF_DEFAULT_CAPACITY ask: the classic per-CPU slab path.
 */
#define SLAB_NO_SHEAVES         0x00000080u
/*
 * Deprecated: the kernel removed SLAB_MEM_SPREAD (6.9).  Kept, with its old
 * value, so that older code still builds; accepted, no effect.
 */
#define SLAB_MEM_SPREAD         0x00100000u

#define SLAB_DEBUG_FLAGS                                                       \
	(SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON |               \
	 SLAB_STORE_USER | SLAB_TRACE)

#define SHEAF_SLAB_VALID_FLAGS                                                 \
	(SLAB_DEBUG_FLAGS | SLAB_HWCACHE_ALIGN | SLAB_PANIC |                  \
	 SLAB_TYPESAFE_BY_RCU | SLAB_NOLEAKTRACE | SLAB_NO_MERGE |             \
	 SLAB_ACCOUNT | SLAB_RECLAIM_ACCOUNT | SLAB_MEM_SPREAD |               \
	 SLAB_CACHE_DMA | SLAB_CACHE_DMA32 | SLAB_DEBUG_OBJECTS |              \
	 SLAB_FAILSLAB | SLAB_NO_USER_FLAGS | SLAB_SKIP_KFENCE |               \
	 SLAB_MAY_ACCOUNT | SLAB_NO_OBJ_EXT | SLAB_OBJ_EXT_IN_OBJ |            \
	 SLAB_NO_SHEAVES)

/* ---------------------------------------------------------------- limits */

#define SHEAF_PAGE_SHIFT 12
#define SHEAF_PAGE_SIZE  (1ul << SHEAF_PAGE_SHIFT)
/* Largest object a cache may hold (a slab is at most 4 MiB). */
#define SHEAF_MAX_OBJECT_SIZE (1ul << 21)
/* Largest sheaf_capacity accepted by kmem_cache_create(). */
#define SHEAF_MAX_CAPACITY 1024u
/* The largest prefilled sheaf (objects): larger requests are refused. */
#define SHEAF_MAX_PREFILL  65536u
/* Largest kmalloc size class; larger requests come straight from pages. */
#define KMALLOC_MAX_CACHE_SIZE 8192ul
#define KMALLOC_MIN_SIZE 8ul
/*
 * Largest kmalloc request, the kernel's: 1 << (MAX_PAGE_ORDER + PAGE_SHIFT),
 * 4 MiB with 4 KiB pages (larger ones fail with NULL).  kvmalloc() serves
 * larger sizes with a mapping of their own.
 */
#define KMALLOC_SHIFT_MAX (10 + SHEAF_PAGE_SHIFT)
#define KMALLOC_MAX_SIZE (1ul << KMALLOC_SHIFT_MAX)
#define ARCH_KMALLOC_MINALIGN 8ul

/* ------------------------------------------------------------ creation */

struct kmem_cache;

/*
 * Arguments of kmem_cache_create(), as in the kernel.  Zero-initialise and
 * set what you need.
 */
struct kmem_cache_args {
	/* Object alignment: 0 or a power of two up to the page size. */
	unsigned int align;
	/* Hardened usercopy region (accepted, not enforced). */
	unsigned int useroffset;
	unsigned int usersize;
	/*
	 * Offset of the free pointer inside the object, honoured only with
	 * use_freeptr_offset, and only for ctor or SLAB_TYPESAFE_BY_RCU caches
	 * (others keep the free pointer where they like).  Must be aligned to
	 * sizeof(void *) and leave room for a pointer inside the object.
	 */
	unsigned int freeptr_offset;
	bool use_freeptr_offset;
	/* Constructor: run once per object when its slab is made. */
	void (*ctor)(void *);
	/*
	 * Per-CPU sheaves of this many objects (0: none, the classic SLUB
	 * per-CPU freelist): the kernel's 6.18 meaning, the default.  With
	 * SHEAF_DEFAULT_CAPACITY=auto, the 7.x meaning: every cache gets
	 * sheaves of the capacity computed from its object stride
	 * (sheaf_auto_capacity()), raised to this value when it is larger.
	 * At most SHEAF_MAX_CAPACITY.  Ignored for caches with debug flags or
	 * SLAB_NO_SHEAVES (and, with auto, SLAB_NOLEAKTRACE).
	 */
	unsigned int sheaf_capacity;
};

struct kmem_cache *__kmem_cache_create_args(const char *name,
					    unsigned int object_size,
					    struct kmem_cache_args *args,
					    slab_flags_t flags);

static inline struct kmem_cache *
__kmem_cache_create(const char *name, unsigned int size, unsigned int align,
		    slab_flags_t flags, void (*ctor)(void *))
{
	struct kmem_cache_args kmem_args;
	__builtin_memset(&kmem_args, 0, sizeof(kmem_args));
	kmem_args.align = align;
	kmem_args.ctor = ctor;
	return __kmem_cache_create_args(name, size, &kmem_args, flags);
}

static inline struct kmem_cache *
__kmem_cache_default_args(const char *name, unsigned int size,
			  struct kmem_cache_args *args, slab_flags_t flags)
{
	struct kmem_cache_args kmem_default_args;
	__builtin_memset(&kmem_default_args, 0, sizeof(kmem_default_args));
	(void)args;
	return __kmem_cache_create_args(name, size, &kmem_default_args, flags);
}

#ifndef __cplusplus
/*
 * kmem_cache_create(name, size, args, flags)        - args: kmem_cache_args *
 * kmem_cache_create(name, size, NULL, flags)        - default arguments
 * kmem_cache_create(name, size, align, flags, ctor) - the legacy form
 *
 * Returns the cache, or NULL with errno EINVAL (bad name, size 0 or above
 * SHEAF_MAX_OBJECT_SIZE, align not a power of two or above the page size,
 * unknown flags, sheaf_capacity above SHEAF_MAX_CAPACITY, bad
 * freeptr_offset) or ENOMEM.  SLAB_PANIC turns failure into an abort.
 */
#define kmem_cache_create(__name, __object_size, __args, ...)                  \
	_Generic((__args),                                                     \
		struct kmem_cache_args *: __kmem_cache_create_args,            \
		void *: __kmem_cache_default_args,                             \
		default: __kmem_cache_create)(__name, __object_size, __args,   \
					      __VA_ARGS__)
#else
} /* extern "C" */
static inline struct kmem_cache *
kmem_cache_create(const char *name, unsigned int size,
		  struct kmem_cache_args *args, slab_flags_t flags)
{
	return __kmem_cache_create_args(name, size, args, flags);
}
static inline struct kmem_cache *
kmem_cache_create(const char *name, unsigned int size, unsigned int align,
		  slab_flags_t flags, void (*ctor)(void *))
{
	return __kmem_cache_create(name, size, align, flags, ctor);
}
extern "C" {
#endif

#define KMEM_CACHE(__struct, __flags)                                          \
	__kmem_cache_create(#__struct, sizeof(struct __struct),                \
			    _Alignof(struct __struct), (__flags), NULL)

/*
 * A cache with a hardened-usercopy region (useroffset, usersize): accepted
 * and checked to lie inside the object (else NULL, EINVAL), not enforced.
 */
static inline struct kmem_cache *
kmem_cache_create_usercopy(const char *name, unsigned int size,
			   unsigned int align, slab_flags_t flags,
			   unsigned int useroffset, unsigned int usersize,
			   void (*ctor)(void *))
{
	struct kmem_cache_args kmem_args;
	__builtin_memset(&kmem_args, 0, sizeof(kmem_args));
	kmem_args.align = align;
	kmem_args.ctor = ctor;
	kmem_args.useroffset = useroffset;
	kmem_args.usersize = usersize;
	return __kmem_cache_create_args(name, size, &kmem_args, flags);
}

/* KMEM_CACHE() whose usercopy region is the member __field. */
#define KMEM_CACHE_USERCOPY(__struct, __flags, __field)                        \
	kmem_cache_create_usercopy(#__struct, sizeof(struct __struct),         \
		_Alignof(struct __struct), (__flags),                          \
		offsetof(struct __struct, __field),                            \
		sizeof(((struct __struct *)0)->__field), NULL)

/*
 * Destroy a cache.  Flushes every per-CPU slot and barn and gives the slabs
 * back.  If objects are still live, or prefilled sheaves lent out, prints
 * how many on stderr and keeps the cache and its memory (the objects stay
 * valid).  NULL is a no-op.  The cache pointer is dead afterwards: using it
 * again (a second destroy included) is reported and aborts, for the last 64
 * caches destroyed (docs/API.md).
 */
void kmem_cache_destroy(struct kmem_cache *s);

/* Object size of the cache as created (0 for NULL). */
unsigned int kmem_cache_size(struct kmem_cache *s);

/* Name of the cache (NULL for NULL). */
const char *kmem_cache_name(struct kmem_cache *s);

/* --------------------------------------------------------------- objects */

/*
 * Allocate one object.  NULL when out of memory (or, without
 * __GFP_DIRECT_RECLAIM, when nothing is cached and memory would have to be
 * mapped); __GFP_NOFAIL retries instead.  NULL with EINVAL for a NULL cache
 * or unknown gfp bits.
 */
void *kmem_cache_alloc(struct kmem_cache *s, gfp_t gfp);

/* kmem_cache_alloc() with __GFP_ZERO. */
void *kmem_cache_zalloc(struct kmem_cache *s, gfp_t gfp);

/*
 * kmem_cache_alloc() for the kernel's list_lru users; the lru (memcg-aware
 * list) is ignored: there are no memory cgroups here.  The function body
 * comes after the inline fast path, so that it uses it.
 */
struct list_lru;
static inline void *kmem_cache_alloc_lru(struct kmem_cache *s,
					 struct list_lru *lru, gfp_t gfp);

/*
 * Allocate from a node (NUMA_NO_NODE: the local one).  A node other than
 * the local one bypasses the per-CPU caches; it falls back to other nodes
 * unless __GFP_THISNODE is given.  NULL with EINVAL for a node out of range.
 */
void *kmem_cache_alloc_node(struct kmem_cache *s, gfp_t gfp, int node);

/*
 * Free an object of the cache.  NULL is a no-op.  A pointer that is not an
 * object of this cache is reported and the process aborts.
 */
void kmem_cache_free(struct kmem_cache *s, void *obj);

/*
 * Allocate nr objects into p.  All or nothing: returns nr, or 0 with
 * nothing allocated.  nr == 0 returns 0.
 */
int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t gfp, size_t nr, void **p);

/*
 * Free nr objects.  s may be NULL: the cache is then derived per object,
 * as kfree() does.  NULL entries are skipped.
 */
void kmem_cache_free_bulk(struct kmem_cache *s, size_t nr, void **p);

/*
 * Give back cached memory: flush every per-CPU slot and barn, release empty
 * slabs and return idle pages to the OS.  Returns what the kernel's does:
 * 0 when the cache has no slab left, 1 while it keeps any (objects in use,
 * or objects other threads cached again meanwhile); -EINVAL for NULL.
 */
int kmem_cache_shrink(struct kmem_cache *s);

/* --------------------------------------------------------------- kmalloc */

/*
 * kmalloc: sizes up to KMALLOC_MAX_CACHE_SIZE come from the size classes
 * 8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192; larger
 * ones straight from pages (a power of two of pages).  size 0 returns
 * ZERO_SIZE_PTR (a unique non-NULL pointer that kfree() accepts and that
 * must not be dereferenced).  NULL on out of memory or size >
 * KMALLOC_MAX_SIZE (kvmalloc() serves those).
 */
#define ZERO_SIZE_PTR ((void *)16)
#define ZERO_OR_NULL_PTR(x) ((unsigned long)(x) <= (unsigned long)ZERO_SIZE_PTR)

void *kmalloc(size_t size, gfp_t gfp);
void *kmalloc_node(size_t size, gfp_t gfp, int node);
void *kzalloc(size_t size, gfp_t gfp);
/* n * size with overflow check (NULL on overflow), zeroed. */
void *kcalloc(size_t n, size_t size, gfp_t gfp);
void *kmalloc_array(size_t n, size_t size, gfp_t gfp);
/*
 * Resize, keeping the contents.  p NULL behaves like kmalloc; new_size 0
 * frees p and returns ZERO_SIZE_PTR.  On failure returns NULL and p is
 * left untouched.
 */
void *krealloc(const void *p, size_t new_size, gfp_t gfp);
/* krealloc() of new_n * new_size bytes; NULL on overflow (p untouched). */
void *krealloc_array(const void *p, size_t new_n, size_t new_size, gfp_t gfp);
/* kmalloc_node() with __GFP_ZERO, and the array forms (NULL on overflow). */
void *kzalloc_node(size_t size, gfp_t gfp, int node);
void *kmalloc_array_node(size_t n, size_t size, gfp_t gfp, int node);
void *kcalloc_node(size_t n, size_t size, gfp_t gfp, int node);
/*
 * The kernel's typed allocation helpers (7.x): VAR_OR_TYPE is a type or
 * an expression (usually *ptr), and the result has its pointer type.
 *   kmalloc_obj(VAR_OR_TYPE, gfp)              one object
 *   kmalloc_objs(VAR_OR_TYPE, count, gfp)      an array (NULL on overflow)
 *   kmalloc_flex(VAR_OR_TYPE, FAM, count, gfp) a struct whose flexible
 *                                              array member FAM holds count
 *                                              elements (NULL on overflow)
 * and the kzalloc_ (zeroed) and kvmalloc_/kvzalloc_ (kvmalloc) forms.
 * Errors: those of kmalloc()/kvmalloc().
 */
#define sheaf_flex_size(T, FAM, n)                                             \
	((size_t)(n) > (SIZE_MAX - __builtin_offsetof(T, FAM)) / sizeof(((T *)0)->FAM[0]) \
		 ? SIZE_MAX                                                    \
		 : __builtin_offsetof(T, FAM) + (size_t)(n) * sizeof(((T *)0)->FAM[0]))
#define kmalloc_obj(V, gfp)  ((__typeof__(V) *)kmalloc(sizeof(V), gfp))
#define kzalloc_obj(V, gfp)  ((__typeof__(V) *)kzalloc(sizeof(V), gfp))
#define kvmalloc_obj(V, gfp) ((__typeof__(V) *)kvmalloc(sizeof(V), gfp))
#define kvzalloc_obj(V, gfp) ((__typeof__(V) *)kvzalloc(sizeof(V), gfp))
#define kmalloc_objs(V, n, gfp)  ((__typeof__(V) *)kmalloc_array(n, sizeof(V), gfp))
#define kzalloc_objs(V, n, gfp)  ((__typeof__(V) *)kcalloc(n, sizeof(V), gfp))
#define kvmalloc_objs(V, n, gfp) ((__typeof__(V) *)kvmalloc_array(n, sizeof(V), gfp))
#define kvzalloc_objs(V, n, gfp) ((__typeof__(V) *)kvcalloc(n, sizeof(V), gfp))
#define kmalloc_flex(V, FAM, n, gfp)                                           \
	((__typeof__(V) *)kmalloc(sheaf_flex_size(__typeof__(V), FAM, n), gfp))
#define kzalloc_flex(V, FAM, n, gfp)                                           \
	((__typeof__(V) *)kzalloc(sheaf_flex_size(__typeof__(V), FAM, n), gfp))
#define kvmalloc_flex(V, FAM, n, gfp)                                          \
	((__typeof__(V) *)kvmalloc(sheaf_flex_size(__typeof__(V), FAM, n), gfp))
#define kvzalloc_flex(V, FAM, n, gfp)                                          \
	((__typeof__(V) *)kvzalloc(sheaf_flex_size(__typeof__(V), FAM, n), gfp))

/*
 * Free a kmalloc'd object, any slab object or a kvmalloc'd block.
 * NULL/ZERO_SIZE_PTR: no-op.
 */
void kfree(const void *p);
/* kfree() after zeroing the whole usable size (ksize()) of p. */
void kfree_sensitive(const void *p);

/*
 * kmalloc_nolock(), kfree_nolock(): allocation and free from any context,
 * in userspace a signal handler (the kernel's any context, NMI included),
 * whatever library lock the interrupted thread holds.  Nothing on their
 * paths waits: every lock is only tried, and a busy one makes the
 * allocation take another way or fail, and the free another way or be
 * deferred.  They allocate and flush no sheaf and map no memory.  What
 * they do use: the restartable sections of the slot (the kernel aborts
 * the interrupted thread's section before a handler runs), the slot lock,
 * the barn and the node lists of the size class, free pages the page
 * layer already has.  Async-signal-safe in that sense, with these limits:
 * a report of misuse (an invalid pointer, a double free, a slub_debug
 * check failing) prints from the handler and aborts; errno is set on
 * failure (a handler that cares saves and restores it, as around any
 * system call); nothing before the library has started (its constructor
 * starts it, so only another constructor can run earlier): NULL, ENOMEM.
 *
 * kmalloc_nolock: an object of the kmalloc size class of size (sizes up
 * to KMALLOC_MAX_CACHE_SIZE, 8 KiB), from node (NUMA_NO_NODE or the
 * local node: through the slot's per-CPU cache first; another node: from
 * the slab layer; a node is a preference: other nodes follow it).  gfp: only __GFP_ZERO (zeroed
 * memory), __GFP_ACCOUNT and __GFP_NO_OBJ_EXT (accepted, no effect), as
 * the kernel's.  When the class's locks are busy it tries the next class
 * up once (so ksize() may be larger), as the kernel's first version did.  Returns NULL
 * with errno EINVAL for any other gfp bit or a node out of range; NULL
 * with errno ENOMEM for a size above KMALLOC_MAX_CACHE_SIZE (never
 * served here) and when nothing could be had without waiting or mapping
 * memory (a busy lock or no free memory: the kernel's answer too, whose
 * NULL means ENOMEM; another try later may succeed).  size 0:
 * ZERO_SIZE_PTR.  A slub_debug cache is served through its checked path
 * (its list lock only tried), the allocation track without a stack trace.
 * No failure injection at the slab point (as the kernel's skips failslab);
 * the page point applies.  Free with kfree() or kfree_nolock().
 */
void *kmalloc_nolock(size_t size, gfp_t gfp, int node);

/*
 * kfree_nolock: free p from any context, as kfree_nolock() above says.
 * p: an object of kmalloc_nolock(), and in libsheaf any object kfree()
 * takes but a kvmalloc() mapping: of kmalloc() (large page runs too) or
 * kmem_cache_alloc() of any cache (the kernel, up to 7.2, takes objects
 * of kmalloc_nolock() only; a later series takes kmalloc()'s).  NULL and
 * ZERO_SIZE_PTR: no-op.  Not libsheaf memory, not at an object boundary,
 * a kvmalloc() mapping, an immediately repeated free: reported as kfree()
 * does ("sheaf: kfree_nolock(): ...") and the process aborts.  The object
 * goes to the slot's sheaf or per-CPU freelist, else to its slab;
 * when that would wait (the slot and the node list busy) or needs a
 * flush or a new sheaf, it is deferred: pushed, lock-free, on a list of
 * its cache (linked through its free pointer, as a free writes it) and
 * freed in normal context by the cache's next slow path, or by
 * kmem_cache_shrink(), kmem_cache_destroy(), sheaf_cache_objects_inuse()
 * or an RCU barrier, which wait for it, or by the idle drain's next look
 * (SHEAF_IDLE_MS / 2 at most): a deferred free is never lost nor
 * reported as a leak.  A slub_debug cache's free is always deferred (its
 * checks run at the drain, and its free track is the drainer's); a large
 * run's too (its free takes the page lock).
 */
void kfree_nolock(const void *p);
/* Free nr objects of any caches or kmalloc (NULL entries skipped). */
static inline void kfree_bulk(size_t nr, void **p)
{
	kmem_cache_free_bulk(NULL, nr, p);
}
/* Usable size of a kmalloc'd or slab object (0 for NULL/ZERO_SIZE_PTR). */
size_t ksize(const void *p);
/*
 * Usable size kmalloc(size) gives: its size class up to
 * KMALLOC_MAX_CACHE_SIZE, the page run (a power of two of pages) up to
 * KMALLOC_MAX_SIZE; size itself for 0 and above (as the kernel: kmalloc()
 * fails there).
 */
size_t kmalloc_size_roundup(size_t size);

/*
 * kvmalloc: kmalloc() when it can (sizes up to KMALLOC_MAX_SIZE), else a
 * mapping of its own (the kernel's vmalloc fallback): above
 * KMALLOC_MAX_SIZE, or when a request above a page finds no page run.  The
 * mapping needs a gfp that may block (or __GFP_NOFAIL).  NULL with EINVAL
 * for unknown gfp bits or a node out of range; NULL above INT_MAX bytes
 * (the kernel's limit) or on overflow of the array forms.  size 0:
 * ZERO_SIZE_PTR.  Free with kvfree() (or kfree()).
 */
void *kvmalloc(size_t size, gfp_t gfp);
void *kvzalloc(size_t size, gfp_t gfp);
void *kvmalloc_node(size_t size, gfp_t gfp, int node);
void *kvzalloc_node(size_t size, gfp_t gfp, int node);
void *kvmalloc_array(size_t n, size_t size, gfp_t gfp);
void *kvmalloc_array_node(size_t n, size_t size, gfp_t gfp, int node);
void *kvcalloc(size_t n, size_t size, gfp_t gfp);
void *kvcalloc_node(size_t n, size_t size, gfp_t gfp, int node);
/*
 * Resize a kvmalloc'd (or kmalloc'd) block, keeping its contents (the 7.x
 * signature).  p NULL: kvmalloc(); size 0: frees p, returns ZERO_SIZE_PTR;
 * a size that fits the usable size keeps p (__GFP_ZERO zeroes the tail).
 * On failure NULL, p untouched.
 */
void *kvrealloc(const void *p, size_t size, gfp_t gfp);
/* Free what kvmalloc() or kmalloc() gave.  NULL/ZERO_SIZE_PTR: no-op. */
void kvfree(const void *p);
/* Zero the first len bytes of p (len must not exceed it), then kvfree(). */
void kvfree_sensitive(const void *p, size_t len);

/*
 * slub_debug: check every slab and object of a debug cache (red zones,
 * poison of free objects, the freelist and counters), reporting each
 * problem in the kernel's shape and repairing it.  Returns the number of
 * problems (0 for caches without debug flags), -EINVAL for NULL.
 */
int kmem_cache_validate(struct kmem_cache *s);

/* -------------------------------------------------- prefilled sheaves */

/*
 * Borrow a sheaf holding at least `size` objects of s, to allocate from in
 * a section that must not fail or block (kmem_cache_alloc_from_sheaf()
 * never falls back to the cache).  Up to the cache's sheaf_capacity the
 * slot's spare or a barn sheaf is filled to full capacity; a larger request,
 * or a cache without sheaves, gets an "oversize" sheaf of exactly `size`
 * objects.  Returns NULL for size 0 or above SHEAF_MAX_PREFILL, a NULL
 * cache or unknown gfp bits (errno EINVAL), or when memory runs out
 * (nothing is left allocated).  A lent sheaf is the caller's until it is
 * returned: the sheaf functions report (and abort) a sheaf of another
 * cache or one that was returned already, like a double free.
 */
struct slab_sheaf *kmem_cache_prefill_sheaf(struct kmem_cache *s, gfp_t gfp,
					    unsigned int size);

/*
 * Make *sheafp hold at least `size` objects: 0, or -EINVAL (NULL cache,
 * NULL sheafp or *sheafp, size above SHEAF_MAX_PREFILL) or -ENOMEM, in
 * which case the sheaf is unchanged.
 * A request above the sheaf's capacity replaces it with a new sheaf.
 */
int kmem_cache_refill_sheaf(struct kmem_cache *s, gfp_t gfp,
			    struct slab_sheaf **sheafp, unsigned int size);

/*
 * Give the sheaf back with its remaining objects (NULL: no-op): it becomes
 * the slot's spare, or goes topped up (with gfp) into the barn, or is
 * flushed and freed.  A sheaf of another cache is reported (abort).
 */
void kmem_cache_return_sheaf(struct kmem_cache *s, gfp_t gfp,
			     struct slab_sheaf *sheaf);

/*
 * One object from the sheaf, NULL when it is empty (never from elsewhere).
 * gfp matters only for __GFP_ZERO.
 */
void *kmem_cache_alloc_from_sheaf(struct kmem_cache *s, gfp_t gfp,
				  struct slab_sheaf *sheaf);

/* Objects left in the sheaf (0 for NULL). */
unsigned int kmem_cache_sheaf_size(struct slab_sheaf *sheaf);

/* -------------------------------------------------- userspace additions */

/* Number of per-CPU slots (configured CPUs). */
unsigned int sheaf_nr_slots(void);
/* Number of NUMA nodes (real, or SHEAF_FAKE_NUMA). */
unsigned int sheaf_nr_nodes(void);
/* Node the calling thread runs on now. */
int sheaf_numa_node_id(void);
/* Node whose memory holds obj (-1 if obj is not libsheaf memory); a huge
 * kmalloc mapping reports the node it was allocated on. */
int sheaf_obj_node(const void *obj);
/* The cache of the slab holding obj (a kmalloc size class for kmalloc'd
 * objects); NULL for large kmalloc, huge spans and foreign memory. */
struct kmem_cache *sheaf_obj_cache(const void *obj);
/* Per-CPU mode in use: "rseq" or "fallback". */
const char *sheaf_percpu_mode(void);
/* What names a thread's slot: "mm_cid" or "cpu_id" (rseq mode: the rseq
 * field; cpu_id where the kernel does not fill mm_cid, or with
 * SHEAF_PERCPU=cpu_id), "getcpu" (fallback mode: sched_getcpu()). */
const char *sheaf_percpu_slots(void);
/*
 * The kernel's automatic sheaf capacity for objects of `size` bytes (7.0):
 * 60 below 256 bytes, 26 below 1 KiB, 12 below a page, 4 above, raised so
 * that the sheaf fills its allocation class (60, 28, 12, 4 here).  What
 * SHEAF_DEFAULT_CAPACITY=auto gives a cache whose object stride (the
 * object size aligned, with any debug metadata) is `size`.
 */
unsigned int sheaf_auto_capacity(unsigned int size);
/* Sheaf capacity of the cache now (0: classic path); an adaptive cache's
 * moves between its base and its maximum (sheaf_cache_limits()). */
unsigned int sheaf_cache_capacity(struct kmem_cache *s);

/*
 * The sheaf capacity and barn limit of a cache, as they are now
 * (docs/ARCHITECTURE.md, "Adaptive capacity").  With SHEAF_ADAPTIVE on
 * (the default), a cache with sheaves starts at capacity_base, the
 * capacity it was created with (args->sheaf_capacity or the automatic
 * one), grows while its slots often go to the barn or the slabs, up to
 * capacity_max (SHEAF_ADAPTIVE_MAX times the base, a base below 16
 * counting as 16, at most SHEAF_MAX_CAPACITY), and steps back when it
 * goes quiet or is shrunk;
 * barn_limit, the full and the empty sheaves each barn keeps, moves from
 * the kernel's 10 up to 40 likewise.  adaptive false (SHEAF_ADAPTIVE=0,
 * the library's own caches): the kernel's fixed values.  A cache without
 * sheaves reports zeros.
 */
struct sheaf_cache_limits {
	unsigned int capacity;      /* now: the sheaves' push and refill limit */
	unsigned int capacity_base; /* the floor: the capacity at creation */
	unsigned int capacity_max;  /* the ceiling: every sheaf's room */
	unsigned int barn_limit;    /* full (and empty) sheaves per barn */
	bool adaptive;
};
/* Fills *l; 0, or -EINVAL for a NULL argument.  A destroyed cache is
 * reported (as every entry point does). */
int sheaf_cache_limits(struct kmem_cache *s, struct sheaf_cache_limits *l);

/* Page layer accounting, for tests and tools. */
struct sheaf_page_info {
	size_t arenas;          /* arenas mapped (never unmapped) */
	size_t total_pages;     /* usable pages in all arenas */
	size_t used_pages;      /* pages handed out (slabs, large kmalloc) */
	size_t free_pages;      /* pages in the free lists */
	size_t dirty_pages;     /* free pages not yet given back with madvise */
	size_t huge_bytes;      /* bytes in live huge spans (kmalloc above 4 MiB) */
	size_t huge_retained;   /* bytes of freed huge spans kept resident for reuse */
};
void sheaf_page_info(struct sheaf_page_info *info);

/* Objects allocated and not freed in the cache (slab-level count).  A
 * sum read without stopping the cache: exact when no other thread moves
 * its objects meanwhile, off while one does (the idle drain flushing a
 * sheaf to its slabs included), so a test compares it after quiet. */
size_t sheaf_cache_objects_inuse(struct kmem_cache *s);
/*
 * Free objects the cache keeps ready in its per-CPU caches and barns
 * (sheaves and barns, or the classic per-CPU freelists and frozen slabs):
 * memory the cache holds that kmem_cache_shrink() gives back.  Exact when
 * quiescent; briefly stops the per-CPU fast paths of the cache to count.
 */
size_t sheaf_cache_cached_objects(struct kmem_cache *s);
/* Slabs the cache holds, all nodes. */
size_t sheaf_cache_slabs(struct kmem_cache *s);
/*
 * Frees of the cache that kfree_nolock() deferred and no drain has done
 * yet (0 for NULL).  A snapshot: exact when quiescent.
 */
size_t sheaf_cache_deferred_objects(struct kmem_cache *s);

/*
 * Failure injection with the kernel's fault-injection semantics, at three
 * points: SHEAF_FAULT_SLAB (failslab: kmem_cache_alloc*, kmalloc of the
 * size classes, kmem_cache_alloc_bulk, and sheaves, which are allocated
 * from internal caches), SHEAF_FAULT_PAGE (page runs, new arenas, huge
 * kmalloc mappings), SHEAF_FAULT_SHEAF (sheaf allocation only).
 *
 * spec: "interval,probability,space,times" as the kernel's failslab= boot
 * option (fail every interval-th eligible call, with probability percent,
 * once `space` bytes of requests have passed, at most `times` times, -1:
 * no limit; "1,10,0,-1" fails about 10% of allocations), then optional
 * ",cache=GLOB" (SHEAF_FAULT_SLAB only: caches whose name matches),
 * ",nowait" (only allocations that may not block, as the kernel's
 * ignore-gfp-wait) and ",verbose" (one stderr line per failure).
 * NULL, "" or "0" turns the point off.  __GFP_NOFAIL allocations never
 * fail; a prefilled sheaf still delivers what it holds.  While a point is
 * armed the inline fast paths are off (every allocation is checked).
 * The environment sets the same at start: SHEAF_FAILSLAB, SHEAF_FAILPAGE,
 * SHEAF_FAILSHEAF.  Returns 0, or -EINVAL (bad spec or point; the point is
 * then off).
 */
enum sheaf_fault { SHEAF_FAULT_SLAB, SHEAF_FAULT_PAGE, SHEAF_FAULT_SHEAF,
		   SHEAF_FAULT_NR };
int sheaf_fault_set(enum sheaf_fault which, const char *spec);
/* Failures injected at a point since the start (0 for a bad point). */
uint64_t sheaf_fault_injected(enum sheaf_fault which);

/*
 * Page-level failure injection, for tests: after `skip` more page
 * allocations, fail the next `count` (count < 0: all of them; count 0
 * turns injection off).  The same as SHEAF_FAULT_PAGE with a skip.
 */
void sheaf_inject_page_failures(long skip, long count);

/*
 * Test hook: take (hold = true) the per-CPU slot lock of s on the slot the
 * calling thread runs on, as a slow path would, or give it back (false).
 * While it is held every operation on that slot finds it busy and takes
 * the slab-layer fallback.  The thread must stay on its CPU (pin it).
 * Returns 0, -EBUSY when the slot is held already, -EINVAL for NULL or when
 * releasing a slot that is not held.
 */
int sheaf_test_hold_slot(struct kmem_cache *s, bool hold);

/*
 * Test hook: the steps in which the fork handlers take every library lock,
 * one rank of the lock order each (docs/ARCHITECTURE.md): "batch_lock",
 * "drain_lock", "info.lock", "slab_mutex", "flush_lock and every slot"
 * (every cache's slots owned as a remote flush owns them), "barn locks",
 * "list_locks", "arena_lock", "page_node locks", "pool.lock", "glob_lock",
 * "worker.lock".  sheaf_test_lock_step_name(): the name of step `step`,
 * NULL past the last.  sheaf_test_hold_lock_step(): take (hold = true)
 * that step's locks in the calling thread, as the fork handler would
 * (every cache's, with slab_mutex for the per-cache steps), or release
 * them (false).  While they are held, the thread must call nothing that
 * takes them (kmalloc_nolock() and kfree_nolock() do not).  One step at a
 * time per thread.  Returns 0, -EINVAL (no such step, or releasing a step
 * not held), -EBUSY (a step is held already).
 */
const char *sheaf_test_lock_step_name(unsigned int step);
int sheaf_test_hold_lock_step(unsigned int step, bool hold);

/*
 * The idle drain (SHEAF_IDLE_MS, docs/ARCHITECTURE.md "Idle drain"): a
 * thread that every SHEAF_IDLE_MS / 2 flushes the per-CPU slots and
 * barns of sheaf caches that no slow path used for two of its looks in a
 * row.  sheaf_idle_drained(): how many slots and barns holding objects
 * or sheaves it (or sheaf_test_idle_pass()) drained so far.
 * sheaf_test_idle_pass(): one look at every cache, now, in the calling
 * thread (what the thread does each period; with SHEAF_IDLE_MS=0 the
 * only looks); returns the slots and barns it drained.
 * sheaf_test_idle_passes(): the looks the thread and the hook made.
 */
unsigned long sheaf_idle_drained(void);
unsigned long sheaf_test_idle_pass(void);
unsigned long sheaf_test_idle_passes(void);

/*
 * Test hook: make the next `count` allocations of a sheaf fail (count < 0:
 * all of them; 0: off), to exercise the paths that do without one
 * (SHEAF_FAULT_SHEAF with interval 1 and probability 100).
 */
void sheaf_inject_sheaf_failures(long count);

/*
 * Test hook: refuse the huge heap's next `count` page moves (count < 0:
 * all of them; 0: off) as the kernel refuses one at the map count limit
 * (ENOMEM); with unmap_dest, after unmapping the destination first, as a
 * kernel before 6.17 could.  The heap then maps the destination again
 * (clean: it faults) or stops the process with a message.
 */
void sheaf_test_refuse_moves(long count, bool unmap_dest);

/* ------------------------------------------------- inline fast paths */

#if defined(SHEAF_HAVE_RSEQ_ASM)
/*
 * The building blocks, also used by the library itself (the malloc
 * replacement, libsheaf-malloc): one pop or push on the calling thread's
 * slot of `pcs`, rerun while the kernel aborts it.  False: the section
 * bailed out (slot busy, main empty or full), take a slow path.  hint:
 * keep the slot's top hint (struct sheaf_pcs, top), for callers whose
 * pops interleave many caches, as malloc()'s sizes do; the hint pop does
 * not prefetch the next object (<sheaf/rseq.h>, the pop).
 */
static inline __attribute__((always_inline)) bool
sheaf_pcs_pop_with(struct sheaf_pcs *pcs, void **objp, bool hint)
{
	int r;
	while ((r = sheaf_rseq_pop_fetch(pcs, objp, hint)) == 2)
		;
	return __builtin_expect(r == 0, 1);
}

static inline __attribute__((always_inline)) bool
sheaf_pcs_push_with(struct sheaf_pcs *pcs, void *obj, bool hint)
{
	int r;
	while ((r = sheaf_rseq_push_any(pcs, obj, hint)) == 2)
		;
	return __builtin_expect(r == 0, 1);
}

static inline __attribute__((always_inline)) bool
sheaf_pcs_pop_inline(struct sheaf_pcs *pcs, void **objp)
{
	return sheaf_pcs_pop_with(pcs, objp, false);
}

static inline __attribute__((always_inline)) bool
sheaf_pcs_push_inline(struct sheaf_pcs *pcs, void *obj)
{
	return sheaf_pcs_push_with(pcs, obj, false);
}

/*
 * The inline free checks: x is an object of a cache with inline sheaves
 * when its page's entry in the dense page map of slots (sheaf_pcsmap,
 * <sheaf/rseq.h>) names that cache's slots and x sits at an object
 * boundary of the slab, which the info line before slot 0 tests with one
 * multiply and one compare whatever the stride.  Eight pages' entries a
 * cache line, where the page descriptors take a line each: a program
 * freeing objects scattered over many pages (the nodes a tree replaces)
 * waits for far fewer lines.
 */
/* The entry of x's page (NULL: none, or not a libsheaf arena). */
static inline __attribute__((always_inline)) struct sheaf_pcs *
sheaf_pcsmap_inline(uintptr_t x)
{
	uintptr_t idx = x >> SHEAF_ARENA_SHIFT;
	if (__builtin_expect(idx >= SHEAF_ARENA_ENTRIES, 0))
		return NULL;
	struct sheaf_pcs **pm = sheaf_pcsmap[idx];
	if (__builtin_expect(pm == NULL, 0))
		return NULL;
	return pm[(x & ((1ul << SHEAF_ARENA_SHIFT) - 1)) >> SHEAF_PAGE_SHIFT];
}

/* kfree_rcu()'s check: the slots of x's cache, or NULL (not a slab object
 * at a boundary, a bad pointer, an order fallback's slab, the cache's
 * inline paths off: the caller's slow path decides and reports). */
static inline __attribute__((always_inline)) struct sheaf_pcs *
sheaf_pcs_of_inline(uintptr_t x)
{
	struct sheaf_pcs *pcs = sheaf_pcsmap_inline(x);
	if (__builtin_expect(pcs == NULL || !sheaf_pcs_info_ok(pcs, x), 0))
		return NULL;
	return pcs;
}

/*
 * x is an object of the cache h whose inline slots are pcs (not NULL):
 * kmem_cache_free()'s check.  A power-of-two size up to a page tiles its
 * slabs, so there the boundary test is an alignment test on h's line,
 * which the caller has loaded anyway.
 */
static inline __attribute__((always_inline)) bool
sheaf_obj_ok_inline(const struct sheaf_cache_hot *h, const struct sheaf_pcs *pcs,
		    uintptr_t x)
{
	return sheaf_pcsmap_inline(x) == pcs &&
	       (__builtin_expect(h->pow2_mask != 0, 1) ? (x & h->pow2_mask) == 0
						       : sheaf_pcs_info_ok(pcs, x));
}
#endif

/*
 * Unless SHEAF_NO_INLINE is defined, kmem_cache_alloc() and
 * kmem_cache_free() of caches with sheaves run their restartable section
 * inline in the caller, as the kernel's fast paths are inlined: a call costs
 * more than the section itself.  Everything else (no sheaves, statistics
 * on, fallback mode, several nodes, __GFP_ZERO, a pointer that does not
 * check out, main empty or full) goes to the exported function, which is
 * the stable ABI and does every check.
 */
#if defined(SHEAF_HAVE_RSEQ_ASM) && !defined(SHEAF_NO_INLINE) && !defined(SHEAF_BUILD)
static inline __attribute__((always_inline)) void *
sheaf_alloc_inline(struct kmem_cache *s, gfp_t gfp)
{
	struct sheaf_pcs *pcs;
	void *obj;
	if (__builtin_expect(s && (pcs = ((const struct sheaf_cache_hot *)s)->inline_pcs) &&
			     !(gfp & (~SHEAF_GFP_VALID_MASK | __GFP_ZERO)), 1) &&
	    sheaf_pcs_pop_inline(pcs, &obj))
		return obj;
	return (kmem_cache_alloc)(s, gfp);
}

/*
 * Push obj onto main.  With trust = false, obj must check out as an object
 * of s first.  The kernel's kmem_cache_free() trusts its cache argument
 * (unless hardened); trust = true does so too (only obj != NULL): a
 * pointer that is not an object of s is then not reported and corrupts the
 * cache.  kmem_cache_free() trusts when SHEAF_TRUST_FREE is defined before
 * <sheaf/slab.h> is included.
 */
static inline __attribute__((always_inline)) void
sheaf_free_inline(struct kmem_cache *s, void *obj, bool trust)
{
	const struct sheaf_cache_hot *h = (const struct sheaf_cache_hot *)s;
	struct sheaf_pcs *pcs;
	if (__builtin_expect(s && (pcs = h->inline_pcs) &&
			     (trust ? obj != NULL
				    : sheaf_obj_ok_inline(h, pcs, (uintptr_t)obj)), 1) &&
	    sheaf_pcs_push_inline(pcs, obj))
		return;
	(kmem_cache_free)(s, obj);
}

#define kmem_cache_alloc(s, gfp) sheaf_alloc_inline((s), (gfp))
#ifdef SHEAF_TRUST_FREE
#define kmem_cache_free(s, obj) sheaf_free_inline((s), (obj), true)
#else
#define kmem_cache_free(s, obj) sheaf_free_inline((s), (obj), false)
#endif
#endif

static inline void *kmem_cache_alloc_lru(struct kmem_cache *s,
					 struct list_lru *lru, gfp_t gfp)
{
	(void)lru;
	return kmem_cache_alloc(s, gfp);
}

#ifdef __cplusplus
}
#endif
#endif /* SHEAF_SLAB_H */
