//! Property: whatever the file size, part order, duplicates and re-sends (including re-sends cut
//! short), a completed upload is byte-identical to what was sent. Real stores: SQLite sessions
//! and metadata, local staging and blobs.
#![allow(clippy::disallowed_methods)] // tests may block; the engine may not

use std::sync::Arc;

use bytes::Bytes;
use chunkvault_engine::blobs::collect;
use chunkvault_engine::uploads::{PartsSession, MIN_CHUNK_SIZE};
use chunkvault_engine::{
    ByteStream, Engine, EngineConfig, Error, InitOutcome, InitRequest, LocalBlobStore, MetaStore,
    SessionStore, Sha1Hex, SqlMetaStore, SqlSessionStore, User,
};
use futures::StreamExt;
use proptest::prelude::*;
use sha1::{Digest, Sha1};

const CH: u64 = MIN_CHUNK_SIZE;

struct Fixture {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    meta: Arc<dyn MetaStore>,
    sessions: Arc<dyn SessionStore>,
    user: User,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (engine, meta, sessions, user) = rt.block_on(async {
        let meta = SqlMetaStore::connect(&format!("sqlite://{}/m.db", dir.path().display()))
            .await
            .unwrap();
        let sessions: Arc<dyn SessionStore> = Arc::new(SqlSessionStore::new(meta.db().clone()));
        let meta: Arc<dyn MetaStore> = Arc::new(meta);
        let blobs = LocalBlobStore::open("local", dir.path().join("data"))
            .await
            .unwrap();
        let engine = Engine::new(
            meta.clone(),
            Arc::new(blobs),
            sessions.clone(),
            EngineConfig::default(),
        )
        .await
        .unwrap();
        engine
            .accounts()
            .signup("prop-user", "password-123", "test")
            .await
            .unwrap();
        let session = engine
            .accounts()
            .signin("prop-user", "password-123", "test")
            .await
            .unwrap();
        (engine, meta, sessions, session.user)
    });
    Fixture {
        rt,
        engine,
        meta,
        sessions,
        user,
        dir,
    }
}

/// Deterministic bytes from a seed (xorshift), so cases stay small to describe.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn stream(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(40_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

#[derive(Clone, Debug)]
enum Op {
    /// Send part (index mod count) in full.
    Send(usize),
    /// Send it cut short: refused, and the part counts as missing until sent again.
    Cut(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![4 => any::<usize>().prop_map(Op::Send), 1 => any::<usize>().prop_map(Op::Cut)],
        0..12,
    )
}

fn sizes() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(CH),
        Just(3 * CH),
        Just(CH + 1),
        Just(2 * CH - 1),
        2..4 * CH
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_order_duplicates_and_resends_give_the_same_bytes(size in sizes(), seed in any::<u64>(), order_seed in any::<u64>(), extra in ops()) {
        let fx = fixture();
        fx.rt.block_on(async {
            let data = content(seed, size as usize);
            let sha1 = Sha1Hex::from_digest(&Sha1::digest(&data).into());
            let req = InitRequest::new("prop.bin", size, sha1.clone(), Some(CH));
            let status = match fx.engine.uploads().init_upload(&fx.user, req).await.unwrap() {
                InitOutcome::Session { status, .. } => status,
                InitOutcome::Instant(_) | InitOutcome::Challenge(_) => {
                    panic!("fresh content cannot be instant")
                }
            };
            let count = status.session.chunk_count as usize;
            let id = status.session.id.clone();
            let part = |i: usize| {
                let start = i * CH as usize;
                &data[start..(start + CH as usize).min(data.len())]
            };
            // Every part once, in a shuffled order, with the extra operations interleaved.
            let mut order: Vec<usize> = (0..count).collect();
            let mut x = order_seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut plan: Vec<Op> = order.into_iter().map(Op::Send).collect();
            for (k, op) in extra.into_iter().enumerate() {
                let at = (k * 7) % (plan.len() + 1);
                plan.insert(at, op);
            }
            for op in plan {
                match op {
                    Op::Send(i) => {
                        let i = i % count;
                        fx.engine.uploads().put_part(&fx.user, &id, i as u32 + 1, stream(part(i)), None).await.unwrap();
                    }
                    Op::Cut(i) => {
                        let i = i % count;
                        let p = part(i);
                        if p.is_empty() { continue; }
                        let err = fx.engine.uploads().put_part(&fx.user, &id, i as u32 + 1, stream(&p[..p.len() - 1]), None).await.unwrap_err();
                        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
                    }
                }
            }
            // Whatever a cut re-send left missing is reported, then sent again.
            match fx.engine.uploads().complete_upload(&fx.user, &id).await {
                Ok(_) => {}
                Err(Error::MissingParts { missing }) => {
                    for n in missing {
                        fx.engine.uploads().put_part(&fx.user, &id, n, stream(part(n as usize - 1)), None).await.unwrap();
                    }
                }
                Err(e) => panic!("{e:?}"),
            }
            let file = fx.engine.uploads().complete_upload(&fx.user, &id).await.unwrap();
            assert_eq!(file.sha1, sha1);
            assert_eq!(file.size, size);
            let got = collect(fx.engine.files().read(file, None).await.unwrap().body).await.unwrap();
            assert!(got == data, "assembled bytes differ");
        });
    }
}

