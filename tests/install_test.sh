#!/bin/sh
# Install into a temporary prefix and build the README's example against it
# with pkg-config, shared and static; both must run; and preload the
# installed libsheaf-malloc.so into a program.
#   install_test.sh BUILD_DIR SOURCE_DIR CC
set -eu
build=$1
src=$2
cc=${3:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name libsheaf.pc)
[ -n "$pc" ] || { echo "install_test: no libsheaf.pc installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir libsheaf)
# shellcheck disable=SC2046
"$cc" "$src/examples/cache.c" $(pkg-config --cflags --libs libsheaf) -o "$tmp/shared"
LD_LIBRARY_PATH=$libdir "$tmp/shared" >/dev/null
# shellcheck disable=SC2046
"$cc" "$src/examples/cache.c" $(pkg-config --cflags libsheaf) "$libdir/libsheaf.a" \
	$(pkg-config --libs --static libsheaf | sed 's/-lsheaf//') -o "$tmp/static"
"$tmp/static" >/dev/null
# sheafinfo is installed, and the static library publishes and prints the
# exit table too.
"$tmp/prefix/bin/sheafinfo" --help >/dev/null
SHEAF_STATS=exit "$tmp/static" >/dev/null 2>"$tmp/exit.txt"
grep -q "^libsheaf caches of process [0-9]* at exit" "$tmp/exit.txt" ||
	{ echo "install_test: no exit table:"; cat "$tmp/exit.txt"; exit 1; }
# The malloc replacement is installed next to it and preloads.
[ -f "$libdir/libsheaf-malloc.so" ] && [ -f "$libdir/libsheaf-malloc.a" ] ||
	{ echo "install_test: libsheaf-malloc not installed"; exit 1; }
# (Not into the example: a process must not load libsheaf.so and
# libsheaf-malloc.so both; the latter holds the whole API.)
LD_PRELOAD=$libdir/libsheaf-malloc.so SHEAF_MALLOC_VERBOSE=1 ls "$tmp" 2>&1 >/dev/null |
	grep -q "^libsheaf-malloc: ls " ||
	{ echo "install_test: the installed libsheaf-malloc.so does not preload"; exit 1; }
echo "install_test: OK ($libdir)"
