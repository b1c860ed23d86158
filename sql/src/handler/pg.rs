//! The Postgres-only part of the seam: [`PgHandler`], what the Postgres
//! door asks of a handler beyond the protocol-neutral [`QueryHandler`] —
//! statement results with their command tags and transaction effects
//! ([`PgOutput`]), and the COPY sub-protocol ([`CopySpec`],
//! [`PgHandler::copy_in`]). The Milvus door never names this module.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::Statement;
use quiver_common::status::StatusCode;

use super::{Output, QueryHandler, Session};
use crate::error::{Result, SqlError};

/// How a command changes the transaction status the front end reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionEffect {
    None,
    Begin,
    End,
}

/// A completed command without rows (`CREATE TABLE`, `INSERT 0 3`, `DELETE 2`).
#[derive(Debug, Clone)]
pub struct CommandTag {
    pub command: String,
    /// `INSERT` reports an OID (always 0).
    pub oid: Option<u32>,
    pub rows: Option<usize>,
    pub transaction: TransactionEffect,
    /// Session parameters changed by the command (`SET application_name`), for ParameterStatus.
    pub parameter_status: Vec<(String, String)>,
}

impl CommandTag {
    /// A tag without a row count.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            oid: None,
            rows: None,
            transaction: TransactionEffect::None,
            parameter_status: Vec::new(),
        }
    }

    /// A tag with a row count.
    pub fn with_rows(mut self, rows: usize) -> Self {
        self.rows = Some(rows);
        self
    }

    /// The `INSERT 0 n` tag.
    pub fn insert(rows: usize) -> Self {
        Self {
            oid: Some(0),
            ..Self::new("INSERT").with_rows(rows)
        }
    }

    /// Marks the transaction effect.
    pub fn with_transaction(mut self, effect: TransactionEffect) -> Self {
        self.transaction = effect;
        self
    }
}

/// Text formats of COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// What a `COPY` moves: the table and the columns, with their Arrow types.
#[derive(Debug, Clone)]
pub struct CopySpec {
    pub database: String,
    pub table: String,
    /// The copied columns in order (names and types; vectors are `FixedSizeList<Float32>`).
    pub schema: SchemaRef,
    pub format: CopyFormat,
    /// Field delimiter (default tab for text, comma for CSV).
    pub delimiter: u8,
    /// NULL marker (default `\N` for text, empty for CSV).
    pub null: String,
    /// CSV: the first line is a header.
    pub header: bool,
    /// CSV quote character.
    pub quote: u8,
    /// The session's memory pool: the decoded rows a COPY FROM buffers
    /// before inserting them are reserved against it (none: not accounted).
    pub memory: Option<Arc<dyn MemoryPool>>,
}

/// The result of executing a statement as the Postgres door reports it.
pub enum PgOutput {
    /// Rows to stream; the tag names the command (`SELECT`, or `INSERT` for `RETURNING`).
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        command: String,
    },
    /// A command without rows.
    Command(CommandTag),
    /// `COPY ... FROM STDIN`: the front end collects the data, decodes it
    /// with the spec and calls [`PgHandler::copy_in`].
    CopyIn(CopySpec),
    /// `COPY ... TO STDOUT`: the rows to encode with the spec.
    CopyOut {
        spec: CopySpec,
        stream: SendableRecordBatchStream,
    },
}

impl PgOutput {
    /// The protocol-neutral result: the rows, or the count a command
    /// affected. COPY, whose data moves in the Postgres protocol's
    /// sub-protocol, is refused (`0A000`).
    pub fn into_output(self) -> Result<Output> {
        match self {
            PgOutput::Rows { schema, stream, .. } => Ok(Output::Rows { schema, stream }),
            PgOutput::Command(tag) => Ok(Output::Done { rows: tag.rows }),
            PgOutput::CopyIn(_) | PgOutput::CopyOut { .. } => Err(SqlError::Query {
                code: StatusCode::Unsupported,
                message: "COPY needs the wire protocol".into(),
            }),
        }
    }
}

/// The handler as the Postgres door sees it: the neutral
/// [`QueryHandler`], plus statement results with their command tags and
/// transaction effects, and COPY.
#[async_trait]
pub trait PgHandler: QueryHandler {
    /// Executes a statement with bound parameters, as
    /// [`QueryHandler::execute`] does, reporting its command tag,
    /// transaction effect and COPY.
    async fn execute_pg(
        &self,
        session: &mut Session,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<PgOutput>;

    /// Inserts rows decoded from `COPY ... FROM STDIN`; returns the row count.
    async fn copy_in(
        &self,
        session: &mut Session,
        spec: &CopySpec,
        rows: RecordBatch,
    ) -> Result<usize>;

    /// A statement failed after [`PgHandler::execute_pg`] returned (while
    /// its rows streamed): its transaction block, if any, is aborted.
    fn statement_failed(&self, _session: &mut Session) {}

    /// The session's transaction state, for `ReadyForQuery`; `None` when
    /// the handler leaves it to the front end (which follows the
    /// [`TransactionEffect`]s of the command tags).
    fn transaction_state(&self, _session: &mut Session) -> Option<TransactionState> {
        None
    }
}

/// Where a session stands, as `ReadyForQuery` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// Not in a transaction block (`I`).
    Idle,
    /// In a transaction block (`T`).
    InBlock,
    /// In a transaction block an error aborted (`E`).
    Failed,
}

/// Shared Postgres handler.
pub type PgHandlerRef = Arc<dyn PgHandler>;
