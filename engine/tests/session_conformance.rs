//! One conformance suite for `SessionStore`: in memory and SQL (SQLite always; MariaDB and
//! PostgreSQL when their URLs are set) and Redis (when `CHUNKVAULT_TEST_REDIS_URL` is set;
//! `.ci/run` sets it).
#![allow(clippy::disallowed_methods)] // tests may block; the engine may not

mod common;

use std::sync::Arc;

use chunkvault_engine::sessions::{
    HashProgress, Layout, PartCommit, PartRecord, PartsLayout, SessionRecord, SessionStore,
    StreamLayout, StreamProgress,
};
use chunkvault_engine::uploads::Sha1State;
use chunkvault_engine::{
    Checksum, FileId, MemorySessionStore, Sha1Hex, SqlMetaStore, SqlSessionStore, UploadId, UserId,
};

fn record(owner: i64, sha: u8, size: u64, expires_at: i64) -> SessionRecord {
    SessionRecord {
        id: UploadId::generate(),
        owner: UserId(owner),
        file_name: "文件.bin".into(),
        created_at: 1,
        expires_at,
        layout: Layout::Parts(PartsLayout {
            size,
            sha1: Sha1Hex::parse(&format!("{sha:02x}").repeat(20)).unwrap(),
            chunk_size: 262_144,
            chunk_count: size.div_ceil(262_144).max(1) as u32,
            hash: HashProgress {
                parts: 0,
                epoch: 0,
                state: Sha1State::new().save(),
            },
        }),
    }
}

fn stream(owner: i64, length: Option<u64>, expires_at: i64) -> SessionRecord {
    SessionRecord {
        id: UploadId::generate(),
        owner: UserId(owner),
        file_name: "tus.bin".into(),
        created_at: 2,
        expires_at,
        layout: Layout::Stream(StreamLayout {
            length,
            offset: 0,
            hash_state: Sha1State::new().save(),
            file_id: None,
            metadata: "filename dHVzLmJpbg==".into(),
            concat: "partial".into(),
            digest: None,
        }),
    }
}

/// The hash progress of a parts session.
async fn hash_of(store: &Arc<dyn SessionStore>, id: &UploadId) -> HashProgress {
    match store.get(id).await.unwrap().unwrap().layout {
        Layout::Parts(p) => p.hash,
        Layout::Stream(_) => panic!("a parts session came back as a stream"),
    }
}

/// The stream layout of a session.
async fn stream_of(store: &Arc<dyn SessionStore>, id: &UploadId) -> StreamLayout {
    match store.get(id).await.unwrap().unwrap().layout {
        Layout::Stream(t) => t,
        Layout::Parts(_) => panic!("a stream came back as a parts session"),
    }
}

fn part(n: u32, etag: &str) -> PartRecord {
    PartRecord {
        number: n,
        etag: etag.into(),
    }
}

/// Every check, in order, on one store; each check works on sessions of its own.
async fn suite(store: Arc<dyn SessionStore>) {
    let now = chunkvault_engine::types::now_millis();
    let far = now + 3_600_000;
    create_and_resume(&store, now, far).await;
    parts_are_committed_and_replaced(&store, now, far).await;
    hash_progress_is_compare_and_set(&store, now, far).await;
    claims_hold_off_part_changes(&store, now, far).await;
    concurrent_parts_all_land(&store, now, far).await;
    concurrent_creates_make_one_session(&store, now, far).await;
    expiry_and_deletion(&store, now, far).await;
    results_are_kept(&store, now, far).await;
    streams_append_under_a_claim(&store, now, far).await;
    layouts_do_not_cross(&store, now, far).await;
    one_list_and_one_expiry_for_every_layout(&store, now, far).await;
}

fn committed(replaced: Option<&str>) -> PartCommit {
    PartCommit::Committed {
        replaced: replaced.map(str::to_owned),
    }
}

async fn commit(
    store: &Arc<dyn SessionStore>,
    id: &UploadId,
    p: PartRecord,
    now: i64,
    far: i64,
) -> PartCommit {
    store.commit_part(id, &p, now, far).await.unwrap()
}

