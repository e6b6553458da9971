//! tus 1.0.0 at `/files/` (core, creation, creation-with-upload, creation-defer-length,
//! expiration, checksum, termination) over the engine's tus uploads. Off-the-shelf clients
//! (tus-js-client, tuspy, Uppy) work unchanged; every request but OPTIONS needs the Bearer token.
//! Requests naming an `Upload-Draft-Interop-Version` are IETF resumable uploads (`ietf`).

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use chunkvault_engine::uploads::tus::{AppendChecks, TusConcat, TusCreate, TusUpload};
use chunkvault_engine::{ByteStream, Checksum, Error as EngineError, UploadId};
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderMap, HeaderValue, Method, Response as HttpResponse, StatusCode};
use warp::hyper::Body;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{body_stream, caller, ietf, with_drained_body, AppState, Caller, Params, State};
use crate::error::ApiError;

const VERSION: &str = "1.0.0";
const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation";
const ALGORITHMS: &str = "sha1,md5,sha256";
const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// What a browser client needs to read and send.
const EXPOSE: &str =
    "Location, Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Metadata, \
                      Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, \
                      Tus-Checksum-Algorithm, Upload-Complete, Upload-Limit, Accept-Patch";
const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Upload-Length, Upload-Offset, Upload-Metadata, \
                             Upload-Defer-Length, Upload-Concat, Upload-Checksum, Tus-Resumable, \
                             X-HTTP-Method-Override, X-Requested-With, X-Request-Id, \
                             Upload-Complete, Upload-Draft-Interop-Version, Content-Digest, \
                             Repr-Digest";
const ALLOW_METHODS: &str = "POST, HEAD, PATCH, DELETE, OPTIONS";

pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    warp::path("files")
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(caller(state, header_only()))
        .and(body_stream())
        .then(
            |tail: warp::path::Tail,
             method: Method,
             headers: HeaderMap,
             state: State,
             caller: Caller,
             body: ByteStream| async move {
                handle(
                    tail.as_str().to_owned(),
                    method,
                    headers,
                    state,
                    caller,
                    body,
                )
                .await
            },
        )
        .boxed()
}

pub(super) fn h<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub(super) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn handle(
    tail: String,
    method: Method,
    headers: HeaderMap,
    state: State,
    caller: Caller,
    body: ByteStream,
) -> Response {
    // Clients behind proxies that only pass GET/POST send the real method here.
    let method = match (method, h(&headers, "x-http-method-override")) {
        (Method::POST, Some(m)) => m.parse().unwrap_or(Method::POST),
        (m, _) => m,
    };
    let id = tail.trim_matches('/').to_owned();
    let head = method == Method::HEAD;
    // The method first: a GET is a 405 whatever its headers say.
    let known = matches!(
        (&method, id.is_empty()),
        (&Method::OPTIONS, _)
            | (&Method::POST, true)
            | (&Method::HEAD | &Method::PATCH | &Method::DELETE, false)
    );
    let ietf = headers.contains_key(ietf::INTEROP_HEADER);
    let mut resp = if !known {
        ApiError::MethodNotAllowed.into_response()
    } else if method == Method::OPTIONS {
        let mut r = options(&state);
        if let Ok(v) = ietf::Interop::of(&headers) {
            ietf::options(&state, v, &mut r);
        }
        r
    } else if let Err(e) = foreign_fields(&headers, ietf) {
        e.into_response()
    } else if ietf {
        match ietf::Interop::of(&headers) {
            Ok(v) => ietf::handle(v, &method, &id, &headers, &state, caller, body).await,
            Err(e) => e.into_response(),
        }
    } else if h(&headers, "tus-resumable") != Some(VERSION) {
        let mut r = ApiError::TusVersion.into_response();
        r.headers_mut()
            .insert("tus-version", HeaderValue::from_static(VERSION));
        r
    } else {
        match route(&method, &id, &headers, &state, caller, body).await {
            Ok(r) => r,
            Err(e) => error_response(e),
        }
    };
    if head {
        *resp.body_mut() = Body::empty();
    }
    // tus answers say their version, and so does the refusal of a tus version not spoken.
    let tus_answer = !ietf || resp.status() == StatusCode::PRECONDITION_FAILED;
    let hs = resp.headers_mut();
    if tus_answer {
        hs.insert("tus-resumable", HeaderValue::from_static(VERSION));
    }
    if let Some(origin) = allowed_origin(&state, h(&headers, "origin")) {
        hs.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, hv(&origin));
        hs.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE),
        );
        hs.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

