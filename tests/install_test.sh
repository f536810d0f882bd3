#!/bin/sh
# Install into a temporary prefix and build the README's example against it
# with pkg-config, shared and static; both must run.
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
echo "install_test: OK ($libdir)"
