//! `quiver-sqllogictests` runs the `.slt` files in `slt/` — the source of
//! truth for Quiver's SQL behaviour — in two ways with identical expectations:
//!
//! * [`EmbeddedDb`]: straight into the access layer's `QueryHandler`, no protocol;
//! * [`PgDb`]: over the Postgres wire protocol with `tokio-postgres`, against a
//!   server started by the test (or any `quiver standalone`, see `quiver-slt --url`).
//!
//! Errors are rendered as `SQLSTATE: message` in both modes so files can
//! assert error codes (`statement error 23505: duplicate key`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimeUnit,
};
use async_trait::async_trait;
use futures::StreamExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_servers::pg::text_output::format_float;
use quiver_sql::handler::{Output, QueryHandler, Session, SessionInfo};
use quiver_sql::Instance;
use sqllogictest::{DBOutput, DefaultColumnType};

/// An error rendered as `SQLSTATE: message`.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DbError {
    pub code: String,
    pub message: String,
}

/// The `.slt` files, sorted.
pub fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("slt directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

/// A test configuration on `dir` with small segments so tests cross
/// seal/flush paths; `QUIVER__CLUSTER__SERIALIZE_SEAMS=true` in the
/// environment runs it with every role seam serialized.
pub fn test_config(dir: &Path) -> QuiverConfig {
    let mut config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.segment.seal_rows = 4;
    config.segment.compaction_min_segments = 3;
    config.segment.compaction_small_rows = 1000;
    config.segment.maintenance_interval_ms = 50;
    config.cluster.serialize_seams = std::env::var("QUIVER__CLUSTER__SERIALIZE_SEAMS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    config
}

/// Queries run straight into the handler.
pub struct EmbeddedDb {
    instance: Arc<Instance>,
    session: Session,
}

impl EmbeddedDb {
    /// A new session on `instance`.
    pub async fn new(instance: Arc<Instance>) -> Self {
        let session = instance
            .new_session(SessionInfo {
                user: "slt".into(),
                database: Some("quiver".into()),
                ..Default::default()
            })
            .await
            .expect("session");
        Self { instance, session }
    }

    /// Opens an engine on `dir` and wraps it.
    pub async fn open_instance(dir: &Path) -> Arc<Instance> {
        let engine = Engine::open(test_config(dir)).await.expect("engine opens");
        engine.spawn_maintenance();
        Arc::new(Instance::new(engine))
    }
}

fn sql_error(err: quiver_sql::SqlError) -> DbError {
    DbError {
        code: quiver_servers::pg::errors::sqlstate(err.status_code()).to_string(),
        message: err.to_string(),
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for EmbeddedDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let statements = self.instance.parse(sql).map_err(sql_error)?;
        let mut last = DBOutput::StatementComplete(0);
        for statement in statements {
            let output = self
                .instance
                .execute(&mut self.session, &statement, None)
                .await
                .map_err(sql_error)?;
            last = match output {
                Output::Rows {
                    schema, mut stream, ..
                } => {
                    let mut rows = Vec::new();
                    while let Some(batch) = stream.next().await {
                        let batch = batch.map_err(|e| sql_error(e.into()))?;
                        rows.extend(format_batch(&batch));
                    }
                    DBOutput::Rows {
                        types: vec![DefaultColumnType::Any; schema.fields().len()],
                        rows,
                    }
                }
                Output::Done { rows } => DBOutput::StatementComplete(rows.unwrap_or(0) as u64),
            };
        }
        Ok(last)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "embedded"
    }
}

/// Queries over the Postgres wire protocol (simple query protocol: text values).
pub struct PgDb {
    client: tokio_postgres::Client,
}

impl PgDb {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Self, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { client })
    }
}

fn pg_error(err: tokio_postgres::Error) -> DbError {
    match err.as_db_error() {
        Some(db) => DbError {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
        },
        None => DbError {
            code: "08000".into(),
            message: err.to_string(),
        },
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for PgDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let messages = self.client.simple_query(sql).await.map_err(pg_error)?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut count = 0;
        for message in messages {
            match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    columns.get_or_insert(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| {
                                row.get(i)
                                    .map(normalize_text)
                                    .unwrap_or_else(|| "NULL".into())
                            })
                            .collect(),
                    );
                }
                tokio_postgres::SimpleQueryMessage::RowDescription(desc) => {
                    columns = Some(desc.len());
                }
                tokio_postgres::SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "pgwire"
    }
}

fn normalize_text(value: &str) -> String {
    if value.is_empty() {
        "(empty)".to_string()
    } else {
        value.to_string()
    }
}

/// Formats a batch as Postgres' text output does.
pub fn format_batch(batch: &RecordBatch) -> Vec<Vec<String>> {
    let vector_columns: Vec<bool> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.metadata().get("pg.vector").is_some())
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .zip(&vector_columns)
                .map(|(col, is_vector)| match (is_vector, col.data_type()) {
                    (true, DataType::List(_)) if col.is_valid(row) => {
                        let values = col.as_list::<i32>().value(row);
                        let floats: Vec<f32> = values
                            .as_primitive_opt::<Float32Type>()
                            .map(|a| a.values().to_vec())
                            .unwrap_or_default();
                        quiver_common::vector::format_text(&floats)
                    }
                    _ => format_value(col.as_ref(), row),
                })
                .collect()
        })
        .collect()
}

fn format_value(col: &dyn Array, row: usize) -> String {
    // Logical nulls: a column of untyped NULLs has no validity buffer.
    if col.logical_nulls().is_some_and(|nulls| nulls.is_null(row)) {
        return "NULL".into();
    }
    match col.data_type() {
        DataType::Boolean => (if col.as_boolean().value(row) {
            "t"
        } else {
            "f"
        })
        .into(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt64 => col
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(row)
            .to_string(),
        DataType::Float32 => format_float(
            f64::from(col.as_primitive::<Float32Type>().value(row)),
            true,
        ),
        DataType::Float64 => format_float(col.as_primitive::<Float64Type>().value(row), false),
        DataType::Utf8 => normalize_text(col.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => normalize_text(col.as_string::<i64>().value(row)),
        DataType::Utf8View => normalize_text(col.as_string_view().value(row)),
        DataType::FixedSizeList(_, _) => {
            let list = col.as_fixed_size_list();
            let values = list.value(row);
            let floats: Vec<f32> = values
                .as_primitive_opt::<Float32Type>()
                .map(|a| a.values().to_vec())
                .unwrap_or_default();
            quiver_common::vector::format_text(&floats)
        }
        DataType::List(_) => {
            let list = col.as_list::<i32>();
            let values = list.value(row);
            let items: Vec<String> = (0..values.len())
                .map(|i| format_value(values.as_ref(), i))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let v = col
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(row);
            arrow::temporal_conversions::timestamp_us_to_datetime(v)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S%.f+00").to_string())
                .unwrap_or_default()
        }
        _ => arrow::util::display::array_value_to_string(col, row).unwrap_or_default(),
    }
}
