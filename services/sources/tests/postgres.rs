//! Restricted-data sources against a real PostgreSQL server: `FLYWHEEL_TEST_POSTGRES` (set by
//! `scripts/with-postgres.sh`); skipped with a printed reason without it, unless
//! `FLYWHEEL_REQUIRE_POSTGRES=1`. Each test creates tables of its own, with unique names, and
//! drops them at its end.

mod common;

use std::time::{Duration, Instant};

use common::*;
use flywheel_sources::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, SourceError, Sources, SourcesConfig,
};
use futures::StreamExt;

/// A server, a source `crm` of tenant `acme` on it, and a session of the test's own.
struct Fixture {
    url: String,
    password: String,
    sources: Sources,
    admin: tokio_postgres::Client,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(statement_timeout: Duration) -> Option<Self> {
        let url = postgres_url()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let sources = crm(dir.path(), &url, statement_timeout, DEFAULT_CONNECT_TIMEOUT);
        Some(Self {
            password: password(&url),
            admin: admin(&url).await,
            url,
            sources,
            _dir: dir,
        })
    }

    /// A table of the test's own, created by `columns_and_rows` (`{t}` is its name).
    async fn table(&self, sql: &str) -> String {
        let name = unique("fw");
        self.admin
            .batch_execute(&sql.replace("{t}", &name))
            .await
            .expect("create test table");
        name
    }

    async fn drop_table(&self, name: &str) {
        self.admin
            .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .await
            .expect("drop test table");
    }

    async fn check(
        &self,
        q: &flywheel_schemas::RestrictedQuery,
    ) -> Result<flywheel_sources::QueryShape, SourceError> {
        self.sources.get(&tenant("acme"), "crm")?.check(q).await
    }

    /// The error of `check`, with the password nowhere in it.
    async fn check_err(&self, q: &flywheel_schemas::RestrictedQuery) -> SourceError {
        let err = self.check(q).await.expect_err("check must fail");
        assert_hides(&err, &[&self.password, &self.url]);
        err
    }

    /// The error of a fetch (when it starts or while reading), with the password nowhere in it.
    async fn fetch_err(&self, q: &flywheel_schemas::RestrictedQuery) -> SourceError {
        let err = fetch_all(&self.sources, q)
            .await
            .expect_err("fetch must fail");
        assert_hides(&err, &[&self.password, &self.url]);
        err
    }
}

#[tokio::test]
async fn postgres_check_and_fetch_label_and_features_in_order() {
    let Some(pg) = Fixture::new(DEFAULT_STATEMENT_TIMEOUT).await else {
        return;
    };
    let t = pg
        .table(
            "CREATE TABLE {t} (id int8 PRIMARY KEY, name text, age int4, score numeric(15,3), \
             weight float4, ok bool, small int2);
             INSERT INTO {t} VALUES
               (3, 'cat', 7, 12.345, 1.5, true, 1),
               (1, 'dog', 30, -0.001, 2.25, false, 2),
               (2, NULL, 41, 1e9, 0, NULL, 3);",
        )
        .await;
    let q = query(
        &format!("SELECT id, name, age, score, weight, small, ok FROM {t} ORDER BY id"),
        Some("name"),
        &["age", "score", "weight", "id", "small"],
    );
    let shape = pg.check(&q).await.expect("check");
    assert_eq!(shape.label, Some(1));
    assert_eq!(shape.features, [2, 3, 4, 0, 5]);
    assert!(shape.ordered);
    let types: Vec<_> = shape.columns.iter().map(|c| c.type_name.as_str()).collect();
    assert_eq!(
        types,
        ["int8", "text", "int4", "numeric", "float4", "int2", "bool"]
    );

    let rows = fetch_all(&pg.sources, &q).await.expect("fetch");
    assert_eq!(
        rows,
        [
            (0, Some("dog".into()), vec![30.0, -0.001, 2.25, 1.0, 2.0]),
            (1, None, vec![41.0, 1e9, 0.0, 2.0, 3.0]),
            (2, Some("cat".into()), vec![7.0, 12.345, 1.5, 3.0, 1.0]),
        ]
    );

    // integers and booleans as labels, a label alone, features alone
    let q = query(
        &format!("SELECT id, ok FROM {t} ORDER BY id DESC"),
        Some("ok"),
        &[],
    );
    let rows = fetch_all(&pg.sources, &q).await.expect("fetch bool labels");
    assert_eq!(
        rows,
        [
            (0, Some("true".into()), vec![]),
            (1, None, vec![]),
            (2, Some("false".into()), vec![])
        ]
    );
    let q = query(
        &format!("SELECT age FROM {t} WHERE id > 1 ORDER BY id"),
        Some("age"),
        &["age"],
    );
    let rows = fetch_all(&pg.sources, &q).await.expect("fetch int labels");
    assert_eq!(
        rows,
        [
            (0, Some("41".into()), vec![41.0]),
            (1, Some("7".into()), vec![7.0])
        ]
    );

    // no ORDER BY of its own: flagged
    let q = query(
        &format!("SELECT * FROM (SELECT id FROM {t} ORDER BY id) s"),
        None,
        &["id"],
    );
    assert!(!pg.check(&q).await.expect("check unordered").ordered);
    pg.drop_table(&t).await;
}

