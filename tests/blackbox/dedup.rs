use reqwest::StatusCode;

use crate::support::{assert_error, random_bytes, sha1_hex, Server};

/// Two users, one content: one blob; it outlives the first delete and goes with the last.
async fn two_users_one_blob(s: &Server) {
    let alice = s.user("dedup-alice").await;
    let bob = s.user("dedup-bob").await;
    let data = random_bytes(200_000);
    let hash = sha1_hex(&data);
    assert_eq!(
        s.upload(&alice, "mine.bin", data.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.upload(&bob, "也是我的.bin", data.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(s.blob_files().len(), 1, "one blob on disk");
    let a = s.files(&alice).await;
    let b = s.files(&bob).await;
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["name"], "也是我的.bin");
    let a_file = format!("/api/files/{}", a[0]["id"].as_str().unwrap());
    let b_id = b[0]["id"].as_str().unwrap();

    assert_eq!(
        s.api("DELETE", Some(&alice), &a_file, None).await.0,
        StatusCode::OK
    );
    assert_error(
        &s.api("GET", Some(&alice), &a_file, None).await,
        StatusCode::NOT_FOUND,
        10401,
    );
    assert_eq!(
        s.download(&alice, &hash).await.status(),
        StatusCode::NOT_FOUND
    );
    let resp = s.content(&bob, b_id).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), hash);
    assert_eq!(s.blob_files().len(), 1);

    assert_eq!(
        s.api("DELETE", Some(&bob), &format!("/api/files/{b_id}"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        s.blob_files().is_empty(),
        "the last delete removes the blob"
    );
    // The content can be stored again afterwards.
    assert_eq!(s.upload(&bob, "again.bin", data).await.0, StatusCode::OK);
    assert_eq!(s.blob_files().len(), 1);
}

#[tokio::test]
async fn sqlite() {
    two_users_one_blob(&Server::start()).await;
}

/// The same journey with the server on MariaDB and on PostgreSQL (when `.ci/run` provides them).
async fn on_database(env: &str) {
    let Ok(base) = crate::scratch::service_var(env) else {
        eprintln!("{env} not set: skipped here (.ci/run sets it)");
        return;
    };
    let db = crate::scratch::ScratchDb::create(&base, "cv_bb").await;
    let s = Server::start_with(&["--database-url", &db.url]);
    two_users_one_blob(&s).await;
    drop(s);
}

#[tokio::test]
async fn mariadb() {
    on_database("CHUNKVAULT_TEST_MYSQL_URL").await;
}

#[tokio::test]
async fn postgres() {
    on_database("CHUNKVAULT_TEST_POSTGRES_URL").await;
}

#[tokio::test]
async fn concurrent_uploads_of_one_content() {
    let s = Server::start();
    let data = random_bytes(1_000_000);
    let mut tokens = Vec::new();
    for i in 0..6 {
        tokens.push(s.user(&format!("racer{i}")).await);
    }
    let results =
        futures::future::join_all(tokens.iter().map(|t| s.upload(t, "same.bin", data.clone())))
            .await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    assert_eq!(s.blob_files().len(), 1, "one blob however many raced");
    crate::support::eventually("losing copies are cleaned up", || s.temp_files().is_empty()).await;
}
