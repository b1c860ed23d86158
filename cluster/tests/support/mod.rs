//! Helpers the engine-level tests share.

use std::sync::Arc;

use arrow::array::Int64Array;
use datafusion::execution::TaskContext;
use futures::TryStreamExt;
use quiver_cluster::Engine;
use quiver_exec::fragments::FragmentScan;
use quiver_exec::table_source::TableSource;

/// The ids (first column, `bigint`) visible now in `public.<table>`, sorted.
#[allow(dead_code)] // not every test binary reads now
pub fn visible_ids(engine: &Engine, table: &str) -> Vec<i64> {
    visible_ids_at(engine, table, None)
}

/// The ids visible in `public.<table>` at `ts` (now when `None`), sorted,
/// read as a scan reads them: from the table's fragments, each over its
/// own node's segments and deletes.
pub fn visible_ids_at(engine: &Engine, table: &str, ts: Option<u64>) -> Vec<i64> {
    let table = engine.table_view("public", table).unwrap();
    let (read_ts, fragments) = futures::executor::block_on(table.fragments(ts)).unwrap();
    let mut out = Vec::new();
    for fragment in fragments {
        let request = FragmentScan {
            read_ts,
            projection: vec![0],
            filter: None,
            limit: None,
            part: 0,
            parts: 1,
            hidden_keys: None,
        };
        let stream = fragment
            .scan(request, Arc::new(TaskContext::default()))
            .unwrap();
        let batches: Vec<_> = futures::executor::block_on(stream.try_collect()).unwrap();
        for batch in batches {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            out.extend(ids.values().iter().copied());
        }
    }
    out.sort();
    out
}
