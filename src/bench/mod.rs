//! `hookpipe bench`: a load tool for sizing a relay (or nginx+nchan, for comparison).
//!
//! Run order: create channels → connect every subscriber → start all publishers
//! at once → when they finish, wait for the outstanding deliveries (or
//! `--settle`) → report. Rooms: [`args`] the flags, `target` the server's URL
//! scheme, `marker` the body stamp and the message plan, `publish` and
//! `subscribe` the two sides, `idle` the idle-subscriber mode, `report` the
//! table/JSON/plot, `embedded` the in-process relay.

pub mod args;
mod embedded;
mod idle;
mod marker;
mod publish;
mod report;
mod subscribe;
mod target;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use args::BenchArgs;
use marker::{Clock, Finder, Plan};
use report::{ConfigEcho, Latency, Report};
use target::{Channel, Endpoint};

/// Subscriber handshakes in flight at once while connecting.
const CONNECT_CONCURRENCY: usize = 64;

/// Counters shared by publishers, subscribers and the progress bar.
pub(crate) struct Live {
    /// Acknowledged publishes per channel, warmup included.
    acked: Vec<AtomicU64>,
    /// Acknowledged measured publishes.
    published: AtomicU64,
    /// Failed publishes.
    rejected: AtomicU64,
    /// Distinct deliveries, warmup included.
    unique: AtomicU64,
    /// Distinct measured deliveries.
    delivered: AtomicU64,
    /// Subscribers whose stream is still open.
    subscribers_alive: AtomicUsize,
}

/// Runs `hookpipe bench` and prints its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.validate().map_err(anyhow::Error::msg)?;
    // Many subscribers need many descriptors; the hard limit is usually far above the soft one.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-files limit: {e}");
    }
    let embedded = match args.embedded {
        true => Some(embedded::Embedded::start().await?),
        false => None,
    };
    let url = match &embedded {
        Some(relay) => relay.url.clone(),
        None => args.url.clone().context("give --url URL or --embedded")?,
    };
    let result = measure(&args, &url).await;
    if let Some(relay) = embedded
        && let Err(e) = relay.stop().await
    {
        tracing::warn!("{e:#}");
    }
    result
}

async fn measure(args: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let endpoint = Arc::new(Endpoint::parse(url, args.target)?);
    endpoint.probe().await?;
    let run_id = getrandom::u32().context("no randomness for the run id")?;
    let channels = endpoint.create_channels(args.channels, run_id).await?;

    if let Some(n) = args.idle_subscribers {
        let report = idle::run(args, &endpoint, &channels, n).await?;
        match args.json {
            true => report::print_json(&report),
            false => report.print_table(),
        }
        return Ok(());
    }

    let (report, latency) = load(args, endpoint, &channels, run_id).await?;
    match args.json {
        true => report::print_json(&report),
        false => report.print_table(),
    }
    if let Some(path) = &args.plot {
        if latency.is_empty() {
            bail!("--plot: no delivery was measured, so there is nothing to draw");
        }
        let title = format!("hookpipe bench: latency of {} deliveries", latency.len());
        report::plot(&latency, path, &title)?;
    }
    if args.fail_on_loss && (report.lost > 0 || report.duplicates > 0) {
        bail!(
            "--fail-on-loss: {} lost, {} duplicated deliveries",
            report.lost,
            report.duplicates
        );
    }
    Ok(())
}

