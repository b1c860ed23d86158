//! Milvus filters against the expression limits: hostile chains are
//! refused quickly with a message naming the limit (Milvus 1100), the
//! largest accepted ones translate to SQL the statement check accepts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quiver_sql::complexity::{self, ComplexityLimits};

use super::super::{filter_to_sql, FieldKind, FilterError, FilterField, MAX_EXPR_LEN};
use super::{check_translated, MAX_FILTER_OPERATORS};
use crate::milvus::DoorError;

fn fields() -> Vec<FilterField<'static>> {
    vec![
        FilterField {
            name: "id",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "flag",
            kind: FieldKind::Bool,
        },
        FilterField {
            name: "meta",
            kind: FieldKind::Json,
        },
    ]
}

/// Translates and checks `expr` as the door does.
fn translate(expr: &str) -> Result<String, FilterError> {
    let sql = filter_to_sql(expr, &fields(), &HashMap::new())?;
    check_translated(&sql)?;
    Ok(sql)
}

/// A filter of `n` terms.
type Shape = fn(usize) -> String;

/// Filter shapes by their number of terms.
fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("or chain", |n| vec!["id == 1"; n].join(" or ")),
        ("and chain", |n| vec!["id > 0"; n].join(" and ")),
        ("+ chain", |n| format!("id{} > 0", " + 1".repeat(n))),
        ("* chain", |n| format!("id{} > 0", " * 1".repeat(n))),
        ("json or chain", |n| {
            vec!["meta[\"k\"] == 1"; n].join(" || ")
        }),
        ("in lists under and", |n| {
            vec!["id in [1, 2, 3]"; n].join(" && ")
        }),
    ]
}

/// The largest `n` whose shape translates, by bisection.
fn largest_accepted(shape: fn(usize) -> String) -> usize {
    let (mut ok, mut over) = (1, 4 * MAX_FILTER_OPERATORS);
    assert!(translate(&shape(ok)).is_ok());
    assert!(translate(&shape(over)).is_err());
    while over - ok > 1 {
        let mid = (ok + over) / 2;
        match translate(&shape(mid)) {
            Ok(_) => ok = mid,
            Err(_) => over = mid,
        }
    }
    ok
}

#[test]
fn the_issue_reports_are_refused_with_1100_naming_the_limit() {
    let or_chain = vec!["id==1"; 2000].join(" or ");
    let plus_chain = format!("id{} > 0", " + 1".repeat(10_000));
    for expr in [or_chain, plus_chain] {
        let start = Instant::now();
        let err = translate(&expr).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(
            err.message
                .contains("quiver limit max_expression_operators = 512"),
            "{}",
            err.message
        );
        let door = DoorError::from(err);
        assert_eq!(door.code, 1100);
        assert!(door.message.contains("too complex"), "{}", door.message);
    }
}

#[test]
fn operators_are_counted_before_the_tree_is_built() {
    let at_limit = vec!["flag"; MAX_FILTER_OPERATORS + 1].join(" or ");
    let over = format!("{at_limit} or not flag");
    // Under the operator limit, the depth limit of the translation applies.
    assert!(translate(&at_limit)
        .unwrap_err()
        .message
        .contains("max_expression_depth"));
    let err = filter_to_sql(&over, &fields(), &HashMap::new()).unwrap_err();
    assert!(
        err.message.contains("more than 512 operators"),
        "{}",
        err.message
    );
    // The position is that of the first operator over the limit.
    assert!(err.position > 0);
}

#[test]
fn hostile_filters_are_refused_quickly() {
    // Filters are at most MAX_EXPR_LEN bytes: the longest chains fit in it.
    let max_terms = |term: &str, op: &str| MAX_EXPR_LEN / (term.len() + op.len());
    let cases = [
        vec!["id==1"; max_terms("id==1", " or ")].join(" or "),
        vec!["flag"; max_terms("flag", "&&")].join("&&"),
        format!("id{} > 0", "+1".repeat(max_terms("1", "+") - 4)),
        format!("{}flag", "not ".repeat(max_terms("", "not ") - 2)),
        format!("{}flag{}", "(".repeat(30_000), ")".repeat(30_000)),
    ];
    for expr in &cases {
        assert!(expr.len() <= MAX_EXPR_LEN);
        let start = Instant::now();
        assert!(translate(expr).is_err(), "{}", &expr[..20]);
        let spent = start.elapsed();
        assert!(
            spent < Duration::from_millis(500),
            "{spent:?}: {}",
            &expr[..20]
        );
    }
}

#[test]
fn largest_accepted_filters_meet_the_statement_limits() {
    for (name, shape) in shapes() {
        let n = largest_accepted(shape);
        // Long enough for real filters...
        assert!(n >= 60, "{name}: only {n} terms");
        // ...and what is accepted passes the statement check around it.
        let sql = translate(&shape(n)).unwrap();
        let statement = format!(
            "SELECT * FROM c WHERE ({sql}) AND (\"$partition\" IN ('_default')) ORDER BY id LIMIT 10"
        );
        assert_eq!(
            complexity::check(&statement, ComplexityLimits::SQL),
            Ok(()),
            "{name}"
        );
        let err = translate(&shape(n + 1)).unwrap_err();
        assert!(
            err.message.contains("quiver limit"),
            "{name}: {}",
            err.message
        );
    }
}
