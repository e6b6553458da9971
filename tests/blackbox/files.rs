use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    assert_error, assert_go_time, content_type, json, random_bytes, sha1_hex, Server,
};

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// The classic routes answer as filestore-server did: `FileMeta`, bare JSON sent as text, the
/// bytes with the user's name for the file; ChunkVault's own API shows the same file.
#[tokio::test]
async fn upload_meta_query_download() {
    let s = Server::start();
    let token = s.user("erin").await;
    let data = random_bytes(300_000);
    let hash = sha1_hex(&data);
    let (status, body) = s.upload(&token, "季度报告 (最终).pdf", data.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["code"], &body["msg"]), (&json!(0), &json!("OK")));
    let meta = &body["data"];
    assert_eq!(
        keys(meta),
        ["FileName", "FileSha1", "FileSize", "Location", "UploadAt"]
    );
    assert_eq!(meta["FileSha1"], hash.as_str());
    assert_eq!(meta["FileName"], "季度报告 (最终).pdf");
    assert_eq!(meta["FileSize"], 300_000);
    assert_eq!(meta["Location"], "local");
    assert_go_time(&meta["UploadAt"]);

    // /file/meta: the bare FileMeta, sent as text unless JSON is asked for. The hash may come
    // in upper case.
    let path = format!("/file/meta?filehash={}", hash.to_uppercase());
    let resp = s.req("GET", &token, &path).send().await.unwrap();
    assert_eq!(
        content_type(&resp).as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let (status, got) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&got, meta);
    let resp = s
        .req("GET", &token, &path)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(content_type(&resp).as_deref(), Some("application/json"));
    assert_eq!(&json(resp).await.1, meta);

    // /file/query: a bare array of the original's UserFile.
    let (status, list) = s.get(&token, "/file/query").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(
        keys(&rows[0]),
        [
            "FileHash",
            "FileName",
            "FileSize",
            "LastUpdated",
            "UploadAt",
            "UserName"
        ]
    );
    assert_eq!(rows[0]["UserName"], "erin");
    assert_eq!(rows[0]["FileHash"], hash.as_str());
    assert_eq!(rows[0]["FileName"], "季度报告 (最终).pdf");
    assert_eq!(rows[0]["FileSize"], 300_000);
    assert_eq!(rows[0]["UploadAt"], meta["UploadAt"]);
    assert_go_time(&rows[0]["LastUpdated"]);

    // The same file in ChunkVault's own API.
    let files = s.files(&token).await;
    assert_eq!(files.len(), 1);
    let view = &files[0];
    assert_eq!(
        keys(view),
        ["id", "name", "sha1", "size", "updated_at", "uploaded_at"]
    );
    assert_eq!(view["sha1"], hash.as_str());
    assert_eq!(view["name"], "季度报告 (最终).pdf");
    assert_eq!(view["size"], 300_000);
    assert!(view["uploaded_at"].as_str().unwrap().ends_with('Z'));
    let id = view["id"].as_str().unwrap();
    let (status, shown) = s
        .api("GET", Some(&token), &format!("/api/files/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&shown["data"], view);

    let by_hash = s.download(&token, &hash).await;
    let by_id = s.content(&token, id).await;
    for resp in [by_hash, by_id] {
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
    }

    // HEAD: the same headers, no body.
    for path in [
        format!("/file/download?filehash={hash}"),
        format!("/api/files/{id}/content"),
    ] {
        let resp = s.req("HEAD", &token, &path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["content-length"], "300000");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
}

async fn ranged(s: &Server, token: &str, path: &str, range: &str) -> reqwest::Response {
    s.req("GET", token, path)
        .header("range", range)
        .send()
        .await
        .unwrap()
}

/// Ranges, `If-Range` and `If-None-Match`, on the classic download and on the API's content.
#[tokio::test]
async fn ranges_and_conditional_requests() {
    let s = Server::start();
    let token = s.user("frank").await;
    let data = random_bytes(10_000);
    let hash = sha1_hex(&data);
    assert_eq!(
        s.upload(&token, "r.bin", data.clone()).await.0,
        StatusCode::OK
    );
    let id = s.file_id(&token, &hash).await;
    for path in [
        format!("/file/download?filehash={hash}"),
        format!("/api/files/{id}/content"),
    ] {
        ranges_and_conditions_of(&s, &token, &path, &hash, &data).await;
    }
}

async fn ranges_and_conditions_of(s: &Server, token: &str, path: &str, hash: &str, data: &[u8]) {
    for (range, start, end) in [
        ("bytes=0-99", 0, 100),
        ("bytes=9990-", 9990, 10_000),
        ("bytes=-10", 9990, 10_000),
        ("bytes=5000-99999", 5000, 10_000),
    ] {
        let resp = ranged(s, token, path, range).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{path} {range}");
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
            "{path} {range}"
        );
    }
    // Unsatisfiable: 416 with the size.
    for range in ["bytes=10000-", "bytes=20000-30000", "bytes=-0"] {
        let resp = ranged(s, token, path, range).await;
        assert_eq!(
            resp.headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap()),
            Some("bytes */10000"),
            "{path} {range}"
        );
        assert_error(&json(resp).await, StatusCode::RANGE_NOT_SATISFIABLE, 11601);
    }
    // Several ranges or nonsense: the whole file.
    for range in ["bytes=0-1,5-6", "lines=1-2", "bytes=x-y"] {
        let resp = ranged(s, token, path, range).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path} {range}");
        assert_eq!(resp.bytes().await.unwrap().len(), 10_000);
    }
    // If-Range with a stale validator: the whole file.
    let resp = s
        .req("GET", token, path)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");

    let etag = format!("\"{hash}\"");
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let resp = s
            .req("GET", token, path)
            .header("if-none-match", &inm)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{path} {inm}");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let resp = s
        .req("GET", token, path)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
}

