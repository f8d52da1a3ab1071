#!/bin/sh
# base-image.sh IMAGE — makes the Debian base image the deployment test builds
# on, without pulling from any registry: debootstrap (minbase, from the Debian
# apt mirror) into a folder, tar it, `podman import` it as IMAGE.
#
# Cached twice so reruns are fast: the image stays in podman's storage, and the
# root filesystem tarball stays under $TM_CACHE (default ~/.cache/tidemark), so
# a wiped podman storage costs an import, not a debootstrap.
#   DEBIAN_SUITE  (default bookworm)   DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -eu
IMAGE=${1:-localhost/tidemark-debian-base:bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TM_CACHE=${TM_CACHE:-$HOME/.cache/tidemark}
TARBALL="$TM_CACHE/debian-$SUITE-minbase.tar"

if podman image exists "$IMAGE"; then
	echo "base-image: $IMAGE is there"
	exit 0
fi
if [ ! -s "$TARBALL" ]; then
	mkdir -p "$TM_CACHE"
	root=$(mktemp -d "$TM_CACHE/rootfs.XXXXXX")
	trap 'rm -rf "$root"' EXIT
	echo "base-image: debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes, once)"
	debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" > "$TM_CACHE/debootstrap.log" 2>&1 || {
		tail -20 "$TM_CACHE/debootstrap.log" >&2
		echo "base-image: debootstrap failed; the whole log is $TM_CACHE/debootstrap.log" >&2
		exit 1
	}
	# What a container image does not need: package lists and caches.
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
	       "$root"/var/log/* "$root"/tmp/*
	# Containers get their resolver from the engine.
	: > "$root/etc/resolv.conf"
	tar -C "$root" --numeric-owner -cf "$TARBALL.tmp" .
	mv "$TARBALL.tmp" "$TARBALL"
fi
echo "base-image: podman import $TARBALL as $IMAGE"
podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" > /dev/null
