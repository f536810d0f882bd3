/*
 * malloc_threads.c - the project's own multi-threaded malloc user, run by
 * malloc_programs.sh with and without libsheaf-malloc (the outputs must be
 * identical).  Threads allocate random sizes, fill them with a pattern
 * derived from their contents' owner, and pass them around a ring, so most
 * objects are freed by another thread than the one that allocated them; the
 * receiving thread checks every byte first.  Then a fork() while threads
 * run (the child allocates at once), and a dlopen()ed module that allocates
 * and frees across the module boundary.
 *
 *   malloc_threads DSO_PATH [THREADS] [ROUNDS]
 *
 * Prints totals that do not depend on the allocator; exits non-zero on any
 * corruption.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BATCH 256

struct obj {
	uint32_t size;   /* bytes in data */
	uint32_t seed;
	unsigned char data[];
};

/* One mailbox per thread: a batch of objects handed over by its neighbour. */
struct mailbox {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct obj **batch;     /* NULL: empty */
	int done;
};

static int nthreads = 4;
static long rounds = 400;
static struct mailbox *box;
static uint64_t checked_bytes[64];
static int failures;

static uint32_t next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static struct obj *make(uint32_t *x)
{
	uint32_t r = next(x);
	uint32_t size = r % 16 == 0 ? 1000 + r % 60000 : r % 600;
	struct obj *o = malloc(sizeof(*o) + size);
	if (!o) {
		fprintf(stderr, "malloc(%u) failed\n", size);
		exit(1);
	}
	o->size = size;
	o->seed = next(x);
	for (uint32_t i = 0; i < size; i++)
		o->data[i] = (unsigned char)(o->seed + i);
	return o;
}

static uint64_t verify_free(struct obj *o)
{
	for (uint32_t i = 0; i < o->size; i++)
		if (o->data[i] != (unsigned char)(o->seed + i)) {
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
			break;
		}
	uint64_t n = o->size;
	free(o);
	return n;
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint32_t x = 0x9e3779b9u * (uint32_t)(id + 1);
	struct mailbox *next_box = &box[(id + 1) % nthreads];
	struct mailbox *mine = &box[id];
	for (long r = 0; r < rounds; r++) {
		struct obj **b = malloc(BATCH * sizeof(*b));
		for (int i = 0; i < BATCH; i++)
			b[i] = make(&x);
		/* Some die young, on this thread, and are replaced. */
		for (int i = 0; i < BATCH; i += 3) {
			checked_bytes[id] += verify_free(b[i]);
			b[i] = make(&x);
		}
		b = realloc(b, BATCH * sizeof(*b)); /* same size: kept */
		pthread_mutex_lock(&next_box->lock);
		while (next_box->batch)
			pthread_cond_wait(&next_box->cond, &next_box->lock);
		next_box->batch = b;
		pthread_cond_broadcast(&next_box->cond);
		pthread_mutex_unlock(&next_box->lock);

		pthread_mutex_lock(&mine->lock);
		while (!mine->batch)
			pthread_cond_wait(&mine->cond, &mine->lock);
		struct obj **in = mine->batch;
		mine->batch = NULL;
		pthread_cond_broadcast(&mine->cond);
		pthread_mutex_unlock(&mine->lock);
		for (int i = 0; i < BATCH; i++)
			checked_bytes[id] += verify_free(in[i]);
		free(in);
	}
	return NULL;
}

static int fork_while_running(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		alarm(20);
		uint32_t x = 7;
		for (int i = 0; i < 2000; i++)
			verify_free(make(&x));
		_exit(failures ? 2 : 0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DSO [THREADS] [ROUNDS]\n", argv[0]);
		return 2;
	}
	if (argc > 2)
		nthreads = atoi(argv[2]);
	if (argc > 3)
		rounds = atol(argv[3]);
	if (nthreads < 2 || nthreads > 64)
		nthreads = 4;
	box = calloc((size_t)nthreads, sizeof(*box));
	for (int i = 0; i < nthreads; i++) {
		pthread_mutex_init(&box[i].lock, NULL);
		pthread_cond_init(&box[i].cond, NULL);
	}
	pthread_t *t = calloc((size_t)nthreads, sizeof(*t));
	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
	int fork_fail = 0;
	for (int i = 0; i < 5; i++)
		fork_fail += fork_while_running();
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	uint64_t total = 0;
	for (int i = 0; i < nthreads; i++)
		total += checked_bytes[i];

	/* dlopen()ed code: allocations cross the module boundary both ways. */
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	char *(*up)(const char *) = (char *(*)(const char *))dlsym(h, "dso_strdup_upper");
	void *(*da)(size_t) = (void *(*)(size_t))dlsym(h, "dso_alloc");
	void (*df)(void *) = (void (*)(void *))dlsym(h, "dso_free");
	if (!up || !da || !df)
		return 1;
	char *s = up("sheaves and barns");
	unsigned char *z = da(5000);
	int zero = 1;
	for (int i = 0; i < 5000; i++)
		zero &= z[i] == 0;
	free(z);
	df(strdup("freed in the module"));
	printf("threads %d rounds %ld bytes checked %llu failures %d forks failed %d\n",
	       nthreads, rounds, (unsigned long long)total, failures, fork_fail);
	printf("dso: %s zeroed %d\n", s, zero);
	free(s);
	dlclose(h);
	for (int i = 0; i < nthreads; i++) {
		pthread_mutex_destroy(&box[i].lock);
		pthread_cond_destroy(&box[i].cond);
	}
	free(t);
	free(box);
	return failures || fork_fail;
}
