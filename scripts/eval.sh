#!/usr/bin/env bash
# Detection quality of boxwatch, measured: every attack scenario and benign workload of
# eval/*.toml runs in its own real container (private containerd + runc) while one
# `boxwatch run` watches. Prints the per-class table and writes DETECTION.md.
# As root; installs what it needs (build deps, containerd, runc, the tools the corpus uses).
#
#   sudo scripts/eval.sh                 # full corpus -> DETECTION.md, target/eval.json
#   sudo scripts/eval.sh --quick         # the quick subset, each scenario's expectation asserted (CI)
#   sudo scripts/eval.sh --only net- -v  # a few scenarios, with the events of misses
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/eval.sh: the evaluation loads BPF programs and starts containers: run as root" >&2
    exit 1
fi
bash scripts/install-deps.sh --eval
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

quick=0
args=()
for a in "$@"; do
    case "$a" in
        --quick) quick=1; args+=(--quick) ;;
        -v|--verbose) args+=(--verbose) ;;
        *) args+=("$a") ;;
    esac
done

if [ "$quick" = 1 ]; then
    # CI: the debug build scripts/test.sh already made; no report written.
    cargo build --locked -p boxwatch -p boxwatch-eval
    exec target/debug/boxwatch-eval --boxwatch target/debug/boxwatch "${args[@]}"
fi
cargo build --locked --release -p boxwatch -p boxwatch-eval
report=(--markdown DETECTION.md --json target/eval.json)
for a in "${args[@]}"; do
    # A partial run (--only ...) does not overwrite the report of the full corpus.
    [ "$a" = --verbose ] || report=(--json target/eval-partial.json)
done
target/release/boxwatch-eval --boxwatch target/release/boxwatch "${report[@]}" "${args[@]}"
