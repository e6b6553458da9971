//! IETF Resumable Uploads for HTTP (draft-ietf-httpbis-resumable-upload) at `/files/`, beside
//! tus and on the same engine uploads (append streams: `Uploads::tus_*`). A request that
//! carries `Upload-Draft-Interop-Version` is served here, any other by tus, so an upload begun
//! by one protocol can be continued by the other.
//!
//! - Creation: `POST /files/` with `Upload-Complete` (`?0`: more to come, `?1`: this body is
//!   all of it), optionally `Upload-Length` and bytes; `201 Created` with `Location`,
//!   `Upload-Offset`, `Upload-Complete` and `Upload-Limit`. The name comes from tus's
//!   `Upload-Metadata` (`filename`), which tus-js-client sends in this mode too.
//! - Offset retrieval: `HEAD` → `204` with `Upload-Offset`, `Upload-Complete`, `Upload-Length`
//!   (when known), `Upload-Limit`, `Cache-Control: no-store`.
//! - Append: `PATCH` with `Upload-Offset`, `Upload-Complete` and (interop 6 on)
//!   `Content-Type: application/partial-upload` → `204`. A wrong offset is `409` with the
//!   upload's offset and a `mismatching-upload-offset` problem; appending to a completed upload
//!   is a `completed-upload` problem (`400`; `410` from interop 7 on); lengths that disagree are
//!   `inconsistent-upload-length` (`400`).
//! - Cancellation: `DELETE` → `204`.
//! - An append cut off midway keeps what arrived (none if it named a `Content-Digest`).
//! - `Content-Digest` (`sha-256`, `sha`, `md5`) is checked against the request's bytes; a
//!   mismatch keeps none of them. The file's SHA1 is the server's own, as on every route.
//! - `Repr-Digest` (the whole upload; on the creation request or on any append, the last one
//!   named counts) is checked when the last byte is in, before anything is published: `sha`
//!   against the SHA1 computed as the bytes came, `sha-256`/`md5` by reading the upload once
//!   more. A mismatch is `400` (code 10005), publishes nothing and drops the upload.
//! - Instant upload only in `trusted` mode: a creation request with `Upload-Length` and
//!   `Repr-Digest: sha=…` naming stored content is answered complete, its body unread. A digest
//!   proves no ownership and this protocol has no step in which a client could prove it, so in
//!   `proof` mode (the default) the bytes are uploaded.
//!
//! No `104 Upload Resumption Supported`: the HTTP stack (hyper 0.14 through warp) cannot send
//! informational responses. Clients then learn `Location` from the final response, which is
//! what tus-js-client and browsers (whose `fetch` does not expose 1xx) rely on anyway. Nor does
//! a plain upload (`POST /api/files`) become resumable on request: without the `104` its client
//! could not learn where to resume.

use std::ops::RangeInclusive;

use base64::Engine as _;
use chunkvault_engine::uploads::tus::{AppendChecks, TusCreate, TusUpload};
use chunkvault_engine::{ByteStream, Checksum, Error as EngineError, UploadId, User};
use futures::StreamExt;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::tus::{empty, h, hv, metadata_file_name, terminate, uint_header};
use super::{with_drained_body, AppState, Caller, State};
use crate::error::ApiError;

/// The request field that selects this protocol.
pub const INTEROP_HEADER: &str = "upload-draft-interop-version";
const PARTIAL_UPLOAD: &str = "application/partial-upload";
/// Interop versions served: 5 (draft -03), 6 (-04 and -05; tus-js-client's `ietf-draft-05`),
/// 7 (-06 to -08), 8 (-09 on).
const VERSIONS: RangeInclusive<i64> = 5..=8;
const PROBLEM: &str = "https://iana.org/assignments/http-problem-types#";

/// The draft revision a client speaks, as far as answers differ between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interop(i64);

impl Interop {
    /// The interop version a request names: an sf-integer this server speaks, else `400`.
    pub fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        integer(headers, INTEROP_HEADER)
            .ok()
            .flatten()
            .filter(|v| VERSIONS.contains(v))
            .map(Interop)
            .ok_or(ApiError::InteropVersion)
    }

    /// From interop 6 on an append must be `application/partial-upload`.
    fn typed_appends(self) -> bool {
        self.0 >= 6
    }

    /// From interop 7 on a completed upload is gone for appends (`410`), before `400`.
    fn completed_is_gone(self) -> bool {
        self.0 >= 7
    }

    /// The `Upload-Limit` key of the time left (`expires` was renamed `max-age` in -06).
    fn age_key(self) -> &'static str {
        if self.0 >= 7 {
            "max-age"
        } else {
            "expires"
        }
    }
}

