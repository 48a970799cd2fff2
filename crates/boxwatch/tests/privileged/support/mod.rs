//! Support code for boxwatch's privileged integration tests: the real
//! containers come from `boxwatch-testbed`; [`Daemon`] runs the real
//! `boxwatch run` binary.
#![allow(dead_code, unused_imports)]

mod daemon;

pub use boxwatch_testbed::*;
pub use daemon::Daemon;
