//! Faults, each against the real binary and a real backend that really fails: Redis killed and
//! restarted in the middle of an upload (with and without persistence), the metadata database
//! made unreachable through a TCP proxy and brought back, and a full disk (a small tmpfs) under
//! the upload store. Each one must give clients a clear JSON error (503 or 507 with a stable
//! code) within a bounded time, never show a partial file, and heal without a restart.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{assert_error, json, random_bytes, sha1_hex, Server, PASSWORD};

const UNAVAILABLE: u64 = 15031;
const INSUFFICIENT_STORAGE: u64 = 15071;
const NOT_FOUND: u64 = 10401;

/// A failing backend must be reported within this time (timeouts are 2–5 s).
const BOUNDED: Duration = Duration::from_secs(8);

/// Sends a request; returns status, envelope, `Retry-After` and how long the answer took.
async fn timed(req: reqwest::RequestBuilder) -> (StatusCode, Value, Option<String>, Duration) {
    let started = Instant::now();
    let resp = req.send().await.expect("the server answers");
    let took = started.elapsed();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json(resp).await;
    (status, body, retry_after, took)
}

/// Asserts a prompt 503 with the stable code and a `Retry-After`.
#[track_caller]
fn assert_unavailable(what: &str, got: (StatusCode, Value, Option<String>, Duration)) {
    let (status, body, retry_after, took) = got;
    assert_error(
        &(status, body.clone()),
        StatusCode::SERVICE_UNAVAILABLE,
        UNAVAILABLE,
    );
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("temporarily unavailable"),
        "{what}: {body}"
    );
    assert!(
        retry_after.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s > 0)),
        "{what}: 503 without Retry-After"
    );
    assert!(took < BOUNDED, "{what}: answered after {took:?}");
}

