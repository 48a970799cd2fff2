//! Detections over boxwatch events, producing [`Alert`]s as data. Everything that raises
//! alerts is a [`Detector`] ([`detector`]): the YAML rule engine ([`engine`]: the rule
//! language, rules compiled once and evaluated per event), the detections that correlate
//! several events ([`stateful`]), and the runner of rules' embedded examples ([`examples`]).
//! [`alert`] is the alert format (Falco's JSON shape), [`aggregate`] folding and rate limits.
//!
//! Everything is a function of its inputs: the caller passes the event, its context and the
//! wall-clock time, so fixtures test it without root or clocks.

pub mod aggregate;
pub mod alert;
pub mod detector;
pub mod engine;
pub mod examples;
pub mod input;
pub mod stateful;
pub mod time;

pub use alert::{Alert, Ancestor, Lineage, Priority};
pub use detector::{Detector, Detectors};
pub use engine::{Class, RuleError, RuleInfo, RuleSet};
pub use input::Input;
pub use stateful::{Stateful, StatefulConfig};
