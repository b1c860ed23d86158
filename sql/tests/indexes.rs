//! Vector indexes end to end through `Instance`: CREATE INDEX with progress
//! NOTICEs, search through the index equal to (or, filtered, as good as)
//! the exact answer, restart loading the index files instead of rebuilding,
//! compaction rebuilding the index of the segment it writes, and filtered
//! search keeping recall at every selectivity.

mod support;

use support::session;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    AsArray, FixedSizeListArray, Float32Array, Int32Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::StreamExt;
use quiver_cluster::{Engine, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_index::eval::clustered_vectors;
use quiver_index::Metric;
use quiver_sql::handler::{Output, QueryHandler, Session};
use quiver_sql::Instance;

const DIM: usize = 24;

async fn open(dir: &std::path::Path, seal_rows: usize) -> (Arc<Engine>, Arc<Instance>) {
    let mut config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.segment.seal_rows = seal_rows;
    config.segment.compaction_min_segments = 1000; // compaction only when asked
    let engine = Engine::open(config).await.unwrap();
    (engine.clone(), Arc::new(Instance::new(engine)))
}

async fn run(instance: &Instance, session: &mut Session, sql: &str) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for statement in instance.parse(sql).unwrap() {
        let output = instance
            .execute(session, &statement, None)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        if let Output::Rows { mut stream, .. } = output {
            while let Some(batch) = stream.next().await {
                out.push(batch.unwrap());
            }
        }
    }
    out
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

fn text(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

/// The plan text of `EXPLAIN [ANALYZE] ...` with `{q}` replaced by `query`.
async fn explain(instance: &Instance, session: &mut Session, sql: &str, query: &[f32]) -> String {
    let sql = sql.replace("{q}", &vector_literal(query));
    text(&run(instance, session, &sql).await)
}

fn vector_literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("'[{}]'", parts.join(","))
}

/// `n` rows `(id, bucket = id % 1000, v)` with clustered vectors.
fn rows(n: usize, seed: u64) -> (RecordBatch, Vec<f32>) {
    let vectors = clustered_vectors(n, DIM, 20, 1.5, seed);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("bucket", DataType::Int32, true),
        Field::new(
            "v",
            quiver_common::schema::vector_arrow_type(DIM as i32),
            true,
        ),
    ]));
    let list = FixedSizeListArray::new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        DIM as i32,
        Arc::new(Float32Array::from(vectors.clone())),
        None,
    );
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(Int32Array::from_iter_values(
                (0..n as i32).map(|i| i % 1000),
            )),
            Arc::new(list),
        ],
    )
    .unwrap();
    (batch, vectors)
}

async fn load(engine: &Engine, instance: &Instance, s: &mut Session, n: usize) -> Vec<f32> {
    run(
        instance,
        s,
        &format!("CREATE TABLE items (id BIGINT PRIMARY KEY, bucket INTEGER, v vector({DIM}))"),
    )
    .await;
    let (batch, vectors) = rows(n, 7);
    for start in (0..n).step_by(250) {
        let len = 250.min(n - start);
        engine
            .write(
                "public",
                "items",
                batch.slice(start, len),
                WriteMode::Insert,
            )
            .await
            .unwrap();
    }
    vectors
}

