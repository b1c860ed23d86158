//! What segments and delete logs are in object storage: their object
//! paths, their Parquet encoding, and the one-column key batch (typed as
//! the table's primary key) that WAL records and delete logs carry.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use quiver_common::schema::{ColumnType, TableSchema};
use quiver_exec::pk::PkValue;

use crate::error::Result;

/// Object path of a segment's Parquet file.
pub fn segment_path(table: u64, segment: u64) -> String {
    format!("tables/{table}/segments/{segment:020}.parquet")
}

/// Object path of a delete log.
pub fn deltalog_path(table: u64, n: u64) -> String {
    format!("tables/{table}/deltalogs/{n:020}.parquet")
}

/// Encodes batches as one Parquet file.
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

/// One-column batch of keys, typed as the primary key.
pub fn keys_batch(schema: &TableSchema, keys: &[PkValue]) -> Result<Option<RecordBatch>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let pk = schema.pk();
    let array: ArrayRef = match pk.column_type {
        ColumnType::Text { .. } => Arc::new(arrow::array::StringArray::from(
            keys.iter()
                .map(|k| match k {
                    PkValue::Str(s) => Some(s.clone()),
                    PkValue::Int(i) => Some(i.to_string()),
                })
                .collect::<Vec<_>>(),
        )),
        _ => {
            let ints = Int64Array::from(
                keys.iter()
                    .map(|k| match k {
                        PkValue::Int(i) => Some(*i),
                        PkValue::Str(s) => s.parse().ok(),
                    })
                    .collect::<Vec<_>>(),
            );
            cast(&ints, &pk.column_type.arrow_type())?
        }
    };
    let field = Field::new(&pk.name, array.data_type().clone(), false);
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(vec![field])),
        vec![array],
    )?))
}

/// `(key, timestamp)` delete entries as a delete-log batch: the key column
/// (typed as the table's primary key), then `ts`; `None` when empty.
pub fn delete_log_batch(
    schema: &TableSchema,
    entries: &[(PkValue, u64)],
) -> Result<Option<RecordBatch>> {
    let keys: Vec<PkValue> = entries.iter().map(|(key, _)| key.clone()).collect();
    let Some(keys_batch) = keys_batch(schema, &keys)? else {
        return Ok(None);
    };
    let ts = UInt64Array::from_iter_values(entries.iter().map(|(_, ts)| *ts));
    let mut fields: Vec<Field> = keys_batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("ts", DataType::UInt64, false));
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        vec![keys_batch.column(0).clone(), Arc::new(ts)],
    )?))
}
