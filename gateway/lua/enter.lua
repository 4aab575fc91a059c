-- Turn entry, one round trip: deduplicate, queue, lock, load.
-- KEYS: 1 dedup, 2 queue, 3 lock, 4 session
-- ARGV: 1 token, 2 lock ttl ms, 3 mode ('1' first call, '0' poll, '2' re-queue)
-- Returns {0} duplicate, {1} wait (another message of this conversation is running),
-- {2, session|false} ours to run, {3} dropped from the queue (our lease ran out): re-queue.
local token, ttl, mode = ARGV[1], ARGV[2], ARGV[3]
if mode == '1' then
  if not redis.call('SET', KEYS[1], 'p', 'NX', 'PX', ttl) then
    return {0}
  end
end
if mode ~= '0' then
  redis.call('RPUSH', KEYS[2], token)
  redis.call('PEXPIRE', KEYS[2], tonumber(ttl) * 4)
end
local head = redis.call('LINDEX', KEYS[2], 0)
while head and head ~= token do
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return {1}
  end
  -- The head's lease expired: its process died. Skip it so the conversation moves on.
  redis.call('LPOP', KEYS[2])
  head = redis.call('LINDEX', KEYS[2], 0)
end
if not head then
  return {3}
end
redis.call('SET', KEYS[3], token, 'PX', ttl)
return {2, redis.call('GET', KEYS[4])}
