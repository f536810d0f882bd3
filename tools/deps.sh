#!/bin/sh
# Install the Debian packages libsheaf needs when they are missing.
# As root: apt-get install them.  Otherwise: print the exact command.
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || true
	apt-get install -y -qq $missing || { echo "deps: apt-get failed" >&2; exit 1; }
else
	echo "deps: missing Debian packages; run as root:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
