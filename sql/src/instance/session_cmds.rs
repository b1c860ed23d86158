//! Session commands: `SET`, `SHOW`, `RESET`. Settings live in the session,
//! never in shared state, so one connection's `SET` never leaks into another.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::sqlparser::ast::{Expr, Ident, Reset, ResetStatement, Set, Value};
use quiver_common::status::StatusCode;
use quiver_common::time_zone::SessionTimeZone;
use quiver_exec::table::SearchSettings;

use super::identifiers::quote_ident;
use super::session::SqlSession;
use super::{functions, memory_setting};
use crate::error::{Result, SqlError};
use crate::handler::pg::{CommandTag, PgOutput};

/// `max_identifier_length` as `SHOW` reports it: the limit enforced
/// ([`quiver_common::limits::MAX_IDENTIFIER_LEN`]), not PostgreSQL's 63.
pub(super) const MAX_IDENTIFIER_LENGTH_SETTING: &str = "255";

/// The settings a new session starts with (and `RESET` returns to); a
/// session connected to database `x` searches `x` first, then `public`.
pub(super) fn default_settings(
    user: &str,
    database: Option<&str>,
    query_memory_limit: usize,
) -> BTreeMap<String, String> {
    let search_path = database.map(|db| format!("{}, public", quote_ident(db)));
    [
        ("server_version", "16.0"),
        ("server_version_num", "160000"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("intervalstyle", "postgres"),
        ("timezone", "UTC"),
        ("search_path", "\"$user\", public"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
        ("application_name", ""),
        ("statement_timeout", "0"),
        ("idle_session_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("transaction_isolation", "read committed"),
        ("default_transaction_isolation", "read committed"),
        ("transaction_read_only", "off"),
        ("max_identifier_length", MAX_IDENTIFIER_LENGTH_SETTING),
        ("is_superuser", "on"),
        ("extra_float_digits", "1"),
        ("bytea_output", "hex"),
        ("lc_messages", "C"),
        ("jit", "off"),
        ("hnsw.ef_search", "40"),
        ("ivfflat.probes", "1"),
        ("quiver.rerank", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([
        ("session_authorization".to_string(), user.to_string()),
        (
            memory_setting::NAME.to_string(),
            memory_setting::format_bytes(query_memory_limit),
        ),
    ])
    .chain(search_path.map(|path| ("search_path".to_string(), path)))
    .collect()
}

/// Applies the session's `search_path` at its start: its connected
/// database's, else the one configured (the default settings hold it, the
/// session config and `current_schema()` not yet).
pub(crate) fn apply_database_search_path(session: &mut SqlSession) -> Result<()> {
    let path = match session.database.as_deref() {
        Some(db) => format!("{}, public", quote_ident(db)),
        // The path as configured (`"$user", public` by default): `$user`
        // is the user's schema when one exists.
        None => session
            .settings
            .get("search_path")
            .cloned()
            .unwrap_or_else(|| "\"$user\", public".to_string()),
    };
    apply_setting(session, "search_path", path)?;
    Ok(())
}

/// Settings reported to the client with ParameterStatus when they change.
const REPORTED: [&str; 10] = [
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "intervalstyle",
    "standard_conforming_strings",
    "integer_datetimes",
    "server_version",
    "is_superuser",
    "session_authorization",
];

/// Postgres' capitalization of reported parameter names.
fn reported_name(name: &str) -> String {
    match name {
        "datestyle" => "DateStyle".into(),
        "timezone" => "TimeZone".into(),
        "intervalstyle" => "IntervalStyle".into(),
        other => other.to_string(),
    }
}

/// The schema unqualified names resolve in (first existing entry of `search_path`).
pub fn current_schema(session: &SqlSession) -> String {
    // Read in place: `SessionContext::state()` would clone the whole state.
    session
        .ctx
        .state_ref()
        .read()
        .config()
        .options()
        .catalog
        .default_schema
        .clone()
}

fn expr_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

fn parse_duration(name: &str, value: &str) -> Result<Option<Duration>> {
    let v = value.trim().to_ascii_lowercase();
    let (number, unit) = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| (&v[..i], v[i..].trim()))
        .unwrap_or((v.as_str(), "ms"));
    let n: f64 = number.parse().map_err(|_| {
        SqlError::InvalidParameter(format!(
            "invalid value for parameter \"{name}\": \"{value}\""
        ))
    })?;
    let ms = match unit {
        "" | "ms" => n,
        "s" => n * 1000.0,
        "min" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => {
            return Err(SqlError::InvalidParameter(format!(
                "invalid value for parameter \"{name}\": \"{value}\""
            )))
        }
    };
    Ok(if ms <= 0.0 {
        None
    } else {
        Some(Duration::from_micros((ms * 1000.0) as u64))
    })
}

fn check_int_setting(name: &str, value: &str, min: i64, max: i64) -> Result<()> {
    let n: i64 = value.trim().parse().map_err(|_| {
        SqlError::InvalidParameter(format!(
            "invalid value for parameter \"{name}\": \"{value}\""
        ))
    })?;
    if n < min || n > max {
        return Err(SqlError::InvalidParameter(format!(
            "{n} is outside the valid range for parameter \"{name}\" ({min} .. {max})"
        )));
    }
    Ok(())
}

/// Quiver's names for the pgvector search settings.
pub(crate) fn canonical_setting(name: &str) -> &str {
    match name {
        "quiver.ef_search" | "quiver.hnsw_ef_search" => "hnsw.ef_search",
        "quiver.probes" | "quiver.nprobe" | "quiver.ivf_nprobe" => "ivfflat.probes",
        other => other,
    }
}

/// Copies the search settings into the session config, where the planner reads them.
pub(crate) fn sync_search_settings(session: &SqlSession) {
    let get = |name: &str, default: usize| {
        session
            .settings
            .get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let defaults = SearchSettings::default();
    let knobs = SearchSettings {
        ef_search: get("hnsw.ef_search", defaults.ef_search),
        probes: get("ivfflat.probes", defaults.probes),
        rerank: get("quiver.rerank", defaults.rerank),
    };
    session
        .ctx
        .state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(knobs));
}

fn apply_setting(
    session: &mut SqlSession,
    name: &str,
    value: String,
) -> Result<Option<(String, String)>> {
    let name = canonical_setting(name);
    match name {
        "statement_timeout" => session.statement_timeout = parse_duration(name, &value)?,
        "idle_session_timeout" => session.idle_session_timeout = parse_duration(name, &value)?,
        "idle_in_transaction_session_timeout" => {
            session.idle_in_transaction_session_timeout = parse_duration(name, &value)?;
        }
        "hnsw.ef_search" => check_int_setting(name, &value, 1, 1000)?,
        "ivfflat.probes" => check_int_setting(name, &value, 1, 65536)?,
        "quiver.rerank" => check_int_setting(name, &value, 1, 100)?,
        super::memory_setting::NAME => super::memory_setting::apply(session, &value)?,
        "timezone" => {
            let zone = SessionTimeZone::parse(&value).ok_or_else(|| {
                SqlError::InvalidParameter(format!(
                    "invalid value for parameter \"TimeZone\": \"{}\"",
                    value.trim_matches('\'')
                ))
            })?;
            // DataFusion reads `timestamptz` text without an offset, and
            // computes `now()`, in the session's zone.
            set_options(session, |options| {
                options.execution.time_zone = Some(zone.arrow_name());
            });
        }
        "search_path" => {
            let catalog = session.ctx.catalog(quiver_planner::session::CATALOG_NAME);
            let existing: Vec<String> = super::names::search_path_entries(&value, &session.user)
                .into_iter()
                .filter(|s| catalog.as_ref().and_then(|c| c.schema(s)).is_some())
                .collect();
            for udf in functions::current_schema_functions(&existing) {
                session.ctx.register_udf(udf);
            }
            // Unqualified new relations need somewhere to go: `public`
            // when no schema on the path exists.
            let schema = existing
                .first()
                .cloned()
                .unwrap_or_else(|| quiver_cluster::DEFAULT_DATABASE.to_string());
            set_options(session, |options| options.catalog.default_schema = schema);
        }
        _ => {}
    }
    let value = if name == "timezone" {
        value.trim_matches('\'').to_string()
    } else {
        value
    };
    session.settings.insert(name.to_string(), value.clone());
    sync_search_settings(session);
    session
        .ctx
        .register_udf(functions::current_setting_function(&session.settings));
    Ok(REPORTED
        .contains(&name)
        .then(|| (reported_name(name), value)))
}

/// Changes the session's DataFusion options in place.
fn set_options(session: &SqlSession, change: impl FnOnce(&mut datafusion::config::ConfigOptions)) {
    change(session.ctx.state_ref().write().config_mut().options_mut());
}

/// Applies the settings a session starts with (the server's configured
/// defaults), each checked as `SET` checks it.
pub(crate) fn apply_initial_settings(
    session: &mut SqlSession,
    settings: &[(String, String)],
) -> Result<()> {
    for (name, value) in settings {
        apply_setting(session, &name.to_ascii_lowercase(), value.clone())?;
    }
    Ok(())
}

/// `SET name = value`.
pub async fn set(session: &mut SqlSession, set: &Set) -> Result<PgOutput> {
    let (name, value) = match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = variable.to_string().to_ascii_lowercase();
            let value = values.iter().map(expr_text).collect::<Vec<_>>().join(", ");
            (name, value)
        }
        Set::SetTimeZone { value, .. } => ("timezone".to_string(), expr_text(value)),
        Set::SetNames { charset_name, .. } => {
            ("client_encoding".to_string(), charset_name.to_string())
        }
        other => return Err(SqlError::unsupported(format!("SET form \"{other}\""))),
    };
    if name.starts_with("datafusion.runtime.") {
        // DataFusion would swap the session's memory pool for one outside
        // the server's budget.
        return Err(SqlError::InvalidParameter(format!(
            "parameter \"{name}\" cannot be changed; the statement memory limit is set with {}",
            super::memory_setting::NAME
        )));
    }
    if name.starts_with("datafusion.") {
        session.ctx.sql(&set.to_string()).await?.collect().await?;
        session.settings.insert(name, value);
        return Ok(PgOutput::Command(CommandTag::new("SET")));
    }
    let status = apply_setting(session, &name, value)?;
    let mut tag = CommandTag::new("SET");
    tag.parameter_status.extend(status);
    Ok(PgOutput::Command(tag))
}

/// Schema of `SHOW name`.
pub fn show_schema(variable: &[Ident]) -> SchemaRef {
    let name = variable_name(variable);
    if name == "all" {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, true),
        ]))
    } else {
        Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]))
    }
}

