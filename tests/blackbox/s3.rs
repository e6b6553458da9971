//! End to end on an S3-compatible store (Ceph RGW in `.ci/run`: `CHUNKVAULT_TEST_S3_ENDPOINT`):
//! uploads land in the bucket through every protocol, SHA1 is verified before publication,
//! downloads stream with Range, `/file/downloadurl` hands out a presigned GET of the private
//! object, and the same content is instantly uploaded.

use std::time::{Duration, Instant};

use chunkvault_engine::blobs::{S3BlobStore, S3Config};
use reqwest::StatusCode;

use crate::support::{assert_error, json, random_bytes, sha1_hex, Server};

const MIB: u64 = 1024 * 1024;

/// A server whose uploads go to a fresh key prefix in the test bucket, and a handle on that
/// prefix to look at the objects (removed when the test ends).
pub struct S3Node {
    pub server: Server,
    pub store: S3BlobStore,
    _creds: tempfile::TempDir,
}

pub fn s3_env() -> Option<(String, String, String, String)> {
    let endpoint = crate::scratch::service_var("CHUNKVAULT_TEST_S3_ENDPOINT").ok()?;
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    Some((
        endpoint,
        var("CHUNKVAULT_TEST_S3_BUCKET", "chunkvault-test"),
        var("CHUNKVAULT_TEST_S3_ACCESS_KEY", "testaccesskey"),
        var("CHUNKVAULT_TEST_S3_SECRET_KEY", "testsecretkey"),
    ))
}

/// `--store NAME=s3://…` flags for a fresh prefix, the credentials in a file, and a store
/// handle on the same prefix.
pub fn s3_store_flags(name: &str) -> Option<(Vec<String>, S3BlobStore, tempfile::TempDir)> {
    s3_store_flags_in(name, None)
}

/// As `s3_store_flags`, in another bucket than the default test bucket.
pub fn s3_store_flags_in(
    name: &str,
    bucket: Option<&str>,
) -> Option<(Vec<String>, S3BlobStore, tempfile::TempDir)> {
    let (endpoint, default_bucket, ak, sk) = s3_env()?;
    let bucket = bucket.map(str::to_owned).unwrap_or(default_bucket);
    let prefix = format!(
        "bb-{}",
        crate::support::hex_encode(&rand::random::<[u8; 8]>())
    );
    let creds = tempfile::tempdir().unwrap();
    let file = creds.path().join("credentials");
    std::fs::write(
        &file,
        format!("access_key_id = {ak}\nsecret_access_key = {sk}\n"),
    )
    .unwrap();
    let flags = vec![
        "--store".to_owned(),
        format!(
            "{name}=s3://{bucket}/{prefix}?endpoint={endpoint}&credentials={}",
            file.display()
        ),
    ];
    let store = S3BlobStore::new(
        name,
        S3Config {
            endpoint,
            region: "us-east-1".into(),
            bucket,
            prefix,
            virtual_hosted: false,
            access_key: ak,
            secret_key: sk,
            min_part_size: 5 * MIB,
            buffer_part_size: 8 * MIB,
        },
    )
    .unwrap();
    Some((flags, store, creds))
}

impl S3Node {
    pub fn start() -> Option<S3Node> {
        S3Node::start_with(&[])
    }

