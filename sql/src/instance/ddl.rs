//! DDL: `CREATE TABLE`, `DROP TABLE/SCHEMA`, `CREATE SCHEMA`, `ALTER TABLE`,
//! `CREATE EXTENSION vector`. A table is a Milvus collection: it needs a
//! primary key (`BIGINT` or `TEXT`/`VARCHAR`); a schema is a Milvus database.

use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef as SqlColumnDef, ColumnOption, CreateTable,
    CreateTableOptions, Expr, ObjectType, RenameTableNameKind, SchemaName, SqlOption, Statement,
    TableConstraint, Value,
};
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema, ROW_ID_COLUMN};

use quiver_cluster::api::{
    self, AddColumn, CreateDatabase, DropDatabase, DropTable, RenameTable, TableRef,
};
use quiver_cluster::EngineError;

use super::block_catalog::BlockName;
use super::index_ddl::{define_index, IndexBuild};
use super::names::normalize_ident;
use super::session::SqlSession;
use super::state::Instance;
use super::transaction;
use crate::error::{Result, SqlError};
use crate::handler::ddl::CatalogChange;
use crate::handler::pg::{CommandTag, PgOutput};

/// Maps a SQL type to a column type; `(type, auto_increment)`.
pub fn column_type(
    data_type: &datafusion::sql::sqlparser::ast::DataType,
) -> Result<(ColumnType, bool)> {
    let text = data_type.to_string().to_ascii_lowercase();
    let (base, args) = match text.find('(') {
        Some(i) => (
            text[..i].trim().to_string(),
            text[i + 1..].trim_end_matches(')').to_string(),
        ),
        None => (text.trim().to_string(), String::new()),
    };
    let arg = |what: &str| -> Result<u32> {
        args.trim()
            .parse::<u32>()
            .map_err(|_| SqlError::InvalidParameter(format!("invalid {what} in type {text}")))
    };
    Ok(match base.as_str() {
        "bool" | "boolean" => (ColumnType::Bool, false),
        "smallint" | "int2" => (ColumnType::Int16, false),
        "smallserial" | "serial2" => (ColumnType::Int16, true),
        "int" | "integer" | "int4" => (ColumnType::Int32, false),
        "serial" | "serial4" => (ColumnType::Int32, true),
        "bigint" | "int8" => (ColumnType::Int64, false),
        "bigserial" | "serial8" => (ColumnType::Int64, true),
        "real" | "float4" => (ColumnType::Float32, false),
        "double precision" | "double" | "float8" => (ColumnType::Float64, false),
        "float" if args.is_empty() => (ColumnType::Float64, false),
        "float" => (
            if arg("precision")? <= 24 {
                ColumnType::Float32
            } else {
                ColumnType::Float64
            },
            false,
        ),
        "text" | "string" => (ColumnType::Text { max_len: None }, false),
        "varchar" | "character varying" => (
            ColumnType::Text {
                max_len: if args.is_empty() {
                    None
                } else {
                    Some(arg("length")?)
                },
            },
            false,
        ),
        "jsonb" | "json" => (ColumnType::Json, false),
        "timestamptz" | "timestamp with time zone" => (ColumnType::TimestampTz, false),
        "vector" | "public.vector" if !args.is_empty() => {
            let dim = arg("dimension")?;
            if dim == 0 || dim as usize > quiver_common::limits::MAX_VECTOR_DIM {
                return Err(SqlError::InvalidParameter(format!(
                    "dimensions for type vector must be between 1 and {}",
                    quiver_common::limits::MAX_VECTOR_DIM
                )));
            }
            (ColumnType::Vector { dim }, false)
        }
        "vector" | "public.vector" => {
            return Err(SqlError::unsupported(
                "vector columns without a dimension (use vector(n))",
            ))
        }
        _ => return Err(SqlError::unsupported(format!("column type {text}"))),
    })
}

