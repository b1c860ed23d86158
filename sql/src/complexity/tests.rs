//! Tests of the complexity check: limits, shapes, and agreement of its
//! lexer with sqlparser's tokenizer.

use std::time::{Duration, Instant};

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::lexer::{Lexeme, Lexer};
use super::{check, ComplexityLimits, TooComplex};

const LIMITS: ComplexityLimits = ComplexityLimits::SQL;

fn sql_check(sql: &str) -> Result<(), TooComplex> {
    check(sql, LIMITS)
}

fn depth_error() -> Result<(), TooComplex> {
    Err(TooComplex::Depth {
        limit: LIMITS.depth,
    })
}

#[test]
fn ordinary_statements_pass() {
    for sql in [
        "SELECT 1",
        "SELECT id, embedding <-> '[1,2,3]' AS d FROM items ORDER BY embedding <-> $1 LIMIT 10",
        "SELECT a.id, count(*) FROM a JOIN b ON a.id = b.id AND b.x > 3 WHERE a.y IS NOT NULL \
         GROUP BY a.id HAVING count(*) > 1 ORDER BY 2 DESC NULLS LAST",
        "WITH t AS (SELECT 1 AS x), u AS (SELECT x + 1 AS y FROM t) SELECT * FROM u",
        "INSERT INTO t (id, v) VALUES (1, '[1,2]'), (2, '[3,4]') ON CONFLICT DO NOTHING",
        "UPDATE t SET a = a + 1, b = CASE WHEN b > 0 THEN b - 1 ELSE 0 END WHERE id IN (1, 2, 3)",
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v vector(3), n numeric(10, 2))",
        "SELECT x::int::text, ARRAY[1,2][1], t.* FROM t WHERE s LIKE 'a%' ESCAPE '!'",
        "SELECT EXTRACT(YEAR FROM ts), SUBSTRING(s FROM 1 FOR 2) FROM t",
        "SELECT 1; SELECT 2;; SELECT 3",
        "",
    ] {
        assert_eq!(sql_check(sql), Ok(()), "{sql}");
    }
}

#[test]
fn psql_catalog_queries_pass() {
    // What psql sends for `\d t` and `\dt`.
    let describe = "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c \
        LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default \
        AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3;";
    let list = "SELECT n.nspname as \"Schema\", c.relname as \"Name\", \
        CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
        WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' \
        WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' \
        WHEN 'I' THEN 'partitioned index' END as \"Type\", \
        pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" \
        FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam \
        WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' \
        AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema' \
        AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;";
    assert_eq!(sql_check(describe), Ok(()));
    assert_eq!(sql_check(list), Ok(()));
}

/// The deepest accepted chain of each binary operator, and one more.
#[test]
fn binary_chains_are_bounded_by_depth() {
    let max = LIMITS.depth;
    for op in ["+", "-", "*", "/", "||", "<->", "AND", "OR", "="] {
        let chain = |n: usize| format!("SELECT x{}", format!(" {op} x").repeat(n));
        // `x op x op x`: n operators make a tree n + 1 deep.
        assert_eq!(sql_check(&chain(max - 1)), Ok(()), "{op}");
        assert_eq!(sql_check(&chain(max)), depth_error(), "{op}");
    }
    // Casts and subscripts chain too.
    assert_eq!(
        sql_check(&format!("SELECT x{}", "::int".repeat(max - 1))),
        Ok(())
    );
    assert_eq!(
        sql_check(&format!("SELECT x{}", "::int".repeat(max))),
        depth_error()
    );
    assert_eq!(
        sql_check(&format!("SELECT x{}", "[1]".repeat(max))),
        depth_error()
    );
}

