//! Sessions in Redis, for many server nodes. Every change that touches more than one key is
//! one Lua script, so it is atomic: no read-modify-write between nodes.
//!
//! Keys (under a configurable prefix): `s:<id>` hash of the session (any layout; its `layout`
//! field is `parts` or `stream`), `p:<id>` hash part → etag, `k:<owner>:<sha1>:<size>` the open
//! parts session of that file, `o:<owner>` sorted set of the owner's open sessions, `exp`
//! sorted set by expiry, `r:<id>` result of a completed session.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{
    HashProgress, Layout, PartCommit, PartRecord, PartsLayout, SessionRecord, SessionStore,
    StreamLayout, StreamProgress,
};
use crate::error::{Error, Result};
use crate::types::{FileId, Millis, Sha1Hex, UploadId, UserId};
use crate::uploads::Sha1State;

const BACKEND: &str = "redis";

/// Connection failures, timeouts and a Redis still loading its data are an outage (503, retry);
/// anything else is a failure of ours.
fn redis_err(e: redis::RedisError) -> Error {
    use redis::{ErrorKind, ServerErrorKind};
    let outage = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
            )
        );
    if outage {
        Error::unavailable(BACKEND, e)
    } else {
        Error::backend(BACKEND, e)
    }
}

/// Bounds on every wait for Redis, so that a dead or hung Redis fails a request within a few
/// seconds instead of holding it: one connection attempt, one reply, and the reconnect
/// attempts a request waits through after the connection broke.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const RECONNECT_RETRIES: usize = 2;

#[derive(Clone)]
pub struct RedisSessionStore {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// KEYS: the file's open-session key, session, owner's open sessions, expiry index. ARGV: id,
/// expiry, creation time, prefix, layout, open ('1' or '0'), then field/value pairs. Only a
/// parts session is looked up and registered under its file.
const CREATE: &str = r#"
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
const COMMIT: &str = r#"
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

const ADVANCE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HMGET', KEYS[1], 'hashed_parts', 'hash_epoch')
if v[1] == ARGV[1] and v[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'hashed_parts', ARGV[3], 'hash_state', ARGV[4])
  return 1
end
return 0
"#;

/// A lease on a hash: ARGV = holder, now, until, holder field, until field.
const LEASE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HMGET', KEYS[1], ARGV[4], ARGV[5])
if (not v[2]) or tonumber(v[2]) < tonumber(ARGV[2]) or v[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], ARGV[4], ARGV[1], ARGV[5], ARGV[3])
  return 1
end
return 0
"#;

const DELETE: &str = r#"
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
/// ARGV: expected offset, offset, length, hash state, expiry, file id, id, holder, prefix.
const APPEND: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'layout', 'offset', 'claim_holder', 'length', 'owner')
if v[1] ~= 'stream' or v[2] ~= ARGV[1] or v[3] ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'hash_state', ARGV[4], 'expires_at', ARGV[5], 'file_id', ARGV[6])
if v[4] == '' then redis.call('HSET', KEYS[1], 'length', ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[7])
if ARGV[6] ~= '' then redis.call('ZREM', ARGV[9] .. 'o:' .. v[5], ARGV[7]) end
return 1
"#;

/// Moves one tus upload written before streams shared the session record (`t:<id>`, its
/// `lock_*` lease, the `texp` and `to:<owner>` indexes) into the one layout. KEYS: old hash,
/// new hash, expiry index. ARGV: id, prefix.
const UPGRADE_TUS: &str = r#"
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

