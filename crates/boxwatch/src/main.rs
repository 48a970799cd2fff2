//! boxwatch: the binary. Wiring only: parse the CLI and hand over to the
//! subcommand modules.

mod bench;
mod cgroups;
mod check;
mod cli;
mod clock;
mod daemon;
mod enrich;
mod metrics;
mod output;
mod procfs;
mod ps;
mod rules;
mod webhook;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => daemon::run(args, cli.verbose).map(|()| ExitCode::SUCCESS),
        Command::Check => Ok(if check::run(cli.verbose) { ExitCode::SUCCESS } else { ExitCode::from(1) }),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Command::Ps(args) => ps::run(args).map(|()| ExitCode::SUCCESS),
        Command::Rules(args) => rules::run(args),
        Command::BenchWorker(args) => bench::worker(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("boxwatch: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
