#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The "L7 splice modes" figures of docs/performance.md: BYTES (default
# 1 GiB) over loopback through each mode (upstream writer thread -> agent
# loop -> client reader thread, 64 MiB framed messages, checksum compared),
# ROUNDS times (default 3). Prints "bench: l7_MODE ..." lines; then one
# response of BYTES through the proxy itself in each mode (upstream
# selftests/e2e/splice_upstream.py -> proxy thread -> client checking the
# pattern): "bench: proxy_MODE ..." lines.
#   selftests/e2e/splice_bench.sh [BYTES] [ROUNDS]
set -e
cd "$(dirname "$0")/../.."
bytes=${1:-1073741824}
rounds=${2:-3}
[ -x build/test_progs ] || { echo "build first: make" >&2; exit 1; }
i=0
while [ "$i" -lt "$rounds" ]; do
	FLEETGATE_SPLICE_BENCH_BYTES=$bytes build/test_progs -v -t 'splice/*bench*' 2>&1 |
		grep -E '^bench:|FAIL' || true
	i=$((i + 1))
done
