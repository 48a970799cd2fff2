//! The detector seam: everything that turns events into alerts implements [`Detector`] — the
//! YAML rule set ([`crate::RuleSet`]), the multi-event detections ([`crate::Stateful`]) and
//! whatever comes next (a behavioural baseline). The daemon feeds each event to a
//! [`Detectors`] list and never names a detector.
//!
//! A detector is pure like the rest of the crate: it sees the event and its context through
//! [`Input`] (wall time included) and pushes alerts; it does no I/O and reads no clock.

use crate::alert::Alert;
use crate::engine::RuleInfo;
use crate::input::Input;

/// Turns events into alerts.
pub trait Detector: Send + std::fmt::Debug {
    /// A short stable name (`rules`, `stateful`), for replacing a detector and for stats.
    fn name(&self) -> &str;

    /// Look at one event (events come in kernel time order); push any alerts to `out`.
    fn observe(&mut self, input: &Input<'_>, out: &mut Vec<Alert>);

    /// The detections it can raise, as `boxwatch rules list` shows them.
    fn rules(&self) -> Vec<RuleInfo> {
        Vec::new()
    }

    /// Counters and gauges, `(name, value)`, for the stats line and metrics.
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// An ordered list of detectors; every event goes to each of them in order.
#[derive(Debug, Default)]
pub struct Detectors {
    list: Vec<Box<dyn Detector>>,
}

impl Detectors {
    pub fn new() -> Detectors {
        Detectors::default()
    }

    /// Add a detector after the others.
    pub fn push(&mut self, d: Box<dyn Detector>) {
        self.list.push(d);
    }

    /// Put `d` in place of the detector with the same name (a reloaded rule set), or add it.
    /// Returns the one it replaced.
    pub fn replace(&mut self, d: Box<dyn Detector>) -> Option<Box<dyn Detector>> {
        match self.list.iter_mut().find(|x| x.name() == d.name()) {
            Some(slot) => Some(std::mem::replace(slot, d)),
            None => {
                self.list.push(d);
                None
            }
        }
    }

    /// Feed one event to every detector.
    pub fn observe(&mut self, input: &Input<'_>, out: &mut Vec<Alert>) {
        for d in &mut self.list {
            d.observe(input, out);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn Detector> {
        self.list.iter().map(|d| &**d)
    }

    /// The detector named `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Detector> {
        self.iter().find(|d| d.name() == name)
    }

    /// Every detection of every detector.
    pub fn rules(&self) -> Vec<RuleInfo> {
        self.list.iter().flat_map(|d| d.rules()).collect()
    }
}
