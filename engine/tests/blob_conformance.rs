//! One conformance suite for `BlobStore`; every backend runs it (the local store here, S3 later).
#![allow(clippy::disallowed_methods)] // tests may block; the engine may not

use std::io;

use bytes::Bytes;
use chunkvault_engine::blobs::{collect, BlobStore, ByteStream, PartSpec, StagingId};
use chunkvault_engine::{ByteRange, Error, LocalBlobStore, Sha1Hex};
use futures::StreamExt;

fn stream_of(data: &[u8], piece: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

fn failing_after(data: &[u8]) -> ByteStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    futures::stream::iter(items).boxed()
}

fn sha(n: u8) -> Sha1Hex {
    Sha1Hex::parse(&format!("{n:02x}").repeat(20)).unwrap()
}

fn staging(n: u8) -> StagingId {
    StagingId::parse(&format!("staging-{n:02}-abcdefghij")).unwrap()
}

/// `count_files` says how many objects the store holds (to prove nothing is left behind).
async fn suite(store: &dyn BlobStore, count_files: &dyn Fn() -> usize) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();

    // put_pending + commit, then whole and ranged reads.
    let pending = store.put_pending(stream_of(&data, 7000)).await.unwrap();
    assert_eq!(pending.size(), data.len() as u64);
    let key = pending.commit(&sha(1)).await.unwrap();
    assert!(store.exists(&key).await.unwrap());
    assert_eq!(
        collect(store.get(&key, None).await.unwrap()).await.unwrap(),
        data
    );
    let r = ByteRange {
        start: 1000,
        end: 250_001,
    };
    assert_eq!(
        collect(store.get(&key, Some(r)).await.unwrap())
            .await
            .unwrap(),
        &data[1000..250_001]
    );

    // Same content committed twice: two distinct keys (see local.rs for why).
    let key2 = store
        .put_pending(stream_of(&data, 65536))
        .await
        .unwrap()
        .commit(&sha(1))
        .await
        .unwrap();
    assert_ne!(key, key2);
    store.delete(&key2).await.unwrap();
    store.delete(&key2).await.unwrap();
    assert!(!store.exists(&key2).await.unwrap());

    // A dropped pending blob and a failed stream leave nothing behind.
    let before = count_files();
    drop(store.put_pending(stream_of(b"abandoned", 3)).await.unwrap());
    let err = match store.put_pending(failing_after(b"partial")).await {
        Err(e) => e,
        Ok(_) => panic!("a failing body must fail the put"),
    };
    assert!(matches!(err, Error::Incomplete(_)), "{err:?}");
    wait_until(|| count_files() == before).await;

    // Empty blobs are blobs.
    let empty = store
        .put_pending(stream_of(b"", 1))
        .await
        .unwrap()
        .commit(&sha(2))
        .await
        .unwrap();
    assert!(collect(store.get(&empty, None).await.unwrap())
        .await
        .unwrap()
        .is_empty());

    // Staged upload: parts out of order, one repeated, one first sent with a wrong length.
    let id = staging(1);
    let part = 100_000u64;
    store.stage_begin(&id, data.len() as u64).await.unwrap();
    store.stage_begin(&id, data.len() as u64).await.unwrap();
    let spec = |n: u32| {
        let off = (u64::from(n) - 1) * part;
        PartSpec::new(n, off, part.min(data.len() as u64 - off))
    };
    let body = |n: u32| {
        let s = spec(n);
        stream_of(&data[s.offset as usize..(s.offset + s.len) as usize], 4096)
    };
    let mut receipts = Vec::new();
    for n in [3, 1] {
        receipts.push(store.stage_put_part(&id, spec(n), body(n)).await.unwrap());
    }
    let short = store
        .stage_put_part(&id, spec(2), stream_of(&data[..10], 10))
        .await
        .unwrap_err();
    assert!(matches!(short, Error::Invalid { .. }), "{short:?}");
    let long = store
        .stage_put_part(&id, spec(2), stream_of(&data[..part as usize + 1], 4096))
        .await
        .unwrap_err();
    assert!(matches!(long, Error::Invalid { .. }), "{long:?}");
    receipts.push(store.stage_put_part(&id, spec(2), body(2)).await.unwrap());
    receipts.push(store.stage_put_part(&id, spec(1), body(1)).await.unwrap());
    receipts.sort_by_key(|r| r.number);
    receipts.dedup_by_key(|r| r.number);
    let assembled = store.stage_complete(&id, &receipts, &sha(3)).await.unwrap();
    assert_eq!(
        collect(store.get(&assembled, None).await.unwrap())
            .await
            .unwrap(),
        data
    );
    assert!(matches!(
        store.stage_complete(&id, &receipts, &sha(3)).await,
        Err(Error::NotFound { .. })
    ));

    // Abort drops staged bytes; parts for an unknown staging id are refused.
    let gone = staging(2);
    store.stage_begin(&gone, 10).await.unwrap();
    store.stage_abort(&gone).await.unwrap();
    store.stage_abort(&gone).await.unwrap();
    let err = store
        .stage_put_part(&gone, PartSpec::new(1, 0, 10), stream_of(&[0; 10], 10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    for k in [key, empty, assembled] {
        store.delete(&k).await.unwrap();
    }
    wait_until(|| count_files() == 0).await;
}

/// Cleanup of dropped writes happens on the blocking pool; wait for it with a deadline.
async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached in 10 s"
        );
        tokio::task::yield_now().await;
    }
}

fn count_regular_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += count_regular_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open("local", dir.path()).await.unwrap();
    let root = dir.path().to_owned();
    suite(&store, &|| count_regular_files(&root)).await;
}

#[tokio::test]
async fn local_refuses_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open("local", dir.path()).await.unwrap();
    for bad in [
        "../etc/passwd",
        "ab/cd/../../x",
        "/etc/passwd",
        "",
        "ab/cd/abcd",
    ] {
        assert!(store.get(bad, None).await.is_err(), "{bad:?}");
        assert!(store.delete(bad).await.is_err(), "{bad:?}");
    }
}
