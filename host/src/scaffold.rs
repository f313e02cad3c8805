//! `flowhost plugins new NAME`: a ready plugin crate that builds to `wasm32-wasip2` and has a
//! test running it on the real host against a local HTTP server.

use std::path::{Path, PathBuf};

/// Where the generated crate takes `flowhost-sdk` and `flowhost` from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A checkout of this repository (its `sdk/` and `host/`).
    Path(PathBuf),
    /// crates.io, at this version requirement.
    Registry(String),
}

/// The crate could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name is not usable as a plugin id and crate name.
    #[error(
        "{0:?} is not a plugin name; use lowercase letters, digits and dashes, starting with a letter (e.g. loyalty-points)"
    )]
    BadName(String),
    /// The folder exists.
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

fn valid(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// Creates `parent/name` with a plugin crate; returns the files written.
pub fn new_plugin(
    parent: &Path,
    name: &str,
    source: &Source,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid(name) {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let (sdk, host) = match source {
        Source::Path(root) => (
            format!("{{ path = {:?} }}", root.join("sdk").display().to_string()),
            format!("{{ path = {:?} }}", root.join("host").display().to_string()),
        ),
        Source::Registry(version) => (format!("{version:?}"), format!("{version:?}")),
    };
    let lib_name = name.replace('-', "_");
    let title = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    let files = [
        (
            "Cargo.toml",
            CARGO_TOML
                .replace("{name}", name)
                .replace("{sdk}", &sdk)
                .replace("{host}", &host),
        ),
        (
            "src/lib.rs",
            LIB_RS
                .replace("{name}", name)
                .replace("{title}", &title)
                .replace("{lib_name}", &lib_name),
        ),
        (
            "tests/element.rs",
            TEST_RS
                .replace("{name}", name)
                .replace("{lib_name}", &lib_name),
        ),
        (
            "README.md",
            README_MD
                .replace("{name}", name)
                .replace("{title}", &title)
                .replace("{lib_name}", &lib_name),
        ),
        (".gitignore", "/target\n".to_owned()),
        // The SDK needs the host's Rust, and components build for wasm32-wasip2: rustup
        // installs both from this file on the first cargo command.
        ("rust-toolchain.toml", TOOLCHAIN.to_owned()),
    ];
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        let io = |error| ScaffoldError::Io {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(path.parent().expect("files are in the crate folder"))
            .map_err(io)?;
        std::fs::write(&path, text).map_err(io)?;
        written.push(path);
    }
    Ok(written)
}

/// The toolchain the generated crate builds with: the one flowhost itself is built with (its
/// `rust-toolchain.toml`), with the component target.
const TOOLCHAIN: &str = concat!(
    "# The Rust flowhost-sdk needs, with the target components build for.\n",
    "[toolchain]\n",
    "channel = \"",
    env!("CARGO_PKG_RUST_VERSION"),
    ".0\"\n",
    "profile = \"minimal\"\n",
    "targets = [\"wasm32-wasip2\"]\n",
);

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
flowhost-sdk = {sdk}
serde = { version = "1", features = ["derive"] }

[dev-dependencies]
# The real host, to run the element in tests (flowhost::testing).
flowhost = {host}
serde_json = "1"
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }

# Compiling components in an unoptimised host is slow; optimise dependencies in tests.
[profile.dev.package."*"]
opt-level = 2

# Line tables are enough for backtraces, and the host's dependencies build faster and smaller
# (the same settings as flowhost's own workspace, so a shared target folder is reused).
[profile.dev]
debug = "line-tables-only"

# A crate of its own, even when created inside another workspace.
[workspace]
"#;

const LIB_RS: &str = r#"//! {title}: a flowhost element.
//!
//! Build: `cargo build --release --target wasm32-wasip2`, then copy
//! `target/wasm32-wasip2/release/{lib_name}.wasm` into the host's `plugins/` folder.
//! Test: `cargo test` (builds the component and runs it on the real host).

use flowhost_sdk::http::Request;
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, config, export_element, log, variables};
use serde::Deserialize;

struct Plugin;

#[derive(Deserialize)]
struct Settings {
    greeting: String,
}

#[derive(Deserialize)]
struct Profile {
    nickname: String,
}

