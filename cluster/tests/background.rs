//! Background work across crashes: per-segment index progress survives a
//! crash (finished segments' indexes are loaded, the build resumes with the
//! next segment), the checkpoint right after recovery keeps the next replay
//! small, and compaction merges in bounded, committed steps.
//!
//! "Crash" here is dropping the engine without [`Engine::shutdown`]: nothing
//! is flushed or sealed on the way out; the WAL's acknowledged records are
//! all there is.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::data_node::pick_merge;
use quiver_cluster::engine::IndexDefinition;
use quiver_cluster::{Engine, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_exec::pk::PkValue;
use quiver_exec::source::SegmentKind;
use support::visible_ids;

const DIM: usize = 4;

fn config(dir: &std::path::Path, seal_rows: usize) -> QuiverConfig {
    let mut c = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    c.segment.seal_rows = seal_rows;
    c.segment.compaction_min_segments = 1_000; // no compaction unless a test wants it
    c.segment.compaction_small_rows = 1;
    c
}

fn schema() -> TableSchema {
    TableSchema {
        columns: vec![
            ColumnDef::new("id", ColumnType::Int64),
            ColumnDef::new("v", ColumnType::Vector { dim: DIM as u32 }),
        ],
        primary_key: 0,
    }
}

/// Rows `ids` with vectors `[i, i mod 7, 1, 0]` given as pgvector text.
fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let v: Vec<String> = ids
        .clone()
        .map(|i| format!("[{i},{},1,0]", i % 7))
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(v)),
        ],
    )
    .unwrap()
}

/// Writes rows `ids` in batches of 20 (a batch never splits across segments).
async fn write_rows(engine: &Engine, ids: std::ops::Range<i64>) {
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + 20).min(ids.end);
        engine
            .write("public", "t", rows(start..end), WriteMode::Insert)
            .await
            .unwrap();
        start = end;
    }
}

fn hnsw() -> IndexDefinition {
    IndexDefinition {
        name: Some("t_v_idx".into()),
        column: "v".into(),
        kind: "hnsw".into(),
        metric: "l2".into(),
        params: BTreeMap::from([("m".to_string(), 8), ("ef_construction".to_string(), 32)]),
    }
}

/// Index files in object storage, by name, with their modification times.
fn index_files(dir: &std::path::Path) -> BTreeMap<String, std::time::SystemTime> {
    let Ok(entries) = std::fs::read_dir(dir.join("objects/tables/1/indexes")) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect()
}

async fn segments_indexed(engine: &Engine) -> (usize, usize) {
    let status = engine.table_index_statuses("public", "t").await.unwrap();
    (status[0].segments_indexed, status[0].segments_total)
}

