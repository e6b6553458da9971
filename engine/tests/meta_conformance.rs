//! One conformance suite for `MetaStore`, run against the in-memory store and SQLite always, and
//! against MariaDB and
//! PostgreSQL when `CHUNKVAULT_TEST_MYSQL_URL` / `CHUNKVAULT_TEST_POSTGRES_URL` are set
//! (`.ci/run` sets both). Each run works in a database of its own and drops it afterwards.
#![allow(clippy::disallowed_methods)] // tests may block; the engine may not

mod common;

use std::sync::Arc;

use chunkvault_engine::meta::{
    AccountStore, ChallengeRecord, GcEntry, MemoryMetaStore, MetaStore, NewBlob, NewUserFile,
    OutboxEntry, Published,
};
use chunkvault_engine::{
    Error, FileCursor, FileName, FileOrder, FileQuery, Sha1Hex, SqlMetaStore, UserId, Username,
};

fn sha(n: u8) -> Sha1Hex {
    Sha1Hex::parse(&format!("{:02x}", n).repeat(20)).unwrap()
}

fn name(s: &str) -> FileName {
    FileName::parse(s).unwrap()
}

async fn user(store: &dyn MetaStore, n: &str) -> UserId {
    store
        .create_user(&Username::parse(n).unwrap(), "$argon2id$fake", 1)
        .await
        .unwrap()
}

async fn suite(store: Arc<dyn MetaStore>) {
    users_and_tokens(&*store).await;
    publish_link_and_gc(&*store).await;
    names_listing_and_rename(&*store).await;
    listing_orders_and_search(&*store).await;
    transfer_outbox(&*store).await;
    moving_queues_the_source(&*store).await;
    concurrent_publish_and_delete(store.clone()).await;
    settings(&*store).await;
    blob_checks(&*store).await;
    challenges(&*store).await;
    quarantine(&*store).await;
    rate_events(&*store).await;
}

async fn rate_events(store: &dyn MetaStore) {
    let day = 24 * 3600 * 1000;
    for at in [1000, 2000, 3000] {
        store
            .record_event("signup", "10.0.0.1", day + at)
            .await
            .unwrap();
    }
    store
        .record_event("signup", "10.0.0.2", day + 2500)
        .await
        .unwrap();
    store
        .record_event("signin-fail", "10.0.0.1", day + 2500)
        .await
        .unwrap();
    assert_eq!(
        store
            .events_since("signup", "10.0.0.1", day + 2000)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.events_since("signup", "10.0.0.1", 0).await.unwrap(),
        3
    );
    assert_eq!(
        store.events_since("signup", "10.0.0.3", 0).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .events_since("signin-fail", "10.0.0.1", 0)
            .await
            .unwrap(),
        1
    );
    // Keys may carry a username (any text) after the address.
    store
        .record_event("signin-fail", "10.0.0.1 用户", day + 3000)
        .await
        .unwrap();
    assert_eq!(
        store
            .events_since("signin-fail", "10.0.0.1 用户", 0)
            .await
            .unwrap(),
        1
    );
    // Day-old events are dropped as new ones arrive.
    store
        .record_event("signup", "10.0.0.9", 3 * day)
        .await
        .unwrap();
    assert_eq!(
        store.events_since("signup", "10.0.0.1", 0).await.unwrap(),
        0
    );
}

async fn quarantine(store: &dyn MetaStore) {
    let owner = user(store, "quarantine-owner").await;
    let other = user(store, "quarantine-other").await;
    let s = sha(211);
    let f = NewUserFile::new(owner, s.clone(), name("q.bin"), 10, 100);
    store
        .publish(&NewBlob::new("local", "bad-key"), &f)
        .await
        .unwrap();
    assert!(
        !store.quarantine_blob(&s, "other-key").await.unwrap(),
        "only the copy found wrong"
    );
    assert!(store.quarantine_blob(&s, "bad-key").await.unwrap());
    assert!(!store.quarantine_blob(&s, "bad-key").await.unwrap(), "once");
    let b = store.blob(&s).await.unwrap().unwrap();
    assert!(b.quarantined);
    // Quarantined content is linked to nobody.
    let g = NewUserFile::new(other, s.clone(), name("g.bin"), 10, 101);
    assert!(store.link_existing(&g).await.unwrap().is_none());
    // Fresh bytes replace it once, for every holder.
    assert!(store
        .replace_quarantined(&s, "local", "good-key")
        .await
        .unwrap());
    assert!(!store
        .replace_quarantined(&s, "local", "late-key")
        .await
        .unwrap());
    let b = store.blob(&s).await.unwrap().unwrap();
    assert_eq!(
        (b.quarantined, b.key.as_str(), b.refcount),
        (false, "good-key", 1)
    );
    assert!(store.link_existing(&g).await.unwrap().is_some());
}

