// SPDX-License-Identifier: MIT
//
// cxx_header.cc - <sheaf/slab.h> compiles as C++ without warnings
// (-Wall -Wextra -Werror) and both kmem_cache_create() overloads work: the
// kmem_cache_args form (also with NULL args) and the legacy
// (align, flags, ctor) form; <sheaf/info.h> too.  Exits 0 on success.
#include <sheaf/info.h>
#include <sheaf/slab.h>
#include <sheaf/stats.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace {

int ctor_runs = 0;

void ctor(void *p)
{
	std::memset(p, 0x42, 48);
	ctor_runs++;
}

bool use(struct kmem_cache *s, unsigned int size, unsigned int align)
{
	if (!s)
		return false;
	void *p = kmem_cache_alloc(s, GFP_KERNEL);
	if (!p || (align && reinterpret_cast<uintptr_t>(p) % align))
		return false;
	std::memset(p, 1, size);
	kmem_cache_free(s, p);
	return kmem_cache_size(s) == size;
}

} // namespace

int main()
{
	struct kmem_cache_args args = {};
	args.align = 64;
	args.sheaf_capacity = 8;
	struct kmem_cache *a = kmem_cache_create("cxx-args", 100, &args, SLAB_HWCACHE_ALIGN);
	struct kmem_cache *b = kmem_cache_create("cxx-legacy", 48, 16u, 0, ctor);
	struct kmem_cache *c = kmem_cache_create("cxx-null-args", 24, nullptr, 0);
	bool ok = use(a, 100, 64) && use(b, 48, 16) && use(c, 24, 8) && ctor_runs > 0;

	void *k = kmalloc(100, GFP_KERNEL);
	ok = ok && k && ksize(k) == 128;
	kfree(k);
	ok = ok && std::strcmp(sheaf_stat_name(SHEAF_STAT_ALLOC_FASTPATH), "alloc_fastpath") == 0;
	ok = ok && std::strstr(sheaf_info_sort_keys, "allocs") != nullptr &&
	     sheaf_info_print(stdout, nullptr, SHEAF_INFO_JSON, nullptr) == -EINVAL;

	kmem_cache_destroy(a);
	kmem_cache_destroy(b);
	kmem_cache_destroy(c);
	std::printf("cxx_header: %s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
