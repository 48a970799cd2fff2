//! Process and file events from inside real containers: exec, fork, exit,
//! open/openat/openat2, chmod, chown, unlink, rename, symlink, link and memfd_create, each
//! attributed to the right container and with exact field values.

use serde_json::Value;

use crate::probe::*;
use crate::support::*;

/// exec (filename, argv), fork (child pid and start time linkage) and exit
/// (code, signal) of the processes a shell starts in a container; and the
/// very first exec in a container created after the daemon started.
#[test]
fn exec_fork_exit_are_linked_and_first_exec_is_attributed() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);

    // 1. A new container whose init execs at once: the first exec seen in
    //    its cgroup must already carry the container id.
    let marker = format!("bw-first-exec-{}", random_hex(4));
    let first = run_traced(&ctrd, &d, &["/bin/echo", &marker]);
    assert_eq!(first.stdout.trim(), marker);
    let exec = first.one("echo", "exec", "the init's exec", |v| v["argv"][1] == marker.as_str());
    assert_attributed(exec, &first.id);
    assert_eq!(exec["filename"], "/bin/echo");
    assert_eq!(exec["argv"], serde_json::json!(["/bin/echo", marker]));
    assert_eq!(exec["truncated"], false);
    assert_eq!(exec["process"]["vpid"], 1, "the exec'd payload is the container's init: {}", brief(exec));
    let cgid = exec["cgroup_id"].as_u64().unwrap();
    // Every event the daemon printed from that cgroup (whatever it attributed
    // it to) carries the container, and the payload's exec is the first exec.
    let all = d.lines();
    let in_cgroup: Vec<&Value> =
        all.iter().filter(|v| v["type"] == "event" && v["cgroup_id"] == cgid).collect();
    assert!(!in_cgroup.is_empty());
    for v in &in_cgroup {
        assert_attributed(v, &first.id);
    }
    // runc may re-exec itself (`runc init`, from a memfd) after joining the
    // container's cgroup: that exec is the runtime's, and it is attributed too
    // (checked above). The first exec of anything else is the payload's.
    let first_exec = in_cgroup
        .iter()
        .filter(|v| v["kind"] == "exec" && v["argv"][0] != "runc")
        .min_by_key(|v| v["ktime_ns"].as_u64().unwrap())
        .unwrap();
    assert_eq!(first_exec["argv"], exec["argv"], "first exec in the new cgroup: {}", brief(first_exec));
    // The "started" line comes before the container's first event.
    let started = all
        .iter()
        .position(|v| {
            v["type"] == "container" && v["action"] == "started" && v["container"]["id"] == first.id
        })
        .expect("no started line for the container");
    let first_event = all.iter().position(|v| v["type"] == "event" && v["cgroup_id"] == cgid).unwrap();
    assert!(started < first_event, "started line {started} after the first event {first_event}");

    // 2. A shell that starts three children: one exits 0, one exits 3, one is
    //    killed by SIGKILL; the shell itself exits 0.
    let t = run_traced(
        &ctrd,
        &d,
        &["sh", "-c", "/bin/echo bw-exec-probe 'two words'; sh -c 'exit 3'; sh -c 'kill -9 $$'; true"],
    );
    assert_eq!(t.stdout, "bw-exec-probe two words\n");
    for v in &t.events {
        assert_attributed(v, &t.id);
    }
    let init_exec = t.one("sh", "exec", "the init shell", |v| v["process"]["vpid"] == 1);
    assert_eq!(init_exec["argv"][0], "sh");
    assert_eq!(init_exec["argv"][1], "-c");
    let shell = init_exec["process"]["pid"].as_u64().unwrap();

    let echo = t.one("echo", "exec", "/bin/echo", |_| true);
    assert_eq!(echo["filename"], "/bin/echo");
    assert_eq!(echo["argv"], serde_json::json!(["/bin/echo", "bw-exec-probe", "two words"]));
    assert_eq!(echo["truncated"], false);
    assert_eq!(echo["process"]["uid"], 0);
    assert_eq!(echo["process"]["comm"], "echo");
    let exit3 =
        t.one("sh", "exec", "sh -c 'exit 3'", |v| v["argv"] == serde_json::json!(["sh", "-c", "exit 3"]));
    let killed = t.one("sh", "exec", "sh -c 'kill -9 $$'", |v| {
        v["argv"] == serde_json::json!(["sh", "-c", "kill -9 $$"])
    });

    for (child, comm, code, signal) in [(echo, "echo", 0, 0), (exit3, "sh", 3, 0), (killed, "sh", 0, 9)] {
        let pid = child["process"]["pid"].as_u64().unwrap();
        let start = &child["process"]["start_ns"];
        assert_eq!(child["process"]["ppid"], shell, "parent of {}", brief(child));
        assert!(child["process"]["vpid"].as_u64().unwrap() > 1, "{}", brief(child));
        // The shell's fork names the child by host pid and start time, which
        // together with the pid identify the process in every later event.
        let fork = t.one("sh", "fork", &format!("the fork of {pid}"), |v| v["child_pid"] == pid);
        assert_eq!(fork["process"]["pid"], shell);
        assert_eq!(&fork["child_start_ns"], start, "fork {} vs exec {}", brief(fork), brief(child));
        assert!(fork.get("ret").is_none(), "fork is not a syscall result: {}", brief(fork));
        assert!(fork["ktime_ns"].as_u64() < child["ktime_ns"].as_u64(), "fork after exec");
        let exit = t.one(comm, "exit", &format!("the exit of {pid}"), |v| v["process"]["pid"] == pid);
        assert_eq!(exit["code"], code, "{}", brief(exit));
        assert_eq!(exit["signal"], signal, "{}", brief(exit));
        assert_eq!(&exit["process"]["start_ns"], start);
        assert!(exit.get("ret").is_none(), "{}", brief(exit));
    }
    let shell_exit = t.one("sh", "exit", "the init shell's exit", |v| v["process"]["pid"] == shell);
    assert_eq!((&shell_exit["code"], &shell_exit["signal"]), (&Value::from(0), &Value::from(0)));
    let stats = d.stop();
    assert!(stats.contains(" decode_errors=0 "), "{stats}");
}

