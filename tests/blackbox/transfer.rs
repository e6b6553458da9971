//! Transfers between stores (local → Ceph) through the database queue and through RabbitMQ
//! (`CHUNKVAULT_TEST_AMQP_URL`), with the broker restarted mid-run and a job that keeps
//! failing; `chunkvault migrate` between two Ceph buckets, interrupted and run again; two
//! server nodes and a worker on Ceph, Redis and MariaDB.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chunkvault_engine::transfer::amqp::AmqpTransferQueue;
use chunkvault_engine::transfer::RetryPolicy;
use reqwest::StatusCode;

use crate::s3::{s3_env, s3_store_flags, s3_store_flags_in};
use crate::support::{random_bytes, sha1_hex, Server};

/// Polls an async condition until it holds; fails after `secs`. For effects that happen after
/// the server answered (a queued transfer), never in place of a response.
pub async fn eventually_async<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tests that use the broker hold this for reading; the test that restarts the broker holds
/// it for writing, so no other test's process meets a broker that is down.
static BROKER: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Default::default);

fn amqp_url() -> Option<String> {
    crate::scratch::service_var("CHUNKVAULT_TEST_AMQP_URL").ok()
}

/// `chunkvault worker` with these flags; killed when dropped.
pub struct Worker(Child, std::path::PathBuf);

impl Worker {
    pub fn start(data: &Path, flags: &[String]) -> Worker {
        Worker::start_logging(data, flags, "worker-log")
    }

