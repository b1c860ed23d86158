//! Milvus index names as SQL index names. Milvus names an index per
//! collection, Quiver per schema, so an index `name` of collection `c` is
//! the SQL index `c_name`. When that is longer than an SQL identifier may
//! be ([`MAX_IDENTIFIER_LEN`]; a collection name alone may take all 255
//! bytes), the collection part is a 16-digit hash of the collection name
//! instead (`0123456789abcdef_name`), so an index can be made on every
//! collection. Only an index name over 238 bytes on such a collection is
//! refused.

use quiver_common::limits::MAX_IDENTIFIER_LEN;

use super::status::DoorError;

/// FNV-1a (64 bits): a hash stable across builds and platforms.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn hashed_prefix(collection: &str) -> String {
    format!("{:016x}_", stable_hash(collection))
}

/// The SQL name of index `name` of `collection`.
pub(super) fn sql_index_name(collection: &str, name: &str) -> Result<String, DoorError> {
    let plain = format!("{collection}_{name}");
    if plain.len() <= MAX_IDENTIFIER_LEN {
        return Ok(plain);
    }
    let hashed = format!("{}{name}", hashed_prefix(collection));
    if hashed.len() <= MAX_IDENTIFIER_LEN {
        return Ok(hashed);
    }
    Err(DoorError::invalid(format!(
        "Invalid index name: {name}. On collection {collection} an index name may have at most {} bytes in Quiver",
        MAX_IDENTIFIER_LEN - hashed_prefix(collection).len()
    )))
}

/// The Milvus name of the SQL index `sql_name` of `collection` (`None`:
/// not an index made through the Milvus door).
pub(super) fn milvus_index_name<'a>(collection: &str, sql_name: &'a str) -> Option<&'a str> {
    sql_name
        .strip_prefix(&format!("{collection}_"))
        .or_else(|| sql_name.strip_prefix(&hashed_prefix(collection)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_keep_the_collection_prefix() {
        assert_eq!(sql_index_name("docs", "vec").unwrap(), "docs_vec");
        assert_eq!(milvus_index_name("docs", "docs_vec"), Some("vec"));
        assert_eq!(milvus_index_name("docs", "other_idx"), None);
    }

    #[test]
    fn long_collection_names_take_a_hash() {
        let collection = "c".repeat(255);
        let sql = sql_index_name(&collection, "vector").unwrap();
        assert!(sql.len() <= MAX_IDENTIFIER_LEN);
        assert_eq!(sql.len(), 17 + "vector".len());
        assert_eq!(milvus_index_name(&collection, &sql), Some("vector"));
        // Another collection's hash differs.
        let other = "d".repeat(255);
        assert_ne!(sql, sql_index_name(&other, "vector").unwrap());
        assert_eq!(milvus_index_name(&other, &sql), None);
        // The longest index name that still fits.
        assert!(sql_index_name(&collection, &"i".repeat(238)).is_ok());
        let e = sql_index_name(&collection, &"i".repeat(239)).unwrap_err();
        assert_eq!(e.code, 1100);
        assert!(e.message.contains("at most 238 bytes"), "{}", e.message);
    }

    #[test]
    fn the_hash_is_stable() {
        // FNV-1a of "" and "a", the published test vectors.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
