//! A real headless browser: Debian's `chromium`, driven by `playwright-core`
//! (pinned in tests/node) from a `node --test` script in tests/browser.
//! `tests/run` installs both; a test that cannot find them fails, never skips.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::smee::node_dir;

/// The chromium binary: `$HOOKPIPE_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("HOOKPIPE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "chromium is not installed ({} is missing): run tests/run, or `apt-get install chromium`, \
         or point HOOKPIPE_CHROMIUM at a Chromium binary",
        path.display()
    );
    path
}

fn playwright_installed() {
    let dir = node_dir().join("node_modules/playwright-core");
    assert!(
        dir.join("package.json").exists(),
        "playwright-core is not installed ({} is missing): run tests/run, or `npm ci --prefix tests/node`",
        dir.display()
    );
}

/// Runs `node --test tests/browser/{spec}` with `env`; fails the test, with
/// the script's whole output, unless every browser test passed within `within`.
pub async fn run_spec(spec: &str, env: &[(&str, String)], within: Duration) -> String {
    let chromium = chromium();
    playwright_installed();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(spec);
    assert!(script.exists(), "{} is missing", script.display());
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["--test", "--test-reporter=spec"])
        .arg(&script)
        .env("CHROMIUM", &chromium)
        .env("NODE_DIR", node_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // Traffic stays on 127.0.0.1: no proxy may catch it.
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = cmd.output();
    let out = match tokio::time::timeout(within, run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("cannot run node (is it on PATH? tests/run installs it): {e}"),
        Err(_) => panic!("the browser tests did not finish within {within:?}"),
    };
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "browser tests failed ({}):\n{text}",
        out.status
    );
    text
}
