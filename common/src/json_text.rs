//! A string as JSON text: quoted, with `"`, `\` and the control characters
//! escaped — what `serde_json` writes, and what PostgreSQL's JSON
//! functions write (`json_build_object`).

/// `s` as a JSON string literal.
pub fn json_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_text(s, &mut out);
    out
}

/// Appends `s` as a JSON string literal to `out`.
pub fn push_json_text(s: &str, out: &mut String) {
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
}

#[cfg(test)]
mod tests {
    use super::json_text;

    #[test]
    fn quotes_and_control_characters_are_escaped() {
        assert_eq!(
            json_text("a\"b\\c\nd\u{1}\u{8}"),
            "\"a\\\"b\\\\c\\nd\\u0001\\b\""
        );
        assert_eq!(json_text("é"), "\"é\"");
    }
}
