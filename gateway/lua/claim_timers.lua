-- Claim due timers atomically: each is returned to exactly one process.
-- KEYS: 1 timers; ARGV: 1 now ms, 2 max count
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
