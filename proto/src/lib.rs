//! `quiver-proto` owns the messages that cross component boundaries inside
//! Quiver: the write-ahead-log record ([`WalRecord`]) that the streaming
//! role appends and replays, and the [`fragments`] messages of searches and
//! scans sent to the nodes serving a table's fragments; the internal gRPC
//! services of cluster mode will be defined here too. Milvus' own messages come from the
//! `milvus-sdk-rust` crate, never from copied `.proto` files.
//!
//! A record is framed by the WAL (length + CRC); this crate only encodes the
//! payload: a version byte, the record kind, ids and the timestamp, then the
//! Arrow IPC streams of the deleted keys and of the inserted rows. A
//! transaction's commit is one payload holding one record per table it
//! wrote, all at one timestamp ([`WalRecord::encode_transaction`]): the WAL
//! frames it as one entry, so a crash keeps all of it or none.

pub mod fragments;

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

/// Errors decoding a record.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("WAL record is truncated")]
    Truncated,
    #[error("unknown WAL record version {0}")]
    Version(u8),
    #[error("unknown WAL record kind {0}")]
    Kind(u8),
    #[error("arrow IPC: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

const VERSION: u8 = 1;
const KIND_WRITE: u8 = 1;
const KIND_TRANSACTION: u8 = 2;
const KIND_BLOCK_TRANSACTION: u8 = 3;

/// One WAL entry decoded: its records, and the transaction block whose
/// commit it is when the block changed the catalog (see
/// [`WalRecord::encode_block_transaction`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WalEntry {
    pub records: Vec<WalRecord>,
    pub block: Option<u64>,
}

/// One logged mutation of one table, applied atomically at `ts`: first the
/// deletes (rows with these primary keys and an older timestamp become
/// invisible), then the inserts. An upsert carries both.
#[derive(Debug, Clone, PartialEq)]
pub struct WalRecord {
    pub table_id: u64,
    pub ts: u64,
    /// One column: the primary keys deleted.
    pub deletes: Option<RecordBatch>,
    /// The inserted rows in the table's storage schema (with the timestamp column).
    pub inserts: Option<RecordBatch>,
}

impl WalRecord {
    /// Encodes the record payload.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let mut out = Vec::with_capacity(64);
        out.push(VERSION);
        out.push(KIND_WRITE);
        out.extend_from_slice(&self.table_id.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        write_batch(&mut out, self.deletes.as_ref())?;
        write_batch(&mut out, self.inserts.as_ref())?;
        Ok(out)
    }

    /// Encodes the records of one transaction's commit (one per table, all
    /// at the same timestamp) as one payload.
    pub fn encode_transaction(records: &[WalRecord]) -> Result<Vec<u8>, ProtoError> {
        let mut out = vec![VERSION, KIND_TRANSACTION];
        out.extend_from_slice(&(records.len() as u64).to_le_bytes());
        for record in records {
            let bytes = record.encode()?;
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Encodes the commit of a transaction block that changed the catalog:
    /// its records (none when it wrote no rows) and the block's id, which
    /// makes the entry the block's commit point (the coordinator keeps the
    /// block's catalog changes exactly when this entry is durable).
    pub fn encode_block_transaction(
        records: &[WalRecord],
        block: u64,
    ) -> Result<Vec<u8>, ProtoError> {
        let mut out = vec![VERSION, KIND_BLOCK_TRANSACTION];
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&Self::encode_transaction(records)?[2..]);
        Ok(out)
    }

    /// Decodes a payload produced by [`WalRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = ByteReader { bytes, pos: 0 };
        let version = reader.u8()?;
        if version != VERSION {
            return Err(ProtoError::Version(version));
        }
        let kind = reader.u8()?;
        if kind != KIND_WRITE {
            return Err(ProtoError::Kind(kind));
        }
        Self::decode_write(&mut reader)
    }

    /// Decodes any payload: one write, or a transaction's records.
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<Self>, ProtoError> {
        Ok(Self::decode_entry(bytes)?.records)
    }

    /// Decodes any payload with the block it commits, if any.
    pub fn decode_entry(bytes: &[u8]) -> Result<WalEntry, ProtoError> {
        let mut reader = ByteReader { bytes, pos: 0 };
        let version = reader.u8()?;
        if version != VERSION {
            return Err(ProtoError::Version(version));
        }
        let mut block = None;
        let records = match reader.u8()? {
            KIND_WRITE => vec![Self::decode_write(&mut reader)?],
            KIND_TRANSACTION => Self::decode_records(&mut reader)?,
            KIND_BLOCK_TRANSACTION => {
                block = Some(reader.u64()?);
                Self::decode_records(&mut reader)?
            }
            kind => return Err(ProtoError::Kind(kind)),
        };
        Ok(WalEntry { records, block })
    }

    fn decode_records(reader: &mut ByteReader<'_>) -> Result<Vec<Self>, ProtoError> {
        let count = reader.u64()?;
        let mut records = Vec::new();
        for _ in 0..count {
            let len = reader.u64()? as usize;
            records.push(Self::decode(reader.take(len)?)?);
        }
        Ok(records)
    }

    fn decode_write(reader: &mut ByteReader<'_>) -> Result<Self, ProtoError> {
        let table_id = reader.u64()?;
        let ts = reader.u64()?;
        let deletes = reader.batch()?;
        let inserts = reader.batch()?;
        Ok(Self {
            table_id,
            ts,
            deletes,
            inserts,
        })
    }
}

fn write_batch(out: &mut Vec<u8>, batch: Option<&RecordBatch>) -> Result<(), ProtoError> {
    let Some(batch) = batch else {
        out.extend_from_slice(&0u64.to_le_bytes());
        return Ok(());
    };
    let mut buf = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut buf, batch.schema_ref())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    out.extend_from_slice(&(buf.len() as u64).to_le_bytes());
    out.extend_from_slice(&buf);
    Ok(())
}

struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl ByteReader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ProtoError> {
        let end = self.pos.checked_add(n).ok_or(ProtoError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(ProtoError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn batch(&mut self) -> Result<Option<RecordBatch>, ProtoError> {
        let len = self.u64()? as usize;
        if len == 0 {
            return Ok(None);
        }
        let bytes = self.take(len)?;
        let mut reader = StreamReader::try_new(Cursor::new(bytes), None)?;
        match reader.next() {
            Some(batch) => Ok(Some(batch?)),
            None => Err(ProtoError::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let inserts = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap();
        let record = WalRecord {
            table_id: 7,
            ts: 99,
            deletes: None,
            inserts: Some(inserts),
        };
        let bytes = record.encode().unwrap();
        assert_eq!(WalRecord::decode(&bytes).unwrap(), record);
        for cut in [0, 1, 5, 18, bytes.len() - 1] {
            assert!(WalRecord::decode(&bytes[..cut]).is_err());
        }
        assert!(WalRecord::decode(&[9, 9, 9]).is_err());
        let other = WalRecord {
            table_id: 8,
            ..record.clone()
        };
        let both = WalRecord::encode_transaction(&[record.clone(), other.clone()]).unwrap();
        assert_eq!(
            WalRecord::decode_all(&both).unwrap(),
            vec![record.clone(), other]
        );
        assert_eq!(WalRecord::decode_all(&bytes).unwrap(), vec![record]);
        for cut in [0, 1, 5, 18, both.len() - 1] {
            assert!(WalRecord::decode_all(&both[..cut]).is_err());
        }
    }
}