#[test]
fn in_order_upload_is_hashed_before_complete() {
    let fx = fixture();
    fx.rt.block_on(async {
        let data = content(7, (5 * CH + 123) as usize);
        let sha1 = Sha1Hex::from_digest(&Sha1::digest(&data).into());
        let InitOutcome::Session { status, .. } = fx
            .engine
            .uploads()
            .init_upload(
                &fx.user,
                InitRequest::new("seq.bin", data.len() as u64, sha1, Some(CH)),
            )
            .await
            .unwrap()
        else {
            panic!("fresh content cannot be instant")
        };
        let id = status.session.id;
        for (i, chunk) in data.chunks(CH as usize).enumerate() {
            fx.engine
                .uploads()
                .put_part(&fx.user, &id, i as u32 + 1, stream(chunk), None)
                .await
                .unwrap();
        }
        let session = PartsSession::from_record(fx.sessions.get(&id).await.unwrap().unwrap())
            .expect("a parts session");
        assert_eq!(
            session.hash.parts, session.chunk_count,
            "complete will not need to re-read anything"
        );
        fx.engine
            .uploads()
            .complete_upload(&fx.user, &id)
            .await
            .unwrap();
    });
}

#[test]
fn wrong_content_is_refused_and_discarded() {
    let fx = fixture();
    fx.rt.block_on(async {
        let claimed = content(1, 1000);
        let sent = content(2, 1000);
        let sha1 = Sha1Hex::from_digest(&Sha1::digest(&claimed).into());
        let InitOutcome::Session { status, .. } = fx
            .engine
            .uploads()
            .init_upload(
                &fx.user,
                InitRequest::new("p.bin", 1000, sha1.clone(), None),
            )
            .await
            .unwrap()
        else {
            panic!()
        };
        fx.engine
            .uploads()
            .put_part(&fx.user, &status.session.id, 1, stream(&sent), None)
            .await
            .unwrap();
        let err = fx
            .engine
            .uploads()
            .complete_upload(&fx.user, &status.session.id)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Sha1Mismatch), "{err:?}");
        assert!(
            fx.meta.blob(&sha1).await.unwrap().is_none(),
            "nothing entered the index"
        );
        assert!(fx.sessions.get(&status.session.id).await.unwrap().is_none());
    });
}

