//! Rules files: YAML items to compiled [`Rule`]s, with every error collected.
//!
//! A file is a list of items, each a `list`, `macro` or `rule`, written flat (Falco style) or
//! nested:
//!
//! ```yaml
//! - list: shell_binaries
//!   items: [sh, bash, dash]
//! - macro: spawned_process
//!   condition: evt.type = execve
//! - rule: shell-in-container            # id: kebab-case, unique
//!   name: Shell spawned in a container  # the alert's `rule`
//!   description: ...                    # optional
//!   why: Interactive shells in production containers are rarely legitimate.
//!   class: other                        # escape|privilege_escalation|network|filesystem|other
//!   severity: notice                    # emergency|alert|critical|error|warning|notice|informational|debug
//!   mitre: [T1059]
//!   tags: [container, shell]
//!   condition: spawned_process and container.id != host and proc.name in (shell_binaries)
//!   exceptions:
//!     - name: known_parents
//!       fields: [proc.pname, container.image.repository]
//!       comps: [in, =]                  # default: = for each field
//!       values: [[[containerd-shim, runc], my/image]]
//!   output: Shell in container (shell=%proc.name parent=%proc.pname)
//!   enabled: true                       # default
//!   examples:
//!     - event: {type: execve, exe: /bin/sh, container: true}
//!       expect: alert
//! - rule: shell-in-container            # tune a rule defined elsewhere
//!   override: true                      # may set: enabled, severity, exceptions (appended)
//!   enabled: false
//! ```
//! The nested form is `- rule: {id: ..., name: ..., ...}` / `- list: {name: ..., items: ...}`.
//! Lists may name other lists among their items; `append: true` extends an earlier list.

use std::collections::HashMap;

use super::compile::{Compiler, CondSrc, CondText, MacroDef, Pred};
use super::eval::{Template, alert_tags};
use super::exceptions::exceptions;
use super::fields::{ALL_TYPES, OBSERVED_TYPES, unreported_names};
use super::parser::Op;
use super::yaml::{self, Mark, Node, Source, Style};
use super::{Class, Rule, RuleError, RuleInfo};
use crate::alert::Priority;
use crate::examples;

const RULE_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "why",
    "class",
    "severity",
    "priority",
    "mitre",
    "tags",
    "condition",
    "exceptions",
    "output",
    "enabled",
    "examples",
    "override",
];
/// Deepest chain of lists naming lists.
const MAX_LIST_DEPTH: usize = 32;
const OVERRIDE_KEYS: &[&str] = &["id", "override", "enabled", "severity", "priority", "exceptions", "class"];

/// One item of a file, normalised from the flat or nested form.
struct Item<'n> {
    src: &'n Source,
    file: usize,
    kind: &'static str,
    /// The name (list, macro) or id (rule) and where it is written.
    ident: Option<(&'n str, Mark)>,
    mark: Mark,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Item<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.0 == key).map(|e| e.2)
    }

    fn what(&self) -> String {
        match self.ident {
            Some((n, _)) => format!("{} '{n}'", self.kind),
            None => self.kind.to_string(),
        }
    }

    fn check_keys(&self, allowed: &[&str], errs: &mut Vec<RuleError>) {
        for (k, kn, _) in &self.entries {
            if !allowed.contains(k) {
                let msg =
                    format!("unknown key '{k}' in {} (expected one of: {})", self.kind, allowed.join(", "));
                errs.push(self.src.error(kn.mark(), msg));
            }
        }
    }

    /// A string value, if present; an error if it is not a scalar.
    fn str(&self, key: &str, errs: &mut Vec<RuleError>) -> Option<(&'n str, &'n Node)> {
        let n = self.get(key)?;
        match n {
            Node::Scalar { value, .. } => Some((value.as_str(), n)),
            _ => {
                errs.push(
                    self.src.error(n.mark(), format!("'{key}' must be a string, found {}", n.kind_name())),
                );
                None
            }
        }
    }

    fn required(&self, key: &str, errs: &mut Vec<RuleError>) -> Option<(&'n str, &'n Node)> {
        let v = self.str(key, errs);
        match v {
            Some((s, n)) if s.trim().is_empty() => {
                errs.push(self.src.error(n.mark(), format!("'{key}' of {} is empty", self.what())));
                None
            }
            None if self.get(key).is_none() => {
                errs.push(self.src.error(self.mark, format!("{} is missing '{key}'", self.what())));
                None
            }
            v => v,
        }
    }

    fn str_list(&self, key: &str, errs: &mut Vec<RuleError>) -> Vec<(&'n str, Mark)> {
        match self.get(key) {
            None => Vec::new(),
            Some(n) if n.is_null() => Vec::new(),
            Some(n) => scalars(self.src, n, key, errs),
        }
    }

    fn bool(&self, key: &str, errs: &mut Vec<RuleError>) -> Option<bool> {
        let (v, n) = self.str(key, errs)?;
        match v {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                errs.push(self.src.error(n.mark(), format!("'{key}' must be true or false, found '{v}'")));
                None
            }
        }
    }
}

