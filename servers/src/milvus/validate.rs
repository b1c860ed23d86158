//! Request validation of the Milvus door, as Milvus' proxy and index
//! parameter checkers do it: names (collections, aliases, partitions,
//! fields, indexes, databases), result windows (search `topk`/`offset`,
//! query `limit`/`offset`, hybrid-search `limit`/`offset`), the number of
//! query vectors, and the search-parameter JSON (`params`: syntax, `ef`
//! for HNSW, `nprobe` for IVF, `radius`/`range_filter`).
//!
//! Codes follow Milvus' `merr`: ParameterInvalid (1100) for most,
//! `field name invalid` (1701) for fields, `invalid database name` (802)
//! for databases. The messages are Milvus' wording (proxy `util.go`,
//! `search_util.go`, knowhere's `config.h`/`config.cc`). Where Milvus
//! itself answers with its catch-all code 65535 (plain Go errors: result
//! windows, index names), Quiver answers 1100 as milvus-lite does.
//!
//! Every number is parsed into `i64` and compared before any arithmetic,
//! so no value (e.g. `topk = 2^64 - 1` with `offset = 1`) can overflow a
//! sum past a check.

use quiver_common::limits::{MAX_NAME_LEN, MAX_NQ, MAX_TOP_K};
use quiver_sql::handler::IndexMethod;
use serde_json::{Map, Value};

use super::status::DoorError;

/// Milvus' `ErrParameterInvalid`.
const PARAMETER_INVALID: i32 = 1100;
/// Milvus' `ErrFieldInvalidName`.
const FIELD_NAME_INVALID: i32 = 1701;
/// Milvus' `ErrDatabaseInvalidName`.
const DATABASE_NAME_INVALID: i32 = 802;

/// Knowhere's range of `ef` (an `int32` config field): `[1, 2^31 - 1]`.
const EF_RANGE: (i64, i64) = (1, i32::MAX as i64);
/// Knowhere's range of `nprobe` for IVF indexes.
const NPROBE_RANGE: (i64, i64) = (1, 65_536);

/// `merr.WrapErrParameterInvalidMsg`: the message, then the error's name.
fn parameter_invalid(message: impl std::fmt::Display) -> DoorError {
    DoorError::new(PARAMETER_INVALID, format!("{message}: invalid parameter"))
}

/// A plain Milvus error message reported as ParameterInvalid.
fn plain(message: String) -> DoorError {
    DoorError::new(PARAMETER_INVALID, message)
}

fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

fn is_word(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// Which rule a name broke (each kind words it its own way).
enum NameFault {
    Empty,
    TooLong,
    FirstChar,
    Chars,
}

/// Milvus' common name rule: not empty after trimming, at most
/// [`MAX_NAME_LEN`] bytes, an underscore or letter first, then letters,
/// digits and underscores (`extra` adds allowed characters after the
/// first, `digit_first` allows a digit first).
fn name_fault(name: &str, digit_first: bool, extra: &[u8]) -> Option<NameFault> {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return Some(NameFault::Empty);
    };
    if bytes.len() > MAX_NAME_LEN {
        return Some(NameFault::TooLong);
    }
    if !(first == b'_' || is_alpha(first) || (digit_first && first.is_ascii_digit())) {
        return Some(NameFault::FirstChar);
    }
    if !bytes[1..].iter().all(|&b| is_word(b) || extra.contains(&b)) {
        return Some(NameFault::Chars);
    }
    None
}

/// A collection name (`validateCollectionName`).
pub(super) fn collection_name(name: &str) -> Result<(), DoorError> {
    collection_or_alias(name, "name")
}

/// An alias name (`ValidateCollectionAlias`).
pub(super) fn alias_name(name: &str) -> Result<(), DoorError> {
    collection_or_alias(name, "alias")
}

fn collection_or_alias(name: &str, kind: &str) -> Result<(), DoorError> {
    let name = name.trim();
    let invalid = format!("Invalid collection {kind}: {name}. ");
    match name_fault(name, false, &[]) {
        None => Ok(()),
        Some(NameFault::Empty) => Err(parameter_invalid(format!(
            "collection {kind} should not be empty"
        ))),
        Some(NameFault::TooLong) => Err(parameter_invalid(format!(
            "{invalid}the length of a collection {kind} must be less than {MAX_NAME_LEN} characters"
        ))),
        Some(NameFault::FirstChar) => Err(parameter_invalid(format!(
            "{invalid}the first character of a collection {kind} must be an underscore or letter"
        ))),
        Some(NameFault::Chars) => Err(parameter_invalid(format!(
            "{invalid}collection {kind} can only contain numbers, letters and underscores"
        ))),
    }
}

