//! `chunkvault fsck`: re-hashes every blob of a store, quarantines the ones whose bytes do not
//! hash to their SHA1, and finds (and with `--repair` removes) orphans: objects no blob row
//! refers to and staged uploads no session refers to. On the local store and on Ceph RGW.

use std::process::Command;
use std::time::{Duration, SystemTime};

use chunkvault_engine::blobs::BlobStore;
use chunkvault_engine::meta::{FileIndex, GcEntry};
use chunkvault_engine::{Sha1Hex, SqlMetaStore};
use reqwest::StatusCode;

use crate::support::{random_bytes, sha1_hex, Server};

/// Runs `chunkvault fsck` with `args`; its exit status and what it printed, by line.
fn fsck(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .arg("fsck")
        .args(args)
        .env_remove("CHUNKVAULT_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn count(report: &str, what: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{what}: ")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {what:?} in {report}"))
}

fn age(path: &std::path::Path, by: Duration) {
    let when = SystemTime::now() - by;
    let f = std::fs::File::options().read(true).open(path).unwrap();
    f.set_modified(when).unwrap();
}

fn tampered(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[0] ^= 0xff;
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_on_the_local_store() {
    let s = Server::start();
    let t = s.user("fscker").await;
    let a = random_bytes(200_000);
    assert_eq!(s.upload(&t, "a.bin", a.clone()).await.0, StatusCode::OK);
    let chunk = 256 * 1024u64;
    let b = random_bytes(3 * chunk as usize);
    let (st, c) = s.create_upload(&t, "b.bin", &b, Some(chunk)).await;
    assert_eq!(st, StatusCode::CREATED);
    let id = c["data"]["upload_id"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        assert_eq!(s.put_part(&t, &id, n, chunk, &b).await.0, StatusCode::OK);
    }
    assert_eq!(s.complete(&t, &id).await.0, StatusCode::CREATED);
    let data = s.data.to_str().unwrap().to_owned();
    let (ok, report) = fsck(&["--data-dir", &data]);
    assert!(ok, "a clean store");
    assert_eq!(
        (count(&report, "checked"), count(&report, "quarantined now")),
        (2, 0)
    );

    // Wrong bytes in A's blob (after the background collision check read the right ones); an
    // object nobody refers to; staging no session refers to.
    s.wait_for_collision_scans(2).await;
    let a_blob = s
        .blob_files()
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&sha1_hex(&a)))
        .unwrap();
    std::fs::write(&a_blob, tampered(a.clone())).unwrap();
    let orphan = s
        .data
        .join(format!("blobs/ee/ee/ee{}-0123456789abcdef", "e".repeat(38)));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"nobody's").unwrap();
    age(&orphan, Duration::from_secs(7200));
    let stale = s.data.join("staging/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("p00001-0123456789abcdef"), b"x").unwrap();
    age(&stale, Duration::from_secs(7200));
    // Young orphans are left alone (an upload may be about to record them).
    let young = s
        .data
        .join(format!("blobs/ee/ee/ee{}-fedcba9876543210", "e".repeat(38)));
    std::fs::write(&young, b"just written").unwrap();

    let (ok, report) = fsck(&["--data-dir", &data]);
    assert!(!ok, "a quarantine is an error exit");
    assert_eq!(count(&report, "checked"), 2);
    assert_eq!(count(&report, "quarantined now"), 1);
    assert_eq!(count(&report, "orphan objects"), 1);
    assert_eq!(count(&report, "orphan staging"), 1);
    assert_eq!(count(&report, "removed"), 0);
    assert!(orphan.exists() && stale.exists() && young.exists());
    // Quarantined: not served, set aside for inspection.
    assert_eq!(
        s.download(&t, &sha1_hex(&a)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(crate::support::entries(&s.data.join("quarantine")).len(), 1);

    let (ok, report) = fsck(&["--data-dir", &data, "--repair"]);
    assert!(ok, "{report}");
    assert_eq!(count(&report, "quarantined before"), 1);
    assert_eq!(count(&report, "removed"), 2);
    assert!(!orphan.exists() && !stale.exists() && young.exists());
    std::fs::remove_file(&young).unwrap();

    // The genuine content uploaded again heals it; the store checks clean.
    assert_eq!(s.upload(&t, "a2.bin", a.clone()).await.0, StatusCode::OK);
    let resp = s.download(&t, &sha1_hex(&a)).await;
    assert!(resp.bytes().await.unwrap() == a);
    let (ok, report) = fsck(&["--data-dir", &data, "--sample", "0.5"]);
    assert!(ok, "{report}");
    assert_eq!(count(&report, "quarantined before"), 0);
    let (ok, report) = fsck(&["--data-dir", &data]);
    assert!(ok);
    assert_eq!(count(&report, "checked"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_on_ceph() {
    let Some((mut flags, store, _creds)) = crate::s3::s3_store_flags("ceph") else {
        eprintln!("CHUNKVAULT_TEST_S3_ENDPOINT not set: S3 test skipped (.ci/run sets it)");
        return;
    };
    flags.extend(["--upload-store".to_owned(), "ceph".to_owned()]);
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Server::start_with(&flag_refs);
    let t = s.user("cephfsck").await;
    let a = random_bytes(300_000);
    let b = random_bytes(300_001);
    for (name, d) in [("a.bin", &a), ("b.bin", &b)] {
        assert_eq!(s.upload(&t, name, d.clone()).await.0, StatusCode::OK);
    }
    // A's row is pointed at an object holding other bytes (as a bad copy would be), and an
    // object nobody refers to is written.
    let sha_a = Sha1Hex::parse(&sha1_hex(&a)).unwrap();
    let wrong = store
        .put_pending(crate::support::stream_of(tampered(a.clone())))
        .await
        .unwrap()
        .commit(&sha_a)
        .await
        .unwrap();
    let orphan = store
        .put_pending(crate::support::stream_of(b"nobody's".to_vec()))
        .await
        .unwrap()
        .commit(&sha_a)
        .await
        .unwrap();
    let meta = SqlMetaStore::connect(&format!(
        "sqlite://{}",
        s.data.join("chunkvault.db").display()
    ))
    .await
    .unwrap();
    let row = meta.blob(&sha_a).await.unwrap().unwrap();
    let from = GcEntry {
        store: row.store.clone(),
        key: row.key.clone(),
    };
    let to = GcEntry {
        store: row.store.clone(),
        key: wrong.clone(),
    };
    assert!(meta.move_blob(&sha_a, &from, &to).await.unwrap());
    // The switch queued A's first object for deletion; out of the queue, nothing refers to it.
    meta.gc_done(&from).await.unwrap();
    let mut args: Vec<&str> = vec!["--data-dir", s.data.to_str().unwrap(), "--grace", "1ms"];
    args.extend(flag_refs.iter().copied());
    let (ok, report) = fsck(&args);
    assert!(!ok);
    assert_eq!(count(&report, "checked"), 2);
    assert_eq!(count(&report, "quarantined now"), 1);
    // A's first object (no row refers to it now) and the planted one.
    assert_eq!(count(&report, "orphan objects"), 2);
    let keys = store.list_keys().await.unwrap();
    assert!(keys.contains(&orphan) && !keys.contains(&wrong), "{keys:?}");
    args.push("--repair");
    let (ok, report) = fsck(&args);
    assert!(ok, "{report}");
    assert_eq!(count(&report, "removed"), 2);
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "only B's object is left: {keys:?}");
    assert_eq!(s.upload(&t, "a.bin", a.clone()).await.0, StatusCode::OK);
    let resp = s.download(&t, &sha1_hex(&a)).await;
    assert!(resp.bytes().await.unwrap() == a, "healed on Ceph");
    store.remove_everything().await.unwrap();
}

/// Wrong bytes are caught where they are read whole: a download never delivers them whole
/// (the body is cut before its last bytes) and quarantines the blob; a transfer's read-back
/// of its source quarantines it instead of moving it. The genuine upload afterwards heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_and_transfers_quarantine_wrong_bytes() {
    let cold = tempfile::tempdir().unwrap();
    let cold_flag = format!("cold=local:{}", cold.path().display());
    let s = Server::start_with(&["--store", &cold_flag]);
    let t = s.user("reader").await;
    let a = random_bytes(500_000);
    let b = random_bytes(300_000);
    for (name, d) in [("a.bin", &a), ("b.bin", &b)] {
        assert_eq!(s.upload(&t, name, d.clone()).await.0, StatusCode::OK);
    }
    let blob_of = |d: &[u8]| {
        s.blob_files()
            .into_iter()
            .find(|p| p.to_string_lossy().contains(&sha1_hex(d)))
            .unwrap()
    };
    // After the background collision check has read the right bytes of both.
    s.wait_for_collision_scans(2).await;
    std::fs::write(blob_of(&a), tampered(a.clone())).unwrap();
    std::fs::write(blob_of(&b), tampered(b.clone())).unwrap();

    // The download of A: 200 and headers, but the body breaks off before it is whole.
    let resp = s.download(&t, &sha1_hex(&a)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    match resp.bytes().await {
        Err(_) => {}
        Ok(got) => {
            assert!(got.len() < a.len(), "a wrong blob was delivered whole");
        }
    }
    assert_eq!(
        s.download(&t, &sha1_hex(&a)).await.status(),
        StatusCode::NOT_FOUND
    );

    // Moving every blob to the cold store: B's source reads back wrong, so it is quarantined
    // and not moved.
    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .args(["migrate", "--from", "local", "--to", "cold", "--data-dir"])
        .arg(&s.data)
        .args(["--store", &cold_flag])
        .env_remove("CHUNKVAULT_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("skipped {} (Quarantined)", sha1_hex(&b))),
        "{text}"
    );
    assert_eq!(
        s.download(&t, &sha1_hex(&b)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(crate::support::entries(&s.data.join("quarantine")).len(), 2);
    let m = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(
        crate::ops::sample(
            &m.text().await.unwrap(),
            "chunkvault_blobs_quarantined_total"
        ),
        Some(1.0),
        "the download's quarantine, counted by the server (the transfer's by migrate)"
    );

    // Uploaded again, both are whole and right.
    for (name, d) in [("a2.bin", &a), ("b2.bin", &b)] {
        assert_eq!(s.upload(&t, name, d.clone()).await.0, StatusCode::OK);
        let resp = s.download(&t, &sha1_hex(d)).await;
        assert!(resp.bytes().await.unwrap() == *d);
    }
}
