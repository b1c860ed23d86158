//! What a request says beyond its fields: the database it addresses (its
//! `db_name` or the `dbname` header) as a schema, and its key-value
//! parameters.

use milvus::proto::common::KeyValuePair;
use tonic::Request;

/// Milvus' database name for a schema, and back.
pub(super) fn schema_of(db_name: &str) -> String {
    match db_name {
        "" | "default" => quiver_cluster::DEFAULT_DATABASE.to_string(),
        other => other.to_string(),
    }
}

pub(super) fn database_name(schema: &str) -> String {
    if schema == quiver_cluster::DEFAULT_DATABASE {
        "default".to_string()
    } else {
        schema.to_string()
    }
}

/// The database a request addresses: its `db_name`, else the `dbname`
/// header pymilvus sends after `using_database`.
pub(super) fn request_database<T>(request: &Request<T>, db_name: &str) -> String {
    if !db_name.is_empty() {
        return schema_of(db_name);
    }
    let header = request
        .metadata()
        .get("dbname")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    schema_of(header)
}

pub(super) fn param<'a>(params: &'a [KeyValuePair], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}
