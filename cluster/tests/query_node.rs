//! The query node serves flushed segments from its own registry: a flush
//! hands segments over from the streaming node (which forgets them), a
//! read while a segment is in both places sees its rows once (also when
//! the query node merged it into another meanwhile), a segment
//! loaded again replaces its copy, and a restart loads every flushed
//! segment back onto the query node; the query node holds the table's
//! deletes in a map of its own, fed by the streaming node and, after a
//! restart, by the delete logs and the WAL's replay.

mod support;

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::api::query::{LoadSegments, SegmentToLoad};
use quiver_cluster::coordinator::SegmentMeta;
use quiver_cluster::{Engine, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_exec::pk::{pk_values, PkValue};
use support::visible_ids;

fn config(dir: &std::path::Path, serialize_seams: bool) -> QuiverConfig {
    let mut config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.cluster.serialize_seams = serialize_seams;
    config.segment.seal_rows = 20;
    config.segment.compaction_min_segments = 1_000;
    config
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(ids))]).unwrap()
}

async fn engine_with_table(dir: &std::path::Path, serialize_seams: bool) -> Arc<Engine> {
    let engine = Engine::open(config(dir, serialize_seams)).await.unwrap();
    let schema = TableSchema {
        columns: vec![ColumnDef::new("id", ColumnType::Int64)],
        primary_key: 0,
    };
    engine
        .create_table("public", "t", schema, false)
        .await
        .unwrap();
    engine
}

/// Segment ids the query node serves of `public.t`.
async fn served_ids(engine: &Engine) -> Vec<u64> {
    let table_id = engine.table("public", "t").unwrap().id();
    let served = engine.query_node().served_segments(table_id).await.unwrap();
    served.iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn flushed_segments_move_to_the_query_node_and_are_read_once() {
    hand_off(false).await;
}

/// The same through encoded messages: the query node reads each segment
/// handed over from its object.
#[tokio::test]
async fn flushed_segments_move_to_the_query_node_through_encoded_messages() {
    hand_off(true).await;
}

async fn hand_off(serialize_seams: bool) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_table(dir.path(), serialize_seams).await;
    for ids in [0..20, 20..40, 40..50] {
        engine
            .write("public", "t", rows(ids), WriteMode::Insert)
            .await
            .unwrap();
    }
    let table = engine.table("public", "t").unwrap();
    // Two segments sealed at 20 rows, still on the streaming node.
    assert_eq!(
        engine
            .streaming_node()
            .table(table.id())
            .unwrap()
            .data
            .read()
            .sealed
            .len(),
        2
    );
    assert!(served_ids(&engine).await.is_empty());
    assert_eq!(visible_ids(&engine, "t"), (0..50).collect::<Vec<_>>());

    engine.flush_table("public", "t").await.unwrap();
    assert!(
        engine
            .streaming_node()
            .table(table.id())
            .unwrap()
            .data
            .read()
            .sealed
            .is_empty(),
        "the streaming node forgets what it handed over"
    );
    assert_eq!(
        served_ids(&engine).await.len(),
        3,
        "20 + 20 + the 10 sealed by the flush"
    );
    assert_eq!(visible_ids(&engine, "t"), (0..50).collect::<Vec<_>>());

    engine
        .write("public", "t", rows(50..70), WriteMode::Insert)
        .await
        .unwrap();
    if !serialize_seams {
        cut_hand_off(&engine).await;
    }
    engine.flush_table("public", "t").await.unwrap();
    assert!(engine
        .streaming_node()
        .table(table.id())
        .unwrap()
        .data
        .read()
        .sealed
        .is_empty());
    assert_eq!(served_ids(&engine).await.len(), 4);
    assert_eq!(visible_ids(&engine, "t"), (0..70).collect::<Vec<_>>());

    // A restart loads every flushed segment onto the query node again.
    let before = served_ids(&engine).await;
    engine.shutdown().await.unwrap();
    drop((engine, table));
    let engine = Engine::open(config(dir.path(), serialize_seams))
        .await
        .unwrap();
    assert_eq!(engine.recovery.segments_loaded, 4);
    assert_eq!(served_ids(&engine).await, before);
    assert_eq!(visible_ids(&engine, "t"), (0..70).collect::<Vec<_>>());

    // A dropped table's segments are released.
    let table_id = engine.table("public", "t").unwrap().id();
    engine.drop_table("public", "t", false).await.unwrap();
    let served = engine.query_node().served_segments(table_id).await.unwrap();
    assert!(served.is_empty());
    engine.shutdown().await.unwrap();
}