/// Exact top-k ids among rows passing `allowed`, ties by id.
fn exact(vectors: &[f32], query: &[f32], k: usize, allowed: impl Fn(usize) -> bool) -> Vec<i64> {
    let mut scored: Vec<(f64, i64)> = vectors
        .chunks_exact(DIM)
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .map(|(i, v)| (Metric::L2.distance(v, query), i as i64))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

/// `count` queries near the data: rows of a fresh copy of the data set, shifted a little.
fn queries_near_data(n: usize, count: usize) -> Vec<f32> {
    let (_, vectors) = rows(n, 7);
    let mut out = Vec::with_capacity(count * DIM);
    for q in 0..count {
        let row = (q * 7919) % n;
        out.extend(
            vectors[row * DIM..(row + 1) * DIM]
                .iter()
                .enumerate()
                .map(|(j, x)| x + if (q + j) % 2 == 0 { 0.4 } else { -0.4 }),
        );
    }
    out
}

fn recall(found: &[i64], truth: &[i64]) -> f64 {
    let truth: HashSet<i64> = truth.iter().copied().collect();
    found.iter().filter(|id| truth.contains(id)).count() as f64 / truth.len().max(1) as f64
}

/// The NOTICE messages `sql` sends while it runs.
async fn notices_of(instance: &Instance, session: &mut Session, sql: &str) -> Vec<String> {
    let (sink, mut notices) = tokio::sync::mpsc::unbounded_channel();
    session.set_notice_sink(Some(sink));
    run(instance, session, sql).await;
    session.set_notice_sink(None);
    let mut messages = Vec::new();
    while let Ok(m) = notices.try_recv() {
        messages.push(m);
    }
    messages
}

/// A build that finds nothing left to do (no sealed segment here; in
/// production also when the background pass got there first) still ends
/// with the progress notice clients wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_with_nothing_to_build_still_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, instance) = open(dir.path(), 500).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        &format!("CREATE TABLE empty_items (id BIGINT PRIMARY KEY, v vector({DIM}))"),
    )
    .await;
    let messages = notices_of(
        &instance,
        &mut s,
        "CREATE INDEX empty_hnsw ON empty_items USING hnsw (v vector_l2_ops)",
    )
    .await;
    assert_eq!(
        messages,
        ["index \"empty_hnsw\": 0 of 0 segments indexed"],
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_reports_progress_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2_000;
    let queries = queries_near_data(n, 20);
    let (expected, vectors_len) = {
        let (engine, instance) = open(dir.path(), 500).await;
        let mut s = session(&instance).await;
        let vectors = load(&engine, &instance, &mut s, n).await;
        let messages = notices_of(
            &instance,
            &mut s,
            "CREATE INDEX items_hnsw ON items USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 100)",
        )
        .await;
        assert_eq!(
            messages.last().map(String::as_str),
            Some("index \"items_hnsw\": 4 of 4 segments indexed"),
            "{messages:?}"
        );
        assert_eq!(messages.len(), 4, "{messages:?}");
        let view = text(
            &run(
                &instance,
                &mut s,
                "SELECT state, rows_indexed, rows_total, segments_indexed FROM quiver_catalog.indexes",
            )
            .await,
        );
        assert!(
            view.contains("| ready | 2000         | 2000       | 4"),
            "{view}"
        );
        // Through the index, the answer is the exact one on this data.
        let mut expected = Vec::new();
        let mut total_recall = 0.0;
        for q in queries.chunks_exact(DIM) {
            let sql = format!(
                "SELECT id FROM items ORDER BY v <-> {} LIMIT 10",
                vector_literal(q)
            );
            let got = ids(&run(&instance, &mut s, &sql).await);
            assert_eq!(got.len(), 10);
            total_recall += recall(&got, &exact(&vectors, q, 10, |_| true));
            expected.push(got);
        }
        let mean = total_recall / 20.0;
        assert!(mean >= 0.98, "recall {mean}");
        let plan = explain(
            &instance,
            &mut s,
            "EXPLAIN ANALYZE SELECT id FROM items ORDER BY v <-> {q} LIMIT 10",
            &queries[..DIM],
        )
        .await;
        assert!(plan.contains("index=items_hnsw (hnsw)"), "{plan}");
        assert!(plan.contains("index_searches=4"), "{plan}");
        // The session's ef_search reaches the search.
        run(&instance, &mut s, "SET hnsw.ef_search = 77").await;
        let plan = explain(
            &instance,
            &mut s,
            "EXPLAIN SELECT id FROM items ORDER BY v <-> {q} LIMIT 10",
            &queries[..DIM],
        )
        .await;
        assert!(plan.contains("ef_search=77"), "{plan}");
        run(&instance, &mut s, "RESET hnsw.ef_search").await;
        // Segments of 500 rows with ids in order: min/max statistics skip
        // the three segments `id < 100` cannot match.
        let plan = explain(
            &instance,
            &mut s,
            "EXPLAIN ANALYZE SELECT id FROM items WHERE id < 100 ORDER BY v <-> {q} LIMIT 10",
            &queries[..DIM],
        )
        .await;
        assert!(plan.contains("segments_pruned=3"), "{plan}");
        assert!(plan.contains("segments_searched=1"), "{plan}");
        // Dropped without shutdown: what was flushed and indexed must come back.
        (expected, vectors.len())
    };
    assert_eq!(vectors_len, n * DIM);
    let (engine, instance) = open(dir.path(), 500).await;
    assert_eq!(
        engine.recovery.indexes_loaded, 4,
        "indexes are loaded, not rebuilt"
    );
    let mut s = session(&instance).await;
    for (q, want) in queries.chunks_exact(DIM).zip(&expected) {
        let sql = format!(
            "SELECT id FROM items ORDER BY v <-> {} LIMIT 10",
            vector_literal(q)
        );
        assert_eq!(&ids(&run(&instance, &mut s, &sql).await), want);
    }
    // Compaction writes one segment and builds its index before it is used.
    assert_eq!(engine.compact_all().await.unwrap(), 4);
    let view = text(
        &run(
            &instance,
            &mut s,
            "SELECT state, segments_indexed, segments_total FROM quiver_catalog.indexes",
        )
        .await,
    );
    assert!(view.contains("| ready | 1                | 1"), "{view}");
    let index_files = std::fs::read_dir(dir.path().join("objects/tables/1/indexes"))
        .unwrap()
        .count();
    assert_eq!(index_files, 1, "old segments' index files are deleted");
    for (q, want) in queries.chunks_exact(DIM).zip(&expected) {
        let sql = format!(
            "SELECT id FROM items ORDER BY v <-> {} LIMIT 10",
            vector_literal(q)
        );
        let got = ids(&run(&instance, &mut s, &sql).await);
        assert!(recall(&got, want) >= 0.9, "{got:?} vs {want:?}");
    }
    // DROP INDEX removes the files; searches fall back to exact.
    run(&instance, &mut s, "DROP INDEX items_hnsw").await;
    let left = std::fs::read_dir(dir.path().join("objects/tables/1/indexes"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "DROP INDEX deletes the index files");
    let plan = explain(
        &instance,
        &mut s,
        "EXPLAIN SELECT id FROM items ORDER BY v <-> {q} LIMIT 10",
        &queries[..DIM],
    )
    .await;
    assert!(plan.contains("mode=exact"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_search_keeps_recall_at_every_selectivity() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10_000;
    let (engine, instance) = open(dir.path(), 1_000_000).await;
    let mut s = session(&instance).await;
    let vectors = load(&engine, &instance, &mut s, n).await;
    run(
        &instance,
        &mut s,
        "CREATE INDEX ON items USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 100)",
    )
    .await;
    let queries = queries_near_data(n, 30);
    let mut table = vec!["selectivity | rows returned | recall@10".to_string()];
    for (label, below) in [("50%", 500), ("10%", 100), ("1%", 10), ("0.1%", 1)] {
        let mut total = 0.0;
        for q in queries.chunks_exact(DIM) {
            let sql = format!(
                "SELECT id FROM items WHERE bucket < {below} ORDER BY v <-> {} LIMIT 10",
                vector_literal(q)
            );
            let got = ids(&run(&instance, &mut s, &sql).await);
            assert_eq!(got.len(), 10, "{label}: LIMIT 10 returns 10 rows");
            let truth = exact(&vectors, q, 10, |i| (i % 1000) < below);
            total += recall(&got, &truth);
        }
        let mean = total / 30.0;
        table.push(format!("{label} | 10 | {mean:.3}"));
        assert!(mean >= 0.95, "{label}: recall {mean}");
    }
    eprintln!("{}", table.join("\n"));
}
