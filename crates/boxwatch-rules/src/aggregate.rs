//! Alert aggregation and rate limiting, so one noisy container cannot drown
//! the rest, cannot silence a rule for the others, and a loop does not
//! produce ten thousand identical alerts.
//!
//! - **Folding**: the first alert of a key (rule, container, executable, file
//!   or peer) goes out at once; identical ones within `window_ns` are counted,
//!   and when the window closes one summary alert carries
//!   `boxwatch.aggregate.count`, `…first_time` and `…last_time`.
//! - **Priority bands**: Emergency, Alert, Critical and Error alerts are never
//!   rate-limited (only folded when identical, so the first of each key always
//!   goes out). Warning, and Notice-and-below, each have their own budgets, so
//!   low-priority noise cannot use up the budget of a Warning.
//! - **Rate limits are per tenant**: token buckets per (rule, container) and
//!   per (container, band). A container can only exhaust its own budget; the
//!   same rule still alerts for every other container.
//! - **Suppression is announced in-band**: the first suppressed alert of a
//!   container raises `Alerts suppressed for a container` (Warning) at once,
//!   and while suppression goes on, one summary per window says how many
//!   alerts of which rules were not delivered.
//!
//! Pure: time (`now_ns`, any monotonic clock) is passed in.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::alert::{Alert, Priority};

/// The rule name of the in-band suppression notice.
pub const SUPPRESSION_RULE: &str = "Alerts suppressed for a container";

/// Tunables.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateConfig {
    /// Identical alerts within this window are folded; 0 disables folding.
    pub window_ns: u64,
    /// Sustained alerts per second per (rule, container) for Warning and below
    /// (burst: 2 s worth, at least 1); 0: unlimited.
    pub per_rule_per_sec: f64,
    /// Sustained alerts per second per container and priority band for Warning
    /// and below (burst: 2 s worth, at least 1); 0: unlimited.
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

/// Why a rate is not acceptable (NaN, infinite or negative).
pub fn check_rate(rate: f64) -> Result<(), String> {
    if !rate.is_finite() || rate < 0.0 {
        return Err(format!("{rate} is not a rate: expected a finite number ≥ 0 (0: unlimited)"));
    }
    Ok(())
}

impl AggregateConfig {
    /// Reject settings that would silently drop every alert.
    pub fn validate(&self) -> Result<(), String> {
        check_rate(self.per_rule_per_sec).map_err(|e| format!("rate per rule: {e}"))?;
        check_rate(self.per_container_per_sec).map_err(|e| format!("rate per container: {e}"))?;
        if self.max_keys == 0 {
            return Err("max_keys must be at least 1".into());
        }
        Ok(())
    }
}

/// Rate-limit bands: budgets are separate per band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Band {
    /// Emergency, Alert, Critical, Error: never rate-limited.
    Urgent,
    Warning,
    /// Notice, Informational, Debug.
    Low,
}

