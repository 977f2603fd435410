-- Per-key token buckets, one hash per bucket (KEYS): its level after the last change and the
-- caller's clock then (`ms`). Each bucket is refilled to the clock ARGV[2] (never backwards) at
-- its rate per minute, capped at that rate. Bucket i's numbers are ARGV[3i] (per minute),
-- ARGV[3i+1] (need), ARGV[3i+2] (amount).
--   ARGV[1] = 'take': if every bucket's level is at least its need, takes each amount (a level
--                     may go into debt) and returns {1, first bucket's level after, 0}; else
--                     takes nothing and returns {0, level, i} for the first bucket refused.
--   ARGV[1] = 'add':  adds the amount to the one bucket (negative charges it), capped at its
--                     rate; returns {1, level, 0}.
-- A bucket absent reads as full, so each is set to expire once it would be full again (plus a
-- minute for clocks that differ between nodes). Levels travel as strings because Redis cuts
-- Lua numbers in replies to integers.
local op, now = ARGV[1], tonumber(ARGV[2])

local function fmt(level) return string.format('%.17g', level) end

-- The bucket's level now, the clock it is at, and whether it exists.
local function refilled(key, per)
  local stored = redis.call('HMGET', key, 'level', 'ms')
  if not stored[1] then return per, now, false end
  local level, last = tonumber(stored[1]), tonumber(stored[2])
  if now > last then
    level = level + (now - last) * per / 60000
    last = now
  end
  if level > per then level = per end
  return level, last, true
end

local function store(key, per, level, last)
  local full_in = 3600000
  if per > 0 then full_in = math.ceil((per - level) * 60000 / per) end
  redis.call('HSET', key, 'level', fmt(level), 'ms', string.format('%d', last))
  redis.call('PEXPIRE', key, string.format('%d', math.min(full_in, 1e12) + 60000))
end

if op == 'add' then
  local per, amount = tonumber(ARGV[3]), tonumber(ARGV[5])
  local level, last, present = refilled(KEYS[1], per)
  if not present and amount >= 0 then return {1, fmt(per), 0} end
  level = math.min(level + amount, per)
  store(KEYS[1], per, level, last)
  return {1, fmt(level), 0}
end

local levels, lasts = {}, {}
for i, key in ipairs(KEYS) do
  local level, last = refilled(key, tonumber(ARGV[3 * i]))
  if level < tonumber(ARGV[3 * i + 1]) then return {0, fmt(level), i - 1} end
  levels[i], lasts[i] = level, last
end
for i, key in ipairs(KEYS) do
  levels[i] = levels[i] - tonumber(ARGV[3 * i + 2])
  store(key, tonumber(ARGV[3 * i]), levels[i], lasts[i])
end
return {1, fmt(levels[1]), 0}
