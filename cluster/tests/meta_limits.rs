//! Catalog changes that touch more records than one meta-store transaction
//! may hold (128 writes: etcd's limit, which the embedded store enforces
//! too) still work and stay crash-safe: dropping an index or a table with
//! many segments, compacting many segments into one, and recovery finishing
//! a table drop a crash cut short.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::coordinator::{decode, encode, keys, SegmentMeta};
use quiver_cluster::engine::IndexDefinition;
use quiver_cluster::{Engine, EngineError, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_exec::pk::PkValue;
use quiver_storage::{MetaBatch, MetaStore, RedbMetaStore, MAX_TXN_OPS};
use support::visible_ids;

/// More segments than one transaction has writes.
const SEGMENTS: i64 = MAX_TXN_OPS as i64 + 22;

fn config(dir: &std::path::Path) -> QuiverConfig {
    let mut c = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    c.segment.seal_rows = 1; // every write seals a segment
    c.segment.compaction_min_segments = 100_000; // compaction only when asked
    c
}

/// An engine over `meta` (kept by the test to look at the records).
async fn open(dir: &std::path::Path, meta: &RedbMetaStore) -> Arc<Engine> {
    let config = config(dir);
    let objects = quiver_storage::open_object_store(&config).await.unwrap();
    let wal = quiver_storage::open_wal(&config, &objects).await.unwrap();
    Engine::open_with(config, Arc::new(meta.clone()), objects, wal)
        .await
        .unwrap()
}

fn schema() -> TableSchema {
    TableSchema {
        columns: vec![
            ColumnDef::new("id", ColumnType::Int64),
            ColumnDef::new("v", ColumnType::Vector { dim: 2 }),
        ],
        primary_key: 0,
    }
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let v: Vec<String> = ids.clone().map(|i| format!("[{i},1]")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(v)),
        ],
    )
    .unwrap()
}

fn hnsw() -> IndexDefinition {
    IndexDefinition {
        name: Some("t_v_idx".into()),
        column: "v".into(),
        kind: "hnsw".into(),
        metric: "l2".into(),
        params: BTreeMap::from([("m".to_string(), 8), ("ef_construction".to_string(), 16)]),
    }
}

/// One write (and so one sealed segment) per row.
async fn write_segments(engine: &Engine, table: &str, n: i64) {
    for i in 0..n {
        engine
            .write("public", table, rows(i..i + 1), WriteMode::Insert)
            .await
            .unwrap();
    }
    engine.flush_all().await.unwrap();
}

async fn segment_records(meta: &dyn MetaStore, table: u64) -> Vec<SegmentMeta> {
    meta.scan_prefix(&keys::segment_prefix(table))
        .await
        .unwrap()
        .into_iter()
        .map(|kv| decode(&kv.key, &kv.value).unwrap())
        .collect()
}

async fn count(meta: &dyn MetaStore, prefix: &str) -> usize {
    meta.scan_prefix(prefix).await.unwrap().len()
}

