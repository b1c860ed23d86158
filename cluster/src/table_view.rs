//! [`TableView`]: a table as execution reads it, the [`TableSource`] the
//! engine hands the access layer: the table's definition as the
//! coordinator's catalog gave it when the view was made (id, schema, index
//! definitions: a statement plans over one version of them) and, by table
//! id, the fragments of the two roles
//! that hold its data, each over its own state: the streaming node's (per
//! shard, its growing segment and the sealed segments it has not flushed
//! yet, with its delete map) and the query node's (per shard, the flushed
//! segments it serves, with its own delete map).

use std::collections::HashSet;
use std::sync::Arc;

use quiver_common::schema::TableSchema;
use quiver_exec::fragment_wire::WireFragment;
use quiver_exec::fragments::{SnapshotFragment, TableFragment};
use quiver_exec::source::{IndexDescription, SegmentKind, TableSnapshot};
use quiver_exec::table_source::TableSource;

use crate::catalog_table::CatalogTable;
use crate::query_node::QueryNode;
use crate::streaming::StreamingNode;

/// One table over its streaming node's state and its query node.
#[derive(Debug, Clone)]
pub struct TableView {
    table_id: u64,
    schema: TableSchema,
    /// The index definitions, by index id.
    indexes: Vec<(u64, IndexDescription)>,
    streaming_node: Arc<StreamingNode>,
    query_node: Arc<QueryNode>,
    /// Searches and scans reach the fragments through encoded messages
    /// (`cluster.serialize_seams`).
    serialize_seams: bool,
}

impl TableView {
    /// The table `table` of the catalog as it is now, its data read from
    /// `streaming_node` and `query_node`.
    pub fn new(
        table: &CatalogTable,
        streaming_node: Arc<StreamingNode>,
        query_node: Arc<QueryNode>,
    ) -> Self {
        Self {
            table_id: table.id(),
            schema: table.schema(),
            indexes: table.index_definitions(),
            streaming_node,
            query_node,
            serialize_seams: false,
        }
    }

    /// Reaches the fragments through encoded messages when `on`.
    pub fn with_serialized_seams(mut self, on: bool) -> Self {
        self.serialize_seams = on;
        self
    }

    /// Both nodes' parts at one read timestamp: the streaming node's first,
    /// then the query node's (before the streaming node's data is
    /// unlocked), the streaming node's copy of a segment the query node
    /// serves already left out (see
    /// [`TableRuntime::own_snapshot_and`](crate::table::TableRuntime::own_snapshot_and)).
    /// A table dropped meanwhile reads as empty.
    fn parts(&self, read_ts: Option<u64>) -> (TableSnapshot, TableSnapshot) {
        let snapshot = self
            .streaming_node
            .snapshot_and(self.table_id, read_ts, |own| {
                self.query_node
                    .snapshot(own.table_id, &own.schema, &self.indexes, own.read_ts)
            });
        let (mut own, served) = match snapshot {
            Ok(parts) => parts,
            Err(_) => {
                let read_ts = read_ts.unwrap_or(0);
                let empty = TableSnapshot {
                    table_id: self.table_id,
                    schema: self.schema.clone(),
                    segments: Vec::new(),
                    deletes: Default::default(),
                    read_ts,
                };
                (empty.clone(), empty)
            }
        };
        let handed_over: HashSet<u64> = served.segments.iter().map(|s| s.id).collect();
        own.segments.retain(|s| !handed_over.contains(&s.id));
        (own, served)
    }
}

impl TableSource for TableView {
    fn table_id(&self) -> u64 {
        self.table_id
    }

    fn table_schema(&self) -> TableSchema {
        self.schema.clone()
    }

    /// The whole table in one snapshot, for inspection (tests, counts):
    /// the query node's segments, then the streaming node's, under the
    /// streaming node's delete map (it holds every delete of the table).
    /// Searches and scans read [`TableSource::fragments`] instead.
    fn snapshot(&self, read_ts: Option<u64>) -> TableSnapshot {
        let (own, served) = self.parts(read_ts);
        TableSnapshot {
            segments: served.segments.into_iter().chain(own.segments).collect(),
            ..own
        }
    }

    fn vector_indexes(&self) -> Vec<IndexDescription> {
        self.indexes.iter().map(|(_, d)| d.clone()).collect()
    }

    /// Per shard, the sealed segments the query node serves, then the
    /// streaming node's sealed segments not flushed yet and its growing
    /// segment, each fragment over its own node's state.
    fn fragments(&self, read_ts: Option<u64>) -> (u64, Vec<Arc<dyn TableFragment>>) {
        let (own, served) = self.parts(read_ts);
        let read_ts = own.read_ts;
        let storage = own.schema.storage_schema();
        let part = |snapshot: &TableSnapshot, shard: u32, kind: SegmentKind, label: String| {
            let segments: Vec<_> = snapshot
                .segments
                .iter()
                .filter(|s| s.shard == shard && s.kind == kind)
                .cloned()
                .collect();
            (!segments.is_empty()).then(|| {
                SnapshotFragment::new(
                    label,
                    TableSnapshot {
                        segments,
                        ..snapshot.clone()
                    },
                )
            })
        };
        let mut shards: Vec<u32> = own
            .segments
            .iter()
            .chain(&served.segments)
            .map(|s| s.shard)
            .collect();
        shards.sort_unstable();
        shards.dedup();
        let fragments = shards
            .into_iter()
            .flat_map(|shard| {
                [
                    part(
                        &served,
                        shard,
                        SegmentKind::Sealed,
                        format!("shard {shard} sealed"),
                    ),
                    part(
                        &own,
                        shard,
                        SegmentKind::Sealed,
                        format!("shard {shard} sealed, not flushed"),
                    ),
                    part(
                        &own,
                        shard,
                        SegmentKind::Growing,
                        format!("shard {shard} growing"),
                    ),
                ]
            })
            .flatten()
            .map(|fragment| {
                let fragment: Arc<dyn TableFragment> = Arc::new(fragment);
                if self.serialize_seams {
                    Arc::new(WireFragment::new(fragment, storage.clone()))
                } else {
                    fragment
                }
            })
            .collect();
        (read_ts, fragments)
    }
}