impl RedisSessionStore {
    /// Connects (reconnecting by itself later); `prefix` keeps several deployments or test runs
    /// apart on one Redis.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::invalid("redis-url", e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(std::time::Duration::from_millis(100))
            .set_max_delay(std::time::Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_err)?;
        let store = RedisSessionStore {
            conn,
            prefix: prefix.to_owned(),
        };
        let moved = store.upgrade_tus_uploads().await?;
        if moved > 0 {
            tracing::info!(moved, "tus uploads moved into the one session layout");
        }
        Ok(store)
    }

    /// Moves tus uploads kept in the layout before streams shared the session record into it,
    /// so uploads in flight across the upgrade resume; returns how many. Each move is one
    /// script, so nodes upgrading at once cannot move one twice.
    async fn upgrade_tus_uploads(&self) -> Result<usize> {
        let mut conn = self.conn.clone();
        let old = format!("{}t:", self.prefix);
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = conn
                .scan_match(format!("{old}*"))
                .await
                .map_err(redis_err)?;
            let mut keys = Vec::new();
            while let Some(k) = futures::StreamExt::next(&mut iter).await {
                keys.push(k.map_err(redis_err)?);
            }
            keys
        };
        let mut moved = 0;
        for key in keys {
            let Some(id) = key.strip_prefix(&old).and_then(|i| UploadId::parse(i).ok()) else {
                continue;
            };
            let n: i64 = Script::new(UPGRADE_TUS)
                .key(&key)
                .key(self.key("s", id.as_str()))
                .key(self.exp_key())
                .arg(id.as_str())
                .arg(&self.prefix)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_err)?;
            moved += n as usize;
        }
        Ok(moved)
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}:{rest}", self.prefix)
    }

    fn exp_key(&self) -> String {
        format!("{}exp", self.prefix)
    }

    /// Takes the `{field}_holder`/`{field}_until` lease of hash `key` (see `LEASE`).
    async fn lease(
        &self,
        key: &str,
        field: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let mut conn = self.conn.clone();
        let ok: i64 = Script::new(LEASE)
            .key(key)
            .arg(holder)
            .arg(now)
            .arg(until)
            .arg(format!("{field}_holder"))
            .arg(format!("{field}_until"))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(ok == 1)
    }

    /// The records whose expiry in the sorted set `key` is at or before `now`, loaded by `load`;
    /// index entries whose record is gone are dropped on the way.
    async fn due<T, F, Fut>(&self, key: &str, now: Millis, limit: u32, load: F) -> Result<Vec<T>>
    where
        F: Fn(UploadId) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrangebyscore_limit(key, "-inf", now, 0, limit as isize)
            .await
            .map_err(redis_err)?;
        let mut out = Vec::new();
        for id in ids {
            let Ok(uid) = UploadId::parse(&id) else {
                continue;
            };
            match load(uid).await? {
                Some(record) => out.push(record),
                None => {
                    let _: () = conn.zrem(key, &id).await.map_err(redis_err)?;
                }
            }
        }
        Ok(out)
    }

    /// Removes every key under the prefix (tests).
    pub async fn clear(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = conn
            .keys(format!("{}*", self.prefix))
            .await
            .map_err(redis_err)?;
        if !keys.is_empty() {
            let _: () = conn.del(keys).await.map_err(redis_err)?;
        }
        Ok(())
    }
}

fn parse_record(id: &UploadId, h: &HashMap<String, String>) -> Result<SessionRecord> {
    let corrupt = || Error::backend(BACKEND, format!("corrupt session {id}"));
    let s = |k: &str| h.get(k).cloned().ok_or_else(corrupt);
    let n = |k: &str| -> Result<i64> { s(k)?.parse().map_err(|_| corrupt()) };
    let layout = match h.get("layout").map(String::as_str) {
        // Sessions written before streams shared the record have no layout: parts.
        Some("parts") | None => Layout::Parts(PartsLayout {
            size: n("size")? as u64,
            sha1: Sha1Hex::parse(&s("sha1")?).map_err(|_| corrupt())?,
            chunk_size: n("chunk_size")? as u64,
            chunk_count: n("chunk_count")? as u32,
            hash: HashProgress {
                parts: n("hashed_parts")? as u32,
                epoch: n("hash_epoch")?,
                state: s("hash_state")?,
            },
        }),
        Some("stream") => {
            let length = s("length")?;
            let file_id = s("file_id")?;
            Layout::Stream(StreamLayout {
                length: if length.is_empty() {
                    None
                } else {
                    Some(length.parse().map_err(|_| corrupt())?)
                },
                offset: n("offset")? as u64,
                hash_state: s("hash_state")?,
                file_id: if file_id.is_empty() {
                    None
                } else {
                    Some(FileId::parse(&file_id).map_err(|_| corrupt())?)
                },
                metadata: s("metadata")?,
                concat: s("concat")?,
            })
        }
        Some(_) => return Err(corrupt()),
    };
    Ok(SessionRecord {
        id: id.clone(),
        owner: UserId(n("owner")?),
        file_name: s("file_name")?,
        created_at: n("created_at")?,
        expires_at: n("expires_at")?,
        layout,
    })
}

