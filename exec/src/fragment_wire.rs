//! The fragment seam serialized (`cluster.serialize_seams`): a
//! [`WireFragment`] wraps a fragment so that every call encodes its request
//! as the protobuf messages of `quiver_proto::fragments` (the filter as a
//! `datafusion-proto` `PhysicalExprNode`), decodes it again on the node's
//! side (resolving functions by name in the node's registry, the task
//! context), runs it, and sends the reply rows back as Arrow IPC — what a
//! transport between the caller and the node does.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::DefaultPhysicalExtensionCodec;
use datafusion_proto::protobuf::PhysicalExprNode;
use futures::future::BoxFuture;
use futures::StreamExt;
use prost::Message;
use quiver_index::{Metric, SearchParams};
use quiver_proto::fragments::{
    decode_batch, encode_batch, FragmentScanRequest, FragmentSearchReply, FragmentSearchRequest,
};

use crate::fragments::{FragmentReply, FragmentScan, FragmentSearch, TableFragment};
use crate::search::{SearchStats, VectorQuery};

/// A fragment reached through encoded messages.
#[derive(Debug)]
pub struct WireFragment {
    inner: Arc<dyn TableFragment>,
    /// The table's storage schema, which the node decodes filters against.
    storage_schema: SchemaRef,
}

impl WireFragment {
    /// Wraps `inner`, a fragment of a table with `storage_schema`.
    pub fn new(inner: Arc<dyn TableFragment>, storage_schema: SchemaRef) -> Self {
        Self {
            inner,
            storage_schema,
        }
    }
}

