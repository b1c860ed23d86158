//! Translation of Milvus boolean filter expressions into SQL.
//!
//! This module owns the `filter` / `expr` string accepted by pymilvus
//! `search`, `query` and `delete`: it tokenizes and parses the Milvus filter
//! language, resolves field names against the collection schema, substitutes
//! template placeholders (`{name}`), performs cheap type checks and renders a
//! PostgreSQL-dialect SQL boolean expression that DataFusion's SQL parser
//! (sqlparser, `PostgreSqlDialect`) accepts, e.g.
//!
//! ```text
//! age > 18 and name like "ab%"   =>   (("age" > 18) AND ("name" LIKE 'ab%'))
//! ```
//!
//! Supported syntax:
//! - literals: integers (decimal, `0x` hex, `0b` binary, `0o`/leading-zero
//!   octal as in Milvus; emitted in decimal), floats (`1.5`, `.5`, `1.`,
//!   `1e3`), strings in double or single quotes with backslash escapes, and
//!   booleans (`true`/`True`/`TRUE`, `false`/`False`/`FALSE`);
//! - identifiers naming scalar fields (`Bool`, `Int`, `Float`, `String`);
//! - JSON paths `meta["a"]["b"]`, `meta["arr"][0]` (also `$meta["k"]`), and
//!   dynamic field keys: when the collection has a dynamic field (a `Json`
//!   field named `$meta`), an undeclared name `color` means `$meta["color"]`
//!   and `color["x"]` means `$meta["color"]["x"]`;
//! - ARRAY fields ([`FieldKind::Array`], [`FieldKind::ArrayOf`]) indexed
//!   with `arr[0]`;
//! - comparisons `== != < <= > >=` and chained ranges (`10 < x <= 20`,
//!   `30 > x >= 5`);
//! - arithmetic `+ - * / %`, `**` (rendered as `power(a, b)`), unary `-`/`+`;
//! - logical `and`/`&&`, `or`/`||`, `not`/`!`;
//! - `x in [..]`, `x not in [..]` (an empty list becomes `FALSE` / `TRUE`);
//! - `x like "pattern"`, `x is null`, `x is not null`;
//! - `json_contains(src, v)`, `json_contains_all(src, [..])`,
//!   `json_contains_any(src, [..])`, their `array_contains*` twins (the same
//!   functions in Milvus) and `array_length(src)`, where `src` is a JSON
//!   field, a JSON path or an ARRAY field (names in lower or upper case);
//! - template placeholders `{name}` wherever a literal may stand, and as the
//!   whole list after `in` / `not in` and in `*_contains_all` / `_any`.
//!
//! Precedence and associativity follow Milvus' ANTLR grammar (`Plan.g4`),
//! tightest first: `is [not] null` (only directly after a field), `like`,
//! `**`, unary `- + not !`, `* / %`, `+ -`, `in` / `not in`, `< <= > >=`,
//! `== !=`, `and`, `or`; binary operators (`**` included) associate to the
//! left. So `not a == b` is `(not a) == b`, `not x in [1]` is
//! `(not x) in [1]`, `-2 ** 2` is `-(2 ** 2)`, `2 ** 3 ** 2` is
//! `(2 ** 3) ** 2` and `a + 1 in [2]` is `(a + 1) in [2]`. Type checks then
//! reject, as Milvus does, e.g. `not age > 18` (`not` of a number); write
//! `not (age > 18)`.
//!
//! JSON and ARRAY values are JSON text in SQL and are read with the
//! functions of the `datafusion-functions-json` crate:
//! - a JSON value takes the type of what it meets: compared with a number
//!   (or in arithmetic) it is read with `json_get_float` (so `== 3` matches
//!   `3` and `3.0`, and `> 2` matches `2.5`, as in Milvus), or with
//!   `json_get_int` for equality with an integer beyond ±2^53; with a string
//!   (or `like`) with `json_get_str`; with a boolean with `json_get_bool`.
//!   An `in` list of mixed types reads the value once per type. Elements of
//!   [`FieldKind::ArrayOf`] fields use the getter of their element kind;
//! - a missing key, an index out of range or a value of another type reads
//!   as NULL; predicates over such values become `((..) IS TRUE)`, false
//!   like in Milvus, and `((..) IS NOT FALSE)` for `!=` and `not in`, which
//!   Milvus makes true when the types differ;
//! - `is null` / `is not null` on a path test `json_as_text(..)` (a missing
//!   key and a JSON `null` are both null);
//! - `json_contains` & co. read the array with `json_get_array` (a list of
//!   each element's JSON text) and use DataFusion's `array_has`,
//!   `array_has_all` / `array_has_any` with `make_array(..)`: strings and
//!   booleans are looked up by their compact JSON text (`'"red"'`,
//!   `'true'`), which assumes the stored JSON is written compactly with
//!   minimal string escaping (as `serde_json` writes it); numbers by value
//!   after `TRY_CAST(.. AS DOUBLE[])` (`BIGINT[]` for integer arrays);
//! - `array_length` is `json_length(..)` on an ARRAY field and
//!   `cardinality(json_get_array(..))` on JSON (arrays only, like Milvus).
//!
//! Known differences from Milvus: the typed getters also read strings that
//! spell a number or a boolean (`json_get_float` reads `"3"` as 3,
//! `json_get_bool` reads `"true"`), which Milvus treats as a type mismatch;
//! `IS NOT FALSE` lets rows whose whole JSON / ARRAY column is NULL pass
//! `!=` / `not in` (Milvus drops null rows); integers beyond ±2^53 compare
//! exactly only in `==`, `!=` and `in`.
//!
//! Not supported yet (rejected with a [`FilterError`], mostly "... is not
//! supported yet"): comparisons on whole JSON or array fields (only
//! `is null` / `is not null` work on them), `json_contains` with an array
//! value (sub-array membership), other functions (`text_match`,
//! `phrase_match`, `random_sample`, spatial functions, ...), `exists`,
//! bitwise operators, regex match (`=~`, `!~`), raw strings (`r"..."`),
//! `iso` timestamp comparisons and hexadecimal floats.
//!
//! Output conventions: identifiers are always double-quoted, strings are
//! single-quoted with `''` escaping (backslashes are literal in the
//! PostgreSQL dialect), integers are printed in decimal, floats keep their
//! decimal point or exponent, and every operator application is wrapped in
//! parentheses so precedence never depends on the SQL dialect. The output
//! is shaped to keep sqlparser fast and shallow:
//! - chains of one precedence level (`a and b and c`, `a + b - c`,
//!   `a * b / c`) are rendered flat inside one pair of parentheses, since
//!   sqlparser's recursion limit (DataFusion default: 50) counts nesting;
//! - `not x` is rendered `(NOT x)` when `x` is a field or literal and as the
//!   equivalent (under three-valued logic) `(x = FALSE)` otherwise, because
//!   sqlparser backtracks exponentially on nested `NOT (...)`;
//! - `a ** b` becomes `power(a, b)`; nested function calls also parse in
//!   exponential time, so at most [`MAX_POWER_NESTING`] may nest.
//!
//! Size: at most [`MAX_FILTER_OPERATORS`] operators, counted on the tokens
//! before the tree is built; the translation is held to the SQL limits by
//! [`check_translated`] (see `limits`).
//!
//! Positions in [`FilterError`] are 0-based `char` offsets into the input.
//! The parser uses an explicit operator stack rather than recursion; input is
//! limited to [`MAX_EXPR_LEN`] bytes and [`MAX_DEPTH`] nested levels, which
//! also bounds the (recursive) rendering, so hostile input cannot exhaust the
//! stack.

use std::collections::HashMap;
use std::fmt;

mod limits;

pub use limits::{check_translated, MAX_FILTER_OPERATORS, TRANSLATED_LIMITS};

/// Maximum accepted length of a filter expression, in bytes.
pub const MAX_EXPR_LEN: usize = 64 * 1024;

/// Maximum nesting depth (parentheses, unary operators, expression tree).
pub const MAX_DEPTH: usize = 200;

/// Maximum number of `**` operators nested inside one another. Each renders
/// as a nested `power(..)` call, which sqlparser parses in time exponential
/// in the nesting, so deeper chains are rejected.
pub const MAX_POWER_NESTING: usize = 8;

/// Name of the dynamic field: a [`FieldKind::Json`] field with this name
/// makes undeclared names its keys.
pub const DYNAMIC_FIELD: &str = "$meta";

/// Kind of a collection field, as far as filtering is concerned.
///
/// A `Json` field named `$meta` is the dynamic field: when it is present,
/// names that match no field are its keys (`color` means `$meta["color"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Bool,
    Int,
    Float,
    String,
    /// JSON text (Utf8) holding any JSON value.
    Json,
    Vector,
    /// A Milvus ARRAY field stored as JSON text (a JSON array) whose element
    /// type is unknown: its elements are typed like JSON values.
    Array,
    /// A Milvus ARRAY field stored as JSON text (a JSON array) of elements of
    /// one kind.
    ArrayOf(ElementKind),
}

/// Element type of an ARRAY field ([`FieldKind::ArrayOf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    Bool,
    /// Any integer type (stored as JSON integers).
    Int,
    /// `FLOAT` / `DOUBLE`.
    Float,
    /// `VARCHAR`.
    String,
}

/// A field that filter expressions may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterField<'a> {
    pub name: &'a str,
    pub kind: FieldKind,
}

/// Value bound to a `{name}` template placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Array(Vec<TemplateValue>),
}

/// A filter that could not be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 0-based `char` offset in the input expression.
    pub position: usize,
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }

    /// Renders the error in Milvus style, including the offending expression.
    pub fn describe(&self, expr: &str) -> String {
        format!(
            "cannot parse expression: {expr}, error: {} at position {}",
            self.message, self.position
        )
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot parse expression, error: {} at position {}",
            self.message, self.position
        )
    }
}

impl std::error::Error for FilterError {}

type Result<T> = std::result::Result<T, FilterError>;

/// Translates a Milvus filter expression into a SQL boolean expression.
///
/// `fields` lists the fields the expression may reference and `templates`
/// supplies values for `{name}` placeholders. An empty (or whitespace-only)
/// expression is an error; callers treat "no filter" themselves.
pub fn filter_to_sql(
    expr: &str,
    fields: &[FilterField],
    templates: &HashMap<String, TemplateValue>,
) -> std::result::Result<String, FilterError> {
    if expr.len() > MAX_EXPR_LEN {
        return Err(FilterError::new(0, "expression is too long"));
    }
    let chars: Vec<char> = expr.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err(FilterError::new(0, "empty expression"));
    }
    let tokens = lex(&chars)?;
    limits::check_tokens(&tokens)?;
    let dynamic = fields
        .iter()
        .any(|f| f.name == DYNAMIC_FIELD && f.kind == FieldKind::Json);
    let mut parser = Parser {
        tokens,
        idx: 0,
        stack: Vec::new(),
        depth: 0,
        fields,
        templates,
        dynamic,
    };
    let root = parser.parse_expression()?;
    if root.ty != Ty::Bool {
        return Err(FilterError::new(
            root.pos,
            format!("filter expression must be boolean, got {}", root.ty.name()),
        ));
    }
    let mut out = String::new();
    emit(&root, &mut out);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(u64),
    /// Normalized float text (always has a digit before and after any `.`).
    Float(String),
    Str(String),
    Bool(bool),
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Pow,
    And,
    Or,
    Not,
    In,
    Like,
    Is,
    Null,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    text: String,
}

fn lex(chars: &[char]) -> Result<Vec<Token>> {
    let n = chars.len();
    let at = |i: usize| chars.get(i).copied();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let next = at(i + 1);
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '/' => (Tok::Slash, 1),
            '%' => (Tok::Percent, 1),
            '*' if next == Some('*') => (Tok::Pow, 2),
            '*' => (Tok::Star, 1),
            '=' if next == Some('=') => (Tok::Eq, 2),
            '=' if next == Some('~') => {
                return Err(FilterError::new(start, "regex match is not supported yet"));
            }
            '=' => {
                return Err(FilterError::new(
                    start,
                    "unexpected character '='; use '==' for equality",
                ));
            }
            '!' if next == Some('=') => (Tok::Ne, 2),
            '!' if next == Some('~') => {
                return Err(FilterError::new(start, "regex match is not supported yet"));
            }
            '!' => (Tok::Not, 1),
            '<' if next == Some('=') => (Tok::Le, 2),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '<' if next == Some('<') => return Err(bitwise(start, "<<")),
            '>' if next == Some('>') => return Err(bitwise(start, ">>")),
            '<' => (Tok::Lt, 1),
            '>' => (Tok::Gt, 1),
            '&' if next == Some('&') => (Tok::And, 2),
            '|' if next == Some('|') => (Tok::Or, 2),
            '&' | '|' | '^' | '~' => return Err(bitwise(start, &c.to_string())),
            '"' | '\'' => {
                let (s, end) = lex_string(chars, start)?;
                (Tok::Str(s), end - start)
            }
            '0'..='9' => {
                let (tok, end) = lex_number(chars, start)?;
                (tok, end - start)
            }
            '.' if next.is_some_and(|d| d.is_ascii_digit()) => {
                let (tok, end) = lex_number(chars, start)?;
                (tok, end - start)
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let mut end = i + 1;
                while end < n && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                let word: String = chars[start..end].iter().collect();
                (keyword(word), end - start)
            }
            other => {
                return Err(FilterError::new(
                    start,
                    format!("unexpected character '{other}'"),
                ));
            }
        };
        i += len;
        tokens.push(Token {
            tok,
            pos: start,
            text: chars[start..i].iter().collect(),
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: n,
        text: String::new(),
    });
    Ok(tokens)
}

fn bitwise(pos: usize, op: &str) -> FilterError {
    FilterError::new(pos, format!("bitwise operator '{op}' is not supported yet"))
}

fn keyword(word: String) -> Tok {
    match word.as_str() {
        "and" | "AND" => Tok::And,
        "or" | "OR" => Tok::Or,
        "not" | "NOT" => Tok::Not,
        "in" | "IN" => Tok::In,
        "like" | "LIKE" => Tok::Like,
        "true" | "True" | "TRUE" => Tok::Bool(true),
        "false" | "False" | "FALSE" => Tok::Bool(false),
        w if w.eq_ignore_ascii_case("is") => Tok::Is,
        w if w.eq_ignore_ascii_case("null") => Tok::Null,
        _ => Tok::Ident(word),
    }
}

/// Lexes a quoted string starting at `start`; returns the unescaped value and
/// the index just past the closing quote.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize)> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(FilterError::new(start, "unterminated string"));
        };
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&esc) = chars.get(i + 1) else {
            return Err(FilterError::new(start, "unterminated string"));
        };
        let simple = match esc {
            '"' => Some('"'),
            '\'' => Some('\''),
            '\\' => Some('\\'),
            '?' => Some('?'),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{07}'),
            'b' => Some('\u{08}'),
            'f' => Some('\u{0c}'),
            'v' => Some('\u{0b}'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            i += 2;
            continue;
        }
        let digits = match esc {
            'u' => 4,
            'U' => 8,
            _ => {
                return Err(FilterError::new(
                    i,
                    format!("invalid escape sequence '\\{esc}'"),
                ));
            }
        };
        let hex: String = chars.iter().skip(i + 2).take(digits).collect();
        let ch = if hex.len() == digits && hex.chars().all(|h| h.is_ascii_hexdigit()) {
            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
        } else {
            None
        };
        match ch {
            Some(ch) => out.push(ch),
            None => {
                return Err(FilterError::new(i, "invalid unicode escape sequence"));
            }
        }
        i += 2 + digits;
    }
}

