//! A thin HTTP client for the server's JSON envelope, with the saved token.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use super::ClientArgs;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    token: Option<String>,
    pub http: reqwest::Client,
}

/// An answer the server gave, with its status and stable code.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {msg} (code {code})")]
pub struct ServerError {
    pub status: reqwest::StatusCode,
    pub code: u64,
    pub msg: String,
    pub data: Value,
    /// How long the server asked to wait (`Retry-After` in seconds, on 503 and 429).
    pub retry_after: Option<std::time::Duration>,
}

/// An answer that is not ChunkVault's JSON envelope: another server, or a wrong URL.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {status}, not a ChunkVault answer")]
pub struct NotChunkVault {
    pub url: String,
    pub status: reqwest::StatusCode,
}

impl ServerError {
    /// Worth retrying: the server or a proxy had a moment, or another request held the upload.
    pub fn retryable(&self) -> bool {
        self.status.is_server_error()
            || self.status == 409 && self.code != u64::from(chunkvault_api::codes::MISSING_PARTS)
            || self.status == 429
    }
}

fn config_dir(args: &ClientArgs) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.config_dir {
        return Ok(d.clone());
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("chunkvault"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("set --config-dir (no HOME)"))?;
    Ok(PathBuf::from(home).join(".config").join("chunkvault"))
}

/// What `login` saved: server, username and token.
pub struct Saved {
    pub server: Option<String>,
    pub username: Option<String>,
    pub token: Option<String>,
}

/// The saved sign-in, if there is one.
pub async fn saved(args: &ClientArgs) -> anyhow::Result<Option<Saved>> {
    let path = config_dir(args)?.join("credentials.json");
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let field = |k: &str| v[k].as_str().map(str::to_owned);
    Ok(Some(Saved {
        server: field("server"),
        username: field("username"),
        token: field("token"),
    }))
}

/// Forgets the saved sign-in; `false` if there was none.
pub async fn remove_credentials(args: &ClientArgs) -> anyhow::Result<bool> {
    let path = config_dir(args)?.join("credentials.json");
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

pub async fn save_credentials(
    args: &ClientArgs,
    server: &str,
    username: &str,
    token: &str,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let dir = config_dir(args)?;
    tokio::fs::create_dir_all(&dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("credentials.json");
    let tmp = dir.join("credentials.json.tmp");
    let body = serde_json::json!({ "server": server, "username": username, "token": token });
    // Readable by its owner only: the token is as good as the password until it expires.
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    f.write_all(serde_json::to_string_pretty(&body)?.as_bytes())
        .await?;
    f.sync_all().await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(())
}

impl Api {
    pub fn anonymous(server: &str) -> anyhow::Result<Self> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("server must be an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Api {
            base,
            token: None,
            http,
        })
    }

    /// The server and token saved by `login` (`--server` overrides the server).
    pub async fn from_saved(args: &ClientArgs) -> anyhow::Result<Self> {
        let Some(saved) = saved(args).await? else {
            bail!(
                "not signed in: run `chunkvault login --server URL -u NAME` first (looked in {})",
                config_dir(args)?.join("credentials.json").display()
            );
        };
        let server = args.server.clone().or(saved.server);
        let mut api =
            Api::anonymous(&server.ok_or_else(|| anyhow!("no server saved; pass --server"))?)?;
        api.token = saved.token;
        Ok(api)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends and unwraps the envelope: `data` on success, `ServerError` otherwise.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let resp = req.send().await?;
        let status = resp.status();
        let url = resp.url().to_string();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        let body: Value = match resp.json().await {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(NotChunkVault { url, status }.into()),
        };
        if status.is_success() && body["code"] == 0 {
            return Ok((status, body["data"].clone()));
        }
        Err(ServerError {
            status,
            code: body["code"].as_u64().unwrap_or_default(),
            msg: body["msg"].as_str().unwrap_or_default().to_owned(),
            data: body["data"].clone(),
            retry_after,
        }
        .into())
    }

    /// A request with a JSON body; the envelope's `data`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        Ok(self.send(req).await?.1)
    }

    pub async fn list_files(&self) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        loop {
            let path = format!("/api/files?limit=1000&offset={}", all.len());
            let page = self
                .send(self.request(reqwest::Method::GET, &path))
                .await?
                .1;
            let page = page.as_array().cloned().unwrap_or_default();
            let done = page.len() < 1000;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// A file by id (as `ls` shows it), SHA1 (40 hex characters) or exact name. A SHA1 or a
    /// name that fits several files is refused, naming them: nothing is done to a file the
    /// user did not pick.
    pub async fn resolve(&self, file: &str) -> anyhow::Result<Value> {
        let is_sha1 = file.len() == 40 && file.bytes().all(|b| b.is_ascii_hexdigit());
        let all = self.list_files().await?;
        if let Some(f) = all.iter().find(|f| f["id"].as_str() == Some(file)) {
            return Ok(f.clone());
        }
        let (what, mut matches): (String, Vec<Value>) = if is_sha1 {
            let sha1 = file.to_ascii_lowercase();
            let m = all
                .into_iter()
                .filter(|f| f["sha1"].as_str() == Some(sha1.as_str()))
                .collect();
            (format!("with sha1 {sha1}"), m)
        } else {
            let m = all
                .into_iter()
                .filter(|f| f["name"].as_str() == Some(file))
                .collect();
            (format!("named {file:?}"), m)
        };
        match matches.len() {
            0 => bail!("no file {what} (`chunkvault ls` lists your files)"),
            1 => Ok(matches.remove(0)),
            n => {
                let list: Vec<String> = matches
                    .iter()
                    .map(|f| {
                        format!(
                            "  {}  {}  {}",
                            f["id"].as_str().unwrap_or_default(),
                            f["uploaded_at"].as_str().unwrap_or_default(),
                            f["name"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                bail!("{n} files {what}; name one by its id:\n{}", list.join("\n"))
            }
        }
    }
}
