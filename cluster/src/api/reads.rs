//! The read side of the streaming and query nodes: a node's **part of one
//! table at a read timestamp**, as the fragments searches and scans
//! scatter to ([`TableReads`]). The request is plain data (table id, read
//! timestamp, the table's schema and index records); the reply is the
//! fragments — in process, handles over the node's own segments; across
//! processes, clients that send each search or scan to the node — with the
//! segment ids each holds, and the ids the node *covers* (serves, or
//! merged into a segment it serves).
//!
//! A reader asks the streaming node first, then the query node, and drops
//! every streaming fragment whose segments the query node covers. A
//! segment leaves the streaming node only after the query node loaded it,
//! and a segment the query node loaded stays covered (served, or merged
//! into a served one), so between the two calls no row can be lost (it is
//! on one node or the other) and none read twice (a copy on both is read
//! from the query node); rows written after the read timestamp are hidden
//! by their timestamps wherever they are.

use std::sync::Arc;

use async_trait::async_trait;
use quiver_common::schema::TableSchema;
use quiver_exec::fragments::{SnapshotFragment, TableFragment};
use quiver_exec::source::{SegmentKind, TableSnapshot};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::indexes::IndexMeta;

/// Read one table's part on a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadTable {
    pub table_id: u64,
    /// The read timestamp; `None`: the node's newest safe one.
    pub read_ts: Option<u64>,
    /// The table's definition the statement plans over.
    pub schema: TableSchema,
    /// The indexes it defines (a segment's index of any other is not
    /// searched).
    pub indexes: Vec<IndexMeta>,
}

/// One fragment of a node's part.
#[derive(Debug, Clone)]
pub struct PartFragment {
    /// The shard whose segments it holds.
    pub shard: u32,
    /// The segments it holds.
    pub segment_ids: Vec<u64>,
    pub fragment: Arc<dyn TableFragment>,
}

/// A node's part of a table.
#[derive(Debug, Clone, Default)]
pub struct TablePart {
    /// The timestamp it reads at.
    pub read_ts: u64,
    pub fragments: Vec<PartFragment>,
    /// The segment ids the node covers: those it serves and those merged
    /// into a segment it serves.
    pub covered: Vec<u64>,
}

/// A node's read side.
#[async_trait]
pub trait TableReads: Send + Sync + std::fmt::Debug + 'static {
    /// The node's part of a table at a read timestamp; an empty part when
    /// the node holds nothing of the table.
    async fn read_table(&self, request: ReadTable) -> Result<TablePart>;
}

/// The fragments over `snapshot`'s segments, as a node hands them out:
/// one per shard and kind (`shard 0 growing`), or with `per_segment` one
/// per segment (the streaming node's, which a reader may drop one by one);
/// `sealed_note` ends a sealed fragment's label.
pub fn snapshot_fragments(
    snapshot: &TableSnapshot,
    sealed_note: &str,
    per_segment: bool,
) -> Vec<PartFragment> {
    let mut groups: Vec<(u32, bool, Vec<u64>)> = Vec::new();
    for segment in &snapshot.segments {
        let growing = segment.kind == SegmentKind::Growing;
        let joins = !per_segment;
        let group = groups
            .iter_mut()
            .find(|(shard, kind, _)| joins && *shard == segment.shard && *kind == growing);
        match group {
            Some((_, _, ids)) => ids.push(segment.id),
            None => groups.push((segment.shard, growing, vec![segment.id])),
        }
    }
    groups.sort_by_key(|(shard, growing, _)| (*shard, *growing));
    groups
        .into_iter()
        .map(|(shard, growing, segment_ids)| {
            let label = if growing {
                format!("shard {shard} growing")
            } else {
                format!("shard {shard} sealed{sealed_note}")
            };
            let segments = snapshot
                .segments
                .iter()
                .filter(|s| segment_ids.contains(&s.id))
                .cloned()
                .collect();
            let fragment = SnapshotFragment::new(
                label,
                TableSnapshot {
                    segments,
                    ..snapshot.clone()
                },
            );
            PartFragment {
                shard,
                segment_ids,
                fragment: Arc::new(fragment),
            }
        })
        .collect()
}
