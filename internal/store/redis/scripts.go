package redis

import "github.com/redis/rueidis"

// The scripts below run atomically in Redis, each on the keys of one
// channel or one user (one hash slot: see internal/rediskey). KEYS[1] is
// the meta hash, which places the script on its slot; ARGV[1] is the base
// of the names, from which every other key of the same slot is built.
// Times travel as 20-digit decimal nanoseconds, so that Lua compares them
// as strings, exactly (a Lua number would round them).

// prelude is shared by every script.
const prelude = `
local p = ARGV[1]
local meta = KEYS[1]
local function id(n) return string.format('%d-0', n) end
local function num(v) return tonumber(v or '0') or 0 end
local function offset(entry) return tonumber(string.match(entry[1], '^(%d+)')) end
-- live sends a stored message to the nodes, positioned (see
-- PositionedMark in internal/broker/redis), by cmd (PUBLISH or SPUBLISH)
-- on the live channel of base; an empty cmd or payload publishes nothing.
local function live(cmd, base, pos, epoch, payload)
  if cmd ~= '' and payload ~= '' then
    redis.call(cmd, base .. ':live', '\3' .. string.format('%d', pos) .. ' ' .. epoch .. ' ' .. payload)
  end
end
-- publish is live on this script's slot.
local function publish(cmd, pos, epoch, payload) live(cmd, p, pos, epoch, payload) end
-- push stores a direct message (data, its id mid) in the inbox of base
-- (meta hash meta) and publishes it live; it returns the message's
-- sequence and how many messages the inbox keeps.
local function push(meta, base, at, data, mid, cmd, payload)
  local seq = redis.call('HINCRBY', meta, 'top', 1)
  redis.call('XADD', base .. ':inbox', id(seq), 't', at, 'd', data)
  redis.call('XADD', base .. ':rcpt', id(seq), 't', at, 'i', mid)
  local count = redis.call('HINCRBY', meta, 'count', 1)
  redis.call('HINCRBY', meta, 'bytes', #data)
  live(cmd, base, seq, '', payload)
  return seq, count
end
-- walk calls f on the entries of the stream key, oldest first, until f
-- returns false.
local function walk(key, f)
  local cursor = '-'
  while true do
    local es = redis.call('XRANGE', key, cursor, '+', 'COUNT', 100)
    if #es == 0 then return end
    for _, e in ipairs(es) do
      if not f(e) then return end
    end
    cursor = '(' .. es[#es][1]
  end
end
`

// channelPrelude adds the epoch: set once, from the candidate the caller
// drew (ARGV[2]), so that no script needs randomness.
const channelPrelude = prelude + `
local hist = p .. ':hist'
redis.call('HSETNX', meta, 'epoch', ARGV[2])
local epoch = redis.call('HGET', meta, 'epoch')
local top = num(redis.call('HGET', meta, 'top'))
`

// appendScript: ARGV at, data, publish command, live payload. Returns
// {offset, epoch}.
var appendScript = rueidis.NewLuaScript(channelPrelude + `
top = redis.call('HINCRBY', meta, 'top', 1)
redis.call('XADD', hist, id(top), 't', ARGV[3], 'd', ARGV[4])
publish(ARGV[5], top, epoch, ARGV[6])
return {top, epoch}
`)

// appendBatchScript: ARGV at, publish command, n, n data, then n live
// payloads when the command is not empty. Returns {first offset, epoch}.
var appendBatchScript = rueidis.NewLuaScript(channelPrelude + `
local cmd, n = ARGV[4], tonumber(ARGV[5])
local first = top + 1
for i = 1, n do
  top = top + 1
  redis.call('XADD', hist, id(top), 't', ARGV[3], 'd', ARGV[5 + i])
  if cmd ~= '' then publish(cmd, top, epoch, ARGV[5 + n + i]) end
end
redis.call('HSET', meta, 'top', top)
return {first, epoch}
`)

// topScript returns {top, epoch}.
var topScript = rueidis.NewLuaScript(channelPrelude + `
return {top, epoch}
`)

// readScript: ARGV from, backwards (0/1), limit. Returns {top, epoch,
// entries}.
var readScript = rueidis.NewLuaScript(channelPrelude + `
local from, back, limit = tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
local lo, hi = 1, top
if back then
  if from ~= 0 and from < hi then hi = from end
else
  lo = math.max(lo, from)
end
local entries = {}
if lo <= hi then
  if back then
    entries = redis.call('XREVRANGE', hist, id(hi), id(lo), 'COUNT', limit)
  else
    entries = redis.call('XRANGE', hist, id(lo), id(hi), 'COUNT', limit)
  end
end
return {top, epoch, entries}
`)