#[tokio::test]
async fn finished_segment_indexes_survive_a_crash_and_the_build_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let before_crash = {
        let engine = Engine::open(config(dir.path(), 20)).await.unwrap();
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        write_rows(&engine, 0..100).await;
        engine.flush_all().await.unwrap();
        assert_eq!(engine.table_stats("public", "t").await.unwrap().1, 5);
        engine
            .create_index("public", "t", hnsw(), false)
            .await
            .unwrap();
        let progress = std::sync::Mutex::new(Vec::new());
        let built = engine
            .build_indexes_limited("public", "t", 2, &|done, total| {
                progress.lock().unwrap().push((done, total));
            })
            .await
            .unwrap();
        assert_eq!(built, 2);
        assert_eq!(*progress.lock().unwrap(), [(1, 2), (2, 2)]);
        assert_eq!(segments_indexed(&engine).await, (2, 5));
        let files = index_files(dir.path());
        assert_eq!(
            files.len(),
            2,
            "each finished segment's index is stored at once"
        );
        files
        // Dropped here without a shutdown: the crash.
    };
    let engine = Engine::open(config(dir.path(), 20)).await.unwrap();
    assert_eq!(
        engine.recovery.indexes_loaded, 2,
        "the two finished segment indexes are loaded, not rebuilt"
    );
    assert_eq!(segments_indexed(&engine).await, (2, 5));
    assert_eq!(
        index_files(dir.path()),
        before_crash,
        "the finished indexes' files are the ones written before the crash"
    );
    let progress = std::sync::Mutex::new(Vec::new());
    let built = engine
        .build_indexes("public", "t", &|done, total| {
            progress.lock().unwrap().push((done, total));
        })
        .await
        .unwrap();
    assert_eq!(
        built, 3,
        "the build resumes with the next segment without one"
    );
    assert_eq!(*progress.lock().unwrap(), [(1, 3), (2, 3), (3, 3)]);
    assert_eq!(segments_indexed(&engine).await, (5, 5));
    let after = index_files(dir.path());
    assert_eq!(after.len(), 5);
    for (name, modified) in &before_crash {
        assert_eq!(after.get(name), Some(modified), "{name} was not rebuilt");
    }
    assert_eq!(visible_ids(&engine, "t"), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn background_maintenance_resumes_an_interrupted_build_right_after_startup() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path(), 20)).await.unwrap();
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        write_rows(&engine, 0..100).await;
        engine.flush_all().await.unwrap();
        engine
            .create_index("public", "t", hnsw(), false)
            .await
            .unwrap();
        engine
            .build_indexes_limited("public", "t", 3, &|_, _| {})
            .await
            .unwrap();
    }
    let mut c = config(dir.path(), 20);
    c.segment.maintenance_interval_ms = 3_600_000; // only the first pass can run
    let engine = Engine::open(c).await.unwrap();
    assert_eq!(engine.recovery.indexes_loaded, 3);
    let maintenance = engine.spawn_maintenance();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while segments_indexed(&engine).await != (5, 5) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first maintenance pass after startup finishes the build: {:?}",
            segments_indexed(&engine).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    engine.shutdown().await.unwrap();
    maintenance.await.unwrap();
}

#[tokio::test]
async fn the_checkpoint_after_recovery_keeps_the_next_replay_small() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path(), 1_000)).await.unwrap();
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        for i in 0..50 {
            engine
                .write("public", "t", rows(i * 4..i * 4 + 4), WriteMode::Insert)
                .await
                .unwrap();
        }
        engine
            .delete("public", "t", (0..10).map(PkValue::Int).collect())
            .await
            .unwrap();
        // Crash: 51 records only in the WAL, nothing sealed or flushed.
    }
    {
        let engine = Engine::open(config(dir.path(), 1_000)).await.unwrap();
        assert_eq!(engine.recovery.wal_records_replayed, 51);
        assert_eq!(
            engine.recovery.segments_sealed, 1,
            "the replayed rows are sealed"
        );
        assert_eq!(engine.recovery.segments_flushed, 1, "and flushed");
        assert_eq!(visible_ids(&engine, "t"), (10..200).collect::<Vec<_>>());
        // A few writes, then the next crash.
        for i in 50..53 {
            engine
                .write("public", "t", rows(i * 4..i * 4 + 4), WriteMode::Insert)
                .await
                .unwrap();
        }
    }
    {
        let engine = Engine::open(config(dir.path(), 1_000)).await.unwrap();
        assert_eq!(
            engine.recovery.wal_records_replayed, 3,
            "only what was written since the last start is replayed"
        );
        assert_eq!(visible_ids(&engine, "t"), (10..212).collect::<Vec<_>>());
    }
    let engine = Engine::open(config(dir.path(), 1_000)).await.unwrap();
    assert_eq!(
        engine.recovery.wal_records_replayed, 0,
        "nothing written since the last start: nothing replayed"
    );
    assert_eq!(visible_ids(&engine, "t"), (10..212).collect::<Vec<_>>());
    // The deletes were persisted as a delete log: a row deleted before the
    // first crash stays deleted, and its key is free again.
    engine
        .write("public", "t", rows(0..1), WriteMode::Insert)
        .await
        .unwrap();
    assert_eq!(visible_ids(&engine, "t")[0], 0);
}

