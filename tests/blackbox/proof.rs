//! Proof of ownership for instant upload: knowing a SHA1 and size is not enough to get a file.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    answer_challenge, assert_error, envelope, json, random_bytes, sha1_hex, Server,
};

async fn claim(s: &Server, t: &str, name: &str, data: &[u8]) -> (StatusCode, Value) {
    let body = json!({ "filename": name, "size": data.len(), "sha1": sha1_hex(data) });
    envelope(
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
    envelope(
        s.req("POST", t, "/uploads/proof")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn file_count(s: &Server, t: &str) -> usize {
    s.files(t).await.len()
}

/// The original's answer to "upload it normally" (`/file/fastupload`), with `data`.
#[track_caller]
fn assert_fallback(got: &(StatusCode, Value), data: &Value) {
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["code"], -1, "{}", got.1);
    assert_eq!(got.1["msg"], "秒传失败，请访问普通上传接口", "{}", got.1);
    assert_eq!(&got.1["data"], data, "{}", got.1);
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

/// `/file/fastupload` asks for the same proof: the original's fallback answer carries the
/// challenge; a wrong answer is the fallback without one; the right one links the file.
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
    let challenged = s.post(&other, "/file/fastupload", &fields).await;
    let ch = challenged.1["data"]["Challenge"].clone();
    assert_eq!(ch["algorithm"], "sha256", "{}", challenged.1);
    assert_eq!(ch["ranges"].as_array().unwrap().len(), 3);
    assert!(ch["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_fallback(&challenged, &json!({ "Challenge": ch }));
    assert_eq!(file_count(&s, &other).await, 0);

    // A wrong answer: the fallback, without a challenge; nothing linked.
    let mut with = fields.to_vec();
    let wrong = vec!["00".repeat(32); 3].join(",");
    let id = ch["id"].as_str().unwrap().to_owned();
    with.extend([("challenge", id.as_str()), ("digests", wrong.as_str())]);
    let refused = s.post(&other, "/file/fastupload", &with).await;
    assert_fallback(&refused, &Value::Null);
    assert_eq!(file_count(&s, &other).await, 0);
    // No digests at all is a wrong answer too.
    let (_, again) = s.post(&other, "/file/fastupload", &fields).await;
    let id = again["data"]["Challenge"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut with = fields.to_vec();
    with.push(("challenge", id.as_str()));
    assert_fallback(
        &s.post(&other, "/file/fastupload", &with).await,
        &Value::Null,
    );
    assert_eq!(file_count(&s, &other).await, 0);

    // The right answer: linked, the original's success with the FileMeta.
    let (_, again) = s.post(&other, "/file/fastupload", &fields).await;
    let ch = again["data"]["Challenge"].clone();
    let digests = answer_challenge(&data, &ch["ranges"]).join(",");
    let id = ch["id"].as_str().unwrap().to_owned();
    let mut with = fields.to_vec();
    with.extend([("challenge", id.as_str()), ("digests", digests.as_str())]);
    let (st, file) = s.post(&other, "/file/fastupload", &with).await;
    assert_eq!(st, StatusCode::OK, "{file}");
    assert_eq!(file["code"], 0, "{file}");
    assert_eq!(file["msg"], "秒传成功");
    assert_eq!(file["data"]["FileSha1"], sha);
    assert_eq!(file["data"]["FileName"], "f2.bin");
    assert_eq!(file["data"]["FileSize"], 200_000);
    assert_eq!(file["data"]["Location"], "local");
    let files = s.files(&other).await;
    assert_eq!(files.len(), 1);
    assert_eq!(
        (&files[0]["name"], &files[0]["sha1"]),
        (&json!("f2.bin"), &json!(sha))
    );
    // The answer was single use.
    assert_fallback(
        &s.post(&other, "/file/fastupload", &with).await,
        &Value::Null,
    );

    // mpupload init never links without the bytes: it starts a session.
    let third = s.user("fast-third").await;
    let (st, init) = s
        .post(
            &third,
            "/file/mpupload/init",
            &[
                ("filehash", sha.as_str()),
                ("filesize", size.as_str()),
                ("filename", "m.bin"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{init}");
    assert_eq!(init["code"], 0, "{init}");
    assert!(init["data"]["UploadID"].is_string(), "{init}");
    assert_eq!(init["data"]["ChunkExists"], json!([]), "{init}");
    assert_eq!(file_count(&s, &third).await, 0);
}

#[tokio::test]
async fn trusted_and_off_modes() {
    let data = random_bytes(100_000);
    let sha = sha1_hex(&data);
    let size = data.len().to_string();
    let fast = |name: &'static str| {
        [
            ("filehash", sha.clone()),
            ("filename", name.to_owned()),
            ("filesize", size.clone()),
        ]
    };
    let s = Server::start_with(&["--instant-upload", "trusted"]);
    let t = s.user("trusting").await;
    assert_eq!(s.upload(&t, "x.bin", data.clone()).await.0, StatusCode::OK);
    let (st, c) = claim(&s, &t, "y.bin", &data).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(c["data"]["instant"], true, "{c}");
    // The classic instant upload links at once too.
    let u = s.user("trusting-too").await;
    let f = fast("z.bin");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (st, linked) = s.post(&u, "/file/fastupload", &f).await;
    assert_eq!(st, StatusCode::OK, "{linked}");
    assert_eq!(
        (&linked["code"], &linked["msg"]),
        (&json!(0), &json!("秒传成功"))
    );
    assert_eq!(linked["data"]["FileName"], "z.bin");
    assert_eq!(file_count(&s, &u).await, 1);
    drop(s);
    let s = Server::start_with(&["--instant-upload", "off"]);
    let t = s.user("sending").await;
    assert_eq!(s.upload(&t, "x.bin", data.clone()).await.0, StatusCode::OK);
    let (st, c) = claim(&s, &t, "y.bin", &data).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    assert!(c["data"]["upload_id"].is_string());
    // The classic one: upload it normally, and no challenge.
    let u = s.user("sending-too").await;
    let f = fast("z.bin");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_fallback(&s.post(&u, "/file/fastupload", &f).await, &Value::Null);
    assert_eq!(file_count(&s, &u).await, 0);
}
