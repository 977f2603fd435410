-- One per-key token bucket, KEYS[1]: a hash of its level after the last change and the
-- caller's clock then (`ms`). The bucket is refilled to ARGV[4] (never backwards) at ARGV[2]
-- per minute, capped at ARGV[2]; then
--   ARGV[1] = 'take': takes ARGV[5] if the level is at least ARGV[3] (it may go into debt);
--                     returns {1, level after} or {0, level} (refused, nothing written);
--   ARGV[1] = 'add':  adds ARGV[5] (negative charges it), capped at capacity; returns {1, level}.
-- A bucket absent reads as full, so each is set to expire once it would be full again (plus a
-- minute for clocks that differ between nodes). Levels travel as strings because Redis cuts
-- Lua numbers in replies to integers.
local op, per, need, now, amount =
  ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local stored = redis.call('HMGET', KEYS[1], 'level', 'ms')
local level, last = per, now
if stored[1] then
  level, last = tonumber(stored[1]), tonumber(stored[2])
  if now > last then
    level = level + (now - last) * per / 60000
    last = now
  end
  if level > per then level = per end
end
if op == 'take' then
  if level < need then return {0, string.format('%.17g', level)} end
  level = level - amount
else
  if not stored[1] and amount >= 0 then return {1, string.format('%.17g', per)} end
  level = math.min(level + amount, per)
end
local full_in = 3600000
if per > 0 then full_in = math.ceil((per - level) * 60000 / per) end
redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level), 'ms', string.format('%d', last))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.min(full_in, 1e12) + 60000))
return {1, string.format('%.17g', level)}
