#!/bin/bash
# Usage: vm-test/vmtest.sh            (what `make vm-test` runs)
#
# Runs the test binary of this build tree (build/test_progs) per kernel and
# prints one summary line per kernel, e.g.
#   vm-test: 6.1.0-56-amd64: 40 passed, 0 failed, 2 skipped (4m02s)
# Kernels (VMTEST_KERNELS, default "host 6.1"):
#   host        the running kernel: booted in a VM when /boot/vmlinuz-$(uname -r)
#               is readable, otherwise (as on the project's machines) the
#               suite runs natively on it, and the summary says so
#   6.1         Debian's linux-image-amd64 (the 6.1 LTS kernel), fetched
#               with apt-get download + dpkg-deb -x into build/vm/kernels/
#               (not installed on the host) if it is not there yet
#   VERSION     a kernel already unpacked in build/vm/kernels/VERSION/
#   PACKAGE     linux-image-...: fetched like 6.1
# The guest is qemu (KVM when a probe boot under KVM works, TCG otherwise)
# with the host's root shared read-only over 9p under a tmpfs overlay; see
# vm-test/README.md. Environment:
#   VMTEST_ARGS     test_progs arguments (default: the kernel-facing subset
#                   below, less two timing subtests under TCG; VMTEST_ARGS=""
#                   runs every test)
#   VMTEST_TIMEOUT  seconds per VM (default 1800)
#   VMTEST_ACCEL    auto (default), kvm or tcg
#   VMTEST_MEM      MiB (default 2048);  VMTEST_CPUS (default 2)
#   VMTEST_VERBOSE  1: show the whole guest console, kernel messages included
# Exit status: 0 when every kernel ran and nothing failed.
set -uo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
VM=$BUILD/vm
TOP=$(pwd -P)
# The tests that exercise the kernel: BPF loading (CO-RE relocations), XDP
# test runs, netlink, veth and network namespaces, the data plane under the
# agent. Those left out (http, manifest, routes, configdir, pktbuild, fuzz)
# are user-space code whose result does not depend on the kernel.
DEFAULT_ARGS="-t 'xdp*' -t 'tc_*' -t 'attach*' -t 'maglev*' -t 'netlink*' -t 'ctl*' -t 'e2e*'"
# Under TCG the guest runs 10-20 times slower than the host, and the two
# failover subtests of e2e_control, which hold the agent to 1 s budgets,
# measure the emulator (1.1-1.3 s there), not the kernel: the TCG default
# names e2e_control's other subtests instead (a new subtest has to be added
# here to run by default under TCG).
DEFAULT_ARGS_TCG="-t 'xdp*' -t 'tc_*' -t 'attach*' -t 'maglev*' -t 'netlink*' -t 'ctl*' -t 'e2e_l4*'"
for s in status split_by_pod_count scale_shifts_ratio bad_yaml_keeps_routes \
	restart_keeps_flows; do
	DEFAULT_ARGS_TCG+=" -t 'e2e_control/$s'"
done
unset USER_ARGS
[ -z "${VMTEST_ARGS+set}" ] || USER_ARGS=$VMTEST_ARGS
VMTEST_KERNELS=${VMTEST_KERNELS:-host 6.1}
VMTEST_TIMEOUT=${VMTEST_TIMEOUT:-1800}
VMTEST_ACCEL=${VMTEST_ACCEL:-auto}
VMTEST_MEM=${VMTEST_MEM:-2048}
VMTEST_CPUS=${VMTEST_CPUS:-2}
VMTEST_VERBOSE=${VMTEST_VERBOSE:-0}
QEMU=${QEMU:-qemu-system-x86_64}

log() { echo "vm-test: $*"; }
summary=()
status=0

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# The final "N passed, M failed[, K skipped]" line of a console log.
result_line() {
	tr -d '\r' < "$1" | grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' | tail -1
}

# Adds skipped 0 when the runner left it out (it prints it only when > 0).
norm_result() {
	case $1 in
	*skipped) echo "$1" ;;
	*) echo "$1, 0 skipped" ;;
	esac
}

