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
    use arrow::array::AsArray;
    use arrow::datatypes::UInt64Type;
    let mut out = Vec::new();
    for batch in read_parquet(objects, path).await? {
        let keys = pk_values(batch.column(0));
        let ts = batch.column(1).as_primitive::<UInt64Type>();
        for (i, key) in keys.into_iter().enumerate() {
            if let Some(key) = key {
                out.push((key, ts.value(i)));
            }
        }
    }
    Ok(out)
}
