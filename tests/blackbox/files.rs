use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{assert_error, json, random_bytes, sha1_hex, Server};

#[tokio::test]
async fn upload_meta_query_download() {
    let s = Server::start();
    let token = s.user("erin").await;
    let data = random_bytes(300_000);
    let hash = sha1_hex(&data);
    let (status, body) = s.upload(&token, "季度报告 (最终).pdf", data.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let meta = &body["data"];
    assert_eq!(meta["FileSha1"], hash.as_str());
    assert_eq!(meta["FileName"], "季度报告 (最终).pdf");
    assert_eq!(meta["FileSize"], 300_000);
    for field in ["UploadAt", "UpdatedAt", "FileID"] {
        assert!(meta[field].is_string(), "{field} in {meta}");
    }

    // The hash may come in upper case.
    let (status, got) = s
        .get(
            &token,
            &format!("/file/meta?filehash={}", hash.to_uppercase()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&got["data"], meta);

    let resp = s.download(&token, &hash).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["content-length"], "300000");
    assert_eq!(h["etag"], format!("\"{hash}\"").as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    let cd = h["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment; "), "{cd}");
    assert!(
        cd.contains(
            "filename*=UTF-8''%E5%AD%A3%E5%BA%A6%E6%8A%A5%E5%91%8A%20%28%E6%9C%80%E7%BB%88%29.pdf"
        ),
        "{cd}"
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());

    // HEAD: the same headers, no body.
    let resp = s
        .client
        .head(s.url(&format!("/file/download?filehash={hash}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], "300000");
    assert!(resp.bytes().await.unwrap().is_empty());
}

async fn ranged(s: &Server, token: &str, hash: &str, range: &str) -> reqwest::Response {
    s.client
        .get(s.url(&format!("/file/download?filehash={hash}")))
        .bearer_auth(token)
        .header("range", range)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ranges_and_conditional_requests() {
    let s = Server::start();
    let token = s.user("frank").await;
    let data = random_bytes(10_000);
    let hash = sha1_hex(&data);
    s.upload(&token, "r.bin", data.clone()).await;

    for (range, start, end) in [
        ("bytes=0-99", 0, 100),
        ("bytes=9990-", 9990, 10_000),
        ("bytes=-10", 9990, 10_000),
        ("bytes=5000-99999", 5000, 10_000),
    ] {
        let resp = ranged(&s, &token, &hash, range).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {start}-{}/10000", end - 1).as_str()
        );
        assert_eq!(
            resp.headers()["content-length"],
            (end - start).to_string().as_str()
        );
        assert_eq!(
            resp.bytes().await.unwrap().as_ref(),
            &data[start..end],
            "{range}"
        );
    }
    // Unsatisfiable: 416 with the size.
    for range in ["bytes=10000-", "bytes=20000-30000", "bytes=-0"] {
        let resp = ranged(&s, &token, &hash, range).await;
        assert_eq!(
            resp.headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap()),
            Some("bytes */10000")
        );
        assert_error(&json(resp).await, StatusCode::RANGE_NOT_SATISFIABLE, 11601);
    }
    // Several ranges or nonsense: the whole file.
    for range in ["bytes=0-1,5-6", "lines=1-2", "bytes=x-y"] {
        let resp = ranged(&s, &token, &hash, range).await;
        assert_eq!(resp.status(), StatusCode::OK, "{range}");
        assert_eq!(resp.bytes().await.unwrap().len(), 10_000);
    }
    // If-Range with a stale validator: the whole file.
    let resp = s
        .client
        .get(s.url(&format!("/file/download?filehash={hash}")))
        .bearer_auth(&token)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let etag = format!("\"{hash}\"");
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let resp = s
            .client
            .get(s.url(&format!("/file/download?filehash={hash}")))
            .bearer_auth(&token)
            .header("if-none-match", &inm)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{inm}");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let resp = s
        .client
        .get(s.url(&format!("/file/download?filehash={hash}")))
        .bearer_auth(&token)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn query_is_newest_first_and_paginated() {
    let s = Server::start();
    let token = s.user("grace").await;
    for i in 0..25 {
        let (status, _) = s
            .upload(
                &token,
                &format!("f{i:02}.txt"),
                format!("content {i}").into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["FileName"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = s.get(&token, "/file/query").await;
    let first = names(&page);
    assert_eq!(first.len(), 20, "default limit");
    assert_eq!(first[0], "f24.txt");
    let (_, page) = s
        .post(&token, "/file/query", &[("limit", "10"), ("offset", "20")])
        .await;
    assert_eq!(
        names(&page),
        ["f04.txt", "f03.txt", "f02.txt", "f01.txt", "f00.txt"]
    );
    let (_, page) = s.get(&token, "/file/query?limit=100000").await;
    assert_eq!(names(&page).len(), 25, "limit is capped, not refused");
    for bad in ["limit=abc", "limit=-1", "offset=x", "limit=0"] {
        assert_error(
            &s.get(&token, &format!("/file/query?{bad}")).await,
            StatusCode::BAD_REQUEST,
            10001,
        );
    }
}

#[tokio::test]
async fn rename_delete_and_signed_urls() {
    let s = Server::start();
    let token = s.user("heidi").await;
    let data = random_bytes(5000);
    let hash = sha1_hex(&data);
    s.upload(&token, "old.txt", data.clone()).await;

    let (status, body) = s
        .post(
            &token,
            "/file/update",
            &[
                ("op", "0"),
                ("filehash", &hash),
                ("filename", "新的 名字.txt"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["FileName"], "新的 名字.txt");
    let (_, meta) = s.get(&token, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(meta["data"]["FileName"], "新的 名字.txt");
    assert_error(
        &s.post(
            &token,
            "/file/update",
            &[("op", "1"), ("filehash", &hash), ("filename", "x")],
        )
        .await,
        StatusCode::BAD_REQUEST,
        10001,
    );
    assert_error(
        &s.post(&token, "/file/update", &[("op", "0"), ("filehash", &hash)])
            .await,
        StatusCode::BAD_REQUEST,
        10001,
    );

    // A signed URL downloads without a token, with the user's name for the file.
    let (status, body) = s
        .post(&token, "/file/downloadurl", &[("filehash", &hash)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = body["data"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&s.base), "{url}");
    let resp = s.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("%E6%96%B0%E7%9A%84%20"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
    let resp = s
        .client
        .get(&url)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);

    // Tampering with any part of it: 403.
    let (path, query) = url.split_once('?').unwrap();
    let parts: Vec<(String, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.into(), v.into())
        })
        .collect();
    let get = |k: &str| parts.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let flip = |v: &str| {
        let mut c: Vec<char> = v.chars().collect();
        c[0] = if c[0] == '0' { '1' } else { '0' };
        c.into_iter().collect::<String>()
    };
    let (id, expires, sig) = (get("id"), get("expires"), get("sig"));
    let past = (expires.parse::<i64>().unwrap() - 7200).to_string();
    for (i, e, g) in [
        (flip(&id), expires.clone(), sig.clone()),
        (
            id.clone(),
            (expires.parse::<i64>().unwrap() + 1000).to_string(),
            sig.clone(),
        ),
        (id.clone(), past, sig.clone()),
        (id.clone(), expires.clone(), flip(&sig)),
        (id.clone(), expires.clone(), "zz".into()),
        (id.clone(), "soon".into(), sig.clone()),
        ("../../etc".into(), expires.clone(), sig.clone()),
    ] {
        let resp = s
            .client
            .get(format!("{path}?id={i}&expires={e}&sig={g}"))
            .send()
            .await
            .unwrap();
        assert_error(&json(resp).await, StatusCode::FORBIDDEN, 10301);
    }

    // Delete: gone from meta, query and download; the signed URL dies with it.
    let (status, _) = s.post(&token, "/file/delete", &[("filehash", &hash)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &s.get(&token, &format!("/file/meta?filehash={hash}")).await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert_error(
        &s.post(&token, "/file/delete", &[("filehash", &hash)]).await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert_eq!(
        s.download(&token, &hash).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.client.get(&url).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert!(s.blob_files().is_empty());
}

#[tokio::test]
async fn same_content_under_two_names_and_repeat_uploads() {
    let s = Server::start();
    let token = s.user("ivan").await;
    let data = b"same bytes".to_vec();
    let hash = sha1_hex(&data);
    let (_, a) = s.upload(&token, "a.txt", data.clone()).await;
    let (_, again) = s.upload(&token, "a.txt", data.clone()).await;
    assert_eq!(
        a["data"]["FileID"], again["data"]["FileID"],
        "re-uploading is idempotent"
    );
    let (_, b) = s.upload(&token, "b.txt", data.clone()).await;
    assert_ne!(a["data"]["FileID"], b["data"]["FileID"]);
    let (_, list) = s.get(&token, "/file/query").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(s.blob_files().len(), 1);
    // fileid picks one of them.
    let a_id = a["data"]["FileID"].as_str().unwrap();
    let (_, meta) = s
        .get(&token, &format!("/file/meta?filehash={hash}&fileid={a_id}"))
        .await;
    assert_eq!(meta["data"]["FileName"], "a.txt");
    let (_, meta) = s.get(&token, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(meta["data"]["FileName"], "b.txt", "newest without fileid");
    // Renaming one onto the other's name: conflict, nothing changed.
    assert_error(
        &s.post(
            &token,
            "/file/update",
            &[
                ("op", "0"),
                ("filehash", &hash),
                ("fileid", a_id),
                ("filename", "b.txt"),
            ],
        )
        .await,
        StatusCode::CONFLICT,
        10902,
    );
    // Empty files are files.
    let (status, empty) = s.upload(&token, "empty", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        empty["data"]["FileSha1"],
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
    let resp = s
        .download(&token, "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
}