/// A hand-off cut in the middle: the query node has loaded a segment the
/// streaming node still holds (of rows 50..70). Each row is read once; a
/// segment loaded again replaces its copy.
async fn cut_hand_off(engine: &Engine) {
    let table = engine.table("public", "t").unwrap();
    let sealed = engine
        .streaming_node()
        .table(table.id())
        .unwrap()
        .data
        .read()
        .sealed[0]
        .clone();
    let load = |rows: Option<Arc<Vec<RecordBatch>>>| LoadSegments {
        table_id: table.id(),
        schema: table.schema(),
        index_ids: Vec::new(),
        load: vec![SegmentToLoad {
            record: SegmentMeta {
                id: sealed.id,
                shard: sealed.shard,
                path: format!("not-read-{}", sealed.id),
                rows: sealed.rows,
                first_lsn: sealed.first_lsn,
                last_lsn: sealed.last_lsn,
                indexes: Vec::new(),
            },
            rows,
        }],
        release: Vec::new(),
        deltalogs: Vec::new(),
    };
    engine
        .query_node()
        .load_segments(load(Some(sealed.batches.clone())))
        .await
        .unwrap();
    assert_eq!(
        engine
            .streaming_node()
            .table(table.id())
            .unwrap()
            .data
            .read()
            .sealed
            .len(),
        1
    );
    assert_eq!(visible_ids(engine, "t"), (0..70).collect::<Vec<_>>());
    // Merged into another segment while the streaming node still holds it
    // (a reader's two calls straddling a hand-off and a compaction): the
    // query node covers it, so its rows are read once, from the merged
    // segment.
    let merged = LoadSegments {
        load: vec![SegmentToLoad {
            record: SegmentMeta {
                id: 10_000,
                path: "not-read-merged".into(),
                ..load(None).load[0].record.clone()
            },
            rows: Some(sealed.batches.clone()),
        }],
        release: vec![sealed.id],
        ..load(None)
    };
    engine.query_node().load_segments(merged).await.unwrap();
    assert!(!served_ids(engine).await.contains(&sealed.id));
    assert_eq!(visible_ids(engine, "t"), (0..70).collect::<Vec<_>>());
    // Loaded again (a flush retried after the cut), in the merged
    // segment's place: it replaces its copy.
    engine
        .query_node()
        .load_segments(LoadSegments {
            release: vec![10_000],
            ..load(Some(sealed.batches.clone()))
        })
        .await
        .unwrap();
    assert_eq!(served_ids(engine).await.len(), 4);
    assert_eq!(visible_ids(engine, "t"), (0..70).collect::<Vec<_>>());
}

/// The keys the query node sees visible in `public.t`, sorted.
async fn query_node_keys(engine: &Engine) -> Vec<i64> {
    let table_id = engine.table("public", "t").unwrap().id();
    let keys = engine.query_node().live_keys(table_id).await.unwrap();
    let mut keys: Vec<i64> = keys
        .map(|batch| pk_values(batch.column(0)))
        .unwrap_or_default()
        .into_iter()
        .map(|key| match key {
            Some(PkValue::Int(id)) => id,
            other => panic!("unexpected key {other:?}"),
        })
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn deletes_reach_the_query_node() {
    query_node_deletes(false).await;
}

#[tokio::test]
async fn deletes_reach_the_query_node_through_encoded_messages() {
    query_node_deletes(true).await;
}

async fn query_node_deletes(serialize_seams: bool) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_table(dir.path(), serialize_seams).await;
    engine
        .write("public", "t", rows(0..40), WriteMode::Insert)
        .await
        .unwrap();
    engine.flush_table("public", "t").await.unwrap();
    assert_eq!(query_node_keys(&engine).await, (0..40).collect::<Vec<_>>());
    // Rows of flushed segments deleted and replaced: the query node's own
    // map hides them, for its scans and its live keys alike.
    engine
        .delete("public", "t", (0..5).map(PkValue::Int).collect())
        .await
        .unwrap();
    engine
        .write("public", "t", rows(35..45), WriteMode::Upsert)
        .await
        .unwrap();
    let expected: Vec<i64> = (5..45).collect();
    assert_eq!(visible_ids(&engine, "t"), expected);
    assert_eq!(query_node_keys(&engine).await, (5..35).collect::<Vec<_>>());
    // A delete sent before the segment it hits is handed over still hides
    // its row there (rows 40..45 are growing when 44 is deleted).
    engine
        .delete("public", "t", vec![PkValue::Int(44)])
        .await
        .unwrap();
    engine.flush_table("public", "t").await.unwrap();
    let expected: Vec<i64> = (5..44).collect();
    assert_eq!(query_node_keys(&engine).await, expected);
    assert_eq!(visible_ids(&engine, "t"), expected);

    // A restart without a clean stop: the deletes persisted in delete logs
    // and the ones replayed from the WAL reach the new query node.
    engine
        .delete("public", "t", vec![PkValue::Int(10), PkValue::Int(20)])
        .await
        .unwrap();
    drop(engine);
    let engine = Engine::open(config(dir.path(), serialize_seams))
        .await
        .unwrap();
    let expected: Vec<i64> = (5..44).filter(|id| *id != 10 && *id != 20).collect();
    assert_eq!(visible_ids(&engine, "t"), expected);
    engine.flush_table("public", "t").await.unwrap();
    assert_eq!(query_node_keys(&engine).await, expected);
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = Engine::open(config(dir.path(), serialize_seams))
        .await
        .unwrap();
    assert_eq!(query_node_keys(&engine).await, expected);
    assert_eq!(visible_ids(&engine, "t"), expected);
    engine.shutdown().await.unwrap();
}
