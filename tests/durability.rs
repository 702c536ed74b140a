//! An event answered 202 survives `kill -9` of the relay, byte for byte.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{Relay, new_channel, subscribe};

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;

    // Publishers run flat out; the relay is killed while they are mid-flight.
    let acked: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
    let mut publishers = Vec::new();
    for p in 0..4u8 {
        let (base, channel, acked) = (relay.base.clone(), ch.channel.clone(), acked.clone());
        publishers.push(tokio::spawn(async move {
            let client = common::http();
            for i in 0..100_000u32 {
                // Binary and text bodies alike.
                let body: Vec<u8> = if i % 2 == 0 {
                    format!("{{\"p\":{p},\"i\":{i}}}").into_bytes()
                } else {
                    vec![p, 0xff, (i % 251) as u8, 0]
                };
                let Ok(res) = client
                    .post(format!("{base}/{channel}/hook"))
                    .body(body.clone())
                    .send()
                    .await
                else {
                    return;
                };
                if res.status() != 202 {
                    return;
                }
                let Ok(bytes) = res.bytes().await else { return };
                let receipt: hookpipe::protocol::Receipt = serde_json::from_slice(&bytes).unwrap();
                acked.lock().unwrap().insert(receipt.seq, body);
            }
        }));
    }
    common::wait_until(common::DEADLINE, "300 acknowledged events", || {
        acked.lock().unwrap().len() >= 300
    })
    .await;
    relay.kill9();
    for p in publishers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    let relay = Relay::start(dir.path(), &[]);
    let mut sub = subscribe(&relay, &ch, Some(0)).await;
    let max = *acked.keys().max().unwrap();
    let replayed = sub.events(max as usize).await;
    for (i, ev) in replayed.iter().enumerate() {
        assert_eq!(ev.seq, i as u64 + 1, "no gaps after restart");
        if let Some(body) = acked.get(&ev.seq) {
            assert_eq!(
                &ev.body_bytes().unwrap(),
                body,
                "seq {} byte for byte",
                ev.seq
            );
            assert_eq!(ev.path, "/hook");
        }
    }
    // And the sequence continues where it stopped.
    let next = common::publish(&relay.base, &ch.channel, "", "after").await;
    assert!(next.seq > max);
}
