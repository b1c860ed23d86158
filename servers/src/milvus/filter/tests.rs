//! Tests of the Milvus filter translation: lexing, parsing, typing and
//! the SQL it renders.

mod errors;
mod json;

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
