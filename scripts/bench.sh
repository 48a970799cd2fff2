#!/usr/bin/env bash
# Run boxwatch's benchmark on this machine, as root: added cost per openat,
# exec and connect inside a real container and on the host, side by side with
# libbpf-tools (opensnoop, execsnoop, tcpconnect) and bpftrace in the same run;
# throughput with the full rule pack, overload, syscall->alert latency, daemon
# CPU and memory; per-BPF-program run time. Installs what it needs (build deps,
# containerd, runc, libbpf-tools, bpftrace) on Debian/Ubuntu, builds release.
#
#   scripts/bench.sh           # full run (~10 min): writes BENCHMARKS.md and bench/runs/<date>.json
#   scripts/bench.sh --quick   # every scenario, briefly (~1 min): writes target/bench-quick.{md,json}
#
# Other arguments go to boxwatch-bench (see target/release/boxwatch-bench --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/bench.sh: the benchmark loads BPF programs and starts containers: run as root" >&2
    exit 1
fi
bash scripts/install-deps.sh --bench
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release --locked -p boxwatch -p boxwatch-bench
out=(--json "bench/runs/$(date -u +%Y-%m-%d-%H%M).json" --markdown BENCHMARKS.md)
for a in "$@"; do
    if [ "$a" = "--quick" ]; then
        out=(--json target/bench-quick.json --markdown target/bench-quick.md)
    fi
done
mkdir -p bench/runs
exec target/release/boxwatch-bench "${out[@]}" "$@"
