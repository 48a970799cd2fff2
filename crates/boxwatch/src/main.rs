//! boxwatch: the binary. Wiring only: parse the CLI and hand over to the
//! subcommand modules.

mod cgroups;
mod check;
mod cli;
mod clock;
mod config;
mod daemon;
mod enrich;
mod limits;
mod log;
mod metrics;
mod procfacts;
mod procfs;
mod ps;
mod rules;
mod web;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, ConfigCommand, RunArgs};

/// `run` settings: command line and environment, then the config file for what they left default.
fn run_args(
    mut args: RunArgs,
    matches: &clap::ArgMatches,
    config: Option<&std::path::Path>,
) -> Result<(RunArgs, daemon::Reload)> {
    let sub = matches.subcommand().map_or(matches, |(_, m)| m);
    let from_file =
        |id: &str| matches!(sub.value_source(id), None | Some(clap::parser::ValueSource::DefaultValue));
    let mut reload =
        daemon::Reload { config: None, rules_from_file: from_file("rules") && from_file("no_default_rules") };
    if let Some((path, file)) = config::load(config)? {
        config::apply(&mut args, sub, &path, file)?;
        reload.config = Some(path);
    }
    Ok((args, reload))
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if let Err(e) = log::init(cli.log_level.as_deref(), cli.log_format) {
        eprintln!("boxwatch: error: {e:#}");
        return ExitCode::from(2);
    }
    let config = cli.config.as_deref();
    let result = match cli.command {
        Command::Run(args) => run_args(args, &matches, config)
            .and_then(|(a, reload)| daemon::run(a, reload, cli.verbose))
            .map(|()| ExitCode::SUCCESS),
        Command::Config(c) => match c.command {
            ConfigCommand::Check => {
                // Defaults of `run`, overlaid with the file: what `boxwatch run` would use.
                let run = Cli::command().get_matches_from(["boxwatch", "run"]);
                let args = match Cli::from_arg_matches(&run).map(|c| c.command) {
                    Ok(Command::Run(a)) => Ok(a),
                    _ => Err(anyhow::anyhow!("internal: cannot build default run settings")),
                };
                args.and_then(|a| run_args(a, &run, config)).map(|(a, _)| {
                    println!("{a:#?}");
                    ExitCode::SUCCESS
                })
            }
        },
        Command::Check(a) => {
            Ok(if check::run(cli.verbose, a.btf) { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Ps(args) => ps::run(args).map(|()| ExitCode::SUCCESS),
        Command::Alerts(a) => {
            boxwatch_outputs::history::print(&a.db, a.since.as_deref(), a.container, a.rule, a.limit, a.json)
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        Command::Rules(args) => rules::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
