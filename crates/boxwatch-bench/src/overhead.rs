//! Scenarios 1, 2 and 6: added cost per operation (openat+close, fork+exec,
//! connect) inside a container and on the host, for boxwatch and for the
//! peers, rounds interleaved; per-program kernel run time in a separate
//! untimed pass with BPF_ENABLE_STATS.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::lab::{Lab, Place};
use crate::tools::{Env, Running, Tool};
use crate::worker::Op;

#[derive(Debug, Clone, Copy)]
pub struct Iterations {
    pub open: u64,
    pub exec: u64,
    pub connect: u64,
}

impl Iterations {
    pub fn of(&self, op: Op) -> u64 {
        match op {
            Op::Open => self.open,
            Op::Exec => self.exec,
            Op::Connect => self.connect,
        }
    }
}

/// ns per operation of one (op, place, tool), one sample per round.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub op: Op,
    pub place: Place,
    pub tool: Tool,
    pub iterations: u64,
    pub samples_ns: Vec<f64>,
}

impl Cell {
    pub fn median(&self) -> f64 {
        let mut v = self.samples_ns.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
    }
    pub fn min(&self) -> f64 {
        self.samples_ns.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub fn max(&self) -> f64 {
        self.samples_ns.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

/// One BPF program's kernel run time while one op ran in the container.
#[derive(Debug, Clone, Serialize)]
pub struct ProgRow {
    pub tool: Tool,
    pub op: Op,
    pub program: String,
    pub runs: u64,
    pub ns_per_run: f64,
}

#[derive(Debug, Serialize)]
pub struct Overhead {
    pub rounds: u32,
    pub cells: Vec<Cell>,
    pub programs: Vec<ProgRow>,
    /// Which libbpf-tools ran (tcpconnect needs kprobes or fentry).
    pub libbpf_tools: String,
    /// Largest boxwatch RSS seen right after a measurement, KiB.
    pub boxwatch_rss_kib: u64,
    pub boxwatch_final_stats: String,
}

impl Overhead {
    pub fn cell(&self, op: Op, place: Place, tool: Tool) -> Option<&Cell> {
        self.cells.iter().find(|c| c.op == op && c.place == place && c.tool == tool)
    }

    /// Added ns per op of `tool` against no monitor (medians).
    pub fn added(&self, op: Op, place: Place, tool: Tool) -> Option<f64> {
        Some(self.cell(op, place, tool)?.median() - self.cell(op, place, Tool::None)?.median())
    }
}

/// The tools compared; the floor only has openat probes, so it runs openat only.
pub const TOOLS: [Tool; 5] = [Tool::None, Tool::Boxwatch, Tool::LibbpfTools, Tool::Bpftrace, Tool::Floor];

fn ops_for(tool: Tool) -> &'static [Op] {
    if tool == Tool::Floor { &[Op::Open] } else { &Op::ALL }
}

pub fn run(lab: &Lab, env: &Env, rounds: u32, it: Iterations) -> Result<Overhead> {
    let mut cells: BTreeMap<(usize, usize, usize), Cell> = BTreeMap::new();
    let mut programs = Vec::new();
    let (mut libbpf_tools, mut rss, mut final_stats) = (String::new(), 0, String::new());
    for round in 0..rounds as usize {
        for k in 0..TOOLS.len() {
            // Rotate the order every round so no tool always follows the same one.
            let ti = (k + round) % TOOLS.len();
            let tool = TOOLS[ti];
            eprintln!("  round {}/{rounds}: {}", round + 1, tool.name());
            let running = Running::start(tool, env, &[])?;
            if tool == Tool::LibbpfTools {
                libbpf_tools = running.variant.clone();
            }
            // Let start-up work (the daemon's /proc scan, tools' first reads) settle.
            std::thread::sleep(Duration::from_millis(300));
            for &op in ops_for(tool) {
                for (pi, &place) in Place::ALL.iter().enumerate() {
                    let n = it.of(op);
                    let v = lab.worker(
                        place,
                        &["time", "--op", op.key(), "--iterations", &n.to_string()],
                        Duration::from_secs(300),
                    )?;
                    let ns = v["ns_per_op"].as_f64().unwrap_or(f64::NAN);
                    cells
                        .entry((op as usize, pi, ti))
                        .or_insert_with(|| Cell { op, place, tool, iterations: n, samples_ns: Vec::new() })
                        .samples_ns
                        .push(ns);
                }
            }
            if let Some(d) = &running.daemon {
                rss = rss.max(d.rss_kib());
            }
            if round == 0 && tool != Tool::None {
                programs.extend(program_pass(lab, &running, it)?);
            }
            let last = running.stop()?;
            if tool == Tool::Boxwatch {
                final_stats = last;
            }
        }
    }
    Ok(Overhead {
        rounds,
        cells: cells.into_values().collect(),
        programs,
        libbpf_tools,
        boxwatch_rss_kib: rss,
        boxwatch_final_stats: final_stats,
    })
}

/// Per-program run time, one op at a time in the container, with
/// BPF_ENABLE_STATS on (it adds two clock reads per run, so never during timing).
fn program_pass(lab: &Lab, running: &Running, it: Iterations) -> Result<Vec<ProgRow>> {
    let Ok(_stats) = boxwatch_bpf::stats::enable() else {
        eprintln!("  BPF_ENABLE_STATS refused: no per-program times");
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for &op in ops_for(running.tool) {
        let before = running.programs();
        let n = (it.of(op) / 2).max(1);
        lab.worker(
            Place::Container,
            &["time", "--op", op.key(), "--iterations", &n.to_string()],
            Duration::from_secs(300),
        )?;
        for p in running.programs() {
            let b = before.iter().find(|b| b.id == p.id);
            let runs = p.run_cnt - b.map_or(0, |b| b.run_cnt);
            let ns = p.run_time_ns - b.map_or(0, |b| b.run_time_ns);
            if runs > 0 {
                rows.push(ProgRow {
                    tool: running.tool,
                    op,
                    program: p.name.clone(),
                    runs,
                    ns_per_run: ns as f64 / runs as f64,
                });
            }
        }
    }
    Ok(rows)
}
