//! One hashing stream for every path that takes bytes in (whole files, parts, tus appends,
//! transfers): each chunk is counted, added to the SHA1 (when the path needs it) and to the
//! client's checksum (when one was sent) as it passes to the store, on the task that receives
//! it. A chunk is at most one read of the connection (256 KiB, ~0.15 ms of SHA1), and handing
//! chunks to the blocking pool cost more in thread wake-ups than the hashing itself (measured:
//! ~15% more server CPU on two cores). The store writes on the blocking pool, so hashing still
//! runs beside writing.
//!
//! A checksum mismatch becomes the body's last item, an error, so the store's write fails and
//! keeps nothing of it; so does a body longer than its limit where the path asks for that.

use std::io;
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use crate::blobs::ByteStream;
use crate::checksum::{Checksum, ChecksumCheck};
use crate::uploads::Sha1State;

/// What happens to bytes past the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Over {
    /// The stream fails at the first chunk that crosses it.
    Fail,
    /// They pass unhashed: the store refuses the write by its own length limit.
    Pass,
}

/// How one body is hashed.
#[derive(Debug)]
pub(crate) struct Hashing {
    sha1: Option<Sha1State>,
    checksum: ChecksumCheck,
    limit: u64,
    over: Over,
    /// The body's exact length, when it has one (a part): its checksum counts only when whole
    /// (a body of another length is the store's to refuse, as such).
    exact: Option<u64>,
}

impl Hashing {
    /// Counts the bytes, no more.
    pub(crate) fn new() -> Self {
        Hashing {
            sha1: None,
            checksum: ChecksumCheck::new(None),
            limit: u64::MAX,
            over: Over::Pass,
            exact: None,
        }
    }

    /// Adds the bytes to `state` (a fresh one, or a saved upload's).
    pub(crate) fn sha1(mut self, state: Sha1State) -> Self {
        self.sha1 = Some(state);
        self
    }

    /// Checks the client's checksum of the body.
    pub(crate) fn checksum(mut self, want: Option<Checksum>) -> Self {
        self.checksum = ChecksumCheck::new(want);
        self
    }

    pub(crate) fn limit(mut self, limit: u64, over: Over) -> Self {
        self.limit = limit;
        self.over = over;
        self
    }

    pub(crate) fn exact(mut self, len: u64) -> Self {
        self.exact = Some(len);
        self
    }

    /// The body, hashed as it passes, and what was found once it has been read.
    pub(crate) fn stream(self, body: ByteStream) -> (ByteStream, Arc<Mutex<Hashed>>) {
        let out = Arc::new(Mutex::new(Hashed::default()));
        let st = St {
            body,
            h: self,
            seen: 0,
            done: false,
            out: out.clone(),
        };
        let stream = futures::stream::unfold(st, |mut st| async move {
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    st.seen += chunk.len() as u64;
                    if st.seen > st.h.limit {
                        if st.h.over == Over::Fail {
                            st.done = true;
                            st.finish(|o| o.too_long = true);
                            let e = io::Error::other("the body is longer than allowed");
                            return Some((Err(e), st));
                        }
                        // Past the limit the store refuses the write: nothing more to hash.
                        return Some((Ok(chunk), st));
                    }
                    if let Some(sha1) = &mut st.h.sha1 {
                        sha1.update(&chunk);
                    }
                    st.h.checksum.update(&chunk);
                    Some((Ok(chunk), st))
                }
                Some(Err(e)) => Some((Err(e), st)),
                None => {
                    st.done = true;
                    let whole = st.h.exact.is_none_or(|n| n == st.seen);
                    if whole && !st.h.checksum.matches() {
                        st.finish(|o| o.checksum_mismatch = true);
                        let e = io::Error::other("the body does not match its checksum");
                        return Some((Err(e), st));
                    }
                    let sha1 = st.h.sha1.take();
                    st.finish(|o| {
                        o.ended = true;
                        o.sha1 = sha1;
                    });
                    None
                }
            }
        })
        .boxed();
        (stream, out)
    }
}

/// What a hashed body turned out to be.
#[derive(Debug, Default)]
pub(crate) struct Hashed {
    /// The body ended and matched its checksum; `sha1` then holds the state after it.
    pub ended: bool,
    pub sha1: Option<Sha1State>,
    /// Bytes seen (when the body ended: its length).
    pub len: u64,
    pub too_long: bool,
    pub checksum_mismatch: bool,
}

impl Hashed {
    /// The finished SHA1 and length of a body that ended well.
    pub(crate) fn digest(&mut self) -> Option<(crate::Sha1Hex, u64)> {
        let sha1 = self.sha1.take().filter(|_| self.ended)?;
        Some((crate::Sha1Hex::from_digest(&sha1.finalize()), self.len))
    }
}

struct St {
    body: ByteStream,
    h: Hashing,
    seen: u64,
    done: bool,
    out: Arc<Mutex<Hashed>>,
}

impl St {
    fn finish(&self, f: impl FnOnce(&mut Hashed)) {
        let mut out = self.out.lock().expect("hashing lock");
        out.len = self.seen;
        f(&mut out);
    }
}
