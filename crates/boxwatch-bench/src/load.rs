//! Scenarios 3, 4 and 5 against one `boxwatch run` with the full default
//! rule pack: sustained throughput and overload, syscall→alert latency,
//! and what the daemon itself costs (CPU, RSS, RSS with many processes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::daemon::{Daemon, Received};
use crate::lab::{Lab, Place};

/// The rule the attacks and latency probes trigger (default pack).
pub const PROBE_RULE: &str = "Sensitive file read in a container";
const PROBE_PATH: &str = "/etc/shadow";

#[derive(Debug, Clone, Copy)]
pub struct LoadPlan {
    /// Seconds per throughput step / cost window.
    pub step_secs: f64,
    /// Requested rates (events/s) tried in order; 0 = as fast as one thread can.
    pub rates: &'static [u64],
    pub idle_secs: f64,
    pub latency_samples: u64,
    pub processes: u64,
}

/// One throughput step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub label: String,
    pub requested_per_s: u64,
    pub threads: u64,
    pub achieved_per_s: f64,
    pub drops: BTreeMap<String, f64>,
    pub daemon_cpu_pct: f64,
    /// Daemon CPU time per event (user + system, all threads), µs.
    pub daemon_us_per_event: f64,
    pub daemon_rss_kib: u64,
    /// Attacks mixed in / their alerts delivered (overload steps only).
    pub attacks: Option<(u64, u64)>,
}

