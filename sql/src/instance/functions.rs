//! Postgres system functions clients call at connect time: `version()`,
//! `to_regtype(text)`, `current_setting(text)`, `pg_typeof` helpers.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int32Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The version string `SELECT version()` returns.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 16.0 (Quiver {}) on {}, compiled by rustc",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// OID of a type name as `to_regtype` resolves it, for the types Quiver serves.
pub fn type_oid(name: &str) -> Option<i32> {
    let name = name.trim().trim_matches('"').to_ascii_lowercase();
    let name = name
        .rsplit('.')
        .next()
        .unwrap_or(&name)
        .trim_matches('"')
        .to_string();
    Some(match name.as_str() {
        "vector" => arrow_pg::datatypes::PG_VECTOR_TYPE_OID as i32,
        "bool" | "boolean" => 16,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "bpchar" | "character" => 1042,
        "time" => 1083,
        "interval" => 1186,
        "bit" => 1560,
        "varbit" | "bit varying" => 1562,
        "bytea" => 17,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "timestamp" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "numeric" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

macro_rules! simple_udf {
    ($name:ident, $sql:expr) => {
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct $name {
            signature: Signature,
        }
        impl $name {
            fn new(signature: Signature) -> Self {
                Self { signature }
            }
        }
    };
}

simple_udf!(VersionUdf, "version");
simple_udf!(ToRegtypeUdf, "to_regtype");

impl ScalarUDFImpl for VersionUdf {
    fn name(&self) -> &str {
        "version"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            version_string(),
        ))))
    }
}

impl ScalarUDFImpl for ToRegtypeUdf {
    fn name(&self) -> &str {
        "to_regtype"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let name = match s {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v.clone()
                    }
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Int32(
                    name.as_deref().and_then(type_oid),
                )))
            }
            ColumnarValue::Array(array) => {
                let strings = arrow::compute::cast(array, &DataType::Utf8)?;
                let strings = strings.as_string::<i32>();
                let out: Int32Array = strings.iter().map(|s| s.and_then(type_oid)).collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }
    }
}

/// `current_setting(name)` over a snapshot of the session's settings.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentSettingUdf {
    signature: Signature,
    settings: BTreeMap<String, String>,
}

impl ScalarUDFImpl for CurrentSettingUdf {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let lookup = |name: &str| self.settings.get(&name.to_ascii_lowercase()).cloned();
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let value = match s {
                    ScalarValue::Utf8(Some(v))
                    | ScalarValue::LargeUtf8(Some(v))
                    | ScalarValue::Utf8View(Some(v)) => lookup(v),
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)))
            }
            ColumnarValue::Array(array) => {
                let strings = arrow::compute::cast(array, &DataType::Utf8)?;
                let strings = strings.as_string::<i32>();
                let out: StringArray = (0..strings.len())
                    .map(|i| {
                        if strings.is_null(i) {
                            None
                        } else {
                            lookup(strings.value(i))
                        }
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }
    }
}

/// The session-independent system functions.
pub fn system_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(VersionUdf::new(Signature::nullary(Volatility::Stable))),
        ScalarUDF::from(ToRegtypeUdf::new(Signature::string(1, Volatility::Stable))),
    ]
}

/// `current_setting` bound to the given settings.
pub fn current_setting_function(settings: &BTreeMap<String, String>) -> ScalarUDF {
    ScalarUDF::from(CurrentSettingUdf {
        signature: Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::String(1),
                datafusion::logical_expr::TypeSignature::Any(2),
            ],
            Volatility::Stable,
        ),
        settings: settings.clone(),
    })
}
