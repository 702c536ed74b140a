//! `since` replays the backlog and continues live with no gap and no
//! duplicate, even while publishers are busy; retention gaps are explicit.

mod common;

use common::{Relay, new_channel, publish, subscribe};
use hookpipe::protocol::ServerFrame;

#[tokio::test(flavor = "multi_thread")]
async fn replay_then_live_under_concurrent_publishing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    for i in 0..200 {
        publish(&relay.base, &ch.channel, "", format!("before {i}")).await;
    }
    // Four publishers keep going while subscribers join mid-stream.
    let mut publishers = Vec::new();
    for p in 0..4 {
        let (base, channel) = (relay.base.clone(), ch.channel.clone());
        publishers.push(tokio::spawn(async move {
            for i in 0..150 {
                publish(&base, &channel, "", format!("p{p} {i}")).await;
            }
        }));
    }
    let mut early = subscribe(&relay, &ch, Some(100)).await;
    let mut zero = subscribe(&relay, &ch, Some(0)).await;
    for p in publishers {
        p.await.unwrap();
    }
    let total = 200 + 4 * 150;
    for (sub, since) in [(&mut early, 100u64), (&mut zero, 0)] {
        let evs = sub.events(total - since as usize).await;
        let seqs: Vec<u64> = evs.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            ((since + 1)..=total as u64).collect::<Vec<_>>(),
            "since={since}"
        );
    }
    // Nothing extra follows: a probe event is the very next frame.
    publish(&relay.base, &ch.channel, "", "probe").await;
    assert_eq!(early.next_event().await.seq, total as u64 + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_since_only_new_events_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    publish(&relay.base, &ch.channel, "", "old").await;
    let mut sub = subscribe(&relay, &ch, None).await;
    publish(&relay.base, &ch.channel, "", "new").await;
    let ev = sub.next_event().await;
    assert_eq!((ev.seq, ev.body.as_str()), (2, "new"));
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_gap_is_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--retain-events", "5"]);
    let ch = new_channel(&relay.base).await;
    for i in 1..=12 {
        publish(&relay.base, &ch.channel, "", format!("e{i}")).await;
    }
    let mut sub = subscribe(&relay, &ch, Some(2)).await;
    match sub.next_frame().await {
        ServerFrame::Gap(g) => {
            assert_eq!((g.from, g.to), (3, 7), "events 3..=7 are out of retention")
        }
        other => panic!("expected a gap frame first, got {other:?}"),
    }
    let seqs: Vec<u64> = sub.events(5).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![8, 9, 10, 11, 12]);
    // Asking from inside the window needs no gap.
    let mut inside = subscribe(&relay, &ch, Some(9)).await;
    assert_eq!(inside.next_event().await.seq, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_age_is_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--retain-for", "1s"]);
    let ch = new_channel(&relay.base).await;
    publish(&relay.base, &ch.channel, "", "old").await;
    publish(&relay.base, &ch.channel, "", "old too").await;
    // Wait (with a deadline) until the events have aged out of the window.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut sub = subscribe(&relay, &ch, Some(0)).await;
        if let ServerFrame::Gap(g) = sub.next_frame().await {
            assert_eq!((g.from, g.to), (1, 2));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events never aged out"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn since_beyond_head_is_reported_as_reset() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    publish(&relay.base, &ch.channel, "", "one").await;
    let mut sub = subscribe(&relay, &ch, Some(40)).await;
    assert_eq!(sub.next_frame().await, ServerFrame::Reset { head: 1 });
    publish(&relay.base, &ch.channel, "", "two").await;
    assert_eq!(sub.next_event().await.seq, 2);
}
