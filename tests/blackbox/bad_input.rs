//! Every kind of bad input the foundation names: a clear 4xx envelope with a stable code, and
//! nothing stored changes.

use std::io::Write;
use std::net::TcpStream;

use reqwest::StatusCode;

use crate::support::{assert_error, eventually, json, random_bytes, sha1_hex, Server};

/// Sends a multipart upload whose part header carries `raw_name` byte for byte.
async fn upload_raw_name(
    s: &Server,
    token: &str,
    raw_name: &[u8],
) -> (StatusCode, serde_json::Value) {
    let mut body = Vec::new();
    body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"");
    body.extend_from_slice(raw_name);
    body.extend_from_slice(
        b"\"\r\nContent-Type: application/octet-stream\r\n\r\nsome content\r\n--XyZ--\r\n",
    );
    let resp = s
        .client
        .post(s.url("/file/upload"))
        .bearer_auth(token)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    json(resp).await
}

#[tokio::test]
async fn bad_file_names_on_upload() {
    let s = Server::start();
    let token = s.user("names").await;
    assert_eq!(
        s.upload(&token, "keep.txt", b"keep".to_vec()).await.0,
        StatusCode::OK
    );
    let before = s.snapshot(&token).await;

    let long = "n".repeat(256);
    let long_cjk = "文".repeat(86); // 258 bytes
    let cases: Vec<(&[u8], u64)> = vec![
        (b"a/b.txt", 10002),
        (b"../../etc/passwd", 10002),
        (b"..", 10002),
        (b".", 10002),
        (b"dir\\file.txt", 10002),
        (b"tab\there", 10002),
        (long.as_bytes(), 10002),
        (long_cjk.as_bytes(), 10002),
        (b"", 10002),
        // Bytes no multipart header may hold: refused by the multipart parser itself.
        (b"nul\0byte", 10001),
        (b"bell\x07", 10001),
        (b"new\nline", 10001),
    ];
    for (name, code) in cases {
        let got = upload_raw_name(&s, &token, name).await;
        assert_error(&got, StatusCode::BAD_REQUEST, code);
    }
    assert_eq!(s.snapshot(&token).await, before, "nothing stored changed");
    eventually("no temp files are left", || s.temp_files().is_empty()).await;

    // A name of exactly 255 bytes is fine.
    let ok = "文".repeat(85);
    assert_eq!(s.upload(&token, &ok, b"x".to_vec()).await.0, StatusCode::OK);
}

/// On both renames: the classic `/file/update` and `PATCH /api/files/{id}`.
#[tokio::test]
async fn bad_file_names_on_rename() {
    let s = Server::start();
    let token = s.user("renamer").await;
    let data = b"rename me".to_vec();
    let hash = sha1_hex(&data);
    assert_eq!(
        s.upload(&token, "original.txt", data).await.0,
        StatusCode::OK
    );
    let id = s.file_id(&token, &hash).await;
    let before = s.snapshot(&token).await;
    let long = "n".repeat(256);
    for name in [
        "a/b",
        "..",
        ".",
        "a\\b",
        "nul\0byte",
        "ctl\u{1}",
        "line\nbreak",
        "del\u{7f}",
        &long,
    ] {
        let got = s
            .post(
                &token,
                "/file/update",
                &[("op", "0"), ("filehash", &hash), ("filename", name)],
            )
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, 10002);
        let got = s
            .api(
                "PATCH",
                Some(&token),
                &format!("/api/files/{id}"),
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, 10002);
    }
    assert_eq!(s.snapshot(&token).await, before, "nothing stored changed");
}