/// The scalars of a YAML list.
pub(crate) fn scalars<'n>(
    src: &Source,
    n: &'n Node,
    key: &str,
    errs: &mut Vec<RuleError>,
) -> Vec<(&'n str, Mark)> {
    let Node::Seq { items, .. } = n else {
        errs.push(src.error(n.mark(), format!("'{key}' must be a list, found {}", n.kind_name())));
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| match i {
            Node::Scalar { value, mark, .. } => Some((value.as_str(), *mark)),
            _ => {
                errs.push(
                    src.error(i.mark(), format!("items of '{key}' must be strings, found {}", i.kind_name())),
                );
                None
            }
        })
        .collect()
}

fn items_of<'n>(src: &'n Source, file: usize, root: &'n Node, errs: &mut Vec<RuleError>) -> Vec<Item<'n>> {
    let Node::Seq { items, .. } = root else {
        errs.push(src.error(root.mark(), "a rules file must be a list of 'list', 'macro' and 'rule' items"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for node in items {
        let Node::Map { entries, mark } = node else {
            errs.push(src.error(
                node.mark(),
                format!("expected a 'list', 'macro' or 'rule' item, found {}", node.kind_name()),
            ));
            continue;
        };
        let mut kinds = entries.iter().filter_map(|(k, v)| match k.as_str() {
            Some(kind @ ("list" | "macro" | "rule")) => Some((kind, k, v)),
            _ => None,
        });
        let Some((kind, knode, value)) = kinds.next() else {
            // Falco's engine and plugin version requirements: nothing to check here (the
            // fields and operators a file uses are checked where they are used).
            if entries.len() == 1
                && entries.iter().any(|(k, _)| {
                    matches!(k.as_str(), Some("required_engine_version" | "required_plugin_versions"))
                })
            {
                continue;
            }
            let at = entries.first().map_or(*mark, |e| e.0.mark());
            errs.push(src.error(at, "item has no 'list', 'macro' or 'rule' key"));
            continue;
        };
        if let Some((_, k2, _)) = kinds.next() {
            errs.push(src.error(k2.mark(), "an item is one of 'list', 'macro' or 'rule', not several"));
            continue;
        }
        let kind: &'static str = match kind {
            "list" => "list",
            "macro" => "macro",
            _ => "rule",
        };
        let id_key = if kind == "rule" { "id" } else { "name" };
        let mut item = Item { src, file, kind, ident: None, mark: knode.mark(), entries: Vec::new() };
        let (fields, nested) = match value {
            Node::Map { entries: inner, .. } => {
                if let Some((k, _)) = entries.iter().find(|(k, _)| !std::ptr::eq(k, knode)) {
                    errs.push(src.error(
                        k.mark(),
                        format!("with a nested '{kind}:' mapping, put every key inside it"),
                    ));
                }
                (inner, true)
            }
            Node::Scalar { value: v, mark: m, .. } => {
                item.ident = Some((v.as_str(), *m));
                (entries, false)
            }
            other => {
                errs.push(src.error(
                    other.mark(),
                    format!("'{kind}' must be a name or a mapping, found {}", other.kind_name()),
                ));
                continue;
            }
        };
        for (k, v) in fields {
            if !nested && std::ptr::eq(k, knode) {
                continue;
            }
            let Some(key) = k.as_str() else {
                errs.push(src.error(k.mark(), "keys must be strings"));
                continue;
            };
            if item.entries.iter().any(|e| e.0 == key) {
                errs.push(src.error(k.mark(), format!("duplicate key '{key}'")));
                continue;
            }
            if nested && key == id_key {
                match v {
                    Node::Scalar { value, mark, .. } => item.ident = Some((value.as_str(), *mark)),
                    _ => errs.push(src.error(v.mark(), format!("'{id_key}' must be a string"))),
                }
                continue;
            }
            if !nested && key == id_key {
                errs.push(src.error(k.mark(), format!("the {id_key} of a {kind} is its '{kind}:' value")));
                continue;
            }
            item.entries.push((key, k, v));
        }
        match item.ident {
            Some((n, m)) if n.trim().is_empty() => {
                errs.push(src.error(m, format!("{kind} has an empty {id_key}")))
            }
            None => errs.push(src.error(item.mark, format!("{kind} has no '{id_key}'"))),
            _ => out.push(item),
        }
    }
    out
}

fn parse_severity(s: &str) -> Option<Priority> {
    Some(match s.to_ascii_lowercase().as_str() {
        "emergency" => Priority::Emergency,
        "alert" => Priority::Alert,
        "critical" => Priority::Critical,
        "error" => Priority::Error,
        "warning" | "warn" => Priority::Warning,
        "notice" => Priority::Notice,
        "informational" | "info" => Priority::Informational,
        "debug" => Priority::Debug,
        _ => return None,
    })
}

fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn is_mitre(s: &str) -> bool {
    let digits = |d: &str, n: usize| d.len() == n && d.bytes().all(|b| b.is_ascii_digit());
    match s.strip_prefix("TA") {
        Some(rest) => digits(rest, 4),
        None => match s.strip_prefix('T').map(|r| r.split_once('.').unwrap_or((r, ""))) {
            Some((main, "")) => digits(main, 4) && !s.ends_with('.'),
            Some((main, sub)) => digits(main, 4) && digits(sub, 3),
            None => false,
        },
    }
}

fn is_macro_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !matches!(s, "and" | "or" | "not")
        && Op::from_word(s).is_none()
}

fn severity(item: &Item, errs: &mut Vec<RuleError>) -> Option<Priority> {
    if item.get("severity").is_some() && item.get("priority").is_some() {
        let n = item.get("priority").map_or(item.mark, Node::mark);
        errs.push(item.src.error(n, "give 'severity' or 'priority', not both"));
    }
    let key = if item.get("severity").is_some() || item.get("priority").is_none() {
        "severity"
    } else {
        "priority"
    };
    let (s, n) = item.str(key, errs)?;
    let p = parse_severity(s.trim());
    if p.is_none() {
        errs.push(item.src.error(n.mark(), format!("unknown severity '{s}' (expected emergency, alert, critical, error, warning, notice, informational or debug)")));
    }
    p
}

/// A list item as Falco reads it: items are pasted into conditions, so `'"(systemd)"'` (YAML
/// gives `"(systemd)"`) is the string `(systemd)`.
fn unquote(item: &str) -> String {
    let b = item.as_bytes();
    match (b.first(), b.last()) {
        (Some(q @ (b'"' | b'\'')), Some(e)) if b.len() >= 2 && q == e => {
            let inner = &item[1..item.len() - 1];
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match (c, chars.clone().next()) {
                    ('\\', Some(n @ ('\\' | '"' | '\''))) => {
                        out.push(n);
                        chars.next();
                    }
                    _ => out.push(c),
                }
            }
            out
        }
        _ => item.to_string(),
    }
}

