//! Thread-per-core serving: `--workers` single-threaded runtimes, each
//! serving the connections dealt to it.
//!
//! One acceptor deals connections round-robin, so publishers and subscribers
//! split evenly (letting every worker accept from the shared socket split
//! them unevenly, and subscribers on the busier worker fell behind). No
//! worker steals another's tasks, so none wakes up just to search for work:
//! measured against one work-stealing runtime on 2 cores, ingest went from
//! 16.2-16.9 to 15.0-15.2 µs of CPU per publish and fan-out to 100
//! subscribers from 705-726k to 786-812k deliveries/s (see README).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Connections dealt to one worker and not yet taken.
const DEALT_BACKLOG: usize = 1024;

/// A worker's share of the listener: the connections the acceptor dealt it.
struct Dealt {
    rx: mpsc::Receiver<(std::net::TcpStream, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Dealt {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some((std, peer)) = self.rx.recv().await else {
                // The acceptor stopped: shutdown is under way and axum stops
                // accepting once it sees the signal.
                return std::future::pending().await;
            };
            // Registering with this worker's reactor is what moves the
            // connection onto this thread.
            match tokio::net::TcpStream::from_std(std) {
                Ok(tcp) => return (tcp, peer),
                Err(e) => tracing::warn!(error = %e, %peer, "cannot take over a connection"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The other workers' threads, kept alive after serving: a group commit
/// started on one of them may still be answering requests of another.
pub struct Running {
    release: CancellationToken,
    threads: Vec<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Lets the other workers' runtimes stop, and waits for them. Call it once
    /// the last commit has finished.
    pub async fn release(self) -> anyhow::Result<()> {
        self.release.cancel();
        let mut result = Ok(());
        for thread in self.threads {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            match joined {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = result.and(Err(e)),
                Ok(Err(_)) | Err(_) => {
                    result = result.and(Err(anyhow::anyhow!("a worker thread panicked")))
                }
            }
        }
        result
    }
}

/// Serves `app` on `listener` with `workers` threads (this one included)
/// until `shutdown` fires and every worker's connections have finished.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    workers: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let local = listener.local_addr()?;
    let workers = workers.max(1);
    let release = CancellationToken::new();
    let mut deal = Vec::with_capacity(workers);
    let mut own = None;
    let mut threads = Vec::with_capacity(workers - 1);
    let mut served = Vec::with_capacity(workers - 1);
    for i in 0..workers {
        let (tx, rx) = mpsc::channel(DEALT_BACKLOG);
        deal.push(tx);
        let dealt = Dealt { rx, local };
        if i == 0 {
            own = Some(dealt);
            continue;
        }
        let (done, done_rx) = oneshot::channel();
        served.push(done_rx);
        let (app, shutdown, release) = (app.clone(), shutdown.clone(), release.clone());
        let thread = std::thread::Builder::new()
            .name(format!("hookpipe-worker-{i}"))
            .spawn(move || -> anyhow::Result<()> {
                crate::worker::set_current(i);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let result = serve_dealt(dealt, app, shutdown).await;
                    let _ = done.send(());
                    release.cancelled().await;
                    result
                })
            })?;
        threads.push(thread);
    }
    let acceptor = tokio::spawn(accept_loop(listener, deal, shutdown.clone()));
    let own = own.expect("worker 0 is this thread");
    crate::worker::set_current(0);
    serve_dealt(own, app, shutdown).await?;
    let _ = acceptor.await;
    for done in served {
        // An error means that worker's thread ended early; `release` reports it.
        let _ = done.await;
    }
    Ok(Running { release, threads })
}

async fn serve_dealt(dealt: Dealt, app: Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    axum::serve(dealt, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// Accepts until shutdown, dealing connections to the workers in turn.
async fn accept_loop(
    listener: TcpListener,
    deal: Vec<mpsc::Sender<(std::net::TcpStream, SocketAddr)>>,
    shutdown: CancellationToken,
) {
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Frames are small and latency matters more than packet count: no Nagle.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let std = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "cannot hand a connection over");
                continue;
            }
        };
        // Waits for room should that worker be far behind in taking connections.
        if deal[next % deal.len()].send((std, peer)).await.is_err() {
            return;
        }
        next = next.wrapping_add(1);
    }
}