/// A partition name (`validatePartitionTag`, strict): a digit may come
/// first and `-` may follow.
pub(super) fn partition_name(name: &str) -> Result<(), DoorError> {
    let name = name.trim();
    let invalid = format!("Invalid partition name: {name}. ");
    let detail = match name_fault(name, true, b"-") {
        None => return Ok(()),
        Some(NameFault::Empty) => "Partition name should not be empty.".to_string(),
        Some(NameFault::TooLong) => {
            format!("The length of a partition name must be less than {MAX_NAME_LEN} characters.")
        }
        Some(NameFault::FirstChar) => {
            "The first character of a partition name must be an underscore or letter.".to_string()
        }
        Some(NameFault::Chars) => {
            "Partition name can only contain numbers, letters and underscores.".to_string()
        }
    };
    Err(parameter_invalid(format!("{invalid}{detail}")))
}

/// A field name (`validateFieldName`): Milvus' `field name invalid` (1701).
pub(super) fn field_name(name: &str) -> Result<(), DoorError> {
    let name = name.trim();
    let invalid = format!("Invalid field name: {name}. ");
    let message = match name_fault(name, false, &[]) {
        None => return Ok(()),
        Some(NameFault::Empty) => "field name should not be empty".to_string(),
        Some(NameFault::TooLong) => format!(
            "{invalid}The length of a field name must be less than {MAX_NAME_LEN} characters."
        ),
        Some(NameFault::FirstChar) => {
            format!("{invalid}The first character of a field name must be an underscore or letter.")
        }
        Some(NameFault::Chars) => {
            format!("{invalid}Field name can only contain numbers, letters, and underscores.")
        }
    };
    Err(DoorError::new(
        FIELD_NAME_INVALID,
        format!("{message}: field name invalid[field={name}]"),
    ))
}

/// An index name (`validateIndexName`); empty means the default name.
pub(super) fn index_name(name: &str) -> Result<(), DoorError> {
    let name = name.trim();
    let invalid = format!("Invalid index name: {name}. ");
    let detail = match name_fault(name, false, &[]) {
        None | Some(NameFault::Empty) => return Ok(()),
        Some(NameFault::TooLong) => {
            format!("The length of a index name must be less than {MAX_NAME_LEN} characters.")
        }
        Some(NameFault::FirstChar) => {
            "The first character of a index name must be an underscore or letter.".to_string()
        }
        Some(NameFault::Chars) => {
            "Index name can only contain numbers, letters, and underscores.".to_string()
        }
    };
    Err(plain(format!("{invalid}{detail}")))
}

/// A database name (`ValidateDatabaseName`): Milvus' `invalid database
/// name` (802).
pub(super) fn database_name(name: &str) -> Result<(), DoorError> {
    let detail = match name_fault(name, false, &[]) {
        None => return Ok(()),
        Some(NameFault::Empty) => "database name couldn't be empty".to_string(),
        Some(NameFault::TooLong) => {
            format!("the length of a database name must be less than {MAX_NAME_LEN} characters")
        }
        Some(NameFault::FirstChar) => {
            "the first character of a database name must be an underscore or letter".to_string()
        }
        Some(NameFault::Chars) => {
            "database name can only contain numbers, letters and underscores".to_string()
        }
    };
    Err(DoorError::new(
        DATABASE_NAME_INVALID,
        format!("{detail}: invalid database name[database={name}]"),
    ))
}

/// Milvus' `validateLimit`: a top-k-like value in `[1, MAX_TOP_K]`.
fn limit_fault(value: i64) -> Option<String> {
    (value <= 0 || value > MAX_TOP_K as i64)
        .then(|| format!("it should be in range [1, {MAX_TOP_K}], but got {value}"))
}

