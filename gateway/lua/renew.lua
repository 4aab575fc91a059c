-- A turn that runs long (a slow provider) keeps its conversation: lengthen its lock, its
-- message's running mark and the queue behind it. A lock that ran out (the process stalled)
-- is taken back when nothing else wants the conversation: we still head its queue and no
-- message waits behind us. Otherwise the next one goes ahead (it drops us from the head when
-- it finds the lock gone, enter.lua): it may be a retry of our own message.
-- KEYS: 1 lock, 2 dedup, 3 queue   ARGV: 1 token, 2 lock ttl ms
-- Returns 1, or 0 when the conversation is, or is about to be, another turn's.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif cur or redis.call('LINDEX', KEYS[3], 0) ~= ARGV[1] or redis.call('LLEN', KEYS[3]) > 1 then
  return 0
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  -- our running mark again, if it ran out too: a retry of our message is refused as before
  redis.call('SET', KEYS[2], 'p', 'NX', 'PX', ARGV[2])
end
if redis.call('GET', KEYS[2]) == 'p' then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]) * 4)
return 1
