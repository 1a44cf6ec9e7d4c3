#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Debian's kubectl (package kubernetes-client), for the tests that read back
# with a real client what the agents write (test_lease.c, test_e2e_bgp.c).
#
#   selftests/kube/install-kubectl.sh BUILD_DIR       (make deps runs it)
#
# Installed with apt-get. Where /usr/bin/kubectl belongs to another package
# (google-cloud-cli's "kubectl", say), dpkg refuses to overwrite it and the
# install would fail: the Debian package is then unpacked into
# BUILD_DIR/kubernetes-client instead, where the tests look first
# (selftests/kubectl_lib.c), and the other kubectl is left alone.
set -e
build=${1:-build}
owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
if [ -z "$owner" ] || [ "$owner" = kubernetes-client ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kubernetes-client
	exit 0
fi
echo "deps: /usr/bin/kubectl belongs to package $owner; unpacking Debian's kubernetes-client into $build/kubernetes-client"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"; chown _apt "$tmp" 2>/dev/null || true # apt-get download drops to _apt
(cd "$tmp" && apt-get download kubernetes-client)
rm -rf "$build/kubernetes-client"
mkdir -p "$build/kubernetes-client"
dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$build/kubernetes-client"
"$build/kubernetes-client/usr/bin/kubectl" version --client
