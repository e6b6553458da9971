//! Small answers on a kept-alive connection (as browsers and every HTTP library send them) come
//! at once: no stall between a response's head and its body (Nagle's algorithm meeting the
//! client's delayed ACK costs ~40 ms a request on a socket without TCP_NODELAY).

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::{random_bytes, sha1_hex, Server};

/// The stall shows as ~40 ms a request; the debug build answers these in a few ms.
const LIMIT: Duration = Duration::from_millis(15);
const ROUNDS: usize = 30;

/// Median time of `ROUNDS` calls of `f` (after one to warm the connection).
async fn p50<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    f(0).await;
    let mut times = Vec::with_capacity(ROUNDS);
    for i in 1..=ROUNDS {
        let t = Instant::now();
        f(i).await;
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[ROUNDS / 2];
    eprintln!("{what}: p50 {median:?} over {ROUNDS} requests on one connection");
    median
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_answers_on_a_kept_alive_connection_are_not_delayed() {
    let s = Server::start();
    let t = s.user("quick").await;
    // One connection, kept alive between the requests.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let data = random_bytes(64);
    let sha = sha1_hex(&data);
    assert_eq!(
        s.upload(&t, "tiny.bin", data.clone()).await.0,
        StatusCode::OK
    );
    let mut medians = Vec::new();

    let url = s.url(&format!("/file/download?filehash={sha}"));
    medians.push(
        p50("GET /file/download (64 B)", |_| async {
            let r = http.get(&url).bearer_auth(&t).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.bytes().await.unwrap().len(), 64);
        })
        .await,
    );

    let id = s.file_id(&t, &sha).await;
    let (_, link) = s
        .api("POST", Some(&t), &format!("/api/files/{id}/links"), None)
        .await;
    let link = link["data"]["url"].as_str().unwrap().to_owned();
    medians.push(
        p50("GET a signed link (64 B)", |_| async {
            let r = http.get(&link).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.bytes().await.unwrap().len(), 64);
        })
        .await,
    );

    // tus: one upload, 64 bytes per PATCH, a HEAD after each.
    let created = http
        .post(s.url("/files/"))
        .bearer_auth(&t)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", (64 * (ROUNDS + 1)).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let upload = created.headers()["location"].to_str().unwrap().to_owned();
    let body = random_bytes(64 * (ROUNDS + 1));
    medians.push(
        p50("tus PATCH (64 B)", |i| {
            let (http, upload, t) = (&http, &upload, &t);
            let chunk = body[64 * i..64 * (i + 1)].to_vec();
            async move {
                let r = http
                    .patch(upload)
                    .bearer_auth(t)
                    .header("tus-resumable", "1.0.0")
                    .header("content-type", "application/offset+octet-stream")
                    .header("upload-offset", (64 * i).to_string())
                    .body(chunk)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
            }
        })
        .await,
    );
    medians.push(
        p50("tus HEAD", |_| async {
            let r = http
                .head(&upload)
                .bearer_auth(&t)
                .header("tus-resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        })
        .await,
    );

    // REST parts: a 64-byte file per round, its one part timed.
    let mut sessions = Vec::new();
    for _ in 0..=ROUNDS {
        let data = random_bytes(64);
        let (st, created) = s.create_upload(&t, "part.bin", &data, None).await;
        assert_eq!(st, StatusCode::CREATED, "{created}");
        sessions.push((
            created["data"]["upload_id"].as_str().unwrap().to_owned(),
            data,
        ));
    }
    medians.push(
        p50("PUT /uploads/{id}/parts/1 (64 B)", |i| {
            let (http, t) = (&http, &t);
            let (id, data) = sessions[i].clone();
            let url = s.url(&format!("/uploads/{id}/parts/1"));
            async move {
                let r = http
                    .put(url)
                    .bearer_auth(t)
                    .body(data)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            }
        })
        .await,
    );
    for m in medians {
        assert!(m < LIMIT, "p50 {m:?}: a small answer was held back");
    }
}
