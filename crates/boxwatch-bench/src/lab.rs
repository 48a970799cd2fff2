//! Where the workloads run: inside a real container (private containerd +
//! runc, docker-style cgroup, so boxwatch classifies and traces it) or on
//! the host (filtered out by boxwatch in the kernel).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use boxwatch_testbed::{Container, Containerd, docker_cgroup, random_container_id};
use serde_json::Value;

/// Where a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// Inside the benchmark container: traced by boxwatch.
    Container,
    /// A host process: filtered out by boxwatch in the kernel.
    Host,
}

impl Place {
    pub const ALL: [Place; 2] = [Place::Container, Place::Host];

    pub fn name(self) -> &'static str {
        match self {
            Place::Container => "container",
            Place::Host => "host",
        }
    }
}

/// A long-running container with this binary bind-mounted at /bench.
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: the container goes before its containerd.
    container: Container,
    ctrd: Containerd,
    exe_dir: PathBuf,
    exe: PathBuf,
    seq: AtomicU64,
}

impl Lab {
    pub fn start() -> Result<Lab> {
        let exe = std::env::current_exe().context("locate own executable")?;
        // A private copy, so the container never sees the build tree.
        let exe_dir = std::env::temp_dir().join(format!("boxwatch-bench-bin-{}", std::process::id()));
        std::fs::create_dir_all(&exe_dir).with_context(|| format!("mkdir {}", exe_dir.display()))?;
        std::fs::copy(&exe, exe_dir.join("boxwatch-bench"))
            .with_context(|| format!("copy {} to {}", exe.display(), exe_dir.display()))?;
        // "moby" puts the same namespace in the shim's command line as Docker does.
        let ctrd = Containerd::start_in_namespace("moby");
        let id = random_container_id();
        let mount = format!("type=bind,src={},dst=/bench,options=rbind:ro", exe_dir.display());
        let container =
            ctrd.run_detached_with(&id, &docker_cgroup(&id), &["--mount", &mount], &["sleep", "infinity"]);
        Ok(Lab { container, ctrd, exe_dir, exe, seq: AtomicU64::new(0) })
    }

    pub fn containerd_socket(&self) -> &Path {
        self.ctrd.address()
    }

    /// Runs `boxwatch-bench worker <args>` at `place`; returns its JSON output.
    pub fn worker(&self, place: Place, args: &[&str], timeout: Duration) -> Result<Value> {
        let (ok, stdout, stderr) = match place {
            Place::Container => {
                let exec_id = format!("bench-{}", self.seq.fetch_add(1, Ordering::Relaxed));
                let mut full = vec!["/bench/boxwatch-bench", "worker"];
                full.extend_from_slice(args);
                let out = self.container.exec(&exec_id, &full, timeout);
                if out.timed_out {
                    bail!("worker {args:?} in the container timed out after {timeout:?}");
                }
                (out.success(), out.stdout, out.stderr)
            }
            Place::Host => {
                let out = Command::new(&self.exe)
                    .arg("worker")
                    .args(args)
                    .output()
                    .with_context(|| format!("run {} worker", self.exe.display()))?;
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            }
        };
        if !ok {
            bail!("worker {args:?} on {} failed:\n{stdout}{stderr}", place.name());
        }
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
        serde_json::from_str(line).with_context(|| format!("worker {args:?}: output is not JSON: {stdout:?}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.exe_dir);
    }
}
