//! The coordinator API (`quiver_cluster::api::Coordinator`) used as the
//! access layer uses it: through `Arc<dyn Coordinator>`, with every request
//! and reply also sent through a byte encoding and back (the messages are
//! plain data that can cross a process boundary).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use quiver_cluster::api::{
    AddColumn, Coordinator, CreateDatabase, CreateIndex, CreateTable, DropDatabase, DropIndex,
    DropTable, IndexDefinition, RenameTable, SetTableOptions, TableRef,
};
use quiver_cluster::{Engine, EngineError};
use quiver_common::config::QuiverConfig;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The message after a trip through bytes (what a transport would do).
fn over_the_wire<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: T) -> T {
    let bytes = serde_json::to_vec(&message).unwrap();
    let back: T = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, message);
    back
}

fn schema() -> TableSchema {
    TableSchema {
        columns: vec![
            ColumnDef::new("id", ColumnType::Int64),
            ColumnDef::new("v", ColumnType::Vector { dim: 4 }),
        ],
        primary_key: 0,
    }
}

/// An engine whose background maintenance runs only its first pass (at
/// startup, before any table exists): what a test sees is the API's work.
async fn open(dir: &std::path::Path) -> (Arc<Engine>, Arc<dyn Coordinator>) {
    let mut config = QuiverConfig {
        data_dir: dir.join("data"),
        ..Default::default()
    };
    config.segment.maintenance_interval_ms = 3_600_000;
    let engine = Engine::open(config).await.unwrap();
    let coordinator: Arc<dyn Coordinator> = engine.clone();
    (engine, coordinator)
}

#[tokio::test]
async fn ddl_and_catalog_reads_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, coordinator) = open(dir.path()).await;
    let docs = TableRef::new("shop", "docs");
    let v0 = coordinator.catalog_version().await.unwrap();

    let created = over_the_wire(CreateDatabase {
        name: "shop".into(),
        if_not_exists: false,
    });
    assert!(coordinator.create_database(created.clone()).await.unwrap());
    assert!(matches!(
        coordinator.create_database(created).await,
        Err(EngineError::DatabaseAlreadyExists(_))
    ));
    let create = over_the_wire(CreateTable {
        table: docs.clone(),
        schema: schema(),
        shards: 1,
        if_not_exists: false,
        in_block: None,
    });
    assert!(coordinator.create_table(create.clone()).await.unwrap());
    let again = CreateTable {
        if_not_exists: true,
        in_block: None,
        ..create
    };
    assert!(!coordinator.create_table(again).await.unwrap());
    assert!(coordinator
        .add_column(over_the_wire(AddColumn {
            table: docs.clone(),
            column: ColumnDef::new("title", ColumnType::Text { max_len: None }),
            if_not_exists: false,
        }))
        .await
        .unwrap());
    coordinator
        .set_table_options(over_the_wire(SetTableOptions {
            table: docs.clone(),
            changes: vec![("milvus.aliases".into(), Some("[\"d\"]".into()))],
        }))
        .await
        .unwrap();
    let index = coordinator
        .create_index(over_the_wire(CreateIndex {
            table: docs.clone(),
            definition: IndexDefinition {
                name: None,
                column: "v".into(),
                kind: "hnsw".into(),
                metric: "l2".into(),
                params: BTreeMap::from([("m".into(), 8)]),
            },
            if_not_exists: false,
        }))
        .await
        .unwrap();
    assert_eq!(index.as_deref(), Some("docs_v_idx"));

    let snapshot = over_the_wire(coordinator.catalog().await.unwrap());
    assert!(snapshot.version > v0, "DDL moves the version");
    assert!(snapshot.databases.contains(&"shop".to_string()));
    let info = snapshot
        .tables
        .iter()
        .find(|t| t.table == docs)
        .expect("the new table is in the snapshot");
    let names: Vec<&str> = info
        .schema
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["id", "v", "title"]);
    assert_eq!(info.options["milvus.aliases"], "[\"d\"]");
    assert_eq!(info.shards, 1);
    assert_eq!(info.indexes.len(), 1);
    assert_eq!(info.indexes[0].name, "docs_v_idx");
    let statuses = over_the_wire(coordinator.index_statuses().await.unwrap());
    assert!(statuses
        .iter()
        .any(|s| s.name == "docs_v_idx" && s.table == "docs"));
    // One table's are the same entries, and a missing table is an error.
    let of_docs = over_the_wire(
        coordinator
            .table_index_statuses(docs.clone())
            .await
            .unwrap(),
    );
    let expected: Vec<_> = statuses
        .iter()
        .filter(|s| s.table == "docs")
        .cloned()
        .collect();
    assert_eq!(of_docs, expected);
    assert!(matches!(
        coordinator
            .table_index_statuses(TableRef::new("shop", "missing"))
            .await,
        Err(EngineError::TableNotFound { .. })
    ));
    // The API and the engine agree.
    assert_eq!(snapshot.version, engine.catalog_version());

    // One table's definition is the snapshot's entry for it.
    let described = over_the_wire(coordinator.describe_table(docs.clone()).await.unwrap());
    assert_eq!(&described, info);
    assert!(matches!(
        coordinator
            .describe_table(TableRef::new("shop", "missing"))
            .await,
        Err(EngineError::TableNotFound { .. })
    ));

    let layout = over_the_wire(coordinator.layout(docs.clone()).await.unwrap());
    assert_eq!(layout.table_id, info.id);
    assert_eq!(layout.shards.len(), 1);

    coordinator
        .rename_table(over_the_wire(RenameTable {
            table: docs.clone(),
            new_name: "articles".into(),
        }))
        .await
        .unwrap();
    let snapshot = coordinator.catalog().await.unwrap();
    let names: HashSet<&str> = snapshot
        .tables
        .iter()
        .map(|t| t.table.name.as_str())
        .collect();
    assert!(names.contains("articles") && !names.contains("docs"));
    let articles = TableRef::new("shop", "articles");
    assert!(coordinator
        .drop_index(over_the_wire(DropIndex {
            database: "shop".into(),
            name: "docs_v_idx".into(),
            if_exists: false,
        }))
        .await
        .unwrap());
    assert!(coordinator
        .drop_table(over_the_wire(DropTable {
            table: articles.clone(),
            if_exists: false,
            in_block: None,
        }))
        .await
        .unwrap());
    assert!(matches!(
        coordinator.describe_table(articles.clone()).await,
        Err(EngineError::TableNotFound { .. })
    ));
    assert!(matches!(
        coordinator.layout(articles).await,
        Err(EngineError::TableNotFound { .. })
    ));
    assert!(coordinator
        .drop_database(over_the_wire(DropDatabase {
            name: "shop".into(),
            if_exists: false,
            cascade: false,
        }))
        .await
        .unwrap());
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timestamp_batches_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, coordinator) = open(dir.path()).await;
    let mut tasks = Vec::new();
    for worker in 0..4u32 {
        let coordinator = coordinator.clone();
        tasks.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            for i in 0..200u32 {
                let count = 1 + (worker * 7 + i) % 50;
                let batch = over_the_wire(coordinator.allocate_timestamps(count).await.unwrap());
                assert_eq!(batch.count, count);
                taken.push((batch.first, batch.first + u64::from(count)));
            }
            taken
        }));
    }
    let mut ranges = Vec::new();
    for task in tasks {
        let taken = task.await.unwrap();
        // Each caller's batches increase.
        assert!(taken.windows(2).all(|w| w[0].1 <= w[1].0));
        ranges.extend(taken);
    }
    ranges.sort();
    assert!(
        ranges.windows(2).all(|w| w[0].1 <= w[1].0),
        "two batches overlap"
    );
    // Later single timestamps (the engine's own) are above every batch.
    let last = ranges.last().unwrap().1;
    // A strong read's timestamp is too: it sees every batch's writes.
    assert!(coordinator.read_timestamp().await.unwrap() >= last);
    assert!(engine.now().unwrap() >= last);
    engine.shutdown().await.unwrap();
}

