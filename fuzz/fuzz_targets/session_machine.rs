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
use chunkvault_engine::uploads::proof::{self, InstantMode, Proof};
use chunkvault_engine::uploads::tus::{TusChecksum, TusConcat, TusCreate};
use chunkvault_engine::uploads::{plan_chunks, MIN_CHUNK_SIZE};
use chunkvault_engine::{
    ByteStream, Engine, EngineConfig, Error, FileId, FileName, InitOutcome, InitRequest,
    LocalBlobStore, MetaStore, PartDigest, RangeRequest, Sha1Hex, SqlMetaStore, SqlSessionStore,
    UploadId, User, UserFile, Username,
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

#[derive(Debug, Clone, Copy)]
enum SizeChoice {
    Empty,
    Tiny(u8),
    Small(u16),
    OneChunk,
    TwoChunks(u16),
    ThreeChunks(u16),
}

/// Mostly tiny files (fast); parts of several chunks (256 KiB each) a quarter of the time.
impl<'a> Arbitrary<'a> for SizeChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=11u8)? {
            0 => SizeChoice::Empty,
            1..=4 => SizeChoice::Tiny(u.arbitrary()?),
            5..=7 => SizeChoice::Small(u.arbitrary()?),
            8 => SizeChoice::OneChunk,
            9..=10 => SizeChoice::TwoChunks(u.arbitrary()?),
            _ => SizeChoice::ThreeChunks(u.arbitrary()?),
        })
    }
}

impl SizeChoice {
    fn bytes(self) -> u64 {
        match self {
            SizeChoice::Empty => 0,
            SizeChoice::Tiny(n) => 1 + u64::from(n % 64),
            SizeChoice::Small(n) => 1 + u64::from(n % 4096),
            SizeChoice::OneChunk => CH,
            SizeChoice::TwoChunks(n) => CH + 1 + u64::from(n % 4096),
            SizeChoice::ThreeChunks(n) => 2 * CH + 1 + u64::from(n % 4096),
        }
    }
}

#[derive(Debug)]
enum NameChoice {
    Plain(u8),
    Fuzzed(String),
}

impl NameChoice {
    fn name(&self) -> String {
        match self {
            NameChoice::Plain(n) => format!("f{}.bin", n % 4),
            NameChoice::Fuzzed(s) => s.clone(),
        }
    }
}

#[derive(Debug)]
enum ChunkChoice {
    Default,
    Min,
    Double,
    Any(u32),
}

#[derive(Arbitrary, Debug)]
enum Answer {
    Right,
    /// One digest changed.
    Wrong(u8),
    /// Not a challenge id we handed out.
    UnknownId(String),
    /// Leave the challenge unanswered.
    Ignore,
}

#[derive(Debug)]
enum Body {
    Right,
    /// One byte changed: same length, wrong content.
    Flip(u16),
    /// Cut short by this many bytes (at least one).
    Short(u16),
    /// This many bytes too many (at least one).
    Long(u8),
    /// The client goes away after this many bytes.
    Broken(u16),
}

#[derive(Debug)]
enum DigestChoice {
    None,
    Md5Right,
    Md5Wrong,
    Sha1Right,
    Sha1Wrong,
}

