//! Shard routing: which shard of a table a row belongs to. A row goes to
//! the shard its primary key hashes to (CRC-32 of the key's bytes: an
//! integer key's eight little-endian bytes, a text key's UTF-8), so every
//! version of a row — insert, upsert, delete — lands in the same shard, and
//! a replay of the WAL routes each row as the first apply did.

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use quiver_exec::pk::{pk_ref, PkRef, PkValue};

use crate::error::Result;

/// The shard (of `shards`) of a primary key.
pub fn shard_of(key: &PkValue, shards: u32) -> u32 {
    match key {
        PkValue::Int(v) => shard_of_ref(PkRef::Int(*v), shards),
        PkValue::Str(s) => shard_of_ref(PkRef::Str(s), shards),
    }
}

/// [`shard_of`] without an owned key.
pub fn shard_of_ref(key: PkRef<'_>, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let hash = match key {
        PkRef::Int(v) => crc32fast::hash(&v.to_le_bytes()),
        PkRef::Str(s) => crc32fast::hash(s.as_bytes()),
    };
    hash % shards
}

/// Splits `batch` by the shard of each row's key (column `pk_index`):
/// `(shard, rows)` for every shard with rows, in shard order, rows in
/// their order in `batch`. A row without a key (rejected earlier by the
/// write path) goes to shard 0.
pub fn split_by_shard(
    batch: &RecordBatch,
    pk_index: usize,
    shards: u32,
) -> Result<Vec<(u32, RecordBatch)>> {
    if shards <= 1 {
        return Ok(vec![(0, batch.clone())]);
    }
    let keys = batch.column(pk_index);
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); shards as usize];
    for row in 0..batch.num_rows() {
        let shard = pk_ref(keys.as_ref(), row).map_or(0, |k| shard_of_ref(k, shards));
        rows[shard as usize].push(row as u32);
    }
    let mut parts = Vec::new();
    for (shard, indices) in rows.into_iter().enumerate() {
        if indices.is_empty() {
            continue;
        }
        let part = if indices.len() == batch.num_rows() {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(indices))?
        };
        parts.push((shard as u32, part));
    }
    Ok(parts)
}

/// The WAL channel name of a shard (Milvus' virtual channel).
pub fn channel_name(table_id: u64, shard: u32) -> String {
    format!("wal/table-{table_id}/shard-{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn one_shard_takes_everything() {
        assert_eq!(shard_of(&PkValue::Int(42), 1), 0);
        assert_eq!(shard_of(&PkValue::Str("x".into()), 0), 0);
    }

    #[test]
    fn keys_spread_over_every_shard_and_stay_put() {
        let mut seen = [0usize; 4];
        for key in 0..1000 {
            let shard = shard_of(&PkValue::Int(key), 4);
            assert_eq!(shard, shard_of_ref(PkRef::Int(key), 4));
            seen[shard as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
        // The hash is fixed: a replay after an upgrade routes as before.
        assert_eq!(
            shard_of(&PkValue::Int(1), 4),
            crc32fast::hash(&1i64.to_le_bytes()) % 4
        );
        assert_eq!(
            shard_of(&PkValue::Str("abc".into()), 16),
            crc32fast::hash(b"abc") % 16
        );
    }

    #[test]
    fn split_keeps_every_row_once_in_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let ids: Vec<i64> = (0..100).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        let parts = split_by_shard(&batch, 0, 3).unwrap();
        let mut all = Vec::new();
        for (shard, part) in &parts {
            let ids = part
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let mut last = -1;
            for id in ids.values() {
                assert_eq!(shard_of(&PkValue::Int(*id), 3), *shard);
                assert!(*id > last);
                last = *id;
                all.push(*id);
            }
        }
        all.sort();
        assert_eq!(all, ids);
        assert_eq!(split_by_shard(&batch, 0, 1).unwrap().len(), 1);
    }
}
