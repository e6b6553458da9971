//! Query-plan checks: every statement a store ran during its conformance suite (recorded by
//! `DbOptions::record_statements`) is explained by the database it ran on, and must find its
//! rows through an index: no scan of a whole table, no sort of everything a condition matched.
//! A new query that would grow with the data fails here on the first run, whichever database
//! it would scan on.
//!
//! The planners are told to prefer an index wherever one can serve (PostgreSQL
//! `enable_seqscan = off`, MariaDB `max_seeks_for_key = 1`; SQLite's planner does so without
//! statistics), so that the suite's small tables show the plan a large one gets, and a scan
//! that remains means no index fits; and one user gets 20,000 files first, so a sort of a
//! user's files is a large sort to every planner.

use sqlx::{Connection, Executor, Row};

/// Statements allowed to read more than an index search yields, each with why.
const ALLOWED: &[(&str, &str)] = &[
    // Name search: a LIKE '%text%' no B-tree index can serve; it reads the user's names in the
    // listing's index order (and stops at a page with LIMIT).
    ("LIKE ? ESCAPE", "substring search of one user's names"),
    // Every open upload of one user, all returned: at most `--max-uploads-per-user` rows (the
    // per-user limit enforced when one is opened), so reading and ordering them all is bounded.
    (
        "WHERE owner = ? AND file_id IS NULL ORDER BY created_at, id",
        "a user's open uploads, capped per user",
    ),
];

/// Pool options that record every statement run.
pub fn recording() -> chunkvault_engine::db::DbOptions {
    let mut options = chunkvault_engine::db::DbOptions::default();
    options.record_statements = true;
    options
}

