-- wrk script: each request takes the next path from the file given as the
-- first script argument; threads start at different offsets.
local paths = {}
local i = 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  i = (id or 1) * 7
end

function request()
  i = (i % #paths) + 1
  return wrk.format("GET", paths[i])
end
