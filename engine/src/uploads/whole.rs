//! Whole-file uploads (one request carries the file) and the per-user limit on upload bodies
//! received at once, which every upload path takes a slot of.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Sha1State, Uploads};
use crate::blobs::ByteStream;
use crate::error::{Error, Result};
use crate::hashing::{Hashing, Over};
use crate::meta::{NewUserFile, UserFile};
use crate::stats::Stats;
use crate::types::{now_millis, FileName, UserId};
use crate::User;

/// A user's upload body being received; frees its slot when dropped.
#[derive(Debug)]
pub(crate) struct UploadSlot {
    user: UserId,
    in_flight: Arc<Mutex<HashMap<UserId, u64>>>,
    stats: Arc<Stats>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut map = self.in_flight.lock().expect("in-flight lock");
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
        self.stats
            .uploads_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Uploads {
    /// Stores `body` as the user's file `name`. The bytes are hashed on the way to the store
    /// and never held in memory whole; content the store already holds is not kept twice.
    /// Nothing is recorded unless the whole body arrived and was stored.
    pub async fn upload(&self, user: &User, name: &str, body: ByteStream) -> Result<UserFile> {
        let _slot = self.upload_slot(user)?;
        let name = FileName::parse(name)?;
        let limit = self.config.max_file_size;
        let (body, hashed) = Hashing::new()
            .sha1(Sha1State::new())
            .limit(limit, Over::Fail)
            .stream(body);
        let pending = match self.blobs.put_pending(body).await {
            Ok(p) => p,
            Err(e) => {
                return Err(if hashed.lock().expect("hashing lock").too_long {
                    Error::TooLarge { limit }
                } else {
                    e
                })
            }
        };
        let (sha1, size) = hashed
            .lock()
            .expect("hashing lock")
            .digest()
            .ok_or_else(|| Error::backend("blob", "the store finished before the body did"))?;
        debug_assert_eq!(size, pending.size());
        self.files.check_quota(user.id, size).await?;
        let file = NewUserFile::new(user.id, sha1.clone(), name, size, now_millis());
        let shareable = match self.index.blob(&sha1).await? {
            Some(blob) => self.files.ensure_shareable(&blob).await?,
            None => false,
        };
        // Content already indexed: link to it and drop our copy (the pending blob cleans up).
        if shareable {
            if let Some(existing) = self.index.link_existing(&file).await? {
                return Ok(existing);
            }
        }
        let key = pending.commit(&sha1).await?;
        self.files.publish(key, &file).await
    }

    /// Takes one of the user's slots for receiving an upload body on this node (429 when they
    /// all are taken: a client cannot tie up the server with unbounded parallel uploads).
    pub(crate) fn upload_slot(&self, user: &User) -> Result<UploadSlot> {
        let limit = self.config.max_uploads_in_flight_per_user;
        let mut map = self.in_flight.lock().expect("in-flight lock");
        let n = map.entry(user.id).or_insert(0);
        if *n >= limit {
            return Err(Error::LimitReached {
                what: "concurrent uploads",
                limit,
            });
        }
        *n += 1;
        self.stats
            .uploads_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(UploadSlot {
            user: user.id,
            in_flight: self.in_flight.clone(),
            stats: self.stats.clone(),
        })
    }
}