impl Step {
    pub fn dropped(&self) -> f64 {
        self.drops.values().sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub label: String,
    pub samples: usize,
    pub missing: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

#[derive(Debug, Serialize)]
pub struct LoadResult {
    pub idle_cpu_pct: f64,
    pub idle_rss_kib: u64,
    /// (anonymous, file-backed, shared) KiB of the idle RSS.
    pub idle_rss_split_kib: (u64, u64, u64),
    pub steps: Vec<Step>,
    /// Highest achieved rate with no drop of any cause.
    pub max_zero_drop_per_s: f64,
    pub overload: Vec<Step>,
    pub latency: Vec<Latency>,
    pub processes_spawned: u64,
    pub processes_tracked: f64,
    pub rss_with_processes_kib: u64,
    pub daemon_final_stats: String,
}

fn cpu_window<T>(d: &Daemon, f: impl FnOnce() -> Result<T>) -> Result<(T, f64, f64)> {
    let (c0, t0) = (d.cpu_seconds()?, Instant::now());
    let v = f()?;
    let wall = t0.elapsed().as_secs_f64();
    Ok((v, 100.0 * (d.cpu_seconds()? - c0) / wall, wall))
}

fn diff(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    b.iter()
        .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn load_args(rate: u64, secs: f64, threads: u64) -> Vec<String> {
    vec![
        "load".into(),
        "--rate".into(),
        rate.to_string(),
        "--seconds".into(),
        secs.to_string(),
        "--threads".into(),
        threads.to_string(),
    ]
}

fn worker(lab: &Lab, args: &[String]) -> Result<Value> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.worker(Place::Container, &a, Duration::from_secs(600))
}

/// A load step; with `attacks`, a trigger process opens /etc/shadow that
/// many times during the step and the alerts that reach stdout are counted.
fn step(
    lab: &Lab,
    d: &Daemon,
    label: &str,
    rate: u64,
    threads: u64,
    secs: f64,
    attacks: u64,
) -> Result<Step> {
    let drops0 = d.drops()?;
    let since = crate::worker::realtime_ns();
    let ((ops, wall, pid), cpu, _) = cpu_window(d, || {
        std::thread::scope(|s| -> Result<(f64, f64, Option<u64>)> {
            let trig = (attacks > 0).then(|| {
                let interval = ((secs * 1000.0) as u64 / (attacks + 1)).max(1);
                let args: Vec<String> = [
                    "trigger",
                    "--path",
                    PROBE_PATH,
                    "--count",
                    &attacks.to_string(),
                    "--interval-ms",
                    &interval.to_string(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                s.spawn(move || worker(lab, &args))
            });
            let v = worker(lab, &load_args(rate, secs, threads))?;
            let pid = match trig {
                Some(h) => h.join().map_err(|_| anyhow::anyhow!("trigger thread panicked"))??["pid"].as_u64(),
                None => None,
            };
            Ok((v["ops"].as_f64().unwrap_or(0.0), v["seconds"].as_f64().unwrap_or(secs), pid))
        })
    })?;
    // Let the daemon drain what is queued before reading the counters.
    std::thread::sleep(Duration::from_millis(1500));
    let drops = diff(&drops0, &d.drops()?);
    let attacks = pid.map(|_| {
        let got = probe_alerts(&d.alerts(), since);
        (attacks, got.values().map(Vec::len).max().unwrap_or(0) as u64)
    });
    Ok(Step {
        label: label.to_string(),
        requested_per_s: rate,
        threads,
        achieved_per_s: ops / wall,
        drops,
        daemon_cpu_pct: cpu,
        daemon_us_per_event: if ops > 0.0 { cpu / 100.0 * wall / ops * 1e6 } else { f64::NAN },
        daemon_rss_kib: d.rss_kib(),
        attacks,
    })
}

/// Probe-rule alerts received after `since`, grouped by process id: (event time, received) ns.
fn probe_alerts(all: &[Received], since: u64) -> BTreeMap<i64, Vec<(u64, u64)>> {
    let mut by_pid: BTreeMap<i64, Vec<(u64, u64)>> = BTreeMap::new();
    for r in all.iter().filter(|r| r.at_ns >= since && r.alert["rule"] == PROBE_RULE) {
        let pid = r.alert["output_fields"]["proc.pid"].as_i64().unwrap_or(-1);
        let event_ns = r.alert["time"].as_str().and_then(parse_rfc3339_ns).unwrap_or(0);
        by_pid.entry(pid).or_default().push((event_ns, r.at_ns));
    }
    by_pid
}

/// `2026-11-25T01:03:30.422013875Z` → ns since the epoch (UTC only, as alerts carry it).
pub fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let digits = frac.len().min(9);
    let nanos: i64 = frac[..digits].parse::<i64>().ok()? * 10i64.pow((9 - digits) as u32);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + nanos).ok()
}

/// Pairs each trigger (CLOCK_REALTIME noted just before its open) with the
/// alert whose event happened within 5 ms after it; returns the latencies
/// trigger → alert received, in µs, and how many triggers got no alert.
fn pair(triggers: &[u64], alerts: &[(u64, u64)]) -> (Vec<f64>, usize) {
    let mut used = vec![false; alerts.len()];
    let (mut lat, mut missing) = (Vec::new(), 0);
    for &t in triggers {
        let hit =
            alerts.iter().enumerate().find(|(i, (ev, _))| !used[*i] && *ev >= t && *ev <= t + 5_000_000);
        match hit {
            Some((i, &(_, at))) => {
                used[i] = true;
                lat.push(at.saturating_sub(t) as f64 / 1000.0);
            }
            None => missing += 1,
        }
    }
    (lat, missing)
}

/// syscall → alert on stdout, one trigger at a time (optionally over a
/// background load), the first sample dropped (container metadata lookup).
fn latency(lab: &Lab, d: &Daemon, label: &str, samples: u64, background: Option<u64>) -> Result<Latency> {
    let since = crate::worker::realtime_ns();
    let interval = 10u64;
    let times: Vec<u64> = std::thread::scope(|s| -> Result<Vec<u64>> {
        let secs = (samples + 1) as f64 * (interval as f64 + 0.2) / 1000.0 + 1.0;
        let bg = background.map(|rate| s.spawn(move || worker(lab, &load_args(rate, secs, 1))));
        if bg.is_some() {
            std::thread::sleep(Duration::from_millis(300));
        }
        let v = worker(
            lab,
            &[
                "trigger",
                "--path",
                PROBE_PATH,
                "--count",
                &(samples + 1).to_string(),
                "--interval-ms",
                &interval.to_string(),
            ]
            .map(String::from),
        )?;
        if let Some(h) = bg {
            h.join().map_err(|_| anyhow::anyhow!("load thread panicked"))??;
        }
        Ok(v["times_ns"].as_array().context("trigger output")?.iter().filter_map(Value::as_u64).collect())
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let got = probe_alerts(&d.alerts(), since);
    let recv = got.into_values().max_by_key(Vec::len).unwrap_or_default();
    // The first trigger is a warm-up (the container's metadata lookup may hold its alert).
    let (mut lat, missing) = pair(times.get(1..).unwrap_or_default(), &recv);
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct =
        |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
    Ok(Latency {
        label: label.to_string(),
        samples: lat.len(),
        missing,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: lat.last().copied().unwrap_or(f64::NAN),
    })
}

pub fn run(lab: &Lab, d: &Daemon, plan: LoadPlan) -> Result<LoadResult> {
    eprintln!("  idle {} s", plan.idle_secs);
    let (_, idle_cpu, _) = cpu_window(d, || {
        std::thread::sleep(Duration::from_secs_f64(plan.idle_secs));
        Ok(())
    })?;
    let idle_rss = d.rss_kib();
    let idle_rss_split = d.rss_split_kib();

    let mut steps = Vec::new();
    let mut best = 0.0f64;
    for &rate in plan.rates {
        let label = if rate == 0 { "max, 1 thread".to_string() } else { format!("{rate}/s") };
        eprintln!("  throughput step {label}");
        let s = step(lab, d, &label, rate, 1, plan.step_secs, 0)?;
        let ok = s.dropped() == 0.0;
        if ok {
            best = best.max(s.achieved_per_s);
        }
        let saturated = rate > 0 && s.achieved_per_s < 0.9 * rate as f64;
        steps.push(s);
        if !ok || saturated {
            break;
        }
    }

    let mut overload = Vec::new();
    for (mult, threads) in [(2u64, 2u64), (10, 4)] {
        let rate = (best * mult as f64) as u64;
        eprintln!("  overload {mult}x = {rate}/s on {threads} threads, with attacks");
        overload.push(step(lab, d, &format!("{mult}x ({rate}/s)"), rate, threads, plan.step_secs, 10)?);
    }

    let mut lat = Vec::new();
    eprintln!("  latency");
    lat.push(latency(lab, d, "idle", plan.latency_samples, None)?);
    lat.push(latency(lab, d, "5k events/s background", plan.latency_samples, Some(5000))?);
    let half = (best / 2.0) as u64;
    lat.push(latency(
        lab,
        d,
        &format!("{half}/s background (half the 0-drop max)"),
        plan.latency_samples,
        Some(half),
    )?);

    eprintln!("  {} processes", plan.processes);
    let live = |d: &Daemon| -> f64 {
        d.metrics().ok().and_then(|m| m.get("boxwatch_processes_live").copied()).unwrap_or(0.0)
    };
    let base = live(d);
    let (spawned, tracked, rss_procs) = std::thread::scope(|s| -> Result<(u64, f64, u64)> {
        let hold = (plan.processes as f64 / 2000.0 + 6.0).to_string();
        let h = s.spawn(move || {
            worker(
                lab,
                &["spawn", "--count", &plan.processes.to_string(), "--seconds", &hold].map(String::from),
            )
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut tracked, mut rss) = (0.0f64, 0);
        while !h.is_finished() && Instant::now() < deadline {
            let n = live(d) - base;
            if n > tracked {
                tracked = n;
                rss = d.rss_kib();
            }
            if n >= plan.processes as f64 {
                std::thread::sleep(Duration::from_millis(500));
                rss = rss.max(d.rss_kib());
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let v = h.join().map_err(|_| anyhow::anyhow!("spawn thread panicked"))??;
        Ok((v["spawned"].as_u64().unwrap_or(0), tracked, rss))
    })?;

    Ok(LoadResult {
        idle_cpu_pct: idle_cpu,
        idle_rss_kib: idle_rss,
        idle_rss_split_kib: idle_rss_split,
        steps,
        max_zero_drop_per_s: best,
        overload,
        latency: lat,
        processes_spawned: spawned,
        processes_tracked: tracked,
        rss_with_processes_kib: rss_procs,
        daemon_final_stats: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_to_epoch_ns() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ns("2026-11-25T01:03:30.422013875Z"), Some(1_795_568_610_422_013_875));
        assert_eq!(parse_rfc3339_ns("2000-02-29T12:00:00.5Z"), Some(951_825_600_500_000_000));
        assert_eq!(parse_rfc3339_ns("garbage"), None);
    }

    #[test]
    fn triggers_pair_with_their_own_alerts_even_when_one_is_missing() {
        let ms = 1_000_000;
        let triggers = [100 * ms, 110 * ms, 120 * ms];
        // The alert for the 2nd trigger never came; events happen 10 µs after each trigger.
        let alerts = [(100 * ms + 10_000, 101 * ms), (120 * ms + 10_000, 120 * ms + 300_000)];
        let (lat, missing) = pair(&triggers, &alerts);
        assert_eq!(missing, 1);
        assert_eq!(lat, vec![1000.0, 300.0]);
    }
}
