//! Users, tokens and rate-limit events in SQL.

use super::*;

#[async_trait]
impl AccountStore for SqlMetaStore {
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        now: Millis,
    ) -> Result<UserId> {
        let res = sqlx::query(&self.q(
            "INSERT INTO users (username, password_hash, created_at, last_active_at) VALUES (?, ?, ?, ?)",
        ))
        .bind(username.as_str())
        .bind(password_hash)
        .bind(now)
        .bind(now)
        .execute(self.db.writer())
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Error::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        let user = self
            .user_by_name(username.as_str())
            .await?
            .ok_or_else(|| Error::backend("sql", "user vanished after insert"))?;
        Ok(user.id)
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&self.q(
            "SELECT id, username, password_hash, created_at, last_active_at FROM users WHERE username = ?",
        ))
        .bind(username)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&self.q(
            "SELECT id, username, password_hash, created_at, last_active_at FROM users WHERE id = ?",
        ))
        .bind(id.0)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn touch_user(&self, id: UserId, now: Millis) -> Result<()> {
        sqlx::query(&self.q("UPDATE users SET last_active_at = ? WHERE id = ?"))
            .bind(now)
            .bind(id.0)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn insert_token(
        &self,
        token_hash: &str,
        user: UserId,
        now: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        sqlx::query(&self.q(
            "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        ))
        .bind(token_hash)
        .bind(user.0)
        .bind(now)
        .bind(expires_at)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn token_user(&self, token_hash: &str, now: Millis) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&self.q(
            "SELECT u.id, u.username, u.password_hash, u.created_at, u.last_active_at \
             FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ? AND t.expires_at > ?",
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn delete_token(&self, token_hash: &str) -> Result<bool> {
        let res = sqlx::query(&self.q("DELETE FROM tokens WHERE token_hash = ?"))
            .bind(token_hash)
            .execute(self.db.writer())
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn purge_expired_tokens(&self, now: Millis) -> Result<u64> {
        let tokens = self
            .db
            .delete_batch("tokens", "expires_at <= ?", "expires_at");
        let purged = self.delete_in_batches(&tokens, now).await?;
        // Rate-limit events older than the longest window, with them.
        let events = self.db.delete_batch("rate_events", "at < ?", "at");
        self.delete_in_batches(&events, now - 24 * 3600 * 1000)
            .await?;
        Ok(purged)
    }

    async fn record_event(&self, kind: &str, key: &str, now: Millis) -> Result<()> {
        sqlx::query(&self.q("INSERT INTO rate_events (kind, rkey, at) VALUES (?, ?, ?)"))
            .bind(kind)
            .bind(key)
            .bind(now)
            .execute(self.db.writer())
            .await?;
        let trim = self.db.delete_batch("rate_events", "at < ?", "at");
        sqlx::query(&self.q(&trim))
            .bind(now - 24 * 3600 * 1000)
            .bind(TRIM_BATCH)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn events_since(&self, kind: &str, key: &str, since: Millis) -> Result<u64> {
        let row = sqlx::query(
            &self
                .q("SELECT COUNT(*) AS n FROM rate_events WHERE kind = ? AND rkey = ? AND at >= ?"),
        )
        .bind(kind)
        .bind(key)
        .bind(since)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }
}
