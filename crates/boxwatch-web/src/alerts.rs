//! `/api/v1/alerts`: query parameters, their validation, and the store the binary implements
//! over its SQLite history.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Falco priorities, most severe first (the spelling alerts carry).
pub const PRIORITIES: [&str; 8] =
    ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];

/// Rows returned when `limit` is not given, and the most one request may ask for.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// A validated alert query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts at or after this Unix time, ns.
    pub since_unix_ns: Option<u64>,
    /// Prefix of the container's full id.
    pub container: Option<String>,
    /// Rule name or rule id, exact.
    pub rule: Option<String>,
    /// Accepted priorities (`priority=warning` means Warning or more severe); `None`: all.
    pub priorities: Option<Vec<&'static str>>,
    /// Most rows, newest first (1..=[`MAX_LIMIT`]).
    pub limit: usize,
}

/// Where `/api/v1/alerts` reads from. Called on a blocking thread, never on the event path.
pub trait AlertStore: Send + Sync + 'static {
    /// Matching alerts, newest first, each the alert's JSON object as in alerts.jsonl.
    fn query(&self, q: &AlertQuery) -> Result<Vec<serde_json::Value>, String>;
}

/// The query string as given; every field optional, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertParams {
    pub since: Option<String>,
    pub container: Option<String>,
    pub rule: Option<String>,
    pub priority: Option<String>,
    pub limit: Option<String>,
}

fn clean(name: &str, v: Option<String>, max: usize) -> Result<Option<String>, String> {
    let Some(v) = v else { return Ok(None) };
    if v.is_empty() {
        return Err(format!("{name}: empty value"));
    }
    if v.chars().count() > max {
        return Err(format!("{name}: longer than {max} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("{name}: control characters are not allowed"));
    }
    Ok(Some(v))
}

/// `10m`, `2h`, `1d`, `90s` (before now), or an RFC 3339 time; Unix ns.
pub fn parse_since(s: &str, now: SystemTime) -> Result<u64, String> {
    let t = match humantime::parse_duration(s) {
        Ok(d) => now.checked_sub(d).unwrap_or(UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| {
            format!("since: expected a duration before now (e.g. 10m, 2h, 1d) or an RFC 3339 time, got {s:?}")
        })?,
    };
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Ok(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl RawAlertParams {
    /// Validate; the error is the message the client gets with a 400.
    pub fn validate(self, now: SystemTime) -> Result<AlertQuery, String> {
        let since_unix_ns = match clean("since", self.since, 64)? {
            Some(s) => Some(parse_since(&s, now)?),
            None => None,
        };
        let container = clean("container", self.container, 128)?;
        if let Some(c) = &container
            && !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch))
        {
            return Err(format!("container: expected an id or id prefix ([A-Za-z0-9-_.:]), got {c:?}"));
        }
        let rule = clean("rule", self.rule, 256)?;
        let priorities = match clean("priority", self.priority, 32)? {
            None => None,
            Some(p) => {
                let want = if p.eq_ignore_ascii_case("info") { "Informational" } else { p.as_str() };
                let Some(i) = PRIORITIES.iter().position(|k| k.eq_ignore_ascii_case(want)) else {
                    return Err(format!(
                        "priority: expected one of {} (this priority or more severe), got {p:?}",
                        PRIORITIES.map(|p| p.to_ascii_lowercase()).join(", ")
                    ));
                };
                Some(PRIORITIES[..=i].to_vec())
            }
        };
        let limit = match clean("limit", self.limit, 16)? {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => return Err(format!("limit: expected a whole number from 1 to {MAX_LIMIT}, got {l:?}")),
            },
        };
        Ok(AlertQuery { since_unix_ns, container, rule, priorities, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn raw(f: impl FnOnce(&mut RawAlertParams)) -> RawAlertParams {
        let mut r = RawAlertParams::default();
        f(&mut r);
        r
    }

    #[test]
    fn defaults_and_good_values() {
        assert_eq!(
            RawAlertParams::default().validate(now()).unwrap(),
            AlertQuery { limit: DEFAULT_LIMIT, ..AlertQuery::default() }
        );
        let q = raw(|r| {
            r.since = Some("10m".into());
            r.container = Some("4be7496d".into());
            r.rule = Some("Write below /etc in a container".into());
            r.priority = Some("warning".into());
            r.limit = Some("5".into());
        })
        .validate(now())
        .unwrap();
        assert_eq!(q.since_unix_ns, Some((1_700_000_000 - 600) * 1_000_000_000));
        assert_eq!(q.priorities.unwrap(), ["Emergency", "Alert", "Critical", "Error", "Warning"]);
        assert_eq!(q.limit, 5);
        let q = raw(|r| r.since = Some("2023-11-14T22:13:20Z".into())).validate(now()).unwrap();
        assert_eq!(q.since_unix_ns, Some(1_700_000_000 * 1_000_000_000));
        let q = raw(|r| r.priority = Some("INFO".into())).validate(now()).unwrap();
        assert_eq!(q.priorities.unwrap().last(), Some(&"Informational"));
    }

    #[test]
    fn bad_values_are_explained() {
        for (f, want) in [
            (raw(|r| r.since = Some("yesterday".into())), "since: expected a duration"),
            (raw(|r| r.since = Some(String::new())), "since: empty value"),
            (raw(|r| r.limit = Some("0".into())), "limit: expected a whole number from 1 to 10000"),
            (raw(|r| r.limit = Some("-1".into())), "limit: expected"),
            (raw(|r| r.limit = Some("99999999999999999999".into())), "limit:"),
            (raw(|r| r.priority = Some("loud".into())), "priority: expected one of emergency, alert"),
            (raw(|r| r.container = Some("abc/../x".into())), "container: expected an id"),
            (raw(|r| r.rule = Some("a\nb".into())), "rule: control characters"),
            (raw(|r| r.rule = Some("x".repeat(300))), "rule: longer than 256"),
        ] {
            let e = f.validate(now()).unwrap_err();
            assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
        }
    }

    #[test]
    fn huge_durations_do_not_overflow() {
        let q = raw(|r| r.since = Some("100000years".into())).validate(now()).unwrap();
        assert_eq!(q.since_unix_ns, Some(0));
    }
}
