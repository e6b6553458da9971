//! Sessions in the SQL database (SQLite by default; MariaDB/PostgreSQL work the same way).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    stored_digest, HashProgress, Layout, PartCommit, PartRecord, PartsLayout, SessionRecord,
    SessionStore, StreamLayout, StreamProgress,
};
use crate::db::{is_unique_violation, text, text_sqlx, Attempt, Db, Dialect};
use crate::error::{Error, Result};
use crate::types::{FileId, Millis, Sha1Hex, UploadId, UserId};
use crate::uploads::Sha1State;

#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    db: Db,
}

const COLS: &str = "id, owner, file_name, created_at, expires_at, layout, size, sha1, \
                    chunk_size, chunk_count, hashed_parts, hash_epoch, hash_state, \
                    upload_offset, file_id, metadata, concat, repr_digest";

const PARTS: &str = "parts";
const STREAM: &str = "stream";

/// A nullable text column (MySQL may hand `CHAR` columns back as bytes).
fn optional_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(match row.try_get::<Option<String>, _>(col) {
        Ok(v) => v,
        Err(_) => row
            .try_get::<Option<Vec<u8>>, _>(col)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    })
}

fn from_row(row: &AnyRow) -> Result<SessionRecord> {
    let corrupt = |e: Error| Error::backend("session", e.to_string());
    let size = row.try_get::<Option<i64>, _>("size")?.map(|s| s as u64);
    let layout = match text(row, "layout")?.as_str() {
        PARTS => Layout::Parts(PartsLayout {
            size: size.ok_or_else(|| Error::backend("session", "a parts session without size"))?,
            sha1: Sha1Hex::parse(&optional_text(row, "sha1")?.unwrap_or_default())
                .map_err(corrupt)?,
            chunk_size: row.try_get::<i64, _>("chunk_size")? as u64,
            chunk_count: row.try_get::<i64, _>("chunk_count")? as u32,
            hash: HashProgress {
                parts: row.try_get::<i64, _>("hashed_parts")? as u32,
                epoch: row.try_get("hash_epoch")?,
                state: text(row, "hash_state")?,
            },
        }),
        STREAM => Layout::Stream(StreamLayout {
            length: size,
            offset: row.try_get::<i64, _>("upload_offset")? as u64,
            hash_state: text(row, "hash_state")?,
            file_id: optional_text(row, "file_id")?
                .map(|f| FileId::parse(&f))
                .transpose()
                .map_err(corrupt)?,
            metadata: text(row, "metadata")?,
            concat: text(row, "concat")?,
            digest: stored_digest(&text(row, "repr_digest")?)?,
        }),
        other => {
            return Err(Error::backend(
                "session",
                format!("unknown session layout {other:?}"),
            ))
        }
    };
    Ok(SessionRecord {
        id: UploadId::parse(&text(row, "id")?).map_err(corrupt)?,
        owner: UserId(row.try_get("owner")?),
        file_name: text(row, "file_name")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        layout,
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
        let sql = format!("SELECT {COLS} FROM uploads WHERE owner = ? AND sha1 = ? AND size = ?");
        let row = sqlx::query(&self.db.q(&sql))
            .bind(owner.0)
            .bind(sha1.as_str())
            .bind(size as i64)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn insert(&self, r: &SessionRecord) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO uploads ({COLS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let sql = self.db.q(&sql);
        let q = sqlx::query(&sql)
            .bind(r.id.as_str())
            .bind(r.owner.0)
            .bind(r.file_name.as_str())
            .bind(r.created_at)
            .bind(r.expires_at);
        let q = match &r.layout {
            Layout::Parts(p) => q
                .bind(PARTS)
                .bind(Some(p.size as i64))
                .bind(Some(p.sha1.as_str().to_owned()))
                .bind(p.chunk_size as i64)
                .bind(i64::from(p.chunk_count))
                .bind(i64::from(p.hash.parts))
                .bind(p.hash.epoch)
                .bind(p.hash.state.clone())
                .bind(0_i64)
                .bind(None::<String>)
                .bind("")
                .bind("")
                .bind(""),
            Layout::Stream(t) => q
                .bind(STREAM)
                .bind(t.length.map(|l| l as i64))
                .bind(None::<String>)
                .bind(0_i64)
                .bind(0_i64)
                .bind(0_i64)
                .bind(0_i64)
                .bind(t.hash_state.clone())
                .bind(t.offset as i64)
                .bind(t.file_id.as_ref().map(|f| f.as_str().to_owned()))
                .bind(t.metadata.as_str())
                .bind(t.concat.as_str())
                .bind(t.digest.map(|d| d.encode()).unwrap_or_default()),
        };
        q.execute(self.db.writer()).await?;
        Ok(())
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
            format!("SELECT layout, hashed_parts, claim_until FROM uploads WHERE id = ?{lock}");
        let Some(row) = sqlx::query(&self.db.q(&sql))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Attempt::Done(PartCommit::Gone));
        };
        if text_sqlx(&row, "layout")? != PARTS {
            return Ok(Attempt::Done(PartCommit::Gone));
        }
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
                "UPDATE uploads SET expires_at = ?, hash_epoch = hash_epoch + 1, \
                 hashed_parts = 0, hash_state = ? WHERE id = ?"
            }
            (Some(_), false) => {
                "UPDATE uploads SET expires_at = ?, hash_epoch = hash_epoch + 1 WHERE id = ?"
            }
            (None, _) => "UPDATE uploads SET expires_at = ? WHERE id = ?",
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
        let res = sqlx::query(&self.db.q("UPDATE uploads SET expires_at = ? WHERE id = ?"))
            .bind(expires_at)
            .bind(id.as_str())
            .execute(self.db.writer())
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
            if let Layout::Parts(p) = &new.layout {
                if let Some(mut open) = self.find_open(new.owner, &p.sha1, p.size).await? {
                    if self.touch(&open.id, new.expires_at).await? {
                        open.expires_at = new.expires_at;
                        return Ok((open, false));
                    }
                    continue; // deleted in between: try again
                }
            }
            match self.insert(new).await {
                Ok(_) => return Ok((new.clone(), true)),
                // A concurrent init of the same file won: resume that one.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Busy)
    }

    async fn get(&self, id: &UploadId) -> Result<Option<SessionRecord>> {
        let sql = format!("SELECT {COLS} FROM uploads WHERE id = ?");
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
            format!("SELECT {COLS} FROM uploads WHERE owner = ? AND file_id IS NULL ORDER BY created_at, id");
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
        let res = sqlx::query(
            &self
                .db
                .q("UPDATE uploads SET hashed_parts = ?, hash_state = ? \
             WHERE id = ? AND layout = 'parts' AND hashed_parts = ? AND hash_epoch = ?"),
        )
        .bind(i64::from(parts))
        .bind(state)
        .bind(id.as_str())
        .bind(i64::from(from.parts))
        .bind(from.epoch)
        .execute(self.db.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn append(
        &self,
        id: &UploadId,
        expect_offset: u64,
        holder: &str,
        to: &StreamProgress,
    ) -> Result<bool> {
        // Only the columns that change are set: an append of a known-length upload touches
        // no index but the expiry's.
        let mut set = String::from("upload_offset = ?, hash_state = ?, expires_at = ?");
        if to.length.is_some() {
            set.push_str(", size = COALESCE(size, ?)");
        }
        if to.file_id.is_some() {
            set.push_str(", file_id = ?");
        }
        if to.digest.is_some() {
            set.push_str(", repr_digest = ?");
        }
        let sql = format!(
            "UPDATE uploads SET {set} \
             WHERE id = ? AND layout = 'stream' AND upload_offset = ? AND claim_holder = ?"
        );
        let sql = self.db.q(&sql);
        let mut q = sqlx::query(&sql)
            .bind(to.offset as i64)
            .bind(to.hash_state.as_str())
            .bind(to.expires_at);
        if let Some(l) = to.length {
            q = q.bind(l as i64);
        }
        if let Some(f) = &to.file_id {
            q = q.bind(f.as_str().to_owned());
        }
        if let Some(d) = &to.digest {
            q = q.bind(d.encode());
        }
        let res = q
            .bind(id.as_str())
            .bind(expect_offset as i64)
            .bind(holder)
            .execute(self.db.writer())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn claim(&self, id: &UploadId, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        let res = sqlx::query(
            &self
                .db
                .q("UPDATE uploads SET claim_holder = ?, claim_until = ? \
             WHERE id = ? AND (claim_until < ? OR claim_holder = ?)"),
        )
        .bind(holder)
        .bind(until)
        .bind(id.as_str())
        .bind(now)
        .bind(holder)
        .execute(self.db.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn delete(&self, id: &UploadId) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let res = sqlx::query(&self.db.q("DELETE FROM uploads WHERE id = ?"))
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
        // Called once per batch of the expiry sweep.
        self.db.checkpoint().await?;
        let sql =
            format!("SELECT {COLS} FROM uploads WHERE expires_at <= ? ORDER BY expires_at LIMIT ?");
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
            .execute(self.db.writer())
            .await?;
        let trim = self
            .db
            .delete_batch("upload_results", "keep_until < ?", "keep_until");
        sqlx::query(&self.db.q(&trim))
            .bind(crate::types::now_millis())
            .bind(crate::db::TRIM_BATCH)
            .execute(self.db.writer())
            .await?;
        Ok(())
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