// trimScript: ARGV keep, before (an empty string for none). Walks from the oldest
// record while it must go, and returns how many went.
var trimScript = rueidis.NewLuaScript(channelPrelude + `
local keep, before = math.max(tonumber(ARGV[3]), 0), ARGV[4]
local force = redis.call('XLEN', hist) - keep
local last, n = 0, 0
walk(hist, function(e)
  if not (n < force or (before ~= '' and e[2][2] < before)) then return false end
  last, n = offset(e), n + 1
  return true
end)
if n > 0 then
  redis.call('XTRIM', hist, 'MINID', id(last + 1))
  redis.call('HSET', meta, 'base', math.max(num(redis.call('HGET', meta, 'base')), last))
end
return n
`)

// resetScript: ARGV[2] is the new epoch. Returns nothing.
var resetScript = rueidis.NewLuaScript(prelude + `
redis.call('DEL', p .. ':hist')
redis.call('HSET', meta, 'epoch', ARGV[2], 'top', 0, 'base', 0)
return 1
`)

// userPrelude reads and writes the devices of a user's inbox. A device is
// stored as "acked:delivered:seen"; one not stored is at the sequence just
// before the oldest message kept. Marks record, per device, that messages
// from..seq were acknowledged (kind a) or handed over (kind d) at a time:
// a sorted set per device and kind, scored by seq, whose members are
// "seq:from:time". The set marked names the devices with marks, so that a
// receipt also lists devices since forgotten.
const userPrelude = prelude + `
local inbox, rcpt, devs, marked = p .. ':inbox', p .. ':rcpt', p .. ':devs', p .. ':marked'
local zero = '00000000000000000000'
local function marks(kind, dev) return p .. ':m' .. kind .. ':' .. dev end
local function device(name)
  local v = redis.call('HGET', devs, name)
  if v then
    local a, d, s = string.match(v, '^(%d+):(%d+):(%d+)$')
    return {known = true, acked = tonumber(a), delivered = tonumber(d), seen = s}
  end
  local start = num(redis.call('HGET', meta, 'top'))
  local first = redis.call('XRANGE', inbox, '-', '+', 'COUNT', 1)
  if #first > 0 then start = offset(first[1]) - 1 end
  return {known = false, acked = start, delivered = start, seen = zero}
end
-- advance records that dev reached seq (kind a: acknowledged, d: handed
-- over) at the time at, and stores dev.
local function advance(kind, name, d, seq, at)
  if not d.known then
    -- Marks above its start, left by a forgotten device of the same
    -- name, would claim messages this one never had.
    redis.call('ZREMRANGEBYSCORE', marks('a', name), '(' .. d.acked, '+inf')
    redis.call('ZREMRANGEBYSCORE', marks('d', name), '(' .. d.acked, '+inf')
    d.known = true
  end
  local from = d.delivered
  if kind == 'a' then from = d.acked end
  from = math.max(from, num(redis.call('HGET', meta, 'base'))) + 1
  if seq >= from then
    redis.call('ZADD', marks(kind, name), seq, string.format('%d:%d:%s', seq, from, at))
    redis.call('SADD', marked, name)
  end
  if kind == 'a' then d.acked = math.max(d.acked, seq) end
  d.delivered = math.max(d.delivered, seq)
  if at > d.seen then d.seen = at end
  redis.call('HSET', devs, name, string.format('%d:%d:%s', d.acked, d.delivered, d.seen))
end
`

// pushScript: ARGV at, data, id, publish command, live payload. Returns
// {the sequence, the messages now kept}: 1 means the inbox was empty, and
// its user may have left the index of users.
var pushScript = rueidis.NewLuaScript(prelude + `
local seq, count = push(meta, p, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return {seq, count}
`)

