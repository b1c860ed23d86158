//! `CREATE INDEX` and `DROP INDEX` for vector indexes.
//!
//! pgvector's forms (`USING hnsw (col vector_l2_ops) WITH (m = 16,
//! ef_construction = 64)`, `USING ivfflat (...) WITH (lists = 100)`) and
//! Quiver's own index types (`USING ivf_sq8`, `USING flat`). A plain
//! `CREATE INDEX` returns once the existing rows are indexed and reports
//! progress as NOTICE messages; `CONCURRENTLY` returns at once and the
//! background maintenance builds the index.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr, IndexType, ObjectName, Value};
use quiver_cluster::api::coordinator::is_pending_name;
use quiver_cluster::api::{self, DropIndex, IndexDefinition, TableRef};
use quiver_common::status::StatusCode;

use super::names::normalize_ident;
use super::session::SqlSession;
use super::state::Instance;
use crate::error::{Result, SqlError};
use crate::handler::pg::{CommandTag, PgOutput};
use crate::handler::NoticeSink;

/// The metric of a pgvector operator class.
fn metric_of_opclass(opclass: &str) -> Result<&'static str> {
    Ok(match opclass {
        "vector_l2_ops" => "l2",
        "vector_ip_ops" => "ip",
        "vector_cosine_ops" => "cosine",
        "vector_l1_ops" => "l1",
        other => {
            return Err(SqlError::Query {
                code: quiver_common::status::StatusCode::InvalidParameter,
                message: format!(
                    "operator class \"{other}\" does not exist for access method; use \
                     vector_l2_ops, vector_ip_ops, vector_cosine_ops or vector_l1_ops"
                ),
            })
        }
    })
}

fn invalid(message: impl Into<String>) -> SqlError {
    SqlError::InvalidParameter(message.into())
}

/// The index type named by `USING` (pgvector's `hnsw`/`ivfflat` and Quiver's own).
fn index_kind(using: &Option<IndexType>) -> Result<String> {
    let name = match using {
        None => {
            return Err(SqlError::unsupported(
                "CREATE INDEX without USING (B-tree and other scalar indexes); vector indexes \
             need USING hnsw, ivfflat, ivf_sq8 or flat",
            ))
        }
        Some(IndexType::Custom(ident)) => ident.to_string(),
        Some(other) => other.to_string(),
    };
    let name = name.trim_matches('"').to_ascii_lowercase();
    match quiver_index::IndexKind::parse(&name) {
        Some(kind) => Ok(kind.name().to_string()),
        None => Err(SqlError::unsupported(format!(
            "index access method \"{name}\" (vector indexes: hnsw, ivfflat, ivf_sq8, flat)"
        ))),
    }
}

/// `WITH (name = value, ...)`: non-negative integers only.
fn with_params(with: &[Expr]) -> Result<BTreeMap<String, u64>> {
    let mut params = BTreeMap::new();
    for expr in with {
        let Expr::BinaryOp { left, right, .. } = expr else {
            return Err(invalid(format!("unrecognized index parameter \"{expr}\"")));
        };
        let name = left.to_string().trim_matches('"').to_ascii_lowercase();
        if !matches!(name.as_str(), "m" | "ef_construction" | "lists" | "nlist") {
            return Err(invalid(format!("unrecognized parameter \"{name}\"")));
        }
        let text = match right.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.clone(),
                Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        let value: u64 = text.trim().parse().map_err(|_| {
            invalid(format!(
                "invalid value for integer option \"{name}\": {text}"
            ))
        })?;
        params.insert(name, value);
    }
    Ok(params)
}

