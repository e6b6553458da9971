//! Operations: `/healthz`, `/readyz`, `/metrics`, request ids, roles (`--routes`) as separate
//! processes with a worker, graceful shutdown mid-upload, `config check` and `--config`.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{assert_error, random_bytes, sha1_hex, Server};
use crate::transfer::{eventually_async, Cluster, Worker};

async fn text(s: &Server, path: &str) -> (StatusCode, String) {
    let resp = s.client.get(s.url(path)).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The value of one sample line of a Prometheus exposition (`name{labels}` exactly).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn health_metrics_and_request_ids() {
    let s = Server::start();
    let (st, body) = text(&s, "/healthz").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = text(&s, "/readyz").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    for dep in ["database", "sessions", "store local"] {
        assert!(body.contains(dep), "{dep} not checked: {body}");
    }

    // A chunked upload, then the same content again (instant).
    let t = s.user("metered").await;
    let chunk = 256 * 1024u64;
    let data = random_bytes((3 * chunk) as usize + 17);
    let (_, created) = s.create_upload(&t, "m.bin", &data, Some(chunk)).await;
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in 1..=4 {
        assert_eq!(s.put_part(&t, &id, n, chunk, &data).await.0, StatusCode::OK);
    }
    assert_eq!(s.complete(&t, &id).await.0, StatusCode::CREATED);
    let (st, again) = s.create_upload(&t, "again.bin", &data, Some(chunk)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(again["data"]["instant"], true);
    let resp = s.download(&t, &sha1_hex(&data)).await;
    assert_eq!(resp.bytes().await.unwrap().len(), data.len());

    let (st, m) = text(&s, "/metrics").await;
    assert_eq!(st, StatusCode::OK);
    let part = r#"chunkvault_http_requests_total{method="PUT",route="/uploads/{id}/parts/{id}",status="200"}"#;
    assert_eq!(sample(&m, part), Some(4.0), "{m}");
    assert_eq!(
        sample(&m, r#"chunkvault_upload_sessions_total{event="opened"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, r#"chunkvault_upload_sessions_total{event="completed"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&m, "chunkvault_instant_uploads_total"), Some(1.0));
    assert_eq!(
        sample(&m, "chunkvault_sha1_verify_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            r#"chunkvault_part_upload_seconds_count{protocol="rest"}"#
        ),
        Some(4.0)
    );
    assert!(sample(&m, "chunkvault_http_bytes_in_total").unwrap() >= data.len() as f64);
    assert!(sample(&m, "chunkvault_http_bytes_out_total").unwrap() >= data.len() as f64);

    // Request ids: taken from the client, else made; in the response, the log and errors.
    let resp = s
        .req("GET", "not-a-token", "/file/query")
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-me-42", "{body}");
    let resp = s.client.get(s.url("/healthz")).send().await.unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 16);
    // The log line may be written just after the answer: wait for it, do not race it.
    crate::support::eventually("the request id is in the log", || {
        std::fs::read_to_string(&s.log)
            .unwrap()
            .lines()
            .any(|l| l.contains("trace-me-42") && l.contains("request"))
    })
    .await;
}

#[tokio::test]
async fn readyz_names_what_is_down() {
    // An object store nobody answers at.
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::write(&creds, "access_key_id = a\nsecret_access_key = b\n").unwrap();
    let store = format!(
        "gone=s3://bucket?endpoint=http://127.0.0.1:1&credentials={}",
        creds.display()
    );
    let s = Server::start_with(&["--store", &store]);
    let (st, body) = text(&s, "/readyz").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("store gone"), "{body}");
    assert!(
        !body.contains("store local"),
        "only the failing one: {body}"
    );
    let (st, _) = text(&s, "/healthz").await;
    assert_eq!(st, StatusCode::OK, "alive all the same");
}

type Body = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;
type InFlight = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// An upload of `data` in parts of `chunk` with part 1 stored and part 2 on the wire: its first
/// 100,000 bytes read by the server (its byte counter says so), the rest up to the caller
/// (`Body`). Returns the upload id, the body's sender and the request in flight.
async fn part_two_half_sent(
    s: &Server,
    t: &str,
    data: &[u8],
    chunk: u64,
) -> (String, Body, InFlight) {
    let (_, created) = s.create_upload(t, "half.bin", data, Some(chunk)).await;
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    assert_eq!(s.put_part(t, &id, 1, chunk, data).await.0, StatusCode::OK);
    let bytes_in = |m: &str| sample(m, "chunkvault_http_bytes_in_total").unwrap_or(0.0);
    let before = bytes_in(&text(s, "/metrics").await.1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let req = s
        .req("PUT", t, &format!("/uploads/{id}/parts/2"))
        .header("content-length", chunk.to_string())
        .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
        .send();
    let inflight = tokio::spawn(req);
    tx.send(Ok(data[chunk as usize..chunk as usize + 100_000].to_vec()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bytes_in(&text(s, "/metrics").await.1) < before + 100_000.0 {
        assert!(std::time::Instant::now() < deadline, "part 2 never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (id, tx, inflight)
}

/// After a restart the upload `id` holds exactly the parts `held`; the last part is sent, the
/// upload completed, and the download equals `data`.
async fn finishes_after_restart(
    s: &Server,
    t: &str,
    id: &str,
    held: &[u32],
    chunk: u64,
    data: &[u8],
) {
    let (_, st) = s.get(t, &format!("/uploads/{id}")).await;
    assert_eq!(st["data"]["received"], serde_json::json!(held), "{st}");
    let last = held.len() as u64 + 1;
    assert_eq!(s.put_part(t, id, last, chunk, data).await.0, StatusCode::OK);
    assert_eq!(s.complete(t, id).await.0, StatusCode::CREATED);
    let got = s.download(t, &sha1_hex(data)).await.bytes().await.unwrap();
    assert_eq!(sha1_hex(&got), sha1_hex(data));
}

/// SIGTERM while a part's body stalls (half sent, never finished): the server waits out
/// `--shutdown-grace` (1 s), cuts the request and exits 0; the cut part is not stored, and after a
/// restart the upload goes on from the part before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_runs_out_on_a_stalled_part() {
    let s = Server::start_with(&["--shutdown-grace", "1s"]);
    let t = s.user("graceless").await;
    let chunk = 256 * 1024u64;
    let data = random_bytes((2 * chunk) as usize);
    let (id, tx, inflight) = part_two_half_sent(&s, &t, &data, chunk).await;
    let stopped_at = std::time::Instant::now();
    s.sigterm();
    let data_dir = s.data.clone();
    let (status, dir) = s.wait_exit();
    let took = stopped_at.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM with a 1 s grace"
    );
    // The client sees its request cut, never a success.
    let cut = inflight.await.unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| !r.status().is_success()),
        "{cut:?}"
    );
    drop(tx);

    let s = Server::start_in(&data_dir, &[], dir);
    finishes_after_restart(&s, &t, &id, &[1], chunk, &data).await;
}

/// SIGTERM while a part is on the wire: the server stops accepting, lets the part finish
/// (acknowledged), exits 0; after a restart the upload completes without that part again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_mid_upload() {
    let s = Server::start_with(&["--shutdown-grace", "30s"]);
    let t = s.user("graceful").await;
    let chunk = 256 * 1024u64;
    let data = random_bytes((3 * chunk) as usize);
    // Part 2, streamed: 100,000 bytes now, the rest after SIGTERM.
    let (id, tx, inflight) = part_two_half_sent(&s, &t, &data, chunk).await;
    let part2 = data[chunk as usize..2 * chunk as usize].to_vec();
    let base = s.base.clone();
    s.sigterm();
    // New connections are refused while the part in flight goes on.
    let addr = base.trim_start_matches("http://").to_owned();
    crate::support::eventually("the listener closed", || {
        std::net::TcpStream::connect(&addr).is_err()
    })
    .await;
    tx.send(Ok(part2[100_000..].to_vec())).await.unwrap();
    drop(tx);
    let resp = inflight.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the part in flight finished");
    let log1 = s.log.clone();
    let data_dir = s.data.clone();
    let (status, dir) = s.wait_exit();
    assert!(status.success(), "exit status {status:?}");

    // Restart: parts 1 and 2 are there; only 3 is sent.
    let s = Server::start_in(&data_dir, &[], dir);
    finishes_after_restart(&s, &t, &id, &[1, 2], chunk, &data).await;
    let logs = std::fs::read_to_string(log1).unwrap() + &std::fs::read_to_string(&s.log).unwrap();
    for n in 1..=3 {
        let stored = logs
            .lines()
            .filter(|l| l.contains("part stored") && l.contains(&format!("part={n} ")))
            .count();
        assert_eq!(stored, 1, "part {n} stored {stored} times");
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Three roles as three processes and a transfer worker, on MariaDB, Redis, Ceph and
/// RabbitMQ: a whole user journey, each request sent to the role that serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_split_user_journey() {
    let Some(cluster) = Cluster::start("roles").await else {
        return;
    };
    let (cold, flags) = (&cluster.cold, &cluster.flags);
    let node = |role: &str| {
        let mut f = flags.clone();
        f.extend(
            [
                "--routes",
                role,
                "--transfer-to",
                "cold",
                "--no-transfer-worker",
            ]
            .map(String::from),
        );
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        Server::start_with(&f)
    };
    let account = node("account");
    let upload = node("upload");
    let download = node("download");

    // Account: sign up and in.
    let t = account.user("journey").await;
    // Upload role: a chunked upload in parts, and an instant one.
    let chunk = 5 * 1024 * 1024u64;
    let data = random_bytes((2 * chunk + 99) as usize);
    let (st, created) = upload
        .create_upload(&t, "旅程.bin", &data, Some(chunk))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in [2, 3, 1] {
        assert_eq!(
            upload.put_part(&t, &id, n, chunk, &data).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(upload.complete(&t, &id).await.0, StatusCode::CREATED);
    let (st, again) = upload
        .create_upload(&t, "copy.bin", &data, Some(chunk))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(again["data"]["instant"], true);
    // Each role refuses the others' routes.
    assert_error(
        &download
            .create_upload(&t, "x.bin", &data, Some(chunk))
            .await,
        StatusCode::NOT_FOUND,
        10402,
    );
    assert_error(
        &upload.get(&t, "/file/query").await,
        StatusCode::NOT_FOUND,
        10402,
    );
    assert_error(
        &upload.api("GET", Some(&t), "/api/files", None).await,
        StatusCode::NOT_FOUND,
        10402,
    );
    // `POST /api/files` (a whole-file upload) belongs to the upload role, the rest of
    // `/api/files` to the download role.
    assert_error(
        &download
            .api("POST", Some(&t), "/api/files?name=whole.bin", None)
            .await,
        StatusCode::NOT_FOUND,
        10402,
    );
    let (st, whole) = upload
        .api("POST", Some(&t), "/api/files?name=whole.bin", None)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{whole}");
    let (st, _) = download
        .api(
            "DELETE",
            Some(&t),
            &format!("/api/files/{}", whole["data"]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_error(
        &download
            .form(
                "/user/signin",
                &[("username", "journey"), ("password", "x")],
            )
            .await,
        StatusCode::NOT_FOUND,
        10402,
    );
    assert_error(
        &download
            .api(
                "POST",
                None,
                "/api/sessions",
                Some(serde_json::json!({"username": "journey", "password": "x"})),
            )
            .await,
        StatusCode::NOT_FOUND,
        10402,
    );
    // Download role: list, download, range, share link, rename, delete.
    let (st, list) = download.get(&t, "/file/query").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let files = download.files(&t).await;
    assert_eq!(files.len(), 2, "{files:?}");
    let got = download
        .download(&t, &sha1_hex(&data))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&got), sha1_hex(&data));

    // The worker moves the blob to the cold bucket; downloads go on from there.
    let worker_dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(&worker_dir.path().join("data"), flags);
    eventually_async("the blob moved to the cold bucket", 60, || async {
        cold.list_keys().await.unwrap().len() == 1
    })
    .await;
    let got = download
        .download(&t, &sha1_hex(&data))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&got), sha1_hex(&data));
    let sha = sha1_hex(&data);
    let (st, url) = download
        .post(&t, "/file/downloadurl", &[("filehash", sha.as_str())])
        .await;
    assert_eq!(st, StatusCode::OK, "{url}");
    assert!(url.as_str().unwrap().starts_with("http"), "{url}");
    // The links work (presigned by the cold bucket now), without a token.
    let fetched = reqwest::get(url.as_str().unwrap()).await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(sha1_hex(&fetched.bytes().await.unwrap()), sha);
    let (older, newer) = (
        format!("/api/files/{}", files[1]["id"].as_str().unwrap()),
        format!("/api/files/{}", files[0]["id"].as_str().unwrap()),
    );
    let (st, link) = download
        .api("POST", Some(&t), &format!("{older}/links"), None)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{link}");
    let fetched = reqwest::get(link["data"]["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(fetched.status(), StatusCode::OK, "{link}");
    let older_sha = files[1]["sha1"].as_str().unwrap();
    assert_eq!(sha1_hex(&fetched.bytes().await.unwrap()), older_sha);
    let (st, renamed) = download
        .post(
            &t,
            "/file/update",
            &[
                ("op", "0"),
                ("filehash", sha.as_str()),
                ("filename", "改名.bin"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["FileName"], "改名.bin");
    let (st, renamed) = download
        .api(
            "PATCH",
            Some(&t),
            &older,
            Some(serde_json::json!({"name": "改名-2.bin"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{renamed}");
    let (st, del) = download
        .post(&t, "/file/delete", &[("filehash", sha.as_str())])
        .await;
    assert_eq!(st, StatusCode::OK, "{del}");
    assert_error(
        &download.api("GET", Some(&t), &newer, None).await,
        StatusCode::NOT_FOUND,
        10401,
    );
    let (st, del) = download.api("DELETE", Some(&t), &older, None).await;
    assert_eq!(st, StatusCode::OK, "{del}");
    assert!(download.files(&t).await.is_empty());
    eventually_async("the deleted blob is collected", 30, || async {
        cold.list_keys().await.unwrap().is_empty()
    })
    .await;
    // Account: sign out (classic), and a second session through the API.
    let (st, _) = account.post(&t, "/user/signout", &[]).await;
    assert_eq!(st, StatusCode::OK);
    assert_error(
        &account.api("GET", Some(&t), "/api/account", None).await,
        StatusCode::UNAUTHORIZED,
        10101,
    );
    let t2 = account.signin("journey").await;
    let (st, _) = account
        .api("DELETE", Some(&t2), "/api/sessions/current", None)
        .await;
    assert_eq!(st, StatusCode::OK);

    // Each role counted its own part of the journey.
    let (_, m) = text(&upload, "/metrics").await;
    println!("--- /metrics of the upload role after the journey ---\n{m}");
    assert_eq!(
        sample(
            &m,
            r#"chunkvault_http_requests_total{method="PUT",route="/uploads/{id}/parts/{id}",status="200"}"#
        ),
        Some(3.0)
    );
    assert_eq!(sample(&m, "chunkvault_instant_uploads_total"), Some(1.0));
    let (_, m) = text(&download, "/metrics").await;
    assert_eq!(
        sample(
            &m,
            r#"chunkvault_http_requests_total{method="GET",route="/file/download",status="200"}"#
        ),
        Some(2.0)
    );
    for s in [&account, &upload, &download] {
        assert_eq!(text(s, "/readyz").await.0, StatusCode::OK);
    }

    drop((worker, account, upload, download));
    cluster.clean().await;
}

#[test]
fn config_check_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chunkvault.toml");
    std::fs::write(
        &file,
        "max_file_size = \"1GiB\"\nroutes = \"upload\"\namqp_url = \"amqp://user:hunter2@mq:5672/%2f\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["--max-file-size", "2GiB"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("max_file_size = 2147483648"),
        "flags win: {stdout}"
    );
    assert!(
        stdout.contains("routes = \"upload\""),
        "file applies: {stdout}"
    );
    assert!(stdout.contains("amqp://user:***@mq:5672"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "secret printed: {stdout}");
    assert!(stdout.contains("configuration is valid"));

    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting \"colour\""));

    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .args(["config", "check", "--transfer-to", "nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--transfer-to nowhere"));
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let s = Server::start_with(&["--log-format", "json"]);
    let resp = s
        .client
        .get(s.url("/file/query?token=bogus"))
        .header("X-Request-Id", "json-line-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    drop(resp);
    // Lines of the request may be written just after the answer: read until one is there.
    // Every complete line is one JSON object (a line being written may lack its end).
    let tagged = || {
        let log = std::fs::read_to_string(&s.log).unwrap();
        let mut tagged = 0;
        for line in log.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if v["span"]["id"] == "json-line-7" {
                tagged += 1;
            }
        }
        tagged
    };
    crate::support::eventually("a JSON log line of the request", || tagged() >= 1).await;
}
