//! `sql` mode: the same benchmark through the Postgres door with
//! tokio-postgres: binary `COPY` of the base, `CREATE INDEX`, then the
//! queries through one prepared statement on `clients` connections.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use futures::SinkExt;
use quiver_index::Metric;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use crate::dataset::Dataset;
use crate::error::{BenchError, Result};
use crate::metrics::{mean_recall, percentile_ms};
use crate::report::{params, Record};

/// Index of the `bench_items` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlIndex {
    /// No index: exact search.
    None,
    Hnsw,
    IvfFlat,
}

impl SqlIndex {
    /// Parses `--index` in `sql` mode.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "exact" => Ok(SqlIndex::None),
            "hnsw" => Ok(SqlIndex::Hnsw),
            "ivfflat" | "ivf_flat" => Ok(SqlIndex::IvfFlat),
            "flat" | "ivf_sq8" | "ivfsq8" => Err(BenchError::UnsupportedIndex {
                kind: name.into(),
                mode: "sql mode (use hnsw, ivfflat or none)".into(),
            }),
            _ => Err(BenchError::UnknownIndex(
                name.into(),
                "none, hnsw, ivfflat".into(),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SqlIndex::None => "none",
            SqlIndex::Hnsw => "hnsw",
            SqlIndex::IvfFlat => "ivfflat",
        }
    }
}

/// pgvector's distance operator and operator class of a metric.
pub fn operator_and_class(metric: Metric) -> (&'static str, &'static str) {
    match metric {
        Metric::L2 => ("<->", "vector_l2_ops"),
        Metric::NegativeInnerProduct => ("<#>", "vector_ip_ops"),
        Metric::Cosine => ("<=>", "vector_cosine_ops"),
        Metric::L1 => ("<+>", "vector_l1_ops"),
    }
}

/// What to run in `sql` mode.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    pub url: String,
    pub table: String,
    pub index: SqlIndex,
    pub m: usize,
    pub ef_construction: usize,
    /// `lists` of an ivfflat index.
    pub nlist: usize,
    pub ef: Vec<usize>,
    pub nprobe: Vec<usize>,
    pub clients: usize,
    pub k: usize,
    /// The `system` of the records (e.g. to label a run against PostgreSQL).
    pub system: String,
    /// Search the table as a previous run left it (no COPY, no CREATE INDEX).
    pub reuse_table: bool,
    /// Run every point's queries this many times, keeping the fastest pass.
    pub repeat: usize,
}

impl SqlConfig {
    /// The `CREATE INDEX` statement, if any.
    pub fn create_index(&self, metric: Metric) -> Option<String> {
        let (_, class) = operator_and_class(metric);
        let t = &self.table;
        match self.index {
            SqlIndex::None => None,
            SqlIndex::Hnsw => Some(format!(
                "CREATE INDEX ON {t} USING hnsw (embedding {class}) WITH (m = {}, ef_construction = {})",
                self.m, self.ef_construction
            )),
            SqlIndex::IvfFlat => Some(format!(
                "CREATE INDEX ON {t} USING ivfflat (embedding {class}) WITH (lists = {})",
                self.nlist
            )),
        }
    }

    /// The sweep: `(SET statement, params)` per point.
    pub fn sweep(&self) -> Vec<(Option<String>, BTreeMap<String, serde_json::Value>)> {
        match self.index {
            SqlIndex::None => vec![(None, params([]))],
            SqlIndex::Hnsw => self
                .ef
                .iter()
                .map(|&e| {
                    (
                        Some(format!("SET hnsw.ef_search = {e}")),
                        params([
                            ("m", Some(self.m)),
                            ("ef_construction", Some(self.ef_construction)),
                            ("ef_search", Some(e)),
                        ]),
                    )
                })
                .collect(),
            SqlIndex::IvfFlat => self
                .nprobe
                .iter()
                .map(|&p| {
                    (
                        Some(format!("SET ivfflat.probes = {p}")),
                        params([("lists", Some(self.nlist)), ("probes", Some(p))]),
                    )
                })
                .collect(),
        }
    }

