//! The contract every `Store` implementation must meet. Each backend runs
//! the same checks; add a backend by adding one constructor below.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use hookpipe::config::SyncMode;
use hookpipe::event::{Incoming, NewEvent, now_ms};
use hookpipe::protocol::ServerFrame;
use hookpipe::store::{Retention, SqliteStore, Store, StoreError};

const RETENTION: Retention = Retention {
    keep_events: 5,
    max_age: Duration::from_secs(3600),
};

fn event(channel: &str, body: &str, received_at_ms: i64) -> NewEvent {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/plain".parse().unwrap());
    let req = Incoming {
        method: "POST",
        path: "",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    NewEvent::new(channel.into(), format!("evt_{body}"), received_at_ms, req)
}

async fn contract(store: Arc<dyn Store>) {
    store.create_channel("a", b"hash-a", 1).await.unwrap();
    store.create_channel("b", b"hash-b", 2).await.unwrap();
    assert!(
        store.create_channel("a", b"again", 3).await.is_err(),
        "ids are unique"
    );
    assert_eq!(store.channels().await.unwrap(), vec!["a", "b"]);
    assert_eq!(
        store.channel("a").await.unwrap().unwrap().token_hash,
        b"hash-a"
    );
    assert!(store.channel("zz").await.unwrap().is_none());

    // An event that arrived long ago (committed first, as in real life).
    let now = now_ms();
    let old = now - 2 * 3600 * 1000;
    store.append(vec![event("b", "b0", old)]).await.unwrap();

    // One batch across channels: per-channel seqs in batch order.
    let batch = vec![
        event("a", "a1", now),
        event("b", "b1", now),
        event("a", "a2", now),
    ];
    let committed = store.append(batch).await.unwrap();
    let seqs: Vec<(&str, u64)> = committed
        .iter()
        .map(|c| (c.channel.as_str(), c.seq))
        .collect();
    assert_eq!(seqs, vec![("a", 1), ("b", 2), ("a", 2)]);
    let frame: ServerFrame = serde_json::from_str(&committed[2].frame).unwrap();
    let ServerFrame::Event(ev) = frame else {
        panic!("event frame")
    };
    assert_eq!(
        (ev.seq, ev.body.as_str(), ev.id.as_str()),
        (2, "a2", "evt_a2")
    );

    let unknown = store.append(vec![event("nope", "x", now)]).await;
    assert!(matches!(unknown, Err(StoreError::UnknownChannel(_))));

    // Paging and head.
    for i in 3..=8 {
        store
            .append(vec![event("a", &format!("a{i}"), now)])
            .await
            .unwrap();
    }
    let page = store.read_since("a", 0, 2).await.unwrap();
    assert_eq!(page.head, 8);
    // keep_events = 5: seqs 4..=8 are visible, whatever trimming has done.
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );
    let page = store.read_since("a", 6, 100).await.unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![7, 8]
    );
    assert!(matches!(
        store.read_since("zz", 0, 1).await,
        Err(StoreError::UnknownChannel(_))
    ));

    // Age: an event older than max_age is invisible, then trimmed; the head survives.
    let page = store.read_since("b", 0, 100).await.unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2]
    );
    let deleted = store.trim(now).await.unwrap();
    // b0 by age; a1..a3 by count, unless appending a6..a8 already retired them.
    assert!(deleted == 1 || deleted == 3 + 1, "deleted {deleted}");
    assert_eq!(store.trim(now).await.unwrap(), 0, "nothing left to trim");
    assert_eq!(store.read_since("a", 0, 100).await.unwrap().events.len(), 5);
    // Age empties a channel entirely: its seqs still continue.
    let far_future = now + 3 * 3600 * 1000;
    store.trim(far_future).await.unwrap();
    assert_eq!(store.read_since("b", 0, 100).await.unwrap().head, 2);
    let next = store.append(vec![event("b", "b3", now)]).await.unwrap();
    assert_eq!(next[0].seq, 3);

    // Acks: the latest per seq wins; reads are by seq range, per channel.
    let before = now_ms();
    store.record_ack("a", 8, Some(200)).await.unwrap();
    store.record_ack("a", 8, None).await.unwrap();
    store.record_ack("a", 6, Some(502)).await.unwrap();
    store.record_ack("b", 3, Some(204)).await.unwrap();
    let acks = store.acks("a", 1, 100).await.unwrap();
    let got: Vec<(u64, Option<u16>)> = acks.iter().map(|a| (a.seq, a.status)).collect();
    assert_eq!(got, vec![(6, Some(502)), (8, None)]);
    assert!(acks.iter().all(|a| a.acked_at_ms >= before));
    let only7 = store.acks("a", 7, 7).await.unwrap();
    assert!(only7.is_empty(), "no ack for seq 7: {only7:?}");
    let b = store.acks("b", 0, u64::MAX).await.unwrap();
    assert_eq!(b.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![3]);
    assert!(store.acks("zz", 0, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_meets_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SyncMode::Full, RETENTION).unwrap();
    contract(Arc::new(store.clone())).await;
    // Age empties every channel; after a restart the seqs still continue.
    store.trim(now_ms() + 3 * 3600 * 1000).await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(dir.path(), SyncMode::Full, RETENTION).unwrap();
    assert_eq!(reopened.read_since("a", 0, 10).await.unwrap().head, 8);
    assert_eq!(reopened.read_since("b", 0, 10).await.unwrap().head, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_open_reports_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = SqliteStore::open(&file, SyncMode::Full, RETENTION)
        .err()
        .expect("cannot open under a file");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}
