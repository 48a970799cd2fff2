//! A private containerd (own socket, root, state, runc root and fifo dir
//! under `STATE_BASE/<unique>`), the "hostusr" test image, and containers
//! run through `ctr` with docker/kubepods-style cgroup paths.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cgroups;
use crate::cleanup::*;
use crate::process::{RunOutput, quick, run_with_timeout};

/// The image every container runs: a ~100 KB rootfs (see mkimage.py) used
/// with the host's /usr bind-mounted read-only at /usr.
pub const IMAGE_NAME: &str = "docker.io/boxwatch/hostusr:test";
/// containerd namespace used by [`Containerd::start`].
pub const DEFAULT_NAMESPACE: &str = "boxwatch-test";
/// Parent of every private containerd's state directory. Directories left by
/// a crashed test process are cleaned up by the next [`Containerd::start`].
pub const STATE_BASE: &str = "/tmp/boxwatch-containerd";

/// Suffix of a state dir being deleted.
pub(super) const DEAD_SUFFIX: &str = ".dead";
const MKIMAGE_PY: &str = include_str!("mkimage.py");
const SYS_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SOCKET_WAIT: Duration = Duration::from_secs(10);
const CTR_TIMEOUT: Duration = Duration::from_secs(60);
const INSTALL_HINT: &str = "Install them as root with `scripts/install-deps.sh --test` \
     (Debian/Ubuntu: apt-get install -y containerd runc python3)";

#[derive(Debug)]
struct Tools {
    containerd: PathBuf,
    ctr: PathBuf,
    runc: PathBuf,
    python3: PathBuf,
}

/// State shared by a [`Containerd`] and the [`Container`]s it started (a
/// container may outlive its daemon: the daemon's `Drop` already killed it).
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    sock: PathBuf,
    namespace: String,
    tools: Tools,
    path_env: OsString,
    /// False once the daemon is being stopped: `ctr` would then spend its
    /// 10 s dial timeout on every call.
    daemon_up: AtomicBool,
    /// Containers started and not yet removed.
    live: Mutex<BTreeSet<String>>,
    /// Cgroup directories (all hierarchies) that did not exist before one of
    /// our containers needed them; removed (if empty) when the daemon is dropped.
    created_cgroups: Mutex<Vec<PathBuf>>,
}

/// A private containerd daemon (CRI disabled, unix socket in its own state
/// dir) with [`IMAGE_NAME`] imported. Dropping it removes every container it
/// still has, stops the daemon, removes the cgroup directories its containers
/// created (only if empty) and deletes its state.
///
/// Keep it on the test's stack (one per test); `Drop` does the cleanup.
#[derive(Debug)]
pub struct Containerd {
    shared: Arc<Shared>,
    child: Option<Child>,
    image: String,
    startup: Duration,
}

/// A detached container (`ctr run -d`). Dropping it SIGKILLs and removes the
/// task and container and rmdirs its cgroup in every hierarchy.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub cgroup_path: String,
    pid: u32,
    log_path: PathBuf,
    started: Duration,
    shared: Arc<Shared>,
}

// ---------------------------------------------------------------- helpers

fn path_env() -> OsString {
    let mut p = std::env::var_os("PATH").unwrap_or_default();
    if !p.is_empty() {
        p.push(":");
    }
    p.push(SYS_PATH);
    p
}

fn which(name: &str, path: &OsString) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

fn check_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "boxwatch privileged tests must run as root (euid is {euid}): they start containerd, \
         create cgroups and load BPF programs. Run e.g. `sudo -E cargo test ...`."
    );
}

fn find_tools(path: &OsString) -> Tools {
    let mut missing = Vec::new();
    let mut get = |name: &str| {
        which(name, path).unwrap_or_else(|| {
            missing.push(name.to_string());
            PathBuf::new()
        })
    };
    let containerd = get("containerd");
    let ctr = get("ctr");
    let runc = get("runc");
    let _shim = get("containerd-shim-runc-v2");
    // The image builder only needs a stdlib python3; prefer the distro one.
    let python3 = if Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        get("python3")
    };
    if !missing.is_empty() {
        panic!(
            "boxwatch privileged tests need real containers, but these programs are missing \
             from PATH ({}): {}. {INSTALL_HINT}",
            path.to_string_lossy(),
            missing.join(", ")
        );
    }
    Tools { containerd, ctr, runc, python3 }
}

// ----------------------------------------------------------------- Shared

impl Shared {
    fn ctr(&self) -> Command {
        let mut c = Command::new(&self.tools.ctr);
        c.env("PATH", &self.path_env)
            .arg("--address")
            .arg(&self.sock)
            .arg("--namespace")
            .arg(&self.namespace);
        c
    }

    fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    /// Remember which cgroup dirs `cgroup_path` will make runc create.
    fn note_cgroups(&self, cgroup_path: &str) {
        cgroups::validate_cgroup_path(cgroup_path);
        let _lock = RegistryLock::take();
        let missing = cgroups::missing_dirs(cgroup_path);
        if missing.is_empty() {
            return;
        }
        if let Ok(mut g) = std::fs::OpenOptions::new().create(true).append(true).open(registry_path()) {
            let mut buf = String::new();
            for d in &missing {
                buf.push_str(&format!("{}\n", d.display()));
            }
            let _ = g.write_all(buf.as_bytes());
        }
        let mut created = self.created_cgroups.lock().unwrap_or_else(|e| e.into_inner());
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("cgroups-created")).ok();
        for d in missing {
            if !created.contains(&d) {
                if let Some(f) = f.as_mut() {
                    let _ = writeln!(f, "{}", d.display());
                }
                created.push(d);
            }
        }
    }

    /// Kill (SIGKILL) and delete task and container; ignore errors. Falls
    /// back to runc if containerd could not do it (e.g. daemon already gone).
    fn remove_container(&self, id: &str) {
        if self.daemon_up.load(Ordering::SeqCst) && self.sock.exists() {
            quick(self.ctr().args(["task", "delete", "--force", id]));
            quick(self.ctr().args(["container", "delete", id]));
        }
        let runc_ns = self.runc_root().join(&self.namespace);
        if runc_ns.join(id).exists() {
            quick(Command::new(&self.tools.runc).arg("--root").arg(&runc_ns).args(["delete", "--force", id]));
        }
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    fn common_run_args(&self, cmd: &mut Command, cgroup_path: &str) {
        cmd.arg("--cgroup")
            .arg(cgroup_path)
            .arg("--runc-root")
            .arg(self.runc_root())
            .arg("--fifo-dir")
            .arg(self.dir.join("fifo"))
            .args(["--mount", "type=bind,src=/usr,dst=/usr,options=rbind:ro"]);
    }
}

// ------------------------------------------------------------- Containerd

impl Containerd {
    /// Starts a private containerd in namespace [`DEFAULT_NAMESPACE`] and
    /// imports [`IMAGE_NAME`]. Panics (never skips) if not root or if
    /// containerd/ctr/runc/python3 are missing.
    pub fn start() -> Containerd {
        Self::start_in_namespace(DEFAULT_NAMESPACE)
    }

    /// Like [`Containerd::start`] with another containerd namespace (e.g.
    /// "moby" or "k8s.io", which appear in the shim's command line).
    pub fn start_in_namespace(namespace: &str) -> Containerd {
        let t0 = Instant::now();
        check_root();
        let path_env = path_env();
        let tools = find_tools(&path_env);
        cgroups::cgroup2_mount();
        sweep_stale(&tools.runc);
        global_cgroup_cleanup(None);

        std::fs::create_dir_all(STATE_BASE).unwrap_or_else(|e| panic!("mkdir {STATE_BASE}: {e}"));
        let dir = PathBuf::from(STATE_BASE).join(unique_suffix());
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let me = std::process::id();
        std::fs::write(dir.join("owner"), format!("{me} {}\n", proc_starttime(me).unwrap_or(0)))
            .expect("write owner file");
        for sub in ["fifo", "runc", "logs", "pids"] {
            std::fs::create_dir(dir.join(sub)).expect("mkdir state subdir");
        }
        let sock = dir.join("containerd.sock");
        assert!(
            sock.as_os_str().len() + ".ttrpc".len() < 100,
            "socket path too long for a unix socket: {}",
            sock.display()
        );

        let shared = Arc::new(Shared {
            dir: dir.clone(),
            sock: sock.clone(),
            namespace: namespace.to_string(),
            tools,
            path_env,
            daemon_up: AtomicBool::new(true),
            live: Mutex::new(BTreeSet::new()),
            created_cgroups: Mutex::new(Vec::new()),
        });
        // From here on, a panic drops `this`, which cleans everything up.
        let mut this =
            Containerd { shared, child: None, image: IMAGE_NAME.to_string(), startup: Duration::ZERO };

        // Build the image archive while containerd boots.
        let py = dir.join("mkimage.py");
        std::fs::write(&py, MKIMAGE_PY).expect("write mkimage.py");
        let image_tar = dir.join("image.tar");
        let mut mk = Command::new(&this.shared.tools.python3);
        mk.arg(&py).arg(&image_tar).arg(IMAGE_NAME);
        let mk = std::thread::spawn(move || run_with_timeout(&mut mk, CTR_TIMEOUT, || {}));

        this.spawn_daemon();
        this.wait_for_socket();

        let mk = mk.join().expect("mkimage thread");
        assert!(mk.success(), "building the test image with mkimage.py failed: {mk}");
        let imp = run_with_timeout(
            this.shared.ctr().args(["images", "import"]).arg(&image_tar),
            CTR_TIMEOUT,
            || {},
        );
        assert!(
            imp.success(),
            "ctr images import failed: {imp}\ncontainerd log tail:\n{}",
            this.log_tail(30)
        );
        this.startup = t0.elapsed();
        this
    }

