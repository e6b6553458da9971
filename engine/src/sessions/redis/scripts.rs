//! The Lua scripts: each change that touches more than one key runs as one of them, atomic in
//! Redis.

/// KEYS: the file's open-session key, session, owner's open sessions, expiry index. ARGV: id,
/// expiry, creation time, prefix, layout, open ('1' or '0'), then field/value pairs. Only a
/// parts session is looked up and registered under its file.
pub(super) const CREATE: &str = r#"
if ARGV[5] == 'parts' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local skey = ARGV[4] .. 's:' .. existing
    if redis.call('EXISTS', skey) == 1 then
      redis.call('HSET', skey, 'expires_at', ARGV[2])
      redis.call('ZADD', KEYS[4], ARGV[2], existing)
      return existing
    end
  end
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[2], unpack(ARGV, 7))
if ARGV[6] == '1' then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1]) end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return ARGV[1]
"#;

/// Commit of a part attempt. KEYS: session, parts, expiry index. ARGV: part, attempt, expiry,
/// id, now, initial hash state. Returns 0 (gone), 1 (completing), or {2, replaced attempt}.
pub(super) const COMMIT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local layout = redis.call('HGET', KEYS[1], 'layout')
if layout and layout ~= 'parts' then return {0, ''} end
local claim = redis.call('HGET', KEYS[1], 'claim_until')
if claim and tonumber(claim) >= tonumber(ARGV[5]) then return {1, ''} end
local old = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if old and old ~= ARGV[2] then
  redis.call('HINCRBY', KEYS[1], 'hash_epoch', 1)
  if tonumber(redis.call('HGET', KEYS[1], 'hashed_parts')) >= tonumber(ARGV[1]) then
    redis.call('HSET', KEYS[1], 'hashed_parts', '0', 'hash_state', ARGV[6])
  end
  return {2, old}
end
return {2, ''}
"#;

pub(super) const ADVANCE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HMGET', KEYS[1], 'hashed_parts', 'hash_epoch')
if v[1] == ARGV[1] and v[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'hashed_parts', ARGV[3], 'hash_state', ARGV[4])
  return 1
end
return 0
"#;

/// A lease on a hash: ARGV = holder, now, until, holder field, until field.
pub(super) const LEASE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HMGET', KEYS[1], ARGV[4], ARGV[5])
if (not v[2]) or tonumber(v[2]) < tonumber(ARGV[2]) or v[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], ARGV[4], ARGV[1], ARGV[5], ARGV[3])
  return 1
end
return 0
"#;

pub(super) const DELETE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'owner', 'sha1', 'size')
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if not v[1] then return 0 end
if v[2] and v[2] ~= '' then
  local k = ARGV[2] .. 'k:' .. v[1] .. ':' .. v[2] .. ':' .. v[3]
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
redis.call('ZREM', ARGV[2] .. 'o:' .. v[1], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
"#;

/// An append to a stream: compare-and-set of the offset, fenced by the claim; the length is
/// set once; a finished stream leaves its owner's open sessions. KEYS: session, expiry index.
/// ARGV: expected offset, offset, length, hash state, expiry, file id, id, holder, prefix,
/// representation digest ('' leaves it).
pub(super) const APPEND: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'layout', 'offset', 'claim_holder', 'length', 'owner')
if v[1] ~= 'stream' or v[2] ~= ARGV[1] or v[3] ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'hash_state', ARGV[4], 'expires_at', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'file_id', ARGV[6]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'digest', ARGV[10]) end
if v[4] == '' then redis.call('HSET', KEYS[1], 'length', ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[7])
if ARGV[6] ~= '' then redis.call('ZREM', ARGV[9] .. 'o:' .. v[5], ARGV[7]) end
return 1
"#;

/// Moves one tus upload written before streams shared the session record (`t:<id>`, its
/// `lock_*` lease, the `texp` and `to:<owner>` indexes) into the one layout. KEYS: old hash,
/// new hash, expiry index. ARGV: id, prefix.
pub(super) const UPGRADE_TUS: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local h = redis.call('HGETALL', KEYS[1])
local t = {}
for i = 1, #h, 2 do t[h[i]] = h[i + 1] end
if redis.call('EXISTS', KEYS[2]) == 0 and t['owner'] and t['expires_at'] then
  redis.call('HSET', KEYS[2], unpack(h))
  redis.call('HDEL', KEYS[2], 'lock_holder', 'lock_until')
  redis.call('HSET', KEYS[2], 'layout', 'stream', 'claim_holder', t['lock_holder'] or '',
    'claim_until', t['lock_until'] or '0')
  redis.call('ZADD', KEYS[3], t['expires_at'], ARGV[1])
  if (t['file_id'] or '') == '' then
    redis.call('ZADD', ARGV[2] .. 'o:' .. t['owner'], t['created_at'] or '0', ARGV[1])
  end
end
redis.call('ZREM', ARGV[2] .. 'texp', ARGV[1])
if t['owner'] then redis.call('SREM', ARGV[2] .. 'to:' .. t['owner'], ARGV[1]) end
redis.call('DEL', KEYS[1])
return 1
"#;