async fn users_and_tokens(store: &dyn MetaStore) {
    let alice = user(store, "alice").await;
    let err = store
        .create_user(&Username::parse("alice").unwrap(), "x", 2)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UsernameTaken), "{err:?}");
    // Names are compared exactly.
    let big_alice = user(store, "Alice").await;
    assert_ne!(alice, big_alice);
    let rec = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(rec.id, alice);
    assert_eq!(rec.password_hash, "$argon2id$fake");
    assert_eq!(
        store.user_by_id(alice).await.unwrap().unwrap().username,
        "alice"
    );
    assert!(store.user_by_name("nobody").await.unwrap().is_none());
    store.touch_user(alice, 50).await.unwrap();
    assert_eq!(
        store
            .user_by_id(alice)
            .await
            .unwrap()
            .unwrap()
            .last_active_at,
        50
    );

    let h1 = "a".repeat(64);
    let h2 = "b".repeat(64);
    store.insert_token(&h1, alice, 10, 100).await.unwrap();
    store.insert_token(&h2, alice, 10, 20).await.unwrap();
    assert_eq!(
        store
            .token_user(&h1, 99)
            .await
            .unwrap()
            .map(|u| (u.id, u.username)),
        Some((alice, "alice".to_owned()))
    );
    assert_eq!(
        store.token_user(&h1, 100).await.unwrap(),
        None,
        "expired at expires_at"
    );
    assert_eq!(store.token_user(&"c".repeat(64), 0).await.unwrap(), None);
    assert_eq!(store.purge_expired_tokens(50).await.unwrap(), 1);
    assert_eq!(store.token_user(&h2, 0).await.unwrap(), None, "purged");
    assert!(store.delete_token(&h1).await.unwrap());
    assert!(!store.delete_token(&h1).await.unwrap());
    assert_eq!(store.token_user(&h1, 0).await.unwrap(), None, "revoked");
}