/// File ids in ChunkVault's own API: anything but 20 lower-case hex digits is a 400; a
/// well-formed id of no file is a 404.
#[tokio::test]
async fn bad_file_ids() {
    let s = Server::start();
    let token = s.user("ider").await;
    let data = b"id me".to_vec();
    assert_eq!(
        s.upload(&token, "i.txt", data.clone()).await.0,
        StatusCode::OK
    );
    let id = s.file_id(&token, &sha1_hex(&data)).await;
    let before = s.snapshot(&token).await;
    let bad = [
        "abc".to_owned(),
        id[..19].to_owned(),
        format!("{id}0"),
        id.to_uppercase(),
        "g".repeat(20),
        "..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        format!("{}%00", &id[..17]),
    ];
    let unknown = "0".repeat(20);
    for (ids, status, code) in [
        (bad.to_vec(), StatusCode::BAD_REQUEST, 10001),
        (vec![unknown], StatusCode::NOT_FOUND, 10401),
    ] {
        for i in ids {
            for (method, path, body) in [
                ("GET", format!("/api/files/{i}"), None),
                (
                    "PATCH",
                    format!("/api/files/{i}"),
                    Some(serde_json::json!({"name": "x"})),
                ),
                ("DELETE", format!("/api/files/{i}"), None),
                ("GET", format!("/api/files/{i}/content"), None),
                ("POST", format!("/api/files/{i}/links"), None),
            ] {
                let got = s.api(method, Some(&token), &path, body).await;
                assert_eq!(got.0, status, "{method} {path}: {}", got.1);
                assert_error(&got, status, code);
            }
        }
    }
    assert_eq!(s.snapshot(&token).await, before);
}

