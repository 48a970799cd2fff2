//! Alert aggregation and rate limiting, so one noisy container cannot drown
//! the rest and a loop does not produce ten thousand identical alerts.
//!
//! - **Folding**: the first alert of a key (rule, container, executable, file
//!   or peer) goes out at once; identical ones within `window_ns` are counted,
//!   and when the window closes one summary alert carries
//!   `boxwatch.aggregate.count`, `…first_time` and `…last_time`.
//! - **Rate limits**: token buckets per rule and per container. An alert over a
//!   limit is suppressed and counted per rule and per container.
//!
//! Pure: time (`now_ns`, any monotonic clock) is passed in.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::alert::Alert;

/// Tunables.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateConfig {
    /// Identical alerts within this window are folded; 0 disables folding.
    pub window_ns: u64,
    /// Sustained alerts per second per rule (burst: 2 s worth); 0: unlimited.
    pub per_rule_per_sec: f64,
    /// Sustained alerts per second per container (burst: 2 s worth); 0: unlimited.
    pub per_container_per_sec: f64,
    /// Most distinct keys folded at once; beyond it the oldest windows close early.
    pub max_keys: usize,
}

impl Default for AggregateConfig {
    fn default() -> Self {
        Self {
            window_ns: 10_000_000_000,
            per_rule_per_sec: 50.0,
            per_container_per_sec: 100.0,
            max_keys: 10_000,
        }
    }
}

#[derive(Debug)]
struct Window {
    opened_ns: u64,
    /// The first alert, kept to build the summary.
    first: Alert,
    last_time: String,
    repeats: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ns: u64,
}

impl Bucket {
    fn take(&mut self, rate: f64, now_ns: u64) -> bool {
        let burst = rate * 2.0;
        let elapsed = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last_ns = now_ns;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counters for metrics and the stats line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateStats {
    /// Alerts folded into a window (not emitted individually).
    pub folded: u64,
    /// Summary alerts emitted at window close.
    pub summaries: u64,
    /// Suppressed by rate limits, per rule name.
    pub suppressed_by_rule: BTreeMap<String, u64>,
    /// Suppressed by rate limits, per container id ("host" for host processes).
    pub suppressed_by_container: BTreeMap<String, u64>,
}

impl AggregateStats {
    pub fn suppressed(&self) -> u64 {
        self.suppressed_by_rule.values().sum()
    }
}

#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregateConfig,
    windows: HashMap<String, Window>,
    rule_buckets: HashMap<String, Bucket>,
    container_buckets: HashMap<String, Bucket>,
    stats: AggregateStats,
}

fn field<'a>(a: &'a Alert, k: &str) -> &'a Value {
    a.output_fields.get(k).unwrap_or(&Value::Null)
}

/// What makes two alerts "the same": rule, container, executable, and the object acted on.
fn key(a: &Alert) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        a.rule,
        field(a, "boxwatch.container.full_id"),
        field(a, "proc.exepath"),
        field(a, "fd.name"),
        field(a, "fd.sip"),
        field(a, "fd.dport"),
    )
}

fn container_of(a: &Alert) -> String {
    match field(a, "boxwatch.container.full_id") {
        Value::String(s) => s.clone(),
        _ => "host".to_string(),
    }
}

impl Aggregator {
    pub fn new(cfg: AggregateConfig) -> Aggregator {
        Aggregator {
            cfg,
            windows: HashMap::new(),
            rule_buckets: HashMap::new(),
            container_buckets: HashMap::new(),
            stats: AggregateStats::default(),
        }
    }

    pub fn stats(&self) -> &AggregateStats {
        &self.stats
    }

    fn allowed(&mut self, a: &Alert, now_ns: u64) -> bool {
        let full = |rate: f64| Bucket { tokens: rate * 2.0, last_ns: now_ns };
        let (rr, cr) = (self.cfg.per_rule_per_sec, self.cfg.per_container_per_sec);
        let container = container_of(a);
        let rule_ok =
            rr <= 0.0 || self.rule_buckets.entry(a.rule.clone()).or_insert_with(|| full(rr)).take(rr, now_ns);
        let cont_ok = !rule_ok
            || cr <= 0.0
            || self.container_buckets.entry(container.clone()).or_insert_with(|| full(cr)).take(cr, now_ns);
        if rule_ok && cont_ok {
            return true;
        }
        *self.stats.suppressed_by_rule.entry(a.rule.clone()).or_default() += 1;
        *self.stats.suppressed_by_container.entry(container).or_default() += 1;
        false
    }

    /// Offer one alert; what should go out now is pushed to `out`.
    pub fn offer(&mut self, a: Alert, now_ns: u64, out: &mut Vec<Alert>) {
        self.tick(now_ns, out);
        if self.cfg.window_ns == 0 {
            if self.allowed(&a, now_ns) {
                out.push(a);
            }
            return;
        }
        let k = key(&a);
        if let Some(w) = self.windows.get_mut(&k) {
            w.repeats += 1;
            w.last_time = a.time;
            self.stats.folded += 1;
            return;
        }
        if !self.allowed(&a, now_ns) {
            return;
        }
        if self.windows.len() >= self.cfg.max_keys {
            self.close_oldest(out);
        }
        self.windows
            .insert(k, Window { opened_ns: now_ns, first: a.clone(), last_time: a.time.clone(), repeats: 0 });
        out.push(a);
    }

    fn summary(&mut self, w: Window, out: &mut Vec<Alert>) {
        if w.repeats == 0 {
            return;
        }
        let mut s = w.first;
        let count = w.repeats + 1;
        s.output = format!("{} (repeated: {count} times from {} to {})", s.output, s.time, w.last_time);
        s.output_fields.insert("boxwatch.aggregate.count", json!(count));
        s.output_fields.insert("boxwatch.aggregate.first_time", json!(s.time));
        s.output_fields.insert("boxwatch.aggregate.last_time", json!(w.last_time));
        s.time = w.last_time;
        self.stats.summaries += 1;
        out.push(s);
    }

