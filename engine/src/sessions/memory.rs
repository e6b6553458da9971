//! `SessionStore` in memory: the reference backend for tests and examples (one process, so
//! one node). Every method takes one lock, so each is atomic as the trait requires.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    HashProgress, PartCommit, PartRecord, SessionRecord, SessionStore, TusProgress, TusRecord,
};
use crate::error::Result;
use crate::types::{FileId, Millis, UploadId, UserId};
use crate::uploads::Sha1State;

#[derive(Debug, Default)]
pub struct MemorySessionStore {
    state: Mutex<State>,
}

/// Who holds a lease (a session's completion claim, a tus upload's writer lock) and until when.
#[derive(Debug, Default)]
struct Lease {
    holder: String,
    until: Millis,
}

impl Lease {
    /// Taken when free, expired or already `holder`'s.
    fn take(&mut self, holder: &str, now: Millis, until: Millis) -> bool {
        if self.until < now || self.holder == holder {
            self.holder = holder.to_owned();
            self.until = until;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Session {
    record: SessionRecord,
    parts: BTreeMap<u32, String>,
    claim: Lease,
}

#[derive(Debug)]
struct Tus {
    record: TusRecord,
    lock: Lease,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<UploadId, Session>,
    results: HashMap<UploadId, (UserId, FileId, Millis)>,
    tus: HashMap<UploadId, Tus>,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        MemorySessionStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock_unpoisoned(&self.state)
    }
}

/// Oldest expiry first, at most `limit`.
fn by_expiry<T: Clone>(mut due: Vec<(Millis, T)>, limit: u32) -> Vec<T> {
    due.sort_by_key(|(at, _)| *at);
    due.into_iter()
        .take(limit as usize)
        .map(|(_, r)| r)
        .collect()
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn create_or_resume(&self, new: &SessionRecord) -> Result<(SessionRecord, bool)> {
        let mut s = self.lock();
        let open = s.sessions.values_mut().find(|o| {
            o.record.owner == new.owner && o.record.sha1 == new.sha1 && o.record.size == new.size
        });
        if let Some(open) = open {
            open.record.expires_at = new.expires_at;
            return Ok((open.record.clone(), false));
        }
        s.sessions.insert(
            new.id.clone(),
            Session {
                record: new.clone(),
                parts: BTreeMap::new(),
                claim: Lease::default(),
            },
        );
        Ok((new.clone(), true))
    }

    async fn get(&self, id: &UploadId) -> Result<Option<SessionRecord>> {
        Ok(self.lock().sessions.get(id).map(|s| s.record.clone()))
    }

    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>> {
        let s = self.lock();
        Ok(s.sessions
            .get(id)
            .map(|s| {
                s.parts
                    .iter()
                    .map(|(n, etag)| PartRecord {
                        number: *n,
                        etag: etag.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn list(&self, owner: UserId) -> Result<Vec<SessionRecord>> {
        let s = self.lock();
        let mut mine: Vec<SessionRecord> = s
            .sessions
            .values()
            .filter(|s| s.record.owner == owner)
            .map(|s| s.record.clone())
            .collect();
        mine.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        Ok(mine)
    }

    async fn commit_part(
        &self,
        id: &UploadId,
        part: &PartRecord,
        now: Millis,
        expires_at: Millis,
    ) -> Result<PartCommit> {
        let mut s = self.lock();
        let Some(session) = s.sessions.get_mut(id) else {
            return Ok(PartCommit::Gone);
        };
        if session.claim.until >= now {
            return Ok(PartCommit::Completing);
        }
        let replaced = session
            .parts
            .insert(part.number, part.etag.clone())
            .filter(|old| *old != part.etag);
        let r = &mut session.record;
        r.expires_at = expires_at;
        if replaced.is_some() {
            r.hash.epoch += 1;
            if part.number <= r.hash.parts {
                r.hash.parts = 0;
                r.hash.state = Sha1State::new().save();
            }
        }
        Ok(PartCommit::Committed { replaced })
    }

    async fn advance_hash(
        &self,
        id: &UploadId,
        from: &HashProgress,
        parts: u32,
        state: &str,
    ) -> Result<bool> {
        let mut s = self.lock();
        match s.sessions.get_mut(id) {
            Some(session)
                if session.record.hash.parts == from.parts
                    && session.record.hash.epoch == from.epoch =>
            {
                session.record.hash.parts = parts;
                session.record.hash.state = state.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim(&self, id: &UploadId, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        let mut s = self.lock();
        Ok(s.sessions
            .get_mut(id)
            .is_some_and(|session| session.claim.take(holder, now, until)))
    }

    async fn delete(&self, id: &UploadId) -> Result<bool> {
        Ok(self.lock().sessions.remove(id).is_some())
    }

    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<SessionRecord>> {
        let s = self.lock();
        let due = s
            .sessions
            .values()
            .filter(|s| s.record.expires_at <= now)
            .map(|s| (s.record.expires_at, s.record.clone()))
            .collect();
        Ok(by_expiry(due, limit))
    }

    async fn put_result(
        &self,
        id: &UploadId,
        owner: UserId,
        file: &FileId,
        until: Millis,
    ) -> Result<()> {
        let mut s = self.lock();
        s.results.insert(id.clone(), (owner, file.clone(), until));
        let now = crate::types::now_millis();
        s.results.retain(|_, (_, _, keep)| *keep >= now);
        Ok(())
    }

    async fn result(&self, id: &UploadId, now: Millis) -> Result<Option<(UserId, FileId)>> {
        let s = self.lock();
        Ok(s.results
            .get(id)
            .filter(|(_, _, keep)| *keep >= now)
            .map(|(owner, file, _)| (*owner, file.clone())))
    }

    async fn tus_create(&self, record: &TusRecord) -> Result<()> {
        self.lock().tus.insert(
            record.id.clone(),
            Tus {
                record: record.clone(),
                lock: Lease::default(),
            },
        );
        Ok(())
    }

    async fn tus_get(&self, id: &UploadId) -> Result<Option<TusRecord>> {
        Ok(self.lock().tus.get(id).map(|t| t.record.clone()))
    }

    async fn tus_update(
        &self,
        id: &UploadId,
        expect_offset: u64,
        holder: &str,
        to: &TusProgress,
    ) -> Result<bool> {
        let mut s = self.lock();
        let Some(t) = s.tus.get_mut(id) else {
            return Ok(false);
        };
        if t.record.offset != expect_offset || t.lock.holder != holder {
            return Ok(false);
        }
        let r = &mut t.record;
        r.offset = to.offset;
        r.length = r.length.or(to.length);
        r.hash_state = to.hash_state.clone();
        r.expires_at = to.expires_at;
        r.file_id = to.file_id.clone();
        Ok(true)
    }

    async fn tus_lock(
        &self,
        id: &UploadId,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let mut s = self.lock();
        Ok(s.tus
            .get_mut(id)
            .is_some_and(|t| t.lock.take(holder, now, until)))
    }

    async fn tus_unlock(&self, id: &UploadId, holder: &str) -> Result<()> {
        if let Some(t) = self.lock().tus.get_mut(id) {
            if t.lock.holder == holder {
                t.lock.until = 0;
            }
        }
        Ok(())
    }

    async fn tus_delete(&self, id: &UploadId) -> Result<bool> {
        Ok(self.lock().tus.remove(id).is_some())
    }

    async fn tus_open(&self, owner: UserId) -> Result<u64> {
        let s = self.lock();
        Ok(s.tus
            .values()
            .filter(|t| t.record.owner == owner && t.record.file_id.is_none())
            .count() as u64)
    }

    async fn tus_expired(&self, now: Millis, limit: u32) -> Result<Vec<TusRecord>> {
        let s = self.lock();
        let due = s
            .tus
            .values()
            .filter(|t| t.record.expires_at <= now)
            .map(|t| (t.record.expires_at, t.record.clone()))
            .collect();
        Ok(by_expiry(due, limit))
    }
}
