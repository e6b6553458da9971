//! `MetaStore` over sqlx for SQLite, MySQL/MariaDB and PostgreSQL.
//!
//! One implementation over `sqlx::Any`: queries are written with `?` placeholders and rewritten
//! to `$n` for PostgreSQL; the few statements that differ between dialects are chosen by
//! `Dialect`. Each dialect has its own migrations under `engine/migrations/<dialect>`.

use std::borrow::Cow;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{
    AccountStore, BlobRecord, ChallengeRecord, CursorKey, FileIndex, FileOrder, FileQuery, GcEntry,
    MetaStore, NewBlob, NewUserFile, OutboxEntry, ProofStore, Published, Settings, UserFile,
    UserRecord,
};
use crate::error::{Error, Result};
use crate::types::{FileId, FileName, Millis, Sha1Hex, UserId, Username};

mod accounts;
mod files;
mod proofs;

pub use crate::db::Dialect;
use crate::db::{is_unique_violation, text, text_sqlx, Attempt, Db, SWEEP_BATCH, TRIM_BATCH};

#[derive(Debug, Clone)]
pub struct SqlMetaStore {
    db: Db,
}

const USER_FILE_COLS: &str = "id, user_id, sha1, name, size, uploaded_at, updated_at";

fn user_file_from_row(row: &AnyRow) -> Result<UserFile> {
    Ok(UserFile {
        id: FileId::parse(&text(row, "id")?).map_err(|e| Error::backend("sql", e.to_string()))?,
        user_id: UserId(row.try_get("user_id")?),
        sha1: sha1_from_db(&text(row, "sha1")?)?,
        name: text(row, "name")?,
        size: row.try_get::<i64, _>("size")? as u64,
        uploaded_at: row.try_get("uploaded_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn sha1_from_db(s: &str) -> Result<Sha1Hex> {
    Sha1Hex::parse(s.trim_end()).map_err(|e| Error::backend("sql", e.to_string()))
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(row.try_get("id")?),
        username: text(row, "username")?,
        password_hash: text(row, "password_hash")?,
        created_at: row.try_get("created_at")?,
        last_active_at: row.try_get("last_active_at")?,
    })
}

impl SqlMetaStore {
    /// Runs a `Db::delete_batch` statement (one bind, then the batch size) until a batch comes
    /// back short; each batch is its own short write, so requests interleave. Returns the rows.
    async fn delete_in_batches(&self, sql: &str, bound: Millis) -> Result<u64> {
        let sql = self.q(sql);
        let mut deleted = 0;
        loop {
            let started = std::time::Instant::now();
            let n = sqlx::query(&sql)
                .bind(bound)
                .bind(SWEEP_BATCH)
                .execute(self.db.writer())
                .await?
                .rows_affected();
            deleted += n;
            if n < SWEEP_BATCH as u64 {
                return Ok(deleted);
            }
            self.db.checkpoint().await?;
            crate::db::pace(started).await;
        }
    }

    /// Connects and runs the migrations of the URL's dialect.
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(SqlMetaStore {
            db: Db::connect(url).await?,
        })
    }

    /// `connect` with pool options.
    pub async fn connect_with(url: &str, options: crate::db::DbOptions) -> Result<Self> {
        Ok(SqlMetaStore {
            db: Db::connect_with(url, options).await?,
        })
    }

    /// The connection, shared with the SQL session store (same database).
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect
    }

    pub async fn close(&self) {
        self.db.close().await
    }

    fn q<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        self.db.q(sql)
    }

    fn insert_or_ignore(&self, table: &str, cols: &str) -> String {
        self.db.insert_or_ignore(table, cols)
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.db.begin().await
    }

    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, sqlx::Error>>,
    {
        self.db.retrying(attempt).await
    }
}

#[async_trait]
impl Settings for SqlMetaStore {
    async fn setting_or_init(&self, name: &str, init: &str) -> Result<String> {
        let insert = self.insert_or_ignore("settings", "name, value");
        sqlx::query(&self.q(&insert))
            .bind(name)
            .bind(init)
            .execute(self.db.writer())
            .await?;
        let row = sqlx::query(&self.q("SELECT value FROM settings WHERE name = ?"))
            .bind(name)
            .fetch_one(&self.db.pool)
            .await?;
        text(&row, "value")
    }
}

#[async_trait]
impl MetaStore for SqlMetaStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.db.pool).await?;
        Ok(())
    }

    async fn optimize(&self) -> Result<()> {
        self.db.optimize().await
    }
}

fn blob_record(r: &AnyRow) -> Result<BlobRecord> {
    Ok(BlobRecord {
        sha1: sha1_from_db(&text(r, "sha1")?)?,
        size: r.try_get::<i64, _>("size")? as u64,
        store: text(r, "store")?,
        key: text(r, "location")?,
        refcount: r.try_get("refcount")?,
        created_at: r.try_get("created_at")?,
        quarantined: r.try_get::<i64, _>("quarantined")? != 0,
    })
}
