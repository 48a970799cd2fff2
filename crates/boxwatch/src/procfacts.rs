//! What Falco's rules ask of a process that boxwatch's kernel records do not carry yet, read
//! from /proc off the hot path: the controlling terminal (`proc.tty`), the audit login uid
//! (`user.loginuid`) and the working directory (`proc.cwd`), read once per process (at its
//! exec, or the first time it is seen); and user and group names (`user.name`, `group.name`)
//! from the container's *own* /etc/passwd and /etc/group (through /proc/PID/root), read once
//! per container. Everything is cached and bounded; a value that cannot be read is `None`
//! (`<NA>` in rules and output), never a guess.
//!
//! The kernel could report tty, loginuid and cwd exactly (a BPF record extension); until then
//! a process that exits before it is read has `<NA>` there.

use std::collections::HashMap;
use std::sync::Arc;

/// Most processes and containers remembered; the cache is cleared when it is full.
const MAX_PROCESSES: usize = 32_768;
const MAX_CONTAINERS: usize = 1_024;

/// Per-process facts.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub tty: Option<i64>,
    pub loginuid: Option<i64>,
    pub cwd: Option<Arc<str>>,
}

/// uid → name and gid → name of one root file system.
#[derive(Debug, Default)]
struct Names {
    users: HashMap<u32, Arc<str>>,
    groups: HashMap<u32, Arc<str>>,
}

#[derive(Debug, Default)]
pub struct ProcFacts {
    procs: HashMap<(u32, u64), Facts>,
    names: HashMap<String, Names>,
}

fn parse_db(text: &str) -> HashMap<u32, Arc<str>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            Some((id, Arc::from(name)))
        })
        .collect()
}

/// `tty_nr` of /proc/PID/stat (field 7; the name in field 2 may contain spaces and ')').
fn tty_of(stat: &str) -> Option<i64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(4)?.parse().ok()
}

impl ProcFacts {
    /// Facts of a process, read from /proc the first time (`exec`: read again, the new
    /// image may have changed its directory or terminal).
    pub fn of(&mut self, pid: u32, start_ns: u64, exec: bool) -> Facts {
        if !exec && let Some(f) = self.procs.get(&(pid, start_ns)) {
            return f.clone();
        }
        if self.procs.len() >= MAX_PROCESSES {
            self.procs.clear();
        }
        let base = format!("/proc/{pid}");
        let facts = Facts {
            tty: std::fs::read_to_string(format!("{base}/stat")).ok().and_then(|s| tty_of(&s)),
            loginuid: std::fs::read_to_string(format!("{base}/loginuid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                // Falco shows an unset login uid (4294967295) as -1.
                .map(|u| if u == u32::MAX { -1 } else { i64::from(u) }),
            cwd: std::fs::read_link(format!("{base}/cwd"))
                .ok()
                .map(|p| Arc::from(p.to_string_lossy().as_ref())),
        };
        self.procs.insert((pid, start_ns), facts.clone());
        facts
    }

    /// User and group names of `uid`/`gid` in the root file system of `pid` (its container's
    /// /etc/passwd and /etc/group), cached per container (`key`).
    /// A container whose files could not be read (no /etc/passwd, or the process was gone) is
    /// tried again at its next exec, never per event.
    pub fn names(
        &mut self,
        key: &str,
        pid: u32,
        uid: u32,
        gid: u32,
        exec: bool,
    ) -> (Option<Arc<str>>, Option<Arc<str>>) {
        let retry = exec && self.names.get(key).is_some_and(|n| n.users.is_empty());
        if retry || !self.names.contains_key(key) {
            if self.names.len() >= MAX_CONTAINERS {
                self.names.clear();
            }
            let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/root/etc/{f}")).ok();
            let names = Names {
                users: read("passwd").map(|p| parse_db(&p)).unwrap_or_default(),
                groups: read("group").map(|g| parse_db(&g)).unwrap_or_default(),
            };
            self.names.insert(key.to_string(), names);
        }
        let n = &self.names[key];
        (n.users.get(&uid).cloned(), n.groups.get(&gid).cloned())
    }

    /// Forget a container's names (it exited; a new one may reuse nothing of it).
    pub fn container_gone(&mut self, key: &str) {
        self.names.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_stat_parsing() {
        let db = parse_db(
            "root:x:0:0:root:/root:/bin/sh\n# c\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbad\n",
        );
        assert_eq!(db.get(&0).map(|s| &**s), Some("root"));
        assert_eq!(db.get(&33).map(|s| &**s), Some("www-data"));
        assert_eq!(db.len(), 2);
        assert_eq!(tty_of("12 (a b) c) S 1 12 12 34817 12 4194560 0"), Some(34817));
        assert_eq!(tty_of("12 (sh) S 1 12 12 0 -1"), Some(0));
        assert_eq!(tty_of("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let mut f = ProcFacts::default();
        let me = std::process::id();
        let facts = f.of(me, 1, true);
        assert!(facts.tty.is_some(), "{facts:?}");
        assert_eq!(facts.cwd.as_deref(), std::env::current_dir().ok().as_deref().and_then(|p| p.to_str()));
        let uid = unsafe_free_uid();
        let (user, _) = f.names("host", me, uid, 0, false);
        // Whoever runs the tests has an entry in this machine's /etc/passwd.
        assert!(user.is_some(), "uid {uid}");
    }

    fn unsafe_free_uid() -> u32 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}