#[tokio::test]
async fn bad_file_hashes() {
    let s = Server::start();
    let token = s.user("hasher").await;
    let data = b"hash me".to_vec();
    let hash = sha1_hex(&data);
    assert_eq!(s.upload(&token, "h.txt", data).await.0, StatusCode::OK);
    let before = s.snapshot(&token).await;
    let bad = [
        "",
        "abc",
        &hash[..39],
        &format!("{hash}0"),
        &"g".repeat(40),
        &format!("{}%00", &hash[..37]),
        "../../../../etc/passwd0000000000000000000",
    ];
    for h in bad {
        let enc: String = h.bytes().map(|b| format!("%{b:02X}")).collect();
        for (method, path) in [
            ("GET", format!("/file/meta?filehash={enc}")),
            ("GET", format!("/file/download?filehash={enc}")),
            (
                "POST",
                format!("/file/update?op=0&filename=x&filehash={enc}"),
            ),
            ("POST", format!("/file/delete?filehash={enc}")),
            ("POST", format!("/file/downloadurl?filehash={enc}")),
        ] {
            let resp = s
                .client
                .request(method.parse().unwrap(), s.url(&path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let code = if h.is_empty() { 10001 } else { 10003 };
            assert_error(&json(resp).await, StatusCode::BAD_REQUEST, code);
        }
    }
    assert_eq!(s.snapshot(&token).await, before);
}

#[tokio::test]
async fn another_users_file_is_not_found() {
    let s = Server::start();
    let owner = s.user("owner").await;
    let thief = s.user("thief").await;
    let data = random_bytes(1000);
    let hash = sha1_hex(&data);
    assert_eq!(
        s.upload(&owner, "secret.bin", data.clone()).await.0,
        StatusCode::OK
    );
    let before = s.snapshot(&owner).await;
    let id = before.0[0]["id"].as_str().unwrap().to_owned();
    // By the file's id in ChunkVault's own API.
    for (method, path, body) in [
        ("GET", format!("/api/files/{id}"), None),
        (
            "PATCH",
            format!("/api/files/{id}"),
            Some(serde_json::json!({"name": "stolen"})),
        ),
        ("DELETE", format!("/api/files/{id}"), None),
        ("GET", format!("/api/files/{id}/content"), None),
        ("POST", format!("/api/files/{id}/links"), None),
    ] {
        let got = s.api(method, Some(&thief), &path, body).await;
        assert_error(&got, StatusCode::NOT_FOUND, 10401);
    }
    let resp = s
        .req("HEAD", &thief, &format!("/api/files/{id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // By its hash in the classic routes.
    for (method, path) in [
        ("GET", format!("/file/meta?filehash={hash}")),
        ("GET", format!("/file/download?filehash={hash}")),
        (
            "POST",
            format!("/file/update?op=0&filename=stolen&filehash={hash}"),
        ),
        ("POST", format!("/file/delete?filehash={hash}")),
        ("POST", format!("/file/downloadurl?filehash={hash}")),
    ] {
        let resp = s
            .client
            .request(method.parse().unwrap(), s.url(&path))
            .bearer_auth(&thief)
            .send()
            .await
            .unwrap();
        assert_error(&json(resp).await, StatusCode::NOT_FOUND, 10401);
    }
    // The owner's file id does not help either.
    assert_error(
        &s.get(&thief, &format!("/file/meta?filehash={hash}&fileid={id}"))
            .await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert_eq!(
        s.snapshot(&owner).await,
        before,
        "nothing changed for the owner"
    );
    let resp = s.download(&owner, &hash).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn missing_parameters_and_bodies() {
    let s = Server::start();
    let token = s.user("params").await;
    for (path, missing) in [
        ("/file/meta", "filehash"),
        ("/file/delete", "filehash"),
        ("/file/update", "op"),
        ("/file/downloadurl", "filehash"),
        ("/file/fastupload", "filehash"),
        ("/file/mpupload/init", "filehash"),
        ("/file/mpupload/complete", "uploadid"),
        ("/file/mpupload/cancel", "uploadid"),
    ] {
        let got = s.post(&token, path, &[]).await;
        assert_error(&got, StatusCode::BAD_REQUEST, 10001);
        assert!(
            got.1["msg"].as_str().unwrap().contains(missing),
            "{path}: {}",
            got.1
        );
    }
    // Upload without a multipart body, or without the file field.
    let resp = s
        .client
        .post(s.url("/file/upload"))
        .bearer_auth(&token)
        .body("plain")
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, 11501);
    let form = reqwest::multipart::Form::new().text("other", "x");
    let resp = s
        .client
        .post(s.url("/file/upload"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let got = json(resp).await;
    assert_error(&got, StatusCode::BAD_REQUEST, 10001);
    assert!(got.1["msg"].as_str().unwrap().contains("file"));
    // Oversized urlencoded form.
    let big = "x".repeat(100_000);
    let got = s.post(&token, "/file/query", &[("pad", &big)]).await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, 11301);
    // Unknown routes and wrong methods are JSON too.
    assert_error(
        &s.get(&token, "/file/nothing").await,
        StatusCode::NOT_FOUND,
        10402,
    );
    let resp = s
        .client
        .put(s.url("/file/delete"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::METHOD_NOT_ALLOWED, 10501);
    // ChunkVault's own API takes JSON bodies: anything else is a 400 saying what it expects.
    for (path, expected) in [("/api/account", "username"), ("/api/sessions", "username")] {
        for body in ["username=a&password=b", "", "{\"username\": 1}", "[]"] {
            let resp = s.client.post(s.url(path)).body(body).send().await.unwrap();
            let got = json(resp).await;
            assert_error(&got, StatusCode::BAD_REQUEST, 10001);
            assert!(
                got.1["msg"].as_str().unwrap().contains(expected),
                "{path} {body:?}: {}",
                got.1
            );
        }
    }
    assert_error(
        &s.api("GET", Some(&token), "/api/nothing", None).await,
        StatusCode::NOT_FOUND,
        10402,
    );
    assert_error(
        &s.api("PUT", Some(&token), "/api/files", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        10501,
    );
}

#[tokio::test]
async fn too_large_is_413_and_leaves_nothing() {
    let s = Server::start_with(&["--max-file-size", "1MiB"]);
    let token = s.user("big").await;
    // Exactly the limit is fine.
    assert_eq!(
        s.upload(&token, "small.bin", random_bytes(1 << 20)).await.0,
        StatusCode::OK
    );
    let before = s.snapshot(&token).await;
    assert_eq!(before.0.as_array().unwrap().len(), 1);
    let got = s
        .upload(&token, "big.bin", random_bytes((1 << 20) + 1))
        .await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, 11301);
    eventually("the temp file is removed", || s.temp_files().is_empty()).await;
    assert_eq!(s.snapshot(&token).await, before, "nothing recorded");
}

/// A client that goes away mid-upload leaves no temp file and no record.
#[tokio::test]
async fn disconnect_mid_upload_leaves_nothing() {
    let s = Server::start();
    let token = s.user("leaver").await;
    let before = s.snapshot(&token).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut sock = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /file/upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n\
         --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n\r\n",
        10 << 20
    );
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(&random_bytes(2 << 20)).unwrap();
    sock.flush().unwrap();
    // The upload is under way: its temp file exists.
    eventually("the upload's temp file appears", || {
        !s.temp_files().is_empty()
    })
    .await;
    drop(sock);
    eventually("the temp file is removed after the disconnect", || {
        s.temp_files().is_empty()
    })
    .await;
    assert_eq!(s.snapshot(&token).await, before, "nothing recorded");
    assert!(s.blob_files().is_empty());
}
