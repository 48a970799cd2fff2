//! Benign workloads in real containers raise no alert: package-manager
//! writes below /usr/lib, a web server and its client, a database-like
//! writer, exec health checks, DNS lookups, `id`/`whoami`, log rotation, and
//! the runtime's own activity (runc's re-exec from a memfd, containerd's
//! shim) around every one of them. No alert at all is allowed: the
//! "Shell spawned in a container" Notice is for interactive shells, and health
//! checks run `sh -c`.

use std::time::Duration;

use serde_json::Value;

use crate::probe::{PY_PROLOGUE, T, wait_exited};
use crate::rule_triggers::{DAEMON_ARGS, TRIGGER_PROLOGUE, TempDir, alert_brief};
use crate::support::*;

/// The benign containers run so far and what they raised.
struct Benign<'a> {
    ctrd: &'a Containerd,
    d: &'a Daemon,
    failures: Vec<String>,
}

impl Benign<'_> {
    /// Run `python3 -c <prologues + body>` (with extra `ctr run` flags) to
    /// completion; the workload must succeed.
    fn python(&mut self, what: &str, flags: &[&str], body: &str) -> String {
        let script = format!("{PY_PROLOGUE}{TRIGGER_PROLOGUE}\n{body}\nprint(json.dumps(out), flush=True)\n");
        self.command(what, flags, &["python3", "-c", &script])
    }

    fn command(&mut self, what: &str, flags: &[&str], args: &[&str]) -> String {
        let id = random_container_id();
        let out = self.ctrd.run_with(&id, &docker_cgroup(&id), flags, args, T);
        assert!(out.success(), "benign workload {what:?} failed: {out}");
        wait_exited(self.d, &id);
        self.check(what, &id);
        id
    }

    /// The daemon saw an event of container `id` matching `pred` (so "no
    /// alert" means the rules judged the activity, not that it was missed).
    fn saw(&mut self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) {
        if !self.d.container_events(id).iter().any(pred) {
            self.failures.push(format!("[{what}] container {id}: no such event was reported"));
        }
    }

    /// No alert at all for container `id`.
    fn check(&mut self, what: &str, id: &str) {
        let bad: Vec<String> = self
            .d
            .container_alerts(id)
            .iter()
            .map(|a| format!("{}\n      {}", alert_brief(a), a["output_fields"]))
            .collect();
        if !bad.is_empty() {
            self.failures.push(format!("[{what}] container {id}:\n    {}", bad.join("\n    ")));
        }
    }
}

