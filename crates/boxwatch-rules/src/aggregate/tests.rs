use super::*;
use crate::alert::Priority;

fn alert_p(rule: &str, container: &str, file: &str, t: u64, p: Priority) -> Alert {
    let mut f = std::collections::BTreeMap::new();
    f.insert("boxwatch.container.full_id", json!(container));
    f.insert("container.id", json!(container.chars().take(12).collect::<String>()));
    f.insert("fd.name", json!(file));
    Alert {
        time: format!("t{t}"),
        rule: rule.into(),
        priority: p,
        output: "x".into(),
        output_fields: f,
        tags: vec![],
        source: "syscall",
        hostname: "h".into(),
    }
}

fn alert(rule: &str, container: &str, file: &str, t: u64) -> Alert {
    alert_p(rule, container, file, t, Priority::Warning)
}

/// Alerts of `rule` for `container` in `out` (notices excluded unless asked for).
fn count(out: &[Alert], rule: &str, container: &str) -> usize {
    out.iter().filter(|a| a.rule == rule && container_of(a) == container).count()
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
    let noisy = count(&out, "r", "noisy");
    assert!((28..=30).contains(&noisy), "burst of 20 (2 s at 10/s) plus ~10 refilled over 1 s: {noisy}");
    g.offer(alert("r", "quiet", "/etc/x", 0), S, &mut out);
    assert_eq!(count(&out, "r", "quiet"), 1, "another container still alerts");
    assert_eq!(g.stats().suppressed_by_container["noisy"], 1000 - noisy as u64);
    assert_eq!(g.stats().suppressed(), 1000 - noisy as u64);
}

/// Defect #14.1: container A flooding `Write below /etc` at 300/s left B
/// with 2 of its 20 alerts of the same rule. Limits are per (rule, container).
#[test]
fn one_tenants_flood_does_not_silence_a_rule_for_another() {
    let mut g = Aggregator::new(AggregateConfig::default());
    let mut out = Vec::new();
    let rule = "Write below /etc in a container";
    let mut b_sent = 0;
    // 2 s: A writes 300 distinct files a second, B 10.
    for i in 0..600u64 {
        let t = i * S / 300;
        g.offer(alert(rule, "aaaa", &format!("/etc/noise-{i}"), i), t, &mut out);
        if i % 30 == 0 {
            g.offer(alert(rule, "bbbb", &format!("/etc/b-{b_sent}"), i), t, &mut out);
            b_sent += 1;
        }
    }
    assert_eq!(b_sent, 20);
    assert_eq!(count(&out, rule, "bbbb"), 20, "B gets every alert under A's flood");
    let a = count(&out, rule, "aaaa");
    assert!(a < 200, "A is limited by its own budget: {a}");
    assert!(g.stats().suppressed_by_container["aaaa"] > 400);
    assert!(!g.stats().suppressed_by_container.contains_key("bbbb"));
}

/// Defect #14.2: Notice/Warning noise spread over several rules suppressed the
/// same container's own shadow read (Warning) and a Critical alert.
#[test]
fn low_priority_noise_cannot_spend_the_budget_of_higher_bands() {
    let mut g = Aggregator::new(AggregateConfig::default());
    let mut out = Vec::new();
    for i in 0..4000u64 {
        let rule = format!("noise-{}", i % 4);
        g.offer(alert_p(&rule, "aaaa", &format!("/n{i}"), i, Priority::Notice), i * S / 1000, &mut out);
    }
    let now = 4 * S;
    g.offer(alert_p("Sensitive file read", "aaaa", "/etc/shadow", 1, Priority::Warning), now, &mut out);
    assert_eq!(count(&out, "Sensitive file read", "aaaa"), 1, "Warning has its own band");
    for i in 0..5 {
        g.offer(
            alert_p("Fileless execution", "aaaa", &format!("memfd:{i}"), i, Priority::Critical),
            now,
            &mut out,
        );
    }
    assert_eq!(count(&out, "Fileless execution", "aaaa"), 5, "Critical is never rate-limited");
    // Even with the Warning band exhausted, Critical and Error go through.
    for i in 0..500u64 {
        g.offer(alert_p("w", "aaaa", &format!("/w{i}"), i, Priority::Warning), now, &mut out);
    }
    g.offer(alert_p("Error rule", "aaaa", "/x", 9, Priority::Error), now, &mut out);
    assert_eq!(count(&out, "Error rule", "aaaa"), 1);
    // Identical Critical alerts are folded, not dropped: first goes out, the summary counts the rest.
    for _ in 0..10 {
        g.offer(alert_p("Fileless execution", "aaaa", "memfd:0", 0, Priority::Critical), now, &mut out);
    }
    assert_eq!(count(&out, "Fileless execution", "aaaa"), 5);
    g.flush(&mut out);
    let s = out
        .iter()
        .find(|a| a.rule == "Fileless execution" && a.output_fields.contains_key("boxwatch.aggregate.count"));
    assert_eq!(s.expect("summary").output_fields["boxwatch.aggregate.count"], 11);
    assert_eq!(g.stats().suppressed.keys().filter(|(_, _, p)| *p <= Priority::Error).count(), 0);
}

