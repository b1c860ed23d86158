//! Helpers the engine-level tests share.

use arrow::array::Int64Array;
use quiver_cluster::Engine;
use quiver_exec::source::{adapt_batch, visible_mask};
use quiver_exec::table_source::TableSource;

/// The ids (first column, `bigint`) visible now in `public.<table>`, sorted.
#[allow(dead_code)] // not every test binary reads now
pub fn visible_ids(engine: &Engine, table: &str) -> Vec<i64> {
    visible_ids_at(engine, table, None)
}

/// The ids visible in `public.<table>` at `ts` (now when `None`), sorted.
pub fn visible_ids_at(engine: &Engine, table: &str, ts: Option<u64>) -> Vec<i64> {
    let table = engine.table_view("public", table).unwrap();
    let snap = table.snapshot(ts);
    let storage = snap.schema.storage_schema();
    let deletes = snap.deletes.read();
    let mut out = Vec::new();
    for seg in &snap.segments {
        for b in seg.batches.iter() {
            let b = adapt_batch(b, &storage).unwrap();
            let mask = visible_mask(&b, 0, &deletes, snap.read_ts);
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                if mask.as_ref().is_none_or(|m| m.value(i)) {
                    out.push(ids.value(i));
                }
            }
        }
    }
    out.sort();
    out
}
