//! Operands of the filter parser: literals and lists (with template
//! values), `like` patterns, field references with their JSON paths and
//! array indexes, and function calls (`json_contains`, `array_length`, ...).

use super::*;

impl<'a> Parser<'a> {
    /// Parses the list after `in` / `not in`.
    pub(super) fn parse_in(&mut self, mut left: Expr, negated: bool) -> Result<Expr> {
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
    pub(super) fn parse_list(&mut self, what: &str, site: &str) -> Result<Vec<(Lit, usize)>> {
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
    pub(super) fn parse_literal(&mut self, what: &str) -> Result<Lit> {
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

    pub(super) fn parse_pattern(&mut self) -> Result<String> {
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
    pub(super) fn parse_template_name(&mut self) -> Result<(String, usize)> {
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

    pub(super) fn template(&self, name: &str, pos: usize) -> Result<&'a TemplateValue> {
        self.templates
            .get(name)
            .ok_or_else(|| FilterError::new(pos, format!("template variable {name} not found")))
    }

    /// Parses a literal, template placeholder, field reference or function
    /// call.
    pub(super) fn parse_atom(&mut self) -> Result<Expr> {
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

    pub(super) fn parse_identifier(&mut self, name: String, pos: usize) -> Result<Expr> {
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
    pub(super) fn parse_field_ref(&mut self, name: String, pos: usize) -> Result<FieldRef> {
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
    pub(super) fn parse_path(&mut self, path: &mut Vec<PathElem>) -> Result<()> {
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
    pub(super) fn parse_call(&mut self, name: String, pos: usize) -> Result<Expr> {
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
    pub(super) fn parse_source_arg(&mut self, func: &str) -> Result<Access> {
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
    pub(super) fn parse_contains_values(
        &mut self,
        func: &str,
        op: ContainsOp,
    ) -> Result<Vec<(Lit, usize)>> {
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

pub(super) fn int_lit(value: i128, pos: usize) -> Result<Lit> {
    i64::try_from(value)
        .map(Lit::Int)
        .map_err(|_| FilterError::new(pos, "integer literal out of range"))
}

pub(super) fn template_lit(value: &TemplateValue, name: &str, pos: usize) -> Result<Lit> {
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