/// `/file/query` (default 20) and `GET /api/files` (default 50): newest first, paginated,
/// capped at 1,000, bad numbers refused.
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
    let names = |list: &Value, field: &str| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .iter()
            .map(|f| f[field].as_str().unwrap().to_owned())
            .collect()
    };
    let last_five = ["f04.txt", "f03.txt", "f02.txt", "f01.txt", "f00.txt"];

    // Classic: a bare array.
    let (_, page) = s.get(&token, "/file/query").await;
    let first = names(&page, "FileName");
    assert_eq!(first.len(), 20, "default limit");
    assert_eq!(first[0], "f24.txt");
    let (_, page) = s
        .post(&token, "/file/query", &[("limit", "10"), ("offset", "20")])
        .await;
    assert_eq!(names(&page, "FileName"), last_five);
    let (_, page) = s.get(&token, "/file/query?limit=100000").await;
    assert_eq!(
        names(&page, "FileName").len(),
        25,
        "limit is capped, not refused"
    );
    let (_, page) = s.get(&token, "/file/query?offset=25").await;
    assert_eq!(page, json!([]));

    // ChunkVault's own: the envelope.
    let list = |q: &'static str| {
        let s = &s;
        let token = &token;
        async move {
            s.api("GET", Some(token), &format!("/api/files{q}"), None)
                .await
        }
    };
    let (status, page) = list("").await;
    assert_eq!(status, StatusCode::OK);
    let all = names(&page["data"], "name");
    assert_eq!(all.len(), 25, "default limit 50");
    assert_eq!(all[0], "f24.txt");
    assert_eq!(all[..20], first[..], "the same order in both");
    let (_, page) = list("?limit=10&offset=20").await;
    assert_eq!(names(&page["data"], "name"), last_five);
    let (_, page) = list("?limit=100000").await;
    assert_eq!(
        names(&page["data"], "name").len(),
        25,
        "capped, not refused"
    );
    let (_, page) = list("?offset=25").await;
    assert_eq!(page["data"], json!([]));

    // Sorted and searched (the page's column headers and search box).
    let (_, page) = list("?sort=name&limit=3").await;
    assert_eq!(
        names(&page["data"], "name"),
        ["f00.txt", "f01.txt", "f02.txt"]
    );
    let (_, page) = list("?sort=name-desc&limit=2&offset=1").await;
    assert_eq!(names(&page["data"], "name"), ["f23.txt", "f22.txt"]);
    let (_, page) = list("?sort=oldest&limit=2").await;
    assert_eq!(names(&page["data"], "name"), ["f00.txt", "f01.txt"]);
    // "content 1x" is 10 bytes, "content 1" 9: the largest are the two-digit ones.
    let (_, page) = list("?sort=smallest&limit=10").await;
    let mut small = names(&page["data"], "name");
    small.sort();
    assert_eq!(
        small,
        (0..10).map(|i| format!("f{i:02}.txt")).collect::<Vec<_>>()
    );
    let (_, page) = list("?q=F1&sort=name").await;
    assert_eq!(
        names(&page["data"], "name"),
        (10..20).map(|i| format!("f{i:02}.txt")).collect::<Vec<_>>()
    );
    let (_, page) = list("?q=%25").await;
    assert_eq!(page["data"], json!([]), "% is a character, not a wildcard");
    let (_, page) = list("?q=+&sort=largest&limit=1").await;
    assert_eq!(
        names(&page["data"], "name").len(),
        1,
        "a blank search is no search"
    );
    let long = format!("?q={}", "x".repeat(1025));
    for bad in ["?sort=size", "?sort=", "?sort=NAME", long.as_str()] {
        let (status, body) = s
            .api("GET", Some(&token), &format!("/api/files{bad}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], 10001, "{bad}: {body}");
    }

    // Keyset pages: a full page links to the next (`Link: <…>; rel="next"`); following the
    // links gives the whole listing once, in every order and with a search; the last page, not
    // full, links nowhere.
    let follow = |first: String| {
        let s = &s;
        let token = &token;
        async move {
            let mut names = Vec::new();
            let mut next = Some(first);
            let mut pages = 0;
            while let Some(path) = next.take() {
                let resp = s
                    .client
                    .get(s.url(&path))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "{path}");
                next = resp
                    .headers()
                    .get("link")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .map(|l| {
                        let (url, rel) = l.strip_prefix('<').unwrap().split_once('>').unwrap();
                        assert_eq!(rel, "; rel=\"next\"");
                        url.to_owned()
                    });
                let body: Value = resp.json().await.unwrap();
                names.extend(
                    body["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f["name"].as_str().unwrap().to_owned()),
                );
                pages += 1;
            }
            (names, pages)
        }
    };
    for sort in [
        "newest",
        "oldest",
        "name",
        "name-desc",
        "largest",
        "smallest",
    ] {
        let (_, whole) = s
            .api(
                "GET",
                Some(&token),
                &format!("/api/files?sort={sort}"),
                None,
            )
            .await;
        let whole = names(&whole["data"], "name");
        let (walked, pages) = follow(format!("/api/files?sort={sort}&limit=4")).await;
        assert_eq!(walked, whole, "{sort}");
        assert_eq!(pages, 7, "{sort}: 6 full pages of 4, then 1 file");
    }
    let (walked, _) = follow("/api/files?sort=name&limit=3&q=f1".to_owned()).await;
    assert_eq!(
        walked,
        (10..20).map(|i| format!("f{i:02}.txt")).collect::<Vec<_>>()
    );
    let resp = s
        .client
        .get(s.url("/api/files?limit=2&sort=name"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let link = resp.headers()["link"].to_str().unwrap().to_owned();
    let cursor = link
        .split("after=")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap();
    for bad in [
        format!("?sort=newest&after={cursor}"),
        format!("?sort=name&offset=2&after={cursor}"),
        "?after=name.nothex.00".to_owned(),
        "?after=newest".to_owned(),
    ] {
        let (status, body) = s
            .api("GET", Some(&token), &format!("/api/files{bad}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], 10001, "{bad}: {body}");
    }

    for bad in ["limit=abc", "limit=-1", "offset=x", "limit=0"] {
        assert_error(
            &s.get(&token, &format!("/file/query?{bad}")).await,
            StatusCode::BAD_REQUEST,
            10001,
        );
        assert_error(
            &s.api("GET", Some(&token), &format!("/api/files?{bad}"), None)
                .await,
            StatusCode::BAD_REQUEST,
            10001,
        );
    }
}

/// The query of a signed link, split.
fn link_parts(url: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap();
    let parts = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.into(), v.into())
        })
        .collect();
    (path.to_owned(), parts)
}

/// Rename, share links and delete through ChunkVault's own API (`/api/files/{id}`).
#[tokio::test]
async fn rename_delete_and_signed_urls() {
    let s = Server::start();
    let token = s.user("heidi").await;
    let data = random_bytes(5000);
    let hash = sha1_hex(&data);
    assert_eq!(
        s.upload(&token, "old.txt", data.clone()).await.0,
        StatusCode::OK
    );
    let id = s.file_id(&token, &hash).await;
    let file = format!("/api/files/{id}");

    let (status, body) = s
        .api(
            "PATCH",
            Some(&token),
            &file,
            Some(json!({"name": "新的 名字.txt"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["name"], "新的 名字.txt");
    assert_eq!(body["data"]["id"], id.as_str());
    assert_eq!(body["data"]["sha1"], hash.as_str());
    let (_, shown) = s.api("GET", Some(&token), &file, None).await;
    assert_eq!(shown["data"]["name"], "新的 名字.txt");
    // A body that is not `{name}`: 400, nothing renamed.
    for bad in [json!({}), json!({"name": 5}), json!({"name": "x", "op": 0})] {
        assert_error(
            &s.api("PATCH", Some(&token), &file, Some(bad)).await,
            StatusCode::BAD_REQUEST,
            10001,
        );
    }
    let resp = s
        .req("PATCH", &token, &file)
        .body("filename=x")
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10001);
    let (_, shown) = s.api("GET", Some(&token), &file, None).await;
    assert_eq!(shown["data"]["name"], "新的 名字.txt");

    // A signed URL downloads without a token, with the user's name for the file.
    let (status, body) = s
        .api("POST", Some(&token), &format!("{file}/links"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["data"]["expires_at"].as_str().unwrap().ends_with('Z'));
    let url = body["data"]["url"].as_str().unwrap().to_owned();
    // The lifetime asked for (a day here; default an hour), within a minute to a week.
    let expiry = |url: &str| -> i64 {
        let (_, parts) = link_parts(url);
        let e = &parts.iter().find(|(k, _)| k == "expires").unwrap().1;
        e.parse().unwrap()
    };
    let (status, day) = s
        .api(
            "POST",
            Some(&token),
            &format!("{file}/links?expires_in=86400"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{day}");
    let lives = expiry(day["data"]["url"].as_str().unwrap()) - expiry(&url);
    assert!(
        (86400 - 3600 - 5..=86400 - 3600 + 5).contains(&lives),
        "{lives}"
    );
    for bad in ["59", "604801", "-1", "day"] {
        let (status, body) = s
            .api(
                "POST",
                Some(&token),
                &format!("{file}/links?expires_in={bad}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], 10001, "{bad}: {body}");
    }
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
    let (path, parts) = link_parts(&url);
    let get = |k: &str| parts.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let flip = |v: &str| {
        let mut c: Vec<char> = v.chars().collect();
        c[0] = if c[0] == '0' { '1' } else { '0' };
        c.into_iter().collect::<String>()
    };
    let (lid, expires, sig) = (get("id"), get("expires"), get("sig"));
    assert_eq!(lid, id, "the link names the file");
    let past = (expires.parse::<i64>().unwrap() - 7200).to_string();
    for (i, e, g) in [
        (flip(&lid), expires.clone(), sig.clone()),
        (
            lid.clone(),
            (expires.parse::<i64>().unwrap() + 1000).to_string(),
            sig.clone(),
        ),
        (lid.clone(), past, sig.clone()),
        (lid.clone(), expires.clone(), flip(&sig)),
        (lid.clone(), expires.clone(), "zz".into()),
        (lid.clone(), "soon".into(), sig.clone()),
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

    // Delete: gone from show, list and content; the signed URL dies with it.
    let (status, body) = s.api("DELETE", Some(&token), &file, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"code": 0, "msg": "OK", "data": null}));
    for method in ["GET", "PATCH", "DELETE"] {
        let body = (method == "PATCH").then(|| json!({"name": "x"}));
        assert_error(
            &s.api(method, Some(&token), &file, body).await,
            StatusCode::NOT_FOUND,
            10401,
        );
    }
    assert_error(
        &s.api("POST", Some(&token), &format!("{file}/links"), None)
            .await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert!(s.files(&token).await.is_empty());
    assert_error(
        &json(s.content(&token, &id).await).await,
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

/// The same through the classic routes: `/file/update` answers the bare `UserFile`,
/// `/file/downloadurl` the URL as text, `/file/delete` an empty 200.
#[tokio::test]
async fn classic_update_downloadurl_and_delete() {
    let s = Server::start();
    let token = s.user("heidi-classic").await;
    let data = random_bytes(5000);
    let hash = sha1_hex(&data);
    assert_eq!(
        s.upload(&token, "old.txt", data.clone()).await.0,
        StatusCode::OK
    );

    let resp = s
        .req("POST", &token, "/file/update")
        .form(&[
            ("op", "0"),
            ("filehash", &hash),
            ("filename", "新的 名字.txt"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        content_type(&resp).as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        keys(&body),
        [
            "FileHash",
            "FileName",
            "FileSize",
            "LastUpdated",
            "UploadAt",
            "UserName"
        ]
    );
    assert_eq!(body["UserName"], "heidi-classic");
    assert_eq!(body["FileHash"], hash.as_str());
    assert_eq!(body["FileName"], "新的 名字.txt");
    assert_eq!(body["FileSize"], 5000);
    assert_go_time(&body["LastUpdated"]);
    let (_, meta) = s.get(&token, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(meta["FileName"], "新的 名字.txt");
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
    let (_, meta) = s.get(&token, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(meta["FileName"], "新的 名字.txt");

    // /file/downloadurl: the URL itself, as text; it downloads without a token.
    let resp = s
        .req("POST", &token, "/file/downloadurl")
        .form(&[("filehash", &hash)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        content_type(&resp).as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let url = resp.text().await.unwrap();
    assert!(url.starts_with(&s.base), "{url}");
    assert_eq!(link_parts(&url).0, s.url("/file/download/signed"));
    let resp = s.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("%E6%96%B0%E7%9A%84%20"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
    let (status, same) = s
        .get(&token, &format!("/file/downloadurl?filehash={hash}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(same.as_str().unwrap().starts_with(&s.base), "{same}");

    // /file/delete: an empty 200; gone from meta, query and download; the URL dies with it.
    let resp = s
        .req("POST", &token, "/file/delete")
        .form(&[("filehash", &hash)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "");
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
    assert_eq!(s.get(&token, "/file/query").await.1, json!([]));
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
    assert_eq!(
        s.upload(&token, "a.txt", data.clone()).await.0,
        StatusCode::OK
    );
    let a_id = s.file_id(&token, &hash).await;
    let (status, again) = s.upload(&token, "a.txt", data.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["FileName"], "a.txt");
    let files = s.files(&token).await;
    assert_eq!(files.len(), 1, "re-uploading is idempotent: {files:?}");
    assert_eq!(files[0]["id"], a_id.as_str());
    assert_eq!(
        s.upload(&token, "b.txt", data.clone()).await.0,
        StatusCode::OK
    );
    let b_id = s.file_id(&token, &hash).await;
    assert_ne!(a_id, b_id);
    let (_, list) = s.get(&token, "/file/query").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(s.files(&token).await.len(), 2);
    assert_eq!(s.blob_files().len(), 1);
    // fileid picks one of them.
    let (_, meta) = s
        .get(&token, &format!("/file/meta?filehash={hash}&fileid={a_id}"))
        .await;
    assert_eq!(meta["FileName"], "a.txt");
    let (_, meta) = s.get(&token, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(meta["FileName"], "b.txt", "newest without fileid");
    // Renaming one onto the other's name: conflict, nothing changed.
    assert_error(
        &s.post(
            &token,
            "/file/update",
            &[
                ("op", "0"),
                ("filehash", &hash),
                ("fileid", &a_id),
                ("filename", "b.txt"),
            ],
        )
        .await,
        StatusCode::CONFLICT,
        10902,
    );
    assert_error(
        &s.api(
            "PATCH",
            Some(&token),
            &format!("/api/files/{a_id}"),
            Some(json!({"name": "b.txt"})),
        )
        .await,
        StatusCode::CONFLICT,
        10902,
    );
    let mut names: Vec<String> = s
        .files(&token)
        .await
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "b.txt"]);
    // Empty files are files.
    let (status, empty) = s.upload(&token, "empty", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let empty_sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    assert_eq!(empty["data"]["FileSha1"], empty_sha1);
    assert_eq!(empty["data"]["FileSize"], 0);
    let resp = s.download(&token, empty_sha1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = s
        .content(&token, &s.file_id(&token, empty_sha1).await)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
}

/// `POST /api/files?name=…`: the body is the whole file; the answer is the new file's view.
#[tokio::test]
async fn api_whole_file_upload() {
    let s = Server::start_with(&["--max-file-size", "1MiB"]);
    let token = s.user("judy").await;
    let data = random_bytes(200_000);
    let hash = sha1_hex(&data);
    let resp = s
        .req("POST", &token, "/api/files?name=%E6%8A%A5%E5%91%8A.bin")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let (status, body) = crate::support::envelope(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let view = &body["data"];
    assert_eq!(view["name"], "报告.bin");
    assert_eq!(view["sha1"], hash.as_str());
    assert_eq!(view["size"], 200_000);
    assert_eq!(s.files(&token).await, std::slice::from_ref(view));
    let resp = s.content(&token, view["id"].as_str().unwrap()).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
    let (_, meta) = s.get(&token, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(meta["FileName"], "报告.bin");

    // No name, a bad name, too large: refused, nothing kept.
    let before = s.snapshot(&token).await;
    for (path, body, status, code) in [
        ("/api/files", b"x".to_vec(), StatusCode::BAD_REQUEST, 10001),
        (
            "/api/files?name=a%2Fb",
            b"x".to_vec(),
            StatusCode::BAD_REQUEST,
            10002,
        ),
        (
            "/api/files?name=..",
            b"x".to_vec(),
            StatusCode::BAD_REQUEST,
            10002,
        ),
        (
            "/api/files?name=big.bin",
            random_bytes((1 << 20) + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
            11301,
        ),
    ] {
        let resp = s.req("POST", &token, path).body(body).send().await.unwrap();
        assert_error(&json(resp).await, status, code);
    }
    crate::support::eventually("no temp files are left", || s.temp_files().is_empty()).await;
    assert_eq!(s.snapshot(&token).await, before, "nothing stored changed");
}