async fn publish_link_and_gc(store: &dyn MetaStore) {
    let u1 = user(store, "pub-one").await;
    let u2 = user(store, "pub-two").await;
    let s = sha(1);
    let f1 = NewUserFile::new(u1, s.clone(), name("a.bin"), 10, 100);
    assert_eq!(
        store.link_existing(&f1).await.unwrap(),
        None,
        "nothing indexed yet"
    );
    let Published::Created(file1) = store
        .publish(&NewBlob::new("local", "k1"), &f1)
        .await
        .unwrap()
    else {
        panic!("first publish must create the blob")
    };
    assert_eq!(
        (file1.user_id, file1.size, file1.name.as_str()),
        (u1, 10, "a.bin")
    );
    let blob = store.blob(&s).await.unwrap().unwrap();
    assert_eq!(
        (
            blob.size,
            blob.store.as_str(),
            blob.key.as_str(),
            blob.refcount
        ),
        (10, "local", "k1", 1)
    );

    // A second writer of the same content loses and links to the first blob.
    let f2 = NewUserFile::new(u2, s.clone(), name("b.bin"), 10, 101);
    let Published::Deduplicated(file2) = store
        .publish(&NewBlob::new("local", "k2"), &f2)
        .await
        .unwrap()
    else {
        panic!("second publish must deduplicate")
    };
    assert_eq!(store.blob(&s).await.unwrap().unwrap().key, "k1");
    assert_eq!(store.blob(&s).await.unwrap().unwrap().refcount, 2);

    // Instant upload of indexed content, repeated: one file.
    let f3 = NewUserFile::new(u2, s.clone(), name("c.bin"), 10, 102);
    let linked = store.link_existing(&f3).await.unwrap().unwrap();
    assert_eq!(store.link_existing(&f3).await.unwrap().unwrap(), linked);
    assert_eq!(store.blob(&s).await.unwrap().unwrap().refcount, 3);
    // Publishing content+name the user already has returns that file.
    assert_eq!(
        store
            .publish(&NewBlob::new("local", "k3"), &f1)
            .await
            .unwrap(),
        Published::Deduplicated(file1.clone())
    );
    assert_eq!(store.blob(&s).await.unwrap().unwrap().refcount, 3);

    // Other users' files are invisible.
    assert_eq!(
        store.user_file(u1, &s, None).await.unwrap(),
        Some(file1.clone())
    );
    assert_eq!(
        store.user_file(u1, &s, Some(&file2.id)).await.unwrap(),
        None
    );
    assert_eq!(
        store.user_file(u2, &s, None).await.unwrap(),
        Some(linked.clone()),
        "newest first"
    );
    assert_eq!(
        store.user_file(u2, &s, Some(&file2.id)).await.unwrap(),
        Some(file2.clone())
    );
    assert!(matches!(
        store.delete_user_file(u1, &file2.id).await,
        Err(Error::NotFound { .. })
    ));

    assert_eq!(store.delete_user_file(u2, &file2.id).await.unwrap(), None);
    assert_eq!(store.delete_user_file(u2, &linked.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_user_file(u2, &linked.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.blob(&s).await.unwrap().unwrap().refcount, 1);
    let gc = store.delete_user_file(u1, &file1.id).await.unwrap();
    let entry = GcEntry {
        store: "local".into(),
        key: "k1".into(),
    };
    assert_eq!(gc, Some(entry.clone()), "last reference queues the blob");
    assert_eq!(store.blob(&s).await.unwrap(), None);
    assert_eq!(
        store.link_existing(&f1).await.unwrap(),
        None,
        "gone from the index"
    );
    assert_eq!(store.gc_pending(10).await.unwrap(), vec![entry.clone()]);
    store.gc_done(&entry).await.unwrap();
    store.gc_done(&entry).await.unwrap();
    assert_eq!(store.gc_pending(10).await.unwrap(), vec![]);

    // A deletion that failed goes to the back of the queue.
    let mut queued = Vec::new();
    for (n, key) in [(2, "k-a"), (3, "k-b")] {
        let f = NewUserFile::new(u1, sha(n), name("q.bin"), 1, 200);
        let Published::Created(file) = store
            .publish(&NewBlob::new("local", key), &f)
            .await
            .unwrap()
        else {
            panic!("a new blob")
        };
        queued.push(store.delete_user_file(u1, &file.id).await.unwrap().unwrap());
    }
    let later = store.gc_pending(10).await.unwrap();
    assert_eq!(later.len(), 2);
    // Far behind anything queued now, whatever the clock says.
    store.gc_later(&later[0], i64::MAX / 2).await.unwrap();
    assert_eq!(
        store.gc_pending(10).await.unwrap(),
        vec![later[1].clone(), later[0].clone()]
    );
    let gone = GcEntry {
        store: "local".into(),
        key: "not-queued".into(),
    };
    store.gc_later(&gone, 0).await.unwrap();
    assert_eq!(
        store.gc_pending(10).await.unwrap().len(),
        2,
        "a no-op when not queued"
    );
    for e in &queued {
        store.gc_done(e).await.unwrap();
    }
    assert_eq!(store.gc_pending(10).await.unwrap(), vec![]);
}

async fn names_listing_and_rename(store: &dyn MetaStore) {
    let u = user(store, "lister").await;
    let other = user(store, "other-lister").await;
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let f = NewUserFile::new(
            u,
            sha(10 + i),
            name(&format!("文件 {i}.txt")),
            u64::from(i),
            1000 + i64::from(i),
        );
        ids.push(
            store
                .publish(&NewBlob::new("local", format!("key{i}")), &f)
                .await
                .unwrap()
                .file()
                .id
                .clone(),
        );
    }
    let page = store
        .list_user_files(u, &FileQuery::page(2, 0))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["文件 4.txt", "文件 3.txt"]
    );
    let page = store
        .list_user_files(u, &FileQuery::page(10, 3))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["文件 1.txt", "文件 0.txt"]
    );
    assert!(store
        .list_user_files(other, &FileQuery::page(10, 0))
        .await
        .unwrap()
        .is_empty());

    // Same content under a second name is a second file.
    let dup = NewUserFile::new(u, sha(10), name("copy.txt"), 0, 2000);
    let copy = store.link_existing(&dup).await.unwrap().unwrap();
    assert_ne!(copy.id, ids[0]);
    let renamed = store
        .rename_user_file(u, &ids[0], &name("新名字.txt"), 3000)
        .await
        .unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.updated_at,
            renamed.uploaded_at
        ),
        ("新名字.txt", 3000, 1000)
    );
    let same = store
        .rename_user_file(u, &ids[0], &name("新名字.txt"), 3001)
        .await
        .unwrap();
    assert_eq!(same.name, "新名字.txt");
    let clash = store
        .rename_user_file(u, &copy.id, &name("新名字.txt"), 3002)
        .await
        .unwrap_err();
    assert!(matches!(clash, Error::NameTaken), "{clash:?}");
    assert!(matches!(
        store.rename_user_file(other, &ids[1], &name("x"), 1).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        store.user_file_by_id(&ids[1]).await.unwrap().unwrap().name,
        "文件 1.txt"
    );
}

