//! What the engine should hold after each operation: sessions, tus uploads and files as the
//! model predicts them (`session_machine.rs` checks every answer against it).

use super::*;

#[derive(Debug, PartialEq)]
pub enum State {
    Open,
    Completed(FileId),
    Gone,
}

#[derive(Debug)]
pub struct SessionModel {
    pub id: UploadId,
    pub owner: usize,
    pub name: String,
    pub size: u64,
    pub sha1: Sha1Hex,
    pub chunk: u64,
    pub count: u32,
    /// The content whose bytes the client sends.
    pub source: usize,
    /// Bytes of every acknowledged part.
    pub acked: BTreeMap<u32, Vec<u8>>,
    pub state: State,
}

impl SessionModel {
    pub fn part_range(&self, n: u32) -> std::ops::Range<usize> {
        let start = (u64::from(n - 1) * self.chunk) as usize;
        let end = (start as u64 + self.chunk).min(self.size) as usize;
        start..end
    }

    pub fn missing(&self) -> Vec<u32> {
        (1..=self.count)
            .filter(|n| !self.acked.contains_key(n))
            .collect()
    }
}

#[derive(Debug)]
pub struct TusModel {
    pub id: UploadId,
    pub owner: usize,
    pub source: usize,
    pub length: Option<u64>,
    pub partial: bool,
    /// Made by concatenation: complete from the start, never patched.
    pub is_final: bool,
    pub received: Vec<u8>,
    pub state: State,
}

#[derive(Debug)]
pub struct FileModel {
    pub file: UserFile,
    pub owner: usize,
    pub bytes: Arc<Vec<u8>>,
}

pub struct Model {
    pub users: Vec<User>,
    pub contents: Vec<Arc<Vec<u8>>>,
    pub sha1s: Vec<Sha1Hex>,
    pub sessions: Vec<SessionModel>,
    pub files: Vec<FileModel>,
    /// Content in the dedup index, by SHA1.
    pub stored: HashMap<Sha1Hex, Arc<Vec<u8>>>,
    pub proof_failures: Vec<u64>,
    pub tus: Vec<TusModel>,
}