/// A list definition: name, items (with positions) and file index.
type ListDef = (String, Vec<(String, Mark)>, usize);

/// Resolve list items naming other lists, depth first; cycles are errors.
fn resolve_lists(
    sources: &[Source],
    defs: &[ListDef],
    errs: &mut Vec<RuleError>,
) -> HashMap<String, Vec<String>> {
    #[allow(clippy::too_many_arguments)]
    fn visit(
        i: usize,
        depth: usize,
        sources: &[Source],
        defs: &[ListDef],
        index: &HashMap<&str, usize>,
        state: &mut Vec<u8>,
        out: &mut HashMap<String, Vec<String>>,
        errs: &mut Vec<RuleError>,
    ) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        let (name, items, file) = &defs[i];
        let mut vals = Vec::new();
        for (it, mark) in items {
            match index.get(it.as_str()) {
                Some(&j) if state[j] == 1 => {
                    errs.push(
                        sources[*file].error(*mark, format!("list '{name}' includes itself through '{it}'")),
                    );
                }
                Some(_) if depth >= MAX_LIST_DEPTH => {
                    errs.push(
                        sources[*file]
                            .error(*mark, format!("lists nested deeper than {MAX_LIST_DEPTH} levels")),
                    );
                }
                Some(&j) => {
                    visit(j, depth + 1, sources, defs, index, state, out, errs);
                    vals.extend(out.get(it).into_iter().flatten().cloned());
                }
                None => vals.push(unquote(it)),
            }
        }
        state[i] = 2;
        out.insert(name.clone(), vals);
    }
    let index: HashMap<&str, usize> = defs.iter().enumerate().map(|(i, d)| (d.0.as_str(), i)).collect();
    let mut state = vec![0u8; defs.len()];
    let mut out = HashMap::new();
    for i in 0..defs.len() {
        visit(i, 0, sources, defs, &index, &mut state, &mut out, errs);
    }
    out
}

/// Which lists and macros a file sees. The embedded default pack keeps its own: a user file
/// that defines one of the same names (Falco's files define six) gets its own definition, and
/// the pack's rules keep their meaning. User files see their own definitions, then the pack's;
/// `append` to a name only the pack defines extends the pack's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Pack,
    User,
}

/// Keys of a Falco-schema rule item (plus `class`, boxwatch's, to override the derived class).
const FALCO_RULE_KEYS: &[&str] = &[
    "desc",
    "condition",
    "output",
    "priority",
    "tags",
    "enabled",
    "source",
    "exceptions",
    "append",
    "override",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
    "class",
];
/// Keys that make a rule item boxwatch's schema rather than Falco's.
const BOXWATCH_MARKERS: &[&str] = &["name", "why", "severity", "mitre", "examples", "description"];

