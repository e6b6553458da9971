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
use chunkvault_engine::uploads::tus::{TusConcat, TusCreate};
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
#[path = "session_machine/tus.rs"]
mod tus;

use input::*;
use model::*;

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

    async fn init(&mut self, op: &Op) {
        let Op::Init {
            user,
            content,
            claim,
            name,
            chunk,
            answer,
        } = op
        else {
            unreachable!()
        };
        let owner = self.user_index(*user);
        let source = usize::from(*content) % self.contents.len();
        let size = self.contents[source].len() as u64;
        let sha1 = match usize::from(*claim) % (self.contents.len() + 1) {
            i if i < self.contents.len() => self.sha1s[i].clone(),
            _ => sha1_of(b"content nobody sends"),
        };
        let name = name.name();
        let chunk_size = match chunk {
            ChunkChoice::Default => None,
            ChunkChoice::Min => Some(CH),
            ChunkChoice::Double => Some(2 * CH),
            ChunkChoice::Any(n) => Some(u64::from(*n)),
        };
        let req = InitRequest::new(name.clone(), size, sha1.clone(), chunk_size);
        let res = WORLD
            .engine
            .uploads()
            .init_upload(&self.users[owner], req)
            .await;
        let valid_name = FileName::parse(&name).is_ok();
        let plan = plan_chunks(size, chunk_size);
        if !valid_name || plan.is_err() {
            let e = res.expect_err("invalid name or chunk size accepted");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        let stored = self
            .stored
            .get(&sha1)
            .filter(|b| b.len() as u64 == size)
            .cloned();
        if let Some(bytes) = stored {
            let outcome = res.expect("instant claim");
            let challenge = match outcome {
                InitOutcome::Instant(file) => {
                    assert_eq!(size, 0, "only the empty file is linked without a proof");
                    trace("init: empty file linked");
                    self.got_file(owner, file, bytes, &name);
                    return;
                }
                InitOutcome::Challenge(c) => c,
                InitOutcome::Session { .. } => panic!("stored content must be challenged"),
            };
            assert!(size > 0);
            assert!(!challenge.ranges.is_empty());
            let mut right = Vec::new();
            for r in &challenge.ranges {
                assert!(
                    r.start < r.end && r.end <= size,
                    "range {r:?} outside {size}"
                );
                right.push(hex::encode(Sha256::digest(
                    &bytes[r.start as usize..r.end as usize],
                )));
            }
            let (id, digests, correct) = match answer {
                Answer::Ignore => return,
                Answer::Right => (challenge.id.clone(), right, true),
                Answer::Wrong(i) => {
                    let mut d = right;
                    let i = usize::from(*i) % d.len();
                    d[i] = hex::encode(Sha256::digest(b"guess"));
                    (challenge.id.clone(), d, false)
                }
                Answer::UnknownId(s) => {
                    if *s == challenge.id {
                        return;
                    }
                    (s.clone(), right, false)
                }
            };
            let res = WORLD
                .engine
                .uploads()
                .prove(&self.users[owner], &id, &digests)
                .await;
            if self.proof_failures[owner] >= proof::MAX_FAILURES {
                trace("prove: too many failures");
                let e = res.expect_err("proof after too many failures");
                assert!(matches!(e, Error::TooManyRequests { .. }), "{e:?}");
                return;
            }
            if matches!(answer, Answer::UnknownId(_)) {
                let e = res.expect_err("unknown challenge");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                return;
            }
            match res.expect("proof") {
                Proof::Linked(file) => {
                    assert!(correct, "a wrong proof linked the file");
                    trace("prove: linked");
                    self.got_file(owner, file, bytes, &name);
                }
                Proof::Refused(req) => {
                    assert!(!correct, "a right proof was refused");
                    trace("prove: refused");
                    self.proof_failures[owner] += 1;
                    // Falls back to a normal upload of the bytes.
                    let res = WORLD
                        .engine
                        .uploads()
                        .init_upload_bytes(&self.users[owner], req)
                        .await;
                    self.session_opened(owner, source, size, sha1, name, chunk_size, res);
                }
            }
            return;
        }
        self.session_opened(owner, source, size, sha1, name, chunk_size, res);
    }

    #[allow(clippy::too_many_arguments)]
    fn session_opened(
        &mut self,
        owner: usize,
        source: usize,
        size: u64,
        sha1: Sha1Hex,
        name: String,
        chunk_size: Option<u64>,
        res: Result<InitOutcome, Error>,
    ) {
        let resumed = self.sessions.iter().position(|s| {
            s.owner == owner && s.state == State::Open && s.sha1 == sha1 && s.size == size
        });
        if resumed.is_none() && self.open_sessions(owner) as u64 >= MAX_SESSIONS {
            trace("init: session limit");
            let e = res.expect_err("session limit");
            assert!(matches!(e, Error::LimitReached { .. }), "{e:?}");
            return;
        }
        let InitOutcome::Session { status, created } = res.expect("init") else {
            panic!("fresh content cannot be instant")
        };
        assert_eq!(created, resumed.is_none());
        if let Some(i) = resumed {
            trace("init: resumed");
            let s = &self.sessions[i];
            assert_eq!(status.session.id, s.id, "resumed the open session");
            assert_eq!(status.received, s.acked.keys().copied().collect::<Vec<_>>());
            return;
        }
        let (chunk, count) = plan_chunks(size, chunk_size).unwrap();
        trace(&format!("init: new session of {count} parts"));
        assert_eq!(status.session.chunk_size, chunk);
        assert_eq!(status.session.chunk_count, count);
        assert_eq!(status.session.size, size);
        assert_eq!(status.session.sha1, sha1);
        assert!(status.received.is_empty());
        assert!(self.sessions.iter().all(|s| s.id != status.session.id));
        assert!(staged(&status.session.id));
        self.sessions.push(SessionModel {
            id: status.session.id,
            owner,
            name,
            size,
            sha1,
            chunk,
            count,
            source,
            acked: BTreeMap::new(),
            state: State::Open,
        });
    }

    async fn status(&mut self, user: u8, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        let who = self.user_index(user);
        let s = &self.sessions[si];
        let res = WORLD
            .engine
            .uploads()
            .upload_status(&self.users[who], &s.id)
            .await;
        if s.state != State::Open || who != s.owner {
            let e = res.expect_err("status of a session that is not the caller's open one");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        let status = res.expect("status");
        assert_eq!(status.received, s.acked.keys().copied().collect::<Vec<_>>());
    }

    async fn complete(&mut self, user: u8, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        self.complete_at(user, si).await;
    }

    async fn complete_at(&mut self, user: u8, si: usize) {
        let who = self.user_index(user);
        let res = WORLD
            .engine
            .uploads()
            .complete_upload(&self.users[who], &self.sessions[si].id)
            .await;
        if let Err(e) = &res {
            typed(e);
        }
        let s = &self.sessions[si];
        if who != s.owner {
            let e = res.expect_err("another user's session completed");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        match &s.state {
            State::Gone => {
                let e = res.expect_err("complete after abort or expiry");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            }
            State::Completed(id) => {
                if self.files.iter().any(|f| &f.file.id == id) {
                    assert_eq!(&res.expect("repeated complete").id, id);
                } else {
                    let e = res.expect_err("complete of a session whose file was deleted");
                    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                }
            }
            State::Open => {
                let missing = s.missing();
                if !missing.is_empty() {
                    match res {
                        Err(Error::MissingParts { missing: got }) => {
                            trace("complete: missing parts");
                            assert_eq!(got, missing)
                        }
                        other => panic!("expected missing parts {missing:?}, got {other:?}"),
                    }
                    return;
                }
                let assembled: Vec<u8> = s.acked.values().flatten().copied().collect();
                assert_eq!(assembled.len() as u64, s.size);
                let id = s.id.clone();
                let sha1 = s.sha1.clone();
                let name = s.name.clone();
                let owner = s.owner;
                if sha1_of(&assembled) != sha1 {
                    let e = res.expect_err("bytes that do not match the claimed sha1");
                    assert!(matches!(e, Error::Sha1Mismatch), "{e:?}");
                    trace("complete: sha1 mismatch");
                    assert!(!staged(&id), "refused bytes stay staged");
                    self.sessions[si].state = State::Gone;
                    if !self.stored.contains_key(&sha1) {
                        assert!(WORLD.meta.blob(&sha1).await.unwrap().is_none());
                        assert_eq!(blob_files_of(&sha1), 0, "refused bytes were kept");
                    }
                    return;
                }
                let file = res.expect("complete");
                trace(&format!("complete: {} bytes", file.size));
                assert!(!staged(&id), "staged bytes outlive the completion");
                let got = read_all(&file, None).await.expect("read back");
                assert!(
                    got == assembled,
                    "completed file differs from the acknowledged parts"
                );
                self.sessions[si].state = State::Completed(file.id.clone());
                self.got_file(owner, file, Arc::new(assembled), &name);
            }
        }
    }

    async fn abort(&mut self, user: u8, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        self.abort_at(user, si).await;
    }

    async fn abort_at(&mut self, user: u8, si: usize) {
        let who = self.user_index(user);
        let s = &mut self.sessions[si];
        let res = WORLD
            .engine
            .uploads()
            .abort_upload(&self.users[who], &s.id)
            .await;
        if s.state != State::Open || who != s.owner {
            let e = res.expect_err("abort of a session that is not the caller's open one");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        res.expect("abort");
        s.state = State::Gone;
        assert!(!staged(&s.id), "staged bytes outlive the abort");
    }

    async fn expire(&mut self, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        let s = &mut self.sessions[si];
        let mut tx = WORLD.meta.db().begin().await.unwrap();
        sqlx::query("UPDATE uploads SET expires_at = 0 WHERE id = ?")
            .bind(s.id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let n = WORLD
            .engine
            .uploads()
            .expire_uploads()
            .await
            .expect("sweep");
        if s.state == State::Open {
            trace("expire: swept");
            assert_eq!(n, 1);
            s.state = State::Gone;
        } else {
            assert_eq!(n, 0);
        }
        assert!(!staged(&s.id), "staged bytes outlive the expiry");
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