    /// As `start`, its log in `data` with this extension (one per worker of a test).
    pub fn start_logging(data: &Path, flags: &[String], log_ext: &str) -> Worker {
        let log_path = data.with_extension(log_ext);
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
            .args(["worker", "--data-dir"])
            .arg(data)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "transfer worker running" {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("worker did not start: {line:?}\n{log}");
        }
        Worker(child, log_path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (within a minute).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Restarts the RabbitMQ application (durable queues and persistent messages survive).
fn restart_broker() {
    for step in ["stop_app", "start_app"] {
        let out = Command::new("rabbitmqctl").arg(step).output().unwrap();
        assert!(out.status.success(), "rabbitmqctl {step}: {out:?}");
    }
    let out = Command::new("rabbitmqctl")
        .args(["await_startup", "--timeout", "60"])
        .output()
        .unwrap();
    assert!(out.status.success(), "rabbitmqctl await_startup: {out:?}");
}

async fn download_ok(s: &Server, token: &str, data: &[u8]) {
    let resp = s.download(token, &sha1_hex(data)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        sha1_hex(&resp.bytes().await.unwrap()),
        sha1_hex(data),
        "download corrupted"
    );
}

/// The database queue and the in-process worker: a blob moves from local disk to Ceph while a
/// client keeps downloading it; every download is complete and correct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_ceph_through_the_database_queue() {
    let Some((mut flags, cold, _creds)) = s3_store_flags("cold") else {
        eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: transfer test skipped");
        return;
    };
    flags.extend(["--transfer-to", "cold", "--transfer-after", "2s"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Server::start_with(&flags);
    let t = s.user("mover").await;
    let data = random_bytes(9 * 1024 * 1024 + 5);
    assert_eq!(
        s.upload(&t, "move.bin", data.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(s.blob_files().len(), 1);
    // Downloads before, during and after the move.
    let mut downloads = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.blob_files().is_empty() {
        assert!(Instant::now() < deadline, "the blob never left local disk");
        download_ok(&s, &t, &data).await;
        downloads += 1;
    }
    for _ in 0..3 {
        download_ok(&s, &t, &data).await;
    }
    assert!(downloads > 0);
    assert_eq!(cold.list_keys().await.unwrap().len(), 1);
    // The presigned link now comes from the object store.
    let (st, url) = s
        .post(
            &t,
            "/file/downloadurl",
            &[("filehash", sha1_hex(&data).as_str())],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let url = url.as_str().unwrap();
    assert!(url.contains("X-Amz-Signature"), "{url}");
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert_eq!(sha1_hex(&body), sha1_hex(&data));
    cold.remove_everything().await.unwrap();
}

/// `chunkvault worker` on SIGTERM with a transfer in hand (the database queue): with the default
/// grace the transfer finishes and the worker exits 0; with the grace run out the transfer is cut
/// and its job given back at once, so the next worker moves the blob, once. Never half-done: one
/// object in the cold store, none left on local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sigterm_finishes_or_gives_back_the_transfer_in_hand() {
    let Some((mut flags, cold, _creds)) = s3_store_flags("cold") else {
        eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: worker shutdown test skipped");
        return;
    };
    flags.extend(["--transfer-to", "cold"].map(String::from));
    let mut serve_flags = flags.clone();
    serve_flags.push("--no-transfer-worker".to_owned());
    let serve_flags: Vec<&str> = serve_flags.iter().map(String::as_str).collect();
    let s = Server::start_with(&serve_flags);
    let t = s.user("shutdown").await;
    let moving = |w: &Worker| w.log().contains("moving blob");

    // 1. SIGTERM mid-transfer, default grace (30 s): the transfer finishes.
    let first = random_bytes(96 << 20);
    assert_eq!(
        s.upload(&t, "first.bin", first.clone()).await.0,
        StatusCode::OK
    );
    let mut w = Worker::start_logging(&s.data, &flags, "worker-1");
    eventually_async("the worker has the transfer in hand", 60, || async {
        moving(&w)
    })
    .await;
    let status = w.stop();
    assert!(status.success(), "{status:?}: {}", w.log());
    assert!(w.log().contains("blob transferred"), "{}", w.log());
    assert!(!w.log().contains("grace expired"), "{}", w.log());
    assert_eq!(cold.list_keys().await.unwrap().len(), 1);
    assert!(s.blob_files().is_empty(), "the source was deleted");
    download_ok(&s, &t, &first).await;

    // 2. The same with no grace: cut, given back, moved by the next worker.
    let second = random_bytes(96 << 20);
    assert_eq!(
        s.upload(&t, "second.bin", second.clone()).await.0,
        StatusCode::OK
    );
    let mut cut_flags = flags.clone();
    cut_flags.extend(["--shutdown-grace", "0s"].map(String::from));
    let mut w = Worker::start_logging(&s.data, &cut_flags, "worker-2");
    eventually_async("the worker has the transfer in hand", 60, || async {
        moving(&w)
    })
    .await;
    let status = w.stop();
    assert!(status.success(), "{status:?}: {}", w.log());
    assert!(w.log().contains("grace expired"), "{}", w.log());
    assert!(!w.log().contains("blob transferred"), "{}", w.log());
    download_ok(&s, &t, &second).await; // still served from local disk
                                        // Given back at once (not after the ten-minute lease): the next worker takes it now.
    let w = Worker::start_logging(&s.data, &flags, "worker-3");
    eventually_async(
        "the cut transfer is done by the next worker",
        60,
        || async { s.blob_files().is_empty() },
    )
    .await;
    assert_eq!(
        cold.list_keys().await.unwrap().len(),
        2,
        "one object per blob"
    );
    download_ok(&s, &t, &second).await;
    drop(w);
    cold.remove_everything().await.unwrap();
}

/// RabbitMQ: jobs published while no worker runs survive a broker restart; a worker started
/// afterwards moves them; a worker running across a second restart reconnects and moves the
/// next one; a job that keeps failing ends in the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_ceph_through_rabbitmq_across_broker_restarts() {
    let (Some(amqp), Some((mut flags, cold, _creds))) = (amqp_url(), s3_store_flags("cold")) else {
        eprintln!("CHUNKVAULT_TEST_AMQP_URL or _S3_ENDPOINT not set: RabbitMQ test skipped");
        return;
    };
    let _restarting = BROKER.clone().write_owned().await;
    let prefix = format!(
        "cv-test-{}.",
        crate::support::hex_encode(&rand::random::<[u8; 6]>())
    );
    let (endpoint, ..) = s3_env().unwrap();
    let creds = _creds.path().join("credentials");
    flags.extend([
        "--amqp-url".to_owned(),
        amqp.clone(),
        "--amqp-prefix".to_owned(),
        prefix.clone(),
        "--transfer-attempts".to_owned(),
        "2".to_owned(),
        "--transfer-backoff".to_owned(),
        "1s".to_owned(),
        // A bucket that does not exist: every transfer there fails.
        "--store".to_owned(),
        format!(
            "broken=s3://no-such-bucket-{}?endpoint={endpoint}&credentials={}",
            crate::support::hex_encode(&rand::random::<[u8; 4]>()),
            creds.display()
        ),
    ]);
    let mut serve_flags = flags.clone();
    serve_flags.extend(["--transfer-to", "cold", "--no-transfer-worker"].map(String::from));
    let serve_flags: Vec<&str> = serve_flags.iter().map(String::as_str).collect();
    let s = Server::start_with(&serve_flags);
    let t = s.user("rabbit").await;
    let files: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(1_000_000 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            s.upload(&t, &format!("f{i}.bin"), f.clone()).await.0,
            StatusCode::OK
        );
    }
    let queue = AmqpTransferQueue::connect(&amqp, &prefix, RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(queue.ready_count().await.unwrap(), 3, "three jobs queued");

    restart_broker();
    assert_eq!(
        queue.ready_count().await.unwrap(),
        3,
        "jobs survive a restart"
    );
    for f in &files {
        download_ok(&s, &t, f).await; // still local
    }

    // The worker process (it shares the database; the stores come from the same flags).
    let worker = Worker::start(&s.data, &flags);
    eventually_async("three blobs moved to Ceph", 60, || async {
        cold.list_keys().await.unwrap().len() == 3
    })
    .await;
    eventually_async("local copies removed", 30, || async {
        s.blob_files().is_empty()
    })
    .await;
    for f in &files {
        download_ok(&s, &t, f).await;
    }

    // A second restart with the worker running: it reconnects, and the server's publisher too.
    restart_broker();
    let late = random_bytes(777_777);
    assert_eq!(
        s.upload(&t, "late.bin", late.clone()).await.0,
        StatusCode::OK
    );
    eventually_async(
        "the job published after the restart is done",
        60,
        || async { cold.list_keys().await.unwrap().len() == 4 },
    )
    .await;
    download_ok(&s, &t, &late).await;
    drop(worker);
    drop(s);

    // A destination that always fails: two tries, then the dead-letter queue.
    let mut bad_flags = flags.clone();
    bad_flags.extend(["--transfer-to", "broken"].map(String::from));
    let bad_flags: Vec<&str> = bad_flags.iter().map(String::as_str).collect();
    let s = Server::start_with(&bad_flags);
    let t = s.user("doomed").await;
    let doomed = random_bytes(123_456);
    assert_eq!(
        s.upload(&t, "doomed.bin", doomed.clone()).await.0,
        StatusCode::OK
    );
    eventually_async("the failing job is dead-lettered", 60, || async {
        queue.dead_count().await.unwrap() == 1
    })
    .await;
    download_ok(&s, &t, &doomed).await; // still served from local disk
    assert_eq!(s.blob_files().len(), 1);
    drop(s);

    queue.remove_topology(&[1]).await.unwrap();
    cold.remove_everything().await.unwrap();
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl").args(args).output().unwrap();
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
}

/// The transactional outbox: blobs uploaded while the broker is down keep their transfer jobs in
/// the database; the server is killed (-9) before the broker is back and started again after:
/// its relay publishes every job, and the blobs move. Zero jobs lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_jobs_survive_a_broker_outage_and_a_kill() {
    let (Some(amqp), Some((mut flags, cold, _creds))) = (amqp_url(), s3_store_flags("cold")) else {
        eprintln!("CHUNKVAULT_TEST_AMQP_URL or _S3_ENDPOINT not set: outbox test skipped");
        return;
    };
    let _stopping = BROKER.clone().write_owned().await;
    let prefix = format!(
        "cv-test-{}.",
        crate::support::hex_encode(&rand::random::<[u8; 6]>())
    );
    flags.extend([
        "--amqp-url".to_owned(),
        amqp.clone(),
        "--amqp-prefix".to_owned(),
        prefix.clone(),
    ]);
    let mut serve_flags = flags.clone();
    serve_flags.extend(["--transfer-to", "cold", "--no-transfer-worker"].map(String::from));
    let serve_flags: Vec<&str> = serve_flags.iter().map(String::as_str).collect();
    let s = Server::start_with(&serve_flags);
    let t = s.user("outbox").await;
    let queue = AmqpTransferQueue::connect(&amqp, &prefix, RetryPolicy::default())
        .await
        .unwrap();

    rabbitmqctl(&["stop_app"]);
    let files: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(300_000 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        let (status, body) = s.upload(&t, &format!("o{i}.bin"), f.clone()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "an upload does not wait for the broker: {body}"
        );
    }
    let data = s.data.clone();
    let owner = s.kill9();
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup", "--timeout", "60"]);
    assert_eq!(
        queue.ready_count().await.unwrap(),
        0,
        "nothing reached the broker before the kill"
    );

    let s = Server::start_in(&data, &serve_flags, owner);
    eventually_async("the outbox's three jobs are published", 60, || async {
        queue.ready_count().await.unwrap() == 3
    })
    .await;
    let worker = Worker::start(&s.data, &flags);
    eventually_async("three blobs moved to Ceph", 60, || async {
        cold.list_keys().await.unwrap().len() == 3
    })
    .await;
    for f in &files {
        download_ok(&s, &t, f).await;
    }
    drop(worker);
    drop(s);
    queue.remove_topology(&[]).await.unwrap();
    cold.remove_everything().await.unwrap();
}

/// `migrate` between two Ceph buckets, killed half way and run again: every blob moved once,
/// verified, and downloadable; nothing of them left in the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_between_buckets_interrupted_and_resumed() {
    // The destination in a second bucket, standing in for OSS.
    let second =
        std::env::var("CHUNKVAULT_TEST_S3_BUCKET2").unwrap_or_else(|_| "chunkvault-test-2".into());
    let (Some((mut flags, from, _c1)), Some((to_flags, to, _c2))) = (
        s3_store_flags("ceph"),
        s3_store_flags_in("oss", Some(&second)),
    ) else {
        eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: migrate test skipped");
        return;
    };
    flags.extend(to_flags);
    let mut serve_flags = flags.clone();
    serve_flags.extend(["--upload-store", "ceph"].map(String::from));
    let serve_refs: Vec<&str> = serve_flags.iter().map(String::as_str).collect();
    let s = Server::start_with(&serve_refs);
    let t = s.user("migrant").await;
    let files: Vec<Vec<u8>> = (0..8).map(|i| random_bytes(300_000 + i * 1000)).collect();
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            s.upload(&t, &format!("m{i}.bin"), f.clone()).await.0,
            StatusCode::OK
        );
    }
    let data = s.data.clone();
    let dir = s.kill9();

    let migrate = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chunkvault"))
            .args(["migrate", "--from", "ceph", "--to", "oss", "--data-dir"])
            .arg(&data)
            .args(&flags)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Dry run: counts, moves nothing.
    let out = migrate(&["--dry-run"]).wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("8 blob(s)"), "{text}");
    assert_eq!(to.list_keys().await.unwrap().len(), 0);

