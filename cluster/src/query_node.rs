//! The query-node role: loads flushed segments and delete logs from object
//! storage into memory at startup.

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_exec::pk::pk_values;
use quiver_storage::{get_bytes, ObjectStoreRef};

use crate::error::Result;

/// Reads a Parquet object into batches.
pub async fn read_parquet(objects: &ObjectStoreRef, path: &str) -> Result<Vec<RecordBatch>> {
    let bytes: Bytes = get_bytes(objects.as_ref(), path).await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(65_536)
        .build()?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch?);
    }
    Ok(batches)
}

/// Reads a delete log: (key, timestamp) pairs.
pub async fn read_deltalog(
    objects: &ObjectStoreRef,
    path: &str,
) -> Result<Vec<(quiver_exec::pk::PkValue, u64)>> {
    let mut out = Vec::new();
    for batch in read_parquet(objects, path).await? {
        out.extend(delete_entries(&batch));
    }
    Ok(out)
}

/// The `(key, timestamp)` entries of a delete-log batch (the key column,
/// then `ts`).
pub fn delete_entries(batch: &RecordBatch) -> Vec<(quiver_exec::pk::PkValue, u64)> {
    use arrow::array::AsArray;
    use arrow::datatypes::UInt64Type;
    let keys = pk_values(batch.column(0));
    let ts = batch.column(1).as_primitive::<UInt64Type>();
    keys.into_iter()
        .enumerate()
        .filter_map(|(i, key)| Some((key?, ts.value(i))))
        .collect()
}
