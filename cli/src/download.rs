//! `chunkvault download`: streams into `<output>.part`, resumes it with `Range`, verifies the
//! SHA1, then renames into place.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Api, DownloadArgs};

pub async fn run(api: &Api, args: &DownloadArgs) -> anyhow::Result<()> {
    let file = api.resolve(&args.file).await?;
    let sha1 = file["sha1"]
        .as_str()
        .ok_or_else(|| anyhow!("no sha1"))?
        .to_owned();
    let id = file["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id"))?
        .to_owned();
    let size = file["size"].as_u64().ok_or_else(|| anyhow!("no size"))?;
    let name = file["name"].as_str().ok_or_else(|| anyhow!("no name"))?;
    // The server validated the name (no separators, no `..`), so it is a plain file name here.
    let out = args.output.clone().unwrap_or_else(|| PathBuf::from(name));
    if !args.force && tokio::fs::symlink_metadata(&out).await.is_ok() {
        bail!(
            "{} exists: pass --force to replace it, or -o to write elsewhere",
            out.display()
        );
    }
    let mut part = out.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);

    for attempt in 0..2 {
        fetch(api, &sha1, &id, size, &part).await?;
        if hash_of(&part).await? == sha1 {
            tokio::fs::rename(&part, &out)
                .await
                .with_context(|| format!("renaming to {}", out.display()))?;
            eprintln!(
                "{}: {}, sha1 verified",
                out.display(),
                crate::files::human(size)
            );
            return Ok(());
        }
        // A stale or damaged partial file: start over once.
        tokio::fs::remove_file(&part).await?;
        if attempt == 1 {
            bail!("downloaded bytes do not match sha1 {sha1}");
        }
    }
    unreachable!("the loop returns or fails")
}

async fn fetch(api: &Api, sha1: &str, id: &str, size: u64, part: &PathBuf) -> anyhow::Result<()> {
    let have = match tokio::fs::metadata(part).await {
        Ok(m) if m.len() <= size => m.len(),
        Ok(_) => {
            tokio::fs::remove_file(part).await?;
            0
        }
        Err(_) => 0,
    };
    if have == size {
        return Ok(());
    }
    let mut req = api.request(reqwest::Method::GET, &format!("/api/files/{id}/content"));
    if have > 0 {
        req = req
            .header("range", format!("bytes={have}-"))
            .header("if-range", format!("\"{sha1}\""));
    }
    let resp = req.send().await?;
    let status = resp.status();
    let append = match status.as_u16() {
        206 => true,
        200 => false,
        _ => bail!("{status}: {}", resp.text().await.unwrap_or_default()),
    };
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .await?;
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "download [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(if append { have } else { 0 });
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        out.write_all(&chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    out.sync_all().await?;
    bar.finish_and_clear();
    Ok(())
}

async fn hash_of(path: &PathBuf) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}
