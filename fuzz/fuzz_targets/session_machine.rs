//! The chunked-upload state machine against a model. Random sequences of init (right or wrong
//! SHA1, valid or fuzzed names and chunk sizes, instant claims answered right or wrong), part
//! uploads (right bytes, wrong bytes, wrong lengths, cut-off bodies, right or wrong digests,
//! out-of-range numbers, another user's), complete, abort, expiry, reads and deletes, and tus
//! uploads (create with known or deferred length, partial or whole; PATCH at right or wrong
//! offsets with right, corrupted, cut-off or overlong bodies, declared lengths and checksums;
//! concatenation; termination; expiry) run against
//! a real `Engine` (SQLite sessions and metadata, local blob store on tmpfs). Every answer is
//! predicted by a small model and checked exactly; in particular:
//! - a completed file reads back as exactly the bytes whose parts were acknowledged;
//! - a completion whose bytes do not hash to the claimed SHA1 is refused and leaves nothing;
//! - after abort, expiry or completion nothing stays staged for the session;
//! - bad input gets the engine's typed error, never a backend error, and nothing panics;
//! - at the end of every case, once every file is deleted, the store holds no bytes at all.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use chunkvault_engine::blobs::collect;
use chunkvault_engine::meta::{AccountStore, FileIndex};
use chunkvault_engine::uploads::proof::{self, InstantMode, Proof};
use chunkvault_engine::uploads::tus::{AppendChecks, TusConcat, TusCreate};
use chunkvault_engine::uploads::{plan_chunks, MIN_CHUNK_SIZE};
use chunkvault_engine::{
    ByteStream, Checksum, Engine, EngineConfig, Error, FileId, FileName, InitOutcome, InitRequest,
    LocalBlobStore, RangeRequest, Sha1Hex, SqlMetaStore, SqlSessionStore, UploadId, User, UserFile,
    Username,
};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::Sha256;

const CH: u64 = MIN_CHUNK_SIZE;
const MAX_SESSIONS: u64 = 3;
const MAX_OPS: usize = 32;
const USERS: usize = 2;

struct World {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    meta: Arc<SqlMetaStore>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

/// Built once per process: one current-thread runtime and one engine, reused by every case.
/// Each case uses users of its own and leaves the stores empty, so cases do not interact.
static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // tmpfs when there is one: the store fsyncs every part.
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("chunkvault-fuzz-")
        .tempdir_in(base)
        .unwrap();
    let root = dir.path().join("data");
    let (engine, meta) = rt.block_on(async {
        let meta = Arc::new(
            SqlMetaStore::connect(&format!("sqlite://{}/m.db", dir.path().display()))
                .await
                .unwrap(),
        );
        let sessions = SqlSessionStore::new(meta.db().clone());
        let blobs = LocalBlobStore::open("local", &root).await.unwrap();
        let mut config = EngineConfig::default();
        config.instant_mode = InstantMode::Proof;
        config.max_sessions_per_user = MAX_SESSIONS;
        let engine = Engine::new(meta.clone(), Arc::new(blobs), Arc::new(sessions), config)
            .await
            .unwrap();
        (engine, meta)
    });
    World {
        rt,
        engine,
        meta,
        root,
        _dir: dir,
    }
});

static CASES: AtomicU64 = AtomicU64::new(0);

/// `CHUNKVAULT_FUZZ_TRACE=1`: print what each operation did (to see what a corpus reaches).
static TRACE: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("CHUNKVAULT_FUZZ_TRACE").is_some());

fn trace(what: &str) {
    if *TRACE {
        eprintln!("op: {what}");
    }
}

#[path = "session_machine/input.rs"]
mod input;
#[path = "session_machine/model.rs"]
mod model;
#[path = "session_machine/parts.rs"]
mod parts;
#[path = "session_machine/sessions.rs"]
mod sessions;
#[path = "session_machine/tus.rs"]
mod tus;

use input::*;
use model::*;

/// Makes one upload session (of either layout: they share one table) idle past its expiry and
/// runs the one expiry sweep; returns how many sessions it removed.
async fn expire_now(id: &UploadId) -> usize {
    let mut tx = WORLD.meta.db().begin().await.unwrap();
    sqlx::query("UPDATE uploads SET expires_at = 0 WHERE id = ?")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    WORLD
        .engine
        .uploads()
        .expire_uploads()
        .await
        .expect("sweep")
}