    /// The one query statement.
    pub fn query(&self, metric: Metric) -> String {
        let (op, _) = operator_and_class(metric);
        format!(
            "SELECT id FROM {} ORDER BY embedding {op} $1::vector LIMIT {}",
            self.table, self.k
        )
    }
}

/// pgvector's text form, `[1,2.5,...]` (shortest round-trip floats).
pub fn vector_text(v: &[f32]) -> String {
    let mut out = String::with_capacity(v.len() * 4 + 2);
    out.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
    out
}

/// A query vector sent as a parameter in pgvector's binary form (int16
/// dimension, int16 unused, big-endian float4s), as pgvector's client
/// libraries send it; the server types the parameter from `$1::vector`.
#[derive(Debug)]
pub struct BinaryVector(pub Vec<f32>);

impl ToSql for BinaryVector {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let dim = u16::try_from(self.0.len())?;
        out.put_u16(dim);
        out.put_u16(0);
        for x in &self.0 {
            out.put_f32(*x);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }

    to_sql_checked!();
}

/// The binary `COPY` header (signature, flags, header extension length).
pub fn copy_header(buf: &mut BytesMut) {
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
}

/// One binary `COPY` tuple `(id bigint, embedding vector)`; the vector in
/// pgvector's binary layout: int16 dim, int16 unused, float4 x dim,
/// big-endian.
pub fn copy_row(buf: &mut BytesMut, id: i64, v: &[f32]) {
    buf.put_i16(2);
    buf.put_i32(8);
    buf.put_i64(id);
    buf.put_i32(4 + 4 * v.len() as i32);
    buf.put_i16(v.len() as i16);
    buf.put_i16(0);
    for &x in v {
        buf.put_f32(x);
    }
}

/// The binary `COPY` trailer.
pub fn copy_trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// Runs `sql` mode on a fresh runtime with one worker thread per client, so
/// a client's query and its connection task wake each other on one thread
/// (the client's own overhead stays out of the door's figures).
pub fn run(data: &Dataset, cfg: &SqlConfig) -> Result<Vec<Record>> {
    if data.dim > 16_000 {
        return Err(BenchError::Argument(format!(
            "dimension {} is above pgvector's limit of 16000",
            data.dim
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.clients.max(1))
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("tokio runtime", e))?;
    runtime.block_on(run_async(data, cfg))
}

async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| BenchError::sql(format!("connect to {url}"), e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection closed: {e}");
        }
    });
    Ok(client)
}

async fn exec(client: &Client, sql: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| BenchError::sql(sql, e))
}

/// Loads the base vectors; returns rows per second of the `COPY`.
async fn load(client: &Client, data: &Dataset, table: &str) -> Result<f64> {
    exec(client, &format!("DROP TABLE IF EXISTS {table}")).await?;
    exec(
        client,
        &format!(
            "CREATE TABLE {table} (id bigint primary key, embedding vector({}))",
            data.dim
        ),
    )
    .await?;
    let statement = format!("COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)");
    let start = Instant::now();
    let sink = client
        .copy_in(&statement)
        .await
        .map_err(|e| BenchError::sql(&statement, e))?;
    let mut sink = pin!(sink);
    let mut buf = BytesMut::with_capacity(1 << 21);
    copy_header(&mut buf);
    for (i, row) in data.base.chunks_exact(data.dim).enumerate() {
        copy_row(&mut buf, i as i64, row);
        if buf.len() >= 1 << 20 {
            sink.send(buf.split().freeze())
                .await
                .map_err(|e| BenchError::sql(&statement, e))?;
        }
    }
    copy_trailer(&mut buf);
    sink.send(buf.split().freeze())
        .await
        .map_err(|e| BenchError::sql(&statement, e))?;
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| BenchError::sql(&statement, e))?;
    let seconds = start.elapsed().as_secs_f64();
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .map_err(|e| BenchError::sql("count rows", e))?
        .get(0);
    if rows as usize != data.base_rows() || count as usize != data.base_rows() {
        return Err(BenchError::Dataset(format!(
            "COPY reported {rows} rows and the table has {count}, expected {}",
            data.base_rows()
        )));
    }
    Ok(data.base_rows() as f64 / seconds)
}