/// Lexes a numeric literal starting at `start`; returns the token and the
/// index just past it.
fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize)> {
    let at = |i: usize| chars.get(i).copied();
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let invalid = |end: usize| {
        let mut end = end;
        while is_word(at(end)) || at(end) == Some('.') {
            end += 1;
        }
        let text: String = chars[start..end].iter().collect();
        FilterError::new(start, format!("invalid numeric literal '{text}'"))
    };
    let out_of_range = || FilterError::new(start, "integer literal out of range");

    // Radix-prefixed integers: 0x.., 0o.., 0b...
    if at(start) == Some('0') {
        let radix = match at(start + 1) {
            Some('x' | 'X') => Some(16),
            Some('o' | 'O') => Some(8),
            Some('b' | 'B') => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            let mut end = start + 2;
            while at(end).is_some_and(|c| c.is_digit(radix)) {
                end += 1;
            }
            if end == start + 2 || is_word(at(end)) || at(end) == Some('.') {
                return Err(invalid(end));
            }
            let digits: String = chars[start + 2..end].iter().collect();
            let value = u64::from_str_radix(&digits, radix).map_err(|_| out_of_range())?;
            return Ok((Tok::Int(value), end));
        }
    }

    let mut i = start;
    while at(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    let int_part: String = chars[start..i].iter().collect();
    let mut frac_part = None;
    if at(i) == Some('.') {
        let frac_start = i + 1;
        i += 1;
        while at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        frac_part = Some(chars[frac_start..i].iter().collect::<String>());
    }
    let mut exp_part = None;
    if matches!(at(i), Some('e' | 'E')) {
        let exp_start = i;
        let mut j = i + 1;
        if matches!(at(j), Some('+' | '-')) {
            j += 1;
        }
        let digits_start = j;
        while at(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        if j == digits_start {
            return Err(invalid(j));
        }
        exp_part = Some(chars[exp_start..j].iter().collect::<String>());
        i = j;
    }
    if is_word(at(i)) || at(i) == Some('.') {
        return Err(invalid(i));
    }

    if frac_part.is_none() && exp_part.is_none() {
        let value = if int_part.len() > 1 && int_part.starts_with('0') {
            // Milvus (like C) reads a leading zero as an octal literal.
            if !int_part.chars().all(|c| c.is_digit(8)) {
                return Err(FilterError::new(
                    start,
                    format!("invalid octal literal '{int_part}'"),
                ));
            }
            u64::from_str_radix(&int_part, 8).map_err(|_| out_of_range())?
        } else {
            int_part.parse::<u64>().map_err(|_| out_of_range())?
        };
        return Ok((Tok::Int(value), i));
    }

    let int_part = int_part.trim_start_matches('0');
    let mut text = if int_part.is_empty() {
        "0".to_string()
    } else {
        int_part.to_string()
    };
    if let Some(frac) = frac_part {
        text.push('.');
        text.push_str(if frac.is_empty() { "0" } else { &frac });
    }
    if let Some(exp) = exp_part {
        text.push_str(&exp);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((Tok::Float(text), i)),
        _ => Err(FilterError::new(start, "float literal out of range")),
    }
}

// ---------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------

/// Coarse static type used for cheap checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Num,
    Str,
    /// A value inside JSON (a JSON path, a dynamic field key or an element of
    /// an untyped array) whose type is only fixed by what it meets: a literal,
    /// a field or an operator (see [`resolve`]).
    Json,
    /// A whole JSON or array field; only `is [not] null` may consume it.
    Opaque,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Num => "number",
            Ty::Str => "string",
            Ty::Json => "JSON value",
            Ty::Opaque => "JSON/array field",
        }
    }

    fn comparable(self, other: Ty) -> bool {
        match (self, other) {
            (Ty::Opaque, _) | (_, Ty::Opaque) | (Ty::Json, Ty::Json) => false,
            (Ty::Json, _) | (_, Ty::Json) => true,
            (Ty::Bool, Ty::Num) | (Ty::Num, Ty::Bool) => true,
            (a, b) => a == b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Int(i64),
    Float(String),
    Str(String),
    Bool(bool),
}

impl Lit {
    fn ty(&self) -> Ty {
        match self {
            Lit::Int(_) | Lit::Float(_) => Ty::Num,
            Lit::Str(_) => Ty::Str,
            Lit::Bool(_) => Ty::Bool,
        }
    }
}

/// Integers beyond ±2^53 are not all representable as `f64`.
const F64_EXACT_INT: u64 = 1 << 53;

/// Whether numbers compared for equality with `lits` must be read from JSON
/// as integers (`json_get_int`) rather than floats: only when every number is
/// an integer and one of them is too large for `f64` to hold exactly.
fn needs_int_getter<'l>(lits: impl IntoIterator<Item = &'l Lit>) -> bool {
    let mut big = false;
    for lit in lits {
        match lit {
            Lit::Int(v) => big |= v.unsigned_abs() > F64_EXACT_INT,
            Lit::Float(_) => return false,
            Lit::Str(_) | Lit::Bool(_) => {}
        }
    }
    big
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn relational(tok: &Tok) -> Option<CmpOp> {
        match tok {
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        }
    }

    fn is_less(self) -> bool {
        matches!(self, CmpOp::Lt | CmpOp::Le)
    }

    fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    fn prec(self) -> u8 {
        match self {
            ArithOp::Add | ArithOp::Sub => PREC_ADD,
            ArithOp::Mul | ArithOp::Div | ArithOp::Mod => PREC_MUL,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogicOp {
    And,
    Or,
}

impl LogicOp {
    fn name(self) -> &'static str {
        match self {
            LogicOp::And => "and",
            LogicOp::Or => "or",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            LogicOp::And => "AND",
            LogicOp::Or => "OR",
        }
    }
}

/// One step of a JSON path: `["key"]` or `[0]`.
#[derive(Debug, Clone, PartialEq)]
enum PathElem {
    Key(String),
    Index(i64),
}

/// Where a path starts: a JSON column (a JSON field or `$meta`) or an ARRAY
/// field, with its element kind when known. Both are JSON text in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Json,
    Array(Option<ElementKind>),
}

/// The typed `datafusion-functions-json` getter that reads a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Getter {
    /// Not chosen yet (the value is still [`Ty::Json`]).
    Unresolved,
    Float,
    Int,
    Str,
    Bool,
}

impl Getter {
    fn sql(self) -> &'static str {
        match self {
            // Only reachable for a value nothing typed; any JSON text works.
            Getter::Unresolved => "json_get_json",
            Getter::Float => "json_get_float",
            Getter::Int => "json_get_int",
            Getter::Str => "json_get_str",
            Getter::Bool => "json_get_bool",
        }
    }
}

impl ElementKind {
    fn name(self) -> &'static str {
        match self {
            ElementKind::Bool => "boolean",
            ElementKind::Int => "integer",
            ElementKind::Float => "float",
            ElementKind::String => "string",
        }
    }

    fn getter(self) -> (Getter, Ty) {
        match self {
            ElementKind::Bool => (Getter::Bool, Ty::Bool),
            ElementKind::Int => (Getter::Int, Ty::Num),
            ElementKind::Float => (Getter::Float, Ty::Num),
            ElementKind::String => (Getter::Str, Ty::Str),
        }
    }

    fn accepts(self, lit: &Lit) -> bool {
        matches!(
            (self, lit),
            (ElementKind::Bool, Lit::Bool(_))
                | (
                    ElementKind::Int | ElementKind::Float,
                    Lit::Int(_) | Lit::Float(_)
                )
                | (ElementKind::String, Lit::Str(_))
        )
    }
}

/// A value read out of a JSON column or an ARRAY field: `column` followed by
/// `path` (possibly empty when the whole column is meant, as in function
/// arguments).
#[derive(Debug, Clone)]
struct Access {
    column: String,
    path: Vec<PathElem>,
    kind: SourceKind,
    getter: Getter,
}

/// `json_contains` / `array_contains` (one value) and their `_all` / `_any`
/// forms (a list of values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContainsOp {
    One,
    All,
    Any,
}

#[derive(Debug)]
enum Node {
    Lit(Lit),
    Column(String),
    Access(Access),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Power(Box<Expr>, Box<Expr>),
    /// `first op1 e1 op2 e2 ...` for one precedence level of arithmetic.
    Chain(Box<Expr>, Vec<(ArithOp, Expr)>),
    Compare(Box<Expr>, CmpOp, Box<Expr>),
    Range(Box<Expr>, CmpOp, Box<Expr>, CmpOp, Box<Expr>),
    Logic(LogicOp, Vec<Expr>),
    In(Box<Expr>, bool, Vec<Lit>),
    Like(Box<Expr>, String),
    IsNull(Box<Expr>, bool),
    Contains(Access, ContainsOp, Vec<Lit>),
    /// `array_length(..)`.
    Length(Access),
}

#[derive(Debug)]
struct Expr {
    node: Node,
    /// Char offset of the first token of the expression.
    pos: usize,
    ty: Ty,
    /// Height of the tree rooted here (bounded by `MAX_DEPTH`).
    depth: usize,
    /// Most `power()` calls on one root-to-leaf path.
    powers: usize,
    /// May be SQL NULL because a JSON key or array element is missing (or
    /// holds another type). Predicates over such values are rendered
    /// `((..) IS TRUE)` so that, as in Milvus, a missing key makes a
    /// comparison false rather than unknown (and `((..) IS NOT FALSE)` for
    /// `!=` / `not in`, which a missing key makes true).
    nullish: bool,
}

impl Expr {
    fn leaf(node: Node, pos: usize, ty: Ty) -> Expr {
        let nullish = matches!(node, Node::Access(_) | Node::Length(_));
        Expr {
            node,
            pos,
            ty,
            depth: 1,
            powers: 0,
            nullish,
        }
    }

    fn new(node: Node, pos: usize, ty: Ty) -> Result<Expr> {
        let depth = max_over_children(&node, |e| e.depth);
        if depth >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        let mut powers = max_over_children(&node, |e| e.powers);
        if let Node::Power(..) = node {
            powers += 1;
            if powers > MAX_POWER_NESTING {
                return Err(FilterError::new(
                    pos,
                    format!("more than {MAX_POWER_NESTING} nested '**' operators"),
                ));
            }
        }
        // Arithmetic over a possibly missing value may be NULL; predicates
        // settle it themselves.
        let nullish = match node {
            Node::Neg(_) | Node::Power(..) | Node::Chain(..) => {
                max_over_children(&node, |e| usize::from(e.nullish)) > 0
            }
            Node::Access(_) | Node::Length(_) => true,
            _ => false,
        };
        Ok(Expr {
            node,
            pos,
            ty,
            depth: depth + 1,
            powers,
            nullish,
        })
    }
}

/// Maximum of `f` over the direct children of `node` (0 for leaves).
fn max_over_children(node: &Node, f: impl Fn(&Expr) -> usize) -> usize {
    match node {
        Node::Lit(_) | Node::Column(_) | Node::Access(_) | Node::Contains(..) | Node::Length(_) => {
            0
        }
        Node::Neg(e) | Node::Not(e) | Node::In(e, ..) | Node::Like(e, _) => f(e),
        Node::IsNull(e, _) => f(e),
        Node::Power(a, b) | Node::Compare(a, _, b) => f(a).max(f(b)),
        Node::Chain(first, rest) => rest.iter().map(|(_, e)| f(e)).fold(f(first), usize::max),
        Node::Range(a, _, b, _, c) => f(a).max(f(b)).max(f(c)),
        Node::Logic(_, items) => items.iter().map(f).max().unwrap_or(0),
    }
}

fn too_deep(pos: usize) -> FilterError {
    FilterError::new(pos, "expression is too deeply nested")
}

/// Fixes the type of a JSON value (see [`Ty::Json`]) to `want` by picking its
/// typed getter; numbers read as floats (so `== 3` matches JSON `3` and
/// `3.0`, like Milvus) unless `exact_int` asks for integers. Other
/// expressions are left alone.
fn resolve(e: &mut Expr, want: Ty, exact_int: bool) {
    if e.ty != Ty::Json {
        return;
    }
    let getter = match want {
        Ty::Num if exact_int => Getter::Int,
        Ty::Num => Getter::Float,
        Ty::Str => Getter::Str,
        Ty::Bool => Getter::Bool,
        Ty::Json | Ty::Opaque => return,
    };
    if let Node::Access(access) = &mut e.node {
        access.getter = getter;
        e.ty = want;
    }
}

/// Checks that `e` has type `want` (a JSON value is read as `want` when that
/// is a number or a string; JSON is never a boolean condition by itself).
fn require(e: &mut Expr, want: Ty, op: &str) -> Result<()> {
    if matches!(want, Ty::Num | Ty::Str) {
        resolve(e, want, false);
    }
    if e.ty == want {
        return Ok(());
    }
    let want = match want {
        Ty::Bool => "boolean",
        Ty::Num => "numeric",
        Ty::Str => "a string",
        Ty::Json | Ty::Opaque => "a field",
    };
    Err(FilterError::new(
        e.pos,
        format!("operand of '{op}' must be {want}, got {}", e.ty.name()),
    ))
}