/// pgvector's parameter ranges and wording.
fn check_ranges(kind: &str, params: &BTreeMap<String, u64>) -> Result<()> {
    let range = |name: &str, lo: u64, hi: u64| -> Result<()> {
        match params.get(name) {
            Some(v) if *v < lo || *v > hi => Err(invalid(format!(
                "value {v} out of bounds for option \"{name}\"\nDETAIL:  Valid values are between \"{lo}\" and \"{hi}\"."
            ))),
            _ => Ok(()),
        }
    };
    match kind {
        "hnsw" => {
            if params.contains_key("lists") || params.contains_key("nlist") {
                return Err(invalid("unrecognized parameter \"lists\" for hnsw"));
            }
            range("m", 2, 100)?;
            range("ef_construction", 4, 1000)?;
            let m = params.get("m").copied().unwrap_or(16);
            let ef = params.get("ef_construction").copied().unwrap_or(64);
            if ef < 2 * m {
                return Err(invalid(
                    "ef_construction must be greater than or equal to 2 * m",
                ));
            }
        }
        "ivfflat" | "ivf_sq8" => {
            if params.contains_key("m") || params.contains_key("ef_construction") {
                return Err(invalid(format!(
                    "unrecognized parameter for {kind}; use lists"
                )));
            }
            range("lists", 1, 32768)?;
            range("nlist", 1, 32768)?;
        }
        _ => {
            if !params.is_empty() {
                return Err(invalid(format!("index type {kind} takes no parameters")));
            }
        }
    }
    Ok(())
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize_ident)
        .unwrap_or_default()
}

/// `CREATE INDEX`.
pub async fn create_index(
    instance: &Instance,
    session: &SqlSession,
    create: &CreateIndex,
) -> Result<PgOutput> {
    if create.unique {
        return Err(SqlError::unsupported("CREATE UNIQUE INDEX"));
    }
    if create.predicate.is_some() {
        return Err(SqlError::unsupported(
            "partial indexes (CREATE INDEX ... WHERE)",
        ));
    }
    if !create.include.is_empty() {
        return Err(SqlError::unsupported("CREATE INDEX ... INCLUDE"));
    }
    let kind = index_kind(&create.using)?;
    let [column] = create.columns.as_slice() else {
        return Err(SqlError::unsupported(
            "vector indexes on more than one column",
        ));
    };
    let Expr::Identifier(ident) = &column.column.expr else {
        return Err(SqlError::unsupported(format!(
            "indexes on expressions (\"{}\")",
            column.column.expr
        )));
    };
    let column_name = normalize_ident(ident);
    let metric = match &column.operator_class {
        Some(opclass) => metric_of_opclass(&object_name(opclass))?,
        None => "l2",
    };
    let params = with_params(&create.with)?;
    let (database, table) = instance.resolve(session, &create.table_name)?;
    let in_block = session.transaction.is_some();
    if in_block && create.concurrently {
        return Err(SqlError::Query {
            code: StatusCode::ActiveSqlTransaction,
            message: "CREATE INDEX CONCURRENTLY cannot run inside a transaction block".into(),
        });
    }
    if in_block && !is_pending_name(&table) {
        // Transactional only on a table the block created (which goes
        // with the block when it aborts).
        return Err(SqlError::Query {
            code: StatusCode::ActiveSqlTransaction,
            message: "CREATE INDEX cannot run inside a transaction block on a table the block did not create".into(),
        });
    }
    let request = api::CreateIndex {
        table: TableRef::new(database, table),
        definition: IndexDefinition {
            name: create.name.as_ref().map(object_name),
            column: column_name,
            kind,
            metric: metric.to_string(),
            params,
        },
        if_not_exists: create.if_not_exists,
    };
    let build = if create.concurrently {
        IndexBuild::InBackground
    } else {
        IndexBuild::Now {
            notices: session.notice_sink(),
        }
    };
    if in_block {
        session.block_tables.write().changed();
    }
    if define_index(instance, request, build).await?.is_none() {
        session.notice(format!(
            "relation \"{}\" already exists, skipping",
            create.name.as_ref().map(object_name).unwrap_or_default()
        ));
    }
    Ok(PgOutput::Command(CommandTag::new("CREATE INDEX")))
}

/// When [`define_index`] builds the new index over the table's sealed
/// segments.
pub enum IndexBuild {
    /// Before it returns, sending progress to `notices` (`CREATE INDEX`).
    Now { notices: Option<NoticeSink> },
    /// In the background maintenance pass (`CREATE INDEX CONCURRENTLY`).
    InBackground,
}

