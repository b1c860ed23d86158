//! The Postgres front end over real sockets: malformed messages close only
//! their connection; clients keep working; settings stay per connection;
//! DELETE over the extended protocol returns a tag and no rows; databases
//! are created, connected to (an unknown one refused at startup) and
//! dropped as PostgreSQL does.

use std::sync::Arc;
use std::time::Duration;

use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_sql::{Instance, PgHandlerRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::NoTls;

async fn server(dir: &std::path::Path) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    let engine = Engine::open(config).await.unwrap();
    let handler: PgHandlerRef = Arc::new(Instance::new(engine));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(quiver_servers::pg::serve(listener, handler, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

async fn client(addr: std::net::SocketAddr) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&format!("postgres://test@{addr}/quiver"), NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let healthy = client(addr).await;
    for garbage in [
        b"\x00\x00\x00\x08\x04\xd2\x16\x2fgarbage-after-ssl-request".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 64],
        // a startup packet announcing 2 GiB
        vec![0x7f, 0xff, 0xff, 0xff, 0x00, 0x03, 0x00, 0x00],
    ] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = socket.write_all(&garbage).await;
        let mut buf = vec![0u8; 1024];
        // The server answers with an error or closes; it must not hang forever.
        let read = tokio::time::timeout(Duration::from_secs(15), socket.read(&mut buf)).await;
        assert!(read.is_ok(), "server hung on garbage {garbage:?}");
    }
    // A message with a bogus type after a valid startup.
    let bad = client(addr).await;
    drop(bad);
    let row = healthy.query_one("SELECT 1::BIGINT", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    let fresh = client(addr).await;
    assert_eq!(
        fresh
            .query_one("SELECT 2::BIGINT", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_dml_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    c.batch_execute("CREATE TABLE x (id BIGINT PRIMARY KEY, label TEXT)")
        .await
        .unwrap();
    let n = c
        .execute(
            "INSERT INTO x VALUES ($1, $2), ($3, $4)",
            &[&1i64, &"a", &2i64, &"b"],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let deleted = c
        .execute("DELETE FROM x WHERE id = $1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let updated = c
        .execute("UPDATE x SET label = $1 WHERE id = $2", &[&"z", &2i64])
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let row = c
        .query_one("SELECT label FROM x WHERE id = $1", &[&2i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "z");
    let err = c
        .execute("INSERT INTO x VALUES ($1, $2)", &[&2i64, &"dup"])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23505");
    // The connection is still usable after the error.
    assert_eq!(c.query("SELECT id FROM x", &[]).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_cancels_a_long_query() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    c.batch_execute("SET statement_timeout = '50ms'")
        .await
        .unwrap();
    let err = c
        .simple_query("SELECT count(*) FROM generate_series(1, 2000000000) a")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    c.batch_execute("SET statement_timeout = 0").await.unwrap();
    assert_eq!(c.simple_query("SELECT 1").await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_running_query() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    let token = c.cancel_token();
    // A cancel request that arrives before the query runs is ignored (as in
    // PostgreSQL), and on a loaded machine planning can take longer than
    // any fixed delay: press "Ctrl-C" every 200 ms until the query ends.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canceller = {
        let done = done.clone();
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                token.cancel_query(NoTls).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        })
    };
    let started = std::time::Instant::now();
    let err = c
        .simple_query("SELECT count(*) FROM generate_series(1, 4000000000) a")
        .await
        .unwrap_err();
    done.store(true, std::sync::atomic::Ordering::Release);
    canceller.await.unwrap().unwrap();
    // The last cancel request may still be on its way to the session when
    // the query has already ended; let it land (and be ignored) before the
    // next statement, which must then run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(c.simple_query("SELECT 1").await.unwrap().len(), 3);
}

/// Connects as user `test` to `database`.
async fn connect_to(
    addr: std::net::SocketAddr,
    database: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) =
        tokio_postgres::connect(&format!("postgres://test@{addr}/{database}"), NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// `pg_database`'s names, sorted.
async fn database_names(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT datname FROM pg_catalog.pg_database ORDER BY datname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The SQLSTATE and message of a statement's error.
fn db_error(error: tokio_postgres::Error) -> (String, String) {
    let db = error.as_db_error().expect("a server error");
    (db.code().code().to_string(), db.message().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_created_connected_to_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    // A database that does not exist refuses the connection at startup.
    let Err(refused) = connect_to(addr, "shop").await else {
        panic!("connected to a database that does not exist");
    };
    let db = refused.as_db_error().expect("a server error");
    assert_eq!(db.severity(), "FATAL");
    assert_eq!(db.code().code(), "3D000");
    assert_eq!(db.message(), "database \"shop\" does not exist");

    let admin = client(addr).await;
    admin.batch_execute("CREATE DATABASE shop").await.unwrap();
    let again = admin
        .batch_execute("CREATE DATABASE shop")
        .await
        .unwrap_err();
    assert_eq!(
        db_error(again),
        ("42P04".into(), "database \"shop\" already exists".into())
    );
    // The default database exists under each of its names.
    let default = admin
        .batch_execute("CREATE DATABASE postgres")
        .await
        .unwrap_err();
    assert_eq!(db_error(default).0, "42P04");

    // Listed where clients list databases (`psql -l`).
    assert_eq!(database_names(&admin).await, ["postgres", "quiver", "shop"]);
    // Connected to `shop`, unqualified names are `shop`'s first.
    let shop = connect_to(addr, "shop").await.unwrap();
    let path: String = shop
        .query_one("SHOW search_path", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(path, "shop, public");
    let name: String = shop
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "shop");
    shop.batch_execute(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, v vector(2)); \
         INSERT INTO items VALUES (1, '[1,2]'), (2, '[3,4]')",
    )
    .await
    .unwrap();
    let count: i64 = admin
        .query_one("SELECT count(*) FROM shop.items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    // Further down the path: `public`'s tables, for reads and writes; a
    // new table goes to the first schema, beside one of the same name in
    // `public`; a WITH name is never looked up.
    admin
        .batch_execute("CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    shop.batch_execute(
        "INSERT INTO notes VALUES (1, 'a'), (2, 'b'); UPDATE notes SET body = 'c' WHERE id = 2",
    )
    .await
    .unwrap();
    let joined: i64 = shop
        .query_one(
            "WITH items AS (SELECT 7::BIGINT AS id) \
             SELECT count(*) FROM notes JOIN items ON notes.id < items.id WHERE body = 'c'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(joined, 1);
    shop.batch_execute("CREATE TABLE notes (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    let in_shop: i64 = admin
        .query_one("SELECT count(*) FROM shop.notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_shop, 0);
    // RESET returns to the connection's path.
    shop.batch_execute("SET search_path = public; RESET search_path")
        .await
        .unwrap();
    let count: i64 = shop
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);

    // The open database cannot be dropped; another session drops it with
    // its tables.
    let open = shop.batch_execute("DROP DATABASE shop").await.unwrap_err();
    assert_eq!(
        db_error(open),
        (
            "55006".into(),
            "cannot drop the currently open database".into()
        )
    );
    let current = admin
        .batch_execute("DROP DATABASE quiver")
        .await
        .unwrap_err();
    assert_eq!(db_error(current).0, "55006");
    // Another session is connected to it (PostgreSQL waits 5 s for it to
    // leave, then refuses); once it has left, the drop goes through.
    let in_use = admin.batch_execute("DROP DATABASE shop").await.unwrap_err();
    assert_eq!(
        db_error(in_use),
        (
            "55006".into(),
            "database \"shop\" is being accessed by other users".into()
        )
    );
    drop(shop);
    admin.batch_execute("DROP DATABASE shop").await.unwrap();
    let gone = admin
        .query_one("SELECT count(*) FROM shop.items", &[])
        .await
        .unwrap_err();
    assert!(gone.as_db_error().is_some(), "{gone}");
    let missing = admin.batch_execute("DROP DATABASE shop").await.unwrap_err();
    assert_eq!(
        db_error(missing),
        ("3D000".into(), "database \"shop\" does not exist".into())
    );
    admin
        .batch_execute("DROP DATABASE IF EXISTS shop")
        .await
        .unwrap();
    assert_eq!(database_names(&admin).await, ["postgres", "quiver"]);
    assert!(connect_to(addr, "shop").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_offset_take_parameters() {
    use tokio_postgres::types::Type;
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    c.batch_execute(
        "CREATE TABLE n (id BIGINT PRIMARY KEY); INSERT INTO n VALUES (1), (2), (3), (4)",
    )
    .await
    .unwrap();
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    // As the server types them (bigint), and as ORMs declare them: int2,
    // int4, text; in a subquery too.
    let sql = "SELECT id FROM n ORDER BY id LIMIT $1 OFFSET $2";
    assert_eq!(ids(c.query(sql, &[&2i64, &1i64]).await.unwrap()), [2, 3]);
    let int2 = c
        .prepare_typed(sql, &[Type::INT2, Type::INT4])
        .await
        .unwrap();
    assert_eq!(ids(c.query(&int2, &[&1i16, &3i32]).await.unwrap()), [4]);
    let text = c
        .prepare_typed(sql, &[Type::TEXT, Type::TEXT])
        .await
        .unwrap();
    assert_eq!(ids(c.query(&text, &[&"3", &"0"]).await.unwrap()), [1, 2, 3]);
    let inner = "SELECT id FROM (SELECT id FROM n ORDER BY id DESC LIMIT $1) s ORDER BY id";
    assert_eq!(ids(c.query(inner, &[&2i64]).await.unwrap()), [3, 4]);
    // PostgreSQL's errors for counts that are negative or not integers.
    for (params, expected) in [
        (["-1", "0"], ("2201W", "LIMIT must not be negative")),
        (["1", "-1"], ("2201X", "OFFSET must not be negative")),
        (
            ["x", "0"],
            ("22P02", "invalid input syntax for type bigint: \"x\""),
        ),
    ] {
        let error = c.query(&text, &[&params[0], &params[1]]).await.unwrap_err();
        assert_eq!(
            db_error(error),
            (expected.0.to_string(), expected.1.to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_columns_are_named_as_postgresql_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    c.batch_execute("CREATE TABLE n (id BIGINT PRIMARY KEY); INSERT INTO n VALUES (1), (2)")
        .await
        .unwrap();
    let cases: [(&str, &[&str]); 4] = [
        (
            "SELECT 1, 2 AS a, 3 AS a, NULL, NULL, 5::float8, 1::int, current_database()",
            &[
                "?column?",
                "a",
                "a",
                "?column?",
                "?column?",
                "float8",
                "int4",
                "current_database",
            ],
        ),
        (
            "SELECT count(*), sum(id), max(n.id) AS top FROM n",
            &["count", "sum", "top"],
        ),
        (
            "SELECT *, id::text, id + 1 FROM n",
            &["id", "id", "?column?"],
        ),
        ("SELECT id, id FROM n ORDER BY id", &["id", "id"]),
    ];
    for (sql, expected) in cases {
        // Extended protocol: the names Describe reports.
        let statement = c.prepare(sql).await.unwrap();
        let described: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
        assert_eq!(described, expected, "{sql}");
        assert!(!c.query(&statement, &[]).await.unwrap().is_empty(), "{sql}");
        // Simple protocol: the names of the rows' description.
        let row = first_row(&c, sql).await;
        let simple: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
        assert_eq!(simple, expected, "{sql}");
    }
    // With a bound parameter (the plan-cache path).
    let counted = c
        .query("SELECT count(*) FROM n WHERE id > $1", &[&0i64])
        .await
        .unwrap();
    assert_eq!(counted[0].columns()[0].name(), "count");
    assert_eq!(counted[0].get::<_, i64>("count"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floats_arrays_and_timestamps_print_as_postgresql_prints_them() {
    use tokio_postgres::SimpleQueryMessage;
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    let sql = "SELECT 5::float8, 1e20::float8, 'infinity'::float8, 'nan'::float8, \
               1.5e-7::float8, 0.1::real, 1e6::real, ARRAY[1.5, 2, NULL]::float8[], \
               '2024-01-02 03:04:05.5'::timestamp";
    // Text (simple protocol): PostgreSQL's shortest forms.
    let messages = c.simple_query(sql).await.unwrap();
    let Some(SimpleQueryMessage::Row(row)) = messages
        .iter()
        .find(|m| matches!(m, SimpleQueryMessage::Row(_)))
    else {
        panic!("no row");
    };
    let text: Vec<&str> = (0..row.len()).map(|i| row.get(i).unwrap()).collect();
    assert_eq!(
        text,
        [
            "5",
            "1e+20",
            "Infinity",
            "NaN",
            "1.5e-07",
            "0.1",
            "1e+06",
            "{1.5,2,NULL}",
            "2024-01-02 03:04:05.5"
        ]
    );
    // Binary (tokio-postgres' extended protocol): the values themselves.
    let row = c.query_one(sql, &[]).await.unwrap();
    assert_eq!(row.get::<_, f64>(0), 5.0);
    assert_eq!(row.get::<_, f64>(1), 1e20);
    assert!(row.get::<_, f64>(3).is_nan());
    assert_eq!(row.get::<_, f32>(5), 0.1);
}

async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// A transaction block reads at one snapshot with its own writes, and its
/// writes stay invisible to others until COMMIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_reads_its_snapshot_and_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let a = client(addr).await;
    let b = client(addr).await;
    a.batch_execute(
        "CREATE TABLE snap (id BIGINT PRIMARY KEY, n INTEGER); \
         INSERT INTO snap VALUES (1, 10), (2, 20)",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(count(&a, "snap").await, 2);
    b.execute("INSERT INTO snap VALUES (3, 30)", &[])
        .await
        .unwrap();
    assert_eq!(count(&a, "snap").await, 2, "a commit after the snapshot");
    a.execute("INSERT INTO snap VALUES (4, 40)", &[])
        .await
        .unwrap();
    a.execute("UPDATE snap SET n = n + 1 WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(count(&a, "snap").await, 3, "its own insert");
    assert_eq!(count(&b, "snap").await, 3, "not a's uncommitted insert");
    let n: i32 = b
        .query_one("SELECT n FROM snap WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10, "not a's uncommitted update");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&b, "snap").await, 4);
    let n: i32 = b
        .query_one("SELECT n FROM snap WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 11);
}

/// Two writers of one key: the block whose snapshot predates the other's
/// commit fails at COMMIT with 40001, and nothing of it is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_write_conflict_fails_with_40001() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let a = client(addr).await;
    let b = client(addr).await;
    a.batch_execute(
        "CREATE TABLE conflict (id BIGINT PRIMARY KEY, n INTEGER); \
         CREATE TABLE other (id BIGINT PRIMARY KEY); \
         INSERT INTO conflict VALUES (1, 0), (2, 0)",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN; UPDATE conflict SET n = 1 WHERE id = 1; INSERT INTO other VALUES (7)")
        .await
        .unwrap();
    b.execute("UPDATE conflict SET n = 2 WHERE id = 1", &[])
        .await
        .unwrap();
    let err = a.batch_execute("COMMIT").await.unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "40001", "{db:?}");
    assert_eq!(
        db.message(),
        "could not serialize access due to concurrent update"
    );
    // All or nothing: b's value stands and a's other write is gone.
    let n: i32 = a
        .query_one("SELECT n FROM conflict WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_eq!(count(&a, "other").await, 0);
    // Keys nobody else touched commit.
    a.batch_execute("BEGIN; UPDATE conflict SET n = 5 WHERE id = 2; COMMIT")
        .await
        .unwrap();
    let n: i32 = b
        .query_one("SELECT n FROM conflict WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
}

/// A syntax error is worded as PostgreSQL words it and points at where the
/// parser stopped (the position psql draws its `LINE n:` caret from).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_carry_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    for (sql, message, position) in [
        ("SELECT 1 +", "syntax error at end of input", 11),
        ("SELECT * FORM t", "syntax error at or near \"t\"", 15),
        (
            "SELECT 1;\nSELEC 2",
            "syntax error at or near \"SELEC\"",
            11,
        ),
    ] {
        let err = c.simple_query(sql).await.unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "42601", "{sql}");
        assert_eq!(db.message(), message, "{sql}");
        assert_eq!(
            db.position(),
            Some(&tokio_postgres::error::ErrorPosition::Original(position)),
            "{sql}"
        );
    }
}

/// A COPY or a Parse that fails inside a block aborts it, as any failed
/// statement does: nothing the block buffered before can commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_or_parse_aborts_the_block() {
    use futures::SinkExt;
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    c.batch_execute("CREATE TABLE copied (id BIGINT PRIMARY KEY, v vector(2))")
        .await
        .unwrap();
    let aborted = |err: tokio_postgres::Error| {
        assert_eq!(
            err.as_db_error().expect("a database error").code().code(),
            "25P02",
            "{err}"
        );
    };
    c.batch_execute("BEGIN; INSERT INTO copied VALUES (1, '[1,1]')")
        .await
        .unwrap();
    let sink = c.copy_in("COPY copied (id, v) FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(b"2\t[1,2]\n3\t[1,2,3]\n"))
        .await
        .unwrap();
    assert!(
        sink.as_mut().finish().await.is_err(),
        "a 3-d vector in a vector(2)"
    );
    aborted(c.simple_query("SELECT 1").await.unwrap_err());
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        count(&c, "copied").await,
        0,
        "the aborted block committed nothing"
    );
    c.batch_execute("BEGIN; INSERT INTO copied VALUES (4, '[1,1]')")
        .await
        .unwrap();
    assert!(c.prepare("SELECT nocol FROM copied").await.is_err());
    aborted(c.simple_query("SELECT 1").await.unwrap_err());
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&c, "copied").await, 0);
}

/// The first row of `sql` (simple protocol).
async fn first_row(c: &tokio_postgres::Client, sql: &str) -> tokio_postgres::SimpleQueryRow {
    use tokio_postgres::SimpleQueryMessage;
    let messages = c.simple_query(sql).await.unwrap();
    messages
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no rows"))
}

/// The values of the first row of `sql` as text (simple protocol).
async fn first_text(c: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let row = first_row(c, sql).await;
    (0..row.len())
        .map(|i| row.get(i).unwrap_or("NULL").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamptz_is_shown_in_the_session_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    c.batch_execute(
        "CREATE TABLE tz (id BIGINT PRIMARY KEY, t TIMESTAMPTZ); \
         INSERT INTO tz VALUES (1, '2024-01-02 03:04:05.5+00'), (2, '2024-07-02 03:04:05+00')",
    )
    .await
    .unwrap();
    let both = "SELECT (SELECT t FROM tz WHERE id = 1), (SELECT t FROM tz WHERE id = 2), \
                '2024-01-02 03:04:05+00'::timestamptz, '2024-01-02 03:04:05'::timestamp";
    assert_eq!(
        first_text(&c, both).await,
        [
            "2024-01-02 03:04:05.5+00",
            "2024-07-02 03:04:05+00",
            "2024-01-02 03:04:05+00",
            "2024-01-02 03:04:05"
        ]
    );
    // A zone with daylight saving: each value with its offset then.
    c.batch_execute("SET TIME ZONE 'America/New_York'")
        .await
        .unwrap();
    assert_eq!(
        first_text(&c, both).await,
        [
            "2024-01-01 22:04:05.5-05",
            "2024-07-01 23:04:05-04",
            "2024-01-01 22:04:05-05",
            "2024-01-02 03:04:05"
        ]
    );
    assert_eq!(first_text(&c, "SHOW TimeZone").await, ["America/New_York"]);
    // Text without an offset reads in the session's zone.
    assert_eq!(
        first_text(&c, "SELECT '2024-01-02 03:04:05'::timestamptz").await,
        ["2024-01-02 03:04:05-05"]
    );
    c.batch_execute("SET TIME ZONE 5.5").await.unwrap();
    assert_eq!(
        first_text(&c, "SELECT t FROM tz WHERE id = 2").await,
        ["2024-07-02 08:34:05+05:30"]
    );
    let err = c
        .batch_execute("SET TIME ZONE 'Foo/Bar'")
        .await
        .unwrap_err();
    assert_eq!(
        db_error(err),
        (
            "22023".to_string(),
            "invalid value for parameter \"TimeZone\": \"Foo/Bar\"".to_string()
        )
    );
    // now() is a timestamptz, as PostgreSQL's.
    let described = c.prepare("SELECT now()").await.unwrap();
    assert_eq!(
        described.columns()[0].type_(),
        &tokio_postgres::types::Type::TIMESTAMPTZ
    );
}

/// A search's query vector from a scalar subquery, prepared with a
/// parameter inside the subquery: each execution evaluates the subquery
/// with its own parameter (the plan is never reused with an old value),
/// then searches; more than one row is PostgreSQL's 21000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subquery_gives_each_execution_its_query_vector() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = server(dir.path()).await;
    let c = client(addr).await;
    c.batch_execute(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, emb vector(2)); \
         INSERT INTO items VALUES (1, '[0,0]'), (2, '[10,10]'), (3, '[1,0]'), (4, '[11,10]'), \
         (5, '[0,1]'), (6, '[10,11]')",
    )
    .await
    .unwrap();
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    let search = c
        .prepare(
            "SELECT id FROM items \
             ORDER BY emb <-> (SELECT emb FROM items WHERE id = $1) LIMIT 3",
        )
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(ids(c.query(&search, &[&1i64]).await.unwrap()), [1, 3, 5]);
        assert_eq!(ids(c.query(&search, &[&2i64]).await.unwrap()), [2, 4, 6]);
    }
    // A lateral search, prepared with a parameter inside the subquery.
    c.batch_execute(
        "CREATE TABLE probes (pid BIGINT PRIMARY KEY, q vector(2)); \
         INSERT INTO probes VALUES (1, '[0,0]'), (2, '[10,10]')",
    )
    .await
    .unwrap();
    let lateral = c
        .prepare(
            "SELECT nn.id FROM probes p CROSS JOIN LATERAL \
             (SELECT id FROM items WHERE id > $1 ORDER BY emb <-> p.q LIMIT 2) nn ORDER BY p.pid, nn.id",
        )
        .await
        .unwrap();
    assert_eq!(
        ids(c.query(&lateral, &[&0i64]).await.unwrap()),
        [1, 3, 2, 4]
    );
    assert_eq!(
        ids(c.query(&lateral, &[&2i64]).await.unwrap()),
        [3, 5, 4, 6]
    );
    let error = c
        .query(
            "SELECT id FROM items ORDER BY emb <-> (SELECT emb FROM items WHERE id > $1) LIMIT 3",
            &[&1i64],
        )
        .await
        .unwrap_err();
    assert_eq!(
        db_error(error),
        (
            "21000".to_string(),
            "more than one row returned by a subquery used as an expression".to_string()
        )
    );
}
