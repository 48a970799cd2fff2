//! Rules-engine throughput on one core: a stream recorded from the real
//! daemon (`testdata/streams/mixed-container.jsonl.gz`: a container running a
//! web server and client, shell health checks, file churn, DNS lookups, a
//! credential read and a port scan) replayed through the full default pack
//! and the stateful detections, then through the default pack plus Falco's three
//! official rules files (read from `../shared/falco/`). Prints events/s and the ratio to a baseline
//! pass that builds the same inputs without evaluating. Asserts nothing.
//! Run: `cargo bench -p boxwatch-rules`.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use boxwatch_model::{ContainerRef, Detail, Event};
use boxwatch_rules::engine::{Detectors, Input, RuleSet, Stateful, StatefulConfig};

#[derive(serde::Deserialize)]
struct Line {
    container: Option<ContainerRef>,
    #[serde(flatten)]
    event: Event,
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(root.join("testdata/streams/mixed-container.jsonl.gz")).expect("open stream"),
    )
    .read_to_string(&mut text)
    .expect("gunzip stream");
    let lines: Vec<Line> = text.lines().map(|l| serde_json::from_str(l).expect("event line")).collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("rules/default"))
        .expect("rules/default")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let read = |p: &PathBuf| (p.display().to_string(), std::fs::read_to_string(p).expect("rules file"));
    let pack: Vec<(String, String)> = files.iter().map(read).collect();
    // Falco's three official files, read where the tests read them (never copied here).
    let falco_dir = root.join("../shared/falco");
    let falco: Vec<(String, String)> =
        ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]
            .iter()
            .map(|f| falco_dir.join(f))
            .filter(|p| p.exists())
            .map(|p| read(&p))
            .collect();
    fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }
    let sets: Vec<(&str, RuleSet)> = [
        ("default pack", RuleSet::with_pack(&refs(&pack), &[])),
        ("default pack + Falco's 3 files", RuleSet::with_pack(&refs(&pack), &refs(&falco))),
    ]
    .into_iter()
    .map(|(n, r)| (n, r.unwrap_or_else(|e| panic!("{e:?}"))))
    .collect();
    if falco.len() != 3 {
        println!(
            "note: Falco's rules files not found in {}: second set is the pack alone",
            falco_dir.display()
        );
    }

    // exe/argv per pid from the stream's execs, as the daemon's process tree provides them.
    let mut image: HashMap<u32, (String, Vec<String>)> = HashMap::new();
    let ctx: Vec<(Option<String>, Vec<String>)> = lines
        .iter()
        .map(|l| {
            if let Detail::Exec { filename, argv, .. } = &l.event.detail {
                image.insert(l.event.process.pid, (filename.clone(), argv.clone()));
            }
            image.get(&l.event.process.pid).map_or((None, Vec::new()), |(e, a)| (Some(e.clone()), a.clone()))
        })
        .collect();
    let ancestors = ["sh", "containerd-shim"];
    let input = |i: usize| {
        let l = &lines[i];
        Input {
            container: l.container.as_ref(),
            exe: ctx[i].0.as_deref(),
            argv: &ctx[i].1,
            ancestors: &ancestors,
            wall_ns: 1_795_559_465_000_000_000 + l.event.ktime_ns,
            hostname: "bench",
            ..Input::new(&l.event)
        }
    };
    const PASSES: usize = 60;
    let n = lines.len() * PASSES;

    let t = Instant::now();
    let mut sink = 0usize;
    for _ in 0..PASSES {
        for i in 0..lines.len() {
            sink += black_box(input(i)).argv.len();
        }
    }
    let base = t.elapsed();

    for (label, rules) in sets {
        // As the daemon runs them: the rule set and the stateful detections behind the detector seam.
        let n_rules = rules.len();
        let mut detectors = Detectors::new();
        detectors.push(Box::new(rules));
        detectors.push(Box::new(Stateful::new(StatefulConfig::default())));
        let mut alerts = Vec::new();
        let mut fired = 0usize;
        let t = Instant::now();
        for _ in 0..PASSES {
            for i in 0..lines.len() {
                let inp = input(i);
                detectors.observe(&inp, &mut alerts);
                fired += alerts.len();
                alerts.clear();
            }
        }
        let full = t.elapsed();
        let eps = n as f64 / full.as_secs_f64();
        println!(
            "rules engine ({label}): {n_rules} rules + stateful, {} recorded events x {PASSES} passes, one core",
            lines.len()
        );
        println!("  baseline (inputs only): {:.0} ns/event", base.as_nanos() as f64 / n as f64);
        println!(
            "  full evaluation:        {:.0} ns/event = {:.0} events/s ({:.1}x baseline); {} alerts per pass{}",
            full.as_nanos() as f64 / n as f64,
            eps,
            full.as_secs_f64() / base.as_secs_f64().max(1e-9),
            fired / PASSES,
            if sink == usize::MAX { "!" } else { "" }
        );
    }
}