async fn create_and_resume(store: &Arc<dyn SessionStore>, _now: i64, far: i64) {
    // Create, then resume the same (owner, sha1, size); another owner gets their own.
    let a = record(1, 1, 1_000_000, far);
    let (got, created) = store.create_or_resume(&a).await.unwrap();
    assert!(created);
    assert_eq!(got, a);
    assert_eq!(store.get(&a.id).await.unwrap(), Some(a.clone()));
    let again = record(1, 1, 1_000_000, far + 5);
    let (resumed, created) = store.create_or_resume(&again).await.unwrap();
    assert!(!created);
    assert_eq!(resumed.id, a.id);
    assert_eq!(resumed.expires_at, far + 5, "resuming pushes the expiry");
    let other_size = record(1, 1, 999, far);
    assert!(store.create_or_resume(&other_size).await.unwrap().1);
    let other_owner = record(2, 1, 1_000_000, far);
    assert!(store.create_or_resume(&other_owner).await.unwrap().1);
    let listed: Vec<UploadId> = store
        .list(UserId(1))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&a.id) && listed.contains(&other_size.id));
    assert!(store.get(&UploadId::generate()).await.unwrap().is_none());
}

async fn parts_are_committed_and_replaced(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    let a = record(11, 1, 1_000_000, far);
    store.create_or_resume(&a).await.unwrap();
    // Parts: committed, replaced (the replaced attempt is named), unknown sessions refused.
    assert_eq!(
        commit(store, &a.id, part(3, "x"), now, far).await,
        committed(None)
    );
    assert_eq!(
        commit(store, &a.id, part(1, "y"), now, far).await,
        committed(None)
    );
    assert_eq!(
        commit(store, &a.id, part(3, "z"), now, far).await,
        committed(Some("x"))
    );
    assert_eq!(
        commit(store, &a.id, part(3, "z"), now, far).await,
        committed(None),
        "the same attempt again replaces nothing"
    );
    assert_eq!(
        store.parts(&a.id).await.unwrap(),
        vec![part(1, "y"), part(3, "z")]
    );
    assert_eq!(
        commit(store, &UploadId::generate(), part(1, "q"), now, far).await,
        PartCommit::Gone
    );
}

async fn hash_progress_is_compare_and_set(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    let a = record(12, 1, 1_000_000, far);
    store.create_or_resume(&a).await.unwrap();
    commit(store, &a.id, part(1, "y"), now, far).await;
    commit(store, &a.id, part(3, "z"), now, far).await;
    // Hash progress: compare-and-set; a replaced part changes the epoch, and a replaced hashed
    // part takes the progress back to the start.
    let p0 = hash_of(store, &a.id).await;
    assert!(store.advance_hash(&a.id, &p0, 1, "state-1").await.unwrap());
    assert!(
        !store.advance_hash(&a.id, &p0, 1, "stale").await.unwrap(),
        "stale progress refused"
    );
    let p1 = hash_of(store, &a.id).await;
    assert_eq!((p1.parts, p1.state.as_str()), (1, "state-1"));
    assert_eq!(
        commit(store, &a.id, part(2, "first"), now, far).await,
        committed(None)
    );
    assert_eq!(
        hash_of(store, &a.id).await,
        p1,
        "a first attempt beyond the prefix keeps it"
    );
    assert_eq!(
        commit(store, &a.id, part(2, "second"), now, far).await,
        committed(Some("first"))
    );
    let p2 = hash_of(store, &a.id).await;
    assert_eq!((p2.parts, p2.state.as_str()), (1, "state-1"));
    assert_ne!(
        p2.epoch, p1.epoch,
        "a replacement beyond the prefix changes the epoch"
    );
    assert!(
        !store.advance_hash(&a.id, &p1, 2, "stale").await.unwrap(),
        "progress read before a replacement cannot land"
    );
    assert_eq!(
        commit(store, &a.id, part(1, "y2"), now, far).await,
        committed(Some("y"))
    );
    let reset = hash_of(store, &a.id).await;
    assert_eq!(reset.parts, 0);
    assert_eq!(reset.state, Sha1State::new().save());
    assert_ne!(reset.epoch, p2.epoch);
    assert!(!store.advance_hash(&a.id, &p2, 2, "stale").await.unwrap());
    assert!(
        !store
            .advance_hash(
                &a.id,
                &HashProgress {
                    epoch: p0.epoch,
                    ..reset.clone()
                },
                1,
                "aba"
            )
            .await
            .unwrap(),
        "old epoch refused"
    );
}

