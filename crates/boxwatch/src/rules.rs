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
        let pack: &[(&str, &str)] = if self.default_pack { DEFAULT_RULES } else { &[] };
        let user: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        // The pack keeps its own lists and macros; the user's files (Falco's, say) get theirs.
        RuleSet::with_pack(pack, &user).map_err(|e| anyhow::anyhow!(describe(&e)))
    }

    /// The files `load` reads, in order (directories expanded).
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        expand(&self.paths)
    }
}

fn sources_for(files: &[PathBuf], no_default: bool) -> RuleSources {
    RuleSources { default_pack: !no_default, paths: files.to_vec() }
}

pub fn run(args: RulesArgs) -> Result<ExitCode> {
    match args.command {
        RulesCommand::Check { files, no_default_rules } => check(&sources_for(&files, no_default_rules)),
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
                let enabled = match (&r.inert, r.enabled) {
                    (Some(_), true) => "inert",
                    (_, e) => {
                        if e {
                            "true"
                        } else {
                            "false"
                        }
                    }
                };
                println!(
                    "{:<34} {:<13} {:<20} {:<8} {}\n{:<79}   {}  [{}]",
                    r.id,
                    format!("{:?}", r.severity),
                    r.class.as_str(),
                    enabled,
                    r.name,
                    "",
                    r.why,
                    r.mitre.join(", ")
                );
                if let Some(why) = &r.inert {
                    println!("{:<79}   inert: {why}", "");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `boxwatch rules check`: per file, the rules loaded and those inert (with why); every error
/// as `file:line:column: message` (exit 2).
fn check(sources: &RuleSources) -> Result<ExitCode> {
    let files = sources.files()?;
    let set = match sources.load() {
        Ok(set) => set,
        Err(e) => {
            println!("{e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut names: Vec<String> = Vec::new();
    if sources.default_pack {
        names.extend(DEFAULT_RULES.iter().map(|(n, _)| n.to_string()));
    }
    names.extend(files.iter().map(|f| f.display().to_string()));
    let of = |origin: &str, file: &str| origin.rsplit_once(':').is_some_and(|(f, _)| f == file);
    for file in &names {
        let rules: Vec<_> = set.rules().filter(|r| of(&r.origin, file)).collect();
        let inert: Vec<_> = rules.iter().filter(|r| r.inert.is_some()).collect();
        let disabled = rules.iter().filter(|r| !r.enabled).count();
        let active = rules.iter().filter(|r| r.enabled && r.inert.is_none()).count();
        println!(
            "{file}: {} rules loaded, {active} active, {} inert, {disabled} disabled, 0 errors",
            rules.len(),
            inert.len()
        );
        for r in inert {
            println!("  inert: {} ({}): {}", r.name, r.origin, r.inert.as_deref().unwrap_or(""));
        }
    }
    let inert = set.inert().count();
    println!("ok: {} rules compiled, {} active, {inert} inert", set.len(), set.len() - inert);
    Ok(ExitCode::SUCCESS)
}