/// One load run: the report and the merged latency histogram.
async fn load(
    args: &BenchArgs,
    endpoint: Arc<Endpoint>,
    channels: &[Channel],
    run_id: u32,
) -> anyhow::Result<(Report, hdrhistogram::Histogram<u64>)> {
    let clock = Clock::start();
    let plan = Plan {
        publishers: args.publishers,
        channels: args.channels,
        warmup: args.warmup,
        messages: args.duration.is_none().then_some(args.messages),
    };
    let live = Arc::new(Live {
        acked: channels.iter().map(|_| AtomicU64::new(0)).collect(),
        published: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        unique: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        subscribers_alive: AtomicUsize::new(0),
    });

    // Every subscription is live before the first publish.
    let wanted = (0..channels.len()).flat_map(|c| (0..args.subscribers).map(move |i| (c, i)));
    let conns: Vec<(usize, subscribe::Conn)> = futures::stream::iter(wanted)
        .map(|(c, i)| {
            let endpoint = endpoint.clone();
            let ch = &channels[c];
            async move {
                let url = endpoint.subscribe_url(ch, args.transport);
                subscribe::connect(&endpoint, &url, ch.token.as_deref(), args.transport)
                    .await
                    .map(|conn| (c, conn))
                    .with_context(|| format!("subscriber {i} of channel {c} could not connect"))
            }
        })
        .buffered(CONNECT_CONCURRENCY)
        .try_collect()
        .await?;
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    live.subscribers_alive.store(conns.len(), Relaxed);
    let finder = Finder::new(run_id);
    let mut subscribers = JoinSet::new();
    for (channel, conn) in conns {
        let job = subscribe::Job {
            channel,
            plan,
            finder: finder.clone(),
            clock,
        };
        subscribers.spawn(subscribe::run(job, conn, live.clone(), stop.clone()));
    }

    let paths: Arc<Vec<String>> =
        Arc::new(channels.iter().map(|c| endpoint.publish_path(c)).collect());
    let start = Arc::new(Barrier::new(args.publishers as usize + 1));
    let mut publishers = JoinSet::new();
    for id in 0..args.publishers {
        let job = publish::Job {
            id,
            endpoint: endpoint.clone(),
            paths: paths.clone(),
            plan,
            run: run_id,
            payload: args.payload,
            interval: args.per_publisher_interval(),
            duration: args.duration,
            clock,
        };
        publishers.spawn(publish::run(job, live.clone(), start.clone()));
    }
    start.wait().await;
    let start_us = clock.now_us();

    let bar = progress_bar(args);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut pub_stats = Vec::with_capacity(args.publishers as usize);
    loop {
        tokio::select! {
            done = publishers.join_next() => match done {
                Some(done) => pub_stats.push(done.context("a publisher panicked")?),
                None => break,
            },
            _ = tick.tick() => show(&bar, &live),
        }
    }

    // Wait for the deliveries the relay owes, not for a fixed time.
    let owed: u64 =
        live.acked.iter().map(|a| a.load(Relaxed)).sum::<u64>() * args.subscribers as u64;
    let deadline = tokio::time::Instant::now() + args.settle;
    while live.unique.load(Relaxed) < owed
        && live.subscribers_alive.load(Relaxed) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
        show(&bar, &live);
    }
    stop.cancel();
    let mut sub_stats = Vec::with_capacity(subscribers.len());
    while let Some(done) = subscribers.join_next().await {
        sub_stats.push(done.context("a subscriber panicked")?);
    }
    bar.finish_and_clear();
    Ok(summarize(
        args, &endpoint, &live, start_us, pub_stats, sub_stats,
    ))
}

fn summarize(
    args: &BenchArgs,
    endpoint: &Endpoint,
    live: &Live,
    start_us: u64,
    pubs: Vec<publish::Stats>,
    subs: Vec<subscribe::Stats>,
) -> (Report, hdrhistogram::Histogram<u64>) {
    let mut rejections = BTreeMap::new();
    for (reason, n) in pubs.iter().flat_map(|p| &p.rejections) {
        *rejections.entry(reason.clone()).or_default() += n;
    }
    let mut latency = subscribe::new_histogram();
    let mut subscriber_errors = BTreeMap::new();
    let (mut expected, mut lost, mut delivered, mut duplicates, mut gaps, mut unexpected) =
        (0, 0, 0, 0, 0, 0);
    let mut last_us = start_us;
    for s in &subs {
        let owed = live.acked[s.channel].load(Relaxed);
        expected += owed;
        lost += owed.saturating_sub(s.unique);
        delivered += s.measured;
        duplicates += s.duplicates;
        gaps += s.gaps;
        unexpected += s.unexpected;
        last_us = last_us.max(s.last_us);
        if let Some(h) = &s.latency {
            latency.add(h).expect("histograms share bounds");
        }
        if let Some(why) = &s.ended {
            *subscriber_errors.entry(why.clone()).or_default() += 1;
        }
    }
    let published: u64 = pubs.iter().map(|p| p.acked).sum();
    let publish_end = pubs.iter().map(|p| p.finished_us).max().unwrap_or(start_us);
    let secs = |us: u64| us as f64 / 1e6;
    let per_sec = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let publish_secs = secs(publish_end.saturating_sub(start_us));
    let delivery_secs = secs(last_us.saturating_sub(start_us));
    let report = Report {
        publishes_per_sec: per_sec(published, publish_secs),
        deliveries_per_sec: per_sec(delivered, delivery_secs),
        latency_ms: Latency::of(&latency),
        published,
        delivered,
        expected,
        lost,
        duplicates,
        rejections,
        gap_frames: gaps,
        unexpected_frames: unexpected,
        subscriber_errors,
        publish_secs,
        delivery_secs,
        config: ConfigEcho::new(args, &endpoint.url),
    };
    (report, latency)
}

/// A bar on stderr, hidden for `--json` or when stderr is not a terminal.
fn progress_bar(args: &BenchArgs) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (len, template) = match args.duration {
        None => (
            Some(args.messages),
            "{elapsed_precise} [{bar:40}] {pos}/{len} published, {msg}",
        ),
        Some(_) => (None, "{elapsed_precise} {spinner} {pos} published, {msg}"),
    };
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn show(bar: &ProgressBar, live: &Live) {
    bar.set_position(live.published.load(Relaxed));
    bar.set_message(format!(
        "{} delivered, {} rejected",
        live.delivered.load(Relaxed),
        live.rejected.load(Relaxed)
    ));
}
