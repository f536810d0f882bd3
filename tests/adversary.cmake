# The adversarial stress (tests/adversary.c), included from
# tests/CMakeLists.txt.  Label "stress" (so `make tsan` runs it too, under
# TSan in fallback mode), 3 s per run (the program's default):
#   adversary / adversary_fallback     the caches and kmalloc, rseq and
#                                      fallback per-CPU modes
#   adversary_malloc / _malloc_fallback  malloc, calloc, realloc, free under
#                                      LD_PRELOAD=libsheaf-malloc.so (not in
#                                      sanitizer builds, as the other malloc
#                                      tests: the library is not built there)
# A longer run: ADVERSARY_SECONDS=60 ctest -R adversary, or
# ./build/tests/adversary 60; tools/soak.sh runs it for DURATION seconds in
# each mode (make soak).

add_executable(adversary adversary.c)
target_link_libraries(adversary PRIVATE sheaf Threads::Threads)
add_test(NAME adversary COMMAND adversary)
add_test(NAME adversary_fallback COMMAND adversary)
set_tests_properties(adversary adversary_fallback PROPERTIES
                     LABELS "stress" TIMEOUT 300)
set_tests_properties(adversary_fallback PROPERTIES
                     ENVIRONMENT "SHEAF_PERCPU=fallback")

if(NOT SHEAF_SANITIZE)
  # Not linked with libsheaf: malloc is libsheaf-malloc's only through
  # LD_PRELOAD, and the program checks that it is.  -fno-builtin-*: every
  # malloc and free reaches the library (the compiler may otherwise drop a
  # pair it can see through).
  add_executable(adversary_malloc adversary.c)
  target_compile_definitions(adversary_malloc PRIVATE ADVERSARY_MALLOC_BUILD)
  target_compile_options(adversary_malloc PRIVATE -fno-builtin-malloc
                         -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free)
  target_link_libraries(adversary_malloc PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
  add_test(NAME adversary_malloc COMMAND adversary_malloc --malloc)
  add_test(NAME adversary_malloc_fallback COMMAND adversary_malloc --malloc)
  set_tests_properties(adversary_malloc adversary_malloc_fallback PROPERTIES
                       LABELS "stress" TIMEOUT 300
                       ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:sheaf_malloc>")
  set_tests_properties(adversary_malloc_fallback PROPERTIES ENVIRONMENT
                       "LD_PRELOAD=$<TARGET_FILE:sheaf_malloc>;SHEAF_PERCPU=fallback")
  add_dependencies(adversary_malloc sheaf_malloc)
endif()