/// Explains each of `statements` (with `?` placeholders) on the database at `url`; panics with
/// every plan that scans or sorts, and with the statements it could not explain.
pub async fn check(url: &str, statements: &[String]) {
    assert!(
        statements.len() >= 10,
        "only {} statements recorded: was recording on?",
        statements.len()
    );
    let dialect = url.split(':').next().unwrap().to_owned();
    crowd(url, &dialect).await;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    match dialect.as_str() {
        "postgres" => {
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        "mysql" => {
            sqlx::query("SET SESSION max_seeks_for_key = 1")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        _ => {}
    }
    let mut bad = Vec::new();
    let mut checked = 0;
    for sql in statements {
        let head = sql.trim_start().to_ascii_uppercase();
        if !(head.starts_with("SELECT") || head.starts_with("UPDATE") || head.starts_with("DELETE"))
            || head == "SELECT 1"
        {
            continue; // inserts find no rows; nothing else reads
        }
        if ALLOWED.iter().any(|(marker, _)| sql.contains(marker)) {
            continue;
        }
        checked += 1;
        let literal = literalize(sql);
        let limited = head.contains(" LIMIT ");
        let problems = match dialect.as_str() {
            "sqlite" => sqlite_plan(&mut conn, &literal, limited).await,
            "postgres" => postgres_plan(&mut conn, &literal, limited).await,
            "mysql" => mysql_plan(&mut conn, &literal, limited).await,
            other => panic!("no plan check for {other}"),
        };
        if !problems.is_empty() {
            bad.push(format!("{sql}\n    {}", problems.join("\n    ")));
        }
    }
    conn.close().await.unwrap();
    assert!(checked >= 10, "only {checked} statements explained");
    assert!(
        bad.is_empty(),
        "{} of {checked} statements scan or sort on {dialect}:\n{}",
        bad.len(),
        bad.join("\n")
    );
    eprintln!("{dialect}: {checked} statements explained, each an index search");
}

/// The user who has 20,000 files, as a literal.
const CROWD: &str = "'999999'";

/// A user with 20,000 files and 5,000 open uploads (rows written straight in, foreign keys not checked), so that the
/// planners see a table the size of a real one where the suite left a handful of rows: a sort
/// of one user's files then shows as one. SQLite's statistics are then dropped (without them
/// its planner takes any index that serves; with the small tables' statistics it may prefer a
/// scan that is indeed cheap on five rows).
async fn crowd(url: &str, dialect: &str) {
    let rows = 20_000;
    // Times, sizes and names on both sides of the literal every `?` becomes (999999), so a
    // keyset condition in either direction matches thousands of the crowd's files.
    let select = |n: &str| {
        let half = format!("{n} % 2 = 0");
        let name = match dialect {
            "mysql" => format!("CONCAT(IF({half}, 'a-', '0-'), {n}, '.bin')"),
            _ => format!("(CASE WHEN {half} THEN 'a-' ELSE '0-' END) || {n} || '.bin'"),
        };
        format!(
            "INSERT INTO user_files (id, user_id, sha1, name, size, uploaded_at, updated_at) \
             SELECT {id}, {CROWD}, {sha1}, {name}, {n} + 990000, {n} + 990000, {n} FROM ",
            id = hexed(dialect, n, 20),
            sha1 = hexed(dialect, n, 40),
        )
    };
    // And 5,000 open upload sessions (a per-user listing sorts them by age).
    let sessions = |n: &str| {
        format!(
            "INSERT INTO uploads (id, owner, file_name, created_at, expires_at, layout, hash_state, \
             metadata, concat) \
             SELECT {id}, {CROWD}, 'open.bin', {n} + 995000, {n} + 995000, 'stream', '', '', '' FROM ",
            id = hexed(dialect, n, 32),
        )
    };
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let statements: Vec<String> = match dialect {
        "sqlite" => vec![
            "PRAGMA foreign_keys = OFF".into(),
            format!(
                "{} (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) SELECT n FROM s)",
                select("n")
            ),
            format!(
                "{} (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5000) SELECT n FROM s)",
                sessions("n")
            ),
            "ANALYZE".into(),
            "DELETE FROM sqlite_stat1".into(),
        ],
        "postgres" => vec![
            "SET session_replication_role = replica".into(),
            format!("{} generate_series(1, {rows}) AS n", select("n")),
            format!("{} generate_series(1, 5000) AS n", sessions("n")),
            "ANALYZE".into(),
        ],
        "mysql" => vec![
            "SET FOREIGN_KEY_CHECKS = 0".into(),
            format!("{} seq_1_to_{rows}", select("seq")),
            format!("{} seq_1_to_5000", sessions("seq")),
            "ANALYZE TABLE user_files, uploads".into(),
        ],
        other => panic!("no crowd for {other}"),
    };
    for sql in statements {
        conn.execute(sql.as_str())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.close().await.unwrap();
}

/// SQL for `n` as `width` lower-case hex digits, zero-padded.
fn hexed(dialect: &str, n: &str, width: usize) -> String {
    match dialect {
        "sqlite" => format!("printf('%0{width}x', {n})"),
        "postgres" => format!("lpad(to_hex({n}), {width}, '0')"),
        _ => format!("LPAD(LOWER(HEX({n})), {width}, '0')"),
    }
}

/// The statement with each `?` replaced by a literal: a number after LIMIT or OFFSET, else
/// the crowd's user id as a string, which every one of the three databases reads as whatever
/// the column is (so an index on a text or an integer column stays usable), and which makes
/// a condition on the user the crowd's 20,000 files.
fn literalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    for (i, part) in sql.split('?').enumerate() {
        if i > 0 {
            let before = out.trim_end().to_ascii_uppercase();
            if before.ends_with("LIMIT") || before.ends_with("OFFSET") {
                out.push('1');
            } else {
                out.push_str(CROWD);
            }
        }
        out.push_str(part);
    }
    out
}

/// A deep OFFSET's page is found in a covering index, then its few rows are read by id and
/// sorted: that sort handles one page, not the matches.
fn sorts_one_page(sql: &str) -> bool {
    sql.contains("page_id")
}

/// The plan's rows, or the problem to report when the database could not explain `sql`.
async fn explain(
    conn: &mut sqlx::AnyConnection,
    how: &str,
    sql: &str,
) -> Result<Vec<sqlx::any::AnyRow>, Vec<String>> {
    sqlx::query(&format!("{how} {sql}"))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| vec![format!("could not explain: {e}")])
}

async fn sqlite_plan(conn: &mut sqlx::AnyConnection, sql: &str, limited: bool) -> Vec<String> {
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect();
    let rows = match explain(conn, "EXPLAIN QUERY PLAN", sql).await {
        Ok(rows) => rows,
        Err(problem) => return problem,
    };
    let mut problems = Vec::new();
    for r in rows {
        let detail: String = r.get("detail");
        let words: Vec<&str> = detail.split_whitespace().collect();
        let base_table = words.get(1).is_some_and(|t| tables.iter().any(|n| n == t));
        match words.first().copied() {
            Some("SCAN") if base_table && words.len() == 2 => {
                problems.push(format!("full table scan: {detail}"))
            }
            Some("SCAN") if base_table && !limited => {
                problems.push(format!("whole index read without LIMIT: {detail}"))
            }
            _ if detail.contains("TEMP B-TREE") && !sorts_one_page(sql) => {
                problems.push(format!("sort: {detail}"))
            }
            _ => {}
        }
    }
    problems
}

async fn postgres_plan(conn: &mut sqlx::AnyConnection, sql: &str, limited: bool) -> Vec<String> {
    let rows = match explain(conn, "EXPLAIN", sql).await {
        Ok(rows) => rows,
        Err(problem) => return problem,
    };
    // The text format: a node per line with "(cost=", its conditions on the lines below.
    let lines: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let mut problems = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((node, _)) = line.split_once("  (cost=") else {
            continue;
        };
        let node = node.trim().trim_start_matches("->").trim();
        let details = lines[i + 1..]
            .iter()
            .take_while(|l| !l.contains("(cost="))
            .collect::<Vec<_>>();
        if node.starts_with("Seq Scan") {
            problems.push(node.to_owned());
        } else if (node.starts_with("Index Scan") || node.starts_with("Index Only Scan"))
            && !details.iter().any(|d| d.contains("Index Cond:"))
            && !limited
        {
            problems.push(format!("{node}: the whole index, without LIMIT"));
        } else if (node.starts_with("Sort") || node.starts_with("Incremental Sort"))
            && !sorts_one_page(sql)
        {
            problems.push(format!(
                "{node} {}",
                details.first().map_or("", |d| d.trim())
            ));
        }
    }
    problems
}