async fn claims_hold_off_part_changes(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    let a = record(13, 1, 1_000_000, far);
    store.create_or_resume(&a).await.unwrap();
    commit(store, &a.id, part(1, "y2"), now, far).await;
    // Claims: one holder at a time until the lease runs out.
    assert!(store.claim(&a.id, "h1", now, now + 1000).await.unwrap());
    assert!(
        store.claim(&a.id, "h1", now, now + 1000).await.unwrap(),
        "the holder may renew"
    );
    assert!(!store
        .claim(&a.id, "h2", now + 10, now + 2000)
        .await
        .unwrap());
    assert!(
        store
            .claim(&a.id, "h2", now + 1001, now + 2000)
            .await
            .unwrap(),
        "expired lease"
    );
    // While a claim is live no part changes; a released claim lets parts in again.
    assert_eq!(
        store
            .commit_part(&a.id, &part(1, "late"), now + 1500, far)
            .await
            .unwrap(),
        PartCommit::Completing
    );
    assert_eq!(store.parts(&a.id).await.unwrap()[0], part(1, "y2"));
    assert!(store.claim(&a.id, "h2", now + 1500, 0).await.unwrap());
    assert_eq!(
        store
            .commit_part(&a.id, &part(1, "late"), now + 1500, far)
            .await
            .unwrap(),
        committed(Some("y2"))
    );
}

async fn concurrent_parts_all_land(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    // Concurrent marks of different parts all land (no read-modify-write).
    let b = record(3, 2, 64 * 262_144, far);
    store.create_or_resume(&b).await.unwrap();
    let tasks: Vec<_> = (1..=64u32)
        .map(|n| {
            let store = store.clone();
            let id = b.id.clone();
            tokio::spawn(async move {
                store
                    .commit_part(&id, &part(n, &n.to_string()), now, far)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), PartCommit::Committed { replaced: None });
    }
    assert_eq!(store.parts(&b.id).await.unwrap().len(), 64);
}

async fn concurrent_creates_make_one_session(store: &Arc<dyn SessionStore>, _now: i64, far: i64) {
    // Concurrent creates of one file: one session.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_or_resume(&record(4, 4, 10, far))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (s, c) = t.await.unwrap();
        ids.insert(s.id);
        created += c as usize;
    }
    assert_eq!((ids.len(), created), (1, 1));
}

