//! Proof of ownership for instant upload: knowing a SHA1 and size is not enough to get a file.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{answer_challenge, assert_error, json, random_bytes, sha1_hex, Server};

async fn claim(s: &Server, t: &str, name: &str, data: &[u8]) -> (StatusCode, Value) {
    let body = json!({ "filename": name, "size": data.len(), "sha1": sha1_hex(data) });
    json(
        s.req("POST", t, "/uploads")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn answer(s: &Server, t: &str, id: &Value, digests: Vec<String>) -> (StatusCode, Value) {
    let body = json!({ "challenge": id, "digests": digests });
    json(
        s.req("POST", t, "/uploads/proof")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn file_count(s: &Server, t: &str) -> usize {
    s.get(t, "/file/query").await.1["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_hash_alone_gets_a_challenge_not_the_file() {
    let s = Server::start();
    let owner = s.user("owner").await;
    let thief = s.user("thief").await;
    let data = random_bytes(1_000_000);
    assert_eq!(
        s.upload(&owner, "secret.bin", data.clone()).await.0,
        StatusCode::OK
    );

    // Claiming the content by its hash: a challenge, and nothing linked.
    let (st, c) = claim(&s, &thief, "mine.bin", &data).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["data"]["instant"], false);
    let ch = c["data"]["challenge"].clone();
    assert_eq!(ch["algorithm"], "sha256");
    let ranges = ch["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 3);
    assert_eq!(file_count(&s, &thief).await, 0);

    // Wrong digests: a normal upload session instead (the bytes must come).
    let wrong = vec!["00".repeat(32); 3];
    let (st, fallback) = answer(&s, &thief, &ch["id"], wrong).await;
    assert_eq!(st, StatusCode::CREATED, "{fallback}");
    assert!(fallback["data"]["upload_id"].is_string(), "{fallback}");
    assert_eq!(file_count(&s, &thief).await, 0);
    // Single use: the right answer now comes too late.
    let (st, _) = answer(
        &s,
        &thief,
        &ch["id"],
        answer_challenge(&data, &ch["ranges"]),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Challenges are bound to their user.
    let (_, c2) = claim(&s, &thief, "mine.bin", &data).await;
    let ch2 = c2["data"]["challenge"].clone();
    let digests = answer_challenge(&data, &ch2["ranges"]);
    assert_error(
        &answer(&s, &owner, &ch2["id"], digests.clone()).await,
        StatusCode::NOT_FOUND,
        10401,
    );
    // Someone who has the bytes proves it and gets the file at once.
    let (st, ok) = answer(&s, &thief, &ch2["id"], digests).await;
    assert_eq!(st, StatusCode::OK, "{ok}");
    assert_eq!(ok["data"]["instant"], true);
    assert_eq!(ok["data"]["file"]["sha1"], sha1_hex(&data));
    assert_eq!(file_count(&s, &thief).await, 1);

    // The ranges differ from one challenge to the next.
    let (_, c3) = claim(&s, &owner, "again.bin", &data).await;
    assert_ne!(c3["data"]["challenge"]["ranges"], ch["ranges"]);
}

#[tokio::test]
async fn wrong_answers_are_rate_limited() {
    let s = Server::start();
    let t = s.user("guesser").await;
    let data = random_bytes(300_000);
    assert_eq!(s.upload(&t, "a.bin", data.clone()).await.0, StatusCode::OK);
    for _ in 0..5 {
        let (_, c) = claim(&s, &t, "b.bin", &data).await;
        let (st, b) = answer(
            &s,
            &t,
            &c["data"]["challenge"]["id"],
            vec!["ab".repeat(32); 3],
        )
        .await;
        // A session: new the first time, the same one resumed afterwards.
        assert!(st == StatusCode::CREATED || st == StatusCode::OK, "{b}");
        assert!(b["data"]["upload_id"].is_string(), "{b}");
    }
    let (_, c) = claim(&s, &t, "b.bin", &data).await;
    let resp = s
        .req("POST", &t, "/uploads/proof")
        .json(&json!({
            "challenge": c["data"]["challenge"]["id"],
            "digests": answer_challenge(&data, &c["data"]["challenge"]["ranges"]),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let (_, body) = json(resp).await;
    assert_eq!(body["code"], 14291);
}

#[tokio::test]
async fn classic_fastupload_is_challenged_too() {
    let s = Server::start();
    let owner = s.user("fast-owner").await;
    let other = s.user("fast-other").await;
    let data = random_bytes(200_000);
    assert_eq!(
        s.upload(&owner, "f.bin", data.clone()).await.0,
        StatusCode::OK
    );
    let sha = sha1_hex(&data);
    let size = data.len().to_string();
    let fields = [
        ("filehash", sha.as_str()),
        ("filename", "f2.bin"),
        ("filesize", size.as_str()),
    ];
    let (st, c) = s.post(&other, "/file/fastupload", &fields).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["data"]["Instant"], false);
    let ch = c["data"]["Challenge"].clone();
    assert_eq!(file_count(&s, &other).await, 0);
    let digests = answer_challenge(&data, &ch["ranges"]).join(",");
    let id = ch["id"].as_str().unwrap().to_owned();
    let mut with = fields.to_vec();
    with.extend([("challenge", id.as_str()), ("digests", digests.as_str())]);
    let (st, file) = s.post(&other, "/file/fastupload", &with).await;
    assert_eq!(st, StatusCode::OK, "{file}");
    assert_eq!(file["data"]["FileSha1"], sha);
    // mpupload init never links without the bytes: it starts a session.
    let (st, init) = s
        .post(
            &other,
            "/file/mpupload/init",
            &[
                ("filehash", sha.as_str()),
                ("filesize", size.as_str()),
                ("filename", "m.bin"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{init}");
    assert_eq!(init["data"]["Instant"], false);
}

#[tokio::test]
async fn trusted_and_off_modes() {
    let data = random_bytes(100_000);
    let s = Server::start_with(&["--instant-upload", "trusted"]);
    let t = s.user("trusting").await;
    assert_eq!(s.upload(&t, "x.bin", data.clone()).await.0, StatusCode::OK);
    let (st, c) = claim(&s, &t, "y.bin", &data).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(c["data"]["instant"], true, "{c}");
    drop(s);
    let s = Server::start_with(&["--instant-upload", "off"]);
    let t = s.user("sending").await;
    assert_eq!(s.upload(&t, "x.bin", data.clone()).await.0, StatusCode::OK);
    let (st, c) = claim(&s, &t, "y.bin", &data).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    assert!(c["data"]["upload_id"].is_string());
}
