-- wrk script: rotate over paths (file in the first argument, one per line)
-- and count response statuses per thread; done() prints "status count".
-- "{n}" in a path becomes a value unique to this request (thread id and a
-- counter): with sluice's `cb:{n}` no two requests share one result, so
-- request coalescing cannot serve several clients from one computation.
local paths = {}
local i = 0
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  i = (id or 1) * 7
  statuses = {}
end

local sent = 0
function request()
  i = (i % #paths) + 1
  sent = sent + 1
  local path = paths[i]:gsub("{n}", (id or 0) .. "-" .. sent)
  return wrk.format("GET", path)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do
      total[k] = (total[k] or 0) + v
    end
  end
  for k, v in pairs(total) do
    io.write(string.format("status %d %d\n", k, v))
  end
  io.write(string.format("errors connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
end
