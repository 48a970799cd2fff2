use std::path::PathBuf;

/// Errors of the kernel side, each naming the object that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("open BPF object {object}: {source}{log}")]
    Open { object: &'static str, source: libbpf_rs::Error, log: String },
    #[error("load BPF object {object}: {source}{log}")]
    Load { object: &'static str, source: libbpf_rs::Error, log: String },
    #[error(
        "core hook {program} ({section}) cannot run on this kernel: {reason}. boxwatch cannot \
         attribute processes without it; run `boxwatch check` for details"
    )]
    CoreHook { program: String, section: String, reason: String },
    #[error("--btf {}: {reason}", path.display())]
    BtfPath { path: PathBuf, reason: String },
    #[error("BPF object {object} has no rodata section")]
    NoRodata { object: &'static str },
    #[error("BPF map {map}: {op}: {source}")]
    Map { map: &'static str, op: &'static str, source: libbpf_rs::Error },
    #[error("ring buffer: {0}")]
    RingBuf(#[source] libbpf_rs::Error),
    #[error("tracefs is not mounted and mounting it at {path} failed: {source}")]
    Tracefs { path: PathBuf, source: std::io::Error },
}
