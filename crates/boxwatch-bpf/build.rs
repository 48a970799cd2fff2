//! Compiles the BPF C sources in /bpf/progs with clang (CO-RE) through
//! libbpf-cargo and generates one skeleton per object into OUT_DIR.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

/// `bpf/progs/<name>.bpf.c` -> `$OUT_DIR/<name>.skel.rs`.
const PROGS: &[&str] = &["monitor", "probe"];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let bpf = manifest.join("../../bpf");
    let include = bpf.join("include");
    let lib = bpf.join("lib");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in PROGS {
        let src = bpf.join("progs").join(format!("{name}.bpf.c"));
        SkeletonBuilder::new()
            .source(&src)
            .clang_args([
                "-I".into(),
                include.clone().into_os_string(),
                "-I".into(),
                lib.clone().into_os_string(),
                "-Wall".into(),
                "-Wno-unused-function".into(),
                "-Wno-compare-distinct-pointer-types".into(),
            ])
            .build_and_generate(out.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|e| {
                panic!("building {}: {e:#}\nIs clang installed? Run scripts/install-deps.sh", src.display())
            });
        println!("cargo:rerun-if-changed={}", src.display());
    }
    println!("cargo:rerun-if-changed={}", include.display());
    println!("cargo:rerun-if-changed={}", lib.display());
    for entry in std::fs::read_dir(&lib).expect("bpf/lib exists").flatten() {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    println!("cargo:rerun-if-changed={}", include.join("boxwatch_abi.h").display());
}
