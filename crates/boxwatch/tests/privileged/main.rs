//! Privileged integration tests: the real `boxwatch` binary with real BPF
//! programs, watching real containers (containerd + runc, driven by `ctr`).
//! They need root and `scripts/install-deps.sh --test`; they fail loudly,
//! never skip, when the machine is not ready.

mod support;

mod api;
mod benign;
mod enrichment;
mod escaping;
mod events;
mod fairness;
mod falco_rules;
mod filtering;
mod harness_smoke;
mod history;
mod identity;
mod lineage;
mod metrics_scrape;
mod network;
mod outputs;
mod privileges;
mod probe;
mod ps_tree;
mod restart;
mod rule_triggers;
mod rule_triggers_fs;
mod rule_triggers_net;
mod rules_reload;
mod slice;
mod tamper;
mod webhook;
