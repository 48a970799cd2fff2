//! Shared by the tests that replay the stream recorded from the real daemon.

use std::io::Read;
use std::path::PathBuf;

use boxwatch_model::{ContainerRef, Event};
use boxwatch_rules::engine::RuleSet;

/// One line of events.jsonl: the event and its container.
#[derive(serde::Deserialize)]
pub struct Line {
    pub container: Option<ContainerRef>,
    #[serde(flatten)]
    pub event: Event,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The default pack from `rules/default/`, as the binary embeds it.
#[allow(dead_code)]
pub fn default_rules() -> RuleSet {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("rules/default"))
        .expect("rules/default")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    RuleSet::load_files(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

/// `testdata/streams/mixed-container.jsonl.gz`, decoded.
pub fn recorded_stream() -> Vec<Line> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(repo().join("testdata/streams/mixed-container.jsonl.gz")).expect("open stream"),
    )
    .read_to_string(&mut text)
    .expect("gunzip stream");
    text.lines().map(|l| serde_json::from_str(l).expect("event line")).collect()
}