fn allowed_origin(state: &AppState, origin: Option<&str>) -> Option<String> {
    let origin = origin?;
    if state.cors_origins.iter().any(|o| o == "*") {
        Some("*".to_owned())
    } else if state.cors_origins.iter().any(|o| o == origin) {
        Some(origin.to_owned())
    } else {
        None
    }
}

/// Checksum mismatches are 460 in tus; everything else keeps its usual status and envelope.
fn error_response(e: ApiError) -> Response {
    let checksum = matches!(e, ApiError::Engine(EngineError::DigestMismatch { .. }));
    let mut resp = e.into_response();
    if checksum {
        *resp.status_mut() = StatusCode::from_u16(460).expect("460 is a valid status");
    }
    resp
}

pub(super) fn empty(status: StatusCode) -> Response {
    let mut r = HttpResponse::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn options(state: &AppState) -> Response {
    let mut r = empty(StatusCode::NO_CONTENT);
    let hs = r.headers_mut();
    hs.insert("tus-version", HeaderValue::from_static(VERSION));
    hs.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    hs.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(ALGORITHMS),
    );
    hs.insert(
        "tus-max-size",
        HeaderValue::from(state.engine.config().max_file_size),
    );
    hs.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    hs.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    hs.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

/// tus clients send the token in `Authorization` only: no parameters are read.
/// The other protocol's fields are ignored, but not when malformed: bad input is a 4xx whichever
/// protocol serves the request.
fn foreign_fields(headers: &HeaderMap, ietf: bool) -> Result<(), ApiError> {
    if !ietf {
        ietf::boolean(headers, "upload-complete")?;
        ietf::content_digest(headers)?;
        ietf::repr_digest(headers)?;
        return Ok(());
    }
    if h(headers, "tus-resumable").is_some_and(|v| v != VERSION) {
        return Err(ApiError::TusVersion);
    }
    checksum_of(headers)?;
    if let Some(v) = h(headers, "upload-concat") {
        parse_concat(v)?;
    }
    if h(headers, "upload-defer-length").is_some_and(|v| v != "1") {
        return Err(ApiError::bad("Upload-Defer-Length", "must be 1"));
    }
    Ok(())
}

fn header_only(
) -> impl Filter<Extract = (Result<Params, ApiError>,), Error = warp::Rejection> + Clone {
    warp::any().and_then(|| async { Ok::<_, warp::Rejection>(Ok(Params::default())) })
}

async fn route(
    method: &Method,
    id: &str,
    headers: &HeaderMap,
    state: &State,
    caller: Caller,
    body: ByteStream,
) -> Result<Response, ApiError> {
    match (method, id.is_empty()) {
        (&Method::POST, true) => {
            with_drained_body(body, 1 << 20, |b| create(headers, state, caller, b)).await
        }
        (&Method::HEAD, false) => status(id, state, caller).await,
        (&Method::PATCH, false) => {
            with_drained_body(body, 1 << 20, |b| patch(id, headers, state, caller, b)).await
        }
        (&Method::DELETE, false) => terminate(id, state, caller).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn upload_headers(resp: &mut Response, t: &TusUpload) {
    let hs = resp.headers_mut();
    hs.insert("upload-offset", HeaderValue::from(t.offset));
    match t.length {
        Some(l) => hs.insert("upload-length", HeaderValue::from(l)),
        None => hs.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if t.file_id.is_none() {
        let at = UNIX_EPOCH + Duration::from_millis(t.expires_at.max(0) as u64);
        hs.insert("upload-expires", hv(&httpdate::fmt_http_date(at)));
    }
}

pub fn uint_header(headers: &HeaderMap, name: &'static str) -> Result<Option<u64>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad(name, "must be a non-negative integer")),
    }
}

/// `Upload-Metadata`: `key base64,key base64` (a value may be absent). Returns the decoded
/// `filename` (or `name`) if any.
pub fn metadata_file_name(metadata: &str) -> Result<Option<String>, ApiError> {
    let mut name = None;
    for pair in metadata.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.splitn(2, ' ');
        let key = it.next().unwrap_or_default();
        let value = it.next().unwrap_or_default().trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad(
                "Upload-Metadata",
                "keys must be printable ASCII",
            ));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| ApiError::bad("Upload-Metadata", "values must be base64"))?;
        if key == "filename" || (key == "name" && name.is_none()) {
            let text = String::from_utf8(decoded)
                .map_err(|_| ApiError::bad("Upload-Metadata", "filename must be UTF-8"))?;
            name = Some(text);
        }
    }
    Ok(name)
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn parse_checksum(value: &str) -> Result<Checksum, ApiError> {
    let bad = || {
        ApiError::bad(
            "Upload-Checksum",
            "expected `sha1|md5|sha256 <base64 digest>`",
        )
    };
    let (algo, digest) = value.trim().split_once(' ').ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| bad())?;
    match algo {
        "sha1" => Ok(Checksum::Sha1(bytes.try_into().map_err(|_| bad())?)),
        "md5" => Ok(Checksum::Md5(bytes.try_into().map_err(|_| bad())?)),
        "sha256" => Ok(Checksum::Sha256(bytes.try_into().map_err(|_| bad())?)),
        _ => Err(bad()),
    }
}

