//! Result rows to pgwire: type mapping (vectors as pgvector's `vector`),
//! row encoding with arrow-pg, and the statement guard around execution
//! and row streams: statement timeout, cancel, and the memory of the batch
//! being encoded (reserved against the session's memory pool until the
//! next batch is asked for, i.e. while its rows are encoded and sent).

use std::future::Future;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, field_into_pg_type, pg_vector_type,
    PG_VECTOR_KEY,
};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::execution::SendableRecordBatchStream;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, BoxStream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use quiver_common::schema::vector_dim;
use quiver_common::time_zone::SessionTimeZone;
use tokio::time::Instant;

use super::errors::{cancel_error, df_err, timeout_error};

/// True for the Arrow type of a `vector(n)` value (`FixedSizeList<Float32>`).
pub(crate) fn is_vector_type(data_type: &DataType) -> bool {
    vector_dim(data_type).is_some()
}

/// Marks every vector field with arrow-pg's `pg.vector` metadata so it is
/// described and encoded as pgvector's `vector` (text `[1,2,3]`, pgvector binary).
pub(crate) fn tag_vectors(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_vector_type(f.data_type()) {
                let mut metadata = f.metadata().clone();
                metadata.insert(PG_VECTOR_KEY.to_string(), "vector".to_string());
                f.as_ref().clone().with_metadata(metadata)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The pgwire field descriptions of a result schema in the given formats.
pub(crate) fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Arc<Vec<FieldInfo>>> {
    let format = safe_format(format, schema.fields().len());
    Ok(Arc::new(arrow_schema_to_pg_fields(
        &tag_vectors(schema),
        &format,
        None,
    )?))
}

/// A result format whose per-column list is as long as the schema (a client
/// sending a short list would otherwise make the encoder index out of bounds).
fn safe_format(format: &Format, columns: usize) -> Format {
    match format {
        Format::Individual(codes) if codes.len() < columns => {
            let mut codes = codes.clone();
            codes.resize(columns, 0);
            Format::Individual(codes)
        }
        other => other.clone(),
    }
}

/// The Postgres type reported for a parameter (`UNKNOWN` when not
/// inferred): vectors as pgvector's type, catalog oid columns' parameters as
/// their alias type (`oid`, which drivers bind a `u32` to), others by type.
pub(crate) fn param_pg_type(field: Option<&FieldRef>) -> Type {
    match field {
        Some(f) if is_vector_type(f.data_type()) => pg_vector_type(),
        Some(f) => field_into_pg_type(f).unwrap_or(Type::UNKNOWN),
        None => Type::UNKNOWN,
    }
}

/// Resolves when a cancel request arrives for the running statement.
pub(crate) type CancelSignal = Shared<BoxFuture<'static, ()>>;

/// Turns pgwire's per-query cancel receiver into a cloneable signal. A
/// receiver whose sender was dropped (the query ended) never fires.
pub(crate) fn cancel_signal(rx: futures::channel::oneshot::Receiver<()>) -> CancelSignal {
    async move {
        if rx.await.is_err() {
            futures::future::pending::<()>().await;
        }
    }
    .boxed()
    .shared()
}

/// The statement timeout deadline, cancel signal and memory pool of one
/// statement.
#[derive(Clone, Default)]
pub(crate) struct Guard {
    pub deadline: Option<Instant>,
    pub cancel: Option<CancelSignal>,
    /// Where the rows being encoded are reserved (none: not accounted).
    pub memory: Option<Arc<dyn MemoryPool>>,
    /// The session's `TimeZone` once the statement ran: `timestamptz`
    /// values are shown in it.
    pub time_zone: SessionTimeZone,
}

impl Guard {
    /// A guard whose deadline is `timeout` from now.
    pub fn new(timeout: Option<std::time::Duration>, cancel: Option<CancelSignal>) -> Self {
        Self {
            deadline: timeout.map(|t| Instant::now() + t),
            cancel,
            memory: None,
            time_zone: SessionTimeZone::default(),
        }
    }

    /// The same guard, reserving the batches its streams hand to the
    /// encoder against `pool`.
    pub fn with_memory(mut self, pool: Arc<dyn MemoryPool>) -> Self {
        self.memory = Some(pool);
        self
    }

    /// Waits until the deadline passes or the statement is cancelled, and
    /// returns the matching error; never resolves without either.
    async fn tripped(deadline: Option<Instant>, cancel: Option<CancelSignal>) -> PgWireError {
        let timeout = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        let cancelled = async move {
            match cancel {
                Some(c) => c.await,
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = timeout => timeout_error(),
            _ = cancelled => cancel_error(),
        }
    }

    /// Runs `fut` unless the deadline passes or the statement is cancelled first.
    pub async fn run<F: Future>(&self, fut: F) -> PgWireResult<F::Output> {
        if self.deadline.is_none() && self.cancel.is_none() {
            return Ok(fut.await);
        }
        tokio::select! {
            out = fut => Ok(out),
            err = Self::tripped(self.deadline, self.cancel.clone()) => Err(err),
        }
    }

    /// Wraps a batch stream: it ends with an error when the deadline passes
    /// or the statement is cancelled while rows are still being produced,
    /// or when the batch to encode does not fit the statement's memory
    /// limit (`53200`). A batch stays reserved until the next is asked for:
    /// the encoder turns its rows into messages in between.
    pub fn stream(
        &self,
        stream: SendableRecordBatchStream,
    ) -> BoxStream<'static, PgWireResult<RecordBatch>> {
        let guard = self.clone();
        let reservation = self
            .memory
            .as_ref()
            .map(|pool| MemoryConsumer::new("result encoding").register(pool));
        stream::unfold(Some((stream, reservation)), move |state| {
            let guard = guard.clone();
            async move {
                let (mut stream, reservation) = state?;
                if let Some(r) = &reservation {
                    r.free();
                }
                match guard.run(stream.next()).await {
                    Ok(Some(Ok(batch))) => {
                        if let Some(r) = &reservation {
                            if let Err(e) = r.try_grow(batch.get_array_memory_size()) {
                                return Some((Err(df_err(e)), None));
                            }
                        }
                        Some((Ok(batch), Some((stream, reservation))))
                    }
                    Ok(Some(Err(e))) => Some((Err(df_err(e)), None)),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }
}

/// Reserves what a statement's text costs while it is parsed, planned and
/// run ([`quiver_common::limits::STATEMENT_TEXT_MEMORY_FACTOR`] times its
/// length) against the session's memory pool: a statement too long for the
/// limit fails with `53200` before it is parsed.
pub(crate) fn reserve_statement_text(
    pool: &Arc<dyn MemoryPool>,
    sql: &str,
) -> PgWireResult<datafusion::execution::memory_pool::MemoryReservation> {
    let reservation = MemoryConsumer::new("statement text").register(pool);
    reservation
        .try_grow(
            sql.len()
                .saturating_mul(quiver_common::limits::STATEMENT_TEXT_MEMORY_FACTOR),
        )
        .map_err(df_err)?;
    Ok(reservation)
}

/// A pgwire row response for a result stream: RowDescription fields in the
/// requested formats and the DataRows encoded by arrow-pg.
pub(crate) fn query_response(
    schema: &Schema,
    batches: BoxStream<'static, PgWireResult<RecordBatch>>,
    command: &str,
    format: &Format,
    time_zone: SessionTimeZone,
) -> PgWireResult<QueryResponse> {
    let fields = pg_fields(schema, format)?;
    let row_fields = fields.clone();
    let rows = batches
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) => encode_recordbatch(
                    row_fields.clone(),
                    super::text_output::render_text_columns(batch, &row_fields, &time_zone),
                ),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            stream::iter(rows)
        })
        .flatten();
    let mut response = QueryResponse::new(fields, rows);
    // pgwire appends the row count; `INSERT ... RETURNING` reports `INSERT 0 n`.
    let command = if command.eq_ignore_ascii_case("INSERT") {
        "INSERT 0"
    } else {
        command
    };
    response.set_command_tag(command);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_pg::datatypes::PG_VECTOR_TYPE_OID;
    use quiver_common::schema::vector_arrow_type;

    #[test]
    fn vectors_are_described_as_pgvector() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", vector_arrow_type(3), true),
        ]);
        let fields = pg_fields(&schema, &Format::UnifiedText).unwrap();
        assert_eq!(fields[0].datatype(), &Type::INT8);
        assert_eq!(fields[1].datatype().oid(), PG_VECTOR_TYPE_OID);
        let param = |dt: DataType| Arc::new(Field::new("$1", dt, true));
        assert_eq!(
            param_pg_type(Some(&param(vector_arrow_type(3)))).oid(),
            PG_VECTOR_TYPE_OID
        );
        assert_eq!(param_pg_type(Some(&param(DataType::Utf8))), Type::TEXT);
        let oid = Field::new("$1", DataType::Int32, true).with_metadata(
            [(
                arrow_pg::datatypes::PG_OID_ALIAS_KEY.to_string(),
                "oid".to_string(),
            )]
            .into(),
        );
        assert_eq!(param_pg_type(Some(&Arc::new(oid))), Type::OID);
        assert_eq!(param_pg_type(None), Type::UNKNOWN);
    }

    #[test]
    fn short_format_lists_are_padded() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]);
        let fields = pg_fields(&schema, &Format::Individual(vec![1])).unwrap();
        assert_eq!(fields.len(), 2);
    }

    #[tokio::test]
    async fn guard_times_out() {
        let guard = Guard::new(Some(std::time::Duration::from_millis(10)), None);
        let err = guard
            .run(futures::future::pending::<()>())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("statement timeout"));
        let fast = Guard::new(Some(std::time::Duration::from_secs(10)), None);
        assert_eq!(fast.run(async { 7 }).await.unwrap(), 7);
    }
}
