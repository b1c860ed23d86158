//! The SQL reading of a checked filter tree ([`super::filter_to_sql`]):
//! the reference the tests compare the lowered expressions with. The door
//! never renders it.

use super::*;
// A string as compact JSON text, escaped as `serde_json` writes it, so that
// it equals the text of the same string inside canonically written JSON.
pub(super) use quiver_common::json_text::json_text;

pub(super) fn emit(e: &Expr, out: &mut String) {
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
pub(super) fn open_predicate(missing: Option<bool>, out: &mut String) {
    out.push_str(if missing.is_some() { "((" } else { "(" });
}

pub(super) fn close_predicate(missing: Option<bool>, out: &mut String) {
    out.push_str(match missing {
        None => ")",
        Some(true) => ") IS NOT FALSE)",
        Some(false) => ") IS TRUE)",
    });
}

/// `x [NOT] IN (..)`. A JSON value of no fixed type meeting items of several
/// types is read once per type: `json_get_str(..) IN ('a') OR
/// json_get_float(..) IN (1)`.
pub(super) fn emit_in(inner: &Expr, negated: bool, items: &[Lit], out: &mut String) {
    if items.is_empty() {
        out.push_str(if negated { "TRUE" } else { "FALSE" });
        return;
    }
    let missing = inner.nullish.then_some(negated);
    open_predicate(missing, out);
    let groups = in_groups(inner, items);
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

/// The parts of `inner [NOT] IN (items)`: an untyped JSON value meeting
/// items of several types is read once per type, with the getter of that
/// type (`Getter::Unresolved`: `inner` as it is, one part).
pub(super) fn in_groups<'l>(inner: &Expr, items: &'l [Lit]) -> Vec<(Getter, Vec<&'l Lit>)> {
    match &inner.node {
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
    }
}

/// Splits literals by type (strings, numbers, booleans), in order of first
/// appearance.
pub(super) fn group_by_type(items: &[Lit]) -> Vec<(Ty, Vec<&Lit>)> {
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
pub(super) fn emit_contains(source: &Access, op: ContainsOp, items: &[Lit], out: &mut String) {
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
            let exact = contains_ints_exactly(source, &lits);
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

/// Whether `json_contains*` compares the numbers `lits` with a source's
/// elements as integers (`BIGINT[]`) rather than floats (`DOUBLE[]`).
pub(super) fn contains_ints_exactly(source: &Access, lits: &[&Lit]) -> bool {
    match source.kind {
        SourceKind::Array(Some(ElementKind::Int)) => {
            lits.iter().all(|lit| matches!(lit, Lit::Int(_)))
        }
        _ => needs_int_getter(lits.iter().copied()),
    }
}

/// `func("column", 'key', 0, ...)`.
pub(super) fn emit_access(access: &Access, func: &str, out: &mut String) {
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

pub(super) fn emit_ident(name: &str, out: &mut String) {
    out.push('"');
    out.push_str(&name.replace('"', "\"\""));
    out.push('"');
}

pub(super) fn emit_lit(lit: &Lit, out: &mut String) {
    match lit {
        Lit::Int(i) => out.push_str(&i.to_string()),
        Lit::Float(s) => out.push_str(s),
        Lit::Str(s) => emit_str(s, out),
        Lit::Bool(true) => out.push_str("TRUE"),
        Lit::Bool(false) => out.push_str("FALSE"),
    }
}

pub(super) fn emit_str(s: &str, out: &mut String) {
    out.push('\'');
    out.push_str(&s.replace('\'', "''"));
    out.push('\'');
}