    // First run, killed after three blobs.
    let mut child = migrate(&[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut moved: Vec<String> = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("moved ") {
            moved.push(rest.split(' ').next().unwrap().to_owned());
            if moved.len() == 3 {
                child.kill().unwrap();
            }
        }
    }
    child.wait().unwrap();
    let first = moved.len();
    assert!((3..8).contains(&first), "killed half way: {first} moved");

    // Second run: the rest, and only the rest.
    let mut child = migrate(&[]);
    let out: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(child.wait().unwrap().success(), "{out:?}");
    // What is left is what the first run did not switch (the kill may have landed between a
    // blob's switch and its output line, so at most `8 - first`).
    let left: usize = out[0].split(' ').next().unwrap().parse().unwrap();
    assert!(left <= 8 - first && left >= 8 - first - 1, "{out:?}");
    let before = moved.len();
    for line in &out {
        if let Some(rest) = line.strip_prefix("moved ") {
            moved.push(rest.split(' ').next().unwrap().to_owned());
        }
    }
    assert_eq!(moved.len() - before, left, "{out:?}");
    let mut unique = moved.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), moved.len(), "a blob moved twice: {moved:?}");
    assert!(from.list_keys().await.unwrap().is_empty(), "source emptied");
    // At most one copy left over by the killed run (its blob was copied again).
    let held = to.list_keys().await.unwrap().len();
    assert!((8..=9).contains(&held), "{held} objects in the destination");

    // Every file downloads from the new store, verified.
    let s = Server::start_in(&data, &serve_refs, dir);
    for f in &files {
        download_ok(&s, &t, f).await;
    }
    from.remove_everything().await.unwrap();
    to.remove_everything().await.unwrap();
}

