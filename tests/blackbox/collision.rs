//! SHA1 collisions: two different contents with one SHA1 (the SHAttered prefixes followed by a
//! common suffix) are never shared, by any path that would link one user to another's bytes.

use reqwest::StatusCode;

use crate::support::{assert_error, random_bytes, sha1_hex, Server};

const SHATTERED_1: &[u8] = include_bytes!("../../engine/tests/fixtures/shattered-1.prefix");
const SHATTERED_2: &[u8] = include_bytes!("../../engine/tests/fixtures/shattered-2.prefix");
const SHA1_COLLISION: u64 = 12202;

/// Two different contents with the same SHA1 and size.
fn colliding_pair() -> (Vec<u8>, Vec<u8>) {
    let suffix = random_bytes(700_000);
    let a = [SHATTERED_1, &suffix].concat();
    let b = [SHATTERED_2, &suffix].concat();
    assert_ne!(a, b);
    assert_eq!(sha1_hex(&a), sha1_hex(&b));
    (a, b)
}

async fn names(s: &Server, t: &str) -> Vec<String> {
    s.files(t)
        .await
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn downloaded(s: &Server, t: &str, sha1: &str) -> Vec<u8> {
    let resp = s.download(t, sha1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn colliding_content_is_never_shared() {
    let s = Server::start();
    let attacker = s.user("collider").await;
    let victim = s.user("victim").await;
    let (a, b) = colliding_pair();
    let sha1 = sha1_hex(&a);
    assert_eq!(
        s.upload(&attacker, "a.pdf", a.clone()).await.0,
        StatusCode::OK
    );

    // An instant-upload claim of the colliding content: refused outright, nothing linked.
    let claim = s.create_upload(&victim, "b.pdf", &b, None).await;
    assert_error(&claim, StatusCode::UNPROCESSABLE_ENTITY, SHA1_COLLISION);
    assert!(claim.1["msg"].as_str().unwrap().contains("collision"));
    // The classic whole-file upload of it: refused after the bytes arrived, none kept.
    let classic = s.upload(&victim, "b.pdf", b.clone()).await;
    assert_error(&classic, StatusCode::UNPROCESSABLE_ENTITY, SHA1_COLLISION);
    // Classic instant upload (fastupload) too.
    let size = b.len().to_string();
    let fields = [
        ("filehash", sha1.as_str()),
        ("filename", "b.pdf"),
        ("filesize", size.as_str()),
    ];
    let fast = s.post(&victim, "/file/fastupload", &fields).await;
    assert_error(&fast, StatusCode::UNPROCESSABLE_ENTITY, SHA1_COLLISION);

    assert!(names(&s, &victim).await.is_empty());
    assert_eq!(s.blob_files().len(), 1);
    assert!(s.temp_files().is_empty() && s.staging_files().is_empty());
    // The attacker's file is untouched, and the attacker cannot re-share it with themselves.
    assert_eq!(downloaded(&s, &attacker, &sha1).await, a);
    let again = s.create_upload(&attacker, "a-copy.pdf", &a, None).await;
    assert_error(&again, StatusCode::UNPROCESSABLE_ENTITY, SHA1_COLLISION);
    assert_eq!(names(&s, &attacker).await, ["a.pdf"]);

    // Ordinary content is shared as before (the verdict is per SHA1).
    let clean = random_bytes(100_000);
    assert_eq!(
        s.upload(&attacker, "c.bin", clean.clone()).await.0,
        StatusCode::OK
    );
    let (st, linked) = s.create_upload(&victim, "c.bin", &clean, None).await;
    assert_eq!(st, StatusCode::OK, "{linked}");
    assert_eq!(linked["data"]["instant"], true);
    assert_eq!(downloaded(&s, &victim, &sha1_hex(&clean)).await, clean);
}

#[tokio::test]
async fn a_colliding_chunked_upload_is_refused_at_completion() {
    // Without instant upload every byte is sent; completion is where the SHA1 meets the index.
    let s = Server::start_with(&["--instant-upload", "off"]);
    let attacker = s.user("collider2").await;
    let victim = s.user("victim2").await;
    let (a, b) = colliding_pair();
    let sha1 = sha1_hex(&a);
    const CH: u64 = 256 * 1024;
    let (st, created) = s.create_upload(&attacker, "a.pdf", &a, Some(CH)).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let ida = created["data"]["upload_id"].as_str().unwrap().to_owned();
    let (st, created) = s.create_upload(&victim, "b.pdf", &b, Some(CH)).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let idb = created["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        assert_eq!(
            s.put_part(&attacker, &ida, n, CH, &a).await.0,
            StatusCode::OK
        );
        assert_eq!(s.put_part(&victim, &idb, n, CH, &b).await.0, StatusCode::OK);
    }
    assert_eq!(s.complete(&attacker, &ida).await.0, StatusCode::CREATED);
    let done = s.complete(&victim, &idb).await;
    assert_error(&done, StatusCode::UNPROCESSABLE_ENTITY, SHA1_COLLISION);

    assert!(names(&s, &victim).await.is_empty());
    assert_eq!(s.blob_files().len(), 1);
    assert_eq!(downloaded(&s, &attacker, &sha1).await, a);
    let (st, other) = s
        .get(&victim, &format!("/file/download?filehash={sha1}"))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{other}");
}

/// New content gets its collision verdict in the background once it is published, so the
/// first instant upload of it (秒传) answers from the database: the claim reads no blob.
#[tokio::test]
async fn new_content_is_checked_before_anyone_claims_it() {
    let s = Server::start();
    assert_eq!(s.collision_scans().await, 0);
    let owner = s.user("owner").await;
    let other = s.user("other").await;
    let data = random_bytes(3 << 20);
    assert_eq!(
        s.upload(&owner, "big.bin", data.clone()).await.0,
        StatusCode::OK
    );
    // Without any claim, the blob is read for its verdict.
    s.wait_for_collision_scans(1).await;
    assert_eq!(s.collision_scans().await, 1);
    // The first claim (with its proof): linked, and no second read of the blob.
    let claim = s.create_upload(&other, "mine.bin", &data, None).await;
    assert_eq!(claim.0, StatusCode::OK, "{:?}", claim.1);
    assert_eq!(claim.1["data"]["instant"], true, "{:?}", claim.1);
    assert_eq!(s.collision_scans().await, 1);
}

/// `--collision-scan first-share`: nothing is read until the content is first shared.
#[tokio::test]
async fn first_share_mode_reads_nothing_until_a_claim() {
    let s = Server::start_with(&["--collision-scan", "first-share"]);
    let owner = s.user("owner").await;
    let other = s.user("other").await;
    let data = random_bytes(1 << 20);
    assert_eq!(
        s.upload(&owner, "a.bin", data.clone()).await.0,
        StatusCode::OK
    );
    // Another upload, and a download: still nothing shared, nothing scanned.
    assert_eq!(
        s.upload(&owner, "b.bin", random_bytes(1000)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.download(&owner, &sha1_hex(&data)).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.collision_scans().await, 0);
    let claim = s.create_upload(&other, "mine.bin", &data, None).await;
    assert_eq!(claim.1["data"]["instant"], true, "{:?}", claim.1);
    assert_eq!(s.collision_scans().await, 1);
}
