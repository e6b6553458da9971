//! Scale benchmark (`bench/scale`): what one request costs as the store grows. For each size N
//! it fills a fresh database to N files — a tenth of them one user's, the rest spread over a
//! thousand users — and times, on one kept-alive connection, that user's requests: meta,
//! download of a 64-byte file, rename, delete (by SHA1, the classic routes), an instant claim,
//! a part upload, and a listing page deep in the user's files by cursor and by offset. Prints
//! p50/p99 per operation at each N and the p50's ratio to the smallest N.
//!
//! The files the user touches are real: uploaded through `/file/upload` before the fill. The
//! fill itself writes the metadata rows (users, blobs, user files) straight into the database in
//! multi-row inserts: the engine's own write path would take hours for 10^6 files. Those rows
//! point at blobs that are never read. After the fill, PostgreSQL and MariaDB get the `ANALYZE`
//! their autovacuum and persistent statistics would run soon anyway; the server restarts, and
//! SQLite's connections run `PRAGMA optimize` as they open (as on every start).
//!
//!   scale BIN --db sqlite|mysql://…/db|postgres://…/db [--sizes 1000,100000,1000000] [--samples 200]
//!
//! With `--sweep N` it measures the sweeper instead: N expired tokens, N expired proof
//! challenges, N expired upload sessions and N unreferenced blobs queued for deletion are
//! written, the server starts (its sweeper's first round with it), and one client's requests (a
//! meta read and a rename, alternating) are timed while the sweep runs. Each request also goes to
//! a control: a second server, the same user and files on a database of its own with nothing to
//! sweep, the two served by turns, so the machine's noise falls on both alike. Fails when the
//! swept server's p99 during the sweep reaches `--max-ratio` (default 2) times the control's.
//! Both are timed again once the sweep is done (printed).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use rand::RngCore;
use serde_json::Value;
use sha1::Digest;
use sqlx::{Connection, Executor, Row};

const PASSWORD: &str = "scale-bench-password";
const PART: usize = 256 * 1024;
/// Rows per multi-row INSERT, and INSERTs per transaction.
const ROWS: usize = 1000;
const STATEMENTS_PER_TX: usize = 20;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &str, dir: &std::path::Path, db: &str) -> Result<Server> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn"])
        .args(["--signup-rate", "off", "--instant-upload", "trusted"])
        .args(["--max-uploads-per-user", "100000"])
        .arg("--database-url")
        .arg(db)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))?,
        )
        .spawn()
        .context("start the server")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow!("server did not start: {line:?}"))?
        .to_owned();
    Ok(Server { child, base })
}

