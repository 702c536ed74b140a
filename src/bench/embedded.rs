//! `--embedded`: a relay in this process on a temporary data dir.

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// A relay running in-process; dropping it cancels the relay.
pub struct Embedded {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped after the relay has stopped (field order), removing the data.
    _dir: tempfile::TempDir,
}

impl Embedded {
    /// Starts a relay with default settings on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hookpipe-bench-")
            .tempdir()
            .context("cannot create a temporary data dir")?;
        let mut config = Config::with_data_dir(dir.path());
        config.shutdown_timeout = Duration::from_secs(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(crate::run(config, listener, shutdown.clone()));
        Ok(Embedded {
            url,
            shutdown,
            task: Some(task),
            _dir: dir,
        })
    }

    /// Shuts the relay down and waits for it (bounded by its drain timeout).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().expect("stopped once");
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(anyhow::anyhow!("embedded relay panicked: {e}")),
            Err(_) => Err(anyhow::anyhow!("embedded relay did not stop within 10s")),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
