//! The web console in a real browser: `flowhost demo --hold` leaves `flowhost serve` running
//! with the demo's data, and `console/tests/console.test.mjs` drives headless Chromium
//! (Debian's package, through playwright-core) against it. The agent's reply from the
//! console must reach the demo's WhatsApp gateway, which says so on the demo's output.
//! Screenshots of each page go to `target/tmp/console-screenshots/`.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPLY: &str = "Maja here from the console: a new parcel is on its way.";

/// `flowhost demo --hold`; closing its input ends it (it stops its service first).
struct Demo {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .current_dir(dir)
            .args(["demo", "--hold"])
            .env("FLOWHOST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting flowhost demo");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped");
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Demo { child, lines }
    }

    /// The first output line `pick` takes, waiting up to `limit`.
    fn wait_for<T>(&mut self, limit: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(found) = self.lines.lock().unwrap().iter().find_map(|l| pick(l)) {
                return found;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("flowhost demo ended ({status}):\n{}", self.output());
            }
            assert!(
                start.elapsed() < limit,
                "not seen in {limit:?}; the demo printed:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Ends the demo as Enter does; its exit status.
    fn finish(&mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("flowhost demo did not end after its input closed");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Closing its input stops its service too; a kill is the last resort.
        drop(self.child.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_console_shows_flows_journeys_desk_and_plugins_in_a_browser() {
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../console");
    assert!(
        console.join("node_modules/playwright-core").is_dir(),
        "the console's npm packages are not installed: run `./dev console` (npm ci in console/)"
    );
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (component, file) in [
        (c::ORDER_STATUS, "order_status.wasm"),
        (c::WEBINAR_REGISTRATION, "webinar_registration.wasm"),
        (c::GENAI_CONTENT, "genai_content.wasm"),
        (c::CRM_SYNC, "crm_sync.wasm"),
    ] {
        std::fs::copy(component, plugins.join(file)).unwrap();
    }

    let mut demo = Demo::start(dir.path());
    let (url, key) = demo.wait_for(Duration::from_secs(120), |line| {
        let rest = line.strip_prefix("console: ")?;
        let (url, key) = rest.split_once(" (API key: ")?;
        Some((
            url.trim_end_matches("/console/").to_owned(),
            key.trim_end_matches(')').to_owned(),
        ))
    });
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let run = Command::new("node")
        .current_dir(&console)
        .arg("tests/console.test.mjs")
        .env("CONSOLE_URL", &url)
        .env("API_KEY", &key)
        .env("PLUGINS_DIR", &plugins)
        .env("REPLY_TEXT", REPLY)
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("running node (the console's browser test)");
    let (out, err) = text(&run);
    assert!(
        run.status.success(),
        "the browser test failed:\n{out}\n{err}\nthe demo printed:\n{}",
        demo.output()
    );
    assert!(out.contains("console test: passed"), "{out}");
    // The reply sent from the console reached the channel's endpoint.
    demo.wait_for(Duration::from_secs(10), |line| {
        (line.contains("gateway took") && line.ends_with(REPLY)).then_some(())
    });
    for page in [
        "flows",
        "flow",
        "journey",
        "desk",
        "plugins",
        "sign-in-refused",
    ] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}.png");
    }
    let status = demo.finish();
    assert!(status.success(), "{status}\n{}", demo.output());
}
