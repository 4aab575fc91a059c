-- Compare-and-set of one kept send: a sender that outlived its lease and a turn queueing
-- replies behind it may both write it; the loser reads what is there and merges.
-- KEYS: 1 the tenant's hash of kept sends, 2 the index of due sends (cst:resends)
-- ARGV: 1 id, 2 what the caller saw ('' absent), 3 what to write ('' drops it),
--       4 due ms ('' keeps the due time), 5 index member, 6 seconds the hash is kept
-- Returns {1} when written, else {0, what is there now} ({0} when absent).
local now = redis.call('HGET', KEYS[1], ARGV[1])
if (now or '') ~= ARGV[2] then return {0, now} end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5]) end
end
return {1}
