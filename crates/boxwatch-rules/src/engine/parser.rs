//! Condition grammar: tokens to an AST, with spans for error messages.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | check
//! check   := FIELD "exists"
//!          | FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=") value
//!          | FIELD ("in" | "intersects" | "pmatch") "(" [value ("," value)*] ")"
//!          | FIELD ("startswith" | "endswith" | "contains" | "icontains" | "glob") (value | "(" values ")")
//!          | NAME                      -- a macro, or a boolean field
//! value   := WORD | "quoted string"    -- inside "( )", a bare list name expands to its items
//! ```
//! A word followed by an operator is a field; any other word is a macro or boolean field.

use super::fields::edit_distance;
use super::lexer::{LexError, Span, Sym, Tok, Token, lex};

/// Deepest nesting of `not` and parentheses accepted.
pub(crate) const MAX_NESTING: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Intersects,
    StartsWith,
    EndsWith,
    Contains,
    IContains,
    Glob,
    PMatch,
    Exists,
    BContains,
    BStartsWith,
    Regex,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::StartsWith => "startswith",
            Op::EndsWith => "endswith",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::Glob => "glob",
            Op::PMatch => "pmatch",
            Op::Exists => "exists",
            Op::BContains => "bcontains",
            Op::BStartsWith => "bstartswith",
            Op::Regex => "regex",
        }
    }

    /// The operator a word names, if it is one.
    pub fn from_word(w: &str) -> Option<Op> {
        Some(match w {
            "in" => Op::In,
            "intersects" => Op::Intersects,
            "startswith" => Op::StartsWith,
            "endswith" => Op::EndsWith,
            "contains" => Op::Contains,
            "icontains" => Op::IContains,
            "glob" => Op::Glob,
            "pmatch" => Op::PMatch,
            "exists" => Op::Exists,
            "bcontains" => Op::BContains,
            "bstartswith" => Op::BStartsWith,
            "regex" => Op::Regex,
            _ => return None,
        })
    }

    /// Takes a parenthesised list and nothing else.
    pub fn needs_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::PMatch)
    }

    /// Takes one value or a list.
    pub fn takes_list(self) -> bool {
        self.needs_list()
            || matches!(self, Op::StartsWith | Op::EndsWith | Op::Contains | Op::IContains | Op::Glob)
    }
}

