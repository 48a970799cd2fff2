//! From condition ASTs to typed predicates.
//!
//! Fields become [`Field`] ids, literals are parsed once into the field's type (numbers,
//! flag names, event-type ids, CIDR networks), `in` lists become sets, `pmatch` lists a prefix
//! set, and macros are compiled once and shared by reference ([`Pred::Shared`]). `and`/`or`
//! operands are flattened, constant-folded and ordered cheapest first. [`Pred::types`] gives
//! the event types a predicate can match, for the per-type rule index.

use std::collections::HashMap;
use std::sync::Arc;

use super::RuleError;
use super::fields::{self, Field, Kind};
use super::matchers::{Glob, IpNet, PrefixSet, StrSet};
use super::parser::{self, Ast, Lit, Op, Rhs};
use super::symbols;
use super::yaml::{Mark, Source, Style};

/// Most checks a rule may contain once its macros are expanded.
pub(crate) const MAX_CHECKS: u64 = 100_000;
/// Deepest predicate once macros are expanded.
pub(crate) const MAX_PRED_DEPTH: u32 = 256;
/// Deepest chain of macros using macros not compiled yet.
pub(crate) const MAX_MACRO_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Exists,
    Bool(bool),
    /// Bit per type id: observed types below 64, unobserved ones (Falco's) from 64 on.
    TypeIn(u128),
    IntCmp(Cmp, i64),
    IntIn(Box<[i64]>),
    /// Any of the masks has all its bits set.
    FlagsAny(Box<[u64]>),
    StrEq(Box<str>),
    StrIn(StrSet),
    StartsWith(Box<[Box<str>]>),
    EndsWith(Box<[Box<str>]>),
    Contains(Box<[Box<str>]>),
    /// Needles are lowercase.
    IContains(Box<[Box<str>]>),
    Glob(Box<[Glob]>),
    PMatch(PrefixSet),
    IpIn(Box<[IpNet]>),
    /// `bcontains`/`bstartswith`: byte strings given in hex.
    BContains(Box<[Box<[u8]>]>),
    BStartsWith(Box<[Box<[u8]>]>),
    Regex(Box<regex::Regex>),
}

impl Test {
    fn cost(&self) -> u32 {
        match self {
            Test::Glob(_) | Test::Regex(_) => 6,
            Test::IContains(_) | Test::Contains(_) => 4,
            Test::PMatch(_) | Test::StrIn(_) => 3,
            Test::StartsWith(_) | Test::EndsWith(_) | Test::StrEq(_) | Test::IpIn(_) => 2,
            _ => 1,
        }
    }
}

/// One field test. An absent field fails every test (also when negated, as in Falco).
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub field: Field,
    pub test: Test,
    pub negate: bool,
}

/// A compiled macro, shared by every rule using it.
#[derive(Debug)]
pub(crate) struct Shared {
    pub pred: Pred,
    depth: u32,
    size: u64,
    cost: u32,
    types: Option<u128>,
}

#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Const(bool),
    And(Box<[Pred]>),
    Or(Box<[Pred]>),
    Not(Box<Pred>),
    Check(Box<Check>),
    Shared(Arc<Shared>),
}

impl Pred {
    pub fn and(items: Vec<Pred>) -> Pred {
        Self::join(items, true)
    }

    pub fn or(items: Vec<Pred>) -> Pred {
        Self::join(items, false)
    }

    /// `and` (`all`) or `or`: flatten, fold constants, cheapest operand first.
    fn join(items: Vec<Pred>, all: bool) -> Pred {
        let mut out = Vec::with_capacity(items.len());
        for p in items {
            match p {
                Pred::Const(b) if b == all => {}
                Pred::Const(b) => return Pred::Const(b),
                Pred::And(xs) if all => out.extend(xs.into_vec()),
                Pred::Or(xs) if !all => out.extend(xs.into_vec()),
                p => out.push(p),
            }
        }
        out.sort_by_key(Pred::cost);
        match out.len() {
            0 => Pred::Const(all),
            1 => out.pop().unwrap_or(Pred::Const(all)),
            _ if all => Pred::And(out.into()),
            _ => Pred::Or(out.into()),
        }
    }

    pub fn negate(p: Pred) -> Pred {
        match p {
            Pred::Const(b) => Pred::Const(!b),
            Pred::Not(x) => *x,
            p => Pred::Not(Box::new(p)),
        }
    }

