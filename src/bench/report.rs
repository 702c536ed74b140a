//! The results: one [`Report`] per load run (or an [`IdleReport`]), printed
//! as a plain table or one JSON object, and the latency plot.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use super::args::{BenchArgs, Target, Transport};

/// The run's settings, echoed in every report.
#[derive(Debug, Serialize)]
pub struct ConfigEcho {
    /// Which server was measured.
    pub target: Target,
    /// Its URL (`embedded` runs show the temporary one).
    pub url: String,
    /// Whether the relay ran in this process.
    pub embedded: bool,
    /// Subscriber transport.
    pub transport: Transport,
    /// Publisher connections.
    pub publishers: u32,
    /// Channels.
    pub channels: u64,
    /// Subscribers per channel.
    pub subscribers_per_channel: usize,
    /// Body bytes per message.
    pub payload_bytes: usize,
    /// Measured messages (absent for a --duration run).
    pub messages: Option<u64>,
    /// Publish duration in seconds (absent for a --messages run).
    pub duration_secs: Option<f64>,
    /// Target publish rate per second (0: unlimited).
    pub rate_per_sec: u64,
    /// Unmeasured warmup messages.
    pub warmup: u64,
    /// Idle subscribers (an --idle-subscribers run).
    pub idle_subscribers: Option<usize>,
}

impl ConfigEcho {
    /// The settings of `args` against `url`.
    pub fn new(args: &BenchArgs, url: &str) -> Self {
        ConfigEcho {
            target: args.target,
            url: url.to_owned(),
            embedded: args.embedded,
            transport: args.transport,
            publishers: args.publishers,
            channels: args.channels,
            subscribers_per_channel: args.subscribers,
            payload_bytes: args.payload,
            messages: args.duration.is_none().then_some(args.messages),
            duration_secs: args.duration.map(|d| d.as_secs_f64()),
            rate_per_sec: args.rate,
            warmup: args.warmup,
            idle_subscribers: args.idle_subscribers,
        }
    }

    fn line(&self) -> String {
        let name = |v: Option<clap::builder::PossibleValue>| v.map(|v| v.get_name().to_owned());
        let target = name(self.target.to_possible_value()).unwrap_or_default();
        let embedded = if self.embedded { " (embedded)" } else { "" };
        if let Some(n) = self.idle_subscribers {
            return format!(
                "{target} {}{embedded}: {n} idle ws subscribers over {} channels",
                self.url, self.channels
            );
        }
        let amount = match (self.messages, self.duration_secs) {
            (Some(m), _) => format!("{m} messages"),
            (None, Some(d)) => format!("{d}s"),
            (None, None) => String::new(),
        };
        let rate = match self.rate_per_sec {
            0 => "unlimited".to_owned(),
            r => format!("{r}/s"),
        };
        format!(
            "{target} {}{embedded} over {}: {} publishers, {} channels x {} subscribers, {} B, {amount}, rate {rate}, warmup {}",
            self.url,
            name(self.transport.to_possible_value()).unwrap_or_default(),
            self.publishers,
            self.channels,
            self.subscribers_per_channel,
            self.payload_bytes,
            self.warmup
        )
    }
}

/// End-to-end latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram in µs.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The outcome of a load run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Acknowledged measured publishes per second of the publish phase.
    pub publishes_per_sec: f64,
    /// Measured deliveries per second, first publish to last delivery.
    pub deliveries_per_sec: f64,
    /// End-to-end latency, publish to delivery.
    pub latency_ms: Latency,
    /// Measured publishes the server acknowledged (2xx).
    pub published: u64,
    /// Measured messages delivered (each subscriber counts; duplicates don't).
    pub delivered: u64,
    /// Deliveries owed: acknowledged publishes (warmup included) x subscribers of their channel.
    pub expected: u64,
    /// Owed deliveries that never arrived.
    pub lost: u64,
    /// Deliveries of a message a subscriber already had.
    pub duplicates: u64,
    /// Failed publishes by HTTP status, or `conn_error`.
    pub rejections: BTreeMap<String, u64>,
    /// `gap` frames: the relay told a subscriber events were trimmed before it got them.
    pub gap_frames: u64,
    /// Frames that carried no marker of this run, or arrived on the wrong channel.
    pub unexpected_frames: u64,
    /// Subscribers whose stream ended early, by reason.
    pub subscriber_errors: BTreeMap<String, u64>,
    /// Length of the publish phase.
    pub publish_secs: f64,
    /// First publish to last delivery.
    pub delivery_secs: f64,
    /// The settings.
    pub config: ConfigEcho,
}

