//! The streaming node keeps its own state of the tables it carries: its
//! channel checkpoints under a key of its own (`channel/<table id>`, not
//! the coordinator's table record), recovered from there after a crash —
//! or, for a data directory written before, from the table record — and
//! its keys gone with a dropped table.

mod support;

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::api::streaming::ShardCheckpoints;
use quiver_cluster::coordinator::{decode, encode, keys, TableMeta};
use quiver_cluster::{Engine, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_storage::{MetaBatch, MetaStore, RedbMetaStore};
use support::visible_ids;

fn config(dir: &std::path::Path, serialize_seams: bool) -> QuiverConfig {
    let mut config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.segment.seal_rows = 10;
    config.segment.compaction_min_segments = 100_000;
    config.cluster.serialize_seams = serialize_seams;
    config
}

/// An engine over `meta` (kept by the test to look at the records).
async fn open(dir: &std::path::Path, meta: &RedbMetaStore, serialize_seams: bool) -> Arc<Engine> {
    let config = config(dir, serialize_seams);
    let objects = quiver_storage::open_object_store(&config).await.unwrap();
    let wal = quiver_storage::open_wal(&config, &objects).await.unwrap();
    Engine::open_with(config, Arc::new(meta.clone()), objects, wal)
        .await
        .unwrap()
}

fn meta_store(dir: &std::path::Path) -> RedbMetaStore {
    RedbMetaStore::open(&dir.join("meta.redb")).unwrap()
}

/// `public.t (id bigint auto_increment primary key, s text)`, 2 shards.
async fn create(engine: &Engine) -> u64 {
    let mut id = ColumnDef::new("id", ColumnType::Int64);
    id.auto_increment = true;
    let schema = TableSchema {
        columns: vec![id, ColumnDef::new("s", ColumnType::Text { max_len: None })],
        primary_key: 0,
    };
    engine
        .create_sharded_table("public", "t", schema, 2, false)
        .await
        .unwrap();
    engine.table("public", "t").unwrap().id()
}

/// Rows with these ids (`None`: the id is assigned).
fn rows(ids: &[Option<i64>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let s: Vec<String> = (0..ids.len()).map(|i| format!("v{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(s)),
        ],
    )
    .unwrap()
}

async fn write(engine: &Engine, ids: std::ops::Range<i64>) {
    let ids: Vec<Option<i64>> = ids.map(Some).collect();
    engine
        .write("public", "t", rows(&ids), WriteMode::Insert)
        .await
        .unwrap();
}

async fn channel_record(meta: &RedbMetaStore, table_id: u64) -> Option<ShardCheckpoints> {
    let key = keys::channel(table_id);
    let bytes = meta.get_value(&key).await.unwrap()?;
    Some(decode(&key, &bytes).unwrap())
}

async fn table_record(meta: &RedbMetaStore, table_id: u64) -> TableMeta {
    let key = keys::table(table_id);
    decode(&key, &meta.get_value(&key).await.unwrap().unwrap()).unwrap()
}

#[tokio::test]
async fn checkpoints_are_the_streaming_nodes_own_and_survive_a_crash() {
    checkpoints_survive_a_crash(false).await;
}

#[tokio::test]
async fn checkpoints_survive_a_crash_through_encoded_messages() {
    checkpoints_survive_a_crash(true).await;
}

async fn checkpoints_survive_a_crash(serialize_seams: bool) {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_store(dir.path());
    let engine = open(dir.path(), &meta, serialize_seams).await;
    let table_id = create(&engine).await;
    write(&engine, 0..25).await;
    engine
        .delete("public", "t", vec![quiver_exec::pk::PkValue::Int(3)])
        .await
        .unwrap();
    engine.flush_table("public", "t").await.unwrap();
    let own = engine.streaming_node().checkpoints(table_id).unwrap();
    assert!(
        own.inserts_persisted_lsn.iter().all(|&lsn| lsn > 0),
        "both shards flushed: {own:?}"
    );
    assert!(own.deletes_persisted_lsn > 0, "{own:?}");
    assert_eq!(channel_record(&meta, table_id).await.as_ref(), Some(&own));
    // The coordinator's record does not move with flushes.
    let record = table_record(&meta, table_id).await;
    assert_eq!(
        (record.inserts_persisted_lsn, record.deletes_persisted_lsn),
        (0, 0)
    );
    // Rows after the flush stay in the WAL only; then a crash.
    write(&engine, 100..105).await;
    drop(engine);

    let engine = open(dir.path(), &meta, serialize_seams).await;
    assert_eq!(
        engine.recovery.wal_records_replayed, 1,
        "only the write after the flush is replayed"
    );
    let expected: Vec<i64> = (0..25).filter(|&i| i != 3).chain(100..105).collect();
    assert_eq!(visible_ids(&engine, "t"), expected, "each row once");
    let after = engine.streaming_node().checkpoints(table_id).unwrap();
    assert!(after.next_segment_id >= own.next_segment_id);
    engine.shutdown().await.unwrap();
}

/// A data directory written before streaming nodes kept their own
/// checkpoints has them in the table record only: recovery takes them from
/// there, so nothing flushed is replayed into the growing segments again.
#[tokio::test]
async fn checkpoints_recorded_in_the_table_record_are_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_store(dir.path());
    let engine = open(dir.path(), &meta, false).await;
    let table_id = create(&engine).await;
    write(&engine, 0..25).await;
    engine.flush_table("public", "t").await.unwrap();
    write(&engine, 100..105).await;
    drop(engine);
    // Rewrite the records as the earlier layout had them, and keep the
    // WAL from its start (as if no truncation had persisted a start).
    let own = channel_record(&meta, table_id).await.unwrap();
    let mut record = table_record(&meta, table_id).await;
    record.shard_inserts_persisted_lsn = own.inserts_persisted_lsn.clone();
    record.inserts_persisted_lsn = own.inserts_persisted_lsn.iter().copied().min().unwrap();
    record.deletes_persisted_lsn = own.deletes_persisted_lsn;
    record.next_segment_id = own.next_segment_id;
    meta.apply(
        MetaBatch::new()
            .put(keys::table(table_id), encode(&record))
            .delete(keys::channel(table_id))
            .delete(keys::WAL_REPLAY_FROM),
    )
    .await
    .unwrap();

    let engine = open(dir.path(), &meta, false).await;
    let expected: Vec<i64> = (0..25).chain(100..105).collect();
    assert_eq!(visible_ids(&engine, "t"), expected, "each row once");
    // The replayed rows were flushed right after recovery: the
    // checkpoints moved on from the recorded ones.
    let back = engine.streaming_node().checkpoints(table_id).unwrap();
    for (now, recorded) in back
        .inserts_persisted_lsn
        .iter()
        .zip(&own.inserts_persisted_lsn)
    {
        assert!(now > recorded, "{back:?} after {own:?}");
    }
    assert!(
        engine.recovery.wal_records_replayed > 1,
        "the flushed writes were read again, and skipped"
    );
    engine.shutdown().await.unwrap();
}

/// Dropping a table removes what the streaming node kept of it: its
/// checkpoints and its auto-id allocator.
#[tokio::test]
async fn a_dropped_table_leaves_no_streaming_records() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_store(dir.path());
    let engine = open(dir.path(), &meta, false).await;
    let table_id = create(&engine).await;
    engine
        .write("public", "t", rows(&[None, None, None]), WriteMode::Insert)
        .await
        .unwrap();
    engine.flush_table("public", "t").await.unwrap();
    assert!(channel_record(&meta, table_id).await.is_some());
    assert!(meta
        .get_value(&keys::autoid(table_id))
        .await
        .unwrap()
        .is_some());
    engine.drop_table("public", "t", false).await.unwrap();
    assert!(channel_record(&meta, table_id).await.is_none());
    assert!(meta
        .get_value(&keys::autoid(table_id))
        .await
        .unwrap()
        .is_none());
    // A write by the dropped table's id is refused.
    assert!(engine.streaming_node().checkpoints(table_id).is_err());
    engine.shutdown().await.unwrap();
}
