#!/usr/bin/env bash
# Boot boxwatch on the kernels users run: each kernel in scripts/kernel-matrix/kernels.list
# (Debian packages, fetched with `apt-get download` and unpacked with `dpkg-deb -x`, never
# installed on this machine) is booted in QEMU with a small initramfs holding the built
# boxwatch binary and busybox. Its /init (scripts/kernel-matrix/guest-init.sh) runs
# `boxwatch check`, the refused-program and --btf checks, and a short real workload in a
# docker-style cgroup under `boxwatch run`, and reports on the serial console.
#
#   scripts/kernel-matrix.sh [--boxwatch BIN] [--out DIR] [PACKAGE-OR-GLOB...]
#
# Writes DIR/<kernel-release>/console.log for each kernel and DIR/results.tsv
# (release, package, accel, wall ms, console log); the assertions on what each kernel
# reported are in crates/boxwatch/tests/kernel_matrix.rs, which runs this script.
# Exit status 0 when every VM booted and reported to the end, 1 otherwise (never a skip).
#
# Defaults: BIN target/debug/boxwatch, DIR target/kernel-matrix. Environment:
#   BOXWATCH_KERNEL_CACHE   downloaded and unpacked kernels   [/var/cache/boxwatch-kernels]
#   BOXWATCH_VM_ACCEL       auto | kvm | tcg                  [auto]
#       auto: KVM where /dev/kvm can boot a stock kernel (not PVM, whose guests must be
#       PVM-enabled kernels: this project's VMs), falling back to TCG if the KVM boot
#       reports nothing; else TCG (-accel tcg -cpu max).
#   BOXWATCH_VM_TIMEOUT     seconds per VM                    [900]
# Needs root (apt-get, /dev/kvm, and the same privileges as the rest of scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/debug/boxwatch
OUT=target/kernel-matrix
LIST=scripts/kernel-matrix/kernels.list
CACHE=${BOXWATCH_KERNEL_CACHE:-/var/cache/boxwatch-kernels}
ACCEL=${BOXWATCH_VM_ACCEL:-auto}
TIMEOUT=${BOXWATCH_VM_TIMEOUT:-900}
kernels=()
while [ $# -gt 0 ]; do
    case "$1" in
        --boxwatch) BIN=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "kernel-matrix: unknown option $1" >&2; exit 2 ;;
        *) kernels+=("$1"); shift ;;
    esac
