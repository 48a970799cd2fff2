//! The container table: cgroup v2 id → container (or host), fed with
//! (id, path) pairs from the start-up cgroup scan and from cgroup_mkdir /
//! cgroup_rmdir events. Pure: the caller does the I/O.

use std::collections::HashMap;
use std::sync::Arc;

use crate::container::{ContainerRef, parse_cgroup_path};

/// What became of a cgroup the table was told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    /// A host cgroup.
    Host,
    /// A cgroup of a container already known (a sub-cgroup, or seen again).
    Known(Arc<ContainerRef>),
    /// The first cgroup of a container not seen before.
    NewContainer(Arc<ContainerRef>),
}

/// cgroup id → container; `None` marks a host cgroup.
#[derive(Debug, Default)]
pub struct ContainerTable {
    by_cgroup: HashMap<u64, Option<Arc<ContainerRef>>>,
    /// container id → (container, number of its cgroups in the table)
    by_id: HashMap<String, (Arc<ContainerRef>, usize)>,
}

impl ContainerTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record cgroup `id` at `path` (relative to the cgroup2 mount, starting with '/').
    pub fn learn(&mut self, id: u64, path: &str) -> Learned {
        if let Some(prev) = self.by_cgroup.get(&id) {
            return match prev {
                Some(c) => Learned::Known(c.clone()),
                None => Learned::Host,
            };
        }
        let Some(parsed) = parse_cgroup_path(path) else {
            self.by_cgroup.insert(id, None);
            return Learned::Host;
        };
        let (learned, c) = match self.by_id.get_mut(&parsed.id) {
            Some((c, n)) => {
                *n += 1;
                (Learned::Known(c.clone()), c.clone())
            }
            None => {
                let c = Arc::new(parsed);
                self.by_id.insert(c.id.clone(), (c.clone(), 1));
                (Learned::NewContainer(c.clone()), c)
            }
        };
        self.by_cgroup.insert(id, Some(c));
        learned
    }

    /// Forget cgroup `id`; returns the container if this was its last cgroup (it is gone).
    pub fn forget(&mut self, id: u64) -> Option<Arc<ContainerRef>> {
        let c = self.by_cgroup.remove(&id)??;
        let (_, n) = self.by_id.get_mut(&c.id)?;
        *n -= 1;
        if *n == 0 {
            self.by_id.remove(&c.id);
            return Some(c);
        }
        None
    }

    /// `None`: never heard of this cgroup; `Some(None)`: host; `Some(Some(c))`: container.
    pub fn lookup(&self, id: u64) -> Option<Option<&Arc<ContainerRef>>> {
        self.by_cgroup.get(&id).map(Option::as_ref)
    }

    pub fn containers(&self) -> impl Iterator<Item = &Arc<ContainerRef>> {
        self.by_id.values().map(|(c, _)| c)
    }

    pub fn cgroup_count(&self) -> usize {
        self.by_cgroup.len()
    }

    /// Every cgroup id the table knows, in no particular order.
    pub fn cgroup_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_cgroup.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4be7496d1c7a4f2fb2b7c3c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1";

    #[test]
    fn learns_host_container_and_subcgroups() {
        let mut t = ContainerTable::new();
        assert_eq!(t.learn(1, "/"), Learned::Host);
        assert_eq!(t.learn(5, "/init.scope"), Learned::Host);
        let docker = format!("/system.slice/docker-{ID}.scope");
        let Learned::NewContainer(c) = t.learn(10, &docker) else { panic!("expected a new container") };
        assert_eq!(c.id, ID);
        assert!(matches!(t.learn(11, &format!("{docker}/init")), Learned::Known(_)));
        assert!(matches!(t.learn(10, &docker), Learned::Known(_)));
        assert_eq!(t.lookup(10).unwrap().unwrap().id, ID);
        assert_eq!(t.lookup(1), Some(None));
        assert_eq!(t.lookup(99), None);
        assert_eq!(t.forget(11), None, "container still has a cgroup");
        assert_eq!(t.forget(10).unwrap().id, ID, "last cgroup gone: container gone");
        assert_eq!(t.containers().count(), 0);
        assert_eq!(t.forget(1), None);
        assert_eq!(t.cgroup_ids().collect::<Vec<_>>(), vec![5]);
    }
}
