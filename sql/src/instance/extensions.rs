//! `CREATE EXTENSION` and `DROP EXTENSION`, and `pg_catalog.pg_extension`
//! listing what they installed. Quiver's one extension is `vector`: its
//! type, operators and functions are built in (the Milvus door uses them
//! without it), and the extension is a catalog fact of the connected
//! database, recorded by the coordinator, as PostgreSQL records it: a
//! second `CREATE EXTENSION vector` is `42710`, `IF NOT EXISTS` a notice;
//! `DROP EXTENSION vector` is refused (`2BP01`) while tables use `vector`
//! columns, `CASCADE` (dropping those columns) is not supported, and a
//! missing one is `42704` (`IF EXISTS`: a notice). `psql`'s `\dx` and tools
//! that look for `vector` in `pg_extension` see it once created.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::sql::sqlparser::ast::{CreateExtension, DropExtension, ReferentialAction};
use quiver_cluster::api::{Coordinator, ExtensionOutcome, ExtensionRef};
use quiver_common::status::StatusCode;

use super::names::normalize_ident;
use super::pg_catalog_rows::{namespace_names, scan_all, CatalogRows};
use super::pg_indexes::rows_of;
use super::session::SqlSession;
use super::state::Instance;
use crate::error::{Result, SqlError};
use crate::handler::pg::{CommandTag, PgOutput};

/// The pgvector release whose SQL interface Quiver's `vector` follows, as
/// `pg_extension.extversion` reports it.
pub const VECTOR_EXTENSION_VERSION: &str = "0.8.6";

/// `pg_extension.oid` of `vector` (above the OIDs sessions hand out).
const VECTOR_EXTENSION_OID: i32 = 0x3FFF_FE01;

/// The extension a statement names, when Quiver has it.
fn known_extension(name: String) -> Result<String> {
    if name == "vector" {
        Ok(name)
    } else {
        Err(SqlError::unsupported(format!("extension \"{name}\"")))
    }
}

/// The database a session's extensions belong to.
fn session_database(session: &SqlSession) -> String {
    session
        .database
        .clone()
        .unwrap_or_else(|| quiver_cluster::DEFAULT_DATABASE.to_string())
}

/// `CREATE EXTENSION [IF NOT EXISTS] vector [SCHEMA public] [VERSION '0.8.6']`.
pub async fn create_extension(
    instance: &Instance,
    session: &SqlSession,
    create: &CreateExtension,
) -> Result<PgOutput> {
    let name = known_extension(normalize_ident(&create.name))?;
    if let Some(version) = &create.version {
        if version.value != VECTOR_EXTENSION_VERSION {
            return Err(SqlError::Query {
                code: StatusCode::InvalidParameter,
                message: format!(
                    "extension \"{name}\" has no installation script nor update path for version \"{}\"",
                    version.value
                ),
            });
        }
    }
    if let Some(schema) = &create.schema {
        let schema = normalize_ident(schema);
        if schema != "public" && Some(&schema) != session.database.as_ref() {
            return Err(SqlError::unsupported(format!(
                "CREATE EXTENSION {name} SCHEMA {schema} (the extension lives in the connected database's schema)"
            )));
        }
    }
    let outcome = instance
        .coordinator()
        .create_extension(ExtensionRef {
            database: session_database(session),
            name: name.clone(),
        })
        .await?;
    match outcome {
        ExtensionOutcome::AlreadyInstalled if create.if_not_exists => {
            session.notice(format!("extension \"{name}\" already exists, skipping"));
        }
        ExtensionOutcome::AlreadyInstalled => {
            return Err(SqlError::Query {
                code: StatusCode::DuplicateObject,
                message: format!("extension \"{name}\" already exists"),
            })
        }
        _ => {}
    }
    Ok(PgOutput::Command(CommandTag::new("CREATE EXTENSION")))
}

/// `DROP EXTENSION [IF EXISTS] vector [RESTRICT]`.
pub async fn drop_extension(
    instance: &Instance,
    session: &SqlSession,
    drop: &DropExtension,
) -> Result<PgOutput> {
    if matches!(drop.cascade_or_restrict, Some(ReferentialAction::Cascade)) {
        return Err(SqlError::unsupported(
            "DROP EXTENSION ... CASCADE (dropping the columns of its types)",
        ));
    }
    // Only `vector` can be installed: any other name is not.
    let names: Vec<String> = drop.names.iter().map(normalize_ident).collect();
    for name in names {
        let outcome = if name == "vector" {
            instance
                .coordinator()
                .drop_extension(ExtensionRef {
                    database: session_database(session),
                    name: name.clone(),
                })
                .await?
        } else {
            ExtensionOutcome::NotInstalled
        };
        match outcome {
            ExtensionOutcome::NotInstalled if drop.if_exists => {
                session.notice(format!("extension \"{name}\" does not exist, skipping"));
            }
            ExtensionOutcome::NotInstalled => {
                return Err(SqlError::Query {
                    code: StatusCode::UndefinedObject,
                    message: format!("extension \"{name}\" does not exist"),
                })
            }
            ExtensionOutcome::InUse { .. } => {
                return Err(SqlError::Query {
                    code: StatusCode::DependentObjectsStillExist,
                    message: format!(
                        "cannot drop extension {name} because other objects depend on it"
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(PgOutput::Command(CommandTag::new("DROP EXTENSION")))
}

/// `pg_extension` with the extensions installed in the session's database.
pub(super) struct PgExtension {
    pub inner: Arc<dyn TableProvider>,
    pub namespaces: Arc<dyn TableProvider>,
    pub coordinator: Arc<dyn Coordinator>,
    /// The session's database.
    pub database: String,
}

#[async_trait]
impl CatalogRows for PgExtension {
    const NAME: &'static str = "PgExtension";

    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    async fn rows(&self, state: &dyn Session) -> DfResult<Vec<RecordBatch>> {
        let mut batches: Vec<RecordBatch> = scan_all(&self.inner, state).await?;
        let catalog = self
            .coordinator
            .catalog()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let installed: Vec<ExtensionRef> = catalog
            .extensions
            .into_iter()
            .filter(|e| e.database == self.database && e.name == "vector")
            .collect();
        // The extension's objects live in the database's schema.
        let schema_name = if self.database == quiver_cluster::DEFAULT_DATABASE {
            "public"
        } else {
            self.database.as_str()
        };
        let namespace = namespace_names(&self.namespaces, state)
            .await?
            .into_iter()
            .find_map(|(oid, name)| (name == schema_name).then_some(oid as i32))
            .unwrap_or(2200);
        let schema = self.inner.schema();
        batches.push(rows_of(
            &schema,
            &installed,
            |column, extension| match column {
                "oid" => Some(ScalarValue::Int32(Some(VECTOR_EXTENSION_OID))),
                "extname" => Some(ScalarValue::Utf8(Some(extension.name.clone()))),
                "extowner" => Some(ScalarValue::Int32(Some(10))),
                "extnamespace" => Some(ScalarValue::Int32(Some(namespace))),
                "extrelocatable" => Some(ScalarValue::Boolean(Some(true))),
                "extversion" => Some(ScalarValue::Utf8(Some(VECTOR_EXTENSION_VERSION.into()))),
                _ => None,
            },
        )?);
        Ok(batches)
    }
}