#[tokio::test]
async fn postgres_fetch_of_100k_rows_streams() {
    let Some(pg) = Fixture::new(DEFAULT_STATEMENT_TIMEOUT).await else {
        return;
    };
    const N: usize = 100_000;
    let t = pg
        .table(&format!(
            "CREATE TABLE {{t}} (i int4 PRIMARY KEY);
             INSERT INTO {{t}} SELECT g FROM generate_series(0, {}) g;
             ANALYZE {{t}};",
            N - 1
        ))
        .await;
    // clock_timestamp() is evaluated as each row is produced: rows produced only once the
    // reader asks for them carry later times.
    let q = query(
        &format!(
            "SELECT i, extract(epoch FROM clock_timestamp())::float8 AS at FROM {t} ORDER BY i"
        ),
        None,
        &["i", "at"],
    );
    let source = pg.sources.get(&tenant("acme"), "crm").unwrap();
    let mut rows = source.fetch(&q).await.expect("fetch");
    let first = rows.next().await.expect("a first row").expect("first row");
    assert_eq!(first.index, 0);
    let pause = Duration::from_millis(400);
    tokio::time::sleep(pause).await;
    let mut count = 1;
    let mut last = first.clone();
    while let Some(row) = rows.next().await {
        let row = row.expect("row");
        assert_eq!(
            row.index, count as u64,
            "rows come in order, numbered from 0"
        );
        assert_eq!(row.features[0], count as f64, "ORDER BY i");
        count += 1;
        last = row;
    }
    assert_eq!(count, N);
    let produced_over = last.features[1] - first.features[1];
    assert!(
        produced_over >= pause.as_secs_f64() * 0.9,
        "the last row was produced {produced_over:.3}s after the first: the rows were not \
         read from the server as the reader went (it paused {pause:?} after the first)"
    );
    drop(rows);
    pg.drop_table(&t).await;
}

#[tokio::test]
async fn postgres_sql_the_server_rejects_carries_its_message() {
    let Some(pg) = Fixture::new(DEFAULT_STATEMENT_TIMEOUT).await else {
        return;
    };
    let missing = unique("fw_missing");
    let q = query(&format!("SELECT a FROM {missing}"), None, &["a"]);
    for err in [pg.check_err(&q).await, pg.fetch_err(&q).await] {
        assert!(matches!(err, SourceError::Rejected { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "source crm rejected sql: relation \"{missing}\" does not exist (at character 15 of the sql)"
            )),
            "{msg}"
        );
        assert!(err.is_query_error() && !err.is_retriable());
    }
    let q = query("SELEC 1 AS a", None, &["a"]);
    let msg = pg.check_err(&q).await.to_string();
    assert!(msg.contains("syntax error at or near \"SELEC\""), "{msg}");
    // two statements cannot be prepared as one
    let q = query("SELECT 1 AS a; SELECT 2 AS a", None, &["a"]);
    let msg = pg.check_err(&q).await.to_string();
    assert!(
        msg.contains("cannot insert multiple commands into a prepared statement"),
        "{msg}"
    );
    // parameters cannot be given
    let q = query("SELECT $1::int4 AS a", None, &["a"]);
    let err = pg.check_err(&q).await;
    assert!(matches!(err, SourceError::InvalidQuery { .. }), "{err:?}");
    assert!(err.to_string().contains("sql has 1 parameter(s)"), "{err}");
    // not a query
    let q = query("SET search_path = public", None, &["a"]);
    let msg = pg.check_err(&q).await.to_string();
    assert!(
        msg.contains("only a query (SELECT, VALUES, TABLE or WITH ... SELECT) is accepted"),
        "{msg}"
    );
}