#[derive(Debug)]
enum Op {
    Init {
        user: u8,
        content: u8,
        /// Which content's SHA1 is claimed (beyond the contents: a SHA1 of nothing we have).
        claim: u8,
        name: NameChoice,
        chunk: ChunkChoice,
        answer: Answer,
    },
    Part {
        user: u8,
        session: u8,
        /// Taken modulo count + 2, so 0 and count + 1 (out of range) occur.
        part: u8,
        body: Body,
        digest: DigestChoice,
        /// Bytes per body chunk (the stream arrives in pieces).
        split: u16,
    },
    /// Two writers of one part of an open session: writer A's body stops after `held` bytes;
    /// writer B sends the whole part; then the session is completed, aborted or left; then
    /// A's body goes on.
    PartRace {
        session: u8,
        part: u8,
        held: u16,
        a_flip: Option<u16>,
        b_flip: Option<u16>,
        between: Between,
    },
    Status {
        user: u8,
        session: u8,
    },
    Complete {
        user: u8,
        session: u8,
    },
    Abort {
        user: u8,
        session: u8,
    },
    /// The clock passes the session's expiry; the sweeper runs.
    Expire {
        session: u8,
    },
    Read {
        user: u8,
        file: u8,
        range: Option<(bool, u32, Option<u32>)>,
    },
    Delete {
        file: u8,
    },
    /// tus `POST`: length known or deferred, a whole upload or a partial one.
    TusCreate {
        user: u8,
        content: u8,
        deferred: bool,
        partial: bool,
        name: NameChoice,
    },
    /// tus `PATCH`.
    TusPatch {
        user: u8,
        upload: u8,
        /// `None`: the upload's offset; else that offset plus 1 + this.
        wrong_offset: Option<u8>,
        len: u16,
        declare: LengthDecl,
        body: TusBody,
        checksum: TusSum,
    },
    /// tus `POST` with `Upload-Concat: final;…`.
    TusConcat {
        user: u8,
        parts: Vec<u8>,
        name: NameChoice,
    },
    TusTerminate {
        user: u8,
        upload: u8,
    },
    TusExpire {
        upload: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Between {
    Nothing,
    Complete,
    Abort,
}

#[derive(Arbitrary, Debug)]
enum LengthDecl {
    None,
    /// The source content's length.
    Content,
    /// The bytes the upload holds after this request.
    AfterThis,
    Other(u16),
}

#[derive(Arbitrary, Debug)]
enum TusBody {
    Right,
    Flip(u16),
    /// Breaks off after this many bytes.
    Broken(u16),
    /// Past the source content's end.
    Extra(u8),
}

#[derive(Arbitrary, Debug)]
enum TusSum {
    None,
    Sha1,
    Md5,
    Sha256,
    Wrong,
}

// Weighted choices: the common, successful case most of the time, so that sequences get far.
impl<'a> Arbitrary<'a> for NameChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if u.ratio(1, 8)? {
            NameChoice::Fuzzed(u.arbitrary()?)
        } else {
            NameChoice::Plain(u.arbitrary()?)
        })
    }
}

