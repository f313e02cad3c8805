//! `flowhost plugins new NAME`: a ready plugin crate that builds to `wasm32-wasip2` and has a
//! test running it on the real host against a local HTTP server.

use std::path::{Path, PathBuf};

/// Where the generated crate takes `flowhost-sdk` from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A copy of the SDK this binary carries, written into the crate (`vendor/flowhost-sdk`):
    /// the SDK for exactly the WIT this host serves, on any machine, with no checkout.
    Bundled,
    /// A checkout of this repository (its `sdk/`), for working on the SDK itself.
    Path(PathBuf),
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

/// Creates `parent/name` with a plugin crate; returns the files written. Its test runs the
/// element with `flowhost plugins run`, through the `flowhost` binary at `flowhost` unless
/// the `FLOWHOST` environment variable names another.
pub fn new_plugin(
    parent: &Path,
    name: &str,
    source: &Source,
    flowhost: &Path,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid(name) {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let sdk = match source {
        Source::Path(root) => root.join("sdk").display().to_string(),
        Source::Bundled => "vendor/flowhost-sdk".to_owned(),
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
    let mut files = vec![
        (
            "Cargo.toml".to_owned(),
            CARGO_TOML
                .replace("{name}", name)
                .replace("{sdk}", &format!("{sdk:?}")),
        ),
        (
            "src/lib.rs".to_owned(),
            LIB_RS
                .replace("{name}", name)
                .replace("{title}", &title)
                .replace("{lib_name}", &lib_name),
        ),
        (
            "tests/element.rs".to_owned(),
            TEST_RS
                .replace("{name}", name)
                .replace("{lib_name}", &lib_name),
        ),
        (
            "README.md".to_owned(),
            README_MD
                .replace("{name}", name)
                .replace("{title}", &title)
                .replace("{lib_name}", &lib_name),
        ),
        (".gitignore".to_owned(), "/target\n".to_owned()),
        // The SDK needs the host's Rust, and components build for wasm32-wasip2: rustup
        // installs both from this file (`rustup toolchain install` in the crate).
        ("rust-toolchain.toml".to_owned(), TOOLCHAIN.to_owned()),
        // The test finds the binary that made the crate; FLOWHOST set outside wins.
        (
            ".cargo/config.toml".to_owned(),
            format!(
                "# The flowhost binary tests/element.rs runs; set FLOWHOST to use another.\n[env]\nFLOWHOST = {{ value = {:?}, force = false }}\n",
                flowhost.display().to_string()
            ),
        ),
    ];
    if let Source::Bundled = source {
        files.extend(
            bundled_sdk().map(|(file, text)| (format!("vendor/flowhost-sdk/{file}"), text)),
        );
    }
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

/// The SDK sources this binary was built with, as `(path in the SDK crate, text)`. The SDK
/// finds its WIT beside its `src/` here, where the repository keeps it at its root.
fn bundled_sdk() -> impl Iterator<Item = (&'static str, String)> {
    SDK_FILES.iter().map(|&(file, text)| {
        let text = if file == "src/lib.rs" {
            text.replace(SDK_WIT_IN_REPOSITORY, SDK_WIT_BUNDLED)
        } else {
            text.to_owned()
        };
        (file, text)
    })
}

const SDK_WIT_IN_REPOSITORY: &str = "path: \"../wit/v0.1.0\"";
const SDK_WIT_BUNDLED: &str = "path: \"wit/v0.1.0\"";

/// Every file of `sdk/` a build needs, and the WIT it binds to (tested to be complete).
const SDK_FILES: &[(&str, &str)] = &[
    ("Cargo.toml", SDK_CARGO_TOML),
    ("README.md", include_str!("../../sdk/README.md")),
    ("src/context.rs", include_str!("../../sdk/src/context.rs")),
    ("src/error.rs", include_str!("../../sdk/src/error.rs")),
    ("src/http.rs", include_str!("../../sdk/src/http.rs")),
    ("src/lib.rs", include_str!("../../sdk/src/lib.rs")),
    ("src/log.rs", include_str!("../../sdk/src/log.rs")),
    ("src/manifest.rs", include_str!("../../sdk/src/manifest.rs")),
    ("src/template.rs", include_str!("../../sdk/src/template.rs")),
    (
        "src/variables.rs",
        include_str!("../../sdk/src/variables.rs"),
    ),
    (
        "wit/v0.1.0/element.wit",
        include_str!("../../wit/v0.1.0/element.wit"),
    ),
];

/// `sdk/Cargo.toml` outside the workspace: the same dependencies, written out (tested to
/// match the workspace's).
const SDK_CARGO_TOML: &str = concat!(
    "# flowhost-sdk as the flowhost binary that created this crate carries it.\n",
    "[package]\n",
    "name = \"flowhost-sdk\"\n",
    "description = \"Write flowhost custom elements in Rust\"\n",
    "version = \"",
    env!("CARGO_PKG_VERSION"),
    "\"\n",
    "edition = \"2024\"\n",
    "license = \"Apache-2.0\"\n",
    "publish = false\n",
    "\n",
    "[dependencies]\n",
    "wit-bindgen = \"0.61\"\n",
    "serde = { version = \"1\", features = [\"derive\"] }\n",
    "serde_json = \"1\"\n",
);

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
flowhost-sdk = { path = {sdk} }
serde = { version = "1", features = ["derive"] }

[dev-dependencies]
# A profile API on 127.0.0.1 for the test to call.
tiny_http = "0.12"
serde_json = "1"

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

const TEST_RS: &str = r##"//! Runs the element on the flowhost host (`flowhost plugins run`, under the same sandbox and
//! grants as in a flow) against a profile API on 127.0.0.1.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

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

/// What the profile API was asked: each request's path and Authorization header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Starts a profile API on 127.0.0.1 that knows only "ada"; returns its address.
fn profile_api() -> (String, Seen) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("binding 127.0.0.1");
    let addr = server.server_addr().to_ip().expect("an IP address").to_string();
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let auth = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("authorization"))
                .map(|h| h.value.to_string());
            log.lock().unwrap().push((request.url().to_owned(), auth));
            let (status, body) = match request.url() {
                "/profiles/ada" => (200, r#"{"nickname": "Countess"}"#),
                _ => (404, r#"{"error": "no such profile"}"#),
            };
            let json = tiny_http::Header::from_bytes("content-type", "application/json").unwrap();
            let reply = tiny_http::Response::from_string(body).with_status_code(status).with_header(json);
            let _ = request.respond(reply);
        }
    });
    (addr, seen)
}

