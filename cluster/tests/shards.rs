//! Sharded tables: rows spread over every shard by primary key, each shard
//! seals and flushes its own growing segment, compaction stays inside a
//! shard, and a crash replays each shard's rows exactly from where that
//! shard's flushed segments end.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::api::{Coordinator, TableRef};
use quiver_cluster::shards::shard_of;
use quiver_cluster::{Engine, EngineError, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_exec::pk::PkValue;
use quiver_exec::source::{adapt_batch, visible_mask};
use quiver_exec::table_source::TableSource;
use support::visible_ids;

fn config(dir: &std::path::Path, seal_rows: usize) -> QuiverConfig {
    let mut c = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    c.segment.seal_rows = seal_rows;
    c.segment.compaction_min_segments = 2;
    c.segment.compaction_small_rows = 1_000_000;
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

fn rows(ids: impl IntoIterator<Item = i64>, tag: &str) -> RecordBatch {
    let ids: Vec<i64> = ids.into_iter().collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let s: Vec<String> = ids.iter().map(|i| format!("{tag}{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(s)),
        ],
    )
    .unwrap()
}

/// Every visible (id, s) of `public.<table>`, by id.
fn visible(engine: &Engine, table: &str) -> BTreeMap<i64, String> {
    let snap = engine.inspect_snapshot("public", table, None).unwrap();
    let storage = snap.schema.storage_schema();
    let deletes = snap.deletes.read();
    let mut out = BTreeMap::new();
    for seg in &snap.segments {
        for b in seg.batches.iter() {
            let b = adapt_batch(b, &storage).unwrap();
            let mask = visible_mask(&b, 0, &deletes, snap.read_ts);
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..b.num_rows() {
                if mask.as_ref().is_none_or(|m| m.value(i)) {
                    let old = out.insert(ids.value(i), s.value(i).to_string());
                    assert!(old.is_none(), "row {} visible twice", ids.value(i));
                }
            }
        }
    }
    out
}

/// Rows per shard as the layout reports them (growing + sealed).
async fn rows_per_shard(engine: &Engine, table: &str) -> Vec<u64> {
    let layout = engine.layout(TableRef::new("public", table)).await.unwrap();
    layout
        .shards
        .iter()
        .map(|s| s.growing_rows + s.sealed_segments.iter().map(|p| p.rows).sum::<u64>())
        .collect()
}

/// Every segment of the table holds only rows of its own shard.
fn check_segments_hold_their_shard(engine: &Engine, table: &str, shards: u32) {
    let snap = engine.inspect_snapshot("public", table, None).unwrap();
    for seg in &snap.segments {
        for b in seg.batches.iter() {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for id in ids.values() {
                assert_eq!(
                    shard_of(&PkValue::Int(*id), shards),
                    seg.shard,
                    "row {id} in segment {} of shard {}",
                    seg.id,
                    seg.shard
                );
            }
        }
    }
}

#[tokio::test]
async fn rows_spread_over_every_shard_and_writes_behave_as_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path(), 100)).await.unwrap();
    engine
        .create_sharded_table("public", "four", schema(), 4, false)
        .await
        .unwrap();
    engine
        .create_table("public", "one", schema(), false)
        .await
        .unwrap();
    for table in ["four", "one"] {
        engine
            .write("public", table, rows(0..1000, "a"), WriteMode::Insert)
            .await
            .unwrap();
        // A duplicate key is refused whatever shard it hashes to.
        let err = engine
            .write("public", table, rows([999, 5000], "dup"), WriteMode::Insert)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::DuplicateKey { .. }), "{err}");
        engine
            .write("public", table, rows(990..1010, "u"), WriteMode::Upsert)
            .await
            .unwrap();
        engine
            .write(
                "public",
                table,
                rows(0..20, "skip"),
                WriteMode::InsertIgnore,
            )
            .await
            .unwrap();
        let deleted = engine
            .delete("public", table, (100..150).map(PkValue::Int).collect())
            .await
            .unwrap();
        assert_eq!(deleted, 50);
    }
    let per_shard = rows_per_shard(&engine, "four").await;
    assert_eq!(per_shard.len(), 4);
    assert!(per_shard.iter().all(|&n| n > 150), "{per_shard:?}");
    assert_eq!(rows_per_shard(&engine, "one").await.len(), 1);
    let info = engine.catalog().await.unwrap();
    let four = info.tables.iter().find(|t| t.table.name == "four").unwrap();
    assert_eq!(four.shards, 4);
    check_segments_hold_their_shard(&engine, "four", 4);
    let expected = visible(&engine, "one");
    assert_eq!(expected.len(), 960);
    assert_eq!(visible(&engine, "four"), expected);

    // Flush and compaction: each shard's segments merge among themselves.
    engine.flush_all().await.unwrap();
    engine.compact_all().await.unwrap();
    check_segments_hold_their_shard(&engine, "four", 4);
    let layout = engine
        .layout(TableRef::new("public", "four"))
        .await
        .unwrap();
    for shard in &layout.shards {
        assert_eq!(shard.sealed_segments.len(), 1, "shard {}", shard.shard);
        assert_eq!(
            shard.channel,
            format!("wal/table-{}/shard-{}", layout.table_id, shard.shard)
        );
    }
    assert_eq!(visible(&engine, "four"), expected);
    engine.shutdown().await.unwrap();
    drop(engine);

    let engine = Engine::open(config(dir.path(), 100)).await.unwrap();
    assert_eq!(visible(&engine, "four"), expected);
    check_segments_hold_their_shard(&engine, "four", 4);
    assert_eq!(visible_ids(&engine, "four").len(), 960);
}

