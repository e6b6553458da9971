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
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::backend("sql", e)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::backend("sql-migrate", e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
