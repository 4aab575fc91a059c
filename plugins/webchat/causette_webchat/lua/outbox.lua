-- Append one frame to a visitor's conversation: number it, keep it for resume, publish it.
-- KEYS[1] seq counter   KEYS[2] outbox list   KEYS[3] idempotency key (used when ARGV[5] == "1")
-- ARGV[1] frame JSON (an object without "seq")   ARGV[2] frames kept   ARGV[3] TTL ms
-- ARGV[4] pub/sub channel   ARGV[5] "1" to number this frame at most once per KEYS[3]
-- ARGV[6] TTL ms of KEYS[3] (shorter than the outbox's: retries come within minutes)
-- Returns {seq, fresh}: fresh=0 when KEYS[3] had already numbered this frame.
local once = ARGV[5] == "1"
if once then
  local prev = redis.call("GET", KEYS[3])
  if prev then return {tonumber(prev), 0} end
end
local seq = redis.call("INCR", KEYS[1])
local frame = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call("RPUSH", KEYS[2], frame)
redis.call("LTRIM", KEYS[2], -tonumber(ARGV[2]), -1)
redis.call("PEXPIRE", KEYS[1], ARGV[3])
redis.call("PEXPIRE", KEYS[2], ARGV[3])
if once then redis.call("SET", KEYS[3], seq, "PX", ARGV[6]) end
redis.call("PUBLISH", ARGV[4], frame)
return {seq, 1}