#[tokio::test]
async fn shard_count_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path(), 100)).await.unwrap();
    for shards in [0, 17] {
        let err = engine
            .create_sharded_table("public", "t", schema(), shards, false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, EngineError::TooManyShards { max: 16, .. }),
            "{err}"
        );
    }
    engine
        .create_sharded_table("public", "t", schema(), 16, false)
        .await
        .unwrap();
}

/// Shards seal at different moments, so one shard's flushed segments can
/// end at a later WAL record than another shard's growing rows begin. A
/// crash then must replay, for each shard, exactly the rows after its own
/// flushed segments: none lost, none twice.
#[tokio::test]
async fn a_crash_replays_each_shard_from_its_own_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();
    {
        // Seal at 7 rows: with 3 shards the shards fill (and seal) unevenly.
        let engine = Engine::open(config(dir.path(), 7)).await.unwrap();
        engine
            .create_sharded_table("public", "t", schema(), 3, false)
            .await
            .unwrap();
        for round in 0..40i64 {
            let ids = (round * 3)..(round * 3 + 3);
            engine
                .write("public", "t", rows(ids.clone(), "r"), WriteMode::Insert)
                .await
                .unwrap();
            for id in ids {
                expected.insert(id, format!("r{id}"));
            }
            if round % 5 == 4 {
                // Flushes the shards' sealed segments (and compacts them);
                // growing rows stay in the WAL.
                engine.maintain().await.unwrap();
            }
            if round % 7 == 3 {
                let id = round * 3 - 4;
                engine
                    .write("public", "t", rows([id], "up"), WriteMode::Upsert)
                    .await
                    .unwrap();
                expected.insert(id, format!("up{id}"));
            }
        }
        // Deterministically: shard 1 gets a few rows, then shard 0 fills
        // and seals at a later record and is flushed; shard 1's rows,
        // older than shard 0's checkpoint, live only in the WAL.
        let keys_of = |shard: u32, n: usize| -> Vec<i64> {
            (1_000..)
                .filter(|k| shard_of(&PkValue::Int(*k), 3) == shard && !expected.contains_key(k))
                .take(n)
                .collect()
        };
        engine.flush_all().await.unwrap();
        let shard1 = keys_of(1, 2);
        let shard0 = keys_of(0, 7);
        for ids in [shard1, shard0] {
            engine
                .write("public", "t", rows(ids.clone(), "late"), WriteMode::Insert)
                .await
                .unwrap();
            for id in ids {
                expected.insert(id, format!("late{id}"));
            }
        }
        engine.maintain().await.unwrap();
        let (_, sealed, growing) = engine.table_stats("public", "t").await.unwrap();
        assert!(
            sealed >= 3 && growing > 0,
            "sealed {sealed}, growing {growing}"
        );
        let table_id = engine.table("public", "t").unwrap().id();
        let own = engine.streaming_node().checkpoints(table_id).unwrap();
        let checkpoints: Vec<u64> = (0..3).map(|s| own.shard_persisted_lsn(s)).collect();
        assert!(
            checkpoints.iter().any(|&c| c != checkpoints[0]),
            "the shards' checkpoints differ: {checkpoints:?}"
        );
        assert_eq!(visible(&engine, "t"), expected);
        // Dropped without a shutdown: the crash.
    }
    let engine = Engine::open(config(dir.path(), 7)).await.unwrap();
    assert_eq!(visible(&engine, "t"), expected);
    check_segments_hold_their_shard(&engine, "t", 3);
    // The live keys came back too: every key is taken.
    let err = engine
        .write("public", "t", rows([0], "x"), WriteMode::Insert)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::DuplicateKey { .. }), "{err}");
}

/// With `cluster.serialize_seams`, the fragments a search or scan reaches
/// are behind encoded messages, the coordinator API round-trips its
/// messages, and writes cross as Arrow IPC — with the same results.
#[tokio::test]
async fn serialized_seams_give_the_same_answers() {
    use quiver_cluster::api::wire::WireCoordinator;
    use quiver_cluster::api::CreateTable;

    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 100);
    config.cluster.serialize_seams = true;
    let engine = Engine::open(config).await.unwrap();
    let coordinator = WireCoordinator::new(engine.clone());
    assert!(coordinator
        .create_table(CreateTable {
            table: TableRef::new("public", "t"),
            schema: schema(),
            shards: 2,
            if_not_exists: false,
            in_block: None,
        })
        .await
        .unwrap());
    let outcome = engine
        .write("public", "t", rows(0..250, "w"), WriteMode::Insert)
        .await
        .unwrap();
    assert_eq!(outcome.rows.num_rows(), 250);
    // Each shard sealed its ~125 rows; these stay growing.
    engine
        .write("public", "t", rows(250..260, "g"), WriteMode::Insert)
        .await
        .unwrap();
    assert_eq!(
        engine
            .delete("public", "t", (0..10).map(PkValue::Int).collect())
            .await
            .unwrap(),
        10
    );
    let table = engine.table_view("public", "t").unwrap();
    let (_, fragments) = table.fragments(None).await.unwrap();
    assert_eq!(fragments.len(), 4, "2 shards, sealed and growing each");
    for fragment in &fragments {
        assert!(
            format!("{fragment:?}").starts_with("WireFragment"),
            "{fragment:?}"
        );
    }
    let layout = coordinator
        .layout(TableRef::new("public", "t"))
        .await
        .unwrap();
    assert_eq!(layout.shards.len(), 2);
    assert_eq!(visible(&engine, "t").len(), 250);
}