impl Band {
    pub fn of(p: Priority) -> Band {
        match p {
            Priority::Emergency | Priority::Alert | Priority::Critical | Priority::Error => Band::Urgent,
            Priority::Warning => Band::Warning,
            _ => Band::Low,
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
    fn burst(rate: f64) -> f64 {
        // At least one token, so a low rate (say 0.2/s) still lets an alert
        // through now and then instead of never.
        (rate * 2.0).max(1.0)
    }

    fn full(rate: f64, now_ns: u64) -> Bucket {
        Bucket { tokens: Bucket::burst(rate), last_ns: now_ns }
    }

    fn refill(&mut self, rate: f64, now_ns: u64) {
        let elapsed = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
        self.tokens = (self.tokens + elapsed * rate).min(Bucket::burst(rate));
        self.last_ns = now_ns;
    }

    fn has(&mut self, rate: f64, now_ns: u64) -> bool {
        self.refill(rate, now_ns);
        self.tokens >= 1.0
    }

    fn is_full(&self, rate: f64, now_ns: u64) -> bool {
        let mut b = *self;
        b.refill(rate, now_ns);
        b.tokens >= Bucket::burst(rate)
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
    /// Suppressed by rate limits, per (rule, container, priority).
    pub suppressed: BTreeMap<(String, String, Priority), u64>,
    /// In-band `Alerts suppressed for a container` alerts emitted.
    pub suppression_notices: u64,
}

impl AggregateStats {
    pub fn suppressed(&self) -> u64 {
        self.suppressed_by_rule.values().sum()
    }
}

/// A container whose alerts are being suppressed: what to say in the next notice.
#[derive(Debug)]
struct Episode {
    /// Alerts suppressed since the last notice, per rule.
    pending: BTreeMap<String, u64>,
    /// When the last notice went out.
    reported_ns: u64,
    /// The latest suppressed alert: its container fields, time and hostname
    /// go into the notice.
    template: Alert,
}

#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregateConfig,
    windows: HashMap<String, Window>,
    /// (rule, container) → bucket.
    rule_buckets: HashMap<(String, String), Bucket>,
    /// (container, band) → bucket.
    container_buckets: HashMap<(String, Band), Bucket>,
    episodes: HashMap<String, Episode>,
    /// Last time idle buckets were dropped.
    swept_ns: u64,
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

/// Fields of an alert that describe its container (kept on the notice).
fn is_container_field(k: &str) -> bool {
    k.starts_with("container.") || k.starts_with("k8s.") || k.starts_with("boxwatch.container.")
}

impl Aggregator {
    pub fn new(cfg: AggregateConfig) -> Aggregator {
        Aggregator {
            cfg,
            windows: HashMap::new(),
            rule_buckets: HashMap::new(),
            container_buckets: HashMap::new(),
            episodes: HashMap::new(),
            swept_ns: 0,
            stats: AggregateStats::default(),
        }
    }

    pub fn stats(&self) -> &AggregateStats {
        &self.stats
    }

    /// Containers whose alerts are being suppressed right now.
    pub fn suppressed_containers(&self) -> usize {
        self.episodes.values().filter(|e| !e.pending.is_empty()).count()
    }

    /// Rate-limit state held (buckets and suppression episodes), for metrics and tests.
    pub fn tracked_keys(&self) -> usize {
        self.rule_buckets.len() + self.container_buckets.len() + self.episodes.len()
    }

    /// How often a suppression notice may repeat for one container.
    fn notice_interval_ns(&self) -> u64 {
        if self.cfg.window_ns > 0 { self.cfg.window_ns } else { 10_000_000_000 }
    }

    fn allowed(&mut self, a: &Alert, now_ns: u64, out: &mut Vec<Alert>) -> bool {
        let band = Band::of(a.priority);
        if band == Band::Urgent {
            return true;
        }
        let (rr, cr) = (self.cfg.per_rule_per_sec, self.cfg.per_container_per_sec);
        let container = container_of(a);
        // Both budgets are checked before either is spent, so an alert refused
        // by one limit costs the other nothing.
        let mut rule_b = (rr > 0.0).then(|| {
            self.rule_buckets
                .entry((a.rule.clone(), container.clone()))
                .or_insert_with(|| Bucket::full(rr, now_ns))
        });
        let mut cont_b = (cr > 0.0).then(|| {
            self.container_buckets
                .entry((container.clone(), band))
                .or_insert_with(|| Bucket::full(cr, now_ns))
        });
        let rule_ok = rule_b.as_mut().is_none_or(|b| b.has(rr, now_ns));
        let cont_ok = cont_b.as_mut().is_none_or(|b| b.has(cr, now_ns));
        if rule_ok && cont_ok {
            for b in [rule_b, cont_b].into_iter().flatten() {
                b.tokens -= 1.0;
            }
            return true;
        }
        *self.stats.suppressed_by_rule.entry(a.rule.clone()).or_default() += 1;
        *self.stats.suppressed_by_container.entry(container.clone()).or_default() += 1;
        *self.stats.suppressed.entry((a.rule.clone(), container.clone(), a.priority)).or_default() += 1;
        let interval = self.notice_interval_ns();
        match self.episodes.get_mut(&container) {
            Some(e) => {
                *e.pending.entry(a.rule.clone()).or_default() += 1;
                e.template = a.clone();
                if e.pending.values().sum::<u64>() == 1 && now_ns.saturating_sub(e.reported_ns) >= interval {
                    // Suppression starts again after a quiet spell: say so at once.
                    self.notice(&container, now_ns, out);
                }
            }
            None => {
                let mut pending = BTreeMap::new();
                pending.insert(a.rule.clone(), 1);
                self.episodes
                    .insert(container.clone(), Episode { pending, reported_ns: now_ns, template: a.clone() });
                self.notice(&container, now_ns, out);
            }
        }
        false
    }

    /// Emit the suppression notice for `container` with what is pending.
    fn notice(&mut self, container: &str, now_ns: u64, out: &mut Vec<Alert>) {
        let Some(e) = self.episodes.get_mut(container) else { return };
        if e.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut e.pending);
        e.reported_ns = now_ns;
        let count: u64 = pending.values().sum();
        let t = &e.template;
        let mut f: BTreeMap<&'static str, Value> = t
            .output_fields
            .iter()
            .filter(|(k, _)| is_container_field(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let short = match field(t, "container.id") {
            Value::String(s) => s.clone(),
            _ => container.chars().take(12).collect(),
        };
        let rules: Vec<String> = pending.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        f.insert("boxwatch.suppressed.count", json!(count));
        f.insert("boxwatch.suppressed.rules", json!(pending));
        out.push(Alert {
            time: t.time.clone(),
            rule: SUPPRESSION_RULE.to_string(),
            priority: Priority::Warning,
            output: format!(
                "Alerts of a container are being rate-limited (container={short} suppressed={count} rules=[{}])",
                rules.join(", ")
            ),
            output_fields: f,
            tags: vec!["boxwatch".into(), "rate_limit".into()],
            source: t.source,
            hostname: t.hostname.clone(),
        });
        self.stats.suppression_notices += 1;
    }

    /// Offer one alert; what should go out now is pushed to `out`.
    pub fn offer(&mut self, a: Alert, now_ns: u64, out: &mut Vec<Alert>) {
        self.tick(now_ns, out);
        if self.cfg.window_ns == 0 {
            if self.allowed(&a, now_ns, out) {
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
        if !self.allowed(&a, now_ns, out) {
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

    /// Close windows that have run their course, report ongoing suppression,
    /// and forget rate-limit state that has gone idle.
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
        let interval = self.notice_interval_ns();
        let due: Vec<String> = self
            .episodes
            .iter()
            .filter(|(_, e)| now_ns.saturating_sub(e.reported_ns) >= interval)
            .map(|(c, _)| c.clone())
            .collect();
        for c in due {
            if self.episodes.get(&c).is_some_and(|e| e.pending.is_empty()) {
                self.episodes.remove(&c);
            } else {
                self.notice(&c, now_ns, out);
            }
        }
        if now_ns.saturating_sub(self.swept_ns) >= 1_000_000_000 {
            self.swept_ns = now_ns;
            // A bucket that has refilled completely is the same as no bucket.
            let (rr, cr) = (self.cfg.per_rule_per_sec, self.cfg.per_container_per_sec);
            self.rule_buckets.retain(|_, b| !b.is_full(rr, now_ns));
            self.container_buckets.retain(|_, b| !b.is_full(cr, now_ns));
        }
    }

    /// A container went away: drop its rate-limit state (its pending
    /// suppression count is reported first, so nothing goes unsaid).
    pub fn forget_container(&mut self, full_id: &str, now_ns: u64, out: &mut Vec<Alert>) {
        self.notice(full_id, now_ns, out);
        self.episodes.remove(full_id);
        self.rule_buckets.retain(|(_, c), _| c != full_id);
        self.container_buckets.retain(|(c, _), _| c != full_id);
        // Its `/metrics` series go with it; the per-rule totals stay.
        self.stats.suppressed_by_container.remove(full_id);
        self.stats.suppressed.retain(|(_, c, _), _| c != full_id);
    }

    /// Per-container entries held (rate-limit buckets, suppression episodes and counts).
    pub fn container_entries(&self) -> usize {
        self.container_buckets.len() + self.episodes.len() + self.stats.suppressed_by_container.len()
    }

    /// Shutdown: close every window and report pending suppression.
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        let mut all: Vec<Window> = self.windows.drain().map(|(_, w)| w).collect();
        all.sort_by_key(|w| w.opened_ns);
        for w in all {
            self.summary(w, out);
        }
        let pending: Vec<String> = self.episodes.keys().cloned().collect();
        for c in pending {
            let at = self.episodes.get(&c).map_or(0, |e| e.reported_ns);
            self.notice(&c, at, out);
        }
    }
}

#[cfg(test)]
mod tests;
