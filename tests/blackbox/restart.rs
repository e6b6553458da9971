//! Crash and scale: `kill -9` in the middle of an upload (SQLite and Redis sessions), and two
//! server processes sharing one Redis, one database and one data directory.

use std::io::Write;
use std::net::TcpStream;

use reqwest::StatusCode;

use crate::support::{random_bytes, sha1_hex, Server};

const CH: u64 = 256 * 1024;

/// Removes every key the test's servers made (`args` from `redis_args`).
async fn clear_redis(args: &[String]) {
    let store = chunkvault_engine::RedisSessionStore::connect(&args[1], &args[3])
        .await
        .unwrap();
    store.clear().await.unwrap();
}

/// Server flags for Redis sessions under a key prefix of this test's own.
fn redis_args() -> Option<Vec<String>> {
    let url = crate::scratch::service_var("CHUNKVAULT_TEST_REDIS_URL").ok()?;
    let prefix = format!(
        "cv-bb-{}:",
        crate::support::hex_encode(&rand::random::<[u8; 8]>())
    );
    Some(vec![
        "--redis-url".into(),
        url,
        "--redis-prefix".into(),
        prefix,
        // The nodes of these tests share one data directory.
        "--shared-data-dir".into(),
    ])
}

async fn kill9_mid_upload(extra: &[String]) {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let s = Server::start_with(&extra);
    let t = s.user("crashy").await;
    let data = random_bytes((6 * CH + 99) as usize);
    let (_, created) = s.create_upload(&t, "crash.bin", &data, Some(CH)).await;
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in [1, 2, 5] {
        assert_eq!(s.put_part(&t, &id, n, CH, &data).await.0, StatusCode::OK);
    }
    // Part 3 is on the wire, half sent, when the server dies.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut sock = TcpStream::connect(&addr).unwrap();
    write!(sock, "PUT /uploads/{id}/parts/3 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {t}\r\nContent-Length: {CH}\r\n\r\n").unwrap();
    sock.write_all(&data[(2 * CH) as usize..(2 * CH + CH / 2) as usize])
        .unwrap();
    let data_dir = s.data.clone();
    let owner = s.kill9();
    drop(sock);

    let s = Server::start_in(&data_dir, &extra, owner);
    let (status, st) = s.get(&t, &format!("/uploads/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{st}");
    assert_eq!(
        st["data"]["received"],
        serde_json::json!([1, 2, 5]),
        "exactly the acknowledged parts"
    );
    for n in [3, 4, 6, 7] {
        assert_eq!(s.put_part(&t, &id, n, CH, &data).await.0, StatusCode::OK);
    }
    let (status, file) = s.complete(&t, &id).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["data"]["sha1"], sha1_hex(&data).as_str());
    assert_eq!(
        sha1_hex(
            &s.download(&t, &sha1_hex(&data))
                .await
                .bytes()
                .await
                .unwrap()
        ),
        sha1_hex(&data)
    );
}

#[tokio::test]
async fn kill9_with_sqlite_sessions() {
    kill9_mid_upload(&[]).await;
}

#[tokio::test]
async fn kill9_with_redis_sessions() {
    let Some(args) = redis_args() else {
        eprintln!("CHUNKVAULT_TEST_REDIS_URL not set: skipped (.ci/run sets it)");
        return;
    };
    kill9_mid_upload(&args).await;
    clear_redis(&args).await;
}

/// Parts alternate between two nodes; complete on one, download from the other.
#[tokio::test]
async fn two_nodes_share_one_upload() {
    let Some(args) = redis_args() else {
        eprintln!("CHUNKVAULT_TEST_REDIS_URL not set: skipped (.ci/run sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let db = format!("sqlite://{}/shared.db", dir.path().display());
    let mut extra: Vec<&str> = args.iter().map(String::as_str).collect();
    extra.extend(["--database-url", &db]);
    let a = Server::start_in(&data_dir, &extra, None);
    let b = Server::start_in(&data_dir, &extra, None);
    assert_ne!(a.base, b.base);
    let t = a.user("roamer").await;
    let data = random_bytes((9 * CH + 5) as usize);
    let (_, created) = b.create_upload(&t, "roam.bin", &data, Some(CH)).await;
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in 1..=10u64 {
        let node = if n % 2 == 0 { &a } else { &b };
        let (status, body) = node.put_part(&t, &id, n, CH, &data).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, seen_by_a) = a.get(&t, &format!("/uploads/{id}")).await;
    assert_eq!(seen_by_a["data"]["missing"], 0);
    let (status, file) = a.complete(&t, &id).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let resp = b.download(&t, &sha1_hex(&data)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), sha1_hex(&data));
    drop((a, b, dir));
    clear_redis(&args).await;
}
