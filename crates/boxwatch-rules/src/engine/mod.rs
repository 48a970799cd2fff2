//! The YAML rule engine: Falco-flavoured rules compiled once, evaluated per event.
//!
//! A rules file is a YAML list of `list`, `macro` and `rule` items (`load.rs` documents the
//! format, `parser.rs` the condition grammar, [`field_docs`] lists the fields). Loading collects every
//! problem as a [`RuleError`] (`file:line:column: message`, pointing inside conditions).
//! Evaluation ([`RuleSet::evaluate`]) looks up the rules that can match the event's type in a
//! per-type index and tests their compiled predicates; it allocates only to build alerts.
//! This module is the rule language only: the multi-event detections are
//! [`crate::stateful`], the `examples:` runner [`crate::examples`], and both the rule set and
//! the stateful detections are [`crate::Detector`]s.
//!
//! Pure like the rest of the crate: the caller passes the event, its context and the time;
//! the only I/O is [`RuleSet::load_files`] reading the files it is given.

mod compile;
pub(crate) mod eval;
mod exceptions;
pub(crate) mod extract;
pub(crate) mod fields;
mod lexer;
mod load;
pub(crate) mod matchers;
mod parser;
pub(crate) mod symbols;
pub(crate) mod yaml;

use std::fmt;
use std::path::PathBuf;

use crate::alert::{Alert, Priority};
use crate::examples;

pub use crate::detector::{Detector, Detectors};
pub use crate::examples::{ExampleFailure, ExampleReport};
pub use crate::input::Input;
pub use crate::stateful::{Stateful, StatefulConfig, StatefulStats};

/// A problem in a rules file, at `file:line:column` (line and column 1-based; 0 when the
/// problem has no position, such as an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for RuleError {}

/// What kind of threat a rule detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Escape,
    PrivilegeEscalation,
    Network,
    Filesystem,
    Other,
}

