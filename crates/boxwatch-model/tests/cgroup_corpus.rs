//! Golden corpus of `/proc/<pid>/cgroup` samples (`testdata/cgroup/*.cgroup`), checked
//! against `testdata/cgroup/expected.json` (file name → serialized `ContainerRef`, or `null`),
//! plus a deterministic "no panic, invariants hold" test over random and mutated inputs.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use boxwatch_model::container::{
    ContainerRef, Runtime, cgroup_path_from_proc, container_from_proc, parse_cgroup_path,
};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cgroup")
}

/// Every fixture, sorted by file name: (name, content).
fn fixtures() -> Vec<(String, String)> {
    let dir = corpus_dir();
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("cgroup") {
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_owned();
        let content = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        out.push((name, content));
    }
    out.sort();
    out
}

fn expectations() -> BTreeMap<String, Value> {
    let path = corpus_dir().join("expected.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json is a JSON object")
}

#[test]
fn corpus_matches_expectations() {
    let fixtures = fixtures();
    let mut expected = expectations();
    assert!(fixtures.len() >= 30, "corpus too small: {}", fixtures.len());
    let mut failures = Vec::new();
    for (name, content) in &fixtures {
        let Some(want) = expected.remove(name) else {
            failures.push(format!("{name}: no entry in expected.json"));
            continue;
        };
        let got = container_from_proc(content);
        let got_json = serde_json::to_value(&got).expect("serialize");
        if got_json != want {
            failures.push(format!("{name}:\n  want {want}\n  got  {got_json}"));
        }
        // The single-line path chosen by `cgroup_path_from_proc` must agree whenever it names a
        // container on its own (the v1 fallback may only add, never change, an answer).
        if let Some(direct) = cgroup_path_from_proc(content).and_then(parse_cgroup_path)
            && Some(&direct) != got.as_ref()
        {
            failures.push(format!("{name}: direct parse {direct:?} differs from {got:?}"));
        }
    }
    for stale in expected.keys() {
        failures.push(format!("{stale}: expectation without a fixture file"));
    }
    assert!(failures.is_empty(), "{} corpus failure(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn corpus_covers_every_runtime_and_negatives() {
    let expected = expectations();
    let mut runtimes: Vec<&str> =
        expected.values().filter_map(|v| v.get("runtime").and_then(Value::as_str)).collect();
    runtimes.sort_unstable();
    runtimes.dedup();
    assert_eq!(
        runtimes,
        ["containerd", "cri-containerd", "crio", "docker", "github-actions", "kubernetes", "lxc", "podman"]
    );
    assert!(expected.values().filter(|v| v.is_null()).count() >= 10);
    assert!(expected.values().any(|v| v.get("nested") == Some(&Value::Bool(true))));
}

/// Ids for the hand-written cases below.
const ID: &str = "4be7496d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a4f";
const UID: &str = "bba0bf52_cd32_4976_9fd7_194c518461bb";
const UID_DASHED: &str = "bba0bf52-cd32-4976-9fd7-194c518461bb";

#[test]
fn negatives() {
    let pod = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice");
    for path in [
        "",
        "/",
        "//",
        "/init.scope",
        "/system.slice/containerd.service",
        "/system.slice/docker.service",
        "/user.slice/user-1000.slice/session-3.scope",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/app-dbus.scope",
        "/kubepods.slice",
        &pod,
        &format!("/kubepods/besteffort/pod{UID_DASHED}"),
        &format!("{pod}/crio-conmon-{ID}.scope"),
        &format!("/machine.slice/libpod-conmon-{ID}.scope"),
        "/libpod_parent/conmon",
        "/foo/bar.service",
        &format!("/docker/{}", &ID[1..]),
        &format!("/docker/{ID}0"),
        &format!("docker/{ID}"),
        &format!("/system.slice/docker-{ID}.scope.bak"),
        &format!("/docker/{ID}/"),
        &format!("/{ID}"),
        &format!("/a:b:{ID}"),
    ] {
        assert_eq!(parse_cgroup_path(path), None, "{path:?}");
    }
}

#[test]
fn runtime_names_match_serde() {
    for rt in [
        Runtime::Docker,
        Runtime::Containerd,
        Runtime::CriContainerd,
        Runtime::Crio,
        Runtime::Podman,
        Runtime::Lxc,
        Runtime::GithubActions,
        Runtime::Kubernetes,
    ] {
        let json = serde_json::to_string(&rt).expect("serialize");
        assert_eq!(json, format!("\"{}\"", rt.as_str()));
        assert_eq!(rt.to_string(), rt.as_str());
    }
}

/// xorshift64*: deterministic, dependency-free pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "/",
    "/",
    "/",
    "docker",
    "docker-",
    ".scope",
    ".slice",
    ".service",
    "cri-containerd-",
    ":cri-containerd:",
    ":crio:",
    ":",
    "crio-",
    "crio-conmon-",
    "libpod-",
    "libpod-conmon-",
    "container",
    "init",
    "kubepods",
    "kubepods-besteffort-pod",
    "pod",
    "besteffort",
    "burstable",
    "lxc",
    "lxc.payload",
    "lxc.payload.",
    "lxc.monitor.",
    "actions_job",
    "default",
    "moby",
    "k8s.io",
    "buildkit",
    "machine.slice",
    "system.slice",
    "user@1000.service",
    "_",
    "-",
    ".",
    "0123456789abcdef",
    "0123456789ABCDEF",
    "bba0bf52_cd32_4976_9fd7_194c518461bb",
    "bba0bf52-cd32-4976-9fd7-194c518461bb",
    "é",
    "€",
    "\u{10FFFF}",
    "\0",
    "\n",
    " (deleted)",
    "",
];