/// Rows of the one-column table `compact_me`.
fn ids(range: std::ops::Range<i64>) -> arrow::array::RecordBatch {
    use arrow::datatypes::{DataType, Field, Schema};
    arrow::array::RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
        vec![Arc::new(arrow::array::Int64Array::from_iter_values(range))],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_merges_a_tables_flushed_segments() {
    use quiver_cluster::api::streaming::{Streaming, WriteRows};
    let dir = tempfile::tempdir().unwrap();
    let (engine, coordinator) = open(dir.path()).await;
    let table = TableRef::new("public", "compact_me");
    engine
        .create_sharded_table(
            "public",
            "compact_me",
            TableSchema {
                columns: vec![ColumnDef::new("id", ColumnType::Int64)],
                primary_key: 0,
            },
            1,
            false,
        )
        .await
        .unwrap();
    let table_id = coordinator.describe_table(table.clone()).await.unwrap().id;
    let streaming: Arc<dyn Streaming> = engine.clone();
    for round in 0..3 {
        streaming
            .write(WriteRows {
                table_id,
                rows: ids(round * 10..round * 10 + 10),
                mode: quiver_cluster::WriteMode::Insert,
            })
            .await
            .unwrap();
        streaming.flush(table_id).await.unwrap();
    }
    let sealed = |layout: quiver_cluster::api::TableLayout| -> Vec<u64> {
        layout.shards[0]
            .sealed_segments
            .iter()
            .map(|s| s.rows)
            .collect()
    };
    let before = sealed(coordinator.layout(table.clone()).await.unwrap());
    assert_eq!(before, [10, 10, 10]);
    assert_eq!(
        over_the_wire(coordinator.compact(table.clone()).await.unwrap()),
        3
    );
    assert_eq!(sealed(coordinator.layout(table).await.unwrap()), [30]);
    assert!(matches!(
        coordinator
            .compact(TableRef::new("public", "missing"))
            .await,
        Err(EngineError::TableNotFound { .. })
    ));
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_built_step_by_step_through_the_api() {
    use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use quiver_cluster::api::streaming::{Streaming, WriteRows};
    let dir = tempfile::tempdir().unwrap();
    let (engine, coordinator) = open(dir.path()).await;
    let table = TableRef::new("public", "steps");
    engine
        .create_sharded_table("public", "steps", schema(), 1, false)
        .await
        .unwrap();
    let table_id = coordinator.describe_table(table.clone()).await.unwrap().id;
    let streaming: Arc<dyn Streaming> = engine.clone();
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    for round in 0..3i64 {
        let ids: Vec<i64> = (round * 20..round * 20 + 20).collect();
        let values: Vec<f32> = ids
            .iter()
            .flat_map(|&i| [i as f32, 1.0, 0.0, -1.0])
            .collect();
        let vectors =
            FixedSizeListArray::new(item.clone(), 4, Arc::new(Float32Array::from(values)), None);
        let rows = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("v", DataType::FixedSizeList(item.clone(), 4), true),
            ])),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(vectors)],
        )
        .unwrap();
        streaming
            .write(WriteRows {
                table_id,
                rows,
                mode: quiver_cluster::WriteMode::Insert,
            })
            .await
            .unwrap();
        streaming.flush(table_id).await.unwrap();
    }
    coordinator
        .create_index(over_the_wire(CreateIndex {
            table: table.clone(),
            definition: IndexDefinition {
                name: Some("steps_hnsw".into()),
                column: "v".into(),
                kind: "hnsw".into(),
                metric: "l2".into(),
                params: BTreeMap::from([("m".into(), 8), ("ef_construction".into(), 32)]),
            },
            if_not_exists: false,
        }))
        .await
        .unwrap();
    let mut steps = Vec::new();
    loop {
        let step = over_the_wire(coordinator.build_index_step(table.clone()).await.unwrap());
        steps.push((step.built, step.missing));
        if step.built == 0 || step.missing == 0 {
            break;
        }
    }
    assert_eq!(steps, [(1, 2), (1, 1), (1, 0)]);
    let status = coordinator
        .table_index_statuses(table.clone())
        .await
        .unwrap();
    assert_eq!(status[0].state, "ready");
    assert_eq!(status[0].segments_indexed, 3);
    // Nothing left: a step builds nothing.
    let idle = coordinator.build_index_step(table).await.unwrap();
    assert_eq!((idle.built, idle.missing), (0, 0));
    coordinator.request_maintenance().await.unwrap();
    engine.shutdown().await.unwrap();
}

