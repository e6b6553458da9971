//! `SessionStore` in memory: the reference backend for tests and examples (one process, so
//! one node). Every method takes one lock, so each is atomic as the trait requires.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    HashProgress, Layout, PartCommit, PartRecord, SessionRecord, SessionStore, StreamProgress,
};
use crate::error::Result;
use crate::types::{FileId, Millis, UploadId, UserId};
use crate::uploads::Sha1State;

#[derive(Debug, Default)]
pub struct MemorySessionStore {
    state: Mutex<State>,
}

/// Who holds a session's lease (a completion claim, a stream's writer) and until when.
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

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<UploadId, Session>,
    results: HashMap<UploadId, (UserId, FileId, Millis)>,
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
        if let Layout::Parts(file) = &new.layout {
            let open = s.sessions.values_mut().find(|o| {
                o.record.owner == new.owner
                    && matches!(&o.record.layout,
                        Layout::Parts(p) if p.sha1 == file.sha1 && p.size == file.size)
            });
            if let Some(open) = open {
                open.record.expires_at = new.expires_at;
                return Ok((open.record.clone(), false));
            }
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
            .filter(|s| s.record.owner == owner && s.record.is_open())
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
        let Layout::Parts(layout) = &mut session.record.layout else {
            return Ok(PartCommit::Gone);
        };
        if session.claim.until >= now {
            return Ok(PartCommit::Completing);
        }
        let replaced = session
            .parts
            .insert(part.number, part.etag.clone())
            .filter(|old| *old != part.etag);
        if replaced.is_some() {
            layout.hash.epoch += 1;
            if part.number <= layout.hash.parts {
                layout.hash.parts = 0;
                layout.hash.state = Sha1State::new().save();
            }
        }
        session.record.expires_at = expires_at;
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
        match s.sessions.get_mut(id).map(|s| &mut s.record.layout) {
            Some(Layout::Parts(layout))
                if layout.hash.parts == from.parts && layout.hash.epoch == from.epoch =>
            {
                layout.hash.parts = parts;
                layout.hash.state = state.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn append(
        &self,
        id: &UploadId,
        expect_offset: u64,
        holder: &str,
        to: &StreamProgress,
    ) -> Result<bool> {
        let mut s = self.lock();
        let Some(session) = s.sessions.get_mut(id) else {
            return Ok(false);
        };
        let Layout::Stream(stream) = &mut session.record.layout else {
            return Ok(false);
        };
        if stream.offset != expect_offset || session.claim.holder != holder {
            return Ok(false);
        }
        stream.offset = to.offset;
        stream.length = stream.length.or(to.length);
        stream.hash_state = to.hash_state.clone();
        if to.file_id.is_some() {
            stream.file_id = to.file_id.clone();
        }
        if to.digest.is_some() {
            stream.digest = to.digest;
        }
        session.record.expires_at = to.expires_at;
        Ok(true)
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
}