async fn run_async(data: &Dataset, cfg: &SqlConfig) -> Result<Vec<Record>> {
    let admin = connect(&cfg.url).await?;
    let (copy_rows_per_s, build_s) = if cfg.reuse_table {
        eprintln!("sql: reusing table {}", cfg.table);
        (None, None)
    } else {
        eprintln!(
            "sql: loading {} x {} into {} ...",
            data.base_rows(),
            data.dim,
            cfg.table
        );
        let copy_rows_per_s = load(&admin, data, &cfg.table).await?;
        eprintln!("sql: COPY at {copy_rows_per_s:.0} rows/s");
        let build_s = match cfg.create_index(data.metric) {
            Some(sql) => {
                eprintln!("sql: {sql}");
                let start = Instant::now();
                exec(&admin, &sql).await?;
                let s = start.elapsed().as_secs_f64();
                eprintln!("sql: CREATE INDEX took {s:.2} s");
                Some(s)
            }
            None => None,
        };
        (Some(copy_rows_per_s), build_s)
    };

    let mut clients = Vec::with_capacity(cfg.clients);
    let query = cfg.query(data.metric);
    let vector_type = vector_type(&admin).await?;
    for _ in 0..cfg.clients.max(1) {
        let client = connect(&cfg.url).await?;
        let statement = client
            .prepare_typed(&query, std::slice::from_ref(&vector_type))
            .await
            .map_err(|e| BenchError::sql(&query, e))?;
        clients.push((Arc::new(client), statement));
    }
    let texts: Arc<Vec<BinaryVector>> = Arc::new(
        (0..data.query_rows())
            .map(|i| BinaryVector(data.query(i).to_vec()))
            .collect(),
    );

    let mut records = Vec::new();
    for (set, point_params) in cfg.sweep() {
        if let Some(set) = &set {
            for (client, _) in &clients {
                exec(client, set).await?;
            }
        }
        // Warm-up, not measured.
        for (client, statement) in &clients {
            for text in texts.iter().take(5) {
                client
                    .query(statement, &[text])
                    .await
                    .map_err(|e| BenchError::sql(&query, e))?;
            }
        }
        let mut fastest: Option<QueryRun> = None;
        for _ in 0..cfg.repeat.max(1) {
            let run = run_queries(&clients, &texts, &query).await?;
            if fastest.as_ref().is_none_or(|best| run.0 < best.0) {
                fastest = Some(run);
            }
        }
        let (wall, latencies, results) = fastest.expect("at least one pass");
        let recall = mean_recall(&data.truth, &results, cfg.k);
        let record = Record {
            dataset: data.name.clone(),
            system: cfg.system.clone(),
            index: cfg.index.name().into(),
            params: point_params,
            recall,
            k: cfg.k,
            qps: data.query_rows() as f64 / wall.as_secs_f64(),
            p50_ms: percentile_ms(&latencies, 50.0),
            p99_ms: percentile_ms(&latencies, 99.0),
            build_s,
            threads: cfg.clients,
            queries: data.query_rows(),
            base_rows: data.base_rows(),
            clients: Some(cfg.clients),
            copy_rows_per_s,
            ..Record::default()
        };
        eprintln!(
            "sql: {} recall {:.4} qps {:.0} p50 {:.2} ms",
            record.search_params(),
            recall,
            record.qps,
            record.p50_ms
        );
        records.push(record);
    }
    Ok(records)
}

/// pgvector's `vector` type as the server numbers it (declared up front,
/// so the driver need not look the type up).
async fn vector_type(client: &Client) -> Result<Type> {
    let sql = "SELECT oid FROM pg_catalog.pg_type WHERE typname = 'vector'";
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| BenchError::sql(sql, e))?;
    let oid = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse::<u32>().ok(),
            _ => None,
        })
        .ok_or_else(|| BenchError::Argument("the server has no vector type".into()))?;
    Ok(Type::new(
        "vector".into(),
        oid,
        tokio_postgres::types::Kind::Simple,
        "public".into(),
    ))
}

