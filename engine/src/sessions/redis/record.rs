//! A session record as a Redis hash, both ways.

use std::collections::HashMap;

use super::BACKEND;
use crate::error::{Error, Result};
use crate::sessions::{
    stored_digest, HashProgress, Layout, PartsLayout, SessionRecord, StreamLayout,
};
use crate::types::{FileId, Sha1Hex, UploadId, UserId};

pub(super) fn parse_record(id: &UploadId, h: &HashMap<String, String>) -> Result<SessionRecord> {
    let corrupt = || Error::backend(BACKEND, format!("corrupt session {id}"));
    let s = |k: &str| h.get(k).cloned().ok_or_else(corrupt);
    let n = |k: &str| -> Result<i64> { s(k)?.parse().map_err(|_| corrupt()) };
    let layout = match h.get("layout").map(String::as_str) {
        // Sessions written before streams shared the record have no layout: parts.
        Some("parts") | None => Layout::Parts(PartsLayout {
            size: n("size")? as u64,
            sha1: Sha1Hex::parse(&s("sha1")?).map_err(|_| corrupt())?,
            chunk_size: n("chunk_size")? as u64,
            chunk_count: n("chunk_count")? as u32,
            hash: HashProgress {
                parts: n("hashed_parts")? as u32,
                epoch: n("hash_epoch")?,
                state: s("hash_state")?,
            },
        }),
        Some("stream") => {
            let length = s("length")?;
            let file_id = s("file_id")?;
            Layout::Stream(StreamLayout {
                length: if length.is_empty() {
                    None
                } else {
                    Some(length.parse().map_err(|_| corrupt())?)
                },
                offset: n("offset")? as u64,
                hash_state: s("hash_state")?,
                file_id: if file_id.is_empty() {
                    None
                } else {
                    Some(FileId::parse(&file_id).map_err(|_| corrupt())?)
                },
                metadata: s("metadata")?,
                concat: s("concat")?,
                // Written before streams had digests: none.
                digest: stored_digest(h.get("digest").map(String::as_str).unwrap_or_default())
                    .map_err(|_| corrupt())?,
            })
        }
        Some(_) => return Err(corrupt()),
    };
    Ok(SessionRecord {
        id: id.clone(),
        owner: UserId(n("owner")?),
        file_name: s("file_name")?,
        created_at: n("created_at")?,
        expires_at: n("expires_at")?,
        layout,
    })
}

/// The hash fields of a new session.
pub(super) fn fields(r: &SessionRecord) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("owner", r.owner.0.to_string()),
        ("file_name", r.file_name.clone()),
        ("created_at", r.created_at.to_string()),
        ("expires_at", r.expires_at.to_string()),
        ("claim_holder", String::new()),
        ("claim_until", "0".to_owned()),
    ];
    match &r.layout {
        Layout::Parts(p) => f.extend([
            ("layout", "parts".to_owned()),
            ("size", p.size.to_string()),
            ("sha1", p.sha1.to_string()),
            ("chunk_size", p.chunk_size.to_string()),
            ("chunk_count", p.chunk_count.to_string()),
            ("hashed_parts", p.hash.parts.to_string()),
            ("hash_epoch", p.hash.epoch.to_string()),
            ("hash_state", p.hash.state.clone()),
        ]),
        Layout::Stream(t) => f.extend([
            ("layout", "stream".to_owned()),
            (
                "length",
                t.length.map(|l| l.to_string()).unwrap_or_default(),
            ),
            ("offset", t.offset.to_string()),
            ("hash_state", t.hash_state.clone()),
            (
                "file_id",
                t.file_id
                    .as_ref()
                    .map(|f| f.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            ("metadata", t.metadata.clone()),
            ("concat", t.concat.clone()),
            ("digest", t.digest.map(|d| d.encode()).unwrap_or_default()),
        ]),
    }
    f
}
