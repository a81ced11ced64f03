-- wrk script: replays the request paths of `catalog-loadtest --paths-out FILE` (the load
-- tool's mix of reads), in order, each thread from its own offset, cycling.
--
--   catalog-loadtest --db lt.sqlite3 --paths-out paths.txt
--   PATHS=paths.txt wrk -t2 -c64 -d10s -s examples/catalog-loadtest/wrk-paths.lua http://127.0.0.1:PORT

local threads = 0

function setup(thread)
   thread:set("offset", threads * 7919)
   threads = threads + 1
end

local paths = {}
local next_path = 0

function init(args)
   for line in io.lines(os.getenv("PATHS") or "paths.txt") do
      paths[#paths + 1] = line
   end
   next_path = (offset or 0) % #paths
end

function request()
   next_path = next_path % #paths + 1
   return wrk.format("GET", paths[next_path])
end