impl<'a> Arbitrary<'a> for ChunkChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=2 => ChunkChoice::Default,
            3..=5 => ChunkChoice::Min,
            6 => ChunkChoice::Double,
            _ => ChunkChoice::Any(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Body {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=11u8)? {
            0..=7 => Body::Right,
            8 => Body::Flip(u.arbitrary()?),
            9 => Body::Short(u.arbitrary()?),
            10 => Body::Long(u.arbitrary()?),
            _ => Body::Broken(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for DigestChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=3 => DigestChoice::None,
            4 => DigestChoice::Md5Right,
            5 => DigestChoice::Sha1Right,
            6 => DigestChoice::Md5Wrong,
            _ => DigestChoice::Sha1Wrong,
        })
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=32u8)? {
            31..=32 => Op::PartRace {
                session: u.arbitrary()?,
                part: u.arbitrary()?,
                held: u.arbitrary()?,
                a_flip: u.arbitrary()?,
                b_flip: u.arbitrary()?,
                between: u.arbitrary()?,
            },
            0..=3 => Op::Init {
                user: u.arbitrary()?,
                content: u.arbitrary()?,
                claim: u.arbitrary()?,
                name: u.arbitrary()?,
                chunk: u.arbitrary()?,
                answer: u.arbitrary()?,
            },
            4..=11 => Op::Part {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
                part: u.arbitrary()?,
                body: u.arbitrary()?,
                digest: u.arbitrary()?,
                split: u.arbitrary()?,
            },
            12 => Op::Status {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
            },
            13..=14 => Op::Complete {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
            },
            15 => Op::Abort {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
            },
            16 => Op::Expire {
                session: u.arbitrary()?,
            },
            17..=18 => Op::Read {
                user: u.arbitrary()?,
                file: u.arbitrary()?,
                range: u.arbitrary()?,
            },
            19 => Op::Delete {
                file: u.arbitrary()?,
            },
            20..=21 => Op::TusCreate {
                user: u.arbitrary()?,
                content: u.arbitrary()?,
                deferred: u.arbitrary()?,
                partial: u.ratio(1, 3)?,
                name: u.arbitrary()?,
            },
            22..=27 => Op::TusPatch {
                user: u.arbitrary()?,
                upload: u.arbitrary()?,
                wrong_offset: if u.ratio(1, 8)? {
                    Some(u.arbitrary()?)
                } else {
                    None
                },
                len: u.arbitrary()?,
                declare: u.arbitrary()?,
                body: if u.ratio(2, 3)? {
                    TusBody::Right
                } else {
                    u.arbitrary()?
                },
                checksum: u.arbitrary()?,
            },
            28 => Op::TusConcat {
                user: u.arbitrary()?,
                parts: (0..u.int_in_range(0..=4u8)?)
                    .map(|_| u.arbitrary())
                    .collect::<arbitrary::Result<_>>()?,
                name: u.arbitrary()?,
            },
            29 => Op::TusTerminate {
                user: u.arbitrary()?,
                upload: u.arbitrary()?,
            },
            _ => Op::TusExpire {
                upload: u.arbitrary()?,
            },
        })
    }
}

#[derive(Debug)]
struct Case {
    contents: [(SizeChoice, u8); 3],
    ops: Vec<Op>,
}

impl Case {
    /// Operations until the input runs out (not a length prefix: random inputs get long runs).
    fn decode(data: &[u8]) -> arbitrary::Result<Case> {
        let mut u = Unstructured::new(data);
        let contents = u.arbitrary()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(u.arbitrary()?);
        }
        Ok(Case { contents, ops })
    }
}

#[derive(Debug, PartialEq)]
enum State {
    Open,
    Completed(FileId),
    Gone,
}

#[derive(Debug)]
struct SessionModel {
    id: UploadId,
    owner: usize,
    name: String,
    size: u64,
    sha1: Sha1Hex,
    chunk: u64,
    count: u32,
    /// The content whose bytes the client sends.
    source: usize,
    /// Bytes of every acknowledged part.
    acked: BTreeMap<u32, Vec<u8>>,
    state: State,
}

impl SessionModel {
    fn part_range(&self, n: u32) -> std::ops::Range<usize> {
        let start = (u64::from(n - 1) * self.chunk) as usize;
        let end = (start as u64 + self.chunk).min(self.size) as usize;
        start..end
    }

    fn missing(&self) -> Vec<u32> {
        (1..=self.count)
            .filter(|n| !self.acked.contains_key(n))
            .collect()
    }
}

#[derive(Debug)]
struct TusModel {
    id: UploadId,
    owner: usize,
    source: usize,
    length: Option<u64>,
    partial: bool,
    /// Made by concatenation: complete from the start, never patched.
    is_final: bool,
    received: Vec<u8>,
    state: State,
}

#[derive(Debug)]
struct FileModel {
    file: UserFile,
    owner: usize,
    bytes: Arc<Vec<u8>>,
}

struct Model {
    users: Vec<User>,
    contents: Vec<Arc<Vec<u8>>>,
    sha1s: Vec<Sha1Hex>,
    sessions: Vec<SessionModel>,
    files: Vec<FileModel>,
    /// Content in the dedup index, by SHA1.
    stored: HashMap<Sha1Hex, Arc<Vec<u8>>>,
    proof_failures: Vec<u64>,
    tus: Vec<TusModel>,
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
    let d = WORLD.engine.read(file.clone(), range).await?;
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
        let res = WORLD.engine.init_upload(&self.users[owner], req).await;
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
            let res = WORLD.engine.prove(&self.users[owner], &id, &digests).await;
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