/// Checks that `a op b` compares compatible values, and types a JSON value
/// on one side after the other side.
fn require_comparable(a: &mut Expr, b: &mut Expr, op_tok: &Token, op: CmpOp) -> Result<()> {
    let ordering_bool = op.is_ordering() && (a.ty == Ty::Bool || b.ty == Ty::Bool);
    if !a.ty.comparable(b.ty) || ordering_bool {
        return Err(FilterError::new(
            op_tok.pos,
            format!(
                "cannot compare {} with {} using '{}'",
                a.ty.name(),
                b.ty.name(),
                op_tok.text
            ),
        ));
    }
    let exact_int = |other: &Expr| {
        !op.is_ordering() && matches!(&other.node, Node::Lit(lit) if needs_int_getter([lit]))
    };
    if a.ty == Ty::Json {
        let exact = exact_int(b);
        resolve(a, b.ty, exact);
    } else if b.ty == Ty::Json {
        let exact = exact_int(a);
        resolve(b, a.ty, exact);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// An operator still waiting for its right-hand operand. The parser keeps
/// these on an explicit stack instead of recursing, so hostile nesting can
/// only grow heap memory (and is capped by `MAX_DEPTH` anyway).
enum Frame {
    Paren {
        pos: usize,
    },
    Not {
        pos: usize,
    },
    Neg {
        pos: usize,
        negative: bool,
    },
    Pow {
        base: Expr,
    },
    Chain {
        first: Expr,
        rest: Vec<(ArithOp, Expr)>,
        pending: ArithOp,
    },
    Compare {
        left: Expr,
        op: CmpOp,
        op_tok: Token,
    },
    Rel {
        left: Expr,
        op: CmpOp,
        op_tok: Token,
    },
    Range {
        left: Expr,
        op1: CmpOp,
        mid: Expr,
        op2: CmpOp,
        op2_tok: Token,
    },
    Logic {
        op: LogicOp,
        items: Vec<Expr>,
    },
}

// Binding powers, loosest first, as in Milvus' `Plan.g4` (whose `expr` rule
// lists its alternatives tightest first): `or` < `and` < `== !=` <
// `< <= > >=` (and ranges) < `in` / `not in` < `+ -` < `* / %` < unary
// `- + not !` < `**` < `like` < `is [not] null` (which only follows a field).
// Binary operators are left-associative, `**` included.
const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_EQ: u8 = 3;
const PREC_REL: u8 = 4;
const PREC_IN: u8 = 5;
const PREC_ADD: u8 = 6;
const PREC_MUL: u8 = 7;
const PREC_UNARY: u8 = 8;
const PREC_POW: u8 = 9;
const PREC_LIKE: u8 = 10;
const PREC_IS: u8 = 11;

impl Frame {
    /// Binding power of the pending operator; 0 for an open parenthesis.
    fn prec(&self) -> u8 {
        match self {
            Frame::Paren { .. } => 0,
            Frame::Logic {
                op: LogicOp::Or, ..
            } => PREC_OR,
            Frame::Logic {
                op: LogicOp::And, ..
            } => PREC_AND,
            Frame::Compare { .. } => PREC_EQ,
            Frame::Rel { .. } | Frame::Range { .. } => PREC_REL,
            Frame::Chain { pending, .. } => pending.prec(),
            Frame::Not { .. } | Frame::Neg { .. } => PREC_UNARY,
            Frame::Pow { .. } => PREC_POW,
        }
    }
}

/// Precedence of `tok` in operator position, or `None` if it is not an
/// infix / postfix operator.
fn infix_prec(tok: &Tok, next: &Tok) -> Option<u8> {
    Some(match tok {
        Tok::Or => PREC_OR,
        Tok::And => PREC_AND,
        Tok::Eq | Tok::Ne => PREC_EQ,
        Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge => PREC_REL,
        Tok::In => PREC_IN,
        Tok::Not if *next == Tok::In => PREC_IN,
        Tok::Plus | Tok::Minus => PREC_ADD,
        Tok::Star | Tok::Slash | Tok::Percent => PREC_MUL,
        Tok::Pow => PREC_POW,
        Tok::Like => PREC_LIKE,
        Tok::Is => PREC_IS,
        _ => return None,
    })
}

/// What a field name (with its `[..]` path, if any) refers to.
enum FieldRef {
    /// A scalar column.
    Scalar(String, Ty),
    /// A whole JSON or ARRAY column.
    Whole(String, SourceKind),
    /// A value inside a JSON or ARRAY column.
    Access(Access, Ty),
}

struct Parser<'a> {
    tokens: Vec<Token>,
    idx: usize,
    /// Pending operators (see [`Frame`]).
    stack: Vec<Frame>,
    /// Number of parenthesis / prefix / `**` frames on `stack`.
    depth: usize,
    fields: &'a [FilterField<'a>],
    templates: &'a HashMap<String, TemplateValue>,
    /// The collection has a dynamic field (`$meta`): undeclared names are
    /// its keys.
    dynamic: bool,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.idx].tok
    }

    fn peek_at(&self, k: usize) -> &Tok {
        let i = (self.idx + k).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn current(&self) -> &Token {
        &self.tokens[self.idx]
    }

    /// Consumes the current token (never moves past `Eof`).
    fn bump(&mut self) -> Token {
        let tok = self.tokens[self.idx].clone();
        if self.idx + 1 < self.tokens.len() {
            self.idx += 1;
        }
        tok
    }

    fn unexpected(&self) -> FilterError {
        let tok = self.current();
        if tok.tok == Tok::Eof {
            FilterError::new(tok.pos, "unexpected end of expression")
        } else {
            FilterError::new(tok.pos, format!("unexpected token '{}'", tok.text))
        }
    }

    fn expected(&self, what: &str) -> FilterError {
        let tok = self.current();
        let found = if tok.tok == Tok::Eof {
            "end of expression".to_string()
        } else {
            format!("'{}'", tok.text)
        };
        FilterError::new(tok.pos, format!("expected {what}, found {found}"))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token> {
        if *self.peek() == tok {
            Ok(self.bump())
        } else {
            Err(self.expected(what))
        }
    }

    /// Pushes a parenthesis, prefix or `**` frame, enforcing `MAX_DEPTH`.
    fn push_nested(&mut self, frame: Frame, pos: usize) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        self.depth += 1;
        self.stack.push(frame);
        Ok(())
    }

    /// Parses a whole expression (operator-precedence parsing with an
    /// explicit stack; no recursion).
    fn parse_expression(&mut self) -> Result<Expr> {
        'operand: loop {
            let mut operand = self.parse_operand()?;
            // Set once `in` / `like` / `is null` has been applied: another of
            // them may not follow directly (`x in [1] in [2]`).
            let mut after_postfix = false;
            loop {
                let tok = self.current().clone();
                let Some(prec) = infix_prec(&tok.tok, self.peek_at(1)) else {
                    match tok.tok {
                        Tok::RParen | Tok::Eof => {}
                        Tok::Not => {
                            self.bump();
                            return Err(self.expected("'in' after 'not'"));
                        }
                        _ if self.stack.iter().any(|f| matches!(f, Frame::Paren { .. })) => {
                            return Err(self.expected("')'"));
                        }
                        _ => return Err(self.unexpected()),
                    }
                    operand = self.reduce_above(operand, 0)?;
                    match self.stack.pop() {
                        None if tok.tok == Tok::Eof => return Ok(operand),
                        None => return Err(self.unexpected()),
                        Some(Frame::Paren { pos }) if tok.tok == Tok::RParen => {
                            self.depth -= 1;
                            self.bump();
                            operand.pos = pos;
                            after_postfix = false;
                            continue;
                        }
                        Some(_) => return Err(self.expected("')'")),
                    }
                };
                operand = self.reduce_above(operand, prec)?;
                match tok.tok {
                    Tok::Or | Tok::And => {
                        let op = if tok.tok == Tok::Or {
                            LogicOp::Or
                        } else {
                            LogicOp::And
                        };
                        self.bump();
                        require(&mut operand, Ty::Bool, op.name())?;
                        match self.stack.last_mut() {
                            Some(Frame::Logic { op: top, items }) if *top == op => {
                                items.push(operand);
                            }
                            _ => self.stack.push(Frame::Logic {
                                op,
                                items: vec![operand],
                            }),
                        }
                    }
                    Tok::Eq | Tok::Ne => {
                        let op = if tok.tok == Tok::Eq {
                            CmpOp::Eq
                        } else {
                            CmpOp::Ne
                        };
                        let op_tok = self.bump();
                        self.stack.push(Frame::Compare {
                            left: operand,
                            op,
                            op_tok,
                        });
                    }
                    Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge => self.relational(operand)?,
                    Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent => {
                        let op = match tok.tok {
                            Tok::Plus => ArithOp::Add,
                            Tok::Minus => ArithOp::Sub,
                            Tok::Star => ArithOp::Mul,
                            Tok::Slash => ArithOp::Div,
                            _ => ArithOp::Mod,
                        };
                        self.bump();
                        match self.stack.last_mut() {
                            Some(Frame::Chain { rest, pending, .. })
                                if pending.prec() == op.prec() =>
                            {
                                require(&mut operand, Ty::Num, pending.sql())?;
                                rest.push((*pending, operand));
                                *pending = op;
                            }
                            _ => {
                                require(&mut operand, Ty::Num, op.sql())?;
                                self.stack.push(Frame::Chain {
                                    first: operand,
                                    rest: Vec::new(),
                                    pending: op,
                                });
                            }
                        }
                    }
                    Tok::Pow => {
                        self.bump();
                        require(&mut operand, Ty::Num, "**")?;
                        self.push_nested(Frame::Pow { base: operand }, tok.pos)?;
                    }
                    _ => {
                        if after_postfix {
                            return Err(self.unexpected());
                        }
                        operand = self.postfix(operand)?;
                        after_postfix = true;
                        continue;
                    }
                }
                continue 'operand;
            }
        }
    }

    /// Parses prefix operators (pushing frames) up to and including the
    /// next atom, which is returned.
    fn parse_operand(&mut self) -> Result<Expr> {
        loop {
            let tok = self.current().clone();
            match tok.tok {
                Tok::Not => {
                    self.bump();
                    self.push_nested(Frame::Not { pos: tok.pos }, tok.pos)?;
                }
                Tok::LParen => {
                    self.bump();
                    self.push_nested(Frame::Paren { pos: tok.pos }, tok.pos)?;
                }
                Tok::Minus | Tok::Plus => {
                    self.bump();
                    let negative = tok.tok == Tok::Minus;
                    // Fold the sign into a directly following numeric literal
                    // (so that i64::MIN is expressible), unless `**` binds
                    // the literal first (`-2 ** 2` is `-(2 ** 2)`).
                    if *self.peek_at(1) != Tok::Pow {
                        let folded = match self.peek().clone() {
                            Tok::Int(v) => {
                                let v = v as i128;
                                Some(int_lit(if negative { -v } else { v }, tok.pos)?)
                            }
                            Tok::Float(s) => {
                                Some(Lit::Float(if negative { format!("-{s}") } else { s }))
                            }
                            _ => None,
                        };
                        if let Some(lit) = folded {
                            self.bump();
                            return Ok(Expr::leaf(Node::Lit(lit), tok.pos, Ty::Num));
                        }
                    }
                    self.push_nested(
                        Frame::Neg {
                            pos: tok.pos,
                            negative,
                        },
                        tok.pos,
                    )?;
                }
                _ => return self.parse_atom(),
            }
        }
    }

    /// Pops and applies every frame that binds tighter than an incoming
    /// operator of precedence `prec` (0: everything up to an open paren).
    fn reduce_above(&mut self, mut operand: Expr, prec: u8) -> Result<Expr> {
        while let Some(top) = self.stack.last() {
            let top_prec = top.prec();
            // `==` / `!=` and `**` are left-associative; chains, logic and
            // ranges at equal precedence are handled by the caller.
            let left_assoc =
                top_prec == prec && matches!(top, Frame::Compare { .. } | Frame::Pow { .. });
            if top_prec == 0 || !(top_prec > prec || left_assoc) {
                break;
            }
            let Some(frame) = self.stack.pop() else {
                break;
            };
            operand = self.reduce(frame, operand)?;
        }
        Ok(operand)
    }

    /// Applies one frame to its right-hand operand.
    fn reduce(&mut self, frame: Frame, mut operand: Expr) -> Result<Expr> {
        match frame {
            Frame::Paren { pos } => Ok(Expr { pos, ..operand }),
            Frame::Not { pos } => {
                self.depth -= 1;
                require(&mut operand, Ty::Bool, "not")?;
                Expr::new(Node::Not(Box::new(operand)), pos, Ty::Bool)
            }
            Frame::Neg { pos, negative } => {
                self.depth -= 1;
                require(&mut operand, Ty::Num, if negative { "-" } else { "+" })?;
                if !negative {
                    return Ok(operand);
                }
                Expr::new(Node::Neg(Box::new(operand)), pos, Ty::Num)
            }
            Frame::Pow { base } => {
                self.depth -= 1;
                require(&mut operand, Ty::Num, "**")?;
                let pos = base.pos;
                Expr::new(Node::Power(Box::new(base), Box::new(operand)), pos, Ty::Num)
            }
            Frame::Chain {
                first,
                mut rest,
                pending,
            } => {
                require(&mut operand, Ty::Num, pending.sql())?;
                rest.push((pending, operand));
                let pos = first.pos;
                Expr::new(Node::Chain(Box::new(first), rest), pos, Ty::Num)
            }
            Frame::Compare {
                mut left,
                op,
                op_tok,
            }
            | Frame::Rel {
                mut left,
                op,
                op_tok,
            } => {
                require_comparable(&mut left, &mut operand, &op_tok, op)?;
                let pos = left.pos;
                Expr::new(
                    Node::Compare(Box::new(left), op, Box::new(operand)),
                    pos,
                    Ty::Bool,
                )
            }
            Frame::Range {
                left,
                op1,
                mut mid,
                op2,
                op2_tok,
            } => {
                require_comparable(&mut mid, &mut operand, &op2_tok, op2)?;
                let pos = left.pos;
                Expr::new(
                    Node::Range(Box::new(left), op1, Box::new(mid), op2, Box::new(operand)),
                    pos,
                    Ty::Bool,
                )
            }
            Frame::Logic { op, mut items } => {
                require(&mut operand, Ty::Bool, op.name())?;
                items.push(operand);
                let pos = items[0].pos;
                Expr::new(Node::Logic(op, items), pos, Ty::Bool)
            }
        }
    }

    /// Handles `< <= > >=`: pushes a comparison frame, or turns a pending
    /// one into a range (`1 < x <= 5`, `5 > x > 1`).
    fn relational(&mut self, mut operand: Expr) -> Result<()> {
        let Some(op) = CmpOp::relational(self.peek()) else {
            return Err(self.unexpected());
        };
        if matches!(self.stack.last(), Some(Frame::Range { .. })) {
            return Err(self.unexpected());
        }
        let tok = self.bump();
        match self.stack.pop() {
            Some(Frame::Rel {
                mut left,
                op: op1,
                op_tok: op1_tok,
            }) => {
                require_comparable(&mut left, &mut operand, &op1_tok, op1)?;
                if op1.is_less() != op.is_less() {
                    return Err(FilterError::new(
                        tok.pos,
                        format!(
                            "cannot chain '{}' with '{}'; use 'and' instead",
                            op1_tok.text, tok.text
                        ),
                    ));
                }
                self.stack.push(Frame::Range {
                    left,
                    op1,
                    mid: operand,
                    op2: op,
                    op2_tok: tok,
                });
            }
            other => {
                self.stack.extend(other);
                self.stack.push(Frame::Rel {
                    left: operand,
                    op,
                    op_tok: tok,
                });
            }
        }
        Ok(())
    }

    /// Applies a postfix operator: `in` / `not in` with its list, `like`
    /// with its pattern, `is [not] null`.
    fn postfix(&mut self, mut operand: Expr) -> Result<Expr> {
        let tok = self.bump();
        let pos = operand.pos;
        match tok.tok {
            Tok::In => self.parse_in(operand, false),
            Tok::Not => {
                self.bump();
                self.parse_in(operand, true)
            }
            Tok::Like => {
                require(&mut operand, Ty::Str, "like")?;
                let pattern = self.parse_pattern()?;
                Expr::new(Node::Like(Box::new(operand), pattern), pos, Ty::Bool)
            }
            _ => {
                // `is not null` is case-insensitive as a whole.
                let negated = match self.peek() {
                    Tok::Not => true,
                    Tok::Ident(word) => word.eq_ignore_ascii_case("not"),
                    _ => false,
                };
                if negated {
                    self.bump();
                }
                self.expect(Tok::Null, "'null'")?;
                let what = if negated { "is not null" } else { "is null" };
                if !matches!(operand.node, Node::Column(_) | Node::Access(_)) {
                    return Err(FilterError::new(
                        pos,
                        format!("operand of '{what}' must be a field"),
                    ));
                }
                Expr::new(Node::IsNull(Box::new(operand), negated), pos, Ty::Bool)
            }
        }
    }

    /// Parses the list after `in` / `not in`.
    fn parse_in(&mut self, mut left: Expr, negated: bool) -> Result<Expr> {
        let pos = left.pos;
        let items = self.parse_list("'[' or a template variable after 'in'", "after 'in'")?;
        for (lit, item_pos) in &items {
            if !left.ty.comparable(lit.ty()) {
                return Err(FilterError::new(
                    *item_pos,
                    format!(
                        "cannot compare {} with {} in 'in' list",
                        left.ty.name(),
                        lit.ty().name()
                    ),
                ));
            }
        }
        let lits: Vec<Lit> = items.into_iter().map(|(lit, _)| lit).collect();
        // A JSON value meeting items of one type is read as that type; with
        // mixed types it stays unresolved and is read once per type.
        if let Some(first) = lits.first() {
            if lits.iter().all(|lit| lit.ty() == first.ty()) {
                resolve(&mut left, first.ty(), needs_int_getter(&lits));
            }
        }
        Expr::new(Node::In(Box::new(left), negated, lits), pos, Ty::Bool)
    }

    /// Parses `[literal, ...]` (a trailing comma is allowed) or a template
    /// variable holding an array; returns each literal with its position.
    /// `what` describes the expected list in errors; `site` says where the
    /// list stands (`after 'in'`), for template errors.
    fn parse_list(&mut self, what: &str, site: &str) -> Result<Vec<(Lit, usize)>> {
        let mut items: Vec<(Lit, usize)> = Vec::new();
        match self.peek() {
            Tok::LBracket => {
                self.bump();
                loop {
                    if *self.peek() == Tok::RBracket {
                        self.bump();
                        break;
                    }
                    let item_pos = self.current().pos;
                    items.push((self.parse_literal("a literal or ']'")?, item_pos));
                    match self.peek() {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RBracket => {
                            self.bump();
                            break;
                        }
                        _ => return Err(self.expected("',' or ']'")),
                    }
                }
            }
            Tok::LBrace => {
                let (name, brace_pos) = self.parse_template_name()?;
                match self.template(&name, brace_pos)? {
                    TemplateValue::Array(values) => {
                        for value in values {
                            items.push((template_lit(value, &name, brace_pos)?, brace_pos));
                        }
                    }
                    _ => {
                        return Err(FilterError::new(
                            brace_pos,
                            format!("template variable {name} must be an array {site}"),
                        ));
                    }
                }
            }
            _ => return Err(self.expected(what)),
        }
        Ok(items)
    }

    /// Parses one literal: a number (optionally signed), string, boolean or
    /// a scalar template variable. `what` describes it in errors.
    fn parse_literal(&mut self, what: &str) -> Result<Lit> {
        match self.peek().clone() {
            Tok::Int(v) => {
                let tok = self.bump();
                int_lit(v as i128, tok.pos)
            }
            Tok::Float(s) => {
                self.bump();
                Ok(Lit::Float(s))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Lit::Str(s))
            }
            Tok::Bool(b) => {
                self.bump();
                Ok(Lit::Bool(b))
            }
            Tok::Plus | Tok::Minus => {
                let sign = self.bump();
                let negative = sign.tok == Tok::Minus;
                match self.peek().clone() {
                    Tok::Int(v) => {
                        self.bump();
                        let v = v as i128;
                        int_lit(if negative { -v } else { v }, sign.pos)
                    }
                    Tok::Float(s) => {
                        self.bump();
                        Ok(Lit::Float(if negative { format!("-{s}") } else { s }))
                    }
                    _ => Err(self.expected("a number")),
                }
            }
            Tok::LBrace => {
                let (name, brace_pos) = self.parse_template_name()?;
                let value = self.template(&name, brace_pos)?;
                template_lit(value, &name, brace_pos)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn parse_pattern(&mut self) -> Result<String> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(s)
            }
            Tok::LBrace => {
                let (name, brace_pos) = self.parse_template_name()?;
                match self.template(&name, brace_pos)? {
                    TemplateValue::String(s) => Ok(s.clone()),
                    _ => Err(FilterError::new(
                        brace_pos,
                        format!("template variable {name} must be a string after 'like'"),
                    )),
                }
            }
            _ => Err(self.expected("a string pattern after 'like'")),
        }
    }

    /// Parses `{name}`; returns the name and the position of `{`.
    fn parse_template_name(&mut self) -> Result<(String, usize)> {
        let brace = self.expect(Tok::LBrace, "'{'")?;
        let name = match self.peek().clone() {
            Tok::Ident(name) => {
                self.bump();
                name
            }
            _ => return Err(self.expected("a template variable name")),
        };
        self.expect(Tok::RBrace, "'}'")?;
        Ok((name, brace.pos))
    }

    fn template(&self, name: &str, pos: usize) -> Result<&'a TemplateValue> {
        self.templates
            .get(name)
            .ok_or_else(|| FilterError::new(pos, format!("template variable {name} not found")))
    }

    /// Parses a literal, template placeholder, field reference or function
    /// call.
    fn parse_atom(&mut self) -> Result<Expr> {
        let tok = self.current().clone();
        let lit = match &tok.tok {
            Tok::Int(v) => Some(int_lit(*v as i128, tok.pos)?),
            Tok::Float(s) => Some(Lit::Float(s.clone())),
            Tok::Str(s) => Some(Lit::Str(s.clone())),
            Tok::Bool(b) => Some(Lit::Bool(*b)),
            _ => None,
        };
        if let Some(lit) = lit {
            self.bump();
            let ty = lit.ty();
            return Ok(Expr::leaf(Node::Lit(lit), tok.pos, ty));
        }
        match &tok.tok {
            Tok::LBrace => {
                let (name, pos) = self.parse_template_name()?;
                let value = self.template(&name, pos)?;
                if matches!(value, TemplateValue::Array(_)) {
                    return Err(FilterError::new(
                        pos,
                        format!(
                            "template variable {name} is an array; arrays are only allowed after 'in' / 'not in'"
                        ),
                    ));
                }
                let lit = template_lit(value, &name, pos)?;
                let ty = lit.ty();
                Ok(Expr::leaf(Node::Lit(lit), pos, ty))
            }
            Tok::LBracket => Err(FilterError::new(
                tok.pos,
                "array literals are only allowed after 'in' / 'not in'",
            )),
            Tok::Ident(name) => {
                self.bump();
                self.parse_identifier(name.clone(), tok.pos)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn parse_identifier(&mut self, name: String, pos: usize) -> Result<Expr> {
        if *self.peek() == Tok::LParen {
            return self.parse_call(name, pos);
        }
        match self.parse_field_ref(name, pos)? {
            FieldRef::Scalar(name, ty) => Ok(Expr::leaf(Node::Column(name), pos, ty)),
            FieldRef::Access(access, ty) => Ok(Expr::leaf(Node::Access(access), pos, ty)),
            FieldRef::Whole(name, kind) => {
                if *self.peek() == Tok::Is {
                    return Ok(Expr::leaf(Node::Column(name), pos, Ty::Opaque));
                }
                let message = match kind {
                    SourceKind::Json => format!(
                        "JSON field {name} cannot be used directly; use a key path such as {name}[\"key\"]"
                    ),
                    SourceKind::Array(_) => format!(
                        "array field {name} cannot be used directly; use an index such as {name}[0], array_contains or array_length"
                    ),
                };
                Err(FilterError::new(pos, message))
            }
        }
    }

    /// Resolves a field name (the identifier at `pos`, already consumed)
    /// and the `[..]` path after it, if any. An undeclared name is a key of
    /// the dynamic field when the collection has one.
    fn parse_field_ref(&mut self, name: String, pos: usize) -> Result<FieldRef> {
        let (column, kind, mut path) = match self.fields.iter().find(|f| f.name == name) {
            Some(field) => {
                let kind = match field.kind {
                    FieldKind::Json => SourceKind::Json,
                    FieldKind::Array => SourceKind::Array(None),
                    FieldKind::ArrayOf(element) => SourceKind::Array(Some(element)),
                    FieldKind::Vector => {
                        return Err(FilterError::new(
                            pos,
                            format!("vector field {name} cannot be used in a filter"),
                        ));
                    }
                    scalar => {
                        if *self.peek() == Tok::LBracket {
                            return Err(FilterError::new(
                                pos,
                                format!(
                                    "field {name} is not a JSON or array field and cannot be indexed"
                                ),
                            ));
                        }
                        let ty = match scalar {
                            FieldKind::Bool => Ty::Bool,
                            FieldKind::String => Ty::Str,
                            _ => Ty::Num,
                        };
                        return Ok(FieldRef::Scalar(name, ty));
                    }
                };
                (name, kind, Vec::new())
            }
            None if name.eq_ignore_ascii_case("exists") => {
                return Err(FilterError::new(pos, "exists is not supported yet"));
            }
            None if self.dynamic => (
                DYNAMIC_FIELD.to_string(),
                SourceKind::Json,
                vec![PathElem::Key(name)],
            ),
            None => return Err(FilterError::new(pos, format!("field {name} not exist"))),
        };
        let first_step = self.current().pos;
        self.parse_path(&mut path)?;
        if path.is_empty() {
            return Ok(FieldRef::Whole(column, kind));
        }
        let (getter, ty) = match kind {
            SourceKind::Json => (Getter::Unresolved, Ty::Json),
            SourceKind::Array(element) => {
                if let Some(PathElem::Key(_)) = path.first() {
                    return Err(FilterError::new(
                        first_step,
                        format!("array field {column} can only be indexed with an integer"),
                    ));
                }
                match element {
                    Some(_) if path.len() > 1 => {
                        return Err(FilterError::new(
                            pos,
                            format!(
                                "elements of array field {column} are scalars; use a single index"
                            ),
                        ));
                    }
                    Some(element) => element.getter(),
                    None => (Getter::Unresolved, Ty::Json),
                }
            }
        };
        let access = Access {
            column,
            path,
            kind,
            getter,
        };
        Ok(FieldRef::Access(access, ty))
    }

    /// Parses `["key"]` / `[0]` steps onto `path`.
    fn parse_path(&mut self, path: &mut Vec<PathElem>) -> Result<()> {
        while *self.peek() == Tok::LBracket {
            self.bump();
            let tok = self.current().clone();
            let step = match tok.tok {
                Tok::Str(key) if key.is_empty() => {
                    return Err(FilterError::new(tok.pos, "JSON key must not be empty"));
                }
                Tok::Str(key) => PathElem::Key(key),
                // Milvus takes decimal indexes only (no sign, radix or
                // leading zero).
                Tok::Int(index)
                    if tok.text.bytes().all(|b| b.is_ascii_digit())
                        && (tok.text.len() == 1 || !tok.text.starts_with('0')) =>
                {
                    match i64::try_from(index) {
                        Ok(index) => PathElem::Index(index),
                        Err(_) => {
                            return Err(FilterError::new(tok.pos, "array index out of range"));
                        }
                    }
                }
                _ => return Err(self.expected("a quoted JSON key or an array index")),
            };
            self.bump();
            path.push(step);
            self.expect(Tok::RBracket, "']'")?;
        }
        Ok(())
    }

    /// Parses a function call; the name (at `pos`) is consumed and `(` is
    /// next.
    fn parse_call(&mut self, name: String, pos: usize) -> Result<Expr> {
        let func = name.to_ascii_lowercase();
        let op = match func.as_str() {
            "json_contains" | "array_contains" => Some(ContainsOp::One),
            "json_contains_all" | "array_contains_all" => Some(ContainsOp::All),
            "json_contains_any" | "array_contains_any" => Some(ContainsOp::Any),
            "array_length" => None,
            _ => {
                return Err(FilterError::new(
                    pos,
                    format!("{func} is not supported yet"),
                ))
            }
        };
        let arity = if op.is_some() {
            "2 arguments"
        } else {
            "1 argument"
        };
        let wrong_arity =
            |p: &Self| FilterError::new(p.current().pos, format!("{func} expects {arity}"));
        self.bump(); // `(`
        if *self.peek() == Tok::RParen {
            return Err(wrong_arity(self));
        }
        let source = self.parse_source_arg(&func)?;
        let Some(op) = op else {
            match self.peek() {
                Tok::RParen => self.bump(),
                Tok::Comma => return Err(wrong_arity(self)),
                _ => return Err(self.expected("')'")),
            };
            return Ok(Expr::leaf(Node::Length(source), pos, Ty::Num));
        };
        match self.peek() {
            Tok::Comma => self.bump(),
            Tok::RParen => return Err(wrong_arity(self)),
            _ => return Err(self.expected("','")),
        };
        let values = self.parse_contains_values(&func, op)?;
        match self.peek() {
            Tok::RParen => self.bump(),
            Tok::Comma => return Err(wrong_arity(self)),
            _ => return Err(self.expected("')'")),
        };
        if let SourceKind::Array(Some(element)) = source.kind {
            for (lit, lit_pos) in &values {
                if !element.accepts(lit) {
                    return Err(FilterError::new(
                        *lit_pos,
                        format!(
                            "array field {} holds {} elements; {func} cannot look for a {}",
                            source.column,
                            element.name(),
                            lit.ty().name()
                        ),
                    ));
                }
            }
        }
        let lits = values.into_iter().map(|(lit, _)| lit).collect();
        Ok(Expr::leaf(Node::Contains(source, op, lits), pos, Ty::Bool))
    }

    /// Parses the first argument of a JSON / array function: a JSON field, a
    /// JSON path (a dynamic field key included) or an array field.
    fn parse_source_arg(&mut self, func: &str) -> Result<Access> {
        let tok = self.current().clone();
        let what =
            format!("first argument of {func} must be a JSON field, a JSON path or an array field");
        let Tok::Ident(name) = tok.tok else {
            return Err(FilterError::new(tok.pos, what));
        };
        self.bump();
        let access = match self.parse_field_ref(name, tok.pos)? {
            FieldRef::Whole(column, kind) => Access {
                column,
                path: Vec::new(),
                kind,
                getter: Getter::Unresolved,
            },
            FieldRef::Access(access, _) if !matches!(access.kind, SourceKind::Array(Some(_))) => {
                access
            }
            FieldRef::Access(..) => {
                return Err(FilterError::new(
                    tok.pos,
                    format!("{what}, got an array element"),
                ));
            }
            FieldRef::Scalar(name, _) => {
                return Err(FilterError::new(
                    tok.pos,
                    format!("{what}, got field {name}"),
                ));
            }
        };
        if *self.peek() == Tok::LParen {
            return Err(FilterError::new(tok.pos, what));
        }
        Ok(access)
    }

    /// Parses the second argument of `json_contains` (one literal) or of the
    /// `_all` / `_any` forms (a list).
    fn parse_contains_values(&mut self, func: &str, op: ContainsOp) -> Result<Vec<(Lit, usize)>> {
        let pos = self.current().pos;
        if op != ContainsOp::One {
            let what = format!("an array as the second argument of {func}");
            return self.parse_list(&what, &format!("in {func}"));
        }
        let array_value = || {
            FilterError::new(
                pos,
                format!(
                    "{func} with an array value is not supported yet; use {func}_all or {func}_any"
                ),
            )
        };
        match self.peek() {
            Tok::LBracket => Err(array_value()),
            Tok::LBrace => {
                let (name, brace_pos) = self.parse_template_name()?;
                let value = self.template(&name, brace_pos)?;
                if matches!(value, TemplateValue::Array(_)) {
                    return Err(array_value());
                }
                Ok(vec![(template_lit(value, &name, brace_pos)?, brace_pos)])
            }
            _ => Ok(vec![(self.parse_literal("a literal")?, pos)]),
        }
    }
}

fn int_lit(value: i128, pos: usize) -> Result<Lit> {
    i64::try_from(value)
        .map(Lit::Int)
        .map_err(|_| FilterError::new(pos, "integer literal out of range"))
}

fn template_lit(value: &TemplateValue, name: &str, pos: usize) -> Result<Lit> {
    Ok(match value {
        TemplateValue::Bool(b) => Lit::Bool(*b),
        TemplateValue::Int(i) => Lit::Int(*i),
        TemplateValue::Float(f) if f.is_finite() => Lit::Float(format!("{f:?}")),
        TemplateValue::Float(_) => {
            return Err(FilterError::new(
                pos,
                format!("template variable {name} is not a finite number"),
            ));
        }
        TemplateValue::String(s) => Lit::Str(s.clone()),
        TemplateValue::Array(_) => {
            return Err(FilterError::new(
                pos,
                format!("template variable {name} contains a nested array"),
            ));
        }
    })
}

// ---------------------------------------------------------------------------
// SQL rendering
// ---------------------------------------------------------------------------

fn emit(e: &Expr, out: &mut String) {
    match &e.node {
        Node::Lit(lit) => emit_lit(lit, out),
        Node::Column(name) => emit_ident(name, out),
        Node::Access(access) => emit_access(access, access.getter.sql(), out),
        Node::Neg(inner) => {
            // The space keeps `- -1` from turning into a `--` comment.
            out.push_str("(- ");
            emit(inner, out);
            out.push(')');
        }
        Node::Not(inner) => match inner.node {
            Node::Column(_) | Node::Lit(_) | Node::Access(_) => {
                out.push_str("(NOT ");
                emit(inner, out);
                out.push(')');
            }
            _ => {
                // `x = FALSE` equals `NOT x` under three-valued logic; it
                // avoids `NOT (`, on which sqlparser backtracks
                // exponentially when nested.
                out.push('(');
                emit(inner, out);
                out.push_str(" = FALSE)");
            }
        },
        Node::Power(base, exponent) => {
            out.push_str("power(");
            emit(base, out);
            out.push_str(", ");
            emit(exponent, out);
            out.push(')');
        }
        Node::Chain(first, rest) => {
            out.push('(');
            emit(first, out);
            for (op, operand) in rest {
                out.push(' ');
                out.push_str(op.sql());
                out.push(' ');
                emit(operand, out);
            }
            out.push(')');
        }
        Node::Compare(left, op, right) => {
            let missing = (left.nullish || right.nullish).then_some(*op == CmpOp::Ne);
            open_predicate(missing, out);
            emit(left, out);
            out.push(' ');
            out.push_str(op.sql());
            out.push(' ');
            emit(right, out);
            close_predicate(missing, out);
        }
        Node::Range(lo, op1, mid, op2, hi) => {
            let missing = (lo.nullish || mid.nullish || hi.nullish).then_some(false);
            open_predicate(missing, out);
            emit(lo, out);
            out.push(' ');
            out.push_str(op1.sql());
            out.push(' ');
            emit(mid, out);
            out.push_str(" AND ");
            emit(mid, out);
            out.push(' ');
            out.push_str(op2.sql());
            out.push(' ');
            emit(hi, out);
            close_predicate(missing, out);
        }
        Node::Logic(op, items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                    out.push_str(op.sql());
                    out.push(' ');
                }
                emit(item, out);
            }
            out.push(')');
        }
        Node::In(inner, negated, items) => emit_in(inner, *negated, items, out),
        Node::Like(inner, pattern) => {
            let missing = inner.nullish.then_some(false);
            open_predicate(missing, out);
            emit(inner, out);
            out.push_str(" LIKE ");
            emit_str(pattern, out);
            close_predicate(missing, out);
        }
        Node::IsNull(inner, negated) => {
            out.push('(');
            match &inner.node {
                // A missing key and a JSON `null` both read as NULL.
                Node::Access(access) => emit_access(access, "json_as_text", out),
                _ => emit(inner, out),
            }
            out.push_str(if *negated {
                " IS NOT NULL)"
            } else {
                " IS NULL)"
            });
        }
        Node::Contains(source, op, items) => emit_contains(source, *op, items, out),
        Node::Length(source) => match (source.kind, source.path.is_empty()) {
            // An ARRAY field always holds a JSON array.
            (SourceKind::Array(_), true) => emit_access(source, "json_length", out),
            // `json_length` also counts object keys; Milvus only measures
            // arrays.
            _ => {
                out.push_str("cardinality(");
                emit_access(source, "json_get_array", out);
                out.push(')');
            }
        },
    }
}

