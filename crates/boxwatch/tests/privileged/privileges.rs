//! Privilege, namespace and kernel-surface events from inside a real
//! container (root in the container, runc's default capabilities: no
//! CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_PTRACE or CAP_BPF): ptrace,
//! mount, umount2, unshare, setns, module loading and kexec_load (seen
//! through the raw_tp/sys_enter fallback on this kernel: no `ret`), bpf,
//! capset, setgid and setuid.
//! Failed attempts are events too: the attempt is what matters.

use serde_json::{Value, json};

use crate::probe::*;
use crate::support::*;

#[test]
fn privilege_namespace_and_kernel_syscalls_in_container() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let t = run_python(
        &ctrd,
        &d,
        r#"
child = subprocess.Popen(["sleep", "60"])
out["child"] = child.pid
out["ptrace"] = sc(101, 16, child.pid, 0, 0)  # PTRACE_ATTACH to our own child
child.kill(); child.wait()
os.mkdir("/tmp/bw-mnt")
out["mount"] = err(libc.mount(b"bw-src", b"/tmp/bw-mnt", b"tmpfs", ctypes.c_ulong(6), None))  # MS_NOSUID|MS_NODEV
out["umount"] = err(libc.umount2(b"/tmp/bw-mnt", 2))  # MNT_DETACH
out["unshare"] = err(libc.unshare(0x04020000))  # CLONE_NEWUTS|CLONE_NEWNS
out["nsfd"] = nsfd = os.open("/proc/self/ns/net", os.O_RDONLY)
out["netns"] = os.fstat(nsfd).st_ino
out["setns"] = err(libc.setns(nsfd, 0x40000000))  # CLONE_NEWNET
out["init_module"] = sc(175, None, 0, b"bw-init-params")
out["finit_module"] = sc(313, -1, b"bw-finit-params", 0)
out["delete_module"] = sc(176, b"bw_probe_mod", 0)
out["kexec_load"] = sc(246, 0, 0, None, 0)
attr = ctypes.create_string_buffer(struct.pack("5I", 2, 4, 8, 1, 0), 72)  # BPF_MAP_TYPE_ARRAY
out["bpf"] = sc(321, 0, attr, 72)  # BPF_MAP_CREATE
hdr = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, os.getpid()))  # _LINUX_CAPABILITY_VERSION_3, own pid
data = ctypes.create_string_buffer(struct.pack("6I", 0xc0, 0xc0, 0, 0, 0, 0))  # keep CAP_SETGID|CAP_SETUID
out["capset"] = err(libc.capset(hdr, data))
out["setgid"] = err(libc.setgid(2000))
out["setuid"] = err(libc.setuid(1000))
out["uid"] = os.getuid()
"#,
    );
    for v in &t.events {
        assert_attributed(v, &t.id);
    }
    let py = |kind: &str, what: &str| -> &Value { t.one("python3", kind, what, |_| true) };
    let o = &t.out;

    // ptrace(PTRACE_ATTACH, child): the pid is the one the caller passed (its pid namespace)
    assert_eq!(t.out_i64("ptrace"), 0, "attaching to an own child is allowed: {o}");
    let p = py("ptrace", "PTRACE_ATTACH");
    assert_eq!((&p["request"], p["pid"].as_i64(), ret(p)), (&json!(16), Some(t.out_i64("child")), 0));

    // mount: refused without CAP_SYS_ADMIN, the attempt is the event
    let m = py("mount", "mount of tmpfs");
    assert_eq!(
        (&m["source"], &m["target"], &m["fstype"]),
        (&json!("bw-src"), &json!("/tmp/bw-mnt"), &json!("tmpfs"))
    );
    assert_eq!((&m["flags"], ret(m)), (&json!(6), EPERM));
    assert_eq!(t.out_i64("mount"), EPERM);

    let u = py("umount", "umount2");
    assert_eq!((&u["target"], &u["flags"], ret(u)), (&json!("/tmp/bw-mnt"), &json!(2), EPERM));
    assert_eq!(t.out_i64("umount"), EPERM);

    let u = py("unshare", "unshare");
    assert_eq!((&u["flags"], ret(u)), (&json!(0x04020000), EPERM));
    assert_eq!(t.out_i64("unshare"), EPERM);

    // setns: the namespace behind the fd is the caller's own network namespace
    let s = py("setns", "setns");
    assert_eq!(
        (s["fd"].as_i64(), &s["nstype"], ret(s)),
        (Some(t.out_i64("nsfd")), &json!(0x40000000), EPERM)
    );
    assert_eq!(s["ns_inode"].as_i64(), Some(t.out_i64("netns")), "{}", brief(s));
    assert_eq!(s["ns_inode"], s["ns"]["net"]);

    // module syscalls: ENOSYS here (no CONFIG_MODULES), seen at entry by the fallback
    for (syscall, name) in [
        ("init_module", "bw-init-params"),
        ("finit_module", "bw-finit-params"),
        ("delete_module", "bw_probe_mod"),
    ] {
        assert_eq!(t.out_i64(syscall), ENOSYS, "{o}");
        let e = t.one("python3", "module", syscall, |v| v["syscall"] == syscall);
        assert_eq!(e["name"], name, "{}", brief(e));
        assert!(e.get("ret").is_none(), "emitted at entry, so no ret: {}", brief(e));
        assert_eq!(e["record_flags"].as_u64().unwrap() & 4, 4, "BW_F_NO_RET: {}", brief(e));
    }

    // kexec_load goes through the same fallback (refused: no CAP_SYS_BOOT)
    let k = t.one("python3", "module", "kexec_load", |v| v["syscall"] == "kexec_load");
    assert!(k.get("ret").is_none(), "{}", brief(k));
    assert_eq!(k["name"], "", "{}", brief(k));
    assert!(t.out_i64("kexec_load") < 0, "{o}");

    // bpf(BPF_MAP_CREATE, {map_type = ARRAY}): refused without CAP_BPF
    let b = py("bpf", "bpf(BPF_MAP_CREATE)");
    assert_eq!((&b["cmd"], &b["attr_type"], ret(b)), (&json!(0), &json!(2), EPERM));

    // capset: dropping to CAP_SETGID|CAP_SETUID
    let c = py("capset", "capset");
    assert_eq!(
        (&c["effective"], &c["permitted"], &c["inheritable"], ret(c)),
        (&json!(0xc0), &json!(0xc0), &json!(0), 0)
    );
    assert_eq!(c["process"]["cap_effective"], 0xc0, "the header shows the caps after the call: {}", brief(c));
    assert_eq!(
        c["pid"],
        c["process"]["vpid"],
        "capset target pid (own pid, as the container sees it): {}",
        brief(c)
    );

    // setgid(2000) then setuid(1000): ids as passed, credentials after the call
    let g = t.one("python3", "set_id", "setgid", |v| v["syscall"] == "setgid");
    assert_eq!((&g["ids"], ret(g)), (&json!([2000]), 0));
    assert_eq!((&g["process"]["gid"], &g["process"]["uid"]), (&json!(2000), &json!(0)));
    let u = t.one("python3", "set_id", "setuid", |v| v["syscall"] == "setuid");
    assert_eq!((&u["ids"], ret(u)), (&json!([1000]), 0));
    assert_eq!((&u["process"]["uid"], &u["process"]["euid"]), (&json!(1000), &json!(1000)));
    assert_eq!(t.out_i64("uid"), 1000);
    d.stop();
}
