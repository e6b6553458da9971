//! `MetaStore` in memory: the reference backend for tests and examples (and a model of what
//! the SQL backend must do, in a page). Every method takes one lock, so each is atomic as the
//! trait requires. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    AccountStore, BlobRecord, ChallengeRecord, FileIndex, FileOrder, FileQuery, GcEntry, MetaStore,
    NewBlob, NewUserFile, OutboxEntry, ProofStore, Published, Settings, UserFile, UserRecord,
};
use crate::error::{Error, Result};
use crate::types::{now_millis, FileId, FileName, Millis, Sha1Hex, UserId, Username};

const DAY: Millis = 24 * 3600 * 1000;

#[derive(Debug, Default)]
pub struct MemoryMetaStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<i64, UserRecord>,
    tokens: HashMap<String, (UserId, Millis)>,
    events: Vec<(String, String, Millis)>,
    blobs: BTreeMap<Sha1Hex, BlobRecord>,
    files: HashMap<FileId, UserFile>,
    /// Deletion queue: (store, key) → queued at.
    gc: BTreeMap<(String, String), Millis>,
    /// Transfer outbox: (sha1, destination) → the job.
    outbox: BTreeMap<(Sha1Hex, String), OutboxEntry>,
    challenges: HashMap<String, ChallengeRecord>,
    proof_failures: Vec<(UserId, Millis)>,
    checks: HashMap<Sha1Hex, bool>,
    settings: HashMap<String, String>,
}

impl MemoryMetaStore {
    pub fn new() -> Self {
        MemoryMetaStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock_unpoisoned(&self.state)
    }
}

impl State {
    fn named_file(&self, file: &NewUserFile) -> Option<UserFile> {
        self.files
            .values()
            .find(|f| {
                f.user_id == file.user_id && f.sha1 == file.sha1 && f.name == file.name.as_str()
            })
            .cloned()
    }

    fn insert_file(&mut self, file: &NewUserFile) -> UserFile {
        let f = UserFile {
            id: FileId::generate(),
            user_id: file.user_id,
            sha1: file.sha1.clone(),
            name: file.name.as_str().to_owned(),
            size: file.size,
            uploaded_at: file.now,
            updated_at: file.now,
        };
        self.files.insert(f.id.clone(), f.clone());
        f
    }

    fn count_events(&self, kind: &str, key: &str, since: Millis) -> u64 {
        self.events
            .iter()
            .filter(|(k, r, at)| k == kind && r == key && *at >= since)
            .count() as u64
    }
}

/// Newest first, ties by id descending (the SQL backends' order).
fn newest_first(a: &UserFile, b: &UserFile) -> std::cmp::Ordering {
    (b.uploaded_at, b.id.as_str()).cmp(&(a.uploaded_at, a.id.as_str()))
}

#[async_trait]
impl AccountStore for MemoryMetaStore {
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        now: Millis,
    ) -> Result<UserId> {
        let mut s = self.lock();
        if s.users.values().any(|u| u.username == username.as_str()) {
            return Err(Error::UsernameTaken);
        }
        let id = s.users.keys().next_back().map_or(1, |n| n + 1);
        s.users.insert(
            id,
            UserRecord {
                id: UserId(id),
                username: username.as_str().to_owned(),
                password_hash: password_hash.to_owned(),
                created_at: now,
                last_active_at: now,
            },
        );
        Ok(UserId(id))
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let s = self.lock();
        Ok(s.users.values().find(|u| u.username == username).cloned())
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        Ok(self.lock().users.get(&id.0).cloned())
    }

    async fn touch_user(&self, id: UserId, now: Millis) -> Result<()> {
        if let Some(u) = self.lock().users.get_mut(&id.0) {
            u.last_active_at = now;
        }
        Ok(())
    }

    async fn insert_token(
        &self,
        token_hash: &str,
        user: UserId,
        _now: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        let mut s = self.lock();
        if s.tokens.contains_key(token_hash) {
            return Err(Error::backend("memory", "token stored twice"));
        }
        s.tokens.insert(token_hash.to_owned(), (user, expires_at));
        Ok(())
    }

    async fn token_user(&self, token_hash: &str, now: Millis) -> Result<Option<UserRecord>> {
        let s = self.lock();
        Ok(s.tokens
            .get(token_hash)
            .filter(|(_, expires)| *expires > now)
            .and_then(|(user, _)| s.users.get(&user.0).cloned()))
    }

    async fn delete_token(&self, token_hash: &str) -> Result<bool> {
        Ok(self.lock().tokens.remove(token_hash).is_some())
    }

    async fn purge_expired_tokens(&self, now: Millis) -> Result<u64> {
        let mut s = self.lock();
        let before = s.tokens.len();
        s.tokens.retain(|_, (_, expires)| *expires > now);
        Ok((before - s.tokens.len()) as u64)
    }

    async fn record_event(&self, kind: &str, key: &str, now: Millis) -> Result<()> {
        let mut s = self.lock();
        s.events.push((kind.to_owned(), key.to_owned(), now));
        s.events.retain(|(_, _, at)| *at >= now - DAY);
        Ok(())
    }

    async fn events_since(&self, kind: &str, key: &str, since: Millis) -> Result<u64> {
        Ok(self.lock().count_events(kind, key, since))
    }
}

