//! What every handler shares.

use std::sync::Arc;

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::AppError;
use crate::hub::Hub;
use crate::ingest::Committer;
use crate::store::Store;

/// Shared state behind every route: one `Arc`, so the per-request clones
/// axum makes cost one atomic increment. Fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// Durable channels and events.
    pub store: Arc<dyn Store>,
    /// Live fan-out.
    pub hub: Hub,
    /// Group commit of ingested events.
    pub committer: Committer,
    /// The serve configuration.
    pub config: Arc<Config>,
    /// Base of every URL the relay hands out, without a trailing slash.
    pub public_url: Arc<str>,
    /// Token hashes of channels seen so far: channels are never deleted, so
    /// a hit never goes stale, and ingest skips the store lookup.
    known: Arc<DashMap<String, Arc<[u8]>>>,
    /// Fires when the relay starts shutting down.
    pub shutdown: CancellationToken,
    /// Long-lived streams (WebSocket sessions) that shutdown waits for.
    pub tracker: TaskTracker,
}

impl AppState {
    /// Builds the state; `public_url` must have no trailing slash.
    pub fn new(
        store: Arc<dyn Store>,
        hub: Hub,
        committer: Committer,
        config: Arc<Config>,
        public_url: String,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        let known = Arc::new(DashMap::new());
        AppState(Arc::new(Shared {
            store,
            hub,
            committer,
            config,
            public_url: public_url.into(),
            known,
            shutdown,
            tracker,
        }))
    }

    /// The token hash of an existing channel, or `404`.
    pub async fn channel_token_hash(&self, id: &str) -> Result<Arc<[u8]>, AppError> {
        if !crate::auth::is_channel_id(id) {
            return Err(AppError::ChannelNotFound);
        }
        if let Some(hash) = self.known.get(id) {
            return Ok(hash.clone());
        }
        let record = self
            .store
            .channel(id)
            .await?
            .ok_or(AppError::ChannelNotFound)?;
        let hash: Arc<[u8]> = record.token_hash.into();
        self.known.insert(id.to_owned(), hash.clone());
        Ok(hash)
    }

    /// Remembers a channel this relay just created.
    pub fn remember_channel(&self, id: &str, token_hash: Vec<u8>) {
        self.known.insert(id.to_owned(), token_hash.into());
    }

    /// `404` for an unknown channel, `401` unless `token` opens it.
    pub async fn authorize(&self, id: &str, token: Option<&str>) -> Result<(), AppError> {
        let hash = self.channel_token_hash(id).await?;
        match token {
            Some(t) if crate::auth::token_matches(t, &hash) => Ok(()),
            _ => Err(AppError::Unauthorized),
        }
    }
}
