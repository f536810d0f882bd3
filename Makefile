# libsheaf - thin wrapper over CMake/CTest.
#   make run    install missing Debian packages (or print the apt-get line),
#               build, run the quick demonstration benchmark
#   make test   same set-up, build, run every test
#   make bench  the full benchmark suite: table, CSV, plots, instruction
#               counts, docs/PERFORMANCE.md regenerated
#   make mallocbench  libsheaf-malloc against glibc, jemalloc, tcmalloc, mimalloc
#   make instructions  instructions per alloc+free pair (callgrind)
#   make layers    the source files' calls point down the layer table of
#                  docs/ARCHITECTURE.md (tools/layercheck.sh; also in make test)
#   make asan / make tsan   sanitizer builds and their tests
#   make matrix    gcc and clang, Release and Debug builds and their tests
#   make memcheck  the unit tests under valgrind memcheck
#   make fuzz FUZZ_TIME=60     libFuzzer (clang, ASan): the API harness for
#                              FUZZ_TIME s, then the statistics page parser
#                              for FUZZ_INFO_TIME s (default 30)
#   make soak DURATION=600     stress runs with random configurations and
#                              failure injection for a set time, then the
#                              adversarial stress as long in each per-CPU
#                              mode (3 x DURATION in all; SOAK_MALLOC=1 adds
#                              its malloc mode, 5 x DURATION)
#   make kernel-suites  the kernel's own userspace test suites
#                  (tools/testing/radix-tree: maple, xarray, idr-test,
#                  multiorder, main) on the kernel's slab shim and on
#                  libsheaf (compat/kernel-tools), in both per-CPU modes;
#                  fetches the newest linux-source-* Debian package into
#                  build-kernel/ (docs/KERNEL.md; about 25 minutes on 2 CPUs;
#                  KSUITES_QUICK=1: the five targets at -O2 on libsheaf
#                  only, two runs at a time, about 5-6 minutes)
#   make ci        everything CI runs (.ci/run)
#   make install PREFIX=/usr/local

PREFIX  ?= /usr/local
FUZZ_TIME ?= 60
FUZZ_INFO_TIME ?= 30
DURATION ?= 600
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=

DEB_PACKAGES := build-essential cmake pkg-config clang libclang-rt-14-dev liburcu-dev libcmocka-dev \
	libnuma-dev valgrind gnuplot-nox libjemalloc-dev libgoogle-perftools-dev \
	libmimalloc-dev python3 sqlite3 git

.PHONY: all deps build run test layers bench bench-doc mallocbench instructions asan tsan matrix \
	memcheck fuzz soak kernel-suites ci install clean

all: build

deps:
	@./tools/deps.sh $(DEB_PACKAGES)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./bench/report.sh $(BUILD) quick

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

layers: build
	./tools/layercheck.sh $(BUILD)

bench: build
	./bench/report.sh $(BUILD) full

# docs/PERFORMANCE.md again from its template and the last full run's results
bench-doc:
	./bench/report.sh $(BUILD) doc

mallocbench: build
	./$(BUILD)/bench/mallocbench

instructions: build
	./tools/instructions.sh $(BUILD)

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSHEAF_SANITIZE=address -DSHEAF_BUILD_BENCH=OFF
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j $(JOBS)

tsan: deps
	CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSHEAF_SANITIZE=thread -DSHEAF_BUILD_BENCH=OFF
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && SHEAF_PERCPU=fallback ctest --output-on-failure -j $(JOBS) -L stress

# Compilers x build types; each build runs every test.  The default build
# (gcc, RelWithDebInfo) is `make test`.  The gcc Debug build runs the
# expensive tier of the assertions too (src/compiler.h, check level 2).
matrix: deps
	CC=clang CXX=clang++ cmake -S . -B build-clang-release -DCMAKE_BUILD_TYPE=Release
	cmake --build build-clang-release -j $(JOBS)
	cd build-clang-release && ctest --output-on-failure -j $(JOBS)
	CC=gcc CXX=g++ cmake -S . -B build-gcc-debug -DCMAKE_BUILD_TYPE=Debug -DSHEAF_BUILD_BENCH=OFF \
		-DSHEAF_EXPENSIVE_CHECKS=ON
	cmake --build build-gcc-debug -j $(JOBS)
	cd build-gcc-debug && ctest --output-on-failure -j $(JOBS)
	CC=clang CXX=clang++ cmake -S . -B build-clang-debug -DCMAKE_BUILD_TYPE=Debug -DSHEAF_BUILD_BENCH=OFF
	cmake --build build-clang-debug -j $(JOBS)
	cd build-clang-debug && ctest --output-on-failure -j $(JOBS) -L unit

memcheck: deps
	cmake -S . -B build-memcheck -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHEAF_MEMCHECK=ON -DSHEAF_BUILD_BENCH=OFF
	cmake --build build-memcheck -j $(JOBS)
	cd build-memcheck && ctest --output-on-failure -j $(JOBS) -L memcheck

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DSHEAF_SANITIZE=address -DSHEAF_FUZZ=ON -DSHEAF_BUILD_BENCH=OFF
	cmake --build build-fuzz -j $(JOBS) --target fuzz_api fuzz_info
	./tools/fuzz.sh build-fuzz $(FUZZ_TIME) $(FUZZ_INFO_TIME)

soak: build
	./tools/soak.sh $(BUILD) $(DURATION)

kernel-suites: deps
	BUILD=$(BUILD) JOBS=$(JOBS) ./tools/kernel-suites.sh

ci:
	./.ci/run

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz build-memcheck build-clang-release \
		build-gcc-debug build-clang-debug
