#!/usr/bin/env bash
# Install what boxwatch needs to build (and, with --test, to run its privileged
# container tests) on a Debian/Ubuntu machine. Idempotent: installs only what
# is missing and runs `apt-get update` at most once, only if something is missing.
#
#   scripts/install-deps.sh          # build deps (clang, libelf, zlib, make, pkg-config, gcc, libc6-dev)
#   scripts/install-deps.sh --test   # + containerd runc busybox-static python3 rsyslog nats-server prometheus,
#                                    #   and qemu-system-x86 cpio xz-utils zstd for the kernel matrix
#   scripts/install-deps.sh --bench  # + containerd runc python3 and the peers: libbpf-tools bpftrace
#   scripts/install-deps.sh --eval   # + containerd runc python3 and the tools the detection corpus runs
#
# Also makes sure tracefs is mounted at /sys/kernel/tracing and that a Rust
# toolchain (cargo) is present (it cannot be downloaded here: install rustup by hand).
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

want_test=0
want_bench=0
want_eval=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        --bench) want_bench=1 ;;
        --eval) want_eval=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-deps.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-deps.sh: must run as root (or have sudo)" >&2
        exit 1
    fi
fi

pkgs=(clang libelf-dev zlib1g-dev make pkg-config gcc libc6-dev)
if [ "$want_test" = 1 ]; then
    pkgs+=(containerd runc busybox-static python3 rsyslog nats-server prometheus)
    # the kernel matrix (scripts/kernel-matrix.sh): QEMU, initramfs tools, kernel image decompressors
    pkgs+=(qemu-system-x86 cpio xz-utils zstd binutils)
fi
if [ "$want_bench" = 1 ]; then
    pkgs+=(containerd runc python3 libbpf-tools bpftrace)
fi
if [ "$want_eval" = 1 ]; then
    # eval/*.toml runs these inside containers (the host's /usr is the containers' /usr).
    pkgs+=(containerd runc python3 busybox-static netcat-openbsd socat telnet logrotate curl wget e2fsprogs
           util-linux libcap2-bin openssh-client openssl git sqlite3 gettext-base passwd adduser
           ca-certificates iproute2 bsdutils perl python3-setuptools)
fi

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for p in "${pkgs[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps.sh: apt-get not found; install these packages by hand: ${missing[*]}" >&2
        exit 1
    fi
    echo "install-deps.sh: installing: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "install-deps.sh: all packages present: ${pkgs[*]}"
fi

# tracefs (tracepoint format files, used by the BPF programs and their tests)
if [ ! -d /sys/kernel/tracing/events ]; then
    echo "install-deps.sh: mounting tracefs at /sys/kernel/tracing"
    "${SUDO[@]}" mkdir -p /sys/kernel/tracing
    "${SUDO[@]}" mount -t tracefs nodev /sys/kernel/tracing
fi
if [ ! -d /sys/kernel/tracing/events ]; then
    echo "install-deps.sh: /sys/kernel/tracing/events still missing after mounting tracefs" >&2
    exit 1
fi

# Rust toolchain: cannot be downloaded here, only checked.
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        echo "install-deps.sh: cargo is installed at ${CARGO_HOME:-$HOME/.cargo}/bin but not on PATH;" >&2
        echo "  run: export PATH=\"${CARGO_HOME:-$HOME/.cargo}/bin:\$PATH\"" >&2
    else
        echo "install-deps.sh: no Rust toolchain (cargo) found." >&2
        echo "  Install rustup (https://rustup.rs) and the toolchain pinned by the workspace" >&2
        echo "  (rust-version in Cargo.toml); this script does not download toolchains." >&2
    fi
    exit 1
fi
echo "install-deps.sh: $(cargo --version)"
