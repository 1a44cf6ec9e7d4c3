-- SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
--
-- wrk script of selftests/bench_l7.sh. Alternates two requests for the same
-- path: one plain (the route's main backend, cluster 1) and one with the
-- canary header "stage: gray" (cluster 2), so both routes carry half the
-- load. Headers given with -H (Host, Connection: close) go into both.
-- Usage: wrk ... -s l7_wrk.lua URL -- PATH
-- done() prints one machine-readable line:
--   l7: requests N bytes N duration_us N p50_us N p99_us N errors C R W S T

local reqs = {}
local n = 0

function init(args)
	local path = args[1] or "/"
	local plain, gray = {}, {}
	for k, v in pairs(wrk.headers) do
		plain[k] = v
		gray[k] = v
	end
	gray["stage"] = "gray"
	reqs[1] = wrk.format("GET", path, plain)
	reqs[2] = wrk.format("GET", path, gray)
end

function request()
	n = n + 1
	return reqs[n % 2 + 1]
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"l7: requests %d bytes %d duration_us %d p50_us %d p99_us %d errors %d %d %d %d %d\n",
		summary.requests, summary.bytes, summary.duration,
		latency:percentile(50), latency:percentile(99),
		e.connect, e.read, e.write, e.status, e.timeout))
end