// pushManyScript stores one message in each of several inboxes and
// publishes each live, as pushScript does each, on a single Redis only
// (its keys are of many slots). KEYS: the index of users, then each
// push's meta hash and id key. ARGV: at, publish command, then each
// push's base, user, id, data and live payload. Returns the sequences.
// (The prelude's p and meta are not used.)
var pushManyScript = rueidis.NewLuaScript(prelude + `
local at, cmd = ARGV[1], ARGV[2]
local seqs = {}
for i = 1, (#KEYS - 1) / 2 do
  local a = 5*i - 2
  local user = ARGV[a+1]
  local seq, count = push(KEYS[2*i], ARGV[a], at, ARGV[a+3], ARGV[a+2], cmd, ARGV[a+4])
  if count == 1 then redis.call('ZADD', KEYS[1], 0, user) end
  redis.call('SET', KEYS[2*i+1], user .. '\0' .. string.format('%d', seq))
  seqs[i] = seq
end
return seqs
`)

// Codes the device scripts return first.
const (
	codeOK        = 0
	codeBackwards = 1
	codeBeyond    = 2
)

// ackScript: ARGV device, seq, now. Returns {code, bound}.
var ackScript = rueidis.NewLuaScript(userPrelude + `
local name, seq = ARGV[2], tonumber(ARGV[3])
local d = device(name)
if seq < d.acked then return {1, d.acked} end
local top = num(redis.call('HGET', meta, 'top'))
if seq > top then return {2, top} end
advance('a', name, d, seq, ARGV[4])
return {0, 0}
`)

// deliveredScript: ARGV device, seq, at. Returns {code, bound}.
var deliveredScript = rueidis.NewLuaScript(userPrelude + `
local name, seq = ARGV[2], tonumber(ARGV[3])
local top = num(redis.call('HGET', meta, 'top'))
if seq > top then return {2, top} end
local d = device(name)
if not d.known or seq > d.delivered then advance('d', name, d, seq, ARGV[4]) end
return {0, 0}
`)

// seenScript: ARGV device, at.
var seenScript = rueidis.NewLuaScript(userPrelude + `
local d = device(ARGV[2])
advance('d', ARGV[2], d, d.delivered, ARGV[3])
return 0
`)

// pendingScript: ARGV device, limit. Returns {acked, known, top,
// entries}.
var pendingScript = rueidis.NewLuaScript(userPrelude + `
local d = device(ARGV[2])
local known = 0
if d.known then known = 1 end
local top = num(redis.call('HGET', meta, 'top'))
return {d.acked, known, top, redis.call('XRANGE', inbox, id(d.acked + 1), '+', 'COUNT', tonumber(ARGV[3]))}
`)

// expireScript: ARGV before, maxCount, maxBytes, receiptsBefore (an empty string
// for none). Forgets devices inactive since before, drops what every
// known device acknowledged and what is too old or beyond the caps,
// then the receipts past receiptsBefore of messages no longer kept, and
// the marks no kept receipt needs. Returns {dropped, ids of the receipts
// dropped...}.
var expireScript = rueidis.NewLuaScript(userPrelude + `
local before, maxCount, maxBytes, rbefore = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local all = redis.call('HGETALL', devs)
local acked, known = 0, false
for i = 1, #all, 2 do
  local a, s = string.match(all[i + 1], '^(%d+):%d+:(%d+)$')
  if before ~= '' and s < before then
    redis.call('HDEL', devs, all[i])
  else
    a = tonumber(a)
    if not known or a < acked then acked = a end
    known = true
  end
end

local count, bytes = num(redis.call('HGET', meta, 'count')), num(redis.call('HGET', meta, 'bytes'))
local base = num(redis.call('HGET', meta, 'base'))
local first, last = 0, 0
walk(inbox, function(e)
  local off = offset(e)
  local drop = (known and off <= acked) or (before ~= '' and e[2][2] < before) or
    (maxCount > 0 and count > maxCount) or (maxBytes > 0 and bytes > maxBytes)
  if not drop then return false end
  if first == 0 then first = off end
  last, count, bytes = off, count - 1, bytes - #e[2][4]
  return true
end)
local n = 0
if first > 0 then
  n = last - first + 1
  base = math.max(base, last)
  redis.call('XTRIM', inbox, 'MINID', id(last + 1))
  redis.call('HSET', meta, 'base', base, 'count', count, 'bytes', bytes)
end

local out = {string.format('%d', n)}
local keep = num(redis.call('HGET', meta, 'top')) + 1
walk(rcpt, function(e)
  local off = offset(e)
  if off > base or rbefore == '' or not (e[2][2] < rbefore) then keep = off return false end
  table.insert(out, e[2][4])
  return true
end)
redis.call('XTRIM', rcpt, 'MINID', id(keep))
for _, name in ipairs(redis.call('SMEMBERS', marked)) do
  local left = 0
  for _, kind in ipairs({'a', 'd'}) do
    redis.call('ZREMRANGEBYSCORE', marks(kind, name), '-inf', '(' .. keep)
    left = left + redis.call('ZCARD', marks(kind, name))
  end
  if left == 0 then redis.call('SREM', marked, name) end
end
return out
`)

