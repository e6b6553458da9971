//! Turning a user file into an HTTP download: attachment name (RFC 6266), single ranges
//! (RFC 9110 §14), ETag and If-None-Match. Shared by the token route and signed links.

use std::time::Duration;

use chunkvault_engine::{RangeRequest, UserFile};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use warp::http::{header, HeaderMap, HeaderValue, Response as HttpResponse, StatusCode};
use warp::hyper::Body;
use warp::reply::Response;

use super::AppState;
use crate::error::ApiError;

/// RFC 5987 `attr-char`s stay as they are; everything else is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<encoded>`.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR_CHAR)
    )
}

/// Parses a `Range` header. Only one `bytes` range is served; anything else (several ranges,
/// other units, bad syntax) is ignored and the whole file is sent, as RFC 9110 allows.
pub fn parse_range(value: &str) -> Option<RangeRequest> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => Some(RangeRequest::Suffix(num(suffix)?)),
        (start, "") => Some(RangeRequest::From {
            start: num(start)?,
            last: None,
        }),
        (start, end) => Some(RangeRequest::From {
            start: num(start)?,
            last: Some(num(end)?),
        }),
    }
}

fn etag(file: &UserFile) -> String {
    format!("\"{}\"", file.sha1)
}

/// Whether an `If-None-Match` list matches our (strong) ETag; weak comparison, as RFC 9110 says.
pub fn none_match(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// The full download response for `file`.
pub async fn respond(
    state: &AppState,
    file: UserFile,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    let tag = etag(&file);
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| none_match(v, &tag)) {
        let mut resp = HttpResponse::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp.headers_mut().insert(header::ETAG, hv(&tag));
        return Ok(resp);
    }
    // If-Range with another validator means the client's copy is stale: send everything.
    let range_allowed = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == tag);
    let range = if range_allowed {
        header_str(header::RANGE).and_then(parse_range)
    } else {
        None
    };

    let size = file.size;
    let disposition = content_disposition(&file.name);
    let download = state.engine.files().read(file, range).await?;
    let (status, len) = match download.range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
        None => (StatusCode::OK, size),
    };
    let body = if head {
        Body::empty()
    } else {
        Body::wrap_stream(download.body)
    };
    let mut resp = HttpResponse::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_DISPOSITION, hv(&disposition));
    h.insert(header::ETAG, hv(&tag));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Some(r) = download.range {
        h.insert(
            header::CONTENT_RANGE,
            hv(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        );
    }
    Ok(resp)
}

/// A link that downloads `file` without a token until `expires_at` (Unix ms): a presigned GET
/// straight from an object store (private bucket, the user's file name in the response's
/// `Content-Disposition`), else a signed link to this server.
pub struct ShareLink {
    pub url: String,
    pub expires_at: chunkvault_engine::Millis,
}

pub async fn share_link(
    state: &AppState,
    file: &UserFile,
    host: Option<&str>,
    ttl: Duration,
) -> Result<ShareLink, ApiError> {
    let disposition = content_disposition(&file.name);
    if let Some(url) = state
        .engine
        .files()
        .presigned_url(file, &disposition, ttl)
        .await?
    {
        return Ok(ShareLink {
            url,
            expires_at: chunkvault_engine::types::now_millis() + ttl.as_millis() as i64,
        });
    }
    let link = state.engine.files().sign_link(file, ttl);
    let base = state.base_url(host);
    Ok(ShareLink {
        url: format!(
            "{base}{}?id={}&expires={}&sig={}",
            chunkvault_engine::auth::SIGNED_DOWNLOAD_PATH,
            link.file.as_str(),
            link.expires,
            link.signature
        ),
        expires_at: link.expires * 1000,
    })
}

fn hv(s: &str) -> HeaderValue {
    // Every value built here is visible ASCII by construction.
    HeaderValue::from_str(s).expect("ASCII header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("bytes=0-9"),
            Some(RangeRequest::From {
                start: 0,
                last: Some(9)
            })
        );
        assert_eq!(
            parse_range("bytes=5-"),
            Some(RangeRequest::From {
                start: 5,
                last: None
            })
        );
        assert_eq!(parse_range("bytes=-5"), Some(RangeRequest::Suffix(5)));
        for ignored in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "0-1",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn disposition() {
        assert_eq!(
            content_disposition("报告 v1.pdf"),
            "attachment; filename=\"__ v1.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%20v1.pdf"
        );
        assert_eq!(
            content_disposition("a\"b;c.txt"),
            "attachment; filename=\"a_b;c.txt\"; filename*=UTF-8''a%22b%3Bc.txt"
        );
    }

    #[test]
    fn etags() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\", \"x\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
    }
}