const HEX64: &str = ID;

fn random_path(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(12) {
        if rng.below(8) == 0 {
            s.push_str(&HEX64[..rng.below(66).min(64)]);
        } else {
            s.push_str(rng.pick(TOKENS));
        }
    }
    s
}

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(3) {
        let at = rng.below(chars.len() + 1);
        match rng.below(6) {
            0 => chars.truncate(at),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            2 => chars.splice(at..at, rng.pick(TOKENS).chars()).for_each(drop),
            3 => chars.insert(at, ['/', ':', 'é', 'A', 'f', '0', '\0', '_'][rng.below(8)]),
            4 if at < chars.len() => chars[at] = chars[at].to_ascii_uppercase(),
            _ => {
                let end = (at + rng.below(70)).min(chars.len());
                let dup: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, dup).for_each(drop);
            }
        }
    }
    chars.into_iter().collect()
}

/// Properties every successful parse must have.
fn check_invariants(path: &str, c: &ContainerRef) {
    let ctx = || format!("path {path:?} -> {c:?}");
    assert!(path.starts_with('/'), "{}", ctx());
    let rest = path.strip_prefix(c.cgroup_root.as_str()).unwrap_or_else(|| panic!("{}", ctx()));
    assert!(rest.is_empty() || rest.starts_with('/'), "{}", ctx());
    assert!(c.owns_cgroup(path), "{}", ctx());
    assert!(!c.id.is_empty() && c.id.starts_with(c.short_id()), "{}", ctx());
    assert!(c.short_id().chars().count() <= 12, "{}", ctx());
    let named = matches!(c.runtime, Runtime::Lxc | Runtime::Containerd);
    if !named {
        assert!(
            c.id.len() == 64 && c.id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{}",
            ctx()
        );
    }
    if let Some(uid) = &c.pod_uid {
        assert!(!uid.contains('_') && *uid == uid.to_ascii_lowercase(), "{}", ctx());
    }
    // A sub-cgroup below a container belongs to the same container.
    let sub = format!("{path}/init.scope");
    assert_eq!(parse_cgroup_path(&sub).as_ref(), Some(c), "sub-cgroup of {}", ctx());
    // The container's own cgroup names the same container (not nested at that level).
    let root = parse_cgroup_path(&c.cgroup_root).unwrap_or_else(|| panic!("root of {}", ctx()));
    assert_eq!(
        (&root.id, root.runtime, &root.pod_uid, &root.namespace, root.nested),
        (&c.id, c.runtime, &c.pod_uid, &c.namespace, false),
        "root of {}",
        ctx()
    );
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut seeds: Vec<String> = fixtures()
        .iter()
        .filter_map(|(_, content)| cgroup_path_from_proc(content).map(str::to_owned))
        .collect();
    seeds.push(format!("/system.slice/docker-{HEX64}.scope"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut hits = 0usize;
    for i in 0..60_000 {
        let path = if i % 2 == 0 {
            random_path(&mut rng)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        if let Some(c) = parse_cgroup_path(&path) {
            hits += 1;
            check_invariants(&path, &c);
        }
    }
    // The generator must actually reach the matching code, not only reject.
    assert!(hits > 1_000, "only {hits} random inputs parsed");
}

#[test]
fn random_proc_files_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let controllers = ["", "memory", "pids", "cpuset", "cpu,cpuacct", "name=systemd", "x:y"];
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..rng.below(6) {
            match rng.below(4) {
                0 => text.push_str(&random_path(&mut rng)),
                _ => {
                    let id = rng.below(13);
                    let ctl = controllers[rng.below(controllers.len())];
                    text.push_str(&format!("{id}:{ctl}:{}", random_path(&mut rng)));
                }
            }
            text.push(if rng.below(5) == 0 { '\r' } else { '\n' });
        }
        if let Some(path) = cgroup_path_from_proc(&text) {
            assert!(text.contains(path), "{path:?} not in {text:?}");
        }
        if let Some(c) = container_from_proc(&text) {
            assert!(!c.id.is_empty(), "{text:?}");
        }
    }
}
