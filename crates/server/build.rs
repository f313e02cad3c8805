//! Embeds the web console, built into `console/dist/` by `./dev console` (npm and esbuild),
//! into the binary. Without a built console the service still builds and runs; its
//! `/console/` says how to build the console.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let dist = Path::new(&manifest).join("../../console/dist");
    // The folder is in git (with its own .gitignore), so it exists and cargo watches it.
    println!("cargo::rerun-if-changed={}", dist.display());
    let mut files: Vec<_> = std::fs::read_dir(&dist)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut code = String::from(
        "/// The console's files, by name.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for path in &files {
        let name = path.file_name().expect("a file").to_string_lossy();
        let absolute = std::fs::canonicalize(path).expect("a listed file");
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            absolute.display()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("console_files.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
