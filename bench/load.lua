-- load.lua: the wrk script of every benchmark cell (bench/bench.py).
-- Licensed under the Apache License, Version 2.0.
--
-- Settings come from the environment, so that setup() (which gets no
-- script arguments) sees them too:
--
--   BENCH_HOSTS  comma-separated Host names, e.g. "a.test,b.test,c.test"
--   BENCH_MODE   "alternate": every request of a thread takes the next
--                Host (run with -c equal to -t, so that each connection
--                changes Host on every request);
--                "pinned": thread i sends every request with Host i
--                (mod the number of hosts), so every connection stays
--                with one vhost
--   BENCH_PORTS  optional, comma-separated ports, one per Host: thread i
--                connects to port i instead of the URL's (pinned only)
--   BENCH_CLOSE  "1": send "Connection: close" (a new connection per
--                request; wrk reconnects)
--
-- done() prints one line that bench.py parses:
--   BENCHRESULT requests=N duration_us=N connect=N read=N write=N
--               status=N timeout=N p50_us=N p99_us=N

local function split(s)
   local out = {}
   if s == nil or s == "" then
      return out
   end
   for item in string.gmatch(s, "[^,]+") do
      out[#out + 1] = item
   end
   return out
end

local hosts = split(os.getenv("BENCH_HOSTS"))
local ports = split(os.getenv("BENCH_PORTS"))
local mode = os.getenv("BENCH_MODE") or "alternate"
local close = os.getenv("BENCH_CLOSE") == "1"

local nthreads = 0

function setup(thread)
   nthreads = nthreads + 1
   thread:set("index", nthreads)
   if #ports > 0 then
      local p = ports[((nthreads - 1) % #ports) + 1]
      thread.addr = wrk.lookup("127.0.0.1", p)[1]
   end
end

local requests = {}
local n = 0

local function make(host)
   local headers = {}
   for k, v in pairs(wrk.headers) do
      headers[k] = v
   end
   headers["Host"] = host
   if close then
      headers["Connection"] = "close"
   end
   return wrk.format(nil, nil, headers)
end

function init(args)
   -- 'index' was set by setup(): this thread's number, from 1.
   local i = index or 1
   if mode == "pinned" then
      requests[1] = make(hosts[((i - 1) % #hosts) + 1])
   else
      -- Start each thread at a different Host.
      for k = 0, #hosts - 1 do
         requests[#requests + 1] = make(hosts[((i - 1 + k) % #hosts) + 1])
      end
   end
end

function request()
   n = n + 1
   if n > #requests then
      n = 1
   end
   return requests[n]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCHRESULT requests=%d duration_us=%d connect=%d read=%d write=%d " ..
      "status=%d timeout=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