/// One field line at most; `None` when absent.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad(name, "sent more than once"));
    }
    first
        .to_str()
        .map(|v| Some(v.trim_matches([' ', '\t'])))
        .map_err(|_| ApiError::bad(name, "not ASCII"))
}

/// The bare item of a Structured Field Item (RFC 9651), its parameters checked and dropped.
fn bare_item<'a>(name: &'static str, value: &'a str) -> Result<&'a str, ApiError> {
    let mut pieces = value.split(';');
    let item = pieces.next().unwrap_or_default();
    for param in pieces {
        let param = param.trim_start_matches(' ');
        let key = param.split('=').next().unwrap_or_default();
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
        let value_ok = param.split_once('=').is_none_or(|(_, v)| {
            !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b';')
        });
        if !key_ok || !value_ok {
            return Err(ApiError::bad(name, "malformed parameters"));
        }
    }
    Ok(item)
}

/// An sf-integer field (RFC 9651 §3.3.1: up to 15 digits, optionally negative).
fn integer(headers: &HeaderMap, name: &'static str) -> Result<Option<i64>, ApiError> {
    let Some(value) = single(headers, name)? else {
        return Ok(None);
    };
    let item = bare_item(name, value)?;
    let digits = item.strip_prefix('-').unwrap_or(item);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad(name, "must be a Structured Field integer"));
    }
    item.parse()
        .map(Some)
        .map_err(|_| ApiError::bad(name, "must be a Structured Field integer"))
}

/// A non-negative sf-integer field (offsets and lengths).
pub fn size(headers: &HeaderMap, name: &'static str) -> Result<Option<u64>, ApiError> {
    match integer(headers, name)? {
        Some(n) if n < 0 => Err(ApiError::bad(name, "must not be negative")),
        n => Ok(n.map(|n| n as u64)),
    }
}

/// An sf-boolean field: `?1` or `?0`.
pub fn boolean(headers: &HeaderMap, name: &'static str) -> Result<Option<bool>, ApiError> {
    let Some(value) = single(headers, name)? else {
        return Ok(None);
    };
    match bare_item(name, value)? {
        "?1" => Ok(Some(true)),
        "?0" => Ok(Some(false)),
        _ => Err(ApiError::bad(
            name,
            "must be a Structured Field boolean (?1 or ?0)",
        )),
    }
}

/// `Content-Digest` (RFC 9530, an sf-dictionary of byte sequences): the strongest algorithm
/// this server checks, if the client sent one; algorithms it does not know are ignored.
pub fn content_digest(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    digest_field(headers, "content-digest", false)
}

/// `Repr-Digest` (RFC 9530), the whole upload's content: as `Content-Digest`, but `sha` (SHA-1)
/// comes first, since the server computes it anyway (any other is checked by reading the
/// assembled upload once more).
pub fn repr_digest(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    digest_field(headers, "repr-digest", true)
}

fn digest_field(
    headers: &HeaderMap,
    name: &'static str,
    sha1_first: bool,
) -> Result<Option<Checksum>, ApiError> {
    let mut best: Option<Checksum> = None;
    for line in headers.get_all(name) {
        let line = line
            .to_str()
            .map_err(|_| ApiError::bad(name, "not ASCII"))?;
        for member in line.split(',').map(|m| m.trim_matches([' ', '\t'])) {
            let bad = || ApiError::bad(name, "expected `algorithm=:base64:` members");
            let (key, value) = member.split_once('=').ok_or_else(bad)?;
            let bytes = bare_item(name, value)?
                .strip_prefix(':')
                .and_then(|v| v.strip_suffix(':'))
                .ok_or_else(bad)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(bytes)
                .map_err(|_| bad())?;
            let wrong = || ApiError::bad(name, format!("{key}: wrong digest length"));
            let found = match key {
                "sha-256" => Checksum::Sha256(bytes.try_into().map_err(|_| wrong())?),
                "sha" => Checksum::Sha1(bytes.try_into().map_err(|_| wrong())?),
                "md5" => Checksum::Md5(bytes.try_into().map_err(|_| wrong())?),
                _ => continue,
            };
            let rank = |c: &Checksum| match c {
                Checksum::Sha1(_) if sha1_first => 4,
                Checksum::Sha256(_) => 3,
                Checksum::Sha1(_) => 2,
                _ => 1,
            };
            if best.as_ref().is_none_or(|b| rank(&found) > rank(b)) {
                best = Some(found);
            }
        }
    }
    Ok(best)
}

