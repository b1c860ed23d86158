//! `COPY table [(columns)] FROM STDIN` and `COPY table|(query) TO STDOUT`:
//! the statement becomes a [`CopySpec`]; the front end moves and decodes the
//! data, and decoded rows come back through [`copy_in`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use quiver_cluster::WriteMode;

use super::names::normalize_ident;
use super::session::SqlSession;
use super::state::Instance;
use crate::error::{Result, SqlError};
use crate::handler::pg::{CopyFormat, CopySpec, PgOutput};

struct Options {
    format: CopyFormat,
    delimiter: Option<u8>,
    null: Option<String>,
    header: bool,
    quote: u8,
}

fn byte(c: char, what: &str) -> Result<u8> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(SqlError::InvalidParameter(format!(
            "COPY {what} must be a single one-byte character"
        )))
    }
}

fn parse_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Options> {
    let mut out = Options {
        format: CopyFormat::Text,
        delimiter: None,
        null: None,
        header: false,
        quote: b'"',
    };
    for option in options {
        match option {
            CopyOption::Format(ident) => {
                out.format = match ident.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(SqlError::InvalidParameter(format!(
                            "COPY format \"{other}\" not recognized"
                        )))
                    }
                }
            }
            CopyOption::Delimiter(c) => out.delimiter = Some(byte(*c, "delimiter")?),
            CopyOption::Null(s) => out.null = Some(s.clone()),
            CopyOption::Header(h) => out.header = *h,
            CopyOption::Quote(c) => out.quote = byte(*c, "quote")?,
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => out.format = CopyFormat::Binary,
            CopyLegacyOption::Csv(csv) => {
                out.format = CopyFormat::Csv;
                for o in csv {
                    match o {
                        CopyLegacyCsvOption::Header => out.header = true,
                        CopyLegacyCsvOption::Quote(c) => out.quote = byte(*c, "quote")?,
                        other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => out.delimiter = Some(byte(*c, "delimiter")?),
            CopyLegacyOption::Null(s) => out.null = Some(s.clone()),
            CopyLegacyOption::Header => out.header = true,
            other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
        }
    }
    Ok(out)
}

fn spec(
    session: &SqlSession,
    database: String,
    table: String,
    schema: SchemaRef,
    options: Options,
) -> CopySpec {
    let csv = options.format == CopyFormat::Csv;
    CopySpec {
        database,
        table,
        schema,
        format: options.format,
        delimiter: options.delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
        null: options.null.unwrap_or_else(|| {
            if csv {
                String::new()
            } else {
                "\\N".to_string()
            }
        }),
        header: options.header,
        quote: options.quote,
        memory: Some(session.memory_pool()),
    }
}

/// Executes a `COPY` statement.
pub async fn copy(
    instance: &Instance,
    session: &mut SqlSession,
    statement: &Statement,
) -> Result<PgOutput> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = statement
    else {
        return Err(SqlError::Internal("not COPY".into()));
    };
    let options = parse_options(options, legacy_options)?;
    match (to, target) {
        (false, CopyTarget::Stdin) => {
            let CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                return Err(SqlError::unsupported("COPY (query) FROM"));
            };
            let (database, table) = instance.resolve(session, table_name)?;
            let full = instance
                .describe_table(&database, &table)
                .await?
                .schema
                .visible_arrow_schema();
            let schema = project(&full, columns, &table)?;
            Ok(PgOutput::CopyIn(spec(
                session, database, table, schema, options,
            )))
        }
        (true, CopyTarget::Stdout) => {
            let sql = match source {
                CopySource::Table {
                    table_name,
                    columns,
                } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
                CopySource::Table {
                    table_name,
                    columns,
                } => format!(
                    "SELECT {} FROM {table_name}",
                    columns
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                CopySource::Query(query) => query.to_string(),
            };
            instance.set_read_ts(session).await?;
            let plan = instance.plan_sql(session, &sql).await?;
            let df = session.ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let stream = df.execute_stream().await?;
            let name = match source {
                CopySource::Table { table_name, .. } => table_name.to_string(),
                CopySource::Query(_) => "query".to_string(),
            };
            Ok(PgOutput::CopyOut {
                spec: spec(
                    session,
                    super::session_cmds::current_schema(session),
                    name,
                    schema,
                    options,
                ),
                stream,
            })
        }
        (false, other) => Err(SqlError::unsupported(format!(
            "COPY FROM {other} (only STDIN)"
        ))),
        (true, other) => Err(SqlError::unsupported(format!(
            "COPY TO {other} (only STDOUT)"
        ))),
    }
}

fn project(
    full: &SchemaRef,
    columns: &[datafusion::sql::sqlparser::ast::Ident],
    table: &str,
) -> Result<SchemaRef> {
    if columns.is_empty() {
        return Ok(full.clone());
    }
    let mut fields = Vec::new();
    for c in columns {
        let name = normalize_ident(c);
        let field = full.field_with_name(&name).map_err(|_| SqlError::Query {
            code: quiver_common::status::StatusCode::ColumnNotFound,
            message: format!("column \"{name}\" of relation \"{table}\" does not exist"),
        })?;
        fields.push(field.clone());
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Inserts rows decoded from COPY data.
pub async fn copy_in(
    instance: &Instance,
    session: &mut SqlSession,
    spec: &CopySpec,
    rows: RecordBatch,
) -> Result<usize> {
    let outcome = super::dml::write_rows(
        instance,
        session,
        (&spec.database, &spec.table),
        rows,
        WriteMode::Insert,
    )
    .await?;
    Ok(outcome.rows.num_rows())
}