/// Deterministic bytes from a seed (xorshift, eight bytes a step).
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = vec![0u8; len.next_multiple_of(8)];
    for word in out.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha1_of(data: &[u8]) -> Sha1Hex {
    Sha1Hex::from_digest(&Sha1::digest(data).into())
}

fn stream(data: Vec<u8>, split: usize, broken_at: Option<usize>) -> ByteStream {
    // Small pieces of small bodies; never thousands of pieces (that only costs time).
    let split = split.max(data.len() / 16).max(1);
    let upto = broken_at.unwrap_or(data.len()).min(data.len());
    let mut items: Vec<std::io::Result<Bytes>> = data[..upto]
        .chunks(split)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if broken_at.is_some() {
        items.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )));
    }
    futures::stream::iter(items).boxed()
}

fn staged(id: &UploadId) -> bool {
    WORLD.root.join("staging").join(id.as_str()).exists()
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let t = entry.file_type().unwrap();
            if t.is_dir() {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

fn blob_files_of(sha1: &Sha1Hex) -> usize {
    files_under(&WORLD.root.join("blobs"))
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(sha1.as_str()))
        })
        .count()
}

/// Bad input must never surface as a backend failure.
fn typed(e: &Error) {
    assert!(
        !matches!(e, Error::Backend { .. }),
        "backend error for client input: {e:?}"
    );
}

async fn read_all(file: &UserFile, range: Option<RangeRequest>) -> Result<Vec<u8>, Error> {
    let d = WORLD.engine.files().read(file.clone(), range).await?;
    Ok(collect(d.body).await.expect("stored bytes read back"))
}

impl Model {
    fn user_index(&self, u: u8) -> usize {
        usize::from(u) % self.users.len()
    }

