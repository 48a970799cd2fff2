//! Evaluating compiled predicates on one event, rendering output templates, and building
//! [`Alert`]s in the same shape as the built-in detections.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Class;
use super::compile::{Check, Cmp, Pred, Test};
use super::extract::{Ctx, Val};
use super::fields::{EVT_TYPES, Field, Kind};
use super::matchers::icontains;
use super::symbols;
use crate::alert::{Alert, Priority};
use crate::time::rfc3339_ns;

impl Test {
    /// Multi-valued fields match when any value matches.
    pub(crate) fn matches(&self, v: Val<'_>) -> bool {
        match v {
            Val::None => false,
            Val::Strs(xs) => xs.iter().any(|x| self.one(Val::Str(x))),
            Val::Ints(xs) => xs.iter().any(|x| self.one(Val::Int(*x))),
            v => self.one(v),
        }
    }

    fn one(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Test::Exists, _) => true,
            (Test::Bool(b), Val::Bool(x)) => *b == x,
            (Test::TypeIn(m), Val::Type(t)) => t < 128 && (m >> t) & 1 == 1,
            (Test::IntCmp(c, n), Val::Int(x)) => match c {
                Cmp::Eq => x == *n,
                Cmp::Lt => x < *n,
                Cmp::Le => x <= *n,
                Cmp::Gt => x > *n,
                Cmp::Ge => x >= *n,
            },
            (Test::IntIn(set), Val::Int(x)) => set.binary_search(&x).is_ok(),
            (Test::FlagsAny(ms), Val::Int(x)) => ms.iter().any(|m| (x as u64) & m == *m),
            (Test::StrEq(s), Val::Str(x)) => **s == *x,
            (Test::StrIn(set), Val::Str(x)) => set.contains(x),
            (Test::StartsWith(ps), Val::Str(x)) => ps.iter().any(|p| x.starts_with(&**p)),
            (Test::EndsWith(ps), Val::Str(x)) => ps.iter().any(|p| x.ends_with(&**p)),
            (Test::Contains(ps), Val::Str(x)) => ps.iter().any(|p| x.contains(&**p)),
            (Test::IContains(ps), Val::Str(x)) => ps.iter().any(|p| icontains(x, p)),
            (Test::Glob(gs), Val::Str(x)) => gs.iter().any(|g| g.matches(x)),
            (Test::PMatch(set), Val::Str(x)) => set.matches(x),
            (Test::IpIn(nets), Val::Ip(ip)) => nets.iter().any(|n| n.contains(ip)),
            (Test::BContains(bs), Val::Str(x)) => {
                bs.iter().any(|b| b.is_empty() || x.as_bytes().windows(b.len()).any(|w| w == &**b))
            }
            (Test::BStartsWith(bs), Val::Str(x)) => bs.iter().any(|b| x.as_bytes().starts_with(b)),
            (Test::Regex(re), Val::Str(x)) => re.is_match(x),
            _ => false,
        }
    }
}

impl Check {
    pub(crate) fn eval(&self, cx: &Ctx<'_, '_>) -> bool {
        match cx.get(self.field) {
            Val::None => false,
            v => self.test.matches(v) != self.negate,
        }
    }
}

impl Pred {
    pub(crate) fn eval(&self, cx: &Ctx<'_, '_>) -> bool {
        match self {
            Pred::Const(b) => *b,
            Pred::And(ps) => ps.iter().all(|p| p.eval(cx)),
            Pred::Or(ps) => ps.iter().any(|p| p.eval(cx)),
            Pred::Not(p) => !p.eval(cx),
            Pred::Check(c) => c.eval(cx),
            Pred::Shared(s) => s.pred.eval(cx),
        }
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Field(Field),
}

/// An output template: text with `%field` references (`%%` is a literal `%`).
#[derive(Debug, Clone)]
pub(crate) struct Template(Vec<Piece>);

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']')
}

impl Template {
    /// Parse; an unknown field is reported at the byte offset of its `%`.
    pub fn parse(text: &str) -> Result<Template, (usize, String)> {
        let text = text.trim_end();
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('%') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let offset = text.len() - rest.len() + i;
            if let Some(r) = after.strip_prefix('%') {
                lit.push('%');
                rest = r;
                continue;
            }
            let len = after.find(|c: char| !name_char(c)).unwrap_or(after.len());
            let name = after[..len].trim_end_matches('.');
            if name.is_empty() {
                lit.push('%');
                rest = after;
                continue;
            }
            let Some((f, _)) = super::fields::lookup(name) else {
                return Err((offset, super::compile::unknown_field(name)));
            };
            if !lit.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Field(f));
            rest = &after[name.len()..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Template(pieces))
    }

    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.0.iter().filter_map(|p| match p {
            Piece::Field(f) => Some(*f),
            Piece::Text(_) => None,
        })
    }

    pub fn render(&self, cx: &Ctx<'_, '_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) => out.push_str(&text_of(cx, *f)),
            }
        }
        out
    }
}

