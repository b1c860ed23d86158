//! `CREATE DATABASE` and `DROP DATABASE`: a database is a Milvus database,
//! which the SQL door sees as a schema (`CREATE SCHEMA` makes the same
//! object). The statements answer as PostgreSQL does: `42P04` for a
//! database that exists, `3D000` for one that does not, `55006` for the
//! database the session is connected to or other sessions still are after
//! 5 s (PostgreSQL's wait); dropping a database drops what is
//! in it.

use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType, Statement};
use quiver_cluster::api::{CreateDatabase, DropDatabase};
use quiver_cluster::{EngineError, DEFAULT_DATABASE};
use quiver_common::status::StatusCode;

use super::names::database_schema;
use super::names::normalize_ident;
use super::session::SqlSession;
use super::state::Instance;
use crate::error::{Result, SqlError};
use crate::handler::pg::{CommandTag, PgOutput};

/// The database a name means: the default database for each of its names.
fn database_name(name: &ObjectName) -> Result<String> {
    if name.0.len() != 1 {
        return Err(SqlError::Syntax(format!(
            "improper qualified name (too many dotted names): {name}"
        )));
    }
    let name = name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(normalize_ident)
        .ok_or_else(|| SqlError::Syntax(format!("invalid database name {name}")))?;
    Ok(database_schema(&name).to_string())
}

/// `CREATE DATABASE name` (no options: PostgreSQL's `OWNER`, `TEMPLATE`,
/// `ENCODING`... are refused as unsupported rather than ignored).
pub async fn create_database(
    instance: &Instance,
    session: &SqlSession,
    statement: &Statement,
) -> Result<PgOutput> {
    let Statement::CreateDatabase {
        db_name,
        if_not_exists,
        ..
    } = statement
    else {
        return Err(SqlError::Internal("not CREATE DATABASE".into()));
    };
    let plain = format!(
        "CREATE DATABASE {}{db_name}",
        if *if_not_exists { "IF NOT EXISTS " } else { "" }
    );
    if statement.to_string() != plain {
        return Err(SqlError::unsupported("CREATE DATABASE with options"));
    }
    let name = database_name(db_name)?;
    let created = instance
        .coordinator()
        .create_database(CreateDatabase {
            name: name.clone(),
            if_not_exists: *if_not_exists,
        })
        .await;
    match created {
        Ok(true) => {}
        Ok(false) => session.notice(format!("database \"{name}\" already exists, skipping")),
        Err(EngineError::DatabaseAlreadyExists(_)) => {
            return Err(SqlError::Query {
                code: StatusCode::DuplicateDatabase,
                message: format!("database \"{name}\" already exists"),
            })
        }
        Err(e) => return Err(e.into()),
    }
    Ok(PgOutput::Command(CommandTag::new("CREATE DATABASE")))
}

/// `DROP DATABASE [IF EXISTS] name`: the database and everything in it.
pub async fn drop_database(
    instance: &Instance,
    session: &SqlSession,
    statement: &Statement,
) -> Result<PgOutput> {
    let Statement::Drop {
        object_type: ObjectType::Database,
        if_exists,
        names,
        ..
    } = statement
    else {
        return Err(SqlError::Internal("not DROP DATABASE".into()));
    };
    for name in names {
        let name = database_name(name)?;
        let current = session.database.as_deref().unwrap_or(DEFAULT_DATABASE);
        if name == current {
            return Err(SqlError::Query {
                code: StatusCode::ObjectInUse,
                message: "cannot drop the currently open database".to_string(),
            });
        }
        // As PostgreSQL does, give other sessions up to 5 s to leave.
        let mut others = instance.database_uses.sessions(&name);
        for _ in 0..50 {
            if others == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            others = instance.database_uses.sessions(&name);
        }
        if others > 0 {
            return Err(SqlError::Query {
                code: StatusCode::ObjectInUse,
                message: format!("database \"{name}\" is being accessed by other users"),
            });
        }
        let dropped = instance
            .coordinator()
            .drop_database(DropDatabase {
                name: name.clone(),
                if_exists: *if_exists,
                cascade: true,
            })
            .await;
        match dropped {
            Ok(true) => {}
            Ok(false) => session.notice(format!("database \"{name}\" does not exist, skipping")),
            Err(EngineError::DatabaseNotFound(_)) => {
                return Err(SqlError::Query {
                    code: StatusCode::UndefinedDatabase,
                    message: format!("database \"{name}\" does not exist"),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(PgOutput::Command(CommandTag::new("DROP DATABASE")))
}