/// `Upload-Limit`: the largest upload, and (for an upload) the seconds it has left.
fn upload_limit(state: &AppState, v: Interop, upload: Option<&TusUpload>) -> HeaderValue {
    let mut limit = format!(
        "max-size={}, min-size=0",
        state.engine.config().max_file_size
    );
    if let Some(u) = upload.filter(|u| u.file_id.is_none()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let left = (u.expires_at - now).max(0) / 1000;
        limit.push_str(&format!(", {}={left}", v.age_key()));
    }
    hv(&limit)
}

fn upload_fields(resp: &mut Response, state: &AppState, v: Interop, u: &TusUpload) {
    let hs = resp.headers_mut();
    hs.insert("upload-offset", HeaderValue::from(u.offset));
    hs.insert(
        "upload-complete",
        HeaderValue::from_static(if u.file_id.is_some() { "?1" } else { "?0" }),
    );
    if let Some(l) = u.length {
        hs.insert("upload-length", HeaderValue::from(l));
    }
    hs.insert("upload-limit", upload_limit(state, v, Some(u)));
}

/// `OPTIONS` naming an interop version: what appends must look like and the limits.
pub fn options(state: &AppState, v: Interop, resp: &mut Response) {
    let hs = resp.headers_mut();
    hs.insert("accept-patch", HeaderValue::from_static(PARTIAL_UPLOAD));
    hs.insert("upload-limit", upload_limit(state, v, None));
}

/// Serves one request of this protocol; errors are JSON, the draft's problem types as
/// `application/problem+json` (with the house `code` and `msg` beside `type` and `title`).
pub async fn handle(
    v: Interop,
    method: &Method,
    id: &str,
    headers: &HeaderMap,
    state: &State,
    caller: Caller,
    body: ByteStream,
) -> Response {
    let mut created = None;
    let result = match (method, id.is_empty()) {
        (&Method::POST, true) => {
            with_drained_body(body, 1 << 20, |b| {
                create(v, headers, state, caller, b, &mut created)
            })
            .await
        }
        (&Method::HEAD, false) => status(v, id, headers, state, caller).await,
        (&Method::PATCH, false) => {
            with_drained_body(body, 1 << 20, |b| append(v, id, headers, state, caller, b)).await
        }
        // Cancellation is tus termination: `204`.
        (&Method::DELETE, false) => terminate(id, state, caller).await,
        _ => Err(ApiError::MethodNotAllowed),
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            let provided = size(headers, "upload-offset").ok().flatten();
            let mut resp = error_response(v, e, provided, state);
            // The upload exists even though its first bytes were refused: say where.
            if let Some(location) = created {
                resp.headers_mut().insert(header::LOCATION, hv(&location));
            }
            resp
        }
    }
}

fn error_response(v: Interop, e: ApiError, provided: Option<u64>, state: &AppState) -> Response {
    let problem = match &e {
        ApiError::Engine(EngineError::OffsetMismatch { expected }) => Some((
            "mismatching-upload-offset",
            "offset from request does not match offset of resource",
            serde_json::json!({ "expected-offset": expected, "provided-offset": provided }),
            Some(*expected),
        )),
        ApiError::CompletedUpload { .. } => Some((
            "completed-upload",
            "upload is already completed",
            serde_json::json!({}),
            None,
        )),
        ApiError::InconsistentLength => Some((
            "inconsistent-upload-length",
            "inconsistent length values",
            serde_json::json!({}),
            None,
        )),
        _ => None,
    };
    let (status, code) = e.status_and_code();
    let mut resp = match problem {
        None => e.into_response(),
        Some((kind, title, mut extra, offset)) => {
            extra["type"] = format!("{PROBLEM}{kind}").into();
            extra["title"] = title.into();
            extra["code"] = code.into();
            extra["msg"] = e.public_message().into();
            if let Ok(id) = crate::ops::REQUEST_ID.try_with(Clone::clone) {
                extra["request_id"] = id.into();
            }
            let mut bytes = serde_json::to_vec(&extra).unwrap_or_default();
            bytes.push(b'\n');
            let mut r = Response::new(bytes.into());
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            if let Some(offset) = offset {
                r.headers_mut()
                    .insert("upload-offset", HeaderValue::from(offset));
            }
            r
        }
    };
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut()
            .insert("upload-limit", upload_limit(state, v, None));
    }
    resp
}

