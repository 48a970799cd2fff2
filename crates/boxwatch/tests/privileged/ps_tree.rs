//! `boxwatch ps`: every container's live processes as a tree under the
//! host-side runtime processes that started them, read from the cgroup tree
//! and /proc (no daemon).

use std::process::{Command, Output};

use crate::lineage::{child_of, shim_of};
use crate::probe::T;
use crate::support::*;

const INIT: [&str; 3] = ["sh", "-c", "sleep 300; exit 0"];

fn ps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boxwatch")).arg("ps").args(args).output().expect("run boxwatch ps")
}

/// The lines of the section whose header is `header` (the header excluded).
#[track_caller]
fn section<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = out.lines().skip_while(|l| *l != header);
    assert_eq!(lines.next(), Some(header), "no section {header:?} in:\n{out}");
    lines.take_while(|l| l.starts_with("  ")).collect()
}

/// The one line of `lines` for `pid` and its depth in the tree (0: a root).
#[track_caller]
fn line_of<'a>(lines: &[&'a str], pid: u32) -> (usize, usize, &'a str) {
    let hits: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().split(' ').next() == Some(pid.to_string().as_str()))
        .map(|(i, l)| (i, *l))
        .collect();
    assert_eq!(hits.len(), 1, "lines for pid {pid}:\n{}", lines.join("\n"));
    let (i, l) = hits[0];
    let indent = l.len() - l.trim_start().len();
    assert!(indent >= 2 && indent % 2 == 0, "{l:?}");
    (i, indent / 2 - 1, l.trim_start())
}

fn exe(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap().to_string_lossy().into_owned()
}

/// The section of container `c` in `out`: header exact, init under
/// containerd-shim [host], sleep under the init, then (`exec`) the process
/// exec'd into the container (`sleep 301`) under the shim; only host
/// processes above the shim.
#[track_caller]
fn assert_section(out: &str, c: &Container, runtime: &str, pod: Option<&str>, exec: Option<u32>) {
    let pod = pod.map(|p| format!(" pod={p}")).unwrap_or_default();
    let header = format!("container {} runtime={runtime}{pod} cgroup={}", &c.id[..12], c.cgroup_path);
    let lines = section(out, &header);
    let (init, shim) = (c.pid(), shim_of(c.pid()));
    let sleep = child_of(init, "sleep");
    let (si, sd, sl) = line_of(&lines, shim);
    let (ii, id, il) = line_of(&lines, init);
    let (li, ld, ll) = line_of(&lines, sleep);
    assert!(sl.starts_with(&format!("{shim} containerd-shim {} ", exe(shim))), "{sl}");
    assert!(sl.contains(&format!(" -id {} ", c.id)) && sl.ends_with("  [host]"), "{sl}");
    assert_eq!(il, format!("{init} sh {} sh -c 'sleep 300; exit 0'  [init]", exe(init)));
    assert_eq!(ll, format!("{sleep} sleep {} sleep 300", exe(sleep)));
    assert_eq!((id, ld), (sd + 1, sd + 2), "depths of shim/init/sleep:\n{}", lines.join("\n"));
    assert!(si < ii && ii < li, "order of shim/init/sleep:\n{}", lines.join("\n"));
    let last = if let Some(x) = exec {
        let (xi, xd, xl) = line_of(&lines, x);
        assert_eq!(xl, format!("{x} sleep {} sleep 301  [exec: ctr task exec]", exe(x)));
        assert_eq!((xi, xd), (li + 1, sd + 1), "exec'd process:\n{}", lines.join("\n"));
        xi
    } else {
        li
    };
    assert_eq!(lines.len(), last + 1, "nothing else below the shim:\n{}", lines.join("\n"));
    for (i, l) in lines[..si].iter().enumerate() {
        assert!(l.ends_with("  [host]"), "line {i} above the shim is not a host process: {l}");
        assert_eq!(line_of(&lines, l.trim_start().split(' ').next().unwrap().parse().unwrap()).1, i);
    }
}

#[test]
fn ps_shows_each_container_under_its_host_runtime() {
    let ctrd = Containerd::start();
    let pod = random_pod_uid();
    let (id_d, id_k) = (random_container_id(), random_container_id());
    let docker = ctrd.run_detached(&id_d, &docker_cgroup(&id_d), &INIT);
    let kube = ctrd.run_detached(&id_k, &kubepods_cgroupfs_cgroup(&pod, &id_k), &INIT);
    docker.exec_with("bw-ps-exec", &["--detach"], &["sleep", "301"], T).assert_success();
    // Once `runc exec` is gone, the exec'd process is the shim's child.
    let exec = child_of(shim_of(docker.pid()), "sleep");

    let all = ps(&[]);
    let text = String::from_utf8_lossy(&all.stdout).into_owned();
    assert!(all.status.success(), "{all:?}");
    assert_section(&text, &docker, "docker", None, Some(exec));
    assert_section(&text, &kube, "kubernetes", Some(&pod), None);

    // A prefix selects one container.
    let one = ps(&[&id_k[..10]]);
    let text = String::from_utf8_lossy(&one.stdout).into_owned();
    assert!(one.status.success(), "{one:?}");
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("container ")).collect();
    assert_eq!(headers.len(), 1, "{text}");
    assert_section(&text, &kube, "kubernetes", Some(&pod), None);
    assert!(!text.contains(&id_d[..12]), "{text}");

    // An unknown prefix is an error.
    let unknown = format!("{}{}", &random_hex(8), "0");
    let none = ps(&[&unknown]);
    assert!(!none.status.success(), "ps {unknown}: {none:?}");
    assert!(none.stdout.is_empty(), "{none:?}");
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(err.contains(&format!("no container whose id starts with {unknown:?}")), "{err}");
}
