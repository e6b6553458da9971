//! The server's error type and the one place errors become HTTP responses:
//! `{"code": <stable code>, "msg": <text>, "data": …}` with a matching status.

use chunkvault_engine::Error as EngineError;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("missing parameter {0}")]
    MissingParam(&'static str),
    #[error("invalid parameter {name}: {reason}")]
    BadParam { name: &'static str, reason: String },
    #[error("form body larger than {limit} bytes")]
    FormTooLarge { limit: usize },
    #[error("malformed multipart body: {0}")]
    Multipart(String),
    #[error("unsupported content type: expected {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("no such route")]
    NoRoute,
    /// A tus request without `Tus-Resumable: 1.0.0`.
    #[error("unsupported or missing Tus-Resumable (this server speaks 1.0.0)")]
    TusVersion,
    /// An IETF resumable upload naming an interop version this server does not speak.
    #[error("missing or unsupported Upload-Draft-Interop-Version (this server speaks 5 to 8)")]
    InteropVersion,
    /// IETF resumable upload: bytes for an upload that is complete already.
    #[error("upload is already completed")]
    CompletedUpload { gone: bool },
    /// IETF resumable upload: `Upload-Length`, the bytes sent and `Upload-Complete` disagree.
    #[error("inconsistent length values: Upload-Length, the offset plus the bytes sent, and Upload-Complete disagree")]
    InconsistentLength,
    /// Instant upload asked for content the store does not hold: upload it normally.
    #[error("content not stored; use a normal upload")]
    NotStored,
}

impl ApiError {
    pub fn bad(name: &'static str, reason: impl Into<String>) -> Self {
        ApiError::BadParam {
            name,
            reason: reason.into(),
        }
    }

    /// HTTP status and stable machine code. Exhaustive on purpose: a new error kind does not
    /// compile until it has both.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        use StatusCode as S;
        match self {
            ApiError::Engine(e) => match e {
                EngineError::Invalid { field, .. } => match *field {
                    "filename" => (S::BAD_REQUEST, codes::INVALID_FILENAME),
                    "filehash" => (S::BAD_REQUEST, codes::INVALID_FILEHASH),
                    _ => (S::BAD_REQUEST, codes::INVALID_PARAM),
                },
                EngineError::Unauthenticated => (S::UNAUTHORIZED, codes::UNAUTHENTICATED),
                EngineError::BadCredentials => (S::UNAUTHORIZED, codes::BAD_CREDENTIALS),
                EngineError::BadSignature => (S::FORBIDDEN, codes::BAD_SIGNATURE),
                EngineError::NotFound { .. } => (S::NOT_FOUND, codes::NOT_FOUND),
                EngineError::UsernameTaken => (S::CONFLICT, codes::USERNAME_TAKEN),
                EngineError::NameTaken => (S::CONFLICT, codes::NAME_TAKEN),
                EngineError::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, codes::TOO_LARGE),
                EngineError::TooManyRequests { .. } => {
                    (S::TOO_MANY_REQUESTS, codes::TOO_MANY_REQUESTS)
                }
                EngineError::LimitReached { .. } => (S::TOO_MANY_REQUESTS, codes::LIMIT_REACHED),
                EngineError::QuotaExceeded { .. } => (S::PAYLOAD_TOO_LARGE, codes::QUOTA_EXCEEDED),
                EngineError::RangeNotSatisfiable { .. } => {
                    (S::RANGE_NOT_SATISFIABLE, codes::RANGE_NOT_SATISFIABLE)
                }
                EngineError::Sha1Mismatch => (S::UNPROCESSABLE_ENTITY, codes::SHA1_MISMATCH),
                EngineError::Sha1Collision => (S::UNPROCESSABLE_ENTITY, codes::SHA1_COLLISION),
                EngineError::DigestMismatch { .. } => (S::BAD_REQUEST, codes::DIGEST_MISMATCH),
                EngineError::MissingParts { .. } => (S::CONFLICT, codes::MISSING_PARTS),
                EngineError::Busy => (S::CONFLICT, codes::BUSY),
                EngineError::OffsetMismatch { .. } => (S::CONFLICT, codes::OFFSET_MISMATCH),
                EngineError::Locked => (S::LOCKED, codes::LOCKED),
                EngineError::Incomplete(_) => (S::BAD_REQUEST, codes::INCOMPLETE_BODY),
                EngineError::Unavailable { .. } => (S::SERVICE_UNAVAILABLE, codes::UNAVAILABLE),
                EngineError::InsufficientStorage { .. } => {
                    (S::INSUFFICIENT_STORAGE, codes::INSUFFICIENT_STORAGE)
                }
                EngineError::Backend { .. } => (S::INTERNAL_SERVER_ERROR, codes::INTERNAL),
            },
            ApiError::MissingParam(_) | ApiError::BadParam { .. } => {
                (S::BAD_REQUEST, codes::INVALID_PARAM)
            }
            ApiError::FormTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, codes::TOO_LARGE),
            ApiError::Multipart(_) => (S::BAD_REQUEST, codes::INVALID_PARAM),
            ApiError::UnsupportedMediaType { .. } => {
                (S::UNSUPPORTED_MEDIA_TYPE, codes::UNSUPPORTED_MEDIA_TYPE)
            }
            ApiError::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, codes::METHOD_NOT_ALLOWED),
            ApiError::NoRoute => (S::NOT_FOUND, codes::NO_ROUTE),
            ApiError::NotStored => (S::NOT_FOUND, codes::NOT_STORED),
            ApiError::TusVersion => (S::PRECONDITION_FAILED, codes::TUS_VERSION),
            ApiError::InteropVersion => (S::BAD_REQUEST, codes::INTEROP_VERSION),
            ApiError::CompletedUpload { gone: true } => (S::GONE, codes::COMPLETED_UPLOAD),
            ApiError::CompletedUpload { gone: false } => (S::BAD_REQUEST, codes::COMPLETED_UPLOAD),
            ApiError::InconsistentLength => (S::BAD_REQUEST, codes::INCONSISTENT_LENGTH),
        }
    }

    /// The message clients see. Backend causes stay in the log.
    pub(crate) fn public_message(&self) -> String {
        match self {
            ApiError::Engine(EngineError::Backend { .. }) => "internal server error".to_owned(),
            ApiError::Engine(EngineError::Unavailable { backend, .. }) => format!(
                "{} is temporarily unavailable; retry later",
                describe_backend(backend)
            ),
            ApiError::Engine(EngineError::InsufficientStorage { .. }) => {
                "the server is out of storage space; nothing was kept of this request".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// A backend's name as clients may see it (no hosts, no causes).
fn describe_backend(backend: &str) -> &'static str {
    match backend {
        "sql" => "the database",
        "redis" | "session" => "the session store",
        "amqp" => "the message broker",
        _ => "a storage backend",
    }
}

/// Seconds a client is asked to wait before retrying after a 503.
const RETRY_AFTER_UNAVAILABLE: u64 = 5;

pub use chunkvault_api::codes;

use chunkvault_api::Envelope;

/// A success envelope.
pub fn ok<T: Serialize>(data: T) -> Response {
    ok_with_status(StatusCode::OK, data)
}

pub fn ok_with_status<T: Serialize>(status: StatusCode, data: T) -> Response {
    let body = Envelope {
        code: codes::OK.into(),
        msg: "OK".to_owned(),
        data,
        request_id: None,
    };
    json_line(&body, status)
}

/// A JSON body ending in a newline (so `curl` output does not run into the prompt).
fn json_line<T: Serialize>(body: &T, status: StatusCode) -> Response {
    let mut bytes = serde_json::to_vec(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a reply did not serialise");
        br#"{"code":15001,"msg":"internal error","data":null}"#.to_vec()
    });
    bytes.push(b'\n');
    let mut resp = Response::new(bytes.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    resp
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Engine(
            EngineError::Backend { backend, .. }
            | EngineError::Unavailable { backend, .. }
            | EngineError::InsufficientStorage { backend, .. },
        ) = &self
        {
            crate::ops::backend_error(backend);
        }
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let data = match &self {
            ApiError::Engine(EngineError::MissingParts { missing }) => {
                serde_json::json!({ "missing": missing })
            }
            _ => serde_json::Value::Null,
        };
        let body = Envelope {
            code: code.into(),
            msg: self.public_message(),
            data,
            request_id: crate::ops::REQUEST_ID.try_with(Clone::clone).ok(),
        };
        let mut resp = json_line(&body, status);
        if let ApiError::Engine(EngineError::RangeNotSatisfiable { size }) = self {
            if let Ok(v) = format!("bytes */{size}").parse() {
                resp.headers_mut()
                    .insert(warp::http::header::CONTENT_RANGE, v);
            }
        }
        if let ApiError::Engine(EngineError::TooManyRequests { retry_after }) = self {
            resp.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from(retry_after),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from(RETRY_AFTER_UNAVAILABLE),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                warp::http::header::WWW_AUTHENTICATE,
                warp::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Handlers return `Result<Response, ApiError>`; this turns both arms into a reply so that an
/// error never falls through to the next route (which could find the body already consumed).
pub fn reply(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

/// Turns warp's own rejections (no route, wrong method, …) into the same envelope.
pub async fn recover(rejection: Rejection) -> Result<Response, std::convert::Infallible> {
    recover_on(rejection, true).await
}

/// `recover` on a node that serves `every_route` or only its role's groups: there, a method
/// the node does not serve on a path is "no route" too (another role's node may serve it).
pub async fn recover_on(
    rejection: Rejection,
    every_route: bool,
) -> Result<Response, std::convert::Infallible> {
    let method_not_allowed = rejection.find::<warp::reject::MethodNotAllowed>().is_some();
    let err = if rejection.is_not_found() || (method_not_allowed && !every_route) {
        ApiError::NoRoute
    } else if method_not_allowed {
        ApiError::MethodNotAllowed
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad("query", e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad("header", e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::bad("header", e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::UnsupportedMediaType>() {
        let _ = e;
        ApiError::UnsupportedMediaType {
            expected: "a supported content type",
        }
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::FormTooLarge { limit: 0 }
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::Engine(EngineError::Backend {
            backend: "http",
            source: format!("unhandled rejection {rejection:?}").into(),
        })
    };
    Ok(err.into_response())
}