/// Converts one column definition; returns the column and whether it is declared PRIMARY KEY.
pub fn column_def(def: &SqlColumnDef) -> Result<(ColumnDef, bool)> {
    let (column_type, serial) = column_type(&def.data_type)?;
    let mut column = ColumnDef::new(normalize_ident(&def.name), column_type);
    if column.name == ROW_ID_COLUMN {
        return Err(SqlError::Query {
            code: quiver_common::status::StatusCode::ColumnAlreadyExists,
            message: format!("column name \"{ROW_ID_COLUMN}\" conflicts with a system column name"),
        });
    }
    column.auto_increment = serial;
    let mut primary = false;
    for option in &def.options {
        match &option.option {
            ColumnOption::Null => column.nullable = true,
            ColumnOption::NotNull => column.nullable = false,
            ColumnOption::Default(expr) => column.default_sql = Some(default_text(expr)),
            ColumnOption::PrimaryKey(_) => primary = true,
            ColumnOption::Generated { .. } | ColumnOption::Identity(_) => {
                column.auto_increment = true;
            }
            ColumnOption::Unique(_) => {
                return Err(SqlError::unsupported(
                    "UNIQUE constraints other than the primary key",
                ))
            }
            ColumnOption::ForeignKey(_) => {
                return Err(SqlError::unsupported("FOREIGN KEY constraints"))
            }
            ColumnOption::Check(_) => return Err(SqlError::unsupported("CHECK constraints")),
            ColumnOption::Comment(_) | ColumnOption::Collation(_) => {}
            other => return Err(SqlError::unsupported(format!("column option {other}"))),
        }
    }
    if column.auto_increment
        && column.column_type != ColumnType::Int64
        && column.column_type != ColumnType::Int32
        && column.column_type != ColumnType::Int16
    {
        return Err(SqlError::InvalidParameter(
            "identity column type must be smallint, integer, or bigint".into(),
        ));
    }
    Ok((column, primary))
}

fn default_text(expr: &Expr) -> String {
    expr.to_string()
}

/// `CREATE TABLE`.
pub async fn create_table(
    instance: &Instance,
    session: &mut SqlSession,
    create: &CreateTable,
) -> Result<PgOutput> {
    if create.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE ... AS SELECT"));
    }
    if create.temporary {
        return Err(SqlError::unsupported("temporary tables"));
    }
    let (database, name) = instance.resolve_new(session, &create.name)?;
    let mut columns = Vec::new();
    let mut primary: Vec<String> = Vec::new();
    for def in &create.columns {
        let (column, is_pk) = column_def(def)?;
        if is_pk {
            primary.push(column.name.clone());
        }
        columns.push(column);
    }
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                for c in &pk.columns {
                    match &c.column.expr {
                        Expr::Identifier(ident) => primary.push(normalize_ident(ident)),
                        other => {
                            return Err(SqlError::unsupported(format!(
                                "primary key on expression {other}"
                            )))
                        }
                    }
                }
            }
            other => return Err(SqlError::unsupported(format!("table constraint {other}"))),
        }
    }
    let primary_key = match primary.as_slice() {
        [pk_name] => {
            let position = columns
                .iter()
                .position(|c| &c.name == pk_name)
                .ok_or_else(|| SqlError::Query {
                    code: quiver_common::status::StatusCode::ColumnNotFound,
                    message: format!("column \"{pk_name}\" named in key does not exist"),
                })?;
            columns[position].nullable = false;
            position
        }
        // No primary key: the table gets a hidden, generated one.
        [] => {
            columns.push(ColumnDef::hidden_row_id());
            columns.len() - 1
        }
        _ => return Err(SqlError::unsupported("composite primary keys")),
    };
    let schema = TableSchema {
        columns,
        primary_key,
    };
    let shards = table_shards(&create.table_options)?;
    if let BlockName::Created(_) = session.block_tables.read().lookup(&database, &name) {
        // The coordinator knows it by its pending name only.
        return if create.if_not_exists {
            session.notice(format!("relation \"{name}\" already exists, skipping"));
            Ok(PgOutput::Command(CommandTag::new("CREATE TABLE")))
        } else {
            Err(SqlError::Engine(EngineError::TableAlreadyExists {
                database,
                table: name,
            }))
        };
    }
    let in_block = transaction::catalog_block(instance, session, "CREATE TABLE").await?;
    let created = instance
        .coordinator()
        .create_table(api::CreateTable {
            table: TableRef::new(database.clone(), name.clone()),
            schema,
            shards,
            if_not_exists: create.if_not_exists,
            in_block,
        })
        .await?;
    if created && in_block.is_some() {
        session.block_tables.write().created(&database, &name);
    }
    if !created {
        session.notice(format!("relation \"{name}\" already exists, skipping"));
    }
    Ok(PgOutput::Command(CommandTag::new("CREATE TABLE")))
}

