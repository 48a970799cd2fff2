//! What a detector sees of one event: the event and what the daemon knows around it.

use boxwatch_model::{ContainerRef, Event};

/// Everything a rule may look at: the event and what the daemon knows around it.
/// Build with [`Input::new`] and set what is known.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub event: &'a Event,
    /// The event's container; `None` for host processes.
    pub container: Option<&'a ContainerRef>,
    pub container_name: Option<&'a str>,
    /// Image reference as the runtime reports it (`docker.io/library/nginx:1.25`).
    pub image: Option<&'a str>,
    pub pod_name: Option<&'a str>,
    pub pod_namespace: Option<&'a str>,
    pub privileged: bool,
    /// Executable of the process (from its last exec); exec events use their own filename.
    pub exe: Option<&'a str>,
    /// Arguments of the process (from its last exec); exec events use their own argv.
    pub argv: &'a [String],
    /// Ancestor names (comm), nearest first: `ancestors[0]` is the parent.
    pub ancestors: &'a [&'a str],
    pub parent_exe: Option<&'a str>,
    /// How the process entered its container: `container_init`, `exec_into:<via>`.
    pub entry: Option<&'a str>,
    /// On an exec: stdin or stdout of the new program is a socket (reverse shells).
    pub stdio_is_socket: bool,
    /// Wall-clock time of the event, Unix ns (alert time).
    pub wall_ns: u64,
    /// Event number, 1-based (Falco's `evt.num`).
    pub evt_num: u64,
    /// Parent's arguments (`proc.pcmdline`, `proc.pexe`).
    pub parent_argv: &'a [String],
    /// Ancestors' executables, nearest first, `""` when unknown (`proc.aexepath[N]`).
    pub ancestor_exes: &'a [&'a str],
    /// User and group names, from the container's own /etc/passwd and /etc/group.
    pub user_name: Option<&'a str>,
    pub group_name: Option<&'a str>,
    /// Controlling terminal (`tty_nr`, 0 for none), audit login uid (-1 for none) and working
    /// directory of the process, as read when it exec'd.
    pub tty: Option<i64>,
    pub loginuid: Option<i64>,
    pub cwd: Option<&'a str>,
    pub hostname: &'a str,
}

impl<'a> Input<'a> {
    /// An input knowing only the event.
    pub fn new(event: &'a Event) -> Input<'a> {
        Input {
            event,
            container: None,
            container_name: None,
            image: None,
            pod_name: None,
            pod_namespace: None,
            privileged: false,
            exe: None,
            argv: &[],
            ancestors: &[],
            parent_exe: None,
            entry: None,
            stdio_is_socket: false,
            wall_ns: 0,
            evt_num: 1,
            parent_argv: &[],
            ancestor_exes: &[],
            user_name: None,
            group_name: None,
            tty: None,
            loginuid: None,
            cwd: None,
            hostname: "",
        }
    }
}