/// `Upload-Concat: partial` or `final;<url> <url> …` (URLs absolute or paths ending in the id).
pub fn parse_concat(value: &str) -> Result<TusConcat, ApiError> {
    if value == "partial" {
        return Ok(TusConcat::Partial);
    }
    let Some(urls) = value.strip_prefix("final;") else {
        return Err(ApiError::bad(
            "Upload-Concat",
            "must be `partial` or `final;<urls>`",
        ));
    };
    let parts = urls
        .split_whitespace()
        .map(|u| {
            let path = u
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .trim_end_matches('/');
            let id = path.rsplit('/').next().unwrap_or_default();
            UploadId::parse(id).map_err(|_| {
                ApiError::bad("Upload-Concat", "names an upload that is not one of ours")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TusConcat::Final {
        parts,
        header: value.to_owned(),
    })
}

fn checksum_of(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    h(headers, "upload-checksum")
        .map(parse_checksum)
        .transpose()
}

fn has_body(headers: &HeaderMap) -> bool {
    h(headers, "content-type").is_some_and(|ct| ct.eq_ignore_ascii_case(OFFSET_STREAM))
        && (uint_header(headers, "content-length")
            .ok()
            .flatten()
            .is_some_and(|n| n > 0)
            || headers.contains_key(header::TRANSFER_ENCODING))
}

async fn create(
    headers: &HeaderMap,
    state: &State,
    caller: Caller,
    body: ByteStream,
) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    let concat = match h(headers, "upload-concat") {
        None => TusConcat::None,
        Some(v) => parse_concat(v)?,
    };
    let is_final = matches!(concat, TusConcat::Final { .. });
    // A final upload's length is the sum of its parts.
    let length = if is_final {
        None
    } else {
        uint_header(headers, "upload-length")?
    };
    let deferred = match h(headers, "upload-defer-length") {
        None => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::bad("Upload-Defer-Length", "must be 1")),
    };
    if length.is_none() && !deferred && !is_final {
        return Err(ApiError::MissingParam("Upload-Length"));
    }
    let metadata = h(headers, "upload-metadata").unwrap_or_default().to_owned();
    let name = metadata_file_name(&metadata)?.unwrap_or_else(|| "tus-upload".to_owned());
    let req = TusCreate::new(length, metadata, name).with_concat(concat);
    let mut record = state.engine.uploads().tus_create(&user, req).await?;
    let location = format!("{}/files/{}", state.base_url(h(headers, "host")), record.id);
    if has_body(headers) && !is_final {
        // creation-with-upload: the first bytes came with the POST.
        let checksum = checksum_of(headers)?;
        record = state
            .engine
            .uploads()
            .tus_append(
                &user,
                &record.id,
                0,
                None,
                body,
                AppendChecks::content(checksum),
            )
            .await?;
    }
    let mut resp = empty(StatusCode::CREATED);
    resp.headers_mut().insert(header::LOCATION, hv(&location));
    upload_headers(&mut resp, &record);
    Ok(resp)
}

fn upload_id(id: &str) -> Result<UploadId, ApiError> {
    Ok(UploadId::parse(id)?)
}

async fn status(id: &str, state: &State, caller: Caller) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    let record = state
        .engine
        .uploads()
        .tus_status(&user, &upload_id(id)?)
        .await?;
    let mut resp = empty(StatusCode::OK);
    upload_headers(&mut resp, &record);
    let hs = resp.headers_mut();
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !record.metadata.is_empty() {
        hs.insert("upload-metadata", hv(&record.metadata));
    }
    if !record.concat.is_empty() {
        hs.insert("upload-concat", hv(&record.concat));
    }
    Ok(resp)
}

