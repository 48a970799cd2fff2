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
