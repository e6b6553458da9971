//! The seed's chunked upload and instant upload: `/file/fastupload`,
//! `/file/mpupload/{init,uppart,complete,cancel,status}` — the same engine calls as `/uploads`.

use chunkvault_engine::{
    ByteStream, Checksum, Error as EngineError, FileName, InitOutcome, InitRequest, Sha1Hex,
    UploadId, UploadStatus,
};
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{accept, file_meta, json, reply, resp_ok, Accept, FileMeta, RespMsg};
use crate::error::ApiError;
use crate::routes::params::params;
use crate::routes::uploads::part_number;
use crate::routes::uploads::ChallengeView;
use crate::routes::{body_stream, caller, query_params, with_drained_body, Caller, Params, State};
use chunkvault_engine::uploads::proof::{Claim, Proof};

pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let get_or_post = || warp::get().or(warp::post()).unify();
    let signed_in = || accept().and(caller(state.clone(), params()));
    let fast = warp::path!("file" / "fastupload")
        .and(warp::post())
        .and(signed_in())
        .then(fastupload);
    let init = warp::path!("file" / "mpupload" / "init")
        .and(warp::post())
        .and(signed_in())
        .then(init);
    // The part is the raw body, whatever its content type: parameters come from the query only.
    let uppart = warp::path!("file" / "mpupload" / "uppart")
        .and(warp::post().or(warp::put()).unify())
        .and(accept())
        .and(caller(state.clone(), query_params()))
        .and(body_stream())
        .then(uppart);
    let complete = warp::path!("file" / "mpupload" / "complete")
        .and(warp::post())
        .and(signed_in())
        .then(complete);
    let cancel = warp::path!("file" / "mpupload" / "cancel")
        .and(warp::post())
        .and(signed_in())
        .then(cancel);
    let status = warp::path!("file" / "mpupload" / "status")
        .and(get_or_post())
        .and(signed_in())
        .then(status);
    fast.or(init)
        .unify()
        .or(uppart)
        .unify()
        .or(complete)
        .unify()
        .or(cancel)
        .unify()
        .or(status)
        .unify()
        .boxed()
}

fn size_param(params: &Params) -> Result<u64, ApiError> {
    params
        .uint("filesize")?
        .ok_or(ApiError::MissingParam("filesize"))
}

/// The original's answers to `/file/fastupload`.
const FAST_OK: &str = "秒传成功";
const FAST_FALLBACK: &str = "秒传失败，请访问普通上传接口";

/// `{"code": -1, "msg": "秒传失败，请访问普通上传接口"}`: the original's "upload it normally". A
/// client that can prove it holds the content finds the challenge beside it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Fallback {
    challenge: ChallengeView,
}

fn fast_fallback(accept: Accept, challenge: Option<Fallback>) -> Response {
    json(
        accept,
        &RespMsg {
            code: -1,
            msg: FAST_FALLBACK,
            data: challenge,
        },
    )
}

async fn fast_linked(
    accept: Accept,
    state: &State,
    file: &chunkvault_engine::UserFile,
) -> Result<Response, ApiError> {
    let meta: FileMeta = file_meta(state, file).await?;
    Ok(json(
        accept,
        &RespMsg {
            code: 0,
            msg: FAST_OK,
            data: meta,
        },
    ))
}

/// Instant upload: code 0 only when the file is linked to the caller. Content the store does
/// not hold, a claim that needs a proof of ownership, and a wrong proof all answer the
/// original's fallback code, so a client that cannot answer the challenge uploads normally.
async fn fastupload(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let sha1 = Sha1Hex::parse(params.require("filehash")?)?;
        let name = FileName::parse(params.require("filename")?)?;
        // The original's test client sends no size: without one nothing can be claimed.
        let Some(size) = params.uint("filesize")? else {
            return Ok(fast_fallback(accept, None));
        };
        let limit = state.engine.config().max_file_size;
        if size > limit {
            return Err(EngineError::TooLarge { limit }.into());
        }
        // The answer to a challenge: `challenge` and `digests` (comma-separated, hex SHA-256).
        // An empty `challenge` is no challenge, as with every optional parameter; no `digests`
        // is a wrong answer.
        if let Some(challenge) = params.get("challenge").filter(|c| !c.is_empty()) {
            let digests: Vec<String> = params
                .get("digests")
                .unwrap_or_default()
                .split(',')
                .map(str::to_owned)
                .collect();
            return match state
                .engine
                .uploads()
                .prove(&user, challenge, &digests)
                .await
            {
                Ok(Proof::Linked(file)) => fast_linked(accept, &state, &file).await,
                // A wrong answer, or a challenge unknown, used or expired: upload normally.
                Ok(Proof::Refused(_)) | Err(EngineError::NotFound { .. }) => {
                    Ok(fast_fallback(accept, None))
                }
                Err(e) => Err(e.into()),
            };
        }
        match state
            .engine
            .uploads()
            .claim_instant(&user, &sha1, size, &name, None)
            .await?
        {
            Some(Claim::Linked(file)) => fast_linked(accept, &state, &file).await,
            Some(Claim::Challenge(c)) => Ok(fast_fallback(
                accept,
                Some(Fallback {
                    challenge: ChallengeView::from(&c),
                }),
            )),
            None => Ok(fast_fallback(accept, None)),
        }
    };
    reply(accept, result.await)
}

/// The original's `MultipartUploadInfo` (2020 edition, with the parts already received).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MpInfo {
    file_hash: String,
    file_size: u64,
    #[serde(rename = "UploadID")]
    upload_id: String,
    chunk_size: u64,
    chunk_count: u32,
    chunk_exists: Vec<u32>,
}

