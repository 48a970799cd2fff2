//! boxwatch-outputs: everything after the alert. The processor hands each event,
//! container lifecycle change and alert to [`Outputs`], which passes them to its
//! [`Sink`]s (stdout, the log files, the SQLite history, webhook, syslog, NATS) and
//! each alert, with the event, process lineage and container it was raised on, to
//! its other [`AlertSubscriber`]s (response actions). The processor knows none of
//! them by name.
//!
//! Rules every sink keeps:
//! - **Never block the processor.** Work that can wait on a peer or a disk (network
//!   outputs, the SQLite history) goes through a bounded [`outbox::Outbox`] and a
//!   thread of its own; what does not fit is counted, never waited on.
//! - **Count what is lost,** and report it through [`AlertSubscriber::stats`], so
//!   `/metrics` and the `boxwatch: stats` line need no per-output code.
//! - **Untrusted strings are escaped in human output** ([`boxwatch_model::text`]) and
//!   intact in JSON.
//!
//! Adding an output: one file here implementing [`Sink`] (or only
//! [`AlertSubscriber`]) with its `Config`, a field in [`OutputsConfig`], a line in
//! [`open`]; then its options in the binary's `cli.rs` / `config.rs` (see ARCHITECTURE.md).

pub mod endpoint;
pub mod error;
pub mod eventline;
pub mod history;
pub mod logfile;
pub mod nats;
pub mod outbox;
pub mod stdout;
pub mod syslog;
pub mod webhook;

use std::cell::{OnceCell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use boxwatch_model::{ContainerRef, Event};
use boxwatch_rules::{Alert, Lineage};
use boxwatch_runtime::Metadata;

pub use error::{Error, Result};
use eventline::EventLineWriter;

/// What an alert was raised on: the event, the container (`None`: the host) and the
/// alerting process's lineage. Summaries of folded alerts have none.
#[derive(Debug, Clone)]
pub struct AlertContext {
    pub event: Event,
    pub container: Option<Arc<ContainerRef>>,
    pub lineage: Lineage,
}

/// An alert on its way out (held for metadata, folded, rate-limited), with its context.
#[derive(Debug, Clone)]
pub struct Raised {
    pub alert: Alert,
    pub context: Option<Arc<AlertContext>>,
}

/// One alert as handed to subscribers: complete (enriched, past folding and rate
/// limits), with its context and its Falco JSON line, serialised once for all.
#[derive(Debug)]
pub struct AlertOut<'a> {
    pub alert: &'a Alert,
    pub context: Option<&'a AlertContext>,
    json: OnceCell<String>,
}

impl<'a> AlertOut<'a> {
    pub fn new(alert: &'a Alert, context: Option<&'a AlertContext>) -> AlertOut<'a> {
        AlertOut { alert, context, json: OnceCell::new() }
    }

    /// The alert's JSON line (exactly the alerts.jsonl line, no newline).
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| serde_json::to_string(self.alert).unwrap_or_default())
    }
}

/// One event as handed to sinks. Its JSON line is built at most once, by the first
/// sink that asks, and reuses each container's serialised part.
#[derive(Debug)]
pub struct EventOut<'a> {
    pub wall_ns: u64,
    pub event: &'a Event,
    pub container: Option<&'a ContainerRef>,
    /// Runtime metadata of the container, once known.
    pub container_meta: Option<&'a Metadata>,
    /// Stable id of the process image (`pid:start_ns:exec generation`) and of its parent's.
    pub exec_id: Option<&'a str>,
    pub parent_exec_id: Option<&'a str>,
    lines: &'a RefCell<EventLineWriter>,
    json: OnceCell<String>,
}

impl EventOut<'_> {
    /// The event's JSON line (the events.jsonl contract, no newline).
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| {
            self.lines.borrow_mut().line(
                self.wall_ns,
                self.event,
                self.container,
                self.container_meta,
                self.exec_id,
                self.parent_exec_id,
            )
        })
    }
}

/// A container lifecycle change (`started`, `first_seen`, `exited`).
#[derive(Debug)]
pub struct ContainerOut<'a> {
    pub wall_ns: u64,
    pub action: &'a str,
    pub container: &'a ContainerRef,
    json: OnceCell<String>,
}

