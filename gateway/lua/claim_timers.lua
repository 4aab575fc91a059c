-- Claim due timers atomically: each is returned to exactly one process, which holds it for
-- a lease. The claimed member is not removed but pushed back to now + lease: the turn it
-- starts clears it or sets its next due time, and if the process dies first the timer is due
-- again when the lease ends (at least once, never lost).
-- KEYS: 1 timers; ARGV: 1 now ms, 2 max count, 3 lease ms
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then
  local again = tonumber(ARGV[1]) + tonumber(ARGV[3])
  local args = {}
  for i, m in ipairs(due) do
    args[2 * i - 1] = again
    args[2 * i] = m
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
return due
