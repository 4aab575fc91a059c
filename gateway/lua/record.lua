-- Events outside a turn (delivery statuses), each recorded once: a provider that delivers a
-- status webhook again must not have it counted twice.
-- KEYS: 1 event stream, 2 event index, 3.. one dedup key per event that has an id
-- ARGV: 1 tenant, 2 stream maxlen, 3 dedup ttl ms, then per event: '1' when it has a key (the
--       next one of KEYS) else '0', and the event (a msgpack list of that one event)
-- Returns the positions (1-based) of the events recorded.
local k, kept = 3, {}
for i = 4, #ARGV, 2 do
  local new = true
  if ARGV[i] == '1' then
    new = redis.call('SET', KEYS[k], 's', 'NX', 'PX', ARGV[3])
    k = k + 1
  end
  if new then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[i + 1])
    kept[#kept + 1] = (i - 2) / 2
  end
end
if #kept > 0 then redis.call('SADD', KEYS[2], ARGV[1]) end
return kept
