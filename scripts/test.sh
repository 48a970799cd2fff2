#!/usr/bin/env bash
# Run every boxwatch test on this machine, as root:
#   formatting and lints, unit and fixture tests (no root needed), the
#   privileged integration tests (real BPF programs watching real containers
#   started through a private containerd + runc), the quick subset of the
#   detection evaluation (eval/*.toml), and a quick benchmark run.
# Installs what it needs first (build deps, containerd, runc) on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the privileged tests load BPF programs and start containers: run as root" >&2
    exit 1
fi
bash scripts/install-deps.sh --test --bench --eval
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test (unit, fixtures, privileged integration)"
cargo test --locked --workspace
echo "== boxwatch check"
target/debug/boxwatch check
echo "== boxwatch-eval --quick (the detection corpus' quick subset: every scenario's expectation asserted, no rate)"
cargo build --locked -p boxwatch-eval
target/debug/boxwatch-eval --quick --jobs 2 --boxwatch target/debug/boxwatch
echo "== boxwatch-bench --quick (proves every benchmark scenario still runs; no number is asserted)"
cargo build --locked --workspace --bins
target/debug/boxwatch-bench --quick --boxwatch target/debug/boxwatch --json target/bench-quick.json >/dev/null