#[async_trait]
impl FileIndex for MemoryMetaStore {
    async fn blob(&self, sha1: &Sha1Hex) -> Result<Option<BlobRecord>> {
        Ok(self.lock().blobs.get(sha1).cloned())
    }

    async fn link_existing(&self, file: &NewUserFile) -> Result<Option<UserFile>> {
        let mut s = self.lock();
        if let Some(existing) = s.named_file(file) {
            return Ok(Some(existing));
        }
        match s.blobs.get_mut(&file.sha1) {
            // Quarantined content is linked to nobody.
            Some(b) if !b.quarantined => b.refcount += 1,
            _ => return Ok(None),
        }
        Ok(Some(s.insert_file(file)))
    }

    async fn publish(&self, blob: &NewBlob, file: &NewUserFile) -> Result<Published> {
        let mut s = self.lock();
        if let Some(existing) = s.named_file(file) {
            return Ok(Published::Deduplicated(existing));
        }
        let created = match s.blobs.get_mut(&file.sha1) {
            Some(b) => {
                b.refcount += 1;
                false
            }
            None => {
                s.blobs.insert(
                    file.sha1.clone(),
                    BlobRecord {
                        sha1: file.sha1.clone(),
                        size: file.size,
                        store: blob.store.clone(),
                        key: blob.key.clone(),
                        refcount: 1,
                        created_at: file.now,
                        quarantined: false,
                    },
                );
                if let Some(job) = &blob.transfer {
                    s.outbox
                        .entry((job.sha1.clone(), job.to.clone()))
                        .or_insert_with(|| job.clone());
                }
                true
            }
        };
        let f = s.insert_file(file);
        Ok(if created {
            Published::Created(f)
        } else {
            Published::Deduplicated(f)
        })
    }

    async fn user_file(
        &self,
        user: UserId,
        sha1: &Sha1Hex,
        id: Option<&FileId>,
    ) -> Result<Option<UserFile>> {
        let s = self.lock();
        let mut matching: Vec<&UserFile> = s
            .files
            .values()
            .filter(|f| f.user_id == user && f.sha1 == *sha1)
            .filter(|f| id.is_none_or(|id| f.id == *id))
            .collect();
        matching.sort_by(|a, b| newest_first(a, b));
        Ok(matching.first().map(|f| (*f).clone()))
    }

    async fn user_file_by_id(&self, id: &FileId) -> Result<Option<UserFile>> {
        Ok(self.lock().files.get(id).cloned())
    }

