//! The filter parser: tokens to a typed expression tree, on an explicit
//! operator stack (no recursion), resolving fields and checking types. The
//! operands (literals, lists, field references, calls) are in `operands`.

use super::*;

/// An operator still waiting for its right-hand operand. The parser keeps
/// these on an explicit stack instead of recursing, so hostile nesting can
/// only grow heap memory (and is capped by `MAX_DEPTH` anyway).
pub(super) enum Frame {
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
pub(super) const PREC_OR: u8 = 1;
pub(super) const PREC_AND: u8 = 2;
pub(super) const PREC_EQ: u8 = 3;
pub(super) const PREC_REL: u8 = 4;
pub(super) const PREC_IN: u8 = 5;
pub(super) const PREC_ADD: u8 = 6;
pub(super) const PREC_MUL: u8 = 7;
pub(super) const PREC_UNARY: u8 = 8;
pub(super) const PREC_POW: u8 = 9;
pub(super) const PREC_LIKE: u8 = 10;
pub(super) const PREC_IS: u8 = 11;

impl Frame {
    /// Binding power of the pending operator; 0 for an open parenthesis.
    pub(super) fn prec(&self) -> u8 {
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
pub(super) fn infix_prec(tok: &Tok, next: &Tok) -> Option<u8> {
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
pub(super) enum FieldRef {
    /// A scalar column.
    Scalar(String, Ty),
    /// A whole JSON or ARRAY column.
    Whole(String, SourceKind),
    /// A value inside a JSON or ARRAY column.
    Access(Access, Ty),
}

pub(super) struct Parser<'a> {
    pub(super) tokens: Vec<Token>,
    pub(super) idx: usize,
    /// Pending operators (see [`Frame`]).
    pub(super) stack: Vec<Frame>,
    /// Number of parenthesis / prefix / `**` frames on `stack`.
    pub(super) depth: usize,
    pub(super) fields: &'a [FilterField<'a>],
    pub(super) templates: &'a HashMap<String, TemplateValue>,
    /// The collection has a dynamic field (`$meta`): undeclared names are
    /// its keys.
    pub(super) dynamic: bool,
}

impl<'a> Parser<'a> {
    pub(super) fn peek(&self) -> &Tok {
        &self.tokens[self.idx].tok
    }

    pub(super) fn peek_at(&self, k: usize) -> &Tok {
        let i = (self.idx + k).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    pub(super) fn current(&self) -> &Token {
        &self.tokens[self.idx]
    }

    /// Consumes the current token (never moves past `Eof`).
    pub(super) fn bump(&mut self) -> Token {
        let tok = self.tokens[self.idx].clone();
        if self.idx + 1 < self.tokens.len() {
            self.idx += 1;
        }
        tok
    }

    pub(super) fn unexpected(&self) -> FilterError {
        let tok = self.current();
        if tok.tok == Tok::Eof {
            FilterError::new(tok.pos, "unexpected end of expression")
        } else {
            FilterError::new(tok.pos, format!("unexpected token '{}'", tok.text))
        }
    }

    pub(super) fn expected(&self, what: &str) -> FilterError {
        let tok = self.current();
        let found = if tok.tok == Tok::Eof {
            "end of expression".to_string()
        } else {
            format!("'{}'", tok.text)
        };
        FilterError::new(tok.pos, format!("expected {what}, found {found}"))
    }

    pub(super) fn expect(&mut self, tok: Tok, what: &str) -> Result<Token> {
        if *self.peek() == tok {
            Ok(self.bump())
        } else {
            Err(self.expected(what))
        }
    }

    /// Pushes a parenthesis, prefix or `**` frame, enforcing `MAX_DEPTH`.
    pub(super) fn push_nested(&mut self, frame: Frame, pos: usize) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        self.depth += 1;
        self.stack.push(frame);
        Ok(())
    }

    /// Parses a whole expression (operator-precedence parsing with an
    /// explicit stack; no recursion).
    pub(super) fn parse_expression(&mut self) -> Result<Expr> {
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
    pub(super) fn parse_operand(&mut self) -> Result<Expr> {
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
    pub(super) fn reduce_above(&mut self, mut operand: Expr, prec: u8) -> Result<Expr> {
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
    pub(super) fn reduce(&mut self, frame: Frame, mut operand: Expr) -> Result<Expr> {
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
    pub(super) fn relational(&mut self, mut operand: Expr) -> Result<()> {
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
    pub(super) fn postfix(&mut self, mut operand: Expr) -> Result<Expr> {
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
}