fn has_body(headers: &HeaderMap, content_length: Option<u64>) -> bool {
    content_length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING)
}

fn upload_id(id: &str) -> Result<UploadId, ApiError> {
    Ok(UploadId::parse(id)?)
}

/// After an append with `Upload-Complete: ?1`: an upload of unknown length ends where its
/// bytes end; one of known length must have reached it.
async fn finish(state: &State, user: &User, record: TusUpload) -> Result<TusUpload, ApiError> {
    if record.file_id.is_some() {
        return Ok(record);
    }
    if record.length.is_some() {
        return Err(ApiError::InconsistentLength);
    }
    Ok(state
        .engine
        .uploads()
        .tus_append(
            user,
            &record.id,
            record.offset,
            Some(record.offset),
            futures::stream::empty().boxed(),
            AppendChecks::default(),
        )
        .await?)
}

async fn create(
    v: Interop,
    headers: &HeaderMap,
    state: &State,
    caller: Caller,
    body: ByteStream,
    created: &mut Option<String>,
) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    let complete =
        boolean(headers, "upload-complete")?.ok_or(ApiError::MissingParam("Upload-Complete"))?;
    let declared = size(headers, "upload-length")?;
    let content_length = uint_header(headers, "content-length")?;
    let length = match (complete, declared, content_length) {
        (true, Some(l), Some(c)) if l != c => return Err(ApiError::InconsistentLength),
        (true, None, Some(c)) => Some(c),
        (_, l, _) => l,
    };
    if let (Some(l), Some(c)) = (length, content_length) {
        if c > l {
            return Err(ApiError::InconsistentLength);
        }
    }
    let digest = content_digest(headers)?;
    let repr = repr_digest(headers)?;
    let metadata = h(headers, "upload-metadata").unwrap_or_default().to_owned();
    let name = metadata_file_name(&metadata)?.unwrap_or_else(|| "upload".to_owned());
    let uploads = state.engine.uploads();
    // In trusted mode a `Repr-Digest: sha` of stored content completes the upload here, its
    // bytes unread (instant upload).
    let mut record = uploads
        .tus_create(
            &user,
            TusCreate::new(length, metadata, name).with_digest(repr),
        )
        .await?;
    let location = format!("{}/files/{}", state.base_url(h(headers, "host")), record.id);
    *created = Some(location.clone());
    if has_body(headers, content_length) && record.file_id.is_none() {
        record = uploads
            .tus_append(
                &user,
                &record.id,
                0,
                None,
                body,
                AppendChecks::content(digest),
            )
            .await?;
    }
    if complete {
        record = finish(state, &user, record).await?;
    }
    let mut resp = empty(StatusCode::CREATED);
    resp.headers_mut().insert(header::LOCATION, hv(&location));
    upload_fields(&mut resp, state, v, &record);
    Ok(resp)
}

