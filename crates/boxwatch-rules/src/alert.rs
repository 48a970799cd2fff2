//! Alerts as data, serialised in Falco's JSON shape so falcosidekick and
//! Falco Talon accept them unchanged. boxwatch's own fields sit under the
//! `boxwatch.` prefix in `output_fields`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Falco's priorities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

/// One alert, exactly as written to outputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    pub rule: String,
    pub priority: Priority,
    pub output: String,
    pub output_fields: BTreeMap<&'static str, serde_json::Value>,
    pub tags: Vec<String>,
    pub source: &'static str,
    pub hostname: String,
}

/// Where the alerting process came from: its exec ids, how it entered its
/// container, and its ancestors (nearest first, host-side runtime processes
/// included). Added to alerts by [`Alert::add_lineage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    pub exec_id: String,
    pub parent_exec_id: Option<String>,
    /// `container_init`, `exec_into:VIA`, or `None` when unknown.
    pub entry: Option<String>,
    pub ancestors: Vec<Ancestor>,
}

/// One ancestor of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
    /// Inside the same container as the alerting process.
    pub in_container: bool,
}

impl Alert {
    /// Fill Falco's ancestry fields (`proc.pname`, `proc.aname[N]`, `proc.apid[N]`, …) and
    /// boxwatch's own (`boxwatch.proc.exec_id`, `boxwatch.proc.entry`, `boxwatch.proc.lineage`).
    pub fn add_lineage(&mut self, l: &Lineage) {
        use serde_json::json;
        const ANAME: [&str; 6] = [
            "proc.aname[1]",
            "proc.aname[2]",
            "proc.aname[3]",
            "proc.aname[4]",
            "proc.aname[5]",
            "proc.aname[6]",
        ];
        const APID: [&str; 6] =
            ["proc.apid[1]", "proc.apid[2]", "proc.apid[3]", "proc.apid[4]", "proc.apid[5]", "proc.apid[6]"];
        let f = &mut self.output_fields;
        if let Some(p) = l.ancestors.first() {
            f.insert("proc.pname", json!(p.comm));
            f.insert("proc.pexepath", json!(p.exe));
        }
        for (i, a) in l.ancestors.iter().take(ANAME.len()).enumerate() {
            f.insert(ANAME[i], json!(a.comm));
            f.insert(APID[i], json!(a.pid));
        }
        f.insert("boxwatch.proc.exec_id", json!(l.exec_id));
        f.insert("boxwatch.proc.parent_exec_id", json!(l.parent_exec_id));
        f.insert("boxwatch.proc.entry", json!(l.entry));
        let chain: Vec<String> = l
            .ancestors
            .iter()
            .map(|a| format!("{}:{}{}", a.pid, a.comm, if a.in_container { "" } else { "[host]" }))
            .collect();
        f.insert("boxwatch.proc.lineage", json!(chain));
    }
}