fn variable_name(variable: &[Ident]) -> String {
    variable
        .iter()
        .map(|i| i.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
        .replace("time.zone", "timezone")
        .replace("transaction.isolation.level", "transaction_isolation")
}

/// `SHOW name` / `SHOW ALL`.
pub fn show(session: &SqlSession, variable: &[Ident]) -> Result<PgOutput> {
    let name = variable_name(variable);
    let schema = show_schema(variable);
    let batch = if name == "all" {
        let names: Vec<&str> = session.settings.keys().map(String::as_str).collect();
        let values: Vec<&str> = session.settings.values().map(String::as_str).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(values)),
            ],
        )?
    } else {
        let value = session
            .settings
            .get(canonical_setting(&name))
            .ok_or_else(|| SqlError::Query {
                code: StatusCode::InvalidParameter,
                message: format!("unrecognized configuration parameter \"{name}\""),
            })?;
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value.as_str()]))],
        )?
    };
    let stream = MemoryStream::try_new(vec![batch], schema.clone(), None)?;
    Ok(PgOutput::Rows {
        schema,
        stream: Box::pin(stream),
        command: "SHOW".into(),
    })
}

/// Sets (or resets, for `None`) `hnsw.ef_search` and `ivfflat.probes` as
/// `SET` and `RESET` do, from typed values.
pub(crate) fn set_search_knobs(
    session: &mut SqlSession,
    knobs: crate::handler::SearchKnobs,
) -> Result<()> {
    let defaults = default_settings(
        &session.user,
        session.database.as_deref(),
        session.memory.max_limit(),
    );
    for (name, value) in [
        ("hnsw.ef_search", knobs.ef_search),
        ("ivfflat.probes", knobs.probes),
    ] {
        match value
            .map(|v| v.to_string())
            .or_else(|| defaults.get(name).cloned())
        {
            Some(value) => {
                apply_setting(session, name, value)?;
            }
            None => {
                session.settings.remove(name);
                sync_search_settings(session);
            }
        }
    }
    Ok(())
}

/// `RESET name` / `RESET ALL`.
pub fn reset(session: &mut SqlSession, reset: &ResetStatement) -> Result<PgOutput> {
    let defaults = default_settings(
        &session.user,
        session.database.as_deref(),
        session.memory.max_limit(),
    );
    let names: Vec<String> = match &reset.reset {
        Reset::ALL => defaults.keys().cloned().collect(),
        Reset::ConfigurationParameter(name) => {
            vec![canonical_setting(&name.to_string().to_ascii_lowercase()).to_string()]
        }
    };
    let mut tag = CommandTag::new("RESET");
    for name in names {
        match defaults.get(&name) {
            Some(value) => {
                tag.parameter_status
                    .extend(apply_setting(session, &name, value.clone())?);
            }
            None => {
                session.settings.remove(&name);
            }
        }
    }
    Ok(PgOutput::Command(tag))
}
