/* SPDX-License-Identifier: MIT */
/*
 * fork_faults.c - what a fork() costs the parent in page faults.
 *
 * After fork() every page the parent writes is a copy-on-write fault (a
 * page copy, and a TLB shootdown when the process ran on other CPUs), and
 * the child pays the same for every page it writes.  The fork handlers
 * write what they lock; this program checks that what they write stays on
 * a few pages whatever the number of caches (docs/MALLOC.md, "fork()"):
 *
 *  - one thread: no lock is taken at all (glibc's fork() skips its own
 *    malloc locks alike), so a fork faults no page of libsheaf's;
 *  - two threads: every lock is taken, and the per-cache state the
 *    handlers write (flush lock, slots, barns, list locks) is packed in the
 *    fork-state pool, so NCACHES caches cost a few pages, not one each.
 *
 * Counts, never times: ru_minflt of the parent over FORKS forks (its child
 * exits at once after using every cache), after a warm-up fork.  Before
 * the pool every cache's state had a page of its own: more than NCACHES
 * faults per fork in both cases.  Also churns the pool (caches destroyed
 * and created between forks) and checks every cache in every child.
 * With SHEAF_IDLE_MS not 0 (fork_faults_idle) the one-thread case has
 * libsheaf's idle thread besides, and must cost the same (init.c's light
 * fork path).  Exit status 0 on success, 1 on a failed check, 77 when the
 * process is not single-threaded at start (a sanitizer's thread): nothing
 * to measure.
 */

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define HAVE_SINGLE_THREADED 1
#endif
#endif

#include <sheaf/slab.h>

#define NCACHES 128
#define FORKS   16

static struct kmem_cache *caches[NCACHES];
static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fork_faults: FAIL: " __VA_ARGS__);  \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                          \
	} while (0)