/// Two server nodes with Redis sessions, MariaDB metadata and Ceph blobs, each with a data
/// directory of its own, and a transfer worker: the parts of one upload alternate between the
/// nodes, one node is killed mid-upload and the other finishes it; the blob then moves to a
/// second bucket through RabbitMQ; downloads work from both nodes throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_a_worker_on_ceph_redis_mariadb() {
    let Some(cluster) = Cluster::start("nodes").await else {
        return;
    };
    let (hot, cold) = (&cluster.hot, &cluster.cold);
    let flags = cluster.flags.clone();
    let mut node_flags = flags.clone();
    node_flags.extend(["--transfer-to", "cold", "--no-transfer-worker"].map(String::from));
    let node_flags: Vec<&str> = node_flags.iter().map(String::as_str).collect();
    let a = Server::start_with(&node_flags);
    let b = Server::start_with(&node_flags);
    assert_ne!(a.data, b.data, "no shared directory");

    let chunk = 5 * 1024 * 1024u64;
    let t = a.user("cluster").await;
    let data = random_bytes((4 * chunk + 5) as usize);
    let (st, created) = b.create_upload(&t, "cluster.bin", &data, Some(chunk)).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in 1..=3u64 {
        let node = if n % 2 == 0 { &a } else { &b };
        let (st, body) = node.put_part(&t, &id, n, chunk, &data).await;
        assert_eq!(st, StatusCode::OK, "part {n}: {body}");
    }
    // Node A dies mid-upload; B takes the rest and completes.
    let _ = a.kill9();
    for n in 4..=5u64 {
        let (st, body) = b.put_part(&t, &id, n, chunk, &data).await;
        assert_eq!(st, StatusCode::OK, "part {n}: {body}");
    }
    let (st, file) = b.complete(&t, &id).await;
    assert_eq!(st, StatusCode::CREATED, "{file}");
    assert!(b.blob_files().is_empty(), "nothing on a node's disk");
    assert_eq!(hot.list_keys().await.unwrap().len(), 1);
    let a = Server::start_with(&node_flags);
    download_ok(&a, &t, &data).await;
    download_ok(&b, &t, &data).await;

    // The worker moves it to the cold bucket; both nodes serve it from there.
    let worker_dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(&worker_dir.path().join("data"), &flags);
    eventually_async("the blob moved to the cold bucket", 60, || async {
        cold.list_keys().await.unwrap().len() == 1 && hot.list_keys().await.unwrap().is_empty()
    })
    .await;
    download_ok(&a, &t, &data).await;
    download_ok(&b, &t, &data).await;

    drop((worker, a, b));
    cluster.clean().await;
}

