//! The dedup index in SQL: blobs, user files, the deletion queue. Changes that touch several
//! rows run in one transaction, retried on serialization failures.

use super::*;

impl SqlMetaStore {
    async fn find_named_file(
        &self,
        tx: &mut Transaction<'static, Any>,
        file: &NewUserFile,
    ) -> Result<Option<UserFile>, sqlx::Error> {
        let sql = format!(
            "SELECT {USER_FILE_COLS} FROM user_files WHERE user_id = ? AND sha1 = ? AND name = ?"
        );
        let row = sqlx::query(&self.q(&sql))
            .bind(file.user_id.0)
            .bind(file.sha1.as_str())
            .bind(file.name.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        row.map(|r| user_file_from_row(&r).map_err(|e| sqlx::Error::Decode(e.into())))
            .transpose()
    }

    /// Inserts the user file row; `None` when a concurrent insert of the same (user, sha1,
    /// name) won, so the caller retries and finds it.
    async fn insert_user_file(
        &self,
        tx: &mut Transaction<'static, Any>,
        file: &NewUserFile,
    ) -> Result<Option<UserFile>, sqlx::Error> {
        let id = FileId::generate();
        let sql = format!("INSERT INTO user_files ({USER_FILE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)");
        let res = sqlx::query(&self.q(&sql))
            .bind(id.as_str())
            .bind(file.user_id.0)
            .bind(file.sha1.as_str())
            .bind(file.name.as_str())
            .bind(file.size as i64)
            .bind(file.now)
            .bind(file.now)
            .execute(&mut **tx)
            .await;
        match res {
            Ok(_) => Ok(Some(UserFile {
                id,
                user_id: file.user_id,
                sha1: file.sha1.clone(),
                name: file.name.as_str().to_owned(),
                size: file.size,
                uploaded_at: file.now,
                updated_at: file.now,
            })),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn add_reference(
        &self,
        tx: &mut Transaction<'static, Any>,
        sha1: &Sha1Hex,
    ) -> Result<bool, sqlx::Error> {
        let res = sqlx::query(&self.q("UPDATE blobs SET refcount = refcount + 1 WHERE sha1 = ?"))
            .bind(sha1.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn link_attempt(
        &self,
        file: &NewUserFile,
    ) -> Result<Attempt<Option<UserFile>>, sqlx::Error> {
        let mut tx = self.begin().await?;
        if let Some(existing) = self.find_named_file(&mut tx, file).await? {
            tx.rollback().await?;
            return Ok(Attempt::Done(Some(existing)));
        }
        // Quarantined content is linked to nobody.
        let linked = sqlx::query(
            &self.q("UPDATE blobs SET refcount = refcount + 1 WHERE sha1 = ? AND quarantined = 0"),
        )
        .bind(file.sha1.as_str())
        .execute(&mut *tx)
        .await?;
        if linked.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Attempt::Done(None));
        }
        match self.insert_user_file(&mut tx, file).await? {
            Some(created) => {
                tx.commit().await?;
                Ok(Attempt::Done(Some(created)))
            }
            None => {
                tx.rollback().await?;
                Ok(Attempt::Retry)
            }
        }
    }

    async fn publish_attempt(
        &self,
        blob: &NewBlob,
        file: &NewUserFile,
    ) -> Result<Attempt<Published>, sqlx::Error> {
        let mut tx = self.begin().await?;
        if let Some(existing) = self.find_named_file(&mut tx, file).await? {
            tx.rollback().await?;
            return Ok(Attempt::Done(Published::Deduplicated(existing)));
        }
        let insert =
            self.insert_or_ignore("blobs", "sha1, size, store, location, refcount, created_at");
        let inserted = sqlx::query(&self.q(&insert))
            .bind(file.sha1.as_str())
            .bind(file.size as i64)
            .bind(blob.store.as_str())
            .bind(blob.key.as_str())
            .bind(1i64)
            .bind(file.now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        // Someone else's copy of this content is already indexed: reference it instead. If it
        // vanished in between (its last owner deleted it), run again and insert ours.
        if !inserted && !self.add_reference(&mut tx, &file.sha1).await? {
            tx.rollback().await?;
            return Ok(Attempt::Retry);
        }
        if let (true, Some(job)) = (inserted, &blob.transfer) {
            // The blob's move is written with the blob: committed together or not at all.
            let insert =
                self.insert_or_ignore("transfer_outbox", "sha1, to_store, due_at, created_at");
            sqlx::query(&self.q(&insert))
                .bind(job.sha1.as_str())
                .bind(job.to.as_str())
                .bind(job.due_at)
                .bind(file.now)
                .execute(&mut *tx)
                .await?;
        }
        match self.insert_user_file(&mut tx, file).await? {
            Some(created) => {
                tx.commit().await?;
                Ok(Attempt::Done(if inserted {
                    Published::Created(created)
                } else {
                    Published::Deduplicated(created)
                }))
            }
            None => {
                tx.rollback().await?;
                Ok(Attempt::Retry)
            }
        }
    }

    async fn delete_attempt(
        &self,
        user: UserId,
        id: &FileId,
    ) -> Result<Attempt<Result<Option<GcEntry>>>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let sql = format!("SELECT {USER_FILE_COLS} FROM user_files WHERE id = ? AND user_id = ?");
        let Some(row) = sqlx::query(&self.q(&sql))
            .bind(id.as_str())
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(Attempt::Done(Err(Error::NotFound { what: "file" })));
        };
        let sha1 = text_sqlx(&row, "sha1")?;
        let deleted = sqlx::query(&self.q("DELETE FROM user_files WHERE id = ? AND user_id = ?"))
            .bind(id.as_str())
            .bind(user.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted != 1 {
            // Deleted concurrently by another request of the same user.
            tx.rollback().await?;
            return Ok(Attempt::Done(Err(Error::NotFound { what: "file" })));
        }
        sqlx::query(&self.q("UPDATE blobs SET refcount = refcount - 1 WHERE sha1 = ?"))
            .bind(sha1.as_str())
            .execute(&mut *tx)
            .await?;
        // The row is locked by our update, so this read sees every committed reference change.
        let blob =
            sqlx::query(&self.q("SELECT store, location, refcount FROM blobs WHERE sha1 = ?"))
                .bind(sha1.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let refcount: i64 = blob.try_get("refcount")?;
        let mut gc = None;
        if refcount <= 0 {
            let entry = GcEntry {
                store: text_sqlx(&blob, "store")?,
                key: text_sqlx(&blob, "location")?,
            };
            sqlx::query(&self.q("DELETE FROM blobs WHERE sha1 = ? AND refcount <= 0"))
                .bind(sha1.as_str())
                .execute(&mut *tx)
                .await?;
            let insert = self.insert_or_ignore("blob_gc", "store, location, created_at");
            sqlx::query(&self.q(&insert))
                .bind(entry.store.as_str())
                .bind(entry.key.as_str())
                .bind(crate::types::now_millis())
                .execute(&mut *tx)
                .await?;
            gc = Some(entry);
        }
        tx.commit().await?;
        Ok(Attempt::Done(Ok(gc)))
    }

    async fn rename_attempt(
        &self,
        user: UserId,
        id: &FileId,
        name: &FileName,
        now: Millis,
    ) -> Result<Attempt<Result<UserFile>>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let res = sqlx::query(
            &self.q("UPDATE user_files SET name = ?, updated_at = ? WHERE id = ? AND user_id = ?"),
        )
        .bind(name.as_str())
        .bind(now)
        .bind(id.as_str())
        .bind(user.0)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                return Ok(Attempt::Done(Err(Error::NameTaken)));
            }
            Err(e) => return Err(e),
        }
        // MySQL reports 0 affected rows when the name did not change, so read back instead.
        let sql = format!("SELECT {USER_FILE_COLS} FROM user_files WHERE id = ? AND user_id = ?");
        let row = sqlx::query(&self.q(&sql))
            .bind(id.as_str())
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Attempt::Done(match row {
            Some(r) => user_file_from_row(&r),
            None => Err(Error::NotFound { what: "file" }),
        }))
    }
}

