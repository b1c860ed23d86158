//! The messages of the fragment seam: a vector search or a scan sent to
//! the node serving a fragment of a table, and its reply. The filter is a
//! DataFusion physical expression in `datafusion-proto` form (a
//! `PhysicalExprNode`, encoded by the caller); rows travel as Arrow IPC
//! streams ([`encode_batch`], [`decode_batch`]).

use arrow::array::RecordBatch;

use crate::ProtoError;

/// A top-k search of one fragment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FragmentSearchRequest {
    #[prost(uint64, tag = "1")]
    pub read_ts: u64,
    /// The vector column, in the table's user schema.
    #[prost(uint32, tag = "2")]
    pub column: u32,
    #[prost(float, repeated, tag = "3")]
    pub vector: Vec<f32>,
    /// 0 L2, 1 cosine, 2 negative inner product, 3 L1.
    #[prost(uint32, tag = "4")]
    pub metric: u32,
    #[prost(uint64, tag = "5")]
    pub k: u64,
    #[prost(uint64, optional, tag = "6")]
    pub ef: Option<u64>,
    #[prost(uint64, optional, tag = "7")]
    pub nprobe: Option<u64>,
    #[prost(uint64, optional, tag = "8")]
    pub index_rerank: Option<u64>,
    /// Candidates per result a quantized index returns for re-ranking.
    #[prost(uint64, tag = "9")]
    pub rerank: u64,
    /// The row filter over the storage schema (`PhysicalExprNode` bytes).
    #[prost(bytes = "vec", optional, tag = "10")]
    pub filter: Option<Vec<u8>>,
    /// Columns to return, in the user schema.
    #[prost(uint32, repeated, tag = "11")]
    pub projection: Vec<u32>,
    /// Keys whose stored rows the reader does not see (Arrow IPC, one column).
    #[prost(bytes = "vec", optional, tag = "12")]
    pub hidden_keys: Option<Vec<u8>>,
}

/// A fragment's partial top-k and what the search did.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FragmentSearchReply {
    /// Arrow IPC stream of one batch.
    #[prost(bytes = "vec", tag = "1")]
    pub batch: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub rows_scanned: u64,
    #[prost(uint64, tag = "3")]
    pub segments_searched: u64,
    #[prost(uint64, tag = "4")]
    pub segments_pruned: u64,
    #[prost(uint64, tag = "5")]
    pub index_searches: u64,
    #[prost(uint64, tag = "6")]
    pub exact_scans: u64,
}

/// A scan of part of one fragment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FragmentScanRequest {
    #[prost(uint64, tag = "1")]
    pub read_ts: u64,
    #[prost(uint32, repeated, tag = "2")]
    pub projection: Vec<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub filter: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "4")]
    pub limit: Option<u64>,
    #[prost(uint32, tag = "5")]
    pub part: u32,
    #[prost(uint32, tag = "6")]
    pub parts: u32,
    /// Keys whose stored rows the reader does not see (Arrow IPC, one column).
    #[prost(bytes = "vec", optional, tag = "7")]
    pub hidden_keys: Option<Vec<u8>>,
}

/// Encodes a batch as an Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Decodes the one batch of an Arrow IPC stream.
pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch, ProtoError> {
    let mut reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    match reader.next() {
        Some(batch) => Ok(batch?),
        None => Err(ProtoError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::sync::Arc;

    #[test]
    fn requests_and_batches_round_trip() {
        let request = FragmentSearchRequest {
            read_ts: 7,
            column: 2,
            vector: vec![1.0, -2.5],
            metric: 1,
            k: 10,
            ef: Some(64),
            nprobe: None,
            index_rerank: Some(4),
            rerank: 4,
            filter: Some(vec![1, 2, 3]),
            projection: vec![0, 2],
            hidden_keys: Some(vec![4, 5]),
        };
        let decoded = FragmentSearchRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, request);
        let batch = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
            ])),
            vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        assert_eq!(decode_batch(&encode_batch(&batch).unwrap()).unwrap(), batch);
        assert!(decode_batch(&[]).is_err());
    }
}
