//! `ProcessTree::render_container`: the text `boxwatch ps` prints, with
//! terminal control and bidi characters escaped so a hostile process name
//! cannot rewrite the operator's screen.

use std::collections::{BTreeMap, BTreeSet};

use std::fmt::Write as _;

use super::{Entry, MAX_DEPTH, ProcKey, ProcNode, ProcessTree};
use crate::text::push_quoted;

impl ProcessTree {
    /// The live processes of a container as an indented tree, one `pid comm exe argv` line
    /// each, under their host-side ancestors (tagged `[host]`). Exited processes inside the
    /// container are skipped over; control and bidi characters are escaped.
    pub fn render_container(&self, container_id: &str) -> String {
        let members: Vec<&ProcNode> =
            self.nodes.values().filter(|n| n.is_live() && n.in_container(container_id)).collect();
        let mut shown: BTreeMap<ProcKey, &ProcNode> = members.iter().map(|n| (n.key, *n)).collect();
        let mut up: BTreeMap<ProcKey, ProcKey> = BTreeMap::new();
        for m in &members {
            let (mut cur, mut child) = (*m, m.key);
            for _ in 0..MAX_DEPTH {
                let Some(p) = self.parent_node(cur) else { break };
                if p.key == m.key {
                    break;
                }
                if !p.in_container(container_id) || p.is_live() {
                    up.insert(child, p.key);
                    if shown.insert(p.key, p).is_some() {
                        break;
                    }
                    child = p.key;
                }
                cur = p;
            }
        }
        let mut kids: BTreeMap<ProcKey, Vec<ProcKey>> = BTreeMap::new();
        for (c, p) in &up {
            kids.entry(*p).or_default().push(*c);
        }
        let roots = shown.keys().filter(|k| !up.contains_key(k));
        let order: Vec<ProcKey> = roots.chain(shown.keys()).copied().collect();
        let (mut out, mut done) = (String::new(), BTreeSet::new());
        for root in order {
            let mut stack = vec![(root, 0usize)];
            while let Some((k, depth)) = stack.pop() {
                if !done.insert(k) {
                    continue;
                }
                let Some(n) = shown.get(&k) else { continue };
                render_line(&mut out, n, depth, container_id);
                for c in kids.get(&k).into_iter().flatten().rev() {
                    stack.push((*c, depth + 1));
                }
            }
        }
        out
    }
}

fn render_line(out: &mut String, n: &ProcNode, depth: usize, cid: &str) {
    for _ in 0..depth.min(MAX_DEPTH) {
        out.push_str("  "); // capped: a deliberately deep chain must not blow up the output
    }
    let _ = write!(out, "{} ", n.key.pid);
    push_quoted(out, &n.comm);
    out.push(' ');
    match &n.exe {
        Some(e) => push_quoted(out, e),
        None => out.push('-'),
    }
    for a in n.argv.iter() {
        out.push(' ');
        push_quoted(out, a);
    }
    match (n.container(), n.entry) {
        (Some(c), Some(Entry::ContainerInit)) if c == cid => out.push_str("  [init]"),
        (Some(c), Some(Entry::ExecInto { via })) if c == cid => {
            let _ = write!(out, "  [exec: {via}]");
        }
        (Some(c), _) if c == cid => {}
        (Some(c), _) => {
            out.push_str("  [container ");
            push_quoted(out, &c.chars().take(12).collect::<String>());
            out.push(']');
        }
        (None, _) => out.push_str("  [host]"),
    }
    if !n.is_live() {
        out.push_str(" [exited]");
    }
    out.push('\n');
}