    fn session_index(&self, s: u8) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| usize::from(s) % self.sessions.len())
    }

    /// Open uploads of both protocols: they share the user's limit.
    fn open_sessions(&self, owner: usize) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.owner == owner && s.state == State::Open)
            .count()
            + self
                .tus
                .iter()
                .filter(|t| t.owner == owner && t.state == State::Open)
                .count()
    }

    /// The user's file of this content under this name, if the model has one.
    fn file_named(&self, owner: usize, sha1: &Sha1Hex, name: &str) -> Option<&FileModel> {
        self.files
            .iter()
            .find(|f| f.owner == owner && &f.file.sha1 == sha1 && f.file.name == name)
    }

    /// A file the engine says the user now has: the same one as before for the same content
    /// and name, else a new one.
    fn got_file(&mut self, owner: usize, file: UserFile, bytes: Arc<Vec<u8>>, name: &str) {
        assert_eq!(file.user_id, self.users[owner].id);
        assert_eq!(file.name, name);
        assert_eq!(file.size, bytes.len() as u64);
        assert_eq!(file.sha1, sha1_of(&bytes));
        if let Some(f) = self.file_named(owner, &file.sha1, name) {
            assert_eq!(f.file.id, file.id, "same content and name: the same file");
            return;
        }
        assert!(
            self.files.iter().all(|f| f.file.id != file.id),
            "a new file gets a new id"
        );
        self.stored.insert(file.sha1.clone(), bytes.clone());
        self.files.push(FileModel { file, owner, bytes });
    }

    async fn read(&mut self, user: u8, file: u8, range: Option<(bool, u32, Option<u32>)>) {
        if self.files.is_empty() {
            return;
        }
        let f = &self.files[usize::from(file) % self.files.len()];
        let who = self.user_index(user);
        // Only the owner finds it.
        let found = WORLD
            .engine
            .files()
            .file(&self.users[who], &f.file.sha1, Some(&f.file.id))
            .await;
        if who == f.owner {
            assert_eq!(found.expect("own file").id, f.file.id);
        } else {
            let e = found.expect_err("another user's file");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        }
        let size = f.bytes.len() as u64;
        let m = size + 2;
        let (req, want) = match range {
            None => (None, Some(0..size)),
            Some((true, n, _)) => {
                let n = u64::from(n) % m;
                let want = (n > 0 && size > 0).then(|| size - n.min(size)..size);
                (Some(RangeRequest::Suffix(n)), want)
            }
            Some((false, start, last)) => {
                let start = u64::from(start) % m;
                let last = last.map(|l| u64::from(l) % m);
                let end = last.map_or(size, |l| (l + 1).min(size));
                let want = (start < size && start < end).then_some(start..end);
                (Some(RangeRequest::From { start, last }), want)
            }
        };
        let res = read_all(&f.file, req).await;
        match want {
            Some(r) => {
                let got = res.expect("satisfiable range");
                assert!(
                    got == f.bytes[r.start as usize..r.end as usize],
                    "range bytes"
                );
            }
            None => {
                let e = res.expect_err("unsatisfiable range");
                assert!(matches!(e, Error::RangeNotSatisfiable { .. }), "{e:?}");
            }
        }
    }

    async fn delete(&mut self, file: u8) {
        if self.files.is_empty() {
            return;
        }
        let f = self.files.remove(usize::from(file) % self.files.len());
        WORLD
            .engine
            .files()
            .delete(&self.users[f.owner], &f.file)
            .await
            .expect("delete");
        let sha1 = &f.file.sha1;
        if self.files.iter().all(|g| &g.file.sha1 != sha1) {
            self.stored.remove(sha1);
            assert!(WORLD.meta.blob(sha1).await.unwrap().is_none());
            assert_eq!(blob_files_of(sha1), 0, "the last file's bytes were kept");
        } else {
            let left = read_all(
                &self
                    .files
                    .iter()
                    .find(|g| &g.file.sha1 == sha1)
                    .unwrap()
                    .file,
                None,
            )
            .await
            .expect("other files of the content stay readable");
            assert!(left == *f.bytes);
        }
    }

    /// Aborts what is open and deletes every file: nothing may be left in the store.
    async fn clean_up(&mut self) {
        for t in &self.tus {
            if t.state != State::Gone {
                WORLD
                    .engine
                    .uploads()
                    .tus_terminate(&self.users[t.owner], &t.id)
                    .await
                    .expect("terminate");
            }
        }
        for s in &self.sessions {
            if s.state == State::Open {
                WORLD
                    .engine
                    .uploads()
                    .abort_upload(&self.users[s.owner], &s.id)
                    .await
                    .expect("abort");
            }
        }
        while !self.files.is_empty() {
            self.delete(0).await;
        }
        let staging = files_under(&WORLD.root.join("staging"));
        assert!(staging.is_empty(), "left staged: {staging:?}");
        let blobs = files_under(&WORLD.root.join("blobs"));
        assert!(blobs.is_empty(), "left stored: {blobs:?}");
        for sha1 in &self.sha1s {
            assert!(WORLD.meta.blob(sha1).await.unwrap().is_none());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = Case::decode(data) else {
        return;
    };
    let world = &*WORLD;
    let n = CASES.fetch_add(1, Ordering::Relaxed);
    world.rt.block_on(async {
        let mut users = Vec::new();
        for u in 0..USERS {
            let name = Username::parse(&format!("fuzz{n}u{u}")).unwrap();
            // Never signed in with: any hash will do.
            let id = world
                .meta
                .create_user(&name, "not-a-password-hash", 0)
                .await
                .unwrap();
            users.push(User {
                id,
                username: name.as_str().to_owned(),
                created_at: 0,
                last_active_at: 0,
            });
        }
        let contents: Vec<Arc<Vec<u8>>> = case
            .contents
            .iter()
            .enumerate()
            .map(|(k, (size, seed))| {
                Arc::new(content(
                    (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(*seed),
                    size.bytes() as usize,
                ))
            })
            .collect();
        let mut model = Model {
            users,
            sha1s: contents.iter().map(|c| sha1_of(c)).collect(),
            contents,
            sessions: Vec::new(),
            files: Vec::new(),
            stored: HashMap::new(),
            proof_failures: vec![0; USERS],
            tus: Vec::new(),
        };
        for op in &case.ops {
            if *TRACE {
                eprintln!("{op:?}");
            }
            match op {
                Op::Init { .. } => model.init(op).await,
                Op::Part { .. } => model.part(op).await,
                Op::Status { user, session } => model.status(*user, *session).await,
                Op::Complete { user, session } => model.complete(*user, *session).await,
                Op::Abort { user, session } => model.abort(*user, *session).await,
                Op::PartRace { .. } => model.part_race(op).await,
                Op::Expire { session } => model.expire(*session).await,
                Op::Read { user, file, range } => model.read(*user, *file, *range).await,
                Op::Delete { file } => model.delete(*file).await,
                Op::TusCreate { .. } => model.tus_create(op).await,
                Op::TusPatch { .. } => model.tus_patch(op).await,
                Op::TusConcat { user, parts, name } => model.tus_concat(*user, parts, name).await,
                Op::TusTerminate { user, upload } => model.tus_terminate(*user, *upload).await,
                Op::TusExpire { upload } => model.tus_expire(*upload).await,
            }
        }
        model.clean_up().await;
    });
});
