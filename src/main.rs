//! The `hookpipe` binary: parse flags, set up logging and signals, run.

use anyhow::Context;
use clap::Parser;
use hookpipe::config::{Cli, Command};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Fewer, cheaper allocations on the ingest path than the system allocator (measured: see README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // bench keeps stderr for its progress bar; an embedded relay logs only problems.
    let default_level = match cli.command {
        Command::Bench(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The relay runs one single-threaded runtime per worker (this thread is
    // the first, see `server::workers`); the load generator uses all cores.
    let runtime = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Command::Bench(_) => tokio::runtime::Runtime::new(),
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(config) => {
                // Every subscriber holds a socket: use the whole file limit.
                if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
                    tracing::warn!(error = %e, "cannot raise the open-file limit");
                }
                let listener = tokio::net::TcpListener::bind(&config.listen)
                    .await
                    .with_context(|| format!("cannot listen on {} (is another process using it? try --listen 127.0.0.1:0)", config.listen))?;
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                hookpipe::run(config, listener, shutdown).await
            }
            Command::Bench(args) => hookpipe::bench::run(args).await,
        }
    })
}

/// SIGINT or SIGTERM starts a graceful shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received; draining");
    shutdown.cancel();
}
