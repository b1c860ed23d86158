//! A search scattered to a table's fragments and merged answers exactly as
//! one search over every segment: the same rows, distances and order (ties
//! by primary key, rows without a vector last), for any projection.

use std::sync::Arc;

use arrow::array::{Array, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, UInt64Array};
use arrow::buffer::NullBuffer;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::TaskContext;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_exec::fragment_wire::WireFragment;
use quiver_exec::fragments::{
    fragment_projection, merge_replies, FragmentSearch, SnapshotFragment, TableFragment,
};
use quiver_exec::source::{Segment, SegmentKind, TableSnapshot};
use quiver_exec::vector_search::{plan_search, search_snapshot, VectorQuery};
use quiver_index::{Metric, SearchParams};

fn schema() -> TableSchema {
    let column = |name: &str, column_type| ColumnDef {
        name: name.into(),
        column_type,
        nullable: true,
        default_sql: None,
        auto_increment: false,
        hidden: false,
    };
    TableSchema {
        columns: vec![
            column("tag", ColumnType::Int64),
            column("id", ColumnType::Int64),
            column("v", ColumnType::Vector { dim: 2 }),
        ],
        primary_key: 1,
    }
}

/// A segment of shard `shard` holding ids `ids`; vectors repeat (ties) and
/// every seventh row has none.
fn segment(schema: &TableSchema, id: u64, shard: u32, kind: SegmentKind, ids: &[i64]) -> Segment {
    let values: Vec<f32> = ids
        .iter()
        .flat_map(|i| [(i % 5) as f32, (i % 3) as f32])
        .collect();
    let valid: Vec<bool> = ids.iter().map(|i| i % 7 != 0).collect();
    let list = FixedSizeListArray::try_new(
        Arc::new(arrow::datatypes::Field::new_list_field(
            arrow::datatypes::DataType::Float32,
            true,
        )),
        2,
        Arc::new(Float32Array::from(values)),
        Some(NullBuffer::from(valid)),
    )
    .unwrap();
    let batch = RecordBatch::try_new(
        schema.storage_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i * 10))),
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(list),
            Arc::new(UInt64Array::from(vec![1u64; ids.len()])),
        ],
    )
    .unwrap();
    Segment {
        id,
        shard,
        kind,
        batches: Arc::new(vec![batch]),
        rows: ids.len(),
        indexes: Vec::new(),
        stats: None,
    }
}

fn snapshot() -> TableSnapshot {
    let schema = schema();
    let mut segments = Vec::new();
    let mut next = 0i64;
    for shard in 0..3u32 {
        for (n, kind) in [
            (0, SegmentKind::Sealed),
            (1, SegmentKind::Sealed),
            (2, SegmentKind::Growing),
        ] {
            // Interleaved ids: every shard holds small and large keys.
            let ids: Vec<i64> = (0..17).map(|i| i * 9 + next).collect();
            next += 1;
            segments.push(segment(&schema, (shard * 3 + n) as u64, shard, kind, &ids));
        }
    }
    TableSnapshot {
        table_id: 1,
        schema,
        segments,
        deletes: Default::default(),
        read_ts: 10,
    }
}

/// The snapshot's fragments, in process or behind encoded messages.
fn fragments(snapshot: &TableSnapshot, wire: bool) -> Vec<Arc<dyn TableFragment>> {
    SnapshotFragment::split(snapshot)
        .into_iter()
        .map(|f| {
            let f: Arc<dyn TableFragment> = Arc::new(f);
            if wire {
                Arc::new(WireFragment::new(f, snapshot.schema.storage_schema()))
            } else {
                f
            }
        })
        .collect()
}

/// A task context with a 1 GiB memory pool.
fn context() -> Arc<TaskContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(1 << 30)))
        .build_arc()
        .unwrap();
    Arc::new(TaskContext::default().with_runtime(runtime))
}

fn query(k: usize) -> VectorQuery {
    VectorQuery {
        column: 2,
        vector: vec![1.0, 1.0],
        metric: Metric::L2,
        k,
        params: SearchParams::default(),
        rerank: 1,
    }
}