    pub fn shared(pred: Pred) -> Pred {
        let (depth, size, cost, types) = (pred.depth(), pred.size(), pred.cost(), pred.types());
        Pred::Shared(Arc::new(Shared { pred, depth, size, cost, types }))
    }

    /// Nesting depth, macros included: bounds evaluation recursion.
    pub fn depth(&self) -> u32 {
        match self {
            Pred::Const(_) | Pred::Check(_) => 1,
            Pred::Not(p) => 1 + p.depth(),
            Pred::And(ps) | Pred::Or(ps) => 1 + ps.iter().map(Pred::depth).max().unwrap_or(0),
            Pred::Shared(s) => 1 + s.depth,
        }
    }

    /// Checks once macros are expanded (saturating).
    pub fn size(&self) -> u64 {
        match self {
            Pred::Const(_) => 0,
            Pred::Check(_) => 1,
            Pred::Not(p) => p.size(),
            Pred::And(ps) | Pred::Or(ps) => ps.iter().fold(0u64, |a, p| a.saturating_add(p.size())),
            Pred::Shared(s) => s.size,
        }
    }

    fn cost(&self) -> u32 {
        match self {
            Pred::Const(_) => 0,
            Pred::Check(c) => c.field.cost().saturating_mul(c.test.cost()),
            Pred::Not(p) => p.cost(),
            Pred::And(ps) | Pred::Or(ps) => ps.iter().fold(0u32, |a, p| a.saturating_add(p.cost())),
            Pred::Shared(s) => s.cost,
        }
    }

    /// The event types this can match, as a bit mask of type ids; `None`: any type.
    pub fn types(&self) -> Option<u128> {
        match self {
            Pred::Const(true) => None,
            Pred::Const(false) => Some(0),
            Pred::Check(c) => match (c.field, &c.test) {
                (Field::EvtType, Test::TypeIn(m)) => Some(if c.negate { !m } else { *m }),
                _ => None,
            },
            Pred::And(ps) => ps.iter().filter_map(Pred::types).reduce(|a, b| a & b),
            Pred::Or(ps) => ps.iter().map(Pred::types).try_fold(0, |a, t| t.map(|t| a | t)),
            Pred::Not(p) => match &**p {
                Pred::Check(c) if c.field == Field::EvtType => p.types().map(|m| !m),
                _ => None,
            },
            Pred::Shared(s) => s.types,
        }
    }
}

/// Where one piece of a condition comes from: Falco's `append` and `override: {condition:
/// append}` join texts from several items (and files) with a space.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    /// Byte offset of the piece in the joined text.
    pub at: usize,
    pub len: usize,
    pub file: usize,
    pub mark: Mark,
    pub style: Style,
}

/// A condition text, possibly joined from several pieces, and where each piece is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct CondText {
    pub text: String,
    pub parts: Vec<Part>,
}

impl CondText {
    pub fn new(file: usize, mark: Mark, style: Style, text: &str) -> CondText {
        let mut c = CondText::default();
        c.append(file, mark, style, text);
        c
    }

    /// Falco's textual append: the old text, a space, the new text.
    pub fn append(&mut self, file: usize, mark: Mark, style: Style, text: &str) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.parts.push(Part { at: self.text.len(), len: text.len(), file, mark, style });
        self.text.push_str(text);
    }
}

/// A condition being compiled, with its sources for error positions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CondSrc<'s> {
    pub sources: &'s [Source],
    pub cond: &'s CondText,
}

impl CondSrc<'_> {
    pub fn text(&self) -> &str {
        &self.cond.text
    }

    pub fn err(&self, offset: usize, msg: impl Into<String>) -> RuleError {
        let parts = &self.cond.parts;
        let i = parts.partition_point(|p| p.at <= offset).saturating_sub(1);
        let Some(p) = parts.get(i) else {
            return RuleError { file: String::new(), line: 0, column: 0, message: msg.into() };
        };
        let src = &self.sources[p.file];
        let piece = self.cond.text.get(p.at..p.at + p.len).unwrap_or("");
        src.error(src.pos_in_scalar(p.mark, p.style, piece, offset.saturating_sub(p.at)), msg)
    }
}

/// A macro definition: name and condition.
#[derive(Debug, Clone)]
pub(crate) struct MacroDef {
    pub name: String,
    pub cond: CondText,
}

