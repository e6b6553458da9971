//! Sessions in the SQL database (SQLite by default; MariaDB/PostgreSQL work the same way).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    HashProgress, PartCommit, PartRecord, SessionRecord, SessionStore, TusProgress, TusRecord,
};
use crate::db::{is_unique_violation, text, text_sqlx, Attempt, Db, Dialect};
use crate::error::{Error, Result};
use crate::types::{FileId, Millis, Sha1Hex, UploadId, UserId};
use crate::uploads::Sha1State;

#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    db: Db,
}

const COLS: &str = "id, owner, file_name, size, sha1, chunk_size, chunk_count, created_at, \
                    expires_at, hashed_parts, hash_epoch, hash_state";

fn from_row(row: &AnyRow) -> Result<SessionRecord> {
    let corrupt = |e: Error| Error::backend("session", e.to_string());
    Ok(SessionRecord {
        id: UploadId::parse(&text(row, "id")?).map_err(corrupt)?,
        owner: UserId(row.try_get("owner")?),
        file_name: text(row, "file_name")?,
        size: row.try_get::<i64, _>("size")? as u64,
        sha1: Sha1Hex::parse(&text(row, "sha1")?).map_err(corrupt)?,
        chunk_size: row.try_get::<i64, _>("chunk_size")? as u64,
        chunk_count: row.try_get::<i64, _>("chunk_count")? as u32,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        hash: HashProgress {
            parts: row.try_get::<i64, _>("hashed_parts")? as u32,
            epoch: row.try_get("hash_epoch")?,
            state: text(row, "hash_state")?,
        },
    })
}

const TUS_COLS: &str =
    "id, owner, file_name, metadata, length, upload_offset, hash_state, created_at, \
                        expires_at, file_id, concat";

fn tus_from_row(row: &AnyRow) -> Result<TusRecord> {
    let corrupt = |e: Error| Error::backend("session", e.to_string());
    let file_id = match row.try_get::<Option<String>, _>("file_id") {
        Ok(v) => v,
        Err(_) => row
            .try_get::<Option<Vec<u8>>, _>("file_id")?
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    };
    Ok(TusRecord {
        id: UploadId::parse(&text(row, "id")?).map_err(corrupt)?,
        owner: UserId(row.try_get("owner")?),
        file_name: text(row, "file_name")?,
        metadata: text(row, "metadata")?,
        length: row.try_get::<Option<i64>, _>("length")?.map(|l| l as u64),
        offset: row.try_get::<i64, _>("upload_offset")? as u64,
        hash_state: text(row, "hash_state")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        file_id: file_id
            .map(|f| FileId::parse(&f))
            .transpose()
            .map_err(corrupt)?,
        concat: text(row, "concat")?,
    })
}

impl SqlSessionStore {
    /// Uses the metadata database's pool (its migrations created the session tables).
    pub fn new(db: Db) -> Self {
        SqlSessionStore { db }
    }

    async fn find_open(
        &self,
        owner: UserId,
        sha1: &Sha1Hex,
        size: u64,
    ) -> Result<Option<SessionRecord>> {
        let sql =
            format!("SELECT {COLS} FROM upload_sessions WHERE owner = ? AND sha1 = ? AND size = ?");
        let row = sqlx::query(&self.db.q(&sql))
            .bind(owner.0)
            .bind(sha1.as_str())
            .bind(size as i64)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Takes the `{column}_holder`/`{column}_until` lease of row `id` for `holder` until `until`
    /// when it is free, expired or already `holder`'s: one conditional update, atomic.
    async fn lease(
        &self,
        table: &str,
        column: &str,
        id: &UploadId,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE {table} SET {column}_holder = ?, {column}_until = ? \
             WHERE id = ? AND ({column}_until < ? OR {column}_holder = ?)"
        );
        let res = sqlx::query(&self.db.q(&sql))
            .bind(holder)
            .bind(until)
            .bind(id.as_str())
            .bind(now)
            .bind(holder)
            .execute(&self.db.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn commit_part_attempt(
        &self,
        id: &UploadId,
        part: &PartRecord,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Attempt<PartCommit>, sqlx::Error> {
        // SQLite's write transaction is exclusive already; elsewhere the session row is locked.
        let lock = match self.db.dialect() {
            Dialect::Sqlite => "",
            Dialect::MySql | Dialect::Postgres => " FOR UPDATE",
        };
        let mut tx = self.db.begin().await?;
        let sql =
            format!("SELECT hashed_parts, claim_until FROM upload_sessions WHERE id = ?{lock}");
        let Some(row) = sqlx::query(&self.db.q(&sql))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Attempt::Done(PartCommit::Gone));
        };
        let hashed: i64 = row.try_get("hashed_parts")?;
        let claim_until: i64 = row.try_get("claim_until")?;
        if claim_until >= now {
            return Ok(Attempt::Done(PartCommit::Completing));
        }
        let old = sqlx::query(
            &self
                .db
                .q("SELECT etag FROM upload_parts WHERE upload_id = ? AND part = ?"),
        )
        .bind(id.as_str())
        .bind(i64::from(part.number))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| text_sqlx(&r, "etag"))
        .transpose()?;
        let upsert = self.db.upsert(
            "upload_parts",
            "upload_id, part, etag",
            "upload_id, part",
            &["etag"],
        );
        sqlx::query(&self.db.q(&upsert))
            .bind(id.as_str())
            .bind(i64::from(part.number))
            .bind(part.etag.as_str())
            .execute(&mut *tx)
            .await?;
        let replaced = old.filter(|e| *e != part.etag);
        let sql = match (&replaced, i64::from(part.number) <= hashed) {
            (Some(_), true) => {
                "UPDATE upload_sessions SET expires_at = ?, hash_epoch = hash_epoch + 1, \
                 hashed_parts = 0, hash_state = ? WHERE id = ?"
            }
            (Some(_), false) => {
                "UPDATE upload_sessions SET expires_at = ?, hash_epoch = hash_epoch + 1 WHERE id = ?"
            }
            (None, _) => "UPDATE upload_sessions SET expires_at = ? WHERE id = ?",
        };
        let sql = self.db.q(sql);
        let mut update = sqlx::query(&sql).bind(expires_at);
        if replaced.is_some() && i64::from(part.number) <= hashed {
            update = update.bind(Sha1State::new().save());
        }
        update.bind(id.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Attempt::Done(PartCommit::Committed { replaced }))
    }

