//! Embeds the default rule pack (`rules/default/*.yaml`) into the binary, so
//! `boxwatch run` has its rules without any file on the host.

use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dir = manifest.join("../../rules/default");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut src = String::from(
        "/// The default rule pack: (path in the repository, contents).\npub const DEFAULT_RULES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let name = f.file_name().expect("file name").to_string_lossy();
        src.push_str(&format!(
            "    (\"rules/default/{name}\", include_str!({:?})),\n",
            f.canonicalize().expect("canonical path")
        ));
        println!("cargo:rerun-if-changed={}", f.display());
    }
    src.push_str("];\n");
    std::fs::write(out.join("default_rules.rs"), src).expect("write default_rules.rs");
    println!("cargo:rerun-if-changed={}", dir.display());
}