impl From<&UploadStatus> for MpInfo {
    fn from(s: &UploadStatus) -> Self {
        MpInfo {
            file_hash: s.session.sha1.to_string(),
            file_size: s.session.size,
            upload_id: s.session.id.to_string(),
            chunk_size: s.session.chunk_size,
            chunk_count: s.session.chunk_count,
            chunk_exists: s.received.clone(),
        }
    }
}

/// The original's `FileAlreadExists`: the caller holds this content already.
const FILE_ALREADY_EXISTS: i32 = 10006;

fn already_exists(accept: Accept) -> Response {
    json(
        accept,
        &RespMsg {
            code: FILE_ALREADY_EXISTS,
            msg: "file already exists",
            data: serde_json::Value::Null,
        },
    )
}

/// Starts (or resumes: the same caller, content and name) a chunked upload.
async fn init(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let sha1 = Sha1Hex::parse(params.require("filehash")?)?;
        let size = size_param(&params)?;
        // The seed's init had no file name; default to the hash.
        let name = params
            .get("filename")
            .filter(|n| !n.is_empty())
            .unwrap_or(sha1.as_str())
            .to_owned();
        let chunk = params.uint("chunksize")?;
        // The original's 2020 edition: a file the caller holds already is not uploaded again.
        match state.engine.files().file(&user, &sha1, None).await {
            Ok(_) => return Ok(already_exists(accept)),
            Err(EngineError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let req = InitRequest::new(name, size, sha1.clone(), chunk);
        let outcome = match state
            .engine
            .uploads()
            .init_upload(&user, req.clone())
            .await?
        {
            // The seed's clients cannot answer a challenge: they upload the bytes (stored once).
            InitOutcome::Challenge(_) => {
                state.engine.uploads().init_upload_bytes(&user, req).await?
            }
            other => other,
        };
        Ok::<_, ApiError>(match outcome {
            InitOutcome::Session { status, .. } => resp_ok(accept, MpInfo::from(&status)),
            // Linked without sending a byte (trusted instant upload): the original's answer for
            // a file the user holds already, on which its clients stop.
            InitOutcome::Instant(_) | InitOutcome::Challenge(_) => already_exists(accept),
        })
    };
    reply(accept, result.await)
}

/// `chkhash`: hex SHA1 of the part.
pub fn chkhash(params: &Params) -> Result<Option<Checksum>, ApiError> {
    match params.get("chkhash") {
        None | Some("") => Ok(None),
        Some(h) => {
            let hex = Sha1Hex::parse(h)
                .map_err(|_| ApiError::bad("chkhash", "must be 40 hex characters"))?;
            let mut d = [0u8; 20];
            hex::decode_to_slice(hex.as_str(), &mut d)
                .map_err(|_| ApiError::bad("chkhash", "must be hex"))?;
            Ok(Some(Checksum::Sha1(d)))
        }
    }
}

async fn uppart(accept: Accept, state: State, caller: Caller, body: ByteStream) -> Response {
    let result = with_drained_body(
        body,
        chunkvault_engine::uploads::MAX_CHUNK_SIZE + 1,
        |body| async move {
            let (user, params) = caller?;
            let id = UploadId::parse(params.require("uploadid")?)?;
            let n = part_number(params.require("index")?, "index")?;
            let digest = chkhash(&params)?;
            state
                .engine
                .uploads()
                .put_part(&user, &id, n, body, digest)
                .await?;
            Ok(resp_ok(accept, serde_json::Value::Null))
        },
    )
    .await;
    reply(accept, result)
}

async fn complete(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let id = UploadId::parse(params.require("uploadid")?)?;
        let file = state.engine.uploads().complete_upload(&user, &id).await?;
        if let Some(name) = params
            .get("filename")
            .filter(|n| !n.is_empty() && *n != file.name)
        {
            state.engine.files().rename(&user, &file, name).await?;
        }
        Ok::<_, ApiError>(resp_ok(accept, serde_json::Value::Null))
    };
    reply(accept, result.await)
}

/// Cancels by `uploadid`, or (as the original's 2020 edition) every unfinished upload of the
/// caller's with content `filehash`.
async fn cancel(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        if let Some(id) = params.get("uploadid").filter(|i| !i.is_empty()) {
            state
                .engine
                .uploads()
                .abort_upload(&user, &UploadId::parse(id)?)
                .await?;
            return Ok(resp_ok(accept, serde_json::Value::Null));
        }
        let sha1 = match params.get("filehash").filter(|h| !h.is_empty()) {
            Some(h) => Sha1Hex::parse(h)?,
            None => return Err(ApiError::MissingParam("uploadid")),
        };
        let open = state.engine.uploads().list_uploads(&user).await?;
        let mine: Vec<_> = open.iter().filter(|u| u.session.sha1 == sha1).collect();
        if mine.is_empty() {
            return Err(chunkvault_engine::Error::NotFound { what: "upload" }.into());
        }
        for u in mine {
            state
                .engine
                .uploads()
                .abort_upload(&user, &u.session.id)
                .await?;
        }
        Ok(resp_ok(accept, serde_json::Value::Null))
    };
    reply(accept, result.await)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MpStatus {
    #[serde(flatten)]
    info: MpInfo,
    chunk_missing: Vec<u32>,
}

/// Not in the original (only a stub there): the parts received and missing.
async fn status(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let id = UploadId::parse(params.require("uploadid")?)?;
        let status = state.engine.uploads().upload_status(&user, &id).await?;
        let missing = (1..=status.session.chunk_count)
            .filter(|n| !status.received.contains(n))
            .collect();
        Ok::<_, ApiError>(resp_ok(
            accept,
            MpStatus {
                info: MpInfo::from(&status),
                chunk_missing: missing,
            },
        ))
    };
    reply(accept, result.await)
}