# The guest's PATH: this one without pyenv's shims, which cost 10-25 s per
# python3 start under TCG (bash + pyenv before the interpreter) where the
# e2e tests give a server 5 s to come up; Debian's /usr/bin/python3 (the
# same 3.11; the test scripts need only its standard library) takes ~1 s.
guest_path() {
	local IFS=: p out=
	for p in $PATH; do
		case $p in
		*/.pyenv/*) continue ;;
		esac
		out=${out:+$out:}$p
	done
	echo "$out"
}

job_file() { # JOBFILE: the guest's script, run by /bin/sh in the chroot
	{
		echo "# Written by vm-test/vmtest.sh; run by vm-test/init in the guest's chroot."
		printf "export PATH='%s' HOME=/root LANG=C.UTF-8 TERM=dumb\n" "$(guest_path)"
		# Start-up waits (BPF load and verification) stretch under TCG.
		[ "${2:-}" != tcg ] || echo "export FG_TEST_TIME_SCALE=5"
		[ -z "${FG_FUZZ_SECONDS:-}" ] ||
			printf "export FG_FUZZ_SECONDS='%s'\n" "$FG_FUZZ_SECONDS"
		printf "cd '%s' || exit 126\n" "$TOP"
		# Reads python3 and the modules that the e2e scripts import once,
		# so that the first server a test starts finds them in the guest's
		# page cache (9p, cache=loose) and comes up in time.
		echo "python3 -c 'import argparse, base64, http.server, json, re, signal, socket, ssl, threading, urllib.parse' 2>/dev/null"
		printf "echo 'vm-test: guest: '\"\$(uname -r)\"': %s'\n" \
			"$BUILD/test_progs ${VMTEST_ARGS//\'/}"
		printf '%s\n' "$BUILD/test_progs $VMTEST_ARGS"
	} > "$1"
}

qemu_cmd() { # ACCEL KERNEL INITRD APPEND
	local accel
	case $1 in
	kvm) accel=(-accel kvm -cpu host) ;;
	*) accel=(-accel tcg,thread=multi -cpu max) ;;
	esac
	echo "$QEMU" "${accel[@]}" -smp "$VMTEST_CPUS" -m "$VMTEST_MEM" \
		-nodefaults -display none -no-reboot -serial stdio \
		-kernel "$2" -initrd "$3" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-append "'console=ttyS0 panic=-1 oops=panic mitigations=off $4'"
}

# auto: one probe boot under KVM (20 s at most), remembered per guest and
# host kernel; the project's machines have a nested /dev/kvm on which qemu
# aborts, so they end up on TCG.
pick_accel() { # KVER KERNEL INITRD
	local cache=$VM/$1/accel-on-$(uname -r)
	case $VMTEST_ACCEL in
	kvm | tcg) echo "$VMTEST_ACCEL"; return ;;
	esac
	if [ -s "$cache" ]; then
		cat "$cache"
		return
	fi
	local a=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		if eval timeout 20 "$(qemu_cmd kvm "$2" "$3" "quiet vmtest_job=probe")" \
			< /dev/null 2>&1 | grep -q VMTEST-PROBE-OK; then
			a=kvm
		fi
	fi
	echo $a > "$cache"
	echo $a
}

run_native() {
	local kver=$(uname -r) t0=$SECONDS res rc out=$VM/host-native.log
	VMTEST_ARGS=${USER_ARGS-$DEFAULT_ARGS}
	log "$kver: no readable /boot/vmlinuz-$kver: testing the running kernel natively (no VM)"
	mkdir -p "$VM"
	echo "vm-test: native: $BUILD/test_progs $VMTEST_ARGS"
	eval "$BUILD/test_progs $VMTEST_ARGS" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	res=$(result_line "$out")
	if [ -z "$res" ]; then
		res="no result (test_progs exited $rc)"
		status=1
	else
		res=$(norm_result "$res")
		[ "$rc" = 0 ] || status=1
	fi
	summary+=("vm-test: $kver (host, native, no VM): $res ($(fmt_time $((SECONDS - t0))))")
}

run_vm() { # KVER VMLINUZ MODDIR
	local kver=$1 vmlinuz=$2 moddir=$3 t0=$SECONDS
	local dir=$VM/$kver accel res rc exitline
	mkdir -p "$dir"
	vm-test/mkinitramfs.sh "$moddir" "$dir/initramfs.cpio.gz" || {
		summary+=("vm-test: $kver: no result (initramfs)"); status=1; return; }
	accel=$(pick_accel "$kver" "$vmlinuz" "$dir/initramfs.cpio.gz")
	if [ "$accel" = tcg ]; then
		VMTEST_ARGS=${USER_ARGS-$DEFAULT_ARGS_TCG}
	else
		VMTEST_ARGS=${USER_ARGS-$DEFAULT_ARGS}
	fi
	job_file "$dir/job.sh" "$accel"
	log "$kver: booting under ${accel^^}, ${VMTEST_CPUS} vCPUs, ${VMTEST_MEM} MiB, timeout ${VMTEST_TIMEOUT} s; console in $dir/console.log"
	local append="vmtest_job=$TOP/$dir/job.sh vmtest_moddir=$(cd "$moddir" && pwd -P)"
	[ "$VMTEST_VERBOSE" = 1 ] || append="quiet loglevel=4 $append"
	eval timeout -k 10 "$VMTEST_TIMEOUT" "$(qemu_cmd "$accel" "$vmlinuz" \
		"$dir/initramfs.cpio.gz" "$append")" < /dev/null 2>&1 |
		tee "$dir/console.log" | sed -u "s/^/[$kver] /"
	rc=${PIPESTATUS[0]}
	res=$(result_line "$dir/console.log")
	exitline=$(tr -d '\r' < "$dir/console.log" | sed -n 's/^VMTEST-EXIT=//p' | tail -1)
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		res="${res:+$(norm_result "$res") then }timed out after ${VMTEST_TIMEOUT} s"
		status=1
	elif [ -z "$res" ]; then
		res="no result (qemu exited $rc, guest exit ${exitline:-none}; see $dir/console.log)"
		status=1
	else
		res=$(norm_result "$res")
		[ "$exitline" = 0 ] || status=1
	fi
	summary+=("vm-test: $kver: $res ($(fmt_time $((SECONDS - t0))), ${accel^^})")
}

[ -x "$BUILD/test_progs" ] || { log "$BUILD/test_progs not built (make)"; exit 1; }
# The guest sees the host's root at the same paths, except for the file
# systems it mounts afresh.
case $TOP/ in
/tmp/* | /run/* | /proc/* | /sys/* | /dev/*)
	log "$TOP: a tree under /tmp, /run, /proc, /sys or /dev is hidden in the guest; move it"
	exit 1
	;;
esac
command -v "$QEMU" > /dev/null || { log "$QEMU not installed (make deps-vm)"; exit 1; }

for k in $VMTEST_KERNELS; do
	case $k in
	host)
		kver=$(uname -r)
		if [ -r "/boot/vmlinuz-$kver" ] && [ -d "/lib/modules/$kver" ]; then
			run_vm "$kver" "/boot/vmlinuz-$kver" "/lib/modules/$kver"
		else
			run_native
		fi
		;;
	*)
		if [ -e "$VM/kernels/$k/.complete" ]; then
			kver=$k
		else
			pkg=
			case $k in
			6.1) ;;
			linux-image-*) pkg=$k ;;
			*) log "unknown kernel $k"; status=1; continue ;;
			esac
			kver=$(vm-test/fetch-kernel.sh "$VM" $pkg) || {
				summary+=("vm-test: $k: no result (cannot fetch the kernel)")
				status=1
				continue
			}
		fi
		run_vm "$kver" "$VM/kernels/$kver/boot/vmlinuz-$kver" \
			"$VM/kernels/$kver/lib/modules/$kver"
		;;
	esac
done

echo
for s in "${summary[@]}"; do
	echo "$s"
done
exit $status
