/*
 * test_debug.c - slub_debug: one "wrong" program per detector, each in a
 * child process, asserting the report's header and the abort; repair and
 * continue with SHEAF_DEBUG_ABORT=0; kmem_cache_validate(); SLUB_DEBUG
 * parsing; debug caches have no sheaves and prefill takes the oversize path.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <sheaf/slab.h>

#include "test_util.h"

#define FZPU (SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER)

static struct kmem_cache *dcache(const char *name, unsigned int size)
{
	struct kmem_cache *s = kmem_cache_create(name, size, NULL, FZPU);
	if (!s)
		abort();
	return s;
}

/* The wrong programs (run in a child). */
static void wrong_right_redzone(void *arg)
{
	struct kmem_cache *s = dcache("dbg-rz-right", 40);
	char *p = kmem_cache_alloc(s, GFP_KERNEL);
	p[40] = 'x';                    /* one byte past the object */
	kmem_cache_free(s, p);
}

static void wrong_left_redzone(void *arg)
{
	struct kmem_cache *s = dcache("dbg-rz-left", 40);
	char *p = kmem_cache_alloc(s, GFP_KERNEL);
	p[-1] = 'x';                    /* one byte before it */
	kmem_cache_free(s, p);
}

static void wrong_use_after_free(void *arg)
{
	struct kmem_cache *s = dcache("dbg-uaf", 40);
	char *p = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, p);
	p[3] = 'x';                     /* write after free */
	(void)kmem_cache_alloc(s, GFP_KERNEL); /* the poison check finds it */
}

static void wrong_double_free(void *arg)
{
	struct kmem_cache *s = dcache("dbg-double", 40);
	void *p = kmem_cache_alloc(s, GFP_KERNEL);
	void *q = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, p);
	kmem_cache_free(s, q);
	kmem_cache_free(s, p);
}

static void wrong_cache(void *arg)
{
	struct kmem_cache *a = dcache("dbg-cache-a", 40);
	struct kmem_cache *b = dcache("dbg-cache-b", 40);
	void *p = kmem_cache_alloc(a, GFP_KERNEL);
	kmem_cache_free(b, p);
}

/* The same through kmem_cache_free_bulk(): the same report. */
static void wrong_cache_bulk(void *arg)
{
	struct kmem_cache *a = dcache("dbg-cache-a", 40);
	struct kmem_cache *b = dcache("dbg-cache-b", 40);
	void *p[2] = { kmem_cache_alloc(b, GFP_KERNEL), kmem_cache_alloc(a, GFP_KERNEL) };
	kmem_cache_free_bulk(b, 2, p);
}

static void wrong_freelist(void *arg)
{
	struct kmem_cache *s = dcache("dbg-freelist", 40);
	void *p[4];
	for (int i = 0; i < 4; i++)
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
	for (int i = 0; i < 3; i++)
		kmem_cache_free(s, p[i]);
	/* Scribble over a free object's free pointer (after its red zone). */
	*(void **)((char *)p[2] + 48) = (void *)0x1234;
	kmem_cache_free(s, p[3]);
}

static __attribute__((noinline)) void leak_two(struct kmem_cache *s)
{
	(void)kmem_cache_alloc(s, GFP_KERNEL);
	(void)kmem_cache_alloc(s, GFP_KERNEL);
}

/* Overwrite the stack below us, where unoptimised code leaves copies of
 * the lost pointers (memcheck would count them as still reachable). */
static __attribute__((noinline)) void scrub_stack(void)
{
	volatile char junk[16384];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = 0;
}

static void wrong_leak(void *arg)
{
	struct kmem_cache *s = dcache("dbg-leak", 40);
	leak_two(s);
	scrub_stack();
	kmem_cache_destroy(s);
	exit(0);
}

static void trace_program(void *arg)
{
	struct kmem_cache *s = kmem_cache_create("dbg-trace", 24, NULL, SLAB_TRACE);
	void *p = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, p);
	kmem_cache_destroy(s);
}

static void expect_report(void (*fn)(void *), const char *header, bool aborts)
{
	struct child_result r;
	run_in_child(fn, NULL, &r);
	if (aborts && !child_aborted(&r)) {
		char how[64];
		fail_msg("expected an abort, got %s; stderr:\n%s",
			 child_how(&r, how, sizeof(how)), r.err);
	}
	if (!strstr(r.err, header))
		fail_msg("expected \"%s\" in the report; stderr:\n%s", header, r.err);
	if (!strstr(r.err, "=============="))
		fail_msg("no report frame; stderr:\n%s", r.err);
}

