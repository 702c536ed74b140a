//! The real `smee-client` from npm, run as a process. `tests/run` installs it
//! into `tests/node` (`npm ci`); a test that cannot find it fails, never skips.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::DEADLINE;

/// `tests/node`, where the suite's node programs live.
pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

fn installed() -> PathBuf {
    let bin = node_dir().join("node_modules/.bin/smee");
    assert!(
        bin.exists(),
        "smee-client is not installed ({} is missing): run tests/run, or `npm ci --prefix tests/node`",
        bin.display()
    );
    bin
}

/// A running smee-client, killed on drop; its output is kept.
pub struct Smee {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Smee {
    /// `smee --url SOURCE --target TARGET`, as a developer runs it.
    pub fn forward(source: &str, target: &str) -> Smee {
        let mut cmd = Command::new(installed());
        cmd.args(["--url", source, "--target", target]);
        Self::spawn(cmd)
    }

    /// smee-client creating its own channel at `new_url` (HEAD, reads the
    /// redirect), then forwarding: `tests/node/smee-new.mjs`.
    pub fn create_and_forward(new_url: &str, target: &str) -> Smee {
        installed();
        let mut cmd = Command::new("node");
        cmd.arg(node_dir().join("smee-new.mjs"))
            .args([new_url, target]);
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Smee {
        // smee-client honours proxy variables; traffic must stay on 127.0.0.1.
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .env("NO_PROXY", "*")
            .current_dir(node_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run smee-client (is node on PATH?): {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        drain(child.stdout.take().expect("stdout"), lines.clone());
        drain(child.stderr.take().expect("stderr"), lines.clone());
        Smee { child, lines }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// How many printed lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `n` printed lines contain `needle`; returns the last of them.
    pub async fn wait_for(&mut self, needle: &str, n: usize) -> String {
        let start = Instant::now();
        loop {
            {
                let lines = self.lines.lock().unwrap();
                let hits: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
                if hits.len() >= n {
                    return hits[n - 1].clone();
                }
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("smee-client exited ({status}); output:\n{}", self.output());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "smee-client did not print {needle:?} ({n}x) within {DEADLINE:?}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Smee {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(pipe: impl Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
}
