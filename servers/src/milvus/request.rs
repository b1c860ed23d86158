//! What a request says beyond its fields: the database it addresses (its
//! `db_name` or the `dbname` header) as a schema, and its key-value
//! parameters.

use milvus::proto::common::KeyValuePair;
use quiver_sql::handler::DEFAULT_DATABASE;
use tonic::Request;

/// Milvus' database name for a schema, and back.
pub(super) fn schema_of(db_name: &str) -> String {
    match db_name {
        "" | "default" => DEFAULT_DATABASE.to_string(),
        other => other.to_string(),
    }
}

pub(super) fn database_name(schema: &str) -> String {
    if schema == DEFAULT_DATABASE {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_public_and_back() {
        assert_eq!(schema_of(""), "public");
        assert_eq!(schema_of("default"), "public");
        assert_eq!(schema_of("db1"), "db1");
        assert_eq!(database_name("public"), "default");
        assert_eq!(database_name("db1"), "db1");
    }

    #[test]
    fn the_request_names_its_database_or_the_header_does() {
        let named = Request::new(());
        assert_eq!(request_database(&named, "db1"), "db1");
        assert_eq!(request_database(&named, ""), "public");
        let mut headed = Request::new(());
        headed
            .metadata_mut()
            .insert("dbname", "db2".parse().unwrap());
        assert_eq!(request_database(&headed, ""), "db2");
        // The request's own db_name wins over the header.
        assert_eq!(request_database(&headed, "db1"), "db1");
        assert_eq!(request_database(&headed, "default"), "public");
    }

    #[test]
    fn parameters_are_found_by_key() {
        let kv = |key: &str, value: &str| KeyValuePair {
            key: key.into(),
            value: value.into(),
        };
        let params = [kv("topk", "5"), kv("metric_type", "L2"), kv("topk", "9")];
        assert_eq!(param(&params, "topk"), Some("5"));
        assert_eq!(param(&params, "metric_type"), Some("L2"));
        assert_eq!(param(&params, "offset"), None);
    }
}
