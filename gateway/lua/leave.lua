-- Turn exit, one round trip: save, mark done, hand the lock to the next message, record
-- events, set or clear the conversation's timer.
-- KEYS: 1 session, 2 lock, 3 queue, 4 dedup, 5 event stream, 6 event index, 7 timers
-- ARGV: 1 token, 2 session ('' deletes, '=' keeps), 3 session ttl ms, 4 dedup ttl ms ('0' forgets),
--       5 lock ttl ms, 6 tenant, 7 stream maxlen, 8 timer member, 9 timer due ms
--       ('' leave, '-' clear), 10 1 when 11 holds the turn's events (one msgpack list), else 0
-- Returns 1, or 0 when our lease had run out (nothing written: the turn is not ours).
local token = ARGV[1]
if redis.call('GET', KEYS[2]) ~= token then
  if redis.call('LINDEX', KEYS[3], 0) == token then redis.call('LPOP', KEYS[3]) end
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] ~= '=' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
if ARGV[4] == '0' then
  redis.call('DEL', KEYS[4])
else
  redis.call('SET', KEYS[4], 'd', 'PX', ARGV[4])
end
if redis.call('LINDEX', KEYS[3], 0) == token then redis.call('LPOP', KEYS[3]) end
local nxt = redis.call('LINDEX', KEYS[3], 0)
if nxt then
  redis.call('SET', KEYS[2], nxt, 'PX', ARGV[5])
else
  redis.call('DEL', KEYS[2])
end
if ARGV[9] == '-' then
  redis.call('ZREM', KEYS[7], ARGV[8])
elseif ARGV[9] ~= '' then
  redis.call('ZADD', KEYS[7], ARGV[9], ARGV[8])
end
if ARGV[10] == '1' then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*', 'e', ARGV[11])
  redis.call('SADD', KEYS[6], ARGV[6])
end
return 1
