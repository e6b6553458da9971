//! The authorization matrix: every route, as no token, an expired token, a revoked token, a
//! malformed token and another user's token. Nothing is read, changed or revealed.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{random_bytes, sha1_hex, Server};

struct Call {
    method: &'static str,
    path: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    tus: bool,
    /// Acts on something the owner has: another user must get 404. Routes that only list or
    /// create act on the caller's own account and are left out of that column.
    owned: bool,
}

fn call(method: &'static str, path: String, owned: bool) -> Call {
    Call {
        method,
        path,
        body: Vec::new(),
        content_type: None,
        tus: false,
        owned,
    }
}

async fn send(s: &Server, c: &Call, auth: Option<&str>) -> (StatusCode, Option<Value>) {
    let mut req = s
        .client
        .request(c.method.parse().unwrap(), s.url(&c.path))
        .body(c.body.clone());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(ct) = c.content_type {
        req = req.header("content-type", ct);
    }
    if c.tus {
        req = req
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("upload-length", "10");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).ok())
}

#[tokio::test]
async fn every_route_refuses_strangers() {
    let s = Server::start_with(&["--token-ttl", "2s"]);
    let owner = s.user("matrix-owner").await;
    s.user("matrix-other").await;
    // A token that will expire, and one that is revoked.
    let expiring = s.signin("matrix-other").await;
    let revoked = s.signin("matrix-other").await;
    assert_eq!(
        s.api("DELETE", Some(&revoked), "/api/sessions/current", None)
            .await
            .0,
        StatusCode::OK
    );

    // The owner's things: a file, an open REST session with one part, an open tus upload.
    let data = random_bytes(300_000);
    let hash = sha1_hex(&data);
    assert_eq!(
        s.upload(&owner, "secret.bin", data.clone()).await.0,
        StatusCode::OK
    );
    let other_content = random_bytes(600_000);
    let (_, created) = s
        .create_upload(&owner, "open.bin", &other_content, Some(256 * 1024))
        .await;
    let upload = created["data"]["upload_id"].as_str().unwrap().to_owned();
    s.put_part(&owner, &upload, 1, 256 * 1024, &other_content)
        .await;
    let resp = s
        .client
        .post(s.url("/files/"))
        .bearer_auth(&owner)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    let tus_url = resp.headers()["location"].to_str().unwrap().to_owned();
    let tus_path = tus_url.trim_start_matches(&s.base).to_owned();
    let file_id = s.file_id(&owner, &hash).await;
    let (st, link) = s
        .api(
            "POST",
            Some(&owner),
            &format!("/api/files/{file_id}/links"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{link}");
    let link = link["data"]["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&s.base)
        .to_owned();
    let before = state(&s, &owner, &upload, &tus_url).await;
    let expired_owner = owner.clone();

    let init_body =
        serde_json::to_vec(&serde_json::json!({"filename": "x", "size": 300_000, "sha1": hash}))
            .unwrap();
    let rename_body = serde_json::to_vec(&serde_json::json!({"name": "stolen"})).unwrap();
    let mut calls = vec![
        Call { body: init_body, content_type: Some("application/json"), ..call("POST", "/uploads".into(), false) },
        call("GET", "/uploads".into(), false),
        call("GET", format!("/uploads/{upload}"), true),
        Call { body: other_content[..256 * 1024].to_vec(), ..call("PUT", format!("/uploads/{upload}/parts/1"), true) },
        call("POST", format!("/uploads/{upload}/complete"), true),
        call("DELETE", format!("/uploads/{upload}"), true),
        call("GET", "/user/info".into(), false),
        call("POST", "/user/info".into(), false),
        call("POST", "/user/signout".into(), false),
        Call { body: b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n--B--\r\n".to_vec(),
               content_type: Some("multipart/form-data; boundary=B"), ..call("POST", "/file/upload".into(), false) },
        call("GET", format!("/file/meta?filehash={hash}&fileid={file_id}"), true),
        call("GET", "/file/query".into(), false),
        call("GET", format!("/file/download?filehash={hash}"), true),
        call("POST", format!("/file/download?filehash={hash}"), true),
        call("GET", format!("/file/download/range?filehash={hash}"), true),
        call("HEAD", format!("/file/download?filehash={hash}"), true),
        call("POST", format!("/file/update?op=0&filehash={hash}&filename=stolen"), true),
        call("POST", format!("/file/delete?filehash={hash}"), true),
        call("GET", format!("/file/delete?filehash={hash}"), true),
        call("POST", format!("/file/downloadurl?filehash={hash}"), true),
        call("POST", format!("/file/fastupload?filehash={hash}&filename=mine&filesize=300000"), false),
        call("POST", format!("/file/mpupload/init?filehash={}&filesize=600000", sha1_hex(&other_content)), false),
        Call { body: vec![0; 10], ..call("POST", format!("/file/mpupload/uppart?uploadid={upload}&index=2"), true) },
        call("GET", format!("/file/mpupload/status?uploadid={upload}"), true),
        call("POST", format!("/file/mpupload/complete?uploadid={upload}"), true),
        call("POST", format!("/file/mpupload/cancel?uploadid={upload}"), true),
        Call { tus: true, ..call("POST", "/files/".into(), false) },
        Call { tus: true, ..call("HEAD", tus_path.clone(), true) },
        Call { tus: true, body: vec![1; 10], content_type: Some("application/offset+octet-stream"), ..call("PATCH", tus_path.clone(), true) },
        Call { tus: true, ..call("DELETE", tus_path.clone(), true) },
        call("GET", "/api/account".into(), false),
        call("DELETE", "/api/sessions/current".into(), false),
        call("GET", "/api/files".into(), false),
        Call { body: b"stranger's".to_vec(), ..call("POST", "/api/files?name=mine.bin".into(), false) },
        call("GET", format!("/api/files/{file_id}"), true),
        Call { body: rename_body, content_type: Some("application/json"), ..call("PATCH", format!("/api/files/{file_id}"), true) },
        call("DELETE", format!("/api/files/{file_id}"), true),
        call("GET", format!("/api/files/{file_id}/content"), true),
        call("HEAD", format!("/api/files/{file_id}/content"), true),
        call("POST", format!("/api/files/{file_id}/links"), true),
    ];

    // The expiring token must have expired: wait for the server to say so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while s.api("GET", Some(&expiring), "/api/account", None).await.0 != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "token never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Every token issued so far has expired with it; the owner and the other user sign in again.
    let owner = s.signin("matrix-owner").await;
    // Tokens live 2 s here: the other user's is renewed whenever it is half that old, so a slow
    // run never mistakes its expiry for a refusal.
    let mut other = s.signin("matrix-other").await;
    let mut other_at = std::time::Instant::now();
    let bearer = |t: &str| format!("Bearer {t}");
    let strangers: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("expired token", Some(bearer(&expiring))),
        ("revoked token", Some(bearer(&revoked))),
        ("malformed token", Some("Bearer x.y.z".into())),
        ("the owner's expired token", Some(bearer(&expired_owner))),
        ("another scheme", Some(format!("Basic {owner}"))),
    ];
    for c in &calls {
        for (who, auth) in &strangers {
            let (status, body) = send(&s, c, auth.as_deref()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {} as {who}",
                c.method,
                c.path
            );
            if c.method != "HEAD" {
                assert_eq!(
                    body.as_ref().map(|b| b["code"].clone()),
                    Some(Value::from(10101)),
                    "{} {}",
                    c.method,
                    c.path
                );
            }
        }
        if c.owned {
            if other_at.elapsed() > std::time::Duration::from_secs(1) {
                other = s.signin("matrix-other").await;
                other_at = std::time::Instant::now();
            }
            let (status, body) = send(&s, c, Some(&bearer(&other))).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{} {} as another user: {body:?}",
                c.method,
                c.path
            );
        }
    }
    // A signed link works for anyone, but only for its own file: not with another id.
    assert_eq!(
        s.client.get(s.url(&link)).send().await.unwrap().status(),
        StatusCode::OK
    );
    let other = s.signin("matrix-other").await;
    let other_file = {
        let theirs = random_bytes(10);
        let (st, f) = s.upload(&other, "theirs.bin", theirs.clone()).await;
        assert_eq!(st, StatusCode::OK, "{f}");
        s.file_id(&other, &sha1_hex(&theirs)).await
    };
    let swapped = link.replace(&file_id, &other_file);
    assert_eq!(
        s.client.get(s.url(&swapped)).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Lists show strangers nothing of the owner's.
    let (_, list) = s.get(&other, "/uploads").await;
    assert!(list["data"].as_array().unwrap().is_empty());
    assert!(s
        .files(&other)
        .await
        .iter()
        .all(|f| f["sha1"] != hash.as_str()));
    let (_, files) = s.get(&other, "/file/query").await;
    assert!(files
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["FileHash"] != hash.as_str()));

    calls.clear();
    assert_eq!(
        state(&s, &owner, &upload, &tus_url).await,
        before,
        "nothing of the owner's changed"
    );
}

/// What the owner has: files, the REST session's parts, the tus upload's offset.
async fn state(s: &Server, owner: &str, upload: &str, tus_url: &str) -> (Value, Value, String) {
    let files = s.files(owner).await;
    let (_, session) = s.get(owner, &format!("/uploads/{upload}")).await;
    let head = s
        .client
        .head(tus_url)
        .bearer_auth(owner)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let offset = head
        .headers()
        .get("upload-offset")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        Value::Array(files),
        session["data"]["received"].clone(),
        offset,
    )
}
