//! What the user sees on stdout: one line per delivery, text or JSON.
//!
//! Logs (connect, disconnect, retries, warnings) go to stderr through
//! `tracing`; only deliveries go to stdout, so `--json` output can be piped.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::forward::{Outcome, Report};

/// How deliveries are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputMode {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Text lines are suppressed (failures still reach stderr as errors).
    pub quiet: bool,
}

/// One delivery as `--json` prints it.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct JsonLine<'a> {
    /// The event's seq.
    pub seq: u64,
    /// The event's id.
    pub id: &'a str,
    /// The method.
    pub method: &'a str,
    /// Sub-path and query.
    pub path: &'a str,
    /// The target's final (or last) status, if it answered.
    pub status: Option<u16>,
    /// Milliseconds the last attempt took.
    pub ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// `delivered` (2xx/3xx), `rejected` (4xx: an answer, not retried) or `failed` (retries exhausted).
    pub outcome: &'static str,
    /// Why it failed, for `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl OutputMode {
    /// Prints a finished delivery (interrupted ones are not printed).
    pub fn delivery(&self, r: &Report) {
        let line = if self.json {
            match json_line(r) {
                Some(j) => serde_json::to_string(&j).expect("a delivery line serialises"),
                None => return,
            }
        } else if self.quiet {
            return;
        } else {
            match text_line(r) {
                Some(t) => t,
                None => return,
            }
        };
        // A closed stdout (e.g. piped into `head`) must not stop deliveries.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// `POST /github → 200 in 12 ms (seq 42)`.
pub fn text_line(r: &Report) -> Option<String> {
    let ms = r.elapsed.as_millis();
    let tries = if r.attempts > 1 {
        format!(" after {} attempts", r.attempts)
    } else {
        String::new()
    };
    Some(match &r.outcome {
        Outcome::Answered { status } => format!(
            "{} {} → {status} in {ms} ms{tries} (seq {})",
            r.method, r.path, r.seq
        ),
        Outcome::Failed { error, .. } => {
            format!(
                "{} {} → FAILED: {error}{tries}, giving up (seq {})",
                r.method, r.path, r.seq
            )
        }
        Outcome::Interrupted => return None,
    })
}

/// The `--json` object of a finished delivery.
pub fn json_line(r: &Report) -> Option<JsonLine<'_>> {
    let (status, outcome, error) = match &r.outcome {
        Outcome::Answered { status } if *status >= 400 => (Some(*status), "rejected", None),
        Outcome::Answered { status } => (Some(*status), "delivered", None),
        Outcome::Failed { status, error } => (*status, "failed", Some(error.as_str())),
        Outcome::Interrupted => return None,
    };
    Some(JsonLine {
        seq: r.seq,
        id: &r.id,
        method: &r.method,
        path: &r.path,
        status,
        ms: r.elapsed.as_millis() as u64,
        attempts: r.attempts,
        outcome,
        error,
    })
}

/// `850 ms`, `2.5 s`, `30 s`.
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d < Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome, attempts: u32) -> Report {
        Report {
            seq: 42,
            id: "evt_1".into(),
            method: "POST".into(),
            path: "/github".into(),
            outcome,
            attempts,
            elapsed: Duration::from_millis(12),
        }
    }

    #[test]
    fn text_lines() {
        assert_eq!(
            text_line(&report(Outcome::Answered { status: 200 }, 1)).unwrap(),
            "POST /github → 200 in 12 ms (seq 42)"
        );
        assert_eq!(
            text_line(&report(Outcome::Answered { status: 404 }, 3)).unwrap(),
            "POST /github → 404 in 12 ms after 3 attempts (seq 42)"
        );
        let failed = Outcome::Failed {
            status: Some(503),
            error: "503 Service Unavailable".into(),
        };
        assert_eq!(
            text_line(&report(failed, 13)).unwrap(),
            "POST /github → FAILED: 503 Service Unavailable after 13 attempts, giving up (seq 42)"
        );
        assert!(text_line(&report(Outcome::Interrupted, 2)).is_none());
    }

    #[test]
    fn json_lines() {
        let ok = report(Outcome::Answered { status: 200 }, 1);
        assert_eq!(
            serde_json::to_value(json_line(&ok).unwrap()).unwrap(),
            serde_json::json!({"seq":42,"id":"evt_1","method":"POST","path":"/github","status":200,"ms":12,"attempts":1,"outcome":"delivered"})
        );
        let rejected = report(Outcome::Answered { status: 422 }, 1);
        assert_eq!(json_line(&rejected).unwrap().outcome, "rejected");
        let failed = report(
            Outcome::Failed {
                status: None,
                error: "connection refused".into(),
            },
            13,
        );
        let v = serde_json::to_value(json_line(&failed).unwrap()).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["status"], serde_json::Value::Null);
        assert_eq!(v["error"], "connection refused");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 s");
    }
}