impl Class {
    pub const ALL: [Class; 5] =
        [Class::Escape, Class::PrivilegeEscalation, Class::Network, Class::Filesystem, Class::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Escape => "escape",
            Class::PrivilegeEscalation => "privilege_escalation",
            Class::Network => "network",
            Class::Filesystem => "filesystem",
            Class::Other => "other",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule as listed by `boxwatch rules list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: String,
    /// Human title, the alert's `rule`.
    pub name: String,
    pub description: String,
    pub why: String,
    pub class: Class,
    pub severity: Priority,
    pub mitre: Vec<String>,
    pub tags: Vec<String>,
    pub enabled: bool,
    /// Where it is defined (`file:line`), for humans.
    pub origin: String,
    /// Loaded but unable to fire here, and why (event types boxwatch does not observe, a
    /// source other than syscalls, a filter skipped with `skip-if-unknown-filter`).
    pub inert: Option<String>,
}

/// One compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) info: RuleInfo,
    pred: compile::Pred,
    output: eval::Template,
    /// `alert_tags` of the rule, computed once.
    tags: Vec<String>,
    /// Event types it can match (bit per type id; unobserved types from bit 64 on).
    types: u128,
    examples: Vec<examples::Example>,
    /// Written in Falco's schema: the alert's output gets Falco's `time: Priority ` prefix.
    falco: bool,
}

impl Rule {
    pub(crate) fn matches(&self, cx: &extract::Ctx<'_, '_>) -> bool {
        (self.types >> cx.ty) & 1 == 1 && self.pred.eval(cx)
    }

    pub(crate) fn alert(&self, cx: &extract::Ctx<'_, '_>) -> Alert {
        let i = &self.info;
        let meta = eval::Meta {
            id: &i.id,
            name: &i.name,
            class: i.class,
            priority: i.severity,
            why: &i.why,
            tags: &self.tags,
        };
        let text = self.output.render(cx);
        let output = if self.falco { eval::falco_prefix(cx.input.wall_ns, i.severity) + &text } else { text };
        eval::build_alert(&meta, cx, output, self.output.fields(), Vec::new())
    }
}

/// Compiled rules and their per-event-type index.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// For each type id, the enabled rules that can match it, in file order.
    by_type: Vec<Box<[u32]>>,
}

impl RuleSet {
    /// Load and compile rules files. Lists and macros are shared by all files, rule ids are
    /// unique across them, and every error of every file is returned.
    pub fn load_files(paths: &[PathBuf]) -> Result<RuleSet, Vec<RuleError>> {
        let mut texts = Vec::new();
        let mut errors = Vec::new();
        for p in paths {
            let name = p.display().to_string();
            match std::fs::read_to_string(p) {
                Ok(t) => texts.push((name, t)),
                Err(e) => errors.push(RuleError {
                    file: name,
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        let refs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        match (Self::from_sources(&refs), errors.is_empty()) {
            (Ok(rs), true) => Ok(rs),
            (Ok(_), false) => Err(errors),
            (Err(mut e), _) => {
                errors.append(&mut e);
                Err(errors)
            }
        }
    }

    /// Compile one rules text; `name` is used in error messages.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(name: &str, text: &str) -> Result<RuleSet, Vec<RuleError>> {
        Self::from_sources(&[(name, text)])
    }

    /// Compile several rules texts (`(name, text)`) as one rule set, in order: lists, macros and
    /// rules are shared by all of them, a later list or macro definition replaces an earlier one.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<RuleSet, Vec<RuleError>> {
        Self::with_pack(&[], sources)
    }

    /// Compile a rule pack and the user's files after it. The pack keeps its own lists and
    /// macros: a user file defining one of the same names (as Falco's files do) gets its own, and
    /// the pack's rules keep their meaning; user files see their own definitions, then the
    /// pack's, and `append` to a name only the pack defines extends the pack's.
    pub fn with_pack(pack: &[(&str, &str)], user: &[(&str, &str)]) -> Result<RuleSet, Vec<RuleError>> {
        let all: Vec<(&str, &str)> = pack.iter().chain(user).copied().collect();
        let rules = load::load(&all, pack.len())?;
        let mut rs = RuleSet { rules, by_type: Vec::new() };
        rs.reindex();
        Ok(rs)
    }

    fn reindex(&mut self) {
        self.by_type = (0..64u32)
            .map(|t| {
                let on = |r: &&Rule| r.info.enabled && (r.types >> t) & 1 == 1;
                let idx: Vec<u32> =
                    self.rules.iter().enumerate().filter(|(_, r)| on(r)).map(|(i, _)| i as u32).collect();
                idx.into_boxed_slice()
            })
            .collect();
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    /// Rules that are loaded but cannot fire here, with the reason.
    pub fn inert(&self) -> impl Iterator<Item = (&RuleInfo, &str)> {
        self.rules.iter().filter_map(|r| r.info.inert.as_deref().map(|why| (&r.info, why)))
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Enable or disable a rule by id; `false` if there is no such rule.
    pub fn set_enabled(&mut self, id: &str, enabled: bool) -> bool {
        let Some(r) = self.rules.iter_mut().find(|r| r.info.id == id) else { return false };
        r.info.enabled = enabled;
        self.reindex();
        true
    }

    /// Run the enabled rules that can match this event's type; push one alert per match.
    pub fn evaluate(&self, input: &Input<'_>, out: &mut Vec<Alert>) {
        let cx = extract::Ctx::new(input);
        let Some(idx) = self.by_type.get(usize::from(cx.ty)) else { return };
        for &i in idx.iter() {
            if let Some(r) = self.rules.get(i as usize)
                && r.pred.eval(&cx)
            {
                out.push(r.alert(&cx));
            }
        }
    }

    /// Check every rule's embedded examples (disabled rules included).
    pub fn run_examples(&self) -> ExampleReport {
        examples::run(self.rules.iter().map(|r| (r, r.examples.as_slice())))
    }
}

/// Every field a condition or output may use: (name, type, description).
pub fn field_docs() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    fields::FIELDS.iter().map(|f| (f.name, f.kind.name(), f.doc))
}

impl Detector for RuleSet {
    fn name(&self) -> &str {
        "rules"
    }

    fn observe(&mut self, input: &Input<'_>, out: &mut Vec<Alert>) {
        self.evaluate(input, out);
    }

    fn rules(&self) -> Vec<RuleInfo> {
        RuleSet::rules(self).cloned().collect()
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let enabled = self.rules.iter().filter(|r| r.info.enabled).count();
        let inert = self.rules.iter().filter(|r| r.info.enabled && r.info.inert.is_some()).count();
        vec![
            ("rules", self.rules.len() as u64),
            ("rules_enabled", enabled as u64),
            ("rules_inert", inert as u64),
        ]
    }
}