enum State {
    Pending(usize),
    InProgress,
    Done(Option<Pred>),
}

/// Compiles conditions against one set of lists and macros, collecting errors.
pub(crate) struct Compiler<'d> {
    pub sources: &'d [Source],
    pub lists: &'d HashMap<String, Vec<String>>,
    defs: &'d [MacroDef],
    macros: HashMap<&'d str, State>,
    stack: Vec<&'d str>,
    pub errors: Vec<RuleError>,
}

/// Why a test could not be built: at a value (index into the values) or at the operator.
pub(crate) type TestError = (Option<usize>, String);

impl<'d> Compiler<'d> {
    pub fn new(sources: &'d [Source], lists: &'d HashMap<String, Vec<String>>, defs: &'d [MacroDef]) -> Self {
        let macros = defs.iter().enumerate().map(|(i, d)| (d.name.as_str(), State::Pending(i))).collect();
        Compiler { sources, lists, defs, macros, stack: Vec::new(), errors: Vec::new() }
    }

    /// Compile every macro, so errors in unused ones are reported too.
    pub fn compile_macros(&mut self) {
        for d in self.defs {
            self.macro_pred(&d.name, None);
        }
    }

    fn macro_pred(&mut self, name: &str, at: Option<(&CondSrc, usize)>) -> Option<Option<Pred>> {
        let (key, state) = self.macros.remove_entry(name)?;
        let result = match state {
            State::Done(p) => p,
            State::InProgress => {
                let cycle = self.stack.iter().chain([&key]).copied().collect::<Vec<_>>().join(" -> ");
                if let Some((cs, off)) = at {
                    self.errors.push(cs.err(off, format!("macro '{name}' refers to itself ({cycle})")));
                }
                self.macros.insert(key, State::InProgress);
                return Some(None);
            }
            State::Pending(_) if self.stack.len() >= MAX_MACRO_DEPTH => {
                if let Some((cs, off)) = at {
                    self.errors
                        .push(cs.err(off, format!("macros nested deeper than {MAX_MACRO_DEPTH} levels")));
                }
                self.macros.insert(key, state);
                return Some(None);
            }
            State::Pending(i) => {
                self.macros.insert(key, State::InProgress);
                self.stack.push(key);
                let (defs, sources) = (self.defs, self.sources);
                let d = &defs[i];
                let cs = CondSrc { sources, cond: &d.cond };
                let p = self.condition(&cs).map(Pred::shared);
                self.stack.pop();
                p
            }
        };
        self.macros.insert(key, State::Done(result.clone()));
        Some(result)
    }

    /// Parse and compile a condition; `None` after reporting its errors.
    pub fn condition(&mut self, cs: &CondSrc) -> Option<Pred> {
        let ast = match parser::parse(cs.text()) {
            Ok(a) => a,
            Err((off, msg)) => {
                self.errors.push(cs.err(off, msg));
                return None;
            }
        };
        let p = self.ast(&ast, cs)?;
        if p.depth() > MAX_PRED_DEPTH {
            self.errors.push(cs.err(
                0,
                format!("condition nested deeper than {MAX_PRED_DEPTH} levels once macros are expanded"),
            ));
            return None;
        }
        if p.size() > MAX_CHECKS {
            self.errors
                .push(cs.err(0, format!("condition has over {MAX_CHECKS} checks once macros are expanded")));
            return None;
        }
        Some(p)
    }