    async fn part(&mut self, op: &Op) {
        let Op::Part {
            user,
            session,
            part,
            body,
            digest,
            split,
        } = op
        else {
            unreachable!()
        };
        let Some(si) = self.session_index(*session) else {
            return;
        };
        let who = self.user_index(*user);
        let s = &self.sessions[si];
        let n = u32::from(*part) % (s.count + 2);
        let expected: Vec<u8> = if (1..=s.count).contains(&n) {
            self.contents[s.source][s.part_range(n)].to_vec()
        } else {
            Vec::new()
        };
        let mut sent = expected.clone();
        let mut broken_at = None;
        match body {
            Body::Right => {}
            Body::Flip(i) => {
                if !sent.is_empty() {
                    let i = usize::from(*i) % sent.len();
                    sent[i] ^= 0x5a;
                }
            }
            Body::Short(k) => {
                let cut = (usize::from(*k) % 4096 + 1).min(sent.len());
                sent.truncate(sent.len() - cut);
            }
            Body::Long(k) => sent.extend(std::iter::repeat_n(0xab, usize::from(*k) + 1)),
            Body::Broken(k) => broken_at = Some(usize::from(*k) % (sent.len() + 1)),
        }
        let wrong_digest_of = |b: &[u8]| {
            let mut v = b.to_vec();
            v.push(1);
            v
        };
        let part_digest = match digest {
            DigestChoice::None => None,
            DigestChoice::Md5Right => Some(PartDigest::Md5(Md5::digest(&expected).into())),
            DigestChoice::Md5Wrong => Some(PartDigest::Md5(
                Md5::digest(wrong_digest_of(&expected)).into(),
            )),
            DigestChoice::Sha1Right => Some(PartDigest::Sha1(Sha1::digest(&expected).into())),
            DigestChoice::Sha1Wrong => Some(PartDigest::Sha1(
                Sha1::digest(wrong_digest_of(&expected)).into(),
            )),
        };
        let res = WORLD
            .engine
            .put_part(
                &self.users[who],
                &s.id,
                n,
                stream(sent.clone(), usize::from(*split) + 1, broken_at),
                part_digest,
            )
            .await;
        let s = &mut self.sessions[si];
        if s.state != State::Open || who != s.owner {
            let e = res.expect_err("part for a session that is not the caller's open one");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        if n == 0 || n > s.count {
            let e = res.expect_err("part number out of range");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        // A write that fails leaves the part as it was (its bytes went to an attempt of its
        // own); one that succeeds replaces it.
        let digest_ok = match digest {
            DigestChoice::None => true,
            DigestChoice::Md5Right | DigestChoice::Sha1Right => sent == expected,
            DigestChoice::Md5Wrong | DigestChoice::Sha1Wrong => false,
        };
        if broken_at.is_some() {
            let e = res.expect_err("broken body");
            assert!(matches!(e, Error::Incomplete(_)), "{e:?}");
        } else if sent.len() != expected.len() {
            let e = res.expect_err("wrong length");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        } else if !digest_ok {
            let e = res.expect_err("digest mismatch");
            assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
        } else {
            trace("part: acknowledged");
            let status = res.expect("part");
            s.acked.insert(n, sent);
            assert_eq!(status.received, s.acked.keys().copied().collect::<Vec<_>>());
            assert_eq!(status.missing, s.count - s.acked.len() as u32);
            assert_eq!(
                status.bytes_received,
                s.acked
                    .keys()
                    .map(|&k| s.part_range(k).len() as u64)
                    .sum::<u64>()
            );
        }
    }

    async fn part_race(&mut self, op: &Op) {
        let Op::PartRace {
            session,
            part,
            held,
            a_flip,
            b_flip,
            between,
        } = op
        else {
            unreachable!()
        };
        // An open session, written by its owner: the race is between two acceptable writes.
        let open: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].state == State::Open)
            .collect();
        if open.is_empty() {
            return;
        }
        let si = open[usize::from(*session) % open.len()];
        let s = &self.sessions[si];
        let (owner, count, id) = (s.owner, s.count, s.id.clone());
        let n = u32::from(*part) % count + 1;
        let expected = self.contents[s.source][s.part_range(n)].to_vec();
        let body = |flip: &Option<u16>| {
            let mut b = expected.clone();
            if let (Some(i), false) = (flip, b.is_empty()) {
                let i = usize::from(*i) % b.len();
                b[i] ^= 0x5a;
            }
            b
        };
        let (a, b) = (body(a_flip), body(b_flip));
        // Writer A, fed through a channel: `held` bytes now, the rest later.
        let held = usize::from(*held) % (a.len() + 1);
        let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = started.clone();
        let a_body = rx
            .map(move |chunk| {
                seen.store(true, Ordering::SeqCst);
                chunk
            })
            .boxed();
        let user = self.users[owner].clone();
        let a_id = id.clone();
        let writer_a =
            tokio::spawn(async move { WORLD.engine.put_part(&user, &a_id, n, a_body, None).await });
        tx.unbounded_send(Ok(Bytes::copy_from_slice(&a[..held])))
            .unwrap();
        // Let A get as far as reading its body (it holds its attempt then).
        for _ in 0..10_000 {
            if started.load(Ordering::SeqCst) || writer_a.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            started.load(Ordering::SeqCst),
            "writer A never read its body"
        );
        // Writer B: the whole part.
        let res = WORLD
            .engine
            .put_part(
                &self.users[owner],
                &id,
                n,
                stream(b.clone(), 4096, None),
                None,
            )
            .await;
        let status = res.expect("writer B");
        self.sessions[si].acked.insert(n, b);
        assert!(status.received.contains(&n));
        let owner_u8 = u8::try_from(owner).expect("few users");
        match between {
            Between::Complete => {
                trace("race: complete between the writers");
                self.complete_at(owner_u8, si).await;
            }
            Between::Abort => {
                trace("race: abort between the writers");
                self.abort_at(owner_u8, si).await;
            }
            Between::Nothing => {}
        }
        tx.unbounded_send(Ok(Bytes::copy_from_slice(&a[held..])))
            .unwrap();
        drop(tx);
        let res = writer_a.await.unwrap();
        match &self.sessions[si].state {
            State::Open => {
                // A's attempt was committed after B's: it is the part now.
                trace("race: the later writer's part counts");
                let status = res.expect("writer A");
                assert!(status.received.contains(&n));
                self.sessions[si].acked.insert(n, a);
            }
            State::Completed(file_id) => {
                let e = res.expect_err("a write after complete");
                assert!(matches!(e, Error::NotFound { .. } | Error::Busy), "{e:?}");
                trace("race: late write refused after complete");
                // What was published is unchanged by the late write.
                if let Some(f) = self.files.iter().find(|f| &f.file.id == file_id) {
                    let got = read_all(&f.file, None).await.expect("read back");
                    assert!(got == *f.bytes, "a late write reached published bytes");
                }
            }
            State::Gone => {
                let e = res.expect_err("a write after abort");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                trace("race: late write refused after abort");
                assert!(!staged(&id), "a late write left staged bytes");
            }
        }
    }

