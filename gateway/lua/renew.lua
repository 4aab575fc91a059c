-- A turn that runs long (a slow provider) keeps its conversation: lengthen its lock, its
-- message's running mark and the queue behind it, if the lock is still ours.
-- KEYS: 1 lock, 2 dedup, 3 queue   ARGV: 1 token, 2 lock ttl ms
-- Returns 1, or 0 when our lease had already run out.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == 'p' then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]) * 4)
return 1