/// `override: {key: append|replace, ...}`: each key and whether it appends.
fn override_map<'n>(it: &Item<'n>, allowed: &[&str], errs: &mut Vec<RuleError>) -> Vec<(&'n str, bool)> {
    let Some(Node::Map { entries, .. }) = it.get("override") else { return Vec::new() };
    let mut out = Vec::new();
    for (k, v) in entries {
        let (Some(key), Some(mode)) = (k.as_str(), v.as_str()) else {
            errs.push(it.src.error(k.mark(), "'override' maps keys to 'append' or 'replace'"));
            continue;
        };
        if !allowed.contains(&key) {
            errs.push(it.src.error(
                k.mark(),
                format!(
                    "'{key}' cannot be overridden in a {} (expected one of: {})",
                    it.kind,
                    allowed.join(", ")
                ),
            ));
            continue;
        }
        match mode {
            "append" => out.push((key, true)),
            "replace" => out.push((key, false)),
            _ => errs.push(
                it.src
                    .error(v.mark(), format!("override mode must be 'append' or 'replace', found '{mode}'")),
            ),
        }
    }
    out
}

/// A rule in Falco's schema, gathered across its definition, `append`s and `override`s.
struct FalcoRule<'n> {
    name: String,
    file: usize,
    mark: Mark,
    scope: Scope,
    cond: Option<CondText>,
    output: Option<CondText>,
    desc: String,
    priority: Option<Priority>,
    tags: Vec<String>,
    enabled: bool,
    exceptions: Vec<(usize, &'n Node)>,
    class: Option<Class>,
    source: Option<String>,
    skip_unknown: bool,
}

/// The class of a Falco rule from its tags (MITRE tactics, Falco's topic tags).
pub(crate) fn class_from_tags(tags: &[String]) -> Class {
    let has = |t: &str| tags.iter().any(|x| x.eq_ignore_ascii_case(t));
    if has("T1611") || has("mitre_escape") {
        Class::Escape
    } else if has("mitre_privilege_escalation") {
        Class::PrivilegeEscalation
    } else if has("network")
        || has("mitre_command_and_control")
        || has("mitre_exfiltration")
        || has("mitre_lateral_movement")
    {
        Class::Network
    } else if has("filesystem") {
        Class::Filesystem
    } else {
        Class::Other
    }
}

fn scalar_text<'n>(it: &Item<'n>, key: &str, errs: &mut Vec<RuleError>) -> Option<(&'n str, Mark, Style)> {
    match it.str(key, errs)? {
        (text, Node::Scalar { mark, style, .. }) => Some((text, *mark, *style)),
        _ => None,
    }
}

