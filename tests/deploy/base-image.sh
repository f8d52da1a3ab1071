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
IMAGE=${1:-localhost/tidemark-debian-base:bookworm-slim}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TM_CACHE=${TM_CACHE:-$HOME/.cache/tidemark}
TARBALL="$TM_CACHE/debian-$SUITE-minbase-slim.tar"

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
	# What a container image does not need: package lists and caches, and
	# documentation, manual pages and translations, now and in every package
	# installed later (as Debian's -slim images do; copyright files stay).
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
	       "$root"/var/log/* "$root"/tmp/*
	cat > "$root/etc/dpkg/dpkg.cfg.d/tidemark-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
	find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/usr/share/lintian/*
	# Containers get their resolver from the engine.
	: > "$root/etc/resolv.conf"
	tar -C "$root" --numeric-owner -cf "$TARBALL.tmp" .
	mv "$TARBALL.tmp" "$TARBALL"
fi
echo "base-image: podman import $TARBALL as $IMAGE"
podman import -q --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" > /dev/null
