//! IETF Resumable Uploads for HTTP at `/files/` over raw HTTP: every status and field the
//! draft defines, per interop version; malformed Structured Fields get 400. The real client
//! (tus-js-client in its IETF modes) runs in `tus::tus_js_client_ietf`.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use crate::support::{random_bytes, sha1_hex, Server};
use crate::tus::file_sha1s;

fn ietf(req: RequestBuilder, token: &str, version: u8) -> RequestBuilder {
    req.header("upload-draft-interop-version", version.to_string())
        .bearer_auth(token)
}

fn field(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", resp.headers()))
        .to_str()
        .unwrap()
        .to_owned()
}

fn name_meta(name: &str) -> String {
    use base64::Engine as _;
    format!(
        "filename {}",
        base64::engine::general_purpose::STANDARD.encode(name)
    )
}

async fn create(s: &Server, t: &str, v: u8, length: Option<usize>, name: &str) -> String {
    let mut req = ietf(s.client.post(s.url("/files/")), t, v)
        .header("upload-complete", "?0")
        .header("upload-metadata", name_meta(name));
    if let Some(l) = length {
        req = req.header("upload-length", l);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{:?}", resp.headers());
    assert_eq!(field(&resp, "upload-offset"), "0");
    assert_eq!(field(&resp, "upload-complete"), "?0");
    assert!(resp.headers().get("tus-resumable").is_none());
    field(&resp, "location")
}

async fn append(
    s: &Server,
    t: &str,
    v: u8,
    url: &str,
    offset: usize,
    complete: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    ietf(s.client.patch(url), t, v)
        .header("content-type", "application/partial-upload")
        .header("upload-offset", offset)
        .header("upload-complete", if complete { "?1" } else { "?0" })
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn offset_of(s: &Server, t: &str, v: u8, url: &str) -> reqwest::Response {
    ietf(s.client.head(url), t, v).send().await.unwrap()
}

async fn problem(resp: reqwest::Response, kind: &str) -> Value {
    assert_eq!(field(&resp, "content-type"), "application/problem+json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["type"],
        format!("https://iana.org/assignments/http-problem-types#{kind}"),
        "{v}"
    );
    assert!(v["title"].is_string() && v["code"].is_u64(), "{v}");
    v
}

#[tokio::test]
async fn upload_offset_append_complete_cancel() {
    let s = Server::start_with(&["--max-file-size", "8MiB"]);
    let t = s.user("ietf-user").await;
    let other = s.user("ietf-other").await;
    let data = random_bytes(300_000);
    for v in [5u8, 6, 7, 8] {
        let name = format!("ietf-{v}.bin");
        let url = create(&s, &t, v, Some(data.len()), &name).await;

        // Offset retrieval.
        let resp = offset_of(&s, &t, v, &url).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(field(&resp, "upload-offset"), "0");
        assert_eq!(field(&resp, "upload-complete"), "?0");
        assert_eq!(field(&resp, "upload-length"), data.len().to_string());
        assert_eq!(field(&resp, "cache-control"), "no-store");
        let limit = field(&resp, "upload-limit");
        assert!(limit.contains(&format!("max-size={}", 8 << 20)), "{limit}");
        let age = if v >= 7 { "max-age=" } else { "expires=" };
        assert!(limit.contains(age), "{v}: {limit}");
        // Another user's upload is unknown.
        let resp = offset_of(&s, &other, v, &url).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);

        // Append the first third.
        let resp = append(&s, &t, v, &url, 0, false, data[..100_000].to_vec()).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(field(&resp, "upload-offset"), "100000");
        assert_eq!(field(&resp, "upload-complete"), "?0");

        // A wrong offset: 409, the offset to use, a problem; nothing changes.
        let resp = append(&s, &t, v, &url, 50_000, false, vec![0; 10]).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(field(&resp, "upload-offset"), "100000");
        let p = problem(resp, "mismatching-upload-offset").await;
        assert_eq!(p["expected-offset"], 100_000);
        assert_eq!(p["provided-offset"], 50_000);

        // Upload-Complete: ?1 with bytes that do not reach the length: refused, kept as was.
        let resp = append(&s, &t, v, &url, 100_000, true, vec![1; 10]).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        problem(resp, "inconsistent-upload-length").await;
        // More bytes than the length: refused too.
        let resp = append(&s, &t, v, &url, 100_000, false, vec![1; 200_001]).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        problem(resp, "inconsistent-upload-length").await;
        let resp = offset_of(&s, &t, v, &url).await;
        assert_eq!(field(&resp, "upload-offset"), "100000");

        // The rest, completing: the file is stored under its SHA1.
        let resp = append(&s, &t, v, &url, 100_000, true, data[100_000..].to_vec()).await;
        assert_eq!(
            resp.status(),
            StatusCode::NO_CONTENT,
            "{:?}",
            resp.headers()
        );
        assert_eq!(field(&resp, "upload-offset"), data.len().to_string());
        assert_eq!(field(&resp, "upload-complete"), "?1");
        assert!(file_sha1s(&s, &t)
            .await
            .contains(&(name.clone(), sha1_hex(&data))));
        let resp = offset_of(&s, &t, v, &url).await;
        assert_eq!(field(&resp, "upload-complete"), "?1");

        // The completing request again (its answer lost): the same answer. More bytes: refused.
        let resp = append(&s, &t, v, &url, data.len(), true, Vec::new()).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(field(&resp, "upload-complete"), "?1");
        let resp = append(&s, &t, v, &url, data.len(), false, vec![2; 5]).await;
        let gone = if v >= 7 {
            StatusCode::GONE
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(resp.status(), gone);
        problem(resp, "completed-upload").await;

        // Cancel.
        let url = create(&s, &t, v, Some(10), &format!("cancel-{v}.bin")).await;
        let resp = ietf(s.client.delete(&url), &t, v).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let resp = offset_of(&s, &t, v, &url).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    let stored = file_sha1s(&s, &t).await;
    assert_eq!(stored.len(), 4, "{stored:?}");
}

#[tokio::test]
async fn lengths_digests_and_whole_bodies() {
    let s = Server::start_with(&["--max-file-size", "1MiB"]);
    let t = s.user("ietf-lengths").await;
    let v = 6;

    // The whole file in the creation request (`Upload-Complete: ?1`, no Upload-Length).
    let data = random_bytes(70_000);
    let resp = ietf(s.client.post(s.url("/files/")), &t, v)
        .header("upload-complete", "?1")
        .header("upload-metadata", name_meta("whole.bin"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(field(&resp, "upload-complete"), "?1");
    assert_eq!(field(&resp, "upload-offset"), "70000");
    assert!(file_sha1s(&s, &t)
        .await
        .contains(&("whole.bin".to_owned(), sha1_hex(&data))));

    // Creation with some bytes and an unknown length; the length is what the last append ends at.
    let resp = ietf(s.client.post(s.url("/files/")), &t, v)
        .header("upload-complete", "?0")
        .header("content-type", "application/partial-upload")
        .header("upload-metadata", name_meta("deferred.bin"))
        .body(data[..30_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(field(&resp, "upload-offset"), "30000");
    let url = field(&resp, "location");
    let resp = offset_of(&s, &t, v, &url).await;
    assert!(resp.headers().get("upload-length").is_none());
    let resp = append(&s, &t, v, &url, 30_000, true, data[30_000..].to_vec()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(field(&resp, "upload-length"), "70000");
    assert_eq!(field(&resp, "upload-complete"), "?1");

    // Upload-Length and the body of a complete creation disagree.
    let resp = ietf(s.client.post(s.url("/files/")), &t, v)
        .header("upload-complete", "?1")
        .header("upload-length", "5")
        .body(vec![1u8; 6])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    problem(resp, "inconsistent-upload-length").await;

    // Over the limit: 413 with Upload-Limit.
    let resp = ietf(s.client.post(s.url("/files/")), &t, v)
        .header("upload-complete", "?0")
        .header("upload-length", (2 << 20).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(field(&resp, "upload-limit").contains("max-size=1048576"));

    // Content-Digest: a wrong one keeps none of the bytes; a right one is accepted.
    use base64::Engine as _;
    use sha2::Digest as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let url = create(&s, &t, v, Some(20), "digest.bin").await;
    let resp = ietf(s.client.patch(&url), &t, v)
        .header("content-type", "application/partial-upload")
        .header("upload-offset", "0")
        .header("upload-complete", "?0")
        .header(
            "content-digest",
            format!("sha-256=:{}:", b64(&sha2::Sha256::digest(b"other bytes"))),
        )
        .body(vec![3u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        field(&offset_of(&s, &t, v, &url).await, "upload-offset"),
        "0"
    );
    let resp = ietf(s.client.patch(&url), &t, v)
        .header("content-type", "application/partial-upload")
        .header("upload-offset", "0")
        .header("upload-complete", "?0")
        .header(
            "content-digest",
            format!("sha-256=:{}:", b64(&sha2::Sha256::digest([3u8; 10]))),
        )
        .body(vec![3u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(field(&resp, "upload-offset"), "10");
}

#[tokio::test]
async fn malformed_fields_are_400() {
    let s = Server::start();
    let t = s.user("ietf-malformed").await;
    let url = create(&s, &t, 6, Some(100), "m.bin").await;
    let post = |headers: Vec<(&'static str, &'static str)>| {
        let mut req = s.client.post(s.url("/files/")).bearer_auth(&t);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req
    };
    // Interop versions: unknown or malformed.
    for version in ["4", "9", "x", "6, 7"] {
        let resp = post(vec![
            ("upload-draft-interop-version", version),
            ("upload-complete", "?0"),
        ])
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{version}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], 10007);
    }
    // Creation without Upload-Complete, or with a malformed one or malformed lengths.
    for (name, value) in [
        ("upload-complete", "yes"),
        ("upload-complete", "?2"),
        ("upload-length", "-1"),
        ("upload-length", "1.5"),
        ("upload-length", "1234567890123456"),
        ("repr-digest", "sha=abc"),
        ("repr-digest", "sha=:AAAA:"),
        ("repr-digest", "sha"),
    ] {
        let mut headers = vec![("upload-draft-interop-version", "6"), (name, value)];
        if name != "upload-complete" {
            headers.push(("upload-complete", "?0"));
        }
        let resp = post(headers).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{name}: {value}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], 10001, "{v}");
    }
    let resp = post(vec![("upload-draft-interop-version", "6")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Appends: malformed offset or completion, the wrong media type (interop 6 on).
    for (name, value) in [
        ("upload-offset", "abc"),
        ("upload-offset", "-5"),
        ("upload-complete", "true"),
    ] {
        let mut req = ietf(s.client.patch(&url), &t, 6)
            .header("content-type", "application/partial-upload")
            .body(vec![0u8; 5]);
        for (k, v) in [("upload-offset", "0"), ("upload-complete", "?0")] {
            if k != name {
                req = req.header(k, v);
            }
        }
        let resp = req.header(name, value).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{name}: {value}");
    }
    let resp = ietf(s.client.patch(&url), &t, 6)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .header("upload-complete", "?0")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Interop 5 (draft -03) sent no media type.
    let resp = ietf(s.client.patch(&url), &t, 5)
        .header("upload-offset", "0")
        .header("upload-complete", "?0")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // An offset retrieval carries no upload fields.
    let resp = ietf(s.client.head(&url), &t, 6)
        .header("upload-offset", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // No token: 401, as everywhere.
    let resp = s
        .client
        .head(&url)
        .header("upload-draft-interop-version", "6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The other protocol's fields are ignored, but not malformed ones: a tus request with a bad
    // IETF field, an IETF request with a bad tus field.
    for (name, value) in [
        ("upload-complete", "yes"),
        ("repr-digest", "sha=1"),
        ("content-digest", "sha-256"),
    ] {
        let resp = s
            .client
            .post(s.url("/files/"))
            .bearer_auth(&t)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "10")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "tus with {name}");
    }
    for (name, value, status) in [
        ("upload-checksum", "sha1 !!", StatusCode::BAD_REQUEST),
        ("upload-concat", "whole", StatusCode::BAD_REQUEST),
        ("upload-defer-length", "2", StatusCode::BAD_REQUEST),
        ("tus-resumable", "0.2.2", StatusCode::PRECONDITION_FAILED),
    ] {
        let resp = post(vec![
            ("upload-draft-interop-version", "6"),
            ("upload-complete", "?0"),
            (name, value),
        ])
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), status, "IETF with {name}");
    }
    // After all that, the upload is as the one good append left it.
    let resp = offset_of(&s, &t, 6, &url).await;
    assert_eq!(field(&resp, "upload-offset"), "5");

    // OPTIONS naming a version: what appends must be, and the limits; CORS lets a page send
    // and read the fields.
    let resp = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/files/"))
        .header("upload-draft-interop-version", "6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(field(&resp, "accept-patch"), "application/partial-upload");
    assert!(field(&resp, "upload-limit").contains("min-size=0"));
    let allow = field(&resp, "access-control-allow-headers").to_ascii_lowercase();
    for h in [
        "upload-complete",
        "upload-draft-interop-version",
        "upload-offset",
        "upload-length",
        "content-digest",
        "repr-digest",
    ] {
        assert!(allow.contains(h), "{allow}");
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha(data: &[u8]) -> String {
    use sha1::Digest as _;
    format!("sha=:{}:", b64(&sha1::Sha1::digest(data)))
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha-256=:{}:", b64(&sha2::Sha256::digest(data)))
}

/// The whole file in one creation request, with a `Repr-Digest`.
async fn create_whole(
    s: &Server,
    t: &str,
    name: &str,
    data: &[u8],
    repr: &str,
) -> reqwest::Response {
    ietf(s.client.post(s.url("/files/")), t, 8)
        .header("upload-complete", "?1")
        .header("upload-metadata", name_meta(name))
        .header("repr-digest", repr)
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn repr_digests_are_checked_before_publishing() {
    let s = Server::start();
    let t = s.user("ietf-repr").await;
    let v = 8;
    let data = random_bytes(90_000);
    let stored = |name: &str| (name.to_owned(), sha1_hex(&data));

    // Right digests (SHA-1 and SHA-256 side by side) in the creation request: published.
    let both = format!("{}, {}", sha256(&data), sha(&data));
    let resp = create_whole(&s, &t, "repr-ok.bin", &data, &both).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(field(&resp, "upload-complete"), "?1");
    assert!(file_sha1s(&s, &t).await.contains(&stored("repr-ok.bin")));

    // A wrong SHA-1: 400, nothing published, the upload gone.
    let resp = create_whole(&s, &t, "repr-bad.bin", &data, &sha(b"other")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let url = field(&resp, "location");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 10005, "{body}");
    assert_eq!(
        offset_of(&s, &t, v, &url).await.status(),
        StatusCode::NOT_FOUND
    );
    let names: Vec<String> = file_sha1s(&s, &t).await.into_iter().map(|f| f.0).collect();
    assert!(!names.contains(&"repr-bad.bin".to_owned()), "{names:?}");

    // SHA-256 named at creation, checked when the last append is in (the content is read
    // again): right, then wrong.
    for (name, repr, ok) in [
        ("repr-256.bin", sha256(&data), true),
        ("repr-256-bad.bin", sha256(b"other"), false),
    ] {
        let resp = ietf(s.client.post(s.url("/files/")), &t, v)
            .header("upload-complete", "?0")
            .header("upload-length", data.len())
            .header("upload-metadata", name_meta(name))
            .header("repr-digest", repr)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let url = field(&resp, "location");
        let resp = append(&s, &t, v, &url, 0, false, data[..40_000].to_vec()).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{name}");
        let resp = append(&s, &t, v, &url, 40_000, true, data[40_000..].to_vec()).await;
        let head = offset_of(&s, &t, v, &url).await;
        if ok {
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
            assert_eq!(field(&head, "upload-complete"), "?1");
            assert!(file_sha1s(&s, &t).await.contains(&stored(name)));
        } else {
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            assert_eq!(head.status(), StatusCode::NOT_FOUND);
        }
    }

    // A digest named by the completing append replaces none at creation and is checked.
    let url = create(&s, &t, v, Some(data.len()), "repr-late.bin").await;
    append(&s, &t, v, &url, 0, false, data[..50_000].to_vec()).await;
    let resp = ietf(s.client.patch(&url), &t, v)
        .header("content-type", "application/partial-upload")
        .header("upload-offset", "50000")
        .header("upload-complete", "?1")
        .header("repr-digest", sha(b"not the file"))
        .body(data[50_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let names: Vec<String> = file_sha1s(&s, &t).await.into_iter().map(|f| f.0).collect();
    assert!(!names.contains(&"repr-late.bin".to_owned()), "{names:?}");
    assert!(!names.contains(&"repr-256-bad.bin".to_owned()), "{names:?}");

    // Proof mode (the default): a digest of stored content is no instant upload; the bytes
    // must come.
    let other = s.user("ietf-repr-other").await;
    let resp = ietf(s.client.post(s.url("/files/")), &other, v)
        .header("upload-complete", "?0")
        .header("upload-length", data.len())
        .header("upload-metadata", name_meta("claimed.bin"))
        .header("repr-digest", sha(&data))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(field(&resp, "upload-offset"), "0");
    assert_eq!(field(&resp, "upload-complete"), "?0");
    assert!(file_sha1s(&s, &other).await.is_empty());
}

#[tokio::test]
async fn trusted_mode_instant_upload_by_repr_digest() {
    let s = Server::start_with(&["--instant-upload", "trusted"]);
    let t = s.user("ietf-trusted").await;
    let other = s.user("ietf-trusted-2").await;
    let v = 8;
    let data = random_bytes(120_000);
    let resp = create_whole(&s, &t, "first.bin", &data, &sha(&data)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Another user names the same content and length: complete at creation, no byte sent.
    let claim = |name: &'static str, length: usize, repr: String| {
        ietf(s.client.post(s.url("/files/")), &other, v)
            .header("upload-complete", "?0")
            .header("upload-length", length)
            .header("upload-metadata", name_meta(name))
            .header("repr-digest", repr)
            .send()
    };
    let resp = claim("instant.bin", data.len(), sha(&data)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(field(&resp, "upload-complete"), "?1");
    assert_eq!(field(&resp, "upload-offset"), data.len().to_string());
    let url = field(&resp, "location");
    let head = offset_of(&s, &other, v, &url).await;
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert_eq!(field(&head, "upload-complete"), "?1");
    assert_eq!(field(&head, "upload-offset"), data.len().to_string());
    let resp = append(&s, &other, v, &url, data.len(), false, vec![1]).await;
    problem(resp, "completed-upload").await;
    let got = s
        .client
        .get(s.url("/file/download?filehash=") + &sha1_hex(&data))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);

    // Another length, unknown content or a digest that is not SHA-1: an ordinary upload.
    for (name, length, repr) in [
        ("short.bin", data.len() - 1, sha(&data)),
        ("unknown.bin", data.len(), sha(b"unknown")),
        ("sha256.bin", data.len(), sha256(&data)),
    ] {
        let resp = claim(name, length, repr).await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{name}");
        assert_eq!(field(&resp, "upload-offset"), "0", "{name}");
        assert_eq!(field(&resp, "upload-complete"), "?0", "{name}");
    }
    let names: Vec<String> = file_sha1s(&s, &other)
        .await
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(names, ["instant.bin"]);
}

/// An append whose connection goes midway keeps the bytes that arrived (tus and IETF alike), so
/// the client resumes from there; one that named a `Content-Digest` keeps none (a part of the
/// body cannot be checked against it). Raw sockets: the body's first half is sent, the server
/// is seen receiving it, then the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_appends_keep_what_arrived() {
    use crate::races::{receiving, Held};
    let s = Server::start();
    let t = s.user("ietf-cut").await;
    let data = random_bytes(300_000);
    let half = 150_001;
    let auth = ("Authorization", format!("Bearer {t}"));
    let cases: [(&str, Vec<(&str, String)>); 3] = [
        (
            "tus",
            vec![
                auth.clone(),
                ("Tus-Resumable", "1.0.0".into()),
                ("Content-Type", "application/offset+octet-stream".into()),
            ],
        ),
        (
            "ietf",
            vec![
                auth.clone(),
                ("Upload-Draft-Interop-Version", "6".into()),
                ("Upload-Complete", "?1".into()),
                ("Content-Type", "application/partial-upload".into()),
            ],
        ),
        (
            "ietf-digest",
            vec![
                auth.clone(),
                ("Upload-Draft-Interop-Version", "6".into()),
                ("Upload-Complete", "?1".into()),
                ("Content-Type", "application/partial-upload".into()),
                ("Content-Digest", sha256(&data)),
            ],
        ),
    ];
    for (case, mut headers) in cases {
        let name = format!("cut-{case}.bin");
        let url = create(&s, &t, 6, Some(data.len()), &name).await;
        let path = url.trim_start_matches(&s.base).to_owned();
        headers.push(("Upload-Offset", "0".into()));
        let held = Held::open(&s, "PATCH", &path, &headers, data.clone(), half).await;
        receiving(&s, 1.0).await;
        drop(held); // the client goes away
        receiving(&s, 0.0).await;
        let head = offset_of(&s, &t, 6, &url).await;
        let kept = if case == "ietf-digest" { 0 } else { half };
        assert_eq!(field(&head, "upload-offset"), kept.to_string(), "{case}");
        assert_eq!(field(&head, "upload-complete"), "?0");
        // The client resumes from the offset the server reports.
        let resp = append(&s, &t, 6, &url, kept, true, data[kept..].to_vec()).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{case}");
        assert!(file_sha1s(&s, &t)
            .await
            .contains(&(name.clone(), sha1_hex(&data))));
    }
}