async fn mysql_plan(conn: &mut sqlx::AnyConnection, sql: &str, limited: bool) -> Vec<String> {
    let rows = match explain(conn, "EXPLAIN", sql).await {
        Ok(rows) => rows,
        Err(problem) => return problem,
    };
    let mut problems = Vec::new();
    for r in rows {
        let col = |name: &str| -> String {
            r.try_get::<Option<String>, _>(name)
                .ok()
                .flatten()
                .or_else(|| {
                    r.try_get::<Option<Vec<u8>>, _>(name)
                        .ok()
                        .flatten()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                })
                .unwrap_or_default()
        };
        let (table, access, extra) = (col("table"), col("type"), col("Extra"));
        let estimate = r
            .try_get::<Option<i64>, _>("rows")
            .ok()
            .flatten()
            .or_else(|| col("rows").parse().ok())
            .unwrap_or(i64::MAX);
        let base_table = !table.is_empty() && !table.starts_with('<');
        if base_table && access == "ALL" {
            problems.push(format!("full table scan of {table} ({extra})"));
        } else if base_table && access == "index" && !limited {
            problems.push(format!("whole index of {table} read without LIMIT"));
        }
        // A sort after an equality lookup that finds a few rows (one user's copies of one
        // content) is no sort of everything; the crowd makes a sort of a user's files large.
        let few = matches!(access.as_str(), "ref" | "eq_ref" | "const") && estimate <= 10;
        if (extra.contains("Using filesort") || extra.contains("Using temporary"))
            && !sorts_one_page(sql)
            && !few
        {
            problems.push(format!(
                "sort of {table} ({access} on {}, ~{estimate} rows): {extra}",
                col("key")
            ));
        }
    }
    problems
}
