//! Golden test: the stream recorded from the real daemon
//! (`testdata/streams/mixed-container.jsonl.gz`) through the default pack and
//! the stateful detections gives exactly the alerts in
//! `testdata/streams/mixed-container.alerts.golden` (one line per alert: rule
//! id, pid, fd.name or peer). Re-bless after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p boxwatch-rules --test golden`.

use boxwatch_model::Detail;
use boxwatch_rules::engine::{Input, Stateful, StatefulConfig};

mod common;
use common::{default_rules, recorded_stream, repo};

#[test]
fn recorded_stream_gives_the_golden_alerts() {
    let root = repo();
    let rules = default_rules();
    let mut stateful = Stateful::new(StatefulConfig::default());
    let mut images: std::collections::HashMap<u32, (String, Vec<String>)> = Default::default();
    let mut got = String::new();
    for line in recorded_stream() {
        if let Detail::Exec { filename, argv, .. } = &line.event.detail {
            images.insert(line.event.process.pid, (filename.clone(), argv.clone()));
        }
        let img = images.get(&line.event.process.pid);
        let input = Input {
            container: line.container.as_ref(),
            exe: img.map(|(e, _)| e.as_str()),
            argv: img.map_or(&[][..], |(_, a)| &a[..]),
            wall_ns: line.event.ktime_ns,
            hostname: "golden",
            ..Input::new(&line.event)
        };
        let mut alerts = Vec::new();
        rules.evaluate(&input, &mut alerts);
        stateful.observe(&input, &mut alerts);
        for a in alerts {
            let f = &a.output_fields;
            let object = f
                .get("fd.name")
                .filter(|v| !v.is_null())
                .or_else(|| f.get("fd.sip"))
                .map_or("-".to_string(), |v| v.to_string());
            got.push_str(&format!(
                "{} pid={} {} {}\n",
                f["boxwatch.rule.id"].as_str().unwrap_or("?"),
                f["proc.pid"],
                f["proc.name"].as_str().unwrap_or("?"),
                object
            ));
        }
    }
    let golden = root.join("testdata/streams/mixed-container.alerts.golden");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(!want.is_empty(), "no golden file: run with UPDATE_GOLDEN=1 once and review it");
    assert_eq!(
        got,
        want,
        "alerts differ from {} (UPDATE_GOLDEN=1 to re-bless after review)",
        golden.display()
    );
}
