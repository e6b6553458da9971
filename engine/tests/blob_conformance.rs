//! One conformance suite for `BlobStore`; every backend runs it: in memory and the local store
//! always, the S3 store against the S3 endpoint in `CHUNKVAULT_TEST_S3_ENDPOINT` (Ceph RGW in
//! `.ci/run`).
#![allow(clippy::disallowed_methods)] // tests may block; the engine may not

mod common;

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use chunkvault_engine::blobs::{collect, BlobStaging, BlobStore, ByteStream, PartSpec, StagingId};
#[cfg(feature = "s3")]
use chunkvault_engine::blobs::{S3BlobStore, S3Config};
use chunkvault_engine::{ByteRange, Error, LocalBlobStore, MemoryBlobStore, Sha1Hex};
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

type Count<'a> = &'a dyn Fn() -> Pin<Box<dyn Future<Output = usize> + Send>>;

/// Every check, in order, on one store; each check removes what it made, so at the end the
/// store holds nothing (`count_files` says how many objects it holds).
async fn suite(store: &dyn BlobStaging, count_files: Count<'_>) {
    // Parts as small as the store allows (S3: 5 MiB), and a blob of two and a half parts.
    let part = store.min_part_size().max(100_000);
    let data: Vec<u8> = (0..(part * 5 / 2) as u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let before = count_files().await;
    pending_blobs_and_ranges(store, &data).await;
    dropped_writes_leave_nothing(store, count_files, before).await;
    empty_blobs(store).await;
    staged_parts(store, &data, part).await;
    aborted_staging(store).await;
    appends(store, &data, part).await;
    wait_until(|| async { count_files().await == before }).await;
}

async fn pending_blobs_and_ranges(store: &dyn BlobStore, data: &[u8]) {
    // put_pending + commit, then whole and ranged reads.
    let pending = store.put_pending(stream_of(data, 7000)).await.unwrap();
    assert_eq!(pending.size(), data.len() as u64);
    let key = pending.commit(&sha(1)).await.unwrap();
    assert!(store.exists(&key).await.unwrap());
    assert_eq!(
        collect(store.get(&key, None).await.unwrap()).await.unwrap(),
        data
    );
    let r = ByteRange {
        start: 1000,
        end: data.len() as u64 * 5 / 6 + 1,
    };
    assert_eq!(
        collect(store.get(&key, Some(r)).await.unwrap())
            .await
            .unwrap(),
        &data[1000..data.len() * 5 / 6 + 1]
    );
    range_digests(store, &key, data, data.len() as u64 / 3).await;

    // Same content committed twice: two distinct keys (see local.rs for why).
    let key2 = store
        .put_pending(stream_of(data, 65536))
        .await
        .unwrap()
        .commit(&sha(1))
        .await
        .unwrap();
    assert_ne!(key, key2);
    store.delete(&key2).await.unwrap();
    store.delete(&key2).await.unwrap();
    assert!(!store.exists(&key2).await.unwrap());

    store.delete(&key).await.unwrap();
}

/// `range_digests` (instant-upload challenges) equal the SHA-256 of the bytes, for ranges
/// inside one part, across a part boundary, at both ends, and empty.
async fn range_digests(store: &dyn BlobStore, key: &str, data: &[u8], part: u64) {
    use sha2::Digest;
    let len = data.len() as u64;
    let ranges = [
        ByteRange {
            start: 0,
            end: 65536.min(len),
        },
        ByteRange {
            start: part - 1000,
            end: part + 1000,
        },
        ByteRange {
            start: len - 10,
            end: len,
        },
        ByteRange { start: 5, end: 5 },
        ByteRange { start: 0, end: len },
    ];
    let got = store.range_digests(key, &ranges).await.unwrap();
    let want: Vec<[u8; 32]> = ranges
        .iter()
        .map(|r| sha2::Sha256::digest(&data[r.start as usize..r.end as usize]).into())
        .collect();
    assert_eq!(got, want);
}

async fn dropped_writes_leave_nothing(
    store: &dyn BlobStore,
    count_files: Count<'_>,
    before: usize,
) {
    // A dropped pending blob and a failed stream leave nothing behind.
    drop(store.put_pending(stream_of(b"abandoned", 3)).await.unwrap());
    let err = match store.put_pending(failing_after(b"partial")).await {
        Err(e) => e,
        Ok(_) => panic!("a failing body must fail the put"),
    };
    assert!(matches!(err, Error::Incomplete(_)), "{err:?}");
    wait_until(|| async { count_files().await == before }).await;
}

async fn empty_blobs(store: &dyn BlobStore) {
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

    store.delete(&empty).await.unwrap();
}

async fn staged_parts(store: &dyn BlobStaging, data: &[u8], part: u64) {
    // Staged upload: parts out of order, one repeated, one first sent with a wrong length.
    let id = staging(1);
    store.stage_begin(&id, data.len() as u64).await.unwrap();
    store.stage_begin(&id, data.len() as u64).await.unwrap();
    let spec = |n: u32| {
        let off = (u64::from(n) - 1) * part;
        PartSpec::new(n, off, part.min(data.len() as u64 - off))
    };
    let body = |n: u32| {
        let s = spec(n);
        stream_of(&data[s.offset as usize..(s.offset + s.len) as usize], 65536)
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
        .stage_put_part(&id, spec(2), stream_of(&data[..part as usize + 1], 65536))
        .await
        .unwrap_err();
    assert!(matches!(long, Error::Invalid { .. }), "{long:?}");
    receipts.push(store.stage_put_part(&id, spec(2), body(2)).await.unwrap());
    receipts.push(store.stage_put_part(&id, spec(1), body(1)).await.unwrap());
    receipts.sort_by_key(|r| r.number);
    receipts.dedup_by_key(|r| r.number);
    // Another attempt at part 2 written after the one completion names (a racing writer):
    // where the store keeps attempts apart it changes nothing; where parts share one slot (S3)
    // completion refuses rather than assembling bytes it was not given.
    let mut other = data[spec(2).offset as usize..(spec(2).offset + spec(2).len) as usize].to_vec();
    other[0] ^= 0xff;
    store
        .stage_put_part(&id, spec(2), stream_of(&other, 65536))
        .await
        .unwrap();
    let assembled = match store.stage_complete(&id, &receipts, &sha(3)).await {
        Ok(key) => key,
        Err(e) => {
            assert!(
                store
                    .stage_read_part(&id, &receipts[0], 1)
                    .await
                    .is_ok_and(|r| r.is_none()),
                "{e:?}"
            );
            // S3: the attempt named is gone from its slot; send it again and complete.
            receipts[1] = store.stage_put_part(&id, spec(2), body(2)).await.unwrap();
            store.stage_complete(&id, &receipts, &sha(3)).await.unwrap()
        }
    };
    assert_eq!(
        collect(store.get(&assembled, None).await.unwrap())
            .await
            .unwrap(),
        data
    );
    range_digests(store, &assembled, data, part).await;
    assert!(matches!(
        store.stage_complete(&id, &receipts, &sha(3)).await,
        Err(Error::NotFound { .. })
    ));

    store.delete(&assembled).await.unwrap();
}

async fn aborted_staging(store: &dyn BlobStaging) {
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
}

async fn appends(store: &dyn BlobStaging, data: &[u8], part: u64) {
    // Appends (tus): any length at the current offset (the engine checks offsets under its
    // writer lock), across part boundaries; a body past the limit is refused; an empty
    // staged upload completes empty.
    let tus = staging(3);
    store.stage_begin(&tus, 0).await.unwrap();
    let cuts = [
        0,
        1000,
        part as usize + 17,
        part as usize * 2 + 5,
        data.len(),
    ];
    let mut offset = 0u64;
    let mut last = String::new();
    for w in cuts.windows(2) {
        let piece = &data[w[0]..w[1]];
        let (n, attempt) = store
            .stage_write(&tus, offset, &last, stream_of(piece, 65536), u64::MAX)
            .await
            .unwrap();
        assert_eq!(n, piece.len() as u64);
        // A second writer at the same offset (its lock lapsed): refused, or written apart
        // and dropped when its commit fails; the committed chain is untouched.
        if let Ok((_, stale)) = store
            .stage_write(
                &tus,
                offset,
                &last,
                stream_of(&vec![0xee; piece.len()], 4096),
                u64::MAX,
            )
            .await
        {
            store
                .stage_drop_write(&tus, offset, &last, &stale)
                .await
                .unwrap();
        }
        offset += n;
        last = attempt;
    }
    let appended = store
        .stage_complete_appends(&tus, &last, offset, &sha(4))
        .await
        .unwrap();
    assert_eq!(
        collect(store.get(&appended, None).await.unwrap())
            .await
            .unwrap(),
        data
    );
    let limited = staging(4);
    store.stage_begin(&limited, 0).await.unwrap();
    let over = store
        .stage_write(&limited, 0, "", stream_of(&data[..100], 10), 99)
        .await
        .unwrap_err();
    assert!(matches!(over, Error::Invalid { .. }), "{over:?}");
    // Bytes of refused writes never reach the blob: after a successful write the staged upload
    // ends where that write ended (a tus upload of deferred length may finish shorter than a
    // refused attempt went; found by fuzz/ session_machine).
    let (n, first) = store
        .stage_write(&limited, 0, "", stream_of(&data[..20], 7), 99)
        .await
        .unwrap();
    assert_eq!(n, 20);
    let cut = store
        .stage_write(&limited, 20, &first, failing_after(&data[20..90]), 99)
        .await
        .unwrap_err();
    assert!(matches!(cut, Error::Incomplete(_)), "{cut:?}");
    let (n, still) = store
        .stage_write(&limited, 20, &first, stream_of(&[], 1), 99)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let last = if still.is_empty() { first } else { still };
    let short = store
        .stage_complete_appends(&limited, &last, 20, &sha(6))
        .await
        .unwrap();
    assert_eq!(
        collect(store.get(&short, None).await.unwrap())
            .await
            .unwrap(),
        &data[..20],
        "refused bytes were kept"
    );
    store.delete(&short).await.unwrap();
    let nothing = staging(5);
    store.stage_begin(&nothing, 0).await.unwrap();
    let empty2 = store
        .stage_complete_appends(&nothing, "", 0, &sha(5))
        .await
        .unwrap();
    assert!(collect(store.get(&empty2, None).await.unwrap())
        .await
        .unwrap()
        .is_empty());

    // A missing key reads as not found; keys are the store's, not the caller's.
    store.delete(&appended).await.unwrap();
    assert!(matches!(
        store.get(&appended, None).await,
        Err(Error::NotFound { .. })
    ));
    store.delete(&empty2).await.unwrap();
}

/// Cleanup of dropped writes happens in the background; wait for it with a deadline.
async fn wait_until<F: Future<Output = bool>>(cond: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond().await {
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
async fn memory() {
    let store = std::sync::Arc::new(MemoryBlobStore::new("memory"));
    let counted = store.clone();
    suite(&*store, &move || {
        let n = counted.object_count();
        Box::pin(async move { n })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open("local", dir.path()).await.unwrap();
    let root = dir.path().to_owned();
    suite(&store, &move || {
        let n = count_regular_files(&root);
        Box::pin(async move { n })
    })
    .await;
}

/// The S3 store against a real endpoint (Ceph RGW in `.ci/run`), in a key prefix of its own
/// that is removed afterwards.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3() {
    use chunkvault_engine::blobs::s3::S3_MIN_PART;
    let Some(config) = s3_config() else {
        eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: S3 run skipped (.ci/run sets it)");
        return;
    };
    let config = S3Config {
        prefix: format!("conformance-{}", chunkvault_engine::UploadId::generate()),
        min_part_size: S3_MIN_PART,
        buffer_part_size: S3_MIN_PART,
        ..config
    };
    let store = S3BlobStore::new("s3", config).unwrap();
    s3_suite(store).await;
}

/// The same gateway addressed as Aliyun OSS is (`oss://`): virtual-hosted requests (the bucket
/// in the host name: `CHUNKVAULT_TEST_S3_VHOST_ENDPOINT`, whose bucket host names resolve to the
/// gateway) and OSS's 100 KB minimum part (the test RGW takes parts that small).
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_as_oss_virtual_hosted() {
    let Some(config) = s3_config() else {
        eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: OSS-style run skipped (.ci/run sets it)");
        return;
    };
    let Ok(endpoint) = common::service_var("CHUNKVAULT_TEST_S3_VHOST_ENDPOINT") else {
        eprintln!(
            "CHUNKVAULT_TEST_S3_VHOST_ENDPOINT not set: OSS-style run skipped (.ci/run sets it)"
        );
        return;
    };
    let oss_min_part = 100 * 1024;
    let config = S3Config {
        endpoint,
        virtual_hosted: true,
        prefix: format!("oss-{}", chunkvault_engine::UploadId::generate()),
        min_part_size: oss_min_part,
        buffer_part_size: oss_min_part,
        ..config
    };
    let store = S3BlobStore::new("oss", config).unwrap();
    assert_eq!(store.min_part_size(), oss_min_part);
    s3_suite(store).await;
}

/// The suite on an S3 store (its objects counted in the bucket), then its prefix removed.
#[cfg(feature = "s3")]
async fn s3_suite(store: S3BlobStore) {
    let counter = store.clone();
    suite(&store, &move || {
        let s = counter.clone();
        Box::pin(async move { s.count_objects().await.unwrap() })
    })
    .await;
    store.remove_everything().await.unwrap();
}

#[cfg(feature = "s3")]
fn s3_config() -> Option<S3Config> {
    let endpoint = common::service_var("CHUNKVAULT_TEST_S3_ENDPOINT").ok()?;
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    Some(S3Config {
        endpoint,
        region: var("CHUNKVAULT_TEST_S3_REGION", "us-east-1"),
        bucket: var("CHUNKVAULT_TEST_S3_BUCKET", "chunkvault-test"),
        prefix: String::new(),
        virtual_hosted: false,
        access_key: var("CHUNKVAULT_TEST_S3_ACCESS_KEY", "testaccesskey"),
        secret_key: var("CHUNKVAULT_TEST_S3_SECRET_KEY", "testsecretkey"),
        min_part_size: 0,
        buffer_part_size: 0,
    })
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
