//! End-to-end tests: a real `Instance` served over TCP, driven by tokio-postgres.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_sql::handler::pg::PgHandlerRef;
use quiver_sql::Instance;
use tokio::net::TcpListener;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::serve;

struct Server {
    port: u16,
    instance: Arc<Instance>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = QuiverConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let engine = Engine::open(config).await.unwrap();
        let instance = Arc::new(Instance::new(engine));
        let handler: PgHandlerRef = instance.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, handler, async move {
            let _ = stopped.await;
        }));
        Self {
            port,
            instance,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    async fn connect(&self) -> Client {
        let url = format!(
            "host=127.0.0.1 port={} user=tester dbname=quiver",
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

fn code(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.code().code().to_string())
        .unwrap_or_else(|| format!("not a db error: {err}"))
}

/// The error's position in the query string, when it has one.
fn position(err: &tokio_postgres::Error) -> Option<u32> {
    match err.as_db_error()?.position()? {
        tokio_postgres::error::ErrorPosition::Original(n) => Some(*n),
        tokio_postgres::error::ErrorPosition::Internal { .. } => None,
    }
}

fn simple_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

async fn setup(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, v vector(3));
             INSERT INTO items VALUES (1, 'a', '[1,0,0]'), (2, 'b', '[0,1,0]'), (3, 'c', '[0,0,1]');",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_protocol() {
    let server = Server::start().await;
    let client = server.connect().await;
    setup(&client).await;
    let rows = client
        .simple_query("SELECT id, name, v FROM items ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        simple_rows(&rows)[0],
        vec![Some("1".into()), Some("a".into()), Some("[1,0,0]".into())]
    );
    if let SimpleQueryMessage::CommandComplete(n) = rows.last().unwrap() {
        assert_eq!(*n, 3);
    }
    // An error ends the batch: the INSERT after it does not run.
    let err = client
        .simple_query("SELECT 1; SELECT * FROM nope; INSERT INTO items VALUES (9, 'z', '[1,1,1]')")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "42P01");
    // Where the missing relation is written in the query string (psql's
    // LINE n: and caret).
    assert_eq!(position(&err), Some(25));
    let err = client
        .simple_query("SELECT nosuch FROM items")
        .await
        .unwrap_err();
    assert_eq!((code(&err), position(&err)), ("42703".into(), Some(8)));
    // The extended protocol's Parse reports it too.
    let err = client
        .prepare("SELECT id FROM public.nope")
        .await
        .unwrap_err();
    assert_eq!((code(&err), position(&err)), ("42P01".into(), Some(16)));
    let rows = client
        .simple_query("SELECT count(*) FROM items WHERE id = 9")
        .await
        .unwrap();
    assert_eq!(simple_rows(&rows)[0][0].as_deref(), Some("0"));
    // Empty queries.
    client.simple_query("").await.unwrap();
    client.simple_query(";").await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol() {
    let server = Server::start().await;
    let client = server.connect().await;
    setup(&client).await;

    let rows = client
        .query(
            "SELECT id, name FROM items WHERE id >= $1 ORDER BY id",
            &[&2i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    assert_eq!(rows[1].get::<_, &str>(1), "c");

    // Prepared once, executed several times.
    let statement = client
        .prepare("SELECT name FROM items WHERE id = $1")
        .await
        .unwrap();
    for (id, name) in [(1i64, "a"), (3, "c")] {
        let row = client.query_one(&statement, &[&id]).await.unwrap();
        assert_eq!(row.get::<_, &str>(0), name);
    }

    // DML without RETURNING describes no columns and reports its count.
    let delete = client
        .prepare("DELETE FROM items WHERE id = $1")
        .await
        .unwrap();
    assert!(delete.columns().is_empty());
    assert_eq!(client.execute(&delete, &[&2i64]).await.unwrap(), 1);

    // A vector parameter sent as text.
    let typed = client
        .prepare_typed(
            "INSERT INTO items (id, name, v) VALUES ($1, $2, $3)",
            &[
                tokio_postgres::types::Type::INT8,
                tokio_postgres::types::Type::TEXT,
                tokio_postgres::types::Type::TEXT,
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        client
            .execute(&typed, &[&7i64, &"g", &"[1,2,3]"])
            .await
            .unwrap(),
        1
    );
    let err = client
        .execute(&typed, &[&8i64, &"h", &"[1,2]"])
        .await
        .unwrap_err();
    assert_eq!(code(&err), "22000");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "expected 3 dimensions, not 2"
    );

    // Errors keep the connection usable.
    let err = client
        .query("SELECT nope FROM items", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&err), "42703");
    let err = client.prepare("SELECT 1; SELECT 2").await.unwrap_err();
    assert_eq!(code(&err), "42601");
    let row = client
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    server.stop().await;
}

/// A frontend message: tag, length, body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one backend message.
async fn read_message(stream: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let tag = stream.read_u8().await.unwrap();
    let len = stream.read_i32().await.unwrap() as usize;
    let mut body = vec![0; len - 4];
    stream.read_exact(&mut body).await.unwrap();
    (tag, body)
}

/// Reads up to ReadyForQuery; returns the message tags and bodies before it.
async fn read_until_ready(stream: &mut tokio::net::TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let (tag, body) = read_message(stream).await;
        if tag == b'Z' {
            return out;
        }
        out.push((tag, body));
    }
}

fn parse(query: &str, oids: &[u32]) -> Vec<u8> {
    let mut body = b"\0".to_vec();
    body.extend_from_slice(query.as_bytes());
    body.push(0);
    body.extend_from_slice(&(oids.len() as i16).to_be_bytes());
    for oid in oids {
        body.extend_from_slice(&oid.to_be_bytes());
    }
    message(b'P', &body)
}

/// Bind of the unnamed statement with binary parameters and binary results.
fn bind(params: &[&[u8]]) -> Vec<u8> {
    let mut body = b"\0\0".to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        body.extend_from_slice(&(p.len() as i32).to_be_bytes());
        body.extend_from_slice(p);
    }
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    message(b'B', &body)
}