async fn expiry_and_deletion(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    // Expiry, deletion, results.
    let old = record(5, 5, 10, now - 1);
    store.create_or_resume(&old).await.unwrap();
    store
        .commit_part(&old.id, &part(1, ""), now, now - 1)
        .await
        .unwrap();
    let expired: Vec<UploadId> = store
        .expired(now, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(expired, vec![old.id.clone()]);
    assert!(store.delete(&old.id).await.unwrap());
    assert!(!store.delete(&old.id).await.unwrap());
    assert!(store.get(&old.id).await.unwrap().is_none());
    assert!(store.parts(&old.id).await.unwrap().is_empty());
    assert!(store.expired(now, 100).await.unwrap().is_empty());
    // The file can have a new session once the old one is gone.
    assert!(
        store
            .create_or_resume(&record(5, 5, 10, far))
            .await
            .unwrap()
            .1
    );
}

async fn results_are_kept(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    let a = record(14, 1, 1_000_000, far);
    let file = FileId::generate();
    assert_eq!(store.result(&a.id, now).await.unwrap(), None);
    store
        .put_result(&a.id, UserId(1), &file, far)
        .await
        .unwrap();
    assert_eq!(
        store.result(&a.id, now).await.unwrap(),
        Some((UserId(1), file))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    suite(Arc::new(MemorySessionStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db", dir.path().display());
    let meta = SqlMetaStore::connect_with(&url, common::plans::recording())
        .await
        .unwrap();
    suite(Arc::new(SqlSessionStore::new(meta.db().clone()))).await;
    common::plans::check(&url, &meta.db().recorded_statements()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis() {
    use chunkvault_engine::RedisSessionStore;
    let Ok(url) = common::service_var("CHUNKVAULT_TEST_REDIS_URL") else {
        eprintln!("CHUNKVAULT_TEST_REDIS_URL not set: Redis run skipped (.ci/run sets it)");
        return;
    };
    let prefix = format!("cv-test-{}:", UploadId::generate());
    let store = RedisSessionStore::connect(&url, &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}"));
    suite(Arc::new(store.clone())).await;
    store.clear().await.unwrap();
}

/// A tus upload Redis held before streams shared the session record resumes after the
/// upgrade: connecting moves it into the one layout, lock and indexes included.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_keeps_tus_uploads_across_the_upgrade() {
    use chunkvault_engine::RedisSessionStore;
    let Ok(url) = common::service_var("CHUNKVAULT_TEST_REDIS_URL") else {
        eprintln!("CHUNKVAULT_TEST_REDIS_URL not set: Redis run skipped (.ci/run sets it)");
        return;
    };
    let prefix = format!("cv-test-{}:", UploadId::generate());
    let id = UploadId::generate();
    let now = chunkvault_engine::types::now_millis();
    {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let fields = [
            ("owner", "31".to_owned()),
            ("file_name", "old.bin".to_owned()),
            ("metadata", "filename b2xk".to_owned()),
            ("length", String::new()),
            ("offset", "7".to_owned()),
            ("hash_state", "st@a1".to_owned()),
            ("created_at", "5".to_owned()),
            ("expires_at", (now + 60_000).to_string()),
            ("file_id", String::new()),
            ("lock_holder", "w1".to_owned()),
            ("lock_until", (now + 60_000).to_string()),
            ("concat", String::new()),
        ];
        redis::pipe()
            .hset_multiple(format!("{prefix}t:{id}"), &fields)
            .zadd(format!("{prefix}texp"), id.as_str(), now + 60_000)
            .sadd(format!("{prefix}to:31"), id.as_str())
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    let store: Arc<dyn SessionStore> =
        Arc::new(RedisSessionStore::connect(&url, &prefix).await.unwrap());
    let t = stream_of(&store, &id).await;
    assert_eq!(
        (
            t.offset,
            t.length,
            t.hash_state.as_str(),
            t.metadata.as_str()
        ),
        (7, None, "st@a1", "filename b2xk")
    );
    assert_eq!(store.list(UserId(31)).await.unwrap().len(), 1);
    assert!(
        !store.claim(&id, "w2", now, now + 1).await.unwrap(),
        "the writer's lock carries over"
    );
    assert!(store
        .append(&id, 7, "w1", &step(9, Some(9), None, now + 60_000))
        .await
        .unwrap());
    let again = RedisSessionStore::connect(&url, &prefix).await.unwrap();
    assert_eq!(stream_of(&store, &id).await.offset, 9, "moved once only");
    again.clear().await.unwrap();
}

async fn on_server(env: &str) {
    let Ok(base) = common::service_var(env) else {
        eprintln!("{env} not set: skipped (.ci/run sets it)");
        return;
    };
    let db = common::ScratchDb::create(&base, "cv_sess").await;
    let meta = SqlMetaStore::connect_with(&db.url, common::plans::recording())
        .await
        .unwrap();
    suite(Arc::new(SqlSessionStore::new(meta.db().clone()))).await;
    common::plans::check(&db.url, &meta.db().recorded_statements()).await;
    meta.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql() {
    on_server("CHUNKVAULT_TEST_MYSQL_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    on_server("CHUNKVAULT_TEST_POSTGRES_URL").await;
}

fn step(offset: u64, length: Option<u64>, file_id: Option<FileId>, far: i64) -> StreamProgress {
    StreamProgress {
        offset,
        length,
        hash_state: format!("s{offset}"),
        expires_at: far + offset as i64,
        file_id,
        digest: None,
    }
}

async fn streams_append_under_a_claim(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    let t = stream(9, None, far);
    let (got, created) = store.create_or_resume(&t).await.unwrap();
    assert!(created);
    assert_eq!(got, t);
    assert_eq!(store.get(&t.id).await.unwrap(), Some(t.clone()));
    let mut twin = stream(9, None, far);
    let Layout::Stream(s) = &mut twin.layout else {
        unreachable!()
    };
    s.digest = Some(Checksum::Sha256([7; 32]));
    assert!(
        store.create_or_resume(&twin).await.unwrap().1,
        "a stream is always new"
    );
    assert_eq!(
        stream_of(store, &twin.id).await.digest,
        Some(Checksum::Sha256([7; 32])),
        "a representation digest is kept"
    );
    // A stream may be stored complete (instant upload): kept to answer for, never open.
    let mut done = stream(9, Some(5), far);
    let Layout::Stream(s) = &mut done.layout else {
        unreachable!()
    };
    (s.offset, s.file_id) = (5, Some(FileId::generate()));
    assert!(store.create_or_resume(&done).await.unwrap().1);
    assert_eq!(store.get(&done.id).await.unwrap(), Some(done.clone()));
    let open: Vec<UploadId> = store
        .list(UserId(9))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(open.contains(&twin.id) && !open.contains(&done.id));
    assert!(store.delete(&done.id).await.unwrap());
    assert!(
        !store
            .append(&t.id, 0, "w0", &step(10, None, None, far))
            .await
            .unwrap(),
        "no append without the claim"
    );
    assert!(store.claim(&t.id, "w0", now, now + 1000).await.unwrap());
    assert!(store
        .append(&t.id, 0, "w0", &step(10, None, None, far))
        .await
        .unwrap());
    assert!(
        !store
            .append(&t.id, 0, "w0", &step(20, None, None, far))
            .await
            .unwrap(),
        "stale offset refused"
    );
    assert!(store
        .append(&t.id, 10, "w0", &step(20, Some(30), None, far))
        .await
        .unwrap());
    let digest = Some(Checksum::Sha1([4; 20]));
    assert!(store
        .append(
            &t.id,
            20,
            "w0",
            &StreamProgress {
                digest,
                ..step(25, Some(99), None, far)
            }
        )
        .await
        .unwrap());
    let got = stream_of(store, &t.id).await;
    assert_eq!(got.digest, digest, "an append may name the digest");
    assert_eq!(
        (got.offset, got.length, got.hash_state.as_str()),
        (25, Some(30), "s25"),
        "length is set once"
    );
    assert_eq!(got.metadata, "filename dHVzLmJpbg==");
    assert_eq!(
        store.get(&t.id).await.unwrap().unwrap().expires_at,
        far + 25,
        "an append pushes the expiry"
    );
    // A writer whose claim lapsed and was taken over is fenced off, whatever the offset.
    assert!(store
        .claim(&t.id, "w9", now + 1001, now + 1500)
        .await
        .unwrap());
    assert!(
        !store
            .append(&t.id, 25, "w0", &step(26, None, None, far))
            .await
            .unwrap(),
        "a lapsed writer's append refused"
    );
    assert!(store.claim(&t.id, "w9", now, 0).await.unwrap());
    assert!(store.claim(&t.id, "w0", now, now + 1000).await.unwrap());
    let file = FileId::generate();
    assert!(store
        .append(&t.id, 25, "w0", &step(30, None, Some(file.clone()), far))
        .await
        .unwrap());
    let got = stream_of(store, &t.id).await;
    assert_eq!(got.file_id, Some(file));
    assert_eq!(got.digest, digest, "an append naming none keeps it");

    assert!(store.claim(&t.id, "w0", now, 0).await.unwrap());
    assert!(store.claim(&t.id, "w1", now, now + 1000).await.unwrap());
    assert!(
        !store.claim(&t.id, "w2", now, now + 1000).await.unwrap(),
        "one writer at a time"
    );
    assert!(
        !store.claim(&t.id, "w2", now, 0).await.unwrap(),
        "only the holder gives the claim back"
    );
    assert!(!store.claim(&t.id, "w2", now, now + 1000).await.unwrap());
    assert!(store.claim(&t.id, "w1", now, 0).await.unwrap());
    assert!(store.claim(&t.id, "w2", now, now + 1000).await.unwrap());
    assert!(!store
        .claim(&UploadId::generate(), "w", now, now + 1)
        .await
        .unwrap());
    assert!(store.delete(&t.id).await.unwrap());
    assert!(!store.delete(&t.id).await.unwrap());
    assert!(store.get(&t.id).await.unwrap().is_none());
    assert!(store.delete(&twin.id).await.unwrap());
}

async fn layouts_do_not_cross(store: &Arc<dyn SessionStore>, now: i64, far: i64) {
    let p = record(15, 7, 1_000_000, far);
    let t = stream(15, Some(1_000_000), far);
    store.create_or_resume(&p).await.unwrap();
    store.create_or_resume(&t).await.unwrap();
    assert_eq!(
        commit(store, &t.id, part(1, "x"), now, far).await,
        PartCommit::Gone,
        "a stream has no numbered parts"
    );
    assert!(store.parts(&t.id).await.unwrap().is_empty());
    assert!(store.claim(&p.id, "w", now, now + 1000).await.unwrap());
    assert!(
        !store
            .append(&p.id, 0, "w", &step(5, None, None, far))
            .await
            .unwrap(),
        "a parts session takes no appends"
    );
    let h = hash_of(store, &p.id).await;
    assert!(
        !store.advance_hash(&t.id, &h, 1, "x").await.unwrap(),
        "a stream has no part hash progress"
    );
    assert_eq!(store.get(&p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.get(&t.id).await.unwrap(), Some(t.clone()));
    assert!(store.delete(&p.id).await.unwrap());
    assert!(store.delete(&t.id).await.unwrap());
}

async fn one_list_and_one_expiry_for_every_layout(
    store: &Arc<dyn SessionStore>,
    now: i64,
    far: i64,
) {
    let owner = 16;
    let p = record(owner, 8, 10, far);
    let open = stream(owner, None, far);
    let finished = stream(owner, Some(3), far);
    for r in [&p, &open, &finished] {
        store.create_or_resume(r).await.unwrap();
    }
    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let mut listed = ids(store.list(UserId(owner)).await.unwrap());
    listed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut want = vec![p.id.clone(), open.id.clone(), finished.id.clone()];
    want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(listed, want, "open sessions of every layout are listed");
    assert!(store
        .claim(&finished.id, "w", now, now + 1000)
        .await
        .unwrap());
    assert!(store
        .append(
            &finished.id,
            0,
            "w",
            &step(3, Some(3), Some(FileId::generate()), far)
        )
        .await
        .unwrap());
    assert!(!store.get(&finished.id).await.unwrap().unwrap().is_open());
    let listed = ids(store.list(UserId(owner)).await.unwrap());
    assert_eq!(listed.len(), 2, "a finished stream is not open: {listed:?}");
    assert!(!listed.contains(&finished.id));

    // A stream created finished (a tus concatenation) is not open either.
    let mut concat = stream(owner, Some(0), far);
    if let Layout::Stream(t) = &mut concat.layout {
        t.file_id = Some(FileId::generate());
    }
    store.create_or_resume(&concat).await.unwrap();
    assert_eq!(store.list(UserId(owner)).await.unwrap().len(), 2);

    // One sweep finds idle sessions of both layouts, oldest first.
    let old_parts = record(owner, 9, 10, now - 20);
    let old_stream = stream(owner, None, now - 10);
    store.create_or_resume(&old_parts).await.unwrap();
    store.create_or_resume(&old_stream).await.unwrap();
    assert_eq!(
        ids(store.expired(now, 10).await.unwrap()),
        vec![old_parts.id.clone(), old_stream.id.clone()]
    );
    for r in [&p, &open, &finished, &concat, &old_parts, &old_stream] {
        assert!(store.delete(&r.id).await.unwrap());
    }
    assert!(store.list(UserId(owner)).await.unwrap().is_empty());
    assert!(store.expired(now, 10).await.unwrap().is_empty());
}