    async fn status(&mut self, user: u8, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        let who = self.user_index(user);
        let s = &self.sessions[si];
        let res = WORLD.engine.upload_status(&self.users[who], &s.id).await;
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
        let res = WORLD.engine.abort_upload(&self.users[who], &s.id).await;
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
        sqlx::query("UPDATE upload_sessions SET expires_at = 0 WHERE id = ?")
            .bind(s.id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let n = WORLD.engine.expire_uploads().await.expect("sweep");
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

    fn tus_index(&self, t: u8) -> Option<usize> {
        (!self.tus.is_empty()).then(|| usize::from(t) % self.tus.len())
    }

    /// The user file a finished tus upload became, read back and entered into the model.
    async fn tus_finished(&mut self, owner: usize, file_id: &FileId, bytes: Vec<u8>, name: &str) {
        let sha1 = sha1_of(&bytes);
        let file = WORLD
            .engine
            .file(&self.users[owner], &sha1, Some(file_id))
            .await
            .expect("the finished upload's file");
        let got = read_all(&file, None).await.expect("read back");
        assert!(got == bytes, "tus file differs from the bytes sent");
        self.got_file(owner, file, Arc::new(bytes), name);
    }

    async fn tus_create(&mut self, op: &Op) {
        let Op::TusCreate {
            user,
            content,
            deferred,
            partial,
            name,
        } = op
        else {
            unreachable!()
        };
        let owner = self.user_index(*user);
        let source = usize::from(*content) % self.contents.len();
        let length = (!deferred).then_some(self.contents[source].len() as u64);
        let name = name.name();
        let mut req = TusCreate::new(length, String::new(), name.clone());
        if *partial {
            req = req.with_concat(TusConcat::Partial);
        }
        let res = WORLD.engine.tus_create(&self.users[owner], req).await;
        if FileName::parse(&name).is_err() {
            let e = res.expect_err("invalid name");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        if self.open_sessions(owner) as u64 >= MAX_SESSIONS {
            trace("tus: session limit");
            let e = res.expect_err("session limit");
            assert!(matches!(e, Error::LimitReached { .. }), "{e:?}");
            return;
        }
        let record = res.expect("tus create");
        assert_eq!(record.offset, 0);
        assert_eq!(record.length, length);
        let done = length == Some(0) && !partial;
        assert_eq!(record.file_id.is_some(), done);
        let mut t = TusModel {
            id: record.id.clone(),
            owner,
            source,
            length,
            partial: *partial,
            is_final: false,
            received: Vec::new(),
            state: State::Open,
        };
        if let Some(f) = &record.file_id {
            trace("tus: empty upload complete at creation");
            t.state = State::Completed(f.clone());
            assert!(!staged(&t.id));
            self.tus_finished(owner, f, Vec::new(), &name).await;
        } else {
            assert!(staged(&t.id));
        }
        self.tus.push(t);
    }

    async fn tus_patch(&mut self, op: &Op) {
        let Op::TusPatch {
            user,
            upload,
            wrong_offset,
            len,
            declare,
            body,
            checksum,
        } = op
        else {
            unreachable!()
        };
        let Some(ti) = self.tus_index(*upload) else {
            return;
        };
        let who = self.user_index(*user);
        let t = &self.tus[ti];
        let source = &self.contents[t.source];
        let offset = t.received.len() as u64;
        let sent_offset = match wrong_offset {
            None => offset,
            Some(k) => offset + 1 + u64::from(*k),
        };
        let start = (offset as usize).min(source.len());
        let end = (start + usize::from(*len) % 4097).min(source.len());
        let expected = source[start..end].to_vec();
        let mut sent = expected.clone();
        let mut broken_at = None;
        match body {
            TusBody::Right => {}
            TusBody::Flip(i) => {
                if !sent.is_empty() {
                    let i = usize::from(*i) % sent.len();
                    sent[i] ^= 0x5a;
                }
            }
            TusBody::Broken(k) => broken_at = Some(usize::from(*k) % (sent.len() + 1)),
            TusBody::Extra(k) => sent.extend(std::iter::repeat_n(0xcd, usize::from(*k) + 1)),
        }
        let declared = match declare {
            LengthDecl::None => None,
            LengthDecl::Content => Some(source.len() as u64),
            LengthDecl::AfterThis => Some(offset + sent.len() as u64),
            LengthDecl::Other(n) => Some(u64::from(*n)),
        };
        let sum = match checksum {
            TusSum::None => None,
            TusSum::Sha1 => Some(TusChecksum::Sha1(Sha1::digest(&expected).into())),
            TusSum::Md5 => Some(TusChecksum::Md5(Md5::digest(&expected).into())),
            TusSum::Sha256 => Some(TusChecksum::Sha256(Sha256::digest(&expected).into())),
            TusSum::Wrong => Some(TusChecksum::Sha1(Sha1::digest(b"not the body").into())),
        };
        let res = WORLD
            .engine
            .tus_append(
                &self.users[who],
                &t.id,
                sent_offset,
                declared,
                stream(sent.clone(), usize::from(*len) / 3 + 1, broken_at),
                sum,
            )
            .await;
        if let Err(e) = &res {
            typed(e);
        }
        if t.state == State::Gone || who != t.owner {
            let e = res.expect_err("patch of an upload that is not the caller's");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        if t.is_final {
            let e = res.expect_err("patch of a final upload");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        if sent_offset != offset {
            match res {
                Err(Error::OffsetMismatch { expected }) => assert_eq!(expected, offset),
                other => panic!("expected an offset mismatch, got {other:?}"),
            }
            return;
        }
        let length = match (t.length, declared) {
            (Some(a), Some(b)) if a != b => {
                let e = res.expect_err("conflicting Upload-Length");
                assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
                return;
            }
            (a, b) => a.or(b),
        };
        if length.is_some_and(|l| l < offset) {
            let e = res.expect_err("Upload-Length below the offset");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        if let State::Completed(_) = t.state {
            // The last PATCH repeated: the same answer (as tusd), nothing appended or published;
            // a byte past the end is too much, a body broken before any byte is incomplete.
            let got = broken_at.unwrap_or(sent.len()).min(sent.len());
            match res {
                Err(Error::TooLarge { .. }) if got > 0 => {}
                Err(Error::Incomplete(_)) if got == 0 && broken_at.is_some() => {}
                Ok(record) if got == 0 && broken_at.is_none() => {
                    assert_eq!(record.offset, offset);
                    assert!(record.file_id.is_some(), "{record:?}");
                }
                other => panic!("patch of a finished upload: {other:?}"),
            }
            trace("tus: patch after the end");
            return;
        }
        let limit = length.map_or(u64::MAX, |l| l - offset);
        let arrived = broken_at.unwrap_or(sent.len()) as u64;
        if arrived > limit {
            let e = res.expect_err("more than the upload's length");
            assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
            return;
        }
        if broken_at.is_some() {
            let e = res.expect_err("broken body");
            assert!(matches!(e, Error::Incomplete(_)), "{e:?}");
            return;
        }
        let sum_ok = match checksum {
            TusSum::None => true,
            TusSum::Wrong => false,
            _ => sent == expected,
        };
        if !sum_ok {
            let e = res.expect_err("checksum mismatch");
            assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
            return;
        }
        let record = res.expect("patch");
        let t = &mut self.tus[ti];
        t.received.extend_from_slice(&sent);
        t.length = length;
        assert_eq!(record.offset, t.received.len() as u64);
        assert_eq!(record.length, length);
        let done = length == Some(record.offset) && !t.partial;
        assert_eq!(record.file_id.is_some(), done, "{record:?}");
        trace(if done {
            "tus: patch completed the upload"
        } else {
            "tus: patch stored"
        });
        if let Some(f) = record.file_id {
            t.state = State::Completed(f.clone());
            assert!(!staged(&t.id));
            let (owner, bytes) = (t.owner, t.received.clone());
            let name = record.file_name.clone();
            self.tus_finished(owner, &f, bytes, &name).await;
        }
    }

    async fn tus_concat(&mut self, user: u8, parts: &[u8], name: &NameChoice) {
        let who = self.user_index(user);
        let picked: Vec<usize> = if self.tus.is_empty() {
            Vec::new()
        } else {
            parts
                .iter()
                .map(|&p| usize::from(p) % self.tus.len())
                .collect()
        };
        let ids: Vec<UploadId> = picked.iter().map(|&i| self.tus[i].id.clone()).collect();
        let header = format!(
            "final;{}",
            ids.iter()
                .map(|i| format!("/files/{}", i.as_str()))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let name = name.name();
        let req = TusCreate::new(None, String::new(), name.clone()).with_concat(TusConcat::Final {
            parts: ids,
            header: header.clone(),
        });
        let res = WORLD.engine.tus_create(&self.users[who], req).await;
        let mut distinct = picked.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if FileName::parse(&name).is_err() || picked.is_empty() || distinct.len() != picked.len() {
            let e = res.expect_err("invalid name, no parts, or a part named twice");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        for &i in &picked {
            let t = &self.tus[i];
            if t.state == State::Gone || t.owner != who {
                let e = res.expect_err("a part that is not the caller's");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                return;
            }
            if !t.partial || t.length != Some(t.received.len() as u64) {
                let e = res.expect_err("a part that is not a finished partial upload");
                assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
                return;
            }
        }
        let record = res.expect("concatenation");
        trace("tus: concatenated");
        let bytes: Vec<u8> = picked
            .iter()
            .flat_map(|&i| self.tus[i].received.iter().copied())
            .collect();
        assert_eq!(record.offset, bytes.len() as u64);
        assert_eq!(record.length, Some(bytes.len() as u64));
        assert_eq!(record.concat, header);
        let file_id = record.file_id.clone().expect("a final upload is complete");
        for &i in &picked {
            self.tus[i].state = State::Gone;
            assert!(!staged(&self.tus[i].id), "a concatenated part stays staged");
        }
        self.tus.push(TusModel {
            id: record.id,
            owner: who,
            source: 0,
            length: Some(bytes.len() as u64),
            partial: false,
            is_final: true,
            received: bytes.clone(),
            state: State::Completed(file_id.clone()),
        });
        self.tus_finished(who, &file_id, bytes, &name).await;
    }

    async fn tus_terminate(&mut self, user: u8, upload: u8) {
        let Some(ti) = self.tus_index(upload) else {
            return;
        };
        let who = self.user_index(user);
        let t = &mut self.tus[ti];
        let res = WORLD.engine.tus_terminate(&self.users[who], &t.id).await;
        if t.state == State::Gone || who != t.owner {
            let e = res.expect_err("terminate of an upload that is not the caller's");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        res.expect("terminate");
        t.state = State::Gone;
        assert!(!staged(&t.id), "staged bytes outlive the termination");
    }

    async fn tus_expire(&mut self, upload: u8) {
        let Some(ti) = self.tus_index(upload) else {
            return;
        };
        let t = &mut self.tus[ti];
        let mut tx = WORLD.meta.db().begin().await.unwrap();
        sqlx::query("UPDATE tus_uploads SET expires_at = 0 WHERE id = ?")
            .bind(t.id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let n = WORLD.engine.expire_uploads().await.expect("sweep");
        assert_eq!(n, usize::from(t.state != State::Gone));
        t.state = State::Gone;
        assert!(!staged(&t.id), "staged bytes outlive the expiry");
    }

    /// Aborts what is open and deletes every file: nothing may be left in the store.
    async fn clean_up(&mut self) {
        for t in &self.tus {
            if t.state != State::Gone {
                WORLD
                    .engine
                    .tus_terminate(&self.users[t.owner], &t.id)
                    .await
                    .expect("terminate");
            }
        }
        for s in &self.sessions {
            if s.state == State::Open {
                WORLD
                    .engine
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