/// Opens a predicate: `(` normally, `((` when an operand may be missing
/// (`missing` is then the value a missing operand gives, applied by
/// [`close_predicate`] as `IS TRUE` / `IS NOT FALSE`; cheaper for sqlparser
/// than a `COALESCE(..)` call, since nested calls parse in exponential time).
fn open_predicate(missing: Option<bool>, out: &mut String) {
    out.push_str(if missing.is_some() { "((" } else { "(" });
}

fn close_predicate(missing: Option<bool>, out: &mut String) {
    out.push_str(match missing {
        None => ")",
        Some(true) => ") IS NOT FALSE)",
        Some(false) => ") IS TRUE)",
    });
}

/// `x [NOT] IN (..)`. A JSON value of no fixed type meeting items of several
/// types is read once per type: `json_get_str(..) IN ('a') OR
/// json_get_float(..) IN (1)`.
fn emit_in(inner: &Expr, negated: bool, items: &[Lit], out: &mut String) {
    if items.is_empty() {
        out.push_str(if negated { "TRUE" } else { "FALSE" });
        return;
    }
    let missing = inner.nullish.then_some(negated);
    open_predicate(missing, out);
    let groups: Vec<(Getter, Vec<&Lit>)> = match &inner.node {
        Node::Access(access) if access.getter == Getter::Unresolved => group_by_type(items)
            .into_iter()
            .map(|(ty, lits)| {
                let exact = needs_int_getter(lits.iter().copied());
                let getter = match ty {
                    Ty::Str => Getter::Str,
                    Ty::Bool => Getter::Bool,
                    _ if exact => Getter::Int,
                    _ => Getter::Float,
                };
                (getter, lits)
            })
            .collect(),
        _ => vec![(Getter::Unresolved, items.iter().collect())],
    };
    for (i, (getter, lits)) in groups.iter().enumerate() {
        if i > 0 {
            out.push_str(if negated { " AND " } else { " OR " });
        }
        match (&inner.node, getter) {
            (Node::Access(access), Getter::Float | Getter::Int | Getter::Str | Getter::Bool) => {
                emit_access(access, getter.sql(), out);
            }
            _ => emit(inner, out),
        }
        out.push_str(if negated { " NOT IN (" } else { " IN (" });
        for (j, lit) in lits.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            emit_lit(lit, out);
        }
        out.push(')');
    }
    close_predicate(missing, out);
}