/// Many users publish the same content and delete it at once: the refcount never drifts, the
/// blob leaves the index exactly when the last file goes.
/// The transfer outbox: a job is written with the blob it moves (only when the publish creates
/// the blob), listed earliest due first, and gone once done.
async fn transfer_outbox(store: &dyn MetaStore) {
    let u = user(store, "outboxer").await;
    let other = user(store, "outboxer-2").await;
    let job = |n: u8, due: i64| OutboxEntry {
        sha1: sha(60 + n),
        to: "cold".to_owned(),
        due_at: due,
    };
    assert!(store.outbox_pending(10).await.unwrap().is_empty());
    let (late, early) = (job(1, 9000), job(2, 5000));
    for (i, j) in [&late, &early].into_iter().enumerate() {
        let f = NewUserFile::new(u, j.sha1.clone(), name(&format!("o{i}")), 10, 1000);
        let blob = NewBlob::new("local", format!("outbox{i}")).with_transfer(j.clone());
        assert!(matches!(
            store.publish(&blob, &f).await.unwrap(),
            Published::Created(_)
        ));
    }
    assert_eq!(
        store.outbox_pending(10).await.unwrap(),
        [early.clone(), late.clone()],
        "earliest due first"
    );
    assert_eq!(store.outbox_pending(1).await.unwrap(), vec![early.clone()]);
    // The same content published again (deduplicated): no second job.
    let again = NewUserFile::new(other, late.sha1.clone(), name("again"), 10, 2000);
    let blob = NewBlob::new("local", "outbox-again").with_transfer(job(1, 99_000));
    assert!(matches!(
        store.publish(&blob, &again).await.unwrap(),
        Published::Deduplicated(_)
    ));
    // Content without a transfer plan writes nothing.
    let plain = NewUserFile::new(u, sha(63), name("plain"), 10, 1000);
    store
        .publish(&NewBlob::new("local", "outbox-plain"), &plain)
        .await
        .unwrap();
    assert_eq!(store.outbox_pending(10).await.unwrap().len(), 2);
    store.outbox_done(&early).await.unwrap();
    store.outbox_done(&early).await.unwrap();
    assert_eq!(store.outbox_pending(10).await.unwrap(), vec![late.clone()]);
    store.outbox_done(&late).await.unwrap();
    assert!(store.outbox_pending(10).await.unwrap().is_empty());
}

/// A blob's switch to another store queues its old copy for deletion in the same commit; a
/// switch from where the blob no longer is changes nothing.
async fn moving_queues_the_source(store: &dyn MetaStore) {
    let u = user(store, "mover").await;
    let f = NewUserFile::new(u, sha(120), name("moved"), 10, 1000);
    store
        .publish(&NewBlob::new("hot", "hot-key"), &f)
        .await
        .unwrap();
    let entry = |s: &str, k: &str| GcEntry {
        store: s.to_owned(),
        key: k.to_owned(),
    };
    let (from, to) = (entry("hot", "hot-key"), entry("cold", "cold-key"));
    let before = store.gc_pending(1000).await.unwrap();
    assert!(store.move_blob(&sha(120), &from, &to).await.unwrap());
    let b = store.blob(&sha(120)).await.unwrap().unwrap();
    assert_eq!((b.store.as_str(), b.key.as_str()), ("cold", "cold-key"));
    let after = store.gc_pending(1000).await.unwrap();
    assert!(after.contains(&from), "the source is queued for deletion");
    assert_eq!(after.len(), before.len() + 1);
    // Stale: the blob is no longer at `from`.
    assert!(!store
        .move_blob(&sha(120), &from, &entry("other", "k"))
        .await
        .unwrap());
    assert_eq!(store.gc_pending(1000).await.unwrap().len(), after.len());
    store.gc_done(&from).await.unwrap();
}