type QueryRun = (Duration, Vec<Duration>, Vec<Vec<u32>>);

/// Every query once, the clients taking them from a shared counter.
async fn run_queries(
    clients: &[(Arc<Client>, Statement)],
    texts: &Arc<Vec<BinaryVector>>,
    query: &str,
) -> Result<QueryRun> {
    let nq = texts.len();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (client, statement) in clients {
        let (client, statement) = (client.clone(), statement.clone());
        let (next, texts) = (next.clone(), texts.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= nq {
                    return Ok(out);
                }
                let t = Instant::now();
                let rows = client.query(&statement, &[&texts[i]]).await?;
                let latency = t.elapsed();
                let ids: Vec<u32> = rows.iter().map(|r| r.get::<_, i64>(0) as u32).collect();
                out.push((i, latency, ids));
            }
        }));
    }
    let mut latencies = Vec::with_capacity(nq);
    let mut results = vec![Vec::new(); nq];
    for task in tasks {
        let part: Vec<(usize, Duration, Vec<u32>)> = task
            .await
            .map_err(|e| BenchError::Argument(format!("query task failed: {e}")))?
            .map_err(|e: tokio_postgres::Error| BenchError::sql(query, e))?;
        for (i, latency, ids) in part {
            latencies.push(latency);
            results[i] = ids;
        }
    }
    Ok((start.elapsed(), latencies, results))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(index: SqlIndex) -> SqlConfig {
        SqlConfig {
            url: String::new(),
            table: "bench_items".into(),
            index,
            m: 16,
            ef_construction: 200,
            nlist: 100,
            ef: vec![10, 40],
            nprobe: vec![1, 8],
            clients: 2,
            k: 10,
            system: "quiver-sql".into(),
            reuse_table: false,
            repeat: 1,
        }
    }

    #[test]
    fn statements() {
        let hnsw = config(SqlIndex::Hnsw);
        assert_eq!(
            hnsw.create_index(Metric::L2).unwrap(),
            "CREATE INDEX ON bench_items USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 200)"
        );
        assert_eq!(
            hnsw.query(Metric::Cosine),
            "SELECT id FROM bench_items ORDER BY embedding <=> $1::vector LIMIT 10"
        );
        let sweep = hnsw.sweep();
        assert_eq!(sweep.len(), 2);
        assert_eq!(sweep[1].0.as_deref(), Some("SET hnsw.ef_search = 40"));
        let ivf = config(SqlIndex::IvfFlat);
        assert_eq!(
            ivf.create_index(Metric::NegativeInnerProduct).unwrap(),
            "CREATE INDEX ON bench_items USING ivfflat (embedding vector_ip_ops) WITH (lists = 100)"
        );
        assert_eq!(ivf.sweep()[0].0.as_deref(), Some("SET ivfflat.probes = 1"));
        let none = config(SqlIndex::None);
        assert!(none.create_index(Metric::L2).is_none());
        assert_eq!(none.sweep().len(), 1);
        assert_eq!(SqlIndex::parse("NONE").unwrap(), SqlIndex::None);
        assert!(SqlIndex::parse("flat").is_err());
        assert!(matches!(
            SqlIndex::parse("lsh"),
            Err(BenchError::UnknownIndex(..))
        ));
    }

    #[test]
    fn encodings() {
        assert_eq!(vector_text(&[1.0, -2.5, 0.1]), "[1,-2.5,0.1]");
        let mut buf = BytesMut::new();
        copy_header(&mut buf);
        assert_eq!(&buf[..], b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        buf.clear();
        copy_row(&mut buf, 7, &[1.0, 2.0]);
        let mut want = vec![
            0, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 12, 0, 2, 0, 0,
        ];
        want.extend(1.0f32.to_be_bytes());
        want.extend(2.0f32.to_be_bytes());
        assert_eq!(&buf[..], &want[..]);
        buf.clear();
        copy_trailer(&mut buf);
        assert_eq!(&buf[..], &[0xff, 0xff]);
    }
}