    async fn touch(&self, id: &UploadId, expires_at: Millis) -> Result<bool> {
        let res = sqlx::query(
            &self
                .db
                .q("UPDATE upload_sessions SET expires_at = ? WHERE id = ?"),
        )
        .bind(expires_at)
        .bind(id.as_str())
        .execute(&self.db.pool)
        .await?;
        // MySQL counts only changed rows; an unchanged expiry still means "exists".
        Ok(res.rows_affected() > 0 || self.get(id).await?.is_some())
    }
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.db.pool).await?;
        Ok(())
    }

    async fn create_or_resume(&self, new: &SessionRecord) -> Result<(SessionRecord, bool)> {
        for _ in 0..4 {
            if let Some(mut open) = self.find_open(new.owner, &new.sha1, new.size).await? {
                if self.touch(&open.id, new.expires_at).await? {
                    open.expires_at = new.expires_at;
                    return Ok((open, false));
                }
                continue; // deleted in between: try again
            }
            let sql = format!(
                "INSERT INTO upload_sessions ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            );
            let res = sqlx::query(&self.db.q(&sql))
                .bind(new.id.as_str())
                .bind(new.owner.0)
                .bind(new.file_name.as_str())
                .bind(new.size as i64)
                .bind(new.sha1.as_str())
                .bind(new.chunk_size as i64)
                .bind(i64::from(new.chunk_count))
                .bind(new.created_at)
                .bind(new.expires_at)
                .bind(i64::from(new.hash.parts))
                .bind(new.hash.epoch)
                .bind(new.hash.state.as_str())
                .execute(&self.db.pool)
                .await;
            match res {
                Ok(_) => return Ok((new.clone(), true)),
                // A concurrent init of the same file won: resume that one.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Busy)
    }

    async fn get(&self, id: &UploadId) -> Result<Option<SessionRecord>> {
        let sql = format!("SELECT {COLS} FROM upload_sessions WHERE id = ?");
        let row = sqlx::query(&self.db.q(&sql))
            .bind(id.as_str())
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>> {
        let rows = sqlx::query(
            &self
                .db
                .q("SELECT part, etag FROM upload_parts WHERE upload_id = ? ORDER BY part"),
        )
        .bind(id.as_str())
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PartRecord {
                    number: r.try_get::<i64, _>("part")? as u32,
                    etag: text(r, "etag")?,
                })
            })
            .collect()
    }

    async fn list(&self, owner: UserId) -> Result<Vec<SessionRecord>> {
        let sql =
            format!("SELECT {COLS} FROM upload_sessions WHERE owner = ? ORDER BY created_at, id");
        let rows = sqlx::query(&self.db.q(&sql))
            .bind(owner.0)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    async fn commit_part(
        &self,
        id: &UploadId,
        part: &PartRecord,
        now: Millis,
        expires_at: Millis,
    ) -> Result<PartCommit> {
        self.db
            .retrying(|| self.commit_part_attempt(id, part, now, expires_at))
            .await
    }

    async fn advance_hash(
        &self,
        id: &UploadId,
        from: &HashProgress,
        parts: u32,
        state: &str,
    ) -> Result<bool> {
        let res = sqlx::query(&self.db.q(
            "UPDATE upload_sessions SET hashed_parts = ?, hash_state = ? \
             WHERE id = ? AND hashed_parts = ? AND hash_epoch = ?",
        ))
        .bind(i64::from(parts))
        .bind(state)
        .bind(id.as_str())
        .bind(i64::from(from.parts))
        .bind(from.epoch)
        .execute(&self.db.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn claim(&self, id: &UploadId, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        self.lease("upload_sessions", "claim", id, holder, now, until)
            .await
    }

    async fn delete(&self, id: &UploadId) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let res = sqlx::query(&self.db.q("DELETE FROM upload_sessions WHERE id = ?"))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(&self.db.q("DELETE FROM upload_parts WHERE upload_id = ?"))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<SessionRecord>> {
        let sql = format!(
            "SELECT {COLS} FROM upload_sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
        );
        let rows = sqlx::query(&self.db.q(&sql))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    async fn put_result(
        &self,
        id: &UploadId,
        owner: UserId,
        file: &FileId,
        until: Millis,
    ) -> Result<()> {
        let upsert = self.db.upsert(
            "upload_results",
            "id, owner, file_id, keep_until",
            "id",
            &["file_id", "keep_until"],
        );
        sqlx::query(&self.db.q(&upsert))
            .bind(id.as_str())
            .bind(owner.0)
            .bind(file.as_str())
            .bind(until)
            .execute(&self.db.pool)
            .await?;
        sqlx::query(&self.db.q("DELETE FROM upload_results WHERE keep_until < ?"))
            .bind(crate::types::now_millis())
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    async fn tus_create(&self, r: &TusRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO tus_uploads ({TUS_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        sqlx::query(&self.db.q(&sql))
            .bind(r.id.as_str())
            .bind(r.owner.0)
            .bind(r.file_name.as_str())
            .bind(r.metadata.as_str())
            .bind(r.length.map(|l| l as i64))
            .bind(r.offset as i64)
            .bind(r.hash_state.as_str())
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(r.file_id.as_ref().map(|f| f.as_str().to_owned()))
            .bind(r.concat.as_str())
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    async fn tus_get(&self, id: &UploadId) -> Result<Option<TusRecord>> {
        let sql = format!("SELECT {TUS_COLS} FROM tus_uploads WHERE id = ?");
        let row = sqlx::query(&self.db.q(&sql))
            .bind(id.as_str())
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(tus_from_row).transpose()
    }

    async fn tus_update(
        &self,
        id: &UploadId,
        expect_offset: u64,
        holder: &str,
        to: &TusProgress,
    ) -> Result<bool> {
        let res = sqlx::query(&self.db.q(
            "UPDATE tus_uploads SET upload_offset = ?, length = COALESCE(length, ?), hash_state = ?, \
             expires_at = ?, file_id = ? WHERE id = ? AND upload_offset = ? AND lock_holder = ?",
        ))
        .bind(to.offset as i64)
        .bind(to.length.map(|l| l as i64))
        .bind(to.hash_state.as_str())
        .bind(to.expires_at)
        .bind(to.file_id.as_ref().map(|f| f.as_str().to_owned()))
        .bind(id.as_str())
        .bind(expect_offset as i64)
        .bind(holder)
        .execute(&self.db.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn tus_lock(
        &self,
        id: &UploadId,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        self.lease("tus_uploads", "lock", id, holder, now, until)
            .await
    }

    async fn tus_unlock(&self, id: &UploadId, holder: &str) -> Result<()> {
        sqlx::query(
            &self
                .db
                .q("UPDATE tus_uploads SET lock_until = 0 WHERE id = ? AND lock_holder = ?"),
        )
        .bind(id.as_str())
        .bind(holder)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    async fn tus_open(&self, owner: UserId) -> Result<u64> {
        let row = sqlx::query(
            &self
                .db
                .q("SELECT COUNT(*) AS n FROM tus_uploads WHERE owner = ? AND file_id IS NULL"),
        )
        .bind(owner.0)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }

    async fn tus_delete(&self, id: &UploadId) -> Result<bool> {
        let res = sqlx::query(&self.db.q("DELETE FROM tus_uploads WHERE id = ?"))
            .bind(id.as_str())
            .execute(&self.db.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn tus_expired(&self, now: Millis, limit: u32) -> Result<Vec<TusRecord>> {
        let sql = format!(
            "SELECT {TUS_COLS} FROM tus_uploads WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
        );
        let rows = sqlx::query(&self.db.q(&sql))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(tus_from_row).collect()
    }

    async fn result(&self, id: &UploadId, now: Millis) -> Result<Option<(UserId, FileId)>> {
        let row = sqlx::query(
            &self
                .db
                .q("SELECT owner, file_id FROM upload_results WHERE id = ? AND keep_until >= ?"),
        )
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let file = FileId::parse(&text(&r, "file_id")?)
            .map_err(|e| Error::backend("session", e.to_string()))?;
        Ok(Some((UserId(r.try_get("owner")?), file)))
    }
}
