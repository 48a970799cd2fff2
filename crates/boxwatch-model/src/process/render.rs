//! A container's process tree, structured ([`ProcessTree::container_tree`], what the HTTP API
//! serves) and as the text `boxwatch ps` prints ([`ProcessTree::render_container`]), with
//! terminal control and bidi characters escaped so a hostile process name cannot rewrite the
//! operator's screen.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use std::fmt::Write as _;

use super::{Entry, ExecId, MAX_DEPTH, ProcKey, ProcNode, ProcessTree};
use crate::text::push_quoted;

/// One process of a container's tree: the container's live processes and the processes above
/// them (host-side runtime processes such as containerd-shim and runc, which have no container).
/// Pure data, cheap to clone (strings are shared with the tree).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TreeNode {
    pub pid: u32,
    /// Group-leader start time, CLOCK_MONOTONIC ns: with `pid`, the process key.
    pub start_ns: u64,
    /// `pid:start_ns:exec-generation`, as on events and alerts (serialised as that string).
    pub exec_id: ExecId,
    /// Pid of the parent shown in this tree (`None`: a root of the listing).
    pub parent_pid: Option<u32>,
    /// Depth in the listing (roots are 0); nodes come in depth-first order.
    pub depth: usize,
    /// Pid inside the process's own pid namespace (0 if unknown).
    pub vpid: u32,
    pub comm: Arc<str>,
    pub exe: Option<Arc<str>>,
    pub argv: Arc<[String]>,
    pub uid: u32,
    pub euid: u32,
    /// The container this process belongs to; `None` for a host process.
    pub container_id: Option<Arc<str>>,
    /// `container_init`, or `exec_into:<via>` for a process that joined the running container.
    pub entry: Option<String>,
    #[serde(skip)]
    pub entry_kind: Option<Entry>,
    pub live: bool,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
}

/// `container_init` / `exec_into:<via>`: the names alerts and the API use.
pub fn entry_name(e: Entry) -> String {
    match e {
        Entry::ContainerInit => "container_init".to_string(),
        Entry::ExecInto { via } => format!("exec_into:{via}"),
    }
}

impl TreeNode {
    fn of(n: &ProcNode, parent_pid: Option<u32>, depth: usize) -> TreeNode {
        TreeNode {
            pid: n.key.pid,
            start_ns: n.key.start_ns,
            exec_id: n.exec_id(),
            parent_pid,
            depth,
            vpid: n.vpid,
            comm: n.comm.clone(),
            exe: n.exe.clone(),
            argv: n.argv.clone(),
            uid: n.uid,
            euid: n.euid,
            container_id: n.container_id.clone(),
            entry: n.entry.map(entry_name),
            entry_kind: n.entry,
            live: n.is_live(),
            exit_code: n.exit_code,
            exit_signal: n.exit_signal,
        }
    }
}

impl ProcessTree {
    /// The live processes of a container under their host-side ancestors, depth first, in
    /// start-time order among siblings. Exited processes inside the container are skipped
    /// over (their children hang from the nearest shown ancestor). Empty for an unknown id.
    pub fn container_tree(&self, container_id: &str) -> Vec<TreeNode> {
        let members: Vec<&ProcNode> =
            self.nodes.values().filter(|n| n.is_live() && n.in_container(container_id)).collect();
        self.tree_of(container_id, members)
    }

    /// [`ProcessTree::container_tree`] of every container with a live process, in one pass
    /// over the tree.
    pub fn container_trees(&self) -> HashMap<Arc<str>, Vec<TreeNode>> {
        let mut members: HashMap<&Arc<str>, Vec<&ProcNode>> = HashMap::new();
        for n in self.nodes.values().filter(|n| n.is_live()) {
            if let Some(c) = &n.container_id {
                members.entry(c).or_default().push(n);
            }
        }
        members.into_iter().map(|(c, m)| (c.clone(), self.tree_of(c, m))).collect()
    }

    fn tree_of(&self, container_id: &str, members: Vec<&ProcNode>) -> Vec<TreeNode> {
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
        // Siblings in the order they started: pids wrap around, start times do not.
        let by_start = |k: &ProcKey| (k.start_ns, k.pid);
        for v in kids.values_mut() {
            v.sort_by_key(by_start);
        }
        let mut roots: Vec<&ProcKey> = shown.keys().filter(|k| !up.contains_key(k)).collect();
        roots.sort_by_key(|k| by_start(k));
        let order: Vec<ProcKey> = roots.into_iter().chain(shown.keys()).copied().collect();
        let (mut out, mut done) = (Vec::new(), BTreeSet::new());
        for root in order {
            let mut stack = vec![(root, None, 0usize)];
            while let Some((k, parent, depth)) = stack.pop() {
                if !done.insert(k) {
                    continue;
                }
                let Some(n) = shown.get(&k) else { continue };
                out.push(TreeNode::of(n, parent, depth));
                for c in kids.get(&k).into_iter().flatten().rev() {
                    stack.push((*c, Some(k.pid), depth + 1));
                }
            }
        }
        out
    }

    /// The live processes of a container as an indented tree, one `pid comm exe argv` line
    /// each, under their host-side ancestors (tagged `[host]`). Exited processes inside the
    /// container are skipped over; control and bidi characters are escaped.
    pub fn render_container(&self, container_id: &str) -> String {
        let mut out = String::new();
        for n in self.container_tree(container_id) {
            render_line(&mut out, &n, container_id);
        }
        out
    }
}

fn render_line(out: &mut String, n: &TreeNode, cid: &str) {
    for _ in 0..n.depth.min(MAX_DEPTH) {
        out.push_str("  "); // capped: a deliberately deep chain must not blow up the output
    }
    let _ = write!(out, "{} ", n.pid);
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
    match (n.container_id.as_deref(), n.entry_kind) {
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
    if !n.live {
        out.push_str(" [exited]");
    }
    out.push('\n');
}
