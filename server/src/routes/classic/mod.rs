//! The seed tutorial's API (`/user/*`, `/file/*`), answered as filestore-server answered it so
//! its pages and Go clients keep working: the same parameter names, body shapes, field names,
//! codes and time format (README, "Compatibility with filestore-server"). ChunkVault's own
//! clients use `/api/*` and `/uploads` instead.

pub mod file;
pub mod mpupload;
pub mod user;

use std::time::{Duration, UNIX_EPOCH};

use chunkvault_engine::{Error as EngineError, Millis, UserFile};
use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::ApiError;

/// Where the original's pages live; a browser without a valid token is sent to the sign-in one.
pub const SIGNIN_PAGE: &str = "/static/view/signin.html";
pub const HOME_PAGE: &str = "/static/view/home.html";

/// The original's time format (`2006-01-02 15:04:05`), in UTC.
pub fn go_time(ms: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// What the request's `Accept` header asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accept {
    /// `application/json` named explicitly: JSON answers go out as `application/json`.
    pub json: bool,
    /// `text/html` preferred (a browser navigating or posting a form).
    pub html: bool,
}

impl Accept {
    pub fn parse(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Accept::default();
        };
        let q_of = |wanted: &str| -> f32 {
            value
                .split(',')
                .filter_map(|range| {
                    let mut parts = range.split(';');
                    let media = parts.next()?.trim();
                    if !media.eq_ignore_ascii_case(wanted) {
                        return None;
                    }
                    let q = parts
                        .filter_map(|p| p.trim().strip_prefix("q="))
                        .find_map(|q| q.trim().parse::<f32>().ok())
                        .unwrap_or(1.0);
                    Some(q)
                })
                .fold(0.0, f32::max)
        };
        let (html, json) = (q_of("text/html"), q_of("application/json"));
        Accept {
            json: json > 0.0,
            html: html > 0.0 && html >= json,
        }
    }
}

/// The request's `Accept`, parsed.
pub fn accept() -> impl Filter<Extract = (Accept,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("accept")
        .or(warp::any().map(|| None))
        .unify()
        .map(|v: Option<String>| Accept::parse(v.as_deref()))
}

/// A JSON answer as the original sent it: Go's `w.Write(json)` went out as `text/plain` (its
/// pages `JSON.parse` the body); a client that asks for `application/json` gets that type.
pub fn json<T: Serialize>(accept: Accept, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let content_type = if accept.json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    with_type(body, content_type)
}

/// A plain-text answer.
pub fn text(body: impl Into<String>) -> Response {
    with_type(body.into().into_bytes(), "text/plain; charset=utf-8")
}

fn with_type(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A `302 Found` to `location` (the original's redirects).
pub fn redirect(location: &'static str) -> Response {
    let mut resp = Response::new(Default::default());
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    resp
}

/// The original's `RespMsg`: `{"code", "msg", "data"}`, code 0 for success.
#[derive(Serialize)]
pub struct RespMsg<T: Serialize> {
    pub code: i32,
    pub msg: &'static str,
    pub data: T,
}

pub fn resp_ok<T: Serialize>(accept: Accept, data: T) -> Response {
    json(
        accept,
        &RespMsg {
            code: 0,
            msg: "OK",
            data,
        },
    )
}

/// Handlers' results become replies; a browser without a valid token goes to the sign-in page
/// (as the original's interceptor sent it), everyone else gets the JSON error.
pub fn reply(accept: Accept, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(resp) => resp,
        Err(ApiError::Engine(EngineError::Unauthenticated)) if accept.html => redirect(SIGNIN_PAGE),
        Err(e) => e.into_response(),
    }
}

/// A stored file as the original's `FileMeta`. `Location` names the store holding the bytes
/// (the original gave a path on the server's disk).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileMeta {
    pub file_sha1: String,
    pub file_name: String,
    pub file_size: u64,
    pub location: String,
    pub upload_at: String,
}

impl FileMeta {
    pub fn new(f: &UserFile, store: String) -> Self {
        FileMeta {
            file_sha1: f.sha1.to_string(),
            file_name: f.name.clone(),
            file_size: f.size,
            location: store,
            upload_at: go_time(f.uploaded_at),
        }
    }
}

/// A user's file as the original's `UserFile` (`/file/query`, `/file/update`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserFileMeta {
    pub user_name: String,
    pub file_hash: String,
    pub file_name: String,
    pub file_size: u64,
    pub upload_at: String,
    pub last_updated: String,
}

impl UserFileMeta {
    pub fn new(f: &UserFile, username: &str) -> Self {
        UserFileMeta {
            user_name: username.to_owned(),
            file_hash: f.sha1.to_string(),
            file_name: f.name.clone(),
            file_size: f.size,
            upload_at: go_time(f.uploaded_at),
            last_updated: go_time(f.updated_at),
        }
    }
}

/// The original's `FileMeta` of `file`, with the store it is in.
pub async fn file_meta(
    state: &crate::routes::AppState,
    file: &UserFile,
) -> Result<FileMeta, ApiError> {
    let store = state.engine.files().store_of(file).await?;
    Ok(FileMeta::new(file, store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times() {
        assert_eq!(go_time(0), "1970-01-01 00:00:00");
        assert_eq!(go_time(1_564_653_600_999), "2019-08-01 10:00:00");
    }

    #[test]
    fn accept_headers() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(Accept::parse(Some(browser)).html);
        assert!(!Accept::parse(Some(browser)).json);
        for xhr in ["*/*", "application/json, text/plain, */*", ""] {
            assert!(!Accept::parse(Some(xhr)).html, "{xhr}");
        }
        assert!(Accept::parse(Some("application/json")).json);
        assert!(!Accept::parse(None).html);
        assert!(!Accept::parse(Some("text/html;q=0.5, application/json")).html);
    }
}
