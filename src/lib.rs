//! hookpipe: a webhook relay.
//!
//! A provider POSTs to a channel URL; the relay commits the event durably,
//! then fans it out to every WebSocket subscriber of that channel.
//!
//! A tour of the rooms:
//! - [`protocol`]: the wire types, shared with `hookpipe-client` (no server deps).
//! - `config`: the `hookpipe serve` flags and their `HOOKPIPE_*` variables.
//! - `ingest`: the HTTP handler for webhooks and the group committer.
//! - `store`: the [`store::Store`] trait, its SQLite implementation, retention.
//! - `hub`: per-channel broadcast rings and each subscriber's gapless feed.
//! - `transport`: the subscriber sessions (WebSocket; SSE in smee.io's format or ours).
//! - `api`: channel creation, history, delivery results, redelivery and health;
//!   `auth`: ids, tokens, hashing.
//! - `ui`: the web inspector (home page, live channel page), assets embedded.
//! - `server`: the router and the life cycle: [`run`] serves until shutdown.
//! - `bench`: `hookpipe bench`, the load tool (publishers, subscribers, report).
//! - `worker`: which worker thread a caller is on (lanes and hub shards follow it).
#![forbid(unsafe_code)]

pub mod protocol;

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod bench;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod event;
#[cfg(feature = "server")]
pub mod hub;
#[cfg(feature = "server")]
pub mod ingest;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod transport;
#[cfg(feature = "server")]
pub mod ui;
#[cfg(feature = "server")]
pub mod worker;

#[cfg(feature = "server")]
pub use server::{router, run};