#[test]
fn precedence_keeps_comparisons_under_their_logical_chain() {
    // `a = 1 OR a = 2 OR ...`: n terms are n + 1 deep (not 2n).
    let max = LIMITS.depth;
    let ors = |n: usize| {
        let terms: Vec<String> = (0..n).map(|i| format!("a = {i}")).collect();
        format!("SELECT * FROM t WHERE {}", terms.join(" OR "))
    };
    assert_eq!(sql_check(&ors(max - 1)), Ok(()));
    assert_eq!(sql_check(&ors(max)), depth_error());
    // Each `AND` pair under an `OR` chain adds one level, not one per term.
    let mixed: Vec<String> = (0..100).map(|i| format!("(a = {i} AND b = {i})")).collect();
    assert_eq!(sql_check(&mixed.join(" OR ")), Ok(()));
}

#[test]
fn nesting_is_bounded_by_depth() {
    let max = LIMITS.depth;
    for (open, close) in [
        ("(", ")"),
        ("ARRAY[", "]"),
        ("(SELECT ", ")"),
        ("- ", ""),
        ("NOT ", ""),
    ] {
        let nested = |n: usize| format!("SELECT {}1{}", open.repeat(n), close.repeat(n));
        assert_eq!(sql_check(&nested(max + 1)), depth_error(), "{open}");
    }
    let cases = |n: usize| {
        format!(
            "SELECT {}1{}",
            "CASE WHEN x THEN ".repeat(n),
            " END".repeat(n)
        )
    };
    assert_eq!(sql_check(&cases(max + 1)), depth_error());
    // Parentheses add to the chain inside them.
    let inner = |n: usize| format!("SELECT ({})", "x + ".repeat(n) + "x");
    assert_eq!(sql_check(&inner(max - 2)), Ok(()));
    assert_eq!(sql_check(&inner(max - 1)), depth_error());
}

#[test]
fn set_operations_joins_and_from_lists_count_as_depth() {
    let max = LIMITS.depth;
    let unions = format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(max));
    assert_eq!(sql_check(&unions), depth_error());
    let joins = format!("SELECT * FROM t{}", " JOIN t USING (id)".repeat(max));
    assert_eq!(sql_check(&joins), depth_error());
    let tables: Vec<String> = (0..=max).map(|i| format!("t t{i}")).collect();
    assert_eq!(
        sql_check(&format!("SELECT * FROM {}", tables.join(", "))),
        depth_error()
    );
    let ctes: Vec<String> = (0..=max).map(|i| format!("c{i} AS (SELECT 1)")).collect();
    assert_eq!(
        sql_check(&format!("WITH {} SELECT 1", ctes.join(", "))),
        depth_error()
    );
    // A select list is not a FROM list.
    let columns: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
    assert_eq!(
        sql_check(&format!("SELECT {} FROM t", columns.join(", "))),
        Ok(())
    );
}

#[test]
fn operators_are_bounded_per_statement() {
    let max = LIMITS.operators;
    // Shallow expressions, many of them.
    let items = |n: usize| format!("SELECT {} FROM t", vec!["a + 1"; n].join(", "));
    assert_eq!(sql_check(&items(max)), Ok(()));
    assert_eq!(
        sql_check(&items(max + 1)),
        Err(TooComplex::Operators { limit: max })
    );
    // Each statement has its own budget.
    let twice = format!("{}; {}", items(max), items(max));
    assert_eq!(sql_check(&twice), Ok(()));
    // List elements are not operators, and neither is a literal's sign.
    let list: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    let in_list = format!("SELECT * FROM t WHERE id IN ({})", list.join(","));
    assert_eq!(sql_check(&in_list), Ok(()));
    let rows: Vec<String> = (0..10_000)
        .map(|i| format!("({i}, '[1,2]', -1, +2.5)"))
        .collect();
    let insert = format!("INSERT INTO t VALUES {}", rows.join(", "));
    assert_eq!(sql_check(&insert), Ok(()));
    // A sign before anything else is an operator like any other.
    let rows: Vec<String> = (0..10_000).map(|i| format!("({i}, -x)")).collect();
    let insert = format!("INSERT INTO t VALUES {}", rows.join(", "));
    assert_eq!(
        sql_check(&insert),
        Err(TooComplex::Operators { limit: max })
    );
}

