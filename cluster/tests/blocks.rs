//! Catalog changes of transaction blocks: pending until the block ends,
//! seen by no one else meanwhile, and after a crash kept exactly when the
//! block's WAL entry is durable.

mod support;

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::api::coordinator::pending_table_name;
use quiver_cluster::api::streaming::{CommitTransaction, Streaming, TableChanges};
use quiver_cluster::api::{Coordinator, CreateTable, DropTable, EndBlock, TableRef};
use quiver_cluster::{Engine, EngineError};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use support::visible_ids;

fn config(dir: &std::path::Path) -> QuiverConfig {
    QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    }
}

fn schema() -> TableSchema {
    TableSchema {
        columns: vec![ColumnDef::new("id", ColumnType::Int64)],
        primary_key: 0,
    }
}

fn ids(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(ids))]).unwrap()
}

fn create(name: &str, in_block: Option<u64>) -> CreateTable {
    CreateTable {
        table: TableRef::new("public", name),
        schema: schema(),
        shards: 1,
        if_not_exists: false,
        in_block,
    }
}

fn drop_request(name: &str, in_block: Option<u64>) -> DropTable {
    DropTable {
        table: TableRef::new("public", name),
        if_exists: false,
        in_block,
    }
}

/// Block 42 creates `new` (with rows 0..3) and drops `old`; `commit_entry`
/// says whether its marked WAL entry is appended before the "crash" (the
/// engine dropped without ending the block).
async fn block_cut_short_by_a_crash(dir: &std::path::Path, commit_entry: bool) {
    let engine = Engine::open(config(dir)).await.unwrap();
    let coordinator: Arc<dyn Coordinator> = engine.clone();
    coordinator.create_table(create("old", None)).await.unwrap();
    Streaming::write(
        &*engine,
        quiver_cluster::api::streaming::WriteRows {
            table_id: engine.table("public", "old").unwrap().id(),
            rows: ids(0..2),
            mode: quiver_cluster::WriteMode::Insert,
        },
    )
    .await
    .unwrap();
    coordinator
        .create_table(create("new", Some(42)))
        .await
        .unwrap();
    coordinator
        .drop_table(drop_request("old", Some(42)))
        .await
        .unwrap();
    let new_id = engine
        .table("public", &pending_table_name("new", 42))
        .unwrap()
        .id();
    if commit_entry {
        engine
            .commit(CommitTransaction {
                snapshot_ts: engine.now().unwrap(),
                tables: vec![TableChanges {
                    table_id: new_id,
                    seen_keys: None,
                    rows: Some(ids(0..3)),
                }],
                catalog_block: Some(42),
            })
            .await
            .unwrap();
    }
    // No end_block, no shutdown: the process is gone.
}

#[tokio::test]
async fn a_block_whose_wal_entry_is_durable_keeps_its_catalog_changes_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    block_cut_short_by_a_crash(dir.path(), true).await;
    let engine = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(engine.recovery.pending_blocks_ended, 1);
    assert_eq!(engine.table_names("public"), ["new"]);
    assert_eq!(visible_ids(&engine, "new"), [0, 1, 2]);
    // Committed for good: another restart changes nothing.
    drop(engine);
    let engine = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(engine.recovery.pending_blocks_ended, 0);
    assert_eq!(visible_ids(&engine, "new"), [0, 1, 2]);
}

#[tokio::test]
async fn a_block_without_its_wal_entry_is_aborted_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    block_cut_short_by_a_crash(dir.path(), false).await;
    let engine = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(engine.recovery.pending_blocks_ended, 1);
    assert_eq!(engine.table_names("public"), ["old"]);
    assert_eq!(visible_ids(&engine, "old"), [0, 1]);
    // The name the block had taken is free again.
    let coordinator: Arc<dyn Coordinator> = engine.clone();
    coordinator.create_table(create("new", None)).await.unwrap();
}

#[tokio::test]
async fn pending_changes_are_the_blocks_alone_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let coordinator: Arc<dyn Coordinator> = engine.clone();
    coordinator.create_table(create("old", None)).await.unwrap();
    coordinator
        .create_table(create("new", Some(7)))
        .await
        .unwrap();
    coordinator
        .drop_table(drop_request("old", Some(7)))
        .await
        .unwrap();
    // Nobody else sees the new table; its name is taken meanwhile.
    assert_eq!(engine.table_names("public"), ["old"]);
    let catalog = coordinator.catalog().await.unwrap();
    assert!(catalog.tables.iter().all(|t| t.table.name == "old"));
    assert!(matches!(
        coordinator.create_table(create("new", None)).await,
        Err(EngineError::TableAlreadyExists { .. })
    ));
    assert!(matches!(
        coordinator.create_table(create("new", Some(8))).await,
        Err(EngineError::TableAlreadyExists { .. })
    ));
    // Another block cannot drop what block 7 drops.
    assert!(matches!(
        coordinator.drop_table(drop_request("old", Some(8))).await,
        Err(EngineError::TableLocked { .. })
    ));
    // A table of the name it dropped: the block's own (aborted with it).
    coordinator
        .create_table(create("old", Some(7)))
        .await
        .unwrap();
    assert!(matches!(
        coordinator.create_table(create("old", Some(8))).await,
        Err(EngineError::TableAlreadyExists { .. })
    ));
    // Aborted: as before.
    coordinator
        .end_block(EndBlock {
            block: 7,
            commit: false,
        })
        .await
        .unwrap();
    assert_eq!(engine.table_names("public"), ["old"]);
    // Committed: every change at once (the old table replaced by a new
    // one of its name).
    let old_id = engine.table("public", "old").unwrap().id();
    coordinator
        .create_table(create("new", Some(9)))
        .await
        .unwrap();
    coordinator
        .drop_table(drop_request("old", Some(9)))
        .await
        .unwrap();
    coordinator
        .create_table(create("old", Some(9)))
        .await
        .unwrap();
    coordinator
        .end_block(EndBlock {
            block: 9,
            commit: true,
        })
        .await
        .unwrap();
    assert_eq!(engine.table_names("public"), ["new", "old"]);
    assert_ne!(engine.table("public", "old").unwrap().id(), old_id);
    assert!(engine
        .table("public", &pending_table_name("new", 9))
        .is_err());
    // Ending a block with nothing pending is no error.
    coordinator
        .end_block(EndBlock {
            block: 9,
            commit: true,
        })
        .await
        .unwrap();
}
