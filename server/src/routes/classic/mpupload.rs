//! The seed's chunked upload and instant upload: `/file/fastupload`,
//! `/file/mpupload/{init,uppart,complete,cancel,status}` — the same engine calls as `/uploads`.

use chunkvault_engine::{
    ByteStream, FileName, InitOutcome, InitRequest, PartDigest, Sha1Hex, UploadId, UploadStatus,
};
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::FileMeta;
use crate::error::{ok, reply, ApiError};
use crate::routes::params::params;
use crate::routes::uploads::part_number;
use crate::routes::uploads::ChallengeView;
use crate::routes::{
    authenticate, authorization, body_stream, with_drained_body, with_state, Params, State,
};
use chunkvault_engine::uploads::proof::{Claim, Proof};

type Params_ = Result<Params, ApiError>;

pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let get_or_post = || warp::get().or(warp::post()).unify();
    let common = || with_state(state.clone()).and(authorization()).and(params());
    let fast = warp::path!("file" / "fastupload")
        .and(warp::post())
        .and(common())
        .then(fastupload);
    let init = warp::path!("file" / "mpupload" / "init")
        .and(warp::post())
        .and(common())
        .then(init);
    // The part is the raw body, whatever its content type: parameters come from the query only.
    let uppart = warp::path!("file" / "mpupload" / "uppart")
        .and(warp::post().or(warp::put()).unify())
        .and(with_state(state.clone()))
        .and(authorization())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(body_stream())
        .then(uppart);
    let complete = warp::path!("file" / "mpupload" / "complete")
        .and(warp::post())
        .and(common())
        .then(complete);
    let cancel = warp::path!("file" / "mpupload" / "cancel")
        .and(warp::post())
        .and(common())
        .then(cancel);
    let status = warp::path!("file" / "mpupload" / "status")
        .and(get_or_post())
        .and(common())
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
        .map(reply)
        .boxed()
}

fn size_param(params: &Params) -> Result<u64, ApiError> {
    params
        .uint("filesize")?
        .ok_or(ApiError::MissingParam("filesize"))
}

