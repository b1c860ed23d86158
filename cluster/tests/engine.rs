//! The standalone engine: write path, MVCC, flush, compaction, recovery.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::{Engine, EngineError, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_exec::pk::PkValue;
use quiver_exec::source::{adapt_batch, visible_mask};

fn config(dir: &std::path::Path) -> QuiverConfig {
    let mut c = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    c.segment.seal_rows = 10;
    c.segment.compaction_min_segments = 2;
    c.segment.compaction_small_rows = 1_000;
    c
}

fn schema() -> TableSchema {
    TableSchema {
        columns: vec![
            ColumnDef::new("id", ColumnType::Int64),
            ColumnDef::new("s", ColumnType::Text { max_len: None }),
        ],
        primary_key: 0,
    }
}

fn rows(ids: std::ops::Range<i64>, tag: &str) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let s: Vec<String> = ids.clone().map(|i| format!("{tag}{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(s)),
        ],
    )
    .unwrap()
}

/// Visible (id, s) pairs at `ts` (None = now).
fn visible(engine: &Engine, ts: Option<u64>) -> Vec<(i64, String)> {
    let snap = engine.inspect_snapshot("public", "t", ts).unwrap();
    let storage = snap.schema.storage_schema();
    let deletes = snap.deletes.read();
    let mut out = Vec::new();
    for seg in &snap.segments {
        for b in seg.batches.iter() {
            let b = adapt_batch(b, &storage).unwrap();
            let mask = visible_mask(&b, 0, &deletes, snap.read_ts);
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..b.num_rows() {
                if mask.as_ref().is_none_or(|m| m.value(i)) {
                    out.push((ids.value(i), s.value(i).to_string()));
                }
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn writes_are_visible_versioned_flushed_compacted_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).await.unwrap();
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        engine
            .write("public", "t", rows(0..25, "a"), WriteMode::Insert)
            .await
            .unwrap();
        let before_upsert = engine.now().unwrap();
        let err = engine
            .write("public", "t", rows(5..6, "dup"), WriteMode::Insert)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::DuplicateKey { .. }), "{err}");
        engine
            .write("public", "t", rows(20..30, "b"), WriteMode::Upsert)
            .await
            .unwrap();
        assert_eq!(
            engine
                .delete("public", "t", (0..5).map(PkValue::Int).collect())
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            engine
                .delete("public", "t", vec![PkValue::Int(0)])
                .await
                .unwrap(),
            0,
            "already deleted"
        );
        // MVCC: a reader before the upsert and the deletes sees the old rows.
        let old = visible(&engine, Some(before_upsert));
        assert_eq!(old.len(), 25);
        assert_eq!(old[24], (24, "a24".to_string()));
        let now = visible(&engine, None);
        assert_eq!(now.len(), 25);
        assert_eq!(now[0], (5, "a5".to_string()));
        assert_eq!(now.last().unwrap(), &(29, "b29".to_string()));
        engine.maintain().await.unwrap();
        let (_, sealed, _) = engine.table_stats("public", "t").await.unwrap();
        assert!(sealed >= 1);
        assert!(engine.compact_all().await.unwrap() > 0 || sealed == 1);
        assert_eq!(
            visible(&engine, None),
            now,
            "compaction keeps the visible rows"
        );
        engine.shutdown().await.unwrap();
    }
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let now = visible(&engine, None);
    assert_eq!(now.len(), 25);
    assert_eq!(now[0], (5, "a5".to_string()));
    let err = engine
        .write("public", "t", rows(29..30, "x"), WriteMode::Insert)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::DuplicateKey { .. }),
        "live keys rebuilt after restart"
    );
    engine
        .write("public", "t", rows(0..1, "again"), WriteMode::Insert)
        .await
        .unwrap();
    assert_eq!(visible(&engine, None)[0], (0, "again0".to_string()));
}

#[tokio::test]
async fn not_null_and_schema_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let no_pk = TableSchema {
        columns: vec![ColumnDef::new("v", ColumnType::Json)],
        primary_key: 0,
    };
    assert!(matches!(
        engine.create_table("public", "x", no_pk, false).await,
        Err(EngineError::InvalidDefinition(_))
    ));
    engine
        .create_table("public", "t", schema(), false)
        .await
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let nulls = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![None, Some(1)]))],
    )
    .unwrap();
    let err = engine
        .write("public", "t", nulls, WriteMode::Insert)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotNull { .. }), "{err}");
    assert!(matches!(
        engine.create_database("public", false).await,
        Err(EngineError::DatabaseAlreadyExists(_))
    ));
    assert!(matches!(
        engine.drop_database("nope", false, false).await,
        Err(EngineError::DatabaseNotFound(_))
    ));
}

fn wal_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("wal-")
        })
        .count()
}

#[tokio::test]
async fn flush_truncates_the_wal_and_compaction_drops_deleted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.wal.segment_bytes = 4096;
    let engine = Engine::open(c).await.unwrap();
    engine
        .create_table("public", "t", schema(), false)
        .await
        .unwrap();
    for i in 0..40 {
        engine
            .write(
                "public",
                "t",
                rows(i * 5..i * 5 + 5, "w"),
                WriteMode::Insert,
            )
            .await
            .unwrap();
    }
    let before = wal_files(dir.path());
    assert!(before > 3, "small WAL segments roll: {before}");
    engine
        .delete("public", "t", (0..50).map(PkValue::Int).collect())
        .await
        .unwrap();
    engine.flush_all().await.unwrap();
    let after = wal_files(dir.path());
    assert!(
        after < before,
        "WAL truncated behind the flushed segments: {before} -> {after}"
    );

    assert_eq!(
        engine
            .inspect_snapshot("public", "t", None)
            .unwrap()
            .stored_rows(),
        200,
        "deleted rows still stored before compaction"
    );
    assert!(engine.compact_all().await.unwrap() >= 2);
    assert_eq!(
        engine
            .inspect_snapshot("public", "t", None)
            .unwrap()
            .stored_rows(),
        150,
        "compaction dropped the 50 deleted rows"
    );
    assert_eq!(visible(&engine, None).len(), 150);
}

#[tokio::test]
async fn table_options_are_durable_follow_a_rename_and_go_with_the_table() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).await.unwrap();
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        engine
            .create_table("public", "u", schema(), false)
            .await
            .unwrap();
        assert_eq!(engine.table_names("public"), ["t", "u"]);
        assert!(engine.table_options("public", "t").unwrap().is_empty());
        engine
            .set_table_options(
                "public",
                "t",
                &[
                    ("a".to_string(), Some("1".to_string())),
                    ("b".to_string(), Some("2".to_string())),
                ],
            )
            .await
            .unwrap();
        engine
            .set_table_options("public", "t", &[("a".to_string(), None)])
            .await
            .unwrap();
        engine.rename_table("public", "t", "t2").await.unwrap();
        assert!(matches!(
            engine.set_table_options("public", "nope", &[]).await,
            Err(EngineError::TableNotFound { .. })
        ));
        // Not shut down: the options must come back from the meta store.
    }
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let options = engine.table_options("public", "t2").unwrap();
    assert_eq!(options.len(), 1);
    assert_eq!(options["b"], "2");
    assert!(engine.table_options("public", "u").unwrap().is_empty());
    engine.drop_table("public", "t2", false).await.unwrap();
    engine
        .create_table("public", "t2", schema(), false)
        .await
        .unwrap();
    assert!(engine.table_options("public", "t2").unwrap().is_empty());
}
