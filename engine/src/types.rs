//! Domain values, each validated once where it enters the engine.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A SHA1 digest as 40 lower-case hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Sha1Hex(String);

impl Sha1Hex {
    /// Accepts 40 hex characters in either case; stores lower case.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() != 40 {
            return Err(Error::invalid(
                "filehash",
                "must be 40 hex characters (SHA1)",
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid("filehash", "must be hexadecimal"));
        }
        Ok(Sha1Hex(s.to_ascii_lowercase()))
    }

    pub fn from_digest(d: &[u8; 20]) -> Self {
        Sha1Hex(hex::encode(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha1Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sha1Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha1({})", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// A validated username: 3–64 characters of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self> {
        if !(3..=64).contains(&s.len()) {
            return Err(Error::invalid("username", "must be 3 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(Error::invalid(
                "username",
                "may contain only A-Z a-z 0-9 _ . -",
            ));
        }
        Ok(Username(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's name for a file: 1–255 bytes of UTF-8, no path separators, no control characters,
/// not `.` or `..`. It is only ever a label in the database, never part of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName(String);

pub const MAX_FILE_NAME_BYTES: usize = 255;

impl FileName {
    pub fn parse(s: &str) -> Result<Self> {
        const F: &str = "filename";
        if s.is_empty() {
            return Err(Error::invalid(F, "must not be empty"));
        }
        if s.len() > MAX_FILE_NAME_BYTES {
            return Err(Error::invalid(F, "must be at most 255 bytes"));
        }
        if s == "." || s == ".." {
            return Err(Error::invalid(F, "must not be . or .."));
        }
        if s.contains(['/', '\\']) {
            return Err(Error::invalid(F, "must not contain path separators"));
        }
        if s.chars().any(char::is_control) {
            return Err(Error::invalid(
                F,
                "must not contain NUL or control characters",
            ));
        }
        Ok(FileName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Public id of a user file: 20 lower-case hex characters (80 random bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct FileId(String);

impl FileId {
    pub fn generate() -> Self {
        FileId(hex::encode(rand::random::<[u8; 10]>()))
    }

    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 20 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(FileId(s.to_owned()))
        } else {
            Err(Error::invalid(
                "fileid",
                "must be 20 lower-case hex characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An inclusive-exclusive byte range `[start, end)` inside a blob; never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// What a client asked for with `Range:`, before the size is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=a-` or `bytes=a-b` (inclusive `b`).
    From { start: u64, last: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl RangeRequest {
    /// Resolves against the blob size; `Err` means 416.
    pub fn resolve(self, size: u64) -> Result<ByteRange> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        match self {
            RangeRequest::From { start, last } => {
                if start >= size {
                    return Err(unsatisfiable);
                }
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                if end <= start {
                    return Err(unsatisfiable);
                }
                Ok(ByteRange { start, end })
            }
            RangeRequest::Suffix(n) => {
                if n == 0 || size == 0 {
                    return Err(unsatisfiable);
                }
                Ok(ByteRange {
                    start: size.saturating_sub(n),
                    end: size,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        for bad in [
            "", ".", "..", "a/b", "a\\b", "a\0b", "a\nb", "a\u{7f}", "\u{85}x",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(FileName::parse(&"x".repeat(256)).is_err());
        assert!(FileName::parse(&"文".repeat(85)).is_ok()); // 255 bytes
        assert!(FileName::parse(&"文".repeat(86)).is_err());
        for good in ["a", "...", "报告 2024.pdf", "a..b", ".hidden"] {
            assert!(FileName::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn usernames() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("bad name").is_err());
        assert!(Username::parse("é-user").is_err());
        assert!(Username::parse("Good_user.1-x").is_ok());
    }

    #[test]
    fn sha1_parsing() {
        assert!(Sha1Hex::parse("abc").is_err());
        assert!(Sha1Hex::parse(&"g".repeat(40)).is_err());
        assert_eq!(
            Sha1Hex::parse(&"AB".repeat(20)).unwrap().as_str(),
            "ab".repeat(20)
        );
    }

    #[test]
    fn ranges() {
        let r = |start, last| RangeRequest::From { start, last };
        assert_eq!(
            r(0, Some(9)).resolve(100).unwrap(),
            ByteRange { start: 0, end: 10 }
        );
        assert_eq!(
            r(90, None).resolve(100).unwrap(),
            ByteRange {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            r(90, Some(1000)).resolve(100).unwrap(),
            ByteRange {
                start: 90,
                end: 100
            }
        );
        assert!(r(100, None).resolve(100).is_err());
        assert!(r(5, Some(4)).resolve(100).is_err());
        assert!(r(0, None).resolve(0).is_err());
        assert_eq!(
            RangeRequest::Suffix(10).resolve(100).unwrap(),
            ByteRange {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            RangeRequest::Suffix(1000).resolve(100).unwrap(),
            ByteRange { start: 0, end: 100 }
        );
        assert!(RangeRequest::Suffix(0).resolve(100).is_err());
    }
}

/// Id of an upload session: 32 lower-case hex characters (128 random bits), unguessable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UploadId(String);

impl UploadId {
    pub fn generate() -> Self {
        UploadId(hex::encode(rand::random::<[u8; 16]>()))
    }

    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(Error::NotFound { what: "upload" })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
