//! Filter tests: precedence, type checks, error positions and wording,
//! and the input limits (nesting, length, garbage).

use super::*;

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