/// The shard count of `CREATE TABLE ... WITH (shards = N)` (1 without
/// it). `shards` is the one storage parameter a Quiver table has; any other
/// is refused with PostgreSQL's wording for an unknown parameter.
fn table_shards(options: &CreateTableOptions) -> Result<u32> {
    let options = match options {
        CreateTableOptions::None => return Ok(1),
        CreateTableOptions::With(options) => options,
        other => return Err(SqlError::unsupported(format!("table options {other}"))),
    };
    let mut shards = 1;
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(SqlError::unsupported(format!("table option {option}")));
        };
        let name = normalize_ident(key);
        if name != "shards" {
            return Err(SqlError::InvalidParameter(format!(
                "unrecognized parameter \"{name}\""
            )));
        }
        let text = match value {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.clone(),
                Value::SingleQuotedString(s) => s.clone(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        shards = text.trim().parse::<u32>().map_err(|_| {
            SqlError::InvalidParameter(format!(
                "invalid value for integer option \"shards\": {value}"
            ))
        })?;
    }
    Ok(shards)
}

/// `CREATE SCHEMA`.
pub async fn create_schema(instance: &Instance, statement: &Statement) -> Result<PgOutput> {
    let Statement::CreateSchema {
        schema_name,
        if_not_exists,
        ..
    } = statement
    else {
        return Err(SqlError::Internal("not CREATE SCHEMA".into()));
    };
    let name = match schema_name {
        SchemaName::Simple(name) | SchemaName::NamedAuthorization(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(normalize_ident)
            .ok_or_else(|| SqlError::Syntax(format!("invalid schema name {name}")))?,
        SchemaName::UnnamedAuthorization(ident) => normalize_ident(ident),
    };
    instance
        .coordinator()
        .create_database(CreateDatabase {
            name,
            if_not_exists: *if_not_exists,
        })
        .await?;
    Ok(PgOutput::Command(CommandTag::new("CREATE SCHEMA")))
}

/// `DROP TABLE` / `DROP SCHEMA`.
pub async fn drop(
    instance: &Instance,
    session: &mut SqlSession,
    statement: &Statement,
) -> Result<PgOutput> {
    let Statement::Drop {
        object_type,
        if_exists,
        names,
        cascade,
        ..
    } = statement
    else {
        return Err(SqlError::Internal("not DROP".into()));
    };
    match object_type {
        ObjectType::Table => {
            for name in names {
                let (database, table) = instance.resolve_client_name(session, name)?;
                let stored = match session.block_tables.read().lookup(&database, &table) {
                    BlockName::Unchanged => table.clone(),
                    BlockName::Created(pending) => pending,
                    BlockName::Dropped if *if_exists => {
                        session.notice(format!("table \"{table}\" does not exist, skipping"));
                        continue;
                    }
                    BlockName::Dropped => {
                        return Err(SqlError::Engine(EngineError::TableNotFound {
                            database,
                            table,
                        }))
                    }
                };
                let in_block = transaction::catalog_block(instance, session, "DROP TABLE").await?;
                // A table the block created goes at once, with its writes.
                let created_id = if in_block.is_some() && stored != table {
                    Some(instance.describe_table(&database, &stored).await?.id)
                } else {
                    None
                };
                let dropped = instance
                    .coordinator()
                    .drop_table(DropTable {
                        table: TableRef::new(database.clone(), stored),
                        if_exists: *if_exists,
                        in_block,
                    })
                    .await?;
                if dropped && in_block.is_some() {
                    session.block_tables.write().dropped(&database, &table);
                    if let Some(id) = created_id {
                        transaction::forget_writes(session, id);
                    }
                }
                if !dropped {
                    session.notice(format!("table \"{table}\" does not exist, skipping"));
                }
            }
            Ok(PgOutput::Command(CommandTag::new("DROP TABLE")))
        }
        ObjectType::Schema => {
            for name in names {
                let schema = name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(normalize_ident)
                    .unwrap_or_default();
                instance
                    .coordinator()
                    .drop_database(DropDatabase {
                        name: schema,
                        if_exists: *if_exists,
                        cascade: *cascade,
                    })
                    .await?;
            }
            Ok(PgOutput::Command(CommandTag::new("DROP SCHEMA")))
        }
        ObjectType::Index => {
            super::index_ddl::drop_index(instance, session, names, *if_exists).await
        }
        other => Err(SqlError::unsupported(format!("DROP {other}"))),
    }
}

/// `ALTER TABLE ... ADD COLUMN` / `RENAME TO`.
pub async fn alter_table(
    instance: &Instance,
    session: &SqlSession,
    alter: &AlterTable,
) -> Result<PgOutput> {
    let (database, table) = instance.resolve(session, &alter.name)?;
    if alter.if_exists && instance.describe_table(&database, &table).await.is_err() {
        return Ok(PgOutput::Command(CommandTag::new("ALTER TABLE")));
    }
    for operation in &alter.operations {
        match operation {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def: def,
                ..
            } => {
                let (column, primary) = column_def(def)?;
                if primary {
                    return Err(SqlError::unsupported("adding a primary key column"));
                }
                instance
                    .coordinator()
                    .add_column(AddColumn {
                        table: TableRef::new(database.clone(), table.clone()),
                        column,
                        if_not_exists: *if_not_exists,
                    })
                    .await?;
            }
            AlterTableOperation::RenameTable { table_name } => {
                let new_name = match table_name {
                    RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => {
                        instance.resolve(session, n)?.1
                    }
                };
                instance
                    .coordinator()
                    .rename_table(RenameTable {
                        table: TableRef::new(database.clone(), table.clone()),
                        new_name,
                    })
                    .await?;
            }
            other => return Err(SqlError::unsupported(format!("ALTER TABLE {other}"))),
        }
    }
    Ok(PgOutput::Command(CommandTag::new("ALTER TABLE")))
}

/// A catalog change a front end sends as the coordinator's request (the
/// Milvus door's DDL): the same requests the statements above make, and an
/// index is defined and built as `CREATE INDEX` does it.
pub async fn change_catalog(instance: &Instance, change: CatalogChange) -> Result<bool> {
    let coordinator = instance.coordinator();
    Ok(match change {
        CatalogChange::CreateDatabase(request) => coordinator.create_database(request).await?,
        CatalogChange::DropDatabase(request) => coordinator.drop_database(request).await?,
        CatalogChange::CreateTable(request) => coordinator.create_table(request).await?,
        CatalogChange::DropTable(request) => coordinator.drop_table(request).await?,
        CatalogChange::RenameTable(request) => {
            coordinator.rename_table(request).await?;
            true
        }
        CatalogChange::AddColumn(request) => coordinator.add_column(request).await?,
        CatalogChange::CreateIndex(request) => {
            let build = IndexBuild::Now { notices: None };
            define_index(instance, request, build).await?.is_some()
        }
        CatalogChange::DropIndex(request) => coordinator.drop_index(request).await?,
    })
}
