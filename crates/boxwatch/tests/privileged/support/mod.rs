//! Support code for boxwatch's privileged integration tests: the real
//! containers come from `boxwatch-testbed`; [`Daemon`] runs the real
//! `boxwatch run` binary.
#![allow(dead_code, unused_imports)]

mod daemon;

pub use boxwatch_testbed::*;
pub use daemon::Daemon;

/// Every test daemon watches every container on the host, so a test that floods
/// alerts on purpose (the fairness and tamper tests) would fill the small queues
/// and rate budgets that other tests measure. Flooding tests hold [`flood`]
/// (exclusive); tests that count exact deliveries hold [`quiet`] (shared).
static FLOOD: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn flood() -> std::sync::RwLockWriteGuard<'static, ()> {
    FLOOD.write().unwrap_or_else(|p| p.into_inner())
}

pub fn quiet() -> std::sync::RwLockReadGuard<'static, ()> {
    FLOOD.read().unwrap_or_else(|p| p.into_inner())
}
