#!/bin/bash
# Usage: vm-test/mkinitramfs.sh MODDIR OUT.cpio.gz
#
# Builds the guest's initramfs: busybox-static, vm-test/init as /init, and
# the modules (with their dependencies, in load order, from MODDIR's
# modules.dep) that /init needs before it can mount the host root: virtio
# PCI, 9p over virtio and overlayfs. Modules the kernel has built in
# (modules.builtin) are skipped. Compressed modules (.ko.xz/.ko.zst/.ko.gz)
# are decompressed, as busybox's insmod wants plain ELF.
set -euo pipefail

moddir=${1:?usage: $0 MODDIR OUT.cpio.gz}
out=${2:?usage: $0 MODDIR OUT.cpio.gz}
here=$(cd "$(dirname "$0")" && pwd)
WANT="virtio_pci 9pnet_virtio 9p overlay"

log() { echo "vm-test: $*" >&2; }

busybox=/bin/busybox
if ! dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q ' installed$'; then
	log "busybox-static is not installed (make deps-vm)"
	exit 1
fi
if ! [ -e "$moddir/modules.dep" ]; then
	log "no modules.dep in $moddir"
	exit 1
fi

declare -A seen=()
order=()
path_of() { # module name -> path relative to moddir, from modules.dep
	local n=${1//-/_} alt=${1//_/-}
	awk -F: -v a="/$n.ko" -v b="/$alt.ko" '
		{ p = $1; sub(/\.(xz|zst|gz)$/, "", p) }
		substr(p, length(p) - length(a) + 1) == a ||
		substr(p, length(p) - length(b) + 1) == b { print $1; exit }' \
		"$moddir/modules.dep"
}
add() { # relative path: its dependencies first, then itself
	local rel=$1 d
	[ -z "${seen[$rel]:-}" ] || return 0
	seen[$rel]=1
	for d in $(awk -F: -v m="$rel" '$1 == m { print $2; exit }' "$moddir/modules.dep"); do
		add "$d"
	done
	order+=("$rel")
}
for m in $WANT; do
	rel=$(path_of "$m")
	if [ -n "$rel" ]; then
		add "$rel"
	elif grep -qE "/${m//_/[-_]}\.ko$" "$moddir/modules.builtin" 2>/dev/null; then
		:
	else
		log "module $m is neither in modules.dep nor built in"
		exit 1
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/sbin"
cp "$busybox" "$tmp/bin/busybox"
ln -s busybox "$tmp/bin/sh"
cp "$here/init" "$tmp/init"
chmod 0755 "$tmp/init"
: > "$tmp/modules.load"
for rel in "${order[@]}"; do
	name=$(basename "$rel")
	case $name in
	*.xz) xz -dc "$moddir/$rel" > "$tmp/modules/${name%.xz}"; name=${name%.xz} ;;
	*.zst) zstd -qdc "$moddir/$rel" > "$tmp/modules/${name%.zst}"; name=${name%.zst} ;;
	*.gz) gzip -dc "$moddir/$rel" > "$tmp/modules/${name%.gz}"; name=${name%.gz} ;;
	*) cp "$moddir/$rel" "$tmp/modules/$name" ;;
	esac
	echo "$name" >> "$tmp/modules.load"
done
mkdir -p "$(dirname "$out")"
(cd "$tmp" && find . | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
log "initramfs $out: busybox + $(tr '\n' ' ' < "$tmp/modules.load")"
