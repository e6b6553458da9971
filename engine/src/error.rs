//! The engine's one error type. The server maps every variant to an HTTP status and a stable code.

use std::borrow::Cow;

/// Which input was wrong, for messages that name the parameter.
pub type Field = &'static str;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value supplied by the caller is malformed; `field` names it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: Field,
        reason: Cow<'static, str>,
    },
    /// The token is missing, malformed, unknown, revoked or expired.
    #[error("authentication required")]
    Unauthenticated,
    /// Username or password do not match.
    #[error("wrong username or password")]
    BadCredentials,
    /// A signed download link was tampered with or has expired.
    #[error("download link is invalid or has expired")]
    BadSignature,
    /// The thing does not exist, or belongs to someone else (we never say which).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("username is already taken")]
    UsernameTaken,
    /// The caller already has a file with this content under the requested name.
    #[error("a file with this content and name already exists")]
    NameTaken,
    #[error("content exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// A per-user limit (open upload sessions) is reached.
    #[error("limit reached: at most {limit} {what}")]
    LimitReached { what: &'static str, limit: u64 },
    /// The user's files would exceed their storage quota.
    #[error("storage quota of {quota} bytes exceeded")]
    QuotaExceeded { quota: u64 },
    /// Too many attempts (wrong proofs of ownership); try again after `retry_after` seconds.
    #[error("too many attempts; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("requested range is not satisfiable for a {size}-byte file")]
    RangeNotSatisfiable { size: u64 },
    #[error("stored content does not hash to the claimed sha1")]
    Sha1Mismatch,
    /// The store holds content with this SHA1 and one of the two carries a SHA1 collision
    /// attack: they are never shared.
    #[error("content with this SHA1 carries a SHA1 collision attack and cannot be shared")]
    Sha1Collision,
    /// A digest the client sent along with a body does not match the body.
    #[error("{what} does not match the body")]
    DigestMismatch { what: &'static str },
    /// `complete` before every part arrived.
    #[error("{} part(s) missing", missing.len())]
    MissingParts { missing: Vec<u32> },
    /// A tus append at an offset other than the upload's.
    #[error("upload offset is {expected}")]
    OffsetMismatch { expected: u64 },
    /// Another request is writing this upload right now.
    #[error("upload is being written by another request")]
    Locked,
    /// Another request holds this upload (completing it) for longer than we waited.
    #[error("upload is busy; retry")]
    Busy,
    /// The upload body ended before it was complete (client went away).
    #[error("request body was cut short: {0}")]
    Incomplete(std::io::Error),
    /// A backend (database, session store, blob store) cannot be reached or timed out: a
    /// transient outage, worth retrying later. The cause is logged, never shown to clients.
    #[error("{backend} backend unavailable: {source}")]
    Unavailable {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The storage a backend writes to is full (ENOSPC) or over its quota (EDQUOT).
    #[error("{backend} storage is full: {source}")]
    InsufficientStorage {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A storage or database backend failed; the cause is logged, never shown to clients.
    #[error("{backend} backend error: {source}")]
    Backend {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub fn invalid(field: Field, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    pub(crate) fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// An I/O error of `backend`, classified: a full disk is `InsufficientStorage`, anything
    /// else a `Backend` failure.
    pub(crate) fn io(backend: &'static str, e: std::io::Error) -> Self {
        if is_storage_full(&e) {
            Error::InsufficientStorage {
                backend,
                source: e.into(),
            }
        } else {
            Error::backend(backend, e)
        }
    }
}

/// ENOSPC or EDQUOT (Linux: 28 and 122).
pub(crate) fn is_storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            // The pool could not hand out a live connection in time, or the connection broke:
            // the database is down or unreachable.
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                Error::unavailable("sql", e)
            }
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                match code.as_ref() {
                    // SQLite SQLITE_FULL.
                    "13" => Error::InsufficientStorage {
                        backend: "sql",
                        source: e.into(),
                    },
                    // PostgreSQL: shutting down, starting up, too many connections, class 08
                    // connection exceptions; MySQL: too many connections, server gone away,
                    // connection lost, shutdown in progress.
                    "57P01" | "57P02" | "57P03" | "53300" | "1040" | "2006" | "2013" | "1053" => {
                        Error::unavailable("sql", e)
                    }
                    c if c.starts_with("08") => Error::unavailable("sql", e),
                    _ => Error::backend("sql", e),
                }
            }
            _ => Error::backend("sql", e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::backend("sql-migrate", e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
