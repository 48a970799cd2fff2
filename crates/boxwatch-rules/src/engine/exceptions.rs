//! Structured rule exceptions: `{name, fields, comps, values}` tuples compiled to one
//! predicate that is true when any exception matches (the rule then stays silent).
//!
//! `fields: [f1, f2]` with `comps: [c1, c2]` (default `=` each) and `values: [[v1, v2], ...]`;
//! a value for `in`/`intersects`/`pmatch` may be a list of strings or a list name. The short
//! form `fields: f` takes `comps: c` (default `in`) and a flat `values: [v, ...]`.

use std::collections::HashMap;

use super::RuleError;
use super::compile::{Check, Pred, build_test, unknown_field};
use super::fields;
use super::parser::Op;
use super::yaml::{Mark, Node, Source};

fn parse_comp(s: &str) -> Option<Op> {
    match s {
        "=" | "==" => Some(Op::Eq),
        "!=" => Some(Op::Ne),
        "<" => Some(Op::Lt),
        "<=" => Some(Op::Le),
        ">" => Some(Op::Gt),
        ">=" => Some(Op::Ge),
        "exists" => None,
        w => Op::from_word(w),
    }
}

/// Exceptions as one predicate: true when any exception matches the event.
pub(crate) fn exceptions(
    src: &Source,
    node: &Node,
    lists: &HashMap<String, Vec<String>>,
    errs: &mut Vec<RuleError>,
) -> Pred {
    let Node::Seq { items, .. } = node else {
        errs.push(src.error(node.mark(), "'exceptions' must be a list"));
        return Pred::Const(false);
    };
    let mut any = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for ex in items {
        let Node::Map { entries, mark } = ex else {
            errs.push(
                src.error(ex.mark(), "an exception must be a mapping with name, fields, comps and values"),
            );
            continue;
        };
        let get = |k: &str| entries.iter().find(|(key, _)| key.as_str() == Some(k)).map(|e| &e.1);
        for (k, _) in entries {
            if !matches!(k.as_str(), Some("name" | "fields" | "comps" | "values")) {
                errs.push(src.error(
                    k.mark(),
                    format!(
                        "unknown key '{}' in exception (expected name, fields, comps, values)",
                        k.as_str().unwrap_or("?")
                    ),
                ));
            }
        }
        match get("name").and_then(|n| n.as_str()) {
            Some(n) if names.contains(&n) => errs.push(
                src.error(get("name").map_or(*mark, |n| n.mark()), format!("duplicate exception name '{n}'")),
            ),
            Some(n) => names.push(n),
            None => errs.push(src.error(*mark, "exception is missing 'name'")),
        }
        let Some(fnode) = get("fields") else {
            errs.push(src.error(*mark, "exception is missing 'fields'"));
            continue;
        };
        // A single field: values is a flat list and comps a single operator (default `in`).
        let single = matches!(fnode, Node::Scalar { .. });
        let flds: Vec<(&str, Mark)> = match fnode {
            Node::Scalar { value, mark, .. } => vec![(value.as_str(), *mark)],
            n => super::load::scalars(src, n, "fields", errs),
        };
        let mut resolved = Vec::new();
        for (f, m) in &flds {
            match fields::lookup(f) {
                Some(fk) => resolved.push(fk),
                None => errs.push(src.error(*m, unknown_field(f))),
            }
        }
        let comps: Vec<(Op, Mark)> = match get("comps") {
            None => flds.iter().map(|(_, m)| (if single { Op::In } else { Op::Eq }, *m)).collect(),
            Some(n) => {
                let cs = match n {
                    Node::Scalar { value, mark, .. } if single => vec![(value.as_str(), *mark)],
                    n => super::load::scalars(src, n, "comps", errs),
                };
                cs.into_iter()
                    .filter_map(|(c, m)| {
                        let op = parse_comp(c);
                        if op.is_none() {
                            errs.push(src.error(m, format!("unknown comparison '{c}' in exception")));
                        }
                        op.map(|o| (o, m))
                    })
                    .collect()
            }
        };
        if flds.is_empty() {
            errs.push(src.error(fnode.mark(), "exception has no fields"));
            continue;
        }
        if let Some(c) = get("comps")
            && !single
            && scalars_len(c).is_some_and(|n| n != flds.len())
        {
            let n = scalars_len(c).unwrap_or(0);
            errs.push(src.error(c.mark(), format!("exception has {} fields but {n} comps", flds.len())));
            continue;
        }
        if resolved.len() != flds.len() || comps.len() != flds.len() {
            continue;
        }
        let Some(vnode) = get("values") else {
            errs.push(src.error(*mark, "exception is missing 'values'"));
            continue;
        };
        let Node::Seq { items: tuples, .. } = vnode else {
            errs.push(src.error(vnode.mark(), "'values' must be a list"));
            continue;
        };
        let tuples: Vec<Vec<&Node>> = if single {
            vec![tuples.iter().collect()]
        } else {
            tuples
                .iter()
                .filter_map(|t| match t {
                    Node::Seq { items, .. } if items.len() == flds.len() => Some(items.iter().collect()),
                    t => {
                        errs.push(src.error(
                            t.mark(),
                            format!(
                                "each exception value must be a list of {} items, one per field",
                                flds.len()
                            ),
                        ));
                        None
                    }
                })
                .collect()
        };
        for tuple in tuples {
            let mut all = Vec::new();
            let mut failed = false;
            for (i, ((f, kind), (op, _))) in resolved.iter().zip(&comps).enumerate() {
                let vals: Vec<&Node> = if single {
                    tuple.clone()
                } else {
                    match tuple[i] {
                        Node::Seq { items, .. } => items.iter().collect(),
                        n => vec![n],
                    }
                };
                let mut texts: Vec<(&str, Mark)> = Vec::new();
                for v in vals {
                    match v {
                        Node::Scalar { value, mark, .. } => {
                            match lists.get(value).filter(|_| op.takes_list()) {
                                Some(items) => texts.extend(items.iter().map(|s| (s.as_str(), *mark))),
                                None => texts.push((value.as_str(), *mark)),
                            }
                        }
                        n => {
                            failed = true;
                            errs.push(
                                src.error(n.mark(), "exception values must be strings or lists of strings"),
                            );
                        }
                    }
                }
                let strs: Vec<&str> = texts.iter().map(|t| t.0).collect();
                match build_test(*kind, flds[i].0, *op, &strs) {
                    Ok((test, negate)) => all.push(Pred::Check(Box::new(Check { field: *f, test, negate }))),
                    Err((at, msg)) => {
                        failed = true;
                        let m = at.and_then(|j| texts.get(j)).map_or(comps[i].1, |t| t.1);
                        errs.push(src.error(m, msg));
                    }
                }
            }
            // A tuple with an error must not become an always-true exception.
            if !failed {
                any.push(Pred::and(all));
            }
        }
    }
    Pred::or(any)
}

fn scalars_len(n: &Node) -> Option<usize> {
    match n {
        Node::Seq { items, .. } => Some(items.len()),
        Node::Scalar { .. } => Some(1),
        Node::Map { .. } => None,
    }
}
