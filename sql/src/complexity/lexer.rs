//! A streaming SQL lexer for the complexity check: it walks the statement
//! text once, without allocating, and yields coarse [`Lexeme`]s.
//!
//! It follows the token boundaries of sqlparser's `PostgreSqlDialect`
//! tokenizer, which later parses the same text: where a string literal, a
//! quoted identifier, a dollar-quoted string or a comment starts and ends
//! (standard strings with `''` only; `E'..'` and `X'..'` with backslash
//! escapes too; `B'..'`, `B".."`, `N'..'`, `U&'..'`; `$$..$$` and
//! `$tag$..$tag$`; `--` and nested `/* */` comments, recognised only where a
//! token starts), and where an operator token ends (see
//! [`Lexer::operator_end`]). Agreeing on these boundaries is what makes the count
//! trustworthy: text the check skips as a literal is text the parser reads
//! as one. A test compares both tokenizers on generated input.
//!
//! Malformed input (an unterminated string, a stray character) never stops
//! the lexer: it yields what it can and the parser reports the error.

/// A coarse token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lexeme<'a> {
    /// An unquoted identifier or keyword, as written.
    Word(&'a str),
    /// A `"quoted"` identifier.
    QuotedIdent,
    /// A string, number or `$n` placeholder.
    Literal,
    /// A run of operator characters (`+`, `<->`, `>=`, `||`, ...).
    Operator(&'a str),
    /// `::`.
    Cast,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semicolon,
    Period,
    /// Any other character (`:`, `{`, `\`, ...).
    Other,
}

/// Characters sqlparser's PostgreSQL dialect joins into operators.
fn is_operator_char(b: u8) -> bool {
    matches!(
        b,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
    )
}

/// Identifier characters (any non-ASCII byte belongs to one, as in PostgreSQL).
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The lexer over one text.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Lexer {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    /// Skips a quoted run that started at `self.pos` (on the quote):
    /// a doubled quote is an escaped quote; with `backslash`, a backslash
    /// escapes the next character.
    fn skip_quoted(&mut self, quote: u8, backslash: bool) {
        self.pos += 1;
        while let Some(b) = self.peek(0) {
            if backslash && b == b'\\' {
                self.pos += 2;
                continue;
            }
            self.pos += 1;
            if b == quote {
                if self.peek(0) == Some(quote) {
                    self.pos += 1;
                    continue;
                }
                return;
            }
        }
        self.pos = self.bytes.len();
    }

    /// `U&'...'`: `''` escapes a quote, `\\` a backslash; any other
    /// backslash starts a hexadecimal escape, which never holds a quote.
    fn skip_unicode_string(&mut self) {
        self.pos += 1;
        while let Some(b) = self.peek(0) {
            self.pos += 1;
            match b {
                b'\'' if self.peek(0) == Some(b'\'') => self.pos += 1,
                b'\'' => return,
                b'\\' if self.peek(0) == Some(b'\\') => self.pos += 1,
                _ => {}
            }
        }
    }

    /// `$$...$$`, `$tag$...$tag$` or a `$n` placeholder, from the `$`.
    fn skip_dollar(&mut self) {
        let start = self.pos;
        self.pos += 1;
        if self.peek(0) == Some(b'$') {
            self.pos += 1;
            self.skip_to_delimiter(b"$$");
            return;
        }
        // The tag is alphanumeric in Unicode's sense, as sqlparser reads it.
        let tag_len: usize = self.text.get(self.pos..).map_or(0, |rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .map(char::len_utf8)
                .sum()
        });
        self.pos += tag_len;
        if self.peek(0) == Some(b'$') {
            self.pos += 1;
            let tag = &self.bytes[start..self.pos];
            self.skip_to_delimiter(tag);
        }
    }

    fn skip_to_delimiter(&mut self, delimiter: &[u8]) {
        let rest = &self.bytes[self.pos..];
        match rest.windows(delimiter.len()).position(|w| w == delimiter) {
            Some(at) => self.pos += at + delimiter.len(),
            None => self.pos = self.bytes.len(),
        }
    }

    fn skip_block_comment(&mut self) {
        self.pos += 2;
        let mut nesting = 1usize;
        while let Some(b) = self.peek(0) {
            match (b, self.peek(1)) {
                (b'/', Some(b'*')) => {
                    nesting += 1;
                    self.pos += 2;
                }
                (b'*', Some(b'/')) => {
                    self.pos += 2;
                    nesting -= 1;
                    if nesting == 0 {
                        return;
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Digits, with `_` between digits as sqlparser allows for PostgreSQL
    /// (an underscore followed by any hexadecimal digit).
    fn skip_digits(&mut self, hex: bool) {
        while let Some(b) = self.peek(0) {
            let digit = if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            };
            let separator = b == b'_' && self.peek(1).is_some_and(|n| n.is_ascii_hexdigit());
            if !digit && !separator {
                break;
            }
            self.pos += 1;
        }
    }

    /// A number from its first digit or its leading `.`.
    fn skip_number(&mut self) {
        let start = self.pos;
        self.skip_digits(false);
        if &self.bytes[start..self.pos] == b"0" && self.peek(0) == Some(b'x') {
            self.pos += 1;
            self.skip_digits(true);
            return;
        }
        if self.peek(0) == Some(b'.') {
            self.pos += 1;
        }
        self.skip_digits(false);
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek(1), Some(b'+' | b'-')));
            if self.peek(1 + sign).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1 + sign;
                while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
        }
        if self.peek(0) == Some(b'L') {
            self.pos += 1;
        }
    }

    /// Where the operator token starting here ends. sqlparser reads some
    /// operators as fixed tokens (`+`, `*`, `/`, `=`, `!=`, `^`, `@>`, ...)
    /// and the others greedily (with every operator character that
    /// follows), so that `+--x` is `+` and a comment while `<--x` is one
    /// operator followed by `x`.
    fn operator_end(&self) -> usize {
        let at = |i: usize| self.peek(i).unwrap_or(0);
        let fixed = |n: usize| self.pos + n;
        let greedy = |n: usize| {
            let mut end = self.pos + n;
            while self.bytes.get(end).copied().is_some_and(is_operator_char) {
                end += 1;
            }
            end
        };
        match (at(0), at(1)) {
            (b'-', b'>') if at(2) == b'>' => greedy(3),
            (b'-', b'>') => greedy(2),
            (b'/' | b'+' | b'*' | b'`', _) => fixed(1),
            (b'|', b'/' | b'&' | b'>') if at(2) == b'>' && at(1) != b'/' => greedy(3),
            (b'|', b'/' | b'&' | b'>') => greedy(2),
            (b'|', b'|') if at(2) == b'/' => greedy(3),
            (b'|', b'|') => greedy(2),
            (b'=', b'>' | b'=') => fixed(2),
            (b'=', _) => fixed(1),
            (b'!', b'=' | b'!') => fixed(2),
            (b'!', b'~') => match (at(2), at(3)) {
                (b'*', _) => fixed(3),
                (b'~', b'*') => fixed(4),
                (b'~', _) => fixed(3),
                _ => fixed(2),
            },
            (b'!', _) => fixed(1),
            (b'<', b'=') => match at(2) {
                b'>' => greedy(3),
                b'+' | b'-' => fixed(2),
                _ => greedy(2),
            },
            (b'<', b'<') if at(2) == b'|' => greedy(3),
            (b'<', b'|' | b'>' | b'<' | b'^' | b'@') => greedy(2),
            (b'<', b'+') => fixed(1),
            (b'<', b'-') if at(2) == b'>' => greedy(3),
            (b'<', b'-') => fixed(1),
            (b'>', b'=' | b'>' | b'^') => greedy(2),
            // sqlparser takes the character after `&>` into the token.
            (b'&', b'>') => {
                let third = self.text.get(self.pos + 2..).and_then(|r| r.chars().next());
                fixed(2 + third.map_or(0, char::len_utf8))
            }
            (b'&', b'<') if at(2) == b'|' => fixed(3),
            (b'&', b'<' | b'&') => greedy(2),
            (b'^', b'@') => fixed(2),
            (b'^', _) => fixed(1),
            (b'~', b'~') if at(2) == b'*' => greedy(3),
            (b'~', b'*' | b'=' | b'~') => greedy(2),
            (b'#', b'>') if at(2) == b'>' => greedy(3),
            (b'#', b'-' | b'>' | b'#') => greedy(2),
            (b'#', b' ') => fixed(1),
            (b'@', b'@' | b'>' | b'?') => fixed(2),
            (b'@', b'-') if at(2) == b'@' => fixed(3),
            (b'@', b'-') => greedy(2),
            (b'@', _) => fixed(1),
            (b'?', b'|') if at(2) == b'|' => fixed(3),
            (b'?', b'-') if at(2) == b'|' => fixed(3),
            (b'?', b'|' | b'&' | b'#' | b'-') => fixed(2),
            (b'?', _) => fixed(1),
            _ => greedy(1),
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Lexeme<'a>;

    fn next(&mut self) -> Option<Lexeme<'a>> {
        loop {
            let b = self.peek(0)?;
            let next = self.peek(1);
            match b {
                b if b.is_ascii_whitespace() || b == 0x0b => self.pos += 1,
                b'-' if next == Some(b'-') => {
                    while self.peek(0).is_some_and(|b| b != b'\n' && b != b'\r') {
                        self.pos += 1;
                    }
                }
                b'/' if next == Some(b'*') => self.skip_block_comment(),
                _ => break,
            }
        }
        let b = self.peek(0)?;
        let next = self.peek(1);
        let start = self.pos;
        let lexeme = match b {
            b'\'' => {
                self.skip_quoted(b'\'', false);
                Lexeme::Literal
            }
            b'"' => {
                self.skip_quoted(b'"', false);
                Lexeme::QuotedIdent
            }
            b'$' => {
                self.skip_dollar();
                Lexeme::Literal
            }
            b'e' | b'E' if next == Some(b'\'') => {
                self.pos += 1;
                self.skip_quoted(b'\'', true);
                Lexeme::Literal
            }
            b'x' | b'X' if next == Some(b'\'') => {
                self.pos += 1;
                self.skip_quoted(b'\'', true);
                Lexeme::Literal
            }
            b'b' | b'B' | b'n' | b'N' if next == Some(b'\'') => {
                self.pos += 1;
                self.skip_quoted(b'\'', false);
                Lexeme::Literal
            }
            b'b' | b'B' if next == Some(b'"') => {
                self.pos += 1;
                self.skip_quoted(b'"', false);
                Lexeme::Literal
            }
            b'u' | b'U' if next == Some(b'&') && self.peek(2) == Some(b'\'') => {
                self.pos += 2;
                self.skip_unicode_string();
                Lexeme::Literal
            }
            b if is_ident_start(b) => {
                self.pos += 1;
                while self.peek(0).is_some_and(is_ident_part) {
                    self.pos += 1;
                }
                Lexeme::Word(self.text.get(start..self.pos).unwrap_or_default())
            }
            b'0'..=b'9' => {
                self.skip_number();
                Lexeme::Literal
            }
            b'.' if next.is_some_and(|b| b.is_ascii_digit()) => {
                self.skip_number();
                Lexeme::Literal
            }
            b'.' => {
                self.pos += 1;
                Lexeme::Period
            }
            b'(' | b')' | b'[' | b']' | b',' | b';' => {
                self.pos += 1;
                match b {
                    b'(' => Lexeme::LParen,
                    b')' => Lexeme::RParen,
                    b'[' => Lexeme::LBracket,
                    b']' => Lexeme::RBracket,
                    b',' => Lexeme::Comma,
                    _ => Lexeme::Semicolon,
                }
            }
            b':' if next == Some(b':') => {
                self.pos += 2;
                Lexeme::Cast
            }
            b':' if next == Some(b'=') => {
                self.pos += 2;
                Lexeme::Other
            }
            b if is_operator_char(b) => {
                self.pos = self.operator_end().min(self.bytes.len());
                Lexeme::Operator(self.text.get(start..self.pos).unwrap_or_default())
            }
            _ => {
                self.pos += 1;
                Lexeme::Other
            }
        };
        Some(lexeme)
    }
}