#[test]
fn a_merge_takes_small_segments_smallest_first_up_to_the_size_bound() {
    let seg = |id: u64, rows: usize| (id, rows, true);
    // Fewer small segments than the minimum: nothing.
    assert!(pick_merge(&[seg(1, 10), seg(2, 10), seg(3, 500)], 3, 100).is_empty());
    // Unflushed or large segments never take part.
    assert!(pick_merge(&[seg(1, 10), (2, 10, false), seg(3, 100)], 2, 100).is_empty());
    // Smallest first, until the group holds `small_rows` rows.
    assert_eq!(
        pick_merge(
            &[
                seg(1, 60),
                seg(2, 5),
                seg(3, 500),
                seg(4, 50),
                seg(5, 5),
                seg(6, 70)
            ],
            2,
            100
        ),
        [2, 5, 4, 1]
    );
    // However many small segments piled up, one merge stays under twice the bound.
    let many: Vec<_> = (1..=200).map(|id| seg(id, 30)).collect();
    let group = pick_merge(&many, 4, 100);
    assert_eq!(group, [1, 2, 3, 4]);
    // Manual compaction (no bound): everything flushed.
    assert_eq!(pick_merge(&many, 2, usize::MAX).len(), 200);
}

#[tokio::test]
async fn compaction_makes_progress_in_committed_steps_with_indexes() {
    compaction_steps(false).await;
}

/// The same with every compaction task and its result encoded
/// (`cluster.serialize_seams`).
#[tokio::test]
async fn compaction_tasks_cross_encoded() {
    compaction_steps(true).await;
}

/// Ten segments of 20 rows, two rows deleted, compacted in leased steps;
/// every step committed with its index, the deleted rows gone from the
/// merged segments, and the result the same after a restart.
async fn compaction_steps(serialize_seams: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 20);
    c.segment.compaction_min_segments = 2;
    c.segment.compaction_small_rows = 50;
    c.cluster.serialize_seams = serialize_seams;
    let deleted = [5, 77];
    {
        let engine = Engine::open(c.clone()).await.unwrap();
        engine
            .create_table("public", "t", schema(), false)
            .await
            .unwrap();
        engine
            .create_index("public", "t", hnsw(), false)
            .await
            .unwrap();
        write_rows(&engine, 0..200).await;
        engine
            .delete("public", "t", deleted.map(PkValue::Int).to_vec())
            .await
            .unwrap();
        engine.flush_all().await.unwrap();
        assert_eq!(engine.table_stats("public", "t").await.unwrap().1, 10);
        engine.maintain().await.unwrap();
        // Ten segments of 20 rows merge three at a time (60 >= 50): three
        // merged segments plus the one left over, each merge committed with
        // its index; the left-over segment gets its index built. The
        // merged segments hold no deleted row.
        let snapshot = engine.inspect_snapshot("public", "t", None).unwrap();
        let sizes: Vec<usize> = snapshot
            .segments
            .iter()
            .filter(|s| s.kind == SegmentKind::Sealed)
            .map(|s| s.rows)
            .collect();
        assert_eq!(sizes.len(), 4, "{sizes:?}");
        assert_eq!(
            sizes.iter().sum::<usize>(),
            200 - deleted.len(),
            "{sizes:?}"
        );
        assert_eq!(segments_indexed(&engine).await, (4, 4));
        assert_eq!(
            index_files(dir.path()).len(),
            4,
            "old segments' indexes deleted"
        );
    }
    let engine = Engine::open(c).await.unwrap();
    assert_eq!(engine.recovery.segments_loaded, 4);
    assert_eq!(engine.recovery.indexes_loaded, 4);
    let expected: Vec<i64> = (0..200).filter(|id| !deleted.contains(id)).collect();
    assert_eq!(visible_ids(&engine, "t"), expected);
}