/// Extensions are catalog facts of a database: recorded, listed in the
/// catalog snapshot, kept across a restart, refused a drop while a table
/// uses their types, and gone with their database.
#[tokio::test]
async fn extensions_are_recorded_per_database() {
    use quiver_cluster::api::{ExtensionOutcome, ExtensionRef};
    let dir = tempfile::tempdir().unwrap();
    let (engine, coordinator) = open(dir.path()).await;
    let vector = |database: &str| {
        over_the_wire(ExtensionRef {
            database: database.into(),
            name: "vector".into(),
        })
    };
    let installed = |snapshot: quiver_cluster::api::CatalogSnapshot| snapshot.extensions;
    assert_eq!(
        coordinator
            .create_extension(vector("public"))
            .await
            .unwrap(),
        ExtensionOutcome::Created
    );
    assert_eq!(
        over_the_wire(
            coordinator
                .create_extension(vector("public"))
                .await
                .unwrap()
        ),
        ExtensionOutcome::AlreadyInstalled
    );
    assert!(coordinator
        .create_extension(vector("missing"))
        .await
        .is_err());
    coordinator
        .create_table(CreateTable {
            table: TableRef::new("public", "t"),
            schema: schema(),
            shards: 1,
            if_not_exists: false,
            in_block: None,
        })
        .await
        .unwrap();
    assert_eq!(
        coordinator.drop_extension(vector("public")).await.unwrap(),
        ExtensionOutcome::InUse {
            tables: vec!["t".into()]
        }
    );
    engine.shutdown().await.unwrap();
    drop((engine, coordinator));

    let (engine, coordinator) = open(dir.path()).await;
    assert_eq!(
        installed(coordinator.catalog().await.unwrap()),
        vec![vector("public")]
    );
    coordinator
        .drop_table(DropTable {
            table: TableRef::new("public", "t"),
            if_exists: false,
            in_block: None,
        })
        .await
        .unwrap();
    assert_eq!(
        coordinator.drop_extension(vector("public")).await.unwrap(),
        ExtensionOutcome::Dropped
    );
    assert_eq!(
        coordinator.drop_extension(vector("public")).await.unwrap(),
        ExtensionOutcome::NotInstalled
    );
    // A database's extensions go with it.
    coordinator
        .create_database(CreateDatabase {
            name: "shop".into(),
            if_not_exists: false,
        })
        .await
        .unwrap();
    coordinator.create_extension(vector("shop")).await.unwrap();
    coordinator
        .drop_database(DropDatabase {
            name: "shop".into(),
            if_exists: false,
            cascade: false,
        })
        .await
        .unwrap();
    assert!(installed(coordinator.catalog().await.unwrap()).is_empty());
    engine.shutdown().await.unwrap();
}