    fn ast(&mut self, ast: &Ast, cs: &CondSrc) -> Option<Pred> {
        match ast {
            Ast::And(xs) | Ast::Or(xs) => {
                let ps: Vec<Option<Pred>> = xs.iter().map(|x| self.ast(x, cs)).collect();
                let ps: Vec<Pred> = ps.into_iter().collect::<Option<_>>()?;
                Some(if matches!(ast, Ast::And(_)) { Pred::and(ps) } else { Pred::or(ps) })
            }
            Ast::Not(x) => self.ast(x, cs).map(Pred::negate),
            Ast::Ref { name, span } => self.reference(name, span.0, cs),
            Ast::Cmp { field, fspan, op, ospan, rhs } => {
                let Some((f, kind)) = fields::lookup(field) else {
                    self.errors.push(cs.err(fspan.0, unknown_field(field)));
                    return None;
                };
                let lits: Vec<&Lit> = match rhs {
                    Rhs::None => Vec::new(),
                    Rhs::One(l) => vec![l],
                    Rhs::List(ls) => ls.iter().collect(),
                };
                let expand = matches!(rhs, Rhs::List(_));
                // (value, index of its literal, the list it came from)
                let mut vals: Vec<(&str, usize, Option<&str>)> = Vec::new();
                for (i, l) in lits.iter().enumerate() {
                    match self.lists.get(&l.text).filter(|_| expand && !l.quoted) {
                        Some(items) => {
                            vals.extend(items.iter().map(|s| (s.as_str(), i, Some(l.text.as_str()))))
                        }
                        None => vals.push((&l.text, i, None)),
                    }
                }
                if matches!(kind, Kind::Str | Kind::Strs)
                    && let Some((l, near)) = lits
                        .iter()
                        .filter(|l| expand && !l.quoted)
                        .find_map(|l| self.near_list(&l.text).map(|n| (l, n)))
                {
                    let msg = format!(
                        "unknown list '{}' (did you mean '{near}'? quote the value if it is meant literally)",
                        l.text
                    );
                    self.errors.push(cs.err(l.span.0, msg));
                    return None;
                }
                let texts: Vec<&str> = vals.iter().map(|v| v.0).collect();
                match build_test(kind, field, *op, &texts) {
                    Ok((test, negate)) => Some(Pred::Check(Box::new(Check { field: f, test, negate }))),
                    Err((at, msg)) => {
                        let (off, msg) = match at.and_then(|i| vals.get(i)) {
                            Some((_, li, Some(list))) => {
                                (lits[*li].span.0, format!("{msg} (in list '{list}')"))
                            }
                            Some((_, li, None)) => (lits[*li].span.0, msg),
                            None => (ospan.0, msg),
                        };
                        self.errors.push(cs.err(off, msg));
                        None
                    }
                }
            }
        }
    }

    /// A defined list whose name is one or two edits from `name` (not `name` itself).
    fn near_list(&self, name: &str) -> Option<&'d str> {
        if self.lists.contains_key(name) || !name.contains('_') {
            return None;
        }
        let lists: &'d HashMap<String, Vec<String>> = self.lists;
        lists
            .keys()
            .map(|k| (fields::edit_distance(name, k), k.as_str()))
            .filter(|(d, _)| *d <= 2)
            .min()
            .map(|(_, k)| k)
    }

    fn reference(&mut self, name: &str, off: usize, cs: &CondSrc) -> Option<Pred> {
        if let Some(p) = self.macro_pred(name, Some((cs, off))) {
            return p;
        }
        match fields::lookup(name) {
            Some((f, Kind::Bool)) => {
                Some(Pred::Check(Box::new(Check { field: f, test: Test::Bool(true), negate: false })))
            }
            Some((_, kind)) => {
                self.errors.push(cs.err(
                    off,
                    format!(
                        "field '{name}' is a {}, not a condition: compare it with an operator",
                        kind.name()
                    ),
                ));
                None
            }
            None => {
                let near =
                    self.defs.iter().map(|d| d.name.as_str()).min_by_key(|m| fields::edit_distance(name, m));
                let hint = match near.filter(|m| fields::edit_distance(name, m) <= 2) {
                    Some(m) => format!(" (did you mean macro '{m}'?)"),
                    None => fields::suggest(name)
                        .map(|f| format!(" (did you mean field '{f}'?)"))
                        .unwrap_or_default(),
                };
                self.errors.push(cs.err(off, format!("unknown macro or field '{name}'{hint}")));
                None
            }
        }
    }
}

/// `cafebabe` as bytes.
fn hex(s: &str) -> Option<Box<[u8]>> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

pub(crate) fn unknown_field(name: &str) -> String {
    match fields::suggest(name) {
        Some(s) => format!("unknown field '{name}' (did you mean '{s}'?)"),
        None => format!("unknown field '{name}'"),
    }
}

fn int_value(kind: Kind, field: &str, text: &str) -> Result<i64, String> {
    let parsed = match kind {
        Kind::Flags(t) => symbols::parse_flags(t, text).map(|v| v as i64).ok(),
        Kind::Enum(t) => symbols::lookup(t, text).map(|v| v as i64).or_else(|| symbols::parse_int(text)),
        _ => symbols::parse_int(text),
    };
    parsed.ok_or_else(|| match kind {
        Kind::Flags(_) | Kind::Enum(_) => {
            format!("'{text}' is not a number or a known constant for '{field}'")
        }
        _ if text.len() > 1 && text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit()) => {
            format!("ambiguous number '{text}': write 0o{} for octal", &text[1..])
        }
        _ => format!("expected a number for '{field}', found '{text}'"),
    })
}

