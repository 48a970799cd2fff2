//! Rule sets for the daemon (the embedded default pack plus the operator's
//! files) and the `boxwatch rules` subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use boxwatch_rules::engine::{Detector, RuleError, RuleSet, Stateful, StatefulConfig};

use crate::cli::{RulesArgs, RulesCommand};

include!(concat!(env!("OUT_DIR"), "/default_rules.rs"));

/// Where the daemon's rules come from; kept so SIGHUP can load them again.
#[derive(Debug, Clone)]
pub struct RuleSources {
    pub default_pack: bool,
    /// Extra files and directories (every `*.yaml`/`*.yml` inside, sorted).
    pub paths: Vec<PathBuf>,
}

fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("read rules directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn describe(errors: &[RuleError]) -> String {
    let mut s = format!("{} error(s) in rules:", errors.len());
    for e in errors {
        s.push_str(&format!("\n  {e}"));
    }
    s
}

impl RuleSources {
    /// Load and compile everything; every error is reported with file:line:column.
    pub fn load(&self) -> Result<RuleSet> {
        let files = expand(&self.paths)?;
        let texts: Vec<(String, String)> = files
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .with_context(|| format!("read rules file {}", f.display()))
                    .map(|t| (f.display().to_string(), t))
            })
            .collect::<Result<_>>()?;
        let mut sources: Vec<(&str, &str)> =
            if self.default_pack { DEFAULT_RULES.to_vec() } else { Vec::new() };
        sources.extend(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        RuleSet::from_sources(&sources).map_err(|e| anyhow::anyhow!(describe(&e)))
    }
}

fn sources_for(files: &[PathBuf], no_default: bool) -> RuleSources {
    RuleSources { default_pack: !no_default, paths: files.to_vec() }
}

pub fn run(args: RulesArgs) -> Result<ExitCode> {
    match args.command {
        RulesCommand::Check { files, no_default_rules } => {
            let set = sources_for(&files, no_default_rules).load()?;
            println!("ok: {} rules compiled", set.len());
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test { files, no_default_rules } => {
            let set = sources_for(&files, no_default_rules).load()?;
            let report = set.run_examples();
            for f in &report.failures {
                println!("FAIL {f}");
            }
            println!("{} passed, {} failed", report.passed, report.failures.len());
            Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        RulesCommand::List { files, no_default_rules } => {
            let set = sources_for(&files, no_default_rules).load()?;
            println!("{:<34} {:<13} {:<20} {:<8} name / why", "id", "severity", "class", "enabled");
            let detectors: [&dyn Detector; 2] = [&set, &Stateful::new(StatefulConfig::default())];
            for r in detectors.iter().flat_map(|d| d.rules()) {
                println!(
                    "{:<34} {:<13} {:<20} {:<8} {}\n{:<79}   {}  [{}]",
                    r.id,
                    format!("{:?}", r.severity),
                    r.class.as_str(),
                    r.enabled,
                    r.name,
                    "",
                    r.why,
                    r.mitre.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
