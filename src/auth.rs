//! Channel ids, subscribe tokens, and how a request proves it holds one.
//!
//! Publishing needs no token: the channel URL is the capability (providers
//! cannot send one). Subscribing needs the token; the relay stores only its
//! SHA-256 and compares in constant time.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a channel id: 128 bits (the interface asks for at least 96).
const CHANNEL_ID_BYTES: usize = 16;
/// Random bytes in a token: 256 bits (the interface asks for at least 128).
const TOKEN_BYTES: usize = 32;

fn random_url_safe(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the operating system's CSPRNG is unavailable");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh channel id from the OS CSPRNG, URL-safe.
pub fn new_channel_id() -> String {
    random_url_safe(CHANNEL_ID_BYTES)
}

/// A fresh subscribe token from the OS CSPRNG, URL-safe.
pub fn new_token() -> String {
    random_url_safe(TOKEN_BYTES)
}

/// A fresh event id, unique across channels and restarts: 64 random bits
/// drawn once per process, then a counter. Ids are not secrets, so this
/// saves a CSPRNG call on every ingest.
pub fn new_event_id() -> String {
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut p = [0u8; 8];
        getrandom::fill(&mut p).expect("the operating system's CSPRNG is unavailable");
        p
    });
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(prefix);
    raw[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    format!("evt_{}", URL_SAFE_NO_PAD.encode(raw))
}

/// The only form of a token the relay keeps.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` hashes to `stored_hash`, in constant time.
pub fn token_matches(token: &str, stored_hash: &[u8]) -> bool {
    hash_token(token).ct_eq(stored_hash).into()
}

/// Whether a string could be a channel id (checked before touching the store).
pub fn is_channel_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token a subscriber presented: `Authorization: Bearer T` wins over `?token=T`.
pub fn presented_token(headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    bearer
        .or_else(|| query_token.map(str::to_owned))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let a = new_channel_id();
        let b = new_channel_id();
        assert_ne!(a, b);
        assert!(is_channel_id(&a));
        assert_eq!(a.len(), 22);
        assert!(new_token().len() >= 43);
        assert_ne!(new_event_id(), new_event_id());
    }

    #[test]
    fn token_check() {
        let t = new_token();
        let h = hash_token(&t);
        assert!(token_matches(&t, &h));
        assert!(!token_matches("nope", &h));
    }

    #[test]
    fn bearer_wins_over_query() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h, Some("q")), Some("q".into()));
        h.insert(AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(presented_token(&h, Some("q")), Some("b".into()));
        assert_eq!(presented_token(&HeaderMap::new(), Some("")), None);
    }
}
