-- wrk script of Causette's bench: signed ~300-byte webhook bodies for 10,000 distinct users
-- walking the 3-step button dialog (bench/common.py builds the same bodies in Python).
--   wrk -t1 -c64 -d20s -s bench/wrk.lua http://127.0.0.1:PORT -- PREFIX TENANTS SECRET
-- Message ids are PREFIX-n, unique per run, so Causette's deduplication never drops one.
-- The HMAC-SHA256 is computed here, in LuaJIT (wrk has no crypto library): the key's inner
-- and outer pad blocks are hashed once, so each request costs four compressions (~300 bytes).

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local byte, char, sub, format, rep = string.byte, string.char, string.sub, string.format, string.rep

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
local H0 = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
local W = {}

local function compress(H, s, i)
  for j = 0, 15 do
    local a, b, c, d = byte(s, i + 4 * j, i + 4 * j + 3)
    W[j] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
  end
  for j = 16, 63 do
    local w15, w2 = W[j - 15], W[j - 2]
    local s0 = bxor(ror(w15, 7), ror(w15, 18), rshift(w15, 3))
    local s1 = bxor(ror(w2, 17), ror(w2, 19), rshift(w2, 10))
    W[j] = tobit(W[j - 16] + s0 + W[j - 7] + s1)
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for j = 0, 63 do
    local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
    local ch = bxor(band(e, f), band(bnot(e), g))
    local t1 = tobit(h + S1 + ch + K[j + 1] + W[j])
    local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
    local maj = bxor(band(a, b), band(a, c), band(b, c))
    local t2 = tobit(S0 + maj)
    h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
  end
  H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
  H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
end

local function be32(x)
  return char(band(rshift(x, 24), 255), band(rshift(x, 16), 255), band(rshift(x, 8), 255), band(x, 255))
end

-- Finish a hash whose state H has already absorbed `done` bytes (a multiple of 64).
local function finish(H, msg, done)
  local H2 = {H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]}
  local len = #msg
  local bits = (done + len) * 8
  local padded = msg .. "\128" .. rep("\0", (55 - len) % 64) ..
    be32(math.floor(bits / 4294967296)) .. be32(bits % 4294967296)
  for i = 1, #padded, 64 do compress(H2, padded, i) end
  return H2
end

local function state_after(block)
  local H = {unpack(H0)}
  compress(H, block, 1)
  return H
end

local inner, outer

local function hmac_hex(msg)
  local ih = finish(inner, msg, 64)
  local ib = be32(ih[1]) .. be32(ih[2]) .. be32(ih[3]) .. be32(ih[4]) ..
             be32(ih[5]) .. be32(ih[6]) .. be32(ih[7]) .. be32(ih[8])
  local oh = finish(outer, ib, 64)
  local out = {}
  for i = 1, 8 do out[i] = tohex(oh[i], 8) end
  return table.concat(out)
end

local USERS = 10000
local STEPS = {{"bonjour", ""}, {"Femme", ',"payload":"w"'}, {"M", ',"payload":"m"'}}
local CONTEXT = '{"page":"https://shop.example.com/soldes/femme?utm_source=sms&utm_campaign=hiver",' ..
                '"app":"shop-ios/5.12.1","ip":"203.0.113.42","visit":"7f3c9a2e51b04d8e1a20"}'
local prefix, tenants, n = "run", 1, -1

function init(args)
  prefix = args[1] or "run"
  tenants = tonumber(args[2] or "1")
  local key = args[3] or "bench-webhook-secret"
  key = key .. rep("\0", 64 - #key)
  local ipad, opad = {}, {}
  for i = 1, 64 do
    local k = byte(key, i)
    ipad[i] = char(bxor(k, 0x36))
    opad[i] = char(bxor(k, 0x5c))
  end
  inner = state_after(table.concat(ipad))
  outer = state_after(table.concat(opad))
end

function request()
  n = n + 1
  local u = n % USERS
  local step = STEPS[math.floor(n / USERS) % 3 + 1]
  local body = format('{"id":"%s-%d","from":"u%05d","text":"%s"%s,"name":"Camille Dupont",' ..
                      '"locale":"fr","ts":1764150000.125,"context":%s}', prefix, n, u, step[1], step[2], CONTEXT)
  local path
  if tenants <= 1 then
    path = "/t/bench/channels/hook"
  else
    path = format("/t/bench-%05d/channels/hook", u % tenants)
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                   ["X-Causette-Signature"] = "sha256=" .. hmac_hex(body)}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(format('BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

-- Outside wrk, for checking the HMAC by hand: luajit bench/wrk.lua --sign SECRET BODY
if arg and arg[1] == "--sign" then
  init({"x", "1", arg[2]})
  print(hmac_hex(arg[3]))
end
