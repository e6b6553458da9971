//! SHA1 collision-attack detection. Content is keyed by SHA1 (the classic API names files by
//! it), and SHA1 collisions can be made (SHAttered, SHA-mbles). Both halves of such a pair carry
//! the attack's near-collision blocks, which `sha1-checked` (Marc Stevens' detection, as git
//! uses) recognises. Content is checked the first time it is about to be shared: an instant
//! upload, or an upload whose SHA1 the store already holds. Content that carries an attack is
//! never shared, so two different contents can never end up behind one blob.
//!
//! Clean content cannot collide with anything by a known attack, so one verdict per SHA1 is
//! enough; it is recorded in the metadata store and every node reuses it.

use bytes::Bytes;
use futures::StreamExt;
use sha1_checked::Digest;

use crate::blobs::BlobStore;
use crate::error::{Error, Result};
use crate::types::Sha1Hex;

/// Bytes handed to the hashing thread at a time.
const BATCH: usize = 1 << 20;

/// What a scan of stored bytes found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    Clean,
    /// The bytes carry a SHA1 collision attack.
    Collision,
    /// The bytes do not hash to the SHA1 they are stored under.
    Mismatch,
}

/// Reads a stored blob once and says whether its bytes carry a SHA1 collision attack, or do
/// not hash to `sha1` at all.
pub async fn scan(store: &dyn BlobStore, key: &str, sha1: &Sha1Hex) -> Result<Scan> {
    let mut body = store.get(key, None).await?;
    let mut hasher = sha1_checked::Sha1::builder().safe_hash(false).build();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0;
    loop {
        let next = body.next().await;
        let end = next.is_none();
        if let Some(chunk) = next {
            let chunk = chunk.map_err(|e| Error::backend("blob", e))?;
            batched += chunk.len();
            batch.push(chunk);
        }
        if batched >= BATCH || (end && !batch.is_empty()) {
            let work = std::mem::take(&mut batch);
            batched = 0;
            // Detection costs about 2 ms per MiB: off the async threads.
            hasher = tokio::task::spawn_blocking(move || {
                for chunk in &work {
                    hasher.update(chunk);
                }
                hasher
            })
            .await
            .map_err(|e| Error::backend("collision check", e))?;
        }
        if end {
            break;
        }
    }
    let result = hasher.try_finalize();
    Ok(if result.has_collision() {
        Scan::Collision
    } else if Sha1Hex::from_digest(&(*result.hash()).into()) != *sha1 {
        Scan::Mismatch
    } else {
        Scan::Clean
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 320 bytes of the two SHAttered PDFs (shattered.io, 2017): an identical-prefix
    /// SHA1 collision; any common suffix keeps the SHA1s equal.
    const SHATTERED_1: &[u8] = include_bytes!("../tests/fixtures/shattered-1.prefix");
    const SHATTERED_2: &[u8] = include_bytes!("../tests/fixtures/shattered-2.prefix");

    fn sha1_of(data: &[u8]) -> [u8; 20] {
        sha1::Sha1::digest(data).into()
    }

    #[test]
    fn the_fixtures_collide_and_are_detected() {
        let suffix = b"any common suffix keeps the collision";
        let a = [SHATTERED_1, suffix].concat();
        let b = [SHATTERED_2, suffix].concat();
        assert_ne!(a, b);
        assert_eq!(sha1_of(&a), sha1_of(&b));
        for data in [&a, &b] {
            let r = sha1_checked::Sha1::builder()
                .safe_hash(false)
                .build()
                .chain_update(data)
                .try_finalize();
            assert!(r.has_collision());
        }
        let clean = sha1_checked::Sha1::new()
            .chain_update(b"ordinary content")
            .try_finalize();
        assert!(!clean.has_collision());
    }
}