/// Defines a vector index — its parameters held to pgvector's ranges, the
/// ones left out given their defaults — and builds it. The index's name,
/// `None` when it existed and the request allowed that.
pub async fn define_index(
    instance: &Instance,
    mut request: api::CreateIndex,
    build: IndexBuild,
) -> Result<Option<String>> {
    let definition = &mut request.definition;
    check_ranges(&definition.kind, &definition.params)?;
    let params = &mut definition.params;
    if definition.kind == "hnsw" {
        params.entry("m".into()).or_insert(16);
        params.entry("ef_construction".into()).or_insert(64);
    }
    if definition.kind == "ivfflat" || definition.kind == "ivf_sq8" {
        let lists = params.remove("nlist").or_else(|| params.remove("lists"));
        params.insert("lists".into(), lists.unwrap_or(100));
    }
    let table = request.table.clone();
    let Some(name) = instance.coordinator().create_index(request).await? else {
        return Ok(None);
    };
    // The coordinator has the data nodes build it: in the background, or
    // step by step here with the progress reported between steps.
    let coordinator = instance.coordinator();
    match build {
        IndexBuild::InBackground => coordinator.request_maintenance().await?,
        IndexBuild::Now { notices } => {
            let progress = |done: usize, total: usize| {
                if let Some(sink) = &notices {
                    let _ = sink.send(format!(
                        "index \"{name}\": {done} of {total} segments indexed"
                    ));
                }
            };
            // `total`: what was missing when the build started (more if
            // segments were sealed meanwhile); the segments indexed are
            // those no longer missing, whoever built them (the background
            // pass may build some between two steps).
            let (mut done, mut total) = (0, 0);
            loop {
                let step = coordinator.build_index_step(table.clone()).await?;
                if step.built == 0 {
                    break;
                }
                done += step.built;
                total = total.max(done + step.missing);
                progress(total - step.missing, total);
                if step.missing == 0 {
                    break;
                }
            }
            if done == 0 {
                // Nothing was left to build: the table has no sealed segment,
                // or the background pass indexed them all between the
                // definition and this build. Either way every segment is.
                let layout = coordinator.layout(table).await?;
                let sealed = layout.shards.iter().map(|s| s.sealed_segments.len()).sum();
                progress(sealed, sealed);
            }
        }
    }
    Ok(Some(name))
}

/// `DROP INDEX [IF EXISTS] name [, ...]`.
pub async fn drop_index(
    instance: &Instance,
    session: &SqlSession,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<PgOutput> {
    for name in names {
        let database = match name.0.len() {
            1 => super::session_cmds::current_schema(session),
            _ => name.0[name.0.len() - 2]
                .as_ident()
                .map(normalize_ident)
                .unwrap_or_default(),
        };
        let index = object_name(name);
        let dropped = instance
            .coordinator()
            .drop_index(DropIndex {
                database,
                name: index.clone(),
                if_exists,
            })
            .await?;
        if !dropped {
            session.notice(format!("index \"{index}\" does not exist, skipping"));
        }
    }
    Ok(PgOutput::Command(CommandTag::new("DROP INDEX")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgvector_ranges_and_wording() {
        let p = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        assert!(check_ranges("hnsw", &p(&[("m", 16), ("ef_construction", 64)])).is_ok());
        let err = check_ranges("hnsw", &p(&[("m", 1)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("value 1 out of bounds for option \"m\""),
            "{err}"
        );
        let err = check_ranges("hnsw", &p(&[("ef_construction", 2000)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("between \"4\" and \"1000\""), "{err}");
        let err = check_ranges("hnsw", &p(&[("m", 48), ("ef_construction", 64)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 * m"), "{err}");
        let err = check_ranges("ivfflat", &p(&[("lists", 0)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"lists\""), "{err}");
        assert!(metric_of_opclass("vector_cosine_ops").is_ok());
        assert!(metric_of_opclass("text_ops").is_err());
    }
}
