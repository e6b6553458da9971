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
    HashProgress, Layout, PartCommit, PartRecord, SessionRecord, SessionStore, StreamProgress,
};
use crate::error::{Error, Result};
use crate::types::{FileId, Millis, UploadId, UserId};
use crate::uploads::Sha1State;

mod record;
mod scripts;

use record::{fields, parse_record};
use scripts::{ADVANCE, APPEND, COMMIT, CREATE, DELETE, LEASE, UPGRADE_TUS};

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
            .arg(to.digest.map(|d| d.encode()).unwrap_or_default())
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