impl ContainerOut<'_> {
    /// The lifecycle line (`"type": "container"`), no newline.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| eventline::container_line(self.wall_ns, self.action, self.container))
    }
}

/// What a counter of an output measures; decides where `/metrics` exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// Alerts handed on: sent, stored, acknowledged (`boxwatch_alerts_delivered_total{output}`).
    Delivered,
    /// Alerts this output lost; the stat's name is the cause (`queue_full`, `failed`):
    /// `boxwatch_alert_delivery_failures_total{output,cause}`.
    DeliveryFailure,
    /// Deliveries attempted again after a failure (`boxwatch_output_retries_total{output}`).
    Retries,
    /// Connections opened again after the first (`boxwatch_output_reconnects_total{output}`).
    Reconnects,
    /// Lines (events or alerts) that could not be written: lost events, summed into
    /// `boxwatch_drops_total{cause="output_write_errors"}`.
    WriteErrors,
}

/// One counter of one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStat {
    /// The output (`webhook`, `syslog`, `nats`, `history`, `stdout`, `logfiles`).
    pub output: &'static str,
    /// The counter (`sent`, `queue_full`, `failed`, `retries`, `reconnects`, `write_errors`).
    pub name: &'static str,
    pub kind: StatKind,
    pub value: u64,
}

impl SinkStat {
    pub fn new(output: &'static str, name: &'static str, kind: StatKind, value: u64) -> SinkStat {
        SinkStat { output, name, kind, value }
    }

    /// `output_name`, as in the `boxwatch: stats` line (`webhook_queue_full`).
    pub fn key(&self) -> String {
        format!("{}_{}", self.output, self.name)
    }
}

/// Receives every alert that leaves the processor. Sinks are subscribers; response
/// actions are too. Implementations must not block: queue, and count what does not fit.
pub trait AlertSubscriber: Send {
    /// One line for the start-up summary (`webhook https://…`).
    fn describe(&self) -> String;
    /// One complete alert, with its context.
    fn alert(&mut self, a: &AlertOut<'_>);
    /// Hand buffered output on: called when the processor's queue runs dry after an
    /// alert, and every `--latency-ms`.
    fn flush(&mut self) {}
    /// Shutdown: deliver what is queued within `deadline`, make it durable, stop.
    fn close(&mut self, _deadline: Duration) {}
    /// This subscriber's counters (for `/metrics` and the stats line).
    fn stats(&self) -> Vec<SinkStat> {
        Vec::new()
    }
}

/// An output: a subscriber to alerts that may also take events and container
/// lifecycle lines.
pub trait Sink: AlertSubscriber {
    /// Whether [`Sink::event`] does anything (the event path skips the others).
    fn wants_events(&self) -> bool {
        false
    }
    /// One event (the hot path: no allocation unless the sink writes it).
    fn event(&mut self, _e: &EventOut<'_>) {}
    /// A container started, was found at start-up, or exited.
    fn container(&mut self, _c: &ContainerOut<'_>) {}
}

/// The sinks and subscribers of one daemon, in delivery order.
pub struct Outputs {
    sinks: Vec<Box<dyn Sink>>,
    /// Indexes into `sinks` of those that take events.
    event_sinks: Vec<usize>,
    subscribers: Vec<Box<dyn AlertSubscriber>>,
    lines: RefCell<EventLineWriter>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs").field("outputs", &self.describe()).finish()
    }
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::new()
    }
}

impl Outputs {
    /// No sinks yet.
    pub fn new() -> Outputs {
        Outputs {
            sinks: Vec::new(),
            event_sinks: Vec::new(),
            subscribers: Vec::new(),
            lines: RefCell::new(EventLineWriter::default()),
        }
    }

    /// Add a sink; it receives after those added before it.
    pub fn add_sink(&mut self, s: Box<dyn Sink>) {
        if s.wants_events() {
            self.event_sinks.push(self.sinks.len());
        }
        self.sinks.push(s);
    }