#[test]
fn list_items_are_bounded_per_statement() {
    let max = LIMITS.list_items;
    let in_list = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        format!("SELECT * FROM t WHERE id IN ({})", items.join(","))
    };
    // n items are n - 1 commas.
    assert_eq!(sql_check(&in_list(max + 1)), Ok(()));
    assert_eq!(
        sql_check(&in_list(max + 2)),
        Err(TooComplex::ListItems { limit: max })
    );
    // Rows and their values count alike; commas inside literals do not.
    let rows = |n: usize, v: &str| {
        let rows: Vec<String> = (0..n).map(|i| format!("({i}, {v})")).collect();
        format!("INSERT INTO t VALUES {}", rows.join(","))
    };
    assert_eq!(sql_check(&rows(max / 2, "'[1,2,3]'")), Ok(()));
    assert_eq!(
        sql_check(&rows(max / 2 + 1, "'[1,2,3]'")),
        Err(TooComplex::ListItems { limit: max })
    );
    // Each statement has its own budget.
    let twice = format!("{}; {}", in_list(max), in_list(max));
    assert_eq!(sql_check(&twice), Ok(()));
    // A 50 MB list is refused after reading just past the limit.
    let huge = format!("SELECT 1 WHERE 1 IN ({})", "1,".repeat(25_000_000));
    assert_eq!(sql_check(&huge), Err(TooComplex::ListItems { limit: max }));
}

#[test]
fn function_nesting_is_bounded() {
    let max = LIMITS.function_nesting;
    let nested =
        |f: &str, n: usize| format!("SELECT {}1{}", format!("{f}(").repeat(n), ")".repeat(n));
    for f in ["abs", "pg_catalog.abs", "\"abs\"", "coalesce(1, abs"] {
        assert_eq!(sql_check(&nested(f, max / 2)), Ok(()), "{f}");
    }
    assert_eq!(sql_check(&nested("abs", max)), Ok(()));
    assert_eq!(
        sql_check(&nested("abs", max + 1)),
        Err(TooComplex::FunctionNesting { limit: max })
    );
    // Keywords followed by a parenthesis are not calls.
    let exists = format!("SELECT {}1{}", "EXISTS (SELECT ".repeat(20), ")".repeat(20));
    assert_eq!(sql_check(&exists), Ok(()));
    let casts = format!("SELECT {}1{}", "CAST(".repeat(20), " AS INT)".repeat(20));
    assert_eq!(sql_check(&casts), Ok(()));
}

#[test]
fn literals_and_comments_hide_nothing_and_count_nothing() {
    let chain = "+1".repeat(100_000);
    for hidden in [
        format!("SELECT '{chain}'"),
        format!("SELECT E'\\'{chain}'"),
        format!("SELECT $${chain}$$"),
        format!("SELECT $tag${chain}$tag$"),
        format!("SELECT \"{chain}\""),
        format!("SELECT 1 -- {chain}"),
        format!("SELECT 1 /* /* {chain} */ {chain} */"),
        format!("SELECT X'{chain}', B'{chain}', N'{chain}', U&'{chain}'"),
    ] {
        assert_eq!(sql_check(&hidden), Ok(()), "{}", &hidden[..20]);
    }
    // What follows a literal is read again.
    for visible in [
        format!("SELECT E'\\'' {chain}"),
        format!("SELECT 'a''b' {chain}"),
        format!("SELECT '\\' {chain}"),
        format!("SELECT $$a$$ {chain}"),
        format!("SELECT 1 -- comment\n {chain}"),
        format!("SELECT 1 /* a /* b */ c */ {chain}"),
        // `+--` is `+` and a comment, but `<--` one operator.
        format!("SELECT 1 <--x\n {chain}"),
        format!("SELECT 1e+5 {chain}"),
    ] {
        assert!(sql_check(&visible).is_err(), "{}", &visible[..20]);
    }
}

/// Thread CPU time (the planning under test runs on the calling thread),
/// wall time where the platform does not say.
pub(crate) fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        })
}

