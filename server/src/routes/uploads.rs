//! The REST upload resource: `POST /uploads`, `PUT /uploads/{id}/parts/{n}`,
//! `GET /uploads[/{id}]`, `POST /uploads/{id}/complete`, `DELETE /uploads/{id}`.

use base64::Engine as _;
use chunkvault_engine::{
    ByteStream, Checksum, InitOutcome, InitRequest, Sha1Hex, UploadId, UploadStatus, UserFile,
};
use serde::{Deserialize, Serialize};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::params::{read_limited, MAX_FORM_BYTES};
use super::{body_stream, caller, query_params, timestamp, with_drained_body, Caller, State};
use crate::error::{ok, ok_with_status, reply, ApiError};

pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let auth = || caller(state.clone(), query_params());
    let create = warp::path!("uploads")
        .and(warp::post())
        .and(auth())
        .and(warp::body::stream().then(|b| async move { read_limited(b, MAX_FORM_BYTES).await }))
        .then(create);
    let prove = warp::path!("uploads" / "proof")
        .and(warp::post())
        .and(auth())
        .and(warp::body::stream().then(|b| async move { read_limited(b, MAX_FORM_BYTES).await }))
        .then(prove);
    let list = warp::path!("uploads")
        .and(warp::get())
        .and(auth())
        .then(list);
    let status = warp::path!("uploads" / String)
        .and(warp::get())
        .and(auth())
        .then(status);
    let put_part = warp::path!("uploads" / String / "parts" / String)
        .and(warp::put())
        .and(auth())
        .and(
            warp::header::optional::<String>("content-md5")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(
            warp::header::optional::<String>(CRC32C_HEADER)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(body_stream())
        .then(put_part);
    let complete = warp::path!("uploads" / String / "complete")
        .and(warp::post())
        .and(auth())
        .then(complete);
    let abort = warp::path!("uploads" / String)
        .and(warp::delete())
        .and(auth())
        .then(abort);
    create
        .or(prove)
        .unify()
        .or(list)
        .unify()
        .or(status)
        .unify()
        .or(put_part)
        .unify()
        .or(complete)
        .unify()
        .or(abort)
        .unify()
        .map(reply)
        .boxed()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    filename: String,
    size: u64,
    sha1: String,
    chunk_size: Option<u64>,
}

#[derive(Serialize)]
pub struct FileView {
    id: String,
    name: String,
    sha1: String,
    size: u64,
    uploaded_at: String,
    updated_at: String,
}

impl From<&UserFile> for FileView {
    fn from(f: &UserFile) -> Self {
        FileView {
            id: f.id.as_str().to_owned(),
            name: f.name.clone(),
            sha1: f.sha1.to_string(),
            size: f.size,
            uploaded_at: timestamp(f.uploaded_at),
            updated_at: timestamp(f.updated_at),
        }
    }
}

#[derive(Serialize)]
pub struct SessionView {
    upload_id: String,
    filename: String,
    size: u64,
    sha1: String,
    chunk_size: u64,
    chunk_count: u32,
    received: Vec<u32>,
    missing: u32,
    bytes_received: u64,
    created_at: String,
    expires_at: String,
}

impl From<&UploadStatus> for SessionView {
    fn from(s: &UploadStatus) -> Self {
        SessionView {
            upload_id: s.session.id.to_string(),
            filename: s.session.file_name.clone(),
            size: s.session.size,
            sha1: s.session.sha1.to_string(),
            chunk_size: s.session.chunk_size,
            chunk_count: s.session.chunk_count,
            received: s.received.clone(),
            missing: s.missing,
            bytes_received: s.bytes_received,
            created_at: timestamp(s.session.created_at),
            expires_at: timestamp(s.session.expires_at),
        }
    }
}

#[derive(Serialize)]
struct Instant {
    instant: bool,
    file: FileView,
}

/// A proof-of-ownership challenge: return the SHA-256 (hex) of each `[start, end)` range of
/// the file, in order, to `POST /uploads/proof` before `expires_at`.
#[derive(Serialize)]
pub struct ChallengeView {
    id: String,
    ranges: Vec<[u64; 2]>,
    algorithm: &'static str,
    expires_at: String,
}

impl From<&chunkvault_engine::uploads::proof::Challenge> for ChallengeView {
    fn from(c: &chunkvault_engine::uploads::proof::Challenge) -> Self {
        ChallengeView {
            id: c.id.clone(),
            ranges: c.ranges.iter().map(|r| [r.start, r.end]).collect(),
            algorithm: "sha256",
            expires_at: timestamp(c.expires_at),
        }
    }
}

#[derive(Serialize)]
struct Challenged {
    instant: bool,
    challenge: ChallengeView,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofBody {
    challenge: String,
    digests: Vec<String>,
}

/// `POST /uploads/proof`: right digests link the file (instant); wrong ones start a normal
/// upload session of the same file.
async fn prove(
    state: State,
    caller: Caller,
    body: Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    use chunkvault_engine::uploads::proof::Proof;
    let (user, _) = caller?;
    let body: ProofBody = serde_json::from_slice(&body?).map_err(|e| {
        ApiError::bad(
            "body",
            format!("expected JSON {{challenge, digests: [hex sha256, …]}}: {e}"),
        )
    })?;
    match state
        .engine
        .uploads()
        .prove(&user, &body.challenge, &body.digests)
        .await?
    {
        Proof::Linked(file) => session_reply(InitOutcome::Instant(file)),
        Proof::Refused(req) => {
            session_reply(state.engine.uploads().init_upload_bytes(&user, req).await?)
        }
    }
}

fn session_reply(outcome: InitOutcome) -> Result<Response, ApiError> {
    Ok(match outcome {
        InitOutcome::Instant(file) => ok(Instant {
            instant: true,
            file: FileView::from(&file),
        }),
        InitOutcome::Challenge(c) => ok(Challenged {
            instant: false,
            challenge: ChallengeView::from(&c),
        }),
        InitOutcome::Session { status, created } => {
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            ok_with_status(code, SessionView::from(&status))
        }
    })
}

async fn create(
    state: State,
    caller: Caller,
    body: Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    let body: CreateBody = serde_json::from_slice(&body?).map_err(|e| {
        ApiError::bad(
            "body",
            format!("expected JSON {{filename, size, sha1, chunk_size?}}: {e}"),
        )
    })?;
    let sha1 = Sha1Hex::parse(&body.sha1)
        .map_err(|_| ApiError::bad("sha1", "must be 40 hex characters"))?;
    let req = InitRequest::new(body.filename, body.size, sha1, body.chunk_size);
    session_reply(state.engine.uploads().init_upload(&user, req).await?)
}

async fn list(state: State, caller: Caller) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    let all = state.engine.uploads().list_uploads(&user).await?;
    Ok(ok(all.iter().map(SessionView::from).collect::<Vec<_>>()))
}

async fn status(id: String, state: State, caller: Caller) -> Result<Response, ApiError> {
    refuse_proof_path(&id)?;
    let (user, _) = caller?;
    let status = state
        .engine
        .uploads()
        .upload_status(&user, &UploadId::parse(&id)?)
        .await?;
    Ok(ok(SessionView::from(&status)))
}

/// `/uploads/proof` is a resource of its own (POST only), not an upload id: GET and DELETE on it
/// are 405, not "no such upload".
fn refuse_proof_path(id: &str) -> Result<(), ApiError> {
    if id == "proof" {
        return Err(ApiError::MethodNotAllowed);
    }
    Ok(())
}

/// `Content-MD5`: base64 of the 16-byte MD5 (RFC 1864).
pub fn content_md5(header: Option<String>) -> Result<Option<Checksum>, ApiError> {
    let Some(h) = header else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(h.trim())
        .map_err(|_| ApiError::bad("Content-MD5", "must be base64"))?;
    let md5: [u8; 16] = bytes
        .try_into()
        .map_err(|_| ApiError::bad("Content-MD5", "must be 16 bytes"))?;
    Ok(Some(Checksum::Md5(md5)))
}

pub use chunkvault_api::CRC32C_HEADER;

/// The digest a part comes with: `Content-MD5` or `x-amz-checksum-crc32c`, not both.
pub fn part_digest(
    md5: Option<String>,
    crc32c: Option<String>,
) -> Result<Option<Checksum>, ApiError> {
    let Some(c) = crc32c else {
        return content_md5(md5);
    };
    if md5.is_some() {
        return Err(ApiError::bad(
            CRC32C_HEADER,
            "send either Content-MD5 or x-amz-checksum-crc32c, not both",
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(c.trim())
        .map_err(|_| ApiError::bad(CRC32C_HEADER, "must be base64"))?;
    let crc: [u8; 4] = bytes
        .try_into()
        .map_err(|_| ApiError::bad(CRC32C_HEADER, "must be 4 bytes"))?;
    Ok(Some(Checksum::Crc32c(u32::from_be_bytes(crc))))
}

/// A 1-based part number.
pub fn part_number(s: &str, name: &'static str) -> Result<u32, ApiError> {
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::bad(name, "must be a part number from 1")),
    }
}

/// Most of a refused part that is read and discarded to keep the connection: the largest part.
const DRAIN_LIMIT: u64 = chunkvault_engine::uploads::MAX_CHUNK_SIZE + 1;

#[allow(clippy::too_many_arguments)]
async fn put_part(
    id: String,
    n: String,
    state: State,
    caller: Caller,
    md5: Option<String>,
    crc32c: Option<String>,
    body: ByteStream,
) -> Result<Response, ApiError> {
    with_drained_body(body, DRAIN_LIMIT, |body| async move {
        let (user, _) = caller?;
        let id = UploadId::parse(&id)?;
        let n = part_number(&n, "part")?;
        let digest = part_digest(md5, crc32c)?;
        let status = state
            .engine
            .uploads()
            .put_part(&user, &id, n, body, digest)
            .await?;
        Ok(ok(SessionView::from(&status)))
    })
    .await
}

async fn complete(id: String, state: State, caller: Caller) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    let file = state
        .engine
        .uploads()
        .complete_upload(&user, &UploadId::parse(&id)?)
        .await?;
    Ok(ok_with_status(StatusCode::CREATED, FileView::from(&file)))
}

async fn abort(id: String, state: State, caller: Caller) -> Result<Response, ApiError> {
    refuse_proof_path(&id)?;
    let (user, _) = caller?;
    state
        .engine
        .uploads()
        .abort_upload(&user, &UploadId::parse(&id)?)
        .await?;
    Ok(ok(serde_json::Value::Null))
}
