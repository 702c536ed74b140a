//! Ingest: webhook requests in, durable events out.

mod committer;
mod handler;

pub use committer::{Committer, CommitterHandle, use_lane};
pub use handler::ingest;