async fn status(
    v: Interop,
    id: &str,
    headers: &HeaderMap,
    state: &State,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    for name in ["upload-offset", "upload-complete", "upload-length"] {
        if headers.contains_key(name) {
            return Err(ApiError::BadParam {
                name: "HEAD",
                reason: format!("an offset retrieval carries no {name}"),
            });
        }
    }
    let record = state
        .engine
        .uploads()
        .tus_status(&user, &upload_id(id)?)
        .await?;
    let mut resp = empty(StatusCode::NO_CONTENT);
    upload_fields(&mut resp, state, v, &record);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn append(
    v: Interop,
    id: &str,
    headers: &HeaderMap,
    state: &State,
    caller: Caller,
    body: ByteStream,
) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    if v.typed_appends()
        && !h(headers, "content-type")
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(PARTIAL_UPLOAD))
    {
        return Err(ApiError::UnsupportedMediaType {
            expected: PARTIAL_UPLOAD,
        });
    }
    let offset = size(headers, "upload-offset")?.ok_or(ApiError::MissingParam("Upload-Offset"))?;
    let complete =
        boolean(headers, "upload-complete")?.ok_or(ApiError::MissingParam("Upload-Complete"))?;
    let declared = size(headers, "upload-length")?;
    let content_length = uint_header(headers, "content-length")?;
    let checks = AppendChecks {
        content: content_digest(headers)?,
        representation: repr_digest(headers)?,
    };
    let id = upload_id(id)?;
    let uploads = state.engine.uploads();
    let record = uploads.tus_status(&user, &id).await?;
    if record.file_id.is_some() {
        // The completing request again (its answer was lost): the same answer.
        if complete && offset == record.offset && !has_body(headers, content_length) {
            let mut resp = empty(StatusCode::NO_CONTENT);
            upload_fields(&mut resp, state, v, &record);
            return Ok(resp);
        }
        return Err(ApiError::CompletedUpload {
            gone: v.completed_is_gone(),
        });
    }
    if let (Some(known), Some(d)) = (record.length, declared) {
        if known != d {
            return Err(ApiError::InconsistentLength);
        }
    }
    let end = content_length.map(|c| offset.saturating_add(c));
    let length = record.length.or(declared);
    match (length, end) {
        (Some(l), Some(e)) if e > l || (complete && e != l) => {
            return Err(ApiError::InconsistentLength)
        }
        _ => {}
    }
    // A deferred length is declared with the request that knows it.
    let declare = if record.length.is_none() {
        declared.or(if complete { end } else { None })
    } else {
        None
    };
    let mut record = uploads
        .tus_append(&user, &id, offset, declare, body, checks)
        .await?;
    if complete {
        record = finish(state, &user, record).await?;
    }
    let mut resp = empty(StatusCode::NO_CONTENT);
    upload_fields(&mut resp, state, v, &record);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn structured_fields() {
        let ok = |v: &str| size(&headers(&[("upload-offset", v)]), "upload-offset");
        assert_eq!(ok("0").unwrap(), Some(0));
        assert_eq!(ok("123456789012345").unwrap(), Some(123_456_789_012_345));
        assert_eq!(ok("42;a=1").unwrap(), Some(42));
        for bad in [
            "",
            "-1",
            "1.5",
            "abc",
            "0x10",
            "1234567890123456",
            "1 2",
            "+1",
            "42;A=1",
            "42;=1",
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
        let two = headers(&[("upload-offset", "1"), ("upload-offset", "2")]);
        assert!(size(&two, "upload-offset").is_err());
        let b = |v: &str| boolean(&headers(&[("upload-complete", v)]), "upload-complete");
        assert_eq!(b("?1").unwrap(), Some(true));
        assert_eq!(b("?0").unwrap(), Some(false));
        assert_eq!(b("?1;x").unwrap(), Some(true));
        for bad in ["1", "true", "?2", "? 1", "?1;X=1", ""] {
            assert!(b(bad).is_err(), "{bad:?}");
        }
        assert_eq!(boolean(&HeaderMap::new(), "upload-complete").unwrap(), None);
    }

    #[test]
    fn interop_versions() {
        let of = |v: &str| Interop::of(&headers(&[(INTEROP_HEADER, v)]));
        assert_eq!(of("6").unwrap(), Interop(6));
        assert_eq!(of("8").unwrap(), Interop(8));
        for bad in ["4", "9", "six", ""] {
            assert!(of(bad).is_err(), "{bad:?}");
        }
        assert!(!Interop(5).typed_appends() && Interop(6).typed_appends());
        assert_eq!(Interop(6).age_key(), "expires");
        assert_eq!(Interop(7).age_key(), "max-age");
    }

    #[test]
    fn digests() {
        let d = |v: &str| content_digest(&headers(&[("content-digest", v)]));
        let sha256 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let md5 = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
        assert_eq!(
            d(&format!("md5=:{md5}:, sha-256=:{sha256}:")).unwrap(),
            Some(Checksum::Sha256([7; 32]))
        );
        assert_eq!(d("unixsum=:AAAA:").unwrap(), None);
        assert!(d(&format!("sha-256=:{md5}:")).is_err());
        assert!(d("sha-256=abc").is_err());
        assert!(d("sha-256").is_err());
    }

    #[test]
    fn problem_codes_are_stable() {
        assert_eq!(
            ApiError::CompletedUpload { gone: true }.status_and_code(),
            (StatusCode::GONE, codes::COMPLETED_UPLOAD)
        );
        assert_eq!(
            ApiError::CompletedUpload { gone: false }
                .status_and_code()
                .0,
            StatusCode::BAD_REQUEST
        );
    }
}
