//! The filter lexer: characters to tokens (numbers, strings with Milvus'
//! escapes, identifiers, keywords, operators), with positions for errors.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) pos: usize,
    pub(super) text: String,
}

pub(super) fn lex(chars: &[char]) -> Result<Vec<Token>> {
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

pub(super) fn bitwise(pos: usize, op: &str) -> FilterError {
    FilterError::new(pos, format!("bitwise operator '{op}' is not supported yet"))
}

pub(super) fn keyword(word: String) -> Tok {
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
pub(super) fn lex_string(chars: &[char], start: usize) -> Result<(String, usize)> {
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
pub(super) fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize)> {
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
