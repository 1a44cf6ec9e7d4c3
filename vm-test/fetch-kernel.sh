#!/bin/bash
# Usage: vm-test/fetch-kernel.sh OUTDIR [PACKAGE]
#
# Fetches a Debian kernel image package without installing it on the host:
# `apt-get download` + `dpkg-deb -x` into OUTDIR/kernels/<version>/, then
# `busybox depmod` there so the guest can load modules on demand. PACKAGE
# defaults to the one linux-image-amd64 depends on (Debian 12: the 6.1 LTS
# kernel, linux-image-6.1.0-NN-amd64). Prints the kernel version on stdout.
# Idempotent: an already unpacked version is not fetched again.
set -euo pipefail

out=${1:?usage: $0 OUTDIR [PACKAGE]}
pkg=${2:-}

log() { echo "vm-test: $*" >&2; }

resolve() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

if [ -z "$pkg" ]; then
	pkg=$(resolve)
	if [ -z "$pkg" ]; then
		log "apt lists have no linux-image-amd64; running apt-get update"
		apt-get update -qq >&2
		pkg=$(resolve)
	fi
	[ -n "$pkg" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
fi

ver=${pkg#linux-image-}
ver=${ver%-unsigned}
dir=$out/kernels/$ver
if [ -e "$dir/.complete" ]; then
	echo "$ver"
	exit 0
fi

mkdir -p "$out/debs"
rm -rf "$dir"
log "fetching $pkg (apt-get download, not installed on the host)"
(cd "$out/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
deb=$(ls -t "$out/debs/${pkg}_"*.deb | head -1)
log "unpacking $(basename "$deb") into $dir"
mkdir -p "$dir"
dpkg-deb -x "$deb" "$dir"
[ -r "$dir/boot/vmlinuz-$ver" ] || { log "no boot/vmlinuz-$ver in $deb"; exit 1; }
[ -d "$dir/lib/modules/$ver" ] || { log "no lib/modules/$ver in $deb"; exit 1; }
log "depmod $ver"
busybox depmod -b "$dir" "$ver"
touch "$dir/.complete"
echo "$ver"