impl Report {
    /// Prints the plain table to stdout.
    pub fn print_table(&self) {
        let l = &self.latency_ms;
        let rejections = if self.rejections.is_empty() {
            "none".to_owned()
        } else {
            join_counts(&self.rejections)
        };
        println!(
            "{:<16}{:>14.1}   ({} acknowledged in {:.3} s)",
            "publishes/s", self.publishes_per_sec, self.published, self.publish_secs
        );
        println!(
            "{:<16}{:>14.1}   ({} delivered in {:.3} s)",
            "deliveries/s", self.deliveries_per_sec, self.delivered, self.delivery_secs
        );
        for (name, v) in [
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p99.9", l.p999),
            ("max", l.max),
        ] {
            println!("{:<16}{v:>14.3} ms", format!("latency {name}"));
        }
        println!(
            "{:<16}{:>14}   (of {} expected)",
            "lost", self.lost, self.expected
        );
        println!("{:<16}{:>14}", "duplicates", self.duplicates);
        println!("{:<16}{:>14}", "rejections", rejections);
        if self.gap_frames + self.unexpected_frames > 0 {
            println!("{:<16}{:>14}", "gap frames", self.gap_frames);
            println!("{:<16}{:>14}", "unexpected", self.unexpected_frames);
        }
        if !self.subscriber_errors.is_empty() {
            println!(
                "{:<16}{}",
                "sub. errors",
                join_counts(&self.subscriber_errors)
            );
        }
        println!("{:<16}{}", "config", self.config.line());
    }
}

/// The outcome of an `--idle-subscribers` run.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    /// Subscribers asked for.
    pub requested: usize,
    /// Subscribers that connected.
    pub connected: usize,
    /// Connection failures by reason.
    pub failed: BTreeMap<String, u64>,
    /// Time to connect them all.
    pub connect_secs: f64,
    /// Connections per second.
    pub connects_per_sec: f64,
    /// Subscribers still open when the run ended.
    pub still_connected: usize,
    /// The server's VmRSS before connecting (with --server-pid).
    pub server_rss_before_bytes: Option<u64>,
    /// Its VmRSS with every subscriber connected.
    pub server_rss_after_bytes: Option<u64>,
    /// (after - before) / connected.
    pub per_subscriber_bytes: Option<i64>,
    /// The settings.
    pub config: ConfigEcho,
}

impl IdleReport {
    /// Prints the plain table to stdout.
    pub fn print_table(&self) {
        println!(
            "{:<20}{:>12}   (of {} requested)",
            "connected", self.connected, self.requested
        );
        println!(
            "{:<20}{:>12.1}   ({:.3} s)",
            "connects/s", self.connects_per_sec, self.connect_secs
        );
        println!("{:<20}{:>12}", "still connected", self.still_connected);
        if !self.failed.is_empty() {
            println!("{:<20}{}", "failed", join_counts(&self.failed));
        }
        let mib =
            |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0));
        println!(
            "{:<20}{:>12}",
            "server RSS before",
            mib(self.server_rss_before_bytes)
        );
        println!(
            "{:<20}{:>12}",
            "server RSS after",
            mib(self.server_rss_after_bytes)
        );
        let per = self
            .per_subscriber_bytes
            .map_or("-".into(), |b| format!("{b} B"));
        println!("{:<20}{:>12}", "per subscriber", per);
        println!("{:<20}{}", "config", self.config.line());
    }
}

/// Prints `value` as one line of JSON to stdout.
pub fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string(value).expect("reports serialise")
    );
}

fn join_counts(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    parts.join(", ")
}

/// Draws latency against percentile (x = -log10(1 - q), so 90/99/99.9 % are evenly spaced).
pub fn plot(h: &Histogram<u64>, path: &Path, title: &str) -> anyhow::Result<()> {
    let nines = (h.len().max(1) as f64).log10().ceil().max(3.0);
    let x_of = |q: f64| (-(1.0 - q).log10()).min(nines);
    let points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            (
                x_of(v.quantile_iterated_to()),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect();
    let max_ms = (h.max() as f64 / 1000.0 * 1.05).max(0.01);
    let failed = |e: &dyn std::fmt::Debug| anyhow::anyhow!("cannot draw {}: {e:?}", path.display());

    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..nines, 0f64..max_ms)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("end-to-end latency (ms)")
        .x_labels(nines as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(|e| failed(&e))?;
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    drop(chart);
    drop(root);
    std::fs::metadata(path).with_context(|| format!("{} was not written", path.display()))?;
    Ok(())
}

/// `0 → 0%`, `1 → 90%`, `3 → 99.9%`.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    // x nines need x - 2 decimals: 3 → 99.9, 5 → 99.999.
    let decimals = (x.ceil() - 2.0).clamp(0.0, 9.0) as usize;
    let s = format!("{p:.decimals$}");
    let s = match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.'),
        false => &s,
    };
    format!("{s}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(7.0), "99.99999%");
    }
}
