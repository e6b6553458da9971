//! What ChunkVault's server and its clients share: the stable error codes, the JSON envelope
//! every answer of the API comes in, header names, and sizes as users write them (`500MiB`).
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Stable error codes: the `code` of an error answer (README, "Error codes"). Never renumber.
pub mod codes {
    pub const OK: u32 = 0;
    pub const INVALID_PARAM: u32 = 10001;
    pub const INVALID_FILENAME: u32 = 10002;
    pub const INVALID_FILEHASH: u32 = 10003;
    pub const INCOMPLETE_BODY: u32 = 10004;
    pub const DIGEST_MISMATCH: u32 = 10005;
    // 10006 is filestore-server's "file already exists" (`/file/mpupload/init`).
    pub const INTEROP_VERSION: u32 = 10007;
    pub const INCONSISTENT_LENGTH: u32 = 10008;
    pub const COMPLETED_UPLOAD: u32 = 10009;
    pub const UNAUTHENTICATED: u32 = 10101;
    pub const BAD_CREDENTIALS: u32 = 10102;
    pub const BAD_SIGNATURE: u32 = 10301;
    pub const NOT_FOUND: u32 = 10401;
    pub const NO_ROUTE: u32 = 10402;
    pub const NOT_STORED: u32 = 10403;
    pub const METHOD_NOT_ALLOWED: u32 = 10501;
    pub const USERNAME_TAKEN: u32 = 10901;
    pub const NAME_TAKEN: u32 = 10902;
    pub const MISSING_PARTS: u32 = 10903;
    pub const BUSY: u32 = 10904;
    pub const OFFSET_MISMATCH: u32 = 10905;
    pub const LOCKED: u32 = 10906;
    pub const TUS_VERSION: u32 = 11201;
    pub const TOO_LARGE: u32 = 11301;
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 11501;
    pub const RANGE_NOT_SATISFIABLE: u32 = 11601;
    pub const SHA1_MISMATCH: u32 = 12201;
    pub const SHA1_COLLISION: u32 = 12202;
    pub const TOO_MANY_REQUESTS: u32 = 14291;
    pub const LIMIT_REACHED: u32 = 14292;
    pub const QUOTA_EXCEEDED: u32 = 11302;
    pub const INTERNAL: u32 = 15001;
    pub const UNAVAILABLE: u32 = 15031;
    pub const INSUFFICIENT_STORAGE: u32 = 15071;
}

/// Every JSON answer of ChunkVault's own API: `code` 0 and `data` on success; on errors a
/// stable code, a message, and the request's id (as in `X-Request-Id` and the server's log).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub code: i64,
    pub msg: String,
    pub data: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// S3's name for a part's CRC32C (base64 of its 4 big-endian bytes), as `PUT /uploads/{id}/parts/{n}` takes it.
pub const CRC32C_HEADER: &str = "x-amz-checksum-crc32c";

/// A size as users write it: bytes, or with a unit (`500MiB`, `64GiB`, `10MB`); never zero.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 500MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if v == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