/// Defect #14.6: a rate below 0.5/s gave a bucket that never held a token.
#[test]
fn a_low_rate_still_lets_alerts_through_and_nan_is_rejected() {
    let cfg = AggregateConfig {
        window_ns: 0,
        per_rule_per_sec: 0.2,
        per_container_per_sec: 0.0,
        ..Default::default()
    };
    cfg.validate().expect("0.2/s is valid");
    let mut g = Aggregator::new(cfg);
    let mut out = Vec::new();
    for i in 0..100u64 {
        g.offer(alert("r", "c", &format!("/f{i}"), i), i * S / 10, &mut out);
    }
    // 10 s at 0.2/s: the first, then one every 5 s.
    assert_eq!(count(&out, "r", "c"), 2);
    for bad in [f64::NAN, f64::INFINITY, -1.0] {
        let cfg = AggregateConfig { per_rule_per_sec: bad, ..Default::default() };
        assert!(cfg.validate().is_err(), "{bad} accepted");
        let cfg = AggregateConfig { per_container_per_sec: bad, ..Default::default() };
        assert!(cfg.validate().is_err(), "{bad} accepted");
    }
}

/// Defect #14.5: suppression is announced in-band, at once and then once per window.
#[test]
fn suppression_raises_a_notice_then_periodic_summaries() {
    let cfg = AggregateConfig {
        window_ns: 0,
        per_rule_per_sec: 1.0,
        per_container_per_sec: 0.0,
        ..Default::default()
    };
    let mut g = Aggregator::new(cfg);
    let mut out = Vec::new();
    for i in 0..50u64 {
        g.offer(alert("r", "cccc", &format!("/f{i}"), i), i * S / 100, &mut out);
    }
    let notices: Vec<&Alert> = out.iter().filter(|a| a.rule == SUPPRESSION_RULE).collect();
    assert_eq!(notices.len(), 1, "one notice at the first suppression");
    assert_eq!(notices[0].priority, Priority::Warning);
    assert_eq!(notices[0].output_fields["boxwatch.container.full_id"], "cccc");
    assert_eq!(notices[0].output_fields["boxwatch.suppressed.count"], 1);
    assert!(!notices[0].output_fields.contains_key("fd.name"), "only container fields are kept");
    assert_eq!(g.suppressed_containers(), 1);
    // A window later, a summary with what was suppressed since.
    g.tick(11 * S, &mut out);
    let notices: Vec<&Alert> = out.iter().filter(|a| a.rule == SUPPRESSION_RULE).collect();
    assert_eq!(notices.len(), 2);
    let suppressed = g.stats().suppressed();
    assert_eq!(notices[1].output_fields["boxwatch.suppressed.count"], json!(suppressed - 1));
    assert_eq!(notices[1].output_fields["boxwatch.suppressed.rules"]["r"], json!(suppressed - 1));
    // Quiet again: nothing more is said, and the episode is forgotten.
    g.tick(22 * S, &mut out);
    g.tick(33 * S, &mut out);
    assert_eq!(out.iter().filter(|a| a.rule == SUPPRESSION_RULE).count(), 2);
    assert_eq!(g.suppressed_containers(), 0);
    assert_eq!(g.stats().suppression_notices, 2);
}

#[test]
fn state_of_departed_containers_and_idle_buckets_is_dropped() {
    let mut g = Aggregator::new(AggregateConfig::default());
    let mut out = Vec::new();
    for c in 0..100 {
        g.offer(alert("r", &format!("c{c}"), "/f", c), 0, &mut out);
    }
    assert!(g.tracked_keys() >= 200);
    g.forget_container("c0", S / 2, &mut out);
    assert!(g.tracked_keys() <= 198);
    // 3 s later every bucket has refilled: the sweep drops them all.
    g.tick(3 * S, &mut out);
    assert_eq!(g.tracked_keys(), 0);
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
fn per_container_counts_go_with_the_container() {
    let cfg = AggregateConfig {
        window_ns: 0,
        per_rule_per_sec: 0.0,
        per_container_per_sec: 1.0,
        ..Default::default()
    };
    let mut g = Aggregator::new(cfg);
    let mut out = Vec::new();
    for c in 0..100 {
        for i in 0..5 {
            g.offer(alert("r", &format!("c{c}"), &format!("/etc/x{i}"), i), i, &mut out);
        }
    }
    assert_eq!(count(&out, "r", "c7"), 2, "burst of 2 per container");
    assert_eq!(g.stats().suppressed(), 300);
    assert!(g.container_entries() >= 200);
    for c in 0..100 {
        g.forget_container(&format!("c{c}"), 1, &mut out);
    }
    assert_eq!(g.container_entries(), 0);
    assert!(g.stats().suppressed_by_container.is_empty() && g.stats().suppressed.is_empty());
    assert_eq!(g.stats().suppressed(), 300, "the per-rule totals stay");
}