/// A literal value in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lit {
    pub text: String,
    pub span: Span,
    /// Written in quotes: never a list reference.
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rhs {
    None,
    One(Lit),
    List(Vec<Lit>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ast {
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Not(Box<Ast>),
    /// A macro or a boolean field used as a condition.
    Ref {
        name: String,
        span: Span,
    },
    Cmp {
        field: String,
        fspan: Span,
        op: Op,
        ospan: Span,
        rhs: Rhs,
    },
}

const KEYWORDS: [&str; 3] = ["and", "or", "not"];
const OPS: [&str; 12] = [
    "in",
    "intersects",
    "startswith",
    "endswith",
    "contains",
    "icontains",
    "glob",
    "pmatch",
    "exists",
    "bcontains",
    "bstartswith",
    "regex",
];

pub(crate) fn parse(text: &str) -> Result<Ast, LexError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err((0, "empty condition".into()));
    }
    let mut p = P { toks, pos: 0, end: text.len(), depth: 0 };
    let ast = p.expr()?;
    match p.toks.get(p.pos) {
        None => Ok(ast),
        Some(t) if t.tok == Tok::RParen => Err((t.span.0, "unbalanced ')'".into())),
        Some(t) => Err((t.span.0, format!("expected 'and', 'or' or the end, found {}", describe(&t.tok)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Sym(s) => format!("'{}'", sym_op(*s).name()),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Str(s) => format!("string \"{s}\""),
    }
}

fn sym_op(s: Sym) -> Op {
    match s {
        Sym::Eq => Op::Eq,
        Sym::Ne => Op::Ne,
        Sym::Lt => Op::Lt,
        Sym::Le => Op::Le,
        Sym::Gt => Op::Gt,
        Sym::Ge => Op::Ge,
    }
}

struct P {
    toks: Vec<Token>,
    pos: usize,
    end: usize,
    depth: usize,
}

impl P {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(x), .. }) if x == w)
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.span.0)
    }

    fn expr(&mut self) -> Result<Ast, LexError> {
        let mut items = vec![self.and()?];
        while self.peek_word("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.pop().unwrap_or(Ast::Or(Vec::new())) } else { Ast::Or(items) })
    }

    fn and(&mut self) -> Result<Ast, LexError> {
        let mut items = vec![self.unary()?];
        while self.peek_word("and") {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.pop().unwrap_or(Ast::And(Vec::new())) } else { Ast::And(items) })
    }

    fn unary(&mut self) -> Result<Ast, LexError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err((self.here(), format!("condition nested deeper than {MAX_NESTING} levels")));
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Ast, LexError> {
        let Some(t) = self.peek().cloned() else {
            return Err((self.end, "expected a condition, found the end".into()));
        };
        self.pos += 1;
        match t.tok {
            Tok::Word(w) if w == "not" => Ok(Ast::Not(Box::new(self.unary()?))),
            Tok::LParen => {
                let e = self.expr()?;
                match self.peek() {
                    Some(Token { tok: Tok::RParen, .. }) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    Some(x) => Err((x.span.0, format!("expected ')', found {}", describe(&x.tok)))),
                    None => Err((t.span.0, "unclosed '('".into())),
                }
            }
            Tok::Word(w) if KEYWORDS.contains(&w.as_str()) || Op::from_word(&w).is_some() => {
                Err((t.span.0, format!("expected a condition, found '{w}'")))
            }
            Tok::Word(w) => self.check(w, t.span),
            other => Err((t.span.0, format!("expected a condition, found {}", describe(&other)))),
        }
    }

    fn check(&mut self, name: String, span: Span) -> Result<Ast, LexError> {
        let (op, ospan) = match self.peek() {
            Some(Token { tok: Tok::Sym(s), span }) => (sym_op(*s), *span),
            Some(Token { tok: Tok::Word(w), span: wspan }) => match Op::from_word(w) {
                Some(op) => (op, *wspan),
                // `proc.name startwith x`: a field followed by a word that is no keyword.
                None if name.contains('.') && !KEYWORDS.contains(&w.as_str()) => {
                    let near =
                        OPS.iter().filter(|o| edit_distance(w, o) <= 2).min_by_key(|o| edit_distance(w, o));
                    let hint = near.map(|o| format!(" (did you mean '{o}'?)")).unwrap_or_default();
                    return Err((wspan.0, format!("unknown operator '{w}'{hint}")));
                }
                None => return Ok(Ast::Ref { name, span }),
            },
            _ => return Ok(Ast::Ref { name, span }),
        };
        self.pos += 1;
        let rhs = if op == Op::Exists {
            Rhs::None
        } else if matches!(self.peek(), Some(Token { tok: Tok::LParen, .. })) {
            if !op.takes_list() {
                let hint = if op == Op::Eq || op == Op::Ne { "; use 'in' for a list" } else { "" };
                return Err((self.here(), format!("operator '{}' takes a single value{hint}", op.name())));
            }
            self.pos += 1;
            Rhs::List(self.list()?)
        } else if op.needs_list() {
            return Err((self.here(), format!("expected '(' after '{}'", op.name())));
        } else {
            Rhs::One(self.value(op)?)
        };
        Ok(Ast::Cmp { field: name, fspan: span, op, ospan, rhs })
    }

    fn value(&mut self, op: Op) -> Result<Lit, LexError> {
        match self.peek().cloned() {
            Some(Token { tok: Tok::Word(text), span }) => {
                self.pos += 1;
                Ok(Lit { text, span, quoted: false })
            }
            Some(Token { tok: Tok::Str(text), span }) => {
                self.pos += 1;
                Ok(Lit { text, span, quoted: true })
            }
            Some(t) => {
                Err((t.span.0, format!("expected a value after '{}', found {}", op.name(), describe(&t.tok))))
            }
            None => Err((self.end, format!("expected a value after '{}'", op.name()))),
        }
    }

    /// Items after `(` up to and including `)`.
    fn list(&mut self) -> Result<Vec<Lit>, LexError> {
        let mut items = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Token { tok: Tok::RParen, .. }) => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(Token { tok: Tok::Word(text), span }) => items.push(Lit { text, span, quoted: false }),
                Some(Token { tok: Tok::Str(text), span }) => items.push(Lit { text, span, quoted: true }),
                Some(t) => {
                    return Err((t.span.0, format!("expected a list item, found {}", describe(&t.tok))));
                }
                None => return Err((self.end, "unclosed '(' in value list".into())),
            }
            self.pos += 1;
            match self.peek() {
                Some(Token { tok: Tok::Comma, .. }) => self.pos += 1,
                Some(Token { tok: Tok::RParen, .. }) => {}
                Some(t) => {
                    return Err((t.span.0, format!("expected ',' or ')', found {}", describe(&t.tok))));
                }
                None => return Err((self.end, "unclosed '(' in value list".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: &str, op: Op) -> impl Fn(&Ast) -> bool + '_ {
        move |a| matches!(a, Ast::Cmp { field: f, op: o, .. } if f == field && *o == op)
    }

    #[test]
    fn precedence_and_grouping() {
        let a = parse("a = 1 or b exists and not (c or d)").unwrap();
        let Ast::Or(items) = a else { panic!("{a:?}") };
        assert!(cmp("a", Op::Eq)(&items[0]));
        let Ast::And(and) = &items[1] else { panic!() };
        assert!(cmp("b", Op::Exists)(&and[0]));
        assert!(matches!(&and[1], Ast::Not(x) if matches!(**x, Ast::Or(_))));
    }

    #[test]
    fn lists_and_values() {
        let a = parse("proc.name in (sh, 'b c', shells,)").unwrap();
        let Ast::Cmp { rhs: Rhs::List(items), .. } = a else { panic!() };
        assert_eq!(items.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["sh", "b c", "shells"]);
        assert!(items[1].quoted && !items[2].quoted);
        assert!(matches!(parse("x in ()").unwrap(), Ast::Cmp { rhs: Rhs::List(v), .. } if v.is_empty()));
        assert!(matches!(parse("fd.name startswith /etc").unwrap(), Ast::Cmp { rhs: Rhs::One(_), .. }));
        assert!(matches!(parse("my_macro").unwrap(), Ast::Ref { .. }));
    }

    #[test]
    fn errors_point_at_tokens() {
        assert_eq!(parse("").unwrap_err().0, 0);
        assert_eq!(parse("a = ").unwrap_err(), (4, "expected a value after '='".into()));
        assert_eq!(parse("a in x").unwrap_err().0, 5);
        assert_eq!(parse("a = (x)").unwrap_err().0, 4);
        assert_eq!(parse("(a and b").unwrap_err().0, 0);
        assert_eq!(parse("a and b)").unwrap_err().0, 7);
        assert_eq!(parse("a b").unwrap_err().0, 2);
        assert_eq!(
            parse("p.x startwith y").unwrap_err(),
            (4, "unknown operator 'startwith' (did you mean 'startswith'?)".into())
        );
        assert_eq!(parse("a and or b").unwrap_err().0, 6);
        assert!(parse(&"not ".repeat(200)).unwrap_err().1.contains("nested"));
        assert!(parse(&("(".repeat(100) + "a" + &")".repeat(100))).is_err());
    }
}