fn wire_error(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

const METRICS: [Metric; 4] = [
    Metric::L2,
    Metric::Cosine,
    Metric::NegativeInnerProduct,
    Metric::L1,
];

fn encode_filter(filter: &Option<Arc<dyn PhysicalExpr>>) -> Result<Option<Vec<u8>>> {
    filter
        .as_ref()
        .map(|f| {
            serialize_physical_expr(f, &DefaultPhysicalExtensionCodec {}).map(|n| n.encode_to_vec())
        })
        .transpose()
}

fn decode_filter(
    bytes: &Option<Vec<u8>>,
    context: &TaskContext,
    schema: &SchemaRef,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    bytes
        .as_ref()
        .map(|b| {
            let node = PhysicalExprNode::decode(b.as_slice()).map_err(wire_error)?;
            parse_physical_expr(&node, context, schema, &DefaultPhysicalExtensionCodec {})
        })
        .transpose()
}

fn columns(projection: &[usize]) -> Vec<u32> {
    projection.iter().map(|&c| c as u32).collect()
}

/// The search request as bytes.
pub fn encode_search(request: &FragmentSearch) -> Result<Vec<u8>> {
    let query = &request.query;
    let metric = METRICS
        .iter()
        .position(|m| *m == query.metric)
        .unwrap_or_default() as u32;
    Ok(FragmentSearchRequest {
        read_ts: request.read_ts,
        column: query.column as u32,
        vector: query.vector.clone(),
        metric,
        k: query.k as u64,
        ef: query.params.ef.map(|v| v as u64),
        nprobe: query.params.nprobe.map(|v| v as u64),
        index_rerank: query.params.rerank.map(|v| v as u64),
        rerank: query.rerank as u64,
        filter: encode_filter(&request.filter)?,
        projection: columns(&request.projection),
        hidden_keys: encode_keys(&request.hidden_keys)?,
    }
    .encode_to_vec())
}

fn encode_keys(keys: &Option<arrow::array::RecordBatch>) -> Result<Option<Vec<u8>>> {
    keys.as_ref()
        .map(|k| encode_batch(k).map_err(wire_error))
        .transpose()
}

fn decode_keys(bytes: &Option<Vec<u8>>) -> Result<Option<arrow::array::RecordBatch>> {
    bytes
        .as_deref()
        .map(|b| decode_batch(b).map_err(wire_error))
        .transpose()
}

/// The search request from bytes, its filter resolved in `context`.
pub fn decode_search(
    bytes: &[u8],
    context: &TaskContext,
    schema: &SchemaRef,
) -> Result<FragmentSearch> {
    let m = FragmentSearchRequest::decode(bytes).map_err(wire_error)?;
    let metric = *METRICS.get(m.metric as usize).ok_or_else(|| {
        DataFusionError::Internal(format!("unknown metric {} in a search request", m.metric))
    })?;
    Ok(FragmentSearch {
        read_ts: m.read_ts,
        query: VectorQuery {
            column: m.column as usize,
            vector: m.vector,
            metric,
            k: m.k as usize,
            params: SearchParams {
                ef: m.ef.map(|v| v as usize),
                nprobe: m.nprobe.map(|v| v as usize),
                rerank: m.index_rerank.map(|v| v as usize),
            },
            rerank: m.rerank as usize,
        },
        filter: decode_filter(&m.filter, context, schema)?,
        projection: m.projection.iter().map(|&c| c as usize).collect(),
        hidden_keys: decode_keys(&m.hidden_keys)?,
    })
}

fn encode_reply(reply: &FragmentReply) -> Result<Vec<u8>> {
    let stats = &reply.stats;
    Ok(FragmentSearchReply {
        batch: encode_batch(&reply.batch).map_err(wire_error)?,
        rows_scanned: stats.rows_scanned as u64,
        segments_searched: stats.segments_searched as u64,
        segments_pruned: stats.segments_pruned as u64,
        index_searches: stats.index_searches as u64,
        exact_scans: stats.exact_scans as u64,
    }
    .encode_to_vec())
}

fn decode_reply(bytes: &[u8]) -> Result<FragmentReply> {
    let m = FragmentSearchReply::decode(bytes).map_err(wire_error)?;
    Ok(FragmentReply {
        batch: decode_batch(&m.batch).map_err(wire_error)?,
        stats: SearchStats {
            rows_scanned: m.rows_scanned as usize,
            segments_searched: m.segments_searched as usize,
            segments_pruned: m.segments_pruned as usize,
            index_searches: m.index_searches as usize,
            exact_scans: m.exact_scans as usize,
        },
    })
}

fn encode_scan(request: &FragmentScan) -> Result<Vec<u8>> {
    Ok(FragmentScanRequest {
        read_ts: request.read_ts,
        projection: columns(&request.projection),
        filter: encode_filter(&request.filter)?,
        limit: request.limit.map(|l| l as u64),
        part: request.part as u32,
        parts: request.parts as u32,
        hidden_keys: encode_keys(&request.hidden_keys)?,
    }
    .encode_to_vec())
}

fn decode_scan(bytes: &[u8], context: &TaskContext, schema: &SchemaRef) -> Result<FragmentScan> {
    let m = FragmentScanRequest::decode(bytes).map_err(wire_error)?;
    Ok(FragmentScan {
        read_ts: m.read_ts,
        projection: m.projection.iter().map(|&c| c as usize).collect(),
        filter: decode_filter(&m.filter, context, schema)?,
        limit: m.limit.map(|l| l as usize),
        part: m.part as usize,
        parts: m.parts as usize,
        hidden_keys: decode_keys(&m.hidden_keys)?,
    })
}

impl TableFragment for WireFragment {
    fn label(&self) -> String {
        self.inner.label()
    }

    fn segments(&self) -> usize {
        self.inner.segments()
    }

    fn stored_rows(&self) -> usize {
        self.inner.stored_rows()
    }

    fn search(
        &self,
        request: FragmentSearch,
        context: Arc<TaskContext>,
    ) -> BoxFuture<'static, Result<FragmentReply>> {
        let inner = self.inner.clone();
        let schema = self.storage_schema.clone();
        Box::pin(async move {
            let sent = encode_search(&request)?;
            let received = decode_search(&sent, &context, &schema)?;
            let reply = inner.search(received, context).await?;
            decode_reply(&encode_reply(&reply)?)
        })
    }

    fn scan(
        &self,
        request: FragmentScan,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let sent = encode_scan(&request)?;
        let received = decode_scan(&sent, &context, &self.storage_schema)?;
        let rows = self.inner.scan(received, context)?;
        let schema = rows.schema();
        let over_the_wire = rows.map(|batch| {
            let bytes = encode_batch(&batch?).map_err(wire_error)?;
            decode_batch(&bytes).map_err(wire_error)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            over_the_wire,
        )))
    }
}