#[async_trait]
impl FileIndex for SqlMetaStore {
    async fn blob(&self, sha1: &Sha1Hex) -> Result<Option<BlobRecord>> {
        let row = sqlx::query(&self.q(
            "SELECT sha1, size, store, location, refcount, created_at, quarantined FROM blobs WHERE sha1 = ?",
        ))
        .bind(sha1.as_str())
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(blob_record).transpose()
    }

    async fn link_existing(&self, file: &NewUserFile) -> Result<Option<UserFile>> {
        self.retrying(|| self.link_attempt(file)).await
    }

    async fn publish(&self, blob: &NewBlob, file: &NewUserFile) -> Result<Published> {
        self.retrying(|| self.publish_attempt(blob, file)).await
    }

    async fn user_file(
        &self,
        user: UserId,
        sha1: &Sha1Hex,
        id: Option<&FileId>,
    ) -> Result<Option<UserFile>> {
        let row = match id {
            Some(id) => {
                let sql = format!(
                    "SELECT {USER_FILE_COLS} FROM user_files WHERE user_id = ? AND sha1 = ? AND id = ?"
                );
                sqlx::query(&self.q(&sql))
                    .bind(user.0)
                    .bind(sha1.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.db.pool)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {USER_FILE_COLS} FROM user_files WHERE user_id = ? AND sha1 = ? \
                     ORDER BY uploaded_at DESC, id DESC LIMIT 1"
                );
                sqlx::query(&self.q(&sql))
                    .bind(user.0)
                    .bind(sha1.as_str())
                    .fetch_optional(&self.db.pool)
                    .await?
            }
        };
        row.as_ref().map(user_file_from_row).transpose()
    }

    async fn user_file_by_id(&self, id: &FileId) -> Result<Option<UserFile>> {
        let sql = format!("SELECT {USER_FILE_COLS} FROM user_files WHERE id = ?");
        let row = sqlx::query(&self.q(&sql))
            .bind(id.as_str())
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(user_file_from_row).transpose()
    }

    async fn list_user_files(&self, user: UserId, query: &FileQuery) -> Result<Vec<UserFile>> {
        let (key, order) = match query.order {
            FileOrder::Newest | FileOrder::Oldest => ("uploaded_at", query.order),
            FileOrder::Name | FileOrder::NameDesc => ("name", query.order),
            FileOrder::Largest | FileOrder::Smallest => ("size", query.order),
        };
        let (dir, cmp) = if order.descending() {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let order_by = format!("{key} {dir}, id {dir}");
        let mut filter = String::new();
        // '!' escapes LIKE's wildcards: the one escape character the three dialects read alike.
        if query.name_contains.is_some() {
            filter.push_str(" AND LOWER(name) LIKE ? ESCAPE '!'");
        }
        // Keyset: the rows after the cursor's (key, id), an index search starting where it
        // points. SQLite and PostgreSQL seek on a row-value comparison; MariaDB's range
        // optimiser reads the expanded form (the leading `>=` bounds the range by itself).
        let row_values = self.db.dialect() != Dialect::MySql;
        if query.after.is_some() {
            filter.push_str(&if row_values {
                format!(" AND ({key}, id) {cmp} (?, ?)")
            } else {
                format!(" AND {key} {cmp}= ? AND ({key} {cmp} ? OR ({key} = ? AND id {cmp} ?))")
            });
        }
        let offset = query.offset.min(i64::MAX as u64) as i64;
        let sql = if offset > 0 {
            // A deep OFFSET (the classic routes' paging) skips entries of the covering index
            // (user_id, key, id) only; the page's rows are then read by id.
            format!(
                "SELECT {cols} FROM user_files f JOIN (SELECT id AS page_id FROM user_files \
                 WHERE user_id = ?{filter} ORDER BY {order_by} LIMIT ? OFFSET ?) page \
                 ON f.id = page.page_id ORDER BY f.{key} {dir}, f.id {dir}",
                cols = USER_FILE_COLS
                    .split(", ")
                    .map(|c| format!("f.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "SELECT {USER_FILE_COLS} FROM user_files WHERE user_id = ?{filter} \
                 ORDER BY {order_by} LIMIT ?"
            )
        };
        let sql = self.q(&sql);
        let mut q = sqlx::query(&sql).bind(user.0);
        if let Some(text) = &query.name_contains {
            q = q.bind(like_containing(text));
        }
        if let Some(after) = &query.after {
            for _ in 0..if row_values { 1 } else { 3 } {
                q = match &after.key {
                    CursorKey::Int(n) => q.bind(*n),
                    CursorKey::Text(t) => q.bind(t.clone()),
                };
            }
            q = q.bind(after.id.as_str().to_owned());
        }
        q = q.bind(i64::from(query.limit));
        if offset > 0 {
            q = q.bind(offset);
        }
        let rows = q.fetch_all(&self.db.pool).await?;
        rows.iter().map(user_file_from_row).collect()
    }

    async fn rename_user_file(
        &self,
        user: UserId,
        id: &FileId,
        name: &FileName,
        now: Millis,
    ) -> Result<UserFile> {
        self.retrying(|| self.rename_attempt(user, id, name, now))
            .await?
    }

    async fn delete_user_file(&self, user: UserId, id: &FileId) -> Result<Option<GcEntry>> {
        self.retrying(|| self.delete_attempt(user, id)).await?
    }

    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(&self.q(
            "SELECT sha1, to_store, due_at FROM transfer_outbox ORDER BY due_at, sha1, to_store LIMIT ?",
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEntry {
                    sha1: sha1_from_db(&text(r, "sha1")?)?,
                    to: text(r, "to_store")?,
                    due_at: r.try_get("due_at")?,
                })
            })
            .collect()
    }

    async fn outbox_done(&self, entry: &OutboxEntry) -> Result<()> {
        sqlx::query(&self.q("DELETE FROM transfer_outbox WHERE sha1 = ? AND to_store = ?"))
            .bind(entry.sha1.as_str())
            .bind(entry.to.as_str())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn gc_pending(&self, limit: u32) -> Result<Vec<GcEntry>> {
        let rows = sqlx::query(
            &self.q("SELECT store, location FROM blob_gc ORDER BY created_at, location LIMIT ?"),
        )
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GcEntry {
                    store: text(r, "store")?,
                    key: text(r, "location")?,
                })
            })
            .collect()
    }

    async fn gc_done(&self, entry: &GcEntry) -> Result<()> {
        sqlx::query(&self.q("DELETE FROM blob_gc WHERE store = ? AND location = ?"))
            .bind(entry.store.as_str())
            .bind(entry.key.as_str())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn gc_later(&self, entry: &GcEntry, at: Millis) -> Result<()> {
        sqlx::query(&self.q("UPDATE blob_gc SET created_at = ? WHERE store = ? AND location = ?"))
            .bind(at)
            .bind(entry.store.as_str())
            .bind(entry.key.as_str())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn user_usage(&self, user: UserId) -> Result<u64> {
        // SUM is DECIMAL on MySQL and NUMERIC on PostgreSQL: back to a 64-bit integer.
        let int = match self.db.dialect() {
            Dialect::MySql => "SIGNED",
            Dialect::Sqlite | Dialect::Postgres => "BIGINT",
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(size), 0) AS {int}) AS n FROM user_files WHERE user_id = ?"
        );
        let row = sqlx::query(&self.q(&sql))
            .bind(user.0)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }

    async fn move_blob(&self, sha1: &Sha1Hex, from: &GcEntry, to: &GcEntry) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(&self.q(
            "UPDATE blobs SET store = ?, location = ? WHERE sha1 = ? AND store = ? AND location = ?",
        ))
        .bind(to.store.as_str())
        .bind(to.key.as_str())
        .bind(sha1.as_str())
        .bind(from.store.as_str())
        .bind(from.key.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // The source is unreferenced from this commit on: queued for deletion with it.
        let insert = self.insert_or_ignore("blob_gc", "store, location, created_at");
        sqlx::query(&self.q(&insert))
            .bind(from.store.as_str())
            .bind(from.key.as_str())
            .bind(crate::types::now_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn blobs_in_store(
        &self,
        store: &str,
        after: Option<&Sha1Hex>,
        limit: u32,
    ) -> Result<Vec<BlobRecord>> {
        let rows = sqlx::query(&self.q(
            "SELECT sha1, size, store, location, refcount, created_at, quarantined FROM blobs \
             WHERE store = ? AND sha1 > ? ORDER BY sha1 LIMIT ?",
        ))
        .bind(store)
        .bind(after.map(Sha1Hex::as_str).unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(blob_record).collect()
    }

    async fn blob_by_key(&self, store: &str, key: &str) -> Result<bool> {
        let row = sqlx::query(
            &self.q("SELECT COUNT(*) AS n FROM blobs WHERE store = ? AND location = ?"),
        )
        .bind(store)
        .bind(key)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    async fn quarantine_blob(&self, sha1: &Sha1Hex, key: &str) -> Result<bool> {
        let res = sqlx::query(&self.q(
            "UPDATE blobs SET quarantined = 1 WHERE sha1 = ? AND location = ? AND quarantined = 0",
        ))
        .bind(sha1.as_str())
        .bind(key)
        .execute(self.db.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn replace_quarantined(&self, sha1: &Sha1Hex, store: &str, key: &str) -> Result<bool> {
        let res = sqlx::query(
            &self.q("UPDATE blobs SET store = ?, location = ?, quarantined = 0 \
             WHERE sha1 = ? AND quarantined = 1"),
        )
        .bind(store)
        .bind(key)
        .bind(sha1.as_str())
        .execute(self.db.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }
}

/// A LIKE pattern matching names that contain `text` (ASCII letters in either case), with the
/// wildcards in `text` escaped by '!'.
fn like_containing(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}