/// Splits literals by type (strings, numbers, booleans), in order of first
/// appearance.
fn group_by_type(items: &[Lit]) -> Vec<(Ty, Vec<&Lit>)> {
    let mut groups: Vec<(Ty, Vec<&Lit>)> = Vec::new();
    for lit in items {
        match groups.iter_mut().find(|(ty, _)| *ty == lit.ty()) {
            Some((_, lits)) => lits.push(lit),
            None => groups.push((lit.ty(), vec![lit])),
        }
    }
    groups
}

/// `json_contains` & co. The JSON array is read with `json_get_array`, a list
/// of each element's JSON text: strings and booleans are looked up by their
/// JSON text (`'"red"'`, `'true'`), numbers after `TRY_CAST` to a numeric
/// list (so `3` finds `3` and `3.0`, and no string or boolean element casts).
fn emit_contains(source: &Access, op: ContainsOp, items: &[Lit], out: &mut String) {
    if items.is_empty() {
        if op == ContainsOp::All {
            // Every array contains all of nothing.
            out.push('(');
            emit_access(source, "json_get_array", out);
            out.push_str(" IS NOT NULL)");
        } else {
            out.push_str("FALSE");
        }
        return;
    }
    let func = match op {
        ContainsOp::One => "array_has",
        ContainsOp::All => "array_has_all",
        ContainsOp::Any => "array_has_any",
    };
    let groups = group_by_type(items);
    let multi = groups.len() > 1;
    out.push_str(if multi { "((" } else { "(" });
    for (i, (ty, lits)) in groups.into_iter().enumerate() {
        if i > 0 {
            out.push_str(if op == ContainsOp::All {
                " AND "
            } else {
                " OR "
            });
        }
        out.push_str(func);
        out.push('(');
        if ty == Ty::Num {
            let exact = match source.kind {
                SourceKind::Array(Some(ElementKind::Int)) => {
                    lits.iter().all(|lit| matches!(lit, Lit::Int(_)))
                }
                _ => needs_int_getter(lits.iter().copied()),
            };
            out.push_str("TRY_CAST(");
            emit_access(source, "json_get_array", out);
            out.push_str(if exact {
                " AS BIGINT[])"
            } else {
                " AS DOUBLE[])"
            });
        } else {
            emit_access(source, "json_get_array", out);
        }
        out.push_str(", ");
        if op != ContainsOp::One {
            out.push_str("make_array(");
        }
        for (j, lit) in lits.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            match lit {
                Lit::Str(s) => emit_str(&json_text(s), out),
                Lit::Bool(true) => out.push_str("'true'"),
                Lit::Bool(false) => out.push_str("'false'"),
                Lit::Int(_) | Lit::Float(_) => emit_lit(lit, out),
            }
        }
        if op != ContainsOp::One {
            out.push(')');
        }
        out.push(')');
    }
    if multi {
        out.push(')');
    }
    out.push_str(" IS TRUE)");
}

/// `func("column", 'key', 0, ...)`.
fn emit_access(access: &Access, func: &str, out: &mut String) {
    out.push_str(func);
    out.push('(');
    emit_ident(&access.column, out);
    for step in &access.path {
        out.push_str(", ");
        match step {
            PathElem::Key(key) => emit_str(key, out),
            PathElem::Index(index) => out.push_str(&index.to_string()),
        }
    }
    out.push(')');
}

/// A string as compact JSON text, escaped as `serde_json` writes it (only
/// `"`, `\` and control characters), so that it equals the text of the same
/// string inside canonically written JSON.
fn json_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn emit_ident(name: &str, out: &mut String) {
    out.push('"');
    out.push_str(&name.replace('"', "\"\""));
    out.push('"');
}

fn emit_lit(lit: &Lit, out: &mut String) {
    match lit {
        Lit::Int(i) => out.push_str(&i.to_string()),
        Lit::Float(s) => out.push_str(s),
        Lit::Str(s) => emit_str(s, out),
        Lit::Bool(true) => out.push_str("TRUE"),
        Lit::Bool(false) => out.push_str("FALSE"),
    }
}