async fn json_ok(resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let text = resp.text().await?;
    ensure!(status.is_success(), "HTTP {status}: {text}");
    if text.is_empty() {
        return Ok(Value::Null); // the classic delete answers an empty 200
    }
    let v: Value = serde_json::from_str(&text).with_context(|| text.clone())?;
    // The classic routes answer 200 with their own code.
    if let Some(code) = v.get("code").and_then(Value::as_i64) {
        ensure!(code == 0, "code {code}: {text}");
    }
    Ok(v)
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn signup(http: &reqwest::Client, base: &str, name: &str) -> Result<Api> {
        let credentials = serde_json::json!({ "username": name, "password": PASSWORD });
        json_ok(
            http.post(format!("{base}/api/account"))
                .json(&credentials)
                .send()
                .await?,
        )
        .await?;
        Api::signin(http, base, name).await
    }

    async fn signin(http: &reqwest::Client, base: &str, name: &str) -> Result<Api> {
        let credentials = serde_json::json!({ "username": name, "password": PASSWORD });
        let v = json_ok(
            http.post(format!("{base}/api/sessions"))
                .json(&credentials)
                .send()
                .await?,
        )
        .await?;
        Ok(Api {
            http: http.clone(),
            base: base.to_owned(),
            token: v["data"]["token"].as_str().context("token")?.to_owned(),
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// A 64-byte file of random bytes through `/file/upload`; its SHA1.
    async fn upload_small(&self, name: &str) -> Result<String> {
        let mut data = vec![0u8; 64];
        rand::thread_rng().fill_bytes(&mut data);
        let sha1 = hex::encode(sha1::Sha1::digest(&data));
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(data).file_name(name.to_owned()),
        );
        let resp = self
            .req(reqwest::Method::POST, "/file/upload")
            .header("accept", "application/json")
            .multipart(form)
            .send()
            .await?;
        ensure!(resp.status().is_success(), "upload: HTTP {}", resp.status());
        Ok(sha1)
    }
}

/// Times `samples` runs of `op` (each given its index); milliseconds, sorted.
async fn time<F, Fut>(samples: usize, mut op: F) -> Result<Vec<f64>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut took = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        op(i).await?;
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    Ok(took)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A database of its own for one size: a SQLite file, or a scratch database on the server.
async fn fresh_database(kind: &str, dir: &std::path::Path) -> Result<(String, Option<String>)> {
    if kind == "sqlite" {
        return Ok((format!("sqlite://{}/meta.db", dir.display()), None));
    }
    let (server, _) = kind.rsplit_once('/').context("database URL with a path")?;
    let name = format!("cv_scale_{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut admin = sqlx::AnyConnection::connect(kind).await?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    admin.close().await?;
    Ok((format!("{server}/{name}"), Some(name)))
}

async fn drop_database(kind: &str, name: &str) -> Result<()> {
    let mut admin = sqlx::AnyConnection::connect(kind).await?;
    let sql = if kind.starts_with("postgres") {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    } else {
        format!("DROP DATABASE IF EXISTS {name}")
    };
    admin.execute(sql.as_str()).await?;
    Ok(())
}

/// Writes `total` user files: `heavy` of them `user`'s, the rest over 1,000 other users, each
/// with a blob of its own. Values are generated here (hex, numbers): no input reaches the SQL.
async fn fill(db: &str, user: i64, heavy: u64, total: u64) -> Result<Duration> {
    let t = Instant::now();
    let mut conn = sqlx::AnyConnection::connect(db).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let others = 1000u64;
    let mut sql = String::from(
        "INSERT INTO users (username, password_hash, created_at, last_active_at) VALUES ",
    );
    for u in 0..others {
        if u > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("('bulk-{u}', 'x', {now}, {now})"));
    }
    conn.execute(sql.as_str()).await?;
    let ids: Vec<i64> = sqlx::query("SELECT id FROM users WHERE username LIKE 'bulk-%'")
        .fetch_all(&mut conn)
        .await?
        .iter()
        .map(|r| r.get::<i64, _>("id"))
        .collect();
    ensure!(ids.len() == others as usize, "bulk users missing");
    let mut i = 0u64;
    while i < total {
        let mut tx = conn.begin().await?;
        for _ in 0..STATEMENTS_PER_TX {
            if i >= total {
                break;
            }
            let end = (i + ROWS as u64).min(total);
            let mut blobs = String::from(
                "INSERT INTO blobs (sha1, size, store, location, refcount, created_at, quarantined) VALUES ",
            );
            let mut files = String::from(
                "INSERT INTO user_files (id, user_id, sha1, name, size, uploaded_at, updated_at) VALUES ",
            );
            for n in i..end {
                let sep = if n > i { ", " } else { "" };
                // Hex of the row number: valid, distinct, and apart from real (random) ones.
                let sha1 = format!("{:040x}", u128::from(n) | (0xb01c << 100));
                let at = now - 1_000 * (total - n) as i64;
                let owner = if n < heavy {
                    user
                } else {
                    ids[(n % others) as usize]
                };
                blobs.push_str(&format!(
                    "{sep}('{sha1}', 64, 'local', 'bulk/{sha1}', 1, {at}, 0)"
                ));
                files.push_str(&format!(
                    "{sep}('{:020x}', {owner}, '{sha1}', 'bulk-{n}.bin', 64, {at}, {at})",
                    u128::from(n) | (0xb01c << 64)
                ));
            }
            tx.execute(blobs.as_str()).await?;
            tx.execute(files.as_str()).await?;
            i = end;
        }
        tx.commit().await?;
    }
    if db.starts_with("postgres") {
        conn.execute("ANALYZE").await?;
    } else if db.starts_with("mysql") {
        conn.execute("ANALYZE TABLE users, blobs, user_files")
            .await?;
    }
    conn.close().await?;
    Ok(t.elapsed())
}

struct Point {
    size: u64,
    ops: Vec<(&'static str, Vec<f64>)>,
}

async fn measure(bin: &str, kind: &str, size: u64, samples: usize) -> Result<Point> {
    let dir = tempfile::tempdir()?;
    let (db, scratch) = fresh_database(kind, dir.path()).await?;
    let result = measure_in(bin, &db, dir.path(), size, samples).await;
    if let Some(name) = scratch {
        drop_database(kind, &name).await?;
    }
    result
}

async fn measure_in(
    bin: &str,
    db: &str,
    dir: &std::path::Path,
    size: u64,
    samples: usize,
) -> Result<Point> {
    let http = reqwest::Client::builder().build()?;
    // The user's real files: read, renamed, deleted; the donor's: claimed instantly.
    let (read, gone, claim) = {
        let server = start(bin, dir, db)?;
        let user = Api::signup(&http, &server.base, "heavy").await?;
        let donor = Api::signup(&http, &server.base, "donor").await?;
        let mut read = Vec::new();
        let mut gone = Vec::new();
        let mut claim = Vec::new();
        for i in 0..samples {
            read.push(user.upload_small(&format!("read-{i}.bin")).await?);
            gone.push(user.upload_small(&format!("gone-{i}.bin")).await?);
            claim.push(donor.upload_small(&format!("give-{i}.bin")).await?);
        }
        (read, gone, claim)
    };
    let user_id: i64 = {
        let mut conn = sqlx::AnyConnection::connect(db).await?;
        let id = sqlx::query("SELECT id FROM users WHERE username = 'heavy'")
            .fetch_one(&mut conn)
            .await?
            .get("id");
        conn.close().await?;
        id
    };
    let bulk = size.saturating_sub(3 * samples as u64);
    let took = fill(db, user_id, bulk / 10, bulk).await?;
    eprintln!("  {size} files: filled in {:.1} s", took.as_secs_f64());

    let server = start(bin, dir, db)?;
    let api = Api::signin(&http, &server.base, "heavy").await?;
    let get = |path: String| {
        let req = api.req(reqwest::Method::GET, &path);
        async move {
            let resp = req.send().await?;
            ensure!(resp.status().is_success(), "{path}: HTTP {}", resp.status());
            resp.bytes().await?;
            Ok(())
        }
    };
    let post = |path: String| {
        let req = api
            .req(reqwest::Method::POST, &path)
            .header("accept", "application/json");
        async move {
            json_ok(req.send().await?).await?;
            Ok(())
        }
    };
    // Warm the connection and the caches.
    for sha1 in read.iter().take(20) {
        get(format!("/file/meta?filehash={sha1}")).await?;
    }
    let mut ops = Vec::new();
    ops.push((
        "meta (/file/meta)",
        time(samples, |i| get(format!("/file/meta?filehash={}", read[i]))).await?,
    ));
    ops.push((
        "download 64 B (/file/download)",
        time(samples, |i| {
            get(format!("/file/download?filehash={}", read[i]))
        })
        .await?,
    ));
    ops.push((
        "rename (/file/update)",
        time(samples, |i| {
            post(format!(
                "/file/update?op=0&filehash={}&filename=renamed-{i}.bin",
                read[i]
            ))
        })
        .await?,
    ));
    ops.push((
        "delete (/file/delete)",
        time(samples, |i| {
            post(format!("/file/delete?filehash={}", gone[i]))
        })
        .await?,
    ));
    ops.push((
        "instant claim (/file/fastupload)",
        time(samples, |i| {
            post(format!(
                "/file/fastupload?filehash={}&filesize=64&filename=claimed-{i}.bin",
                claim[i]
            ))
        })
        .await?,
    ));
    // Part uploads of one REST upload, 256 KiB each.
    let mut content = vec![0u8; PART * samples];
    rand::thread_rng().fill_bytes(&mut content);
    let init = serde_json::json!({
        "filename": "parts.bin",
        "size": content.len(),
        "sha1": hex::encode(sha1::Sha1::digest(&content)),
        "chunk_size": PART,
    });
    let created = json_ok(
        api.req(reqwest::Method::POST, "/uploads")
            .json(&init)
            .send()
            .await?,
    )
    .await?;
    let upload = created["data"]["upload_id"]
        .as_str()
        .context("upload id")?
        .to_owned();
    ops.push((
        "part upload 256 KiB (PUT /uploads/…/parts/N)",
        time(samples, |i| {
            let req = api
                .req(
                    reqwest::Method::PUT,
                    &format!("/uploads/{upload}/parts/{}", i + 1),
                )
                .body(content[i * PART..(i + 1) * PART].to_vec());
            async move {
                json_ok(req.send().await?).await?;
                Ok(())
            }
        })
        .await?,
    ));
    // A page deep in the user's files: by cursor (the page's Link header), and by offset.
    let user_files = bulk / 10 + 2 * samples as u64;
    let deep = user_files.saturating_sub(200);
    let resp = api
        .req(
            reqwest::Method::GET,
            &format!("/api/files?sort=newest&limit=100&offset={deep}"),
        )
        .send()
        .await?;
    let next = resp
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.strip_prefix('<'))
        .and_then(|l| l.split_once('>'))
        .map(|(url, _)| url.to_owned())
        .ok_or_else(|| anyhow!("no Link to the next page at offset {deep}"))?;
    resp.bytes().await?;
    let listings = samples.min(100);
    ops.push((
        "list 100, deep, by cursor (/api/files?after=)",
        time(listings, |_| get(next.clone())).await?,
    ));
    ops.push((
        "list 100, deep, by offset (/file/query)",
        time(listings, |_| {
            post(format!("/file/query?limit=100&offset={deep}"))
        })
        .await?,
    ));
    drop(server);
    let log = tokio::fs::read_to_string(dir.join("server.log"))
        .await
        .unwrap_or_default();
    if log.contains("ERROR") {
        bail!("the server logged errors:\n{log}");
    }
    Ok(Point { size, ops })
}

/// Writes `n` expired sign-in tokens, `n` expired proof challenges and `n` expired upload
/// sessions (tus streams that never got bytes) for `user`, as a crowd of idle clients leaves
/// them, and `n` unreferenced blobs queued for deletion.
async fn fill_expired(db: &str, user: i64, n: u64) -> Result<()> {
    let mut conn = sqlx::AnyConnection::connect(db).await?;
    let mut i = 0u64;
    while i < n {
        let end = (i + ROWS as u64).min(n);
        let mut tokens = String::from(
            "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES ",
        );
        let mut challenges = String::from(
            "INSERT INTO proof_challenges (id, user_id, sha1, size, file_name, chunk_size, ranges, \
             expected, expires_at) VALUES ",
        );
        let mut gc = String::from("INSERT INTO blob_gc (store, location, created_at) VALUES ");
        let mut uploads = String::from(
            "INSERT INTO uploads (id, owner, file_name, created_at, expires_at, layout, \
             hash_state, metadata, concat) VALUES ",
        );
        for k in i..end {
            let sep = if k > i { ", " } else { "" };
            let at = 1_000 + k as i64;
            tokens.push_str(&format!("{sep}('{:064x}', {user}, {at}, {at})", k));
            challenges.push_str(&format!(
                "{sep}('sweep-{k}', {user}, '{:040x}', 1, 'x', 0, '', '', {at})",
                k
            ));
            uploads.push_str(&format!(
                "{sep}('{:032x}', {user}, 'idle.bin', {at}, {at}, 'stream', '', '', '')",
                k
            ));
            // A local store's key whose file is long gone (its deletion is idempotent).
            gc.push_str(&format!(
                "{sep}('local', '00/00/{:040x}-{:016x}', {at})",
                k, k
            ));
        }
        let mut tx = conn.begin().await?;
        tx.execute(tokens.as_str()).await?;
        tx.execute(challenges.as_str()).await?;
        tx.execute(uploads.as_str()).await?;
        tx.execute(gc.as_str()).await?;
        tx.commit().await?;
        i = end;
    }
    conn.close().await?;
    Ok(())
}

async fn expired_left(db: &str) -> Result<i64> {
    let mut conn = sqlx::AnyConnection::connect(db).await?;
    let mut left = 0;
    for (table, cond) in [
        ("tokens", "expires_at < 1000000"),
        ("proof_challenges", "expires_at < 1000000"),
        ("uploads", "expires_at < 1000000"),
        ("blob_gc", "created_at < 1000000"),
    ] {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table} WHERE {cond}"))
            .fetch_one(&mut conn)
            .await?;
        left += row.get::<i64, _>("n");
    }
    conn.close().await?;
    Ok(left)
}

/// Requests while the sweeper clears `n` expired tokens, challenges and sessions, against the
/// same requests once it is done: the p99 during the sweep must stay under `max_ratio` × idle.
async fn sweep(bin: &str, kind: &str, n: u64, samples: usize, max_ratio: f64) -> Result<()> {
    let (dir, control_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (db, scratch) = fresh_database(kind, dir.path()).await?;
    let result = match fresh_database(kind, control_dir.path()).await {
        Ok((control_db, control_scratch)) => {
            let swept = (db.as_str(), dir.path());
            let control = (control_db.as_str(), control_dir.path());
            let result = sweep_in(bin, swept, control, n, samples, max_ratio).await;
            if let Some(name) = control_scratch {
                drop_database(kind, &name).await?;
            }
            result
        }
        Err(e) => Err(e),
    };
    if let Some(name) = scratch {
        drop_database(kind, &name).await?;
    }
    result
}

/// A server on `db` whose user "sweeper" holds 50 small files; their SHA1s.
async fn seeded(
    http: &reqwest::Client,
    bin: &str,
    db: &str,
    dir: &std::path::Path,
) -> Result<Vec<String>> {
    let server = start(bin, dir, db)?;
    let user = Api::signup(http, &server.base, "sweeper").await?;
    let mut files = Vec::new();
    for i in 0..50 {
        files.push(user.upload_small(&format!("f-{i}.bin")).await?);
    }
    Ok(files)
}

/// The swept server and its control: the same user and files, the same requests.
struct Side {
    api: Api,
    files: Vec<String>,
    during: Vec<f64>,
    after: Vec<f64>,
}

impl Side {
    /// Request `i` (a meta read or a rename, alternating), timed into `during` or `after`.
    async fn request(&mut self, i: usize, sweeping: bool) -> Result<()> {
        let sha1 = &self.files[i % self.files.len()];
        // Meta reads and renames by twos, so each comes first to either server as often.
        let req = if (i / 2).is_multiple_of(2) {
            self.api
                .req(reqwest::Method::GET, &format!("/file/meta?filehash={sha1}"))
        } else {
            self.api.req(
                reqwest::Method::POST,
                &format!("/file/update?op=0&filehash={sha1}&filename=n-{i}.bin"),
            )
        };
        let t = Instant::now();
        json_ok(req.header("accept", "application/json").send().await?).await?;
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if sweeping {
            &mut self.during
        } else {
            &mut self.after
        }
        .push(took);
        Ok(())
    }
}

/// Request `i` to both servers, which of them first alternating: what the machine does meanwhile
/// (other tenants, the client itself) falls on both alike.
async fn both(swept: &mut Side, ctl: &mut Side, i: usize, sweeping: bool) -> Result<()> {
    if i.is_multiple_of(2) {
        swept.request(i, sweeping).await?;
        ctl.request(i, sweeping).await
    } else {
        ctl.request(i, sweeping).await?;
        swept.request(i, sweeping).await
    }
}

fn p99(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.99)
}

async fn sweep_in(
    bin: &str,
    (db, dir): (&str, &std::path::Path),
    (control_db, control_dir): (&str, &std::path::Path),
    n: u64,
    samples: usize,
    max_ratio: f64,
) -> Result<()> {
    let http = reqwest::Client::builder().build()?;
    let files = seeded(&http, bin, db, dir).await?;
    let control_files = seeded(&http, bin, control_db, control_dir).await?;
    let user: i64 = {
        let mut conn = sqlx::AnyConnection::connect(db).await?;
        let id = sqlx::query("SELECT id FROM users WHERE username = 'sweeper'")
            .fetch_one(&mut conn)
            .await?
            .get("id");
        conn.close().await?;
        id
    };
    fill_expired(db, user, n).await?;
    // The sweeper's first round starts with the server. The control has nothing to sweep.
    let server = start(bin, dir, db)?;
    let control = start(bin, control_dir, control_db)?;
    let side = |api, files| Side {
        api,
        files,
        during: Vec::new(),
        after: Vec::new(),
    };
    let mut swept = side(Api::signin(&http, &server.base, "sweeper").await?, files);
    let mut ctl = side(
        Api::signin(&http, &control.base, "sweeper").await?,
        control_files,
    );
    let started = Instant::now();
    let mut i = 0;
    loop {
        for _ in 0..100 {
            both(&mut swept, &mut ctl, i, true).await?;
            i += 1;
        }
        if expired_left(db).await? == 0 {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the sweep did not finish in 10 minutes"
        );
    }
    let swept_in = started.elapsed();
    let during = i;
    for _ in 0..during.max(samples) {
        both(&mut swept, &mut ctl, i, false).await?;
        i += 1;
    }
    let ratio = p99(&swept.during) / p99(&ctl.during);
    println!(
        "sweep of {n} expired tokens, challenges, sessions and queued blobs each: {:.1} s; {during} \
         requests to each server during it: p99 {:.2} ms, the control's {:.2} ms: ratio {ratio:.2} \
         (limit {max_ratio}); afterwards p99 {:.2} ms, the control's {:.2} ms",
        swept_in.as_secs_f64(),
        p99(&swept.during),
        p99(&ctl.during),
        p99(&swept.after),
        p99(&ctl.after),
    );
    drop((server, control));
    for dir in [dir, control_dir] {
        let log = tokio::fs::read_to_string(dir.join("server.log"))
            .await
            .unwrap_or_default();
        ensure!(!log.contains("ERROR"), "the server logged errors:\n{log}");
    }
    ensure!(
        ratio < max_ratio,
        "requests during the sweep: p99 {:.2} ms, {ratio:.2}× the control's {:.2} ms",
        p99(&swept.during),
        p99(&ctl.during)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    sqlx::any::install_default_drivers();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: scale BIN --db sqlite|URL [--sizes 1000,100000] [--samples 200]";
    let bin = args.get(1).context(usage)?;
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let kind = flag("--db").unwrap_or_else(|| "sqlite".to_owned());
    let sizes: Vec<u64> = flag("--sizes")
        .unwrap_or_else(|| "1000,100000,1000000".to_owned())
        .split(',')
        .map(|s| s.parse().context("--sizes"))
        .collect::<Result<_>>()?;
    let samples: usize = flag("--samples").map_or(Ok(200), |s| s.parse())?;
    if let Some(n) = flag("--sweep") {
        let max_ratio: f64 = flag("--max-ratio").map_or(Ok(2.0), |s| s.parse())?;
        return sweep(
            bin,
            &kind,
            n.parse().context("--sweep")?,
            samples,
            max_ratio,
        )
        .await;
    }
    let label = kind.split(':').next().unwrap_or("sqlite");
    let mut points = Vec::new();
    for &size in &sizes {
        points.push(measure(bin, &kind, size, samples).await?);
    }
    println!(
        "\n{label}: p50 / p99 in ms ({samples} samples each; the user holds a tenth of the files)"
    );
    let mut head = String::from("| operation |");
    for p in &points {
        head.push_str(&format!(" {} files |", p.size));
    }
    head.push_str(&format!(
        " p50 at {} / at {} |",
        points.last().map_or(0, |p| p.size),
        points[0].size
    ));
    println!("{head}");
    println!("|---|{}---:|", "---:|".repeat(points.len()));
    for (k, (op, _)) in points[0].ops.iter().enumerate() {
        let mut row = format!("| {op} |");
        for p in &points {
            let t = &p.ops[k].1;
            row.push_str(&format!(
                " {:.2} / {:.2} |",
                percentile(t, 0.5),
                percentile(t, 0.99)
            ));
        }
        let first = percentile(&points[0].ops[k].1, 0.5);
        let last = percentile(&points.last().unwrap().ops[k].1, 0.5);
        row.push_str(&format!(" {:.2}× |", last / first));
        println!("{row}");
    }
    Ok(())
}