/// A field's value as output text; `<NA>` when absent (as Falco prints it).
pub(crate) fn text_of(cx: &Ctx<'_, '_>, f: Field) -> String {
    match cx.get(f) {
        Val::None => "<NA>".into(),
        Val::Str(s) => s.to_string(),
        Val::Int(n) => match f.kind() {
            _ if f == Field::EvtArgFlags => symbols::render_open_flags(n as u64),
            _ if f == Field::EvtArgMode => format!("{n:#o}"),
            Kind::Flags(t) => symbols::render_flags(t, n as u64),
            Kind::Enum(t) => {
                t.iter().find(|(_, v)| *v as i64 == n).map_or(n.to_string(), |(s, _)| s.to_string())
            }
            _ => n.to_string(),
        },
        Val::Bool(b) => b.to_string(),
        Val::Ip(ip) => ip.to_string(),
        Val::Type(t) => EVT_TYPES.get(usize::from(t)).map_or(cx.input.event.name(), |s| s).to_string(),
        Val::Strs(xs) => xs.join(","),
        Val::Ints(xs) => xs.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
    }
}

/// A field's value for `output_fields`; `null` when absent.
pub(crate) fn json_of(cx: &Ctx<'_, '_>, f: Field) -> Value {
    match cx.get(f) {
        Val::None => Value::Null,
        Val::Str(s) => json!(s),
        Val::Int(n) => json!(n),
        Val::Bool(b) => json!(b),
        Val::Ip(ip) => json!(ip.to_string()),
        Val::Type(_) => json!(cx.input.event.name()),
        Val::Strs(xs) => json!(xs),
        Val::Ints(xs) => json!(xs),
    }
}

/// Falco's output prefix: `HH:MM:SS.nnnnnnnnn: Priority ` (UTC: the crate reads no time zone).
pub(crate) fn falco_prefix(wall_ns: u64, p: Priority) -> String {
    let secs = wall_ns / 1_000_000_000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}.{:09}: {p:?} ", wall_ns % 1_000_000_000)
}

/// What an alert says about the rule that raised it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'m> {
    pub id: &'m str,
    pub name: &'m str,
    pub class: Class,
    pub priority: Priority,
    pub why: &'m str,
    /// Class tag, MITRE ids, then the rule's tags.
    pub tags: &'m [String],
}

/// The tags of an alert: the class, the MITRE ids, the rule's own tags, without repeats.
pub(crate) fn alert_tags(class: Class, mitre: &[String], tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in std::iter::once(class.as_str())
        .chain(mitre.iter().map(String::as_str))
        .chain(tags.iter().map(String::as_str))
    {
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Build an alert: the built-in detections' `output_fields`, the fields the output names,
/// `extra`, and `boxwatch.rule.{id,class,why}`.
pub(crate) fn build_alert(
    meta: &Meta<'_>,
    cx: &Ctx<'_, '_>,
    output: String,
    named: impl Iterator<Item = Field>,
    extra: Vec<(&'static str, Value)>,
) -> Alert {
    let input = cx.input;
    let ev = input.event;
    let p = &ev.process;
    let c = input.container;
    let mut f: BTreeMap<&'static str, Value> = BTreeMap::new();
    f.insert("container.id", json!(c.map_or("host", |c| c.short_id())));
    f.insert("container.runtime", json!(c.map(|c| c.runtime.as_str())));
    f.insert("evt.type", json!(ev.name()));
    // Falco's outputs (falcosidekick's formatting, some outputs) need the event time, in ns.
    f.insert("evt.time", json!(input.wall_ns));
    f.insert("proc.pid", json!(p.pid));
    f.insert("proc.ppid", json!(p.ppid));
    f.insert("proc.vpid", json!(p.vpid));
    f.insert("proc.name", json!(p.comm));
    f.insert("proc.exepath", json!(cx.exepath()));
    f.insert("proc.cmdline", json!(cx.cmdline()));
    f.insert("user.uid", json!(p.uid));
    f.insert("fd.name", json_of(cx, Field::FdName));
    f.insert("k8s.pod.uid", json!(c.and_then(|c| c.pod_uid.as_deref())));
    f.insert("boxwatch.container.full_id", json!(c.map(|c| c.id.as_str())));
    f.insert("boxwatch.cgroup_id", json!(ev.cgroup_id));
    f.insert("boxwatch.proc.start_ns", json!(p.start_ns));
    for (present, field) in [
        (input.container_name.is_some(), Field::ContainerName),
        (input.image.is_some(), Field::ContainerImageRepository),
        (input.pod_name.is_some(), Field::K8sPodName),
        (input.pod_namespace.is_some(), Field::K8sNsName),
    ] {
        if present {
            f.insert(field.name(), json_of(cx, field));
        }
    }
    for field in named {
        f.insert(field.name(), json_of(cx, field));
    }
    for (k, v) in extra {
        f.insert(k, v);
    }
    f.insert("boxwatch.rule.id", json!(meta.id));
    f.insert("boxwatch.rule.class", json!(meta.class.as_str()));
    f.insert("boxwatch.rule.why", json!(meta.why));
    Alert {
        time: rfc3339_ns(input.wall_ns),
        rule: meta.name.to_string(),
        priority: meta.priority,
        output,
        output_fields: f,
        tags: meta.tags.to_vec(),
        source: "syscall",
        hostname: input.hostname.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("a %proc.name. 100%% %fd.name) % x %\n").unwrap();
        let f: Vec<Field> = t.fields().collect();
        assert_eq!(f, [Field::ProcName, Field::FdName]);
        assert_eq!(Template::parse("x %proc.nmae y").unwrap_err().0, 2);
        assert!(Template::parse("%").is_ok());
    }

    #[test]
    fn tags_dedup() {
        let t = alert_tags(Class::Escape, &["T1611".into()], &["container".into(), "T1611".into()]);
        assert_eq!(t, ["escape", "T1611", "container"]);
    }
}