static void test_right_redzone(void **state)
{
	expect_report(wrong_right_redzone, "BUG dbg-rz-right (Not tainted): Right Redzone overwritten", true);
}

static void test_left_redzone(void **state)
{
	expect_report(wrong_left_redzone, "BUG dbg-rz-left (Not tainted): Left Redzone overwritten", true);
}

static void test_use_after_free(void **state)
{
	expect_report(wrong_use_after_free, "BUG dbg-uaf (Not tainted): Poison overwritten", true);
}

static void test_double_free(void **state)
{
	expect_report(wrong_double_free, "BUG dbg-double (Not tainted): Object already free", true);
}

static void test_wrong_cache(void **state)
{
	expect_report(wrong_cache, "Wrong slab cache. dbg-cache-b but object is from dbg-cache-a", true);
	expect_report(wrong_cache_bulk, "Wrong slab cache. dbg-cache-b but object is from dbg-cache-a", true);
}

static void test_freelist_corruption(void **state)
{
	expect_report(wrong_freelist, "BUG dbg-freelist (Not tainted): Freechain corrupt", true);
}

/* T: a line for every allocation and free. */
static void test_trace(void **state)
{
	struct child_result r;
	run_in_child(trace_program, NULL, &r);
	assert_true(child_exited_ok(&r));
	if (!strstr(r.err, "TRACE dbg-trace alloc 0x") || !strstr(r.err, "TRACE dbg-trace free 0x"))
		fail_msg("no trace lines; stderr:\n%s", r.err);
}

static void test_leak_at_destroy(void **state)
{
	struct child_result r;
	run_in_child(wrong_leak, NULL, &r);
	assert_true(child_exited_ok(&r));
	if (!strstr(r.err, "Objects remaining in dbg-leak on __kmem_cache_shutdown()") ||
	    !strstr(r.err, "Allocated in") || !strstr(r.err, "2 objects remaining"))
		fail_msg("leak report missing parts; stderr:\n%s", r.err);
}

/*
 * U records the allocating thread's id, which libsheaf caches per thread: a
 * fork()ed child's thread must record its own id, not the one its parent
 * thread cached (the child of this program leaks two objects and reads the
 * tid in the leak report).
 */