fn emit_str(s: &str, out: &mut String) {
    out.push('\'');
    out.push_str(&s.replace('\'', "''"));
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &'static str, kind: FieldKind) -> FilterField<'static> {
        FilterField { name, kind }
    }

    fn fields() -> Vec<FilterField<'static>> {
        vec![
            field("id", FieldKind::Int),
            field("age", FieldKind::Int),
            field("a", FieldKind::Int),
            field("b", FieldKind::Int),
            field("c", FieldKind::Int),
            field("x", FieldKind::Int),
            field("score", FieldKind::Float),
            field("name", FieldKind::String),
            field("s", FieldKind::String),
            field("flag", FieldKind::Bool),
            field("meta", FieldKind::Json),
            field("tags", FieldKind::Array),
            field("nums", FieldKind::ArrayOf(ElementKind::Int)),
            field("ratios", FieldKind::ArrayOf(ElementKind::Float)),
            field("words", FieldKind::ArrayOf(ElementKind::String)),
            field("bits", FieldKind::ArrayOf(ElementKind::Bool)),
            field("vec", FieldKind::Vector),
        ]
    }

    fn templates() -> HashMap<String, TemplateValue> {
        let string = |s: &str| TemplateValue::String(s.to_string());
        HashMap::from([
            ("n".to_string(), TemplateValue::Int(7)),
            ("neg".to_string(), TemplateValue::Int(-3)),
            ("f".to_string(), TemplateValue::Float(1.0)),
            ("big".to_string(), TemplateValue::Float(1e300)),
            ("nan".to_string(), TemplateValue::Float(f64::NAN)),
            ("str".to_string(), string("it's")),
            ("yes".to_string(), TemplateValue::Bool(true)),
            (
                "ids".to_string(),
                TemplateValue::Array(vec![TemplateValue::Int(1), TemplateValue::Int(2)]),
            ),
            (
                "names".to_string(),
                TemplateValue::Array(vec![string("a"), string("b")]),
            ),
            ("empty".to_string(), TemplateValue::Array(vec![])),
            (
                "nested".to_string(),
                TemplateValue::Array(vec![TemplateValue::Array(vec![])]),
            ),
        ])
    }

    fn translate(expr: &str) -> Result<String> {
        filter_to_sql(expr, &fields(), &templates())
    }

    fn sql(expr: &str) -> String {
        translate(expr).unwrap_or_else(|e| panic!("{expr:?} failed: {}", e.describe(expr)))
    }

    fn err(expr: &str) -> FilterError {
        match translate(expr) {
            Ok(out) => panic!("{expr:?} unexpectedly translated to {out}"),
            Err(e) => e,
        }
    }

    fn check_ok(cases: &[(&str, &str)]) {
        for (expr, want) in cases {
            assert_eq!(sql(expr), *want, "input: {expr:?}");
        }
    }

    fn check_err(cases: &[(&str, usize, &str)]) {
        for (expr, pos, msg) in cases {
            let e = err(expr);
            assert_eq!(
                (e.position, e.message.as_str()),
                (*pos, *msg),
                "input: {expr:?}"
            );
        }
    }

    #[test]
    fn comparison_operators() {
        check_ok(&[
            ("age == 18", r#"("age" = 18)"#),
            ("age != 18", r#"("age" <> 18)"#),
            ("age < 18", r#"("age" < 18)"#),
            ("age <= 18", r#"("age" <= 18)"#),
            ("age > 18", r#"("age" > 18)"#),
            ("age >= 18", r#"("age" >= 18)"#),
            ("18 < age", r#"(18 < "age")"#),
            ("a == b", r#"("a" = "b")"#),
            ("name == \"bob\"", r#"("name" = 'bob')"#),
            ("name >= 'bob'", r#"("name" >= 'bob')"#),
            ("a > 1 == flag", r#"(("a" > 1) = "flag")"#),
        ]);
    }

    #[test]
    fn whitespace_is_insignificant() {
        check_ok(&[
            ("age>18", r#"("age" > 18)"#),
            ("\n\tage\r\n>=  18 ", r#"("age" >= 18)"#),
            ("(age>1)&&(b<2)", r#"(("age" > 1) AND ("b" < 2))"#),
        ]);
    }

    #[test]
    fn integer_literals() {
        check_ok(&[
            ("x == +5", r#"("x" = 5)"#),
            ("x == -5", r#"("x" = -5)"#),
            ("x == 0", r#"("x" = 0)"#),
            ("x == 0x1F", r#"("x" = 31)"#),
            ("x == 0b101", r#"("x" = 5)"#),
            ("x == 017", r#"("x" = 15)"#),
            ("x == 0o17", r#"("x" = 15)"#),
            ("x == 9223372036854775807", r#"("x" = 9223372036854775807)"#),
            (
                "x == -9223372036854775808",
                r#"("x" = -9223372036854775808)"#,
            ),
        ]);
    }

    #[test]
    fn invalid_integer_literals() {
        check_err(&[
            (
                "x == 9223372036854775808",
                5,
                "integer literal out of range",
            ),
            (
                "x == 99999999999999999999",
                5,
                "integer literal out of range",
            ),
            ("x == 018", 5, "invalid octal literal '018'"),
            ("x == 12ab", 5, "invalid numeric literal '12ab'"),
            ("x == 0x", 5, "invalid numeric literal '0x'"),
            ("x == 0b2", 5, "invalid numeric literal '0b2'"),
        ]);
    }

    #[test]
    fn float_literals() {
        check_ok(&[
            ("score > 1.5", r#"("score" > 1.5)"#),
            ("score > .5", r#"("score" > 0.5)"#),
            ("score > 1.", r#"("score" > 1.0)"#),
            ("score > 1e3", r#"("score" > 1e3)"#),
            ("score > 2.5E-3", r#"("score" > 2.5E-3)"#),
            ("score > 1.e+2", r#"("score" > 1.0e+2)"#),
            ("score > 007.5", r#"("score" > 7.5)"#),
            ("score > -0.25", r#"("score" > -0.25)"#),
            ("score > 1", r#"("score" > 1)"#),
        ]);
        check_err(&[
            ("score > 1e999", 8, "float literal out of range"),
            ("score > 1.2.3", 8, "invalid numeric literal '1.2.3'"),
            ("score > 1e", 8, "invalid numeric literal '1e'"),
        ]);
    }

    #[test]
    fn string_literals_and_escapes() {
        check_ok(&[
            (r#"s == "a\"b""#, r#"("s" = 'a"b')"#),
            (r"s == 'it\'s'", r#"("s" = 'it''s')"#),
            (r#"s == "it's""#, r#"("s" = 'it''s')"#),
            (r#"s == 'say "hi"'"#, r#"("s" = 'say "hi"')"#),
            (r#"s == "a\\b""#, r#"("s" = 'a\b')"#),
            (r#"s == "a\nb\tc""#, "(\"s\" = 'a\nb\tc')"),
            (r#"s == "\u00e9""#, r#"("s" = 'é')"#),
            (r#"s == """#, r#"("s" = '')"#),
            (r#"s == "日本語""#, r#"("s" = '日本語')"#),
            (r#"s == "-- /* x */""#, r#"("s" = '-- /* x */')"#),
        ]);
    }

    #[test]
    fn malformed_strings() {
        check_err(&[
            (r#"s == "abc"#, 5, "unterminated string"),
            ("s == 'abc", 5, "unterminated string"),
            (r#"s == "abc\"#, 5, "unterminated string"),
            (r#"s == 'a" == 1"#, 5, "unterminated string"),
            (r#"s == "a\qb""#, 7, r"invalid escape sequence '\q'"),
            (r#"s == "\u12""#, 6, "invalid unicode escape sequence"),
        ]);
    }

    #[test]
    fn boolean_literals_and_fields() {
        check_ok(&[
            ("flag", r#""flag""#),
            ("flag == true", r#"("flag" = TRUE)"#),
            ("flag == True", r#"("flag" = TRUE)"#),
            ("flag != FALSE", r#"("flag" <> FALSE)"#),
            ("flag == False", r#"("flag" = FALSE)"#),
            ("true", "TRUE"),
            ("false or flag", r#"(FALSE OR "flag")"#),
            ("flag == 1", r#"("flag" = 1)"#),
        ]);
    }

    #[test]
    fn chained_ranges() {
        check_ok(&[
            ("10 < x <= 20", r#"(10 < "x" AND "x" <= 20)"#),
            ("10 <= x < 20", r#"(10 <= "x" AND "x" < 20)"#),
            ("30 > x > 5", r#"(30 > "x" AND "x" > 5)"#),
            ("30 >= x >= 5", r#"(30 >= "x" AND "x" >= 5)"#),
            ("1 < a + 1 < 5", r#"(1 < ("a" + 1) AND ("a" + 1) < 5)"#),
            (
                "10 < x <= 20 and flag",
                r#"((10 < "x" AND "x" <= 20) AND "flag")"#,
            ),
            ("'a' <= s < 'b'", r#"('a' <= "s" AND "s" < 'b')"#),
        ]);
    }

    #[test]
    fn invalid_chained_comparisons() {
        check_err(&[
            (
                "1 < x > 5",
                6,
                "cannot chain '<' with '>'; use 'and' instead",
            ),
            (
                "9 >= x <= 5",
                7,
                "cannot chain '>=' with '<='; use 'and' instead",
            ),
            ("1 < x < 5 < 7", 10, "unexpected token '<'"),
            // `in` binds tighter than `<`: this is `1 < (x in [1])`.
            (
                "1 < x in [1]",
                2,
                "cannot compare number with boolean using '<'",
            ),
            (
                "1 < s < 5",
                2,
                "cannot compare number with string using '<'",
            ),
        ]);
    }

    #[test]
    fn arithmetic() {
        check_ok(&[
            ("a + 1 > 2", r#"(("a" + 1) > 2)"#),
            ("a - b * c == 0", r#"(("a" - ("b" * "c")) = 0)"#),
            ("a + b - c == 0", r#"(("a" + "b" - "c") = 0)"#),
            ("a * b / c % 2 == 1", r#"(("a" * "b" / "c" % 2) = 1)"#),
            ("(a + b) * c == 0", r#"((("a" + "b") * "c") = 0)"#),
            ("-a < 0", r#"((- "a") < 0)"#),
            ("- -a < 0", r#"((- (- "a")) < 0)"#),
            ("a - -1 > 0", r#"(("a" - -1) > 0)"#),
            ("a / -b > 0", r#"(("a" / (- "b")) > 0)"#),
            ("+a > 0", r#"("a" > 0)"#),
            ("score * 2.5 >= 1e2", r#"(("score" * 2.5) >= 1e2)"#),
        ]);
    }

    #[test]
    fn power_operator() {
        check_ok(&[
            ("a ** 2 > 4", r#"(power("a", 2) > 4)"#),
            // `**` is left-associative in Milvus.
            ("2 ** 3 ** 2 > a", r#"(power(power(2, 3), 2) > "a")"#),
            ("2 ** -3 ** 2 < a", r#"(power(2, (- power(3, 2))) < "a")"#),
            ("-2 ** 2 < a", r#"((- power(2, 2)) < "a")"#),
            ("a ** -1 < 1", r#"(power("a", -1) < 1)"#),
            ("2 * a ** 2 < 1", r#"((2 * power("a", 2)) < 1)"#),
        ]);
        let ok = format!("a{} > 0", " ** 2".repeat(MAX_POWER_NESTING - 1));
        assert!(sql(&ok).starts_with("(power(power(power("));
        let too_many = format!("a{} > 0", " ** 2".repeat(MAX_POWER_NESTING + 1));
        assert_eq!(err(&too_many).message, "more than 8 nested '**' operators");
    }

    #[test]
    fn logical_precedence() {
        check_ok(&[
            (
                "a > 1 or b < 2 and not (c == 3)",
                r#"(("a" > 1) OR (("b" < 2) AND (("c" = 3) = FALSE)))"#,
            ),
            (
                "a > 1 and b > 2 or c > 3",
                r#"((("a" > 1) AND ("b" > 2)) OR ("c" > 3))"#,
            ),
            (
                "a > 1 AND (b > 2 OR c > 3)",
                r#"(("a" > 1) AND (("b" > 2) OR ("c" > 3)))"#,
            ),
            (
                "not (x in [1]) and (a > 1) == (b > 2)",
                r#"((("x" IN (1)) = FALSE) AND (("a" > 1) = ("b" > 2)))"#,
            ),
        ]);
        // `not` binds tighter than comparisons and `in`, as in Milvus.
        check_err(&[
            (
                "a > 1 or b < 2 and not c == 3",
                23,
                "operand of 'not' must be boolean, got number",
            ),
            (
                "not x in [1] and (a > 1) == (b > 2)",
                4,
                "operand of 'not' must be boolean, got number",
            ),
        ]);
    }

    #[test]
    fn logical_operator_spellings() {
        check_ok(&[
            ("flag and flag", r#"("flag" AND "flag")"#),
            ("flag AND flag", r#"("flag" AND "flag")"#),
            ("flag && flag", r#"("flag" AND "flag")"#),
            ("flag or flag", r#"("flag" OR "flag")"#),
            ("flag OR flag", r#"("flag" OR "flag")"#),
            ("flag || flag", r#"("flag" OR "flag")"#),
            ("not flag", r#"(NOT "flag")"#),
            ("NOT flag", r#"(NOT "flag")"#),
            ("!flag", r#"(NOT "flag")"#),
        ]);
    }

    #[test]
    fn not_rendering() {
        check_ok(&[
            ("NOT (a > 1)", r#"(("a" > 1) = FALSE)"#),
            ("not not flag", r#"((NOT "flag") = FALSE)"#),
            ("!(a != 1)", r#"(("a" <> 1) = FALSE)"#),
            ("not true", "(NOT TRUE)"),
        ]);
    }

    #[test]
    fn flat_chains() {
        check_ok(&[
            (
                "a > 1 and b > 2 and c > 3",
                r#"(("a" > 1) AND ("b" > 2) AND ("c" > 3))"#,
            ),
            (
                "a > 1 && b > 2 || c > 3 || flag",
                r#"((("a" > 1) AND ("b" > 2)) OR ("c" > 3) OR "flag")"#,
            ),
        ]);
        // Long chains stay flat (their length is bounded by the operator
        // limit, see `limits`).
        let ors = vec!["id == 1"; 200].join(" or ");
        let out = sql(&ors);
        assert!(out.starts_with(r#"(("id" = 1) OR ("id" = 1)"#), "{out}");
        let sums = format!("a{} > 0", " + 1".repeat(300));
        assert!(sql(&sums).ends_with(" + 1) > 0)"));
    }

    #[test]
    fn in_lists() {
        check_ok(&[
            ("x in [1, 2, 3]", r#"("x" IN (1, 2, 3))"#),
            ("x IN [1,2,3,]", r#"("x" IN (1, 2, 3))"#),
            ("x in [-1, +2, 3.5]", r#"("x" IN (-1, 2, 3.5))"#),
            (r#"s not in ["a", 'b']"#, r#"("s" NOT IN ('a', 'b'))"#),
            (r#"s NOT IN ["a"]"#, r#"("s" NOT IN ('a'))"#),
            ("flag in [true]", r#"("flag" IN (TRUE))"#),
            ("x in [1] or x > 5", r#"(("x" IN (1)) OR ("x" > 5))"#),
        ]);
    }

    #[test]
    fn empty_in_lists() {
        check_ok(&[
            ("x in []", "FALSE"),
            ("x not in [ ]", "TRUE"),
            ("x in [] or flag", r#"(FALSE OR "flag")"#),
        ]);
    }

    #[test]
    fn malformed_in_lists() {
        check_err(&[
            (
                "x in [1,",
                8,
                "expected a literal or ']', found end of expression",
            ),
            ("x in [1 2]", 8, "expected ',' or ']', found '2'"),
            ("x in [a]", 6, "expected a literal or ']', found 'a'"),
            ("x in [,]", 6, "expected a literal or ']', found ','"),
            ("x in [-a]", 7, "expected a number, found 'a'"),
            (
                "x in 1",
                5,
                "expected '[' or a template variable after 'in', found '1'",
            ),
            (
                r#"x in [1, "a"]"#,
                9,
                "cannot compare number with string in 'in' list",
            ),
            (
                "x not like 'a'",
                6,
                "expected 'in' after 'not', found 'like'",
            ),
            ("x in [1] in [2]", 9, "unexpected token 'in'"),
        ]);
    }

    #[test]
    fn like_patterns() {
        check_ok(&[
            (r#"name like "ab%""#, r#"("name" LIKE 'ab%')"#),
            ("name LIKE 'a_b'", r#"("name" LIKE 'a_b')"#),
            (r#"name like "%it's%""#, r#"("name" LIKE '%it''s%')"#),
            (r#"name like "100\\%""#, r#"("name" LIKE '100\%')"#),
        ]);
        check_err(&[
            (
                "age like 'a%'",
                0,
                "operand of 'like' must be a string, got number",
            ),
            (
                "name like 1",
                10,
                "expected a string pattern after 'like', found '1'",
            ),
        ]);
    }

    #[test]
    fn null_checks() {
        check_ok(&[
            ("name is null", r#"("name" IS NULL)"#),
            ("name IS NOT NULL", r#"("name" IS NOT NULL)"#),
            ("age Is Not Null", r#"("age" IS NOT NULL)"#),
            ("meta is null", r#"("meta" IS NULL)"#),
            ("tags is not null", r#"("tags" IS NOT NULL)"#),
            (
                "name is null or age > 1",
                r#"(("name" IS NULL) OR ("age" > 1))"#,
            ),
        ]);
        check_err(&[
            ("name is 1", 8, "expected 'null', found '1'"),
            ("name is", 7, "expected 'null', found end of expression"),
        ]);
    }

    #[test]
    fn template_values() {
        check_ok(&[
            ("x == {n}", r#"("x" = 7)"#),
            ("x > {neg}", r#"("x" > -3)"#),
            ("x - {neg} > 0", r#"(("x" - -3) > 0)"#),
            ("score < {f}", r#"("score" < 1.0)"#),
            ("score < {big}", r#"("score" < 1e300)"#),
            ("s == {str}", r#"("s" = 'it''s')"#),
            ("flag == {yes}", r#"("flag" = TRUE)"#),
            ("x in {ids}", r#"("x" IN (1, 2))"#),
            ("s not in {names}", r#"("s" NOT IN ('a', 'b'))"#),
            ("x in {empty}", "FALSE"),
            ("x in [{n}, 8]", r#"("x" IN (7, 8))"#),
            ("s like {str}", r#"("s" LIKE 'it''s')"#),
            ("{ n } < x < 10", r#"(7 < "x" AND "x" < 10)"#),
        ]);
    }

    #[test]
    fn template_errors() {
        check_err(&[
            ("x == {missing}", 5, "template variable missing not found"),
            (
                "x == {ids}",
                5,
                "template variable ids is an array; arrays are only allowed after 'in' / 'not in'",
            ),
            (
                "x in {n}",
                5,
                "template variable n must be an array after 'in'",
            ),
            (
                "x in {nested}",
                5,
                "template variable nested contains a nested array",
            ),
            (
                "score < {nan}",
                8,
                "template variable nan is not a finite number",
            ),
            (
                "x == {1}",
                6,
                "expected a template variable name, found '1'",
            ),
            ("x == {n", 7, "expected '}', found end of expression"),
            (
                "x in {names}",
                5,
                "cannot compare number with string in 'in' list",
            ),
            (
                "s like {n}",
                7,
                "template variable n must be a string after 'like'",
            ),
        ]);
    }

    #[test]
    fn unknown_fields() {
        check_err(&[
            ("nope > 1", 0, "field nope not exist"),
            ("age > 1 and nope == 2", 12, "field nope not exist"),
            ("Age > 1", 0, "field Age not exist"),
        ]);
    }

    #[test]
    fn other_unsupported_syntax() {
        check_err(&[
            ("vec == 1", 0, "vector field vec cannot be used in a filter"),
            (
                "vec is null",
                0,
                "vector field vec cannot be used in a filter",
            ),
            ("a & 1 == 1", 2, "bitwise operator '&' is not supported yet"),
            ("a | 1 == 1", 2, "bitwise operator '|' is not supported yet"),
            ("~a == 1", 0, "bitwise operator '~' is not supported yet"),
            (
                "a << 1 == 1",
                2,
                "bitwise operator '<<' is not supported yet",
            ),
            ("name =~ 'a'", 5, "regex match is not supported yet"),
            (
                "x in [1] and [1]",
                13,
                "array literals are only allowed after 'in' / 'not in'",
            ),
        ]);
    }

    #[test]
    fn json_path_comparisons() {
        check_ok(&[
            (
                r#"meta["price"] > 10"#,
                r#"((json_get_float("meta", 'price') > 10) IS TRUE)"#,
            ),
            (
                r#"meta["a"]["b"] == "x""#,
                r#"((json_get_str("meta", 'a', 'b') = 'x') IS TRUE)"#,
            ),
            (
                r#"meta["arr"][0] == 3"#,
                r#"((json_get_float("meta", 'arr', 0) = 3) IS TRUE)"#,
            ),
            (
                "meta['flag'] == true",
                r#"((json_get_bool("meta", 'flag') = TRUE) IS TRUE)"#,
            ),
            (
                r#"2.5 <= meta["p"]"#,
                r#"((2.5 <= json_get_float("meta", 'p')) IS TRUE)"#,
            ),
            // A missing key (or another type) makes `!=` true, as in Milvus.
            (
                r#"meta["color"] != "red""#,
                r#"((json_get_str("meta", 'color') <> 'red') IS NOT FALSE)"#,
            ),
            // Integers that f64 cannot hold are compared as integers.
            (
                r#"meta["id"] == 9007199254740993"#,
                r#"((json_get_int("meta", 'id') = 9007199254740993) IS TRUE)"#,
            ),
            (
                r#"meta["id"] > 9007199254740993"#,
                r#"((json_get_float("meta", 'id') > 9007199254740993) IS TRUE)"#,
            ),
            (
                r#"meta["n"] == age"#,
                r#"((json_get_float("meta", 'n') = "age") IS TRUE)"#,
            ),
            (
                r#"s == meta["s"]"#,
                r#"(("s" = json_get_str("meta", 's')) IS TRUE)"#,
            ),
            (
                r#"meta["n"] == {n}"#,
                r#"((json_get_float("meta", 'n') = 7) IS TRUE)"#,
            ),
            (
                r#"meta["k"] == {str}"#,
                r#"((json_get_str("meta", 'k') = 'it''s') IS TRUE)"#,
            ),
            (
                r#"meta["it's"] == 1"#,
                r#"((json_get_float("meta", 'it''s') = 1) IS TRUE)"#,
            ),
            (
                r#"1 < meta["p"] <= 5"#,
                r#"((1 < json_get_float("meta", 'p') AND json_get_float("meta", 'p') <= 5) IS TRUE)"#,
            ),
            (
                r#"meta["a"] > 1 and not (meta["b"] == "x")"#,
                r#"(((json_get_float("meta", 'a') > 1) IS TRUE) AND (((json_get_str("meta", 'b') = 'x') IS TRUE) = FALSE))"#,
            ),
        ]);
    }

    #[test]
    fn json_path_arithmetic() {
        check_ok(&[
            (
                r#"meta["p"] + 1 > 2 * meta["q"]"#,
                r#"(((json_get_float("meta", 'p') + 1) > (2 * json_get_float("meta", 'q'))) IS TRUE)"#,
            ),
            (
                r#"meta["p"] % 2 == 0"#,
                r#"(((json_get_float("meta", 'p') % 2) = 0) IS TRUE)"#,
            ),
            (
                r#"-meta["p"] < 0"#,
                r#"(((- json_get_float("meta", 'p')) < 0) IS TRUE)"#,
            ),
            (
                r#"meta["p"] ** 2 > 4"#,
                r#"((power(json_get_float("meta", 'p'), 2) > 4) IS TRUE)"#,
            ),
            (
                r#"a + meta["p"] in [1, 2]"#,
                r#"((("a" + json_get_float("meta", 'p')) IN (1, 2)) IS TRUE)"#,
            ),
        ]);
    }

    #[test]
    fn json_path_in_like_and_null() {
        check_ok(&[
            (
                r#"meta["p"] in [1, 2.5]"#,
                r#"((json_get_float("meta", 'p') IN (1, 2.5)) IS TRUE)"#,
            ),
            (
                r#"meta["c"] in ["red", "blue"]"#,
                r#"((json_get_str("meta", 'c') IN ('red', 'blue')) IS TRUE)"#,
            ),
            (
                r#"meta["c"] not in ["red"]"#,
                r#"((json_get_str("meta", 'c') NOT IN ('red')) IS NOT FALSE)"#,
            ),
            // Mixed types: the value is read once per type.
            (
                r#"meta["p"] in ["a", 1, true, 2]"#,
                r#"((json_get_str("meta", 'p') IN ('a') OR json_get_float("meta", 'p') IN (1, 2) OR json_get_bool("meta", 'p') IN (TRUE)) IS TRUE)"#,
            ),
            (
                r#"meta["p"] not in {ids}"#,
                r#"((json_get_float("meta", 'p') NOT IN (1, 2)) IS NOT FALSE)"#,
            ),
            (
                r#"meta["p"] in [9007199254740993, 1]"#,
                r#"((json_get_int("meta", 'p') IN (9007199254740993, 1)) IS TRUE)"#,
            ),
            (r#"meta["p"] in []"#, "FALSE"),
            (
                r#"meta["name"] like "ab%""#,
                r#"((json_get_str("meta", 'name') LIKE 'ab%') IS TRUE)"#,
            ),
            (
                r#"meta["p"] is null"#,
                r#"(json_as_text("meta", 'p') IS NULL)"#,
            ),
            (
                r#"meta["a"][0] IS NOT NULL"#,
                r#"(json_as_text("meta", 'a', 0) IS NOT NULL)"#,
            ),
        ]);
    }

    #[test]
    fn json_path_errors() {
        check_err(&[
            (
                r#"meta["a"] == meta["b"]"#,
                10,
                "cannot compare JSON value with JSON value using '=='",
            ),
            (
                r#"meta["a"]"#,
                0,
                "filter expression must be boolean, got JSON value",
            ),
            (
                r#"meta["a"] and flag"#,
                0,
                "operand of 'and' must be boolean, got JSON value",
            ),
            (
                r#"meta["a"] < true"#,
                10,
                "cannot compare JSON value with boolean using '<'",
            ),
            (
                "meta == 1",
                0,
                r#"JSON field meta cannot be used directly; use a key path such as meta["key"]"#,
            ),
            (r#"meta[""] == 1"#, 5, "JSON key must not be empty"),
            (
                "meta[-1] == 1",
                5,
                "expected a quoted JSON key or an array index, found '-'",
            ),
            (
                "meta[01] == 1",
                5,
                "expected a quoted JSON key or an array index, found '01'",
            ),
            (
                "meta[a] == 1",
                5,
                "expected a quoted JSON key or an array index, found 'a'",
            ),
            (r#"meta["a" == 1"#, 9, "expected ']', found '=='"),
            (
                "meta[99999999999999999999] == 1",
                5,
                "integer literal out of range",
            ),
            (
                "age[0] == 1",
                0,
                "field age is not a JSON or array field and cannot be indexed",
            ),
            (
                r#"meta["a"] + 1 is null"#,
                12,
                "operand of 'is null' must be a field",
            ),
        ]);
    }

    fn dynamic_fields() -> Vec<FilterField<'static>> {
        vec![
            field("id", FieldKind::Int),
            field("meta", FieldKind::Json),
            field("$meta", FieldKind::Json),
        ]
    }

    #[test]
    fn dynamic_field_keys() {
        let cases = [
            (
                "color == 'red'",
                r#"((json_get_str("$meta", 'color') = 'red') IS TRUE)"#,
            ),
            (
                r#"color["x"][1] > 1"#,
                r#"((json_get_float("$meta", 'color', 'x', 1) > 1) IS TRUE)"#,
            ),
            (
                "$meta['a'] == 1 and id > 1",
                r#"(((json_get_float("$meta", 'a') = 1) IS TRUE) AND ("id" > 1))"#,
            ),
            (
                "color is null",
                r#"(json_as_text("$meta", 'color') IS NULL)"#,
            ),
            (
                "json_contains(tags, 'x')",
                r#"(array_has(json_get_array("$meta", 'tags'), '"x"') IS TRUE)"#,
            ),
            (
                "array_length(tags) == 2",
                r#"((cardinality(json_get_array("$meta", 'tags')) = 2) IS TRUE)"#,
            ),
            // Declared fields win over dynamic keys.
            (
                r#"meta["k"] == 1"#,
                r#"((json_get_float("meta", 'k') = 1) IS TRUE)"#,
            ),
            ("id > 1", r#"("id" > 1)"#),
        ];
        let none = HashMap::new();
        for (expr, want) in cases {
            let got = filter_to_sql(expr, &dynamic_fields(), &none)
                .unwrap_or_else(|e| panic!("{expr:?} failed: {}", e.describe(expr)));
            assert_eq!(got, want, "input: {expr:?}");
        }
        let e = filter_to_sql("$meta == 1", &dynamic_fields(), &none).unwrap_err();
        assert_eq!(e.position, 0);
        // Without a dynamic field, unknown names stay errors.
        check_err(&[
            ("color == 'red'", 0, "field color not exist"),
            ("$meta['a'] == 1", 0, "field $meta not exist"),
        ]);
    }

    #[test]
    fn json_contains_functions() {
        check_ok(&[
            (
                r#"json_contains(meta["tags"], "sale")"#,
                r#"(array_has(json_get_array("meta", 'tags'), '"sale"') IS TRUE)"#,
            ),
            (
                r#"JSON_CONTAINS(meta["tags"], 3)"#,
                r#"(array_has(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), 3) IS TRUE)"#,
            ),
            (
                "json_contains(meta, true)",
                r#"(array_has(json_get_array("meta"), 'true') IS TRUE)"#,
            ),
            (
                r#"json_contains(meta["a"][0], -1.5)"#,
                r#"(array_has(TRY_CAST(json_get_array("meta", 'a', 0) AS DOUBLE[]), -1.5) IS TRUE)"#,
            ),
            (
                r#"json_contains(meta["t"], {str})"#,
                r#"(array_has(json_get_array("meta", 't'), '"it''s"') IS TRUE)"#,
            ),
            (
                r#"json_contains_all(meta["tags"], ["a", "b"])"#,
                r#"(array_has_all(json_get_array("meta", 'tags'), make_array('"a"', '"b"')) IS TRUE)"#,
            ),
            (
                r#"JSON_CONTAINS_ANY(meta["tags"], [1, 2.5])"#,
                r#"(array_has_any(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), make_array(1, 2.5)) IS TRUE)"#,
            ),
            (
                r#"json_contains_any(meta["tags"], ["a", 1, false])"#,
                r#"((array_has_any(json_get_array("meta", 'tags'), make_array('"a"')) OR array_has_any(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), make_array(1)) OR array_has_any(json_get_array("meta", 'tags'), make_array('false'))) IS TRUE)"#,
            ),
            (
                r#"json_contains_all(meta["tags"], [1, "a"])"#,
                r#"((array_has_all(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), make_array(1)) AND array_has_all(json_get_array("meta", 'tags'), make_array('"a"'))) IS TRUE)"#,
            ),
            (
                r#"json_contains_any(meta["ids"], [9007199254740993])"#,
                r#"(array_has_any(TRY_CAST(json_get_array("meta", 'ids') AS BIGINT[]), make_array(9007199254740993)) IS TRUE)"#,
            ),
            (
                r#"json_contains_any(meta["tags"], {names})"#,
                r#"(array_has_any(json_get_array("meta", 'tags'), make_array('"a"', '"b"')) IS TRUE)"#,
            ),
            (
                r#"json_contains_all(meta["tags"], [])"#,
                r#"(json_get_array("meta", 'tags') IS NOT NULL)"#,
            ),
            (r#"json_contains_any(meta["tags"], [])"#, "FALSE"),
            (
                r#"not json_contains(meta["tags"], "x") and flag"#,
                r#"(((array_has(json_get_array("meta", 'tags'), '"x"') IS TRUE) = FALSE) AND "flag")"#,
            ),
        ]);
    }

    #[test]
    fn json_contains_strings_use_compact_json_text() {
        check_ok(&[
            (
                r#"json_contains(meta["t"], "say \"hi\"\n\\ é")"#,
                r#"(array_has(json_get_array("meta", 't'), '"say \"hi\"\n\\ é"') IS TRUE)"#,
            ),
            (
                r#"json_contains(meta["t"], "\u0001/")"#,
                r#"(array_has(json_get_array("meta", 't'), '"\u0001/"') IS TRUE)"#,
            ),
        ]);
    }

    #[test]
    fn array_fields() {
        check_ok(&[
            ("nums[0] > 3", r#"((json_get_int("nums", 0) > 3) IS TRUE)"#),
            (
                "ratios[2] <= 0.5",
                r#"((json_get_float("ratios", 2) <= 0.5) IS TRUE)"#,
            ),
            (
                "words[1] like 'a%'",
                r#"((json_get_str("words", 1) LIKE 'a%') IS TRUE)"#,
            ),
            (
                "bits[0] == true",
                r#"((json_get_bool("bits", 0) = TRUE) IS TRUE)"#,
            ),
            // Untyped arrays type their elements like JSON values.
            (
                "tags[0] == 'x'",
                r#"((json_get_str("tags", 0) = 'x') IS TRUE)"#,
            ),
            (
                "nums[0] in [1, 2]",
                r#"((json_get_int("nums", 0) IN (1, 2)) IS TRUE)"#,
            ),
            (
                "words[0] != 'a'",
                r#"((json_get_str("words", 0) <> 'a') IS NOT FALSE)"#,
            ),
            ("nums[3] is null", r#"(json_as_text("nums", 3) IS NULL)"#),
            ("nums is not null", r#"("nums" IS NOT NULL)"#),
            (
                "array_contains(nums, 5)",
                r#"(array_has(TRY_CAST(json_get_array("nums") AS BIGINT[]), 5) IS TRUE)"#,
            ),
            (
                "ARRAY_CONTAINS(ratios, 2)",
                r#"(array_has(TRY_CAST(json_get_array("ratios") AS DOUBLE[]), 2) IS TRUE)"#,
            ),
            (
                "array_contains(words, \"red\")",
                r#"(array_has(json_get_array("words"), '"red"') IS TRUE)"#,
            ),
            (
                "array_contains(bits, false)",
                r#"(array_has(json_get_array("bits"), 'false') IS TRUE)"#,
            ),
            (
                "array_contains_all(nums, [1, 2])",
                r#"(array_has_all(TRY_CAST(json_get_array("nums") AS BIGINT[]), make_array(1, 2)) IS TRUE)"#,
            ),
            (
                "array_contains_any(nums, [1, 2.5])",
                r#"(array_has_any(TRY_CAST(json_get_array("nums") AS DOUBLE[]), make_array(1, 2.5)) IS TRUE)"#,
            ),
            (
                "array_contains_any(words, {names})",
                r#"(array_has_any(json_get_array("words"), make_array('"a"', '"b"')) IS TRUE)"#,
            ),
            (
                r#"array_contains(meta["tags"], 1)"#,
                r#"(array_has(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), 1) IS TRUE)"#,
            ),
            (
                "array_length(nums) == 3",
                r#"((json_length("nums") = 3) IS TRUE)"#,
            ),
            (
                "ARRAY_LENGTH(tags) > 0",
                r#"((json_length("tags") > 0) IS TRUE)"#,
            ),
            (
                r#"array_length(meta["a"]) + 1 >= 2"#,
                r#"(((cardinality(json_get_array("meta", 'a')) + 1) >= 2) IS TRUE)"#,
            ),
        ]);
        check_err(&[
            (
                "nums == 1",
                0,
                "array field nums cannot be used directly; use an index such as nums[0], array_contains or array_length",
            ),
            (
                "nums['a'] == 1",
                4,
                "array field nums can only be indexed with an integer",
            ),
            (
                "nums[0][1] == 1",
                0,
                "elements of array field nums are scalars; use a single index",
            ),
            (
                "nums[0] == 'a'",
                8,
                "cannot compare number with string using '=='",
            ),
            (
                "array_contains(nums, 'a')",
                21,
                "array field nums holds integer elements; array_contains cannot look for a string",
            ),
            (
                "array_contains_any(words, ['a', 1])",
                32,
                "array field words holds string elements; array_contains_any cannot look for a number",
            ),
        ]);
    }

    #[test]
    fn function_argument_errors() {
        let what = "must be a JSON field, a JSON path or an array field";
        check_err(&[
            (r#"json_contains(meta["t"])"#, 23, "json_contains expects 2 arguments"),
            ("json_contains()", 14, "json_contains expects 2 arguments"),
            (
                r#"json_contains(meta["t"], 1, 2)"#,
                26,
                "json_contains expects 2 arguments",
            ),
            ("array_length(nums, 1) == 1", 17, "array_length expects 1 argument"),
            (
                r#"json_contains(meta["t"] 1)"#,
                24,
                "expected ',', found '1'",
            ),
            (
                r#"json_contains(meta["t"], 1"#,
                26,
                "expected ')', found end of expression",
            ),
            (
                "json_contains(age, 1)",
                14,
                &format!("first argument of json_contains {what}, got field age"),
            ),
            (
                "json_contains(1, 1)",
                14,
                &format!("first argument of json_contains {what}"),
            ),
            (
                "array_contains(nums[0], 1)",
                15,
                &format!("first argument of array_contains {what}, got an array element"),
            ),
            (
                "array_length(name) == 1",
                13,
                &format!("first argument of array_length {what}, got field name"),
            ),
            (
                "json_contains(nope, 1)",
                14,
                "field nope not exist",
            ),
            (
                r#"json_contains(meta["t"], [1, 2])"#,
                25,
                "json_contains with an array value is not supported yet; use json_contains_all or json_contains_any",
            ),
            (
                r#"json_contains(meta["t"], {ids})"#,
                25,
                "json_contains with an array value is not supported yet; use json_contains_all or json_contains_any",
            ),
            (
                r#"json_contains(meta["t"], age)"#,
                25,
                "expected a literal, found 'age'",
            ),
            (
                r#"json_contains_all(meta["t"], 1)"#,
                29,
                "expected an array as the second argument of json_contains_all, found '1'",
            ),
            (
                r#"json_contains_any(meta["t"], {n})"#,
                29,
                "template variable n must be an array in json_contains_any",
            ),
            (
                "array_length(nums) == 'a'",
                19,
                "cannot compare number with string using '=='",
            ),
        ]);
    }

    #[test]
    fn unsupported_functions() {
        check_err(&[
            (
                "text_match(name, 'x')",
                0,
                "text_match is not supported yet",
            ),
            (
                "flag and phrase_match(name, 'x')",
                9,
                "phrase_match is not supported yet",
            ),
            (
                "random_sample(0.5)",
                0,
                "random_sample is not supported yet",
            ),
            ("foo(a) == 1", 0, "foo is not supported yet"),
            (r#"exists meta["a"]"#, 0, "exists is not supported yet"),
        ]);
    }

    /// Precedence and associativity of Milvus' `Plan.g4` (tightest first):
    /// `is null`, `like`, `**`, unary `- + not`, `* / %`, `+ -`, `in`,
    /// `< <= > >=`, `== !=`, `and`, `or`; all binary operators associate to
    /// the left.
    #[test]
    fn precedence_follows_milvus_grammar() {
        check_ok(&[
            // `not` binds tighter than `==` and `in`.
            ("not flag == flag", r#"((NOT "flag") = "flag")"#),
            ("not flag in [true]", r#"((NOT "flag") IN (TRUE))"#),
            ("!flag != true", r#"((NOT "flag") <> TRUE)"#),
            // ... but looser than `like` and `is null`.
            ("not name like 'a%'", r#"(("name" LIKE 'a%') = FALSE)"#),
            ("not name is null", r#"(("name" IS NULL) = FALSE)"#),
            ("-a ** 2 < 0", r#"((- power("a", 2)) < 0)"#),
            // `in` binds tighter than comparisons, looser than arithmetic.
            ("a + 1 in [2]", r#"(("a" + 1) IN (2))"#),
            ("flag == x in [1]", r#"("flag" = ("x" IN (1)))"#),
            ("x in [1] == flag", r#"(("x" IN (1)) = "flag")"#),
            ("x not in [1] != flag", r#"(("x" NOT IN (1)) <> "flag")"#),
            // `like` binds tighter than everything but `is null`.
            ("name like 'a%' == flag", r#"(("name" LIKE 'a%') = "flag")"#),
            // `**` is left-associative and binds tighter than unary minus.
            ("a ** 2 ** 3 > 0", r#"(power(power("a", 2), 3) > 0)"#),
            ("-2 ** 2 < a", r#"((- power(2, 2)) < "a")"#),
            ("2 ** -a ** 2 < 1", r#"(power(2, (- power("a", 2))) < 1)"#),
            // Left-associative arithmetic and equality.
            ("a - b - c == 0", r#"(("a" - "b" - "c") = 0)"#),
            ("a / b * c == 0", r#"(("a" / "b" * "c") = 0)"#),
            ("flag == flag != flag", r#"(("flag" = "flag") <> "flag")"#),
            ("a < b == flag", r#"(("a" < "b") = "flag")"#),
            ("flag == a < b", r#"("flag" = ("a" < "b"))"#),
            // `and` binds tighter than `or`; `&&` / `||` are the same.
            (
                "flag || flag && not flag",
                r#"("flag" OR ("flag" AND (NOT "flag")))"#,
            ),
            ("1 < x < 5 == flag", r#"((1 < "x" AND "x" < 5) = "flag")"#),
        ]);
        check_err(&[
            (
                "not age > 18",
                4,
                "operand of 'not' must be boolean, got number",
            ),
            (
                "not x in [1]",
                4,
                "operand of 'not' must be boolean, got number",
            ),
            (
                "-name like 'a%'",
                1,
                "operand of '-' must be numeric, got boolean",
            ),
            (
                "a + name like 'a%' > 0",
                4,
                "operand of '+' must be numeric, got boolean",
            ),
            // `is null` applies to the field right before it.
            (
                "a + b is null",
                4,
                "operand of '+' must be numeric, got boolean",
            ),
            ("1 is null", 0, "operand of 'is null' must be a field"),
            ("(a + b) is null", 0, "operand of 'is null' must be a field"),
            (
                "x in [1] < 2",
                9,
                "cannot compare boolean with number using '<'",
            ),
            ("x in [1] in [2]", 9, "unexpected token 'in'"),
        ]);
    }

    #[test]
    fn type_checks() {
        check_err(&[
            ("age", 0, "filter expression must be boolean, got number"),
            ("a + 1", 0, "filter expression must be boolean, got number"),
            ("'abc'", 0, "filter expression must be boolean, got string"),
            (
                "name == 1",
                5,
                "cannot compare string with number using '=='",
            ),
            ("1 < name", 2, "cannot compare number with string using '<'"),
            (
                "a and flag",
                0,
                "operand of 'and' must be boolean, got number",
            ),
            (
                "flag or 'x'",
                8,
                "operand of 'or' must be boolean, got string",
            ),
            ("not a", 4, "operand of 'not' must be boolean, got number"),
            (
                "name + 1 > 0",
                0,
                "operand of '+' must be numeric, got string",
            ),
            ("-name < 0", 1, "operand of '-' must be numeric, got string"),
            (
                "(a > 1) + 1 > 0",
                0,
                "operand of '+' must be numeric, got boolean",
            ),
            (
                "a ** 'x' > 0",
                5,
                "operand of '**' must be numeric, got string",
            ),
        ]);
    }

    #[test]
    fn syntax_errors_report_positions() {
        check_err(&[
            ("))((", 0, "unexpected token ')'"),
            ("a ==", 4, "unexpected end of expression"),
            ("== 1", 0, "unexpected token '=='"),
            ("1 <", 3, "unexpected end of expression"),
            (
                "a in [1,",
                8,
                "expected a literal or ']', found end of expression",
            ),
            ("(a > 1", 6, "expected ')', found end of expression"),
            ("(a > 1 b)", 7, "expected ')', found 'b'"),
            ("a > 1)", 5, "unexpected token ')'"),
            ("a > 1 b", 6, "unexpected token 'b'"),
            ("a > 1 and", 9, "unexpected end of expression"),
            (
                "a = 1",
                2,
                "unexpected character '='; use '==' for equality",
            ),
            ("a > 1 # c", 6, "unexpected character '#'"),
            ("()", 1, "unexpected token ')'"),
            ("a > 1 and or b", 10, "unexpected token 'or'"),
            ("a == == 1", 5, "unexpected token '=='"),
            (
                "flag not",
                8,
                "expected 'in' after 'not', found end of expression",
            ),
        ]);
    }

    #[test]
    fn empty_expression() {
        check_err(&[
            ("", 0, "empty expression"),
            ("  \t\n", 0, "empty expression"),
        ]);
    }

    #[test]
    fn positions_count_chars_not_bytes() {
        check_err(&[
            (r#"s == "日本語" and )"#, 15, "unexpected token ')'"),
            ("s == 'é' ?", 9, "unexpected character '?'"),
            ("s == 'ü' and nope > 1", 13, "field nope not exist"),
            ("s == 'ß", 5, "unterminated string"),
            ("s == '🦀' == ", 12, "unexpected end of expression"),
        ]);
    }

    #[test]
    fn nesting_limits() {
        let ok = format!("{}a > 1{}", "(".repeat(150), ")".repeat(150));
        assert_eq!(sql(&ok), r#"("a" > 1)"#);
        let cases = [
            format!(
                "{}a > 1{}",
                "(".repeat(MAX_DEPTH + 1),
                ")".repeat(MAX_DEPTH + 1)
            ),
            format!("{}flag", "not ".repeat(MAX_DEPTH + 5)),
            format!("{}a > 0", "- ".repeat(MAX_DEPTH + 5)),
            format!("flag{}", " == flag".repeat(MAX_DEPTH + 5)),
            "(".repeat(60_000),
        ];
        for expr in &cases {
            assert_eq!(err(expr).message, "expression is too deeply nested");
        }
        // `**` associates to the left, so a long chain nests `power(..)`
        // calls rather than parser frames.
        let powers = format!("a{} > 0", " ** 2".repeat(MAX_DEPTH + 5));
        assert_eq!(err(&powers).message, "more than 8 nested '**' operators");
    }

    #[test]
    fn deepest_accepted_inputs_fit_a_small_stack() {
        // Parsing uses an explicit stack; only rendering recurses, bounded by
        // MAX_DEPTH, so the worst accepted inputs fit a 256 KiB thread stack.
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let inputs = [
                    format!("{}flag", "not ".repeat(MAX_DEPTH - 1)),
                    format!(
                        "{}meta[\"k\"] in ['a', 1]{}",
                        "(".repeat(MAX_DEPTH - 1),
                        ")".repeat(MAX_DEPTH - 1)
                    ),
                    format!("{}flag{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH)),
                    format!("flag{}", " == flag".repeat(MAX_DEPTH - 2)),
                    format!("{}a > 0", "- ".repeat(MAX_DEPTH - 2)),
                ];
                inputs
                    .iter()
                    .map(|e| translate(e).map(|s| s.len()))
                    .collect::<Vec<_>>()
            })
            .unwrap();
        let results = handle.join().expect("translation overflowed a small stack");
        for result in results {
            assert!(result.unwrap() > 0);
        }
    }

    #[test]
    fn input_length_limit() {
        let long = format!("a > 1{}", " ".repeat(MAX_EXPR_LEN));
        let e = err(&long);
        assert_eq!(
            (e.position, e.message.as_str()),
            (0, "expression is too long")
        );
        let fits = format!("a > 1{}", " ".repeat(MAX_EXPR_LEN - 5));
        assert_eq!(sql(&fits), r#"("a" > 1)"#);
    }

    #[test]
    fn garbage_never_panics() {
        let pieces = [
            "a",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ",",
            "'",
            "\"",
            "\\",
            "==",
            "<",
            ">=",
            "not",
            "in",
            "and",
            "or",
            "**",
            "-",
            "1",
            "1.5",
            "e",
            "is",
            "null",
            "like",
            "{n}",
            "é",
            " ",
            "flag",
            "s",
            "!",
            "{ids}",
            "meta",
            "[\"k\"]",
            "[0]",
            "nums",
            "tags",
            "json_contains(",
            "json_contains_any(",
            "array_length(",
            "$meta",
            "**",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut expr = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                expr.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(1);
            match translate(&expr) {
                Ok(out) => {
                    accepted += 1;
                    assert!(!out.is_empty());
                }
                Err(e) => {
                    assert!(e.position <= expr.chars().count(), "{expr:?}: {e:?}");
                    assert!(!e.message.is_empty());
                }
            }
        }
        assert!(accepted > 0);
    }

    #[test]
    fn error_display() {
        let e = err("a ==");
        assert_eq!(
            e.to_string(),
            "cannot parse expression, error: unexpected end of expression at position 4"
        );
        assert_eq!(
            e.describe("a =="),
            "cannot parse expression: a ==, error: unexpected end of expression at position 4"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().contains("position 4"));
    }
}
