//! Proof of ownership for instant upload (秒传). Knowing a SHA1 must not be enough to obtain a
//! file: when a client claims content the store holds, the server picks a few byte ranges at
//! random (unpredictable to the client), remembers their SHA-256 digests with the claim, and
//! answers with the ranges only. Returning the digests links the file; a wrong answer falls
//! back to a normal upload (the bytes are then verified as for any upload). Challenges are
//! single use, bound to the user and short-lived; wrong answers are rate-limited per user.

use std::time::Duration;

use super::Uploads;
use super::{InitOutcome, InitRequest};
use crate::error::{Error, Result};
use crate::meta::{ChallengeRecord, NewUserFile};
use crate::stats::Stats;
use crate::types::{now_millis, ByteRange, FileName, Millis, Sha1Hex};
use crate::{User, UserFile};

/// How instant upload treats a claim of stored content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstantMode {
    /// The client must prove it holds the bytes (the default).
    Proof,
    /// The claimed SHA1 and size are enough (the original system's behaviour; only for
    /// deployments where every user may read every file).
    Trusted,
    /// No instant upload: every upload sends its bytes (stored once all the same).
    Off,
}

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(120);
/// Ranges per challenge, and the longest range.
const RANGES: usize = 3;
const RANGE_LEN: u64 = 64 * 1024;
/// Wrong answers a user may give per window before further proofs are refused.
pub const MAX_FAILURES: u64 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);

/// What the client must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub ranges: Vec<ByteRange>,
    pub expires_at: Millis,
}

/// The outcome of a claim of stored content.
#[derive(Debug)]
pub enum Claim {
    /// Linked at once (trusted mode, or the empty file: nothing to prove).
    Linked(UserFile),
    /// Prove it first.
    Challenge(Challenge),
}

/// The outcome of an answer.
#[derive(Debug)]
pub enum Proof {
    Linked(UserFile),
    /// Wrong digests (or the content went away): upload it normally with this request.
    Refused(InitRequest),
}

fn pick_ranges(size: u64) -> Vec<ByteRange> {
    let len = size.min(RANGE_LEN);
    (0..RANGES)
        .map(|_| {
            let start = if size > len {
                rand::random::<u64>() % (size - len + 1)
            } else {
                0
            };
            ByteRange {
                start,
                end: start + len,
            }
        })
        .collect()
}

fn encode_ranges(ranges: &[ByteRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored ranges back (kept with the challenge for audits and tests).
#[cfg(test)]
fn decode_ranges(s: &str) -> Result<Vec<ByteRange>> {
    s.split(',')
        .map(|p| {
            let (a, b) = p
                .split_once('-')
                .ok_or_else(|| Error::backend("sql", "malformed challenge ranges"))?;
            Ok(ByteRange {
                start: a.parse().map_err(|e| Error::backend("sql", e))?,
                end: b.parse().map_err(|e| Error::backend("sql", e))?,
            })
        })
        .collect()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Uploads {
    /// A claim that the caller holds stored content with this SHA1 and size: `None` when the
    /// store does not hold it (or instant upload is off); else linked at once or challenged.
    pub async fn claim_instant(
        &self,
        user: &User,
        sha1: &Sha1Hex,
        size: u64,
        name: &FileName,
        chunk_size: Option<u64>,
    ) -> Result<Option<Claim>> {
        let mode = self.config.instant_mode;
        if mode == InstantMode::Off {
            return Ok(None);
        }
        let blob = match self.index.blob(sha1).await? {
            Some(b) if b.size == size => b,
            _ => return Ok(None),
        };
        if !self.files.ensure_shareable(&blob).await? {
            return Ok(None); // quarantined: the bytes must be uploaded again
        }
        self.files.check_quota(user.id, size).await?;
        if mode == InstantMode::Trusted || size == 0 {
            return Ok(self
                .link_shareable(user, &blob, name)
                .await?
                .map(Claim::Linked));
        }
        let ranges = pick_ranges(size);
        let store = self.files.store(&blob.store)?;
        let expected: Vec<String> = store
            .range_digests(&blob.key, &ranges)
            .await?
            .iter()
            .map(hex::encode)
            .collect();
        let challenge = Challenge {
            id: hex::encode(rand::random::<[u8; 16]>()),
            ranges,
            expires_at: now_millis() + CHALLENGE_TTL.as_millis() as i64,
        };
        self.proofs
            .put_challenge(&ChallengeRecord {
                id: challenge.id.clone(),
                user_id: user.id,
                sha1: sha1.clone(),
                size,
                file_name: name.as_str().to_owned(),
                chunk_size: chunk_size.unwrap_or(0),
                ranges: encode_ranges(&challenge.ranges),
                expected: expected.join(","),
                expires_at: challenge.expires_at,
            })
            .await?;
        Ok(Some(Claim::Challenge(challenge)))
    }

    /// Answers a challenge with the SHA-256 digests (hex) of its ranges, in order.
    pub async fn prove(&self, user: &User, challenge: &str, digests: &[String]) -> Result<Proof> {
        let now = now_millis();
        let since = now - FAILURE_WINDOW.as_millis() as i64;
        if self.proofs.proof_failures_since(user.id, since).await? >= MAX_FAILURES {
            return Err(Error::TooManyRequests {
                retry_after: FAILURE_WINDOW.as_secs(),
            });
        }
        let valid_id = challenge.len() == 32 && challenge.bytes().all(|b| b.is_ascii_hexdigit());
        let record = if valid_id {
            self.proofs.take_challenge(challenge, user.id).await?
        } else {
            None
        };
        let record = match record {
            Some(r) if r.expires_at > now => r,
            _ => return Err(Error::NotFound { what: "challenge" }),
        };
        let request = InitRequest::new(
            record.file_name.clone(),
            record.size,
            record.sha1.clone(),
            (record.chunk_size > 0).then_some(record.chunk_size),
        );
        let expected: Vec<&str> = record.expected.split(',').collect();
        let right = digests.len() == expected.len()
            && expected
                .iter()
                .zip(digests)
                .all(|(e, d)| same(e, &d.to_ascii_lowercase()));
        if !right {
            self.proofs.record_proof_failure(user.id, now).await?;
            tracing::warn!(user = user.id.0, sha1 = %record.sha1, "wrong proof of ownership");
            return Ok(Proof::Refused(request));
        }
        let name = FileName::parse(&record.file_name)?;
        let file = NewUserFile::new(user.id, record.sha1.clone(), name, record.size, now);
        match self.index.link_existing(&file).await? {
            Some(f) => {
                Stats::inc(&self.stats.instant_hits);
                Ok(Proof::Linked(f))
            }
            // Deleted since the challenge: upload it.
            None => Ok(Proof::Refused(request)),
        }
    }

    /// `init_upload` after a refused proof: a normal upload session, never instant.
    pub async fn init_upload_bytes(&self, user: &User, req: InitRequest) -> Result<InitOutcome> {
        self.init_session(user, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_lie_within_the_content() {
        for size in [1u64, 100, 65_536, 65_537, 10 << 20] {
            for r in pick_ranges(size) {
                assert!(r.start < r.end && r.end <= size, "{size}: {r:?}");
                assert_eq!(r.end - r.start, size.min(RANGE_LEN));
            }
        }
        let rs = pick_ranges(1 << 30);
        assert_eq!(decode_ranges(&encode_ranges(&rs)).unwrap(), rs);
    }

    #[test]
    fn digests_compare_exactly() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
