//! `quiver-exec` owns query execution over Quiver's segments:
//!
//! * [`source`] — the [`source::TableSource`] contract the storage roles
//!   implement: a consistent snapshot of a table's growing and sealed segments
//!   plus its deletes at a read timestamp, and row visibility (MVCC) rules.
//! * [`table`] — [`table::QuiverTable`], the DataFusion `TableProvider`, and its
//!   [`table::SegmentScanExec`] scan operator.
//! * [`vector_search`] — [`vector_search::VectorSearchExec`], the physical
//!   top-k nearest-neighbour operator (exact per segment, merged across
//!   segments, ties broken by primary key).
//! * [`catalog`] — DataFusion catalog/schema providers over a
//!   [`catalog::CatalogSource`].
//!
//! This crate knows nothing of protocols or of how segments are stored.

pub mod catalog;
pub mod deletes;
pub mod pk;
pub mod source;
pub mod table;
pub mod vector_search;
