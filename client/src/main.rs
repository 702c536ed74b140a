//! The `hookpipe-client` binary: parse flags, set up logging and signals, run.

use std::process::ExitCode;

use clap::Parser;
use hookpipe_client::cli::Cli;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        hookpipe_client::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: hookpipe_client::error::Fatal) -> ExitCode {
    tracing::error!("{e}");
    e.exit_code()
}

/// The first SIGINT or SIGTERM stops after the in-flight request; a second
/// one exits at once (the event in flight is delivered again next start).
async fn cancel_on_signal(shutdown: CancellationToken) {
    signal().await;
    tracing::info!("stopping after the request in flight (press Ctrl-C again to quit now)");
    shutdown.cancel();
    signal().await;
    tracing::warn!("quitting now");
    std::process::exit(130);
}

async fn signal() {
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
}
