//! Migration 0012 moves every upload session into one table: sessions that were open before
//! the upgrade (REST parts with their parts and claim, tus streams open, deferred or finished)
//! come back through the session store exactly as they were. SQLite always; MariaDB and
//! PostgreSQL when their URLs are set (`.ci/run` sets them).
#![allow(clippy::disallowed_methods)] // tests may block; the engine may not

mod common;

use std::path::Path;

use chunkvault_engine::sessions::{Layout, SessionStore};
use chunkvault_engine::uploads::tus::TusUpload;
use chunkvault_engine::{PartsSession, SqlMetaStore, SqlSessionStore, UploadId, UserId};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Connection};

const PARTS_ID: &str = "0123456789abcdef0123456789abcdef";
const OPEN_TUS: &str = "11111111111111111111111111111111";
const DONE_TUS: &str = "22222222222222222222222222222222";
const FILE_ID: &str = "abcdef0123456789abcd";

/// Brings a new database to the schema before the one-table migration and fills it the way
/// that schema's store did.
async fn before_0012(url: &str, dialect: &str) {
    sqlx::any::install_default_drivers();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let mut migrator = Migrator::new(dir).await.unwrap();
    let old: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 12)
        .cloned()
        .collect();
    assert_eq!(old.len(), 11, "the migrations before 0012");
    migrator.migrations = old.into();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    migrator.run(&mut conn).await.unwrap();
    let sha = "ab".repeat(20);
    for sql in [
        format!(
            "INSERT INTO upload_sessions (id, owner, file_name, size, sha1, chunk_size, \
             chunk_count, created_at, expires_at, hashed_parts, hash_epoch, hash_state, \
             claim_holder, claim_until) VALUES ('{PARTS_ID}', 7, 'a.bin', 600000, '{sha}', \
             262144, 3, 10, 9000000000000, 1, 4, 'state-1', 'h1', 9000000000000)"
        ),
        format!("INSERT INTO upload_parts (upload_id, part, etag) VALUES ('{PARTS_ID}', 1, 'e1')"),
        format!("INSERT INTO upload_parts (upload_id, part, etag) VALUES ('{PARTS_ID}', 3, 'e3')"),
        format!(
            "INSERT INTO tus_uploads (id, owner, file_name, metadata, length, upload_offset, \
             hash_state, created_at, expires_at, file_id, lock_holder, lock_until, concat) \
             VALUES ('{OPEN_TUS}', 7, 't.bin', 'filename dC5iaW4=', NULL, 42, 'st@att', 11, \
             9000000000001, NULL, 'w1', 9000000000000, 'partial')"
        ),
        format!(
            "INSERT INTO tus_uploads (id, owner, file_name, metadata, length, upload_offset, \
             hash_state, created_at, expires_at, file_id, lock_holder, lock_until, concat) \
             VALUES ('{DONE_TUS}', 7, 'd.bin', '', 5, 5, 'st', 12, 9000000000002, \
             '{FILE_ID}', '', 0, '')"
        ),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

async fn check(url: &str, dialect: &str) {
    before_0012(url, dialect).await;
    let meta = SqlMetaStore::connect(url).await.unwrap();
    let store = SqlSessionStore::new(meta.db().clone());
    let id = |s: &str| UploadId::parse(s).unwrap();

    let parts = PartsSession::from_record(store.get(&id(PARTS_ID)).await.unwrap().unwrap())
        .expect("parts stay parts");
    assert_eq!(
        (
            parts.owner,
            parts.file_name.as_str(),
            parts.size,
            parts.chunk_size,
            parts.chunk_count
        ),
        (UserId(7), "a.bin", 600_000, 262_144, 3)
    );
    assert_eq!(parts.sha1.as_str(), "ab".repeat(20));
    assert_eq!(
        (
            parts.hash.parts,
            parts.hash.epoch,
            parts.hash.state.as_str()
        ),
        (1, 4, "state-1")
    );
    let numbers: Vec<u32> = store
        .parts(&parts.id)
        .await
        .unwrap()
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(numbers, vec![1, 3]);
    let now = chunkvault_engine::types::now_millis();
    assert!(
        !store.claim(&parts.id, "h2", now, now + 1).await.unwrap(),
        "the completion claim carries over"
    );

    let open = TusUpload::from_record(store.get(&id(OPEN_TUS)).await.unwrap().unwrap())
        .expect("tus uploads become streams");
    assert_eq!(
        (
            open.length,
            open.offset,
            open.hash_state.as_str(),
            open.metadata.as_str(),
            open.concat.as_str(),
            open.file_id.clone()
        ),
        (None, 42, "st@att", "filename dC5iaW4=", "partial", None)
    );
    assert!(
        !store.claim(&open.id, "w2", now, now + 1).await.unwrap(),
        "the writer's lock carries over as the claim"
    );
    let done = TusUpload::from_record(store.get(&id(DONE_TUS)).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (
            done.length,
            done.offset,
            done.file_id.map(|f| f.as_str().to_owned())
        ),
        (Some(5), 5, Some(FILE_ID.to_owned()))
    );

    let mut listed: Vec<String> = store
        .list(UserId(7))
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            let kind = match s.layout {
                Layout::Parts(_) => "parts",
                Layout::Stream(_) => "stream",
            };
            format!("{kind}:{}", s.id)
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![format!("parts:{PARTS_ID}"), format!("stream:{OPEN_TUS}")],
        "the open sessions of both kinds, not the finished stream"
    );
    meta.close().await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/m.db?mode=rwc", dir.path().display());
    check(&url, "sqlite").await;
}

async fn on_server(env: &str, dialect: &str) {
    let Ok(base) = common::service_var(env) else {
        eprintln!("{env} not set: skipped (.ci/run sets it)");
        return;
    };
    let db = common::ScratchDb::create(&base, "cv_mig").await;
    check(&db.url, dialect).await;
}

#[tokio::test]
async fn mysql() {
    on_server("CHUNKVAULT_TEST_MYSQL_URL", "mysql").await;
}

#[tokio::test]
async fn postgres() {
    on_server("CHUNKVAULT_TEST_POSTGRES_URL", "postgres").await;
}
