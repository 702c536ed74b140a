//! SIGTERM: subscribers get close code 1001, in-flight work finishes, exit 0.

mod common;

use std::time::Duration;

use common::{Relay, new_channel, publish, subscribe};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_subscribers_with_1001_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut a = subscribe(&relay, &ch, None).await;
    let mut b = subscribe(&relay, &ch, Some(0)).await;
    publish(&relay.base, &ch.channel, "", "before").await;
    assert_eq!(a.next_event().await.body, "before");
    assert_eq!(b.next_event().await.body, "before");

    relay.terminate();
    for sub in [&mut a, &mut b] {
        let close = sub.closed().await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1001, "going away");
        assert!(close.reason.contains("shutting down"));
    }
    let status = relay.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");

    // What was acknowledged before shutdown is there after a restart.
    let relay = Relay::start(dir.path(), &[]);
    let mut c = subscribe(&relay, &ch, Some(0)).await;
    assert_eq!(c.next_event().await.body, "before");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_ingests_finish_during_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut publishers = Vec::new();
    for _ in 0..4 {
        let (base, channel, acked) = (relay.base.clone(), ch.channel.clone(), acked.clone());
        publishers.push(tokio::spawn(async move {
            let client = common::http();
            for i in 0..100_000u32 {
                let Ok(res) = client
                    .post(format!("{base}/{channel}"))
                    .body(format!("{i}"))
                    .send()
                    .await
                else {
                    return;
                };
                match res.status().as_u16() {
                    202 => {
                        let r: hookpipe::protocol::Receipt =
                            serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
                        acked.lock().unwrap().push(r.seq);
                    }
                    503 => return,
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    common::wait_until(common::DEADLINE, "some acknowledged events", || {
        acked.lock().unwrap().len() >= 100
    })
    .await;
    relay.terminate();
    for p in publishers {
        p.await.unwrap();
    }
    assert!(relay.wait_exit(Duration::from_secs(5)).success());
    let acked = acked.lock().unwrap().clone();
    let relay = Relay::start(dir.path(), &[]);
    let mut sub = subscribe(&relay, &ch, Some(0)).await;
    let max = *acked.iter().max().unwrap();
    let seqs: Vec<u64> = sub
        .events(max as usize)
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=max).collect::<Vec<_>>(),
        "every acknowledged event survived shutdown"
    );
}