    /// Add a subscriber to alerts; subscribers receive after every sink (an alert a
    /// response acts on is already in alerts.jsonl).
    pub fn subscribe(&mut self, s: Box<dyn AlertSubscriber>) {
        self.subscribers.push(s);
    }

    fn all(&mut self) -> impl Iterator<Item = &mut (dyn AlertSubscriber + 'static)> {
        let sinks = self.sinks.iter_mut().map(|s| &mut **s as &mut (dyn AlertSubscriber + 'static));
        sinks.chain(self.subscribers.iter_mut().map(|s| &mut **s))
    }

    /// One event to every sink that takes events.
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        &mut self,
        wall_ns: u64,
        event: &Event,
        container: Option<&ContainerRef>,
        container_meta: Option<&Metadata>,
        exec_id: Option<&str>,
        parent_exec_id: Option<&str>,
    ) {
        if self.event_sinks.is_empty() {
            return;
        }
        let e = EventOut {
            wall_ns,
            event,
            container,
            container_meta,
            exec_id,
            parent_exec_id,
            lines: &self.lines,
            json: OnceCell::new(),
        };
        for &i in &self.event_sinks {
            self.sinks[i].event(&e);
        }
    }

    /// A container lifecycle change to every sink.
    pub fn container(&mut self, wall_ns: u64, action: &str, container: &ContainerRef) {
        if action == "exited" {
            self.lines.borrow_mut().forget(&container.id);
        }
        let c = ContainerOut { wall_ns, action, container, json: OnceCell::new() };
        for s in &mut self.sinks {
            s.container(&c);
        }
    }

    /// One alert to every sink, then to every other subscriber.
    pub fn alert(&mut self, alert: &Alert, context: Option<&AlertContext>) {
        let a = AlertOut::new(alert, context);
        for s in self.all() {
            s.alert(&a);
        }
    }

    pub fn flush(&mut self) {
        for s in self.all() {
            s.flush();
        }
    }

    /// Shutdown: every sink and subscriber closes, each within `deadline`.
    pub fn close(&mut self, deadline: Duration) {
        for s in self.all() {
            s.close(deadline);
        }
    }

    /// Every counter of every sink and subscriber, in delivery order.
    pub fn stats(&self) -> Vec<SinkStat> {
        let sinks = self.sinks.iter().flat_map(|s| s.stats());
        sinks.chain(self.subscribers.iter().flat_map(|s| s.stats())).collect()
    }

    /// The active outputs, for the start-up summary.
    pub fn describe(&self) -> String {
        let sinks = self.sinks.iter().map(|s| s.describe());
        sinks.chain(self.subscribers.iter().map(|s| s.describe())).collect::<Vec<_>>().join(", ")
    }
}

/// Every built-in output's settings (`boxwatch run` options and config file).
#[derive(Debug, Clone)]
pub struct OutputsConfig {
    pub stdout: stdout::Config,
    pub log_dir: PathBuf,
    pub logs: logfile::Config,
    pub history: Option<history::Config>,
    pub webhook: Option<webhook::Config>,
    pub syslog: Option<syslog::Config>,
    pub nats: Option<nats::Config>,
}

/// Open every configured output, in delivery order: the log files first (alerts.jsonl
/// has every alert before any other output sees it), the history, the network
/// outputs, stdout last.
pub fn open(cfg: &OutputsConfig) -> Result<Outputs> {
    let mut o = Outputs::new();
    o.add_sink(Box::new(logfile::LogSink::open(&cfg.log_dir, &cfg.logs)?));
    if let Some(c) = &cfg.history {
        o.add_sink(Box::new(history::HistorySink::open(c)?));
    }
    if let Some(c) = &cfg.webhook {
        o.add_sink(Box::new(webhook::Webhook::start(c)?));
    }
    if let Some(c) = &cfg.syslog {
        o.add_sink(Box::new(syslog::Syslog::start(c)?));
    }
    if let Some(c) = &cfg.nats {
        o.add_sink(Box::new(nats::Nats::start(c)?));
    }
    o.add_sink(Box::new(stdout::Stdout::open(&cfg.stdout)));
    Ok(o)
}
