//! A stalled subscriber slows neither ingest nor other subscribers, and loses
//! nothing: once it reads again it catches up from the store.

mod common;

use std::time::{Duration, Instant};

use common::{Relay, new_channel, subscribe};

#[tokio::test(flavor = "multi_thread")]
async fn stalled_subscriber_does_not_slow_others_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    // Retention must hold the whole run, or the catch-up would (rightly) report a gap.
    let relay = Relay::start(dir.path(), &["--retain-events", "10000"]);
    let ch = new_channel(&relay.base).await;
    // Connected, but it will not read a byte until the end.
    let mut stalled = subscribe(&relay, &ch, None).await;
    let mut live = subscribe(&relay, &ch, None).await;

    // 3000 × 8 KiB: far past socket buffers and the hub's 1024-frame ring.
    let total = 3000u64;
    let body = "x".repeat(8 * 1024);
    let publisher = {
        let (base, channel, body) = (relay.base.clone(), ch.channel.clone(), body.clone());
        tokio::spawn(async move {
            let client = common::http();
            let mut handles = Vec::new();
            for w in 0..4u64 {
                let (client, base, channel, body) =
                    (client.clone(), base.clone(), channel.clone(), body.clone());
                handles.push(tokio::spawn(async move {
                    for _ in 0..total / 4 {
                        let res = client
                            .post(format!("{base}/{channel}"))
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), 202, "publisher {w}");
                    }
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
        })
    };
    let started = Instant::now();
    let mut expect = 1;
    while expect <= total {
        let ev = live.next_event().await;
        assert_eq!(
            ev.seq, expect,
            "the reading subscriber sees every event in order"
        );
        expect += 1;
    }
    let live_took = started.elapsed();
    publisher.await.unwrap();
    assert!(
        live_took < Duration::from_secs(15),
        "live subscriber took {live_took:?}"
    );

    // Now the stalled one reads: everything, in order, no gap.
    for seq in 1..=total {
        let ev = stalled.next_event().await;
        assert_eq!(ev.seq, seq, "stalled subscriber catches up without loss");
    }
}
