//! Instant-upload challenges, wrong answers and collision verdicts in SQL.

use super::*;

#[async_trait]
impl ProofStore for SqlMetaStore {
    async fn put_challenge(&self, c: &ChallengeRecord) -> Result<()> {
        sqlx::query(&self.q(
            "INSERT INTO proof_challenges (id, user_id, sha1, size, file_name, chunk_size, \
             ranges, expected, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(c.id.as_str())
        .bind(c.user_id.0)
        .bind(c.sha1.as_str())
        .bind(c.size as i64)
        .bind(c.file_name.as_str())
        .bind(c.chunk_size as i64)
        .bind(c.ranges.as_str())
        .bind(c.expected.as_str())
        .bind(c.expires_at)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn take_challenge(&self, id: &str, user: UserId) -> Result<Option<ChallengeRecord>> {
        const COLS: &str =
            "id, user_id, sha1, size, file_name, chunk_size, ranges, expected, expires_at";
        // Single use: only the request whose delete takes the row may answer it.
        let r = if self.db.dialect == Dialect::MySql {
            // MySQL has no `DELETE … RETURNING`: read, then delete.
            let sql = format!("SELECT {COLS} FROM proof_challenges WHERE id = ? AND user_id = ?");
            let row = sqlx::query(&self.q(&sql))
                .bind(id)
                .bind(user.0)
                .fetch_optional(&self.db.pool)
                .await?;
            let Some(r) = row else { return Ok(None) };
            let taken = sqlx::query(&self.q("DELETE FROM proof_challenges WHERE id = ?"))
                .bind(id)
                .execute(self.db.writer())
                .await?;
            if taken.rows_affected() != 1 {
                return Ok(None);
            }
            r
        } else {
            let sql = format!(
                "DELETE FROM proof_challenges WHERE id = ? AND user_id = ? RETURNING {COLS}"
            );
            let row = sqlx::query(&self.q(&sql))
                .bind(id)
                .bind(user.0)
                .fetch_optional(self.db.writer())
                .await?;
            let Some(r) = row else { return Ok(None) };
            r
        };
        Ok(Some(ChallengeRecord {
            id: text(&r, "id")?,
            user_id: UserId(r.try_get("user_id")?),
            sha1: sha1_from_db(&text(&r, "sha1")?)?,
            size: r.try_get::<i64, _>("size")? as u64,
            file_name: text(&r, "file_name")?,
            chunk_size: r.try_get::<i64, _>("chunk_size")? as u64,
            ranges: text(&r, "ranges")?,
            expected: text(&r, "expected")?,
            expires_at: r.try_get("expires_at")?,
        }))
    }

    async fn record_proof_failure(&self, user: UserId, now: Millis) -> Result<()> {
        sqlx::query(&self.q("INSERT INTO proof_failures (user_id, at) VALUES (?, ?)"))
            .bind(user.0)
            .bind(now)
            .execute(self.db.writer())
            .await?;
        let old = now - 24 * 3600 * 1000;
        let trim = self.db.delete_batch("proof_failures", "at < ?", "at");
        sqlx::query(&self.q(&trim))
            .bind(old)
            .bind(TRIM_BATCH)
            .execute(self.db.writer())
            .await?;
        let trim = self
            .db
            .delete_batch("proof_challenges", "expires_at < ?", "expires_at");
        sqlx::query(&self.q(&trim))
            .bind(now)
            .bind(TRIM_BATCH)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn purge_expired_proofs(&self, now: Millis) -> Result<u64> {
        let mut purged = 0;
        for (table, cond, order, bound) in [
            ("proof_challenges", "expires_at < ?", "expires_at", now),
            ("proof_failures", "at < ?", "at", now - 24 * 3600 * 1000),
        ] {
            let sql = self.db.delete_batch(table, cond, order);
            purged += self.delete_in_batches(&sql, bound).await?;
        }
        Ok(purged)
    }

    async fn proof_failures_since(&self, user: UserId, since: Millis) -> Result<u64> {
        let row = sqlx::query(
            &self.q("SELECT COUNT(*) AS n FROM proof_failures WHERE user_id = ? AND at >= ?"),
        )
        .bind(user.0)
        .bind(since)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }

    async fn blob_check(&self, sha1: &Sha1Hex) -> Result<Option<bool>> {
        let row = sqlx::query(&self.q("SELECT collision FROM blob_checks WHERE sha1 = ?"))
            .bind(sha1.as_str())
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get::<i64, _>("collision")? != 0),
            None => None,
        })
    }

    async fn record_blob_check(&self, sha1: &Sha1Hex, collision: bool, now: Millis) -> Result<()> {
        let insert = self.insert_or_ignore("blob_checks", "sha1, collision, checked_at");
        sqlx::query(&self.q(&insert))
            .bind(sha1.as_str())
            .bind(i64::from(collision))
            .bind(now)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }
}