/// Build the test for `field op values`; also returns whether it is negated (`!=`).
pub(crate) fn build_test(kind: Kind, name: &str, op: Op, vals: &[&str]) -> Result<(Test, bool), TestError> {
    let each = |conv: &dyn Fn(&str) -> Result<i64, String>| -> Result<Vec<i64>, TestError> {
        vals.iter().enumerate().map(|(i, v)| conv(v).map_err(|e| (Some(i), e))).collect()
    };
    let strs = || -> Box<[Box<str>]> { vals.iter().map(|v| Box::from(*v)).collect() };
    let type_mask = || -> Result<u128, TestError> {
        let mut m = 0u128;
        for (i, v) in vals.iter().enumerate() {
            match fields::any_type_id(v) {
                Some(t) => m |= 1 << t,
                None => return Err((Some(i), format!("unknown event type '{v}'"))),
            }
        }
        Ok(m)
    };
    let nets = || -> Result<Box<[IpNet]>, TestError> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| {
                IpNet::parse(v)
                    .ok_or_else(|| (Some(i), format!("'{v}' is not an IP address or CIDR network")))
            })
            .collect()
    };
    let is_int = matches!(kind, Kind::Int | Kind::Enum(_) | Kind::Flags(_) | Kind::Ints);
    let is_str = matches!(kind, Kind::Str | Kind::Strs);
    let conv = |t: &str| int_value(kind, name, t);
    let bad = || {
        Err((None, format!("operator '{}' cannot be used with {} field '{name}'", op.name(), kind.name())))
    };
    let test = match op {
        Op::Exists => Test::Exists,
        Op::Eq | Op::Ne => {
            if vals.len() != 1 {
                return Err((None, format!("operator '{}' takes exactly one value", op.name())));
            }
            match kind {
                Kind::Type => Test::TypeIn(type_mask()?),
                Kind::Bool => match vals[0] {
                    "true" => Test::Bool(true),
                    "false" => Test::Bool(false),
                    v => return Err((Some(0), format!("expected true or false for '{name}', found '{v}'"))),
                },
                Kind::Ip => Test::IpIn(nets()?),
                _ if is_int => Test::IntCmp(Cmp::Eq, each(&conv)?[0]),
                _ => Test::StrEq(vals[0].into()),
            }
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge if is_int => {
            let c = match op {
                Op::Lt => Cmp::Lt,
                Op::Le => Cmp::Le,
                Op::Gt => Cmp::Gt,
                _ => Cmp::Ge,
            };
            if vals.len() != 1 {
                return Err((None, format!("operator '{}' takes exactly one value", op.name())));
            }
            Test::IntCmp(c, each(&conv)?[0])
        }
        Op::In | Op::Intersects => match kind {
            Kind::Type => Test::TypeIn(type_mask()?),
            Kind::Ip => Test::IpIn(nets()?),
            _ if is_int => {
                let mut v = each(&conv)?;
                v.sort_unstable();
                v.dedup();
                Test::IntIn(v.into())
            }
            _ if is_str => Test::StrIn(StrSet::new(vals.iter().map(|v| v.to_string()))),
            _ => return bad(),
        },
        Op::Contains if matches!(kind, Kind::Flags(_)) => {
            Test::FlagsAny(each(&conv)?.into_iter().map(|v| v as u64).collect())
        }
        Op::StartsWith if is_str => Test::StartsWith(strs()),
        Op::EndsWith if is_str => Test::EndsWith(strs()),
        Op::Contains if is_str => Test::Contains(strs()),
        Op::IContains if is_str => {
            Test::IContains(vals.iter().map(|v| Box::from(v.to_ascii_lowercase())).collect())
        }
        Op::BContains | Op::BStartsWith if is_str => {
            let bytes: Vec<Box<[u8]>> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| hex(v).ok_or_else(|| (Some(i), format!("'{v}' is not a hex byte string"))))
                .collect::<Result<_, _>>()?;
            if op == Op::BContains { Test::BContains(bytes.into()) } else { Test::BStartsWith(bytes.into()) }
        }
        Op::Regex if is_str => {
            if vals.len() != 1 {
                return Err((None, "operator 'regex' takes exactly one value".into()));
            }
            let re =
                regex::Regex::new(vals[0]).map_err(|e| (Some(0), format!("bad regex '{}': {e}", vals[0])))?;
            Test::Regex(Box::new(re))
        }
        Op::PMatch if is_str => Test::PMatch(PrefixSet::new(vals.iter().map(|v| v.to_string()))),
        Op::Glob if is_str => Test::Glob(
            vals.iter()
                .enumerate()
                .map(|(i, v)| Glob::new(v).map_err(|e| (Some(i), format!("bad glob '{v}': {e}"))))
                .collect::<Result<_, _>>()?,
        ),
        _ => return bad(),
    };
    Ok((test, op == Op::Ne))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Pred, Vec<String>> {
        let src = Source::new("t", text);
        let lists = HashMap::from([("shells".to_string(), vec!["sh".to_string(), "bash".into()])]);
        let defs = vec![MacroDef {
            name: "opens".into(),
            cond: CondText::new(0, Mark::default(), Style::Plain, "evt.type in (openat, openat2)"),
        }];
        let sources = [src];
        let mut c = Compiler::new(&sources, &lists, &defs);
        let cond = CondText::new(0, Mark::default(), Style::Plain, text);
        let cs = CondSrc { sources: &sources, cond: &cond };
        let p = c.condition(&cs);
        if c.errors.is_empty() {
            Ok(p.unwrap())
        } else {
            Err(c.errors.iter().map(|e| e.message.clone()).collect())
        }
    }

    #[test]
    fn type_masks() {
        let t = |s: &str| compile(s).unwrap().types();
        let bit = |n: &str| 1u128 << fields::any_type_id(n).unwrap();
        assert_eq!(t("evt.type = execve and proc.name = sh"), Some(bit("execve")));
        assert_eq!(t("opens and fd.name = x"), Some(bit("openat") | bit("openat2")));
        assert_eq!(t("proc.name = sh"), None);
        assert_eq!(t("evt.type = execve or proc.name = sh"), None);
        assert_eq!(t("evt.type = execve or evt.type = connect"), Some(bit("execve") | bit("connect")));
        assert_eq!(t("not evt.type = execve"), Some(!bit("execve")));
        assert_eq!(t("evt.type != execve"), Some(!bit("execve")));
        assert_eq!(t("not (evt.type = execve and proc.name = x)"), None);
        assert_eq!(t("evt.type = execve and evt.type = connect"), Some(0));
        assert_eq!(t("evt.type in (open, openat)"), Some(bit("open") | bit("openat")));
        assert_eq!(t("evt.type in (execveat, execve)"), Some(bit("execve") | bit("execveat")));
    }

    #[test]
    fn type_errors() {
        let e = |s: &str| compile(s).unwrap_err().join("; ");
        assert!(e("proc.pid startswith 1").contains("cannot be used with integer field"));
        assert!(e("proc.pid = abc").contains("expected a number"));
        assert!(e("evt.type = opne").contains("unknown event type 'opne'"));
        assert!(e("evt.arg.flags contains O_BOGUS").contains("not a number or a known constant"));
        assert!(e("proc.nme = x").contains("did you mean 'proc.name'"));
        assert!(e("proc.name").contains("not a condition"));
        assert!(e("openz").contains("did you mean macro 'opens'"));
        assert!(e("fd.sip = 1.2.3").contains("not an IP"));
        assert!(e("user.uid = 0755").contains("0o755"));
        assert!(e("proc.name in (shells, 1) and proc.pid in (shells)").contains("(in list 'shells')"));
        assert!(e("container.privileged in (true)").contains("cannot be used with boolean"));
        assert!(e("fd.name glob '[x'").contains("bad glob"));
    }

    #[test]
    fn folding() {
        assert!(matches!(compile("proc.name in ()").unwrap(), Pred::Check(_)));
        let p = compile("(proc.name = a and (proc.pid = 1 and user.uid = 0))").unwrap();
        assert!(matches!(&p, Pred::And(xs) if xs.len() == 3));
        assert!(matches!(Pred::negate(Pred::negate(Pred::Const(true))), Pred::Const(true)));
        assert!(matches!(Pred::and(vec![Pred::Const(true), Pred::Const(false)]), Pred::Const(false)));
        assert!(matches!(Pred::or(vec![]), Pred::Const(false)));
    }
}
