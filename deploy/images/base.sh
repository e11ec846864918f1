#!/bin/sh
# Make a Debian bookworm base image from Debian packages alone (no registry to pull from):
#   base.sh NAME PACKAGES  ->  the local image localhost/arbx-base-NAME:bookworm
# debootstrap's minbase variant with PACKAGES (comma-separated), trimmed of documentation and
# package caches, imported with `podman import`. The root filesystem is cached under
# build/images/ and rebuilt only when the package list changes.
set -eu

name=$1
packages=$2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
top=$(pwd)/build/images
rootfs=$top/rootfs-$name
stamp=$rootfs.packages
image=localhost/arbx-base-$name:bookworm

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$packages" ] && podman image exists "$image"; then
    exit 0
fi
mkdir -p "$top/debs"
rm -rf "$rootfs"
echo "debootstrap bookworm ($name: $packages)"
debootstrap --variant=minbase --include="$packages" --cache-dir="$top/debs" \
    bookworm "$rootfs" "$mirror" >"$top/debootstrap-$name.log" 2>&1 ||
    { tail -20 "$top/debootstrap-$name.log"; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
tar -C "$rootfs" --numeric-owner -c . |
    podman import --quiet --change 'CMD=["/bin/bash"]' - "$image" >/dev/null
echo "$packages" >"$stamp"
echo "base image $image"