/// Every order of a listing, ties broken by file id (the same way on every page), and the name
/// search with LIKE's wildcards taken literally.
async fn listing_orders_and_search(store: &dyn MetaStore) {
    let u = user(store, "sorter").await;
    let files = [
        ("beta.txt", 30, 1000),
        ("Alpha.txt", 10, 1000),
        ("gamma 100%_!.txt", 20, 2000),
        ("delta.bin", 20, 3000),
    ];
    let mut ids = std::collections::HashMap::new();
    for (i, (n, size, at)) in files.into_iter().enumerate() {
        let f = NewUserFile::new(u, sha(40 + i as u8), name(n), size, at);
        let p = store
            .publish(&NewBlob::new("local", format!("sorted{i}")), &f)
            .await
            .unwrap();
        ids.insert(n, p.file().id.clone());
    }
    // Of two with the same key, the lower id first when ascending, last when descending.
    let tie = |a: &'static str, b: &'static str, ascending: bool| {
        let (lo, hi) = if ids[a].as_str() < ids[b].as_str() {
            (a, b)
        } else {
            (b, a)
        };
        if ascending {
            [lo, hi]
        } else {
            [hi, lo]
        }
    };
    let list = |order: FileOrder, q: Option<&str>, limit: u32, offset: u64| {
        let query = FileQuery {
            limit,
            offset,
            order,
            name_contains: q.map(str::to_owned),
            after: None,
        };
        async move {
            store
                .list_user_files(u, &query)
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
        }
    };
    let [t1, t2] = tie("beta.txt", "Alpha.txt", false);
    assert_eq!(
        list(FileOrder::Newest, None, 10, 0).await,
        ["delta.bin", "gamma 100%_!.txt", t1, t2]
    );
    let [t1, t2] = tie("beta.txt", "Alpha.txt", true);
    assert_eq!(
        list(FileOrder::Oldest, None, 10, 0).await,
        [t1, t2, "gamma 100%_!.txt", "delta.bin"]
    );
    assert_eq!(
        list(FileOrder::Name, None, 10, 0).await,
        ["Alpha.txt", "beta.txt", "delta.bin", "gamma 100%_!.txt"]
    );
    assert_eq!(
        list(FileOrder::NameDesc, None, 10, 0).await,
        ["gamma 100%_!.txt", "delta.bin", "beta.txt", "Alpha.txt"]
    );
    let [t1, t2] = tie("gamma 100%_!.txt", "delta.bin", false);
    assert_eq!(
        list(FileOrder::Largest, None, 10, 0).await,
        ["beta.txt", t1, t2, "Alpha.txt"]
    );
    let [t1, t2] = tie("gamma 100%_!.txt", "delta.bin", true);
    assert_eq!(
        list(FileOrder::Smallest, None, 10, 0).await,
        ["Alpha.txt", t1, t2, "beta.txt"]
    );
    // Search: ASCII letters in either case; %, _ and ! are themselves.
    assert_eq!(
        list(FileOrder::Name, Some("ALPHA"), 10, 0).await,
        ["Alpha.txt"]
    );
    assert_eq!(
        list(FileOrder::Name, Some("_"), 10, 0).await,
        ["gamma 100%_!.txt"]
    );
    assert_eq!(
        list(FileOrder::Name, Some("0%_!"), 10, 0).await,
        ["gamma 100%_!.txt"]
    );
    assert_eq!(list(FileOrder::Name, Some("!"), 10, 0).await.len(), 1);
    assert!(list(FileOrder::Name, Some("zeta"), 10, 0).await.is_empty());
    // Pages of a search, in order.
    assert_eq!(
        list(FileOrder::Name, Some("a"), 2, 1).await,
        ["beta.txt", "delta.bin"]
    );

    // Keyset pages: walking page after page from each page's last file gives the whole listing,
    // in every order and with a search, ties included; a cursor survives its file's deletion.
    let walk = |order: FileOrder, q: Option<&'static str>, size: u32| async move {
        let mut names = Vec::new();
        let mut after: Option<FileCursor> = None;
        loop {
            let query = FileQuery {
                limit: size,
                offset: 0,
                order,
                name_contains: q.map(str::to_owned),
                after: after.clone(),
            };
            let page = store.list_user_files(u, &query).await.unwrap();
            assert!(page.len() <= size as usize);
            let Some(last) = page.last() else { break };
            let cursor = FileCursor::after(order, last);
            assert_eq!(FileCursor::decode(&cursor.encode()).unwrap(), cursor);
            after = Some(cursor);
            names.extend(page.into_iter().map(|f| f.name));
        }
        names
    };
    for order in [
        FileOrder::Newest,
        FileOrder::Oldest,
        FileOrder::Name,
        FileOrder::NameDesc,
        FileOrder::Largest,
        FileOrder::Smallest,
    ] {
        let all = list(order, None, 10, 0).await;
        for size in [1, 2, 3] {
            assert_eq!(walk(order, None, size).await, all, "{order:?} by {size}");
        }
        assert_eq!(
            walk(order, Some("a"), 1).await,
            list(order, Some("a"), 10, 0).await,
            "{order:?} searching"
        );
        // Offsets page the same listing.
        let mut by_offset = Vec::new();
        for offset in 0..all.len() as u64 {
            by_offset.extend(list(order, None, 1, offset).await);
        }
        assert_eq!(by_offset, all, "{order:?} by offset");
    }
    let by_name = list(FileOrder::Name, None, 10, 0).await;
    let beta = store
        .list_user_files(u, &FileQuery::page(10, 0))
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.name == "beta.txt")
        .unwrap();
    let cursor = FileCursor::after(FileOrder::Name, &beta);
    store.delete_user_file(u, &beta.id).await.unwrap();
    let rest = store
        .list_user_files(
            u,
            &FileQuery {
                order: FileOrder::Name,
                after: Some(cursor),
                ..FileQuery::page(10, 0)
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect::<Vec<_>>();
    assert_eq!(rest, by_name[2..]);
    for bad in [
        "",
        "newest",
        "newest.xyz.1",
        "sideways.0123456789abcdef0123.1",
        "name.0123456789abcdef0123.zz",
    ] {
        assert!(FileCursor::decode(bad).is_err(), "{bad:?}");
    }
}

async fn concurrent_publish_and_delete(store: Arc<dyn MetaStore>) {
    let s = sha(99);
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(user(&*store, &format!("racer{i}")).await);
    }
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, &u)| {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move {
                let f = NewUserFile::new(u, s, name("same.bin"), 7, 5000);
                store
                    .publish(&NewBlob::new("local", format!("race{i}")), &f)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut files = Vec::new();
    for t in tasks {
        let p = t.await.unwrap();
        created += matches!(p, Published::Created(_)) as usize;
        files.push(p.file().clone());
    }
    assert_eq!(created, 1, "exactly one writer wins");
    assert_eq!(store.blob(&s).await.unwrap().unwrap().refcount, 8);
    let tasks: Vec<_> = files
        .into_iter()
        .map(|f| {
            let store = store.clone();
            tokio::spawn(async move { store.delete_user_file(f.user_id, &f.id).await.unwrap() })
        })
        .collect();
    let mut queued = 0;
    for t in tasks {
        queued += t.await.unwrap().is_some() as usize;
    }
    assert_eq!(queued, 1, "the blob is queued once, by the last delete");
    assert_eq!(store.blob(&s).await.unwrap(), None);
}

async fn settings(store: &dyn MetaStore) {
    assert_eq!(store.setting_or_init("k", "first").await.unwrap(), "first");
    assert_eq!(store.setting_or_init("k", "second").await.unwrap(), "first");
}

async fn blob_checks(store: &dyn MetaStore) {
    let (clean, attack) = (sha(201), sha(202));
    assert_eq!(store.blob_check(&clean).await.unwrap(), None);
    store.record_blob_check(&clean, false, 5).await.unwrap();
    store.record_blob_check(&attack, true, 5).await.unwrap();
    // The first verdict stands.
    store.record_blob_check(&clean, true, 6).await.unwrap();
    assert_eq!(store.blob_check(&clean).await.unwrap(), Some(false));
    assert_eq!(store.blob_check(&attack).await.unwrap(), Some(true));
}

async fn challenges(store: &dyn MetaStore) {
    let (owner, other) = (user(store, "prover").await, user(store, "stranger").await);
    let now = 10 * 24 * 3600 * 1000;
    let c = ChallengeRecord {
        id: "ch-1".into(),
        user_id: owner,
        sha1: sha(210),
        size: 42,
        file_name: "claimed.bin".into(),
        chunk_size: 0,
        ranges: "0-9".into(),
        expected: "abc".into(),
        expires_at: now + 60_000,
    };
    store.put_challenge(&c).await.unwrap();
    // Another user's challenge is unknown to them, and stays for its owner.
    assert_eq!(store.take_challenge("ch-1", other).await.unwrap(), None);
    assert_eq!(
        store.take_challenge("ch-1", owner).await.unwrap(),
        Some(c.clone())
    );
    // Single use.
    assert_eq!(store.take_challenge("ch-1", owner).await.unwrap(), None);

    store.record_proof_failure(owner, now).await.unwrap();
    store.record_proof_failure(owner, now + 10).await.unwrap();
    assert_eq!(store.proof_failures_since(owner, now).await.unwrap(), 2);
    assert_eq!(store.proof_failures_since(owner, now + 5).await.unwrap(), 1);
    assert_eq!(store.proof_failures_since(other, 0).await.unwrap(), 0);

    // The sweep: more expired challenges than one batch holds all go; live ones and recent
    // failures stay; failures older than a day go.
    let expired = 1201;
    for i in 0..expired + 2 {
        let live = i >= expired;
        let c = ChallengeRecord {
            id: format!("sweep-{i}"),
            expires_at: if live {
                now + 60_000
            } else {
                now - 1 - i as i64
            },
            ..c.clone()
        };
        store.put_challenge(&c).await.unwrap();
    }
    store
        .record_proof_failure(other, now - 2 * 24 * 3600 * 1000)
        .await
        .unwrap();
    assert_eq!(
        store.purge_expired_proofs(now).await.unwrap(),
        expired as u64 + 1
    );
    assert_eq!(store.purge_expired_proofs(now).await.unwrap(), 0);
    assert!(store
        .take_challenge("sweep-0", owner)
        .await
        .unwrap()
        .is_none());
    let live = format!("sweep-{expired}");
    assert!(store.take_challenge(&live, owner).await.unwrap().is_some());
    assert_eq!(store.proof_failures_since(owner, now).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    suite(Arc::new(MemoryMetaStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/meta.db", dir.path().display());
    let store = SqlMetaStore::connect_with(&url, common::plans::recording())
        .await
        .unwrap();
    suite(Arc::new(store.clone())).await;
    common::plans::check(&url, &store.db().recorded_statements()).await;
    // Migrations are idempotent: reopening the same database works and keeps the data.
    store.close().await;
    let again = SqlMetaStore::connect(&url).await.unwrap();
    assert!(again.user_by_name("alice").await.unwrap().is_some());
}

/// Runs the suite in a database of its own on the server at `base`.
async fn on_server(base: &str) {
    let db = common::ScratchDb::create(base, "cv_test").await;
    let store = SqlMetaStore::connect_with(&db.url, common::plans::recording())
        .await
        .unwrap();
    suite(Arc::new(store.clone())).await;
    common::plans::check(&db.url, &store.db().recorded_statements()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql() {
    sqlx::any::install_default_drivers();
    match common::service_var("CHUNKVAULT_TEST_MYSQL_URL") {
        Ok(url) => on_server(&url).await,
        Err(_) => {
            eprintln!("CHUNKVAULT_TEST_MYSQL_URL not set: MariaDB run skipped (.ci/run sets it)")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    sqlx::any::install_default_drivers();
    match common::service_var("CHUNKVAULT_TEST_POSTGRES_URL") {
        Ok(url) => on_server(&url).await,
        Err(_) => eprintln!(
            "CHUNKVAULT_TEST_POSTGRES_URL not set: PostgreSQL run skipped (.ci/run sets it)"
        ),
    }
}
