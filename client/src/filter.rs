//! `--filter` rules: which events are forwarded.
//!
//! `NAME=VALUE` matches an event that has header NAME (case-insensitive) with
//! exactly VALUE (any one of its values when the header repeats). `method=` and
//! `path=` are reserved: the method (case-insensitive) and the exact sub-path
//! after the channel (`""` for the channel URL itself). Rules with different
//! names must all match; rules that repeat a name match if any of them does
//! (`--filter X-GitHub-Event=push --filter X-GitHub-Event=release`).

use hookpipe::protocol::Event;

/// What one rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Method,
    Path,
    Header(String),
}

/// A set of rules; empty matches every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Each group is one name and the values it accepts.
    groups: Vec<(Key, Vec<String>)>,
}

impl Filter {
    /// Parses each `NAME=VALUE`; the error shows the expected shape.
    pub fn parse(rules: &[String]) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for rule in rules {
            let (name, value) = rule
                .split_once('=')
                .filter(|(n, _)| !n.trim().is_empty())
                .ok_or_else(|| format!("--filter must look like NAME=VALUE, e.g. X-GitHub-Event=push, method=POST or path=/github; got '{rule}'"))?;
            let name = name.trim().to_ascii_lowercase();
            if !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!("--filter '{rule}': '{name}' is not a header name"));
            }
            let key = match name.as_str() {
                "method" => Key::Method,
                "path" => Key::Path,
                _ => Key::Header(name),
            };
            match filter.groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value.to_owned()),
                None => filter.groups.push((key, vec![value.to_owned()])),
            }
        }
        Ok(filter)
    }

    /// Whether no rule was given.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether `event` passes every rule group.
    pub fn matches(&self, event: &Event) -> bool {
        self.groups.iter().all(|(key, values)| match key {
            Key::Method => values.iter().any(|v| v.eq_ignore_ascii_case(&event.method)),
            Key::Path => values.contains(&event.path),
            Key::Header(name) => event
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .any(|(_, have)| values.iter().any(|v| v == have)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookpipe::protocol::BodyEncoding;

    fn event(method: &str, path: &str, headers: &[(&str, &str)]) -> Event {
        Event {
            seq: 1,
            id: "e".into(),
            received_at: String::new(),
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: String::new(),
            body_encoding: BodyEncoding::Utf8,
        }
    }

    fn f(rules: &[&str]) -> Filter {
        Filter::parse(&rules.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn empty_matches_everything() {
        assert!(f(&[]).is_empty());
        assert!(f(&[]).matches(&event("GET", "", &[])));
    }

    #[test]
    fn header_rules() {
        let push = event("POST", "/gh", &[("x-github-event", "push")]);
        assert!(f(&["X-GitHub-Event=push"]).matches(&push));
        assert!(
            !f(&["X-GitHub-Event=Push"]).matches(&push),
            "values are exact"
        );
        assert!(!f(&["X-GitHub-Event=pus"]).matches(&push));
        assert!(!f(&["X-Other=push"]).matches(&push));
        let repeated = event("POST", "", &[("x-tag", "a"), ("x-tag", "b")]);
        assert!(f(&["x-tag=b"]).matches(&repeated));
        assert!(f(&["x-empty="]).matches(&event("POST", "", &[("x-empty", "")])));
        assert!(
            f(&["x-v=a=b"]).matches(&event("POST", "", &[("x-v", "a=b")])),
            "splits at the first '='"
        );
    }

    #[test]
    fn method_and_path_rules() {
        let e = event("POST", "/github", &[]);
        assert!(f(&["method=post"]).matches(&e));
        assert!(!f(&["method=PUT"]).matches(&e));
        assert!(f(&["path=/github"]).matches(&e));
        assert!(!f(&["path=/github/"]).matches(&e), "paths are exact");
        assert!(!f(&["path=/git"]).matches(&e));
        assert!(f(&["path="]).matches(&event("POST", "", &[])));
    }

    #[test]
    fn different_names_and_same_name_or() {
        let push = event("POST", "/gh", &[("x-github-event", "push")]);
        let rel = event("POST", "/gh", &[("x-github-event", "release")]);
        let both = f(&[
            "X-GitHub-Event=push",
            "X-GitHub-Event=release",
            "method=POST",
        ]);
        assert!(both.matches(&push) && both.matches(&rel));
        assert!(!both.matches(&event("PUT", "/gh", &[("x-github-event", "push")])));
        assert!(!f(&["X-GitHub-Event=push", "path=/other"]).matches(&push));
    }

    #[test]
    fn bad_rules() {
        for bad in ["push", "=push", " =x", "a b=c", "x:y=z"] {
            let e = Filter::parse(&[bad.to_string()]).unwrap_err();
            assert!(e.starts_with("--filter"), "{bad}: {e}");
        }
    }
}