    async fn list_user_files(&self, user: UserId, query: &FileQuery) -> Result<Vec<UserFile>> {
        let s = self.lock();
        let wanted = query.name_contains.as_deref().map(str::to_ascii_lowercase);
        let mut mine: Vec<&UserFile> = s
            .files
            .values()
            .filter(|f| f.user_id == user)
            .filter(|f| {
                wanted
                    .as_deref()
                    .is_none_or(|w| f.name.to_ascii_lowercase().contains(w))
            })
            .filter(|f| query.after.as_ref().is_none_or(|c| c.precedes(f)))
            .collect();
        let by = |a: &UserFile, b: &UserFile| -> std::cmp::Ordering {
            let id = a.id.as_str().cmp(b.id.as_str());
            match query.order {
                FileOrder::Newest => newest_first(a, b),
                FileOrder::Oldest => newest_first(b, a),
                FileOrder::Name => a.name.cmp(&b.name).then(id),
                FileOrder::NameDesc => b.name.cmp(&a.name).then(id.reverse()),
                FileOrder::Largest => b.size.cmp(&a.size).then(id.reverse()),
                FileOrder::Smallest => a.size.cmp(&b.size).then(id),
            }
        };
        mine.sort_by(|a, b| by(a, b));
        Ok(mine
            .into_iter()
            .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn rename_user_file(
        &self,
        user: UserId,
        id: &FileId,
        name: &FileName,
        now: Millis,
    ) -> Result<UserFile> {
        let mut s = self.lock();
        let Some(file) = s.files.get(id).filter(|f| f.user_id == user).cloned() else {
            return Err(Error::NotFound { what: "file" });
        };
        let taken = s.files.values().any(|f| {
            f.id != file.id && f.user_id == user && f.sha1 == file.sha1 && f.name == name.as_str()
        });
        if taken {
            return Err(Error::NameTaken);
        }
        let f = s.files.get_mut(id).expect("looked up above");
        f.name = name.as_str().to_owned();
        f.updated_at = now;
        Ok(f.clone())
    }

    async fn delete_user_file(&self, user: UserId, id: &FileId) -> Result<Option<GcEntry>> {
        let mut s = self.lock();
        if s.files.get(id).is_none_or(|f| f.user_id != user) {
            return Err(Error::NotFound { what: "file" });
        }
        let file = s.files.remove(id).expect("looked up above");
        let Some(blob) = s.blobs.get_mut(&file.sha1) else {
            return Ok(None);
        };
        blob.refcount -= 1;
        if blob.refcount > 0 {
            return Ok(None);
        }
        let blob = s.blobs.remove(&file.sha1).expect("looked up above");
        let entry = GcEntry {
            store: blob.store,
            key: blob.key,
        };
        s.gc.entry((entry.store.clone(), entry.key.clone()))
            .or_insert_with(now_millis);
        Ok(Some(entry))
    }

    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        let s = self.lock();
        let mut jobs: Vec<OutboxEntry> = s.outbox.values().cloned().collect();
        jobs.sort_by(|a, b| (a.due_at, &a.sha1, &a.to).cmp(&(b.due_at, &b.sha1, &b.to)));
        jobs.truncate(limit as usize);
        Ok(jobs)
    }

    async fn outbox_done(&self, entry: &OutboxEntry) -> Result<()> {
        self.lock()
            .outbox
            .remove(&(entry.sha1.clone(), entry.to.clone()));
        Ok(())
    }

    async fn gc_pending(&self, limit: u32) -> Result<Vec<GcEntry>> {
        let s = self.lock();
        let mut queued: Vec<(&Millis, &(String, String))> =
            s.gc.iter().map(|(k, at)| (at, k)).collect();
        queued.sort_by(|a, b| (a.0, &a.1 .1).cmp(&(b.0, &b.1 .1)));
        Ok(queued
            .into_iter()
            .take(limit as usize)
            .map(|(_, (store, key))| GcEntry {
                store: store.clone(),
                key: key.clone(),
            })
            .collect())
    }

    async fn gc_done(&self, entry: &GcEntry) -> Result<()> {
        self.lock()
            .gc
            .remove(&(entry.store.clone(), entry.key.clone()));
        Ok(())
    }

    async fn gc_later(&self, entry: &GcEntry, at: Millis) -> Result<()> {
        if let Some(queued) = self
            .lock()
            .gc
            .get_mut(&(entry.store.clone(), entry.key.clone()))
        {
            *queued = at;
        }
        Ok(())
    }

    async fn move_blob(&self, sha1: &Sha1Hex, from: &GcEntry, to: &GcEntry) -> Result<bool> {
        let mut s = self.lock();
        match s.blobs.get_mut(sha1) {
            Some(b) if b.store == from.store && b.key == from.key => {
                b.store = to.store.clone();
                b.key = to.key.clone();
                s.gc.entry((from.store.clone(), from.key.clone()))
                    .or_insert_with(now_millis);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn blobs_in_store(
        &self,
        store: &str,
        after: Option<&Sha1Hex>,
        limit: u32,
    ) -> Result<Vec<BlobRecord>> {
        let s = self.lock();
        Ok(s.blobs
            .values()
            .filter(|b| b.store == store && after.is_none_or(|a| b.sha1 > *a))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn user_usage(&self, user: UserId) -> Result<u64> {
        let s = self.lock();
        Ok(s.files
            .values()
            .filter(|f| f.user_id == user)
            .map(|f| f.size)
            .sum())
    }

    async fn blob_by_key(&self, store: &str, key: &str) -> Result<bool> {
        let s = self.lock();
        Ok(s.blobs.values().any(|b| b.store == store && b.key == key))
    }

    async fn quarantine_blob(&self, sha1: &Sha1Hex, key: &str) -> Result<bool> {
        let mut s = self.lock();
        match s.blobs.get_mut(sha1) {
            Some(b) if b.key == key && !b.quarantined => {
                b.quarantined = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn replace_quarantined(&self, sha1: &Sha1Hex, store: &str, key: &str) -> Result<bool> {
        let mut s = self.lock();
        match s.blobs.get_mut(sha1) {
            Some(b) if b.quarantined => {
                b.store = store.to_owned();
                b.key = key.to_owned();
                b.quarantined = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl ProofStore for MemoryMetaStore {
    async fn put_challenge(&self, c: &ChallengeRecord) -> Result<()> {
        let mut s = self.lock();
        if s.challenges.contains_key(&c.id) {
            return Err(Error::backend("memory", "challenge stored twice"));
        }
        s.challenges.insert(c.id.clone(), c.clone());
        Ok(())
    }

    async fn take_challenge(&self, id: &str, user: UserId) -> Result<Option<ChallengeRecord>> {
        let mut s = self.lock();
        if s.challenges.get(id).is_none_or(|c| c.user_id != user) {
            return Ok(None);
        }
        Ok(s.challenges.remove(id))
    }

    async fn record_proof_failure(&self, user: UserId, now: Millis) -> Result<()> {
        let mut s = self.lock();
        s.proof_failures.push((user, now));
        s.proof_failures.retain(|(_, at)| *at >= now - DAY);
        s.challenges.retain(|_, c| c.expires_at >= now);
        Ok(())
    }

    async fn purge_expired_proofs(&self, now: Millis) -> Result<u64> {
        let mut s = self.lock();
        let before = s.proof_failures.len() + s.challenges.len();
        s.proof_failures.retain(|(_, at)| *at >= now - DAY);
        s.challenges.retain(|_, c| c.expires_at >= now);
        Ok((before - s.proof_failures.len() - s.challenges.len()) as u64)
    }

    async fn proof_failures_since(&self, user: UserId, since: Millis) -> Result<u64> {
        let s = self.lock();
        Ok(s.proof_failures
            .iter()
            .filter(|(u, at)| *u == user && *at >= since)
            .count() as u64)
    }

    async fn blob_check(&self, sha1: &Sha1Hex) -> Result<Option<bool>> {
        Ok(self.lock().checks.get(sha1).copied())
    }

    async fn record_blob_check(&self, sha1: &Sha1Hex, collision: bool, _now: Millis) -> Result<()> {
        self.lock().checks.entry(sha1.clone()).or_insert(collision);
        Ok(())
    }
}

#[async_trait]
impl Settings for MemoryMetaStore {
    async fn setting_or_init(&self, name: &str, init: &str) -> Result<String> {
        let mut s = self.lock();
        Ok(s.settings
            .entry(name.to_owned())
            .or_insert_with(|| init.to_owned())
            .clone())
    }
}

#[async_trait]
impl MetaStore for MemoryMetaStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