pub(crate) fn load(inputs: &[(&str, &str)], pack: usize) -> Result<Vec<Rule>, Vec<RuleError>> {
    let sources: Vec<Source> = inputs.iter().map(|(n, t)| Source::new(n, t)).collect();
    let scope_of = |file: usize| if file < pack { Scope::Pack } else { Scope::User };
    let mut errs = Vec::new();
    let roots: Vec<Option<Node>> = sources
        .iter()
        .map(|s| {
            yaml::parse(s).unwrap_or_else(|e| {
                errs.push(e);
                None
            })
        })
        .collect();
    let items: Vec<Item> = roots
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
        .flat_map(|(i, r)| items_of(&sources[i], i, r, &mut errs))
        .collect();

    // Lists, then macros, per scope. As in Falco, a later definition replaces an earlier one
    // and `append` (or `override: {items|condition: append}`) extends it.
    let mut lists: HashMap<(Scope, &str), ListDef> = HashMap::new();
    // Macros keep their first definition's place: compile order decides which of several
    // problems in a chain of macros is reported.
    let mut macros: HashMap<(Scope, &str), (usize, MacroDef)> = HashMap::new();
    for it in &items {
        let Some((name, nmark)) = it.ident else { continue };
        let src = it.src;
        let scope = scope_of(it.file);
        if it.kind == "rule" {
            continue;
        }
        let (key, what) = if it.kind == "list" { ("items", "list") } else { ("condition", "macro") };
        it.check_keys(&[key, "append", "override"], &mut errs);
        let over = override_map(it, &[key], &mut errs);
        let append = it.bool("append", &mut errs).unwrap_or(false) || over.iter().any(|o| o.1);
        let replace = over.iter().any(|o| !o.1);
        if it.kind == "macro" && !is_macro_name(name) {
            errs.push(src.error(nmark, format!("invalid macro name '{name}' (letters, digits and '_', not starting with a digit; not a keyword)")));
            continue;
        }
        let target = if append || replace {
            let own = (scope, name);
            let pack_key = (Scope::Pack, name);
            let exists = |k| if what == "list" { lists.contains_key(&k) } else { macros.contains_key(&k) };
            let k = if exists(own) {
                Some(own)
            } else if exists(pack_key) {
                Some(pack_key)
            } else {
                None
            };
            if k.is_none() {
                let verb = if append { "appends to" } else { "overrides" };
                errs.push(src.error(nmark, format!("{what} '{name}' {verb} a {what} not defined before it")));
                continue;
            }
            k
        } else {
            None
        };
        if it.kind == "list" {
            if it.get("items").is_none() {
                errs.push(src.error(it.mark, format!("list '{name}' is missing 'items'")));
            }
            let vals: Vec<(String, Mark)> =
                it.str_list("items", &mut errs).into_iter().map(|(s, m)| (s.to_string(), m)).collect();
            match target.and_then(|k| lists.get_mut(&k)) {
                Some(d) if append => d.1.extend(vals),
                Some(d) => d.1 = vals,
                None => {
                    lists.insert((scope, name), (name.to_string(), vals, it.file));
                }
            }
            continue;
        }
        let Some((text, mark, style)) = scalar_text(it, "condition", &mut errs) else {
            if it.get("condition").is_none() {
                errs.push(src.error(it.mark, format!("macro '{name}' is missing 'condition'")));
            }
            continue;
        };
        if text.trim().is_empty() {
            errs.push(src.error(mark, format!("'condition' of macro '{name}' is empty")));
            continue;
        }
        let (own, n) = ((scope, name), macros.len());
        match target.or(Some(own)).and_then(|k| macros.get_mut(&k)) {
            Some((_, d)) if append => d.cond.append(it.file, mark, style, text),
            Some((_, d)) => d.cond = CondText::new(it.file, mark, style, text),
            None => {
                let cond = CondText::new(it.file, mark, style, text);
                macros.insert(own, (n, MacroDef { name: name.to_string(), cond }));
            }
        }
    }
    let defs_for = |scope: Scope| -> Vec<ListDef> {
        let mut v: Vec<ListDef> = lists
            .iter()
            .filter(|((s, n), _)| *s == scope || (*s == Scope::Pack && !lists.contains_key(&(scope, *n))))
            .map(|(_, d)| d.clone())
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let macros_for = |scope: Scope| -> Vec<MacroDef> {
        let mut v: Vec<&(usize, MacroDef)> = macros
            .iter()
            .filter(|((s, n), _)| *s == scope || (*s == Scope::Pack && !macros.contains_key(&(scope, *n))))
            .map(|(_, d)| d)
            .collect();
        v.sort_by_key(|d| d.0);
        v.into_iter().map(|d| d.1.clone()).collect()
    };
    let (pack_lists, user_lists) = (defs_for(Scope::Pack), defs_for(Scope::User));
    let (pack_macros, user_macros) = (macros_for(Scope::Pack), macros_for(Scope::User));
    let pack_resolved = resolve_lists(&sources, &pack_lists, &mut errs);
    let user_resolved = resolve_lists(&sources, &user_lists, &mut errs);
    let mut comp_pack = Compiler::new(&sources, &pack_resolved, &pack_macros);
    let mut comp_user = Compiler::new(&sources, &user_resolved, &user_macros);
    if pack > 0 {
        comp_pack.compile_macros();
    }
    comp_user.compile_macros();

    let mut rules: Vec<(usize, usize, Rule)> = Vec::new();
    let mut rule_at: HashMap<&str, (usize, Mark)> = HashMap::new();
    let mut overrides: Vec<&Item> = Vec::new();
    let mut falco: Vec<FalcoRule> = Vec::new();
    for it in items.iter().filter(|i| i.kind == "rule") {
        let Some((id, idmark)) = it.ident else { continue };
        let comp = if scope_of(it.file) == Scope::Pack { &mut comp_pack } else { &mut comp_user };
        let boxwatch_override = matches!(it.get("override"), Some(Node::Scalar { .. }));
        let boxwatch = boxwatch_override || BOXWATCH_MARKERS.iter().any(|k| it.get(k).is_some());
        if !boxwatch {
            falco_item(it, id, idmark, scope_of(it.file), &rule_at, &mut falco, &mut errs);
            continue;
        }
        if it.bool("override", &mut errs) == Some(true) {
            it.check_keys(OVERRIDE_KEYS, &mut errs);
            overrides.push(it);
            continue;
        }
        it.check_keys(RULE_KEYS, &mut errs);
        if !is_kebab(id) {
            errs.push(it.src.error(idmark, format!("rule id '{id}' must be kebab-case (a-z, 0-9, '-')")));
        }
        let dup = rule_at
            .get(id)
            .copied()
            .or_else(|| falco.iter().find(|f| f.name == id).map(|f| (f.file, f.mark)));
        if let Some((f, m)) = dup {
            errs.push(it.src.error(
                idmark,
                format!("duplicate rule id '{id}' (first defined at {}:{})", sources[f].name, m.line),
            ));
        } else {
            rule_at.insert(id, (it.file, idmark));
        }
        // A duplicate is still compiled, for its own errors.
        if let Some(r) = rule(it, id, comp, &mut errs).filter(|_| dup.is_none()) {
            rules.push((it.file, it.mark.line, r));
        }
    }
    for fr in falco {
        let comp = if fr.scope == Scope::Pack { &mut comp_pack } else { &mut comp_user };
        if let Some(r) = compile_falco(fr, &sources, comp, &mut errs) {
            rules.push(r);
        }
    }
    rules.sort_by_key(|r| (r.0, r.1));
    let mut rules: Vec<Rule> = rules.into_iter().map(|r| r.2).collect();
    for it in overrides {
        let Some((id, idmark)) = it.ident else { continue };
        let comp = if scope_of(it.file) == Scope::Pack { &comp_pack } else { &comp_user };
        let Some(r) = rules.iter_mut().find(|r| r.info.id == id) else {
            errs.push(it.src.error(idmark, format!("override of unknown rule '{id}'")));
            continue;
        };
        if let Some(e) = it.bool("enabled", &mut errs) {
            r.info.enabled = e;
        }
        if (it.get("severity").is_some() || it.get("priority").is_some())
            && let Some(p) = severity(it, &mut errs)
        {
            r.info.severity = p;
        }
        if let Some((c, n)) = it.str("class", &mut errs) {
            match Class::ALL.into_iter().find(|k| k.as_str() == c.trim()) {
                Some(k) => r.info.class = k,
                None => errs.push(it.src.error(n.mark(), format!("unknown class '{c}' (expected escape, privilege_escalation, network, filesystem or other)"))),
            }
        }
        if let Some(n) = it.get("exceptions") {
            let exc = exceptions(it.src, n, comp.lists, &mut errs);
            let pred = std::mem::replace(&mut r.pred, Pred::Const(false));
            r.pred = Pred::and(vec![pred, Pred::negate(exc)]);
        }
    }
    errs.append(&mut comp_pack.errors);
    errs.append(&mut comp_user.errors);
    if errs.is_empty() {
        return Ok(rules);
    }
    let order: HashMap<&str, usize> = sources.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    errs.sort_by_key(|e| (order.get(e.file.as_str()).copied().unwrap_or(usize::MAX), e.line, e.column));
    errs.dedup();
    Err(errs)
}

/// One Falco-schema rule item: a definition (replacing an earlier one of the same name, as
/// Falco does), an `append`, an `override`, or an `enabled` toggle.
fn falco_item<'n>(
    it: &Item<'n>,
    name: &str,
    nmark: Mark,
    scope: Scope,
    boxwatch_ids: &HashMap<&str, (usize, Mark)>,
    falco: &mut Vec<FalcoRule<'n>>,
    errs: &mut Vec<RuleError>,
) {
    let src = it.src;
    it.check_keys(FALCO_RULE_KEYS, errs);
    let over = override_map(
        it,
        &["condition", "output", "desc", "priority", "tags", "exceptions", "enabled", "class"],
        errs,
    );
    let append = it.bool("append", errs).unwrap_or(false);
    let cond = scalar_text(it, "condition", errs);
    let output = scalar_text(it, "output", errs);
    let tags: Vec<String> = it.str_list("tags", errs).into_iter().map(|(t, _)| t.to_string()).collect();
    let priority = it.str("priority", errs).and_then(|(p, n)| {
        let v = parse_severity(p.trim());
        if v.is_none() {
            errs.push(src.error(n.mark(), format!("unknown priority '{p}' (expected EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFORMATIONAL or DEBUG)")));
        }
        v
    });
    let class = it.str("class", errs).and_then(|(c, n)| {
        let class = Class::ALL.into_iter().find(|k| k.as_str() == c.trim());
        if class.is_none() {
            errs.push(src.error(n.mark(), format!("unknown class '{c}' (expected escape, privilege_escalation, network, filesystem or other)")));
        }
        class
    });
    let enabled = it.bool("enabled", errs);
    let desc = it.str("desc", errs).map(|d| d.0.trim().to_string());
    let exc = it.get("exceptions");
    let existing = falco.iter().position(|f| f.name == name);
    let modifies = append || !over.is_empty();
    let only_enabled = !modifies && enabled.is_some() && it.entries.iter().all(|e| e.0 == "enabled");
    if modifies || only_enabled {
        let Some(i) = existing else {
            let msg = if boxwatch_ids.contains_key(name) {
                format!("rule '{name}' is a boxwatch rule: change it with 'override: true'")
            } else {
                format!(
                    "rule '{name}' {} a rule not defined before it",
                    if only_enabled {
                        "enables"
                    } else if append {
                        "appends to"
                    } else {
                        "overrides"
                    }
                )
            };
            errs.push(src.error(nmark, msg));
            return;
        };
        let f = &mut falco[i];
        if only_enabled {
            f.enabled = enabled.unwrap_or(f.enabled);
            return;
        }
        let mode =
            |key: &str| if append { Some(true) } else { over.iter().find(|o| o.0 == key).map(|o| o.1) };
        if let (Some(m), Some((text, mark, style))) = (mode("condition"), cond) {
            match (m, f.cond.as_mut()) {
                (true, Some(c)) => c.append(it.file, mark, style, text),
                _ => f.cond = Some(CondText::new(it.file, mark, style, text)),
            }
        }
        if let (Some(m), Some((text, mark, style))) = (mode("output"), output) {
            match (m && !append, f.output.as_mut()) {
                (true, Some(c)) => c.append(it.file, mark, style, text),
                _ if append => {}
                _ => f.output = Some(CondText::new(it.file, mark, style, text)),
            }
        }
        if let (Some(m), Some(n)) = (mode("exceptions"), exc) {
            if !m {
                f.exceptions.clear();
            }
            f.exceptions.push((it.file, n));
        }
        if let (Some(m), false) = (over.iter().find(|o| o.0 == "tags").map(|o| o.1), tags.is_empty()) {
            if !m {
                f.tags.clear();
            }
            f.tags.extend(tags);
        }
        if over.iter().any(|o| o.0 == "priority") && priority.is_some() {
            f.priority = priority;
        }
        if over.iter().any(|o| o.0 == "desc")
            && let Some(d) = desc
        {
            f.desc = d;
        }
        if over.iter().any(|o| o.0 == "enabled")
            && let Some(e) = enabled
        {
            f.enabled = e;
        }
        if over.iter().any(|o| o.0 == "class") && class.is_some() {
            f.class = class;
        }
        return;
    }
    if let Some((f, m)) = boxwatch_ids.get(name) {
        errs.push(
            src.error(
                nmark,
                format!("duplicate rule id '{name}' (first defined in file {f} line {})", m.line),
            ),
        );
        return;
    }
    for key in ["condition", "output", "priority"] {
        if it.get(key).is_none() {
            errs.push(src.error(it.mark, format!("rule '{name}' is missing '{key}'")));
        }
    }
    let def = FalcoRule {
        name: name.to_string(),
        file: it.file,
        mark: it.mark,
        scope,
        cond: cond.map(|(t, m, s)| CondText::new(it.file, m, s, t)),
        output: output.map(|(t, m, s)| CondText::new(it.file, m, s, t)),
        desc: desc.unwrap_or_default(),
        priority,
        tags,
        enabled: enabled.unwrap_or(true),
        exceptions: exc.map(|n| vec![(it.file, n)]).unwrap_or_default(),
        class,
        source: it.str("source", errs).map(|s| s.0.trim().to_string()),
        skip_unknown: it.bool("skip-if-unknown-filter", errs).unwrap_or(false),
    };
    // Falco: a later definition of a rule replaces the earlier one.
    match existing {
        Some(i) => falco[i] = def,
        None => falco.push(def),
    }
}

