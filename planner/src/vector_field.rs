//! The pgvector marker on Arrow fields: [`VECTOR_FIELD_METADATA`] and
//! [`vector_field`], which the operators, the vector functions, casts and
//! aggregates all use to type their vector outputs. A leaf: it imports no
//! other module of the crate.

use arrow::datatypes::{DataType, Field};

/// Field metadata marking a vector-typed value (the pgvector type of arrow-pg).
pub const VECTOR_FIELD_METADATA: (&str, &str) = ("pg.vector", "vector");

/// A vector field with the pgvector marker.
pub fn vector_field(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true).with_metadata(
        [(
            VECTOR_FIELD_METADATA.0.to_string(),
            VECTOR_FIELD_METADATA.1.to_string(),
        )]
        .into(),
    )
}
