//! Limits: sign-in guessing, open sessions per user, storage quota, slow headers, stalled
//! bodies. Each answers with a clear 4xx/429 and keeps nothing it should not.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json as j;

use crate::support::{assert_error, json, random_bytes, sha1_hex, Server, PASSWORD};

/// `POST /api/sessions` from `c` (JSON credentials).
fn api_signin(c: &reqwest::Client, s: &Server, user: &str, pw: &str) -> reqwest::RequestBuilder {
    c.post(s.url("/api/sessions"))
        .json(&j!({ "username": user, "password": pw }))
}

/// `POST /user/signin` from `c` (form credentials).
fn classic_signin(
    c: &reqwest::Client,
    s: &Server,
    user: &str,
    pw: &str,
) -> reqwest::RequestBuilder {
    c.post(s.url("/user/signin"))
        .form(&[("username", user), ("password", pw)])
}

/// Sign-in guessing, through either sign-in route, counts against the same limit.
#[tokio::test]
async fn signin_guessing_is_rate_limited() {
    let s = Server::start();
    s.user("target").await;
    s.user("bystander").await;
    for i in 0..10 {
        let req = if i % 2 == 0 {
            api_signin(&s.client, &s, "target", "wrong-password")
        } else {
            classic_signin(&s.client, &s, "target", "wrong-password")
        };
        assert_error(
            &json(req.send().await.unwrap()).await,
            StatusCode::UNAUTHORIZED,
            10102,
        );
    }
    // Now even the right password waits, on both routes; another account is not affected.
    for req in [
        api_signin(&s.client, &s, "target", PASSWORD),
        classic_signin(&s.client, &s, "target", PASSWORD),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().contains_key("retry-after"));
        assert_error(&json(resp).await, StatusCode::TOO_MANY_REQUESTS, 14291);
    }
    let (st, body) = json(
        api_signin(&s.client, &s, "bystander", PASSWORD)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = json(
        classic_signin(&s.client, &s, "bystander", PASSWORD)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn open_sessions_per_user_are_limited() {
    let s = Server::start_with(&["--max-sessions-per-user", "2"]);
    let t = s.user("busy").await;
    let files: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(300_000 + i)).collect();
    let mut ids = Vec::new();
    for f in &files[..2] {
        let (st, c) = s.create_upload(&t, "f.bin", f, None).await;
        assert_eq!(st, StatusCode::CREATED, "{c}");
        ids.push(c["data"]["upload_id"].as_str().unwrap().to_owned());
    }
    let refused = s.create_upload(&t, "f.bin", &files[2], None).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, 14292);
    // Resuming an open session is not a new one.
    let (st, _) = s.create_upload(&t, "f.bin", &files[0], None).await;
    assert_eq!(st, StatusCode::OK);
    // Another user has their own allowance.
    let u = s.user("idle").await;
    assert_eq!(
        s.create_upload(&u, "f.bin", &files[2], None).await.0,
        StatusCode::CREATED
    );
    // Closing one frees a place.
    let resp = s
        .req("DELETE", &t, &format!("/uploads/{}", ids[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        s.create_upload(&t, "f.bin", &files[2], None).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn storage_quota_is_enforced_on_every_upload_path() {
    let s = Server::start_with(&["--user-quota", "1MiB"]);
    let t = s.user("quota").await;
    let first = random_bytes(600_000);
    assert_eq!(s.upload(&t, "a.bin", first.clone()).await.0, StatusCode::OK);
    let (files_before, blobs_before) = s.snapshot(&t).await;

    let second = random_bytes(600_000);
    assert_error(
        &s.upload(&t, "b.bin", second.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        11302,
    );
    assert_error(
        &s.create_upload(&t, "b.bin", &second, None).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        11302,
    );
    let resp = s
        .req("POST", &t, "/files/")
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "600000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The same content under a second name counts too (the user sees two files).
    assert_error(
        &s.create_upload(&t, "a-copy.bin", &first, None).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        11302,
    );
    // ChunkVault's own whole-file upload.
    let resp = s
        .req("POST", &t, "/api/files?name=b.bin")
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::PAYLOAD_TOO_LARGE, 11302);
    // The classic chunked upload and instant upload.
    let sha2 = sha1_hex(&second);
    let size2 = second.len().to_string();
    assert_error(
        &s.post(
            &t,
            "/file/mpupload/init",
            &[("filehash", sha2.as_str()), ("filesize", size2.as_str())],
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        11302,
    );
    assert_eq!(s.snapshot(&t).await, (files_before, blobs_before));
    // Deleting makes room.
    let id = s.file_id(&t, &sha1_hex(&first)).await;
    assert_eq!(
        s.api("DELETE", Some(&t), &format!("/api/files/{id}"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(s.upload(&t, "b.bin", second).await.0, StatusCode::OK);
}

#[test]
fn slow_headers_are_cut_off() {
    let s = Server::start_with(&["--header-timeout", "1s"]);
    let addr = s.base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    // The server closes the connection (EOF or reset) well before our 20 s read timeout; the
    // timeout itself (or any other error) is a failure.
    let n = match conn.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("no answer and no close: {e}"),
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || head.starts_with("HTTP/1.1 408"),
        "unexpected answer: {head}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "not cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_part_body_is_cut_off_and_not_kept() {
    let s = Server::start_with(&["--body-timeout", "1s"]);
    let t = s.user("staller").await;
    let chunk = 256 * 1024u64;
    let data = random_bytes((2 * chunk) as usize);
    let (_, c) = s.create_upload(&t, "s.bin", &data, Some(chunk)).await;
    let id = c["data"]["upload_id"].as_str().unwrap().to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let send = s
        .req("PUT", &t, &format!("/uploads/{id}/parts/1"))
        .header("content-length", chunk.to_string())
        .body(body)
        .send();
    tx.send(Ok(data[..1000].to_vec())).await.unwrap();
    // Then nothing more: the server gives up after its body timeout.
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("the server never gave up on the stalled body");
    assert!(started.elapsed() < Duration::from_secs(15));
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    drop(tx);
    let (_, st) = s.get(&t, &format!("/uploads/{id}")).await;
    assert_eq!(st["data"]["received"], serde_json::json!([]), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_per_user_are_limited() {
    let s = Server::start_with(&["--max-uploads-per-user", "2"]);
    let t = s.user("parallel").await;
    let chunk = 256 * 1024u64;
    let data = random_bytes((4 * chunk) as usize);
    let (_, c) = s.create_upload(&t, "p.bin", &data, Some(chunk)).await;
    let id = c["data"]["upload_id"].as_str().unwrap().to_owned();
    let part = |n: u64| data[((n - 1) * chunk) as usize..(n * chunk) as usize].to_vec();

    // Two parts whose bodies are still arriving hold both of the user's slots.
    let mut held = Vec::new();
    for n in 1..=2u64 {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        let body = reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let send = s
            .req("PUT", &t, &format!("/uploads/{id}/parts/{n}"))
            .header("content-length", chunk.to_string())
            .body(body)
            .send();
        let bytes = part(n);
        tx.send(Ok(bytes[..1000].to_vec())).await.unwrap();
        held.push((tokio::spawn(send), tx, bytes));
    }
    crate::transfer::eventually_async("both part bodies are being received", 10, || async {
        let m = s.client.get(s.url("/metrics")).send().await.unwrap();
        let m = m.text().await.unwrap();
        crate::ops::sample(&m, "chunkvault_uploads_in_flight") == Some(2.0)
    })
    .await;

    // A third at once: 429, and the part is not marked received.
    let third = s.put_part(&t, &id, 3, chunk, &data).await;
    assert_error(&third, StatusCode::TOO_MANY_REQUESTS, 14292);
    assert!(third.1["msg"]
        .as_str()
        .unwrap()
        .contains("concurrent uploads"));
    // Another user is not affected.
    let other = s.user("bystander2").await;
    let small = random_bytes(10_000);
    assert_eq!(s.upload(&other, "o.bin", small).await.0, StatusCode::OK);

    // The held bodies finish; their slots come back and the third part goes through.
    for (send, tx, bytes) in held {
        tx.send(Ok(bytes[1000..].to_vec())).await.unwrap();
        drop(tx);
        let resp = send.await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    for n in 3..=4 {
        assert_eq!(s.put_part(&t, &id, n, chunk, &data).await.0, StatusCode::OK);
    }
    let (st, done) = s.complete(&t, &id).await;
    assert_eq!(st, StatusCode::CREATED, "{done}");
    assert_eq!(done["data"]["sha1"], sha1_hex(&data));
}

/// A client bound to a loopback address of its own (127.0.0.x): a real, distinct socket peer.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn signin_from(
    s: &Server,
    c: &reqwest::Client,
    user: &str,
    pw: &str,
    forwarded: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = api_signin(c, s, user, pw);
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    json(req.send().await.unwrap()).await
}

/// Failed sign-ins throttle the address that makes them (per username and overall), never
/// the account: the owner signs in from elsewhere while the attacker keeps failing.
/// `X-Forwarded-For` from an untrusted peer changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_throttling_hits_the_attacker_not_the_account() {
    let s = Server::start();
    s.user("owner").await;
    let attacker = client_from("127.0.0.2");
    let owner = client_from("127.0.0.3");
    for i in 0..10 {
        // A spoofed X-Forwarded-For does not give the attacker fresh addresses.
        let spoof = format!("10.9.8.{i}");
        let got = signin_from(&s, &attacker, "owner", "wrong-password", Some(&spoof)).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, 10102);
    }
    let got = signin_from(&s, &attacker, "owner", PASSWORD, Some("10.0.0.99")).await;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, 14291);
    // The owner, from another address, is not locked out; a typo there is an ordinary 401.
    let got = signin_from(&s, &owner, "owner", "wrong-password", None).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, 10102);
    let (st, body) = signin_from(&s, &owner, "owner", PASSWORD, None).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    // The attacker's address is throttled overall too: 50 failures over any usernames.
    for i in 0..40 {
        let got = signin_from(&s, &attacker, &format!("guess{i}"), "wrong-password", None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, 10102);
    }
    let got = signin_from(&s, &attacker, "someone-else", "whatever-1", None).await;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, 14291);
    let (st, _) = signin_from(&s, &owner, "owner", PASSWORD, None).await;
    assert_eq!(st, StatusCode::CREATED);
}

/// Behind a trusted proxy the client is the address it forwards; other peers' forwarded
/// addresses are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_name_the_client() {
    let s = Server::start_with(&["--trusted-proxies", "127.0.0.4/32,::1"]);
    s.user("proxied").await;
    let proxy = client_from("127.0.0.4");
    for _ in 0..10 {
        let got = signin_from(&s, &proxy, "proxied", "wrong-password", Some("203.0.113.7")).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, 10102);
    }
    let got = signin_from(&s, &proxy, "proxied", PASSWORD, Some("203.0.113.7")).await;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, 14291);
    // Another client behind the same proxy; and the proxy's own hop list read from the right.
    let (st, _) = signin_from(&s, &proxy, "proxied", PASSWORD, Some("198.51.100.1")).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = signin_from(
        &s,
        &proxy,
        "proxied",
        PASSWORD,
        Some("203.0.113.7, 198.51.100.2"),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "the rightmost untrusted hop is the client"
    );
}

/// Sign-ups are limited per client address (`--signup-rate`), across both sign-up routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signups_are_rate_limited_per_address() {
    let s = Server::start_with(&["--signup-rate", "3/hour"]);
    let spammer = client_from("127.0.0.5");
    let api = |c: &reqwest::Client, name: &str| {
        c.post(s.url("/api/account"))
            .json(&j!({ "username": name, "password": PASSWORD }))
    };
    let classic = |c: &reqwest::Client, name: &str| {
        c.post(s.url("/user/signup"))
            .form(&[("username", name), ("password", PASSWORD)])
    };
    for i in 0..2 {
        let resp = api(&spammer, &format!("spam{i}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = classic(&spammer, "spam2").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "SUCCESS");
    for resp in [
        api(&spammer, "spam3").send().await.unwrap(),
        classic(&spammer, "spam4").send().await.unwrap(),
    ] {
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().contains_key("retry-after"));
        assert_error(&json(resp).await, StatusCode::TOO_MANY_REQUESTS, 14291);
    }
    let honest = client_from("127.0.0.6");
    let resp = api(&honest, "honest").send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "another address signs up"
    );
    let resp = classic(&honest, "honest2").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "another address signs up");
}

/// A body that keeps arriving, but slower than `--min-body-rate` on average once past the
/// grace period, is cut off and nothing of it is kept; a fast one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_slower_than_the_minimum_rate_are_cut_off() {
    let s = Server::start_with(&[
        "--min-body-rate",
        "64KiB",
        "--body-rate-grace",
        "1s",
        "--body-timeout",
        "30s",
    ]);
    let t = s.user("trickler").await;
    let chunk = 256 * 1024u64;
    let data = random_bytes((2 * chunk) as usize);
    let (_, c) = s.create_upload(&t, "slow.bin", &data, Some(chunk)).await;
    let id = c["data"]["upload_id"].as_str().unwrap().to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let send = tokio::spawn(
        s.req("PUT", &t, &format!("/uploads/{id}/parts/1"))
            .header("content-length", chunk.to_string())
            .body(body)
            .send(),
    );
    // 4 KiB every 100 ms (40 KiB/s): never a pause, but under 64 KiB/s on average.
    let started = Instant::now();
    let mut sent = 0;
    while sent < chunk as usize {
        let piece = data[sent..sent + 4096].to_vec();
        if tx.send(Ok(piece)).await.is_err() {
            break;
        }
        sent += 4096;
        tokio::time::sleep(Duration::from_millis(100)).await; // the client's pace, not a sync
        if send.is_finished() {
            break;
        }
    }
    drop(tx);
    let resp = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("the slow body was never cut off")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "cut off late");
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    let (_, st) = s.get(&t, &format!("/uploads/{id}")).await;
    assert_eq!(st["data"]["received"], serde_json::json!([]), "{st}");
    // The same part at full speed goes through.
    assert_eq!(s.put_part(&t, &id, 1, chunk, &data).await.0, StatusCode::OK);
}