async fn fastupload(
    state: State,
    auth: Option<String>,
    params: Params_,
) -> Result<Response, ApiError> {
    let params = params?;
    let user = authenticate(&state, auth.as_deref(), &params).await?;
    let sha1 = Sha1Hex::parse(params.require("filehash")?)?;
    let name = FileName::parse(params.require("filename")?)?;
    let size = size_param(&params)?;
    // The answer to a challenge: `challenge` and `digests` (comma-separated, hex SHA-256). An
    // empty `challenge` is no challenge, as with every optional parameter; no `digests` is a
    // wrong answer.
    if let Some(challenge) = params.get("challenge").filter(|c| !c.is_empty()) {
        let digests: Vec<String> = params
            .get("digests")
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        return match state.engine.prove(&user, challenge, &digests).await? {
            Proof::Linked(file) => Ok(ok(FileMeta::from(&file))),
            Proof::Refused(_) => Err(ApiError::NotStored),
        };
    }
    match state
        .engine
        .claim_instant(&user, &sha1, size, &name, None)
        .await?
    {
        Some(Claim::Linked(file)) => Ok(ok(FileMeta::from(&file))),
        Some(Claim::Challenge(c)) => Ok(ok(FastChallenge {
            instant: false,
            challenge: ChallengeView::from(&c),
        })),
        None => Err(ApiError::NotStored),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FastChallenge {
    instant: bool,
    challenge: ChallengeView,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MpInfo {
    #[serde(rename = "UploadID")]
    upload_id: String,
    chunk_size: u64,
    chunk_count: u32,
    file_hash: String,
    file_size: u64,
    chunk_exists: Vec<u32>,
    /// True when the content was stored already and no part needs sending (秒传).
    instant: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileMeta>,
}

impl From<&UploadStatus> for MpInfo {
    fn from(s: &UploadStatus) -> Self {
        MpInfo {
            upload_id: s.session.id.to_string(),
            chunk_size: s.session.chunk_size,
            chunk_count: s.session.chunk_count,
            file_hash: s.session.sha1.to_string(),
            file_size: s.session.size,
            chunk_exists: s.received.clone(),
            instant: false,
            file: None,
        }
    }
}

async fn init(state: State, auth: Option<String>, params: Params_) -> Result<Response, ApiError> {
    let params = params?;
    let user = authenticate(&state, auth.as_deref(), &params).await?;
    let sha1 = Sha1Hex::parse(params.require("filehash")?)?;
    let size = size_param(&params)?;
    // The seed's init had no file name; default to the hash.
    let name = params
        .get("filename")
        .filter(|n| !n.is_empty())
        .unwrap_or(sha1.as_str())
        .to_owned();
    let chunk = params.uint("chunksize")?;
    let req = InitRequest::new(name, size, sha1.clone(), chunk);
    let outcome = match state.engine.init_upload(&user, req.clone()).await? {
        // The seed's clients cannot answer a challenge: they upload the bytes (stored once).
        InitOutcome::Challenge(_) => state.engine.init_upload_bytes(&user, req).await?,
        other => other,
    };
    Ok(match outcome {
        InitOutcome::Challenge(_) => unreachable!("init_upload_bytes never challenges"),
        InitOutcome::Session { status, .. } => ok(MpInfo::from(&status)),
        InitOutcome::Instant(file) => ok(MpInfo {
            upload_id: String::new(),
            chunk_size: 0,
            chunk_count: 0,
            file_hash: sha1.to_string(),
            file_size: size,
            chunk_exists: Vec::new(),
            instant: true,
            file: Some(FileMeta::from(&file)),
        }),
    })
}

/// `chkhash`: hex SHA1 of the part.
pub fn chkhash(params: &Params) -> Result<Option<PartDigest>, ApiError> {
    match params.get("chkhash") {
        None | Some("") => Ok(None),
        Some(h) => {
            let hex = Sha1Hex::parse(h)
                .map_err(|_| ApiError::bad("chkhash", "must be 40 hex characters"))?;
            let mut d = [0u8; 20];
            hex::decode_to_slice(hex.as_str(), &mut d)
                .map_err(|_| ApiError::bad("chkhash", "must be hex"))?;
            Ok(Some(PartDigest::Sha1(d)))
        }
    }
}

async fn uppart(
    state: State,
    auth: Option<String>,
    query: String,
    body: ByteStream,
) -> Result<Response, ApiError> {
    with_drained_body(
        body,
        chunkvault_engine::uploads::MAX_CHUNK_SIZE + 1,
        |body| async move {
            let params = Params::from_query(&query);
            let user = authenticate(&state, auth.as_deref(), &params).await?;
            let id = UploadId::parse(params.require("uploadid")?)?;
            let n = part_number(params.require("index")?, "index")?;
            let digest = chkhash(&params)?;
            let status = state.engine.put_part(&user, &id, n, body, digest).await?;
            Ok(ok(MpInfo::from(&status)))
        },
    )
    .await
}

async fn complete(
    state: State,
    auth: Option<String>,
    params: Params_,
) -> Result<Response, ApiError> {
    let params = params?;
    let user = authenticate(&state, auth.as_deref(), &params).await?;
    let id = UploadId::parse(params.require("uploadid")?)?;
    let mut file = state.engine.complete_upload(&user, &id).await?;
    if let Some(name) = params
        .get("filename")
        .filter(|n| !n.is_empty() && *n != file.name)
    {
        file = state.engine.rename(&user, &file, name).await?;
    }
    Ok(ok(FileMeta::from(&file)))
}

async fn cancel(state: State, auth: Option<String>, params: Params_) -> Result<Response, ApiError> {
    let params = params?;
    let user = authenticate(&state, auth.as_deref(), &params).await?;
    let id = UploadId::parse(params.require("uploadid")?)?;
    state.engine.abort_upload(&user, &id).await?;
    Ok(ok(serde_json::Value::Null))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MpStatus {
    #[serde(flatten)]
    info: MpInfo,
    chunk_missing: Vec<u32>,
}

async fn status(state: State, auth: Option<String>, params: Params_) -> Result<Response, ApiError> {
    let params = params?;
    let user = authenticate(&state, auth.as_deref(), &params).await?;
    let id = UploadId::parse(params.require("uploadid")?)?;
    let status = state.engine.upload_status(&user, &id).await?;
    let missing = (1..=status.session.chunk_count)
        .filter(|n| !status.received.contains(n))
        .collect();
    Ok(ok(MpStatus {
        info: MpInfo::from(&status),
        chunk_missing: missing,
    }))
}
