//! The evaluation corpus: scenarios described as data in `eval/*.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The four threat classes of the taxonomy (issue #13), in table order.
pub const CLASSES: [&str; 4] = ["escape", "privilege_escalation", "network", "filesystem"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    scenario: Vec<Scenario>,
}

/// One attack scenario or benign workload, run in its own container.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique id (`esc-core-pattern`, `ben-nginx-render`).
    pub id: String,
    /// One of [`CLASSES`], or `benign`.
    pub class: String,
    /// Where the technique or workload comes from (Falco rule, Atomic Red Team test, GTFOBins, ...).
    pub source: String,
    /// One line: what it does.
    pub what: String,
    /// Rule ids expected to fire (attacks: at least these; informational for the table).
    #[serde(default)]
    pub expect: Vec<String>,
    /// Interpreter of `script`: `sh` (default), `bash` or `python`.
    #[serde(default = "default_run")]
    pub run: String,
    pub script: String,
    /// Extra `ctr run` flags (`--privileged`, `--user`, `1000`, `--cap-add`, `CAP_NET_ADMIN`, mounts);
    /// `{fixtures}` is replaced by the host directory of read-only fixture files.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Part of the quick subset run by `scripts/test.sh`.
    #[serde(default)]
    pub quick: bool,
    /// Kernel data boxwatch does not have yet that this scenario needs (reported, still counted).
    #[serde(default)]
    pub known_miss: Option<String>,
    /// Hard timeout of the container, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Set when loaded: `file:index` for messages.
    #[serde(skip)]
    pub origin: String,
}

fn default_run() -> String {
    "sh".into()
}

fn default_timeout() -> u64 {
    30
}

impl Scenario {
    pub fn is_benign(&self) -> bool {
        self.class == "benign"
    }
}

/// Every `*.toml` under `dir`, sorted by file name, validated.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Scenario>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read corpus directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.toml corpus files", dir.display());
    }
    let mut all: Vec<Scenario> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("read {}", f.display()))?;
        let parsed: File = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((0, 0));
            anyhow::anyhow!("{}:{line}:{col}: {}", f.display(), e.message())
        })?;
        for (i, mut s) in parsed.scenario.into_iter().enumerate() {
            s.origin = format!("{} scenario #{}", f.display(), i + 1);
            if !(s.is_benign() || CLASSES.contains(&s.class.as_str())) {
                bail!("{} ({}): class {:?} is not benign or one of {CLASSES:?}", s.origin, s.id, s.class);
            }
            if !["sh", "bash", "python"].contains(&s.run.as_str()) {
                bail!("{} ({}): run {:?} is not sh, bash or python", s.origin, s.id, s.run);
            }
            if s.is_benign() && !s.expect.is_empty() {
                bail!("{} ({}): a benign workload expects no rule", s.origin, s.id);
            }
            if !s.is_benign() && s.expect.is_empty() {
                bail!("{} ({}): an attack scenario names the rule(s) it expects", s.origin, s.id);
            }
            if let Some(prev) = all.iter().find(|p| p.id == s.id) {
                bail!("{}: duplicate id {:?} (first in {})", s.origin, s.id, prev.origin);
            }
            all.push(s);
        }
    }
    Ok(all)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