#[test]
fn hostile_statements_are_refused_quickly() {
    // 10^5 terms of every operator, 10^5 nesting, and 50 MB statements.
    let mut hostile: Vec<String> = ["+", "*", "||", "AND", "OR", "=", "<->", "::int"]
        .iter()
        .map(|op| format!("SELECT x{}", format!(" {op} x").repeat(100_000)))
        .collect();
    hostile.push(format!(
        "SELECT {}1{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    ));
    hostile.push(format!("SELECT {}1", "- ".repeat(100_000)));
    hostile.push(format!("SELECT 1{}", "+1".repeat(25_000_000)));
    hostile.push(format!("SELECT {}", "(".repeat(50_000_000)));
    hostile.push(format!("SELECT {}", "abs(".repeat(12_500_000)));
    for sql in &hostile {
        let start = cpu_time();
        assert!(sql_check(sql).is_err(), "{}", &sql[..30]);
        let spent = cpu_time() - start;
        assert!(
            spent < Duration::from_millis(500),
            "{spent:?}: {}",
            &sql[..30]
        );
    }
}

/// The coarse class of a token, as both lexers must agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Quoted,
    Literal,
    /// Operators and any other punctuation, runs merged.
    Operator,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Comma,
    Semicolon,
    Period,
}

fn ours(sql: &str) -> Vec<Class> {
    merge(Lexer::new(sql).map(|lexeme| match lexeme {
        Lexeme::Word(_) => Class::Word,
        Lexeme::QuotedIdent => Class::Quoted,
        Lexeme::Literal => Class::Literal,
        Lexeme::Operator(_) | Lexeme::Cast | Lexeme::Other => Class::Operator,
        Lexeme::LParen => Class::Open,
        Lexeme::RParen => Class::Close,
        Lexeme::LBracket => Class::OpenBracket,
        Lexeme::RBracket => Class::CloseBracket,
        Lexeme::Comma => Class::Comma,
        Lexeme::Semicolon => Class::Semicolon,
        Lexeme::Period => Class::Period,
    }))
}

fn theirs(sql: &str) -> Option<Vec<Class>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    Some(merge(tokens.into_iter().filter_map(|token| {
        Some(match token {
            Token::Whitespace(_) | Token::EOF => return None,
            Token::Word(w) if w.quote_style.is_some() => Class::Quoted,
            Token::Word(_) => Class::Word,
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::Placeholder(_) => Class::Literal,
            Token::LParen => Class::Open,
            Token::RParen => Class::Close,
            Token::LBracket => Class::OpenBracket,
            Token::RBracket => Class::CloseBracket,
            Token::Comma => Class::Comma,
            Token::SemiColon => Class::Semicolon,
            Token::Period => Class::Period,
            _ => Class::Operator,
        })
    })))
}

fn merge(classes: impl Iterator<Item = Class>) -> Vec<Class> {
    let mut out: Vec<Class> = Vec::new();
    for class in classes {
        if class == Class::Operator && out.last() == Some(&Class::Operator) {
            continue;
        }
        out.push(class);
    }
    out
}

/// A small deterministic generator (no dependency needed).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn lexer_agrees_with_sqlparser() {
    // Fragments chosen to meet at every boundary the two must agree on.
    let fragments = [
        "'", "''", "\"", "\\", "E", "e", "X", "B", "N", "U", "u&", "&", "$", "$$", "$a$", "$1",
        "-", "--", "/", "/*", "*/", "*", "+", "<", ">", "=", "!", "~", "#", "@", "?", "|", "^",
        "%", "`", ":", "::", ".", ",", ";", "(", ")", "[", "]", "{", "a", "é", "_", "1", "0x",
        "1e", "5", "L", " ", "\n", "\r", "\t", "AND", "OR", "select",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for _ in 0..50_000 {
        let len = 1 + rng.next() % 16;
        let sql: String = (0..len).map(|_| rng.pick(&fragments)).collect();
        if let Some(expected) = theirs(&sql) {
            compared += 1;
            assert_eq!(ours(&sql), expected, "lexers disagree on {sql:?}");
        }
    }
    assert!(compared > 10_000, "only {compared} inputs tokenized");
}
