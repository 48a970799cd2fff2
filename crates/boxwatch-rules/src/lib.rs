//! Detections over boxwatch events, producing [`Alert`]s as data.
//!
//! Today this holds the built-in detections of the kernel-to-alert slice
//! ([`builtin`]); the YAML rule engine will live here too. Everything is a
//! function of its inputs: the caller passes the event, its container and
//! the wall-clock time, so fixtures test it without root or clocks.

pub mod alert;
pub mod builtin;
pub mod time;

pub use alert::{Alert, Ancestor, Lineage, Priority};
pub use builtin::{Context, detect};