impl Element for Plugin {
    fn manifest() -> Manifest {
        Manifest::new("{name}", env!("CARGO_PKG_VERSION"), "{title}")
            .description("Greets the participant by the nickname a profile API knows")
            .config(Field::text("greeting").default_value("Hello"))
            .config(Field::secret("api_token").label("Profile API token").required())
            .exit("greeted", "Greeted")
            .exit("unknown", "Not in the profile API")
            // The operator sets base_url and grants its host in flowhost.toml.
            .host("setting:base_url")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let settings: Settings = ctx.config()?;
        let base = config::require_setting("base_url")?;
        let token = config::require_secret("api_token")?;
        let person = ctx.person();
        let response = Request::get(&format!("{}/profiles/{}", base.trim_end_matches('/'), person.id))
            .bearer(&token)
            .send()?;
        match response.status {
            200 => {}
            404 => return Ok(Exit::to("unknown")),
            status => return Err(Error::failed(format!("profile API answered {status}"))),
        }
        let profile: Profile = response.json()?;
        log::info(&format!("greeting {}", profile.nickname));
        variables::set("greeting", format!("{}, {}!", settings.greeting, profile.nickname));
        Ok(Exit::to("greeted"))
    }
}

export_element!(Plugin);
"#;

const TEST_RS: &str = r##"//! Runs the element on the real flowhost host against a local HTTP server.

use flowhost::testing::{PluginTest, Reply, TestServer};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

/// Builds the component for wasm32-wasip2 and returns its path.
fn component() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/wasm");
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("running cargo");
    assert!(status.success(), "building the component failed; `rustup target add wasm32-wasip2`?");
    target.join("wasm32-wasip2/release/{lib_name}.wasm")
}

#[tokio::test]
async fn greets_known_people_and_routes_unknown_ones() {
    let wasm = component();
    let api = TestServer::start_replying(|r| match r.path.as_str() {
        "/profiles/ada" => Reply::json(200, r#"{"nickname": "Countess"}"#),
        _ => Reply::json(404, r#"{"error": "no such profile"}"#),
    })
    .await;
    let test = |person: &str| {
        PluginTest::new("{name}", &wasm)
            .setting("base_url", &api.url())
            .secret("api_token", "t0k3n")
            .grant(&api.addr.to_string())
            .config(json!({"greeting": "Welcome"}))
            .person(flowhost::person::Person { id: person.into(), ..Default::default() })
    };

    let run = test("ada").run().await;
    assert_eq!(run.exit(), Some("greeted"), "{run:?}");
    assert_eq!(run.variables["greeting"], json!("Welcome, Countess!"));
    let request = &api.received()[0];
    assert_eq!(request.path, "/profiles/ada");
    assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
    assert!(!run.journey_text().contains("t0k3n"), "the secret stays out of the journey");

    let run = test("bob").run().await;
    assert_eq!(run.exit(), Some("unknown"));
}
"##;

const README_MD: &str = r#"# {title}

A flowhost element (plugin `{name}`), written with `flowhost-sdk`.

```sh
cargo test                                            # builds the component, runs it on the host
cargo build --release --target wasm32-wasip2          # the component for the host
cp target/wasm32-wasip2/release/{lib_name}.wasm /path/to/flowhost/plugins/
```

The operator configures it in `flowhost.toml`:

```toml
[plugins.{name}]
allow_hosts = ["profiles.example.com"]
settings = { base_url = "https://profiles.example.com" }
secrets = { api_token = { env = "PROFILES_TOKEN" } }
```

and flows use it as `"type": "plugin:{name}"` with exits `greeted`, `unknown` and `error`.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_crate_and_refuses_bad_names_and_existing_folders() {
        let dir = tempfile::tempdir().unwrap();
        let files = new_plugin(
            dir.path(),
            "loyalty-points",
            &Source::Registry("0.1".into()),
        )
        .unwrap();
        assert_eq!(files.len(), 6);
        let toolchain =
            std::fs::read_to_string(dir.path().join("loyalty-points/rust-toolchain.toml")).unwrap();
        assert!(
            toolchain.contains(&format!(
                "channel = \"{}.0\"",
                env!("CARGO_PKG_RUST_VERSION")
            )) && toolchain.contains("targets = [\"wasm32-wasip2\"]"),
            "{toolchain}"
        );
        let cargo = std::fs::read_to_string(dir.path().join("loyalty-points/Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"loyalty-points\""));
        assert!(cargo.contains("flowhost-sdk = \"0.1\""));
        let lib = std::fs::read_to_string(dir.path().join("loyalty-points/src/lib.rs")).unwrap();
        assert!(lib.contains("Manifest::new(\"loyalty-points\""));
        assert!(lib.contains("//! Loyalty Points: a flowhost element."));
        assert!(matches!(
            new_plugin(
                dir.path(),
                "loyalty-points",
                &Source::Registry("0.1".into())
            ),
            Err(ScaffoldError::Exists(_))
        ));
        for bad in ["Loyalty", "1x", "a_b", "x-", ""] {
            assert!(matches!(
                new_plugin(dir.path(), bad, &Source::Registry("0.1".into())),
                Err(ScaffoldError::BadName(_))
            ));
        }
    }
}
