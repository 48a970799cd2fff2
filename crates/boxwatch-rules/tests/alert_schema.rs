//! Every alert the default pack and the stateful detections raise on the
//! recorded stream validates against `schemas/alert.schema.json` (Falco's
//! output format plus boxwatch's fields).

use boxwatch_rules::engine::{Input, Stateful, StatefulConfig};

mod common;
use common::{default_rules, recorded_stream, repo};

#[test]
fn alerts_validate_against_the_schema() {
    let root = repo();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schemas/alert.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let rules = default_rules();
    let mut stateful = Stateful::new(StatefulConfig::default());
    let mut alerts = Vec::new();
    for line in recorded_stream() {
        let input = Input {
            container: line.container.as_ref(),
            wall_ns: 1_795_559_465_000_000_000 + line.event.ktime_ns,
            hostname: "node-1",
            ..Input::new(&line.event)
        };
        rules.evaluate(&input, &mut alerts);
        stateful.observe(&input, &mut alerts);
    }
    // (Its `sh -c` shells no longer raise the interactive-shell Notice; the two checked below remain.)
    assert!(alerts.len() >= 2, "the recorded stream should raise alerts, got {}", alerts.len());
    let mut rule_ids = std::collections::BTreeSet::new();
    for a in &alerts {
        let v = serde_json::to_value(a).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&v).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "alert does not validate: {errors:?}\n{v}");
        rule_ids.insert(v["output_fields"]["boxwatch.rule.id"].as_str().unwrap().to_string());
    }
    // The stream holds a credential read and a port scan.
    assert!(rule_ids.contains("read-sensitive-file"), "{rule_ids:?}");
    assert!(rule_ids.contains("port-scan-from-container"), "{rule_ids:?}");

    // And a broken alert does not validate (the schema is not vacuous).
    let mut bad = serde_json::to_value(&alerts[0]).unwrap();
    bad["priority"] = "Severe".into();
    assert!(!validator.is_valid(&bad));
}
