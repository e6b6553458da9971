//! Spawns the real `chunkvault` binary on a free port with a temporary data directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;

/// The password of every test user made by [`Server::user`].
pub const PASSWORD: &str = "password-123";

pub struct Server {
    child: Child,
    pub base: String,
    pub data: PathBuf,
    /// The server's log (stderr).
    pub log: PathBuf,
    /// Follows no redirects: tests see the server's own answers (the classic routes send
    /// browsers on with a 302).
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts the server with extra `serve` flags in a fresh data directory.
    pub fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Server::start_in(&data, extra, Some(dir))
    }

    /// Starts a server on an existing data directory (restarts, several nodes on one directory).
    pub fn start_in(data: &Path, extra: &[&str], owned: Option<tempfile::TempDir>) -> Server {
        let data = data.to_owned();
        std::fs::create_dir_all(&data).unwrap();
        let log_path = data.with_extension(format!("log-{}", rand::random::<u32>()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(extra)
            .env_remove("CHUNKVAULT_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn chunkvault");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("server did not start: {line:?}\n{log}")
            })
            .to_owned();
        Server {
            child,
            base,
            data,
            log: log_path,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            _dir: owned,
        }
    }

    /// Sends SIGTERM (graceful shutdown) and returns without waiting.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status and the data directory's owner.
    pub fn wait_exit(mut self) -> (std::process::ExitStatus, Option<tempfile::TempDir>) {
        let status = self.child.wait().unwrap();
        (status, self._dir.take())
    }

    /// The server's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGKILL: no shutdown, no cleanup. Returns the data directory's owner for a restart.
    pub fn kill9(mut self) -> Option<tempfile::TempDir> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self._dir.take()
    }

    /// Bearer-authenticated request builder.
    pub fn req(&self, method: &str, token: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token)
    }

    /// `POST /uploads` for `data`.
    pub async fn create_upload(
        &self,
        token: &str,
        name: &str,
        data: &[u8],
        chunk: Option<u64>,
    ) -> (StatusCode, Value) {
        let mut body =
            serde_json::json!({ "filename": name, "size": data.len(), "sha1": sha1_hex(data) });
        if let Some(c) = chunk {
            body["chunk_size"] = c.into();
        }
        let created = envelope(
            self.req("POST", token, "/uploads")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if !created.1["data"]["challenge"].is_object() {
            return created;
        }
        // Stored content: answer the proof-of-ownership challenge, as clients do.
        let challenge = &created.1["data"]["challenge"];
        let answer = serde_json::json!({
            "challenge": challenge["id"],
            "digests": answer_challenge(data, &challenge["ranges"]),
        });
        envelope(
            self.req("POST", token, "/uploads/proof")
                .json(&answer)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// `PUT /uploads/{id}/parts/{n}` with the bytes of part n of `data`.
    pub async fn put_part(
        &self,
        token: &str,
        id: &str,
        n: u64,
        chunk: u64,
        data: &[u8],
    ) -> (StatusCode, Value) {
        let start = ((n - 1) * chunk) as usize;
        let end = (start + chunk as usize).min(data.len());
        let body = data[start..end].to_vec();
        envelope(
            self.req("PUT", token, &format!("/uploads/{id}/parts/{n}"))
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn complete(&self, token: &str, id: &str) -> (StatusCode, Value) {
        envelope(
            self.req("POST", token, &format!("/uploads/{id}/complete"))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Staged uploads (one directory each, holding one file per write attempt).
    pub fn staging_files(&self) -> Vec<PathBuf> {
        entries(&self.data.join("staging"))
    }

    /// `chunkvault_collision_scans_total`: blobs read for their collision verdict so far.
    pub async fn collision_scans(&self) -> u64 {
        let m = self.client.get(self.url("/metrics")).send().await.unwrap();
        crate::ops::sample(&m.text().await.unwrap(), "chunkvault_collision_scans_total")
            .expect("the scan counter is exported") as u64
    }

    /// Waits (30 s at most) until `n` blobs have had their collision verdict: new content is
    /// read once in the background after upload, so a test that then overwrites stored bytes
    /// knows that read is behind it.
    pub async fn wait_for_collision_scans(&self, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.collision_scans().await < n {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {n} collision verdicts after 30 s"
            );
            tokio::task::yield_now().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs up and signs in through ChunkVault's own API (`POST /api/account`,
    /// `POST /api/sessions`); returns the token.
    pub async fn user(&self, name: &str) -> String {
        let (s, body) = self
            .api(
                "POST",
                None,
                "/api/account",
                Some(serde_json::json!({ "username": name, "password": PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["username"], name, "{body}");
        self.signin(name).await
    }

    /// A new session for `name` (password [`PASSWORD`]) through `POST /api/sessions`.
    pub async fn signin(&self, name: &str) -> String {
        let (s, body) = self
            .api(
                "POST",
                None,
                "/api/sessions",
                Some(serde_json::json!({ "username": name, "password": PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body["data"]["token"].as_str().unwrap().to_owned()
    }

    /// A request to ChunkVault's own API (`/api/*`), with a JSON body when given; its answer
    /// is always the `{code, msg, data}` envelope as `application/json`.
    pub async fn api(
        &self,
        method: &str,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        envelope(req.send().await.unwrap()).await
    }

    /// The caller's files as `GET /api/files?limit=1000` lists them (newest first).
    pub async fn files(&self, token: &str) -> Vec<Value> {
        let (s, body) = self
            .api("GET", Some(token), "/api/files?limit=1000", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// The id of the caller's newest file with content `sha1` (from `GET /api/files`).
    pub async fn file_id(&self, token: &str, sha1: &str) -> String {
        let files = self.files(token).await;
        files
            .iter()
            .find(|f| f["sha1"] == sha1)
            .unwrap_or_else(|| panic!("no file with SHA1 {sha1} in {files:?}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /api/files/{id}/content`.
    pub async fn content(&self, token: &str, id: &str) -> reqwest::Response {
        self.req("GET", token, &format!("/api/files/{id}/content"))
            .send()
            .await
            .unwrap()
    }

    /// POSTs an urlencoded form.
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
        json(
            self.client
                .post(self.url(path))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// GETs with a bearer token.
    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        json(
            self.client
                .get(self.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POSTs a form with a bearer token.
    pub async fn post(
        &self,
        token: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        json(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Uploads through `/file/upload` as a browser's script would (raw UTF-8 file name, no
    /// `Accept: text/html`): the answer is `{code: 0, msg: "OK", data: FileMeta}`.
    pub async fn upload(&self, token: &str, name: &str, data: Vec<u8>) -> (StatusCode, Value) {
        let part = Part::bytes(data).file_name(name.to_owned());
        let form = Form::new().percent_encode_noop().part("file", part);
        let resp = self
            .client
            .post(self.url("/file/upload"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        json(resp).await
    }

    /// `GET /file/download?filehash=…`: the caller's newest file with that content.
    pub async fn download(&self, token: &str, sha1: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/file/download?filehash={sha1}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Committed blobs on disk: `blobs/ab/cd/<sha1>-<random>`, a file or a directory of
    /// segments.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        entries(&self.data.join("blobs"))
            .iter()
            .flat_map(|d| entries(d))
            .flat_map(|d| entries(&d))
            .collect()
    }

    /// Temp files of uploads in flight.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        files_under(&self.data.join("tmp"))
    }

    /// What is stored, as seen from outside: a user's file list (`GET /api/files`) and the
    /// blobs on disk.
    pub async fn snapshot(&self, token: &str) -> (Value, Vec<PathBuf>) {
        let files = self.files(token).await;
        let mut blobs = self.blob_files();
        blobs.sort();
        (Value::Array(files), blobs)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // (kill9 already reaped the child; a second kill is a no-op error.)
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and body of any answer. Errors (4xx/5xx) must be the JSON error envelope
/// (`application/json`, with `code`, `msg` and the `request_id`). Successes are whatever the
/// route sends: JSON as `application/json` or, from the classic routes, as `text/plain`
/// (parsed all the same); other text (`SUCCESS`, a URL) is a `Value::String`, an empty body
/// `Value::Null`.
pub async fn json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ct = content_type(&resp);
    let text = resp.text().await.unwrap();
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(ct.as_deref(), Some("application/json"), "{status} {text}");
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert!(
            value.get("code").is_some() && value.get("msg").is_some(),
            "not an error envelope: {text}"
        );
        assert!(
            value["request_id"].is_string(),
            "an error without its request_id: {text}"
        );
        return (status, value);
    }
    let value = if ct.as_deref() == Some("application/json") {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    } else if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// An answer of ChunkVault's own API: always the `{code, msg, data}` envelope, as
/// `application/json`.
pub async fn envelope(resp: reqwest::Response) -> (StatusCode, Value) {
    let ct = content_type(&resp);
    let (status, value) = json(resp).await;
    assert_eq!(ct.as_deref(), Some("application/json"), "{status} {value}");
    assert!(
        value.get("code").is_some() && value.get("msg").is_some() && value.get("data").is_some(),
        "not an envelope: {value}"
    );
    (status, value)
}

/// The answer's `Content-Type`, if any.
pub fn content_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The original's time format, `2006-01-02 15:04:05`.
#[track_caller]
pub fn assert_go_time(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let shape: String = s
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    assert_eq!(shape, "0000-00-00 00:00:00", "{s}");
}

/// Asserts an error envelope: status and stable code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: u64) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"].as_u64(), Some(code), "{}", got.1);
    assert!(got.1["data"].is_null(), "{}", got.1);
}

/// The entries of `dir` (none when it does not exist).
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// SHA-256 (hex) of each `[start, end)` range of `data` a challenge names.
pub fn answer_challenge(data: &[u8], ranges: &Value) -> Vec<String> {
    use sha2::Digest;
    ranges
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let (a, b) = (
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
            );
            hex_encode(&sha2::Sha256::digest(&data[a..b]))
        })
        .collect()
}

pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    hex_encode(&Sha1::digest(data))
}

pub fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// Polls `cond` until it holds; fails after 10 s. For effects the server completes after it
/// has answered (cleanup on the blocking pool), never as a stand-in for a response.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A body of `data`, as the engine's stores take it.
pub fn stream_of(data: Vec<u8>) -> chunkvault_engine::blobs::ByteStream {
    use futures::StreamExt;
    futures::stream::once(async move { Ok(warp::hyper::body::Bytes::from(data)) }).boxed()
}
