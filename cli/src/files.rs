//! The commands over stored files and unfinished uploads: `ls`, `mv`, `rm`, `share`,
//! `uploads`. What they print goes to stdout; a closed stdout (`| head`) ends them quietly.

use std::io::Write;

use serde_json::Value;

use super::{Api, UploadsArgs};

/// One line to stdout. A reader that went away (`| head -1`) surfaces as a broken pipe,
/// which the program ends on quietly.
pub fn line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Bytes as a person reads them: `999 B`, `1.4 KiB`, `300.0 MiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// Uploaded-at as `2026-12-04 23:14:37` (the server's RFC 3339, shortened).
fn when(rfc3339: &str) -> String {
    rfc3339
        .get(..19)
        .map(|t| t.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_owned())
}

pub async fn ls(api: &Api) -> anyhow::Result<()> {
    let files = api.list_files().await?;
    if files.is_empty() {
        eprintln!("no files yet (`chunkvault upload FILE` stores one)");
        return Ok(());
    }
    line(&format!(
        "{:<20}  {:<40}  {:>10}  {:<19}  NAME",
        "ID", "SHA1", "SIZE", "UPLOADED"
    ))?;
    for f in &files {
        line(&format!(
            "{:<20}  {:<40}  {:>10}  {:<19}  {}",
            s(f, "id"),
            s(f, "sha1"),
            human(f["size"].as_u64().unwrap_or_default()),
            when(s(f, "uploaded_at")),
            s(f, "name")
        ))?;
    }
    Ok(())
}

pub async fn mv(api: &Api, file: &str, new_name: &str) -> anyhow::Result<()> {
    let f = api.resolve(file).await?;
    api.call(
        reqwest::Method::PATCH,
        &format!("/api/files/{}", s(&f, "id")),
        Some(serde_json::json!({ "name": new_name })),
    )
    .await?;
    eprintln!("renamed {} to {new_name}", s(&f, "name"));
    Ok(())
}

pub async fn rm(api: &Api, files: &[String]) -> anyhow::Result<()> {
    // Every name is resolved before anything is deleted: one ambiguous or unknown name
    // deletes nothing.
    let mut chosen = Vec::new();
    for f in files {
        chosen.push(api.resolve(f).await?);
    }
    for f in &chosen {
        api.call(
            reqwest::Method::DELETE,
            &format!("/api/files/{}", s(f, "id")),
            None,
        )
        .await?;
        eprintln!("deleted {} ({})", s(f, "name"), s(f, "id"));
    }
    Ok(())
}

/// A link anyone can download the file with, until it expires.
pub async fn share(api: &Api, file: &str) -> anyhow::Result<()> {
    let f = api.resolve(file).await?;
    let link = api
        .call(
            reqwest::Method::POST,
            &format!("/api/files/{}/links", s(&f, "id")),
            None,
        )
        .await?;
    eprintln!(
        "{}: anyone with this link can download it until {}",
        s(&f, "name"),
        when(s(&link, "expires_at"))
    );
    line(s(&link, "url"))
}

/// Unfinished uploads: listed, or cancelled.
pub async fn uploads(api: &Api, args: &UploadsArgs) -> anyhow::Result<()> {
    let open = api.call(reqwest::Method::GET, "/uploads", None).await?;
    let open = open.as_array().cloned().unwrap_or_default();
    let cancel: Vec<String> = if args.cancel_all {
        open.iter().map(|u| s(u, "upload_id").to_owned()).collect()
    } else {
        args.cancel.clone()
    };
    if !cancel.is_empty() {
        for id in &cancel {
            api.call(reqwest::Method::DELETE, &format!("/uploads/{id}"), None)
                .await?;
            eprintln!("cancelled {id}");
        }
        return Ok(());
    }
    if open.is_empty() {
        eprintln!("no unfinished uploads");
        return Ok(());
    }
    line(&format!(
        "{:<32}  {:>21}  {:<19}  NAME",
        "UPLOAD ID", "RECEIVED", "EXPIRES"
    ))?;
    for u in &open {
        line(&format!(
            "{:<32}  {:>21}  {:<19}  {}",
            s(u, "upload_id"),
            format!(
                "{} of {}",
                human(u["bytes_received"].as_u64().unwrap_or_default()),
                human(u["size"].as_u64().unwrap_or_default())
            ),
            when(s(u, "expires_at")),
            s(u, "filename")
        ))?;
    }
    eprintln!("run the same `chunkvault upload` again to finish one, or --cancel ID to drop it");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(300 << 20), "300.0 MiB");
        assert_eq!(human(5 << 40), "5.0 TiB");
    }
}
