//! `boxwatch-bench`: what boxwatch costs a workload, and what the tools users
//! would run instead cost, measured in the same run on real containers.
//! `scripts/bench.sh` installs the peers, builds release and runs this.

mod daemon;
mod lab;
mod load;
mod overhead;
mod report;
mod tools;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::lab::Lab;
use crate::load::LoadPlan;
use crate::overhead::Iterations;
use crate::report::{Machine, Report};
use crate::tools::Env;

#[derive(Debug, Parser)]
#[command(name = "boxwatch-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A workload (runs inside the benchmark container or on the host).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A short run that checks every scenario still works (CI); its numbers are not meant to be read.
    #[arg(long)]
    quick: bool,
    /// Interleaved rounds of the overhead scenarios (default 3; quick: 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: Option<u32>,
    /// The boxwatch binary to measure (default: `boxwatch` next to this binary).
    #[arg(long)]
    boxwatch: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report (BENCHMARKS.md) here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Skip the overhead scenarios (1, 2, 6).
    #[arg(long)]
    no_overhead: bool,
    /// Skip throughput, latency and daemon cost (3, 4, 5).
    #[arg(long)]
    no_load: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Some(Cmd::Worker(a)) => worker::run(a),
        None => bench(cli.run),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boxwatch-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(a: RunArgs) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads BPF programs and starts containers: run it as root (scripts/bench.sh)");
    }
    tools::check_peers()?;
    let boxwatch = match a.boxwatch {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("boxwatch"),
    };
    if !boxwatch.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p boxwatch) or pass --boxwatch",
            boxwatch.display()
        );
    }
    let scratch = std::env::temp_dir().join(format!("boxwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("mkdir {}", scratch.display()))?;
    let rounds = a.rounds.unwrap_or(if a.quick { 1 } else { 3 });
    let it = if a.quick {
        Iterations { open: 20_000, exec: 200, connect: 2_000 }
    } else {
        Iterations { open: 200_000, exec: 2_000, connect: 20_000 }
    };
    let plan = if a.quick {
        LoadPlan { step_secs: 1.0, rates: &[5_000, 0], idle_secs: 2.0, latency_samples: 20, processes: 500 }
    } else {
        LoadPlan {
            step_secs: 4.0,
            rates: &[5_000, 25_000, 50_000, 100_000, 125_000, 150_000, 200_000, 250_000, 300_000, 400_000, 0],
            idle_secs: 10.0,
            latency_samples: 200,
            processes: 10_000,
        }
    };
    eprintln!("boxwatch-bench: starting containerd and the benchmark container");
    let lab = Lab::start()?;
    let env = Env { boxwatch: &boxwatch, containerd_socket: lab.containerd_socket(), scratch: &scratch };
    let overhead = if a.no_overhead {
        None
    } else {
        eprintln!("boxwatch-bench: overhead ({rounds} rounds)");
        Some(overhead::run(&lab, &env, rounds, it)?)
    };
    let load = if a.no_load {
        None
    } else {
        eprintln!("boxwatch-bench: throughput, latency, daemon cost");
        let log_dir = scratch.join("load-logs");
        let d = daemon::Daemon::start(
            &boxwatch,
            &log_dir,
            lab.containerd_socket(),
            // Folding and rate limits off: the probes deliberately repeat one alert 100 times a second.
            &["--aggregate-window", "0", "--rate-per-rule", "0", "--rate-per-container", "0"],
        )?;
        let mut r = load::run(&lab, &d, plan)?;
        r.daemon_final_stats = d.stop()?;
        Some(r)
    };
    drop(lab);
    let _ = std::fs::remove_dir_all(&scratch);
    let targets = report::targets(overhead.as_ref(), load.as_ref());
    let command = if a.quick { "scripts/bench.sh --quick" } else { "scripts/bench.sh" };
    let rep = Report {
        machine: Machine::probe(),
        mode: if a.quick { "quick" } else { "full" }.into(),
        command: command.into(),
        overhead,
        load,
        targets,
    };
    let md = report::markdown(&rep);
    println!("{md}");
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rep)?)
            .with_context(|| format!("write {}", p.display()))?;
    }
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}
