#!/usr/bin/env bash
# Run every boxwatch test on this machine, as root:
#   formatting and lints, unit and fixture tests (no root needed: plain
#   `cargo test`), the privileged tier (selected with the `privileged` feature:
#   real BPF programs watching real containers started through a private
#   containerd + runc), the kernel matrix (boxwatch checked and run on other
#   kernels booted in QEMU, scripts/kernel-matrix.sh), the quick subset of the
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
# The privileged tier's test targets are built only with the `privileged` feature.
PRIVILEGED=(--features boxwatch/privileged)
echo "== cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets "${PRIVILEGED[@]}" --features boxwatch/kernel-matrix -- -D warnings
echo "== cargo test: unit and fixture tests (what plain \`cargo test\` runs; no root needed)"
cargo test --locked --workspace
echo "== cargo test: privileged tier (real BPF, real containers; root)"
cargo test --locked -p boxwatch -p boxwatch-bpf "${PRIVILEGED[@]}" --test privileged --test inflight_store --test degrade --test filter_audit
echo "== boxwatch check"
target/debug/boxwatch check
echo "== kernel matrix (this kernel + scripts/kernel-matrix/kernels.list booted in QEMU)"
cargo test --locked -p boxwatch --features kernel-matrix --test kernel_matrix -- --nocapture
echo "== boxwatch-eval --quick (the detection corpus' quick subset: every scenario's expectation asserted, no rate)"
cargo build --locked -p boxwatch-eval
target/debug/boxwatch-eval --quick --jobs 2 --boxwatch target/debug/boxwatch
echo "== boxwatch-bench --quick (proves every benchmark scenario still runs; no number is asserted)"
cargo build --locked --workspace --bins
target/debug/boxwatch-bench --quick --boxwatch target/debug/boxwatch --json target/bench-quick.json >/dev/null