done
log() { echo "kernel-matrix: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get download, qemu, the tests' privileges)"
[ -x "$BIN" ] || die "$BIN is not an executable: build it first (cargo build)"
BIN=$(readlink -f "$BIN")
if [ ${#kernels[@]} -eq 0 ]; then
    mapfile -t kernels < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$LIST")
fi
[ ${#kernels[@]} -gt 0 ] || die "no kernels in $LIST"

# --- host tools (installed from Debian if missing) -------------------------------------
need=()
for p in qemu-system-x86 busybox-static cpio xz-utils zstd binutils; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
BUSYBOX=/bin/busybox
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || BUSYBOX=$(dpkg -L busybox-static | grep -m1 '/busybox$')
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing after installing qemu-system-x86"

mkdir -p "$CACHE" "$OUT"
OUT=$(readlink -f "$OUT")
RESULTS=$OUT/results.tsv
printf 'release\tpackage\taccel\twall_ms\tconsole\n' > "$RESULTS"

# --- kernels: apt-get download + dpkg-deb -x into the cache ----------------------------
resolve() { # package name or glob -> newest matching package apt knows
    local pat=$1 re
    case "$pat" in
        *'*'*|*'?'*)
            # '*' stays within one dash-separated part: 6.1.0-*-amd64 is not 6.1.0-57-rt-amd64.
            re="^$(printf '%s' "$pat" | sed -e 's/[.+]/\\&/g' -e 's/\*/[^-]*/g' -e 's/?/[^-]/g')\$"
            apt-cache search --names-only "$re" | awk '{print $1}' | sort -V | tail -1 ;;
        *) echo "$pat" ;;
    esac
}

fetch() { # package -> directory with the unpacked kernel
    local pkg=$1 dir=$CACHE/$1 deb
    if [ ! -f "$dir/.unpacked" ]; then
        deb=$(ls "$CACHE/${pkg}"_*.deb 2>/dev/null | sort -V | tail -1 || true)
        if [ -z "$deb" ]; then
            log "downloading $pkg (apt-get download; not installed)"
            (cd "$CACHE" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2) \
                || die "apt-get download $pkg failed"
            deb=$(ls "$CACHE/${pkg}"_*.deb | sort -V | tail -1)
        fi
        rm -rf "$dir" && mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir"
        touch "$dir/.unpacked"
    fi
    echo "$dir"
}

extract_btf() { # vmlinuz -> raw BTF of that kernel (the .BTF section of the embedded vmlinux)
    local vmlinuz=$1 out=$2 tmp off magic cmd
    [ -s "$out" ] && return 0
    tmp=$(mktemp)
    # The bzImage holds a compressed vmlinux: find its stream by magic and decompress it.
    for magic in 'fd377a585a00:xz -dc' '28b52ffd:zstd -dc' '1f8b0800:gzip -dc'; do
        cmd=${magic#*:}; magic=${magic%%:*}
        for off in $(od -An -v -tx1 -w1 "$vmlinuz" | tr -d ' \n' | grep -ob "$magic" | cut -d: -f1 | head -5); do
            [ $((off % 2)) -eq 0 ] || continue
            tail -c +$((off / 2 + 1)) "$vmlinuz" | $cmd > "$tmp" 2>/dev/null || true
            if objcopy -O binary --only-section=.BTF "$tmp" "$out" 2>/dev/null && [ -s "$out" ]; then
                rm -f "$tmp"; return 0
            fi
        done
    done
    rm -f "$tmp" "$out"
    die "could not extract BTF from $vmlinuz"
}

# --- initramfs ----------------------------------------------------------------------
build_initramfs() { # kdir release btf -> initrd path
    local kdir=$1 krel=$2 btf=$3 r img lib
    r=$(mktemp -d)
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,tmp,run,root,etc,boot,var/log}
    cp "$BUSYBOX" "$r/bin/busybox"
    objcopy --strip-debug "$BIN" "$r/usr/local/bin/boxwatch"
    for lib in $(ldd "$BIN" | grep -oE '/[^ ]+' | sort -u); do
        mkdir -p "$r$(dirname "$lib")"
        cp -L "$lib" "$r$lib"
    done
    cp "$btf" "$r/boot/vmlinux.btf"
    cp "$kdir/boot/config-$krel" "$r/boot/" 2>/dev/null || true
    cp scripts/kernel-matrix/guest-init.sh "$r/init"
    cp scripts/kernel-matrix/bw-workload.sh "$r/bw-workload.sh"
    chmod 0755 "$r/init"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
    printf 'root:$6$bwmatrix$notarealhash:19000:0:99999:7:::\n' > "$r/etc/shadow"
    chmod 0640 "$r/etc/shadow"
    # A docker-style container id (64 hex), fixed so the host knows what to expect.
    printf '%s\n' "$(printf 'boxwatch-kernel-matrix' | sha256sum | cut -d' ' -f1)" > "$r/etc/bw-container-id"
    img=$OUT/$krel/initrd.img
    (cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) > "$img"
    rm -rf "$r"
    echo "$img"
}

# --- boot -----------------------------------------------------------------------------
kvm_usable() {
    [ -c /dev/kvm ] && [ -w /dev/kvm ] || { log "no usable /dev/kvm"; return 1; }
    # PVM (kvm_pvm) runs only PVM-enabled guest kernels; a stock kernel never boots there.
    [ ! -d /sys/module/kvm_pvm ] || { log "/dev/kvm is PVM (kvm_pvm): it cannot boot a stock kernel"; return 1; }
    return 0
}

boot() { # accel vmlinuz initrd console -> qemu exit status
    local accel=$1 vmlinuz=$2 initrd=$3 console=$4 a
    if [ "$accel" = kvm ]; then a=(-enable-kvm -cpu host); else a=(-accel tcg -cpu max); fi
    : > "$console"
    timeout "$TIMEOUT" qemu-system-x86_64 "${a[@]}" -smp 2 -m 2048 \
        -kernel "$vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1" \
        -display none -monitor none -serial "file:$console" -no-reboot \
        < /dev/null > "${console%.log}.qemu.log" 2>&1
}

failed=0
for pat in "${kernels[@]}"; do
    pkg=$(resolve "$pat")
    [ -n "$pkg" ] || die "no package matches '$pat' (apt-get update? is the archive in sources.list?)"
    kdir=$(fetch "$pkg")
    vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
    krel=${vmlinuz##*/vmlinuz-}
    mkdir -p "$OUT/$krel"
    btf=$kdir/vmlinux.btf
    extract_btf "$vmlinuz" "$btf"
    initrd=$(build_initramfs "$kdir" "$krel" "$btf")
    console=$OUT/$krel/console.log
    accel=$ACCEL
    if [ "$accel" = auto ]; then
        if kvm_usable; then accel=kvm; else accel=tcg; fi
    fi
    log "$krel ($pkg): booting with $accel, initramfs $(du -h "$initrd" | cut -f1), console $console"
    t0=$(date +%s%N)
    set +e
    boot "$accel" "$vmlinuz" "$initrd" "$console"
    qrc=$?
    if [ "$accel" = kvm ] && [ "$ACCEL" = auto ] && ! grep -q '^@@BW KERNEL' "$console"; then
        log "$krel: the KVM boot reported nothing (qemu exit $qrc); retrying with TCG"
        mv "$console" "$console.kvm"
        accel=tcg
        t0=$(date +%s%N)
        boot tcg "$vmlinuz" "$initrd" "$console"
        qrc=$?
    fi
    set -e
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    tr -d '\r' < "$console" > "$console.tmp" && mv "$console.tmp" "$console"
    if grep -q '^@@BW DONE' "$console"; then
        log "$krel: reported to the end in ${ms} ms ($accel): $(grep -E '^@@BW END' "$console" | sed 's/^@@BW END //' | tr '\n' ' ')"
    else
        log "$krel: the VM did not report to the end (qemu exit $qrc$([ "$qrc" = 124 ] && echo ', timed out'), ${ms} ms); last console lines:"
        tail -20 "$console" >&2
        failed=1
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$krel" "$pkg" "$accel" "$ms" "$console" >> "$RESULTS"
done
exit $failed
