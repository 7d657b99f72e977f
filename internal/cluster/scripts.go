package cluster

import "github.com/redis/rueidis"

// The node scripts run on the slot of the node keys (rediskey.Nodes):
// KEYS[1] is the sorted set of nodes by last heartbeat, KEYS[2] the hash
// of node -> "GEN STATS". Times are Redis's own clock (TIME), in
// milliseconds, so that the clocks of the nodes need not agree.
const nodesPrelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(n) return string.format('%d', n) end
`

// heartbeatScript: ARGV node, gen, stats (JSON), ttl (ms), forget (ms),
// check ("1" or "0"). With check, the heartbeat is refused (0) unless the
// node is live with generation gen: Redis lost its record, or readers
// counted it dead, and its entries may be gone, so it must resync first.
// Records dead for longer than forget are dropped on the way. Returns 1
// when the record was written.
var heartbeatScript = rueidis.NewLuaScript(nodesPrelude + `
local node, gen, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])
if ARGV[6] == '1' then
  local s = redis.call('ZSCORE', KEYS[1], node)
  local v = redis.call('HGET', KEYS[2], node)
  if not s or tonumber(s) <= now - ttl or not v or string.match(v, '^(%d+) ') ~= gen then
    return 0
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms(now - tonumber(ARGV[5])), 'LIMIT', 0, 100)
for _, n in ipairs(old) do
  redis.call('ZREM', KEYS[1], n)
  redis.call('HDEL', KEYS[2], n)
end
redis.call('ZADD', KEYS[1], ms(now), node)
redis.call('HSET', KEYS[2], node, gen .. ' ' .. ARGV[3])
return 1
`)

// leaveScript: ARGV node, ttl (ms). Dates the node's last heartbeat back
// so that it is dead at once; its record stays as a tombstone, which tells
// readers they may delete what is left of its entries.
var leaveScript = rueidis.NewLuaScript(nodesPrelude + `
return redis.call('ZADD', KEYS[1], 'XX', ms(now - tonumber(ARGV[2]) - 1), ARGV[1])
`)

// nodesScript returns {now, node, last heartbeat, "GEN STATS", ...} for
// every node on record, live or dead.
var nodesScript = rueidis.NewLuaScriptReadOnly(nodesPrelude + `
local out = {ms(now)}
local zs = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #zs, 2 do
  out[#out + 1] = zs[i]
  out[#out + 1] = zs[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], zs[i]) or ''
end
return out
`)

// sweepScript deletes, from the hash KEYS[1], each field ARGV[i] whose
// value is still ARGV[i+1]: a reader removes entries it found stale, and
// leaves alone any that a node rewrote meanwhile. Returns how many went.
var sweepScript = rueidis.NewLuaScript(`
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
`)
