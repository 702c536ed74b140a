//! The router and the server's life cycle: start, serve, drain, stop.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::hub::Hub;
use crate::ingest::{Committer, CommitterHandle, ingest};
use crate::state::AppState;
use crate::store::{Retention, SqliteStore, Store, retention};
use crate::{api, transport, ui};

mod workers;

/// Every route of the relay.
pub fn router(state: AppState) -> Router {
    Router::new()
        // GET also answers HEAD (smee-client creates channels with HEAD).
        .route("/new", post(api::create_channel).get(api::new_redirect))
        .route("/healthz", get(api::healthz))
        .route("/api/channels/{channel}/events", get(api::history::events))
        .route(
            "/api/channels/{channel}/events/{seq}",
            get(api::history::event),
        )
        .route(
            "/api/channels/{channel}/events/{seq}/redeliver",
            post(api::redeliver::redeliver),
        )
        .route("/api/channels/{channel}/acks", get(api::acks::acks))
        .merge(ui::router())
        .route(
            "/{channel}",
            get(transport::subscribe)
                .post(ingest)
                .put(ingest)
                .patch(ingest)
                .delete(ingest),
        )
        .route("/{channel}/", any(ingest))
        .route("/{channel}/{*rest}", any(ingest))
        // Ingest enforces --max-body itself, with a JSON 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The relay's shared state over `store`, with its committer running. `run`
/// uses it; benchmarks and embedders can drive `router(state)` directly.
pub fn assemble(
    store: Arc<dyn Store>,
    config: Config,
    public_url: String,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> (AppState, CommitterHandle) {
    let hub = Hub::with_workers(config.workers());
    let (committer, committer_task) = Committer::new(store.clone(), hub.clone(), config.workers());
    let state = AppState::new(
        store,
        hub,
        committer,
        Arc::new(config),
        public_url,
        shutdown,
        tracker,
    );
    (state, committer_task)
}

/// Runs the relay on `listener` until `shutdown` fires, then drains:
/// stop accepting, finish in-flight ingests, close subscribers with 1001.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let local = listener
        .local_addr()
        .context("listener has no local address")?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let retention_cfg = Retention {
        keep_events: config.retain_events,
        max_age: config.retain_for,
    };
    let sqlite = SqliteStore::open(&config.data_dir, config.sync, retention_cfg)?;
    let db_path = std::fs::canonicalize(sqlite.path()).unwrap_or_else(|_| sqlite.path().to_owned());
    let store: Arc<dyn Store> = Arc::new(sqlite);

    let tracker = TaskTracker::new();
    let trimmer = tokio::spawn(retention::run(
        store.clone(),
        retention::interval_for(config.retain_for),
        shutdown.clone(),
    ));
    let drain = config.shutdown_timeout;
    let workers = config.workers();
    let (state, committer_task) = assemble(
        store,
        config,
        public_url.clone(),
        shutdown.clone(),
        tracker.clone(),
    );

    tracing::info!(
        "hookpipe listening on http://{local} (public URL {public_url}), {workers} workers, data in {}",
        db_path.display()
    );
    let server = workers::serve(listener, router(state), workers, shutdown.clone());
    let running = tokio::select! {
        r = server => Some(r.context("server failed")?),
        _ = async { shutdown.cancelled().await; tokio::time::sleep(drain).await } => {
            tracing::warn!("in-flight requests did not finish within {drain:?}; exiting anyway");
            None
        }
    };
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!("subscriber sessions did not close within {drain:?}");
    }
    // No request is left to queue an event: wait for the last commit.
    if tokio::time::timeout(drain, committer_task.finished())
        .await
        .is_err()
    {
        tracing::warn!("committer did not finish within {drain:?}");
    }
    // A commit may have run on any worker: only now may their runtimes stop.
    if let Some(running) = running {
        running.release().await.context("a worker failed")?;
    }
    trimmer.abort();
    tracing::info!("hookpipe stopped");
    Ok(())
}
