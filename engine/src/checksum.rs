//! Client checksums of one body (a part, a tus append): what the client says the bytes hash
//! to, checked as they pass, by every upload protocol alike. A mismatch keeps nothing of the
//! body. The whole file's SHA1 is verified separately, always, before anything is published.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A checksum a client sent with a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// `Content-MD5` (RFC 1864), tus `Upload-Checksum: md5`.
    Md5([u8; 16]),
    /// filestore-server's `chkhash`, tus `sha1`.
    Sha1([u8; 20]),
    /// tus `sha256`.
    Sha256([u8; 32]),
    /// `x-amz-checksum-crc32c` (as S3's multipart parts): a corruption check costing almost
    /// no CPU, where MD5 would cost more than the rest of a part's handling together.
    Crc32c(u32),
}

impl Checksum {
    /// `<algorithm>:<hex>`, as session stores keep a representation digest.
    pub fn encode(&self) -> String {
        match self {
            Checksum::Md5(d) => format!("md5:{}", hex::encode(d)),
            Checksum::Sha1(d) => format!("sha1:{}", hex::encode(d)),
            Checksum::Sha256(d) => format!("sha256:{}", hex::encode(d)),
            Checksum::Crc32c(c) => format!("crc32c:{c:08x}"),
        }
    }

    /// The inverse of [`Checksum::encode`]; `None` for anything else.
    pub fn decode(s: &str) -> Option<Checksum> {
        let (algorithm, digest) = s.split_once(':')?;
        let bytes = hex::decode(digest).ok()?;
        Some(match algorithm {
            "md5" => Checksum::Md5(bytes.try_into().ok()?),
            "sha1" => Checksum::Sha1(bytes.try_into().ok()?),
            "sha256" => Checksum::Sha256(bytes.try_into().ok()?),
            "crc32c" => Checksum::Crc32c(u32::from_be_bytes(bytes.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// A checksum being computed over a body, to compare with the one the client sent.
#[derive(Clone, Debug)]
pub(crate) struct ChecksumCheck {
    want: Option<Checksum>,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    None,
    Md5(Md5),
    Sha1(Sha1),
    Sha256(Sha256),
    Crc32c(u32),
}

impl ChecksumCheck {
    pub(crate) fn new(want: Option<Checksum>) -> Self {
        let state = match want {
            None => State::None,
            Some(Checksum::Md5(_)) => State::Md5(Md5::new()),
            Some(Checksum::Sha1(_)) => State::Sha1(Sha1::new()),
            Some(Checksum::Sha256(_)) => State::Sha256(Sha256::new()),
            Some(Checksum::Crc32c(_)) => State::Crc32c(0),
        };
        ChecksumCheck { want, state }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::None => {}
            State::Md5(h) => h.update(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
            State::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
        }
    }

    /// Whether the bytes seen so far have the checksum the client sent (true when none was).
    pub(crate) fn matches(&self) -> bool {
        match (&self.state, self.want) {
            (State::None, None) => true,
            (State::Md5(h), Some(Checksum::Md5(w))) => h.clone().finalize().as_slice() == w,
            (State::Sha1(h), Some(Checksum::Sha1(w))) => h.clone().finalize().as_slice() == w,
            (State::Sha256(h), Some(Checksum::Sha256(w))) => h.clone().finalize().as_slice() == w,
            (State::Crc32c(c), Some(Checksum::Crc32c(w))) => *c == w,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_matches_its_own_digest_only() {
        let body = b"the quick brown fox";
        let right = [
            Checksum::Md5(Md5::digest(body).into()),
            Checksum::Sha1(Sha1::digest(body).into()),
            Checksum::Sha256(Sha256::digest(body).into()),
            Checksum::Crc32c(crc32c::crc32c(body)),
        ];
        for want in right {
            let mut c = ChecksumCheck::new(Some(want));
            c.update(&body[..5]);
            assert!(!c.matches(), "{want:?} matched a prefix");
            c.update(&body[5..]);
            assert!(c.matches(), "{want:?}");
        }
        let mut none = ChecksumCheck::new(None);
        none.update(body);
        assert!(none.matches());
        let mut wrong = ChecksumCheck::new(Some(Checksum::Crc32c(0)));
        wrong.update(body);
        assert!(!wrong.matches());
    }

    #[test]
    fn encoded_checksums_come_back() {
        for c in [
            Checksum::Md5([1; 16]),
            Checksum::Sha1([2; 20]),
            Checksum::Sha256([3; 32]),
            Checksum::Crc32c(0x0102_0304),
        ] {
            assert_eq!(Checksum::decode(&c.encode()), Some(c));
        }
        for bad in [
            "",
            "sha1",
            "sha1:zz",
            "sha1:0102",
            "sha3:00",
            "crc32c:010203",
        ] {
            assert_eq!(Checksum::decode(bad), None, "{bad:?}");
        }
    }
}
