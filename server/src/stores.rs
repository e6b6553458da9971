//! Named blob stores from the command line: `--store NAME=URL`.
//!
//! - `local:PATH` (or `local:///abs/path`): a directory on this node (or a shared mount).
//! - `s3://BUCKET[/PREFIX]?endpoint=URL&region=R&style=path|virtual&min_part=SIZE&part=SIZE`:
//!   an S3-compatible store (Ceph RGW, MinIO, AWS). Path-style by default.
//! - `oss://BUCKET[/PREFIX]?endpoint=URL&…`: Aliyun OSS: virtual-hosted, 100 KB minimum part.
//!
//! Credentials never go in the URL (a URL with a user or password is refused, so they stay
//! out of process listings and logs). They come from `credentials=FILE` (lines
//! `access_key_id = …` and `secret_access_key = …`), else from the environment:
//! `CHUNKVAULT_STORE_<NAME>_ACCESS_KEY_ID` / `…_SECRET_ACCESS_KEY`, else `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`.

use std::path::PathBuf;
use std::sync::Arc;

use chunkvault_engine::{BlobStaging, LocalBlobStore};

use crate::config::parse_size;

/// One `--store` value, parsed but not opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    pub name: String,
    pub kind: StoreKind,
}

#[derive(Clone, PartialEq, Eq)]
pub enum StoreKind {
    Local(PathBuf),
    S3(S3Spec),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Spec {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub virtual_hosted: bool,
    pub min_part_size: u64,
    pub buffer_part_size: u64,
    pub credentials: Option<PathBuf>,
}

impl std::fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreKind::Local(p) => write!(f, "local:{}", p.display()),
            StoreKind::S3(s) => write!(
                f,
                "s3://{}/{} at {} ({}, {}-style, parts ≥ {} B)",
                s.bucket,
                s.prefix,
                s.endpoint,
                s.region,
                if s.virtual_hosted { "virtual" } else { "path" },
                s.min_part_size
            ),
        }
    }
}

/// Temp files older than this are leftovers of a crash (uploads in flight are much younger).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

const S3_MIN_PART: u64 = 5 * 1024 * 1024;
const OSS_MIN_PART: u64 = 100 * 1024;
const DEFAULT_BUFFER_PART: u64 = 8 * 1024 * 1024;

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses `NAME=URL` (clap value parser).
pub fn parse_store(s: &str) -> Result<StoreSpec, String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=URL"))?;
    if !valid_name(name) {
        return Err(format!(
            "store name {name:?} must be 1-32 of a-z, 0-9, '-', '_'"
        ));
    }
    let kind = if let Some(path) = url.strip_prefix("local:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(format!("store {name}: local store needs a directory"));
        }
        StoreKind::Local(PathBuf::from(path))
    } else if url.starts_with("s3://") || url.starts_with("oss://") {
        StoreKind::S3(parse_s3(name, url)?)
    } else {
        return Err(format!(
            "store {name}: URL must start with local:, s3:// or oss://"
        ));
    };
    Ok(StoreSpec {
        name: name.to_owned(),
        kind,
    })
}

fn parse_s3(name: &str, raw: &str) -> Result<S3Spec, String> {
    // Checked before parsing, which would resolve the dots away.
    let raw_path = raw.split('?').next().unwrap_or_default();
    if raw_path
        .split('/')
        .skip(3)
        .any(|seg| seg == "." || seg == ".." || seg.eq_ignore_ascii_case("%2e%2e"))
    {
        return Err(format!("store {name}: prefix must not contain . or .."));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("store {name}: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "store {name}: credentials do not belong in the URL; use credentials=FILE or \
             CHUNKVAULT_STORE_{}_ACCESS_KEY_ID / _SECRET_ACCESS_KEY",
            env_name(name)
        ));
    }
    let oss = url.scheme() == "oss";
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("store {name}: no bucket in {raw:?}"))?
        .to_owned();
    let prefix = url.path().trim_matches('/').to_owned();
    let mut spec = S3Spec {
        endpoint: String::new(),
        region: "us-east-1".into(),
        bucket,
        prefix,
        virtual_hosted: oss,
        min_part_size: if oss { OSS_MIN_PART } else { S3_MIN_PART },
        buffer_part_size: DEFAULT_BUFFER_PART,
        credentials: None,
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "endpoint" => {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(format!(
                        "store {name}: endpoint must be http(s)://host[:port]"
                    ));
                }
                spec.endpoint = v.into_owned();
            }
            "region" => spec.region = v.into_owned(),
            "style" => {
                spec.virtual_hosted = match v.as_ref() {
                    "path" => false,
                    "virtual" => true,
                    other => {
                        return Err(format!(
                            "store {name}: style must be path or virtual, not {other:?}"
                        ))
                    }
                }
            }
            "min_part" => {
                spec.min_part_size = parse_size(&v).map_err(|e| format!("store {name}: {e}"))?
            }
            "part" => {
                spec.buffer_part_size = parse_size(&v).map_err(|e| format!("store {name}: {e}"))?
            }
            "credentials" => spec.credentials = Some(PathBuf::from(v.into_owned())),
            other => return Err(format!("store {name}: unknown setting {other:?}")),
        }
    }
    if spec.endpoint.is_empty() {
        return Err(format!("store {name}: endpoint=URL is required"));
    }
    if spec.buffer_part_size < spec.min_part_size {
        spec.buffer_part_size = spec.min_part_size;
    }
    Ok(spec)
}

fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Reads the access key pair for store `name`; the error never contains a secret.
fn credentials(name: &str, spec: &S3Spec) -> anyhow::Result<(String, String)> {
    if let Some(path) = &spec.credentials {
        #[allow(clippy::disallowed_methods)] // start-up, before serving
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "store {name}: cannot read credentials file {}: {e}",
                path.display()
            )
        })?;
        let mut key = None;
        let mut secret = None;
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "access_key_id" | "aws_access_key_id" => key = Some(v.trim().to_owned()),
                "secret_access_key" | "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        return match (key, secret) {
            (Some(k), Some(s)) if !k.is_empty() && !s.is_empty() => Ok((k, s)),
            _ => Err(anyhow::anyhow!(
                "store {name}: credentials file {} lacks access_key_id or secret_access_key",
                path.display()
            )),
        };
    }
    let env = env_name(name);
    let pick = |specific: String, general: &str| {
        std::env::var(&specific)
            .ok()
            .or_else(|| std::env::var(general).ok())
            .filter(|v| !v.is_empty())
    };
    match (
        pick(
            format!("CHUNKVAULT_STORE_{env}_ACCESS_KEY_ID"),
            "AWS_ACCESS_KEY_ID",
        ),
        pick(
            format!("CHUNKVAULT_STORE_{env}_SECRET_ACCESS_KEY"),
            "AWS_SECRET_ACCESS_KEY",
        ),
    ) {
        (Some(k), Some(s)) => Ok((k, s)),
        _ => Err(anyhow::anyhow!(
            "store {name}: no credentials: set credentials=FILE, or \
             CHUNKVAULT_STORE_{env}_ACCESS_KEY_ID and CHUNKVAULT_STORE_{env}_SECRET_ACCESS_KEY"
        )),
    }
}

/// Opens one store (every backend can stage uploads; the engine stages in its upload store).
pub async fn open(spec: &StoreSpec) -> anyhow::Result<Arc<dyn BlobStaging>> {
    match &spec.kind {
        StoreKind::Local(dir) => {
            let store = LocalBlobStore::open(spec.name.clone(), dir.clone())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("store {}: cannot open {}: {e}", spec.name, dir.display())
                })?;
            store.sweep_temp(STALE_TEMP).await?;
            Ok(Arc::new(store))
        }
        StoreKind::S3(s) => open_s3(&spec.name, s),
    }
}

#[cfg(feature = "s3")]
fn open_s3(name: &str, s: &S3Spec) -> anyhow::Result<Arc<dyn BlobStaging>> {
    use chunkvault_engine::blobs::{S3BlobStore, S3Config};
    let (access_key, secret_key) = credentials(name, s)?;
    let store = S3BlobStore::new(
        name,
        S3Config {
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            bucket: s.bucket.clone(),
            prefix: s.prefix.clone(),
            virtual_hosted: s.virtual_hosted,
            access_key,
            secret_key,
            min_part_size: s.min_part_size,
            buffer_part_size: s.buffer_part_size,
        },
    )
    .map_err(|e| anyhow::anyhow!("store {name}: {e}"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
fn open_s3(name: &str, s: &S3Spec) -> anyhow::Result<Arc<dyn BlobStaging>> {
    let _ = credentials(name, s)?;
    Err(anyhow::anyhow!(
        "store {name}: this binary was built without the s3 feature"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        let s = parse_store(
            "ceph=s3://bucket/some/prefix?endpoint=http://127.0.0.1:7480&region=default",
        )
        .unwrap();
        let StoreKind::S3(spec) = s.kind else {
            panic!("not s3")
        };
        assert_eq!(s.name, "ceph");
        assert_eq!(spec.bucket, "bucket");
        assert_eq!(spec.prefix, "some/prefix");
        assert_eq!(spec.region, "default");
        assert!(!spec.virtual_hosted);
        assert_eq!(spec.min_part_size, S3_MIN_PART);

        let s = parse_store("oss=oss://b?endpoint=https://oss-cn-hangzhou.aliyuncs.com").unwrap();
        let StoreKind::S3(spec) = s.kind else {
            panic!("not s3")
        };
        assert!(spec.virtual_hosted);
        assert_eq!(spec.min_part_size, OSS_MIN_PART);
        assert_eq!(spec.prefix, "");

        assert_eq!(
            parse_store("cold=local:/mnt/cold").unwrap().kind,
            StoreKind::Local("/mnt/cold".into())
        );
    }

    #[test]
    fn refuses_bad_store_urls() {
        for bad in [
            "noequals",
            "Bad Name=local:/x",
            "x=local:",
            "x=ftp://host/b",
            "x=s3://bucket",
            "x=s3://key:secret@bucket?endpoint=http://h",
            "x=s3://bucket/../up?endpoint=http://h",
            "x=s3://bucket?endpoint=h:1",
            "x=s3://bucket?endpoint=http://h&style=sideways",
            "x=s3://bucket?endpoint=http://h&colour=blue",
        ] {
            assert!(parse_store(bad).is_err(), "{bad}");
        }
        let err = parse_store("x=s3://key:secret@bucket?endpoint=http://h").unwrap_err();
        assert!(
            !err.contains("secret@") && !err.contains(":secret"),
            "{err}"
        );
    }
}
