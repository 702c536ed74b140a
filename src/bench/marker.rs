//! The marker each message body starts with, and the plan of who sends what where.
//!
//! `HPB:<run 8 hex>:<publisher 6>:<n 10>:<sent µs 16>:`, fixed width, then `x`
//! padding. It holds no character JSON escapes, so it appears verbatim inside
//! the relay's JSON frame and subscribers find it with `memmem` instead of
//! parsing the frame.

use std::io::Write;
use std::time::Instant;

use memchr::memmem;

/// Bytes of the marker; the smallest payload.
pub const MARKER_LEN: usize = 4 + 8 + 1 + 6 + 1 + 10 + 1 + 16 + 1;
/// Bytes of `HPB:<run>:`, the part a subscriber searches for.
const PREFIX_LEN: usize = 4 + 8 + 1;

/// One message's identity and send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Publisher index.
    pub publisher: u32,
    /// The publisher's message number, from 0 (warmup first).
    pub n: u64,
    /// When it was sent, in µs on the run's [`Clock`].
    pub sent_us: u64,
}

/// A monotonic clock shared by publishers and subscribers of one run.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// Starts the clock.
    pub fn start() -> Self {
        Clock(Instant::now())
    }

    /// Microseconds since the clock started.
    pub fn now_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// A message body of `payload` bytes: marker space, then `x` padding.
pub fn body_template(payload: usize) -> Vec<u8> {
    vec![b'x'; payload.max(MARKER_LEN)]
}

/// Writes the marker for `stamp` over the start of `body`.
pub fn write(body: &mut [u8], run: u32, stamp: Stamp) {
    let mut out = &mut body[..MARKER_LEN];
    write!(
        out,
        "HPB:{run:08x}:{:06}:{:010}:{:016}:",
        stamp.publisher, stamp.n, stamp.sent_us
    )
    .expect("the marker fits its fixed width");
}

/// Finds this run's markers in received bytes.
#[derive(Clone)]
pub struct Finder(memmem::Finder<'static>);

impl Finder {
    /// A finder for `run`'s markers.
    pub fn new(run: u32) -> Self {
        Finder(memmem::Finder::new(format!("HPB:{run:08x}:").as_bytes()).into_owned())
    }

    /// Every well-formed marker of this run in `text`.
    pub fn stamps<'a>(&'a self, text: &'a [u8]) -> impl Iterator<Item = Stamp> + 'a {
        self.0
            .find_iter(text)
            .filter_map(|at| parse(text.get(at + PREFIX_LEN..at + MARKER_LEN)?))
    }
}

/// Parses `<publisher>:<n>:<sent>:` (the marker after its prefix).
fn parse(rest: &[u8]) -> Option<Stamp> {
    let field = |from: usize, len: usize| -> Option<u64> {
        let digits = rest.get(from..from + len)?;
        if rest.get(from + len) != Some(&b':') {
            return None;
        }
        digits.iter().try_fold(0u64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
        })
    };
    Some(Stamp {
        publisher: u32::try_from(field(0, 6)?).ok()?,
        n: field(7, 10)?,
        sent_us: field(18, 16)?,
    })
}

/// Who publishes how many messages, and to which channel.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Publisher count.
    pub publishers: u32,
    /// Channel count.
    pub channels: u64,
    /// Warmup messages in total.
    pub warmup: u64,
    /// Measured messages in total (`None`: until the duration ends).
    pub messages: Option<u64>,
}

impl Plan {
    /// Publisher `p`'s share of `total`, spread as evenly as possible.
    fn share(&self, total: u64, p: u32) -> u64 {
        let n = u64::from(self.publishers);
        total / n + u64::from(u64::from(p) < total % n)
    }

    /// Warmup messages publisher `p` sends first (numbers `0..warmup_of(p)`).
    pub fn warmup_of(&self, p: u32) -> u64 {
        self.share(self.warmup, p)
    }

    /// Measured messages publisher `p` sends, if counted.
    pub fn messages_of(&self, p: u32) -> Option<u64> {
        self.messages.map(|m| self.share(m, p))
    }

    /// The channel of publisher `p`'s message `n`: consecutive messages of all
    /// publishers go round-robin over the channels.
    pub fn channel_of(&self, p: u32, n: u64) -> usize {
        ((u64::from(p) + n * u64::from(self.publishers)) % self.channels) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_inside_json() {
        let mut body = body_template(64);
        let stamp = Stamp {
            publisher: 12,
            n: 3456,
            sent_us: 7_890_123,
        };
        write(&mut body, 0xdead_beef, stamp);
        assert_eq!(body.len(), 64);
        let frame = format!(
            r#"{{"type":"event","body":{}}}"#,
            serde_json::to_string(std::str::from_utf8(&body).unwrap()).unwrap()
        );
        let found: Vec<_> = Finder::new(0xdead_beef).stamps(frame.as_bytes()).collect();
        assert_eq!(found, vec![stamp]);
        assert_eq!(Finder::new(1).stamps(frame.as_bytes()).count(), 0);
        assert_eq!(Finder::new(0xdead_beef).stamps(&body[..40]).count(), 0);
    }

    #[test]
    fn plan_spreads_messages_and_channels() {
        let plan = Plan {
            publishers: 3,
            channels: 2,
            warmup: 4,
            messages: Some(10),
        };
        assert_eq!(
            (0..3).map(|p| plan.messages_of(p).unwrap()).sum::<u64>(),
            10
        );
        assert_eq!(
            (0..3).map(|p| plan.warmup_of(p)).collect::<Vec<_>>(),
            [2, 1, 1]
        );
        let per_channel = (0..3u32)
            .flat_map(|p| (0..4).map(move |n| plan.channel_of(p, n)))
            .filter(|&c| c == 0)
            .count();
        assert_eq!(per_channel, 6);
    }
}