/* Threads of this process (entries of /proc/self/task). */
static int task_count(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Sheaf caches and classic ones (fork-state blocks of two sizes). */
static struct kmem_cache *make_cache(int i, bool sheaves)
{
	char name[32];
	struct kmem_cache_args args = { .sheaf_capacity = sheaves ? 16 : 0 };
	snprintf(name, sizeof(name), "ff-%d%s", i, sheaves ? "" : "-classic");
	return kmem_cache_create(name, 16 + 8 * (unsigned int)(i % 40), &args, 0);
}

/* Every cache serves and takes back objects of its own size. */
static bool use_every_cache(void)
{
	for (int i = 0; i < NCACHES; i++) {
		void *p[4];
		for (int k = 0; k < 4; k++) {
			p[k] = kmem_cache_alloc(caches[i], GFP_KERNEL);
			if (!p[k])
				return false;
			memset(p[k], 0x5a, kmem_cache_size(caches[i]));
		}
		for (int k = 0; k < 4; k++)
			kmem_cache_free(caches[i], p[k]);
	}
	void *k = kmalloc(3000, GFP_KERNEL);
	if (!k)
		return false;
	kfree(k);
	return true;
}

static long minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* One fork: the child uses every cache (and every 4th forks again). */
static bool one_fork(int n)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		bool ok = use_every_cache();
		if (ok && n % 4 == 0) {
			pid_t g = fork();
			if (g == 0)
				_exit(use_every_cache() ? 0 : 1);
			int st;
			ok = g > 0 && waitpid(g, &st, 0) == g && WIFEXITED(st) &&
			     WEXITSTATUS(st) == 0;
		}
		_exit(ok ? 0 : 1);
	}
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Page faults of the parent per fork, over FORKS forks. */
static double faults_per_fork(const char *what)
{
	CHECK(one_fork(1), "%s: warm-up child failed", what);
	long before = minflt();
	for (int n = 0; n < FORKS; n++)
		CHECK(one_fork(n + 1), "%s: child %d failed", what, n);
	double f = (double)(minflt() - before) / FORKS;
	printf("fork_faults: %s: %.1f page faults per fork in the parent (%d caches)\n",
	       what, f, NCACHES);
	return f;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int state;

static void *other_thread(void *arg)
{
	(void)arg;
	void *p = kmalloc(64, GFP_KERNEL);
	pthread_mutex_lock(&lock);
	state = 1;
	pthread_cond_broadcast(&cond);
	while (state != 2)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	kfree(p);
	return NULL;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
#ifdef HAVE_SINGLE_THREADED
	if (!__libc_single_threaded) {
		printf("fork_faults: not single-threaded at start: skipped\n");
		return 77;
	}
#endif
	for (int i = 0; i < NCACHES; i++) {
		caches[i] = make_cache(i, i % 2 == 0);
		if (!caches[i]) {
			fprintf(stderr, "fork_faults: cannot create cache %d\n", i);
			return 1;
		}
	}
	CHECK(use_every_cache(), "the parent's caches");

#ifdef HAVE_SINGLE_THREADED
	/*
	 * With the idle drain on (SHEAF_IDLE_MS not 0) the sheaf caches
	 * started libsheaf's idle thread: the process has two threads, but
	 * the handlers take slab_mutex only (init.c, fork_light), which is on
	 * the fork-data page.  fork_faults_idle sets a period of an hour, so
	 * that no look (which writes every cache's slots, a copy-on-write
	 * fault per page after each fork) falls into the count: it measures
	 * the handlers.  Wait until the thread exists, and a little more for
	 * it to say that it runs.
	 */
	const char *idle = getenv("SHEAF_IDLE_MS");
	bool with_idle = !idle || strcmp(idle, "0") != 0;
	if (with_idle) {
		int i;
		for (i = 0; i < 500 && task_count() < 2; i++)
			usleep(10000);
		CHECK(task_count() == 2, "the idle thread did not start");
		usleep(100000);
	}
	double one = faults_per_fork(with_idle ? "one thread and the idle thread"
					       : "one thread");
	/*
	 * libsheaf writes nothing (one lock, on the fork-data page, with the
	 * idle thread): the parent's own stack and glibc's, whose fork of a
	 * process with two threads writes more of its own (its malloc arena
	 * locks and thread list): 6 here against 2 (8 and 4 under ASan).
	 * Every lock of every cache taken is 22 or more.
	 */
	int bound = with_idle ? 12 : 8;
	CHECK(one < bound, "one thread: %.1f faults per fork (expected < %d)", one, bound);
#endif

	/*
	 * One idle look right after a fork (sheaf_test_idle_pass(), what the
	 * idle thread does each period) at caches that are quiet and drained:
	 * it writes only the drain's own table, not the slots, barns and
	 * flush locks in the fork-state pool nor the cache structs, so it
	 * faults a few pages however many caches there are (5 here: the
	 * table, slab_mutex's page, the page layer's locks, the stack).  With its views
	 * in the slots, barns and cache structs, and the flush lock and every
	 * slot's stop word taken at each look, it cost 81 faults here (64
	 * sheaf caches).  Three looks first: the slots' objects are drained at
	 * the third (idle for two looks), and the table's pages exist.
	 */
	for (int n = 0; n < 3; n++)
		sheaf_test_idle_pass();
	long looks = 0;
	for (int n = 0; n < 4; n++) {
		CHECK(one_fork(1), "child before look %d failed", n);
		long before_look = minflt();
		sheaf_test_idle_pass();
		looks += minflt() - before_look;
	}
	printf("fork_faults: one idle look after a fork: %.1f page faults (%d caches)\n",
	       (double)looks / 4, NCACHES);
	CHECK(looks < 4 * 8, "idle look after fork: %.1f faults (expected < 8)",
	      (double)looks / 4);

	pthread_t t;
	if (pthread_create(&t, NULL, other_thread, NULL) != 0) {
		fprintf(stderr, "fork_faults: pthread_create failed\n");
		return 1;
	}
	pthread_mutex_lock(&lock);
	while (state != 1)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	double two = faults_per_fork("two threads");
	/* About 450 bytes of fork state per cache: NCACHES caches plus the
	 * kmalloc ones in under 20 pages; one page each was NCACHES + 30. */
	CHECK(two < NCACHES / 4, "two threads: %.1f faults per fork (expected < %d)",
	      two, NCACHES / 4);

	/* Pool churn: every other cache destroyed and created again (blocks
	 * freed, joined and reused), then forks again. */
	for (int i = 0; i < NCACHES; i += 2) {
		kmem_cache_destroy(caches[i]);
		caches[i] = NULL;
	}
	for (int i = 0; i < NCACHES; i += 2) {
		caches[i] = make_cache(i, false);
		CHECK(caches[i] != NULL, "cache %d again", i);
		if (!caches[i])
			return 1;
	}
	CHECK(use_every_cache(), "the parent's caches after the churn");
	double again = faults_per_fork("two threads, after churn");
	CHECK(again < NCACHES / 4, "after churn: %.1f faults per fork (expected < %d)",
	      again, NCACHES / 4);

	pthread_mutex_lock(&lock);
	state = 2;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	for (int i = 0; i < NCACHES; i++)
		kmem_cache_destroy(caches[i]);
	if (failures)
		return 1;
	printf("fork_faults: ok\n");
	return 0;
}