/// `flowhost plugins run --json` on the component for `person`: what the host reports.
fn run(wasm: &Path, api: &str, person: &str) -> Value {
    // .cargo/config.toml names the binary that created this crate.
    let flowhost = std::env::var("FLOWHOST").unwrap_or_else(|_| "flowhost".to_owned());
    // Where the host keeps its compile cache between runs.
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/flowhost");
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new(&flowhost)
        .current_dir(&work)
        .args(["plugins", "run", "--json"])
        .arg(wasm)
        .args(["--field", "greeting=Welcome", "--person", &format!(r#"{{"id": "{person}"}}"#)])
        .args(["--setting", &format!("base_url=http://{api}"), "--allow-host", api])
        .args(["--secret", "api_token=t0k3n"])
        .output()
        .unwrap_or_else(|e| panic!("running {flowhost}: {e}; set FLOWHOST to the flowhost binary's path"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{flowhost} printed no JSON ({e}):\n{stdout}{}", String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn greets_known_people_and_routes_unknown_ones() {
    let wasm = component();
    let (api, seen) = profile_api();

    let ada = run(&wasm, &api, "ada");
    assert_eq!(ada["exit"], "greeted", "{ada:#}");
    assert_eq!(ada["set"]["greeting"], "Welcome, Countess!");
    assert_eq!(
        seen.lock().unwrap()[0],
        ("/profiles/ada".to_owned(), Some("Bearer t0k3n".to_owned()))
    );
    assert!(!ada.to_string().contains("t0k3n"), "the secret stays out of the journey: {ada:#}");

    let bob = run(&wasm, &api, "bob");
    assert_eq!(bob["exit"], "unknown", "{bob:#}");
}
"##;

const README_MD: &str = r#"# {title}

A flowhost element (plugin `{name}`), written with `flowhost-sdk`.

```sh
rustup toolchain install                              # the Rust and wasm target rust-toolchain.toml names
cargo test                                            # builds the component, runs it on the host
cargo build --release --target wasm32-wasip2          # the component for the host
flowhost plugins run target/wasm32-wasip2/release/{lib_name}.wasm \
  --setting base_url=http://127.0.0.1:8080 --allow-host 127.0.0.1:8080 \
  --secret api_token=dev --person '{"id": "p1"}'     # try it by hand
cp target/wasm32-wasip2/release/{lib_name}.wasm /path/to/flowhost/plugins/
```

`vendor/flowhost-sdk` is the SDK the `flowhost` binary that created this crate carries, for
exactly the WIT that host serves. The test runs that binary (`.cargo/config.toml` names it; set
`FLOWHOST` to use another).

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

    fn read(path: impl AsRef<Path>) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn writes_a_crate_and_refuses_bad_names_and_existing_folders() {
        let dir = tempfile::tempdir().unwrap();
        let bin = Path::new("/opt/flowhost/bin/flowhost");
        let files = new_plugin(dir.path(), "loyalty-points", &Source::Bundled, bin).unwrap();
        assert_eq!(files.len(), 7 + SDK_FILES.len());
        let at = dir.path().join("loyalty-points");
        let toolchain = read(at.join("rust-toolchain.toml"));
        assert!(
            toolchain.contains(&format!(
                "channel = \"{}.0\"",
                env!("CARGO_PKG_RUST_VERSION")
            )) && toolchain.contains("targets = [\"wasm32-wasip2\"]"),
            "{toolchain}"
        );
        let cargo = read(at.join("Cargo.toml"));
        assert!(cargo.contains("name = \"loyalty-points\""));
        assert!(cargo.contains("flowhost-sdk = { path = \"vendor/flowhost-sdk\" }"));
        assert!(
            !cargo.contains("flowhost ="),
            "the test runs the binary: {cargo}"
        );
        let lib = read(at.join("src/lib.rs"));
        assert!(lib.contains("Manifest::new(\"loyalty-points\""));
        assert!(lib.contains("//! Loyalty Points: a flowhost element."));
        assert!(read(at.join("tests/element.rs")).contains("release/loyalty_points.wasm"));
        assert!(
            read(at.join(".cargo/config.toml"))
                .contains("FLOWHOST = { value = \"/opt/flowhost/bin/flowhost\", force = false }")
        );
        // The bundled SDK finds its WIT beside its sources.
        let sdk = read(at.join("vendor/flowhost-sdk/src/lib.rs"));
        assert!(sdk.contains(SDK_WIT_BUNDLED) && !sdk.contains(SDK_WIT_IN_REPOSITORY));
        assert!(
            at.join("vendor/flowhost-sdk/wit/v0.1.0/element.wit")
                .is_file()
        );

        let checkout = new_plugin(
            dir.path(),
            "from-checkout",
            &Source::Path("/src/flowhost".into()),
            bin,
        )
        .unwrap();
        assert_eq!(checkout.len(), 7);
        assert!(
            read(dir.path().join("from-checkout/Cargo.toml"))
                .contains("flowhost-sdk = { path = \"/src/flowhost/sdk\" }")
        );

        assert!(matches!(
            new_plugin(dir.path(), "loyalty-points", &Source::Bundled, bin),
            Err(ScaffoldError::Exists(_))
        ));
        for bad in ["Loyalty", "1x", "a_b", "x-", ""] {
            assert!(matches!(
                new_plugin(dir.path(), bad, &Source::Bundled, bin),
                Err(ScaffoldError::BadName(_))
            ));
        }
    }

    /// A file added to `sdk/src` or `wit/` must be bundled too, and the bundled manifest must
    /// ask for what the workspace gives the SDK.
    #[test]
    fn the_bundled_sdk_is_the_whole_sdk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk: Vec<String> = Vec::new();
        for (dir, prefix) in [(root.join("sdk/src"), "src"), (root.join("wit"), "wit")] {
            for entry in walk(&dir) {
                let rel = entry.strip_prefix(&dir).unwrap().display().to_string();
                on_disk.push(format!("{prefix}/{rel}"));
            }
        }
        on_disk.extend(["Cargo.toml".to_owned(), "README.md".to_owned()]);
        on_disk.sort();
        let mut bundled: Vec<String> = SDK_FILES.iter().map(|(f, _)| f.to_string()).collect();
        bundled.sort();
        assert_eq!(bundled, on_disk);

        let table = |text: &str, key: &str| -> toml::Table {
            let doc: toml::Table = toml::from_str(text).unwrap();
            let mut t = &doc;
            for part in key.split('.') {
                t = t[part].as_table().unwrap();
            }
            t.clone()
        };
        let sdk = table(&read(root.join("sdk/Cargo.toml")), "dependencies");
        let workspace = table(&read(root.join("Cargo.toml")), "workspace.dependencies");
        let bundled = table(SDK_CARGO_TOML, "dependencies");
        assert_eq!(
            bundled.keys().collect::<Vec<_>>(),
            sdk.keys().collect::<Vec<_>>()
        );
        for (name, spec) in &bundled {
            assert_eq!(Some(spec), workspace.get(name), "{name}");
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }
}
