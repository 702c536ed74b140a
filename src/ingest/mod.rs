//! Ingest: webhook requests in, durable events out.

mod committer;
mod handler;

pub use committer::{Committer, CommitterHandle};
pub use handler::ingest;
