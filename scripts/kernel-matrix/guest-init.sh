#!/bin/busybox sh
# /init of the kernel-matrix initramfs (scripts/kernel-matrix.sh builds it).
# Runs boxwatch's preflight and a short real workload on the booted kernel and
# reports on the serial console between "@@BW BEGIN <section>" and
# "@@BW END <section> rc=<status>" markers; the host parses them
# (crates/boxwatch/tests/kernel_matrix.rs). Powers off at the end, whatever happens.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /run
hostname bw-matrix
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
cd /root

# Sections print their output, then the marker with the exit status.
section() { # name command...
    name=$1; shift
    echo "@@BW BEGIN $name"
    "$@" 2>&1
    rc=$?
    echo "@@BW END $name rc=$rc"
}

echo "@@BW KERNEL $(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime) lsm=$(cat /sys/kernel/security/lsm 2>/dev/null)"

# 1. Preflight as users run it.
section check boxwatch check

# 2. A non-core program the kernel refuses degrades only itself.
section refuse env BOXWATCH_TEST_REFUSE_PROGRAM=enter_openat boxwatch check

# 3. BTF. With the kernel's /sys/kernel/btf/vmlinux hidden, check must fail and say so
#    (boxwatch's hooks need the kernel's BTF). With --btf (this kernel's BTF, extracted by
#    the host from the image), CO-RE relocations come from that file and all loads as before.
: > /run/empty
if mount --bind /run/empty /sys/kernel/btf/vmlinux; then
    section nobtf boxwatch check
    umount /sys/kernel/btf/vmlinux
else
    echo "@@BW ERROR cannot hide /sys/kernel/btf/vmlinux"
fi
section btf boxwatch check --btf /boot/vmlinux.btf

# 4. A short real workload in a docker-style cgroup: exec, open of /etc/shadow,
#    loopback connect. boxwatch's JSON output comes back as the section's body.
workload() {
    id=$(cat /etc/bw-container-id)
    echo "@@BW CONTAINER $id"
    cg=/sys/fs/cgroup/system.slice/docker-$id.scope
    boxwatch run --output json --no-metrics --no-runtime-lookup --log-dir /run/bwlog \
        --aggregate-window 0 > /run/run.out 2> /run/run.err &
    bw=$!
    i=0
    until grep -q 'boxwatch: ready' /run/run.err; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 $bw 2>/dev/null; then
            echo "boxwatch did not become ready:"; cat /run/run.err; return 1
        fi
        sleep 0.5
    done
    nc -l -p 7070 < /dev/null > /dev/null &
    listener=$!
    mkdir -p /sys/fs/cgroup/system.slice && mkdir "$cg" || return 1
    sleep 0.5
    # Move into the container's cgroup, then exec the workload there.
    sh -c "echo \$\$ > $cg/cgroup.procs && exec /bin/sh /bw-workload.sh"
    echo "workload exit $?"
    sleep 2
    kill -TERM $bw
    wait $bw
    rc=$?
    kill $listener 2>/dev/null
    echo "@@BW STDERR"
    cat /run/run.err
    echo "@@BW STDOUT"
    # Host events stay out of the report: only container lines and alerts.
    grep -v '"container":null' /run/run.out
    return $rc
}
section run workload

echo "@@BW DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
