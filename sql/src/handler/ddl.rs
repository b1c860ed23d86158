//! Catalog changes a front end makes without SQL text (the Milvus door's
//! databases, collections, fields and indexes): the coordinator's DDL
//! requests, plain data that can cross a process boundary, re-exported so
//! a front end needs no crate below this seam. [`CatalogChange`] is what
//! [`QueryHandler::change_catalog`](super::QueryHandler::change_catalog)
//! takes.

pub use quiver_cluster::api::{
    AddColumn, CreateDatabase, CreateIndex, CreateTable, DropDatabase, DropIndex, DropTable,
    IndexDefinition, RenameTable, TableRef,
};
pub use quiver_common::schema::{ColumnDef, ColumnType};

/// One catalog change, as the coordinator's request for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogChange {
    CreateDatabase(CreateDatabase),
    DropDatabase(DropDatabase),
    CreateTable(CreateTable),
    DropTable(DropTable),
    RenameTable(RenameTable),
    AddColumn(AddColumn),
    /// Checked as `CREATE INDEX` checks its parameters (pgvector's ranges,
    /// the defaults of those left out); the index is built over the
    /// table's sealed segments before the change returns.
    CreateIndex(CreateIndex),
    DropIndex(DropIndex),
}

impl CatalogChange {
    /// What the change is, for errors and logs (`CREATE TABLE`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            CatalogChange::CreateDatabase(_) => "CREATE DATABASE",
            CatalogChange::DropDatabase(_) => "DROP DATABASE",
            CatalogChange::CreateTable(_) => "CREATE TABLE",
            CatalogChange::DropTable(_) => "DROP TABLE",
            CatalogChange::RenameTable(_) => "RENAME TABLE",
            CatalogChange::AddColumn(_) => "ADD COLUMN",
            CatalogChange::CreateIndex(_) => "CREATE INDEX",
            CatalogChange::DropIndex(_) => "DROP INDEX",
        }
    }
}