/// Compile a gathered Falco rule: `(file, line, rule)`.
fn compile_falco(
    fr: FalcoRule,
    sources: &[Source],
    comp: &mut Compiler,
    errs: &mut Vec<RuleError>,
) -> Option<(usize, usize, Rule)> {
    let src = &sources[fr.file];
    let (cond, output, priority) = (fr.cond?, fr.output?, fr.priority?);
    let mitre: Vec<String> = fr.tags.iter().filter(|t| is_mitre(t)).cloned().collect();
    let class = fr.class.unwrap_or_else(|| class_from_tags(&fr.tags));
    let mut inert = None;
    let pred = if let Some(s) = fr.source.as_deref().filter(|s| *s != "syscall") {
        inert = Some(format!("source '{s}' is not observed by boxwatch (syscall only)"));
        Some(Pred::Const(false))
    } else {
        let before = comp.errors.len();
        let p = comp.condition(&CondSrc { sources, cond: &cond });
        if fr.skip_unknown && comp.errors.len() > before {
            let first = comp.errors.drain(before..).next().map(|e| e.message).unwrap_or_default();
            inert = Some(format!("skip-if-unknown-filter: {first}"));
            Some(Pred::Const(false))
        } else {
            p
        }
    };
    let exc: Vec<Pred> =
        fr.exceptions.iter().map(|(f, n)| exceptions(&sources[*f], n, comp.lists, errs)).collect();
    let out_src = CondSrc { sources, cond: &output };
    let template = Template::parse(&output.text).map_err(|(off, msg)| errs.push(out_src.err(off, msg))).ok();
    let pred = Pred::and(vec![pred?, Pred::negate(Pred::or(exc))]);
    let mut types = pred.types().unwrap_or(ALL_TYPES);
    if inert.is_some() {
        types = 0;
    } else if types == 0 {
        errs.push(src.error(
            fr.mark,
            format!("rule '{}' can never match: its evt.type constraints exclude every event type", fr.name),
        ));
        return None;
    } else if types & OBSERVED_TYPES == 0 {
        inert = Some(format!(
            "its event types are not observed by boxwatch: {}",
            unreported_names(types).join(", ")
        ));
    }
    let why = fr.desc.split_whitespace().collect::<Vec<_>>().join(" ");
    let info = RuleInfo {
        id: fr.name.clone(),
        name: fr.name,
        description: fr.desc,
        why,
        class,
        severity: priority,
        mitre,
        tags: fr.tags.clone(),
        enabled: fr.enabled,
        origin: format!("{}:{}", src.name, fr.mark.line),
        inert,
    };
    let rule =
        Rule { tags: fr.tags, info, pred, output: template?, types, examples: Vec::new(), falco: true };
    Some((fr.file, fr.mark.line, rule))
}

