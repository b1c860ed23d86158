//! Functions the reflection queries of ORMs call (SQLAlchemy's
//! `get_columns`, among others) that DataFusion's PostgreSQL catalog lacks:
//!
//! * `json_build_object(key, value, ...)` — a JSON object of the pairs, in
//!   PostgreSQL's layout (`{"a" : 1, "b" : "x"}`);
//! * `pg_get_serial_sequence(table, column)` — the sequence a column's
//!   default draws from. Quiver's generated keys (`serial`, identity
//!   columns, Milvus `auto_id`) come from an id allocator, not from a
//!   sequence relation (there is none in `pg_class`), so the answer for an
//!   existing column is NULL, as PostgreSQL's is for a column without one;
//!   a table or column that does not exist is an error, as there.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{exec_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use quiver_cluster::EngineError;
use quiver_common::json_text::push_json_text;
use quiver_exec::catalog::CatalogSource;

/// `json_build_object(variadic "any")`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

/// Row `row` of `array` as a JSON value: numbers and booleans bare, text
/// quoted, NULL `null`, anything else as its text, quoted.
fn json_value(array: &ArrayRef, row: usize, out: &mut String) -> Result<()> {
    if array.data_type() == &DataType::Null || array.is_null(row) {
        out.push_str("null");
        return Ok(());
    }
    let options = FormatOptions::default();
    let text = ArrayFormatter::try_new(array.as_ref(), &options)?
        .value(row)
        .to_string();
    match array.data_type() {
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..) => out.push_str(&text),
        DataType::Float32 | DataType::Float64 if text.parse::<f64>().is_ok_and(f64::is_finite) => {
            out.push_str(&text);
        }
        _ => push_json_text(&text, out),
    }
    Ok(())
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!("argument list must have even number of elements");
        }
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut object = String::from("{");
            for (i, pair) in arrays.chunks(2).enumerate() {
                if pair[0].is_null(row) {
                    return exec_err!("null value not allowed for object key");
                }
                if i > 0 {
                    object.push_str(", ");
                }
                let key = ArrayFormatter::try_new(pair[0].as_ref(), &FormatOptions::default())?
                    .value(row)
                    .to_string();
                push_json_text(&key, &mut object);
                object.push_str(" : ");
                json_value(&pair[1], row, &mut object)?;
            }
            object.push('}');
            out.push(Some(object));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `pg_get_serial_sequence(table text, column text)` over a session's
/// catalog.
#[derive(Debug)]
struct PgGetSerialSequence {
    signature: Signature,
    catalog: Arc<dyn CatalogSource>,
}

impl PartialEq for PgGetSerialSequence {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.catalog, &other.catalog)
    }
}

impl Eq for PgGetSerialSequence {}

impl std::hash::Hash for PgGetSerialSequence {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "pg_get_serial_sequence".hash(state);
    }
}

/// The parts of a relation name as `regclass` text writes it: `t`,
/// `s.t`, with `"..."` around parts that need quotes.
fn name_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c if quoted => current.push(c),
            c => current.extend(c.to_lowercase()),
        }
    }
    parts.push(current);
    parts
}

impl PgGetSerialSequence {
    /// Checks that `table.column` exists; every existing column has no
    /// sequence.
    fn sequence_of(&self, table: &str, column: &str) -> Result<Option<String>> {
        let parts = name_parts(table);
        let (schemas, name) = match parts.as_slice() {
            [name] => {
                let mut schemas = vec![quiver_cluster::DEFAULT_DATABASE.to_string()];
                schemas.extend(self.catalog.schema_names());
                (schemas, name.clone())
            }
            [schema, name] | [_, schema, name] => (vec![schema.clone()], name.clone()),
            _ => return exec_err!("improper relation name (too many dotted names): {table}"),
        };
        let Some(source) = schemas
            .iter()
            .find_map(|schema| self.catalog.table(schema, &name))
        else {
            return Err(DataFusionError::External(Box::new(
                EngineError::TableNotFound {
                    database: schemas[0].clone(),
                    table: name,
                },
            )));
        };
        let column = column.to_lowercase();
        if source.table_schema().column_index(&column).is_none() {
            return Err(DataFusionError::External(Box::new(
                EngineError::ColumnNotFound {
                    table: name,
                    column,
                },
            )));
        }
        Ok(None)
    }
}

impl ScalarUDFImpl for PgGetSerialSequence {
    fn name(&self) -> &str {
        "pg_get_serial_sequence"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let tables = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let columns = arrow::compute::cast(&arrays[1], &DataType::Utf8)?;
        let (tables, columns) = (tables.as_string::<i32>(), columns.as_string::<i32>());
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if tables.is_null(row) || columns.is_null(row) {
                out.push(None);
                continue;
            }
            out.push(self.sequence_of(tables.value(row), columns.value(row))?);
        }
        if rows == 1
            && args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                out.pop().flatten(),
            )));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// The functions of this module, `pg_get_serial_sequence` over `catalog`
/// (the session's).
pub fn reflection_functions(catalog: Arc<dyn CatalogSource>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(JsonBuildObject {
            signature: Signature::variadic_any(Volatility::Stable),
        }),
        ScalarUDF::from(PgGetSerialSequence {
            signature: Signature::any(2, Volatility::Stable),
            catalog,
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_names_read_as_regclass_writes_them() {
        assert_eq!(name_parts("items"), ["items"]);
        assert_eq!(name_parts("Public.Items"), ["public", "items"]);
        assert_eq!(name_parts("\"My \"\"T\".x"), ["My \"T", "x"]);
    }
}