/// Go's `strconv.ParseInt(s, 0, 64)` as far as clients use it: decimal
/// with an optional sign, `0x`/`0o`/`0b` prefixes, `_` separators not
/// accepted.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string())
    } else {
        (10, lower)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// A search's `topk` and `offset` (`parseSearchInfo`): each and their sum
/// in `[1, MAX_TOP_K]` (an offset of 0 is allowed).
pub(super) fn search_window(
    topk: Option<&str>,
    offset: Option<&str>,
) -> Result<(usize, usize), DoorError> {
    window("topk", topk, "offset", offset)
}

/// A hybrid search's `limit` and `offset` (its rank parameters), checked
/// like a search's `topk` and `offset`.
pub(super) fn hybrid_window(
    limit: Option<&str>,
    offset: Option<&str>,
) -> Result<(usize, usize), DoorError> {
    window("limit", limit, "offset", offset)
}

fn window(
    top_key: &str,
    top: Option<&str>,
    offset_key: &str,
    offset: Option<&str>,
) -> Result<(usize, usize), DoorError> {
    let top_text = top.ok_or_else(|| plain(format!("{top_key} not found in search_params")))?;
    let top =
        parse_int(top_text).ok_or_else(|| plain(format!("{top_key} [{top_text}] is invalid")))?;
    if let Some(fault) = limit_fault(top) {
        return Err(plain(format!("{top_key} [{top}] is invalid, {fault}")));
    }
    let offset = match offset {
        None => 0,
        Some(text) => {
            let value = parse_int(text)
                .ok_or_else(|| plain(format!("{offset_key} [{text}] is invalid")))?;
            if value != 0 {
                if let Some(fault) = limit_fault(value) {
                    return Err(plain(format!("{offset_key} [{value}] is invalid, {fault}")));
                }
            }
            value
        }
    };
    // Both are in [0, MAX_TOP_K] here: the sum cannot overflow.
    let sum = top + offset;
    if let Some(fault) = limit_fault(sum) {
        return Err(plain(format!(
            "{offset_key}+{top_key} [{sum}] is invalid, {fault}"
        )));
    }
    Ok((top as usize, offset as usize))
}

/// A query's `limit` (absent: no limit) and `offset`
/// (`validateMaxQueryResultWindow`).
pub(super) fn query_window(
    limit: Option<&str>,
    offset: Option<&str>,
) -> Result<(Option<usize>, usize), DoorError> {
    let parse = |key: &str, text: Option<&str>| -> Result<Option<i64>, DoorError> {
        text.map(|t| parse_int(t).ok_or_else(|| plain(format!("{key} [{t}] is invalid"))))
            .transpose()
    };
    let limit = parse("limit", limit)?;
    let offset = parse("offset", offset)?.unwrap_or(0);
    if offset < 0 {
        return Err(plain(format!(
            "offset [{offset}] is invalid, should be gte than 0"
        )));
    }
    let Some(limit) = limit else {
        return Ok((None, offset as usize));
    };
    if limit <= 0 {
        return Err(plain(format!(
            "limit [{limit}] is invalid, should be greater than 0"
        )));
    }
    // Both are positive: a sum past i64 is past the window too.
    let depth = limit.checked_add(offset).unwrap_or(i64::MAX);
    if depth > MAX_TOP_K as i64 {
        return Err(plain(format!(
            "(offset+limit) should be in range [1, {MAX_TOP_K}], but got {depth}"
        )));
    }
    Ok((Some(limit as usize), offset as usize))
}

/// The number of query vectors of one search (`validateNQLimit`).
pub(super) fn nq(count: usize) -> Result<(), DoorError> {
    if count == 0 || count > MAX_NQ {
        return Err(plain(format!(
            "nq (number of search vector per search request) should be in range [1, {MAX_NQ}], but got {count}"
        )));
    }
    Ok(())
}

/// The kind of index a search runs on, for the parameters it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IndexKind {
    /// No index, or a flat one: no index search parameter is read.
    Flat,
    /// HNSW reads `ef` (knowhere: `[1, 2^31-1]`, at least `k`).
    Hnsw,
    /// IVF indexes read `nprobe` (`[1, 65536]`).
    Ivf,
}

impl IndexKind {
    /// The kind of a catalog index method (`hnsw`, `ivfflat`, ...), as the
    /// index crate names them.
    pub(super) fn of_method(method: Option<&str>) -> Self {
        use IndexMethod as Method;
        match method.and_then(Method::parse) {
            Some(Method::Hnsw) => IndexKind::Hnsw,
            Some(Method::IvfFlat | Method::IvfSq8) => IndexKind::Ivf,
            Some(Method::Flat) | None => IndexKind::Flat,
        }
    }
}