/// open/openat/openat2, chmod family, chown family, unlink, rename, symlink and link
/// families, memfd_create: paths, modes, ids, dirfds and return values.
#[test]
fn file_syscalls_in_container() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let t = run_python(
        &ctrd,
        &d,
        r#"
AT = -100
O_WRONLY, O_CREAT, O_TRUNC, O_DIRECTORY = 0o1, 0o100, 0o1000, 0o200000
os.mkdir("/tmp/bw")
out["fd"] = fd = err(libc.open(b"/tmp/bw/probe", O_WRONLY | O_CREAT | O_TRUNC, 0o640))
out["dfd"] = dfd = err(libc.open(b"/tmp/bw", O_DIRECTORY))
out["rel"] = err(libc.openat(dfd, b"probe", 0))
out["missing"] = err(libc.open(b"/tmp/bw/missing", 0))
how = ctypes.create_string_buffer(struct.pack("QQQ", O_WRONLY | O_CREAT, 0o604, 0), 24)
out["openat2"] = sc(437, AT, b"/tmp/bw/o2", how, 24)  # struct open_how {flags, mode, resolve}
out["chmod"] = err(libc.chmod(b"/tmp/bw/probe", 0o751))
out["fchmod"] = err(libc.fchmod(fd, 0o604))
out["fchmodat"] = err(libc.fchmodat(AT, b"/tmp/bw/probe", 0o600, 0))
out["chown"] = err(libc.chown(b"/tmp/bw/probe", 1234, 5678))
out["fchown"] = err(libc.fchown(fd, 2345, 6789))
out["lchown"] = err(libc.lchown(b"/tmp/bw/probe", -1, 99))
out["fchownat"] = err(libc.fchownat(AT, b"/tmp/bw/probe", 4321, 8765, 0))
out["rename"] = err(libc.rename(b"/tmp/bw/probe", b"/tmp/bw/renamed"))
out["renameat"] = err(libc.renameat(AT, b"/tmp/bw/renamed", dfd, b"renamed2"))
out["renameat2"] = err(libc.renameat2(dfd, b"renamed2", AT, b"/tmp/bw/final", 1))  # NOREPLACE (0: renameat)
out["symlink"] = err(libc.symlink(b"/tmp/bw/final", b"/tmp/bw/sym"))
out["symlinkat"] = err(libc.symlinkat(b"final", dfd, b"sym2"))
out["link"] = err(libc.link(b"/tmp/bw/final", b"/tmp/bw/hard"))
out["linkat"] = err(libc.linkat(AT, b"/tmp/bw/final", dfd, b"hard2", 0))
out["unlink"] = err(libc.unlink(b"/tmp/bw/hard"))
out["unlinkat"] = err(libc.unlinkat(dfd, b"hard2", 0))
out["unlink_missing"] = err(libc.unlink(b"/tmp/bw/missing"))
out["memfd"] = os.memfd_create("bw-memfd-probe", 3)
"#,
    );
    let py = |kind: &str, what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        let v = t.one("python3", kind, what, pred).clone();
        assert_attributed(&v, &t.id);
        v
    };
    let (fd, dfd) = (t.out_i64("fd"), t.out_i64("dfd"));
    assert!(fd >= 3 && dfd >= 3, "{}", t.out);
    for key in ["chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "rename", "renameat"]
    {
        assert_eq!(t.out_i64(key), 0, "{key} failed in the container: {}", t.out);
    }

    // open
    let o = py("open", "open(/tmp/bw/probe)", &|v| v["path"] == "/tmp/bw/probe");
    assert_eq!(o["syscall"], "openat");
    assert_eq!(o["dirfd"], -100);
    assert_eq!(o["flags"], 0o1101, "O_WRONLY|O_CREAT|O_TRUNC: {}", brief(&o));
    assert_eq!(o["mode"], 0o640);
    assert_eq!(ret(&o), fd);
    assert_eq!(o["process"]["comm"], "python3");
    assert_eq!(o["record_flags"], 0);
    let o = py("open", "openat(dfd, probe)", &|v| v["path"] == "probe");
    assert_eq!((o["dirfd"].as_i64(), o["flags"].as_u64(), ret(&o)), (Some(dfd), Some(0), t.out_i64("rel")));
    let o = py("open", "open(/tmp/bw)", &|v| v["path"] == "/tmp/bw");
    assert_eq!((o["flags"].as_u64(), ret(&o)), (Some(0o200000), dfd));
    let o = py("open", "open(/tmp/bw/missing)", &|v| v["path"] == "/tmp/bw/missing");
    assert_eq!(ret(&o), ENOENT);
    assert_eq!(t.out_i64("missing"), ENOENT);
    let o = py("open", "openat2(/tmp/bw/o2)", &|v| v["path"] == "/tmp/bw/o2");
    assert_eq!((&o["syscall"], o["dirfd"].as_i64()), (&Value::from("openat2"), Some(-100)));
    assert_eq!(
        (&o["flags"], &o["mode"]),
        (&Value::from(0o101), &Value::from(0o604)),
        "from open_how: {}",
        brief(&o)
    );
    assert_eq!(ret(&o), t.out_i64("openat2"));
    assert!(ret(&o) >= 3, "{}", brief(&o));

    // chmod family
    let c = py("chmod", "chmod", &|v| v["syscall"] == "chmod");
    assert_eq!(
        (&c["path"], &c["mode"], &c["fd"], ret(&c)),
        (&Value::from("/tmp/bw/probe"), &Value::from(0o751), &Value::Null, 0)
    );
    let c = py("chmod", "fchmod", &|v| v["syscall"] == "fchmod");
    assert_eq!(
        (&c["path"], c["fd"].as_i64(), &c["mode"], ret(&c)),
        (&Value::Null, Some(fd), &Value::from(0o604), 0)
    );
    let c = py("chmod", "fchmodat", &|v| v["syscall"] == "fchmodat");
    assert_eq!((&c["path"], &c["mode"], ret(&c)), (&Value::from("/tmp/bw/probe"), &Value::from(0o600), 0));

    // chown family (-1 means "unchanged")
    let ids = |v: &Value| (v["uid"].as_i64().unwrap(), v["gid"].as_i64().unwrap());
    let c = py("chown", "chown", &|v| v["syscall"] == "chown");
    assert_eq!((&c["path"], ids(&c), ret(&c)), (&Value::from("/tmp/bw/probe"), (1234, 5678), 0));
    let c = py("chown", "fchown", &|v| v["syscall"] == "fchown");
    assert_eq!((&c["path"], c["fd"].as_i64(), ids(&c)), (&Value::Null, Some(fd), (2345, 6789)));
    let c = py("chown", "lchown", &|v| v["syscall"] == "lchown");
    assert_eq!((&c["path"], ids(&c)), (&Value::from("/tmp/bw/probe"), (-1, 99)));
    let c = py("chown", "fchownat", &|v| v["syscall"] == "fchownat");
    assert_eq!((&c["path"], ids(&c), ret(&c)), (&Value::from("/tmp/bw/probe"), (4321, 8765), 0));

    // rename family (the *at forms report the paths as passed, relative to their dirfd)
    let pair = |v: &Value, a: &str, b: &str| {
        (v[a].as_str().unwrap().to_string(), v[b].as_str().unwrap().to_string())
    };
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    let r = py("rename", "rename", &|v| v["syscall"] == "rename");
    assert_eq!((pair(&r, "from", "to"), ret(&r)), (s("/tmp/bw/probe", "/tmp/bw/renamed"), 0));
    let r = py("rename", "renameat", &|v| v["syscall"] == "renameat");
    assert_eq!((pair(&r, "from", "to"), ret(&r)), (s("/tmp/bw/renamed", "renamed2"), 0));
    let r = py("rename", "renameat2", &|v| v["syscall"] == "renameat2");
    assert_eq!((pair(&r, "from", "to"), ret(&r)), (s("renamed2", "/tmp/bw/final"), t.out_i64("renameat2")));

    // symlink / link
    let l = py("symlink", "symlink", &|v| v["syscall"] == "symlink");
    assert_eq!(
        (pair(&l, "target", "link"), ret(&l)),
        (s("/tmp/bw/final", "/tmp/bw/sym"), t.out_i64("symlink"))
    );
    let l = py("symlink", "symlinkat", &|v| v["syscall"] == "symlinkat");
    assert_eq!((pair(&l, "target", "link"), ret(&l)), (s("final", "sym2"), t.out_i64("symlinkat")));
    let l = py("link", "link", &|v| v["syscall"] == "link");
    assert_eq!((pair(&l, "from", "to"), ret(&l)), (s("/tmp/bw/final", "/tmp/bw/hard"), t.out_i64("link")));
    let l = py("link", "linkat", &|v| v["syscall"] == "linkat");
    assert_eq!((pair(&l, "from", "to"), ret(&l)), (s("/tmp/bw/final", "hard2"), t.out_i64("linkat")));
    for key in ["renameat2", "symlink", "symlinkat", "link", "linkat", "unlink", "unlinkat"] {
        assert_eq!(t.out_i64(key), 0, "{key} failed in the container: {}", t.out);
    }

    // unlink family
    let u = py("unlink", "unlink", &|v| v["path"] == "/tmp/bw/hard");
    assert_eq!((&u["syscall"], ret(&u)), (&Value::from("unlink"), 0));
    let u = py("unlink", "unlinkat", &|v| v["path"] == "hard2");
    assert_eq!((&u["syscall"], ret(&u)), (&Value::from("unlinkat"), 0));
    let u = py("unlink", "unlink of a missing file", &|v| v["path"] == "/tmp/bw/missing");
    assert_eq!(ret(&u), ENOENT);

    // memfd_create (MFD_CLOEXEC | MFD_ALLOW_SEALING)
    let m = py("memfd", "memfd_create", &|v| v["name"] == "bw-memfd-probe");
    assert_eq!((&m["flags"], ret(&m)), (&Value::from(3), t.out_i64("memfd")));
    assert!(ret(&m) >= 3);
    d.stop();
}
