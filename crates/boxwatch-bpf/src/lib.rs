//! boxwatch's kernel side, seen from userspace: the generated BPF
//! skeletons, the feature probe, the loader that degrades per hook, and the
//! ring-buffer reader.
//!
//! **Architecture invariant:** this is the only crate that links libbpf.
//! Everything it hands out is either a raw record (`&[u8]`, decoded by
//! `boxwatch-abi`) or a plain-data report ([`Coverage`], [`probe::ProbeReport`]).
//!
//! Principal types: [`Monitor`] (loaded + attached monitor object, its maps
//! and counters), [`MonitorConfig`] (load-time knobs), [`Coverage`] (which
//! hooks run here and which were degraded, and why).

mod abi_check;
mod error;
mod libbpf_log;
mod loader;
pub mod probe;
mod skel;
pub mod stats;
pub mod tracefs;

pub use error::Error;
pub use loader::{
    Coverage, FilterTamper, HookReport, HookStatus, InflightStore, Monitor, MonitorConfig,
    REFUSE_PROGRAM_ENV, RingReader,
};
