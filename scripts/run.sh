#!/usr/bin/env bash
# Build boxwatch (release) and run the monitor as root on this machine.
# Installs the build dependencies first if they are missing (Debian/Ubuntu).
# Arguments are passed to `boxwatch run` (see `boxwatch run --help`), e.g.
#   scripts/run.sh --output human --stdout alerts
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release --locked -p boxwatch
if [ "$(id -u)" -ne 0 ]; then
    exec sudo target/release/boxwatch run "$@"
fi
exec target/release/boxwatch run "$@"
