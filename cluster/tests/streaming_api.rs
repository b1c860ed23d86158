//! The streaming node's API: writes and deletes by table id, and the safe
//! timestamp — a read at it sees every write stamped at or before it, even
//! while other writes are in flight.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use quiver_cluster::api::streaming::{
    CommitTransaction, DeleteKeys, Streaming, TableChanges, WriteRows,
};
use quiver_cluster::api::wire::WireStreaming;
use quiver_cluster::{Engine, EngineError, WriteMode};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};

mod support;
use support::visible_ids_at;

fn schema() -> TableSchema {
    TableSchema {
        columns: vec![
            ColumnDef::new("id", ColumnType::Int64),
            ColumnDef::new("s", ColumnType::Text { max_len: None }),
        ],
        primary_key: 0,
    }
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let s: Vec<String> = ids.clone().map(|i| format!("v{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(s)),
        ],
    )
    .unwrap()
}

/// Ids visible in `public.t` at `ts`.
fn visible_at(engine: &Engine, ts: u64) -> Vec<i64> {
    visible_ids_at(engine, "t", Some(ts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_by_id_and_the_safe_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let config = QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let engine = Engine::open(config).await.unwrap();
    engine
        .create_sharded_table("public", "t", schema(), 3, false)
        .await
        .unwrap();
    let table_id = engine.table("public", "t").unwrap().id();
    // In process and through encoded messages alike.
    let nodes: Vec<Arc<dyn Streaming>> =
        vec![engine.clone(), Arc::new(WireStreaming::new(engine.clone()))];

    // Writers on several tasks; a poller reads at the safe timestamp.
    let mut writers = Vec::new();
    for w in 0..8i64 {
        let node = nodes[w as usize % 2].clone();
        writers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for round in 0..20i64 {
                let first = (w * 20 + round) * 10;
                let ack = node
                    .write(WriteRows {
                        table_id,
                        rows: rows(first..first + 10),
                        mode: WriteMode::Insert,
                    })
                    .await
                    .unwrap();
                assert_eq!(ack.rows.num_rows(), 10);
                acks.push((ack.ts, first));
            }
            acks
        }));
    }
    let poller = {
        let engine = engine.clone();
        let node = nodes[1].clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..200 {
                let safe = node.safe_timestamp().await.unwrap();
                seen.push((safe, visible_at(&engine, safe)));
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut acks: BTreeMap<u64, i64> = BTreeMap::new();
    for writer in writers {
        acks.extend(writer.await.unwrap());
    }
    let seen = poller.await.unwrap();
    let mut last = 0;
    for (safe, visible) in &seen {
        assert!(*safe >= last, "the safe timestamp never goes back");
        last = *safe;
        for (_, first) in acks.range(..=*safe) {
            assert!(
                visible.binary_search(first).is_ok(),
                "a write stamped at or before the safe timestamp {safe} is visible at it"
            );
        }
    }
    let after = engine_safe(&nodes[0]).await;
    assert!(after >= *acks.keys().last().unwrap());

    // Deletes by id; a dropped table's id is an error.
    let deleted = nodes[1]
        .delete(DeleteKeys {
            table_id,
            keys: rows(0..5).project(&[0]).unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(deleted.deleted, 5);
    nodes[0].flush(table_id).await.unwrap();
    engine.drop_table("public", "t", false).await.unwrap();
    let err = nodes[0]
        .write(WriteRows {
            table_id,
            rows: rows(0..1),
            mode: WriteMode::Insert,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::TableIdNotFound(id) if id == table_id),
        "{err}"
    );
}

async fn engine_safe(node: &Arc<dyn Streaming>) -> u64 {
    node.safe_timestamp().await.unwrap()
}

/// A transaction's commit: writes to several tables at one timestamp in
/// one WAL entry (replayed whole after a crash), refused with a
/// serialization failure when a key it saw changed after its snapshot and
/// with a duplicate key when a key it adds exists by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_atomic_checked_and_replayed_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = || QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let keys = |ids: std::ops::Range<i64>| Some(rows(ids).project(&[0]).unwrap());
    {
        let engine = Engine::open(config()).await.unwrap();
        for name in ["t", "u"] {
            engine
                .create_table("public", name, schema(), false)
                .await
                .unwrap();
        }
        let t = engine.table("public", "t").unwrap().id();
        let u = engine.table("public", "u").unwrap().id();
        let nodes: Vec<Arc<dyn Streaming>> =
            vec![engine.clone(), Arc::new(WireStreaming::new(engine.clone()))];
        nodes[0]
            .write(WriteRows {
                table_id: t,
                rows: rows(0..10),
                mode: WriteMode::Insert,
            })
            .await
            .unwrap();
        let snapshot = engine.now().unwrap();
        // Another writer changes key 3 after the snapshot.
        nodes[0]
            .write(WriteRows {
                table_id: t,
                rows: rows(3..4),
                mode: WriteMode::Upsert,
            })
            .await
            .unwrap();
        for node in &nodes {
            let err = node
                .commit(CommitTransaction {
                    snapshot_ts: snapshot,
                    catalog_block: None,
                    tables: vec![
                        TableChanges {
                            table_id: u,
                            seen_keys: None,
                            rows: Some(rows(0..2)),
                        },
                        TableChanges {
                            table_id: t,
                            seen_keys: keys(2..5),
                            rows: Some(rows(2..5)),
                        },
                    ],
                })
                .await
                .unwrap_err();
            assert!(
                matches!(err, EngineError::SerializationFailure { ref key, .. } if key == "3"),
                "{err}"
            );
            // A key the transaction did not see, existing by now.
            let err = node
                .commit(CommitTransaction {
                    snapshot_ts: snapshot,
                    catalog_block: None,
                    tables: vec![TableChanges {
                        table_id: t,
                        seen_keys: None,
                        rows: Some(rows(9..11)),
                    }],
                })
                .await
                .unwrap_err();
            assert!(matches!(err, EngineError::DuplicateKey { .. }), "{err}");
        }
        assert_eq!(
            visible_ids_at(&engine, "u", None).len(),
            0,
            "nothing of a refused commit"
        );
        // A fresh snapshot: keys 0..3 deleted from t, 20..25 added to t and u.
        let snapshot = engine.now().unwrap();
        let ts = nodes[1]
            .commit(CommitTransaction {
                snapshot_ts: snapshot,
                catalog_block: None,
                tables: vec![
                    TableChanges {
                        table_id: t,
                        seen_keys: keys(0..3),
                        rows: Some(rows(20..25)),
                    },
                    TableChanges {
                        table_id: u,
                        seen_keys: None,
                        rows: Some(rows(20..25)),
                    },
                ],
            })
            .await
            .unwrap();
        assert!(ts > snapshot);
        assert_eq!(
            visible_ids_at(&engine, "t", Some(ts - 1)).len(),
            10,
            "before it"
        );
        assert_eq!(visible_ids_at(&engine, "t", Some(ts)).len(), 12);
        assert_eq!(
            visible_ids_at(&engine, "u", Some(ts)),
            (20..25).collect::<Vec<_>>()
        );
        // Not shut down: the commit must come back from the WAL.
    }
    let engine = Engine::open(config()).await.unwrap();
    let t: Vec<i64> = (3..10).chain(20..25).collect();
    assert_eq!(visible_ids_at(&engine, "t", None), t);
    assert_eq!(
        visible_ids_at(&engine, "u", None),
        (20..25).collect::<Vec<_>>()
    );
}