    /// With these flags besides the store's.
    pub fn start_with(extra: &[&str]) -> Option<S3Node> {
        let Some((mut flags, store, creds)) = s3_store_flags("ceph") else {
            eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: S3 test skipped (.ci/run sets it)");
            return None;
        };
        flags.extend(["--upload-store".to_owned(), "ceph".to_owned()]);
        flags.extend(extra.iter().map(|f| (*f).to_owned()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Some(S3Node {
            server: Server::start_with(&flags),
            store,
            _creds: creds,
        })
    }
}

impl Drop for S3Node {
    fn drop(&mut self) {
        let store = self.store.clone();
        // Remove the prefix even when the test failed (a runtime of its own: Drop is sync).
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(store.remove_everything())
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_download_presign_instant_on_ceph() {
    let Some(node) = S3Node::start() else { return };
    let s = &node.server;
    let t = s.user("cephuser").await;
    let chunk = 5 * MIB;
    let data = random_bytes((3 * chunk + 12_345) as usize);
    let sha = sha1_hex(&data);

    // Chunked upload, parts in a random order, one part sent twice.
    let (st, created) = s.create_upload(&t, "大文件.bin", &data, Some(chunk)).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in [3, 1, 4, 3, 2] {
        let (st, body) = s.put_part(&t, &id, n, chunk, &data).await;
        assert_eq!(st, StatusCode::OK, "part {n}: {body}");
    }
    assert!(
        s.blob_files().is_empty(),
        "nothing may land on the local disk"
    );
    let (st, done) = s.complete(&t, &id).await;
    assert_eq!(st, StatusCode::CREATED, "{done}");
    assert_eq!(done["data"]["sha1"], sha, "{done}");
    let keys = node.store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");

    // Download: whole (SHA1 checked) and a Range across a part boundary.
    let resp = s.download(&t, &sha).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), sha);
    let (a, b) = (chunk - 10, chunk + 9);
    let resp = s
        .req("GET", &t, &format!("/file/download?filehash={sha}"))
        .header("Range", format!("bytes={a}-{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        &data[a as usize..=b as usize]
    );

    // /file/downloadurl: a presigned GET of the private object, named after the user's file.
    let (st, url) = s
        .post(&t, "/file/downloadurl", &[("filehash", sha.as_str())])
        .await;
    assert_eq!(st, StatusCode::OK, "{url}");
    let url = url.as_str().unwrap().to_owned();
    let endpoint = crate::s3::s3_env().unwrap().0;
    assert!(url.starts_with(&endpoint), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let plain = reqwest::get(&url).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    let disposition = plain.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains("filename*=UTF-8''%E5%A4%A7%E6%96%87%E4%BB%B6.bin"),
        "{disposition}"
    );
    assert_eq!(sha1_hex(&plain.bytes().await.unwrap()), sha);
    // Tampered: another signature, or the object without one (the bucket is private).
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.clone().into_bytes();
    tampered[sig_at] = if tampered[sig_at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        reqwest::get(&tampered).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let bare = url.split('?').next().unwrap();
    assert_eq!(
        reqwest::get(bare).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // ChunkVault's own API: the content with a Range across a part boundary, and the same
    // kind of presigned link.
    let id = s.file_id(&t, &sha).await;
    let resp = s
        .req("GET", &t, &format!("/api/files/{id}/content"))
        .header("Range", format!("bytes={a}-{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        &data[a as usize..=b as usize]
    );
    let (st, link) = s
        .api("POST", Some(&t), &format!("/api/files/{id}/links"), None)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{link}");
    let api_url = link["data"]["url"].as_str().unwrap();
    assert!(
        api_url.starts_with(&endpoint) && api_url.contains("X-Amz-Signature="),
        "{api_url}"
    );
    let plain = reqwest::get(api_url).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(sha1_hex(&plain.bytes().await.unwrap()), sha);

    // The same content again, by another user: instant, no new object.
    let u = s.user("second").await;
    let (st, again) = s.create_upload(&u, "copy.bin", &data, Some(chunk)).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["instant"], true, "{again}");
    assert_eq!(node.store.list_keys().await.unwrap(), keys);
}

/// HMAC-SHA256 (RFC 2104) over `sha2`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Multipart uploads in progress under `prefix` in the test bucket: S3 ListMultipartUploads,
/// signed here with SigV4 (object_store cannot list them).
async fn open_multipart_uploads(prefix: &str) -> usize {
    use sha2::{Digest, Sha256};
    let (endpoint, bucket, ak, sk) = s3_env().unwrap();
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // "Sat, 05 Dec 2026 03:28:11 GMT" → 20261205T032811Z
    let http = httpdate::fmt_http_date(std::time::SystemTime::now());
    let f: Vec<&str> = http.split([' ', ':']).collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == f[2])
    .unwrap()
        + 1;
    let date = format!("{}{month:02}{}", f[3], f[1]);
    let stamp = format!("{date}T{}{}{}Z", f[4], f[5], f[6]);
    let empty = crate::support::hex_encode(&Sha256::digest(b""));
    let encoded: String = prefix
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let query = format!("prefix={encoded}&uploads=");
    let canonical = format!(
        "GET\n/{bucket}\n{query}\nhost:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{stamp}\n\nhost;x-amz-content-sha256;x-amz-date\n{empty}"
    );
    let scope = format!("{date}/us-east-1/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        crate::support::hex_encode(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{sk}").as_bytes(), date.as_bytes()).to_vec();
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes()).to_vec();
    }
    let signature = crate::support::hex_encode(&hmac_sha256(&key, to_sign.as_bytes()));
    let resp = reqwest::Client::new()
        .get(format!("{}/{bucket}?{query}", endpoint.trim_end_matches('/')))
        .header("x-amz-content-sha256", &empty)
        .header("x-amz-date", &stamp)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
            ),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "ListMultipartUploads: {body}");
    body.matches("<UploadId>").count()
}

