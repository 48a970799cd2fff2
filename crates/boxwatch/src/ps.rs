//! `boxwatch ps`: the live process tree of every container, with the
//! host-side processes (containerd-shim, runc, conmon…) that started them.
//! Built from the cgroup tree and /proc with the same container matcher and
//! process tree the daemon uses; needs no running daemon.

use std::io::Write;

use anyhow::Result;
use boxwatch_model::ContainerTable;
use boxwatch_model::process::ProcessTree;
use boxwatch_model::text::escaped;

use crate::cgroups;
use crate::cli::PsArgs;
use crate::procfs;

pub fn run(args: PsArgs) -> Result<()> {
    let root = cgroups::cgroup2_root()?;
    let mut table = ContainerTable::new();
    for (id, path) in cgroups::scan(&root)? {
        table.learn(id, &path);
    }
    let seeds = procfs::scan(&root, &|cg| table.lookup(cg).flatten().map(|c| c.id.clone()));
    let mut tree = ProcessTree::default();
    tree.seed(seeds);
    let mut containers: Vec<_> = table.containers().cloned().collect();
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = std::io::stdout().lock();
    let mut shown = 0;
    for c in &containers {
        if let Some(want) = &args.container
            && !c.id.starts_with(want.as_str())
        {
            continue;
        }
        shown += 1;
        writeln!(
            out,
            "container {} runtime={}{} cgroup={}",
            escaped(c.short_id()),
            c.runtime,
            c.pod_uid.as_deref().map(|u| format!(" pod={}", escaped(u))).unwrap_or_default(),
            escaped(&c.cgroup_root)
        )?;
        let tree_text = tree.render_container(&c.id);
        if tree_text.is_empty() {
            writeln!(out, "  (no live processes)")?;
        }
        for line in tree_text.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    if shown == 0 {
        match &args.container {
            Some(id) => anyhow::bail!("no container whose id starts with {id:?}"),
            None => writeln!(out, "no containers")?,
        }
    }
    Ok(())
}
