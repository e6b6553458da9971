//! Counters the engine keeps about itself, read by the server's `/metrics`. Plain atomics, so
//! the engine needs no metrics library.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Stats {
    pub sessions_opened: AtomicU64,
    pub sessions_completed: AtomicU64,
    pub sessions_aborted: AtomicU64,
    pub sessions_expired: AtomicU64,
    pub instant_hits: AtomicU64,
    /// Stored blobs read for a SHA1 collision-attack verdict.
    pub collision_scans: AtomicU64,
    /// Blobs found not to hash to their SHA1 and quarantined.
    pub quarantined: AtomicU64,
    /// SHA1 verification at completion: how many, and the time they took (nanoseconds).
    pub sha1_verifications: AtomicU64,
    pub sha1_verify_nanos: AtomicU64,
    pub transfers_moved: AtomicU64,
    pub transfers_noop: AtomicU64,
    pub transfers_failed: AtomicU64,
    /// Upload bodies being received right now (a gauge).
    pub uploads_in_flight: AtomicU64,
}

impl Stats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn verified(&self, took: Duration) {
        Self::inc(&self.sha1_verifications);
        self.sha1_verify_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every counter, by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("sessions_opened", g(&self.sessions_opened)),
            ("sessions_completed", g(&self.sessions_completed)),
            ("sessions_aborted", g(&self.sessions_aborted)),
            ("sessions_expired", g(&self.sessions_expired)),
            ("instant_hits", g(&self.instant_hits)),
            ("collision_scans", g(&self.collision_scans)),
            ("quarantined", g(&self.quarantined)),
            ("sha1_verifications", g(&self.sha1_verifications)),
            ("sha1_verify_nanos", g(&self.sha1_verify_nanos)),
            ("transfers_moved", g(&self.transfers_moved)),
            ("transfers_noop", g(&self.transfers_noop)),
            ("transfers_failed", g(&self.transfers_failed)),
            ("uploads_in_flight", g(&self.uploads_in_flight)),
        ]
    }
}