/// tus expiration on Ceph: the appended part's multipart upload is aborted by the sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_uploads_expire_on_ceph() {
    let Some(node) = S3Node::start_with(&["--upload-ttl", "3s", "--sweep-interval", "200ms"])
    else {
        return;
    };
    let prefix = node.store.config().prefix.clone();
    crate::tus::expires_as_announced(&node.server, || open_multipart_uploads(&prefix)).await;
    assert_eq!(open_multipart_uploads(&prefix).await, 0);
}

/// A download link that worked answers 200 until its lifetime is over, then 403 (polled: the
/// link's answer is the condition; `created` is just before the link was asked for).
async fn works_until_it_expires(url: &str, created: Instant, ttl: Duration) {
    let deadline = created + ttl + Duration::from_secs(15);
    loop {
        let status = reqwest::get(url).await.unwrap().status();
        if status == StatusCode::FORBIDDEN {
            break;
        }
        assert_eq!(status, StatusCode::OK, "{url}");
        assert!(
            Instant::now() < deadline,
            "{url} still works long after it expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Expiry times are whole seconds: a link may end up to a second early, never more.
    let lived = created.elapsed();
    assert!(
        lived + Duration::from_secs(1) >= ttl,
        "{url} expired after {lived:?}"
    );
}

/// `--download-url-ttl 2s`: a presigned Ceph URL and ChunkVault's own signed link both stop
/// working once it is over (the expiry branch, not a tampered expiry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_links_expire_on_ceph_and_on_local_disk() {
    let ttl = ["--download-url-ttl", "2s"];
    let Some(node) = S3Node::start_with(&ttl) else {
        return;
    };
    let local = Server::start_with(&ttl);
    let mut links = Vec::new();
    for (s, on_ceph) in [(&node.server, true), (&local, false)] {
        let t = s.user("expiring").await;
        let data = random_bytes(10_000);
        assert_eq!(
            s.upload(&t, "soon gone.bin", data.clone()).await.0,
            StatusCode::OK
        );
        let id = s.file_id(&t, &sha1_hex(&data)).await;
        let created = Instant::now();
        let (st, link) = s
            .api("POST", Some(&t), &format!("/api/files/{id}/links"), None)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{link}");
        let url = link["data"]["url"].as_str().unwrap().to_owned();
        assert_eq!(url.contains("X-Amz-Signature="), on_ceph, "{url}");
        assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::OK);
        links.push((url, created));
    }
    for (url, created) in &links {
        works_until_it_expires(url, *created, Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_and_tus_uploads_and_sha1_mismatch_on_ceph() {
    let Some(node) = S3Node::start() else { return };
    let s = &node.server;
    let t = s.user("cephclassic").await;

    // Classic single-request upload, larger than one buffered part.
    let data = random_bytes((9 * MIB + 7) as usize);
    let (st, body) = s.upload(&t, "one.bin", data.clone()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let resp = s.download(&t, &sha1_hex(&data)).await;
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), sha1_hex(&data));

    // tus: appends of odd sizes across part boundaries.
    let tus_data = random_bytes((11 * MIB + 3) as usize);
    let resp = s
        .req("POST", &t, "/files/")
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", tus_data.len().to_string())
        .header("Upload-Metadata", "filename dHVzLmJpbg==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let path = location[location.find("/files/").unwrap()..].to_owned();
    let cuts = [0, 3 * MIB as usize + 1, 9 * MIB as usize, tus_data.len()];
    for w in cuts.windows(2) {
        let resp = s
            .req("PATCH", &t, &path)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", w[0].to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(tus_data[w[0]..w[1]].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "append at {}", w[0]);
    }
    let resp = s.download(&t, &sha1_hex(&tus_data)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), sha1_hex(&tus_data));
    assert_eq!(node.store.list_keys().await.unwrap().len(), 2);

    // tus concatenation (tus-js-client's parallelUploads): S3 cannot read unfinished partial
    // uploads, so each is assembled first, then read back into the final file.
    let whole = random_bytes((7 * MIB + 11) as usize);
    let mut urls = Vec::new();
    for piece in whole.chunks((3 * MIB) as usize) {
        let resp = s
            .req("POST", &t, "/files/")
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Concat", "partial")
            .header("Upload-Length", piece.len().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let url = resp.headers()["location"].to_str().unwrap().to_owned();
        let path = url[url.find("/files/").unwrap()..].to_owned();
        let resp = s
            .req("PATCH", &t, &path)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .body(piece.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        urls.push(path);
    }
    let resp = s
        .req("POST", &t, "/files/")
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Concat", format!("final;{}", urls.join(" ")))
        .header("Upload-Metadata", "filename Y29uY2F0LmJpbg==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = s.download(&t, &sha1_hex(&whole)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), sha1_hex(&whole));
    assert_eq!(node.store.list_keys().await.unwrap().len(), 3);
    assert_eq!(
        node.store.count_objects().await.unwrap(),
        3,
        "partials gone"
    );

    // Claimed SHA1 that the bytes do not have: refused at complete, the object removed.
    let chunk = 5 * MIB;
    let bad = random_bytes((chunk + 10) as usize);
    let mut body = serde_json::json!({
        "filename": "liar.bin", "size": bad.len(), "sha1": sha1_hex(b"something else"),
        "chunk_size": chunk,
    });
    let resp = s
        .req("POST", &t, "/uploads")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (st, created) = json(resp).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in [2, 1] {
        assert_eq!(s.put_part(&t, &id, n, chunk, &bad).await.0, StatusCode::OK);
    }
    let done = s.complete(&t, &id).await;
    assert_error(&done, StatusCode::UNPROCESSABLE_ENTITY, 12201);
    assert_eq!(node.store.list_keys().await.unwrap().len(), 3);
    assert_eq!(
        node.store.count_objects().await.unwrap(),
        3,
        "staging manifests must be gone too"
    );

    // Parts smaller than the store's minimum are refused when the upload is created.
    body["chunk_size"] = (1024 * 1024).into();
    body["sha1"] = sha1_hex(&bad).into();
    let resp = s
        .req("POST", &t, "/uploads")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (st, refused) = json(resp).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["msg"]
            .as_str()
            .unwrap()
            .contains("at least 5242880"),
        "{refused}"
    );
}
