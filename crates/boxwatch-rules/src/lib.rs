//! Detections over boxwatch events, producing [`Alert`]s as data: the YAML
//! rule engine ([`engine`]: rules compiled once, evaluated per event, and
//! the stateful detections that correlate several events) and the alert
//! format ([`alert`], Falco's JSON shape).
//!
//! Everything is a function of its inputs: the caller passes the event, its
//! context and the wall-clock time, so fixtures test it without root or clocks.

pub mod aggregate;
pub mod alert;
pub mod engine;
pub mod time;

pub use alert::{Alert, Ancestor, Lineage, Priority};
pub use engine::{Class, Input, RuleError, RuleInfo, RuleSet, Stateful, StatefulConfig};
