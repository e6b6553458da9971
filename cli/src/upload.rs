//! `chunkvault upload`: hash while reading, try instant upload, send the missing parts in
//! parallel with retries; the server's session makes a rerun resume where the last run stopped.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use serde_json::Value;
use sha1::Sha1;

use super::client::ServerError;
use super::files::human;
use super::{backoff, Api, PartCheck, UploadArgs};
use chunkvault_api::CRC32C_HEADER;

fn bar(mp: &MultiProgress, len: u64, prefix: String) -> ProgressBar {
    let bar = mp.add(ProgressBar::new(len));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

pub async fn run(api: &Api, args: &UploadArgs) -> anyhow::Result<()> {
    let mp = MultiProgress::new();
    let mut sizes = Vec::new();
    for f in &args.files {
        let meta = tokio::fs::metadata(f)
            .await
            .with_context(|| format!("{}", f.display()))?;
        if !meta.is_file() {
            bail!("{} is not a file", f.display());
        }
        sizes.push(meta.len());
    }
    // One file has one bar: a second "total" bar of the same bytes only disagreed with it (its
    // rate counted the hashing too). Several files get a bar for all of them, above theirs.
    let total = if sizes.len() > 1 {
        bar(&mp, sizes.iter().sum(), "all files".into())
    } else {
        ProgressBar::hidden()
    };
    for (path, size) in args.files.iter().zip(sizes) {
        upload_one(api, args, path, size, &mp, &total)
            .await
            .with_context(|| format!("{}", path.display()))?;
    }
    total.finish();
    Ok(())
}

/// SHA1 of the file, read once in 1 MiB blocks on the blocking pool (no copy through an async
/// file's buffer).
async fn hash_file(path: &Path, bar: &ProgressBar) -> anyhow::Result<String> {
    use std::io::Read;
    let mut file = tokio::fs::File::open(path).await?.into_std().await;
    let bar = bar.clone();
    tokio::task::spawn_blocking(move || {
        let mut hasher = Sha1::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bar.inc(n as u64);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await?
}

/// SHA-256 (hex) of each `[start, end)` range of the file, as a challenge asks.
async fn answer_challenge(path: &Path, ranges: &serde_json::Value) -> anyhow::Result<Vec<String>> {
    use sha2::Digest as _;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let ranges = ranges
        .as_array()
        .ok_or_else(|| anyhow!("challenge without ranges"))?;
    let mut file = tokio::fs::File::open(path).await?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for r in ranges {
        let (start, end) = match (r[0].as_u64(), r[1].as_u64()) {
            (Some(s), Some(e)) if s <= e => (s, e),
            _ => return Err(anyhow!("malformed challenge range {r}")),
        };
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let mut left = end - start;
        let mut h = sha2::Sha256::new();
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = file.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(anyhow!("file shorter than the challenge's range"));
            }
            h.update(&buf[..n]);
            left -= n as u64;
        }
        out.push(hex::encode(h.finalize()));
    }
    Ok(out)
}

async fn upload_one(
    api: &Api,
    args: &UploadArgs,
    path: &Path,
    size: u64,
    mp: &MultiProgress,
    total: &ProgressBar,
) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("file name is not UTF-8"))?
        .to_owned();
    let hashing = bar(mp, size, "hashing".into());
    let hash_start = Instant::now();
    let sha1 = hash_file(path, &hashing).await?;
    let hash_time = hash_start.elapsed();
    hashing.finish_and_clear();
    let upload_start = Instant::now();

    let mut body = serde_json::json!({ "filename": name, "size": size, "sha1": sha1 });
    if let Some(c) = args.chunk_size {
        body["chunk_size"] = c.into();
    }
    let (_, mut session) = api
        .send(api.request(reqwest::Method::POST, "/uploads").json(&body))
        .await?;
    if session["challenge"].is_object() {
        // The server holds this content: prove we hold it too (proof of ownership).
        let answer = serde_json::json!({
            "challenge": session["challenge"]["id"],
            "digests": answer_challenge(path, &session["challenge"]["ranges"]).await?,
        });
        session = api
            .send(
                api.request(reqwest::Method::POST, "/uploads/proof")
                    .json(&answer),
            )
            .await?
            .1;
    }
    if session["instant"] == true {
        total.inc(size);
        mp.suspend(|| eprintln!("{name}: stored already, instant upload (秒传)"));
        return Ok(());
    }
    let id = session["upload_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no upload_id"))?
        .to_owned();
    let chunk = session["chunk_size"]
        .as_u64()
        .ok_or_else(|| anyhow!("no chunk_size"))?;
    let count = session["chunk_count"]
        .as_u64()
        .ok_or_else(|| anyhow!("no chunk_count"))? as u32;
    let received: Vec<u32> = session["received"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_u64())
                .map(|n| n as u32)
                .collect()
        })
        .unwrap_or_default();
    let done: u64 = session["bytes_received"].as_u64().unwrap_or(0);
    if !received.is_empty() {
        mp.suspend(|| {
            eprintln!(
                "{name}: resuming, {} of {count} parts already on the server",
                received.len()
            )
        });
    }
    let file_bar = bar(mp, size, truncate(&name, 12));
    file_bar.set_position(done);
    total.inc(done);
    // What was on the server already is not this run's speed.
    file_bar.reset_eta();
    total.reset_eta();

    let missing: Vec<u32> = (1..=count).filter(|n| !received.contains(n)).collect();
    let limiter = Arc::new(RateLimiter::new(args.limit_rate));
    futures::stream::iter(missing)
        .map(|n| {
            let (file_bar, total, limiter) = (file_bar.clone(), total.clone(), limiter.clone());
            let id = id.clone();
            async move {
                let offset = u64::from(n - 1) * chunk;
                let len = chunk.min(size - offset);
                let (bytes, digest) = read_part(path, offset, len, args.part_check).await?;
                limiter.wait(len).await;
                send_part(api, &id, n, bytes, digest, args.retries, &file_bar).await?;
                file_bar.inc(len);
                total.inc(len);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.parallel as usize)
        .try_collect::<()>()
        .await?;

    let mut attempt = 0;
    let file = loop {
        match api
            .send(api.request(reqwest::Method::POST, &format!("/uploads/{id}/complete")))
            .await
        {
            Ok((_, file)) => break file,
            Err(e) if retryable(&e) && attempt + 1 < args.retries => {
                attempt += 1;
                let wait = retry_wait(&e, attempt);
                mp.suspend(|| {
                    eprintln!(
                        "{name}: completing: {}; retrying in {:.1} s (try {} of {})",
                        short(&e),
                        wait.as_secs_f64(),
                        attempt + 1,
                        args.retries
                    )
                });
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    };
    file_bar.finish();
    let upload_time = upload_start.elapsed();
    let sent = size - done;
    mp.suspend(|| {
        eprintln!(
            "{name}: uploaded, sha1 {}; hashed {} {}, sent {} {}",
            file["sha1"].as_str().unwrap_or_default(),
            human(size),
            took(size, hash_time),
            human(sent),
            took(sent, upload_time),
        )
    });
    Ok(())
}

/// `in 2.1 s (142.9 MiB/s)`; a speed only when there was time to measure one.
fn took(bytes: u64, t: Duration) -> String {
    if t < Duration::from_millis(50) {
        return format!("in {:.2} s", t.as_secs_f64());
    }
    let per_sec = (bytes as f64 / t.as_secs_f64()) as u64;
    format!("in {:.2} s ({}/s)", t.as_secs_f64(), human(per_sec))
}

/// How long to wait before try `attempt + 1`: what the server asked (`Retry-After`, at most a
/// minute), else exponential backoff.
fn retry_wait(e: &anyhow::Error, attempt: u32) -> Duration {
    e.downcast_ref::<ServerError>()
        .and_then(|s| s.retry_after)
        .map(|d| d.min(Duration::from_secs(60)))
        .unwrap_or_else(|| backoff(attempt))
}

/// An error in a few words, for a retry notice.
fn short(e: &anyhow::Error) -> String {
    match e.downcast_ref::<ServerError>() {
        Some(s) => format!("{} {}", s.status, s.msg),
        None => format!("{e}"),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// A header naming a part's digest, and its value.
type PartHeader = Option<(&'static str, String)>;

/// Reads part `[offset, offset + len)` of the file and its digest, in one job on the blocking
/// pool: one copy out of the page cache into memory nobody zero-filled first, digested while
/// it is still in the CPU's cache.
async fn read_part(
    path: &Path,
    offset: u64,
    len: u64,
    check: PartCheck,
) -> anyhow::Result<(bytes::Bytes, PartHeader)> {
    use std::io::{Read, Seek};
    let mut file = tokio::fs::File::open(path).await?.into_std().await;
    tokio::task::spawn_blocking(move || {
        file.seek(std::io::SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len as usize);
        file.take(len).read_to_end(&mut buf)?;
        if buf.len() as u64 != len {
            bail!("file changed while uploading");
        }
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let digest = match check {
            PartCheck::Crc32c => Some((CRC32C_HEADER, b64(&crc32c::crc32c(&buf).to_be_bytes()))),
            PartCheck::Md5 => Some(("content-md5", b64(&Md5::digest(&buf)))),
            PartCheck::None => None,
        };
        Ok((bytes::Bytes::from(buf), digest))
    })
    .await?
}

fn retryable(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<ServerError>() {
        Some(s) => s.retryable(),
        // Connection refused or reset, timeouts, a cut response: the network, not the request.
        None => e.downcast_ref::<reqwest::Error>().is_some(),
    }
}

async fn send_part(
    api: &Api,
    id: &str,
    n: u32,
    bytes: bytes::Bytes,
    digest: PartHeader,
    tries: u32,
    bar: &ProgressBar,
) -> anyhow::Result<Value> {
    let mut attempt = 0;
    loop {
        let req = api
            .request(reqwest::Method::PUT, &format!("/uploads/{id}/parts/{n}"))
            .body(bytes.clone());
        let req = match &digest {
            Some((name, value)) => req.header(*name, value),
            None => req,
        };
        match api.send(req).await {
            Ok((_, v)) => return Ok(v),
            Err(e) if retryable(&e) && attempt + 1 < tries => {
                attempt += 1;
                let wait = retry_wait(&e, attempt);
                bar.suspend(|| {
                    eprintln!(
                        "part {n}: {}; retrying in {:.1} s (try {} of {tries})",
                        short(&e),
                        wait.as_secs_f64(),
                        attempt + 1
                    )
                });
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.context(format!("part {n}"))),
        }
    }
}

/// Keeps the average rate at or below a limit (like curl's --limit-rate).
struct RateLimiter {
    rate: Option<u64>,
    start: Instant,
    sent: tokio::sync::Mutex<u64>,
}

impl RateLimiter {
    fn new(rate: Option<u64>) -> Self {
        RateLimiter {
            rate,
            start: Instant::now(),
            sent: tokio::sync::Mutex::new(0),
        }
    }

    async fn wait(&self, bytes: u64) {
        let Some(rate) = self.rate else { return };
        let mut sent = self.sent.lock().await;
        *sent += bytes;
        let due = Duration::from_secs_f64(*sent as f64 / rate as f64);
        if let Some(ahead) = due.checked_sub(self.start.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
}
