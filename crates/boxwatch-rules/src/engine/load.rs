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

use super::compile::{Compiler, CondSrc, MacroDef, Pred};
use super::eval::{Template, alert_tags};
use super::exceptions::exceptions;
use super::fields::ALL_TYPES;
use super::parser::Op;
use super::yaml::{self, Mark, Node, Source};
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
const OVERRIDE_KEYS: &[&str] = &["id", "override", "enabled", "severity", "priority", "exceptions"];

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
                None => vals.push(it.clone()),
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

pub(crate) fn load(inputs: &[(&str, &str)]) -> Result<Vec<Rule>, Vec<RuleError>> {
    let sources: Vec<Source> = inputs.iter().map(|(n, t)| Source::new(n, t)).collect();
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

    // Lists, then macros: names are global across files.
    let mut list_defs: Vec<ListDef> = Vec::new();
    let mut macro_defs: Vec<MacroDef> = Vec::new();
    let mut seen: HashMap<(&str, &str), (usize, Mark)> = HashMap::new();
    for it in &items {
        let Some((name, nmark)) = it.ident else { continue };
        let src = it.src;
        if it.kind == "rule" {
            continue;
        }
        let prev = seen.get(&(it.kind, name)).copied();
        if it.kind == "list" {
            it.check_keys(&["items", "append"], &mut errs);
            let append = it.bool("append", &mut errs).unwrap_or(false);
            let vals: Vec<(String, Mark)> =
                it.str_list("items", &mut errs).into_iter().map(|(s, m)| (s.to_string(), m)).collect();
            if it.get("items").is_none() {
                errs.push(src.error(it.mark, format!("list '{name}' is missing 'items'")));
            }
            match (prev, append) {
                (None, true) => errs
                    .push(src.error(nmark, format!("list '{name}' appends to a list not defined before it"))),
                (Some(_), true) => {
                    if let Some(d) = list_defs.iter_mut().find(|d| d.0 == name) {
                        d.1.extend(vals);
                    }
                }
                (Some((f, m)), false) => errs.push(src.error(
                    nmark,
                    format!("list '{name}' is already defined at {}:{}", sources[f].name, m.line),
                )),
                (None, false) => {
                    list_defs.push((name.to_string(), vals, it.file));
                    seen.insert((it.kind, name), (it.file, nmark));
                }
            }
            continue;
        }
        it.check_keys(&["condition"], &mut errs);
        if !is_macro_name(name) {
            errs.push(src.error(nmark, format!("invalid macro name '{name}' (letters, digits and '_', not starting with a digit; not a keyword)")));
            continue;
        }
        if let Some((f, m)) = prev {
            errs.push(src.error(
                nmark,
                format!("macro '{name}' is already defined at {}:{}", sources[f].name, m.line),
            ));
            continue;
        }
        seen.insert((it.kind, name), (it.file, nmark));
        if let Some((text, n)) = it.required("condition", &mut errs)
            && let Node::Scalar { style, mark, .. } = n
        {
            macro_defs.push(MacroDef {
                name: name.to_string(),
                file: it.file,
                mark: *mark,
                style: *style,
                text: text.to_string(),
            });
        }
    }
    let lists = resolve_lists(&sources, &list_defs, &mut errs);
    let mut comp = Compiler::new(&sources, &lists, &macro_defs);
    comp.compile_macros();

    let mut rules: Vec<Rule> = Vec::new();
    let mut rule_at: HashMap<&str, (usize, Mark)> = HashMap::new();
    let mut overrides: Vec<&Item> = Vec::new();
    for it in items.iter().filter(|i| i.kind == "rule") {
        let Some((id, idmark)) = it.ident else { continue };
        if it.bool("override", &mut errs) == Some(true) {
            it.check_keys(OVERRIDE_KEYS, &mut errs);
            overrides.push(it);
            continue;
        }
        it.check_keys(RULE_KEYS, &mut errs);
        if !is_kebab(id) {
            errs.push(it.src.error(idmark, format!("rule id '{id}' must be kebab-case (a-z, 0-9, '-')")));
        }
        let dup = rule_at.get(id).copied();
        if let Some((f, m)) = dup {
            errs.push(it.src.error(
                idmark,
                format!("duplicate rule id '{id}' (first defined at {}:{})", sources[f].name, m.line),
            ));
        } else {
            rule_at.insert(id, (it.file, idmark));
        }
        // A duplicate is still compiled, for its own errors.
        if let Some(r) = rule(it, id, &mut comp, &mut errs).filter(|_| dup.is_none()) {
            rules.push(r);
        }
    }
    for it in overrides {
        let Some((id, idmark)) = it.ident else { continue };
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
        if let Some(n) = it.get("exceptions") {
            let exc = exceptions(it.src, n, comp.lists, &mut errs);
            let pred = std::mem::replace(&mut r.pred, Pred::Const(false));
            r.pred = Pred::and(vec![pred, Pred::negate(exc)]);
        }
    }
    errs.append(&mut comp.errors);
    if errs.is_empty() {
        return Ok(rules);
    }
    let order: HashMap<&str, usize> = sources.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    errs.sort_by_key(|e| (order.get(e.file.as_str()).copied().unwrap_or(usize::MAX), e.line, e.column));
    errs.dedup();
    Err(errs)
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
            comp.condition(&CondSrc { src, mark: *mark, style: *style, text })
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
    };
    Some(Rule { tags: alert_tags(class, &mitre, &tags), info, pred, output: output?, types, examples })
}
