-- wrk script for benchmarks/ingest.py: POST events with unique idempotency keys.
-- args: <batch size> <session id prefix> [<Authorization header value>].
-- Prints one JSON line from done().
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  batch = tonumber(args[1])
  path = "/v1/sessions/" .. args[2] .. "-" .. tid .. "/events"
  counter = 0
  headers = {["Content-Type"] = "application/json"}
  if args[3] then headers["Authorization"] = args[3] end
end

local fmt = '{"kind":"tool","name":"search","status":"ok","duration_ms":12.5,' ..
  '"input":{"query":"what is item %d?"},"output":{"answer":"a short answer of a few words"},' ..
  '"attributes":{"i":%d},"idempotency_key":"k-%d-%d-%d"}'

request = function()
  counter = counter + 1
  local parts = {}
  for j = 1, batch do
    parts[j] = string.format(fmt, counter, j, tid, counter, j)
  end
  local body
  if batch == 1 then body = parts[1] else body = '{"events":[' .. table.concat(parts, ",") .. ']}' end
  return wrk.format("POST", path, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"seconds":%f,"errors":%d,"non2xx":%d,"p50_ms":%f,"p95_ms":%f}\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50) / 1000, latency:percentile(95) / 1000))
end