fn pgvector(values: &[f32]) -> Vec<u8> {
    let mut out = (values.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0]);
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

fn error_code(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

/// Binary vectors in both directions, the way pgvector drivers send them
/// (raw protocol: tokio-postgres cannot look up the `vector` type).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_vectors_over_the_extended_protocol() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    setup(&server.connect().await).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let params = b"user\0tester\0database\0quiver\0\0";
    let mut startup = (params.len() as i32 + 8).to_be_bytes().to_vec();
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.extend_from_slice(params);
    stream.write_all(&startup).await.unwrap();
    let startup = read_until_ready(&mut stream).await;
    assert!(startup
        .iter()
        .any(|(t, b)| *t == b'S' && b.starts_with(b"server_version\x0016.0\0")));

    let vector_oid = arrow_pg::datatypes::PG_VECTOR_TYPE_OID;
    let mut out = parse(
        "INSERT INTO items (id, v) VALUES ($1, $2)",
        &[20, vector_oid],
    );
    out.extend(bind(&[&5i64.to_be_bytes(), &pgvector(&[1.5, 2.5, 3.5])]));
    out.extend(message(b'E', b"\0\0\0\0\0"));
    out.extend(message(b'S', b""));
    stream.write_all(&out).await.unwrap();
    let replies = read_until_ready(&mut stream).await;
    let tags: Vec<u8> = replies.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"12C");
    assert_eq!(replies[2].1, b"INSERT 0 1\0");

    // Unknown parameter types: the server-described vector type is used.
    let mut out = parse("INSERT INTO items (id, v) VALUES ($1, $2)", &[]);
    out.extend(bind(&[&6i64.to_be_bytes(), &pgvector(&[1.0])]));
    out.extend(message(b'E', b"\0\0\0\0\0"));
    out.extend(message(b'S', b""));
    stream.write_all(&out).await.unwrap();
    let replies = read_until_ready(&mut stream).await;
    let (tag, body) = replies.last().unwrap();
    assert_eq!(*tag, b'E');
    assert_eq!(error_code(body), "22000");

    let mut out = parse("SELECT v FROM items WHERE id = $1", &[20]);
    out.extend(bind(&[&5i64.to_be_bytes()]));
    out.extend(message(b'D', b"P\0"));
    out.extend(message(b'E', b"\0\0\0\0\0"));
    out.extend(message(b'S', b""));
    stream.write_all(&out).await.unwrap();
    let replies = read_until_ready(&mut stream).await;
    let tags: Vec<u8> = replies.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"12TDC");
    let description = &replies[2].1;
    // One field: name "v\0", table oid, column, then the type oid.
    assert_eq!(&description[0..2], &1i16.to_be_bytes());
    assert_eq!(&description[2..4], b"v\0");
    assert_eq!(&description[10..14], &vector_oid.to_be_bytes());
    let row = &replies[3].1;
    let value = pgvector(&[1.5, 2.5, 3.5]);
    assert_eq!(&row[2..6], &(value.len() as i32).to_be_bytes());
    assert_eq!(&row[6..], value.as_slice());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out() {
    let server = Server::start().await;
    let client = server.connect().await;
    setup(&client).await;

    let sink = client
        .copy_in("COPY items (id, name, v) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(b"10\tten\t[1,2,3]\n11\t\\N\t"))
        .await
        .unwrap();
    sink.send(Bytes::from_static(b"[4,5,6]\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);

    let sink = client
        .copy_in("COPY items FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(b"id,name,v\n20,\"x, y\",\"[0,0,1]\"\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);

    // A bad vector fails the whole COPY with its SQLSTATE; nothing is inserted.
    let sink = client.copy_in("COPY items FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(b"30\tok\t[1,1,1]\n31\tbad\t[1,1]\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(code(&err), "22000");
    let db = err.as_db_error().unwrap();
    assert_eq!(db.message(), "expected 3 dimensions, not 2");
    assert_eq!(db.where_(), Some("COPY items, line 2, column v: \"[1,1]\""));
    let row = client
        .query_one("SELECT count(*) FROM items WHERE id >= 30", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);

    let stream = client
        .copy_out("COPY (SELECT id, name, v FROM items WHERE id >= 10 ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    use futures::TryStreamExt;
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(
        text,
        "10\tten\t[1,2,3]\n11\t\\N\t[4,5,6]\n20\tx, y\t[0,0,1]\n"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_and_cancel() {
    let server = Server::start().await;
    let client = server.connect().await;
    let slow = "SELECT count(*) FROM generate_series(1, 2000000000) WHERE generate_series % 7 = 3";
    client
        .batch_execute("SET statement_timeout = 100")
        .await
        .unwrap();
    let err = client.simple_query(slow).await.unwrap_err();
    assert_eq!(code(&err), "57014");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "canceling statement due to statement timeout"
    );
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();

    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let err = client.simple_query(slow).await.unwrap_err();
    assert_eq!(code(&err), "57014");
    canceller.await.unwrap();
    assert_eq!(
        simple_rows(&client.simple_query("SELECT 1").await.unwrap())[0][0].as_deref(),
        Some("1")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_vector_search_plans_are_reused_and_replanned_after_ddl() {
    use tokio_postgres::types::Type;
    let server = Server::start().await;
    let client = server.connect().await;
    setup(&client).await;
    let sql = "SELECT id FROM items ORDER BY v <-> $1::vector LIMIT 2";
    let search = client.prepare_typed(sql, &[Type::TEXT]).await.unwrap();
    let ids = |rows: Vec<tokio_postgres::Row>| -> Vec<i64> {
        rows.iter().map(|r| r.get::<_, i64>(0)).collect()
    };
    // The same plan, each execution with its own vector.
    assert_eq!(
        ids(client.query(&search, &[&"[1,0,0]"]).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        ids(client.query(&search, &[&"[0,0,1]"]).await.unwrap()),
        [3, 1]
    );
    assert_eq!(
        ids(client.query(&search, &[&"[0,1,0.1]"]).await.unwrap()),
        [2, 3]
    );
    let err = client.query(&search, &[&"[1,0]"]).await.unwrap_err();
    assert_eq!(code(&err), "22000", "{err}");
    // A different table under the same name: the cached plan is not reused.
    client
        .batch_execute(
            "DROP TABLE items; CREATE TABLE items (id BIGINT PRIMARY KEY, v vector(2));
             INSERT INTO items VALUES (10, '[5,5]'), (11, '[0,1]'), (12, '[1,1]');",
        )
        .await
        .unwrap();
    let search = client.prepare_typed(sql, &[Type::TEXT]).await.unwrap();
    assert_eq!(
        ids(client.query(&search, &[&"[1,1]"]).await.unwrap()),
        [12, 11]
    );
    server.stop().await;
}

/// A vector parameter in pgvector's binary form, as pgvector's client
/// libraries bind it (the server types `$1` from the operator).
#[derive(Debug)]
struct BinaryVector(Vec<f32>);

impl tokio_postgres::types::ToSql for BinaryVector {
    fn to_sql(
        &self,
        _ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&pgvector(&self.0));
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        ty.name() == "vector"
    }

    tokio_postgres::types::to_sql_checked!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_search_plans_read_each_statements_snapshot_and_settings() {
    let server = Server::start().await;
    let client = server.connect().await;
    setup(&client).await;
    // No declared types: the server types `$1` as `vector` (and the driver
    // looks that type up with `WHERE t.oid = $1`, an `oid` parameter).
    let search = client
        .prepare("SELECT id FROM items ORDER BY v <-> $1 LIMIT 2")
        .await
        .unwrap();
    assert_eq!(search.params()[0].name(), "vector");
    let ids = |rows: Vec<tokio_postgres::Row>| -> Vec<i64> {
        rows.iter().map(|r| r.get::<_, i64>(0)).collect()
    };
    let x = BinaryVector(vec![1.0, 0.0, 0.0]);
    assert_eq!(ids(client.query(&search, &[&x]).await.unwrap()), [1, 2]);
    let before = server.instance.reused_search_plans();
    let z = BinaryVector(vec![0.0, 0.0, 1.0]);
    assert_eq!(ids(client.query(&search, &[&z]).await.unwrap()), [3, 1]);
    assert_eq!(server.instance.reused_search_plans(), before + 1);
    // Rows written after the plan was cached are seen, deleted ones are not.
    client
        .batch_execute("INSERT INTO items VALUES (4, 'd', '[1,0,0.01]')")
        .await
        .unwrap();
    assert_eq!(ids(client.query(&search, &[&x]).await.unwrap()), [1, 4]);
    client
        .batch_execute("DELETE FROM items WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(ids(client.query(&search, &[&x]).await.unwrap()), [4, 2]);
    assert_eq!(server.instance.reused_search_plans(), before + 3);
    // A changed search setting makes a new plan, which is then reused.
    client
        .batch_execute("SET hnsw.ef_search = 10")
        .await
        .unwrap();
    assert_eq!(ids(client.query(&search, &[&x]).await.unwrap()), [4, 2]);
    assert_eq!(server.instance.reused_search_plans(), before + 3);
    assert_eq!(ids(client.query(&search, &[&z]).await.unwrap()), [3, 4]);
    assert_eq!(server.instance.reused_search_plans(), before + 4);
    // A wrong dimension is still pgvector's error.
    let err = client
        .query(&search, &[&BinaryVector(vec![1.0, 0.0])])
        .await
        .unwrap_err();
    assert_eq!(code(&err), "22000", "{err}");
    // A statement with another parameter besides the vector is planned for
    // each execution, and answers by its parameters.
    let filtered = client
        .prepare("SELECT id FROM items WHERE id <> $2 ORDER BY v <-> $1 LIMIT 2")
        .await
        .unwrap();
    let reused = server.instance.reused_search_plans();
    assert_eq!(
        ids(client.query(&filtered, &[&x, &4i64]).await.unwrap()),
        [2, 3]
    );
    assert_eq!(
        ids(client.query(&filtered, &[&x, &2i64]).await.unwrap()),
        [4, 3]
    );
    assert_eq!(server.instance.reused_search_plans(), reused);
    // A search that also returns its distance reuses its plan too: the
    // projected distance is the one the search computed.
    let with_distance = client
        .prepare("SELECT id, v <-> $1 AS d, (v <-> $1) * 2 FROM items ORDER BY d LIMIT 2")
        .await
        .unwrap();
    let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<(i64, f64, f64)> {
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let close = |got: Vec<(i64, f64, f64)>, want: [(i64, f64, f64); 2]| {
        assert_eq!(got.len(), 2, "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                g.0 == w.0 && (g.1 - w.1).abs() < 1e-6 && (g.2 - w.2).abs() < 1e-6,
                "{got:?} against {want:?}"
            );
        }
    };
    let y = BinaryVector(vec![0.0, 2.0, 0.0]);
    close(
        rows(client.query(&with_distance, &[&y]).await.unwrap()),
        [(2, 1.0, 2.0), (3, 5f64.sqrt(), 2.0 * 5f64.sqrt())],
    );
    let reused = server.instance.reused_search_plans();
    close(
        rows(client.query(&with_distance, &[&z]).await.unwrap()),
        [(3, 0.0, 0.0), (4, 1.9801f64.sqrt(), 2.0 * 1.9801f64.sqrt())],
    );
    assert_eq!(server.instance.reused_search_plans(), reused + 1);
    server.stop().await;
}

/// The Unix-domain socket: named as PostgreSQL names it, serving the same
/// sessions as TCP; a stale socket file is replaced, a live one refused.
#[tokio::test]
async fn serves_a_unix_socket_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = QuiverConfig {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    let engine = Engine::open(config).await.unwrap();
    let handler: PgHandlerRef = Arc::new(Instance::new(engine));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir(&sockets).unwrap();
    // A file left by a server that was killed: nothing accepts on it.
    let stale = std::os::unix::net::UnixListener::bind(super::unix_socket_path(&sockets, port));
    drop(stale.unwrap());
    let (unix, path) = super::bind_unix_socket(&sockets, port).unwrap();
    assert_eq!(path, sockets.join(format!(".s.PGSQL.{port}")));
    let err = super::bind_unix_socket(&sockets, port).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(super::serve_on(
        listener,
        Some(unix),
        handler,
        Default::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(&sockets)
        .port(port)
        .user("tester")
        .dbname("quiver")
        .connect(NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE u (id BIGINT PRIMARY KEY, v vector(2)); \
             INSERT INTO u VALUES (1, '[0,0]'), (2, '[1,1]')",
        )
        .await
        .unwrap();
    let rows = client
        .query("SELECT id FROM u ORDER BY v <-> '[0.9,0.9]' LIMIT 1", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    let tcp = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=tester dbname=quiver"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(tcp.1);
    let rows = tcp.0.query("SELECT count(*) FROM u", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    let _ = stop.send(());
    task.await.unwrap();
}