fn objects_under(dir: &std::path::Path, prefix: &str) -> usize {
    fn walk(path: &std::path::Path) -> usize {
        match std::fs::read_dir(path) {
            Ok(entries) => entries
                .map(|e| {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum(),
            Err(_) => 0,
        }
    }
    walk(&dir.join("objects").join(prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_touching_more_segments_than_a_transaction_holds() {
    let dir = tempfile::tempdir().unwrap();
    let meta = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
    let all: Vec<i64> = (0..SEGMENTS).collect();
    {
        let engine = open(dir.path(), &meta).await;
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        write_segments(&engine, "t", SEGMENTS).await;
        assert_eq!(
            engine.table_stats("public", "t").await.unwrap().1,
            SEGMENTS as usize
        );
        assert_eq!(segment_records(&meta, 1).await.len(), SEGMENTS as usize);

        // An index on every segment, then dropped: the drop commits with the
        // table record; the segment records forget the index in chunks.
        engine
            .create_index("public", "t", hnsw(), false)
            .await
            .unwrap();
        let built = engine
            .build_indexes("public", "t", &|_, _| {})
            .await
            .unwrap();
        assert_eq!(built, SEGMENTS as usize);
        let records = segment_records(&meta, 1).await;
        assert!(records.iter().all(|s| s.indexes.len() == 1));
        assert_eq!(
            objects_under(dir.path(), "tables/1/indexes"),
            SEGMENTS as usize
        );
        assert!(engine.drop_index("public", "t_v_idx", false).await.unwrap());
        let records = segment_records(&meta, 1).await;
        assert!(records.iter().all(|s| s.indexes.is_empty()));
        assert_eq!(objects_under(dir.path(), "tables/1/indexes"), 0);

        // Manual compaction merges everything into one segment, in steps
        // whose swaps each fit one transaction.
        assert_eq!(
            engine.compact_table("public", "t").await.unwrap(),
            SEGMENTS as usize
        );
        assert_eq!(engine.table_stats("public", "t").await.unwrap().1, 1);
        assert_eq!(segment_records(&meta, 1).await.len(), 1);
        assert_eq!(objects_under(dir.path(), "tables/1/segments"), 1);
        assert_eq!(visible_ids(&engine, "t"), all);
    }
    // A restart loads the one merged segment.
    let engine = open(dir.path(), &meta).await;
    assert_eq!(engine.recovery.segments_loaded, 1);
    assert_eq!(visible_ids(&engine, "t"), all);

    // A table with many segment and delete-log records is dropped: the drop
    // commits in one small transaction, the records go in chunks.
    engine
        .create_table("public", "u", schema(), false)
        .await
        .unwrap();
    write_segments(&engine, "u", SEGMENTS).await;
    for i in 0..3 {
        engine
            .delete("public", "u", vec![PkValue::Int(i)])
            .await
            .unwrap();
        engine.flush_table("public", "u").await.unwrap();
    }
    let u = engine.table("public", "u").unwrap().id();
    assert_eq!(segment_records(&meta, u).await.len(), SEGMENTS as usize);
    assert_eq!(count(&meta, &keys::deltalog_prefix(u)).await, 3);
    assert!(engine.drop_table("public", "u", false).await.unwrap());
    assert_eq!(count(&meta, &keys::segment_prefix(u)).await, 0);
    assert_eq!(count(&meta, &keys::deltalog_prefix(u)).await, 0);
    assert_eq!(count(&meta, keys::DROPPED_TABLE_PREFIX).await, 0);
    assert_eq!(meta.get(&keys::table(u)).await.unwrap(), None);
    assert_eq!(objects_under(dir.path(), &format!("tables/{u}")), 0);
    assert_eq!(
        visible_ids(&engine, "t"),
        all,
        "the other table is untouched"
    );
}

#[tokio::test]
async fn recovery_finishes_a_table_drop_a_crash_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let meta = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
    {
        let engine = open(dir.path(), &meta).await;
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        write_segments(&engine, "t", 3).await;
    }
    // What a crash right after the drop's own transaction leaves: the table
    // record gone and the intent recorded, its segment records and objects
    // still there.
    meta.apply(
        MetaBatch::new()
            .delete(keys::table(1))
            .delete(keys::autoid(1))
            .put(keys::dropped_table(1), encode(&true)),
    )
    .await
    .unwrap();
    assert_eq!(segment_records(&meta, 1).await.len(), 3);
    let engine = open(dir.path(), &meta).await;
    assert_eq!(engine.recovery.dropped_tables_cleaned, 1);
    assert_eq!(engine.recovery.tables, 0);
    assert!(matches!(
        engine.table("public", "t"),
        Err(EngineError::TableNotFound { .. })
    ));
    assert!(segment_records(&meta, 1).await.is_empty());
    assert_eq!(count(&meta, keys::DROPPED_TABLE_PREFIX).await, 0);
    assert_eq!(objects_under(dir.path(), "tables/1"), 0);
}