    fn close_oldest(&mut self, out: &mut Vec<Alert>) {
        if let Some(k) = self.windows.iter().min_by_key(|(_, w)| w.opened_ns).map(|(k, _)| k.clone())
            && let Some(w) = self.windows.remove(&k)
        {
            self.summary(w, out);
        }
    }

    /// Close windows that have run their course.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        let window = self.cfg.window_ns;
        let done: Vec<String> = self
            .windows
            .iter()
            .filter(|(_, w)| now_ns.saturating_sub(w.opened_ns) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        for k in done {
            if let Some(w) = self.windows.remove(&k) {
                self.summary(w, out);
            }
        }
    }

    /// A container is gone: drop its rate-limit bucket and its suppression count, so per-container
    /// state does not grow with every container ever seen. Its open folding windows close on
    /// their own at the end of the window.
    pub fn forget_container(&mut self, id: &str) {
        self.container_buckets.remove(id);
        self.stats.suppressed_by_container.remove(id);
    }

    /// Per-container entries held (rate-limit buckets, suppression counts).
    pub fn container_entries(&self) -> usize {
        self.container_buckets.len() + self.stats.suppressed_by_container.len()
    }

    /// Shutdown: close every window.
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        let mut all: Vec<Window> = self.windows.drain().map(|(_, w)| w).collect();
        all.sort_by_key(|w| w.opened_ns);
        for w in all {
            self.summary(w, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Priority;

    fn alert(rule: &str, container: &str, file: &str, t: u64) -> Alert {
        let mut f = std::collections::BTreeMap::new();
        f.insert("boxwatch.container.full_id", json!(container));
        f.insert("fd.name", json!(file));
        Alert {
            time: format!("t{t}"),
            rule: rule.into(),
            priority: Priority::Warning,
            output: "x".into(),
            output_fields: f,
            tags: vec![],
            source: "syscall",
            hostname: "h".into(),
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn identical_alerts_fold_into_one_summary() {
        let mut g = Aggregator::new(AggregateConfig {
            per_rule_per_sec: 0.0,
            per_container_per_sec: 0.0,
            ..Default::default()
        });
        let mut out = Vec::new();
        for i in 0..100 {
            g.offer(alert("r", "c1", "/etc/shadow", i), i * S / 100, &mut out);
        }
        g.offer(alert("r", "c1", "/etc/other", 1), S, &mut out);
        assert_eq!(out.len(), 2, "first of each key goes out at once");
        g.tick(11 * S, &mut out);
        assert_eq!(out.len(), 3);
        let s = &out[2];
        assert_eq!(s.output_fields["boxwatch.aggregate.count"], 100);
        assert_eq!(s.output_fields["boxwatch.aggregate.first_time"], "t0");
        assert_eq!(s.output_fields["boxwatch.aggregate.last_time"], "t99");
        assert!(s.output.contains("repeated: 100 times"));
        assert_eq!(g.stats().folded, 99);
        assert_eq!(g.stats().summaries, 1, "a key seen once gets no summary");
    }

    #[test]
    fn a_noisy_container_is_rate_limited_without_silencing_others() {
        let cfg = AggregateConfig {
            window_ns: 0,
            per_rule_per_sec: 0.0,
            per_container_per_sec: 10.0,
            ..Default::default()
        };
        let mut g = Aggregator::new(cfg);
        let mut out = Vec::new();
        for i in 0..1000 {
            g.offer(alert("r", "noisy", &format!("/f{i}"), i), i * S / 1000, &mut out);
        }
        let noisy = out.len();
        assert!((28..=30).contains(&noisy), "burst of 20 (2 s at 10/s) plus ~10 refilled over 1 s: {noisy}");
        g.offer(alert("r", "quiet", "/etc/x", 0), S, &mut out);
        assert_eq!(out.len(), noisy + 1, "another container still alerts");
        assert_eq!(g.stats().suppressed_by_container["noisy"], 1000 - noisy as u64);
        assert_eq!(g.stats().suppressed(), 1000 - noisy as u64);
    }

    #[test]
    fn flush_emits_pending_summaries() {
        let mut g = Aggregator::new(AggregateConfig::default());
        let mut out = Vec::new();
        g.offer(alert("r", "c", "/a", 1), 0, &mut out);
        g.offer(alert("r", "c", "/a", 2), 1, &mut out);
        g.flush(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].output_fields["boxwatch.aggregate.count"], 2);
    }

    #[test]
    fn per_container_state_goes_with_the_container() {
        let mut g = Aggregator::new(AggregateConfig {
            window_ns: 0,
            per_rule_per_sec: 0.0,
            per_container_per_sec: 1.0,
            ..AggregateConfig::default()
        });
        let mut out = Vec::new();
        for c in 0..100 {
            for i in 0..5 {
                g.offer(alert("r", &format!("c{c}"), "/etc/x", i), i, &mut out);
            }
        }
        assert_eq!(out.len(), 200, "burst of 2 per container");
        assert_eq!(g.stats().suppressed(), 300);
        assert_eq!(g.container_entries(), 200, "a bucket and a count per container");
        for c in 0..100 {
            g.forget_container(&format!("c{c}"));
        }
        assert_eq!(g.container_entries(), 0);
        assert_eq!(g.stats().suppressed(), 300, "the per-rule totals stay");
        // A new container with a reused name starts with a full bucket.
        g.offer(alert("r", "c1", "/etc/x", 9), 9, &mut out);
        assert_eq!(out.len(), 201);
    }
}