#[tokio::test]
async fn postgres_missing_columns_and_bad_types_name_the_field() {
    let Some(pg) = Fixture::new(DEFAULT_STATEMENT_TIMEOUT).await else {
        return;
    };
    let t = pg
        .table("CREATE TABLE {t} (id int8, name text, seen timestamptz, score float8)")
        .await;
    let sql = format!("SELECT id, name, seen, score FROM {t} ORDER BY id");
    let cases = [
        (
            query(&sql, Some("nom"), &["id"]),
            "source crm: label_column \"nom\" is not a result column of the sql (it returns \"id\" (int8), \"name\" (text), \"seen\" (timestamptz), \"score\" (float8))",
        ),
        (
            query(&sql, Some("name"), &["id", "scor"]),
            "source crm: feature_columns[1] \"scor\" is not a result column",
        ),
        (
            query(&sql, Some("name"), &["score", "name"]),
            "source crm: feature_columns[1] \"name\" has type text; a feature must be int2, int4, int8, float4, float8 or numeric (cast it in the sql)",
        ),
        (
            query(&sql, Some("seen"), &["id"]),
            "source crm: label_column \"seen\" has type timestamptz; a label must be",
        ),
        (
            query(&sql, Some("score"), &[]),
            "source crm: label_column \"score\" has type float8",
        ),
    ];
    for (q, expected) in cases {
        for err in [pg.check_err(&q).await, pg.fetch_err(&q).await] {
            assert!(matches!(err, SourceError::Column { .. }), "{err:?}");
            assert!(err.to_string().starts_with(expected), "{err}");
        }
    }
    pg.drop_table(&t).await;
}

