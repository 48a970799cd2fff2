//! `boxwatch check`: is this machine ready, and what will the monitor see?

use std::path::PathBuf;

use boxwatch_bpf::probe::{self, KERNEL_BTF, MIN_KERNEL};
use boxwatch_bpf::{HookStatus, Monitor, MonitorConfig};

fn mark(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

/// Print the report; returns whether the monitor can run here.
pub fn run(verbose: bool, btf: Option<PathBuf>) -> bool {
    let r = probe::run(btf.as_deref());
    println!("boxwatch check");
    println!(
        "  [{}] kernel {} (need >= {}.{})",
        mark(r.kernel_ok()),
        r.kernel_release,
        MIN_KERNEL.0,
        MIN_KERNEL.1
    );
    match &r.btf_file {
        None => println!("  [{}] BTF at {KERNEL_BTF} (CO-RE)", mark(r.btf)),
        Some(f) => {
            let ok = r.btf_ok();
            println!(
                "  [{}] BTF from --btf {} (CO-RE relocations){}",
                mark(ok),
                f.display(),
                if ok { "" } else { ": not a readable file" }
            );
            if r.btf {
                println!("         (the kernel's own {KERNEL_BTF} exists too; --btf takes precedence)");
            } else {
                println!(
                    "         the kernel exposes no BTF of its own: --btf only resolves CO-RE relocations, and \
                     boxwatch's hooks also need the kernel's BTF (BTF-typed task pointers, tp_btf): see the \
                     monitor line below"
                );
            }
        }
    }
    match &r.tracefs {
        Ok(p) => println!("  [ok  ] tracefs at {}", p.display()),
        Err(e) => println!("  [FAIL] tracefs: {e}"),
    }
    match &r.cgroup2 {
        Some(p) => println!("  [ok  ] cgroup v2 at {} (container identity)", p.display()),
        None => println!("  [FAIL] no cgroup v2 mount: containers cannot be identified"),
    }
    if r.missing_caps.is_empty() {
        println!("  [ok  ] privileges: euid {} with CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN", r.euid);
    } else {
        println!("  [FAIL] privileges: euid {} lacks {} (run as root)", r.euid, r.missing_caps.join(", "));
    }
    println!("  attach types (loaded and attached for real):");
    for a in &r.attach {
        match &a.result {
            Ok(()) => println!("    [ok  ] {:<16} gives: {}", a.kind, a.with_it),
            Err(e) => {
                let first = e.lines().next().unwrap_or(e);
                println!("    [no  ] {:<16} {first}", a.kind);
                println!("           without it: {}", a.without_it);
            }
        }
    }
    let mut ready = r.ready();
    if r.missing_caps.is_empty() {
        match Monitor::load(&MonitorConfig {
            libbpf_verbose: verbose,
            btf_path: btf,
            ..MonitorConfig::default()
        }) {
            Ok(m) => {
                let cov = m.coverage();
                println!("  monitor hooks: {} attached, {} degraded", cov.attached(), cov.degraded().count());
                println!("  syscall entry state: {} ({})", cov.inflight_store, cov.inflight_store_reason);
                for h in &cov.hooks {
                    match &h.status {
                        HookStatus::Attached => {
                            if verbose {
                                println!("    [ok  ] {:<24} {}", h.program, h.section)
                            }
                        }
                        HookStatus::Degraded(why) => println!(
                            "    [no  ] {:<24} {} — {}",
                            h.program,
                            h.section,
                            why.lines().next().unwrap_or("")
                        ),
                        HookStatus::NotNeeded(why) => {
                            println!("    [--  ] {:<24} {} — {why}", h.program, h.section)
                        }
                    }
                }
                if cov.is_attached("fallback_sys_enter") {
                    println!(
                        "    note: module/kexec syscalls are observed through raw_tp/sys_enter, which runs on every \
                         syscall (disable with `run --no-syscall-fallback`)"
                    );
                }
            }
            Err(e) => {
                println!("  [FAIL] monitor: {e:#}");
                ready = false;
            }
        }
    }
    println!("{}", if ready { "ready: boxwatch can run here" } else { "NOT READY: see FAIL lines above" });
    ready
}