/// The search parameters (`params`) of a search on an index of `kind`
/// returning `k` rows (top-k plus offset), as knowhere checks them. The
/// object comes back with `ef`/`nprobe` given as strings turned into
/// numbers (as knowhere's `FormatAndCheck` does); an absent `params` is an
/// empty object.
pub(super) fn search_params(
    text: Option<&str>,
    kind: IndexKind,
    k: usize,
) -> Result<Map<String, Value>, DoorError> {
    let mut knobs = match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(parameter_invalid(format!(
                    "search params must be a JSON object, but got {other}"
                )))
            }
            Err(e) => {
                return Err(parameter_invalid(format!(
                    "failed to parse search params as JSON: {e}"
                )))
            }
        },
    };
    match kind {
        IndexKind::Hnsw => {
            if let Some(ef) = int_knob(&mut knobs, "ef", EF_RANGE)? {
                if (k as i64) > ef {
                    return Err(parameter_invalid(format!(
                        "ef({ef}) should be larger than k({k})"
                    )));
                }
            }
        }
        IndexKind::Ivf => {
            int_knob(&mut knobs, "nprobe", NPROBE_RANGE)?;
        }
        IndexKind::Flat => {}
    }
    for key in ["radius", "range_filter"] {
        float_knob(&mut knobs, key)?;
    }
    Ok(knobs)
}

/// An integer knob (knowhere's `CFG_INT` with a range): strings holding
/// an integer are taken, anything else but an integer is a type conflict.
fn int_knob(
    knobs: &mut Map<String, Value>,
    key: &str,
    (low, high): (i64, i64),
) -> Result<Option<i64>, DoorError> {
    let Some(value) = knobs.get(key) else {
        return Ok(None);
    };
    let number = match value {
        Value::String(text) => {
            let n = string_to_int(key, text)?;
            if n < i32::MIN as i64 || n > i32::MAX as i64 {
                return Err(parameter_invalid(format!(
                    "integer value out of range, key: '{key}', value: '{text}'"
                )));
            }
            n
        }
        Value::Number(n) => match n.as_i64() {
            Some(n) => n,
            None if n.is_u64() => {
                return Err(parameter_invalid(format!(
                    "Arithmetic overflow: param '{key}' ({n}) should not bigger than {}",
                    i32::MAX
                )))
            }
            None => return Err(type_conflict(key, value)),
        },
        other => return Err(type_conflict(key, other)),
    };
    if number > i32::MAX as i64 {
        return Err(parameter_invalid(format!(
            "Arithmetic overflow: param '{key}' ({number}) should not bigger than {}",
            i32::MAX
        )));
    }
    if number < low || number > high {
        return Err(parameter_invalid(format!(
            "Out of range in json: param '{key}' ({number}) should be in range [{low}, {high}]"
        )));
    }
    knobs.insert(key.to_string(), Value::from(number));
    Ok(Some(number))
}

/// knowhere's string-to-integer conversion (`std::stoll` over the whole
/// string).
fn string_to_int(key: &str, text: &str) -> Result<i64, DoorError> {
    let trimmed = text.trim_start();
    let sign = usize::from(trimmed.starts_with(['+', '-']));
    let digits = trimmed[sign..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return Err(parameter_invalid(format!(
            "invalid integer value, key: '{key}', value: '{text}'"
        )));
    }
    if sign + digits < trimmed.len() {
        return Err(parameter_invalid(format!(
            "wrong data type in json, key: '{key}', value: '{text}'"
        )));
    }
    trimmed.parse::<i64>().map_err(|_| {
        parameter_invalid(format!(
            "integer value out of range, key: '{key}', value: '{text}'"
        ))
    })
}

/// A float knob (knowhere's `CFG_FLOAT`): a number, or a string holding one.
fn float_knob(knobs: &mut Map<String, Value>, key: &str) -> Result<(), DoorError> {
    let Some(value) = knobs.get(key) else {
        return Ok(());
    };
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => Some(text.trim().parse::<f64>().map_err(|_| {
            parameter_invalid(format!(
                "invalid float value, key: '{key}', value: '{text}'"
            ))
        })?),
        Value::Null => return Ok(()),
        other => return Err(number_conflict(key, other)),
    };
    match number.filter(|f| f.is_finite() && f.abs() <= f32::MAX as f64) {
        Some(f) => {
            knobs.insert(key.to_string(), Value::from(f));
            Ok(())
        }
        None => Err(parameter_invalid(format!(
            "float value out of range, key: '{key}', value: '{value}'"
        ))),
    }
}

fn type_conflict(key: &str, value: &Value) -> DoorError {
    parameter_invalid(format!(
        "Type conflict in json: param '{key}' ({value}) should be integer"
    ))
}

fn number_conflict(key: &str, value: &Value) -> DoorError {
    parameter_invalid(format!(
        "Type conflict in json: param '{key}' ({value}) should be a number"
    ))
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