    fn spawn_daemon(&mut self) {
        let dir = &self.shared.dir;
        let cfg = dir.join("config.toml");
        let d = dir.display();
        std::fs::write(
            &cfg,
            format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#,
                sock = self.shared.sock.display()
            ),
        )
        .expect("write containerd config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("create containerd.log");
        let child = Command::new(&self.shared.tools.containerd)
            .arg("--config")
            .arg(&cfg)
            .env("PATH", &self.shared.path_env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.shared.tools.containerd.display()));
        let _ = std::fs::write(dir.join("containerd.pid"), format!("{}\n", child.id()));
        self.child = Some(child);
    }

    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + SOCKET_WAIT;
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                self.shared.daemon_up.store(false, Ordering::SeqCst);
                panic!(
                    "containerd exited during startup ({st}); log tail ({}):\n{}",
                    self.shared.dir.join("containerd.log").display(),
                    self.log_tail(40)
                );
            }
            if self.shared.sock.exists() && quick(self.shared.ctr().arg("version")).success() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "containerd did not serve {} within {SOCKET_WAIT:?}; log tail:\n{}",
                    self.shared.sock.display(),
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reference of the imported test image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Unix socket of this containerd (pass as `ctr --address`).
    pub fn address(&self) -> &Path {
        &self.shared.sock
    }

    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// State directory (containerd root/state, runc root, fifos, logs).
    pub fn state_dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Host pid of the containerd daemon.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How long [`Containerd::start`] took (daemon boot + image import).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.shared.dir.join("containerd.log"), n)
    }

    /// A `ctr` command already pointed at this daemon and namespace, for
    /// anything the helpers don't cover. Don't give it stdin (F6).
    pub fn ctr(&self) -> Command {
        self.shared.ctr()
    }

    /// `ctr run -d` of the test image with `--cgroup <cgroup_path>` and the
    /// host's /usr bind-mounted read-only. Returns once the task runs and
    /// its init has exec'd `args[0]`. Panics on failure.
    pub fn run_detached(&self, id: &str, cgroup_path: &str, args: &[&str]) -> Container {
        self.run_detached_with(id, cgroup_path, &[], args)
    }

    /// [`Containerd::run_detached`] with extra `ctr run` flags (e.g.
    /// `["--env", "A=b", "--user", "1000", "--privileged", "--cap-add", "CAP_BPF"]`).
    pub fn run_detached_with(
        &self,
        id: &str,
        cgroup_path: &str,
        ctr_flags: &[&str],
        args: &[&str],
    ) -> Container {
        let t0 = Instant::now();
        let sh = &self.shared;
        assert!(!id.is_empty(), "empty container id");
        sh.note_cgroups(cgroup_path);
        sh.live.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string());
        let pid_file = sh.dir.join("pids").join(id);
        let log_path = sh.dir.join("logs").join(format!("{id}.log"));
        let mut cmd = sh.ctr();
        cmd.args(["run", "--detach"]);
        sh.common_run_args(&mut cmd, cgroup_path);
        cmd.arg("--log-uri")
            .arg(format!("file://{}", log_path.display()))
            .arg("--pid-file")
            .arg(&pid_file)
            .args(ctr_flags)
            .arg(&self.image)
            .arg(id)
            .args(args);
        let out = run_with_timeout(&mut cmd, CTR_TIMEOUT, || {
            quick(sh.ctr().args(["task", "kill", "--signal", "KILL", id]));
        });
        let fail = |why: &str| -> ! {
            sh.remove_container(id);
            cgroups::rmdir_leaf(cgroup_path);
            panic!(
                "ctr run -d {id} (cgroup {cgroup_path}, args {args:?}) failed: {why}\n{out}\ncontainerd log tail:\n{}",
                self.log_tail(20)
            )
        };
        if !out.success() {
            fail("ctr exited non-zero");
        }
        let pid = match std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok()) {
            Some(p) if p > 0 => p,
            _ => fail("no pid in --pid-file"),
        };
        // The task is started; wait until runc's init has exec'd the payload
        // (comm changes from "runc:[2:INIT]"), so callers see the real program.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                Ok(comm) if !comm.starts_with("runc") => break,
                Ok(_) => {}
                Err(_) => fail(&format!(
                    "init pid {pid} vanished right after start (see Container logs at {})",
                    log_path.display()
                )),
            }
            if Instant::now() >= deadline {
                fail("init did not exec within 10 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Container {
            id: id.to_string(),
            cgroup_path: cgroup_path.to_string(),
            pid,
            log_path,
            started: t0.elapsed(),
            shared: Arc::clone(sh),
        }
    }

    /// `ctr run --rm` of the test image to completion (cgroup and /usr mount
    /// as for [`Containerd::run_detached`]). Stdin is never fed (the command
    /// must not read it: use `</dev/null` in a shell if unsure). On timeout
    /// the task and `ctr` are SIGKILLed and the container removed;
    /// `timed_out` is then set and `status` is -1.
    pub fn run(&self, id: &str, cgroup_path: &str, args: &[&str], timeout: Duration) -> RunOutput {
        self.run_with(id, cgroup_path, &[], args, timeout)
    }

    /// [`Containerd::run`] with extra `ctr run` flags.
    pub fn run_with(
        &self,
        id: &str,
        cgroup_path: &str,
        ctr_flags: &[&str],
        args: &[&str],
        timeout: Duration,
    ) -> RunOutput {
        let sh = &self.shared;
        assert!(!id.is_empty(), "empty container id");
        sh.note_cgroups(cgroup_path);
        sh.live.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string());
        let mut cmd = sh.ctr();
        cmd.args(["run", "--rm"]);
        sh.common_run_args(&mut cmd, cgroup_path);
        cmd.args(ctr_flags).arg(&self.image).arg(id).args(args);
        let out = run_with_timeout(&mut cmd, timeout, || {
            quick(sh.ctr().args(["task", "kill", "--signal", "KILL", id]));
        });
        // `ctr run --rm` removed the container itself unless it was killed
        // or failed ("ctr: ..." on stderr).
        if out.timed_out || (out.status != 0 && out.stderr.contains("ctr: ")) {
            sh.remove_container(id);
        } else {
            sh.live.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        }
        cgroups::rmdir_leaf(cgroup_path);
        out
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let sh = &self.shared;
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) && sh.sock.exists() {
                let mut ids: BTreeSet<String> = sh.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let ls = quick(sh.ctr().args(["containers", "list", "--quiet"]));
                ids.extend(ls.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
                for id in &ids {
                    sh.remove_container(id);
                }
            }
            sh.daemon_up.store(false, Ordering::SeqCst);
            if matches!(child.try_wait(), Ok(None)) {
                kill(child.id(), libc::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        sh.daemon_up.store(false, Ordering::SeqCst);
        let created = sh.created_cgroups.lock().unwrap_or_else(|e| e.into_inner()).clone();
        cleanup_state_dir(&sh.dir, Some(&sh.tools.runc), &created);
        global_cgroup_cleanup(Some(&sh.dir));
    }
}

// -------------------------------------------------------------- Container

impl Container {
    /// Host pid of the container's init process (from `ctr run --pid-file`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// cgroup2 id of the container's cgroup: the inode of
    /// `<cgroup2 mount>/<cgroup_path>`, which is what
    /// `bpf_get_current_cgroup_id()` returns for its processes.
    pub fn cgroup_id(&self) -> u64 {
        let p = cgroups::join(&cgroups::cgroup2_mount(), &self.cgroup_path);
        std::fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display())).ino()
    }

    /// Whether the init process still exists on the host.
    pub fn is_alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// How long `run_detached` took.
    pub fn start_time(&self) -> Duration {
        self.started
    }

    /// Everything the init process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `ctr task exec --exec-id <exec_id>` to completion, with a SIGKILL
    /// timeout. Exec ids must be unique among running execs of this task.
    pub fn exec(&self, exec_id: &str, args: &[&str], timeout: Duration) -> RunOutput {
        self.exec_with(exec_id, &[], args, timeout)
    }

    /// [`Container::exec`] with extra `ctr task exec` flags (e.g. `["--user", "1000"]`, `["--cwd", "/tmp"]`).
    pub fn exec_with(
        &self,
        exec_id: &str,
        ctr_flags: &[&str],
        args: &[&str],
        timeout: Duration,
    ) -> RunOutput {
        let sh = &self.shared;
        let mut cmd = sh.ctr();
        cmd.args(["task", "exec", "--exec-id", exec_id, "--fifo-dir"])
            .arg(sh.dir.join("fifo"))
            .args(ctr_flags)
            .arg(&self.id)
            .args(args);
        let out = run_with_timeout(&mut cmd, timeout, || {
            quick(sh.ctr().args(["task", "kill", "--signal", "KILL", "--exec-id", exec_id, &self.id]));
        });
        if out.timed_out {
            quick(sh.ctr().args(["task", "delete", "--exec-id", exec_id, &self.id]));
        }
        out
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.shared.remove_container(&self.id);
        cgroups::rmdir_leaf(&self.cgroup_path);
    }
}
