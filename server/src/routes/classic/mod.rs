//! The seed tutorial's API (`/user/*`, `/file/*`), parameter names and JSON field names
//! unchanged so its clients keep working.

pub mod file;
pub mod mpupload;
pub mod user;

use std::time::{Duration, UNIX_EPOCH};

use chunkvault_engine::{Millis, UserFile};
use serde::Serialize;

/// RFC 3339 in UTC with milliseconds.
pub fn timestamp(ms: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A file as the seed's clients know it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileMeta {
    pub file_sha1: String,
    pub file_name: String,
    pub file_size: u64,
    pub upload_at: String,
    pub updated_at: String,
    /// Distinguishes the caller's files when one content is stored under several names.
    #[serde(rename = "FileID")]
    pub file_id: String,
}

impl From<&UserFile> for FileMeta {
    fn from(f: &UserFile) -> Self {
        FileMeta {
            file_sha1: f.sha1.to_string(),
            file_name: f.name.clone(),
            file_size: f.size,
            upload_at: timestamp(f.uploaded_at),
            updated_at: timestamp(f.updated_at),
            file_id: f.id.as_str().to_owned(),
        }
    }
}
