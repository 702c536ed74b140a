//! `--workers N`: connections are dealt round-robin to N single-threaded
//! runtimes. Publishers and subscribers on different workers still see one
//! gapless, ordered stream per channel, and seqs stay strictly increasing
//! when concurrent commits come from several workers.

mod common;

use std::collections::HashSet;

use common::{Relay, http, new_channel, subscribe};
use hookpipe::protocol::Receipt;

const SUBSCRIBERS: usize = 5;
const PUBLISHERS: usize = 6;
const PER_PUBLISHER: usize = 40;

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_one_ordered_stream() {
    one_ordered_stream("3").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_worker_serves_everything() {
    one_ordered_stream("1").await;
}

async fn one_ordered_stream(workers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--workers", workers]);
    let ch = new_channel(&relay.base).await;
    // Five subscribers dealt round-robin: with three workers, each has one.
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        subs.push(subscribe(&relay, &ch, None).await);
    }

    // Each publisher has its own keep-alive connection, so publishes arrive
    // on every worker and their group commits interleave.
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let url = format!("{}/{}/p{p}", relay.base, ch.channel);
        publishers.push(tokio::spawn(async move {
            let client = http();
            let mut seqs = Vec::new();
            for i in 0..PER_PUBLISHER {
                let res = client
                    .post(&url)
                    .body(format!("{p}-{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 202);
                let receipt: Receipt = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
                seqs.push(receipt.seq);
            }
            seqs
        }));
    }
    let mut all_seqs = HashSet::new();
    for p in publishers {
        let seqs = p.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one publisher's receipts increase: {seqs:?}"
        );
        all_seqs.extend(seqs);
    }
    let total = PUBLISHERS * PER_PUBLISHER;
    assert_eq!(all_seqs.len(), total, "every receipt has its own seq");
    assert_eq!(
        all_seqs.iter().max(),
        Some(&(total as u64)),
        "no seq skipped"
    );

    for sub in subs.iter_mut() {
        let events = sub.events(total).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
        // Each publisher's bodies arrive in the order it sent them.
        for p in 0..PUBLISHERS {
            let path = format!("/p{p}");
            let bodies: Vec<String> = events
                .iter()
                .filter(|e| e.path == path)
                .map(|e| String::from_utf8(e.body_bytes().unwrap()).unwrap())
                .collect();
            let expected: Vec<String> = (0..PER_PUBLISHER).map(|i| format!("{p}-{i}")).collect();
            assert_eq!(bodies, expected);
        }
    }
    assert!(
        relay.logs().contains(&format!(" {workers} workers")),
        "the startup line names the worker count:\n{}",
        relay.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_workers_is_refused_with_a_clear_message() {
    let out = std::process::Command::new(common::bin("hookpipe"))
        .args(["serve", "--workers", "0", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--workers") && stderr.contains("1..=1024"),
        "{stderr}"
    );
}
