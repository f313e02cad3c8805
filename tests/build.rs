//! Builds every test plugin (`tests/plugins/*`) and sample plugin (`plugins/*`) from source to
//! `wasm32-wasip2`, and writes one constant per component into `components.rs`, so each test
//! names the component it runs and every component has a test.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = here.parent().unwrap().to_owned();
    let mut crates = Vec::new();
    for dir in [root.join("tests/plugins"), root.join("plugins")] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let manifest = entry.path().join("Cargo.toml");
            if manifest.is_file() {
                println!(
                    "cargo:rerun-if-changed={}",
                    entry.path().join("src").display()
                );
                println!("cargo:rerun-if-changed={}", manifest.display());
                crates.push(package_name(&manifest));
            }
        }
    }
    crates.sort();
    println!("cargo:rerun-if-changed={}", root.join("sdk/src").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let target_dir = root.join("target/wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for name in &crates {
        cmd.args(["-p", name]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are for the host, not for wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for the wasm plugins");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed; run `rustup target add wasm32-wasip2` (./dev does) and see the errors above"
    );

    let out_dir = target_dir.join("wasm32-wasip2/release");
    let mut consts = String::new();
    for name in &crates {
        let file = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.is_file(), "{} was not produced", file.display());
        let ident = name
            .trim_start_matches("test-")
            .to_uppercase()
            .replace('-', "_");
        consts.push_str(&format!(
            "/// Component built from the `{name}` crate.\npub const {ident}: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("components.rs");
    std::fs::write(out, consts).unwrap();
}

fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("name = \"")
                .and_then(|rest| rest.strip_suffix('"'))
        })
        .unwrap_or_else(|| panic!("no package name in {}", manifest.display()))
        .to_owned()
}