/// `/readyz`: status and the names of the failing dependencies.
async fn readyz(s: &Server) -> (StatusCode, Value) {
    let resp = s.client.get(s.url("/readyz")).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// The names in the caller's file list.
async fn file_names(s: &Server, token: &str) -> Vec<String> {
    s.files(token)
        .await
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn download_sha1(s: &Server, token: &str, sha1: &str) -> String {
    let resp = s.download(token, sha1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    sha1_hex(&resp.bytes().await.unwrap())
}

/// Repeats `probe` until it returns `Some`, for at most `limit`: for recovery that happens
/// in the background (a reconnect), never as a stand-in for a response.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on, below Linux's ephemeral range (32768 and up): a port the kernel
/// hands out for `:0` or for the outgoing connections of tests running alongside could be taken
/// again between this check and Redis's bind (and again at each restart on the same port).
fn free_port() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

// ---- Redis restarted mid-upload ------------------------------------------------------------

/// A redis-server of the test's own, killed with SIGKILL (a crash) and restarted on the same
/// port and directory.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    aof: bool,
}

impl Redis {
    fn start(aof: bool) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir,
            aof,
        };
        r.spawn();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        // With AOF, every acknowledged write is fsynced before the reply: what a deployment
        // that wants uploads to survive a Redis crash runs. Without it, a restart loses every
        // session (a cache-style Redis), and clients must start over.
        let persistence = if self.aof {
            "appendonly yes\nappendfsync always\n"
        } else {
            "appendonly no\n"
        };
        let conf = self.dir.path().join("redis.conf");
        std::fs::write(
            &conf,
            format!(
                "port {}\nbind 127.0.0.1\nsave \"\"\n{persistence}dir {}\nlogfile {}\n",
                self.port,
                self.dir.path().display(),
                self.dir.path().join("redis.log").display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("FATAL: cannot run redis-server ({e}); install Redis (Debian: redis-server)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none(),
                "redis-server exited ({exited:?}): {}",
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "redis-server did not start: {}",
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `PING` → `+PONG` (also false while Redis still loads its AOF).
    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut sock) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 64];
        sock.write_all(b"PING\r\n").is_ok()
            && sock
                .read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("redis is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn redis_restart_mid_upload(aof: bool) {
    const CH: u64 = 256 * 1024;
    let mut redis = Redis::start(aof);
    let url = redis.url();
    // Sessions in Redis, metadata in SQLite; one node, so the local store is shared trivially.
    let mut flags = vec!["--redis-url", &url, "--shared-data-dir"];
    if !aof {
        // The lost session's staged bytes are swept once idle for the upload TTL.
        flags.extend(["--upload-ttl", "3s", "--sweep-interval", "1s"]);
    }
    let s = Server::start_with(&flags);
    let t = s.user("redisfault").await;
    let data = random_bytes((6 * CH + 99) as usize);
    let sha1 = sha1_hex(&data);
    let (status, created) = s.create_upload(&t, "fault.bin", &data, Some(CH)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        assert_eq!(s.put_part(&t, &id, n, CH, &data).await.0, StatusCode::OK);
    }

    redis.kill();

    // Down: every request that needs the sessions gets a prompt 503, not a hang or a 500.
    assert_unavailable(
        "status",
        timed(s.req("GET", &t, &format!("/uploads/{id}"))).await,
    );
    let part4 = data[(3 * CH) as usize..(4 * CH) as usize].to_vec();
    assert_unavailable(
        "part",
        timed(
            s.req("PUT", &t, &format!("/uploads/{id}/parts/4"))
                .body(part4),
        )
        .await,
    );
    let init =
        serde_json::json!({"filename": "other.bin", "size": 1000, "sha1": sha1_hex(&[7; 1000])});
    assert_unavailable(
        "init",
        timed(s.req("POST", &t, "/uploads").json(&init)).await,
    );
    assert_unavailable(
        "complete",
        timed(s.req("POST", &t, &format!("/uploads/{id}/complete"))).await,
    );
    let (status, ready) = readyz(&s).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert!(ready["failing"].to_string().contains("sessions"), "{ready}");
    // What does not need Redis still works, and shows nothing half-uploaded.
    assert!(file_names(&s, &t).await.is_empty());
    assert!(s.blob_files().is_empty());

    redis.spawn();

    // The server reconnects by itself; the first answers after the restart may still be 503.
    let status_path = format!("/uploads/{id}");
    let (status, body) = until(
        "the server reconnects to Redis",
        Duration::from_secs(15),
        || {
            let req = s.req("GET", &t, &status_path);
            async move {
                let got = json(req.send().await.unwrap()).await;
                (got.0 != StatusCode::SERVICE_UNAVAILABLE).then_some(got)
            }
        },
    )
    .await;
    assert!(file_names(&s, &t).await.is_empty());

    let id = if aof {
        // Persistent sessions: the upload resumes where it was.
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["received"], serde_json::json!([1, 2, 3]));
        for n in 4..=7 {
            assert_eq!(s.put_part(&t, &id, n, CH, &data).await.0, StatusCode::OK);
        }
        id
    } else {
        // The session is gone: a clear 404, for every call on it; the client starts over.
        assert_error(&(status, body), StatusCode::NOT_FOUND, NOT_FOUND);
        let got = s.put_part(&t, &id, 4, CH, &data).await;
        assert_error(&got, StatusCode::NOT_FOUND, NOT_FOUND);
        let got = s.complete(&t, &id).await;
        assert_error(&got, StatusCode::NOT_FOUND, NOT_FOUND);
        let (status, created) = s.create_upload(&t, "fault.bin", &data, Some(CH)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["data"]["received"], serde_json::json!([]));
        let fresh = created["data"]["upload_id"].as_str().unwrap().to_owned();
        assert_ne!(fresh, id);
        for n in 1..=7 {
            assert_eq!(s.put_part(&t, &fresh, n, CH, &data).await.0, StatusCode::OK);
        }
        fresh
    };
    assert!(
        file_names(&s, &t).await.is_empty(),
        "visible before complete"
    );
    let (status, file) = s.complete(&t, &id).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["data"]["sha1"], sha1.as_str());
    assert_eq!(file_names(&s, &t).await, ["fault.bin"]);
    assert_eq!(download_sha1(&s, &t, &sha1).await, sha1);
    assert_eq!(readyz(&s).await.0, StatusCode::OK);
    // Nothing staged is left behind, not even by the session Redis forgot.
    crate::support::eventually("no staged upload is left", || s.staging_files().is_empty()).await;
}

#[tokio::test]
async fn redis_restart_with_aof_resumes_the_upload() {
    redis_restart_mid_upload(true).await;
}

#[tokio::test]
async fn redis_restart_without_persistence_restarts_the_upload() {
    redis_restart_mid_upload(false).await;
}

// ---- the database unreachable ----------------------------------------------------------------

/// A TCP proxy in front of the database with a switch: off drops every live connection and
/// blackholes new ones (accepted, never answered: a network partition); on forwards again.
struct Proxy {
    addr: SocketAddr,
    up: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = std::sync::Arc::new(tokio::sync::watch::channel(true).0);
        let switch = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = switch.subscribe();
                tokio::spawn(async move {
                    if !*state.borrow_and_update() {
                        // Blackholed until the switch is back on, then dropped.
                        let _ = state.wait_for(|up| *up).await;
                        return;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, up, task }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// Multi-threaded: the proxy must keep running while the test blocks (starting the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_unreachable_gives_503_and_recovers() {
    database_unreachable("CHUNKVAULT_TEST_MYSQL_URL", 3306).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_gives_503_and_recovers() {
    database_unreachable("CHUNKVAULT_TEST_POSTGRES_URL", 5432).await;
}

async fn database_unreachable(env: &str, default_port: u16) {
    let base = std::env::var(env).unwrap_or_else(|_| {
        panic!("FATAL: {env} is not set (scripts/test-all sets it to the machine's database)")
    });
    let db = crate::scratch::ScratchDb::create(&base, "cv_fault").await;
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let upstream =
        tokio::net::lookup_host((url.host_str().unwrap(), url.port().unwrap_or(default_port)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let proxy = Proxy::start(upstream).await;
    url.set_port(Some(proxy.addr.port())).unwrap();
    let s = Server::start_with(&["--database-url", url.as_str(), "--database-timeout", "2s"]);

    let t = s.user("dbfault").await;
    let small = random_bytes(100_000);
    let small_sha1 = sha1_hex(&small);
    let (status, body) = s.upload(&t, "small.bin", small.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let small_id = s.file_id(&t, &small_sha1).await;
    const CH: u64 = 256 * 1024;
    let data = random_bytes((2 * CH + 5) as usize);
    let (status, created) = s.create_upload(&t, "big.bin", &data, Some(CH)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    assert_eq!(s.put_part(&t, &id, 1, CH, &data).await.0, StatusCode::OK);

    proxy.set(false);

    let signin = || {
        s.client
            .post(s.url("/api/sessions"))
            .json(&serde_json::json!({"username": "dbfault", "password": PASSWORD}))
    };
    let classic_signin = s
        .client
        .post(s.url("/user/signin"))
        .form(&[("username", "dbfault"), ("password", PASSWORD)]);
    let init = serde_json::json!({"filename": "x.bin", "size": 1000, "sha1": sha1_hex(&[1; 1000])});
    let download = format!("/file/download?filehash={small_sha1}");
    let content = format!("/api/files/{small_id}/content");
    assert_unavailable("signin", timed(signin()).await);
    assert_unavailable("classic signin", timed(classic_signin).await);
    assert_unavailable("list", timed(s.req("GET", &t, "/api/files?limit=10")).await);
    assert_unavailable(
        "classic list",
        timed(s.req("GET", &t, "/file/query?limit=10")).await,
    );
    assert_unavailable(
        "upload init",
        timed(s.req("POST", &t, "/uploads").json(&init)).await,
    );
    assert_unavailable("download", timed(s.req("GET", &t, &content)).await);
    assert_unavailable("classic download", timed(s.req("GET", &t, &download)).await);
    let part2 = data[CH as usize..(2 * CH) as usize].to_vec();
    assert_unavailable(
        "part",
        timed(
            s.req("PUT", &t, &format!("/uploads/{id}/parts/2"))
                .body(part2),
        )
        .await,
    );
    let started = Instant::now();
    let (status, ready) = readyz(&s).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert!(ready["failing"].to_string().contains("database"), "{ready}");
    assert!(started.elapsed() < BOUNDED);

    proxy.set(true);

    // Back without a restart: the pool connects again on the next request.
    let server = &s;
    until(
        "the database is ready again",
        Duration::from_secs(15),
        || async move { (readyz(server).await.0 == StatusCode::OK).then_some(()) },
    )
    .await;
    let (status, body) = json(signin().send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(file_names(&s, &t).await, ["small.bin"]);
    let (status, body) = json(
        s.req("POST", &t, "/uploads")
            .json(&init)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(download_sha1(&s, &t, &small_sha1).await, small_sha1);
    for n in 2..=3 {
        assert_eq!(s.put_part(&t, &id, n, CH, &data).await.0, StatusCode::OK);
    }
    let (status, file) = s.complete(&t, &id).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(
        download_sha1(&s, &t, &sha1_hex(&data)).await,
        sha1_hex(&data)
    );
    drop(s);
    drop(proxy);
    drop(db);
}

// ---- disk full while staging --------------------------------------------------------------

/// A tmpfs of `size` mounted at a fresh directory, unmounted on drop (also on panic).
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("FATAL: cannot run mount");
        assert!(
            out.status.success(),
            "FATAL: cannot mount a tmpfs (the disk-full test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }

    /// Bytes in use, as `df` counts them.
    fn used(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.dir).unwrap();
        (st.blocks() - st.blocks_free()) * st.fragment_size()
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

#[tokio::test]
async fn disk_full_while_staging_gives_507_frees_the_part_and_keeps_serving() {
    const MIB: u64 = 1 << 20;
    const SLACK: u64 = 256 * 1024; // directories, rounding
    let fs = Tmpfs::mount("8m");
    // The upload store (staging, temp files, blobs) on the small disk; the database elsewhere.
    let store = format!("local=local:{}", fs.path().display());
    // Declared after the mount: dropped (killed) before it is unmounted.
    let s = Server::start_with(&["--store", &store]);
    let t = s.user("diskfull").await;
    let small = random_bytes(100_000);
    let small_sha1 = sha1_hex(&small);
    assert_eq!(s.upload(&t, "small.bin", small).await.0, StatusCode::OK);
    let baseline = fs.used();

    // 12 MiB into 8 MiB: parts succeed until one hits the full disk.
    let big = random_bytes((12 * MIB) as usize);
    let (status, created) = s.create_upload(&t, "big.bin", &big, Some(MIB)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    let mut stored = 0u64;
    let failed = loop {
        let n = stored + 1;
        assert!(n <= 12, "12 MiB fitted on an 8 MiB disk");
        let got = s.put_part(&t, &id, n, MIB, &big).await;
        if got.0 == StatusCode::OK {
            stored = n;
            continue;
        }
        break got;
    };
    assert_error(
        &failed,
        StatusCode::INSUFFICIENT_STORAGE,
        INSUFFICIENT_STORAGE,
    );
    assert!(stored >= 4, "only {stored} parts fitted");
    // The failed part's blocks were given back at once: only acknowledged parts hold space.
    let used = fs.used();
    assert!(
        used <= baseline + stored * MIB + SLACK,
        "{used} bytes used after the failed part ({stored} parts stored, baseline {baseline})"
    );
    let (_, status) = s.get(&t, &format!("/uploads/{id}")).await;
    let acked: Vec<u64> = (1..=stored).collect();
    assert_eq!(status["data"]["received"], serde_json::json!(acked));
    assert_eq!(file_names(&s, &t).await, ["small.bin"]);

    // Still serving: downloads, and an upload that fits in what is left.
    assert_eq!(download_sha1(&s, &t, &small_sha1).await, small_sha1);
    let tiny = random_bytes(50_000);
    let (status, body) = s.upload(&t, "tiny.bin", tiny.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        download_sha1(&s, &t, &sha1_hex(&tiny)).await,
        sha1_hex(&tiny)
    );

    // Aborting gives the staged bytes back.
    let (status, body) = json(
        s.req("DELETE", &t, &format!("/uploads/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(s.staging_files().is_empty());
    let after_abort = fs.used();
    assert!(
        after_abort <= baseline + 50_000 + SLACK,
        "{after_abort} bytes used after abort (baseline {baseline})"
    );

    // A file that fits uploads fine now.
    let fits = random_bytes((5 * MIB + 7) as usize);
    let (status, created) = s.create_upload(&t, "fits.bin", &fits, Some(MIB)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in 1..=6 {
        let got = s.put_part(&t, &id, n, MIB, &fits).await;
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    }
    let (status, file) = s.complete(&t, &id).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(
        download_sha1(&s, &t, &sha1_hex(&fits)).await,
        sha1_hex(&fits)
    );

    // The classic single-request upload: 507 too, and its temp file is removed.
    let before = fs.used();
    let too_big = random_bytes((4 * MIB) as usize);
    let got = s.upload(&t, "toobig.bin", too_big).await;
    assert_error(&got, StatusCode::INSUFFICIENT_STORAGE, INSUFFICIENT_STORAGE);
    let store_tmp = fs.path().join("tmp");
    crate::support::eventually("the failed upload's temp file is removed", || {
        crate::support::files_under(&store_tmp).is_empty()
    })
    .await;
    // Unlinked is not yet freed while the writer still closes its handle: wait for the space.
    crate::support::eventually("the failed upload's space is freed", || {
        fs.used() <= before + SLACK
    })
    .await;
    assert_eq!(
        file_names(&s, &t).await.len(),
        3,
        "small, tiny and fits; nothing partial"
    );
    drop(s);
}