/// The hash fields of a new session.
fn fields(r: &SessionRecord) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("owner", r.owner.0.to_string()),
        ("file_name", r.file_name.clone()),
        ("created_at", r.created_at.to_string()),
        ("expires_at", r.expires_at.to_string()),
        ("claim_holder", String::new()),
        ("claim_until", "0".to_owned()),
    ];
    match &r.layout {
        Layout::Parts(p) => f.extend([
            ("layout", "parts".to_owned()),
            ("size", p.size.to_string()),
            ("sha1", p.sha1.to_string()),
            ("chunk_size", p.chunk_size.to_string()),
            ("chunk_count", p.chunk_count.to_string()),
            ("hashed_parts", p.hash.parts.to_string()),
            ("hash_epoch", p.hash.epoch.to_string()),
            ("hash_state", p.hash.state.clone()),
        ]),
        Layout::Stream(t) => f.extend([
            ("layout", "stream".to_owned()),
            (
                "length",
                t.length.map(|l| l.to_string()).unwrap_or_default(),
            ),
            ("offset", t.offset.to_string()),
            ("hash_state", t.hash_state.clone()),
            (
                "file_id",
                t.file_id
                    .as_ref()
                    .map(|f| f.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            ("metadata", t.metadata.clone()),
            ("concat", t.concat.clone()),
        ]),
    }
    f
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn create_or_resume(&self, new: &SessionRecord) -> Result<(SessionRecord, bool)> {
        let mut conn = self.conn.clone();
        let (layout, owner_file) = match &new.layout {
            Layout::Parts(p) => ("parts", format!("{}:{}:{}", new.owner.0, p.sha1, p.size)),
            // Never read: streams are not registered under a file.
            Layout::Stream(_) => ("stream", format!("{}:-", new.owner.0)),
        };
        let script = Script::new(CREATE);
        let mut inv = script.prepare_invoke();
        inv.key(self.key("k", &owner_file))
            .key(self.key("s", new.id.as_str()))
            .key(self.key("o", &new.owner.0.to_string()))
            .key(self.exp_key())
            .arg(new.id.as_str())
            .arg(new.expires_at)
            .arg(new.created_at)
            .arg(&self.prefix)
            .arg(layout)
            .arg(if new.is_open() { "1" } else { "0" });
        for (k, v) in fields(new) {
            inv.arg(k).arg(v);
        }
        let id: String = inv.invoke_async(&mut conn).await.map_err(redis_err)?;
        if id == new.id.as_str() {
            return Ok((new.clone(), true));
        }
        let id =
            UploadId::parse(&id).map_err(|_| Error::backend(BACKEND, "corrupt session index"))?;
        match self.get(&id).await? {
            Some(open) => Ok((open, false)),
            None => Err(Error::Busy),
        }
    }

    async fn get(&self, id: &UploadId) -> Result<Option<SessionRecord>> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = conn
            .hgetall(self.key("s", id.as_str()))
            .await
            .map_err(redis_err)?;
        if h.is_empty() {
            return Ok(None);
        }
        parse_record(id, &h).map(Some)
    }

    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = conn
            .hgetall(self.key("p", id.as_str()))
            .await
            .map_err(redis_err)?;
        let mut parts = h
            .into_iter()
            .map(|(n, etag)| {
                let number = n
                    .parse()
                    .map_err(|_| Error::backend(BACKEND, "corrupt part number"))?;
                Ok(PartRecord { number, etag })
            })
            .collect::<Result<Vec<_>>>()?;
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn list(&self, owner: UserId) -> Result<Vec<SessionRecord>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrange(self.key("o", &owner.0.to_string()), 0, -1)
            .await
            .map_err(redis_err)?;
        let mut out = Vec::new();
        for id in ids {
            let Ok(id) = UploadId::parse(&id) else {
                continue;
            };
            if let Some(s) = self.get(&id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn commit_part(
        &self,
        id: &UploadId,
        part: &PartRecord,
        now: Millis,
        expires_at: Millis,
    ) -> Result<PartCommit> {
        let mut conn = self.conn.clone();
        let (code, old): (i64, String) = Script::new(COMMIT)
            .key(self.key("s", id.as_str()))
            .key(self.key("p", id.as_str()))
            .key(self.exp_key())
            .arg(part.number)
            .arg(&part.etag)
            .arg(expires_at)
            .arg(id.as_str())
            .arg(now)
            .arg(Sha1State::new().save())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(match code {
            0 => PartCommit::Gone,
            1 => PartCommit::Completing,
            _ => PartCommit::Committed {
                replaced: (!old.is_empty()).then_some(old),
            },
        })
    }

    async fn advance_hash(
        &self,
        id: &UploadId,
        from: &HashProgress,
        parts: u32,
        state: &str,
    ) -> Result<bool> {
        let mut conn = self.conn.clone();
        let ok: i64 = Script::new(ADVANCE)
            .key(self.key("s", id.as_str()))
            .arg(from.parts)
            .arg(from.epoch)
            .arg(parts)
            .arg(state)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(ok == 1)
    }

    async fn append(
        &self,
        id: &UploadId,
        expect_offset: u64,
        holder: &str,
        to: &StreamProgress,
    ) -> Result<bool> {
        let mut conn = self.conn.clone();
        let ok: i64 = Script::new(APPEND)
            .key(self.key("s", id.as_str()))
            .key(self.exp_key())
            .arg(expect_offset)
            .arg(to.offset)
            .arg(to.length.map(|l| l.to_string()).unwrap_or_default())
            .arg(&to.hash_state)
            .arg(to.expires_at)
            .arg(
                to.file_id
                    .as_ref()
                    .map(|f| f.as_str().to_owned())
                    .unwrap_or_default(),
            )
            .arg(id.as_str())
            .arg(holder)
            .arg(&self.prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(ok == 1)
    }

    async fn claim(&self, id: &UploadId, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        self.lease(&self.key("s", id.as_str()), "claim", holder, now, until)
            .await
    }

    async fn delete(&self, id: &UploadId) -> Result<bool> {
        let mut conn = self.conn.clone();
        let ok: i64 = Script::new(DELETE)
            .key(self.key("s", id.as_str()))
            .key(self.key("p", id.as_str()))
            .key(self.exp_key())
            .arg(id.as_str())
            .arg(&self.prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(ok == 1)
    }

    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<SessionRecord>> {
        self.due(&self.exp_key(), now, limit, |id| async move {
            self.get(&id).await
        })
        .await
    }

    async fn put_result(
        &self,
        id: &UploadId,
        owner: UserId,
        file: &FileId,
        until: Millis,
    ) -> Result<()> {
        let mut conn = self.conn.clone();
        let ttl = (until - crate::types::now_millis()).max(1000) as u64;
        let _: () = conn
            .pset_ex(
                self.key("r", id.as_str()),
                format!("{}:{}", owner.0, file.as_str()),
                ttl,
            )
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn result(&self, id: &UploadId, _now: Millis) -> Result<Option<(UserId, FileId)>> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn
            .get(self.key("r", id.as_str()))
            .await
            .map_err(redis_err)?;
        let Some(v) = v else { return Ok(None) };
        let corrupt = || Error::backend(BACKEND, "corrupt upload result");
        let (owner, file) = v.split_once(':').ok_or_else(corrupt)?;
        Ok(Some((
            UserId(owner.parse().map_err(|_| corrupt())?),
            FileId::parse(file).map_err(|_| corrupt())?,
        )))
    }
}
