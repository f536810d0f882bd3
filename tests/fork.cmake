# fork() while other threads hold libsheaf's locks (included from
# tests/CMakeLists.txt): one case per lock, each forking FORK_ITERS times
# (default 1000) while background threads loop on the path that takes the
# lock; every child must exit within 20 s.  In both per-CPU modes.
#  - test_fork: the library's locks (sheaf and classic slots, barn, list,
#    flush, slab mutex, arena and page-node locks, statistics publisher,
#    RCU worker and pointer batch, rcu_free sheaves, fault globs); skips
#    itself (77) under TSan, which does not support threads in fork()ed
#    children;
#  - fork_malloc: kmalloc_runs.c's drain_lock (malloc_trim) and the kmalloc
#    caches' slots under LD_PRELOAD=libsheaf-malloc (not in sanitizer
#    builds, which have no libsheaf-malloc).
# Run time on a two-CPU VM: test_fork about 3 minutes per mode when the
# machine is otherwise idle at 1000 forks a case (13 cases, about 13 ms each; every
# 8th child forks again), more under load; fork_malloc under a minute (fallback: up to 4.5 minutes under
# load).  Hence label "stress" and timeouts with room for `ctest -j`.
# A hung child costs 20 s and ends its case, so the timeouts are only a
# backstop.  FORK_ITERS=100 in the environment for a quick run.

# 500 forks per lock in the default build (`make test`, RelWithDebInfo);
# 40 in the other builds of the CI matrix (sanitizers, Debug, Release),
# which would otherwise spend most of CI's half hour forking (a fork and
# its child's work cost about 10 ms of CPU on a 2-CPU VM).  It was 1000
# until the VM of 2026-12-07 took twice as long to fork (335-365 s a mode,
# the longest tests of `make test`, CI at 27.5 of its 30 minutes);
# FORK_ITERS=N in the environment runs more.
if(SHEAF_SANITIZE OR NOT CMAKE_BUILD_TYPE STREQUAL "RelWithDebInfo")
  set(SHEAF_FORK_ITERS 40)
else()
  set(SHEAF_FORK_ITERS 500)
endif()

sheaf_unit_test(test_fork)
add_test(NAME test_fork_fallback COMMAND test_fork)
set_tests_properties(test_fork test_fork_fallback PROPERTIES
                     LABELS "stress" TIMEOUT 1500 SKIP_RETURN_CODE 77)
set_tests_properties(test_fork PROPERTIES
                     ENVIRONMENT "FORK_ITERS=${SHEAF_FORK_ITERS}")
set_tests_properties(test_fork_fallback PROPERTIES
                     ENVIRONMENT "SHEAF_PERCPU=fallback;FORK_ITERS=${SHEAF_FORK_ITERS}")

if(NOT SHEAF_SANITIZE)
  # A plain program: under LD_PRELOAD its malloc is libsheaf-malloc (it
  # checks, and skips with 77 without it).  -fno-builtin: every malloc and
  # free reaches the library.
  add_executable(fork_malloc fork_malloc.c)
  target_link_libraries(fork_malloc PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
  target_compile_options(fork_malloc PRIVATE -fno-builtin)
  add_test(NAME fork_malloc COMMAND fork_malloc)
  add_test(NAME fork_malloc_fallback COMMAND fork_malloc)
  set_tests_properties(fork_malloc fork_malloc_fallback PROPERTIES
                       LABELS "stress" TIMEOUT 900 SKIP_RETURN_CODE 77)
  set_tests_properties(fork_malloc PROPERTIES ENVIRONMENT
                       "LD_PRELOAD=$<TARGET_FILE:sheaf_malloc>;FORK_ITERS=${SHEAF_FORK_ITERS}")
  set_tests_properties(fork_malloc_fallback PROPERTIES ENVIRONMENT
                       "LD_PRELOAD=$<TARGET_FILE:sheaf_malloc>;SHEAF_PERCPU=fallback;FORK_ITERS=${SHEAF_FORK_ITERS}")
endif()

# Page faults per fork in the parent with 128 caches, one thread and two
# (tests/fork_faults.c): counts, not times.  Linked with the shared
# library, whose fork-time globals are on one page (src/fork_data.ld).
add_executable(fork_faults fork_faults.c)
target_link_libraries(fork_faults PRIVATE sheaf Threads::Threads)
add_test(NAME fork_faults COMMAND fork_faults)
add_test(NAME fork_faults_fallback COMMAND fork_faults)
set_tests_properties(fork_faults fork_faults_fallback PROPERTIES
                     LABELS "unit" TIMEOUT 120 SKIP_RETURN_CODE 77)
set_tests_properties(fork_faults_fallback PROPERTIES ENVIRONMENT "SHEAF_PERCPU=fallback")
# The same with libsheaf's idle thread running (the light fork path),
# asleep for an hour: its looks write every cache's slots.
add_test(NAME fork_faults_idle COMMAND fork_faults)
set_tests_properties(fork_faults_idle PROPERTIES LABELS "unit" TIMEOUT 120
                     SKIP_RETURN_CODE 77 ENVIRONMENT "SHEAF_IDLE_MS=3600000")
