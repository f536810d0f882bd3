/* SPDX-License-Identifier: MIT */
/*
 * compiler.h - the few compiler helpers every layer uses, defined once.
 */
#ifndef SHEAF_COMPILER_H
#define SHEAF_COMPILER_H

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define SHEAF_INLINE   static inline __attribute__((always_inline))
#define SHEAF_NOINLINE __attribute__((noinline))
#define SHEAF_COLD     __attribute__((cold, noinline))
#define SHEAF_EXPORT   __attribute__((visibility("default")))
/*
 * The global locks the fork handlers take, and the state they write around
 * fork(), share one section (page aligned in the shared libraries by
 * src/fork_data.ld): after fork() every page written is a copy-on-write
 * fault in the parent and in the child, so what they write stays on as
 * few pages as possible (the per-cache part: the fork-state pool,
 * pages.c).
 */
#define SHEAF_FORK_DATA __attribute__((section("sheaf_fork_data")))
#define SHEAF_NORETURN __attribute__((noreturn))

/*
 * Prefetch the line of addr (a hint; any address is fine).  GCC deletes
 * __builtin_prefetch() loops whose only effect is the prefetch (it takes
 * them for pure code), so on x86-64 it is a volatile asm (the address in a
 * register: no dereference the compiler could draw conclusions from).
 */
#if defined(__x86_64__)
#define sheaf_prefetch(addr) __asm__ volatile("prefetcht0 (%0)" : : "r"(addr))
#else
#define sheaf_prefetch(addr) __builtin_prefetch(addr, 0, 3)
#endif

#define READ_ONCE(x)     __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define smp_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define smp_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define barrier() __asm__ __volatile__("" ::: "memory")

#define ALIGN_UP(x, a)   (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define IS_POW2(x)       ((x) != 0 && ((x) & ((x) - 1)) == 0)
#define ARRAY_SIZE(a)    (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/*
 * Assertions, in tiers (docs/ARCHITECTURE.md, "Assertions"):
 *
 *   SHEAF_CHECK_LEVEL 0  release builds (NDEBUG: Release, RelWithDebInfo):
 *                        no check runs;
 *                     1  builds without NDEBUG (Debug, the sanitizer
 *                        builds): SHEAF_ASSERT() runs;
 *                     2  SHEAF_EXPENSIVE_CHECKS defined (cmake
 *                        -DSHEAF_EXPENSIVE_CHECKS=ON; wins over NDEBUG):
 *                        SHEAF_ASSERT_EXPENSIVE() runs too.
 *
 *   SHEAF_ASSERT(cond)            an O(1) invariant (a count against its
 *                                 bound, a sheaf full where it must be);
 *   SHEAF_ASSERT_EXPENSIVE(cond)  a walk (a list's length against its
 *                                 count, every object of a sheaf belonging
 *                                 to its cache); each call site bounds its
 *                                 walk, so that the stress tests stay fast.
 *
 * Both always compile: at a level where a tier is off, cond is still
 * parsed and type-checked (inside sizeof) but never evaluated, so an
 * assertion cannot rot in the builds that do not run it.  So cond must
 * have no side effect.  A failure prints the condition and where, and
 * aborts (_sheaf_assert_fail(), percpu.c).  Only slow paths assert: the
 * inline fast paths of <sheaf/slab.h> and <sheaf/rseq.h> never do, and
 * a release build's code is that of no assertion at all.
 */
#ifndef SHEAF_CHECK_LEVEL
#if defined(SHEAF_EXPENSIVE_CHECKS)
#define SHEAF_CHECK_LEVEL 2
#elif !defined(NDEBUG)
#define SHEAF_CHECK_LEVEL 1
#else
#define SHEAF_CHECK_LEVEL 0
#endif
#endif

void _sheaf_assert_fail(const char *cond, const char *file, int line,
			const char *fn) __attribute__((noreturn, cold));
/* The level the library was built with (for the tests: SHEAF_CHECK_LEVEL
 * of a test's own compilation need not be the library's). */
int _sheaf_check_level(void);

#define SHEAF_ASSERT_ON_(cond)                                                 \
	(__builtin_expect(!!(cond), 1)                                         \
		 ? (void)0                                                     \
		 : _sheaf_assert_fail(#cond, __FILE__, __LINE__, __func__))
#define SHEAF_ASSERT_OFF_(cond) ((void)sizeof(!(cond)))

#if SHEAF_CHECK_LEVEL >= 1
#define SHEAF_ASSERT(cond) SHEAF_ASSERT_ON_(cond)
#else
#define SHEAF_ASSERT(cond) SHEAF_ASSERT_OFF_(cond)
#endif
#if SHEAF_CHECK_LEVEL >= 2
#define SHEAF_ASSERT_EXPENSIVE(cond) SHEAF_ASSERT_ON_(cond)
#else
#define SHEAF_ASSERT_EXPENSIVE(cond) SHEAF_ASSERT_OFF_(cond)
#endif

/*
 * Invariant helpers the assertions of several layers call (they are
 * defined whatever the level, so that an assertion that is off still
 * compiles).  sheaf.c: every object of sheaf[0..size) is an object of s
 * (a walk: SHEAF_ASSERT_EXPENSIVE() only).
 */
struct kmem_cache;
struct slab_sheaf;
_Bool _sheaf_sheaf_objects_of(const struct kmem_cache *s,
			      const struct slab_sheaf *sheaf);

#define container_of(ptr, type, member)                                        \
	((type *)((char *)(ptr) - __builtin_offsetof(type, member)))

#if defined(__SANITIZE_ADDRESS__)
#define SHEAF_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHEAF_HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SHEAF_HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHEAF_HAVE_TSAN 1
#endif
#endif

/* For reads of possibly-freed object memory that are validated afterwards. */
#define SHEAF_NO_SANITIZE                                                      \
	__attribute__((no_sanitize("address", "thread")))

#endif
