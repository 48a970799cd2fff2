//! Pure domain model of boxwatch: typed events decoded from the ABI,
//! container identity from cgroup paths, and the container table.
//!
//! **Architecture invariant:** this crate does no I/O and reads no clocks:
//! time and file contents are passed in, so every behaviour is testable with
//! fixtures and no root.

pub mod container;
pub mod containers;
pub mod event;
pub mod process;
pub mod text;

pub use container::{ContainerRef, Runtime};
pub use containers::{ContainerTable, Learned};
pub use event::{DecodeError, Detail, Event, FdType, ProcessInfo, SockAddr, decode};
pub use process::{Entry, ExecId, ProcKey, ProcNode, ProcessTree, SeedProc, TreeNode, TreeStats};