/// Shared services for several processes: MariaDB (a scratch database), Redis and RabbitMQ
/// under prefixes of their own, a hot store `hot` (Ceph, the upload store) and a cold store
/// `cold` (the second bucket). `None`, with a note, when a service is not configured.
pub struct Cluster {
    /// Flags every process takes (stores, database, sessions, broker).
    pub flags: Vec<String>,
    pub hot: chunkvault_engine::blobs::S3BlobStore,
    pub cold: chunkvault_engine::blobs::S3BlobStore,
    redis: String,
    amqp: String,
    tag: String,
    _db: crate::scratch::ScratchDb,
    _creds: (tempfile::TempDir, tempfile::TempDir),
    _broker: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl Cluster {
    pub async fn start(name: &str) -> Option<Cluster> {
        let (Ok(redis), Ok(mysql), Some(amqp)) = (
            crate::scratch::service_var("CHUNKVAULT_TEST_REDIS_URL"),
            crate::scratch::service_var("CHUNKVAULT_TEST_MYSQL_URL"),
            amqp_url(),
        ) else {
            eprintln!("Redis, MariaDB or RabbitMQ URL not set: {name} test skipped");
            return None;
        };
        let second = std::env::var("CHUNKVAULT_TEST_S3_BUCKET2")
            .unwrap_or_else(|_| "chunkvault-test-2".into());
        let (Some((hot_flags, hot, c1)), Some((cold_flags, cold, c2))) = (
            s3_store_flags("hot"),
            s3_store_flags_in("cold", Some(&second)),
        ) else {
            eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: {name} test skipped");
            return None;
        };
        let broker = BROKER.clone().read_owned().await;
        let db = crate::scratch::ScratchDb::create(&mysql, &format!("cv_{name}")).await;
        let tag = format!(
            "cv-{name}-{}",
            crate::support::hex_encode(&rand::random::<[u8; 6]>())
        );
        let mut flags: Vec<String> = [
            "--redis-url",
            &redis,
            "--redis-prefix",
            &format!("{tag}:"),
            "--database-url",
            &db.url,
            "--amqp-url",
            &amqp,
            "--amqp-prefix",
            &format!("{tag}."),
            "--upload-store",
            "hot",
        ]
        .map(String::from)
        .to_vec();
        flags.extend(hot_flags);
        flags.extend(cold_flags);
        Some(Cluster {
            flags,
            hot,
            cold,
            redis,
            amqp,
            tag,
            _db: db,
            _creds: (c1, c2),
            _broker: broker,
        })
    }

    /// Removes the queues, session keys and objects (the database goes on drop).
    pub async fn clean(&self) {
        AmqpTransferQueue::connect(
            &self.amqp,
            &format!("{}.", self.tag),
            RetryPolicy::default(),
        )
        .await
        .unwrap()
        .remove_topology(&[])
        .await
        .unwrap();
        chunkvault_engine::RedisSessionStore::connect(&self.redis, &format!("{}:", self.tag))
            .await
            .unwrap()
            .clear()
            .await
            .unwrap();
        self.hot.remove_everything().await.unwrap();
        self.cold.remove_everything().await.unwrap();
    }
}
