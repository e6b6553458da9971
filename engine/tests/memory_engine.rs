//! The engine over the in-memory stores alone: what a test or an example needs to run the
//! whole upload path without a database or a directory. Parts out of order, completion,
//! a tus upload of the same content (deduplicated), downloads, deletes; at the end the blob
//! store holds nothing.

use std::sync::Arc;

use bytes::Bytes;
use chunkvault_engine::blobs::collect;
use chunkvault_engine::uploads::tus::{AppendChecks, TusCreate};
use chunkvault_engine::{
    ByteStream, Engine, EngineConfig, FileQuery, InitOutcome, InitRequest, MemoryBlobStore,
    MemoryMetaStore, MemorySessionStore, Sha1Hex,
};
use futures::StreamExt;
use sha1::{Digest, Sha1};

const CH: u64 = 256 << 10;

fn stream(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(50_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// An engine on the memory stores given (sessions in memory too), and a signed-up user.
async fn engine_with(
    meta: Arc<MemoryMetaStore>,
    blobs: Arc<MemoryBlobStore>,
    name: &str,
) -> (Engine, chunkvault_engine::User) {
    let engine = Engine::new(
        meta,
        blobs,
        Arc::new(MemorySessionStore::new()),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    engine
        .accounts()
        .signup(name, "password-123", "test")
        .await
        .unwrap();
    let user = engine
        .accounts()
        .signin(name, "password-123", "test")
        .await
        .unwrap()
        .user;
    (engine, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_upload_path_on_memory_stores() {
    let blobs = Arc::new(MemoryBlobStore::new("memory"));
    let (engine, user) =
        engine_with(Arc::new(MemoryMetaStore::new()), blobs.clone(), "mem-user").await;

    let data: Vec<u8> = (0..(2 * CH + 1234) as u32)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    let sha1 = Sha1Hex::from_digest(&Sha1::digest(&data).into());

    // Numbered parts, out of order, one sent twice.
    let req = InitRequest::new("parts.bin", data.len() as u64, sha1.clone(), Some(CH));
    let InitOutcome::Session { status, .. } =
        engine.uploads().init_upload(&user, req).await.unwrap()
    else {
        panic!("fresh content cannot be instant");
    };
    let id = status.session.id.clone();
    for n in [3u32, 1, 2, 1] {
        let start = (u64::from(n) - 1) * CH;
        let end = (start + CH).min(data.len() as u64);
        engine
            .uploads()
            .put_part(
                &user,
                &id,
                n,
                stream(&data[start as usize..end as usize]),
                None,
            )
            .await
            .unwrap();
    }
    let file = engine.uploads().complete_upload(&user, &id).await.unwrap();
    assert_eq!(file.sha1, sha1);
    let got = engine.files().read(file.clone(), None).await.unwrap();
    assert_eq!(collect(got.body).await.unwrap(), data);

    // The same content through tus, in two appends: a second name for the same blob.
    let tus = engine
        .uploads()
        .tus_create(
            &user,
            TusCreate::new(Some(data.len() as u64), String::new(), "tus.bin".into()),
        )
        .await
        .unwrap();
    let cut = 100_000;
    engine
        .uploads()
        .tus_append(
            &user,
            &tus.id,
            0,
            None,
            stream(&data[..cut]),
            AppendChecks::default(),
        )
        .await
        .unwrap();
    let done = engine
        .uploads()
        .tus_append(
            &user,
            &tus.id,
            cut as u64,
            None,
            stream(&data[cut..]),
            AppendChecks::default(),
        )
        .await
        .unwrap();
    let second = engine
        .files()
        .file_by_id(&user, &done.file_id.expect("complete"))
        .await
        .unwrap();
    assert_eq!(second.sha1, sha1);
    assert_eq!(blobs.object_count(), 1, "one blob for both names");
    let got = engine.files().read(second.clone(), None).await.unwrap();
    assert_eq!(collect(got.body).await.unwrap(), data);

    // Deleting both names deletes the blob.
    engine.files().delete(&user, &file).await.unwrap();
    assert_eq!(blobs.object_count(), 1, "still referenced");
    engine.files().delete(&user, &second).await.unwrap();
    engine.files().collect_garbage().await.unwrap();
    assert_eq!(blobs.object_count(), 0);
    assert!(engine
        .files()
        .list_files(&user, &FileQuery::page(100, 0))
        .await
        .unwrap()
        .is_empty());
}

/// Blobs queued for deletion that cannot be deleted (here: in a store no longer configured)
/// go to the back of the queue, so a deletable blob behind more of them than one batch holds
/// is still reached, by the second sweep.
#[tokio::test]
async fn undeletable_blobs_do_not_block_the_deletion_queue() {
    use chunkvault_engine::meta::{FileIndex, GcEntry, NewBlob, NewUserFile, Published};
    use chunkvault_engine::FileName;

    let meta = Arc::new(MemoryMetaStore::new());
    let blobs = Arc::new(MemoryBlobStore::new("memory"));
    let (engine, user) = engine_with(meta.clone(), blobs, "gc-user").await;
    // 1,001 blobs in a store that is gone (more than a sweep's batch of 1,000), then one in
    // the configured store, each queued by the deletion of its only file.
    let queue = |n: u32, store: &'static str, key: String| {
        let meta = meta.clone();
        async move {
            let sha1 = Sha1Hex::parse(&format!("{n:040x}")).unwrap();
            let file = NewUserFile::new(user.id, sha1, FileName::parse("f.bin").unwrap(), 1, 1);
            let Published::Created(file) = meta
                .publish(&NewBlob::new(store, &key), &file)
                .await
                .unwrap()
            else {
                panic!("a new blob")
            };
            meta.delete_user_file(user.id, &file.id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    for n in 0..1001 {
        queue(n, "gone", format!("gone-{n:05}")).await;
    }
    // Queued in a later millisecond than all of them: strictly behind them in the queue (at
    // equal times the key would sort it first).
    let queued = chunkvault_engine::types::now_millis();
    while chunkvault_engine::types::now_millis() == queued {
        tokio::task::yield_now().await;
    }
    let deletable: GcEntry = queue(5000, "memory", "a-deletable".to_owned()).await;
    assert_eq!(meta.gc_pending(2000).await.unwrap().len(), 1002);
    for _ in 0..2 {
        engine.files().collect_garbage().await.unwrap();
    }
    let left = meta.gc_pending(2000).await.unwrap();
    assert_eq!(left.len(), 1001, "only the undeletable ones stay queued");
    assert!(!left.contains(&deletable));
}