fn rule(it: &Item, id: &str, comp: &mut Compiler, errs: &mut Vec<RuleError>) -> Option<Rule> {
    let src = it.src;
    let name = it.required("name", errs);
    let description = it.str("description", errs).map_or("", |d| d.0).trim().to_string();
    let why = it.required("why", errs);
    if let Some((w, n)) = why
        && w.trim().contains('\n')
    {
        errs.push(src.error(n.mark(), "'why' must be one line"));
    }
    let class = it.required("class", errs).and_then(|(c, n)| {
        let class = Class::ALL.into_iter().find(|k| k.as_str() == c.trim());
        if class.is_none() {
            errs.push(src.error(n.mark(), format!("unknown class '{c}' (expected escape, privilege_escalation, network, filesystem or other)")));
        }
        class
    });
    let sev = severity(it, errs);
    if it.get("severity").is_none() && it.get("priority").is_none() {
        errs.push(src.error(it.mark, format!("rule '{id}' is missing 'severity'")));
    }
    let mitre: Vec<String> = it
        .str_list("mitre", errs)
        .into_iter()
        .filter_map(|(m, mark)| {
            let ok = is_mitre(m);
            if !ok {
                errs.push(
                    src.error(mark, format!("'{m}' is not a MITRE ATT&CK id (T1234, T1234.001 or TA0001)")),
                );
            }
            ok.then(|| m.to_string())
        })
        .collect();
    let tags: Vec<String> = it.str_list("tags", errs).into_iter().map(|(t, _)| t.to_string()).collect();
    let enabled = it.bool("enabled", errs).unwrap_or(true);
    let cond = it.required("condition", errs).and_then(|(text, n)| match n {
        Node::Scalar { mark, style, .. } => {
            let cond = CondText::new(it.file, *mark, *style, text);
            comp.condition(&CondSrc { sources: comp.sources, cond: &cond })
        }
        _ => None,
    });
    let exc = it.get("exceptions").map(|n| exceptions(src, n, comp.lists, errs));
    let output = it.required("output", errs).and_then(|(text, n)| {
        let Node::Scalar { mark, style, .. } = n else { return None };
        Template::parse(text)
            .map_err(|(off, msg)| errs.push(src.error(src.pos_in_scalar(*mark, *style, text, off), msg)))
            .ok()
    });
    let examples = it.get("examples").map(|n| examples::parse(src, n, errs)).unwrap_or_default();
    let cond_node = it.get("condition");
    let pred = Pred::and(vec![cond?, Pred::negate(exc.unwrap_or(Pred::Const(false)))]);
    let types = pred.types().unwrap_or(ALL_TYPES);
    if types == 0 {
        let at = cond_node.map_or(it.mark, Node::mark);
        errs.push(src.error(
            at,
            format!("rule '{id}' can never match: its evt.type constraints exclude every event type"),
        ));
        return None;
    }
    let inert = (types & OBSERVED_TYPES == 0).then(|| {
        format!("its event types are not observed by boxwatch: {}", unreported_names(types).join(", "))
    });
    let (class, severity) = (class?, sev?);
    let info = RuleInfo {
        id: id.to_string(),
        name: name?.0.trim().to_string(),
        description,
        why: why?.0.trim().to_string(),
        class,
        severity,
        tags: tags.clone(),
        mitre: mitre.clone(),
        enabled,
        origin: format!("{}:{}", src.name, it.mark.line),
        inert,
    };
    Some(Rule {
        tags: alert_tags(class, &mitre, &tags),
        info,
        pred,
        output: output?,
        types,
        examples,
        falco: false,
    })
}