#[test]
fn benign_workloads_raise_no_alerts() {
    let ctrd = Containerd::start();
    let d = Daemon::start(DAEMON_ARGS);
    let mut b = Benign { ctrd: &ctrd, d: &d, failures: Vec::new() };

    // dpkg and pip installing a package below /usr/lib (a writable
    // directory bound over /usr/lib/python3/dist-packages: the container's
    // /usr is the host's, read-only): temporary file, fsync, chmod, rename
    // into place, removal of an old file; dpkg's status database too. The
    // installers are python run through symlinks, so their process name is
    // the package manager's.
    let site = TempDir::new("bw-benign-site");
    let mount = format!("type=bind,src={},dst=/usr/lib/python3/dist-packages,options=rbind:rw", site.path());
    let pm = b.python(
        "package manager",
        &["--mount", &mount],
        r#"
install = r'''
import os, sys
root = "/usr/lib/python3/dist-packages/bwpkg_" + sys.argv[1]
os.makedirs(root, exist_ok=True)
for name in ["__init__.py", "core.py", "old.py"]:
    tmp = root + "/" + name + ".dpkg-new"
    with open(tmp, "w") as f:
        f.write("x = 1\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, root + "/" + name)
os.unlink(root + "/old.py")
os.makedirs("/var/lib/dpkg", exist_ok=True)
with open("/var/lib/dpkg/status-new", "w") as f:
    f.write("Package: bwpkg\n")
os.rename("/var/lib/dpkg/status-new", "/var/lib/dpkg/status")
'''
for pm in ["dpkg", "pip3"]:
    out[pm] = subprocess.run([named(pm, "/usr/bin/python3"), "-c", install, pm], check=True).returncode
out["files"] = sorted(os.listdir("/usr/lib/python3/dist-packages/bwpkg_dpkg"))
"#,
    );
    let installed = std::path::Path::new(site.path()).join("bwpkg_pip3/core.py");
    assert!(installed.exists(), "the installer did not write through the bind mount");
    for comm in ["dpkg", "pip3"] {
        let dir = format!("/usr/lib/python3/dist-packages/bwpkg_{comm}/");
        b.saw(&pm, &format!("{comm} writes below /usr/lib"), |v| {
            v["process"]["comm"] == comm
                && v["kind"] == "open"
                && v["path"].as_str().is_some_and(|p| p.starts_with(&dir))
        });
        b.saw(&pm, &format!("{comm} renames below /usr/lib"), |v| {
            v["process"]["comm"] == comm
                && v["kind"] == "rename"
                && v["to"].as_str().is_some_and(|p| p.starts_with(&dir))
        });
    }

    // A web server on 127.0.0.1:8080 and a client fetching pages from it.
    let web = b.python(
        "web server",
        &[],
        r#"
import urllib.request
os.makedirs("/tmp/www")
with open("/tmp/www/index.html", "w") as f:
    f.write("<h1>hello</h1>\n")
srv = subprocess.Popen([sys.executable, "-m", "http.server", "8080", "--bind", "127.0.0.1",
                        "--directory", "/tmp/www"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
body = None
for _ in range(200):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:8080/index.html", timeout=2).read()
        break
    except OSError:
        time.sleep(0.02)
for _ in range(5):
    assert urllib.request.urlopen("http://127.0.0.1:8080/", timeout=2).status == 200
srv.terminate()
srv.wait()
assert body == b"<h1>hello</h1>\n", body
out["body"] = body.decode()
"#,
    );

    b.saw(&web, "web server listens", |v| v["kind"] == "listen" && v["process"]["comm"] == "python3");
    b.saw(&web, "web server accepts", |v| v["kind"] == "accept" && v["ret"].as_i64() >= Some(0));

    // A database: write-ahead log, fsync, atomic replace of the table file,
    // directory fsync, checkpoint (log truncated).
    let db = b.python(
        "database",
        &[],
        r#"
db = "/var/lib/db"
os.makedirs(db)
wal = open(db + "/wal.log", "ab")
for i in range(20):
    wal.write(b"insert %d\n" % i)
    wal.flush()
    os.fsync(wal.fileno())
    with open(db + "/table.db.tmp", "wb") as f:
        f.write(b"rows=%d\n" % (i + 1))
        os.fsync(f.fileno())
    os.rename(db + "/table.db.tmp", db + "/table.db")
    dfd = os.open(db, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
wal.close()
open(db + "/wal.log", "wb").close()  # checkpoint
with open(db + "/table.db") as f:
    out["table"] = f.read().strip()
"#,
    );

    b.saw(&db, "database replaces its table", |v| v["kind"] == "rename" && v["to"] == "/var/lib/db/table.db");

    // Exec health checks against a running service, as a kubelet exec probe does.
    let id = random_container_id();
    let c = ctrd.run_detached(&id, &docker_cgroup(&id), &["sh", "-c", "touch /tmp/ok; exec sleep 60"]);
    for i in 0..5 {
        c.exec(&format!("health-{i}"), &["sh", "-c", "test -f /tmp/ok"], Duration::from_secs(10))
            .assert_success();
    }
    drop(c);
    wait_exited(&d, &id);
    b.check("health checks", &id);

    // Name resolution: getaddrinfo through /etc/hosts, and a DNS query over
    // UDP to port 53 (nobody answers in the container's network namespace).
    let dns = b.python(
        "dns",
        &[],
        r#"
out["localhost"] = sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80)})
out["byname"] = socket.gethostbyname("localhost")
query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00" + struct.pack(">HH", 1, 1)
out["sendto"] = udp_send("127.0.0.1", 53, query)
assert out["sendto"] == len(query), out
"#,
    );

    b.saw(&dns, "DNS query", |v| v["kind"] == "sendto" && v["addr"]["port"] == 53);

    b.command("id", &[], &["id"]);
    b.command("whoami", &[], &["whoami"]);

    // logrotate (python run through a symlink of that name): rename
    // rotation with removal of the oldest log, then copytruncate.
    let lr = b.python(
        "log rotation",
        &[],
        r#"
os.makedirs("/var/log", exist_ok=True)
rotate = r'''
import os, shutil
log = "/var/log/app.log"
if os.path.exists(log + ".2"):
    os.unlink(log + ".2")
if os.path.exists(log + ".1"):
    os.rename(log + ".1", log + ".2")
os.rename(log, log + ".1")
open(log, "a").close()
shutil.copyfile(log + ".1", log + ".1.copy")
open(log + ".1", "w").close()  # copytruncate
'''
for i in range(3):
    with open("/var/log/app.log", "a") as f:
        f.write("request %d\n" % i)
    subprocess.run([named("logrotate", "/usr/bin/python3"), "-c", rotate], check=True)
out["logs"] = sorted(os.listdir("/var/log"))
"#,
    );

    b.saw(&lr, "logrotate removes the oldest log", |v| {
        v["process"]["comm"] == "logrotate" && v["kind"] == "unlink" && v["path"] == "/var/log/app.log.2"
    });
    b.saw(&lr, "logrotate truncates (copytruncate)", |v| {
        v["process"]["comm"] == "logrotate"
            && v["kind"] == "open"
            && v["path"] == "/var/log/app.log.1"
            && v["flags"].as_u64().is_some_and(|f| f & 0o1000 != 0)
    });

    // The runtime around all of the above: no host alert from runc,
    // containerd, its shim or ctr.
    let runtime: Vec<String> = d
        .lines()
        .iter()
        .filter(|v| v.get("rule").is_some() && v["output_fields"]["boxwatch.container.full_id"].is_null())
        .filter(|v| {
            let name = v["output_fields"]["proc.name"].as_str().unwrap_or("");
            name.starts_with("runc") || name.starts_with("containerd") || name == "ctr"
        })
        .map(|v: &Value| alert_brief(v))
        .collect();
    if !runtime.is_empty() {
        b.failures.push(format!("[runtime] host alerts from the runtime:\n    {}", runtime.join("\n    ")));
    }
    assert!(
        b.failures.is_empty(),
        "benign workloads raised alerts (none is expected):\n{}",
        b.failures.join("\n")
    );
    d.stop();
}
