//! Resumable uploads over REST and the seed's classic routes, against the real binary.

use base64::Engine as _;
use crc32c::crc32c;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{assert_error, envelope, eventually, json, random_bytes, sha1_hex, Server};

const CH: u64 = 256 * 1024;

fn id_of(v: &Value) -> String {
    v["data"]["upload_id"].as_str().unwrap().to_owned()
}

fn received(v: &Value) -> Vec<u64> {
    v["data"]["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn rest_upload_resume_complete_and_instant() {
    let s = Server::start();
    let t = s.user("rest-user").await;
    let data = random_bytes((3 * CH + 1000) as usize); // 4 parts, the last short
    let hash = sha1_hex(&data);

    let (status, created) = s.create_upload(&t, "大文件.bin", &data, Some(CH)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    assert_eq!(created["data"]["chunk_size"], CH);
    assert_eq!(created["data"]["chunk_count"], 4);
    assert!(received(&created).is_empty());
    assert!(created["data"]["expires_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    // Parts out of order; one with a correct Content-MD5.
    assert_eq!(s.put_part(&t, &id, 3, CH, &data).await.0, StatusCode::OK);
    let p1 = data[..CH as usize].to_vec();
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5_of(&p1));
    let resp = s
        .req("PUT", &t, &format!("/uploads/{id}/parts/1"))
        .header("content-md5", md5)
        .body(p1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // A client restart: init again resumes the same session with its parts.
    let (status, resumed) = s.create_upload(&t, "大文件.bin", &data, Some(CH)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(id_of(&resumed), id);
    assert_eq!(received(&resumed), [1, 3]);

    // Bad parts: wrong MD5, wrong length, out of range: 400, nothing marked.
    let bad_md5 = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
    let part2 = data[CH as usize..2 * CH as usize].to_vec();
    let resp = s
        .req("PUT", &t, &format!("/uploads/{id}/parts/2"))
        .header("content-md5", bad_md5)
        .body(part2.clone())
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10005);
    let resp = s
        .req("PUT", &t, &format!("/uploads/{id}/parts/2"))
        .header("content-md5", "!!")
        .body(part2.clone())
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10001);
    // CRC32C as S3's parts carry it: a wrong one, a malformed one, or both digests at once.
    let crc = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(crc32c(b).to_be_bytes());
    let wrong_crc = crc(&part2[1..]);
    for (headers, code) in [
        (vec![("x-amz-checksum-crc32c", wrong_crc.clone())], 10005),
        (
            vec![("x-amz-checksum-crc32c", "AAAAAAAA".to_owned())],
            10001,
        ),
        (
            vec![
                ("x-amz-checksum-crc32c", crc(&part2)),
                (
                    "content-md5",
                    base64::engine::general_purpose::STANDARD.encode(md5_of(&part2)),
                ),
            ],
            10001,
        ),
    ] {
        let mut req = s.req("PUT", &t, &format!("/uploads/{id}/parts/2"));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.body(part2.clone()).send().await.unwrap();
        assert_error(&json(resp).await, StatusCode::BAD_REQUEST, code);
    }
    let resp = s
        .req("PUT", &t, &format!("/uploads/{id}/parts/2"))
        .body(part2[..100].to_vec())
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10001);
    let mut long = part2.clone();
    long.push(0);
    let resp = s
        .req("PUT", &t, &format!("/uploads/{id}/parts/2"))
        .body(long)
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10001);
    for n in ["0", "5", "-1", "x", "99999999999"] {
        let resp = s
            .req("PUT", &t, &format!("/uploads/{id}/parts/{n}"))
            .body(vec![0u8; 10])
            .send()
            .await
            .unwrap();
        assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10001);
    }
    let (status, st) = s.get(&t, &format!("/uploads/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(received(&st), [1, 3]);
    assert_eq!(st["data"]["missing"], 2);
    assert_eq!(st["data"]["bytes_received"], 2 * CH);

    // Completing early: 409 naming the missing parts.
    let got = s.complete(&t, &id).await;
    assert_eq!(got.0, StatusCode::CONFLICT);
    assert_eq!(got.1["code"], 10903);
    assert_eq!(got.1["data"]["missing"], serde_json::json!([2, 4]));

    // Listed while open.
    let (_, list) = s.get(&t, "/uploads").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    assert_eq!(s.put_part(&t, &id, 4, CH, &data).await.0, StatusCode::OK);
    let resp = s
        .req("PUT", &t, &format!("/uploads/{id}/parts/2"))
        .header("x-amz-checksum-crc32c", crc(&part2))
        .body(part2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the right CRC32C");
    assert_eq!(
        s.put_part(&t, &id, 2, CH, &data).await.0,
        StatusCode::OK,
        "repeating a part is harmless"
    );
    let (status, file) = s.complete(&t, &id).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["data"]["sha1"], hash.as_str());
    assert_eq!(file["data"]["name"], "大文件.bin");
    // A retried complete (lost response) gets the same file.
    let (status, again) = s.complete(&t, &id).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["data"]["id"], file["data"]["id"]);
    assert_error(
        &s.get(&t, &format!("/uploads/{id}")).await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert!(s.staging_files().is_empty());

    let resp = s.download(&t, &hash).await;
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), hash);

    // The same content again: instant, no session, no bytes.
    let (status, instant) = s.create_upload(&t, "copy.bin", &data, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(instant["data"]["instant"], true);
    assert_eq!(instant["data"]["file"]["name"], "copy.bin");
    let (_, list) = s.get(&t, "/uploads").await;
    assert!(list["data"].as_array().unwrap().is_empty());
    assert_eq!(s.blob_files().len(), 1);
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(data).into()
}

#[tokio::test]
async fn init_validation_abort_and_other_users() {
    let s = Server::start_with(&["--max-file-size", "10MiB"]);
    let t = s.user("owner-u").await;
    let other = s.user("other-u").await;
    let h = sha1_hex(b"x");
    for (body, status, code) in [
        (
            serde_json::json!({"filename": "a", "size": 1}),
            StatusCode::BAD_REQUEST,
            10001,
        ),
        (
            serde_json::json!({"filename": "a", "size": 1, "sha1": "zz"}),
            StatusCode::BAD_REQUEST,
            10001,
        ),
        (
            serde_json::json!({"filename": "a/b", "size": 1, "sha1": h}),
            StatusCode::BAD_REQUEST,
            10002,
        ),
        (
            serde_json::json!({"filename": "..", "size": 1, "sha1": h}),
            StatusCode::BAD_REQUEST,
            10002,
        ),
        (
            serde_json::json!({"filename": "a", "size": -1, "sha1": h}),
            StatusCode::BAD_REQUEST,
            10001,
        ),
        (
            serde_json::json!({"filename": "a", "size": 11 << 20, "sha1": h}),
            StatusCode::PAYLOAD_TOO_LARGE,
            11301,
        ),
        (
            serde_json::json!({"filename": "a", "size": 1, "sha1": h, "chunk_size": 1000}),
            StatusCode::BAD_REQUEST,
            10001,
        ),
        (
            serde_json::json!({"filename": "a", "size": 1, "sha1": h, "chunk_size": 1u64 << 30}),
            StatusCode::BAD_REQUEST,
            10001,
        ),
    ] {
        let resp = s
            .req("POST", &t, "/uploads")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(&json(resp).await, status, code);
    }
    let resp = s
        .req("POST", &t, "/uploads")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10001);
    assert!(s.staging_files().is_empty());

    let data = random_bytes(1000);
    let (_, created) = s.create_upload(&t, "mine.bin", &data, None).await;
    let id = id_of(&created);
    assert_eq!(s.staging_files().len(), 1);
    // Another user's upload id is exactly an unknown one.
    for (method, path) in [
        ("GET", format!("/uploads/{id}")),
        ("PUT", format!("/uploads/{id}/parts/1")),
        ("POST", format!("/uploads/{id}/complete")),
        ("DELETE", format!("/uploads/{id}")),
        (
            "GET",
            "/uploads/0123456789abcdef0123456789abcdef".to_owned(),
        ),
        ("GET", "/uploads/..%2F..%2Fetc".to_owned()),
    ] {
        let resp = s
            .req(method, &other, &path)
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_error(&json(resp).await, StatusCode::NOT_FOUND, 10401);
    }
    let (_, list) = s.get(&other, "/uploads").await;
    assert!(list["data"].as_array().unwrap().is_empty());
    let (_, st) = s.get(&t, &format!("/uploads/{id}")).await;
    assert!(
        received(&st).is_empty(),
        "the other user's PUT changed nothing"
    );
    // No token at all.
    let resp = s
        .client
        .get(s.url(&format!("/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::UNAUTHORIZED, 10101);

    // Abort: session and staged bytes gone.
    assert_eq!(
        envelope(
            s.req("DELETE", &t, &format!("/uploads/{id}"))
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_error(
        &s.get(&t, &format!("/uploads/{id}")).await,
        StatusCode::NOT_FOUND,
        10401,
    );
    eventually("staging is removed", || s.staging_files().is_empty()).await;
}

/// Upload bytes B claiming the SHA1 of A: refused, and A's SHA1 stays unknown to instant upload.
#[tokio::test]
async fn hash_poisoning_is_refused() {
    let s = Server::start();
    let mallory = s.user("mallory").await;
    let victim = s.user("victim").await;
    let a = random_bytes(5000);
    let b = random_bytes(5000);
    let a_hash = sha1_hex(&a);
    let body = serde_json::json!({"filename": "a.bin", "size": 5000, "sha1": a_hash});
    let (status, created) = envelope(
        s.req("POST", &mallory, "/uploads")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = id_of(&created);
    assert_eq!(s.put_part(&mallory, &id, 1, CH, &b).await.0, StatusCode::OK);
    assert_error(
        &s.complete(&mallory, &id).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        12201,
    );
    assert!(s.staging_files().is_empty(), "staged data discarded");
    assert!(s.blob_files().is_empty(), "nothing visible");
    assert_error(
        &s.get(&mallory, &format!("/uploads/{id}")).await,
        StatusCode::NOT_FOUND,
        10401,
    );

    // Instant upload of A is not satisfied by B: the classic one says "upload it normally",
    // with no challenge (nothing is stored under A's SHA1).
    assert_fast_fallback(
        &s.post(
            &victim,
            "/file/fastupload",
            &[
                ("filehash", &a_hash),
                ("filename", "a.bin"),
                ("filesize", "5000"),
            ],
        )
        .await,
        false,
    );
    assert!(s.files(&victim).await.is_empty());
    let (status, fresh) = envelope(
        s.req("POST", &victim, "/uploads")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a normal upload, not instant: {fresh}"
    );
    let id = id_of(&fresh);
    s.put_part(&victim, &id, 1, CH, &a).await;
    assert_eq!(s.complete(&victim, &id).await.0, StatusCode::CREATED);
    assert_eq!(
        sha1_hex(&s.download(&victim, &a_hash).await.bytes().await.unwrap()),
        a_hash
    );
}

/// `/file/fastupload`'s answer when it did not link: 200, the original's code -1 and message,
/// and the proof-of-ownership challenge when the content is stored (`challenged`) or null.
#[track_caller]
fn assert_fast_fallback(got: &(StatusCode, Value), challenged: bool) {
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["code"], -1, "{}", got.1);
    assert_eq!(got.1["msg"], "秒传失败，请访问普通上传接口", "{}", got.1);
    if challenged {
        assert!(got.1["data"]["Challenge"]["id"].is_string(), "{}", got.1);
    } else {
        assert!(got.1["data"].is_null(), "{}", got.1);
    }
}

/// The original's `{"code": 0, "msg": "OK", "data": null}`.
#[track_caller]
fn assert_resp_ok_null(got: &(StatusCode, Value)) {
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1, json!({"code": 0, "msg": "OK", "data": null}));
}

/// The seed's routes and parameter names, end to end.
#[tokio::test]
async fn classic_mpupload_and_fastupload() {
    let s = Server::start();
    let t = s.user("classic").await;
    let data = random_bytes((5 << 20) + 12345); // default 5 MiB chunks: 2 parts
    let hash = sha1_hex(&data);
    let size = data.len().to_string();
    assert_fast_fallback(
        &s.post(
            &t,
            "/file/fastupload",
            &[
                ("filehash", &hash),
                ("filename", "seed.bin"),
                ("filesize", &size),
            ],
        )
        .await,
        false,
    );
    // The original's test client sends no size: nothing can be claimed without one.
    assert_fast_fallback(
        &s.post(
            &t,
            "/file/fastupload",
            &[("filehash", &hash), ("filename", "seed.bin")],
        )
        .await,
        false,
    );
    let (status, init) = s
        .post(
            &t,
            "/file/mpupload/init",
            &[
                ("filehash", &hash),
                ("filesize", &size),
                ("filename", "seed.bin"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{init}");
    assert_eq!((&init["code"], &init["msg"]), (&json!(0), &json!("OK")));
    let d = &init["data"];
    let mut keys: Vec<&String> = d.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ChunkCount",
            "ChunkExists",
            "ChunkSize",
            "FileHash",
            "FileSize",
            "UploadID"
        ]
    );
    assert_eq!(d["ChunkSize"], 5 << 20);
    assert_eq!(d["ChunkCount"], 2);
    assert_eq!(d["FileHash"], hash.as_str());
    assert_eq!(d["FileSize"], data.len());
    assert_eq!(d["ChunkExists"], json!([]));
    let upid = d["UploadID"].as_str().unwrap().to_owned();

    let chunk = 5usize << 20;
    let part2 = data[chunk..].to_vec();
    let good = sha1_hex(&part2);
    // A wrong chkhash: 400, part not kept.
    let resp = s
        .req(
            "POST",
            &t,
            &format!(
                "/file/mpupload/uppart?uploadid={upid}&index=2&chkhash={}",
                sha1_hex(b"no")
            ),
        )
        .body(part2.clone())
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10005);
    let resp = s
        .req(
            "POST",
            &t,
            &format!("/file/mpupload/uppart?uploadid={upid}&index=2&chkhash={good}"),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(part2)
        .send()
        .await
        .unwrap();
    assert_resp_ok_null(&json(resp).await);
    let (_, st) = s
        .get(&t, &format!("/file/mpupload/status?uploadid={upid}"))
        .await;
    assert_eq!(st["code"], 0, "{st}");
    assert_eq!(st["data"]["UploadID"], upid.as_str());
    assert_eq!(st["data"]["ChunkExists"], json!([2]));
    assert_eq!(st["data"]["ChunkMissing"], json!([1]));
    // A client restart: init again resumes the same upload with its parts.
    let (_, resumed) = s
        .post(
            &t,
            "/file/mpupload/init",
            &[
                ("filehash", &hash),
                ("filesize", &size),
                ("filename", "seed.bin"),
            ],
        )
        .await;
    assert_eq!(resumed["data"]["UploadID"], upid.as_str(), "{resumed}");
    assert_eq!(resumed["data"]["ChunkExists"], json!([2]));
    let got = s
        .post(&t, "/file/mpupload/complete", &[("uploadid", &upid)])
        .await;
    assert_eq!(got.0, StatusCode::CONFLICT);
    assert_eq!(got.1["code"], 10903);
    assert_eq!(got.1["data"]["missing"], json!([1]));
    assert!(
        s.files(&t).await.is_empty(),
        "nothing visible before complete"
    );
    // The token as a query parameter, as the seed's client sends it.
    let resp = s
        .client
        .post(s.url(&format!(
            "/file/mpupload/uppart?uploadid={upid}&index=1&token={t}"
        )))
        .body(data[..chunk].to_vec())
        .send()
        .await
        .unwrap();
    assert_resp_ok_null(&json(resp).await);
    let done = s
        .post(
            &t,
            "/file/mpupload/complete",
            &[("uploadid", &upid), ("filename", "最终.bin")],
        )
        .await;
    assert_resp_ok_null(&done);
    let (status, meta) = s.get(&t, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["FileSha1"], hash.as_str());
    assert_eq!(meta["FileName"], "最终.bin");
    assert_eq!(meta["FileSize"], data.len());
    let files = s.files(&t).await;
    assert_eq!(files.len(), 1, "one file: {files:?}");
    assert_eq!(
        sha1_hex(&s.download(&t, &hash).await.bytes().await.unwrap()),
        hash
    );
    assert_error(
        &s.get(&t, &format!("/file/mpupload/status?uploadid={upid}"))
            .await,
        StatusCode::NOT_FOUND,
        10401,
    );

    // Now another user gets it instantly, after proving ownership.
    let u2 = s.user("classic-2").await;
    let fast = s
        .post(
            &u2,
            "/file/fastupload",
            &[
                ("filehash", &hash),
                ("filename", "mine.bin"),
                ("filesize", &size),
            ],
        )
        .await;
    assert_fast_fallback(&fast, true);
    // Proof of ownership: the digests of the challenged ranges, then the file.
    let ch = &fast.1["data"]["Challenge"];
    let digests = crate::support::answer_challenge(&data, &ch["ranges"]).join(",");
    let (status, fast) = s
        .post(
            &u2,
            "/file/fastupload",
            &[
                ("filehash", &hash),
                ("filename", "mine.bin"),
                ("filesize", &size),
                ("challenge", ch["id"].as_str().unwrap()),
                ("digests", &digests),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fast}");
    assert_eq!(
        (&fast["code"], &fast["msg"]),
        (&json!(0), &json!("秒传成功"))
    );
    assert_eq!(fast["data"]["FileName"], "mine.bin");
    assert_eq!(fast["data"]["FileSha1"], hash.as_str());
    assert_eq!(s.files(&u2).await.len(), 1);
    // A wrong size is not the same content.
    let u3 = s.user("classic-3").await;
    assert_fast_fallback(
        &s.post(
            &u3,
            "/file/fastupload",
            &[("filehash", &hash), ("filename", "x"), ("filesize", "1")],
        )
        .await,
        false,
    );
    let (_, init) = s
        .post(
            &u3,
            "/file/mpupload/init",
            &[("filehash", &hash), ("filesize", &size)],
        )
        .await;
    // The seed's multipart init cannot answer a challenge: a session, the bytes must come.
    assert_eq!(init["code"], 0, "{init}");
    assert!(init["data"]["UploadID"].is_string(), "{init}");
    assert!(s.files(&u3).await.is_empty());
    assert_resp_ok_null(
        &s.post(&u3, "/file/mpupload/cancel", &[("filehash", &hash)])
            .await,
    );

    // Cancel drops a session.
    let other = random_bytes(1000);
    let (_, init) = s
        .post(
            &t,
            "/file/mpupload/init",
            &[("filehash", &sha1_hex(&other)), ("filesize", "1000")],
        )
        .await;
    let upid = init["data"]["UploadID"].as_str().unwrap().to_owned();
    assert_resp_ok_null(
        &s.post(&t, "/file/mpupload/cancel", &[("uploadid", &upid)])
            .await,
    );
    assert_error(
        &s.get(&t, &format!("/file/mpupload/status?uploadid={upid}"))
            .await,
        StatusCode::NOT_FOUND,
        10401,
    );
    // Or by content (the original's 2020 edition), every open upload of it.
    let (_, init) = s
        .post(
            &t,
            "/file/mpupload/init",
            &[("filehash", &sha1_hex(&other)), ("filesize", "1000")],
        )
        .await;
    let upid = init["data"]["UploadID"].as_str().unwrap().to_owned();
    assert_resp_ok_null(
        &s.post(
            &t,
            "/file/mpupload/cancel",
            &[("filehash", &sha1_hex(&other))],
        )
        .await,
    );
    assert_error(
        &s.get(&t, &format!("/file/mpupload/status?uploadid={upid}"))
            .await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert_error(
        &s.post(
            &t,
            "/file/mpupload/cancel",
            &[("filehash", &sha1_hex(&other))],
        )
        .await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert_error(
        &s.post(&t, "/file/mpupload/init", &[("filesize", "1")])
            .await,
        StatusCode::BAD_REQUEST,
        10001,
    );
    eventually("staging is removed", || s.staging_files().is_empty()).await;
}

/// `/file/mpupload/init` for content the caller holds already: the original's
/// `{"code": 10006, "msg": "file already exists", "data": null}`, nothing started. Linked at
/// once (trusted instant upload) counts as held.
#[tokio::test]
async fn classic_init_of_content_already_held() {
    let data = random_bytes(300_000);
    let hash = sha1_hex(&data);
    let size = data.len().to_string();
    let init = [("filehash", hash.as_str()), ("filesize", size.as_str())];
    let exists = json!({"code": 10006, "msg": "file already exists", "data": null});
    for mode in ["trusted", "proof"] {
        let s = Server::start_with(&["--instant-upload", mode]);
        let t = s.user("holder").await;
        assert_eq!(
            s.upload(&t, "held.bin", data.clone()).await.0,
            StatusCode::OK
        );
        // Linked instantly in trusted mode: the user holds it from now on.
        let u = s.user("linker").await;
        let (st, linked) = s.post(&u, "/file/mpupload/init", &init).await;
        if mode == "trusted" {
            assert_eq!((st, &linked), (StatusCode::OK, &exists), "{mode}");
            assert_eq!(s.files(&u).await.len(), 1, "{mode}");
        } else {
            assert_eq!(linked["code"], 0, "{mode}: {linked}");
            assert!(linked["data"]["UploadID"].is_string(), "{mode}: {linked}");
        }
        // The holder asks to upload it again.
        let (st, again) = s.post(&t, "/file/mpupload/init", &init).await;
        assert_eq!(st, StatusCode::OK, "{mode}: {again}");
        assert_eq!(again, exists, "{mode}: the holder's init");
        assert!(
            s.get(&t, "/uploads").await.1["data"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{mode}: no session opened"
        );
        assert_eq!(s.files(&t).await.len(), 1, "{mode}");
    }
}

#[tokio::test]
async fn concurrent_parts_completes_and_uploaders() {
    let s = Server::start();
    let t = s.user("racer").await;
    let data = random_bytes((12 * CH + 7) as usize);
    let (_, created) = s.create_upload(&t, "race.bin", &data, Some(CH)).await;
    let id = id_of(&created);
    // Every part at once, twice.
    let sends = (1..=13u64)
        .chain(1..=13)
        .map(|n| s.put_part(&t, &id, n, CH, &data));
    for (status, body) in futures::future::join_all(sends).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Eight completes at once: one file, no errors.
    let completes = futures::future::join_all((0..8).map(|_| s.complete(&t, &id))).await;
    let first = completes[0].1["data"]["id"].clone();
    for (status, body) in &completes {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["id"], first);
    }
    assert_eq!(s.files(&t).await.len(), 1);

    // Two users upload the same new content at the same time: one blob, two files.
    let a = s.user("same-a").await;
    let b = s.user("same-b").await;
    let same = random_bytes((3 * CH) as usize);
    let (_, ca) = s.create_upload(&a, "s.bin", &same, Some(CH)).await;
    let (_, cb) = s.create_upload(&b, "s.bin", &same, Some(CH)).await;
    let (ia, ib) = (id_of(&ca), id_of(&cb));
    let sends = (1..=3u64).flat_map(|n| {
        [
            s.put_part(&a, &ia, n, CH, &same),
            s.put_part(&b, &ib, n, CH, &same),
        ]
    });
    futures::future::join_all(sends).await;
    let (ra, rb) = futures::join!(s.complete(&a, &ia), s.complete(&b, &ib));
    assert_eq!((ra.0, rb.0), (StatusCode::CREATED, StatusCode::CREATED));
    assert_ne!(ra.1["data"]["id"], rb.1["data"]["id"]);
    assert_eq!(s.blob_files().len(), 2, "one blob per content");
    assert!(s.staging_files().is_empty());
}

#[tokio::test]
async fn expired_sessions_are_swept() {
    // Long enough that the part below lands before it expires on a loaded machine.
    let s = Server::start_with(&["--upload-ttl", "3s", "--sweep-interval", "100ms"]);
    let t = s.user("sleepy").await;
    let data = random_bytes((2 * CH) as usize);
    let (_, created) = s.create_upload(&t, "idle.bin", &data, Some(CH)).await;
    let id = id_of(&created);
    assert_eq!(s.put_part(&t, &id, 1, CH, &data).await.0, StatusCode::OK);
    assert_eq!(s.staging_files().len(), 1);
    let path = format!("/uploads/{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, _) = s.get(&t, &path).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    eventually("staged bytes are removed", || s.staging_files().is_empty()).await;
}