// devicesScript returns {name, value, ...} of the known devices.
var devicesScript = rueidis.NewLuaScript(userPrelude + `
return redis.call('HGETALL', devs)
`)

// receiptScript: ARGV seq, id. Returns {} when the receipt is gone, else
// {accepted, device, known, delivered, acked, ...} for each device known or
// marked, in name order, times ” for none.
var receiptScript = rueidis.NewLuaScript(userPrelude + `
local seq, msg = tonumber(ARGV[2]), ARGV[3]
local e = redis.call('XRANGE', rcpt, id(seq), id(seq))
if #e == 0 or e[1][2][4] ~= msg then return {} end
local names, seen = {}, {}
for _, list in ipairs({redis.call('HKEYS', devs), redis.call('SMEMBERS', marked)}) do
  for _, name in ipairs(list) do
    if not seen[name] then seen[name] = true table.insert(names, name) end
  end
end
table.sort(names)
local function covering(kind, name)
  local m = redis.call('ZRANGEBYSCORE', marks(kind, name), seq, '+inf', 'LIMIT', 0, 1)
  if #m == 0 then return '' end
  local from, at = string.match(m[1], '^%d+:(%d+):(%d+)$')
  if tonumber(from) <= seq then return at end
  return ''
end
local out = {e[1][2][2]}
for _, name in ipairs(names) do
  local known = redis.call('HEXISTS', devs, name)
  local acked = covering('a', name)
  local delivered = covering('d', name)
  if delivered == '' then delivered = acked end
  if known == 1 or delivered ~= '' then
    table.insert(out, name) table.insert(out, known) table.insert(out, delivered) table.insert(out, acked)
  end
end
return out
`)

// holdsScript returns how many records, devices and receipts the user (or
// channel) holds: a name is listed only while it holds some.
var holdsScript = rueidis.NewLuaScript(prelude + `
return redis.call('XLEN', p .. ':hist') + redis.call('XLEN', p .. ':inbox') + redis.call('HLEN', p .. ':devs') + redis.call('XLEN', p .. ':rcpt')
`)

// rememberScript: KEYS[1] the key's hash; ARGV now, threshold (results
// stored after it are in their window), hash, result. Returns {0, result}
// for a result held, {1} when stored, {2} on a conflict.
var rememberScript = rueidis.NewLuaScript(`
local v = redis.call('HMGET', KEYS[1], 't', 'h', 'r')
if v[1] and v[1] > ARGV[2] then
  if v[2] ~= ARGV[3] then return {2} end
  return {0, v[3]}
end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'h', ARGV[3], 'r', ARGV[4])
return {1}
`)

// forgetOldScript: KEYS[1] the key's hash; ARGV before. Drops the key if
// its result was stored before before; returns 1 if it did.
var forgetOldScript = rueidis.NewLuaScript(`
local t = redis.call('HGET', KEYS[1], 't')
if t and t < ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`)

// unindexScript: KEYS[1] an index; ARGV member, score. Removes member if
// it still has score, so that an entry written again meanwhile stays.
var unindexScript = rueidis.NewLuaScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`)

// escalatedScript: ARGV limit. Returns {position, entries}.
var escalatedScript = rueidis.NewLuaScript(userPrelude + `
local pos = num(redis.call('HGET', meta, 'escalated'))
return {pos, redis.call('XRANGE', inbox, id(pos + 1), '+', 'COUNT', tonumber(ARGV[2]))}
`)

// setEscalatedScript: ARGV seq. Returns {code, bound}.
var setEscalatedScript = rueidis.NewLuaScript(prelude + `
local from, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
local top = num(redis.call('HGET', meta, 'top'))
if seq > top then return {2, top} end
local pos = num(redis.call('HGET', meta, 'escalated'))
if pos ~= from or seq <= pos then return {0, 0} end
redis.call('HSET', meta, 'escalated', seq)
return {0, 1}
`)
