//! The SQL connection shared by the metadata and session stores: one pool over `sqlx::Any`,
//! queries written with `?` placeholders and rewritten for PostgreSQL, migrations per dialect.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::error::{Error, Result};

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATE_MYSQL: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How many times a transaction that lost a race (deadlock, serialization failure, a row that
/// vanished between two statements) is retried before giving up.
const MAX_ATTEMPTS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    MySql,
    Postgres,
}

impl Dialect {
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            _ => Err(Error::invalid(
                "database-url",
                "must start with sqlite://, mysql:// or postgres://",
            )),
        }
    }
}

/// How the pool behaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DbOptions {
    /// How long a query waits for a live connection (connecting included) before it fails as
    /// unavailable: a database that is down or unreachable answers within this time.
    pub acquire_timeout: Duration,
    /// Keep every distinct statement the stores run (`Db::recorded_statements`), for the
    /// tests that check each one's query plan. Off in production.
    pub record_statements: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            acquire_timeout: Duration::from_secs(5),
            record_statements: false,
        }
    }
}

/// A pool and its dialect. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    /// Where write transactions run. SQLite has one writer at a time: contending connections
    /// wait in its busy handler, which sleeps 1, 2, 5 … 100 ms between tries, so under load a
    /// write could wait tens of milliseconds for a lock free after a fraction of one. One
    /// connection for them makes writers queue in the pool instead, first come first served.
    /// The other dialects use `pool`.
    write: AnyPool,
    pub(crate) dialect: Dialect,
    recorded: Option<Arc<Mutex<BTreeSet<String>>>>,
}