/// tus uploads count toward `--max-sessions-per-user` like REST sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_uploads_count_toward_the_session_limit() {
    let s = Server::start_with(&["--max-sessions-per-user", "2"]);
    let t = s.user("tus-many").await;
    let tus_create = || async {
        s.req("POST", &t, "/files/")
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "1000")
            .send()
            .await
            .unwrap()
    };
    assert_eq!(tus_create().await.status(), StatusCode::CREATED);
    let data = random_bytes(300_000);
    let (st, c) = s.create_upload(&t, "r.bin", &data, None).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    // Two open: neither protocol opens a third.
    let resp = tus_create().await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json(resp).await.1["code"], 14292);
    let other = random_bytes(300_001);
    assert_error(
        &s.create_upload(&t, "o.bin", &other, None).await,
        StatusCode::TOO_MANY_REQUESTS,
        14292,
    );
    // Closing the REST session frees a place; a finished (empty) tus upload takes none.
    let id = c["data"]["upload_id"].as_str().unwrap();
    let resp = s
        .req("DELETE", &t, &format!("/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let empty = s
        .req("POST", &t, "/files/")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::CREATED);
    assert_eq!(tus_create().await.status(), StatusCode::CREATED);
    assert_eq!(tus_create().await.status(), StatusCode::TOO_MANY_REQUESTS);
}
/// `/metrics` labels come from the route table and a fixed set of methods: 10,000 requests to
/// made-up paths with made-up methods add no series and no memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_stay_bounded() {
    let s = Server::start();
    let series = || async {
        let m = s.client.get(s.url("/metrics")).send().await.unwrap();
        let text = m.text().await.unwrap();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("chunkvault_http_request"))
            .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_owned())
            .collect();
        lines
    };
    let hammer = |n: usize| {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let client = s.client.clone();
                let base = s.base.clone();
                tokio::spawn(async move {
                    for _ in 0..n / 8 {
                        let r: u64 = rand::random();
                        let path = match r % 4 {
                            0 => format!("/x{r:x}/{}", r % 977),
                            1 => format!("/file/{r:x}"),
                            2 => format!("/user/{r:x}"),
                            _ => format!("/uploads/{r:x}/parts/{r:x}/more"),
                        };
                        let method = match r % 3 {
                            0 => reqwest::Method::from_bytes(
                                format!("M{:x}", r % 100_000).as_bytes(),
                            )
                            .unwrap(),
                            1 => reqwest::Method::GET,
                            _ => reqwest::Method::DELETE,
                        };
                        let resp = client
                            .request(method, format!("{base}{path}"))
                            .send()
                            .await
                            .unwrap();
                        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
                    }
                })
            })
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    // A first round makes every label these requests can have.
    hammer(2_000).await;
    series().await; // (reading /metrics makes its own series once)
    let before = series().await;
    let rss_before = s.rss_kib();
    hammer(10_000).await;
    let after = series().await;
    let rss_after = s.rss_kib();
    assert_eq!(
        before.len(),
        after.len(),
        "new series: {:?}",
        after
            .iter()
            .filter(|l| !before.contains(l))
            .collect::<Vec<_>>()
    );
    assert!(
        after
            .iter()
            .all(|l| !l.contains("route=\"/x") && !l.contains("method=\"M")),
        "made-up paths or methods became labels"
    );
    assert!(
        after
            .iter()
            .any(|l| l.contains("route=\"unmatched\"") && l.contains("method=\"other\"")),
        "{after:?}"
    );
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