#[tokio::test]
async fn scatter_and_merge_equals_one_search_over_every_segment() {
    let snapshot = snapshot();
    let fragments = fragments(&snapshot, false);
    let labels: Vec<String> = fragments.iter().map(|f| f.label()).collect();
    assert_eq!(
        labels,
        [
            "shard 0 sealed",
            "shard 0 growing",
            "shard 1 sealed",
            "shard 1 growing",
            "shard 2 sealed",
            "shard 2 growing"
        ]
    );
    let memory = context();
    let user = Arc::new(snapshot.schema.arrow_schema());
    // Projections with and without the primary key, k below, at and past
    // the rows there are (153, 21 without a vector).
    for projection in [vec![0usize], vec![2, 1], vec![1, 0, 2]] {
        for k in [1usize, 5, 40, 153, 500] {
            let q = query(k);
            let mut fields: Vec<_> = user.project(&projection).unwrap().fields().to_vec();
            fields.push(Arc::new(arrow::datatypes::Field::new(
                "d",
                arrow::datatypes::DataType::Float64,
                true,
            )));
            let out = Arc::new(arrow::datatypes::Schema::new(fields));
            let plan = plan_search(&snapshot, &q, None);
            let (whole, _) =
                search_snapshot(&snapshot, &plan, &q, None, &projection, &out, true).unwrap();
            let mut replies = Vec::new();
            // In process and through encoded messages alike.
            let wired = self::fragments(&snapshot, true);
            for fragment in fragments.iter().chain(&wired) {
                let request = FragmentSearch {
                    read_ts: snapshot.read_ts,
                    query: q.clone(),
                    filter: None,
                    projection: projection.clone(),
                    hidden_keys: None,
                };
                replies.push(
                    fragment
                        .search(request, memory.clone())
                        .await
                        .unwrap()
                        .batch,
                );
            }
            let pk_at = fragment_projection(&projection, 1)
                .iter()
                .position(|&c| c == 1)
                .unwrap();
            let (direct, encoded) = replies.split_at(fragments.len());
            assert_eq!(direct, encoded, "the wire changes nothing");
            let merged = merge_replies(direct, k, pk_at, projection.len(), &out, true).unwrap();
            assert_eq!(merged.num_rows(), k.min(153), "k {k}");
            assert_eq!(merged, whole, "projection {projection:?}, k {k}");
            // Rows without a vector come last, with no distance.
            let distance = merged.column(projection.len());
            if k > 132 {
                assert!(distance.is_null(merged.num_rows() - 1));
            }
        }
    }
}

/// A scan fragment returns each visible row passing the filter exactly
/// once over its parts, projected; segments whose statistics rule the
/// filter out are not read.
#[tokio::test]
async fn scan_parts_apply_the_filter_and_cover_every_row_once() {
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit};
    use futures::TryStreamExt;
    use quiver_exec::fragments::FragmentScan;

    let snapshot = snapshot();
    let storage = snapshot.schema.storage_schema();
    let filter = binary(
        col("tag", &storage).unwrap(),
        Operator::Gt,
        lit(500i64),
        &storage,
    )
    .unwrap();
    let memory = context();
    for wire in [false, true] {
        let mut ids = Vec::new();
        for fragment in fragments(&snapshot, wire) {
            for part in 0..2 {
                let stream = fragment
                    .scan(
                        FragmentScan {
                            read_ts: snapshot.read_ts,
                            projection: vec![1],
                            filter: Some(filter.clone()),
                            limit: None,
                            part,
                            parts: 2,
                            hidden_keys: None,
                        },
                        memory.clone(),
                    )
                    .unwrap();
                for batch in stream.try_collect::<Vec<_>>().await.unwrap() {
                    assert_eq!(batch.num_columns(), 1);
                    let column = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap();
                    ids.extend(column.values().iter().copied());
                }
            }
        }
        ids.sort();
        let expected: Vec<i64> = (51..153).collect();
        assert_eq!(ids, expected, "through the wire: {wire}");
    }
}
