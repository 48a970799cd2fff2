//! A new output and a response action plug in through the public traits only: a toy
//! [`Sink`] (events, container lines, alerts, stats) and a toy [`AlertSubscriber`]
//! that acts on an alert's context (event, lineage, container), added to [`Outputs`]
//! next to the built-in log files. Nothing here names a built-in output.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxwatch_model::{ContainerRef, Event};
use boxwatch_outputs::{
    AlertContext, AlertOut, AlertSubscriber, ContainerOut, EventOut, Outputs, Sink, SinkStat, StatKind,
    logfile,
};
use boxwatch_rules::{Alert, Ancestor, Lineage, Priority};

/// Everything the toy sink saw, in order.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

struct ToySink {
    seen: Arc<Seen>,
    alerts: u64,
}

impl AlertSubscriber for ToySink {
    fn describe(&self) -> String {
        "toy sink".into()
    }
    fn alert(&mut self, a: &AlertOut<'_>) {
        self.alerts += 1;
        self.seen.0.lock().unwrap().push(format!("alert {}", a.json()));
    }
    fn flush(&mut self) {
        self.seen.0.lock().unwrap().push("flush".into());
    }
    fn close(&mut self, _deadline: Duration) {
        self.seen.0.lock().unwrap().push("close".into());
    }
    fn stats(&self) -> Vec<SinkStat> {
        vec![SinkStat::new("toy", "sent", StatKind::Delivered, self.alerts)]
    }
}

impl Sink for ToySink {
    fn wants_events(&self) -> bool {
        true
    }
    fn event(&mut self, e: &EventOut<'_>) {
        self.seen.0.lock().unwrap().push(format!("event {}", e.json()));
    }
    fn container(&mut self, c: &ContainerOut<'_>) {
        self.seen.0.lock().unwrap().push(format!("container {} {}", c.action, c.container.short_id()));
    }
}

/// A response action: "kills" (records) the alerting process of a container, from the
/// alert's context, for alerts of priority Error or worse.
/// (pid, container id, ancestor names) of each process acted on.
type Actions = Arc<Mutex<Vec<(u32, String, Vec<String>)>>>;

struct ToyResponder {
    acted: Actions,
}

impl AlertSubscriber for ToyResponder {
    fn describe(&self) -> String {
        "toy responder".into()
    }
    fn alert(&mut self, a: &AlertOut<'_>) {
        let Some(ctx) = a.context else { return };
        if a.alert.priority > Priority::Error {
            return;
        }
        let Some(c) = &ctx.container else { return };
        let chain = ctx.lineage.ancestors.iter().map(|x| x.comm.clone()).collect();
        self.acted.lock().unwrap().push((ctx.event.process.pid, c.id.clone(), chain));
    }
    fn stats(&self) -> Vec<SinkStat> {
        vec![SinkStat::new(
            "toy_responder",
            "actions",
            StatKind::Delivered,
            self.acted.lock().unwrap().len() as u64,
        )]
    }
}

const EVENT: &str = r#"{"cgroup_id": 78191, "dirfd": -100, "flags": 577, "kind": "open", "ktime_ns": 9812740507445, "mode": 420, "ns": {"mnt": 4026532177, "net": 4026532181, "pid": 4026532180}, "path": "/etc/x", "process": {"cap_effective": 0, "comm": "touch", "egid": 0, "euid": 0, "gid": 0, "pid": 14894, "ppid": 14870, "start_ns": 9812698912882, "tid": 14894, "uid": 0, "vpid": 7}, "record_flags": 0, "ret": 3, "syscall": "openat"}"#;

fn container() -> ContainerRef {
    serde_json::from_str(
        r#"{"id":"6ed032e4f2f1d33a5def5baecb515bb4d2625606a543d735ce2d74b6cf2963f0","runtime":"docker","pod_uid":null,"namespace":null,"nested":false,"cgroup_root":"/system.slice/docker-6ed032e4f2f1.scope"}"#,
    )
    .unwrap()
}

fn alert(priority: Priority) -> Alert {
    Alert {
        time: "2026-01-01T00:00:00.000000001Z".into(),
        rule: "Write below /etc in a container".into(),
        priority,
        output: "File below /etc modified (file=/etc/x)".into(),
        output_fields: Default::default(),
        tags: vec![],
        source: "syscall",
        hostname: "node-1".into(),
    }
}

#[test]
fn a_toy_sink_and_a_toy_responder_plug_in_through_the_public_traits() {
    let dir = std::env::temp_dir().join(format!("bw-seams-{}", std::process::id()));
    let logs = logfile::Config { events: true, max_bytes: 0, max_age: None, keep: 1 };
    let mut o = Outputs::new();
    o.add_sink(Box::new(logfile::LogSink::open(&dir, &logs).unwrap()));
    let seen = Arc::new(Seen::default());
    o.add_sink(Box::new(ToySink { seen: Arc::clone(&seen), alerts: 0 }));
    let acted: Actions = Arc::default();
    o.subscribe(Box::new(ToyResponder { acted: Arc::clone(&acted) }));
    assert_eq!(o.describe(), "alerts.jsonl + events.jsonl, toy sink, toy responder");

    let c = Arc::new(container());
    let ev: Event = serde_json::from_str(EVENT).unwrap();
    o.container(1_000, "started", &c);
    o.event(2_000, &ev, Some(&c), None, Some("14894:9812698912882:1"), None);
    let ctx = AlertContext {
        event: ev.clone(),
        container: Some(Arc::clone(&c)),
        lineage: Lineage {
            exec_id: "14894:9812698912882:1".into(),
            parent_exec_id: None,
            entry: Some("container_init".into()),
            ancestors: vec![Ancestor { pid: 14870, comm: "sh".into(), exe: None, in_container: true }],
        },
    };
    let (bad, mild) = (alert(Priority::Error), alert(Priority::Notice));
    o.alert(&bad, Some(&ctx));
    o.alert(&mild, Some(&ctx));
    o.alert(&bad, None); // a summary: no context, nothing to act on
    o.flush();
    o.close(Duration::from_secs(1));

    // The toy sink got the same bytes the log files got, in order.
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let alerts = std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap();
    let seen = seen.0.lock().unwrap().clone();
    let mut want = vec!["container started 6ed032e4f2f1".to_string()];
    want.push(format!("event {}", events.lines().nth(1).unwrap()));
    want.extend(alerts.lines().map(|l| format!("alert {l}")));
    want.extend(["flush".to_string(), "close".to_string()]);
    assert_eq!(seen, want);
    assert_eq!(alerts.lines().count(), 3);

    // The responder acted once: on the Error alert that had a context.
    assert_eq!(*acted.lock().unwrap(), vec![(14894, c.id.clone(), vec!["sh".to_string()])]);

    // Every output's counters come out of one call, each tagged with its output.
    let stats = o.stats();
    let find =
        |out: &str, name: &str| stats.iter().find(|s| s.output == out && s.name == name).map(|s| s.value);
    assert_eq!(find("toy", "sent"), Some(3));
    assert_eq!(find("toy_responder", "actions"), Some(1));
    assert_eq!(find("logfiles", "write_errors"), Some(0));
    assert_eq!(stats.iter().find(|s| s.output == "toy").unwrap().key(), "toy_sent");
    let _ = std::fs::remove_dir_all(&dir);
}
