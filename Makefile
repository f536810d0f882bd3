# libsheaf - thin wrapper over CMake/CTest.
#   make run    install missing Debian packages (or print the apt-get line),
#               build, run the quick demonstration benchmark
#   make test   same set-up, build, run every test
#   make bench  the full benchmark
#   make mallocbench  libsheaf-malloc against glibc, jemalloc, tcmalloc, mimalloc
#   make instructions  instructions per alloc+free pair (callgrind)
#   make asan / make tsan   sanitizer builds and their tests
#   make install PREFIX=/usr/local

PREFIX  ?= /usr/local
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=

DEB_PACKAGES := build-essential cmake pkg-config clang libclang-rt-14-dev liburcu-dev libcmocka-dev \
	libnuma-dev valgrind gnuplot-nox libjemalloc-dev libgoogle-perftools-dev \
	libmimalloc-dev python3 sqlite3 git

.PHONY: all deps build run test bench mallocbench instructions asan tsan install clean

all: build

deps:
	@./tools/deps.sh $(DEB_PACKAGES)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/bench/sheafbench --quick

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	./$(BUILD)/bench/sheafbench
	./$(BUILD)/bench/vmabench

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

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) build-asan build-tsan