#[tokio::test]
async fn postgres_statements_that_write_are_refused() {
    let Some(pg) = Fixture::new(DEFAULT_STATEMENT_TIMEOUT).await else {
        return;
    };
    let t = pg
        .table(
            "CREATE TABLE {t} (id int8, v float8); INSERT INTO {t} VALUES (1, 1.0), (2, 2.0);
             CREATE SEQUENCE {t}_seq;",
        )
        .await;
    let delete = query(&format!("DELETE FROM {t} RETURNING id"), None, &["id"]);
    let err = pg.check_err(&delete).await;
    assert!(matches!(err, SourceError::NotReadOnly { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "sql is not read-only (Delete on {t}); only queries that read are accepted"
        )),
        "{err}"
    );
    // fetch does not plan: the READ ONLY transaction makes the server refuse it
    let err = pg.fetch_err(&delete).await;
    assert!(matches!(err, SourceError::NotReadOnly { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("the server refused it: cannot execute DELETE in a read-only transaction"),
        "{err}"
    );
    let cte = query(
        &format!("WITH d AS (UPDATE {t} SET v = 0 RETURNING id, v) SELECT id, v FROM d"),
        None,
        &["v"],
    );
    let err = pg.check_err(&cte).await;
    assert!(
        err.to_string().contains(&format!("(Update on {t})")),
        "{err}"
    );
    let err = pg.fetch_err(&cte).await;
    assert!(matches!(err, SourceError::NotReadOnly { .. }), "{err:?}");
    // a function that writes passes the plan, and the server refuses it when it runs
    let nextval = query(
        &format!("SELECT nextval('{t}_seq')::int8 AS n"),
        None,
        &["n"],
    );
    pg.check(&nextval).await.expect("nextval plans like a read");
    let err = pg.fetch_err(&nextval).await;
    assert!(matches!(err, SourceError::NotReadOnly { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("cannot execute nextval() in a read-only transaction"),
        "{err}"
    );

    let count: i64 = pg
        .admin
        .query_one(&format!("SELECT count(*) FROM {t} WHERE v > 0"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "nothing was deleted or updated");
    pg.drop_table(&t).await;
    pg.admin
        .batch_execute(&format!("DROP SEQUENCE {t}_seq"))
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_statement_timeout_cancels_a_slow_query() {
    let Some(pg) = Fixture::new(Duration::from_millis(300)).await else {
        return;
    };
    let q = query("SELECT 1::float8 AS x FROM pg_sleep(5)", None, &["x"]);
    pg.check(&q).await.expect("planning does not sleep");
    let started = Instant::now();
    let err = pg.fetch_err(&q).await;
    assert!(
        matches!(err, SourceError::StatementTimeout { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "source crm: the statement ran longer than the statement timeout (300ms) and was canceled"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// The statement timeout bounds each batch of rows the server produces, not the whole
/// read: neither a slow reader nor a result that takes longer than the timeout in all trips
/// it, as long as each batch of `FETCH_ROWS` is quicker.
#[tokio::test]
async fn postgres_statement_timeout_bounds_each_batch_not_the_whole_read() {
    let timeout = Duration::from_secs(2);
    let Some(pg) = Fixture::new(timeout).await else {
        return;
    };
    // a pause of at least 1 ms every 4th row: about 0.3 s per batch, at least 2.5 s in all
    let q = query(
        "SELECT i, CASE WHEN i % 4 = 0 THEN pg_sleep(0.001)::text END AS pause \
         FROM generate_series(1, 10000) i",
        None,
        &["i"],
    );
    let source = pg.sources.get(&tenant("acme"), "crm").unwrap();
    let started = Instant::now();
    let mut rows = source.fetch(&q).await.expect("fetch");
    let mut count = 0;
    while let Some(row) = rows.next().await {
        row.expect("no batch takes as long as the statement timeout");
        count += 1;
        if count == 1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert_eq!(count, 10_000);
    assert!(started.elapsed() > timeout, "{:?}", started.elapsed());
}

#[tokio::test]
async fn postgres_row_conversion_errors_name_the_row_and_column_never_the_value() {
    let Some(pg) = Fixture::new(DEFAULT_STATEMENT_TIMEOUT).await else {
        return;
    };
    let t = pg
        .table(
            "CREATE TABLE {t} (id int8, name text, v float8, n numeric);
             INSERT INTO {t} VALUES (0, 'Alice Secret', 1, 1), (1, 'Bob', NULL, 2),
               (2, 'Carol', 'NaN', 3), (3, 'Dan', 4, 'NaN');",
        )
        .await;
    let at = |id: i64, feature: &str| {
        query(
            &format!("SELECT id, name, v, n FROM {t} WHERE id <= {id} ORDER BY id"),
            Some("name"),
            &["id", feature],
        )
    };
    let err = pg.fetch_err(&at(1, "v")).await;
    assert!(matches!(err, SourceError::Row { index: 1, .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("source crm: row 1: feature_columns[1] (\"v\") is NULL"),
        "{err}"
    );
    let err = pg
        .fetch_err(&query(
            &format!("SELECT id, name, v FROM {t} WHERE id <> 1 ORDER BY id"),
            None,
            &["v"],
        ))
        .await;
    assert!(
        err.to_string()
            .starts_with("source crm: row 1: feature_columns[0] (\"v\") is not a finite number"),
        "{err}"
    );
    let err = pg
        .fetch_err(&query(
            &format!("SELECT id, n FROM {t} ORDER BY id"),
            None,
            &["id", "n"],
        ))
        .await;
    assert!(
        err.to_string()
            .starts_with("source crm: row 3: feature_columns[1] (\"n\") is not a finite number"),
        "{err}"
    );
    // A failing cast quotes the value in the server's message: it is masked.
    let err = pg
        .fetch_err(&query(
            &format!("SELECT name::int4 AS x FROM {t} ORDER BY id"),
            None,
            &["x"],
        ))
        .await;
    assert!(matches!(err, SourceError::Execution { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "source crm: the statement failed while reading rows: invalid input syntax for type integer: \"…\" (sqlstate 22P02)"
    );
    assert_hides(&err, &["Alice", "Secret"]);
    pg.drop_table(&t).await;
}

#[tokio::test]
async fn postgres_wrong_password_is_an_authentication_error_without_passwords() {
    let Some(url) = postgres_url() else {
        return;
    };
    let good = password(&url);
    let mut wrong_url = url::Url::parse(&url).unwrap();
    let wrong = format!("wrong-{:08x}", rand::random::<u32>());
    wrong_url.set_password(Some(&wrong)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sources = crm(
        dir.path(),
        wrong_url.as_str(),
        DEFAULT_STATEMENT_TIMEOUT,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let q = query("SELECT 1 AS a", None, &["a"]);
    let source = sources.get(&tenant("acme"), "crm").unwrap();
    let err = source.check(&q).await.expect_err("wrong password");
    assert!(matches!(err, SourceError::Authentication { .. }), "{err:?}");
    let addr = format!(
        "{}:{}",
        wrong_url.host_str().unwrap(),
        wrong_url.port().unwrap()
    );
    assert_eq!(
        err.to_string(),
        format!(
            "source crm ({addr}) refused the credentials: password authentication failed for user \"flywheel\""
        )
    );
    assert!(!err.is_retriable() && !err.is_query_error());
    assert_hides(&err, &[&good, &wrong, wrong_url.as_str()]);
    let err = source.fetch(&q).await.expect_err("wrong password");
    assert!(matches!(err, SourceError::Authentication { .. }), "{err:?}");
    assert_hides(&err, &[&good, &wrong, wrong_url.as_str()]);
    // and a database that does not exist is refused by the server, retriably
    let mut no_db = url::Url::parse(&url).unwrap();
    no_db.set_path(&unique("/nodb"));
    let sources = crm(
        dir.path(),
        no_db.as_str(),
        DEFAULT_STATEMENT_TIMEOUT,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let err = sources
        .get(&tenant("acme"), "crm")
        .unwrap()
        .check(&q)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_hides(&err, &[&good]);
}

#[tokio::test]
async fn postgres_sources_belong_to_their_tenants() {
    let Some(url) = postgres_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = SourcesConfig::default();
    config.0.insert(
        "crm".into(),
        source_config(dir.path(), "crm", &url, &["acme"]),
    );
    config.0.insert(
        "shared".into(),
        source_config(dir.path(), "shared", &url, &["acme", "globex"]),
    );
    let sources = Sources::open(&config).unwrap();
    let q = |source: &str| flywheel_schemas::RestrictedQuery {
        source: source.into(),
        ..query("SELECT 1::int4 AS a", None, &["a"])
    };
    let acme = tenant("acme");
    let globex = tenant("globex");
    sources
        .get(&acme, "crm")
        .unwrap()
        .check(&q("crm"))
        .await
        .unwrap();
    sources
        .get(&globex, "shared")
        .unwrap()
        .check(&q("shared"))
        .await
        .unwrap();
    let theirs = sources.get(&globex, "crm").unwrap_err();
    let nobodys = sources.get(&globex, "hr").unwrap_err();
    assert!(
        matches!(theirs, SourceError::UnknownSource { .. }),
        "{theirs:?}"
    );
    assert_eq!(
        theirs.to_string(),
        "no source named \"crm\" for tenant globex"
    );
    assert_eq!(
        theirs.to_string().replace("crm", "X"),
        nobodys.to_string().replace("hr", "X"),
        "the same answer whether the source is another tenant's or nobody's"
    );
    assert_eq!(sources.names(&globex), ["shared"]);
    // a query naming another source than the one it is run against
    let err = sources
        .get(&globex, "shared")
        .unwrap()
        .check(&q("crm"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("source names source \"crm\", not this one"),
        "{err}"
    );
    // nothing shows the password
    let password = password(&url);
    let debug = format!(
        "{config:?} {sources:?} {:?}",
        sources.get(&acme, "crm").unwrap()
    );
    assert!(!debug.contains(&password), "{debug}");
    assert!(!debug.contains(&url), "{debug}");
}

#[tokio::test]
async fn postgres_url_from_an_environment_variable() {
    let Some(url) = postgres_url() else {
        return;
    };
    let mut config = SourcesConfig::default();
    config.0.insert(
        "crm".into(),
        flywheel_sources::SourceConfig::from_env(
            flywheel_sources::SourceKind::Postgres,
            &["acme"],
            "FLYWHEEL_TEST_POSTGRES",
        ),
    );
    let sources = Sources::open(&config).unwrap();
    let rows = fetch_all(
        &sources,
        &query(
            "VALUES (1::int4, 'a'), (2, 'b') ORDER BY 1",
            Some("column2"),
            &["column1"],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (0, Some("a".into()), vec![1.0]),
            (1, Some("b".into()), vec![2.0])
        ]
    );
    assert!(!format!("{sources:?}").contains(&password(&url)));
}
