// malloc_cxx.cc - C++ new/delete (plain, array, sized, aligned, nothrow) and
// the standard containers, through libsheaf-malloc under LD_PRELOAD.  With
// the library loaded, every pointer new returns must be libsheaf memory
// (sheaf_obj_node, looked up with dlsym: without the library the check is
// skipped and only the output is compared).
#include <dlfcn.h>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

static int (*obj_node)(const void *);
static int foreign;

static void mine(const void *p)
{
	if (obj_node && obj_node(p) < 0)
		foreign++;
}

struct alignas(64) Line {
	char bytes[64];
};

struct alignas(8192) Big {
	char bytes[100];
};

int main()
{
	obj_node = reinterpret_cast<int (*)(const void *)>(dlsym(RTLD_DEFAULT, "sheaf_obj_node"));
	long sum = 0;
	for (int round = 0; round < 20; round++) {
		int *i = new int(round);
		mine(i);
		sum += *i;
		delete i;
		double *a = new double[1000];
		mine(a);
		a[999] = round;
		sum += static_cast<long>(a[999]);
		delete[] a;
		Line *l = new Line[7];
		mine(l);
		if (reinterpret_cast<uintptr_t>(l) % 64)
			foreign += 1000;
		delete[] l;
		Big *b = new Big;
		mine(b);
		if (reinterpret_cast<uintptr_t>(b) % 8192)
			foreign += 1000;
		delete b;
		char *n = new (std::nothrow) char[1 << 20];
		mine(n);
		delete[] n;
	}
	std::map<std::string, std::vector<int>> m;
	std::unordered_map<int, std::string> u;
	for (int k = 0; k < 20000; k++) {
		m[std::to_string(k % 997)].push_back(k);
		u[k] = std::string(static_cast<size_t>(k % 70), 'x');
	}
	size_t total = 0;
	for (auto &e : m)
		total += e.second.size();
	for (auto &e : u)
		total += e.second.size();
	auto sp = std::make_shared<std::vector<std::string>>(1000, "shared");
	mine(sp.get());
	bool threw = false;
	try {
		std::vector<char> huge(static_cast<size_t>(1) << 50);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	std::printf("sum %ld total %zu shared %zu bad_alloc %d\n", sum, total,
		    sp->size(), threw);
	if (foreign) {
		std::fprintf(stderr, "malloc_cxx: %d pointers not from libsheaf\n", foreign);
		return 1;
	}
	return 0;
}