async fn patch(
    id: &str,
    headers: &HeaderMap,
    state: &State,
    caller: Caller,
    body: ByteStream,
) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    if !h(headers, "content-type").is_some_and(|ct| ct.eq_ignore_ascii_case(OFFSET_STREAM)) {
        return Err(ApiError::UnsupportedMediaType {
            expected: OFFSET_STREAM,
        });
    }
    let offset =
        uint_header(headers, "upload-offset")?.ok_or(ApiError::MissingParam("Upload-Offset"))?;
    let length = uint_header(headers, "upload-length")?;
    let checksum = checksum_of(headers)?;
    let record = state
        .engine
        .uploads()
        .tus_append(
            &user,
            &upload_id(id)?,
            offset,
            length,
            body,
            AppendChecks::content(checksum),
        )
        .await?;
    let mut resp = empty(StatusCode::NO_CONTENT);
    upload_headers(&mut resp, &record);
    Ok(resp)
}

pub(super) async fn terminate(
    id: &str,
    state: &State,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    state
        .engine
        .uploads()
        .tus_terminate(&user, &upload_id(id)?)
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata() {
        assert_eq!(
            metadata_file_name("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
                .unwrap()
                .as_deref(),
            Some("world_domination_plan.pdf")
        );
        assert_eq!(metadata_file_name("").unwrap(), None);
        assert_eq!(
            metadata_file_name("name 5paH5Lu2").unwrap().as_deref(),
            Some("文件")
        );
        assert!(metadata_file_name("filename !!!").is_err());
        assert!(metadata_file_name("filename /w==").is_err(), "not UTF-8");
    }

    #[test]
    fn checksums() {
        assert!(matches!(
            parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Ok(Checksum::Sha1(_))
        ));
        assert!(matches!(
            parse_checksum("md5 XrY7u+Ae7tCTyyK7j1rNww=="),
            Ok(Checksum::Md5(_))
        ));
        assert!(parse_checksum("crc32 AAAA").is_err());
        assert!(parse_checksum("sha1 AAAA").is_err());
        assert!(parse_checksum("sha1").is_err());
    }
}
