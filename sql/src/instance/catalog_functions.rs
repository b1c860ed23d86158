//! Catalog functions that psql's meta-commands and other tools call and
//! DataFusion's PostgreSQL catalog lacks:
//!
//! * `pg_size_pretty(bytes)` — PostgreSQL's rounding and units (`bytes`,
//!   `kB`, `MB`, `GB`, `TB`, `PB`);
//! * `obj_description(oid[, catalog])`, `col_description(oid, column)`,
//!   `shobj_description(oid, catalog)` — an object's comment: NULL, the
//!   answer PostgreSQL gives for an object without one (Quiver keeps no
//!   comments: `COMMENT ON` is refused);
//! * `pg_function_is_visible(oid)`, `pg_type_is_visible(oid)` — true: the
//!   functions and types Quiver's catalog lists live in `pg_catalog` (always
//!   searched) or `public` (`vector`), as `pg_table_is_visible` reads it.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    create_udf, ColumnarValue, ScalarUDF, Signature, TypeSignature, Volatility,
};

/// `size` bytes as `pg_size_pretty` writes them.
pub fn size_pretty(size: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if size.abs() < LIMIT {
        return format!("{size} bytes");
    }
    // One extra bit is kept for rounding.
    let mut value = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if value.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(value));
        }
        value >>= 10;
    }
    format!("{} PB", half_rounded(value))
}

fn pg_size_pretty() -> ScalarUDF {
    create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let sizes = arrays[0].as_primitive::<Int64Type>();
            let out: StringArray = sizes.iter().map(|s| s.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

/// A function of `arities` arguments of any type answering NULL text.
fn no_comment(name: &str, arities: &[usize]) -> ScalarUDF {
    let signature = Signature::one_of(
        arities.iter().map(|n| TypeSignature::Any(*n)).collect(),
        Volatility::Stable,
    );
    ScalarUDF::from(NoComment {
        name: name.to_string(),
        signature,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NoComment {
    name: String,
    signature: Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for NoComment {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        _args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

fn always_visible(name: &str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let oids = arrays[0].as_primitive::<Int64Type>();
            let out: BooleanArray = oids.iter().map(|oid| oid.map(|_| true)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

/// The functions of this module.
pub fn catalog_functions() -> Vec<ScalarUDF> {
    vec![
        pg_size_pretty(),
        no_comment("obj_description", &[1, 2]),
        no_comment("col_description", &[2]),
        no_comment("shobj_description", &[2]),
        always_visible("pg_function_is_visible"),
        always_visible("pg_type_is_visible"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_postgresql_writes_them() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10_239), "10239 bytes");
        assert_eq!(size_pretty(10_240), "10 kB");
        assert_eq!(size_pretty(8_192 * 1024), "8192 kB");
        assert_eq!(size_pretty(20 * 1024 * 1024), "20 MB");
        assert_eq!(size_pretty(1_500_000_000), "1431 MB");
        assert_eq!(size_pretty(-20_000), "-20 kB");
        assert_eq!(size_pretty(5 * (1 << 50)), "5120 TB");
        assert_eq!(size_pretty(20 * (1 << 50)), "20 PB");
    }
}