static void track_tid_program(void *arg)
{
	struct kmem_cache *s = dcache("dbg-tid", 40);
	kmem_cache_free(s, kmem_cache_alloc(s, GFP_KERNEL)); /* caches our id */
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		fprintf(stderr, "child tid=%d\n", (int)syscall(SYS_gettid));
		leak_two(s);
		scrub_stack();
		kmem_cache_destroy(s);
		fflush(stderr);
		_exit(0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		exit(20);
	exit(0);
}

static void test_track_tid_after_fork(void **state)
{
	struct child_result r;
	run_in_child(track_tid_program, NULL, &r);
	assert_true(child_exited_ok(&r));
	const char *c = strstr(r.err, "child tid=");
	int tid = c ? atoi(c + 10) : 0;
	char want[32];
	snprintf(want, sizeof(want), " tid=%d\n", tid);
	const char *a = c ? strstr(c, "Allocated in") : NULL;
	if (!tid || !a || !strstr(a, want))
		fail_msg("no leak report naming the child's thread (%s); stderr:\n%s", want, r.err);
}

/* SHEAF_DEBUG_ABORT=0: report, repair, go on; validate counts problems. */
static void repair_and_validate(void *arg)
{
	struct kmem_cache *s = dcache("dbg-repair", 40);
	char *p = kmem_cache_alloc(s, GFP_KERNEL);
	char *q = kmem_cache_alloc(s, GFP_KERNEL);
	if (kmem_cache_validate(s) != 0)
		exit(10);
	p[40] = 'x';
	q[-2] = 'y';
	int n = kmem_cache_validate(s);
	if (n != 2)
		exit(11);
	/* repaired: clean now */
	if (kmem_cache_validate(s) != 0)
		exit(12);
	kmem_cache_free(s, p);
	kmem_cache_free(s, q);
	exit(0);
}

/* Environment is read at start-up: these children exec this program. */
/*
 * A free into a slab whose object count is wrong: the count is repaired
 * and the free goes on (the object was leaked: the free was skipped).
 */
static void count_repair(void *arg)
{
	struct kmem_cache *s = dcache("dbg-count", 40);
	char *p[4];
	for (int i = 0; i < 4; i++)
		p[i] = kmem_cache_alloc(s, GFP_KERNEL);
	kmem_cache_free(s, p[0]);
	kmem_cache_free(s, p[1]);
	*(void **)(p[1] + 48) = NULL; /* truncate the freelist after p[1] */
	kmem_cache_free(s, p[2]);     /* finds the count wrong */
	if (kmem_cache_alloc(s, GFP_KERNEL) != p[2])
		exit(13);               /* p[2] was not freed */
	exit(0);
}

static void exec_self(void *arg)
{
	char *argv[] = { "test_debug", (char *)arg, NULL };
	execv("/proc/self/exe", argv);
	_exit(99);
}

static void test_validate(void **state)
{
	struct child_result r;
	setenv("SHEAF_DEBUG_ABORT", "0", 1);
	run_in_child(exec_self, "repair_child", &r);
	unsetenv("SHEAF_DEBUG_ABORT");
	if (!child_exited_ok(&r)) {
		char how[64];
		fail_msg("validate child: %s; stderr:\n%s", child_how(&r, how, sizeof(how)), r.err);
	}
	assert_non_null(strstr(r.err, "FIX dbg-repair: Restoring Right Redzone"));
	assert_non_null(strstr(r.err, "FIX dbg-repair: Restoring Left Redzone"));
}

static void test_count_repair(void **state)
{
	struct child_result r;
	setenv("SHEAF_DEBUG_ABORT", "0", 1);
	run_in_child(exec_self, "count_child", &r);
	unsetenv("SHEAF_DEBUG_ABORT");
	if (!child_exited_ok(&r) || !strstr(r.err, "Wrong object count") ||
	    !strstr(r.err, "FIX dbg-count: Object count adjusted")) {
		char how[64];
		fail_msg("count repair child: %s; stderr:\n%s",
			 child_how(&r, how, sizeof(how)), r.err);
	}
}

/* Debug caches: no sheaves whatever was asked; prefill goes oversize. */
static void test_debug_cache_shape(void **state)
{
	struct kmem_cache_args a = { .sheaf_capacity = 32 };
	struct kmem_cache *s = kmem_cache_create("dbg-shape", 100, &a, SLAB_POISON);
	assert_non_null(s);
	assert_int_equal(sheaf_cache_capacity(s), 0);
	unsigned char *p = kmem_cache_alloc(s, GFP_KERNEL);
	/* A fresh object of a poisoned cache reads the poison. */
	assert_int_equal(p[0], 0x6b);
	assert_int_equal(p[99], 0xa5);
	struct slab_sheaf *sh = kmem_cache_prefill_sheaf(s, GFP_KERNEL, 5);
	assert_non_null(sh);
	assert_int_equal(kmem_cache_sheaf_size(sh), 5);
	void *o = kmem_cache_alloc_from_sheaf(s, GFP_KERNEL, sh);
	assert_non_null(o);
	kmem_cache_return_sheaf(s, GFP_KERNEL, sh);
	kmem_cache_free(s, o);
	kmem_cache_free(s, p);
	assert_int_equal(kmem_cache_validate(s), 0);
	assert_int_equal(kmem_cache_shrink(s), 0);
	assert_int_equal(sheaf_cache_objects_inuse(s), 0);
	kmem_cache_destroy(s);
}

/* SLUB_DEBUG=... from the environment, kernel syntax (in a child). */
static void env_flags(void *arg)
{
	/* Rules are read at start-up: SLUB_DEBUG is set by the parent. */
	struct kmem_cache *a = kmem_cache_create("envtest-one", 64, NULL, 0);
	struct kmem_cache *b = kmem_cache_create("other-cache", 64, NULL, 0);
	struct kmem_cache_args args = { .sheaf_capacity = 8 };
	struct kmem_cache *c = kmem_cache_create("envtest-two", 64, &args, 0);
	/* envtest-*: Z -> debug, no sheaves; other-cache: '-' -> none. */
	if (sheaf_cache_capacity(c) != 0)
		exit(20);
	char *p = kmem_cache_alloc(a, GFP_KERNEL);
	p[64] = 1; /* caught only with Z */
	kmem_cache_free(a, p);
	(void)b;
	exit(0);
}

static void test_env_syntax(void **state)
{
	setenv("SLUB_DEBUG", "Z,envtest-*;-,other-cache", 1);
	struct child_result r;
	run_in_child(exec_self, "env_child", &r);
	unsetenv("SLUB_DEBUG");
	if (!child_aborted(&r) || !strstr(r.err, "BUG envtest-one (Not tainted): Right Redzone overwritten"))
		fail_msg("SLUB_DEBUG=Z,envtest-* not applied; stderr:\n%s", r.err);
}

/*
 * Constructed and SLAB_TYPESAFE_BY_RCU objects keep their contents while
 * free, so P does not poison them (the kernel's rule); red zones are still
 * checked.  (They were poisoned, and the first allocation after the
 * constructor reported "Poison overwritten".)
 */
static void ctor_fill(void *obj)
{
	memset(obj, 0x5c, 48);
}

static void right_ctor_poison(void *arg)
{
	struct kmem_cache_args a = { .ctor = ctor_fill };
	struct kmem_cache *c = kmem_cache_create("dbg-ctor", 48, &a, FZPU);
	struct kmem_cache *t = kmem_cache_create("dbg-typesafe", 48, NULL,
						 FZPU | SLAB_TYPESAFE_BY_RCU);
	if (!c || !t)
		abort();
	for (int r = 0; r < 3; r++) {
		unsigned char *p = kmem_cache_alloc(c, GFP_KERNEL);
		unsigned char *q = kmem_cache_alloc(t, GFP_KERNEL);
		for (int i = 0; i < 48; i++)
			if (p[i] != 0x5c)
				_exit(3); /* constructed state lost */
		q[0] = 1;
		kmem_cache_free(c, p);
		kmem_cache_free(t, q);
	}
	if (kmem_cache_validate(c) || kmem_cache_validate(t))
		_exit(4);
	kmem_cache_destroy(c);
	kmem_cache_destroy(t);
}

static void test_ctor_not_poisoned(void **state)
{
	struct child_result r;
	run_in_child(right_ctor_poison, NULL, &r);
	if (!child_exited_ok(&r) || r.len) {
		char how[64];
		fail_msg("ctor/typesafe debug cache: %s; stderr:\n%s",
			 child_how(&r, how, sizeof(how)), r.err);
	}
}

/*
 * kmem_cache_validate() counts problems without aborting, but only on its
 * own thread: a report elsewhere during a validate still aborts (validate
 * switched abort off for the whole process).
 */
static volatile int validating;

static void *validate_loop(void *arg)
{
	struct kmem_cache *big = arg;
	validating = 1;
	for (;;)
		(void)kmem_cache_validate(big);
	return NULL;
}

static void wrong_during_validate(void *arg)
{
	struct kmem_cache *big = dcache("dbg-validate-big", 64);
	for (int i = 0; i < 50000; i++)
		(void)kmem_cache_alloc(big, GFP_KERNEL);
	pthread_t t;
	pthread_create(&t, NULL, validate_loop, big);
	while (!validating)
		;
	usleep(2000); /* well inside a validate: each takes milliseconds */
	wrong_right_redzone(NULL);
	_exit(5);     /* not aborted */
}

static void test_validate_abort_thread(void **state)
{
	expect_report(wrong_during_validate,
		      "BUG dbg-rz-right (Not tainted): Right Redzone overwritten", true);
}

/* Each wrong program by name, for valgrind_debug_test.sh (memcheck). */
static const struct {
	const char *name;
	void (*fn)(void *);
} wrong_programs[] = {
	{ "right_redzone", wrong_right_redzone },
	{ "left_redzone", wrong_left_redzone },
	{ "use_after_free", wrong_use_after_free },
	{ "double_free", wrong_double_free },
	{ "wrong_cache", wrong_cache },
	{ "freelist", wrong_freelist },
	{ "leak", wrong_leak },
};

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "--wrong")) {
		for (size_t i = 0; i < sizeof(wrong_programs) / sizeof(wrong_programs[0]); i++)
			if (!strcmp(argv[2], wrong_programs[i].name)) {
				wrong_programs[i].fn(NULL);
				return 0;
			}
		fprintf(stderr, "test_debug: no wrong program %s\n", argv[2]);
		return 2;
	}
	if (argc > 1 && !strcmp(argv[1], "env_child")) {
		env_flags(NULL);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "count_child")) {
		count_repair(NULL);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "repair_child")) {
		repair_and_validate(NULL);
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_right_redzone),
		cmocka_unit_test(test_left_redzone),
		cmocka_unit_test(test_use_after_free),
		cmocka_unit_test(test_double_free),
		cmocka_unit_test(test_wrong_cache),
		cmocka_unit_test(test_freelist_corruption),
		cmocka_unit_test(test_leak_at_destroy),
		cmocka_unit_test(test_track_tid_after_fork),
		cmocka_unit_test(test_trace),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_debug_cache_shape),
		cmocka_unit_test(test_ctor_not_poisoned),
		cmocka_unit_test(test_count_repair),
		cmocka_unit_test(test_validate_abort_thread),
		cmocka_unit_test(test_env_syntax),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