/// Reads a text column. MySQL flags `_bin`-collated columns as binary, which sqlx then refuses
/// to decode as a string, so fall back to bytes.
pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String> {
    match row.try_get::<String, _>(col) {
        Ok(s) => Ok(s),
        Err(sqlx::Error::ColumnDecode { .. }) => {
            let bytes: Vec<u8> = row.try_get(col)?;
            String::from_utf8(bytes).map_err(|e| Error::backend("sql", e))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn text_sqlx(row: &AnyRow, col: &str) -> Result<String, sqlx::Error> {
    text(row, col).map_err(|e| sqlx::Error::Decode(e.into()))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Deadlocks, lock timeouts and serialization failures: the transaction can simply run again.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    // MySQL 1213 deadlock / 1205 lock wait timeout (SQLSTATE 40001 / HY000);
    // PostgreSQL 40001 serialization failure / 40P01 deadlock; SQLite 5 busy / 6 locked.
    matches!(
        code.as_ref(),
        "40001" | "40P01" | "1213" | "1205" | "5" | "6" | "517"
    ) || db.message().contains("Deadlock found")
        || db.message().contains("database is locked")
}

/// Rows one sweep statement deletes at most.
pub(crate) const SWEEP_BATCH: i64 = 100;

/// Paces a sweep: after a batch that started at `started`, waits twice as long as the batch
/// took, so a sweep holds the database (SQLite's one writer above all) and the CPU at most a
/// third of the time and the requests arriving meanwhile keep their latency; a sweep of
/// 100,000 rows takes about three times as long instead.
pub(crate) async fn pace(started: std::time::Instant) {
    tokio::time::sleep(2 * started.elapsed()).await;
}
/// Old rows a write that adds a row clears on its way (rate events, proof failures, results):
/// more than it adds, so they never pile up, and never a long write on a request's path.
pub(crate) const TRIM_BATCH: i64 = 50;

pub(crate) enum Attempt<T> {
    Done(T),
    Retry,
}

impl Db {
    /// Connects and runs the migrations of the URL's dialect.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DbOptions::default()).await
    }

    /// `connect` with options.
    pub async fn connect_with(url: &str, options: DbOptions) -> Result<Self> {
        let acquire_timeout = options.acquire_timeout;
        let recorded = options.record_statements.then(Default::default);
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let mut url = url.to_owned();
        if dialect == Dialect::Sqlite && !url.contains("mode=") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        let connect_options = AnyConnectOptions::from_str(&url)
            .map_err(|e| Error::invalid("database-url", e.to_string()))?;
        let options = move |max| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire_timeout)
                // A server connection may have gone stale while idle in the pool; an embedded
                // SQLite connection cannot, and the ping would cost one more hand-off to its
                // worker thread on every acquire (measured: a third of a proof-mode instant
                // upload's thread switches).
                .test_before_acquire(dialect != Dialect::Sqlite)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if dialect == Dialect::Sqlite {
                            // WAL lets readers run beside the one writer; the busy timeout
                            // makes writers outside `write` queue instead of failing.
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;").await?;
                            // Statistics for the planner, gathered where missing or stale
                            // (cheap: bounded analysis); `optimize` refreshes them later.
                            conn.execute("PRAGMA optimize = 0x10002;").await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = options(if dialect == Dialect::Sqlite { 8 } else { 16 })
            .connect_with(connect_options.clone())
            .await?;
        let write = if dialect == Dialect::Sqlite {
            options(1).connect_with(connect_options).await?
        } else {
            pool.clone()
        };
        let migrator = match dialect {
            Dialect::Sqlite => &MIGRATE_SQLITE,
            Dialect::MySql => &MIGRATE_MYSQL,
            Dialect::Postgres => &MIGRATE_POSTGRES,
        };
        migrator.run(&pool).await?;
        Ok(Db {
            pool,
            write,
            dialect,
            recorded,
        })
    }

    /// Rewrites `?` placeholders for PostgreSQL. Every statement the stores run passes here
    /// (and is recorded when `DbOptions::record_statements` is set).
    pub fn q<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if let Some(recorded) = &self.recorded {
            let mut set = recorded.lock().unwrap_or_else(|e| e.into_inner());
            if !set.contains(sql) {
                set.insert(sql.to_owned());
            }
        }
        if self.dialect != Dialect::Postgres {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// `INSERT` that does nothing when the primary/unique key exists; check `rows_affected`.
    pub fn insert_or_ignore(&self, table: &str, cols: &str) -> String {
        let params = vec!["?"; cols.split(',').count()].join(", ");
        match self.dialect {
            // Not `ON DUPLICATE KEY UPDATE`: with CLIENT_FOUND_ROWS it reports the untouched
            // row as affected. The tables used here have no other constraints to hide.
            Dialect::MySql => format!("INSERT IGNORE INTO {table} ({cols}) VALUES ({params})"),
            Dialect::Sqlite | Dialect::Postgres => {
                format!("INSERT INTO {table} ({cols}) VALUES ({params}) ON CONFLICT DO NOTHING")
            }
        }
    }

    /// Where a single write statement runs: on SQLite the one writer connection (`write`), so
    /// it queues behind the write transactions instead of meeting their lock in SQLite's busy
    /// handler and sleeping 1, 2, 5 … ms (measured: instant upload with proof, whose challenge
    /// is stored and taken by single statements, had p99 45 ms at 1,200 hits/s); the pool
    /// elsewhere.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// A write transaction. SQLite's must take the write lock up front, or two transactions
    /// that both read first would deadlock when they upgrade.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::MySql | Dialect::Postgres => self.pool.begin().await?,
        })
    }

    /// Runs `attempt` until it neither asks for a retry nor fails with a retryable error.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, sqlx::Error>>,
    {
        for _ in 0..MAX_ATTEMPTS {
            match attempt().await {
                Ok(Attempt::Done(v)) => return Ok(v),
                Ok(Attempt::Retry) => continue,
                Err(e) if is_retryable(&e) => {
                    tracing::debug!(error = %e, "retrying transaction");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::backend(
            "sql",
            "transaction kept losing races; gave up",
        ))
    }

    /// Between a sweep's batches on SQLite: copies the write-ahead log into the database file
    /// from a reader's connection (a passive checkpoint takes no write lock), so the log stays
    /// short and the automatic checkpoint, which runs inside whichever write commits when the
    /// log has grown past 1,000 pages, rarely lands on a request's write. A no-op elsewhere.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// SQLite's statistics refresh (`PRAGMA optimize`: re-analyses the tables whose size
    /// changed much since the last time, each analysis bounded); a no-op elsewhere.
    pub async fn optimize(&self) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA optimize").execute(&self.write).await?;
        }
        Ok(())
    }

    /// The distinct statements run so far, with `?` placeholders, when recording.
    pub fn recorded_statements(&self) -> Vec<String> {
        self.recorded
            .as_ref()
            .map(|r| {
                let set = r.lock().unwrap_or_else(|e| e.into_inner());
                set.iter().cloned().collect()
            })
            .unwrap_or_default()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.write.close().await
    }

    /// `DELETE` of at most `?` (the last bind) rows of `table` matching `cond`, in `order`:
    /// sweeps delete in bounded batches, each a short write, so requests interleave with them
    /// and no single statement locks a large range. MySQL says it directly; SQLite and
    /// PostgreSQL pick the rows by their physical id in a subquery.
    pub fn delete_batch(&self, table: &str, cond: &str, order: &str) -> String {
        match self.dialect {
            Dialect::MySql => format!("DELETE FROM {table} WHERE {cond} ORDER BY {order} LIMIT ?"),
            Dialect::Sqlite | Dialect::Postgres => {
                let rid = if self.dialect == Dialect::Sqlite {
                    "rowid"
                } else {
                    "ctid"
                };
                format!(
                    "DELETE FROM {table} WHERE {rid} IN \
                     (SELECT {rid} FROM {table} WHERE {cond} ORDER BY {order} LIMIT ?)"
                )
            }
        }
    }

    /// `INSERT … ON CONFLICT (key) DO UPDATE SET col = new value` for each of `update`.
    pub fn upsert(&self, table: &str, cols: &str, key: &str, update: &[&str]) -> String {
        let params = vec!["?"; cols.split(',').count()].join(", ");
        match self.dialect {
            Dialect::MySql => {
                let sets: Vec<String> = update
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect();
                format!(
                    "INSERT INTO {table} ({cols}) VALUES ({params}) ON DUPLICATE KEY UPDATE {}",
                    sets.join(", ")
                )
            }
            Dialect::Sqlite | Dialect::Postgres => {
                let sets: Vec<String> = update
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect();
                format!("INSERT INTO {table} ({cols}) VALUES ({params}) ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
            }
        }
    }
}