/// Found by the `session_machine` fuzz target (fuzz/regressions/session_machine/): a tus PATCH
/// refused after its bytes were written (wrong checksum, or cut off with a checksum) left them in the staging
/// file past the offset. When a later, shorter PATCH then finished an upload of deferred length,
/// the published blob kept that tail: longer than the file and not hashing to its SHA1.
#[test]
fn refused_tus_bytes_never_reach_the_file() {
    use chunkvault_engine::uploads::tus::{AppendChecks, TusCreate};
    use chunkvault_engine::Checksum;
    let fx = fixture();
    fx.rt.block_on(async {
        for cut_off in [false, true] {
            let name = format!("t{cut_off}.bin");
            let t = fx
                .engine
                .uploads()
                .tus_create(&fx.user, TusCreate::new(None, String::new(), name))
                .await
                .unwrap();
            let refused = content(3, 5000);
            let body = if cut_off {
                let mut chunks: Vec<std::io::Result<Bytes>> =
                    vec![Ok(Bytes::copy_from_slice(&refused))];
                chunks.push(Err(std::io::Error::other("client went away")));
                futures::stream::iter(chunks).boxed()
            } else {
                stream(&refused)
            };
            let wrong = Checksum::Sha1(Sha1::digest(b"something else").into());
            let err = fx
                .engine
                .uploads()
                .tus_append(
                    &fx.user,
                    &t.id,
                    0,
                    None,
                    body,
                    AppendChecks::content(Some(wrong)),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::DigestMismatch { .. } | Error::Incomplete(_)),
                "{err:?}"
            );
            // The refused bytes' space is given back at once.
            let staged: u64 = std::fs::read_dir(fx.dir.path().join("data/staging"))
                .unwrap()
                .flat_map(|e| std::fs::read_dir(e.unwrap().path()).unwrap())
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum();
            assert_eq!(staged, 0, "refused bytes still staged");
            let sent = content(4, 100);
            let done = fx
                .engine
                .uploads()
                .tus_append(
                    &fx.user,
                    &t.id,
                    0,
                    Some(100),
                    stream(&sent),
                    AppendChecks::default(),
                )
                .await
                .unwrap();
            let sha1 = Sha1Hex::from_digest(&Sha1::digest(&sent).into());
            let file = fx
                .engine
                .files()
                .file(&fx.user, &sha1, done.file_id.as_ref())
                .await
                .unwrap();
            assert_eq!(file.size, 100);
            let got = collect(fx.engine.files().read(file, None).await.unwrap().body)
                .await
                .unwrap();
            assert_eq!(got.len(), 100, "the refused bytes stayed in the file");
            assert!(got == sent);
        }
    });
}

/// A tus append cut off midway (no checksum of its whole body) keeps the bytes that arrived:
/// the upload resumes from there and the file is exactly what was sent. One cut before any
/// byte keeps nothing.
#[test]
fn a_broken_tus_append_keeps_what_arrived() {
    use chunkvault_engine::uploads::tus::{AppendChecks, TusCreate};
    let fx = fixture();
    fx.rt.block_on(async {
        let data = content(5, 300_000);
        let uploads = fx.engine.uploads();
        let t = uploads
            .tus_create(
                &fx.user,
                TusCreate::new(Some(300_000), String::new(), "cut.bin".into()),
            )
            .await
            .unwrap();
        let broken = |bytes: &[u8]| -> ByteStream {
            let chunks: Vec<std::io::Result<Bytes>> = bytes
                .chunks(50_000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .chain([Err(std::io::Error::other("client went away"))])
                .collect();
            futures::stream::iter(chunks).boxed()
        };
        for (from, to) in [(0, 0), (0, 120_001), (120_001, 120_001)] {
            let err = uploads
                .tus_append(
                    &fx.user,
                    &t.id,
                    from as u64,
                    None,
                    broken(&data[from..to]),
                    AppendChecks::default(),
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Incomplete(_)), "{err:?}");
            let now = uploads.tus_status(&fx.user, &t.id).await.unwrap();
            assert_eq!(now.offset, to as u64, "kept up to where it broke");
            assert!(now.file_id.is_none());
        }
        let done = uploads
            .tus_append(
                &fx.user,
                &t.id,
                120_001,
                None,
                stream(&data[120_001..]),
                AppendChecks::default(),
            )
            .await
            .unwrap();
        let sha1 = Sha1Hex::from_digest(&Sha1::digest(&data).into());
        let file = fx
            .engine
            .files()
            .file(&fx.user, &sha1, done.file_id.as_ref())
            .await
            .unwrap();
        let got = collect(fx.engine.files().read(file, None).await.unwrap().body)
            .await
            .unwrap();
        assert!(got == data, "the file is not what was sent");
    });
}
